/* smtp_client_int.h - what the files of one SMTP client session share
 * (smtp_client.c, smtp_client_tx.c, smtp_client_7bit.c); nothing outside
 * gateway/client/smtp_client*.c includes it.
 *
 * Owns: the session's state machine (SmtpcState, each state named in
 * smtp_client.c's table and entered through smtpc_enter_state, which logs
 * "session with PEER: OLD -> NEW" at debug level), the step within a
 * transaction, what the server offered, and struct SmtpSession.  Every
 * name shared between those files carries the prefix smtpc_ / Smtpc /
 * SMTPC_.
 * Never: anything for the owner of a session (that is smtp_client.h).
 */
#ifndef PG_SMTP_CLIENT_INT_H
#define PG_SMTP_CLIENT_INT_H

#include <event2/bufferevent.h>
#include <glib.h>

#include "client/smtp_client.h"
#include "client/smtp_reply.h"

/* The states, named for the reply awaited in each. */
typedef enum {
	SMTPC_CONNECT,
	SMTPC_GREETING,
	SMTPC_EHLO,
	SMTPC_HELO,
	SMTPC_STARTTLS,
	SMTPC_HANDSHAKE,
	SMTPC_AUTH,          /* AUTH PLAIN, or the last step of AUTH LOGIN */
	SMTPC_AUTH_USER,     /* AUTH LOGIN: the 334 asking for the user name */
	SMTPC_AUTH_PASS,     /* AUTH LOGIN: the 334 asking for the password */
	SMTPC_TX,            /* a transaction: MAIL, RCPT..., DATA, the data */
	SMTPC_RSET,
	SMTPC_QUIT,
	SMTPC_DONE,
} SmtpcState;

/* Within SMTPC_TX: which reply is awaited. */
typedef enum {
	SMTPC_TX_MAIL,
	SMTPC_TX_RCPT,
	SMTPC_TX_DATA,
	SMTPC_TX_END,        /* the reply to the end of data */
} SmtpcStep;

/* What the server offered in its EHLO reply. */
typedef struct {
	gboolean esmtp, pipelining, eightbit, dsn, starttls, auth_plain, auth_login;
	gboolean size_offered;  /* SIZE, with or without a limit */
	gint64 size;           /* SIZE limit, 0: none said */
} SmtpcOffer;

struct SmtpSession {
	const SmtpClientConfig *cfg;
	GPtrArray *addrs;
	guint addr_i;
	const SmtpSessionOps *ops;
	gpointer data;
	struct bufferevent *bev;
	guint gen;             /* bumped when bev is replaced */
	SmtpReplyReader *reader;
	SmtpcState state;
	SmtpcOffer offer;
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
	SmtpcStep step;
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

/* ------------------------------------------------------------ smtp_client.c */

/* smtpc_enter_state - the one way the session changes state; logged */
void smtpc_enter_state(SmtpSession *s, SmtpcState to);
/* smtpc_set_timeout - the read and write timeouts of the connection */
void smtpc_set_timeout(SmtpSession *s, int seconds);
/* smtpc_send_line - queue one command line, CR LF added */
void smtpc_send_line(SmtpSession *s, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* smtpc_fail - give up on the connection: before the session was ready the
 * next address; in a transaction (smtpc_tx_lost) the session ends */
void smtpc_fail(SmtpSession *s, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* ------------------------------------------------------------ smtp_client_tx.c */

/* smtpc_next_tx - the owner's next transaction begins, or QUIT when none */
void smtpc_next_tx(SmtpSession *s);
/* smtpc_tx_reply - a reply in SMTPC_TX; line is its one-line form */
void smtpc_tx_reply(SmtpSession *s, const SmtpReply *rp, const char *line);
/* smtpc_tx_lost - the connection failed (why says how): the transaction
 * under way, if any, is handed back, each recipient without a verdict 421 */
void smtpc_tx_lost(SmtpSession *s, const char *why);
/* smtpc_on_write - the write callback: the message goes out, then the wait
 * for the reply to its end begins */
void smtpc_on_write(struct bufferevent *bev, void *arg);

/* ------------------------------------------------------------ smtp_client_7bit.c */

/* smtpc_message_7bit - msg with every header field still holding 8-bit
 * bytes encoded (RFC 2047, RFC 2231), or NULL and *why */
GBytes *smtpc_message_7bit(GBytes *msg, char **why);

#endif
