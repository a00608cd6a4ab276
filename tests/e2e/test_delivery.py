#!/usr/bin/python3
"""postgate run / queue retry: the SMTP client (delivery agent) end to end,
against scripted SMTP servers (smtpscript.py) on 127.0.0.0/8 and a test DNS
server (dnsserver.py), with the real binaries (SPEC 2 Outbound, 3.3, 3.4,
5; issue 7 "Done when").

Mail gets into the queue the way a user puts it there: `postgate-po send`
at a postoffice to an SMTP: address, then `postgate run` translates it and,
in the same run, delivers it.  Each scenario has a site of its own (its own
postoffice, state_dir and [delivery] settings), and asserts what a user
sees: the queue (`queue list -j`, `queue show`) and what the servers logged
(sessions, commands, messages taken).  Every message is identified at the
servers by its unique Subject, and "exactly once" means: taken (250 after
its data) by the servers exactly once, and gone from the queue.

1. Multiline replies split across TCP segments 2 s apart (SPEC 3.3): EHLO
   "250-" lines, "354-" then "354 ", a "250-" after the data: every message
   delivered once in one run, no transaction tried twice.
2. 503 on every second MAIL FROM of a session (SPEC 3.4), the domain's MX
   found through the test DNS: 20 messages to it all delivered, none held;
   every session opened after the first 503 carries one message; in the
   same run 20 messages to a well-behaved domain share sessions; a later
   run sends the 503 server one message per session from the start (the
   memory), and it never says 503 again.
3. 451 to RCPT and to the end of data: deferred with the reply and a next
   attempt min_backoff ahead; a run before then does not try; queue retry
   delivers once.  550 to RCPT, 554 to the data: failed, and reported to the
   legacy sender with the reply (a non-delivery report, test_reports.py);
   retry leaves them.  queue_lifetime = 2s with a server that keeps saying
   451: failed and reported, naming the expiry.
4. STARTTLS: tls = encrypt to a server without it: failed, nothing sent;
   tls = may to a server whose handshake fails (garbage after the 220; a
   close after the 220): delivered in plaintext on a new connection; tls =
   verify with the server's certificate in tls_ca_file and AUTH to a relay
   offering AUTH only inside TLS: delivered, authenticated; tls = verify
   against another CA: nothing sent; AUTH offered in plaintext only: the
   password never crosses the wire.
5. MX through the test DNS: MX 10 (connection refused), 20, 30: the
   preference-20 server gets the mail; a null MX (RFC 7505): failed at once,
   nothing connects (not even to the domain's A record); no MX but an A
   record: the implicit MX; NXDOMAIN: failed; SERVFAIL: deferred.  The
   delivery log names the server as relay=host[address]:port (mx2.c.test
   for c.test), and relay=none where nothing answered: the null MX,
   NXDOMAIN, SERVFAIL and a relay_host where nothing listens.
6. The round trip: postgate-po send with an attachment to an SMTP: address
   reaches an aiosmtpd sink as MIME: envelope and From: the sender's primary
   proxy with the display name, the subject as sent, the body, the
   attachment's bytes (SHA-256).
7. Misbehaving servers, each then behaving for a queue retry that delivers
   once: the connection dropped in the middle of the data; no reply to MAIL
   (deferred after [delivery] timeout, the run does not hang); 10,000
   continuation lines; a garbage greeting; 421 as the greeting; a garbage
   reply to the data.  A server that hangs up right after its 250: what it
   took is sent, never sent again.
8. Protocol details: a message to three recipients, one 451 at first: one
   transaction, then the deferred one alone, each recipient one copy; both
   RCPTs refused (550, 451) behind a pipelined DATA: each keeps its own
   verdict; 553 to MAIL FROM: failed, no reconnect loop; DSN offered: NOTIFY,
   ORCPT, ENVID, RET passed on as queued; no 8BITMIME: 7-bit data, the same
   text; SIZE smaller than the message: not sent, failed; EHLO refused: HELO.
   Each failure is checked where the sender sees it: the recipient
   reported, or the non-delivery report in the sender's mailbox.
10. An administrator holds the message between its data and the 250: the
   250 is a fact, the message is sent and leaves the queue; a release and
   another run send nothing again.
9. Across every session of every scripted server: no protocol violation
   (smtpscript.py: CRLF, PIPELINING groups, ESMTP parameters only when
   offered, data lines).

Every run and queue retry must exit 0 (so under ASan/UBSan a sanitizer
report fails the check), and every relay= in its delivery log has the one
form relay=host[address]:port or relay=none (postgate(8), issue 12 point 8).  Runs from the build directory (POSTGATE,
POSTGATE_PO or ./postgate and ./postgate-po); needs python3-aiosmtpd,
python3-dnslib and openssl.  DELIVERY_ONLY=2,5 runs only those scenarios.
"""
import asyncio
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import pgbundle as pg  # noqa: E402
import smtpscript as ss  # noqa: E402
from dnsserver import DNSServer  # noqa: E402

t = pg.Tally("delivery")
POSTGATE = os.environ.get("POSTGATE") or os.path.join(os.getcwd(), "postgate")
OPENSSL = shutil.which("openssl")
if not OPENSSL:
    print("FAIL - openssl is not installed (needed by this test)")
    sys.exit(1)
try:
    from aiosmtpd.controller import Controller
except ImportError:
    print("FAIL - python3-aiosmtpd is not installed (needed by this test)")
    sys.exit(1)

T0 = time.time()
TOP = pg.scratch()
DOMAIN = "example.com"
HOSTNAME = "gw.example.com"
USERS = [("JSMITH", "Jürgen Smith"), ("ANNA", "Anna Berg")]
SERVERS = []                    # every server started, stopped at the end
RUN_LIMIT = 90                  # seconds any one postgate command may take


def start(server):
    SERVERS.append(server)
    return server.start()


# ---- a site: a postoffice, a state_dir, a configuration -----------------------------------
class Site:
    def __init__(self, name, delivery):
        self.name = name
        self.top = os.path.join(TOP, name)
        os.makedirs(self.top)
        self.po_dir, _ = pg.make_po(self.top, "CORP", "HQ", gateway="CORP/GW", users=USERS)
        self.key_file = os.path.join(self.top, "hq.key")
        self.conf = os.path.join(self.top, "postgate.conf")
        self.configure(delivery)
        xml = os.path.join(self.top, "hq.xml")
        pg.run("-d", self.po_dir, "export-dir", "-o", xml)
        self.gw("dir", "import", xml)
        self.sends = 0

    def configure(self, delivery):
        d = {"timeout": "10s", "connect_timeout": "5s", "min_backoff": "1m",
             "max_backoff": "2m"}
        d.update(delivery)
        with open(self.conf, "w") as f:
            f.write("\n".join(
                ["[site]", "name = HQ", "domains = " + DOMAIN,
                 "state_dir = " + os.path.join(self.top, "state"), "gateway_po = CORP/GW",
                 "user =", "proxy_templates = SMTP:%m@" + DOMAIN, "",
                 "[smtpd]", "hostname = " + HOSTNAME, "", "[delivery]"] +
                ["%s = %s" % kv for kv in d.items()] +
                ["", "[postoffice CORP/HQ]", "dir = " + self.po_dir,
                 "key_file = " + self.key_file, "codepage = CP850", ""]))

    def gw(self, *args, check=True, timeout=RUN_LIMIT):
        t0 = time.time()
        try:
            p = subprocess.run([POSTGATE, "-c", self.conf] + list(args), capture_output=True,
                               timeout=timeout)
        except subprocess.TimeoutExpired as e:
            p = subprocess.CompletedProcess(e.cmd, None, e.stdout or b"", e.stderr or b"")
        p.elapsed = time.time() - t0
        p.out = (p.stdout or b"").decode("utf-8", "replace")
        p.err = (p.stderr or b"").decode("utf-8", "replace")
        if check and p.returncode != 0:
            raise RuntimeError("postgate %s: exit %s\n%s%s" % (" ".join(args), p.returncode,
                                                              p.out, p.err))
        return p

    def run(self, *args):
        """postgate run; checked to finish, exit 0, within RUN_LIMIT."""
        p = self.gw("run", *args, check=False)
        t.check(p.returncode == 0, "%s: `run%s` exits 0 (in %.1f s): exit %s\n%s"
                % (self.name, "".join(" " + a for a in args), p.elapsed, p.returncode,
                   tail(p.out + p.err)))
        check_relay_form(self.name + ": run", p.out + p.err)
        return p

    def retry(self, *args):
        p = self.gw("queue", "retry", *args, check=False)
        t.check(p.returncode == 0, "%s: `queue retry%s` exits 0 (in %.1f s): exit %s\n%s"
                % (self.name, "".join(" " + a for a in args), p.elapsed, p.returncode,
                   tail(p.out + p.err)))
        check_relay_form(self.name + ": queue retry", p.out + p.err)
        return p

    def send(self, to, subject, sender="JSMITH", body=None, attach=()):
        """postgate-po send; the legacy id, or None (a FAIL line said why)."""
        self.sends += 1
        bf = os.path.join(self.top, "body-%d.txt" % self.sends)
        with open(bf, "w", encoding="utf-8", newline="") as f:
            f.write(body if body is not None else "Message %s.\r\n" % subject)
        args = ["-d", self.po_dir, "send", "--from", sender, "--to", to, "--subject", subject,
                "--body-file", bf]
        for a in attach:
            args += ["--attach", a]
        p = pg.run(*args, check=False)
        m = re.match(r"sent (\S+?)[;\s]", p.out.strip() + " ")
        if p.returncode != 0 or not m:
            t.check(False, "%s: postgate-po send to %s %r: exit %d %s %s"
                    % (self.name, to, subject, p.returncode, p.out.strip(), p.err.strip()))
            return None
        return m.group(1)

    def queue(self):
        p = self.gw("queue", "list", "-j", check=False)
        return [json.loads(l) for l in p.out.splitlines() if l.strip()]

    def show(self, qid):
        return self.gw("queue", "show", qid, check=False).out

    def find(self, legacy_id, q=None):
        """The queued message translated from legacy_id, or None."""
        if not legacy_id:
            return None
        key = mid_key(legacy_id)
        for m in (self.queue() if q is None else q):
            if key in (m.get("message_id") or ""):
                return m
        return None

    def refused(self, legacy_id, addr, sender="JSMITH"):
        """What the sender was told about addr of legacy_id, refused for good:
        (state, text): the queue row while the message is queued (state,
        reason and last reply), else "reported" and the Report: line of the
        non-delivery report about legacy_id in the sender's mailbox (HQ
        delivers first); (None, why) when there is neither."""
        m = self.find(legacy_id)
        for r in (m or {}).get("recipients", []):
            if r["address"] == addr:
                return r["state"], "%s | %s" % (r.get("reason") or "", r.get("last_reply") or "")
        pg.run("-d", self.po_dir, "deliver", check=False)
        out = pg.run("-d", self.po_dir, "show", sender, check=False).out
        for block in re.split(r"^--- message \d+ ---$", out, flags=re.M)[1:]:
            if re.search(r"^About:\s+%s$" % re.escape(legacy_id), block, flags=re.M):
                for line in block.splitlines():
                    if line.startswith("Report:") and ("SMTP:%s:" % addr) in line:
                        return "reported", line
        return None, "neither in the queue nor reported to %s" % sender

    def rcpt(self, legacy_id, q=None):
        """(message, its first recipient) or (None, {})."""
        m = self.find(legacy_id, q)
        return (m, m["recipients"][0]) if m and m.get("recipients") else (m, {})


def mid_key(legacy_id):
    """The part of the Message-ID the gateway derives from the legacy id
    (test_run_outbound.py checks the whole form)."""
    return hashlib.sha256(b"CORP/HQ\0" + legacy_id.encode() + b"\0").hexdigest()[:16]


def tail(text, n=12):
    lines = [l for l in text.splitlines() if l.strip()]
    return "\n".join("       | " + l for l in lines[-n:])


def transcript(server, since=0, n=12):
    """The sessions of server from index since, for a FAIL line."""
    out = []
    for s in server.sessions()[since:][:n]:
        out.append("       #%d %s tls=%s: %s | replies: %s | %s"
                   % (s.n, s.local, s.tls, [c[:40] for c in s.commands][:14],
                      [r.splitlines()[0][:40] for r in s.replies][:14], s.events))
    return "\n".join(out) or "       (no session)"


def taken(servers, subjects):
    """{subject: times the servers took it} for the given subjects."""
    n = {s: 0 for s in subjects}
    for srv in servers:
        for m in srv.messages():
            if m.subject in n:
                n[m.subject] += 1
    return n


def check_once(what, servers, subjects, ids=None):
    """Each subject taken exactly once; with ids (the legacy ids, in the
    same order), its Message-ID the one the gateway derived from it."""
    n = taken(servers, subjects)
    bad = {s: c for s, c in n.items() if c != 1}
    ok = t.check(subjects and not bad, "%s: each of the %d messages taken exactly once%s"
                 % (what, len(subjects), ": not once: %s" % bad if bad else ""))
    if ids is not None:
        mids = {m.subject: m.message_id or "" for srv in servers for m in srv.messages()}
        wrong = [(subj, mids.get(subj)) for subj, lid in zip(subjects, ids)
                 if not lid or mid_key(lid) not in mids.get(subj, "")]
        ok = t.check(not wrong and len(set(mids[s] for s in subjects if s in mids)) ==
                     len(subjects), "%s: each message came with its own Message-ID, the one "
                     "derived from its legacy id%s" % (what, ": %s" % wrong[:3] if wrong else ""))\
            and ok
    return ok


def check_gone(what, site, ids):
    q = site.queue()
    left = [(m["queue_id"], [(r["address"], r["state"], r.get("reason"), r.get("last_reply"))
                             for r in m["recipients"]])
            for m in (site.find(i, q) for i in ids) if m]
    return t.check(not left, "%s: all %d messages have left the queue%s"
                   % (what, len(ids), ": still there: %s" % left[:5] if left else ""))


def idle(*servers):
    for s in servers:
        s.wait_idle(10)


RELAY_LINE = re.compile(r"to=<([^>]*)>, relay=(.*?), status=(\w+)")
RELAY_FORM = re.compile(r"^(none|[^\s\[\]]+\[[0-9A-Fa-f.:]+\]:[0-9]+)$")


def relays(text):
    """(recipient, relay, status) of every outcome line in a delivery log."""
    return RELAY_LINE.findall(text)


def check_relay_form(who, text):
    bad = [r for r in relays(text) if not RELAY_FORM.match(r[1])]
    t.check(not bad, "%s: every relay= is host[address]:port or none: %s" % (who, bad[:5]))


def scenario(name, fn):
    try:
        fn()
    except Exception:  # noqa: BLE001 - report, and go on with the next scenario
        t.check(False, "%s: the scenario stopped on an exception:\n%s"
                % (name, traceback.format_exc()))


def wait_until(when, limit=15):
    """Let the clock pass when (a unix time), at most limit seconds from now."""
    end = min(when, time.time() + limit)
    while time.time() < end:
        time.sleep(min(0.2, max(0.0, end - time.time())))


# ---- the test DNS and the shared [delivery] port ----------------------------------------
MX_HOSTS = ["127.0.0.%d" % i for i in range(2, 9)]
ZONE = {
    "a.test": {"MX": [(10, "mx.a.test")]}, "mx.a.test": {"A": ["127.0.0.2"]},
    "b.test": {"MX": [(10, "mx.b.test")]}, "mx.b.test": {"A": ["127.0.0.3"]},
    "c.test": {"MX": [(30, "mx3.c.test"), (10, "mx1.c.test"), (20, "mx2.c.test")]},
    "mx1.c.test": {"A": ["127.0.0.4"]}, "mx2.c.test": {"A": ["127.0.0.5"]},
    "mx3.c.test": {"A": ["127.0.0.6"]},
    "d.test": {"MX": [(0, ".")], "A": ["127.0.0.7"]},
    "e.test": {"A": ["127.0.0.8"]},
    "g.test": "SERVFAIL",
}
DNS = DNSServer(ZONE)


class Refuses2ndMail(ss.Server):
    """503 to every second MAIL of a session, as some servers do (SPEC 3.4)."""

    async def on_mail(self, s, arg):
        if s.mails % 2 == 0:
            await s.reply("503 5.5.1 Sender already specified")
            with self._lock:
                if not hasattr(s, "first503"):
                    s.first503 = time.time()
            return False
        return await super().on_mail(s, arg)


def start_mx_servers():
    """The servers the test DNS points at, all on one port (the [delivery]
    port), bound together so that nothing takes the port in between; a new
    port when one is taken.  127.0.0.4 (MX 10 of c.test) has none."""
    for _ in range(10):
        port = ss.common_port(MX_HOSTS)
        made = {"a": Refuses2ndMail(host="127.0.0.2", port=port, hostname="mx.a.test"),
                "b": ss.Server(host="127.0.0.3", port=port, hostname="mx.b.test"),
                "mx2.c": ss.Server(host="127.0.0.5", port=port, hostname="mx2.c.test"),
                "mx3.c": ss.Server(host="127.0.0.6", port=port, hostname="mx3.c.test"),
                "d": ss.Server(host="127.0.0.7", port=port, hostname="d.test"),
                "e": ss.Server(host="127.0.0.8", port=port, hostname="e.test")}
        try:
            for srv in made.values():
                start(srv)
            return port, made
        except OSError:
            for srv in made.values():
                srv.stop()
    raise OSError("no port free on all of %s" % MX_HOSTS)


PORT, MX = start_mx_servers()
DNS_DELIVERY = {"resolver": "127.0.0.1:%d" % DNS.port, "port": str(PORT)}


# ---- 1. multiline replies across segments (SPEC 3.3) ------------------------------------
class SplitReplies(ss.Server):
    """Every multiline reply in two TCP segments 2 s apart: the EHLO reply,
    354- / 354 for every DATA, and 250- / 250 after the first message."""

    async def ehlo(self, s, arg):
        lines = ss.multiline(250, ["%s hello %s" % (self.hostname, arg)] + self.extensions(s))
        await s.split_reply(lines[:1], lines[1:], 2)

    async def on_data(self, s):
        await s.split_reply(["354-Go ahead,"], ["354 end data with <CR><LF>.<CR><LF>"], 2)
        return True

    async def on_data_end(self, s, data):
        m = self.accept(s, data)
        if len(self.messages()) == 1:
            await s.split_reply(["250-2.0.0 Ok: queued as S1"], ["250 2.0.0 %s" % m.subject],
                                2)
        else:
            await s.reply("250 2.0.0 Ok: queued")


def s1():
    srv = start(SplitReplies())
    site = Site("s1-split", {"relay_host": "[127.0.0.1]:%d" % srv.port})
    subjects = ["s1-split-%d" % i for i in range(3)]
    ids = [site.send("SMTP:split%d@partner.test" % i, s) for i, s in enumerate(subjects)]
    p = site.run()
    idle(srv)
    check_gone("1: replies split 2 s apart", site, ids)
    check_once("1: replies split 2 s apart", [srv], subjects, ids)
    datas = sum(1 for s in srv.sessions() for c in s.commands if c.upper() == "DATA")
    mails = sum(s.mails for s in srv.sessions())
    t.check(datas == len(subjects) and mails == len(subjects),
            "1: no transaction tried twice: %d MAIL and %d DATA for %d messages (run %.1f s)\n%s"
            % (mails, datas, len(subjects), p.elapsed, transcript(srv)))
    t.check(srv.sessions() and all(s.commands and s.commands[0].upper().startswith("EHLO ")
                                   for s in srv.sessions()),
            "1: every session began with EHLO (no fallback to HELO)\n%s" % transcript(srv))


# ---- 2. 503 to a second MAIL FROM (SPEC 3.4) --------------------------------------------
def said503(s):
    return any(r.startswith("503 5.5.1 Sender already") for r in s.replies)


def s2():
    bad, good = MX["a"], MX["b"]
    site = Site("s2-503", dict(DNS_DELIVERY))
    sa = ["s2-a-%02d" % i for i in range(20)]
    sb = ["s2-b-%02d" % i for i in range(20)]
    ids = [site.send("SMTP:user%02d@a.test" % i, s) for i, s in enumerate(sa)]
    ids += [site.send("SMTP:user%02d@b.test" % i, s) for i, s in enumerate(sb)]
    site.run()
    idle(bad, good)
    q = site.queue()
    held = [(m["queue_id"], r["address"], r["state"], r.get("last_reply")) for m in q
            for r in m["recipients"] if r["state"] != "sent"]
    t.check(not held, "2: nothing held or deferred after the run: %s" % held[:5])
    check_gone("2: 20 to the 503 server, 20 to a good one, one run", site, ids)
    check_once("2: the server saying 503 to a second MAIL", [bad], sa, ids[:20])
    check_once("2: the well-behaved server", [good], sb, ids[20:])
    ses = bad.sessions()
    firsts = [s.first503 for s in ses if hasattr(s, "first503")]
    t.check(firsts, "2: the client did send a second MAIL in a session to the 503 server "
            "(connection reuse), so the case was exercised\n%s" % transcript(bad))
    if firsts:
        first = min(firsts)
        later = [s for s in ses if s.start > first]
        wrong = [s for s in later if s.mails > 1 or said503(s)]
        t.check(later and not wrong,
                "2: each of the %d sessions opened after the first 503 carried one message "
                "and met no 503 (%d 503s in all, in %d sessions)%s"
                % (len(later), sum(1 for s in ses if said503(s)),
                   len(ses), ("\n" + transcript(bad, wrong[0].n) if wrong else "")))
    most = max([s.accepted for s in good.sessions()] or [0])
    t.check(most > 1, "2: the well-behaved destination had connection reuse in the same run "
            "(at most %d messages in a session, %d sessions, at most %d at once)\n%s"
            % (most, len(good.sessions()), good.peak, transcript(good)))
    rsets = [s.n for s in good.sessions() if any(c.upper() == "RSET" for c in s.commands)]
    t.check(not rsets, "2: no RSET between transactions that ended in 250: sessions %s" % rsets)
    piped = [a for s in good.sessions() for c, a in zip(s.commands, s.ahead)
             if c.upper().startswith("MAIL FROM:") and a.upper().startswith(b"RCPT TO:") and
             b"\r\nDATA\r\n" in a.upper()]
    t.check(piped, "2: PIPELINING (offered): MAIL, RCPT and DATA sent together")
    dests = site.gw("queue", "destinations").out
    t.check(re.search(r"^mx a\.test +one message per session until \d{4}-", dests, re.M)
            and "b.test" not in dests,
            "2: queue destinations shows a.test (only) as one message per session:\n%s" % dests)
    # a later run: one message per session to the 503 server from the start
    n0 = len(bad.sessions())
    sa2 = ["s2-a2-%02d" % i for i in range(6)]
    ids2 = [site.send("SMTP:again%02d@a.test" % i, s) for i, s in enumerate(sa2)]
    site.run()
    idle(bad)
    check_gone("2: a second batch to the 503 server", site, ids2)
    check_once("2: a second batch to the 503 server", [bad], sa2)
    later = bad.sessions()[n0:]
    wrong = [s for s in later if s.mails > 1 or said503(s)]
    t.check(later and not wrong,
            "2: the later run remembered: %d sessions, each one message, no 503%s"
            % (len(later), "\n" + transcript(bad, wrong[0].n) if wrong else ""))


# ---- 3. 4xx, 5xx, expiry ----------------------------------------------------------------
class Verdicts(ss.Server):
    """By the recipient's local part: tempfail-rcpt* 451 to the first RCPT,
    tempfail-data 451 to the first end of data, reject 550 to RCPT,
    reject-data 554 to the data, always-451 451 to every RCPT."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.tries = {}

    def count(self, key):
        with self._lock:
            self.tries[key] = self.tries.get(key, 0) + 1
            return self.tries[key]

    async def on_rcpt(self, s, arg, addr):
        local = addr.split("@")[0]
        n = self.count("rcpt " + addr)
        if (local.startswith("tempfail-rcpt") and n == 1) or local == "always-451":
            await s.reply("451 4.3.0 <%s>: try later" % addr)
            return False
        if local == "reject":
            await s.reply("550 5.1.1 <%s>: Recipient address rejected: User unknown" % addr)
            return False
        return await super().on_rcpt(s, arg, addr)

    async def on_data_end(self, s, data):
        locals_ = [r.split("@")[0] for r in s.rcpts]
        if "tempfail-data" in locals_ and self.count("data tempfail-data") == 1:
            await s.reply("451 4.3.0 Error: queue file write error")
            return
        if "reject-data" in locals_:
            await s.reply("554 5.6.0 Error: message content rejected")
            return
        await super().on_data_end(s, data)


def rline(text, addr):
    """The `recipient: <addr> ...` line of queue show."""
    for l in text.splitlines():
        if l.startswith("recipient: <%s>" % addr):
            return l
    return ""


def s3():
    srv = start(Verdicts())
    site = Site("s3-verdicts", {"relay_host": "[127.0.0.1]:%d" % srv.port,
                                "min_backoff": "1m", "max_backoff": "2m"})
    cases = {"tempfail-rcpt": "s3-451-rcpt", "tempfail-data": "s3-451-data",
             "reject": "s3-550-rcpt", "reject-data": "s3-554-data"}
    ids = {k: site.send("SMTP:%s@partner.test" % k, subj) for k, subj in cases.items()}
    before = time.time()
    p3 = site.run()
    idle(srv)
    q = site.queue()
    for k in ("tempfail-rcpt", "tempfail-data"):
        m, r = site.rcpt(ids[k], q)
        t.check(r.get("state") == "deferred" and "451 4.3.0" in (r.get("last_reply") or ""),
                "3: 451 (%s): deferred, last_reply has the server's 451 4.3.0: %s"
                % (k, r or "not in the queue"))
        na = r.get("next_attempt") or 0
        t.check(na > time.time() and na >= before + 55,
                "3: 451 (%s): next_attempt is min_backoff (1m) ahead: %s (now %d)"
                % (k, na, time.time()))
    for k, reply in (("reject", "550 5.1.1"), ("reject-data", "554 5.6.0")):
        addr = "%s@partner.test" % k
        st, text = site.refused(ids[k], addr)
        t.check(st in ("reported", "done") and reply in text,
                "3: %s: failed, and reported to the sender with the server's %s...: %s %s"
                % (k, reply, st, text))
        t.check((addr, "failed") in [(to, status) for to, _, status in
                                     relays(p3.err + p3.out)],
                "3: %s: the log says status=failed: %s" % (k, relays(p3.err + p3.out)))
    # not due yet: a run does not try again
    n0 = len(srv.sessions())
    site.run()
    idle(srv)
    t.check(len(srv.sessions()) == n0, "3: a run before next_attempt connects to nobody: "
            "%d new sessions\n%s" % (len(srv.sessions()) - n0, transcript(srv, n0)))
    site.retry()
    idle(srv)
    check_once("3: 451 then, by queue retry, 250", [srv],
               [cases["tempfail-rcpt"], cases["tempfail-data"]],
               [ids["tempfail-rcpt"], ids["tempfail-data"]])
    check_gone("3: 451 then, by queue retry, 250", site,
               [ids["tempfail-rcpt"], ids["tempfail-data"]])
    t.check(srv.tries.get("rcpt reject@partner.test") == 1,
            "3: queue retry leaves the refused ones untried: %s RCPT for reject@"
            % srv.tries.get("rcpt reject@partner.test"))
    n = taken([srv], [cases["reject"], cases["reject-data"]])
    t.check(not any(n.values()), "3: nothing was taken for the refused ones: %s" % n)

    # expiry
    site2 = Site("s3-expiry", {"relay_host": "[127.0.0.1]:%d" % srv.port,
                               "queue_lifetime": "2s", "min_backoff": "1s",
                               "max_backoff": "1s"})
    lid = site2.send("SMTP:always-451@partner.test", "s3-expiry")
    site2.run()
    idle(srv)
    m, r = site2.rcpt(lid)
    t.check(r.get("state") == "deferred",
            "3: expiry: the first run defers (451): %s" % (r or "not in the queue"))
    if m:
        wait_until(max(m.get("arrival_time", 0) + 2, r.get("next_attempt") or 0) + 1.5)
    p = site2.run()
    idle(srv)
    st, text = site2.refused(lid, "always-451@partner.test")
    t.check(st in ("reported", "done") and re.search(r"expir", text, re.I),
            "3: expiry: after queue_lifetime (2s) a run fails it, and the report names the "
            "expiry: %s %s\n%s" % (st, text, tail(p.err)))
    t.check("451" in text, "3: expiry: the report keeps the server's 451: %r" % text)
    t.check(not taken([srv], ["s3-expiry"])["s3-expiry"], "3: expiry: nothing was taken")


# ---- 4. STARTTLS and AUTH ---------------------------------------------------------------
def make_cert(name, cn="localhost", san="DNS:localhost,IP:127.0.0.1"):
    cert, key = os.path.join(TOP, name + ".pem"), os.path.join(TOP, name + ".key")
    subprocess.run([OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-subj", "/CN=" + cn, "-days", "2", "-addext", "subjectAltName=" + san,
                    "-keyout", key, "-out", cert], check=True, capture_output=True, timeout=60)
    return cert, key


class BadHandshake(ss.Server):
    """Offers STARTTLS; after its 220, garbage (mode "garbage") or a close
    (mode "close") instead of a handshake."""
    mode = "garbage"

    async def tls_handshake(self, s):
        if self.mode == "garbage":
            s.write(b"this is not a TLS server hello\r\n" * 4)
            await s.drain()
        s.event("handshake refused (%s)" % self.mode)
        s.close()


def s4():
    cert, key = make_cert("server")
    other, _ = make_cert("other-ca")
    ctx = ss.server_context(cert, key)
    user, password = "pgrelay", "s3cret pass!"
    pwfile = os.path.join(TOP, "relay.password")
    with open(pwfile, "w") as f:
        f.write(password + "\n")

    # a) tls = encrypt, no STARTTLS offered
    plain = start(ss.Server())
    site = Site("s4-encrypt", {"relay_host": "[127.0.0.1]:%d" % plain.port, "tls": "encrypt"})
    lid = site.send("SMTP:tls-required@partner.test", "s4-encrypt")
    p = site.run()
    idle(plain)
    st, text = site.refused(lid, "tls-required@partner.test")
    t.check(st in ("reported", "done") and re.search(r"TLS", text),
            "4: tls = encrypt, server without STARTTLS: failed and reported, naming TLS: %s "
            "%s\n%s" % (st, text, tail(p.err)))
    t.check(not any(s.mails for s in plain.sessions()),
            "4: tls = encrypt: no MAIL FROM sent in plaintext\n%s" % transcript(plain))

    # b) tls = may, the handshake fails: plaintext on a new connection
    badtls = start(BadHandshake(tls=ctx))
    for mode in ("garbage", "close"):
        site = Site("s4-may-" + mode, {"relay_host": "[127.0.0.1]:%d" % badtls.port,
                                       "tls": "may"})
        badtls.mode = mode
        n0 = len(badtls.sessions())
        subj = "s4-may-%s" % mode
        lid = site.send("SMTP:tls-may-%s@partner.test" % mode, subj)
        p = site.run()
        idle(badtls)
        ses = badtls.sessions()[n0:]
        check_once("4: tls = may, %s after the 220 to STARTTLS" % mode, [badtls], [subj], [lid])
        check_gone("4: tls = may, %s after the 220 to STARTTLS" % mode, site, [lid])
        took = [s for s in ses if s.accepted]
        t.check(any("STARTTLS" in [c.upper() for c in s.commands] for s in ses) and took and
                not any(c.upper() == "STARTTLS" for c in took[0].commands) and
                took[0] is not ses[0] and not took[0].tls,
                "4: tls = may, %s: STARTTLS tried, then the message in plaintext on a new "
                "connection, in the same run\n%s\n%s" % (mode, transcript(badtls, n0),
                                                          tail(p.err)))

    # c) tls = verify + AUTH only inside TLS
    relay = start(ss.Server(tls=ctx, auth=(user, password), auth_required=True,
                            hostname="localhost"))
    site = Site("s4-auth", {"relay_host": "[127.0.0.1]:%d" % relay.port, "tls": "verify",
                            "tls_ca_file": cert, "auth_user": user,
                            "auth_password_file": pwfile})
    lid = site.send("SMTP:via-relay@partner.test", "s4-auth")
    p = site.run()
    idle(relay)
    check_once("4: tls = verify, AUTH at a relay", [relay], ["s4-auth"], [lid])
    check_gone("4: tls = verify, AUTH at a relay", site, [lid])
    msgs = [m for m in relay.messages() if m.subject == "s4-auth"]
    t.check(msgs and msgs[0].tls and msgs[0].auth_user == user,
            "4: the relay took it inside TLS, authenticated as %s: %s\n%s\n%s"
            % (user, [(m.tls, m.auth_user) for m in msgs], transcript(relay), tail(p.err)))
    t.check(not any(b"AUTH" in bytes(s.plain).upper() for s in relay.sessions()),
            "4: no AUTH before STARTTLS")

    # d) tls = verify against another CA: nothing sent
    n0 = len(relay.sessions())
    site.configure({"relay_host": "[127.0.0.1]:%d" % relay.port, "tls": "verify",
                    "tls_ca_file": other, "auth_user": user, "auth_password_file": pwfile})
    lid = site.send("SMTP:via-relay@partner.test", "s4-verify-fails")
    p = site.run()
    idle(relay)
    m, r = site.rcpt(lid)
    ses = relay.sessions()[n0:]
    t.check(r.get("state") in ("deferred", "held") and
            bool(r.get("reason") or r.get("last_reply")),
            "4: tls = verify, a certificate from another CA: not sent, deferred or held with "
            "a reason: %s\n%s" % (r or "not in the queue", tail(p.err)))
    t.check(not any(s.mails or s.auth_user or said_auth(s) for s in ses),
            "4: tls = verify, bad certificate: no AUTH, no MAIL\n%s" % transcript(relay, n0))

    # d2) tls = verify, a trusted certificate for another name than the host connected to
    wcert, wkey = make_cert("other-name", cn="mail.other.example", san="DNS:mail.other.example")
    wrong = start(ss.Server(tls=ss.server_context(wcert, wkey), auth=(user, password),
                            hostname="mail.other.example"))
    site = Site("s4-verify-name", {"relay_host": "[127.0.0.1]:%d" % wrong.port,
                                   "tls": "verify", "tls_ca_file": wcert, "auth_user": user,
                                   "auth_password_file": pwfile})
    lid = site.send("SMTP:via-relay@partner.test", "s4-verify-name")
    p = site.run()
    idle(wrong)
    m, r = site.rcpt(lid)
    t.check(r.get("state") in ("deferred", "held") and
            not any(s.mails or s.auth_user or said_auth(s) for s in wrong.sessions()),
            "4: tls = verify, a trusted certificate naming mail.other.example for 127.0.0.1: "
            "no AUTH, no MAIL, not sent: %s\n%s\n%s"
            % (r or "not in the queue", transcript(wrong), tail(p.err)))

    # e) AUTH offered in plaintext, no STARTTLS: the password stays home
    open_auth = start(ss.Server(auth=(user, password), auth_before_tls=True))
    site = Site("s4-plain-auth", {"relay_host": "[127.0.0.1]:%d" % open_auth.port,
                                  "tls": "may", "auth_user": user,
                                  "auth_password_file": pwfile})
    lid = site.send("SMTP:plain-auth@partner.test", "s4-plain-auth")
    site.run()
    idle(open_auth)
    m, r = site.rcpt(lid)
    raw = b"".join(bytes(s.plain) for s in open_auth.sessions())
    t.check(open_auth.sessions() and not any(said_auth(s) for s in open_auth.sessions()) and
            password.encode() not in raw,
            "4: a server offering AUTH without TLS never gets AUTH (the message: %s)\n%s"
            % (r.get("state") if m else "left the queue", transcript(open_auth)))


def said_auth(s):
    return any(c.upper().startswith("AUTH") for c in s.commands)


# ---- 5. MX through the test DNS ---------------------------------------------------------
def refused(host, port):
    try:
        socket.create_connection((host, port), timeout=2).close()
        return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def s5():
    mx2, mx3, dA, eA = MX["mx2.c"], MX["mx3.c"], MX["d"], MX["e"]
    t.check(refused("127.0.0.4", PORT), "5: setup: nothing listens on 127.0.0.4:%d (MX 10)"
            % PORT)
    site = Site("s5-mx", dict(DNS_DELIVERY))
    ids = {d: site.send("SMTP:someone@%s" % d, "s5-%s" % d)
           for d in ("c.test", "d.test", "e.test", "f.test", "g.test")}
    q0 = len(DNS.questions())
    p = site.run()
    idle(mx2, mx3, dA, eA)
    q = site.queue()
    check_once("5: MX 10 refused, 20 and 30 listening", [mx2], ["s5-c.test"], [ids["c.test"]])
    t.check(not mx3.sessions(), "5: the preference-30 server was not needed\n%s"
            % transcript(mx3))
    t.check(DNS.asked("c.test", "MX") and DNS.asked("mx1.c.test"),
            "5: the client asked the test DNS for c.test's MX and for mx1.c.test's address: %s"
            % DNS.questions()[q0:])
    st, text = site.refused(ids["d.test"], "someone@d.test")
    t.check(st in ("reported", "done") and re.search(r"null MX|7505", text, re.I),
            "5: a null MX (MX 0 .): failed at once and reported, naming the null MX: %s %s\n%s"
            % (st, text, tail(p.err)))
    t.check(not dA.sessions(), "5: null MX: nothing connected (not even to d.test's A record)"
            "\n%s" % transcript(dA))
    check_once("5: no MX, an A record (the implicit MX)", [eA], ["s5-e.test"], [ids["e.test"]])
    st, text = site.refused(ids["f.test"], "someone@f.test")
    t.check(st in ("reported", "done") and len(text) > 20,
            "5: NXDOMAIN: failed and reported, with a reason (Postfix bounces it too): %s %s"
            % (st, text))
    m, r = site.rcpt(ids["g.test"], q)
    t.check(r.get("state") == "deferred" and (r.get("reason") or r.get("last_reply")),
            "5: SERVFAIL: deferred (a temporary DNS failure), with a reason: %s"
            % (r or "not in the queue"))
    check_gone("5: the mail for c.test and e.test", site, [ids["c.test"], ids["e.test"]])
    got = {to.split("@")[1]: (relay, status) for to, relay, status in relays(p.err + p.out)}
    t.check(got.get("c.test") == ("mx2.c.test[127.0.0.5]:%d" % PORT, "sent"),
            "5: the log names the server that took c.test's mail: relay=mx2.c.test"
            "[127.0.0.5]:%d, status=sent: %s" % (PORT, got.get("c.test")))
    for dom, status in (("d.test", "failed"), ("f.test", "failed"), ("g.test", "deferred")):
        t.check(got.get(dom) == ("none", status),
                "5: %s: nothing answered, the log says relay=none, status=%s: %s"
                % (dom, status, got.get(dom)))
    # a relay_host where nothing listens: deferred, relay=none
    dead = ss.free_port()
    site2 = Site("s5-unreachable", {"relay_host": "[127.0.0.1]:%d" % dead})
    lid = site2.send("SMTP:someone@partner.test", "s5-unreachable")
    p = site2.run()
    m, r = site2.rcpt(lid)
    t.check(r.get("state") == "deferred"
            and relays(p.err + p.out) == [("someone@partner.test", "none", "deferred")],
            "5: relay_host not listening: deferred, logged relay=none: %s %s\n%s"
            % (r.get("state"), relays(p.err + p.out), tail(p.err)))


# ---- 6. the round trip to an aiosmtpd sink ----------------------------------------------
class Sink:
    def __init__(self):
        self.got = []

    async def handle_DATA(self, server, session, envelope):
        self.got.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content
                         or envelope.content))
        return "250 2.0.0 Ok: queued"


def s6():
    import email.parser
    import email.policy
    sink = Sink()
    port = ss.free_port()
    ctl = Controller(sink, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        site = Site("s6-roundtrip", {"relay_host": "[127.0.0.1]:%d" % port, "tls": "none"})
        subject = "Grüße aus Hamburg, Übersicht"
        body = "Sehr geehrte Damen und Herren,\r\nanbei die Übersicht.\r\n.\r\nGrüße\r\n"
        att = bytes((i * 31 + 7) % 256 for i in range(70000)) + b"\r\n.\r\n\x00\xff"
        af = os.path.join(site.top, "bericht.bin")
        with open(af, "wb") as f:
            f.write(att)
        lid = site.send("SMTP:Empfaenger@Partner.test", subject, body=body, attach=[af])
        site.run("--no-delivery")
        m, r = site.rcpt(lid)
        t.check(r.get("state") == "smtp-pending" and not sink.got,
                "6: run --no-delivery translates and queues, sends nothing: %s, %d at the sink"
                % (r or "not in the queue", len(sink.got)))
        site.run()
        end = time.time() + 10
        while not sink.got and time.time() < end:
            time.sleep(0.05)
        check_gone("6: the round trip", site, [lid])
        t.check(len(sink.got) == 1, "6: the sink got exactly one message: %d" % len(sink.got))
        if not sink.got:
            return
        mail_from, rcpts, data = sink.got[0]
        t.check(mail_from == "jsmith@" + DOMAIN and
                [r.lower() for r in rcpts] == ["empfaenger@partner.test"],
                "6: envelope: MAIL FROM jsmith@%s (the primary proxy), RCPT the address sent "
                "to: %s %s" % (DOMAIN, mail_from, rcpts))
        msg = email.parser.BytesParser(policy=email.policy.default).parsebytes(data)
        frm = msg["From"].addresses[0] if msg["From"] and msg["From"].addresses else None
        t.check(frm is not None and frm.addr_spec == "jsmith@" + DOMAIN and
                frm.display_name == "Jürgen Smith",
                "6: From: Jürgen Smith <jsmith@%s>: %r" % (DOMAIN, str(msg["From"])))
        t.check(str(msg["Subject"]) == subject, "6: Subject: as sent, %r: %r"
                % (subject, str(msg["Subject"])))
        t.check(msg["Message-ID"] and mid_key(lid) in str(msg["Message-ID"]) and
                msg["Date"] and msg["MIME-Version"],
                "6: Message-ID (from the legacy id), Date, MIME-Version: %s %s %s"
                % (msg["Message-ID"], msg["Date"], msg["MIME-Version"]))
        text = msg.get_body(("plain",))
        t.check(text is not None and text.get_content().replace("\r\n", "\n").rstrip("\n") ==
                body.replace("\r\n", "\n").rstrip("\n"),
                "6: the text body as written (a lone dot line included): %r"
                % (text.get_content()[:200] if text is not None else None))
        atts = list(msg.iter_attachments())
        got = [(a.get_filename(), hashlib.sha256(a.get_content()).hexdigest()) for a in atts]
        t.check(got == [("bericht.bin", hashlib.sha256(att).hexdigest())],
                "6: one attachment, bericht.bin, its bytes intact (SHA-256): %s" % got)
        long_lines = [l for l in data.split(b"\r\n") if len(l) > 998]
        t.check(not long_lines and b"\r\n" in data and not re.search(rb"[^\r]\n", data),
                "6: the message on the wire has CRLF line ends and no line over 998 bytes")
    finally:
        ctl.stop()


# ---- 7. misbehaving servers -------------------------------------------------------------
class Misbehaving(ss.Server):
    """mode: good | drop-data (hangs up in the middle of the data) | silent
    (never answers MAIL) | flood (10,000 continuation lines to MAIL) |
    garbage-greeting | busy-421 (greets with 421 and hangs up) | garbage-data
    (a non-SMTP reply to the end of data) | drop-after-250 (hangs up right
    after the 250 to the first message of a session)."""
    mode = "good"

    async def greeting(self, s):
        s.mode = self.mode
        if s.mode == "garbage-greeting":
            await s.reply("hello, this is not an SMTP server")
            return
        if s.mode == "busy-421":
            await s.reply("421 4.3.2 mx.test Service not available, closing channel")
            s.close()
            return
        await super().greeting(s)

    async def on_mail(self, s, arg):
        if s.mode == "silent":
            s.event("silent")
            try:
                await asyncio.wait_for(s.reader.read(), 60)
            except asyncio.TimeoutError:
                pass
            s.close()
            return False
        if s.mode == "flood":
            for _ in range(10):
                s.write(b"".join(b"250-%04d flood flood flood flood flood flood\r\n" % i
                                 for i in range(1000)))
                await s.drain()
            await s.reply("250 2.1.0 Ok after all that")
            return True
        return await super().on_mail(s, arg)

    async def read_data(self, s):
        if s.mode != "drop-data":
            return await super().read_data(s)
        for _ in range(3):
            if await s.readline(10) is None:
                break
        s.event("dropped in the middle of the data")
        s.close(abort=True)
        return None

    async def on_data_end(self, s, data):
        if s.mode == "garbage-data":
            await s.reply("ok, I guess it is queued, or not")
            return
        await super().on_data_end(s, data)
        if s.mode == "drop-after-250":
            s.event("hung up after the 250")
            s.close(abort=True)


def s7():
    srv = start(Misbehaving())
    site = Site("s7-misbehaving", {"relay_host": "[127.0.0.1]:%d" % srv.port,
                                   "timeout": "3s", "connect_timeout": "3s",
                                   "min_backoff": "1m", "max_backoff": "2m"})
    for mode, limit in (("drop-data", 20), ("silent", 25), ("flood", 20),
                        ("garbage-greeting", 20), ("busy-421", 20), ("garbage-data", 25)):
        srv.mode = mode
        n0 = len(srv.sessions())
        subj = "s7-" + mode
        lid = site.send("SMTP:%s@partner.test" % mode, subj)
        p = site.run()
        idle(srv)
        m, r = site.rcpt(lid)
        t.check(p.returncode is not None and p.elapsed < limit,
                "7: %s: the run ends by itself, in %.1f s (limit %d s)"
                % (mode, p.elapsed, limit))
        t.check(r.get("state") == "deferred" and (r.get("reason") or r.get("last_reply")),
                "7: %s: deferred, with a reason or reply: %s\n%s\n%s"
                % (mode, r or "not in the queue", transcript(srv, n0), tail(p.err)))
        if mode == "silent":
            t.check(p.elapsed >= 2.5, "7: silent: the run waited for the reply "
                    "([delivery] timeout = 3s): %.1f s" % p.elapsed)
        srv.mode = "good"
        if m:
            site.retry(m["queue_id"])
        idle(srv)
        check_once("7: %s, then queue retry ID to a server behaving" % mode, [srv], [subj],
                   [lid])
        check_gone("7: %s, then queue retry" % mode, site, [lid])

    # the server took a message (250) and hung up at once: sent, never again
    srv.mode = "drop-after-250"
    n0 = len(srv.sessions())
    subjects = ["s7-drop-after-250-%d" % i for i in range(2)]
    ids = [site.send("SMTP:drop-after-250-%d@partner.test" % i, subj)
           for i, subj in enumerate(subjects)]
    p = site.run()
    idle(srv)
    first = [m.subject for m in srv.messages() if m.subject in subjects]
    q = site.queue()
    took = [lid for lid, subj in zip(ids, subjects) if subj in first]
    t.check(len(first) >= 1 and not [lid for lid in took if site.find(lid, q)],
            "7: drop-after-250: what the server took (250) before hanging up is sent, out of "
            "the queue: took %s, still queued %s\n%s\n%s"
            % (first, [(m["queue_id"], m["recipients"][0]["state"]) for m in q
                       if m.get("message_id") and any(mid_key(i) in m["message_id"]
                                                      for i in took)],
               transcript(srv, n0), tail(p.err)))
    srv.mode = "good"
    site.retry()
    idle(srv)
    check_once("7: drop-after-250, then queue retry", [srv], subjects, ids)
    check_gone("7: drop-after-250, then queue retry", site, ids)


# ---- 8. protocol details ----------------------------------------------------------------
class OffersDSN(ss.Server):
    def extensions(self, s):
        return super().extensions(s) + ["DSN"]


class No8BitMime(ss.Server):
    def extensions(self, s):
        return [e for e in super().extensions(s) if e != "8BITMIME"]


class SmallSize(ss.Server):
    def extensions(self, s):
        return [e for e in super().extensions(s) if not e.startswith("SIZE")] + ["SIZE 4000"]


class RefusesSender(ss.Server):
    async def on_mail(self, s, arg):
        await s.reply("553 5.7.1 <%s>: Sender address rejected: not allowed"
                      % arg.split("<")[1].split(">")[0])
        return False


class RefusesEhlo(ss.Server):
    async def ehlo(self, s, arg):
        await s.reply("502 5.5.2 Error: command not recognized")


def xtext(text):
    return "".join(c if "!" <= c <= "~" and c not in "+=" else "+%02X" % ord(c) for c in text)


def s8():
    # a) one message, three recipients, one of them 451 at first: one copy each
    srv = start(Verdicts())
    site = Site("s8-rcpts", {"relay_host": "[127.0.0.1]:%d" % srv.port})
    rc = ["multi1@partner.test", "tempfail-rcpt-m@partner.test", "multi2@partner.test"]
    lid = site.send(",".join("SMTP:" + a for a in rc), "s8-multi")
    site.run()
    idle(srv)
    got = [m for m in srv.messages() if m.subject == "s8-multi"]
    m, _ = site.rcpt(lid)
    states = {r["address"]: r["state"] for r in m["recipients"]} if m else {}
    t.check(len(got) == 1 and sorted(got[0].rcpts) == sorted([rc[0], rc[2]]) and
            srv.sessions() and sum(s.mails for s in srv.sessions()) == 1,
            "8: three recipients at one destination: one transaction, the two the server took "
            "in one copy: %s\n%s" % ([x.rcpts for x in got], transcript(srv)))
    t.check(states == {rc[0]: "sent", rc[1]: "deferred", rc[2]: "sent"},
            "8: the queue: two sent, the one that got 451 deferred: %s" % states)
    site.retry()
    idle(srv)
    got = [m for m in srv.messages() if m.subject == "s8-multi"]
    per = {a: sum(a in x.rcpts for x in got) for a in rc}
    t.check(per == {a: 1 for a in rc},
            "8: after queue retry each recipient got the message exactly once: %s" % per)
    check_gone("8: three recipients", site, [lid])

    # every RCPT refused, one 550, one 451: DATA gets 554 "no valid recipients",
    # which says nothing about either (RFC 2920 pipelining)
    lid = site.send("SMTP:reject@partner.test,SMTP:tempfail-rcpt-n@partner.test", "s8-none")
    n0 = len(srv.sessions())
    site.run()
    idle(srv)
    m, _ = site.rcpt(lid)
    states = {r["address"]: (r["state"], (r.get("last_reply") or "")[:9])
              for r in m["recipients"]} if m else {}
    t.check(states.get("reject@partner.test") in (("reported", "550 5.1.1"),
                                                  ("done", "550 5.1.1")) and
            states.get("tempfail-rcpt-n@partner.test") == ("deferred", "451 4.3.0"),
            "8: both RCPTs refused (550, 451): each recipient keeps its own verdict, not "
            "the 554 to DATA: %s\n%s" % (states, transcript(srv, n0)))
    t.check(not taken([srv], ["s8-none"])["s8-none"] and
            not any(r.startswith("354") for s in srv.sessions()[n0:] for r in s.replies),
            "8: both RCPTs refused: no message data sent")
    site.retry()
    idle(srv)
    m, _ = site.rcpt(lid)
    states = {r["address"]: r["state"] for r in m["recipients"]} if m else {}
    st, text = site.refused(lid, "reject@partner.test")
    t.check(not m and st == "reported" and "550 5.1.1" in text and
            taken([srv], ["s8-none"])["s8-none"] == 1,
            "8: then queue retry: the 451 one sent once, the 550 one reported (the message "
            "gone): %s %s %s" % (states, st, text))

    # the sender refused (553 to MAIL FROM, first in its session): held, no reconnect loop
    refuser = start(RefusesSender())
    site = Site("s8-sender", {"relay_host": "[127.0.0.1]:%d" % refuser.port})
    ids = [site.send("SMTP:rs%d@partner.test" % i, "s8-sender-%d" % i) for i in range(2)]
    site.run()
    idle(refuser)
    st = [site.refused(i, "rs%d@partner.test" % n) for n, i in enumerate(ids)]
    t.check(all(s in ("reported", "done") and "553 5.7.1" in x for s, x in st) and
            len(refuser.sessions()) <= 2,
            "8: 553 to every MAIL FROM: both messages failed and reported with the reply, in "
            "%d session(s): %s\n%s" % (len(refuser.sessions()), st, transcript(refuser)))

    # b) DSN offered: NOTIFY, ORCPT, ENVID, RET passed on as queued
    dsn = start(OffersDSN())
    site = Site("s8-dsn", {"relay_host": "[127.0.0.1]:%d" % dsn.port})
    lid = site.send("SMTP:dsn@partner.test", "s8-dsn")
    site.run("--no-delivery")
    m, r = site.rcpt(lid)
    site.run()
    idle(dsn)
    mails = [c for s in dsn.sessions() for c in s.commands if c.upper().startswith("MAIL ")]
    rcpts = [c for s in dsn.sessions() for c in s.commands if c.upper().startswith("RCPT ")]
    if m:
        mp = ss.params(mails[0].split(">", 1)[1]) if mails else {}
        rp = ss.params(rcpts[0].split(">", 1)[1]) if rcpts else {}
        want_r = {}
        if r.get("notify"):
            want_r["NOTIFY"] = r["notify"].upper()
        if r.get("orcpt"):
            want_r["ORCPT"] = xtext(r["orcpt"])
        t.check(want_r and {k: rp.get(k, "").upper() if k == "NOTIFY" else rp.get(k)
                            for k in want_r} == want_r,
                "8: DSN offered: RCPT carries the queued NOTIFY and ORCPT (xtext) %s: %s"
                % (want_r, rcpts))
        want_m = {}
        if m.get("envid"):
            want_m["ENVID"] = xtext(m["envid"])
        if m.get("ret"):
            want_m["RET"] = m["ret"].upper()
        t.check({k: mp.get(k, "").upper() if k == "RET" else mp.get(k) for k in want_m} ==
                want_m, "8: DSN offered: MAIL carries the queued ENVID and RET %s: %s"
                % (want_m, mails))
    check_once("8: DSN offered", [dsn], ["s8-dsn"], [lid])

    # c) no 8BITMIME: 8-bit text goes out in 7 bits, the same text
    n7 = start(No8BitMime())
    site = Site("s8-7bit", {"relay_host": "[127.0.0.1]:%d" % n7.port})
    body = "Grüße, Jörg - straße ÄÖÜ äöü ß ½ ±\r\n" * 3
    att = os.path.join(site.top, "x.bin")
    with open(att, "wb") as f:
        f.write(bytes(range(256)) * 8)
    lid = site.send("SMTP:seven@partner.test", "s8-7bit Übersicht", body=body, attach=[att])
    site.run()
    idle(n7)
    got = [m for m in n7.messages() if m.subject == "s8-7bit Übersicht"]
    check_once("8: a server without 8BITMIME", [n7], ["s8-7bit Übersicht"], [lid])
    if got:
        text = got[0].parsed().get_body(("plain",))
        t.check(all(b < 128 for b in got[0].data) and text is not None and
                text.get_content().replace("\r\n", "\n") == body.replace("\r\n", "\n"),
                "8: without 8BITMIME the data is 7-bit and decodes to the text as written: %r"
                % (text.get_content()[:80] if text is not None else None))

    # d) SIZE: a message over the server's limit is not sent
    small = start(SmallSize())
    site = Site("s8-size", {"relay_host": "[127.0.0.1]:%d" % small.port})
    big = os.path.join(site.top, "big.bin")
    with open(big, "wb") as f:
        f.write(os.urandom(20000))
    lid = site.send("SMTP:big@partner.test", "s8-size", attach=[big])
    site.run()
    idle(small)
    st, text = site.refused(lid, "big@partner.test")
    datas = [c for s in small.sessions() for c in s.commands if c.upper() == "DATA"]
    t.check(st in ("reported", "done", "deferred") and not datas and
            re.search(r"size|limit|large|big", text, re.I),
            "8: SIZE 4000 offered, a 27 KB message: not sent (no DATA), failed and reported "
            "(or deferred), naming the size: %s %s\n%s" % (st, text, transcript(small)))

    # e) EHLO refused: HELO, and nothing pipelined
    old = start(RefusesEhlo())
    site = Site("s8-helo", {"relay_host": "[127.0.0.1]:%d" % old.port})
    ids = [site.send("SMTP:old%d@partner.test" % i, "s8-helo-%d" % i) for i in range(2)]
    site.run()
    idle(old)
    check_once("8: EHLO refused, HELO", [old], ["s8-helo-0", "s8-helo-1"], ids)
    t.check(old.sessions() and all(any(c.upper().startswith("HELO ") for c in s.commands)
                                   for s in old.sessions() if s.mails),
            "8: EHLO refused: the client said HELO\n%s" % transcript(old))


# ---- 10. an administrator's hold while the transaction is under way ---------------------
class HoldsMeanwhile(ss.Server):
    """Holds the message (postgate queue hold) after taking its data and
    before its 250: the 250 is a fact, so the message is sent, and a release
    must not send it again."""
    site = None
    held = None

    async def on_data_end(self, s, data):
        self.accept(s, data)
        if self.held is None:
            for m in self.site.queue():
                if any(r["state"] in ("smtp-pending", "deferred") for r in m["recipients"]):
                    p = self.site.gw("queue", "hold", m["queue_id"], "--reason", "a look",
                                     check=False)
                    if p.returncode == 0:
                        self.held = m["queue_id"]
        await s.reply("250 2.0.0 Ok: queued")


def s10():
    srv = start(HoldsMeanwhile())
    site = Site("s10-hold", {"relay_host": "[127.0.0.1]:%d" % srv.port, "tls": "none"})
    HoldsMeanwhile.site = site
    ids = [site.send("SMTP:hold@partner.test", "s10-hold")]
    site.run()
    idle(srv)
    t.check(srv.held, "10: the message was held while its transaction was under way")
    check_gone("10: held during the transaction, then the 250", site, ids)
    if srv.held:
        site.gw("queue", "release", srv.held, check=False)
    site.run()
    idle(srv)
    check_once("10: after a release and another run", [srv], ["s10-hold"])


def hygiene():
    """What every scripted server noted against the client, all scenarios."""
    v = [(srv.name, n, text) for srv in SERVERS for n, text in srv.violations()]
    t.check(not v, "9: no protocol violation in any session of any server (CRLF, "
            "PIPELINING groups, parameters only when offered, data lines): %d\n%s"
            % (len(v), "\n".join("       %s #%d: %s" % x for x in v[:15])))


# ---- main -------------------------------------------------------------------------------
# DELIVERY_ONLY=2,5 runs only those scenarios (while working on one)
ONLY = [x.strip() for x in os.environ.get("DELIVERY_ONLY", "").split(",") if x.strip()]
for name, fn in (("1", s1), ("2", s2), ("3", s3), ("4", s4), ("5", s5), ("6", s6),
                 ("7", s7), ("8", s8), ("10", s10), ("9", hygiene)):
    if ONLY and name not in ONLY:
        continue
    t0 = time.time()
    scenario(name, fn)
    print("     (scenario %s: %.1f s)" % (name, time.time() - t0))
    sys.stdout.flush()

for srv in SERVERS:
    srv.stop()
DNS.stop()
print("runtime %.1f s" % (time.time() - T0))
if t.failed:
    print("kept for inspection: %s" % TOP)
else:
    shutil.rmtree(TOP)
t.done()
