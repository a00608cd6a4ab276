/* fuzz_smtp_client.c - libFuzzer target for the SMTP client's session
 * (gateway/client/smtp_client*.c) driven by a hostile server.
 *
 * The first byte chooses the client's settings: bit 0 tls = may (a STARTTLS
 * the server answers 220 to meets garbage: the handshake fails and the client
 * connects again in plaintext), bit 1 two messages to send (connection reuse),
 * bit 2 the first is 8-bit (a server without 8BITMIME gets it converted or
 * refused), bit 3 two recipients each.  The rest is everything the server
 * sends on each connection, cut into TCP segments at every '\f' (written one
 * turn of the event loop apart); then the server half-closes.  The server
 * reads and drops whatever the client sends.
 *
 * What callers rely on, checked after every input: the session ends exactly
 * once, after every transaction it took was handed back; a transaction handed
 * back "done" has a verdict (a reply code 200..599 and its text) for every
 * recipient, one handed back "again" none; a 2xx verdict only when the
 * server's bytes held a 354 (the data was asked for) - never a delivery the
 * server did not take; at most two connections (the plaintext retry after a
 * failed handshake).  Anything else aborts.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "queue/queue.h"
#include "client/smtp_client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
	struct bufferevent *bev;
	struct event *tick;     /* writes the next piece */
	guint piece;            /* the next piece to write */
} Conn;

static struct event_base *base;
static struct evconnlistener *listener;
static struct sockaddr_in addr;
static SSL_CTX *ssl;

/* The current input. */
static GPtrArray *pieces;      /* GBytes * */
static GPtrArray *conns;       /* Conn * */
static GPtrArray *txs;         /* SmtpTx *, to hand out */
static guint handed, returned, ends;
static gboolean has_354;

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

static void
conn_free(Conn *c)
{
	if (c->bev)
		bufferevent_free(c->bev);
	event_free(c->tick);
	g_free(c);
}

static void
on_server_read(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);

	evbuffer_drain(in, evbuffer_get_length(in));
}

static void
on_server_event(struct bufferevent *bev, short what, void *arg)
{
	Conn *c = arg;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
}

static void
write_next(evutil_socket_t fd, short what, void *arg)
{
	Conn *c = arg;

	if (!c->bev)
		return;
	if (c->piece >= pieces->len) {
		shutdown(bufferevent_getfd(c->bev), SHUT_WR);
		return;
	}
	{
		GBytes *b = pieces->pdata[c->piece++];
		gsize n;
		const void *p = g_bytes_get_data(b, &n);

		if (n > 0) {
			/* Straight to the socket: one piece, one segment. */
			ssize_t w = send(bufferevent_getfd(c->bev), p, n, MSG_NOSIGNAL);

			(void)w;
		}
	}
	event_active(c->tick, EV_TIMEOUT, 0);
}

static void
on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
    void *arg)
{
	Conn *c = g_new0(Conn, 1);

	CHECK(conns->len < 2);
	c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(c->bev, on_server_read, NULL, on_server_event, c);
	bufferevent_enable(c->bev, EV_READ);
	c->tick = evtimer_new(base, write_next, c);
	g_ptr_array_add(conns, c);
	event_active(c->tick, EV_TIMEOUT, 0);
}

static SmtpTx *
op_next(gpointer data, SmtpSession *s)
{
	CHECK(ends == 0);
	if (handed >= txs->len)
		return NULL;
	return txs->pdata[handed++];
}

static void
op_tx_done(gpointer data, SmtpSession *s, SmtpTx *tx)
{
	CHECK(ends == 0);
	returned++;
	CHECK(returned <= handed);
	for (guint i = 0; i < tx->rcpts->len; i++) {
		SmtpRcpt *r = tx->rcpts->pdata[i];

		if (tx->result == SMTP_TX_DONE) {
			CHECK(r->code >= 200 && r->code <= 599 && r->reply);
			CHECK(r->code / 100 != 2 || has_354);
		} else {
			CHECK(r->code == 0);
		}
	}
}

static GBytes *
op_to_7bit(gpointer data, SmtpTx *tx, char **why)
{
	*why = g_strdup("not in the fuzzer");
	return NULL;
}

static void
op_end(gpointer data, SmtpSession *s, SmtpEnd how, const char *why)
{
	CHECK(++ends == 1);
	CHECK(returned == handed);
	event_base_loopbreak(base);
}

static const SmtpSessionOps ops = { op_next, op_tx_done, op_to_7bit, op_end };

static void
setup(void)
{
	int one = 1;
	socklen_t len = sizeof addr;
	evutil_socket_t fd;

	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	memset(&addr, 0, sizeof addr);
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	listener = evconnlistener_new_bind(base, on_accept, NULL, LEV_OPT_CLOSE_ON_FREE |
	    LEV_OPT_REUSEABLE, 16, (struct sockaddr *)&addr, sizeof addr);
	CHECK(listener);
	fd = evconnlistener_get_fd(listener);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	CHECK(getsockname(fd, (struct sockaddr *)&addr, &len) == 0);
	ssl = smtp_client_tls_new(SMTP_TLS_MAY, NULL, NULL);
	CHECK(ssl);
}

static SmtpTx *
tx_new(gboolean eightbit, gboolean two)
{
	SmtpTx *tx = g_new0(SmtpTx, 1);
	static const char body[] = "From: a@x.test\r\nSubject: fuzz\r\n\r\n.dot\r\nbody\xc3\xa4\r\n";

	tx->sender = "a@x.test";
	tx->envid = "env+id";
	tx->ret = MAIL_RET_HDRS;
	tx->eightbit = eightbit;
	tx->data = g_bytes_new_static(body, sizeof body - 1);
	tx->rcpts = g_ptr_array_new();
	for (guint i = 0; i < (two ? 2u : 1u); i++) {
		SmtpRcpt *r = g_new0(SmtpRcpt, 1);

		r->address = i ? "c@y.test" : "b@y.test";
		r->notify = MAIL_NOTIFY_FAILURE;
		r->orcpt = "rfc822;b@y.test";
		g_ptr_array_add(tx->rcpts, r);
	}
	return tx;
}

static void
tx_free(SmtpTx *tx)
{
	for (guint i = 0; i < tx->rcpts->len; i++) {
		SmtpRcpt *r = tx->rcpts->pdata[i];

		g_free(r->reply);
		g_free(r);
	}
	g_ptr_array_unref(tx->rcpts);
	g_bytes_unref(tx->data);
	g_free(tx->again_reply);
	g_free(tx);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	SmtpClientConfig cfg = { 0 };
	GPtrArray *addrs, *all;
	MxAddr *a;
	guint8 flags;
	const uint8_t *p, *end;
	struct timeval limit = { 10, 0 };
	struct event *guard;

	if (size < 1 || size > 64 * 1024)
		return 0;
	if (!base)
		setup();
	flags = data[0];
	pieces = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
	for (p = data + 1, end = data + size; p <= end;) {
		const uint8_t *ff = memchr(p, '\f', (size_t)(end - p));
		const uint8_t *stop = ff ? ff : end;

		g_ptr_array_add(pieces, g_bytes_new(p, (gsize)(stop - p)));
		if (!ff)
			break;
		p = ff + 1;
	}
	has_354 = memmem(data + 1, size - 1, "354", 3) != NULL;
	conns = g_ptr_array_new_with_free_func((GDestroyNotify)conn_free);
	txs = g_ptr_array_new();
	all = g_ptr_array_new_with_free_func((GDestroyNotify)tx_free);
	g_ptr_array_add(txs, tx_new((flags & 4) != 0, (flags & 8) != 0));
	if (flags & 2)
		g_ptr_array_add(txs, tx_new(FALSE, (flags & 8) != 0));
	for (guint i = 0; i < txs->len; i++)
		g_ptr_array_add(all, txs->pdata[i]);
	handed = returned = ends = 0;

	a = g_new0(MxAddr, 1);
	a->host = g_strdup("127.0.0.1");
	memcpy(&a->sa, &addr, sizeof addr);
	a->len = sizeof addr;
	g_strlcpy(a->text, "127.0.0.1", sizeof a->text);
	addrs = g_ptr_array_new_with_free_func((GDestroyNotify)mx_addr_free);
	g_ptr_array_add(addrs, a);

	cfg.base = base;
	cfg.helo_name = "fuzz.test";
	cfg.tls = (flags & 1) ? SMTP_TLS_MAY : SMTP_TLS_NONE;
	cfg.ssl = (flags & 1) ? ssl : NULL;
	cfg.connect_timeout = 5;
	cfg.timeout = 5;

	guard = evtimer_new(base, (event_callback_fn)abort, NULL);
	evtimer_add(guard, &limit);        /* a hang is a finding */
	smtp_session_start(&cfg, addrs, &ops, NULL);
	event_base_dispatch(base);
	CHECK(ends == 1);
	event_free(guard);

	g_ptr_array_unref(conns);
	g_ptr_array_unref(pieces);
	g_ptr_array_unref(txs);
	g_ptr_array_unref(all);
	g_ptr_array_unref(addrs);
	return 0;
}
