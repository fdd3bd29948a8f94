#!/usr/bin/python3
"""A fault injector in front of a real engine's unix socket, for the tests of slow and failing
inspects: it passes every request through untouched except `GET /v*/containers/{id}/json`, which
it can answer with an error of its own (as a proxy in front of the engine does when its backend
fails) or hold until the test lets it through; and it can cut a container's events out of the
`/events` stream, as the engine does for a subscriber that falls behind (it skips events
silently). Nothing here imitates the engine: what reaches the agent is the engine's own answer,
less what the proxy cut, or the proxy's error.

    proxy = FaultProxy(path, engine_socket).start()
    proxy.fail_inspects(container_id, times=1)   # the next inspect of it answers 503
    proxy.fail_inspects(container_id)            # every inspect of it answers 503
    proxy.fail_inspects(ANY, times=2)            # the next two inspects of any container
    proxy.fail_inspects(ANY, times=0)            # no more failures
    proxy.hold_inspects()                        # every inspect waits ...
    proxy.release_inspects()                     # ... until this
    proxy.hold_next_inspect()                    # the next inspect (of whichever container)
    proxy.held_id                                #   waits, its container's id here, until
    proxy.release_held()                         #   this (or the agent gives up on it)
    proxy.inspects[container_id]                 # how many inspects of it arrived
    proxy.cut_events_of("name")                  # /events streams lose that container's events

Each connection carries one request (`Connection: close` is added on the way to the engine),
so every request is seen. Any thread."""

import collections
import json
import os
import re
import selectors
import socket
import threading

ANY = "*"  # fail_inspects: whatever the container
INSPECT = re.compile(rb"^GET /v[0-9.]+/containers/([^/?]+)/json(\?| )")
EVENTS = re.compile(rb"^GET (/v[0-9.]+)?/events(\?| )")
ERROR_BODY = b'{"message":"the test\'s fault proxy answered instead of the engine"}'


class FaultProxy:
    def __init__(self, path, upstream):
        self.path = path
        self.upstream = upstream
        self.endpoint = "unix://" + path
        self.inspects = collections.Counter()
        self._lock = threading.Lock()
        self._failures = {}  # container id -> inspects still to fail (None: all)
        self._cut_names = set()
        self.events_cut = 0
        self._gate = threading.Event()
        self._gate.set()
        self._hold_next = False
        self.held_id = None
        self._held = threading.Event()
        self._server = None
        self._closed = False

    def start(self):
        if os.path.exists(self.path):
            os.unlink(self.path)
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.path)
        self._server.listen(64)
        threading.Thread(target=self._accept, name="fault-proxy", daemon=True).start()
        return self

    def stop(self):
        self._closed = True
        self._gate.set()
        self._held.set()
        if self._server is not None:
            self._server.close()

    def fail_inspects(self, container_id, times=None):
        with self._lock:
            self._failures[container_id] = times

    def cut_events_of(self, name):
        with self._lock:
            self._cut_names.add(name)

    def hold_next_inspect(self):
        with self._lock:
            self._hold_next = True
            self.held_id = None
            self._held.clear()

    def release_held(self):
        self._held.set()

    def _hold_this(self, container_id):
        with self._lock:
            if not self._hold_next:
                return False
            self._hold_next = False
            self.held_id = container_id
            return True

    def hold_inspects(self):
        self._gate.clear()

    def release_inspects(self):
        self._gate.set()

    def _accept(self):
        while not self._closed:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _should_fail(self, container_id):
        with self._lock:
            self.inspects[container_id] += 1
            key = container_id if container_id in self._failures else ANY
            if key not in self._failures:
                return False
            left = self._failures[key]
            if left is None:
                return True
            if left <= 0:
                return False
            self._failures[key] = left - 1
            return True

    def _serve(self, client):
        with client:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(65536)
                if not chunk:
                    return
                head += chunk
            head, _, rest = head.partition(b"\r\n\r\n")
            inspect = INSPECT.match(head)
            if inspect:
                self._gate.wait()
                if self._hold_this(inspect.group(1).decode()):
                    self._held.wait()
                if self._should_fail(inspect.group(1).decode()):
                    client.sendall(b"HTTP/1.1 503 Service Unavailable\r\n"
                                   b"Content-Type: application/json\r\nConnection: close\r\n"
                                   b"Content-Length: " + str(len(ERROR_BODY)).encode() +
                                   b"\r\n\r\n" + ERROR_BODY)
                    return
            lines = [line for line in head.split(b"\r\n")
                     if not line.lower().startswith(b"connection:")]
            request = b"\r\n".join(lines + [b"Connection: close"]) + b"\r\n\r\n" + rest
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as engine:
                try:
                    engine.connect(self.upstream)
                except OSError:
                    return
                engine.sendall(request)
                if EVENTS.match(head):
                    self._relay_events(client, engine)
                else:
                    self._pipe(client, engine)

    def _cut(self, line):
        try:
            event = json.loads(line)
        except ValueError:
            return False
        name = event.get("Actor", {}).get("Attributes", {}).get("name")
        with self._lock:
            if name in self._cut_names:
                self.events_cut += 1
                return True
        return False

    def _relay_events(self, client, engine):
        """Copies the engine's chunked /events answer, less the events of containers named in
        cut_events_of; each remaining chunk goes on as the engine sent it."""
        reader = engine.makefile("rb")
        try:
            while True:  # the status line and headers
                line = reader.readline()
                if not line:
                    return
                client.sendall(line)
                if line in (b"\r\n", b"\n"):
                    break
            while True:  # chunks: size line, data, CRLF
                size_line = reader.readline()
                if not size_line:
                    return
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                data = reader.read(size) if size else b""
                reader.readline()
                if size == 0:
                    client.sendall(b"0\r\n\r\n")
                    return
                kept = b"".join(line for line in data.splitlines(keepends=True)
                                if not self._cut(line))
                if kept:
                    client.sendall(b"%x\r\n" % len(kept) + kept + b"\r\n")
        except (OSError, ValueError):
            return

    @staticmethod
    def _pipe(client, engine):
        """Copies bytes both ways until either side closes."""
        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ, engine)
        sel.register(engine, selectors.EVENT_READ, client)
        while True:
            for key, _ in sel.select(timeout=1):
                try:
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    key.data.sendall(data)
                except OSError:
                    return
