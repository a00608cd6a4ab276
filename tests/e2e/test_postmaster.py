"""postmaster and the case of local parts, end to end, as a new user would.

Issue 12 points 2 and 3 (SPEC 2 Inbound; RFC 5321 4.5.1): on a site with
two domains and a postoffice made with `postgate-po init` (which has its
POSTMASTER mailbox),

1. swaks to postmaster@DOMAIN for each site domain, to bare Postmaster and
   to JSmith@EXAMPLE.COM is accepted by `postgate smtpd` (250); a quoted
   local part ("a b"@example.com) is valid syntax: 550 5.1.1, not 501;
   postmaster at another site's or any other domain is not ours.
2. `postgate submit` takes the same addresses (<...> too) and refuses the
   quoted one as unknown (exit 67).
3. `dir route` and `dir lookup` take <addr>, in any case; the proxy is
   shown as written.
4. After `postgate run` and `postgate-po deliver`, the postmaster's mail is
   in POSTMASTER (the default [site] postmaster) and JSmith's in JSMITH,
   each delivered to that mailbox (not to POSTMASTER as a fallback).
5. A second site with `[site] postmaster = CORP/HQ/ADMIN`: postmaster mail
   goes to ADMIN, none to POSTMASTER.
"""
import os
import shutil
import smtplib
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgbundle as pg  # noqa: E402

t = pg.Tally("postmaster")
POSTGATE = os.environ.get("POSTGATE") or os.path.join(os.getcwd(), "postgate")
SWAKS = shutil.which("swaks")
if not SWAKS:
    print("FAIL - swaks is not installed (needed by this test)")
    sys.exit(1)
HOST = "127.0.0.1"
DOMAINS = ["example.com", "corp.example"]
top = pg.scratch()


class Site:
    """One gateway with postoffice CORP/HQ (JSMITH, ADMIN, and POSTMASTER)."""

    def __init__(self, name, postmaster=None):
        self.top = os.path.join(top, name)
        os.makedirs(self.top)
        self.port = pg.free_port(HOST)
        self.podir, _ = pg.make_po(self.top, "CORP", "HQ", gateway="CORP/GW",
                                   users=[("JSMITH", "Jane Smith"), ("ADMIN", "The Admin")])
        self.conf = os.path.join(self.top, "postgate.conf")
        site = ["[site]", "name = " + name, "domains = " + ", ".join(DOMAINS),
                "state_dir = " + os.path.join(self.top, "state"), "gateway_po = CORP/GW",
                "user =", "proxy_templates = SMTP:%m@example.com"]
        if postmaster:
            site.append("postmaster = " + postmaster)
        with open(self.conf, "w") as f:
            f.write("\n".join(site + [
                "", "[smtpd]", "listen = %s:%d" % (HOST, self.port), "timeout = 10s", "",
                "[postoffice CORP/HQ]", "dir = " + self.podir,
                "key_file = " + os.path.join(self.top, "hq.key"), "codepage = CP850", ""]))
        xml = os.path.join(self.top, "hq.xml")
        pg.run("-d", self.podir, "export-dir", "-o", xml)
        self.gw("dir", "import", xml)
        self.p = None

    def gw(self, *args, check=True, input=None):
        p = subprocess.run([POSTGATE, "-c", self.conf] + list(args), capture_output=True,
                           timeout=120, input=input)
        p.out = p.stdout.decode("utf-8", "replace")
        p.err = p.stderr.decode("utf-8", "replace")
        if check and p.returncode != 0:
            raise RuntimeError("postgate %s: exit %d\n%s%s" % (" ".join(args), p.returncode,
                                                              p.out, p.err))
        return p

    def start(self):
        self.logname = os.path.join(self.top, "smtpd.log")
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
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(10)
        if self.p is not None:
            self.log.close()
        self.p = None

    def swaks(self, to, mid):
        p = subprocess.run([SWAKS, "--server", HOST, "--port", str(self.port), "--timeout",
                            "10", "--from", "alice@other.org", "--to", to,
                            "--header", "Message-Id: " + mid, "--header",
                            "Subject: for " + to], capture_output=True, timeout=60)
        p.out = p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")
        p.replies = [l[4:].strip() for l in p.out.splitlines()
                     if l.startswith(("<-  ", "<** ", "<~  ", "<~* "))]
        return p

    def rcpt(self, path):
        """The reply to RCPT TO:<path> as written (no quoting by smtplib)."""
        s = smtplib.SMTP(HOST, self.port, timeout=10)
        try:
            s.ehlo("client.test")
            s.mail("alice@other.org")
            code, msg = s.docmd("RCPT TO:<%s>" % path)
            s.quit()
        finally:
            s.close()
        return code, msg.decode("utf-8", "replace")

    def deliver(self):
        """run, then the postoffice's deliver; (run, deliver) processes."""
        r = self.gw("run", check=False)
        d = pg.run("-d", self.podir, "deliver", check=False)
        return r, d

    def mailbox(self, mb):
        return pg.run("-d", self.podir, "show", mb).out


def message(mid, subject):
    return ("From: Alice <alice@other.org>\nTo: someone\nSubject: %s\nMessage-ID: %s\n\n"
            "hello\n" % (subject, mid)).encode()


a = Site("A")
a.start()
try:
    # ---- 1. the listener, with swaks -------------------------------------------
    for n, to in enumerate(["postmaster@" + d for d in DOMAINS] +
                           ["Postmaster", "POSTMASTER@Corp.Example", "JSmith@EXAMPLE.COM"]):
        p = a.swaks(to, "<pm-%d@test>" % n)
        t.check(p.returncode == 0 and any(r.startswith("250 2.1.5") for r in p.replies) and
                any(r.startswith("250 2.0.0") for r in p.replies),
                "swaks --to %s: accepted and queued: exit %d %s" % (to, p.returncode,
                                                                    p.replies[-4:]))
    code, msg = a.rcpt('"a b"@example.com')
    t.check(code == 550 and msg.startswith("5.1.1"),
            'RCPT TO:<"a b"@example.com>: 550 5.1.1 (valid syntax, unknown): %d %s'
            % (code, msg))
    code, msg = a.rcpt('"jsmith"@example.com')
    t.check(code == 550 and msg.startswith("5.1.1"),
            'RCPT TO:<"jsmith"@example.com>: 550 5.1.1: %d %s' % (code, msg))
    code, msg = a.rcpt('"a b"@elsewhere.org')
    t.check(code == 554 and msg.startswith("5.7.1"),
            'RCPT TO:<"a b"@elsewhere.org>: relay denied, 554 5.7.1: %d %s' % (code, msg))
    code, msg = a.rcpt("postmaster@elsewhere.org")
    t.check(code == 554, "postmaster@elsewhere.org is another's: 554: %d %s" % (code, msg))
    code, msg = a.rcpt("postmasters@example.com")
    t.check(code == 550 and msg.startswith("5.1.1"),
            "postmasters@example.com is no postmaster: 550 5.1.1: %d %s" % (code, msg))
finally:
    a.stop()

# ---- 2. submit --------------------------------------------------------------
p = a.gw("submit", "-f", "alice@other.org", "postmaster@corp.example", check=False,
         input=message("<sub-1@test>", "submit to postmaster@corp.example"))
t.check(p.returncode == 0, "submit postmaster@corp.example: exit 0: %d %s" % (p.returncode,
                                                                            p.err))
p = a.gw("submit", "-f", "<alice@other.org>", "<Postmaster>", check=False,
         input=message("<sub-2@test>", "submit to Postmaster"))
t.check(p.returncode == 0, "submit <Postmaster>: exit 0: %d %s" % (p.returncode, p.err))
p = a.gw("submit", "-f", "alice@other.org", "<JSmith@Example.COM>", check=False,
         input=message("<sub-3@test>", "submit to JSmith"))
t.check(p.returncode == 0, "submit <JSmith@Example.COM>: exit 0: %d %s" % (p.returncode,
                                                                         p.err))
p = a.gw("submit", "-f", "alice@other.org", '"a b"@example.com', check=False,
         input=message("<sub-4@test>", "quoted"))
t.check(p.returncode == 67 and "550 5.1.1" in p.err,
        'submit "a b"@example.com: unknown, exit 67 (EX_NOUSER): %d %s' % (p.returncode,
                                                                          p.err.strip()))

# ---- 3. dir route / dir lookup ----------------------------------------------------
for addr, want in (("<JSmith@Example.COM>", "postoffice CORP/HQ JSMITH"),
                   ("JSMITH@corp.example", "unknown"),
                   ("<Postmaster>", "postoffice CORP/HQ POSTMASTER"),
                   ("postmaster@CORP.EXAMPLE", "postoffice CORP/HQ POSTMASTER"),
                   ('<"a b"@example.com>', "unknown")):
    p = a.gw("dir", "route", addr, check=False)
    t.check(p.out.strip() == want and p.returncode == (67 if want == "unknown" else 0),
            "dir route '%s': %s: exit %d %r %s" % (addr, want, p.returncode, p.out.strip(),
                                                 p.err.strip()))
p = a.gw("dir", "lookup", "<JSmith@Example.COM>", check=False)
t.check(p.returncode == 0 and "CORP/HQ/JSMITH" in p.out and
        "SMTP:jsmith@example.com" in p.out,
        "dir lookup '<JSmith@Example.COM>' finds CORP/HQ/JSMITH: %d %s" % (p.returncode,
                                                                         p.out + p.err))

# ---- 4. run and deliver --------------------------------------------------------
r, d = a.deliver()
t.check(r.returncode == 0, "run: exit 0: %d %s" % (r.returncode, r.err[-400:]))
t.check(d.returncode == 0, "deliver: exit 0: %d %s" % (d.returncode, d.err[-400:]))
counts = pg.counts(a.podir)
# To POSTMASTER: 4 from swaks (each its own message), 2 from submit.
t.check(counts.get("POSTMASTER") == 6 and counts.get("JSMITH") == 2 and
        counts.get("ADMIN") == 0,
        "POSTMASTER has the 6 postmaster messages, JSMITH its 2, ADMIN none: %s" % counts)
delivered = [l for l in d.err.splitlines() if "delivered to" in l]
t.check(len(delivered) == 8 and
        sum("delivered to CORP/HQ/POSTMASTER" in l for l in delivered) == 6 and
        "given to" not in d.err and "no mailbox" not in d.err,
        "each was addressed to its mailbox, none given to POSTMASTER as a fallback: %s"
        % d.err.strip()[-300:])
show = a.mailbox("POSTMASTER")
t.check(all(("for " + to) in show for to in ["postmaster@example.com", "Postmaster",
                                             "postmaster@corp.example"]) and
        "submit to Postmaster" in show,
        "postgate-po show POSTMASTER shows them: %s" % show[:300])
show = a.mailbox("JSMITH")
t.check("for JSmith@EXAMPLE.COM" in show and "submit to JSmith" in show,
        "postgate-po show JSMITH shows JSmith@EXAMPLE.COM's mail: %s" % show[:300])

# ---- 5. [site] postmaster = CORP/HQ/ADMIN ----------------------------------------
b = Site("B", postmaster="CORP/HQ/ADMIN")
p = b.gw("dir", "route", "Postmaster", check=False)
t.check(p.out.strip() == "postoffice CORP/HQ ADMIN",
        "with [site] postmaster = CORP/HQ/ADMIN, dir route Postmaster: %r" % p.out.strip())
b.start()
try:
    for n, to in enumerate(["postmaster@example.com", "Postmaster"]):
        p = b.swaks(to, "<b-pm-%d@test>" % n)
        t.check(p.returncode == 0 and any(r.startswith("250 2.0.0") for r in p.replies),
                "site B: swaks --to %s accepted: %s" % (to, p.replies[-3:]))
finally:
    b.stop()
r, d = b.deliver()
counts = pg.counts(b.podir)
t.check(r.returncode == 0 and d.returncode == 0 and counts.get("ADMIN") == 2 and
        counts.get("POSTMASTER") == 0,
        "site B: ADMIN has both, POSTMASTER none: %s (run %d, deliver %d)"
        % (counts, r.returncode, d.returncode))

shutil.rmtree(top, ignore_errors=True)
t.done()
