#!/usr/bin/python3
"""postgate smtpd: signals, reload and TLS files, end to end (issue 12
points 4, 6 and 7; postgate(8) SMTP LISTENER).

1. As root, with [site] user = nobody and a TLS certificate and key that
   only root can read (0600, owned by root): the listener starts, offers
   STARTTLS, and swaks --tls delivers a message (the files are read before
   privileges are dropped, as Postfix does).  Not as root: said, and the
   check is not made (CI runs as root).
2. SIGHUP re-reads the configuration, like `postfix reload`: a new
   hostname and max_recipients are what new sessions get; a session opened
   before the SIGHUP finishes with what it started with (its old limit, its
   old name in the EHLO reply) and is not cut; a user imported into the directory
   is accepted; the log says "reloaded".
3. A SIGHUP with a broken configuration: the log names FILE:LINE and says
   the old configuration stays; new sessions still get the last good one.
   A changed state_dir needs a restart: logged, the old one stays.
4. Under TLS, two whole transactions pipelined and then the client's
   close_notify: both get their 250 and are queued once, the listener
   lives on (its session was not freed under the committer).
5. SIGTERM: logged by name, exit 0.
"""
import json
import os
import pwd
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgbundle as pg  # noqa: E402

t = pg.Tally("smtpd-reload")
POSTGATE = pg.gw_binary()
SWAKS, OPENSSL = shutil.which("swaks"), shutil.which("openssl")
for tool, name in ((SWAKS, "swaks"), (OPENSSL, "openssl")):
    if not tool:
        print("FAIL - %s is not installed (needed by this test)" % name)
        sys.exit(1)

HOST = "127.0.0.1"
ROOT = os.geteuid() == 0
USER = "nobody" if ROOT else ""
top = pg.scratch()
os.chmod(top, 0o755)
STATE = os.path.join(top, "state")
CONF = os.path.join(top, "postgate.conf")
LOG = os.path.join(top, "smtpd.log")


PORT = pg.free_port(HOST)
podir, _ = pg.make_po(top, "CORP", "HQ", users=[("JSMITH", "Jane Smith"), ("BOB", "Bob")] +
                      [("R%d" % i, "R %d" % i) for i in range(1, 6)])
TLS_DIR = os.path.join(top, "tls")
os.mkdir(TLS_DIR, 0o700)
CERT, KEY = os.path.join(TLS_DIR, "cert.pem"), os.path.join(TLS_DIR, "key.pem")
subprocess.run([OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                "-days", "2", "-keyout", KEY, "-out", CERT], check=True, capture_output=True,
               timeout=120)
os.chmod(CERT, 0o600)
os.chmod(KEY, 0o600)


def config(hostname, max_rcpt, extra=(), state=STATE):
    """The configuration text; line 11 is max_recipients (3 needs it)."""
    return "\n".join([
        "[site]",                                               # 1
        "name = HQ",                                            # 2
        "domains = example.com",                                # 3
        "state_dir = " + state,                                 # 4
        "gateway_po = CORP/GW",                                 # 5
        "user = " + USER,                                       # 6
        "proxy_templates = SMTP:%m@example.com",                # 7
        "",                                                     # 8
        "[smtpd]",                                              # 9
        "hostname = " + hostname,                               # 10
        "max_recipients = %s" % max_rcpt,                       # 11
        "listen = %s:%d" % (HOST, PORT),
        "timeout = 20s",
        "tls_cert_file = " + CERT, "tls_key_file = " + KEY] + list(extra) + [
        "",
        "[postoffice CORP/HQ]", "dir = " + podir, "key_file = " + os.path.join(top, "hq.key"),
        "codepage = CP850", ""])


def write_config(text):
    tmp = CONF + ".new"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.rename(tmp, CONF)


def own():
    """As root: what the gateway writes belongs to its user; the TLS files
    stay root's."""
    if ROOT:
        pg.chown_tree(top, USER, keep=[TLS_DIR])


def gw(*args, check=True):
    own()
    return pg.run_cmd([POSTGATE, "-c", CONF] + list(args), check=check)


def import_directory():
    xml = os.path.join(top, "hq.xml")
    pg.run("-d", podir, "export-dir", "-o", xml)
    os.chmod(xml, 0o644)
    gw("dir", "import", xml)


def queued(mid):
    p = gw("queue", "list", "-j")
    return [m for m in (json.loads(l) for l in p.out.splitlines() if l.strip())
            if m.get("message_id") == mid]


def log_text():
    with open(LOG, "rb") as f:
        return f.read().decode("utf-8", "replace")


def log_tail(n=8):
    return "\n".join("       | " + l for l in log_text().splitlines()[-n:])


def wait_log(needle, since, limit=10.0):
    """True once needle is in the log after offset since."""
    deadline = time.time() + limit
    while time.time() < deadline:
        if needle in log_text()[since:]:
            return True
        time.sleep(0.05)
    return False


def message(mid):
    return ("From: Alice <alice@other.org>\r\nTo: Jane <jsmith@example.com>\r\n"
            "Subject: reload\r\nMessage-ID: %s\r\n\r\nhello\r\n" % mid).encode()


def greeting():
    """A new session's greeting text, and the session."""
    s = smtplib.SMTP(timeout=10)
    code, msg = s.connect(HOST, PORT)
    return code, msg.decode("latin-1"), s


def rcpts_taken(s, n):
    """MAIL, then n RCPTs on session s: how many got 250."""
    s.ehlo("client.test")
    s.mail("alice@other.org")
    ok = sum(1 for i in range(1, n + 1) if s.rcpt("r%d@example.com" % i)[0] == 250)
    s.rset()
    return ok


# ---- start ----------------------------------------------------------------------------------
write_config(config("one.example.com", 5))
import_directory()
own()
logf = open(LOG, "ab")
P = subprocess.Popen([POSTGATE, "-c", CONF, "smtpd", "--debug"], stdout=logf, stderr=logf)


def up(limit=10.0):
    deadline = time.time() + limit
    while time.time() < deadline and P.poll() is None:
        try:
            socket.create_connection((HOST, PORT), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


started = up()
t.check(started, "the listener starts%s: %s\n%s"
        % (" as root with user = nobody and a root-only TLS key" if ROOT else "",
           "accepting" if started else "exit %s" % P.poll(), log_tail()))
if not started:
    t.done()

# ---- 1. TLS files only root can read --------------------------------------------------------
if ROOT:
    st = os.stat(KEY)
    t.check(st.st_uid == 0 and st.st_mode & 0o077 == 0,
            "setup: the key is root's, mode %o" % (st.st_mode & 0o777))
    sw = subprocess.run([SWAKS, "--server", HOST, "--port", str(PORT), "--tls",
                         "--to", "jsmith@example.com", "--from", "alice@other.org",
                         "--header", "Message-Id: <tls-root@test>", "--timeout", "20"],
                        capture_output=True, timeout=60)
    out = sw.stdout.decode("utf-8", "replace")
    q = queued("<tls-root@test>")
    t.check(sw.returncode == 0 and len(q) == 1 and q[0].get("protocol") == "ESMTPS",
            "1: swaks --tls with a key only root can read, smtpd running as nobody: queued "
            "once over ESMTPS: exit %d, %s\n%s" % (sw.returncode, q, out[-600:]))
    pid_user = None
    with open("/proc/%d/status" % P.pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                pid_user = int(line.split()[1])
    t.check(pid_user == pwd.getpwnam(USER).pw_uid,
            "1: the listener runs as %s after reading them: uid %s" % (USER, pid_user))
else:
    print("note - not root: the root-only TLS key check (1) needs root and is not made")

# ---- 2. SIGHUP: a new configuration for new sessions ----------------------------------------
code, text, old = greeting()
t.check(code == 220 and "one.example.com" in text,
        "2: before the SIGHUP the greeting names one.example.com: %d %s" % (code, text))
t.check(rcpts_taken(old, 5) == 5, "2: before the SIGHUP, 5 recipients are taken")

pg.run("-d", podir, "adduser", "NEWBIE", "--name", "New Bee")
import_directory()
write_config(config("two.example.com", 2))
at = len(log_text())
P.send_signal(signal.SIGHUP)
t.check(wait_log("reloaded", at), "2: SIGHUP: the log says reloaded\n%s" % log_tail())
t.check(P.poll() is None, "2: the listener is still running after SIGHUP: %s" % P.poll())
if P.poll() is not None:
    t.done()

code, text, new = greeting()
t.check(code == 220 and "two.example.com" in text,
        "2: a session after the SIGHUP is greeted as two.example.com: %d %s" % (code, text))
t.check(rcpts_taken(new, 5) == 2,
        "2: a session after the SIGHUP takes max_recipients = 2 recipients")
new.ehlo("client.test")
new.mail("alice@other.org")
r = new.rcpt("newbie@example.com")
t.check(r[0] == 250, "2: a user imported before the SIGHUP is accepted: %s" % (r,))
new.rset()
new.quit()

t.check(rcpts_taken(old, 5) == 5,
        "2: the session opened before the SIGHUP still takes 5 recipients (its settings)")
old.mail("alice@other.org")
old.rcpt("jsmith@example.com")
r = old.data(message("<before-hup@test>"))
t.check(r[0] == 250 and len(queued("<before-hup@test>")) == 1,
        "2: the session opened before the SIGHUP is not cut: its message is queued: %s" % (r,))
r = old.ehlo("client.test")
t.check(r[0] == 250 and b"one.example.com" in r[1],
        "2: ... and still answers EHLO with its own name, one.example.com: %s" % (r,))
old.quit()

# ---- 3. a broken configuration: the old one stays -------------------------------------------
write_config(config("three.example.com", "lots"))
at = len(log_text())
P.send_signal(signal.SIGHUP)
ok = wait_log("reload failed", at)
after = log_text()[at:]
t.check(ok and "%s:11" % CONF in after,
        "3: SIGHUP with a bad max_recipients on line 11: the log names %s:11 and says the "
        "reload failed\n%s" % (CONF, log_tail()))
code, text, s = greeting()
t.check(P.poll() is None and code == 220 and "two.example.com" in text,
        "3: the listener lives on with the last good configuration (two.example.com): %d %s"
        % (code, text))
t.check(rcpts_taken(s, 5) == 2, "3: ... and its max_recipients = 2")
s.quit()

write_config(config("four.example.com", 5, state=os.path.join(top, "elsewhere")))
at = len(log_text())
P.send_signal(signal.SIGHUP)
ok = wait_log("reload failed", at)
t.check(ok and "restart" in log_text()[at:],
        "3: SIGHUP with another state_dir: logged as needing a restart, not taken\n%s"
        % log_tail())
code, text, s = greeting()
t.check(code == 220 and "two.example.com" in text,
        "3: new sessions still get two.example.com: %d %s" % (code, text))
s.quit()
write_config(config("two.example.com", 5))
at = len(log_text())
P.send_signal(signal.SIGHUP)
t.check(wait_log("reloaded", at), "3: a good configuration again is reloaded\n%s" % log_tail())


# ---- 4. TLS: two pipelined transactions, then close_notify ----------------------------------
class TlsPipe:
    """A client whose TLS goes through memory BIOs, so that it can send its
    close_notify and still read what the server answers."""

    def __init__(self):
        self.sock = socket.create_connection((HOST, PORT), timeout=10)
        self.plain = b""

    def line(self):
        while b"\r\n" not in self.plain:
            d = self.sock.recv(4096)
            if not d:
                raise EOFError
            self.plain += d
        ln, self.plain = self.plain.split(b"\r\n", 1)
        return ln

    def starttls(self):
        self.line()                                   # 220
        self.sock.sendall(b"EHLO tls.test\r\n")
        while self.line()[3:4] == b"-":
            pass
        self.sock.sendall(b"STARTTLS\r\n")
        if not self.line().startswith(b"220"):
            raise RuntimeError("STARTTLS refused")
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.inc, self.outg = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.inc, self.outg, server_hostname="localhost")
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.flush()
                self.feed()
        self.flush()

    def flush(self):
        d = self.outg.read()
        if d:
            self.sock.sendall(d)

    def feed(self):
        d = self.sock.recv(65536)
        if not d:
            self.inc.write_eof()
            return False
        self.inc.write(d)
        return True

    def send(self, data):
        self.tls.write(data)
        self.flush()

    def close_notify(self):
        try:
            self.tls.unwrap()
        except ssl.SSLWantReadError:
            pass
        self.flush()

    def read_all(self, limit=10.0):
        """Everything the server says until it closes (or limit seconds)."""
        got = b""
        deadline = time.time() + limit
        while time.time() < deadline:
            try:
                d = self.tls.read(65536)
                if not d:
                    break
                got += d
                continue
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                break
            self.sock.settimeout(max(0.05, deadline - time.time()))
            try:
                if not self.feed():
                    continue
            except (socket.timeout, OSError):
                break
        return got


def txn(mid):
    return (b"MAIL FROM:<alice@other.org>\r\nRCPT TO:<jsmith@example.com>\r\nDATA\r\n" +
            message(mid) + b".\r\n")


for n in range(3):
    c = TlsPipe()
    c.starttls()
    c.send(b"EHLO tls.test\r\n" + txn("<tls-two-a%d@test>" % n) + txn("<tls-two-b%d@test>" % n))
    c.close_notify()
    said = c.read_all()
    c.sock.close()
    codes = [ln[:3] for ln in said.split(b"\r\n") if ln[3:4] == b" "]
    qa, qb = queued("<tls-two-a%d@test>" % n), queued("<tls-two-b%d@test>" % n)
    t.check(codes.count(b"250") >= 6 and codes.count(b"354") == 2 and len(qa) == 1
            and len(qb) == 1,
            "4: TLS, two transactions pipelined then close_notify (#%d): both answered "
            "(EHLO, 2 x MAIL/RCPT/354/250) and queued once: %s, queued %d and %d\n%s"
            % (n + 1, [x.decode() for x in codes], len(qa), len(qb), log_tail()))
    t.check(P.poll() is None, "4: the listener lives on after #%d: %s\n%s"
            % (n + 1, P.poll(), log_tail()))

# ---- 5. SIGTERM -----------------------------------------------------------------------------
at = len(log_text())
P.send_signal(signal.SIGTERM)
try:
    rc = P.wait(timeout=30)
except subprocess.TimeoutExpired:
    P.kill()
    rc = P.wait()
t.check(rc == 0 and "SIGTERM" in log_text()[at:],
        "5: SIGTERM: logged by name, exit 0: exit %s\n%s" % (rc, log_tail()))
t.check("ERROR: AddressSanitizer" not in log_text() and "runtime error" not in log_text(),
        "no sanitizer report in the listener's log\n%s" % log_tail(20))
logf.close()

if t.failed:
    print("kept for inspection: %s" % top)
else:
    shutil.rmtree(top)
t.done()
