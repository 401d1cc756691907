"""simplews.auth without sockets: the 401 challenge, parsing, constant-time comparison."""

from __future__ import annotations

import base64
import hmac
import unicodedata
from typing import Any, List, Optional, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simplews
from simplews import Headers, Request, basic_auth

CHALLENGE = 'Basic realm="chat", charset="UTF-8"'
USERS = {"ann": "s3cret", "bob": "hunter2", "zoë": "pässword"}


def basic(user: str, password: str, scheme: str = "Basic") -> str:
    return f"{scheme} " + base64.b64encode(f"{user}:{password}".encode()).decode()


def attempt(hook: Any, *authorization: str, challenge: str = CHALLENGE) -> Tuple[Optional[int], Request]:
    """The status answered (``None``: let in) and the request the hook saw."""
    req = Request("/", Headers([("Host", "x")] + [("Authorization", value) for value in authorization]))
    response = hook(req)
    if response is None:
        return None, req
    assert response.headers.get_all("WWW-Authenticate") == [challenge]
    assert req.username is None
    return response.status, req


@pytest.fixture(params=["mapping", "pairs", "callback"])
def hook(request: pytest.FixtureRequest) -> Any:
    if request.param == "mapping":
        return basic_auth("chat", credentials=USERS)
    if request.param == "pairs":
        return basic_auth("chat", credentials=list(USERS.items()))
    return basic_auth("chat", check_credentials=lambda user, password: USERS.get(user) == password)


def test_good_credentials_set_the_username(hook: Any) -> None:
    for user, password in USERS.items():
        status, req = attempt(hook, basic(user, password))
        assert status is None and req.username == user


def test_scheme_is_case_insensitive(hook: Any) -> None:
    for scheme in ["basic", "BASIC", "bAsIc"]:
        assert attempt(hook, basic("ann", "s3cret", scheme))[0] is None


@pytest.mark.parametrize(
    "authorization",
    [
        [],
        [basic("ann", "wrong")],
        [basic("nobody", "s3cret")],
        [basic("ann", "s3cret "), ],
        [basic("Ann", "s3cret")],  # user names are case-sensitive
        [basic("ann", "s3cret", "Bearer")],
        ["Basic"],
        ["Basic "],
        ["Basic !!!!"],
        ["Basic YW5uOnMzY3JldA"],  # unpadded base64
        ["Basic " + base64.b64encode(b"ann").decode()],  # no colon
        ["Basic " + base64.b64encode(b"ann:\xffpw").decode()],  # not UTF-8
        ["Basic " + base64.b64encode(b"ann:s3c\x00ret").decode()],  # control character
        ["Basic " + base64.b64encode(b"ann:s3cret").decode() + " extra"],
        ["BasicYW5uOnMzY3JldA=="],
        [basic("ann", "s3cret"), basic("ann", "s3cret")],  # two Authorization headers
    ],
)
def test_anything_else_gets_the_same_401(hook: Any, authorization: List[str]) -> None:
    status, _ = attempt(hook, *authorization)
    assert status == 401


def test_401_answer() -> None:
    response = basic_auth("chat", credentials=USERS)(Request("/", Headers()))
    assert response is not None and response.status == 401
    assert response.headers["WWW-Authenticate"] == CHALLENGE
    assert response.headers["Content-Type"].startswith("text/plain") and response.body == b"authentication required\n"


def test_realm_is_quoted() -> None:
    response = basic_auth('say "hi" \\ bye', credentials=USERS)(Request("/", Headers()))
    assert response is not None and response.headers["WWW-Authenticate"] == 'Basic realm="say \\"hi\\" \\\\ bye", charset="UTF-8"'


def test_password_may_contain_colons_and_unicode_is_normalised() -> None:
    hook = basic_auth("chat", credentials={"é-user": "a:b:c", "ann": "café"})
    assert attempt(hook, basic("é-user", "a:b:c"))[0] is None
    decomposed_user, decomposed_password = unicodedata.normalize("NFD", "é-user"), unicodedata.normalize("NFD", "café")
    assert decomposed_password != "café"
    status, req = attempt(hook, basic("ann", decomposed_password))
    assert status is None and req.username == "ann"
    status, req = attempt(hook, basic(decomposed_user, "a:b:c"))
    assert status is None and req.username == "é-user"  # NFC, as the table has it


def test_check_credentials_gets_user_and_password() -> None:
    calls: List[Tuple[str, str]] = []

    def check(user: str, password: str) -> bool:
        calls.append((user, password))
        return password == "ok"

    hook = basic_auth("chat", check_credentials=check)
    assert attempt(hook, basic("x y", "ok"))[0] is None
    assert attempt(hook, basic("", "nope"))[0] == 401
    assert attempt(hook)[0] == 401  # not called without credentials
    assert calls == [("x y", "ok"), ("", "nope")]


def test_check_credentials_exception_propagates() -> None:
    def check(user: str, password: str) -> bool:
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError):
        basic_auth("chat", check_credentials=check)(Request("/", Headers([("Authorization", basic("a", "b"))])))


def test_compare_digest_is_used_for_known_and_unknown_users(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: List[Tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def counting(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    hook = basic_auth("chat", credentials=USERS)
    cases = [("ann", "s3cret", None), ("ann", "wrong", 401), ("nobody", "s3cret", 401), ("zoë", "pässword", None)]
    for user, password, expected in cases:
        calls.clear()
        assert attempt(hook, basic(user, password))[0] == expected
        assert len(calls) == 1, (user, password)  # one comparison whichever was wrong
        assert calls[0][0] == password.encode()
    # an unknown user is compared against a stand-in, never against another user's password
    calls.clear()
    attempt(hook, basic("nobody", "hunter2"))
    assert calls[0][1] not in {p.encode() for p in USERS.values()}


def test_configuration_errors() -> None:
    with pytest.raises(TypeError):
        basic_auth("chat")
    with pytest.raises(TypeError):
        basic_auth("chat", credentials=USERS, check_credentials=lambda u, p: True)
    with pytest.raises(ValueError):
        basic_auth("chat", credentials=[("ann", "1"), ("ann", "2")])
    with pytest.raises(ValueError):
        basic_auth("chat", credentials={"a:b": "c"})
    with pytest.raises(TypeError):
        basic_auth("chat", credentials="ann:s3cret")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        basic_auth("chat", credentials={"ann": b"bytes"})  # type: ignore[dict-item]
    for realm in ["line\r\nbreak", "naïve", "\x7f"]:
        with pytest.raises(ValueError):
            basic_auth(realm, credentials=USERS)


def test_exported() -> None:
    assert simplews.basic_auth is basic_auth and "basic_auth" in simplews.__all__


credential_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20)


@settings(max_examples=150, deadline=None)
@given(user=credential_text.filter(lambda u: ":" not in u), password=credential_text, guess=credential_text)
def test_only_the_right_password_gets_in(user: str, password: str, guess: str) -> None:
    hook = basic_auth("r", credentials={user: password})
    status, req = attempt(hook, basic(user, guess), challenge='Basic realm="r", charset="UTF-8"')
    same = unicodedata.normalize("NFC", guess) == unicodedata.normalize("NFC", password)
    assert (status is None) == same
    if same:
        assert req.username == unicodedata.normalize("NFC", user)


@settings(max_examples=200, deadline=None)
@given(header=st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF)))
def test_no_header_value_makes_the_hook_raise(header: str) -> None:
    hook = basic_auth("r", credentials={"a": "b"})
    response = hook(Request("/", Headers([("Authorization", header)])))
    assert response is None or response.status == 401

