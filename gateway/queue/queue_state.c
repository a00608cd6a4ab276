/* queue_state.c - a recipient's state as one typed machine (see queue_state.h). */
#include "config.h"

#include <string.h>

#include "pg_log.h"
#include "queue/queue.h"

static const char *const names[QUEUE_ST_COUNT] = {
	[QUEUE_ST_ACCEPTED] = QUEUE_STATE_NAME_ACCEPTED,
	[QUEUE_ST_ROUTED] = QUEUE_STATE_NAME_ROUTED,
	[QUEUE_ST_BUNDLING] = QUEUE_STATE_NAME_BUNDLING,
	[QUEUE_ST_BUNDLED] = QUEUE_STATE_NAME_BUNDLED,
	[QUEUE_ST_SMTP_PENDING] = QUEUE_STATE_NAME_SMTP_PENDING,
	[QUEUE_ST_DEFERRED] = QUEUE_STATE_NAME_DEFERRED,
	[QUEUE_ST_SENT] = QUEUE_STATE_NAME_SENT,
	[QUEUE_ST_EXPANDED] = QUEUE_STATE_NAME_EXPANDED,
	[QUEUE_ST_DUPLICATE] = QUEUE_STATE_NAME_DUPLICATE,
	[QUEUE_ST_HELD] = QUEUE_STATE_NAME_HELD,
	[QUEUE_ST_FAILED] = QUEUE_STATE_NAME_FAILED,
	[QUEUE_ST_REPORTED] = QUEUE_STATE_NAME_REPORTED,
	[QUEUE_ST_DONE] = QUEUE_STATE_NAME_DONE,
};

#define BIT(s) (1u << (s))

/* Where each state may go (DESIGN's queue model).  A hold by an
 * administrator and its release are not transitions of the machine: they
 * park a recipient and give it back the state it had (queue_hold). */
static const guint next[QUEUE_ST_COUNT] = {
	[QUEUE_ST_ACCEPTED] = BIT(QUEUE_ST_ROUTED) | BIT(QUEUE_ST_SMTP_PENDING) |
	    BIT(QUEUE_ST_EXPANDED) | BIT(QUEUE_ST_DUPLICATE) | BIT(QUEUE_ST_HELD) |
	    BIT(QUEUE_ST_FAILED) | BIT(QUEUE_ST_DONE),
	[QUEUE_ST_ROUTED] = BIT(QUEUE_ST_BUNDLING) | BIT(QUEUE_ST_HELD),
	[QUEUE_ST_BUNDLING] = BIT(QUEUE_ST_BUNDLED),
	/* done: a legacy message's recipient once its MIME translation is queued */
	[QUEUE_ST_SMTP_PENDING] = BIT(QUEUE_ST_SENT) | BIT(QUEUE_ST_DEFERRED) |
	    BIT(QUEUE_ST_HELD) | BIT(QUEUE_ST_FAILED) | BIT(QUEUE_ST_DONE),
	[QUEUE_ST_DEFERRED] = BIT(QUEUE_ST_SENT) | BIT(QUEUE_ST_DEFERRED) | BIT(QUEUE_ST_HELD) |
	    BIT(QUEUE_ST_FAILED),
	/* sent: the 250 came while an administrator held it (a fact) */
	[QUEUE_ST_HELD] = BIT(QUEUE_ST_SENT),
	/* done: the sender asked for no report */
	[QUEUE_ST_FAILED] = BIT(QUEUE_ST_REPORTED) | BIT(QUEUE_ST_HELD) | BIT(QUEUE_ST_DONE),
	[QUEUE_ST_REPORTED] = BIT(QUEUE_ST_DONE),
};

static const guint finished = BIT(QUEUE_ST_BUNDLED) | BIT(QUEUE_ST_SENT) |
    BIT(QUEUE_ST_EXPANDED) | BIT(QUEUE_ST_DUPLICATE) | BIT(QUEUE_ST_DONE);

const char *
queue_state_name(QueueState s)
{
	return (guint)s < QUEUE_ST_COUNT ? names[s] : "?";
}

gboolean
queue_state_parse(const char *name, QueueState *out)
{
	for (guint i = 0; name && i < QUEUE_ST_COUNT; i++)
		if (strcmp(name, names[i]) == 0) {
			*out = (QueueState)i;
			return TRUE;
		}
	return FALSE;
}

gboolean
queue_state_finished(QueueState s)
{
	return (guint)s < QUEUE_ST_COUNT && (finished & BIT(s)) != 0;
}

gboolean
queue_state_allowed(QueueState from, QueueState to)
{
	return (guint)from < QUEUE_ST_COUNT && (guint)to < QUEUE_ST_COUNT &&
	    (next[from] & BIT(to)) != 0;
}

gboolean
queue_rcpt_enter(QueueRcpt *r, QueueState to, const char *reason)
{
	if (!queue_state_allowed(r->state, to)) {
		pg_error(NULL, "queue: <%s>: %s -> %s is not a transition of the queue model; "
		    "it stays %s", r->address, queue_state_name(r->state), queue_state_name(to),
		    queue_state_name(r->state));
		return FALSE;
	}
	r->state = to;
	g_free(r->reason);
	r->reason = g_strdup(reason);
	return TRUE;
}

void
queue_rcpt_log(const char *qid, QueueRcpt *r)
{
	if (r->state == r->logged)
		return;
	pg_info(qid, "to=<%s>, %s -> %s%s%s%s", r->address, queue_state_name(r->logged),
	    queue_state_name(r->state), r->reason ? " (" : "", r->reason ? r->reason : "",
	    r->reason ? ")" : "");
	r->logged = r->state;
}
