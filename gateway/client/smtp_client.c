/* smtp_client.c - one SMTP client session (see smtp_client.h). */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <gmime/gmime.h>

#include "pg_log.h"
#include "queue/queue.h"
#include "client/smtp_client.h"
#include "smtpd/smtp_cmd.h"
#include "client/smtp_reply.h"

/* The states, named for the reply awaited in each. */
typedef enum {
	ST_CONNECT,
	ST_GREETING,
	ST_EHLO,
	ST_HELO,
	ST_STARTTLS,
	ST_HANDSHAKE,
	ST_AUTH,               /* AUTH PLAIN, or the last step of AUTH LOGIN */
	ST_AUTH_USER,          /* AUTH LOGIN: the 334 asking for the user name */
	ST_AUTH_PASS,          /* AUTH LOGIN: the 334 asking for the password */
	ST_TX,                 /* a transaction: MAIL, RCPT..., DATA, the data */
	ST_RSET,
	ST_QUIT,
	ST_DONE,
} State;

static const char *const state_names[] = {
	[ST_CONNECT] = "connect", [ST_GREETING] = "greeting", [ST_EHLO] = "EHLO",
	[ST_HELO] = "HELO", [ST_STARTTLS] = "STARTTLS", [ST_HANDSHAKE] = "TLS handshake",
	[ST_AUTH] = "AUTH", [ST_AUTH_USER] = "AUTH LOGIN user", [ST_AUTH_PASS] =
	    "AUTH LOGIN password", [ST_TX] = "transaction", [ST_RSET] = "RSET",
	[ST_QUIT] = "QUIT", [ST_DONE] = "done",
};

/* Within ST_TX: which reply is awaited. */
typedef enum {
	TX_MAIL,
	TX_RCPT,
	TX_DATA,
	TX_END,                /* the reply to the end of data */
} TxStep;

/* What the server offered in its EHLO reply. */
typedef struct {
	gboolean esmtp, pipelining, eightbit, dsn, starttls, auth_plain, auth_login;
	gboolean size_offered;  /* SIZE, with or without a limit */
	gint64 size;           /* SIZE limit, 0: none said */
} Offer;

struct SmtpSession {
	const SmtpClientConfig *cfg;
	GPtrArray *addrs;
	guint addr_i;
	const SmtpSessionOps *ops;
	gpointer data;
	struct bufferevent *bev;
	guint gen;             /* bumped when bev is replaced */
	SmtpReplyReader *reader;
	State state;
	Offer offer;
	char peer[300];
	char answered[300];    /* the last peer whose connection opened, or "" */
	gboolean tls_active;
	gboolean no_tls;       /* tls may: this address failed the handshake */
	gboolean ready;        /* got as far as a transaction once */
	gboolean refused;      /* an address refused for good */
	char *why;             /* the last failure before ready */
	guint tx_ok;           /* transactions that ended in a 250 */
	/* the transaction */
	SmtpTx *tx;
	TxStep step;
	guint rcpt_i;          /* the RCPT whose reply comes next */
	guint rcpt_sent;       /* RCPTs sent (without pipelining they go one by one) */
	gboolean mail_ok;
	gboolean abandon;      /* MAIL failed: the pipelined replies behind it mean nothing */
	GBytes *body;          /* what goes after DATA (tx->data or its 7-bit form) */
	gsize body_off;        /* how much of it is written */
	gboolean body_done;    /* and the final dot */
	gboolean awaiting_end; /* all of it has left: the reply's wait runs */
	gboolean ending;
	SmtpEnd end_how;
	char *end_why;
};

static void try_address(SmtpSession *s);
static void on_read(struct bufferevent *bev, void *arg);
static void on_write(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);
static void next_tx(SmtpSession *s);

/* ------------------------------------------------------------ state */

/* Every change of state goes through here: --debug logs it. */
static void
enter_state(SmtpSession *s, State to)
{
	if (s->state != to)
		pg_debug(NULL, "session with %s: %s -> %s", s->peer, state_names[s->state],
		    state_names[to]);
	s->state = to;
}

const char *
smtp_session_peer(const SmtpSession *s)
{
	return s->peer;
}

const char *
smtp_session_relay(const SmtpSession *s)
{
	return *s->answered ? s->answered : "none";
}

gboolean
smtp_session_tls(const SmtpSession *s)
{
	return s->tls_active;
}

/* ------------------------------------------------------------ plumbing */

static void
set_timeout(SmtpSession *s, int seconds)
{
	struct timeval tv = { seconds, 0 };

	bufferevent_set_timeouts(s->bev, &tv, &tv);
}

/* While the message goes out no reply is due: only the writing must make
 * progress.  The wait for the reply starts once the final dot has left
 * (on_write). */
static void
sending(SmtpSession *s)
{
	struct timeval tv = { s->cfg->timeout, 0 };

	bufferevent_set_timeouts(s->bev, NULL, &tv);
	bufferevent_setwatermark(s->bev, EV_WRITE, SMTP_CLIENT_PUMP_LOW, 0);
}

static void
send_line(SmtpSession *s, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void
send_line(SmtpSession *s, const char *fmt, ...)
{
	va_list ap;
	struct evbuffer *out = bufferevent_get_output(s->bev);

	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
}

static void
drop_bev(SmtpSession *s)
{
	if (s->bev && !s->tls_active && s->state != ST_HANDSHAKE && s->state != ST_TX) {
		/* A QUIT still queued gets one try (never message data). */
		struct evbuffer *out = bufferevent_get_output(s->bev);
		evutil_socket_t fd = bufferevent_getfd(s->bev);
		struct evbuffer_iovec v;

		/* Peek: the socket bufferevent keeps its output's start frozen. */
		if (fd >= 0 && evbuffer_peek(out, -1, NULL, &v, 1) >= 1 && v.iov_len > 0 &&
		    send(fd, v.iov_base, v.iov_len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
			(void)0;   /* best effort: the connection goes anyway */
	}
	if (s->bev) {
		bufferevent_free(s->bev);
		s->bev = NULL;
	}
	s->gen++;
	smtp_reply_reader_free(s->reader);
	s->reader = NULL;
	s->tls_active = FALSE;
}

static void
do_end(evutil_socket_t fd, short what, void *arg)
{
	SmtpSession *s = arg;

	s->ops->end(s->data, s, s->end_how, s->end_why);
	g_free(s->end_why);
	g_free(s->why);
	g_free(s);
}

static void
session_end(SmtpSession *s, SmtpEnd how, const char *why)
{
	if (s->ending)
		return;
	s->ending = TRUE;
	enter_state(s, ST_DONE);
	drop_bev(s);
	s->end_how = how;
	s->end_why = g_strdup(why);
	event_base_once(s->cfg->base, -1, EV_TIMEOUT, do_end, s, NULL);
}

static void
rcpt_verdict(SmtpRcpt *r, int code, const char *reply)
{
	r->code = code;
	g_free(r->reply);
	r->reply = g_strdup(reply);
}

/* The transaction is over: hand it back. */
static void
tx_finish(SmtpSession *s)
{
	SmtpTx *tx = s->tx;

	s->tx = NULL;
	if (s->body) {
		g_bytes_unref(s->body);
		s->body = NULL;
	}
	s->ops->tx_done(s->data, s, tx);
}

/* Something went wrong: before the session was ready, the next address; in
 * a transaction, its recipients without a verdict get a 4xx and the session
 * ends. */
static void
fail(SmtpSession *s, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void
fail(SmtpSession *s, const char *fmt, ...)
{
	va_list ap;
	char *what, *why;

	va_start(ap, fmt);
	what = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	why = g_strdup_printf("%s (%s, in %s)", what, s->peer, state_names[s->state]);
	g_free(what);
	if (s->bev && s->state == ST_TX && s->step == TX_END && !s->abandon) {
		/* The rest of the message must not reach the server once its
		 * recipients are deferred: a reset drops what the kernel holds. */
		struct linger lg = { 1, 0 };
		evutil_socket_t fd = bufferevent_getfd(s->bev);

		if (fd >= 0)
			setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	}
	if (s->tx && s->tx->result == SMTP_TX_AGAIN) {
		/* The refusal of a second MAIL was read; the rest does not matter. */
		tx_finish(s);
	} else if (s->tx && s->state == ST_TX && s->step == TX_MAIL && s->tx_ok > 0) {
		/* A reused connection that broke before MAIL was answered: the
		 * server never saw this transaction; a new session will do. */
		s->tx->result = SMTP_TX_AGAIN;
		s->tx->single = FALSE;
		g_free(s->tx->again_reply);
		s->tx->again_reply = g_strdup(why);
		tx_finish(s);
	} else if (s->tx) {
		for (guint i = 0; i < s->tx->rcpts->len; i++) {
			SmtpRcpt *r = s->tx->rcpts->pdata[i];

			/* A 2xx to RCPT is no verdict: only the end of data's is. */
			if (r->code == 0 || r->code / 100 == 2)
				rcpt_verdict(r, 421, why);
		}
		s->tx->result = SMTP_TX_DONE;
		tx_finish(s);
	}
	if (s->ready || s->state == ST_RSET || s->state == ST_QUIT) {
		session_end(s, s->state == ST_QUIT ? SMTP_END_QUIT : SMTP_END_LOST, why);
	} else {
		g_free(s->why);
		s->why = why;
		why = NULL;
		s->addr_i++;
		s->no_tls = FALSE;   /* the next server gets its own chance at TLS */
		try_address(s);
	}
	g_free(why);
}

/* Before the session is ready: this address will not do, for good. */
static void
refuse(SmtpSession *s, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void
refuse(SmtpSession *s, const char *fmt, ...)
{
	va_list ap;
	char *what;

	va_start(ap, fmt);
	what = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	s->refused = TRUE;
	send_line(s, "QUIT");
	fail(s, "%s", what);
	g_free(what);
}

static void
try_address(SmtpSession *s)
{
	const MxAddr *a;

	drop_bev(s);
	if (s->addr_i >= s->addrs->len) {
		session_end(s, s->refused ? SMTP_END_REFUSED : SMTP_END_UNREACHABLE,
		    s->why ? s->why : "no address to connect to");
		return;
	}
	a = s->addrs->pdata[s->addr_i];
	enter_state(s, ST_CONNECT);   /* logged with the server it leaves */
	if (a->sa.ss_family == AF_INET6)
		g_snprintf(s->peer, sizeof s->peer, "%s[%s]:%u", a->host, a->text,
		    ntohs(((const struct sockaddr_in6 *)&a->sa)->sin6_port));
	else
		g_snprintf(s->peer, sizeof s->peer, "%s[%s]:%u", a->host, a->text,
		    ntohs(((const struct sockaddr_in *)&a->sa)->sin_port));
	memset(&s->offer, 0, sizeof s->offer);
	s->reader = smtp_reply_reader_new();
	s->bev = bufferevent_socket_new(s->cfg->base, -1, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(s->bev, on_read, on_write, on_event, s);
	bufferevent_setwatermark(s->bev, EV_WRITE, SMTP_CLIENT_PUMP_LOW, 0);
	set_timeout(s, s->cfg->connect_timeout);
	if (bufferevent_socket_connect(s->bev, (const struct sockaddr *)&a->sa,
	    (int)a->len) != 0) {
		fail(s, "cannot connect: %s", g_strerror(errno));
		return;
	}
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

SmtpSession *
smtp_session_start(const SmtpClientConfig *cfg, GPtrArray *addrs, const SmtpSessionOps *ops,
    gpointer data)
{
	SmtpSession *s = g_new0(SmtpSession, 1);

	s->cfg = cfg;
	s->addrs = addrs;
	s->ops = ops;
	s->data = data;
	try_address(s);
	return s;
}

/* ------------------------------------------------------------ handshake */

static void
parse_ehlo(SmtpSession *s, const GString *text)
{
	char **lines = g_strsplit(text->str, "\n", -1);

	s->offer.esmtp = TRUE;
	/* The first line is the server's name ("250" alone gives no line). */
	for (guint i = 1; lines[0] && lines[i]; i++) {
		char *kw = lines[i], *sp;

		g_strstrip(kw);
		sp = strpbrk(kw, " =");
		if (sp)
			*sp++ = '\0';
		if (g_ascii_strcasecmp(kw, "PIPELINING") == 0)
			s->offer.pipelining = TRUE;
		else if (g_ascii_strcasecmp(kw, "8BITMIME") == 0)
			s->offer.eightbit = TRUE;
		else if (g_ascii_strcasecmp(kw, "DSN") == 0)
			s->offer.dsn = TRUE;
		else if (g_ascii_strcasecmp(kw, "STARTTLS") == 0)
			s->offer.starttls = TRUE;
		else if (g_ascii_strcasecmp(kw, "SIZE") == 0) {
			s->offer.size_offered = TRUE;
			s->offer.size = sp ? g_ascii_strtoll(sp, NULL, 10) : 0;
		}
		else if (g_ascii_strcasecmp(kw, "AUTH") == 0 && sp) {
			char **mechs = g_strsplit_set(sp, " =", -1);

			for (guint j = 0; mechs[j]; j++) {
				if (g_ascii_strcasecmp(mechs[j], "PLAIN") == 0)
					s->offer.auth_plain = TRUE;
				else if (g_ascii_strcasecmp(mechs[j], "LOGIN") == 0)
					s->offer.auth_login = TRUE;
			}
			g_strfreev(mechs);
		}
	}
	if (s->offer.size < 0)
		s->offer.size = 0;
	g_strfreev(lines);
}

static void
send_b64(SmtpSession *s, const char *prefix, const char *data, gsize len)
{
	char *b64 = g_base64_encode((const guchar *)data, len);

	send_line(s, "%s%s", prefix, b64);
	g_free(b64);
}

static void
start_tls(SmtpSession *s)
{
	const MxAddr *a = s->addrs->pdata[s->addr_i];
	struct in6_addr any;
	struct bufferevent *tls;
	SSL *ssl = SSL_new(s->cfg->ssl);

	if (!ssl) {
		fail(s, "cannot start TLS: out of memory");
		return;
	}
	if (inet_pton(AF_INET, a->host, &any) != 1 && inet_pton(AF_INET6, a->host, &any) != 1) {
		SSL_set_tlsext_host_name(ssl, a->host);
		if (s->cfg->tls == SMTP_TLS_VERIFY)
			SSL_set1_host(ssl, a->host);
	} else if (s->cfg->tls == SMTP_TLS_VERIFY) {
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), a->host);
	}
	/* Whatever came after the 220 came in plaintext: never believe it. */
	evbuffer_drain(bufferevent_get_input(s->bev),
	    evbuffer_get_length(bufferevent_get_input(s->bev)));
	tls = bufferevent_openssl_filter_new(s->cfg->base, s->bev, ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (!tls) {
		SSL_free(ssl);
		fail(s, "cannot start TLS");
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(tls, 1);
	s->bev = tls;
	s->gen++;
	smtp_reply_reader_free(s->reader);
	s->reader = smtp_reply_reader_new();
	enter_state(s, ST_HANDSHAKE);
	bufferevent_setcb(s->bev, on_read, on_write, on_event, s);
	bufferevent_setwatermark(s->bev, EV_WRITE, SMTP_CLIENT_PUMP_LOW, 0);
	set_timeout(s, s->cfg->timeout);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

/* After EHLO (or HELO): STARTTLS, AUTH, or ready. */
static void
after_hello(SmtpSession *s)
{
	SmtpTlsMode mode = s->cfg->tls;

	if (!s->tls_active && mode != SMTP_TLS_NONE && !s->no_tls) {
		if (s->offer.starttls) {
			send_line(s, "STARTTLS");
			enter_state(s, ST_STARTTLS);
			return;
		}
		if (mode >= SMTP_TLS_ENCRYPT) {
			refuse(s, "TLS is required ([delivery] tls = %s) but the server does not "
			    "offer STARTTLS", mode == SMTP_TLS_VERIFY ? "verify" : "encrypt");
			return;
		}
	}
	if (s->cfg->auth_user) {
		if (!s->tls_active) {
			fail(s, "not sending the AUTH password without TLS");
			return;
		}
		if (s->offer.auth_plain) {
			GString *p = g_string_new(NULL);

			g_string_append_c(p, '\0');
			g_string_append(p, s->cfg->auth_user);
			g_string_append_c(p, '\0');
			g_string_append(p, s->cfg->auth_password);
			send_b64(s, "AUTH PLAIN ", p->str, p->len);
			memset(p->str, 0, p->len);
			g_string_free(p, TRUE);
			enter_state(s, ST_AUTH);
			return;
		}
		if (s->offer.auth_login) {
			send_line(s, "AUTH LOGIN");
			enter_state(s, ST_AUTH_USER);
			return;
		}
		fail(s, "the server offers neither AUTH PLAIN nor AUTH LOGIN");
		return;
	}
	s->ready = TRUE;
	next_tx(s);
}

/* ------------------------------------------------------------ transactions */

/* Write the message while the server takes it: whole lines, CR LF ends,
 * dot-stuffed (RFC 5321 4.5.2), until SMTP_CLIENT_PUMP_HIGH bytes wait in
 * the output; the write callback calls again once it is down to
 * SMTP_CLIENT_PUMP_LOW.  At the end the final dot. */
static void
pump(SmtpSession *s)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	gsize n;
	const char *p = g_bytes_get_data(s->body, &n);

	while (!s->body_done && evbuffer_get_length(out) < SMTP_CLIENT_PUMP_HIGH) {
		const char *start, *nl;
		gsize len, line;

		if (s->body_off >= n) {
			if (n > 0 && p[n - 1] != '\n')
				evbuffer_add(out, "\r\n", 2);
			evbuffer_add(out, ".\r\n", 3);
			s->body_done = TRUE;
			break;
		}
		start = p + s->body_off;
		nl = memchr(start, '\n', n - s->body_off);
		len = nl ? (gsize)(nl - start) : n - s->body_off;
		line = len > 0 && nl && start[len - 1] == '\r' ? len - 1 : len;
		if (line > 0 && start[0] == '.')
			evbuffer_add(out, ".", 1);
		evbuffer_add(out, start, line);
		if (nl)
			evbuffer_add(out, "\r\n", 2);
		s->body_off += len + (nl ? 1 : 0);
	}
}

static void
on_write(struct bufferevent *bev, void *arg)
{
	SmtpSession *s = arg;

	if (s->state != ST_TX || s->step != TX_END)
		return;
	if (!s->body_done)
		pump(s);
	if (s->body_done && !s->awaiting_end) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
			/* Called again once all of it has left. */
			bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
			return;
		}
		s->awaiting_end = TRUE;
		set_timeout(s, 2 * s->cfg->timeout);
	}
}

/* The message's size as RFC 1870 counts it: as sent, with CR LF line ends,
 * without the dot-stuffing and the final dot (what pump writes, less those). */
static gint64
wire_size(GBytes *data)
{
	gsize n;
	const char *p = g_bytes_get_data(data, &n), *at = p, *end;
	gint64 size = (gint64)n;

	if (n == 0)
		return 0;
	end = p + n;
	while ((at = memchr(at, '\n', (size_t)(end - at)))) {
		if (at == p || at[-1] != '\r')
			size++;    /* a bare LF goes out as CR LF */
		at++;
	}
	if (end[-1] != '\n')
		size += 2;     /* the last line gets its CR LF */
	return size;
}

static void
send_rcpt(SmtpSession *s)
{
	const SmtpRcpt *r = s->tx->rcpts->pdata[s->rcpt_sent++];
	GString *cmd = g_string_new(NULL);

	g_string_printf(cmd, "RCPT TO:<%s>", r->address);
	if (s->offer.dsn && r->notify) {
		g_string_append(cmd, " NOTIFY=");
		if (r->notify & QUEUE_NOTIFY_NEVER)
			g_string_append(cmd, "NEVER");
		else {
			const char *sep = "";

			if (r->notify & QUEUE_NOTIFY_SUCCESS) {
				g_string_append(cmd, "SUCCESS");
				sep = ",";
			}
			if (r->notify & QUEUE_NOTIFY_FAILURE) {
				g_string_append_printf(cmd, "%sFAILURE", sep);
				sep = ",";
			}
			if (r->notify & QUEUE_NOTIFY_DELAY)
				g_string_append_printf(cmd, "%sDELAY", sep);
		}
	}
	if (s->offer.dsn && r->orcpt) {
		const char *semi = strchr(r->orcpt, ';');

		if (semi) {
			char *x = smtp_xtext_encode(semi + 1);

			g_string_append_printf(cmd, " ORCPT=%.*s;%s", (int)(semi - r->orcpt),
			    r->orcpt, x);
			g_free(x);
		}
	}
	send_line(s, "%s", cmd->str);
	g_string_free(cmd, TRUE);
}

/* ------------------------------------------------------------ 7 bits */

static gboolean
has_8bit(const guint8 *p, gsize n)
{
	for (gsize i = 0; i < n; i++)
		if (p[i] >= 0x80)
			return TRUE;
	return FALSE;
}

/* The text of a raw header value holding 8-bit bytes, unfolded, as UTF-8
 * (bytes that are not UTF-8 read as windows-1252). */
static char *
header_utf8(const char *raw)
{
	GString *o = g_string_new(NULL);
	char *u;

	for (const char *p = raw; *p; p++)
		if (*p != '\r' && *p != '\n')
			g_string_append_c(o, *p);
	if (g_utf8_validate(o->str, (gssize)o->len, NULL))
		return g_string_free(o, FALSE);
	u = g_convert(o->str, (gssize)o->len, "UTF-8", "WINDOWS-1252", NULL, NULL, NULL);
	if (!u)
		u = g_utf8_make_valid(o->str, (gssize)o->len);
	g_string_free(o, TRUE);
	return u;
}

/* Header fields GMime's formatters read as structure (addresses, parameters,
 * ids): their text goes to the formatter as it is.  Any other field is
 * unstructured text (RFC 5322 3.2.5), whose encoded-words are decoded here
 * first, so that the formatter encodes the whole text once. */
static const char *const structured_fields[] = {
	"From", "To", "Cc", "Bcc", "Reply-To", "Sender", "Resent-From", "Resent-To",
	"Resent-Cc", "Resent-Bcc", "Resent-Sender", "Return-Path", "Disposition-Notification-To",
	"Content-Type", "Content-Disposition", "Content-Transfer-Encoding", "Content-ID",
	"MIME-Version", "Received", "Message-ID", "References", "In-Reply-To", "Date",
};

static gboolean
is_structured(const char *name)
{
	for (gsize i = 0; i < G_N_ELEMENTS(structured_fields); i++)
		if (g_ascii_strcasecmp(name, structured_fields[i]) == 0)
			return TRUE;
	return FALSE;
}

/* Unstructured text with its encoded-words decoded one at a time, the
 * blanks between two words dropped (RFC 2047 6.2): GMime 3.2.13 decodes a
 * run of base64 words wrongly when one ends in '=' (GMime issue #133), and
 * a word followed by new 8-bit text would lose the blank between them once
 * that text is encoded too. */
static char *
words_decoded(const char *text)
{
	GString *out = g_string_new(NULL);
	const char *p = text;
	gboolean prev_word = FALSE;

	while (*p) {
		const char *blank = p, *tok;
		gsize nb, nt;
		char *t, *dec = NULL;
		gboolean word;

		while (*p == ' ' || *p == '\t')
			p++;
		nb = (gsize)(p - blank);
		tok = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
		nt = (gsize)(p - tok);
		if (nt == 0) {
			g_string_append_len(out, blank, (gssize)nb);
			break;
		}
		t = g_strndup(tok, nt);
		word = nt >= 8 && g_str_has_prefix(t, "=?") && g_str_has_suffix(t, "?=");
		if (word) {
			dec = g_mime_utils_header_decode_text(NULL, t);
			word = dec && strcmp(dec, t) != 0;
		}
		if (!(word && prev_word))
			g_string_append_len(out, blank, (gssize)nb);
		g_string_append(out, word ? dec : t);
		prev_word = word;
		g_free(dec);
		g_free(t);
	}
	return g_string_free(out, FALSE);
}

/* Every header field of obj holding 8-bit bytes written again by GMime's
 * formatter for its kind, as RFC 2047 words in utf-8 (unstructured text,
 * display names) or RFC 2231 parameters; then obj's parts, to
 * SMTP_CLIENT_MIME_DEPTH levels (GMime's parser nests no deeper). */
static void
headers_7bit(GMimeObject *obj, int depth)
{
	GMimeHeaderList *hl = obj ? g_mime_object_get_header_list(obj) : NULL;
	int n = hl ? g_mime_header_list_get_count(hl) : 0;

	if (!obj || depth > SMTP_CLIENT_MIME_DEPTH)
		return;
	for (int i = 0; i < n; i++) {
		GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
		const char *raw = g_mime_header_get_raw_value(h);
		char *text;

		if (!raw || !has_8bit((const guint8 *)raw, strlen(raw)))
			continue;
		text = header_utf8(raw);
		if (!is_structured(g_mime_header_get_name(h))) {
			char *dec = words_decoded(text);

			g_free(text);
			text = dec;
		}
		g_mime_header_set_value(h, NULL, text, "utf-8");
		g_free(text);
	}
	if (GMIME_IS_MESSAGE(obj)) {
		headers_7bit(g_mime_message_get_mime_part(GMIME_MESSAGE(obj)), depth + 1);
	} else if (GMIME_IS_MULTIPART(obj)) {
		for (int i = 0; i < g_mime_multipart_get_count(GMIME_MULTIPART(obj)); i++)
			headers_7bit(g_mime_multipart_get_part(GMIME_MULTIPART(obj), i), depth + 1);
	} else if (GMIME_IS_MESSAGE_PART(obj)) {
		headers_7bit(GMIME_OBJECT(g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj))),
		    depth + 1);
	}
}

/* The 7-bit form a server without 8BITMIME gets of msg, which the owner's
 * to_7bit made (it converts the body): header fields that still hold 8-bit
 * bytes (a raw UTF-8 From: or Subject:) RFC 2047-encoded too; NULL and *why
 * when the message cannot be parsed or 8-bit bytes remain. */
static GBytes *
message_7bit(GBytes *msg, char **why)
{
	static gsize gmime_ready;
	gsize n;
	const guint8 *p = g_bytes_get_data(msg, &n);
	const guint8 *lf;
	GMimeStream *in, *out;
	GMimeParser *parser;
	GMimeMessage *m;
	GMimeFormatOptions *format;
	GByteArray *buf;
	GBytes *b;

	if (!has_8bit(p, n))
		return g_bytes_ref(msg);
	if (g_once_init_enter(&gmime_ready)) {
		g_mime_init();   /* counted: the owner may have done it already */
		g_once_init_leave(&gmime_ready, 1);
	}
	in = g_mime_stream_mem_new_with_buffer((const char *)p, n);
	parser = g_mime_parser_new_with_stream(in);
	m = g_mime_parser_construct_message(parser, NULL);
	g_object_unref(parser);
	g_object_unref(in);
	if (!m) {
		*why = g_strdup("its 7-bit form cannot be parsed as MIME");
		return NULL;
	}
	headers_7bit(GMIME_OBJECT(m), 0);
	format = g_mime_format_options_new();
	lf = memchr(p, '\n', n);
	g_mime_format_options_set_newline_format(format, lf && lf > p && lf[-1] == '\r' ?
	    GMIME_NEWLINE_FORMAT_DOS : GMIME_NEWLINE_FORMAT_UNIX);
	out = g_mime_stream_mem_new();
	g_mime_object_write_to_stream(GMIME_OBJECT(m), format, out);
	g_mime_format_options_free(format);
	g_object_unref(m);
	buf = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(out));
	if (has_8bit(buf->data, buf->len)) {
		*why = g_strdup("8-bit bytes remain in its 7-bit form");
		g_object_unref(out);
		return NULL;
	}
	b = g_bytes_new(buf->data, buf->len);
	g_object_unref(out);
	return b;
}

/* Every recipient gets the same verdict, the transaction is over. */
static void
tx_all(SmtpSession *s, int code, const char *reply)
{
	for (guint i = 0; i < s->tx->rcpts->len; i++)
		rcpt_verdict(s->tx->rcpts->pdata[i], code, reply);
	s->tx->result = SMTP_TX_DONE;
	tx_finish(s);
}

static void
start_tx(SmtpSession *s)
{
	SmtpTx *tx = s->tx;
	GString *cmd;
	gint64 size;

	s->body = g_bytes_ref(tx->data);
	if (tx->eightbit && !s->offer.eightbit) {
		char *why = NULL;
		GBytes *seven = s->ops->to_7bit ? s->ops->to_7bit(s->data, tx, &why) : NULL;

		if (seven) {
			GBytes *headers = message_7bit(seven, &why);

			g_bytes_unref(seven);
			seven = headers;
		}
		if (!seven) {
			char *reply = g_strdup_printf("554 5.6.3 the server does not take 8-bit "
			    "mail (no 8BITMIME) and conversion to 7 bits failed: %s",
			    why ? why : "not possible");

			g_free(why);
			tx_all(s, 554, reply);
			g_free(reply);
			next_tx(s);
			return;
		}
		g_bytes_unref(s->body);
		s->body = seven;
	}
	size = wire_size(s->body);
	if (s->offer.size > 0 && size > s->offer.size) {
		char *reply = g_strdup_printf("552 5.3.4 message of %" G_GINT64_FORMAT " bytes "
		    "exceeds the server's limit (SIZE %" G_GINT64_FORMAT ")", size, s->offer.size);

		tx_all(s, 552, reply);
		g_free(reply);
		next_tx(s);
		return;
	}
	cmd = g_string_new(NULL);
	g_string_printf(cmd, "MAIL FROM:<%s>", tx->sender);
	if (s->offer.size_offered)
		g_string_append_printf(cmd, " SIZE=%" G_GINT64_FORMAT, size);
	if (tx->eightbit && s->offer.eightbit)
		g_string_append(cmd, " BODY=8BITMIME");
	if (s->offer.dsn) {
		if (tx->ret == QUEUE_RET_FULL)
			g_string_append(cmd, " RET=FULL");
		else if (tx->ret == QUEUE_RET_HDRS)
			g_string_append(cmd, " RET=HDRS");
		if (tx->envid) {
			char *x = smtp_xtext_encode(tx->envid);

			g_string_append_printf(cmd, " ENVID=%s", x);
			g_free(x);
		}
	}
	send_line(s, "%s", cmd->str);
	g_string_free(cmd, TRUE);
	enter_state(s, ST_TX);
	s->step = TX_MAIL;
	s->rcpt_i = s->rcpt_sent = 0;
	s->mail_ok = s->abandon = FALSE;
	if (s->offer.pipelining) {
		while (s->rcpt_sent < tx->rcpts->len)
			send_rcpt(s);
		send_line(s, "DATA");
	}
}

static void
next_tx(SmtpSession *s)
{
	if (s->ending)
		return;
	s->tx = s->ops->next(s->data, s);
	if (!s->tx) {
		send_line(s, "QUIT");
		enter_state(s, ST_QUIT);
		set_timeout(s, SMTP_CLIENT_QUIT_WAIT);
		return;
	}
	set_timeout(s, s->cfg->timeout);
	start_tx(s);
}

/* After a transaction that did not end in 250: RSET, then the next. */
static void
tx_over_rset(SmtpSession *s)
{
	send_line(s, "RSET");
	enter_state(s, ST_RSET);
}

static gboolean
any_accepted(const SmtpTx *tx)
{
	for (guint i = 0; i < tx->rcpts->len; i++)
		if (((SmtpRcpt *)tx->rcpts->pdata[i])->code / 100 == 2)
			return TRUE;
	return FALSE;
}

static void
tx_reply(SmtpSession *s, const SmtpReply *rp, const char *line)
{
	SmtpTx *tx = s->tx;
	int cls = smtp_reply_class(rp);

	if (cls != 2 && cls != 4 && cls != 5 && !(s->step == TX_DATA && rp->code == 354)) {
		/* No verdict: a 1xx, or a 3xx where no data was asked for. */
		fail(s, "an unexpected reply: %s", line);
		return;
	}
	switch (s->step) {
	case TX_MAIL:
		if (cls == 2) {
			s->mail_ok = TRUE;
		} else if (s->tx_ok > 0) {
			/* SPEC 3.4: a second transaction refused.  Nothing is
			 * decided about the recipients; a new session will do. */
			tx->result = SMTP_TX_AGAIN;
			tx->single = cls == 5;
			g_free(tx->again_reply);
			tx->again_reply = g_strdup(line);
			s->abandon = TRUE;
		} else {
			for (guint i = 0; i < tx->rcpts->len; i++)
				rcpt_verdict(tx->rcpts->pdata[i], rp->code, line);
			s->abandon = TRUE;
		}
		if (!s->offer.pipelining) {
			if (s->abandon)
				goto abandoned;
			send_rcpt(s);
		}
		s->step = tx->rcpts->len ? TX_RCPT : TX_DATA;
		return;
	case TX_RCPT:
		if (!s->abandon)
			rcpt_verdict(tx->rcpts->pdata[s->rcpt_i], rp->code, line);
		s->rcpt_i++;
		if (s->rcpt_i >= tx->rcpts->len)
			s->step = TX_DATA;
		if (!s->offer.pipelining) {
			if (s->rcpt_sent < tx->rcpts->len)
				send_rcpt(s);
			else if (any_accepted(tx))
				send_line(s, "DATA");
			else
				goto refused_all;
		}
		return;
	case TX_DATA:
		if (rp->code == 354) {
			if (s->abandon || !any_accepted(tx)) {
				/* A server that says 354 with nobody to deliver to
				 * gets an empty message, whose reply means nothing. */
				evbuffer_add(bufferevent_get_output(s->bev), ".\r\n", 3);
				s->step = TX_END;
				s->abandon = TRUE;
				s->body_done = s->awaiting_end = TRUE;
				return;
			}
			s->step = TX_END;
			s->body_off = 0;
			s->body_done = s->awaiting_end = FALSE;
			sending(s);
			pump(s);
			on_write(s->bev, s);
			return;
		}
		if (s->abandon)
			goto abandoned;
		if (!any_accepted(tx))
			goto refused_all;
		if (cls != 4 && cls != 5) {
			/* Only 354 or a refusal answers DATA: a 2xx here took
			 * no message. */
			fail(s, "DATA answered with %s", line);
			return;
		}
		for (guint i = 0; i < tx->rcpts->len; i++) {
			SmtpRcpt *r = tx->rcpts->pdata[i];

			if (r->code / 100 == 2)
				rcpt_verdict(r, rp->code, line);
		}
		tx->result = SMTP_TX_DONE;
		tx_finish(s);
		tx_over_rset(s);
		return;
	case TX_END:
		if (!s->body_done || !s->awaiting_end) {
			/* The server cannot have read the message it answers. */
			fail(s, "a reply before the end of the data: %s", line);
			return;
		}
		set_timeout(s, s->cfg->timeout);
		if (s->abandon)
			goto abandoned;
		for (guint i = 0; i < tx->rcpts->len; i++) {
			SmtpRcpt *r = tx->rcpts->pdata[i];

			if (r->code / 100 == 2)
				rcpt_verdict(r, cls == 2 ? 250 : rp->code, line);
		}
		tx->result = SMTP_TX_DONE;
		tx_finish(s);
		if (cls == 2) {
			s->tx_ok++;
			next_tx(s);
		} else {
			tx_over_rset(s);
		}
		return;
	}
	return;
refused_all:
	/* Every RCPT refused: each recipient has its own verdict. */
	tx->result = SMTP_TX_DONE;
	tx_finish(s);
	tx_over_rset(s);
	return;
abandoned:
	if (tx->result == SMTP_TX_AGAIN) {
		tx_finish(s);
		send_line(s, "QUIT");
		enter_state(s, ST_QUIT);
		set_timeout(s, SMTP_CLIENT_QUIT_WAIT);
		return;
	}
	tx->result = SMTP_TX_DONE;
	tx_finish(s);
	tx_over_rset(s);
}

/* ------------------------------------------------------------ replies */

static void
on_reply(SmtpSession *s, const SmtpReply *rp)
{
	char *line = smtp_reply_format(rp);
	int cls = smtp_reply_class(rp);

	switch (s->state) {
	case ST_GREETING:
		if (cls != 2)
			fail(s, "greeting: %s", line);
		else {
			send_line(s, "EHLO %s", s->cfg->helo_name);
			enter_state(s, ST_EHLO);
		}
		break;
	case ST_EHLO:
		if (cls == 2) {
			parse_ehlo(s, rp->text);
			after_hello(s);
		} else if (cls == 5 && !s->tls_active) {
			send_line(s, "HELO %s", s->cfg->helo_name);
			enter_state(s, ST_HELO);
		} else {
			fail(s, "EHLO: %s", line);
		}
		break;
	case ST_HELO:
		if (cls == 2)
			after_hello(s);
		else
			fail(s, "HELO: %s", line);
		break;
	case ST_STARTTLS:
		if (rp->code == 220)
			start_tls(s);
		else if (s->cfg->tls >= SMTP_TLS_ENCRYPT)
			fail(s, "STARTTLS: %s", line);
		else {
			s->no_tls = TRUE;    /* may: on in plaintext */
			after_hello(s);
		}
		break;
	case ST_AUTH_USER:
		if (rp->code != 334)
			fail(s, "AUTH LOGIN: %s", line);
		else {
			send_b64(s, "", s->cfg->auth_user, strlen(s->cfg->auth_user));
			enter_state(s, ST_AUTH_PASS);
		}
		break;
	case ST_AUTH_PASS:
		if (rp->code != 334)
			fail(s, "AUTH LOGIN: %s", line);
		else {
			send_b64(s, "", s->cfg->auth_password, strlen(s->cfg->auth_password));
			enter_state(s, ST_AUTH);
		}
		break;
	case ST_AUTH:
		if (cls != 2)
			fail(s, "AUTH: %s", line);
		else {
			s->ready = TRUE;
			next_tx(s);
		}
		break;
	case ST_TX:
		tx_reply(s, rp, line);
		break;
	case ST_RSET:
		if (cls != 2) {
			send_line(s, "QUIT");
			session_end(s, SMTP_END_LOST, line);
		} else {
			next_tx(s);
		}
		break;
	case ST_QUIT:
		session_end(s, SMTP_END_QUIT, NULL);
		break;
	case ST_CONNECT:
	case ST_HANDSHAKE:
	case ST_DONE:
		fail(s, "a reply when none was due: %s", line);
		break;
	}
	g_free(line);
}

static void
on_read(struct bufferevent *bev, void *arg)
{
	SmtpSession *s = arg;
	guint gen = s->gen;
	struct evbuffer *in = bufferevent_get_input(bev);

	if (s->state == ST_CONNECT) {
		/* The greeting may be read before the connect is reported. */
		g_strlcpy(s->answered, s->peer, sizeof s->answered);
		enter_state(s, ST_GREETING);
		set_timeout(s, s->cfg->timeout);
	}
	while (!s->ending && s->gen == gen && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		SmtpReply rp = { 0 };
		SmtpReplyStatus st;
		gsize used = 0;

		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		st = smtp_reply_feed(s->reader, v.iov_base, v.iov_len, &used, &rp);
		evbuffer_drain(in, used);
		if (st == SMTP_REPLY_MORE) {
			smtp_reply_clear(&rp);
			continue;
		}
		if (st == SMTP_REPLY_BAD) {
			fail(s, "a malformed reply: %s", rp.error);
			smtp_reply_clear(&rp);
			return;
		}
		on_reply(s, &rp);
		smtp_reply_clear(&rp);
	}
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	SmtpSession *s = arg;

	if (what & BEV_EVENT_CONNECTED) {
		if (s->state == ST_CONNECT) {
			g_strlcpy(s->answered, s->peer, sizeof s->answered);
			enter_state(s, ST_GREETING);
			set_timeout(s, s->cfg->timeout);
		} else if (s->state == ST_HANDSHAKE) {
			s->tls_active = TRUE;
			/* RFC 3207 4.2: forget what was offered in plaintext. */
			memset(&s->offer, 0, sizeof s->offer);
			send_line(s, "EHLO %s", s->cfg->helo_name);
			enter_state(s, ST_EHLO);
		}
		return;
	}
	if (s->state == ST_HANDSHAKE) {
		unsigned long err = bufferevent_get_openssl_error(bev);
		char buf[256] = "";

		if (err)
			ERR_error_string_n(err, buf, sizeof buf);
		if (s->cfg->tls == SMTP_TLS_MAY) {
			/* As Postfix does: plaintext on a new connection. */
			s->no_tls = TRUE;
			g_free(s->why);
			s->why = g_strdup_printf("TLS handshake failed%s%s (%s)", *buf ? ": " : "",
			    buf, s->peer);
			try_address(s);
			return;
		}
		fail(s, "TLS handshake failed%s%s", *buf ? ": " : "", buf);
		return;
	}
	if (s->state == ST_QUIT) {
		session_end(s, SMTP_END_QUIT, NULL);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		fail(s, "%s", s->state == ST_CONNECT ? "connection timed out" :
		    "timed out waiting for the server");
	else if (what & BEV_EVENT_EOF)
		fail(s, "the server closed the connection");
	else
		fail(s, "%s", s->state == ST_CONNECT ? g_strerror(EVUTIL_SOCKET_ERROR()) :
		    "connection broken");
}

/* ------------------------------------------------------------ TLS */

SSL_CTX *
smtp_client_tls_new(SmtpTlsMode mode, const char *ca_file, GError **error)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!ctx) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "cannot set up TLS");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
	if (mode == SMTP_TLS_VERIFY) {
		int ok = ca_file && *ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL) :
		    SSL_CTX_set_default_verify_paths(ctx);

		if (ok != 1) {
			unsigned long err = ERR_get_error();
			char buf[256] = "";

			ERR_error_string_n(err, buf, sizeof buf);
			g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED,
			    "[delivery] tls_ca_file %s: %s", ca_file && *ca_file ? ca_file :
			    "(the system's)", buf);
			SSL_CTX_free(ctx);
			return NULL;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	} else {
		/* Opportunistic or merely encrypted: RFC 7435. */
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	return ctx;
}
