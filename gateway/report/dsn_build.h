/* dsn_build.h - delivery status notifications as Internet mail: RFC 3464, RFC 6522.
 *
 * Owns: the bytes of one DSN (CRLF line ends, no line over 998 bytes), built
 * with GMime 3:
 *   - the header: From (the reporting system's address, shown as "Mail
 *     Delivery System"), To (the original envelope sender), Subject (what
 *     happened, then the original's subject, RFC 2047 Q-encoded in utf-8 when
 *     it is not plain ASCII), Date (RFC 5322 3.3, UTC), Message-ID (given, or
 *     derived from the report's content), MIME-Version and Auto-Submitted:
 *     auto-replied (RFC 3834 5).  The report itself is sent from the null
 *     sender (RFC 5321 4.5.5): that is the caller's envelope, not a header.
 *   - multipart/report; report-type=delivery-status (RFC 6522 3) of three
 *     parts in this order: text/plain; charset=utf-8, what happened to each
 *     recipient in plain English (7bit, or quoted-printable when it holds
 *     8-bit text or long lines); message/delivery-status (RFC 3464 2), 7bit
 *     US-ASCII; the returned message (below).
 *   - the delivery-status fields: per message Original-Envelope-Id (xtext,
 *     RFC 3461 4.4), Reporting-MTA, Arrival-Date; per recipient
 *     Original-Recipient (ORCPT), Final-Recipient, Action, Status,
 *     Remote-MTA, Diagnostic-Code, Last-Attempt-Date, Will-Retry-Until (only
 *     for "delayed"); dates as RFC 5322 date-times; long values folded.
 *   - the returned message: with return_full the original whole as
 *     message/rfc822 (7bit, or 8bit when it holds 8-bit bytes: then the
 *     report must go with BODY=8BITMIME); else, or when the original cannot
 *     travel unchanged inside a message/rfc822 part (a NUL, a bare CR, a line
 *     over 998 bytes), its header section as text/rfc822-headers (7bit, or
 *     quoted-printable when needed), and the readable part says why.  No
 *     original: two parts only.
 * Non-ASCII: addresses, host names, the envelope id and the message id must
 * be printable US-ASCII (postgate speaks no SMTPUTF8; a value that is not is
 * refused).  A diagnostic may be any UTF-8 text: the readable part shows it as
 * it is, the delivery-status part writes each non-ASCII character as
 * \x{HHHH}, the embedded-unicode-char of RFC 6533 3, so that part stays 7-bit
 * (a backslash that would read as such an escape is written \x{005C}).
 * Refused (DSN_ERROR_INVALID, naming the field): no recipient, a required
 * field missing, a CR or LF in any value, a value over its limit, an action
 * that is none of RFC 3464 2.3.3's, a status that is not RFC 3463 syntax or
 * does not fit its action (failed 5.x.x, delayed 4.x.x, the others 2.x.x),
 * an empty To (no report is ever sent to the null sender).
 * The same report gives the same bytes under any locale: the boundary and a
 * made Message-ID are derived from the content.
 * Never: deciding whether a report is due (NOTIFY, RET), sending it, the
 * legacy side's reports (report_status.h maps their reasons).
 *
 * GMime is initialised on first use (g_mime_init is counted).
 */
#ifndef PG_DSN_BUILD_H
#define PG_DSN_BUILD_H

#include <glib.h>

#define DSN_ERROR (dsn_error_quark())
GQuark dsn_error_quark(void);

typedef enum {
	DSN_ERROR_INVALID,      /* a field of the report breaks a rule: the message says which */
	DSN_ERROR_WRITE,        /* GMime could not write the report */
} DsnError;

/* Recipients in one report: MSG_MAX_RECIPIENTS, the most one message has. */
#define DSN_RCPTS_MAX         10000u
/* An address (Final-Recipient, ORCPT with its type, From, To): RFC 3461 4.2
 * allows 500 for ORCPT. */
#define DSN_ADDRESS_MAX       500u
/* An address type, a diagnostic type (RFC 3464 atoms). */
#define DSN_TYPE_MAX          32u
/* A host name (Reporting-MTA, Remote-MTA): RFC 1035 2.3.4, or a literal. */
#define DSN_HOST_MAX          253u
/* The envelope id, decoded: RFC 3461 4.4. */
#define DSN_ENVID_MAX         100u
/* The report's Message-ID without the angle brackets. */
#define DSN_MESSAGE_ID_MAX    250u
/* Bytes of a diagnostic kept; a longer one is cut at a character, "..." added. */
#define DSN_DIAGNOSTIC_MAX    4096u
/* Characters of the original's subject repeated in the report's. */
#define DSN_SUBJECT_MAX       200u
/* Lines of a field are folded before this column (RFC 5322 2.1.1's 78). */
#define DSN_FOLD_WIDTH        76u
/* The longest line of a built report, and of a message returned whole. */
#define DSN_LINE_MAX          998u

typedef struct {
	const char *final_recipient;    /* the address (required); "rfc822; " is added */
	const char *original_recipient; /* ORCPT as "type;address", decoded, or NULL */
	const char *action;             /* failed, delayed, delivered, relayed or expanded */
	const char *status;             /* RFC 3463, "5.1.1" (required) */
	const char *diagnostic_type;    /* "smtp" for an SMTP reply; NULL: "X-Postgate" */
	const char *diagnostic;         /* "550 5.1.1 <x>: no such user" (the reply, one line)
	                                 * or free UTF-8 text; NULL or "": no Diagnostic-Code */
	const char *remote_mta;         /* the host that answered, written "dns; HOST"; or NULL */
	gint64 last_attempt;            /* unix time, 0: none */
	gint64 will_retry_until;        /* for "delayed" only, 0: none */
} DsnRcpt;

typedef struct {
	const char *reporting_mta;      /* our host name (required); written "dns; HOST" */
	const char *envid;              /* Original-Envelope-Id, decoded (xtext-encoded here) */
	gint64 arrival;                 /* Arrival-Date, unix time; 0: none */
	const char *from;               /* From: of the report, MAILER-DAEMON@HOST (required) */
	const char *to;                 /* the original envelope sender: To: (required, not "") */
	const char *about_subject;      /* the original's subject, UTF-8, unfolded, or NULL */
	GBytes *original;               /* the original message (RFC 5322 bytes), or NULL */
	gboolean return_full;           /* RET=FULL: message/rfc822 whole; else text/rfc822-headers
	                                 * (its header section only, cut at the first empty line) */
	const DsnRcpt *rcpts;
	guint n_rcpts;                  /* 1 to DSN_RCPTS_MAX */
	const char *message_id;         /* the report's Message-ID without <>; NULL: make one */
	gint64 date;                    /* Date:, unix time; 0: now */
} DsnReport;

/* dsn_build - the report as RFC 5322 bytes (CRLF), see above
 * NULL and error (DSN_ERROR) when a field is unusable. */
GBytes *dsn_build(const DsnReport *r, GError **error);

#endif
