/* po_deliver.c - the reference postoffice delivers: each bundle in in/
 * applied exactly once, reports for what cannot be delivered, refused
 * bundles set aside in bad/ (see po_store_int.h).
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
#include "po_store_int.h"

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
	GError *e = NULL;
	char *to = NULL;

	if (!atomic_set_aside(s->in, name, s->bad, why, &to, &e)) {
		pg_error(name, "refused (%s) but could not move it to bad/: %s", why, e->message);
		g_error_free(e);
		return FALSE;
	}
	pg_warn(name, "refused, moved to %s: %s", to, why);
	g_free(to);
	return TRUE;
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
	if (ok && !atomic_fsync_dir(s->in, error))
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
	sqlite3_stmt *st = pg_db_prepare(s->pg,
	    "INSERT INTO ledger(source, dest, seq, hmac, applied)"
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

/* A directory export in a bundle: stored for postgate-po import-dir. */
static gboolean
store_directory(PoStore *s, const Bundle *b, const BundleEntry *e, const char *name,
    GError **error)
{
	gsize n;
	const void *d = g_bytes_get_data(e->data, &n);
	sqlite3_stmt *st = pg_db_prepare(s->pg, "INSERT INTO directory(source, seq,"
	    " received, data) VALUES (?, ?, ?, ?)", error);

	if (!st)
		return FALSE;
	sqlite3_bind_text(st, 1, b->source, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)b->seq);
	sqlite3_bind_int64(st, 3, g_get_real_time() / G_USEC_PER_SEC);
	sqlite3_bind_blob(st, 4, d, (int)n, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE) {
		sqlite3_finalize(st);
		return pg_db_fail(s->pg, error, "directory entry");
	}
	sqlite3_finalize(st);
	pg_info(name, "directory entry of %zu bytes stored", (size_t)n);
	return TRUE;
}

/* What one bundle's transaction gathers until its commit. */
typedef struct {
	const char *origin;     /* SOURCE#SEQ, stored with each copy */
	gboolean ignore_resp;
	GPtrArray *reports;     /* LegacyMessage *: NDRs and receipts made */
	GPtrArray *done;        /* "delivered to" lines, after the commit: (id, mailbox) */
	guint delivered;
} Apply;

/* The report of class for m, made once per message into *slot. */
static LegacyMessage *
report_for(PoStore *s, Apply *ap, const LegacyMessage *m, MsgClass class,
    LegacyMessage **slot)
{
	if (!*slot) {
		*slot = report_new(s, m, class);
		g_ptr_array_add(ap->reports, *slot);
	}
	return *slot;
}

/* One message: a copy in each mailbox here it is for (once per mailbox, only
 * where responsible unless ignore_resp), a receipt or a non-delivery report
 * where asked for. */
static gboolean
deliver_message(PoStore *s, Apply *ap, const LegacyMessage *m, GError **error)
{
	LegacyMessage *ndr = NULL, *receipt = NULL;
	GHashTable *seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	char mb[ADDR_PART_MAX + 1];
	gboolean ok = TRUE;

	for (guint j = 0; ok && j < m->recipients->len; j++) {
		MsgRecipient *r = m->recipients->pdata[j];

		if (!pos_is_local(s, r->addr, mb) || (!r->responsible && !ap->ignore_resp))
			continue;
		if (g_hash_table_contains(seen, mb))
			continue;
		g_hash_table_add(seen, g_strdup(mb));
		/* A report is never lost: one for a mailbox that does not
		 * exist goes to the postmaster's (SPEC 3.5). */
		if (!pos_user_exists(s, mb) && (m->no_report || m->class != MSG_CLASS_NORMAL)) {
			pg_warn(m->id, "no mailbox %s at %s for this report; given to %s",
			    mb, s->name, POSTMASTER);
			g_strlcpy(mb, POSTMASTER, sizeof mb);
			if (g_hash_table_contains(seen, mb))
				continue;
			g_hash_table_add(seen, g_strdup(mb));
		}
		if (pos_user_exists(s, mb)) {
			if (!pos_store_mail(s, mb, m, ap->origin, error)) {
				ok = FALSE;
				break;
			}
			ap->delivered++;
			g_ptr_array_add(ap->done, g_strdup(m->id));
			g_ptr_array_add(ap->done, g_strdup(mb));
			if ((m->requests & MSG_REQ_RECEIPT) && !m->no_report &&
			    m->class == MSG_CLASS_NORMAL)
				msg_add_report_item(report_for(s, ap, m, MSG_CLASS_RECEIPT,
				    &receipt),
				    r->addr, MSG_REPORT_DELIVERED, MSG_REASON_NONE, "delivered");
		} else if (m->no_report || m->class != MSG_CLASS_NORMAL) {
			/* Only when POSTMASTER itself was deleted by hand. */
			pg_error(m->id, "no mailbox %s at %s, not even %s: the report is "
			    "dropped", mb, s->name, POSTMASTER);
		} else if (m->requests & MSG_REQ_NO_NDR) {
			pg_warn(m->id, "no mailbox %s at %s; the originator asked for no "
			    "non-delivery report", mb, s->name);
		} else {
			char *diag = g_strdup_printf("no mailbox %s at postoffice %s", mb, s->name);
			char *ldiag = local_text(s, diag);

			msg_add_report_item(report_for(s, ap, m, MSG_CLASS_NDR, &ndr), r->addr,
			    MSG_REPORT_NOT_DELIVERED, MSG_REASON_UNKNOWN_RECIPIENT, ldiag);
			pg_warn(m->id, "%s; non-delivery report to %s", diag, m->originator.addr);
			g_free(diag);
			g_free(ldiag);
		}
	}
	g_hash_table_unref(seen);
	return ok;
}

/* Reports to a local originator go straight into its mailbox (with no such
 * mailbox, the postmaster's: a report is never lost); the rest to the
 * outbox. */
static gboolean
reports_place(PoStore *s, Apply *ap, PoDeliverStats *stats, GError **error)
{
	char mb[ADDR_PART_MAX + 1];

	for (guint i = 0; i < ap->reports->len;) {
		LegacyMessage *r = ap->reports->pdata[i];
		MsgRecipient *to = r->recipients->pdata[0];

		if (pos_is_local(s, to->addr, mb)) {
			if (!pos_user_exists(s, mb))
				g_strlcpy(mb, POSTMASTER, sizeof mb);
			if (!pos_store_mail(s, mb, r, "report", error))
				return FALSE;
			g_ptr_array_remove_index(ap->reports, i);
			stats->reports_made++;
			continue;
		}
		i++;
	}
	if (ap->reports->len > 0) {
		if (!pos_outbox_add(s, ap->reports, NULL, error))
			return FALSE;
		stats->reports_made += ap->reports->len;
	}
	return TRUE;
}

/* Apply one verified bundle in one transaction. */
static gboolean
apply_bundle(PoStore *s, const Bundle *b, const char *name, gboolean ignore_resp,
    PoDeliverStats *stats, GError **error)
{
	char *origin = g_strdup_printf("%s#%" G_GUINT64_FORMAT, b->source, b->seq);
	Apply ap = {
		.origin = origin, .ignore_resp = ignore_resp,
		.reports = g_ptr_array_new_with_free_func((GDestroyNotify)msg_free),
		.done = g_ptr_array_new_with_free_func(g_free),
	};
	gboolean ok = pg_db_begin(s->pg, TRUE, error);

	for (guint i = 0; ok && i < b->entries->len; i++) {
		BundleEntry *e = b->entries->pdata[i];
		LegacyMessage *m;

		if (e->kind == BUNDLE_ENTRY_DIRECTORY) {
			ok = store_directory(s, b, e, name, error);
			continue;
		}
		m = bundle_message(b, i, error);   /* verified by bundle_decode */
		ok = m && deliver_message(s, &ap, m, error);
		msg_free(m);
	}
	ok = ok && reports_place(s, &ap, stats, error) && ledger_add(s, b, error) &&
	    pg_db_commit(s->pg, "commit", error);
	if (ok) {
		for (guint i = 0; i + 1 < ap.done->len; i += 2)
			pg_info(ap.done->pdata[i], "delivered to %s/%s", s->name,
			    (char *)ap.done->pdata[i + 1]);
		stats->messages_delivered += ap.delivered;
	} else {
		pg_db_rollback(s->pg);
	}
	g_ptr_array_unref(ap.done);
	g_ptr_array_unref(ap.reports);
	g_free(origin);
	return ok;
}

int
pos_name_cmp(gconstpointer a, gconstpointer b)
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
	if (!pos_outbox_flush(s, error))
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
	g_ptr_array_sort(names, pos_name_cmp);

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
			char *why = g_strdup_printf("addressed to %s, this is %s", b->dest,
			    s->name);
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
			pg_warn(name,
			    "gap: sequence numbers %" G_GUINT64_FORMAT "-%" G_GUINT64_FORMAT
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
		ok = pos_outbox_flush(s, error) && remove_applied(s, name, error);
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
