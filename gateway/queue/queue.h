/* queue.h - the durable queue: envelopes in queue.db, bodies in queue/.
 *
 * Owns: state_dir/queue.db (SQLite, WAL, versioned schema) holding each
 * message's envelope and its recipients with their states, and the bodies,
 * written once and never edited (docs/queue.md): a body up to
 * QUEUE_SPILL_AT bytes in its message's row, committed with it; a larger
 * one in its own file state_dir/queue/QID, on stable storage before the row
 * that names it commits, so a row never names a body that a crash lost (a
 * body file without a row is garbage that queue_cleanup removes).  Three
 * ways in: one message at a time (queue_commit, for submit); group commit
 * (QueueCommitter, for the listener): a thread that makes every message
 * handed to it while it was busy durable with one SQLite commit (one WAL
 * fsync), each message under a savepoint of its own, so that the event
 * loop never waits on a disk, twenty clients do not pay twenty fsyncs, and
 * a message either is in the commit whole or gets its error; and a bundle
 * from a postoffice (queue_ingest), in commits of bounded size that record
 * how far it got, so that the listener is never locked out for long.
 * Never: routing, SMTP, postoffice directories.
 */
#ifndef PG_QUEUE_H
#define PG_QUEUE_H

#include <glib.h>

#include "mail_params.h"
#include "queue/queue_state.h"

#define QUEUE_ERROR (queue_error_quark())
GQuark queue_error_quark(void);

typedef enum {
	QUEUE_ERROR_IO,          /* the database or a body file failed */
	QUEUE_ERROR_NOT_FOUND,   /* no such queue id */
	QUEUE_ERROR_STATE,       /* the message is not in a state that allows it */
	QUEUE_ERROR_SCHEMA,      /* queue.db is of a newer schema than this program */
	QUEUE_ERROR_LOCKED,      /* another listener holds the queue */
} QueueError;

/* Named limits. */
#define QUEUE_ID_LEN          18u                 /* 13 hex of microseconds + 5 random */
#define QUEUE_SPILL_AT        (128u * 1024)       /* bodies up to this go in the row */
#define QUEUE_BATCH_MAX       512u                /* messages in one group commit */
#define QUEUE_BATCH_RESTARTS  3u                  /* group commits begun again after a rollback */
#define QUEUE_ORPHAN_AGE      3600                /* seconds before a body without a row goes */
#define QUEUE_INGEST_STEP_MESSAGES 500u           /* messages of a bundle in one commit */
#define QUEUE_INGEST_STEP_BYTES (4u * 1024 * 1024) /* their bodies, at most (or one message) */

/* The reason of a recipient failed because its queue_lifetime ran out
 * starts with this (the SMTP client writes it, the report step reads it). */
#define QUEUE_EXPIRED_PREFIX "expired: "
/* The reason of a recipient failed because its message crossed more than
 * hop_limit nodes (a loop) starts with this (the run writes it, the report
 * step reads it). */
#define QUEUE_LOOP_PREFIX "hop limit reached: "
/* The reason of a recipient failed because the directory no longer knows
 * it (the run writes it, the report step reads it). */
#define QUEUE_UNKNOWN_PREFIX "no such recipient in the directory any more"

typedef struct {
	char *address;          /* local@domain, as accepted */
	guint notify;           /* NOTIFY= MAIL_NOTIFY_* bits (mail_params.h), 0: not given */
	char *orcpt;            /* ORCPT: "type;address" decoded, or NULL */
	QueueState state;       /* queue_state.h: change it with queue_rcpt_enter */
	QueueState logged;      /* the state last logged (as loaded, or accepted) */
	char *reason;           /* why it is in that state, or NULL */
	gint64 next_attempt;    /* unix time, 0: none */
	char *last_reply;       /* the last SMTP reply about it, or NULL */
	/* The batch run's. */
	guint idx;              /* its row within the message */
	char *po;               /* routed or bundled to this NET/PO, or NULL */
	char *legacy;           /* its legacy address NET/PO/MAILBOX there, or NULL;
	                         * a legacy message's copy for SMTP: the address
	                         * its sender wrote, for a report */
	int parent;             /* the list row it was expanded from, or -1 */
	gboolean bcc;           /* in no To: or Cc: field: a copy of its own */
	gint64 bundle_seq;      /* the bundle it went out in, 0: none yet */
	char *via;              /* smtp-pending: "smtp" or "site-link NAME" */
	char *rcpt_to;          /* smtp-pending: the address to send to */
	char *report;           /* reported: the queue id of the report about it */
} QueueRcpt;

/* queue_rcpt_enter - move r to state to with a reason (NULL: none), when
 * the queue model allows it; FALSE, an error logged and r unchanged when not */
gboolean queue_rcpt_enter(QueueRcpt *r, QueueState to, const char *reason);
/* queue_rcpt_log - once its new state is stored: "QID: to=<ADDR>, OLD ->
 * NEW (REASON)" when r changed state since it was last logged */
void queue_rcpt_log(const char *qid, QueueRcpt *r);

/* One recipient row, for a bundle's record. */
typedef struct {
	const char *qid;
	guint idx;
} QueueItem;

/* A bundle recorded but perhaps not yet written. */
typedef struct {
	char *po;
	guint64 seq;
	char *name;             /* its file name in the postoffice's in/ */
	GBytes *data;
} QueueBundle;

typedef struct {
	char *qid;
	gint64 arrival;         /* unix time */
	gint64 size;            /* body bytes */
	char *sender;           /* "" for the null sender <> */
	char *envid;            /* DSN ENVID, decoded, or NULL */
	MailRet ret;            /* RET= (mail_params.h) */
	MailBody body;          /* BODY= */
	char *client;           /* client IP address, or "local" for submit */
	char *helo;             /* what it said in HELO/EHLO, or NULL */
	char *protocol;         /* "SMTP", "ESMTP", "ESMTPS", "local" */
	guint hops;             /* Received: header fields, ours included */
	char *message_id;       /* the Message-ID field, or NULL */
	char *format;           /* "mime" (RFC 5322 bytes) or "legacy" (a message entry) */
	char *origin;           /* NET/PO#SEQ for a message from a postoffice, else NULL */
	int report_class;       /* 0: a message; a report: its MsgClass (message.h) */
	char *about;            /* a report: the queue id of the message it is about */
	char *report_to;        /* a legacy message's copy for SMTP: its originator
	                         * NET/PO/MAILBOX, where a non-delivery report goes */
	guint requests;         /* what that originator asked: MSG_REQ_* (message.h) */
	gint64 warned;          /* when its delay notice, or the postmaster's notice that it
	                         * is held, was queued (or found not to be owed); 0: none.
	                         * queue_translated stores it when it is set on orig */
	GPtrArray *rcpts;       /* QueueRcpt * */
} QueueEnvelope;

typedef struct Queue Queue;
typedef struct QueueBody QueueBody;
typedef struct QueueCommitter QueueCommitter;
/* Called in the thread that calls queue_committer_collect; error NULL on success. */
typedef void (*QueueDone)(gpointer data, const GError *error);

/* queue_open - open (creating and migrating) state_dir/queue.db and queue/ */
Queue *queue_open(const char *state_dir, GError **error);
/* queue_close - close a queue; NULL is fine */
void queue_close(Queue *q);
/* queue_id_new - a fresh queue id (QUEUE_ID_LEN upper-case hex digits); g_free it */
char *queue_id_new(void);
/* queue_id_valid - whether text looks like a queue id (safe as a file name) */
gboolean queue_id_valid(const char *text);

/* queue_envelope_new - an empty envelope for queue id qid */
QueueEnvelope *queue_envelope_new(const char *qid);
/* queue_envelope_free - free an envelope; NULL is fine */
void queue_envelope_free(QueueEnvelope *env);
/* queue_rcpt_free - free a recipient row that is in no envelope */
void queue_rcpt_free(QueueRcpt *r);
/* queue_envelope_add_rcpt - add an accepted recipient */
void queue_envelope_add_rcpt(QueueEnvelope *env, const char *address, guint notify,
    const char *orcpt);

/* queue_body_new - a body being received for message qid: memory first, then a file */
QueueBody *queue_body_new(Queue *q, const char *qid);
/* queue_body_append - append len bytes; FALSE when the spill file fails */
gboolean queue_body_append(QueueBody *b, const void *data, gsize len, GError **error);
/* queue_body_size - bytes appended so far */
gint64 queue_body_size(const QueueBody *b);
/* queue_body_discard - throw a body away (its spill file too); NULL is fine */
void queue_body_discard(QueueBody *b);

/* queue_commit - make one message durable now; takes body (freed either way) */
gboolean queue_commit(Queue *q, const QueueEnvelope *env, QueueBody *body, GError **error);

/* queue_committer_new - start the group-commit thread over q (which it then uses alone) */
QueueCommitter *queue_committer_new(Queue *q, GError **error);
/* queue_committer_fd - readable when finished commits wait for queue_committer_collect */
int queue_committer_fd(const QueueCommitter *c);
/* queue_committer_submit - queue env + body for the next group commit; takes both */
void queue_committer_submit(QueueCommitter *c, QueueEnvelope *env, QueueBody *body,
    QueueDone done, gpointer data);
/* queue_committer_collect - call the done callbacks of finished commits */
void queue_committer_collect(QueueCommitter *c);
/* queue_committer_pending - submitted commits whose callbacks have not run */
guint queue_committer_pending(const QueueCommitter *c);
/* queue_committer_free - finish what was submitted, then stop */
void queue_committer_free(QueueCommitter *c);

/* queue_cleanup - at start-up of the listener: remove body files no row names */
gboolean queue_cleanup(Queue *q, GError **error);
/* queue_list - every message, oldest first, recipients included */
GPtrArray *queue_list(Queue *q, GError **error);
/* queue_get - one message; NULL and QUEUE_ERROR_NOT_FOUND when there is none */
QueueEnvelope *queue_get(Queue *q, const char *qid, GError **error);
/* queue_body_read - up to max bytes of a message's body (max < 0: all of it) */
GBytes *queue_body_read(Queue *q, const char *qid, gint64 max, GError **error);
/* queue_hold - hold every recipient not yet finished, with reason */
gboolean queue_hold(Queue *q, const char *qid, const char *reason, GError **error);
/* queue_release - give held recipients back the state they had */
gboolean queue_release(Queue *q, const char *qid, GError **error);
/* queue_delete - remove a message and its body from the queue */
gboolean queue_delete(Queue *q, const char *qid, GError **error);

/* queue_set_routes - store every recipient row of env (updated or new) in one
 * commit; then each change of state is logged (queue_rcpt_log) */
gboolean queue_set_routes(Queue *q, QueueEnvelope *env, GError **error);
/* queue_set_routes_many - queue_set_routes of every envelope in envs, in one commit */
gboolean queue_set_routes_many(Queue *q, GPtrArray *envs, GError **error);
/* queue_batch_begin - until queue_batch_commit, the queue's commits are one
 * transaction, made durable at once (pg_db_batch_begin): for a step that
 * stores many small things (reports) and acts on none of them outside the
 * queue before the batch commits */
gboolean queue_batch_begin(Queue *q, GError **error);
/* queue_batch_full - the batch holds enough to be committed now */
gboolean queue_batch_full(Queue *q);
/* queue_batch_commit - the batch made durable; on failure none of it is */
gboolean queue_batch_commit(Queue *q, GError **error);
/* queue_translated - in one commit: the new message env (body, recipients
 * with their states) and the changed recipient rows of orig it came from:
 * a legacy message's translation, or a report and the rows it reports on
 * (orig->rcpts may hold only those: a delay notice changes none).  Fails,
 * storing nothing, with QUEUE_ERROR_NOT_FOUND when orig is no longer in the
 * queue or orig->warned is set and another notice is already recorded */
gboolean queue_translated(Queue *q, QueueEnvelope *orig, QueueEnvelope *env,
    GBytes *body, GError **error);
/* queue_delayed - the messages that may owe a delay notice: arrived at or
 * before before, none queued yet (warned 0), not a report, not from the
 * null sender; a legacy message's copy whose sender did not ask for no
 * reports (MSG_REQ_NO_NDR) with a row waiting for SMTP, or an Internet
 * message with a row that asked NOTIFY=DELAY not yet finished */
GPtrArray *queue_delayed(Queue *q, gint64 before, GError **error);
/* queue_set_warned - record that message qid's delay notice is dealt with at
 * when (none was owed, or none could be made); QUEUE_ERROR_NOT_FOUND when
 * it is no longer in the queue or already recorded */
gboolean queue_set_warned(Queue *q, const char *qid, gint64 when, GError **error);
/* queue_bundle_seq_next - the sequence number the next bundle to po gets */
guint64 queue_bundle_seq_next(Queue *q, const char *po, GError **error);
/* queue_bundle_record - in one commit: take seq for po, keep the bundle's
 * bytes, and mark its recipient rows items (QueueItem) as going out in it */
gboolean queue_bundle_record(Queue *q, const char *po, guint64 seq, const char *name,
    GBytes *data, const GArray *items, GError **error);
/* queue_bundles_unwritten - bundles recorded whose files are not known written */
GPtrArray *queue_bundles_unwritten(Queue *q, GError **error);
/* queue_bundle_free - free a QueueBundle; NULL is fine */
void queue_bundle_free(QueueBundle *b);
/* queue_bundle_written - the file of (po, seq) is durable: its recipients
 * are bundled, its bytes forgotten, finished messages removed (*finished) */
gboolean queue_bundle_written(Queue *q, const char *po, guint64 seq, guint *finished,
    GError **error);
typedef enum {
	QUEUE_LEDGER_NEW,       /* never applied */
	QUEUE_LEDGER_SAME,      /* applied, with the same HMAC: a rewrite, drop it */
	QUEUE_LEDGER_OTHER,     /* applied (or begun) with other contents: a replay, refuse it */
	QUEUE_LEDGER_PARTIAL,   /* begun with the same HMAC: go on where it stopped */
	QUEUE_LEDGER_ERROR,
} QueueLedger;

/* queue_ledger_check - whether bundle (po, seq) with this HMAC was applied;
 * *next: the entries before it are queued already (PARTIAL), else 0 */
QueueLedger queue_ledger_check(Queue *q, const char *po, guint64 seq, const guint8 *hmac,
    gsize len, guint *next, GError **error);
/* queue_ingest - queue the messages of bundle (po, seq) from entry first on
 * (envs[i], bodies[i]: entry i's envelope and bytes; NULL for an entry that
 * is no message), in commits of at most QUEUE_INGEST_STEP_MESSAGES messages
 * and QUEUE_INGEST_STEP_BYTES of bodies, each recording how far the bundle
 * got, the last one that it is applied; bodies over QUEUE_SPILL_AT in files
 * of their own.  *done: the entries before it are queued, even on failure */
gboolean queue_ingest(Queue *q, const char *po, guint64 seq, const guint8 *hmac, gsize len,
    guint first, GPtrArray *envs, GPtrArray *bodies, guint *done, GError **error);
/* queue_finish - remove every message whose recipients are all finished */
gboolean queue_finish(Queue *q, guint *finished, GError **error);

/* One delivery outcome of a recipient row, for queue_smtp_outcomes. */
typedef struct {
	const char *qid;
	guint idx;
	QueueState state;       /* sent, deferred or held */
	const char *reason;     /* NULL for sent */
	const char *last_reply; /* the server's reply or what went wrong; NULL: keep */
	gint64 next_attempt;    /* deferred: unix time; else 0 */
} QueueOutcome;

/* What the SMTP client remembers of a destination. */
typedef struct {
	gint64 single_until;    /* one message per session until then (unix time) */
	gint64 retry_at;        /* not tried before then */
	guint failures;         /* attempts in a row that found it unreachable */
	char *last_reply;       /* why it is backed off, or NULL */
} QueueDest;

/* queue_smtp_waiting - messages with recipients smtp-pending or deferred
 * whose next attempt is not after due (due <= 0: all of them), only qid's
 * when qid is not NULL, oldest first */
GPtrArray *queue_smtp_waiting(Queue *q, const char *qid, gint64 due, GError **error);
/* queue_failed - messages with recipients failed (a report owed), oldest first */
GPtrArray *queue_failed(Queue *q, GError **error);
/* queue_smtp_later - recipients waiting for SMTP whose next attempt is after due; -1 on error */
gint64 queue_smtp_later(Queue *q, gint64 due, GError **error);
/* queue_smtp_outcomes - in one commit: n outcomes (rows no longer waiting
 * are left alone, but for a sent one held meanwhile, which is sent), and
 * the messages they finish removed (*finished) */
gboolean queue_smtp_outcomes(Queue *q, const QueueOutcome *o, guint n, guint *finished,
    GError **error);
/* queue_dest_get - what is remembered of dest (all zero: nothing) */
gboolean queue_dest_get(Queue *q, const char *dest, QueueDest *out, GError **error);
/* queue_dest_set - remember d for dest */
gboolean queue_dest_set(Queue *q, const char *dest, const QueueDest *d, GError **error);
/* queue_dest_clear - free what queue_dest_get stored in d */
void queue_dest_clear(QueueDest *d);
/* queue_dest_list - "DEST\tSINGLE_UNTIL\tRETRY_AT\tFAILURES\tLAST_REPLY" lines */
GPtrArray *queue_dest_list(Queue *q, GError **error);

/* What is remembered of an Internet message that went into a postoffice,
 * so that the postoffice's report about it becomes a DSN (queue_sent.c). */
#define QUEUE_SENT_HEADER_MAX (64u * 1024)   /* bytes of its header section kept */
#define QUEUE_SENT_FULL_MAX   (1024u * 1024) /* RET=FULL: the message kept whole up to this */

typedef struct {
	QueueEnvelope *env;     /* its envelope (sender, envid, ret, arrival, hops,
	                         * message_id; for a legacy message's copy report_to
	                         * and requests); rcpts: the rows that went into a
	                         * postoffice, or a legacy copy's rows sent over
	                         * SMTP, with address, notify, orcpt, po, legacy */
	GBytes *returned;       /* what a DSN returns: the header section, or the
	                         * message whole (full); NULL: nothing */
	gboolean full;
	gboolean queued;        /* still in the queue: some rows are not finished */
	gint64 kept_until;      /* a record's end (unix time); 0 while queued */
} QueueSent;

/* queue_set_sent_window - keep a record of each Internet message removed
 * with rows bundled into a postoffice for seconds ([site] report_window; 0:
 * keep none) */
void queue_set_sent_window(Queue *q, gint64 seconds);
/* queue_sent_get - the message qid, from the queue or its record; NULL and
 * QUEUE_ERROR_NOT_FOUND when neither has it (or it is no Internet message) */
QueueSent *queue_sent_get(Queue *q, const char *qid, GError **error);
/* queue_sent_find - the queue id of the legacy message's copy sent over
 * SMTP whose ENVID is envid or whose Message-ID is <message_id> (either may
 * be NULL), queued or remembered; NULL and QUEUE_ERROR_NOT_FOUND: none */
char *queue_sent_find(Queue *q, const char *envid, const char *message_id, GError **error);
/* queue_sent_free - free a QueueSent; NULL is fine */
void queue_sent_free(QueueSent *s);
/* queue_sent_prune - forget records whose window ended by now (*pruned: how many) */
gboolean queue_sent_prune(Queue *q, gint64 now, guint *pruned, GError **error);
/* queue_header_section - the length of the header section at the start of
 * len bytes of a message, its last line end included, at most
 * QUEUE_SENT_HEADER_MAX (no empty line: all of them, up to that) */
gsize queue_header_section(const guint8 *data, gsize len);

#endif
