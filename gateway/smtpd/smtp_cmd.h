/* smtp_cmd.h - one SMTP command line, parsed: RFC 5321 4.1, 3461, 1870, 6152.
 *
 * Owns: the syntax of the commands postgate's SMTP server reads - the verb,
 * HELO/EHLO domains, MAIL FROM and RCPT TO paths with their ESMTP parameters
 * (SIZE, BODY, RET, ENVID, NOTIFY, ORCPT), BDAT's chunk size - and the reply
 * line for every syntax error, with its enhanced status code (RFC 3463).
 * Tolerant where Postfix is: blanks around the verb and the arguments, a
 * space after "FROM:"/"TO:".  Never: session state (whether a command may come
 * now), policy (which senders or recipients are welcome, the size limit),
 * reading from the network, or the DATA stream (smtp_data.h).
 */
#ifndef PG_SMTP_CMD_H
#define PG_SMTP_CMD_H

#include <stddef.h>
#include <glib.h>

#include "mail_params.h"
#include "pg_limits.h"

/* One command line, CRLF removed (RFC 5321 4.5.3.1.4 allows 512 with the CRLF;
 * RFC 3461 and RFC 1870 parameters make lines longer, Postfix reads 2048). */
#define SMTP_CMD_LINE_MAX      2048
/* SIZE=, BDAT chunk sizes: size-value ::= 1*20DIGIT (RFC 1870). */
#define SMTP_SIZE_DIGITS_MAX   20
/* ENVID= after xtext decoding (RFC 3461 4.4). */
#define SMTP_ENVID_MAX         100
/* ORCPT= address after xtext decoding; the addr-type before the ';'. */
#define SMTP_ORCPT_MAX         500
#define SMTP_ORCPT_TYPE_MAX    32
/* HELO/EHLO argument: a domain (RFC 1035: 255) or an address literal. */
#define SMTP_HELO_MAX          255
/* How much of a client's parameter keyword a reply echoes. */
#define SMTP_REPLY_ECHO_MAX    32

typedef enum {
	SMTP_VERB_HELO,
	SMTP_VERB_EHLO,
	SMTP_VERB_MAIL,
	SMTP_VERB_RCPT,
	SMTP_VERB_DATA,
	SMTP_VERB_RSET,
	SMTP_VERB_NOOP,
	SMTP_VERB_QUIT,
	SMTP_VERB_VRFY,
	SMTP_VERB_EXPN,
	SMTP_VERB_HELP,
	SMTP_VERB_STARTTLS,
	SMTP_VERB_AUTH,
	SMTP_VERB_BDAT,
	SMTP_VERB_UNKNOWN,
} SmtpVerb;

typedef struct {
	SmtpVerb verb;      /* SMTP_VERB_UNKNOWN also for lines refused before the verb */
	char *arg;          /* HELO/EHLO domain or address literal, VRFY/EXPN/HELP/NOOP
	                     * text, AUTH mechanism and initial response: trimmed; NULL
	                     * if none */
	/* MAIL / RCPT */
	gboolean null_path; /* MAIL FROM:<> */
	char *path;         /* local@domain as addr_parse_smtp normalises it (domain
	                     * lower case, blanks trimmed), a quoted local part kept
	                     * quoted, a source route dropped; "postmaster" for RCPT
	                     * TO:<postmaster>; NULL for <> */
	gint64 size;        /* MAIL SIZE=, BDAT chunk size; -1 when not given */
	gboolean last;      /* BDAT ... LAST (RFC 3030 2) */
	MailBody body;      /* MAIL BODY= */
	MailRet ret;        /* MAIL RET= */
	char *envid;        /* MAIL ENVID=, xtext-decoded; NULL when not given */
	guint notify;       /* RCPT NOTIFY= MAIL_NOTIFY_* bits, 0 when not given */
	char *orcpt_type;   /* RCPT ORCPT= address type, lower case ("rfc822"); NULL
	                     * when not given */
	char *orcpt;        /* RCPT ORCPT= address, xtext-decoded */
	char *reply;        /* on failure: the whole reply line without CRLF, e.g.
	                     * "501 5.1.3 Bad recipient address syntax"; else NULL */
} SmtpCmd;

/* smtp_cmd_parse - parse one command line of len bytes (CRLF already removed) into out; FALSE with out->reply set on error
 * out need not be initialised and what it held is not freed (smtp_cmd_clear it
 * first); on FALSE only verb and reply are set, on TRUE reply is NULL. */
gboolean smtp_cmd_parse(const char *line, size_t len, SmtpCmd *out);
/* smtp_cmd_clear - free what smtp_cmd_parse stored in out and zero it */
void smtp_cmd_clear(SmtpCmd *out);
/* smtp_verb_name - the verb as the RFC writes it ("MAIL"), "UNKNOWN" for unknown */
const char *smtp_verb_name(SmtpVerb verb);
/* smtp_xtext_decode - RFC 3461 4 xtext of len bytes, NULL when malformed or when it decodes to a NUL; g_free it */
char *smtp_xtext_decode(const char *text, size_t len);
/* smtp_xtext_encode - the xtext form of a string; g_free it */
char *smtp_xtext_encode(const char *text);

#endif
