"""HTTP Basic authentication of the opening handshake (RFC 7617)."""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import unicodedata
from typing import Callable, Dict, Iterable, Mapping, Optional, Tuple, Union

from .handshake import Headers, Request, Response

__all__ = ["basic_auth"]

Credentials = Union[Mapping[str, str], Iterable[Tuple[str, str]]]
CheckCredentials = Callable[[str, str], bool]

_REALM_RE = re.compile(r"[ -~]*")  # printable ASCII: what every client shows the same way
_TOKEN68_RE = re.compile(r"[A-Za-z0-9+/]+=*")


def basic_auth(
    realm: str,
    *,
    credentials: Optional[Credentials] = None,
    check_credentials: Optional[CheckCredentials] = None,
) -> Callable[[Request], Optional[Response]]:
    """A ``process_request`` hook that lets in only clients with valid Basic credentials.

    Give exactly one of ``credentials`` (a mapping of user name to password,
    or ``(user, password)`` pairs) and ``check_credentials(user, password)``
    (returns whether they are valid; an exception in it becomes a 500). On
    success the hook sets ``request.username`` and returns ``None``, so the
    upgrade (or the next hook, see :func:`~simplews.chain_hooks`) goes on.
    Otherwise it answers ``401`` with ``WWW-Authenticate: Basic realm="...",
    charset="UTF-8"``, the same answer whether the header was missing or
    malformed, or the user or the password wrong.

    Credentials are read as UTF-8 and normalised to NFC on both sides
    (RFC 7617 section 2.1), so a user may type a composed or decomposed
    ``é``. Passwords from ``credentials`` are compared with
    ``hmac.compare_digest``; an unknown user costs the same comparison,
    against a stand-in. Browsers cannot add headers to a WebSocket: this suits
    non-browser clients (``ws://user:password@host/`` in the URL, or an
    ``Authorization`` header), and browsers only where the page itself was
    authenticated for the same realm. Use it over TLS: Basic sends the
    password in clear.
    """
    if not isinstance(realm, str) or not _REALM_RE.fullmatch(realm):
        raise ValueError("realm must be printable ASCII text")
    if credentials is not None and check_credentials is None:
        check = _checker(credentials)
    elif check_credentials is not None and credentials is None:
        check = check_credentials
    else:
        raise TypeError("give exactly one of credentials or check_credentials")
    quoted = realm.replace("\\", "\\\\").replace('"', '\\"')
    challenge = f'Basic realm="{quoted}", charset="UTF-8"'

    def process_request(request: Request) -> Optional[Response]:
        found = _credentials_of(request.headers)
        if found is not None and check(*found):
            request.username = found[0]
            return None
        headers = Headers([("WWW-Authenticate", challenge), ("Content-Type", "text/plain; charset=utf-8")])
        return Response(401, headers, b"authentication required\n")

    return process_request


def _checker(credentials: Credentials) -> CheckCredentials:
    """``check_credentials`` for a fixed table of users and passwords."""
    pairs = credentials.items() if isinstance(credentials, Mapping) else credentials
    if isinstance(pairs, (str, bytes)):
        raise TypeError("credentials are a mapping of user to password, or (user, password) pairs")
    table: Dict[bytes, bytes] = {}
    for user, password in pairs:
        if not isinstance(user, str) or not isinstance(password, str):
            raise TypeError("user names and passwords are str")
        if ":" in user:
            raise ValueError(f"user name {user!r} contains ':', which Basic credentials cannot carry")
        key = _normalised(user)
        if key in table:
            raise ValueError(f"user {user!r} is given twice")
        table[key] = _normalised(password)
    # compared for an unknown user, so that a wrong name costs what a wrong password does
    stand_in = b"\x00" * max((len(p) for p in table.values()), default=16)

    def check(user: str, password: str) -> bool:
        expected = table.get(_normalised(user))
        matches = hmac.compare_digest(_normalised(password), stand_in if expected is None else expected)
        return matches and expected is not None

    return check


def _normalised(text: str) -> bytes:
    """``text`` in NFC as UTF-8, as credentials are compared."""
    return unicodedata.normalize("NFC", text).encode("utf-8")


def _credentials_of(headers: Headers) -> Optional[Tuple[str, str]]:
    """The user and password of the one ``Authorization: Basic`` header, or ``None``."""
    values = headers.get_all("Authorization")
    if len(values) != 1:
        return None
    scheme, _, token = values[0].partition(" ")
    token = token.strip(" ")
    if scheme.lower() != "basic" or not _TOKEN68_RE.fullmatch(token):
        return None
    try:
        decoded = base64.b64decode(token, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    if not colon or any(unicodedata.category(char) == "Cc" for char in decoded):
        return None  # RFC 7617 section 2: no control characters in either
    return unicodedata.normalize("NFC", user), unicodedata.normalize("NFC", password)
