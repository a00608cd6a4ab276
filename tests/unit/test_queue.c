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
#include "queue.h"

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
	env->ret = QUEUE_RET_HDRS;
	env->body = QUEUE_BODY_8BITMIME;
	queue_envelope_add_rcpt(env, rcpt, QUEUE_NOTIFY_SUCCESS | QUEUE_NOTIFY_FAILURE,
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
	CU_ASSERT_EQUAL(got->ret, QUEUE_RET_HDRS);
	CU_ASSERT_EQUAL(got->body, QUEUE_BODY_8BITMIME);
	CU_ASSERT_STRING_EQUAL(got->message_id, "<m@x>");
	CU_ASSERT_EQUAL_FATAL(got->rcpts->len, 1);
	r = got->rcpts->pdata[0];
	CU_ASSERT_STRING_EQUAL(r->address, "bob@example.com");
	CU_ASSERT_STRING_EQUAL(r->state, "accepted");
	CU_ASSERT_EQUAL(r->notify, QUEUE_NOTIFY_SUCCESS | QUEUE_NOTIFY_FAILURE);
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
	CU_ASSERT_STRING_EQUAL(((QueueRcpt *)got->rcpts->pdata[0])->state, "held");
	CU_ASSERT_STRING_EQUAL(((QueueRcpt *)got->rcpts->pdata[0])->reason, "looks like spam");
	queue_envelope_free(got);
	EXPECT(!queue_hold(q, qid, "again", &e) && e && e->code == QUEUE_ERROR_STATE,
	    "holding a held message is a state error");
	g_clear_error(&e);
	CU_ASSERT_TRUE(queue_release(q, qid, NULL));
	got = queue_get(q, qid, NULL);
	CU_ASSERT_STRING_EQUAL(((QueueRcpt *)got->rcpts->pdata[0])->state, "accepted");
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

int
main(void)
{
	static const CuTest tests[] = {
		{ "queue ids", test_id },
		{ "one commit at a time: inline and file bodies", test_commit_roundtrip },
		{ "group commit: 300 messages, one callback each", test_group_commit },
		{ "hold, release, delete", test_hold_release_delete },
		{ "cleanup of bodies no row names", test_cleanup },
		{ "a newer schema is refused", test_newer_schema },
		{ "a body never spills outside queue/", test_spill_failure },
		{ NULL, NULL },
	};

	return cu_run("queue", tests);
}
