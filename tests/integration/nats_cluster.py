"""A private NATS JetStream cluster for the integration tests, and a minimal NATS client.

Debian's nats-server (2.9, /usr/sbin) runs N nodes on loopback (client, cluster and monitoring
ports chosen once, kept across restarts), each with its own config, JetStream store and log in
WORK_DIR/nK/. The client speaks the text protocol over a socket (INFO/CONNECT, PUB/HPUB, SUB,
MSG/HMSG, PING/PONG) with user/password, token, NKey or TLS (client certificate optional), and
is enough to drive JetStream through its JSON API ($JS.API.*): create a stream, find its leader,
read a subject back message by message. Debian's /usr/bin/python3, stdlib only (openssl CLI for
the Ed25519 keys of NKeys).

By hand: python3 nats_cluster.py [WORK_DIR] starts a 3-node cluster and shows a round trip.
"""

import base64
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"  # Debian: /usr/sbin
NO_MESSAGE = 10037  # JetStream err_code of "no message found" (MSG.GET past the end)


# ----------------------------------------------------------------------------------------------
# NKeys: Ed25519 keys in NATS's text form (base32 of prefix + key + CRC-16/XMODEM, no padding)

PREFIX_SEED = 18 << 3  # "S"
PREFIX_USER = 20 << 3  # "U"


def crc16_xmodem(data):
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def _nkey_text(raw):
    raw += crc16_xmodem(raw).to_bytes(2, "little")
    return base64.b32encode(raw).decode().rstrip("=")


def encode_user_seed(seed32):
    """The "SU..." seed of a user key: two prefix bytes (seed, user) + 32 raw bytes."""
    b1 = PREFIX_SEED | (PREFIX_USER >> 5)
    b2 = (PREFIX_USER & 31) << 3
    return _nkey_text(bytes([b1, b2]) + seed32)


def encode_user_public(pub32):
    """The "U..." public key of a user: one prefix byte + 32 raw bytes."""
    return _nkey_text(bytes([PREFIX_USER]) + pub32)


def decode_nkey(text):
    """Raw bytes (prefix included, CRC checked and removed) of an NKey text."""
    padded = text + "=" * (-len(text) % 8)
    raw = base64.b32decode(padded)
    body, crc = raw[:-2], int.from_bytes(raw[-2:], "little")
    if crc16_xmodem(body) != crc:
        raise ValueError("NKey checksum mismatch")
    return body


class NKeyUser:
    """An Ed25519 user key made with openssl: .seed ("SU..."), .public ("U..."), .pem (the
    private key for openssl), .seed_file (the seed and a newline, mode 0600)."""

    def __init__(self, directory, name="nkey-user"):
        os.makedirs(directory, exist_ok=True)
        self.pem = os.path.join(directory, f"{name}.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", self.pem],
                       check=True, capture_output=True, timeout=30)
        priv_der = subprocess.run(["openssl", "pkey", "-in", self.pem, "-outform", "DER"],
                                  check=True, capture_output=True, timeout=30).stdout
        pub_der = subprocess.run(["openssl", "pkey", "-in", self.pem, "-pubout", "-outform",
                                  "DER"], check=True, capture_output=True, timeout=30).stdout
        # PKCS#8 and SubjectPublicKeyInfo of Ed25519 both end with the 32 raw key bytes.
        self.seed = encode_user_seed(priv_der[-32:])
        self.public = encode_user_public(pub_der[-32:])
        self.seed_file = os.path.join(directory, f"{name}.seed")
        with open(self.seed_file, "w") as f:
            f.write(self.seed + "\n")
        os.chmod(self.seed_file, 0o600)

    def sign(self, nonce):
        """base64url (no padding) Ed25519 signature of the server's nonce, for CONNECT sig."""
        with tempfile.NamedTemporaryFile() as f:
            f.write(nonce.encode())
            f.flush()
            sig = subprocess.run(["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", self.pem,
                                  "-in", f.name], check=True, capture_output=True,
                                 timeout=30).stdout
        return base64.urlsafe_b64encode(sig).decode().rstrip("=")


# ----------------------------------------------------------------------------------------------
# A minimal client

class NatsError(Exception):
    pass


class JsError(NatsError):
    """A JetStream API error answer: .code (HTTP-like), .err_code, .description."""

    def __init__(self, code, err_code, description):
        super().__init__(f"JetStream error {code}/{err_code}: {description}")
        self.code, self.err_code, self.description = code, err_code, description


class Msg:
    def __init__(self, subject, reply, headers, status, data):
        self.subject, self.reply, self.headers, self.status, self.data = (
            subject, reply, headers, status, data)

    def __repr__(self):
        return f"Msg({self.subject!r}, status={self.status}, headers={self.headers}, " \
               f"data={self.data[:200]!r})"


def encode_headers(headers):
    text = "NATS/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return text.encode()


def parse_headers(raw):
    """(status or None, {name: value}) of a NATS header block ("NATS/1.0 503\\r\\nK: V...")."""
    lines = raw.decode(errors="replace").split("\r\n")
    first = lines[0].split(None, 2)
    status = int(first[1]) if len(first) > 1 and first[1].isdigit() else None
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip()] = v.strip()
    return status, headers


class NatsClient:
    """One connection to one server, used from one thread. Connect errors and -ERR answers
    raise NatsError with the server's words."""

    def __init__(self, host, port, user=None, password=None, token=None, nkey=None,
                 ca_file=None, cert_file=None, key_file=None, timeout=5.0):
        self.timeout = timeout
        self.buf = b""
        self.sid = 0
        self.inbox = "_INBOX." + secrets.token_hex(8)
        self.sock = socket.create_connection((host, port), timeout=timeout)
        try:
            self.info = self._read_info()
            tls_wanted = ca_file or cert_file
            if self.info.get("tls_required") or tls_wanted:
                ctx = ssl.create_default_context(cafile=ca_file)
                if cert_file:
                    ctx.load_cert_chain(cert_file, key_file)
                self.sock = ctx.wrap_socket(self.sock, server_hostname=host)
            opts = {"verbose": False, "pedantic": False, "headers": True,
                    "no_responders": True, "protocol": 1, "lang": "python-zit",
                    "version": "0", "name": "zit-admin"}
            if user is not None:
                opts.update(user=user, pass_=password)
            if token is not None:
                opts["auth_token"] = token
            if nkey is not None:
                opts.update(nkey=nkey.public, sig=nkey.sign(self.info.get("nonce", "")))
            text = json.dumps(opts).replace('"pass_"', '"pass"')
            self._send(f"CONNECT {text}\r\nPING\r\n".encode())
            while True:
                op = self._read_op(time.monotonic() + timeout)
                if op[0] == "PONG":
                    break
            self._send(f"SUB {self.inbox}.* 1\r\n".encode())
        except BaseException:
            self.close()
            raise

    def _read_info(self):
        line = self._read_line(time.monotonic() + self.timeout)
        if not line.startswith(b"INFO "):
            raise NatsError(f"expected INFO, got {line[:200]!r}")
        return json.loads(line[5:])

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out")
        self.sock.settimeout(left)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise NatsError("connection closed by the server")
        self.buf += chunk

    def _read_line(self, deadline):
        while b"\r\n" not in self.buf:
            self._fill(deadline)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _read_bytes(self, n, deadline):
        while len(self.buf) < n + 2:
            self._fill(deadline)
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _read_op(self, deadline):
        """The next protocol operation: ("PONG",), ("MSG", Msg), ... Answers PINGs; raises
        NatsError on -ERR."""
        while True:
            line = self._read_line(deadline)
            word = line.split(b" ", 1)[0].upper()
            if word == b"PING":
                self._send(b"PONG\r\n")
            elif word == b"PONG":
                return ("PONG",)
            elif word in (b"+OK", b"INFO"):
                continue
            elif word == b"-ERR":
                raise NatsError(f"server error: {line[5:].decode(errors='replace')}")
            elif word in (b"MSG", b"HMSG"):
                parts = line.decode().split(" ")
                if word == b"MSG":
                    subject, reply = parts[1], (parts[3] if len(parts) == 5 else None)
                    n = int(parts[-1])
                    payload = self._read_bytes(n, deadline)
                    return ("MSG", Msg(subject, reply, {}, None, payload))
                subject, reply = parts[1], (parts[3] if len(parts) == 6 else None)
                hlen, total = int(parts[-2]), int(parts[-1])
                payload = self._read_bytes(total, deadline)
                status, headers = parse_headers(payload[:hlen])
                return ("MSG", Msg(subject, reply, headers, status, payload[hlen:]))
            else:
                raise NatsError(f"unexpected protocol line {line[:200]!r}")

    def publish(self, subject, data=b"", headers=None, reply=None):
        data = data.encode() if isinstance(data, str) else data
        r = f" {reply}" if reply else ""
        if headers:
            hdr = encode_headers(headers)
            self._send(f"HPUB {subject}{r} {len(hdr)} {len(hdr) + len(data)}\r\n".encode()
                       + hdr + data + b"\r\n")
        else:
            self._send(f"PUB {subject}{r} {len(data)}\r\n".encode() + data + b"\r\n")

    def request(self, subject, payload=b"", timeout=None, headers=None):
        """Publishes with a fresh reply subject and returns the first answer (a Msg; status 503
        with no data means no responders). socket.timeout when none comes in time."""
        timeout = self.timeout if timeout is None else timeout
        self.sid += 1
        reply = f"{self.inbox}.{self.sid}"
        self.publish(subject, payload, headers, reply)
        deadline = time.monotonic() + timeout
        while True:
            op = self._read_op(deadline)
            if op[0] == "MSG" and op[1].subject == reply:
                return op[1]

    def flush(self, timeout=None):
        self._send(b"PING\r\n")
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while self._read_op(deadline)[0] != "PONG":
            pass


def js_answer(msg, what):
    """The JSON of a JetStream API answer; raises JsError on an error answer and NatsError on
    no responders."""
    if msg.status == 503 and not msg.data:
        raise NatsError(f"{what}: no responders (JetStream not available)")
    body = json.loads(msg.data)
    err = body.get("error")
    if err:
        raise JsError(err.get("code"), err.get("err_code"), err.get("description"))
    return body


# ----------------------------------------------------------------------------------------------
# The cluster

class Node:
    def __init__(self, index, directory):
        self.index = index
        self.name = f"n{index + 1}"
        self.dir = directory
        self.port = h.free_port()
        self.cluster_port = h.free_port()
        self.http_port = h.free_port()
        self.config = os.path.join(directory, "nats.conf")
        self.log_path = os.path.join(directory, "nats-server.log")
        self.proc = None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


def permissions_text(perms):
    """`, permissions: {...}` of a user entry from {"publish": [...], "subscribe": [...]}
    (allow lists), or "" for none."""
    if not perms:
        return ""
    parts = [f"{what}: {{allow: {json.dumps(perms[what])}}}"
             for what in ("publish", "subscribe") if what in perms]
    return ", permissions: {" + ", ".join(parts) + "}"


class NatsCluster:
    """N JetStream nodes (n1..nN) in one cluster on loopback.

    auth: None, or a dict with any of
      users: {name: password}, token: str, nkeys: [NKeyUser]  (a token excludes the others).
    The admin client (this class's requests) uses `admin` = (name, password) when given, else
    the first user, else the token, else the first NKey.
    tls: None, or a dict: cert, key (the server's), ca (signed the server's cert: the admin
    client trusts it), verify_ca (when set, clients must present a certificate signed by it),
    client_cert, client_key (what the admin client presents then)."""

    def __init__(self, work_dir, nodes=3, auth=None, tls=None, admin=None, name="zit"):
        self.dir = work_dir
        self.auth = auth or {}
        self.tls = tls
        self.cluster_name = name
        os.makedirs(work_dir, exist_ok=True)
        self.nodes = [Node(i, os.path.join(work_dir, f"n{i + 1}")) for i in range(nodes)]
        self._admin = admin
        self._conn = None
        for n in self.nodes:
            os.makedirs(n.dir, exist_ok=True)
            with open(n.config, "w") as f:
                f.write(self.config_text(n))
        self.start_all()

    # ------------------------------------------------------------------ config
    def config_text(self, node):
        routes = ", ".join(f"nats-route://127.0.0.1:{o.cluster_port}"
                           for o in self.nodes if o is not node)
        store = os.path.join(node.dir, "jetstream")
        text = (f'server_name: "{node.name}"\n'
                f"listen: 127.0.0.1:{node.port}\n"
                f"http: 127.0.0.1:{node.http_port}\n"
                f"jetstream {{\n  store_dir: \"{store}\"\n  max_memory_store: 64MB\n"
                f"  max_file_store: 512MB\n}}\n")
        if len(self.nodes) > 1:  # a single node without routes is a standalone server
            text += (f"cluster {{\n  name: \"{self.cluster_name}\"\n"
                     f"  listen: 127.0.0.1:{node.cluster_port}\n  routes: [{routes}]\n}}\n")
        a = self.auth
        if a.get("token"):
            text += f'authorization {{\n  token: "{a["token"]}"\n}}\n'
        elif a.get("users") or a.get("nkeys"):
            perms = a.get("permissions") or {}
            entries = [f'    {{user: "{u}", password: "{p}"{permissions_text(perms.get(u))}}}'
                       for u, p in (a.get("users") or {}).items()]
            entries += [f'    {{nkey: "{k.public}"}}' for k in a.get("nkeys") or []]
            text += "authorization {\n  users: [\n" + "\n".join(entries) + "\n  ]\n}\n"
        if self.tls:
            t = self.tls
            text += f'tls {{\n  cert_file: "{t["cert"]}"\n  key_file: "{t["key"]}"\n'
            if t.get("verify_ca"):
                text += f'  ca_file: "{t["verify_ca"]}"\n  verify: true\n'
            text += "  timeout: 2\n}\n"
        return text

    def urls(self, scheme=None):
        """Comma-separated client URLs of every node, for Backend:Url."""
        scheme = scheme or ("tls" if self.tls else "nats")
        return ",".join(f"{scheme}://127.0.0.1:{n.port}" for n in self.nodes)

    # ------------------------------------------------------------------ processes
    def start(self, i, wait=True):
        n = self.nodes[i]
        if n.alive():
            return
        out = open(n.log_path, "ab")
        out.write(f"\n==== start {time.strftime('%H:%M:%S')} ====\n".encode())
        out.flush()
        n.proc = subprocess.Popen([NATS_SERVER, "-c", n.config], stdout=out, stderr=out,
                                  stdin=subprocess.DEVNULL)
        out.close()
        h.log(f"nats {n.name} started (pid {n.proc.pid}) port {n.port}")
        if wait:
            self._wait_port(n)

    def _wait_port(self, n, timeout=20):
        def up():
            if not n.alive():
                raise AssertionError(f"nats-server {n.name} exited {n.proc.returncode}:\n"
                                     f"{h.tail(n.log_path)}")
            return h.port_open(n.port)
        h.wait_until(up, timeout, f"nats-server {n.name} on port {n.port}")

    def kill(self, i):
        """SIGKILL node i and wait for it."""
        n = self.nodes[i]
        if n.alive():
            n.proc.send_signal(signal.SIGKILL)
            n.proc.wait(10)
            h.log(f"nats {n.name} killed")
        self._drop_conn()

    def stop(self, i, timeout=15):
        n = self.nodes[i]
        if n.alive():
            h.terminate(n.proc, timeout)
            h.log(f"nats {n.name} stopped")
        self._drop_conn()

    def start_all(self, timeout=40):
        for i in range(len(self.nodes)):
            self.start(i, wait=False)
        for n in self.nodes:
            self._wait_port(n)
        self.wait_meta_leader(timeout)

    def stop_all(self):
        for i in range(len(self.nodes)):
            self.stop(i)

    def close(self):
        self._drop_conn()
        for i in range(len(self.nodes)):
            self.kill(i)

    def logs(self, max_chars=3000):
        return "\n".join(f"--- {n.name} ({n.log_path}) ---\n{h.tail(n.log_path, max_chars)}"
                         for n in self.nodes)

    # ------------------------------------------------------------------ monitoring
    def jsz(self, i):
        url = f"http://127.0.0.1:{self.nodes[i].http_port}/jsz"
        with urllib.request.urlopen(url, timeout=2) as r:
            return json.loads(r.read())

    def meta_leader(self):
        """The meta leader's name when every running node agrees on one, else None."""
        if len(self.nodes) == 1:  # standalone: JetStream up is enough
            n = self.nodes[0]
            return n.name if n.alive() and "config" in self.jsz(0) else None
        leaders = set()
        for n in self.nodes:
            if n.alive():
                leaders.add((self.jsz(n.index).get("meta_cluster") or {}).get("leader") or "")
        return leaders.pop() if len(leaders) == 1 and "" not in leaders else None

    def wait_meta_leader(self, timeout=40):
        try:
            return h.wait_until(self.meta_leader, timeout, "a JetStream meta leader",
                                interval=0.2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.logs(1500)}")

    # ------------------------------------------------------------------ client
    def client(self, i, **kw):
        """A new client connection to node i with the admin credentials."""
        n = self.nodes[i]
        opts = {}
        a = self.auth
        if self._admin:
            opts.update(user=self._admin[0], password=self._admin[1])
        elif a.get("users"):
            u, p = next(iter(a["users"].items()))
            opts.update(user=u, password=p)
        elif a.get("token"):
            opts["token"] = a["token"]
        elif a.get("nkeys"):
            opts["nkey"] = a["nkeys"][0]
        if self.tls:
            opts.update(ca_file=self.tls["ca"])
            if self.tls.get("verify_ca"):
                opts.update(cert_file=self.tls["client_cert"], key_file=self.tls["client_key"])
        opts.update(kw)
        return NatsClient("127.0.0.1", n.port, **opts)

    def _drop_conn(self):
        if self._conn:
            self._conn.close()
            self._conn = None

    def request(self, subject, payload=b"", timeout=5.0, headers=None):
        """A request through a cached admin connection to any running node; a broken
        connection is replaced once by one to another node."""
        payload = json.dumps(payload) if isinstance(payload, dict) else payload
        last = None
        for _ in range(2):
            if self._conn is None:
                for n in self.nodes:
                    if n.alive():
                        try:
                            self._conn = self.client(n.index)
                            break
                        except (OSError, NatsError) as exc:
                            last = exc
                if self._conn is None:
                    raise NatsError(f"no node accepts a connection: {last!r}")
            try:
                return self._conn.request(subject, payload, timeout, headers)
            except socket.timeout:
                raise
            except (OSError, NatsError) as exc:
                last = exc
                self._drop_conn()
        raise NatsError(f"request {subject}: {last!r}")

    def js(self, subject, payload=b"", timeout=5.0):
        return js_answer(self.request(subject, payload, timeout), subject)

    def js_retry(self, subject, payload=b"", timeout=30.0, what=None):
        """js() retried while the cluster is electing (no responders, timeouts, 503 errors,
        broken connections) until `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.js(subject, payload, timeout=min(3.0, timeout))
            except JsError as exc:
                if exc.code not in (503, 500, 408) or time.monotonic() > deadline:
                    raise
                last = exc
            except (OSError, NatsError) as exc:
                if time.monotonic() > deadline:
                    raise NatsError(f"{what or subject}: {exc!r}")
                last = exc
            h.log(f"retrying {what or subject}: {last!r}")
            time.sleep(0.3)

    # ------------------------------------------------------------------ JetStream admin
    def create_stream(self, name, subjects, replicas=3, duplicate_window_s=120, **extra):
        cfg = {"name": name, "subjects": list(subjects), "storage": "file",
               "retention": "limits", "num_replicas": replicas, "discard": "old",
               "duplicate_window": int(duplicate_window_s * 1e9), **extra}
        return self.js_retry(f"$JS.API.STREAM.CREATE.{name}", json.dumps(cfg),
                             what=f"create stream {name}")

    def create_stream_from(self, path):
        """The stream of a configuration file (deploy/nats/), as `nats stream add --config`
        sends it."""
        with open(path) as f:
            cfg = json.load(f)
        return self.js_retry(f"$JS.API.STREAM.CREATE.{cfg['name']}", json.dumps(cfg),
                             what=f"create stream {cfg['name']} from {os.path.basename(path)}")

    def consume(self, stream, consumer_path, want, timeout=30.0):
        """docs/fleet.md "Reading the stream": the durable pull consumer of `consumer_path`
        created on `stream`, then messages fetched in batches (CONSUMER.MSG.NEXT) and each
        acknowledged (+ACK on its reply subject) until `want` have come or `timeout` passes.
        Returns the messages in the order they came."""
        with open(consumer_path) as f:
            cfg = json.load(f)
        durable = cfg["durable_name"]
        self.js_retry(f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{durable}",
                      json.dumps({"stream_name": stream, "config": cfg}),
                      what=f"create consumer {durable}")
        client = self.client(0)
        got = []
        deadline = time.monotonic() + timeout
        try:
            while len(got) < want and time.monotonic() < deadline:
                client.sid += 1
                reply = f"{client.inbox}.{client.sid}"
                client.publish(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}",
                               json.dumps({"batch": want - len(got), "expires": 1_000_000_000}),
                               reply=reply)
                end = min(deadline, time.monotonic() + 3)
                while len(got) < want:
                    try:
                        op = client._read_op(end)
                    except socket.timeout:
                        break
                    if op[0] != "MSG":
                        continue
                    msg = op[1]
                    if msg.subject == reply and msg.status is not None:
                        break  # 404 no messages now, 408 the request expired
                    if (msg.reply or "").startswith("$JS.ACK."):  # a stream message
                        client.publish(msg.reply, b"+ACK")
                        got.append(msg)
            client.flush()
        finally:
            client.close()
        return got

    def delete_stream(self, name):
        return self.js_retry(f"$JS.API.STREAM.DELETE.{name}", what=f"delete stream {name}")

    def stream_info(self, name, timeout=30.0):
        return self.js_retry(f"$JS.API.STREAM.INFO.{name}", timeout=timeout,
                             what=f"stream info {name}")

    def stream_leader(self, name, timeout=30.0):
        """Index of the node leading the stream (waits for one)."""
        def leader():
            info = self.stream_info(name, timeout)
            return (info.get("cluster") or {}).get("leader")
        n = h.wait_until(leader, timeout, f"a leader of stream {name}", interval=0.2)
        return int(n[1:]) - 1

    def get_msg(self, stream, request, timeout=30.0):
        """A MSG.GET answer decoded: (seq, headers, data) or None when there is no such
        message."""
        try:
            body = self.js_retry(f"$JS.API.STREAM.MSG.GET.{stream}", json.dumps(request),
                                 timeout=timeout, what=f"get {request} from {stream}")
        except JsError as exc:
            if exc.err_code == NO_MESSAGE or exc.code == 404 and "no message" in str(
                    exc.description):
                return None
            raise
        m = body["message"]
        hdrs = {}
        if m.get("hdrs"):
            _, hdrs = parse_headers(base64.b64decode(m["hdrs"]))
        return m["seq"], hdrs, base64.b64decode(m.get("data") or "")

    def read_subject(self, stream, subject, timeout=30.0):
        """Every message of `subject` in stream order: [(seq, headers, data)]."""
        out, seq = [], 1
        while True:
            m = self.get_msg(stream, {"seq": seq, "next_by_subj": subject}, timeout)
            if m is None:
                return out
            out.append(m)
            seq = m[0] + 1

    def last_msg(self, stream, subject, timeout=30.0):
        return self.get_msg(stream, {"last_by_subj": subject}, timeout)

    def js_publish(self, subject, data, headers=None, timeout=5.0):
        """Publishes and returns the JetStream ack (dict); raises JsError on an error ack."""
        msg = self.request(subject, data, timeout, headers)
        return js_answer(msg, f"publish {subject}")


def nats_subject_token(hostname):
    """The agent's host token: every character outside [A-Za-z0-9_-] becomes "_"."""
    return "".join(c if c.isalnum() and c.isascii() or c in "_-" else "_" for c in hostname)


if __name__ == "__main__":  # a manual round trip
    work = sys.argv[1] if len(sys.argv) > 1 else h.make_workdir("zit-nats-")
    c = NatsCluster(work)
    try:
        h.log(f"urls {c.urls()} meta leader {c.meta_leader()}")
        h.log(f"stream {c.create_stream('ZIT', ['zit.>'])['config']['name']}")
        for i in range(3):
            h.log(f"ack {c.js_publish('zit.a', f'm{i}', {'Nats-Msg-Id': f'id{i}'})}")
        h.log(f"read {c.read_subject('ZIT', 'zit.a')}")
    finally:
        c.close()
