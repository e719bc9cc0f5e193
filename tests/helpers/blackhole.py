"""A TCP proxy in the test process that can turn into a black hole: packets dropped, sockets left open.

    with BlackholeProxy(mariadb.host, mariadb.port) as proxy:   # obsync connects to proxy.port
        proxy.blackhole()      # from now on nothing gets through, and nobody is told
        proxy.refuse()         # or: as a stopped server, connections closed and new ones refused
        proxy.restore()        # new connections get through again

While the hole lasts, every connection open through the proxy, and every connection opened meanwhile, goes
silent for good: what either side sends is read and dropped, nothing is ever closed (no FIN, no RST), as
when a network drops packets until the peers give up (the server's side of such a connection is gone, its
goodbye lost). A client with no read timeout waits on such a connection forever. Connections opened after
`restore()` are forwarded as before. `refuse()` is the loud kind of outage: every open connection is
closed and the port stops listening (connections refused) until `restore()` listens on it again.
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
        self._refusing = False
        self.accepted = 0  # connections accepted (for tests that check obsync came back)
        self._listen(self._listener)

    def _listen(self, listener: socket.socket) -> None:
        threading.Thread(target=self._accept, args=(listener,), name="blackhole-accept", daemon=True).start()

    def blackhole(self) -> None:
        """Drop everything from now on, on every connection open now or opened until `restore()`."""
        with self._lock:
            self._silent = True
            for pair in self._pairs:
                pair.silent = True

    def refuse(self) -> None:
        """Close every connection open through the proxy and refuse new ones, until `restore()`."""
        with self._lock:
            self._refusing = True
            pairs, self._pairs = self._pairs, []
        _stop_listening(self._listener)
        for pair in pairs:
            pair.close()

    def restore(self) -> None:
        """Forward connections opened from now on (the silenced ones stay silent)."""
        with self._lock:
            self._silent = False
            if self._refusing and not self._closed:
                self._refusing = False
                self._listener = socket.create_server((self.host, self.port))  # SO_REUSEADDR: the same port
                self._listen(self._listener)

    def close(self) -> None:
        self._closed = True
        _stop_listening(self._listener)
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            pair.close()

    def __enter__(self) -> BlackholeProxy:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _accept(self, listener: socket.socket) -> None:
        while not self._closed:
            try:
                client, _ = listener.accept()
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


def _stop_listening(listener: socket.socket) -> None:
    """Close a listening socket so that the port refuses connections at once (a plain close leaves a thread
    blocked in accept() holding it open on Linux: shut it down first, which wakes that thread)."""
    try:
        listener.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    listener.close()


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
