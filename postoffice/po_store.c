/* po_store.c - the reference legacy postoffice (see po_store.h).
 *
 * Exactly once, in three durable steps per bundle from in/:
 *   1. one SQLite transaction stores the mailbox copies, any reports as a
 *      finished bundle in the outbox (its sequence number allocated there),
 *      and "(source, destination, seq, HMAC) applied" in the ledger;
 *   2. the outbox is flushed: each bundle atomically written to out/, then
 *      its row deleted;
 *   3. the bundle is unlinked from in/.
 * A crash before 1 changes nothing; after 1 the rerun finds the sequence
 * number in the ledger with the same HMAC and drops the file; an outbox row
 * left over is written again with the same bytes and name, which the
 * gateway applies at most once.
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
#include "po_store.h"

G_DEFINE_QUARK(postgate-po-error-quark, po_error)

#define PO_DB "po.db"
#define PO_LOCK "po.lock"
#define POSTMASTER "POSTMASTER"
#define PO_BUNDLE_LEVEL 6
#define PO_BUNDLE_ENTRIES 1000                 /* per bundle this postoffice writes */
#define PO_BUNDLE_PAYLOAD (64u * 1024 * 1024)  /* well below BUNDLE_MAX_PAYLOAD */

struct PoStore {
	char *dir, *in, *out, *bad;
	PgDb *pg;
	sqlite3 *db;            /* pg's connection */
	int lock_fd;
	char net[ADDR_PART_MAX + 1], po[ADDR_PART_MAX + 1];
	char name[ADDR_PO_MAX + 1];
	char gateway[ADDR_PO_MAX + 1];
	char *codepage;
	GBytes *key;
};

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

static gboolean
mailbox_norm(const char *mailbox, char out[ADDR_PART_MAX + 1], GError **error)
{
	return addr_parse_part(mailbox, strlen(mailbox), "mailbox", out, error);
}

static gboolean
user_exists(PoStore *s, const char *mailbox)
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

	if (!mailbox_norm(mailbox, mb, error) || !name_ok(name, error))
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

	if (!mailbox_norm(mailbox, mb, error))
		return FALSE;
	if (!user_exists(s, mb)) {
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

/* ---- mail, outbox, sequence numbers -------------------------------------- */

static gboolean
store_mail(PoStore *s, const char *mailbox, const LegacyMessage *m, const char *origin,
    GError **error)
{
	GByteArray *buf = g_byte_array_new();
	sqlite3_stmt *st;
	gboolean ok = FALSE;

	if (!msg_encode(m, buf, error))
		goto out;
	st = pg_db_prepare(s->pg, "INSERT INTO mail(mailbox, msg_id, received, origin, data)"
	    " VALUES (?, ?, ?, ?, ?)", error);
	if (!st)
		goto out;
	sqlite3_bind_text(st, 1, mailbox, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, m->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, g_get_real_time() / G_USEC_PER_SEC);
	sqlite3_bind_text(st, 4, origin, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 5, buf->data, (int)buf->len, SQLITE_STATIC);
	ok = sqlite3_step(st) == SQLITE_DONE || pg_db_fail(s->pg, error, "store mail");
	sqlite3_finalize(st);
out:
	g_byte_array_unref(buf);
	return ok;
}

/* Allocate the next sequence number towards dest (inside a transaction). */
static gboolean
next_seq(PoStore *s, const char *dest, guint64 *seq, GError **error)
{
	sqlite3_stmt *st = pg_db_prepare(s->pg, "INSERT INTO seqs(dest, last) VALUES (?1, 1)"
	    " ON CONFLICT(dest) DO UPDATE SET last = last + 1 RETURNING last", error);
	gboolean ok;

	if (!st)
		return FALSE;
	sqlite3_bind_text(st, 1, dest, -1, SQLITE_STATIC);
	ok = sqlite3_step(st) == SQLITE_ROW;
	if (ok)
		*seq = (guint64)sqlite3_column_int64(st, 0);
	else
		pg_db_fail(s->pg, error, "allocate a sequence number");
	sqlite3_finalize(st);
	return ok;
}

/* Queue one finished bundle b in the outbox. */
static gboolean
outbox_put(PoStore *s, Bundle *b, char **name_out, GError **error)
{
	GBytes *bytes = bundle_encode(b, s->key, PO_BUNDLE_LEVEL, error);
	char *name;
	sqlite3_stmt *st;
	gboolean ok = FALSE;
	gsize n;
	const void *d;

	if (!bytes)
		return FALSE;
	name = bundle_file_name(b->source, b->dest, b->seq);
	st = pg_db_prepare(s->pg, "INSERT INTO outbox(name, data) VALUES (?, ?)", error);
	if (st) {
		d = g_bytes_get_data(bytes, &n);
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_blob64(st, 2, d, n, SQLITE_STATIC);
		ok = sqlite3_step(st) == SQLITE_DONE || pg_db_fail(s->pg, error, "queue a bundle");
		sqlite3_finalize(st);
	}
	if (ok && name_out && !*name_out)
		*name_out = g_strdup(name);
	g_free(name);
	g_bytes_unref(bytes);
	return ok;
}

/* Encode msgs into bundles to the gateway, each well inside the limits of
 * docs/bundle-format.md, and queue them in the outbox (inside the caller's
 * transaction).  name_out gets the first bundle's name. */
static gboolean
outbox_add(PoStore *s, GPtrArray *msgs, char **name_out, GError **error)
{
	Bundle *b = NULL;
	guint64 seq, size = 0;
	gboolean ok = TRUE;

	for (guint i = 0; ok && i < msgs->len; i++) {
		BundleEntry *last;
		if (!b) {
			if (!next_seq(s, s->gateway, &seq, error))
				return FALSE;
			b = bundle_new(s->name, s->gateway, seq);
			size = 0;
		}
		if (!bundle_add_message(b, msgs->pdata[i], error)) {
			ok = FALSE;
			break;
		}
		last = b->entries->pdata[b->entries->len - 1];
		size += g_bytes_get_size(last->data) + 5;
		if (b->entries->len >= PO_BUNDLE_ENTRIES || size >= PO_BUNDLE_PAYLOAD ||
		    i + 1 == msgs->len) {
			ok = outbox_put(s, b, name_out, error);
			g_clear_pointer(&b, bundle_free);
		}
	}
	bundle_free(b);
	return ok;
}

/* Write every bundle waiting in the outbox to out/, then forget it. */
static gboolean
outbox_flush(PoStore *s, GError **error)
{
	sqlite3_stmt *st = pg_db_prepare(s->pg, "SELECT name, data FROM outbox ORDER BY name", error);
	GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
	gboolean ok = st != NULL;

	while (ok && sqlite3_step(st) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		const void *data = sqlite3_column_blob(st, 1);
		int n = sqlite3_column_bytes(st, 1);
		if (!atomic_write_file(s->out, name, data, (size_t)n, 0640, error))
			ok = FALSE;
		else
			g_ptr_array_add(names, g_strdup(name));
	}
	if (st)
		sqlite3_finalize(st);
	for (guint i = 0; ok && i < names->len; i++) {
		st = pg_db_prepare(s->pg, "DELETE FROM outbox WHERE name = ?", error);
		if (!st) {
			ok = FALSE;
			break;
		}
		sqlite3_bind_text(st, 1, names->pdata[i], -1, SQLITE_STATIC);
		ok = sqlite3_step(st) == SQLITE_DONE || pg_db_fail(s->pg, error, "outbox");
		sqlite3_finalize(st);
		if (ok) {
			fault_step("commit");
			pg_info(names->pdata[i], "bundle written to %s", s->out);
		}
	}
	g_ptr_array_unref(names);
	return ok;
}

gboolean
po_send_directory(PoStore *s, GBytes *document, char **bundle_name, GError **error)
{
	guint64 seq;
	Bundle *b;
	gboolean ok;

	if (!pg_db_begin(s->pg, TRUE, error))
		return FALSE;
	if (!next_seq(s, s->gateway, &seq, error)) {
		pg_db_rollback(s->pg);
		return FALSE;
	}
	b = bundle_new(s->name, s->gateway, seq);
	bundle_add_entry(b, BUNDLE_ENTRY_DIRECTORY, document);
	ok = outbox_put(s, b, bundle_name, error) && pg_db_commit(s->pg, "commit", error);
	bundle_free(b);
	if (!ok) {
		pg_db_rollback(s->pg);
		return FALSE;
	}
	return outbox_flush(s, error);
}

gboolean
po_gal_replace(PoStore *s, GPtrArray *addresses, GPtrArray *names, GPtrArray *smtps,
    GError **error)
{
	sqlite3_stmt *st;

	if (!pg_db_begin(s->pg, TRUE, error))
		return FALSE;
	if (!pg_db_exec(s->pg, "DELETE FROM gal", error))
		goto rollback;
	st = pg_db_prepare(s->pg, "INSERT OR REPLACE INTO gal(address, name, smtp) VALUES (?, ?, ?)",
	    error);
	if (!st)
		goto rollback;
	for (guint i = 0; i < addresses->len; i++) {
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, addresses->pdata[i], -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, names->pdata[i], -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, smtps->pdata[i], -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE) {
			pg_db_fail(s->pg, error, "global address list");
			sqlite3_finalize(st);
			goto rollback;
		}
	}
	sqlite3_finalize(st);
	return pg_db_commit(s->pg, "commit", error);
rollback:
	pg_db_rollback(s->pg);
	return FALSE;
}

GPtrArray *
po_gal(PoStore *s, GError **error)
{
	sqlite3_stmt *st = pg_db_prepare(s->pg, "SELECT address, smtp, name FROM gal ORDER BY address",
	    error);
	GPtrArray *a;

	if (!st)
		return NULL;
	a = g_ptr_array_new_with_free_func(g_free);
	while (sqlite3_step(st) == SQLITE_ROW)
		g_ptr_array_add(a, g_strdup_printf("%s\t%s\t%s", sqlite3_column_text(st, 0),
		    sqlite3_column_text(st, 1), sqlite3_column_text(st, 2)));
	sqlite3_finalize(st);
	return a;
}

/* ---- send ---------------------------------------------------------------- */

static gboolean
is_local(PoStore *s, const char *addr, char mailbox[ADDR_PART_MAX + 1])
{
	PgAddr a;

	if (!addr_parse(addr, strlen(addr), &a, NULL) || !addr_same_po(&a, s->net, s->po))
		return FALSE;
	g_strlcpy(mailbox, a.mailbox, ADDR_PART_MAX + 1);
	return TRUE;
}

/* Whether addr (canonical) is in the global address list the gateway sent. */
static gboolean
gal_has(PoStore *s, const char *addr)
{
	sqlite3_stmt *st = pg_db_prepare(s->pg, "SELECT 1 FROM gal WHERE address = ?", NULL);
	gboolean yes;

	if (!st)
		return FALSE;
	sqlite3_bind_text(st, 1, addr, -1, SQLITE_TRANSIENT);
	yes = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return yes;
}

gboolean
po_send(PoStore *s, LegacyMessage *msg, char **bundle_name, GError **error)
{
	char mb[ADDR_PART_MAX + 1];
	GHashTable *done = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	LegacyMessage *remote = msg_copy(msg);
	GPtrArray *one = g_ptr_array_new();
	gboolean any_remote = FALSE, ok = FALSE;

	for (guint i = 0; i < msg->recipients->len; i++) {
		MsgRecipient *r = msg->recipients->pdata[i];
		MsgRecipient *rr = remote->recipients->pdata[i];
		if (is_local(s, r->addr, mb) && user_exists(s, mb)) {
			rr->responsible = FALSE;
		} else if (is_local(s, r->addr, mb) && !gal_has(s, r->addr)) {
			g_set_error(error, PO_ERROR, PO_ERROR_NOUSER,
			    "no mailbox %s at %s: nothing was sent", mb, s->name);
			goto out;
		} else {
			/* Elsewhere, or a custom recipient or list of this postoffice
			 * in the global address list: the gateway resolves those. */
			rr->responsible = TRUE;
			any_remote = TRUE;
		}
	}
	if (!msg_validate(msg, error))
		goto out;
	if (!pg_db_begin(s->pg, TRUE, error))
		goto out;
	for (guint i = 0; i < msg->recipients->len; i++) {
		MsgRecipient *r = msg->recipients->pdata[i];
		if (!is_local(s, r->addr, mb) || !user_exists(s, mb) ||
		    g_hash_table_contains(done, mb))
			continue;
		g_hash_table_add(done, g_strdup(mb));
		if (!store_mail(s, mb, msg, "local", error))
			goto rollback;
	}
	if (any_remote) {
		g_ptr_array_add(one, remote);
		if (!outbox_add(s, one, bundle_name, error))
			goto rollback;
	}
	if (!pg_db_commit(s->pg, "commit", error))
		goto rollback;
	pg_info(msg->id, "sent: %u local, %s", g_hash_table_size(done),
	    any_remote ? "bundled for the gateway" : "nothing for the gateway");
	/* Sent it is: a bundle that cannot be written now waits in the outbox
	 * (status shows it), and the next send or deliver writes it. */
	ok = TRUE;
	{
		GError *e = NULL;
		if (!outbox_flush(s, &e)) {
			pg_warn(msg->id, "bundle queued, not yet in out/ (the next send or deliver "
			    "writes it): %s", e->message);
			g_error_free(e);
		}
	}
	goto out;
rollback:
	pg_db_rollback(s->pg);
out:
	g_hash_table_unref(done);
	g_ptr_array_unref(one);
	msg_free(remote);
	return ok;
}

/* ---- deliver ------------------------------------------------------------- */

/* A text in the postoffice's codepage, from UTF-8. */
static char *
local_text(PoStore *s, const char *utf8)
{
	char *t = cp_from_utf8(s->codepage, utf8, strlen(utf8), NULL, NULL);
	return t ? t : g_strdup("?");
}

/* A report (NDR or receipt) about m, from this postoffice's postmaster. */
static LegacyMessage *
report_new(PoStore *s, const LegacyMessage *m, MsgClass class)
{
	LegacyMessage *r = msg_new();
	gint64 now = g_get_real_time() / G_USEC_PER_SEC;
	char *pm = g_strdup_printf("%s/%s", s->name, POSTMASTER);
	char *subj_utf8, *orig = cp_to_utf8(m->codepage, m->subject, strlen(m->subject), NULL);
	GString *body = g_string_new(NULL);

	r->id = msg_new_id(s->name);
	r->class = class;
	r->no_report = TRUE;
	r->about_id = g_strdup(m->id);
	r->submit_time = now;
	r->date = now;
	r->priority = m->priority;
	r->originator.addr = g_strdup(pm);
	r->originator.name = local_text(s, "Postmaster");
	r->from.addr = g_strdup(pm);
	r->from.name = g_strdup(r->originator.name);
	msg_add_recipient(r, m->originator.addr, m->originator.name, TRUE);
	msg_add_party(r->to, m->originator.addr, m->originator.name);
	/* A report carries the hops of what it reports on (SPEC 3.2). */
	for (guint i = 0; i < m->hops->len; i++) {
		MsgHop *h = m->hops->pdata[i];
		msg_add_hop(r, h->node, h->time);
	}
	/* Building a report must not fail: at the hop limit, add no hop. */
	if (r->hops->len < MSG_MAX_HOPS)
		msg_add_hop(r, s->name, now);
	r->codepage = g_strdup(s->codepage);
	subj_utf8 = g_strdup_printf("%s: %s", class == MSG_CLASS_NDR ? "Not delivered" :
	    "Delivered", orig ? orig : "");
	r->subject = local_text(s, subj_utf8);
	if (strlen(r->subject) > MSG_MAX_SUBJECT_LEN)
		r->subject[MSG_MAX_SUBJECT_LEN] = '\0';
	g_string_printf(body, "%s at postoffice %s.\r\n\r\nOriginal message: %s\r\n",
	    class == MSG_CLASS_NDR ? "Your message could not be delivered to some recipients" :
	    "Your message was delivered", s->name, m->id);
	{
		char *t = local_text(s, body->str);
		r->body = g_bytes_new_take(t, strlen(t));
	}
	g_string_free(body, TRUE);
	g_free(subj_utf8);
	g_free(orig);
	g_free(pm);
	return r;
}

static gboolean
move_to_bad(PoStore *s, const char *name, const char *why)
{
	char *from = g_build_filename(s->in, name, NULL);
	/* Keep room for ".NAME.why.tmp" within a file name's 255 bytes. */
	char *target = g_strndup(name, 200), *to, *why_name, *text;
	GError *e = NULL;
	gboolean ok;

	/* Never overwrite an earlier refusal. */
	for (int i = 1;; i++) {
		to = g_build_filename(s->bad, target, NULL);
		if (!g_file_test(to, G_FILE_TEST_EXISTS))
			break;
		g_free(to);
		g_free(target);
		target = g_strdup_printf("%.200s.%d", name, i);
	}
	why_name = g_strdup_printf("%s.why", target);
	text = strlen(name) > 200 ? g_strdup_printf("%s\n(in/ name: %s)\n", why, name) :
	    g_strdup_printf("%s\n", why);
	ok = atomic_write_file(s->bad, why_name, text, strlen(text), 0640, &e);
	if (ok && rename(from, to) != 0) {
		g_set_error(&e, PO_ERROR, PO_ERROR_IO, "rename %s to %s: %s", from, to,
		    g_strerror(errno));
		ok = FALSE;
	}
	ok = ok && fsync_dir(s->bad, &e) && fsync_dir(s->in, &e);
	if (ok) {
		fault_step("move to bad");
		pg_warn(name, "refused, moved to %s: %s", to, why);
	} else {
		pg_error(name, "refused (%s) but could not move it to bad/: %s", why, e->message);
		g_error_free(e);
	}
	g_free(from);
	g_free(to);
	g_free(target);
	g_free(why_name);
	g_free(text);
	return ok;
}

/* Move a refused bundle to bad/; one that cannot be moved stays in in/. */
static void
refuse(PoStore *s, const char *name, const char *why, PoDeliverStats *stats)
{
	if (move_to_bad(s, name, why))
		stats->bundles_refused++;
	else
		stats->bundles_failed++;
}

static gboolean
remove_applied(PoStore *s, const char *name, GError **error)
{
	char *path = g_build_filename(s->in, name, NULL);
	gboolean ok = unlink(path) == 0;

	if (!ok)
		g_set_error(error, PO_ERROR, PO_ERROR_IO, "unlink %s: %s", path, g_strerror(errno));
	g_free(path);
	if (ok && !fsync_dir(s->in, error))
		return FALSE;
	if (ok)
		fault_step("unlink");
	return ok;
}

/* The HMAC recorded for (source, dest, seq), or NULL when not applied. */
static GBytes *
ledger_hmac(PoStore *s, const Bundle *b)
{
	sqlite3_stmt *st = pg_db_prepare(s->pg, "SELECT hmac FROM ledger WHERE source = ? AND"
	    " dest = ? AND seq = ?", NULL);
	GBytes *h = NULL;

	if (!st)
		return NULL;
	sqlite3_bind_text(st, 1, b->source, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, b->dest, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)b->seq);
	if (sqlite3_step(st) == SQLITE_ROW)
		h = g_bytes_new(sqlite3_column_blob(st, 0), (gsize)sqlite3_column_bytes(st, 0));
	sqlite3_finalize(st);
	return h;
}

static guint64
ledger_max(PoStore *s, const Bundle *b)
{
	sqlite3_stmt *st = pg_db_prepare(s->pg, "SELECT coalesce(max(seq), 0) FROM ledger WHERE"
	    " source = ? AND dest = ?", NULL);
	guint64 max = 0;

	if (!st)
		return 0;
	sqlite3_bind_text(st, 1, b->source, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, b->dest, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		max = (guint64)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return max;
}

static gboolean
ledger_add(PoStore *s, const Bundle *b, GError **error)
{
	sqlite3_stmt *st = pg_db_prepare(s->pg, "INSERT INTO ledger(source, dest, seq, hmac, applied)"
	    " VALUES (?, ?, ?, ?, ?)", error);
	gboolean ok;

	if (!st)
		return FALSE;
	sqlite3_bind_text(st, 1, b->source, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, b->dest, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)b->seq);
	sqlite3_bind_blob(st, 4, b->hmac, BUNDLE_HMAC_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, g_get_real_time() / G_USEC_PER_SEC);
	ok = sqlite3_step(st) == SQLITE_DONE || pg_db_fail(s->pg, error, "ledger");
	sqlite3_finalize(st);
	return ok;
}

/* Apply one verified bundle in one transaction. */
static gboolean
apply_bundle(PoStore *s, const Bundle *b, const char *name, gboolean ignore_resp,
    PoDeliverStats *stats, GError **error)
{
	GPtrArray *reports = g_ptr_array_new_with_free_func((GDestroyNotify)msg_free);
	/* "delivered to" lines wait for the commit: (message id, mailbox) pairs */
	GPtrArray *done = g_ptr_array_new_with_free_func(g_free);
	char *origin = g_strdup_printf("%s#%" G_GUINT64_FORMAT, b->source, b->seq);
	char mb[ADDR_PART_MAX + 1];
	guint delivered = 0;
	gboolean ok = FALSE;

	if (!pg_db_begin(s->pg, TRUE, error))
		goto out;
	for (guint i = 0; i < b->entries->len; i++) {
		BundleEntry *e = b->entries->pdata[i];
		LegacyMessage *m, *ndr = NULL, *receipt = NULL;
		GHashTable *seen;
		if (e->kind == BUNDLE_ENTRY_DIRECTORY) {
			gsize n;
			const void *d = g_bytes_get_data(e->data, &n);
			sqlite3_stmt *st = pg_db_prepare(s->pg, "INSERT INTO directory(source, seq,"
			    " received, data) VALUES (?, ?, ?, ?)", error);
			if (!st)
				goto rollback;
			sqlite3_bind_text(st, 1, b->source, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 2, (sqlite3_int64)b->seq);
			sqlite3_bind_int64(st, 3, g_get_real_time() / G_USEC_PER_SEC);
			sqlite3_bind_blob(st, 4, d, (int)n, SQLITE_STATIC);
			if (sqlite3_step(st) != SQLITE_DONE) {
				sqlite3_finalize(st);
				pg_db_fail(s->pg, error, "directory entry");
				goto rollback;
			}
			sqlite3_finalize(st);
			pg_info(name, "directory entry of %zu bytes stored", (size_t)n);
			continue;
		}
		m = bundle_message(b, i, error);   /* verified by bundle_decode */
		if (!m)
			goto rollback;
		seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
		for (guint j = 0; j < m->recipients->len; j++) {
			MsgRecipient *r = m->recipients->pdata[j];
			if (!is_local(s, r->addr, mb) || (!r->responsible && !ignore_resp))
				continue;
			if (g_hash_table_contains(seen, mb))
				continue;
			g_hash_table_add(seen, g_strdup(mb));
			/* A report is never lost: one for a mailbox that does not
			 * exist goes to the postmaster's (SPEC 3.5). */
			if (!user_exists(s, mb) && (m->no_report || m->class != MSG_CLASS_NORMAL)) {
				pg_warn(m->id, "no mailbox %s at %s for this report; given to %s",
				    mb, s->name, POSTMASTER);
				g_strlcpy(mb, POSTMASTER, sizeof mb);
				if (g_hash_table_contains(seen, mb))
					continue;
				g_hash_table_add(seen, g_strdup(mb));
			}
			if (user_exists(s, mb)) {
				if (!store_mail(s, mb, m, origin, error)) {
					g_hash_table_unref(seen);
					msg_free(m);
					goto rollback;
				}
				delivered++;
				g_ptr_array_add(done, g_strdup(m->id));
				g_ptr_array_add(done, g_strdup(mb));
				if ((m->requests & MSG_REQ_RECEIPT) && !m->no_report &&
				    m->class == MSG_CLASS_NORMAL) {
					if (!receipt) {
						receipt = report_new(s, m, MSG_CLASS_RECEIPT);
						g_ptr_array_add(reports, receipt);
					}
					msg_add_report_item(receipt, r->addr, MSG_REPORT_DELIVERED,
					    MSG_REASON_NONE, "delivered");
				}
			} else if (m->no_report || m->class != MSG_CLASS_NORMAL) {
				/* Only when POSTMASTER itself was deleted by hand. */
				pg_error(m->id, "no mailbox %s at %s, not even %s: the report is "
				    "dropped", mb, s->name, POSTMASTER);
			} else if (m->requests & MSG_REQ_NO_NDR) {
				pg_warn(m->id, "no mailbox %s at %s; the originator asked for no "
				    "non-delivery report", mb, s->name);
			} else {
				char *diag = g_strdup_printf("no mailbox %s at postoffice %s",
				    mb, s->name);
				char *ldiag = local_text(s, diag);
				if (!ndr) {
					ndr = report_new(s, m, MSG_CLASS_NDR);
					g_ptr_array_add(reports, ndr);
				}
				msg_add_report_item(ndr, r->addr, MSG_REPORT_NOT_DELIVERED,
				    MSG_REASON_UNKNOWN_RECIPIENT, ldiag);
				pg_warn(m->id, "%s; non-delivery report to %s", diag,
				    m->originator.addr);
				g_free(diag);
				g_free(ldiag);
			}
		}
		g_hash_table_unref(seen);
		msg_free(m);
	}
	/* Reports to a local originator go straight into its mailbox. */
	for (guint i = 0; i < reports->len;) {
		LegacyMessage *r = reports->pdata[i];
		MsgRecipient *to = r->recipients->pdata[0];
		if (is_local(s, to->addr, mb)) {
			/* A report is never lost: with no such mailbox, the postmaster's. */
			if (!user_exists(s, mb))
				g_strlcpy(mb, POSTMASTER, sizeof mb);
			if (!store_mail(s, mb, r, "report", error))
				goto rollback;
			g_ptr_array_remove_index(reports, i);
			stats->reports_made++;
			continue;
		}
		i++;
	}
	if (reports->len > 0) {
		if (!outbox_add(s, reports, NULL, error))
			goto rollback;
		stats->reports_made += reports->len;
	}
	if (!ledger_add(s, b, error) || !pg_db_commit(s->pg, "commit", error))
		goto rollback;
	for (guint i = 0; i + 1 < done->len; i += 2)
		pg_info(done->pdata[i], "delivered to %s/%s", s->name, (char *)done->pdata[i + 1]);
	stats->messages_delivered += delivered;
	ok = TRUE;
	goto out;
rollback:
	pg_db_rollback(s->pg);
out:
	g_ptr_array_unref(done);
	g_ptr_array_unref(reports);
	g_free(origin);
	return ok;
}

static int
name_cmp(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

gboolean
po_deliver(PoStore *s, gboolean ignore_resp, PoDeliverStats *stats, GError **error)
{
	GDir *d;
	const char *ent;
	GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
	gboolean ok = TRUE;
	GError *e = NULL;

	memset(stats, 0, sizeof *stats);
	/* Bundles a crash left in the outbox go out first. */
	if (!outbox_flush(s, error))
		goto fail;
	d = g_dir_open(s->in, 0, &e);
	if (!d) {
		g_set_error(error, PO_ERROR, PO_ERROR_IO, "%s", e->message);
		g_error_free(e);
		goto fail;
	}
	while ((ent = g_dir_read_name(d)))
		if (ent[0] != '.')
			g_ptr_array_add(names, g_strdup(ent));
	g_dir_close(d);
	g_ptr_array_sort(names, name_cmp);

	for (guint i = 0; ok && i < names->len; i++) {
		const char *name = names->pdata[i];
		char *path = g_build_filename(s->in, name, NULL);
		Bundle *b = bundle_read_file(path, s->key, &e);
		gboolean gone = !b && !g_file_test(path, G_FILE_TEST_EXISTS);
		GBytes *prior;
		guint64 max;
		g_free(path);
		if (!b) {
			if (gone) {
				g_clear_error(&e);
				continue;
			}
			if (g_error_matches(e, BUNDLE_ERROR, BUNDLE_ERROR_IO)) {
				/* A fault of ours, not of the bundle: leave it for the next run. */
				pg_error(name, "left in in/: %s", e->message);
				stats->bundles_failed++;
				g_clear_error(&e);
				continue;
			}
			refuse(s, name, e->message, stats);
			g_clear_error(&e);
			continue;
		}
		if (strcmp(b->dest, s->name) != 0) {
			char *why = g_strdup_printf("addressed to %s, this is %s", b->dest, s->name);
			refuse(s, name, why, stats);
			g_free(why);
			bundle_free(b);
			continue;
		}
		prior = ledger_hmac(s, b);
		if (prior) {
			gboolean same = g_bytes_get_size(prior) == BUNDLE_HMAC_LEN &&
			    memcmp(g_bytes_get_data(prior, NULL), b->hmac, BUNDLE_HMAC_LEN) == 0;
			g_bytes_unref(prior);
			if (same) {
				pg_info(name, "sequence number %" G_GUINT64_FORMAT " from %s was "
				    "already applied; duplicate dropped", b->seq, b->source);
				ok = remove_applied(s, name, error);
				stats->bundles_duplicate++;
			} else {
				char *why = g_strdup_printf("sequence number %" G_GUINT64_FORMAT
				    " from %s was already applied with different contents (replay)",
				    b->seq, b->source);
				refuse(s, name, why, stats);
				g_free(why);
			}
			bundle_free(b);
			continue;
		}
		max = ledger_max(s, b);
		if (b->seq == max + 2)
			pg_warn(name, "gap: sequence number %" G_GUINT64_FORMAT " from %s has not "
			    "arrived", max + 1, b->source);
		else if (b->seq > max + 2)
			pg_warn(name, "gap: sequence numbers %" G_GUINT64_FORMAT "-%" G_GUINT64_FORMAT
			    " from %s have not arrived", max + 1, b->seq - 1, b->source);
		else if (b->seq < max)
			pg_info(name, "late bundle %" G_GUINT64_FORMAT " from %s applied",
			    b->seq, b->source);
		if (!apply_bundle(s, b, name, ignore_resp, stats, &e)) {
			if (e->domain == PO_ERROR || e->domain == G_FILE_ERROR) {
				g_propagate_error(error, e);
				ok = FALSE;
			} else {
				/* What this bundle holds cannot be applied, now or ever:
				 * set it aside so that the bundles after it still go. */
				char *why = g_strdup_printf("cannot be applied: %s", e->message);
				refuse(s, name, why, stats);
				g_free(why);
				g_clear_error(&e);
			}
			bundle_free(b);
			continue;
		}
		ok = outbox_flush(s, error) && remove_applied(s, name, error);
		if (ok) {
			stats->bundles_applied++;
			pg_info(name, "applied: %u entries from %s, sequence number %"
			    G_GUINT64_FORMAT, b->entries->len, b->source, b->seq);
		}
		bundle_free(b);
	}
	g_ptr_array_unref(names);
	return ok;
fail:
	g_ptr_array_unref(names);
	return FALSE;
}

/* ---- reading mailboxes and status ---------------------------------------- */

GPtrArray *
po_mailbox(PoStore *s, const char *mailbox, GError **error)
{
	char mb[ADDR_PART_MAX + 1];
	sqlite3_stmt *st;
	GPtrArray *a;

	if (!mailbox_norm(mailbox, mb, error))
		return NULL;
	if (!user_exists(s, mb)) {
		g_set_error(error, PO_ERROR, PO_ERROR_NOUSER, "no mailbox %s at %s", mb, s->name);
		return NULL;
	}
	st = pg_db_prepare(s->pg, "SELECT data FROM mail WHERE mailbox = ? ORDER BY id", error);
	if (!st)
		return NULL;
	sqlite3_bind_text(st, 1, mb, -1, SQLITE_STATIC);
	a = g_ptr_array_new_with_free_func((GDestroyNotify)msg_free);
	while (sqlite3_step(st) == SQLITE_ROW) {
		LegacyMessage *m = msg_decode(sqlite3_column_blob(st, 0),
		    (size_t)sqlite3_column_bytes(st, 0), error);
		if (!m) {
			sqlite3_finalize(st);
			g_ptr_array_unref(a);
			return NULL;
		}
		g_ptr_array_add(a, m);
	}
	sqlite3_finalize(st);
	return a;
}

GPtrArray *
po_mailbox_counts(PoStore *s, GError **error)
{
	sqlite3_stmt *st = pg_db_prepare(s->pg, "SELECT u.mailbox, count(m.id) FROM users u"
	    " LEFT JOIN mail m ON m.mailbox = u.mailbox GROUP BY u.mailbox ORDER BY u.mailbox",
	    error);
	GPtrArray *a;

	if (!st)
		return NULL;
	a = g_ptr_array_new_with_free_func(g_free);
	while (sqlite3_step(st) == SQLITE_ROW)
		g_ptr_array_add(a, g_strdup_printf("%s %lld", sqlite3_column_text(st, 0),
		    (long long)sqlite3_column_int64(st, 1)));
	sqlite3_finalize(st);
	return a;
}

/* Append "1-3, 5" style ranges of a sorted list, and the gaps between. */
static void
ranges(GString *out, GArray *seqs)
{
	GString *gaps = g_string_new(NULL);
	guint64 expect = 1;

	for (guint i = 0; i < seqs->len;) {
		guint64 lo = g_array_index(seqs, guint64, i), hi = lo;
		while (i + 1 < seqs->len && g_array_index(seqs, guint64, i + 1) == hi + 1)
			hi = g_array_index(seqs, guint64, ++i);
		i++;
		if (lo > expect) {
			if (gaps->len)
				g_string_append(gaps, ", ");
			if (lo - 1 == expect)
				g_string_append_printf(gaps, "%" G_GUINT64_FORMAT, expect);
			else
				g_string_append_printf(gaps, "%" G_GUINT64_FORMAT "-%" G_GUINT64_FORMAT,
				    expect, lo - 1);
		}
		if (out->len && out->str[out->len - 1] != ' ')
			g_string_append(out, ", ");
		if (lo == hi)
			g_string_append_printf(out, "%" G_GUINT64_FORMAT, lo);
		else
			g_string_append_printf(out, "%" G_GUINT64_FORMAT "-%" G_GUINT64_FORMAT, lo, hi);
		expect = hi + 1;
	}
	g_string_append_printf(out, "; gaps: %s", gaps->len ? gaps->str : "none");
	g_string_free(gaps, TRUE);
}

char *
po_status(PoStore *s, GError **error)
{
	GString *out = g_string_new(NULL);
	sqlite3_stmt *st;
	char *src = NULL;
	GArray *seqs = g_array_new(FALSE, FALSE, sizeof(guint64));
	GDir *d;
	const char *ent;
	guint nbad = 0, nout = 0, nin = 0;

	g_string_append_printf(out, "postoffice %s\ncodepage %s\ngateway %s\n", s->name,
	    s->codepage, s->gateway);
	st = pg_db_prepare(s->pg, "SELECT source, seq FROM ledger WHERE dest = ? ORDER BY source, seq",
	    error);
	if (!st)
		goto fail;
	sqlite3_bind_text(st, 1, s->name, -1, SQLITE_STATIC);
	for (;;) {
		int rc = sqlite3_step(st);
		const char *row_src = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
		if (src && (!row_src || strcmp(row_src, src) != 0)) {
			GString *line = g_string_new(NULL);
			g_string_append_printf(line, "received from %s: applied ", src);
			ranges(line, seqs);
			g_string_append_printf(out, "%s\n", line->str);
			g_string_free(line, TRUE);
			g_array_set_size(seqs, 0);
			g_clear_pointer(&src, g_free);
		}
		if (!row_src)
			break;
		if (!src)
			src = g_strdup(row_src);
		{
			guint64 v = (guint64)sqlite3_column_int64(st, 1);
			g_array_append_val(seqs, v);
		}
	}
	sqlite3_finalize(st);
	st = pg_db_prepare(s->pg, "SELECT dest, last FROM seqs ORDER BY dest", error);
	if (!st)
		goto fail;
	while (sqlite3_step(st) == SQLITE_ROW)
		g_string_append_printf(out, "sent to %s: last sequence number %lld\n",
		    sqlite3_column_text(st, 0), (long long)sqlite3_column_int64(st, 1));
	sqlite3_finalize(st);
	if ((d = g_dir_open(s->in, 0, NULL))) {
		while ((ent = g_dir_read_name(d)))
			nin += ent[0] != '.';
		g_dir_close(d);
	}
	if ((d = g_dir_open(s->out, 0, NULL))) {
		while ((ent = g_dir_read_name(d)))
			nout += ent[0] != '.';
		g_dir_close(d);
	}
	g_string_append_printf(out, "in/: %u waiting\nout/: %u waiting for the gateway\n",
	    nin, nout);
	st = pg_db_prepare(s->pg, "SELECT count(*) FROM outbox", error);
	if (!st)
		goto fail;
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) > 0)
		g_string_append_printf(out, "outbox: %lld bundles not yet written to out/ "
		    "(the next send or deliver writes them)\n",
		    (long long)sqlite3_column_int64(st, 0));
	sqlite3_finalize(st);
	if ((d = g_dir_open(s->bad, 0, NULL))) {
		GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
		while ((ent = g_dir_read_name(d)))
			if (ent[0] != '.' && !g_str_has_suffix(ent, ".why"))
				g_ptr_array_add(names, g_strdup(ent));
		g_dir_close(d);
		g_ptr_array_sort(names, name_cmp);
		nbad = names->len;
		g_string_append_printf(out, "bad/: %u refused\n", nbad);
		for (guint i = 0; i < names->len; i++) {
			char *why_path = g_strdup_printf("%s/%s.why", s->bad,
			    (char *)names->pdata[i]);
			char *why = NULL;
			if (g_file_get_contents(why_path, &why, NULL, NULL))
				g_strchomp(why);
			g_string_append_printf(out, "  %s: %s\n", (char *)names->pdata[i],
			    why ? why : "(no .why file)");
			g_free(why);
			g_free(why_path);
		}
		g_ptr_array_unref(names);
	}
	g_array_unref(seqs);
	return g_string_free(out, FALSE);
fail:
	g_array_unref(seqs);
	g_string_free(out, TRUE);
	return NULL;
}
