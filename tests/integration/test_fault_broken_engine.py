#!/usr/bin/python3
"""Fault 6: a broken engine. The one place where a tiny server stands in for the engine, because
a real one cannot produce these faults on demand: a malformed JSON line in the event stream, a
stream closed in the middle of a line, and a stream cut right after an event that the engine
stamped later than the one it delivers next.

The server (http.server on a unix socket) answers /_ping (Api-Version: 1.41), /version, an
empty /containers/json, 404 for every /containers/{id}/json, and /events with the lines of
tests/fixtures/engine/events-lifecycle.ndjson (captured from a real engine, in the order it
delivered them):
  connection 1: what the test says, then the connection is closed;
  later ones:   the engine's own replay (moby daemon/events/events.go, loadBufferedEvents): its
                remembered events walked back from the newest, stopping at the first one older
                than since (inclusive), sent oldest first; then silence.
The fixture itself holds the third fault: the engine stamps an event before it publishes it, so
it delivered event 23 (create 8c25e9a5) after event 22 (die c9ebd07d) although event 23's
timeNano is 2 us smaller. An agent that resumes at since=<event 22's time> asks for a replay
that stops before event 23."""

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

    def __init__(self, path, events, version_body, first_stream):
        self.events = events            # raw lines (bytes, no newline)
        self.first_stream = first_stream  # writes connection 1's events through a Handler
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
            srv.first_stream(self)
            self.close_connection = True
            self.wfile.flush()
            self.connection.shutdown(2)  # no terminating chunk: the stream is cut
            return
        since = query.get("since", [None])[0]
        since_ns = 0
        if since:
            secs, _, frac = since.partition(".")
            since_ns = int(secs) * 1_000_000_000 + int((frac + "000000000")[:9])
        replay = []
        for line in reversed(srv.events):
            if json.loads(line)["timeNano"] < since_ns:
                break
            replay.append(line)
        for line in reversed(replay):
            self.chunk(line + b"\n")
        srv.closing.wait()  # a live stream with nothing more to say
        self.close_connection = True


def since_param(time_nano):
    return "since=" + urllib.parse.quote(f"{time_nano // 10**9}.{time_nano % 10**9:09d}")


# How far before its last event the agent resumes (PipelineOptions::resumeOverlap).
RESUME_OVERLAP_NS = 1_000_000_000


class BrokenEngine(h.WorkspaceTest):
    def run_against(self, name, first_stream):
        """Runs an agent against a FakeEngine whose connection 1 is `first_stream` until every
        valid event is recorded; returns (problems, stats, records, engine, events)."""
        fixtures = os.path.join(ARGS.source_dir, "tests", "fixtures", "engine")
        with open(os.path.join(fixtures, "events-lifecycle.ndjson"), "rb") as f:
            lines = [x for x in f.read().split(b"\n") if x.strip()]
        with open(os.path.join(fixtures, "version.json"), "rb") as f:
            version = f.read().strip()
        events = [json.loads(x) for x in lines]
        sock = os.path.join(self.ws.dir, name + ".sock")
        srv = FakeEngine(sock, lines, version, first_stream)
        thread = threading.Thread(target=srv.serve_forever, daemon=True)
        thread.start()

        def stop_server():
            srv.closing.set()
            srv.shutdown()
            srv.server_close()
        self.ws.on_cleanup(stop_server)

        # The fixture's events are dated when they were captured, older than the default 24 h
        # retention: SQLite would prune them (once a minute) while the test waits for them.
        agent = self.ws.agent(ARGS.agent, "unix://" + sock, name=name, reconnect_max_backoff=1,
                              extra_args=["--event-buffer-retention-hours", "87600"])
        agent.start()
        agent.wait_ready()
        missing = h.wait_recorded(agent, [h.expected_event_id(e) for e in events], timeout=30)
        self.assertTrue(agent.alive(), "the agent must survive a broken engine")
        destroyed = sorted({e["Actor"]["ID"] for e in events})
        problems = h.wait_table_agrees(None, agent, destroyed_ids=destroyed)
        self.decode_errors = agent.metric_value("zastava_agent_engine_errors_total",
                                                {"kind": "decode"}) or 0
        self.reconnects = agent.metric_value("zastava_agent_stream_reconnects_total") or 0
        code, _ = agent.stop()
        self.assertEqual(code, 0, h.tail(agent.log_path))
        srv.closing.set()
        file_problems, stats, records = h.ledger_file_problems(agent.data_dir, events,
                                                               ARGS.source_dir)
        problems += file_problems
        if missing:
            problems.append(f"{len(missing)} valid events never reached SQLite")
        if self.reconnects < 1:
            problems.append(f"stream_reconnects_total {self.reconnects}, want >= 1")
        bad = [r for m, r in srv.requests if m != "GET"]
        if bad:
            problems.append(f"requests other than GET: {bad}")
        event_paths = [p for m, p in srv.requests if "/events" in p]
        h.log(f"agent's /events requests: {event_paths}")
        return problems, stats, records, event_paths, events

    def check_resumed(self, problems, event_paths, records, cursor_event):
        """The cut stream was reopened a little before its last event, and the replay, which
        holds that event, left no gap. Returns the number of gap records."""
        want_since = since_param(cursor_event["timeNano"] - RESUME_OVERLAP_NS)
        if len(event_paths) < 2 or want_since not in event_paths[1]:
            problems.append(f"the cut stream was not reopened with {want_since} (its last event "
                            f"less the resume overlap): {event_paths[1:2]}")
        gaps = h.gap_records(records)
        if gaps:
            problems.append(f"{len(gaps)} agent.gap records although the replay holds the "
                            f"cursor event: {[g['gap'] for g in gaps]}")
        return len(gaps)

    def test_malformed_line_and_stream_closed_mid_line(self):
        """Connection 1: event 0, the malformed line {"Type":"container","Action":, event 1,
        then half of event 2. The agent must not crash, must resume before event 1, record
        every valid event exactly once, count the decode error and the reconnect, and write
        no gap (the replay holds its cursor event)."""
        def first_stream(handler):
            events = handler.server.events
            handler.chunk(events[0] + b"\n")
            handler.chunk(MALFORMED + b"\n")
            handler.chunk(events[1] + b"\n")
            handler.chunk(events[2][:len(events[2]) // 2])

        problems, stats, records, event_paths, events = self.run_against("malformed",
                                                                         first_stream)
        if not self.decode_errors >= 1:
            problems.append(f"engine_errors_total{{kind=decode}} {self.decode_errors}, "
                            f"want >= 1")
        gaps = self.check_resumed(problems, event_paths, records, events[1])
        h.fault_row("6 broken engine", int(self.reconnects), stats,
                    f"decode errors {self.decode_errors}, {gaps} gaps")
        self.assertEqual(problems, [])

    def test_stream_cut_after_a_later_stamped_event(self):
        """Connection 1: events 0..22, then the stream is cut. Event 23 is stamped before
        event 22, so resuming at since=<event 22's time> would make the engine's replay stop
        before it: it would be lost. The agent must resume a little earlier, skip the events it
        already recorded, record event 23 and the rest exactly once, and write no gap."""
        def first_stream(handler):
            for line in handler.server.events[:23]:
                handler.chunk(line + b"\n")

        problems, stats, records, event_paths, events = self.run_against("reordered",
                                                                         first_stream)
        self.assertLess(events[23]["timeNano"], events[22]["timeNano"],
                        "the fixture no longer holds the engine's out-of-order delivery")
        gaps = self.check_resumed(problems, event_paths, records, events[22])
        h.fault_row("6 broken engine: reordered", int(self.reconnects), stats,
                    f"{gaps} gaps")
        self.assertEqual(problems, [])


if __name__ == "__main__":
    h.main(globals())
