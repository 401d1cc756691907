"""Build hook for the optional C accelerator only.

All package metadata lives in pyproject.toml (PEP 621); this file exists
because an extension module cannot be declared there.  ``optional=True``:
without a working C compiler the build warns and installs the pure-Python
package, which then uses its pure-Python masking.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("simplews._speedups", ["simplews/_speedups.c"], optional=True)])
