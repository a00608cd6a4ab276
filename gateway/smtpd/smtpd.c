/* smtpd.c - the SMTP listener (see smtpd.h). */
#include "config.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

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

typedef struct Server Server;

/* What the configuration says, as loaded at start or by the last SIGHUP.
 * A session keeps the one it started with; the last one frees it. */
typedef struct {
	gint refs;
	Site *site;             /* the configuration, the directory context and directory.db */
	SSL_CTX *tls;           /* NULL: no STARTTLS */
	char *hostname;
	gint64 max_size;
	guint max_rcpt, max_conn, hop_limit;
	struct timeval timeout;
	GPtrArray *relay;       /* GInetAddressMask * */
} Settings;

typedef struct {
	Server *srv;
	Settings *cf;           /* the settings the session started with */
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
} Session;

/* The TLS files as they were when last read: SIGHUP reads them again only
 * when they changed (a key only root can read is read once, at start). */
typedef struct {
	char *cert, *key;
	struct stat cert_st, key_st;
} TlsFiles;

struct Server {
	const char *config_file;
	Settings *cf;           /* what new sessions get */
	struct event_base *base;
	GArray *fds;            /* bound listening sockets */
	GPtrArray *listeners;   /* struct evconnlistener * */
	SSL_CTX *tls;           /* loaded while binding, before privileges go */
	TlsFiles tls_files;
	Queue *queue;
	QueueCommitter *committer;
	struct event *commit_ev, *term_ev, *int_ev, *hup_ev;
	GHashTable *sessions;   /* Session * */
	gboolean stopping;
	guint64 next_id;
};

static void process(Session *s);
static void session_free(Session *s);

/* ---------------------------------------------------------------- state */

static void
set_state(Session *s, State to)
{
	if (s->state != to)
		pg_debug(s->env ? s->env->qid : NULL, "session %" G_GUINT64_FORMAT ": %s -> %s",
		    s->id, state_names[s->state], state_names[to]);
	s->state = to;
}

static void
transaction_reset(Session *s)
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
reply(Session *s, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void
reply(Session *s, const char *fmt, ...)
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
pending_output(const Session *s)
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
	Session *s = data;
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
close_after_reply(Session *s)
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
reply_error(Session *s, const char *line)
{
	reply(s, "%s", line);
	if (++s->errors >= SMTPD_MAX_ERRORS) {
		pg_info(NULL, "session %" G_GUINT64_FORMAT ": too many errors from [%s]", s->id,
		    s->addr);
		reply(s, "421 4.7.0 %s Error: too many errors", s->cf->hostname);
		close_after_reply(s);
	}
}

/* ---------------------------------------------------------------- commands */

static void
do_ehlo(Session *s, const SmtpCmd *c)
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
do_mail(Session *s, const SmtpCmd *c)
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
	if (!s->esmtp && (c->size >= 0 || c->body != SMTP_BODY_NONE ||
	    c->ret != SMTP_RET_NONE || c->envid)) {
		reply_error(s, "555 5.5.4 Error: MAIL parameters need EHLO");
		return;
	}
	if (c->size > s->cf->max_size) {
		reply_error(s, "552 5.3.4 Message size exceeds fixed limit");
		return;
	}
	if (s->srv->stopping) {
		reply(s, "421 4.3.2 %s Service shutting down", s->cf->hostname);
		close_after_reply(s);
		return;
	}
	qid = queue_id_new();
	s->env = queue_envelope_new(qid);
	g_free(qid);
	g_free(s->env->sender);
	s->env->sender = g_strdup(c->null_path ? "" : c->path);
	s->env->envid = g_strdup(c->envid);
	s->env->ret = c->ret == SMTP_RET_FULL ? QUEUE_RET_FULL :
	    c->ret == SMTP_RET_HDRS ? QUEUE_RET_HDRS : QUEUE_RET_NONE;
	s->env->body = c->body == SMTP_BODY_8BITMIME ? QUEUE_BODY_8BITMIME :
	    c->body == SMTP_BODY_7BIT ? QUEUE_BODY_7BIT : QUEUE_BODY_NONE;
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

/* RCPT NOTIFY= as the queue stores it: the two enums are mapped, never
 * assumed equal. */
static guint
notify_bits(guint cmd)
{
	static const struct { guint cmd, queue; } map[] = {
		{ SMTP_NOTIFY_NEVER, QUEUE_NOTIFY_NEVER },
		{ SMTP_NOTIFY_SUCCESS, QUEUE_NOTIFY_SUCCESS },
		{ SMTP_NOTIFY_FAILURE, QUEUE_NOTIFY_FAILURE },
		{ SMTP_NOTIFY_DELAY, QUEUE_NOTIFY_DELAY },
	};
	guint bits = 0;

	for (guint i = 0; i < G_N_ELEMENTS(map); i++)
		if (cmd & map[i].cmd)
			bits |= map[i].queue;
	return bits;
}

static void
do_rcpt(Session *s, const SmtpCmd *c)
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
	queue_envelope_add_rcpt(s->env, path, notify_bits(c->notify), c->orcpt ? orcpt : NULL);
	g_free(path);
	set_state(s, ST_RCPT);
	reply(s, "250 2.1.5 Ok");
}

static void
do_data(Session *s)
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
	Session *s = data;
	Server *srv = s->srv;
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
		reply(s, "421 4.3.2 %s Service shutting down", s->cf->hostname);
		close_after_reply(s);
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
data_end(Session *s)
{
	Server *srv = s->srv;
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
	if (srv->stopping && s->state != ST_CLOSING) {
		reply(s, "421 4.3.2 %s Service shutting down", s->cf->hostname);
		close_after_reply(s);
	}
}

/* One piece of message data; FALSE when there is nothing to read. */
static gboolean
data_step(Session *s, struct evbuffer *in)
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

static void start_tls(Session *s);

static void
command(Session *s, const char *line, size_t len)
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
process(Session *s)
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
	Session *s = data;

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
	Session *s = data;

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
	Session *s = data;
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
start_tls(Session *s)
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

/* --------------------------------------------------------------- settings */

/* The settings of site (taken over) and tls (a reference of its own). */
static Settings *
settings_new(Site *site, SSL_CTX *tls)
{
	Settings *cf = g_new0(Settings, 1);
	const char *const *relay = config_list(site->cfg, CONFIG_SMTPD_RELAY_NETWORKS);

	cf->refs = 1;
	cf->site = site;
	if (tls && SSL_CTX_up_ref(tls) == 1)
		cf->tls = tls;
	cf->hostname = g_strdup(config_string(site->cfg, CONFIG_SMTPD_HOSTNAME));
	if (!*cf->hostname) {
		g_free(cf->hostname);
		cf->hostname = g_strdup(g_get_host_name());
	}
	cf->max_size = config_int(site->cfg, CONFIG_SMTPD_MAX_MESSAGE_SIZE);
	cf->max_rcpt = (guint)config_int(site->cfg, CONFIG_SMTPD_MAX_RECIPIENTS);
	cf->max_conn = (guint)config_int(site->cfg, CONFIG_SMTPD_MAX_CONNECTIONS);
	cf->hop_limit = (guint)config_int(site->cfg, CONFIG_SITE_HOP_LIMIT);
	cf->timeout.tv_sec = (time_t)config_int(site->cfg, CONFIG_SMTPD_TIMEOUT);
	cf->relay = g_ptr_array_new_with_free_func(g_object_unref);
	for (guint i = 0; relay[i]; i++) {
		GInetAddressMask *m = g_inet_address_mask_new_from_string(relay[i], NULL);

		if (m)   /* the configuration checked it */
			g_ptr_array_add(cf->relay, m);
	}
	return cf;
}

static Settings *
settings_ref(Settings *cf)
{
	cf->refs++;
	return cf;
}

static void
settings_unref(Settings *cf)
{
	if (!cf || --cf->refs > 0)
		return;
	site_close(cf->site);
	if (cf->tls)
		SSL_CTX_free(cf->tls);
	g_free(cf->hostname);
	g_ptr_array_unref(cf->relay);
	g_free(cf);
}

/* --------------------------------------------------------------- sessions */

static void
session_free(Session *s)
{
	Server *srv = s->srv;

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
	settings_unref(s->cf);
	g_hash_table_remove(srv->sessions, s);
	g_free(s);
	if (srv->stopping && g_hash_table_size(srv->sessions) == 0)
		event_base_loopexit(srv->base, NULL);
}

static gboolean
is_relay_client(const Settings *cf, const struct sockaddr *sa)
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

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
    void *data)
{
	static const char busy[] = "421 4.7.0 Error: too many connections, try again later\r\n";
	Server *srv = data;
	Session *s;

	(void)l;
	if (srv->stopping || g_hash_table_size(srv->sessions) >= srv->cf->max_conn) {
		if (send(fd, busy, sizeof busy - 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
			pg_debug(NULL, "cannot say 421 to a client: %s", g_strerror(errno));
		evutil_closesocket(fd);
		return;
	}
	s = g_new0(Session, 1);
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
	s->cf = settings_ref(srv->cf);
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

/* --------------------------------------------------------------- the server */

static void
commit_cb(evutil_socket_t fd, short what, void *data)
{
	Server *srv = data;

	(void)fd;
	(void)what;
	queue_committer_collect(srv->committer);
}

static const char *
signal_name(int sig)
{
	switch (sig) {
	case SIGTERM: return "SIGTERM";
	case SIGINT: return "SIGINT";
	case SIGHUP: return "SIGHUP";
	default: return "a signal";
	}
}

static void
stop_cb(evutil_socket_t sig, short what, void *data)
{
	Server *srv = data;
	GList *all;

	(void)what;
	if (srv->stopping)
		return;
	pg_info(NULL, "smtpd: stopping on %s; sessions in DATA may finish",
	    signal_name((int)sig));
	srv->stopping = TRUE;
	g_ptr_array_set_size(srv->listeners, 0);   /* closes the sockets */
	all = g_hash_table_get_keys(srv->sessions);
	for (GList *i = all; i; i = i->next) {
		Session *s = i->data;

		if (s->state == ST_DATA || s->state == ST_COMMIT || s->state == ST_CLOSING)
			continue;
		reply(s, "421 4.3.2 %s Service shutting down", s->cf->hostname);
		close_after_reply(s);
	}
	g_list_free(all);
	if (g_hash_table_size(srv->sessions) == 0)
		event_base_loopexit(srv->base, NULL);
}

static SSL_CTX *
tls_context(const char *cert, const char *key, GError **error)
{
	SSL_CTX *ctx;
	char buf[256];

	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx)
		goto fail;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* libevent 2.1.12 predates OpenSSL 3's strict EOF handling. */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1)
		goto fail;
	return ctx;
fail:
	ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
	ERR_clear_error();
	g_set_error(error, SITE_ERROR, SITE_ERROR_CONFIG,
	    "[smtpd] tls_cert_file %s / tls_key_file %s: %s", cert, key, buf);
	if (ctx)
		SSL_CTX_free(ctx);
	return NULL;
}

/* The same file as when it was read: same name, inode, size and times. */
static gboolean
same_file(const char *path, const char *was, const struct stat *st)
{
	struct stat now;

	return was && strcmp(path, was) == 0 && stat(path, &now) == 0 &&
	    now.st_dev == st->st_dev && now.st_ino == st->st_ino &&
	    now.st_size == st->st_size && now.st_mtim.tv_sec == st->st_mtim.tv_sec &&
	    now.st_mtim.tv_nsec == st->st_mtim.tv_nsec &&
	    now.st_ctim.tv_sec == st->st_ctim.tv_sec && now.st_ctim.tv_nsec == st->st_ctim.tv_nsec;
}

/* Read cfg's TLS certificate and key into srv->tls, unless they are the
 * files already read; none configured: no TLS.  On failure srv->tls stays. */
static gboolean
tls_load(Server *srv, const PgConfig *cfg, GError **error)
{
	const char *cert = config_string(cfg, CONFIG_SMTPD_TLS_CERT_FILE);
	const char *key = config_string(cfg, CONFIG_SMTPD_TLS_KEY_FILE);
	TlsFiles *f = &srv->tls_files;
	struct stat cst, kst;
	SSL_CTX *ctx;

	if (!*cert) {
		g_clear_pointer(&srv->tls, SSL_CTX_free);
		g_clear_pointer(&f->cert, g_free);
		g_clear_pointer(&f->key, g_free);
		return TRUE;
	}
	if (srv->tls && same_file(cert, f->cert, &f->cert_st) &&
	    same_file(key, f->key, &f->key_st))
		return TRUE;
	/* Taken before reading: a file replaced meanwhile is read again later. */
	if (stat(cert, &cst) != 0)
		memset(&cst, 0, sizeof cst);
	if (stat(key, &kst) != 0)
		memset(&kst, 0, sizeof kst);
	ctx = tls_context(cert, key, error);
	if (!ctx)
		return FALSE;
	if (srv->tls)
		SSL_CTX_free(srv->tls);
	srv->tls = ctx;
	g_free(f->cert);
	g_free(f->key);
	f->cert = g_strdup(cert);
	f->key = g_strdup(key);
	f->cert_st = cst;
	f->key_st = kst;
	return TRUE;
}

/* Log each line of a multi-line error (config errors: FILE:LINE: ...). */
static void
log_error_lines(const char *what, const char *message)
{
	char **lines = g_strsplit(message, "\n", -1);

	for (guint i = 0; lines[i]; i++)
		if (*lines[i])
			pg_error(NULL, "%s%s", what, lines[i]);
	g_strfreev(lines);
}

static gboolean
same_list(const char *const *a, const char *const *b)
{
	guint i;

	for (i = 0; a[i] && b[i]; i++)
		if (strcmp(a[i], b[i]) != 0)
			return FALSE;
	return !a[i] && !b[i];
}

/* SIGHUP: read the configuration and open the directory again, as
 * `postfix reload` does.  New sessions get the new settings, open ones keep
 * theirs; a configuration with errors is logged and the old one kept.  What
 * needs root or the open queue (listen, state_dir, user) needs a restart. */
static void
reload_cb(evutil_socket_t sig, short what, void *data)
{
	Server *srv = data;
	const PgConfig *old = srv->cf->site->cfg;
	PgConfig *cfg;
	Site *site;
	GError *e = NULL;

	(void)sig;
	(void)what;
	if (srv->stopping)
		return;
	pg_info(NULL, "smtpd: SIGHUP: reading %s again", srv->config_file);
	cfg = config_load_file(srv->config_file, &e);
	if (cfg) {
		if (strcmp(config_string(cfg, CONFIG_SITE_STATE_DIR),
		    config_string(old, CONFIG_SITE_STATE_DIR)) != 0 ||
		    strcmp(config_string(cfg, CONFIG_SITE_USER),
		    config_string(old, CONFIG_SITE_USER)) != 0)
			g_set_error(&e, SITE_ERROR, SITE_ERROR_CONFIG, "[site] state_dir or user "
			    "changed: that needs a restart");
		else if (!same_list(config_list(cfg, CONFIG_SMTPD_LISTEN),
		    config_list(old, CONFIG_SMTPD_LISTEN)))
			pg_warn(NULL, "smtpd: [smtpd] listen changed: binding needs a restart; "
			    "still listening where it was");
		config_free(cfg);
	}
	site = e ? NULL : site_open(srv->config_file, &e);
	if (!site) {
		log_error_lines("smtpd: reload: ", e->message);
		pg_error(NULL, "smtpd: reload failed: the configuration loaded before stays");
		g_error_free(e);
		return;
	}
	if (!tls_load(srv, site->cfg, &e)) {
		pg_warn(NULL, "smtpd: reload: %s; the TLS certificate loaded before stays "
		    "(a key only root can read changes with a restart)", e->message);
		g_clear_error(&e);
	}
	settings_unref(srv->cf);
	srv->cf = settings_new(site, srv->tls);
	pg_info(NULL, "smtpd: reloaded %s: new sessions use it, open ones finish with what "
	    "they started with", srv->config_file);
}

/* Bind every listen address and read the TLS files while still root
 * (SiteBind). */
static gboolean
bind_all(const PgConfig *cfg, gpointer data, GError **error)
{
	Server *srv = data;
	const char *const *addrs = config_list(cfg, CONFIG_SMTPD_LISTEN);

	for (guint i = 0; addrs[i]; i++) {
		PgHostPort hp;
		GInetAddress *ia;
		GSocketAddress *ga;
		struct sockaddr_storage ss;
		int fd, one = 1;

		if (!config_hostport_parse(addrs[i], strlen(addrs[i]), 25, TRUE, &hp, error))
			return FALSE;
		ia = g_inet_address_new_from_string(hp.host);
		ga = ia ? g_inet_socket_address_new(ia, hp.port) : NULL;
		if (ia)
			g_object_unref(ia);
		config_hostport_clear(&hp);
		if (!ga || !g_socket_address_to_native(ga, &ss, sizeof ss, NULL)) {
			if (ga)
				g_object_unref(ga);
			g_set_error(error, SITE_ERROR, SITE_ERROR_CONFIG,
			    "[smtpd] listen: cannot use %s", addrs[i]);
			return FALSE;
		}
		fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd >= 0)
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (fd >= 0 && ss.ss_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
		if (fd < 0 || bind(fd, (struct sockaddr *)&ss,
		    (socklen_t)g_socket_address_get_native_size(ga)) != 0 ||
		    listen(fd, 1024) != 0) {
			g_set_error(error, SITE_ERROR, SITE_ERROR_STATE, "cannot listen on %s: %s",
			    addrs[i], g_strerror(errno));
			if (fd >= 0)
				close(fd);
			g_object_unref(ga);
			return FALSE;
		}
		g_object_unref(ga);
		g_array_append_val(srv->fds, fd);
	}
	/* A TLS key is usually readable by root alone: read it now. */
	return tls_load(srv, cfg, error);
}

static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int
smtpd_main(const char *config_file, int argc, char **argv)
{
	gboolean use_syslog = FALSE, debug = FALSE;
	GOptionEntry entries[] = {
		{ "syslog", 0, 0, G_OPTION_ARG_NONE, &use_syslog, "Log to syslog", NULL },
		{ "debug", 0, 0, G_OPTION_ARG_NONE, &debug,
		    "Log every session's state transitions", NULL },
		G_OPTION_ENTRY_NULL,
	};
	GOptionContext *oc = g_option_context_new("");
	Server srv = { 0 };
	GError *e = NULL;
	Site *site;
	const char *state_dir;
	int rc = EX_OK;

	g_option_context_add_main_entries(oc, entries, NULL);
	if (!g_option_context_parse(oc, &argc, &argv, &e) || argc > 1) {
		pg_error(NULL, "smtpd: %s", e ? e->message : "unexpected arguments");
		g_clear_error(&e);
		g_option_context_free(oc);
		return EX_USAGE;
	}
	g_option_context_free(oc);
	if (use_syslog)
		pg_log_init("postgate/smtpd", TRUE);
	if (debug)
		pg_log_set_threshold(PG_LOG_DEBUG);
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	srv.config_file = config_file;
	srv.fds = g_array_new(FALSE, FALSE, sizeof(int));
	site = site_open_bound(config_file, bind_all, &srv, &e);
	if (!site) {
		fprintf(stderr, "%s\n", e->message);
		rc = site_exit_code(e);
		goto out;
	}
	srv.cf = settings_new(site, srv.tls);
	state_dir = config_string(site->cfg, CONFIG_SITE_STATE_DIR);
	srv.queue = queue_open(state_dir, &e);
	if (srv.queue)
		srv.committer = queue_committer_new(srv.queue, &e);
	if (!srv.committer) {
		fprintf(stderr, "%s\n", e->message);
		rc = e->domain == QUEUE_ERROR && e->code == QUEUE_ERROR_LOCKED ? EX_TEMPFAIL :
		    EX_CANTCREAT;
		goto out;
	}
	srv.sessions = g_hash_table_new(g_direct_hash, g_direct_equal);
	srv.base = event_base_new();
	srv.listeners = g_ptr_array_new_with_free_func((GDestroyNotify)evconnlistener_free);
	for (guint i = 0; i < srv.fds->len; i++) {
		struct evconnlistener *l = evconnlistener_new(srv.base, accept_cb, &srv,
		    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0,
		    g_array_index(srv.fds, int, i));
		if (!l) {
			pg_error(NULL, "smtpd: cannot watch a listening socket");
			rc = EX_OSERR;
			goto out;
		}
		g_ptr_array_add(srv.listeners, l);
	}
	g_array_set_size(srv.fds, 0);   /* the listeners own them now */
	srv.commit_ev = event_new(srv.base, queue_committer_fd(srv.committer),
	    EV_READ | EV_PERSIST, commit_cb, &srv);
	srv.term_ev = evsignal_new(srv.base, SIGTERM, stop_cb, &srv);
	srv.int_ev = evsignal_new(srv.base, SIGINT, stop_cb, &srv);
	srv.hup_ev = evsignal_new(srv.base, SIGHUP, reload_cb, &srv);
	event_add(srv.commit_ev, NULL);
	event_add(srv.term_ev, NULL);
	event_add(srv.int_ev, NULL);
	event_add(srv.hup_ev, NULL);
	{
		char *all = g_strjoinv(", ", (char **)config_list(site->cfg,
		    CONFIG_SMTPD_LISTEN));

		pg_info(NULL, "smtpd: listening on %s as %s", all, srv.cf->hostname);
		g_free(all);
	}
	event_base_dispatch(srv.base);
	pg_info(NULL, "smtpd: stopped");
out:
	if (srv.listeners)
		g_ptr_array_unref(srv.listeners);
	for (guint i = 0; srv.fds && i < srv.fds->len; i++)
		close(g_array_index(srv.fds, int, i));
	if (srv.fds)
		g_array_unref(srv.fds);
	if (srv.committer)
		queue_committer_free(srv.committer);
	if (srv.commit_ev)
		event_free(srv.commit_ev);
	if (srv.term_ev)
		event_free(srv.term_ev);
	if (srv.int_ev)
		event_free(srv.int_ev);
	if (srv.hup_ev)
		event_free(srv.hup_ev);
	if (srv.sessions)
		g_hash_table_unref(srv.sessions);
	if (srv.base)
		event_base_free(srv.base);
	queue_close(srv.queue);
	/* Without settings (site_open failed), nothing owns the site. */
	if (srv.cf)
		settings_unref(srv.cf);
	else
		site_close(site);
	if (srv.tls)
		SSL_CTX_free(srv.tls);
	g_free(srv.tls_files.cert);
	g_free(srv.tls_files.key);
	g_clear_error(&e);
	return rc;
}
