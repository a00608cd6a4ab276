/* queue_admin.c - the queue read (list, show) and changed by an
 * administrator (hold, release, delete); bodies no row names cleaned up
 * (see queue_int.h). */
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

/* -------------------------------------------------------------- cleanup */

gboolean
queue_cleanup(Queue *q, GError **error)
{
	sqlite3_stmt *st;
	GDir *dir;
	const char *name;
	gint64 now = g_get_real_time() / G_USEC_PER_SEC;

	/* Bodies of their own whose row never committed: a crash between the
	 * two, or a client that left.  Young ones may be a submit at work. */
	st = pg_db_cached(q->pg, "SELECT 1 FROM messages WHERE qid = ?", error);
	if (!st)
		return FALSE;
	dir = g_dir_open(q->body_dir, 0, NULL);
	while (dir && (name = g_dir_read_name(dir)) != NULL) {
		struct stat sb;
		char *path;

		if (!queue_id_valid(name))
			continue;
		path = qi_body_path(q, name);
		sqlite3_reset(st);
		pg_db_bind_copy(st, 1, name);
		if (sqlite3_step(st) != SQLITE_ROW && stat(path, &sb) == 0 &&
		    now - sb.st_mtime > QUEUE_ORPHAN_AGE) {
			pg_info(name, "queue: removing a body that was never queued");
			unlink(path);
		}
		g_free(path);
	}
	pg_db_done(st);
	if (dir)
		g_dir_close(dir);
	return TRUE;
}

/* -------------------------------------------------------------- reading */

#define MSG_COLS "qid, arrival, size, sender, envid, ret, body, client, helo, protocol, " \
	"hops, message_id, format, origin, class, about, report_to, requests, warned"

static QueueEnvelope *
row_envelope(sqlite3_stmt *st)
{
	QueueEnvelope *env = g_new0(QueueEnvelope, 1);

	env->qid = pg_db_col_dup(st, 0);
	env->arrival = sqlite3_column_int64(st, 1);
	env->size = sqlite3_column_int64(st, 2);
	env->sender = pg_db_col_dup(st, 3);
	env->envid = pg_db_col_dup(st, 4);
	env->ret = sqlite3_column_int(st, 5);
	env->body = sqlite3_column_int(st, 6);
	env->client = pg_db_col_dup(st, 7);
	env->helo = pg_db_col_dup(st, 8);
	env->protocol = pg_db_col_dup(st, 9);
	env->hops = (guint)sqlite3_column_int(st, 10);
	env->message_id = pg_db_col_dup(st, 11);
	env->format = pg_db_col_dup(st, 12);
	env->origin = pg_db_col_dup(st, 13);
	env->report_class = sqlite3_column_int(st, 14);
	env->about = pg_db_col_dup(st, 15);
	env->report_to = pg_db_col_dup(st, 16);
	env->requests = (guint)sqlite3_column_int(st, 17);
	env->warned = sqlite3_column_int64(st, 18);
	env->rcpts = g_ptr_array_new();
	return env;
}

static gboolean
load_rcpts(Queue *q, sqlite3_stmt *st, QueueEnvelope *env, GError **error)
{
	int rc;

	sqlite3_reset(st);
	pg_db_bind_copy(st, 1, env->qid);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		QueueRcpt *r = g_new0(QueueRcpt, 1);

		r->address = pg_db_col_dup(st, 0);
		r->notify = (guint)sqlite3_column_int(st, 1);
		r->orcpt = pg_db_col_dup(st, 2);
		r->reason = pg_db_col_dup(st, 4);
		if (!queue_state_parse(pg_db_col_text(st, 3), &r->state)) {
			/* Not since schema 5's CHECK; kept, not lost, until someone looks. */
			g_free(r->reason);
			r->reason = g_strdup_printf("unknown state \"%s\" in queue.db",
			    pg_db_col_text(st, 3));
			r->state = QUEUE_ST_HELD;
		}
		r->logged = r->state;
		r->next_attempt = sqlite3_column_int64(st, 5);
		r->last_reply = pg_db_col_dup(st, 6);
		r->idx = (guint)sqlite3_column_int(st, 7);
		r->po = pg_db_col_dup(st, 8);
		r->legacy = pg_db_col_dup(st, 9);
		r->parent = sqlite3_column_type(st, 10) == SQLITE_NULL ? -1 :
		    sqlite3_column_int(st, 10);
		r->bcc = sqlite3_column_int(st, 11) != 0;
		r->bundle_seq = sqlite3_column_int64(st, 12);
		r->via = pg_db_col_dup(st, 13);
		r->rcpt_to = pg_db_col_dup(st, 14);
		r->report = pg_db_col_dup(st, 15);
		g_ptr_array_add(env->rcpts, r);
	}
	return rc == SQLITE_DONE || pg_db_fail(q->pg, error, "cannot read recipients");
}

static sqlite3_stmt *
rcpt_stmt(Queue *q, GError **error)
{
	return pg_db_prepare(q->pg, "SELECT address, notify, orcpt, state, reason, next_attempt, "
	    "last_reply, idx, po, legacy, parent, bcc, bundle_seq, via, rcpt_to, report "
	    "FROM recipients WHERE qid = ? ORDER BY idx", error);
}

/* Messages (where: a condition on m.qid, bound to arg), oldest first, in
 * one snapshot. */
GPtrArray *
qi_list_where(Queue *q, const char *where, const char *arg, GError **error)
{
	GPtrArray *out = g_ptr_array_new_with_free_func((GDestroyNotify)queue_envelope_free);
	sqlite3_stmt *st, *rst;
	gboolean ok = TRUE;
	char *sql;
	int rc;

	if (!pg_db_begin(q->pg, FALSE, error)) {
		g_ptr_array_unref(out);
		return NULL;
	}
	sql = g_strdup_printf("SELECT " MSG_COLS " FROM messages m %s ORDER BY arrival, qid",
	    where ? where : "");
	st = pg_db_prepare(q->pg, sql, error);
	g_free(sql);
	rst = st ? rcpt_stmt(q, error) : NULL;
	if (!st || !rst) {
		ok = FALSE;
	} else {
		if (arg)
			pg_db_bind_copy(st, 1, arg);
		while (ok && (rc = sqlite3_step(st)) == SQLITE_ROW) {
			QueueEnvelope *env = row_envelope(st);

			g_ptr_array_add(out, env);
			ok = load_rcpts(q, rst, env, error);
		}
		if (ok && rc != SQLITE_DONE)
			ok = pg_db_fail(q->pg, error, "cannot list messages");
	}
	sqlite3_finalize(st);
	sqlite3_finalize(rst);
	pg_db_end(q->pg, NULL);
	if (!ok) {
		g_ptr_array_unref(out);
		return NULL;
	}
	return out;
}

GPtrArray *
queue_list(Queue *q, GError **error)
{
	return qi_list_where(q, NULL, NULL, error);
}

static gboolean
not_found(GError **error, const char *qid)
{
	g_set_error(error, QUEUE_ERROR, QUEUE_ERROR_NOT_FOUND, "no message %s in the queue", qid);
	return FALSE;
}

QueueEnvelope *
queue_get(Queue *q, const char *qid, GError **error)
{
	QueueEnvelope *env = NULL;
	sqlite3_stmt *st, *rst = NULL;
	int rc;

	if (!pg_db_begin(q->pg, FALSE, error))
		return NULL;
	st = pg_db_prepare(q->pg, "SELECT " MSG_COLS " FROM messages WHERE qid = ?", error);
	if (st) {
		pg_db_bind_copy(st, 1, qid);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			env = row_envelope(st);
			rst = rcpt_stmt(q, error);
			if (!rst || !load_rcpts(q, rst, env, error))
				g_clear_pointer(&env, queue_envelope_free);
		} else if (rc == SQLITE_DONE) {
			not_found(error, qid);
		} else {
			pg_db_fail(q->pg, error, "cannot read a message");
		}
	}
	sqlite3_finalize(st);
	sqlite3_finalize(rst);
	pg_db_end(q->pg, NULL);
	return env;
}

/* Whether qid's body is in its row (*inline) or its own file; its size. */
static gboolean
body_where(Queue *q, const char *qid, gboolean *inline_body, gint64 *length, GError **error)
{
	sqlite3_stmt *st = pg_db_cached(q->pg, "SELECT data IS NOT NULL, size FROM messages "
	    "WHERE qid = ?", error);
	int rc;

	if (!st)
		return FALSE;
	pg_db_bind_copy(st, 1, qid);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*inline_body = sqlite3_column_int(st, 0) != 0;
		*length = sqlite3_column_int64(st, 1);
	}
	pg_db_done(st);
	if (rc == SQLITE_DONE)
		return not_found(error, qid);
	return rc == SQLITE_ROW || pg_db_fail(q->pg, error, "cannot read a message");
}

GBytes *
queue_body_read(Queue *q, const char *qid, gint64 max, GError **error)
{
	gboolean inline_body;
	gint64 length;
	sqlite3_stmt *st;
	char *path;
	guint8 *buf;
	gssize n;
	int fd;

	if (!body_where(q, qid, &inline_body, &length, error))
		return NULL;
	if (max >= 0 && length > max)
		length = max;
	if (inline_body) {
		GBytes *b = NULL;

		st = pg_db_cached(q->pg, "SELECT substr(data, 1, ?2) FROM messages WHERE qid = ?1", error);
		if (!st)
			return NULL;
		pg_db_bind_copy(st, 1, qid);
		sqlite3_bind_int64(st, 2, length);
		if (sqlite3_step(st) == SQLITE_ROW)
			b = g_bytes_new(sqlite3_column_blob(st, 0),
			    (gsize)sqlite3_column_bytes(st, 0));
		else
			pg_db_fail(q->pg, error, "cannot read a body");
		pg_db_done(st);
		return b;
	}
	path = qi_body_path(q, qid);
	if (max < 0) {
		/* The whole of a large body: mapped, not copied onto the heap. */
		GError *e = NULL;
		GMappedFile *mf = g_mapped_file_new(path, FALSE, &e);

		if (mf && (gint64)g_mapped_file_get_length(mf) == length) {
			GBytes *b = g_mapped_file_get_bytes(mf);

			g_mapped_file_unref(mf);
			g_free(path);
			return b;
		}
		if (mf)
			g_mapped_file_unref(mf);
		g_clear_error(&e);   /* read it below, which says what is wrong */
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		qi_io_fail(error, "cannot open the body of %s (%s): %s", qid, path, g_strerror(errno));
		g_free(path);
		return NULL;
	}
	buf = g_malloc((gsize)length + 1);
	n = length > 0 ? atomic_read_upto(fd, buf, (size_t)length) : 0;
	close(fd);
	if (n != length) {
		qi_io_fail(error, "the body of %s (%s) is short: %s", qid, path,
		    n < 0 ? g_strerror(errno) : "fewer bytes than queued");
		g_free(path);
		g_free(buf);
		return NULL;
	}
	g_free(path);
	return g_bytes_new_take(buf, (gsize)length);
}

/* ------------------------------------------------------------- changing */

static gboolean
change(Queue *q, const char *qid, const char *sql, const char *arg, const char *none,
    GError **error)
{
	sqlite3_stmt *st;
	gboolean inline_body;
	gint64 length;
	int changed;

	if (!pg_db_begin(q->pg, TRUE, error))
		return FALSE;
	if (!body_where(q, qid, &inline_body, &length, error))
		goto fail;
	st = pg_db_prepare(q->pg, sql, error);
	if (!st)
		goto fail;
	pg_db_bind_copy(st, 1, qid);
	if (arg)
		pg_db_bind_copy(st, 2, arg);
	if (sqlite3_step(st) != SQLITE_DONE) {
		sqlite3_finalize(st);
		pg_db_fail(q->pg, error, "cannot change recipients");
		goto fail;
	}
	sqlite3_finalize(st);
	changed = sqlite3_changes(q->db);
	if (changed == 0) {
		g_set_error(error, QUEUE_ERROR, QUEUE_ERROR_STATE, "message %s %s", qid, none);
		goto fail;
	}
	if (!pg_db_end(q->pg, error))
		goto fail;
	fault_step("queue change");
	return TRUE;
fail:
	pg_db_rollback(q->pg);
	return FALSE;
}

gboolean
queue_hold(Queue *q, const char *qid, const char *reason, GError **error)
{
	return change(q, qid, "UPDATE recipients SET held_from = state, state = "
	    QUEUE_SQL(QUEUE_STATE_NAME_HELD) ", reason = ?2 WHERE qid = ?1 AND state NOT IN "
	    QUEUE_SQL_NOT_HOLDABLE,
	    reason, "has no recipient left to hold", error);
}

gboolean
queue_release(Queue *q, const char *qid, GError **error)
{
	/* A row held as it was queued has no state before: it is routed anew. */
	return change(q, qid, "UPDATE recipients SET state = coalesce(held_from, "
	    QUEUE_SQL(QUEUE_STATE_NAME_ACCEPTED) "), held_from = NULL, "
	    "reason = NULL WHERE qid = ?1 AND state = " QUEUE_SQL(QUEUE_STATE_NAME_HELD), NULL, "is not held", error);
}

gboolean
queue_delete(Queue *q, const char *qid, GError **error)
{
	GPtrArray *gone = g_ptr_array_new_with_free_func(g_free);
	gboolean inline_body;
	gint64 length;
	sqlite3_stmt *st;
	char *path;
	int n;

	if (!pg_db_begin(q->pg, TRUE, error))
		return FALSE;
	if (!body_where(q, qid, &inline_body, &length, error))
		goto fail;
	st = pg_db_cached(q->pg, "DELETE FROM recipients WHERE qid = ?", error);
	if (!st)
		goto fail;
	pg_db_bind_copy(st, 1, qid);
	sqlite3_step(st);
	pg_db_done(st);
	st = pg_db_cached(q->pg, "DELETE FROM messages WHERE qid = ?", error);
	if (!st)
		goto fail;
	pg_db_bind_copy(st, 1, qid);
	if (sqlite3_step(st) != SQLITE_DONE) {
		pg_db_done(st);
		pg_db_fail(q->pg, error, "cannot delete a message");
		goto fail;
	}
	pg_db_done(st);
	/* A report deleted: what it reported on is done (and may leave). */
	n = qi_reports_gone(q, gone, error);
	if (n < 0 || (n > 0 && !qi_delete_finished(q, gone, error)))
		goto fail;
	if (!pg_db_end(q->pg, error))
		goto fail;
	fault_step("queue delete");
	qi_finished_gone(q, gone);
	g_ptr_array_unref(gone);
	if (!inline_body) {
		/* After the commit: a crash in between leaves an orphan, never a
		 * row without its body. */
		path = qi_body_path(q, qid);
		if (unlink(path) != 0 && errno != ENOENT)
			pg_warn(qid, "queue: cannot remove %s: %s", path, g_strerror(errno));
		g_free(path);
	}
	return TRUE;
fail:
	g_ptr_array_unref(gone);
	pg_db_rollback(q->pg);
	return FALSE;
}
