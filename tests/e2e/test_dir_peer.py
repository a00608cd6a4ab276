"""postgate dir: a peer site cannot take over this site's mailboxes (SPEC 2).

Issue 12, point 0, with the real binaries: site A serves CORP/HQ (ALICE,
BOB, imported from `postgate-po export-dir`); site B is a peer.  B sends
hostile replication files:

1. a tombstone of ALICE (ALICE's id, origin B, a higher version);
2. a rewrite of ALICE (new display name, a primary in B's domain);
3. a B entry claiming smtp:alice@example.com, then a tombstone of ALICE
   (claim-then-delete).

After each: the import exits 0 and its summary counts the change as
ignored (the claim: a proxy loss), a warning names site B,
`dir route alice@example.com` still says `postoffice CORP/HQ ALICE`, and the
listener still answers 250 to RCPT TO:<alice@example.com>.  Then the
postoffice's own export imports again unchanged, this site's postoffice
wins a clash with B's entry, and a message for alice goes through
`run` to CORP/HQ, never over the site link to B.  B's changes about its own
entries (an addition, then its tombstone) still apply.
"""
import json
import os
import re
import shutil
import smtplib
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgbundle as pg  # noqa: E402

t = pg.Tally("dir_peer")
POSTGATE = os.environ.get("POSTGATE") or os.path.join(os.getcwd(), "postgate")
HOST = "127.0.0.1"
top = pg.scratch()


PORT = pg.free_port(HOST)
LINK_PORT = pg.free_port(HOST)         # nobody listens there: B is never reached
podir, _ = pg.make_po(top, "CORP", "HQ", gateway="CORP/GW",
                      users=[("ALICE", "Alice Smith"), ("BOB", "Bob Jones")])
CONF = os.path.join(top, "postgate.conf")
with open(CONF, "w") as f:
    f.write("\n".join([
        "[site]", "name = A", "domains = example.com",
        "state_dir = " + os.path.join(top, "state"), "gateway_po = CORP/GW", "user =",
        "proxy_templates = SMTP:%m@example.com", "",
        "[smtpd]", "listen = %s:%d" % (HOST, PORT), "timeout = 10s", "",
        "[postoffice CORP/HQ]", "dir = " + podir, "key_file = " + os.path.join(top, "hq.key"),
        "codepage = CP850", "",
        "[site-link B]", "domains = b.example.org", "host = %s:%d" % (HOST, LINK_PORT), ""]))


def gw(*args, check=True):
    p = subprocess.run([POSTGATE, "-c", CONF] + list(args), capture_output=True, timeout=120)
    p.out = p.stdout.decode("utf-8", "replace")
    p.err = p.stderr.decode("utf-8", "replace")
    p.warnings = [l for l in p.err.splitlines() if "warning: directory:" in l]
    if check and p.returncode != 0:
        raise RuntimeError("postgate %s: exit %d\n%s%s" % (" ".join(args), p.returncode,
                                                          p.out, p.err))
    return p


HQ_XML = os.path.join(top, "hq.xml")
pg.run("-d", podir, "export-dir", "-o", HQ_XML)
gw("dir", "import", HQ_XML)
m = re.search(r'<entry id="([^"]+)"[^>]*legacy="CORP/HQ/ALICE"', gw("dir", "export",
                                                                     "--canonical").out)
ALICE_ID = m.group(1) if m else "A:unknown"
ROUTE = "postoffice CORP/HQ ALICE\n"


class Listener:
    """postgate smtpd in the foreground, its stderr in a log file."""

    def __init__(self):
        self.logname = os.path.join(top, "smtpd.log")
        self.log = open(self.logname, "ab")
        self.p = subprocess.Popen([POSTGATE, "-c", CONF, "smtpd"], stdout=self.log,
                                  stderr=self.log)
        for _ in range(200):
            if self.p.poll() is not None:
                raise RuntimeError("smtpd exited %d at start; see %s" % (self.p.returncode,
                                                                        self.logname))
            try:
                socket.create_connection((HOST, PORT), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("smtpd does not accept connections on port %d" % PORT)

    def rcpt(self, addr):
        """The listener's answer to RCPT TO:<addr>, as (code, text)."""
        s = smtplib.SMTP(HOST, PORT, timeout=20)
        try:
            s.ehlo("client.test")
            s.mail("someone@other.org")
            code, msg = s.rcpt(addr)
            s.rset()
            s.quit()
        finally:
            s.close()
        return code, msg.decode("utf-8", "replace")

    def send(self, rcpt, data):
        s = smtplib.SMTP(HOST, PORT, timeout=20)
        try:
            s.ehlo("client.test")
            s.mail("someone@other.org")
            code, msg = s.rcpt(rcpt)
            reply = s.data(data) if code == 250 else (code, msg)
            s.quit()
        finally:
            s.close()
        return reply

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(10)
        self.log.close()


def change(cid, legacy, usn, version, home="B", display=None, proxies=(), deleted=False):
    attrs = 'id="%s" type="mailbox" origin="B" usn="%d" version="%d" changed="1700000000" ' \
            'home="%s" legacy="%s"' % (cid, usn, version, home, legacy)
    if display:
        attrs += ' display="%s"' % display
    attrs += ' deleted="%s"' % ("true" if deleted else "false")
    if not proxies:
        return "  <change %s/>\n" % attrs
    return "  <change %s>\n%s  </change>\n" % (attrs, "".join("    <proxy>%s</proxy>\n" % p
                                                          for p in proxies))


def peer_file(name, *changes):
    path = os.path.join(top, name)
    with open(path, "w") as f:
        f.write('<?xml version="1.0" encoding="UTF-8"?>\n'
                '<sync xmlns="urn:postgate:sync:1" version="1" kind="replication" from="B" '
                'for="A">\n' + "".join(changes) + "</sync>\n")
    return path


def summary(p, path):
    """The import summary's counts for path, as a dict."""
    for line in p.out.splitlines():
        if line.startswith(path + ": "):
            return {k: int(n) for n, k in re.findall(r"(\d+) (added|changed|deleted|unchanged|"
                                                      r"ignored|proxy losses)", line)}
    return {}


def unchanged(what, lst):
    r = gw("dir", "route", "alice@example.com", check=False)
    t.check(r.returncode == 0 and r.out == ROUTE,
            "%s: dir route alice@example.com still says %r: %r" % (what, ROUTE, r.out))
    lk = gw("dir", "lookup", "alice@example.com", check=False)
    t.check("legacy:    CORP/HQ/ALICE" in lk.out and "name:      Alice Smith" in lk.out and
            "proxy:     SMTP:alice@example.com" in lk.out and "thief" not in lk.out,
            "%s: ALICE is as her postoffice says: %r" % (what, lk.out))
    code, msg = lst.rcpt("alice@example.com")
    t.check(code == 250, "%s: the listener still answers 250 to alice@example.com: %d %s"
            % (what, code, msg))


lst = Listener()
try:
    code, msg = lst.rcpt("alice@example.com")
    t.check(code == 250, "before: RCPT TO:<alice@example.com> is 250: %d %s" % (code, msg))

    # B's own entries replicate as ever.
    legit = peer_file("b-own.xml", change("B:carol", "CORP/B1/CAROL", 1, 1, display="Carol",
                                          proxies=["SMTP:carol@b.example.org"]))
    p = gw("dir", "import", legit, check=False)
    t.check(p.returncode == 0 and summary(p, legit).get("added") == 1,
            "B's own new entry is added: %r %s" % (p.out, p.err))
    r = gw("dir", "route", "carol@b.example.org", check=False)
    t.check(r.out == "site-link B <carol@b.example.org>\n", "and routes to B: %r" % r.out)

    # ---- 1. a tombstone of ALICE ------------------------------------------------
    f = peer_file("b-tombstone.xml", change(ALICE_ID, "CORP/HQ/ALICE", 2, 5, home="A",
                                            deleted=True))
    p = gw("dir", "import", f, check=False)
    s = summary(p, f)
    t.check(p.returncode == 0 and s.get("ignored") == 1 and s.get("deleted") == 0,
            "tombstone: imported with 1 ignored, 0 deleted: %r" % p.out)
    t.check(any("site B" in w and "CORP/HQ/ALICE" in w and "ignored" in w for w in p.warnings),
            "tombstone: a warning names site B and ALICE: %r" % p.err)
    unchanged("tombstone", lst)

    # ---- 2. a rewrite of ALICE ----------------------------------------------------
    f = peer_file("b-rewrite.xml", change(ALICE_ID, "CORP/HQ/ALICE", 3, 6, home="B",
                                          display="Mallory",
                                          proxies=["SMTP:thief@b.example.org"]))
    p = gw("dir", "import", f, check=False)
    s = summary(p, f)
    t.check(p.returncode == 0 and s.get("ignored") == 1 and s.get("changed") == 0,
            "rewrite: imported with 1 ignored, 0 changed: %r" % p.out)
    t.check(any("site B" in w and "ignored" in w for w in p.warnings),
            "rewrite: a warning names site B: %r" % p.err)
    unchanged("rewrite", lst)

    # ---- 3. claim, then delete --------------------------------------------------------
    f = peer_file("b-claim.xml", change("B:thief", "CORP/B1/THIEF", 4, 1, display="Thief",
                                        proxies=["SMTP:thief@b.example.org",
                                                 "smtp:alice@example.com"]))
    p = gw("dir", "import", f, check=False)
    s = summary(p, f)
    t.check(p.returncode == 0 and s.get("added") == 1 and s.get("proxy losses") == 1,
            "claim: THIEF added, its claim of alice@example.com lost: %r" % p.out)
    t.check(any("alice@example.com" in w and "CORP/B1/THIEF" in w and "site B" in w
                for w in p.warnings), "claim: a warning names THIEF and site B: %r" % p.err)
    unchanged("claim", lst)
    f = peer_file("b-delete.xml", change(ALICE_ID, "CORP/HQ/ALICE", 5, 9, home="A",
                                         deleted=True))
    p = gw("dir", "import", f, check=False)
    s = summary(p, f)
    t.check(p.returncode == 0 and s.get("ignored") == 1 and s.get("deleted") == 0,
            "claim then delete: the tombstone is ignored: %r" % p.out)
    t.check(any("site B" in w and "ignored" in w for w in p.warnings),
            "claim then delete: a warning names site B: %r" % p.err)
    unchanged("claim then delete", lst)

    # ---- the postoffice's own export imports again -------------------------------
    p = gw("dir", "import", HQ_XML, check=False)
    s = summary(p, HQ_XML)
    t.check(p.returncode == 0 and s.get("unchanged") == 2 and s.get("changed") == 0,
            "the postoffice's own export imports again, unchanged: %r %s" % (p.out, p.err))
    lines = gw("dir", "list").out.splitlines()
    t.check("mailbox CORP/B1/THIEF SMTP:thief@b.example.org Thief" in lines and
            "mailbox CORP/HQ/ALICE SMTP:alice@example.com Alice Smith" in lines,
            "dir list: ALICE keeps her primary, THIEF has its own: %s" % lines)

    # ---- this site's postoffice wins a clash with a peer's entry ----------------------
    f = peer_file("b-first.xml", change("B:dave", "CORP/B1/DAVE", 6, 1, display="Dave at B",
                                        proxies=["SMTP:dave@example.com"]))
    gw("dir", "import", f)
    r = gw("dir", "route", "dave@example.com", check=False)
    t.check(r.out.startswith("site-link B") or r.out.startswith("error"),
            "dave@example.com is B's entry while A has none: %r" % r.out)
    pg.run("-d", podir, "adduser", "DAVE", "--name", "Dave at A")
    hq2 = os.path.join(top, "hq2.xml")
    pg.run("-d", podir, "export-dir", "-o", hq2)
    p = gw("dir", "import", hq2, check=False)
    s = summary(p, hq2)
    t.check(p.returncode == 0 and s.get("added") == 1 and s.get("proxy losses") == 1,
            "the postoffice export giving DAVE dave@example.com is imported, B's claim "
            "lost: %r %s" % (p.out, p.err))
    r = gw("dir", "route", "dave@example.com", check=False)
    t.check(r.out == "postoffice CORP/HQ DAVE\n", "dave@example.com is A's DAVE: %r" % r.out)
    lines = gw("dir", "list").out.splitlines()
    t.check("mailbox CORP/B1/DAVE - Dave at B" in lines and
            "mailbox CORP/HQ/DAVE SMTP:dave@example.com Dave at A" in lines,
            "dir list shows B's DAVE without the primary it lost: %s" % lines)
    code, msg = lst.rcpt("dave@example.com")
    t.check(code == 250, "the listener takes dave@example.com: %d %s" % (code, msg))

    # ---- mail for alice goes to CORP/HQ, never to B ------------------------------------
    data = ("From: Someone <someone@other.org>\r\nTo: Alice <alice@example.com>\r\n"
            "Subject: after the attacks\r\nMessage-ID: <peer-test@other.org>\r\n\r\n"
            "Hello Alice.\r\n").encode()
    reply = lst.send("alice@example.com", data)
    t.check(reply[0] == 250, "a message for alice is accepted: %r" % (reply,))
    p = gw("run", check=False)
    t.check(p.returncode == 0 and "CORP/HQ: 1 copy in 1 bundle" in p.out and
            "0 for SMTP" in p.out and "site-link" not in p.out,
            "run bundles it for CORP/HQ, nothing for B: %r %s" % (p.out, p.err))
    q = [json.loads(l) for l in gw("queue", "list", "-j").out.splitlines() if l.strip()]
    t.check(not [m for m in q if m.get("message_id") == "<peer-test@other.org>"],
            "the queue holds nothing of it (no copy waits for B): %r" % q)
    pg.run("-d", podir, "deliver")
    t.check(pg.counts(podir).get("ALICE") == 1, "ALICE has it: %r" % pg.counts(podir))

    # ---- B's tombstone of its own entry still applies ------------------------------------
    f = peer_file("b-own-gone.xml", change("B:carol", "CORP/B1/CAROL", 7, 2, deleted=True))
    p = gw("dir", "import", f, check=False)
    t.check(p.returncode == 0 and summary(p, f).get("deleted") == 1,
            "B's tombstone of its own CAROL is applied: %r" % p.out)
    lk = gw("dir", "lookup", "carol@b.example.org", check=False)
    t.check(lk.returncode == 67, "CAROL is gone: exit %d %r" % (lk.returncode, lk.out))
finally:
    lst.stop()

shutil.rmtree(top)
t.done()
