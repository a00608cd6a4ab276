"""postgate run killed at any instant and run again: nothing lost, nothing
doubled, in either direction (SPEC 5, DESIGN "Exactly once at each boundary",
issue 6 "Done when": the crash test).

The initial state, built once and copied for every case: a site with three
postoffices of three codepages (CORP/P1 CP850, CORP/P2 CP1252, CORP/P3
CP437), a distribution list on P1 (nested, a cycle, members on every
postoffice) and a custom recipient; N messages (PG_RUN_CRASH_MESSAGES,
default 1000) queued with `postgate submit`, each to 1-5 mailboxes over the
three postoffices, some to the list, some Bcc; N/10 legacy messages sent with
`postgate-po send` waiting in the postoffices' out/, addressed across
postoffices, to SMTP: addresses, to the custom recipient and to the list;
a bundle in P2's out/ of three legacy messages with 3 MB attachments (to P1
and to SMTP: addresses; queued in several commits, bodies in queue/ files);
and a directory export of P3 (`export-dir --send`, adding a user that some
legacy messages are addressed to) in P3's out/.

1. A clean run: the baseline, checked like every case below.
2. Random kills: `postgate run` SIGKILLed after random delays
   (random.Random(seed), seed printed, PG_SEED=N repeats it; PG_RUN_CRASH_KILLS
   kills in all, default 200, or as many as 360 s of them make, at least a
   quarter), restarted until it exits 0 with nothing left
   to do, over as many fresh copies of the initial state ("rounds") as the
   kills need; now and then every postoffice delivers between two runs, so a
   bundle rewritten by a restarted run may meet a postoffice that applied it.
3. Fault injection: for k = 1, 2, ... until a run with POSTGATE_FAULT_AFTER=k
   finishes without dying, on a fresh copy of a smaller initial state of the
   same kinds (PG_RUN_FAULT_MESSAGES, default 60, and a tenth as many legacy
   messages, at least 6): run with the variable (it dies right after its
   k-th durable step), every postoffice delivers, then run again clean.

Every case ends with the same checks: after each postoffice's `postgate-po
deliver` (every bundle dumped with --key-file before it is delivered) every
mailbox has received each message meant for it exactly once (postgate-po
list, and by subject tag and message id: no id twice in a mailbox), every
recipient was responsible exactly once across all bundles, a bundle written
twice under one sequence number had the same bytes, every legacy message to
SMTP: addresses or the custom recipient produced exactly one queued outbound
message with exactly those recipients, nothing is held, and `queue list -j`
holds only those smtp-pending outbound messages.  (Every run here is `run
--no-delivery`: the SMTP client has its own tests.)
"""
import collections
import concurrent.futures
import hashlib
import json
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

t = pg.Tally("run-crash")
POSTGATE = os.environ.get("POSTGATE") or os.path.join(os.getcwd(), "postgate")
N = int(os.environ.get("PG_RUN_CRASH_MESSAGES", "1000"))
KILLS = int(os.environ.get("PG_RUN_CRASH_KILLS", "200"))
KILL_SECONDS = 360
N_FAULT = int(os.environ.get("PG_RUN_FAULT_MESSAGES", "60"))
SEED = int(os.environ.get("PG_SEED", random.randrange(1 << 30)))
print("seed: %d (PG_SEED=%d repeats this run); %d messages, %d kills, %d for fault injection"
      % (SEED, SEED, N, KILLS, N_FAULT))
sys.stdout.flush()
T0 = time.time()
DOMAIN = "example.com"
top = pg.scratch()
WORK = os.path.join(top, "work")        # where every case runs: the config names it
KEYS = os.path.join(top, "keys")
CONF = os.path.join(top, "postgate.conf")
os.makedirs(KEYS)

# postoffice -> (codepage, mailbox prefix); 10 users each, names with umlauts
POS = {"CORP/P1": ("CP850", "A"), "CORP/P2": ("CP1252", "B"), "CORP/P3": ("CP437", "C")}
USERS = {po: ["%s%02d" % (pfx, i) for i in range(1, 11)] for po, (_, pfx) in POS.items()}
ALL_USERS = ["%s/%s" % (po, u) for po in POS for u in USERS[po]]
NEW_USER = "CORP/P3/C11"                # added by P3's export in a bundle
CUSTOM, CUSTOM_TARGET = "CORP/P1/EXT-1", "ext1@partner.example"
LIST = "CORP/P1/TEAM"
# TEAM: A02, B03, C04, the nested SUB, itself; SUB: B05, C06, A02 again, TEAM.
LISTS_XML = ('  <custom name="EXT-1" display="Änne Extern" target="%s"/>\n'
             '  <list name="TEAM" display="Team Übersee">\n'
             '    <member address="CORP/P1/A02"/>\n    <member address="CORP/P2/B03"/>\n'
             '    <member address="CORP/P3/C04"/>\n    <member address="CORP/P1/SUB"/>\n'
             '    <member address="CORP/P1/TEAM"/>\n  </list>\n'
             '  <list name="SUB" display="Sub">\n'
             '    <member address="CORP/P2/B05"/>\n    <member address="CORP/P3/C06"/>\n'
             '    <member address="CORP/P1/A02"/>\n    <member address="CORP/P1/TEAM"/>\n'
             '  </list>\n' % CUSTOM_TARGET)
LEAVES = ["CORP/P1/A02", "CORP/P2/B03", "CORP/P3/C04", "CORP/P2/B05", "CORP/P3/C06"]
# One bundle from P2 of LARGE messages with attachments of LARGE_BYTES each.
LARGE, LARGE_BYTES = 3, 3 * 1024 * 1024


def smtp_of(legacy):
    return legacy.rsplit("/", 1)[1].lower() + "@" + DOMAIN


def po_dir(po):
    return os.path.join(WORK, po.split("/")[1].lower())


def key_file(po):
    return os.path.join(KEYS, po.split("/")[1].lower() + ".key")


def gw(*args, check=True, env=None, timeout=300, input=None):
    p = subprocess.run([POSTGATE, "-c", CONF] + list(args), capture_output=True,
                       timeout=timeout, env=env, input=input)
    p.out = p.stdout.decode("utf-8", "replace")
    p.err = p.stderr.decode("utf-8", "replace")
    if check and p.returncode != 0:
        raise RuntimeError("postgate %s: exit %d\n%s%s" % (" ".join(args), p.returncode,
                                                          p.out, p.err[-2000:]))
    return p


def write_conf():
    text = ["[site]", "name = HQ", "domains = " + DOMAIN,
            "state_dir = " + os.path.join(WORK, "state"), "gateway_po = CORP/GW", "user =",
            "proxy_templates = SMTP:%m@" + DOMAIN, "", "[smtpd]", "hostname = gw.example.com",
            ""]
    for po, (cp, _) in POS.items():
        text += ["[postoffice %s]" % po, "dir = " + po_dir(po), "key_file = " + key_file(po),
                 "codepage = " + cp, ""]
    with open(CONF, "w") as f:
        f.write("\n".join(text))


class Workload:
    """What was sent, and what must come of it."""

    def __init__(self):
        self.expect = collections.defaultdict(collections.Counter)   # mailbox -> tags
        self.gateway = collections.Counter()    # (tag, mailbox) a gateway bundle carries
        self.outbound = {}                      # legacy id -> (tag, sender SMTP, {rcpts})
        self.submitted = 0
        self.legacy = 0


def message_bytes(n, to, cc, sender):
    h = ["From: Sender %d <%s>" % (n, sender)]
    h.append("To: " + (", ".join(to) if to else "undisclosed-recipients:;"))
    if cc:
        h.append("Cc: " + ", ".join(cc))
    h += ["Subject: S%d Grüße aus dem Büro" % n, "Date: Mon, 1 Jan 2024 10:00:00 +0000",
          "Message-ID: <run-crash-%d@test>" % n, "MIME-Version: 1.0",
          "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"]
    body = "Hallo, Nachricht %d. Schöne Grüße.\n" % n + "Zeile %d\n" % n * (n % 7)
    return ("\n".join(h) + "\n\n" + body).encode("utf-8")


def build(where, n_submit, n_legacy, rnd):
    """The initial state, made in WORK and moved to where; returns its Workload."""
    if os.path.exists(WORK):
        shutil.rmtree(WORK)
    os.makedirs(WORK)
    write_conf()
    w = Workload()
    for po, (cp, pfx) in POS.items():
        users = [(u, "Jörg Ärger %s" % u) for u in USERS[po]]
        pg.make_po(WORK, "CORP", po.split("/")[1], codepage=cp, key=key_file(po),
                   gateway="CORP/GW", users=users)
    for po, (cp, pfx) in POS.items():
        xml = os.path.join(WORK, pfx + ".xml")
        pg.run("-d", po_dir(po), "export-dir", "-o", xml)
        if po == "CORP/P1":
            with open(xml, encoding="utf-8") as f:
                doc = f.read()
            with open(xml, "w", encoding="utf-8") as f:
                f.write(doc.replace("</sync>", LISTS_XML + "</sync>"))
        gw("dir", "import", xml)
    # P3's new user, known to the gateway only through P3's export in a bundle.
    pg.run("-d", po_dir("CORP/P3"), "adduser", "C11", "--name", "Özlem Neu")

    # The SMTP messages, queued with submit.
    jobs = []
    for n in range(n_submit):
        boxes = rnd.sample(ALL_USERS, rnd.randint(1, 5))
        rcpts = [smtp_of(b) for b in boxes]
        if rnd.random() < 0.15:
            rcpts.append("team@" + DOMAIN)
        rnd.shuffle(rcpts)
        shown = [r for r in rcpts if rnd.random() >= 0.2]         # the rest: Bcc
        split = rnd.randint(0, len(shown))
        sender = "s%d@outside.example" % n
        jobs.append((n, sender, rcpts, message_bytes(n, shown[:split], shown[split:], sender)))
        tag = "S%d" % n
        got = set(boxes) | (set(LEAVES) if "team@" + DOMAIN in rcpts else set())
        for b in got:
            w.expect[b][tag] += 1
            w.gateway[(tag, b)] += 1

    def submit(job):
        n, sender, rcpts, data = job
        for _ in range(50):
            p = subprocess.run([POSTGATE, "-c", CONF, "submit", "-f", sender] + rcpts,
                               input=data, capture_output=True, timeout=60)
            if p.returncode != 75:
                break
            time.sleep(0.05)
        if p.returncode != 0:
            raise RuntimeError("submit %d: exit %d: %s" % (n, p.returncode, p.stderr[-500:]))

    # The first one alone: it creates queue.db, and concurrent first opens
    # race its creation (reported).  Then two at a time.
    submit(jobs[0])
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        list(ex.map(submit, jobs[1:]))
    w.submitted = n_submit

    # The legacy messages, each in a bundle of its own in its postoffice's out/.
    blob_dir = os.path.join(top, "blobs")
    os.makedirs(blob_dir, exist_ok=True)
    for n in range(n_legacy):
        po = rnd.choice(list(POS))
        sender = rnd.choice(USERS[po])
        tag = "L%d" % n
        others = [u for u in ALL_USERS + [NEW_USER] if u != "%s/%s" % (po, sender)]
        # customs and lists live on P1: its own users cannot address them
        # with postgate-po send (reported), the others can
        pool = ["users"] * 4 + ["smtp"] * 2 + (["custom", "list"] if po != "CORP/P1" else [])
        kinds = [rnd.choice(pool) for _ in range(rnd.randint(1, 4))]
        to, boxes, smtp = [], set(), set()
        if "list" in kinds:
            to.append(LIST)
            boxes |= set(LEAVES)
        if "custom" in kinds:
            to.append(CUSTOM)
            smtp.add(CUSTOM_TARGET)
        for k in kinds:
            if k == "users":
                # never a member of the list as well: the gateway sees only the
                # responsible recipients of a legacy message (reported)
                cand = [u for u in others if u not in boxes and u not in to and
                        not ("list" in kinds and u in LEAVES)]
                u = rnd.choice(cand)
                to.append(u)
                boxes.add(u)
            elif k == "smtp":
                a = "x%d.%d@partner.example" % (n, len(smtp))
                to.append("SMTP:" + a)
                smtp.add(a)
        rnd.shuffle(to)
        body = os.path.join(blob_dir, "%s.txt" % tag)
        with open(body, "w", encoding="utf-8") as f:
            f.write("Legacy %s: Grüße, Straße, Übung.\r\n" % tag * (1 + n % 5))
        args = ["-d", po_dir(po), "send", "--from", sender, "--to", ",".join(to),
                "--subject", "%s Grüße von %s" % (tag, sender), "--body-file", body]
        if n % 3 == 0:
            att = os.path.join(blob_dir, "%s.bin" % tag)
            with open(att, "wb") as f:
                f.write(bytes(rnd.randrange(256) for _ in range(200 + n * 13 % 3000)))
            args += ["--attach", att]
        p = pg.run(*args)
        mid = re.match(r"sent (\S+?)(;|$)", p.out).group(1)
        for b in boxes:
            w.expect[b][tag] += 1
            if not b.startswith(po + "/") or (b in LEAVES and "list" in kinds):
                w.gateway[(tag, b)] += 1
        if smtp:
            w.outbound[mid] = (tag, smtp_of("%s/%s" % (po, sender)), smtp)
    # And one bundle of several large messages (P2 to P1 and to SMTP): its
    # bodies become files of their own in queue/, and it is queued in more
    # than one commit (each over half of QUEUE_INGEST_STEP_BYTES).
    po, merged = "CORP/P2", []
    for j in range(LARGE):
        n = n_legacy + j
        tag, sender, box = "L%d" % n, USERS[po][j], "CORP/P1/" + USERS["CORP/P1"][j]
        smtp = "x%d.0@partner.example" % n
        att = os.path.join(blob_dir, "%s.bin" % tag)
        with open(att, "wb") as f:
            f.write(rnd.randbytes(LARGE_BYTES))
        p = pg.run("-d", po_dir(po), "send", "--from", sender, "--to", box + ",SMTP:" + smtp,
                   "--subject", "%s Grüße von %s" % (tag, sender), "--attach", att)
        m = re.match(r"sent (\S+?); bundle for the gateway: out/(\S+)$", p.out.strip())
        path = os.path.join(po_dir(po), "out", m.group(2))
        with open(path, "rb") as f:
            merged += pg.entries(f.read())
        os.unlink(path)
        w.expect[box][tag] += 1
        w.gateway[(tag, box)] += 1
        w.outbound[m.group(1)] = (tag, smtp_of("%s/%s" % (po, sender)), {smtp})
    with open(key_file(po), "rb") as f:
        k = f.read().strip()
    # a number of its own, far from the ones P2's postgate-po hands out
    pg.drop(po_dir(po), pg.bundle_name(po, "CORP/GW", 900),
            pg.bundle(po, "CORP/GW", 900, merged, k, level=1), sub="out")
    w.legacy = n_legacy + LARGE
    pg.run("-d", po_dir("CORP/P3"), "export-dir", "--send")
    shutil.move(WORK, where)
    return w


def restore(template):
    if os.path.exists(WORK):
        shutil.rmtree(WORK)
    shutil.copytree(template, WORK, symlinks=True)


class Case:
    """One case, from the initial state to the end of its runs, and its checks."""

    def __init__(self, name, w):
        self.name, self.w = name, w
        self.bundles = {}                       # (po, file name) -> sha256
        self.resp = collections.Counter()       # (tag, mailbox) -> responsible count
        self.problems = []                      # things seen on the way

    def deliver_all(self):
        """Dump every bundle waiting in an in/, then deliver each postoffice."""
        for po in POS:
            d = os.path.join(po_dir(po), "in")
            for n in sorted(os.listdir(d)):
                if n.startswith("."):
                    continue
                path = os.path.join(d, n)
                with open(path, "rb") as f:
                    h = hashlib.sha256(f.read()).hexdigest()
                old = self.bundles.get((po, n))
                if old is not None:
                    if old != h:
                        self.problems.append("%s written twice with different bytes" % n)
                    continue            # the same bundle again: the postoffice drops it
                self.bundles[(po, n)] = h
                p = pg.run("dump", path, "--key-file", key_file(po), check=False)
                if p.returncode != 0 or "hmac:        verified with the key" not in p.out:
                    self.problems.append("dump %s: exit %d %s" % (n, p.returncode,
                                                                  p.err.strip()[-200:]))
                for block in re.split(r"^=== entry \d+: \w+ ===$", p.out, flags=re.M)[1:]:
                    m = re.search(r"^Subject:\s+(\S+)", block, flags=re.M)
                    tag = m.group(1) if m else "?"
                    for a in re.findall(r"^Envelope:\s+(\S+) \(responsible\)$", block,
                                        flags=re.M):
                        self.resp[(tag, a)] += 1
            p = pg.run("-d", po_dir(po), "deliver", check=False)
            m = re.search(r"(\d+) refused", p.out)
            if p.returncode != 0 or not m or m.group(1) != "0":
                self.problems.append("deliver at %s: exit %d: %s %s" % (
                    po, p.returncode, p.out.strip(), p.err.strip()[-300:]))

    def check(self):
        name, w = self.name, self.w
        self.deliver_all()
        t.check(not self.problems, "%s: every bundle verifies, is delivered without refusal, "
                "and one written twice had the same bytes: %s" % (name, self.problems[:5]))
        # every recipient responsible exactly once across all bundles
        wrong = {k: (n, w.gateway.get(k, 0)) for k, n in self.resp.items()
                 if n != w.gateway.get(k, 0)}
        missing = [k for k in w.gateway if k not in self.resp]
        t.check(not wrong and not missing,
                "%s: across %d bundles each of %d (message, mailbox) pairs is responsible "
                "exactly once: %d wrong e.g. %s, %d missing e.g. %s"
                % (name, len(self.bundles), len(w.gateway), len(wrong),
                   sorted(wrong.items())[:4], len(missing), sorted(missing)[:4]))
        # every mailbox: the right messages, each once (list, and by subject tag and id)
        dup_ids, wrong_boxes, wrong_counts = [], [], []
        for po in POS:
            counts = pg.counts(po_dir(po))
            for mb in USERS[po] + (["C11"] if po == "CORP/P3" else []):
                addr = "%s/%s" % (po, mb)
                want = w.expect.get(addr, collections.Counter())
                if counts.get(mb) != sum(want.values()):
                    wrong_counts.append((addr, counts.get(mb), sum(want.values())))
                show = pg.run("-d", po_dir(po), "show", mb).out
                ids = re.findall(r"^Id:\s+(\S+)", show, flags=re.M)
                tags = collections.Counter(re.findall(r"^Subject:\s+(\S+)", show, flags=re.M))
                if len(ids) != len(set(ids)):
                    dup_ids.append((addr, [i for i, c in collections.Counter(ids).items()
                                           if c > 1][:3]))
                if tags != want:
                    wrong_boxes.append((addr, dict((tags - want).most_common(3)),
                                        dict((want - tags).most_common(3))))
            if counts.get("POSTMASTER", 0):
                wrong_counts.append((po + "/POSTMASTER", counts["POSTMASTER"], 0))
        t.check(not wrong_counts, "%s: postgate-po list: every mailbox holds as many "
                "messages as were sent to it: %s" % (name, wrong_counts[:5]))
        t.check(not dup_ids, "%s: no message id twice in one mailbox: %s" % (name, dup_ids[:5]))
        t.check(not wrong_boxes, "%s: every mailbox has each message meant for it exactly "
                "once, no other (by subject tag; extra, missing): %s" % (name, wrong_boxes[:5]))
        # the queue: exactly one outbound message per legacy message to SMTP
        p = gw("queue", "list", "-j", check=False)
        objs = [json.loads(l) for l in p.out.splitlines() if l.strip()]
        by_envid = collections.defaultdict(list)
        stray, held, not_pending = [], [], []
        for o in objs:
            states = [r["state"] for r in o["recipients"]]
            if "held" in states:
                held.append((o["queue_id"], o.get("message_id"), [
                    (r["address"], r["reason"]) for r in o["recipients"]][:3]))
            if any(s != "smtp-pending" for s in states):
                not_pending.append((o["queue_id"], o.get("message_id"), states[:5]))
            if o.get("envid") in w.outbound and o.get("protocol") == "legacy":
                by_envid[o["envid"]].append(o)
            else:
                stray.append((o["queue_id"], o.get("message_id"), o.get("envid")))
        t.check(p.returncode == 0 and not held, "%s: nothing is held: %s" % (name, held[:3]))
        t.check(not stray and not not_pending,
                "%s: queue list -j holds only smtp-pending outbound messages: %d others e.g. "
                "%s, %d not smtp-pending e.g. %s" % (name, len(stray), stray[:3],
                                                     len(not_pending), not_pending[:3]))
        twice = {e: len(v) for e, v in by_envid.items() if len(v) != 1}
        absent = [e for e in w.outbound if e not in by_envid]
        t.check(not twice and not absent,
                "%s: each of the %d legacy messages to SMTP produced exactly one queued "
                "outbound message: %d twice or more e.g. %s, %d absent e.g. %s"
                % (name, len(w.outbound), len(twice), list(twice.items())[:3], len(absent),
                   absent[:3]))
        bad_env = []
        for envid, v in by_envid.items():
            tag, sender, rcpts = w.outbound[envid]
            o = v[0]
            po = envid.split(":")[0]
            h = hashlib.sha256(po.encode() + b"\0" + envid.encode() + b"\0").hexdigest()[:16]
            if o["sender"] != sender or sorted(r["address"] for r in o["recipients"]) != \
                    sorted(rcpts) or not re.fullmatch(r"<[^<>]+\.%s\.%s@gw\.example\.com>"
                                                      % (re.escape(po.replace("/", "-")), h),
                                                      o.get("message_id") or ""):
                bad_env.append((tag, o["sender"], [r["address"] for r in o["recipients"]],
                                o.get("message_id"), sender, sorted(rcpts)))
        t.check(not bad_env, "%s: each outbound message has its sender's primary proxy, "
                "exactly the SMTP recipients and the custom's target, and the Message-ID "
                "derived from the legacy id: %s" % (name, bad_env[:3]))
        left = [(po, d, n) for po in POS for d in ("in", "out", "bad")
                for n in os.listdir(os.path.join(po_dir(po), d)) if not n.startswith(".")]
        t.check(not left, "%s: every postoffice's in/, out/ and bad/ are empty at the end: %s"
                % (name, left[:5]))


def settled():
    """Whether a run finds nothing to do: (yes?, what it said)."""
    p = gw("run", "--no-delivery", check=False)
    m = re.search(r"^postgate run: \d+ messages? looked at: (\d+) recipients to postoffices, "
                  r"(\d+) for SMTP, (\d+) held, (\d+) messages? finished", p.out, flags=re.M)
    quiet = bool(p.returncode == 0 and m and m.groups() == ("0", "0", "0", "0") and
                 "from the postoffices" not in p.out and "to the Internet" not in p.out and
                 not re.search(r"^  CORP/", p.out, flags=re.M))
    return quiet, "exit %d: %s %s" % (p.returncode, p.out.strip(), p.err.strip()[-300:])


def start_run():
    """A run in the background, its output into files (a pipe nobody reads
    while it works would stop it)."""
    out = open(os.path.join(top, "run.out"), "w+b")
    err = open(os.path.join(top, "run.err"), "w+b")
    p = subprocess.Popen([POSTGATE, "-c", CONF, "run", "--no-delivery"], stdout=out, stderr=err)
    p.files = (out, err)
    return p


def finish_run(p):
    """Wait for a run; its stderr."""
    p.wait(300)
    out, err = p.files
    err.seek(0)
    text = err.read()
    out.close()
    err.close()
    return text


# ---- the initial states -----------------------------------------------------------------
rnd = random.Random(SEED)
t0 = time.time()
BIG = os.path.join(top, "big")
W = build(BIG, N, max(6, N // 10), rnd)
print("     initial state: %d submitted, %d legacy (%d to SMTP), %d (message, mailbox) "
      "deliveries, built in %.1f s" % (W.submitted, W.legacy, len(W.outbound),
                                       sum(sum(c.values()) for c in W.expect.values()),
                                       time.time() - t0))
t0 = time.time()
SMALL = os.path.join(top, "small")
WS = build(SMALL, N_FAULT, max(6, N_FAULT // 10), random.Random(SEED + 1))
print("     small initial state: %d submitted, %d legacy, built in %.1f s"
      % (WS.submitted, WS.legacy, time.time() - t0))
sys.stdout.flush()

# ---- 1. a clean run: the baseline --------------------------------------------------------
restore(BIG)
t0 = time.time()
p = gw("run", "--no-delivery", check=False)
D = time.time() - t0
t.check(p.returncode == 0, "clean: run exits 0 (%.2f s): %s" % (D, p.out.strip()
                                                                + p.err.strip()[-500:]))
t0 = time.time()
quiet, why = settled()
S = time.time() - t0
t.check(quiet, "clean: a second run finds nothing to do (%.2f s): %s" % (S, why))
Case("clean", W).check()
print("     clean run %.2f s, a run with nothing to do %.2f s" % (D, S))
sys.stdout.flush()


# ---- 2. random SIGKILLs ------------------------------------------------------------------
def phase(err):
    """Where a killed run was, from the last thing it logged."""
    lines = [l for l in err.decode("utf-8", "replace").splitlines() if ": info: " in l]
    if not lines:
        return "start-up"
    last = lines[-1]
    if "translated from" in last or "translation for" in last:
        return "translation"
    for word, what in (("directory:", "directory import"), ("origin=CORP", "ingest"),
                       ("to=<", "routing"), ("bundle", "bundles"), ("removed", "finishing")):
        if word in last:
            return what
    return "other"


def ingest_left():
    return any(not n.startswith(".") for po in POS
               for n in os.listdir(os.path.join(po_dir(po), "out")))


# Each round: a fresh copy, 4-16 kills, then a run left to finish.  A kill
# comes at a random instant of the run it interrupts: of a whole run while
# the postoffices' bundles wait, else of a resumed run (R, learnt from the
# resumed runs that finished), or now and then within its first moments
# (start-up, recovery, the postoffices' bundles).
kills, rounds, runs, odd_exits, t_kill = 0, 0, 0, [], time.time()
where, R = collections.Counter(), D
while kills < KILLS and rounds < 100 and time.time() - t_kill < KILL_SECONDS:
    rounds += 1
    restore(BIG)
    c = Case("random kills, round %d" % rounds, W)
    done, planned, got = False, min(KILLS - kills, rnd.randint(4, 16)), 0
    for attempt in range(2000):
        resumed = not ingest_left()
        if got >= planned:
            delay = None
        elif rnd.random() < 0.2:
            delay = rnd.uniform(0, 0.15 * D)
        else:
            delay = rnd.uniform(0, 1.05 * (R if resumed else D))
        if rnd.random() < 0.05:
            c.deliver_all()
        runs += 1
        t0 = time.time()
        pr = start_run()
        if delay is not None:
            try:
                pr.wait(delay)
            except subprocess.TimeoutExpired:
                pr.send_signal(signal.SIGKILL)
        err = finish_run(pr)
        if pr.returncode == -signal.SIGKILL:
            kills += 1
            got += 1
            where[phase(err)] += 1
            continue
        if pr.returncode != 0:
            odd_exits.append((pr.returncode, err.decode("utf-8", "replace").strip()[-300:]))
            continue
        if resumed:
            R = max(0.9 * R, time.time() - t0)     # a nearly finished job is shorter
        quiet, why = settled()
        if quiet:
            done = True
            break
    t.check(done, "%s: run restarted until it exits 0 with nothing left to do (%d kills, "
            "%d in all so far, %d runs)" % (c.name, got, kills, runs))
    c.check()
print("     %d kills over %d rounds, %d runs, %.1f s (a resumed run: %.2f s); the kills "
      "found run at: %s" % (kills, rounds, runs, time.time() - t_kill, R,
         ", ".join("%s %d" % kv for kv in where.most_common())))
# The kills stop after KILL_SECONDS of them whatever the count, so that a
# slow machine (CI under load, a sanitizer build) keeps the suite's time: the
# count then wanted is a quarter, still far from a test that killed nothing.
cut_short = kills < KILLS and time.time() - t_kill >= KILL_SECONDS
t.check(kills >= (KILLS // 4 if cut_short else KILLS),
        "random kills: %d SIGKILLs at random instants (wanted %d%s)"
        % (kills, KILLS, ", or %d after %d s of them on a slow machine" % (KILLS // 4, KILL_SECONDS)
           if cut_short else ""))
t.check(not odd_exits, "random kills: every run that was not killed exited 0: %s"
        % odd_exits[:3])
sys.stdout.flush()

# ---- 3. fault injection after every durable step ----------------------------------------
t_fault, steps, finished = time.time(), collections.Counter(), False
for k in range(1, 2000):
    restore(SMALL)
    c = Case("fault %d" % k, WS)
    p = gw("run", "--no-delivery", check=False, env=dict(os.environ, POSTGATE_FAULT_AFTER=str(k)))
    if p.returncode == 0:
        finished = True
        print("     POSTGATE_FAULT_AFTER=%d: the run finished without dying" % k)
        c.name = "fault %d (no such step)" % k
        quiet, why = settled()
        t.check(quiet, "%s: a second run finds nothing to do: %s" % (c.name, why))
        c.check()
        break
    m = re.search(r"fault injection: killed after durable step %d \(([^)]*)\)" % k, p.err)
    step = m.group(1) if m else None
    steps[step] += 1
    c.name = "fault %d (%s)" % (k, step)
    if not t.check(p.returncode == -signal.SIGKILL and step,
                   "%s: the run died by SIGKILL right after durable step %d: exit %d %s"
                   % (c.name, k, p.returncode, p.err.strip()[-300:])):
        break
    c.deliver_all()
    p = gw("run", "--no-delivery", check=False)
    t.check(p.returncode == 0, "%s: the run after it exits 0: %s %s"
            % (c.name, p.out.strip(), p.err.strip()[-300:]))
    quiet, why = settled()
    t.check(quiet, "%s: then a run finds nothing to do: %s" % (c.name, why))
    c.check()
t.check(finished, "fault injection: some k lets the run finish (the steps are finite)")
print("     fault injection: %d durable steps (%s), %.1f s"
      % (sum(steps.values()), ", ".join("%s %d" % kv for kv in sorted(steps.items())),
         time.time() - t_fault))
print("runtime %.1f s" % (time.time() - T0))
shutil.rmtree(top)
t.done()
