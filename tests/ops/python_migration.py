"""A whole postcopy migration driven by the Python client (package
postcopyd, from build/client/python): the destination daemon over its Unix
socket, the source daemon over TCP with mutual TLS. prepare, migrate,
watch until completed (Cancel refused on both sides once switched over,
the bulk limit raised live), status; error paths raise RpcError with the
daemon's code and message. Every page is verified by the destination guest
and by the daemons' digests.

    python_migration.py T GUEST   (T: the harness's work dir with dst.ctl,
                                   src/dst.vmm, certs/, src.tcp = port)
"""
import json
import os
import subprocess
import sys
import time

from postcopyd import Client, RpcError, StatusCode
from postcopyd.client import SERVICE

T, GUEST = sys.argv[1], sys.argv[2]
CERTS = os.path.join(T, "certs")
ID, SIZE, PAGES = "py", "64M", 16384


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def expect_error(code, fn, **kw):
    try:
        fn(**kw)
    except RpcError as e:
        if e.code != code:
            fail("%s(%s): %s, want %s" % (fn.__name__, kw, e, code.name))
        return e
    fail("%s(%s) succeeded, want %s" % (fn.__name__, kw, code.name))


def guest(role, log, *args):
    out = open(os.path.join(T, "%s.py.json" % role), "w")
    return subprocess.Popen([GUEST, "--role", role, "--id", ID, "-S",
                             os.path.join(T, "%s.vmm" % ("dst" if role == "dest" else "src")),
                             "-s", SIZE, "-j", "-q", "--timeout", "120", *args],
                            stdout=out, stderr=open(os.path.join(T, log), "w"))


# Every RPC of the service is a method, derived from the descriptor.
names = [m.name for m in SERVICE.methods]
for m in SERVICE.methods:
    snake = "".join("_" + c.lower() if c.isupper() else c for c in m.name).lstrip("_")
    if not callable(getattr(Client, snake, None)):
        fail("no Client.%s for RPC %s" % (snake, m.name))
print("ok: Client has a method for each of the %d RPCs: %s" % (len(names), ", ".join(names)))

port = open(os.path.join(T, "src.tcp")).read().strip()
dst = Client(unix=os.path.join(T, "dst.ctl"))
src = Client(tcp="127.0.0.1:" + port, tls_dir=CERTS)
v = src.version()
print("ok: source over TCP + mutual TLS: postcopyd %s, protocol %d; destination over %s"
      % (v.version, v.protocol, dst.address))

# Errors carry the status code and the daemon's message.
e = expect_error(StatusCode.NOT_FOUND, dst.cancel, id="no-such-id")
if "no-such-id" not in e.message or e.code_name != "NOT_FOUND":
    fail("RpcError: %r %r" % (e.code_name, e.message))
expect_error(StatusCode.NOT_FOUND, lambda **kw: list(dst.watch(**kw)), id="no-such-id")
expect_error(StatusCode.INVALID_ARGUMENT, dst.prepare, id="bad id!", listen="127.0.0.1:0")
print("ok: errors raise RpcError: %s" % e)

# 1. destination: prepare; its guest waits for the pages
addr = dst.prepare(id=ID, listen="127.0.0.1:0", tls={"dir": CERTS}).listen
print("ok: prepared %s on the destination, listening on %s" % (ID, addr))
dguest = guest("dest", "dguest.py.log", "-w", "threads", "-p", "hotset", "-d", "2")
# 2. source: migrate at 8 MB/s on the bulk stream, so postcopy lasts
src.migrate(id=ID, dest=addr, tls={"dir": CERTS}, bandwidth_bps=8 << 20)
sguest = guest("source", "sguest.py.log")
print("ok: migrate %s to %s started on the source" % (ID, addr))

# 3. watch until it ends; in postcopy, Cancel is refused on both sides
states, refused, events, last = [], False, 0, None
watcher = Client(unix=os.path.join(T, "dst.ctl"))
for ev in watcher.watch(id=ID, interval_ms=100):
    events += 1
    last = ev
    st = ev.info.state
    if not states or states[-1] != st:
        states.append(st)
    if st == "postcopy" and not refused:
        for side, c in (("source", src), ("destination", dst)):
            try:
                c.cancel(id=ID)
                fail("Cancel accepted on the %s after switchover" % side)
            except RpcError as e:
                why = e
                if e.code != StatusCode.FAILED_PRECONDITION:
                    if "completed" in e.message:
                        break       # finished meanwhile (a loaded machine)
                    fail("Cancel in postcopy on the %s: %s" % (side, e))
        else:
            refused = True
            print("ok: in postcopy: Cancel refused on both sides: %s" % why)
            src.set_bandwidth(id=ID, bandwidth_bps=64 << 20)
if not last.final or last.info.state != "completed":
    fail("watch ended with %s (final %s): %s" % (last.info.state, last.final, last.info.errmsg))
if last.info.pages_valid != PAGES or last.info.pages_total != PAGES:
    fail("last event: %d of %d pages valid" % (last.info.pages_valid, last.info.pages_total))
if "postcopy" not in states:
    fail("no postcopy event in the watch: %s" % states)
if not refused:
    print("note: completed before Cancel could be tried in postcopy")
print("ok: watch: %d events, states %s, %d/%d pages valid" % (
    events, " -> ".join(states), last.info.pages_valid, last.info.pages_total))

# 4. both guests verified every page; both daemons completed
for name, p in (("destination", dguest), ("source", sguest)):
    rc = p.wait(timeout=120)
    if rc != 0:
        fail("%s guest exited %d" % (name, rc))
g = json.load(open(os.path.join(T, "dest.py.json")))
if g["pages_total"] != PAGES or g["pages_verified"] != PAGES or g["mismatched"] != 0:
    fail("destination guest: %s" % g)
print("ok: destination guest verified %d/%d pages, 0 mismatched" % (g["pages_verified"], PAGES))
for _ in range(100):
    s = src.status(id=ID).migrations[0]
    if s.state == "completed":
        break
    time.sleep(0.05)
d = dst.status(id=ID).migrations[0]
if s.state != "completed" or d.state != "completed":
    fail("status: source %s, destination %s" % (s.state, d.state))
if d.pages_verified != PAGES or d.pages_mismatched != 0:
    fail("destination daemon verified %d, %d mismatched" % (d.pages_verified, d.pages_mismatched))
if refused and s.bandwidth_bps != 64 << 20:
    fail("set_bandwidth: source limit %d" % s.bandwidth_bps)
print("ok: status: both completed; destination daemon verified %d/%d pages against the "
      "source's digests; %d bulk + %d urgent pages, %d remote faults, downtime %d ms"
      % (d.pages_verified, PAGES, d.pages_sent_bulk, d.pages_sent_urgent,
         d.faults_remote, d.downtime_ms))
e = expect_error(StatusCode.FAILED_PRECONDITION, src.cancel, id=ID)
print("ok: Cancel after completion refused: %s" % e)
for c in (src, dst, watcher):
    c.close()
