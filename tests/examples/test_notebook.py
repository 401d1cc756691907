"""examples/notebook_stream.ipynb executed by a real Jupyter kernel (which runs its own asyncio loop)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest
from example_procs import EXAMPLES, ROOT
from notebooks import RecordingClient, check_updated_in_place

import simplews
from simplews.testing import ServerFactory

nbformat = pytest.importorskip("nbformat")

NOTEBOOK = EXAMPLES / "notebook_stream.ipynb"


@pytest.fixture
def kernel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel inherits our environment: this checkout first on its path, no stream URL."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    monkeypatch.delenv("SIMPLEWS_STREAM_URL", raising=False)


def _client(notebook: Any) -> RecordingClient:
    return RecordingClient(notebook, timeout=90, kernel_name="python3", resources={"metadata": {"path": str(EXAMPLES)}})


def _cells(notebook: Any) -> Dict[str, int]:
    """Index of each code cell by its tag."""
    return {cell.metadata["tags"][0]: i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"}


def _text(cell: Any) -> List[str]:
    """The cell's printed lines; fails on an error output."""
    lines: List[str] = []
    for output in cell.outputs:
        assert output.output_type != "error", "\n".join(output.traceback)
        if output.output_type == "stream":
            lines += output.text.splitlines()
    return lines


@pytest.mark.timeout(180)
def test_notebook_runs_as_is_and_rerunning_the_client_cell_replaces_the_client(kernel_env: None) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    tags = _cells(notebook)
    client = _client(notebook)
    with client.setup_kernel():
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type == "code" and index != tags["stop"]:
                client.execute_cell(cell, index)
        cells = notebook.cells
        assert _text(cells[tags["loop-check"]]) == ["asyncio loop running in this kernel: True"]
        assert _text(cells[tags["server"]]) == ["source: the simulated sensor in this notebook"]
        assert _text(cells[tags["start-client"]]) == ["client running in the background: True"]
        collected = _text(cells[tags["chart"]])
        assert collected[0] == "collected 50 readings"
        low, mean, high = (float(word) for word in collected[1].split()[1::2])
        assert 15 <= low <= mean <= high <= 25  # the simulated sensor reads 20 ± 5
        assert collected[2:] == ["chart redrawn in place 8 times"]
        check_updated_in_place(client, tags["chart"])
        assert _text(cells[tags["alongside-asyncio"]]) == ["messages arrived during an await on the kernel's loop: True"]

        # re-running the client cell stops the previous client before starting a new one
        client.execute_cell(cells[tags["start-client"]], tags["start-client"])
        assert _text(cells[tags["start-client"]]) == [
            "stopped the previous client; still running: False",
            "client running in the background: True",
        ]
        client.execute_cell(cells[tags["chart"]], tags["chart"])
        assert _text(cells[tags["chart"]])[0] == "collected 50 readings"
        check_updated_in_place(client, tags["chart"])
        check = nbformat.v4.new_code_cell("print(sorted(t.name for t in threading.enumerate() if t.name == 'simplews-client'))")
        cells.append(check)
        client.execute_cell(check, len(cells) - 1)
        assert _text(check) == ["['simplews-client']"]

        client.execute_cell(cells[tags["stop"]], tags["stop"])
        assert _text(cells[tags["stop"]]) == ["client running: False", "simplews threads left: []"]


def _numbered_readings(ws: simplews.Connection) -> None:
    """A feed from outside the kernel: readings 0, 1, 2, ... until the client leaves."""
    seq = 0
    while True:
        ws.send(json.dumps({"seq": seq, "t": time.time(), "value": float(seq)}))
        seq += 1
        time.sleep(0.005)


@pytest.mark.timeout(180)
def test_notebook_reads_the_feed_given_by_environment(
    kernel_env: None, ws_server: ServerFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server = ws_server(_numbered_readings)
    monkeypatch.setenv("SIMPLEWS_STREAM_URL", server.url)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = _client(notebook)
    client.execute()
    tags = _cells(notebook)
    cells = notebook.cells
    assert _text(cells[tags["server"]]) == ["source: SIMPLEWS_STREAM_URL"]
    assert _text(cells[tags["chart"]])[:2] == ["collected 50 readings", "min 0.00  mean 24.50  max 49.00"]
    check_updated_in_place(client, tags["chart"])
    assert _text(cells[tags["stop"]]) == ["client running: False", "simplews threads left: []"]
    nbformat.write(notebook, tmp_path / "executed.ipynb")  # the executed notebook is still valid
    nbformat.validate(nbformat.read(tmp_path / "executed.ipynb", as_version=4))
