"""postgate-po deliver: responsibility, exactly once, the ledger, bad/, reports.

Bundles are crafted by pgbundle.py, an independent implementation of
docs/bundle-format.md, so this also checks the reader against the spec.
"""
import glob
import os
import shutil
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgbundle as pg  # noqa: E402

t = pg.Tally("po-deliver")
top = pg.scratch()
hq, key = pg.make_po(top, "CORP", "HQ", users=[("ANNA", "Anna Alt"), ("BEN", "Ben Bär")])
GW, HQ = "CORP/GW", "CORP/HQ"


def deliver(*extra):
    return pg.run("-d", hq, "deliver", *extra, check=False)


def put(seq, entries, k=key, src=GW, dst=HQ):
    data = pg.bundle(src, dst, seq, entries, k)
    name = pg.bundle_name(src, dst, seq)
    pg.drop(hq, name, data)
    return name, data


def msg(mid, rcpts, **kw):
    return (1, pg.message(mid, kw.pop("originator", "SMTP:bob@example.com"), rcpts, **kw))


def out_bundles():
    return sorted(glob.glob(os.path.join(hq, "out", "*.bundle")))


def dump(path):
    return pg.run("dump", path, "--key-file", os.path.join(top, "hq.key")).out


# 1. Only responsible local recipients get a copy.
name1, data1 = put(1, [msg("m1", [("CORP/HQ/ANNA", True), ("CORP/HQ/BEN", False),
                                  ("CORP/SALES/CARL", True)])])
p = deliver()
c = pg.counts(hq)
t.check(p.returncode == 0, "deliver of a good bundle exits 0")
t.check(c == {"ANNA": 1, "BEN": 0, "POSTMASTER": 0},
        "responsible ANNA gets one copy, display-only BEN none: %s" % c)
t.check(not os.listdir(os.path.join(hq, "in")), "the applied bundle is removed from in/")

# 2. The same bundle again: dropped, still one copy.
pg.drop(hq, name1, data1)
p = deliver()
t.check(pg.counts(hq)["ANNA"] == 1, "a bundle delivered twice leaves one copy")
t.check("already applied" in p.err and "duplicate dropped" in p.err,
        "the duplicate is dropped with an info line")
t.check(not os.listdir(os.path.join(hq, "in")) and not os.listdir(os.path.join(hq, "bad")),
        "the duplicate is removed, not moved to bad/")

# 3. An old postoffice that ignores responsibility delivers display-only names.
put(2, [msg("m2", [("CORP/HQ/ANNA", True), ("CORP/HQ/BEN", False)])])
deliver("--ignore-responsibility")
t.check(pg.counts(hq)["BEN"] == 1 and pg.counts(hq)["ANNA"] == 2,
        "--ignore-responsibility delivers to BEN too")

# 4. Same sequence number, different contents: a replay, refused into bad/.
name4, _ = put(2, [msg("m2-forged", [("CORP/HQ/ANNA", True)])])
p = deliver()
why = open(os.path.join(hq, "bad", name4 + ".why")).read()
t.check(p.returncode == 65, "deliver exits 65 (EX_DATAERR) when it refused a bundle")
t.check(os.path.exists(os.path.join(hq, "bad", name4)) and "different contents" in why,
        "a replayed sequence number with other contents goes to bad/ with a .why")
t.check(pg.counts(hq)["ANNA"] == 2, "the replay delivered nothing")

# 5. A gap is reported; a late bundle is still applied.
put(5, [msg("m5", [("CORP/HQ/ANNA", True)])])
p = deliver()
t.check("gap: sequence numbers 3-4 from CORP/GW" in p.err, "a gap is logged")
st = pg.run("-d", hq, "status").out
t.check("received from CORP/GW: applied 1-2, 5; gaps: 3-4" in st, "status shows the gap:\n" + st)
put(3, [msg("m3", [("CORP/HQ/ANNA", True)])])
p = deliver()
t.check(p.returncode == 0 and pg.counts(hq)["ANNA"] == 4, "a late bundle is applied")
st = pg.run("-d", hq, "status").out
t.check("applied 1-3, 5; gaps: 4" in st, "status after the late bundle shows gap 4 only")

# 6. Wrong destination and wrong key are refused, with reasons.
n6, _ = put(1, [msg("m6", [("CORP/HQ/ANNA", True)])], dst="CORP/SALES")
n7, _ = put(6, [msg("m7", [("CORP/HQ/ANNA", True)])], k=b"k" * 32)
deliver()
t.check("addressed to CORP/SALES" in open(os.path.join(hq, "bad", n6 + ".why")).read(),
        "a bundle for another postoffice goes to bad/")
t.check("bad HMAC" in open(os.path.join(hq, "bad", n7 + ".why")).read(),
        "a bundle with another key goes to bad/ as bad HMAC")
t.check(pg.counts(hq)["ANNA"] == 4, "refused bundles delivered nothing")
st = pg.run("-d", hq, "status").out
t.check("bad/: 3 refused" in st and "bad HMAC" in st, "status lists bad/ with the reasons")

# 7. Unknown recipient: a legacy NDR to the originator, bundled for the gateway.
put(7, [msg("m8", [("CORP/HQ/NOBODY", True), ("CORP/HQ/ANNA", True)])])
deliver()
ob = out_bundles()
t.check(len(ob) == 1, "one report bundle in out/")
d = dump(ob[0]) if ob else ""
t.check("Class:       non-delivery report (no report may be made about it)" in d and
        "About:       m8" in d and "CORP/HQ/NOBODY: not delivered, unknown recipient" in d and
        "Envelope:    SMTP:bob@example.com (responsible)" in d,
        "the NDR names the message, the recipient and the reason, to the originator:\n" + d)
t.check("dest:        CORP/GW" in d, "the NDR goes to the gateway")
t.check(pg.counts(hq)["ANNA"] == 5, "the known recipient of the same message got it")
for f in ob:
    os.unlink(f)

# 8. Never a report about a report.
put(8, [msg("r1", [("CORP/HQ/NOBODY", True)], cls=1, no_report=True, about="m0")])
deliver()
t.check(out_bundles() == [], "an NDR to an unknown recipient makes no NDR")
t.check(pg.counts(hq)["POSTMASTER"] == 1, "... and is not lost: it lands with POSTMASTER")
put(9, [msg("m9", [("CORP/HQ/NOBODY", True)], requests=2)])
deliver()
t.check(out_bundles() == [], "no NDR when the originator asked for none")

# 9. A receipt when asked for.
put(10, [msg("m10", [("CORP/HQ/BEN", True)], requests=1)])
deliver()
ob = out_bundles()
d = dump(ob[0]) if ob else ""
t.check(len(ob) == 1 and "Class:       receipt" in d and "CORP/HQ/BEN: delivered: delivered" in d,
        "a receipt request makes a delivery receipt:\n" + d)
for f in ob:
    os.unlink(f)

# 10. Dot-files are never read; directory entries are accepted.
with open(os.path.join(hq, "in", ".half-written.bundle.tmp"), "wb") as f:
    f.write(b"partial")
put(11, [(2, b"<directory/>"), msg("m11", [("CORP/HQ/ANNA", True)])])
p = deliver()
t.check(p.returncode == 0 and os.path.exists(os.path.join(hq, "in", ".half-written.bundle.tmp")),
        "a dot-file in in/ is left alone")
t.check("1 bundles applied" in p.out and pg.counts(hq)["ANNA"] == 6,
        "a bundle with a directory entry and a message is applied")

# 11. A report for a local originator without a mailbox goes to POSTMASTER,
# which every postoffice has and which cannot be deleted.
put(12, [msg("m12", [("CORP/HQ/NOBODY", True)], originator="CORP/HQ/GONE")])
deliver()
t.check(pg.counts(hq)["POSTMASTER"] == 2 and out_bundles() == [],
        "an NDR for a local originator with no mailbox lands with POSTMASTER, not lost")
p = pg.run("-d", hq, "deluser", "POSTMASTER", check=False)
t.check(p.returncode == 64 and "cannot be deleted" in p.err, "POSTMASTER cannot be deleted")

# 12. What cannot be read is a fault of ours: left in in/, exit 74, not bad/.
os.mkdir(os.path.join(hq, "in", "CORP.GW+CORP.HQ+0000000099.bundle"))
nbad = len(os.listdir(os.path.join(hq, "bad")))
p = deliver()
t.check(p.returncode == 74 and "stay in in/" in p.err and
        os.path.isdir(os.path.join(hq, "in", "CORP.GW+CORP.HQ+0000000099.bundle")) and
        len(os.listdir(os.path.join(hq, "bad"))) == nbad,
        "an unreadable entry in in/ stays there and deliver exits 74 (EX_IOERR)")

os.rmdir(os.path.join(hq, "in", "CORP.GW+CORP.HQ+0000000099.bundle"))

# 13. Reports that cannot be built in one bundle are split; building a
# report at the hop limit does not fail (SPEC 3.2: it keeps the hops).
many = [msg("r%d" % i, [("CORP/HQ/ANNA", True)], requests=1) for i in range(1001)]
many.append(msg("deep", [("CORP/HQ/NOBODY", True)], hops=["CORP/X%d" % i for i in range(255)]))
put(13, many)
p = deliver()
ob = out_bundles()
t.check(p.returncode == 0 and len(ob) == 2, "1002 reports go out in two bundles: %s %s" % (ob, p.err[-300:]))
d = "".join(dump(f) for f in ob)
deep = d[d.find("About:       deep"):]
deep = deep[:deep.find("=== entry")] if "=== entry" in deep else deep
t.check("About:       deep" in d and deep.count("Hop:") == 255,
        "the NDR about a message at the hop limit keeps its 255 hops")
for f in ob:
    os.unlink(f)

# 14. A send whose bundle cannot be written yet is still sent: the bundle
# waits in the outbox (status says so) and the next deliver writes it.
os.rename(os.path.join(hq, "out"), os.path.join(hq, "out.away"))
with open(os.path.join(hq, "out"), "w") as f:
    f.write("not a directory")
p = pg.run("-d", hq, "send", "--from", "ANNA", "--to", "SMTP:x@example.com", "--subject", "q",
           check=False)
st = pg.run("-d", hq, "status").out
t.check(p.returncode == 0 and "outbox: 1 bundles not yet written" in st,
        "send with out/ unwritable succeeds and status shows the queued bundle")
os.unlink(os.path.join(hq, "out"))
os.rename(os.path.join(hq, "out.away"), os.path.join(hq, "out"))
deliver()
t.check(len(out_bundles()) == 1 and "outbox:" not in pg.run("-d", hq, "status").out,
        "the next deliver writes the queued bundle")

# 15. Bad names and codepages are refused where they enter.
p = pg.run("-d", hq, "adduser", "CTRL", "--name", "a\x01b", check=False)
t.check(p.returncode == 64 and "control character" in p.err, "a name with a control character is refused")
p = pg.run("-d", os.path.join(top, "u16"), "init", "--net", "CORP", "--po", "U16", "--codepage",
           "UTF-16", "--key-file", os.path.join(top, "u16.key"), check=False)
t.check(p.returncode == 64 and "codepage" in p.err, "a codepage that is not ASCII-compatible is refused")

# 16. "delivered to" is logged only once the delivery is committed: a
# transaction that fails at its end (here: the ledger refuses the row) logs none.
db = sqlite3.connect(os.path.join(hq, "po.db"))
db.execute("CREATE TRIGGER no_ledger BEFORE INSERT ON ledger BEGIN"
           " SELECT RAISE(ABORT, 'ledger refused by the test'); END")
db.commit()
before = pg.counts(hq)["ANNA"]
put(14, [msg("m16", [("CORP/HQ/ANNA", True)])])
p = deliver()
t.check(p.returncode != 0 and "delivered to" not in p.err and pg.counts(hq)["ANNA"] == before,
        "a delivery rolled back logs no 'delivered to': %d %s" % (p.returncode, p.err))
db.execute("DROP TRIGGER no_ledger")
db.commit()
db.close()
p = deliver()
t.check(p.returncode == 0 and p.err.count("delivered to CORP/HQ/ANNA") == 1 and
        pg.counts(hq)["ANNA"] == before + 1,
        "the same bundle committed later logs 'delivered to' once: %s" % p.err)

# 17. show --extract: a legal 255-byte attachment name does not fit "K-" in
# front of it (NAME_MAX): it is shortened, keeping its extension and whole
# characters, and the mail after it is still shown and extracted.
pg.run("-d", hq, "adduser", "CAROL", "--name", "Carol")
long_ascii = b"a" * 251 + b".txt"
long_cp850 = b"\x82" * 100 + b"b" * 151 + b".pdf"   # 'é' is 0x82 in CP850
put(15, [msg("m17a", [("CORP/HQ/CAROL", True)], attachments=[(long_ascii, b"one"),
                                                           (long_cp850, b"two")]),
         msg("m17b", [("CORP/HQ/CAROL", True)], attachments=[(b"later.txt", b"three")])])
deliver()
x = os.path.join(top, "extract17")
os.mkdir(x)
p = pg.run("-d", hq, "show", "CAROL", "--extract", x, check=False)
got = {}
for n in os.listdir(x):
    with open(os.path.join(x, n), "rb") as f:
        got[n] = f.read()
names = sorted(os.fsencode(n) for n in got)
t.check(p.returncode == 0 and "--- message 2 ---" in p.out and got.get("2-later.txt") == b"three",
        "the message after 255-byte names is shown and extracted: %d %s %s"
        % (p.returncode, p.err, sorted(got)))
t.check(len(names) == 3 and all(len(n) <= 255 for n in names),
        "every extracted name fits NAME_MAX: %s" % [len(n) for n in names])
one = [n for n, d in got.items() if d == b"one"]
two = [n for n, d in got.items() if d == b"two"]
t.check(len(one) == 1 and one[0].startswith("1-aaaa") and one[0].endswith("~1.txt"),
        "a long name keeps its extension: %s" % one)

def utf8(name):
    try:
        os.fsencode(name).decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


t.check(len(two) == 1 and two[0].startswith("1-\u00e9\u00e9") and two[0].endswith("~2.pdf")
        and utf8(two[0]), "a long non-ASCII name is cut between characters: %s" % two)
t.check("extracted " + os.path.join(x, one[0] if one else "?") in p.out,
        "show prints the shortened name it wrote")

shutil.rmtree(top)
t.done()
