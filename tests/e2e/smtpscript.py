#!/usr/bin/python3
"""smtpscript - scripted SMTP servers for the end-to-end tests.

A Server is a small ESMTP server on a loopback address (127.0.0.0/8), in a
thread of its own with its own asyncio loop, that logs everything a client
did: sessions, the command lines of each, the replies it got, the messages
accepted.  By default it behaves (PIPELINING, 8BITMIME, SIZE,
ENHANCEDSTATUSCODES; STARTTLS when given an ssl context; AUTH PLAIN LOGIN
when given credentials, after STARTTLS only unless told otherwise).  A
test makes it misbehave by subclassing and overriding a hook:

    greeting(s)            the banner
    ehlo(s, arg)           the EHLO reply (extensions(s) lists the keywords)
    on_mail(s, arg)        the reply to MAIL FROM
    on_rcpt(s, arg, addr)  the reply to RCPT TO
    on_data(s)             the reply to DATA; return False to refuse it
    on_data_end(s, data)   the reply after the final dot; accept(s, data)
                           logs the message as accepted (the default does)
    tls_handshake(s)       after "220 Ready to start TLS"
    on_line(s, line)       every command line before it is dispatched;
                           return True when it was handled

Inside a hook, s is the Session: s.reply("250 ok") writes one reply (a
multiline one when given several lines), s.write(bytes) / await s.drain()
write raw bytes, s.close() hangs up, s.mail_from / s.rcpts are the
transaction, s.mails counts MAIL commands in the session.  Replies are
written and drained one by one, so a hook can split one across TCP segments
with a delay between them (split_reply).

The log, read from the test's thread (a lock guards it):
    server.sessions()  [Session] in order of arrival, each with .start/.end
                       (time.time()), .commands [text], .replies [text],
                       .events [text], .tls, .auth_user, .mails, .accepted,
                       .plain (every byte received before TLS)
    server.messages()  [Message] accepted: .session, .mail_from, .rcpts,
                       .data (bytes, dot-unstuffed, CRLF), .tls, .auth_user,
                       .subject, .message_id
    server.wait_idle(timeout)  until no session is open
    server.peak        the most sessions open at once
    server.violations()  [(session number, text)]: what the client did
                       against RFC 5321 / 2920 / 6152 / 3461 / 3207 (below)
Session.ahead[i] holds the bytes the client had already sent behind
commands[i] when it was read: "RCPT..." behind a MAIL shows pipelining.

The server notes as a violation (Session.violations): a command line not
ended by CRLF; anything sent behind a command before its reply came when
PIPELINING was not offered, or behind EHLO, HELO, DATA, STARTTLS, AUTH,
QUIT or NOOP at all (RFC 2920 3.1); MAIL before EHLO/HELO (again after
STARTTLS); MAIL parameters SIZE, BODY, RET, ENVID, SMTPUTF8, AUTH and RCPT
parameters NOTIFY, ORCPT without the extension offered; in the data a bare
CR or LF, a line over 1000 bytes, 8-bit bytes without BODY=8BITMIME.  A
violation never changes the replies: the client goes on as it would.
"""
import asyncio
import base64
import email.parser
import email.policy
import re
import socket
import ssl
import threading
import time

from pgbundle import free_port  # noqa: F401 (ss.free_port, for the tests)

LIMIT = 1 << 20                 # the longest line the server reads


def common_port(hosts, tries=50):
    """A TCP port free on every address in hosts (servers of one site share the
    [delivery] port on different 127.0.0.x)."""
    for _ in range(tries):
        port = free_port(hosts[0])
        socks = []
        try:
            for h in hosts:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind((h, port))
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise OSError("no port free on all of %s" % hosts)


def server_context(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


class Message:
    def __init__(self, session, data):
        self.session = session.n
        self.mail_from = session.mail_from
        self.rcpts = list(session.rcpts)
        self.data = data
        self.tls = session.tls
        self.auth_user = session.auth_user
        self.time = time.time()
        head = data.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
        h = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(head)
        self.subject = str(h["Subject"]) if h["Subject"] is not None else None
        self.message_id = str(h["Message-ID"]).strip() if h["Message-ID"] is not None else None

    def parsed(self):
        return email.parser.BytesParser(policy=email.policy.default).parsebytes(self.data)


class Session:
    def __init__(self, server, n, reader, writer):
        self.server, self.n, self.reader, self.writer = server, n, reader, writer
        peer = writer.get_extra_info("peername") or ("?", 0)
        sock = writer.get_extra_info("sockname") or ("?", 0)
        self.peer, self.local = peer[0], sock[0]
        self.start, self.end = time.time(), None
        self.commands, self.replies, self.events = [], [], []
        self.ahead = []             # per command: the bytes already read behind it
        self.offered = set()        # the EHLO keywords of the last EHLO reply
        self.params = {}            # the parameters of the current MAIL
        self.violations = []
        self.tls = False
        self.auth_user = None
        self.helo = None
        self.mails = 0
        self.accepted = 0
        self.plain = bytearray()
        self.closed = False
        self.mail_from, self.rcpts = None, []

    def __repr__(self):
        return "<session %d %s %s>" % (self.n, self.peer, self.commands)

    # ---- writing (in the server's loop) ------------------------------------------------
    def write(self, data):
        if not self.closed:
            self.writer.write(data)

    async def drain(self):
        if not self.closed:
            await self.writer.drain()

    async def reply(self, *lines):
        """One reply: lines like "250 ok", or several for a multiline one
        ("250-a", "250 b"; a lone code and texts are joined accordingly)."""
        if len(lines) == 1 and "\n" in lines[0]:
            lines = tuple(lines[0].split("\n"))
        text = "".join(l + "\r\n" for l in lines)
        with self.server._lock:
            self.replies.append(text.rstrip("\r\n"))
        self.write(text.encode("utf-8", "surrogateescape"))
        await self.drain()

    async def split_reply(self, first, rest, delay=2.0):
        """first (lines) in one segment, rest after delay seconds in another."""
        await self.reply(*first)
        await asyncio.sleep(delay)
        await self.reply(*rest)

    def event(self, text):
        with self.server._lock:
            self.events.append(text)

    def violation(self, text):
        with self.server._lock:
            self.violations.append(text)
            self.events.append("violation: " + text)

    def close(self, abort=False):
        if self.closed:
            return
        self.closed = True
        try:
            if abort:
                self.writer.transport.abort()
            else:
                self.writer.close()
        except Exception:  # noqa: BLE001
            pass

    def reset(self):
        self.mail_from, self.rcpts = None, []

    # ---- reading -----------------------------------------------------------------------
    async def readline(self, timeout):
        try:
            line = await asyncio.wait_for(self.reader.readline(), timeout)
        except asyncio.TimeoutError:
            self.event("idle timeout")
            return None
        except (ValueError, asyncio.LimitOverrunError):
            self.event("line over %d bytes" % LIMIT)
            return None
        if not line:
            return None
        if not self.tls:
            self.plain += line
        return line


class Server:
    """See the module's docstring."""

    def __init__(self, host="127.0.0.1", port=0, hostname="mx.test", tls=None, auth=None,
                 auth_before_tls=False, auth_required=False, name=None, idle_timeout=30):
        self.host, self.port = host, port
        self.hostname = hostname
        self.tls_ctx = tls
        self.auth = auth                        # (user, password) or None
        self.auth_before_tls = auth_before_tls
        self.auth_required = auth_required
        self.name = name or "%s:%s" % (host, port)
        self.idle_timeout = idle_timeout
        self._lock = threading.Lock()
        self._sessions, self._messages = [], []
        self._open = 0
        self.peak = 0                           # most sessions open at once
        self.loop = None
        self._server = None

    # ---- life -------------------------------------------------------------------------
    def start(self):
        ready, err = threading.Event(), []
        self.loop = asyncio.new_event_loop()

        def main():
            asyncio.set_event_loop(self.loop)
            try:
                self._server = self.loop.run_until_complete(
                    asyncio.start_server(self._handle, self.host, self.port, limit=LIMIT))
                self.port = self._server.sockets[0].getsockname()[1]
            except Exception as e:  # noqa: BLE001 - handed to start()
                err.append(e)
                ready.set()
                return
            ready.set()
            self.loop.run_forever()
            self.loop.close()

        self._thread = threading.Thread(target=main, name="smtp " + self.name, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("smtpscript: %s did not start" % self.name)
        if err:
            raise err[0]
        self.name = "%s:%d" % (self.host, self.port)
        return self

    def stop(self):
        if not self.loop or self.loop.is_closed():
            return

        async def close():
            self._server.close()
            for s in self.sessions():
                s.close(abort=True)

        try:
            asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)
        except Exception:  # noqa: BLE001
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    # ---- the log ----------------------------------------------------------------------
    def sessions(self):
        with self._lock:
            return list(self._sessions)

    def messages(self):
        with self._lock:
            return list(self._messages)

    def violations(self):
        return [(s.n, v) for s in self.sessions() for v in s.violations]

    def open_sessions(self):
        with self._lock:
            return self._open

    def wait_idle(self, timeout=10):
        """True when no session is open, waiting up to timeout seconds."""
        end = time.time() + timeout
        while time.time() < end:
            if self.open_sessions() == 0:
                return True
            time.sleep(0.02)
        return self.open_sessions() == 0

    def accept(self, s, data):
        m = Message(s, data)
        with self._lock:
            self._messages.append(m)
            s.accepted += 1
        return m

    # ---- the default behaviour (hooks) ------------------------------------------------
    def extensions(self, s):
        ext = ["PIPELINING", "8BITMIME", "SIZE 52428800", "ENHANCEDSTATUSCODES"]
        if self.tls_ctx is not None and not s.tls:
            ext.append("STARTTLS")
        if self.auth and (s.tls or self.auth_before_tls):
            ext.append("AUTH PLAIN LOGIN")
        return ext

    async def greeting(self, s):
        await s.reply("220 %s ESMTP smtpscript" % self.hostname)

    async def ehlo(self, s, arg):
        lines = ["%s hello %s" % (self.hostname, arg)] + self.extensions(s)
        await s.reply(*multiline(250, lines))

    async def on_line(self, s, line):
        return False

    async def on_mail(self, s, arg):
        await s.reply("250 2.1.0 Ok")
        return True

    async def on_rcpt(self, s, arg, addr):
        await s.reply("250 2.1.5 Ok")
        return True

    async def on_data(self, s):
        await s.reply("354 End data with <CR><LF>.<CR><LF>")
        return True

    async def on_data_end(self, s, data):
        self.accept(s, data)
        await s.reply("250 2.0.0 Ok: queued as %s-%d-%d" % (self.host, s.n, s.accepted))

    async def tls_handshake(self, s):
        await s.writer.start_tls(self.tls_ctx, ssl_handshake_timeout=10)

    # ---- the engine -------------------------------------------------------------------
    async def _handle(self, reader, writer):
        with self._lock:
            s = Session(self, len(self._sessions), reader, writer)
            self._sessions.append(s)
            self._open += 1
            self.peak = max(self.peak, self._open)
        try:
            await self.greeting(s)
            while not s.closed:
                line = await s.readline(self.idle_timeout)
                if line is None:
                    break
                text = line.decode("utf-8", "surrogateescape").rstrip("\r\n")
                buffered = getattr(reader, "_buffer", b"")
                with self._lock:
                    s.commands.append(text)
                    s.ahead.append(bytes(buffered[:512]))
                verb, _, arg = text.partition(" ")
                self._check_line(s, line, verb.upper(), bool(buffered))
                if await self.on_line(s, text):
                    continue
                handler = getattr(self, "_cmd_" + verb.lower(), None) if verb.isalpha() else None
                if handler is None:
                    await s.reply("502 5.5.2 Error: command not recognized")
                else:
                    await handler(s, arg.strip())
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, OSError) as e:
            s.event("connection error: %s" % e)
        except asyncio.CancelledError:
            s.event("cancelled")
        except Exception as e:  # noqa: BLE001 - a test server logs and goes on
            s.event("server error: %r" % e)
        finally:
            s.close()
            with self._lock:
                s.end = time.time()
                self._open -= 1

    def _check_line(self, s, line, verb, ahead):
        if not line.endswith(b"\r\n") or b"\r" in line[:-2]:
            s.violation("command line not ended by CRLF alone: %r" % line[:60])
        if ahead and verb in ("EHLO", "HELO", "DATA", "STARTTLS", "AUTH", "QUIT", "NOOP"):
            s.violation("%s not the last command of a group: %r behind it"
                        % (verb, bytes(s.reader._buffer[:40])))
        elif ahead and "PIPELINING" not in s.offered:
            s.violation("%s pipelined, PIPELINING not offered: %r behind it"
                        % (verb, bytes(s.reader._buffer[:40])))

    async def _cmd_ehlo(self, s, arg):
        s.helo = arg
        s.reset()
        n = len(s.replies)
        await self.ehlo(s, arg)
        lines = "\r\n".join(s.replies[n:]).split("\r\n")
        s.offered = set()
        if lines and lines[0].startswith("250"):
            s.offered = {l[4:].split()[0].upper() for l in lines[1:] if l[4:].split()}

    async def _cmd_helo(self, s, arg):
        s.helo = arg
        s.offered = set()
        s.reset()
        await s.reply("250 %s" % self.hostname)

    async def _cmd_starttls(self, s, arg):
        if self.tls_ctx is None or s.tls:
            await s.reply("502 5.5.1 Error: STARTTLS not offered")
            return
        await s.reply("220 2.0.0 Ready to start TLS")
        # pipelined plaintext behind STARTTLS is discarded (CVE-2011-0411)
        buffered = getattr(s.reader, "_buffer", None)
        if buffered:
            s.event("discarded %d bytes pipelined behind STARTTLS" % len(buffered))
            buffered.clear()
        try:
            await self.tls_handshake(s)
        except (ssl.SSLError, ConnectionError, OSError, asyncio.TimeoutError) as e:
            s.event("TLS handshake failed: %s" % e)
            s.close(abort=True)
            return
        if s.closed:
            return
        s.tls = True
        s.helo = None
        s.offered = set()
        s.reset()
        s.event("TLS established")

    async def _cmd_auth(self, s, arg):
        if not self.auth or not (s.tls or self.auth_before_tls):
            await s.reply("502 5.5.1 Error: AUTH not offered")
            return
        if not s.tls:
            s.event("AUTH in plaintext")
        parts = arg.split()
        mech = parts[0].upper() if parts else ""
        user = pw = None
        try:
            if mech == "PLAIN":
                resp = parts[1] if len(parts) > 1 else await self._challenge(s, "")
                if resp is None:
                    return
                fields = base64.b64decode(resp, validate=True).split(b"\0")
                if len(fields) == 3:
                    user, pw = fields[1].decode(), fields[2].decode()
            elif mech == "LOGIN":
                if len(parts) > 1:
                    u = parts[1]
                else:
                    u = await self._challenge(s, "VXNlcm5hbWU6")
                p = await self._challenge(s, "UGFzc3dvcmQ6") if u is not None else None
                if p is None:
                    return
                user = base64.b64decode(u, validate=True).decode()
                pw = base64.b64decode(p, validate=True).decode()
            else:
                await s.reply("504 5.5.4 Unrecognized authentication type")
                return
        except (ValueError, UnicodeDecodeError):
            await s.reply("501 5.5.2 Cannot decode response")
            return
        if (user, pw) == tuple(self.auth):
            s.auth_user = user
            s.event("AUTH %s as %s" % (mech, user))
            await s.reply("235 2.7.0 Authentication successful")
        else:
            s.event("AUTH %s failed for %r" % (mech, user))
            await s.reply("535 5.7.8 Error: authentication failed")

    async def _challenge(self, s, text):
        await s.reply("334 " + text)
        line = await s.readline(self.idle_timeout)
        if line is None:
            s.close()
            return None
        resp = line.decode("ascii", "replace").strip()
        with self._lock:
            s.commands.append("(auth response)")
            s.ahead.append(b"")
        if resp == "*":
            await s.reply("501 5.7.0 Authentication aborted")
            return None
        return resp

    async def _cmd_mail(self, s, arg):
        with self._lock:
            s.mails += 1
        if s.mail_from is not None:
            await s.reply("503 5.5.1 Error: nested MAIL command")
            return
        if self.auth_required and not s.auth_user:
            await s.reply("530 5.7.0 Authentication required")
            return
        m = re.match(r"(?i)FROM:\s*<([^>]*)>", arg)
        if not m:
            await s.reply("501 5.5.4 Syntax: MAIL FROM:<address>")
            return
        if s.helo is None:
            s.violation("MAIL before EHLO/HELO%s" % (" after STARTTLS" if s.tls else ""))
        s.params = params(arg[m.end():])
        for k, ext in (("SIZE", "SIZE"), ("BODY", "8BITMIME"), ("RET", "DSN"),
                       ("ENVID", "DSN"), ("SMTPUTF8", "SMTPUTF8"), ("AUTH", "AUTH")):
            if k in s.params and ext not in s.offered:
                s.violation("MAIL %s= without %s offered" % (k, ext))
        if await self.on_mail(s, arg):
            s.mail_from = m.group(1)

    async def _cmd_rcpt(self, s, arg):
        if s.mail_from is None:
            await s.reply("503 5.5.1 Error: need MAIL command")
            return
        m = re.match(r"(?i)TO:\s*<([^>]*)>", arg)
        if not m:
            await s.reply("501 5.5.4 Syntax: RCPT TO:<address>")
            return
        for k in params(arg[m.end():]):
            if k in ("NOTIFY", "ORCPT") and "DSN" not in s.offered:
                s.violation("RCPT %s= without DSN offered" % k)
        if await self.on_rcpt(s, arg, m.group(1)):
            s.rcpts.append(m.group(1))

    async def _cmd_data(self, s, arg):
        if s.mail_from is None:
            await s.reply("503 5.5.1 Error: need MAIL command")
            return
        if not s.rcpts:
            await s.reply("554 5.5.1 Error: no valid recipients")
            return
        if not await self.on_data(s):
            s.reset()
            return
        data = await self.read_data(s)
        if data is None:
            return
        await self.on_data_end(s, data)
        s.reset()

    async def read_data(self, s):
        """The message up to CRLF.CRLF, dot-unstuffed; None if the client went."""
        lines = []
        eight = s.params.get("BODY", "").upper() == "8BITMIME"
        while True:
            line = await s.readline(self.idle_timeout)
            if line is None:
                s.event("connection lost in DATA after %d lines" % len(lines))
                s.close()
                return None
            if not line.endswith(b"\r\n") or b"\r" in line[:-2]:
                s.violation("data line %d: a bare CR or LF: %r" % (len(lines) + 1, line[-60:]))
            elif len(line) > 1000:
                s.violation("data line %d: %d bytes, over 1000" % (len(lines) + 1, len(line)))
            if not eight and any(b > 127 for b in line):
                s.violation("data line %d: 8-bit bytes without BODY=8BITMIME" % (len(lines) + 1))
                eight = True            # once per message
            if line in (b".\r\n", b".\n"):
                return b"".join(lines)
            if line.startswith(b"."):
                line = line[1:]
            lines.append(line)

    async def _cmd_rset(self, s, arg):
        s.reset()
        await s.reply("250 2.0.0 Ok")

    async def _cmd_noop(self, s, arg):
        await s.reply("250 2.0.0 Ok")

    async def _cmd_quit(self, s, arg):
        await s.reply("221 2.0.0 Bye")
        s.close()


class RefusesBad(Server):
    """The Internet of the report tests: refuses RCPT for bad*@ (550 5.1.1
    User unknown), takes the rest."""

    async def on_rcpt(self, s, arg, addr):
        if addr.startswith("bad"):
            await s.reply("550 5.1.1 <%s>: Recipient address rejected: User unknown" % addr)
            return False
        await s.reply("250 2.1.5 Ok")
        return True


def params(text):
    """{KEY: value} of ESMTP parameters (KEY upper case)."""
    out = {}
    for p in text.split():
        k, _, v = p.partition("=")
        out[k.upper()] = v
    return out


def multiline(code, texts):
    """["a", "b"] -> ["250-a", "250 b"]."""
    return ["%d%s%s" % (code, "-" if i < len(texts) - 1 else " ", t) for i, t in enumerate(texts)]


if __name__ == "__main__":
    import sys
    srv = Server(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0).start()
    print("smtpscript server on %s; Ctrl-C stops it" % srv.name)
    sys.stdout.flush()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        for s in srv.sessions():
            print(s.n, s.commands, s.replies, s.events)
        srv.stop()
