"""Build hook for the optional C accelerator only.

All package metadata lives in pyproject.toml (PEP 621); this file exists
because an extension module cannot be declared there.  ``optional=True``:
without a working C compiler the build warns and installs the pure-Python
package, which then uses its pure-Python masking.  ``SIMPLEWS_PURE_PYTHON=1``
leaves the extension out altogether: that build makes the ``py3-none-any``
wheel a release uploads (the sdist still carries the C source).  On other
interpreters than CPython (PyPy) the extension is left out too: there the
pure-Python masking is the fast path, and a C-API extension would only slow it.
"""

import os
import platform

from setuptools import Extension, setup

pure = os.environ.get("SIMPLEWS_PURE_PYTHON") == "1" or platform.python_implementation() != "CPython"
setup(ext_modules=[] if pure else [Extension("simplews._speedups", ["simplews/_speedups.c"], optional=True)])
