"""simplews.origins: exact origins, one-label wildcards, whole-value regexes, and a missing Origin."""

from __future__ import annotations

import ipaddress
import re
from typing import Any, List

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simplews.origins import OriginPolicy


@pytest.mark.parametrize(
    "origin, allowed",
    [
        ("https://app.example.com", True),
        ("HTTPS://APP.EXAMPLE.COM", True),  # scheme and host are case-insensitive
        ("https://app.example.com:443", True),  # the default port
        ("https://app.example.com:8443", False),  # ports are exact
        ("http://app.example.com", False),
        ("http://app.example.com:443", False),
        ("https://app.example.com.", False),  # a trailing dot is another host
        ("https://app.example.com/", False),  # an Origin has no path
        ("https://user@app.example.com", False),
        ("https://app.example.com:", False),
        ("https://app.example.com:99999", False),
        ("https://app.example.comx", False),
        ("https://xapp.example.com", False),
        ("https://app.example.com.evil.net", False),
        (" https://app.example.com", False),
        ("http://localhost:8000", True),
        ("http://LOCALHOST:8000", True),
        ("http://localhost", False),
        ("http://[::1]:8000", True),
        ("http://[0:0:0:0:0:0:0:1]:8000", True),  # the same IPv6 address
        ("http://[::2]:8000", False),
        ("http://[::1:8000", False),
    ],
)
def test_exact_origins(origin: str, allowed: bool) -> None:
    policy = OriginPolicy(["https://app.example.com", "http://localhost:8000", "http://[::1]:8000"])
    assert policy.allows(origin) is allowed


def test_default_ports_are_filled_in_on_both_sides() -> None:
    policy = OriginPolicy(["https://a.com:443", "http://b.com:80", "wss://c.com", "ws://d.com:80"])
    for origin in ["https://a.com", "https://a.com:443", "http://b.com", "wss://c.com:443", "ws://d.com"]:
        assert policy.allows(origin), origin
    assert not policy.allows("https://b.com") and not policy.allows("http://a.com")


def test_other_schemes_compare_their_port_as_given() -> None:
    policy = OriginPolicy(["chrome-extension://abcdefghij"])
    assert policy.allows("chrome-extension://abcdefghij") and policy.allows("CHROME-EXTENSION://ABCDEFGHIJ")
    assert not policy.allows("chrome-extension://abcdefghij:1")


@pytest.mark.parametrize(
    "origin, allowed",
    [
        ("https://app.example.com", True),
        ("https://APP.Example.COM", True),
        ("https://a-1.example.com:443", True),
        ("https://example.com", False),  # the apex is not included
        ("https://a.b.example.com", False),  # exactly one label
        ("https://.example.com", False),
        ("https://-a.example.com", False),
        ("https://a-.example.com", False),
        ("https://app.example.com:8443", False),  # the port must match
        ("http://app.example.com", False),  # and the scheme
        ("https://app.example.com.evil.net", False),
        ("https://appexample.com", False),
        ("https://app.example.co", False),
        ("https://" + "a" * 64 + ".example.com", False),  # longer than a DNS label
        ("https://" + "a" * 63 + ".example.com", True),
        ("https://*.example.com", False),  # a literal '*' is not a label
    ],
)
def test_wildcard_is_exactly_one_label(origin: str, allowed: bool) -> None:
    assert OriginPolicy(["https://*.example.com"]).allows(origin) is allowed


def test_wildcard_with_port() -> None:
    policy = OriginPolicy(["https://*.example.com:8443", "http://*.dev.test"])
    assert policy.allows("https://a.example.com:8443") and not policy.allows("https://a.example.com")
    assert policy.allows("http://x.dev.test:80") and not policy.allows("http://x.dev.test:8080")


def test_wildcard_never_matches_an_ip_address() -> None:
    policy = OriginPolicy(["http://*.0.0.1"])
    assert not policy.allows("http://127.0.0.1")


def test_regex_matches_the_whole_origin() -> None:
    policy = OriginPolicy([re.compile(r"https://(app|admin)\.example\.com"), re.compile(r"http://localhost:\d+")])
    assert policy.allows("https://app.example.com") and policy.allows("https://admin.example.com")
    assert policy.allows("http://localhost:3000")
    for origin in ["https://app.example.com.evil.net", "xhttps://app.example.com", "https://app.example.com:443",
                   "http://localhost:3000/", "http://localhost:"]:  # fmt: skip
        assert not policy.allows(origin), origin
    # searched as the regex's author wrote it: unanchored, yet anchored by fullmatch
    assert not OriginPolicy([re.compile(r"example\.com")]).allows("https://example.com")


def test_missing_origin_is_refused_unless_none_is_listed() -> None:
    assert not OriginPolicy(["https://app.example.com"]).allows(None)
    assert not OriginPolicy([]).allows(None)
    assert OriginPolicy(["https://app.example.com", None]).allows(None)
    assert OriginPolicy([None]).allows(None) and not OriginPolicy([None]).allows("https://app.example.com")


@pytest.mark.parametrize("origin", ["null", "garbage", "", "file://", "https://", "https://a b.com", "https://a.com\r\n", "\u00e9"])
def test_malformed_origins_are_refused(origin: str) -> None:
    policy = OriginPolicy(["https://a.com", "https://*.a.com", None, re.compile(r"https://[a-z]+\.com")])
    assert not policy.allows(origin)


def test_literal_entries_match_exactly() -> None:
    policy = OriginPolicy(["null"])
    assert policy.allows("null") and not policy.allows("NULL") and not policy.allows("https://null")


@pytest.mark.parametrize(
    "spec",
    ["https://app.example.com/", "https://app.example.com/path", "https://u@app.example.com", "https://a.com?x",
     "https://a.com:99999", "https://a.com:", "https://*", "https://a.*.com", "https://*a.example.com",
     "https://*.*.example.com", "https://*.", "https://app..com", "https://bücher.de", "https://*.[::1]", "://a.com"],
)  # fmt: skip
def test_entries_that_are_not_origins_are_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        OriginPolicy([spec])


@pytest.mark.parametrize("origins", ["https://a.com", b"https://a.com", [b"https://a.com"], [re.compile(rb"x")], [42]])
def test_wrong_types_are_refused(origins: Any) -> None:
    with pytest.raises(TypeError):
        OriginPolicy(origins)


# --- properties ------------------------------------------------------------------------

alnum = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=6)
label = st.tuples(alnum, st.none() | alnum).map(lambda parts: parts[0] if parts[1] is None else "-".join(parts))
hosts = st.lists(label, min_size=1, max_size=4).map(".".join)
schemes = st.sampled_from(["http", "https", "ws", "wss"])
ports = st.none() | st.integers(0, 65535)


def origin_of(scheme: str, host: str, port: Any) -> str:
    return f"{scheme}://{host}" + ("" if port is None else f":{port}")


def _is_ipv4(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


def effective_port(scheme: str, port: Any) -> int:
    return port if port is not None else (443 if scheme in ("https", "wss") else 80)


@settings(max_examples=100, deadline=None)
@given(scheme=schemes, host=hosts, port=ports, other_scheme=schemes, other_host=hosts, other_port=ports, upper=st.booleans())
def test_exact_matching_is_equality_of_normalised_origins(
    scheme: str, host: str, port: Any, other_scheme: str, other_host: str, other_port: Any, upper: bool
) -> None:
    policy = OriginPolicy([origin_of(scheme, host, port)])
    candidate = origin_of(other_scheme, other_host, other_port)
    same = (scheme, host, effective_port(scheme, port)) == (other_scheme, other_host, effective_port(other_scheme, other_port))
    assert policy.allows(candidate.upper() if upper else candidate) is same


@settings(max_examples=100, deadline=None)
@given(scheme=schemes, suffix=hosts, port=ports, labels=st.lists(label, max_size=3), other_port=ports)
def test_wildcard_matches_exactly_one_more_label(scheme: str, suffix: str, port: Any, labels: List[str], other_port: Any) -> None:
    policy = OriginPolicy([origin_of(scheme, "*." + suffix, port)])
    candidate = origin_of(scheme, ".".join([*labels, suffix]), other_port)
    is_ip = _is_ipv4(".".join([*labels, suffix]))
    expected = len(labels) == 1 and effective_port(scheme, port) == effective_port(scheme, other_port) and not is_ip
    assert policy.allows(candidate) is expected


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=60) | st.from_regex(r"[a-z]{2,5}://[a-z.*:\[\]0-9]{0,20}", fullmatch=True))
def test_no_value_makes_the_policy_raise_and_only_listed_literals_of_garbage_pass(text: str) -> None:
    policy = OriginPolicy(["https://a.example", "https://*.b.example", None])
    result = policy.allows(text)
    assert isinstance(result, bool)
    if result:
        assert text.lower().startswith("https://")
