"""The examples/dashboard.py example: its page and its live feed, over real sockets."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import websocket
from server_raw import get

import simplews

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "dashboard.py"


@pytest.mark.timeout(60)
def test_dashboard_script_serves_page_and_feed_and_stops_on_sigterm() -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(EXAMPLE.parents[1]), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, str(EXAMPLE), "--port", "0", "--interval", "0.05"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("dashboard on http://127.0.0.1:"), proc.stderr.read()
        port = int(line.rsplit(":", 1)[1].strip("/"))
        status, headers, body = get(port, "/")
        page = body.decode()
        assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
        assert "<canvas" in page and 'new WebSocket(scheme + location.host + "/feed")' in page
        assert "<script src" not in page and "cdn" not in page.lower()
        assert get(port, "/feed")[0] == 426  # a plain GET on the feed
        assert get(port, "/nowhere")[0] == 404
        ws = simplews.connect(f"ws://127.0.0.1:{port}/feed")
        first = json.loads(ws.recv(timeout=10))
        assert isinstance(first["history"], list)
        readings = [json.loads(ws.recv(timeout=10)) for _ in range(3)]
        assert all(set(r) == {"t", "temperature", "humidity", "clients"} for r in readings)
        assert readings[0]["t"] < readings[1]["t"] < readings[2]["t"]
        wc = websocket.create_connection(f"ws://127.0.0.1:{port}/feed", timeout=10)
        assert "history" in json.loads(wc.recv())
        assert json.loads(wc.recv())["clients"] >= 1
        wc.close()
        proc.send_signal(signal.SIGTERM)
        with pytest.raises(simplews.ConnectionClosedOK) as info:
            while True:
                ws.recv(timeout=20)
        assert info.value.code == 1001
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0 and err == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_dashboard_in_process_broadcasts_to_every_page() -> None:
    spec = importlib.util.spec_from_file_location("dashboard_example", EXAMPLE)
    module: Any = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dashboard = module.Dashboard(port=0, interval=0.02)
    dashboard.server.start()
    dashboard._feed.start()
    try:
        pages = [simplews.connect(dashboard.server.url + "feed") for _ in range(3)]
        for ws in pages:
            assert "history" in json.loads(ws.recv(timeout=10))
        latest = [json.loads(ws.recv(timeout=10)) for ws in pages]
        assert all("temperature" in r for r in latest)
    finally:
        dashboard.stop()
        dashboard._feed.join(10)
    for ws in pages:
        with pytest.raises(simplews.ConnectionClosedOK):
            while True:
                ws.recv(timeout=10)
