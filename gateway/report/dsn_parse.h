/* dsn_parse.h - delivery reports from the Internet read: RFC 3464, 3462/6522, 3463, 3461 (xtext),
 * 6533 (global delivery status); the usual non-standard bounce texts.
 *
 * Owns: deciding whether the bytes of one RFC 5322 message are a delivery
 * report that can be read with confidence, and what it reports.  A
 * multipart/report; report-type=delivery-status (or global-delivery-status)
 * is found by walking multiparts from the top (never into a message/rfc822:
 * a report returned inside a report is not read); its message/delivery-status
 * part is read by a length-aware field parser of its own (RFC 3464 2.1:
 * a per-message group, then per-recipient groups separated by blank lines;
 * folding, comments in structured values, field names in any case), and the
 * returned message (message/rfc822 or text/rfc822-headers) gives its
 * Message-ID and Subject.  A message without one is read as a bounce text of
 * qmail, Postfix, old Exchange, Lotus Notes or Exim only when both each
 * recipient and a failure status are found: an RFC 3463 code in the text
 * (x.y.z), else the SMTP reply's class (5xx -> 5.0.0, 4xx -> 4.0.0).  In
 * doubt, or over any limit below, the answer is NULL with the reason: a
 * false non-delivery report is worse than an ordinary message.
 * Never: the envelope (the caller calls this for null-sender mail), the
 * legacy report written from the result, logging, a crash or unbounded time
 * or memory on hostile input.
 */
#ifndef PG_DSN_PARSE_H
#define PG_DSN_PARSE_H

#include <stddef.h>
#include <glib.h>

/* A message over this is no report (bounces return at most a message of
 * ordinary size; GMime holds the whole message in memory). */
#define DSN_MAX_SIZE            (16u * 1024 * 1024)
/* Per-recipient groups in one message/delivery-status part. */
#define DSN_MAX_RCPTS           1000u
/* One field of a delivery-status part, unfolded (name, colon and value). */
#define DSN_MAX_FIELD_LEN       8192u
/* Fields in one group of a delivery-status part (RFC 3464 defines 14). */
#define DSN_MAX_GROUP_FIELDS    100u
/* The message/delivery-status part, decoded. */
#define DSN_MAX_STATUS_LEN      (1024u * 1024)
/* Levels of multipart walked to find the report or the bounce text. */
#define DSN_MAX_DEPTH           8u
/* The bounce text a heuristic reads, in UTF-8. */
#define DSN_MAX_TEXT_LEN        (256u * 1024)
/* An address a heuristic takes from a bounce text (RFC 5321 4.5.3.1.3). */
#define DSN_MAX_ADDR_LEN        254u

typedef enum {
	DSN_ACTION_FAILED,
	DSN_ACTION_DELAYED,
	DSN_ACTION_DELIVERED,
	DSN_ACTION_RELAYED,
	DSN_ACTION_EXPANDED,
} DsnAction;

typedef enum {
	DSN_KIND_RFC3464,       /* multipart/report; report-type=delivery-status (or
	                         * global-delivery-status), or a message/delivery-status
	                         * part in another multipart */
	DSN_KIND_HEURISTIC,     /* a non-standard bounce whose recipients and status were
	                         * found with confidence (qmail, Postfix without DSN parts,
	                         * old Exchange, Lotus Notes, Exim's text); its action is
	                         * always DSN_ACTION_FAILED */
} DsnKind;

/* Every string is UTF-8 (invalid bytes replaced), NUL-terminated, without
 * control characters but tab. */
typedef struct {
	char *final_recipient;     /* the address only (the "rfc822;" type removed), as written */
	char *original_recipient;  /* Original-Recipient's address, xtext decoded, or NULL */
	DsnAction action;
	char *status;              /* RFC 3463 "5.1.1": class 2/4/5 . 1-3 digits . 1-3 digits
	                            * (report_status_valid) */
	char *diagnostic;          /* Diagnostic-Code without its type, unfolded, or NULL; for
	                            * a heuristic the recipient's lines of the text, unfolded */
	char *remote_mta;          /* Remote-MTA without its type, or NULL */
} DsnParsedRcpt;

typedef struct {
	DsnKind kind;
	char *envid;               /* Original-Envelope-Id (xtext decoded), or NULL */
	char *reporting_mta;       /* Reporting-MTA without its type, or NULL */
	char *orig_message_id;     /* Message-ID of the returned message or headers, without
	                            * its angle brackets, or NULL */
	char *orig_subject;        /* its Subject, decoded to UTF-8 by GMime, or NULL (GMime
	                            * 3.2.13 may keep only the first of several base64
	                            * words: GMime issue #133; for the log and the NDR's
	                            * text only) */
	char *heuristic;           /* HEURISTIC: which text was read ("qmail", "postfix",
	                            * "exchange", "notes", "exim"); NULL for RFC3464 */
	GPtrArray *rcpts;          /* DsnParsedRcpt *, at least one, in the report's order */
} DsnParsed;

/* dsn_parse - the report in len bytes of one message, or NULL when it is none that can be read
 * with confidence (then the caller delivers the message as an ordinary one); *why (if not
 * NULL) says why not in one printable line for the log (g_free it), and is NULL on success.
 * data need not be NUL-terminated; len 0 is fine. */
DsnParsed *dsn_parse(const guint8 *data, size_t len, char **why);
/* dsn_parsed_free - free p and everything it holds (NULL is fine) */
void dsn_parsed_free(DsnParsed *p);
/* dsn_action_name - "failed", "delayed", "delivered", "relayed", "expanded"; NULL out of range */
const char *dsn_action_name(DsnAction a);

#endif
