#!/usr/bin/python3
"""Reports survive crashes (issue 14 point 5): a run killed after any
durable step, or by SIGKILL at a random instant, and then run again until it
has nothing left to do, makes neither none nor two non-delivery reports.

A site with CORP/HQ (JSMITH, GONE) whose relay_host (smtpscript.py)
refuses every RCPT to bad*@ with 550 5.1.1 and takes the rest.  M legacy
messages (PG_REPORTS_CRASH_MESSAGES, default 20), each to two refused
addresses, are made into SMTP messages by `run --no-delivery`; M/2
Internet messages to gone@example.com (`postgate submit`) are bundled to
HQ by the same run, GONE is deleted and HQ delivers, so that its
non-delivery reports wait in its out/ (each to become a DSN); that state
is saved; then, on a fresh copy of it each time:

1. Fault injection: `run` with POSTGATE_FAULT_AFTER=k dies right after its
   k-th durable step (k = 1, 2, ... until a run finishes without dying);
   then HQ delivers and `run` is repeated until it exits 0 and the queue is
   empty.
2. Random kills: `run` SIGKILLed after a random delay (random.Random(seed),
   PG_SEED repeats it), restarted, PG_REPORTS_CRASH_KILLS times in all.

After each case: every message gave JSMITH exactly one delay notice (the
saved state is older than delay_warning = 1s) and exactly one non-delivery
report, each about its legacy id, naming both refused addresses; no other
message; every
Internet message gave its sender exactly one DSN (one Message-ID: SMTP
may carry the same DSN twice after a crash, never two DSNs); the queue is
empty; nothing is held.
"""
import collections
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgbundle as pg  # noqa: E402
import smtpscript  # noqa: E402

t = pg.Tally("reports-crash")
POSTGATE = pg.gw_binary()
M = int(os.environ.get("PG_REPORTS_CRASH_MESSAGES", "20"))
KILLS = int(os.environ.get("PG_REPORTS_CRASH_KILLS", "16"))
SEED = int(os.environ.get("PG_SEED", random.randrange(1 << 30)))
print("seed: %d (PG_SEED=%d repeats this run); %d messages, %d kills" % (SEED, SEED, M, KILLS))
rnd = random.Random(SEED)
top = pg.scratch()


srv = smtpscript.RefusesBad(hostname="mx.ext.test")
srv.start()
site = os.path.join(top, "site")
os.makedirs(site)
po_dir, _ = pg.make_po(site, "CORP", "HQ", gateway="CORP/GW",
                       users=[("JSMITH", "J. Smith"), ("GONE", "Soon Gone")])
CONF = os.path.join(site, "postgate.conf")
with open(CONF, "w") as f:
    f.write("\n".join([
        "[site]", "name = HQ", "domains = example.com", "state_dir = " + os.path.join(site, "state"),
        "gateway_po = CORP/GW", "user =", "proxy_templates = SMTP:%m@example.com", "",
        "[smtpd]", "hostname = gw.example.com", "",
        "[delivery]", "relay_host = [127.0.0.1]:%d" % srv.port, "tls = none",
        "delay_warning = 1s", "",
        "[postoffice CORP/HQ]", "dir = " + po_dir, "key_file = " + os.path.join(site, "hq.key"),
        "codepage = CP850", ""]))


def gw(*args, env=None, timeout=120):
    return pg.run_cmd([POSTGATE, "-c", CONF] + list(args), check=False, env=env,
                      timeout=timeout)


xml = os.path.join(site, "hq.xml")
pg.run("-d", po_dir, "export-dir", "-o", xml)
gw("dir", "import", xml)
ids = []
for i in range(M):
    p = pg.run("-d", po_dir, "send", "--from", "JSMITH", "--to",
               "SMTP:bad%da@ext.example,SMTP:bad%db@ext.example" % (i, i),
               "--subject", "m%d" % i, check=False)
    m = re.match(r"sent (\S+?)(?:;|$)", p.out.strip())
    ids.append(m.group(1) if m else None)
M2 = max(M // 2, 1)
for i in range(M2):
    pg.run_cmd([POSTGATE, "-c", CONF, "submit", "-f", "sender@ext.example", "gone@example.com"],
               input=("From: <sender@ext.example>\r\nSubject: x%d\r\nMessage-ID: <x%d@ext>"
                      "\r\n\r\nFor Gone.\r\n" % (i, i)).encode())
p = gw("run", "--no-delivery")
t.check(p.returncode == 0 and all(ids), "setup: %d messages sent and queued for SMTP: %s %s"
        % (M, p.out.strip(), p.err[-300:]))
pg.run("-d", po_dir, "deluser", "GONE")
p = pg.run("-d", po_dir, "deliver", check=False)
t.check("%d reports" % M2 in p.out, "setup: HQ reports the %d messages to GONE: %s"
        % (M2, p.out.strip()))
time.sleep(1.2)     # past delay_warning: each legacy message owes a delay notice first
saved = os.path.join(top, "saved")
shutil.copytree(site, saved, symlinks=True)


case_start = 0


def restore():
    global case_start
    shutil.rmtree(site)
    shutil.copytree(saved, site, symlinks=True)
    case_start = len(srv.messages())


def settle(name):
    """HQ delivers, run repeats until the queue is empty; then the checks."""
    for _ in range(10):
        pg.run("-d", po_dir, "deliver", check=False)
        p = gw("run")
        q = gw("queue", "list").out
        if p.returncode == 0 and "Queue is empty" in q:
            break
    pg.run("-d", po_dir, "deliver", check=False)
    t.check("Queue is empty" in gw("queue", "list").out,
            "%s: run again until done: the queue is empty: %s" % (name, gw("queue", "list").out))
    out = pg.run("-d", po_dir, "show", "JSMITH", check=False).out
    blocks = re.split(r"^--- message \d+ ---$", out, flags=re.M)[1:]
    for kind, status in (("report", "not delivered"), ("delay notice", "delayed")):
        about = collections.Counter()
        bad = []
        for b in blocks:
            a = re.search(r"^About:\s+(\S+)$", b, flags=re.M)
            if (kind == "delay notice") != bool(re.search(r"^Subject:\s+Delayed: ", b,
                                                          flags=re.M)):
                continue
            items = sorted(re.findall(r"^Report:\s+(SMTP:\S+): " + status, b, flags=re.M))
            if not a or "non-delivery report" not in b:
                bad.append(b[:200])
                continue
            about[a.group(1)] += 1
            i = ids.index(a.group(1)) if a.group(1) in ids else -1
            if items != ["SMTP:bad%da@ext.example" % i, "SMTP:bad%db@ext.example" % i]:
                bad.append(items)
        twice = [k for k, n in about.items() if n > 1]
        missing = [k for k in ids if about[k] == 0]
        t.check(not twice and not missing and not bad,
                "%s: each message gave exactly one %s naming both addresses: "
                "%d twice %s, %d missing %s, other %s" % (name, kind, len(twice), twice[:2],
                                                          len(missing), missing[:2], bad[:2]))
    dsns = collections.defaultdict(set)
    for m in srv.messages()[case_start:]:
        x = re.search(r": x(\d+)$", m.subject or "")
        if m.mail_from == "" and x:
            dsns[int(x.group(1))].add(m.message_id)
    wrong = {i: len(dsns[i]) for i in range(M2) if len(dsns[i]) != 1}
    t.check(not wrong, "%s: each Internet message gave its sender exactly one DSN: %s"
            % (name, wrong))


# ---- 1. fault injection after every durable step -----------------------------------------
steps, finished = collections.Counter(), False
for k in range(1, 500):
    restore()
    p = gw("run", env=dict(os.environ, POSTGATE_FAULT_AFTER=str(k)))
    if p.returncode == 0:
        finished = True
        print("     POSTGATE_FAULT_AFTER=%d: the run finished without dying" % k)
        settle("fault %d (no such step)" % k)
        break
    m = re.search(r"fault injection: killed after durable step %d \(([^)]*)\)" % k, p.err)
    steps[m.group(1) if m else None] += 1
    if not t.check(p.returncode == -signal.SIGKILL and m,
                   "fault %d: the run died by SIGKILL right after durable step %d: exit %s %s"
                   % (k, k, p.returncode, p.err.strip()[-300:])):
        break
    settle("fault %d (%s)" % (k, m.group(1)))
t.check(finished, "fault injection: some k lets the run finish")
print("     durable steps: %s" % ", ".join("%s %d" % kv for kv in sorted(steps.items())))

# ---- 2. random kills ---------------------------------------------------------------------
restore()
t0 = time.time()
p = gw("run")
D = max(time.time() - t0, 0.05)
kills = 0
for rnd_round in range(KILLS):
    restore()
    pr = subprocess.Popen([POSTGATE, "-c", CONF, "run"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    try:
        pr.wait(rnd.uniform(0, 1.1 * D))
    except subprocess.TimeoutExpired:
        pr.send_signal(signal.SIGKILL)
        kills += 1
    pr.wait()
    settle("kill round %d" % (rnd_round + 1))
t.check(kills >= KILLS // 4, "random kills: %d of %d runs killed mid-way (a run takes %.2f s)"
        % (kills, KILLS, D))

srv.stop()
shutil.rmtree(top)
t.done()
