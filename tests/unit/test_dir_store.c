/* test_dir_store.c - unit tests of directory/dir_store.c.
 *
 * Checks the replicated directory of SPEC 1 and 2 (issue 4, scope 1, 2, 4):
 * postoffice exports are authoritative for their postoffice (adds, display
 * name changes under the same immutable id, deletions as tombstones);
 * proxies come from the site's templates and existing ones are never
 * changed by a template change, which is counted; a proxy clash inside one
 * import is refused naming both owners and leaves the directory exactly as
 * it was (compared through the canonical export); replication sends exactly
 * what a peer has not seen, is idempotent and order-tolerant (the same
 * changes applied in many orders, with duplicates and replays, give the
 * same canonical directory at every site), a clash between peers' origins
 * resolves the same everywhere; a peer can neither delete, rewrite nor take
 * over an entry of a postoffice this site serves, its postoffice import wins
 * every clash with a peer's entry and a lost claim is never promoted by a
 * deletion (issue 12, point 0); dir list shows the loser of a clash without
 * the proxy it lost (point 10); tombstones are purged after their lifetime and a
 * replayed old file never resurrects them; the schema is created at open
 * and a newer one is refused.
 */
#include "config.h"

#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <sqlite3.h>

#include "cu_run.h"
#include "dir_store.h"
#include "pg_log.h"

static char *tmpdir;

/* ------------------------------------------------------------ the sites */

static const char *const dom_a[] = { "company.com", NULL };
static const char *const dom_b[] = { "imc2.company.com", NULL };
static const char *const dom_c[] = { "imc3.company.com", NULL };
static const char *const tpl_a[] = { "SMTP:%m@company.com", NULL };
static const char *const tpl_b[] = { "SMTP:%m@company.com", "smtp:%m@imc2.company.com",
	NULL };
static const char *const tpl_c[] = { "SMTP:%m@company.com", "smtp:%m@imc3.company.com",
	NULL };
static const char *const po_a[] = { "CORP/A", "CORP/A2", "CORP/GWA", NULL };
static const char *const po_b[] = { "CORP/B", "CORP/GWB", NULL };
static const char *const po_b_takeover[] = { "CORP/B", "CORP/GWB", "CORP/A", NULL };
static const char *const po_c[] = { "CORP/C", NULL };
static const char *const po_o[] = { "CORP/O", NULL };
static const DirPeer peers_a[] = { { "B", dom_b }, { "C", dom_c } };
static const DirPeer peers_b[] = { { "A", dom_a }, { "C", dom_c } };
static const DirPeer peers_c[] = { { "A", dom_a }, { "B", dom_b } };

#define LIFETIME (180 * 86400)
static const DirContext ctx_a = { "A", dom_a, tpl_a, po_a, peers_a, 2, LIFETIME, NULL };
static const DirContext ctx_b = { "B", dom_b, tpl_b, po_b, peers_b, 2, LIFETIME, NULL };
static const DirContext ctx_b_takeover = { "B", dom_b, tpl_b, po_b_takeover, peers_b, 2,
	LIFETIME, NULL };
static const DirContext ctx_c = { "C", dom_c, tpl_c, po_c, peers_c, 2, LIFETIME, NULL };
static const DirContext ctx_o = { "O", NULL, NULL, po_o, NULL, 0, LIFETIME, NULL };

/* ------------------------------------------------------------- helpers */

static DirStore *
store(const char *name)
{
	char *path = g_strdup_printf("%s/%s.db", tmpdir, name);
	char *wal = g_strconcat(path, "-wal", NULL), *shm = g_strconcat(path, "-shm", NULL);
	GError *e = NULL;
	DirStore *d;

	g_unlink(path);
	g_unlink(wal);
	g_unlink(shm);
	d = dir_open(path, &e);
	EXPECT(d != NULL, "open %s (%s)", path, e ? e->message : "");
	g_clear_error(&e);
	g_free(path);
	g_free(wal);
	g_free(shm);
	return d;
}

static DirEntry *
mbx(const char *legacy, const char *name)
{
	DirEntry *e = dir_entry_new(DIR_MAILBOX);

	e->legacy = g_strdup(legacy);
	e->name = g_strdup(name);
	return e;
}

static DirEntry *
custom(const char *legacy, const char *name, const char *target)
{
	DirEntry *e = dir_entry_new(DIR_CUSTOM);

	e->legacy = g_strdup(legacy);
	e->name = g_strdup(name);
	e->target = g_strdup(target);
	return e;
}

/* A list; members NULL-terminated. */
static DirEntry *
dl(const char *legacy, const char *name, ...)
{
	DirEntry *e = dir_entry_new(DIR_LIST);
	va_list ap;
	const char *m;

	e->legacy = g_strdup(legacy);
	e->name = g_strdup(name);
	va_start(ap, name);
	while ((m = va_arg(ap, const char *)))
		g_ptr_array_add(e->members, g_strdup(m));
	va_end(ap);
	return e;
}

/* e with these proxies; NULL-terminated. */
static DirEntry *
prox(DirEntry *e, ...)
{
	va_list ap;
	const char *p;

	va_start(ap, e);
	while ((p = va_arg(ap, const char *)))
		g_ptr_array_add(e->proxies, g_strdup(p));
	va_end(ap);
	return e;
}

/* A postoffice export; entries NULL-terminated. */
static SyncDoc *
po_doc(const char *po, ...)
{
	SyncDoc *doc = sync_doc_new(SYNC_POSTOFFICE);
	va_list ap;
	DirEntry *e;

	doc->postoffice = g_strdup(po);
	va_start(ap, po);
	while ((e = va_arg(ap, DirEntry *)))
		g_ptr_array_add(doc->entries, e);
	va_end(ap);
	return doc;
}

/* Import doc (freed), expecting success. */
#define IMPORT_OK(d, ctx, doc, st) import_ok_at(__LINE__, d, ctx, doc, st)

static void
import_ok_at(int line, DirStore *d, const DirContext *ctx, SyncDoc *doc, DirImportStats *st)
{
	GError *e = NULL;
	DirImportStats dummy;
	gboolean ok = dir_import(d, ctx, doc, st ? st : &dummy, &e);

	expect_at(ok && !e, line, "import at site %s is accepted (%s)", ctx->site,
	    e ? e->message : "");
	g_clear_error(&e);
	sync_doc_free(doc);
}

/* Import doc (freed), expecting a refusal with code and message parts
 * (NULL-terminated), and the directory unchanged. */
#define IMPORT_REFUSED(d, ctx, doc, code, ...) \
	import_refused_at(__LINE__, d, ctx, doc, code, __VA_ARGS__, NULL)

static char *dump(DirStore *d);

static void
import_refused_at(int line, DirStore *d, const DirContext *ctx, SyncDoc *doc, int code, ...)
{
	GError *e = NULL;
	DirImportStats st = { 0 };
	char *before = dump(d), *after;
	DirStats s0, s1;
	gboolean ok;
	va_list ap;
	const char *part;

	dir_stats(d, &s0, NULL);
	ok = dir_import(d, ctx, doc, &st, &e);
	expect_at(!ok && e != NULL, line, "import is refused");
	if (e) {
		expect_at(e->domain == DIR_ERROR && e->code == code, line,
		    "error code %d, got %d (%s)", code, e->code, e->message);
		va_start(ap, code);
		while ((part = va_arg(ap, const char *)))
			expect_at(strstr(e->message, part) != NULL, line,
			    "message \"%s\" names \"%s\"", e->message, part);
		va_end(ap);
	}
	after = dump(d);
	expect_at(strcmp(before, after) == 0, line, "the directory is unchanged:\n%s---\n%s",
	    before, after);
	dir_stats(d, &s1, NULL);
	expect_at(s0.usn == s1.usn && s0.tombstones == s1.tombstones, line,
	    "no USN was used and no tombstone made");
	dir_stats_clear(&s0);
	dir_stats_clear(&s1);
	g_clear_error(&e);
	g_free(before);
	g_free(after);
	sync_doc_free(doc);
}

static void
append_strv(GString *s, const char *what, const GPtrArray *a)
{
	g_string_append_printf(s, " %s=", what);
	for (guint i = 0; i < a->len; i++)
		g_string_append_printf(s, "%s%s", i ? "," : "", (const char *)a->pdata[i]);
}

/* The canonical export as text, one line per entry. */
static char *
dump(DirStore *d)
{
	GError *e = NULL;
	SyncDoc *doc = dir_export_canonical(d, &e);
	GString *s = g_string_new(NULL);

	EXPECT(doc != NULL, "canonical export (%s)", e ? e->message : "");
	g_clear_error(&e);
	for (guint i = 0; doc && i < doc->entries->len; i++) {
		const DirEntry *x = doc->entries->pdata[i];
		g_string_append_printf(s, "%s %s %s home=%s name=\"%s\" target=%s", x->id,
		    dir_type_name(x->type), x->legacy, x->home_site, x->name,
		    x->target ? x->target : "-");
		append_strv(s, "proxies", x->proxies);
		append_strv(s, "members", x->members);
		g_string_append_c(s, '\n');
	}
	sync_doc_free(doc);
	return g_string_free(s, FALSE);
}

static gboolean
is_primary_str(const char *proxy)
{
	return strncmp(proxy, "SMTP:", 5) == 0;
}

static DirEntry *
lookup(DirStore *d, const char *address)
{
	GError *e = NULL;
	DirEntry *x = dir_lookup(d, address, &e);

	EXPECT(e == NULL, "lookup %s works (%s)", address, e ? e->message : "");
	g_clear_error(&e);
	return x;
}

/* The proxies of an entry as "a,b,c". */
static char *
proxies_of(DirStore *d, const char *address)
{
	DirEntry *x = lookup(d, address);
	GString *s = g_string_new(NULL);

	for (guint i = 0; x && i < x->proxies->len; i++)
		g_string_append_printf(s, "%s%s", i ? "," : "", (const char *)x->proxies->pdata[i]);
	if (!x)
		g_string_append(s, "(no entry)");
	dir_entry_free(x);
	return g_string_free(s, FALSE);
}

#define EXPECT_PROXIES(d, addr, want) do { \
	char *got_ = proxies_of(d, addr); \
	EXPECT(strcmp(got_, want) == 0, "%s has proxies %s, got %s", addr, want, got_); \
	g_free(got_); \
} while (0)

/* Export from -> for to's site, and import it at to. */
static SyncDoc *
export_for(DirStore *from, const DirContext *cf, const char *site)
{
	GError *e = NULL;
	SyncDoc *doc = dir_export_replication(from, cf, site, &e);

	EXPECT(doc != NULL, "export %s -> %s (%s)", cf->site, site, e ? e->message : "");
	g_clear_error(&e);
	return doc;
}

static DirImportStats
xfer(DirStore *from, const DirContext *cf, DirStore *to, const DirContext *ct)
{
	DirImportStats st = { 0 };
	SyncDoc *doc = export_for(from, cf, ct->site);

	if (doc)
		IMPORT_OK(to, ct, doc, &st);
	return st;
}

static char *
owner_of(DirStore *d, const char *address)
{
	GError *e = NULL;
	char *id = dir_proxy_owner(d, address, &e);

	EXPECT(e == NULL, "owner of %s (%s)", address, e ? e->message : "");
	g_clear_error(&e);
	return id;
}

static char *
id_of(DirStore *d, const char *address)
{
	DirEntry *x = lookup(d, address);
	char *id = x ? g_strdup(x->id) : NULL;

	dir_entry_free(x);
	return id;
}

/* -------------------------------------------------------------- schema */

static int
schema_version_of(const char *path)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int v = -1;

	if (sqlite3_open(path, &db) != SQLITE_OK)
		return -1;
	if (sqlite3_prepare_v2(db, "SELECT version FROM schema_version", -1, &st, NULL) ==
	    SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			v = sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	return v;
}

static void
test_open_creates_the_schema_from_nothing(void)
{
	char *path = g_strdup_printf("%s/fresh.db", tmpdir);
	char *empty = g_strdup_printf("%s/empty.db", tmpdir);
	GError *e = NULL;
	DirStore *d;
	DirStats s;

	d = dir_open(path, &e);
	EXPECT(d != NULL, "a new file is created (%s)", e ? e->message : "");
	g_clear_error(&e);
	EXPECT(schema_version_of(path) == DIR_SCHEMA_VERSION, "schema version %d recorded",
	    DIR_SCHEMA_VERSION);
	EXPECT(d && dir_stats(d, &s, &e) && s.usn == 0 && s.mailboxes == 0,
	    "an empty directory");
	if (d)
		dir_stats_clear(&s);
	dir_close(d);
	/* Opened again: nothing to migrate, the same version. */
	d = dir_open(path, &e);
	EXPECT(d != NULL && schema_version_of(path) == DIR_SCHEMA_VERSION,
	    "reopening works (%s)", e ? e->message : "");
	g_clear_error(&e);
	dir_close(d);
	/* An existing empty file is an empty database: migrated. */
	g_file_set_contents(empty, "", 0, NULL);
	d = dir_open(empty, &e);
	EXPECT(d != NULL && schema_version_of(empty) == DIR_SCHEMA_VERSION,
	    "an empty file is migrated (%s)", e ? e->message : "");
	g_clear_error(&e);
	dir_close(d);
	g_free(path);
	g_free(empty);
}

static void
test_newer_schema_is_refused(void)
{
	char *path = g_strdup_printf("%s/newer.db", tmpdir);
	GError *e = NULL;
	DirStore *d = dir_open(path, &e);
	sqlite3 *db;

	dir_close(d);
	sqlite3_open(path, &db);
	sqlite3_exec(db, "UPDATE schema_version SET version = 99", NULL, NULL, NULL);
	sqlite3_close(db);
	d = dir_open(path, &e);
	EXPECT(d == NULL, "a directory from a newer postgate is refused");
	EXPECT(e && e->domain == DIR_ERROR && e->code == DIR_ERROR_SCHEMA_VERSION,
	    "DIR_ERROR_SCHEMA_VERSION (%s)", e ? e->message : "");
	EXPECT(e && strstr(e->message, "99") && strstr(e->message, "newer postgate"),
	    "the message names the version and what to do (%s)", e ? e->message : "");
	g_clear_error(&e);
	dir_close(d);
	EXPECT(schema_version_of(path) == 99, "the newer database is left alone");
	g_free(path);
}

static void
test_not_a_database_is_an_io_error(void)
{
	char *path = g_strdup_printf("%s/garbage.db", tmpdir);
	GError *e = NULL;
	DirStore *d;

	g_file_set_contents(path, "this is no SQLite database, not at all, really no\n"
	    "this is no SQLite database, not at all, really no\n", -1, NULL);
	d = dir_open(path, &e);
	EXPECT(d == NULL && e && e->code == DIR_ERROR_IO && strstr(e->message, path),
	    "refused naming the file (%s)", e ? e->message : "");
	g_clear_error(&e);
	dir_close(d);
	g_free(path);
}

/* ---------------------------------------------------- postoffice export */

static void
test_postoffice_export_adds_renames_and_deletes(void)
{
	DirStore *d = store("po");
	DirImportStats st = { 0 };
	DirEntry *x, *y;
	char *idx, *idy, *idy2;
	DirStats s;
	SyncDoc *rep;

	IMPORT_OK(d, &ctx_a, po_doc("CORP/A", mbx("CORP/A/X", "Xavier"),
	    mbx("corp/a/y", "Yvonne"), mbx("CORP/A/Z", "Zed"), NULL), &st);
	EXPECT(st.added == 3 && st.changed == 0 && st.deleted == 0 && st.unchanged == 0,
	    "three added (%u %u %u %u)", st.added, st.changed, st.deleted, st.unchanged);
	x = lookup(d, "CORP/A/X");
	EXPECT(x && x->type == DIR_MAILBOX && strcmp(x->name, "Xavier") == 0 &&
	    strcmp(x->home_site, "A") == 0 && strcmp(x->origin, "A") == 0 &&
	    x->version == 1 && x->usn >= 1 && x->usn <= 3 && !x->deleted,
	    "X is stored with its stamp");
	idx = x ? g_strdup(x->id) : NULL;
	dir_entry_free(x);
	y = lookup(d, "corp/a/Y");
	EXPECT(y && strcmp(y->legacy, "CORP/A/Y") == 0, "legacy addresses are upper case");
	idy = y ? g_strdup(y->id) : NULL;
	dir_entry_free(y);

	/* The same file again changes nothing. */
	IMPORT_OK(d, &ctx_a, po_doc("CORP/A", mbx("CORP/A/X", "Xavier"),
	    mbx("CORP/A/Y", "Yvonne"), mbx("CORP/A/Z", "Zed"), NULL), &st);
	EXPECT(st.unchanged == 3 && st.added + st.changed + st.deleted == 0, "all unchanged");
	dir_stats(d, &s, NULL);
	EXPECT(s.usn == 3, "no USN used by an unchanged import (usn %" G_GUINT64_FORMAT ")",
	    s.usn);
	dir_stats_clear(&s);

	/* A new display name is a change of the same entry. */
	IMPORT_OK(d, &ctx_a, po_doc("CORP/A", mbx("CORP/A/X", "Xavier Renamed"),
	    mbx("CORP/A/Y", "Yvonne"), mbx("CORP/A/Z", "Zed"), NULL), &st);
	EXPECT(st.changed == 1 && st.unchanged == 2 && st.added == 0, "one change");
	x = lookup(d, "CORP/A/X");
	EXPECT(x && g_strcmp0(x->id, idx) == 0 && x->version == 2 && x->usn == 4 &&
	    strcmp(x->name, "Xavier Renamed") == 0, "a rename keeps the id, version 2, USN 4");
	dir_entry_free(x);

	/* Left out: a tombstone. */
	IMPORT_OK(d, &ctx_a, po_doc("CORP/A", mbx("CORP/A/X", "Xavier Renamed"),
	    mbx("CORP/A/Z", "Zed"), NULL), &st);
	EXPECT(st.deleted == 1 && st.unchanged == 2, "one deleted");
	EXPECT(lookup(d, "CORP/A/Y") == NULL, "Y is no longer found");
	EXPECT(lookup(d, "y@company.com") == NULL, "nor by its proxy");
	y = dir_get(d, idy, NULL);
	EXPECT(y && y->deleted && y->version == 2 && y->proxies->len == 0,
	    "Y's tombstone: version 2, no proxies");
	dir_entry_free(y);
	dir_stats(d, &s, NULL);
	EXPECT(s.mailboxes == 2 && s.tombstones == 1, "2 mailboxes, 1 tombstone");
	dir_stats_clear(&s);
	rep = export_for(d, &ctx_a, "B");
	{
		gboolean found = FALSE;
		for (guint i = 0; rep && i < rep->entries->len; i++) {
			DirEntry *r = rep->entries->pdata[i];
			if (g_strcmp0(r->id, idy) == 0 && r->deleted)
				found = TRUE;
		}
		EXPECT(found, "the tombstone is replicated");
	}
	sync_doc_free(rep);

	/* Added again: a new entry with a new id. */
	IMPORT_OK(d, &ctx_a, po_doc("CORP/A", mbx("CORP/A/X", "Xavier Renamed"),
	    mbx("CORP/A/Y", "Yvonne Again"), mbx("CORP/A/Z", "Zed"), NULL), &st);
	EXPECT(st.added == 1, "Y added again");
	idy2 = id_of(d, "CORP/A/Y");
	EXPECT(idy2 && g_strcmp0(idy2, idy) != 0, "with a new id");
	g_free(idx);
	g_free(idy);
	g_free(idy2);
	dir_close(d);
}

static void
test_postoffice_export_is_authoritative_for_its_postoffice_only(void)
{
	DirStore *d = store("po2");
	DirImportStats st = { 0 };
	DirStats s;

	IMPORT_OK(d, &ctx_a, po_doc("CORP/A", mbx("CORP/A/X", "X"), NULL), NULL);
	IMPORT_OK(d, &ctx_a, po_doc("CORP/A2", mbx("CORP/A2/W", "W"), NULL), NULL);
	/* An export of CORP/A2 without X leaves X alone. */
	IMPORT_OK(d, &ctx_a, po_doc("corp/a2", mbx("CORP/A2/W", "W"), NULL), &st);
	EXPECT(st.unchanged == 1 && st.deleted == 0, "nothing of CORP/A deleted");
	/* A postoffice whose name begins like another's. */
	IMPORT_OK(d, &ctx_a, po_doc("CORP/A", NULL), &st);
	EXPECT(st.deleted == 1, "an empty export deletes X only");
	dir_stats(d, &s, NULL);
	EXPECT(s.mailboxes == 1 && s.tombstones == 1, "W stays");
	dir_stats_clear(&s);
	dir_close(d);
}

static void
test_proxies_come_from_the_templates(void)
{
	static const char *const tpl[] = { "smtp:%m.%p@%n.example", "SMTP:%m@company.com",
		"smtp:100%%-%m@company.com", "SMTP:%m@second.com", NULL };
	const DirContext ctx = { "A", dom_a, tpl, po_a, NULL, 0, LIFETIME, NULL };
	DirStore *d = store("tpl");

	IMPORT_OK(d, &ctx, po_doc("CORP/GWA", mbx("CORP/GWA/JOHN_DOE", "John"),
	    custom("CORP/GWA/PARTNER", "Partner", "smtp:Bob@Partner.ORG"),
	    dl("CORP/GWA/ALL", "All", "CORP/A/X", "corp/a/x", "CORP/A/Y", NULL), NULL), NULL);
	EXPECT_PROXIES(d, "CORP/GWA/JOHN_DOE", "SMTP:john_doe@company.com,"
	    "smtp:100%-john_doe@company.com,smtp:john_doe.gwa@corp.example,"
	    "smtp:john_doe@second.com");
	EXPECT_PROXIES(d, "CORP/GWA/PARTNER", "SMTP:partner@company.com,"
	    "smtp:100%-partner@company.com,smtp:partner.gwa@corp.example,"
	    "smtp:partner@second.com");
	{
		DirEntry *c = lookup(d, "CORP/GWA/PARTNER"), *l = lookup(d, "all@company.com");
		EXPECT(c && strcmp(c->target, "SMTP:Bob@partner.org") == 0,
		    "a custom's target is canonical (%s)", c ? c->target : "");
		EXPECT(l && l->type == DIR_LIST && l->members->len == 2 &&
		    strcmp(l->members->pdata[0], "CORP/A/X") == 0,
		    "list members canonical, duplicates dropped");
		dir_entry_free(c);
		dir_entry_free(l);
	}
	/* No templates: an entry would have no address; refused (SPEC 1:
	 * exactly one primary), unless the export lists its proxies. */
	{
		const DirContext none = { "A", dom_a, NULL, po_a, NULL, 0, LIFETIME, NULL };
		DirStore *d2 = store("notpl");
		IMPORT_REFUSED(d2, &none, po_doc("CORP/A", mbx("CORP/A/X", "X"), NULL),
		    DIR_ERROR_INVALID, "CORP/A/X", "no primary", "proxy_templates");
		IMPORT_OK(d2, &none, po_doc("CORP/A", prox(mbx("CORP/A/X", "X"),
		    "SMTP:x@company.com", NULL), NULL), NULL);
		EXPECT_PROXIES(d2, "CORP/A/X", "SMTP:x@company.com");
		dir_close(d2);
	}
	dir_close(d);
}

static void
test_template_change_applies_on_next_import_and_is_reported(void)
{
	static const char *const tpl2[] = { "SMTP:%m@new.com", "smtp:%m@company.com",
		"smtp:%m.%p@%n.example", NULL };
	const DirContext ctx2 = { "A", dom_a, tpl2, po_a, NULL, 0, LIFETIME, NULL };
	DirStore *d = store("tplchange");
	DirImportStats st = { 0 };
	char *idx = NULL;
	DirEntry *x;

	IMPORT_OK(d, &ctx_a, po_doc("CORP/A", mbx("CORP/A/X", "X"), NULL), NULL);
	EXPECT_PROXIES(d, "CORP/A/X", "SMTP:x@company.com");
	idx = id_of(d, "CORP/A/X");
	IMPORT_OK(d, &ctx2, po_doc("CORP/A", mbx("CORP/A/X", "X"), mbx("CORP/A/Y", "Y"), NULL),
	    &st);
	EXPECT(st.templated == 1 && st.changed == 1 && st.added == 1,
	    "the template change is counted (templated %u changed %u added %u)",
	    st.templated, st.changed, st.added);
	EXPECT_PROXIES(d, "CORP/A/X", "SMTP:x@company.com,smtp:x.a@corp.example,"
	    "smtp:x@new.com");
	EXPECT_PROXIES(d, "CORP/A/Y", "SMTP:y@new.com,smtp:y.a@corp.example,"
	    "smtp:y@company.com");
	x = lookup(d, "x@new.com");
	EXPECT(x && g_strcmp0(x->id, idx) == 0 && x->version == 2,
	    "the same entry, one version later");
	dir_entry_free(x);
	IMPORT_OK(d, &ctx2, po_doc("CORP/A", mbx("CORP/A/X", "X"), mbx("CORP/A/Y", "Y"), NULL),
	    &st);
	EXPECT(st.unchanged == 2 && st.templated == 0, "nothing more the next time");
	/* Templates taken away remove nothing. */
	IMPORT_OK(d, &ctx_a, po_doc("CORP/A", mbx("CORP/A/X", "X"), mbx("CORP/A/Y", "Y"), NULL),
	    &st);
	EXPECT(st.unchanged == 2 && st.changed == 0, "nothing removed");
	EXPECT_PROXIES(d, "CORP/A/Y", "SMTP:y@new.com,smtp:y.a@corp.example,"
	    "smtp:y@company.com");
	g_free(idx);
	dir_close(d);
}

static void
test_proxies_listed_in_the_export_are_taken_as_given(void)
{
	DirStore *d = store("explicit");
	DirEntry *x;

	IMPORT_OK(d, &ctx_a, po_doc("CORP/A", prox(mbx("CORP/A/X", "X"),
	    "smtp:xs@Company.COM", "SMTP:Xavier.Smith@Company.COM", NULL), NULL), NULL);
	EXPECT_PROXIES(d, "CORP/A/X", "SMTP:Xavier.Smith@company.com,smtp:xs@company.com");
	x = lookup(d, "SMTP:Xavier.Smith@COMPANY.com");
	EXPECT(x != NULL, "the domain is compared case-insensitively");
	dir_entry_free(x);
	x = lookup(d, "xavier.smith@company.com");
	EXPECT(x && strcmp(x->legacy, "CORP/A/X") == 0 && x->proxies->len == 2 &&
	    strcmp(x->proxies->pdata[0], "SMTP:Xavier.Smith@company.com") == 0,
	    "the local part is compared without case, the proxy kept as written");
	dir_entry_free(x);
	x = lookup(d, "x@company.com");
	EXPECT(x == NULL, "no template proxy was added");
	dir_entry_free(x);
	/* Changing them is a change. */
	IMPORT_OK(d, &ctx_a, po_doc("CORP/A", prox(mbx("CORP/A/X", "X"),
	    "SMTP:xs@company.com", NULL), NULL), NULL);
	EXPECT_PROXIES(d, "CORP/A/X", "SMTP:xs@company.com");
	dir_close(d);
}

static void
test_proxy_clash_inside_an_import_is_refused_naming_both(void)
{
	DirStore *d = store("clash");
	DirImportStats st = { 0 };
	char *q;

	IMPORT_OK(d, &ctx_a, po_doc("CORP/A", mbx("CORP/A/JSMITH", "John Smith"),
	    mbx("CORP/A/K", "K"), NULL), NULL);
	/* Another postoffice's JSMITH would get the same template address. */
	IMPORT_REFUSED(d, &ctx_a, po_doc("CORP/A2", mbx("CORP/A2/OTHER", "Other"),
	    mbx("CORP/A2/JSMITH", "Jane Smith"), NULL), DIR_ERROR_CLASH,
	    "jsmith@company.com", "CORP/A2/JSMITH", "CORP/A/JSMITH");
	/* An explicit proxy equal to another entry's, but for case: the same
	 * proxy. */
	IMPORT_REFUSED(d, &ctx_a, po_doc("CORP/A", mbx("CORP/A/JSMITH", "John Smith"),
	    mbx("CORP/A/K", "K"), prox(mbx("CORP/A/P", "P"), "SMTP:JSmith@company.com",
	    NULL), NULL), DIR_ERROR_CLASH, "JSmith@company.com", "CORP/A/P",
	    "CORP/A/JSMITH");
	/* Within one entry, two that differ only in case are one listed twice. */
	IMPORT_REFUSED(d, &ctx_a, po_doc("CORP/A", mbx("CORP/A/JSMITH", "John Smith"),
	    mbx("CORP/A/K", "K"), prox(mbx("CORP/A/P", "P"), "SMTP:Pat@company.com",
	    "smtp:pat@COMPANY.com", NULL), NULL), DIR_ERROR_INVALID, "CORP/A/P",
	    "listed twice");
	/* Two new entries of one file. */
	IMPORT_REFUSED(d, &ctx_a, po_doc("CORP/A", mbx("CORP/A/JSMITH", "John Smith"),
	    mbx("CORP/A/K", "K"), prox(mbx("CORP/A/P1", "P1"), "SMTP:same@company.com", NULL),
	    prox(mbx("CORP/A/P2", "P2"), "SMTP:same@company.com", NULL), NULL),
	    DIR_ERROR_CLASH, "CORP/A/P1", "CORP/A/P2", "same@company.com");
	/* A template added to the configuration gives K an address that a new
	 * entry of the same file lists: refused as well. */
	{
		static const char *const tpl3[] = { "SMTP:%m@company.com",
			"smtp:jsmith@%m.company.com", NULL };
		const DirContext c3 = { "A", dom_a, tpl3, po_a, NULL, 0, LIFETIME, NULL };
		IMPORT_REFUSED(d, &c3, po_doc("CORP/A", mbx("CORP/A/JSMITH", "John Smith"),
		    mbx("CORP/A/K", "K"), prox(mbx("CORP/A/Q", "Q"),
		    "SMTP:jsmith@k.company.com", NULL), NULL), DIR_ERROR_CLASH,
		    "jsmith@k.company.com", "CORP/A/Q", "CORP/A/K");
	}
	/* An address freed by a deletion in the same file may be given. */
	IMPORT_OK(d, &ctx_a, po_doc("CORP/A", mbx("CORP/A/K", "K"), prox(mbx("CORP/A/Q", "Q"),
	    "SMTP:jsmith@company.com", NULL), NULL), &st);
	EXPECT(st.added == 1 && st.deleted == 1, "JSMITH deleted, Q added");
	q = owner_of(d, "jsmith@company.com");
	{
		char *qid = id_of(d, "CORP/A/Q");
		EXPECT(q && qid && strcmp(q, qid) == 0, "Q owns jsmith@company.com");
		g_free(qid);
	}
	g_free(q);
	dir_close(d);
}

static void
test_other_postoffices_are_not_ours(void)
{
	DirStore *d = store("notours");

	IMPORT_OK(d, &ctx_a, po_doc("CORP/A", mbx("CORP/A/X", "X"), NULL), NULL);
	IMPORT_REFUSED(d, &ctx_a, po_doc("CORP/ZZ", mbx("CORP/ZZ/X", "X"), NULL),
	    DIR_ERROR_NOT_OURS, "CORP/ZZ", "not served");
	IMPORT_REFUSED(d, &ctx_a, po_doc("CORP/A", mbx("CORP/A/X", "X"), mbx("CORP/B/Y", "Y"),
	    NULL), DIR_ERROR_NOT_OURS, "CORP/B/Y", "CORP/A");
	IMPORT_REFUSED(d, &ctx_a, po_doc("CORP/A", mbx("CORP/A/X", "X"),
	    mbx("CORP/AB/Y", "Y"), NULL), DIR_ERROR_NOT_OURS, "CORP/AB/Y");
	dir_close(d);
}

static void
test_documents_breaking_rules_are_refused_whole(void)
{
	DirStore *d = store("bad");
	SyncDoc *doc;
	DirEntry *e;

	IMPORT_OK(d, &ctx_a, po_doc("CORP/A", mbx("CORP/A/X", "X"), mbx("CORP/A/Y", "Y"), NULL),
	    NULL);
	doc = po_doc("CORP/A", mbx("CORP/A/X", "X"), NULL);
	doc->kind = SYNC_GAL;
	IMPORT_REFUSED(d, &ctx_a, doc, DIR_ERROR_INVALID, "postgate-po import-gal");
	doc = po_doc("CORP/A", mbx("CORP/A/X", "X"), NULL);
	doc->kind = SYNC_CANONICAL;
	IMPORT_REFUSED(d, &ctx_a, doc, DIR_ERROR_INVALID, "canonical");
	IMPORT_REFUSED(d, &ctx_a, po_doc("CORP/A", mbx("CORP/A/X", "X"),
	    mbx("CORP/A/BAD NAME", "B"), NULL), DIR_ERROR_INVALID, "legacy address",
	    "BAD NAME");
	IMPORT_REFUSED(d, &ctx_a, po_doc("CORP/A", mbx("CORP/A/X", "X"),
	    custom("CORP/A/C", "C", NULL), NULL), DIR_ERROR_INVALID, "CORP/A/C", "target");
	IMPORT_REFUSED(d, &ctx_a, po_doc("CORP/A", mbx("CORP/A/X", "X"),
	    custom("CORP/A/C", "C", "not an address"), NULL), DIR_ERROR_INVALID, "target");
	IMPORT_REFUSED(d, &ctx_a, po_doc("CORP/A", mbx("CORP/A/X", "X"),
	    dl("CORP/A/L", "L", "CORP/A/X", "bob@example.com", NULL), NULL), DIR_ERROR_INVALID,
	    "CORP/A/L", "member");
	IMPORT_REFUSED(d, &ctx_a, po_doc("CORP/A", mbx("CORP/A/X", "X"), mbx("CORP/A/Y", "Y"),
	    mbx("corp/a/x", "X again"), NULL), DIR_ERROR_INVALID, "CORP/A/X", "twice");
	IMPORT_REFUSED(d, &ctx_a, po_doc("CORP/A", prox(mbx("CORP/A/X", "X"),
	    "SMTP:a@company.com", "SMTP:b@company.com", NULL), NULL), DIR_ERROR_INVALID,
	    "exactly one");
	IMPORT_REFUSED(d, &ctx_a, po_doc("CORP/A", prox(mbx("CORP/A/X", "X"),
	    "smtp:a@company.com", NULL), NULL), DIR_ERROR_INVALID, "no primary");
	IMPORT_REFUSED(d, &ctx_a, po_doc("CORP/A", prox(mbx("CORP/A/X", "X"),
	    "Smtp:a@company.com", NULL), NULL), DIR_ERROR_INVALID, "must start with");
	IMPORT_REFUSED(d, &ctx_a, po_doc("CORP/A", prox(mbx("CORP/A/X", "X"),
	    "SMTP:a@company.com", "smtp:A@Company.com ", "smtp:a@COMPANY.COM", NULL), NULL),
	    DIR_ERROR_INVALID, "twice");
	IMPORT_REFUSED(d, &ctx_a, po_doc("CORP/A", mbx("CORP/A/X", "line\nbreak"), NULL),
	    DIR_ERROR_INVALID, "display name");
	/* The rules of the sync reader (dir_types.h): a C1 control (U+0085,
	 * U+009B) is a control character too. */
	IMPORT_REFUSED(d, &ctx_a, po_doc("CORP/A", mbx("CORP/A/X", "next\xc2\x85line"), NULL),
	    DIR_ERROR_INVALID, "display name");
	IMPORT_REFUSED(d, &ctx_a, po_doc("CORP/A", mbx("CORP/A/X", "csi\xc2\x9b" "2J"), NULL),
	    DIR_ERROR_INVALID, "display name");
	IMPORT_REFUSED(d, &ctx_a, po_doc("CORP/A", mbx("CORP/A/X", "X"),
	    dl("CORP/A/Y", "Y", NULL), custom("CORP/A/Z", "Z", "x@y.com"),
	    prox(mbx("CORP/A/W", "W"), "SMTP:w@exa mple.com", NULL), NULL), DIR_ERROR_INVALID,
	    "CORP/A/W");
	e = mbx("CORP/A/Y", "Y");
	e->deleted = TRUE;
	IMPORT_REFUSED(d, &ctx_a, po_doc("CORP/A", mbx("CORP/A/X", "X"), e, NULL),
	    DIR_ERROR_INVALID, "live entries only");
	doc = po_doc("CORP/A", mbx("CORP/A/X", "X"), NULL);
	g_clear_pointer(&doc->postoffice, g_free);
	doc->postoffice = g_strdup("CORP");
	IMPORT_REFUSED(d, &ctx_a, doc, DIR_ERROR_INVALID, "postoffice");
	/* A replication file for another site. */
	doc = sync_doc_new(SYNC_REPLICATION);
	doc->from_site = g_strdup("B");
	doc->for_site = g_strdup("C");
	IMPORT_REFUSED(d, &ctx_a, doc, DIR_ERROR_INVALID, "for site C");
	/* A replicated change without a stamp. */
	doc = sync_doc_new(SYNC_REPLICATION);
	doc->from_site = g_strdup("B");
	doc->for_site = g_strdup("A");
	e = mbx("CORP/B/U", "U");
	e->id = g_strdup("u-1");
	e->home_site = g_strdup("B");
	e->origin = g_strdup("B");
	g_ptr_array_add(doc->entries, e);
	IMPORT_REFUSED(d, &ctx_a, doc, DIR_ERROR_INVALID, "USN");
	/* A live replicated entry without a primary. */
	doc = sync_doc_new(SYNC_REPLICATION);
	doc->from_site = g_strdup("B");
	doc->for_site = g_strdup("A");
	e = mbx("CORP/B/U", "U");
	e->id = g_strdup("u-1");
	e->home_site = g_strdup("B");
	e->origin = g_strdup("B");
	e->usn = e->version = 1;
	g_ptr_array_add(doc->entries, e);
	IMPORT_REFUSED(d, &ctx_a, doc, DIR_ERROR_INVALID, "exactly one primary");
	/* Site names as the sync reader and the configuration take them: no
	 * dot, in a change's origin or home, or in a document's sites. */
	doc = sync_doc_new(SYNC_REPLICATION);
	doc->from_site = g_strdup("B");
	doc->for_site = g_strdup("A");
	e = prox(mbx("CORP/B/U", "U"), "SMTP:u@b.example", NULL);
	e->id = g_strdup("u-1");
	e->home_site = g_strdup("B.X");
	e->origin = g_strdup("B");
	e->usn = e->version = 1;
	g_ptr_array_add(doc->entries, e);
	IMPORT_REFUSED(d, &ctx_a, doc, DIR_ERROR_INVALID, "site names");
	doc = sync_doc_new(SYNC_REPLICATION);
	doc->from_site = g_strdup("B.X");
	doc->for_site = g_strdup("A");
	IMPORT_REFUSED(d, &ctx_a, doc, DIR_ERROR_INVALID, "the site it is from");
	{
		const DirContext dotted = { "A.B", dom_a, tpl_a, po_a, NULL, 0, LIFETIME, NULL };
		IMPORT_REFUSED(d, &dotted, po_doc("CORP/A", mbx("CORP/A/X", "X"), NULL),
		    DIR_ERROR_INVALID, "not a site name");
	}
	/* A directory belongs to one site. */
	{
		const DirContext other = { "A-renamed", dom_a, tpl_a, po_a, NULL, 0, LIFETIME, NULL };
		IMPORT_REFUSED(d, &other, po_doc("CORP/A", mbx("CORP/A/X", "X"), NULL),
		    DIR_ERROR_INVALID, "belongs to site A");
	}
	dir_close(d);
}

/* ---------------------------------------------------------- replication */

static void
test_replication_sends_exactly_what_the_peer_has_not_seen(void)
{
	DirStore *a = store("ra"), *b = store("rb");
	DirImportStats st = { 0 };
	SyncDoc *doc, *old;
	DirEntry *x;
	DirStats s;

	IMPORT_OK(a, &ctx_a, po_doc("CORP/A", mbx("CORP/A/X", "X"), mbx("CORP/A/Y", "Y"), NULL),
	    NULL);
	IMPORT_OK(b, &ctx_b, po_doc("CORP/B", mbx("CORP/B/U", "U"), NULL), NULL);
	old = export_for(a, &ctx_a, "B");
	EXPECT(old && old->kind == SYNC_REPLICATION && old->entries->len == 2 &&
	    g_strcmp0(old->from_site, "A") == 0 && g_strcmp0(old->for_site, "B") == 0,
	    "A's first export for B holds its two entries");
	EXPECT(old && g_hash_table_lookup(old->vector, "A") &&
	    *(guint64 *)g_hash_table_lookup(old->vector, "A") == 2, "and A's vector A:2");
	x = old && old->entries->len ? old->entries->pdata[0] : NULL;
	EXPECT(x && x->origin && x->usn && x->version && x->changed && x->id,
	    "stamped changes");
	st = xfer(a, &ctx_a, b, &ctx_b);
	EXPECT(st.added == 2, "B adds them");
	doc = export_for(b, &ctx_b, "A");
	EXPECT(doc && doc->entries->len == 1, "B's export for A holds only U (%u)",
	    doc ? doc->entries->len : 0);
	sync_doc_free(doc);
	st = xfer(b, &ctx_b, a, &ctx_a);
	EXPECT(st.added == 1, "A adds U");
	doc = export_for(a, &ctx_a, "B");
	EXPECT(doc && doc->entries->len == 0, "nothing left that B has not seen (%u)",
	    doc ? doc->entries->len : 0);
	sync_doc_free(doc);
	IMPORT_OK(a, &ctx_a, po_doc("CORP/A", mbx("CORP/A/X", "X2"), mbx("CORP/A/Y", "Y"),
	    NULL), NULL);
	doc = export_for(a, &ctx_a, "B");
	EXPECT(doc && doc->entries->len == 1 &&
	    strcmp(((DirEntry *)doc->entries->pdata[0])->name, "X2") == 0,
	    "exactly the one change");
	sync_doc_free(doc);
	/* The old file again: nothing changes. */
	IMPORT_OK(b, &ctx_b, old, &st);
	EXPECT(st.ignored == 2 && st.added + st.changed == 0, "a replay is ignored");
	st = xfer(a, &ctx_a, b, &ctx_b);
	EXPECT(st.changed == 1, "B takes the change");
	x = lookup(b, "CORP/A/X");
	EXPECT(x && strcmp(x->name, "X2") == 0 && strcmp(x->home_site, "A") == 0,
	    "as A made it");
	dir_entry_free(x);
	dir_stats(b, &s, NULL);
	EXPECT(g_hash_table_lookup(s.vector, "A") &&
	    *(guint64 *)g_hash_table_lookup(s.vector, "A") == 3 &&
	    g_hash_table_lookup(s.vector, "B") &&
	    *(guint64 *)g_hash_table_lookup(s.vector, "B") == 1, "B's vector: A:3 B:1");
	dir_stats_clear(&s);
	dir_close(a);
	dir_close(b);
}

static void
test_a_peer_is_never_sent_its_own_changes(void)
{
	DirStore *a = store("pa"), *b = store("pb"), *c = store("pc");
	SyncDoc *doc;

	IMPORT_OK(a, &ctx_a, po_doc("CORP/A", mbx("CORP/A/X", "X"), NULL), NULL);
	IMPORT_OK(b, &ctx_b, po_doc("CORP/B", mbx("CORP/B/U", "U"), NULL), NULL);
	/* B learns A's X through C; A has never reported to B. */
	xfer(a, &ctx_a, c, &ctx_c);
	xfer(c, &ctx_c, b, &ctx_b);
	doc = export_for(b, &ctx_b, "A");
	EXPECT(doc && doc->entries->len == 1 &&
	    strcmp(((DirEntry *)doc->entries->pdata[0])->legacy, "CORP/B/U") == 0,
	    "B's export for A holds U only, not A's own X (%u entries)",
	    doc ? doc->entries->len : 0);
	sync_doc_free(doc);
	dir_close(a);
	dir_close(b);
	dir_close(c);
}

static void
test_own_changes_coming_back_are_ignored(void)
{
	DirStore *a = store("own");
	SyncDoc *doc = sync_doc_new(SYNC_REPLICATION);
	DirImportStats st = { 0 };
	DirEntry *e, *x;
	char *id;

	IMPORT_OK(a, &ctx_a, po_doc("CORP/A", mbx("CORP/A/X", "X"), NULL), NULL);
	id = id_of(a, "CORP/A/X");
	doc->from_site = g_strdup("B");
	doc->for_site = g_strdup("A");
	e = prox(mbx("CORP/A/X", "forged"), "SMTP:forged@company.com", NULL);
	e->id = g_strdup(id);
	e->home_site = g_strdup("A");
	e->origin = g_strdup("A");
	e->usn = 99;
	e->version = 99;
	e->changed = 1;
	g_ptr_array_add(doc->entries, e);
	IMPORT_OK(a, &ctx_a, doc, &st);
	EXPECT(st.ignored == 1 && st.changed == 0, "this site's own change is ignored");
	x = lookup(a, "CORP/A/X");
	EXPECT(x && strcmp(x->name, "X") == 0 && x->version == 1, "X is as it was");
	EXPECT(lookup(a, "forged@company.com") == NULL, "and has no forged proxy");
	dir_entry_free(x);
	g_free(id);
	dir_close(a);
}

static void
test_cross_origin_clash_resolves_the_same_at_every_site(void)
{
	DirStore *a = store("xa"), *b = store("xb"), *c = store("xc"), *o = store("xo");
	DirImportStats sc;
	char *ida, *idb, *oc, *oo, *o2;
	DirStats s;

	/* B's JSMITH is made first, with the lower USN; A's still wins where
	 * neither is local (C, O): the lower origin site name comes first. */
	IMPORT_OK(b, &ctx_b, po_doc("CORP/B", mbx("CORP/B/AAA", "a"), mbx("CORP/B/JSMITH", "B"),
	    NULL), NULL);
	IMPORT_OK(a, &ctx_a, po_doc("CORP/A", mbx("CORP/A/X1", "1"), mbx("CORP/A/X2", "2"),
	    mbx("CORP/A/JSMITH", "A"), NULL), NULL);
	ida = id_of(a, "CORP/A/JSMITH");
	idb = id_of(b, "CORP/B/JSMITH");
	xfer(b, &ctx_b, c, &ctx_c);
	sc = xfer(a, &ctx_a, c, &ctx_c);
	EXPECT(sc.proxy_losses == 1, "C counts the clash once (%u)", sc.proxy_losses);
	xfer(c, &ctx_c, o, &ctx_o);
	oc = owner_of(c, "jsmith@company.com");
	oo = owner_of(o, "SMTP:jsmith@COMPANY.COM");
	EXPECT(oc && oo && strcmp(oc, ida) == 0 && strcmp(oo, ida) == 0,
	    "A's JSMITH owns jsmith@company.com at C and at O");
	o2 = owner_of(c, "jsmith@imc2.company.com");
	EXPECT(o2 && strcmp(o2, idb) == 0, "B's JSMITH keeps its other proxy");
	EXPECT_PROXIES(c, "CORP/B/JSMITH", "SMTP:jsmith@company.com,smtp:jsmith@imc2.company.com");
	dir_stats(c, &s, NULL);
	EXPECT(s.proxy_losses == 1, "dir stats counts the loss at C");
	dir_stats_clear(&s);
	dir_stats(o, &s, NULL);
	EXPECT(s.proxy_losses == 1, "and at O");
	dir_stats_clear(&s);
	{
		char *dc = dump(c), *dobs = dump(o);
		EXPECT(strcmp(dc, dobs) == 0, "the same directory at both sites");
		g_free(dc);
		g_free(dobs);
	}
	/* The winner deleted by its own postoffice: between two peers' entries
	 * the loser owns it now, everywhere. */
	IMPORT_OK(a, &ctx_a, po_doc("CORP/A", mbx("CORP/A/X1", "1"), mbx("CORP/A/X2", "2"),
	    NULL), NULL);
	xfer(a, &ctx_a, c, &ctx_c);
	xfer(c, &ctx_c, o, &ctx_o);
	g_free(oc);
	g_free(oo);
	oc = owner_of(c, "jsmith@company.com");
	oo = owner_of(o, "jsmith@company.com");
	EXPECT(oc && oo && strcmp(oc, idb) == 0 && strcmp(oo, idb) == 0,
	    "B's JSMITH owns it once A's is gone");
	g_free(ida);
	g_free(idb);
	g_free(oc);
	g_free(oo);
	g_free(o2);
	dir_close(a);
	dir_close(b);
	dir_close(c);
	dir_close(o);
}

/* ------------------------------------------- a peer against this site */

/* e stamped as a peer's change: id, home, origin, usn, version. */
static DirEntry *
stamped(DirEntry *e, const char *id, const char *home, const char *origin, guint64 usn,
    guint64 version)
{
	e->id = g_strdup(id);
	e->home_site = g_strdup(home);
	e->origin = g_strdup(origin);
	e->usn = usn;
	e->version = version;
	e->changed = 1700000000;
	return e;
}

/* A replication file from -> for; entries NULL-terminated. */
static SyncDoc *
repl_doc(const char *from, const char *for_site, ...)
{
	SyncDoc *doc = sync_doc_new(SYNC_REPLICATION);
	va_list ap;
	DirEntry *e;

	doc->from_site = g_strdup(from);
	doc->for_site = g_strdup(for_site);
	va_start(ap, for_site);
	while ((e = va_arg(ap, DirEntry *)))
		g_ptr_array_add(doc->entries, e);
	va_end(ap);
	return doc;
}

/* The tombstone a hostile peer makes of an entry. */
static DirEntry *
tombstone_of(const char *legacy, const char *id, const char *home, guint64 usn,
    guint64 version)
{
	DirEntry *e = stamped(mbx(legacy, ""), id, home, "B", usn, version);

	e->deleted = TRUE;
	return e;
}

/* Whether the owner of address is the entry id (NULL: no owner). */
static gboolean
owned_by(DirStore *d, const char *address, const char *id)
{
	char *o = owner_of(d, address);
	gboolean same = o && id ? strcmp(o, id) == 0 : o == id;

	g_free(o);
	return same;
}

static void
test_a_peer_cannot_delete_an_entry_of_this_site(void)
{
	DirStore *a = store("peer-del");
	DirImportStats st = { 0 };
	char *id, *before, *after;

	IMPORT_OK(a, &ctx_a, po_doc("CORP/A", mbx("CORP/A/ALICE", "Alice"), NULL), NULL);
	id = id_of(a, "CORP/A/ALICE");
	before = dump(a);
	/* As it is (home A), and lying about its home: both ignored. */
	IMPORT_OK(a, &ctx_a, repl_doc("B", "A", tombstone_of("CORP/A/ALICE", id, "A", 7, 9),
	    NULL), &st);
	EXPECT(st.ignored == 1 && st.deleted == 0, "the tombstone is ignored (%u ignored, %u "
	    "deleted)", st.ignored, st.deleted);
	IMPORT_OK(a, &ctx_a, repl_doc("B", "A", tombstone_of("CORP/B/ALICE", id, "B", 8, 10),
	    NULL), &st);
	EXPECT(st.ignored == 1 && st.deleted == 0, "and one that says it is B's entry");
	after = dump(a);
	EXPECT(strcmp(before, after) == 0, "the directory is unchanged:\n%s---\n%s", before,
	    after);
	EXPECT(owned_by(a, "alice@company.com", id), "alice@company.com is still ALICE's");
	/* The postoffice's own export still imports, and changes nothing. */
	IMPORT_OK(a, &ctx_a, po_doc("CORP/A", mbx("CORP/A/ALICE", "Alice"), NULL), &st);
	EXPECT(st.unchanged == 1, "the postoffice export finds ALICE as it was");
	g_free(before);
	g_free(after);
	g_free(id);
	dir_close(a);
}

static void
test_a_peer_cannot_rewrite_an_entry_of_this_site(void)
{
	DirStore *a = store("peer-mod");
	DirImportStats st = { 0 };
	char *id, *before, *after;
	DirEntry *x;

	IMPORT_OK(a, &ctx_a, po_doc("CORP/A", mbx("CORP/A/ALICE", "Alice"), NULL), NULL);
	id = id_of(a, "CORP/A/ALICE");
	before = dump(a);
	IMPORT_OK(a, &ctx_a, repl_doc("B", "A",
	    stamped(prox(mbx("CORP/A/ALICE", "Mallory"), "SMTP:thief@imc2.company.com", NULL),
	    id, "A", "B", 3, 2), NULL), &st);
	EXPECT(st.ignored == 1 && st.changed == 0, "the rewrite is ignored");
	/* Moving it to B, or a new entry on a postoffice this site serves. */
	IMPORT_OK(a, &ctx_a, repl_doc("B", "A",
	    stamped(prox(mbx("CORP/B/ALICE", "Mallory"), "SMTP:alice@company.com", NULL),
	    id, "B", "B", 4, 3),
	    stamped(prox(mbx("CORP/A2/NEW", "New"), "SMTP:new@company.com", NULL),
	    "B:new", "B", "B", 5, 1), NULL), &st);
	EXPECT(st.ignored == 2 && st.changed == 0 && st.added == 0,
	    "a move to B and a new entry on CORP/A2 are ignored (%u ignored)", st.ignored);
	after = dump(a);
	EXPECT(strcmp(before, after) == 0, "the directory is unchanged:\n%s---\n%s", before,
	    after);
	x = lookup(a, "alice@company.com");
	EXPECT(x && strcmp(x->name, "Alice") == 0 && strcmp(x->legacy, "CORP/A/ALICE") == 0,
	    "alice@company.com is ALICE, named Alice");
	dir_entry_free(x);
	x = lookup(a, "thief@imc2.company.com");
	EXPECT(x == NULL, "the rewritten proxy is nobody's");
	dir_entry_free(x);
	g_free(before);
	g_free(after);
	g_free(id);
	dir_close(a);
}

static void
test_a_lost_claim_is_never_promoted_by_a_deletion(void)
{
	DirStore *a = store("peer-claim");
	DirImportStats st = { 0 };
	char *id, *tid;
	DirEntry *x;

	IMPORT_OK(a, &ctx_a, po_doc("CORP/A", mbx("CORP/A/ALICE", "Alice"), NULL), NULL);
	id = id_of(a, "CORP/A/ALICE");
	/* B's entry claims ALICE's address: it loses (ALICE is this site's). */
	IMPORT_OK(a, &ctx_a, repl_doc("B", "A",
	    stamped(prox(mbx("CORP/B/THIEF", "Thief"), "SMTP:thief@imc2.company.com",
	    "smtp:alice@company.com", NULL), "B:thief", "B", "B", 1, 1), NULL), &st);
	EXPECT(st.added == 1 && st.proxy_losses == 1, "THIEF is added, its claim lost (%u)",
	    st.proxy_losses);
	tid = id_of(a, "CORP/B/THIEF");
	EXPECT(owned_by(a, "alice@company.com", id), "alice@company.com is ALICE's");
	/* Then B deletes ALICE: ignored. */
	IMPORT_OK(a, &ctx_a, repl_doc("B", "A", tombstone_of("CORP/A/ALICE", id, "A", 2, 5),
	    NULL), &st);
	EXPECT(st.ignored == 1, "the tombstone is ignored");
	EXPECT(owned_by(a, "alice@company.com", id), "alice@company.com is still ALICE's");
	/* A new version of THIEF still claiming it: still lost. */
	IMPORT_OK(a, &ctx_a, repl_doc("B", "A",
	    stamped(prox(mbx("CORP/B/THIEF", "Thief 2"), "SMTP:thief@imc2.company.com",
	    "smtp:alice@company.com", NULL), "B:thief", "B", "B", 3, 2), NULL), &st);
	EXPECT(st.changed == 1 && st.proxy_losses == 1, "THIEF changes, its claim lost again");
	EXPECT(owned_by(a, "alice@company.com", id), "alice@company.com is still ALICE's");
	/* This site's postoffice deletes ALICE: THIEF's lost claim stays lost. */
	IMPORT_OK(a, &ctx_a, po_doc("CORP/A", mbx("CORP/A/BOB", "Bob"), NULL), &st);
	EXPECT(st.deleted == 1, "ALICE deleted by her postoffice");
	EXPECT(owned_by(a, "alice@company.com", NULL), "alice@company.com is nobody's: the "
	    "lost claim is not promoted");
	EXPECT(owned_by(a, "thief@imc2.company.com", tid), "THIEF keeps its own address");
	/* And the postoffice's export with ALICE imports again, no clash. */
	IMPORT_OK(a, &ctx_a, po_doc("CORP/A", mbx("CORP/A/BOB", "Bob"),
	    mbx("CORP/A/ALICE", "Alice"), NULL), &st);
	EXPECT(st.added == 1, "ALICE is back");
	x = lookup(a, "alice@company.com");
	EXPECT(x && strcmp(x->legacy, "CORP/A/ALICE") == 0 && strcmp(x->home_site, "A") == 0,
	    "alice@company.com is this site's ALICE");
	dir_entry_free(x);
	g_free(id);
	g_free(tid);
	dir_close(a);
}

/* A database from before SPEC 2 was kept: a peer's claim stored beside
 * ours, as the replication import then recorded it. */
static void
plant_claim(const char *name, const char *key, const char *legacy)
{
	char *path = g_strdup_printf("%s/%s.db", tmpdir, name);
	char *sql = sqlite3_mprintf("INSERT INTO proxies(key, origin, usn, rid, type, home_site, "
	    "legacy) SELECT %Q, origin, usn, rid, type, home_site, legacy FROM entries WHERE "
	    "legacy = %Q", key, legacy);
	sqlite3 *db;

	EXPECT(sqlite3_open(path, &db) == SQLITE_OK && sqlite3_exec(db, sql, NULL, NULL,
	    NULL) == SQLITE_OK && sqlite3_changes(db) == 1, "a claim of %s planted for %s", key,
	    legacy);
	sqlite3_close(db);
	sqlite3_free(sql);
	g_free(path);
}

static void
test_an_old_databases_lost_claim_is_dropped_not_promoted(void)
{
	DirStore *a = store("legacy-claim");
	DirImportStats st = { 0 };
	char *id;

	IMPORT_OK(a, &ctx_a, po_doc("CORP/A", mbx("CORP/A/ALICE", "Alice"),
	    mbx("CORP/A/BOB", "Bob"), NULL), NULL);
	id = id_of(a, "CORP/A/ALICE");
	IMPORT_OK(a, &ctx_a, repl_doc("B", "A",
	    stamped(prox(mbx("CORP/B/THIEF", "Thief"), "SMTP:thief@imc2.company.com",
	    "smtp:alice@company.com", "smtp:bob@company.com", NULL), "B:thief", "B", "B", 1, 1),
	    NULL), NULL);
	dir_close(a);
	plant_claim("legacy-claim", "alice@company.com", "CORP/B/THIEF");
	plant_claim("legacy-claim", "bob@company.com", "CORP/B/THIEF");
	{
		char *path = g_strdup_printf("%s/legacy-claim.db", tmpdir);
		a = dir_open(path, NULL);
		g_free(path);
	}
	EXPECT(a && owned_by(a, "alice@company.com", id), "ALICE owns alice@company.com (A < B)");
	/* ALICE deleted by her postoffice, BOB renamed: THIEF gets neither. */
	IMPORT_OK(a, &ctx_a, po_doc("CORP/A", mbx("CORP/A/BOB", "Bob renamed"), NULL), &st);
	EXPECT(st.deleted == 1 && st.changed == 1 && st.proxy_losses == 2,
	    "ALICE deleted, BOB changed, both of THIEF's old claims dropped (%u losses)",
	    st.proxy_losses);
	EXPECT(owned_by(a, "alice@company.com", NULL), "alice@company.com is nobody's");
	{
		char *bob = id_of(a, "CORP/A/BOB");
		EXPECT(owned_by(a, "bob@company.com", bob), "bob@company.com is BOB's");
		g_free(bob);
	}
	g_free(id);
	dir_close(a);
}

static void
test_postoffice_import_wins_a_clash_with_a_peer(void)
{
	DirStore *a = store("po-wins"), *b = store("po-wins-b");
	DirImportStats st = { 0 };
	char *ida, *idb, *da, *db;
	GPtrArray *l;

	/* Each site's JSMITH claims jsmith@company.com; B's reaches A first,
	 * A's reaches B after B's own. */
	IMPORT_OK(b, &ctx_b, po_doc("CORP/B", mbx("CORP/B/JSMITH", "B"), NULL), NULL);
	xfer(b, &ctx_b, a, &ctx_a);
	idb = id_of(a, "CORP/B/JSMITH");
	EXPECT(owned_by(a, "jsmith@company.com", idb), "at A, B's JSMITH owns it at first");
	IMPORT_OK(a, &ctx_a, po_doc("CORP/A", mbx("CORP/A/JSMITH", "A"), NULL), &st);
	EXPECT(st.added == 1 && st.proxy_losses == 1, "A's postoffice export is imported, the "
	    "peer's claim lost (%u added, %u losses)", st.added, st.proxy_losses);
	ida = id_of(a, "CORP/A/JSMITH");
	EXPECT(owned_by(a, "jsmith@company.com", ida), "at A, A's JSMITH owns it");
	EXPECT(owned_by(a, "jsmith@imc2.company.com", idb), "B's JSMITH keeps its other proxy");
	st = xfer(a, &ctx_a, b, &ctx_b);
	EXPECT(st.proxy_losses == 1, "B counts its clash");
	EXPECT(owned_by(b, "jsmith@company.com", idb), "at B, B's own JSMITH keeps it");
	da = dump(a);
	db = dump(b);
	EXPECT(strcmp(da, db) == 0, "the same entries at both sites:\n%s---\n%s", da, db);
	/* dir list shows what routing sees: the loser without the primary. */
	l = dir_list(a, DIR_MAILBOX, NULL);
	EXPECT(l && l->len == 2 && dir_primary(l->pdata[0]) &&
	    strcmp(dir_primary(l->pdata[0]), "SMTP:jsmith@company.com") == 0 &&
	    dir_primary(l->pdata[1]) == NULL, "at A, CORP/A/JSMITH is listed with "
	    "SMTP:jsmith@company.com, CORP/B/JSMITH without");
	g_ptr_array_unref(l);
	/* A deletes its JSMITH: B's lost claim is not promoted at A ... */
	IMPORT_OK(a, &ctx_a, po_doc("CORP/A", mbx("CORP/A/OTHER", "O"), NULL), NULL);
	EXPECT(owned_by(a, "jsmith@company.com", NULL), "at A, nobody owns it now");
	xfer(a, &ctx_a, b, &ctx_b);
	EXPECT(owned_by(b, "jsmith@company.com", idb), "at B, B's JSMITH still does");
	/* ... until B's JSMITH changes: a new state claims afresh. */
	IMPORT_OK(b, &ctx_b, po_doc("CORP/B", mbx("CORP/B/JSMITH", "B renamed"), NULL), NULL);
	st = xfer(b, &ctx_b, a, &ctx_a);
	EXPECT(st.changed == 1 && st.proxy_losses == 0, "B's change arrives at A");
	EXPECT(owned_by(a, "jsmith@company.com", idb), "at A, B's JSMITH owns it now");
	g_free(da);
	g_free(db);
	g_free(ida);
	g_free(idb);
	dir_close(a);
	dir_close(b);
}

static void
test_a_clash_inside_one_file_lists_the_loser_without_its_primary(void)
{
	DirStore *o = store("infile");
	DirImportStats st = { 0 };
	GPtrArray *l;

	/* C's change comes first in the file, B's wins (the lower site). */
	IMPORT_OK(o, &ctx_o, repl_doc("B", "O",
	    stamped(prox(mbx("CORP/C/X", "X at C"), "SMTP:x@shared.example", NULL), "C:x", "C",
	    "C", 1, 1),
	    stamped(prox(mbx("CORP/B/X", "X at B"), "SMTP:x@shared.example",
	    "smtp:xb@shared.example", NULL), "B:x", "B", "B", 1, 1), NULL), &st);
	EXPECT(st.added == 2 && st.proxy_losses == 1, "both added, one loss");
	EXPECT(owned_by(o, "x@shared.example", "B:x"), "B's X owns x@shared.example");
	l = dir_list(o, -1, NULL);
	EXPECT(l && l->len == 2, "two entries listed");
	if (l && l->len == 2) {
		const DirEntry *bx = l->pdata[0], *cx = l->pdata[1];
		EXPECT(strcmp(bx->legacy, "CORP/B/X") == 0 && dir_primary(bx) &&
		    strcmp(dir_primary(bx), "SMTP:x@shared.example") == 0 &&
		    bx->proxies->len == 2, "CORP/B/X is listed with its primary and secondary");
		EXPECT(strcmp(cx->legacy, "CORP/C/X") == 0 && dir_primary(cx) == NULL &&
		    cx->proxies->len == 0, "CORP/C/X is listed without the primary it lost");
	}
	if (l)
		g_ptr_array_unref(l);
	EXPECT_PROXIES(o, "CORP/C/X", "SMTP:x@shared.example");
	dir_close(o);
}

/* A copy of text without its lines containing what; g_free it. */
static char *
without_line(const char *text, const char *what)
{
	char **lines = g_strsplit(text, "\n", -1);
	GString *out = g_string_new(NULL);

	for (char **l = lines; *l; l++)
		if (**l && !strstr(*l, what))
			g_string_append_printf(out, "%s\n", *l);
	g_strfreev(lines);
	return g_string_free(out, FALSE);
}

/* Replication docs for observer O (fresh stores). */
static void
apply_all(DirStore *o, SyncDoc **docs, const int *order, int n)
{
	for (int i = 0; i < n; i++) {
		SyncDoc *copy = sync_doc_new(SYNC_REPLICATION);
		const SyncDoc *src = docs[order[i]];
		GHashTableIter it;
		gpointer k, v;

		copy->from_site = g_strdup(src->from_site);
		copy->for_site = g_strdup(src->for_site);
		g_hash_table_iter_init(&it, src->vector);
		while (g_hash_table_iter_next(&it, &k, &v))
			g_hash_table_insert(copy->vector, g_strdup(k), g_memdup2(v,
			    sizeof(guint64)));
		for (guint j = 0; j < src->entries->len; j++)
			g_ptr_array_add(copy->entries, dir_entry_copy(src->entries->pdata[j]));
		IMPORT_OK(o, &ctx_o, copy, NULL);
	}
}

/* Issue 12: proxies that differ only in case are one proxy, so two entries
 * of different origins claiming it clash like any other (each site's own
 * entry wins there, point 0); each keeps its proxy as written. */
static void
test_proxies_differing_in_case_clash_across_origins(void)
{
	DirStore *a = store("ca"), *b = store("cb");
	DirImportStats sa, sb;
	char *ida, *idb, *oa, *ob;

	IMPORT_OK(b, &ctx_b, po_doc("CORP/B", prox(mbx("CORP/B/JS", "B"),
	    "SMTP:JSmith@Company.com", "smtp:js@imc2.company.com", NULL), NULL), NULL);
	IMPORT_OK(a, &ctx_a, po_doc("CORP/A", mbx("CORP/A/JSMITH", "A"), NULL), NULL);
	ida = id_of(a, "CORP/A/JSMITH");
	idb = id_of(b, "CORP/B/JS");
	sa = xfer(b, &ctx_b, a, &ctx_a);
	sb = xfer(a, &ctx_a, b, &ctx_b);
	EXPECT(sa.proxy_losses == 1 && sb.proxy_losses == 1,
	    "each site counts the clash once (A %u, B %u)", sa.proxy_losses, sb.proxy_losses);
	oa = owner_of(a, "JSMITH@company.com");
	ob = owner_of(b, "jsmith@company.com");
	EXPECT(oa && ob && ida && idb && strcmp(oa, ida) == 0 && strcmp(ob, idb) == 0,
	    "each site's own entry owns it there (A's at A, B's at B), whatever the case");
	g_free(oa);
	oa = owner_of(a, "JS@IMC2.company.com");
	EXPECT(oa && idb && strcmp(oa, idb) == 0, "B's entry keeps its other proxy");
	EXPECT_PROXIES(a, "CORP/B/JS", "SMTP:JSmith@company.com,smtp:js@imc2.company.com");
	EXPECT_PROXIES(a, "CORP/A/JSMITH", "SMTP:jsmith@company.com");
	{
		char *da = dump(a), *db = dump(b);
		EXPECT(strcmp(da, db) == 0, "the same directory at both sites");
		g_free(da);
		g_free(db);
	}
	/* A postoffice export may not take it either (the clash is refused). */
	IMPORT_REFUSED(a, &ctx_a, po_doc("CORP/A", mbx("CORP/A/JSMITH", "A"),
	    prox(mbx("CORP/A/J2", "J2"), "SMTP:jSmItH@company.com", NULL), NULL),
	    DIR_ERROR_CLASH, "CORP/A/J2", "CORP/A/JSMITH");
	g_free(ida);
	g_free(idb);
	g_free(oa);
	g_free(ob);
	dir_close(a);
	dir_close(b);
}

/* A directory.db of schema version 1 (keys with their local part as
 * written) is migrated on open: its keys compare without case, and the
 * proxy map is rebuilt for them. */
static void
test_schema_1_keys_are_migrated_to_compare_without_case(void)
{
	char *path = g_strdup_printf("%s/v1.db", tmpdir);
	DirStore *d = store("v1");
	DirEntry *x;
	DirStats s;
	sqlite3 *db;

	IMPORT_OK(d, &ctx_a, po_doc("CORP/A", prox(mbx("CORP/A/X", "X"),
	    "SMTP:Xavier.Smith@company.com", "smtp:XS@company.com", NULL),
	    mbx("CORP/A/Y", "Y"), NULL), NULL);
	dir_close(d);
	/* What schema 1 stored: the keys as written. */
	EXPECT(sqlite3_open(path, &db) == SQLITE_OK && sqlite3_exec(db,
	    "UPDATE proxies SET key = 'Xavier.Smith@company.com' WHERE key = "
	    "'xavier.smith@company.com';"
	    "UPDATE proxies SET key = 'XS@company.com' WHERE key = 'xs@company.com';"
	    "DROP TABLE schema_version;"
	    "CREATE TABLE schema_version(version INTEGER NOT NULL);"
	    "INSERT INTO schema_version VALUES (1)", NULL, NULL, NULL) == SQLITE_OK,
	    "make a schema 1 database (%s)", sqlite3_errmsg(db));
	sqlite3_close(db);
	d = dir_open(path, NULL);
	EXPECT(d != NULL && schema_version_of(path) == DIR_SCHEMA_VERSION, "migrated");
	x = d ? lookup(d, "xavier.smith@COMPANY.com") : NULL;
	EXPECT(x && strcmp(x->legacy, "CORP/A/X") == 0, "the old key is found in any case");
	dir_entry_free(x);
	x = d ? lookup(d, "xs@company.com") : NULL;
	EXPECT(x && strcmp(x->legacy, "CORP/A/X") == 0, "and the secondary");
	dir_entry_free(x);
	EXPECT(d && dir_stats(d, &s, NULL) && s.proxies == 3 && s.proxy_losses == 0 &&
	    s.map_current, "three claims, no loss, a proxy map of the new keys");
	if (d)
		dir_stats_clear(&s);
	if (d) {
		PgAddr a = { .kind = ADDR_KIND_SMTP };
		gboolean found = FALSE;
		DirBrief b;

		g_strlcpy(a.smtp, "XAVIER.SMITH@company.com", sizeof a.smtp);
		EXPECT(dir_read_begin(d, NULL), "read batch");
		EXPECT(dir_read_mapped(d), "the batch reads the rebuilt map");
		EXPECT(dir_brief(d, &a, &b, &found, NULL) && found &&
		    strcmp(b.legacy, "CORP/A/X") == 0, "found through the map too");
		dir_read_end(d);
	}
	dir_close(d);
	g_free(path);
}

static void
test_replication_is_idempotent_and_order_tolerant(void)
{
	DirStore *a = store("oa"), *b = store("ob"), *c = store("oc");
	enum { A1, B2, A3, B3, C3, C1, NDOCS };
	SyncDoc *docs[NDOCS];
	char *final, *x_a, *jsmith_b;
	static const int orders[][9] = {
		{ A1, B2, A3, B3, C3, C1, -1 },
		{ C3, B3, A3, B2, A1, C1, -1 },
		{ B3, A1, C3, A3, B2, C1, -1 },
		{ A3, A1, C1, B3, C3, B2, -1 },
		{ B2, C3, A1, B3, A3, C1, -1 },
		{ C1, B2, B2, A1, A3, A1, C3, B3, -1 },   /* duplicates */
		{ A3, B3, C3, A1, B2, C1, A1, C1, -1 },   /* replays of older files */
		{ C3, A3, B3, -1 },                        /* only the latest */
	};
	DirEntry *x;

	/* Stage 1: each site's own postoffice. */
	IMPORT_OK(a, &ctx_a, po_doc("CORP/A", mbx("CORP/A/X", "X"), mbx("CORP/A/Y", "Y"),
	    mbx("CORP/A/Z", "Z"), dl("CORP/A/L", "List", "CORP/A/X", "CORP/B/U", NULL), NULL),
	    NULL);
	IMPORT_OK(b, &ctx_b, po_doc("CORP/B", mbx("CORP/B/JSMITH", "John"),
	    mbx("CORP/B/U", "U"), NULL), NULL);
	IMPORT_OK(c, &ctx_c, po_doc("CORP/C", mbx("CORP/C/JSMITH", "Jack"),
	    mbx("CORP/C/V", "V"), NULL), NULL);
	docs[A1] = export_for(a, &ctx_a, "O");
	docs[C1] = export_for(c, &ctx_c, "O");
	/* Stage 2: some exchanges. */
	xfer(a, &ctx_a, b, &ctx_b);
	xfer(a, &ctx_a, c, &ctx_c);
	xfer(b, &ctx_b, c, &ctx_c);
	xfer(c, &ctx_c, a, &ctx_a);
	docs[B2] = export_for(b, &ctx_b, "O");
	/* Stage 3: concurrent, conflicting changes.  A renames X, deletes Y and
	 * changes L; B takes CORP/A over and renames X and Y differently; C
	 * deletes V and adds W. */
	IMPORT_OK(a, &ctx_a, po_doc("CORP/A", mbx("CORP/A/X", "X by A"), mbx("CORP/A/Z", "Z"),
	    dl("CORP/A/L", "List", "CORP/A/X", "CORP/C/V", NULL), NULL), NULL);
	IMPORT_OK(b, &ctx_b_takeover, po_doc("CORP/A", mbx("CORP/A/X", "X by B"),
	    mbx("CORP/A/Y", "Y by B"), mbx("CORP/A/Z", "Z"),
	    dl("CORP/A/L", "List", "CORP/A/X", "CORP/B/U", NULL), NULL), NULL);
	IMPORT_OK(c, &ctx_c, po_doc("CORP/C", mbx("CORP/C/JSMITH", "Jack"),
	    mbx("CORP/C/W", "W"), NULL), NULL);
	docs[A3] = export_for(a, &ctx_a, "O");
	docs[B3] = export_for(b, &ctx_b, "O");
	docs[C3] = export_for(c, &ctx_c, "O");
	/* The three sites exchange until nothing is new, in a fixed mesh. */
	for (int round = 0; round < 3; round++) {
		xfer(a, &ctx_a, b, &ctx_b);
		xfer(c, &ctx_c, b, &ctx_b);
		xfer(b, &ctx_b, a, &ctx_a);
		xfer(b, &ctx_b, c, &ctx_c);
		xfer(a, &ctx_a, c, &ctx_c);
		xfer(c, &ctx_c, a, &ctx_a);
	}
	final = dump(b);
	{
		char *da = dump(a), *dc = dump(c);
		EXPECT(strcmp(final, dc) == 0, "B and C agree:\nB:\n%sC:\n%s", final, dc);
		/* A still serves CORP/A: B's takeover of Z is B's change about an
		 * entry of A, which A never takes from a peer (SPEC 2).  All else
		 * agrees. */
		char *wa = without_line(da, "CORP/A/Z"), *wb = without_line(final, "CORP/A/Z");
		EXPECT(strcmp(wa, wb) == 0, "A agrees with B and C but for Z:\nA:\n%sB:\n%s", da,
		    final);
		g_free(wa);
		g_free(wb);
		g_free(da);
		g_free(dc);
	}
	/* What they agree on: the conflict order. */
	x = lookup(a, "CORP/A/X");
	EXPECT(x && strcmp(x->name, "X by A") == 0 && strcmp(x->home_site, "A") == 0,
	    "X: version 2 by A beats version 2 by B (the lower site name)");
	dir_entry_free(x);
	x = lookup(a, "CORP/A/Y");
	EXPECT(x == NULL, "Y: A's deletion beats B's rename");
	dir_entry_free(x);
	x = lookup(b, "CORP/A/Z");
	EXPECT(x && strcmp(x->home_site, "B") == 0, "Z: only B changed it (took it over)");
	dir_entry_free(x);
	x = lookup(a, "CORP/A/Z");
	EXPECT(x && strcmp(x->home_site, "A") == 0 && x->version == 1,
	    "at A, which serves CORP/A, Z is still A's own");
	dir_entry_free(x);
	x = lookup(a, "CORP/C/V");
	EXPECT(x == NULL, "V deleted");
	dir_entry_free(x);
	x_a = owner_of(a, "jsmith@company.com");
	jsmith_b = id_of(b, "CORP/B/JSMITH");
	EXPECT(x_a && jsmith_b && strcmp(x_a, jsmith_b) == 0,
	    "B's JSMITH (origin B) keeps jsmith@company.com over C's");
	/* Every order, with duplicates and replays, gives the same directory. */
	for (guint i = 0; i < G_N_ELEMENTS(orders); i++) {
		char name[32], *got, *owner;
		DirStore *o;
		int n = 0;

		while (orders[i][n] >= 0)
			n++;
		g_snprintf(name, sizeof name, "observer%u", i);
		o = store(name);
		apply_all(o, docs, orders[i], n);
		got = dump(o);
		EXPECT(strcmp(got, final) == 0, "order %u gives the same directory:\n%s---\n%s",
		    i, final, got);
		owner = owner_of(o, "jsmith@company.com");
		EXPECT(owner && jsmith_b && strcmp(owner, jsmith_b) == 0,
		    "order %u: the same owner of jsmith@company.com", i);
		g_free(owner);
		g_free(got);
		dir_close(o);
	}
	for (int i = 0; i < NDOCS; i++)
		sync_doc_free(docs[i]);
	g_free(final);
	g_free(x_a);
	g_free(jsmith_b);
	dir_close(a);
	dir_close(b);
	dir_close(c);
}

static void
test_tombstones_are_purged_and_never_resurrected(void)
{
	const DirContext short_a = { "A", dom_a, tpl_a, po_a, NULL, 0, 100, NULL };
	const DirContext short_o = { "O", NULL, NULL, po_o, NULL, 0, 100, NULL };
	DirStore *a = store("ta"), *o = store("to");
	DirImportStats st = { 0 };
	SyncDoc *old, *doc;
	char *idy, *before;
	DirStats s;

	dir_set_now(a, 1000000);
	dir_set_now(o, 1000000);
	IMPORT_OK(a, &short_a, po_doc("CORP/A", mbx("CORP/A/X", "X"), mbx("CORP/A/Y", "Y"),
	    NULL), NULL);
	idy = id_of(a, "CORP/A/Y");
	old = export_for(a, &short_a, "O");
	doc = export_for(a, &short_a, "O");
	IMPORT_OK(o, &short_o, doc, NULL);
	IMPORT_OK(a, &short_a, po_doc("CORP/A", mbx("CORP/A/X", "X"), NULL), &st);
	EXPECT(st.deleted == 1, "Y deleted");
	IMPORT_OK(o, &short_o, export_for(a, &short_a, "O"), &st);
	EXPECT(st.deleted == 1, "the deletion replicated");
	dir_set_now(a, 1000000 + 100);
	IMPORT_OK(a, &short_a, po_doc("CORP/A", mbx("CORP/A/X", "X"), NULL), &st);
	EXPECT(st.purged == 0, "kept for its lifetime");
	dir_stats(a, &s, NULL);
	EXPECT(s.tombstones == 1, "one tombstone");
	dir_stats_clear(&s);
	dir_set_now(a, 1000000 + 101);
	IMPORT_OK(a, &short_a, po_doc("CORP/A", mbx("CORP/A/X", "X"), NULL), &st);
	EXPECT(st.purged == 1, "purged after it");
	dir_stats(a, &s, NULL);
	EXPECT(s.tombstones == 0, "no tombstone left");
	dir_stats_clear(&s);
	{
		DirEntry *y = dir_get(a, idy, NULL);
		EXPECT(y == NULL, "Y is gone for good at A");
		dir_entry_free(y);
	}
	/* At O: purged at its next import, then the old file is replayed. */
	dir_set_now(o, 1000000 + 500);
	IMPORT_OK(o, &short_o, export_for(a, &short_a, "O"), &st);
	EXPECT(st.purged == 1, "O purges too");
	before = dump(o);
	IMPORT_OK(o, &short_o, old, &st);
	EXPECT(st.ignored >= 1 && st.added == 0, "the replayed old Y is ignored (added %u)",
	    st.added);
	{
		char *after = dump(o);
		DirEntry *y = lookup(o, "CORP/A/Y");
		EXPECT(strcmp(before, after) == 0 && y == NULL, "Y is not resurrected");
		dir_entry_free(y);
		g_free(after);
	}
	g_free(before);
	g_free(idy);
	dir_close(a);
	dir_close(o);
}

/* --------------------------------------------------------------- reads */

static void
test_lookup_accepts_every_address_form(void)
{
	DirStore *d = store("lookup");
	static const char *const found[] = { "x@company.com", "SMTP:x@company.com",
		"smtp:x@Company.Com", " x@COMPANY.COM ", "CORP/A/X", "corp/a/x",
		"SMTP:x@company.com " };
	DirEntry *x;
	GError *e = NULL;

	IMPORT_OK(d, &ctx_a, po_doc("CORP/A", mbx("CORP/A/X", "X"),
	    custom("CORP/A/C", "C", "SMTP:bob@partner.org"), NULL), NULL);
	for (guint i = 0; i < G_N_ELEMENTS(found); i++) {
		x = lookup(d, found[i]);
		EXPECT(x && strcmp(x->legacy, "CORP/A/X") == 0, "\"%s\" finds X", found[i]);
		dir_entry_free(x);
	}
	x = lookup(d, "X@company.com");
	EXPECT(x && strcmp(x->legacy, "CORP/A/X") == 0, "the local part is compared "
	    "without case");
	dir_entry_free(x);
	x = lookup(d, "\"x\"@company.com");
	EXPECT(x == NULL, "a quoted local part is an address, of no entry");
	dir_entry_free(x);
	x = lookup(d, "nobody@company.com");
	EXPECT(x == NULL, "unknown: NULL without an error");
	dir_entry_free(x);
	x = lookup(d, "bob@partner.org");
	EXPECT(x == NULL, "a custom's target is not its address");
	dir_entry_free(x);
	x = dir_lookup(d, "CORP/A", &e);
	EXPECT(x == NULL && e && e->code == DIR_ERROR_INVALID, "bad syntax is an error (%s)",
	    e ? e->message : "");
	g_clear_error(&e);
	x = dir_lookup(d, "x@@company", &e);
	EXPECT(x == NULL && e && e->code == DIR_ERROR_INVALID, "bad SMTP syntax too (%s)",
	    e ? e->message : "");
	g_clear_error(&e);
	dir_close(d);
}

static void
test_gal_export_lists_every_live_entry_by_legacy_address(void)
{
	DirStore *a = store("gal"), *b = store("galb");
	GError *e = NULL;
	SyncDoc *gal;

	IMPORT_OK(b, &ctx_b, po_doc("CORP/B", mbx("CORP/B/JSMITH", "B's"), NULL), NULL);
	IMPORT_OK(a, &ctx_a, po_doc("CORP/A", mbx("CORP/A/Z", "Z"), mbx("CORP/A/JSMITH", "A's"),
	    NULL), NULL);
	IMPORT_OK(a, &ctx_a, po_doc("CORP/GWA", dl("CORP/GWA/ALL", "All", "CORP/A/Z", NULL),
	    custom("CORP/GWA/BOB", "Bob", "bob@partner.org"), NULL), NULL);
	xfer(b, &ctx_b, a, &ctx_a);
	gal = dir_export_gal(a, &ctx_a, "corp/a", &e);
	EXPECT(gal && gal->kind == SYNC_GAL && g_strcmp0(gal->postoffice, "CORP/A") == 0,
	    "a GAL for CORP/A (%s)", e ? e->message : "");
	g_clear_error(&e);
	if (gal) {
		static const char *const want[] = { "CORP/A/JSMITH", "CORP/A/Z", "CORP/B/JSMITH",
			"CORP/GWA/ALL", "CORP/GWA/BOB" };
		EXPECT(gal->entries->len == G_N_ELEMENTS(want), "five entries (%u)",
		    gal->entries->len);
		for (guint i = 0; i < gal->entries->len && i < G_N_ELEMENTS(want); i++) {
			DirEntry *x = gal->entries->pdata[i];
			EXPECT(strcmp(x->legacy, want[i]) == 0, "entry %u is %s (%s)", i, want[i],
			    x->legacy);
			EXPECT(x->origin == NULL && x->usn == 0 && x->members->len == 0,
			    "%s: no stamps, no members", x->legacy);
			if (strcmp(x->legacy, "CORP/B/JSMITH") == 0)
				EXPECT(x->proxies->len == 0,
				    "B's JSMITH lost its primary: none shown");
			else if (strcmp(x->legacy, "CORP/GWA/BOB") == 0)
				EXPECT(x->proxies->len == 1 && g_strcmp0(x->target,
				    "SMTP:bob@partner.org") == 0, "a custom with its target");
			else
				EXPECT(x->proxies->len == 1 && is_primary_str(x->proxies->pdata[0]),
				    "%s: its primary only", x->legacy);
		}
	}
	sync_doc_free(gal);
	gal = dir_export_gal(a, &ctx_a, "CORP/B", &e);
	EXPECT(gal == NULL && e && e->code == DIR_ERROR_NOT_OURS,
	    "no GAL for a postoffice of another site (%s)", e ? e->message : "");
	g_clear_error(&e);
	dir_close(a);
	dir_close(b);
}

static void
test_list_and_stats(void)
{
	DirStore *d = store("list");
	GPtrArray *l;
	DirStats s;

	IMPORT_OK(d, &ctx_a, po_doc("CORP/GWA", dl("CORP/GWA/ALL", "All", "CORP/A/B", NULL),
	    custom("CORP/GWA/BOB", "Bob", "bob@partner.org"), NULL), NULL);
	IMPORT_OK(d, &ctx_a, po_doc("CORP/A", mbx("CORP/A/B", "B"), mbx("CORP/A/A", "A"),
	    mbx("CORP/A/C", "C"), NULL), NULL);
	IMPORT_OK(d, &ctx_a, po_doc("CORP/A", mbx("CORP/A/B", "B"), mbx("CORP/A/A", "A"), NULL),
	    NULL);
	l = dir_list(d, DIR_MAILBOX, NULL);
	EXPECT(l && l->len == 2 && strcmp(((DirEntry *)l->pdata[0])->legacy, "CORP/A/A") == 0 &&
	    strcmp(((DirEntry *)l->pdata[1])->legacy, "CORP/A/B") == 0,
	    "live mailboxes, by legacy address");
	g_ptr_array_unref(l);
	l = dir_list(d, -1, NULL);
	EXPECT(l && l->len == 4, "all live entries (%u)", l ? l->len : 0);
	g_ptr_array_unref(l);
	l = dir_list(d, DIR_LIST, NULL);
	EXPECT(l && l->len == 1 && ((DirEntry *)l->pdata[0])->members->len == 1, "one list");
	g_ptr_array_unref(l);
	EXPECT(dir_stats(d, &s, NULL), "stats");
	EXPECT(s.mailboxes == 2 && s.customs == 1 && s.lists == 1 && s.tombstones == 1 &&
	    s.proxies == 4 && s.proxy_losses == 0 && s.usn == 6,
	    "2 mailboxes, 1 custom, 1 list, 1 tombstone, 4 proxies, USN 6 "
	    "(%u %u %u %u %u %" G_GUINT64_FORMAT ")", s.mailboxes, s.customs, s.lists,
	    s.tombstones, s.proxies, s.usn);
	EXPECT(g_hash_table_lookup(s.vector, "A") &&
	    *(guint64 *)g_hash_table_lookup(s.vector, "A") == 6, "the vector holds A:6");
	dir_stats_clear(&s);
	dir_close(d);
}

static void
test_streaming_import_copies_the_head(void)
{
	DirStore *a = store("sa"), *b = store("sb");
	SyncDoc *full = NULL, *head;
	GError *e = NULL;
	DirImport *im;
	DirImportStats st = { 0 };
	DirStats s;
	gboolean ok = TRUE;

	IMPORT_OK(a, &ctx_a, po_doc("CORP/A", mbx("CORP/A/X", "X"), mbx("CORP/A/Y", "Y"), NULL),
	    NULL);
	full = export_for(a, &ctx_a, "B");
	/* As a streaming reader gives it: a head it keeps, then the entries. */
	head = sync_doc_new(SYNC_REPLICATION);
	head->from_site = g_strdup(full->from_site);
	head->for_site = g_strdup(full->for_site);
	g_hash_table_insert(head->vector, g_strdup("A"), g_memdup2(&(guint64){ 7 },
	    sizeof(guint64)));
	im = dir_import_begin(b, &ctx_b, head, &e);
	EXPECT(im != NULL, "begin (%s)", e ? e->message : "");
	sync_doc_free(head);
	for (guint i = 0; im && i < full->entries->len; i++)
		ok = ok && dir_import_entry(im, full->entries->pdata[i], &e);
	ok = ok && im && dir_import_commit(im, &st, &e);
	EXPECT(ok && st.added == 2, "two added (%s)", e ? e->message : "");
	g_clear_error(&e);
	dir_stats(b, &s, NULL);
	EXPECT(g_hash_table_lookup(s.vector, "A") &&
	    *(guint64 *)g_hash_table_lookup(s.vector, "A") == 7, "B's vector has A:7");
	dir_stats_clear(&s);
	/* An aborted streaming import changes nothing. */
	{
		char *before = dump(b), *after;
		SyncDoc *po = po_doc("CORP/B", NULL);
		DirEntry *u = mbx("CORP/B/U", "U");

		im = dir_import_begin(b, &ctx_b, po, &e);
		EXPECT(im && dir_import_entry(im, u, &e), "an entry taken");
		dir_import_abort(im);
		after = dump(b);
		EXPECT(strcmp(before, after) == 0, "abort leaves the directory as it was");
		g_free(before);
		g_free(after);
		dir_entry_free(u);
		sync_doc_free(po);
	}
	/* A read batch: one snapshot for many lookups; no import inside it. */
	{
		DirEntry *x;

		EXPECT(dir_read_begin(b, &e), "a read batch opens (%s)", e ? e->message : "");
		x = lookup(b, "CORP/A/X");
		EXPECT(x != NULL, "lookups work inside it");
		dir_entry_free(x);
		im = dir_import_begin(b, &ctx_b, full, &e);
		EXPECT(im == NULL && e != NULL, "no import inside a read batch");
		g_clear_error(&e);
		dir_import_abort(im);
		dir_read_end(b);
		IMPORT_OK(b, &ctx_b, po_doc("CORP/B", mbx("CORP/B/U", "U"), NULL), NULL);
	}
	sync_doc_free(full);
	dir_close(a);
	dir_close(b);
}

static const CuTest tests[] = {
	{ "a new or empty file gets the schema", test_open_creates_the_schema_from_nothing },
	{ "a newer schema is refused", test_newer_schema_is_refused },
	{ "a file that is no database is an I/O error", test_not_a_database_is_an_io_error },
	{ "postoffice export: add, rename (same id), delete (tombstone)",
	  test_postoffice_export_adds_renames_and_deletes },
	{ "postoffice export is authoritative for its postoffice only",
	  test_postoffice_export_is_authoritative_for_its_postoffice_only },
	{ "proxies come from the templates", test_proxies_come_from_the_templates },
	{ "a template change applies on the next import and is counted",
	  test_template_change_applies_on_next_import_and_is_reported },
	{ "proxies listed in an export are taken as given",
	  test_proxies_listed_in_the_export_are_taken_as_given },
	{ "a clash inside one import is refused naming both, nothing changed",
	  test_proxy_clash_inside_an_import_is_refused_naming_both },
	{ "postoffices of other sites are not ours", test_other_postoffices_are_not_ours },
	{ "documents breaking a rule are refused whole",
	  test_documents_breaking_rules_are_refused_whole },
	{ "replication sends exactly what the peer has not seen",
	  test_replication_sends_exactly_what_the_peer_has_not_seen },
	{ "a peer is never sent its own changes", test_a_peer_is_never_sent_its_own_changes },
	{ "this site's own changes coming back are ignored",
	  test_own_changes_coming_back_are_ignored },
	{ "a clash between origins resolves the same at every site",
	  test_cross_origin_clash_resolves_the_same_at_every_site },
	{ "proxies differing in case clash across origins",
	  test_proxies_differing_in_case_clash_across_origins },
	{ "schema 1 keys are migrated to compare without case",
	  test_schema_1_keys_are_migrated_to_compare_without_case },
	{ "a peer cannot delete an entry of this site",
	  test_a_peer_cannot_delete_an_entry_of_this_site },
	{ "a peer cannot rewrite an entry of this site",
	  test_a_peer_cannot_rewrite_an_entry_of_this_site },
	{ "a claim lost to this site is never promoted by a deletion",
	  test_a_lost_claim_is_never_promoted_by_a_deletion },
	{ "an old database's lost claim is dropped, not promoted",
	  test_an_old_databases_lost_claim_is_dropped_not_promoted },
	{ "a postoffice import wins a clash with a peer's entry",
	  test_postoffice_import_wins_a_clash_with_a_peer },
	{ "a clash inside one file: dir list shows the loser without its primary",
	  test_a_clash_inside_one_file_lists_the_loser_without_its_primary },
	{ "replication is idempotent and order-tolerant (3 sites, 8 orders)",
	  test_replication_is_idempotent_and_order_tolerant },
	{ "tombstones are purged after their lifetime, never resurrected",
	  test_tombstones_are_purged_and_never_resurrected },
	{ "lookup accepts every address form", test_lookup_accepts_every_address_form },
	{ "GAL export: every live entry by legacy, primary only",
	  test_gal_export_lists_every_live_entry_by_legacy_address },
	{ "list by type and stats", test_list_and_stats },
	{ "streaming import copies the head; read batches",
	  test_streaming_import_copies_the_head },
	{ NULL, NULL },
};

int
main(void)
{
	/* Clash warnings are expected here; keep the output to the results. */
	pg_log_set_threshold(PG_LOG_ERROR);
	return cu_run_in_tmpdir("dir_store", tests, &tmpdir);
}
