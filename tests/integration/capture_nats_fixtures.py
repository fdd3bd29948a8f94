"""Captures what Debian's nats-server answers to the NATS transport's requests into
tests/fixtures/nats (see its README.md). Run against `nats-server -js -p PORT -sd DIR`:
  python3 tests/integration/capture_nats_fixtures.py --port PORT --out tests/fixtures/nats
"""
import argparse
import json
import os
import socket

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()
port, out = args.port, args.out
s=socket.create_connection(("127.0.0.1",port)); f=s.makefile("rb"); f.readline()
s.sendall(b'CONNECT {"verbose":false,"headers":true,"no_responders":true}\r\nSUB _INBOX.x 1\r\n')
def read_reply():
    while True:
        l=f.readline()
        if l.startswith(b"MSG"):
            n=int(l.split()[-1]); return f.read(n+2)[:-2]
        if l.startswith(b"HMSG"):
            parts=l.split(); h=int(parts[-2]); t=int(parts[-1]); d=f.read(t+2)[:-2]; return d
        if l.startswith(b"PING"): s.sendall(b"PONG\r\n")
def req(subj,payload,headers=None):
    p=payload.encode()
    if headers:
        h=("NATS/1.0\r\n"+"".join(f"{k}: {v}\r\n" for k,v in headers.items())+"\r\n").encode()
        s.sendall(b"HPUB %s _INBOX.x %d %d\r\n%s%s\r\n"%(subj.encode(),len(h),len(h)+len(p),h,p))
    else:
        s.sendall(b"PUB %s _INBOX.x %d\r\n%s\r\n"%(subj.encode(),len(p),p))
    return read_reply()
def save(name,data):
    open(os.path.join(out,name),"wb").write(data); print(name, data[:200])
req('$JS.API.STREAM.CREATE.FIXTURES', json.dumps({"name":"FIXTURES","subjects":["fixtures.>"],"storage":"file"}))
rec='{"schema":{"name":"zastava.runtime-event","version":9},"eventId":"0123456789abcdef0123456789abcdef","kind":"agent.gap"}'
save("pub-ack.json", req("fixtures.host", rec, {"Nats-Msg-Id":"e1","Nats-Expected-Last-Subject-Sequence":"0"}))
save("pub-ack-duplicate.json", req("fixtures.host", rec, {"Nats-Msg-Id":"e1"}))
save("pub-ack-wrong-last-sequence.json", req("fixtures.host", rec, {"Nats-Msg-Id":"e2","Nats-Expected-Last-Subject-Sequence":"7"}))
save("msg-get.json", req('$JS.API.STREAM.MSG.GET.FIXTURES', json.dumps({"last_by_subj":"fixtures.host"})))
save("msg-get-no-message.json", req('$JS.API.STREAM.MSG.GET.FIXTURES', json.dumps({"last_by_subj":"fixtures.other"})))
save("msg-get-stream-not-found.json", req('$JS.API.STREAM.MSG.GET.NO_SUCH_STREAM', json.dumps({"last_by_subj":"fixtures.host"})))
req('$JS.API.STREAM.DELETE.FIXTURES', "")
