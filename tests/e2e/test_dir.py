"""postgate dir: the replicated directory end to end, with the real binaries.

- SPEC 3.2's two-site story: a user of site B whose primary address is in
  site A's domain is routed by A over the site link with B's own proxy;
  `dir route` and `dir lookup` take <addr>, the local part in any case.
- Three sites exchange replication files in many orders, with duplicates
  and replays, and end with identical canonical exports.
- postgate-po export-dir -> dir import -> dir export --po -> import-gal.
- Bad sync files are refused whole with FILE:LINE; the directory is unchanged.
"""
import itertools
import os
import random
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgbundle as pg  # noqa: E402

t = pg.Tally("dir")
top = pg.scratch()
POSTGATE = os.environ.get("POSTGATE") or os.path.join(os.getcwd(), "postgate")


def gw(conf, *args, check=True):
    p = subprocess.run([POSTGATE, "-c", conf] + list(args), capture_output=True, timeout=120)
    p.out = p.stdout.decode("utf-8", "replace")
    p.err = p.stderr.decode("utf-8", "replace")
    if check and p.returncode != 0:
        raise RuntimeError("postgate %s: exit %d\n%s%s" % (" ".join(args), p.returncode,
                                                          p.out, p.err))
    return p


def site(name, domains, templates, pos, links):
    """A site: config file, state dir, postoffices (NET/PO -> users)."""
    d = os.path.join(top, name)
    os.makedirs(d)
    conf = os.path.join(d, "postgate.conf")
    text = ["[site]", "name = " + name, "domains = " + ", ".join(domains),
            "state_dir = " + os.path.join(d, "state"), "gateway_po = CORP/GW" + name,
            "user =", "proxy_templates = " + ", ".join(templates), ""]
    podirs = {}
    for po, users in pos.items():
        net, short = po.split("/")
        pdir, _ = pg.make_po(d, net, short, users=users)
        podirs[po] = pdir
        text += ["[postoffice %s]" % po, "dir = " + pdir,
                 "key_file = " + os.path.join(d, short.lower() + ".key"), "codepage = CP850", ""]
    for peer, pdomains in links.items():
        text += ["[site-link %s]" % peer, "domains = " + ", ".join(pdomains),
                 "host = 127.0.0.1:2526", ""]
    with open(conf, "w") as f:
        f.write("\n".join(text))
    return conf, podirs


def import_po(conf, podir):
    f = os.path.join(top, "po-export-%d.xml" % random.randrange(1 << 30))
    pg.run("-d", podir, "export-dir", "-o", f)
    return gw(conf, "dir", "import", f)


def canonical(conf):
    return gw(conf, "dir", "export", "--canonical").out


# ---- 1. SPEC 3.2: the proxy that belongs to the peer's domains -------------
a_conf, _ = site("A", ["company.com"], ["SMTP:%m@company.com"], {"CORP/A1": [("USER1", "User One")]},
                 {"B": ["imc2.company.com"]})
b_conf, b_pos = site("B", ["imc2.company.com"],
                     ["SMTP:%m@company.com", "smtp:%m@imc2.company.com"],
                     {"CORP/B1": [("USER2", "User Two")]}, {"A": ["company.com"]})
import_po(b_conf, b_pos["CORP/B1"])
rep = os.path.join(top, "b-for-a.xml")
gw(b_conf, "dir", "export", "--for", "A", "-o", rep)
p = gw(a_conf, "dir", "import", rep)
r = gw(a_conf, "dir", "route", "user2@company.com", check=False)
t.check(r.returncode == 0 and r.out == "site-link B <user2@imc2.company.com>\n",
        "on A, user2@company.com routes over the link with B's own proxy: %r %s" % (r.out, r.err))
r = gw(a_conf, "dir", "route", "user2@Company.COM", check=False)
t.check(r.out == "site-link B <user2@imc2.company.com>\n", "the domain is case-insensitive")
r = gw(a_conf, "dir", "route", "<USER2@Company.COM>", check=False)
t.check(r.returncode == 0 and r.out == "site-link B <user2@imc2.company.com>\n",
        "dir route takes <addr>, the local part without case, and sends the proxy as "
        "written: %r %s" % (r.out, r.err))
r = gw(b_conf, "dir", "route", "<User2@IMC2.company.com>", check=False)
t.check(r.out == "postoffice CORP/B1 USER2\n", "on B, <User2@IMC2.company.com> is the local "
        "mailbox: %r %s" % (r.out, r.err))
lk = gw(a_conf, "dir", "lookup", "<USER2@imc2.company.com>", check=False)
t.check(lk.returncode == 0 and "legacy:    CORP/B1/USER2" in lk.out,
        "dir lookup takes <addr> and any case: %r %s" % (lk.out, lk.err))
r = gw(b_conf, "dir", "route", "user2@company.com", check=False)
t.check(r.out == "postoffice CORP/B1 USER2\n", "on B the same address is the local mailbox: %r" % r.out)
r = gw(a_conf, "dir", "route", "nobody@company.com", check=False)
t.check(r.out == "unknown\n" and r.returncode == 67, "an unknown address: 'unknown', exit 67")
r = gw(a_conf, "dir", "route", "someone@elsewhere.org", check=False)
t.check(r.out == "smtp <someone@elsewhere.org>\n", "an external address goes out by SMTP: %r" % r.out)
# Several files in one import: the proxy map is built once, at the end, and
# is current afterwards (routing then reads it, not the database).
p = gw(a_conf, "dir", "import", rep, rep)
st = gw(a_conf, "dir", "stats").out
t.check("proxy map current" in st, "after a two-file import the proxy map is current: %r" % st)
lk = gw(a_conf, "dir", "lookup", "smtp:user2@imc2.company.com", check=False)
t.check("legacy:    CORP/B1/USER2" in lk.out and "SMTP:user2@company.com" in lk.out,
        "lookup by a secondary proxy shows the entry with all its proxies")

# ---- 2. postoffice round trip ------------------------------------------------
c_conf, c_pos = site("C", ["c.example"], ["SMTP:%m@c.example"],
                     {"CORP/C1": [("ANNA", "Anna Ämter"), ("BEN", "Ben")]}, {})
import_po(c_conf, c_pos["CORP/C1"])
gal = os.path.join(top, "gal.xml")
gw(c_conf, "dir", "export", "--po", "CORP/C1", "-o", gal)
pg.run("-d", c_pos["CORP/C1"], "import-gal", gal)
lines = pg.run("-d", c_pos["CORP/C1"], "gal").out.splitlines()
t.check("CORP/C1/ANNA\tSMTP:anna@c.example\tAnna Ämter" in lines and
        "CORP/C1/BEN\tSMTP:ben@c.example\tBen" in lines,
        "export-dir -> import -> export --po -> import-gal gives the users back: %s" % lines)

# ---- 3. bad files refused whole, directory unchanged ---------------------------
before = canonical(c_conf)
bad_cases = {
    "malformed": ('<sync xmlns="urn:postgate:sync:1" version="1" kind="postoffice" '
                  'postoffice="CORP/C1">\n<mailbox name="X"\n</sync>\n', 3),
    "xxe": ('<?xml version="1.0"?>\n<!DOCTYPE sync [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
            '<sync xmlns="urn:postgate:sync:1" version="1" kind="postoffice" '
            'postoffice="CORP/C1"><mailbox name="A" display="&x;"/></sync>\n', None),
    "laughs": ('<?xml version="1.0"?>\n<!DOCTYPE sync [<!ENTITY a "aaaaaaaaaa">'
               '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]>\n'
               '<sync xmlns="urn:postgate:sync:1" version="1" kind="postoffice" '
               'postoffice="CORP/C1"><mailbox name="A" display="&c;"/></sync>\n', None),
    "not-ours": ('<sync xmlns="urn:postgate:sync:1" version="1" kind="postoffice" '
                 'postoffice="CORP/ELSE">\n<mailbox name="X"/>\n</sync>\n', None),
    "bad-address": ('<sync xmlns="urn:postgate:sync:1" version="1" kind="postoffice" '
                    'postoffice="CORP/C1">\n<mailbox name="J SMITH"/>\n</sync>\n', 2),
    "unknown-kind": ('<sync xmlns="urn:postgate:sync:1" version="1" kind="weird">\n</sync>\n', 1),
    "external-dtd": ('<?xml version="1.0"?>\n<!DOCTYPE sync SYSTEM "http://127.0.0.1:9/sync.dtd">\n'
                     '<sync xmlns="urn:postgate:sync:1" version="1" kind="postoffice" '
                     'postoffice="CORP/C1"><mailbox name="A"/></sync>\n', 2),
    "schema": ('<sync xmlns="urn:postgate:sync:1" version="1" kind="postoffice" '
               'postoffice="CORP/C1">\n<mailbox name="A" colour="blue"/>\n</sync>\n', 2),
    "namespace": ('<sync xmlns="urn:other" version="1" kind="postoffice" '
                  'postoffice="CORP/C1">\n<mailbox name="A"/>\n</sync>\n', 1),
    "deep": ('<sync xmlns="urn:postgate:sync:1" version="1" kind="postoffice" postoffice="CORP/C1">'
             + "<list name=\"L\">" * 50 + "\n</sync>\n", 1),
}
for name, (xml, line) in bad_cases.items():
    f = os.path.join(top, "bad-%s.xml" % name)
    with open(f, "w") as fh:
        fh.write(xml)
    p = gw(c_conf, "dir", "import", f, check=False)
    where = "%s:%d:" % (f, line) if line else f + ":"
    errs = [l for l in p.err.splitlines() if not l.startswith("postgate: warning:")]
    t.check(p.returncode == 65 and errs and errs[0].startswith(where),
            "%s: refused with %s... exit 65: %r" % (name, where, p.err.strip()[:200]))
    t.check(canonical(c_conf) == before, "%s: the directory is unchanged" % name)

# A file over the size limit (SYNC_MAX_FILE_SIZE, 1 GiB) is refused before a
# byte of it is read: a sparse file costs no disk.
f = os.path.join(top, "bad-oversized.xml")
with open(f, "w") as fh:
    fh.write('<sync xmlns="urn:postgate:sync:1" version="1" kind="postoffice" '
             'postoffice="CORP/C1">\n<mailbox name="A"/>\n')
    fh.truncate(1024 * 1024 * 1024 + 1)
p = gw(c_conf, "dir", "import", f, check=False)
errs = [l for l in p.err.splitlines() if not l.startswith("postgate: warning:")]
t.check(p.returncode == 65 and errs and errs[0].startswith(f + ":") and "1073741825" in errs[0],
        "oversized: refused by its size, exit 65: %r" % p.err.strip()[:200])
t.check(canonical(c_conf) == before, "oversized: the directory is unchanged")
os.unlink(f)

# A proxy clash inside one import names both owners and changes nothing.
clash_conf, clash_pos = site("D", ["d.example"], ["SMTP:%m@d.example"],
                             {"CORP/D1": [("SAM", "Sam One")], "CORP/D2": [("SAM", "Sam Two")]}, {})
import_po(clash_conf, clash_pos["CORP/D1"])
before = canonical(clash_conf)
f = os.path.join(top, "d2.xml")
pg.run("-d", clash_pos["CORP/D2"], "export-dir", "-o", f)
p = gw(clash_conf, "dir", "import", f, check=False)
t.check(p.returncode == 65 and "CORP/D1/SAM" in p.err and "CORP/D2/SAM" in p.err,
        "a proxy clash inside one import is refused naming both owners: %r" % p.err.strip())
t.check(canonical(clash_conf) == before, "the clash changed nothing")

# ---- 4. three sites converge whatever the order --------------------------------
def three_sites(tag):
    names = ["X", "Y", "Z"]
    doms = {n: ["%s.%s.example" % (n.lower(), tag)] for n in names}
    confs, pos = {}, {}
    for n in names:
        links = {m: doms[m] for m in names if m != n}
        # Every site also claims %m@shared.example: cross-origin proxy clashes.
        confs[n], p = site(n + tag, doms[n], ["SMTP:%m@" + doms[n][0], "smtp:%m@shared.example"],
                           {"CORP/%s%s" % (n, tag): [("U" + n, "User " + n), ("SAM", "Sam at " + n)]},
                           {m + tag: doms[m] for m in links})
        pos[n] = p["CORP/%s%s" % (n, tag)]
    return names, confs, pos


seed = int(os.environ.get("PG_SEED", random.randrange(1 << 30)))
print("replication order seed: %d" % seed)
rnd = random.Random(seed)
for trial, order in enumerate(itertools.islice(itertools.permutations(range(6)), 0, 720, 97)):
    tag = "t%d" % trial
    names, confs, pos = three_sites(tag)
    for n in names:
        import_po(confs[n], pos[n])
    # Round 1: every site exports for every other; files are delivered in
    # this trial's order, some twice (duplicates), some replayed later.
    files = []
    for a in names:
        for b in names:
            if a != b:
                f = os.path.join(top, "%s-%s-for-%s-1.xml" % (tag, a, b))
                gw(confs[a], "dir", "export", "--for", b + tag, "-o", f)
                files.append((b, f))
    # Changes after the first exchange: an addition, a deletion, a rename
    # (same entry, new display name) and a proxy edit (a new template at Z
    # gives Z's users another proxy).
    pg.run("-d", pos["X"], "adduser", "NEWX", "--name", "New X")
    pg.run("-d", pos["X"], "setname", "UX", "--name", "Renamed X")
    pg.run("-d", pos["Y"], "deluser", "UY")
    with open(confs["Z"]) as fh:
        text = fh.read()
    with open(confs["Z"], "w") as fh:
        fh.write(text.replace("smtp:%m@shared.example", "smtp:%m@shared.example, smtp:%m.z@extra.example"))
    for n in names:
        import_po(confs[n], pos[n])
    for a in names:
        for b in names:
            if a != b:
                f = os.path.join(top, "%s-%s-for-%s-2.xml" % (tag, a, b))
                gw(confs[a], "dir", "export", "--for", b + tag, "-o", f)
                files.append((b, f))
    deliveries = [files[i] for i in order] + files[6:]
    rnd.shuffle(deliveries)
    deliveries += rnd.sample(files, 4)          # duplicates and replays
    for b, f in deliveries:
        gw(confs[b], "dir", "import", f)
    # Then everyone exchanges until quiet (what a schedule does).
    for _ in range(2):
        for a in names:
            for b in names:
                if a != b:
                    f = os.path.join(top, "%s-%s-for-%s-x.xml" % (tag, a, b))
                    gw(confs[a], "dir", "export", "--for", b + tag, "-o", f)
                    gw(confs[b], "dir", "import", f)
    canon = [canonical(confs[n]) for n in names]
    t.check(canon[0] == canon[1] == canon[2], "trial %d: three sites, identical canonical "
            "exports after order %s" % (trial, order))
    has = canon[0]
    t.check("CORP/X%s/NEWX" % tag.upper() in has and "CORP/Y%s/UY" % tag.upper() not in has,
            "trial %d: the addition and the deletion reached every site" % trial)
    t.check("Renamed X" in has and "smtp:uz.z@extra.example" in has,
            "trial %d: the rename and the proxy edit reached every site" % trial)
    ids = [l for l in has.splitlines() if "CORP/X%s/UX" % tag.upper() in l]
    t.check(len(ids) == 1, "trial %d: the renamed entry is one entry, not a delete and an add" % trial)

shutil.rmtree(top)
t.done()
