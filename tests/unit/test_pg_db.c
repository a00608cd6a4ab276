/* test_pg_db.c - unit tests of postoffice/pg_db.c, the one SQLite helper.
 *
 * Checks what the directory, the queue and the reference postoffice rely
 * on: a new file is WAL with synchronous=FULL and the store's pragmas, its
 * migrations run once and its version is recorded; a file of an older
 * version gets only the steps it lacks; a newer one is refused with the
 * store's schema code and a message naming the file and both versions; a
 * migration that fails leaves the file as it was; a file that does not open
 * gets the store's open code; the statement cache gives the same statement
 * back, ready to bind; savepoints roll back only what came after them;
 * errors name the file and what failed.
 */
#include "config.h"

#include <string.h>

#include "cu_run.h"
#include "pg_db.h"

static char *tmpdir;
static int file_no;

G_DEFINE_QUARK(test-pg-db-error-quark, test_error)
enum { T_IO = 1, T_OPEN, T_SCHEMA };

static const char *const two_steps[] = {
	"CREATE TABLE a(x INTEGER);",
	"CREATE TABLE b(y TEXT); INSERT INTO b VALUES ('step 2');",
};

enum { S_INSERT_A, S_COUNT_A, S_N };
static const char *const stmts[S_N] = {
	[S_INSERT_A] = "INSERT INTO a(x) VALUES (?1)",
	[S_COUNT_A] = "SELECT count(*) FROM a",
};

static PgDbSpec
spec_of(const char *const *migrations, int version)
{
	PgDbSpec s = {
		.domain = test_error_quark, .io_code = T_IO, .open_code = T_OPEN,
		.schema_code = T_SCHEMA, .pragmas = "PRAGMA cache_size=-1024;",
		.migrations = migrations, .version = version, .stmts = stmts, .n_stmts = S_N,
	};

	return s;
}

static char *
new_path(void)
{
	return g_strdup_printf("%s/db%d.sqlite", tmpdir, ++file_no);
}

#define RW (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)

static int
int_of(PgDb *db, const char *sql)
{
	sqlite3_stmt *st = pg_db_prepare(db, sql, NULL);
	int v = -1;

	if (st && sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

static char *
text_of(PgDb *db, const char *sql)
{
	sqlite3_stmt *st = pg_db_prepare(db, sql, NULL);
	char *v = NULL;

	if (st && sqlite3_step(st) == SQLITE_ROW)
		v = pg_db_col_dup(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void
test_new_file(void)
{
	char *path = new_path(), *mode;
	PgDbSpec spec = spec_of(two_steps, 2);
	GError *e = NULL;
	int from = -1;
	PgDb *db = pg_db_open(path, "new.db", RW, &spec, &from, &e);

	EXPECT(db && !e, "a new file opens (%s)", e ? e->message : "");
	if (!db)
		goto out;
	EXPECT(from == 0, "a new file is found at version 0, got %d", from);
	EXPECT(int_of(db, "SELECT max(version) FROM schema_version") == 2,
	    "version 2 recorded");
	EXPECT(int_of(db, "SELECT count(*) FROM schema_version") == 1,
	    "one row in schema_version");
	mode = text_of(db, "PRAGMA journal_mode");
	EXPECT(mode && strcmp(mode, "wal") == 0, "journal_mode wal, got %s", mode);
	g_free(mode);
	EXPECT(int_of(db, "PRAGMA synchronous") == 2, "synchronous FULL (2)");
	EXPECT(int_of(db, "PRAGMA cache_size") == -1024, "the store's pragmas ran");
	EXPECT(int_of(db, "SELECT count(*) FROM b") == 1, "both steps ran");
	EXPECT(strcmp(pg_db_name(db), "new.db") == 0, "the name errors use");
	pg_db_close(db);
	/* Again: nothing runs twice. */
	db = pg_db_open(path, "new.db", RW, &spec, &from, &e);
	EXPECT(db && from == 2, "reopened at version 2, got %d", from);
	EXPECT(db && int_of(db, "SELECT count(*) FROM b") == 1, "step 2 did not run again");
	pg_db_close(db);
out:
	g_clear_error(&e);
	g_free(path);
}

static void
test_older_file(void)
{
	char *path = new_path();
	PgDbSpec one = spec_of(two_steps, 1), two = spec_of(two_steps, 2);
	GError *e = NULL;
	int from = -1;
	PgDb *db = pg_db_open(path, "old.db", RW, &one, &from, &e);

	EXPECT(db && from == 0, "made at version 1 (%s)", e ? e->message : "");
	if (db)
		EXPECT(pg_db_exec(db, "INSERT INTO a VALUES (7)", NULL), "data in version 1");
	pg_db_close(db);
	db = pg_db_open(path, "old.db", RW, &two, &from, &e);
	EXPECT(db && from == 1, "a version 1 file is found at 1, got %d (%s)", from,
	    e ? e->message : "");
	if (db) {
		EXPECT(int_of(db, "SELECT max(version) FROM schema_version") == 2,
		    "brought to version 2");
		EXPECT(int_of(db, "SELECT x FROM a") == 7, "its data kept");
		EXPECT(int_of(db, "SELECT count(*) FROM b") == 1, "step 2 ran once");
	}
	pg_db_close(db);
	g_clear_error(&e);
	g_free(path);
}

static void
test_newer_file(void)
{
	char *path = new_path();
	PgDbSpec one = spec_of(two_steps, 1), two = spec_of(two_steps, 2);
	GError *e = NULL;
	PgDb *db = pg_db_open(path, "later.db", RW, &two, NULL, &e);

	pg_db_close(db);
	db = pg_db_open(path, "later.db", RW, &one, NULL, &e);
	EXPECT(db == NULL, "a file of a newer version is refused");
	EXPECT(g_error_matches(e, test_error_quark(), T_SCHEMA), "with the schema code");
	EXPECT(e && strstr(e->message, "later.db") && strstr(e->message, "version 2") &&
	    strstr(e->message, "up to 1") && strstr(e->message, "newer postgate"),
	    "naming the file and both versions: %s", e ? e->message : "");
	pg_db_close(db);
	g_clear_error(&e);
	g_free(path);
}

static void
test_failed_migration(void)
{
	static const char *const bad[] = {
		"CREATE TABLE a(x INTEGER);",
		"CREATE TABLE c(z INTEGER); THIS IS NOT SQL;",
	};
	char *path = new_path();
	PgDbSpec one = spec_of(bad, 1), two = spec_of(bad, 2);
	GError *e = NULL;
	int from;
	PgDb *db = pg_db_open(path, "m.db", RW, &one, NULL, &e);

	pg_db_close(db);
	db = pg_db_open(path, "m.db", RW, &two, NULL, &e);
	EXPECT(db == NULL && g_error_matches(e, test_error_quark(), T_IO),
	    "a migration that fails: refused, I/O code");
	EXPECT(e && strstr(e->message, "migration to schema version 2"),
	    "the error names the step: %s", e ? e->message : "");
	g_clear_error(&e);
	db = pg_db_open(path, "m.db", RW, &one, &from, &e);
	EXPECT(db && from == 1, "the file is still at version 1, got %d", db ? from : -1);
	EXPECT(db && int_of(db, "SELECT count(*) FROM sqlite_master WHERE name = 'c'") == 0,
	    "nothing of the failed step stayed");
	pg_db_close(db);
	g_clear_error(&e);
	g_free(path);
}

static void
test_open_fails(void)
{
	char *path = g_strdup_printf("%s/no/such/dir/x.db", tmpdir);
	PgDbSpec spec = spec_of(two_steps, 2);
	GError *e = NULL;
	PgDb *db = pg_db_open(path, "x.db", RW, &spec, NULL, &e);

	EXPECT(db == NULL && g_error_matches(e, test_error_quark(), T_OPEN),
	    "a file that cannot be created: the open code");
	EXPECT(e && strstr(e->message, "x.db") && strstr(e->message, "cannot open"),
	    "naming the file: %s", e ? e->message : "");
	g_clear_error(&e);
	g_free(path);
	/* Without SQLITE_OPEN_CREATE a missing file does not open either. */
	path = new_path();
	db = pg_db_open(path, "gone.db", SQLITE_OPEN_READWRITE, &spec, NULL, &e);
	EXPECT(db == NULL && g_error_matches(e, test_error_quark(), T_OPEN),
	    "a missing file without CREATE: the open code");
	g_clear_error(&e);
	g_free(path);
}

static void
test_statements_and_savepoints(void)
{
	char *path = new_path();
	PgDbSpec spec = spec_of(two_steps, 2);
	GError *e = NULL;
	PgDb *db = pg_db_open(path, "s.db", RW, &spec, NULL, &e);
	sqlite3_stmt *st, *again;

	EXPECT(db != NULL, "open (%s)", e ? e->message : "");
	if (!db)
		goto out;
	st = pg_db_stmt(db, S_INSERT_A, &e);
	again = pg_db_stmt(db, S_INSERT_A, &e);
	EXPECT(st && st == again, "the cache gives the same statement back");
	EXPECT(pg_db_begin(db, TRUE, &e), "BEGIN IMMEDIATE");
	sqlite3_bind_int(st, 1, 1);
	EXPECT(pg_db_run(db, st, &e, "insert 1"), "insert 1");
	EXPECT(pg_db_savepoint(db, "one", &e), "SAVEPOINT one");
	sqlite3_bind_int(st, 1, 2);
	EXPECT(pg_db_run(db, st, &e, "insert 2"), "insert 2 (the statement was reset)");
	EXPECT(pg_db_rollback_to(db, "one", &e) && pg_db_release(db, "one", &e),
	    "ROLLBACK TO one, RELEASE one");
	EXPECT(pg_db_commit(db, "test commit", &e), "COMMIT");
	EXPECT(int_of(db, "SELECT group_concat(x) FROM a") == 1,
	    "only what came before the savepoint stayed");
	EXPECT(sqlite3_get_autocommit(pg_db_handle(db)), "no transaction left open");
	pg_db_rollback(db);     /* none open: harmless */
	EXPECT(pg_db_begin(db, FALSE, &e), "BEGIN");
	pg_db_rollback(db);
	EXPECT(sqlite3_get_autocommit(pg_db_handle(db)), "rolled back");
	/* Errors name the file and what failed. */
	EXPECT(!pg_db_exec(db, "SELECT * FROM missing", &e) &&
	    g_error_matches(e, test_error_quark(), T_IO) && strstr(e->message, "s.db: ") &&
	    strstr(e->message, "missing"), "exec error: %s", e ? e->message : "");
	g_clear_error(&e);
	EXPECT(!pg_db_prepare(db, "SELEC 1", &e) && e && strstr(e->message, "s.db: SELEC 1: "),
	    "prepare error names the statement: %s", e ? e->message : "");
	g_clear_error(&e);
	st = pg_db_stmt(db, S_INSERT_A, NULL);
	EXPECT(pg_db_exec(db, "CREATE UNIQUE INDEX ax ON a(x)", NULL), "a unique index");
	sqlite3_bind_int(st, 1, 1);
	EXPECT(!pg_db_run(db, st, &e, "insert a duplicate") && e &&
	    strstr(e->message, "s.db: insert a duplicate: "), "run error: %s",
	    e ? e->message : "");
	g_clear_error(&e);
	pg_db_close(db);
out:
	g_clear_error(&e);
	g_free(path);
}

/* A batch: the transactions in it are savepoints, one that rolls back
 * takes only itself, and all of them last only with the batch's commit. */
static void
test_batch(void)
{
	char *path = new_path();
	PgDbSpec spec = spec_of(two_steps, 2);
	GError *e = NULL;
	PgDb *db = pg_db_open(path, "b.db", RW, &spec, NULL, &e);
	PgDb *other = pg_db_open(path, "b.db", RW, &spec, NULL, NULL);
	static const char sql[] = "INSERT INTO a(x) VALUES(?)";
	sqlite3_stmt *st, *again;

	EXPECT(db && other, "open twice (%s)", e ? e->message : "");
	if (!db || !other)
		goto out;
	st = pg_db_cached(db, sql, &e);
	again = pg_db_cached(db, sql, &e);
	EXPECT(st && st == again, "pg_db_cached gives the same statement back");
	EXPECT(!pg_db_batch_full(db), "no batch: not full");
	EXPECT(pg_db_batch_begin(db, &e), "batch begins");
	for (int i = 1; i <= 3; i++) {
		EXPECT(pg_db_begin(db, TRUE, &e), "begin %d in the batch", i);
		sqlite3_bind_int(st, 1, i);
		EXPECT(pg_db_run(db, st, &e, "insert"), "insert %d", i);
		if (i == 2)
			pg_db_rollback(db);
		else
			EXPECT(pg_db_commit(db, "test", &e), "commit %d in the batch", i);
	}
	EXPECT(!sqlite3_get_autocommit(pg_db_handle(db)), "the batch is still open");
	EXPECT(int_of(other, "SELECT count(*) FROM a") == 0,
	    "another connection sees nothing before the batch commits");
	EXPECT(pg_db_batch_commit(db, "test batch", &e), "batch commits (%s)",
	    e ? e->message : "");
	EXPECT(int_of(other, "SELECT sum(x) FROM a") == 4,
	    "then it sees 1 and 3, not the one rolled back (%d)",
	    int_of(other, "SELECT sum(x) FROM a"));
	EXPECT(sqlite3_get_autocommit(pg_db_handle(db)), "no transaction left open");
	EXPECT(pg_db_batch_begin(db, &e), "a second batch");
	for (int i = 0; i < 256; i++) {
		pg_db_begin(db, TRUE, NULL);
		pg_db_commit(db, "test", NULL);
	}
	EXPECT(pg_db_batch_full(db), "full after 256 transactions");
	EXPECT(pg_db_batch_commit(db, "test batch", &e), "and commits");
	EXPECT(pg_db_batch_commit(db, "test batch", &e), "no batch open: nothing to do");
out:
	pg_db_close(other);
	pg_db_close(db);
	g_clear_error(&e);
	g_free(path);
}

static void
test_bind_text(void)
{
	char *path = new_path();
	PgDbSpec spec = spec_of(two_steps, 2);
	PgDb *db = pg_db_open(path, "t.db", RW, &spec, NULL, NULL);
	sqlite3_stmt *st;
	char buf[8];

	EXPECT(db != NULL, "open");
	if (!db)
		goto out;
	st = pg_db_prepare(db, "INSERT INTO b(y) VALUES (?1), (?2), (?3)", NULL);
	g_strlcpy(buf, "copy", sizeof buf);
	pg_db_bind_copy(st, 1, buf);
	buf[0] = 'X';           /* a copy: what was bound stays "copy" */
	pg_db_bind_text(st, 2, "kept");
	pg_db_bind_text(st, 3, NULL);
	EXPECT(sqlite3_step(st) == SQLITE_DONE, "insert");
	sqlite3_finalize(st);
	EXPECT(int_of(db, "SELECT count(*) FROM b WHERE y = 'copy'") == 1, "the copy");
	EXPECT(int_of(db, "SELECT count(*) FROM b WHERE y = 'kept'") == 1, "the text");
	EXPECT(int_of(db, "SELECT count(*) FROM b WHERE y IS NULL") == 1, "NULL for NULL");
	st = pg_db_prepare(db, "SELECT NULL", NULL);
	EXPECT(sqlite3_step(st) == SQLITE_ROW && pg_db_col_text(st, 0) == NULL &&
	    pg_db_col_dup(st, 0) == NULL, "a NULL column is NULL");
	sqlite3_finalize(st);
	pg_db_close(db);
out:
	g_free(path);
}

static const CuTest tests[] = {
	{ "a new file: WAL, FULL, pragmas, every step once", test_new_file },
	{ "an older file gets only the steps it lacks", test_older_file },
	{ "a newer file is refused, naming both versions", test_newer_file },
	{ "a failed migration leaves the file as it was", test_failed_migration },
	{ "a file that does not open: the open code", test_open_fails },
	{ "statement cache, savepoints, errors naming the file", test_statements_and_savepoints },
	{ "bind text, a copy, NULL", test_bind_text },
	{ "a batch of transactions, one commit; pg_db_cached", test_batch },
	{ NULL, NULL }
};

int
main(void)
{
	return cu_run_in_tmpdir("pg_db", tests, &tmpdir);
}
