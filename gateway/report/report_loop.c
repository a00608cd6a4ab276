/* report_loop.c - what is stopped for good and reaches no one else: a
 * report or null-sender message over the hop limit, or one the Internet
 * refused (see report.h and report_int.h; docs/reports.md "Never looped").
 *
 * No report is ever made about such a message (SPEC 3.2), so it is held,
 * with its reason, and the [site] postmaster is told once (the message's
 * warned column): a legacy message from GATEWAY_PO/POSTMASTER, marked so
 * that no report is made about it, naming the held message and why, with
 * the message attached (its first QUEUE_SENT_HEADER_MAX bytes), queued in
 * the commit that stores the held rows. */
#include "config.h"

#include <string.h>

#include "message.h"
#include "pg_limits.h"
#include "pg_log.h"
#include "report/report_int.h"

/* Why no report is made about env: what it is, for the notice's text. */
static const char *
what_it_is(const QueueEnvelope *env)
{
	if (env->report_class)
		return "a report";
	if (!*env->sender)
		return "from the null sender";
	return "marked by its sender so that no report is made about it";
}

/* The notice's text (UTF-8): what is held, why, what to do. */
static char *
notice_text(const QueueEnvelope *env, const char *why)
{
	GString *s = g_string_new(NULL);

	g_string_append_printf(s, "The gateway holds message %s and will not send it on.\r\n"
	    "It is %s, and no report is ever made about such a message, so no one\r\n"
	    "else is told.\r\n\r\n  Why: %s\r\n  From: <%s>\r\n", env->qid,
	    what_it_is(env), why, env->sender);
	for (guint i = 0; i < env->rcpts->len; i++) {
		const QueueRcpt *r = env->rcpts->pdata[i];

		if (r->state == QUEUE_ST_HELD)
			g_string_append_printf(s, "  To: <%s>: %s\r\n", r->rcpt_to ? r->rcpt_to :
			    r->address, r->reason ? r->reason : queue_state_name(r->state));
	}
	if (env->about)
		g_string_append_printf(s, "  About: %s\r\n", env->about);
	g_string_append_printf(s, "\r\n\"postgate queue show %s\" shows it, \"postgate queue "
	    "release %s\" tries it again once the cause is mended, \"postgate queue delete %s\" "
	    "drops it.\r\nThe message is attached, up to %u bytes.\r\n", env->qid, env->qid,
	    env->qid, QUEUE_SENT_HEADER_MAX);
	return g_string_free(s, FALSE);
}

/* The notice about env, encoded, routed to the postmaster (*po, *legacy);
 * NULL and *err when it cannot be made. */
static GBytes *
notice_bytes(Site *site, Queue *q, const QueueEnvelope *env, const char *why, char **po,
    char **legacy, char **err)
{
	const char *gw = config_string(site->cfg, CONFIG_SITE_GATEWAY_PO), *codepage;
	LegacyMessage *m;
	GBytes *body, *bytes;
	char *text, *subject, *name, *local;

	if (!rp_ndr_route(site, "postmaster", po, legacy, &codepage, err))
		return NULL;
	m = msg_new();
	m->id = msg_new_id(gw);
	m->no_report = TRUE;
	m->submit_time = m->date = g_get_real_time() / G_USEC_PER_SEC;
	m->priority = MSG_PRIORITY_HIGH;
	m->originator.addr = g_strdup_printf("%s/POSTMASTER", gw);
	m->originator.name = g_strdup("Postmaster");
	m->from.addr = g_strdup(m->originator.addr);
	m->from.name = g_strdup(m->originator.name);
	msg_add_recipient(m, *legacy, "", TRUE);
	msg_add_party(m->to, *legacy, "");
	m->codepage = g_strdup(codepage);
	subject = g_strdup_printf("Held by the gateway: %s %s", env->report_class ? "report" :
	    *env->sender ? "message" : "message from <>", env->qid);
	m->subject = rp_local(codepage, subject);
	text = notice_text(env, why);
	local = rp_local(codepage, text);
	m->body = g_bytes_new_take(local, strlen(local));
	body = queue_body_read(q, env->qid, (gint64)QUEUE_SENT_HEADER_MAX, NULL);
	if (body) {
		name = g_strdup_printf("%s.%s", env->qid, g_strcmp0(env->format, "mime") == 0 ?
		    "eml" : "msg");
		msg_add_attachment(m, name, body);
		g_bytes_unref(body);
		g_free(name);
	}
	bytes = rp_ndr_encode(m, err);
	msg_free(m);
	g_free(text);
	g_free(subject);
	return bytes;
}

gboolean
report_tell_postmaster(Site *site, Queue *q, QueueEnvelope *env, const char *why,
    QueueEnvelope **out, ReportStats *st)
{
	char *po = NULL, *legacy = NULL, *err = NULL, *qid;
	GBytes *bytes = NULL;
	QueueEnvelope *note;
	GError *e = NULL;
	gboolean ok;

	if (out)
		*out = NULL;
	if (!env->warned) {
		bytes = notice_bytes(site, q, env, why, &po, &legacy, &err);
		if (!bytes) {
			pg_warn(env->qid, "the postmaster cannot be told: %s", err);
			g_free(err);
			g_free(po);
			g_free(legacy);
		}
	}
	if (!bytes) {
		ok = queue_set_routes(q, env, &e);
	} else {
		qid = queue_id_new();
		note = rp_report_envelope(qid, MSG_CLASS_NORMAL, "postmaster", po, legacy, env->qid,
		    0, (gint64)g_bytes_get_size(bytes));
		env->warned = g_get_real_time() / G_USEC_PER_SEC;
		ok = queue_translated(q, env, note, bytes, &e);
		if (ok) {
			pg_info(qid, "queued: from=<>, size=%" G_GINT64_FORMAT ", nrcpt=1, the "
			    "postmaster told that %s is held", note->size, env->qid);
			st->postmaster++;
		} else {
			env->warned = 0;
		}
		if (ok && out)
			*out = note;
		else
			queue_envelope_free(note);
		g_bytes_unref(bytes);
		g_free(qid);
	}
	if (!ok) {
		pg_error(env->qid, "report: %s", e->message);
		g_error_free(e);
		st->errors++;
	}
	return ok;
}

void
rp_hold_tell(Site *site, Queue *q, QueueEnvelope *env, GPtrArray *rows, const char *why,
    ReportStats *st)
{
	rp_hold_rows(env, rows, why);
	if (report_tell_postmaster(site, q, env, why, NULL, st))
		st->held += rows->len;
}
