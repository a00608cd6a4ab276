"""A postgate-po deliver killed at any instant and run again leaves every
message in its mailbox exactly once, and every report bundle once.

Two ways: fault injection kills deliver right after its k-th durable step,
for every k (POSTGATE_FAULT_AFTER, postoffice/fault.h); and SIGKILL at 20
random instants of a longer run (seed printed; PG_SEED=N repeats a run).
"""
import glob
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

t = pg.Tally("po-crash")
top = pg.scratch()
USERS = [("U%d" % i, "User %d" % i) for i in range(8)]


def template(name, nbundles, per_bundle):
    """A postoffice with bundles waiting in in/: messages, an unknown
    recipient (NDR) now and then, a receipt request now and then."""
    d, key = pg.make_po(os.path.join(top, name), "CORP", "HQ", users=USERS)
    n = 0
    for seq in range(1, nbundles + 1):
        entries = []
        for _ in range(per_bundle):
            n += 1
            rcpts = [("CORP/HQ/U%d" % (n % 8), True), ("CORP/HQ/U%d" % ((n + 3) % 8), True),
                     ("CORP/HQ/U%d" % ((n + 5) % 8), False)]
            if n % 7 == 0:
                rcpts.append(("CORP/HQ/GHOST", True))
            entries.append((1, pg.message("msg-%d" % n, "SMTP:s%d@example.com" % n, rcpts,
                                          subject=b"n%d" % n, body=b"x" * (n % 50) * 40,
                                          requests=1 if n % 5 == 0 else 0)))
        pg.drop(d, pg.bundle_name("CORP/GW", "CORP/HQ", seq),
                pg.bundle("CORP/GW", "CORP/HQ", seq, entries, key))
    return d


def state(d):
    """Every mailbox's message ids, and every report in out/ by id of the
    message it is about."""
    boxes = {}
    for mb, _ in USERS:
        show = pg.run("-d", d, "show", mb).out
        boxes[mb] = sorted(re.findall(r"^Id:\s+(\S+)", show, re.M))
    reports = []
    keyf = os.path.join(os.path.dirname(d), "hq.key")
    for f in sorted(glob.glob(os.path.join(d, "out", "*.bundle"))):
        dump = pg.run("dump", f, "--key-file", keyf).out
        seq = re.search(r"^sequence:\s+(\d+)", dump, re.M).group(1)
        for cls, about in re.findall(r"^Class:\s+(\S+).*\n^About:\s+(\S+)", dump, re.M):
            reports.append((cls, about, seq))
    return boxes, sorted(reports)


def copy(src):
    dst = src + "-run"
    if os.path.exists(dst):
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    return dst


def deliver(d, env=None):
    return subprocess.run([pg.po_binary(), "-d", d, "-q", "deliver"], env=env,
                          capture_output=True, timeout=300)


def same_once(got, want, what):
    boxes, reports = got
    dup = any(len(v) != len(set(v)) for v in boxes.values())
    t.check(not dup and got == want, what)
    if got != want:
        print("   want %s\n   got  %s" % (want, got))


# 1. Fault injection after every durable step.
small = template("small", 3, 4)
clean = copy(small)
deliver(clean)
want = state(clean)
t.check(sum(len(v) for v in want[0].values()) == 24 and len(want[1]) >= 2,
        "the clean run delivers 24 copies and makes reports: %s" % (want[1],))
k = 0
for k in range(1, 200):
    d = copy(small)
    p = deliver(d, env=dict(os.environ, POSTGATE_FAULT_AFTER=str(k)))
    if p.returncode == 0:
        break
    if p.returncode != -signal.SIGKILL:
        t.check(False, "fault %d: deliver died with %d: %s" % (k, p.returncode, p.stderr))
        break
    deliver(d)
    same_once(state(d), want, "killed after durable step %d, then rerun: each message once" % k)
t.check(k > 8, "fault injection reached %d durable steps and a run that finished" % k)

# 2. SIGKILL at random instants.
seed = int(os.environ.get("PG_SEED", random.randrange(1 << 30)))
print("SIGKILL seed: %d (PG_SEED=%d repeats it)" % (seed, seed))
rnd = random.Random(seed)
big = template("big", 60, 10)
d = copy(big)
start = time.monotonic()
deliver(d)
duration = time.monotonic() - start
want = state(d)
print("clean run: %.2f s" % duration)
for trial in range(20):
    d = copy(big)
    delay = rnd.uniform(0, duration * 1.1)
    p = subprocess.Popen([pg.po_binary(), "-d", d, "-q", "deliver"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=60)
    deliver(d)
    same_once(state(d), want, "SIGKILL at %.3f s (trial %d), then rerun: each message once"
              % (delay, trial + 1))

shutil.rmtree(top)
t.done()
