#!/usr/bin/python3
"""Delay notices (issue 14 point 4): [delivery] delay_warning tells a sender,
once per message, that it is still waiting; and a delay reported by the other
side crosses the gateway as one.

A site example.com with CORP/HQ (JSMITH, ALICE, BOB, CAROL); delay_warning =
1s; `postgate smtpd` takes mail with smtplib; the "Internet" is a scripted
server (smtpscript.py) as relay_host that answers 451 for slow*@ until told
otherwise, 550 for bad*@ and slowbad*@ once slow mail is let through, and
takes the rest: the DSNs arrive there.

1. A legacy message to SMTP:slow1@ and SMTP:slowbad1@ (deferred) and
   SMTP:ok1@ (sent): once delay_warning has passed, the run queues one
   legacy report "Delayed: SUBJECT" to JSMITH naming both waiting addresses
   as delayed with the server's 451; `queue show` names it; further runs
   make no second one.  Then the server takes slow1@ and refuses
   slowbad1@: JSMITH gets one non-delivery report for slowbad1 only.
2. An Internet message to alice@ (NOTIFY=DELAY,FAILURE, ORCPT) and bob@
   (NOTIFY=FAILURE) while HQ's in/ cannot be written: once delay_warning
   has passed, one DSN to the sender: multipart/report, Action delayed,
   Status 4.x.x, for alice only, the header section returned; no second
   one; once in/ is back, the message is delivered and no other DSN comes.
3. HQ's legacy report with items "delayed" (status 2) about the copy of an
   Internet message: one DSN "delayed" for carol@ (NOTIFY=DELAY), nothing
   for bob@ (who did not ask).
4. An Internet DSN "Action: delayed" about JSMITH's message (its ENVID the
   legacy id): JSMITH gets a legacy report "Delayed:" naming SMTP:far1@ as
   delayed, read with `postgate-po show`.
5. delay_warning = 0: no notice at all.
"""
import json
import os
import re
import shutil
import smtplib
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dsn_check  # noqa: E402
import pgbundle as pg  # noqa: E402
import smtpscript  # noqa: E402

t = pg.Tally("delay")
POSTGATE = pg.gw_binary()
HOST = "127.0.0.1"
DOMAIN = "example.com"
HQ = "CORP/HQ"
SENDER = "sender@ext.example"
WAIT = 1.3          # past delay_warning = 1s
top = pg.scratch()


class Internet(smtpscript.Server):
    let_through = False

    async def on_rcpt(self, s, arg, addr):
        if addr.startswith("bad") or (self.let_through and addr.startswith("slowbad")):
            await s.reply("550 5.1.1 <%s>: Recipient address rejected: User unknown" % addr)
            return False
        if addr.startswith("slow") and not self.let_through:
            await s.reply("451 4.3.0 <%s>: try again later" % addr)
            return False
        await s.reply("250 2.1.5 Ok")
        return True


net = Internet(hostname="mx.ext.test")
net.start()
po_dir, key = pg.make_po(top, "CORP", "HQ", gateway="CORP/GW",
                         users=[("JSMITH", "J. Smith"), ("ALICE", "Alice"), ("BOB", "Bob"),
                                ("CAROL", "Carol")])
port = pg.free_port(HOST)


def config(path, warning):
    lines = ["[site]", "name = HQ", "domains = " + DOMAIN,
             "state_dir = " + os.path.join(top, "state"), "gateway_po = CORP/GW", "user =",
             "proxy_templates = SMTP:%m@" + DOMAIN, "",
             "[smtpd]", "hostname = gw." + DOMAIN, "listen = %s:%d" % (HOST, port),
             "relay_networks = 127.0.0.0/8", "timeout = 10s", "",
             "[delivery]", "relay_host = [%s]:%d" % (HOST, net.port), "tls = none",
             "min_backoff = 1h", "max_backoff = 2h", "delay_warning = " + warning, "",
             "[postoffice %s]" % HQ, "dir = " + po_dir,
             "key_file = " + os.path.join(top, "hq.key"), "codepage = CP850", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


CONF = config(os.path.join(top, "postgate.conf"), "1s")
CONF_OFF = config(os.path.join(top, "postgate-off.conf"), "0")


def gw(*args, conf=CONF, check=False):
    return pg.run_cmd([POSTGATE, "-c", conf] + list(args), check=check)


def queue():
    return [json.loads(line) for line in gw("queue", "list", "-j", check=True).out.splitlines()
            if line.strip()]


def legacy_send(to, subject):
    p = pg.run("-d", po_dir, "send", "--from", "JSMITH", "--to", to, "--subject", subject)
    m = re.match(r"sent (\S+?)(?:;|$)", p.out.strip())
    return m.group(1) if m else None


def jsmith(subject_part):
    """JSMITH's messages (postgate-po show) whose subject holds subject_part."""
    pg.run("-d", po_dir, "deliver", check=False)
    return [m for m in pg.legacy_mailbox(po_dir, "JSMITH")
            if subject_part in " ".join(m.get("Subject", []))]


def send(rcpts, subject, **kw):
    """rcpts: [(address, NOTIFY or None, ORCPT or None)]; the Message-ID."""
    return pg.smtp_send(HOST, port, SENDER, rcpts, subject, **kw)


def dsns_since(n, timeout=0.0):
    end = time.time() + timeout
    while True:
        got = [m for m in net.messages()[n:] if m.mail_from == ""]
        if got or time.time() >= end:
            return got
        time.sleep(0.05)


def import_dir():
    xml = os.path.join(top, "hq.xml")
    pg.run("-d", po_dir, "export-dir", "-o", xml)
    gw("dir", "import", xml, check=True)


def qid_of(subject):
    for m in queue():
        if subject in json.dumps(m):
            return m["queue_id"]
    return None


import_dir()
smtpd = pg.Smtpd(CONF, HOST, port, os.path.join(top, "smtpd.log")).start()

try:
    # ---- 1. a legacy message still waiting for SMTP -------------------------------------
    legacy_id = legacy_send("SMTP:slow1@far.example,SMTP:slowbad1@far.example,"
                            "SMTP:ok1@far.example", "Waiting one")
    r = gw("run")
    t.check(r.returncode == 0 and "delay notice" not in r.out,
            "1: the first run defers slow1 and slowbad1, no notice yet: %s %s"
            % (r.out, r.err[-300:]))
    time.sleep(WAIT)
    r = gw("run")
    t.check("delay notices: 1 queued about 2 recipients" in r.out,
            "1: once delay_warning has passed, the run queues one delay notice about both: %s"
            % r.out)
    got = jsmith("Waiting one")
    delayed = [m for m in got if m.get("Subject", [""])[0].startswith("Delayed: ")]
    t.check(len(got) == 1 and len(delayed) == 1,
            "1: JSMITH has one report, \"Delayed: Waiting one\": %s"
            % [m.get("Subject") for m in got])
    if delayed:
        rep = sorted(delayed[0].get("Report", []))
        t.check(len(rep) == 2 and all(": delayed, " in x for x in rep) and
                rep[0].startswith("SMTP:slow1@far.example") and
                rep[1].startswith("SMTP:slowbad1@far.example") and
                all("451 4.3.0" in x for x in rep),
                "1: it names slow1 and slowbad1 as delayed, with the server's 451: %s" % rep)
        t.check(delayed[0].get("Class", [""])[0].startswith("non-delivery report") and
                legacy_id in " ".join(delayed[0].get("About", [])) and
                "still being tried" in delayed[0]["body"],
                "1: a report about JSMITH's message, telling him it is still tried: %s %s %r"
                % (delayed[0].get("Class"), delayed[0].get("About"),
                   delayed[0]["body"][:200]))
    qid = qid_of("slow1@far.example")
    show = gw("queue", "show", qid or "?").out
    t.check("delay_notice: " in show, "1: queue show says when the notice was queued: %s"
            % show[:400])
    time.sleep(WAIT)
    r = gw("run")
    got = jsmith("Waiting one")
    t.check("delay notice" not in r.out and len(got) == 1,
            "1: a later run makes no second notice: %s %s" % (r.out, [m.get("Subject") for m in got]))
    net.let_through = True
    r = gw("queue", "retry")
    r2 = gw("run")
    got = jsmith("Waiting one")
    ndr = [m for m in got if m.get("Subject", [""])[0].startswith("Undeliverable: ")]
    t.check(len(got) == 2 and len(ndr) == 1 and len(ndr[0].get("Report", [])) == 1 and
            ndr[0]["Report"][0].startswith("SMTP:slowbad1@far.example: not delivered"),
            "1: slow1 goes, slowbad1 is refused: one NDR naming slowbad1 only: %s %s %s"
            % ([(m.get("Subject"), m.get("Report")) for m in got], r.out, r2.out))
    t.check(queue() == [], "1: nothing is left in the queue: %s" % queue())
    net.let_through = False

    # ---- 2. an Internet message that cannot be written to its postoffice ----------------
    seen = len(net.messages())
    inbox = os.path.join(po_dir, "in")
    shutil.move(inbox, inbox + ".away")
    with open(inbox, "w") as f:
        f.write("not a directory\n")
    mid = send([("alice@" + DOMAIN, "DELAY,FAILURE", "rfc822;Alice@Example.com"),
                ("bob@" + DOMAIN, "FAILURE", None)], "Stuck at the gateway", envid="STUCK-1")
    r = gw("run")
    t.check(not dsns_since(seen, 0.3) and r.returncode != 0,
            "2: HQ's in/ cannot be written: the run says so, no notice yet: rc %d %s"
            % (r.returncode, r.err[-300:]))
    time.sleep(WAIT)
    r = gw("run")
    got = dsns_since(seen, 10)
    t.check(len(got) == 1 and got[0].rcpts == [SENDER],
            "2: once delay_warning has passed, one report reaches the sender from <>: %s %s"
            % ([(m.subject, m.rcpts) for m in got], r.out))
    if got:
        try:
            rc = dsn_check.check_dsn(got[0].data, {
                "message": {"Original-Envelope-Id": "STUCK-1",
                            "Reporting-MTA": "dns; gw." + DOMAIN},
                "recipients": [{"Final-Recipient": "rfc822; alice@" + DOMAIN,
                                "Original-Recipient": "rfc822; Alice@Example.com",
                                "Action": "delayed"}],
                "returned": "text/rfc822-headers"})
            t.check(re.fullmatch(r"4\.\d+\.\d+", rc[0].get("status", "")) is not None,
                    "2: the status is a 4.x.x: %s" % rc[0].get("status"))
            returned = got[0].parsed().get_payload()[2]
            t.check(mid in str(returned), "2: the header section is returned: %s"
                    % str(returned)[:300])
            t.check(True, "2: the DSN parses as multipart/report, delayed, alice only")
        except AssertionError as e:
            t.check(False, "2: the DSN parses as multipart/report, delayed, alice only: %s" % e)
    time.sleep(WAIT)
    seen = len(net.messages())
    gw("run")
    os.unlink(inbox)
    shutil.move(inbox + ".away", inbox)
    r = gw("run")
    pg.run("-d", po_dir, "deliver", check=False)
    stuck = [b for b in ("ALICE", "BOB")
             for m in pg.legacy_mailbox(po_dir, b)
             if "Stuck at the gateway" in " ".join(m.get("Subject", []))]
    t.check(not dsns_since(seen, 0.5) and stuck == ["ALICE", "BOB"] and queue() == [],
            "2: no second DSN; once in/ is back it is delivered once to each: %s %s %s"
            % ([m.subject for m in dsns_since(seen)], stuck, queue()))

    # ---- 3. a postoffice's "delayed" report about an Internet message ------------------
    send([("carol@" + DOMAIN, "DELAY,FAILURE", None), ("bob@" + DOMAIN, "FAILURE", None)],
         "Slow at HQ", envid="SLOW-HQ")
    qid = qid_of("carol@")
    gw("run")
    report = pg.message("CORP/HQ:R%d" % time.time_ns(), "CORP/HQ/POSTMASTER",
                        [("SMTP:" + SENDER, True)], subject=b"Delayed", body=b"Later.\r\n",
                        cls=1, no_report=True, about="CORP/GW:%s" % qid,
                        items=[("CORP/HQ/CAROL", 2, 3, "mailbox locked, still trying"),
                               ("CORP/HQ/BOB", 2, 3, "mailbox locked, still trying")])
    seen = len(net.messages())
    pg.drop(po_dir, pg.bundle_name(HQ, "CORP/GW", 900),
            pg.bundle(HQ, "CORP/GW", 900, [(1, report)], key), sub="out")
    r = gw("run")
    got = dsns_since(seen, 10)
    ok = False
    try:
        rc = dsn_check.check_dsn(got[0].data, {
            "message": {"Original-Envelope-Id": "SLOW-HQ"},
            "recipients": [{"Final-Recipient": "rfc822; carol@" + DOMAIN,
                            "Action": "delayed"}]}) if len(got) == 1 else []
        ok = bool(rc) and rc[0]["status"].startswith("4.") and \
            "mailbox locked" in rc[0].get("diagnostic-code", "")
    except AssertionError as e:
        print("  3:", e)
    t.check(ok, "3: HQ's delayed report gives one DSN, delayed, for carol only: %s %s"
            % ([m.subject for m in got], r.out + r.err[-300:]))
    time.sleep(0.3)
    t.check(len(dsns_since(seen)) == 1 and queue() == [],
            "3: nothing more, nothing left: %s %s" % ([m.subject for m in dsns_since(seen)],
                                                      queue()))

    # ---- 4. an Internet "delayed" DSN about a legacy message -------------------------
    far_id = legacy_send("SMTP:far1@far.example", "Far away")
    gw("run")
    sent = [m for m in net.messages() if "far1@far.example" in m.rcpts]
    envid = far_id
    dsn = ("From: Mail Delivery System <MAILER-DAEMON@mx.far.example>\r\n"
           "To: jsmith@%s\r\nSubject: Delayed Mail (still being retried)\r\n"
           "Message-ID: <delay.%d@mx.far.example>\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n"
           "\r\n--B\r\nContent-Type: text/plain\r\n\r\nStill trying.\r\n"
           "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
           "Reporting-MTA: dns; mx.far.example\r\nOriginal-Envelope-Id: %s\r\n\r\n"
           "Final-Recipient: rfc822; far1@far.example\r\nAction: delayed\r\n"
           "Status: 4.4.7\r\nDiagnostic-Code: smtp; 421 busy\r\n"
           "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
           "From: J. Smith <jsmith@%s>\r\nTo: far1@far.example\r\nSubject: Far away\r\n"
           "--B--\r\n" % (DOMAIN, time.time_ns(), envid, DOMAIN)).encode()
    with smtplib.SMTP(HOST, port, timeout=20) as c:
        c.sendmail("", ["jsmith@" + DOMAIN], dsn)
    r = gw("run")
    got = jsmith("Far away")
    t.check(len(sent) == 1 and len(got) == 1 and
            got[0].get("Subject", [""])[0] == "Delayed: Far away" and
            got[0].get("Report", [""])[0].startswith("SMTP:far1@far.example: delayed"),
            "4: the Internet's delayed DSN becomes JSMITH's legacy \"Delayed:\" report: %s %s"
            % ([(m.get("Subject"), m.get("Report")) for m in got], r.out + r.err[-300:]))
    t.check(queue() == [], "4: nothing is left in the queue: %s" % queue())

    # ---- 5. delay_warning = 0 ----------------------------------------------------------
    legacy_send("SMTP:slow5@far.example", "Never warned")
    gw("run", conf=CONF_OFF)
    time.sleep(WAIT)
    r = gw("run", conf=CONF_OFF)
    t.check("delay notice" not in r.out and jsmith("Never warned") == [],
            "5: delay_warning = 0 makes no notice: %s" % r.out)
finally:
    smtpd.stop()
    net.stop()
t.done()
