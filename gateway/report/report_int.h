/* report_int.h - what the files of the report step share (private; report.h
 * is the interface).
 *
 *   report_ndr.c   the step itself, and legacy non-delivery reports for the
 *                  failures of legacy mail sent over SMTP
 *   report_dsn.c   DSNs (RFC 3464) to SMTP senders: for the failures of
 *                  Internet mail, and from the legacy reports postoffices
 *                  send about the Internet mail the gateway wrote to them
 *   report_delay.c delay notices: a legacy report "delayed" to the sender of a
 *                  legacy message that still waits for SMTP, a DSN
 *                  "Action: delayed" to an SMTP sender who asked NOTIFY=DELAY
 *   report_loop.c  what is stopped for good - a report over the hop limit,
 *                  a report that could not be delivered: held, and the
 *                  postmaster told once
 *   report_in.c    Internet reports (RFC 3464, or a bounce text read with
 *                  confidence) about a legacy message's copy the gateway
 *                  sent, made legacy non-delivery reports
 * Names here carry rp_; nothing outside gateway/report/ includes this header.
 */
#ifndef PG_REPORT_INT_H
#define PG_REPORT_INT_H

#include "report/report.h"

#include "message.h"
#include "report/dsn_build.h"

/* What the reason of a row held because its report could not be made says. */
#define RP_UNREPORTED "report could not be made"
/* Who signs a DSN: MAILER-DAEMON at the gateway's host name. */
#define RP_DSN_FROM_MAILBOX "MAILER-DAEMON"

/* One recipient of a legacy non-delivery report or delay notice. */
typedef struct {
	char *addr;             /* the address the sender wrote */
	guint16 reason;         /* MsgReason */
	const char *text;       /* what went wrong, UTF-8 (a server's reply) */
	gboolean delayed;       /* not delivered yet, still tried (MSG_REPORT_DELAYED) */
	gboolean delivered;     /* delivered (MSG_REPORT_DELIVERED, a receipt's);
	                         * neither: not delivered */
} NdrItem;

/* rp_ndr_build - a legacy non-delivery report (a delay notice when every
 * item is delayed, a receipt when every item is delivered) to the legacy
 * address to, in
 * codepage: about_id the original's legacy id, about a line saying what
 * the gateway did with it, one item each, the original (orig, or NULL:
 * then its subject orig_subject, UTF-8, and why_not says why it is not
 * returned) returned */
LegacyMessage *rp_ndr_build(Site *site, const char *about_id, const char *about,
    const NdrItem *items, guint n, const char *to, const char *codepage,
    const LegacyMessage *orig, const char *orig_subject, const char *why_not);
/* rp_ndr_route - where a report to the legacy address report_to goes: its
 * postoffice *po, mailbox *legacy and *codepage; FALSE and *why when it is
 * on no postoffice of this site */
gboolean rp_ndr_route(Site *site, const char *report_to, char **po, char **legacy,
    const char **codepage, char **why);
/* rp_ndr_encode - m encoded as a bundle entry, or NULL and *why */
GBytes *rp_ndr_encode(LegacyMessage *m, char **why);
/* rp_ndr_bytes - the legacy report about rows of env (a legacy message's
 * copy for SMTP), encoded: non-delivery, returning the original, or for
 * delayed a delay notice that does not; NULL and *why when it cannot be
 * made, or NULL and *error when env's body could not be read from the
 * queue.  *po and *legacy: where it goes. */
GBytes *rp_ndr_bytes(Site *site, Queue *q, const QueueEnvelope *env, GPtrArray *rows,
    gboolean delayed, char **po, char **legacy, char **why, GError **error);
/* rp_report_envelope - a report's envelope, queue id qid, from the null
 * sender to report_to, about (a queue id), hops, size bytes; in legacy
 * format routed to po's mailbox legacy (both taken), else in MIME for its
 * route step */
QueueEnvelope *rp_report_envelope(const char *qid, MsgClass class, const char *report_to,
    char *po, char *legacy, const char *about, guint hops, gint64 size);
/* rp_ndr_queue - the encoded report bytes (of class) queued routed to po as
 * legacy (both taken) in the one commit that moves rows of owner to to_state
 * (reported: naming the report; done); *out (if not NULL): its envelope */
gboolean rp_ndr_queue(Queue *q, QueueEnvelope *owner, GPtrArray *rows, QueueState to_state,
    MsgClass class,
    GBytes *bytes, char *po, char *legacy, const char *report_to, const char *about,
    guint hops, QueueEnvelope **out, GError **error);

/* rp_rows_enter - rows of env enter to with reason, stored in one commit */
gboolean rp_rows_enter(Queue *q, QueueEnvelope *env, GPtrArray *rows, QueueState to,
    const char *reason);
/* rp_hold_rows - rows held in memory, each reason saying what failed and
 * why no report was made ("...; report could not be made: WHY") */
void rp_hold_rows(QueueEnvelope *env, GPtrArray *rows, const char *why);
/* rp_hold - rp_hold_rows, stored; counted in st */
void rp_hold(Queue *q, QueueEnvelope *env, GPtrArray *rows, const char *why, ReportStats *st);
/* rp_hold_tell - rp_hold of rows of a report that failed for good, with
 * the postmaster told once (report_tell_postmaster, report.h) */
void rp_hold_tell(Site *site, Queue *q, QueueEnvelope *env, GPtrArray *rows, const char *why,
    ReportStats *st);
/* rp_local - UTF-8 text in a codepage (transliterated where it must be); g_free it */
char *rp_local(const char *codepage, const char *utf8);
/* rp_dsn_queue - the DSN r (its rcpts, to, from, ...), built and queued in
 * one commit with owner's rows entering to (reported, naming the DSN; or
 * done; none: rows empty): FALSE and *error when it cannot be built
 * (DSN_ERROR) or stored (QUEUE_ERROR).  *out: its envelope. */
gboolean rp_dsn_queue(Site *site, Queue *q, QueueEnvelope *owner, GPtrArray *rows,
    QueueState to, DsnReport *r, MsgClass class, const char *about, guint hops,
    QueueEnvelope **out, GError **error);
/* rp_dsn_failed - a DSN to the SMTP sender of env about its failed rows,
 * queued with their failed -> reported (NOTIFY=NEVER, or a NOTIFY without
 * FAILURE: failed -> done, no report) */
void rp_dsn_failed(Site *site, Queue *q, QueueEnvelope *env, GPtrArray *rows, ReportStats *st);
/* rp_dsn_about - r's fields about message env, whose r->original is set:
 * Reporting-MTA and From (*from) the gateway's host name, To env's sender,
 * its ENVID and Arrival-Date, r->original's subject (*subject); g_free
 * both once r is built */
void rp_dsn_about(Site *site, DsnReport *r, const QueueEnvelope *env, char **from,
    char **subject);

/* rp_delayed - the delay notices due ([delivery] delay_warning), each
 * queued in the commit that records it (report_delay.c) */
void rp_delayed(Site *site, Queue *q, ReportStats *st);

#endif
