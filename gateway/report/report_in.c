/* report_in.c - an Internet report about a legacy message's copy the
 * gateway sent over SMTP becomes a legacy non-delivery report (see report.h
 * and report_int.h; docs/reports.md has the mapping).
 *
 * A message from the null sender for a legacy user is read by dsn_parse
 * (RFC 3464, or a bounce text of a known kind read with confidence); the
 * copy it reports on is found by its Original-Envelope-Id (the gateway
 * sends the legacy id as ENVID) or by the Message-ID of the returned
 * message, in the queue or in what queue_sent.c remembers; each failed
 * Final-Recipient (or Original-Recipient) is matched to the row it was sent
 * for, whose legacy column holds the address the sender wrote.  What cannot
 * be read or matched is left to be delivered as an ordinary message. */
#include "config.h"

#include <string.h>

#include "message.h"
#include "pg_log.h"
#include "report/dsn_parse.h"
#include "report/report_int.h"
#include "report/report_status.h"

/* The row of sent an Internet report's recipient is about, or NULL. */
static const QueueRcpt *
row_for(const QueueSent *sent, const DsnParsedRcpt *pr)
{
	for (guint i = 0; i < sent->env->rcpts->len; i++) {
		const QueueRcpt *r = sent->env->rcpts->pdata[i];

		if ((pr->final_recipient && g_ascii_strcasecmp(r->address, pr->final_recipient) == 0) ||
		    (pr->original_recipient &&
		    g_ascii_strcasecmp(r->address, pr->original_recipient) == 0))
			return r;
	}
	return NULL;
}

/* The items of the recipients of p that sent knows and whose fate its
 * legacy sender wants to hear of: failed or delayed (unless it asked for
 * no non-delivery report), delivered (if it asked for a receipt); n of them. */
static NdrItem *
report_items(const DsnParsed *p, const QueueSent *sent, guint *n)
{
	NdrItem *items = g_new0(NdrItem, p->rcpts->len);
	gboolean ndr = !(sent->env->requests & MSG_REQ_NO_NDR),
	    receipt = (sent->env->requests & MSG_REQ_RECEIPT) != 0;

	*n = 0;
	for (guint i = 0; i < p->rcpts->len; i++) {
		const DsnParsedRcpt *pr = p->rcpts->pdata[i];
		const QueueRcpt *r = row_for(sent, pr);

		if (!r || !((ndr && (pr->action == DSN_ACTION_FAILED ||
		    pr->action == DSN_ACTION_DELAYED)) ||
		    (receipt && pr->action == DSN_ACTION_DELIVERED)))
			continue;
		items[*n].addr = g_strdup(r->legacy);
		items[*n].delayed = pr->action == DSN_ACTION_DELAYED;
		items[*n].delivered = pr->action == DSN_ACTION_DELIVERED;
		items[*n].reason = report_reason_of_status(pr->status, strlen(pr->status));
		items[*n].text = pr->diagnostic && *pr->diagnostic ? pr->diagnostic :
		    report_status_text(pr->status, strlen(pr->status));
		(*n)++;
	}
	return items;
}

/* The legacy report for items, queued routed to sent's legacy sender with
 * env's rows done; held when it cannot be made. */
static ReportTranslation
queue_ndr(Site *site, Queue *q, QueueEnvelope *env, GPtrArray *rows, const DsnParsed *p,
    const QueueSent *sent, const NdrItem *items, guint n, QueueEnvelope **out,
    ReportStats *st)
{
	const char *codepage;
	char *po = NULL, *legacy = NULL, *why = NULL, *about;
	MsgClass m_class;
	LegacyMessage *m;
	GBytes *bytes;
	GError *e = NULL;

	if (!rp_ndr_route(site, sent->env->report_to, &po, &legacy, &codepage, &why)) {
		rp_hold(q, env, rows, why, st);
		g_free(why);
		return REPORT_TRANSLATED;
	}
	about = g_strdup_printf("%s reported this about Internet message %s (the gateway "
	    "sent it on %s).", p->reporting_mta ? p->reporting_mta : "An Internet mail server",
	    sent->env->qid, p->heuristic ? "and the report was read from its text" :
	    "as a delivery status notification");
	m = rp_ndr_build(site, sent->env->envid, about, items, n, sent->env->report_to, codepage,
	    NULL, p->orig_subject, "the Internet's report does not return it whole");
	m_class = m->class;
	bytes = rp_ndr_encode(m, &why);
	msg_free(m);
	g_free(about);
	if (!bytes) {
		g_free(po);
		g_free(legacy);
		rp_hold(q, env, rows, why, st);
		g_free(why);
		return REPORT_TRANSLATED;
	}
	if (!rp_ndr_queue(q, env, rows, QUEUE_ST_DONE, m_class, bytes, po, legacy,
	    sent->env->report_to,
	    sent->env->qid, MAX(env->hops, sent->env->hops), out, &e)) {
		pg_error(env->qid, "report: %s", e->message);
		g_error_free(e);
		st->errors++;
		g_bytes_unref(bytes);
		return REPORT_LATER;
	}
	if (m_class == MSG_CLASS_RECEIPT) {
		st->receipts++;
		st->receipted += n;
	} else {
		st->ndrs++;
		st->reported += n;
	}
	g_bytes_unref(bytes);
	return REPORT_TRANSLATED;
}

ReportTranslation
report_inbound(Site *site, Queue *q, QueueEnvelope *env, QueueEnvelope **ndr,
    ReportStats *st)
{
	ReportTranslation res = REPORT_NOT_OURS;
	GPtrArray *rows = g_ptr_array_new();
	DsnParsed *p = NULL;
	QueueSent *sent = NULL;
	NdrItem *items = NULL;
	GBytes *body = NULL;
	GError *e = NULL;
	char *why = NULL, *qid = NULL;
	guint n = 0;

	*ndr = NULL;
	for (guint i = 0; i < env->rcpts->len; i++)
		if (((QueueRcpt *)env->rcpts->pdata[i])->state == QUEUE_ST_ACCEPTED)
			g_ptr_array_add(rows, env->rcpts->pdata[i]);
	if (rows->len == 0 || env->size > (gint64)DSN_MAX_SIZE)
		goto out;
	body = queue_body_read(q, env->qid, -1, &e);
	if (!body) {
		pg_error(env->qid, "report: %s", e->message);
		st->errors++;
		res = REPORT_LATER;
		goto out;
	}
	p = dsn_parse(g_bytes_get_data(body, NULL), g_bytes_get_size(body), &why);
	if (!p) {
		pg_info(env->qid, "from=<>: no report that can be read (%s): delivered as a message",
		    why ? why : "?");
		goto out;
	}
	qid = queue_sent_find(q, p->envid, p->orig_message_id, &e);
	sent = qid ? queue_sent_get(q, qid, &e) : NULL;
	if (!sent) {
		if (e && !g_error_matches(e, QUEUE_ERROR, QUEUE_ERROR_NOT_FOUND)) {
			pg_error(env->qid, "report: %s", e->message);
			st->errors++;
			res = REPORT_LATER;
		} else {
			pg_info(env->qid, "from=<>: a report about no legacy message the gateway "
			    "remembers sending: delivered as a message");
		}
		goto out;
	}
	items = report_items(p, sent, &n);
	if (n == 0) {
		res = REPORT_TRANSLATED;
		if (rp_rows_enter(q, env, rows, QUEUE_ST_DONE, "an Internet report about a legacy "
		    "message whose sender asked to hear of none of what it says"))
			st->unreported++;
		else
			st->errors++;
		goto out;
	}
	pg_info(env->qid, "from=<>: %s report about %s (%s), %u recipient%s to tell of",
	    p->heuristic ? p->heuristic : "an RFC 3464", qid, sent->env->envid, n,
	    n == 1 ? "" : "s");
	res = queue_ndr(site, q, env, rows, p, sent, items, n, ndr, st);
out:
	for (guint i = 0; items && i < n; i++)
		g_free(items[i].addr);
	g_free(items);
	g_clear_error(&e);
	g_free(why);
	g_free(qid);
	queue_sent_free(sent);
	dsn_parsed_free(p);
	if (body)
		g_bytes_unref(body);
	g_ptr_array_unref(rows);
	return res;
}
