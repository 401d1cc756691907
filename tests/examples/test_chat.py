"""examples/chat.py as it is: the page over HTTP, the room over WebSocket, and a real browser in it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Iterator, Tuple

import pytest
from chromium import Chromium, require_chromium
from example_procs import ExampleProcess, started

import simplews
from simplews.testing import ClientFactory


@pytest.fixture
def chat() -> Iterator[Tuple[ExampleProcess, str]]:
    """``python examples/chat.py --port 0``; yields the process and its page URL."""
    for example in started("chat.py", "--port", "0"):
        url = example.wait_for_line(r"chat page on (http://\S+)").group(1)
        yield example, url


def _get(url: str) -> Tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers["Content-Type"], exc.read().decode()


def test_page_and_websocket_share_one_port(chat: Tuple[ExampleProcess, str], ws_client: ClientFactory) -> None:
    example, url = chat
    status, content_type, body = _get(url)
    assert status == 200 and content_type.startswith("text/html") and "<title>simplews chat</title>" in body
    assert _get(url + "nothing")[0] == 404
    ws_url = "ws" + url[4:] + "ws"
    # A client's handshake can complete before the server counts it among the broadcast's
    # recipients; the server handles a client's own messages only once it counts it, so a
    # client that got its own message back is in the room. Bob joins after that.
    alice = ws_client(ws_url)
    alice.send("alice joined")
    assert alice.recv(timeout=10) == "alice joined"
    bob = ws_client(ws_url)
    bob.send("bob joined")
    assert bob.recv(timeout=10) == "bob joined"
    assert alice.recv(timeout=10) == "bob joined"
    bob.send("hi all")
    assert alice.recv(timeout=10) == "hi all" and bob.recv(timeout=10) == "hi all"
    alice.send("x" * 5000)  # over the example's line limit: only alice is dropped
    with pytest.raises(simplews.ConnectionClosedError):
        alice.recv(timeout=10)
    assert alice.close_code == 1009
    bob.send("still here")
    assert bob.recv(timeout=10) == "still here"
    assert example.stop() == 0


def _log(page_expression: str) -> str:
    return f"Array.from(document.querySelectorAll('#log li')).map(li => li.textContent){page_expression}"


@pytest.mark.timeout(120)
def test_browser_chats_through_our_server(chat: Tuple[ExampleProcess, str], ws_client: ClientFactory) -> None:
    executable = require_chromium()
    example, url = chat
    python = ws_client("ws" + url[4:] + "ws")
    python.send("python joined")  # back to us once the server counts us in the room
    assert python.recv(timeout=30) == "python joined"
    with Chromium(executable) as browser:
        page = browser.open(url)
        page.wait_until("document.getElementById('status').textContent === 'connected'")

        # the browser types a line and presses Send: it goes through our server to everyone
        page.evaluate(
            "document.getElementById('text').value = 'hello from the browser ☃';"
            "document.getElementById('form').requestSubmit(); true"
        )
        assert python.recv(timeout=30) == "hello from the browser ☃"

        # a message from Python shows up in the page, as text (markup is not interpreted)
        python.send("hello from python <b>not bold</b>")
        expected = ["hello from the browser ☃", "hello from python <b>not bold</b>"]
        page.wait_until(_log(f".join('\\n') === {json.dumps(chr(10).join(expected))}"))
        assert page.evaluate(_log("")) == expected
        assert page.evaluate("document.querySelectorAll('#log b').length") == 0
        assert page.evaluate("document.getElementById('text').value") == ""

        # stopping the server shows in the page as the browser's own close event
        assert example.stop() == 0
        page.wait_until("document.getElementById('status').textContent.startsWith('disconnected')")
        assert page.evaluate("document.getElementById('status').textContent") == "disconnected (1001)"
