/* delivery.h - the delivery agent: queued outbound mail to SMTP servers.
 *
 * Owns: which recipients are due (smtp-pending, or deferred whose next
 * attempt has come; all of them when forced), where each goes - its
 * [site-link] host, [delivery] relay_host, or the MX of its domain - and
 * grouping: the recipients of one message to one destination share one
 * transaction, the messages to one destination share connections (at most
 * destination_connections, at least about DELIVERY_PER_SESSION messages
 * each, at most [delivery] connections in all), sessions per smtp_client.h.
 * Then every verdict: 2xx sent, 4xx and trouble deferred with a backoff
 * between min_backoff and max_backoff (held with the reason once the
 * message is older than queue_lifetime), 5xx held with the server's reply
 * (until reports exist, SPEC 2 Reports); each committed to queue.db at once
 * (the verdicts that come in together share one commit).  Per destination,
 * in queue.db's destinations table: a backoff when it cannot be reached, so
 * that a dead destination costs one attempt per backoff and slows no other,
 * and one message per session for single_message_memory after a server
 * refused a second MAIL FROM (SPEC 3.4) - nothing bounced for it.
 * Never: routing (the batch run decided via and rcpt_to), reports, the
 * protocol itself (smtp_client.h).
 */
#ifndef PG_DELIVERY_H
#define PG_DELIVERY_H

#include <glib.h>

#include "queue/queue.h"
#include "site.h"

/* Named limits. */
#define DELIVERY_PER_SESSION   4u    /* messages per connection before another opens */
#define DELIVERY_MAX_RCPTS     100u  /* recipients in one transaction (RFC 5321 4.5.3.1.8) */
#define DELIVERY_COMMIT_TRIES  5u    /* more tries, a second apart, of outcomes not recorded */

typedef struct {
	guint sent;             /* recipients the servers took */
	guint deferred;         /* recipients to try again later */
	guint failed;           /* recipients refused for good or expired: reports owed */
	guint finished;         /* messages that left the queue */
	guint sessions;         /* SMTP sessions opened */
	guint skipped;          /* recipients not yet due (backoff) */
	guint errors;           /* outcomes or bodies the queue failed on (see the log) */
} DeliveryStats;

/* delivery_run - deliver what is due (force: everything waiting, backoffs
 * ignored; only_qid: just that message); FALSE only when it could not start */
gboolean delivery_run(Site *site, Queue *q, const char *only_qid, gboolean force,
    DeliveryStats *stats, GError **error);

#endif
