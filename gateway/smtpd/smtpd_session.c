/* smtpd_session.c - one SMTP session of the listener (see smtpd.h).
 *
 * Owns: the session state machine (State, its names, and set_state, the
 * one function that changes and logs it), the commands (RFC 5321 4.1:
 * EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT, VRFY, HELP; PIPELINING,
 * SIZE, 8BITMIME, ENHANCEDSTATUSCODES, DSN and STARTTLS, RFC 3207 4.2),
 * the message data read through smtp_data.h into a queue body and handed
 * to the group commit, the replies and their flow control, timeouts, the
 * end of a connection; a new connection accepted, and the 421 on SIGTERM.
 * Never: binding, privileges, signals or reloading (smtpd.c), the
 * recipient check itself (accept.h), postoffice directories, delivery.
 */
#include "config.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <gio/gio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "smtpd/accept.h"
#include "pg_log.h"
#include "queue/queue.h"
#include "site.h"
#include "smtpd/smtp_cmd.h"
#include "smtpd/smtp_data.h"
#include "smtpd/smtpd.h"
#include "smtpd/smtpd_int.h"

/* The states of a session, named for the log. */
typedef enum {
	ST_GREET,       /* connected, no HELO/EHLO yet */
	ST_READY,       /* greeted, no transaction */
	ST_MAIL,        /* MAIL accepted, no recipient yet */
	ST_RCPT,        /* at least one recipient accepted */
	ST_DATA,        /* reading message data */
	ST_COMMIT,      /* message handed to the queue, waiting until it is durable */
	ST_CLOSING,     /* last reply going out, then the connection closes */
} State;

static const char *const state_names[] = {
	[ST_GREET] = "greet", [ST_READY] = "ready", [ST_MAIL] = "mail", [ST_RCPT] = "rcpt",
	[ST_DATA] = "data", [ST_COMMIT] = "commit", [ST_CLOSING] = "closing",
};

struct SmtpdSession {
	SmtpdServer *srv;
	SmtpdSettings *cf;      /* the settings the session started with */
	guint64 id;
	struct bufferevent *bev;
	char addr[64];          /* the client's IP address */
	State state;
	gboolean esmtp, tls, relay_client;
	gboolean discarding;    /* the rest of an overlong command line */
	gboolean paused;        /* reading stopped until replies drain */
	gboolean dead;          /* connection gone while a commit is pending */
	gboolean eof;           /* the client closed its side: answer, then close */
	gboolean tls_closed;    /* our TLS close_notify is on its way */
	struct event *close_ev; /* close_check, once closing */
	struct event *eof_ev;   /* eof_check, after the client's end of input */
	gint64 close_deadline;  /* monotonic time after which the replies are dropped */
	char *helo;
	guint errors;
	/* the transaction */
	QueueEnvelope *env;
	SmtpData *data;
	QueueBody *body;
	GByteArray *chunk;
	GError *body_error;
	gint64 started;
};

static void process(SmtpdSession *s);
static void session_free(SmtpdSession *s);

/* ---------------------------------------------------------------- state */

static void
set_state(SmtpdSession *s, State to)
{
	if (s->state != to)
		pg_debug(s->env ? s->env->qid : NULL, "session %" G_GUINT64_FORMAT ": %s -> %s",
		    s->id, state_names[s->state], state_names[to]);
	s->state = to;
}

static void
transaction_reset(SmtpdSession *s)
{
	g_clear_pointer(&s->env, queue_envelope_free);
	g_clear_pointer(&s->data, smtp_data_free);
	g_clear_pointer(&s->body, queue_body_discard);
	if (s->chunk)
		g_byte_array_set_size(s->chunk, 0);
	g_clear_error(&s->body_error);
}

/* ---------------------------------------------------------------- replies */

static void
reply(SmtpdSession *s, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void
reply(SmtpdSession *s, const char *fmt, ...)
{
	struct evbuffer *out;
	va_list ap;

	if (s->dead || !s->bev)
		return;
	out = bufferevent_get_output(s->bev);
	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
}

/* Bytes still to go to the client: under TLS, also those the filter has
 * already encrypted into the socket's buffer. */
static size_t
pending_output(const SmtpdSession *s)
{
	struct bufferevent *under;
	size_t n;

	if (!s->bev)
		return 0;
	n = evbuffer_get_length(bufferevent_get_output(s->bev));
	under = bufferevent_get_underlying(s->bev);
	if (under)
		n += evbuffer_get_length(bufferevent_get_output(under));
	return n;
}

/* The session closes once its last replies are out, or when the client has
 * not taken them within the timeout.  Always from a timer of its own: never
 * under the feet of the code that asked for it. */
static void
close_check(evutil_socket_t fd, short what, void *data)
{
	SmtpdSession *s = data;
	struct timeval again = { 0, 20000 };

	(void)fd;
	(void)what;
	if (pending_output(s) == 0 && s->tls && !s->tls_closed && s->bev) {
		/* The last reply is out: end TLS with a close_notify (RFC 8446
		 * 6.1), which the filter writes to the socket's buffer.  Not
		 * waiting for the client's: the connection closes either way. */
		SSL *ssl = bufferevent_openssl_get_ssl(s->bev);

		s->tls_closed = TRUE;
		if (ssl && SSL_shutdown(ssl) < 0)
			ERR_clear_error();   /* the client went first: nothing to say */
	}
	if (pending_output(s) == 0 || g_get_monotonic_time() >= s->close_deadline) {
		session_free(s);
		return;
	}
	evtimer_add(s->close_ev, &again);
}

static void
close_after_reply(SmtpdSession *s)
{
	struct timeval now = { 0, 0 };

	set_state(s, ST_CLOSING);
	if (s->bev) {
		bufferevent_disable(s->bev, EV_READ);
		/* A write timeout disabled writing: the 421 gets its chance. */
		bufferevent_enable(s->bev, EV_WRITE);
	}
	if (!s->close_ev) {
		s->close_ev = evtimer_new(s->srv->base, close_check, s);
		s->close_deadline = g_get_monotonic_time() +
		    (gint64)s->cf->timeout.tv_sec * G_USEC_PER_SEC;
	}
	evtimer_add(s->close_ev, &now);
}

/* An error reply; too many of them end the session (a client that is lost
 * or probing gets nothing more). */
static void
reply_error(SmtpdSession *s, const char *line)
{
	reply(s, "%s", line);
	if (++s->errors >= SMTPD_MAX_ERRORS) {
		pg_info(NULL, "session %" G_GUINT64_FORMAT ": too many errors from [%s]", s->id,
		    s->addr);
		reply(s, "421 4.7.0 %s Error: too many errors", s->cf->hostname);
		close_after_reply(s);
	}
}

/* The server stops: 421, then the connection closes. */
static void
shutting_down(SmtpdSession *s)
{
	reply(s, "421 4.3.2 %s Service shutting down", s->cf->hostname);
	close_after_reply(s);
}

/* ---------------------------------------------------------------- commands */

static void
do_ehlo(SmtpdSession *s, const SmtpCmd *c)
{
	transaction_reset(s);
	g_free(s->helo);
	s->helo = g_strndup(c->arg, SMTPD_HELO_MAX);
	s->esmtp = c->verb == SMTP_VERB_EHLO;
	set_state(s, ST_READY);
	if (!s->esmtp) {
		reply(s, "250 %s", s->cf->hostname);
		return;
	}
	reply(s, "250-%s", s->cf->hostname);
	reply(s, "250-PIPELINING");
	reply(s, "250-SIZE %" G_GINT64_FORMAT, s->cf->max_size);
	if (s->cf->tls && !s->tls)
		reply(s, "250-STARTTLS");
	reply(s, "250-ENHANCEDSTATUSCODES");
	reply(s, "250-8BITMIME");
	reply(s, "250 DSN");
}

static void
do_mail(SmtpdSession *s, const SmtpCmd *c)
{
	char *qid;

	if (s->state == ST_GREET) {
		reply_error(s, "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if (s->state == ST_MAIL || s->state == ST_RCPT) {
		reply_error(s, "503 5.5.1 Error: nested MAIL command");
		return;
	}
	if (!s->esmtp && (c->size >= 0 || c->body != MAIL_BODY_NONE ||
	    c->ret != MAIL_RET_NONE || c->envid)) {
		reply_error(s, "555 5.5.4 Error: MAIL parameters need EHLO");
		return;
	}
	if (c->size > s->cf->max_size) {
		reply_error(s, "552 5.3.4 Message size exceeds fixed limit");
		return;
	}
	if (s->srv->stopping) {
		shutting_down(s);
		return;
	}
	qid = queue_id_new();
	s->env = queue_envelope_new(qid);
	g_free(qid);
	g_free(s->env->sender);
	s->env->sender = g_strdup(c->null_path ? "" : c->path);
	s->env->envid = g_strdup(c->envid);
	s->env->ret = c->ret;
	s->env->body = c->body;
	g_free(s->env->client);
	s->env->client = g_strdup(s->addr);
	s->env->helo = g_strdup(s->helo);
	g_free(s->env->protocol);
	s->env->protocol = g_strdup(!s->esmtp ? "SMTP" : s->tls ? "ESMTPS" : "ESMTP");
	s->started = g_get_real_time() / G_USEC_PER_SEC;
	pg_debug(s->env->qid, "session %" G_GUINT64_FORMAT ": from=<%s>", s->id,
	    s->env->sender);
	set_state(s, ST_MAIL);
	reply(s, "250 2.1.0 Ok");
}

static void
do_rcpt(SmtpdSession *s, const SmtpCmd *c)
{
	char *line = NULL, *path;
	char orcpt[1100];

	if (s->state != ST_MAIL && s->state != ST_RCPT) {
		reply_error(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (!s->esmtp && (c->notify || c->orcpt)) {
		reply_error(s, "555 5.5.4 Error: RCPT parameters need EHLO");
		return;
	}
	if (s->env->rcpts->len >= s->cf->max_rcpt) {
		reply_error(s, "452 4.5.3 Error: too many recipients");
		return;
	}
	/* RFC 5321 4.5.1: <postmaster> without a domain is this site's. */
	if (g_ascii_strcasecmp(c->path, "postmaster") == 0)
		path = g_strdup_printf("postmaster@%s", s->cf->site->ctx.domains[0]);
	else
		path = g_strdup(c->path);
	if (accept_rcpt(s->cf->site, path, s->relay_client, &line) != ACCEPT_OK) {
		/* As Postfix: no queue id before a recipient made the message real. */
		pg_info(s->env->rcpts->len ? s->env->qid : "NOQUEUE", "reject: RCPT from [%s]: %s; "
		    "from=<%s> to=<%s>", s->addr, line, s->env->sender, path);
		reply_error(s, line);
		g_free(line);
		g_free(path);
		return;
	}
	g_free(line);
	for (guint i = 0; i < s->env->rcpts->len; i++)
		if (strcmp(((QueueRcpt *)s->env->rcpts->pdata[i])->address, path) == 0) {
			reply(s, "250 2.1.5 Ok");   /* the same one twice: one copy */
			g_free(path);
			return;
		}
	if (c->orcpt)
		g_snprintf(orcpt, sizeof orcpt, "%s;%s", c->orcpt_type, c->orcpt);
	queue_envelope_add_rcpt(s->env, path, c->notify, c->orcpt ? orcpt : NULL);
	g_free(path);
	set_state(s, ST_RCPT);
	reply(s, "250 2.1.5 Ok");
}

static void
do_data(SmtpdSession *s)
{
	QueueRcpt *first;
	char *received;
	gint64 now = g_get_real_time() / G_USEC_PER_SEC;

	if (s->state == ST_MAIL) {
		reply_error(s, "554 5.5.1 Error: no valid recipients");
		return;
	}
	if (s->state != ST_RCPT) {
		reply_error(s, "503 5.5.1 Error: need RCPT command");
		return;
	}
	first = s->env->rcpts->pdata[0];
	s->body = queue_body_new(s->srv->queue, s->env->qid);
	received = accept_received(s->helo, s->addr, s->cf->hostname, s->env->protocol,
	    s->env->qid, s->env->rcpts->len == 1 ? first->address : NULL, now);
	if (!queue_body_append(s->body, received, strlen(received), &s->body_error))
		pg_error(s->env->qid, "%s", s->body_error->message);
	g_free(received);
	s->data = smtp_data_new(s->cf->max_size, SMTPD_DATA_LINE_MAX);
	if (!s->chunk)
		s->chunk = g_byte_array_new();
	set_state(s, ST_DATA);
	reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void
commit_done(gpointer data, const GError *error)
{
	SmtpdSession *s = data;
	SmtpdServer *srv = s->srv;
	QueueEnvelope *env = s->env;

	s->env = NULL;   /* the committer owned it; it is freed after this call */
	if (s->dead) {
		if (!error)
			pg_info(env->qid, "queued, but the client [%s] left before the reply",
			    s->addr);
		session_free(s);
		return;
	}
	if (error) {
		pg_error(env->qid, "not queued: %s", error->message);
		reply(s, "451 4.3.0 Error: cannot queue the message, try again later");
	} else {
		char *mid = env->message_id ? g_strescape(env->message_id, NULL) : NULL;

		/* The Message-ID is the client's bytes: escaped for the log. */
		pg_info(env->qid, "queued: from=<%s>, size=%" G_GINT64_FORMAT ", nrcpt=%u, "
		    "client=[%s], message-id=%s", env->sender, env->size, env->rcpts->len,
		    s->addr, mid ? mid : "none");
		g_free(mid);
		reply(s, "250 2.0.0 Ok: queued as %s", env->qid);
	}
	set_state(s, ST_READY);
	if (srv->stopping) {
		shutting_down(s);
		return;
	}
	/* Commands pipelined behind the data are read now; after the client's
	 * end of input there is nothing more to read. */
	process(s);
	if (s->state == ST_COMMIT || s->state == ST_CLOSING)
		return;   /* a pipelined transaction is committing: its callback goes on */
	if (s->eof)
		close_after_reply(s);
	else if (!s->paused)
		bufferevent_enable(s->bev, EV_READ);
}

static void
data_end(SmtpdSession *s)
{
	SmtpdServer *srv = s->srv;
	SmtpDataVerdict v = smtp_data_verdict(s->data);
	guint hops = smtp_data_received_count(s->data) + 1;
	const char *mid = smtp_data_message_id(s->data);

	if (v != SMTP_DATA_OK) {
		pg_info(s->env->qid, "refused: data from [%s]: %s", s->addr, smtp_data_reply(s->data));
		reply_error(s, smtp_data_reply(s->data));
	} else if (s->body_error) {
		pg_error(s->env->qid, "not queued: %s", s->body_error->message);
		reply(s, "451 4.3.0 Error: cannot queue the message, try again later");
	} else if (hops > s->cf->hop_limit) {
		pg_info(s->env->qid, "refused: %u hops, the limit is %u (a mail loop?)", hops,
		    s->cf->hop_limit);
		reply_error(s, "554 5.4.6 Error: too many hops (a mail loop?)");
	} else {
		s->env->hops = hops;
		s->env->message_id = mid ? g_strdup(mid) : NULL;
		s->env->arrival = g_get_real_time() / G_USEC_PER_SEC;
		g_clear_pointer(&s->data, smtp_data_free);
		set_state(s, ST_COMMIT);
		/* Nothing more is read until the reply: the client waits for it. */
		bufferevent_disable(s->bev, EV_READ);
		queue_committer_submit(srv->committer, s->env, s->body, commit_done, s);
		s->body = NULL;
		/* s->env stays set for the log until commit_done */
		return;
	}
	transaction_reset(s);
	if (s->state != ST_CLOSING)
		set_state(s, ST_READY);
	if (srv->stopping && s->state != ST_CLOSING)
		shutting_down(s);
}

/* One piece of message data; FALSE when there is nothing to read. */
static gboolean
data_step(SmtpdSession *s, struct evbuffer *in)
{
	struct evbuffer_iovec v;
	gboolean end = FALSE;
	gsize used;

	if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
		return FALSE;
	used = smtp_data_feed(s->data, v.iov_base, v.iov_len, s->chunk, &end);
	evbuffer_drain(in, used);
	if (s->chunk->len >= QUEUE_SPILL_AT / 2 || end) {
		if (smtp_data_verdict(s->data) == SMTP_DATA_OK && !s->body_error &&
		    !queue_body_append(s->body, s->chunk->data, s->chunk->len, &s->body_error))
			pg_error(s->env->qid, "%s", s->body_error->message);
		g_byte_array_set_size(s->chunk, 0);
	}
	if (end)
		data_end(s);
	return TRUE;
}

static void start_tls(SmtpdSession *s);

static void
command(SmtpdSession *s, const char *line, size_t len)
{
	SmtpCmd c;

	if (!smtp_cmd_parse(line, len, &c)) {
		reply_error(s, c.reply);
		smtp_cmd_clear(&c);
		return;
	}
	switch (c.verb) {
	case SMTP_VERB_HELO:
	case SMTP_VERB_EHLO:
		do_ehlo(s, &c);
		break;
	case SMTP_VERB_MAIL:
		do_mail(s, &c);
		break;
	case SMTP_VERB_RCPT:
		do_rcpt(s, &c);
		break;
	case SMTP_VERB_DATA:
		do_data(s);
		break;
	case SMTP_VERB_RSET:
		transaction_reset(s);
		set_state(s, s->helo ? ST_READY : ST_GREET);
		reply(s, "250 2.0.0 Ok");
		break;
	case SMTP_VERB_NOOP:
		reply(s, "250 2.0.0 Ok");
		break;
	case SMTP_VERB_QUIT:
		reply(s, "221 2.0.0 Bye");
		close_after_reply(s);
		break;
	case SMTP_VERB_VRFY:
		reply(s, "252 2.0.0 Cannot VRFY a user, but will take mail for it");
		break;
	case SMTP_VERB_EXPN:
		reply_error(s, "502 5.5.1 Error: EXPN is not offered");
		break;
	case SMTP_VERB_HELP:
		reply(s, "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP%s",
		    s->cf->tls && !s->tls ? " STARTTLS" : "");
		break;
	case SMTP_VERB_STARTTLS:
		if (!s->cf->tls)
			reply_error(s, "502 5.5.1 Error: STARTTLS is not offered");
		else if (s->tls)
			reply_error(s, "503 5.5.1 Error: TLS is already active");
		else if (s->state == ST_MAIL || s->state == ST_RCPT)
			reply_error(s, "503 5.5.1 Error: MAIL transaction in progress");
		else
			start_tls(s);
		break;
	case SMTP_VERB_AUTH:
		reply_error(s, "503 5.5.1 Error: authentication is not offered");
		break;
	case SMTP_VERB_BDAT:
		reply_error(s, "502 5.5.1 Error: CHUNKING is not offered");
		break;
	case SMTP_VERB_UNKNOWN:
	default:
		reply_error(s, "500 5.5.1 Error: command not recognized");
		break;
	}
	smtp_cmd_clear(&c);
}

/* ------------------------------------------------------------------ input */

static void
process(SmtpdSession *s)
{
	struct evbuffer *in, *out;
	char line[SMTPD_LINE_MAX + 1];

	while (!s->dead && s->bev && s->state != ST_COMMIT && s->state != ST_CLOSING) {
		struct evbuffer_ptr eol;
		size_t eol_len = 0, len;
		struct bufferevent *bev = s->bev;

		in = bufferevent_get_input(bev);
		out = bufferevent_get_output(bev);
		if (evbuffer_get_length(out) > SMTPD_OUTPUT_MAX) {
			/* A client that does not read its replies: stop reading too. */
			s->paused = TRUE;
			bufferevent_disable(bev, EV_READ);
			return;
		}
		if (s->state == ST_DATA) {
			if (!data_step(s, in))
				break;
			continue;
		}
		eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
		if (eol.pos < 0) {
			len = evbuffer_get_length(in);
			if (len > SMTPD_LINE_MAX) {
				evbuffer_drain(in, len);
				if (!s->discarding)
					reply_error(s, "500 5.5.2 Error: line too long");
				s->discarding = TRUE;
			}
			break;
		}
		len = (size_t)eol.pos;
		if (s->discarding || len > SMTPD_LINE_MAX) {
			evbuffer_drain(in, len + eol_len);
			if (!s->discarding)
				reply_error(s, "500 5.5.2 Error: line too long");
			s->discarding = FALSE;
			continue;
		}
		evbuffer_remove(in, line, len);
		evbuffer_drain(in, eol_len);
		if (len > 0 && line[len - 1] == '\r')
			len--;
		line[len] = '\0';
		command(s, line, len);
		if (bev != s->bev)
			return;   /* STARTTLS: the plaintext behind it is gone */
	}
}

static void
read_cb(struct bufferevent *bev, void *data)
{
	(void)bev;
	process(data);
}

static void
write_cb(struct bufferevent *bev, void *data)
{
	SmtpdSession *s = data;

	if (evbuffer_get_length(bufferevent_get_output(bev)) > 0)
		return;
	if (s->state == ST_CLOSING) {
		close_check(-1, 0, s);
		return;
	}
	if (s->paused) {
		s->paused = FALSE;
		bufferevent_enable(bev, EV_READ);
		process(s);
	}
}

/* After the client's end of input: answer what came before it, then close
 * (commit_done does when a commit is under way).  From a timer: under TLS the
 * filter reports the end before it hands over the records that came with
 * it (a close_notify behind pipelined commands). */
static void
eof_check(evutil_socket_t fd, short what, void *data)
{
	SmtpdSession *s = data;

	(void)fd;
	(void)what;
	if (s->state == ST_COMMIT || s->state == ST_CLOSING)
		return;
	process(s);
	if (s->state == ST_COMMIT || s->state == ST_CLOSING)
		return;
	if (s->state == ST_DATA) {
		pg_info(s->env ? s->env->qid : NULL, "session %" G_GUINT64_FORMAT ": lost "
		    "connection in state %s from [%s]", s->id, state_names[s->state], s->addr);
		session_free(s);
		return;
	}
	close_after_reply(s);
}

static void
event_cb(struct bufferevent *bev, short what, void *data)
{
	SmtpdSession *s = data;
	unsigned long err;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED)
		return;
	if (what & BEV_EVENT_TIMEOUT) {
		if (s->state == ST_CLOSING)
			return;   /* close_check ends it at its deadline */
		pg_info(s->env ? s->env->qid : NULL, "session %" G_GUINT64_FORMAT ": timeout "
		    "in state %s from [%s]", s->id, state_names[s->state], s->addr);
		reply(s, "421 4.4.2 %s Error: timeout exceeded", s->cf->hostname);
		bufferevent_set_timeouts(s->bev, NULL, &s->cf->timeout);
		close_after_reply(s);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		err = bufferevent_get_openssl_error(s->bev);
		if (err) {
			char buf[256];

			ERR_error_string_n(err, buf, sizeof buf);
			pg_info(NULL, "session %" G_GUINT64_FORMAT ": TLS error from [%s]: %s",
			    s->id, s->addr, buf);
		}
	}
	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) && s->state != ST_CLOSING) {
		/* A half-closed connection: the client has said all it will say,
		 * but still reads.  Answer what came (and the commit under way),
		 * then close: eof_check, once what came is read. */
		struct timeval now = { 0, 0 };

		s->eof = TRUE;
		pg_debug(NULL, "session %" G_GUINT64_FORMAT ": end of input in state %s", s->id,
		    state_names[s->state]);
		bufferevent_disable(s->bev, EV_READ);
		if (s->state != ST_COMMIT) {
			if (!s->eof_ev)
				s->eof_ev = evtimer_new(s->srv->base, eof_check, s);
			evtimer_add(s->eof_ev, &now);
		}
		return;
	}
	if (s->state == ST_COMMIT) {
		/* The commit finishes; its callback frees the session. */
		pg_info(s->env ? s->env->qid : NULL, "lost connection with [%s] after DATA",
		    s->addr);
		s->dead = TRUE;
		bufferevent_free(s->bev);
		s->bev = NULL;
		return;
	}
	if (s->state != ST_CLOSING)
		pg_info(s->env ? s->env->qid : NULL, "session %" G_GUINT64_FORMAT ": lost "
		    "connection in state %s from [%s]", s->id, state_names[s->state], s->addr);
	session_free(s);
}

static void
start_tls(SmtpdSession *s)
{
	struct bufferevent *tls;
	SSL *ssl;

	reply(s, "220 2.0.0 Ready to start TLS");
	/* RFC 3207 4.2 and CVE-2011-0411: nothing sent in plaintext behind
	 * STARTTLS may count as a command under TLS. */
	evbuffer_drain(bufferevent_get_input(s->bev),
	    evbuffer_get_length(bufferevent_get_input(s->bev)));
	ssl = SSL_new(s->cf->tls);
	if (!ssl) {
		reply(s, "454 4.7.0 TLS not available due to a local problem");
		return;
	}
	tls = bufferevent_openssl_filter_new(s->srv->base, s->bev, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (!tls) {
		SSL_free(ssl);
		reply(s, "454 4.7.0 TLS not available due to a local problem");
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(tls, 1);
	s->bev = tls;
	bufferevent_setcb(tls, read_cb, write_cb, event_cb, s);
	bufferevent_setwatermark(tls, EV_READ, 0, SMTPD_INPUT_MAX);
	bufferevent_set_timeouts(tls, &s->cf->timeout, &s->cf->timeout);
	bufferevent_enable(tls, EV_READ | EV_WRITE);
	/* A new session: forget what was said in plaintext. */
	transaction_reset(s);
	g_clear_pointer(&s->helo, g_free);
	s->esmtp = FALSE;
	s->tls = TRUE;
	set_state(s, ST_GREET);
}

/* --------------------------------------------------------------- sessions */

static void
session_free(SmtpdSession *s)
{
	SmtpdServer *srv = s->srv;

	if (s->state == ST_COMMIT && !s->dead) {
		/* Never free a session the committer will call back. */
		s->dead = TRUE;
		if (s->bev) {
			bufferevent_free(s->bev);
			s->bev = NULL;
		}
		return;
	}
	pg_debug(NULL, "session %" G_GUINT64_FORMAT ": closed", s->id);
	if (s->close_ev)
		event_free(s->close_ev);
	if (s->eof_ev)
		event_free(s->eof_ev);
	if (s->bev)
		bufferevent_free(s->bev);
	transaction_reset(s);
	if (s->chunk)
		g_byte_array_unref(s->chunk);
	g_free(s->helo);
	smtpd_settings_unref(s->cf);
	g_hash_table_remove(srv->sessions, s);
	g_free(s);
	if (srv->stopping && g_hash_table_size(srv->sessions) == 0)
		event_base_loopexit(srv->base, NULL);
}

static gboolean
is_relay_client(const SmtpdSettings *cf, const struct sockaddr *sa)
{
	GSocketAddress *ga;
	GInetAddress *ia;
	gboolean yes = FALSE;

	if (cf->relay->len == 0)
		return FALSE;
	ga = g_socket_address_new_from_native((gpointer)sa,
	    sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
	if (!ga)
		return FALSE;
	ia = g_inet_socket_address_get_address(G_INET_SOCKET_ADDRESS(ga));
	for (guint i = 0; !yes && i < cf->relay->len; i++)
		yes = g_inet_address_mask_matches(cf->relay->pdata[i], ia);
	g_object_unref(ga);
	return yes;
}

void
smtpd_session_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *data)
{
	static const char busy[] = "421 4.7.0 Error: too many connections, try again later\r\n";
	SmtpdServer *srv = data;
	SmtpdSession *s;

	(void)l;
	if (srv->stopping || g_hash_table_size(srv->sessions) >= srv->cf->max_conn) {
		if (send(fd, busy, sizeof busy - 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
			pg_debug(NULL, "cannot say 421 to a client: %s", g_strerror(errno));
		evutil_closesocket(fd);
		return;
	}
	s = g_new0(SmtpdSession, 1);
	s->srv = srv;
	s->id = ++srv->next_id;
	if (getnameinfo(sa, (socklen_t)salen, s->addr, sizeof s->addr, NULL, 0,
	    NI_NUMERICHOST) != 0)
		g_strlcpy(s->addr, "unknown", sizeof s->addr);
	s->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!s->bev) {
		evutil_closesocket(fd);
		g_free(s);
		return;
	}
	s->cf = smtpd_settings_ref(srv->cf);
	s->relay_client = is_relay_client(s->cf, sa);
	g_hash_table_add(srv->sessions, s);
	bufferevent_setcb(s->bev, read_cb, write_cb, event_cb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, SMTPD_INPUT_MAX);
	bufferevent_set_timeouts(s->bev, &s->cf->timeout, &s->cf->timeout);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	pg_debug(NULL, "session %" G_GUINT64_FORMAT ": connect from [%s]%s", s->id, s->addr,
	    s->relay_client ? " (relay client)" : "");
	reply(s, "220 %s ESMTP postgate", s->cf->hostname);
}

void
smtpd_session_stop(SmtpdSession *s)
{
	if (s->state == ST_DATA || s->state == ST_COMMIT || s->state == ST_CLOSING)
		return;
	shutting_down(s);
}
