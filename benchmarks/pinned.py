"""Import simplews from one directory only (compare mode).

Putting a directory first on ``sys.path`` is not enough: a module missing
there (an accelerator that was not built, a module a revision does not
have) would still be found by the editable install's import hook, in
another checkout.  :func:`pin` puts a finder first on ``sys.meta_path``
that looks for ``simplews`` and its submodules in the given directory and
nowhere else; a module missing there is missing (so an absent accelerator
means simplews's pure-Python fallback, as for a user without one).
:func:`check` verifies it afterwards.  Kept free of imports beyond what the
interpreter loads at start-up: the ``import`` workload runs after it.
"""

from __future__ import annotations

import os
import sys
from importlib.machinery import ModuleSpec, PathFinder
from typing import Any, Optional, Sequence

PACKAGE = "simplews"


def _ours(name: str) -> bool:
    return name == PACKAGE or name.startswith(PACKAGE + ".")


class _PinnedFinder:
    """A meta-path finder serving simplews from one directory only."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def find_spec(self, name: str, path: Optional[Sequence[str]] = None, target: Any = None) -> Optional[ModuleSpec]:
        if not _ours(name):
            return None
        spec = PathFinder.find_spec(name, [self.directory] if name == PACKAGE else path)
        if spec is None:
            raise ModuleNotFoundError(f"No module named {name!r} in {self.directory}", name=name)
        return spec


def pin(directory: str) -> None:
    """From now on import simplews from ``directory`` only."""
    if PACKAGE in sys.modules:
        raise RuntimeError("simplews is already imported")
    sys.meta_path.insert(0, _PinnedFinder(os.path.realpath(directory)))


def check(directory: str) -> None:
    """Fail unless every simplews module imported so far came from ``directory``."""
    prefix = os.path.realpath(directory) + os.sep
    for name, module in list(sys.modules.items()):
        where = getattr(module, "__file__", None)
        if _ours(name) and where and not os.path.realpath(where).startswith(prefix):
            raise ImportError(f"{name} was imported from {where}, not from {directory}")
