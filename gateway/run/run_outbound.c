/* run_outbound.c - the batch run translates legacy mail for the Internet
 * into MIME, queued for the SMTP client (see run_int.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sysexits.h>
#include <unistd.h>

#include "address.h"
#include "atomic_write.h"
#include "bundle.h"
#include "codepage.h"
#include "client/delivery.h"
#include "cli/dir_cmd.h"
#include "dir_route.h"
#include "dir_store.h"
#include "fault.h"
#include "keyfile.h"
#include "mime/mime_out.h"
#include "message.h"
#include "mime/mime_in.h"
#include "pg_log.h"
#include "queue/queue.h"
#include "run/run_int.h"
#include "site.h"
#include "sync_xml.h"
#include "mime/translit.h"
/* ------------------------------------------------------------- outbound */

/* The SMTP address a legacy address is reached by from the Internet: a
 * mailbox's or list's primary proxy, a custom recipient's target, the
 * address of an SMTP:local@domain; NULL when it has none. */
static char *
smtp_address(Run *run, const char *legacy)
{
	DirEntry *e;
	char *out = NULL;

	if (g_str_has_prefix(legacy, "SMTP:") || g_str_has_prefix(legacy, "smtp:"))
		return g_strdup(legacy + 5);
	e = dir_lookup(run->site->dir, legacy, NULL);
	if (!e)
		return NULL;
	if (e->type == DIR_CUSTOM && e->target)
		out = g_strdup(e->target + 5);
	for (guint i = 0; !out && i < e->proxies->len; i++) {
		const char *p = e->proxies->pdata[i];

		if (g_str_has_prefix(p, "SMTP:"))
			out = g_strdup(p + 5);
	}
	dir_entry_free(e);
	return out;
}

static const char *
address_of(const char *legacy, gpointer data)
{
	Run *run = data;
	gpointer v;

	if (g_hash_table_lookup_extended(run->smtp_of, legacy, NULL, &v))
		return v;
	v = smtp_address(run, legacy);
	g_hash_table_insert(run->smtp_of, g_strdup(legacy), v);
	return v;
}

/* A legacy report as an ordinary message: its text, then a line per item
 * (recipient, delivered or not, the reason, the postoffice's words). */
static LegacyMessage *
report_as_message(const LegacyMessage *m)
{
	LegacyMessage *plain = msg_copy(m);
	GString *text = g_string_new_len(m->body ? g_bytes_get_data(m->body, NULL) : "",
	    m->body ? (gssize)g_bytes_get_size(m->body) : 0);

	plain->class = MSG_CLASS_NORMAL;
	g_string_append(text, "\r\n");
	for (guint i = 0; i < m->report_items->len; i++) {
		const MsgReportItem *it = m->report_items->pdata[i];

		g_string_append_printf(text, "%s: %s, %s%s%s\r\n", it->recipient,
		    msg_report_status_name(it->status), msg_reason_name(it->reason), it->diagnostic && *it->diagnostic ? ": " : "",
		    it->diagnostic ? it->diagnostic : "");
	}
	if (plain->body)
		g_bytes_unref(plain->body);
	plain->body = g_string_free_to_bytes(text);
	g_ptr_array_set_size(plain->report_items, 0);
	return plain;
}

/* A legacy message's SMTP recipients: one RFC 5322 message, queued as a
 * message of its own for the SMTP client, in the commit that marks the
 * legacy message's rows done. */
void
rn_translate_out(Run *run, QueueEnvelope *env, const LegacyMessage *content)
{
	GPtrArray *rows = g_ptr_array_new();
	MimeOutContext ctx = { 0 };
	QueueEnvelope *out = NULL;
	GBytes *mime = NULL;
	char *from = NULL, *qid, *why;
	GError *e = NULL;

	for (guint i = 0; i < env->rcpts->len; i++) {
		QueueRcpt *r = env->rcpts->pdata[i];

		if (r->state == QUEUE_ST_SMTP_PENDING)
			g_ptr_array_add(rows, r);
	}
	if (rows->len == 0)
		goto done;
	g_hash_table_remove_all(run->smtp_of);
	from = smtp_address(run, content->originator.addr);
	if (!from && content->class != MSG_CLASS_NORMAL)
		from = g_strdup_printf("MAILER-DAEMON@%s", run->hostname);   /* a postoffice's postmaster */
	if (!from) {
		why = g_strdup_printf("the sender %s has no SMTP address in the directory",
		    content->originator.addr);
		goto hold;
	}
	ctx.from_address = from;
	ctx.hostname = run->hostname;
	ctx.source_po = env->client;
	ctx.address_of = address_of;
	ctx.data = run;
	ctx.now = env->arrival;
	if (content->class != MSG_CLASS_NORMAL) {
		/* A report no DSN stands for: read as a message, its items
		 * written out below its text. */
		LegacyMessage *plain = report_as_message(content);

		mime = mime_out_build(plain, &ctx, &e);
		msg_free(plain);
	} else {
		mime = mime_out_build(content, &ctx, &e);
	}
	if (!mime) {
		why = g_strdup_printf("cannot translate into Internet mail: %s", e->message);
		g_clear_error(&e);
		goto hold;
	}
	qid = queue_id_new();
	out = queue_envelope_new(qid);
	g_free(qid);
	g_free(out->sender);
	/* A report goes from the null sender (RFC 5321 4.5.5), never reported on. */
	out->sender = g_strdup(content->class == MSG_CLASS_NORMAL ? from : "");
	g_free(out->client);
	out->client = g_strdup(env->client);
	g_free(out->protocol);
	out->protocol = g_strdup("legacy");
	out->format = g_strdup("mime");
	out->origin = g_strdup(env->origin);
	out->arrival = env->arrival;
	out->hops = content->hops->len + 1;
	out->message_id = mime_out_message_id(env->client, content->id, run->hostname);
	out->envid = g_strdup(content->id);
	/* Where a non-delivery report goes, unless none may be made about it. */
	out->report_to = content->no_report ? NULL : g_strdup(content->originator.addr);
	out->requests = content->requests;
	out->report_class = content->class;
	out->ret = MAIL_RET_HDRS;
	out->body = MAIL_BODY_7BIT;
	out->size = (gint64)g_bytes_get_size(mime);
	for (guint i = 0; i < rows->len; i++) {
		QueueRcpt *r = rows->pdata[i], *n;
		char *orcpt = g_strdup_printf("rfc822;%s", r->rcpt_to);

		queue_envelope_add_rcpt(out, r->rcpt_to, r->notify, orcpt);
		g_free(orcpt);
		n = out->rcpts->pdata[out->rcpts->len - 1];
		queue_rcpt_enter(n, QUEUE_ST_SMTP_PENDING, NULL);
		n->via = g_strdup(r->via);
		n->rcpt_to = g_strdup(r->rcpt_to);
		n->legacy = g_strdup(r->address);   /* as the sender wrote it, for a report */
		why = g_strdup_printf("as SMTP message %s", out->qid);
		queue_rcpt_enter(r, QUEUE_ST_DONE, why);
		g_free(why);
	}
	if (!queue_translated(run->q, env, out, mime, &e)) {
		pg_error(env->qid, "run: %s", e->message);
		g_clear_error(&e);
		run->errors++;
		goto done;
	}
	pg_info(out->qid, "queued: from=<%s>, size=%" G_GINT64_FORMAT ", nrcpt=%u, origin=%s, "
	    "translated from %s", out->sender, out->size, out->rcpts->len, env->origin, env->qid);
	run->outbound++;
	goto done;
hold:
	for (guint i = 0; i < rows->len; i++) {
		queue_rcpt_enter(rows->pdata[i], QUEUE_ST_HELD, why);
		run->held++;
	}
	pg_warn(env->qid, "held: %s", why);
	g_free(why);
	if (!queue_set_routes(run->q, env, &e)) {
		pg_error(env->qid, "run: %s", e->message);
		g_clear_error(&e);
		run->errors++;
	}
done:
	queue_envelope_free(out);
	if (mime)
		g_bytes_unref(mime);
	g_free(from);
	g_ptr_array_unref(rows);
}
