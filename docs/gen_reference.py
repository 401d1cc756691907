"""Write docs/reference.md from the docstrings and signatures of the public API.

Run: python docs/gen_reference.py   (rewrites docs/reference.md next to this script)
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any, List

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import simplews  # noqa: E402
import simplews.testing  # noqa: E402

SECTIONS = [
    ("Connecting and serving", ["connect", "Client", "serve", "Server", "Connection"]),
    ("Handshake objects", ["Request", "Response", "Headers"]),
    ("Constants", ["State", "CloseCode"]),
]
TESTING = ["start_server", "RecordingServer", "Received", "ServerFactory", "ClientFactory"]


def _signature(obj: Any) -> str:
    """The signature with annotations as written in the source (they are strings here)."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return ""
    params = []
    for param in sig.parameters.values():
        if isinstance(param.annotation, str):
            param = param.replace(annotation=_Raw(param.annotation))
        params.append(param)
    ret = sig.return_annotation
    sig = sig.replace(parameters=params, return_annotation=_Raw(ret) if isinstance(ret, str) else ret)
    return str(sig)


class _Raw:
    """An annotation printed exactly as written."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _wrap(signature: str, width: int = 100) -> str:
    """One parameter per line when the signature is long."""
    if len(signature) <= width:
        return signature
    inner, _, ret = signature[1:].rpartition(")")
    parts, depth, current = [], 0, ""
    for char in inner:
        depth += char in "[(" and 1 or (char in "])" and -1 or 0)
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return "(\n" + "".join(f"    {part},\n" for part in parts if part) + ")" + ret


def _doc(obj: Any) -> str:
    return inspect.cleandoc(obj.__doc__ or "(undocumented)")


def _members(cls: type) -> List[str]:
    """Public methods and properties defined by the class itself, in source order."""
    out = []
    for name, value in vars(cls).items():
        if name.startswith("_") and name not in ("__iter__", "__enter__"):
            continue
        if isinstance(value, property):
            out.append(f"- **`{name}`** (property): {_doc(value).splitlines()[0]}")
        elif inspect.isfunction(value) or isinstance(value, (staticmethod, classmethod)):
            func = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
            if func.__doc__:
                out.append(f"- **`{name}{_signature(func)}`**: {_doc(func).splitlines()[0]}")
    return out


def _entry(qualname: str, obj: Any) -> List[str]:
    lines = []
    if inspect.isclass(obj) and issubclass(obj, BaseException):
        lines.append(f"### `{qualname}`\n")
    elif inspect.isclass(obj) and hasattr(obj, "__members__"):
        lines.append(f"### `{qualname}` (enum)\n")
    else:
        kind = "class" if inspect.isclass(obj) else "function"
        lines.append(f"### `{qualname}` ({kind})\n")
        lines.append(f"```python\n{qualname.rsplit('.', 1)[-1]}{_wrap(_signature(obj))}\n```\n")
    lines.append(_doc(obj) + "\n")
    if inspect.isclass(obj) and not issubclass(obj, BaseException) and not hasattr(obj, "__members__"):
        members = _members(obj)
        if members:
            lines += members + [""]
    return lines


def render() -> str:
    """The whole reference as Markdown."""
    out = [
        "# simplews API reference",
        "",
        "Generated from the docstrings by `python docs/gen_reference.py`; do not edit by hand.",
        "",
    ]
    listed = set()
    for title, names in SECTIONS:
        out += [f"## {title}", ""]
        for name in names:
            listed.add(name)
            out += _entry(f"simplews.{name}", getattr(simplews, name))
    tree = inspect.cleandoc(sys.modules["simplews.exceptions"].__doc__ or "").split("::", 1)[-1].strip()
    out += ["## Exceptions", "", "```", tree, "```", ""]
    for name in simplews.__all__:
        if name in listed or name == "__version__":
            continue
        obj = getattr(simplews, name)
        out += _entry(f"simplews.{name}", obj)
    out += ["## Testing helpers (`simplews.testing`, a pytest plugin)", "", _doc(simplews.testing), ""]
    for name in TESTING:
        out += _entry(f"simplews.testing.{name}", getattr(simplews.testing, name))
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    target = Path(__file__).with_name("reference.md")
    target.write_text(render(), encoding="utf-8")
    print(f"wrote {target}")
