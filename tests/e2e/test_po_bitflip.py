"""Flip every byte of a small bundle, one at a time: each flip is refused
with the error the documented check order predicts (docs/bundle-format.md,
"Order of checks"), nothing is delivered, and the bundle is in bad/."""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgbundle as pg  # noqa: E402

t = pg.Tally("po-bitflip")
top = pg.scratch()
hq, key = pg.make_po(top, "CORP", "HQ", users=[("ANNA", "Anna")])
good = pg.bundle("CORP/GW", "CORP/HQ", 1, [(1, pg.message(
    "flip-1", "SMTP:bob@example.com", [("CORP/HQ/ANNA", True)],
    subject=b"Flip", body=b"Every byte counts.\r\n"))], key)
name = pg.bundle_name("CORP/GW", "CORP/HQ", 1)
bad = os.path.join(hq, "bad")
print("bundle of %d bytes" % len(good))

seen, wrong, undetected = {}, [], []
for i in range(len(good)):
    flipped = bytearray(good)
    flipped[i] ^= 0xFF
    expect = pg.predict(bytes(flipped), key)
    if expect is None:
        undetected.append(i)
        continue
    before = set(os.listdir(bad))
    pg.drop(hq, name, bytes(flipped))
    p = pg.run("-d", hq, "-q", "deliver", check=False)
    new = sorted(set(os.listdir(bad)) - before)
    whys = [n for n in new if n.endswith(".why")]
    why = open(os.path.join(bad, whys[0])).read() if len(whys) == 1 else ""
    moved = len(new) == 2 and not os.listdir(os.path.join(hq, "in"))
    if p.returncode != 65 or not moved or not why.startswith(expect + ":"):
        wrong.append((i, expect, p.returncode, why.strip(), new))
    seen[expect] = seen.get(expect, 0) + 1

t.check(not undetected, "every flip is caught before the payload is inflated: %s" % undetected)
t.check(not wrong, "every flip is refused with the predicted error, exit 65, into bad/ "
        "with a .why (first mismatches: %s)" % wrong[:5])
print("refusals by check: %s" % seen)
for kind in ("truncated", "bad magic", "unknown version", "over a limit", "bad HMAC"):
    t.check(seen.get(kind, 0) > 0, "some flip reaches the '%s' check" % kind)
t.check(pg.counts(hq) == {"ANNA": 0, "POSTMASTER": 0}, "no flipped bundle delivered anything")
t.check(len([n for n in os.listdir(bad) if not n.endswith(".why")]) == len(good),
        "every flipped bundle is kept in bad/, none deleted")

# The undamaged bundle still goes through: the flips were the only problem.
pg.drop(hq, name, good)
p = pg.run("-d", hq, "deliver", check=False)
t.check(p.returncode == 0 and pg.counts(hq)["ANNA"] == 1, "the intact bundle delivers one copy")
shutil.rmtree(top)
t.done()
