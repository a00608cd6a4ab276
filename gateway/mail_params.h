/* mail_params.h - the MAIL and RCPT parameters a message keeps from the
 * listener, through the queue, to the SMTP client: BODY= (RFC 6152), RET=
 * and NOTIFY= (RFC 3461 4.1, 4.3), one definition for all three.
 *
 * Owns: the values and their names.  smtp_cmd parses into them, queue.db
 * stores them (the numbers are on disk: never renumber), the client writes
 * them to the next hop and `postgate queue list` shows them.  Never: ENVID
 * and ORCPT (free text, kept as strings where they are used).
 */
#ifndef PG_MAIL_PARAMS_H
#define PG_MAIL_PARAMS_H

#include <stddef.h>
#include <glib.h>

/* MAIL BODY= (RFC 6152 2). */
typedef enum {
	MAIL_BODY_NONE = 0,       /* not given */
	MAIL_BODY_7BIT = 1,
	MAIL_BODY_8BITMIME = 2,
} MailBody;

/* MAIL RET= (RFC 3461 4.3). */
typedef enum {
	MAIL_RET_NONE = 0,        /* not given */
	MAIL_RET_FULL = 1,
	MAIL_RET_HDRS = 2,
} MailRet;

/* RCPT NOTIFY= (RFC 3461 4.1): bits; 0 is "not given". */
enum {
	MAIL_NOTIFY_NEVER = 1,
	MAIL_NOTIFY_SUCCESS = 2,
	MAIL_NOTIFY_FAILURE = 4,
	MAIL_NOTIFY_DELAY = 8,
};

/* mail_body_name, mail_ret_name - "7BIT", "8BITMIME", "FULL", "HDRS";
 * NULL for NONE or a value out of range */
const char *mail_body_name(int body);
const char *mail_ret_name(int ret);
/* mail_body_parse, mail_ret_parse - the value of n bytes at p, any case;
 * FALSE when it is none of the names */
gboolean mail_body_parse(const char *p, size_t n, MailBody *out);
gboolean mail_ret_parse(const char *p, size_t n, MailRet *out);

/* What mail_notify_parse found wrong. */
typedef enum {
	MAIL_NOTIFY_OK,
	MAIL_NOTIFY_BAD_WORD,     /* a word that is none of the four, or empty */
	MAIL_NOTIFY_NEVER_MIXED,  /* NEVER with another word */
} MailNotifyStatus;

/* mail_notify_parse - the comma-separated list of n bytes at p, any case,
 * into *bits (set only when MAIL_NOTIFY_OK) */
MailNotifyStatus mail_notify_parse(const char *p, size_t n, guint *bits);
/* mail_notify_text - "NEVER", or SUCCESS, FAILURE, DELAY in that order
 * joined by commas; NULL for 0 (g_free) */
char *mail_notify_text(guint bits);

#endif
