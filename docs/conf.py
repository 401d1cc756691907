"""Sphinx configuration: guides in Markdown (MyST), the API reference from the docstrings.

Build (offline, warnings are errors, as CI does)::

    python -m pip install -e '.[docs]'
    python -m sphinx -W --keep-going -n -b html docs docs/_build/html
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, List

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import simplews  # noqa: E402
import simplews.cli  # noqa: E402

project = "simplews"
author = "the simplews authors"
copyright = "the simplews authors"
version = release = simplews.__version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
root_doc = "index"

myst_heading_anchors = 3
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# No intersphinx: the build must not touch the network. Standard-library types in the
# signatures therefore have no page to link to; everything of ours must resolve.
nitpick_ignore_regex = [
    ("py:class", r"(ssl|socket|threading|logging|argparse|enum|collections\.abc|typing|types|_pytest\.\w+)\.\w+"),
    ("py:class", r"(Path|PathLike|TracebackType)"),
    # imported for type checking only (ssl loads on first TLS use), documented as simplews.tls.TLS
    ("py:class", r"TLS"),
    ("py:class", r"simplews\.options\.T"),
]

html_theme = "furo"
html_title = f"simplews {release}"
html_static_path: List[str] = []


class CommandHelp(SphinxDirective):
    """``.. command-help::`` renders ``simplews --help`` and each command's help, as the program prints them."""

    def run(self) -> List[nodes.Node]:
        parser = simplews.cli.build_parser()
        texts = [parser.format_help()]
        for action in parser._subparsers._group_actions if parser._subparsers else []:
            for sub in getattr(action, "choices", {}).values():
                texts.append(sub.format_help())
        return [nodes.literal_block(text, text, language="text") for text in texts]


def _public_signature(app: Sphinx, what: str, name: str, obj: Any, options: Any, signature: Any, annotation: Any) -> Any:
    """Leave out what users never pass: private parameters, and constructors they never call."""
    if name in _MADE_FOR_YOU:
        return "", annotation
    if signature:
        # a dataclass field's default_factory shows as "<factory>", which no signature parser reads
        params = [re.sub(r"=\s*<factory>$", "= ...", p.strip()) for p in _split_params(signature[1:signature.rindex(")")])]
        signature = "(" + ", ".join(p for p in params if not p.startswith("_")) + ")"
    return signature, annotation


# created by simplews, never by its users
_MADE_FOR_YOU = {"simplews.Connection"}


def _split_params(text: str) -> List[str]:
    """Split a parameter list at its top-level commas."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += (char in "[(") - (char in "])")
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current] if current.strip() else parts


def setup(app: Sphinx) -> Any:
    """Register the local directive and the signature filter."""
    app.add_directive("command-help", CommandHelp)
    app.connect("autodoc-process-signature", _public_signature)
    return {"parallel_read_safe": True}
