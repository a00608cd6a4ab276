/* dir_store.c - the directory store's database (see dir_store.h, dir_store_int.h).
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
 */
#include "config.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dir_store_int.h"
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

/* ---------------------------------------------------------------- basics */

gint64
ds_clock_now(DirStore *d)
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

char *
ds_join(const GPtrArray *a)
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
DirEntry *
ds_row_entry(sqlite3_stmt *st, gint64 *rid)
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
DirEntry *
ds_fetch_entry(DirStore *d, sqlite3_stmt *st, gint64 *rid, gboolean *ok, GError **error)
{
	DirEntry *e = NULL;
	int rc = sqlite3_step(st);

	*ok = TRUE;
	if (rc == SQLITE_ROW)
		e = ds_row_entry(st, rid);
	else if (rc != SQLITE_DONE)
		*ok = pg_db_fail(d->pg, error, "read an entry");
	pg_db_done(st);
	return e;
}

char *
ds_meta_get(DirStore *d, const char *key, gboolean *ok, GError **error)
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

gboolean
ds_meta_set(DirStore *d, const char *key, const char *value, GError **error)
{
	sqlite3_stmt *st = pg_db_stmt(d->pg, ST_META_SET, error);

	if (!st)
		return FALSE;
	pg_db_bind_text(st, 1, key);
	pg_db_bind_text(st, 2, value);
	return pg_db_run(d->pg, st, error, "write meta");
}

gboolean
ds_meta_usn(DirStore *d, guint64 *usn, GError **error)
{
	gboolean ok;
	char *v = ds_meta_get(d, "usn", &ok, error);

	*usn = v ? g_ascii_strtoull(v, NULL, 10) : 0;
	g_free(v);
	return ok;
}

/* The highest USN of origin site this site has seen (0: none). */
gboolean
ds_vector_get(DirStore *d, const char *site, guint64 *usn, GError **error)
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

void
ds_vector_put(GHashTable *v, const char *site, guint64 usn)
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
gboolean
ds_vector_load(DirStore *d, GHashTable *v, GError **error)
{
	sqlite3_stmt *st = pg_db_stmt(d->pg, ST_VEC_ALL, error);
	gboolean ok;
	guint64 usn;
	char *site;
	int rc;

	if (!st)
		return FALSE;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		ds_vector_put(v, pg_db_col_text(st, 0), (guint64)sqlite3_column_int64(st, 1));
	pg_db_done(st);
	if (rc != SQLITE_DONE)
		return pg_db_fail(d->pg, error, "read the vector");
	site = ds_meta_get(d, "site", &ok, error);
	if (ok && site && ds_meta_usn(d, &usn, error))
		ds_vector_put(v, site, usn);
	else if (ok && site)
		ok = FALSE;
	g_free(site);
	return ok;
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
		ds_pmap_after_import(d, TRUE);
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
