"""pgbundle - a second, independent implementation of bundle format v1.

Written from docs/bundle-format.md for the end-to-end tests: it crafts
bundles the reference postoffice must accept or refuse, and predicts which
check refuses a damaged one.  Also shared helpers for the tests.
"""
import hashlib
import hmac
import os
import pwd
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib

MAGIC = b"\x89PGB\r\n\x1a\n"
HEADER_LEN = 90
TRAILER_LEN = 36
MAX_FILE = 256 * 1024 * 1024
MAX_PAYLOAD = 256 * 1024 * 1024
MAX_ENTRIES = 10000
MAX_RATIO = 1100

(T_ID, T_CLASS, T_PRIORITY, T_SUBMIT_TIME, T_REQUESTS, T_FLAGS, T_ABOUT_ID,
 T_ORIGINATOR, T_RECIPIENT, T_HOP, T_CODEPAGE, T_FROM, T_TO, T_CC, T_SUBJECT,
 T_DATE, T_BODY, T_ATTACHMENT, T_REPORT_ITEM) = range(1, 20)


def field(tag, value):
    return struct.pack(">HI", tag, len(value)) + value


def party(tag, addr, name=b""):
    return field(tag, field(1, addr.encode()) + field(2, name))


def message(msg_id, originator, recipients, subject=b"", body=b"", codepage="CP850",
            cls=0, no_report=False, about=None, requests=0, attachments=(),
            to=None, hops=(), items=()):
    """recipients: list of (address, responsible); items (a report's): list of
    (recipient, status 0 delivered / 1 not delivered / 2 delayed, reason, diagnostic)."""
    out = field(T_ID, msg_id.encode())
    out += field(T_CLASS, bytes([cls])) + field(T_PRIORITY, b"\x01")
    out += field(T_SUBMIT_TIME, struct.pack(">q", int(time.time())))
    out += field(T_REQUESTS, bytes([requests]))
    out += field(T_FLAGS, bytes([1 if no_report else 0]))
    if about:
        out += field(T_ABOUT_ID, about.encode())
    out += party(T_ORIGINATOR, originator)
    for addr, resp in recipients:
        out += field(T_RECIPIENT, field(1, addr.encode()) + field(2, b"") +
                     field(3, bytes([1 if resp else 0])))
    for node in hops:
        out += field(T_HOP, field(1, node.encode()) + field(2, struct.pack(">q", 0)))
    out += field(T_CODEPAGE, codepage.encode())
    out += party(T_FROM, originator)
    for addr in (to if to is not None else [r[0] for r in recipients]):
        out += party(T_TO, addr)
    out += field(T_SUBJECT, subject) + field(T_DATE, struct.pack(">q", int(time.time())))
    out += field(T_BODY, body)
    for name, data in attachments:
        out += field(T_ATTACHMENT, field(1, name) + field(2, data))
    for rcpt, status, reason, diag in items:
        out += field(T_REPORT_ITEM, field(1, rcpt.encode()) + field(2, bytes([status])) +
                     field(3, struct.pack(">H", reason)) + field(4, diag.encode()))
    return out


def bundle(src, dst, seq, entries, key, level=6, created=None):
    """entries: list of (kind, bytes); kind 1 = message, 2 = directory."""
    payload = b"".join(bytes([k]) + struct.pack(">I", len(d)) + d for k, d in entries)
    comp = zlib.compress(payload, level)
    head = MAGIC + struct.pack(">H", 1)
    head += src.encode().ljust(22, b"\0") + dst.encode().ljust(22, b"\0")
    head += struct.pack(">QqIQQ", seq, int(time.time()) if created is None else created,
                        len(entries), len(payload), len(comp))
    body = head + comp + struct.pack(">I", zlib.crc32(comp))
    return body + hmac.new(key, body, hashlib.sha256).digest()


def entries(data):
    """The (kind, bytes) entries of a bundle, unchecked (sections 5 and 6)."""
    count, plen, clen = struct.unpack(">IQQ", data[70:90])
    payload = zlib.decompress(data[HEADER_LEN:HEADER_LEN + clen])
    out, pos = [], 0
    for _ in range(count):
        kind, n = payload[pos], struct.unpack(">I", payload[pos + 1:pos + 5])[0]
        out.append((kind, payload[pos + 5:pos + 5 + n]))
        pos += 5 + n
    return out


def bundle_name(src, dst, seq):
    return "%s+%s+%010d.bundle" % (src.replace("/", "."), dst.replace("/", "."), seq)


def predict(data, key):
    """The refusal the documented check order predicts for data, or None."""
    n = len(data)
    if n < HEADER_LEN + TRAILER_LEN:
        return "truncated"
    count, plen, clen = struct.unpack(">IQQ", data[70:90])
    if clen != n - HEADER_LEN - TRAILER_LEN:
        return "truncated"
    if data[:8] != MAGIC:
        return "bad magic"
    if struct.unpack(">H", data[8:10])[0] != 1:
        return "unknown version"
    if count == 0 or count > MAX_ENTRIES or n > MAX_FILE or plen > MAX_PAYLOAD \
            or plen < count * 5 or plen > clen * MAX_RATIO:
        return "over a limit"
    if not hmac.compare_digest(hmac.new(key, data[:-32], hashlib.sha256).digest(), data[-32:]):
        return "bad HMAC"
    if zlib.crc32(data[HEADER_LEN:HEADER_LEN + clen]) != struct.unpack(">I", data[-36:-32])[0]:
        return "bad CRC"
    return None


class Tally:
    """Counts checks and prints the closing 'N passed, N failed' line."""

    def __init__(self, name):
        self.name, self.passed, self.failed = name, 0, 0

    def check(self, cond, what):
        if cond:
            self.passed += 1
            print("ok   - %s" % what.splitlines()[0])
        else:
            self.failed += 1
            print("FAIL - %s" % what)
        sys.stdout.flush()
        return cond

    def done(self):
        print("%s: %d passed, %d failed" % (self.name, self.passed, self.failed))
        sys.exit(1 if self.failed or not self.passed else 0)


def po_binary():
    return os.environ.get("POSTGATE_PO") or os.path.join(os.getcwd(), "postgate-po")


def gw_binary():
    return os.environ.get("POSTGATE") or os.path.join(os.getcwd(), "postgate")


def run_cmd(argv, check=True, env=None, input=None, timeout=120):
    """Run a program; returns CompletedProcess with its output as text in
    .out and .err; check: a non-zero exit raises, naming the command."""
    p = subprocess.run(argv, capture_output=True, env=env, input=input, timeout=timeout)
    p.out = p.stdout.decode("utf-8", "replace")
    p.err = p.stderr.decode("utf-8", "replace")
    if check and p.returncode != 0:
        raise RuntimeError("%s %s: exit %d\n%s%s" % (os.path.basename(argv[0]),
                                                     " ".join(argv[1:]), p.returncode,
                                                     p.out, p.err))
    return p


def run(*args, check=True, env=None, input=None):
    """Run postgate-po; returns CompletedProcess with text output."""
    return run_cmd([po_binary()] + list(args), check=check, env=env, input=input)


def free_port(host="127.0.0.1"):
    """A TCP port nothing listens on at host (now)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def chown_tree(top, user, keep=()):
    """As root: everything below top belongs to user, but for the paths
    below any of keep."""
    pw = pwd.getpwnam(user)
    for d, subdirs, names in os.walk(top):
        for n in [d] + [os.path.join(d, x) for x in subdirs + names]:
            if not any(n == k or n.startswith(k + os.sep) for k in keep):
                os.lchown(n, pw.pw_uid, pw.pw_gid)


def scratch():
    return tempfile.mkdtemp(prefix="pg-e2e-")


def make_po(top, net, po, codepage="CP850", key=None, gateway=None, users=()):
    """Create a postoffice under top; returns (dir, key bytes)."""
    d = os.path.join(top, po.lower())
    kf = key or os.path.join(top, po.lower() + ".key")
    args = ["-d", d, "init", "--net", net, "--po", po, "--codepage", codepage,
            "--key-file", kf]
    if gateway:
        args += ["--gateway", gateway]
    run(*args)
    for mb, name in users:
        run("-d", d, "adduser", mb, "--name", name)
    with open(kf, "rb") as f:
        k = f.read()
    return d, k[:-1] if k.endswith(b"\n") else k


def counts(d):
    """{mailbox: count} from 'postgate-po list'."""
    out = run("-d", d, "list").out
    return {l.split()[0]: int(l.split()[1]) for l in out.splitlines() if l.strip()}


def drop(d, name, data, sub="in"):
    with open(os.path.join(d, sub, name), "wb") as f:
        f.write(data)


class Smtpd:
    """`postgate -c CONF smtpd` in the background, its output in LOG, up
    once it accepts connections on (host, port); stop() ends it."""

    def __init__(self, conf, host, port, log):
        self.conf, self.host, self.port, self.logname = conf, host, port, log
        self.p = None

    def start(self):
        self.log = open(self.logname, "ab")
        self.p = subprocess.Popen([gw_binary(), "-c", self.conf, "smtpd"], stdout=self.log,
                                  stderr=self.log)
        for _ in range(200):
            if self.p.poll() is not None:
                raise RuntimeError("smtpd exited %d at start; see %s" % (self.p.returncode,
                                                                        self.logname))
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                return self
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


def legacy_mailbox(po_dir, mb, extract=None):
    """The messages of a mailbox as `postgate-po show` prints them:
    [{field: [values], 'body': text}]; extract: a directory for the
    attachments (show --extract)."""
    import re
    out = run("-d", po_dir, "show", mb, *(["--extract", extract] if extract else [])).out
    msgs = []
    for block in re.split(r"^--- message \d+ ---$", out, flags=re.M)[1:]:
        head, _, body = block.lstrip("\n").partition("\n\n")
        m = {}
        for line in head.splitlines():
            k, _, v = line.partition(":")
            m.setdefault(k.strip(), []).append(v.strip())
        m["body"] = body
        msgs.append(m)
    return msgs


def smtp_send(host, port, sender, rcpts, subject, envid=None, ret=None, body="Hello.\r\n"):
    """One message over SMTP with the DSN parameters: rcpts [(address, NOTIFY
    or None, ORCPT or None)]; raises unless every reply is 250; the Message-ID."""
    import smtplib
    import re
    mid = "<%s.%d@ext.example>" % (re.sub(r"\W", "", subject), time.time_ns())
    data = ("From: Sender <%s>\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: %s\r\n\r\n%s"
            % (sender, ", ".join(r[0] for r in rcpts), subject, mid, body)).encode()
    opts = (["ENVID=" + envid] if envid else []) + (["RET=" + ret] if ret else [])
    with smtplib.SMTP(host, port, timeout=20) as c:
        c.ehlo("client.ext.example")
        c.mail(sender, opts)
        for addr, notify, orcpt in rcpts:
            ro = (["NOTIFY=" + notify] if notify else []) + (["ORCPT=" + orcpt] if orcpt else [])
            code, text = c.rcpt(addr, ro)
            if code != 250:
                raise RuntimeError("RCPT %s: %d %s" % (addr, code, text))
        code, text = c.data(data)
        if code != 250:
            raise RuntimeError("DATA: %d %s" % (code, text))
    return mid
