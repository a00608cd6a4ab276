#!/usr/bin/python3
"""The seed's story (issue 14 point 7, SPEC 3.2): a delivery receipt between
two sites, once when the directory is right, and stopped within hop_limit
crossings when it is broken so that the receipt's route leads back.

Two sites on loopback, each a `postgate smtpd` and `postgate run` of its
own: A (company.com, CORP/A1 with USER1, hop_limit = 10) and B
(imc2.company.com, CORP/B1 with USER2, whose proxies are the primary
user2@company.com and user2@imc2.company.com).  Each imports the other's
replication file.  B's site link to A is A's listener; A's site link to B
is a forwarding SMTP host (smtpscript.py) that adds its Received: line and
hands mail for imc2.company.com to B and mail for company.com back to A,
passing on the answer it got.

1. USER2 sends to CORP/A1/USER1 with a receipt requested: USER1 has the
   message once; A1's receipt becomes A's DSN to user2@imc2.company.com
   (the proxy in B's domains), B makes it a legacy receipt: USER2 has it
   once, "Delivered: ...".
2. A directory that would lead back is refused: a replication file from B
   in which USER2 keeps only user2@company.com (A's own domain) leaves A
   routing user2@company.com to an error naming the missing proxy, not
   back to itself (and a link claiming A's own domain fails the config
   check, SPEC 3.2).  B's next file restores the proxy.
3. So the route is broken where nothing checks it: the forwarder's table
   hands mail for imc2.company.com back to A.  USER2 sends again with a
   receipt: USER1 has it once; the receipt goes round A -> forwarder -> A
   until A's listener refuses it (hops over the limit); A holds it with
   the reason, A's postmaster is told once, USER2 gets no receipt, and the
   forwarder carried at most hop_limit messages for it.
"""
import asyncio
import os
import re
import smtplib
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgbundle as pg  # noqa: E402
import smtpscript  # noqa: E402

t = pg.Tally("two-sites")
POSTGATE = pg.gw_binary()
HOST = "127.0.0.1"
HOP_LIMIT = 10
top = pg.scratch()


class Forwarder(smtpscript.Server):
    """Takes any mail, adds its Received: line and hands it on at once,
    answering with what it got (a store-and-forward MTA that does not
    return mail from <> would lose the receipt silently instead)."""
    targets = {}

    async def on_data_end(self, s, data):
        rcpts, sender = list(s.rcpts), s.mail_from
        target = self.targets.get(rcpts[0].rsplit("@", 1)[-1].lower())
        self.accept(s, data)
        if not target:
            await s.reply("550 5.1.2 no route to that domain")
            return
        code, text = await asyncio.get_running_loop().run_in_executor(
            None, forward, target, sender, rcpts, data)
        await s.reply("%d %s" % (code, text.decode("utf-8", "replace").replace("\n", " ")))


def forward(target, sender, rcpts, data):
    stamp = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
    data = ("Received: from gw.company.com by relay.forward.test; %s\r\n" % stamp).encode() + data
    try:
        with smtplib.SMTP(target[0], target[1], timeout=20) as c:
            c.ehlo("relay.forward.test")
            code, text = c.mail(sender)
            if code != 250:
                return code, text
            for r in rcpts:
                code, text = c.rcpt(r)
                if code != 250:
                    return code, text
            return c.data(data)
    except (OSError, smtplib.SMTPException) as e:
        return 451, str(e).encode()


fwd = Forwarder(hostname="relay.forward.test")
fwd.start()
port_a, port_b = pg.free_port(HOST), pg.free_port(HOST)
while port_b == port_a:
    port_b = pg.free_port(HOST)
Forwarder.targets = {"company.com": (HOST, port_a), "imc2.company.com": (HOST, port_b)}


def make_site(name, domains, templates, po, users, port, link, link_domains, link_host,
              extra=()):
    d = os.path.join(top, name)
    os.makedirs(d)
    net, short = po.split("/")
    pdir, _ = pg.make_po(d, net, short, gateway="CORP/GW" + name, users=users)
    conf = os.path.join(d, "postgate.conf")
    lines = ["[site]", "name = " + name, "domains = " + domains,
             "state_dir = " + os.path.join(d, "state"), "gateway_po = CORP/GW" + name, "user =",
             "proxy_templates = " + templates] + list(extra) + [
             "", "[smtpd]", "hostname = gw.%s" % domains, "listen = %s:%d" % (HOST, port),
             "relay_networks = 127.0.0.0/8", "timeout = 10s", "",
             "[delivery]", "tls = none", "min_backoff = 1s", "",
             "[postoffice %s]" % po, "dir = " + pdir,
             "key_file = " + os.path.join(d, short.lower() + ".key"), "codepage = CP850", "",
             "[site-link %s]" % link, "domains = " + link_domains, "host = " + link_host, ""]
    with open(conf, "w") as f:
        f.write("\n".join(lines))
    return conf, pdir


A, A1 = make_site("A", "company.com", "SMTP:%m@company.com", "CORP/A1", [("USER1", "User One")],
                  port_a, "B", "imc2.company.com", "%s:%d" % (HOST, fwd.port),
                  extra=["hop_limit = %d" % HOP_LIMIT])
B, B1 = make_site("B", "imc2.company.com", "SMTP:%m@company.com, smtp:%m@imc2.company.com",
                  "CORP/B1", [("USER2", "User Two")], port_b, "A", "company.com",
                  "%s:%d" % (HOST, port_a))


def gw(conf, *args, check=False):
    return pg.run_cmd([POSTGATE, "-c", conf] + list(args), check=check)


def sync():
    """Each site imports its postoffice and the other's replication file."""
    for conf, pdir in ((A, A1), (B, B1)):
        x = os.path.join(top, "po-%d.xml" % time.time_ns())
        pg.run("-d", pdir, "export-dir", "-o", x)
        gw(conf, "dir", "import", x, check=True)
    for src, dst, peer in ((B, A, "A"), (A, B, "B")):
        x = os.path.join(top, "rep-%d.xml" % time.time_ns())
        gw(src, "dir", "export", "--for", peer, "-o", x, check=True)
        gw(dst, "dir", "import", x, check=True)
        if src == B:
            B_FOR_A.append(x)


B_FOR_A = []   # B's replication files for A, oldest first


def box(pdir, mb, subject):
    pg.run("-d", pdir, "deliver", check=False)
    return [m for m in pg.legacy_mailbox(pdir, mb) if subject in " ".join(m.get("Subject", []))]


def settle(rounds=3 * HOP_LIMIT):
    """Both sites run (and their postoffices deliver) until nothing moves;
    the summaries of B's runs are kept in b_runs."""
    quiet = 0
    b_runs.clear()
    for _ in range(rounds):
        before = len(fwd.messages())
        moved = False
        for conf, pdir in ((B, B1), (A, A1)):
            pg.run("-d", pdir, "deliver", check=False)
            r = gw(conf, "run")
            if conf == B:
                b_runs.append(r.out)
            moved |= "0 messages looked at" not in r.out and "looked at" in r.out
        time.sleep(0.2)
        quiet = quiet + 1 if len(fwd.messages()) == before and not moved else 0
        if quiet >= 2:
            return


b_runs = []


def send(subject):
    p = pg.run("-d", B1, "send", "--from", "USER2", "--to", "CORP/A1/USER1", "--subject",
               subject, "--receipt")
    return p.out.strip()


sync()
r = gw(A, "dir", "route", "user2@company.com")
t.check(r.out.strip() == "site-link B <user2@imc2.company.com>",
        "setup: A routes user2@company.com over the link with B's own proxy: %r" % r.out)
smtpd_a = pg.Smtpd(A, HOST, port_a, os.path.join(top, "smtpd-a.log")).start()
smtpd_b = pg.Smtpd(B, HOST, port_b, os.path.join(top, "smtpd-b.log")).start()

try:
    # ---- 1. the receipt comes back once --------------------------------------------
    send("Story one")
    settle()
    got = box(A1, "USER1", "Story one")
    t.check(len(got) == 1, "1: USER1 has the message once: %d" % len(got))
    rec = box(B1, "USER2", "Story one")
    t.check(len(rec) == 1 and rec[0].get("Class", [""])[0].startswith("receipt") and
            rec[0]["Subject"][0].startswith("Delivered: ") and
            any(x.startswith("CORP/A1/USER1: delivered") for x in rec[0].get("Report", [])),
            "1: USER2 has the receipt once, naming CORP/A1/USER1 delivered: %s"
            % [(m.get("Class"), m.get("Subject"), m.get("Report")) for m in rec])
    t.check(sum(o.count("receipts: 1 queued about 1 recipient\n") for o in b_runs) == 1 and
            not any("non-delivery report" in o and "reports: 0 " not in o for o in b_runs),
            "1: B's run counts it as a receipt, not a non-delivery report: %s" % b_runs)
    q = gw(A, "queue", "list").out + gw(B, "queue", "list").out
    t.check(q.count("Queue is empty") == 2, "1: both queues are empty: %s" % q)

    # ---- 2. a directory that leads back is refused ----------------------------------
    with open(B_FOR_A[0]) as f:
        good = f.read()      # the file that brought A USER2's entry
    usn = int(re.search(r'<seen site="B" usn="(\d+)"', good).group(1))
    ver = int(re.search(r'<change [^>]*legacy="CORP/B1/USER2"[^>]*', good) and
              re.search(r'usn="%d" version="(\d+)"' % usn, good).group(1))

    def b_file(n, with_imc2):
        text = good.replace('<seen site="B" usn="%d"/>' % usn, '<seen site="B" usn="%d"/>'
                            % (usn + n))
        text = re.sub(r'usn="%d" version="%d"' % (usn, ver), 'usn="%d" version="%d"'
                      % (usn + n, ver + n), text)
        if not with_imc2:
            text = text.replace("    <proxy>smtp:user2@imc2.company.com</proxy>\n", "")
        path = os.path.join(top, "b-%d.xml" % n)
        with open(path, "w") as f:
            f.write(text)
        return path

    p = gw(A, "dir", "import", b_file(1, False))
    r = gw(A, "dir", "route", "user2@company.com")
    t.check(p.returncode == 0 and r.out.startswith("error") and "no proxy in B's domains" in r.out,
            "2: USER2 without a proxy in B's domains: A's route is an error, not a loop: %r %s"
            % (r.out, p.err[-300:]))
    broken = os.path.join(top, "A", "broken.conf")
    with open(A) as f, open(broken, "w") as g:
        g.write(f.read().replace("domains = imc2.company.com",
                                 "domains = imc2.company.com, company.com"))
    c = gw(broken, "check-config")
    t.check(c.returncode != 0 and "company.com already belongs to [site]" in c.err + c.out,
            "2: a link that claims A's own domain fails the config check: %s" % (c.err + c.out))
    gw(A, "dir", "import", b_file(2, True), check=True)
    r = gw(A, "dir", "route", "user2@company.com")
    t.check(r.out.strip() == "site-link B <user2@imc2.company.com>",
            "2: B's next file restores the route: %r" % r.out)

    # ---- 3. the forwarder leads back: the loop is stopped -------------------------------
    Forwarder.targets["imc2.company.com"] = (HOST, port_a)
    crossed_before = len(fwd.messages())
    send("Story two")
    settle()
    got = box(A1, "USER1", "Story two")
    t.check(len(got) == 1, "3: USER1 has the message once: %d" % len(got))
    looped = [m for m in fwd.messages()[crossed_before:] if m.mail_from == ""]
    t.check(0 < len(looped) <= HOP_LIMIT,
            "3: the forwarder carried the receipt at most hop_limit (%d) times: %d"
            % (HOP_LIMIT, len(looped)))
    qa = gw(A, "queue", "list", "-j").out
    t.check('"held"' in qa and "5.4.6" in qa and qa.count('"queue_id"') == 1,
            "3: A holds the receipt with its listener's hop-limit refusal: %s" % qa[:600])
    notes = box(A1, "POSTMASTER", "Held by the gateway")
    t.check(len(notes) == 1, "3: A's postmaster is told once: %s"
            % [m.get("Subject") for m in notes])
    settle(4)
    notes = box(A1, "POSTMASTER", "Held by the gateway")
    t.check(len(notes) == 1 and len([m for m in fwd.messages()[crossed_before:]
                                     if m.mail_from == ""]) == len(looped),
            "3: more runs send nothing more and tell no one again: %d notices" % len(notes))
    t.check(box(B1, "USER2", "Story two") == [] and "Queue is empty" in gw(B, "queue", "list").out,
            "3: USER2 gets no receipt, B's queue is empty")
finally:
    smtpd_a.stop()
    smtpd_b.stop()
    fwd.stop()
t.done()
