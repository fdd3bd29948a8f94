#!/usr/bin/python3
"""Fault 6: a broken engine. The one test where a tiny server stands in for the engine, because
a real one cannot produce these faults: a malformed JSON line in the event stream, and a stream
closed in the middle of a line.

The server (http.server on a unix socket) answers /_ping (Api-Version: 1.41), /version, an
empty /containers/json, 404 for every /containers/{id}/json, and /events with the lines of
tests/fixtures/engine/events-lifecycle.ndjson (captured from a real engine):
  connection 1: event 1, the malformed line {"Type":"container","Action":, event 2, then half
                of event 3, and the connection is closed;
  later ones:   like the engine, the events with timeNano >= since (inclusive), then silence.
The agent must not crash, must resume with since=<event 2's time>, record every valid event
exactly once, count the decode error (engine_errors_total{kind="decode"}), count the reconnect,
and write no gap (the replay begins with its cursor event)."""

import http.server
import json
import os
import socketserver
import sys
import threading
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

ARGS = None
MALFORMED = b'{"Type":"container","Action":'


class FakeEngine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path, events, version_body):
        self.events = events            # raw lines (bytes, no newline)
        self.version_body = version_body
        self.requests = []              # (method, path)
        self.event_connections = 0
        self.closing = threading.Event()
        super().__init__(path, Handler)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def address_string(self):  # unix socket: no peer address
        return "unix"

    def log_message(self, fmt, *args):
        pass

    def send_json(self, status, body, extra=()):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Api-Version", "1.41")
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        srv = self.server
        srv.requests.append(("GET", self.path))
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        if path.startswith("/v") and path[2:3].isdigit():
            path = "/" + path.split("/", 2)[2]
        if path == "/_ping":
            self.send_response(200)
            for k, v in (("Api-Version", "1.41"), ("Content-Type", "text/plain; charset=utf-8"),
                         ("Docker-Experimental", "false"), ("Ostype", "linux"),
                         ("Content-Length", "2")):
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(b"OK")
        elif path == "/version":
            self.send_json(200, srv.version_body)
        elif path == "/containers/json":
            self.send_json(200, [])
        elif path.startswith("/containers/") and path.endswith("/json"):
            cid = path.split("/")[2]
            self.send_json(404, {"message": f"No such container: {cid}"})
        elif path == "/events":
            self.stream_events(urllib.parse.parse_qs(url.query))
        else:
            self.send_json(404, {"message": "page not found"})

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def stream_events(self, query):
        srv = self.server
        srv.event_connections += 1
        n = srv.event_connections
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Api-Version", "1.41")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        if n == 1:
            self.chunk(srv.events[0] + b"\n")
            self.chunk(MALFORMED + b"\n")
            self.chunk(srv.events[1] + b"\n")
            half = srv.events[2][:len(srv.events[2]) // 2]
            self.chunk(half)
            self.close_connection = True
            self.wfile.flush()
            self.connection.shutdown(2)  # mid-line, mid-transfer: no terminating chunk
            return
        since = query.get("since", [None])[0]
        since_ns = None
        if since:
            secs, _, frac = since.partition(".")
            since_ns = int(secs) * 1_000_000_000 + int((frac + "000000000")[:9])
        for line in srv.events:
            if since_ns is None or json.loads(line)["timeNano"] >= since_ns:
                self.chunk(line + b"\n")
        srv.closing.wait()  # a live stream with nothing more to say
        self.close_connection = True


class BrokenEngine(h.WorkspaceTest):
    def test_malformed_line_and_stream_closed_mid_line(self):
        fixtures = os.path.join(ARGS.source_dir, "tests", "fixtures", "engine")
        with open(os.path.join(fixtures, "events-lifecycle.ndjson"), "rb") as f:
            lines = [x for x in f.read().split(b"\n") if x.strip()]
        with open(os.path.join(fixtures, "version.json"), "rb") as f:
            version = f.read().strip()
        events = [json.loads(x) for x in lines]
        sock = os.path.join(self.ws.dir, "engine.sock")
        srv = FakeEngine(sock, lines, version)
        thread = threading.Thread(target=srv.serve_forever, daemon=True)
        thread.start()

        def stop_server():
            srv.closing.set()
            srv.shutdown()
            srv.server_close()
        self.ws.on_cleanup(stop_server)

        agent = self.ws.agent(ARGS.agent, "unix://" + sock, reconnect_max_backoff=1)
        agent.start()
        agent.wait_ready()
        missing = h.wait_recorded(agent, [h.expected_event_id(e) for e in events], timeout=30)
        self.assertTrue(agent.alive(), "the agent must survive a broken engine")
        destroyed = sorted({e["Actor"]["ID"] for e in events})
        problems = h.wait_table_agrees(None, agent, destroyed_ids=destroyed)
        decode = agent.metric_value("zastava_agent_engine_errors_total", {"kind": "decode"})
        reconnects = agent.metric_value("zastava_agent_stream_reconnects_total") or 0
        code, _ = agent.stop()
        self.assertEqual(code, 0, h.tail(agent.log_path))
        srv.closing.set()
        file_problems, stats, records = h.ledger_file_problems(agent.data_dir, events,
                                                               ARGS.source_dir)
        problems += file_problems
        if missing:
            problems.append(f"{len(missing)} valid events never reached SQLite")
        if not (decode or 0) >= 1:
            problems.append(f"engine_errors_total{{kind=decode}} {decode}, want >= 1")
        if reconnects < 1:
            problems.append(f"stream_reconnects_total {reconnects}, want >= 1")
        event_paths = [p for m, p in srv.requests if "/events" in p]
        h.log(f"agent's /events requests: {event_paths}")
        want_since = "since=" + urllib.parse.quote(
            f"{events[1]['timeNano'] // 10**9}.{events[1]['timeNano'] % 10**9:09d}")
        if len(event_paths) < 2 or want_since not in event_paths[1]:
            problems.append(f"the stream closed mid-line was not reopened with "
                            f"{want_since} (the cursor): {event_paths[1:2]}")
        gaps = h.gap_records(records)
        if gaps:
            problems.append(f"{len(gaps)} agent.gap records although the replay began with the "
                            f"cursor event: {[g['gap'] for g in gaps]}")
        bad = [r for m, r in srv.requests if m != "GET"]
        if bad:
            problems.append(f"requests other than GET: {bad}")
        h.fault_row("6 broken engine", int(reconnects), stats,
                    f"decode errors {decode}, {len(gaps)} gaps")
        self.assertEqual(problems, [])


if __name__ == "__main__":
    h.main(globals())
