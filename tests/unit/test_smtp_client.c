/* test_smtp_client.c - unit tests of gateway/client/smtp_client*.c.
 *
 * Every case runs one session (smtp_session_start) against a scripted SMTP
 * server in this process, on 127.0.0.1 and the same event loop.  The server
 * answers each command line with the next reply of its script - a reply may
 * come in pieces with pauses between them - reads the message after a 354,
 * and records every command (with how many replies it had written when the
 * command came: what tells pipelined commands from lock-step ones) and
 * every message as it came over the wire.  A case asserts what the owner of
 * the session sees - each recipient's verdict in the transaction handed to
 * tx_done, how the session ended (end) - and what the server received.
 * RFC 5321 (replies, the transaction, dot-stuffing), RFC 2920 (PIPELINING),
 * RFC 1870 (SIZE), RFC 3461 (DSN), RFC 3207 (STARTTLS), RFC 4954 (AUTH),
 * SPEC 3.3 (multiline replies cut into segments) and 3.4 (503 to a second
 * MAIL FROM).  Every case is bounded: CASE_LIMIT_S seconds at most.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <gmime/gmime.h>

#include "cu_run.h"
#include "pg_log.h"
#include "queue/queue.h"
#include "client/smtp_client.h"

#define PAUSE_MS      200   /* one '\f' in a scripted reply */
#define CASE_LIMIT_S  12    /* no case runs longer */
#define MAX_CONNS     4     /* scripted connections in one case */

/* ------------------------------------------------------------ the server */

/* One command line the server received. */
typedef struct {
	char *text;            /* without CR LF */
	guint conn;            /* the connection it came on, from 0 */
	guint after;           /* replies written on that connection when it came */
	gboolean tls;          /* it came inside TLS */
} Cmd;

/* What the server writes next: a piece of a reply, a close or a TLS start.
 * In a script, '\f' separates pieces with a PAUSE_MS pause between them;
 * a piece "!close" closes the connection, "!tls" starts TLS (no pause). */
typedef enum { PIECE_TEXT, PIECE_CLOSE, PIECE_TLS } PieceKind;

typedef struct {
	PieceKind kind;
	char *text;
	int pause;             /* ms to wait before it */
	gboolean last;         /* the last piece of a reply */
} Piece;

typedef struct Server Server;

typedef struct {
	Server *srv;
	guint no;
	struct bufferevent *bev;
	const char *const *script;
	guint next;            /* the script's next reply */
	gboolean in_data;
	GString *data;         /* the message being received, as sent */
	GQueue out;            /* Piece * */
	struct event *timer;
	gboolean closing;      /* a close is queued: nothing more is read */
	gboolean close_now;    /* the timer frees the connection */
	gboolean tls;
	guint replies;         /* replies written */
	gsize queued;          /* reply bytes queued so far */
	gsize written;         /* reply bytes written so far */
	gsize data_ready;      /* written must reach this before the message may come */
} Conn;

struct Server {
	struct event_base *base;
	struct evconnlistener *lst;
	guint16 port;
	const char *const *scripts[MAX_CONNS];
	SSL_CTX *tls_ctx;
	GPtrArray *conns;      /* Conn *, open ones */
	guint accepted;
	GPtrArray *cmds;       /* Cmd * */
	GPtrArray *msgs;       /* GString *: each message as sent, ".\r\n" included */
	gboolean bad_eol;      /* a command line not ended by CR LF */
	gboolean data_early;   /* message bytes before the whole 354 reply was written */
	void (*idle)(gpointer data);   /* every connection is closed */
	gpointer idle_data;
};

static void pump(Conn *c);

static void
piece_free(Piece *p)
{
	g_free(p->text);
	g_free(p);
}

static void
conn_free(Conn *c)
{
	Server *srv = c->srv;

	if (c->bev)
		bufferevent_free(c->bev);
	event_free(c->timer);
	g_queue_clear_full(&c->out, (GDestroyNotify)piece_free);
	if (c->data)
		g_string_free(c->data, TRUE);
	g_ptr_array_remove(srv->conns, c);
	g_free(c);
	if (srv->conns->len == 0 && srv->idle)
		srv->idle(srv->idle_data);
}

static void
conn_written(struct bufferevent *bev, void *arg)
{
	Conn *c = arg;

	if (c->closing && g_queue_is_empty(&c->out))
		conn_free(c);
}

/* Queue the next reply of the script; none left: silence. */
static void
reply(Conn *c)
{
	const char *r = c->script ? c->script[c->next] : NULL;
	char **parts;

	if (!r)
		return;
	c->next++;
	parts = g_strsplit(r, "\f", -1);
	for (guint i = 0; parts[i]; i++) {
		Piece *p = g_new0(Piece, 1);

		p->pause = i > 0 ? PAUSE_MS : 0;
		p->last = parts[i + 1] == NULL;
		if (strcmp(parts[i], "!close") == 0) {
			/* Nothing more is read: what the client sends from now on
			 * fills the socket buffers, and the close resets it. */
			p->kind = PIECE_CLOSE;
			c->closing = TRUE;
			bufferevent_disable(c->bev, EV_READ);
		} else if (strcmp(parts[i], "!tls") == 0) {
			/* At once: the client's handshake follows the 220 at once. */
			p->kind = PIECE_TLS;
			p->pause = 0;
		} else {
			p->kind = PIECE_TEXT;
			p->text = g_strdup(parts[i]);
			c->queued += strlen(parts[i]);
		}
		g_queue_push_tail(&c->out, p);
	}
	g_strfreev(parts);
	if (g_str_has_prefix(r, "354") || g_str_has_prefix(r, "35\f4") ||
	    g_str_has_prefix(r, "3\f54")) {
		c->in_data = TRUE;
		c->data = g_string_new(NULL);
		c->data_ready = c->queued;
	}
	pump(c);
}

static void conn_read(struct bufferevent *bev, void *arg);
static void conn_event(struct bufferevent *bev, short what, void *arg);

/* Write what is due; a pause arms the timer. */
static void
pump(Conn *c)
{
	Piece *p;

	while ((p = g_queue_peek_head(&c->out))) {
		if (evtimer_pending(c->timer, NULL))
			return;
		if (p->pause > 0) {
			struct timeval tv = { 0, p->pause * 1000 };

			p->pause = 0;
			evtimer_add(c->timer, &tv);
			return;
		}
		g_queue_pop_head(&c->out);
		if (p->kind == PIECE_CLOSE) {
			piece_free(p);
			g_queue_clear_full(&c->out, (GDestroyNotify)piece_free);
			if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
				/* From the loop: a caller may still hold c. */
				struct timeval now = { 0, 0 };

				c->close_now = TRUE;
				evtimer_add(c->timer, &now);
			}
			return;
		}
		if (p->kind == PIECE_TLS) {
			SSL *ssl = SSL_new(c->srv->tls_ctx);

			c->bev = bufferevent_openssl_filter_new(c->srv->base, c->bev, ssl,
			    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
			bufferevent_setcb(c->bev, conn_read, conn_written, conn_event, c);
			bufferevent_enable(c->bev, EV_READ | EV_WRITE);
			c->tls = TRUE;
		} else {
			bufferevent_write(c->bev, p->text, strlen(p->text));
			c->written += strlen(p->text);
		}
		if (p->last)
			c->replies++;
		piece_free(p);
	}
}

static void
conn_timer(evutil_socket_t fd, short what, void *arg)
{
	Conn *c = arg;

	if (c->close_now)
		conn_free(c);
	else
		pump(c);
}

static void
conn_read(struct bufferevent *bev, void *arg)
{
	Conn *c = arg;
	Server *srv = c->srv;
	struct evbuffer *in = bufferevent_get_input(bev);
	guint at_read = c->replies;
	char *line;
	size_t n;

	while (!c->closing && (line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF))) {
		if (c->in_data) {
			if (c->data->len == 0 && c->written < c->data_ready)
				srv->data_early = TRUE;
			g_string_append_len(c->data, line, (gssize)n);
			g_string_append_c(c->data, '\n');
			if (n == 2 && memcmp(line, ".\r", 2) == 0) {
				g_ptr_array_add(srv->msgs, c->data);
				c->data = NULL;
				c->in_data = FALSE;
				reply(c);
			}
		} else {
			Cmd *cmd = g_new0(Cmd, 1);

			if (n == 0 || line[n - 1] != '\r')
				srv->bad_eol = TRUE;
			else
				line[--n] = '\0';
			cmd->text = g_strndup(line, n);
			cmd->conn = c->no;
			cmd->after = at_read;
			cmd->tls = c->tls;
			g_ptr_array_add(srv->cmds, cmd);
			reply(c);
		}
		free(line);
		if (c->bev != bev)
			return;      /* TLS began: the rest is the filter's */
	}
	if (c->closing)
		evbuffer_drain(in, evbuffer_get_length(in));
}

static void
conn_event(struct bufferevent *bev, short what, void *arg)
{
	Conn *c = arg;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		if (c->data && c->data->len > 0) {
			/* A message cut off: kept as far as it came. */
			g_ptr_array_add(c->srv->msgs, c->data);
			c->data = NULL;
		}
		conn_free(c);
	}
}

static void
on_accept(struct evconnlistener *lst, evutil_socket_t fd, struct sockaddr *sa, int len,
    void *arg)
{
	Server *srv = arg;
	Conn *c = g_new0(Conn, 1);

	c->srv = srv;
	c->no = srv->accepted++;
	c->script = c->no < MAX_CONNS ? srv->scripts[c->no] : NULL;
	c->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->timer = evtimer_new(srv->base, conn_timer, c);
	g_queue_init(&c->out);
	g_ptr_array_add(srv->conns, c);
	bufferevent_setcb(c->bev, conn_read, conn_written, conn_event, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	reply(c);                 /* the greeting */
}

static void
cmd_free(Cmd *c)
{
	g_free(c->text);
	g_free(c);
}

static void
msg_free(GString *s)
{
	g_string_free(s, TRUE);
}

static Server *
server_new(struct event_base *base)
{
	Server *srv = g_new0(Server, 1);
	struct sockaddr_in sin = { 0 };
	socklen_t len = sizeof sin;

	srv->base = base;
	srv->conns = g_ptr_array_new();
	srv->cmds = g_ptr_array_new_with_free_func((GDestroyNotify)cmd_free);
	srv->msgs = g_ptr_array_new_with_free_func((GDestroyNotify)msg_free);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	srv->lst = evconnlistener_new_bind(base, on_accept, srv, LEV_OPT_CLOSE_ON_FREE |
	    LEV_OPT_REUSEABLE, 16, (struct sockaddr *)&sin, sizeof sin);
	g_assert(srv->lst);
	g_assert(getsockname(evconnlistener_get_fd(srv->lst), (struct sockaddr *)&sin, &len) == 0);
	srv->port = ntohs(sin.sin_port);
	return srv;
}

static void
server_free(Server *srv)
{
	srv->idle = NULL;
	while (srv->conns->len)
		conn_free(srv->conns->pdata[0]);
	g_ptr_array_unref(srv->conns);
	evconnlistener_free(srv->lst);
	g_ptr_array_unref(srv->cmds);
	g_ptr_array_unref(srv->msgs);
	if (srv->tls_ctx)
		SSL_CTX_free(srv->tls_ctx);
	g_free(srv);
}

/* A self-signed certificate for CN=localhost, made here. */
static SSL_CTX *
server_tls_ctx(void)
{
	EVP_PKEY *pkey = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	g_assert(pkey && x && ctx);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, pkey);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost",
	    -1, -1, 0);
	X509_set_issuer_name(x, name);
	g_assert(X509_sign(x, pkey, EVP_sha256()) > 0);
	g_assert(SSL_CTX_use_certificate(ctx, x) == 1);
	g_assert(SSL_CTX_use_PrivateKey(ctx, pkey) == 1);
	X509_free(x);
	EVP_PKEY_free(pkey);
	return ctx;
}

/* ------------------------------------------------------------ the client side */

typedef struct {
	struct event_base *base;
	Server *srv;
	SmtpClientConfig cfg;
	GPtrArray *addrs;      /* MxAddr * */
	GQueue todo;           /* SmtpTx * that next() hands out */
	GPtrArray *handed;     /* SmtpTx * handed out */
	GPtrArray *done;       /* SmtpTx * in the order tx_done gave them back */
	guint nexts;           /* calls of next() */
	guint ends;
	SmtpEnd how;
	char *why;
	gboolean odd;          /* a callback broke the API's promises */
	GString *odd_why;
	gboolean tls_at_done;  /* smtp_session_tls() in the last tx_done */
	char *peer_at_done;
	gint64 start, end_at;  /* monotonic microseconds */
	gboolean out_of_time;
	struct event *limit;
	GBytes *seven;         /* what to_7bit gives, or NULL */
	guint sevens;          /* calls of to_7bit */
} Run;

static void
odd(Run *r, const char *what)
{
	r->odd = TRUE;
	g_string_append_printf(r->odd_why, "%s; ", what);
}

static void
maybe_stop(gpointer data)
{
	Run *r = data;

	if (r->ends > 0 && r->srv->conns->len == 0)
		event_base_loopbreak(r->base);
}

static SmtpTx *
op_next(gpointer data, SmtpSession *s)
{
	Run *r = data;
	SmtpTx *tx = g_queue_pop_head(&r->todo);

	r->nexts++;
	if (r->ends)
		odd(r, "next() after end()");
	if (tx)
		g_ptr_array_add(r->handed, tx);
	return tx;
}

static void
op_tx_done(gpointer data, SmtpSession *s, SmtpTx *tx)
{
	Run *r = data;
	guint i;

	if (!g_ptr_array_find(r->handed, tx, &i))
		odd(r, "tx_done() of a transaction never handed out");
	if (g_ptr_array_find(r->done, tx, &i))
		odd(r, "tx_done() twice for one transaction");
	if (r->ends)
		odd(r, "tx_done() after end()");
	g_ptr_array_add(r->done, tx);
	r->tls_at_done = smtp_session_tls(s);
	g_free(r->peer_at_done);
	r->peer_at_done = g_strdup(smtp_session_peer(s));
}

static GBytes *
op_to_7bit(gpointer data, SmtpTx *tx, char **why)
{
	Run *r = data;

	r->sevens++;
	if (!r->seven) {
		*why = g_strdup("no way to convert it");
		return NULL;
	}
	return g_bytes_ref(r->seven);
}

static void
op_end(gpointer data, SmtpSession *s, SmtpEnd how, const char *why)
{
	Run *r = data;

	if (r->ends++)
		odd(r, "end() twice");
	if (r->done->len != r->handed->len)
		odd(r, "end() before every transaction handed out was done");
	r->how = how;
	r->why = g_strdup(why);
	r->end_at = g_get_monotonic_time();
	maybe_stop(r);
}

static const SmtpSessionOps ops = {
	.next = op_next,
	.tx_done = op_tx_done,
	.to_7bit = op_to_7bit,
	.end = op_end,
};

static void
on_limit(evutil_socket_t fd, short what, void *arg)
{
	Run *r = arg;

	r->out_of_time = TRUE;
	event_base_loopbreak(r->base);
}

static MxAddr *
addr_local(guint16 port)
{
	MxAddr *a = g_new0(MxAddr, 1);
	struct sockaddr_in *sin = (struct sockaddr_in *)&a->sa;

	a->host = g_strdup("localhost");
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a->len = sizeof *sin;
	g_strlcpy(a->text, "127.0.0.1", sizeof a->text);
	return a;
}

/* A TCP port on 127.0.0.1 where nothing listens (it did a moment ago). */
static guint16
closed_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = { 0 };
	socklen_t len = sizeof sin;

	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	g_assert(fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0);
	g_assert(getsockname(fd, (struct sockaddr *)&sin, &len) == 0);
	close(fd);
	return ntohs(sin.sin_port);
}

static Run *
run_new(void)
{
	Run *r = g_new0(Run, 1);

	r->base = event_base_new();
	r->srv = server_new(r->base);
	r->srv->idle = maybe_stop;
	r->srv->idle_data = r;
	r->addrs = g_ptr_array_new_with_free_func((GDestroyNotify)mx_addr_free);
	r->handed = g_ptr_array_new();
	r->done = g_ptr_array_new();
	r->odd_why = g_string_new(NULL);
	g_queue_init(&r->todo);
	r->cfg.base = r->base;
	r->cfg.helo_name = "client.test";
	r->cfg.tls = SMTP_TLS_NONE;
	r->cfg.connect_timeout = 3;
	r->cfg.timeout = 5;
	return r;
}

/* The server answers its first connections with these scripts. */
static void
run_scripts(Run *r, const char *const *s0, const char *const *s1)
{
	r->srv->scripts[0] = s0;
	r->srv->scripts[1] = s1;
}

static SmtpTx *
tx_new(const char *sender, const char *body, const char *rcpt, ...)
{
	SmtpTx *tx = g_new0(SmtpTx, 1);
	va_list ap;

	tx->sender = sender;
	tx->data = g_bytes_new(body, strlen(body));
	tx->rcpts = g_ptr_array_new();
	va_start(ap, rcpt);
	for (const char *a = rcpt; a; a = va_arg(ap, const char *)) {
		SmtpRcpt *sr = g_new0(SmtpRcpt, 1);

		sr->address = a;
		g_ptr_array_add(tx->rcpts, sr);
	}
	va_end(ap);
	return tx;
}

static void
tx_free(SmtpTx *tx)
{
	for (guint i = 0; i < tx->rcpts->len; i++) {
		SmtpRcpt *sr = tx->rcpts->pdata[i];

		g_free(sr->reply);
		g_free(sr);
	}
	g_ptr_array_unref(tx->rcpts);
	if (tx->data)
		g_bytes_unref(tx->data);
	g_free(tx->again_reply);
	g_free(tx);
}

static void
run_add(Run *r, SmtpTx *tx)
{
	g_queue_push_tail(&r->todo, tx);
}

/* Start the session and run the loop until it ended and the server has no
 * connection left, or CASE_LIMIT_S passed. */
static void
run_go(Run *r)
{
	struct timeval tv = { CASE_LIMIT_S, 0 };

	r->limit = evtimer_new(r->base, on_limit, r);
	evtimer_add(r->limit, &tv);
	r->start = g_get_monotonic_time();
	smtp_session_start(&r->cfg, r->addrs, &ops, r);
	event_base_dispatch(r->base);
	expect_at(!r->out_of_time, __LINE__, "the case ended within %d s (session ended: %s, "
	    "server connections open: %u)", CASE_LIMIT_S, r->ends ? "yes" : "no",
	    r->srv->conns->len);
	expect_at(!r->odd, __LINE__, "the callbacks kept the API's promises: %s", r->odd_why->str);
}

static double
run_seconds(const Run *r)
{
	return (double)(r->end_at - r->start) / G_USEC_PER_SEC;
}

static void
run_free(Run *r)
{
	SmtpTx *tx;

	server_free(r->srv);
	event_free(r->limit);
	/* Whatever was handed out, and what never was. */
	for (guint i = 0; i < r->handed->len; i++)
		tx_free(r->handed->pdata[i]);
	while ((tx = g_queue_pop_head(&r->todo)))
		tx_free(tx);
	g_ptr_array_unref(r->handed);
	g_ptr_array_unref(r->done);
	g_ptr_array_unref(r->addrs);
	if (r->cfg.ssl)
		SSL_CTX_free(r->cfg.ssl);
	if (r->seven)
		g_bytes_unref(r->seven);
	event_base_free(r->base);
	g_string_free(r->odd_why, TRUE);
	g_free(r->why);
	g_free(r->peer_at_done);
	g_free(r);
}

/* ------------------------------------------------------------ checks */

#define BODY1 "From: a@x.test\r\nTo: b@y.test\r\nSubject: one\r\n\r\nHello.\r\n"
#define BODY2 "From: a@x.test\r\nTo: d@y.test\r\nSubject: two\r\n\r\nHello again.\r\n"

static const char *const end_names[] = {
	[SMTP_END_QUIT] = "QUIT", [SMTP_END_UNREACHABLE] = "UNREACHABLE",
	[SMTP_END_REFUSED] = "REFUSED", [SMTP_END_LOST] = "LOST",
};

/* "{S1}" and "{S2}": the sizes of BODY1 and BODY2. */
static char *
expand(const char *want)
{
	char *s1 = g_strdup_printf("%zu", strlen(BODY1)), *s2 = g_strdup_printf("%zu",
	    strlen(BODY2));
	char **a = g_strsplit(want, "{S1}", -1), *t = g_strjoinv(s1, a), **b;
	char *out;

	b = g_strsplit(t, "{S2}", -1);
	out = g_strjoinv(s2, b);
	g_strfreev(a);
	g_strfreev(b);
	g_free(t);
	g_free(s1);
	g_free(s2);
	return out;
}

/* The commands connection conn received, joined with " | ". */
static char *
transcript(const Server *srv, guint conn)
{
	GString *s = g_string_new(NULL);

	for (guint i = 0; i < srv->cmds->len; i++) {
		const Cmd *c = srv->cmds->pdata[i];

		if (c->conn != conn)
			continue;
		if (s->len)
			g_string_append(s, " | ");
		g_string_append(s, c->text);
	}
	return g_string_free(s, FALSE);
}

static void
expect_cmds_at(int line, const Run *r, guint conn, const char *const *want)
{
	GString *w = g_string_new(NULL);
	char *got = transcript(r->srv, conn), *ws;

	for (guint i = 0; want[i]; i++) {
		if (w->len)
			g_string_append(w, " | ");
		g_string_append(w, want[i]);
	}
	ws = expand(w->str);
	expect_at(strcmp(got, ws) == 0, line, "connection %u received the commands\n"
	    "      want: %s\n      got:  %s", conn, ws, got);
	g_free(ws);
	g_free(got);
	g_string_free(w, TRUE);
}

#define EXPECT_CMDS(r, conn, ...) \
	expect_cmds_at(__LINE__, (r), (conn), (const char *const[]){ __VA_ARGS__, NULL })

/* The i-th command of connection conn, or NULL. */
static const Cmd *
cmd_at(const Server *srv, guint conn, guint i)
{
	for (guint j = 0; j < srv->cmds->len; j++) {
		const Cmd *c = srv->cmds->pdata[j];

		if (c->conn == conn && i-- == 0)
			return c;
	}
	return NULL;
}

/* Commands from..to of connection 0 came when the server had written
 * `after` replies. */
static void
expect_after_at(int line, const Run *r, guint from, guint to, guint after)
{
	for (guint i = from; i <= to; i++) {
		const Cmd *c = cmd_at(r->srv, 0, i);

		expect_at(c && c->after == after, line, "command %u (%s) came after %u replies "
		    "(got %d)", i, c ? c->text : "none", after, c ? (int)c->after : -1);
	}
}

#define EXPECT_AFTER(r, from, to, after) expect_after_at(__LINE__, (r), (from), (to), (after))

static void
expect_end_at(int line, const Run *r, SmtpEnd how)
{
	expect_at(r->ends == 1 && r->how == how, line, "the session ended %s (got %s, %u "
	    "times; why: %s)", end_names[how], r->ends ? end_names[r->how] : "never", r->ends,
	    r->why ? r->why : "(none)");
}

#define EXPECT_END(r, how) expect_end_at(__LINE__, (r), (how))

/* Recipient i of tx has the verdict code, its reply starting with prefix. */
static void
expect_rcpt_at(int line, const SmtpTx *tx, guint i, int code, const char *prefix)
{
	const SmtpRcpt *sr = tx && i < tx->rcpts->len ? tx->rcpts->pdata[i] : NULL;

	expect_at(sr && sr->code == code && (code == 0 ? sr->reply == NULL :
	    sr->reply && g_str_has_prefix(sr->reply, prefix)), line,
	    "<%s>: verdict %d \"%s...\" (got %d \"%s\")", sr ? sr->address : "?", code,
	    prefix ? prefix : "", sr ? sr->code : -1, sr && sr->reply ? sr->reply : "(none)");
}

#define EXPECT_RCPT(tx, i, code, prefix) expect_rcpt_at(__LINE__, (tx), (i), (code), (prefix))

static SmtpTx *
done_at(const Run *r, guint i)
{
	return i < r->done->len ? r->done->pdata[i] : NULL;
}

/* The i-th message the server received, dot-stuffed as sent. */
static const char *
msg_at(const Run *r, guint i)
{
	return i < r->srv->msgs->len ? ((GString *)r->srv->msgs->pdata[i])->str : NULL;
}

/* What the message must look like on the wire: CR LF line ends, '.' doubled. */
static char *
wire(const char *body)
{
	GString *s = g_string_new(NULL);
	char **lines = g_strsplit(body, "\n", -1);
	guint n = g_strv_length(lines);

	for (guint i = 0; i < n; i++) {
		char *l = lines[i];
		gsize len = strlen(l);

		if (i == n - 1 && len == 0)
			break;               /* the body ended with a line end */
		if (len && l[len - 1] == '\r')
			l[--len] = '\0';
		g_string_append_printf(s, "%s%s\r\n", l[0] == '.' ? "." : "", l);
	}
	g_strfreev(lines);
	g_string_append(s, ".\r\n");
	return g_string_free(s, FALSE);
}

static void
expect_msg_at(int line, const Run *r, guint i, const char *body)
{
	char *want = wire(body);
	const char *got = msg_at(r, i);

	expect_at(got && strcmp(got, want) == 0, line, "message %u as sent:\n%s\n(got:\n%s)", i,
	    want, got ? got : "(none)");
	g_free(want);
}

#define EXPECT_MSG(r, i, body) expect_msg_at(__LINE__, (r), (i), (body))

/* ------------------------------------------------------------ scripts */

#define GREET     "220 srv.test ESMTP ready\r\n"
#define EHLO_PIPE "250-srv.test hello\r\n250-PIPELINING\r\n250-SIZE 10000000\r\n" \
	"250 8BITMIME\r\n"
#define EHLO_LOCK "250-srv.test hello\r\n250-SIZE 10000000\r\n250 8BITMIME\r\n"
#define OK_MAIL   "250 2.1.0 sender ok\r\n"
#define OK_RCPT   "250 2.1.5 recipient ok\r\n"
#define GO_DATA   "354 end data with <CR><LF>.<CR><LF>\r\n"
#define OK_QUEUED "250 2.0.0 queued as ABC123\r\n"
#define OK_RSET   "250 2.0.0 reset\r\n"
#define BYE       "221 2.0.0 bye\r\n"

/* ------------------------------------------------------------ cases */

/* PIPELINING: MAIL, both RCPTs and DATA go out in one go, before any reply;
 * both recipients get the reply to the end of data, not the RCPT's 250. */
static void
test_pipelined_one_message(void)
{
	static const char *const script[] = { GREET, EHLO_PIPE, OK_MAIL, OK_RCPT, OK_RCPT,
		GO_DATA, OK_QUEUED, BYE, NULL };
	Run *r = run_new();
	SmtpTx *tx;

	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", "c@y.test", NULL));
	run_go(r);
	EXPECT_CMDS(r, 0, "EHLO client.test", "MAIL FROM:<a@x.test> SIZE={S1}", "RCPT TO:<b@y.test>",
	    "RCPT TO:<c@y.test>", "DATA", "QUIT");
	EXPECT_AFTER(r, 1, 4, 2);           /* MAIL .. DATA: after the greeting and EHLO only */
	EXPECT(!r->srv->bad_eol, "every command ends in CR LF");
	EXPECT(!r->srv->data_early, "the message only after the 354");
	EXPECT(r->done->len == 1, "one transaction done (got %u)", r->done->len);
	tx = done_at(r, 0);
	EXPECT(tx && tx->result == SMTP_TX_DONE, "the transaction is DONE");
	EXPECT_RCPT(tx, 0, 250, "250 2.0.0 queued as ABC123");
	EXPECT_RCPT(tx, 1, 250, "250 2.0.0 queued as ABC123");
	EXPECT_MSG(r, 0, BODY1);
	EXPECT_END(r, SMTP_END_QUIT);
	EXPECT(r->nexts == 2, "next() asked twice: the message, then nothing (got %u)", r->nexts);
	EXPECT(r->peer_at_done && strstr(r->peer_at_done, "127.0.0.1"), "the peer names the "
	    "address: %s", r->peer_at_done ? r->peer_at_done : "(none)");
	run_free(r);
}

/* At debug level every change of the session's state is logged, as the
 * listener's are: "session with PEER: OLD -> NEW", from the connect to done. */
static void
test_transitions_logged(void)
{
	static const char *const script[] = { GREET, EHLO_PIPE, OK_MAIL, OK_RCPT, GO_DATA,
		OK_QUEUED, BYE, NULL };
	static const char *const steps[] = { "connect -> greeting", "greeting -> EHLO",
		"EHLO -> transaction", "transaction -> QUIT", "QUIT -> done" };
	Run *r = run_new();
	FILE *log = tmpfile();
	int saved = dup(STDERR_FILENO);
	char text[4096];
	size_t n;
	const char *at;

	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", NULL));
	fflush(stderr);
	dup2(fileno(log), STDERR_FILENO);
	pg_log_set_threshold(PG_LOG_DEBUG);
	run_go(r);
	pg_log_set_threshold(PG_LOG_INFO);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	rewind(log);
	n = fread(text, 1, sizeof text - 1, log);
	text[n] = '\0';
	fclose(log);
	at = text;
	for (gsize i = 0; i < G_N_ELEMENTS(steps); i++) {
		char *want = g_strdup_printf("debug: session with localhost[127.0.0.1]:%u: %s\n",
		    r->srv->port, steps[i]);
		const char *found = strstr(at, want);

		EXPECT(found != NULL, "logged, in order: %s (the log: %s)", want, text);
		if (found)
			at = found + strlen(want);
		g_free(want);
	}
	EXPECT_END(r, SMTP_END_QUIT);
	run_free(r);
}

/* An EHLO answered by a bare "250" (no text, no keywords: found by
 * fuzz_smtp_client) is a plain ESMTP server offering nothing. */
static void
test_ehlo_bare_250(void)
{
	static const char *const script[] = { GREET, "250\r\n", OK_MAIL, OK_RCPT, GO_DATA,
		OK_QUEUED, BYE, NULL };
	Run *r = run_new();

	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", NULL));
	run_go(r);
	EXPECT_CMDS(r, 0, "EHLO client.test", "MAIL FROM:<a@x.test>", "RCPT TO:<b@y.test>",
	    "DATA", "QUIT");
	EXPECT_RCPT(done_at(r, 0), 0, 250, "250 2.0.0 queued as ABC123");
	EXPECT_END(r, SMTP_END_QUIT);
	run_free(r);
}

/* Without PIPELINING every command waits for the reply to the one before. */
static void
test_lockstep_one_message(void)
{
	static const char *const script[] = { GREET, EHLO_LOCK, OK_MAIL, OK_RCPT, OK_RCPT,
		GO_DATA, OK_QUEUED, BYE, NULL };
	Run *r = run_new();
	SmtpTx *tx;

	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", "c@y.test", NULL));
	run_go(r);
	EXPECT_CMDS(r, 0, "EHLO client.test", "MAIL FROM:<a@x.test> SIZE={S1}", "RCPT TO:<b@y.test>",
	    "RCPT TO:<c@y.test>", "DATA", "QUIT");
	EXPECT_AFTER(r, 0, 0, 1);
	EXPECT_AFTER(r, 1, 1, 2);
	EXPECT_AFTER(r, 2, 2, 3);
	EXPECT_AFTER(r, 3, 3, 4);
	EXPECT_AFTER(r, 4, 4, 5);
	EXPECT_AFTER(r, 5, 5, 7);           /* QUIT after the reply to the end of data */
	tx = done_at(r, 0);
	EXPECT_RCPT(tx, 0, 250, "250 2.0.0 queued");
	EXPECT_RCPT(tx, 1, 250, "250 2.0.0 queued");
	EXPECT_MSG(r, 0, BODY1);
	EXPECT_END(r, SMTP_END_QUIT);
	run_free(r);
}

/* SPEC 3.3: the greeting, a multiline EHLO reply and a 354-/354 reply, each
 * cut into several writes with pauses, even inside a line: the client
 * waits for the last line, sees every EHLO keyword, and sends the message
 * only after the whole 354 reply. */
static void
test_split_multiline_replies(void)
{
	static const char *const script[] = {
		"220-srv.test ESMTP\r\n\f220-still\f greeting\r\n\f220 ready\r\n",
		"250-srv.test hello\r\n2\f50-PIPELINING\r\n250-SI\fZE 10000000\r\n\f250 8BITMIME\r\n",
		OK_MAIL, OK_RCPT, "35\f4-go on\r\n\f354 end with .\r\n", "2\f50 2.0.0 o\fk\r\n", BYE,
		NULL };
	Run *r = run_new();
	SmtpTx *tx;

	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", NULL));
	run_go(r);
	EXPECT_CMDS(r, 0, "EHLO client.test", "MAIL FROM:<a@x.test> SIZE={S1}", "RCPT TO:<b@y.test>",
	    "DATA", "QUIT");
	EXPECT_AFTER(r, 0, 0, 1);            /* EHLO after the whole greeting */
	EXPECT_AFTER(r, 1, 3, 2);            /* PIPELINING was seen in the cut EHLO reply */
	EXPECT(!r->srv->data_early, "no message byte before the whole 354 reply");
	tx = done_at(r, 0);
	EXPECT_RCPT(tx, 0, 250, "250 2.0.0 ok");
	EXPECT_MSG(r, 0, BODY1);
	EXPECT_END(r, SMTP_END_QUIT);
	EXPECT(run_seconds(r) >= 7 * PAUSE_MS / 1000.0, "the pauses were waited for (%.2f s)",
	    run_seconds(r));
	run_free(r);
}

/* One RCPT refused for good, one accepted: 550 and the end of data's 250;
 * one refused for now: 451. */
static void
test_rcpt_refused_one(void)
{
	static const char *const script[] = { GREET, EHLO_PIPE, OK_MAIL,
		"550 5.1.1 <b@y.test>: no such user\r\n", OK_RCPT, "451 4.3.0 try later\r\n",
		GO_DATA, OK_QUEUED, BYE, NULL };
	Run *r = run_new();
	SmtpTx *tx;

	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", "c@y.test", "e@y.test", NULL));
	run_go(r);
	EXPECT_CMDS(r, 0, "EHLO client.test", "MAIL FROM:<a@x.test> SIZE={S1}", "RCPT TO:<b@y.test>",
	    "RCPT TO:<c@y.test>", "RCPT TO:<e@y.test>", "DATA", "QUIT");
	tx = done_at(r, 0);
	EXPECT_RCPT(tx, 0, 550, "550 5.1.1 <b@y.test>: no such user");
	EXPECT_RCPT(tx, 1, 250, "250 2.0.0 queued");
	EXPECT_RCPT(tx, 2, 451, "451 4.3.0 try later");
	EXPECT_MSG(r, 0, BODY1);
	EXPECT_END(r, SMTP_END_QUIT);
	run_free(r);
}

/* Every RCPT refused (pipelined): the DATA reply means nothing, no message
 * goes, RSET comes before the next transaction, which is delivered. */
static void
test_rcpt_all_refused_pipelined(void)
{
	static const char *const script[] = { GREET, EHLO_PIPE, OK_MAIL,
		"550 5.1.1 no such user\r\n", "451 4.2.1 mailbox busy\r\n",
		"554 5.5.1 no valid recipients\r\n", OK_RSET,
		OK_MAIL, OK_RCPT, GO_DATA, OK_QUEUED, BYE, NULL };
	Run *r = run_new();
	SmtpTx *tx;

	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", "c@y.test", NULL));
	run_add(r, tx_new("a@x.test", BODY2, "d@y.test", NULL));
	run_go(r);
	EXPECT_CMDS(r, 0, "EHLO client.test", "MAIL FROM:<a@x.test> SIZE={S1}", "RCPT TO:<b@y.test>",
	    "RCPT TO:<c@y.test>", "DATA", "RSET", "MAIL FROM:<a@x.test> SIZE={S2}",
	    "RCPT TO:<d@y.test>", "DATA", "QUIT");
	EXPECT(r->srv->msgs->len == 1, "one message sent (got %u)", r->srv->msgs->len);
	EXPECT_MSG(r, 0, BODY2);
	tx = done_at(r, 0);
	EXPECT_RCPT(tx, 0, 550, "550 5.1.1 no such user");
	EXPECT_RCPT(tx, 1, 451, "451 4.2.1 mailbox busy");
	EXPECT_RCPT(done_at(r, 1), 0, 250, "250 2.0.0 queued");
	EXPECT_END(r, SMTP_END_QUIT);
	run_free(r);
}

/* Every RCPT refused, and the server says 354 to DATA all the same: an
 * empty message (just the end of data) whose reply means nothing, RSET. */
static void
test_rcpt_all_refused_354(void)
{
	static const char *const script[] = { GREET, EHLO_PIPE, OK_MAIL,
		"550 5.1.1 no such user\r\n", GO_DATA, OK_QUEUED, OK_RSET, BYE, NULL };
	Run *r = run_new();
	SmtpTx *tx;

	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", NULL));
	run_go(r);
	EXPECT_CMDS(r, 0, "EHLO client.test", "MAIL FROM:<a@x.test> SIZE={S1}", "RCPT TO:<b@y.test>",
	    "DATA", "RSET", "QUIT");
	EXPECT(msg_at(r, 0) && strcmp(msg_at(r, 0), ".\r\n") == 0, "only the end of data "
	    "went: \"%s\"", msg_at(r, 0) ? msg_at(r, 0) : "(nothing)");
	tx = done_at(r, 0);
	EXPECT_RCPT(tx, 0, 550, "550 5.1.1 no such user");
	EXPECT_END(r, SMTP_END_QUIT);
	run_free(r);
}

/* Every RCPT refused without pipelining: no DATA at all, RSET. */
static void
test_rcpt_all_refused_lockstep(void)
{
	static const char *const script[] = { GREET, EHLO_LOCK, OK_MAIL,
		"550 5.1.1 no such user\r\n", "550 5.1.1 nor this one\r\n", OK_RSET, BYE, NULL };
	Run *r = run_new();
	SmtpTx *tx;

	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", "c@y.test", NULL));
	run_go(r);
	EXPECT_CMDS(r, 0, "EHLO client.test", "MAIL FROM:<a@x.test> SIZE={S1}", "RCPT TO:<b@y.test>",
	    "RCPT TO:<c@y.test>", "RSET", "QUIT");
	EXPECT(r->srv->msgs->len == 0, "no message sent");
	tx = done_at(r, 0);
	EXPECT_RCPT(tx, 0, 550, "550 5.1.1 no such user");
	EXPECT_RCPT(tx, 1, 550, "550 5.1.1 nor this one");
	EXPECT_END(r, SMTP_END_QUIT);
	run_free(r);
}

/* 451 to the end of data: the accepted recipients get 451 (the refused one
 * keeps its 550), then RSET. */
static void
test_data_end_451(void)
{
	static const char *const script[] = { GREET, EHLO_PIPE, OK_MAIL, OK_RCPT,
		"550 5.1.1 no such user\r\n", OK_RCPT, GO_DATA,
		"451 4.3.0 queue file write error\r\n", OK_RSET, BYE, NULL };
	Run *r = run_new();
	SmtpTx *tx;

	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", "c@y.test", "e@y.test", NULL));
	run_go(r);
	EXPECT_CMDS(r, 0, "EHLO client.test", "MAIL FROM:<a@x.test> SIZE={S1}", "RCPT TO:<b@y.test>",
	    "RCPT TO:<c@y.test>", "RCPT TO:<e@y.test>", "DATA", "RSET", "QUIT");
	tx = done_at(r, 0);
	EXPECT_RCPT(tx, 0, 451, "451 4.3.0 queue file write error");
	EXPECT_RCPT(tx, 1, 550, "550 5.1.1 no such user");
	EXPECT_RCPT(tx, 2, 451, "451 4.3.0 queue file write error");
	EXPECT_END(r, SMTP_END_QUIT);
	run_free(r);
}

/* A refusal of DATA itself with recipients accepted: they get it. */
static void
test_data_refused(void)
{
	static const char *const script[] = { GREET, EHLO_PIPE, OK_MAIL, OK_RCPT,
		"554 5.3.0 no data today\r\n", OK_RSET, BYE, NULL };
	Run *r = run_new();

	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", NULL));
	run_go(r);
	EXPECT_CMDS(r, 0, "EHLO client.test", "MAIL FROM:<a@x.test> SIZE={S1}", "RCPT TO:<b@y.test>",
	    "DATA", "RSET", "QUIT");
	EXPECT(r->srv->msgs->len == 0, "no message sent");
	EXPECT_RCPT(done_at(r, 0), 0, 554, "554 5.3.0 no data today");
	EXPECT_END(r, SMTP_END_QUIT);
	run_free(r);
}

/* A 2xx reply to DATA (RFC 5321 4.3.2 allows 354 or a failure) is no
 * delivery: no byte of the message went.  The recipients must not get a
 * 2xx - the owner would mark them sent and the message would be lost. */
static void
test_data_2xx_is_no_delivery(void)
{
	static const char *const script[] = { GREET, EHLO_PIPE, OK_MAIL, OK_RCPT,
		"250 2.0.0 ok\r\n", OK_RSET, BYE, NULL };
	Run *r;
	const SmtpTx *tx;
	const SmtpRcpt *sr;

	r = run_new();
	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", NULL));
	run_go(r);
	EXPECT(r->srv->msgs->len == 0, "no message went");
	tx = done_at(r, 0);
	sr = tx ? tx->rcpts->pdata[0] : NULL;
	EXPECT(sr && sr->code / 100 == 4, "the recipient gets a 4xx, to try again (got %d %s)",
	    sr ? sr->code : -1, sr && sr->reply ? sr->reply : "");
	run_free(r);
}

/* Connection reuse: the second MAIL follows the first 250, without RSET. */
static void
test_two_messages(void)
{
	static const char *const script[] = { GREET, EHLO_PIPE, OK_MAIL, OK_RCPT, GO_DATA,
		OK_QUEUED, OK_MAIL, OK_RCPT, GO_DATA, "250 2.0.0 queued as DEF456\r\n", BYE, NULL };
	Run *r = run_new();

	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", NULL));
	run_add(r, tx_new("", BODY2, "d@y.test", NULL));
	run_go(r);
	EXPECT_CMDS(r, 0, "EHLO client.test", "MAIL FROM:<a@x.test> SIZE={S1}", "RCPT TO:<b@y.test>",
	    "DATA", "MAIL FROM:<> SIZE={S2}", "RCPT TO:<d@y.test>", "DATA", "QUIT");
	EXPECT(r->srv->accepted == 1, "one connection (got %u)", r->srv->accepted);
	EXPECT(r->done->len == 2, "two transactions done (got %u)", r->done->len);
	EXPECT_RCPT(done_at(r, 0), 0, 250, "250 2.0.0 queued as ABC123");
	EXPECT_RCPT(done_at(r, 1), 0, 250, "250 2.0.0 queued as DEF456");
	EXPECT_MSG(r, 0, BODY1);
	EXPECT_MSG(r, 1, BODY2);
	EXPECT_END(r, SMTP_END_QUIT);
	run_free(r);
}

/* SPEC 3.4: 503 to the second MAIL.  That transaction comes back AGAIN with
 * single set and no verdict - the pipelined RCPT replies behind the refused
 * MAIL say nothing about its recipients - the session says QUIT without
 * asking for a third, and nothing was sent for it. */
static void
test_second_mail_503(void)
{
	static const char *const script[] = { GREET, EHLO_PIPE, OK_MAIL, OK_RCPT, GO_DATA,
		OK_QUEUED, "503 5.5.1 one message per session\r\n",
		"550 5.1.1 no such user\r\n", "250 2.1.5 ok\r\n", "503 5.5.1 no valid MAIL\r\n", BYE,
		NULL };
	Run *r = run_new();
	SmtpTx *tx;

	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", NULL));
	run_add(r, tx_new("a@x.test", BODY2, "d@y.test", "e@y.test", NULL));
	run_add(r, tx_new("a@x.test", BODY2, "f@y.test", NULL));
	run_go(r);
	EXPECT_CMDS(r, 0, "EHLO client.test", "MAIL FROM:<a@x.test> SIZE={S1}", "RCPT TO:<b@y.test>",
	    "DATA", "MAIL FROM:<a@x.test> SIZE={S2}", "RCPT TO:<d@y.test>", "RCPT TO:<e@y.test>",
	    "DATA", "QUIT");
	EXPECT(r->done->len == 2, "two transactions back (got %u)", r->done->len);
	EXPECT_RCPT(done_at(r, 0), 0, 250, "250 2.0.0 queued");
	tx = done_at(r, 1);
	EXPECT(tx && tx->result == SMTP_TX_AGAIN, "the second comes back AGAIN (got %d)",
	    tx ? (int)tx->result : -1);
	EXPECT(tx && tx->single, "single: the server takes one message per session");
	EXPECT(tx && tx->again_reply && g_str_has_prefix(tx->again_reply,
	    "503 5.5.1 one message per session"), "again_reply is the refusal: %s",
	    tx && tx->again_reply ? tx->again_reply : "(none)");
	EXPECT_RCPT(tx, 0, 0, NULL);
	EXPECT_RCPT(tx, 1, 0, NULL);
	EXPECT(r->srv->msgs->len == 1, "one message sent (got %u)", r->srv->msgs->len);
	EXPECT(g_queue_get_length(&r->todo) == 1, "the third stays with the owner");
	EXPECT_END(r, SMTP_END_QUIT);
	run_free(r);
}

/* The same without PIPELINING: no RCPT after the refused MAIL. */
static void
test_second_mail_503_lockstep(void)
{
	static const char *const script[] = { GREET, EHLO_LOCK, OK_MAIL, OK_RCPT, GO_DATA,
		OK_QUEUED, "503 5.5.1 one message per session\r\n", BYE, NULL };
	Run *r = run_new();
	SmtpTx *tx;

	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", NULL));
	run_add(r, tx_new("a@x.test", BODY2, "d@y.test", NULL));
	run_go(r);
	EXPECT_CMDS(r, 0, "EHLO client.test", "MAIL FROM:<a@x.test> SIZE={S1}", "RCPT TO:<b@y.test>",
	    "DATA", "MAIL FROM:<a@x.test> SIZE={S2}", "QUIT");
	tx = done_at(r, 1);
	EXPECT(tx && tx->result == SMTP_TX_AGAIN && tx->single, "the second comes back AGAIN, "
	    "single");
	EXPECT_RCPT(tx, 0, 0, NULL);
	EXPECT_END(r, SMTP_END_QUIT);
	run_free(r);
}

/* A 4xx to the second MAIL: AGAIN as well, but not "single". */
static void
test_second_mail_452(void)
{
	static const char *const script[] = { GREET, EHLO_PIPE, OK_MAIL, OK_RCPT, GO_DATA,
		OK_QUEUED, "452 4.3.1 insufficient system storage\r\n", "503 5.5.1 need MAIL\r\n",
		"503 5.5.1 need MAIL\r\n", BYE, NULL };
	Run *r = run_new();
	SmtpTx *tx;

	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", NULL));
	run_add(r, tx_new("a@x.test", BODY2, "d@y.test", NULL));
	run_go(r);
	tx = done_at(r, 1);
	EXPECT(tx && tx->result == SMTP_TX_AGAIN && !tx->single, "AGAIN, not single");
	EXPECT_RCPT(tx, 0, 0, NULL);
	EXPECT_END(r, SMTP_END_QUIT);
	run_free(r);
}

/* SPEC 3.4 with a server that closes the connection right after refusing
 * the second MAIL (503 or 421): the refusal was read, so the transaction
 * still comes back AGAIN with no verdict - not DONE with a 421 for every
 * recipient, which would defer them and never learn "single". */
static void
test_second_mail_refused_then_closed(void)
{
	static const char *const s503[] = { GREET, EHLO_PIPE, OK_MAIL, OK_RCPT, GO_DATA,
		OK_QUEUED, "503 5.5.1 one message per session\r\n\f!close", NULL };
	static const char *const s421[] = { GREET, EHLO_PIPE, OK_MAIL, OK_RCPT, GO_DATA,
		OK_QUEUED, "421 4.7.0 too many messages, closing\r\n\f!close", NULL };
	const char *const *scripts[] = { s503, s421 };

	for (guint k = 0; k < 2; k++) {
		Run *r = run_new();
		SmtpTx *tx;

		run_scripts(r, scripts[k], NULL);
		g_ptr_array_add(r->addrs, addr_local(r->srv->port));
		run_add(r, tx_new("a@x.test", BODY1, "b@y.test", NULL));
		run_add(r, tx_new("a@x.test", BODY2, "d@y.test", NULL));
		run_go(r);
		EXPECT_RCPT(done_at(r, 0), 0, 250, "250 2.0.0 queued");
		tx = done_at(r, 1);
		EXPECT(tx && tx->result == SMTP_TX_AGAIN, "%s then close: AGAIN (got %s)",
		    k ? "421" : "503", tx ? (tx->result == SMTP_TX_AGAIN ? "AGAIN" : "DONE") : "none");
		EXPECT(tx && tx->single == (k == 0), "single only for the 5xx");
		EXPECT_RCPT(tx, 0, 0, NULL);
		EXPECT(r->ends == 1 && r->how != SMTP_END_UNREACHABLE && r->how != SMTP_END_REFUSED,
		    "the session ended after a transaction (got %s)", end_names[r->how]);
		run_free(r);
	}
}

/* A reused connection that breaks before MAIL is answered: the server never
 * saw that transaction, it comes back AGAIN (not single). */
static void
test_reused_connection_lost_before_mail_reply(void)
{
	static const char *const script[] = { GREET, EHLO_PIPE, OK_MAIL, OK_RCPT, GO_DATA,
		OK_QUEUED, "!close", NULL };
	Run *r = run_new();
	SmtpTx *tx;

	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", NULL));
	run_add(r, tx_new("a@x.test", BODY2, "d@y.test", NULL));
	run_go(r);
	tx = done_at(r, 1);
	EXPECT(tx && tx->result == SMTP_TX_AGAIN && !tx->single, "AGAIN, not single (got %s)",
	    tx ? (tx->result == SMTP_TX_AGAIN ? "AGAIN" : "DONE") : "none");
	EXPECT_RCPT(tx, 0, 0, NULL);
	EXPECT_END(r, SMTP_END_LOST);
	run_free(r);
}

/* The first MAIL refused: every recipient gets that reply (the pipelined
 * RCPT and DATA replies behind it say nothing), RSET. */
static void
test_first_mail_550(void)
{
	static const char *const script[] = { GREET, EHLO_PIPE,
		"550 5.7.1 sender rejected\r\n", "503 5.5.1 need MAIL\r\n", "250 2.1.5 odd\r\n",
		"503 5.5.1 need MAIL\r\n", OK_RSET, BYE, NULL };
	Run *r = run_new();
	SmtpTx *tx;

	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", "c@y.test", NULL));
	run_go(r);
	EXPECT_CMDS(r, 0, "EHLO client.test", "MAIL FROM:<a@x.test> SIZE={S1}", "RCPT TO:<b@y.test>",
	    "RCPT TO:<c@y.test>", "DATA", "RSET", "QUIT");
	tx = done_at(r, 0);
	EXPECT(tx && tx->result == SMTP_TX_DONE, "DONE");
	EXPECT_RCPT(tx, 0, 550, "550 5.7.1 sender rejected");
	EXPECT_RCPT(tx, 1, 550, "550 5.7.1 sender rejected");
	EXPECT(r->srv->msgs->len == 0, "no message sent");
	EXPECT_END(r, SMTP_END_QUIT);
	run_free(r);
}

/* The first MAIL refused for now, without pipelining: 451 each, no RCPT. */
static void
test_first_mail_451_lockstep(void)
{
	static const char *const script[] = { GREET, EHLO_LOCK,
		"451 4.7.1 greylisted\r\n", OK_RSET, BYE, NULL };
	Run *r = run_new();
	SmtpTx *tx;

	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", "c@y.test", NULL));
	run_go(r);
	EXPECT_CMDS(r, 0, "EHLO client.test", "MAIL FROM:<a@x.test> SIZE={S1}", "RSET", "QUIT");
	tx = done_at(r, 0);
	EXPECT_RCPT(tx, 0, 451, "451 4.7.1 greylisted");
	EXPECT_RCPT(tx, 1, 451, "451 4.7.1 greylisted");
	EXPECT_END(r, SMTP_END_QUIT);
	run_free(r);
}

/* RFC 5321 4.5.2: a line starting with '.' goes with the '.' doubled; LF-only
 * line ends go as CR LF; a last line without an end gets one; the end of
 * data is CR LF . CR LF. */
static void
test_dot_stuffing(void)
{
	static const char body[] = "Subject: dots\n\n.leading dot\n..two dots\nnormal\n.\n"
	    "mixed\r\n. space\r\n\n.\r\nlast line without an end";
	static const char want[] = "Subject: dots\r\n\r\n..leading dot\r\n...two dots\r\n"
	    "normal\r\n..\r\nmixed\r\n.. space\r\n\r\n..\r\nlast line without an end\r\n.\r\n";
	static const char *const script[] = { GREET, EHLO_PIPE, OK_MAIL, OK_RCPT, GO_DATA,
		OK_QUEUED, BYE, NULL };
	Run *r = run_new();

	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", body, "b@y.test", NULL));
	run_go(r);
	EXPECT(msg_at(r, 0) && strcmp(msg_at(r, 0), want) == 0, "the message on the wire:\n%s\n"
	    "(got:\n%s)", want, msg_at(r, 0) ? msg_at(r, 0) : "(none)");
	{
		/* RFC 1870: SIZE counts the CR LF line ends as sent, not the five
		 * stuffed dots and not the final dot. */
		char *mail = g_strdup_printf("MAIL FROM:<a@x.test> SIZE=%zu", strlen(want) - 5 - 3);
		const Cmd *c = cmd_at(r->srv, 0, 1);

		EXPECT(c && strcmp(c->text, mail) == 0, "%s (got %s)", mail, c ? c->text : "none");
		g_free(mail);
	}
	EXPECT_RCPT(done_at(r, 0), 0, 250, "250 2.0.0 queued");
	EXPECT_END(r, SMTP_END_QUIT);
	run_free(r);
}

/* A body that is a lone "." line, and one of "." lines only. */
static void
test_dot_stuffing_edges(void)
{
	static const char *const script[] = { GREET, EHLO_PIPE, OK_MAIL, OK_RCPT, GO_DATA,
		OK_QUEUED, OK_MAIL, OK_RCPT, GO_DATA, OK_QUEUED, BYE, NULL };
	Run *r = run_new();

	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", ".", "b@y.test", NULL));
	run_add(r, tx_new("a@x.test", ".\r\n.\n..\r\n", "b@y.test", NULL));
	run_go(r);
	EXPECT(msg_at(r, 0) && strcmp(msg_at(r, 0), "..\r\n.\r\n") == 0, "\".\": doubled "
	    "(got \"%s\")", msg_at(r, 0) ? msg_at(r, 0) : "(none)");
	EXPECT(msg_at(r, 1) && strcmp(msg_at(r, 1), "..\r\n..\r\n...\r\n.\r\n") == 0,
	    "dots only (got \"%s\")", msg_at(r, 1) ? msg_at(r, 1) : "(none)");
	EXPECT_END(r, SMTP_END_QUIT);
	run_free(r);
}

/* An empty body (GBytes of size 0, whose data is NULL - as queue_body_read
 * gives for an empty message): just the end of data. */
static void
test_empty_body(void)
{
	static const char *const script[] = { GREET, EHLO_PIPE, OK_MAIL, OK_RCPT, GO_DATA,
		OK_QUEUED, BYE, NULL };
	Run *r;

	r = run_new();
	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", "", "b@y.test", NULL));
	run_go(r);
	EXPECT(msg_at(r, 0) && strcmp(msg_at(r, 0), ".\r\n") == 0, "empty body: just the end "
	    "(got \"%s\")", msg_at(r, 0) ? msg_at(r, 0) : "(none)");
	EXPECT_RCPT(done_at(r, 0), 0, 250, "250 2.0.0 queued");
	EXPECT_END(r, SMTP_END_QUIT);
	run_free(r);
}

/* The server closes the connection after the message, before its reply:
 * the accepted recipients get a 4xx (the refused one keeps its 550), the
 * session is LOST. */
static void
test_closed_after_data(void)
{
	static const char *const script[] = { GREET, EHLO_PIPE, OK_MAIL, OK_RCPT,
		"550 5.1.1 no such user\r\n", GO_DATA, "!close", NULL };
	Run *r = run_new();
	SmtpTx *tx;

	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", "c@y.test", NULL));
	run_go(r);
	tx = done_at(r, 0);
	EXPECT(tx && tx->result == SMTP_TX_DONE, "DONE");
	EXPECT_RCPT(tx, 0, 421, "");
	EXPECT_RCPT(tx, 1, 550, "550 5.1.1 no such user");
	EXPECT(tx && ((SmtpRcpt *)tx->rcpts->pdata[0])->reply &&
	    strstr(((SmtpRcpt *)tx->rcpts->pdata[0])->reply, "closed"), "the reply says the "
	    "server closed the connection: %s", tx ? ((SmtpRcpt *)tx->rcpts->pdata[0])->reply : "");
	EXPECT_END(r, SMTP_END_LOST);
	run_free(r);
}

/* The server closes the connection while the client writes a large
 * message: a 4xx, LOST - and the process lives (no SIGPIPE).  Run in a
 * child with SIGPIPE at its default, as `postgate run` has it; the child
 * exits with a bit set for each expectation that failed. */
enum { MID_NOT_ENDED = 1, MID_NOT_LOST = 2, MID_NOT_4XX = 4, MID_NOT_DONE = 8 };

static int
closed_mid_data_child(void)
{
	static const char *const script[] = { GREET, EHLO_PIPE, OK_MAIL, OK_RCPT,
		GO_DATA "\f!close", NULL };
	Run *r = run_new();
	GString *big = g_string_new(NULL);
	SmtpTx *tx;
	int bits = 0;

	/* The server reads nothing after its 354 and closes PAUSE_MS later. */
	for (guint i = 0; big->len < 8u * 1024 * 1024; i++)
		g_string_append_printf(big, "line %u of a long message, long enough to fill "
		    "the socket buffers many times over\r\n", i);
	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", big->str, "b@y.test", NULL));
	run_go(r);
	tx = done_at(r, 0);
	if (r->ends != 1)
		bits |= MID_NOT_ENDED;
	if (r->how != SMTP_END_LOST)
		bits |= MID_NOT_LOST;
	if (!tx || ((SmtpRcpt *)tx->rcpts->pdata[0])->code / 100 != 4)
		bits |= MID_NOT_4XX;
	if (!tx || tx->result != SMTP_TX_DONE)
		bits |= MID_NOT_DONE;
	g_string_free(big, TRUE);
	run_free(r);
	return bits;
}

static void
test_closed_mid_data(void)
{
	pid_t pid;
	int status = 0;

	fflush(NULL);
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		signal(SIGPIPE, SIG_DFL);
		_exit(closed_mid_data_child());
	}
	CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
	EXPECT(!WIFSIGNALED(status), "the process is not killed writing to a closed connection "
	    "(killed by signal %d%s)", WIFSIGNALED(status) ? WTERMSIG(status) : 0,
	    WIFSIGNALED(status) && WTERMSIG(status) == SIGPIPE ? ", SIGPIPE" : "");
	if (WIFEXITED(status)) {
		int bits = WEXITSTATUS(status);

		EXPECT(!(bits & MID_NOT_ENDED), "the session ended");
		EXPECT(!(bits & MID_NOT_LOST), "it ended LOST");
		EXPECT(!(bits & MID_NOT_4XX), "the recipient got a 4xx");
		EXPECT(!(bits & MID_NOT_DONE), "the transaction is DONE");
	}
}

/* A reply that never comes: cfg.timeout = 1 gives 421 and LOST in about
 * a second. */
static void
test_reply_timeout(void)
{
	static const char *const script[] = { GREET, EHLO_PIPE, NULL };
	Run *r = run_new();
	SmtpTx *tx;
	double t;

	r->cfg.timeout = 1;
	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", "c@y.test", NULL));
	run_go(r);
	tx = done_at(r, 0);
	EXPECT_RCPT(tx, 0, 421, "");
	EXPECT_RCPT(tx, 1, 421, "");
	EXPECT(tx && ((SmtpRcpt *)tx->rcpts->pdata[0])->reply &&
	    strstr(((SmtpRcpt *)tx->rcpts->pdata[0])->reply, "timed out"), "the reply says it "
	    "timed out: %s", tx ? ((SmtpRcpt *)tx->rcpts->pdata[0])->reply : "");
	EXPECT_END(r, SMTP_END_LOST);
	t = run_seconds(r);
	EXPECT(t >= 0.9 && t <= 2.5, "it took about the timeout: %.2f s", t);
	run_free(r);
}

/* A greeting that never comes, with a second address that works: the
 * first one's timeout, then delivered via the second. */
static void
test_greeting_timeout_next_address(void)
{
	static const char *const mute[] = { NULL };
	static const char *const script[] = { GREET, EHLO_PIPE, OK_MAIL, OK_RCPT, GO_DATA,
		OK_QUEUED, BYE, NULL };
	Run *r = run_new();

	r->cfg.timeout = 1;
	run_scripts(r, mute, script);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", NULL));
	run_go(r);
	EXPECT(r->srv->accepted == 2, "two connections (got %u)", r->srv->accepted);
	EXPECT_RCPT(done_at(r, 0), 0, 250, "250 2.0.0 queued");
	EXPECT_END(r, SMTP_END_QUIT);
	run_free(r);
}

/* Garbage instead of a reply: the connection is given up, 421, LOST. */
static void
test_garbage_reply(void)
{
	static const char *const script[] = { GREET, EHLO_PIPE,
		"hello there, this is no reply\r\n", NULL };
	Run *r = run_new();
	SmtpTx *tx;

	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", NULL));
	run_go(r);
	tx = done_at(r, 0);
	EXPECT(tx && tx->result == SMTP_TX_DONE, "DONE");
	EXPECT_RCPT(tx, 0, 421, "");
	EXPECT(r->srv->msgs->len == 0, "no message sent");
	EXPECT_END(r, SMTP_END_LOST);
	run_free(r);
}

/* A garbage greeting is no server: the next address; none left:
 * UNREACHABLE, and next() never asked. */
static void
test_garbage_greeting(void)
{
	static const char *const script[] = { "SSH-2.0-OpenSSH_9.6\r\n", NULL };
	Run *r = run_new();

	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", NULL));
	run_go(r);
	EXPECT_END(r, SMTP_END_UNREACHABLE);
	EXPECT(r->nexts == 0 && r->done->len == 0, "no transaction started");
	run_free(r);
}

/* A 554 greeting (RFC 5321 3.1): not this server; QUIT is polite. */
static void
test_greeting_554(void)
{
	static const char *const script[] = { "554 5.3.2 no service for you\r\n", BYE, NULL };
	Run *r = run_new();

	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", NULL));
	run_go(r);
	EXPECT_END(r, SMTP_END_UNREACHABLE);
	EXPECT(r->why && strstr(r->why, "554 5.3.2 no service for you"), "why has the "
	    "greeting: %s", r->why ? r->why : "(none)");
	EXPECT(r->nexts == 0, "no transaction started");
	run_free(r);
}

/* Connection refused on the first address, a server on the second. */
static void
test_refused_then_second_address(void)
{
	static const char *const script[] = { GREET, EHLO_PIPE, OK_MAIL, OK_RCPT, GO_DATA,
		OK_QUEUED, BYE, NULL };
	Run *r = run_new();
	char *port;

	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(closed_port()));
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", NULL));
	run_go(r);
	EXPECT_RCPT(done_at(r, 0), 0, 250, "250 2.0.0 queued");
	port = g_strdup_printf(":%u", r->srv->port);
	EXPECT(r->peer_at_done && g_str_has_suffix(r->peer_at_done, port), "delivered via the "
	    "second address: %s", r->peer_at_done ? r->peer_at_done : "(none)");
	g_free(port);
	EXPECT_END(r, SMTP_END_QUIT);
	run_free(r);
}

/* Every address refuses the connection: UNREACHABLE, saying why. */
static void
test_all_refused(void)
{
	Run *r = run_new();

	g_ptr_array_add(r->addrs, addr_local(closed_port()));
	g_ptr_array_add(r->addrs, addr_local(closed_port()));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", NULL));
	run_go(r);
	EXPECT_END(r, SMTP_END_UNREACHABLE);
	EXPECT(r->nexts == 0 && r->done->len == 0, "no transaction started");
	EXPECT(r->why && strstr(r->why, "refused"), "why says the connection was refused: %s",
	    r->why ? r->why : "(none)");
	EXPECT(run_seconds(r) < 2.0, "at once, not after a timeout (%.2f s)", run_seconds(r));
	run_free(r);
}

/* No address at all: UNREACHABLE. */
static void
test_no_address(void)
{
	Run *r = run_new();

	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", NULL));
	run_go(r);
	EXPECT_END(r, SMTP_END_UNREACHABLE);
	EXPECT(r->nexts == 0, "no transaction started");
	run_free(r);
}

/* tls = encrypt and no STARTTLS offered: REFUSED, nothing sent in the clear. */
static void
test_tls_required_not_offered(void)
{
	static const char *const script[] = { GREET, EHLO_PIPE, BYE, NULL };
	Run *r = run_new();

	r->cfg.tls = SMTP_TLS_ENCRYPT;
	r->cfg.ssl = smtp_client_tls_new(SMTP_TLS_ENCRYPT, NULL, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r->cfg.ssl);
	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", NULL));
	run_go(r);
	EXPECT_END(r, SMTP_END_REFUSED);
	EXPECT(r->why && strstr(r->why, "STARTTLS"), "why names STARTTLS: %s",
	    r->why ? r->why : "(none)");
	EXPECT(r->nexts == 0 && r->srv->msgs->len == 0, "no transaction started");
	{
		const Cmd *c = cmd_at(r->srv, 0, 1);

		EXPECT(c == NULL || strcmp(c->text, "QUIT") == 0, "nothing but QUIT after EHLO "
		    "(got %s)", c ? c->text : "nothing");
	}
	run_free(r);
}

/* The QUIT that the client means to send when it gives up a server (here:
 * TLS required, not offered) reaches the server (RFC 5321 4.1.1.10). */
static void
test_tls_required_quit_sent(void)
{
	static const char *const script[] = { GREET, EHLO_PIPE, BYE, NULL };
	Run *r;

	r = run_new();
	r->cfg.tls = SMTP_TLS_ENCRYPT;
	r->cfg.ssl = smtp_client_tls_new(SMTP_TLS_ENCRYPT, NULL, NULL);
	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", NULL));
	run_go(r);
	EXPECT_CMDS(r, 0, "EHLO client.test", "QUIT");
	run_free(r);
}

/* tls = encrypt with STARTTLS: EHLO again inside TLS, the transaction in
 * TLS; the plaintext the server sent after its 220 is never believed. */
static void
test_starttls(void)
{
	static const char *const script[] = { GREET,
		"250-srv.test\r\n250-STARTTLS\r\n250 SIZE 10000000\r\n",
		"220 2.0.0 go ahead\r\n250-injected in plaintext\r\n250 PIPELINING\r\n\f!tls",
		"250-srv.test\r\n250-PIPELINING\r\n250 SIZE 10000000\r\n",
		OK_MAIL, OK_RCPT, GO_DATA, OK_QUEUED, BYE, NULL };
	Run *r = run_new();

	r->srv->tls_ctx = server_tls_ctx();
	r->cfg.tls = SMTP_TLS_ENCRYPT;
	r->cfg.ssl = smtp_client_tls_new(SMTP_TLS_ENCRYPT, NULL, NULL);
	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", NULL));
	run_go(r);
	EXPECT_CMDS(r, 0, "EHLO client.test", "STARTTLS", "EHLO client.test",
	    "MAIL FROM:<a@x.test> SIZE={S1}", "RCPT TO:<b@y.test>", "DATA", "QUIT");
	{
		const Cmd *c = cmd_at(r->srv, 0, 2), *m = cmd_at(r->srv, 0, 3);

		EXPECT(c && c->tls && m && m->tls, "EHLO and MAIL came inside TLS");
	}
	EXPECT(r->tls_at_done, "smtp_session_tls() says so");
	EXPECT_RCPT(done_at(r, 0), 0, 250, "250 2.0.0 queued");
	EXPECT_MSG(r, 0, BODY1);
	EXPECT_END(r, SMTP_END_QUIT);
	run_free(r);
}

/* RFC 3207 4.2: after the handshake the client forgets what the plaintext
 * EHLO offered; here PIPELINING and DSN were offered only before TLS, so
 * inside TLS the commands go one by one and without DSN parameters. */
static void
test_starttls_forgets_plaintext_offer(void)
{
	static const char *const script[] = { GREET,
		"250-srv.test\r\n250-PIPELINING\r\n250-DSN\r\n250-STARTTLS\r\n250 SIZE 10000000\r\n",
		"220 2.0.0 go ahead\r\n\f!tls", "250-srv.test\r\n250 SIZE 10000000\r\n",
		OK_MAIL, OK_RCPT, GO_DATA, OK_QUEUED, BYE, NULL };
	Run *r;
	SmtpTx *tx;

	r = run_new();
	tx = tx_new("a@x.test", BODY1, "b@y.test", NULL);
	tx->ret = MAIL_RET_FULL;
	((SmtpRcpt *)tx->rcpts->pdata[0])->notify = MAIL_NOTIFY_FAILURE;
	r->srv->tls_ctx = server_tls_ctx();
	r->cfg.tls = SMTP_TLS_ENCRYPT;
	r->cfg.ssl = smtp_client_tls_new(SMTP_TLS_ENCRYPT, NULL, NULL);
	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx);
	run_go(r);
	EXPECT_CMDS(r, 0, "EHLO client.test", "STARTTLS", "EHLO client.test",
	    "MAIL FROM:<a@x.test> SIZE={S1}", "RCPT TO:<b@y.test>", "DATA", "QUIT");
	EXPECT_AFTER(r, 3, 3, 4);           /* MAIL after the second EHLO reply */
	EXPECT_AFTER(r, 4, 4, 5);           /* RCPT after the MAIL reply: no pipelining */
	EXPECT_AFTER(r, 5, 5, 6);
	EXPECT_RCPT(done_at(r, 0), 0, 250, "250 2.0.0 queued");
	EXPECT_END(r, SMTP_END_QUIT);
	run_free(r);
}

/* tls = verify against a self-signed certificate: no transaction, in TLS or
 * in the clear. */
static void
test_starttls_verify_fails(void)
{
	static const char *const script[] = { GREET,
		"250-srv.test\r\n250-STARTTLS\r\n250 PIPELINING\r\n", "220 2.0.0 go ahead\r\n\f!tls",
		"250-srv.test\r\n250 PIPELINING\r\n", OK_MAIL, OK_RCPT, GO_DATA, OK_QUEUED, BYE, NULL };
	Run *r = run_new();

	r->srv->tls_ctx = server_tls_ctx();
	r->cfg.tls = SMTP_TLS_VERIFY;
	r->cfg.ssl = smtp_client_tls_new(SMTP_TLS_VERIFY, NULL, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r->cfg.ssl);
	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", NULL));
	run_go(r);
	EXPECT(r->ends == 1 && (r->how == SMTP_END_UNREACHABLE || r->how == SMTP_END_REFUSED),
	    "the session ended without a transaction (got %s: %s)", end_names[r->how],
	    r->why ? r->why : "");
	EXPECT(r->nexts == 0 && r->srv->msgs->len == 0, "no transaction started");
	EXPECT(r->srv->accepted == 1, "no plaintext retry (connections: %u)", r->srv->accepted);
	run_free(r);
}

/* tls = may: a 454 to STARTTLS, on in plaintext on the same connection. */
static void
test_starttls_may_454(void)
{
	static const char *const script[] = { GREET,
		"250-srv.test\r\n250-STARTTLS\r\n250-SIZE 10000000\r\n250 PIPELINING\r\n",
		"454 4.7.0 TLS not available\r\n", OK_MAIL, OK_RCPT, GO_DATA, OK_QUEUED, BYE, NULL };
	Run *r = run_new();

	r->cfg.tls = SMTP_TLS_MAY;
	r->cfg.ssl = smtp_client_tls_new(SMTP_TLS_MAY, NULL, NULL);
	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", NULL));
	run_go(r);
	EXPECT_CMDS(r, 0, "EHLO client.test", "STARTTLS", "MAIL FROM:<a@x.test> SIZE={S1}",
	    "RCPT TO:<b@y.test>", "DATA", "QUIT");
	EXPECT_RCPT(done_at(r, 0), 0, 250, "250 2.0.0 queued");
	EXPECT(!r->tls_at_done, "not encrypted");
	EXPECT_END(r, SMTP_END_QUIT);
	run_free(r);
}

/* tls = may: the handshake fails (the server hangs up after its 220): a
 * new connection in plaintext, without STARTTLS, delivers. */
static void
test_starttls_may_handshake_fails(void)
{
	static const char *const s0[] = { GREET,
		"250-srv.test\r\n250-STARTTLS\r\n250 PIPELINING\r\n", "220 2.0.0 go ahead\r\n\f!close",
		NULL };
	static const char *const s1[] = { GREET,
		"250-srv.test\r\n250-STARTTLS\r\n250-SIZE 10000000\r\n250 PIPELINING\r\n", OK_MAIL, OK_RCPT, GO_DATA,
		OK_QUEUED, BYE, NULL };
	Run *r = run_new();

	r->cfg.tls = SMTP_TLS_MAY;
	r->cfg.ssl = smtp_client_tls_new(SMTP_TLS_MAY, NULL, NULL);
	run_scripts(r, s0, s1);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", NULL));
	run_go(r);
	EXPECT(r->srv->accepted == 2, "two connections (got %u)", r->srv->accepted);
	EXPECT_CMDS(r, 1, "EHLO client.test", "MAIL FROM:<a@x.test> SIZE={S1}", "RCPT TO:<b@y.test>",
	    "DATA", "QUIT");
	EXPECT_RCPT(done_at(r, 0), 0, 250, "250 2.0.0 queued");
	EXPECT_END(r, SMTP_END_QUIT);
	run_free(r);
}

static char *
b64(const char *s, gsize len)
{
	return g_base64_encode((const guchar *)s, len);
}

/* AUTH PLAIN inside TLS (RFC 4954, RFC 4616). */
static void
test_auth_plain(void)
{
	static const char *const script[] = { GREET,
		"250-srv.test\r\n250-STARTTLS\r\n250 PIPELINING\r\n", "220 2.0.0 go ahead\r\n\f!tls",
		"250-srv.test\r\n250-AUTH LOGIN PLAIN\r\n250-SIZE 10000000\r\n250 PIPELINING\r\n",
		"235 2.7.0 authenticated\r\n", OK_MAIL, OK_RCPT, GO_DATA, OK_QUEUED, BYE, NULL };
	Run *r = run_new();
	char *cred = b64("\0user\0se cret", 13), *want = g_strdup_printf("AUTH PLAIN %s", cred);

	r->srv->tls_ctx = server_tls_ctx();
	r->cfg.tls = SMTP_TLS_ENCRYPT;
	r->cfg.ssl = smtp_client_tls_new(SMTP_TLS_ENCRYPT, NULL, NULL);
	r->cfg.auth_user = "user";
	r->cfg.auth_password = "se cret";
	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", NULL));
	run_go(r);
	EXPECT_CMDS(r, 0, "EHLO client.test", "STARTTLS", "EHLO client.test", want,
	    "MAIL FROM:<a@x.test> SIZE={S1}", "RCPT TO:<b@y.test>", "DATA", "QUIT");
	EXPECT_RCPT(done_at(r, 0), 0, 250, "250 2.0.0 queued");
	EXPECT_END(r, SMTP_END_QUIT);
	g_free(cred);
	g_free(want);
	run_free(r);
}

/* AUTH LOGIN inside TLS, when PLAIN is not offered. */
static void
test_auth_login(void)
{
	static const char *const script[] = { GREET,
		"250-srv.test\r\n250-STARTTLS\r\n250 PIPELINING\r\n", "220 2.0.0 go ahead\r\n\f!tls",
		"250-srv.test\r\n250-SIZE 10000000\r\n250 AUTH=LOGIN\r\n", "334 VXNlcm5hbWU6\r\n", "334 UGFzc3dvcmQ6\r\n",
		"235 2.7.0 authenticated\r\n", OK_MAIL, OK_RCPT, GO_DATA, OK_QUEUED, BYE, NULL };
	Run *r = run_new();
	char *u = b64("user", 4), *p = b64("secret", 6);

	r->srv->tls_ctx = server_tls_ctx();
	r->cfg.tls = SMTP_TLS_ENCRYPT;
	r->cfg.ssl = smtp_client_tls_new(SMTP_TLS_ENCRYPT, NULL, NULL);
	r->cfg.auth_user = "user";
	r->cfg.auth_password = "secret";
	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", NULL));
	run_go(r);
	EXPECT_CMDS(r, 0, "EHLO client.test", "STARTTLS", "EHLO client.test", "AUTH LOGIN", u, p,
	    "MAIL FROM:<a@x.test> SIZE={S1}", "RCPT TO:<b@y.test>", "DATA", "QUIT");
	EXPECT_RCPT(done_at(r, 0), 0, 250, "250 2.0.0 queued");
	EXPECT_END(r, SMTP_END_QUIT);
	g_free(u);
	g_free(p);
	run_free(r);
}

/* AUTH configured, no TLS: the password never goes in the clear. */
static void
test_auth_never_in_clear(void)
{
	static const char *const script[] = { GREET,
		"250-srv.test\r\n250-AUTH PLAIN LOGIN\r\n250 PIPELINING\r\n", BYE, NULL };
	Run *r = run_new();

	r->cfg.auth_user = "user";
	r->cfg.auth_password = "secret";
	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", NULL));
	run_go(r);
	for (guint i = 0; i < r->srv->cmds->len; i++) {
		const Cmd *c = r->srv->cmds->pdata[i];

		EXPECT(!g_str_has_prefix(c->text, "AUTH") && !g_str_has_prefix(c->text, "MAIL"),
		    "no AUTH and no MAIL in the clear (got %s)", c->text);
	}
	EXPECT(r->ends == 1 && r->how != SMTP_END_QUIT && r->how != SMTP_END_LOST,
	    "the session ended without a transaction (got %s)", end_names[r->how]);
	EXPECT(r->nexts == 0, "no transaction started");
	run_free(r);
}

/* AUTH refused: no transaction. */
static void
test_auth_refused(void)
{
	static const char *const script[] = { GREET,
		"250-srv.test\r\n250-STARTTLS\r\n250 PIPELINING\r\n", "220 2.0.0 go ahead\r\n\f!tls",
		"250-srv.test\r\n250 AUTH PLAIN\r\n", "535 5.7.8 bad credentials\r\n", BYE, NULL };
	Run *r = run_new();

	r->srv->tls_ctx = server_tls_ctx();
	r->cfg.tls = SMTP_TLS_ENCRYPT;
	r->cfg.ssl = smtp_client_tls_new(SMTP_TLS_ENCRYPT, NULL, NULL);
	r->cfg.auth_user = "user";
	r->cfg.auth_password = "wrong";
	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", NULL));
	run_go(r);
	EXPECT(r->ends == 1 && (r->how == SMTP_END_UNREACHABLE || r->how == SMTP_END_REFUSED),
	    "no transaction: %s", end_names[r->how]);
	EXPECT(r->why && strstr(r->why, "535 5.7.8"), "why has the server's reply: %s",
	    r->why ? r->why : "(none)");
	EXPECT(r->nexts == 0, "no transaction started");
	run_free(r);
}

/* EHLO refused: HELO, and then no extension at all - no pipelining, no
 * MAIL parameters. */
static void
test_helo_fallback(void)
{
	static const char *const script[] = { GREET, "502 5.5.2 EHLO not implemented\r\n",
		"250 srv.test\r\n", OK_MAIL, OK_RCPT, GO_DATA, OK_QUEUED, BYE, NULL };
	Run *r = run_new();
	SmtpTx *tx = tx_new("a@x.test", BODY1, "b@y.test", NULL);

	tx->eightbit = TRUE;
	r->seven = g_bytes_new_static(BODY2, strlen(BODY2));
	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx);
	run_go(r);
	EXPECT_CMDS(r, 0, "EHLO client.test", "HELO client.test", "MAIL FROM:<a@x.test>",
	    "RCPT TO:<b@y.test>", "DATA", "QUIT");
	EXPECT_AFTER(r, 2, 2, 3);
	EXPECT_AFTER(r, 3, 3, 4);
	EXPECT_MSG(r, 0, BODY2);            /* 8-bit: the 7-bit form went */
	EXPECT_RCPT(done_at(r, 0), 0, 250, "250 2.0.0 queued");
	EXPECT_END(r, SMTP_END_QUIT);
	run_free(r);
}

/* A server without 8BITMIME and a 7-bit form whose body was converted but
 * whose header fields were not (a raw UTF-8 From: display name and
 * Subject:, as GMime's body conversion leaves them): what arrives holds only
 * 7-bit bytes, and its header fields decode back to the same text. */
static void
test_8bit_headers_encoded(void)
{
	static const char *const script[] = { GREET, "250-srv.test\r\n250 PIPELINING\r\n",
		OK_MAIL, OK_RCPT, GO_DATA, OK_QUEUED, BYE, NULL };
	static const char seven[] = "From: J\xc3\xbcrgen M\xc3\xbcller <jm@x.test>\r\n"
	    "To: \"Z\xc3\xb6" "e\" <b@y.test>\r\n"
	    "Subject: Gr\xc3\xbc\xc3\x9f" "e aus K\xc3\xb6ln, =?utf-8?q?caf=C3=A9?=\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe\r\n";
	Run *r = run_new();
	SmtpTx *tx = tx_new("a@x.test", seven, "b@y.test", NULL);
	const char *got;
	gboolean ascii = TRUE;

	tx->eightbit = TRUE;
	r->seven = g_bytes_new_static(seven, strlen(seven));
	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx);
	run_go(r);
	EXPECT_RCPT(done_at(r, 0), 0, 250, "250 2.0.0 queued");
	got = msg_at(r, 0);
	for (const char *p = got ? got : ""; *p; p++)
		ascii &= (guchar)*p < 0x80;
	EXPECT(got && ascii, "only 7-bit bytes arrive:\n%s", got ? got : "(none)");
	if (got) {
		GMimeStream *st = g_mime_stream_mem_new_with_buffer(got, strlen(got));
		GMimeParser *pa = g_mime_parser_new_with_stream(st);
		GMimeMessage *m = g_mime_parser_construct_message(pa, NULL);
		InternetAddress *from = m ? internet_address_list_get_address(
		    g_mime_message_get_from(m), 0) : NULL;
		InternetAddress *to = m ? internet_address_list_get_address(
		    g_mime_message_get_to(m), 0) : NULL;
		GMimeObject *body = m ? g_mime_message_get_body(m) : NULL;
		char *text = body && GMIME_IS_TEXT_PART(body) ?
		    g_mime_text_part_get_text(GMIME_TEXT_PART(body)) : NULL;

		EXPECT(from && g_strcmp0(internet_address_get_name(from), "Jürgen Müller") == 0 &&
		    g_strcmp0(internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(from)),
		    "jm@x.test") == 0, "the From name decodes back: \"%s\"",
		    from ? internet_address_get_name(from) : "(none)");
		EXPECT(to && g_strcmp0(internet_address_get_name(to), "Zöe") == 0,
		    "the To name decodes back: \"%s\"", to ? internet_address_get_name(to) : "");
		EXPECT(m && g_strcmp0(g_mime_message_get_subject(m), "Grüße aus Köln, café") == 0,
		    "the Subject decodes back: \"%s\"", m ? g_mime_message_get_subject(m) : "");
		EXPECT(text && g_str_has_prefix(text, "Grüße"), "the body is kept: \"%s\"", text);
		g_free(text);
		g_clear_object(&m);
		g_object_unref(pa);
		g_object_unref(st);
	}
	EXPECT_END(r, SMTP_END_QUIT);
	run_free(r);
}

/* DSN offered (RFC 3461): RCPT carries NOTIFY= and ORCPT= in xtext, MAIL
 * carries RET= and ENVID= in xtext; not offered: none of them. */
static void
test_dsn_parameters(void)
{
	static const char *const dsn[] = { GREET,
		"250-srv.test\r\n250-PIPELINING\r\n250-DSN\r\n250 SIZE 10000000\r\n", OK_MAIL, OK_RCPT,
		OK_RCPT, OK_RCPT, GO_DATA, OK_QUEUED, BYE, NULL };
	static const char *const nodsn[] = { GREET, EHLO_PIPE, OK_MAIL, OK_RCPT, OK_RCPT,
		OK_RCPT, GO_DATA, OK_QUEUED, BYE, NULL };
	const char *const *scripts[] = { dsn, nodsn };

	for (guint k = 0; k < 2; k++) {
		Run *r = run_new();
		SmtpTx *tx = tx_new("a@x.test", BODY1, "b@y.test", "c@y.test", "e@y.test", NULL);
		SmtpRcpt *b = tx->rcpts->pdata[0], *c = tx->rcpts->pdata[1], *e = tx->rcpts->pdata[2];

		tx->envid = "env+id=1 x";
		tx->ret = MAIL_RET_HDRS;
		b->notify = MAIL_NOTIFY_SUCCESS | MAIL_NOTIFY_FAILURE;
		b->orcpt = "rfc822;o+1=x@y.test";
		c->notify = MAIL_NOTIFY_NEVER;
		e->notify = MAIL_NOTIFY_FAILURE | MAIL_NOTIFY_DELAY;
		e->orcpt = "rfc822;plain@y.test";
		run_scripts(r, scripts[k], NULL);
		g_ptr_array_add(r->addrs, addr_local(r->srv->port));
		run_add(r, tx);
		run_go(r);
		if (k == 0)
			EXPECT_CMDS(r, 0, "EHLO client.test",
			    "MAIL FROM:<a@x.test> SIZE={S1} RET=HDRS ENVID=env+2Bid+3D1+20x",
			    "RCPT TO:<b@y.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;o+2B1+3Dx@y.test",
			    "RCPT TO:<c@y.test> NOTIFY=NEVER",
			    "RCPT TO:<e@y.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;plain@y.test",
			    "DATA", "QUIT");
		else
			EXPECT_CMDS(r, 0, "EHLO client.test", "MAIL FROM:<a@x.test> SIZE={S1}",
			    "RCPT TO:<b@y.test>", "RCPT TO:<c@y.test>", "RCPT TO:<e@y.test>", "DATA",
			    "QUIT");
		EXPECT_RCPT(done_at(r, 0), 0, 250, "250 2.0.0 queued");
		EXPECT_END(r, SMTP_END_QUIT);
		run_free(r);
	}
}

/* RET=FULL, and BODY=8BITMIME when the server offers 8BITMIME. */
static void
test_ret_full_8bitmime(void)
{
	static const char *const script[] = { GREET,
		"250-srv.test\r\n250-PIPELINING\r\n250-DSN\r\n250-8BITMIME\r\n250 SIZE\r\n", OK_MAIL,
		OK_RCPT, GO_DATA, OK_QUEUED, BYE, NULL };
	Run *r = run_new();
	SmtpTx *tx = tx_new("a@x.test", BODY1, "b@y.test", NULL);

	tx->ret = MAIL_RET_FULL;
	tx->eightbit = TRUE;
	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx);
	run_go(r);
	EXPECT_CMDS(r, 0, "EHLO client.test",
	    "MAIL FROM:<a@x.test> SIZE={S1} BODY=8BITMIME RET=FULL", "RCPT TO:<b@y.test>", "DATA",
	    "QUIT");
	EXPECT(r->sevens == 0, "no 7-bit conversion asked for");
	EXPECT_MSG(r, 0, BODY1);
	run_free(r);
}

/* An 8-bit message, a server without 8BITMIME and no 7-bit form: 554 for
 * every recipient, nothing sent, the next message goes. */
static void
test_8bit_not_convertible(void)
{
	static const char *const script[] = { GREET, "250-srv.test\r\n250 PIPELINING\r\n",
		OK_MAIL, OK_RCPT, GO_DATA, OK_QUEUED, BYE, NULL };
	Run *r = run_new();
	SmtpTx *tx = tx_new("a@x.test", BODY1, "b@y.test", "c@y.test", NULL);

	tx->eightbit = TRUE;
	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx);
	run_add(r, tx_new("a@x.test", BODY2, "d@y.test", NULL));
	run_go(r);
	EXPECT(r->sevens == 1, "to_7bit asked once (got %u)", r->sevens);
	EXPECT_RCPT(done_at(r, 0), 0, 554, "554 5.6.3");
	EXPECT_RCPT(done_at(r, 0), 1, 554, "554 5.6.3");
	EXPECT_RCPT(done_at(r, 1), 0, 250, "250 2.0.0 queued");
	EXPECT(r->srv->msgs->len == 1, "only the second message went");
	EXPECT_MSG(r, 0, BODY2);
	EXPECT_END(r, SMTP_END_QUIT);
	run_free(r);
}

/* RFC 1870: SIZE 100 and a 1 KB message: 552 at once, MAIL never sent; a
 * message that fits goes on the same connection. */
static void
test_size_limit(void)
{
	static const char *const script[] = { GREET,
		"250-srv.test\r\n250-PIPELINING\r\n250 SIZE 100\r\n", OK_MAIL, OK_RCPT, GO_DATA,
		OK_QUEUED, BYE, NULL };
	Run *r = run_new();
	char *big = g_strnfill(1024, 'x');

	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", big, "b@y.test", "c@y.test", NULL));
	run_add(r, tx_new("a@x.test", "Subject: small\r\n\r\nhi\r\n", "d@y.test", NULL));
	run_go(r);
	EXPECT_CMDS(r, 0, "EHLO client.test", "MAIL FROM:<a@x.test> SIZE=22", "RCPT TO:<d@y.test>",
	    "DATA", "QUIT");
	EXPECT_RCPT(done_at(r, 0), 0, 552, "552 5.3.4");
	EXPECT_RCPT(done_at(r, 0), 1, 552, "552 5.3.4");
	EXPECT_RCPT(done_at(r, 1), 0, 250, "250 2.0.0 queued");
	EXPECT_END(r, SMTP_END_QUIT);
	g_free(big);
	run_free(r);
}

/* RFC 1870 and RFC 5321 2.2.1: no SIZE= parameter to a server that did not
 * offer SIZE (a server that does not know it may refuse the MAIL with 555,
 * and a 5xx to the first MAIL holds every recipient). */
static void
test_no_size_parameter_unless_offered(void)
{
	static const char *const script[] = { GREET, "250-srv.test\r\n250 PIPELINING\r\n",
		OK_MAIL, OK_RCPT, GO_DATA, OK_QUEUED, BYE, NULL };
	Run *r;

	r = run_new();
	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", NULL));
	run_go(r);
	EXPECT_CMDS(r, 0, "EHLO client.test", "MAIL FROM:<a@x.test>", "RCPT TO:<b@y.test>", "DATA",
	    "QUIT");
	run_free(r);
}

/* A 421 reply to RSET (after a failed transaction): LOST, nothing more. */
static void
test_rset_refused(void)
{
	static const char *const script[] = { GREET, EHLO_PIPE, OK_MAIL, OK_RCPT, GO_DATA,
		"451 4.3.0 error\r\n", "421 4.3.2 shutting down\r\n", NULL };
	Run *r = run_new();

	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", NULL));
	run_add(r, tx_new("a@x.test", BODY2, "d@y.test", NULL));
	run_go(r);
	EXPECT_RCPT(done_at(r, 0), 0, 451, "451 4.3.0 error");
	EXPECT(r->nexts == 1, "no second transaction asked for (nexts %u)", r->nexts);
	EXPECT_END(r, SMTP_END_LOST);
	run_free(r);
}

/* The server never answers QUIT: the session still ends, QUIT, after
 * SMTP_CLIENT_QUIT_WAIT at most. */
static void
test_quit_unanswered(void)
{
	static const char *const script[] = { GREET, EHLO_PIPE, OK_MAIL, OK_RCPT, GO_DATA,
		OK_QUEUED, NULL };
	Run *r = run_new();

	run_scripts(r, script, NULL);
	g_ptr_array_add(r->addrs, addr_local(r->srv->port));
	run_add(r, tx_new("a@x.test", BODY1, "b@y.test", NULL));
	run_go(r);
	EXPECT_RCPT(done_at(r, 0), 0, 250, "250 2.0.0 queued");
	EXPECT_END(r, SMTP_END_QUIT);
	EXPECT(run_seconds(r) <= SMTP_CLIENT_QUIT_WAIT + 1.0, "within the QUIT wait (%.2f s)",
	    run_seconds(r));
	run_free(r);
}

int
main(void)
{
	static const CuTest tests[] = {
		{ "PIPELINING: MAIL, RCPT x2, DATA in one go; 250 after the data",
		    test_pipelined_one_message },
		{ "--debug: each state change logged, connect to done", test_transitions_logged },
		{ "no PIPELINING: one command per reply", test_lockstep_one_message },
		{ "EHLO answered by a bare 250: no keywords", test_ehlo_bare_250 },
		{ "greeting, EHLO and 354 replies cut into pieces with pauses",
		    test_split_multiline_replies },
		{ "RCPT 550, 250 and 451", test_rcpt_refused_one },
		{ "every RCPT refused (pipelined): no data, RSET, next message",
		    test_rcpt_all_refused_pipelined },
		{ "every RCPT refused, yet 354: only the end of data", test_rcpt_all_refused_354 },
		{ "every RCPT refused (no pipelining): no DATA, RSET", test_rcpt_all_refused_lockstep },
		{ "451 to the end of data", test_data_end_451 },
		{ "DATA refused", test_data_refused },
		{ "a 2xx to DATA is no delivery", test_data_2xx_is_no_delivery },
		{ "two messages on one connection, no RSET between", test_two_messages },
		{ "503 to the second MAIL: AGAIN, single, no verdicts, QUIT", test_second_mail_503 },
		{ "503 to the second MAIL without pipelining", test_second_mail_503_lockstep },
		{ "452 to the second MAIL: AGAIN, not single", test_second_mail_452 },
		{ "second MAIL refused, then the connection closed: AGAIN",
		    test_second_mail_refused_then_closed },
		{ "reused connection lost before the MAIL reply: AGAIN",
		    test_reused_connection_lost_before_mail_reply },
		{ "first MAIL 550: every recipient 550", test_first_mail_550 },
		{ "first MAIL 451 without pipelining: no RCPT", test_first_mail_451_lockstep },
		{ "dot-stuffing, LF to CR LF, CR LF . CR LF", test_dot_stuffing },
		{ "dot-stuffing: a lone dot, dots only", test_dot_stuffing_edges },
		{ "an empty body: just the end of data", test_empty_body },
		{ "closed after the data: 421, LOST", test_closed_after_data },
		{ "closed while the message is written: 4xx, LOST, no SIGPIPE",
		    test_closed_mid_data },
		{ "no reply within timeout = 1: 421, LOST in about 1 s", test_reply_timeout },
		{ "no greeting: next address", test_greeting_timeout_next_address },
		{ "garbage reply: 421, LOST", test_garbage_reply },
		{ "garbage greeting: UNREACHABLE", test_garbage_greeting },
		{ "554 greeting: UNREACHABLE with the reply", test_greeting_554 },
		{ "connection refused, then the second address", test_refused_then_second_address },
		{ "every address refused: UNREACHABLE", test_all_refused },
		{ "no address: UNREACHABLE", test_no_address },
		{ "tls = encrypt without STARTTLS: REFUSED", test_tls_required_not_offered },
		{ "tls = encrypt without STARTTLS: QUIT reaches the server",
		    test_tls_required_quit_sent },
		{ "STARTTLS: EHLO again, transaction inside TLS, injected plaintext ignored",
		    test_starttls },
		{ "STARTTLS: the plaintext EHLO offer is forgotten",
		    test_starttls_forgets_plaintext_offer },
		{ "tls = verify, self-signed: no transaction at all", test_starttls_verify_fails },
		{ "tls = may, 454 to STARTTLS: plaintext", test_starttls_may_454 },
		{ "tls = may, handshake fails: new plaintext connection",
		    test_starttls_may_handshake_fails },
		{ "AUTH PLAIN inside TLS", test_auth_plain },
		{ "AUTH LOGIN inside TLS", test_auth_login },
		{ "AUTH never in the clear", test_auth_never_in_clear },
		{ "AUTH refused", test_auth_refused },
		{ "EHLO refused: HELO, no extensions, 7-bit form", test_helo_fallback },
		{ "no 8BITMIME: 8-bit header fields RFC 2047-encoded too",
		    test_8bit_headers_encoded },
		{ "DSN parameters only when offered, in xtext", test_dsn_parameters },
		{ "RET=FULL and BODY=8BITMIME", test_ret_full_8bitmime },
		{ "8-bit, no 8BITMIME, no 7-bit form: 554", test_8bit_not_convertible },
		{ "SIZE 100 and 1 KB: 552 without MAIL", test_size_limit },
		{ "no SIZE= unless SIZE offered", test_no_size_parameter_unless_offered },
		{ "421 to RSET: LOST", test_rset_refused },
		{ "QUIT never answered: ends after the QUIT wait", test_quit_unanswered },
		{ NULL, NULL },
	};

	signal(SIGPIPE, SIG_IGN);     /* the scripted server's own writes */
	g_mime_init();                /* for reading back what the server got */
	return cu_run("smtp_client", tests);
}
