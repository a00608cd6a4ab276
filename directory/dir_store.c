/* dir_store.c - the replicated address directory in SQLite (see dir_store.h).
 *
 * Tables (schema version 2):
 *   entries      one row per entry id: its current state, live or tombstone;
 *                proxies and members as sorted '\n'-joined text, as written
 *   proxies      (key, rid): one row per proxy a live entry claims; the key
 *                is local@domain all in lower case (ASCII): every statement
 *                that takes a key folds it with lower(?), SQLite's ASCII-only
 *                one, as dir_proxy_key and the proxy map do
 *   vector       site -> highest USN of that origin this site has seen
 *   peer_vector  (peer, site) -> what the peer last reported it has seen
 *   meta         this site's name, its USN counter, the database's random
 *                incarnation and its generation: a counter bumped by every
 *                transaction that changes entries or proxies
 *   schema_version
 * A tombstone keeps id, type, legacy, home site, name and its stamp; it
 * claims no proxy.  Every import is one transaction (BEGIN IMMEDIATE ...
 * COMMIT); every statement is prepared once and cached.
 *
 * Replication: an export for a peer holds every stored state whose origin is
 * not the peer and whose USN is above what the peer last reported for that
 * origin.  Since that export is made from the exporter's whole state, the
 * importer may then take the exporter's vector as its own (per site, the
 * maximum): it has seen everything the exporter had seen.  An incoming
 * state for an id this site does not hold, with a USN at or below the
 * vector, was seen before and purged with its tombstone: it is ignored, so
 * a replayed old file never resurrects a deleted entry.
 *
 * The proxy map (dir_map.h): state_dir/directory.map is a compiled copy of
 * what dir_brief answers for every SMTP key, stamped with the generation
 * and incarnation it was built from.  Every import that changed entries or
 * proxies bumps the generation and, after COMMIT, rebuilds the map with one
 * scan of the effective owners (the first row of each key of proxies, in
 * its primary-key order: ST_BRIEF_KEY's choice) in one read transaction.
 * A read batch that meets an SMTP key checks once whether the map holds the
 * batch's generation; if so, dir_brief answers SMTP keys from it, else
 * (missing, stale, corrupt) from SQLite, as outside batches.
 */
#include "config.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "address.h"
#include "dir_map.h"
#include "dir_store.h"
#include "pg_db.h"
#include "pg_log.h"

G_DEFINE_QUARK(postgate-directory-error-quark, dir_error)

/* The migrations: step i brings schema version i to i + 1.  Append only. */
static const char *const migrations[] = {
	/* 0 -> 1: the first schema */
	"CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE entries("
	"  rid INTEGER PRIMARY KEY,"
	"  id TEXT NOT NULL UNIQUE,"
	"  type INTEGER NOT NULL,"
	"  legacy TEXT NOT NULL,"
	"  home_site TEXT NOT NULL,"
	"  name TEXT NOT NULL,"
	"  target TEXT,"
	"  proxies TEXT NOT NULL,"
	"  members TEXT NOT NULL,"
	"  deleted INTEGER NOT NULL,"
	"  origin TEXT NOT NULL,"
	"  usn INTEGER NOT NULL,"
	"  version INTEGER NOT NULL,"
	"  changed INTEGER NOT NULL);"
	"CREATE INDEX entries_legacy ON entries(legacy, deleted, origin, usn);"
	"CREATE INDEX entries_tombstones ON entries(changed) WHERE deleted = 1;"
	/* One row per claim, in the order of effective ownership (the first
	 * row of a key owns it), carrying what routing reads of the entry: a
	 * routing decision is one index lookup. */
	"CREATE TABLE proxies(key TEXT NOT NULL, origin TEXT NOT NULL,"
	"  usn INTEGER NOT NULL, rid INTEGER NOT NULL, type INTEGER NOT NULL,"
	"  home_site TEXT NOT NULL, legacy TEXT NOT NULL, target TEXT,"
	"  proxies TEXT,"   /* the entry's proxies, on the primary's row only */
	"  PRIMARY KEY(key, origin, usn, rid)) WITHOUT ROWID;"
	"CREATE TABLE vector(site TEXT PRIMARY KEY, usn INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE peer_vector(peer TEXT NOT NULL, site TEXT NOT NULL,"
	"  usn INTEGER NOT NULL, PRIMARY KEY(peer, site)) WITHOUT ROWID;",
	/* 1 -> 2: proxy keys compare the local part without case (issue 12),
	 * so keys are lower case.  Two claims of one entry that differed only
	 * in case become one, the primary's row (which carries the proxies)
	 * kept.  The generation moves on: a proxy map of the old keys is stale. */
	"CREATE TABLE proxies_v2(key TEXT NOT NULL, origin TEXT NOT NULL,"
	"  usn INTEGER NOT NULL, rid INTEGER NOT NULL, type INTEGER NOT NULL,"
	"  home_site TEXT NOT NULL, legacy TEXT NOT NULL, target TEXT, proxies TEXT,"
	"  PRIMARY KEY(key, origin, usn, rid)) WITHOUT ROWID;"
	"INSERT OR IGNORE INTO proxies_v2 SELECT lower(key), origin, usn, rid, type,"
	"  home_site, legacy, target, proxies FROM proxies ORDER BY proxies IS NULL;"
	"DROP TABLE proxies;"
	"ALTER TABLE proxies_v2 RENAME TO proxies;"
	"UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation';",
};

G_STATIC_ASSERT(G_N_ELEMENTS(migrations) == DIR_SCHEMA_VERSION);

#define COLS "e.rid, e.id, e.type, e.legacy, e.home_site, e.name, e.target, " \
	"e.proxies, e.members, e.deleted, e.origin, e.usn, e.version, e.changed"

enum {
	ST_BY_ID, ST_BY_RID, ST_BY_LEGACY, ST_OWNER, ST_BRIEF_KEY, ST_BRIEF_LEGACY,
	ST_CLAIMANTS, ST_PROXY_HAS,
	ST_PROXY_ADD, ST_PROXY_DEL, ST_INSERT, ST_UPDATE, ST_SEEN_ADD, ST_SEEN_HAS,
	ST_SEEN_CLEAR, ST_SWEEP, ST_PURGE, ST_META_GET, ST_META_SET, ST_VEC_GET,
	ST_VEC_MAX, ST_VEC_ALL, ST_PEER_MAX, ST_LIST, ST_CANON, ST_REPL, ST_COUNTS,
	ST_NPROXIES, ST_LOSSES, ST_BEGIN, ST_COMMIT, ST_MAP_SCAN,
	ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
	[ST_BY_ID] = "SELECT " COLS " FROM entries e WHERE e.id = ?1",
	[ST_BY_RID] = "SELECT " COLS " FROM entries e WHERE e.rid = ?1",
	/* Several live entries may claim a legacy address or a proxy (changes
	 * from different origins): the lowest (origin, usn) is the one, and
	 * the indexes give the rows in that order. */
	[ST_BY_LEGACY] = "SELECT " COLS " FROM entries e WHERE e.legacy = ?1 AND "
	    "e.deleted = 0 ORDER BY e.origin, e.usn LIMIT 1",
	[ST_OWNER] = "SELECT " COLS " FROM proxies p JOIN entries e ON e.rid = p.rid "
	    "WHERE p.key = lower(?1) ORDER BY p.origin, p.usn, p.rid LIMIT 1",
	[ST_BRIEF_KEY] = "SELECT rid, type, legacy, home_site, target, proxies FROM "
	    "proxies WHERE key = lower(?1) ORDER BY origin, usn, rid LIMIT 1",
	[ST_BRIEF_LEGACY] = "SELECT rid, type, legacy, home_site, target, proxies FROM "
	    "entries WHERE legacy = ?1 AND deleted = 0 ORDER BY origin, usn LIMIT 1",
	[ST_CLAIMANTS] = "SELECT p.rid FROM proxies p WHERE p.key = lower(?1) AND "
	    "p.rid != ?2",
	[ST_PROXY_HAS] = "SELECT 1 FROM proxies WHERE key = lower(?1) AND rid = ?2",
	[ST_PROXY_ADD] = "INSERT OR REPLACE INTO proxies(key, origin, usn, rid, type, "
	    "home_site, legacy, target, proxies) VALUES (lower(?1), ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
	    "?9)",
	[ST_PROXY_DEL] = "DELETE FROM proxies WHERE key = lower(?1) AND rid = ?2",
	[ST_INSERT] = "INSERT INTO entries(id, type, legacy, home_site, name, target, "
	    "proxies, members, deleted, origin, usn, version, changed) VALUES "
	    "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
	[ST_UPDATE] = "UPDATE entries SET id = ?1, type = ?2, legacy = ?3, home_site = ?4, "
	    "name = ?5, target = ?6, proxies = ?7, members = ?8, deleted = ?9, "
	    "origin = ?10, usn = ?11, version = ?12, changed = ?13 WHERE rid = ?14",
	[ST_SEEN_ADD] = "INSERT OR IGNORE INTO temp.import_seen(rid) VALUES (?1)",
	[ST_SEEN_HAS] = "SELECT 1 FROM temp.import_seen WHERE rid = ?1",
	[ST_SEEN_CLEAR] = "DELETE FROM temp.import_seen",
	[ST_SWEEP] = "SELECT e.rid FROM entries e WHERE e.legacy >= ?1 AND e.legacy < ?2 "
	    "AND e.deleted = 0 AND NOT (e.origin = ?3 AND e.usn > ?4) AND "
	    "e.rid NOT IN (SELECT rid FROM temp.import_seen)",
	[ST_PURGE] = "DELETE FROM entries WHERE deleted = 1 AND changed < ?1",
	[ST_META_GET] = "SELECT value FROM meta WHERE key = ?1",
	[ST_META_SET] = "INSERT INTO meta(key, value) VALUES (?1, ?2) "
	    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
	[ST_VEC_GET] = "SELECT usn FROM vector WHERE site = ?1",
	[ST_VEC_MAX] = "INSERT INTO vector(site, usn) VALUES (?1, ?2) "
	    "ON CONFLICT(site) DO UPDATE SET usn = max(usn, excluded.usn)",
	[ST_VEC_ALL] = "SELECT site, usn FROM vector ORDER BY site",
	[ST_PEER_MAX] = "INSERT INTO peer_vector(peer, site, usn) VALUES (?1, ?2, ?3) "
	    "ON CONFLICT(peer, site) DO UPDATE SET usn = max(usn, excluded.usn)",
	[ST_LIST] = "SELECT " COLS " FROM entries e WHERE e.deleted = 0 AND "
	    "(?1 < 0 OR e.type = ?1) ORDER BY e.legacy, e.id",
	[ST_CANON] = "SELECT " COLS " FROM entries e WHERE e.deleted = 0 ORDER BY e.id",
	[ST_REPL] = "SELECT " COLS " FROM entries e LEFT JOIN peer_vector v ON "
	    "v.peer = ?1 AND v.site = e.origin WHERE e.origin != ?1 AND "
	    "e.usn > COALESCE(v.usn, 0) ORDER BY e.rid",
	[ST_COUNTS] = "SELECT type, deleted, count(*) FROM entries GROUP BY type, deleted",
	[ST_NPROXIES] = "SELECT count(*) FROM proxies",
	/* The effective owner of every key: the first row of each key in the
	 * primary key's order, which is ST_BRIEF_KEY's ORDER BY (a table scan,
	 * no sort). */
	[ST_MAP_SCAN] = "SELECT key, rid, type, legacy, home_site, target, proxies FROM "
	    "proxies ORDER BY key, origin, usn, rid",
	[ST_BEGIN] = "BEGIN",
	[ST_COMMIT] = "COMMIT",
	[ST_LOSSES] = "SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT count(*) AS n "
	    "FROM proxies GROUP BY key HAVING count(*) > 1)",
};

struct DirStore {
	PgDb *pg;
	sqlite3 *db;            /* pg's connection */
	char *path;
	gint64 now;             /* pinned clock, 0: real time */
	DirImport *busy;        /* the import under way, if any */
	guint reading;          /* depth of dir_read_begin .. dir_read_end */
	gboolean mapped;        /* reads go through mmap (set by a read batch) */
	gboolean dirty;         /* the import under way wrote entries or proxies */
	/* The proxy map (dir_map.h). */
	char *pmap_path;        /* state_dir/directory.map */
	gboolean pmap_defer;    /* imports leave the map to dir_map_defer(d, FALSE) */
	gboolean pmap_owed;     /* an import happened while deferred */
	gboolean pmap_changed;  /* ... and changed the directory */
	DirMap *pmap;           /* that file, mapped, when it was usable */
	struct stat pmap_st;    /* the file as last seen, when pmap_seen */
	gboolean pmap_seen;
	int pmap_state;         /* PMAP_* for the read batch open */
	char *incarnation;      /* meta incarnation, once read */
	char *pmap_note;        /* the last reason logged for not using the map */
};

enum { PMAP_UNKNOWN, PMAP_ON, PMAP_OFF };

static gboolean map_set(DirStore *d, gboolean on, GError **error);
static gboolean generation_bump(DirStore *d, GError **error);
static void pmap_after_import(DirStore *d, gboolean changed);

/* A clash met while importing a postoffice export: decided at commit, when
 * the entries the file no longer lists are tombstones. */
typedef struct {
	char *key;
	char *proxy;
	gint64 rid, other;
} Clash;

struct DirImport {
	DirStore *d;
	const DirContext *ctx;
	SyncDoc *head;                  /* a copy of the document's head */
	char po[ADDR_PO_MAX + 1];       /* POSTOFFICE: NET/PO */
	char lo[ADDR_PO_MAX + 2], hi[ADDR_PO_MAX + 2];  /* its legacy range */
	guint64 usn_start, usn;         /* this site's counter */
	gint64 now;
	GHashTable *origin_max;         /* REPLICATION: origin -> guint64 * */
	GHashTable *seen_before;        /* REPLICATION: origin -> guint64 *, the
	                                 * vector as it was when the import began */
	GArray *clashes;                /* POSTOFFICE: Clash */
	char *templated_example;        /* first entry a template change touched */
	guint foreign;                  /* REPLICATION: changes about this site's own
	                                 * entries, ignored (SPEC 2) */
	char *foreign_example;          /* the first of them, for the warning */
	char *incarnation;              /* of this database: part of the ids it makes */
	DirImportStats st;
	gboolean failed;
};

/* ---------------------------------------------------------------- basics */

static gint64
clock_now(DirStore *d)
{
	return d->now ? d->now : g_get_real_time() / G_USEC_PER_SEC;
}

void
dir_set_now(DirStore *d, gint64 now)
{
	d->now = now;
}

static void
split_into(GPtrArray *out, const char *text)
{
	const char *p = text, *nl;

	if (!text || !*text)
		return;
	for (;;) {
		nl = strchr(p, '\n');
		if (!nl) {
			g_ptr_array_add(out, g_strdup(p));
			return;
		}
		g_ptr_array_add(out, g_strndup(p, (gsize)(nl - p)));
		p = nl + 1;
	}
}

static char *
join(const GPtrArray *a)
{
	GString *s = g_string_new(NULL);

	for (guint i = 0; i < a->len; i++) {
		if (i)
			g_string_append_c(s, '\n');
		g_string_append(s, a->pdata[i]);
	}
	return g_string_free(s, FALSE);
}

/* The entry of a row whose first column is rid (COLS order). */
static DirEntry *
row_entry(sqlite3_stmt *st, gint64 *rid)
{
	DirEntry *e = dir_entry_new((DirType)sqlite3_column_int(st, 2));
	const char *target = pg_db_col_text(st, 6);

	if (rid)
		*rid = sqlite3_column_int64(st, 0);
	e->id = g_strdup(pg_db_col_text(st, 1));
	e->legacy = g_strdup(pg_db_col_text(st, 3));
	e->home_site = g_strdup(pg_db_col_text(st, 4));
	e->name = g_strdup(pg_db_col_text(st, 5));
	e->target = target ? g_strdup(target) : NULL;
	split_into(e->proxies, pg_db_col_text(st, 7));
	split_into(e->members, pg_db_col_text(st, 8));
	e->deleted = sqlite3_column_int(st, 9) != 0;
	e->origin = g_strdup(pg_db_col_text(st, 10));
	e->usn = (guint64)sqlite3_column_int64(st, 11);
	e->version = (guint64)sqlite3_column_int64(st, 12);
	e->changed = sqlite3_column_int64(st, 13);
	return e;
}

/* Run a one-row entry query bound by the caller: the entry or NULL; *ok FALSE on error. */
static DirEntry *
fetch_entry(DirStore *d, sqlite3_stmt *st, gint64 *rid, gboolean *ok, GError **error)
{
	DirEntry *e = NULL;
	int rc = sqlite3_step(st);

	*ok = TRUE;
	if (rc == SQLITE_ROW)
		e = row_entry(st, rid);
	else if (rc != SQLITE_DONE)
		*ok = pg_db_fail(d->pg, error, "read an entry");
	pg_db_done(st);
	return e;
}

static char *
meta_get(DirStore *d, const char *key, gboolean *ok, GError **error)
{
	sqlite3_stmt *st = pg_db_stmt(d->pg, ST_META_GET, error);
	char *v = NULL;
	int rc;

	*ok = st != NULL;
	if (!st)
		return NULL;
	pg_db_bind_text(st, 1, key);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		v = g_strdup(pg_db_col_text(st, 0));
	else if (rc != SQLITE_DONE)
		*ok = pg_db_fail(d->pg, error, "read meta");
	pg_db_done(st);
	return v;
}

static gboolean
meta_set(DirStore *d, const char *key, const char *value, GError **error)
{
	sqlite3_stmt *st = pg_db_stmt(d->pg, ST_META_SET, error);

	if (!st)
		return FALSE;
	pg_db_bind_text(st, 1, key);
	pg_db_bind_text(st, 2, value);
	return pg_db_run(d->pg, st, error, "write meta");
}

static gboolean
meta_usn(DirStore *d, guint64 *usn, GError **error)
{
	gboolean ok;
	char *v = meta_get(d, "usn", &ok, error);

	*usn = v ? g_ascii_strtoull(v, NULL, 10) : 0;
	g_free(v);
	return ok;
}

/* The highest USN of origin site this site has seen (0: none). */
static gboolean
vector_get(DirStore *d, const char *site, guint64 *usn, GError **error)
{
	sqlite3_stmt *st = pg_db_stmt(d->pg, ST_VEC_GET, error);
	int rc;

	if (!st)
		return FALSE;
	pg_db_bind_text(st, 1, site);
	rc = sqlite3_step(st);
	*usn = rc == SQLITE_ROW ? (guint64)sqlite3_column_int64(st, 0) : 0;
	pg_db_done(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return pg_db_fail(d->pg, error, "read the vector");
	return TRUE;
}

static void
vector_put(GHashTable *v, const char *site, guint64 usn)
{
	guint64 *p = g_hash_table_lookup(v, site);

	if (!p) {
		p = g_new(guint64, 1);
		*p = usn;
		g_hash_table_insert(v, g_strdup(site), p);
	} else if (usn > *p) {
		*p = usn;
	}
}

/* This site's vector: the stored one and, under the site's name, its USN. */
static gboolean
vector_load(DirStore *d, GHashTable *v, GError **error)
{
	sqlite3_stmt *st = pg_db_stmt(d->pg, ST_VEC_ALL, error);
	gboolean ok;
	guint64 usn;
	char *site;
	int rc;

	if (!st)
		return FALSE;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		vector_put(v, pg_db_col_text(st, 0), (guint64)sqlite3_column_int64(st, 1));
	pg_db_done(st);
	if (rc != SQLITE_DONE)
		return pg_db_fail(d->pg, error, "read the vector");
	site = meta_get(d, "site", &ok, error);
	if (ok && site && meta_usn(d, &usn, error))
		vector_put(v, site, usn);
	else if (ok && site)
		ok = FALSE;
	g_free(site);
	return ok;
}

/* ---------------------------------------------------------------- rules */

/* The rules of dir_types.h, for NUL-terminated text that may be NULL. */
static gboolean
site_valid(const char *s)
{
	return s && dir_check_site(s, strlen(s));
}

static gboolean
id_valid(const char *s)
{
	return s && dir_check_id(s, strlen(s));
}

static gboolean
name_valid(const char *s)
{
	return s && !dir_check_display(s, strlen(s));
}

static gboolean
invalid(GError **error, const char *who, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

static gboolean
invalid(GError **error, const char *who, const char *fmt, ...)
{
	va_list ap;
	char *what;

	va_start(ap, fmt);
	what = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_set_error(error, DIR_ERROR, DIR_ERROR_INVALID, "%s%s%s", who ? who : "",
	    who ? ": " : "", what);
	g_free(what);
	return FALSE;
}

/* Whether text starts with the typed prefix smtp: in any case. */
static gboolean
smtp_prefixed(const char *text)
{
	while (*text == ' ' || *text == '\t')
		text++;
	return g_ascii_strncasecmp(text, "SMTP:", 5) == 0;
}

char *
dir_proxy_key(const char *address, GError **error)
{
	char out[ADDR_SMTP_MAX + 1];
	GError *e = NULL;
	PgAddr a;

	if (smtp_prefixed(address)) {
		if (!addr_parse(address, strlen(address), &a, &e))
			goto fail;
		return g_ascii_strdown(a.smtp, -1);
	}
	if (addr_parse_smtp(address, strlen(address), out, &e))
		return g_ascii_strdown(out, -1);
fail:
	g_set_error_literal(error, DIR_ERROR, DIR_ERROR_INVALID, e->message);
	g_error_free(e);
	return NULL;
}

/* A proxy as given in an entry: "SMTP:" (primary) or "smtp:" (secondary)
 * exactly, then an SMTP address; canonical text into *out. */
static gboolean
proxy_norm(const char *who, const char *text, char **out, GError **error)
{
	char key[ADDR_SMTP_MAX + 1];
	GError *e = NULL;

	if (strncmp(text, "SMTP:", 5) != 0 && strncmp(text, "smtp:", 5) != 0)
		return invalid(error, who, "proxy \"%s\" must start with SMTP: (the primary) "
		    "or smtp: (a secondary address)", text);
	if (!addr_parse_smtp(text + 5, strlen(text + 5), key, &e)) {
		invalid(error, who, "proxy: %s", e->message);
		g_error_free(e);
		return FALSE;
	}
	*out = g_strdup_printf("%.5s%s", text, key);
	return TRUE;
}

static gint
cmp_str(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static gboolean
is_primary(const char *proxy)
{
	return strncmp(proxy, "SMTP:", 5) == 0;
}

/* Check and canonicalise a list of proxies in place: each valid, no key
 * twice, none or exactly one primary, sorted (the primary sorts first). */
static gboolean
proxies_norm(const char *who, GPtrArray *p, GError **error)
{
	GHashTable *keys;
	guint primaries = 0;
	gboolean ok = TRUE;

	if (p->len > DIR_MAX_PROXIES)
		return invalid(error, who, "%u proxies, at most %u are allowed", p->len,
		    DIR_MAX_PROXIES);
	keys = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	for (guint i = 0; ok && i < p->len; i++) {
		char *canon = NULL;

		ok = proxy_norm(who, p->pdata[i], &canon, error);
		if (!ok)
			break;
		g_free(p->pdata[i]);
		p->pdata[i] = canon;
		if (!g_hash_table_add(keys, g_ascii_strdown(canon + 5, -1)))
			ok = invalid(error, who, "proxy %s is listed twice (local parts "
			    "compare without case)", canon + 5);
		primaries += is_primary(canon);
	}
	g_hash_table_destroy(keys);
	if (ok && primaries > 1)
		ok = invalid(error, who, "%u primary (SMTP:) proxies; there must be exactly "
		    "one", primaries);
	if (ok && p->len > 0 && primaries == 0)
		ok = invalid(error, who, "secondary (smtp:) proxies but no primary (SMTP:)");
	if (ok)
		g_ptr_array_sort(p, cmp_str);
	return ok;
}

/* Check and canonicalise the members of a list in place: legacy addresses,
 * duplicates dropped, sorted. */
static gboolean
members_norm(const char *who, GPtrArray *m, GError **error)
{
	GPtrArray *out;
	GError *e = NULL;

	if (m->len > DIR_MAX_MEMBERS)
		return invalid(error, who, "%u members, at most %u are allowed", m->len,
		    DIR_MAX_MEMBERS);
	out = g_ptr_array_new_with_free_func(g_free);
	for (guint i = 0; i < m->len; i++) {
		const char *t = m->pdata[i];
		PgAddr a;

		if (!addr_parse(t, strlen(t), &a, &e) || a.kind != ADDR_KIND_LEGACY) {
			invalid(error, who, "member: %s", e ? e->message :
			    "a member is a legacy address NET/PO/MAILBOX");
			g_clear_error(&e);
			g_ptr_array_unref(out);
			return FALSE;
		}
		g_ptr_array_add(out, addr_format(&a));
	}
	g_ptr_array_sort(out, cmp_str);
	g_ptr_array_set_size(m, 0);
	for (guint i = 0; i < out->len; i++)
		if (i == 0 || strcmp(out->pdata[i], out->pdata[i - 1]) != 0)
			g_ptr_array_add(m, g_strdup(out->pdata[i]));
	g_ptr_array_unref(out);
	return TRUE;
}

/* A checked, canonical copy of an entry of a document: legacy, target,
 * proxies, members, name; with stamps and ids checked when stamped.  The
 * legacy address is parsed into *a. */
static DirEntry *
entry_norm(const DirEntry *in, gboolean stamped, PgAddr *a, GError **error)
{
	DirEntry *e;
	GError *err = NULL;
	const char *who;
	char *legacy;

	if (!in->legacy)
		return invalid(error, in->id, "an entry without a legacy address"), NULL;
	if (!addr_parse(in->legacy, strlen(in->legacy), a, &err) ||
	    a->kind != ADDR_KIND_LEGACY) {
		invalid(error, in->id, "legacy address: %s", err ? err->message :
		    "an entry's legacy address is NET/PO/MAILBOX");
		g_clear_error(&err);
		return NULL;
	}
	legacy = addr_format(a);
	if ((guint)in->type > DIR_LIST) {
		invalid(error, legacy, "unknown entry type %d", (int)in->type);
		g_free(legacy);
		return NULL;
	}
	e = dir_entry_copy(in);
	g_free(e->legacy);
	e->legacy = legacy;
	who = e->legacy;
	if (!e->name)
		e->name = g_strdup("");
	if (!name_valid(e->name)) {
		invalid(error, who, "the display name is not UTF-8 of at most %u bytes "
		    "without control characters", DIR_NAME_MAX);
		goto fail;
	}
	if (stamped) {
		if (!id_valid(e->id)) {
			invalid(error, who, "entry id \"%s\" is not 1-%u of A-Z a-z 0-9 . _ : -",
			    e->id ? e->id : "", DIR_ID_MAX);
			goto fail;
		}
		if (!site_valid(e->origin) || !site_valid(e->home_site)) {
			invalid(error, who, "origin and home site must be site names");
			goto fail;
		}
		if (e->usn == 0 || e->version == 0 || e->usn > G_MAXINT64 ||
		    e->version > G_MAXINT64) {
			invalid(error, who, "a replicated change needs a USN and a version "
			    "from 1");
			goto fail;
		}
	}
	if (e->deleted) {
		/* A tombstone claims nothing. */
		g_clear_pointer(&e->target, g_free);
		g_ptr_array_set_size(e->proxies, 0);
		g_ptr_array_set_size(e->members, 0);
		return e;
	}
	if (e->type == DIR_CUSTOM) {
		char smtp[ADDR_SMTP_MAX + 1];
		PgAddr t;
		gboolean tok;

		if (!e->target) {
			invalid(error, who, "a custom recipient needs a target address");
			goto fail;
		}
		if (smtp_prefixed(e->target)) {
			tok = addr_parse(e->target, strlen(e->target), &t, &err);
			if (tok)
				g_strlcpy(smtp, t.smtp, sizeof smtp);
		} else {
			tok = addr_parse_smtp(e->target, strlen(e->target), smtp, &err);
		}
		if (!tok) {
			invalid(error, who, "target: %s", err->message);
			g_clear_error(&err);
			goto fail;
		}
		g_free(e->target);
		e->target = g_strdup_printf("SMTP:%s", smtp);
	} else if (e->target) {
		invalid(error, who, "only a custom recipient has a target address");
		goto fail;
	}
	if (e->type != DIR_LIST && e->members->len > 0) {
		invalid(error, who, "only a distribution list has members");
		goto fail;
	}
	if (!proxies_norm(who, e->proxies, error) || !members_norm(who, e->members, error))
		goto fail;
	if (stamped && e->proxies->len == 0) {
		invalid(error, who, "a live entry has exactly one primary (SMTP:) proxy, "
		    "this one has none");
		goto fail;
	}
	return e;
fail:
	dir_entry_free(e);
	return NULL;
}

static gboolean
strv_same(const GPtrArray *a, const GPtrArray *b)
{
	if (a->len != b->len)
		return FALSE;
	for (guint i = 0; i < a->len; i++)
		if (strcmp(a->pdata[i], b->pdata[i]) != 0)
			return FALSE;
	return TRUE;
}

/* Whether two states say the same (stamps aside). */
static gboolean
same_state(const DirEntry *a, const DirEntry *b)
{
	return a->type == b->type && a->deleted == b->deleted &&
	    strcmp(a->legacy, b->legacy) == 0 && strcmp(a->home_site, b->home_site) == 0 &&
	    strcmp(a->name, b->name) == 0 && g_strcmp0(a->target, b->target) == 0 &&
	    strv_same(a->proxies, b->proxies) && strv_same(a->members, b->members);
}

/* The conflict order: whether state a beats state b of the same entry id.
 * Higher version; then the lower origin site name; then the higher USN. */
static gboolean
state_wins(const DirEntry *a, const DirEntry *b)
{
	int c;

	if (a->version != b->version)
		return a->version > b->version;
	c = strcmp(a->origin, b->origin);
	if (c != 0)
		return c < 0;
	return a->usn > b->usn;
}

/* --------------------------------------------------------------- open */

/* A 16 MB page cache: `postgate dir import` of 1,000,000 entries stays near
 * 75 MB peak RSS, reader included (docs/performance.md). */
static const PgDbSpec db_spec = {
	.domain = dir_error_quark, .io_code = DIR_ERROR_IO, .open_code = DIR_ERROR_IO,
	.schema_code = DIR_ERROR_SCHEMA_VERSION,
	.pragmas = "PRAGMA cache_size=-16384; PRAGMA journal_size_limit=67108864;",
	.migrations = migrations, .version = DIR_SCHEMA_VERSION,
	.stmts = stmt_sql, .n_stmts = ST_COUNT,
};

DirStore *
dir_open(const char *path, GError **error)
{
	DirStore *d = g_new0(DirStore, 1);
	int from;

	d->path = g_strdup(path);
	d->pmap_path = dir_map_path(path);
	d->pg = pg_db_open(path, path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
	    SQLITE_OPEN_NOMUTEX, &db_spec, &from, error);
	if (!d->pg) {
		dir_close(d);
		return NULL;
	}
	d->db = pg_db_handle(d->pg);
	if (from > 0 && from < DIR_SCHEMA_VERSION)
		pg_info(NULL, "directory: %s migrated from schema version %d to %d", d->path,
		    from, DIR_SCHEMA_VERSION);
	/* Schema 2 changed the proxy keys: a map of the old ones is rebuilt now,
	 * not at the next import. */
	if (from > 0 && from < 2)
		pmap_after_import(d, TRUE);
	if (!pg_db_exec(d->pg, "CREATE TEMP TABLE IF NOT EXISTS import_seen("
	    "rid INTEGER PRIMARY KEY)", error)) {
		dir_close(d);
		return NULL;
	}
	return d;
}

void
dir_close(DirStore *d)
{
	if (!d)
		return;
	if (d->busy)
		dir_import_abort(d->busy);
	if (d->reading) {
		d->reading = 1;
		dir_read_end(d);
	}
	pg_db_close(d->pg);
	dir_map_close(d->pmap);
	g_free(d->pmap_path);
	g_free(d->incarnation);
	g_free(d->pmap_note);
	g_free(d->path);
	g_free(d);
}

/* ------------------------------------------------------------- writing */

/* Insert (rid 0) or overwrite (rid) a state; the new rid into *out. */
static gboolean
state_write(DirStore *d, const DirEntry *e, gint64 rid, gint64 *out, GError **error)
{
	sqlite3_stmt *st = pg_db_stmt(d->pg, rid ? ST_UPDATE : ST_INSERT, error);
	char *proxies, *members;
	gboolean ok;

	if (!st)
		return FALSE;
	proxies = join(e->proxies);
	members = join(e->members);
	pg_db_bind_text(st, 1, e->id);
	sqlite3_bind_int(st, 2, (int)e->type);
	pg_db_bind_text(st, 3, e->legacy);
	pg_db_bind_text(st, 4, e->home_site);
	pg_db_bind_text(st, 5, e->name);
	pg_db_bind_text(st, 6, e->target);
	pg_db_bind_text(st, 7, proxies);
	pg_db_bind_text(st, 8, members);
	sqlite3_bind_int(st, 9, e->deleted ? 1 : 0);
	pg_db_bind_text(st, 10, e->origin);
	sqlite3_bind_int64(st, 11, (sqlite3_int64)e->usn);
	sqlite3_bind_int64(st, 12, (sqlite3_int64)e->version);
	sqlite3_bind_int64(st, 13, e->changed);
	if (rid)
		sqlite3_bind_int64(st, 14, rid);
	ok = pg_db_run(d->pg, st, error, "write an entry");
	d->dirty = TRUE;
	g_free(proxies);
	g_free(members);
	if (ok && out)
		*out = rid ? rid : sqlite3_last_insert_rowid(d->db);
	return ok;
}

static gboolean
proxy_del(DirStore *d, const char *key, gint64 rid, GError **error)
{
	sqlite3_stmt *st = pg_db_stmt(d->pg, ST_PROXY_DEL, error);

	if (!st)
		return FALSE;
	pg_db_bind_text(st, 1, key);
	sqlite3_bind_int64(st, 2, rid);
	d->dirty = TRUE;
	return pg_db_run(d->pg, st, error, "write a proxy");
}

/* A claim of key by the live state e of entry rid; all, e's proxies joined,
 * goes on the primary's row. */
static gboolean
proxy_add(DirStore *d, const char *key, const DirEntry *e, gint64 rid, const char *all,
    GError **error)
{
	sqlite3_stmt *st = pg_db_stmt(d->pg, ST_PROXY_ADD, error);

	if (!st)
		return FALSE;
	pg_db_bind_text(st, 1, key);
	pg_db_bind_text(st, 2, e->origin);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)e->usn);
	sqlite3_bind_int64(st, 4, rid);
	sqlite3_bind_int(st, 5, (int)e->type);
	pg_db_bind_text(st, 6, e->home_site);
	pg_db_bind_text(st, 7, e->legacy);
	pg_db_bind_text(st, 8, e->target);
	pg_db_bind_text(st, 9, all);
	d->dirty = TRUE;
	return pg_db_run(d->pg, st, error, "write a proxy");
}

/* Whether one of proxies has the key of key (the same address, the local
 * part compared without case). */
static gboolean
has_key(const GPtrArray *proxies, const char *key)
{
	for (guint i = 0; i < proxies->len; i++)
		if (g_ascii_strcasecmp((const char *)proxies->pdata[i] + 5, key) == 0)
			return TRUE;
	return FALSE;
}

/* The live entries other than rid that claim key, into rids. */
static gboolean
claimants(DirStore *d, const char *key, gint64 rid, GArray *rids, GError **error)
{
	sqlite3_stmt *st = pg_db_stmt(d->pg, ST_CLAIMANTS, error);
	int rc;

	if (!st)
		return FALSE;
	pg_db_bind_text(st, 1, key);
	sqlite3_bind_int64(st, 2, rid);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		gint64 r = sqlite3_column_int64(st, 0);
		g_array_append_val(rids, r);
	}
	pg_db_done(st);
	return rc == SQLITE_DONE || pg_db_fail(d->pg, error, "read proxy claims");
}

static DirEntry *
by_rid(DirStore *d, gint64 rid, gboolean *ok, GError **error)
{
	sqlite3_stmt *st = pg_db_stmt(d->pg, ST_BY_RID, error);

	*ok = st != NULL;
	if (!st)
		return NULL;
	sqlite3_bind_int64(st, 1, rid);
	return fetch_entry(d, st, NULL, ok, error);
}

/* Bring the claims of entry rid from state old (NULL: none) to state new:
 * every row is written again, since each carries the state's stamp; each
 * key new claims that old did not, and that another live entry claims
 * too, is handed to clash().  With bar (a peer's state, in a replication
 * import), a key that an entry of this site claims is not claimed at all:
 * it is handed to bar() instead, whether old claimed it or not, so a claim
 * that lost to this site stays lost while this state lasts (SPEC 2).
 * Without bar (an entry of this site, in a postoffice import) every key new
 * claims is handed to clash() (a peer's claim stored beside ours, which a
 * database from before SPEC 2 was kept may hold, is dropped there), and a
 * key new no longer claims is given to no peer's entry: their claims of it
 * go too. */
typedef gboolean (*ClashFunc)(DirImport *im, const char *proxy, gint64 rid, gint64 other,
    GError **error);

static gboolean local_claim(DirImport *im, const GArray *rids, gint64 *local,
    GError **error);
static gboolean peer_claims_drop(DirImport *im, const char *proxy, gint64 rid,
    GError **error);

static gboolean
proxies_update(DirImport *im, const DirEntry *old, const DirEntry *new, gint64 rid,
    ClashFunc clash, ClashFunc bar, GError **error)
{
	DirStore *d = im->d;
	GArray *rids = g_array_new(FALSE, FALSE, sizeof(gint64));
	char *all = join(new->proxies);
	gboolean ok = TRUE;

	for (guint i = 0; ok && old && i < old->proxies->len; i++) {
		const char *p = old->proxies->pdata[i];

		ok = proxy_del(d, p + 5, rid, error);
		if (ok && !bar && !old->deleted && (new->deleted || !has_key(new->proxies, p + 5)))
			ok = peer_claims_drop(im, p, rid, error);
	}
	for (guint i = 0; ok && !new->deleted && i < new->proxies->len; i++) {
		const char *p = new->proxies->pdata[i], *key = p + 5;
		gboolean fresh = !old || old->deleted || !has_key(old->proxies, key);
		gint64 local = 0;

		g_array_set_size(rids, 0);
		ok = claimants(d, key, rid, rids, error);
		if (ok && bar && rids->len > 0)
			ok = local_claim(im, rids, &local, error);
		if (ok && local) {
			ok = bar(im, p, rid, local, error);
			continue;
		}
		ok = ok && proxy_add(d, key, new, rid, is_primary(p) ? all : NULL, error);
		if (!ok || (bar && !fresh))
			continue;
		for (guint j = 0; ok && j < rids->len; j++)
			ok = clash(im, p, rid, g_array_index(rids, gint64, j), error);
	}
	g_array_unref(rids);
	g_free(all);
	return ok;
}

/* ------------------------------------------------------------ importing */

static const char *
ctx_po_find(const DirContext *ctx, const char *po)
{
	char net[ADDR_PART_MAX + 1], name[ADDR_PART_MAX + 1];

	for (const char *const *p = ctx->postoffices; p && *p; p++) {
		if (!addr_parse_po(*p, strlen(*p), net, name, NULL))
			continue;
		if (strncmp(po, net, strlen(net)) == 0 && po[strlen(net)] == '/' &&
		    strcmp(po + strlen(net) + 1, name) == 0)
			return *p;
	}
	return NULL;
}

/* Whether this site is authoritative for an entry: it is on a postoffice
 * this site serves (SPEC 2), where every entry this site's imports made is
 * homed.  Only this site's own postoffice imports change such an entry.  An
 * entry homed here on a postoffice no longer served (one that moved to
 * another site) is not: its new home's changes replace it. */
static gboolean
entry_is_ours(const DirContext *ctx, const DirEntry *e)
{
	const char *slash = strrchr(e->legacy, '/');
	char po[ADDR_PO_MAX + 1];

	if (!slash || (size_t)(slash - e->legacy) >= sizeof po)
		return FALSE;
	memcpy(po, e->legacy, (size_t)(slash - e->legacy));
	po[slash - e->legacy] = '\0';
	return ctx_po_find(ctx, po) != NULL;
}

static gboolean
ctx_check(DirStore *d, const DirContext *ctx, GError **error)
{
	gboolean ok;
	char *site;

	if (!ctx || !site_valid(ctx->site))
		return invalid(error, NULL, "this site's name \"%s\" is not a site name "
		    "(1-%u of A-Z a-z 0-9 _ -)", ctx && ctx->site ? ctx->site : "",
		    DIR_SITE_MAX);
	site = meta_get(d, "site", &ok, error);
	if (ok && site && strcmp(site, ctx->site) != 0)
		ok = invalid(error, NULL, "%s belongs to site %s, but this site is named %s: "
		    "a site's name is the origin of its changes and cannot change",
		    d->path, site, ctx->site);
	g_free(site);
	return ok;
}

/* Expand one template for the legacy address a ("SMTP:..." or "smtp:..."). */
static char *
template_expand(const char *tpl, const PgAddr *a, GError **error)
{
	GString *s = g_string_new(NULL);
	char key[ADDR_SMTP_MAX + 1];
	GError *e = NULL;
	char *low;

	if (strncmp(tpl, "SMTP:", 5) != 0 && strncmp(tpl, "smtp:", 5) != 0) {
		g_string_free(s, TRUE);
		invalid(error, NULL, "proxy template \"%s\" must start with SMTP: or smtp:",
		    tpl);
		return NULL;
	}
	for (const char *p = tpl + 5; *p; p++) {
		const char *part = NULL;

		if (*p != '%') {
			g_string_append_c(s, *p);
			continue;
		}
		switch (p[1]) {
		case 'm': part = a->mailbox; break;
		case 'p': part = a->po; break;
		case 'n': part = a->net; break;
		case '%': g_string_append_c(s, '%'); p++; continue;
		default:
			g_string_free(s, TRUE);
			invalid(error, NULL, "proxy template \"%s\": %% must be followed by "
			    "m, p, n or %%", tpl);
			return NULL;
		}
		low = g_ascii_strdown(part, -1);
		g_string_append(s, low);
		g_free(low);
		p++;
	}
	if (!addr_parse_smtp(s->str, s->len, key, &e)) {
		char *legacy = addr_format(a);
		invalid(error, legacy, "proxy template \"%s\" makes no valid address: %s",
		    tpl, e->message);
		g_free(legacy);
		g_error_free(e);
		g_string_free(s, TRUE);
		return NULL;
	}
	g_string_free(s, TRUE);
	return g_strdup_printf("%.5s%s", tpl, key);
}

/* Give e the template proxies it lacks: the first SMTP: template as its
 * primary when it has none, everything else as secondaries.  *added says
 * whether anything was added. */
static gboolean
templates_apply(const DirContext *ctx, const PgAddr *a, DirEntry *e, gboolean *added,
    GError **error)
{
	gboolean primary = dir_primary(e) != NULL;
	const char *const *t, *first = NULL;
	GPtrArray *order = g_ptr_array_new();
	gboolean ok = TRUE;

	*added = FALSE;
	/* The primary template first, so that it wins over a secondary one
	 * that makes the same address. */
	for (t = ctx->templates; t && *t; t++)
		if (!first && is_primary(*t))
			g_ptr_array_add(order, (gpointer)(first = *t));
	for (t = ctx->templates; t && *t; t++)
		if (*t != first)
			g_ptr_array_add(order, (gpointer)*t);
	for (guint i = 0; ok && i < order->len; i++) {
		const char *tpl = order->pdata[i];
		char *p = template_expand(tpl, a, error);
		gboolean make_primary = tpl == first && !primary;

		if (!p) {
			ok = FALSE;
			break;
		}
		if (!has_key(e->proxies, p + 5)) {
			if (e->proxies->len >= DIR_MAX_PROXIES) {
				ok = invalid(error, e->legacy, "the proxy templates would give "
				    "it more than %u proxies", DIR_MAX_PROXIES);
			} else {
				g_ptr_array_add(e->proxies, g_strdup_printf("%s%s",
				    make_primary ? "SMTP:" : "smtp:", p + 5));
				primary = primary || make_primary;
				*added = TRUE;
			}
		}
		g_free(p);
	}
	g_ptr_array_unref(order);
	g_ptr_array_sort(e->proxies, cmp_str);
	return ok;
}

DirImport *
dir_import_begin(DirStore *d, const DirContext *ctx, const SyncDoc *head, GError **error)
{
	DirImport *im;
	char net[ADDR_PART_MAX + 1], po[ADDR_PART_MAX + 1];
	GError *e = NULL;

	if (d->busy || d->reading) {
		g_set_error(error, DIR_ERROR, DIR_ERROR_IO, "%s: %s", d->path, d->busy ?
		    "an import is already under way" : "a read batch is open (dir_read_end)");
		return NULL;
	}
	if (!map_set(d, FALSE, error))
		return NULL;
	switch (head->kind) {
	case SYNC_POSTOFFICE:
		if (!head->postoffice) {
			invalid(error, NULL, "a postoffice export must name its postoffice");
			return NULL;
		}
		if (!addr_parse_po(head->postoffice, strlen(head->postoffice), net, po, &e)) {
			invalid(error, NULL, "postoffice: %s", e->message);
			g_error_free(e);
			return NULL;
		}
		break;
	case SYNC_REPLICATION:
		if (!site_valid(head->from_site) || !site_valid(head->for_site)) {
			invalid(error, NULL, "a replication file names the site it is from and "
			    "the site it is for");
			return NULL;
		}
		break;
	case SYNC_GAL:
		invalid(error, NULL, "a gal file is for postgate-po import-gal: the gateway "
		    "imports postoffice exports and replication files");
		return NULL;
	case SYNC_CANONICAL:
		invalid(error, NULL, "a canonical export is for comparing directories: it "
		    "cannot be imported");
		return NULL;
	default:
		invalid(error, NULL, "unknown sync file kind %d", (int)head->kind);
		return NULL;
	}
	if (!ctx_check(d, ctx, error))
		return NULL;
	for (const char *const *t = ctx->templates; t && *t; t++)
		if (strncmp(*t, "SMTP:", 5) != 0 && strncmp(*t, "smtp:", 5) != 0) {
			invalid(error, NULL, "proxy template \"%s\" must start with SMTP: or "
			    "smtp:", *t);
			return NULL;
		}
	im = g_new0(DirImport, 1);
	im->d = d;
	im->ctx = ctx;
	im->head = sync_doc_new(head->kind);
	im->head->postoffice = g_strdup(head->postoffice);
	im->head->from_site = g_strdup(head->from_site);
	im->head->for_site = g_strdup(head->for_site);
	if (head->vector) {
		GHashTableIter it;
		gpointer k, v;

		g_hash_table_iter_init(&it, head->vector);
		while (g_hash_table_iter_next(&it, &k, &v))
			vector_put(im->head->vector, k, *(guint64 *)v);
	}
	if (head->kind == SYNC_POSTOFFICE) {
		g_snprintf(im->po, sizeof im->po, "%s/%s", net, po);
		if (!ctx_po_find(ctx, im->po)) {
			g_set_error(error, DIR_ERROR, DIR_ERROR_NOT_OURS,
			    "postoffice %s is not served by site %s (no [postoffice %s])",
			    im->po, ctx->site, im->po);
			dir_import_abort(im);
			return NULL;
		}
		g_snprintf(im->lo, sizeof im->lo, "%s/", im->po);
		g_snprintf(im->hi, sizeof im->hi, "%s0", im->po);  /* '0' follows '/' */
	} else {
		if (strcmp(head->for_site, ctx->site) != 0) {
			invalid(error, NULL, "this replication file is for site %s, this is "
			    "site %s", head->for_site, ctx->site);
			dir_import_abort(im);
			return NULL;
		}
		if (strcmp(head->from_site, ctx->site) == 0) {
			invalid(error, NULL, "this replication file is this site's own export");
			dir_import_abort(im);
			return NULL;
		}
		im->origin_max = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
		im->seen_before = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	}
	im->clashes = g_array_new(FALSE, FALSE, sizeof(Clash));
	im->now = clock_now(d);
	d->dirty = FALSE;
	if (!pg_db_exec(d->pg, "BEGIN IMMEDIATE", error))
		goto fail;
	d->busy = im;
	if (!meta_usn(d, &im->usn_start, error))
		goto fail;
	{
		gboolean ok;

		im->incarnation = meta_get(d, "incarnation", &ok, error);
		if (!ok)
			goto fail;
		if (!im->incarnation) {
			im->incarnation = g_strdup_printf("%08x", g_random_int());
			if (!meta_set(d, "incarnation", im->incarnation, error))
				goto fail;
		}
	}
	im->usn = im->usn_start;
	{
		sqlite3_stmt *st = pg_db_stmt(d->pg, ST_SEEN_CLEAR, error);
		if (!st || !pg_db_run(d->pg, st, error, "start an import"))
			goto fail;
	}
	return im;
fail:
	dir_import_abort(im);
	return NULL;
}

static void
clashes_free(GArray *c)
{
	for (guint i = 0; c && i < c->len; i++) {
		g_free(g_array_index(c, Clash, i).key);
		g_free(g_array_index(c, Clash, i).proxy);
	}
	if (c)
		g_array_unref(c);
}

void
dir_import_abort(DirImport *im)
{
	if (!im)
		return;
	if (im->d->busy == im) {
		pg_db_rollback(im->d->pg);
		im->d->busy = NULL;
	}
	if (im->origin_max)
		g_hash_table_unref(im->origin_max);
	if (im->seen_before)
		g_hash_table_unref(im->seen_before);
	clashes_free(im->clashes);
	sync_doc_free(im->head);
	g_free(im->templated_example);
	g_free(im->foreign_example);
	g_free(im->incarnation);
	g_free(im);
}

/* Postoffice import: remember a clash, decided at commit. */
static gboolean
po_clash(DirImport *im, const char *proxy, gint64 rid, gint64 other, GError **error)
{
	Clash c = { g_strdup(proxy + 5), g_strdup(proxy), rid, other };

	g_array_append_val(im->clashes, c);
	return TRUE;
}

/* Whether a matched entry was already given by this import. */
static gboolean
seen(DirImport *im, const DirEntry *old, gint64 rid, gboolean *ok, GError **error)
{
	sqlite3_stmt *st;
	int rc;

	*ok = TRUE;
	if (strcmp(old->origin, im->ctx->site) == 0 && old->usn > im->usn_start)
		return TRUE;
	st = pg_db_stmt(im->d->pg, ST_SEEN_HAS, error);
	if (!st)
		return *ok = FALSE;
	sqlite3_bind_int64(st, 1, rid);
	rc = sqlite3_step(st);
	pg_db_done(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return *ok = pg_db_fail(im->d->pg, error, "read the import state");
	return rc == SQLITE_ROW;
}

static void
stamp(DirImport *im, DirEntry *e, guint64 version)
{
	g_free(e->origin);
	e->origin = g_strdup(im->ctx->site);
	e->usn = ++im->usn;
	e->version = version;
	e->changed = im->now;
}

/* Every live entry has exactly one primary: refuse one the templates left
 * without (SPEC 1). */
static gboolean
has_primary(const DirEntry *e, GError **error)
{
	if (dir_primary(e))
		return TRUE;
	return invalid(error, e->legacy, "no primary (SMTP:) proxy: [site] proxy_templates "
	    "needs an SMTP: template to give entries their address");
}

static gboolean
import_po_entry(DirImport *im, const DirEntry *in, GError **error)
{
	DirStore *d = im->d;
	const DirContext *ctx = im->ctx;
	DirEntry *n, *old = NULL;
	sqlite3_stmt *st;
	gboolean ok, added;
	gint64 rid = 0;
	PgAddr a;

	n = entry_norm(in, FALSE, &a, error);
	if (!n)
		return FALSE;
	if (n->deleted) {
		ok = invalid(error, n->legacy, "a postoffice export lists live entries only: "
		    "an entry it leaves out is deleted");
		goto out;
	}
	if (strncmp(n->legacy, im->lo, strlen(im->lo)) != 0) {
		g_set_error(error, DIR_ERROR, DIR_ERROR_NOT_OURS,
		    "%s: not an entry of postoffice %s, whose export this is", n->legacy,
		    im->po);
		ok = FALSE;
		goto out;
	}
	g_free(n->home_site);
	n->home_site = g_strdup(ctx->site);
	st = pg_db_stmt(d->pg, ST_BY_LEGACY, error);
	if (!st) {
		ok = FALSE;
		goto out;
	}
	pg_db_bind_text(st, 1, n->legacy);
	old = fetch_entry(d, st, &rid, &ok, error);
	if (!ok)
		goto out;
	if (old) {
		if (seen(im, old, rid, &ok, error) || !ok) {
			if (ok)
				ok = invalid(error, n->legacy, "listed twice in one postoffice "
				    "export");
			goto out;
		}
		g_free(n->id);
		n->id = g_strdup(old->id);
		if (n->proxies->len == 0) {
			/* Keep what it has; add what templates give that it lacks. */
			for (guint i = 0; i < old->proxies->len; i++)
				g_ptr_array_add(n->proxies, g_strdup(old->proxies->pdata[i]));
			if (!templates_apply(ctx, &a, n, &added, error)) {
				ok = FALSE;
				goto out;
			}
			if (added) {
				im->st.templated++;
				if (!im->templated_example)
					im->templated_example = g_strdup(n->legacy);
			}
		}
		if (same_state(n, old)) {
			im->st.unchanged++;
			st = pg_db_stmt(d->pg, ST_SEEN_ADD, error);
			if (!st) {
				ok = FALSE;
				goto out;
			}
			sqlite3_bind_int64(st, 1, rid);
			ok = pg_db_run(d->pg, st, error, "record an import");
			goto out;
		}
		if (!(ok = has_primary(n, error)))
			goto out;
		stamp(im, n, old->version + 1);
		ok = state_write(d, n, rid, NULL, error) &&
		    proxies_update(im, old, n, rid, po_clash, NULL, error);
		im->st.changed++;
	} else {
		g_free(n->id);
		n->id = g_strdup_printf("%s:%s:%010" G_GUINT64_FORMAT, ctx->site,
		    im->incarnation, im->usn + 1);
		if (n->proxies->len == 0 && !templates_apply(ctx, &a, n, &added, error)) {
			ok = FALSE;
			goto out;
		}
		if (!(ok = has_primary(n, error)))
			goto out;
		stamp(im, n, 1);
		ok = state_write(d, n, 0, &rid, error) &&
		    proxies_update(im, NULL, n, rid, po_clash, NULL, error);
		im->st.added++;
	}
out:
	dir_entry_free(old);
	dir_entry_free(n);
	return ok;
}

/* Replication import: a clash between origins never refuses; log and count. */
static gboolean
repl_clash(DirImport *im, const char *proxy, gint64 rid, gint64 other, GError **error)
{
	DirEntry *a, *b;
	const DirEntry *keeper;
	gboolean ok;

	a = by_rid(im->d, rid, &ok, error);
	b = ok ? by_rid(im->d, other, &ok, error) : NULL;
	if (a && b) {
		int c = strcmp(a->origin, b->origin);
		keeper = (c < 0 || (c == 0 && a->usn < b->usn)) ? a : b;
		pg_warn(NULL, "directory: proxy %s is claimed by %s (%s:%" G_GUINT64_FORMAT
		    ") and by %s (%s:%" G_GUINT64_FORMAT "); %s keeps it, the lower "
		    "(origin site, USN)", proxy + 5, a->legacy, a->origin, a->usn, b->legacy,
		    b->origin, b->usn, keeper->legacy);
		im->st.proxy_losses++;
	}
	dir_entry_free(a);
	dir_entry_free(b);
	return ok;
}

/* The first of the claimants rids that is an entry of this site, into
 * *local (0: none). */
static gboolean
local_claim(DirImport *im, const GArray *rids, gint64 *local, GError **error)
{
	gboolean ok = TRUE;

	*local = 0;
	for (guint i = 0; ok && !*local && i < rids->len; i++) {
		gint64 r = g_array_index(rids, gint64, i);
		DirEntry *x = by_rid(im->d, r, &ok, error);

		if (x && !x->deleted && entry_is_ours(im->ctx, x))
			*local = r;
		dir_entry_free(x);
	}
	return ok;
}

/* Postoffice import: proxy, which entry rid of this site no longer claims,
 * goes to no peer's entry (a claim stored beside ours lost to it, SPEC 2). */
static gboolean
peer_claims_drop(DirImport *im, const char *proxy, gint64 rid, GError **error)
{
	GArray *rids = g_array_new(FALSE, FALSE, sizeof(gint64));
	gboolean ok = claimants(im->d, proxy + 5, rid, rids, error);

	for (guint i = 0; ok && i < rids->len; i++) {
		gint64 r = g_array_index(rids, gint64, i);
		DirEntry *x = by_rid(im->d, r, &ok, error);

		if (x && !x->deleted && !entry_is_ours(im->ctx, x)) {
			pg_warn(NULL, "directory: proxy %s of this site's postoffice %s is not given "
			    "to %s (site %s): its claim lost to this site's entry", proxy + 5, im->po,
			    x->legacy, x->home_site);
			im->st.proxy_losses++;
			ok = proxy_del(im->d, proxy + 5, r, error);
		}
		dir_entry_free(x);
	}
	g_array_unref(rids);
	return ok;
}

/* Replication import: a peer's claim of a proxy that an entry of this site
 * has is never recorded (this site's postoffice is authoritative); log and
 * count it as a loss. */
static gboolean
repl_bar(DirImport *im, const char *proxy, gint64 rid, gint64 local, GError **error)
{
	DirEntry *a, *b;
	gboolean ok;

	a = by_rid(im->d, rid, &ok, error);
	b = ok ? by_rid(im->d, local, &ok, error) : NULL;
	if (a && b) {
		pg_warn(NULL, "directory: proxy %s is claimed by %s (home %s, in a file from "
		    "site %s) and by %s of this site; %s keeps it: this site's postoffice is "
		    "authoritative for it, and the other claim is not kept", proxy + 5, a->legacy,
		    a->home_site, im->head->from_site, b->legacy, b->legacy);
		im->st.proxy_losses++;
	}
	dir_entry_free(a);
	dir_entry_free(b);
	return ok;
}

/* Replication import: a change about an entry of this site is ignored,
 * counted and, once per import, reported naming the peer (SPEC 2). */
static void
foreign(DirImport *im, const DirEntry *n, const DirEntry *old)
{
	im->st.ignored++;
	if (im->foreign++ == 0)
		im->foreign_example = g_strdup_printf("%s %s, id %s, origin %s",
		    n->deleted ? "a deletion of" : "a change of", old ? old->legacy : n->legacy,
		    n->id, n->origin);
}

static gboolean
import_repl_entry(DirImport *im, const DirEntry *in, GError **error)
{
	DirStore *d = im->d;
	DirEntry *n, *old = NULL;
	sqlite3_stmt *st;
	guint64 seen_usn;
	gboolean ok = TRUE;
	gint64 rid = 0;
	PgAddr a;
	guint64 *max;

	n = entry_norm(in, TRUE, &a, error);
	if (!n)
		return FALSE;
	if (strcmp(n->origin, im->ctx->site) == 0) {
		/* This site is authoritative for its own changes. */
		im->st.ignored++;
		dir_entry_free(n);
		return TRUE;
	}
	max = g_hash_table_lookup(im->origin_max, n->origin);
	if (!max) {
		max = g_new0(guint64, 1);
		g_hash_table_insert(im->origin_max, g_strdup(n->origin), max);
	}
	if (n->usn > *max)
		*max = n->usn;
	if (entry_is_ours(im->ctx, n) || strcmp(n->home_site, im->ctx->site) == 0) {
		/* Seen, and refused: never taken from a peer (SPEC 2). */
		foreign(im, n, NULL);
		goto out;
	}
	st = pg_db_stmt(d->pg, ST_BY_ID, error);
	if (!st) {
		ok = FALSE;
		goto out;
	}
	pg_db_bind_text(st, 1, n->id);
	old = fetch_entry(d, st, &rid, &ok, error);
	if (!ok)
		goto out;
	if (old && entry_is_ours(im->ctx, old)) {
		foreign(im, n, old);
	} else if (!old) {
		guint64 *cached = g_hash_table_lookup(im->seen_before, n->origin);

		if (cached) {
			seen_usn = *cached;
		} else {
			if (!(ok = vector_get(d, n->origin, &seen_usn, error)))
				goto out;
			vector_put(im->seen_before, n->origin, seen_usn);
		}
		if (n->usn <= seen_usn) {
			/* Seen before, deleted and purged since: never resurrect. */
			im->st.ignored++;
			goto out;
		}
		ok = state_write(d, n, 0, &rid, error) &&
		    proxies_update(im, NULL, n, rid, repl_clash, repl_bar, error);
		if (n->deleted)
			im->st.deleted++;
		else
			im->st.added++;
	} else if (state_wins(n, old)) {
		ok = state_write(d, n, rid, NULL, error) &&
		    proxies_update(im, old, n, rid, repl_clash, repl_bar, error);
		if (n->deleted && !old->deleted)
			im->st.deleted++;
		else if (!n->deleted && old->deleted)
			im->st.added++;
		else
			im->st.changed++;
	} else {
		im->st.ignored++;
	}
out:
	dir_entry_free(old);
	dir_entry_free(n);
	return ok;
}

gboolean
dir_import_entry(DirImport *im, const DirEntry *e, GError **error)
{
	gboolean ok;

	if (im->failed)
		return invalid(error, NULL, "the import already failed");
	ok = im->head->kind == SYNC_POSTOFFICE ? import_po_entry(im, e, error) :
	    import_repl_entry(im, e, error);
	if (!ok)
		im->failed = TRUE;
	return ok;
}

/* Postoffice import: the entries the file no longer lists become tombstones. */
static gboolean
sweep(DirImport *im, GError **error)
{
	DirStore *d = im->d;
	sqlite3_stmt *st = pg_db_stmt(d->pg, ST_SWEEP, error);
	GArray *rids = g_array_new(FALSE, FALSE, sizeof(gint64));
	gboolean ok = st != NULL;
	int rc;

	if (st) {
		pg_db_bind_text(st, 1, im->lo);
		pg_db_bind_text(st, 2, im->hi);
		pg_db_bind_text(st, 3, im->ctx->site);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)im->usn_start);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			gint64 r = sqlite3_column_int64(st, 0);
			g_array_append_val(rids, r);
		}
		pg_db_done(st);
		if (rc != SQLITE_DONE)
			ok = pg_db_fail(d->pg, error, "find deleted entries");
	}
	for (guint i = 0; ok && i < rids->len; i++) {
		gint64 rid = g_array_index(rids, gint64, i);
		DirEntry *old = by_rid(d, rid, &ok, error), *e;

		if (!old)
			continue;
		e = dir_entry_copy(old);
		g_ptr_array_set_size(e->proxies, 0);
		g_ptr_array_set_size(e->members, 0);
		g_clear_pointer(&e->target, g_free);
		e->deleted = TRUE;
		stamp(im, e, e->version + 1);
		ok = state_write(d, e, rid, NULL, error) &&
		    proxies_update(im, old, e, rid, po_clash, NULL, error);
		im->st.deleted++;
		dir_entry_free(old);
		dir_entry_free(e);
	}
	g_array_unref(rids);
	return ok;
}

/* Postoffice import: a proxy this import gave that another live entry still
 * claims refuses the whole import, naming both. */
static gboolean
clashes_check(DirImport *im, GError **error)
{
	DirStore *d = im->d;
	gboolean ok = TRUE;

	for (guint i = 0; ok && i < im->clashes->len; i++) {
		Clash *c = &g_array_index(im->clashes, Clash, i);
		sqlite3_stmt *st = pg_db_stmt(d->pg, ST_PROXY_HAS, error);
		DirEntry *a, *b;
		int rc;

		if (!st)
			return FALSE;
		pg_db_bind_text(st, 1, c->key);
		sqlite3_bind_int64(st, 2, c->other);
		rc = sqlite3_step(st);
		pg_db_done(st);
		if (rc == SQLITE_DONE)
			continue;  /* the other entry was deleted by this import */
		if (rc != SQLITE_ROW)
			return pg_db_fail(d->pg, error, "read proxy claims");
		a = by_rid(d, c->rid, &ok, error);
		b = ok ? by_rid(d, c->other, &ok, error) : NULL;
		if (ok && a && b && !entry_is_ours(im->ctx, b)) {
			/* A peer's entry: this postoffice is authoritative, its
			 * claim goes (and is not given back later, SPEC 2). */
			pg_warn(NULL, "directory: proxy %s is claimed by %s of this site and by "
			    "%s (site %s); %s keeps it: this site's postoffice is "
			    "authoritative for it, and the other claim is not kept", c->key,
			    a->legacy, b->legacy, b->home_site, a->legacy);
			im->st.proxy_losses++;
			ok = proxy_del(d, c->key, c->other, error);
		} else if (ok && a && b) {
			g_set_error(error, DIR_ERROR, DIR_ERROR_CLASH,
			    "proxy clash: %s would be given to %s, but %s (site %s) already "
			    "has it; nothing was imported", c->proxy, a->legacy, b->legacy,
			    b->home_site);
			ok = FALSE;
		}
		dir_entry_free(a);
		dir_entry_free(b);
	}
	return ok;
}

/* Replication import: this site's vector and the sender's reported one. */
static gboolean
vectors_update(DirImport *im, GError **error)
{
	DirStore *d = im->d;
	const SyncDoc *h = im->head;
	GHashTableIter it;
	gpointer k, v;

	g_hash_table_iter_init(&it, im->origin_max);
	while (g_hash_table_iter_next(&it, &k, &v)) {
		sqlite3_stmt *st = pg_db_stmt(d->pg, ST_VEC_MAX, error);
		if (!st)
			return FALSE;
		pg_db_bind_text(st, 1, k);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)*(guint64 *)v);
		if (!pg_db_run(d->pg, st, error, "write the vector"))
			return FALSE;
	}
	if (!h->vector)
		return TRUE;
	g_hash_table_iter_init(&it, h->vector);
	while (g_hash_table_iter_next(&it, &k, &v)) {
		guint64 usn = *(guint64 *)v;
		sqlite3_stmt *st;

		if (!site_valid(k) || usn > G_MAXINT64)
			return invalid(error, NULL, "the vector names \"%s\", not a site name",
			    (const char *)k);
		if (strcmp(k, im->ctx->site) == 0) {
			if (usn > im->usn) {
				/* Our counter went back (a restored database): never
				 * reuse a USN peers have seen. */
				pg_warn(NULL, "directory: site %s reports having seen USN %"
				    G_GUINT64_FORMAT " of this site, which is only at %"
				    G_GUINT64_FORMAT "; continuing after it", h->from_site, usn,
				    im->usn);
				im->usn = usn;
			}
		} else {
			st = pg_db_stmt(d->pg, ST_VEC_MAX, error);
			if (!st)
				return FALSE;
			pg_db_bind_text(st, 1, k);
			sqlite3_bind_int64(st, 2, (sqlite3_int64)usn);
			if (!pg_db_run(d->pg, st, error, "write the vector"))
				return FALSE;
		}
		st = pg_db_stmt(d->pg, ST_PEER_MAX, error);
		if (!st)
			return FALSE;
		pg_db_bind_text(st, 1, h->from_site);
		pg_db_bind_text(st, 2, k);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)usn);
		if (!pg_db_run(d->pg, st, error, "write the peer's vector"))
			return FALSE;
	}
	return TRUE;
}

gboolean
dir_import_commit(DirImport *im, DirImportStats *stats, GError **error)
{
	DirStore *d = im->d;
	sqlite3_stmt *st;
	gboolean ok = !im->failed, changed = FALSE;
	char usn[32];

	if (!ok)
		invalid(error, NULL, "the import already failed");
	if (ok && im->head->kind == SYNC_POSTOFFICE)
		ok = sweep(im, error) && clashes_check(im, error);
	if (ok && im->head->kind == SYNC_REPLICATION)
		ok = vectors_update(im, error);
	if (ok && im->ctx->tombstone_lifetime > 0) {
		st = pg_db_stmt(d->pg, ST_PURGE, error);
		ok = st != NULL;
		if (ok) {
			sqlite3_bind_int64(st, 1, im->now - im->ctx->tombstone_lifetime);
			ok = pg_db_run(d->pg, st, error, "purge tombstones");
			if (ok)
				im->st.purged = (guint)sqlite3_changes(d->db);
			if (im->st.purged)
				d->dirty = TRUE;
		}
	}
	/* Entries or proxies changed: a new generation, and the map of the
	 * old one no longer answers. */
	changed = ok && d->dirty;
	if (changed)
		ok = generation_bump(d, error);
	g_snprintf(usn, sizeof usn, "%" G_GUINT64_FORMAT, im->usn);
	ok = ok && meta_set(d, "usn", usn, error) && meta_set(d, "site", im->ctx->site, error);
	if (ok && !pg_db_commit(d->pg, "commit", error))
		ok = FALSE;
	if (ok) {
		d->busy = NULL;
		pmap_after_import(d, changed);
		if (im->foreign)
			pg_warn(NULL, "directory: site %s sent %u change%s about entries of this "
			    "site (first: %s): only this site's postoffice exports change them; "
			    "ignored", im->head->from_site, im->foreign, im->foreign == 1 ? "" :
			    "s", im->foreign_example);
		if (im->st.templated)
			pg_info(NULL, "directory: proxy templates changed: %u entr%s of %s got "
			    "the template addresses they lacked (first: %s); existing proxies "
			    "and primaries are kept", im->st.templated,
			    im->st.templated == 1 ? "y" : "ies", im->po, im->templated_example);
		if (stats)
			*stats = im->st;
	}
	dir_import_abort(im);
	return ok;
}

gboolean
dir_import(DirStore *d, const DirContext *ctx, const SyncDoc *doc, DirImportStats *stats,
    GError **error)
{
	DirImport *im = dir_import_begin(d, ctx, doc, error);

	if (!im)
		return FALSE;
	for (guint i = 0; i < doc->entries->len; i++) {
		if (!dir_import_entry(im, doc->entries->pdata[i], error)) {
			dir_import_abort(im);
			return FALSE;
		}
	}
	return dir_import_commit(im, stats, error);
}

/* ------------------------------------------------------------ exporting */

/* The rid of the live entry that effectively owns key (0: none). */
static gboolean
key_owner(DirStore *d, const char *key, gint64 *rid, GError **error)
{
	sqlite3_stmt *st = pg_db_stmt(d->pg, ST_BRIEF_KEY, error);
	int rc;

	*rid = 0;
	if (!st)
		return FALSE;
	pg_db_bind_text(st, 1, key);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*rid = sqlite3_column_int64(st, 0);
	pg_db_done(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE || pg_db_fail(d->pg, error, "read a proxy");
}

static gboolean
collect(const DirEntry *e, gpointer data, GError **error)
{
	g_ptr_array_add(((SyncDoc *)data)->entries, dir_entry_copy(e));
	return TRUE;
}

SyncDoc *
dir_export_each(DirStore *d, const DirContext *ctx, SyncKind kind, const char *arg,
    DirEntryFunc func, gpointer data, GError **error)
{
	char net[ADDR_PART_MAX + 1], po[ADDR_PART_MAX + 1];
	SyncDoc *head = sync_doc_new(kind);
	sqlite3_stmt *st = NULL;
	GError *e = NULL;
	gboolean ok = TRUE;
	int rc = SQLITE_DONE;

	if (d->busy) {
		g_set_error(error, DIR_ERROR, DIR_ERROR_IO, "%s: an import is under way",
		    d->path);
		goto fail;
	}
	switch (kind) {
	case SYNC_GAL:
		if (!ctx || !arg || !addr_parse_po(arg, strlen(arg), net, po, &e)) {
			invalid(error, NULL, "postoffice: %s", e ? e->message :
			    "a global address list is made for a postoffice NET/PO");
			g_clear_error(&e);
			goto fail;
		}
		head->postoffice = g_strdup_printf("%s/%s", net, po);
		if (!ctx_po_find(ctx, head->postoffice)) {
			g_set_error(error, DIR_ERROR, DIR_ERROR_NOT_OURS,
			    "postoffice %s is not served by site %s (no [postoffice %s])",
			    head->postoffice, ctx->site, head->postoffice);
			goto fail;
		}
		break;
	case SYNC_REPLICATION:
		if (!ctx || !ctx_check(d, ctx, error))
			goto fail;
		if (!site_valid(arg)) {
			invalid(error, NULL, "\"%s\" is not a site name", arg ? arg : "");
			goto fail;
		}
		if (strcmp(arg, ctx->site) == 0) {
			invalid(error, NULL, "%s is this site: replication files are for peers",
			    arg);
			goto fail;
		}
		head->from_site = g_strdup(ctx->site);
		head->for_site = g_strdup(arg);
		break;
	case SYNC_CANONICAL:
		break;
	default:
		invalid(error, NULL, "a %s file is not exported by the gateway",
		    sync_kind_name(kind));
		goto fail;
	}
	/* One snapshot for the whole export. */
	if (!pg_db_exec(d->pg, "SAVEPOINT export", error))
		goto fail;
	if (kind == SYNC_REPLICATION) {
		guint64 usn;

		ok = vector_load(d, head->vector, error) && meta_usn(d, &usn, error);
		if (ok)
			vector_put(head->vector, ctx->site, usn);
	}
	if (ok)
		st = pg_db_stmt(d->pg, kind == SYNC_GAL ? ST_LIST : kind == SYNC_CANONICAL ? ST_CANON :
		    ST_REPL, error);
	if (!st)
		ok = FALSE;
	if (ok) {
		if (kind == SYNC_GAL)
			sqlite3_bind_int(st, 1, -1);
		else if (kind == SYNC_REPLICATION)
			pg_db_bind_text(st, 1, arg);
	}
	while (ok && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		gint64 rid, owner;
		DirEntry *x = row_entry(st, &rid);

		if (kind == SYNC_GAL) {
			const char *primary = dir_primary(x);
			char *keep = NULL;

			if (primary && !key_owner(d, primary + 5, &owner, error)) {
				ok = FALSE;
			} else if (primary && owner == rid) {
				keep = g_strdup(primary);
			}
			g_ptr_array_set_size(x->proxies, 0);
			if (keep)
				g_ptr_array_add(x->proxies, keep);
			g_ptr_array_set_size(x->members, 0);
		}
		if (kind != SYNC_REPLICATION) {
			g_clear_pointer(&x->origin, g_free);
			x->usn = x->version = 0;
			x->changed = 0;
		}
		if (ok && !func(x, data, error))
			ok = FALSE;
		dir_entry_free(x);
		if (!ok)
			break;
	}
	if (st) {
		if (ok && rc != SQLITE_DONE)
			ok = pg_db_fail(d->pg, error, "export");
		pg_db_done(st);
	}
	sqlite3_exec(d->db, "RELEASE export", NULL, NULL, NULL);
	if (ok)
		return head;
fail:
	sync_doc_free(head);
	return NULL;
}

static SyncDoc *
export_doc(DirStore *d, const DirContext *ctx, SyncKind kind, const char *arg,
    GError **error)
{
	GPtrArray *entries = g_ptr_array_new_with_free_func((GDestroyNotify)dir_entry_free);
	SyncDoc tmp = { .entries = entries }, *head;

	head = dir_export_each(d, ctx, kind, arg, collect, &tmp, error);
	if (!head) {
		g_ptr_array_unref(entries);
		return NULL;
	}
	g_ptr_array_unref(head->entries);
	head->entries = entries;
	return head;
}

SyncDoc *
dir_export_gal(DirStore *d, const DirContext *ctx, const char *postoffice, GError **error)
{
	return export_doc(d, ctx, SYNC_GAL, postoffice, error);
}

SyncDoc *
dir_export_replication(DirStore *d, const DirContext *ctx, const char *for_site,
    GError **error)
{
	return export_doc(d, ctx, SYNC_REPLICATION, for_site, error);
}

SyncDoc *
dir_export_canonical(DirStore *d, GError **error)
{
	return export_doc(d, NULL, SYNC_CANONICAL, NULL, error);
}

/* ------------------------------------------------------------- reading */

/* Reads map the database (PRAGMA mmap_size): a lookup then costs memory
 * accesses, not a read(2) per page beyond the page cache.  An import turns
 * it off again, so that its peak RSS counts only the page cache, not the
 * pages of a large database it touched (docs/performance.md).  Changed only
 * outside transactions. */
#define DIR_MMAP_SIZE "2147418112"   /* SQLite's default ceiling, 2 GB - 64 KB */

static gboolean
map_set(DirStore *d, gboolean on, GError **error)
{
	if (d->mapped == on)
		return TRUE;
	if (!pg_db_exec(d->pg, on ? "PRAGMA mmap_size=" DIR_MMAP_SIZE : "PRAGMA mmap_size=0", error))
		return FALSE;
	d->mapped = on;
	return TRUE;
}

/* ----------------------------------------------------------- the proxy map */

static gboolean
meta_generation(DirStore *d, guint64 *gen, GError **error)
{
	gboolean ok;
	char *v = meta_get(d, "generation", &ok, error);

	*gen = v ? g_ascii_strtoull(v, NULL, 10) : 0;
	g_free(v);
	return ok;
}

static gboolean
generation_bump(DirStore *d, GError **error)
{
	guint64 gen;
	char v[32];

	if (!meta_generation(d, &gen, error))
		return FALSE;
	g_snprintf(v, sizeof v, "%" G_GUINT64_FORMAT, gen + 1);
	return meta_set(d, "generation", v, error);
}

/* The database's incarnation; it never changes once made (NULL: no import yet). */
static const char *
incarnation(DirStore *d)
{
	gboolean ok;

	if (!d->incarnation)
		d->incarnation = meta_get(d, "incarnation", &ok, NULL);
	return d->incarnation;
}

/* Why the map is not used, logged once (until the reason changes). */
static void
pmap_note(DirStore *d, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void
pmap_note(DirStore *d, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	if (d->pmap_note && strcmp(d->pmap_note, msg) == 0) {
		g_free(msg);
		return;
	}
	pg_debug(NULL, "directory: %s; routing reads the database", msg);
	g_free(d->pmap_note);
	d->pmap_note = msg;
}

static gboolean
same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	    a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Map the map file again when it is another file than the one mapped (a
 * rebuild renames a new one into place).  A file found unusable is warned
 * about once, and left alone until it changes. */
static void
pmap_refresh(DirStore *d)
{
	struct stat st;
	GError *e = NULL;

	if (stat(d->pmap_path, &st) != 0) {
		g_clear_pointer(&d->pmap, dir_map_close);
		d->pmap_seen = FALSE;
		return;
	}
	if (d->pmap_seen && same_file(&st, &d->pmap_st))
		return;
	g_clear_pointer(&d->pmap, dir_map_close);
	d->pmap_st = st;
	d->pmap_seen = TRUE;
	d->pmap = dir_map_open(d->pmap_path, &e);
	if (!d->pmap) {
		pg_warn(NULL, "directory: ignoring the proxy map: %s (the next import rebuilds "
		    "it)", e->message);
		g_error_free(e);
	}
}

/* Whether the map answers SMTP keys in the read batch open: it holds the
 * generation of the batch's snapshot.  Decided once per batch, at its first
 * SMTP key. */
static gboolean
pmap_current(DirStore *d)
{
	const char *inc;
	guint64 gen;

	if (d->pmap_state != PMAP_UNKNOWN)
		return d->pmap_state == PMAP_ON;
	d->pmap_state = PMAP_OFF;
	if (d->reading == 0 || d->busy)
		return FALSE;
	pmap_refresh(d);
	if (!d->pmap) {
		pmap_note(d, "no usable proxy map %s", d->pmap_path);
		return FALSE;
	}
	if (!meta_generation(d, &gen, NULL))
		return FALSE;   /* the database fails: the lookup will say so */
	inc = incarnation(d);
	if (!inc || strcmp(inc, dir_map_incarnation(d->pmap)) != 0) {
		pmap_note(d, "the proxy map %s was built from another database", d->pmap_path);
		return FALSE;
	}
	if (gen != dir_map_generation(d->pmap)) {
		pmap_note(d, "the proxy map %s holds generation %" G_GUINT64_FORMAT
		    ", the directory is at %" G_GUINT64_FORMAT, d->pmap_path,
		    dir_map_generation(d->pmap), gen);
		return FALSE;
	}
	g_clear_pointer(&d->pmap_note, g_free);
	d->pmap_state = PMAP_ON;
	return TRUE;
}

/* A record of the map broke the format: never use that file again, and
 * remove it (when it still is that file) so that the next import makes a
 * new one. */
static void
pmap_corrupt(DirStore *d)
{
	struct stat st;

	pg_warn(NULL, "directory: ignoring the proxy map %s: a record is corrupt (the next "
	    "import rebuilds it)", d->pmap_path);
	g_clear_pointer(&d->pmap, dir_map_close);
	d->pmap_state = PMAP_OFF;
	if (d->pmap_seen && stat(d->pmap_path, &st) == 0 && same_file(&st, &d->pmap_st))
		unlink(d->pmap_path);
}

/* Build the map from one snapshot: the effective owner of every key.  Not
 * when the map already holds the database's generation, unless force. */
static gboolean
pmap_build(DirStore *d, gboolean force, GError **error)
{
	DirMapWriter *w;
	sqlite3_stmt *st = NULL;
	GString *prev = g_string_new(NULL);
	gboolean ok, have_prev = FALSE, skip = FALSE;
	char have_inc[17], *inc = NULL;
	guint64 gen = 0, have_gen = 0;
	struct stat dbst;
	int rc = SQLITE_DONE, mode = 0644;
	gint64 t0 = g_get_monotonic_time(), keys = 0;

	if (d->busy || d->reading) {
		g_set_error(error, DIR_ERROR, DIR_ERROR_IO, "%s: %s", d->path, d->busy ?
		    "an import is under way" : "a read batch is open (dir_read_end)");
		return FALSE;
	}
	/* The scan reads through the page cache, not a mapping of the whole
	 * database: an import's peak RSS stays what it was. */
	if (!map_set(d, FALSE, error))
		return FALSE;
	if (stat(d->path, &dbst) == 0)
		mode = (int)(dbst.st_mode & 0666);
	/* Locked before the snapshot is taken: a map published by an earlier
	 * writer is never replaced by one of an older snapshot. */
	w = dir_map_writer_begin(d->pmap_path, mode, error);
	if (!w)
		return FALSE;
	ok = pg_db_exec(d->pg, "BEGIN", error);
	if (!ok) {
		dir_map_writer_abort(w);
		return FALSE;
	}
	ok = meta_generation(d, &gen, error);
	if (ok)
		inc = meta_get(d, "incarnation", &ok, error);
	if (ok && !force && inc && dir_map_peek(d->pmap_path, &have_gen, have_inc, NULL) &&
	    have_gen == gen && strcmp(have_inc, inc) == 0)
		skip = TRUE;
	if (ok && !skip) {
		st = pg_db_stmt(d->pg, ST_MAP_SCAN, error);
		ok = st != NULL;
	}
	while (st && ok && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *key = pg_db_col_text(st, 0);
		gsize klen = (gsize)sqlite3_column_bytes(st, 0);
		DirMapRow row;

		if (!key || (have_prev && prev->len == klen && memcmp(prev->str, key, klen) == 0))
			continue;   /* a claim that loses to the row before */
		g_string_truncate(prev, 0);
		g_string_append_len(prev, key, (gssize)klen);
		have_prev = TRUE;
		row.key = key;
		row.rid = sqlite3_column_int64(st, 1);
		row.type = sqlite3_column_int(st, 2);
		row.legacy = pg_db_col_text(st, 3);
		row.home_site = pg_db_col_text(st, 4);
		row.target = pg_db_col_text(st, 5);
		row.proxies = pg_db_col_text(st, 6);
		if (!row.legacy)
			row.legacy = "";
		if (!row.home_site)
			row.home_site = "";
		ok = dir_map_writer_add(w, &row, error);
		keys++;
	}
	if (st) {
		if (ok && rc != SQLITE_DONE)
			ok = pg_db_fail(d->pg, error, "read the proxies");
		pg_db_done(st);
	}
	sqlite3_exec(d->db, "COMMIT", NULL, NULL, NULL);
	if (ok && !skip) {
		ok = dir_map_writer_commit(w, gen, inc ? inc : "", error);
		if (ok)
			pg_debug(NULL, "directory: proxy map %s: generation %" G_GUINT64_FORMAT
			    ", %" G_GINT64_FORMAT " keys, in %.2f s", d->pmap_path, gen, keys,
			    (double)(g_get_monotonic_time() - t0) / G_USEC_PER_SEC);
	} else {
		dir_map_writer_abort(w);
	}
	g_string_free(prev, TRUE);
	g_free(inc);
	return ok;
}

/* After a committed import: a new map when the import changed entries or
 * proxies, or when the map does not hold the database's generation (none,
 * corrupt, or older).  The database is the truth: a failure only warns. */
static void
pmap_after_import(DirStore *d, gboolean changed)
{
	GError *e = NULL;

	if (d->pmap_defer) {
		d->pmap_owed = TRUE;
		d->pmap_changed |= changed;
		return;
	}
	if (pmap_build(d, changed, &e))
		return;
	pg_warn(NULL, "directory: the proxy map was not rebuilt, so routing reads the "
	    "database: %s", e->message);
	g_error_free(e);
	if (changed)
		unlink(d->pmap_path);
}

void
dir_map_defer(DirStore *d, gboolean defer)
{
	d->pmap_defer = defer;
	if (defer || !d->pmap_owed)
		return;
	d->pmap_owed = FALSE;
	pmap_after_import(d, d->pmap_changed);
	d->pmap_changed = FALSE;
}

gboolean
dir_rebuild_map(DirStore *d, gboolean force, GError **error)
{
	return pmap_build(d, force, error);
}

gboolean
dir_read_mapped(DirStore *d)
{
	return d->reading > 0 && !d->busy && pmap_current(d);
}

/* ------------------------------------------------------------ read batches */

gboolean
dir_read_begin(DirStore *d, GError **error)
{
	sqlite3_stmt *st;

	if (d->reading++ > 0 || d->busy)
		return TRUE;   /* inside a batch or an import already */
	if (!map_set(d, TRUE, error)) {
		d->reading--;
		return FALSE;
	}
	st = pg_db_stmt(d->pg, ST_BEGIN, error);
	if (!st || !pg_db_run(d->pg, st, error, "begin reading")) {
		d->reading--;
		return FALSE;
	}
	d->pmap_state = PMAP_UNKNOWN;
	return TRUE;
}

void
dir_read_end(DirStore *d)
{
	sqlite3_stmt *st;

	if (d->reading == 0 || --d->reading > 0 || d->busy)
		return;
	d->pmap_state = PMAP_UNKNOWN;
	st = pg_db_stmt(d->pg, ST_COMMIT, NULL);
	if (st)
		pg_db_run(d->pg, st, NULL, "end reading");
}

gboolean
dir_address_parse(const char *address, PgAddr *out, GError **error)
{
	GError *e = NULL;
	gboolean ok;

	if (!address) {
		memset(out, 0, sizeof *out);
		return invalid(error, NULL, "no address");
	}
	if (!smtp_prefixed(address) && strchr(address, '@')) {
		memset(out, 0, sizeof *out);
		out->kind = ADDR_KIND_SMTP;
		/* A quoted local part is valid syntax; no proxy has one. */
		ok = addr_parse_smtp_quoted(address, strlen(address), out->smtp, &e);
	} else {
		ok = addr_parse(address, strlen(address), out, &e);
	}
	if (!ok) {
		g_set_error_literal(error, DIR_ERROR, DIR_ERROR_INVALID, e->message);
		g_error_free(e);
	}
	return ok;
}

DirEntry *
dir_lookup_addr(DirStore *d, const PgAddr *a, GError **error)
{
	char legacy[ADDR_LEGACY_MAX + 1];
	sqlite3_stmt *st;
	gboolean ok;

	st = pg_db_stmt(d->pg, a->kind == ADDR_KIND_SMTP ? ST_OWNER : ST_BY_LEGACY, error);
	if (!st)
		return NULL;
	if (a->kind == ADDR_KIND_SMTP) {
		pg_db_bind_text(st, 1, a->smtp);
	} else {
		g_snprintf(legacy, sizeof legacy, "%s/%s/%s", a->net, a->po, a->mailbox);
		pg_db_bind_text(st, 1, legacy);
	}
	return fetch_entry(d, st, NULL, &ok, error);
}

DirEntry *
dir_lookup(DirStore *d, const char *address, GError **error)
{
	PgAddr a;

	if (!dir_address_parse(address, &a, error))
		return NULL;
	return dir_lookup_addr(d, &a, error);
}

DirEntry *
dir_get(DirStore *d, const char *id, GError **error)
{
	sqlite3_stmt *st = pg_db_stmt(d->pg, ST_BY_ID, error);
	gboolean ok;

	if (!st)
		return NULL;
	pg_db_bind_text(st, 1, id);
	return fetch_entry(d, st, NULL, &ok, error);
}

char *
dir_proxy_owner(DirStore *d, const char *address, GError **error)
{
	char *key = dir_proxy_key(address, error), *id = NULL;
	sqlite3_stmt *st;
	int rc;

	if (!key)
		return NULL;
	st = pg_db_stmt(d->pg, ST_OWNER, error);
	if (st) {
		pg_db_bind_text(st, 1, key);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			id = g_strdup(pg_db_col_text(st, 1));
		else if (rc != SQLITE_DONE)
			pg_db_fail(d->pg, error, "read a proxy");
		pg_db_done(st);
	}
	g_free(key);
	return id;
}

gboolean
dir_brief(DirStore *d, const PgAddr *a, DirBrief *out, gboolean *found, GError **error)
{
	char legacy[ADDR_LEGACY_MAX + 1];
	sqlite3_stmt *st;
	const char *t;
	int rc;

	*found = FALSE;
	if (a->kind == ADDR_KIND_SMTP && d->reading > 0 && !d->busy && pmap_current(d)) {
		switch (dir_map_lookup(d->pmap, a->smtp, strlen(a->smtp), out)) {
		case DIR_MAP_FOUND:
			*found = TRUE;
			return TRUE;
		case DIR_MAP_NONE:
			return TRUE;
		case DIR_MAP_CORRUPT:
			pmap_corrupt(d);
			break;   /* the database answers */
		}
	}
	st = pg_db_stmt(d->pg, a->kind == ADDR_KIND_SMTP ? ST_BRIEF_KEY : ST_BRIEF_LEGACY, error);
	if (!st)
		return FALSE;
	if (a->kind == ADDR_KIND_SMTP) {
		pg_db_bind_text(st, 1, a->smtp);
	} else {
		g_snprintf(legacy, sizeof legacy, "%s/%s/%s", a->net, a->po, a->mailbox);
		pg_db_bind_text(st, 1, legacy);
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*found = TRUE;
		out->rid = sqlite3_column_int64(st, 0);
		out->type = (DirType)sqlite3_column_int(st, 1);
		g_strlcpy(out->legacy, pg_db_col_text(st, 2), sizeof out->legacy);
		g_strlcpy(out->home_site, pg_db_col_text(st, 3), sizeof out->home_site);
		t = pg_db_col_text(st, 4);
		g_strlcpy(out->target, t ? t : "", sizeof out->target);
		t = pg_db_col_text(st, 5);
		out->proxies_known = t && g_strlcpy(out->proxies, t, sizeof out->proxies) <
		    sizeof out->proxies;
		if (!out->proxies_known)
			out->proxies[0] = '\0';
	}
	pg_db_done(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE || pg_db_fail(d->pg, error, "read an entry");
}

DirEntry *
dir_brief_entry(DirStore *d, const DirBrief *b, GError **error)
{
	gboolean ok;
	DirEntry *e = by_rid(d, b->rid, &ok, error);

	if (e && e->deleted)
		g_clear_pointer(&e, dir_entry_free);
	return e;
}

GPtrArray *
dir_list(DirStore *d, int type, GError **error)
{
	sqlite3_stmt *st;
	GPtrArray *out;
	GArray *rids;
	gboolean ok = TRUE;
	int rc;

	/* One snapshot for the entries and their claims. */
	if (!pg_db_exec(d->pg, "SAVEPOINT list", error))
		return NULL;
	if (!(st = pg_db_stmt(d->pg, ST_LIST, error))) {
		sqlite3_exec(d->db, "RELEASE list", NULL, NULL, NULL);
		return NULL;
	}
	out = g_ptr_array_new_with_free_func((GDestroyNotify)dir_entry_free);
	rids = g_array_new(FALSE, FALSE, sizeof(gint64));
	sqlite3_bind_int(st, 1, type);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		gint64 rid;

		g_ptr_array_add(out, row_entry(st, &rid));
		g_array_append_val(rids, rid);
	}
	pg_db_done(st);
	if (rc != SQLITE_DONE)
		ok = pg_db_fail(d->pg, error, "list entries");
	/* A claim lost in a clash is left out, as the GAL leaves it out: the
	 * list shows what routing sees (the loser of a primary shows none). */
	for (guint i = 0; ok && i < out->len; i++) {
		DirEntry *x = out->pdata[i];

		for (guint j = x->proxies->len; ok && j-- > 0; ) {
			gint64 owner;

			ok = key_owner(d, (const char *)x->proxies->pdata[j] + 5, &owner, error);
			if (ok && owner != g_array_index(rids, gint64, i))
				g_ptr_array_remove_index(x->proxies, j);
		}
	}
	sqlite3_exec(d->db, "RELEASE list", NULL, NULL, NULL);
	g_array_unref(rids);
	if (!ok) {
		g_ptr_array_unref(out);
		return NULL;
	}
	return out;
}

static gboolean
count(DirStore *d, int which, guint *out, GError **error)
{
	sqlite3_stmt *st = pg_db_stmt(d->pg, which, error);
	int rc;

	if (!st)
		return FALSE;
	rc = sqlite3_step(st);
	*out = rc == SQLITE_ROW ? (guint)sqlite3_column_int64(st, 0) : 0;
	pg_db_done(st);
	return rc == SQLITE_ROW || pg_db_fail(d->pg, error, "count");
}

gboolean
dir_stats(DirStore *d, DirStats *out, GError **error)
{
	sqlite3_stmt *st;
	gboolean ok = TRUE;
	int rc = SQLITE_DONE;

	memset(out, 0, sizeof *out);
	out->vector = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	if (!pg_db_exec(d->pg, "SAVEPOINT stats", error))
		goto fail;
	st = pg_db_stmt(d->pg, ST_COUNTS, error);
	ok = st != NULL;
	while (ok && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		guint n = (guint)sqlite3_column_int64(st, 2);
		if (sqlite3_column_int(st, 1))
			out->tombstones += n;
		else if (sqlite3_column_int(st, 0) == DIR_MAILBOX)
			out->mailboxes += n;
		else if (sqlite3_column_int(st, 0) == DIR_CUSTOM)
			out->customs += n;
		else
			out->lists += n;
	}
	if (st) {
		if (rc != SQLITE_DONE)
			ok = pg_db_fail(d->pg, error, "count entries");
		pg_db_done(st);
	}
	ok = ok && count(d, ST_NPROXIES, &out->proxies, error) &&
	    count(d, ST_LOSSES, &out->proxy_losses, error) &&
	    meta_usn(d, &out->usn, error) && vector_load(d, out->vector, error) &&
	    meta_generation(d, &out->generation, error);
	if (ok) {
		const char *inc = incarnation(d);
		char have_inc[17];
		guint64 have_gen;

		out->map_current = inc && dir_map_peek(d->pmap_path, &have_gen, have_inc, NULL) &&
		    have_gen == out->generation && strcmp(have_inc, inc) == 0;
	}
	sqlite3_exec(d->db, "RELEASE stats", NULL, NULL, NULL);
	if (ok)
		return TRUE;
fail:
	dir_stats_clear(out);
	return FALSE;
}

void
dir_stats_clear(DirStats *s)
{
	if (s->vector)
		g_hash_table_unref(s->vector);
	s->vector = NULL;
}
