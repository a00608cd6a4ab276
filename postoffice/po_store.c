/* po_store.c - the reference legacy postoffice (see po_store.h, po_store_int.h):
 * po.db, init, open, settings and users.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "address.h"
#include "atomic_write.h"
#include "bundle.h"
#include "codepage.h"
#include "fault.h"
#include "keyfile.h"
#include "pg_db.h"
#include "pg_log.h"
#include "po_store_int.h"

G_DEFINE_QUARK(postgate-po-error-quark, po_error)

/* The migrations: step i brings schema version i to i + 1.  Append only.
 * A po.db from before there were versions has the tables of step 0. */
static const char *const migrations[] = {
    "CREATE TABLE IF NOT EXISTS settings(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS users(mailbox TEXT PRIMARY KEY, name TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS mail(id INTEGER PRIMARY KEY, mailbox TEXT NOT NULL,"
    "  msg_id TEXT NOT NULL, received INTEGER NOT NULL, origin TEXT NOT NULL,"
    "  data BLOB NOT NULL);"
    "CREATE INDEX IF NOT EXISTS mail_mailbox ON mail(mailbox);"
    "CREATE TABLE IF NOT EXISTS ledger(source TEXT NOT NULL, dest TEXT NOT NULL,"
    "  seq INTEGER NOT NULL, hmac BLOB NOT NULL, applied INTEGER NOT NULL,"
    "  PRIMARY KEY(source, dest, seq));"
    "CREATE TABLE IF NOT EXISTS seqs(dest TEXT PRIMARY KEY, last INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS outbox(name TEXT PRIMARY KEY, data BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS directory(id INTEGER PRIMARY KEY, source TEXT NOT NULL,"
    "  seq INTEGER NOT NULL, received INTEGER NOT NULL, data BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS gal(address TEXT PRIMARY KEY, name TEXT NOT NULL,"
    "  smtp TEXT NOT NULL);",
};

/* A po.db that does not open is "not a postoffice directory"; a newer one
 * is an I/O error like any other the database gives. */
static const PgDbSpec db_spec = {
	.domain = po_error_quark, .io_code = PO_ERROR_IO, .open_code = PO_ERROR_STATE,
	.schema_code = PO_ERROR_IO, .pragmas = "PRAGMA foreign_keys=ON;",
	.migrations = migrations, .version = G_N_ELEMENTS(migrations),
};

static char *
setting(PoStore *s, const char *key)
{
	sqlite3_stmt *st = pg_db_prepare(s->pg, "SELECT value FROM settings WHERE key = ?", NULL);
	char *v = NULL;

	if (!st)
		return NULL;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = g_strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return v;
}

/* Every row of a query, its columns as text joined by sep. */
GPtrArray *
pos_rows(PoStore *s, const char *sql, const char *sep, GError **error)
{
	sqlite3_stmt *st = pg_db_prepare(s->pg, sql, error);
	int n = st ? sqlite3_column_count(st) : 0;
	GPtrArray *a;

	if (!st)
		return NULL;
	a = g_ptr_array_new_with_free_func(g_free);
	while (sqlite3_step(st) == SQLITE_ROW) {
		GString *row = g_string_new(NULL);

		for (int i = 0; i < n; i++) {
			const char *t = pg_db_col_text(st, i);

			g_string_append_printf(row, "%s%s", i ? sep : "", t ? t : "(null)");
		}
		g_ptr_array_add(a, g_string_free(row, FALSE));
	}
	sqlite3_finalize(st);
	return a;
}

static PoStore *
store_new(const char *dir)
{
	PoStore *s = g_new0(PoStore, 1);

	s->dir = g_strdup(dir);
	s->in = g_build_filename(dir, "in", NULL);
	s->out = g_build_filename(dir, "out", NULL);
	s->bad = g_build_filename(dir, "bad", NULL);
	s->lock_fd = -1;
	return s;
}

void
po_close(PoStore *s)
{
	if (!s)
		return;
	pg_db_close(s->pg);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	if (s->key)
		g_bytes_unref(s->key);
	g_free(s->codepage);
	g_free(s->dir);
	g_free(s->in);
	g_free(s->out);
	g_free(s->bad);
	g_free(s);
}

static gboolean
db_open(PoStore *s, int flags, GError **error)
{
	char *path = g_build_filename(s->dir, PO_DB, NULL);
	GError *e = NULL;

	s->pg = pg_db_open(path, path, flags, &db_spec, NULL, &e);
	g_free(path);
	if (!s->pg) {
		if (g_error_matches(e, PO_ERROR, PO_ERROR_STATE)) {
			g_set_error(error, PO_ERROR, PO_ERROR_STATE,
			    "%s is not a postoffice directory (no usable %s: %s); run "
			    "postgate-po -d %s init first", s->dir, PO_DB, e->message, s->dir);
			g_error_free(e);
		} else {
			g_propagate_error(error, e);
		}
		return FALSE;
	}
	s->db = pg_db_handle(s->pg);
	return TRUE;
}

gboolean
po_init(const char *dir, const char *net, const char *po, const char *codepage,
    const char *key_file, const char *gateway, GError **error)
{
	PoStore *s;
	char n[ADDR_PART_MAX + 1], p[ADDR_PART_MAX + 1];
	char gn[ADDR_PART_MAX + 1], gp[ADDR_PART_MAX + 1];
	char *gw, *name, *abs_key;
	GBytes *key;
	sqlite3_stmt *st;
	gboolean ok = FALSE;

	if (!addr_parse_part(net, strlen(net), "network", n, error) ||
	    !addr_parse_part(po, strlen(po), "postoffice", p, error))
		return FALSE;
	gw = gateway ? g_strdup(gateway) : g_strdup_printf("%s/GW", n);
	if (!addr_parse_po(gw, strlen(gw), gn, gp, error)) {
		g_free(gw);
		return FALSE;
	}
	g_free(gw);
	if (!cp_supported(codepage)) {
		g_set_error(error, PO_ERROR, PO_ERROR_USAGE,
		    "codepage %s is unknown to iconv (try CP437, CP850 or CP1252)", codepage);
		return FALSE;
	}
	if (g_mkdir_with_parents(dir, 0750) != 0) {
		g_set_error(error, PO_ERROR, PO_ERROR_IO, "cannot create %s: %s", dir,
		    g_strerror(errno));
		return FALSE;
	}
	if (!g_file_test(key_file, G_FILE_TEST_EXISTS) && !keyfile_create(key_file, error))
		return FALSE;
	key = keyfile_load(key_file, error);
	if (!key)
		return FALSE;
	g_bytes_unref(key);
	s = store_new(dir);
	if (g_mkdir_with_parents(s->in, 0750) != 0 || g_mkdir_with_parents(s->out, 0750) != 0 ||
	    g_mkdir_with_parents(s->bad, 0750) != 0) {
		g_set_error(error, PO_ERROR, PO_ERROR_IO, "cannot create in/ out/ bad/ in %s: %s",
		    dir, g_strerror(errno));
		goto out;
	}
	if (!db_open(s, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, error))
		goto out;
	name = setting(s, "name");
	if (name) {
		g_set_error(error, PO_ERROR, PO_ERROR_USAGE,
		    "%s already holds postoffice %s", dir, name);
		g_free(name);
		goto out;
	}
	abs_key = g_canonicalize_filename(key_file, NULL);
	name = g_strdup_printf("%s/%s", n, p);
	gw = g_strdup_printf("%s/%s", gn, gp);
	/* Every postoffice has a postmaster: reports that have nowhere else to
	 * go land there, so none is ever lost. */
	st = pg_db_prepare(s->pg, "INSERT INTO settings VALUES ('name', ?1), ('codepage', ?2),"
	    " ('key_file', ?3), ('gateway', ?4);", error);
	if (st && !pg_db_exec(s->pg, "INSERT INTO users(mailbox, name) VALUES ('" POSTMASTER
	    "', 'Postmaster')", error))
		g_clear_pointer(&st, sqlite3_finalize);
	if (st) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, codepage, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, abs_key, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, gw, -1, SQLITE_STATIC);
		ok = sqlite3_step(st) == SQLITE_DONE || pg_db_fail(s->pg, error, "init");
		sqlite3_finalize(st);
	}
	g_free(abs_key);
	g_free(name);
	g_free(gw);
out:
	po_close(s);
	return ok;
}

PoStore *
po_open(const char *dir, GError **error)
{
	PoStore *s = store_new(dir);
	char *name = NULL, *gw = NULL, *key_file = NULL;
	char *lock = g_build_filename(dir, PO_LOCK, NULL);
	char gn[ADDR_PART_MAX + 1], gp[ADDR_PART_MAX + 1];
	char *path = g_build_filename(dir, PO_DB, NULL);
	gboolean exists = g_file_test(path, G_FILE_TEST_IS_REGULAR);

	g_free(path);
	if (!exists) {
		g_set_error(error, PO_ERROR, PO_ERROR_STATE,
		    "%s is not a postoffice directory (no %s); run postgate-po -d %s init first",
		    dir, PO_DB, dir);
		goto fail;
	}
	s->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (s->lock_fd < 0 || flock(s->lock_fd, LOCK_EX) != 0) {
		g_set_error(error, PO_ERROR, PO_ERROR_IO, "cannot lock %s: %s", lock,
		    g_strerror(errno));
		goto fail;
	}
	if (!db_open(s, SQLITE_OPEN_READWRITE, error))
		goto fail;
	name = setting(s, "name");
	gw = setting(s, "gateway");
	s->codepage = setting(s, "codepage");
	key_file = setting(s, "key_file");
	if (!name || !gw || !s->codepage || !key_file ||
	    !addr_parse_po(name, strlen(name), s->net, s->po, NULL) ||
	    !addr_parse_po(gw, strlen(gw), gn, gp, NULL)) {
		g_set_error(error, PO_ERROR, PO_ERROR_STATE,
		    "%s/%s lacks its settings; run postgate-po -d %s init", dir, PO_DB, dir);
		goto fail;
	}
	g_snprintf(s->name, sizeof s->name, "%s/%s", s->net, s->po);
	g_snprintf(s->gateway, sizeof s->gateway, "%s/%s", gn, gp);
	s->key = keyfile_load(key_file, error);
	if (!s->key)
		goto fail;
	g_free(name);
	g_free(gw);
	g_free(key_file);
	g_free(lock);
	return s;
fail:
	g_free(name);
	g_free(gw);
	g_free(key_file);
	g_free(lock);
	po_close(s);
	return NULL;
}

const char *
po_name(const PoStore *s)
{
	return s->name;
}

const char *
po_codepage(const PoStore *s)
{
	return s->codepage;
}

/* ---- users --------------------------------------------------------------- */

gboolean
pos_mailbox_norm(const char *mailbox, char out[ADDR_PART_MAX + 1], GError **error)
{
	return addr_parse_part(mailbox, strlen(mailbox), "mailbox", out, error);
}

gboolean
pos_user_exists(PoStore *s, const char *mailbox)
{
	char *name = po_user_name(s, mailbox);
	gboolean yes = name != NULL;

	g_free(name);
	return yes;
}

char *
po_user_name(PoStore *s, const char *mailbox)
{
	sqlite3_stmt *st = pg_db_prepare(s->pg, "SELECT name FROM users WHERE mailbox = ?", NULL);
	char *name = NULL;

	if (!st)
		return NULL;
	sqlite3_bind_text(st, 1, mailbox, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		name = g_strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return name;
}

/* A display name as users give it: UTF-8, bounded, no control characters. */
static gboolean
name_ok(const char *name, GError **error)
{
	for (const char *c = name; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f) {
			g_set_error(error, PO_ERROR, PO_ERROR_USAGE,
			    "the name holds control character 0x%02x", (unsigned char)*c);
			return FALSE;
		}
	if (!g_utf8_validate(name, -1, NULL) || strlen(name) > MSG_MAX_NAME_LEN) {
		g_set_error(error, PO_ERROR, PO_ERROR_USAGE,
		    "the name must be UTF-8 text of at most %u bytes", MSG_MAX_NAME_LEN);
		return FALSE;
	}
	return TRUE;
}

/* Run sql with ?1 the normalised mailbox and ?2 a checked display name;
 * the sqlite3_step result, or -1 with error set. */
static int
user_write(PoStore *s, const char *sql, const char *mailbox, const char *name,
    char mb[ADDR_PART_MAX + 1], GError **error)
{
	sqlite3_stmt *st;
	int rc;

	if (!pos_mailbox_norm(mailbox, mb, error) || !name_ok(name, error))
		return -1;
	st = pg_db_prepare(s->pg, sql, error);
	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, mb, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc;
}

gboolean
po_user_add(PoStore *s, const char *mailbox, const char *name, GError **error)
{
	char mb[ADDR_PART_MAX + 1];
	int rc = user_write(s, "INSERT INTO users(mailbox, name) VALUES (?1, ?2)", mailbox,
	    name, mb, error);

	if (rc == -1)
		return FALSE;
	if (rc == SQLITE_CONSTRAINT) {
		g_set_error(error, PO_ERROR, PO_ERROR_USAGE, "mailbox %s already exists", mb);
		return FALSE;
	}
	if (rc != SQLITE_DONE)
		return pg_db_fail(s->pg, error, "adduser");
	fault_step("commit");
	return TRUE;
}

gboolean
po_user_rename(PoStore *s, const char *mailbox, const char *name, GError **error)
{
	char mb[ADDR_PART_MAX + 1];
	int rc = user_write(s, "UPDATE users SET name = ?2 WHERE mailbox = ?1", mailbox, name,
	    mb, error);

	if (rc == -1)
		return FALSE;
	if (rc != SQLITE_DONE)
		return pg_db_fail(s->pg, error, "setname");
	if (sqlite3_changes(s->db) == 0) {
		g_set_error(error, PO_ERROR, PO_ERROR_NOUSER, "no mailbox %s at %s", mb, s->name);
		return FALSE;
	}
	fault_step("commit");
	return TRUE;
}

gboolean
po_user_del(PoStore *s, const char *mailbox, GError **error)
{
	char mb[ADDR_PART_MAX + 1];
	sqlite3_stmt *st;
	gboolean ok;

	if (!pos_mailbox_norm(mailbox, mb, error))
		return FALSE;
	if (!pos_user_exists(s, mb)) {
		g_set_error(error, PO_ERROR, PO_ERROR_NOUSER, "no mailbox %s at %s", mb, s->name);
		return FALSE;
	}
	if (strcmp(mb, POSTMASTER) == 0) {
		g_set_error(error, PO_ERROR, PO_ERROR_USAGE, "%s receives the reports that have "
		    "nowhere else to go and cannot be deleted", POSTMASTER);
		return FALSE;
	}
	if (!pg_db_begin(s->pg, TRUE, error))
		return FALSE;
	st = pg_db_prepare(s->pg, "DELETE FROM mail WHERE mailbox = ?1", error);
	ok = st != NULL;
	if (ok) {
		sqlite3_bind_text(st, 1, mb, -1, SQLITE_STATIC);
		ok = sqlite3_step(st) == SQLITE_DONE || pg_db_fail(s->pg, error, "deluser");
		sqlite3_finalize(st);
	}
	st = ok ? pg_db_prepare(s->pg, "DELETE FROM users WHERE mailbox = ?1", error) : NULL;
	ok = st != NULL;
	if (ok) {
		sqlite3_bind_text(st, 1, mb, -1, SQLITE_STATIC);
		ok = sqlite3_step(st) == SQLITE_DONE || pg_db_fail(s->pg, error, "deluser");
		sqlite3_finalize(st);
	}
	if (!ok) {
		pg_db_rollback(s->pg);
		return FALSE;
	}
	return pg_db_commit(s->pg, "commit", error);
}

static void
user_free(gpointer p)
{
	PoUser *u = p;
	g_free(u->mailbox);
	g_free(u->name);
	g_free(u);
}

GPtrArray *
po_users(PoStore *s, GError **error)
{
	sqlite3_stmt *st = pg_db_prepare(s->pg, "SELECT mailbox, name FROM users ORDER BY mailbox",
	    error);
	GPtrArray *a;

	if (!st)
		return NULL;
	a = g_ptr_array_new_with_free_func(user_free);
	while (sqlite3_step(st) == SQLITE_ROW) {
		PoUser *u = g_new0(PoUser, 1);
		u->mailbox = g_strdup((const char *)sqlite3_column_text(st, 0));
		u->name = g_strdup((const char *)sqlite3_column_text(st, 1));
		g_ptr_array_add(a, u);
	}
	sqlite3_finalize(st);
	return a;
}
