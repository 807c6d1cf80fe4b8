"""A TCP relay on 127.0.0.1 that can go silent: a frozen broker node for tests without a cluster.

Owns :class:`FreezableProxy`: it listens on a free local port and relays every connection to an
upstream address (the machine's RabbitMQ). :meth:`FreezableProxy.freeze` stops relaying in
both directions *without closing anything*: connections stay open, this machine's kernel keeps
acknowledging what clients send, and nothing ever comes back. To a client that is exactly a
SIGSTOPped node (or one behind a dead network path whose kernel still answers): only
application-level bounds (confirm timeouts, heartbeats) notice it. New connections are still
accepted while frozen (the kernel completes the handshake) and then hear nothing, like a frozen
node's listening socket. :meth:`thaw` resumes relaying what was queued.

Used by the app's integration tests (``tests/app``) to prove the bounds at the lowest layer
with a real broker; ``drills.silent_faults`` does the same with a real cluster and real
namespaces. Does not simulate resets or packet loss (a closed socket is simply a dead node).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading


class FreezableProxy:
    """``with FreezableProxy(("127.0.0.1", 5672)) as proxy: ... proxy.port ... proxy.freeze()``."""

    def __init__(self, upstream: tuple[str, int], *, host: str = "127.0.0.1") -> None:
        self.upstream = upstream
        self._listener = socket.create_server((host, 0))
        self.host, self.port = self._listener.getsockname()[:2]
        self._running = threading.Event()
        self._running.set()
        self._thawed = threading.Event()
        self._thawed.set()
        # Held while a chunk is relayed: freeze() returns only once no chunk is in flight, so
        # after it nothing more crosses, in either direction.
        self._relaying = threading.Lock()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self.connections = 0
        """Connections accepted so far."""
        self._accepter = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)
        self._accepter.start()

    # ------------------------------------------------------------------------------ control

    @property
    def frozen(self) -> bool:
        return not self._thawed.is_set()

    def freeze(self) -> None:
        """Stop relaying in both directions; keep every connection open. Nothing crosses the
        proxy once this returns."""
        with self._relaying:
            self._thawed.clear()

    def thaw(self) -> None:
        self._thawed.set()

    def close(self) -> None:
        """Close the listener and every relayed connection; the threads end."""
        self._running.clear()
        self._thawed.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=5)
        self._accepter.join(timeout=5)

    def __enter__(self) -> FreezableProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ----------------------------------------------------------------------------- relaying

    def _accept(self) -> None:
        self._listener.settimeout(0.2)
        while self._running.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(
                target=self._serve, args=(client,), name="proxy-relay", daemon=True
            )
            with self._lock:
                self._sockets.append(client)
                self._threads.append(thread)
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        # A frozen node never answers a new connection either: wait before connecting upstream.
        while self.frozen and self._running.is_set():
            self._thawed.wait(0.2)
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            client.close()
            return
        with self._lock:
            self._sockets.append(upstream)
        peers = {client: upstream, upstream: client}
        with selectors.DefaultSelector() as selector:
            try:
                for sock in peers:
                    sock.setblocking(False)
                    selector.register(sock, selectors.EVENT_READ)
            except (OSError, ValueError):  # closed by close() meanwhile
                self._close_pair(client, upstream)
                return
            while self._running.is_set():
                if self.frozen:
                    self._thawed.wait(0.2)
                    continue
                try:
                    ready = selector.select(timeout=0.2)
                except (OSError, ValueError):  # closed by close() meanwhile
                    break
                for key, _ in ready:
                    source = key.fileobj
                    assert isinstance(source, socket.socket)
                    if not self._relay_chunk(source, peers[source]):
                        self._close_pair(client, upstream)
                        return
        self._close_pair(client, upstream)

    def _relay_chunk(self, source: socket.socket, target: socket.socket) -> bool:
        """Move what ``source`` has to ``target`` unless frozen; False when a side closed."""
        with self._relaying:
            if self.frozen:
                return True
            try:
                data = source.recv(65536)
            except BlockingIOError:
                return True
            except OSError:
                return False
            if not data:
                return False
            try:
                target.setblocking(True)
                target.sendall(data)
                target.setblocking(False)
            except OSError:
                return False
            return True

    @staticmethod
    def _close_pair(*sockets: socket.socket) -> None:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
