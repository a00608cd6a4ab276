/* report_delay.c - delay notices, [delivery] delay_warning (see report.h
 * and report_int.h; docs/reports.md "Delay notices").
 *
 * Once per message, delay_warning after it arrived: to the legacy sender of
 * a legacy message's copy with rows still waiting for SMTP (smtp-pending,
 * deferred), a legacy report whose items are "delayed" (bundle format
 * report status 2), routed to the sender's postoffice, the original not
 * returned; to the SMTP sender of an Internet message, a DSN with "Action:
 * delayed" about its rows that asked NOTIFY=DELAY and are not yet
 * finished (not yet written to their postoffice, held, or waiting for
 * SMTP), returning its header section.  The notice is queued in the commit
 * that records it in the message's warned column, so that a crash makes
 * neither none nor two; that commit touches none of the message's rows
 * (an administrator may hold or delete it meanwhile).  A notice that
 * cannot be made (no route to its sender, a DSN that cannot be built) is
 * logged and recorded as dealt with: the message itself goes on, and its
 * failure, if it comes, is reported as ever.  One that fails on the queue
 * (a body not read, a commit refused) is tried again at the next run.  queue_delayed lists nothing that is a
 * report or from the null sender, and no legacy message whose sender asked
 * for no reports. */
#include "config.h"

#include <string.h>

#include "dir_store.h"
#include "message.h"
#include "pg_log.h"
#include "report/report_int.h"
#include "report/report_status.h"

/* A legacy message's copy: a row still waiting for SMTP. */
static gboolean
waits_for_smtp(const QueueRcpt *r)
{
	return r->state == QUEUE_ST_SMTP_PENDING || r->state == QUEUE_ST_DEFERRED;
}

/* An Internet message: a row that asked NOTIFY=DELAY and is not finished
 * (a row held because its failure could not be reported is not delayed). */
static gboolean
waits_notify_delay(const QueueRcpt *r)
{
	if (!(r->notify & MAIL_NOTIFY_DELAY))
		return FALSE;
	switch (r->state) {
	case QUEUE_ST_ACCEPTED:
	case QUEUE_ST_ROUTED:
	case QUEUE_ST_BUNDLING:
	case QUEUE_ST_SMTP_PENDING:
	case QUEUE_ST_DEFERRED:
		return TRUE;
	case QUEUE_ST_HELD:
		return !(r->reason && strstr(r->reason, RP_UNREPORTED));
	default:
		return FALSE;
	}
}

/* No notice for env after all (why: a warning, or NULL): recorded, so that
 * it is not looked at again. */
static void
dealt_with(Queue *q, const QueueEnvelope *env, gint64 now, const char *why, ReportStats *st)
{
	GError *e = NULL;

	if (why)
		pg_warn(env->qid, "no delay notice could be made: %s", why);
	if (!queue_set_warned(q, env->qid, now, &e)) {
		pg_error(env->qid, "report: %s", e->message);
		g_error_free(e);
		st->errors++;
	}
}

/* What a notice's commit stores of env: that it is still queued, and
 * warned; none of its rows. */
static void
notice_owner(QueueEnvelope *owner, GPtrArray *no_rows, const QueueEnvelope *env, gint64 now)
{
	memset(owner, 0, sizeof *owner);
	owner->qid = env->qid;
	owner->warned = now;
	owner->rcpts = no_rows;
}

/* A notice not queued for a failure of the queue: tried next time. */
static void
notice_failed(const QueueEnvelope *env, GError *e, ReportStats *st)
{
	pg_error(env->qid, "report: %s", e->message);
	st->errors++;
}

/* The legacy sender of env (a legacy message's copy) told that rows wait. */
static void
notice_legacy(Site *site, Queue *q, QueueEnvelope *env, GPtrArray *rows, gint64 now,
    ReportStats *st)
{
	char *po = NULL, *legacy = NULL, *why = NULL, *qid;
	GError *e = NULL;
	GBytes *bytes = rp_ndr_bytes(site, q, env, rows, TRUE, &po, &legacy, &why, &e);
	GPtrArray *no_rows = g_ptr_array_new();
	QueueEnvelope *rep, owner;

	if (!bytes) {
		g_free(po);
		g_free(legacy);
		if (e)
			notice_failed(env, e, st);
		else
			dealt_with(q, env, now, why, st);
		g_clear_error(&e);
		g_free(why);
		g_ptr_array_unref(no_rows);
		return;
	}
	notice_owner(&owner, no_rows, env, now);
	qid = queue_id_new();
	rep = rp_report_envelope(qid, MSG_CLASS_NDR, env->report_to, po, legacy, env->qid,
	    env->hops, (gint64)g_bytes_get_size(bytes));
	if (queue_translated(q, &owner, rep, bytes, &e)) {
		pg_info(qid, "queued: from=<>, size=%" G_GINT64_FORMAT ", nrcpt=1, delay notice "
		    "about %s (%u recipient%s) to %s", rep->size, env->qid, rows->len,
		    rows->len == 1 ? "" : "s", env->report_to);
		st->delay_notices++;
		st->delayed += rows->len;
	} else {
		notice_failed(env, e, st);   /* nothing stored */
		g_error_free(e);
	}
	queue_envelope_free(rep);
	g_bytes_unref(bytes);
	g_ptr_array_unref(no_rows);
	g_free(qid);
}

/* The status of a delayed row: its last reply's, in class 4; else 4.4.1
 * for SMTP not yet answered, 4.3.0 for a postoffice not yet written. */
static void
delayed_status(const QueueRcpt *r, char status[REPORT_STATUS_SIZE])
{
	gboolean smtp = waits_for_smtp(r);

	if (r->last_reply && report_status_of_reply(r->last_reply, strlen(r->last_reply),
	    status))
		status[0] = '4';
	else
		g_strlcpy(status, smtp ? "4.4.1" : "4.3.0", REPORT_STATUS_SIZE);
}

/* The SMTP sender of env (an Internet message) told that rows wait. */
static void
notice_internet(Site *site, Queue *q, QueueEnvelope *env, GPtrArray *rows, gint64 now,
    ReportStats *st)
{
	gint64 lifetime = config_int(site->cfg, CONFIG_DELIVERY_QUEUE_LIFETIME);
	char (*status)[REPORT_STATUS_SIZE] = g_malloc0_n(rows->len, REPORT_STATUS_SIZE);
	DsnRcpt *dr = g_new0(DsnRcpt, rows->len);
	GPtrArray *none = g_ptr_array_new();
	DsnReport rep = { 0 };
	QueueEnvelope *out = NULL, owner;
	GError *e = NULL;
	char *from, *subject;

	for (guint i = 0; i < rows->len; i++) {
		const QueueRcpt *r = rows->pdata[i];

		delayed_status(r, status[i]);
		dr[i].final_recipient = r->rcpt_to ? r->rcpt_to : r->address;
		dr[i].original_recipient = r->orcpt;
		dr[i].action = "delayed";
		dr[i].status = status[i];
		if (r->last_reply) {
			dr[i].diagnostic_type = "smtp";
			dr[i].diagnostic = r->last_reply;
		} else {
			dr[i].diagnostic = r->reason ? r->reason : waits_for_smtp(r) ?
			    "not yet sent" : "not yet written to its postoffice";
		}
		if (waits_for_smtp(r))
			dr[i].will_retry_until = env->arrival + lifetime;
	}
	rep.original = queue_body_read(q, env->qid, (gint64)QUEUE_SENT_HEADER_MAX, &e);
	if (!rep.original) {
		notice_failed(env, e, st);
		g_error_free(e);
		g_ptr_array_unref(none);
		g_free(status);
		g_free(dr);
		return;
	}
	rp_dsn_about(site, &rep, env, &from, &subject);
	rep.rcpts = dr;
	rep.n_rcpts = rows->len;
	notice_owner(&owner, none, env, now);
	if (rp_dsn_queue(site, q, &owner, none, QUEUE_ST_DONE, &rep, MSG_CLASS_NDR, env->qid,
	    env->hops, &out, &e)) {
		st->delay_notices++;
		st->delayed += rows->len;
	} else if (e->domain == DSN_ERROR) {
		dealt_with(q, env, now, e->message, st);
	} else {
		notice_failed(env, e, st);
	}
	g_clear_error(&e);
	queue_envelope_free(out);
	if (rep.original)
		g_bytes_unref(rep.original);
	g_ptr_array_unref(none);
	g_free(subject);
	g_free(from);
	g_free(status);
	g_free(dr);
}

void
rp_delayed(Site *site, Queue *q, ReportStats *st)
{
	gint64 warning = config_int(site->cfg, CONFIG_DELIVERY_DELAY_WARNING);
	gint64 now = g_get_real_time() / G_USEC_PER_SEC;
	GPtrArray *envs, *rows;
	GError *e = NULL;
	gboolean batch;

	if (warning <= 0)
		return;
	envs = queue_delayed(q, now - warning, &e);
	if (!envs) {
		pg_error(NULL, "reports: %s", e->message);
		g_error_free(e);
		st->errors++;
		return;
	}
	/* Routing answers from one snapshot of the directory. */
	batch = envs->len > 0 && dir_read_begin(site->dir, NULL);
	rows = g_ptr_array_new();
	for (guint i = 0; i < envs->len; i++) {
		QueueEnvelope *env = envs->pdata[i];
		gboolean legacy = env->report_to != NULL;

		g_ptr_array_set_size(rows, 0);
		for (guint j = 0; j < env->rcpts->len; j++) {
			QueueRcpt *r = env->rcpts->pdata[j];

			if (legacy ? waits_for_smtp(r) : waits_notify_delay(r))
				g_ptr_array_add(rows, r);
		}
		if (rows->len == 0)
			dealt_with(q, env, now, NULL, st);   /* none waits that asked */
		else if (legacy)
			notice_legacy(site, q, env, rows, now, st);
		else
			notice_internet(site, q, env, rows, now, st);
	}
	if (batch)
		dir_read_end(site->dir);
	g_ptr_array_unref(rows);
	g_ptr_array_unref(envs);
}
