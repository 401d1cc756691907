"""TLS for the ``*-tls`` workloads: a throw-away CA and server certificate.

The orchestrator makes the files once per run in a temporary directory
(:func:`make_files`); every worker builds its contexts from them.  Both
sides use the ``ssl`` module's defaults (TLS 1.3 here): the client trusts
only the run's CA and checks that the certificate names 127.0.0.1, the
server has no client-certificate check.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import socket
import ssl
from typing import Any, Dict, Optional

HOST = "127.0.0.1"
EXPECTED_VERSION = "TLSv1.3"


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    """PEM files: the CA certificate, the server certificate chain and its key."""

    ca: str
    cert: str
    key: str

    def to_json(self) -> Dict[str, str]:
        """The paths, for a worker's JSON config."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Optional[Dict[str, str]]) -> Optional[TlsFiles]:
        """The inverse of :meth:`to_json` (None stays None: plain TCP)."""
        return cls(**data) if data else None


def make_files(directory: str) -> TlsFiles:
    """Generate a CA and a certificate for 127.0.0.1 signed by it into ``directory``."""
    import trustme  # installed with the test extra; only TLS workloads need it

    ca = trustme.CA()
    issued = ca.issue_cert(HOST, "localhost")
    files = TlsFiles(*(os.path.join(directory, name) for name in ("ca.pem", "cert.pem", "key.pem")))
    ca.cert_pem.write_to_path(files.ca)
    with open(files.cert, "wb") as out:
        for pem in issued.cert_chain_pems:
            out.write(pem.bytes())
    issued.private_key_pem.write_to_path(files.key)
    return files


@functools.cache
def server_context(files: TlsFiles) -> ssl.SSLContext:
    """A default server context with the run's certificate (one per process)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.cert, files.key)
    return context


@functools.cache
def client_context(files: TlsFiles) -> ssl.SSLContext:
    """A default client context that trusts the run's CA, hostname checked (one per process)."""
    return ssl.create_default_context(cafile=files.ca)


def check_version(sock: Any) -> None:
    """Fail loudly if a fixed peer's connection did not negotiate TLS 1.3."""
    version = sock.version()
    if version != EXPECTED_VERSION:
        raise ConnectionError(f"negotiated {version}, expected {EXPECTED_VERSION}")


def wrap_client(sock: socket.socket, files: TlsFiles) -> ssl.SSLSocket:
    """TLS client handshake on a connected socket (the fixed client's side)."""
    tls = client_context(files).wrap_socket(sock, server_hostname=HOST)
    try:
        check_version(tls)
    except ConnectionError:
        tls.close()
        raise
    return tls
