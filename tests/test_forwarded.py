"""simplews.forwarded without sockets: the PROXY v1 line, X-Forwarded-For and Forwarded."""

from __future__ import annotations

import ipaddress
from typing import Any, List, Optional, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simplews import Headers, InvalidHandshake
from simplews.forwarded import PROXY_V1_MAX, TrustedProxies, client_address, parse_proxy_v1

# --- PROXY protocol v1 -------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, source",
    [
        (b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n", ("192.0.2.1", 56324)),
        (b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n", ("255.255.255.255", 65535)),
        (b"PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n", ("0.0.0.0", 0)),
        (b"PROXY TCP6 2001:db8::1 2001:db8::2 4711 443\r\n", ("2001:db8::1", 4711)),
        (b"PROXY TCP6 2001:0DB8:0000:0000:0000:0000:0000:0001 ::1 1 2\r\n", ("2001:db8::1", 1)),  # normalised
        (b"PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n", ("::ffff:c000:201", 1)),
        (b"PROXY UNKNOWN\r\n", None),
        (b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n", None),  # the rest is ignored
        (b"PROXY UNKNOWN \xff\xfe anything\r\n", None),
    ],
)
def test_proxy_v1_valid_lines(line: bytes, source: Optional[Tuple[str, int]]) -> None:
    data = line + b"GET / HTTP/1.1\r\n"
    assert parse_proxy_v1(data) == (source, len(line))
    assert parse_proxy_v1(bytearray(data)) == (source, len(line))


def test_proxy_v1_longest_line_is_accepted_and_one_more_byte_is_not() -> None:
    address = "ffff:" * 7 + "ffff"
    longest = f"PROXY TCP6 {address} {address} 65535 65535\r\n".encode()
    assert len(longest) == 104
    unknown = b"PROXY UNKNOWN " + b"x" * (PROXY_V1_MAX - 16) + b"\r\n"
    assert len(unknown) == PROXY_V1_MAX and parse_proxy_v1(unknown) == (None, PROXY_V1_MAX)
    too_long = b"PROXY UNKNOWN " + b"x" * (PROXY_V1_MAX - 15) + b"\r\n"
    with pytest.raises(InvalidHandshake, match="longer"):
        parse_proxy_v1(too_long)
    assert parse_proxy_v1(longest) == (("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535), 104)


def test_proxy_v1_needs_more_bytes_until_crlf() -> None:
    line = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"
    for cut in range(len(line)):
        assert parse_proxy_v1(line[:cut]) is None, line[:cut]
    assert parse_proxy_v1(line) == (("192.0.2.1", 56324), len(line))
    assert parse_proxy_v1(b"PROXY UNKNOWN " + b"x" * 90) is None
    with pytest.raises(InvalidHandshake):
        parse_proxy_v1(b"PROXY UNKNOWN " + b"x" * 93)  # 107 bytes and no CRLF


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\n",
        b"G",  # refused at once: it cannot begin a PROXY line
        b"proxy TCP4 1.2.3.4 1.2.3.4 1 2\r\n",
        b"PROXY\r\n",
        b"PROXY \r\n",
        b"PROXY TCP4\r\n",
        b"PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n",
        b"PROXY UDP4 1.2.3.4 1.2.3.4 1 2\r\n",
        b"PROXY UNKNOWNX\r\n",
        b"PROXY  TCP4 1.2.3.4 1.2.3.4 1 2\r\n",  # two spaces
        b"PROXY TCP4 1.2.3.4  1.2.3.4 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2 \r\n",
        b"PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n",
        b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2 3\r\n",
        b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n",  # LF alone
        b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\rX\n",
        b"PROXY TCP4\t1.2.3.4 1.2.3.4 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\x00\r\n",
        b"PROXY TCP4 1.2.3 1.2.3.4 1 2\r\n",
        b"PROXY TCP4 1.2.3.256 1.2.3.4 1 2\r\n",
        b"PROXY TCP4 01.2.3.4 1.2.3.4 1 2\r\n",  # leading zero
        b"PROXY TCP4 ::1 1.2.3.4 1 2\r\n",  # wrong family
        b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
        b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",  # zone
        b"PROXY TCP6 [::1] ::1 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n",
        b"PROXY TCP4 1.2.3.4 1.2.3.4 1 -2\r\n",
        b"PROXY TCP4 1.2.3.4 1.2.3.4 +1 2\r\n",
        b"PROXY TCP4 1.2.3.4 1.2.3.4 080 2\r\n",  # leading zero
        b"PROXY TCP4 1.2.3.4 1.2.3.4 1 123456\r\n",
        b"PROXY TCP4 1.2.3.4 1.2.3.4 \xd9\xa1 2\r\n",  # not ASCII (an Arabic-Indic digit)
        b"PROXY TCP4 1.2.3.4 1.2.3.4 \xd9\xa1",
    ],
)
def test_proxy_v1_malformed_lines_raise_400(data: bytes) -> None:
    with pytest.raises(InvalidHandshake) as info:
        parse_proxy_v1(data)
    assert info.value.status == 400


def test_proxy_v2_is_named() -> None:
    v2 = b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c" + bytes(12)
    for cut in (1, 5, len(v2)):
        with pytest.raises(InvalidHandshake, match="version 2"):
            parse_proxy_v1(v2[:cut])


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=120) | st.builds(lambda tail: b"PROXY " + tail, st.binary(max_size=110)))
def test_proxy_v1_never_fails_otherwise(data: bytes) -> None:
    try:
        result = parse_proxy_v1(data)
    except InvalidHandshake as exc:
        assert exc.status == 400
        return
    if result is not None:
        source, length = result
        assert data[length - 2 : length] == b"\r\n" and length <= PROXY_V1_MAX
        assert b"\r\n" not in data[: length - 2]


@settings(max_examples=200, deadline=None)
@given(ip=st.ip_addresses(), other=st.ip_addresses(), sport=st.integers(0, 65535), dport=st.integers(0, 65535))
def test_proxy_v1_round_trips_every_address(ip: Any, other: Any, sport: int, dport: int) -> None:
    family = "TCP4" if ip.version == 4 else "TCP6"
    if other.version != ip.version:
        other = ip
    line = f"PROXY {family} {ip} {other} {sport} {dport}\r\n".encode()
    assert parse_proxy_v1(line + b"rest") == ((str(ip), sport), len(line))


# --- trusted proxies ---------------------------------------------------------------------


def test_trusted_proxies_entries() -> None:
    trusted = TrustedProxies(["127.0.0.1", "10.0.0.0/8", "fd00::/8", "unix"])
    for address in ["127.0.0.1", "10.200.3.4", "fd12::1", "::ffff:10.0.0.1"]:
        assert ipaddress.ip_address(address) in trusted, address
    for address in ["127.0.0.2", "11.0.0.1", "fe80::1", "::1"]:
        assert ipaddress.ip_address(address) not in trusted, address
    assert "127.0.0.1" not in trusted  # addresses, not strings
    assert trusted.unix
    with pytest.raises(ValueError):
        TrustedProxies(["10.0.0.0/33"])
    with pytest.raises(ValueError):
        TrustedProxies(["localhost"])
    with pytest.raises(TypeError):
        TrustedProxies("127.0.0.1")


# --- X-Forwarded-For ---------------------------------------------------------------------

PROXY = ("10.0.0.5", 41000)
TRUSTED = ["127.0.0.1", "10.0.0.0/8"]


def xff(*values: str, peer: Any = PROXY, trusted: Any = TRUSTED) -> Any:
    return client_address(peer, Headers([("X-Forwarded-For", v) for v in values]), trusted)


@pytest.mark.parametrize(
    "values, expected",
    [
        ([], PROXY),  # a trusted proxy that says nothing
        (["203.0.113.7"], ("203.0.113.7", 0)),
        (["203.0.113.7, 10.1.1.1"], ("203.0.113.7", 0)),  # trusted hops are skipped
        (["6.6.6.6, 203.0.113.7"], ("203.0.113.7", 0)),  # what the client wrote itself is never reached
        (["6.6.6.6", "203.0.113.7"], ("203.0.113.7", 0)),  # repeated lines are one list
        (["6.6.6.6,203.0.113.7 ,\t10.0.0.9"], ("203.0.113.7", 0)),
        (["10.0.0.8, 10.0.0.9"], ("10.0.0.8", 0)),  # all trusted: the leftmost
        (["2001:db8::7"], ("2001:db8::7", 0)),
        (["[2001:db8::7]:4711"], ("2001:db8::7", 4711)),
        (["203.0.113.7:4711"], ("203.0.113.7", 4711)),
        (["::ffff:203.0.113.7"], ("203.0.113.7", 0)),
        (["::ffff:10.0.0.1, 10.0.0.2"], ("10.0.0.1", 0)),
        (["203.0.113.7, unknown"], PROXY),  # walking stops at an entry that is not an address
        (["203.0.113.7, garbage, 10.0.0.9"], ("10.0.0.9", 0)),
        (["203.0.113.7,, 10.0.0.9"], ("10.0.0.9", 0)),
        ([""], PROXY),
        (["203.0.113.7, fe80::1%eth0"], PROXY),
        (["203.0.113.7:99999"], PROXY),
        (["[2001:db8::7"], PROXY),
        (["[2001:db8::7]x"], PROXY),
        (["[203.0.113.7]"], PROXY),
        (["203.0.113.07"], PROXY),
    ],
)
def test_x_forwarded_for_from_a_trusted_peer(values: List[str], expected: Any) -> None:
    assert xff(*values) == expected


def test_x_forwarded_for_from_anyone_else_is_ignored() -> None:
    assert xff("203.0.113.7", peer=("198.51.100.1", 5000)) == ("198.51.100.1", 5000)
    assert xff("203.0.113.7", peer=("::1", 5000, 0, 0)) == ("::1", 5000, 0, 0)
    assert xff("203.0.113.7", trusted=[]) == PROXY
    assert xff("203.0.113.7", peer=None) is None  # a Unix-socket peer, not trusted by default
    assert xff("203.0.113.7", peer=None, trusted=["unix"]) == ("203.0.113.7", 0)
    assert xff("203.0.113.7", peer=("not-an-ip", 1)) == ("not-an-ip", 1)


def test_ipv4_mapped_peer_and_precompiled_trust() -> None:
    trusted = TrustedProxies(TRUSTED)
    assert xff("203.0.113.7", peer=("::ffff:127.0.0.1", 5000, 0, 0), trusted=trusted) == ("203.0.113.7", 0)


def test_unknown_header_name_is_refused() -> None:
    with pytest.raises(ValueError):
        client_address(PROXY, Headers([("X-Real-IP", "1.2.3.4")]), TRUSTED, header="X-Real-IP")


# --- Forwarded (RFC 7239) ----------------------------------------------------------------


def fwd(*values: str) -> Any:
    return client_address(PROXY, Headers([("Forwarded", v) for v in values]), TRUSTED, header="Forwarded")


@pytest.mark.parametrize(
    "values, expected",
    [
        (["for=203.0.113.7"], ("203.0.113.7", 0)),
        (["For=203.0.113.7;proto=https;by=10.0.0.5"], ("203.0.113.7", 0)),
        (['for="203.0.113.7:4711"'], ("203.0.113.7", 4711)),
        (['for="[2001:db8:cafe::17]:4711"'], ("2001:db8:cafe::17", 4711)),
        (['for="[2001:db8:cafe::17]"'], ("2001:db8:cafe::17", 0)),
        (['for="203.0.113.7:_obf"'], ("203.0.113.7", 0)),
        (["for=6.6.6.6, for=203.0.113.7"], ("203.0.113.7", 0)),
        (["for=6.6.6.6", "for=203.0.113.7;proto=http"], ("203.0.113.7", 0)),
        (["for=203.0.113.7, for=10.0.0.9"], ("203.0.113.7", 0)),
        (['for=203.0.113.7;host="a,b;c", for=10.0.0.9'], ("203.0.113.7", 0)),  # separators inside quotes
        (['proto=https;for="\\203.0.113.7"'], ("203.0.113.7", 0)),  # a quoted-pair
        (["for=203.0.113.7, for=unknown"], PROXY),
        (["for=203.0.113.7, for=_hidden"], PROXY),
        (["for=203.0.113.7, proto=https"], PROXY),  # an element without for=
        (["for=203.0.113.7, for=10.0.0.9;for=10.0.0.8"], PROXY),  # two for= in one element
        (["for=203.0.113.7:4711"], PROXY),  # ':' must be quoted: the value does not parse
        (["for=2001:db8::1"], PROXY),
        (['for="203.0.113.7'], PROXY),
        (["for=203.0.113.7 x"], PROXY),
        (["for"], PROXY),
        ([""], PROXY),
        (["for=203.0.113.7;"], ("203.0.113.7", 0)),
        ([";for=203.0.113.7,"], PROXY),  # the empty last element has no for=
    ],
)
def test_forwarded_header(values: List[str], expected: Any) -> None:
    assert fwd(*values) == expected


def test_only_the_chosen_header_is_read() -> None:
    headers = Headers([("X-Forwarded-For", "203.0.113.7"), ("Forwarded", "for=6.6.6.6")])
    assert client_address(PROXY, headers, TRUSTED) == ("203.0.113.7", 0)
    assert client_address(PROXY, headers, TRUSTED, header="Forwarded") == ("6.6.6.6", 0)
    assert client_address(PROXY, Headers([("Forwarded", "for=6.6.6.6")]), TRUSTED) == PROXY


@settings(max_examples=300, deadline=None)
@given(
    value=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60),
    header=st.sampled_from(["X-Forwarded-For", "Forwarded"]),
)
def test_no_header_value_makes_it_raise(value: str, header: str) -> None:
    answer = client_address(PROXY, Headers([(header, value)]), TRUSTED, header=header)
    if answer != PROXY:
        assert str(ipaddress.ip_address(answer[0])) == answer[0] and 0 <= answer[1] <= 65535
