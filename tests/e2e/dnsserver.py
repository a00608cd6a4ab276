#!/usr/bin/python3
"""dnsserver - a small authoritative DNS server for the end-to-end tests.

It answers from a zone given as a dict, over UDP and TCP on one loopback
port picked by binding port 0, in a thread of its own, and logs every
question it was asked:

    zone = {
        "a.test":    {"MX": [(10, "mx.a.test")]},
        "mx.a.test": {"A": ["127.0.0.2"], "AAAA": []},
        "null.test": {"MX": [(0, ".")]},          # RFC 7505 null MX
        "flaky.test": "SERVFAIL",                 # every question: SERVFAIL
    }
    srv = DNSServer(zone)            # started; srv.port is its port
    ...                              # [delivery] resolver = 127.0.0.1:<srv.port>
    srv.questions()                  # [(name, type), ...] in arrival order
    srv.stop()

A name that is not in the zone is NXDOMAIN; a name in it without records
of the type asked is NOERROR with an empty answer (NODATA), with an SOA in
the authority section.  Names compare case-insensitively, with or without
the final dot.  MX answers carry the A/AAAA records of their targets in the
additional section when the zone has them (a resolver may or may not use
them).  The zone may be changed while the server runs (set_zone).

Run on its own, it serves a zone given as JSON on the command line and
prints its port:  dnsserver.py '{"a.test": {"MX": [[10, "mx.a.test"]]}}'
"""
import json
import select
import socket
import struct
import sys
import threading

from dnslib import AAAA, A, CNAME, DNSHeader, DNSRecord, MX, QTYPE, RCODE, RR, SOA


def _norm(name):
    name = str(name).lower()
    return name[:-1] if name.endswith(".") and name != "." else name


class DNSServer:
    def __init__(self, zone, host="127.0.0.1", ttl=60, tcp=True):
        self.host, self.ttl = host, ttl
        self._lock = threading.Lock()
        self._questions = []
        self.set_zone(zone)
        self._stop = threading.Event()
        self.udp, self.tcp = self._bind(tcp)
        self.port = self.udp.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="dnsserver", daemon=True)
        self._thread.start()

    # ---- setup --------------------------------------------------------------------------
    def _bind(self, want_tcp):
        """A UDP socket and, on the same port, a listening TCP one."""
        last = None
        for _ in range(50):
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.bind((self.host, 0))
            if not want_tcp:
                return u, None
            t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                t.bind((self.host, u.getsockname()[1]))
                t.listen(16)
                return u, t
            except OSError as e:
                last = e
                u.close()
                t.close()
        raise OSError("dnsserver: no port free for both UDP and TCP: %s" % last)

    def set_zone(self, zone):
        z = {}
        for name, recs in zone.items():
            z[_norm(name)] = recs if isinstance(recs, str) else \
                {k.upper(): list(v) for k, v in recs.items()}
        with self._lock:
            self.zone = z

    def questions(self):
        with self._lock:
            return list(self._questions)

    def asked(self, name, qtype=None):
        """How often name (and qtype, if given) was asked."""
        name = _norm(name)
        return sum(1 for n, t in self.questions() if n == name and (qtype is None or t == qtype))

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        self.udp.close()
        if self.tcp:
            self.tcp.close()

    # ---- answering ----------------------------------------------------------------------
    def _rr(self, name, qtype, value):
        if qtype == "A":
            return RR(name, QTYPE.A, rdata=A(value), ttl=self.ttl)
        if qtype == "AAAA":
            return RR(name, QTYPE.AAAA, rdata=AAAA(value), ttl=self.ttl)
        if qtype == "MX":
            pref, host = value
            return RR(name, QTYPE.MX, rdata=MX(host, int(pref)), ttl=self.ttl)
        if qtype == "CNAME":
            return RR(name, QTYPE.CNAME, rdata=CNAME(value), ttl=self.ttl)
        raise ValueError("dnsserver: record type %s is not supported" % qtype)

    def answer(self, data):
        """The reply (bytes) to one query (bytes), or None for garbage."""
        try:
            req = DNSRecord.parse(data)
        except Exception:  # noqa: BLE001 - anything unparsable is ignored, like a real server
            return None
        reply = DNSRecord(DNSHeader(id=req.header.id, qr=1, aa=1, ra=1, rd=req.header.rd),
                          q=req.q)
        name = _norm(req.q.qname)
        qtype = QTYPE.get(req.q.qtype, str(req.q.qtype))
        with self._lock:
            self._questions.append((name, qtype))
            zone = self.zone
        recs = zone.get(name)
        if recs is None:
            reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(self._soa())
        elif isinstance(recs, str):
            reply.header.rcode = getattr(RCODE, recs)
        else:
            values = recs.get(qtype, [])
            if not values and "CNAME" in recs and qtype != "CNAME":
                values, qtype = recs["CNAME"], "CNAME"
            for v in values:
                reply.add_answer(self._rr(name, qtype, v))
            if qtype == "MX":
                for _, host in values:
                    target = zone.get(_norm(host))
                    if isinstance(target, dict):
                        for t in ("A", "AAAA"):
                            for v in target.get(t, []):
                                reply.add_ar(self._rr(_norm(host), t, v))
            if not values:
                reply.add_auth(self._soa())
        return reply.pack()

    def _soa(self):
        return RR("test", QTYPE.SOA, ttl=self.ttl,
                  rdata=SOA("ns.test", "hostmaster.test", (1, 3600, 600, 86400, 60)))

    def _serve(self):
        socks = [self.udp] + ([self.tcp] if self.tcp else [])
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select(socks, [], [], 0.2)
            except (OSError, ValueError):
                return
            for s in ready:
                try:
                    if s is self.udp:
                        data, peer = s.recvfrom(65535)
                        out = self.answer(data)
                        if out is not None:
                            s.sendto(out, peer)
                    else:
                        self._tcp_one(s)
                except OSError:
                    pass

    def _tcp_one(self, listener):
        conn, _ = listener.accept()
        conn.settimeout(5)
        try:
            while True:
                head = self._recv(conn, 2)
                if head is None:
                    return
                data = self._recv(conn, struct.unpack(">H", head)[0])
                if data is None:
                    return
                out = self.answer(data)
                if out is None:
                    return
                conn.sendall(struct.pack(">H", len(out)) + out)
        except OSError:
            pass
        finally:
            conn.close()

    @staticmethod
    def _recv(conn, n):
        buf = b""
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf


if __name__ == "__main__":
    srv = DNSServer(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {})
    print("dnsserver on 127.0.0.1:%d (UDP and TCP); Ctrl-C stops it" % srv.port)
    sys.stdout.flush()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        srv.stop()
