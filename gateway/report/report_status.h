/* report_status.h - legacy report reasons and RFC 3463 status codes: the one table.
 *
 * Owns: the mapping, both ways, between the reasons a legacy report gives
 * per recipient (message.h MsgReason, docs/bundle-format.md "Reason codes")
 * and RFC 3463 enhanced status codes (docs/reports.md says why each); the
 * syntax of a status code (RFC 3463 2); the status an SMTP reply stands for
 * (RFC 2034 4 enhanced codes, RFC 3463 2 class from the basic reply code);
 * a short plain-English text for a status, for the readable part of a DSN.
 * Never: building a report (dsn_build.h), reading the network, deciding
 * whether a report is due (the gateway does).
 */
#ifndef PG_REPORT_STATUS_H
#define PG_REPORT_STATUS_H

#include <glib.h>

/* A status code as text with its NUL: "5.999.999" at most (RFC 3463 2:
 * class, then subject and detail of 1 to 3 digits). */
#define REPORT_STATUS_SIZE 12

/* report_status_of_reason - the RFC 3463 status for a legacy report reason (MsgReason)
 * "2.0.0" when delivered, else the table's class 5 code; a reason not known
 * is "other", 5.0.0. */
const char *report_status_of_reason(guint16 reason, gboolean delivered);
/* report_status_delayed - the status of a recipient delayed for reason
 * (MsgReason): report_status_of_reason's code in class 4, into status */
void report_status_delayed(guint16 reason, char status[REPORT_STATUS_SIZE]);
/* report_reason_of_status - the legacy reason (MsgReason) for len bytes of a status
 * 2.x.x is MSG_REASON_NONE (delivered); x.1.1, x.1.2, x.1.3, x.1.6 and x.1.10
 * unknown recipient; x.4.6 loop; x.3.4 and x.2.3 too big; x.4.7 expired;
 * any other valid 4.x.x or 5.x.x transfer failed; text that is no status
 * code MSG_REASON_OTHER. */
guint16 report_reason_of_status(const char *status, gsize len);
/* report_status_of_reply - the status of an SMTP reply of len bytes into status; FALSE: no reply
 * The reply as smtp_reply_format writes it, "550 5.1.1 text".  Its enhanced
 * status code when the first line's text starts with a valid one of the
 * reply's class (RFC 2034 4), else class.0.0 from the basic code (RFC 3463
 * 2).  A reply is three digits, the first 2, 4 or 5 and the second 0 to 5
 * (RFC 5321 4.2.1), then the end, a space or a '-'; anything else (garbage,
 * a 1xx or 3xx code, which report nothing final) is FALSE with status "". */
gboolean report_status_of_reply(const char *reply, gsize len, char status[REPORT_STATUS_SIZE]);
/* report_status_valid - whether len bytes are exactly an RFC 3463 status code
 * Class 2, 4 or 5; subject and detail 1 to 3 digits without a leading zero. */
gboolean report_status_valid(const char *status, gsize len);
/* report_status_text - a short plain-English text for len bytes of a status; never NULL
 * From its subject and detail: "the mailbox does not exist" for x.1.1. */
const char *report_status_text(const char *status, gsize len);

#endif
