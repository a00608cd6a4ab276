/* queue_state.h - a recipient's state in the queue, as one typed machine.
 *
 * Owns: the states of DESIGN's queue model (docs/queue.md), their names as
 * queue.db and `queue list` write them, which of them are finished, which
 * transitions are allowed, the one function that moves a recipient from one
 * state to another, and its log line "QID: to=<ADDR>, OLD -> NEW (REASON)".
 * The SQL that names states takes them from here (QUEUE_SQL_*), so a state
 * is spelled once.  Never: storage (queue.h) or what a state means to the
 * run or the SMTP client.
 *
 *   accepted -> routed -> bundling -> bundled
 *            -> smtp-pending -> sent | deferred -> sent | deferred | failed | held
 *            -> expanded | duplicate | done
 *            -> held (a reason; an administrator releases it to where it was)
 *   failed -> reported -> done (delivery reports)
 */
#ifndef PG_QUEUE_STATE_H
#define PG_QUEUE_STATE_H

#include <glib.h>

/* The names, as stored.  Only this header spells them. */
#define QUEUE_STATE_NAME_ACCEPTED     "accepted"
#define QUEUE_STATE_NAME_ROUTED       "routed"
#define QUEUE_STATE_NAME_BUNDLING     "bundling"
#define QUEUE_STATE_NAME_BUNDLED      "bundled"
#define QUEUE_STATE_NAME_SMTP_PENDING "smtp-pending"
#define QUEUE_STATE_NAME_DEFERRED     "deferred"
#define QUEUE_STATE_NAME_SENT         "sent"
#define QUEUE_STATE_NAME_EXPANDED     "expanded"
#define QUEUE_STATE_NAME_DUPLICATE    "duplicate"
#define QUEUE_STATE_NAME_HELD         "held"
#define QUEUE_STATE_NAME_FAILED       "failed"
#define QUEUE_STATE_NAME_REPORTED     "reported"
#define QUEUE_STATE_NAME_DONE         "done"

typedef enum {
	QUEUE_ST_ACCEPTED,      /* queued, not yet routed */
	QUEUE_ST_ROUTED,        /* for a postoffice, in no bundle yet */
	QUEUE_ST_BUNDLING,      /* in a bundle recorded, its file perhaps not written */
	QUEUE_ST_BUNDLED,       /* in a bundle written: finished here */
	QUEUE_ST_SMTP_PENDING,  /* to go out by SMTP */
	QUEUE_ST_DEFERRED,      /* an SMTP attempt failed for now: next_attempt */
	QUEUE_ST_SENT,          /* a server took it: finished */
	QUEUE_ST_EXPANDED,      /* a list, replaced by its members: finished */
	QUEUE_ST_DUPLICATE,     /* the same as another recipient: finished */
	QUEUE_ST_HELD,          /* waits for an administrator, with a reason */
	QUEUE_ST_FAILED,        /* failed for good: a report is owed */
	QUEUE_ST_REPORTED,      /* the report about it is queued */
	QUEUE_ST_DONE,          /* nothing more to do: finished */
	QUEUE_ST_COUNT
} QueueState;

/* For SQL text: a state quoted, and the sets the queue's statements use. */
#define QUEUE_SQL(name) "'" name "'"
#define QUEUE_SQL_FINISHED "(" QUEUE_SQL(QUEUE_STATE_NAME_BUNDLED) ", " \
	QUEUE_SQL(QUEUE_STATE_NAME_EXPANDED) ", " QUEUE_SQL(QUEUE_STATE_NAME_DUPLICATE) ", " \
	QUEUE_SQL(QUEUE_STATE_NAME_DONE) ", " QUEUE_SQL(QUEUE_STATE_NAME_SENT) ")"
#define QUEUE_SQL_SMTP_WAITING "(" QUEUE_SQL(QUEUE_STATE_NAME_SMTP_PENDING) ", " \
	QUEUE_SQL(QUEUE_STATE_NAME_DEFERRED) ")"
/* What an administrator cannot hold: held already, in or past a bundle, finished. */
#define QUEUE_SQL_NOT_HOLDABLE "(" QUEUE_SQL(QUEUE_STATE_NAME_HELD) ", " \
	QUEUE_SQL(QUEUE_STATE_NAME_BUNDLING) ", " QUEUE_SQL(QUEUE_STATE_NAME_BUNDLED) ", " \
	QUEUE_SQL(QUEUE_STATE_NAME_EXPANDED) ", " QUEUE_SQL(QUEUE_STATE_NAME_DUPLICATE) ", " \
	QUEUE_SQL(QUEUE_STATE_NAME_DONE) ", " QUEUE_SQL(QUEUE_STATE_NAME_SENT) ")"
/* The CHECK of the state column since schema 5 (a new state needs a new
 * migration: this text is part of one). */
#define QUEUE_SQL_STATE_CHECK_V5 "state IN (" QUEUE_SQL(QUEUE_STATE_NAME_ACCEPTED) ", " \
	QUEUE_SQL(QUEUE_STATE_NAME_ROUTED) ", " QUEUE_SQL(QUEUE_STATE_NAME_BUNDLING) ", " \
	QUEUE_SQL(QUEUE_STATE_NAME_BUNDLED) ", " QUEUE_SQL(QUEUE_STATE_NAME_SMTP_PENDING) ", " \
	QUEUE_SQL(QUEUE_STATE_NAME_DEFERRED) ", " QUEUE_SQL(QUEUE_STATE_NAME_SENT) ", " \
	QUEUE_SQL(QUEUE_STATE_NAME_EXPANDED) ", " QUEUE_SQL(QUEUE_STATE_NAME_DUPLICATE) ", " \
	QUEUE_SQL(QUEUE_STATE_NAME_HELD) ", " QUEUE_SQL(QUEUE_STATE_NAME_FAILED) ", " \
	QUEUE_SQL(QUEUE_STATE_NAME_REPORTED) ", " QUEUE_SQL(QUEUE_STATE_NAME_DONE) ")"

/* The CHECK of the state column since schema 7: the same set as an OR of
 * equalities, which SQLite evaluates in place, where an IN list of
 * constants builds a temporary b-tree at every statement that writes a
 * row (measured: 4x the cost of an upsert). */
#define QUEUE_SQL_STATE_CHECK_V7 "(" "state = " QUEUE_SQL(QUEUE_STATE_NAME_ACCEPTED) " OR " \
	"state = " QUEUE_SQL(QUEUE_STATE_NAME_ROUTED) " OR " \
	"state = " QUEUE_SQL(QUEUE_STATE_NAME_BUNDLING) " OR " \
	"state = " QUEUE_SQL(QUEUE_STATE_NAME_BUNDLED) " OR " \
	"state = " QUEUE_SQL(QUEUE_STATE_NAME_SMTP_PENDING) " OR " \
	"state = " QUEUE_SQL(QUEUE_STATE_NAME_DEFERRED) " OR " \
	"state = " QUEUE_SQL(QUEUE_STATE_NAME_SENT) " OR " \
	"state = " QUEUE_SQL(QUEUE_STATE_NAME_EXPANDED) " OR " \
	"state = " QUEUE_SQL(QUEUE_STATE_NAME_DUPLICATE) " OR " \
	"state = " QUEUE_SQL(QUEUE_STATE_NAME_HELD) " OR " \
	"state = " QUEUE_SQL(QUEUE_STATE_NAME_FAILED) " OR " \
	"state = " QUEUE_SQL(QUEUE_STATE_NAME_REPORTED) " OR " \
	"state = " QUEUE_SQL(QUEUE_STATE_NAME_DONE) ")"

/* queue_state_name - the stored name of a state */
const char *queue_state_name(QueueState s);
/* queue_state_parse - the state of a stored name; FALSE when there is none */
gboolean queue_state_parse(const char *name, QueueState *out);
/* queue_state_finished - whether a recipient in s needs nothing more here
 * (the set QUEUE_SQL_FINISHED names) */
gboolean queue_state_finished(QueueState s);
/* queue_state_allowed - whether a recipient may go from one state to the
 * other (the diagram above; an administrator's hold and release aside) */
gboolean queue_state_allowed(QueueState from, QueueState to);

#endif
