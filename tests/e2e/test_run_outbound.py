"""postgate run, outbound: legacy mail from the postoffices' out/ to the
Internet and through the gateway as a hub (SPEC 2 Outbound, Directory sync;
issue 6 "Done when": "A legacy message from postgate-po send ...").

A site with CORP/HQ (CP850) and CORP/SALES (CP1252), users with umlauts in
their names; HQ's export carries a custom recipient EXT-1 (target
ann@ext.example), imported with `postgate dir import`.

1. `postgate-po -d hq send --from JSMITH --to "SMTP:ext@partner.example,
   CORP/HQ/EXT-1,CORP/SALES/ALICE" --subject "Grüße €" --body-file F
   --attach a.bin`, then `run`: exactly one outbound MIME message queued
   (queue list -j: sender JSMITH's primary proxy, recipients
   ext@partner.example and the custom's target, smtp-pending); its headers
   (queue show): From: the primary proxy with the display name, Subject: the
   subject as sent (HQ is CP850, which has no €: postgate-po made it ?),
   the Message-ID derived from the source postoffice and the legacy id,
   one Received: per legacy hop plus the gateway's; exactly one bundle for
   CORP/SALES, whose delivery gives ALICE one copy with subject, body and
   attachment (SHA-256) intact, converted CP850 -> CP1252; the legacy
   message itself has left the queue.  Should postgate-po refuse that send,
   it is a failure, and the rest goes on with the same message written by
   pgbundle.py (the independent implementation) into HQ's out/.
2. The other way round, CP1252 -> CP850: ALICE writes "5 €" to JSMITH and an
   SMTP: address: the Internet message keeps the €, JSMITH's copy has it
   transliterated (EUR), not dropped.
3. The same bundle twice is applied once: dropped again into out/ after it
   was applied, and two copies under two names in one run.
4. A bundle in out/ with a bad HMAC goes to out's sibling bad/ with a .why,
   and nothing of it is applied.
5. `postgate-po -d sales export-dir --send`: the directory export in a
   bundle is imported by run; a user added at SALES becomes routable
   (dir route), with the display name as written, and a message without a
   body from HQ (CP850) reaches that user at SALES (CP1252).
"""
import email.parser
import email.policy
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgbundle as pg  # noqa: E402

t = pg.Tally("run-outbound")
POSTGATE = os.environ.get("POSTGATE") or os.path.join(os.getcwd(), "postgate")
DOMAIN = "example.com"
HOST = "gw.example.com"
HQ, SALES = "CORP/HQ", "CORP/SALES"
top = pg.scratch()
T0 = time.time()

po_dir, key_file = {}, {}
for po, cp, users in ((HQ, "CP850", [("JSMITH", "Jürgen Smith"), ("MUELLER", "Jörg Müller")]),
                      (SALES, "CP1252", [("ALICE", "Alice Müller-Lüdenscheidt"),
                                         ("BOB", "Bärbel Öztürk")])):
    short = po.split("/")[1]
    po_dir[po], _ = pg.make_po(top, "CORP", short, codepage=cp, gateway="CORP/GW", users=users)
    key_file[po] = os.path.join(top, short.lower() + ".key")
CONF = os.path.join(top, "postgate.conf")
with open(CONF, "w") as f:
    f.write("\n".join([
        "[site]", "name = HQ", "domains = " + DOMAIN, "state_dir = " + os.path.join(top, "state"),
        "gateway_po = CORP/GW", "user =", "proxy_templates = SMTP:%m@" + DOMAIN, "",
        "[smtpd]", "hostname = " + HOST, "",
        "[postoffice %s]" % HQ, "dir = " + po_dir[HQ], "key_file = " + key_file[HQ],
        "codepage = CP850", "",
        "[postoffice %s]" % SALES, "dir = " + po_dir[SALES], "key_file = " + key_file[SALES],
        "codepage = CP1252", ""]))


def gw(*args, check=True):
    p = subprocess.run([POSTGATE, "-c", CONF] + list(args), capture_output=True, timeout=120)
    p.out = p.stdout.decode("utf-8", "replace")
    p.err = p.stderr.decode("utf-8", "replace")
    if check and p.returncode != 0:
        raise RuntimeError("postgate %s: exit %d\n%s%s" % (" ".join(args), p.returncode,
                                                          p.out, p.err))
    return p


def run():
    p = gw("run", "--no-delivery", check=False)
    p.errors = [l for l in p.err.splitlines() if l.strip() and "postgate: info:" not in l
                and "postgate: warning: running as root" not in l]
    return p


def queue():
    return [json.loads(l) for l in gw("queue", "list", "-j").out.splitlines() if l.strip()]


def files(po, sub):
    d = os.path.join(po_dir[po], sub)
    return sorted(n for n in os.listdir(d) if not n.startswith("."))


def read(path):
    with open(path, "rb") as f:
        return f.read()


def dump(po, path):
    """(verified?, [entry blocks]) of postgate-po dump --key-file."""
    p = pg.run("dump", path, "--key-file", key_file[po], check=False)
    return ("hmac:        verified with the key" in p.out,
            re.split(r"^=== entry \d+: \w+ ===$", p.out, flags=re.M)[1:])


def field(block, name):
    return re.findall(r"^%s:\s+(.*)$" % name, block, flags=re.M)


def mailbox(po, mb, extract=None):
    """The messages of a mailbox: [{field: [values]}, with 'body']."""
    return pg.legacy_mailbox(po_dir[po], mb, extract)


def headers(qid):
    """The header section queue show prints, parsed (RFC 2047 decoded)."""
    out = gw("queue", "show", qid).out
    i = out.find("\nReceived:")
    if i < 0:
        i = out.find("\nFrom:")
    return email.parser.HeaderParser(policy=email.policy.default).parsestr(out[i + 1:])


def msgid_for(po, legacy_id):
    h = hashlib.sha256(po.encode() + b"\0" + legacy_id.encode() + b"\0").hexdigest()[:16]
    return r"<[A-Za-z0-9-]+\.%s\.%s@%s>" % (re.escape(po.replace("/", "-")), h, re.escape(HOST))


def send(po, *args):
    """postgate-po send; (process, legacy id or None, bundle name or None)."""
    p = pg.run("-d", po_dir[po], "send", *args, check=False)
    m = re.match(r"sent (\S+?)(?:; bundle for the gateway: out/(\S+))?$", p.out.strip())
    return p, (m.group(1) if m else None), (m.group(2) if m else None)


# ---- setup: the directory ----------------------------------------------------------------
xml = os.path.join(top, "hq.xml")
pg.run("-d", po_dir[HQ], "export-dir", "-o", xml)
with open(xml, encoding="utf-8") as f:
    doc = f.read()
with open(xml, "w", encoding="utf-8") as f:
    f.write(doc.replace("</sync>", '  <custom name="EXT-1" display="Ann" '
                        'target="ann@ext.example"/>\n</sync>'))
gw("dir", "import", xml)
xml = os.path.join(top, "sales.xml")
pg.run("-d", po_dir[SALES], "export-dir", "-o", xml)
gw("dir", "import", xml)
r = gw("dir", "route", "CORP/HQ/EXT-1", check=False)
t.check(r.out.strip() == "smtp <ann@ext.example>",
        "setup: the custom recipient CORP/HQ/EXT-1 routes to its target: %r" % r.out)
gal = os.path.join(top, "gal-hq.xml")
gw("dir", "export", "--po", HQ, "-o", gal)
pg.run("-d", po_dir[HQ], "import-gal", gal)
t.check("CORP/HQ/EXT-1\tSMTP:" in pg.run("-d", po_dir[HQ], "gal").out,
        "setup: HQ's global address list has its custom recipient")

# ---- 1. HQ -> SMTP, a custom recipient, a user at SALES -------------------------------------
SUBJECT = "Grüße €"
BODY = "Sehr geehrte Frau Müller,\r\nanbei die Übersicht (5 €).\r\n\r\nGrüße\r\nJürgen\r\n"
ATT = bytes((i * 7 + 3) % 256 for i in range(5000)) + b"\x00\xff\r\n.\r\n"
# HQ's codepage CP850 has no €: postgate-po send makes it ? (postgate-po(1)); the
# rest survives to the Internet and to SALES.
SUBJECT_SENT = SUBJECT.encode("cp850", "replace").decode("cp850")
BODY_SENT = BODY.encode("cp850", "replace").decode("cp850")
body_file = os.path.join(top, "body.txt")
with open(body_file, "w", encoding="utf-8", newline="") as f:
    f.write(BODY)
att_file = os.path.join(top, "a.bin")
with open(att_file, "wb") as f:
    f.write(ATT)
p, legacy_id, bundle = send(HQ, "--from", "JSMITH", "--to",
                            "SMTP:ext@partner.example,CORP/HQ/EXT-1,CORP/SALES/ALICE",
                            "--subject", SUBJECT, "--body-file", body_file, "--attach", att_file)
sent = t.check(p.returncode == 0 and legacy_id and bundle,
               "1: postgate-po send from JSMITH to SMTP:ext@partner.example, the custom "
               "recipient CORP/HQ/EXT-1 of HQ's own export and CORP/SALES/ALICE is sent, with a "
               "bundle for the gateway: exit %d %s %s" % (p.returncode, p.out.strip(),
                                                          p.err.strip()))
if not sent:
    # So that the rest is still tested: the message postgate-po would have
    # sent, written by the independent implementation (pgbundle.py), the
    # custom recipient responsible (the gateway, not HQ, delivers to it).
    print("     (postgate-po refused it: the same message crafted with pgbundle.py instead)")
    legacy_id = "CORP/HQ:20240101100000.0123456789ab"

    def party(tag, addr, name):
        return pg.field(tag, pg.field(1, addr.encode()) + pg.field(2, name.encode("cp850")))

    now = struct.pack(">q", int(time.time()))
    entry = pg.field(pg.T_ID, legacy_id.encode()) + pg.field(pg.T_CLASS, b"\0")
    entry += pg.field(pg.T_PRIORITY, b"\1") + pg.field(pg.T_SUBMIT_TIME, now)
    entry += pg.field(pg.T_REQUESTS, b"\0") + pg.field(pg.T_FLAGS, b"\0")
    entry += party(pg.T_ORIGINATOR, "CORP/HQ/JSMITH", "Jürgen Smith")
    for addr in ("SMTP:ext@partner.example", "CORP/HQ/EXT-1", "CORP/SALES/ALICE"):
        entry += pg.field(pg.T_RECIPIENT, pg.field(1, addr.encode()) + pg.field(2, b"") +
                          pg.field(3, b"\1"))
    entry += pg.field(pg.T_HOP, pg.field(1, b"CORP/HQ") + pg.field(2, now))
    entry += pg.field(pg.T_CODEPAGE, b"CP850")
    entry += party(pg.T_FROM, "CORP/HQ/JSMITH", "Jürgen Smith")
    for addr in ("SMTP:ext@partner.example", "CORP/HQ/EXT-1", "CORP/SALES/ALICE"):
        entry += party(pg.T_TO, addr, "")
    entry += pg.field(pg.T_SUBJECT, SUBJECT_SENT.encode("cp850")) + pg.field(pg.T_DATE, now)
    entry += pg.field(pg.T_BODY, BODY_SENT.encode("cp850"))
    entry += pg.field(pg.T_ATTACHMENT, pg.field(1, b"a.bin") + pg.field(2, ATT))
    # a number of its own, far from the ones HQ's postgate-po hands out
    bundle = pg.bundle_name(HQ, "CORP/GW", 1000)
    pg.drop(po_dir[HQ], bundle, pg.bundle(HQ, "CORP/GW", 1000, [(1, entry)],
                                          read(key_file[HQ]).strip()), sub="out")
out_path = os.path.join(po_dir[HQ], "out", bundle)
saved = read(out_path)
ok, blocks = dump(HQ, out_path)
hops = len(field(blocks[0], "Hop")) if blocks else 0
t.check(ok and len(blocks) == 1 and field(blocks[0], "Subject") == [SUBJECT_SENT] and hops == 1,
        "1: HQ's bundle for the gateway verifies, one message, subject %r as CP850 has it, "
        "1 hop: %s" % (SUBJECT_SENT, [field(b, "Subject") for b in blocks]))

p = run()
t.check(p.returncode == 0 and not p.errors, "1: run exits 0 without an error: %d %s %s"
        % (p.returncode, p.out.strip(), p.errors))
t.check("1 message translated and queued for SMTP" in p.out and
        re.search(r"^  CORP/SALES: 1 copy in 1 bundle$", p.out, flags=re.M) and
        not re.search(r"^  CORP/HQ:", p.out, flags=re.M),
        "1: summary: one message for SMTP, one copy for CORP/SALES, none for HQ: %r" % p.out)
t.check(files(HQ, "out") == [] and files(HQ, "bad") == [],
        "1: HQ's bundle was taken from out/ (not set aside in bad/)")
q = queue()
t.check(len(q) == 1, "1: exactly one message in the queue: %s"
        % [(m["queue_id"], m.get("message_id")) for m in q])
out_msg = q[0] if q else {}
rc = sorted(r["address"] for r in out_msg.get("recipients", []))
t.check(out_msg.get("sender") == "jsmith@" + DOMAIN,
        "1: queue list -j: the envelope sender is JSMITH's primary proxy: %s"
        % out_msg.get("sender"))
t.check(rc == ["ann@ext.example", "ext@partner.example"],
        "1: queue list -j: the recipients are ext@partner.example and the custom's target: %s"
        % rc)
t.check(out_msg.get("recipients") and
        all(r["state"] == "smtp-pending" for r in out_msg["recipients"]),
        "1: queue list -j: every recipient is smtp-pending: %s"
        % [(r["address"], r["state"], r["reason"]) for r in out_msg.get("recipients", [])])
t.check(not [m for m in q if m.get("message_id") == legacy_id or m.get("format") == "legacy"],
        "1: the legacy message itself has left the queue")
if out_msg:
    h = headers(out_msg["queue_id"])
    frm = h["From"]
    addr = frm.addresses[0] if frm and frm.addresses else None
    t.check(addr is not None and addr.addr_spec == "jsmith@" + DOMAIN and
            addr.display_name == "Jürgen Smith",
            "1: From: is JSMITH's primary proxy with his display name: %r" % str(frm))
    t.check(str(h["Subject"]) == SUBJECT_SENT,
            "1: Subject: decoded is the subject as sent, %r: %r" % (SUBJECT_SENT, h["Subject"]))
    mid = str(h["Message-ID"])
    t.check(re.fullmatch(msgid_for(HQ, legacy_id), mid) and
            out_msg.get("message_id") == mid,
            "1: Message-ID: <legacy id.CORP-HQ.sha256(postoffice, id)@%s>, the same in "
            "queue list: %s %s" % (HOST, mid, out_msg.get("message_id")))
    n = len(h.get_all("Received") or [])
    t.check(n == hops + 1 and out_msg.get("hops") == hops + 1,
            "1: Received: fields: %d legacy hop(s) + the gateway's = %d: %d (hops %s)"
            % (hops, hops + 1, n, out_msg.get("hops")))
    tos = sorted(a.addr_spec for a in h["To"].addresses) if h["To"] else []
    t.check("ext@partner.example" in tos and "alice@" + DOMAIN in tos,
            "1: To: shows the SMTP recipient and ALICE by her primary proxy: %s" % tos)

inbox = files(SALES, "in")
t.check(len(inbox) == 1 and files(HQ, "in") == [],
        "1: exactly one bundle, for CORP/SALES, none for HQ: %s %s" % (inbox, files(HQ, "in")))
if inbox:
    ok, blocks = dump(SALES, os.path.join(po_dir[SALES], "in", inbox[0]))
    env = field(blocks[0], "Envelope") if blocks else []
    t.check(ok and len(blocks) == 1 and env == ["CORP/SALES/ALICE (responsible)"],
            "1: the SALES bundle verifies and carries one copy, ALICE its only (responsible) "
            "recipient: %s" % env)
    t.check(blocks and field(blocks[0], "Id") == [legacy_id] and
            [h.split(" at ")[0] for h in field(blocks[0], "Hop")] == ["CORP/HQ", "CORP/GW"],
            "1: the copy keeps the legacy id and trace, the gateway's hop added: %s %s"
            % (blocks and field(blocks[0], "Id"), blocks and field(blocks[0], "Hop")))
d = pg.run("-d", po_dir[SALES], "deliver", check=False)
t.check(d.returncode == 0 and pg.counts(po_dir[SALES]).get("ALICE") == 1 and
        pg.counts(po_dir[HQ]) == {"JSMITH": 0, "MUELLER": 0, "POSTMASTER": 0},
        "1: deliver at SALES: ALICE has one copy; nobody at HQ got one: %s %s %s"
        % (d.out.strip(), pg.counts(po_dir[SALES]), pg.counts(po_dir[HQ])))
xdir = os.path.join(top, "extract")
os.makedirs(xdir)
mailbox(SALES, "ALICE", extract=xdir)
msgs = mailbox(SALES, "ALICE")
m = msgs[0] if msgs else {}
t.check(m.get("Subject") == [SUBJECT_SENT] and m.get("Codepage") == ["CP1252"],
        "1: ALICE's copy: subject %r, in CP1252: %s %s" % (SUBJECT_SENT, m.get("Subject"),
                                                          m.get("Codepage")))
t.check(m.get("From") == ["Jürgen Smith <CORP/HQ/JSMITH>"],
        "1: ALICE's copy: from Jürgen Smith <CORP/HQ/JSMITH>: %s" % m.get("From"))
t.check(m.get("body", "").replace("\r\n", "\n").rstrip("\n") ==
        BODY_SENT.replace("\r\n", "\n").rstrip("\n"),
        "1: ALICE's copy: the body intact, umlauts converted CP850 -> CP1252: %r"
        % m.get("body", "")[:200])
xf = [n for n in os.listdir(xdir) if n.endswith("a.bin")]
t.check(len(xf) == 1 and hashlib.sha256(read(os.path.join(xdir, xf[0]))).hexdigest() ==
        hashlib.sha256(ATT).hexdigest() and
        m.get("Attachment", [""])[0].startswith("a.bin (%d bytes, sha256 %s)"
                                                % (len(ATT), hashlib.sha256(ATT).hexdigest())),
        "1: ALICE's copy: the attachment a.bin, its bytes intact (SHA-256): %s %s"
        % (xf, m.get("Attachment")))

# ---- 2. SALES (CP1252) -> HQ (CP850) and SMTP: the € both ways ------------------------------
SUBJECT2 = "Preis 5 € – Grüße"
body2 = os.path.join(top, "body2.txt")
with open(body2, "w", encoding="utf-8", newline="") as f:
    f.write("Preis: 5 € für Jörg\r\n")
p, id2, bundle2 = send(SALES, "--from", "ALICE", "--to", "CORP/HQ/JSMITH,SMTP:dup@partner.example",
                       "--subject", SUBJECT2, "--body-file", body2)
t.check(p.returncode == 0 and bundle2, "2: ALICE sends to JSMITH and SMTP:dup@partner.example: %s"
        % p.out.strip())
saved2 = read(os.path.join(po_dir[SALES], "out", bundle2)) if bundle2 else b""
# 3b: the same bundle twice in one run, under a second name
if bundle2:
    pg.drop(po_dir[SALES], "zz-again-" + bundle2, saved2, sub="out")
p = run()
t.check(p.returncode == 0 and not p.errors and
        "1 message translated and queued for SMTP" in p.out and
        re.search(r"^  CORP/HQ: 1 copy in 1 bundle$", p.out, flags=re.M),
        "2: run: one message for SMTP, one copy for HQ: %d %s %s"
        % (p.returncode, p.out.strip(), p.errors))
q2 = [m for m in queue() if m.get("envid") == id2]
t.check(len(q2) == 1 and [r["address"] for r in q2[0]["recipients"]] == ["dup@partner.example"]
        and q2[0]["sender"] == "alice@" + DOMAIN,
        "2: one outbound message from alice@%s to dup@partner.example: %s"
        % (DOMAIN, [(m["sender"], [r["address"] for r in m["recipients"]]) for m in q2]))
if q2:
    h = headers(q2[0]["queue_id"])
    t.check(str(h["Subject"]) == SUBJECT2,
            "2: CP1252 has the €: the Internet subject is %r: %r" % (SUBJECT2, h["Subject"]))
    t.check(h["From"].addresses[0].display_name == "Alice Müller-Lüdenscheidt",
            "2: From: Alice Müller-Lüdenscheidt: %r" % str(h["From"]))
t.check(len(files(HQ, "in")) == 1, "3: the same bundle twice in one run: one bundle for HQ: %s"
        % files(HQ, "in"))
t.check(files(SALES, "out") == [] and files(SALES, "bad") == [],
        "3: both copies left SALES's out/, neither went to bad/: %s %s"
        % (files(SALES, "out"), files(SALES, "bad")))
pg.run("-d", po_dir[HQ], "deliver")
msgs = mailbox(HQ, "JSMITH")
t.check(len(msgs) == 1, "3: JSMITH has exactly one copy: %d" % len(msgs))
m = msgs[0] if msgs else {}
t.check(m.get("Subject") == ["Preis 5 EUR - Grüße"],
        "2: CP850 has no €: JSMITH's subject is transliterated, 'Preis 5 EUR - Grüße': %s"
        % m.get("Subject"))
t.check(m.get("body", "").rstrip("\r\n") == "Preis: 5 EUR für Jörg",
        "2: JSMITH's body: 'Preis: 5 EUR für Jörg': %r" % m.get("body"))

# ---- 3. the same bundle again after it was applied ----------------------------------------
before_q = sorted((m["queue_id"], json.dumps(m, sort_keys=True)) for m in queue())
pg.drop(po_dir[HQ], bundle, saved, sub="out")
if bundle2:
    pg.drop(po_dir[SALES], bundle2, saved2, sub="out")
p = run()
t.check(p.returncode == 0 and not p.errors,
        "3: run with both applied bundles dropped into out/ again exits 0: %d %s"
        % (p.returncode, p.errors))
t.check(sorted((m["queue_id"], json.dumps(m, sort_keys=True)) for m in queue()) == before_q,
        "3: nothing new in the queue (no second outbound message)")
t.check(files(HQ, "in") == [] and files(SALES, "in") == [],
        "3: no bundle written for either postoffice: %s %s" % (files(HQ, "in"),
                                                              files(SALES, "in")))
t.check(files(HQ, "out") == [] and files(SALES, "out") == [] and files(HQ, "bad") == [] and
        files(SALES, "bad") == [],
        "3: the replays were removed from out/, not moved to bad/: %s %s %s %s"
        % (files(HQ, "out"), files(SALES, "out"), files(HQ, "bad"), files(SALES, "bad")))
t.check("applied before" in p.err, "3: the log says the bundles were applied before")

# ---- 4. a bad HMAC ------------------------------------------------------------------------
p, id4, bundle4 = send(SALES, "--from", "BOB", "--to", "CORP/HQ/JSMITH,SMTP:hmac@partner.example",
                       "--subject", "tampered")
path4 = os.path.join(po_dir[SALES], "out", bundle4 or "none")
if bundle4:
    data = bytearray(read(path4))
    data[-1] ^= 0x01                    # the last byte of the HMAC
    with open(path4, "wb") as f:
        f.write(bytes(data))
q_before = queue()
p = run()
bad = files(SALES, "bad")
why = os.path.join(po_dir[SALES], "bad", (bundle4 or "none") + ".why")
t.check(bundle4 and bad == sorted([bundle4, bundle4 + ".why"]) and files(SALES, "out") == [],
        "4: the bundle with a bad HMAC moved from out/ to its sibling bad/, with a .why: %s"
        % bad)
t.check(os.path.exists(why) and "hmac" in read(why).decode("utf-8", "replace").lower(),
        "4: the .why says the HMAC is bad: %r"
        % (read(why).decode("utf-8", "replace") if os.path.exists(why) else None))
t.check("1 bundle refused to bad/" in p.out, "4: the summary counts it: %r" % p.out)
t.check(queue() == q_before and files(HQ, "in") == [],
        "4: nothing of it was applied: the queue unchanged, no bundle for HQ")

# ---- 5. a directory export in a bundle ----------------------------------------------------
r = gw("dir", "route", "carl@" + DOMAIN, check=False)
t.check(r.returncode == 67 and r.out.strip() == "unknown",
        "5: before: carl@%s is unknown (exit 67): %d %r" % (DOMAIN, r.returncode, r.out))
pg.run("-d", po_dir[SALES], "adduser", "CARL", "--name", "Carl Größer")
e = pg.run("-d", po_dir[SALES], "export-dir", "--send", check=False)
t.check(e.returncode == 0 and len(files(SALES, "out")) == 1,
        "5: export-dir --send puts a bundle into SALES's out/: %s %s" % (e.out.strip(),
                                                                         files(SALES, "out")))
p = run()
t.check(p.returncode == 0 and not p.errors and "1 directory export imported" in p.out,
        "5: run imports the directory export: %d %s %s" % (p.returncode, p.out.strip(),
                                                           p.errors))
t.check(files(SALES, "out") == [] and files(SALES, "bad") == bad,
        "5: the export's bundle left out/, nothing more in bad/: %s %s"
        % (files(SALES, "out"), files(SALES, "bad")))
r = gw("dir", "route", "carl@" + DOMAIN, check=False)
t.check(r.returncode == 0 and r.out.strip() == "postoffice CORP/SALES CARL",
        "5: carl@%s now routes to CORP/SALES CARL: %d %r" % (DOMAIN, r.returncode, r.out))
r = gw("dir", "lookup", "CORP/SALES/CARL", check=False)
t.check(r.returncode == 0 and "Carl Größer" in r.out and "SMTP:carl@" + DOMAIN in r.out,
        "5: dir lookup: the display name as written, the primary proxy from the template: %r"
        % r.out)
r = gw("dir", "route", "alice@" + DOMAIN, check=False)
t.check(r.out.strip() == "postoffice CORP/SALES ALICE",
        "5: the users SALES had are still there: %r" % r.out)
# (without a body: an empty text converted CP850 -> CP1252 on the way)
p, id5, bundle5 = send(HQ, "--from", "MUELLER", "--to", "CORP/SALES/CARL",
                       "--subject", "Hallo Carl")
p = run()
t.check(p.returncode == 0 and not p.errors and
        re.search(r"^  CORP/SALES: 1 copy in 1 bundle$", p.out, flags=re.M),
        "5: run passes a message without a body from HQ to the new user on to SALES: %d %s %s"
        % (p.returncode, p.out.strip(), p.errors))
pg.run("-d", po_dir[SALES], "deliver")
t.check(pg.counts(po_dir[SALES]).get("CARL") == 1,
        "5: the new user has it: %s" % pg.counts(po_dir[SALES]))

# ---- 6. a list at another postoffice naming a recipient the sender's own delivered --------
# CARL (SALES) writes to HQ's list TEAM = {CORP/HQ/JSMITH, CORP/SALES/ALICE} and to ALICE
# directly: SALES delivers ALICE at once; the gateway, expanding TEAM, must know that ALICE
# is responsible elsewhere in this message (SPEC 3.1: one copy each).
xml = os.path.join(top, "hq-team.xml")
pg.run("-d", po_dir[HQ], "export-dir", "-o", xml)
with open(xml, encoding="utf-8") as f:
    doc = f.read()
with open(xml, "w", encoding="utf-8") as f:
    f.write(doc.replace("</sync>", '  <custom name="EXT-1" display="Ann" target="ann@ext.example"/>\n'
                        '  <list name="TEAM" display="Team"><member address="CORP/HQ/JSMITH"/>'
                        '<member address="CORP/SALES/ALICE"/></list>\n</sync>'))
gw("dir", "import", xml)
gal = os.path.join(top, "gal-sales.xml")
gw("dir", "export", "--po", SALES, "-o", gal)
pg.run("-d", po_dir[SALES], "import-gal", gal)
pg.run("-d", po_dir[HQ], "deliver")
pg.run("-d", po_dir[SALES], "deliver")
before = (pg.counts(po_dir[HQ]).get("JSMITH", 0), pg.counts(po_dir[SALES]).get("ALICE", 0))
p, id6, _ = send(SALES, "--from", "CARL", "--to", "CORP/HQ/TEAM,CORP/SALES/ALICE",
                 "--subject", "Team and Alice")
t.check(p.returncode == 0, "6: SALES sends to HQ's list and to ALICE: %s %s" % (p.out, p.err))
p = run()
t.check(p.returncode == 0 and not p.errors, "6: run: %s %s" % (p.out.strip(), p.errors))
pg.run("-d", po_dir[HQ], "deliver")
pg.run("-d", po_dir[SALES], "deliver")
after = (pg.counts(po_dir[HQ]).get("JSMITH", 0), pg.counts(po_dir[SALES]).get("ALICE", 0))
t.check(after[0] - before[0] == 1 and after[1] - before[1] == 1,
        "6: JSMITH and ALICE each get exactly one copy (ALICE not again through TEAM): "
        "JSMITH +%d, ALICE +%d" % (after[0] - before[0], after[1] - before[1]))

print("runtime %.1f s" % (time.time() - T0))
shutil.rmtree(top)
t.done()
