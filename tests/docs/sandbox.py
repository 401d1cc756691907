"""Run a documentation example in this process with the network fenced to what the test set up.

Usage: ``python sandbox.py CONFIG.json script.py [args]`` or ``python sandbox.py CONFIG.json -m module [args]``.

Before the example runs:

* ``socket.getaddrinfo`` answers the names of the configuration's ``resolve`` map
  (``"host:port"`` to a loopback ``[address, port]``): ``telemetry.example.com:443``
  reaches a local stand-in while the example keeps its own URL, host name and SNI.
* A bind to a fixed TCP port binds port 0 instead (and ``0.0.0.0`` / ``::`` become
  loopback), so an example that serves on 8000 cannot collide with anything; a
  later connection to that fixed port goes to the port actually bound.
* ``connect()`` is allowed only to loopback ports this process bound, ports of the
  ``resolve`` map and the configuration's ``allow`` list (and to Unix sockets).
  Anything else is refused with ``ENETUNREACH`` and recorded: the test fails on it.
* certifi's CA bundle gains the configuration's ``cafile``, so ``wss://`` stand-ins are
  verified like real servers (host names included).

What happens is appended to the configuration's ``events`` file, one JSON object a line:
``{"bound": [requested_port, actual_port]}`` and ``{"refused": "why"}``.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import runpy
import socket
import sys
import threading
from typing import Any, Dict, List, Set, Tuple

_events_lock = threading.Lock()


def main(argv: List[str]) -> None:
    """Install the fences described in the module docstring, then run the example."""
    with open(argv[1], encoding="utf-8") as f:
        config = json.load(f)
    fence = Fence(config)
    fence.install()
    target = argv[2:]
    if target[0] == "-m":
        sys.argv = [target[1], *target[2:]]
        runpy.run_module(target[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = target
        sys.path.insert(0, os.path.dirname(os.path.abspath(target[0])))
        runpy.run_path(target[0], run_name="__main__")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return host == "localhost"


class Fence:
    """The patched socket functions and the state they share."""

    def __init__(self, config: Dict[str, Any]) -> None:
        self.events_path: str = config["events"]
        self.resolve: Dict[Tuple[str, int], Tuple[str, int]] = {}
        for key, (address, port) in config.get("resolve", {}).items():
            host, _, service = key.rpartition(":")
            self.resolve[(host.strip("[]").lower(), int(service))] = (address, int(port))
        self.allowed: Set[int] = {port for _, port in self.resolve.values()} | set(config.get("allow", []))
        self.bound: Dict[int, int] = {}  # fixed port asked for -> port bound
        self.cafile = config.get("cafile")
        self._getaddrinfo = socket.getaddrinfo
        self._connect = socket.socket.connect
        self._connect_ex = socket.socket.connect_ex
        self._bind = socket.socket.bind

    def record(self, **event: Any) -> None:
        """Append one event to the events file (every process of the example shares it)."""
        with _events_lock, open(self.events_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(event) + "\n")

    def install(self) -> None:
        """Patch socket (and certifi) for the rest of this process."""
        fence = self

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            return fence.getaddrinfo(host, port, *args, **kwargs)

        def connect(sock: socket.socket, address: Any) -> None:
            fence._connect(sock, fence.check(sock, address))

        def connect_ex(sock: socket.socket, address: Any) -> int:
            return fence._connect_ex(sock, fence.check(sock, address))

        def bind(sock: socket.socket, address: Any) -> None:
            fence.bind(sock, address)

        socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
        socket.socket.connect = connect  # type: ignore[method-assign]
        socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
        socket.socket.bind = bind  # type: ignore[method-assign]
        if self.cafile:
            self.install_ca()

    def install_ca(self) -> None:
        """certifi.where() names a bundle that also trusts the stand-ins' CA."""
        import certifi

        bundle = os.path.join(os.path.dirname(self.events_path), "ca-bundle.pem")
        if not os.path.exists(bundle):
            with open(certifi.where(), encoding="ascii") as real, open(self.cafile, encoding="ascii") as ours:
                text = real.read() + "\n" + ours.read()
            with open(bundle, "w", encoding="ascii") as f:
                f.write(text)
        certifi.where = lambda: bundle

    def getaddrinfo(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        """Names of the resolve map become their stand-in; outside names are refused."""
        name = host.decode() if isinstance(host, bytes) else host
        try:
            number = int(port) if port not in (None, "") else 0
        except ValueError:
            number = socket.getservbyname(port)
        flags = kwargs.get("flags", args[3] if len(args) > 3 else 0)
        if flags & socket.AI_PASSIVE:  # an address to listen on: bind() handles fixed ports
            return self._getaddrinfo(host, port, *args, **kwargs)
        if name is not None and number not in self.bound:  # our own server on that port comes first
            target = self.resolve.get((name.strip("[]").lower(), number))
            if target is not None:
                return self._getaddrinfo(target[0], target[1], *args, **kwargs)
            if not (_is_loopback(name.strip("[]")) or name in ("", "0.0.0.0", "::")):
                self.record(refused=f"name lookup of {name}:{port}")
                raise socket.gaierror(socket.EAI_NONAME, f"{name}: not reachable from a documentation example")
        return self._getaddrinfo(host, port, *args, **kwargs)

    def check(self, sock: socket.socket, address: Any) -> Any:
        """The address to really connect to; refuses anything but the stand-ins and our own servers."""
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return address
        host, port = address[0], int(address[1])
        if _is_loopback(host):
            if port in self.bound:
                return (host, self.bound[port], *address[2:])
            if port in self.allowed:
                return address
        self.record(refused=f"connect to {host}:{port}")
        raise OSError(errno.ENETUNREACH, f"{host}:{port} is not reachable from a documentation example")

    def bind(self, sock: socket.socket, address: Any) -> None:
        """Bind fixed ports as port 0, on loopback; remember what was bound."""
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            self._bind(sock, address)
            return
        host, port = address[0], int(address[1])
        if not _is_loopback(host):
            host = "::1" if sock.family == socket.AF_INET6 else "127.0.0.1"
        self._bind(sock, (host, 0, *address[2:]))
        actual = sock.getsockname()[1]
        self.bound[port or actual] = actual
        self.record(bound=[port, actual])


if __name__ == "__main__":
    main(sys.argv)
