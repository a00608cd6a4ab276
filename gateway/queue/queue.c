/* queue.c - the durable queue (see queue.h, queue_int.h and docs/queue.md):
 * queue.db's schema and its open, queue ids, envelopes. */
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

G_DEFINE_QUARK(postgate-queue-error-quark, queue_error)

#define QUEUE_SCHEMA_VERSION 9

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
	/* 5 -> 6: reports.  A message says what it is (class: 0 a message,
	 * else message.h's MsgClass of the report) and, for a report, the
	 * queue id of what it reports on (about); a copy of a legacy message
	 * for SMTP says where a non-delivery report goes (report_to, the
	 * legacy originator) and what that originator asked (requests,
	 * MSG_REQ_*); a reported recipient names its report. */
	"ALTER TABLE messages ADD COLUMN class INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE messages ADD COLUMN about TEXT;"
	"ALTER TABLE messages ADD COLUMN report_to TEXT;"
	"ALTER TABLE messages ADD COLUMN requests INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE recipients ADD COLUMN report TEXT;",
	/* 6 -> 7: the same CHECK, written so that SQLite checks it in place
	 * (QUEUE_SQL_STATE_CHECK_V7); the table is made anew once more. */
	"CREATE TABLE recipients_v7("
	"  qid TEXT NOT NULL,"
	"  idx INTEGER NOT NULL,"
	"  address TEXT NOT NULL,"
	"  notify INTEGER NOT NULL,"
	"  orcpt TEXT,"
	"  state TEXT NOT NULL CHECK " QUEUE_SQL_STATE_CHECK_V7 ","
	"  reason TEXT,"
	"  held_from TEXT,"
	"  next_attempt INTEGER NOT NULL DEFAULT 0,"
	"  last_reply TEXT,"
	"  po TEXT, legacy TEXT, parent INTEGER, bcc INTEGER NOT NULL DEFAULT 0,"
	"  bundle_seq INTEGER, via TEXT, rcpt_to TEXT, report TEXT,"
	"  PRIMARY KEY(qid, idx)) WITHOUT ROWID;"
	"INSERT INTO recipients_v7(qid, idx, address, notify, orcpt, state, reason, held_from, "
	"  next_attempt, last_reply, po, legacy, parent, bcc, bundle_seq, via, rcpt_to, report) "
	"  SELECT qid, idx, address, notify, orcpt, state, reason, held_from, next_attempt, "
	"  last_reply, po, legacy, parent, bcc, bundle_seq, via, rcpt_to, report FROM recipients;"
	"DROP TABLE recipients;"
	"ALTER TABLE recipients_v7 RENAME TO recipients;"
	"CREATE INDEX recipients_state ON recipients(state, qid);",
	/* 7 -> 8: what is remembered of a message after it left the queue,
	 * until kept_until, for the report that may come back about it
	 * (queue_sent.c): of an Internet message that went into a postoffice,
	 * so that the postoffice's report becomes a DSN, its envelope, what a
	 * DSN returns (its header section, or for RET=FULL the message whole:
	 * full) and the rows bundled there; of a legacy message's copy sent
	 * over SMTP, so that an Internet DSN about it becomes a legacy report,
	 * its envelope (envid: the legacy id), report_to and requests, and the
	 * rows sent (legacy: the address the sender wrote). */
	"CREATE TABLE sent("
	"  qid TEXT PRIMARY KEY,"
	"  sender TEXT NOT NULL,"
	"  envid TEXT,"
	"  ret INTEGER NOT NULL,"
	"  arrival INTEGER NOT NULL,"
	"  hops INTEGER NOT NULL,"
	"  message_id TEXT,"
	"  returned BLOB,"
	"  full INTEGER NOT NULL,"
	"  kept_until INTEGER NOT NULL,"
	"  report_to TEXT,"
	"  requests INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
	"CREATE INDEX sent_kept ON sent(kept_until);"
	"CREATE INDEX sent_envid ON sent(envid);"
	"CREATE INDEX sent_message_id ON sent(message_id);"
	"CREATE TABLE sent_rcpts("
	"  qid TEXT NOT NULL,"
	"  idx INTEGER NOT NULL,"
	"  address TEXT NOT NULL,"
	"  notify INTEGER NOT NULL,"
	"  orcpt TEXT,"
	"  po TEXT,"
	"  legacy TEXT NOT NULL,"
	"  PRIMARY KEY(qid, idx)) WITHOUT ROWID;",
	/* 8 -> 9: when the delay notice about a message was queued ([delivery]
	 * delay_warning), 0: none yet; set in the commit that queues it, so
	 * that a sender is told once. */
	"ALTER TABLE messages ADD COLUMN warned INTEGER NOT NULL DEFAULT 0;",
};

G_STATIC_ASSERT(G_N_ELEMENTS(migrations) == QUEUE_SCHEMA_VERSION);

/* ------------------------------------------------------------- helpers */

gboolean
qi_io_fail(GError **error, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

gboolean
qi_io_fail(GError **error, const char *fmt, ...)
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

char *
qi_body_path(const Queue *q, const char *qid)
{
	return g_build_filename(q->body_dir, qid, NULL);
}

gboolean
qi_write_all(int fd, const void *data, gsize len, off_t *at)
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
	.stmts = qi_stmt_sql, .n_stmts = QI_ST_COUNT,
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
		qi_io_fail(error, "cannot create %s: %s", q->body_dir, g_strerror(errno));
		goto fail;
	}
	q->dir_fd = open(q->body_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (q->dir_fd < 0) {
		qi_io_fail(error, "cannot open %s: %s", q->body_dir, g_strerror(errno));
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

void
queue_rcpt_free(QueueRcpt *r)
{
	g_free(r->po);
	g_free(r->legacy);
	g_free(r->via);
	g_free(r->rcpt_to);
	g_free(r->report);
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
	g_free(env->about);
	g_free(env->report_to);
	g_ptr_array_foreach(env->rcpts, (GFunc)(void (*)(void))queue_rcpt_free, NULL);
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
