"""postgate run ingesting a ~200 MB bundle while the listener takes mail
(issue 12, point 4: legacy bodies go to queue/ files, and a bundle is
queued in commits of bounded size, so that the listener's group commit is
never locked out of queue.db long enough to answer 451).

1. Four messages from CORP/HQ/JSMITH, each with an attachment of
   PG_RUN_LARGE_MB (default 48) MB of random data, to an SMTP: address,
   sent with `postgate-po send`; their entries put together into ONE bundle
   of about 200 MB (pgbundle.py, HQ's key) in HQ's out/.
2. `postgate smtpd` runs; `postgate run --no-delivery` is started, and
   while it works a client sends one message after another (smtplib) to
   jsmith@example.com: every one gets 250 after DATA, none 451, each within
   SLOW seconds (PG_RUN_LARGE_SLOW, default 1).
3. Afterwards every legacy message of the bundle is queued exactly once (one
   outbound message per legacy id, its body in queue/, not in queue.db),
   the bundle has left out/ (not for bad/), and once HQ has delivered
   (a second run for what came in meanwhile) JSMITH has every message the
   client sent exactly once.
"""
import collections
import json
import os
import re
import shutil
import smtplib
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgbundle as pg  # noqa: E402

t = pg.Tally("run-large")
POSTGATE = os.environ.get("POSTGATE") or os.path.join(os.getcwd(), "postgate")
MB = int(os.environ.get("PG_RUN_LARGE_MB", "48"))
N_LEGACY = 4
# seconds: ten times what DESIGN allows a write transaction (~100 ms); one
# commit of the whole bundle held queue.db for 1.4 s here (2 vCPUs, virtio)
SLOW = float(os.environ.get("PG_RUN_LARGE_SLOW", "1.0"))
HOST = "127.0.0.1"
DOMAIN = "example.com"
HQ, GW = "CORP/HQ", "CORP/GW"
top = pg.scratch()
T0 = time.time()


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


PORT = free_port()
hq, hq_key = pg.make_po(top, "CORP", "HQ", gateway=GW, users=[("JSMITH", "J Smith")])
STATE = os.path.join(top, "state")
CONF = os.path.join(top, "postgate.conf")
with open(CONF, "w") as f:
    f.write("\n".join([
        "[site]", "name = HQ", "domains = " + DOMAIN, "state_dir = " + STATE,
        "gateway_po = " + GW, "user =", "proxy_templates = SMTP:%m@" + DOMAIN, "",
        "[smtpd]", "listen = %s:%d" % (HOST, PORT), "hostname = gw.example.com",
        "timeout = 60s", "",
        "[postoffice %s]" % HQ, "dir = " + hq, "key_file = " + os.path.join(top, "hq.key"),
        "codepage = CP850", ""]))


def gw(*args, check=True, timeout=600):
    p = subprocess.run([POSTGATE, "-c", CONF] + list(args), capture_output=True,
                       timeout=timeout)
    p.out = p.stdout.decode("utf-8", "replace")
    p.err = p.stderr.decode("utf-8", "replace")
    if check and p.returncode != 0:
        raise RuntimeError("postgate %s: exit %d\n%s%s" % (" ".join(args), p.returncode,
                                                          p.out, p.err[-2000:]))
    return p


xml = os.path.join(top, "hq.xml")
pg.run("-d", hq, "export-dir", "-o", xml)
gw("dir", "import", xml)

# ---- 1. one bundle of about 200 MB ------------------------------------------------------
t0 = time.time()
entries, ids = [], []
for i in range(N_LEGACY):
    att = os.path.join(top, "big%d.bin" % i)
    with open(att, "wb") as f:
        f.write(os.urandom(MB * 1024 * 1024))
    p = pg.run("-d", hq, "send", "--from", "JSMITH", "--to", "SMTP:big%d@partner.example" % i,
               "--subject", "large %d" % i, "--attach", att)
    m = re.match(r"sent (\S+?); bundle for the gateway: out/(\S+)$", p.out.strip())
    path = os.path.join(hq, "out", m.group(2))
    with open(path, "rb") as f:
        entries += pg.entries(f.read())
    os.unlink(path)
    os.unlink(att)
    ids.append(m.group(1))
name = pg.bundle_name(HQ, GW, 1000)
data = pg.bundle(HQ, GW, 1000, entries, hq_key, level=1)
del entries
pg.drop(hq, name, data, sub="out")
size = len(data)
del data
t.check(size > N_LEGACY * MB * 1024 * 1024, "1: one bundle of %.0f MB holding %d messages in "
        "HQ's out/ (%.1f s)" % (size / 1e6, N_LEGACY, time.time() - t0))

# ---- 2. the listener takes mail while run ingests ---------------------------------------
log = open(os.path.join(top, "smtpd.log"), "wb")
smtpd = subprocess.Popen([POSTGATE, "-c", CONF, "smtpd"], stdout=log, stderr=log)
for _ in range(200):
    try:
        socket.create_connection((HOST, PORT), timeout=0.5).close()
        break
    except OSError:
        time.sleep(0.05)

replies = []                    # (n, code, seconds)
stop = threading.Event()


def client():
    n = 0
    while not stop.is_set():
        msg = ("From: c@outside.example\r\nTo: jsmith@%s\r\nSubject: during %d\r\n"
               "Message-ID: <during-%d@test>\r\n\r\nMessage %d.\r\n" % (DOMAIN, n, n, n))
        t1 = time.time()
        try:
            s = smtplib.SMTP(HOST, PORT, timeout=60)
            s.ehlo("client.test")
            s.mail("c@outside.example")
            s.rcpt("jsmith@" + DOMAIN)
            code, _ = s.data(msg.encode())
            s.quit()
        except (smtplib.SMTPException, OSError) as e:
            code = str(e)
        replies.append((n, code, time.time() - t1))
        n += 1
        time.sleep(0.1)


th = threading.Thread(target=client)
th.start()
t0 = time.time()
run = subprocess.Popen([POSTGATE, "-c", CONF, "run", "--no-delivery"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
out, err = run.communicate(timeout=900)
D = time.time() - t0
time.sleep(0.5)
stop.set()
th.join(120)
smtpd.kill()
smtpd.wait(10)
log.close()
out, err = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
t.check(run.returncode == 0, "2: run exits 0 (%.1f s): %s %s" % (D, out.strip(), err[-500:]))
during = [r for r in replies]
bad = [r for r in during if r[1] != 250]
slow = [r for r in during if r[2] > SLOW]
t.check(len(during) >= 5 and not bad,
        "2: while run ingested the bundle, each of %d messages got 250 after DATA, none 451: "
        "%s" % (len(during), bad[:5]))
t.check(not slow, "2: each within %.0f s (slowest %.2f s): %s" % (
    SLOW, max(r[2] for r in during) if during else 0, slow[:5]))

# ---- 3. exactly once --------------------------------------------------------------------
q = [json.loads(l) for l in gw("queue", "list", "-j").out.splitlines() if l.strip()]
by_envid = collections.Counter(o.get("envid") for o in q if o.get("protocol") == "legacy")
t.check(all(by_envid[i] == 1 for i in ids) and len(by_envid) == N_LEGACY,
        "3: each of the %d legacy messages is queued exactly once (as its outbound "
        "message): %s" % (N_LEGACY, dict(by_envid)))
t.check(os.listdir(os.path.join(hq, "out")) == [] and not os.path.exists(os.path.join(hq, "bad"))
        or os.listdir(os.path.join(hq, "bad")) == [],
        "3: the bundle has left out/, not for bad/")
files = [n for n in os.listdir(os.path.join(STATE, "queue")) if not n.startswith(".")]
dbsize = os.path.getsize(os.path.join(STATE, "queue.db"))
t.check(len(files) >= N_LEGACY and dbsize < 16 * 1024 * 1024,
        "3: the large bodies are files in queue/ (%d), not rows of queue.db (%d bytes)"
        % (len(files), dbsize))
pg.run("-d", hq, "deliver")
gw("run", "--no-delivery")
pg.run("-d", hq, "deliver")
show = pg.run("-d", hq, "show", "JSMITH").out
tags = collections.Counter(re.findall(r"^Subject:\s+during (\d+)$", show, flags=re.M))
sent = [r[0] for r in during if r[1] == 250]
t.check(sent and all(tags.get(str(n)) == 1 for n in sent) and len(tags) == len(sent),
        "3: JSMITH has each of the %d messages the listener took exactly once: %d distinct, "
        "%s" % (len(sent), len(tags), [(k, v) for k, v in tags.items() if v != 1][:5]))

print("runtime %.1f s" % (time.time() - T0))
shutil.rmtree(top)
t.done()
