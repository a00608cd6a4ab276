"""postgate run: the inbound fan-out end to end, with the real binaries.

Issue 6, "Done when" 1-3 for the inbound direction (SPEC 2 Inbound, 3.1):
SMTP in through the listener -> `postgate run` -> bundles in each
postoffice's in/ -> `postgate-po deliver` -> mailboxes.

1. One message to 50 recipients on 3 postoffices plus a distribution list
   (overlapping members, a nested list, a cycle): one copy per postoffice,
   every recipient responsible exactly once, the summary, the queue empty
   of it; after deliver every recipient has one copy; re-dropped bundles
   change nothing.
2. The same on a fresh site delivered with --ignore-responsibility (the
   seed bug's setting of SPEC 3.1): still one copy each.
3. Bcc: a Bcc recipient's address appears only in their own copy (also
   with a Bcc: header left in, and with To: undisclosed-recipients:;);
   recipients shown in To/Cc in any form (domain case, groups, encoded
   names, reached through a list that is shown, whatever the RCPT order)
   share one copy per postoffice.
4. --dry-run prints the routes and changes nothing.
5. A null sender that is no readable report is bundled as an ordinary message.
6. A second run while one holds state_dir/run.lock exits 75 at once.
7. A run right after a run writes nothing and changes nothing.
"""
import fcntl
import json
import os
import re
import shutil
import smtplib
import socket
import struct
import subprocess
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgbundle as pg  # noqa: E402

t = pg.Tally("run")
POSTGATE = os.environ.get("POSTGATE") or os.path.join(os.getcwd(), "postgate")
HOST = "127.0.0.1"
DOMAIN = "example.com"
top = pg.scratch()
T0 = time.time()

# U01-U17 on P1, U18-U34 on P2, U35-U50 on P3.
USERS = ["U%02d" % i for i in range(1, 51)]


def po_of(user):
    n = int(user[1:])
    return "CORP/P1" if n <= 17 else "CORP/P2" if n <= 34 else "CORP/P3"


def smtp_addr(user):
    return "%s@%s" % (user.lower(), DOMAIN)


POS = ["CORP/P1", "CORP/P2", "CORP/P3"]
# TEAM (on P1): 8 mailboxes that are also direct recipients, the nested
# list SUB, and itself (a cycle).  SUB: 2 more overlapping mailboxes, and
# TEAM again (a cycle through the nesting).
TEAM_DIRECT = ["U03", "U05", "U10", "U20", "U25", "U40", "U45", "U50"]
SUB_DIRECT = ["U21", "U36"]
LISTS_XML = (
    '  <list name="TEAM" display="Team">\n' +
    "".join('    <member address="%s/%s"/>\n' % (po_of(u), u) for u in TEAM_DIRECT) +
    '    <member address="CORP/P1/SUB"/>\n'
    '    <member address="CORP/P1/TEAM"/>\n'
    '  </list>\n'
    '  <list name="SUB" display="Sub team">\n' +
    "".join('    <member address="%s/%s"/>\n' % (po_of(u), u) for u in SUB_DIRECT) +
    '    <member address="CORP/P1/TEAM"/>\n'
    '  </list>\n')


class Site:
    """One gateway: config, state dir, three postoffices, a listener."""

    def __init__(self, name):
        self.top = os.path.join(top, name)
        os.makedirs(self.top)
        self.port = pg.free_port(HOST)
        self.state = os.path.join(self.top, "state")
        self.conf = os.path.join(self.top, "postgate.conf")
        self.po_dir, self.key_file, self.key = {}, {}, {}
        text = ["[site]", "name = " + name, "domains = " + DOMAIN,
                "state_dir = " + self.state, "gateway_po = CORP/GW", "user =",
                "proxy_templates = SMTP:%m@" + DOMAIN, "",
                "[smtpd]", "listen = %s:%d" % (HOST, self.port), "timeout = 10s", ""]
        for po in POS:
            short = po.split("/")[1]
            users = [(u, "User %s" % u) for u in USERS if po_of(u) == po]
            d, k = pg.make_po(self.top, "CORP", short, gateway="CORP/GW", users=users)
            self.po_dir[po], self.key[po] = d, k
            self.key_file[po] = os.path.join(self.top, short.lower() + ".key")
            text += ["[postoffice %s]" % po, "dir = " + d, "key_file = " + self.key_file[po],
                     "codepage = CP850", ""]
        with open(self.conf, "w") as f:
            f.write("\n".join(text))
        for po in POS:
            xml = os.path.join(self.top, po.split("/")[1].lower() + "-export.xml")
            pg.run("-d", self.po_dir[po], "export-dir", "-o", xml)
            if po == "CORP/P1":
                with open(xml) as f:
                    doc = f.read()
                with open(xml, "w") as f:
                    f.write(doc.replace("</sync>", LISTS_XML + "</sync>"))
            self.gw("dir", "import", xml)
        self.p = None
        self.logname = os.path.join(self.top, "smtpd.log")

    def gw(self, *args, check=True, timeout=120):
        p = subprocess.run([POSTGATE, "-c", self.conf] + list(args), capture_output=True,
                           timeout=timeout)
        p.out = p.stdout.decode("utf-8", "replace")
        p.err = p.stderr.decode("utf-8", "replace")
        p.errs = [l for l in p.err.splitlines() if "postgate: warning:" not in l]
        if check and p.returncode != 0:
            raise RuntimeError("postgate %s: exit %d\n%s%s" % (" ".join(args), p.returncode,
                                                              p.out, p.err))
        return p

    def run(self, *args, timeout=60):
        return self.gw("run", *args, check=False, timeout=timeout)

    def queue(self):
        p = self.gw("queue", "list", "-j")
        return {m["queue_id"]: m for m in (json.loads(l) for l in p.out.splitlines()
                                           if l.strip())}

    def with_mid(self, mid):
        return [m for m in self.queue().values() if m.get("message_id") == mid]

    def start(self):
        self.log = open(self.logname, "ab")
        self.p = subprocess.Popen([POSTGATE, "-c", self.conf, "smtpd"], stdout=self.log,
                                  stderr=self.log)
        for _ in range(200):
            if self.p.poll() is not None:
                raise RuntimeError("smtpd exited %d at start; see %s" % (self.p.returncode,
                                                                        self.logname))
            try:
                socket.create_connection((HOST, self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("smtpd does not accept connections on port %d" % self.port)

    def stop(self):
        if self.p is not None and self.p.poll() is None:
            self.p.kill()
            self.p.wait(10)
        if self.p is not None:
            self.log.close()
        self.p = None

    def send(self, sender, rcpts, data):
        """One SMTP transaction; returns (refused recipients, DATA reply)."""
        s = smtplib.SMTP(HOST, self.port, timeout=20)
        try:
            s.ehlo("client.test")
            code, msg = s.mail(sender)
            if code != 250:
                raise RuntimeError("MAIL FROM:<%s>: %d %s" % (sender, code, msg))
            refused = {}
            for r in rcpts:
                code, msg = s.rcpt(r)
                if code != 250:
                    refused[r] = (code, msg)
            reply = s.data(data)
            s.quit()
        finally:
            s.close()
        return refused, reply

    def inboxes(self):
        """{po: {file name: bytes}} of every postoffice's in/."""
        out = {}
        for po in POS:
            d = os.path.join(self.po_dir[po], "in")
            out[po] = {}
            for n in sorted(os.listdir(d)):
                with open(os.path.join(d, n), "rb") as f:
                    out[po][n] = f.read()
        return out

    def counts(self, po):
        return pg.counts(self.po_dir[po])

    def all_counts(self):
        c = {}
        for po in POS:
            for mb, n in self.counts(po).items():
                c["%s/%s" % (po, mb)] = n
        return c

    def deliver(self, po, ignore=False):
        args = ["-d", self.po_dir[po], "deliver"] + (["--ignore-responsibility"] if ignore else [])
        return pg.run(*args, check=False)


def message(mid, to, cc=(), subject="fan-out test", extra=(), body="Hello all.\r\n"):
    h = ["From: Alice <alice@other.org>"]
    if to:
        h.append("To: " + ",\r\n ".join(to))
    if cc:
        h.append("Cc: " + ",\r\n ".join(cc))
    h += ["Subject: " + subject, "Date: Mon, 1 Jan 2024 10:00:00 +0000",
          "Message-ID: " + mid] + list(extra)
    return ("\r\n".join(h) + "\r\n\r\n" + body).encode()


def decode_entries(data):
    """A bundle's entries as (kind, bytes), decoded independently of postgate."""
    clen = struct.unpack(">Q", data[82:90])[0]
    payload = zlib.decompress(data[90:90 + clen])
    out, i = [], 0
    while i + 5 <= len(payload):
        kind, n = payload[i], struct.unpack(">I", payload[i + 1:i + 5])[0]
        out.append((kind, payload[i + 5:i + 5 + n]))
        i += 5 + n
    return out


def dump(site, po, path):
    """postgate-po dump: (whole output, [message blocks], hmac verified?)."""
    p = pg.run("dump", path, "--key-file", site.key_file[po], check=False)
    blocks = re.split(r"^=== entry \d+: \w+ ===$", p.out, flags=re.M)
    return p, blocks[1:], "hmac:        verified with the key" in p.out


def envelope(block):
    """[(address, responsible?)] of one dumped message."""
    return [(m.group(1), m.group(2) == "responsible")
            for m in re.finditer(r"^Envelope:\s+(\S+) \((responsible|listed for display)\)$",
                                 block, flags=re.M)]


def save_copies(inboxes, where):
    os.makedirs(where, exist_ok=True)
    for po, files in inboxes.items():
        for n, data in files.items():
            with open(os.path.join(where, n), "wb") as f:
                f.write(data)


def redrop(site, inboxes):
    for po, files in inboxes.items():
        for n, data in files.items():
            pg.drop(site.po_dir[po], n, data)


def summary_numbers(out):
    m = re.search(r"^postgate run: (\d+) messages? looked at: (\d+) recipients to postoffices, "
                  r"(\d+) for SMTP, (\d+) held, (\d+) messages? finished", out, flags=re.M)
    return tuple(int(x) for x in m.groups()) if m else None


def po_lines(out):
    return re.findall(r"^  (CORP/\S+): .*$", out, flags=re.M)


def fanout(site, tag, ignore, team_first):
    """Checks 1 and 2: the 50-recipient message on site, delivered with or
    without --ignore-responsibility."""
    mid = "<fanout-%s@test>" % tag
    to = [smtp_addr(u) for u in USERS[:25]] + ["Team <team@%s>" % DOMAIN]
    cc = [smtp_addr(u) for u in USERS[25:]]
    rcpts = [smtp_addr(u) for u in USERS]
    rcpts = (["team@" + DOMAIN] + rcpts) if team_first else (rcpts + ["team@" + DOMAIN])
    refused, reply = site.send("alice@other.org", rcpts, message(mid, to, cc))
    q = site.with_mid(mid)
    t.check(not refused and reply[0] == 250 and len(q) == 1 and len(q[0]["recipients"]) == 51,
            "%s: 51 recipients accepted and queued: %s %s" % (tag, refused, reply))
    qid = q[0]["queue_id"] if q else None
    before = site.all_counts()

    p = site.run()
    errs = [l for l in p.errs if "postgate: info:" not in l]
    t.check(p.returncode == 0 and not errs, "%s: run exits 0 with no error: %d %s"
            % (tag, p.returncode, errs))
    nums = summary_numbers(p.out)
    t.check(nums is not None and nums[0] >= 1 and nums[1] == 50 and nums[2] == 0 and
            nums[3] == 0 and nums[4] >= 1,
            "%s: summary: 50 recipients to postoffices, 0 SMTP, 0 held, the message finished: %r"
            % (tag, p.out))
    want = ["  %s: 1 copy in 1 bundle" % po for po in POS]
    got = sorted(l for l in p.out.splitlines() if l.startswith("  CORP/"))
    t.check(got == want, "%s: one summary line per postoffice, '1 copy in 1 bundle': %s"
            % (tag, got))
    t.check(qid is not None and qid not in site.queue(),
            "%s: the message has left the queue (queue list -j)" % tag)

    boxes = site.inboxes()
    names_ok = all(len(boxes[po]) == 1 and all(re.fullmatch(
        r"CORP\.GW\+%s\+\d{10}\.bundle" % re.escape(po.replace("/", ".")), n)
        for n in boxes[po]) for po in POS)
    t.check(names_ok, "%s: one bundle in each in/, named CORP.GW+NET.PO+SEQ.bundle: %s"
            % (tag, {po: list(b) for po, b in boxes.items()}))

    entries, resp, shown, verified, wrong_po = 0, {}, {}, any(boxes.values()), []
    for po in POS:
        for n in boxes[po]:
            _, blocks, ok = dump(site, po, os.path.join(site.po_dir[po], "in", n))
            verified &= ok
            for b in blocks:
                env = envelope(b)
                if env:
                    entries += 1
                for addr, r in env:
                    if r:
                        resp[addr] = resp.get(addr, 0) + 1
                        if not addr.startswith(po + "/"):
                            wrong_po.append((po, addr))
                    shown[addr] = shown.get(addr, 0) + 1
    t.check(verified, "%s: every bundle's HMAC verifies with its postoffice's key" % tag)
    t.check(entries == 3, "%s: exactly 3 bundle entries with an envelope in all (one per "
            "postoffice): %d" % (tag, entries))
    want_resp = {"%s/%s" % (po_of(u), u): 1 for u in USERS}
    t.check(resp == want_resp, "%s: every one of the 50 is responsible exactly once across all "
            "bundles, no one else: %s" % (tag, {a: n for a, n in resp.items()
                                                 if want_resp.get(a) != n} or
                                            set(want_resp) - set(resp)))
    t.check(not wrong_po, "%s: each copy makes only its own postoffice's recipients "
            "responsible: %s" % (tag, wrong_po[:5]))

    saved = os.path.join(site.top, "saved-%s" % tag)
    save_copies(boxes, saved)
    outs = [site.deliver(po, ignore) for po in POS]
    t.check(all(o.returncode == 0 and "1 bundles applied" in o.out for o in outs),
            "%s: each postoffice's deliver%s applies its bundle: %s"
            % (tag, " --ignore-responsibility" if ignore else "", [o.out.strip() for o in outs]))
    after = site.all_counts()
    delta = {a: after.get(a, 0) - before.get(a, 0) for a in after}
    wrong = {a: n for a, n in delta.items() if n != (1 if a in want_resp else 0)}
    t.check(not wrong and all(a in after for a in want_resp),
            "%s: postgate-po list: every one of the 50 has exactly one copy, no one else "
            "got one: %s" % (tag, wrong))

    redrop(site, boxes)
    outs = [site.deliver(po, ignore) for po in POS]
    again = site.all_counts()
    t.check(again == after and all(o.returncode == 0 and "0 bundles applied, 1 duplicates"
                                   in o.out for o in outs),
            "%s: every delivered bundle dropped again and delivered again: nothing changes: %s"
            % (tag, [o.out.strip() for o in outs]))
    t.check(all(not os.listdir(os.path.join(site.po_dir[po], d)) for po in POS
                for d in ("in", "bad")),
            "%s: in/ and bad/ are empty afterwards" % tag)


A = Site("A")
B = None
try:
    A.start()

    # ---- 1. 50 recipients on 3 postoffices plus a list ------------------------------
    r = A.gw("dir", "route", "team@" + DOMAIN, check=False)
    leaves = sorted(smtp_addr(u) for u in TEAM_DIRECT + SUB_DIRECT)
    t.check(r.returncode == 0 and r.out.startswith("dl") and
            all(x in r.out for x in leaves) and "team@" not in r.out.split(" ", 2)[-1]
            and "sub@" not in r.out,
            "setup: team@%s is a list of the 10 mailboxes (nested, cycle-safe): %r"
            % (DOMAIN, r.out.strip()))
    fanout(A, "fanout", ignore=False, team_first=True)

    # ---- 2. fresh site, --ignore-responsibility ----------------------------------------
    B = Site("B")
    B.start()
    fanout(B, "ignore-resp", ignore=True, team_first=False)
    B.stop()

    # ---- 3. Bcc ----------------------------------------------------------------------
    def bcc_case(tag, to=(smtp_addr("U01"),), bcc=("U02", "U30"), extra=()):
        """To: to; envelope U01, U02, U30; bcc: the ones in no header."""
        mid = "<bcc-%s@test>" % tag
        before = A.all_counts()
        refused, reply = A.send("alice@other.org", [smtp_addr("U01"), smtp_addr("U02"),
                                                    smtp_addr("U30")],
                                message(mid, list(to), extra=extra, subject="bcc " + tag))
        t.check(not refused and reply[0] == 250, "%s: queued: %s" % (tag, reply))
        p = A.run()
        t.check(p.returncode == 0 and sorted(l for l in p.out.splitlines()
                                             if l.startswith("  CORP/")) ==
                ["  CORP/P1: 2 copies in 1 bundle", "  CORP/P2: 1 copy in 1 bundle"],
                "%s: run: P1 2 copies (U01's and U02's), P2 1 (U30's): %r"
                % (tag, p.out))
        boxes = A.inboxes()
        copies = []      # (po, dumped text, raw entry text, envelope)
        for po in POS:
            for n, data in boxes[po].items():
                _, blocks, _ = dump(A, po, os.path.join(A.po_dir[po], "in", n))
                raws = [d for k, d in decode_entries(data) if k == 1]
                for i, b in enumerate(blocks):
                    raw = raws[i].decode("latin-1") if i < len(raws) else ""
                    copies.append((po, b, raw, envelope(b)))
        names = {u: ["%s/%s" % (po_of(u).lower(), u.lower()), smtp_addr(u)] for u in bcc}

        def copy_of(user):
            a = "%s/%s" % (po_of(user), user)
            return [c for c in copies if [x for x, _ in c[3]] == [a]]

        for user in ("U01", "U02", "U30"):
            c = copy_of(user)
            t.check(len(c) == 1 and c[0][3] == [("%s/%s" % (po_of(user), user), True)],
                    "%s: %s has one copy of their own, naming only them in the envelope: %s"
                    % (tag, user, [x[3] for x in copies]))
        t.check(len(copies) == 3, "%s: 3 copies in all: %s" % (tag, [x[3] for x in copies]))
        for user, forms in names.items():
            own = copy_of(user)
            leaks = []
            for po, b, raw, env in copies:
                if own and (b, raw) == (own[0][1], own[0][2]):
                    continue
                for f in forms:
                    if f in b.lower() or f in raw.lower():
                        leaks.append("%s in the copy for %s" % (f, [x for x, _ in env]))
            # the whole decoded bundles: outside the own entry, nowhere
            for po, files in boxes.items():
                for n, data in files.items():
                    for k, d in decode_entries(data):
                        txt = d.decode("latin-1").lower()
                        if own and txt == own[0][2].lower():
                            continue
                        for f in forms:
                            if f in txt:
                                leaks.append("%s in an entry of %s" % (f, n))
            t.check(own and not leaks, "%s: the Bcc recipient %s appears only in their own copy "
                    "(dump text and decoded bundle bytes): %s" % (tag, user, leaks[:4]))
        if "U01" not in bcc:
            u01 = copy_of("U01")
            t.check(u01 and not any(f in (u01[0][1] + u01[0][2]).lower()
                                    for fs in names.values() for f in fs),
                    "%s: U01's copy (the shown one) names neither U02 nor U30" % tag)
        for po in ("CORP/P1", "CORP/P2"):
            A.deliver(po)
        after = A.all_counts()
        delta = {a: after[a] - before.get(a, 0) for a in after if after[a] != before.get(a, 0)}
        t.check(delta == {"CORP/P1/U01": 1, "CORP/P1/U02": 1, "CORP/P2/U30": 1},
                "%s: U01, U02 and U30 each get exactly one copy: %s" % (tag, delta))
        t.check(not A.with_mid(mid), "%s: the message has left the queue" % tag)

    bcc_case("bcc")
    # The same with a Bcc: header left in the message by the sending client.
    bcc_case("bcc-header", extra=["Bcc: u02@example.com, U30 <u30@example.com>"])
    # Every recipient a Bcc one: To: undisclosed-recipients:; (an empty group).
    bcc_case("undisclosed", to=["undisclosed-recipients:;"], bcc=("U01", "U02", "U30"))

    SHOWN_SEQ = iter(range(1, 100))

    def shown_case(what, rcpts, to, cc=(), extra=(), envelope_to=None):
        """Every recipient is in To/Cc somehow: one copy per postoffice."""
        mid = "<shown-%d@test>" % next(SHOWN_SEQ)
        refused, reply = A.send("alice@other.org",
                                envelope_to or [smtp_addr(u) for u in rcpts],
                                message(mid, to, cc, extra=extra))
        p = A.run()
        boxes = A.inboxes()
        envs = {}
        for po in POS:
            for n in boxes[po]:
                _, blocks, _ = dump(A, po, os.path.join(A.po_dir[po], "in", n))
                envs[po] = envs.get(po, []) + [envelope(b) for b in blocks]
        want = {}
        for u in sorted(rcpts):
            want.setdefault(po_of(u), [[]])[0].append(("%s/%s" % (po_of(u), u), True))
        envs = {po: [sorted(e) for e in es] for po, es in envs.items()}
        t.check(not refused and p.returncode == 0 and envs == want,
                "%s: shown, not Bcc: one copy per postoffice naming all its recipients: %s"
                % (what, envs))
        for po in POS:
            A.deliver(po)

    shown_case("To: u01@Example.COM (the domain in another case)", ["U01", "U02"],
               ["u01@Example.COM", "u02@example.com"])
    shown_case("To: a group 'Friends: u01@example.com, u02@example.com;', Cc: u30",
               ["U01", "U02", "U30"], ["Friends: u01@example.com, u02@example.com;"],
               cc=["u30@example.com"])
    shown_case("To: RFC 2047 display names, a quoted comma", ["U01", "U02"],
               ['=?utf-8?q?J=C3=BCrgen?= <u01@example.com>', '"Doe, Jane" <u02@example.com>'])
    # U03 is in no header itself but is reached through TEAM, which is in To;
    # its own RCPT comes before the list's.
    shown_case("envelope u03 then team, To: team (u03 reached through a shown list)",
               TEAM_DIRECT + SUB_DIRECT, ["Team <team@example.com>"],
               envelope_to=[smtp_addr("U03"), "team@" + DOMAIN])

    # ---- 4. --dry-run -------------------------------------------------------------------
    mid = "<dry-run@test>"
    refused, reply = A.send("alice@other.org",
                            [smtp_addr("U01"), smtp_addr("U30"), "team@" + DOMAIN],
                            message(mid, [smtp_addr("U01"), smtp_addr("U30"),
                                          "team@" + DOMAIN]))
    q_before, in_before = A.queue(), A.inboxes()
    qid = A.with_mid(mid)[0]["queue_id"] if A.with_mid(mid) else "?"
    p = A.run("--dry-run")
    out = p.out.splitlines()
    t.check(p.returncode == 0 and
            "%s: <u01@example.com> -> postoffice CORP/P1 as CORP/P1/U01" % qid in out and
            "%s: <u30@example.com> -> postoffice CORP/P2 as CORP/P2/U30" % qid in out,
            "dry run prints 'QID: <addr> -> postoffice NET/PO as NET/PO/MAILBOX': %r" % p.out)
    leaf_lines = [l for l in out if l.startswith(qid + ": <") and
                  any("<%s>" % x in l for x in leaves)]
    t.check(any(l.startswith("%s: <team@example.com> -> expanded" % qid) for l in out) and
            len(leaf_lines) == 10,
            "dry run shows the list expanded and its 10 members' routes: %s" % leaf_lines)
    t.check("dry run" in p.out, "dry run: the summary says so")
    t.check(A.queue() == q_before, "dry run: queue list -j is unchanged")
    t.check(A.inboxes() == in_before, "dry run: every in/ is unchanged")
    p = A.run()
    t.check(p.returncode == 0 and not A.with_mid(mid) and
            sorted(l for l in p.out.splitlines() if l.startswith("  CORP/")) ==
            ["  CORP/P1: 1 copy in 1 bundle", "  CORP/P2: 1 copy in 1 bundle",
             "  CORP/P3: 1 copy in 1 bundle"],
            "after the dry run, the real run bundles it: %r" % p.out)
    for po in POS:
        A.deliver(po)

    # ---- 5. null sender ----------------------------------------------------------------
    # A message from <> that is no report that can be read is delivered as
    # an ordinary message (issue 14 point 3), logged as such; never dropped.
    mid = "<null-sender@test>"
    refused, reply = A.send("", [smtp_addr("U01")], message(mid, [smtp_addr("U01")],
                                                            subject="report?"))
    t.check(not refused and reply[0] == 250, "null sender: queued: %s" % (reply,))
    p = A.run()
    t.check(p.returncode == 0 and not A.with_mid(mid) and
            len(po_lines(p.out)) == 1,
            "null sender, no report: bundled as an ordinary message: %r" % p.out)
    t.check(any("no report that can be read" in e for e in p.errs),
            "null sender: the log says it was no report: %s" % p.errs[-3:])
    A.deliver("CORP/P1")

    # ---- 6. the lock -------------------------------------------------------------------
    refused, reply = A.send("alice@other.org", [smtp_addr("U01")],
                            message("<locked@test>", [smtp_addr("U01")]))
    q_before, in_before = A.queue(), A.inboxes()
    lock = open(os.path.join(A.state, "run.lock"), "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        t0 = time.time()
        p = A.run(timeout=20)
        took = time.time() - t0
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
    t.check(p.returncode == 75 and took < 5 and p.errs and "lock" in " ".join(p.errs).lower(),
            "with run.lock held, run exits 75 at once (%.2f s) with a message: %s"
            % (took, p.errs))
    t.check(A.queue() == q_before and A.inboxes() == in_before,
            "with run.lock held, run changes nothing")

    # ---- 7. twice in a row -------------------------------------------------------------
    p1 = A.run()
    in1, q1 = A.inboxes(), A.queue()
    p2 = A.run()
    in2, q2 = A.inboxes(), A.queue()
    t.check(p1.returncode == 0 and sum(len(f) for f in in1.values()) == 1 and
            not A.with_mid("<locked@test>"),
            "the first of two runs bundles the waiting message: %r" % p1.out)
    t.check(p2.returncode == 0 and in2 == in1 and q2 == q1 and not po_lines(p2.out),
            "the second run writes no bundle and changes nothing: %r" % p2.out)
    A.deliver("CORP/P1")
finally:
    A.stop()
    if B is not None:
        B.stop()

for s in [A] + ([B] if B else []):
    log = open(s.logname, "rb").read().decode("utf-8", "replace")
    bad = [l for l in log.splitlines() if any(w in l for w in ("CRITICAL", "assert", "Sanitizer"))]
    t.check(not bad, "no assertion or sanitizer report in %s's listener log: %s"
            % (os.path.basename(s.top), bad[:3]))
print("runtime %.1f s" % (time.time() - T0))
shutil.rmtree(top)
t.done()
