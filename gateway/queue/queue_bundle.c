/* queue_bundle.c - bundles to the postoffices: sequence numbers, each
 * bundle recorded before its file is written, and the messages it finishes
 * removed (see queue_int.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib-unix.h>
#include <sqlite3.h>

#include "atomic_write.h"
#include "fault.h"
#include "pg_db.h"
#include "pg_log.h"
#include "queue/queue_int.h"

guint64
queue_bundle_seq_next(Queue *q, const char *po, GError **error)
{
	sqlite3_stmt *st = pg_db_cached(q->pg, "SELECT last FROM po_seqs WHERE po = ?", error);
	guint64 next = 1;
	int rc;

	if (!st)
		return 0;
	pg_db_bind_copy(st, 1, po);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		next = (guint64)sqlite3_column_int64(st, 0) + 1;
	pg_db_done(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		pg_db_fail(q->pg, error, "cannot read a sequence number");
		return 0;
	}
	return next;
}

gboolean
queue_bundle_record(Queue *q, const char *po, guint64 seq, const char *name, GBytes *data,
    const GArray *items, GError **error)
{
	sqlite3_stmt *st = NULL;
	gsize len;
	const void *p = g_bytes_get_data(data, &len);

	if (!pg_db_begin(q->pg, TRUE, error))
		return FALSE;
	if (queue_bundle_seq_next(q, po, error) != seq) {
		if (error && !*error)
			g_set_error(error, QUEUE_ERROR, QUEUE_ERROR_STATE,
			    "sequence number %" G_GUINT64_FORMAT " for %s is taken", seq, po);
		goto fail;
	}
	st = pg_db_cached(q->pg, "INSERT INTO po_seqs(po, last) VALUES(?1, ?2) ON CONFLICT(po) DO "
	    "UPDATE SET last = ?2", error);
	if (!st)
		goto fail;
	pg_db_bind_copy(st, 1, po);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto db;
	pg_db_done(st);
	st = pg_db_cached(q->pg, "INSERT INTO bundles(po, seq, name, data) VALUES(?,?,?,?)", error);
	if (!st)
		goto fail;
	pg_db_bind_copy(st, 1, po);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
	pg_db_bind_copy(st, 3, name);
	sqlite3_bind_blob64(st, 4, p, len, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto db;
	pg_db_done(st);
	st = pg_db_cached(q->pg, "UPDATE recipients SET state = "
	    QUEUE_SQL(QUEUE_STATE_NAME_BUNDLING) ", po = ?3, bundle_seq = ?4 "
	    "WHERE qid = ?1 AND idx = ?2", error);
	if (!st)
		goto fail;
	for (guint i = 0; i < items->len; i++) {
		const QueueItem *it = &g_array_index(items, QueueItem, i);

		sqlite3_reset(st);
		pg_db_bind_copy(st, 1, it->qid);
		sqlite3_bind_int(st, 2, (int)it->idx);
		pg_db_bind_copy(st, 3, po);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)seq);
		if (sqlite3_step(st) != SQLITE_DONE)
			goto db;
	}
	pg_db_done(st);
	if (!pg_db_end(q->pg, error))
		goto fail;
	fault_step("queue bundle recorded");
	return TRUE;
db:
	pg_db_fail(q->pg, error, "cannot record a bundle");
	pg_db_done(st);
fail:
	pg_db_rollback(q->pg);
	return FALSE;
}

GPtrArray *
queue_bundles_unwritten(Queue *q, GError **error)
{
	GPtrArray *out = g_ptr_array_new_with_free_func((GDestroyNotify)queue_bundle_free);
	sqlite3_stmt *st = pg_db_cached(q->pg, "SELECT po, seq, name, data FROM bundles ORDER BY po, seq",
	    error);
	int rc;

	if (!st) {
		g_ptr_array_unref(out);
		return NULL;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		QueueBundle *b = g_new0(QueueBundle, 1);

		b->po = pg_db_col_dup(st, 0);
		b->seq = (guint64)sqlite3_column_int64(st, 1);
		b->name = pg_db_col_dup(st, 2);
		b->data = g_bytes_new(sqlite3_column_blob(st, 3), (gsize)sqlite3_column_bytes(st, 3));
		g_ptr_array_add(out, b);
	}
	pg_db_done(st);
	if (rc != SQLITE_DONE) {
		pg_db_fail(q->pg, error, "cannot list bundles");
		g_ptr_array_unref(out);
		return NULL;
	}
	return out;
}

void
queue_bundle_free(QueueBundle *b)
{
	if (!b)
		return;
	g_free(b->po);
	g_free(b->name);
	if (b->data)
		g_bytes_unref(b->data);
	g_free(b);
}

/* After the commit that removed the rows of gone: the bodies of their own
 * go too (a crash in between leaves an orphan at worst, which
 * queue_cleanup removes). */
void
qi_finished_gone(Queue *q, GPtrArray *gone)
{
	for (guint i = 0; i < gone->len; i++) {
		const char *g = gone->pdata[i];

		if (g[0] == 'r') {
			char **f = g_strsplit(g + 1, "\t", 3);

			pg_info(f[0], "to=<%s>, %s -> %s (its report %s has left the queue)", f[1],
			    queue_state_name(QUEUE_ST_REPORTED), queue_state_name(QUEUE_ST_DONE), f[2]);
			g_strfreev(f);
			continue;
		}
		if (g[0] == 'f') {
			char *path = qi_body_path(q, g + 1);

			if (unlink(path) != 0 && errno != ENOENT)
				pg_warn(g + 1, "queue: cannot remove %s: %s", path, g_strerror(errno));
			g_free(path);
		}
		pg_info(g + 1, "removed: every recipient is done");
	}
}

guint
qi_gone_messages(const GPtrArray *gone)
{
	guint n = 0;

	for (guint i = 0; i < gone->len; i++)
		n += ((const char *)gone->pdata[i])[0] != 'r';
	return n;
}

/* Messages all of whose recipients are finished leave the queue. */
gboolean
qi_delete_finished(Queue *q, GPtrArray *gone, GError **error)
{
	GPtrArray *qids = g_ptr_array_new_with_free_func(g_free);
	sqlite3_stmt *st;
	gboolean ok = TRUE;
	int rc;

	/* 'f'/'i' + qid: whether its body is a file of its own. */
	st = pg_db_cached(q->pg, "SELECT m.qid, m.data IS NULL FROM messages m WHERE NOT EXISTS "
	    "(SELECT 1 FROM recipients r WHERE r.qid = m.qid AND r.state NOT IN "
	    QUEUE_SQL_FINISHED ")", error);
	if (!st) {
		g_ptr_array_unref(qids);
		return FALSE;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		g_ptr_array_add(qids, g_strdup_printf("%c%s", sqlite3_column_int(st, 1) ? 'f' : 'i',
		    (const char *)sqlite3_column_text(st, 0)));
	pg_db_done(st);
	if (rc != SQLITE_DONE)
		ok = pg_db_fail(q->pg, error, "cannot find finished messages");
	for (guint i = 0; ok && i < qids->len; i++) {
		const char *g = qids->pdata[i];

		ok = qi_remove_finished(q, g + 1, g[0] == 'f', gone, error);
	}
	g_ptr_array_unref(qids);
	return ok;
}

int
qi_reports_gone(Queue *q, GPtrArray *gone, GError **error)
{
	sqlite3_stmt *st = pg_db_stmt(q->pg, QI_ST_REPORTS_GONE, error);
	int rc, n = 0;

	if (!st)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		g_ptr_array_add(gone, g_strdup_printf("r%s\t%s\t%s", sqlite3_column_text(st, 0),
		    sqlite3_column_text(st, 1), sqlite3_column_text(st, 2)));
		n++;
	}
	pg_db_done(st);
	if (rc != SQLITE_DONE) {
		pg_db_fail(q->pg, error, "cannot mark reported recipients done");
		return -1;
	}
	return n;
}

/* Finished messages leave; then recipients whose report left with them are
 * done, and the messages that finishes leave too. */
static gboolean
finish_messages(Queue *q, GPtrArray *gone, GError **error)
{
	int n;

	if (!qi_delete_finished(q, gone, error))
		return FALSE;
	n = qi_reports_gone(q, gone, error);
	return n == 0 || (n > 0 && qi_delete_finished(q, gone, error));
}

gboolean
queue_bundle_written(Queue *q, const char *po, guint64 seq, guint *finished, GError **error)
{
	GPtrArray *gone = g_ptr_array_new_with_free_func(g_free);
	sqlite3_stmt *st;
	char *reason = g_strdup_printf("%s #%" G_GUINT64_FORMAT, po, seq);

	if (!pg_db_begin(q->pg, TRUE, error))
		goto out;
	st = pg_db_cached(q->pg, "UPDATE recipients SET state = "
	    QUEUE_SQL(QUEUE_STATE_NAME_BUNDLED) ", reason = ?3 WHERE po = ?1 AND bundle_seq = ?2 "
	    "AND state = " QUEUE_SQL(QUEUE_STATE_NAME_BUNDLING), error);
	if (!st)
		goto fail;
	pg_db_bind_copy(st, 1, po);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
	pg_db_bind_copy(st, 3, reason);
	if (sqlite3_step(st) != SQLITE_DONE) {
		pg_db_done(st);
		pg_db_fail(q->pg, error, "cannot mark recipients bundled");
		goto fail;
	}
	pg_db_done(st);
	st = pg_db_cached(q->pg, "DELETE FROM bundles WHERE po = ? AND seq = ?", error);
	if (!st)
		goto fail;
	pg_db_bind_copy(st, 1, po);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
	if (sqlite3_step(st) != SQLITE_DONE) {
		pg_db_done(st);
		pg_db_fail(q->pg, error, "cannot forget a written bundle");
		goto fail;
	}
	pg_db_done(st);
	if (!finish_messages(q, gone, error) || !pg_db_end(q->pg, error))
		goto fail;
	fault_step("queue bundle written");
	qi_finished_gone(q, gone);
	if (finished)
		*finished = qi_gone_messages(gone);
	g_ptr_array_unref(gone);
	g_free(reason);
	return TRUE;
fail:
	pg_db_rollback(q->pg);
out:
	g_ptr_array_unref(gone);
	g_free(reason);
	return FALSE;
}

gboolean
queue_finish(Queue *q, guint *finished, GError **error)
{
	GPtrArray *gone = g_ptr_array_new_with_free_func(g_free);
	gboolean ok;

	if (!pg_db_begin(q->pg, TRUE, error)) {
		g_ptr_array_unref(gone);
		return FALSE;
	}
	ok = finish_messages(q, gone, error) && pg_db_end(q->pg, error);
	if (!ok)
		pg_db_rollback(q->pg);
	if (ok)
		qi_finished_gone(q, gone);
	if (ok && finished)
		*finished = qi_gone_messages(gone);
	g_ptr_array_unref(gone);
	return ok;
}
