"""The client's real address behind a proxy: PROXY protocol v1 and forwarding headers.

Behind a load balancer the socket's peer is the balancer. Two opt-in ways give
the client's own address, each only as trustworthy as the proxy that writes it:

* HAProxy's PROXY protocol v1 (:func:`parse_proxy_v1`): the proxy sends one
  text line before the client's bytes. A server must then expect it on every
  connection and from nobody but its proxy: the line is not optional;
* the ``X-Forwarded-For`` or RFC 7239 ``Forwarded`` header
  (:func:`client_address`), believed only when the direct peer is one of the
  configured trusted proxies.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Iterable, List, Optional, Tuple, Union

from .exceptions import InvalidHandshake
from .handshake import Headers

__all__ = ["PROXY_V1_MAX", "parse_proxy_v1", "TrustedProxies", "client_address"]

Address = Tuple[str, int]
IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

#: the longest PROXY v1 line, CRLF included (the spec's receiver limit)
PROXY_V1_MAX = 107
_PROXY_PREFIX = b"PROXY "
_PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
_PORT_RE = re.compile(r"0|[1-9][0-9]{0,4}")


# --- PROXY protocol v1 -------------------------------------------------------------------


def parse_proxy_v1(buf: Union[bytes, bytearray]) -> Optional[Tuple[Optional[Address], int]]:
    """Parse the PROXY protocol v1 line at the start of ``buf``.

    Returns ``None`` while more bytes are needed, else ``(source, length)``:
    the client's ``(ip, port)`` (``None`` for ``PROXY UNKNOWN``: use the
    socket's own peer) and how many bytes of ``buf`` the line took; what
    follows is the client's own data. The line is checked as the
    specification states it: ``PROXY``, ``TCP4``, ``TCP6`` or ``UNKNOWN``,
    single spaces, addresses of the announced family (IPv4 dotted quads
    without leading zeros, IPv6 without a zone), ports 0 to 65535 in decimal
    without leading zeros, CRLF within 107 bytes. Anything else, a version 2
    header included, raises :class:`~simplews.InvalidHandshake` (status 400)
    as soon as the bytes show it.
    """
    head = bytes(buf[:PROXY_V1_MAX])
    if head and _PROXY_V2_SIGNATURE.startswith(head[: len(_PROXY_V2_SIGNATURE)]):
        raise InvalidHandshake("PROXY protocol version 2 header: only version 1 is supported")
    end = head.find(b"\r\n")
    line = head if end < 0 else head[:end]
    if not (line.startswith(_PROXY_PREFIX) or _PROXY_PREFIX.startswith(line)):
        raise InvalidHandshake("expected a PROXY protocol v1 line before the request")
    if b"\n" in line or b"\r" in line[:-1] or b"\x00" in line:
        raise InvalidHandshake("control character in PROXY protocol line")
    unknown = line == b"PROXY UNKNOWN" or line.startswith(b"PROXY UNKNOWN ")
    if not unknown and not line.isascii():
        raise InvalidHandshake("PROXY protocol line is not ASCII")
    if end < 0:
        if len(head) >= PROXY_V1_MAX:
            raise InvalidHandshake(f"PROXY protocol line longer than {PROXY_V1_MAX} bytes")
        return None
    if unknown:
        return None, end + 2  # the rest of an UNKNOWN line is to be ignored
    parts = line.decode("ascii").split(" ")
    if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
        raise InvalidHandshake("malformed PROXY protocol line (expected PROXY TCP4|TCP6|UNKNOWN src dst sport dport)")
    family = ipaddress.IPv4Address if parts[1] == "TCP4" else ipaddress.IPv6Address
    source, destination, source_port, destination_port = parts[2:]
    try:
        for address in (source, destination):
            if "%" in address:
                raise ValueError("zone")
            family(address)
    except ValueError:
        raise InvalidHandshake(f"malformed {parts[1]} address in PROXY protocol line") from None
    for port in (source_port, destination_port):
        if not (_PORT_RE.fullmatch(port) and int(port) <= 65535):
            raise InvalidHandshake("malformed port in PROXY protocol line")
    return (str(family(source)), int(source_port)), end + 2


# --- forwarding headers --------------------------------------------------------------------


class TrustedProxies:
    """The proxies whose forwarding headers are believed: addresses and networks.

    Entries are IP addresses (``"127.0.0.1"``, ``"::1"``), networks
    (``"10.0.0.0/8"``, ``"fd00::/8"``), or ``"unix"`` for a proxy that connects
    through a Unix socket (whose peer has no address). An IPv4 address in an
    IPv6 socket's form (``::ffff:10.1.2.3``) counts as the IPv4 address.
    """

    def __init__(self, entries: Iterable[str]) -> None:
        if isinstance(entries, (str, bytes)):
            raise TypeError("trusted proxies are a list of addresses or networks, not one string")
        self.unix = False
        self.networks: List[IPNetwork] = []
        for entry in entries:
            if entry == "unix":
                self.unix = True
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except (TypeError, ValueError):
                raise ValueError(f"{entry!r} is not an IP address or network") from None

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            return False
        address = _unmapped(address)
        return any(address in network for network in self.networks)


def client_address(
    peer: Optional[Address],
    headers: Headers,
    trusted: Union[TrustedProxies, Iterable[str]],
    *,
    header: str = "X-Forwarded-For",
) -> Optional[Address]:
    """The client's address: ``peer``, or what trusted proxies say in ``header``.

    ``peer`` is the socket's peer (``None`` for a Unix socket). Unless it is in
    ``trusted``, it is the answer and the header is ignored: anybody may send
    one. Otherwise the header's hops are walked from the right (the nearest
    proxy's entry last), skipping trusted ones, and the first untrusted hop is
    the client. If every hop is trusted, the leftmost is the answer. Walking
    stops at an entry that is not an address (``unknown``, an obfuscated name,
    garbage, an empty entry, an element without ``for=``): the nearest hop
    already walked, or ``peer``, is answered, never a guess beyond it. A header
    that does not parse at all counts as absent.

    ``header`` is ``"X-Forwarded-For"`` (comma-separated addresses) or
    ``"Forwarded"`` (RFC 7239 ``for=``). Choose the one the proxy writes, and
    only that one: the other would come from the client unchecked. Repeated
    header lines are read as one list, in order.

    The port of an address from a header is the one it gives (``[2001:db8::1]:4711``,
    ``192.0.2.1:4711``, ``for="192.0.2.1:4711"``), else 0: unknown.
    """
    proxies = trusted if isinstance(trusted, TrustedProxies) else TrustedProxies(trusted)
    if peer is None:
        if not proxies.unix:
            return None
    else:
        try:
            if ipaddress.ip_address(peer[0]) not in proxies:
                return peer
        except ValueError:
            return peer
    values = headers.get_all(header)
    if not values:
        return peer
    if header.lower() == "x-forwarded-for":
        hops: Optional[List[Optional[Tuple[IPAddress, int]]]] = [_node(item.strip(" \t")) for item in ",".join(values).split(",")]
    elif header.lower() == "forwarded":
        hops = _forwarded_for(", ".join(values))
    else:
        raise ValueError(f"header is 'X-Forwarded-For' or 'Forwarded', not {header!r}")
    answer = peer
    for hop in reversed(hops or []):
        if hop is None:
            break
        address, port = hop
        answer = (str(_unmapped(address)), port)
        if address not in proxies:
            break
    return answer


def _unmapped(address: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address as the IPv4 address it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _node(text: str) -> Optional[Tuple[IPAddress, int]]:
    """An address with an optional port (``1.2.3.4``, ``1.2.3.4:80``, ``::1``, ``[::1]:80``), or ``None``."""
    port = "0"
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port = rest[1:] or ("0" if not rest else "")
        family: type = ipaddress.IPv6Address
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
        family = ipaddress.IPv4Address
    else:
        host = text
        family = ipaddress.IPv6Address if ":" in text else ipaddress.IPv4Address
    if "%" in host:
        return None
    if port.startswith("_"):
        port = "0"  # RFC 7239 obfuscated port: the address is still known
    if not (_PORT_RE.fullmatch(port) and int(port) <= 65535):
        return None
    try:
        return family(host), int(port)
    except ValueError:
        return None


_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PAIR_RE = re.compile(rf"[ \t]*({_TOKEN})=({_TOKEN}|\"(?:[^\"\\]|\\.)*\")[ \t]*")
_SEPARATOR_RE = re.compile(r"[ \t]*([;,]|$)")


def _forwarded_for(value: str) -> Optional[List[Optional[Tuple[IPAddress, int]]]]:
    """The ``for=`` node of each element of a ``Forwarded`` value (``None`` where unusable), or ``None`` if it does not parse."""
    elements: List[List[Tuple[str, str]]] = [[]]
    pos = 0
    while True:
        pair = _PAIR_RE.match(value, pos)
        if pair is not None:
            raw = pair.group(2)
            text = re.sub(r"\\(.)", r"\1", raw[1:-1]) if raw.startswith('"') else raw
            elements[-1].append((pair.group(1).lower(), text))
            pos = pair.end()
        separator = _SEPARATOR_RE.match(value, pos)
        if separator is None:
            return None
        pos = separator.end()
        if separator.group(1) == ",":
            elements.append([])
        elif not separator.group(1):
            break
    nodes: List[Optional[Tuple[IPAddress, int]]] = []
    for element in elements:
        fors = [text for name, text in element if name == "for"]
        nodes.append(_node(fors[0]) if len(fors) == 1 else None)
    return nodes
