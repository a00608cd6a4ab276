"""Text in CP437, CP850 and CP1252 and binary attachments survive
send -> bundle write -> bundle read -> deliver -> show, byte for byte."""
import glob
import hashlib
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgbundle as pg  # noqa: E402

t = pg.Tally("po-codepages")
top = pg.scratch()
keyfile = os.path.join(top, "shared.key")
# The receiving postoffice stands in for the gateway: senders bundle to it.
recv, _ = pg.make_po(top, "CORP", "RECV", "CP850", key=keyfile, users=[("READER", "Reader")])

samples = {
    "CP437": ("Grüße ½ ░▒▓ café", "Zeile eins: äöü ÄÖÜ ß\nZeile zwei: ╔═╗ ±≥ π\n"),
    "CP850": ("Größe Ærø Ñ ¿ ½", "Línea uno: ñ á é í ó ú ¿¡\nLigne deux: çà è ù Ø ø Å\n"),
    "CP1252": ("Preis 5 € „Zitat“ – café", "Smart quotes “x” ‘y’ — dash… ‰ Š Ž\n"),
}
blobs = {
    "bytes.bin": bytes(range(256)) * 40,
    "random.dat": os.urandom(300000),
    "empty.bin": b"",
    "résumé.pdf": b"%PDF-1.4\n" + os.urandom(5000) + b"\n%%EOF\n",
}
files = []
for name, data in blobs.items():
    path = os.path.join(top, name)
    with open(path, "wb") as f:
        f.write(data)
    files.append(path)

for i, (cp, (subject, body)) in enumerate(samples.items()):
    po = "P" + cp[2:]
    d, _ = pg.make_po(top, "CORP", po, cp, key=keyfile, gateway="CORP/RECV",
                      users=[("WRITER", "Wrïter " + cp)])
    bf = os.path.join(top, "body-" + cp)
    with open(bf, "w", encoding="utf-8") as f:
        f.write(body)
    args = ["-d", d, "send", "--from", "writer", "--to", "CORP/RECV/READER",
            "--subject", subject, "--body-file", bf]
    for f in files:
        args += ["--attach", f]
    pg.run(*args)
    out = glob.glob(os.path.join(d, "out", "*.bundle"))
    t.check(len(out) == 1, "%s: send wrote one bundle" % cp)
    # The bundle on disk holds the text in the sender's codepage.
    dump = pg.run("dump", out[0], "--key-file", keyfile).out
    t.check("Codepage:    %s" % cp in dump, "%s: the bundle carries its codepage" % cp)
    for f in out:
        shutil.move(f, os.path.join(recv, "in", os.path.basename(f)))
    pg.run("-d", recv, "deliver")
    x = os.path.join(top, "extract-" + cp)
    os.mkdir(x)
    show = pg.run("-d", recv, "show", "READER", "--extract", x).out
    msgs = show.split("--- message ")
    last = msgs[-1]
    t.check("Subject:     %s\n" % subject in last, "%s: subject comes back equal: %s" % (cp, subject))
    t.check("\n\n" + body in last, "%s: body text comes back equal" % cp)
    t.check("Wrïter %s <CORP/%s/WRITER>" % (cp, po) in last, "%s: display name comes back" % cp)
    n = len(msgs) - 1
    for name, data in blobs.items():
        path = os.path.join(x, "%d-%s" % (n, name))
        got = open(path, "rb").read() if os.path.exists(path) else None
        t.check(got is not None and hashlib.sha256(got).hexdigest() ==
                hashlib.sha256(data).hexdigest(),
                "%s: attachment %s has the same SHA-256" % (cp, name))
        t.check(hashlib.sha256(data).hexdigest() in last,
                "%s: show prints the SHA-256 of %s" % (cp, name))

# The result does not depend on the locale (cron runs with LANG=C).
env = dict(os.environ, LC_ALL="C.UTF-8", LANG="C.UTF-8")
a = pg.run("-d", recv, "show", "READER", env=env).out
b = pg.run("-d", recv, "show", "READER", env=dict(os.environ, LC_ALL="C", LANG="C")).out
t.check(a == b, "show prints the same under LC_ALL=C and C.UTF-8")
shutil.rmtree(top)
t.done()
