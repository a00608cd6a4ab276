/* delivery.c - the delivery agent (see delivery.h). */
#include "config.h"

#include <signal.h>
#include <string.h>

#include <event2/event.h>
#include <gmime/gmime.h>

#include "atomic_write.h"
#include "pg_limits.h"
#include "client/delivery.h"
#include "client/mx.h"
#include "pg_log.h"
#include "client/smtp_client.h"

typedef struct Delivery Delivery;
typedef struct Dest Dest;

/* One message's recipients to one destination: one transaction. */
typedef struct {
	QueueEnvelope *env;     /* borrowed from Delivery.msgs */
	GPtrArray *rows;        /* QueueRcpt *, borrowed */
	Dest *dest;
	SmtpTx tx;
} Job;

struct Dest {
	Delivery *d;
	char *key;              /* its name in queue.db and the log */
	char *name;             /* what is looked up */
	gboolean direct;        /* no MX lookup */
	guint16 port;
	const SmtpClientConfig *ccfg;
	GQueue waiting;         /* Job * */
	guint active;           /* sessions open */
	guint want;             /* sessions to open */
	gboolean resolving;
	GPtrArray *addrs;       /* MxAddr * */
	gboolean single;        /* one message per session */
	gboolean reached;       /* a session got to a transaction in this run */
	gboolean dead;          /* open no more sessions */
	int dead_code;          /* and what its waiting jobs get once none is open */
	char *dead_why;
	char *dead_relay;       /* relay= for them: host[ip]:port, or "none" */
	gboolean queued;        /* in Delivery.starved */
	QueueDest mem;
	gboolean mem_dirty;
};

typedef struct {
	Dest *dest;
	guint txs;
} Sess;

struct Delivery {
	Site *site;
	Queue *q;
	const PgConfig *cfg;
	struct event_base *base;
	Mx *mx;
	SmtpClientConfig plain, relay;
	char *password;
	GHashTable *dests;      /* key -> Dest * */
	GPtrArray *jobs;        /* Job *, all of them */
	guint active;           /* sessions in all */
	guint busy;             /* lookups and sessions under way */
	GQueue starved;         /* Dest * waiting for a connection slot */
	GArray *outcomes;       /* QueueOutcome, not yet committed */
	GStringChunk *strings;  /* their texts */
	struct event *flush_ev;
	gboolean flush_armed;
	gint64 now;
	gint64 min_backoff, max_backoff, lifetime, memory;
	guint limit, dest_limit;
	DeliveryStats *stats;
	gboolean commit_failed; /* the last commit of outcomes failed */
};

static void launch(Dest *dst);
static void maybe_done(Delivery *d);

/* ------------------------------------------------------------ outcomes */

static void
flush(Delivery *d)
{
	GError *e = NULL;
	guint finished = 0;

	d->flush_armed = FALSE;
	if (d->outcomes->len == 0)
		return;
	if (!queue_smtp_outcomes(d->q, (QueueOutcome *)d->outcomes->data, d->outcomes->len,
	    &finished, &e)) {
		/* Kept for the next try; no new transaction starts meanwhile,
		 * so that what cannot be recorded does not grow. */
		pg_error(NULL, "delivery: cannot record %u outcome%s (kept, tried again): %s",
		    d->outcomes->len, d->outcomes->len == 1 ? "" : "s", e->message);
		g_clear_error(&e);
		d->commit_failed = TRUE;
		return;
	}
	d->commit_failed = FALSE;
	d->stats->finished += finished;
	g_array_set_size(d->outcomes, 0);
	g_string_chunk_clear(d->strings);
}

static void
on_flush(evutil_socket_t fd, short what, void *arg)
{
	flush(arg);
}

static const char *
keep(Delivery *d, const char *s)
{
	return s ? g_string_chunk_insert(d->strings, s) : NULL;
}

static gint64
backoff(Delivery *d, gint64 age)
{
	return CLAMP(age, d->min_backoff, d->max_backoff);
}

/* The verdict code for one recipient row: 2 sent, 4 deferred, 5 failed. */
static void
outcome(Delivery *d, const Job *job, const QueueRcpt *r, int code, const char *reply,
    const char *relay)
{
	QueueOutcome o = { 0 };
	const QueueEnvelope *env = job->env;
	char *reason = NULL;

	o.qid = keep(d, env->qid);
	o.idx = r->idx;
	o.last_reply = keep(d, reply);
	if (code / 100 == 2) {
		o.state = QUEUE_ST_SENT;
		reason = g_strdup_printf("to %s", relay);
		d->stats->sent++;
		pg_info(env->qid, "to=<%s>, relay=%s, status=sent (%s)", r->rcpt_to, relay, reply);
	} else if (code / 100 == 4 && d->now - env->arrival < d->lifetime) {
		gint64 wait = backoff(d, d->now - env->arrival);

		o.state = QUEUE_ST_DEFERRED;
		o.next_attempt = d->now + wait;
		reason = g_strdup(reply);
		d->stats->deferred++;
		pg_info(env->qid, "to=<%s>, relay=%s, status=deferred (%s)", r->rcpt_to, relay,
		    reply);
	} else {
		/* Failed for good: the report step makes the report it owes. */
		o.state = QUEUE_ST_FAILED;
		if (code / 100 == 4) {
			char *life = pg_duration_text(d->lifetime);

			reason = g_strdup_printf(QUEUE_EXPIRED_PREFIX "in the queue longer than "
			    "queue_lifetime (%s); last reply: %s", life, reply);
			g_free(life);
		} else {
			reason = g_strdup_printf("delivery failed: %s", reply);
		}
		d->stats->failed++;
		pg_warn(env->qid, "to=<%s>, relay=%s, status=failed (%s)", r->rcpt_to, relay,
		    reason);
	}
	o.reason = keep(d, reason);
	g_free(reason);
	g_array_append_val(d->outcomes, o);
	if (!d->flush_armed) {
		d->flush_armed = TRUE;
		event_active(d->flush_ev, EV_TIMEOUT, 0);
	}
}

/* Every recipient of job with the same verdict. */
static void
job_outcome(Delivery *d, Job *job, int code, const char *reply, const char *relay)
{
	for (guint i = 0; i < job->rows->len; i++)
		outcome(d, job, job->rows->pdata[i], code, reply, relay);
}

/* Jobs still waiting at a destination that will not be reached. */
static void
drain_waiting(Dest *dst, int code, const char *why, const char *relay)
{
	Job *job;

	while ((job = g_queue_pop_head(&dst->waiting)))
		job_outcome(dst->d, job, code, why, relay);
}

static void
dest_backoff(Dest *dst, const char *why)
{
	Delivery *d = dst->d;
	gint64 wait = d->min_backoff;

	for (guint i = 0; i < dst->mem.failures && wait < d->max_backoff; i++)
		wait *= 2;
	dst->mem.failures++;
	dst->mem.retry_at = d->now + MIN(wait, d->max_backoff);
	g_free(dst->mem.last_reply);
	dst->mem.last_reply = g_strdup(why);
	dst->mem_dirty = TRUE;
	pg_warn(NULL, "delivery: %s not reached, not tried again for %" G_GINT64_FORMAT
	    " s: %s", dst->key, MIN(wait, d->max_backoff), why);
}

/* ------------------------------------------------------------ sessions */

static GBytes *
to_7bit(gpointer data, SmtpTx *tx, char **why)
{
	GMimeStream *in, *out;
	GMimeParser *parser;
	GMimeMessage *msg;
	GByteArray *buf;
	gsize n;
	const guint8 *p = g_bytes_get_data(tx->data, &n);

	in = g_mime_stream_mem_new_with_buffer((const char *)p, n);
	parser = g_mime_parser_new_with_stream(in);
	msg = g_mime_parser_construct_message(parser, NULL);
	g_object_unref(parser);
	g_object_unref(in);
	if (!msg) {
		*why = g_strdup("the message cannot be parsed as MIME");
		return NULL;
	}
	g_mime_object_encode(GMIME_OBJECT(msg), GMIME_ENCODING_CONSTRAINT_7BIT);
	out = g_mime_stream_mem_new();
	g_mime_object_write_to_stream(GMIME_OBJECT(msg), NULL, out);
	buf = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(out));
	{
		GBytes *b = g_bytes_new(buf->data, buf->len);

		g_object_unref(out);
		g_object_unref(msg);
		return b;
	}
}

static SmtpTx *
sess_next(gpointer data, SmtpSession *s)
{
	Sess *ss = data;
	Dest *dst = ss->dest;
	Delivery *d = dst->d;
	Job *job;
	GError *e = NULL;

	if (!dst->reached) {
		dst->reached = TRUE;
		if (dst->mem.failures || dst->mem.retry_at) {
			dst->mem.failures = 0;
			dst->mem.retry_at = 0;
			dst->mem_dirty = TRUE;
		}
	}
	if ((dst->single && ss->txs > 0) || d->commit_failed)
		return NULL;
	while ((job = g_queue_pop_head(&dst->waiting))) {
		job->tx.data = queue_body_read(d->q, job->env->qid, -1, &e);
		if (job->tx.data)
			break;
		pg_error(job->env->qid, "delivery: %s", e->message);
		g_clear_error(&e);
		d->stats->errors++;
	}
	if (!job)
		return NULL;
	ss->txs++;
	return &job->tx;
}

static void
sess_tx_done(gpointer data, SmtpSession *s, SmtpTx *tx)
{
	Sess *ss = data;
	Dest *dst = ss->dest;
	Delivery *d = dst->d;
	Job *job = tx->owner;
	const char *relay = smtp_session_relay(s);

	g_bytes_unref(tx->data);
	tx->data = NULL;
	if (tx->result == SMTP_TX_AGAIN) {
		/* SPEC 3.4: back to the front, for a session of its own. */
		ss->txs--;
		g_queue_push_head(&dst->waiting, job);
		if (tx->single && !dst->single) {
			dst->single = TRUE;
			dst->mem.single_until = d->now + d->memory;
			dst->mem_dirty = TRUE;
			pg_warn(job->env->qid, "delivery: %s refused a second MAIL FROM in one "
			    "session (%s): one message per session there from now on", relay,
			    tx->again_reply);
		}
		return;
	}
	for (guint i = 0; i < tx->rcpts->len; i++) {
		SmtpRcpt *r = tx->rcpts->pdata[i];

		outcome(d, job, job->rows->pdata[i], r->code, r->reply, relay);
		g_clear_pointer(&r->reply, g_free);
		r->code = 0;
	}
}

static void
sess_end(gpointer data, SmtpSession *s, SmtpEnd how, const char *why)
{
	Sess *ss = data;
	Dest *dst = ss->dest;
	Delivery *d = dst->d;

	g_free(ss);
	dst->active--;
	d->active--;
	d->busy--;
	if ((how == SMTP_END_UNREACHABLE || how == SMTP_END_REFUSED) && !dst->dead) {
		/* No new session; those still open drain what waits. */
		if (!dst->reached && how == SMTP_END_UNREACHABLE)
			dest_backoff(dst, why);
		dst->dead = TRUE;
		dst->dead_code = how == SMTP_END_REFUSED ? 550 : 421;
		dst->dead_why = g_strdup(why);
		dst->dead_relay = g_strdup(smtp_session_relay(s));
	} else if (how == SMTP_END_LOST) {
		pg_info(NULL, "delivery: session with %s lost: %s", dst->key, why);
	}
	if (dst->dead && dst->active == 0)
		drain_waiting(dst, dst->dead_code, dst->dead_why, dst->dead_relay);
	/* Free slots: this destination first, then those that waited. */
	if (!dst->dead && dst->waiting.length)
		launch(dst);
	while (d->starved.length && d->active < d->limit) {
		Dest *o = g_queue_pop_head(&d->starved);

		o->queued = FALSE;
		launch(o);
	}
	maybe_done(d);
}

static const SmtpSessionOps sess_ops = {
	.next = sess_next,
	.tx_done = sess_tx_done,
	.to_7bit = to_7bit,
	.end = sess_end,
};

static void
launch(Dest *dst)
{
	Delivery *d = dst->d;
	guint want = dst->single ? dst->waiting.length :
	    (dst->waiting.length + DELIVERY_PER_SESSION - 1) / DELIVERY_PER_SESSION;

	want = MIN(want, d->dest_limit);
	while (!dst->dead && dst->waiting.length > 0 && dst->active < MAX(want, 1)) {
		Sess *ss;

		if (d->active >= d->limit) {
			if (!dst->queued) {
				dst->queued = TRUE;
				g_queue_push_tail(&d->starved, dst);
			}
			return;
		}
		ss = g_new0(Sess, 1);
		ss->dest = dst;
		dst->active++;
		d->active++;
		d->busy++;
		d->stats->sessions++;
		smtp_session_start(dst->ccfg, dst->addrs, &sess_ops, ss);
	}
}

/* ------------------------------------------------------------ destinations */

static void
on_resolved(gpointer data, MxStatus status, GPtrArray *addrs, const char *why)
{
	Dest *dst = data;
	Delivery *d = dst->d;

	dst->resolving = FALSE;
	d->busy--;
	if (status == MX_OK) {
		dst->addrs = addrs;
		launch(dst);
	} else if (status == MX_PERM) {
		char *reply = g_strdup_printf("550 5.1.2 %s", why);

		drain_waiting(dst, 550, reply, "none");
		g_free(reply);
	} else {
		char *reply = g_strdup_printf("451 4.4.3 %s", why);

		dest_backoff(dst, why);
		drain_waiting(dst, 451, reply, "none");
		g_free(reply);
	}
	maybe_done(d);
}

static void
maybe_done(Delivery *d)
{
	if (d->busy == 0)
		event_base_loopbreak(d->base);
}

static void
dest_free(Dest *dst)
{
	if (dst->addrs)
		g_ptr_array_unref(dst->addrs);
	g_queue_clear(&dst->waiting);
	queue_dest_clear(&dst->mem);
	g_free(dst->dead_why);
	g_free(dst->dead_relay);
	g_free(dst->key);
	g_free(dst->name);
	g_free(dst);
}

static void
job_free(Job *job)
{
	if (job->tx.rcpts)
		g_ptr_array_unref(job->tx.rcpts);
	if (job->tx.data)
		g_bytes_unref(job->tx.data);
	g_free(job->tx.again_reply);
	g_ptr_array_unref(job->rows);
	g_free(job);
}

static void
smtp_rcpt_free(SmtpRcpt *r)
{
	g_free(r->reply);
	g_free(r);
}

/* The destination of a recipient row, made on first use; NULL and *why
 * when it has none. */
static Dest *
dest_of(Delivery *d, const QueueRcpt *r, char **why)
{
	char *key, *name = NULL;
	gboolean direct = FALSE, auth = FALSE;
	guint16 port = (guint16)config_int(d->cfg, CONFIG_DELIVERY_PORT);
	const PgHostPort *relay = config_hostport(d->cfg, CONFIG_DELIVERY_RELAY_HOST);
	Dest *dst;
	GError *e = NULL;

	if (r->via && g_str_has_prefix(r->via, "site-link ")) {
		const PgConfigSiteLink *sl = config_site_link_find(d->cfg, r->via + 10);

		if (!sl || !sl->host) {
			*why = g_strdup_printf("no [%s] with a host in the configuration", r->via);
			return NULL;
		}
		key = g_strdup(r->via);
		name = g_strdup(sl->host->host);
		direct = sl->host->literal;
		port = sl->host->port;
	} else if (relay) {
		key = g_strdup_printf("relay %s%s%s:%u", relay->literal ? "[" : "", relay->host,
		    relay->literal ? "]" : "", relay->port);
		name = g_strdup(relay->host);
		direct = relay->literal;
		port = relay->port;
		auth = TRUE;
	} else {
		const char *at = r->rcpt_to ? strrchr(r->rcpt_to, '@') : NULL;

		if (!at || !at[1]) {
			*why = g_strdup_printf("no domain in <%s>", r->rcpt_to ? r->rcpt_to : "");
			return NULL;
		}
		name = g_ascii_strdown(at + 1, -1);
		if (name[0] == '[') {
			/* An address literal: [192.0.2.1] or [IPv6:...]. */
			char *lit = g_strndup(name + 1, strcspn(name + 1, "]"));

			g_free(name);
			name = g_str_has_prefix(lit, "ipv6:") ? g_strdup(lit + 5) : g_strdup(lit);
			g_free(lit);
			direct = TRUE;
		}
		key = g_strdup_printf("mx %s", name);
	}
	dst = g_hash_table_lookup(d->dests, key);
	if (dst) {
		g_free(key);
		g_free(name);
		return dst;
	}
	dst = g_new0(Dest, 1);
	dst->d = d;
	dst->key = key;
	dst->name = name;
	dst->direct = direct;
	dst->port = port;
	dst->ccfg = auth ? &d->relay : &d->plain;
	g_queue_init(&dst->waiting);
	if (!queue_dest_get(d->q, key, &dst->mem, &e)) {
		pg_warn(NULL, "delivery: %s", e->message);
		g_clear_error(&e);
	}
	dst->single = dst->mem.single_until > d->now;
	g_hash_table_insert(d->dests, key, dst);
	return dst;
}

/* The jobs of one message: its due rows grouped by destination. */
static void
plan_message(Delivery *d, QueueEnvelope *env, gboolean force)
{
	GHashTable *open = g_hash_table_new(g_direct_hash, g_direct_equal);

	for (guint i = 0; i < env->rcpts->len; i++) {
		QueueRcpt *r = env->rcpts->pdata[i];
		Dest *dst;
		Job *job;
		SmtpRcpt *sr;
		char *why = NULL;

		if (r->state != QUEUE_ST_SMTP_PENDING && r->state != QUEUE_ST_DEFERRED)
			continue;
		if (!force && r->next_attempt > d->now)
			continue;   /* counted by queue_smtp_later */
		dst = dest_of(d, r, &why);
		if (!dst) {
			Job tmp = { env, NULL, NULL, { 0 } };
			char *reply = g_strdup_printf("554 5.4.4 %s", why);

			outcome(d, &tmp, r, 554, reply, "none");
			g_free(reply);
			g_free(why);
			continue;
		}
		if (!force && dst->mem.retry_at > d->now) {
			d->stats->skipped++;
			continue;
		}
		job = g_hash_table_lookup(open, dst);
		if (!job || job->rows->len >= DELIVERY_MAX_RCPTS) {
			job = g_new0(Job, 1);
			job->env = env;
			job->rows = g_ptr_array_new();
			job->dest = dst;
			job->tx.sender = env->sender;
			job->tx.envid = env->envid;
			job->tx.ret = env->ret;
			job->tx.eightbit = env->body == MAIL_BODY_8BITMIME;
			job->tx.rcpts = g_ptr_array_new_with_free_func((GDestroyNotify)smtp_rcpt_free);
			job->tx.owner = job;
			g_hash_table_insert(open, dst, job);
			g_ptr_array_add(d->jobs, job);
			g_queue_push_tail(&dst->waiting, job);
		}
		g_ptr_array_add(job->rows, r);
		sr = g_new0(SmtpRcpt, 1);
		sr->address = r->rcpt_to ? r->rcpt_to : r->address;
		sr->notify = r->notify;
		sr->orcpt = r->orcpt;
		g_ptr_array_add(job->tx.rcpts, sr);
	}
	g_hash_table_unref(open);
}

static gboolean
setup(Delivery *d, GError **error)
{
	const PgConfig *cfg = d->cfg;
	const char *tls = config_string(cfg, CONFIG_DELIVERY_TLS);
	const char *user = config_string(cfg, CONFIG_DELIVERY_AUTH_USER);
	const char *host = config_string(cfg, CONFIG_SMTPD_HOSTNAME);
	SmtpTlsMode mode = strcmp(tls, "none") == 0 ? SMTP_TLS_NONE :
	    strcmp(tls, "may") == 0 ? SMTP_TLS_MAY : strcmp(tls, "encrypt") == 0 ?
	    SMTP_TLS_ENCRYPT : SMTP_TLS_VERIFY;

	d->plain.base = d->base;
	d->plain.helo_name = *host ? host : g_get_host_name();
	d->plain.tls = mode;
	d->plain.connect_timeout = (int)config_int(cfg, CONFIG_DELIVERY_CONNECT_TIMEOUT);
	d->plain.timeout = (int)config_int(cfg, CONFIG_DELIVERY_TIMEOUT);
	if (mode != SMTP_TLS_NONE) {
		d->plain.ssl = smtp_client_tls_new(mode, config_string(cfg,
		    CONFIG_DELIVERY_TLS_CA_FILE), error);
		if (!d->plain.ssl)
			return FALSE;
	}
	d->relay = d->plain;
	if (*user) {
		const char *pf = config_string(cfg, CONFIG_DELIVERY_AUTH_PASSWORD_FILE);
		AtomicReadInfo info;
		size_t len;
		char *text = (char *)atomic_read_file(pf, 0, DELIVERY_PASSWORD_FILE_MAX, &len,
		    &info);

		if (text == NULL) {
			g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED,
			    "[delivery] auth_password_file: %s: %s", pf,
			    info.status == ATOMIC_READ_NOT_REGULAR ? "not a regular file" :
			    info.status == ATOMIC_READ_TOO_BIG ? "too long" : g_strerror(info.err));
			return FALSE;
		}
		text[strcspn(text, "\r\n")] = '\0';
		d->password = text;
		d->relay.auth_user = user;
		d->relay.auth_password = d->password;
	}
	d->mx = mx_new(d->base, config_list(cfg, CONFIG_DELIVERY_RESOLVER), error);
	return d->mx != NULL;
}

static void
save_memory(Delivery *d)
{
	GHashTableIter it;
	gpointer v;
	GError *e = NULL;

	g_hash_table_iter_init(&it, d->dests);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		Dest *dst = v;

		if (dst->mem_dirty && !queue_dest_set(d->q, dst->key, &dst->mem, &e)) {
			pg_warn(NULL, "delivery: %s", e->message);
			g_clear_error(&e);
		}
	}
}

gboolean
delivery_run(Site *site, Queue *q, const char *only_qid, gboolean force,
    DeliveryStats *stats, GError **error)
{
	Delivery d = { 0 };
	GPtrArray *msgs;
	GHashTableIter it;
	gpointer v;
	gboolean ok = FALSE;

	memset(stats, 0, sizeof *stats);
	d.now = g_get_real_time() / G_USEC_PER_SEC;
	msgs = queue_smtp_waiting(q, only_qid, force ? 0 : d.now, error);
	if (!msgs)
		return FALSE;
	if (!force && !only_qid) {
		gint64 later = queue_smtp_later(q, d.now, NULL);

		stats->skipped = later > 0 ? (guint)later : 0;
	}
	if (msgs->len == 0) {
		g_ptr_array_unref(msgs);
		return TRUE;
	}
	g_mime_init();
	/* A server that hangs up while we write is an error of that session. */
	signal(SIGPIPE, SIG_IGN);
	d.site = site;
	d.q = q;
	d.cfg = site->cfg;
	d.stats = stats;
	d.min_backoff = config_int(d.cfg, CONFIG_DELIVERY_MIN_BACKOFF);
	d.max_backoff = config_int(d.cfg, CONFIG_DELIVERY_MAX_BACKOFF);
	d.lifetime = config_int(d.cfg, CONFIG_DELIVERY_QUEUE_LIFETIME);
	d.memory = config_int(d.cfg, CONFIG_DELIVERY_SINGLE_MESSAGE_MEMORY);
	d.limit = (guint)config_int(d.cfg, CONFIG_DELIVERY_CONNECTIONS);
	d.dest_limit = (guint)config_int(d.cfg, CONFIG_DELIVERY_DESTINATION_CONNECTIONS);
	d.base = event_base_new();
	d.dests = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify)dest_free);
	d.jobs = g_ptr_array_new_with_free_func((GDestroyNotify)job_free);
	d.outcomes = g_array_new(FALSE, TRUE, sizeof(QueueOutcome));
	d.strings = g_string_chunk_new(4096);
	g_queue_init(&d.starved);
	d.flush_ev = event_new(d.base, -1, 0, on_flush, &d);
	if (!setup(&d, error))
		goto out;
	for (guint i = 0; i < msgs->len; i++)
		plan_message(&d, msgs->pdata[i], force);
	g_hash_table_iter_init(&it, d.dests);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		Dest *dst = v;

		if (dst->waiting.length == 0)
			continue;
		dst->resolving = TRUE;
		d.busy++;
		mx_resolve(d.mx, dst->name, dst->direct, dst->port, on_resolved, dst);
	}
	if (d.busy)
		event_base_dispatch(d.base);
	flush(&d);
	for (guint i = 0; i < DELIVERY_COMMIT_TRIES && d.commit_failed; i++) {
		g_usleep(G_USEC_PER_SEC);
		flush(&d);
	}
	if (d.commit_failed) {
		/* The servers took some of these: a later run sends them again. */
		for (guint i = 0; i < d.outcomes->len; i++) {
			const QueueOutcome *o = &g_array_index(d.outcomes, QueueOutcome, i);

			pg_error(o->qid, "delivery: recipient %u is %s but the queue could not "
			    "record it: it will be tried again", o->idx, queue_state_name(o->state));
		}
		stats->errors++;
	}
	save_memory(&d);
	ok = TRUE;
out:
	if (d.mx)
		mx_free(d.mx);
	if (d.flush_ev)
		event_free(d.flush_ev);
	if (d.plain.ssl)
		SSL_CTX_free(d.plain.ssl);
	if (d.password) {
		memset(d.password, 0, strlen(d.password));
		g_free(d.password);
	}
	g_queue_clear(&d.starved);
	g_ptr_array_unref(d.jobs);
	g_hash_table_unref(d.dests);
	g_array_unref(d.outcomes);
	g_string_chunk_free(d.strings);
	event_base_free(d.base);
	g_ptr_array_unref(msgs);
	return ok;
}
