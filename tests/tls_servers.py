"""Real certificates and real TLS servers on 127.0.0.1 for the inventory tests."""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import ssl
import threading
from collections.abc import Iterator

import trustme

NOW = dt.datetime.now(dt.timezone.utc)


def leaf(ca: trustme.CA, *names: str, days_left: float = 60, lifetime: float = 90, **kwargs):
    """A leaf certificate for ``names`` that expires ``days_left`` days from now."""
    not_after = NOW + dt.timedelta(days=days_left)
    return ca.issue_cert(
        *(names or ("localhost", "127.0.0.1")),
        not_before=not_after - dt.timedelta(days=lifetime),
        not_after=not_after,
        **kwargs,
    )


class Server:
    """A TLS server on 127.0.0.1 that completes handshakes and closes."""

    def __init__(self, cert: trustme.LeafCert | None, *, mode: str = "tls") -> None:
        self.mode = mode
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.context = None
        if cert is not None:
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            cert.configure_cert(self.context)
        self.held: list[socket.socket] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _serve(self) -> None:
        self.listener.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.mode == "hang":  # accept, then never answer the handshake
                self.held.append(conn)
                continue
            if self.mode == "plain":  # not TLS at all
                with contextlib.suppress(OSError):
                    conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\nnot tls\r\n")
                conn.close()
                continue
            threading.Thread(target=self._handshake, args=(conn,), daemon=True).start()

    def _handshake(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            with (
                self.context.wrap_socket(conn, server_side=True) as tls,
                contextlib.suppress(OSError),
            ):
                tls.recv(1)
        except (OSError, ssl.SSLError):
            pass

    def stop(self) -> None:
        self.stopped.set()
        self.listener.close()
        for conn in self.held:
            conn.close()
        self.thread.join(5)


@contextlib.contextmanager
def serving(cert: trustme.LeafCert | None, *, mode: str = "tls") -> Iterator[Server]:
    """A running server (``tls``, ``hang`` or ``plain``), stopped afterwards."""
    server = Server(cert, mode=mode)
    try:
        yield server
    finally:
        server.stop()


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
