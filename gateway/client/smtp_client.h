/* smtp_client.h - one SMTP client session: RFC 5321 with PIPELINING (RFC
 * 2920), SIZE, 8BITMIME, DSN (RFC 3461), STARTTLS (RFC 3207), AUTH (RFC 4954).
 *
 * Owns: one connection's state machine, with named states, from the
 * connect to the QUIT: the addresses of a destination tried in order until
 * one greets and answers EHLO (HELO when EHLO is refused); STARTTLS as
 * configured (none; may: when offered, and in plaintext again on a new
 * connection when the handshake fails; encrypt and verify: never without);
 * AUTH PLAIN or LOGIN only inside TLS; then transactions, one after another,
 * taken from the owner (connection reuse), MAIL, RCPT and DATA pipelined when
 * the server offers PIPELINING, RSET after a transaction that did not end in
 * a 250; a timeout on every step.  Replies are read with smtp_reply.h, so
 * their segmentation does not matter.  For every recipient of a transaction
 * it says the server's reply: 2xx only once the server took the message
 * (the reply to the end of data), 4xx to try again later, 5xx never.  When
 * MAIL is refused after an earlier transaction of the same session (SPEC
 * 3.4: servers that take one message per session) nothing is decided: the
 * transaction comes back "again", and the RCPT replies pipelined behind the
 * refused MAIL say nothing about the recipients.  A server without 8BITMIME
 * gets the owner's 7-bit form of an 8-bit message with every header field
 * that still holds 8-bit bytes RFC 2047-encoded (display names, unstructured
 * text) or RFC 2231-encoded (parameters) through GMime; a form that still
 * holds an 8-bit byte is not sent (554 5.6.3).
 * Never: the queue, DNS (the owner gives the addresses), retries and
 * backoff, choosing which message goes next.
 */
#ifndef PG_SMTP_CLIENT_H
#define PG_SMTP_CLIENT_H

#include <event2/event.h>
#include <glib.h>
#include <openssl/ssl.h>

#include "client/mx.h"
#include "mail_params.h"

/* Named limits. */
#define SMTP_CLIENT_QUIT_WAIT   5      /* seconds to wait for the reply to QUIT */
#define SMTP_CLIENT_PUMP_HIGH   (256 * 1024)  /* message bytes queued for the socket, at most */
#define SMTP_CLIENT_PUMP_LOW    (64 * 1024)   /* more once the socket has taken this much */
#define SMTP_CLIENT_MIME_DEPTH  64     /* MIME levels whose header fields are made 7-bit */

typedef enum {
	SMTP_TLS_NONE,
	SMTP_TLS_MAY,
	SMTP_TLS_ENCRYPT,
	SMTP_TLS_VERIFY,
} SmtpTlsMode;

typedef struct {
	struct event_base *base;
	const char *helo_name;     /* what EHLO says */
	SmtpTlsMode tls;
	SSL_CTX *ssl;              /* client context; NULL when tls is none */
	const char *auth_user;     /* NULL: no AUTH */
	const char *auth_password;
	int connect_timeout;       /* seconds */
	int timeout;               /* seconds, per reply (twice that after the data) */
} SmtpClientConfig;

typedef struct {
	const char *address;       /* for RCPT TO */
	guint notify;              /* MAIL_NOTIFY_* bits, 0: none given */
	const char *orcpt;         /* "type;address" decoded, or NULL */
	int code;                  /* the verdict: 0 none yet, else a reply code */
	char *reply;               /* the verdict's reply, one line (smtp_reply_format) */
} SmtpRcpt;

typedef enum {
	SMTP_TX_DONE,              /* every recipient has its code */
	SMTP_TX_AGAIN,             /* MAIL refused after an earlier transaction: nothing decided */
} SmtpTxResult;

typedef struct {
	const char *sender;        /* "" for <> */
	const char *envid;         /* DSN ENVID or NULL */
	MailRet ret;               /* RET= (mail_params.h) */
	gboolean eightbit;         /* BODY=8BITMIME */
	GBytes *data;              /* the message; LF or CR LF line ends */
	GPtrArray *rcpts;          /* SmtpRcpt * */
	SmtpTxResult result;
	gboolean single;           /* AGAIN with a 5xx: the server takes one per session */
	char *again_reply;         /* AGAIN: the refusal */
	gpointer owner;
} SmtpTx;

typedef enum {
	SMTP_END_QUIT,             /* it ran out of work and said QUIT */
	SMTP_END_UNREACHABLE,      /* no address got as far as a transaction; for now */
	SMTP_END_REFUSED,          /* the same, for good (TLS required but not offered) */
	SMTP_END_LOST,             /* the connection broke after it was ready */
} SmtpEnd;

typedef struct SmtpSession SmtpSession;

typedef struct {
	/* the next transaction for this session, or NULL: QUIT */
	SmtpTx *(*next)(gpointer data, SmtpSession *s);
	/* a transaction's verdicts are in */
	void (*tx_done)(gpointer data, SmtpSession *s, SmtpTx *tx);
	/* tx->data as 7-bit MIME for a server without 8BITMIME, or NULL and *why;
	 * header fields it leaves 8-bit are encoded by the session */
	GBytes *(*to_7bit)(gpointer data, SmtpTx *tx, char **why);
	/* the session is over (every tx handed out was done first); s is freed after */
	void (*end)(gpointer data, SmtpSession *s, SmtpEnd how, const char *why);
} SmtpSessionOps;

/* smtp_session_start - connect to addrs (MxAddr *, kept alive by the caller
 * until end) in order; every callback runs later, from the loop */
SmtpSession *smtp_session_start(const SmtpClientConfig *cfg, GPtrArray *addrs,
    const SmtpSessionOps *ops, gpointer data);
/* smtp_session_peer - "host[address]:port" of the server, or of the last tried */
const char *smtp_session_peer(const SmtpSession *s);
/* smtp_session_relay - "host[address]:port" of the last server whose connection
 * opened, or "none" when no connection opened: the log's relay= */
const char *smtp_session_relay(const SmtpSession *s);
/* smtp_session_tls - whether the session is encrypted */
gboolean smtp_session_tls(const SmtpSession *s);

/* smtp_client_tls_new - the client TLS context for mode (ca_file "" or
 * NULL: the system's authorities) */
SSL_CTX *smtp_client_tls_new(SmtpTlsMode mode, const char *ca_file, GError **error);

#endif
