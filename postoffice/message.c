/* message.c - the legacy message model (see message.h): making, copying and
 * freeing messages and their parts.  Their entry encoding and its checks are
 * in message_codec.c.
 */
#include "config.h"

#include <string.h>

#include "address.h"
#include "pg_limits.h"
#include "message.h"

G_DEFINE_QUARK(postgate-message-error-quark, msg_error)

static void
party_clear(MsgParty *p)
{
	g_free(p->addr);
	g_free(p->name);
}

static void
party_free(gpointer p)
{
	party_clear(p);
	g_free(p);
}

static void
recipient_free(gpointer p)
{
	MsgRecipient *r = p;
	g_free(r->addr);
	g_free(r->name);
	g_free(r);
}

static void
hop_free(gpointer p)
{
	MsgHop *h = p;
	g_free(h->node);
	g_free(h);
}

static void
attachment_free(gpointer p)
{
	MsgAttachment *a = p;
	g_free(a->name);
	if (a->data)
		g_bytes_unref(a->data);
	g_free(a);
}

static void
report_item_free(gpointer p)
{
	MsgReportItem *r = p;
	g_free(r->recipient);
	g_free(r->diagnostic);
	g_free(r);
}

LegacyMessage *
msg_new(void)
{
	LegacyMessage *m = g_new0(LegacyMessage, 1);

	m->class = MSG_CLASS_NORMAL;
	m->priority = MSG_PRIORITY_NORMAL;
	m->recipients = g_ptr_array_new_with_free_func(recipient_free);
	m->hops = g_ptr_array_new_with_free_func(hop_free);
	m->to = g_ptr_array_new_with_free_func(party_free);
	m->cc = g_ptr_array_new_with_free_func(party_free);
	m->attachments = g_ptr_array_new_with_free_func(attachment_free);
	m->report_items = g_ptr_array_new_with_free_func(report_item_free);
	return m;
}

void
msg_free(LegacyMessage *m)
{
	if (!m)
		return;
	g_free(m->id);
	g_free(m->about_id);
	party_clear(&m->originator);
	g_ptr_array_unref(m->recipients);
	g_ptr_array_unref(m->hops);
	g_free(m->codepage);
	party_clear(&m->from);
	g_ptr_array_unref(m->to);
	g_ptr_array_unref(m->cc);
	g_free(m->subject);
	if (m->body)
		g_bytes_unref(m->body);
	g_ptr_array_unref(m->attachments);
	g_ptr_array_unref(m->report_items);
	g_free(m);
}

void
msg_add_recipient(LegacyMessage *m, const char *addr, const char *name,
    gboolean responsible)
{
	MsgRecipient *r = g_new0(MsgRecipient, 1);

	r->addr = g_strdup(addr);
	r->name = g_strdup(name ? name : "");
	r->responsible = responsible;
	g_ptr_array_add(m->recipients, r);
}

void
msg_add_party(GPtrArray *list, const char *addr, const char *name)
{
	MsgParty *p = g_new0(MsgParty, 1);

	p->addr = g_strdup(addr);
	p->name = g_strdup(name ? name : "");
	g_ptr_array_add(list, p);
}

void
msg_add_hop(LegacyMessage *m, const char *node, gint64 time)
{
	MsgHop *h = g_new0(MsgHop, 1);

	h->node = g_strdup(node);
	h->time = time;
	g_ptr_array_add(m->hops, h);
}

void
msg_add_attachment(LegacyMessage *m, const char *name, GBytes *data)
{
	MsgAttachment *a = g_new0(MsgAttachment, 1);

	a->name = g_strdup(name);
	a->data = g_bytes_ref(data);
	g_ptr_array_add(m->attachments, a);
}

void
msg_add_report_item(LegacyMessage *m, const char *recipient, MsgReportStatus status,
    guint16 reason, const char *diagnostic)
{
	MsgReportItem *r = g_new0(MsgReportItem, 1);

	r->recipient = g_strdup(recipient);
	r->status = status;
	r->reason = reason;
	r->diagnostic = g_strdup(diagnostic ? diagnostic : "");
	g_ptr_array_add(m->report_items, r);
}

LegacyMessage *
msg_copy(const LegacyMessage *s)
{
	LegacyMessage *m = msg_new();

	m->id = g_strdup(s->id);
	m->class = s->class;
	m->priority = s->priority;
	m->submit_time = s->submit_time;
	m->requests = s->requests;
	m->no_report = s->no_report;
	m->about_id = g_strdup(s->about_id);
	m->originator.addr = g_strdup(s->originator.addr);
	m->originator.name = g_strdup(s->originator.name);
	for (guint i = 0; i < s->recipients->len; i++) {
		MsgRecipient *r = s->recipients->pdata[i];
		msg_add_recipient(m, r->addr, r->name, r->responsible);
	}
	for (guint i = 0; i < s->hops->len; i++) {
		MsgHop *h = s->hops->pdata[i];
		msg_add_hop(m, h->node, h->time);
	}
	m->codepage = g_strdup(s->codepage);
	m->from.addr = g_strdup(s->from.addr);
	m->from.name = g_strdup(s->from.name);
	for (guint i = 0; i < s->to->len; i++) {
		MsgParty *p = s->to->pdata[i];
		msg_add_party(m->to, p->addr, p->name);
	}
	for (guint i = 0; i < s->cc->len; i++) {
		MsgParty *p = s->cc->pdata[i];
		msg_add_party(m->cc, p->addr, p->name);
	}
	m->subject = g_strdup(s->subject);
	m->date = s->date;
	m->body = s->body ? g_bytes_ref(s->body) : NULL;
	for (guint i = 0; i < s->attachments->len; i++) {
		MsgAttachment *a = s->attachments->pdata[i];
		msg_add_attachment(m, a->name, a->data);
	}
	for (guint i = 0; i < s->report_items->len; i++) {
		MsgReportItem *r = s->report_items->pdata[i];
		msg_add_report_item(m, r->recipient, r->status, r->reason, r->diagnostic);
	}
	return m;
}

char *
msg_new_id(const char *node)
{
	GDateTime *now = g_date_time_new_now_utc();
	char *stamp = g_date_time_format(now, "%Y%m%d%H%M%S");
	char *id = g_strdup_printf("%s:%s.%08x%04x", node, stamp, g_random_int(),
	    g_random_int() & 0xffff);

	g_free(stamp);
	g_date_time_unref(now);
	return id;
}

const char *
msg_class_name(MsgClass class)
{
	switch (class) {
	case MSG_CLASS_NORMAL: return "normal";
	case MSG_CLASS_NDR: return "non-delivery report";
	case MSG_CLASS_RECEIPT: return "receipt";
	}
	return "unknown";
}

const char *
msg_report_status_name(MsgReportStatus status)
{
	switch (status) {
	case MSG_REPORT_DELIVERED: return "delivered";
	case MSG_REPORT_DELAYED: return "delayed";
	default: return "not delivered";
	}
}

const char *
msg_reason_name(guint16 reason)
{
	switch (reason) {
	case MSG_REASON_NONE: return "none";
	case MSG_REASON_UNKNOWN_RECIPIENT: return "unknown recipient";
	case MSG_REASON_LOOP: return "hop limit reached (loop)";
	case MSG_REASON_TRANSFER_FAILED: return "transfer failed";
	case MSG_REASON_EXPIRED: return "not delivered in time";
	case MSG_REASON_TOO_BIG: return "message too big";
	default: return "other";
	}
}
