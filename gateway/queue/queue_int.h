/* queue_int.h - what the files of the queue share (private; queue.h is the
 * interface).
 *
 *   queue.c         queue.db's schema and open, ids, envelopes, shared helpers
 *   queue_body.c    a message body while it arrives: in memory, then spilled
 *   queue_commit.c  rows inserted; the group commit of the listener's messages
 *   queue_admin.c   reading (list, show) and an administrator's changes,
 *                   cleanup of bodies no row names
 *   queue_run.c     what the batch run stores: routes, translations, bundles
 *                   from the postoffices ingested in bounded steps
 *   queue_bundle.c  bundles to the postoffices: sequence numbers, the record
 *                   before the write, finished messages removed
 *   queue_smtp.c    what the SMTP client reads and stores: waiting messages,
 *                   outcomes, destinations
 *   queue_sent.c    finished messages removed, and what a report about an
 *                   Internet message that went into a postoffice needs
 *                   remembered until [site] report_window ends
 *   queue_state.c   the recipient's state machine (queue_state.h)
 * Names here carry qi_; nothing outside gateway/queue/ includes this header.
 */
#ifndef PG_QUEUE_INT_H
#define PG_QUEUE_INT_H

#include <sys/types.h>

#include <sqlite3.h>

#include "pg_db.h"
#include "queue/queue.h"

/* The statements every message is written with, prepared once (pg_db_stmt). */
enum {
	QI_ST_INSERT_MESSAGE,
	QI_ST_INSERT_RCPT,
	QI_ST_DELETE_RCPTS,
	QI_ST_DELETE_MESSAGE,
	QI_ST_SENT_ROWS,
	QI_ST_SENT_MESSAGE,
	QI_ST_INSERT_SENT,
	QI_ST_INSERT_SENT_RCPT,
	QI_ST_REPORTS_GONE,
	QI_ST_COUNT
};
extern const char *const qi_stmt_sql[QI_ST_COUNT];

struct Queue {
	char *state_dir;
	char *body_dir;         /* state_dir/queue */
	int dir_fd;             /* body_dir, for fsync */
	PgDb *pg;
	sqlite3 *db;            /* pg's connection */
	sqlite3_stmt *upsert;   /* upsert_rcpts', prepared once */
	gint64 sent_window;     /* seconds a sent record is kept; 0: none made */
};

struct QueueBody {
	Queue *q;
	char *qid;
	GByteArray *mem;        /* until QUEUE_SPILL_AT */
	int fd;                 /* the spill file queue/QID, or -1 */
	gint64 size;
};

/* queue.c */
gboolean qi_io_fail(GError **error, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
char *qi_body_path(const Queue *q, const char *qid);
gboolean qi_write_all(int fd, const void *data, gsize len, off_t *at);

/* queue_body.c */
gboolean qi_body_spill(QueueBody *b, GError **error);
void qi_body_free(QueueBody *b, gboolean unlink_file);

/* queue_commit.c */
gboolean qi_insert_rows(Queue *q, const QueueEnvelope *env, const QueueBody *body,
    GError **error);
gboolean qi_dir_sync(Queue *q, GError **error);
QueueBody *qi_body_file(Queue *q, const char *qid, const void *p, gsize n, GError **error);

/* queue_admin.c */
GPtrArray *qi_list_where(Queue *q, const char *where, const char *arg, GError **error);

/* queue_sent.c */
/* Remove the finished message qid (its recipients, then its row), naming
 * it in gone ('f'/'i' + qid by file: whether its body is a file of its
 * own, see qi_finished_gone); an Internet message with rows bundled into a
 * postoffice is remembered first (queue_sent_get) */
gboolean qi_remove_finished(Queue *q, const char *qid, gboolean file, GPtrArray *gone,
    GError **error);

/* queue_bundle.c */
/* After the commit: log and remove what gone names ('f'/'i' + qid: a
 * message removed, with or without a body file of its own; 'r' +
 * "QID\tADDRESS\tREPORT": a reported recipient made done) */
void qi_finished_gone(Queue *q, GPtrArray *gone);
/* How many messages gone names (its 'r' lines are no messages) */
guint qi_gone_messages(const GPtrArray *gone);
/* Delete every message whose recipients are all finished, into gone */
gboolean qi_delete_finished(Queue *q, GPtrArray *gone, GError **error);
/* Reported recipients whose report has left the queue made done, into
 * gone; how many, -1 on error */
int qi_reports_gone(Queue *q, GPtrArray *gone, GError **error);

#endif
