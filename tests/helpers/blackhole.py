"""A TCP proxy in the test process that can turn into a black hole: packets dropped, sockets left open.

    with BlackholeProxy(mariadb.host, mariadb.port) as proxy:   # obsync connects to proxy.port
        proxy.blackhole()      # from now on nothing gets through, and nobody is told
        proxy.restore()        # new connections get through again

While the hole lasts, every connection open through the proxy, and every connection opened meanwhile, goes
silent for good: what either side sends is read and dropped, nothing is ever closed (no FIN, no RST), as
when a network drops packets until the peers give up (the server's side of such a connection is gone, its
goodbye lost). A client with no read timeout waits on such a connection forever. Connections opened after
`restore()` are forwarded as before.
"""

from __future__ import annotations

import socket
import threading
from typing import Any


class BlackholeProxy:
    def __init__(self, host: str, port: int) -> None:
        self._upstream = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.host, self.port = "127.0.0.1", self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._silent = False
        self._pairs: list[_Pair] = []
        self._closed = False
        self.accepted = 0  # connections accepted (for tests that check obsync came back)
        self._thread = threading.Thread(target=self._accept, name="blackhole-accept", daemon=True)
        self._thread.start()

    def blackhole(self) -> None:
        """Drop everything from now on, on every connection open now or opened until `restore()`."""
        with self._lock:
            self._silent = True
            for pair in self._pairs:
                pair.silent = True

    def restore(self) -> None:
        """Forward connections opened from now on (the silenced ones stay silent)."""
        with self._lock:
            self._silent = False

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            pair.close()

    def __enter__(self) -> BlackholeProxy:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                silent = self._silent
                self.accepted += 1
            upstream = None
            if not silent:
                try:
                    upstream = socket.create_connection(self._upstream, timeout=5)
                    upstream.settimeout(None)
                except OSError:
                    client.close()
                    continue
            pair = _Pair(client, upstream, silent)
            with self._lock:
                self._pairs.append(pair)
            pair.start()


class _Pair:
    """One client connection and its upstream one (None when it was accepted into the hole)."""

    def __init__(self, client: socket.socket, upstream: socket.socket | None, silent: bool) -> None:
        self.client, self.upstream, self.silent = client, upstream, silent

    def start(self) -> None:
        threading.Thread(target=self._pump, args=(self.client, self.upstream), daemon=True).start()
        if self.upstream is not None:
            threading.Thread(target=self._pump, args=(self.upstream, self.client), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket | None) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                if not self.silent:  # a clean close gets through; in the hole nobody hears of it
                    self.close()
                return
            if self.silent or dst is None:
                continue  # dropped
            try:
                dst.sendall(data)
            except OSError:
                if not self.silent:
                    self.close()
                return

    def close(self) -> None:
        for s in (self.client, self.upstream):
            if s is not None:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
