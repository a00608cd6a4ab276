#!/usr/bin/python3
"""The SMTP client killed at any instant (SPEC 5, DESIGN "Exactly once":
Gateway -> SMTP): no message lost, and no message sent twice beyond what
SMTP itself forces (RFC 1047: a 250 the client never committed).

N messages (PG_DELIVERY_CRASH_MESSAGES, default 300, each with a unique
Subject) are accepted by `postgate smtpd` from a relay_networks client and
routed by `run --no-delivery` to [delivery] relay_host, a scripted SMTP
server (smtpscript.py) that logs every message it takes and waits 30 ms
before each 250 (so a kill finds transactions in every stage).  Then:

1. KILLS times (PG_DELIVERY_CRASH_KILLS, default 25) `postgate queue retry`
   is started and killed with SIGKILL after a random delay (seed printed;
   PG_SEED=S repeats a run).
2. Fault injection: `queue retry` with POSTGATE_FAULT_AFTER=k for k = 1, 2,
   3: the client dies right after its k-th commit of outcomes.
3. `queue retry` until the queue is empty (at most 10 times).

Then: the queue is empty, nothing held; every message reached the server;
and the copies beyond the first are at most what the interruptions can
explain: per interruption, one transaction per connection whose 250 was not
yet committed and one whose data the server took before the 250 was read
(2 x destination_connections).
"""
import asyncio
import os
import random
import signal
import smtplib
import subprocess
import sys
import time
from email.message import EmailMessage

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgbundle as pg  # noqa: E402
import smtpscript as ss  # noqa: E402

t = pg.Tally("delivery-crash")
POSTGATE = os.environ.get("POSTGATE") or os.path.join(os.getcwd(), "postgate")
N = int(os.environ.get("PG_DELIVERY_CRASH_MESSAGES", "300"))
KILLS = int(os.environ.get("PG_DELIVERY_CRASH_KILLS", "25"))
SEED = int(os.environ.get("PG_SEED", str(int(time.time() * 1000) % 1000000)))
CONNS = 4
rnd = random.Random(SEED)
print("seed %d (PG_SEED=%d repeats this run); %d messages, %d kills" % (SEED, SEED, N, KILLS))

top = pg.scratch()
podir, _ = pg.make_po(top, "CORP", "HQ", gateway="CORP/GW", users=[("JSMITH", "J Smith")])
class SlowRelay(ss.Server):
    """Takes each message, then thinks a little before its 250: the client is
    killed with transactions in every stage."""

    async def on_data_end(self, s, data):
        self.accept(s, data)
        await asyncio.sleep(0.03)
        await s.reply("250 2.0.0 Ok: queued as %d-%d" % (s.n, s.accepted))


relay = SlowRelay(hostname="relay.test")
relay.start()
listen = ss.free_port()
CONF = os.path.join(top, "postgate.conf")
with open(CONF, "w") as f:
    f.write("\n".join([
        "[site]", "name = HQ", "domains = example.com", "state_dir = " + os.path.join(top, "state"),
        "gateway_po = CORP/GW", "user =", "proxy_templates = SMTP:%m@example.com", "",
        "[smtpd]", "listen = 127.0.0.1:%d" % listen, "hostname = gw.example.com",
        "relay_networks = 127.0.0.1/32", "",
        "[delivery]", "relay_host = [127.0.0.1]:%d" % relay.port, "tls = none",
        "min_backoff = 1s", "max_backoff = 1s", "timeout = 10s",
        "destination_connections = %d" % CONNS, "",
        "[postoffice CORP/HQ]", "dir = " + podir, "key_file = " + os.path.join(top, "hq.key"), "codepage = CP850",
        ""]))


def gw(*args, env=None):
    p = subprocess.run([POSTGATE, "-c", CONF] + list(args), capture_output=True, timeout=120,
                       env=env)
    p.out = p.stdout.decode("utf-8", "replace")
    p.err = p.stderr.decode("utf-8", "replace")
    return p


def queue():
    import json
    return [json.loads(l) for l in gw("queue", "list", "-j").out.splitlines() if l.strip()]


# ---- fill the queue through the listener
smtpd = subprocess.Popen([POSTGATE, "-c", CONF, "smtpd"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
for _ in range(100):
    try:
        smtplib.SMTP("127.0.0.1", listen, timeout=5).quit()
        break
    except OSError:
        if smtpd.poll() is not None:
            sys.exit("postgate smtpd exited: %s" % smtpd.stderr.read().decode())
        time.sleep(0.1)
with smtplib.SMTP("127.0.0.1", listen, timeout=30) as c:
    for i in range(N):
        m = EmailMessage()
        m["From"] = "news@partner.example"
        m["To"] = "user%d@elsewhere.example" % i
        m["Subject"] = "crash-%d" % i
        m["Message-ID"] = "<crash-%d-%d@partner.example>" % (SEED, i)
        m.set_content("message %d\n" % i + "x" * 2000 + "\n")
        c.send_message(m)
smtpd.send_signal(signal.SIGTERM)
smtpd.wait(timeout=30)
p = gw("run", "--no-delivery")
waiting = [r for m in queue() for r in m["recipients"] if r["state"] == "smtp-pending"]
t.check(p.returncode == 0 and len(waiting) == N,
        "the listener queued %d messages and run --no-delivery made them smtp-pending: %d"
        % (N, len(waiting)))

# ---- 1. random kills
interrupted = 0
for k in range(KILLS):
    proc = subprocess.Popen([POSTGATE, "-c", CONF, "queue", "retry"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(rnd.uniform(0.05, 0.35))
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        interrupted += 1
    proc.wait(timeout=60)
    relay.wait_idle(10)
print("%d of %d retries killed at work; the server has taken %d messages so far"
      % (interrupted, KILLS, len(relay.messages())))

# ---- 2. fault injection after the k-th commit of outcomes
faults = 0
for k in (1, 2, 3):
    if not queue():
        break
    p = gw("queue", "retry", env=dict(os.environ, POSTGATE_FAULT_AFTER=str(k)))
    if p.returncode == -signal.SIGKILL:
        faults += 1
    relay.wait_idle(10)

# ---- 3. finish
for _ in range(10):
    if not queue():
        break
    gw("queue", "retry")
    relay.wait_idle(10)

left = queue()
t.check(not left, "the queue is empty after the final retries: %d message(s) left%s"
        % (len(left), (": " + str(left[0]["recipients"])) if left else ""))
held = [r for m in left for r in m["recipients"] if r["state"] == "held"]
t.check(not held, "nothing held: %s" % held[:3])

subjects = [m.subject for m in relay.messages()]
counts = {}
for s in subjects:
    counts[s] = counts.get(s, 0) + 1
missing = [i for i in range(N) if counts.get("crash-%d" % i, 0) == 0]
t.check(not missing, "every message reached the server: missing %s" % missing[:10])
extra = sum(c - 1 for c in counts.values())
bound = 2 * CONNS * (interrupted + faults)
t.check(extra <= bound,
        "copies beyond the first (%d) are within what %d interruptions explain (%d)"
        % (extra, interrupted + faults, bound))
strangers = [s for s in counts if not s.startswith("crash-")]
t.check(not strangers, "the server took only these messages: %s" % strangers[:3])
t.check(not relay.violations(), "no protocol violation: %s" % relay.violations()[:3])
relay.stop()
if t.failed == 0:
    import shutil
    shutil.rmtree(top, ignore_errors=True)
t.done()
