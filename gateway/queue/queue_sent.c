/* queue_sent.c - finished messages leave the queue; what a report about an
 * Internet message that went into a postoffice needs is remembered for
 * [site] report_window (see queue.h, queue_int.h and docs/queue.md).
 *
 * A postoffice answers a copy the gateway wrote with a legacy report (a
 * non-delivery report, a receipt) that names the copy's id, perhaps days
 * later, when the message itself has long left the queue.  For the report
 * to become a DSN to the SMTP sender, the removal of such a message keeps,
 * in the same commit, its envelope (sender, ENVID, RET, arrival), the rows
 * that went into postoffices (their ORCPT and NOTIFY, and the legacy
 * address each became) and what a DSN returns: the header section, or for
 * RET=FULL the message whole up to QUEUE_SENT_FULL_MAX.  Rows that asked
 * NOTIFY=NEVER are not kept; a message none of whose rows is kept leaves
 * nothing behind. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "atomic_write.h"
#include "pg_db.h"
#include "pg_log.h"
#include "queue/queue_int.h"

void
queue_set_sent_window(Queue *q, gint64 seconds)
{
	q->sent_window = seconds > 0 ? seconds : 0;
}

gsize
queue_header_section(const guint8 *data, gsize len)
{
	if ((len >= 1 && data[0] == '\n') || (len >= 2 && data[0] == '\r' && data[1] == '\n'))
		return 0;       /* an empty header section */
	for (gsize i = 0; i < len && i < QUEUE_SENT_HEADER_MAX; i++) {
		if (data[i] != '\n')
			continue;
		if (i + 1 < len && data[i + 1] == '\n')
			return i + 1;
		if (i + 2 < len && data[i + 1] == '\r' && data[i + 2] == '\n')
			return i + 1;
	}
	return MIN(len, QUEUE_SENT_HEADER_MAX);
}

/* One recipient row kept. */
typedef struct {
	int idx;
	char *address, *orcpt, *po, *legacy;
	guint notify;
} SentRow;

static void
sent_row_free(gpointer p)
{
	SentRow *r = p;

	g_free(r->address);
	g_free(r->orcpt);
	g_free(r->po);
	g_free(r->legacy);
	g_free(r);
}

/* Up to max bytes of the body file of qid; NULL when it cannot be read
 * (the record is kept without it: a DSN then returns nothing). */
static GBytes *
file_head(Queue *q, const char *qid, gsize max)
{
	char *path = qi_body_path(q, qid);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	guint8 *buf;
	gssize n;

	if (fd < 0) {
		pg_warn(qid, "queue: cannot read %s for its report record: %s", path,
		    g_strerror(errno));
		g_free(path);
		return NULL;
	}
	buf = g_malloc(max);
	n = atomic_read_upto(fd, buf, max);
	close(fd);
	g_free(path);
	if (n < 0) {
		g_free(buf);
		return NULL;
	}
	return g_bytes_new_take(g_realloc(buf, MAX(n, 1)), (gsize)n);
}

/* The record of message qid, from its row (QI_ST_SENT_MESSAGE; none: it
 * is no Internet message, nothing is kept) and its kept rows. */
static gboolean
remember(Queue *q, const char *qid, gboolean file, GPtrArray *rows, GError **error)
{
	sqlite3_stmt *m = pg_db_stmt(q->pg, QI_ST_SENT_MESSAGE, error), *st;
	gboolean full, ok = FALSE;
	MailRet ret;
	gint64 size;
	GBytes *body = NULL;
	const guint8 *data = NULL;
	gsize len = 0;
	int rc;

	if (!m)
		return FALSE;
	pg_db_bind_copy(m, 1, qid);
	rc = sqlite3_step(m);
	if (rc != SQLITE_ROW) {
		pg_db_done(m);
		return rc == SQLITE_DONE || pg_db_fail(q->pg, error, "cannot read a finished message");
	}
	ret = sqlite3_column_int(m, 2);
	size = sqlite3_column_int64(m, 6);
	full = ret == MAIL_RET_FULL && size <= (gint64)QUEUE_SENT_FULL_MAX;
	if (file) {
		body = file_head(q, qid, full ? (gsize)size : QUEUE_SENT_HEADER_MAX);
		if (body)
			data = g_bytes_get_data(body, &len);
	} else {
		data = sqlite3_column_blob(m, 7);
		len = (gsize)sqlite3_column_bytes(m, 7);
	}
	if (data && !full)
		len = queue_header_section(data, len);
	st = pg_db_stmt(q->pg, QI_ST_INSERT_SENT, error);
	if (!st)
		goto out;
	pg_db_bind_copy(st, 1, qid);
	pg_db_bind_copy(st, 2, pg_db_col_text(m, 0));
	pg_db_bind_copy(st, 3, pg_db_col_text(m, 1));
	sqlite3_bind_int(st, 4, ret);
	sqlite3_bind_int64(st, 5, sqlite3_column_int64(m, 3));
	sqlite3_bind_int(st, 6, sqlite3_column_int(m, 4));
	pg_db_bind_copy(st, 7, pg_db_col_text(m, 5));
	if (data)
		sqlite3_bind_blob64(st, 8, data, len, SQLITE_TRANSIENT);
	sqlite3_bind_int(st, 9, full && data);
	sqlite3_bind_int64(st, 10, g_get_real_time() / G_USEC_PER_SEC + q->sent_window);
	pg_db_bind_copy(st, 11, pg_db_col_text(m, 8));
	sqlite3_bind_int(st, 12, sqlite3_column_int(m, 9));
	if (!pg_db_run(q->pg, st, error, "cannot remember a message sent to a postoffice"))
		goto out;
	st = pg_db_stmt(q->pg, QI_ST_INSERT_SENT_RCPT, error);
	if (!st)
		goto out;
	for (guint i = 0; i < rows->len; i++) {
		const SentRow *r = rows->pdata[i];

		pg_db_bind_copy(st, 1, qid);
		sqlite3_bind_int(st, 2, r->idx);
		pg_db_bind_copy(st, 3, r->address);
		sqlite3_bind_int(st, 4, (int)r->notify);
		pg_db_bind_copy(st, 5, r->orcpt);
		pg_db_bind_copy(st, 6, r->po);
		pg_db_bind_copy(st, 7, r->legacy);
		if (!pg_db_run(q->pg, st, error, "cannot remember a recipient sent to a postoffice"))
			goto out;
	}
	ok = TRUE;
out:
	pg_db_done(m);
	if (body)
		g_bytes_unref(body);
	return ok;
}

/* The rows of qid a record keeps, into rows. */
static gboolean
kept_rows(Queue *q, const char *qid, GPtrArray *rows, GError **error)
{
	sqlite3_stmt *st = pg_db_stmt(q->pg, QI_ST_SENT_ROWS, error);
	int rc;

	if (!st)
		return FALSE;
	pg_db_bind_copy(st, 1, qid);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		SentRow *r = g_new0(SentRow, 1);

		r->idx = sqlite3_column_int(st, 0);
		r->address = pg_db_col_dup(st, 1);
		r->notify = (guint)sqlite3_column_int(st, 2);
		r->orcpt = pg_db_col_dup(st, 3);
		r->po = pg_db_col_dup(st, 4);
		r->legacy = pg_db_col_dup(st, 5);
		g_ptr_array_add(rows, r);
	}
	pg_db_done(st);
	return rc == SQLITE_DONE || pg_db_fail(q->pg, error, "cannot read a finished message");
}

gboolean
qi_remove_finished(Queue *q, const char *qid, gboolean file, GPtrArray *gone, GError **error)
{
	GPtrArray *rows = g_ptr_array_new_with_free_func(sent_row_free);
	sqlite3_stmt *st;
	gboolean ok = FALSE;

	if (q->sent_window > 0 && (!kept_rows(q, qid, rows, error) ||
	    (rows->len > 0 && !remember(q, qid, file, rows, error))))
		goto out;
	st = pg_db_stmt(q->pg, QI_ST_DELETE_RCPTS, error);
	if (!st)
		goto out;
	pg_db_bind_copy(st, 1, qid);
	if (!pg_db_run(q->pg, st, error, "cannot remove a finished message's recipients"))
		goto out;
	st = pg_db_stmt(q->pg, QI_ST_DELETE_MESSAGE, error);
	if (!st)
		goto out;
	pg_db_bind_copy(st, 1, qid);
	if (!pg_db_run(q->pg, st, error, "cannot remove a finished message"))
		goto out;
	if (sqlite3_changes(q->db) > 0)
		g_ptr_array_add(gone, g_strdup_printf("%c%s", file ? 'f' : 'i', qid));
	ok = TRUE;
out:
	g_ptr_array_unref(rows);
	return ok;
}

/* ---- reading a record ------------------------------------------------------ */

void
queue_sent_free(QueueSent *s)
{
	if (!s)
		return;
	queue_envelope_free(s->env);
	if (s->returned)
		g_bytes_unref(s->returned);
	g_free(s);
}

/* A message still in the queue: its rows that went into postoffices. */
static QueueSent *
sent_queued(Queue *q, const char *qid, GError **error)
{
	QueueEnvelope *env = queue_get(q, qid, error);
	QueueSent *s;
	GPtrArray *keep;

	if (!env)
		return NULL;
	if (g_strcmp0(env->format, "mime") != 0 || !*env->sender || env->report_class != 0 ||
	    (env->origin && !env->report_to)) {
		queue_envelope_free(env);
		g_set_error(error, QUEUE_ERROR, QUEUE_ERROR_NOT_FOUND,
		    "%s is no Internet message", qid);
		return NULL;
	}
	s = g_new0(QueueSent, 1);
	s->queued = TRUE;
	s->full = env->ret == MAIL_RET_FULL && env->size <= (gint64)QUEUE_SENT_FULL_MAX;
	s->returned = queue_body_read(q, qid, s->full ? -1 : (gint64)QUEUE_SENT_HEADER_MAX, NULL);
	if (s->returned && !s->full) {
		gsize len;
		const guint8 *d = g_bytes_get_data(s->returned, &len);
		GBytes *h = g_bytes_new(d, queue_header_section(d, len));

		g_bytes_unref(s->returned);
		s->returned = h;
	}
	s->full = s->full && s->returned;
	/* The rows kept are those a record would keep. */
	keep = g_ptr_array_new();
	for (guint i = 0; i < env->rcpts->len; i++) {
		QueueRcpt *r = env->rcpts->pdata[i];

		if (r->legacy && !(r->notify & MAIL_NOTIFY_NEVER) && (env->origin ?
		    r->state == QUEUE_ST_SENT : (r->state == QUEUE_ST_BUNDLED ||
		    r->state == QUEUE_ST_BUNDLING)))
			g_ptr_array_add(keep, r);
		else
			queue_rcpt_free(r);
	}
	g_ptr_array_unref(env->rcpts);
	env->rcpts = keep;
	s->env = env;
	return s;
}

QueueSent *
queue_sent_get(Queue *q, const char *qid, GError **error)
{
	QueueSent *s = NULL;
	sqlite3_stmt *st, *rst = NULL;
	int rc;

	if (!pg_db_begin(q->pg, FALSE, error))
		return NULL;
	st = pg_db_cached(q->pg, "SELECT sender, envid, ret, arrival, hops, message_id, "
	    "returned, full, kept_until, report_to, requests FROM sent WHERE qid = ?", error);
	if (!st)
		goto out;
	pg_db_bind_copy(st, 1, qid);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		pg_db_done(st);
		pg_db_end(q->pg, NULL);
		return sent_queued(q, qid, error);
	}
	if (rc != SQLITE_ROW) {
		pg_db_fail(q->pg, error, "cannot read a sent message's record");
		goto out;
	}
	s = g_new0(QueueSent, 1);
	s->env = queue_envelope_new(qid);
	g_free(s->env->sender);
	s->env->sender = pg_db_col_dup(st, 0);
	s->env->envid = pg_db_col_dup(st, 1);
	s->env->ret = sqlite3_column_int(st, 2);
	s->env->arrival = sqlite3_column_int64(st, 3);
	s->env->hops = (guint)sqlite3_column_int(st, 4);
	s->env->message_id = pg_db_col_dup(st, 5);
	s->env->format = g_strdup("mime");
	if (sqlite3_column_type(st, 6) != SQLITE_NULL)
		s->returned = g_bytes_new(sqlite3_column_blob(st, 6),
		    (gsize)sqlite3_column_bytes(st, 6));
	s->full = sqlite3_column_int(st, 7) != 0;
	s->kept_until = sqlite3_column_int64(st, 8);
	s->env->report_to = pg_db_col_dup(st, 9);
	s->env->requests = (guint)sqlite3_column_int(st, 10);
	rst = pg_db_cached(q->pg, "SELECT idx, address, notify, orcpt, po, legacy FROM "
	    "sent_rcpts WHERE qid = ? ORDER BY idx", error);
	if (!rst) {
		g_clear_pointer(&s, queue_sent_free);
		goto out;
	}
	pg_db_bind_copy(rst, 1, qid);
	while ((rc = sqlite3_step(rst)) == SQLITE_ROW) {
		QueueRcpt *r;

		queue_envelope_add_rcpt(s->env, pg_db_col_text(rst, 1),
		    (guint)sqlite3_column_int(rst, 2), pg_db_col_text(rst, 3));
		r = s->env->rcpts->pdata[s->env->rcpts->len - 1];
		r->idx = (guint)sqlite3_column_int(rst, 0);
		r->po = pg_db_col_dup(rst, 4);
		r->legacy = pg_db_col_dup(rst, 5);
		r->state = r->logged = QUEUE_ST_BUNDLED;
	}
	if (rc != SQLITE_DONE) {
		pg_db_fail(q->pg, error, "cannot read a sent message's recipients");
		g_clear_pointer(&s, queue_sent_free);
	}
out:
	pg_db_done(st);
	pg_db_done(rst);
	pg_db_end(q->pg, NULL);
	return s;
}

/* One of the two deletes of queue_sent_prune, in its transaction. */
static gboolean
sent_prune_step(Queue *q, const char *sql, gint64 now, GError **error)
{
	sqlite3_stmt *st = pg_db_prepare(q->pg, sql, error);
	gboolean ok;

	if (!st)
		return FALSE;
	sqlite3_bind_int64(st, 1, now);
	ok = sqlite3_step(st) == SQLITE_DONE;
	sqlite3_finalize(st);
	if (!ok)
		pg_db_fail(q->pg, error, "cannot forget sent messages");
	return ok;
}

gboolean
queue_sent_prune(Queue *q, gint64 now, guint *pruned, GError **error)
{
	if (!pg_db_begin(q->pg, TRUE, error))
		return FALSE;
	if (!sent_prune_step(q, "DELETE FROM sent_rcpts WHERE qid IN (SELECT qid FROM sent "
	    "WHERE kept_until <= ?)", now, error) ||
	    !sent_prune_step(q, "DELETE FROM sent WHERE kept_until <= ?", now, error)) {
		pg_db_rollback(q->pg);
		return FALSE;
	}
	if (pruned)
		*pruned = (guint)sqlite3_changes(q->db);
	return pg_db_commit(q->pg, "queue sent pruned", error);
}

char *
queue_sent_find(Queue *q, const char *envid, const char *message_id, GError **error)
{
	sqlite3_stmt *st;
	char *qid = NULL, *mid = message_id ? g_strdup_printf("<%s>", message_id) : NULL;
	int rc;

	if (!pg_db_begin(q->pg, FALSE, error)) {
		g_free(mid);
		return NULL;
	}
	/* A copy still queued first (another of its rows still waits), then a record. */
	st = pg_db_cached(q->pg, "SELECT qid FROM messages WHERE origin IS NOT NULL AND "
	    "report_to IS NOT NULL AND format = 'mime' AND ((?1 IS NOT NULL AND envid = ?1) OR "
	    "(?2 IS NOT NULL AND message_id = ?2)) UNION ALL SELECT qid FROM sent WHERE "
	    "report_to IS NOT NULL AND ((?1 IS NOT NULL AND envid = ?1) OR (?2 IS NOT NULL AND "
	    "message_id = ?2)) LIMIT 1", error);
	if (st) {
		pg_db_bind_copy(st, 1, envid);
		pg_db_bind_copy(st, 2, mid);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			qid = pg_db_col_dup(st, 0);
		else if (rc == SQLITE_DONE)
			g_set_error(error, QUEUE_ERROR, QUEUE_ERROR_NOT_FOUND, "no legacy message sent "
			    "over SMTP with envid %s or Message-ID <%s>", envid ? envid : "-",
			    message_id ? message_id : "-");
		else
			pg_db_fail(q->pg, error, "cannot look for a sent message");
		pg_db_done(st);
	}
	pg_db_end(q->pg, NULL);
	g_free(mid);
	return qid;
}
