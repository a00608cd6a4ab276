/* po_send.c - the reference postoffice sends: mail stored in mailboxes, the
 * outbox of finished bundles and their sequence numbers, the GAL, and
 * po_send (see po_store_int.h). */
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

/* ---- mail, outbox, sequence numbers -------------------------------------- */

gboolean
pos_store_mail(PoStore *s, const char *mailbox, const LegacyMessage *m, const char *origin,
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
gboolean
pos_outbox_add(PoStore *s, GPtrArray *msgs, char **name_out, GError **error)
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
gboolean
pos_outbox_flush(PoStore *s, GError **error)
{
	sqlite3_stmt *st = pg_db_prepare(s->pg,
	    "SELECT name, data FROM outbox ORDER BY name", error);
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
	return pos_outbox_flush(s, error);
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
	st = pg_db_prepare(s->pg,
	    "INSERT OR REPLACE INTO gal(address, name, smtp) VALUES (?, ?, ?)", error);
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
	return pos_rows(s, "SELECT address, smtp, name FROM gal ORDER BY address", "\t", error);
}

/* ---- send ---------------------------------------------------------------- */

gboolean
pos_is_local(PoStore *s, const char *addr, char mailbox[ADDR_PART_MAX + 1])
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
		if (pos_is_local(s, r->addr, mb) && pos_user_exists(s, mb)) {
			rr->responsible = FALSE;
		} else if (pos_is_local(s, r->addr, mb) && !gal_has(s, r->addr)) {
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
		if (!pos_is_local(s, r->addr, mb) || !pos_user_exists(s, mb) ||
		    g_hash_table_contains(done, mb))
			continue;
		g_hash_table_add(done, g_strdup(mb));
		if (!pos_store_mail(s, mb, msg, "local", error))
			goto rollback;
	}
	if (any_remote) {
		g_ptr_array_add(one, remote);
		if (!pos_outbox_add(s, one, bundle_name, error))
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
		if (!pos_outbox_flush(s, &e)) {
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
