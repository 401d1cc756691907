"""examples/cluster_chat.py as it is: two chat processes on two ports sharing one Redis, and a real browser on each."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any, Iterator, List, Tuple

import pytest
from chromium import Chromium, Page, require_chromium
from example_procs import EXAMPLES, ExampleProcess, example_env, started
from redis_server import RedisServer, free_port

from simplews.testing import ClientFactory

pytestmark = pytest.mark.timeout(120)


def chat_process(redis_server: RedisServer) -> Iterator[Tuple[ExampleProcess, str]]:
    """``python examples/cluster_chat.py --port 0 --redis URL``: the process and its page URL."""
    for example in started("cluster_chat.py", "--port", "0", "--redis", redis_server.url):
        yield example, example.wait_for_line(r"chat page on (http://\S+)").group(1)


@pytest.fixture
def two_chats(redis_server: RedisServer) -> Iterator[List[Tuple[ExampleProcess, str]]]:
    """Two chat processes on two ports, one Redis."""
    first, second = chat_process(redis_server), chat_process(redis_server)
    yield [next(first), next(second)]
    for process in (first, second):
        process.close()


def _until(ws: Any, line: str) -> List[str]:
    """The lines ``ws`` receives up to and including ``line`` (bounded)."""
    got: List[str] = []
    while not got or got[-1] != line:
        got.append(ws.recv(timeout=30))
        assert len(got) < 10, got
    return got


def test_a_line_said_on_one_port_is_heard_on_the_other(two_chats: List[Tuple[ExampleProcess, str]], ws_client: ClientFactory) -> None:
    (one, url_one), (two, url_two) = two_chats
    assert url_one != url_two
    bob = ws_client("ws" + url_two[4:] + "ws")
    bob.send("bob joined")  # back to bob once his server counts him in the room
    assert bob.recv(timeout=30) == "bob joined"
    alice = ws_client("ws" + url_one[4:] + "ws")
    alice.send("alice joined")
    # bob's line may still be on its way to alice's server, and reach her first
    assert _until(alice, "alice joined")[-1:] == ["alice joined"] and bob.recv(timeout=30) == "alice joined"
    bob.send("hi alice")
    assert _until(alice, "hi alice") in (["hi alice"], ["bob joined", "hi alice"]) and bob.recv(timeout=30) == "hi alice"
    alice.send("hi bob")
    assert alice.recv(timeout=30) == "hi bob" and bob.recv(timeout=30) == "hi bob"
    assert one.stop() == 0 and two.stop() == 0


def _type(page: Page, line: str) -> None:
    page.evaluate(f"document.getElementById('text').value = {json.dumps(line)}; document.getElementById('form').requestSubmit(); true")


def _log_has(page: Page, line: str) -> str:
    return f"Array.from(document.querySelectorAll('#log li')).some(li => li.textContent === {json.dumps(line)})"


def test_browser_on_one_port_talks_to_a_browser_on_the_other(two_chats: List[Tuple[ExampleProcess, str]]) -> None:
    executable = require_chromium()
    (_, url_one), (_, url_two) = two_chats
    with Chromium(executable) as browser:
        pages = [browser.open(url_one), browser.open(url_two)]
        for page in pages:
            page.wait_until("document.getElementById('status').textContent === 'connected'")
        # a line typed on each page comes back to it: then each server counts its page in the room
        joins = ["the first page is here", "the second page is here"]
        for page, line in zip(pages, joins):
            _type(page, line)
            page.wait_until(_log_has(page, line))
        for page in pages:  # and both lines went across, so nothing older is still on its way
            for line in joins:
                page.wait_until(_log_has(page, line))
        _type(pages[0], "typed on the first port ☃")
        pages[1].wait_until(_log_has(pages[1], "typed on the first port ☃"))
        _type(pages[1], "answered from the second")
        pages[0].wait_until(_log_has(pages[0], "answered from the second"))
        logs = [page.evaluate("Array.from(document.querySelectorAll('#log li')).map(li => li.textContent)") for page in pages]
        assert logs[0][-2:] == logs[1][-2:] == ["typed on the first port ☃", "answered from the second"], logs


def test_without_redis_it_says_where_it_looked() -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "cluster_chat.py"), "--port", "0", "--redis", url],
        capture_output=True, text=True, timeout=60, env=example_env(),
    )  # fmt: skip
    assert result.returncode == 1, result
    assert "cannot reach Redis at redis://***@127.0.0.1:" in result.stderr and "hunter2" not in result.stderr, result.stderr
