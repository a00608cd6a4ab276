/* run_int.h - what the files of the batch run share (private; run.h is the
 * interface).
 *
 *   run.c           `postgate run` and `queue retry`: the lock, recovery of
 *                   bundles recorded but not written, the steps, the summary
 *   run_ingest.c    bundles from the postoffices' out/ into the queue
 *   run_route.c     each new recipient routed (dir_route), lists expanded
 *   run_fanout.c    one copy per destination postoffice, into bundles
 *   run_outbound.c  legacy mail for the Internet translated into MIME
 * Names here carry rn_; nothing outside gateway/run/ includes this header.
 */
#ifndef PG_RUN_INT_H
#define PG_RUN_INT_H

#include "bundle.h"
#include "client/delivery.h"
#include "message.h"
#include "queue/queue.h"
#include "run/run.h"
#include "report/report.h"
#include "site.h"

/* What one destination postoffice got in this run. */
typedef struct {
	guint messages;         /* copies */
	guint bundles;
} PoCount;

/* The bundle being filled for one postoffice. */
typedef struct {
	char *po;
	Bundle *b;
	GArray *items;          /* QueueItem: the recipient rows it carries */
	GPtrArray *qids;        /* char *: owners of the items' qid pointers */
	gsize bytes;            /* encoded messages so far */
} Builder;

typedef struct {
	Site *site;
	Queue *q;
	const char *gateway_po;
	guint hop_limit;
	int level;
	gboolean dry_run;
	gboolean tty;
	GHashTable *keys;       /* NET/PO -> GBytes */
	GHashTable *counts;     /* NET/PO -> PoCount */
	GHashTable *builders;   /* NET/PO -> Builder */
	guint routed, held, pending_smtp, errors, finished;
	guint failed;           /* rows the route step failed (a report is owed) */
	gboolean delivered;     /* the SMTP client ran */
	DeliveryStats smtp;
	ReportStats reports;
	guint ingested, refused, dir_imports, outbound;
	const char *hostname;
	GPtrArray *to_store;    /* QueueEnvelope * routed, not yet stored */
	GPtrArray *routing;     /* the messages being routed (a DSN made is added) */
	GHashTable *unstored;   /* qids whose routes could not be stored */
	GHashTable *smtp_of;    /* legacy address -> its SMTP address or NULL (one message) */
} Run;

/* run.c */
PoCount *rn_count_of(Run *run, const char *po);
GBytes *rn_key_of(Run *run, const char *po, GError **error);
gboolean rn_bundle_deliver(Run *run, const char *po, guint64 seq, const char *name,
    GBytes *data, GError **error);

/* run_ingest.c */
void rn_ingest(Run *run);

/* run_route.c */
/* rn_over_hop_limit - whether env has crossed more than hop_limit nodes
 * (*hops: how many, this gateway's crossing included); a report this
 * gateway made itself carries its original's count and is never stopped
 * on its way out: it is what tells the sender of a looped message */
gboolean rn_over_hop_limit(const Run *run, const QueueEnvelope *env, guint *hops);
void rn_route_message(Run *run, QueueEnvelope *env);
void rn_store_routes(Run *run);

/* run_fanout.c */
void rn_builder_free(Builder *bd);
gboolean rn_builder_flush(Run *run, Builder *bd, GError **error);
void rn_fan_out_message(Run *run, QueueEnvelope *env);

/* run_outbound.c */
void rn_translate_out(Run *run, QueueEnvelope *env, const LegacyMessage *content);

#endif
