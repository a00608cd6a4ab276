/* report.h - the reports the gateway owes for what failed (SPEC 2 "Reports",
 * DESIGN "Exactly once at each boundary" -> Reports, docs/reports.md).
 *
 * Owns: the report step of `postgate run` and `postgate queue retry`: every
 * recipient the SMTP client failed for good (a 5xx, queue_lifetime reached,
 * a null MX, NXDOMAIN, TLS required and not offered) becomes, for a copy of
 * a legacy message, one legacy non-delivery report per message and step to
 * its originator: class NDR, about_id the original's legacy id, marked so
 * that no report is ever made about it, the original's hop trace, one item
 * per failed recipient (the address the sender wrote, a reason, the
 * server's reply), subject "Undeliverable: SUBJECT" in the originator's
 * codepage, the original text and attachments returned.  The report is
 * queued already routed to the originator's postoffice in the one commit
 * that moves the recipients failed -> reported (queue_translated), so a
 * crash makes neither zero nor two; they become done when the report has
 * left the queue.  An originator who asked for no NDR gets none (failed ->
 * done).  What cannot be reported - about a report or a null-sender
 * message, a sender that no longer routes to a postoffice of this site, a
 * report that cannot be built - is held with "report could not be made:
 * WHY", never lost.
 * For an Internet message, the report is a DSN (RFC 3464) to its SMTP
 * sender, from the null sender, as NOTIFY asked (NEVER: none; a NOTIFY
 * without FAILURE: none about a failure), returning its header section or,
 * for RET=FULL, the message whole; and a legacy report a postoffice sends
 * about the copy of an Internet message the gateway wrote to it (found in
 * the queue, or in what the queue remembers for [site] report_window)
 * becomes such a DSN too: an item not delivered "failed", a receipt's
 * "delivered" for a recipient that asked NOTIFY=SUCCESS.  A legacy report
 * about anything else passes on as it is, as a message.  And the other way:
 * an Internet report (RFC 3464, or a bounce text read with confidence)
 * about a legacy message's copy the gateway sent over SMTP (its ENVID is
 * the legacy id) becomes a legacy non-delivery report to the legacy
 * sender, each failed recipient as the address the sender wrote; one that
 * cannot be read or matched is delivered as an ordinary message.
 * Never: delivery, fan-out (the report is bundled like any legacy copy),
 * routing (a DSN is queued for its route step).
 */
#ifndef PG_REPORT_H
#define PG_REPORT_H

#include <glib.h>

#include "queue/queue.h"
#include "site.h"

/* What one report step did. */
typedef struct {
	guint ndrs;             /* non-delivery reports queued */
	guint dsns;             /* delivery status notifications queued */
	guint dsn_reported;     /* recipients they report on */
	guint reported;         /* recipients the NDRs report on */
	guint receipts;         /* legacy receipts queued (from Internet DSNs "delivered") */
	guint receipted;        /* recipients they are about */
	guint unreported;       /* recipients whose originator asked for no report */
	guint held;             /* recipients held: no report could be made */
	guint delay_notices;    /* delay notices queued ([delivery] delay_warning) */
	guint delayed;          /* recipients they are about */
	guint postmaster;       /* held messages the postmaster was told about */
	guint errors;           /* queue failures (see the log); tried again next time */
} ReportStats;

/* report_failed - a report for every failed recipient in q (see above),
 * then the delay notices due (report_delay.c); FALSE only when the failed
 * recipients cannot even be listed */
gboolean report_failed(Site *site, Queue *q, ReportStats *stats, GError **error);

typedef enum {
	REPORT_NOT_OURS,        /* about no message the gateway remembers: route it as it is */
	REPORT_TRANSLATED,      /* its rows are done (a DSN queued, or none due) or held */
	REPORT_LATER,           /* the queue failed: left as it is for the next run */
} ReportTranslation;

/* report_translate - a legacy report env from a postoffice about the copy
 * of an Internet message the gateway wrote: the DSN it stands for, queued
 * with env's rows done in one commit (*dsn: its envelope, to be routed;
 * NULL when none is due) */
ReportTranslation report_translate(Site *site, Queue *q, QueueEnvelope *env,
    QueueEnvelope **dsn, ReportStats *st);
/* report_inbound - a null-sender Internet message env that is a report
 * (dsn_parse) about a legacy message's copy the gateway sent: the legacy
 * non-delivery report it stands for, queued routed to the legacy sender
 * with env's rows done in one commit (*ndr: its envelope, routed, to be
 * bundled; NULL when none was made) */
ReportTranslation report_inbound(Site *site, Queue *q, QueueEnvelope *env,
    QueueEnvelope **ndr, ReportStats *st);

/* report_tell_postmaster - the [site] postmaster told, once per message
 * (env->warned), that env is held for why and reaches no one else: a
 * legacy message from GATEWAY_PO/POSTMASTER, the held message attached,
 * queued in the commit that stores env's rows as they are now (held by
 * the caller); without a notice (told already, or none can be made: then
 * a warning) the rows are stored alone.  FALSE when nothing was stored.
 * *note (when not NULL): the notice's envelope, routed, to be bundled, or NULL. */
gboolean report_tell_postmaster(Site *site, Queue *q, QueueEnvelope *env, const char *why,
    QueueEnvelope **note, ReportStats *st);

#endif
