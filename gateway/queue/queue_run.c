/* queue_run.c - what the batch run stores: routes, a legacy message's
 * translation, and bundles from the postoffices ingested in bounded steps
 * against the ledger (see queue_int.h). */
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
	if (!upsert_rcpts(q, env, error) || !pg_db_end(q->pg, error)) {
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
	if (!pg_db_end(q->pg, error)) {
		pg_db_rollback(q->pg);
		return FALSE;
	}
	fault_step("queue routes");
	for (guint i = 0; i < envs->len; i++)
		log_changes(envs->pdata[i]);
	return TRUE;
}

/* In the commit at work: message qid is still in the queue (an
 * administrator may have deleted it since it was read) and, when is not 0,
 * its delay notice or postmaster notice dealt with at when, once: a notice
 * already recorded at another time is an error too, so that none is made
 * twice. */
static gboolean
store_warned(Queue *q, const char *qid, gint64 when, GError **error)
{
	sqlite3_stmt *st = pg_db_cached(q->pg, "UPDATE messages SET warned = ?1 "
	    "WHERE qid = ?2 AND (?1 = 0 OR warned IN (0, ?1))", error);
	gboolean ok;

	if (!st)
		return FALSE;
	sqlite3_bind_int64(st, 1, when);
	pg_db_bind_copy(st, 2, qid);
	ok = sqlite3_step(st) == SQLITE_DONE ||
	    pg_db_fail(q->pg, error, "cannot record a delay notice");
	pg_db_done(st);
	if (ok && sqlite3_changes(q->db) != 1) {
		g_set_error(error, QUEUE_ERROR, QUEUE_ERROR_NOT_FOUND, "message %s is no longer in the "
		    "queue, or its notice is already recorded", qid);
		ok = FALSE;
	}
	return ok;
}

gboolean
queue_set_warned(Queue *q, const char *qid, gint64 when, GError **error)
{
	if (!pg_db_begin(q->pg, TRUE, error))
		return FALSE;
	if (!store_warned(q, qid, when, error)) {
		pg_db_rollback(q->pg);
		return FALSE;
	}
	return pg_db_commit(q->pg, "queue warned", error);
}

gboolean
queue_batch_begin(Queue *q, GError **error)
{
	return pg_db_batch_begin(q->pg, error);
}

gboolean
queue_batch_full(Queue *q)
{
	return pg_db_batch_full(q->pg);
}

gboolean
queue_batch_commit(Queue *q, GError **error)
{
	return pg_db_batch_commit(q->pg, "queue batch", error);
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
		QueueBody *fb = qi_body_file(q, env->qid, p, n, error);

		if (!fb || !qi_dir_sync(q, error)) {
			qi_body_free(fb, TRUE);
			return FALSE;
		}
		b.fd = fb->fd;
		fb->fd = -1;
		qi_body_free(fb, FALSE);
	} else {
		b.mem = g_byte_array_new_take(g_memdup2(p, n), n);
	}
	b.size = (gint64)n;
	ok = pg_db_begin(q->pg, TRUE, error);
	if (ok) {
		ok = qi_insert_rows(q, env, &b, error) && upsert_rcpts(q, env, error) &&
		    upsert_rcpts(q, orig, error) && store_warned(q, orig->qid, orig->warned, error) &&
		    pg_db_end(q->pg, error);
		if (!ok)
			pg_db_rollback(q->pg);
	}
	if (b.mem)
		g_byte_array_unref(b.mem);
	if (b.fd >= 0) {
		close(b.fd);
		if (!ok) {
			char *path = qi_body_path(q, env->qid);

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
	    "state, reason, po, legacy, parent, bcc, via, rcpt_to, report) "
	    "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(qid, idx) DO UPDATE SET "
	    "state = excluded.state, reason = excluded.reason, po = excluded.po, "
	    "legacy = excluded.legacy, parent = excluded.parent, bcc = excluded.bcc, "
	    "via = excluded.via, rcpt_to = excluded.rcpt_to, report = excluded.report, "
	    /* A row the run holds keeps the state it had, for queue release. */
	    "held_from = CASE WHEN excluded.state <> " QUEUE_SQL(QUEUE_STATE_NAME_HELD) " THEN NULL "
	    "WHEN recipients.state <> " QUEUE_SQL(QUEUE_STATE_NAME_HELD) " THEN recipients.state "
	    "ELSE recipients.held_from END";
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
		pg_db_bind_copy(st, 14, r->report);
		if (sqlite3_step(st) != SQLITE_DONE) {
			sqlite3_reset(st);
			return pg_db_fail(q->pg, error, "cannot record routes");
		}
	}
	sqlite3_reset(st);
	return TRUE;
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
			b = qi_body_file(q, env->qid, p, n, error);
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
		ok = qi_dir_sync(q, error);
	if (ok)
		ok = pg_db_begin(q->pg, TRUE, error);
	if (ok) {
		guint k = 0;

		for (guint i = from; ok && i < to; i++) {
			if (!envs->pdata[i])
				continue;
			/* Rows with states of their own (responsible elsewhere) keep them. */
			ok = qi_insert_rows(q, envs->pdata[i], held->pdata[k++], error) &&
			    upsert_rcpts(q, envs->pdata[i], error);
		}
		ok = ok && ingest_progress(q, po, seq, hmac, len, to, last, error) &&
		    pg_db_end(q->pg, error);
		if (!ok)
			pg_db_rollback(q->pg);
	}
	for (guint i = 0; i < held->len; i++)
		qi_body_free(held->pdata[i], !ok);
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
