#!/usr/bin/python3
"""Reports to SMTP senders (issue 14 point 2): what becomes of an Internet
message comes back to its envelope sender as an RFC 3464 DSN, as NOTIFY
asked, exactly once, from the null sender.

A site example.com with CORP/HQ (ALICE, BOB, CAROL, GONE, GONE2, DAVE and
the rest); `postgate smtpd` takes mail with smtplib (ENVID, RET, NOTIFY,
ORCPT); the "Internet" is a scripted server (smtpscript.py) as relay_host
that refuses RCPT for bad*@ and takes the rest: the DSNs arrive there.

1. A postoffice's non-delivery report becomes a DSN: a message to
   gone@example.com (NOTIFY=FAILURE, ORCPT Gone@Example.com, ENVID, RET=HDRS)
   and bob@; run bundles it; HQ's GONE is deleted before HQ delivers, so
   HQ sends its NDR; the next run turns it into one DSN to the sender:
   MAIL FROM:<>, multipart/report with Original-Envelope-Id, Final- and
   Original-Recipient, Action failed, Status 5.1.1, HQ's text as the
   diagnostic, the original's header section returned; and the run's
   summary counts it.  Nothing is left in the queue.
2. RET=FULL, NOTIFY=SUCCESS,FAILURE for carol@ (delivered) and gone2@
   (deleted), and bob@ with no NOTIFY: HQ's receipt gives one DSN
   "delivered" for carol only (bob asked for none), HQ's NDR one DSN
   "failed" for gone2 returning the message whole as message/rfc822.
3. NOTIFY=NEVER: the copy asks HQ for no report; nothing comes back.
4. The directory loses dave@ after the listener took mail for him: the run
   fails the recipient and sends a DSN (5.1.1) in the same run.
5. A relayed message refused for good by the Internet (550 5.1.1): a DSN
   with the server's reply as "smtp;" diagnostic.
6. report_window = 0: HQ's NDR about a message not remembered is delivered
   to the sender as an ordinary message from the null sender, not lost.
"""
import email
import email.policy
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dsn_check  # noqa: E402
import pgbundle as pg  # noqa: E402
import smtpscript  # noqa: E402

t = pg.Tally("dsn")
POSTGATE = pg.gw_binary()
HOST = "127.0.0.1"
DOMAIN = "example.com"
HQ = "CORP/HQ"
SENDER = "sender@ext.example"
top = pg.scratch()


net = smtpscript.RefusesBad(hostname="mx.ext.test")
net.start()
USERS = ["ALICE", "BOB", "CAROL", "GONE", "GONE2", "GONE3", "DAVE", "QUIET"]
po_dir, _ = pg.make_po(top, "CORP", "HQ", gateway="CORP/GW",
                       users=[(u, u.title()) for u in USERS])
port = pg.free_port(HOST)


def config(path, window=None):
    lines = ["[site]", "name = HQ", "domains = " + DOMAIN,
             "state_dir = " + os.path.join(top, "state"), "gateway_po = CORP/GW", "user =",
             "proxy_templates = SMTP:%m@" + DOMAIN]
    if window is not None:
        lines.append("report_window = " + window)
    lines += ["", "[smtpd]", "hostname = gw." + DOMAIN, "listen = %s:%d" % (HOST, port),
              "relay_networks = 127.0.0.0/8", "timeout = 10s", "",
              "[delivery]", "relay_host = [%s]:%d" % (HOST, net.port), "tls = none", "",
              "[postoffice %s]" % HQ, "dir = " + po_dir,
              "key_file = " + os.path.join(top, "hq.key"), "codepage = CP850", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


CONF = config(os.path.join(top, "postgate.conf"))
CONF_NO_WINDOW = config(os.path.join(top, "postgate-0.conf"), window="0")


def gw(*args, conf=CONF, check=True):
    return pg.run_cmd([POSTGATE, "-c", conf] + list(args), check=check)


def queue():
    return [json.loads(line) for line in gw("queue", "list", "-j").out.splitlines()
            if line.strip()]


def import_dir():
    xml = os.path.join(top, "hq.xml")
    pg.run("-d", po_dir, "export-dir", "-o", xml)
    gw("dir", "import", xml)


def send(rcpts, subject, **kw):
    """rcpts: [(address, NOTIFY or None, ORCPT or None)]; the Message-ID."""
    return pg.smtp_send(HOST, port, SENDER, rcpts, subject, **kw)


def reports_since(n):
    """The messages the Internet took from the null sender after the first n."""
    return [m for m in net.messages()[n:] if m.mail_from == ""]


def wait_for(n, count, timeout=10):
    end = time.time() + timeout
    while time.time() < end and len(reports_since(n)) < count:
        time.sleep(0.05)
    return reports_since(n)


import_dir()
smtpd = pg.Smtpd(CONF, HOST, port, os.path.join(top, "smtpd.log")).start()

try:
    # ---- 1. a postoffice's NDR becomes a DSN ------------------------------------------
    seen = len(net.messages())
    mid = send([("gone@" + DOMAIN, "FAILURE", "rfc822;Gone@Example.com"),
                ("bob@" + DOMAIN, None, None)], "Quarterly figures", envid="QF-2026-1",
               ret="HDRS")
    r = gw("run")
    pg.run("-d", po_dir, "deluser", "GONE")
    d = pg.run("-d", po_dir, "deliver", check=False)
    t.check("non-delivery report" in d.out + d.err,
            "1: HQ cannot deliver to GONE and reports it: %s %s" % (d.out, d.err))
    r = gw("run", check=False)
    got = wait_for(seen, 1)
    t.check(r.returncode == 0 and "1 delivery status notification about 1" in r.out,
            "1: the run turns HQ's report into one DSN and says so: %s %s"
            % (r.out, r.err[-400:]))
    t.check(len(got) == 1 and got[0].rcpts == [SENDER],
            "1: exactly one report reaches the sender, from <>: %s"
            % [(m.mail_from, m.rcpts, m.subject) for m in got])
    if got:
        try:
            rc = dsn_check.check_dsn(got[0].data, {
                "message": {"Original-Envelope-Id": "QF-2026-1",
                            "Reporting-MTA": "dns; gw." + DOMAIN},
                "recipients": [{"Final-Recipient": "rfc822; gone@" + DOMAIN,
                                "Original-Recipient": "rfc822; Gone@Example.com",
                                "Action": "failed", "Status": "5.1.1"}],
                "returned": "text/rfc822-headers"})
            t.check("GONE" in rc[0].get("diagnostic-code", ""),
                    "1: the diagnostic is HQ's own text: %r" % rc[0].get("diagnostic-code"))
            msg = got[0].parsed()
            returned = msg.get_payload()[2].get_payload(decode=True) or b""
            if not returned:
                returned = str(msg.get_payload()[2].get_payload()).encode()
            t.check(mid.encode() in returned and b"Quarterly figures" in returned,
                    "1: the original's header section is returned: %r" % returned[:300])
            t.check("Quarterly figures" in str(msg["Subject"]) and
                    msg["From"].addresses[0].username == "MAILER-DAEMON",
                    "1: the subject names the original, From MAILER-DAEMON: %s / %s"
                    % (msg["Subject"], msg["From"]))
            t.check(True, "1: the DSN parses as multipart/report with the fields sent")
        except AssertionError as e:
            t.check(False, "1: the DSN parses as multipart/report with the fields sent: %s" % e)
    t.check(queue() == [], "1: nothing is left in the queue: %s" % queue())

    # ---- 2. a receipt and an NDR, RET=FULL ----------------------------------------------
    seen = len(net.messages())
    body = "The whole text, returned.\r\n" * 20
    mid = send([("carol@" + DOMAIN, "SUCCESS,FAILURE", None),
                ("gone2@" + DOMAIN, "SUCCESS,FAILURE", None),
                ("bob@" + DOMAIN, None, None)], "Full return", ret="FULL", body=body)
    gw("run")
    pg.run("-d", po_dir, "deluser", "GONE2")
    pg.run("-d", po_dir, "deliver", check=False)
    r = gw("run", check=False)
    got = wait_for(seen, 2)
    kinds = {}
    for m in got:
        try:
            rc = dsn_check.check_dsn(m.data)
            for x in rc:
                kinds.setdefault(x["action"], []).append((x["final-recipient"], x["status"], m))
        except AssertionError as e:
            kinds.setdefault("bad", []).append(str(e))
    t.check(len(got) == 2 and sorted(kinds) == ["delivered", "failed"],
            "2: two DSNs, one delivered and one failed: %s"
            % {k: [x[:2] for x in v] if k != "bad" else v for k, v in kinds.items()})
    t.check([x[:2] for x in kinds.get("delivered", [])] ==
            [("rfc822; carol@" + DOMAIN, "2.0.0")],
            "2: 'delivered' for carol, who asked SUCCESS, and not for bob: %s"
            % [x[:2] for x in kinds.get("delivered", [])])
    fails = kinds.get("failed", [])
    t.check([x[:2] for x in fails] == [("rfc822; gone2@" + DOMAIN, "5.1.1")],
            "2: 'failed' for gone2: %s" % [x[:2] for x in fails])
    if fails:
        parts = fails[0][2].parsed().get_payload()
        inner = parts[2] if len(parts) == 3 else None
        whole = inner.get_payload()[0].as_bytes() if inner is not None and \
            inner.get_content_type() == "message/rfc822" else b""
        t.check(b"The whole text, returned." in whole and mid.encode() in whole,
                "2: RET=FULL returns the message whole as message/rfc822: %s %r"
                % (inner.get_content_type() if inner is not None else None, whole[:200]))
    t.check(queue() == [], "2: nothing is left in the queue: %s" % queue())

    # ---- 3. NOTIFY=NEVER -------------------------------------------------------------------
    seen = len(net.messages())
    send([("gone3@" + DOMAIN, "NEVER", None)], "Never tell")
    gw("run")
    pg.run("-d", po_dir, "deluser", "GONE3")
    d = pg.run("-d", po_dir, "deliver", check=False)
    r = gw("run", check=False)
    time.sleep(0.5)
    t.check(reports_since(seen) == [] and queue() == [],
            "3: NOTIFY=NEVER: no report comes back, nothing is left: %s %s"
            % ([m.subject for m in reports_since(seen)], queue()))
    t.check("asked for no non-delivery report" in d.out + d.err,
            "3: the copy asked HQ for no report: %s %s" % (d.out, d.err))

    # ---- 4. the directory lost the recipient -------------------------------------------
    seen = len(net.messages())
    send([("dave@" + DOMAIN, None, None)], "For Dave", envid="DAVE-1")
    pg.run("-d", po_dir, "deluser", "DAVE")
    import_dir()
    r = gw("run", check=False)
    got = wait_for(seen, 1)
    ok = False
    try:
        ok = len(got) == 1 and bool(dsn_check.check_dsn(got[0].data, {
            "message": {"Original-Envelope-Id": "DAVE-1"},
            "recipients": [{"Final-Recipient": "rfc822; dave@" + DOMAIN,
                            "Action": "failed", "Status": "5.1.1"}],
            "returned": "text/rfc822-headers"}))
    except AssertionError as e:
        print("  4:", e)
    t.check(ok and r.returncode == 0,
            "4: a recipient the directory lost gets a DSN (5.1.1) in the same run: %s %s"
            % ([m.subject for m in got], r.out))
    t.check(queue() == [], "4: nothing is left in the queue: %s" % queue())

    # ---- 5. relayed, refused by the Internet -------------------------------------------
    seen = len(net.messages())
    send([("bad1@far.example", None, "rfc822;Bad1@Far.Example")], "Relayed and refused")
    r = gw("run", check=False)
    if not wait_for(seen, 1, timeout=1):
        r = gw("run", check=False)
    got = wait_for(seen, 1)
    ok = False
    try:
        rc = dsn_check.check_dsn(got[0].data, {
            "recipients": [{"Final-Recipient": "rfc822; bad1@far.example",
                            "Original-Recipient": "rfc822; Bad1@Far.Example",
                            "Action": "failed", "Status": "5.1.1"}]}) if len(got) == 1 else []
        ok = bool(rc) and rc[0].get("diagnostic-code", "").startswith("smtp; 550 5.1.1")
    except AssertionError as e:
        print("  5:", e)
    t.check(ok, "5: a relayed message refused for good gives a DSN with the server's reply: "
            "%s" % [(m.subject, m.data[:0]) for m in got])
    t.check(queue() == [], "5: nothing is left in the queue: %s" % queue())

    # ---- 6. report_window = 0: delivered as a message ----------------------------------
    seen = len(net.messages())
    send([("quiet@" + DOMAIN, None, None)], "Not remembered")
    gw("run", conf=CONF_NO_WINDOW)
    pg.run("-d", po_dir, "deluser", "QUIET")
    pg.run("-d", po_dir, "deliver", check=False)
    r = gw("run", conf=CONF_NO_WINDOW, check=False)
    got = wait_for(seen, 1)
    t.check(len(got) == 1 and got[0].rcpts == [SENDER] and
            got[0].parsed().get_content_type() != "multipart/report" and
            "QUIET" in got[0].data.decode("utf-8", "replace"),
            "6: a report about a message not remembered reaches the sender as an ordinary "
            "message from <>: %s" % [(m.subject, m.rcpts) for m in got])
    t.check(queue() == [], "6: nothing is left in the queue: %s" % queue())
finally:
    smtpd.stop()
    net.stop()
t.done()
