"""postgate smtpd killed at any instant loses no accepted message and queues
none twice beyond what SMTP itself forces (a 250 lost on the wire, RFC 1047).

Two ways, as in issue 5:

- Random kills: 4 smtplib clients send N messages (PG_CRASH_MESSAGES, default
  500), each with a unique Message-ID, one per transaction over reused
  connections, while a supervisor SIGKILLs the listener at random instants
  (random.Random(seed), seed printed; PG_SEED=N repeats a run) and restarts
  it.  A client retries a message whose transaction failed.  At the end every
  Message-ID that got its 250 is in queue list -j exactly once, except that
  an attempt which died after the client had sent the final CRLF.CRLF and
  before the reply ("ambiguous") may have left one extra copy; a Message-ID
  that never got a 250 and never reached the end of its data is absent.
- Fault injection: POSTGATE_FAULT_AFTER=k kills the listener right after its
  k-th durable step, for every k up to the first that lets a message through,
  with a small message (kept in the queue database) and a large one (its own
  file); after a restart the message is queued exactly once if the queue
  commit happened, absent otherwise, the client never got a 250 for an absent
  message, and the queue still works.
"""
import json
import os
import random
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgbundle as pg  # noqa: E402

t = pg.Tally("smtpd-crash")
POSTGATE = os.environ.get("POSTGATE") or os.path.join(os.getcwd(), "postgate")
N = int(os.environ.get("PG_CRASH_MESSAGES", "500"))
SEED = int(os.environ.get("PG_SEED", random.randrange(1 << 30)))
print("random kill seed: %d (PG_SEED=%d repeats this run); %d messages" % (SEED, SEED, N))
sys.stdout.flush()
HOST = "127.0.0.1"
CLIENTS = 4
KILLS = 15
top = pg.scratch()


podir, _ = pg.make_po(top, "CORP", "HQ", users=[("JSMITH", "Jane Smith"), ("BOB", "Bob")])
pg.run("-d", podir, "export-dir", "-o", os.path.join(top, "hq.xml"))


def make_site(name):
    """A config and a state directory of its own, the directory imported."""
    d = os.path.join(top, name)
    os.makedirs(d)
    port = pg.free_port(HOST)
    conf = os.path.join(d, "postgate.conf")
    with open(conf, "w") as f:
        f.write("\n".join([
            "[site]", "name = HQ", "domains = example.com",
            "state_dir = " + os.path.join(d, "state"), "gateway_po = CORP/GW", "user =",
            "proxy_templates = SMTP:%m@example.com", "hop_limit = 10", "",
            "[smtpd]", "listen = %s:%d" % (HOST, port), "timeout = 10s",
            "max_message_size = 1M", "max_recipients = 10", "max_connections = 50", "",
            "[postoffice CORP/HQ]", "dir = " + podir, "key_file = " + os.path.join(top, "hq.key"),
            "codepage = CP850", ""]))
    gw(conf, "dir", "import", os.path.join(top, "hq.xml"))
    return conf, port, d


def gw(conf, *args, check=True, env=None):
    p = subprocess.run([POSTGATE, "-c", conf] + list(args), capture_output=True, timeout=120,
                       env=env)
    p.out = p.stdout.decode("utf-8", "replace")
    p.err = p.stderr.decode("utf-8", "replace")
    if check and p.returncode != 0:
        raise RuntimeError("postgate %s: exit %d\n%s%s" % (" ".join(args), p.returncode,
                                                          p.out, p.err))
    return p


def queue_list(conf):
    """(ok, [objects], problem) from queue list -j."""
    p = gw(conf, "queue", "list", "-j", check=False)
    if p.returncode != 0:
        return False, [], "exit %d: %s" % (p.returncode, p.err.strip()[-300:])
    objs = []
    for line in p.out.splitlines():
        if not line.strip():
            continue
        try:
            objs.append(json.loads(line))
        except ValueError:
            return False, objs, "not JSON: %r" % line[:200]
    return True, objs, ""


def message(mid, n, big=False):
    body = "message %d\r\n" % n
    body += ("%06d " % n + "z" * 70 + "\r\n") * (2600 if big else n % 40)
    return ("From: alice@other.org\r\nTo: jsmith@example.com\r\nSubject: crash %d\r\n"
            "Message-ID: %s\r\n\r\n%s" % (n, mid, body)).encode()


class Listener:
    def __init__(self, conf, port, d):
        self.conf, self.port, self.p = conf, port, None
        self.logname = os.path.join(d, "smtpd.log")
        self.starts = 0

    def start(self, env=None, wait=True):
        """Start; True once the port accepts, False if it died first."""
        self.starts += 1
        with open(self.logname, "ab") as log:
            log.write(b"---- start %d\n" % self.starts)
            log.flush()
            self.p = subprocess.Popen([POSTGATE, "-c", self.conf, "smtpd"], stdout=log,
                                      stderr=log, env=env)
        if not wait:
            return True
        for _ in range(300):
            if self.p.poll() is not None:
                return False
            try:
                socket.create_connection((HOST, self.port), timeout=0.5).close()
                return True
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("smtpd does not accept connections on %d" % self.port)

    def kill(self):
        if self.p and self.p.poll() is None:
            self.p.kill()
        if self.p:
            self.p.wait(10)

    def term(self):
        """SIGTERM; the exit status (None if it had to be killed)."""
        if not self.p:
            return None
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                return self.p.wait(20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(10)
                return None
        return self.p.returncode

    def log(self):
        with open(self.logname, "rb") as f:
            return f.read().decode("utf-8", "replace")


# ---- random SIGKILLs under load ----------------------------------------------------------------
conf, port, sdir = make_site("random")
L = Listener(conf, port, sdir)
rnd = random.Random(SEED)
mids = ["<crash-%d-%d@test>" % (SEED, n) for n in range(N)]
big_every = 25
# per Message-ID: list of attempt outcomes: "250", "early" (failed before the
# final CRLF.CRLF was sent), "ambiguous" (sent, no reply), "refused NNN" (a reply)
attempts = {m: [] for m in mids}
lock = threading.Lock()
work = list(range(N))
stop_clients = threading.Event()
deadline = time.time() + 150


def client(cid):
    jitter = random.Random(SEED + 1 + cid)
    s = None
    while not stop_clients.is_set():
        with lock:
            if not work:
                break
            n = work.pop(0)
        mid = mids[n]
        data = message(mid, n, big=(n % big_every == 7))
        for _ in range(500):
            if time.time() > deadline:
                break
            outcome = "early"
            try:
                if s is None:
                    s = smtplib.SMTP(HOST, port, timeout=10)
                    s.ehlo("c%d.test" % cid)
                c, _ = s.mail("alice@other.org")
                if c != 250:
                    raise smtplib.SMTPResponseException(c, b"MAIL")
                c, _ = s.rcpt("jsmith@example.com")
                if c != 250:
                    raise smtplib.SMTPResponseException(c, b"RCPT")
                s.putcmd("data")
                c, _ = s.getreply()
                if c != 354:
                    raise smtplib.SMTPResponseException(c, b"DATA")
                s.send(data + b".\r\n")          # data: CRLF lines, none starts with "."
                outcome = "ambiguous"
                c, _ = s.getreply()
                if c == 250:
                    outcome = "250"
                else:
                    outcome = "refused %d" % c
                    s.rset()
            except (smtplib.SMTPException, OSError):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass
                s = None
            with lock:
                attempts[mid].append(outcome)
            if outcome == "250":
                time.sleep(0.01 * jitter.random())      # spread the load over the kills
                break
            time.sleep(0.01 + 0.02 * jitter.random())
    if s is not None:
        try:
            s.quit()
        except (smtplib.SMTPException, OSError):
            pass


kills, down_times = 0, []
L.start()
threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
t_start = time.time()
for th in threads:
    th.start()
try:
    while kills < KILLS and any(th.is_alive() for th in threads) and time.time() < deadline:
        time.sleep(rnd.uniform(0.01, 0.08))
        L.kill()
        kills += 1
        t0 = time.time()
        for _ in range(20):
            if L.start():
                break
            time.sleep(0.1)
        down_times.append(time.time() - t0)
    for th in threads:
        th.join(max(1, deadline - time.time()))
    stop_clients.set()
    rc = L.term()
finally:
    L.kill()
elapsed = time.time() - t_start

got = {m for m, a in attempts.items() if "250" in a}
print("     %d kills (%.2f s mean restart), %d restarts, %d attempts, %d ambiguous, "
      "%.1f s" % (kills, sum(down_times) / max(1, len(down_times)), L.starts - 1,
                  sum(len(a) for a in attempts.values()),
                  sum(a.count("ambiguous") for a in attempts.values()), elapsed))
t.check(kills >= (10 if N >= 200 else 1), "the listener was killed %d times under load" % kills)
t.check(len(got) == N, "every message got its 250 in the end: %d of %d; missing e.g. %s"
        % (len(got), N, [m for m in mids if m not in got][:3]))
t.check(rc == 0, "the last listener stops on SIGTERM with exit 0: %s" % rc)
ok, objs, problem = queue_list(conf)
t.check(ok, "queue list -j works after %d kills: %s" % (kills, problem))
count = {}
for o in objs:
    count[o.get("message_id")] = count.get(o.get("message_id"), 0) + 1
stray = [m for m in count if m not in attempts]
t.check(not stray, "nothing in the queue that no client sent: %s" % stray[:5])
lost, doubled, unexplained, phantom = [], [], [], []
extra_copies = 0
for m in mids:
    a, c = attempts[m], count.get(m, 0)
    amb = a[:a.index("250")].count("ambiguous") if "250" in a else a.count("ambiguous")
    if "250" in a:
        if c == 0:
            lost.append((m, a))
        elif c > 1 + amb:
            doubled.append((m, c, a))
        elif c > 1:
            extra_copies += c - 1
    elif c > amb:
        (phantom if amb == 0 else unexplained).append((m, c, a))
t.check(not lost, "every Message-ID that got a 250 is in the queue: %d lost, e.g. %s"
        % (len(lost), lost[:3]))
t.check(not doubled, "every Message-ID that got a 250 is there once, or once more per attempt "
        "that died between the end of its data and the reply: %d doubled, e.g. %s"
        % (len(doubled), doubled[:3]))
t.check(not phantom and not unexplained,
        "no Message-ID that never got a 250 and never finished its data is queued: %s %s"
        % (phantom[:3], unexplained[:3]))
print("     %d extra copies, each after a 250 lost to a kill (RFC 1047); %d ambiguous attempts"
      % (extra_copies, sum(a.count("ambiguous") for a in attempts.values())))
bad_fields = [o for o in objs if o.get("sender") != "alice@other.org" or
              [r.get("address") for r in o.get("recipients", [])] != ["jsmith@example.com"]]
t.check(not bad_fields, "every queued message has its sender and recipient: %s" % bad_fields[:2])
sample = random.Random(SEED).sample(objs, min(60, len(objs)))
torn = []
for o in sample:
    p = gw(conf, "queue", "show", o["queue_id"], check=False)
    if p.returncode != 0 or ("Message-ID: %s" % o["message_id"]) not in p.out.splitlines():
        torn.append((o["queue_id"], p.returncode, p.err.strip()[-200:]))
t.check(not torn, "queue show of %d sampled messages gives each its own stored headers: %s"
        % (len(sample), torn[:3]))
crashy = [l for l in L.log().splitlines() if "CRITICAL" in l or "Sanitizer" in l]
t.check(not crashy, "no assertion in the listener's log: %s" % crashy[:3])

# ---- fault injection at every durable step of accepting a message -----------------------------
for size in ("small", "large"):
    survived = False
    for k in range(1, 21):
        conf, port, sdir = make_site("fault-%s-%d" % (size, k))
        L = Listener(conf, port, sdir)
        env = dict(os.environ, POSTGATE_FAULT_AFTER=str(k))
        name = "%s message, POSTGATE_FAULT_AFTER=%d" % (size, k)
        mid = "<fault-%s-%d@test>" % (size, k)
        outcome = None
        try:
            up = L.start(env=env)
            if up:
                try:
                    s = smtplib.SMTP(HOST, port, timeout=10)
                    s.ehlo("fault.test")
                    s.mail("alice@other.org")
                    s.rcpt("jsmith@example.com")
                    c, _ = s.data(message(mid, k, big=(size == "large")))
                    outcome = c
                    s.quit()
                except (smtplib.SMTPException, OSError) as e:
                    if outcome is None:
                        outcome = e.__class__.__name__
                try:
                    L.p.wait(3)
                except subprocess.TimeoutExpired:
                    pass
            died = L.p.poll() is not None
            m = re.search(r"fault injection: killed after durable step %d \(([^)]*)\)" % k, L.log())
            step = m.group(1) if m else None
            if not died:
                survived = True
                rc = L.term()
                ok, objs, problem = queue_list(conf)
                n = sum(1 for o in objs if o.get("message_id") == mid)
                t.check(outcome == 250 and n == 1 and rc == 0,
                        "%s: no durable step %d; the message got 250 and is queued once: "
                        "%s, %d copies, exit %s" % (name, k, outcome, n, rc))
                break
            t.check(step is not None and L.p.returncode == -signal.SIGKILL,
                    "%s: the listener died at step %d (%s), by SIGKILL (%s)"
                    % (name, k, step, L.p.returncode))
            if not up:
                print("     (died at start-up, before accepting the message)")
            up2 = L.start()
            ok, objs, problem = queue_list(conf)
            n = sum(1 for o in objs if o.get("message_id") == mid)
            committed = step == "queue commit"
            t.check(up2 and ok, "%s: after the crash the listener starts and queue list -j works: "
                    "%s" % (name, problem))
            t.check(n == (1 if committed else 0),
                    "%s: killed after '%s': the message is %s: %d copies (client: %s)"
                    % (name, step, "queued once" if committed else "absent", n, outcome))
            t.check(outcome != 250 or n == 1,
                    "%s: a 250 only for a message that is queued: %s, %d copies"
                    % (name, outcome, n))
            after = "<fault-after-%s-%d@test>" % (size, k)
            try:
                s = smtplib.SMTP(HOST, port, timeout=10)
                s.ehlo("fault.test")
                s.mail("alice@other.org")
                s.rcpt("jsmith@example.com")
                c, _ = s.data(message(after, k, big=(size == "large")))
                s.quit()
            except (smtplib.SMTPException, OSError) as e:
                c = e.__class__.__name__
            ok, objs, problem = queue_list(conf)
            t.check(c == 250 and ok and
                    sum(1 for o in objs if o.get("message_id") == after) == 1 and
                    sum(1 for o in objs if o.get("message_id") == mid) == n,
                    "%s: the restarted listener queues the next message: %s %s"
                    % (name, c, problem))
            t.check(L.term() == 0, "%s: the restarted listener stops with exit 0" % name)
        finally:
            L.kill()
    t.check(survived, "%s message: some k lets the message through (the steps are finite)" % size)

shutil.rmtree(top)
t.done()
