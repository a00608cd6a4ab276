/* pg_db.h - one of postgate's SQLite databases: how it is opened, migrated,
 * queried and written.
 *
 * Owns: opening a database file in WAL mode with synchronous=FULL and a
 * busy timeout (a new database's switch to WAL, which takes the file whole
 * for a moment, is retried); the versioned schema (a schema_version table,
 * append-only migrations run in one write transaction, re-checked under the
 * lock, a newer version refused); a cache of prepared statements by index;
 * BEGIN / COMMIT / ROLLBACK and savepoints, each COMMIT a fault_step();
 * error messages that name the file and what failed.
 * Never: a table or a statement of its own beyond schema_version: the
 * schema, the SQL and the error domain are the caller's (the directory,
 * the queue, the reference postoffice).
 */
#ifndef PG_DB_H
#define PG_DB_H

#include <glib.h>
#include <sqlite3.h>

typedef struct PgDb PgDb;

/* What a store says about its database. */
typedef struct {
	GQuark (*domain)(void);         /* errors are of this domain ... */
	int io_code;                    /* ... with this code when SQLite failed */
	int open_code;                  /* ... this one when the file does not open */
	int schema_code;                /* ... and this one for a newer schema */
	const char *pragmas;            /* run after WAL and synchronous=FULL, or NULL */
	const char *const *migrations;  /* step i brings version i to i + 1 */
	int version;                    /* the number of migrations: this program's */
	const char *const *stmts;       /* the statement cache's SQL, by index */
	int n_stmts;
} PgDbSpec;

/* pg_db_open - open (flags as sqlite3_open_v2) and bring to spec->version;
 * name is how errors name the file ("queue.db", a path); *from (if not NULL)
 * gets the version found (0: new).  NULL and an error of spec->domain. */
PgDb *pg_db_open(const char *path, const char *name, int flags, const PgDbSpec *spec,
    int *from, GError **error);
/* pg_db_close - finalize every cached statement and close; NULL is fine */
void pg_db_close(PgDb *db);
/* pg_db_handle - the connection, for what this module does not wrap */
sqlite3 *pg_db_handle(PgDb *db);
/* pg_db_name - the file's name in errors */
const char *pg_db_name(const PgDb *db);

/* pg_db_fail - set "NAME: WHAT: SQLite's message" (io_code); FALSE */
gboolean pg_db_fail(PgDb *db, GError **error, const char *what);
/* pg_db_exec - run SQL text (several statements may follow each other) */
gboolean pg_db_exec(PgDb *db, const char *sql, GError **error);
/* pg_db_stmt - the cached statement spec->stmts[which], prepared on first
 * use, ready to bind; NULL and an error when it does not prepare */
sqlite3_stmt *pg_db_stmt(PgDb *db, int which, GError **error);
/* pg_db_prepare - a statement of its own, for the caller to finalize */
sqlite3_stmt *pg_db_prepare(PgDb *db, const char *sql, GError **error);
/* pg_db_cached - the statement for sql, which must be a string that lives
 * as long as db (a literal): prepared on first use and kept by address,
 * ready to bind; the caller ends with pg_db_done, never finalizes it */
sqlite3_stmt *pg_db_cached(PgDb *db, const char *sql, GError **error);
/* pg_db_done - reset a statement (NULL is fine) and clear its bindings (a SELECT left
 * unreset holds its read transaction open) */
void pg_db_done(sqlite3_stmt *st);
/* pg_db_run - step a statement that returns no row, then pg_db_done; what
 * names it in the error */
gboolean pg_db_run(PgDb *db, sqlite3_stmt *st, GError **error, const char *what);
/* pg_db_bind_text - bind text, or NULL, that stays as it is until the
 * statement is done */
void pg_db_bind_text(sqlite3_stmt *st, int i, const char *text);
/* pg_db_bind_copy - bind a copy of text, or NULL */
void pg_db_bind_copy(sqlite3_stmt *st, int i, const char *text);
/* pg_db_col_text - a column as text, or NULL */
const char *pg_db_col_text(sqlite3_stmt *st, int i);
/* pg_db_col_dup - a column as a new string, or NULL */
char *pg_db_col_dup(sqlite3_stmt *st, int i);

/* pg_db_begin - BEGIN IMMEDIATE (write) or BEGIN (read); in a batch, a
 * savepoint of the batch's transaction */
gboolean pg_db_begin(PgDb *db, gboolean write, GError **error);
/* pg_db_commit - COMMIT, then fault_step(step); a COMMIT that fails is
 * rolled back.  In a batch: the savepoint released, durable (and the
 * fault step) with pg_db_batch_commit */
gboolean pg_db_commit(PgDb *db, const char *step, GError **error);
/* pg_db_end - pg_db_commit without its fault step (the caller takes it),
 * and a failed COMMIT left for the caller to roll back */
gboolean pg_db_end(PgDb *db, GError **error);
/* pg_db_rollback - ROLLBACK when a transaction is open (in a batch: back to
 * the savepoint of pg_db_begin); errors ignored */
void pg_db_rollback(PgDb *db);
/* pg_db_batch_begin - BEGIN IMMEDIATE, and until pg_db_batch_commit every
 * pg_db_begin .. pg_db_commit within it is one savepoint: many small
 * transactions made durable by one fsync.  All or none of them lasts: a
 * caller does nothing outside the database on the strength of one before
 * the batch commits. */
gboolean pg_db_batch_begin(PgDb *db, GError **error);
/* pg_db_batch_commit - COMMIT the batch, then fault_step(step) when it held
 * a transaction; rolled back when it fails; TRUE when none is open */
gboolean pg_db_batch_commit(PgDb *db, const char *step, GError **error);
/* pg_db_batch_full - the batch holds enough (256 transactions, or 200 ms
 * since it began, during which others wait for the write lock): time to
 * commit it */
gboolean pg_db_batch_full(PgDb *db);
/* pg_db_savepoint, pg_db_release, pg_db_rollback_to - SAVEPOINT name and its
 * RELEASE / ROLLBACK TO (which leaves the savepoint open to release) */
gboolean pg_db_savepoint(PgDb *db, const char *name, GError **error);
gboolean pg_db_release(PgDb *db, const char *name, GError **error);
gboolean pg_db_rollback_to(PgDb *db, const char *name, GError **error);

#endif
