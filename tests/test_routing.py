"""simplews.routing without sockets: patterns, decoding, trailing slashes, first match, 400 and 404."""

from __future__ import annotations

import re
from typing import Any, Dict, List
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simplews
from simplews import Headers, Request, Router


def request(path: str) -> Request:
    return Request(path, Headers([("Host", "example")]))


def routed(router: Router, path: str) -> Any:
    """``(status, None, {})`` for an answered request, else ``(None, route, params)``."""
    req = request(path)
    response = router.process_request(req)
    if response is not None:
        assert req.route is None and req.path_params == {}
        return response.status, None, {}
    return None, req.route, req.path_params


@pytest.fixture
def router() -> Router:
    r = Router()
    r.route("/", "root")
    r.route("/chat", "chat")
    r.route("/chat/", "chat-slash")
    r.route("/rooms/{room}", "room")
    r.route("/rooms/{room}/users/{user}", "user")
    r.route("/files/{rest:path}", "files")
    return r


@pytest.mark.parametrize(
    "path, route, params",
    [
        ("/", "/", {}),
        ("/chat", "/chat", {}),
        ("/chat/", "/chat/", {}),
        ("/chat?token=1&x", "/chat", {}),
        ("/rooms/lobby", "/rooms/{room}", {"room": "lobby"}),
        ("/rooms/caf%C3%A9", "/rooms/{room}", {"room": "café"}),
        ("/rooms/a%2Fb", "/rooms/{room}", {"room": "a/b"}),  # %2F never splits a segment
        ("/rooms/a%20b/users/%E2%98%83", "/rooms/{room}/users/{user}", {"room": "a b", "user": "☃"}),
        ("/files/a", "/files/{rest:path}", {"rest": "a"}),
        ("/files/a/b/c.txt", "/files/{rest:path}", {"rest": "a/b/c.txt"}),
        ("/files/a%2Fb/c", "/files/{rest:path}", {"rest": "a/b/c"}),
        ("ws://example/chat", "/chat", {}),  # absolute-form request target
        ("http://example", "/", {}),
    ],
)
def test_matches(router: Router, path: str, route: str, params: Dict[str, str]) -> None:
    assert routed(router, path) == (None, route, params)


@pytest.mark.parametrize(
    "path",
    [
        "/nope",
        "/chat//",
        "/rooms",
        "/rooms/",  # {room} never matches an empty segment
        "/rooms/a/",  # trailing slashes are exact
        "/rooms//users/x",
        "/rooms/a/users",
        "/files",
        "/files/",  # {rest:path} is never empty...
        "/files//etc/passwd",  # ...and never starts with '/'
        "/files/a//b",
        "/files/a/",
        "//chat",
        "/CHAT",  # paths are case-sensitive
    ],
)
def test_not_found(router: Router, path: str) -> None:
    assert routed(router, path) == (404, None, {})


@pytest.mark.parametrize(
    "path",
    [
        "/rooms/%zz",
        "/rooms/%4",
        "/rooms/100%",
        "/rooms/%C3",  # not UTF-8
        "/rooms/%ff",
        "/rooms/%00",
        "/rooms/..",
        "/rooms/.",
        "/rooms/%2e%2E",
        "/rooms/..%2Fetc",
        "/rooms/a%2F..%2Fb",
        "/files/a/../../etc/passwd",
        "/files/%2e%2e/x",
        "/./chat",
        "*",
        "chat",
        "ws:/chat",
    ],
)
def test_bad_paths_get_400_never_an_exception(router: Router, path: str) -> None:
    assert routed(router, path) == (400, None, {})


def test_answers_are_plain_text(router: Router) -> None:
    for path, status in [("/nope", 404), ("/rooms/%zz", 400)]:
        response = router.process_request(request(path))
        assert response is not None and response.status == status
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8" and response.body.endswith(b"\n")


def test_a_route_without_trailing_slash_does_not_match_with_one() -> None:
    r = Router({"/chat": "chat"})
    assert routed(r, "/chat")[1] == "/chat"
    assert routed(r, "/chat/")[0] == 404
    r = Router({"/chat/": "chat"})
    assert routed(r, "/chat/")[1] == "/chat/"
    assert routed(r, "/chat")[0] == 404


def test_first_declared_match_wins() -> None:
    r = Router()
    r.route("/users/me", "me")
    r.route("/users/{id}", "anyone")
    r.route("/{a}/{b}", "pair")
    r.route("/{rest:path}", "fallback")
    assert [routed(r, p)[1] for p in ["/users/me", "/users/7", "/x/y", "/x/y/z", "/x"]] == [
        "/users/me", "/users/{id}", "/{a}/{b}", "/{rest:path}", "/{rest:path}",
    ]  # fmt: skip
    assert r.patterns == ["/users/me", "/users/{id}", "/{a}/{b}", "/{rest:path}"]


@pytest.mark.parametrize(
    "first, second",
    [
        ("/chat", "/chat"),
        ("/users/{id}", "/users/{name}"),
        ("/users/{id}", "/users/me"),
        ("/{rest:path}", "/anything/{x}"),
        ("/{rest:path}", "/a/{b:path}"),
        ("/files/{p:path}", "/files/{q:path}"),
        ("/{a}/{b}", "/x/y"),
    ],
)
def test_unreachable_routes_are_refused_when_declared(first: str, second: str) -> None:
    r = Router({first: 1})
    with pytest.raises(ValueError, match="unreachable"):
        r.route(second, 2)
    assert r.patterns == [first]


@pytest.mark.parametrize(
    "first, second",
    [
        ("/users/me", "/users/{id}"),
        ("/chat", "/chat/"),
        ("/{a}", "/"),  # {a} never matches the empty segment of "/"
        ("/{rest:path}", "/"),
        ("/{rest:path}", "/a/"),  # ...nor does {rest:path} match a trailing slash
        ("/a/{b}", "/a/{b}/c"),
        ("/a/{b}/c", "/a/{b:path}"),
    ],
)
def test_routes_that_stay_reachable_are_accepted(first: str, second: str) -> None:
    r = Router()
    r.route(first, 1)
    r.route(second, 2)
    assert r.patterns == [first, second]


@pytest.mark.parametrize(
    "pattern",
    ["", "chat", "/file-{id}", "/{id}.json", "/{a}/{a}", "/{p:path}/x", "/{n:int}", "/{1x}", "/{}", "/a/..", "/a?x=1", "/a#b", "/{a"],
)
def test_malformed_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(ValueError):
        Router().route(pattern, "h")


def test_decorator_and_constructor_keep_the_handler_as_given() -> None:
    r = Router({"/a": {"on_message": print}})

    @r.route("/b/{x}")
    def handler_b(ws: Any) -> None:
        pass

    @r.route("/c")
    class PerConnection:
        def on_open(self, ws: Any) -> None:
            pass

    assert handler_b.__name__ == "handler_b" and PerConnection.__name__ == "PerConnection"
    for path, expected in [("/a", {"on_message": print}), ("/b/1", handler_b), ("/c", PerConnection)]:
        req = request(path)
        assert r.process_request(req) is None
        assert r.handler_for(req) == expected


def test_handler_for_matches_when_process_request_did_not_run() -> None:
    r = Router({"/u/{id}": "user"})
    req = request("/u/42")
    assert r.handler_for(req) == "user"
    assert (req.route, req.path_params) == ("/u/{id}", {"id": "42"})
    for path in ["/nope", "/u/%zz"]:
        with pytest.raises(LookupError):
            r.handler_for(request(path))


def test_request_fields_default_empty() -> None:
    req = request("/")
    assert (req.path_params, req.route, req.username) == ({}, None, None)
    assert request("/").path_params is not req.path_params  # not one shared dict
    assert "path_params={}" in repr(req)


def test_exported() -> None:
    assert simplews.Router is Router and "Router" in simplews.__all__


# --- properties ------------------------------------------------------------------------

segment_text = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), min_size=1).filter(
    lambda s: not any(part in (".", "..") for part in s.split("/"))
)
#: characters a client may leave unencoded in a path segment (RFC 3986 pchar minus '%')
safe_sets = st.sets(st.sampled_from(list("-._~!$&'()*+,;=:@"))).map("".join)


@settings(max_examples=150, deadline=None)
@given(value=segment_text, safe=safe_sets)
def test_any_encoding_of_a_segment_decodes_to_it(value: str, safe: str) -> None:
    r = Router({"/rooms/{room}": "room"})
    encoded = quote(value, safe=safe)
    assert routed(r, f"/rooms/{encoded}") == (None, "/rooms/{room}", {"room": value})
    lower_hex = re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), encoded)
    assert routed(r, f"/rooms/{lower_hex}?q=%zz")[2] == {"room": value}  # hex case and the query do not matter


@settings(max_examples=100, deadline=None)
@given(values=st.lists(segment_text.filter(lambda s: "/" not in s), min_size=1, max_size=6))
def test_path_parameter_is_the_decoded_rest(values: List[str]) -> None:
    r = Router({"/files/{rest:path}": "files"})
    path = "/files/" + "/".join(quote(v, safe="") for v in values)
    assert routed(r, path) == (None, "/files/{rest:path}", {"rest": "/".join(values)})


@settings(max_examples=250, deadline=None)
@given(path=st.text(st.characters(min_codepoint=0, max_codepoint=0x7F)) | st.from_regex(r"/[a-z%0-9./{}]*", fullmatch=True))
def test_no_path_makes_the_router_raise(path: str) -> None:
    r = Router({"/": 0, "/a/{b}": 1, "/{x}/{rest:path}": 2})
    status, route, params = routed(r, path)
    assert status in (None, 400, 404)
    if status is None:
        assert route in r.patterns
        for value in params.values():
            assert value and "\x00" not in value
            assert not any(part in (".", "..") for part in value.split("/"))

