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
#define DELAY_SUBJECT      "Delayed: "
#define RECEIPT_SUBJECT    "Delivered: "

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
rp_hold_rows(QueueEnvelope *env, GPtrArray *rows, const char *why)
{
	for (guint i = 0; i < rows->len; i++) {
		QueueRcpt *r = rows->pdata[i];
		char *reason = g_strdup_printf("%s; " RP_UNREPORTED ": %s",
		    r->reason ? r->reason : queue_state_name(r->state), why);

		queue_rcpt_enter(r, QUEUE_ST_HELD, reason);
		g_free(reason);
	}
	pg_warn(env->qid, "held: " RP_UNREPORTED ": %s", why);
}

void
rp_hold(Queue *q, QueueEnvelope *env, GPtrArray *rows, const char *why, ReportStats *st)
{
	GError *e = NULL;

	rp_hold_rows(env, rows, why);
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
	if (r->reason && g_str_has_prefix(r->reason, QUEUE_LOOP_PREFIX))
		return MSG_REASON_LOOP;
	if (r->last_reply && report_status_of_reply(r->last_reply, strlen(r->last_reply), status))
		return report_reason_of_status(status, strlen(status));
	return MSG_REASON_TRANSFER_FAILED;
}

/* What a person is told of a failure: the server's reply, or for an
 * expiry the whole reason (the lifetime, then the last reply). */
static const char *
failure_text(const QueueRcpt *r, gboolean delayed)
{
	if (r->reason && g_str_has_prefix(r->reason, QUEUE_EXPIRED_PREFIX))
		return r->reason;
	return r->last_reply ? r->last_reply : r->reason ? r->reason :
	    delayed ? "not tried yet" : "no reason given";
}

char *
rp_local(const char *codepage, const char *utf8)
{
	char *t = translit_from_utf8(codepage, utf8, strlen(utf8), NULL, NULL, NULL, NULL);

	return t ? t : g_strdup("?");
}

/* The address the sender wrote for a failed row: its legacy form (a
 * legacy message's own row is one already), else SMTP:. */
static char *
written_address(const QueueRcpt *r)
{
	if (r->legacy)
		return g_strdup(r->legacy);
	if (g_str_has_prefix(r->address, "SMTP:") || strchr(r->address, '/'))
		return g_strdup(r->address);
	return g_strdup_printf("SMTP:%s", r->address);
}

/* What failed, for a person: the explanation above the returned message. */
static char *
ndr_text(const char *about, const NdrItem *items, guint n, MsgClass class,
    gboolean all_delayed, const char *codepage, const char *returned)
{
	GString *s = g_string_new(class == MSG_CLASS_RECEIPT ? "Your message was delivered to " :
	    all_delayed ? "Your message has not been delivered yet to " :
	    "Your message could not be delivered to ");
	char *out;

	g_string_append(s, n == 1 ? "this recipient" : "these recipients");
	g_string_append(s, all_delayed ? "; delivery is still being tried, and you will be "
	    "told if it fails:\r\n\r\n" : ":\r\n\r\n");
	for (guint i = 0; i < n; i++)
		g_string_append_printf(s, "  %s\r\n    %s%s: %s\r\n", items[i].addr,
		    class == MSG_CLASS_RECEIPT ? "" : items[i].delivered ? "delivered: " :
		    items[i].delayed && !all_delayed ? "delayed, still being tried: " : "",
		    items[i].delivered ? "delivered" : msg_reason_name(items[i].reason),
		    items[i].text);
	g_string_append_printf(s, "\r\n%s\r\n", about);
	g_string_append(s, returned ? returned : "\r\nYour message follows.\r\n"
	    "------------------------------------------------------------\r\n");
	out = rp_local(codepage, s->str);
	g_string_free(s, TRUE);
	return out;
}

LegacyMessage *
rp_ndr_build(Site *site, const char *about_id, const char *about, const NdrItem *items,
    guint n, const char *to, const char *codepage, const LegacyMessage *orig,
    const char *orig_subject, const char *why_not)
{
	const char *gw = config_string(site->cfg, CONFIG_SITE_GATEWAY_PO);
	gint64 now = g_get_real_time() / G_USEC_PER_SEC;
	LegacyMessage *m = msg_new();
	gboolean all_delayed = n > 0, all_delivered = n > 0;
	char *prefix, *text, *returned = NULL, *subject;
	GString *body;

	for (guint i = 0; i < n; i++) {
		all_delayed &= items[i].delayed;
		all_delivered &= items[i].delivered;
	}
	prefix = rp_local(codepage, all_delivered ? RECEIPT_SUBJECT : all_delayed ? DELAY_SUBJECT :
	    NDR_SUBJECT);

	m->id = msg_new_id(gw);
	m->class = all_delivered ? MSG_CLASS_RECEIPT : MSG_CLASS_NDR;
	m->no_report = TRUE;
	m->about_id = g_strdup(about_id);
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
	subject = orig && orig->subject ? g_strdup(orig->subject) :
	    orig_subject ? rp_local(codepage, orig_subject) : g_strdup("");
	m->subject = g_strconcat(prefix, subject, NULL);
	g_free(subject);
	if (strlen(m->subject) > MSG_MAX_SUBJECT_LEN)
		m->subject[MSG_MAX_SUBJECT_LEN] = '\0';
	if (why_not)
		returned = g_strdup_printf("\r\nYour message is not returned: %s.\r\n", why_not);
	text = ndr_text(about, items, n, m->class, all_delayed, codepage, returned);
	body = g_string_new(text);
	if (orig && orig->body && !why_not)
		g_string_append_len(body, g_bytes_get_data(orig->body, NULL),
		    (gssize)g_bytes_get_size(orig->body));
	m->body = g_bytes_new(body->str, body->len);
	for (guint i = 0; orig && !why_not && i < orig->attachments->len; i++) {
		const MsgAttachment *a = orig->attachments->pdata[i];

		msg_add_attachment(m, a->name, a->data);
	}
	for (guint i = 0; i < n; i++) {
		char *diag = rp_local(codepage, items[i].text);

		if (strlen(diag) > MSG_MAX_TEXT_LEN)
			diag[MSG_MAX_TEXT_LEN] = '\0';
		msg_add_report_item(m, items[i].addr, items[i].delivered ? MSG_REPORT_DELIVERED :
		    items[i].delayed ? MSG_REPORT_DELAYED : MSG_REPORT_NOT_DELIVERED,
		    items[i].delivered ? MSG_REASON_NONE : items[i].reason, diag);
		g_free(diag);
	}
	g_string_free(body, TRUE);
	g_free(text);
	g_free(returned);
	g_free(prefix);
	return m;
}

/* The items of the failed rows of env (their addresses g_free'd by the caller). */
static NdrItem *
row_items(GPtrArray *rows, gboolean delayed)
{
	NdrItem *items = g_new0(NdrItem, rows->len);

	for (guint i = 0; i < rows->len; i++) {
		const QueueRcpt *r = rows->pdata[i];

		items[i].addr = written_address(r);
		items[i].reason = failure_reason(r);
		items[i].text = failure_text(r, delayed);
		items[i].delayed = delayed;
	}
	return items;
}

static void
items_free(NdrItem *items, guint n)
{
	for (guint i = 0; i < n; i++)
		g_free(items[i].addr);
	g_free(items);
}

gboolean
rp_ndr_route(Site *site, const char *report_to, char **po, char **legacy,
    const char **codepage, char **why)
{
	const PgConfigPostoffice *pc;
	GError *e = NULL;
	DirRoute *dr = dir_route(site->dir, &site->ctx, report_to, &e);

	if (!dr) {
		*why = g_strdup_printf("the sender %s: %s", report_to, e->message);
		g_error_free(e);
		return FALSE;
	}
	if (dr->kind != DIR_ROUTE_POSTOFFICE) {
		*why = dr->kind == DIR_ROUTE_ERROR ? g_strdup_printf("the sender %s: %s",
		    report_to, dr->reason) : g_strdup_printf("the sender %s is not on a "
		    "postoffice of this site (%s)", report_to, dir_route_kind_name(dr->kind));
		dir_route_free(dr);
		return FALSE;
	}
	pc = config_postoffice_find(site->cfg, dr->postoffice);
	if (!pc) {
		*why = g_strdup_printf("the sender's postoffice %s has no [postoffice] group",
		    dr->postoffice);
		dir_route_free(dr);
		return FALSE;
	}
	*po = g_strdup(dr->postoffice);
	*legacy = g_strdup_printf("%s/%s", dr->postoffice, dr->mailbox);
	*codepage = pc->codepage;
	dir_route_free(dr);
	return TRUE;
}

GBytes *
rp_ndr_encode(LegacyMessage *m, char **why)
{
	GByteArray *out = g_byte_array_new();
	GError *e = NULL;

	if (!msg_encode(m, out, &e)) {
		*why = g_strdup(e->message);
		g_error_free(e);
		g_byte_array_unref(out);
		return NULL;
	}
	return g_byte_array_free_to_bytes(out);
}

GBytes *
rp_ndr_bytes(Site *site, Queue *q, const QueueEnvelope *env, GPtrArray *rows,
    gboolean delayed, char **po, char **legacy, char **why, GError **error)
{
	const char *why_not = delayed ? "it is still being delivered" : NULL;
	const char *codepage;
	LegacyMessage *orig = NULL, *m;
	GBytes *body, *bytes;
	GError *e = NULL;
	NdrItem *items;
	char *about;

	if (!rp_ndr_route(site, env->report_to, po, legacy, &codepage, why))
		return NULL;
	body = queue_body_read(q, env->qid, -1, error);
	if (!body)
		return NULL;
	/* A legacy message stopped at the gateway is its own original. */
	orig = g_strcmp0(env->format, "legacy") == 0 ? msg_decode(g_bytes_get_data(body, NULL),
	    g_bytes_get_size(body), &e) : mime_in_translate(g_bytes_get_data(body, NULL),
	    g_bytes_get_size(body), codepage, NULL, &e);
	g_bytes_unref(body);
	items = row_items(rows, delayed);
	about = g_strdup_printf(g_strcmp0(env->format, "legacy") == 0 ? "The gateway stopped it "
	    "(queue id %s)." : delayed ? "The gateway is trying to send it as Internet message "
	    "%s." : "The gateway tried to send it as Internet message %s.", env->qid);
	m = rp_ndr_build(site, env->envid, about, items, rows->len, env->report_to, codepage,
	    orig, NULL, orig ? why_not : e->message);
	if (!msg_validate(m, NULL)) {
		/* Building a report must not fail: without the original, then. */
		msg_free(m);
		m = rp_ndr_build(site, env->envid, about, items, rows->len, env->report_to,
		    codepage, orig, NULL, "it is too large to be returned");
	}
	g_clear_error(&e);
	bytes = rp_ndr_encode(m, why);
	msg_free(m);
	msg_free(orig);
	items_free(items, rows->len);
	g_free(about);
	return bytes;
}

QueueEnvelope *
rp_report_envelope(const char *qid, MsgClass class, const char *report_to, char *po,
    char *legacy, const char *about, guint hops, gint64 size)
{
	QueueEnvelope *rep = queue_envelope_new(qid);
	QueueRcpt *to;

	g_free(rep->sender);
	rep->sender = g_strdup("");
	rep->format = g_strdup(po ? "legacy" : "mime");
	g_free(rep->protocol);
	rep->protocol = g_strdup("report");
	rep->report_class = class;
	rep->about = g_strdup(about);
	rep->arrival = g_get_real_time() / G_USEC_PER_SEC;
	rep->hops = hops;
	rep->size = size;
	queue_envelope_add_rcpt(rep, report_to, 0, NULL);
	if (po) {
		to = rep->rcpts->pdata[0];
		to->po = po;
		to->legacy = legacy;
		queue_rcpt_enter(to, QUEUE_ST_ROUTED, NULL);
	}
	return rep;
}

gboolean
rp_ndr_queue(Queue *q, QueueEnvelope *owner, GPtrArray *rows, QueueState to_state,
    MsgClass class, GBytes *bytes, char *po, char *legacy, const char *report_to, const char *about,
    guint hops, QueueEnvelope **out, GError **error)
{
	char *qid = queue_id_new(), *reason;
	QueueEnvelope *rep = rp_report_envelope(qid, class, report_to, po, legacy, about,
	    hops, (gint64)g_bytes_get_size(bytes));
	const char *kind = msg_class_name(class);
	gboolean ok;

	reason = g_strdup_printf("%s %s to %s", kind, qid, report_to);
	for (guint i = 0; i < rows->len; i++) {
		QueueRcpt *r = rows->pdata[i];

		queue_rcpt_enter(r, to_state, reason);
		if (to_state == QUEUE_ST_REPORTED) {
			g_free(r->report);
			r->report = g_strdup(qid);
		}
	}
	ok = queue_translated(q, owner, rep, bytes, error);
	if (ok)
		pg_info(qid, "queued: from=<>, size=%" G_GINT64_FORMAT ", nrcpt=1, %s about %s "
		    "(%u recipient%s) to %s", rep->size, kind, about, rows->len,
		    rows->len == 1 ? "" : "s", report_to);
	g_free(reason);
	g_free(qid);
	if (ok && out)
		*out = rep;
	else
		queue_envelope_free(rep);
	return ok;
}

/* One NDR about the failed rows of env, queued with their failed -> reported. */
static void
report_ndr(Site *site, Queue *q, QueueEnvelope *env, GPtrArray *rows, ReportStats *st)
{
	char *po = NULL, *legacy = NULL, *why = NULL;
	GError *e = NULL;
	GBytes *bytes = rp_ndr_bytes(site, q, env, rows, FALSE, &po, &legacy, &why, &e);

	if (!bytes) {
		g_free(po);
		g_free(legacy);
		rp_hold(q, env, rows, e ? e->message : why, st);
		g_clear_error(&e);
		g_free(why);
		return;
	}
	if (rp_ndr_queue(q, env, rows, QUEUE_ST_REPORTED, MSG_CLASS_NDR, bytes, po, legacy,
	    env->report_to,
	    env->qid, env->hops, NULL, &e)) {
		st->ndrs++;
		st->reported += rows->len;
	} else {
		/* Nothing stored: the rows stay failed in queue.db, tried next time. */
		pg_error(env->qid, "report: %s", e->message);
		g_error_free(e);
		st->errors++;
	}
	g_bytes_unref(bytes);
}

/* Failed rows of a legacy message itself (stopped at the gateway: a loop):
 * its sender and id are those of the message. */
static void
report_legacy(Site *site, Queue *q, QueueEnvelope *env, GPtrArray *rows, ReportStats *st)
{
	GError *e = NULL;
	GBytes *body = queue_body_read(q, env->qid, -1, &e);
	LegacyMessage *m = body ? msg_decode(g_bytes_get_data(body, NULL),
	    g_bytes_get_size(body), &e) : NULL;

	if (!m) {
		rp_hold(q, env, rows, e->message, st);
	} else if (m->no_report) {
		rp_hold_tell(site, q, env, rows, "no report may be made about it", st);
	} else if (m->requests & MSG_REQ_NO_NDR) {
		if (rp_rows_enter(q, env, rows, QUEUE_ST_DONE, "no report: the sender asked for none"))
			st->unreported += rows->len;
		else
			st->errors++;
	} else {
		g_free(env->report_to);
		env->report_to = g_strdup(m->originator.addr);
		g_free(env->envid);
		env->envid = g_strdup(m->id);
		report_ndr(site, q, env, rows, st);
	}
	g_clear_error(&e);
	msg_free(m);
	if (body)
		g_bytes_unref(body);
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
		rp_hold_tell(site, q, env, rows, "no report is ever made about a report or a "
		    "message from the null sender", st);
	else if (!env->origin && g_strcmp0(env->format, "mime") == 0)
		rp_dsn_failed(site, q, env, rows, st);   /* from an SMTP sender */
	else if (g_strcmp0(env->format, "legacy") == 0)
		report_legacy(site, q, env, rows, st);
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
	gboolean batch, ok = TRUE;

	if (!envs)
		return FALSE;
	/* Routing answers from one snapshot of the directory. */
	batch = envs->len > 0 && dir_read_begin(site->dir, NULL);
	/* Each report is queued in its own transaction, and many of those
	 * are made durable by one commit (nothing leaves the queue here). */
	ok = queue_batch_begin(q, error);
	for (guint i = 0; ok && i < envs->len; i++) {
		report_message(site, q, envs->pdata[i], stats);
		if (queue_batch_full(q))
			ok = queue_batch_commit(q, error) && queue_batch_begin(q, error);
	}
	if (ok)
		rp_delayed(site, q, stats);
	ok = queue_batch_commit(q, ok ? error : NULL) && ok;
	if (batch)
		dir_read_end(site->dir);
	g_ptr_array_unref(envs);
	return ok;
}
