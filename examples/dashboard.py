"""A live dashboard on one port: an HTML page at ``/`` and a WebSocket feed at ``/feed``.

The page draws a live chart with plain JavaScript on a ``<canvas>`` (no CDN, no
build step); the server streams simulated sensor readings to every open
browser with ``server.broadcast``. Ctrl-C (or SIGTERM) closes every browser
with 1001 and exits.

Run: python examples/dashboard.py --port 8000   then open http://127.0.0.1:8000/
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import math
import random
import threading
import time
from typing import Any, Deque, Dict, Optional, Sequence, Set

import simplews

HISTORY = 240  # readings a newly opened page gets at once

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>simplews live dashboard</title>
<style>
  body { font: 15px system-ui, sans-serif; margin: 2em; color: #222; }
  canvas { border: 1px solid #ccc; width: 100%; max-width: 900px; height: 360px; }
  .t { color: #d9480f; } .h { color: #1971c2; }
</style>
</head>
<body>
<h1>Sensor feed</h1>
<p>Status: <b id="status">connecting</b> &middot;
   <span class="t">temperature <b id="temp">-</b> &deg;C</span> &middot;
   <span class="h">humidity <b id="hum">-</b> %</span> &middot; clients: <b id="clients">-</b></p>
<canvas id="chart" width="900" height="360"></canvas>
<script>
"use strict";
const MAX = 240, data = [];
const canvas = document.getElementById("chart"), ctx = canvas.getContext("2d");
function add(r) {
  if (data.length && r.t <= data[data.length - 1].t) return;
  data.push(r);
  if (data.length > MAX) data.shift();
}
function line(key, lo, hi, color) {
  const w = canvas.width, h = canvas.height, n = data.length;
  ctx.strokeStyle = color; ctx.lineWidth = 2; ctx.beginPath();
  data.forEach((r, i) => {
    const x = 40 + (w - 50) * (n < 2 ? 0 : i / (MAX - 1));
    const y = h - 20 - (h - 40) * (r[key] - lo) / (hi - lo);
    i ? ctx.lineTo(x, y) : ctx.moveTo(x, y);
  });
  ctx.stroke();
}
function draw() {
  const w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = "#eee"; ctx.fillStyle = "#888"; ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = 20 + (h - 40) * i / 4;
    ctx.beginPath(); ctx.moveTo(40, y); ctx.lineTo(w - 10, y); ctx.stroke();
    ctx.fillText(String(30 - i * 5) + "\\u00b0", 5, y + 4);
    ctx.textAlign = "right"; ctx.fillText(String(100 - i * 25) + "%", w - 12, y - 3); ctx.textAlign = "left";
  }
  line("temperature", 10, 30, "#d9480f");
  line("humidity", 0, 100, "#1971c2");
  const last = data[data.length - 1];
  if (last) {
    document.getElementById("temp").textContent = last.temperature.toFixed(2);
    document.getElementById("hum").textContent = last.humidity.toFixed(1);
    document.getElementById("clients").textContent = last.clients;
  }
}
function connect() {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const ws = new WebSocket(scheme + location.host + "/feed");
  const status = document.getElementById("status");
  ws.onopen = () => { status.textContent = "live"; };
  ws.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    (msg.history || [msg]).forEach(add);
    draw();
  };
  ws.onclose = (event) => {
    status.textContent = "closed (" + event.code + "), reconnecting";
    setTimeout(connect, 2000);
  };
}
connect();
</script>
</body>
</html>
"""


class Dashboard:
    """The server, the simulated sensor and the thread that broadcasts its readings."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8000, interval: float = 0.5) -> None:
        self.interval = interval
        self.history: Deque[Dict[str, Any]] = collections.deque(maxlen=HISTORY)
        self._lock = threading.Lock()
        self._pages: Set[simplews.Connection] = set()  # the pages that have their history
        self._stop = threading.Event()
        self.server = simplews.Server(
            process_request=self.process_request, on_open=self.on_open, on_close=self.on_close, host=host, port=port
        )
        self._feed = threading.Thread(target=self._run_feed, name="dashboard-feed", daemon=True)

    def process_request(self, request: simplews.Request) -> Optional[Any]:
        """Serve the page at ``/``, upgrade ``/feed``, answer 404 elsewhere."""
        if request.path_only == "/":
            headers = [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")]
            return 200, headers, PAGE
        if request.path_only == "/feed":
            return None  # go on with the WebSocket handshake (a plain GET gets 426)
        return 404, [("Content-Type", "text/plain; charset=utf-8")], "not found\n"

    def on_open(self, ws: simplews.Connection) -> None:
        """Give a new page the recent readings at once, so its chart is not empty."""
        # a connection is open to broadcasts before this runs: the page gets readings only once
        # its history is sent, and under the lock none is recorded in between (one small send)
        with self._lock:
            ws.send(json.dumps({"history": list(self.history)}))
            self._pages.add(ws)

    def on_close(self, ws: simplews.Connection, code: int, reason: str) -> None:
        """Forget a closed page."""
        with self._lock:
            self._pages.discard(ws)

    def reading(self) -> Dict[str, Any]:
        """A simulated sensor reading: slow waves plus noise."""
        t = time.time()
        return {
            "t": round(t, 3),
            "temperature": round(20 + 4 * math.sin(t / 20) + random.gauss(0, 0.2), 3),
            "humidity": round(55 + 15 * math.sin(t / 45 + 1) + random.gauss(0, 1), 2),
            "clients": len(self.server.connections),
        }

    def _run_feed(self) -> None:
        """Broadcast a reading every ``interval`` seconds until stopped."""
        while not self._stop.wait(self.interval):
            reading = self.reading()
            with self._lock:
                self.history.append(reading)
                pages = list(self._pages)
            self.server.broadcast(json.dumps(reading), connections=pages)

    def serve_forever(self) -> None:
        """Run until Ctrl-C / SIGTERM or :meth:`stop`; then close every client with 1001."""
        self._feed.start()
        try:
            self.server.serve_forever()
        finally:
            self._stop.set()
            self._feed.join()

    def stop(self) -> None:
        """Stop serving (from another thread)."""
        self._stop.set()
        self.server.shutdown()


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between readings (default 0.5)")
    parser.add_argument("--verbose", action="store_true", help="log connections to stderr")
    args = parser.parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    dashboard = Dashboard(args.host, args.port, args.interval)
    print(f"dashboard on {dashboard.server.url.replace('ws', 'http', 1)}", flush=True)
    dashboard.serve_forever()


if __name__ == "__main__":
    main()
