/* test_queue.c - the durable queue: commits, group commit, states, cleanup. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utime.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <sqlite3.h>

#include "cu_run.h"
#include "message.h"
#include "queue/queue.h"

static char *
scratch(void)
{
	char *dir = g_dir_make_tmp("pg-test-queue-XXXXXX", NULL);

	g_assert(dir);
	return dir;
}

static void
rm_rf(const char *dir)
{
	char *cmd = g_strdup_printf("rm -rf '%s'", dir);

	if (system(cmd) != 0)
		g_warning("cannot remove %s", dir);
	g_free(cmd);
}

static QueueEnvelope *
envelope(const char *sender, const char *rcpt)
{
	char *qid = queue_id_new();
	QueueEnvelope *env = queue_envelope_new(qid);

	g_free(qid);
	g_free(env->sender);
	env->sender = g_strdup(sender);
	env->arrival = 1700000000;
	env->hops = 2;
	env->message_id = g_strdup("<m@x>");
	env->envid = g_strdup("env+1");
	env->ret = MAIL_RET_HDRS;
	env->body = MAIL_BODY_8BITMIME;
	queue_envelope_add_rcpt(env, rcpt, MAIL_NOTIFY_SUCCESS | MAIL_NOTIFY_FAILURE,
	    "rfc822;orig@example.com");
	return env;
}

static GBytes *
body_bytes(gsize n, char fill)
{
	char *b = g_malloc(n);

	memset(b, fill, n);
	return g_bytes_new_take(b, n);
}

static QueueBody *
body_of(Queue *q, const char *qid, GBytes *content)
{
	QueueBody *b = queue_body_new(q, qid);
	gsize n;
	const char *p = g_bytes_get_data(content, &n);

	/* In pieces, as a session appends them. */
	for (gsize off = 0; off < n; off += 7000)
		CU_ASSERT_TRUE(queue_body_append(b, p + off, MIN(7000, n - off), NULL));
	return b;
}

static gboolean
body_equal(Queue *q, const char *qid, GBytes *want)
{
	GBytes *got = queue_body_read(q, qid, -1, NULL);
	gboolean same = got && g_bytes_equal(got, want);

	if (got)
		g_bytes_unref(got);
	return same;
}

static void
test_id(void)
{
	char *a = queue_id_new(), *b = queue_id_new();

	EXPECT(queue_id_valid(a), "a new id is valid: %s", a);
	EXPECT(strlen(a) == QUEUE_ID_LEN, "id length %zu", strlen(a));
	EXPECT(strcmp(a, b) != 0, "two ids differ");
	EXPECT(!queue_id_valid("../etc/passwd"), "a path is no id");
	EXPECT(!queue_id_valid("660f243eb37bd64b44"), "lower case is no id");
	EXPECT(!queue_id_valid(NULL), "NULL is no id");
	g_free(a);
	g_free(b);
}

/* One message at a time (submit): small bodies in the row, large ones in a
 * file; everything reads back as it went in. */
static void
test_commit_roundtrip(void)
{
	char *dir = scratch(), *qid_small, *qid_big, *path;
	Queue *q = queue_open(dir, NULL);
	GBytes *small = body_bytes(4000, 's'), *big = body_bytes(QUEUE_SPILL_AT * 3 + 5, 'b');
	QueueEnvelope *e1 = envelope("alice@example.com", "bob@example.com");
	QueueEnvelope *e2 = envelope("", "carol@example.com"), *got;
	GPtrArray *all;
	QueueRcpt *r;

	CU_ASSERT_PTR_NOT_NULL_FATAL(q);
	qid_small = g_strdup(e1->qid);
	qid_big = g_strdup(e2->qid);
	CU_ASSERT_TRUE(queue_commit(q, e1, body_of(q, e1->qid, small), NULL));
	CU_ASSERT_TRUE(queue_commit(q, e2, body_of(q, e2->qid, big), NULL));
	queue_envelope_free(e1);
	queue_envelope_free(e2);
	path = g_build_filename(dir, "queue", qid_small, NULL);
	EXPECT(!g_file_test(path, G_FILE_TEST_EXISTS), "a small body has no file");
	g_free(path);
	path = g_build_filename(dir, "queue", qid_big, NULL);
	EXPECT(g_file_test(path, G_FILE_TEST_EXISTS), "a large body is a file");
	g_free(path);
	EXPECT(body_equal(q, qid_small, small), "small body reads back");
	EXPECT(body_equal(q, qid_big, big), "large body reads back");

	got = queue_get(q, qid_small, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(got);
	CU_ASSERT_STRING_EQUAL(got->sender, "alice@example.com");
	CU_ASSERT_EQUAL(got->size, 4000);
	CU_ASSERT_EQUAL(got->arrival, 1700000000);
	CU_ASSERT_EQUAL(got->hops, 2);
	CU_ASSERT_STRING_EQUAL(got->envid, "env+1");
	CU_ASSERT_EQUAL(got->ret, MAIL_RET_HDRS);
	CU_ASSERT_EQUAL(got->body, MAIL_BODY_8BITMIME);
	CU_ASSERT_STRING_EQUAL(got->message_id, "<m@x>");
	CU_ASSERT_EQUAL_FATAL(got->rcpts->len, 1);
	r = got->rcpts->pdata[0];
	CU_ASSERT_STRING_EQUAL(r->address, "bob@example.com");
	CU_ASSERT_EQUAL(r->state, QUEUE_ST_ACCEPTED);
	CU_ASSERT_EQUAL(r->notify, MAIL_NOTIFY_SUCCESS | MAIL_NOTIFY_FAILURE);
	CU_ASSERT_STRING_EQUAL(r->orcpt, "rfc822;orig@example.com");
	queue_envelope_free(got);

	/* A partial read stops at the bound. */
	{
		GBytes *head = queue_body_read(q, qid_big, 10, NULL);

		CU_ASSERT_PTR_NOT_NULL_FATAL(head);
		CU_ASSERT_EQUAL(g_bytes_get_size(head), 10);
		g_bytes_unref(head);
	}

	all = queue_list(q, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(all);
	CU_ASSERT_EQUAL(all->len, 2);
	g_ptr_array_unref(all);

	/* The null sender is kept as "". */
	got = queue_get(q, qid_big, NULL);
	CU_ASSERT_STRING_EQUAL(got->sender, "");
	queue_envelope_free(got);

	/* Survives closing and opening again. */
	queue_close(q);
	q = queue_open(dir, NULL);
	EXPECT(body_equal(q, qid_big, big), "large body after reopening");
	queue_close(q);
	g_bytes_unref(small);
	g_bytes_unref(big);
	g_free(qid_small);
	g_free(qid_big);
	rm_rf(dir);
	g_free(dir);
}

typedef struct {
	int done, failed;
} Count;

static void
on_done(gpointer data, const GError *error)
{
	Count *c = data;

	c->done++;
	if (error)
		c->failed++;
}

/* Group commit: many messages handed over at once all become durable,
 * each callback runs once, in the collecting thread. */
static void
test_group_commit(void)
{
	enum { N = 300 };
	char *dir = scratch();
	Queue *q = queue_open(dir, NULL);
	QueueCommitter *c;
	GBytes *content = body_bytes(4096, 'm');
	GPtrArray *qids = g_ptr_array_new_with_free_func(g_free);
	Count count = { 0, 0 };
	GPtrArray *all;
	GError *e = NULL;

	CU_ASSERT_PTR_NOT_NULL_FATAL(q);
	c = queue_committer_new(q, &e);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	for (int i = 0; i < N; i++) {
		QueueEnvelope *env = envelope("a@example.com", "b@example.com");
		GBytes *b = i % 50 == 0 ? body_bytes(QUEUE_SPILL_AT + 1, 'L') : g_bytes_ref(content);

		g_ptr_array_add(qids, g_strdup(env->qid));
		queue_committer_submit(c, env, body_of(q, env->qid, b), on_done, &count);
		g_bytes_unref(b);
	}
	/* Bounded wait for every callback. */
	for (int spins = 0; count.done < N && spins < 3000; spins++) {
		struct pollfd pfd = { queue_committer_fd(c), POLLIN, 0 };

		if (poll(&pfd, 1, 10) > 0)
			queue_committer_collect(c);
	}
	EXPECT(count.done == N, "every callback ran: %d of %d", count.done, N);
	EXPECT(count.failed == 0, "no commit failed: %d", count.failed);
	CU_ASSERT_EQUAL(queue_committer_pending(c), 0);
	/* A second committer on the same queue is refused while one runs. */
	{
		QueueCommitter *other = queue_committer_new(q, &e);

		EXPECT(other == NULL && e && e->code == QUEUE_ERROR_LOCKED,
		    "a second listener is refused");
		g_clear_error(&e);
	}
	queue_committer_free(c);
	all = queue_list(q, NULL);
	CU_ASSERT_EQUAL(all->len, N);
	g_ptr_array_unref(all);
	EXPECT(body_equal(q, qids->pdata[1], content), "a group-committed body reads back");
	queue_close(q);
	g_bytes_unref(content);
	g_ptr_array_unref(qids);
	rm_rf(dir);
	g_free(dir);
}

/* SQL on queue.db from a connection of the test's own (fault injection). */
static void
sql_on(const char *dir, const char *sql)
{
	char *path = g_build_filename(dir, "queue.db", NULL);
	sqlite3 *db;
	char *msg = NULL;

	CU_ASSERT_EQUAL_FATAL(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 10000);
	EXPECT(sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK, "%s: %s", sql,
	    msg ? msg : "ok");
	sqlite3_free(msg);
	sqlite3_close(db);
	g_free(path);
}

/* Failures injected at the insert of a recipient row: a statement error
 * (RAISE(ABORT)) for addresses abort*, and an error that ends the whole
 * transaction (RAISE(ROLLBACK), as SQLite may do on IOERR, FULL, NOMEM)
 * for addresses rollback*. */
static const char inject_sql[] =
    "CREATE TRIGGER inject_abort BEFORE INSERT ON recipients WHEN NEW.address LIKE 'abort%' "
    "BEGIN SELECT RAISE(ABORT, 'injected failure'); END;"
    "CREATE TRIGGER inject_rollback BEFORE INSERT ON recipients WHEN NEW.address LIKE "
    "'rollback%' BEGIN SELECT RAISE(ROLLBACK, 'injected failure that ends the "
    "transaction'); END;";

typedef struct {
	char *qid;
	gboolean done, failed;
} Outcome;

static void
on_outcome(gpointer data, const GError *error)
{
	Outcome *o = data;

	o->done = TRUE;
	o->failed = error != NULL;
}

/* One batch of group commit with a message whose second recipient cannot
 * be inserted and, with rollback, one whose insert rolls the whole
 * transaction back, amid others: each message that got its error (451)
 * has no row at all, each that got success (250) has its message and every
 * recipient. */
static void
injected_batch(gboolean rollback)
{
	enum { N = 12 };
	static const char *const second[N] = { NULL, NULL, NULL, "abort@example.com", NULL,
		NULL, NULL, NULL, NULL, NULL, NULL, NULL };
	static const char *const first[N] = { NULL, NULL, NULL, NULL, NULL, NULL, NULL,
		"rollback@example.com", NULL, NULL, NULL, NULL };
	const char *what = rollback ? "with a rollback" : "a failed statement";
	char *dir = scratch();
	Queue *q = queue_open(dir, NULL);
	QueueCommitter *c;
	GBytes *content = body_bytes(2000, 'x');
	Outcome out[N] = { { 0 } };
	char *path = g_build_filename(dir, "queue.db", NULL);
	sqlite3 *lock;
	int done = 0, wrong = 0;
	GError *e = NULL;

	CU_ASSERT_PTR_NOT_NULL_FATAL(q);
	sql_on(dir, inject_sql);
	c = queue_committer_new(q, &e);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	/* The database held while they are handed over: they make one batch
	 * (or two, the first message alone). */
	CU_ASSERT_EQUAL_FATAL(sqlite3_open(path, &lock), SQLITE_OK);
	CU_ASSERT_EQUAL(sqlite3_exec(lock, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	for (int i = 0; i < N; i++) {
		QueueEnvelope *env = envelope("a@example.com",
		    first[i] && rollback ? first[i] : "b@example.com");

		queue_envelope_add_rcpt(env, second[i] ? second[i] : "c@example.com", 0, NULL);
		out[i].qid = g_strdup(env->qid);
		queue_committer_submit(c, env, body_of(q, env->qid, content), on_outcome, &out[i]);
	}
	g_usleep(100 * 1000);
	CU_ASSERT_EQUAL(sqlite3_exec(lock, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(lock);
	for (int spins = 0; done < N && spins < 3000; spins++) {
		struct pollfd pfd = { queue_committer_fd(c), POLLIN, 0 };

		if (poll(&pfd, 1, 10) > 0)
			queue_committer_collect(c);
		done = 0;
		for (int i = 0; i < N; i++)
			done += out[i].done;
	}
	queue_committer_free(c);
	EXPECT(done == N, "%s: every callback ran: %d of %d", what, done, N);
	for (int i = 0; i < N; i++) {
		QueueEnvelope *env = queue_get(q, out[i].qid, NULL);
		gboolean bad = i == 3 || (rollback && i == 7);

		EXPECT(out[i].failed == bad, "%s: message %d: %s", what, i,
		    out[i].failed ? "451" : "250");
		if (out[i].failed)
			EXPECT(env == NULL, "%s: message %d got 451 and has no row in the queue: %s",
			    what, i, env ? "it has one" : "none");
		else
			EXPECT(env && env->rcpts->len == 2, "%s: message %d got 250 and has its row "
			    "and both recipients: %u", what, i, env ? env->rcpts->len : 0);
		wrong += (out[i].failed != (env == NULL));
		queue_envelope_free(env);
		g_free(out[i].qid);
	}
	EXPECT(wrong == 0, "%s: no message is in the queue that got 451, none missing that got "
	    "250", what);
	/* And no recipient row of a message that is not there. */
	{
		sqlite3 *db;
		sqlite3_stmt *st;
		int orphans = -1;

		CU_ASSERT_EQUAL_FATAL(sqlite3_open(path, &db), SQLITE_OK);
		if (sqlite3_prepare_v2(db, "SELECT count(*) FROM recipients r WHERE NOT EXISTS "
		    "(SELECT 1 FROM messages m WHERE m.qid = r.qid)", -1, &st, NULL) == SQLITE_OK &&
		    sqlite3_step(st) == SQLITE_ROW)
			orphans = sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
		sqlite3_close(db);
		EXPECT(orphans == 0, "%s: no recipient row without its message: %d", what, orphans);
	}
	queue_close(q);
	g_bytes_unref(content);
	g_free(path);
	rm_rf(dir);
	g_free(dir);
}

static void
test_group_commit_injected_failure(void)
{
	injected_batch(FALSE);
	injected_batch(TRUE);
}

/* The entries of a bundle as queue_ingest takes them: n messages with
 * bodies of size bytes (entry 1, a directory entry, has none), each to
 * a recipient named after its entry; entry fail's insert fails while the
 * triggers of inject_sql are there. */
static void
ingest_entries(guint n, gsize size, guint fail, GPtrArray **envs, GPtrArray **bodies)
{
	*envs = g_ptr_array_new_with_free_func((GDestroyNotify)queue_envelope_free);
	*bodies = g_ptr_array_new();
	for (guint i = 0; i < n; i++) {
		char *rcpt = g_strdup_printf("%s%u@example.com", i == fail ? "abort" : "r", i);
		QueueEnvelope *env = i == 1 ? NULL : envelope("CORP/P1/A", rcpt);

		if (env) {
			env->format = g_strdup("legacy");
			env->origin = g_strdup("CORP/P1#7");
		}
		g_ptr_array_add(*envs, env);
		g_ptr_array_add(*bodies, env ? body_bytes(size, (char)('a' + i % 26)) : NULL);
		g_free(rcpt);
	}
}

static void
ingest_entries_free(GPtrArray *envs, GPtrArray *bodies)
{
	for (guint i = 0; i < bodies->len; i++)
		if (bodies->pdata[i])
			g_bytes_unref(bodies->pdata[i]);
	g_ptr_array_unref(bodies);
	g_ptr_array_unref(envs);
}

/* How many messages of bundle CORP/P1#7 the queue holds, and how many of
 * them are distinct entries (by their recipient). */
static void
ingested(Queue *q, guint *messages, guint *distinct)
{
	GPtrArray *all = queue_list(q, NULL);
	GHashTable *seen = g_hash_table_new(g_str_hash, g_str_equal);

	*messages = 0;
	for (guint i = 0; all && i < all->len; i++) {
		QueueEnvelope *env = all->pdata[i];

		if (g_strcmp0(env->origin, "CORP/P1#7") != 0)
			continue;
		(*messages)++;
		g_hash_table_add(seen, ((QueueRcpt *)env->rcpts->pdata[0])->address);
	}
	*distinct = g_hash_table_size(seen);
	g_hash_table_unref(seen);
	if (all)
		g_ptr_array_unref(all);
}

/* A bundle is queued in commits of bounded size, each recording how far it
 * got: a failure in the middle keeps what was committed, the ledger says
 * where to go on, and going on from there queues every entry exactly once;
 * the last commit records the bundle applied.  Bodies over QUEUE_SPILL_AT
 * are files of their own. */
static void
test_ingest_steps(void)
{
	static const guint8 hmac[32] = { 1, 2, 3 }, other[32] = { 9 };
	const guint n = QUEUE_INGEST_STEP_MESSAGES * 2 + 100;
	char *dir = scratch();
	Queue *q = queue_open(dir, NULL);
	GPtrArray *envs, *bodies;
	guint done = 0, next = 99, resume, messages, distinct, files = 0;
	GError *e = NULL;
	gboolean ok;

	CU_ASSERT_PTR_NOT_NULL_FATAL(q);
	EXPECT(queue_ledger_check(q, "CORP/P1", 7, hmac, sizeof hmac, &next, NULL) ==
	    QUEUE_LEDGER_NEW && next == 0, "a bundle never seen is new");
	/* Small bodies: the step is bounded by its count of messages. */
	sql_on(dir, inject_sql);
	ingest_entries(n, 100, n - 40, &envs, &bodies);
	ok = queue_ingest(q, "CORP/P1", 7, hmac, sizeof hmac, 0, envs, bodies, &done, &e);
	EXPECT(!ok && e, "an insert failing in the third step fails the ingest: %s",
	    e ? e->message : "no error");
	g_clear_error(&e);
	EXPECT(done == QUEUE_INGEST_STEP_MESSAGES * 2 + 1, "two steps of %u messages were "
	    "committed (and the directory entry counted): done %u", QUEUE_INGEST_STEP_MESSAGES,
	    done);
	ingested(q, &messages, &distinct);
	EXPECT(messages == done - 1 && distinct == messages, "the queue holds exactly the "
	    "messages of those steps, each once: %u (%u distinct)", messages, distinct);
	EXPECT(queue_ledger_check(q, "CORP/P1", 7, hmac, sizeof hmac, &next, NULL) ==
	    QUEUE_LEDGER_PARTIAL && next == done, "the ledger says it was begun, up to %u: %u",
	    done, next);
	resume = next;
	EXPECT(queue_ledger_check(q, "CORP/P1", 7, other, sizeof other, &next, NULL) ==
	    QUEUE_LEDGER_OTHER, "the same number with other contents is a replay");
	ingest_entries_free(envs, bodies);

	/* Going on where it stopped (new envelopes, as the next run makes them). */
	sql_on(dir, "DROP TRIGGER inject_abort; DROP TRIGGER inject_rollback");
	ingest_entries(n, 100, n - 40, &envs, &bodies);
	ok = queue_ingest(q, "CORP/P1", 7, hmac, sizeof hmac, resume, envs, bodies, &done, &e);
	EXPECT(ok && done == n, "it goes on from entry %u to the end: %s", resume,
	    e ? e->message : "ok");
	g_clear_error(&e);
	ingested(q, &messages, &distinct);
	EXPECT(messages == n - 1 && distinct == n - 1, "every message of the bundle is queued "
	    "exactly once: %u of %u (%u distinct)", messages, n - 1, distinct);
	EXPECT(queue_ledger_check(q, "CORP/P1", 7, hmac, sizeof hmac, &next, NULL) ==
	    QUEUE_LEDGER_SAME, "and the bundle is applied");
	EXPECT(queue_ledger_check(q, "CORP/P1", 7, other, sizeof other, &next, NULL) ==
	    QUEUE_LEDGER_OTHER, "the same number with other contents is a replay");
	ingest_entries_free(envs, bodies);

	/* Large bodies: files of their own, and a step bounded by its bytes; a
	 * step that fails leaves no file behind. */
	{
		const guint per_step = QUEUE_INGEST_STEP_BYTES / (QUEUE_SPILL_AT * 4);
		const guint all = per_step + 3;   /* entry 1 is the directory entry */
		char *qdir = g_build_filename(dir, "queue", NULL);
		GDir *d;
		const char *name;

		sql_on(dir, inject_sql);
		ingest_entries(all, QUEUE_SPILL_AT * 4, all - 1, &envs, &bodies);
		ok = queue_ingest(q, "CORP/P1", 8, hmac, sizeof hmac, 0, envs, bodies, &done, &e);
		EXPECT(!ok && done == per_step + 1, "the first step took %u bodies of %u bytes "
		    "(%u bytes at most): done %u", per_step, QUEUE_SPILL_AT * 4,
		    QUEUE_INGEST_STEP_BYTES, done);
		g_clear_error(&e);
		for (guint i = 0; i < envs->len; i++) {
			QueueEnvelope *env = envs->pdata[i];
			char *path;

			if (!env)
				continue;
			path = g_build_filename(dir, "queue", env->qid, NULL);
			if (i < done) {
				EXPECT(g_file_test(path, G_FILE_TEST_EXISTS), "entry %u: a body of "
				    "%u bytes is a file of its own", i + 1, QUEUE_SPILL_AT * 4);
				EXPECT(body_equal(q, env->qid, bodies->pdata[i]), "entry %u reads back",
				    i + 1);
			}
			g_free(path);
		}
		files = 0;
		d = g_dir_open(qdir, 0, NULL);
		g_free(qdir);
		while (d && (name = g_dir_read_name(d)) != NULL)
			files += queue_id_valid(name);
		if (d)
			g_dir_close(d);
		EXPECT(files == per_step, "queue/ holds the bodies of the committed step only: "
		    "%u files", files);
		ingest_entries_free(envs, bodies);
		sql_on(dir, "DROP TRIGGER inject_abort; DROP TRIGGER inject_rollback");
		ingest_entries(all, QUEUE_SPILL_AT * 4, all - 1, &envs, &bodies);
		EXPECT(queue_ingest(q, "CORP/P1", 8, hmac, sizeof hmac, done, envs, bodies, &done,
		    NULL) && queue_ledger_check(q, "CORP/P1", 8, hmac, sizeof hmac, &next, NULL) ==
		    QUEUE_LEDGER_SAME, "going on, that bundle is applied too");
		ingest_entries_free(envs, bodies);
	}

	/* A bundle of nothing but a directory entry is recorded applied. */
	envs = g_ptr_array_new();
	bodies = g_ptr_array_new();
	g_ptr_array_add(envs, NULL);
	g_ptr_array_add(bodies, NULL);
	EXPECT(queue_ingest(q, "CORP/P1", 9, hmac, sizeof hmac, 0, envs, bodies, &done, NULL) &&
	    queue_ledger_check(q, "CORP/P1", 9, hmac, sizeof hmac, &next, NULL) ==
	    QUEUE_LEDGER_SAME, "a bundle without messages is recorded applied");
	g_ptr_array_unref(envs);
	g_ptr_array_unref(bodies);
	queue_close(q);
	rm_rf(dir);
	g_free(dir);
}

static void
test_hold_release_delete(void)
{
	char *dir = scratch(), *qid, *path;
	Queue *q = queue_open(dir, NULL);
	QueueEnvelope *env = envelope("a@example.com", "b@example.com"), *got;
	GBytes *big = body_bytes(QUEUE_SPILL_AT + 100, 'x');
	GError *e = NULL;

	qid = g_strdup(env->qid);
	CU_ASSERT_TRUE(queue_commit(q, env, body_of(q, qid, big), NULL));
	queue_envelope_free(env);
	CU_ASSERT_TRUE(queue_hold(q, qid, "looks like spam", NULL));
	got = queue_get(q, qid, NULL);
	CU_ASSERT_EQUAL(((QueueRcpt *)got->rcpts->pdata[0])->state, QUEUE_ST_HELD);
	CU_ASSERT_STRING_EQUAL(((QueueRcpt *)got->rcpts->pdata[0])->reason, "looks like spam");
	queue_envelope_free(got);
	EXPECT(!queue_hold(q, qid, "again", &e) && e && e->code == QUEUE_ERROR_STATE,
	    "holding a held message is a state error");
	g_clear_error(&e);
	CU_ASSERT_TRUE(queue_release(q, qid, NULL));
	got = queue_get(q, qid, NULL);
	CU_ASSERT_EQUAL(((QueueRcpt *)got->rcpts->pdata[0])->state, QUEUE_ST_ACCEPTED);
	CU_ASSERT_PTR_NULL(((QueueRcpt *)got->rcpts->pdata[0])->reason);
	queue_envelope_free(got);
	EXPECT(!queue_release(q, qid, &e) && e && e->code == QUEUE_ERROR_STATE,
	    "releasing what is not held is a state error");
	g_clear_error(&e);

	CU_ASSERT_TRUE(queue_delete(q, qid, NULL));
	path = g_build_filename(dir, "queue", qid, NULL);
	EXPECT(!g_file_test(path, G_FILE_TEST_EXISTS), "delete removes the body file");
	g_free(path);
	EXPECT(queue_get(q, qid, &e) == NULL && e && e->code == QUEUE_ERROR_NOT_FOUND,
	    "a deleted message is gone");
	g_clear_error(&e);
	EXPECT(!queue_delete(q, qid, &e) && e && e->code == QUEUE_ERROR_NOT_FOUND,
	    "deleting twice: not found");
	g_clear_error(&e);
	queue_close(q);
	g_bytes_unref(big);
	g_free(qid);
	rm_rf(dir);
	g_free(dir);
}

/* A body file whose row never committed goes at the next start, once old
 * enough; a body a row names stays. */
static void
test_cleanup(void)
{
	char *dir = scratch(), *orphan, *young, *kept_qid, *kept;
	Queue *q = queue_open(dir, NULL);
	QueueEnvelope *env = envelope("a@example.com", "b@example.com");
	GBytes *big = body_bytes(QUEUE_SPILL_AT + 1, 'k');
	struct utimbuf old = { 1000000000, 1000000000 };
	char *id1 = queue_id_new(), *id2 = queue_id_new();

	kept_qid = g_strdup(env->qid);
	CU_ASSERT_TRUE(queue_commit(q, env, body_of(q, kept_qid, big), NULL));
	queue_envelope_free(env);
	kept = g_build_filename(dir, "queue", kept_qid, NULL);
	orphan = g_build_filename(dir, "queue", id1, NULL);
	young = g_build_filename(dir, "queue", id2, NULL);
	CU_ASSERT_TRUE(g_file_set_contents(orphan, "x", 1, NULL));
	CU_ASSERT_TRUE(g_file_set_contents(young, "y", 1, NULL));
	CU_ASSERT_EQUAL(utime(orphan, &old), 0);
	CU_ASSERT_EQUAL(utime(kept, &old), 0);
	CU_ASSERT_TRUE(queue_cleanup(q, NULL));
	EXPECT(!g_file_test(orphan, G_FILE_TEST_EXISTS), "an old orphan is removed");
	EXPECT(g_file_test(young, G_FILE_TEST_EXISTS), "a young orphan stays (a submit at work)");
	EXPECT(g_file_test(kept, G_FILE_TEST_EXISTS), "a queued body stays");
	EXPECT(body_equal(q, kept_qid, big), "the queued body is intact");
	queue_close(q);
	g_bytes_unref(big);
	g_free(orphan);
	g_free(young);
	g_free(kept);
	g_free(kept_qid);
	g_free(id1);
	g_free(id2);
	rm_rf(dir);
	g_free(dir);
}

/* A queue.db of a newer schema is refused, not "migrated" backwards. */
static void
test_newer_schema(void)
{
	char *dir = scratch(), *path;
	Queue *q = queue_open(dir, NULL);
	GError *e = NULL;
	sqlite3 *db;

	queue_close(q);
	path = g_build_filename(dir, "queue.db", NULL);
	CU_ASSERT_EQUAL_FATAL(sqlite3_open(path, &db), SQLITE_OK);
	CU_ASSERT_EQUAL(sqlite3_exec(db, "UPDATE schema_version SET version = 99", NULL, NULL,
	    NULL), SQLITE_OK);
	sqlite3_close(db);
	q = queue_open(dir, &e);
	EXPECT(q == NULL && e && e->code == QUEUE_ERROR_SCHEMA && strstr(e->message, "99"),
	    "newer schema refused: %s", e ? e->message : "(opened)");
	g_clear_error(&e);
	queue_close(q);
	g_free(path);
	rm_rf(dir);
	g_free(dir);
}

/* A body under a name that is no queue id never becomes a file. */
static void
test_spill_failure(void)
{
	char *dir = scratch(), *outside;
	Queue *q = queue_open(dir, NULL);
	QueueBody *b;
	GBytes *big = body_bytes(QUEUE_SPILL_AT + 1, 'z');
	GError *e = NULL;

	b = queue_body_new(q, "../escape");
	EXPECT(!queue_body_append(b, g_bytes_get_data(big, NULL), g_bytes_get_size(big), &e),
	    "no spill file outside queue/");
	g_clear_error(&e);
	queue_body_discard(b);
	outside = g_build_filename(dir, "escape", NULL);
	EXPECT(!g_file_test(outside, G_FILE_TEST_EXISTS), "nothing written beside queue/");
	g_free(outside);
	queue_close(q);
	g_bytes_unref(big);
	rm_rf(dir);
	g_free(dir);
}

/* ------------------------------------------------------------ SMTP delivery */

/* Commit a message with n recipients r0@y.test..; its qid (g_free it). */
static char *
commit_n(Queue *q, gint64 arrival, guint n, GBytes *body)
{
	QueueEnvelope *env = envelope("a@x.test", "r0@y.test");
	char *qid = g_strdup(env->qid);
	GBytes *b = body ? g_bytes_ref(body) : body_bytes(100, 'm');

	env->arrival = arrival;
	for (guint i = 1; i < n; i++) {
		char *a = g_strdup_printf("r%u@y.test", i);

		queue_envelope_add_rcpt(env, a, 0, NULL);
		g_free(a);
	}
	CU_ASSERT_TRUE_FATAL(queue_commit(q, env, body_of(q, qid, b), NULL));
	queue_envelope_free(env);
	g_bytes_unref(b);
	return qid;
}

/* Give row idx of qid a state (as the batch run does: via, rcpt_to). */
static void
set_state(Queue *q, const char *qid, guint idx, QueueState state)
{
	QueueEnvelope *env = queue_get(q, qid, NULL);
	QueueRcpt *r;

	CU_ASSERT_PTR_NOT_NULL_FATAL(env);
	CU_ASSERT_FATAL(idx < env->rcpts->len);
	r = env->rcpts->pdata[idx];
	r->state = state;       /* a fixture: any state, not through the machine */
	if (state == QUEUE_ST_SMTP_PENDING) {
		g_free(r->via);
		r->via = g_strdup("smtp");
		g_free(r->rcpt_to);
		r->rcpt_to = g_strdup(r->address);
	}
	CU_ASSERT_TRUE(queue_set_routes(q, env, NULL));
	queue_envelope_free(env);
}

/* Row idx of qid as queue.db has it now (NULL: no such message). */
static QueueRcpt *
row_of(Queue *q, const char *qid, guint idx, QueueEnvelope **keep)
{
	*keep = queue_get(q, qid, NULL);
	if (!*keep || idx >= (*keep)->rcpts->len)
		return NULL;
	return (*keep)->rcpts->pdata[idx];
}

/* Whether list holds exactly the qids given (in that order). */
static gboolean
lists(GPtrArray *list, const char *q1, const char *q2)
{
	const char *want[] = { q1, q2 };
	guint n = q2 ? 2 : q1 ? 1 : 0;

	if (!list || list->len != n)
		return FALSE;
	for (guint i = 0; i < n; i++)
		if (strcmp(((QueueEnvelope *)list->pdata[i])->qid, want[i]) != 0)
			return FALSE;
	return TRUE;
}

static char *
qids_of(GPtrArray *list)
{
	GString *s = g_string_new(NULL);

	for (guint i = 0; list && i < list->len; i++)
		g_string_append_printf(s, "%s%s", i ? " " : "", ((QueueEnvelope *)list->pdata[i])->qid);
	return g_string_free(s, FALSE);
}

/* queue_smtp_waiting lists the messages with a recipient smtp-pending or
 * deferred (and due), oldest first, with all their rows; only qid's when
 * asked; queue_smtp_later counts the rows not yet due. */
static void
test_smtp_waiting(void)
{
	char *dir = scratch(), *got;
	Queue *q = queue_open(dir, NULL);
	gint64 now = g_get_real_time() / G_USEC_PER_SEC;
	char *pending, *deferred, *accepted, *held, *bundled;
	QueueOutcome o;
	GPtrArray *l;

	CU_ASSERT_PTR_NOT_NULL_FATAL(q);
	/* Created newest first: the listing goes by arrival. */
	bundled = commit_n(q, 1700000500, 1, NULL);
	held = commit_n(q, 1700000400, 1, NULL);
	accepted = commit_n(q, 1700000300, 1, NULL);
	deferred = commit_n(q, 1700000200, 2, NULL);
	pending = commit_n(q, 1700000100, 1, NULL);
	set_state(q, pending, 0, QUEUE_ST_SMTP_PENDING);
	set_state(q, deferred, 0, QUEUE_ST_BUNDLED);
	set_state(q, deferred, 1, QUEUE_ST_SMTP_PENDING);
	o = (QueueOutcome){ deferred, 1, QUEUE_ST_DEFERRED, "451 4.3.0 later", "451 4.3.0 later",
		now + 3600 };
	CU_ASSERT_TRUE(queue_smtp_outcomes(q, &o, 1, NULL, NULL));
	set_state(q, held, 0, QUEUE_ST_SMTP_PENDING);
	CU_ASSERT_TRUE(queue_hold(q, held, "by the administrator", NULL));
	set_state(q, bundled, 0, QUEUE_ST_BUNDLING);

	l = queue_smtp_waiting(q, NULL, 0, NULL);
	got = qids_of(l);
	EXPECT(lists(l, pending, deferred), "due 0: the pending and the deferred one, oldest "
	    "first (got %s)", got);
	if (l && l->len == 2)
		EXPECT(((QueueEnvelope *)l->pdata[1])->rcpts->len == 2, "with every row, the "
		    "bundled one too");
	g_free(got);
	g_ptr_array_unref(l);

	l = queue_smtp_waiting(q, NULL, now, NULL);
	got = qids_of(l);
	EXPECT(lists(l, pending, NULL), "due now: not the one deferred for an hour (got %s)", got);
	g_free(got);
	g_ptr_array_unref(l);

	l = queue_smtp_waiting(q, NULL, now + 3600, NULL);
	EXPECT(lists(l, pending, deferred), "due in an hour: both");
	g_ptr_array_unref(l);

	l = queue_smtp_waiting(q, deferred, 0, NULL);
	EXPECT(lists(l, deferred, NULL), "only the qid asked for");
	g_ptr_array_unref(l);
	l = queue_smtp_waiting(q, deferred, now, NULL);
	EXPECT(lists(l, NULL, NULL), "the qid asked for, not yet due: nothing");
	g_ptr_array_unref(l);
	l = queue_smtp_waiting(q, accepted, 0, NULL);
	EXPECT(lists(l, NULL, NULL), "a message not routed to SMTP: nothing");
	g_ptr_array_unref(l);
	l = queue_smtp_waiting(q, held, 0, NULL);
	EXPECT(lists(l, NULL, NULL), "a held message: nothing");
	g_ptr_array_unref(l);
	l = queue_smtp_waiting(q, "0000000000000FFFFF", 0, NULL);
	EXPECT(lists(l, NULL, NULL), "no such message: an empty list, not an error");
	if (l)
		g_ptr_array_unref(l);

	EXPECT(queue_smtp_later(q, now, NULL) == 1, "one row waits for later (got %"
	    G_GINT64_FORMAT ")", queue_smtp_later(q, now, NULL));
	EXPECT(queue_smtp_later(q, now + 3600, NULL) == 0, "none after an hour");

	queue_close(q);
	g_free(pending);
	g_free(deferred);
	g_free(accepted);
	g_free(held);
	g_free(bundled);
	rm_rf(dir);
	g_free(dir);
}

/* queue_smtp_outcomes: sent, deferred and held with their reason, last
 * reply and next attempt; held from 'deferred', so a release makes it
 * deferred; a NULL last_reply keeps the one before. */
static void
test_smtp_outcomes_states(void)
{
	char *dir = scratch(), *qid;
	Queue *q = queue_open(dir, NULL);
	QueueEnvelope *keep;
	QueueRcpt *r;
	guint finished = 99;
	GError *e = NULL;
	QueueOutcome o[3];

	CU_ASSERT_PTR_NOT_NULL_FATAL(q);
	qid = commit_n(q, 1700000000, 3, NULL);
	for (guint i = 0; i < 3; i++)
		set_state(q, qid, i, QUEUE_ST_SMTP_PENDING);
	o[0] = (QueueOutcome){ qid, 0, QUEUE_ST_SENT, "to mx.y.test[192.0.2.1]:25",
		"250 2.0.0 queued as X", 0 };
	o[1] = (QueueOutcome){ qid, 1, QUEUE_ST_DEFERRED, "451 4.3.0 try later", "451 4.3.0 try later",
		1800000000 };
	o[2] = (QueueOutcome){ qid, 2, QUEUE_ST_HELD, "delivery failed: 550 5.1.1 no such user",
		"550 5.1.1 no such user", 0 };
	EXPECT(queue_smtp_outcomes(q, o, 3, &finished, &e), "outcomes recorded: %s",
	    e ? e->message : "");
	g_clear_error(&e);
	EXPECT(finished == 0, "nothing finished: rows are still open (got %u)", finished);

	r = row_of(q, qid, 0, &keep);
	EXPECT(r && r->state == QUEUE_ST_SENT, "row 0 sent (got %s)", r ? queue_state_name(r->state) : "-");
	EXPECT(r && g_strcmp0(r->reason, "to mx.y.test[192.0.2.1]:25") == 0, "its reason");
	EXPECT(r && g_strcmp0(r->last_reply, "250 2.0.0 queued as X") == 0, "its last reply");
	queue_envelope_free(keep);
	r = row_of(q, qid, 1, &keep);
	EXPECT(r && r->state == QUEUE_ST_DEFERRED, "row 1 deferred (got %s)",
	    r ? queue_state_name(r->state) : "-");
	EXPECT(r && g_strcmp0(r->reason, "451 4.3.0 try later") == 0, "its reason");
	EXPECT(r && g_strcmp0(r->last_reply, "451 4.3.0 try later") == 0, "its last reply");
	EXPECT(r && r->next_attempt == 1800000000, "its next attempt (got %" G_GINT64_FORMAT ")",
	    r ? r->next_attempt : 0);
	queue_envelope_free(keep);
	r = row_of(q, qid, 2, &keep);
	EXPECT(r && r->state == QUEUE_ST_HELD, "row 2 held (got %s)", r ? queue_state_name(r->state) : "-");
	EXPECT(r && g_strcmp0(r->reason, "delivery failed: 550 5.1.1 no such user") == 0,
	    "its reason");
	EXPECT(r && g_strcmp0(r->last_reply, "550 5.1.1 no such user") == 0, "its last reply");
	EXPECT(r && r->next_attempt == 0, "no next attempt");
	queue_envelope_free(keep);

	/* Deferred again, nothing new to say: the last reply stays. */
	o[1] = (QueueOutcome){ qid, 1, QUEUE_ST_DEFERRED, "connection lost", NULL, 1800000600 };
	CU_ASSERT_TRUE(queue_smtp_outcomes(q, &o[1], 1, NULL, NULL));
	r = row_of(q, qid, 1, &keep);
	EXPECT(r && g_strcmp0(r->last_reply, "451 4.3.0 try later") == 0, "last reply kept "
	    "(got %s)", r && r->last_reply ? r->last_reply : "NULL");
	EXPECT(r && g_strcmp0(r->reason, "connection lost") == 0 && r->next_attempt == 1800000600,
	    "reason and next attempt are the new ones");
	queue_envelope_free(keep);

	/* The administrator releases the held row: it is deferred, due at once. */
	CU_ASSERT_TRUE(queue_release(q, qid, NULL));
	r = row_of(q, qid, 2, &keep);
	EXPECT(r && r->state == QUEUE_ST_DEFERRED, "released: deferred (got %s)",
	    r ? queue_state_name(r->state) : "-");
	EXPECT(r && r->reason == NULL, "released: no reason");
	queue_envelope_free(keep);
	{
		GPtrArray *l = queue_smtp_waiting(q, qid, g_get_real_time() / G_USEC_PER_SEC, NULL);

		EXPECT(lists(l, qid, NULL), "the released row is due now");
		g_ptr_array_unref(l);
	}
	queue_close(q);
	g_free(qid);
	rm_rf(dir);
	g_free(dir);
}

/* Rows that are no longer waiting are left alone by a failure: held by the
 * administrator meanwhile, or already final; a deleted message is no error.
 * A server's 250 is a fact, though: a row held meanwhile becomes sent (a
 * release would otherwise send it again). */
static void
test_smtp_outcomes_not_waiting(void)
{
	char *dir = scratch(), *qid, *gone;
	Queue *q = queue_open(dir, NULL);
	QueueEnvelope *keep;
	QueueRcpt *r;
	guint finished = 99;
	GError *e = NULL;
	QueueOutcome o[3];

	CU_ASSERT_PTR_NOT_NULL_FATAL(q);
	qid = commit_n(q, 1700000000, 2, NULL);
	set_state(q, qid, 0, QUEUE_ST_SMTP_PENDING);
	set_state(q, qid, 1, QUEUE_ST_BUNDLED);
	CU_ASSERT_TRUE(queue_hold(q, qid, "by the administrator", NULL));
	gone = commit_n(q, 1700000001, 1, NULL);
	set_state(q, gone, 0, QUEUE_ST_SMTP_PENDING);
	CU_ASSERT_TRUE(queue_delete(q, gone, NULL));

	o[0] = (QueueOutcome){ qid, 0, QUEUE_ST_DEFERRED, "451 later", "451 later", 1700009999 };
	o[1] = (QueueOutcome){ qid, 1, QUEUE_ST_HELD, "delivery failed: 550", "550 no", 0 };
	o[2] = (QueueOutcome){ gone, 0, QUEUE_ST_SENT, "to relay", "250 ok", 0 };
	EXPECT(queue_smtp_outcomes(q, o, 3, &finished, &e), "outcomes recorded: %s",
	    e ? e->message : "");
	g_clear_error(&e);
	EXPECT(finished == 0, "nothing finished (got %u)", finished);
	r = row_of(q, qid, 0, &keep);
	EXPECT(r && r->state == QUEUE_ST_HELD && g_strcmp0(r->reason,
	    "by the administrator") == 0, "the administrator's hold stays (got %s, %s)",
	    r ? queue_state_name(r->state) : "-", r && r->reason ? r->reason : "NULL");
	EXPECT(r && r->last_reply == NULL, "and no last reply was recorded");
	queue_envelope_free(keep);
	r = row_of(q, qid, 1, &keep);
	EXPECT(r && r->state == QUEUE_ST_BUNDLED, "a final row stays (got %s)",
	    r ? queue_state_name(r->state) : "-");
	queue_envelope_free(keep);
	/* Released, it goes back to where the hold found it. */
	CU_ASSERT_TRUE(queue_release(q, qid, NULL));
	r = row_of(q, qid, 0, &keep);
	EXPECT(r && r->state == QUEUE_ST_SMTP_PENDING, "released: smtp-pending again "
	    "(got %s)", r ? queue_state_name(r->state) : "-");
	queue_envelope_free(keep);
	EXPECT(queue_get(q, gone, NULL) == NULL, "the deleted message did not come back");
	/* Held again, then the 250 of a transaction under way comes in. */
	CU_ASSERT_TRUE(queue_hold(q, qid, "by the administrator", NULL));
	o[0] = (QueueOutcome){ qid, 0, QUEUE_ST_SENT, "to relay", "250 ok", 0 };
	EXPECT(queue_smtp_outcomes(q, o, 1, &finished, &e), "the 250 recorded: %s",
	    e ? e->message : "");
	g_clear_error(&e);
	EXPECT(finished == 1 && queue_get(q, qid, NULL) == NULL, "the held row is sent, the "
	    "message finished (finished %u)", finished);
	queue_close(q);
	g_free(qid);
	g_free(gone);
	rm_rf(dir);
	g_free(dir);
}

/* A message whose rows are all final leaves the queue in the same commit,
 * its body file too (a body over QUEUE_SPILL_AT); one with a row still
 * open (deferred, held) stays. */
static void
test_smtp_outcomes_finish(void)
{
	char *dir = scratch(), *big_qid, *small_qid, *open_qid, *path;
	Queue *q = queue_open(dir, NULL);
	GBytes *big = body_bytes(QUEUE_SPILL_AT + 1000, 'B');
	guint finished = 99;
	GError *e = NULL;
	QueueOutcome o[5];

	CU_ASSERT_PTR_NOT_NULL_FATAL(q);
	big_qid = commit_n(q, 1700000000, 2, big);
	small_qid = commit_n(q, 1700000001, 1, NULL);
	open_qid = commit_n(q, 1700000002, 2, NULL);
	path = g_build_filename(dir, "queue", big_qid, NULL);
	CU_ASSERT_TRUE_FATAL(g_file_test(path, G_FILE_TEST_EXISTS));
	set_state(q, big_qid, 0, QUEUE_ST_BUNDLED);
	set_state(q, big_qid, 1, QUEUE_ST_SMTP_PENDING);
	set_state(q, small_qid, 0, QUEUE_ST_SMTP_PENDING);
	set_state(q, open_qid, 0, QUEUE_ST_SMTP_PENDING);
	set_state(q, open_qid, 1, QUEUE_ST_SMTP_PENDING);

	o[0] = (QueueOutcome){ big_qid, 1, QUEUE_ST_SENT, "to relay", "250 ok", 0 };
	o[1] = (QueueOutcome){ small_qid, 0, QUEUE_ST_SENT, "to relay", "250 ok", 0 };
	o[2] = (QueueOutcome){ open_qid, 0, QUEUE_ST_SENT, "to relay", "250 ok", 0 };
	o[3] = (QueueOutcome){ open_qid, 1, QUEUE_ST_HELD, "delivery failed: 550", "550 no", 0 };
	EXPECT(queue_smtp_outcomes(q, o, 4, &finished, &e), "outcomes recorded: %s",
	    e ? e->message : "");
	g_clear_error(&e);
	EXPECT(finished == 2, "two messages finished (got %u)", finished);
	EXPECT(queue_get(q, big_qid, &e) == NULL && e && e->code == QUEUE_ERROR_NOT_FOUND,
	    "the large one is gone");
	g_clear_error(&e);
	EXPECT(!g_file_test(path, G_FILE_TEST_EXISTS), "its body file is gone");
	EXPECT(queue_get(q, small_qid, &e) == NULL && e && e->code == QUEUE_ERROR_NOT_FOUND,
	    "the small one is gone");
	g_clear_error(&e);
	{
		QueueEnvelope *env = queue_get(q, open_qid, NULL);

		EXPECT(env != NULL, "the one with a held row stays");
		queue_envelope_free(env);
	}
	/* The deferred one finishes when its last row is sent. */
	o[4] = (QueueOutcome){ open_qid, 1, QUEUE_ST_DEFERRED, "451", "451 later", 1 };
	queue_release(q, open_qid, NULL);
	CU_ASSERT_TRUE(queue_smtp_outcomes(q, &o[4], 1, &finished, NULL));
	EXPECT(finished == 0, "deferred: not finished");
	o[4] = (QueueOutcome){ open_qid, 1, QUEUE_ST_SENT, "to relay", "250 ok", 0 };
	CU_ASSERT_TRUE(queue_smtp_outcomes(q, &o[4], 1, &finished, NULL));
	EXPECT(finished == 1, "then sent: finished (got %u)", finished);
	EXPECT(queue_get(q, open_qid, NULL) == NULL, "and gone");
	queue_close(q);
	g_bytes_unref(big);
	g_free(path);
	g_free(big_qid);
	g_free(small_qid);
	g_free(open_qid);
	rm_rf(dir);
	g_free(dir);
}

/* What is remembered of a destination: round trip, replace, list,
 * across a reopening. */
static void
test_dest_memory(void)
{
	char *dir = scratch();
	Queue *q = queue_open(dir, NULL);
	QueueDest d = { 0 }, got = { 0 };
	GPtrArray *l;

	CU_ASSERT_PTR_NOT_NULL_FATAL(q);
	got.failures = 7;
	EXPECT(queue_dest_get(q, "mx y.test", &got, NULL), "an unknown destination: no error");
	EXPECT(got.single_until == 0 && got.retry_at == 0 && got.failures == 0 &&
	    got.last_reply == NULL, "an unknown destination: all zero");
	d.single_until = 1800000000;
	d.retry_at = 1700003600;
	d.failures = 3;
	d.last_reply = "connect to mx.y.test[192.0.2.1]:25: Connection refused";
	CU_ASSERT_TRUE(queue_dest_set(q, "mx y.test", &d, NULL));
	d.single_until = 0;
	d.retry_at = 0;
	d.failures = 0;
	d.last_reply = NULL;
	CU_ASSERT_TRUE(queue_dest_set(q, "relay [192.0.2.9]:587", &d, NULL));
	queue_close(q);
	q = queue_open(dir, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(q);
	CU_ASSERT_TRUE(queue_dest_get(q, "mx y.test", &got, NULL));
	EXPECT(got.single_until == 1800000000 && got.retry_at == 1700003600 && got.failures == 3,
	    "the numbers come back (%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT ", %u)",
	    got.single_until, got.retry_at, got.failures);
	EXPECT(g_strcmp0(got.last_reply, "connect to mx.y.test[192.0.2.1]:25: Connection "
	    "refused") == 0, "the last reply comes back: %s", got.last_reply ? got.last_reply : "");
	queue_dest_clear(&got);
	EXPECT(got.last_reply == NULL, "queue_dest_clear frees and clears it");
	queue_dest_clear(&got);

	/* Replaced, not added to. */
	d.failures = 4;
	d.last_reply = NULL;
	CU_ASSERT_TRUE(queue_dest_set(q, "mx y.test", &d, NULL));
	CU_ASSERT_TRUE(queue_dest_get(q, "mx y.test", &got, NULL));
	EXPECT(got.failures == 4 && got.single_until == 0 && got.last_reply == NULL,
	    "replaced whole");
	queue_dest_clear(&got);

	l = queue_dest_list(q, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(l);
	EXPECT(l->len == 2, "two destinations listed (got %u)", l->len);
	if (l->len == 2) {
		EXPECT(strcmp(l->pdata[0], "mx y.test\t0\t0\t4\t") == 0, "line 1: %s",
		    (char *)l->pdata[0]);
		EXPECT(strcmp(l->pdata[1], "relay [192.0.2.9]:587\t0\t0\t0\t") == 0, "line 2: %s",
		    (char *)l->pdata[1]);
	}
	g_ptr_array_unref(l);
	queue_close(q);
	rm_rf(dir);
	g_free(dir);
}

/* A queue.db of schema 2 (before the SMTP client) becomes schema 5: the
 * destinations table (3) and po_ingest (4) appear, the state column gets
 * its CHECK (5), every message and row is kept; a row of a state no
 * postgate wrote is held, saying so. */
static void
test_schema_2_to_5(void)
{
	char *dir = scratch(), *path, *qid;
	Queue *q = queue_open(dir, NULL);
	QueueEnvelope *keep;
	QueueRcpt *r;
	QueueDest d = { 0, 1700000000, 1, NULL }, got = { 0 };
	sqlite3 *db;
	sqlite3_stmt *st;
	int version = 0, tables = -1;

	CU_ASSERT_PTR_NOT_NULL_FATAL(q);
	qid = commit_n(q, 1700000000, 2, NULL);
	set_state(q, qid, 0, QUEUE_ST_SMTP_PENDING);
	queue_close(q);
	/* Back to schema 2: what 2 -> 3, 3 -> 4, 4 -> 5, 5 -> 6, 7 -> 8 and 8 -> 9
	 * added goes. */
	path = g_build_filename(dir, "queue.db", NULL);
	CU_ASSERT_EQUAL_FATAL(sqlite3_open(path, &db), SQLITE_OK);
	CU_ASSERT_EQUAL(sqlite3_exec(db, "DROP TABLE destinations; DROP TABLE po_ingest; "
	    "DROP TABLE sent; DROP TABLE sent_rcpts; "
	    "ALTER TABLE messages DROP COLUMN class; ALTER TABLE messages DROP COLUMN about; "
	    "ALTER TABLE messages DROP COLUMN report_to; "
	    "ALTER TABLE messages DROP COLUMN requests; "
	    "ALTER TABLE messages DROP COLUMN warned; "
	    "ALTER TABLE recipients DROP COLUMN report; "
	    "CREATE TABLE r4 AS SELECT * FROM recipients; DROP TABLE recipients; "
	    "ALTER TABLE r4 RENAME TO recipients; "
	    "UPDATE recipients SET state = 'bogus' WHERE idx = 1; "
	    "UPDATE schema_version SET version = 2", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	q = queue_open(dir, NULL);
	EXPECT(q != NULL, "a schema 2 queue opens");
	CU_ASSERT_PTR_NOT_NULL_FATAL(q);
	EXPECT(queue_dest_set(q, "mx y.test", &d, NULL), "the destinations table is there");
	EXPECT(queue_dest_get(q, "mx y.test", &got, NULL) && got.retry_at == 1700000000,
	    "and works");
	queue_dest_clear(&got);
	r = row_of(q, qid, 0, &keep);
	EXPECT(r && r->state == QUEUE_ST_SMTP_PENDING && g_strcmp0(r->via, "smtp") == 0,
	    "the message and its row are kept");
	queue_envelope_free(keep);
	r = row_of(q, qid, 1, &keep);
	EXPECT(r && r->state == QUEUE_ST_HELD &&
	    g_strcmp0(r->reason, "unknown state 'bogus' in queue.db") == 0,
	    "a row of an unknown state is held, saying so (%s: %s)",
	    r ? queue_state_name(r->state) : "-", r && r->reason ? r->reason : "NULL");
	queue_envelope_free(keep);
	queue_close(q);

	CU_ASSERT_EQUAL_FATAL(sqlite3_open(path, &db), SQLITE_OK);
	if (sqlite3_prepare_v2(db, "SELECT version FROM schema_version", -1, &st, NULL) ==
	    SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM schema_version", -1, &st, NULL) ==
	    SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		tables = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	EXPECT(sqlite3_exec(db, "UPDATE recipients SET state = 'nonsense'", NULL, NULL, NULL) ==
	    SQLITE_CONSTRAINT, "since schema 5 SQLite refuses a state that is none (7 too)");
	sqlite3_close(db);
	EXPECT(version == 9, "schema version 9 (got %d)", version);
	EXPECT(tables == 1, "one schema_version row (got %d)", tables);
	g_free(path);
	g_free(qid);
	rm_rf(dir);
	g_free(dir);
}

/* rep made a legacy report about qid to CORP/HQ/JSMITH, routed there. */
static void
report_fixture(QueueEnvelope *rep, const char *qid)
{
	QueueRcpt *r;

	rep->format = g_strdup("legacy");
	rep->report_class = 1;
	rep->about = g_strdup(qid);
	g_free(rep->sender);
	rep->sender = g_strdup("");
	queue_envelope_add_rcpt(rep, "CORP/HQ/JSMITH", 0, NULL);
	r = rep->rcpts->pdata[0];
	r->po = g_strdup("CORP/HQ");
	r->legacy = g_strdup("CORP/HQ/JSMITH");
	queue_rcpt_enter(r, QUEUE_ST_ROUTED, NULL);
}

/* One message for test_delayed: sender, a row with notify in state, a
 * legacy message's copy when report_to is given. */
static char *
delayed_fixture(Queue *q, const char *sender, gint64 arrival, guint notify, QueueState state,
    const char *report_to, guint requests)
{
	QueueEnvelope *env = envelope(sender, "r0@y.test");
	char *qid = g_strdup(env->qid);
	GBytes *b = body_bytes(100, 'd');

	env->arrival = arrival;
	((QueueRcpt *)env->rcpts->pdata[0])->notify = notify;
	if (report_to) {
		env->origin = g_strdup("CORP/HQ#1");
		env->report_to = g_strdup(report_to);
		env->requests = requests;
	}
	CU_ASSERT_TRUE_FATAL(queue_commit(q, env, body_of(q, qid, b), NULL));
	queue_envelope_free(env);
	g_bytes_unref(b);
	set_state(q, qid, 0, state);
	return qid;
}

/* queue_delayed lists what may owe a delay notice, and a notice recorded
 * (queue_set_warned, or warned set on the message a queue_translated
 * report is about) takes the message off the list for good. */
static void
test_delayed(void)
{
	char *dir = scratch(), *listed, *rqid = queue_id_new();
	Queue *q = queue_open(dir, NULL);
	GBytes *body = body_bytes(100, 'N');
	QueueEnvelope *orig, *rep = queue_envelope_new(rqid), *got;
	GPtrArray *list;
	char *a, *c;

	CU_ASSERT_PTR_NOT_NULL_FATAL(q);
	a = delayed_fixture(q, "a@x.test", 1000, MAIL_NOTIFY_DELAY | MAIL_NOTIFY_FAILURE,
	    QUEUE_ST_ROUTED, NULL, 0);
	g_free(delayed_fixture(q, "a@x.test", 1001, MAIL_NOTIFY_FAILURE, QUEUE_ST_ROUTED,
	    NULL, 0));                                 /* did not ask DELAY */
	c = delayed_fixture(q, "a@x.test", 1002, 0, QUEUE_ST_DEFERRED, "CORP/HQ/JSMITH", 0);
	g_free(delayed_fixture(q, "a@x.test", 1003, 0, QUEUE_ST_DEFERRED, "CORP/HQ/JSMITH",
	    MSG_REQ_NO_NDR));                          /* asked for no report */
	g_free(delayed_fixture(q, "a@x.test", 1004, 0, QUEUE_ST_SENT, "CORP/HQ/JSMITH", 0));
	g_free(delayed_fixture(q, "", 1005, MAIL_NOTIFY_DELAY, QUEUE_ST_ROUTED, NULL, 0));
	g_free(delayed_fixture(q, "a@x.test", 1006, MAIL_NOTIFY_DELAY, QUEUE_ST_BUNDLED,
	    NULL, 0));                                 /* finished */
	g_free(delayed_fixture(q, "a@x.test", 5000, MAIL_NOTIFY_DELAY, QUEUE_ST_ROUTED,
	    NULL, 0));                                 /* too young */
	list = queue_delayed(q, 2000, NULL);
	listed = qids_of(list);
	EXPECT(lists(list, a, c), "the Internet message that asked DELAY and the legacy copy "
	    "waiting for SMTP, nothing else (%s)", listed);
	g_free(listed);
	g_ptr_array_unref(list);

	EXPECT(queue_set_warned(q, a, 1500, NULL), "queue_set_warned");
	orig = queue_get(q, c, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(orig);
	orig->warned = 1600;
	report_fixture(rep, c);
	EXPECT(queue_translated(q, orig, rep, body, NULL), "a notice queued with queue_translated");
	list = queue_delayed(q, 2000, NULL);
	EXPECT(list && list->len == 0, "then neither is listed again (%u)", list ? list->len : 99);
	g_ptr_array_unref(list);
	got = queue_get(q, a, NULL);
	EXPECT(got && got->warned == 1500, "warned is kept (%" G_GINT64_FORMAT ")",
	    got ? got->warned : -1);
	queue_envelope_free(got);
	got = queue_get(q, c, NULL);
	EXPECT(got && got->warned == 1600 && ((QueueRcpt *)got->rcpts->pdata[0])->state ==
	    QUEUE_ST_DEFERRED, "in the notice's commit, the row left as it was");
	queue_envelope_free(got);
	queue_envelope_free(orig);
	queue_envelope_free(rep);
	g_bytes_unref(body);
	g_free(a);
	g_free(c);
	g_free(rqid);
	queue_close(q);
	rm_rf(dir);
	g_free(dir);
}

/* A delay notice's commit (an owner without rows) leaves what an
 * administrator did meanwhile: a hold stands, a second notice at another
 * time is refused, and a message deleted gets no notice at all. */
static void
test_notice_admin(void)
{
	char *dir = scratch(), *c, *r1 = queue_id_new(), *r2 = queue_id_new(), *r3 = queue_id_new();
	Queue *q = queue_open(dir, NULL);
	GBytes *body = body_bytes(100, 'N');
	QueueEnvelope *rep1 = queue_envelope_new(r1), *rep2 = queue_envelope_new(r2);
	QueueEnvelope *rep3 = queue_envelope_new(r3), owner = { 0 }, *got;
	GPtrArray *no_rows = g_ptr_array_new();
	GError *e = NULL;

	CU_ASSERT_PTR_NOT_NULL_FATAL(q);
	c = delayed_fixture(q, "a@x.test", 1002, 0, QUEUE_ST_DEFERRED, "CORP/HQ/JSMITH", 0);
	EXPECT(queue_hold(q, c, "the administrator's reason", NULL), "queue_hold");
	owner.qid = c;
	owner.rcpts = no_rows;
	owner.warned = 1600;
	report_fixture(rep1, c);
	EXPECT(queue_translated(q, &owner, rep1, body, NULL), "the notice is queued");
	got = queue_get(q, c, NULL);
	EXPECT(got && got->warned == 1600 && ((QueueRcpt *)got->rcpts->pdata[0])->state ==
	    QUEUE_ST_HELD, "the administrator's hold stands, warned is recorded");
	queue_envelope_free(got);
	owner.warned = 1700;
	report_fixture(rep2, c);
	EXPECT(!queue_translated(q, &owner, rep2, body, &e) &&
	    g_error_matches(e, QUEUE_ERROR, QUEUE_ERROR_NOT_FOUND), "a second notice is refused");
	g_clear_error(&e);
	got = queue_get(q, r2, NULL);
	EXPECT(got == NULL, "and nothing of it is stored");
	queue_envelope_free(got);
	EXPECT(queue_delete(q, c, NULL), "queue_delete");
	owner.warned = 0;
	report_fixture(rep3, c);
	EXPECT(!queue_translated(q, &owner, rep3, body, &e) &&
	    g_error_matches(e, QUEUE_ERROR, QUEUE_ERROR_NOT_FOUND),
	    "a report about a deleted message is refused");
	g_clear_error(&e);
	got = queue_get(q, r3, NULL);
	EXPECT(got == NULL, "and nothing of it is stored");
	queue_envelope_free(got);
	queue_envelope_free(rep1);
	queue_envelope_free(rep2);
	queue_envelope_free(rep3);
	g_ptr_array_unref(no_rows);
	g_bytes_unref(body);
	g_free(c);
	g_free(r1);
	g_free(r2);
	g_free(r3);
	queue_close(q);
	rm_rf(dir);
	g_free(dir);
}

/* A report queued with queue_translated makes its rows reported, naming
 * it; the rows become done (and their message leaves) when the report
 * leaves the queue, by queue_finish or by queue_delete. */
static void
test_report_rows(void)
{
	char *dir = scratch();
	Queue *q = queue_open(dir, NULL);
	GBytes *body = body_bytes(100, 'R');
	GError *e = NULL;
	guint finished = 99;

	CU_ASSERT_PTR_NOT_NULL_FATAL(q);
	for (int round = 0; round < 2; round++) {
		char *qid = commit_n(q, 1700000000 + round, 2, NULL), *rqid = queue_id_new();
		QueueEnvelope *orig, *rep = queue_envelope_new(rqid), *got;
		QueueRcpt *r;
		GPtrArray *failed;

		set_state(q, qid, 0, QUEUE_ST_FAILED);
		set_state(q, qid, 1, QUEUE_ST_SENT);
		failed = queue_failed(q, NULL);
		EXPECT(lists(failed, qid, NULL), "#%d: queue_failed lists the message with a failed "
		    "row", round);
		g_ptr_array_unref(failed);
		orig = queue_get(q, qid, NULL);
		CU_ASSERT_PTR_NOT_NULL_FATAL(orig);
		report_fixture(rep, qid);
		r = orig->rcpts->pdata[0];
		EXPECT(queue_rcpt_enter(r, QUEUE_ST_REPORTED, "report"), "failed -> reported");
		r->report = g_strdup(rqid);
		EXPECT(queue_translated(q, orig, rep, body, &e), "#%d: report queued: %s", round,
		    e ? e->message : "");
		g_clear_error(&e);
		failed = queue_failed(q, NULL);
		EXPECT(failed && failed->len == 0, "#%d: then nothing is failed", round);
		g_ptr_array_unref(failed);
		got = queue_get(q, qid, NULL);
		r = got ? got->rcpts->pdata[0] : NULL;
		EXPECT(r && r->state == QUEUE_ST_REPORTED && g_strcmp0(r->report, rqid) == 0,
		    "#%d: the row is reported, naming the report (%s)", round,
		    r && r->report ? r->report : "NULL");
		queue_envelope_free(got);
		got = queue_get(q, rqid, NULL);
		EXPECT(got && got->report_class == 1 && g_strcmp0(got->about, qid) == 0 &&
		    g_strcmp0(got->sender, "") == 0 && g_strcmp0(got->format, "legacy") == 0,
		    "#%d: the report is stored with its class and what it is about", round);
		queue_envelope_free(got);
		EXPECT(queue_finish(q, &finished, NULL) && finished == 0,
		    "#%d: nothing finishes while the report waits (%u)", round, finished);
		if (round == 0) {
			set_state(q, rqid, 0, QUEUE_ST_BUNDLED);
			EXPECT(queue_finish(q, &finished, &e) && finished == 2,
			    "#0: the report bundled: it and the original leave (%u finished): %s",
			    finished, e ? e->message : "");
		} else {
			EXPECT(queue_delete(q, rqid, &e), "#1: the report deleted: %s",
			    e ? e->message : "");
		}
		g_clear_error(&e);
		EXPECT(queue_get(q, qid, NULL) == NULL && queue_get(q, rqid, NULL) == NULL,
		    "#%d: the original, reported -> done, has left with its report", round);
		queue_envelope_free(orig);
		queue_envelope_free(rep);
		g_free(qid);
		g_free(rqid);
	}
	queue_close(q);
	g_bytes_unref(body);
	rm_rf(dir);
	g_free(dir);
}

/* A row the run holds (queue_set_routes) is released to the state it had:
 * failed (its report could not be made) to failed, accepted to accepted. */
static void
test_run_hold_release(void)
{
	char *dir = scratch(), *qid;
	Queue *q = queue_open(dir, NULL);
	QueueEnvelope *env, *keep;
	QueueRcpt *r;

	CU_ASSERT_PTR_NOT_NULL_FATAL(q);
	qid = commit_n(q, 1700000000, 2, NULL);
	set_state(q, qid, 0, QUEUE_ST_FAILED);
	env = queue_get(q, qid, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(env);
	for (guint i = 0; i < 2; i++)
		EXPECT(queue_rcpt_enter(env->rcpts->pdata[i], QUEUE_ST_HELD, "report could not be "
		    "made"), "row %u held", i);
	EXPECT(queue_set_routes(q, env, NULL), "the holds stored");
	queue_envelope_free(env);
	EXPECT(queue_release(q, qid, NULL), "released");
	r = row_of(q, qid, 0, &keep);
	EXPECT(r && r->state == QUEUE_ST_FAILED && !r->reason, "the failed row is failed again "
	    "(%s)", r ? queue_state_name(r->state) : "-");
	queue_envelope_free(keep);
	r = row_of(q, qid, 1, &keep);
	EXPECT(r && r->state == QUEUE_ST_ACCEPTED, "the accepted row is accepted again (%s)",
	    r ? queue_state_name(r->state) : "-");
	queue_envelope_free(keep);
	queue_close(q);
	g_free(qid);
	rm_rf(dir);
	g_free(dir);
}

/* Whether an SQL set "('a', 'b')" names state s. */
static gboolean
in_sql_set(const char *set, QueueState s)
{
	char *quoted = g_strdup_printf("'%s'", queue_state_name(s));
	gboolean in = strstr(set, quoted) != NULL;

	g_free(quoted);
	return in;
}

static void
test_states(void)
{
	QueueState got;
	QueueRcpt r = { 0 };

	for (guint i = 0; i < QUEUE_ST_COUNT; i++) {
		EXPECT(queue_state_parse(queue_state_name(i), &got) && got == i,
		    "%s round-trips", queue_state_name(i));
		EXPECT(in_sql_set(QUEUE_SQL_STATE_CHECK_V5, i), "the CHECK of schema 5 allows %s",
		    queue_state_name(i));
		EXPECT(in_sql_set(QUEUE_SQL_STATE_CHECK_V7, i), "the CHECK of schema 7 allows %s",
		    queue_state_name(i));
		EXPECT(!in_sql_set(QUEUE_SQL_FINISHED, i) == !queue_state_finished(i),
		    "%s: QUEUE_SQL_FINISHED and queue_state_finished agree", queue_state_name(i));
		EXPECT(queue_state_finished(i) ? in_sql_set(QUEUE_SQL_NOT_HOLDABLE, i) : TRUE,
		    "a finished %s cannot be held", queue_state_name(i));
		EXPECT(!queue_state_finished(i) || i == QUEUE_ST_DONE || i == QUEUE_ST_SENT ||
		    !queue_state_allowed(i, QUEUE_ST_HELD),
		    "nothing leaves finished %s but done and a held row's 250", queue_state_name(i));
	}
	EXPECT(!queue_state_parse("nonsense", &got) && !queue_state_parse(NULL, &got),
	    "no state of another name");
	EXPECT(queue_state_allowed(QUEUE_ST_ACCEPTED, QUEUE_ST_ROUTED) &&
	    queue_state_allowed(QUEUE_ST_ROUTED, QUEUE_ST_BUNDLING) &&
	    queue_state_allowed(QUEUE_ST_BUNDLING, QUEUE_ST_BUNDLED) &&
	    queue_state_allowed(QUEUE_ST_SMTP_PENDING, QUEUE_ST_DEFERRED) &&
	    queue_state_allowed(QUEUE_ST_DEFERRED, QUEUE_ST_SENT) &&
	    queue_state_allowed(QUEUE_ST_FAILED, QUEUE_ST_REPORTED) &&
	    queue_state_allowed(QUEUE_ST_REPORTED, QUEUE_ST_DONE), "DESIGN's arrows");
	EXPECT(!queue_state_allowed(QUEUE_ST_BUNDLED, QUEUE_ST_ROUTED) &&
	    !queue_state_allowed(QUEUE_ST_SENT, QUEUE_ST_SMTP_PENDING) &&
	    !queue_state_allowed(QUEUE_ST_DONE, QUEUE_ST_ACCEPTED) &&
	    !queue_state_allowed(QUEUE_ST_ACCEPTED, QUEUE_ST_BUNDLED) &&
	    !queue_state_allowed(QUEUE_ST_COUNT, QUEUE_ST_DONE), "and no others");
	r.address = (char *)"a@example.com";
	r.state = r.logged = QUEUE_ST_SENT;
	EXPECT(!queue_rcpt_enter(&r, QUEUE_ST_SMTP_PENDING, "again") && r.state == QUEUE_ST_SENT &&
	    r.reason == NULL, "a transition the model has not is refused, the row unchanged");
	r.state = QUEUE_ST_ACCEPTED;
	EXPECT(queue_rcpt_enter(&r, QUEUE_ST_HELD, "why") && r.state == QUEUE_ST_HELD &&
	    g_strcmp0(r.reason, "why") == 0, "an allowed one is made, with its reason");
	g_free(r.reason);
}

int
main(void)
{
	static const CuTest tests[] = {
		{ "queue ids", test_id },
		{ "one commit at a time: inline and file bodies", test_commit_roundtrip },
		{ "group commit: 300 messages, one callback each", test_group_commit },
		{ "group commit: a failed insert leaves nothing, the others go in",
		    test_group_commit_injected_failure },
		{ "a bundle is queued in bounded steps, exactly once", test_ingest_steps },
		{ "hold, release, delete", test_hold_release_delete },
		{ "cleanup of bodies no row names", test_cleanup },
		{ "a newer schema is refused", test_newer_schema },
		{ "a body never spills outside queue/", test_spill_failure },
		{ "SMTP: waiting messages, due and not yet due", test_smtp_waiting },
		{ "SMTP outcomes: sent, deferred, held; release", test_smtp_outcomes_states },
		{ "SMTP outcomes leave rows no longer waiting alone", test_smtp_outcomes_not_waiting },
		{ "SMTP outcomes remove finished messages and their bodies",
		    test_smtp_outcomes_finish },
		{ "destinations: round trip, replace, list", test_dest_memory },
		{ "schema 2 is migrated to 9", test_schema_2_to_5 },
		{ "delay notices: what is listed, recorded once", test_delayed },
		{ "a notice's commit leaves an administrator's hold and delete", test_notice_admin },
		{ "reports: queued with reported rows; done when the report leaves",
		  test_report_rows },
		{ "a row the run holds is released to the state it had", test_run_hold_release },
		{ "the states: names, finished, transitions, the SQL sets", test_states },
		{ NULL, NULL },
	};

	return cu_run("queue", tests);
}
