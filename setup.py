"""Build hook for the optional C accelerator only.

All package metadata lives in pyproject.toml (PEP 621); this file exists
because an extension module cannot be declared there.  ``optional=True``:
without a working C compiler the build warns and installs the pure-Python
package, which then uses its pure-Python masking.  ``SIMPLEWS_PURE_PYTHON=1``
leaves the extension out altogether: that build makes the ``py3-none-any``
wheel a release uploads (the sdist still carries the C source).
"""

import os

from setuptools import Extension, setup

pure = os.environ.get("SIMPLEWS_PURE_PYTHON") == "1"
setup(ext_modules=[] if pure else [Extension("simplews._speedups", ["simplews/_speedups.c"], optional=True)])
