"""The fenced code blocks of the README and of the documentation pages."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import List

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+)(?P<info>[^`\n]*)$")


@dataclasses.dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its language and its text."""

    path: Path
    line: int  # of the opening fence, 1-based
    language: str
    section: str  # the nearest heading above it
    text: str

    @property
    def name(self) -> str:
        """``README.md:42`` style, for test ids and messages."""
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> List[Block]:
    """Every fenced block of a Markdown file; MyST directives (```` ```{name} ````) are left out."""
    found: List[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    section = ""
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if match is None:
            if lines[i].startswith("#"):
                section = lines[i].lstrip("#").strip()
            i += 1
            continue
        start, fence, indent = i, match.group("fence"), len(match.group("indent"))
        info = match.group("info").strip()
        i += 1
        body: List[str] = []
        while i < len(lines) and lines[i].strip() != fence:
            body.append(lines[i][indent:])
            i += 1
        i += 1
        if not info.startswith("{"):
            found.append(Block(path, start + 1, info.split()[0] if info else "", section, "\n".join(body) + "\n"))
    return found


def all_blocks() -> List[Block]:
    """The blocks of every document, in order."""
    return [block for path in DOCUMENTS for block in blocks(path)]
