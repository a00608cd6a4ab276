/* report_dsn.c - delivery status notifications (RFC 3464) to SMTP senders
 * (see report.h and report_int.h; docs/reports.md has the mapping).
 *
 * Two sources: recipients of an Internet message that failed at the
 * gateway (the directory no longer knows them, or the SMTP client failed
 * them for good: a relayed message), and the legacy reports a postoffice
 * sends about the copy of an Internet message the gateway wrote into it
 * (the copy's id is GATEWAY_PO:QID or GATEWAY_PO:QID.IDX; the message is
 * found in the queue or in what queue_sent.c remembers of it).  Either
 * way the DSN is one message from the null sender, queued in the commit
 * that changes the rows it is about, and routed like any message. */
#include "config.h"

#include <string.h>

#include <gmime/gmime.h>

#include "codepage.h"
#include "message.h"
#include "mime/mime_out.h"
#include "pg_log.h"
#include "report/dsn_build.h"
#include "report/report_int.h"
#include "report/report_status.h"

/* The host the gateway names itself by: [smtpd] hostname, else the system's. */
static const char *
reporting_host(Site *site)
{
	const char *h = config_string(site->cfg, CONFIG_SMTPD_HOSTNAME);

	return h && *h ? h : g_get_host_name();
}

/* The Subject of a header section, UTF-8, or NULL. */
static char *
subject_of(GBytes *returned)
{
	GMimeStream *stream;
	GMimeParser *parser;
	GMimeMessage *msg;
	char *subject = NULL;
	gsize len;
	const guint8 *data;

	if (!returned)
		return NULL;
	mime_out_gmime_init();
	data = g_bytes_get_data(returned, &len);
	stream = g_mime_stream_mem_new_with_buffer((const char *)data, len);
	parser = g_mime_parser_new_with_stream(stream);
	msg = g_mime_parser_construct_message(parser, NULL);
	if (msg && g_mime_message_get_subject(msg))
		subject = g_strdup(g_mime_message_get_subject(msg));
	if (msg)
		g_object_unref(msg);
	g_object_unref(parser);
	g_object_unref(stream);
	if (subject && !g_utf8_validate(subject, -1, NULL))
		g_clear_pointer(&subject, g_free);
	return subject;
}

void
rp_dsn_about(Site *site, DsnReport *r, const QueueEnvelope *env, char **from, char **subject)
{
	*from = g_strdup_printf(RP_DSN_FROM_MAILBOX "@%s", reporting_host(site));
	*subject = subject_of(r->original);
	r->reporting_mta = reporting_host(site);
	r->envid = env->envid;
	r->arrival = env->arrival;
	r->from = *from;
	r->to = env->sender;
	r->about_subject = *subject;
}

/* Whether a returned message holds 8-bit bytes (the DSN then goes 8BITMIME). */
static gboolean
has_8bit(GBytes *b)
{
	gsize len;
	const guint8 *d = b ? g_bytes_get_data(b, &len) : NULL;

	for (gsize i = 0; d && i < len; i++)
		if (d[i] & 0x80)
			return TRUE;
	return FALSE;
}

gboolean
rp_dsn_queue(Site *site, Queue *q, QueueEnvelope *owner, GPtrArray *rows, QueueState to,
    DsnReport *r, MsgClass class, const char *about, guint hops, QueueEnvelope **out,
    GError **error)
{
	char *qid = queue_id_new(), *mid, *reason;
	QueueEnvelope *env;
	GBytes *bytes;
	gboolean ok;

	mid = g_strdup_printf("%s.dsn@%s", qid, r->reporting_mta);
	r->message_id = mid;
	bytes = dsn_build(r, error);
	if (!bytes) {
		g_free(mid);
		g_free(qid);
		return FALSE;
	}
	env = rp_report_envelope(qid, class, r->to, NULL, NULL, about, hops,
	    (gint64)g_bytes_get_size(bytes));
	env->message_id = g_strdup_printf("<%s>", mid);
	env->body = r->return_full && has_8bit(r->original) ? MAIL_BODY_8BITMIME : MAIL_BODY_7BIT;
	reason = g_strdup_printf("delivery status notification %s to <%s>", qid, r->to);
	for (guint i = 0; i < rows->len; i++) {
		QueueRcpt *row = rows->pdata[i];

		queue_rcpt_enter(row, to, reason);
		if (to == QUEUE_ST_REPORTED) {
			g_free(row->report);
			row->report = g_strdup(qid);
		}
	}
	ok = queue_translated(q, owner, env, bytes, error);
	if (ok) {
		pg_info(qid, "queued: from=<>, size=%" G_GINT64_FORMAT ", nrcpt=1, %s about %s "
		    "(%u recipient%s) to <%s>", env->size, r->rcpts[0].action &&
		    strcmp(r->rcpts[0].action, "delayed") == 0 ? "delay notice (DSN)" :
		    "delivery status notification", about, r->n_rcpts, r->n_rcpts == 1 ? "" : "s",
		    r->to);
		*out = env;
	} else {
		queue_envelope_free(env);
	}
	g_bytes_unref(bytes);
	g_free(reason);
	g_free(mid);
	g_free(qid);
	return ok;
}

/* A report that could not be made: rows held (DSN_ERROR), or left for
 * the next step (a queue failure). */
static void
dsn_failed(Queue *q, QueueEnvelope *env, GPtrArray *rows, GError *e, ReportStats *st)
{
	if (e->domain == DSN_ERROR) {
		rp_hold(q, env, rows, e->message, st);
	} else {
		pg_error(env->qid, "report: %s", e->message);
		st->errors++;
	}
}

/* ---- failures at the gateway ------------------------------------------- */

/* The RFC 3463 status of a failed row: an expiry 5.4.7, a recipient the
 * directory lost 5.1.1, a loop 5.4.6, else the server's reply's (class 5). */
static void
failed_status(const QueueRcpt *r, char status[REPORT_STATUS_SIZE])
{
	if (r->reason && g_str_has_prefix(r->reason, QUEUE_EXPIRED_PREFIX)) {
		g_strlcpy(status, "5.4.7", REPORT_STATUS_SIZE);
	} else if (r->reason && g_str_has_prefix(r->reason, QUEUE_UNKNOWN_PREFIX)) {
		g_strlcpy(status, "5.1.1", REPORT_STATUS_SIZE);
	} else if (r->reason && g_str_has_prefix(r->reason, QUEUE_LOOP_PREFIX)) {
		g_strlcpy(status, "5.4.6", REPORT_STATUS_SIZE);
	} else if (r->last_reply && report_status_of_reply(r->last_reply,
	    strlen(r->last_reply), status)) {
		status[0] = '5';      /* a temporary code that became final */
	} else {
		g_strlcpy(status, "5.0.0", REPORT_STATUS_SIZE);
	}
}

void
rp_dsn_failed(Site *site, Queue *q, QueueEnvelope *env, GPtrArray *rows, ReportStats *st)
{
	GPtrArray *due = g_ptr_array_new(), *quiet = g_ptr_array_new();
	gint64 now = g_get_real_time() / G_USEC_PER_SEC;
	char (*status)[REPORT_STATUS_SIZE] = NULL;
	char *from = NULL, *subject = NULL;
	DsnRcpt *dr = NULL;
	DsnReport rep = { 0 };
	QueueEnvelope *out = NULL;
	GError *e = NULL;

	for (guint i = 0; i < rows->len; i++) {
		const QueueRcpt *r = rows->pdata[i];

		g_ptr_array_add(r->notify == 0 || (r->notify & MAIL_NOTIFY_FAILURE) ? due : quiet,
		    rows->pdata[i]);
	}
	if (quiet->len > 0) {
		if (rp_rows_enter(q, env, quiet, QUEUE_ST_DONE, "no report: NOTIFY did not ask "
		    "for one about a failure"))
			st->unreported += quiet->len;
		else
			st->errors++;
	}
	if (due->len == 0)
		goto out;
	rep.return_full = env->ret == MAIL_RET_FULL && env->size <= (gint64)QUEUE_SENT_FULL_MAX;
	rep.original = queue_body_read(q, env->qid, rep.return_full ? -1 :
	    (gint64)QUEUE_SENT_HEADER_MAX, NULL);
	dr = g_new0(DsnRcpt, due->len);
	status = g_malloc0_n(due->len, REPORT_STATUS_SIZE);
	for (guint i = 0; i < due->len; i++) {
		const QueueRcpt *r = due->pdata[i];

		failed_status(r, status[i]);
		dr[i].final_recipient = r->rcpt_to ? r->rcpt_to : r->address;
		dr[i].original_recipient = r->orcpt;
		dr[i].action = "failed";
		dr[i].status = status[i];
		if (r->last_reply && !(r->reason && g_str_has_prefix(r->reason,
		    QUEUE_EXPIRED_PREFIX))) {
			dr[i].diagnostic_type = "smtp";
			dr[i].diagnostic = r->last_reply;
		} else {
			dr[i].diagnostic = r->reason;
		}
		dr[i].last_attempt = now;
	}
	rp_dsn_about(site, &rep, env, &from, &subject);
	rep.rcpts = dr;
	rep.n_rcpts = due->len;
	if (rp_dsn_queue(site, q, env, due, QUEUE_ST_REPORTED, &rep, MSG_CLASS_NDR, env->qid,
	    env->hops, &out, &e)) {
		st->dsns++;
		st->dsn_reported += due->len;
	} else {
		dsn_failed(q, env, due, e, st);
		g_error_free(e);
	}
	queue_envelope_free(out);
	if (rep.original)
		g_bytes_unref(rep.original);
out:
	g_free(subject);
	g_free(from);
	g_free(status);
	g_free(dr);
	g_ptr_array_unref(due);
	g_ptr_array_unref(quiet);
}

/* ---- legacy reports about Internet mail --------------------------------- */

/* The queue id in a copy's legacy id GATEWAY_PO:QID[.IDX], or NULL. */
static char *
copy_qid(Site *site, const char *about)
{
	const char *gw = config_string(site->cfg, CONFIG_SITE_GATEWAY_PO);
	gsize n = strlen(gw);
	char *qid;

	if (!about || g_ascii_strncasecmp(about, gw, n) != 0 || about[n] != ':')
		return NULL;
	qid = g_strndup(about + n + 1, strcspn(about + n + 1, "."));
	if (!queue_id_valid(qid))
		g_clear_pointer(&qid, g_free);
	return qid;
}

/* The row of sent that became the legacy address addr, or NULL. */
static const QueueRcpt *
sent_row(const QueueSent *sent, const char *addr)
{
	for (guint i = 0; i < sent->env->rcpts->len; i++) {
		const QueueRcpt *r = sent->env->rcpts->pdata[i];

		if (r->legacy && g_ascii_strcasecmp(r->legacy, addr) == 0)
			return r;
	}
	return NULL;
}

/* The DSN recipients a legacy report's items ask for: a failure for a row
 * whose NOTIFY asks for failures (or says nothing), a delivery for one
 * that asked NOTIFY=SUCCESS.  Their texts are kept in texts. */
static guint
report_rcpts(const LegacyMessage *m, const QueueSent *sent, DsnRcpt *dr, GPtrArray *texts,
    gboolean *failed)
{
	guint n = 0;

	*failed = FALSE;
	for (guint i = 0; i < m->report_items->len; i++) {
		const MsgReportItem *it = m->report_items->pdata[i];
		const QueueRcpt *r = sent_row(sent, it->recipient);
		gboolean delivered = it->status == MSG_REPORT_DELIVERED,
		    delayed = it->status == MSG_REPORT_DELAYED;
		char *diag;

		if (!r || (delivered ? !(r->notify & MAIL_NOTIFY_SUCCESS) : delayed ?
		    !(r->notify & MAIL_NOTIFY_DELAY) :
		    !(r->notify == 0 || (r->notify & MAIL_NOTIFY_FAILURE))))
			continue;
		diag = it->diagnostic && *it->diagnostic ? cp_to_utf8(m->codepage,
		    it->diagnostic, strlen(it->diagnostic), NULL) : NULL;
		if (diag)
			g_ptr_array_add(texts, diag);
		dr[n].final_recipient = r->address;
		dr[n].original_recipient = r->orcpt;
		dr[n].action = delivered ? "delivered" : delayed ? "delayed" : "failed";
		if (delayed) {
			char *status = g_malloc(REPORT_STATUS_SIZE);

			report_status_delayed(it->reason, status);
			g_ptr_array_add(texts, status);
			dr[n].status = status;
		} else {
			dr[n].status = report_status_of_reason(it->reason, delivered);
		}
		dr[n].diagnostic = diag;
		dr[n].last_attempt = m->submit_time;
		*failed |= !delivered;
		n++;
	}
	return n;
}

ReportTranslation
report_translate(Site *site, Queue *q, QueueEnvelope *env, QueueEnvelope **dsn,
    ReportStats *st)
{
	ReportTranslation res = REPORT_NOT_OURS;
	GPtrArray *rows = g_ptr_array_new(), *texts = g_ptr_array_new_with_free_func(g_free);
	LegacyMessage *m = NULL;
	QueueSent *sent = NULL;
	GBytes *body;
	GError *e = NULL;
	DsnRcpt *dr = NULL;
	DsnReport rep = { 0 };
	char *qid = NULL, *from = NULL, *subject = NULL;
	gboolean failed;
	guint n;

	*dsn = NULL;
	for (guint i = 0; i < env->rcpts->len; i++)
		if (((QueueRcpt *)env->rcpts->pdata[i])->state == QUEUE_ST_ACCEPTED)
			g_ptr_array_add(rows, env->rcpts->pdata[i]);
	body = rows->len ? queue_body_read(q, env->qid, -1, &e) : NULL;
	if (rows->len && !body) {
		pg_error(env->qid, "report: %s", e->message);
		st->errors++;
		res = REPORT_LATER;
		goto out;
	}
	m = body ? msg_decode(g_bytes_get_data(body, NULL), g_bytes_get_size(body), NULL) : NULL;
	qid = m ? copy_qid(site, m->about_id) : NULL;
	if (!qid)
		goto out;
	sent = queue_sent_get(q, qid, &e);
	if (!sent) {
		if (g_error_matches(e, QUEUE_ERROR, QUEUE_ERROR_NOT_FOUND)) {
			pg_info(env->qid, "report about %s: the gateway does not remember that "
			    "message (report_window); delivered as a message", m->about_id);
		} else {
			pg_error(env->qid, "report: %s", e->message);
			st->errors++;
			res = REPORT_LATER;
		}
		goto out;
	}
	res = REPORT_TRANSLATED;
	dr = g_new0(DsnRcpt, MAX(m->report_items->len, 1));
	n = report_rcpts(m, sent, dr, texts, &failed);
	if (n == 0) {
		if (rp_rows_enter(q, env, rows, QUEUE_ST_DONE, "no delivery status notification: "
		    "its sender did not ask for one"))
			st->unreported++;
		else
			st->errors++;
		goto out;
	}
	rep.original = sent->returned;
	rp_dsn_about(site, &rep, sent->env, &from, &subject);
	rep.return_full = sent->full;
	rep.rcpts = dr;
	rep.n_rcpts = n;
	/* The legacy report's rows are done once its DSN is queued. */
	if (rp_dsn_queue(site, q, env, rows, QUEUE_ST_DONE, &rep, failed ? MSG_CLASS_NDR :
	    MSG_CLASS_RECEIPT, qid, MAX(env->hops, sent->env->hops), dsn, &e)) {
		st->dsns++;
		st->dsn_reported += n;
	} else {
		dsn_failed(q, env, rows, e, st);
		if (e->domain != DSN_ERROR)
			res = REPORT_LATER;
		g_clear_error(&e);
	}
out:
	g_clear_error(&e);
	g_free(subject);
	g_free(from);
	g_free(dr);
	g_free(qid);
	queue_sent_free(sent);
	msg_free(m);
	if (body)
		g_bytes_unref(body);
	g_ptr_array_unref(texts);
	g_ptr_array_unref(rows);
	return res;
}
