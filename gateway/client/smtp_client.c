/* smtp_client.c - one SMTP client session: the connection (see smtp_client.h).
 *
 * Owns: the addresses tried in order, the connect, the greeting, EHLO (HELO
 * when EHLO is refused), STARTTLS (RFC 3207) and AUTH PLAIN / LOGIN (RFC
 * 4954), the replies read (smtp_reply.h) and handed to the state they
 * answer, every state change (smtpc_enter_state, with the states' names),
 * the timeouts, failure (the next address, or the end of the session) and
 * the client's TLS context.
 * Never: a transaction's commands, verdicts or message (smtp_client_tx.c),
 * the 7-bit form of a message (smtp_client_7bit.c), the queue, DNS.
 */
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

#include "pg_log.h"
#include "client/smtp_client.h"
#include "client/smtp_client_int.h"
#include "client/smtp_reply.h"

/* The names of the states (smtp_client_int.h), for the log. */
static const char *const state_names[] = {
	[SMTPC_CONNECT] = "connect", [SMTPC_GREETING] = "greeting", [SMTPC_EHLO] = "EHLO",
	[SMTPC_HELO] = "HELO", [SMTPC_STARTTLS] = "STARTTLS",
	[SMTPC_HANDSHAKE] = "TLS handshake", [SMTPC_AUTH] = "AUTH",
	[SMTPC_AUTH_USER] = "AUTH LOGIN user", [SMTPC_AUTH_PASS] = "AUTH LOGIN password",
	[SMTPC_TX] = "transaction", [SMTPC_RSET] = "RSET", [SMTPC_QUIT] = "QUIT",
	[SMTPC_DONE] = "done",
};

static void try_address(SmtpSession *s);
static void on_read(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

/* ------------------------------------------------------------ state */

/* Every change of state goes through here: --debug logs it. */
void
smtpc_enter_state(SmtpSession *s, SmtpcState to)
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

void
smtpc_set_timeout(SmtpSession *s, int seconds)
{
	struct timeval tv = { seconds, 0 };

	bufferevent_set_timeouts(s->bev, &tv, &tv);
}

void
smtpc_send_line(SmtpSession *s, const char *fmt, ...)
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
	if (s->bev && !s->tls_active && s->state != SMTPC_HANDSHAKE && s->state != SMTPC_TX) {
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
	smtpc_enter_state(s, SMTPC_DONE);
	drop_bev(s);
	s->end_how = how;
	s->end_why = g_strdup(why);
	event_base_once(s->cfg->base, -1, EV_TIMEOUT, do_end, s, NULL);
}

/* Something went wrong: before the session was ready, the next address; in
 * a transaction, its recipients without a verdict get a 4xx and the session
 * ends. */
void
smtpc_fail(SmtpSession *s, const char *fmt, ...)
{
	va_list ap;
	char *what, *why;

	va_start(ap, fmt);
	what = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	why = g_strdup_printf("%s (%s, in %s)", what, s->peer, state_names[s->state]);
	g_free(what);
	smtpc_tx_lost(s, why);
	if (s->ready || s->state == SMTPC_RSET || s->state == SMTPC_QUIT) {
		session_end(s, s->state == SMTPC_QUIT ? SMTP_END_QUIT : SMTP_END_LOST, why);
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
	smtpc_send_line(s, "QUIT");
	smtpc_fail(s, "%s", what);
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
	smtpc_enter_state(s, SMTPC_CONNECT);   /* logged with the server it leaves */
	if (a->sa.ss_family == AF_INET6)
		g_snprintf(s->peer, sizeof s->peer, "%s[%s]:%u", a->host, a->text,
		    ntohs(((const struct sockaddr_in6 *)&a->sa)->sin6_port));
	else
		g_snprintf(s->peer, sizeof s->peer, "%s[%s]:%u", a->host, a->text,
		    ntohs(((const struct sockaddr_in *)&a->sa)->sin_port));
	memset(&s->offer, 0, sizeof s->offer);
	s->reader = smtp_reply_reader_new();
	s->bev = bufferevent_socket_new(s->cfg->base, -1, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(s->bev, on_read, smtpc_on_write, on_event, s);
	bufferevent_setwatermark(s->bev, EV_WRITE, SMTP_CLIENT_PUMP_LOW, 0);
	smtpc_set_timeout(s, s->cfg->connect_timeout);
	if (bufferevent_socket_connect(s->bev, (const struct sockaddr *)&a->sa,
	    (int)a->len) != 0) {
		smtpc_fail(s, "cannot connect: %s", g_strerror(errno));
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

	smtpc_send_line(s, "%s%s", prefix, b64);
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
		smtpc_fail(s, "cannot start TLS: out of memory");
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
		smtpc_fail(s, "cannot start TLS");
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(tls, 1);
	s->bev = tls;
	s->gen++;
	smtp_reply_reader_free(s->reader);
	s->reader = smtp_reply_reader_new();
	smtpc_enter_state(s, SMTPC_HANDSHAKE);
	bufferevent_setcb(s->bev, on_read, smtpc_on_write, on_event, s);
	bufferevent_setwatermark(s->bev, EV_WRITE, SMTP_CLIENT_PUMP_LOW, 0);
	smtpc_set_timeout(s, s->cfg->timeout);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

/* After EHLO (or HELO): STARTTLS, AUTH, or ready. */
static void
after_hello(SmtpSession *s)
{
	SmtpTlsMode mode = s->cfg->tls;

	if (!s->tls_active && mode != SMTP_TLS_NONE && !s->no_tls) {
		if (s->offer.starttls) {
			smtpc_send_line(s, "STARTTLS");
			smtpc_enter_state(s, SMTPC_STARTTLS);
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
			smtpc_fail(s, "not sending the AUTH password without TLS");
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
			smtpc_enter_state(s, SMTPC_AUTH);
			return;
		}
		if (s->offer.auth_login) {
			smtpc_send_line(s, "AUTH LOGIN");
			smtpc_enter_state(s, SMTPC_AUTH_USER);
			return;
		}
		smtpc_fail(s, "the server offers neither AUTH PLAIN nor AUTH LOGIN");
		return;
	}
	s->ready = TRUE;
	smtpc_next_tx(s);
}

/* ------------------------------------------------------------ replies */

static void
on_reply(SmtpSession *s, const SmtpReply *rp)
{
	char *line = smtp_reply_format(rp);
	int cls = smtp_reply_class(rp);

	switch (s->state) {
	case SMTPC_GREETING:
		if (cls != 2)
			smtpc_fail(s, "greeting: %s", line);
		else {
			smtpc_send_line(s, "EHLO %s", s->cfg->helo_name);
			smtpc_enter_state(s, SMTPC_EHLO);
		}
		break;
	case SMTPC_EHLO:
		if (cls == 2) {
			parse_ehlo(s, rp->text);
			after_hello(s);
		} else if (cls == 5 && !s->tls_active) {
			smtpc_send_line(s, "HELO %s", s->cfg->helo_name);
			smtpc_enter_state(s, SMTPC_HELO);
		} else {
			smtpc_fail(s, "EHLO: %s", line);
		}
		break;
	case SMTPC_HELO:
		if (cls == 2)
			after_hello(s);
		else
			smtpc_fail(s, "HELO: %s", line);
		break;
	case SMTPC_STARTTLS:
		if (rp->code == 220)
			start_tls(s);
		else if (s->cfg->tls >= SMTP_TLS_ENCRYPT)
			smtpc_fail(s, "STARTTLS: %s", line);
		else {
			s->no_tls = TRUE;    /* may: on in plaintext */
			after_hello(s);
		}
		break;
	case SMTPC_AUTH_USER:
		if (rp->code != 334)
			smtpc_fail(s, "AUTH LOGIN: %s", line);
		else {
			send_b64(s, "", s->cfg->auth_user, strlen(s->cfg->auth_user));
			smtpc_enter_state(s, SMTPC_AUTH_PASS);
		}
		break;
	case SMTPC_AUTH_PASS:
		if (rp->code != 334)
			smtpc_fail(s, "AUTH LOGIN: %s", line);
		else {
			send_b64(s, "", s->cfg->auth_password, strlen(s->cfg->auth_password));
			smtpc_enter_state(s, SMTPC_AUTH);
		}
		break;
	case SMTPC_AUTH:
		if (cls != 2)
			smtpc_fail(s, "AUTH: %s", line);
		else {
			s->ready = TRUE;
			smtpc_next_tx(s);
		}
		break;
	case SMTPC_TX:
		smtpc_tx_reply(s, rp, line);
		break;
	case SMTPC_RSET:
		if (cls != 2) {
			smtpc_send_line(s, "QUIT");
			session_end(s, SMTP_END_LOST, line);
		} else {
			smtpc_next_tx(s);
		}
		break;
	case SMTPC_QUIT:
		session_end(s, SMTP_END_QUIT, NULL);
		break;
	case SMTPC_CONNECT:
	case SMTPC_HANDSHAKE:
	case SMTPC_DONE:
		smtpc_fail(s, "a reply when none was due: %s", line);
		break;
	}
	g_free(line);
}

/* The connection to s->peer is open: the greeting is awaited. */
static void
opened(SmtpSession *s)
{
	g_strlcpy(s->answered, s->peer, sizeof s->answered);
	smtpc_enter_state(s, SMTPC_GREETING);
	smtpc_set_timeout(s, s->cfg->timeout);
}

static void
on_read(struct bufferevent *bev, void *arg)
{
	SmtpSession *s = arg;
	guint gen = s->gen;
	struct evbuffer *in = bufferevent_get_input(bev);

	if (s->state == SMTPC_CONNECT)
		opened(s);   /* the greeting may be read before the connect is reported */
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
			smtpc_fail(s, "a malformed reply: %s", rp.error);
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
		if (s->state == SMTPC_CONNECT) {
			opened(s);
		} else if (s->state == SMTPC_HANDSHAKE) {
			s->tls_active = TRUE;
			/* RFC 3207 4.2: forget what was offered in plaintext. */
			memset(&s->offer, 0, sizeof s->offer);
			smtpc_send_line(s, "EHLO %s", s->cfg->helo_name);
			smtpc_enter_state(s, SMTPC_EHLO);
		}
		return;
	}
	if (s->state == SMTPC_HANDSHAKE) {
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
		smtpc_fail(s, "TLS handshake failed%s%s", *buf ? ": " : "", buf);
		return;
	}
	if (s->state == SMTPC_QUIT) {
		session_end(s, SMTP_END_QUIT, NULL);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		smtpc_fail(s, "%s", s->state == SMTPC_CONNECT ? "connection timed out" :
		    "timed out waiting for the server");
	else if (what & BEV_EVENT_EOF)
		smtpc_fail(s, "the server closed the connection");
	else
		smtpc_fail(s, "%s", s->state == SMTPC_CONNECT ? g_strerror(EVUTIL_SOCKET_ERROR()) :
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
