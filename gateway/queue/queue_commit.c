/* queue_commit.c - a message's rows inserted, and the group commit that
 * makes the listener's messages durable together (see queue_int.h). */
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

/* -------------------------------------------------------- inserting rows */

const char *const qi_stmt_sql[QI_ST_COUNT] = {
	[QI_ST_INSERT_MESSAGE] = "INSERT INTO messages(qid, arrival, size, sender, envid, "
	    "ret, body, client, helo, protocol, hops, message_id, data, format, origin, class, "
	    "about, report_to, requests) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
	[QI_ST_INSERT_RCPT] = "INSERT INTO recipients(qid, idx, address, notify, "
	    "orcpt, state) VALUES(?,?,?,?,?," QUEUE_SQL(QUEUE_STATE_NAME_ACCEPTED) ")",
	[QI_ST_DELETE_RCPTS] = "DELETE FROM recipients WHERE qid = ?",
	[QI_ST_DELETE_MESSAGE] = "DELETE FROM messages WHERE qid = ?",
	[QI_ST_SENT_ROWS] = "SELECT idx, address, notify, orcpt, po, legacy FROM recipients "
	    "WHERE qid = ? AND legacy IS NOT NULL AND state IN ("
	    QUEUE_SQL(QUEUE_STATE_NAME_BUNDLED) ", " QUEUE_SQL(QUEUE_STATE_NAME_SENT) ") "
	    "AND (notify & 1) = 0 ORDER BY idx",
	/* An Internet message, or a legacy message's copy a report may be made about. */
	[QI_ST_SENT_MESSAGE] = "SELECT sender, envid, ret, arrival, hops, message_id, size, data, "
	    "report_to, requests FROM messages WHERE qid = ? AND format = 'mime' AND "
	    "sender <> '' AND class = 0 AND (origin IS NULL OR report_to IS NOT NULL)",
	[QI_ST_INSERT_SENT] = "INSERT OR REPLACE INTO sent(qid, sender, envid, ret, arrival, "
	    "hops, message_id, returned, full, kept_until, report_to, requests) "
	    "VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
	[QI_ST_INSERT_SENT_RCPT] = "INSERT OR REPLACE INTO sent_rcpts(qid, idx, address, "
	    "notify, orcpt, po, legacy) VALUES(?,?,?,?,?,?,?)",
	[QI_ST_REPORTS_GONE] = "UPDATE recipients SET state = " QUEUE_SQL(QUEUE_STATE_NAME_DONE)
	    ", reason = 'its report ' || report || ' has left the queue' WHERE state = "
	    QUEUE_SQL(QUEUE_STATE_NAME_REPORTED) " AND report IS NOT NULL AND report NOT IN "
	    "(SELECT qid FROM messages) RETURNING qid, address, report",
};

/* Insert the rows of env; the body goes in the row when it is in memory,
 * else it is the file queue/QID, already durable. */
gboolean
qi_insert_rows(Queue *q, const QueueEnvelope *env, const QueueBody *body, GError **error)
{
	sqlite3_stmt *st = pg_db_stmt(q->pg, QI_ST_INSERT_MESSAGE, error);

	if (!st)
		return FALSE;
	pg_db_bind_copy(st, 1, env->qid);
	sqlite3_bind_int64(st, 2, env->arrival);
	sqlite3_bind_int64(st, 3, body->size);
	pg_db_bind_copy(st, 4, env->sender ? env->sender : "");
	pg_db_bind_copy(st, 5, env->envid);
	sqlite3_bind_int(st, 6, env->ret);
	sqlite3_bind_int(st, 7, env->body);
	pg_db_bind_copy(st, 8, env->client ? env->client : "local");
	pg_db_bind_copy(st, 9, env->helo);
	pg_db_bind_copy(st, 10, env->protocol ? env->protocol : "SMTP");
	sqlite3_bind_int(st, 11, (int)env->hops);
	pg_db_bind_copy(st, 12, env->message_id);
	if (body->fd < 0)
		sqlite3_bind_blob64(st, 13, body->mem->data, body->mem->len, SQLITE_STATIC);
	pg_db_bind_copy(st, 14, env->format ? env->format : "mime");
	pg_db_bind_copy(st, 15, env->origin);
	sqlite3_bind_int(st, 16, env->report_class);
	pg_db_bind_copy(st, 17, env->about);
	pg_db_bind_copy(st, 18, env->report_to);
	sqlite3_bind_int(st, 19, (int)env->requests);
	if (!pg_db_run(q->pg, st, error, "cannot insert a message"))
		return FALSE;
	st = pg_db_stmt(q->pg, QI_ST_INSERT_RCPT, error);
	if (!st)
		return FALSE;
	for (guint i = 0; i < env->rcpts->len; i++) {
		const QueueRcpt *r = env->rcpts->pdata[i];

		pg_db_bind_copy(st, 1, env->qid);
		sqlite3_bind_int(st, 2, (int)i);
		pg_db_bind_copy(st, 3, r->address);
		sqlite3_bind_int(st, 4, (int)r->notify);
		pg_db_bind_copy(st, 5, r->orcpt);
		if (!pg_db_run(q->pg, st, error, "cannot insert a recipient"))
			return FALSE;
	}
	return TRUE;
}

/* A body of its own file: its bytes on disk (the directory entry follows
 * with one fsync of queue/ for the whole batch). */
static gboolean
body_sync(QueueBody *b, GError **error)
{
	if (fdatasync(b->fd) != 0)
		return qi_io_fail(error, "cannot sync the body of %s: %s", b->qid, g_strerror(errno));
	fault_step("queue body sync");
	return TRUE;
}

gboolean
qi_dir_sync(Queue *q, GError **error)
{
	if (fsync(q->dir_fd) != 0)
		return qi_io_fail(error, "cannot sync %s: %s", q->body_dir, g_strerror(errno));
	fault_step("queue directory sync");
	return TRUE;
}

/* A body of n bytes at p in its own file queue/QID, its bytes synced (its
 * name is not: dir_sync); NULL when that fails, with nothing left behind. */
QueueBody *
qi_body_file(Queue *q, const char *qid, const void *p, gsize n, GError **error)
{
	QueueBody *b = queue_body_new(q, qid);

	if ((b->fd < 0 && !qi_body_spill(b, error)) || !queue_body_append(b, p, n, error) ||
	    !body_sync(b, error)) {
		qi_body_free(b, TRUE);
		return NULL;
	}
	return b;
}

gboolean
queue_commit(Queue *q, const QueueEnvelope *env, QueueBody *body, GError **error)
{
	gboolean ok;

	if (body->fd >= 0 && (!body_sync(body, error) || !qi_dir_sync(q, error)))
		goto fail;
	if (!pg_db_begin(q->pg, TRUE, error))
		goto fail;
	ok = qi_insert_rows(q, env, body, error);
	if (!ok || !pg_db_end(q->pg, error)) {
		pg_db_rollback(q->pg);
		goto fail;
	}
	fault_step("queue commit");
	qi_body_free(body, FALSE);
	return TRUE;
fail:
	qi_body_free(body, TRUE);
	return FALSE;
}

/* --------------------------------------------------------- group commit */

typedef struct {
	QueueEnvelope *env;
	QueueBody *body;
	QueueDone done;
	gpointer data;
	GError *error;
} Pending;

struct QueueCommitter {
	Queue *q;
	int lock_fd;
	int notify[2];          /* the thread writes a byte when results wait */
	GThread *thread;
	GMutex lock;
	GCond cond;
	GQueue todo;            /* Pending *, submitted */
	GQueue finished;        /* Pending *, committed or failed */
	gboolean stop;
	guint outstanding;      /* submitted, callbacks not yet run (loop thread only) */
};

static void
pending_free(Pending *p)
{
	queue_envelope_free(p->env);
	qi_body_free(p->body, p->error != NULL);
	g_clear_error(&p->error);
	g_free(p);
}

/* Insert every message of batch that has not failed, each under a
 * savepoint of its own inside the open transaction: one that cannot go in
 * leaves nothing of itself (no message row without its recipients) and
 * costs the others nothing.  FALSE when an error ended the whole
 * transaction (SQLite may roll back on IOERR, FULL, NOMEM): the messages
 * inserted before it are gone too, and the caller begins again without
 * the one that failed. */
static gboolean
insert_batch(Queue *q, GPtrArray *batch)
{
	for (guint i = 0; i < batch->len; i++) {
		Pending *p = batch->pdata[i];

		if (p->error)
			continue;
		if (pg_db_exec(q->pg, "SAVEPOINT message", &p->error) &&
		    qi_insert_rows(q, p->env, p->body, &p->error) &&
		    pg_db_exec(q->pg, "RELEASE message", &p->error))
			continue;
		pg_error(p->env->qid, "%s", p->error->message);
		if (sqlite3_get_autocommit(q->db))
			return FALSE;
		pg_db_exec(q->pg, "ROLLBACK TO message; RELEASE message", NULL);
	}
	return TRUE;
}

/* Make one batch durable: the bodies of their own files, then one fsync of
 * queue/ for their names, then one commit that holds every row and every
 * body kept in memory: one WAL fsync for all of them.  A message gets its
 * 250 only if its rows are in that commit, and its 451 only if nothing of
 * it is. */
static void
commit_batch(QueueCommitter *c, GPtrArray *batch)
{
	Queue *q = c->q;
	GError *e = NULL;
	gboolean files = FALSE;
	guint i, tries;

	for (i = 0; i < batch->len; i++) {
		Pending *p = batch->pdata[i];

		if (p->body->fd >= 0) {
			files = TRUE;
			body_sync(p->body, &p->error);
		}
	}
	if (files && !qi_dir_sync(q, &e))
		goto out;
	for (tries = 0; ; tries++) {
		if (!pg_db_begin(q->pg, TRUE, &e))
			goto out;
		if (insert_batch(q, batch))
			break;
		if (tries == QUEUE_BATCH_RESTARTS) {
			qi_io_fail(&e, "queue.db: the transaction was rolled back %u times",
			    tries + 1);
			goto out;
		}
	}
	if (!pg_db_end(q->pg, &e)) {
		pg_db_rollback(q->pg);
		goto out;
	}
	fault_step("queue commit");
out:
	if (e) {
		pg_error(NULL, "queue: group commit of %u messages failed: %s", batch->len,
		    e->message);
		for (i = 0; i < batch->len; i++) {
			Pending *p = batch->pdata[i];

			if (!p->error)
				p->error = g_error_copy(e);
		}
		g_error_free(e);
	}
}

static gpointer
committer_main(gpointer data)
{
	QueueCommitter *c = data;
	GPtrArray *batch = g_ptr_array_new();

	for (;;) {
		gboolean was_empty;
		char byte = 1;

		g_mutex_lock(&c->lock);
		while (g_queue_is_empty(&c->todo) && !c->stop)
			g_cond_wait(&c->cond, &c->lock);
		if (g_queue_is_empty(&c->todo) && c->stop) {
			g_mutex_unlock(&c->lock);
			break;
		}
		while (batch->len < QUEUE_BATCH_MAX && !g_queue_is_empty(&c->todo))
			g_ptr_array_add(batch, g_queue_pop_head(&c->todo));
		g_mutex_unlock(&c->lock);

		commit_batch(c, batch);

		g_mutex_lock(&c->lock);
		was_empty = g_queue_is_empty(&c->finished);
		for (guint i = 0; i < batch->len; i++)
			g_queue_push_tail(&c->finished, batch->pdata[i]);
		g_mutex_unlock(&c->lock);
		g_ptr_array_set_size(batch, 0);
		if (was_empty)
			while (write(c->notify[1], &byte, 1) < 0 && errno == EINTR)
				;
	}
	g_ptr_array_unref(batch);
	return NULL;
}

QueueCommitter *
queue_committer_new(Queue *q, GError **error)
{
	QueueCommitter *c = g_new0(QueueCommitter, 1);
	char *path;

	c->q = q;
	c->notify[0] = c->notify[1] = -1;
	path = g_build_filename(q->body_dir, ".writer.lock", NULL);
	c->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (c->lock_fd < 0) {
		qi_io_fail(error, "cannot open %s: %s", path, g_strerror(errno));
		g_free(path);
		goto fail;
	}
	if (flock(c->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		g_set_error(error, QUEUE_ERROR, QUEUE_ERROR_LOCKED,
		    "%s is held by another postgate smtpd (only one listener per state_dir)",
		    path);
		g_free(path);
		goto fail;
	}
	g_free(path);
	if (!queue_cleanup(q, error))
		goto fail;
	if (!g_unix_open_pipe(c->notify, FD_CLOEXEC, NULL) ||
	    !g_unix_set_fd_nonblocking(c->notify[0], TRUE, NULL)) {
		qi_io_fail(error, "cannot make a pipe: %s", g_strerror(errno));
		goto fail;
	}
	g_mutex_init(&c->lock);
	g_cond_init(&c->cond);
	g_queue_init(&c->todo);
	g_queue_init(&c->finished);
	c->thread = g_thread_new("queue-commit", committer_main, c);
	return c;
fail:
	for (int i = 0; i < 2; i++)
		if (c->notify[i] >= 0)
			close(c->notify[i]);
	if (c->lock_fd >= 0)
		close(c->lock_fd);
	g_free(c);
	return NULL;
}

int
queue_committer_fd(const QueueCommitter *c)
{
	return c->notify[0];
}

void
queue_committer_submit(QueueCommitter *c, QueueEnvelope *env, QueueBody *body,
    QueueDone done, gpointer data)
{
	Pending *p = g_new0(Pending, 1);

	p->env = env;
	p->body = body;
	p->done = done;
	p->data = data;
	env->size = body->size;
	c->outstanding++;
	g_mutex_lock(&c->lock);
	g_queue_push_tail(&c->todo, p);
	g_cond_signal(&c->cond);
	g_mutex_unlock(&c->lock);
}

void
queue_committer_collect(QueueCommitter *c)
{
	char buf[64];
	GQueue done = G_QUEUE_INIT;
	Pending *p;

	while (read(c->notify[0], buf, sizeof buf) > 0)
		;
	g_mutex_lock(&c->lock);
	done = c->finished;
	g_queue_init(&c->finished);
	g_mutex_unlock(&c->lock);
	while ((p = g_queue_pop_head(&done)) != NULL) {
		c->outstanding--;
		if (p->done)
			p->done(p->data, p->error);
		pending_free(p);
	}
}

guint
queue_committer_pending(const QueueCommitter *c)
{
	return c->outstanding;
}

void
queue_committer_free(QueueCommitter *c)
{
	if (!c)
		return;
	g_mutex_lock(&c->lock);
	c->stop = TRUE;
	g_cond_signal(&c->cond);
	g_mutex_unlock(&c->lock);
	g_thread_join(c->thread);
	queue_committer_collect(c);
	g_mutex_clear(&c->lock);
	g_cond_clear(&c->cond);
	close(c->notify[0]);
	close(c->notify[1]);
	close(c->lock_fd);
	g_free(c);
}
