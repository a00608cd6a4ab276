/* report_int.h - what the files of the report step share (private; report.h
 * is the interface).
 *
 *   report_ndr.c   the step itself, and legacy non-delivery reports for the
 *                  failures of legacy mail sent over SMTP
 *   report_dsn.c   DSNs (RFC 3464) to SMTP senders: for the failures of
 *                  Internet mail, and from the legacy reports postoffices
 *                  send about the Internet mail the gateway wrote to them
 * Names here carry rp_; nothing outside gateway/report/ includes this header.
 */
#ifndef PG_REPORT_INT_H
#define PG_REPORT_INT_H

#include "report/report.h"

/* rp_rows_enter - rows of env enter to with reason, stored in one commit */
gboolean rp_rows_enter(Queue *q, QueueEnvelope *env, GPtrArray *rows, QueueState to,
    const char *reason);
/* rp_hold - rows held, each reason saying what failed and why no report
 * was made ("...; report could not be made: WHY"), counted in st */
void rp_hold(Queue *q, QueueEnvelope *env, GPtrArray *rows, const char *why, ReportStats *st);
/* rp_dsn_failed - a DSN to the SMTP sender of env about its failed rows,
 * queued with their failed -> reported (NOTIFY=NEVER, or a NOTIFY without
 * FAILURE: failed -> done, no report) */
void rp_dsn_failed(Site *site, Queue *q, QueueEnvelope *env, GPtrArray *rows, ReportStats *st);

#endif
