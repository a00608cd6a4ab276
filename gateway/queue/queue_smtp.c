/* queue_smtp.c - what the SMTP client reads and stores: the messages
 * waiting, their outcomes, what it remembers of destinations (see
 * queue_int.h). */
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
#include "message.h"
#include "pg_db.h"
#include "pg_log.h"
#include "queue/queue_int.h"

/* ------------------------------------------------------------ SMTP delivery */

GPtrArray *
queue_smtp_waiting(Queue *q, const char *qid, gint64 due, GError **error)
{
	char *where, num[32];
	GPtrArray *out;

	g_snprintf(num, sizeof num, "%" G_GINT64_FORMAT, due > 0 ? due : G_MAXINT64);
	where = g_strdup_printf("WHERE %s m.qid IN (SELECT qid FROM recipients WHERE state IN "
	    QUEUE_SQL_SMTP_WAITING " AND next_attempt <= %s)", qid ? "m.qid = ?1 AND" : "",
	    num);
	out = qi_list_where(q, where, qid, error);
	g_free(where);
	return out;
}

GPtrArray *
queue_failed(Queue *q, GError **error)
{
	return qi_list_where(q, "WHERE m.qid IN (SELECT qid FROM recipients WHERE state = "
	    QUEUE_SQL(QUEUE_STATE_NAME_FAILED) ")", NULL, error);
}

GPtrArray *
queue_delayed(Queue *q, gint64 before, GError **error)
{
	char *where = g_strdup_printf("WHERE m.warned = 0 AND m.class = 0 AND m.sender <> '' "
	    "AND m.arrival <= %" G_GINT64_FORMAT " AND EXISTS (SELECT 1 FROM recipients r "
	    "WHERE r.qid = m.qid AND ((m.report_to IS NOT NULL AND (m.requests & %u) = 0 AND "
	    "r.state IN " QUEUE_SQL_SMTP_WAITING ") OR "
	    "(m.origin IS NULL AND (r.notify & %d) <> 0 AND r.state NOT IN " QUEUE_SQL_FINISHED
	    " AND r.state NOT IN (" QUEUE_SQL(QUEUE_STATE_NAME_FAILED) ", "
	    QUEUE_SQL(QUEUE_STATE_NAME_REPORTED) "))))", before, MSG_REQ_NO_NDR,
	    MAIL_NOTIFY_DELAY);
	GPtrArray *out = qi_list_where(q, where, NULL, error);

	g_free(where);
	return out;
}

gint64
queue_smtp_later(Queue *q, gint64 due, GError **error)
{
	sqlite3_stmt *st;
	gint64 n = -1;

	st = pg_db_cached(q->pg, "SELECT count(*) FROM recipients WHERE state IN "
	    QUEUE_SQL_SMTP_WAITING " AND next_attempt > ?", error);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, due);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	else
		pg_db_fail(q->pg, error, "cannot count deferred recipients");
	pg_db_done(st);
	return n;
}

/* Remove the messages of qids (a set) whose recipients are all finished;
 * their own body files are named in *gone ('f' + qid) for after the commit. */
static gboolean
finish_these(Queue *q, GHashTable *qids, GPtrArray *gone, GError **error)
{
	sqlite3_stmt *open_st;
	GHashTableIter it;
	gpointer key;
	gboolean ok = FALSE;

	open_st = pg_db_cached(q->pg, "SELECT (SELECT count(*) FROM recipients r WHERE r.qid = "
	    "m.qid AND r.state NOT IN " QUEUE_SQL_FINISHED "), m.data IS NULL FROM messages m "
	    "WHERE m.qid = ?", error);
	if (!open_st)
		goto out;
	g_hash_table_iter_init(&it, qids);
	while (g_hash_table_iter_next(&it, &key, NULL)) {
		gboolean file;

		sqlite3_reset(open_st);
		pg_db_bind_copy(open_st, 1, key);
		if (sqlite3_step(open_st) != SQLITE_ROW || sqlite3_column_int(open_st, 0) != 0)
			continue;
		file = sqlite3_column_int(open_st, 1) != 0;
		sqlite3_reset(open_st);
		if (!qi_remove_finished(q, key, file, gone, error))
			goto out;
	}
	/* A report that left makes what it reported on done. */
	switch (qi_reports_gone(q, gone, error)) {
	case -1:
		goto out;
	case 0:
		break;
	default:
		if (!qi_delete_finished(q, gone, error))
			goto out;
	}
	ok = TRUE;
out:
	pg_db_done(open_st);
	return ok;
}

gboolean
queue_smtp_outcomes(Queue *q, const QueueOutcome *o, guint n, guint *finished,
    GError **error)
{
	GHashTable *qids = g_hash_table_new(g_str_hash, g_str_equal);
	GPtrArray *gone = g_ptr_array_new_with_free_func(g_free);
	sqlite3_stmt *st = NULL;
	gboolean ok = FALSE;

	if (!pg_db_begin(q->pg, TRUE, error))
		goto out;
	/* Only rows still waiting change: a deferral or a failure never
	 * overrides what an administrator did meanwhile (hold, delete). */
	/* A server's 2xx is a fact: a row held meanwhile is sent too (else a
	 * release would send it again). */
	st = pg_db_cached(q->pg, "UPDATE recipients SET state = ?3, reason = ?4, last_reply = "
	    "coalesce(?5, last_reply), next_attempt = ?6, held_from = CASE WHEN ?3 = "
	    QUEUE_SQL(QUEUE_STATE_NAME_HELD) " THEN " QUEUE_SQL(QUEUE_STATE_NAME_DEFERRED)
	    " ELSE NULL END WHERE qid = ?1 AND idx = ?2 AND (state IN " QUEUE_SQL_SMTP_WAITING
	    " OR (?3 = " QUEUE_SQL(QUEUE_STATE_NAME_SENT) " AND state = "
	    QUEUE_SQL(QUEUE_STATE_NAME_HELD) " AND held_from IN " QUEUE_SQL_SMTP_WAITING "))",
	    error);
	if (!st)
		goto fail;
	for (guint i = 0; i < n; i++) {
		sqlite3_reset(st);
		pg_db_bind_copy(st, 1, o[i].qid);
		sqlite3_bind_int(st, 2, (int)o[i].idx);
		pg_db_bind_text(st, 3, queue_state_name(o[i].state));
		pg_db_bind_copy(st, 4, o[i].reason);
		pg_db_bind_copy(st, 5, o[i].last_reply);
		sqlite3_bind_int64(st, 6, o[i].next_attempt);
		if (sqlite3_step(st) != SQLITE_DONE) {
			pg_db_fail(q->pg, error, "cannot record delivery outcomes");
			goto fail;
		}
		if (o[i].state == QUEUE_ST_SENT)
			g_hash_table_add(qids, (gpointer)o[i].qid);
	}
	if (!finish_these(q, qids, gone, error) || !pg_db_end(q->pg, error))
		goto fail;
	fault_step("queue smtp outcomes");
	qi_finished_gone(q, gone);
	if (finished)
		*finished = qi_gone_messages(gone);
	ok = TRUE;
	goto out;
fail:
	pg_db_rollback(q->pg);
out:
	pg_db_done(st);
	g_hash_table_unref(qids);
	g_ptr_array_unref(gone);
	return ok;
}

gboolean
queue_dest_get(Queue *q, const char *dest, QueueDest *out, GError **error)
{
	sqlite3_stmt *st;
	int rc;

	memset(out, 0, sizeof *out);
	st = pg_db_cached(q->pg, "SELECT single_until, retry_at, failures, last_reply FROM destinations "
	    "WHERE dest = ?", error);
	if (!st)
		return FALSE;
	pg_db_bind_copy(st, 1, dest);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		out->single_until = sqlite3_column_int64(st, 0);
		out->retry_at = sqlite3_column_int64(st, 1);
		out->failures = (guint)sqlite3_column_int(st, 2);
		out->last_reply = pg_db_col_dup(st, 3);
	}
	pg_db_done(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE || pg_db_fail(q->pg, error, "cannot read a destination");
}

gboolean
queue_dest_set(Queue *q, const char *dest, const QueueDest *d, GError **error)
{
	sqlite3_stmt *st;
	int rc;

	st = pg_db_cached(q->pg, "INSERT OR REPLACE INTO destinations(dest, single_until, retry_at, "
	    "failures, last_reply) VALUES(?, ?, ?, ?, ?)", error);
	if (!st)
		return FALSE;
	pg_db_bind_copy(st, 1, dest);
	sqlite3_bind_int64(st, 2, d->single_until);
	sqlite3_bind_int64(st, 3, d->retry_at);
	sqlite3_bind_int(st, 4, (int)d->failures);
	pg_db_bind_copy(st, 5, d->last_reply);
	rc = sqlite3_step(st);
	pg_db_done(st);
	return rc == SQLITE_DONE || pg_db_fail(q->pg, error, "cannot record a destination");
}

void
queue_dest_clear(QueueDest *d)
{
	g_clear_pointer(&d->last_reply, g_free);
}

GPtrArray *
queue_dest_list(Queue *q, GError **error)
{
	GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
	sqlite3_stmt *st;
	int rc;

	st = pg_db_cached(q->pg, "SELECT dest, single_until, retry_at, failures, coalesce(last_reply, '') "
	    "FROM destinations ORDER BY dest", error);
	if (!st) {
		g_ptr_array_unref(out);
		return NULL;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		g_ptr_array_add(out, g_strdup_printf("%s\t%" G_GINT64_FORMAT "\t%" G_GINT64_FORMAT
		    "\t%d\t%s", sqlite3_column_text(st, 0), (gint64)sqlite3_column_int64(st, 1),
		    (gint64)sqlite3_column_int64(st, 2), sqlite3_column_int(st, 3),
		    sqlite3_column_text(st, 4)));
	pg_db_done(st);
	if (rc != SQLITE_DONE) {
		g_ptr_array_unref(out);
		pg_db_fail(q->pg, error, "cannot list destinations");
		return NULL;
	}
	return out;
}
