/* test_dir_map.c - unit tests of directory/dir_map.c and of its use by dir_store.c.
 *
 * Checks the compiled proxy map beside the directory (issue 4's routing
 * target): after imports, every SMTP key answers from the map exactly as
 * from SQLite (every DirBrief field), and routing decides the same with the
 * map and without it; a stale map (an older generation, another database)
 * is not used and the answers stay right; a truncated or garbage map file
 * never crashes, is ignored, and the next import makes a good one; a proxy
 * claimed by entries of two origins answers with its effective owner;
 * deletions, tombstones, their purge and renames show after the next
 * import; an import that changes nothing leaves the map alone.  And the
 * file format itself: the documented hash, the writer/reader round trip
 * (first record of a key wins, proxies kept only as dir_brief keeps them),
 * limits.
 */
#include "config.h"

#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <sqlite3.h>

#include "cu_run.h"
#include "dir_map.h"
#include "dir_route.h"
#include "dir_store.h"
#include "pg_log.h"

static char *tmpdir;

static const char *const dom_a[] = { "company.com", NULL };
static const char *const dom_b[] = { "imc2.company.com", NULL };
static const char *const tpl_a[] = { "SMTP:%m@company.com", NULL };
static const char *const tpl_b[] = { "SMTP:%m@company.com", "smtp:%m@imc2.company.com",
	NULL };
static const char *const po_a[] = { "CORP/A", "CORP/GWA", NULL };
static const char *const po_b[] = { "CORP/B", NULL };
static const DirPeer peers_a[] = { { "B", dom_b } };
static const DirPeer peers_b[] = { { "A", dom_a } };
#define LIFETIME (180 * 86400)
static const DirContext ctx_a = { "A", dom_a, tpl_a, po_a, peers_a, 1, LIFETIME, NULL };
static const DirContext ctx_b = { "B", dom_b, tpl_b, po_b, peers_b, 1, LIFETIME, NULL };

/* ------------------------------------------------------------- helpers */

static char *
db_path(const char *name)
{
	return g_strdup_printf("%s/%s.db", tmpdir, name);
}

static char *
map_path(const char *name)
{
	return g_strdup_printf("%s/%s.map", tmpdir, name);
}

/* A fresh store: database and map removed first. */
static DirStore *
store(const char *name)
{
	char *path = db_path(name), *map = map_path(name);
	char *wal = g_strconcat(path, "-wal", NULL), *shm = g_strconcat(path, "-shm", NULL);
	GError *e = NULL;
	DirStore *d;

	g_unlink(path);
	g_unlink(wal);
	g_unlink(shm);
	g_unlink(map);
	d = dir_open(path, &e);
	EXPECT(d != NULL, "open %s (%s)", path, e ? e->message : "");
	g_clear_error(&e);
	g_free(path);
	g_free(map);
	g_free(wal);
	g_free(shm);
	return d;
}

static DirEntry *
entry(DirType type, const char *legacy, const char *target)
{
	DirEntry *e = dir_entry_new(type);

	e->legacy = g_strdup(legacy);
	e->name = g_strdup(legacy);
	e->target = g_strdup(target);
	return e;
}

/* e with these strings added to its proxies (or members, for a list); NULL-terminated. */
static DirEntry *
with(DirEntry *e, ...)
{
	va_list ap;
	const char *s;

	va_start(ap, e);
	while ((s = va_arg(ap, const char *)))
		g_ptr_array_add(e->type == DIR_LIST ? e->members : e->proxies, g_strdup(s));
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

/* A stamped state of entry id from site B, for a replication file. */
static DirEntry *
b_state(const char *id, const char *legacy, guint64 usn, guint64 version, gboolean deleted,
    const char *proxy)
{
	DirEntry *e = entry(DIR_MAILBOX, legacy, NULL);

	e->id = g_strdup(id);
	e->origin = g_strdup("B");
	e->home_site = g_strdup("B");
	e->usn = usn;
	e->version = version;
	e->changed = 1000000;   /* the clock the tests pin */
	e->deleted = deleted;
	if (proxy)
		g_ptr_array_add(e->proxies, g_strdup(proxy));
	return e;
}

/* A replication file from B for A holding these states; NULL-terminated. */
static SyncDoc *
b_doc(DirEntry *first, ...)
{
	SyncDoc *doc = sync_doc_new(SYNC_REPLICATION);
	guint64 max = 0, *v;
	va_list ap;
	DirEntry *e;

	doc->from_site = g_strdup("B");
	doc->for_site = g_strdup("A");
	va_start(ap, first);
	for (e = first; e; e = va_arg(ap, DirEntry *)) {
		g_ptr_array_add(doc->entries, e);
		max = MAX(max, e->usn);
	}
	va_end(ap);
	v = g_new(guint64, 1);
	*v = max;
	g_hash_table_insert(doc->vector, g_strdup("B"), v);
	return doc;
}

#define IMPORT_OK(d, ctx, doc) import_ok_at(__LINE__, d, ctx, doc, NULL)

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

/* Every key of the proxies table, and a few that are in no table. */
static GPtrArray *
all_keys(const char *name)
{
	GPtrArray *keys = g_ptr_array_new_with_free_func(g_free);
	char *path = db_path(name);
	sqlite3_stmt *st;
	sqlite3 *db;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "SELECT DISTINCT key FROM proxies", -1, &st, NULL) ==
	    SQLITE_OK) {
		while (sqlite3_step(st) == SQLITE_ROW)
			g_ptr_array_add(keys, g_strdup((const char *)sqlite3_column_text(st, 0)));
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	g_free(path);
	g_ptr_array_add(keys, g_strdup("nobody@company.com"));
	g_ptr_array_add(keys, g_strdup("JSMITH@Company.com"));   /* found: without case */
	g_ptr_array_add(keys, g_strdup("x@elsewhere.example"));
	return keys;
}

static void
sql_exec(const char *name, const char *sql)
{
	char *path = db_path(name);
	sqlite3 *db;

	EXPECT(sqlite3_open(path, &db) == SQLITE_OK &&
	    sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK, "%s on %s", sql, path);
	sqlite3_close(db);
	g_free(path);
}

static gboolean
brief(DirStore *d, const char *key, DirBrief *b, gboolean *found)
{
	PgAddr a = { .kind = ADDR_KIND_SMTP };
	GError *e = NULL;
	gboolean ok;

	memset(b, 0, sizeof *b);
	g_strlcpy(a.smtp, key, sizeof a.smtp);
	ok = dir_brief(d, &a, b, found, &e);
	EXPECT(ok && !e, "dir_brief %s (%s)", key, e ? e->message : "");
	g_clear_error(&e);
	return ok;
}

static gboolean
brief_equal(const DirBrief *x, const DirBrief *y)
{
	return x->rid == y->rid && x->type == y->type && strcmp(x->legacy, y->legacy) == 0 &&
	    strcmp(x->home_site, y->home_site) == 0 && strcmp(x->target, y->target) == 0 &&
	    x->proxies_known == y->proxies_known && strcmp(x->proxies, y->proxies) == 0;
}

/* Every key answers in a read batch as SQLite answers it outside one; the
 * batch reads the map exactly when mapped says (-1: either).  How many keys
 * were found. */
#define EXPECT_SAME_BRIEFS(d, name, mapped) expect_same_briefs_at(__LINE__, d, name, mapped)

static guint
expect_same_briefs_at(int line, DirStore *d, const char *name, int mapped)
{
	GPtrArray *keys = all_keys(name);
	DirBrief *want = g_new0(DirBrief, keys->len), got;
	gboolean *want_found = g_new0(gboolean, keys->len), found;
	guint n = 0, bad = 0;
	GError *e = NULL;

	for (guint i = 0; i < keys->len; i++)
		brief(d, keys->pdata[i], &want[i], &want_found[i]);
	expect_at(dir_read_begin(d, &e), line, "read batch (%s)", e ? e->message : "");
	g_clear_error(&e);
	if (mapped >= 0)
		expect_at(dir_read_mapped(d) == mapped, line, "the batch %s the map",
		    mapped ? "reads" : "does not read");
	for (guint i = 0; i < keys->len; i++) {
		const char *k = keys->pdata[i];

		if (!brief(d, k, &got, &found))
			continue;
		if (found != want_found[i] || (found && !brief_equal(&got, &want[i]))) {
			if (bad++ < 5)
				expect_at(FALSE, line, "%s: the batch answers %s %s rid %" G_GINT64_FORMAT
				    " [%s], SQLite %s %s rid %" G_GINT64_FORMAT " [%s]", k,
				    found ? "found" : "none", got.legacy, got.rid, got.proxies,
				    want_found[i] ? "found" : "none", want[i].legacy, want[i].rid,
				    want[i].proxies);
		}
		n += found;
	}
	expect_at(bad == 0, line, "%u of %u keys answer alike", keys->len - bad, keys->len);
	dir_read_end(d);
	g_free(want);
	g_free(want_found);
	g_ptr_array_unref(keys);
	return n;
}

/* The brief of key in a read batch that reads the map. */
static gboolean
mapped_brief(DirStore *d, const char *key, DirBrief *b)
{
	gboolean found = FALSE;

	dir_read_begin(d, NULL);
	EXPECT(dir_read_mapped(d), "the batch reads the map for %s", key);
	brief(d, key, b, &found);
	dir_read_end(d);
	return found;
}

static gboolean
map_current(DirStore *d)
{
	DirStats s;
	gboolean cur;

	if (!dir_stats(d, &s, NULL))
		return FALSE;
	cur = s.map_current;
	dir_stats_clear(&s);
	return cur;
}

static guint64
generation(DirStore *d)
{
	DirStats s;
	guint64 g;

	if (!dir_stats(d, &s, NULL))
		return 0;
	g = s.generation;
	dir_stats_clear(&s);
	return g;
}

static gboolean
map_ok(const char *name)
{
	char *path = map_path(name);
	GError *e = NULL;
	DirMap *m = dir_map_open(path, &e);
	gboolean ok = m && dir_map_check(m, &e);

	EXPECT(ok, "%s is a good map (%s)", path, e ? e->message : "");
	g_clear_error(&e);
	dir_map_close(m);
	g_free(path);
	return ok;
}

/* Site A: mailboxes, a custom recipient, a list, a mailbox with too many
 * proxy bytes for a brief, B's entries by replication, one clash. */
static DirStore *
site_a(const char *name)
{
	DirStore *a = store(name), *b = store("map-peer-b");
	DirEntry *big = entry(DIR_MAILBOX, "CORP/A/BIG", NULL);
	GError *e = NULL;
	SyncDoc *doc;

	for (int i = 0; i < 50; i++)
		g_ptr_array_add(big->proxies, g_strdup_printf("%s:big.alias.number.%02d@company.com",
		    i ? "smtp" : "SMTP", i));
	IMPORT_OK(a, &ctx_a, po_doc("CORP/A", entry(DIR_MAILBOX, "CORP/A/JSMITH", NULL),
	    entry(DIR_MAILBOX, "CORP/A/ADA", NULL),
	    with(entry(DIR_MAILBOX, "CORP/A/TWO", NULL), "SMTP:two@company.com",
	    "smtp:second.two@company.com", NULL),
	    entry(DIR_CUSTOM, "CORP/A/EXT", "SMTP:ext@outside.example"),
	    with(entry(DIR_LIST, "CORP/A/ALL", NULL), "CORP/A/ADA", "CORP/A/TWO", NULL),
	    big, NULL));
	IMPORT_OK(b, &ctx_b, po_doc("CORP/B", entry(DIR_MAILBOX, "CORP/B/JSMITH", NULL),
	    entry(DIR_MAILBOX, "CORP/B/BOB", NULL), NULL));
	doc = dir_export_replication(b, &ctx_b, "A", &e);
	EXPECT(doc != NULL, "export B -> A (%s)", e ? e->message : "");
	g_clear_error(&e);
	if (doc)
		IMPORT_OK(a, &ctx_a, doc);
	dir_close(b);
	return a;
}

/* ------------------------------------------------------------- the tests */

static void
test_the_map_answers_every_key_as_the_database_does(void)
{
	DirStore *a = site_a("m1");
	DirBrief b;
	GPtrArray *keys = all_keys("m1");
	char *path = map_path("m1");
	DirMap *m = dir_map_open(path, NULL);
	guint found;

	EXPECT(map_current(a) && generation(a) == 2, "after two imports that changed the "
	    "directory: generation 2, the map holds it (%" G_GUINT64_FORMAT ")", generation(a));
	found = EXPECT_SAME_BRIEFS(a, "m1", TRUE);
	EXPECT(found == keys->len - 2, "every key of the directory found, and one in "
	    "another case (%u of %u)", found, keys->len - 2);
	EXPECT(m && dir_map_keys(m) == keys->len - 3, "one record per key");
	EXPECT(map_ok("m1"), "the map checks whole");
	/* A brief from the map, field by field. */
	EXPECT(mapped_brief(a, "two@company.com", &b) && b.type == DIR_MAILBOX &&
	    strcmp(b.legacy, "CORP/A/TWO") == 0 && strcmp(b.home_site, "A") == 0 &&
	    strcmp(b.target, "") == 0 && b.proxies_known &&
	    strcmp(b.proxies, "SMTP:two@company.com\nsmtp:second.two@company.com") == 0,
	    "two@company.com: CORP/A/TWO with its proxies (%s)", b.proxies);
	EXPECT(mapped_brief(a, "second.two@company.com", &b) && !b.proxies_known &&
	    strcmp(b.proxies, "") == 0, "a secondary's row carries no proxies, as in SQLite");
	EXPECT(mapped_brief(a, "big.alias.number.00@company.com", &b) && !b.proxies_known,
	    "proxies longer than a brief holds are not known");
	EXPECT(mapped_brief(a, "ext@company.com", &b) && b.type == DIR_CUSTOM &&
	    strcmp(b.target, "SMTP:ext@outside.example") == 0, "a custom's target");
	/* Keys compare without case, the local part included (issue 12). */
	EXPECT(mapped_brief(a, "Second.TWO@Company.com", &b) &&
	    strcmp(b.legacy, "CORP/A/TWO") == 0, "a key in another case is found in the map");
	EXPECT(dir_map_hash("Two@Company.COM", 15) == dir_map_hash("two@company.com", 15),
	    "the hash does not see case");
	EXPECT(m && dir_map_lookup(m, "TWO@COMPANY.COM", 15, &b) == DIR_MAP_FOUND &&
	    strcmp(b.legacy, "CORP/A/TWO") == 0, "dir_map_lookup in upper case");
	EXPECT(m && dir_map_lookup(m, "two@company.co", 14, &b) == DIR_MAP_NONE,
	    "a shorter key is no match");
	EXPECT(!mapped_brief(a, "ext@outside.example", &b), "a custom's target is no key");
	EXPECT(mapped_brief(a, "bob@imc2.company.com", &b) && strcmp(b.home_site, "B") == 0,
	    "B's entries by their secondary");
	dir_map_close(m);
	g_ptr_array_unref(keys);
	g_free(path);
	dir_close(a);
}

static void
test_routing_decides_the_same_with_and_without_the_map(void)
{
	DirStore *a = site_a("m2");
	GPtrArray *keys = all_keys("m2"), *with_map = g_ptr_array_new_with_free_func(g_free);
	char *path = map_path("m2");
	GError *e = NULL;

	g_ptr_array_add(keys, g_strdup("CORP/A/ALL"));
	g_ptr_array_add(keys, g_strdup("CORP/B/BOB"));
	for (guint i = 0; i < keys->len; i++) {
		DirRoute *r = dir_route(a, &ctx_a, keys->pdata[i], NULL);

		g_ptr_array_add(with_map, r ? dir_route_format(r) : g_strdup("(null)"));
		dir_route_free(r);
	}
	g_unlink(path);
	for (guint i = 0; i < keys->len; i++) {
		DirRoute *r = dir_route(a, &ctx_a, keys->pdata[i], NULL);
		char *line = r ? dir_route_format(r) : g_strdup("(null)");

		EXPECT(strcmp(line, with_map->pdata[i]) == 0, "%s: %s with the map, %s without",
		    (const char *)keys->pdata[i], (const char *)with_map->pdata[i], line);
		g_free(line);
		dir_route_free(r);
	}
	EXPECT_SAME_BRIEFS(a, "m2", FALSE);
	EXPECT(dir_rebuild_map(a, FALSE, &e), "a batch may rebuild a missing map (%s)",
	    e ? e->message : "");
	g_clear_error(&e);
	EXPECT_SAME_BRIEFS(a, "m2", TRUE);
	g_ptr_array_unref(with_map);
	g_ptr_array_unref(keys);
	g_free(path);
	dir_close(a);
}

static void
test_a_stale_map_is_not_used(void)
{
	DirStore *a = site_a("m3"), *other;
	char *path = map_path("m3"), *old = NULL, *foreign = NULL;
	gsize old_len = 0, foreign_len = 0;
	struct stat s0, s1;
	DirBrief b;
	GError *e = NULL;
	guint64 g;

	g_file_get_contents(path, &old, &old_len, NULL);
	/* An import that changes nothing: same generation, the map untouched. */
	g = generation(a);
	stat(path, &s0);
	IMPORT_OK(a, &ctx_a, po_doc("CORP/GWA", NULL));
	stat(path, &s1);
	EXPECT(generation(a) == g && s0.st_ino == s1.st_ino,
	    "an import that changes nothing leaves generation and map alone");
	/* A change; then the map of before put back: stale, not used. */
	IMPORT_OK(a, &ctx_a, po_doc("CORP/GWA", entry(DIR_MAILBOX, "CORP/GWA/NEW", NULL),
	    NULL));
	EXPECT(generation(a) == g + 1 && map_current(a), "a change: generation + 1, a new map");
	EXPECT(mapped_brief(a, "new@company.com", &b), "the new map knows the new mailbox");
	g_file_set_contents(path, old, (gssize)old_len, NULL);
	EXPECT(!map_current(a), "the old map is stale");
	EXPECT_SAME_BRIEFS(a, "m3", FALSE);
	/* The generation moved on behind the map's back. */
	EXPECT(dir_rebuild_map(a, FALSE, &e), "rebuilt (%s)", e ? e->message : "");
	g_clear_error(&e);
	EXPECT_SAME_BRIEFS(a, "m3", TRUE);
	sql_exec("m3", "UPDATE meta SET value = value + 1 WHERE key = 'generation'");
	EXPECT_SAME_BRIEFS(a, "m3", FALSE);
	EXPECT(dir_rebuild_map(a, FALSE, &e) && map_current(a), "rebuilt when stale (%s)",
	    e ? e->message : "");
	g_clear_error(&e);
	EXPECT_SAME_BRIEFS(a, "m3", TRUE);
	/* A map of another database at the same generation. */
	other = store("m3-other");
	IMPORT_OK(other, &ctx_a, po_doc("CORP/A", entry(DIR_MAILBOX, "CORP/A/ELSE", NULL),
	    NULL));
	while (generation(other) < generation(a))
		sql_exec("m3-other", "UPDATE meta SET value = value + 1 WHERE key = 'generation'");
	EXPECT(dir_rebuild_map(other, TRUE, &e), "the other's map (%s)", e ? e->message : "");
	g_clear_error(&e);
	{
		char *opath = map_path("m3-other");
		g_file_get_contents(opath, &foreign, &foreign_len, NULL);
		g_free(opath);
	}
	g_file_set_contents(path, foreign, (gssize)foreign_len, NULL);
	EXPECT(!map_current(a), "a map of another database is not current");
	EXPECT_SAME_BRIEFS(a, "m3", FALSE);
	dir_close(other);
	g_free(old);
	g_free(foreign);
	g_free(path);
	dir_close(a);
}

/* Write bytes as the map, check that answers stay right, then that the next
 * import (changing nothing) makes a good map again. */
static void
expect_survives_at(int line, DirStore *d, const char *name, const char *what,
    const char *bytes, gsize len)
{
	char *path = map_path(name);

	expect_at(g_file_set_contents(path, bytes, (gssize)len, NULL), line, "write %s", what);
	expect_same_briefs_at(line, d, name, -1);
	expect_same_briefs_at(line, d, name, FALSE);   /* and not used again */
	import_ok_at(line, d, &ctx_a, po_doc("CORP/GWA", NULL), NULL);
	expect_at(map_current(d), line, "%s: the next import made a new map", what);
	expect_same_briefs_at(line, d, name, TRUE);
	g_free(path);
}

static void
test_truncated_or_garbage_maps_are_ignored(void)
{
	static const gsize cuts[] = { 0, 7, 95, 96, 104 };
	DirStore *a = site_a("m4");
	char *path = map_path("m4"), *good = NULL, *bad;
	gsize len = 0, slots;
	GRand *rand = g_rand_new_with_seed(4);

	g_file_get_contents(path, &good, &len, NULL);
	EXPECT(len > 1000, "a map of %" G_GSIZE_FORMAT " bytes", len);
	if (len <= 1000)
		goto out;
	for (guint i = 0; i < G_N_ELEMENTS(cuts); i++) {
		char *what = g_strdup_printf("the map cut to %" G_GSIZE_FORMAT " bytes", cuts[i]);
		expect_survives_at(__LINE__, a, "m4", what, good, cuts[i]);
		g_free(what);
	}
	g_free(good);
	g_file_get_contents(path, &good, &len, NULL);
	expect_survives_at(__LINE__, a, "m4", "the map cut in half", good, len / 2);
	expect_survives_at(__LINE__, a, "m4", "the map one byte short", good, len - 1);
	bad = g_malloc(len);
	for (gsize i = 0; i < len; i++)
		bad[i] = (char)g_rand_int(rand);
	expect_survives_at(__LINE__, a, "m4", "random bytes", bad, len);
	/* A good header over records that break the format. */
	memcpy(bad, good, len);
	memcpy(&slots, good + 56, sizeof slots);
	slots = GUINT64_FROM_LE(slots);
	memset(bad + DIR_MAP_HEADER_SIZE, 0xff, slots - DIR_MAP_HEADER_SIZE);
	expect_survives_at(__LINE__, a, "m4", "garbage records", bad, len);
	/* A good header over slots that point past the records. */
	memcpy(bad, good, len);
	for (gsize i = slots; i + 8 <= len; i += 8)
		bad[i + 7] = (char)0x7f;
	expect_survives_at(__LINE__, a, "m4", "slots out of bounds", bad, len);
	/* A header whose counts lie. */
	memcpy(bad, good, len);
	bad[64] = (char)0xff;   /* home slots beyond the table */
	expect_survives_at(__LINE__, a, "m4", "home slots beyond the table", bad, len);
	memcpy(bad, good, len);
	bad[8] = DIR_MAP_VERSION + 1;   /* a format version this reader does not know */
	expect_survives_at(__LINE__, a, "m4", "an unknown version", bad, len);
	g_free(bad);
	/* Not a file at all. */
	g_unlink(path);
	g_mkdir(path, 0700);
	EXPECT_SAME_BRIEFS(a, "m4", FALSE);
	g_rmdir(path);
out:
	g_rand_free(rand);
	g_free(good);
	g_free(path);
	dir_close(a);
}

static void
test_a_clash_between_origins_answers_with_the_effective_owner(void)
{
	DirStore *a = site_a("m5");
	DirBrief b;
	char *owner;
	DirEntry *e;

	/* A's JSMITH (origin A) and B's (origin B) both claim jsmith@company.com. */
	owner = dir_proxy_owner(a, "jsmith@company.com", NULL);
	EXPECT(mapped_brief(a, "jsmith@company.com", &b) && strcmp(b.legacy, "CORP/A/JSMITH") == 0,
	    "A's JSMITH owns it (%s)", b.legacy);
	e = dir_brief_entry(a, &b, NULL);
	EXPECT(e && owner && strcmp(e->id, owner) == 0, "the owner dir_proxy_owner names");
	dir_entry_free(e);
	g_free(owner);
	EXPECT(mapped_brief(a, "jsmith@imc2.company.com", &b) &&
	    strcmp(b.legacy, "CORP/B/JSMITH") == 0, "B's JSMITH keeps its other proxy");
	EXPECT_SAME_BRIEFS(a, "m5", TRUE);
	/* The winner deleted by its postoffice: a claim that lost to this
	 * site's entry is not promoted (SPEC 2), in the next map too. */
	IMPORT_OK(a, &ctx_a, po_doc("CORP/A", entry(DIR_MAILBOX, "CORP/A/ADA", NULL), NULL));
	EXPECT(!mapped_brief(a, "jsmith@company.com", &b),
	    "nobody owns it once A's is gone, not B's JSMITH");
	EXPECT_SAME_BRIEFS(a, "m5", TRUE);
	dir_close(a);
}

static void
test_deletions_and_renames_show_after_the_next_import(void)
{
	const DirContext short_a = { "A", dom_a, tpl_a, po_a, peers_a, 1, 100, NULL };
	DirStore *a = store("m6");
	DirBrief b;
	guint64 g;

	dir_set_now(a, 1000000);
	IMPORT_OK(a, &ctx_a, po_doc("CORP/A", entry(DIR_MAILBOX, "CORP/A/X", NULL),
	    entry(DIR_MAILBOX, "CORP/A/Y", NULL), NULL));
	IMPORT_OK(a, &ctx_a, b_doc(b_state("B:1:1", "CORP/B/OLD", 1, 1, FALSE,
	    "SMTP:old@imc2.company.com"), NULL));
	EXPECT(mapped_brief(a, "y@company.com", &b), "Y is there");
	EXPECT(mapped_brief(a, "old@imc2.company.com", &b) && strcmp(b.legacy, "CORP/B/OLD") == 0,
	    "B's entry under its old name");
	/* Y left out: a tombstone, gone from the map. */
	IMPORT_OK(a, &ctx_a, po_doc("CORP/A", entry(DIR_MAILBOX, "CORP/A/X", NULL), NULL));
	EXPECT(!mapped_brief(a, "y@company.com", &b), "Y is gone from the map");
	EXPECT(mapped_brief(a, "x@company.com", &b), "X stays");
	/* B renames its entry: new legacy address, new proxy, same id. */
	IMPORT_OK(a, &ctx_a, b_doc(b_state("B:1:1", "CORP/B/NEW", 2, 2, FALSE,
	    "SMTP:new@imc2.company.com"), NULL));
	EXPECT(!mapped_brief(a, "old@imc2.company.com", &b), "the old proxy is gone");
	EXPECT(mapped_brief(a, "new@imc2.company.com", &b) && strcmp(b.legacy, "CORP/B/NEW") == 0,
	    "the new one names the new legacy address (%s)", b.legacy);
	EXPECT_SAME_BRIEFS(a, "m6", TRUE);
	/* B deletes it. */
	IMPORT_OK(a, &ctx_a, b_doc(b_state("B:1:1", "CORP/B/NEW", 3, 3, TRUE, NULL), NULL));
	EXPECT(!mapped_brief(a, "new@imc2.company.com", &b), "B's deletion shows");
	/* Tombstones purged later: a change of entries, a new generation. */
	g = generation(a);
	dir_set_now(a, 1000000 + 1000);
	{
		DirImportStats st = { 0 };
		import_ok_at(__LINE__, a, &short_a, po_doc("CORP/GWA", NULL), &st);
		EXPECT(st.purged == 2, "both tombstones purged (%u)", st.purged);
	}
	EXPECT(generation(a) == g + 1 && map_current(a), "a purge is a new generation, mapped");
	EXPECT_SAME_BRIEFS(a, "m6", TRUE);
	dir_close(a);
}

static void
test_the_file_format(void)
{
	char *path = g_strdup_printf("%s/format.map", tmpdir), *big;
	DirMapWriter *w;
	DirBrief b;
	GError *e = NULL;
	DirMap *m;
	GString *long_proxies = g_string_new("SMTP:p@x.example");
	DirMapRow rows[] = {
		{ "a@x.example", 7, DIR_MAILBOX, "CORP/A/A", "A", NULL, "SMTP:a@x.example" },
		{ "b@x.example", 8, DIR_CUSTOM, "CORP/A/B", "A", "SMTP:b@y.example", NULL },
		{ "a@x.example", 9, DIR_LIST, "CORP/A/LATER", "A", NULL, NULL },
		{ "p@x.example", 10, DIR_MAILBOX, "CORP/A/P", "S", NULL, NULL },
	};

	/* The hash the format names: FNV-1a 64, then fmix64. */
	EXPECT(dir_map_hash("", 0) == G_GUINT64_CONSTANT(0xefd01f60ba992926) &&
	    dir_map_hash("a", 1) == G_GUINT64_CONSTANT(0x82a2a958a9bece5b) &&
	    dir_map_hash("jsmith@company.com", 18) == G_GUINT64_CONSTANT(0x2e61a4844a63a24b),
	    "the hash is the documented one");
	big = dir_map_path("/s/directory.db");
	EXPECT(strcmp(big, "/s/directory.map") == 0, "directory.db -> directory.map");
	g_free(big);
	big = dir_map_path("/s/dir");
	EXPECT(strcmp(big, "/s/dir.map") == 0, "other names get .map");
	g_free(big);

	while (long_proxies->len < sizeof b.proxies)
		g_string_append(long_proxies, "\nsmtp:more.proxies.here@x.example");
	rows[3].proxies = long_proxies->str;
	w = dir_map_writer_begin(path, 0600, &e);
	EXPECT(w != NULL, "writer (%s)", e ? e->message : "");
	g_clear_error(&e);
	for (guint i = 0; w && i < G_N_ELEMENTS(rows); i++)
		EXPECT(dir_map_writer_add(w, &rows[i], &e), "add %s", rows[i].key);
	EXPECT(w && dir_map_writer_commit(w, 42, "abcd1234", &e), "commit (%s)",
	    e ? e->message : "");
	g_clear_error(&e);
	big = g_strconcat(path, ".tmp", NULL);
	EXPECT(!g_file_test(big, G_FILE_TEST_EXISTS), "no temporary file is left");
	g_free(big);
	m = dir_map_open(path, &e);
	EXPECT(m && dir_map_generation(m) == 42 && strcmp(dir_map_incarnation(m), "abcd1234") == 0
	    && dir_map_keys(m) == 4 && dir_map_check(m, NULL), "header read back (%s)",
	    e ? e->message : "");
	g_clear_error(&e);
	if (m) {
		EXPECT(dir_map_lookup(m, "a@x.example", 11, &b) == DIR_MAP_FOUND && b.rid == 7 &&
		    b.type == DIR_MAILBOX && strcmp(b.legacy, "CORP/A/A") == 0 &&
		    b.proxies_known && strcmp(b.proxies, "SMTP:a@x.example") == 0 &&
		    strcmp(b.target, "") == 0, "a key added twice answers with its first record");
		EXPECT(dir_map_lookup(m, "b@x.example", 11, &b) == DIR_MAP_FOUND &&
		    b.type == DIR_CUSTOM && strcmp(b.target, "SMTP:b@y.example") == 0 &&
		    !b.proxies_known, "target kept, no proxies");
		EXPECT(dir_map_lookup(m, "p@x.example", 11, &b) == DIR_MAP_FOUND &&
		    !b.proxies_known && b.proxies[0] == '\0' && strcmp(b.home_site, "S") == 0,
		    "proxies too long for a brief are not known");
		EXPECT(dir_map_lookup(m, "a@x.exampl", 10, &b) == DIR_MAP_NONE &&
		    dir_map_lookup(m, "", 0, &b) == DIR_MAP_NONE, "other keys are not found");
	}
	dir_map_close(m);

	/* Limits: refused, never a half map. */
	w = dir_map_writer_begin(path, 0600, NULL);
	{
		DirMapRow bad = { "t@x.example", 1, 7, "CORP/A/T", "A", NULL, NULL };
		EXPECT(!dir_map_writer_add(w, &bad, &e) && e && e->code == DIR_MAP_ERROR_LIMIT,
		    "an unknown entry type is refused");
		g_clear_error(&e);
	}
	EXPECT(!dir_map_writer_commit(w, 1, "a-much-too-long-incarnation", &e) && e &&
	    e->code == DIR_MAP_ERROR_LIMIT, "an incarnation longer than 16 bytes is refused");
	g_clear_error(&e);
	m = dir_map_open(path, NULL);
	EXPECT(m && dir_map_generation(m) == 42, "the map before stays in place");
	dir_map_close(m);

	/* An empty map. */
	w = dir_map_writer_begin(path, 0600, NULL);
	EXPECT(w && dir_map_writer_commit(w, 1, "", NULL), "an empty map");
	m = dir_map_open(path, NULL);
	EXPECT(m && dir_map_keys(m) == 0 && dir_map_check(m, NULL) &&
	    dir_map_lookup(m, "a@x.example", 11, &b) == DIR_MAP_NONE, "finds nothing");
	dir_map_close(m);
	g_string_free(long_proxies, TRUE);
	g_free(path);
}

static void
test_a_map_of_many_keys_checks_whole(void)
{
	DirStore *a = store("m8");
	SyncDoc *doc = po_doc("CORP/A", NULL);
	char *path = map_path("m8");
	DirMap *m;

	for (int i = 0; i < 5000; i++) {
		char *legacy = g_strdup_printf("CORP/A/U%05d", i);
		char *proxy = g_strdup_printf("SMTP:u%05d@company.com", i);

		g_ptr_array_add(doc->entries, with(entry(DIR_MAILBOX, legacy, NULL), proxy, NULL));
		g_free(legacy);
		g_free(proxy);
	}
	IMPORT_OK(a, &ctx_a, doc);
	m = dir_map_open(path, NULL);
	EXPECT(m && dir_map_keys(m) == 5000 && dir_map_check(m, NULL), "5000 keys, consistent");
	dir_map_close(m);
	EXPECT(EXPECT_SAME_BRIEFS(a, "m8", TRUE) == 5000, "all found");
	g_free(path);
	dir_close(a);
}

static const CuTest tests[] = {
	{ "the map answers every key as the database does",
	  test_the_map_answers_every_key_as_the_database_does },
	{ "routing decides the same with and without the map",
	  test_routing_decides_the_same_with_and_without_the_map },
	{ "a stale map is not used, answers stay right", test_a_stale_map_is_not_used },
	{ "truncated or garbage maps are ignored, the next import rebuilds",
	  test_truncated_or_garbage_maps_are_ignored },
	{ "a clash between origins answers with the effective owner",
	  test_a_clash_between_origins_answers_with_the_effective_owner },
	{ "deletions, purges and renames show after the next import",
	  test_deletions_and_renames_show_after_the_next_import },
	{ "the file format: hash, round trip, limits", test_the_file_format },
	{ "a map of 5000 keys checks whole", test_a_map_of_many_keys_checks_whole },
	{ NULL, NULL },
};

int
main(void)
{
	/* Warnings about bad maps and clashes are expected here. */
	pg_log_set_threshold(PG_LOG_ERROR);
	return cu_run_in_tmpdir("dir_map", tests, &tmpdir);
}
