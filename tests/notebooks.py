"""Executing notebook cells in a real Jupyter kernel and seeing every display message."""

from __future__ import annotations

import base64
from collections import defaultdict
from typing import Any, Dict, List, Optional, Tuple

import pytest

nbclient = pytest.importorskip("nbclient")

Display = Tuple[str, Optional[str], Dict[str, Any]]  # (message type, display id, data by MIME type)


class RecordingClient(nbclient.NotebookClient):  # type: ignore[misc]
    """Runs the notebook and keeps every display message each cell sent, updates included.

    The executed notebook keeps only the last state of an output that was updated in
    place; these messages show each update.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.displays: Dict[int, List[Display]] = defaultdict(list)

    def process_message(self, msg: Dict[str, Any], cell: Any, cell_index: int) -> Any:
        """Record display messages, then handle the message as usual."""
        if msg["msg_type"] in ("display_data", "update_display_data"):
            content = msg["content"]
            display_id = (content.get("transient") or {}).get("display_id")
            self.displays[cell_index].append((msg["msg_type"], display_id, dict(content.get("data", {}))))
        return super().process_message(msg, cell, cell_index)


def png(data: Dict[str, Any]) -> bytes:
    """The PNG image of a display message's data (fails if it has none)."""
    png = base64.b64decode(data["image/png"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    return png


def check_updated_in_place(client: RecordingClient, index: int) -> None:
    """Cell ``index`` showed one image and replaced it several times with new ones, leaving one output."""
    displays = client.displays.pop(index)
    (kind, display_id, first), *updates = displays
    assert kind == "display_data" and display_id and png(first)
    assert len(updates) >= 2 and all(kind == "update_display_data" and did == display_id for kind, did, _ in updates)
    images = [png(data) for _, _, data in updates]
    assert len(set(images)) >= 2  # the picture changed
    outputs = [out for out in client.nb.cells[index].outputs if out.output_type == "display_data"]
    assert len(outputs) == 1 and png(outputs[0].data) == images[-1]
