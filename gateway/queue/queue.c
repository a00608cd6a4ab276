/* queue.c - the durable queue (see queue.h and docs/queue.md). */
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
#include "queue/queue.h"

G_DEFINE_QUARK(postgate-queue-error-quark, queue_error)

#define QUEUE_SCHEMA_VERSION 5

static const char *const migrations[] = {
	/* 0 -> 1 */
	"CREATE TABLE messages("
	"  qid TEXT PRIMARY KEY,"
	"  arrival INTEGER NOT NULL,"
	"  size INTEGER NOT NULL,"
	"  sender TEXT NOT NULL,"
	"  envid TEXT,"
	"  ret INTEGER NOT NULL,"
	"  body INTEGER NOT NULL,"
	"  client TEXT NOT NULL,"
	"  helo TEXT,"
	"  protocol TEXT NOT NULL,"
	"  hops INTEGER NOT NULL,"
	"  message_id TEXT,"
	"  data BLOB);"               /* the body; NULL: it is the file queue/QID */
	"CREATE INDEX messages_arrival ON messages(arrival, qid);"
	"CREATE TABLE recipients("
	"  qid TEXT NOT NULL,"
	"  idx INTEGER NOT NULL,"
	"  address TEXT NOT NULL,"
	"  notify INTEGER NOT NULL,"
	"  orcpt TEXT,"
	"  state TEXT NOT NULL,"
	"  reason TEXT,"
	"  held_from TEXT,"
	"  next_attempt INTEGER NOT NULL DEFAULT 0,"
	"  last_reply TEXT,"
	"  PRIMARY KEY(qid, idx)) WITHOUT ROWID;",
	/* 1 -> 2: the batch run.  A recipient routed to a postoffice carries
	 * it and its legacy address; one expanded from a list names its list
	 * row (parent); the bundle it went out in is (po, bundle_seq).  A
	 * bundle is recorded, bytes and all, before its file is written, so a
	 * crash rewrites the very same bytes under the same number. */
	"ALTER TABLE recipients ADD COLUMN po TEXT;"
	"ALTER TABLE recipients ADD COLUMN legacy TEXT;"
	"ALTER TABLE recipients ADD COLUMN parent INTEGER;"
	"ALTER TABLE recipients ADD COLUMN bcc INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE recipients ADD COLUMN bundle_seq INTEGER;"
	"ALTER TABLE recipients ADD COLUMN via TEXT;"
	"ALTER TABLE recipients ADD COLUMN rcpt_to TEXT;"
	"CREATE INDEX recipients_state ON recipients(state, qid);"
	"CREATE TABLE po_seqs(po TEXT PRIMARY KEY, last INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE bundles(po TEXT NOT NULL, seq INTEGER NOT NULL, name TEXT NOT NULL,"
	"  data BLOB NOT NULL, PRIMARY KEY(po, seq)) WITHOUT ROWID;"
	/* Legacy messages from the postoffices' out/ wait as their entry bytes;
	 * the ledger of bundles applied from each is a set, like a
	 * postoffice's own (a late bundle still applies, a replay never). */
	"ALTER TABLE messages ADD COLUMN format TEXT NOT NULL DEFAULT 'mime';"
	"ALTER TABLE messages ADD COLUMN origin TEXT;"
	"CREATE TABLE po_ledger(po TEXT NOT NULL, seq INTEGER NOT NULL, hmac BLOB NOT NULL,"
	"  applied INTEGER NOT NULL, PRIMARY KEY(po, seq)) WITHOUT ROWID;",
	/* 2 -> 3: the SMTP client.  What it learnt about a destination (a relay
	 * host, a site link, a domain's mail servers) outlives the run: until
	 * when it takes one message per session, until when it is not tried. */
	"CREATE TABLE destinations(dest TEXT PRIMARY KEY,"
	"  single_until INTEGER NOT NULL DEFAULT 0,"
	"  retry_at INTEGER NOT NULL DEFAULT 0,"
	"  failures INTEGER NOT NULL DEFAULT 0,"
	"  last_reply TEXT) WITHOUT ROWID;",
	/* 3 -> 4: a bundle from a postoffice is queued in commits of bounded
	 * size, so that no write transaction holds queue.db for long; until
	 * its last commit records it in po_ledger, po_ingest says how far it
	 * got (entries before next are queued), in the same commits. */
	"CREATE TABLE po_ingest(po TEXT NOT NULL, seq INTEGER NOT NULL,"
	"  hmac BLOB NOT NULL, next INTEGER NOT NULL,"
	"  PRIMARY KEY(po, seq)) WITHOUT ROWID;",
	/* 4 -> 5: a recipient's state is one of queue_state.h's, checked by
	 * SQLite too (a table with a CHECK is made anew).  A row of a state
	 * that no postgate wrote is held, with the state in its reason. */
	"CREATE TABLE recipients_v5("
	"  qid TEXT NOT NULL,"
	"  idx INTEGER NOT NULL,"
	"  address TEXT NOT NULL,"
	"  notify INTEGER NOT NULL,"
	"  orcpt TEXT,"
	"  state TEXT NOT NULL CHECK (" QUEUE_SQL_STATE_CHECK_V5 "),"
	"  reason TEXT,"
	"  held_from TEXT,"
	"  next_attempt INTEGER NOT NULL DEFAULT 0,"
	"  last_reply TEXT,"
	"  po TEXT, legacy TEXT, parent INTEGER, bcc INTEGER NOT NULL DEFAULT 0,"
	"  bundle_seq INTEGER, via TEXT, rcpt_to TEXT,"
	"  PRIMARY KEY(qid, idx)) WITHOUT ROWID;"
	"INSERT INTO recipients_v5(qid, idx, address, notify, orcpt, state, reason, held_from, next_attempt, last_reply, po, legacy, parent, bcc, bundle_seq, via, rcpt_to) SELECT qid, idx, address, notify, orcpt, "
	"  CASE WHEN " QUEUE_SQL_STATE_CHECK_V5 " THEN state ELSE "
	"  " QUEUE_SQL(QUEUE_STATE_NAME_HELD) " END, "
	"  CASE WHEN " QUEUE_SQL_STATE_CHECK_V5 " THEN reason ELSE "
	"  'unknown state ' || quote(state) || ' in queue.db' END, "
	"  held_from, next_attempt, last_reply, po, legacy, parent, bcc, bundle_seq, via, rcpt_to "
	"  FROM recipients;"
	"DROP TABLE recipients;"
	"ALTER TABLE recipients_v5 RENAME TO recipients;"
	"CREATE INDEX recipients_state ON recipients(state, qid);",
};

G_STATIC_ASSERT(G_N_ELEMENTS(migrations) == QUEUE_SCHEMA_VERSION);

struct Queue {
	char *state_dir;
	char *body_dir;         /* state_dir/queue */
	int dir_fd;             /* body_dir, for fsync */
	PgDb *pg;
	sqlite3 *db;            /* pg's connection */
	sqlite3_stmt *upsert;   /* upsert_rcpts', prepared once */
};

struct QueueBody {
	Queue *q;
	char *qid;
	GByteArray *mem;        /* until QUEUE_SPILL_AT */
	int fd;                 /* the spill file queue/QID, or -1 */
	gint64 size;
};

/* ------------------------------------------------------------- helpers */

static gboolean
io_fail(GError **error, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static gboolean
io_fail(GError **error, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_set_error_literal(error, QUEUE_ERROR, QUEUE_ERROR_IO, msg);
	g_free(msg);
	return FALSE;
}

static char *
body_path(const Queue *q, const char *qid)
{
	return g_build_filename(q->body_dir, qid, NULL);
}

static gboolean
write_all(int fd, const void *data, gsize len, off_t *at)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = at ? pwrite(fd, p, len, *at) : write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return FALSE;
		p += n;
		len -= (gsize)n;
		if (at)
			*at += n;
	}
	return TRUE;
}

/* ---------------------------------------------------------------- open */

static const PgDbSpec db_spec = {
	.domain = queue_error_quark, .io_code = QUEUE_ERROR_IO, .open_code = QUEUE_ERROR_IO,
	.schema_code = QUEUE_ERROR_SCHEMA,
	.pragmas = "PRAGMA foreign_keys=OFF; PRAGMA journal_size_limit=67108864;",
	.migrations = migrations, .version = QUEUE_SCHEMA_VERSION,
};

Queue *
queue_open(const char *state_dir, GError **error)
{
	Queue *q = g_new0(Queue, 1);
	char *path;

	q->dir_fd = -1;
	q->state_dir = g_strdup(state_dir);
	q->body_dir = g_build_filename(state_dir, "queue", NULL);
	if (g_mkdir_with_parents(q->body_dir, 0750) != 0) {
		io_fail(error, "cannot create %s: %s", q->body_dir, g_strerror(errno));
		goto fail;
	}
	q->dir_fd = open(q->body_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (q->dir_fd < 0) {
		io_fail(error, "cannot open %s: %s", q->body_dir, g_strerror(errno));
		goto fail;
	}
	path = g_build_filename(state_dir, "queue.db", NULL);
	q->pg = pg_db_open(path, "queue.db", SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
	    SQLITE_OPEN_NOMUTEX, &db_spec, NULL, error);
	g_free(path);
	if (!q->pg)
		goto fail;
	q->db = pg_db_handle(q->pg);
	return q;
fail:
	queue_close(q);
	return NULL;
}

void
queue_close(Queue *q)
{
	if (!q)
		return;
	if (q->upsert)
		sqlite3_finalize(q->upsert);
	pg_db_close(q->pg);
	if (q->dir_fd >= 0)
		close(q->dir_fd);
	g_free(q->state_dir);
	g_free(q->body_dir);
	g_free(q);
}

char *
queue_id_new(void)
{
	gint64 us = g_get_real_time();

	return g_strdup_printf("%013" G_GINT64_MODIFIER "X%05X", us & G_GINT64_CONSTANT(0xFFFFFFFFFFFFF),
	    (unsigned)(g_random_int() & 0xFFFFF));
}

gboolean
queue_id_valid(const char *text)
{
	if (!text || strlen(text) != QUEUE_ID_LEN)
		return FALSE;
	for (const char *p = text; *p; p++)
		if (!g_ascii_isxdigit(*p) || g_ascii_islower(*p))
			return FALSE;
	return TRUE;
}

/* ----------------------------------------------------------- envelopes */

QueueEnvelope *
queue_envelope_new(const char *qid)
{
	QueueEnvelope *env = g_new0(QueueEnvelope, 1);

	env->qid = g_strdup(qid);
	env->sender = g_strdup("");
	env->protocol = g_strdup("SMTP");
	env->client = g_strdup("local");
	env->rcpts = g_ptr_array_new();
	return env;
}

static void
rcpt_free(QueueRcpt *r)
{
	g_free(r->po);
	g_free(r->legacy);
	g_free(r->via);
	g_free(r->rcpt_to);
	g_free(r->address);
	g_free(r->orcpt);
	g_free(r->reason);
	g_free(r->last_reply);
	g_free(r);
}

void
queue_envelope_free(QueueEnvelope *env)
{
	if (!env)
		return;
	g_free(env->qid);
	g_free(env->sender);
	g_free(env->envid);
	g_free(env->client);
	g_free(env->helo);
	g_free(env->protocol);
	g_free(env->message_id);
	g_free(env->format);
	g_free(env->origin);
	g_ptr_array_foreach(env->rcpts, (GFunc)(void (*)(void))rcpt_free, NULL);
	g_ptr_array_unref(env->rcpts);
	g_free(env);
}

void
queue_envelope_add_rcpt(QueueEnvelope *env, const char *address, guint notify,
    const char *orcpt)
{
	QueueRcpt *r = g_new0(QueueRcpt, 1);

	r->address = g_strdup(address);
	r->notify = notify;
	r->orcpt = g_strdup(orcpt);
	r->state = r->logged = QUEUE_ST_ACCEPTED;
	r->idx = env->rcpts->len;
	r->parent = -1;
	g_ptr_array_add(env->rcpts, r);
}

/* --------------------------------------------------------------- bodies */

QueueBody *
queue_body_new(Queue *q, const char *qid)
{
	QueueBody *b = g_new0(QueueBody, 1);

	b->q = q;
	b->qid = g_strdup(qid);
	b->mem = g_byte_array_new();
	b->fd = -1;
	return b;
}

/* Move the body to its own file, queue/QID, created afresh. */
static gboolean
body_spill(QueueBody *b, GError **error)
{
	char *path;

	if (!queue_id_valid(b->qid))
		return io_fail(error, "\"%s\" is no queue id", b->qid);
	path = body_path(b->q, b->qid);
	b->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	if (b->fd < 0) {
		io_fail(error, "cannot create %s: %s", path, g_strerror(errno));
		g_free(path);
		return FALSE;
	}
	g_free(path);
	if (b->mem->len > 0 && !write_all(b->fd, b->mem->data, b->mem->len, NULL))
		return io_fail(error, "cannot write the body of %s: %s", b->qid,
		    g_strerror(errno));
	g_byte_array_set_size(b->mem, 0);
	return TRUE;
}

gboolean
queue_body_append(QueueBody *b, const void *data, gsize len, GError **error)
{
	b->size += (gint64)len;
	if (b->fd < 0 && b->mem->len + len <= QUEUE_SPILL_AT) {
		g_byte_array_append(b->mem, data, (guint)len);
		return TRUE;
	}
	if (b->fd < 0 && !body_spill(b, error))
		return FALSE;
	if (!write_all(b->fd, data, len, NULL))
		return io_fail(error, "cannot write the body of %s: %s", b->qid,
		    g_strerror(errno));
	return TRUE;
}

gint64
queue_body_size(const QueueBody *b)
{
	return b->size;
}

static void
body_free(QueueBody *b, gboolean unlink_file)
{
	if (!b)
		return;
	if (b->fd >= 0) {
		close(b->fd);
		if (unlink_file) {
			char *path = body_path(b->q, b->qid);

			unlink(path);
			g_free(path);
		}
	}
	g_byte_array_unref(b->mem);
	g_free(b->qid);
	g_free(b);
}

void
queue_body_discard(QueueBody *b)
{
	body_free(b, TRUE);
}

/* -------------------------------------------------------- inserting rows */

/* Insert the rows of env; the body goes in the row when it is in memory,
 * else it is the file queue/QID, already durable. */
static gboolean
insert_rows(Queue *q, const QueueEnvelope *env, const QueueBody *body, GError **error)
{
	static const char msg_sql[] = "INSERT INTO messages(qid, arrival, size, sender, envid, "
	    "ret, body, client, helo, protocol, hops, message_id, data, format, origin) "
	    "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";
	static const char rcpt_sql[] = "INSERT INTO recipients(qid, idx, address, notify, "
	    "orcpt, state) VALUES(?,?,?,?,?," QUEUE_SQL(QUEUE_STATE_NAME_ACCEPTED) ")";
	sqlite3_stmt *st;
	int rc;

	st = pg_db_prepare(q->pg, msg_sql, error);
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
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return pg_db_fail(q->pg, error, "cannot insert a message");
	st = pg_db_prepare(q->pg, rcpt_sql, error);
	if (!st)
		return FALSE;
	for (guint i = 0; i < env->rcpts->len; i++) {
		const QueueRcpt *r = env->rcpts->pdata[i];

		sqlite3_reset(st);
		pg_db_bind_copy(st, 1, env->qid);
		sqlite3_bind_int(st, 2, (int)i);
		pg_db_bind_copy(st, 3, r->address);
		sqlite3_bind_int(st, 4, (int)r->notify);
		pg_db_bind_copy(st, 5, r->orcpt);
		if (sqlite3_step(st) != SQLITE_DONE) {
			sqlite3_finalize(st);
			return pg_db_fail(q->pg, error, "cannot insert a recipient");
		}
	}
	sqlite3_finalize(st);
	return TRUE;
}

/* A body of its own file: its bytes on disk (the directory entry follows
 * with one fsync of queue/ for the whole batch). */
static gboolean
body_sync(QueueBody *b, GError **error)
{
	if (fdatasync(b->fd) != 0)
		return io_fail(error, "cannot sync the body of %s: %s", b->qid, g_strerror(errno));
	fault_step("queue body sync");
	return TRUE;
}

static gboolean
dir_sync(Queue *q, GError **error)
{
	if (fsync(q->dir_fd) != 0)
		return io_fail(error, "cannot sync %s: %s", q->body_dir, g_strerror(errno));
	fault_step("queue directory sync");
	return TRUE;
}

/* A body of n bytes at p in its own file queue/QID, its bytes synced (its
 * name is not: dir_sync); NULL when that fails, with nothing left behind. */
static QueueBody *
body_file(Queue *q, const char *qid, const void *p, gsize n, GError **error)
{
	QueueBody *b = queue_body_new(q, qid);

	if ((b->fd < 0 && !body_spill(b, error)) || !queue_body_append(b, p, n, error) ||
	    !body_sync(b, error)) {
		body_free(b, TRUE);
		return NULL;
	}
	return b;
}

gboolean
queue_commit(Queue *q, const QueueEnvelope *env, QueueBody *body, GError **error)
{
	gboolean ok;

	if (body->fd >= 0 && (!body_sync(body, error) || !dir_sync(q, error)))
		goto fail;
	if (!pg_db_begin(q->pg, TRUE, error))
		goto fail;
	ok = insert_rows(q, env, body, error);
	if (!ok || !pg_db_exec(q->pg, "COMMIT", error)) {
		pg_db_rollback(q->pg);
		goto fail;
	}
	fault_step("queue commit");
	body_free(body, FALSE);
	return TRUE;
fail:
	body_free(body, TRUE);
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
	body_free(p->body, p->error != NULL);
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
		    insert_rows(q, p->env, p->body, &p->error) &&
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
	if (files && !dir_sync(q, &e))
		goto out;
	for (tries = 0; ; tries++) {
		if (!pg_db_begin(q->pg, TRUE, &e))
			goto out;
		if (insert_batch(q, batch))
			break;
		if (tries == QUEUE_BATCH_RESTARTS) {
			io_fail(&e, "queue.db: the transaction was rolled back %u times",
			    tries + 1);
			goto out;
		}
	}
	if (!pg_db_exec(q->pg, "COMMIT", &e)) {
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
		io_fail(error, "cannot open %s: %s", path, g_strerror(errno));
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
		io_fail(error, "cannot make a pipe: %s", g_strerror(errno));
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
	st = pg_db_prepare(q->pg, "SELECT 1 FROM messages WHERE qid = ?", error);
	if (!st)
		return FALSE;
	dir = g_dir_open(q->body_dir, 0, NULL);
	while (dir && (name = g_dir_read_name(dir)) != NULL) {
		struct stat sb;
		char *path;

		if (!queue_id_valid(name))
			continue;
		path = body_path(q, name);
		sqlite3_reset(st);
		pg_db_bind_copy(st, 1, name);
		if (sqlite3_step(st) != SQLITE_ROW && stat(path, &sb) == 0 &&
		    now - sb.st_mtime > QUEUE_ORPHAN_AGE) {
			pg_info(name, "queue: removing a body that was never queued");
			unlink(path);
		}
		g_free(path);
	}
	sqlite3_finalize(st);
	if (dir)
		g_dir_close(dir);
	return TRUE;
}

/* -------------------------------------------------------------- reading */

#define MSG_COLS "qid, arrival, size, sender, envid, ret, body, client, helo, protocol, " \
	"hops, message_id, format, origin"

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
		g_ptr_array_add(env->rcpts, r);
	}
	return rc == SQLITE_DONE || pg_db_fail(q->pg, error, "cannot read recipients");
}

static sqlite3_stmt *
rcpt_stmt(Queue *q, GError **error)
{
	return pg_db_prepare(q->pg, "SELECT address, notify, orcpt, state, reason, next_attempt, "
	    "last_reply, idx, po, legacy, parent, bcc, bundle_seq, via, rcpt_to "
	    "FROM recipients WHERE qid = ? ORDER BY idx", error);
}

/* Messages (where: a condition on m.qid, bound to arg), oldest first, in
 * one snapshot. */
static GPtrArray *
list_where(Queue *q, const char *where, const char *arg, GError **error)
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
	pg_db_exec(q->pg, "COMMIT", NULL);
	if (!ok) {
		g_ptr_array_unref(out);
		return NULL;
	}
	return out;
}

GPtrArray *
queue_list(Queue *q, GError **error)
{
	return list_where(q, NULL, NULL, error);
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
	pg_db_exec(q->pg, "COMMIT", NULL);
	return env;
}

/* Whether qid's body is in its row (*inline) or its own file; its size. */
static gboolean
body_where(Queue *q, const char *qid, gboolean *inline_body, gint64 *length, GError **error)
{
	sqlite3_stmt *st = pg_db_prepare(q->pg, "SELECT data IS NOT NULL, size FROM messages "
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
	sqlite3_finalize(st);
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

		st = pg_db_prepare(q->pg, "SELECT substr(data, 1, ?2) FROM messages WHERE qid = ?1", error);
		if (!st)
			return NULL;
		pg_db_bind_copy(st, 1, qid);
		sqlite3_bind_int64(st, 2, length);
		if (sqlite3_step(st) == SQLITE_ROW)
			b = g_bytes_new(sqlite3_column_blob(st, 0),
			    (gsize)sqlite3_column_bytes(st, 0));
		else
			pg_db_fail(q->pg, error, "cannot read a body");
		sqlite3_finalize(st);
		return b;
	}
	path = body_path(q, qid);
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
		io_fail(error, "cannot open the body of %s (%s): %s", qid, path, g_strerror(errno));
		g_free(path);
		return NULL;
	}
	buf = g_malloc((gsize)length + 1);
	n = length > 0 ? read_upto(fd, buf, (size_t)length) : 0;
	close(fd);
	if (n != length) {
		io_fail(error, "the body of %s (%s) is short: %s", qid, path,
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
	if (!pg_db_exec(q->pg, "COMMIT", error))
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
	return change(q, qid, "UPDATE recipients SET state = held_from, held_from = NULL, "
	    "reason = NULL WHERE qid = ?1 AND state = " QUEUE_SQL(QUEUE_STATE_NAME_HELD), NULL, "is not held", error);
}

gboolean
queue_delete(Queue *q, const char *qid, GError **error)
{
	gboolean inline_body;
	gint64 length;
	sqlite3_stmt *st;
	char *path;

	if (!pg_db_begin(q->pg, TRUE, error))
		return FALSE;
	if (!body_where(q, qid, &inline_body, &length, error))
		goto fail;
	st = pg_db_prepare(q->pg, "DELETE FROM recipients WHERE qid = ?", error);
	if (!st)
		goto fail;
	pg_db_bind_copy(st, 1, qid);
	sqlite3_step(st);
	sqlite3_finalize(st);
	st = pg_db_prepare(q->pg, "DELETE FROM messages WHERE qid = ?", error);
	if (!st)
		goto fail;
	pg_db_bind_copy(st, 1, qid);
	if (sqlite3_step(st) != SQLITE_DONE) {
		sqlite3_finalize(st);
		pg_db_fail(q->pg, error, "cannot delete a message");
		goto fail;
	}
	sqlite3_finalize(st);
	if (!pg_db_exec(q->pg, "COMMIT", error))
		goto fail;
	fault_step("queue delete");
	if (!inline_body) {
		/* After the commit: a crash in between leaves an orphan, never a
		 * row without its body. */
		path = body_path(q, qid);
		if (unlink(path) != 0 && errno != ENOENT)
			pg_warn(qid, "queue: cannot remove %s: %s", path, g_strerror(errno));
		g_free(path);
	}
	return TRUE;
fail:
	pg_db_rollback(q->pg);
	return FALSE;
}

/* ------------------------------------------------------------ the batch run */

static gboolean upsert_rcpts(Queue *q, const QueueEnvelope *env, GError **error);

/* After the commit that stored them: env's changes of state, logged. */
static void
log_changes(QueueEnvelope *env)
{
	for (guint i = 0; i < env->rcpts->len; i++)
		queue_rcpt_log(env->qid, env->rcpts->pdata[i]);
}

gboolean
queue_set_routes(Queue *q, QueueEnvelope *env, GError **error)
{
	if (!pg_db_begin(q->pg, TRUE, error))
		return FALSE;
	if (!upsert_rcpts(q, env, error) || !pg_db_exec(q->pg, "COMMIT", error)) {
		pg_db_rollback(q->pg);
		return FALSE;
	}
	fault_step("queue routes");
	log_changes(env);
	return TRUE;
}

gboolean
queue_set_routes_many(Queue *q, GPtrArray *envs, GError **error)
{
	if (envs->len == 0)
		return TRUE;
	if (!pg_db_begin(q->pg, TRUE, error))
		return FALSE;
	for (guint i = 0; i < envs->len; i++)
		if (!upsert_rcpts(q, envs->pdata[i], error)) {
			pg_db_rollback(q->pg);
			return FALSE;
		}
	if (!pg_db_exec(q->pg, "COMMIT", error)) {
		pg_db_rollback(q->pg);
		return FALSE;
	}
	fault_step("queue routes");
	for (guint i = 0; i < envs->len; i++)
		log_changes(envs->pdata[i]);
	return TRUE;
}

gboolean
queue_translated(Queue *q, QueueEnvelope *orig, QueueEnvelope *env,
    GBytes *body, GError **error)
{
	QueueBody b = { q, env->qid, NULL, -1, 0 };
	gsize n;
	const guint8 *p = g_bytes_get_data(body, &n);
	gboolean ok;

	if (n > QUEUE_SPILL_AT) {
		/* Its own file, durable before the row that names it. */
		QueueBody *fb = body_file(q, env->qid, p, n, error);

		if (!fb || !dir_sync(q, error)) {
			body_free(fb, TRUE);
			return FALSE;
		}
		b.fd = fb->fd;
		fb->fd = -1;
		body_free(fb, FALSE);
	} else {
		b.mem = g_byte_array_new_take(g_memdup2(p, n), n);
	}
	b.size = (gint64)n;
	ok = pg_db_begin(q->pg, TRUE, error);
	if (ok) {
		ok = insert_rows(q, env, &b, error) && upsert_rcpts(q, env, error) &&
		    upsert_rcpts(q, orig, error) && pg_db_exec(q->pg, "COMMIT", error);
		if (!ok)
			pg_db_rollback(q->pg);
	}
	if (b.mem)
		g_byte_array_unref(b.mem);
	if (b.fd >= 0) {
		close(b.fd);
		if (!ok) {
			char *path = body_path(q, env->qid);

			unlink(path);
			g_free(path);
		}
	}
	if (ok) {
		fault_step("queue translated");
		log_changes(orig);
		log_changes(env);
	}
	return ok;
}

static gboolean
upsert_rcpts(Queue *q, const QueueEnvelope *env, GError **error)
{
	static const char sql[] = "INSERT INTO recipients(qid, idx, address, notify, orcpt, "
	    "state, reason, po, legacy, parent, bcc, via, rcpt_to) "
	    "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(qid, idx) DO UPDATE SET "
	    "state = excluded.state, reason = excluded.reason, po = excluded.po, "
	    "legacy = excluded.legacy, parent = excluded.parent, bcc = excluded.bcc, "
	    "via = excluded.via, rcpt_to = excluded.rcpt_to";
	sqlite3_stmt *st = q->upsert;

	if (!st && sqlite3_prepare_v3(q->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &q->upsert,
	    NULL) != SQLITE_OK)
		return pg_db_fail(q->pg, error, "cannot prepare a statement");
	st = q->upsert;
	for (guint i = 0; i < env->rcpts->len; i++) {
		const QueueRcpt *r = env->rcpts->pdata[i];

		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		pg_db_bind_copy(st, 1, env->qid);
		sqlite3_bind_int(st, 2, (int)r->idx);
		pg_db_bind_copy(st, 3, r->address);
		sqlite3_bind_int(st, 4, (int)r->notify);
		pg_db_bind_copy(st, 5, r->orcpt);
		pg_db_bind_text(st, 6, queue_state_name(r->state));
		pg_db_bind_copy(st, 7, r->reason);
		pg_db_bind_copy(st, 8, r->po);
		pg_db_bind_copy(st, 9, r->legacy);
		if (r->parent >= 0)
			sqlite3_bind_int(st, 10, r->parent);
		else
			sqlite3_bind_null(st, 10);
		sqlite3_bind_int(st, 11, r->bcc ? 1 : 0);
		pg_db_bind_copy(st, 12, r->via);
		pg_db_bind_copy(st, 13, r->rcpt_to);
		if (sqlite3_step(st) != SQLITE_DONE) {
			sqlite3_reset(st);
			return pg_db_fail(q->pg, error, "cannot record routes");
		}
	}
	sqlite3_reset(st);
	return TRUE;
}

guint64
queue_bundle_seq_next(Queue *q, const char *po, GError **error)
{
	sqlite3_stmt *st = pg_db_prepare(q->pg, "SELECT last FROM po_seqs WHERE po = ?", error);
	guint64 next = 1;
	int rc;

	if (!st)
		return 0;
	pg_db_bind_copy(st, 1, po);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		next = (guint64)sqlite3_column_int64(st, 0) + 1;
	sqlite3_finalize(st);
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
	st = pg_db_prepare(q->pg, "INSERT INTO po_seqs(po, last) VALUES(?1, ?2) ON CONFLICT(po) DO "
	    "UPDATE SET last = ?2", error);
	if (!st)
		goto fail;
	pg_db_bind_copy(st, 1, po);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto db;
	sqlite3_finalize(st);
	st = pg_db_prepare(q->pg, "INSERT INTO bundles(po, seq, name, data) VALUES(?,?,?,?)", error);
	if (!st)
		goto fail;
	pg_db_bind_copy(st, 1, po);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
	pg_db_bind_copy(st, 3, name);
	sqlite3_bind_blob64(st, 4, p, len, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto db;
	sqlite3_finalize(st);
	st = pg_db_prepare(q->pg, "UPDATE recipients SET state = "
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
	sqlite3_finalize(st);
	if (!pg_db_exec(q->pg, "COMMIT", error))
		goto fail;
	fault_step("queue bundle recorded");
	return TRUE;
db:
	pg_db_fail(q->pg, error, "cannot record a bundle");
	sqlite3_finalize(st);
fail:
	pg_db_rollback(q->pg);
	return FALSE;
}

GPtrArray *
queue_bundles_unwritten(Queue *q, GError **error)
{
	GPtrArray *out = g_ptr_array_new_with_free_func((GDestroyNotify)queue_bundle_free);
	sqlite3_stmt *st = pg_db_prepare(q->pg, "SELECT po, seq, name, data FROM bundles ORDER BY po, seq",
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
	sqlite3_finalize(st);
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

/* After the commit that removed the rows of gone ('f' or 'i' + qid, as
 * finish_messages makes them): the bodies of their own go too (a crash in
 * between leaves an orphan at worst, which queue_cleanup removes). */
static void
finished_gone(Queue *q, GPtrArray *gone)
{
	for (guint i = 0; i < gone->len; i++) {
		const char *g = gone->pdata[i];

		if (g[0] == 'f') {
			char *path = body_path(q, g + 1);

			if (unlink(path) != 0 && errno != ENOENT)
				pg_warn(g + 1, "queue: cannot remove %s: %s", path, g_strerror(errno));
			g_free(path);
		}
		pg_info(g + 1, "removed: every recipient is done");
	}
}

/* Messages all of whose recipients are finished leave the queue. */
static gboolean
finish_messages(Queue *q, GPtrArray *gone, GError **error)
{
	sqlite3_stmt *st;
	int rc;

	st = pg_db_prepare(q->pg, "SELECT m.qid, m.data IS NULL FROM messages m WHERE NOT EXISTS "
	    "(SELECT 1 FROM recipients r WHERE r.qid = m.qid AND r.state NOT IN "
	    QUEUE_SQL_FINISHED ")", error);
	if (!st)
		return FALSE;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		g_ptr_array_add(gone, g_strdup_printf("%c%s", sqlite3_column_int(st, 1) ? 'f' : 'i',
		    (const char *)sqlite3_column_text(st, 0)));
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return pg_db_fail(q->pg, error, "cannot find finished messages");
	for (guint i = 0; i < gone->len; i++) {
		const char *qid = (const char *)gone->pdata[i] + 1;

		st = pg_db_prepare(q->pg, "DELETE FROM recipients WHERE qid = ?", error);
		if (!st)
			return FALSE;
		pg_db_bind_copy(st, 1, qid);
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
		st = pg_db_prepare(q->pg, "DELETE FROM messages WHERE qid = ?", error);
		if (!st)
			return FALSE;
		pg_db_bind_copy(st, 1, qid);
		if (rc != SQLITE_DONE || sqlite3_step(st) != SQLITE_DONE) {
			sqlite3_finalize(st);
			return pg_db_fail(q->pg, error, "cannot remove a finished message");
		}
		sqlite3_finalize(st);
	}
	return TRUE;
}

gboolean
queue_bundle_written(Queue *q, const char *po, guint64 seq, guint *finished, GError **error)
{
	GPtrArray *gone = g_ptr_array_new_with_free_func(g_free);
	sqlite3_stmt *st;
	char *reason = g_strdup_printf("%s #%" G_GUINT64_FORMAT, po, seq);

	if (!pg_db_begin(q->pg, TRUE, error))
		goto out;
	st = pg_db_prepare(q->pg, "UPDATE recipients SET state = "
	    QUEUE_SQL(QUEUE_STATE_NAME_BUNDLED) ", reason = ?3 WHERE po = ?1 AND bundle_seq = ?2 "
	    "AND state = " QUEUE_SQL(QUEUE_STATE_NAME_BUNDLING), error);
	if (!st)
		goto fail;
	pg_db_bind_copy(st, 1, po);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
	pg_db_bind_copy(st, 3, reason);
	if (sqlite3_step(st) != SQLITE_DONE) {
		sqlite3_finalize(st);
		pg_db_fail(q->pg, error, "cannot mark recipients bundled");
		goto fail;
	}
	sqlite3_finalize(st);
	st = pg_db_prepare(q->pg, "DELETE FROM bundles WHERE po = ? AND seq = ?", error);
	if (!st)
		goto fail;
	pg_db_bind_copy(st, 1, po);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
	if (sqlite3_step(st) != SQLITE_DONE) {
		sqlite3_finalize(st);
		pg_db_fail(q->pg, error, "cannot forget a written bundle");
		goto fail;
	}
	sqlite3_finalize(st);
	if (!finish_messages(q, gone, error) || !pg_db_exec(q->pg, "COMMIT", error))
		goto fail;
	fault_step("queue bundle written");
	finished_gone(q, gone);
	if (finished)
		*finished = gone->len;
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
	ok = finish_messages(q, gone, error) && pg_db_exec(q->pg, "COMMIT", error);
	if (!ok)
		pg_db_rollback(q->pg);
	if (ok)
		finished_gone(q, gone);
	if (ok && finished)
		*finished = gone->len;
	g_ptr_array_unref(gone);
	return ok;
}

/* The HMAC recorded for (po, seq) in table (po_ledger or po_ingest) and,
 * for po_ingest, how far it got: SAME, OTHER, or NEW when there is none. */
static QueueLedger
ledger_row(Queue *q, const char *table, const char *po, guint64 seq, const guint8 *hmac,
    gsize len, guint *next, GError **error)
{
	char *sql = g_strdup_printf("SELECT hmac, %s FROM %s WHERE po = ? AND seq = ?",
	    strcmp(table, "po_ingest") == 0 ? "next" : "0", table);
	sqlite3_stmt *st = pg_db_prepare(q->pg, sql, error);
	QueueLedger v = QUEUE_LEDGER_NEW;
	int rc;

	g_free(sql);
	if (!st)
		return QUEUE_LEDGER_ERROR;
	pg_db_bind_copy(st, 1, po);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		v = (gsize)sqlite3_column_bytes(st, 0) == len &&
		    memcmp(sqlite3_column_blob(st, 0), hmac, len) == 0 ?
		    QUEUE_LEDGER_SAME : QUEUE_LEDGER_OTHER;
		if (next)
			*next = (guint)sqlite3_column_int(st, 1);
	} else if (rc != SQLITE_DONE) {
		v = QUEUE_LEDGER_ERROR;
	}
	sqlite3_finalize(st);
	if (v == QUEUE_LEDGER_ERROR)
		pg_db_fail(q->pg, error, "cannot read the ledger");
	return v;
}

QueueLedger
queue_ledger_check(Queue *q, const char *po, guint64 seq, const guint8 *hmac, gsize len,
    guint *next, GError **error)
{
	QueueLedger v;

	*next = 0;
	v = ledger_row(q, "po_ledger", po, seq, hmac, len, NULL, error);
	if (v != QUEUE_LEDGER_NEW)
		return v;
	v = ledger_row(q, "po_ingest", po, seq, hmac, len, next, error);
	if (v == QUEUE_LEDGER_SAME)
		return QUEUE_LEDGER_PARTIAL;
	*next = 0;
	return v;
}

/* The record that ends one ingest commit: how far (po, seq) got, or, after
 * its last entry, that it is applied. */
static gboolean
ingest_progress(Queue *q, const char *po, guint64 seq, const guint8 *hmac, gsize len,
    guint next, gboolean last, GError **error)
{
	sqlite3_stmt *st;
	int rc;

	st = pg_db_prepare(q->pg, last ? "DELETE FROM po_ingest WHERE po = ?1 AND seq = ?2" :
	    "INSERT INTO po_ingest(po, seq, hmac, next) VALUES(?1, ?2, ?3, ?4) "
	    "ON CONFLICT(po, seq) DO UPDATE SET next = ?4", error);
	if (!st)
		return FALSE;
	pg_db_bind_copy(st, 1, po);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
	if (!last) {
		sqlite3_bind_blob64(st, 3, hmac, len, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 4, next);
	}
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return pg_db_fail(q->pg, error, "cannot record how far a bundle is queued");
	if (!last)
		return TRUE;
	st = pg_db_prepare(q->pg, "INSERT INTO po_ledger(po, seq, hmac, applied) VALUES(?,?,?,?)", error);
	if (!st)
		return FALSE;
	pg_db_bind_copy(st, 1, po);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
	sqlite3_bind_blob64(st, 3, hmac, len, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 4, g_get_real_time() / G_USEC_PER_SEC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE || pg_db_fail(q->pg, error, "cannot record an applied bundle");
}

/* One ingest commit: entries [from, to) of the bundle.  The bodies over
 * QUEUE_SPILL_AT go to files of their own first, synced, and queue/ once;
 * then one transaction holds their rows, the small bodies and the
 * progress record. */
static gboolean
ingest_step(Queue *q, const char *po, guint64 seq, const guint8 *hmac, gsize len,
    GPtrArray *envs, GPtrArray *bodies, guint from, guint to, GError **error)
{
	GPtrArray *held = g_ptr_array_new();   /* QueueBody *, one per message */
	gboolean ok = TRUE, files = FALSE, last = to == envs->len;

	for (guint i = from; ok && i < to; i++) {
		const QueueEnvelope *env = envs->pdata[i];
		gsize n;
		const guint8 *p;
		QueueBody *b;

		if (!env)
			continue;
		p = g_bytes_get_data(bodies->pdata[i], &n);
		if (n > QUEUE_SPILL_AT) {
			b = body_file(q, env->qid, p, n, error);
			ok = b != NULL;
			files = TRUE;
		} else {
			b = queue_body_new(q, env->qid);
			g_byte_array_append(b->mem, p, (guint)n);
			b->size = (gint64)n;
		}
		if (b)
			g_ptr_array_add(held, b);
	}
	if (ok && files)
		ok = dir_sync(q, error);
	if (ok)
		ok = pg_db_begin(q->pg, TRUE, error);
	if (ok) {
		guint k = 0;

		for (guint i = from; ok && i < to; i++) {
			if (!envs->pdata[i])
				continue;
			/* Rows with states of their own (responsible elsewhere) keep them. */
			ok = insert_rows(q, envs->pdata[i], held->pdata[k++], error) &&
			    upsert_rcpts(q, envs->pdata[i], error);
		}
		ok = ok && ingest_progress(q, po, seq, hmac, len, to, last, error) &&
		    pg_db_exec(q->pg, "COMMIT", error);
		if (!ok)
			pg_db_rollback(q->pg);
	}
	for (guint i = 0; i < held->len; i++)
		body_free(held->pdata[i], !ok);
	g_ptr_array_unref(held);
	if (ok) {
		fault_step(last ? "queue ingest" : "queue ingest step");
		for (guint i = from; i < to; i++)
			if (envs->pdata[i])
				log_changes(envs->pdata[i]);
	}
	return ok;
}

gboolean
queue_ingest(Queue *q, const char *po, guint64 seq, const guint8 *hmac, gsize len,
    guint first, GPtrArray *envs, GPtrArray *bodies, guint *done, GError **error)
{
	guint from = first;

	*done = first;
	if (envs->len != bodies->len || first > envs->len) {
		g_set_error(error, QUEUE_ERROR, QUEUE_ERROR_STATE, "bundle %s #%" G_GUINT64_FORMAT
		    " has %u entries; %u are queued already", po, seq, envs->len, first);
		return FALSE;
	}
	do {
		gsize bytes = 0;
		guint to = from, count = 0;

		/* As many messages as fit the step's limits, at least one. */
		for (; to < envs->len; to++) {
			gsize n;

			if (!envs->pdata[to])
				continue;
			n = g_bytes_get_size(bodies->pdata[to]);
			if (count > 0 && (count == QUEUE_INGEST_STEP_MESSAGES ||
			    bytes + n > QUEUE_INGEST_STEP_BYTES))
				break;
			count++;
			bytes += n;
		}
		if (!ingest_step(q, po, seq, hmac, len, envs, bodies, from, to, error))
			return FALSE;
		*done = from = to;
	} while (from < envs->len);
	return TRUE;
}

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
	out = list_where(q, where, qid, error);
	g_free(where);
	return out;
}

gint64
queue_smtp_later(Queue *q, gint64 due, GError **error)
{
	sqlite3_stmt *st;
	gint64 n = -1;

	st = pg_db_prepare(q->pg, "SELECT count(*) FROM recipients WHERE state IN "
	    QUEUE_SQL_SMTP_WAITING " AND next_attempt > ?", error);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, due);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	else
		pg_db_fail(q->pg, error, "cannot count deferred recipients");
	sqlite3_finalize(st);
	return n;
}

/* Remove the messages of qids (a set) whose recipients are all finished;
 * their own body files are named in *gone ('f' + qid) for after the commit. */
static gboolean
finish_these(Queue *q, GHashTable *qids, GPtrArray *gone, GError **error)
{
	sqlite3_stmt *open_st, *del_r = NULL, *del_m = NULL;
	GHashTableIter it;
	gpointer key;
	gboolean ok = FALSE;

	open_st = pg_db_prepare(q->pg, "SELECT (SELECT count(*) FROM recipients r WHERE r.qid = m.qid "
	    "AND r.state NOT IN " QUEUE_SQL_FINISHED "), "
	    "m.data IS NULL FROM messages m WHERE m.qid = ?", error);
	del_r = open_st ? pg_db_prepare(q->pg, "DELETE FROM recipients WHERE qid = ?", error) : NULL;
	del_m = del_r ? pg_db_prepare(q->pg, "DELETE FROM messages WHERE qid = ?", error) : NULL;
	if (!del_m)
		goto out;
	g_hash_table_iter_init(&it, qids);
	while (g_hash_table_iter_next(&it, &key, NULL)) {
		gboolean file;

		sqlite3_reset(open_st);
		pg_db_bind_copy(open_st, 1, key);
		if (sqlite3_step(open_st) != SQLITE_ROW || sqlite3_column_int(open_st, 0) != 0)
			continue;
		file = sqlite3_column_int(open_st, 1) != 0;
		sqlite3_reset(del_r);
		sqlite3_reset(del_m);
		pg_db_bind_copy(del_r, 1, key);
		pg_db_bind_copy(del_m, 1, key);
		if (sqlite3_step(del_r) != SQLITE_DONE || sqlite3_step(del_m) != SQLITE_DONE) {
			pg_db_fail(q->pg, error, "cannot remove a finished message");
			goto out;
		}
		g_ptr_array_add(gone, g_strdup_printf("%c%s", file ? 'f' : 'i', (char *)key));
	}
	ok = TRUE;
out:
	sqlite3_finalize(open_st);
	sqlite3_finalize(del_r);
	sqlite3_finalize(del_m);
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
	st = pg_db_prepare(q->pg, "UPDATE recipients SET state = ?3, reason = ?4, last_reply = "
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
	if (!finish_these(q, qids, gone, error) || !pg_db_exec(q->pg, "COMMIT", error))
		goto fail;
	fault_step("queue smtp outcomes");
	finished_gone(q, gone);
	if (finished)
		*finished = gone->len;
	ok = TRUE;
	goto out;
fail:
	pg_db_rollback(q->pg);
out:
	sqlite3_finalize(st);
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
	st = pg_db_prepare(q->pg, "SELECT single_until, retry_at, failures, last_reply FROM destinations "
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
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE || pg_db_fail(q->pg, error, "cannot read a destination");
}

gboolean
queue_dest_set(Queue *q, const char *dest, const QueueDest *d, GError **error)
{
	sqlite3_stmt *st;
	int rc;

	st = pg_db_prepare(q->pg, "INSERT OR REPLACE INTO destinations(dest, single_until, retry_at, "
	    "failures, last_reply) VALUES(?, ?, ?, ?, ?)", error);
	if (!st)
		return FALSE;
	pg_db_bind_copy(st, 1, dest);
	sqlite3_bind_int64(st, 2, d->single_until);
	sqlite3_bind_int64(st, 3, d->retry_at);
	sqlite3_bind_int(st, 4, (int)d->failures);
	pg_db_bind_copy(st, 5, d->last_reply);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
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

	st = pg_db_prepare(q->pg, "SELECT dest, single_until, retry_at, failures, coalesce(last_reply, '') "
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
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		g_ptr_array_unref(out);
		pg_db_fail(q->pg, error, "cannot list destinations");
		return NULL;
	}
	return out;
}
