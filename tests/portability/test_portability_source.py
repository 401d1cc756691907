"""The library's source names nothing POSIX-only outside a feature check (Linux, macOS and Windows).

The walk is over the AST, so a name in a comment or a docstring does not
count, and neither does a use that the code guards: inside ``hasattr(...)`` or
``getattr(..., default)``, in a branch (or conditional expression, or ``and``)
whose test is such a check, a platform check (``sys.platform``, ``os.name``,
``platform.system()``) or a module-level flag defined by one, or in a ``try``
that handles ``ImportError``/``AttributeError``.
"""

from __future__ import annotations

import ast
import pathlib
import textwrap
from typing import Dict, Iterator, List, Optional, Set, Tuple

import pytest

import simplews

#: module attributes that Windows' Python lacks, or whose value is laid out per platform
POSIX_ATTRIBUTES: Dict[str, Set[str]] = {
    "select": {"poll", "epoll", "kqueue", "kevent", "devpoll", "POLLIN", "POLLOUT", "EPOLLIN", "EPOLLOUT"},
    "selectors": {"PollSelector", "EpollSelector", "KqueueSelector", "DevpollSelector"},
    # SO_RCVTIMEO/SO_SNDTIMEO take a packed struct timeval on POSIX and a DWORD of milliseconds on Windows
    "socket": {
        "AF_UNIX", "MSG_DONTWAIT", "MSG_NOSIGNAL", "SO_REUSEPORT", "SO_RCVTIMEO", "SO_SNDTIMEO", "SOCK_NONBLOCK", "SOCK_CLOEXEC",
    },
    "os": {"set_blocking", "get_blocking", "fork", "getuid", "geteuid", "killpg", "setsid"},
    "signal": {
        "SIGPIPE", "SIGHUP", "SIGALRM", "SIGUSR1", "SIGUSR2", "SIGKILL", "SIGQUIT", "SIGCHLD", "alarm", "setitimer", "pthread_kill",
    },
}
#: methods of sockets that Windows' Python lacks, on whatever object they are called
POSIX_METHODS = {"sendmsg", "recvmsg", "recvmsg_into", "sendmsg_afalg"}
#: modules that exist only on POSIX systems
POSIX_MODULES = {"fcntl", "termios", "tty", "pty", "resource", "pwd", "grp", "posix", "syslog"}
_PLATFORM_CHECKS = {("sys", "platform"), ("os", "name"), ("platform", "system")}
_GUARDING_EXCEPTIONS = {"ImportError", "ModuleNotFoundError", "AttributeError", "NameError"}


def _dotted(node: ast.AST) -> Optional[Tuple[str, str]]:
    """``("module", "name")`` for an attribute ``module.name`` on a plain name, else ``None``."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return node.value.id, node.attr
    return None


def _checked_names(test: ast.AST, flags: Dict[str, Set[str]]) -> Set[str]:
    """The features a test expression checks ("*": a platform check, which covers any)."""
    names: Set[str] = set()
    for node in ast.walk(test):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            probe = node.func.id == "hasattr" or (node.func.id == "getattr" and len(node.args) == 3)
            if probe and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str):
                names.add(node.args[1].value)
        elif isinstance(node, ast.Attribute) and _dotted(node) in _PLATFORM_CHECKS:
            names.add("*")
        elif isinstance(node, ast.Name) and node.id in flags:
            names |= flags[node.id]
    return names


def _module_flags(tree: ast.Module) -> Dict[str, Set[str]]:
    """Module-level names assigned from a feature or platform check (``_HAS_SENDMSG = hasattr(...)``)."""
    flags: Dict[str, Set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            checked = _checked_names(node.value, flags)
            if checked:
                flags[node.targets[0].id] = checked
    return flags


def _offences(node: ast.AST) -> Iterator[Tuple[str, ast.AST]]:
    """POSIX-only names this node itself uses: ``(feature, node)``."""
    dotted = _dotted(node)
    if dotted is not None and dotted[1] in POSIX_ATTRIBUTES.get(dotted[0], ()):
        yield dotted[1], node
    elif isinstance(node, ast.Attribute) and node.attr in POSIX_METHODS:
        yield node.attr, node
    elif isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.split(".")[0] in POSIX_MODULES:
                yield alias.name.split(".")[0], node
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        root = node.module.split(".")[0]
        if root in POSIX_MODULES:
            yield root, node
        for alias in node.names:
            if alias.name in POSIX_ATTRIBUTES.get(node.module, ()):
                yield alias.name, node
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr" and len(node.args) == 2:
        name = node.args[1]
        if isinstance(name, ast.Constant) and name.value in POSIX_METHODS | set().union(*POSIX_ATTRIBUTES.values()):
            yield str(name.value), node  # getattr without a default is the attribute itself


def _try_guards(node: ast.Try) -> bool:
    """Whether a ``try`` handles the error a missing feature raises."""
    for handler in node.handlers:
        if handler.type is None:
            continue  # a bare except is not a feature check
        types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        if any(isinstance(t, ast.Name) and t.id in _GUARDING_EXCEPTIONS for t in types):
            return True
    return False


def _walk(node: ast.AST, flags: Dict[str, Set[str]], guarded: Set[str]) -> Iterator[Tuple[str, ast.AST]]:
    """Every offence under ``node`` not covered by the features in ``guarded``."""
    for feature, where in _offences(node):
        if feature not in guarded and "*" not in guarded:
            yield feature, where
    if isinstance(node, (ast.If, ast.IfExp, ast.While)):
        inner = guarded | _checked_names(node.test, flags)
        yield from _walk(node.test, flags, guarded)
        for child in (node.body, node.orelse):
            for item in child if isinstance(child, list) else [child]:
                yield from _walk(item, flags, inner)
        return
    if isinstance(node, ast.BoolOp):  # ``hasattr(s, "sendmsg") and s.sendmsg(...)``
        seen = set(guarded)
        for value in node.values:
            yield from _walk(value, flags, seen)
            seen |= _checked_names(value, flags)
        return
    if isinstance(node, ast.Try) and _try_guards(node):
        for item in node.body:
            yield from _walk(item, flags, guarded | {"*"})
        for rest in (node.handlers, node.orelse, node.finalbody):
            for item in rest:
                yield from _walk(item, flags, guarded)
        return
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("hasattr", "getattr"):
        return  # the probe itself
    for child in ast.iter_child_nodes(node):
        yield from _walk(child, flags, guarded)


def posix_only_uses(source: str, filename: str = "<snippet>") -> List[str]:
    """``"file:line: name"`` for each POSIX-only name used outside a feature check."""
    tree = ast.parse(source, filename)
    flags = _module_flags(tree)
    return [f"{filename}:{getattr(where, 'lineno', 0)}: {feature}" for feature, where in _walk(tree, flags, set())]


def library_sources() -> List[pathlib.Path]:
    """Every Python module of the installed-for-test simplews package."""
    return sorted(pathlib.Path(simplews.__file__).parent.glob("*.py"))


def test_the_library_names_nothing_posix_only_outside_a_feature_check() -> None:
    sources = library_sources()
    assert len(sources) > 15 and any(p.name == "stream.py" for p in sources)
    found = [use for path in sources for use in posix_only_uses(path.read_text(encoding="utf-8"), path.name)]
    assert found == []


def test_the_walk_reads_the_library_s_feature_checks() -> None:
    """The one platform feature the library probes (Unix sockets) is seen as a check, so passing is not vacuous."""
    transport = pathlib.Path(simplews.__file__).parent / "transport.py"
    tree = ast.parse(transport.read_text(encoding="utf-8"))
    (probe,) = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name == "new_unix_socket"]
    assert "AF_UNIX" in _checked_names(probe, {})
    assert posix_only_uses("import socket\ns = socket.socket(socket.AF_UNIX)\n" + ast.unparse(probe)) == ["<snippet>:2: AF_UNIX"]


BAD = [
    ("import select\np = select.poll()\n", ["poll"]),
    ("import select\nep = select.epoll()\n", ["epoll"]),
    ("import socket\ndata = sock.recv(10, socket.MSG_DONTWAIT)\n", ["MSG_DONTWAIT"]),
    (
        "import socket, struct\nsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack('ll', 1, 0))\n",
        ["SO_RCVTIMEO"],
    ),
    ("def send(sock, parts):\n    return sock.sendmsg(parts)\n", ["sendmsg"]),
    ("data, anc, flags, addr = sock.recvmsg(100)\n", ["recvmsg"]),
    ("import socket\ns = socket.socket(socket.AF_UNIX)\n", ["AF_UNIX"]),
    ("from socket import AF_UNIX\n", ["AF_UNIX"]),
    ("import os\nos.set_blocking(sock.fileno(), False)\n", ["set_blocking"]),
    ("import fcntl\n", ["fcntl"]),
    ("import signal\nsignal.signal(signal.SIGPIPE, signal.SIG_IGN)\n", ["SIGPIPE"]),
    ("send = getattr(sock, 'sendmsg')\n", ["sendmsg"]),
    ("import select\ntry:\n    p = select.poll()\nexcept Exception:\n    p = None\n", ["poll"]),
    # a check for one feature does not cover another
    ("import select, socket\nif hasattr(socket, 'AF_UNIX'):\n    p = select.poll()\n", ["poll"]),
    ("import select\nif hasattr(select, 'poll'):\n    pass\np = select.poll()\n", ["poll"]),
]

GOOD = [
    "import select\nif hasattr(select, 'poll'):\n    p = select.poll()\n",
    "import socket\nfamily = getattr(socket, 'AF_UNIX', None)\n",
    "import sys\nif sys.platform != 'win32':\n    import fcntl\n",
    "import os, signal\nif os.name == 'posix':\n    signal.signal(signal.SIGPIPE, signal.SIG_IGN)\n",
    "import socket\n_HAS = hasattr(socket.socket, 'sendmsg')\n"
    "def send(s, parts):\n    if parts and _HAS:\n        return s.sendmsg(parts)\n",
    "n = sock.sendmsg(parts) if hasattr(sock, 'sendmsg') else 0\n",
    "ok = hasattr(sock, 'sendmsg') and sock.sendmsg(parts)\n",
    "try:\n    import fcntl\nexcept ImportError:\n    fcntl = None\n",
    "import select\n# select.poll() is not used\n'''nor select.epoll in a docstring'''\nr, w, x = select.select([], [], [], 0)\n",
]


@pytest.mark.parametrize("source, expected", BAD)
def test_a_posix_only_name_outside_a_check_is_found(source: str, expected: List[str]) -> None:
    found = posix_only_uses(source)
    assert [use.rsplit(": ", 1)[1] for use in found] == expected, found


@pytest.mark.parametrize("source", GOOD)
def test_a_checked_or_portable_use_is_accepted(source: str) -> None:
    assert posix_only_uses(textwrap.dedent(source)) == []
