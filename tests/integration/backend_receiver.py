"""A real HTTP(S) receiver for the agent's backend delivery (docs/backend.md), used as the oracle
of test_backend_delivery.py. Python stdlib only.

    rx = BackendReceiver(log_path="/tmp/zit-x/receiver.log")
    rx.start()                      # 127.0.0.1, a free port, a background thread
    rx.url                          # http://127.0.0.1:PORT/ingest
    rx.queue(status=500, times=3)   # the next 3 requests get 500
    rx.queue(status=429, headers={"Retry-After": "2"})
    rx.queue(hang=True)             # never answer (until stop() or the client goes away)
    rx.queue(status=200, delay=3)   # store, sleep 3 s, then answer
    rx.max_records = 3              # 413 for a body with more than 3 records
    rx.token = "abc"                # 401 unless "Authorization: Bearer abc"
    rx.stop(); rx.start()           # an outage: the same port again
    rx.unique_lines()               # accepted records de-duplicated by eventId, arrival order

Every request is stored as a Request (method, path, headers, raw and decoded body, lines,
parsed records, times, status answered). A request is "accepted" when the status the receiver
chose is 2xx, even when the client went away before the answer (the receiver stored the body
first, as a real backend does). HTTPS: tls=(cert, key); mTLS: client_ca=PEM (CERT_REQUIRED).
make_pki() writes CAs and certificates with the openssl CLI (the approach of test_tls.py)."""

import collections
import gzip
import http.server
import json
import os
import select
import socket
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

DEFAULT_PATH = "/ingest"


class Request:
    """One request as the receiver saw it."""

    def __init__(self, seq, method, path, headers, client_address, tls_peer):
        self.seq = seq
        self.method = method
        self.path = path
        self.header_list = headers                  # [(name, value)] as sent
        self.headers = {k.lower(): v for k, v in headers}  # last value wins
        self.client_address = client_address
        self.client_cert_subject = tls_peer         # e.g. {"commonName": "client"} or None
        self.t_start = time.monotonic()             # headers read
        self.wall_start = time.time()
        self.t_body = None                          # body read
        self.t_answered = None                      # answer written (None: never)
        self.client_gone_at = None                  # client closed while we waited
        self.raw_body = b""
        self.body = b""                             # after gunzip
        self.decode_error = None
        self.ends_with_newline = None
        self.lines = []                             # str, without "\n"
        self.records = []                           # parsed JSON (None for a bad line)
        self.status = None                          # the status chosen (None: hung)
        self.answered = False                       # the answer was written
        self.reason = ""                            # why this status (rule name)

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    @property
    def accepted(self):
        return self.status is not None and 200 <= self.status < 300

    @property
    def event_ids(self):
        return [r.get("eventId") if isinstance(r, dict) else None for r in self.records]

    def summary(self):
        return (f"#{self.seq} {self.method} {self.path} records={len(self.lines)} "
                f"raw={len(self.raw_body)}B enc={self.header('content-encoding', '-')} "
                f"-> {self.status} {self.reason}"
                f"{' (not answered)' if self.status is not None and not self.answered else ''}"
                f"{' (client gone)' if self.client_gone_at else ''}")


class Action:
    """A scripted answer: status, extra headers, body, delay before answering, or a hang."""

    def __init__(self, status=200, headers=None, body=b"", delay=0.0, hang=False, times=1):
        self.status = status
        self.headers = dict(headers or {})
        self.body = body.encode() if isinstance(body, str) else body
        self.delay = delay
        self.hang = hang
        self.remaining = times  # None: forever

    def __repr__(self):
        what = "hang" if self.hang else f"{self.status}"
        return f"Action({what}, delay={self.delay}, headers={self.headers}, left={self.remaining})"


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, owner, address):
        self.owner = owner
        self.stopping = threading.Event()
        super().__init__(address, _Handler)

    def finish_request(self, request, client_address):
        # TLS is done here, in the connection's thread, so a client that never completes its
        # handshake cannot block the accept loop.
        sock = request
        self.owner._count_connection()
        if self.owner.ssl_context is not None:
            try:
                sock.settimeout(10)
                sock = self.owner.ssl_context.wrap_socket(sock, server_side=True)
                sock.settimeout(None)
            except (ssl.SSLError, OSError) as exc:
                self.owner._note_tls_error(client_address, exc)
                try:
                    sock.close()
                except OSError:
                    pass
                return
        self.owner._track(sock, True)
        try:
            self.RequestHandlerClass(sock, client_address, self)
        except (OSError, ssl.SSLError):
            pass
        finally:
            self.owner._track(sock, False)
            try:
                sock.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        pass  # connection errors are expected (clients killed, timeouts)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and "Expect: 100-continue" answered at once
    server_version = "zit-backend-receiver/1"

    def log_message(self, fmt, *args):
        pass

    def do_POST(self):
        self.server.owner._handle(self)

    do_PUT = do_POST
    do_GET = do_POST
    do_DELETE = do_POST
    do_PATCH = do_POST

    def read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            out = bytearray()
            while True:
                size_line = self.rfile.readline(65537)
                if not size_line:
                    raise ConnectionError("connection closed in a chunk header")
                size = int(size_line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return bytes(out)
                chunk = self.rfile.read(size)
                if len(chunk) != size:
                    raise ConnectionError("connection closed in a chunk")
                out += chunk
                self.rfile.readline(65537)  # CRLF after the chunk
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else b""
        if len(data) != length:
            raise ConnectionError(f"body {len(data)} of {length} bytes")
        return data


class BackendReceiver:
    def __init__(self, port=None, path=DEFAULT_PATH, tls=None, client_ca=None, log_path=None,
                 log=None):
        """tls: (cert PEM, key PEM) for HTTPS; client_ca: PEM of the CA client certificates
        must chain to (mTLS, CERT_REQUIRED). log_path: a file with one line per request.
        log: a callable for the same lines (e.g. harness.log)."""
        self.port = port or h.free_port()
        self.path = path
        self.tls = tls
        self.client_ca = client_ca
        self.log_path = log_path
        self.log_fn = log
        self.ssl_context = self._make_context() if tls else None
        # Behaviour, changeable while running:
        self.token = None          # require "Authorization: Bearer <token>", else 401
        self.max_records = None    # 413 when a body has more records than this
        self.default = Action(status=200, times=None)  # when no rule and the queue is empty
        self.rule = None           # callable(Request) -> Action or None, checked first
        self._queue = collections.deque()
        self._lock = threading.Lock()
        self._requests = []
        self._tls_errors = []      # (time, client address, message)
        self._connections = 0      # TCP connections accepted (before any TLS handshake)
        self._conns = set()
        self._server = None
        self._thread = None
        self._seq = 0

    # ------------------------------------------------------------------ life
    def _make_context(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.tls[0], self.tls[1])
        if self.client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(self.client_ca)
        return ctx

    @property
    def scheme(self):
        return "https" if self.tls else "http"

    @property
    def url(self):
        return f"{self.scheme}://127.0.0.1:{self.port}{self.path}"

    def running(self):
        return self._server is not None

    def start(self, timeout=10):
        """Listens on 127.0.0.1:self.port (the same port after a stop())."""
        if self._server is not None:
            return self
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._server = _Server(self, ("127.0.0.1", self.port))
                break
            except OSError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True,
                                        name=f"receiver-{self.port}")
        self._thread.start()
        self._log(f"receiver listening on {self.url}"
                  f"{' (mTLS)' if self.client_ca else ''}")
        return self

    def stop(self):
        """Stops listening and cuts every open connection (hung and slow answers end without
        one). Connecting afterwards is refused until start()."""
        server = self._server
        if server is None:
            return
        self._server = None
        server.stopping.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(5)
        self._log(f"receiver on port {self.port} stopped")

    def _track(self, sock, add):
        with self._lock:
            (self._conns.add if add else self._conns.discard)(sock)

    def _count_connection(self):
        with self._lock:
            self._connections += 1

    def _note_tls_error(self, addr, exc):
        with self._lock:
            self._tls_errors.append((time.monotonic(), addr, str(exc)))
        self._log(f"TLS handshake with {addr[0]}:{addr[1]} failed: {exc}")

    def _log(self, line):
        line = f"{time.strftime('%H:%M:%S')}.{int(time.time() * 1000) % 1000:03d} {line}"
        if self.log_path:
            with self._lock, open(self.log_path, "a") as f:
                f.write(line + "\n")
        if self.log_fn:
            self.log_fn(f"receiver: {line[13:]}")

    # ------------------------------------------------------------------ behaviour
    def queue(self, status=200, headers=None, body=b"", delay=0.0, hang=False, times=1):
        """Appends a scripted answer for the next `times` requests that reach the queue
        (times=None: every one). Token and size rules are checked before the queue."""
        with self._lock:
            self._queue.append(Action(status, headers, body, delay, hang, times))

    def clear_queue(self):
        with self._lock:
            self._queue.clear()

    def queued(self):
        with self._lock:
            return list(self._queue)

    def set_default(self, status=200, headers=None, body=b"", delay=0.0, hang=False):
        self.default = Action(status, headers, body, delay, hang, times=None)

    def _choose(self, req):
        if self.rule is not None:
            action = self.rule(req)
            if action is not None:
                return action, "rule"
        token = self.token
        if token is not None and req.header("authorization") != f"Bearer {token}":
            return Action(401, {"WWW-Authenticate": "Bearer"}, b"bad token\n"), "token"
        limit = self.max_records
        if limit is not None and len(req.lines) > limit:
            return Action(413, body=f"more than {limit} records\n"), "max_records"
        with self._lock:
            while self._queue:
                action = self._queue[0]
                if action.remaining is None:
                    return action, "queue"
                if action.remaining > 0:
                    action.remaining -= 1
                    if action.remaining == 0:
                        self._queue.popleft()
                    return action, "queue"
                self._queue.popleft()
        return self.default, "default"

    # ------------------------------------------------------------------ one request
    def _handle(self, handler):
        server = handler.server
        peer = None
        if isinstance(handler.connection, ssl.SSLSocket):
            cert = handler.connection.getpeercert()
            if cert:
                peer = {k: v for rdn in cert.get("subject", ()) for (k, v) in rdn}
        with self._lock:
            self._seq += 1
            seq = self._seq
        req = Request(seq, handler.command, handler.path, list(handler.headers.items()),
                      handler.client_address, peer)
        try:
            req.raw_body = handler.read_body()
        except (OSError, ValueError, ConnectionError) as exc:
            req.decode_error = f"reading the body: {exc}"
            handler.close_connection = True
            self._store(req)
            self._log(f"{req.summary()} body unreadable: {exc}")
            return
        req.t_body = time.monotonic()
        self._decode(req)
        action, reason = self._choose(req)
        req.reason = reason
        if action.hang:
            self._store(req)  # status None: never answered
            self._log(f"{req.summary()} hanging")
            self._wait(handler, req, server, None)
            handler.close_connection = True
            self._log(f"#{req.seq} hang ended ({'client gone' if req.client_gone_at else 'stop'})")
            return
        req.status = action.status
        self._store(req)
        if action.delay:
            self._log(f"{req.summary()} answering in {action.delay}s")
            self._wait(handler, req, server, action.delay)
            if req.client_gone_at or server.stopping.is_set():
                handler.close_connection = True
                self._log(f"#{req.seq}: client gone or receiver stopped before the answer")
                return
        try:
            handler.send_response(action.status)
            for k, v in action.headers.items():
                handler.send_header(k, v)
            handler.send_header("Content-Type", "text/plain")
            handler.send_header("Content-Length", str(len(action.body)))
            handler.end_headers()
            handler.wfile.write(action.body)
            handler.wfile.flush()
            req.answered = True
            req.t_answered = time.monotonic()
        except OSError as exc:
            handler.close_connection = True
            self._log(f"#{req.seq}: writing the answer failed: {exc}")
            return
        self._log(req.summary())

    def _wait(self, handler, req, server, seconds):
        """Waits `seconds` (None: until stop) or until the client closes its side."""
        deadline = None if seconds is None else time.monotonic() + seconds
        conn = handler.connection
        while not server.stopping.is_set():
            left = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
            if left <= 0:
                return
            try:
                readable, _, _ = select.select([conn], [], [], left)
            except (OSError, ValueError):
                req.client_gone_at = time.monotonic()
                return
            if readable:
                try:
                    data = conn.recv(1)
                except (OSError, ssl.SSLError):
                    data = b""
                if not data:
                    req.client_gone_at = time.monotonic()
                    return

    @staticmethod
    def _decode(req):
        body = req.raw_body
        if (req.header("content-encoding") or "").lower() == "gzip":
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError) as exc:
                req.decode_error = f"gunzip: {exc}"
                body = b""
        req.body = body
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            req.decode_error = f"utf-8: {exc}"
            return
        req.ends_with_newline = text.endswith("\n")
        parts = text.split("\n")
        if parts and parts[-1] == "":
            parts.pop()
        req.lines = parts
        for line in parts:
            try:
                req.records.append(json.loads(line))
            except ValueError:
                req.records.append(None)
                req.decode_error = req.decode_error or f"not JSON: {line[:80]!r}"

    def _store(self, req):
        with self._lock:
            self._requests.append(req)

    # ------------------------------------------------------------------ accessors
    def requests(self, accepted_only=False):
        """Every request in arrival order (or only those answered 2xx)."""
        with self._lock:
            reqs = list(self._requests)
        return [r for r in reqs if r.accepted] if accepted_only else reqs

    def in_flight(self):
        """Requests whose body was read and whose answer has not been written (slow, hung)."""
        return [r for r in self.requests()
                if not r.answered and r.client_gone_at is None and r.t_body is not None]

    def all_lines(self, accepted_only=True):
        """Record lines in arrival order, duplicates included."""
        return [line for r in self.requests(accepted_only) for line in r.lines]

    def all_records(self, accepted_only=True):
        return [rec for r in self.requests(accepted_only) for rec in r.records]

    def unique_lines(self):
        """Accepted record lines de-duplicated by eventId (first arrival kept), in order."""
        seen, out = set(), []
        for r in self.requests(accepted_only=True):
            for line, rec in zip(r.lines, r.records):
                eid = rec.get("eventId") if isinstance(rec, dict) else line
                if eid not in seen:
                    seen.add(eid)
                    out.append(line)
        return out

    def unique_ids(self):
        return {json.loads(line)["eventId"] for line in self.unique_lines()}

    def id_counts(self, accepted_only=True):
        """{eventId: times received}."""
        counts = collections.Counter()
        for rec in self.all_records(accepted_only):
            if isinstance(rec, dict):
                counts[rec.get("eventId")] += 1
        return counts

    def status_counts(self):
        """Counter {status: requests}; a hung request counts under None."""
        return collections.Counter(r.status for r in self.requests())

    def connection_count(self):
        """TCP connections accepted so far (a client that gave up after the handshake, e.g. on
        a host name mismatch, shows here and in no request)."""
        with self._lock:
            return self._connections

    def tls_errors(self):
        with self._lock:
            return list(self._tls_errors)

    def reset(self):
        """Forgets stored requests and TLS errors (behaviour and port unchanged)."""
        with self._lock:
            self._requests.clear()
            self._tls_errors.clear()
            self._connections = 0

    def describe(self, last=40):
        """The last requests, one line each, for assertion messages."""
        reqs = self.requests()
        lines = [r.summary() for r in reqs[-last:]]
        if len(reqs) > last:
            lines.insert(0, f"... {len(reqs) - last} earlier requests")
        for t, addr, msg in self.tls_errors()[-5:]:
            lines.append(f"TLS error from {addr[0]}: {msg}")
        return "\n".join(lines) or "<no requests>"

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# ----------------------------------------------------------------------------------------------
# Certificates with the openssl CLI (harness.make_ca / make_signed, as test_tls.py makes them)

def make_pki(directory):
    """CAs and certificates for the backend tests, in `directory`. Returns a dict of paths:
    ca (signs the servers), server/server_key (SAN IP:127.0.0.1, DNS:localhost),
    wrong_name/wrong_name_key (signed by ca, SAN DNS:wrong.invalid only),
    client_ca, client/client_key (signed by client_ca, clientAuth),
    other_ca, stranger/stranger_key (a client certificate signed by other_ca)."""
    os.makedirs(directory, exist_ok=True)
    for ca in ("ca", "client-ca", "other-ca"):
        h.make_ca(directory, ca)
    h.make_signed(directory, "server", "ca",
                "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
                "extendedKeyUsage=serverAuth")
    h.make_signed(directory, "wrong-name", "ca",
                "basicConstraints=CA:FALSE\nsubjectAltName=DNS:wrong.invalid\n"
                "extendedKeyUsage=serverAuth")
    h.make_signed(directory, "client", "client-ca",
                "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth")
    h.make_signed(directory, "stranger", "other-ca",
                "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth")
    p = lambda n: os.path.join(directory, n)  # noqa: E731
    return {"ca": p("ca.pem"), "server": p("server.pem"), "server_key": p("server-key.pem"),
            "wrong_name": p("wrong-name.pem"), "wrong_name_key": p("wrong-name-key.pem"),
            "client_ca": p("client-ca.pem"), "client": p("client.pem"),
            "client_key": p("client-key.pem"), "other_ca": p("other-ca.pem"),
            "stranger": p("stranger.pem"), "stranger_key": p("stranger-key.pem")}


if __name__ == "__main__":  # a manual receiver: python3 backend_receiver.py [PORT]
    rx = BackendReceiver(port=int(sys.argv[1]) if len(sys.argv) > 1 else None, log=print)
    rx.start()
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        rx.stop()
