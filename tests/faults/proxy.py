"""A TCP proxy for the tests, to cut a worker off from Redis and let it back.

``partition()`` stops carrying bytes either way, as a network that silently drops packets does:
requests already sent wait in the proxy, replies too, and new connections are accepted but not
put through. ``heal()`` delivers everything that waited, late, as TCP would after a partition
that healed before its connections timed out. ``sever()`` loses every current connection
without a FIN or RST reaching the client (the far end vanished: a failover, a NAT or firewall
that forgot the flow); new connections go through. Only 127.0.0.1 is ever involved.
"""

from __future__ import annotations

import socket
import threading


class Proxy:
    """Forward 127.0.0.1:<port> to 127.0.0.1:<upstream>, one thread per direction."""

    def __init__(self, upstream: int):
        self.upstream = upstream
        self._open = threading.Event()
        self._open.set()
        self._closing = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._severed: set[socket.socket] = set()  # client sides left open, never answered
        self._lock = threading.Lock()
        self.connections = 0
        self.held_chunks = 0  # chunks that arrived while partitioned (delivered on heal)
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def partition(self) -> None:
        """Stop carrying bytes (both ways, all connections, new ones too)."""
        self._open.clear()

    def heal(self) -> None:
        """Carry bytes again, delivering what waited."""
        self._open.set()

    def sever(self) -> None:
        """Lose every current connection silently: the clients are never told."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
            self._severed.update(client for client, _ in pairs)
        for _, server in pairs:
            server.close()

    def close(self) -> None:
        """Stop the proxy and close every connection through it."""
        self._closing.set()
        self._open.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.close()
                except OSError:
                    pass

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        self._open.wait()
        try:
            server = socket.create_connection(("127.0.0.1", self.upstream))
        except OSError:
            client.close()
            return
        with self._lock:
            self._sockets += [client, server]
            self._pairs.append((client, server))
        for src, dst in ((client, server), (server, client)):
            threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                if not self._open.is_set():
                    self.held_chunks += 1
                    self._open.wait()
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                if sock in self._severed:
                    continue  # half-open on purpose: no FIN, no RST
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
