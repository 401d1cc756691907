"""Where the Windows emulation lives, and how a test tells whether it runs under it."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import sys
from types import ModuleType
from typing import Dict

#: put first on PYTHONPATH to emulate Windows' socket layer (see its sitecustomize.py)
EMULATE_DIR = pathlib.Path(__file__).resolve().parent / "emulate_windows"


def emulated() -> bool:
    """Whether this process runs under the emulation (the shim marks it)."""
    return os.environ.get("SIMPLEWS_EMULATED") == "windows"


def winselect() -> ModuleType:
    """The module of the 512-socket select() selector (the shim's own copy when it is active)."""
    module = sys.modules.get("winselect")
    if module is None:
        spec = importlib.util.spec_from_file_location("winselect", EMULATE_DIR / "winselect.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["winselect"] = module
        spec.loader.exec_module(module)
    return module


def plain_environment() -> Dict[str, str]:
    """This process's environment without the emulation, for a peer process that must not be emulated."""
    env = dict(os.environ)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and pathlib.Path(p).resolve() != EMULATE_DIR]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.pop("SIMPLEWS_EMULATED", None)
    env.pop("SIMPLEWS_EMULATE", None)
    return env
