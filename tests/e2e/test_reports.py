#!/usr/bin/python3
"""Reports, SMTP failure -> legacy non-delivery report (issue 14 points 1, 5,
8): a legacy message whose Internet recipients are refused for good comes
back to its sender as one legacy NDR, exactly once, readable.

A site with CORP/HQ (CP850: JSMITH "Jürgen Smith") and CORP/SALES
(CP1252: ALICE); [delivery] relay_host is a scripted server
(smtpscript.py) that refuses RCPT for bad*@ext.example with "550 5.1.1" and takes the
rest.

1. JSMITH sends to SMTP:good@, SMTP:bad1@, SMTP:bad2@ext.example and ALICE,
   with a subject in umlauts and an attachment.  `run --no-delivery`, then
   `queue retry`: good is sent, bad1 and bad2 are failed and reported: the
   queue shows both "reported" naming one report, and the report itself (a
   non-delivery report about the SMTP message, routed to CORP/HQ as
   CORP/HQ/JSMITH); queue retry's summary counts it.  The next run bundles
   it; HQ delivers it: JSMITH has exactly one new message, class
   non-delivery report, about the original's legacy id, subject
   "Undeliverable: " + the subject, one Report: line per refused recipient
   (the address JSMITH wrote, unknown recipient, the server's 550 5.1.1
   reply), the attachment returned with its SHA-256, the original text; no
   report may be made about it.  Then the queue is empty.
2. The same failing message sent twice gives two reports (SPEC 3.5), made
   by `run` alone (delivery and the report's bundle in one run); the second
   time the address has a trailing space, and the report names it without.
3. --no-ndr: a refusal gives no report; the recipient is done and the queue
   empties; JSMITH gets nothing.
4. A report that cannot be made: the sender's postoffice has lost its
   [postoffice] group before the failure: the recipient is held with
   "report could not be made" and the server's reply (queue list -j, queue
   show), the run's summary says so, nothing is lost.
5. A legacy report passes through the gateway as a hub: SALES cannot
   deliver JSMITH's message to a user it deleted and sends its own
   non-delivery report; run carries it to HQ unchanged, and JSMITH has it.
6. Internet reports about a legacy message (issue 14 point 3): JSMITH's
   message to three addresses is taken by the Internet; then an RFC 3464
   DSN (by ENVID) and a real qmail bounce from tests/bounces (by the
   returned Message-ID) come back through `postgate submit -f '<>'`: JSMITH
   gets two legacy non-delivery reports about his message, each naming the
   address he wrote with the Internet's reason; a DSN about a message never
   sent reaches him as an ordinary message.
"""
import hashlib
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgbundle as pg  # noqa: E402
import smtpscript  # noqa: E402

t = pg.Tally("reports")
POSTGATE = pg.gw_binary()
DOMAIN = "example.com"
HQ, SALES = "CORP/HQ", "CORP/SALES"
top = pg.scratch()


srv = smtpscript.RefusesBad(hostname="mx.ext.test")
srv.start()

po_dir, key_file = {}, {}
for po, cp, users in ((HQ, "CP850", [("JSMITH", "Jürgen Smith")]),
                      (SALES, "CP1252", [("ALICE", "Alice Ärgerlich")])):
    short = po.split("/")[1]
    po_dir[po], _ = pg.make_po(top, "CORP", short, codepage=cp, gateway="CORP/GW", users=users)
    key_file[po] = os.path.join(top, short.lower() + ".key")


def config(path, with_hq=True):
    lines = ["[site]", "name = HQ", "domains = " + DOMAIN,
             "state_dir = " + os.path.join(top, "state"), "gateway_po = CORP/GW", "user =",
             "proxy_templates = SMTP:%m@" + DOMAIN, "postmaster = CORP/SALES/ALICE", "",
             "[smtpd]", "hostname = gw." + DOMAIN, "",
             "[delivery]", "relay_host = [127.0.0.1]:%d" % srv.port, "tls = none", ""]
    for po in ((HQ, SALES) if with_hq else (SALES,)):
        lines += ["[postoffice %s]" % po, "dir = " + po_dir[po], "key_file = " + key_file[po],
                  "codepage = " + ("CP850" if po == HQ else "CP1252"), ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


CONF = config(os.path.join(top, "postgate.conf"))
CONF_NO_HQ = config(os.path.join(top, "postgate-no-hq.conf"), with_hq=False)


def gw(*args, conf=CONF, check=True):
    return pg.run_cmd([POSTGATE, "-c", conf] + list(args), check=check)


def queue(conf=CONF):
    return [json.loads(line) for line in gw("queue", "list", "-j", conf=conf).out.splitlines()
            if line.strip()]


def send(*args):
    p = pg.run("-d", po_dir[HQ], "send", "--from", "JSMITH", *args, check=False)
    m = re.match(r"sent (\S+?)(?:;|$)", p.out.strip())
    return p, (m.group(1) if m else None)


def mailbox(po, mb):
    return pg.legacy_mailbox(po_dir[po], mb)


def deliver(po):
    return pg.run("-d", po_dir[po], "deliver", check=False)


for po in (HQ, SALES):
    xml = os.path.join(top, po.split("/")[1] + ".xml")
    pg.run("-d", po_dir[po], "export-dir", "-o", xml)
    gw("dir", "import", xml)

# ---- 1. two refused, one sent, one legacy: one NDR ---------------------------------------
SUBJECT = "Preise für Zürich"
BODY = "Hallo,\r\nanbei die Preise für Zürich.\r\n\r\nGrüße, Jürgen\r\n"
ATT = bytes((i * 13 + 5) % 256 for i in range(3000))
with open(os.path.join(top, "body.txt"), "w", encoding="utf-8", newline="") as f:
    f.write(BODY)
with open(os.path.join(top, "preise.bin"), "wb") as f:
    f.write(ATT)
p, legacy_id = send("--to", "SMTP:good@ext.example,SMTP:bad1@ext.example,"
                    "SMTP:bad2@ext.example,CORP/SALES/ALICE", "--subject", SUBJECT,
                    "--body-file", os.path.join(top, "body.txt"),
                    "--attach", os.path.join(top, "preise.bin"))
t.check(p.returncode == 0 and legacy_id, "1: postgate-po send: %s %s" % (p.out, p.err))
r = gw("run", "--no-delivery")
q = queue()
out = [m for m in q if m["sender"] == "jsmith@" + DOMAIN]
t.check(len(out) == 1 and out[0].get("report_to") == "CORP/HQ/JSMITH",
        "1: run --no-delivery queues one SMTP message, its report_to the sender "
        "CORP/HQ/JSMITH: %s" % [(m["queue_id"], m.get("report_to")) for m in q])
orig = out[0]["queue_id"] if out else "?"
r = gw("queue", "retry", check=False)
t.check(r.returncode == 0 and "1 recipient sent" in r.out and "2 failed" in r.out,
        "1: queue retry: 1 sent, 2 failed: %d %s %s" % (r.returncode, r.out, r.err[-500:]))
t.check("1 non-delivery report queued about 2 recipients" in r.out,
        "1: queue retry's summary: one report about 2 recipients: %r" % r.out)
q = queue()
o = [m for m in q if m["queue_id"] == orig]
rows = {x["address"]: x for x in (o[0]["recipients"] if o else [])}
reps = [m for m in q if m.get("class") == "non-delivery report"]
rep = reps[0] if len(reps) == 1 else {}
t.check(len(reps) == 1 and rep.get("about") == orig and rep.get("sender") == "" and
        [(x["address"], x["state"]) for x in rep.get("recipients", [])] ==
        [("CORP/HQ/JSMITH", "routed")],
        "1: one report in the queue: a non-delivery report about %s from <>, to "
        "CORP/HQ/JSMITH, routed: %s" % (orig, [(m["queue_id"], m.get("class"), m.get("about"),
                                                m["recipients"]) for m in reps]))
t.check(all(rows.get(a, {}).get("state") == "reported" and
            rows.get(a, {}).get("report") == rep.get("queue_id")
            for a in ("bad1@ext.example", "bad2@ext.example")),
        "1: bad1 and bad2 are reported, both naming that report: %s"
        % [(a, x["state"], x.get("report"), x.get("reason")) for a, x in rows.items()])
show = gw("queue", "show", orig, check=False).out
t.check(re.search(r"<bad1@ext\.example> state=reported .*report=%s" % rep.get("queue_id", "?"),
                  show) is not None,
        "1: queue show names the report for bad1: %s" % show[:600])
show = gw("queue", "show", rep.get("queue_id", "?"), check=False).out
t.check(("class: non-delivery report about %s" % orig) in show,
        "1: queue show of the report says what it reports on: %s" % show[:400])
r = gw("run", "--no-delivery")
t.check(re.search(r"^  CORP/HQ: 1 copy in 1 bundle$", r.out, flags=re.M) is not None,
        "1: the next run bundles the report for CORP/HQ: %r" % r.out)
t.check(queue() == [], "1: then the queue is empty (reported -> done, the original gone): %s"
        % [(m["queue_id"], [(x["address"], x["state"]) for x in m["recipients"]])
           for m in queue()])
d = deliver(HQ)
got = mailbox(HQ, "JSMITH")
ndrs = [m for m in got if m.get("Class", [""])[0].startswith("non-delivery report")]
t.check(d.returncode == 0 and len(got) == 1 and len(ndrs) == 1,
        "1: HQ delivers it: JSMITH has exactly one message, a non-delivery report: %s"
        % [(m.get("Class"), m.get("Subject")) for m in got])
n = ndrs[0] if ndrs else {}
t.check(n.get("About") == [legacy_id],
        "1: About: the original's legacy id %s: %s" % (legacy_id, n.get("About")))
t.check(n.get("Subject") == ["Undeliverable: " + SUBJECT],
        "1: Subject: Undeliverable: %s (CP850 keeps the umlauts): %s" % (SUBJECT,
                                                                          n.get("Subject")))
t.check("no report may be made about it" in n.get("Class", [""])[0],
        "1: no report may be made about it: %s" % n.get("Class"))
items = sorted(n.get("Report", []))
t.check(len(items) == 2 and all(
    re.match(r"SMTP:bad%d@ext\.example: not delivered, unknown recipient: 550 5\.1\.1 "
             r"<bad%d@ext\.example>: Recipient address rejected" % (i + 1, i + 1), items[i])
    for i in range(min(2, len(items)))),
    "1: one Report: line per refused recipient, as JSMITH wrote it, unknown recipient, "
    "the server's reply: %s" % items)
t.check(len(n.get("Hop", [])) == 3,
        "1: the report carries the original's hop trace (CORP/HQ, the gateway's crossing to "
        "SMTP) and one hop of its own back (SPEC 3.2): %s" % n.get("Hop"))
sha = hashlib.sha256(ATT).hexdigest()
t.check(any(("sha256 %s" % sha) in a for a in n.get("Attachment", [])),
        "1: the attachment is returned, SHA-256 intact: %s" % n.get("Attachment"))
t.check("Preise für Zürich" in n.get("body", "") and "bad1@ext.example" in n.get("body", ""),
        "1: the text names what failed and returns the original text: %r"
        % n.get("body", "")[:400])
t.check(len([m for m in srv.messages() if "good@ext.example" in m.rcpts]) == 1,
        "1: good@ext.example got the message once")

# ---- 2. the same failure twice: two reports, each from one run ----------------------------
ids = []
for i in range(2):
    # the second with a stray trailing space (SPEC 3.5): the same address
    p, lid = send("--to", "SMTP:bad3@ext.example" + (" " if i else ""), "--subject", "twice")
    ids.append(lid)
    r = gw("run", check=False)
    t.check(r.returncode == 0 and "1 non-delivery report queued about 1 recipient" in r.out and
            re.search(r"^  CORP/HQ: 1 copy in 1 bundle$", r.out, flags=re.M),
            "2: send #%d to a refused address: run delivers, reports and bundles the report "
            "in one go: %s %s" % (i + 1, r.out, r.err[-300:]))
deliver(HQ)
abouts = sorted(m.get("About", [""])[0] for m in mailbox(HQ, "JSMITH")
                if m.get("Subject") == ["Undeliverable: twice"])
t.check(abouts == sorted(ids), "2: two reports, one about each message: %s (sent %s)"
        % (abouts, ids))
items = [m.get("Report") for m in mailbox(HQ, "JSMITH") if m.get("Subject") == ["Undeliverable: twice"]]
t.check(len(items) == 2 and all(i and i[0].startswith("SMTP:bad3@ext.example: not delivered")
                                for i in items),
        "2: both name SMTP:bad3@ext.example, the trailing space gone: %s" % items)

# ---- 3. --no-ndr: none ----------------------------------------------------------------------
before = len(mailbox(HQ, "JSMITH"))
p, lid = send("--to", "SMTP:bad4@ext.example", "--subject", "quiet", "--no-ndr")
r = gw("run", check=False)
t.check(r.returncode == 0 and "1 with none asked for" in r.out and queue() == [],
        "3: --no-ndr: refused, no report, the queue empties: %s %s" % (r.out, queue()))
deliver(HQ)
t.check(len(mailbox(HQ, "JSMITH")) == before, "3: JSMITH got nothing")

# ---- 4. no report can be made: held, visible, not lost ----------------------------------
p, lid = send("--to", "SMTP:bad5@ext.example", "--subject", "lost?")
gw("run", "--no-delivery")
r = gw("queue", "retry", conf=CONF_NO_HQ, check=False)
q = queue()
rows = [x for m in q for x in m["recipients"] if x["address"] == "bad5@ext.example"]
t.check(len(rows) == 1 and rows[0]["state"] == "held" and
        "report could not be made" in (rows[0].get("reason") or "") and
        "550 5.1.1" in (rows[0].get("reason") or "") and "CORP/HQ" in rows[0]["reason"],
        "4: the sender's postoffice without [postoffice]: held, saying no report could be "
        "made, why, and the server's reply: %s" % rows)
t.check("1 held: report could not be made" in r.out,
        "4: queue retry's summary says so: %r" % r.out)

# ---- 5. a legacy report passes through: SALES's NDR reaches JSMITH at HQ ------------------
pg.run("-d", po_dir[SALES], "adduser", "GONE", "--name", "Soon Gone")
xml = os.path.join(top, "SALES2.xml")
pg.run("-d", po_dir[SALES], "export-dir", "-o", xml)
gw("dir", "import", xml)
before = len(mailbox(HQ, "JSMITH"))
p, lid = send("--to", "CORP/SALES/GONE", "--subject", "to a user SALES deletes")
gw("run")
pg.run("-d", po_dir[SALES], "deluser", "GONE")
d = deliver(SALES)
r = gw("run", check=False)
t.check(r.returncode == 0 and re.search(r"^  CORP/HQ: 1 copy in 1 bundle$", r.out, flags=re.M),
        "5: SALES cannot deliver to GONE and reports it; run takes SALES's report to HQ: %s %s"
        % (r.out, r.err[-300:]))
deliver(HQ)
got = mailbox(HQ, "JSMITH")
new = got[before:]
t.check(len(new) == 1 and new[0].get("About") == [lid] and
        new[0].get("Class", [""])[0].startswith("non-delivery report") and
        any(x.startswith("CORP/SALES/GONE: not delivered") for x in new[0].get("Report", [])),
        "5: JSMITH has SALES's non-delivery report about %s, naming CORP/SALES/GONE: %s"
        % (lid, [(m.get("Class"), m.get("About"), m.get("Report")) for m in new]))
left = [m for m in queue() if not any(x["address"] == "bad5@ext.example" for x in m["recipients"])]
t.check(left == [], "5: and nothing of it is left in the queue: %s" % left)

# ---- 6. Internet reports about a legacy message become legacy NDRs -------------------------
before = len(mailbox(HQ, "JSMITH"))
seen = len(srv.messages())
p, lid6 = send("--to", "SMTP:later@ext.example,SMTP:later2@ext.example,SMTP:fine@ext.example",
               "--subject", "bounced later")
gw("run")
got = srv.messages()[seen:]
mid6 = got[0].message_id if got else "<none@none>"
t.check(len(got) == 1 and sorted(got[0].rcpts) == ["fine@ext.example", "later2@ext.example",
                                                    "later@ext.example"],
        "6: the Internet takes all three: %s" % [(m.rcpts, m.message_id) for m in got])
DSN = ("From: Mail Delivery Subsystem <MAILER-DAEMON@mx.ext.test>\r\n"
       "To: jsmith@example.com\r\nSubject: Delivery Status Notification (Failure)\r\n"
       "Message-ID: <dsn6@mx.ext.test>\r\nMIME-Version: 1.0\r\n"
       "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b6\"\r\n\r\n"
       "--b6\r\nContent-Type: text/plain\r\n\r\nThe mailbox is full.\r\n"
       "--b6\r\nContent-Type: message/delivery-status\r\n\r\n"
       "Reporting-MTA: dns; mx.ext.test\r\nOriginal-Envelope-Id: %s\r\n\r\n"
       "Final-Recipient: rfc822; later@ext.example\r\nAction: failed\r\nStatus: 5.2.2\r\n"
       "Diagnostic-Code: smtp; 552 5.2.2 <later@ext.example>: mailbox full\r\n\r\n"
       "--b6\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: %s\r\n"
       "Subject: bounced later\r\n\r\n--b6--\r\n") % (lid6, mid6)
with open(os.path.join(os.environ.get("srcdir", "."), "tests", "bounces",
                       "perl-qmail.unknown.eml"), "rb") as f:
    QMAIL = f.read().replace(b"recipient@example.net", b"later2@ext.example").replace(
        b"200608282008.k7SK8Bbu032023@somehost.example.com", mid6.strip("<>").encode())
STRAY = DSN.replace(lid6, "CORP/HQ:19990101000000.000000000001").replace(
    mid6, "<never@sent>").replace("dsn6@", "dsn7@")
for data in (DSN.encode(), QMAIL, STRAY.encode()):
    pg.run_cmd([POSTGATE, "-c", CONF, "submit", "-f", "<>", "jsmith@example.com"], input=data)
r = gw("run", check=False)
t.check(r.returncode == 0 and "2 non-delivery reports queued about 2 recipients" in r.out,
        "6: two Internet reports (RFC 3464, and a real qmail bounce) become two legacy "
        "reports: %s %s" % (r.out, r.err[-500:]))
deliver(HQ)
new = mailbox(HQ, "JSMITH")[before:]
ndrs = [m for m in new if m.get("Class", [""])[0].startswith("non-delivery report")]
lines = sorted(x for m in ndrs for x in m.get("Report", []))
t.check(len(ndrs) == 2 and all(m.get("About") == [lid6] for m in ndrs) and len(lines) == 2 and
        lines[0].startswith("SMTP:later2@ext.example: not delivered, unknown recipient") and
        lines[1].startswith("SMTP:later@ext.example: not delivered") and
        "552 5.2.2" in lines[1],
        "6: JSMITH has two non-delivery reports about %s, each naming the address he wrote "
        "with the Internet's reason: %s" % (lid6, [(m.get("About"), m.get("Report"))
                                                 for m in ndrs]))
others = [m for m in new if m not in ndrs]
t.check(len(others) == 1 and "Delivery Status Notification" in " ".join(
        others[0].get("Subject", [])),
        "6: a report about a message never sent reaches JSMITH as an ordinary message: %s"
        % [(m.get("Class"), m.get("Subject")) for m in others])
left = [m for m in queue() if not any(x["address"] == "bad5@ext.example" for x in m["recipients"])]
t.check(left == [], "6: nothing is left in the queue: %s" % left)

srv.stop()
t.done()
