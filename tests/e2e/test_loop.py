#!/usr/bin/python3
"""Never looped (issue 14 point 6, SPEC 3.2): what crossed more than hop_limit
nodes is stopped - a message is reported to its sender, a report is held and
the postmaster told once - and a report the Internet refuses goes to the
postmaster, never back to anyone.

A site example.com with CORP/HQ (JSMITH, ALICE, GONE; its POSTMASTER) and
hop_limit = 5; the "Internet" is a scripted server (smtpscript.py) as
relay_host that refuses RCPT for bad*@ with 550 and takes the rest.
Legacy mail is dropped into HQ's out/ as bundles written by pgbundle.py, so
that its hop trace is what the test says.

1. A legacy message from JSMITH with 5 hops (6 with the gateway) to
   SMTP:far@far.example and CORP/HQ/ALICE: nothing goes out, ALICE gets
   nothing; JSMITH gets one non-delivery report naming both with "hop limit
   reached (loop)"; the queue is empty.
2. A legacy report with 5 hops to SMTP:far2@far.example: held with "hop
   limit reached"; POSTMASTER gets one notice naming it; another run tells
   no one again; nothing went to the Internet.
3. An Internet message from bad1@ext.example to gone@ (deleted before the
   run): its DSN is refused by the Internet (550): it is held, POSTMASTER
   gets one notice with the DSN attached, and no report is made about the
   DSN (the Internet got no message from <>).
4. With 4 hops (5 with the gateway, the limit) a legacy message goes out.
"""
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgbundle as pg  # noqa: E402
import smtpscript  # noqa: E402

t = pg.Tally("loop")
POSTGATE = pg.gw_binary()
HOST = "127.0.0.1"
DOMAIN = "example.com"
HQ = "CORP/HQ"
top = pg.scratch()


net = smtpscript.RefusesBad(hostname="mx.ext.test")
net.start()
po_dir, key = pg.make_po(top, "CORP", "HQ", gateway="CORP/GW",
                         users=[("JSMITH", "J. Smith"), ("ALICE", "Alice"), ("GONE", "Gone")])
port = pg.free_port(HOST)
CONF = os.path.join(top, "postgate.conf")
with open(CONF, "w") as f:
    f.write("\n".join([
        "[site]", "name = HQ", "domains = " + DOMAIN, "state_dir = " + os.path.join(top, "state"),
        "gateway_po = CORP/GW", "user =", "proxy_templates = SMTP:%m@" + DOMAIN,
        "hop_limit = 5", "",
        "[smtpd]", "hostname = gw." + DOMAIN, "listen = %s:%d" % (HOST, port),
        "relay_networks = 127.0.0.0/8", "timeout = 10s", "",
        "[delivery]", "relay_host = [%s]:%d" % (HOST, net.port), "tls = none", "",
        "[postoffice %s]" % HQ, "dir = " + po_dir, "key_file = " + os.path.join(top, "hq.key"),
        "codepage = CP850", ""]))


def gw(*args, check=False):
    return pg.run_cmd([POSTGATE, "-c", CONF] + list(args), check=check)


def queue():
    return [json.loads(line) for line in gw("queue", "list", "-j", check=True).out.splitlines()
            if line.strip()]


def mailbox(mb):
    pg.run("-d", po_dir, "deliver", check=False)
    return pg.legacy_mailbox(po_dir, mb)


seq = [900]


def drop(entry):
    seq[0] += 1
    pg.drop(po_dir, pg.bundle_name(HQ, "CORP/GW", seq[0]),
            pg.bundle(HQ, "CORP/GW", seq[0], [(1, entry)], key), sub="out")


def hops(n):
    return ["CORP/N%d" % i for i in range(n)]


xml = os.path.join(top, "hq.xml")
pg.run("-d", po_dir, "export-dir", "-o", xml)
gw("dir", "import", xml, check=True)
smtpd = pg.Smtpd(CONF, HOST, port, os.path.join(top, "smtpd.log")).start()

try:
    # ---- 1. a legacy message over the limit is reported to its sender --------------
    seen = len(net.messages())
    drop(pg.message("CORP/HQ:LOOP1", "CORP/HQ/JSMITH",
                    [("SMTP:far@far.example", True), ("CORP/HQ/ALICE", True)],
                    subject=b"Round and round", body=b"Again.\r\n", hops=hops(5)))
    r = gw("run")
    got = [m for m in mailbox("JSMITH") if "Round and round" in " ".join(m.get("Subject", []))]
    rep = sorted(got[0].get("Report", [])) if len(got) == 1 else []
    t.check(len(got) == 1 and got[0]["Subject"] == ["Undeliverable: Round and round"] and
            got[0].get("About") == ["CORP/HQ:LOOP1"] and len(rep) == 2 and
            rep[0].startswith("CORP/HQ/ALICE: not delivered, hop limit reached (loop)") and
            rep[1].startswith("SMTP:far@far.example: not delivered, hop limit reached (loop)") and
            "6 hops, the limit is 5" in rep[0],
            "1: JSMITH gets one non-delivery report naming both, hop limit reached: %s %s"
            % ([(m.get("Subject"), m.get("Report")) for m in got], r.out + r.err[-300:]))
    t.check(len(net.messages()) == seen and not any(
            "Round and round" in " ".join(m.get("Subject", [])) for m in mailbox("ALICE")),
            "1: nothing went to the Internet or to ALICE")
    t.check(queue() == [], "1: nothing is left in the queue: %s" % queue())

    # ---- 2. a report over the limit is held, the postmaster told once -----------------
    drop(pg.message("CORP/HQ:LOOP2", "CORP/HQ/POSTMASTER", [("SMTP:far2@far.example", True)],
                    subject=b"Not delivered", body=b"A report.\r\n", cls=1, no_report=True,
                    about="CORP/GW:ABCDEF", hops=hops(5),
                    items=[("CORP/HQ/NOBODY", 1, 1, "no such mailbox")]))
    r = gw("run")
    q = queue()
    held = [x for x in q if all(rc["state"] == "held" for rc in x["recipients"])]
    t.check(len(q) == 1 and len(held) == 1 and
            "hop limit reached" in json.dumps(held[0]["recipients"]),
            "2: the report is held, saying hop limit reached: %s" % q)
    notes = [m for m in mailbox("POSTMASTER") if "Held by the gateway" in
             " ".join(m.get("Subject", []))]
    qid = held[0]["queue_id"] if held else "?"
    t.check(len(notes) == 1 and qid in notes[0]["Subject"][0] and
            "hop limit reached" in notes[0]["body"] and
            ("postgate queue show %s" % qid) in notes[0]["body"],
            "2: POSTMASTER gets one notice naming it and why: %s"
            % [(m.get("Subject"), m["body"][:300]) for m in notes])
    t.check("postmaster told: 1 held message" in r.out and notes and
            notes[0]["Subject"][0].startswith("Held by the gateway: report "),
            "2: run's summary says the postmaster was told, the subject says a report: %s"
            % r.out)
    show = gw("queue", "show", qid).out
    t.check("postmaster_told: " in show and "delay_notice:" not in show,
            "2: queue show says when the postmaster was told: %s" % show)
    gw("queue", "release", qid)
    gw("run")
    notes = [m for m in mailbox("POSTMASTER") if "Held by the gateway" in
             " ".join(m.get("Subject", []))]
    t.check(len(notes) == 1 and len(queue()) == 1,
            "2: released and stopped again, it is still held and no one is told twice: %d %s"
            % (len(notes), queue()))
    t.check(len(net.messages()) == seen, "2: nothing went to the Internet")
    gw("queue", "delete", qid, check=True)

    # ---- 3. a DSN the Internet refuses goes to the postmaster ---------------------------
    seen = len(net.messages())
    pg.smtp_send(HOST, port, "bad1@ext.example", [("gone@" + DOMAIN, None, None)],
                 "For Gone")
    pg.run("-d", po_dir, "deluser", "GONE")
    pg.run("-d", po_dir, "export-dir", "-o", xml)
    gw("dir", "import", xml, check=True)
    r = gw("run")
    gw("run")
    q = queue()
    dsn = [x for x in q if x["sender"] == ""]
    orig = [x for x in q if x["sender"] == "bad1@ext.example"]
    t.check(len(q) == 2 and len(dsn) == 1 and dsn[0]["recipients"][0]["state"] == "held" and
            "550 5.1.1" in json.dumps(dsn[0]["recipients"]) and
            orig[0]["recipients"][0]["report"] == dsn[0]["queue_id"],
            "3: the DSN to bad1@ is refused (550) and held; the message stays, reported: %s %s"
            % (q, r.out))
    qid = dsn[0]["queue_id"] if dsn else "?"
    notes = [m for m in mailbox("POSTMASTER") if qid in " ".join(m.get("Subject", []))]
    t.check(len(notes) == 1 and
            any(a.startswith(qid + ".eml") for a in notes[0].get("Attachment", [])) and
            "bad1@ext.example" in notes[0]["body"],
            "3: POSTMASTER gets one notice with the DSN attached: %s"
            % [(m.get("Subject"), m.get("Attachment")) for m in notes])
    time.sleep(0.3)
    t.check([m for m in net.messages()[seen:]] == [],
            "3: no report is made about the DSN: the Internet took no message: %s"
            % [(m.mail_from, m.rcpts) for m in net.messages()[seen:]])
    gw("queue", "delete", qid, check=True)
    t.check(queue() == [], "3: once the DSN is deleted, the message it was about leaves too: %s"
            % queue())

    # ---- 4. at the limit it goes ------------------------------------------------------
    seen = len(net.messages())
    drop(pg.message("CORP/HQ:LOOP4", "CORP/HQ/JSMITH", [("SMTP:far4@far.example", True)],
                    subject=b"Just in", body=b"Fine.\r\n", hops=hops(4)))
    gw("run")
    got = [m for m in net.messages()[seen:] if "far4@far.example" in m.rcpts]
    t.check(len(got) == 1 and len(re.findall(rb"^Received:", got[0].data, flags=re.M)) == 5,
            "4: with 4 hops (5 with the gateway) it goes, with 5 Received: fields: %s"
            % [len(re.findall(rb"^Received:", m.data, flags=re.M)) for m in got])
finally:
    smtpd.stop()
    net.stop()
t.done()
