"""The postgate command line: --help everywhere, private state, signals.

Issue 12, points 5, 6 and 8, with the real binaries:

1. `--help` or `-h` anywhere in a command's arguments, for every command
   and every sub-command of dir and queue: exit 0, that command's (or
   sub-command's) usage on standard output, nothing on standard error, and
   nothing done: no state_dir, no file named --help, nothing looked up.
2. Private state under the usual umask 022: state_dir is created 0700,
   queue.db, its WAL and directory.db are 0600 (checked while the listener
   holds the WAL open, and after a run); started as root with [site] user
   set, a missing state_dir is created 0700 and owned by that user.
3. `queue list` works for someone who cannot read the key files.
4. A signal that ends `run`, `queue retry` or `submit` is logged in one
   line naming it, and the process dies of that signal.
"""
import os
import pwd
import signal
import smtplib
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgbundle as pg  # noqa: E402

t = pg.Tally("cli")
POSTGATE = os.environ.get("POSTGATE") or os.path.join(os.getcwd(), "postgate")
HOST = "127.0.0.1"
DOMAIN = "example.com"
# Searchable by everyone: part 2 and 3 run postgate as another user.
top = tempfile.mkdtemp(prefix="pg-cli-")
os.chmod(top, 0o755)
ROOT = os.geteuid() == 0
OTHER = pwd.getpwnam("nobody") if ROOT else None


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


HQ_DIR, _ = pg.make_po(top, "CORP", "HQ", gateway="CORP/GW",
                       users=[("JSMITH", "Jane Smith")])
KEY = os.path.join(top, "hq.key")
SMTPD_PORT, RELAY_PORT = free_port(), free_port()


def config(name, state, user="", mode=0o644):
    path = os.path.join(top, name + ".conf")
    with open(path, "w") as f:
        f.write("\n".join([
            "[site]", "name = HQ", "domains = " + DOMAIN, "state_dir = " + state,
            "gateway_po = CORP/GW", "user = " + user,
            "proxy_templates = SMTP:%m@" + DOMAIN, "",
            "[smtpd]", "listen = %s:%d" % (HOST, SMTPD_PORT), "hostname = gw.example.com",
            "",
            "[delivery]", "relay_host = [%s]:%d" % (HOST, RELAY_PORT), "timeout = 60s",
            "connect_timeout = 10s", "",
            "[postoffice CORP/HQ]", "dir = " + HQ_DIR, "key_file = " + KEY,
            "codepage = CP850", ""]))
    os.chmod(path, mode)
    return path


def umask022():
    os.umask(0o022)


def gw(conf, *args, timeout=60, stdin=None, preexec=umask022, cwd=None):
    p = subprocess.run([POSTGATE, "-c", conf] + list(args), capture_output=True,
                       timeout=timeout, stdin=stdin, preexec_fn=preexec, cwd=cwd)
    p.out = p.stdout.decode("utf-8", "replace")
    p.err = p.stderr.decode("utf-8", "replace")
    return p


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


# ---- 1. --help and -h, everywhere, doing nothing ----

SUBS = {"dir": ["import", "export", "lookup", "route", "list", "stats"],
        "queue": ["list", "show", "retry", "destinations", "hold", "release", "delete"]}
COMMANDS = ["check-config", "config-manpage", "dir", "run", "smtpd", "submit", "queue"]
help_state = os.path.join(top, "help-state")
help_conf = config("help", help_state)
empty = os.path.join(top, "cwd")
os.mkdir(empty)
cases = []
for cmd in COMMANDS:
    for flag in ("--help", "-h"):
        cases.append(([cmd, flag], cmd))
    for sub in SUBS.get(cmd, []):
        for flag in ("--help", "-h"):
            cases.append(([cmd, sub, flag], cmd + " " + sub))
        # After the sub-command's own arguments, too.
        cases.append(([cmd, sub, "--help-me", "x", "--help"], cmd + " " + sub))
cases += [(["run", "--dry-run", "--help"], "run"),
          (["smtpd", "--debug", "-h"], "smtpd"),
          (["submit", "-f", "a@other.org", "jsmith@example.com", "--help"], "submit"),
          (["dir", "import", "one.xml", "-h", "two.xml"], "dir import"),
          (["queue", "hold", "ID", "--reason", "x", "--help"], "queue hold")]
bad = []
for args, usage in cases:
    p = gw(help_conf, *args, timeout=20, stdin=subprocess.DEVNULL, cwd=empty)
    want = "Usage: postgate [-c FILE] %s" % usage
    line = p.out.splitlines()[0] if p.out else ""
    if p.returncode != 0 or not (line == want or line.startswith(want + " ")) or p.err:
        bad.append("%s: exit %d, %r %r" % (" ".join(args), p.returncode, line, p.err[:200]))
t.check(not bad, "1: --help / -h on every command and sub-command (%d cases): exit 0, "
        "its usage on stdout\n   " % len(cases) + "\n   ".join(bad))
t.check(not os.path.exists(help_state) and os.listdir(empty) == [],
        "1: --help did nothing: no state_dir, no file created (%s)" % os.listdir(empty))
p = gw(help_conf, "dir", "--help")
t.check(all("dir %s" % s in p.out for s in SUBS["dir"]) and "queue" not in p.out,
        "1: dir --help lists the dir sub-commands:\n" + p.out)
p = subprocess.run([POSTGATE, "--help"], capture_output=True, timeout=20)
out = p.stdout.decode()
t.check(p.returncode == 0 and "73 cannot create or open state" in out and
        "COMMAND SUB --help" in out, "1: postgate --help: exit codes, COMMAND SUB --help:\n" + out)

# ---- 2. private state under umask 022 ----

state = os.path.join(top, "state")
conf = config("site", state)
xml = os.path.join(top, "hq-export.xml")
pg.run("-d", HQ_DIR, "export-dir", "-o", xml)
p = gw(conf, "dir", "import", xml)
t.check(p.returncode == 0, "2: dir import under umask 022: exit %d %s" % (p.returncode, p.err))
log = open(os.path.join(top, "smtpd.log"), "wb")
smtpd = subprocess.Popen([POSTGATE, "-c", conf, "smtpd"], stdout=log, stderr=log,
                         preexec_fn=umask022)
try:
    for _ in range(200):
        try:
            socket.create_connection((HOST, SMTPD_PORT), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.05)
    s = smtplib.SMTP(HOST, SMTPD_PORT, timeout=20)
    s.sendmail("alice@other.org", ["jsmith@example.com"],
               "From: alice@other.org\r\nSubject: private\r\n\r\nsecret\r\n")
    s.quit()
    wal = os.path.join(state, "queue.db-wal")
    modes = {n: mode(os.path.join(state, n)) for n in ("queue.db", "queue.db-wal",
                                                       "directory.db")
             if os.path.exists(os.path.join(state, n))}
    t.check(os.path.exists(wal) and mode(state) == 0o700 and
            all(m == 0o600 for m in modes.values()) and len(modes) == 3,
            "2: with the listener running: state_dir 0%o, %s" %
            (mode(state), {k: "0%o" % v for k, v in modes.items()}))
finally:
    smtpd.terminate()
    smtpd.wait(10)
    log.close()
p = gw(conf, "run", "--no-delivery")
leaks = {n: "0%o" % mode(os.path.join(state, n)) for n in os.listdir(state)
         if mode(os.path.join(state, n)) & 0o077}
t.check(p.returncode == 0 and not leaks and mode(state) == 0o700,
        "2: after a run under umask 022 nothing in state_dir is open to others: %s %s" %
        (leaks, p.err))
bundles = [n for n in os.listdir(os.path.join(HQ_DIR, "in")) if not n.startswith(".")]
t.check(bundles and all(mode(os.path.join(HQ_DIR, "in", n)) == 0o600 for n in bundles),
        "2: the bundle run wrote is 0600: %s" % bundles)

other_state = os.path.join(top, "other", "state")
if ROOT:
    other_conf = config("other", other_state, user=OTHER.pw_name)
    p = gw(other_conf, "queue", "list")
    st = os.stat(other_state) if os.path.exists(other_state) else None
    t.check(p.returncode == 0 and st is not None and stat.S_IMODE(st.st_mode) == 0o700 and
            st.st_uid == OTHER.pw_uid and
            os.stat(os.path.join(other_state, "queue.db")).st_uid == OTHER.pw_uid and
            mode(os.path.dirname(other_state)) == 0o755,
            "2: as root, a missing state_dir is created 0700 for [site] user %s "
            "(its parent 0755): exit %d %s" % (OTHER.pw_name, p.returncode, p.err))
else:
    other_conf = config("other", other_state)
    p = gw(other_conf, "queue", "list")
    t.check(p.returncode == 0 and mode(other_state) == 0o700,
            "2: a missing state_dir is created 0700: exit %d %s" % (p.returncode, p.err))

# ---- 3. queue list without reading key files ----

os.chmod(KEY, 0o600 if ROOT else 0)


def as_other():
    os.umask(0o022)
    if ROOT:
        os.setgroups([])
        os.setgid(OTHER.pw_gid)
        os.setuid(OTHER.pw_uid)


p = gw(other_conf, "queue", "list", preexec=as_other)
t.check(p.returncode == 0, "3: queue list by a user who cannot read the key file: exit %d %s"
        % (p.returncode, p.err))
p = gw(other_conf, "queue", "list", "-j", preexec=as_other)
t.check(p.returncode == 0, "3: queue list -j too: exit %d %s" % (p.returncode, p.err))
os.chmod(KEY, 0o600)

# ---- 4. a signal that ends a command is logged ----

# A relay that takes the connection and never says a word: the SMTP client
# waits for its greeting, as it would on a slow server.
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((HOST, RELAY_PORT))
srv.listen(8)
srv.settimeout(0.2)
accepted = []
stop = threading.Event()


def silent():
    while not stop.is_set():
        try:
            c, _ = srv.accept()
            accepted.append(c)
        except OSError:
            pass


threading.Thread(target=silent, daemon=True).start()
pg.run("-d", HQ_DIR, "send", "--from", "JSMITH", "--to", "SMTP:ext@partner.example",
       "--subject", "slow")


def killed_while_waiting(args, sig, what):
    n = len(accepted)
    p = subprocess.Popen([POSTGATE, "-c", conf] + args, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, preexec_fn=umask022)
    for _ in range(300):
        if len(accepted) > n or p.poll() is not None:
            break
        time.sleep(0.05)
    waiting = len(accepted) > n and p.poll() is None
    p.send_signal(sig)
    try:
        _, err = p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
    err = err.decode("utf-8", "replace")
    line = "postgate: warning: %s: ended by signal %s" % (what, sig.name)
    t.check(waiting and p.returncode == -sig and line in err.splitlines(),
            "4: %s waiting on a silent server, sent %s: the line %r, died of it "
            "(waiting %s, exit %s)\n%s" % (what, sig.name, line, waiting, p.returncode, err))


killed_while_waiting(["run"], signal.SIGTERM, "run")
killed_while_waiting(["queue", "retry"], signal.SIGINT, "queue retry")
stop.set()

# submit, waiting for the message on standard input.
p = subprocess.Popen([POSTGATE, "-c", conf, "submit", "-f", "alice@other.org",
                      "jsmith@example.com"], stdin=subprocess.PIPE,
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=umask022)
p.stdin.write(b"Subject: half\r\n")
p.stdin.flush()
time.sleep(1)
p.send_signal(signal.SIGHUP)
_, err = p.communicate(timeout=20)
err = err.decode("utf-8", "replace")
t.check(p.returncode == -signal.SIGHUP and
        "postgate: warning: submit: ended by signal SIGHUP" in err.splitlines(),
        "4: submit reading its message, sent SIGHUP: logged, died of it (exit %s)\n%s"
        % (p.returncode, err))

for c in accepted:
    c.close()
srv.close()
if t.failed == 0:
    subprocess.run(["rm", "-rf", top])
t.done()
