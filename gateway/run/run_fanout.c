/* run_fanout.c - the batch run fans a message out: one legacy copy per
 * destination postoffice, each recipient responsible at exactly one place,
 * into that postoffice's bundle (see run_int.h). */
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
/* ------------------------------------------------------------- bundling */

void
rn_builder_free(Builder *bd)
{
	if (!bd)
		return;
	g_free(bd->po);
	if (bd->b)
		bundle_free(bd->b);
	g_array_unref(bd->items);
	g_ptr_array_unref(bd->qids);
	g_free(bd);
}

gboolean
rn_builder_flush(Run *run, Builder *bd, GError **error)
{
	GBytes *key, *data;
	char *name;
	gboolean ok;

	if (!bd->b || bd->b->entries->len == 0)
		return TRUE;
	key = rn_key_of(run, bd->po, error);
	if (!key)
		return FALSE;
	data = bundle_encode(bd->b, key, run->level, error);
	if (!data)
		return FALSE;
	name = bundle_file_name(run->gateway_po, bd->po, bd->b->seq);
	ok = queue_bundle_record(run->q, bd->po, bd->b->seq, name, data, bd->items, error) &&
	    rn_bundle_deliver(run, bd->po, bd->b->seq, name, data, error);
	g_free(name);
	g_bytes_unref(data);
	g_clear_pointer(&bd->b, bundle_free);
	g_array_set_size(bd->items, 0);
	g_ptr_array_set_size(bd->qids, 0);
	bd->bytes = 0;
	return ok;
}

static Builder *
builder_for(Run *run, const char *po, GError **error)
{
	Builder *bd = g_hash_table_lookup(run->builders, po);
	guint64 seq;

	if (!bd) {
		bd = g_new0(Builder, 1);
		bd->po = g_strdup(po);
		bd->items = g_array_new(FALSE, FALSE, sizeof(QueueItem));
		bd->qids = g_ptr_array_new_with_free_func(g_free);
		g_hash_table_insert(run->builders, bd->po, bd);
	}
	if (!bd->b) {
		seq = queue_bundle_seq_next(run->q, po, error);
		if (seq == 0)
			return NULL;
		bd->b = bundle_new(run->gateway_po, po, seq);
	}
	return bd;
}

/* Whether the address of row r (or of the list it came from) is in To/Cc. */
static gboolean
shown(const QueueEnvelope *env, const QueueRcpt *r, GHashTable *displayed)
{
	char *key = g_strdup_printf("SMTP:%s", r->address);
	gboolean yes = g_hash_table_contains(displayed, key) ||
	    g_hash_table_contains(displayed, r->address);

	g_free(key);
	if (!yes && r->parent >= 0 && (guint)r->parent < env->rcpts->len)
		return shown(env, env->rcpts->pdata[r->parent], displayed);
	return yes;
}

/* To/Cc addresses of the directory's own mailboxes appear as their legacy
 * addresses, so that a legacy reply stays in the legacy network. */
static void
map_parties(Run *run, GPtrArray *parties)
{
	for (guint i = 0; i < parties->len; i++) {
		MsgParty *p = parties->pdata[i];
		DirRoute *dr;

		if (!g_str_has_prefix(p->addr, "SMTP:"))
			continue;
		dr = dir_route(run->site->dir, &run->site->ctx, p->addr + 5, NULL);
		if (dr && dr->kind == DIR_ROUTE_POSTOFFICE) {
			g_free(p->addr);
			p->addr = g_strdup_printf("%s/%s", dr->postoffice, dr->mailbox);
		}
		dir_route_free(dr);
	}
}

/* One legacy copy of env for recipient rows rows, as id. */
static LegacyMessage *
legacy_copy(Run *run, const QueueEnvelope *env, const LegacyMessage *content,
    GPtrArray *rows, const char *id)
{
	LegacyMessage *m = msg_copy(content);
	gboolean receipt = FALSE, never = TRUE;
	gboolean legacy = g_strcmp0(env->format, "legacy") == 0;

	g_free(m->id);
	m->id = g_strdup(id);
	/* The recipients are this copy's alone; a legacy message passing through
	 * (the gateway as a hub) keeps its originator, id and trace. */
	g_ptr_array_set_size(m->recipients, 0);
	if (!legacy) {
		m->class = MSG_CLASS_NORMAL;
		m->submit_time = env->arrival;
		if (m->date == 0)
			m->date = env->arrival;   /* no Date: field: when it arrived */
		g_free(m->originator.addr);
		/* From <>: a report no legacy report may be made about, its
		 * originator the From: address (or MAILER-DAEMON). */
		m->originator.addr = *env->sender ? g_strdup_printf("SMTP:%s", env->sender) :
		    content->from.addr && g_str_has_prefix(content->from.addr, "SMTP:") &&
		    content->from.addr[5] ? g_strdup(content->from.addr) :
		    g_strdup_printf("SMTP:MAILER-DAEMON@%s", run->hostname);
		m->no_report = !*env->sender;
		g_free(m->originator.name);
		m->originator.name = g_strdup(content->from.addr &&
		    g_ascii_strcasecmp(content->from.addr + (g_str_has_prefix(content->from.addr,
		    "SMTP:") ? 5 : 0), env->sender) == 0 && content->from.name ?
		    content->from.name : "");
	}
	if (!m->from.addr || !*m->from.addr) {
		/* A From: that did not parse: the envelope sender, its name kept. */
		g_free(m->from.addr);
		m->from.addr = g_strdup(m->originator.addr);
	}
	for (guint i = 0; i < rows->len; i++) {
		const QueueRcpt *r = rows->pdata[i];

		msg_add_recipient(m, r->legacy, "", TRUE);
		receipt |= (r->notify & MAIL_NOTIFY_SUCCESS) != 0;
		never &= (r->notify & MAIL_NOTIFY_NEVER) != 0;
	}
	if (!legacy)
		m->requests = *env->sender ? (receipt ? MSG_REQ_RECEIPT : 0) |
		    (never ? MSG_REQ_NO_NDR : 0) : MSG_REQ_NO_NDR;
	msg_add_hop(m, run->gateway_po, legacy ? g_get_real_time() / G_USEC_PER_SEC :
	    env->arrival);
	return m;
}

static void
hold_rows(Run *run, QueueEnvelope *env, const char *po, const char *reason)
{
	GError *e = NULL;

	for (guint i = 0; i < env->rcpts->len; i++) {
		QueueRcpt *r = env->rcpts->pdata[i];

		if (r->state != QUEUE_ST_ROUTED || (po && g_strcmp0(r->po, po) != 0))
			continue;
		queue_rcpt_enter(r, QUEUE_ST_HELD, reason);
		run->held++;
		if (run->routed > 0)
			run->routed--;
	}
	pg_warn(env->qid, "held: %s", reason);
	if (!queue_set_routes(run->q, env, &e)) {
		pg_error(env->qid, "run: %s", e->message);
		g_error_free(e);
		run->errors++;
	}
}

/* Add one copy to po's bundle, flushing first when it is full. */
static gboolean
add_copy(Run *run, const char *po, LegacyMessage *m, const char *qid, GPtrArray *rows,
    GError **error)
{
	GByteArray *probe = g_byte_array_new();
	Builder *bd;
	gboolean ok;

	ok = msg_encode(m, probe, error);
	if (!ok) {
		g_byte_array_unref(probe);
		return FALSE;
	}
	bd = builder_for(run, po, error);
	if (bd && bd->bytes > 0 && bd->bytes + probe->len > RUN_BUNDLE_TARGET &&
	    !rn_builder_flush(run, bd, error))
		bd = NULL;
	if (bd && !bd->b)
		bd = builder_for(run, po, error);
	if (!bd) {
		g_byte_array_unref(probe);
		return FALSE;
	}
	{
		GBytes *entry = g_byte_array_free_to_bytes(probe);

		bundle_add_entry(bd->b, BUNDLE_ENTRY_MESSAGE, entry);   /* takes its own ref */
		g_bytes_unref(entry);
	}
	bd->bytes += g_bytes_get_size(((BundleEntry *)bd->b->entries->pdata[bd->b->entries->len
	    - 1])->data);
	g_ptr_array_add(bd->qids, g_strdup(qid));
	for (guint i = 0; i < rows->len; i++) {
		QueueItem it = { bd->qids->pdata[bd->qids->len - 1],
		    ((QueueRcpt *)rows->pdata[i])->idx };

		g_array_append_val(bd->items, it);
	}
	rn_count_of(run, po)->messages++;
	return TRUE;
}

/* Every copy of env for postoffice po: one for its shown recipients, one
 * each for its Bcc recipients. */
static gboolean
fan_out_po(Run *run, QueueEnvelope *env, const LegacyMessage *content, const char *po,
    GHashTable *displayed, GError **error)
{
	GPtrArray *shown_rows = g_ptr_array_new(), *one = g_ptr_array_new();
	GHashTable *shown_boxes = g_hash_table_new(g_str_hash, g_str_equal);
	gboolean ok = TRUE, legacy = g_strcmp0(env->format, "legacy") == 0;
	char *id;

	/* Shown or Bcc is a property of the mailbox, not of the row that
	 * happened to be routed first: a mailbox any of whose rows (a
	 * duplicate included) is in To/Cc, itself or through a list, is shown. */
	for (guint i = 0; i < env->rcpts->len; i++) {
		QueueRcpt *r = env->rcpts->pdata[i];

		if (r->legacy && shown(env, r, displayed))
			g_hash_table_add(shown_boxes, r->legacy);
	}
	for (guint i = 0; i < env->rcpts->len; i++) {
		QueueRcpt *r = env->rcpts->pdata[i];

		if (r->state != QUEUE_ST_ROUTED || strcmp(r->po, po) != 0)
			continue;
		if (g_hash_table_contains(shown_boxes, r->legacy)) {
			g_ptr_array_add(shown_rows, r);
			continue;
		}
		/* A Bcc recipient: a copy naming no one else. */
		id = legacy ? g_strdup_printf("%.50s.%u", content->id, r->idx) :
		    g_strdup_printf("%s:%s.%u", run->gateway_po, env->qid, r->idx);
		g_ptr_array_set_size(one, 0);
		g_ptr_array_add(one, r);
		{
			LegacyMessage *m = legacy_copy(run, env, content, one, id);

			ok = add_copy(run, po, m, env->qid, one, error);
			msg_free(m);
		}
		g_free(id);
		if (!ok)
			break;
	}
	if (ok && shown_rows->len > 0) {
		LegacyMessage *m;

		id = legacy ? g_strdup(content->id) :
		    g_strdup_printf("%s:%s", run->gateway_po, env->qid);
		m = legacy_copy(run, env, content, shown_rows, id);
		ok = add_copy(run, po, m, env->qid, shown_rows, error);
		msg_free(m);
		g_free(id);
	}
	g_ptr_array_unref(shown_rows);
	g_ptr_array_unref(one);
	g_hash_table_unref(shown_boxes);
	return ok;
}

static void
add_displayed(GHashTable *displayed, GPtrArray *parties)
{
	for (guint i = 0; i < parties->len; i++) {
		MsgParty *p = parties->pdata[i];

		if (p->addr && *p->addr)
			g_hash_table_add(displayed, g_strdup(p->addr));
	}
}

/* One text of a legacy message from its codepage into another, by way of
 * UTF-8, transliterated and counted as an SMTP message's text is. */
static char *
convert_text(const char *from, const char *to, const char *text, gsize len, gsize *out_len,
    guint *translit, guint *lost, GError **error)
{
	char *utf8 = cp_to_utf8(from, text, len, error);
	char *out;

	if (!utf8)
		return NULL;
	out = translit_from_utf8(to, utf8, strlen(utf8), out_len, translit, lost, error);
	g_free(utf8);
	return out;
}

static gboolean
convert_party(const char *from, const char *to, MsgParty *p, guint *t, guint *l,
    GError **error)
{
	char *name;

	if (!p->name || !*p->name)
		return TRUE;
	name = convert_text(from, to, p->name, strlen(p->name), NULL, t, l, error);
	if (!name)
		return FALSE;
	g_free(p->name);
	p->name = name;
	return TRUE;
}

static gboolean
convert_codepage(const QueueEnvelope *env, LegacyMessage *m, const char *to, GError **error)
{
	const char *from = m->codepage;
	guint t = 0, l = 0;
	gsize n, out_len;
	const char *body;
	char *x;

	if (!convert_party(from, to, &m->originator, &t, &l, error) ||
	    !convert_party(from, to, &m->from, &t, &l, error))
		return FALSE;
	for (guint i = 0; i < m->to->len; i++)
		if (!convert_party(from, to, m->to->pdata[i], &t, &l, error))
			return FALSE;
	for (guint i = 0; i < m->cc->len; i++)
		if (!convert_party(from, to, m->cc->pdata[i], &t, &l, error))
			return FALSE;
	if (m->subject) {
		x = convert_text(from, to, m->subject, strlen(m->subject), NULL, &t, &l, error);
		if (!x)
			return FALSE;
		g_free(m->subject);
		m->subject = x;
	}
	for (guint i = 0; i < m->attachments->len; i++) {
		MsgAttachment *a = m->attachments->pdata[i];

		x = convert_text(from, to, a->name, strlen(a->name), NULL, &t, &l, error);
		if (!x)
			return FALSE;
		if (!msg_attachment_name_safe(x, strlen(x))) {
			g_free(x);
			continue;   /* keeps its old name: safe as it was */
		}
		g_free(a->name);
		a->name = x;
	}
	if (m->body && g_bytes_get_size(m->body) > 0) {
		body = g_bytes_get_data(m->body, &n);
		x = convert_text(from, to, body, n, &out_len, &t, &l, error);
		if (!x)
			return FALSE;
		g_bytes_unref(m->body);
		m->body = g_bytes_new_take(x, out_len);
	}
	g_free(m->codepage);
	m->codepage = g_strdup(to);
	if (t || l)
		pg_info(env->qid, "from %s to %s: %u characters transliterated, %u not "
		    "representable", from, to, t, l);
	return TRUE;
}

/* A legacy message's SMTP recipients first: one Internet message for them.
 * FALSE (logged, counted) when its body cannot be read or decoded. */
static gboolean
legacy_smtp_first(Run *run, QueueEnvelope *env)
{
	GError *e = NULL;
	GBytes *body = queue_body_read(run->q, env->qid, -1, &e);

	if (body) {
		gsize n;
		const guint8 *p = g_bytes_get_data(body, &n);
		LegacyMessage *m = msg_decode(p, n, &e);

		if (m) {
			rn_translate_out(run, env, m);
			msg_free(m);
		}
		g_bytes_unref(body);
	}
	if (e) {
		pg_error(env->qid, "run: %s", e->message);
		g_clear_error(&e);
		run->errors++;
		return FALSE;
	}
	return TRUE;
}

/* The first copy's To and Cc: who is shown (not Bcc) in every copy. */
static void
note_displayed(GHashTable *displayed, const LegacyMessage *content)
{
	if (g_hash_table_size(displayed) == 0) {
		add_displayed(displayed, content->to);
		add_displayed(displayed, content->cc);
	}
}

/* The legacy content for a postoffice of codepage cp, from the message's
 * bytes p: a legacy message passing through decoded (and converted when the
 * codepages differ), MIME translated; one per codepage, kept in done_cp.
 * NULL with *why when it cannot be made for po. */
static LegacyMessage *
content_for(Run *run, QueueEnvelope *env, const char *po, const char *cp, const guint8 *p,
    gsize len, GHashTable *displayed, GHashTable *done_cp, char **why)
{
	LegacyMessage *content = g_hash_table_lookup(done_cp, cp);
	MimeInStats st = { 0 };
	GError *e = NULL;

	if (content)
		return content;
	if (g_strcmp0(env->format, "legacy") == 0) {
		content = msg_decode(p, len, &e);
		if (content && g_ascii_strcasecmp(content->codepage, cp) != 0 &&
		    !convert_codepage(env, content, cp, &e))
			g_clear_pointer(&content, msg_free);
		if (!content) {
			*why = g_strdup_printf("cannot pass on to %s: %s", po, e->message);
			g_error_free(e);
			return NULL;
		}
	} else {
		content = mime_in_translate(p, len, cp, &st, &e);
		if (!content) {
			*why = g_strdup_printf("cannot translate for %s: %s", po, e->message);
			g_error_free(e);
			mime_in_stats_clear(&st);
			return NULL;
		}
		for (guint i = 0; st.notes && i < st.notes->len; i++)
			pg_info(env->qid, "translation for %s: %s", cp, (char *)st.notes->pdata[i]);
		if (st.transliterated || st.lost)
			pg_info(env->qid, "translation for %s: %u characters transliterated, "
			    "%u not representable", cp, st.transliterated, st.lost);
		mime_in_stats_clear(&st);
	}
	note_displayed(displayed, content);
	if (g_strcmp0(env->format, "legacy") != 0) {
		map_parties(run, content->to);
		map_parties(run, content->cc);
	}
	g_hash_table_insert(done_cp, g_strdup(cp), content);
	return content;
}

/* One copy for po, or its rows held saying why. */
static void
fan_out_to(Run *run, QueueEnvelope *env, const char *po, GBytes *body, GHashTable *displayed,
    GHashTable *done_cp)
{
	const PgConfigPostoffice *pc = config_postoffice_find(run->site->cfg, po);
	LegacyMessage *content;
	GError *e = NULL;
	char *why = NULL;
	gsize len;
	const guint8 *p = g_bytes_get_data(body, &len);
	guint hops;

	if (!pc) {
		hold_rows(run, env, po, "the postoffice has no [postoffice] group");
		return;
	}
	content = content_for(run, env, po, pc->codepage, p, len, displayed, done_cp, &why);
	if (!content) {
		hold_rows(run, env, po, why);
		g_free(why);
		return;
	}
	if (rn_over_hop_limit(run, env, &hops)) {
		/* Not since the route step stops it; a message routed before. */
		why = g_strdup_printf(QUEUE_LOOP_PREFIX "%u hops, the limit is %u (a mail loop?)",
		    hops, run->hop_limit);
		hold_rows(run, env, po, why);
		g_free(why);
		return;
	}
	if (!fan_out_po(run, env, content, po, displayed, &e)) {
		why = g_strdup_printf("cannot bundle for %s: %s", po, e->message);
		g_clear_error(&e);
		pg_error(env->qid, "run: %s", why);
		run->errors++;
		g_free(why);
	}
}

void
rn_fan_out_message(Run *run, QueueEnvelope *env)
{
	GHashTable *pos = g_hash_table_new(g_str_hash, g_str_equal);
	GHashTable *displayed = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	GHashTable *done_cp = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
	    (GDestroyNotify)msg_free);
	GBytes *body = NULL;
	GError *e = NULL;
	GHashTableIter it;
	gpointer k;

	if (g_hash_table_contains(run->unstored, env->qid))
		goto out;
	if (g_strcmp0(env->format, "legacy") == 0 && !legacy_smtp_first(run, env))
		goto out;
	for (guint i = 0; i < env->rcpts->len; i++) {
		QueueRcpt *r = env->rcpts->pdata[i];

		if (r->state == QUEUE_ST_ROUTED)
			g_hash_table_add(pos, r->po);
	}
	if (g_hash_table_size(pos) == 0)
		goto out;
	if (env->size > MSG_MAX_SIZE) {
		char *why = g_strdup_printf("%" G_GINT64_FORMAT " bytes: larger than a legacy "
		    "message may be (%u)", env->size, MSG_MAX_SIZE);

		hold_rows(run, env, NULL, why);
		g_free(why);
		goto out;
	}
	body = queue_body_read(run->q, env->qid, -1, &e);
	if (!body) {
		pg_error(env->qid, "run: %s", e->message);
		g_clear_error(&e);
		run->errors++;
		goto out;
	}
	g_hash_table_iter_init(&it, pos);
	while (g_hash_table_iter_next(&it, &k, NULL))
		fan_out_to(run, env, k, body, displayed, done_cp);
out:
	if (body)
		g_bytes_unref(body);
	g_hash_table_unref(pos);
	g_hash_table_unref(displayed);
	g_hash_table_unref(done_cp);
}
