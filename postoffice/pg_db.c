/* pg_db.c - one of postgate's SQLite databases (see pg_db.h). */
#include "config.h"

#include <string.h>

#include "fault.h"
#include "pg_db.h"

#define PG_DB_BUSY_MS 10000     /* how long a statement waits for a lock */
#define PG_DB_WAL_TRIES 100     /* switching a new file to WAL: 100 x 100 ms */
#define PG_DB_BATCH_MAX 256     /* transactions one batch holds at most */
#define PG_DB_BATCH_US 200000   /* and for at most 200 ms (the listener waits meanwhile) */

struct PgDb {
	sqlite3 *db;
	char *name;
	const PgDbSpec *spec;
	sqlite3_stmt **st;      /* spec->n_stmts, prepared on first use */
	GHashTable *cached;     /* SQL text (by address) -> sqlite3_stmt *, pg_db_cached */
	gboolean batch;         /* in pg_db_batch_begin: transactions are savepoints */
	guint nest;             /* savepoints open in the batch */
	guint batched;          /* transactions the batch holds */
	gint64 batch_start;     /* g_get_monotonic_time() at its BEGIN */
};

sqlite3 *
pg_db_handle(PgDb *db)
{
	return db->db;
}

const char *
pg_db_name(const PgDb *db)
{
	return db->name;
}

gboolean
pg_db_fail(PgDb *db, GError **error, const char *what)
{
	g_set_error(error, db->spec->domain(), db->spec->io_code, "%s: %s: %s", db->name, what,
	    sqlite3_errmsg(db->db));
	return FALSE;
}

gboolean
pg_db_exec(PgDb *db, const char *sql, GError **error)
{
	char *msg = NULL;

	if (sqlite3_exec(db->db, sql, NULL, NULL, &msg) == SQLITE_OK)
		return TRUE;
	g_set_error(error, db->spec->domain(), db->spec->io_code, "%s: %s", db->name,
	    msg ? msg : sqlite3_errmsg(db->db));
	sqlite3_free(msg);
	return FALSE;
}

sqlite3_stmt *
pg_db_stmt(PgDb *db, int which, GError **error)
{
	g_return_val_if_fail(which >= 0 && which < db->spec->n_stmts, NULL);
	if (!db->st[which] && sqlite3_prepare_v3(db->db, db->spec->stmts[which], -1,
	    SQLITE_PREPARE_PERSISTENT, &db->st[which], NULL) != SQLITE_OK) {
		pg_db_fail(db, error, db->spec->stmts[which]);
		db->st[which] = NULL;
		return NULL;
	}
	return db->st[which];
}

sqlite3_stmt *
pg_db_prepare(PgDb *db, const char *sql, GError **error)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(db->db, sql, -1, &st, NULL) != SQLITE_OK) {
		pg_db_fail(db, error, sql);
		return NULL;
	}
	return st;
}

static void
finalize_stmt(gpointer st)
{
	sqlite3_finalize(st);
}

sqlite3_stmt *
pg_db_cached(PgDb *db, const char *sql, GError **error)
{
	sqlite3_stmt *st;

	if (!db->cached)
		db->cached = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL,
		    finalize_stmt);
	st = g_hash_table_lookup(db->cached, sql);
	if (st)
		return st;
	if (sqlite3_prepare_v3(db->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) !=
	    SQLITE_OK) {
		pg_db_fail(db, error, sql);
		return NULL;
	}
	g_hash_table_insert(db->cached, (gpointer)sql, st);
	return st;
}

void
pg_db_done(sqlite3_stmt *st)
{
	if (!st)
		return;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

gboolean
pg_db_run(PgDb *db, sqlite3_stmt *st, GError **error, const char *what)
{
	int rc = sqlite3_step(st);

	pg_db_done(st);
	if (rc != SQLITE_DONE)
		return pg_db_fail(db, error, what);
	return TRUE;
}

void
pg_db_bind_text(sqlite3_stmt *st, int i, const char *text)
{
	if (text)
		sqlite3_bind_text(st, i, text, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

void
pg_db_bind_copy(sqlite3_stmt *st, int i, const char *text)
{
	if (text)
		sqlite3_bind_text(st, i, text, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

const char *
pg_db_col_text(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

char *
pg_db_col_dup(sqlite3_stmt *st, int i)
{
	const char *t = pg_db_col_text(st, i);

	return t ? g_strdup(t) : NULL;
}

/* ------------------------------------------------------------ transactions */

/* Within a batch, a transaction is a savepoint of the batch's. */
#define PG_DB_NEST "pg_db_nest"

gboolean
pg_db_begin(PgDb *db, gboolean write, GError **error)
{
	if (db->batch) {
		if (!pg_db_exec(db, "SAVEPOINT " PG_DB_NEST, error))
			return FALSE;
		db->nest++;
		return TRUE;
	}
	return pg_db_exec(db, write ? "BEGIN IMMEDIATE" : "BEGIN", error);
}

gboolean
pg_db_end(PgDb *db, GError **error)
{
	if (db->batch && db->nest > 0) {
		if (!pg_db_exec(db, "RELEASE " PG_DB_NEST, error)) {
			pg_db_rollback(db);
			return FALSE;
		}
		db->nest--;
		db->batched++;
		return TRUE;
	}
	return pg_db_exec(db, "COMMIT", error);
}

gboolean
pg_db_commit(PgDb *db, const char *step, GError **error)
{
	gboolean nested = db->batch && db->nest > 0;

	if (!pg_db_end(db, error)) {
		pg_db_rollback(db);   /* a COMMIT that failed may leave it open */
		return FALSE;
	}
	if (!nested)
		fault_step(step);   /* in a batch: durable with pg_db_batch_commit */
	return TRUE;
}

void
pg_db_rollback(PgDb *db)
{
	if (db->batch) {
		if (db->nest > 0) {
			sqlite3_exec(db->db, "ROLLBACK TO " PG_DB_NEST "; RELEASE " PG_DB_NEST, NULL,
			    NULL, NULL);
			db->nest--;
		}
		return;
	}
	if (!sqlite3_get_autocommit(db->db))
		sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
}

gboolean
pg_db_batch_begin(PgDb *db, GError **error)
{
	g_return_val_if_fail(!db->batch, FALSE);
	if (!pg_db_exec(db, "BEGIN IMMEDIATE", error))
		return FALSE;
	db->batch = TRUE;
	db->nest = db->batched = 0;
	db->batch_start = g_get_monotonic_time();
	return TRUE;
}

gboolean
pg_db_batch_commit(PgDb *db, const char *step, GError **error)
{
	gboolean ok;

	if (!db->batch)
		return TRUE;
	g_warn_if_fail(db->nest == 0);
	db->batch = FALSE;
	db->nest = 0;
	ok = db->batched == 0 ? pg_db_exec(db, "COMMIT", error) : pg_db_commit(db, step, error);
	if (!ok)
		pg_db_rollback(db);
	return ok;
}

gboolean
pg_db_batch_full(PgDb *db)
{
	return db->batch && (db->batched >= PG_DB_BATCH_MAX ||
	    g_get_monotonic_time() - db->batch_start >= PG_DB_BATCH_US);
}

static gboolean
savepoint_sql(PgDb *db, const char *verb, const char *name, GError **error)
{
	char *sql = g_strconcat(verb, " ", name, NULL);
	gboolean ok = pg_db_exec(db, sql, error);

	g_free(sql);
	return ok;
}

gboolean
pg_db_savepoint(PgDb *db, const char *name, GError **error)
{
	return savepoint_sql(db, "SAVEPOINT", name, error);
}

gboolean
pg_db_release(PgDb *db, const char *name, GError **error)
{
	return savepoint_sql(db, "RELEASE", name, error);
}

gboolean
pg_db_rollback_to(PgDb *db, const char *name, GError **error)
{
	return savepoint_sql(db, "ROLLBACK TO", name, error);
}

/* -------------------------------------------------------------------- open */

static gboolean
version_read(PgDb *db, int *version, GError **error)
{
	sqlite3_stmt *st = pg_db_prepare(db, "SELECT max(version) FROM schema_version", error);
	int rc;

	if (!st)
		return FALSE;
	rc = sqlite3_step(st);
	*version = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return pg_db_fail(db, error, "read the schema version");
	if (*version > db->spec->version) {
		g_set_error(error, db->spec->domain(), db->spec->schema_code,
		    "%s has schema version %d, this postgate knows versions up to %d: "
		    "use a newer postgate with it", db->name, *version, db->spec->version);
		return FALSE;
	}
	return TRUE;
}

/* Every migration the file lacks, in one write transaction. */
static gboolean
migrate(PgDb *db, int *from, GError **error)
{
	int version;
	char *sql;
	gboolean ok;

	if (!pg_db_exec(db, "CREATE TABLE IF NOT EXISTS schema_version("
	    "version INTEGER NOT NULL)", error) || !version_read(db, &version, error))
		return FALSE;
	*from = version;
	if (version == db->spec->version)
		return TRUE;
	if (!pg_db_begin(db, TRUE, error))
		return FALSE;
	/* Again under the write lock: another process may have migrated. */
	if (!version_read(db, &version, error))
		goto fail;
	*from = version;
	for (int v = version; v < db->spec->version; v++) {
		if (!pg_db_exec(db, db->spec->migrations[v], error)) {
			g_prefix_error(error, "migration to schema version %d: ", v + 1);
			goto fail;
		}
	}
	sql = g_strdup_printf("DELETE FROM schema_version;"
	    "INSERT INTO schema_version(version) VALUES (%d)", db->spec->version);
	ok = pg_db_exec(db, sql, error);
	g_free(sql);
	if (ok && pg_db_commit(db, "commit", error))
		return TRUE;
fail:
	pg_db_rollback(db);
	return FALSE;
}

PgDb *
pg_db_open(const char *path, const char *name, int flags, const PgDbSpec *spec, int *from,
    GError **error)
{
	PgDb *db = g_new0(PgDb, 1);
	int rc, found = 0;

	db->name = g_strdup(name);
	db->spec = spec;
	db->st = g_new0(sqlite3_stmt *, MAX(spec->n_stmts, 1));
	rc = sqlite3_open_v2(path, &db->db, flags, NULL);
	if (rc != SQLITE_OK) {
		g_set_error(error, spec->domain(), spec->open_code, "%s: cannot open: %s", name,
		    db->db ? sqlite3_errmsg(db->db) : sqlite3_errstr(rc));
		pg_db_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db->db, PG_DB_BUSY_MS);
	/* Turning a new database to WAL takes it whole for a moment; a process
	 * that meets another doing so is told "locked" at once, without the
	 * busy timeout: it waits and tries again (bounded). */
	for (int tries = 0; tries < PG_DB_WAL_TRIES; tries++) {
		rc = sqlite3_exec(db->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
		if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
			break;
		g_usleep(100 * 1000);
	}
	if (!pg_db_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", error) ||
	    (spec->pragmas && !pg_db_exec(db, spec->pragmas, error)) ||
	    !migrate(db, &found, error)) {
		pg_db_close(db);
		return NULL;
	}
	if (from)
		*from = found;
	return db;
}

void
pg_db_close(PgDb *db)
{
	if (!db)
		return;
	for (int i = 0; i < db->spec->n_stmts; i++)
		if (db->st[i])
			sqlite3_finalize(db->st[i]);
	if (db->cached)
		g_hash_table_destroy(db->cached);
	if (db->db)
		sqlite3_close(db->db);
	g_free(db->st);
	g_free(db->name);
	g_free(db);
}
