/* report_ndr.c - the report step: legacy non-delivery reports for the
 * failed recipients of legacy mail sent over SMTP (see report.h). */
#include "config.h"

#include <string.h>

#include "dir_route.h"
#include "message.h"
#include "mime/mime_in.h"
#include "mime/translit.h"
#include "pg_limits.h"
#include "pg_log.h"
#include "report/report_int.h"
#include "report/report_status.h"

/* Who signs the gateway's reports: the postmaster of its own postoffice. */
#define NDR_SENDER_MAILBOX "POSTMASTER"
#define NDR_SENDER_NAME    "Postmaster"
/* Subject of a report: this, then the original's. */
#define NDR_SUBJECT        "Undeliverable: "

gboolean
rp_rows_enter(Queue *q, QueueEnvelope *env, GPtrArray *rows, QueueState to, const char *reason)
{
	GError *e = NULL;

	for (guint i = 0; i < rows->len; i++)
		queue_rcpt_enter(rows->pdata[i], to, reason);
	if (queue_set_routes(q, env, &e))
		return TRUE;
	pg_error(env->qid, "report: %s", e->message);
	g_error_free(e);
	return FALSE;
}

void
rp_hold(Queue *q, QueueEnvelope *env, GPtrArray *rows, const char *why, ReportStats *st)
{
	GError *e = NULL;

	for (guint i = 0; i < rows->len; i++) {
		QueueRcpt *r = rows->pdata[i];
		char *reason = g_strdup_printf("%s; report could not be made: %s",
		    r->reason ? r->reason : "failed", why);

		queue_rcpt_enter(r, QUEUE_ST_HELD, reason);
		g_free(reason);
	}
	pg_warn(env->qid, "held: report could not be made: %s", why);
	if (queue_set_routes(q, env, &e)) {
		st->held += rows->len;
	} else {
		pg_error(env->qid, "report: %s", e->message);
		g_error_free(e);
		st->errors++;
	}
}

/* The legacy reason of a failure: the expiry the client wrote, else what
 * the status of the server's reply says (report_status.h, the one table). */
static guint16
failure_reason(const QueueRcpt *r)
{
	char status[REPORT_STATUS_SIZE];

	if (r->reason && g_str_has_prefix(r->reason, QUEUE_EXPIRED_PREFIX))
		return MSG_REASON_EXPIRED;
	if (r->last_reply && report_status_of_reply(r->last_reply, strlen(r->last_reply), status))
		return report_reason_of_status(status, strlen(status));
	return MSG_REASON_TRANSFER_FAILED;
}

/* What a person is told of a failure: the server's reply, or for an
 * expiry the whole reason (the lifetime, then the last reply). */
static const char *
failure_text(const QueueRcpt *r)
{
	if (r->reason && g_str_has_prefix(r->reason, QUEUE_EXPIRED_PREFIX))
		return r->reason;
	return r->last_reply ? r->last_reply : r->reason ? r->reason : "no reason given";
}

/* UTF-8 text in the report's codepage (transliterated where it must be). */
static char *
local(const char *codepage, const char *utf8)
{
	char *t = translit_from_utf8(codepage, utf8, strlen(utf8), NULL, NULL, NULL, NULL);

	return t ? t : g_strdup("?");
}

/* The address the sender wrote for a failed row: its legacy form, else SMTP:. */
static char *
written_address(const QueueRcpt *r)
{
	return r->legacy ? g_strdup(r->legacy) : g_strdup_printf("SMTP:%s", r->address);
}

/* What failed, for a person: the explanation above the returned message. */
static char *
ndr_text(const QueueEnvelope *env, GPtrArray *rows, const char *codepage,
    const char *returned)
{
	GString *s = g_string_new("Your message could not be delivered to ");
	char *out;

	g_string_append(s, rows->len == 1 ? "this recipient:\r\n\r\n" :
	    "these recipients:\r\n\r\n");
	for (guint i = 0; i < rows->len; i++) {
		const QueueRcpt *r = rows->pdata[i];
		char *addr = written_address(r);

		g_string_append_printf(s, "  %s\r\n    %s: %s\r\n", addr,
		    msg_reason_name(failure_reason(r)), failure_text(r));
		g_free(addr);
	}
	g_string_append_printf(s, "\r\nThe gateway tried to send it as Internet message %s.\r\n",
	    env->qid);
	g_string_append(s, returned ? returned : "\r\nYour message follows.\r\n"
	    "------------------------------------------------------------\r\n");
	out = local(codepage, s->str);
	g_string_free(s, TRUE);
	return out;
}

/* The report, its content returned when it fits (else said why not). */
static LegacyMessage *
ndr_build(Site *site, const QueueEnvelope *env, GPtrArray *rows, const char *to,
    const char *codepage, const LegacyMessage *orig, const char *why_not)
{
	const char *gw = config_string(site->cfg, CONFIG_SITE_GATEWAY_PO);
	gint64 now = g_get_real_time() / G_USEC_PER_SEC;
	LegacyMessage *m = msg_new();
	char *prefix = local(codepage, NDR_SUBJECT), *text, *returned = NULL;
	GString *body;

	m->id = msg_new_id(gw);
	m->class = MSG_CLASS_NDR;
	m->no_report = TRUE;
	m->about_id = g_strdup(env->envid);
	m->submit_time = m->date = now;
	m->priority = MSG_PRIORITY_NORMAL;
	m->originator.addr = g_strdup_printf("%s/%s", gw, NDR_SENDER_MAILBOX);
	m->originator.name = g_strdup(NDR_SENDER_NAME);
	m->from.addr = g_strdup(m->originator.addr);
	m->from.name = g_strdup(m->originator.name);
	msg_add_recipient(m, to, "", TRUE);
	msg_add_party(m->to, to, "");
	m->codepage = g_strdup(codepage);
	/* A report carries the hops of what it reports on (SPEC 3.2); the
	 * gateway's own is added when it is bundled, as for any legacy copy. */
	for (guint i = 0; orig && i < orig->hops->len; i++) {
		const MsgHop *h = orig->hops->pdata[i];

		msg_add_hop(m, h->node, h->time);
	}
	m->subject = g_strconcat(prefix, orig && orig->subject ? orig->subject : "", NULL);
	if (strlen(m->subject) > MSG_MAX_SUBJECT_LEN)
		m->subject[MSG_MAX_SUBJECT_LEN] = '\0';
	if (why_not)
		returned = g_strdup_printf("\r\nYour message is not returned: %s.\r\n", why_not);
	text = ndr_text(env, rows, codepage, returned);
	body = g_string_new(text);
	if (orig && orig->body && !why_not)
		g_string_append_len(body, g_bytes_get_data(orig->body, NULL),
		    (gssize)g_bytes_get_size(orig->body));
	m->body = g_bytes_new(body->str, body->len);
	for (guint i = 0; orig && !why_not && i < orig->attachments->len; i++) {
		const MsgAttachment *a = orig->attachments->pdata[i];

		msg_add_attachment(m, a->name, a->data);
	}
	for (guint i = 0; i < rows->len; i++) {
		const QueueRcpt *r = rows->pdata[i];
		char *addr = written_address(r);
		char *diag = local(codepage, failure_text(r));

		if (strlen(diag) > MSG_MAX_TEXT_LEN)
			diag[MSG_MAX_TEXT_LEN] = '\0';
		msg_add_report_item(m, addr, MSG_REPORT_NOT_DELIVERED, failure_reason(r), diag);
		g_free(diag);
		g_free(addr);
	}
	g_string_free(body, TRUE);
	g_free(text);
	g_free(returned);
	g_free(prefix);
	return m;
}

/* The report for the failed rows of env, encoded; NULL and *why when it
 * cannot be made.  *po and *legacy: where it goes. */
static GBytes *
ndr_bytes(Site *site, Queue *q, const QueueEnvelope *env, GPtrArray *rows, char **po,
    char **legacy, char **why)
{
	const PgConfigPostoffice *pc;
	LegacyMessage *orig = NULL, *m;
	GByteArray *out = NULL;
	GBytes *body;
	GError *e = NULL;
	DirRoute *dr = dir_route(site->dir, &site->ctx, env->report_to, &e);

	if (!dr) {
		*why = g_strdup_printf("the sender %s: %s", env->report_to, e->message);
		g_error_free(e);
		return NULL;
	}
	if (dr->kind != DIR_ROUTE_POSTOFFICE) {
		*why = dr->kind == DIR_ROUTE_ERROR ? g_strdup_printf("the sender %s: %s",
		    env->report_to, dr->reason) : g_strdup_printf("the sender %s is not on a "
		    "postoffice of this site (%s)", env->report_to, dir_route_kind_name(dr->kind));
		dir_route_free(dr);
		return NULL;
	}
	pc = config_postoffice_find(site->cfg, dr->postoffice);
	if (!pc) {
		*why = g_strdup_printf("the sender's postoffice %s has no [postoffice] group",
		    dr->postoffice);
		dir_route_free(dr);
		return NULL;
	}
	body = queue_body_read(q, env->qid, -1, &e);
	if (!body) {
		*why = g_strdup(e->message);
		g_error_free(e);
		dir_route_free(dr);
		return NULL;
	}
	orig = mime_in_translate(g_bytes_get_data(body, NULL), g_bytes_get_size(body),
	    pc->codepage, NULL, &e);
	g_bytes_unref(body);
	m = ndr_build(site, env, rows, env->report_to, pc->codepage, orig, orig ? NULL :
	    e->message);
	if (!msg_validate(m, NULL)) {
		/* Building a report must not fail: without the original, then. */
		msg_free(m);
		m = ndr_build(site, env, rows, env->report_to, pc->codepage, orig,
		    "it is too large to be returned");
	}
	g_clear_error(&e);
	out = g_byte_array_new();
	if (!msg_encode(m, out, &e)) {
		*why = g_strdup(e->message);
		g_clear_error(&e);
		g_clear_pointer(&out, g_byte_array_unref);
	} else {
		*po = g_strdup(dr->postoffice);
		*legacy = g_strdup_printf("%s/%s", dr->postoffice, dr->mailbox);
	}
	msg_free(m);
	msg_free(orig);
	dir_route_free(dr);
	return out ? g_byte_array_free_to_bytes(out) : NULL;
}

/* One NDR about the failed rows of env, queued with their failed -> reported. */
static void
report_ndr(Site *site, Queue *q, QueueEnvelope *env, GPtrArray *rows, ReportStats *st)
{
	char *po = NULL, *legacy = NULL, *why = NULL, *qid, *reason;
	GBytes *bytes = ndr_bytes(site, q, env, rows, &po, &legacy, &why);
	QueueEnvelope *rep;
	QueueRcpt *to;
	GError *e = NULL;

	if (!bytes) {
		rp_hold(q, env, rows, why, st);
		g_free(why);
		return;
	}
	qid = queue_id_new();
	rep = queue_envelope_new(qid);
	g_free(rep->sender);
	rep->sender = g_strdup("");
	rep->format = g_strdup("legacy");
	g_free(rep->protocol);
	rep->protocol = g_strdup("report");
	rep->report_class = MSG_CLASS_NDR;
	rep->about = g_strdup(env->qid);
	rep->arrival = g_get_real_time() / G_USEC_PER_SEC;
	rep->hops = env->hops;
	rep->size = (gint64)g_bytes_get_size(bytes);
	queue_envelope_add_rcpt(rep, env->report_to, 0, NULL);
	to = rep->rcpts->pdata[0];
	to->po = po;
	to->legacy = legacy;
	queue_rcpt_enter(to, QUEUE_ST_ROUTED, NULL);
	reason = g_strdup_printf("non-delivery report %s to %s", qid, env->report_to);
	for (guint i = 0; i < rows->len; i++) {
		QueueRcpt *r = rows->pdata[i];

		queue_rcpt_enter(r, QUEUE_ST_REPORTED, reason);
		g_free(r->report);
		r->report = g_strdup(qid);
	}
	if (queue_translated(q, env, rep, bytes, &e)) {
		pg_info(qid, "queued: from=<>, size=%" G_GINT64_FORMAT ", nrcpt=1, non-delivery "
		    "report about %s (%u recipient%s) to %s", rep->size, env->qid, rows->len,
		    rows->len == 1 ? "" : "s", env->report_to);
		st->ndrs++;
		st->reported += rows->len;
	} else {
		/* Nothing stored: the rows stay failed in queue.db, tried next time. */
		pg_error(env->qid, "report: %s", e->message);
		g_error_free(e);
		st->errors++;
	}
	g_free(reason);
	g_free(qid);
	g_bytes_unref(bytes);
	queue_envelope_free(rep);
}

static void
report_message(Site *site, Queue *q, QueueEnvelope *env, ReportStats *st)
{
	GPtrArray *rows = g_ptr_array_new();

	for (guint i = 0; i < env->rcpts->len; i++) {
		QueueRcpt *r = env->rcpts->pdata[i];

		if (r->state == QUEUE_ST_FAILED)
			g_ptr_array_add(rows, r);
	}
	if (rows->len == 0)
		;
	else if (!*env->sender || env->report_class != 0)
		rp_hold(q, env, rows, "no report is ever made about a report or a message from "
		    "the null sender", st);
	else if (!env->origin && g_strcmp0(env->format, "mime") == 0)
		rp_dsn_failed(site, q, env, rows, st);   /* from an SMTP sender */
	else if (!env->report_to)
		rp_hold(q, env, rows, "its legacy sender is not known", st);
	else if (env->requests & MSG_REQ_NO_NDR) {
		if (rp_rows_enter(q, env, rows, QUEUE_ST_DONE, "no report: the sender asked for none"))
			st->unreported += rows->len;
		else
			st->errors++;
	} else
		report_ndr(site, q, env, rows, st);
	g_ptr_array_unref(rows);
}

gboolean
report_failed(Site *site, Queue *q, ReportStats *stats, GError **error)
{
	GPtrArray *envs = queue_failed(q, error);
	gboolean batch;

	if (!envs)
		return FALSE;
	/* Routing answers from one snapshot of the directory. */
	batch = envs->len > 0 && dir_read_begin(site->dir, NULL);
	for (guint i = 0; i < envs->len; i++)
		report_message(site, q, envs->pdata[i], stats);
	if (batch)
		dir_read_end(site->dir);
	g_ptr_array_unref(envs);
	return TRUE;
}
