/* test_queue_sent.c - what the queue remembers of an Internet message that
 * went into a postoffice, once it has left (queue_sent.c). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "cu_run.h"
#include "queue/queue.h"

/* A header section, then the empty line (not part of it). */
#define HEAD "From: <a@x.test>\r\nSubject: figures\r\nMessage-ID: <m@x>\r\n\r\n"

static char *dir;

static Queue *
fresh(gint64 window)
{
	char *cmd = g_strdup_printf("rm -rf '%s'/*", dir);
	Queue *q;

	if (system(cmd) != 0)
		g_warning("cannot empty %s", dir);
	g_free(cmd);
	q = queue_open(dir, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(q);
	queue_set_sent_window(q, window);
	return q;
}

/* A message of format from sender with body text (n bytes after HEAD) and
 * three rows: 0 bundled into CORP/HQ as CORP/HQ/ALICE (NOTIFY=FAILURE,
 * ORCPT), 1 bundled there as CORP/HQ/BOB with NOTIFY=NEVER, 2 sent by SMTP
 * or (smtp_waits) still smtp-pending. */
static char *
commit(Queue *q, const char *format, const char *sender, MailRet ret, gsize n,
    gboolean smtp_waits)
{
	char *qid = queue_id_new();
	QueueEnvelope *env = queue_envelope_new(qid);
	QueueBody *b = queue_body_new(q, qid);
	GString *text = g_string_new(HEAD);
	const char *legacy[] = { "CORP/HQ/ALICE", "CORP/HQ/BOB", NULL };

	while (text->len < strlen(HEAD) + n)
		g_string_append(text, "Some text of the message.\r\n");
	g_free(env->sender);
	env->sender = g_strdup(sender);
	env->format = g_strdup(format);
	env->arrival = 1700000000;
	env->hops = 3;
	env->envid = g_strdup("QF-1");
	env->ret = ret;
	env->message_id = g_strdup("<m@x>");
	queue_envelope_add_rcpt(env, "alice@example.com", MAIL_NOTIFY_FAILURE,
	    "rfc822;Alice@Example.com");
	queue_envelope_add_rcpt(env, "bob@example.com", MAIL_NOTIFY_NEVER, NULL);
	queue_envelope_add_rcpt(env, "carol@far.test", 0, NULL);
	CU_ASSERT_TRUE_FATAL(queue_body_append(b, text->str, text->len, NULL));
	CU_ASSERT_TRUE_FATAL(queue_commit(q, env, b, NULL));
	queue_envelope_free(env);
	env = queue_get(q, qid, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(env);
	for (guint i = 0; i < 3; i++) {
		QueueRcpt *r = env->rcpts->pdata[i];

		if (legacy[i]) {
			r->state = QUEUE_ST_BUNDLED;   /* a fixture: not through the machine */
			r->po = g_strdup("CORP/HQ");
			r->legacy = g_strdup(legacy[i]);
		} else {
			r->state = smtp_waits ? QUEUE_ST_SMTP_PENDING : QUEUE_ST_SENT;
			r->via = g_strdup("smtp");
			r->rcpt_to = g_strdup(r->address);
		}
	}
	CU_ASSERT_TRUE_FATAL(queue_set_routes(q, env, NULL));
	queue_envelope_free(env);
	g_string_free(text, TRUE);
	return qid;
}

static gboolean
returned_is(const QueueSent *s, const char *want, gsize len)
{
	gsize n = 0;
	const char *got = s && s->returned ? g_bytes_get_data(s->returned, &n) : NULL;

	return got && n == len && memcmp(got, want, len) == 0;
}

/* Before it leaves, from the queue; after, from the record: the same
 * envelope, the rows that went into a postoffice (not NEVER), the header
 * section; gone when the window ends. */
static void
test_record(void)
{
	Queue *q = fresh(3600);
	char *qid = commit(q, "mime", "a@x.test", MAIL_RET_HDRS, 500, FALSE);
	gint64 now = g_get_real_time() / G_USEC_PER_SEC;
	guint finished = 0, pruned = 9;
	QueueSent *s = queue_sent_get(q, qid, NULL);
	GError *e = NULL;
	QueueRcpt *r;

	EXPECT(s && s->queued && s->env->rcpts->len == 1 && returned_is(s, HEAD, strlen(HEAD) - 2),
	    "while queued: found in the queue, one row kept, the header section");
	queue_sent_free(s);
	EXPECT(queue_finish(q, &finished, NULL) && finished == 1, "the message leaves (%u)",
	    finished);
	EXPECT(queue_get(q, qid, NULL) == NULL, "it is no longer in the queue");
	s = queue_sent_get(q, qid, &e);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	r = s->env->rcpts->len == 1 ? s->env->rcpts->pdata[0] : NULL;
	EXPECT(!s->queued && g_strcmp0(s->env->sender, "a@x.test") == 0 &&
	    g_strcmp0(s->env->envid, "QF-1") == 0 && s->env->arrival == 1700000000 &&
	    s->env->hops == 3 && s->env->ret == MAIL_RET_HDRS &&
	    g_strcmp0(s->env->message_id, "<m@x>") == 0, "the record keeps the envelope");
	EXPECT(r && r->idx == 0 && g_strcmp0(r->address, "alice@example.com") == 0 &&
	    g_strcmp0(r->legacy, "CORP/HQ/ALICE") == 0 && g_strcmp0(r->po, "CORP/HQ") == 0 &&
	    g_strcmp0(r->orcpt, "rfc822;Alice@Example.com") == 0 &&
	    r->notify == MAIL_NOTIFY_FAILURE,
	    "only the row bundled into a postoffice that did not ask NEVER (%u rows)",
	    s->env->rcpts->len);
	EXPECT(!s->full && returned_is(s, HEAD, strlen(HEAD) - 2), "the header section is kept");
	EXPECT(s->kept_until >= now + 3600 && s->kept_until <= now + 3660,
	    "kept for the window (%" G_GINT64_FORMAT " from %" G_GINT64_FORMAT ")",
	    s->kept_until, now);
	queue_sent_free(s);
	EXPECT(queue_sent_prune(q, now, &pruned, NULL) && pruned == 0,
	    "not forgotten before the window ends (%u)", pruned);
	EXPECT(queue_sent_prune(q, now + 3700, &pruned, NULL) && pruned == 1,
	    "forgotten after it (%u)", pruned);
	s = queue_sent_get(q, qid, &e);
	EXPECT(!s && g_error_matches(e, QUEUE_ERROR, QUEUE_ERROR_NOT_FOUND),
	    "then not found: %s", e ? e->message : "found");
	g_clear_error(&e);
	queue_sent_free(s);
	g_free(qid);
	queue_close(q);
}

/* RET=FULL keeps the message whole, in its row or in its own file (up to
 * QUEUE_SENT_FULL_MAX), a larger one its header section only. */
static void
test_full(void)
{
	const gsize sizes[] = { 500, QUEUE_SPILL_AT + 1000, QUEUE_SENT_FULL_MAX + 1000 };

	for (guint i = 0; i < G_N_ELEMENTS(sizes); i++) {
		Queue *q = fresh(3600);
		char *qid = commit(q, "mime", "a@x.test", MAIL_RET_FULL, sizes[i], FALSE);
		GBytes *whole = queue_body_read(q, qid, -1, NULL);
		QueueSent *s;
		gsize n;
		const char *w = g_bytes_get_data(whole, &n);
		gboolean big = sizes[i] > QUEUE_SENT_FULL_MAX;

		CU_ASSERT_TRUE(queue_finish(q, NULL, NULL));
		s = queue_sent_get(q, qid, NULL);
		EXPECT(s && s->full == !big && (big ? returned_is(s, HEAD, strlen(HEAD) - 2) :
		    returned_is(s, w, n)), "RET=FULL, %zu bytes: %s", n,
		    big ? "too large: the header section" : "the message whole");
		queue_sent_free(s);
		g_bytes_unref(whole);
		g_free(qid);
		queue_close(q);
	}
}

/* Nothing is kept with no window, for a legacy message or one from <>. */
static void
test_not_kept(void)
{
	struct { gint64 window; const char *format, *sender; } cases[] = {
		{ 0, "mime", "a@x.test" }, { 3600, "legacy", "CORP/HQ/JSMITH" }, { 3600, "mime", "" },
	};

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		Queue *q = fresh(cases[i].window);
		char *qid = commit(q, cases[i].format, cases[i].sender, MAIL_RET_HDRS, 100, FALSE);
		GError *e = NULL;
		QueueSent *s;

		CU_ASSERT_TRUE(queue_finish(q, NULL, NULL));
		s = queue_sent_get(q, qid, &e);
		EXPECT(!s && g_error_matches(e, QUEUE_ERROR, QUEUE_ERROR_NOT_FOUND),
		    "case %u (window %" G_GINT64_FORMAT ", %s, <%s>): no record", i,
		    cases[i].window, cases[i].format, cases[i].sender);
		g_clear_error(&e);
		queue_sent_free(s);
		g_free(qid);
		queue_close(q);
	}
}

/* A message that leaves when its last SMTP recipient is sent is kept too. */
static void
test_kept_by_smtp_outcome(void)
{
	Queue *q = fresh(3600);
	char *qid = commit(q, "mime", "a@x.test", MAIL_RET_HDRS, 100, TRUE);
	QueueOutcome o = { .qid = qid, .idx = 2, .state = QUEUE_ST_SENT };
	guint finished = 0;
	QueueSent *s;

	EXPECT(queue_smtp_outcomes(q, &o, 1, &finished, NULL) && finished == 1,
	    "the last SMTP recipient sent: the message leaves (%u)", finished);
	s = queue_sent_get(q, qid, NULL);
	EXPECT(s && !s->queued && s->env->rcpts->len == 1, "and is remembered");
	queue_sent_free(s);
	g_free(qid);
	queue_close(q);
}

static void
test_header_section(void)
{
	struct { const char *text; gsize want; } cases[] = {
		{ "A: 1\r\nB: 2\r\n\r\nbody", 12 },
		{ "A: 1\nB: 2\n\nbody", 10 },
		{ "A: 1\r\nB: 2\r\n", 12 },
		{ "\r\nbody", 0 },
	};

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		gsize got = queue_header_section((const guint8 *)cases[i].text,
		    strlen(cases[i].text));

		EXPECT(got == cases[i].want, "case %u: %zu, wanted %zu", i, got, cases[i].want);
	}
}

int
main(void)
{
	static const CuTest tests[] = {
		{ "a record from the queue, then after it left; pruned", test_record },
		{ "RET=FULL: the message whole, or its header section when large", test_full },
		{ "no record without a window, for legacy mail, from <>", test_not_kept },
		{ "kept when the last SMTP outcome removes the message", test_kept_by_smtp_outcome },
		{ "the header section of a message", test_header_section },
		{ NULL, NULL },
	};
	int rc;

	dir = g_dir_make_tmp("pg-test-sent-XXXXXX", NULL);
	g_assert(dir);
	rc = cu_run("queue_sent", tests);
	{
		char *cmd = g_strdup_printf("rm -rf '%s'", dir);

		if (system(cmd) != 0)
			g_warning("cannot remove %s", dir);
		g_free(cmd);
	}
	g_free(dir);
	return rc;
}
