/* smtp_client_tx.c - one SMTP client session: its transactions (see
 * smtp_client.h).
 *
 * Owns: a transaction from MAIL to the reply to the end of data - MAIL with
 * SIZE, BODY and the DSN parameters (RFC 1870, 6152, 3461), RCPT, DATA,
 * pipelined when offered (RFC 2920), the message written dot-stuffed with
 * CR LF ends (RFC 5321 4.5.2) as fast as the server takes it - each
 * recipient's verdict, the transaction handed back to the owner, RSET after
 * one that did not end in 250, the next one taken (connection reuse) or
 * QUIT; SPEC 3.4 (a second MAIL refused: AGAIN).
 * Never: the connection, its greeting, EHLO, TLS or AUTH (smtp_client.c),
 * header fields made 7-bit (smtp_client_7bit.c), the queue.
 */
#include "config.h"

#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "queue/queue.h"
#include "client/smtp_client.h"
#include "client/smtp_client_int.h"
#include "client/smtp_reply.h"
#include "smtpd/smtp_cmd.h"

/* While the message goes out no reply is due: only the writing must make
 * progress.  The wait for the reply starts once the final dot has left
 * (smtpc_on_write). */
static void
sending(SmtpSession *s)
{
	struct timeval tv = { s->cfg->timeout, 0 };

	bufferevent_set_timeouts(s->bev, NULL, &tv);
	bufferevent_setwatermark(s->bev, EV_WRITE, SMTP_CLIENT_PUMP_LOW, 0);
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

void
smtpc_on_write(struct bufferevent *bev, void *arg)
{
	SmtpSession *s = arg;

	if (s->state != SMTPC_TX || s->step != SMTPC_TX_END)
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
		smtpc_set_timeout(s, 2 * s->cfg->timeout);
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
		char *notify = mail_notify_text(r->notify);

		g_string_append_printf(cmd, " NOTIFY=%s", notify);
		g_free(notify);
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
	smtpc_send_line(s, "%s", cmd->str);
	g_string_free(cmd, TRUE);
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
			GBytes *headers = smtpc_message_7bit(seven, &why);

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
			smtpc_next_tx(s);
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
		smtpc_next_tx(s);
		return;
	}
	cmd = g_string_new(NULL);
	g_string_printf(cmd, "MAIL FROM:<%s>", tx->sender);
	if (s->offer.size_offered)
		g_string_append_printf(cmd, " SIZE=%" G_GINT64_FORMAT, size);
	if (tx->eightbit && s->offer.eightbit)
		g_string_append(cmd, " BODY=8BITMIME");
	if (s->offer.dsn) {
		if (mail_ret_name(tx->ret))
			g_string_append_printf(cmd, " RET=%s", mail_ret_name(tx->ret));
		if (tx->envid) {
			char *x = smtp_xtext_encode(tx->envid);

			g_string_append_printf(cmd, " ENVID=%s", x);
			g_free(x);
		}
	}
	smtpc_send_line(s, "%s", cmd->str);
	g_string_free(cmd, TRUE);
	smtpc_enter_state(s, SMTPC_TX);
	s->step = SMTPC_TX_MAIL;
	s->rcpt_i = s->rcpt_sent = 0;
	s->mail_ok = s->abandon = FALSE;
	if (s->offer.pipelining) {
		while (s->rcpt_sent < tx->rcpts->len)
			send_rcpt(s);
		smtpc_send_line(s, "DATA");
	}
}

/* Nothing more to send on this connection: QUIT, and a short wait for its
 * reply. */
static void
quit(SmtpSession *s)
{
	smtpc_send_line(s, "QUIT");
	smtpc_enter_state(s, SMTPC_QUIT);
	smtpc_set_timeout(s, SMTP_CLIENT_QUIT_WAIT);
}

void
smtpc_next_tx(SmtpSession *s)
{
	if (s->ending)
		return;
	s->tx = s->ops->next(s->data, s);
	if (!s->tx) {
		quit(s);
		return;
	}
	smtpc_set_timeout(s, s->cfg->timeout);
	start_tx(s);
}

/* After a transaction that did not end in 250: RSET, then the next. */
static void
tx_over_rset(SmtpSession *s)
{
	smtpc_send_line(s, "RSET");
	smtpc_enter_state(s, SMTPC_RSET);
}

/* The transaction is over, each recipient with its verdict: RSET. */
static void
tx_done_rset(SmtpSession *s)
{
	s->tx->result = SMTP_TX_DONE;
	tx_finish(s);
	tx_over_rset(s);
}

/* MAIL failed: what came after it means nothing.  A second transaction
 * refused (AGAIN) ends the session; else RSET. */
static void
tx_abandoned(SmtpSession *s)
{
	if (s->tx->result == SMTP_TX_AGAIN) {
		tx_finish(s);
		quit(s);
		return;
	}
	tx_done_rset(s);
}

static gboolean
any_accepted(const SmtpTx *tx)
{
	for (guint i = 0; i < tx->rcpts->len; i++)
		if (((SmtpRcpt *)tx->rcpts->pdata[i])->code / 100 == 2)
			return TRUE;
	return FALSE;
}

/* Every recipient accepted so far gets code and line as its verdict. */
static void
accepted_verdict(SmtpTx *tx, int code, const char *line)
{
	for (guint i = 0; i < tx->rcpts->len; i++) {
		SmtpRcpt *r = tx->rcpts->pdata[i];

		if (r->code / 100 == 2)
			rcpt_verdict(r, code, line);
	}
}

static void
mail_reply(SmtpSession *s, const SmtpReply *rp, const char *line)
{
	SmtpTx *tx = s->tx;
	int cls = smtp_reply_class(rp);

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
		if (s->abandon) {
			tx_abandoned(s);
			return;
		}
		send_rcpt(s);
	}
	s->step = tx->rcpts->len ? SMTPC_TX_RCPT : SMTPC_TX_DATA;
}

static void
rcpt_reply(SmtpSession *s, const SmtpReply *rp, const char *line)
{
	SmtpTx *tx = s->tx;

	if (!s->abandon)
		rcpt_verdict(tx->rcpts->pdata[s->rcpt_i], rp->code, line);
	s->rcpt_i++;
	if (s->rcpt_i >= tx->rcpts->len)
		s->step = SMTPC_TX_DATA;
	if (!s->offer.pipelining) {
		if (s->rcpt_sent < tx->rcpts->len)
			send_rcpt(s);
		else if (any_accepted(tx))
			smtpc_send_line(s, "DATA");
		else
			tx_done_rset(s);   /* every RCPT refused: each has its verdict */
	}
}

static void
data_reply(SmtpSession *s, const SmtpReply *rp, const char *line)
{
	SmtpTx *tx = s->tx;
	int cls = smtp_reply_class(rp);

	if (rp->code == 354) {
		if (s->abandon || !any_accepted(tx)) {
			/* A server that says 354 with nobody to deliver to
			 * gets an empty message, whose reply means nothing. */
			evbuffer_add(bufferevent_get_output(s->bev), ".\r\n", 3);
			s->step = SMTPC_TX_END;
			s->abandon = TRUE;
			s->body_done = s->awaiting_end = TRUE;
			return;
		}
		s->step = SMTPC_TX_END;
		s->body_off = 0;
		s->body_done = s->awaiting_end = FALSE;
		sending(s);
		pump(s);
		smtpc_on_write(s->bev, s);
		return;
	}
	if (s->abandon) {
		tx_abandoned(s);
		return;
	}
	if (!any_accepted(tx)) {
		tx_done_rset(s);   /* every RCPT refused: each has its verdict */
		return;
	}
	if (cls != 4 && cls != 5) {
		/* Only 354 or a refusal answers DATA: a 2xx here took
		 * no message. */
		smtpc_fail(s, "DATA answered with %s", line);
		return;
	}
	accepted_verdict(tx, rp->code, line);
	tx_done_rset(s);
}

static void
end_reply(SmtpSession *s, const SmtpReply *rp, const char *line)
{
	SmtpTx *tx = s->tx;
	int cls = smtp_reply_class(rp);

	if (!s->body_done || !s->awaiting_end) {
		/* The server cannot have read the message it answers. */
		smtpc_fail(s, "a reply before the end of the data: %s", line);
		return;
	}
	smtpc_set_timeout(s, s->cfg->timeout);
	if (s->abandon) {
		tx_abandoned(s);
		return;
	}
	accepted_verdict(tx, cls == 2 ? 250 : rp->code, line);
	tx->result = SMTP_TX_DONE;
	tx_finish(s);
	if (cls == 2) {
		s->tx_ok++;
		smtpc_next_tx(s);
	} else {
		tx_over_rset(s);
	}
}

void
smtpc_tx_reply(SmtpSession *s, const SmtpReply *rp, const char *line)
{
	int cls = smtp_reply_class(rp);

	if (cls != 2 && cls != 4 && cls != 5 && !(s->step == SMTPC_TX_DATA && rp->code == 354)) {
		/* No verdict: a 1xx, or a 3xx where no data was asked for. */
		smtpc_fail(s, "an unexpected reply: %s", line);
		return;
	}
	switch (s->step) {
	case SMTPC_TX_MAIL:
		mail_reply(s, rp, line);
		break;
	case SMTPC_TX_RCPT:
		rcpt_reply(s, rp, line);
		break;
	case SMTPC_TX_DATA:
		data_reply(s, rp, line);
		break;
	case SMTPC_TX_END:
		end_reply(s, rp, line);
		break;
	}
}

void
smtpc_tx_lost(SmtpSession *s, const char *why)
{
	if (s->bev && s->state == SMTPC_TX && s->step == SMTPC_TX_END && !s->abandon) {
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
	} else if (s->tx && s->state == SMTPC_TX && s->step == SMTPC_TX_MAIL && s->tx_ok > 0) {
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
}
