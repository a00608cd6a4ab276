"""postgate run reading the postoffices' out/: only a bundle at fault goes
to bad/, nothing is lost on a failure of ours, and a bundle applies whole
or not at all (issue 12, point 4: "No mail lost or quarantined on a
transient error").

A site with CORP/HQ and CORP/SALES; every bundle is crafted with pgbundle.py
(the independent implementation), so that its contents and sequence number
are the test's.  Legacy messages here go to SMTP: addresses: each one that
is queued becomes exactly one outbound message (queue list -j, envid = its
legacy id).

1. A bundle that cannot be read (permission denied: mode 000, run as an
   unprivileged [site] user when the test runs as root) stays in out/, the
   log names it and why, the run exits 75 and nothing of it is queued; the
   next bundle of the same postoffice waits behind it (still in out/), while
   SALES's bundle is applied in the same run.  Readable again, the next run
   applies both, in order, exits 0, each message queued once.
2. A bundle holding a message and a directory export the gateway refuses
   (HQ's export inside a bundle from SALES): the whole bundle goes to bad/
   with a .why, its message is not queued (nothing of it applies), and the
   run exits 0.
3. A bundle holding SALES's export (a new user) and a message while
   directory.db is locked by another process: the import fails (busy), the
   bundle stays in out/, nothing of it is queued, exit 75; once the lock is
   gone the next run imports the export and queues the message, once.
4. Putting a bundle back from bad/ (docs/postgate.8, THE BATCH RUN): the
   gateway's key for SALES is wrong, so a good bundle goes to bad/ as "bad
   HMAC"; with the key right again, the bundle moved back into out/ under
   its name is applied (its message queued once), and moved back once more
   it is dropped as applied before.
"""
import json
import os
import pwd
import re
import shutil
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgbundle as pg  # noqa: E402

t = pg.Tally("run-ingest")
POSTGATE = os.environ.get("POSTGATE") or os.path.join(os.getcwd(), "postgate")
DOMAIN = "example.com"
HQ, SALES, GW = "CORP/HQ", "CORP/SALES", "CORP/GW"
top = pg.scratch()
T0 = time.time()
# As root, permissions do not stop a read: the gateway runs as nobody then.
ROOT = os.geteuid() == 0
USER = "nobody" if ROOT else ""
if ROOT:
    os.chmod(top, 0o755)

po_dir, key, key_file = {}, {}, {}
for po, users in ((HQ, [("JSMITH", "J Smith")]), (SALES, [("ALICE", "Alice"), ("BOB", "Bob")])):
    short = po.split("/")[1]
    po_dir[po], key[po] = pg.make_po(top, "CORP", short, gateway=GW, users=users)
    key_file[po] = os.path.join(top, short.lower() + ".key")
STATE = os.path.join(top, "state")
CONF = os.path.join(top, "postgate.conf")
with open(CONF, "w") as f:
    f.write("\n".join([
        "[site]", "name = HQ", "domains = " + DOMAIN, "state_dir = " + STATE,
        "gateway_po = " + GW, "user = " + USER, "proxy_templates = SMTP:%m@" + DOMAIN, "",
        "[smtpd]", "hostname = gw.example.com", "",
        "[postoffice %s]" % HQ, "dir = " + po_dir[HQ], "key_file = " + key_file[HQ],
        "codepage = CP850", "",
        "[postoffice %s]" % SALES, "dir = " + po_dir[SALES], "key_file = " + key_file[SALES],
        "codepage = CP850", ""]))


def own():
    """As root: everything the gateway touches belongs to its user."""
    if not ROOT:
        return
    pw = pwd.getpwnam(USER)
    for d, subdirs, names in os.walk(top):
        for n in [d] + [os.path.join(d, x) for x in subdirs + names]:
            os.lchown(n, pw.pw_uid, pw.pw_gid)


def gw(*args, check=True):
    own()
    p = subprocess.run([POSTGATE, "-c", CONF] + list(args), capture_output=True, timeout=120)
    p.out = p.stdout.decode("utf-8", "replace")
    p.err = p.stderr.decode("utf-8", "replace")
    if check and p.returncode != 0:
        raise RuntimeError("postgate %s: exit %d\n%s%s" % (" ".join(args), p.returncode,
                                                          p.out, p.err))
    return p


def run():
    return gw("run", "--no-delivery", check=False)


def files(po, sub):
    d = os.path.join(po_dir[po], sub)
    return sorted(n for n in os.listdir(d) if not n.startswith("."))


def outbound():
    """{legacy id: number of outbound messages queued for it}."""
    n = {}
    for line in gw("queue", "list", "-j").out.splitlines():
        if line.strip():
            o = json.loads(line)
            if o.get("protocol") == "legacy" and o.get("envid"):
                n[o["envid"]] = n.get(o["envid"], 0) + 1
    return n


def message(po, sender, n):
    """A legacy message entry from po's sender to an SMTP: address; its id."""
    mid = "%s:20240101000000.%012d" % (po, n)
    return mid, pg.message(mid, "%s/%s" % (po, sender),
                           [("SMTP:x%d@partner.example" % n, True)],
                           subject=b"ingest %d" % n, body=b"Body %d\r\n" % n)


def drop(po, seq, entries, k=None):
    """A bundle from po to the gateway in po's out/; its file name."""
    name = pg.bundle_name(po, GW, seq)
    pg.drop(po_dir[po], name, pg.bundle(po, GW, seq, entries, k or key[po]), sub="out")
    return name


def export(po, path):
    pg.run("-d", po_dir[po], "export-dir", "-o", path)
    with open(path, "rb") as f:
        return f.read()


# ---- setup: the directory ----------------------------------------------------------------
for po in (HQ, SALES):
    path = os.path.join(top, po.split("/")[1].lower() + ".xml")
    export(po, path)
    gw("dir", "import", path)

# ---- 1. a bundle that cannot be read ------------------------------------------------------
id1, m1 = message(HQ, "JSMITH", 1)
id2, m2 = message(HQ, "JSMITH", 2)
id3, m3 = message(SALES, "ALICE", 3)
b1 = drop(HQ, 101, [(1, m1)])
b2 = drop(HQ, 102, [(1, m2)])
b3 = drop(SALES, 101, [(1, m3)])
own()
os.chmod(os.path.join(po_dir[HQ], "out", b1), 0)
p = run()
t.check(p.returncode == 75, "1: a bundle that cannot be read: run exits 75 (EX_TEMPFAIL): "
        "%d %s %s" % (p.returncode, p.out.strip(), p.err.strip()[-500:]))
t.check(files(HQ, "out") == [b1, b2] and files(HQ, "bad") == [],
        "1: it stays in out/, not in bad/, and the next bundle of HQ waits behind it: "
        "out/ %s, bad/ %s" % (files(HQ, "out"), files(HQ, "bad")))
t.check(re.search(r"%s left in out/ for the next run: .*Permission denied" % re.escape(b1),
                  p.err),
        "1: the log names the bundle and why: %r" % p.err.strip()[-600:])
q = outbound()
t.check(q == {id3: 1} and files(SALES, "out") == [],
        "1: nothing of HQ's bundles is queued; SALES's bundle is applied in the same run: %s"
        % q)
if os.path.exists(os.path.join(po_dir[HQ], "out", b1)):
    os.chmod(os.path.join(po_dir[HQ], "out", b1), 0o640)
p = run()
t.check(p.returncode == 0 and files(HQ, "out") == [] and files(HQ, "bad") == [],
        "1: readable again, the next run applies both and exits 0: %d out/ %s %s"
        % (p.returncode, files(HQ, "out"), p.err.strip()[-300:]))
q = outbound()
t.check(q == {id1: 1, id2: 1, id3: 1}, "1: each message queued exactly once: %s" % q)
i1, i2 = p.err.find("origin=%s#101" % HQ), p.err.find("origin=%s#102" % HQ)
t.check(0 <= i1 < i2, "1: in sequence order (101 before 102)")

# ---- 2. a directory entry the gateway refuses ---------------------------------------------
id4, m4 = message(SALES, "ALICE", 4)
hq_xml = export(HQ, os.path.join(top, "hq-again.xml"))
b4 = drop(SALES, 102, [(1, m4), (2, hq_xml)])
p = run()
t.check(p.returncode == 0 and files(SALES, "out") == [] and
        files(SALES, "bad") == [b4, b4 + ".why"],
        "2: a bundle whose directory export is refused goes to bad/ whole, with a .why, exit "
        "0: %d out/ %s bad/ %s %s" % (p.returncode, files(SALES, "out"), files(SALES, "bad"),
                                       p.err.strip()[-300:]))
why = open(os.path.join(po_dir[SALES], "bad", b4 + ".why"), encoding="utf-8").read() \
    if os.path.exists(os.path.join(po_dir[SALES], "bad", b4 + ".why")) else ""
t.check("directory export refused" in why and "CORP/SALES" in why,
        "2: the .why says which export and why: %r" % why)
q = outbound()
t.check(id4 not in q, "2: the message beside it is not queued (nothing of it applies): %s" % q)
t.check("1 bundle refused to bad/" in p.out, "2: the summary counts it: %r" % p.out)

# ---- 3. directory.db busy -----------------------------------------------------------------
pg.run("-d", po_dir[SALES], "adduser", "CARL", "--name", "Carl")
sales_xml = export(SALES, os.path.join(top, "sales-carl.xml"))
id5, m5 = message(SALES, "BOB", 5)
b5 = drop(SALES, 103, [(2, sales_xml), (1, m5)])
own()
db = sqlite3.connect(os.path.join(STATE, "directory.db"), timeout=30, isolation_level=None)
db.execute("BEGIN IMMEDIATE")
t0 = time.time()
p = run()
db.execute("ROLLBACK")
db.close()
t.check(p.returncode == 75 and files(SALES, "out") == [b5],
        "3: directory.db locked: the bundle stays in out/, exit 75 (%.1f s): %d %s %s"
        % (time.time() - t0, p.returncode, files(SALES, "out"), p.err.strip()[-400:]))
t.check(re.search(r"%s left in out/ for the next run: .*directory export" % re.escape(b5),
                  p.err), "3: the log says why: %r" % p.err.strip()[-400:])
q = outbound()
r = gw("dir", "route", "carl@" + DOMAIN, check=False)
t.check(id5 not in q and r.returncode == 67,
        "3: nothing of it applied: its message not queued, the new user unknown: %s %r"
        % (q, r.out))
p = run()
r = gw("dir", "route", "carl@" + DOMAIN, check=False)
q = outbound()
t.check(p.returncode == 0 and files(SALES, "out") == [] and q.get(id5) == 1 and
        r.out.strip() == "postoffice CORP/SALES CARL",
        "3: the lock gone, the next run imports the export and queues the message once: %d "
        "%s %r %s" % (p.returncode, q.get(id5), r.out, p.err.strip()[-300:]))

# ---- 4. a bundle put back from bad/ -------------------------------------------------------
id6, m6 = message(SALES, "ALICE", 6)
b6 = drop(SALES, 104, [(1, m6)])
good_key = open(key_file[SALES], "rb").read()
with open(key_file[SALES], "wb") as f:
    f.write(b"0" * 64 + b"\n")
p = run()
t.check(b6 in files(SALES, "bad") and files(SALES, "out") == [] and id6 not in outbound(),
        "4: with a wrong key for SALES the bundle goes to bad/ (bad HMAC): %s"
        % files(SALES, "bad"))
with open(key_file[SALES], "wb") as f:
    f.write(good_key)
os.rename(os.path.join(po_dir[SALES], "bad", b6), os.path.join(po_dir[SALES], "out", b6))
os.unlink(os.path.join(po_dir[SALES], "bad", b6 + ".why"))
saved = open(os.path.join(po_dir[SALES], "out", b6), "rb").read()
p = run()
t.check(p.returncode == 0 and files(SALES, "out") == [] and outbound().get(id6) == 1,
        "4: the key right again, the bundle moved back into out/ under its name is applied: "
        "%d %s %s" % (p.returncode, outbound().get(id6), p.err.strip()[-300:]))
pg.drop(po_dir[SALES], b6, saved, sub="out")
p = run()
t.check(p.returncode == 0 and files(SALES, "out") == [] and b6 not in files(SALES, "bad") and
        outbound().get(id6) == 1 and "applied before" in p.err,
        "4: moved back once more, it is dropped as applied before, not queued again: %d %s"
        % (p.returncode, outbound().get(id6)))

print("runtime %.1f s" % (time.time() - T0))
shutil.rmtree(top)
t.done()
