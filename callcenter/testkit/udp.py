"""A socket read on its own daemon thread until :meth:`ReceiveLoop.close` (loopback tools)."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any


class ReceiveLoop:
    """Calls :meth:`on_datagram` with each datagram the socket reads. A subclass sets what
    :meth:`on_datagram` uses before calling ``super().__init__`` (the thread starts there)."""

    def __init__(self, sock: socket.socket, size: int = 65535) -> None:
        self.sock = sock
        self.sock.settimeout(0.2)
        self._size = size
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def on_datagram(self, data: bytes, source: Any) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, source = self.sock.recvfrom(self._size)
            except TimeoutError:
                continue
            except OSError:
                return
            self.on_datagram(data, source)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        with contextlib.suppress(OSError):
            self.sock.close()


def udp_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, port))
    return sock
