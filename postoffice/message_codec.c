/* message_codec.c - the legacy message's entry encoding (see message.h):
 * msg_encode, msg_decode and the checks both make (msg_validate).
 *
 * An entry is a sequence of fields: tag (u16, big-endian), length (u32,
 * big-endian), value.  A tag with bit 0x8000 set may be skipped by a reader
 * that does not know it; any other unknown tag is an error.  Groups
 * (a recipient, a hop, ...) are fields whose value is again a sequence of
 * fields.  docs/bundle-format.md lists every tag.
 */
#include "config.h"

#include <string.h>

#include "address.h"
#include "pg_limits.h"
#include "message.h"

enum {
	T_ID = 1, T_CLASS, T_PRIORITY, T_SUBMIT_TIME, T_REQUESTS, T_FLAGS,
	T_ABOUT_ID, T_ORIGINATOR, T_RECIPIENT, T_HOP, T_CODEPAGE, T_FROM, T_TO,
	T_CC, T_SUBJECT, T_DATE, T_BODY, T_ATTACHMENT, T_REPORT_ITEM,
	T_LAST = T_REPORT_ITEM,
};
/* Inside groups. */
enum { G_ADDR = 1, G_NAME = 2, G_RESPONSIBLE = 3 };          /* party, recipient */
enum { H_NODE = 1, H_TIME = 2 };                             /* hop */
enum { A_NAME = 1, A_DATA = 2 };                             /* attachment */
enum { R_RECIPIENT = 1, R_STATUS = 2, R_REASON = 3, R_DIAGNOSTIC = 4 };
#define TAG_OPTIONAL 0x8000u
#define FLAG_NO_REPORT 0x01u

/* ---- validation ---------------------------------------------------------- */

static gboolean
bad(GError **error, MsgError code, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

static gboolean
bad(GError **error, MsgError code, const char *fmt, ...)
{
	va_list ap;
	char *text;

	va_start(ap, fmt);
	text = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_set_error_literal(error, MSG_ERROR, code, text);
	g_free(text);
	return FALSE;
}

gboolean
msg_attachment_name_safe(const char *name, size_t len)
{
	if (len == 0 || len > MSG_MAX_NAME_LEN)
		return FALSE;
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
		return FALSE;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c < 0x20 || c == 0x7f || c == '/' || c == '\\')
			return FALSE;
	}
	return TRUE;
}

/* Text in the message's codepage: no control characters, bounded. */
static gboolean
text_ok(const char *what, const char *s, size_t max, gboolean allow_empty, GError **error)
{
	size_t len;

	if (!s)
		return allow_empty ? TRUE : bad(error, MSG_ERROR_MISSING, "%s is missing", what);
	len = strlen(s);
	if (len == 0 && !allow_empty)
		return bad(error, MSG_ERROR_MISSING, "%s is empty", what);
	if (len > max)
		return bad(error, MSG_ERROR_LIMIT, "%s is %zu bytes long, over the limit of %zu",
		    what, len, max);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 && s[i] != '\t')
			return bad(error, MSG_ERROR_INVALID,
			    "%s holds control character 0x%02x", what, (unsigned char)s[i]);
	return TRUE;
}

static gboolean
addr_ok(const char *what, const char *addr, GError **error)
{
	char *canon;
	GError *e = NULL;

	if (!addr)
		return bad(error, MSG_ERROR_MISSING, "%s is missing", what);
	canon = addr_canonical(addr, strlen(addr), &e);
	if (!canon) {
		bad(error, MSG_ERROR_INVALID, "%s: %s", what, e->message);
		g_error_free(e);
		return FALSE;
	}
	if (strcmp(canon, addr) != 0) {
		bad(error, MSG_ERROR_INVALID, "%s \"%s\" is not in canonical form \"%s\"",
		    what, addr, canon);
		g_free(canon);
		return FALSE;
	}
	g_free(canon);
	return TRUE;
}

static gboolean
id_ok(const char *what, const char *id, gboolean allow_empty, GError **error)
{
	size_t len = id ? strlen(id) : 0;

	if (len == 0)
		return allow_empty ? TRUE : bad(error, MSG_ERROR_MISSING, "%s is missing", what);
	if (len > MSG_MAX_ID_LEN)
		return bad(error, MSG_ERROR_LIMIT, "%s is longer than %u characters",
		    what, MSG_MAX_ID_LEN);
	for (size_t i = 0; i < len; i++)
		if (id[i] < 0x21 || id[i] > 0x7e)
			return bad(error, MSG_ERROR_INVALID,
			    "%s may hold only printable ASCII", what);
	return TRUE;
}

static gboolean
party_ok(const char *what, const MsgParty *p, GError **error)
{
	return addr_ok(what, p->addr, error) &&
	    text_ok("a display name", p->name, MSG_MAX_NAME_LEN, TRUE, error);
}

gboolean
msg_validate(const LegacyMessage *m, GError **error)
{
	if (!id_ok("the message id", m->id, FALSE, error))
		return FALSE;
	if (m->class > MSG_CLASS_RECEIPT)
		return bad(error, MSG_ERROR_INVALID, "unknown message class %d", m->class);
	if (m->priority > MSG_PRIORITY_HIGH)
		return bad(error, MSG_ERROR_INVALID, "unknown priority %d", m->priority);
	if (m->requests & ~MSG_REQ_ALL)
		return bad(error, MSG_ERROR_INVALID, "unknown report request bits 0x%02x",
		    m->requests);
	if (m->class != MSG_CLASS_NORMAL) {
		if (!id_ok("the id of the reported message", m->about_id, FALSE, error))
			return FALSE;
		if (!m->no_report)
			return bad(error, MSG_ERROR_INVALID,
			    "a report must carry the no-report marker");
	} else if (!id_ok("the id of the reported message", m->about_id, TRUE, error)) {
		return FALSE;
	}
	if (!party_ok("the originator", &m->originator, error))
		return FALSE;
	if (m->recipients->len == 0)
		return bad(error, MSG_ERROR_MISSING, "the message has no recipient");
	if (m->recipients->len > MSG_MAX_RECIPIENTS)
		return bad(error, MSG_ERROR_LIMIT, "%u recipients, over the limit of %u",
		    m->recipients->len, MSG_MAX_RECIPIENTS);
	for (guint i = 0; i < m->recipients->len; i++) {
		MsgRecipient *r = m->recipients->pdata[i];
		MsgParty p = { r->addr, r->name };
		if (!party_ok("a recipient", &p, error))
			return FALSE;
	}
	if (m->hops->len > MSG_MAX_HOPS)
		return bad(error, MSG_ERROR_LIMIT, "%u hops, over the limit of %u",
		    m->hops->len, MSG_MAX_HOPS);
	for (guint i = 0; i < m->hops->len; i++) {
		MsgHop *h = m->hops->pdata[i];
		if (!text_ok("a hop name", h->node, MSG_MAX_TEXT_LEN, FALSE, error))
			return FALSE;
	}
	if (!m->codepage || !*m->codepage || strlen(m->codepage) > MSG_MAX_CODEPAGE_LEN)
		return bad(error, MSG_ERROR_INVALID, "the codepage name is missing or too long");
	for (const char *c = m->codepage; *c; c++)
		if (!g_ascii_isalnum(*c) && *c != '-' && *c != '_')
			return bad(error, MSG_ERROR_INVALID, "bad codepage name");
	if (m->from.addr && !party_ok("the From party", &m->from, error))
		return FALSE;
	if (m->to->len + m->cc->len > MSG_MAX_DISPLAY)
		return bad(error, MSG_ERROR_LIMIT, "%u To and Cc entries, over the limit of %u",
		    m->to->len + m->cc->len, MSG_MAX_DISPLAY);
	for (guint i = 0; i < m->to->len; i++)
		if (!party_ok("a To entry", m->to->pdata[i], error))
			return FALSE;
	for (guint i = 0; i < m->cc->len; i++)
		if (!party_ok("a Cc entry", m->cc->pdata[i], error))
			return FALSE;
	if (!text_ok("the subject", m->subject, MSG_MAX_SUBJECT_LEN, TRUE, error))
		return FALSE;
	if (m->body && g_bytes_get_size(m->body) > MSG_MAX_SIZE)
		return bad(error, MSG_ERROR_LIMIT, "the body is over the limit of %u bytes",
		    MSG_MAX_SIZE);
	if (m->attachments->len > MSG_MAX_ATTACHMENTS)
		return bad(error, MSG_ERROR_LIMIT, "%u attachments, over the limit of %u",
		    m->attachments->len, MSG_MAX_ATTACHMENTS);
	for (guint i = 0; i < m->attachments->len; i++) {
		MsgAttachment *a = m->attachments->pdata[i];
		if (g_bytes_get_size(a->data) > MSG_MAX_SIZE)
			return bad(error, MSG_ERROR_LIMIT, "attachment %u is over the limit of %u "
			    "bytes", i + 1, MSG_MAX_SIZE);
		if (!a->name || !msg_attachment_name_safe(a->name, strlen(a->name)))
			return bad(error, MSG_ERROR_INVALID,
			    "attachment %u has a name that is empty, too long, or holds "
			    "a path separator or control character", i + 1);
	}
	if (m->class == MSG_CLASS_NORMAL && m->report_items->len > 0)
		return bad(error, MSG_ERROR_INVALID, "a normal message carries report lines");
	if (m->report_items->len > MSG_MAX_REPORT_ITEMS)
		return bad(error, MSG_ERROR_LIMIT, "%u report lines, over the limit of %u",
		    m->report_items->len, MSG_MAX_REPORT_ITEMS);
	for (guint i = 0; i < m->report_items->len; i++) {
		MsgReportItem *r = m->report_items->pdata[i];
		if (!addr_ok("a reported recipient", r->recipient, error) ||
		    !text_ok("a report diagnostic", r->diagnostic, MSG_MAX_TEXT_LEN, TRUE, error))
			return FALSE;
		if (r->status > MSG_REPORT_DELAYED)
			return bad(error, MSG_ERROR_INVALID, "unknown report status %d",
			    r->status);
	}
	return TRUE;
}

/* ---- encoding ------------------------------------------------------------ */

static void
put_u16(GByteArray *out, guint16 v)
{
	guint8 b[2] = { v >> 8, v & 0xff };
	g_byte_array_append(out, b, 2);
}

static void
put_u32_at(GByteArray *out, guint pos, guint32 v)
{
	out->data[pos] = v >> 24;
	out->data[pos + 1] = (v >> 16) & 0xff;
	out->data[pos + 2] = (v >> 8) & 0xff;
	out->data[pos + 3] = v & 0xff;
}

static void
put_field(GByteArray *out, guint16 tag, const void *value, size_t len)
{
	guint pos;

	put_u16(out, tag);
	pos = out->len;
	g_byte_array_set_size(out, pos + 4);
	put_u32_at(out, pos, (guint32)len);
	if (len)
		g_byte_array_append(out, value, (guint)len);
}

static void
put_str(GByteArray *out, guint16 tag, const char *s)
{
	put_field(out, tag, s ? s : "", s ? strlen(s) : 0);
}

static void
put_u8f(GByteArray *out, guint16 tag, guint8 v)
{
	put_field(out, tag, &v, 1);
}

static void
put_i64f(GByteArray *out, guint16 tag, gint64 v)
{
	guint8 b[8];
	guint64 u = (guint64)v;

	for (int i = 7; i >= 0; i--, u >>= 8)
		b[i] = u & 0xff;
	put_field(out, tag, b, 8);
}

/* Start a group field; returns where its length goes. */
static guint
group_begin(GByteArray *out, guint16 tag)
{
	guint pos;

	put_u16(out, tag);
	pos = out->len;
	g_byte_array_set_size(out, pos + 4);
	return pos;
}

static void
group_end(GByteArray *out, guint pos)
{
	put_u32_at(out, pos, out->len - pos - 4);
}

static void
put_party(GByteArray *out, guint16 tag, const char *addr, const char *name)
{
	guint g = group_begin(out, tag);

	put_str(out, G_ADDR, addr);
	put_str(out, G_NAME, name);
	group_end(out, g);
}

gboolean
msg_encode(const LegacyMessage *m, GByteArray *out, GError **error)
{
	guint start = out->len;
	guint g;
	guint8 flags = m->no_report ? FLAG_NO_REPORT : 0;

	if (!msg_validate(m, error))
		return FALSE;
	put_str(out, T_ID, m->id);
	put_u8f(out, T_CLASS, m->class);
	put_u8f(out, T_PRIORITY, m->priority);
	put_i64f(out, T_SUBMIT_TIME, m->submit_time);
	put_u8f(out, T_REQUESTS, m->requests);
	put_u8f(out, T_FLAGS, flags);
	if (m->about_id && *m->about_id)
		put_str(out, T_ABOUT_ID, m->about_id);
	put_party(out, T_ORIGINATOR, m->originator.addr, m->originator.name);
	for (guint i = 0; i < m->recipients->len; i++) {
		MsgRecipient *r = m->recipients->pdata[i];
		g = group_begin(out, T_RECIPIENT);
		put_str(out, G_ADDR, r->addr);
		put_str(out, G_NAME, r->name);
		put_u8f(out, G_RESPONSIBLE, r->responsible ? 1 : 0);
		group_end(out, g);
	}
	for (guint i = 0; i < m->hops->len; i++) {
		MsgHop *h = m->hops->pdata[i];
		g = group_begin(out, T_HOP);
		put_str(out, H_NODE, h->node);
		put_i64f(out, H_TIME, h->time);
		group_end(out, g);
	}
	put_str(out, T_CODEPAGE, m->codepage);
	if (m->from.addr)
		put_party(out, T_FROM, m->from.addr, m->from.name);
	for (guint i = 0; i < m->to->len; i++) {
		MsgParty *p = m->to->pdata[i];
		put_party(out, T_TO, p->addr, p->name);
	}
	for (guint i = 0; i < m->cc->len; i++) {
		MsgParty *p = m->cc->pdata[i];
		put_party(out, T_CC, p->addr, p->name);
	}
	put_str(out, T_SUBJECT, m->subject);
	put_i64f(out, T_DATE, m->date);
	if (m->body) {
		gsize n;
		const void *d = g_bytes_get_data(m->body, &n);
		put_field(out, T_BODY, d, n);
	}
	for (guint i = 0; i < m->attachments->len; i++) {
		MsgAttachment *a = m->attachments->pdata[i];
		gsize n;
		const void *d = g_bytes_get_data(a->data, &n);
		g = group_begin(out, T_ATTACHMENT);
		put_str(out, A_NAME, a->name);
		put_field(out, A_DATA, d, n);
		group_end(out, g);
	}
	for (guint i = 0; i < m->report_items->len; i++) {
		MsgReportItem *r = m->report_items->pdata[i];
		guint8 reason[2] = { r->reason >> 8, r->reason & 0xff };
		g = group_begin(out, T_REPORT_ITEM);
		put_str(out, R_RECIPIENT, r->recipient);
		put_u8f(out, R_STATUS, r->status);
		put_field(out, R_REASON, reason, 2);
		put_str(out, R_DIAGNOSTIC, r->diagnostic);
		group_end(out, g);
	}
	if (out->len - start > MSG_MAX_SIZE) {
		g_byte_array_set_size(out, start);
		return bad(error, MSG_ERROR_LIMIT, "the message is over the limit of %u bytes",
		    MSG_MAX_SIZE);
	}
	return TRUE;
}

/* ---- decoding ------------------------------------------------------------ */

typedef struct {
	const guint8 *p;
	size_t left;
} Cursor;

typedef struct {
	guint16 tag;
	const guint8 *value;
	size_t len;
} Field;

/* Take the next field; FALSE with an error when it runs past the end. */
static gboolean
next_field(Cursor *c, Field *f, const char *where, GError **error)
{
	guint32 len;

	if (c->left < 6)
		return bad(error, MSG_ERROR_TRUNCATED, "%s: a field header is cut short", where);
	f->tag = (guint16)(c->p[0] << 8 | c->p[1]);
	len = (guint32)c->p[2] << 24 | (guint32)c->p[3] << 16 | (guint32)c->p[4] << 8 | c->p[5];
	if (len > c->left - 6)
		return bad(error, MSG_ERROR_TRUNCATED,
		    "%s: field %u says %u bytes but only %zu follow", where, f->tag, len,
		    c->left - 6);
	f->value = c->p + 6;
	f->len = len;
	c->p += 6 + len;
	c->left -= 6 + len;
	return TRUE;
}

static gboolean
get_str(const Field *f, size_t max, char **out, const char *what, GError **error)
{
	if (*out)
		return bad(error, MSG_ERROR_INVALID, "%s appears twice", what);
	if (f->len > max)
		return bad(error, MSG_ERROR_LIMIT, "%s is %zu bytes, over the limit of %zu",
		    what, f->len, max);
	if (memchr(f->value, '\0', f->len))
		return bad(error, MSG_ERROR_INVALID, "%s holds a NUL byte", what);
	*out = g_strndup((const char *)f->value, f->len);
	return TRUE;
}

static gboolean
get_u8(const Field *f, guint8 *out, const char *what, GError **error)
{
	if (f->len != 1)
		return bad(error, MSG_ERROR_INVALID, "%s must be 1 byte, not %zu", what, f->len);
	*out = f->value[0];
	return TRUE;
}

static gboolean
get_i64(const Field *f, gint64 *out, const char *what, GError **error)
{
	guint64 v = 0;

	if (f->len != 8)
		return bad(error, MSG_ERROR_INVALID, "%s must be 8 bytes, not %zu", what, f->len);
	for (int i = 0; i < 8; i++)
		v = v << 8 | f->value[i];
	*out = (gint64)v;
	return TRUE;
}

static gboolean
unknown(guint16 tag, const char *where, GError **error)
{
	if (tag & TAG_OPTIONAL)
		return TRUE;
	return bad(error, MSG_ERROR_INVALID, "%s: unknown field %u", where, tag);
}

static gboolean
decode_party(const Field *g, char **addr, char **name, guint8 *responsible,
    const char *what, GError **error)
{
	Cursor c = { g->value, g->len };
	Field f;
	gboolean have_resp = FALSE;

	while (c.left > 0) {
		if (!next_field(&c, &f, what, error))
			return FALSE;
		if (f.tag == G_ADDR) {
			if (!get_str(&f, ADDR_SMTP_MAX + 5, addr, "an address", error))
				return FALSE;
		} else if (f.tag == G_NAME) {
			if (!get_str(&f, MSG_MAX_NAME_LEN, name, "a display name", error))
				return FALSE;
		} else if (f.tag == G_RESPONSIBLE && responsible) {
			/* Two readers must never disagree on who delivers (SPEC 3.1). */
			if (have_resp)
				return bad(error, MSG_ERROR_INVALID,
				    "%s has two responsibility flags", what);
			have_resp = TRUE;
			if (!get_u8(&f, responsible, "the responsibility flag", error))
				return FALSE;
			if (*responsible > 1)
				return bad(error, MSG_ERROR_INVALID,
				    "the responsibility flag is neither 0 nor 1");
		} else if (!unknown(f.tag, what, error)) {
			return FALSE;
		}
	}
	if (!*addr)
		return bad(error, MSG_ERROR_MISSING, "%s has no address", what);
	if (!*name)
		*name = g_strdup("");
	return TRUE;
}

/* A hop group: its node and time. */
static gboolean
decode_hop(LegacyMessage *m, const Field *f, GError **error)
{
	Cursor c = { f->value, f->len };
	Field h;
	char *node = NULL;
	gint64 t = 0;
	gboolean have_time = FALSE;

	if (m->hops->len >= MSG_MAX_HOPS)
		return bad(error, MSG_ERROR_LIMIT, "more than %u hops", MSG_MAX_HOPS);
	while (c.left > 0) {
		if (!next_field(&c, &h, "a hop", error))
			goto fail;
		if (h.tag == H_NODE) {
			if (!get_str(&h, MSG_MAX_TEXT_LEN, &node, "a hop name", error))
				goto fail;
		} else if (h.tag == H_TIME) {
			if (have_time) {
				bad(error, MSG_ERROR_INVALID, "a hop has two times");
				goto fail;
			}
			have_time = TRUE;
			if (!get_i64(&h, &t, "a hop time", error))
				goto fail;
		} else if (!unknown(h.tag, "a hop", error)) {
			goto fail;
		}
	}
	if (!node) {
		bad(error, MSG_ERROR_MISSING, "a hop has no name");
		goto fail;
	}
	msg_add_hop(m, node, t);
	g_free(node);
	return TRUE;
fail:
	g_free(node);
	return FALSE;
}

/* An attachment group: its name and data. */
static gboolean
decode_attachment(LegacyMessage *m, const Field *f, GError **error)
{
	Cursor c = { f->value, f->len };
	Field a;
	char *aname = NULL;
	GBytes *data = NULL;

	if (m->attachments->len >= MSG_MAX_ATTACHMENTS)
		return bad(error, MSG_ERROR_LIMIT, "more than %u attachments",
		    MSG_MAX_ATTACHMENTS);
	while (c.left > 0) {
		if (!next_field(&c, &a, "an attachment", error))
			goto fail;
		if (a.tag == A_NAME) {
			if (!get_str(&a, MSG_MAX_NAME_LEN, &aname, "an attachment name", error))
				goto fail;
		} else if (a.tag == A_DATA) {
			if (data) {
				bad(error, MSG_ERROR_INVALID, "an attachment has two data fields");
				goto fail;
			}
			data = g_bytes_new(a.value, a.len);
		} else if (!unknown(a.tag, "an attachment", error)) {
			goto fail;
		}
	}
	if (!aname || !data) {
		bad(error, MSG_ERROR_MISSING, "an attachment lacks its name or data");
		goto fail;
	}
	msg_add_attachment(m, aname, data);
	g_free(aname);
	g_bytes_unref(data);
	return TRUE;
fail:
	g_free(aname);
	if (data)
		g_bytes_unref(data);
	return FALSE;
}

/* One field of a report line group into *rcpt, *status, *reason, *diag. */
static gboolean
decode_report_field(const Field *r, char **rcpt, guint8 *status, gboolean *have_status,
    guint16 *reason, gboolean *have_reason, char **diag, GError **error)
{
	switch (r->tag) {
	case R_RECIPIENT:
		return get_str(r, ADDR_SMTP_MAX + 5, rcpt, "a reported recipient", error);
	case R_STATUS:
		if (*have_status)
			return bad(error, MSG_ERROR_INVALID, "a report line has two statuses");
		*have_status = TRUE;
		return get_u8(r, status, "a report status", error);
	case R_REASON:
		if (*have_reason)
			return bad(error, MSG_ERROR_INVALID, "a report line has two reasons");
		*have_reason = TRUE;
		if (r->len != 2)
			return bad(error, MSG_ERROR_INVALID, "a report reason must be 2 bytes");
		*reason = (guint16)(r->value[0] << 8 | r->value[1]);
		return TRUE;
	case R_DIAGNOSTIC:
		return get_str(r, MSG_MAX_TEXT_LEN, diag, "a diagnostic", error);
	default:
		return unknown(r->tag, "a report line", error);
	}
}

/* A report line group: recipient, status, reason, diagnostic. */
static gboolean
decode_report_item(LegacyMessage *m, const Field *f, GError **error)
{
	Cursor c = { f->value, f->len };
	Field r;
	char *rcpt = NULL, *diag = NULL;
	guint8 status = 0;
	guint16 reason = 0;
	gboolean have_status = FALSE, have_reason = FALSE, ok = TRUE;

	if (m->report_items->len >= MSG_MAX_REPORT_ITEMS)
		return bad(error, MSG_ERROR_LIMIT, "more than %u report lines",
		    MSG_MAX_REPORT_ITEMS);
	while (ok && c.left > 0)
		ok = next_field(&c, &r, "a report line", error) &&
		    decode_report_field(&r, &rcpt, &status, &have_status, &reason, &have_reason,
		    &diag, error);
	if (ok && (!rcpt || !have_status))
		ok = bad(error, MSG_ERROR_MISSING, "a report line lacks its recipient or status");
	if (ok)
		msg_add_report_item(m, rcpt, status, reason, diag);
	g_free(rcpt);
	g_free(diag);
	return ok;
}

/* A To, Cc or recipient group (responsible: a recipient's flag, or NULL). */
static gboolean
decode_listed_party(LegacyMessage *m, const Field *f, GError **error)
{
	char *addr = NULL, *name = NULL;
	guint8 u8 = 0;
	gboolean ok;

	if (f->tag == T_RECIPIENT) {
		if (m->recipients->len >= MSG_MAX_RECIPIENTS)
			return bad(error, MSG_ERROR_LIMIT, "more than %u recipients",
			    MSG_MAX_RECIPIENTS);
		ok = decode_party(f, &addr, &name, &u8, "a recipient", error);
		if (ok)
			msg_add_recipient(m, addr, name, u8);
	} else {
		if (m->to->len + m->cc->len >= MSG_MAX_DISPLAY)
			return bad(error, MSG_ERROR_LIMIT, "more than %u To and Cc entries",
			    MSG_MAX_DISPLAY);
		ok = decode_party(f, &addr, &name, NULL, "a To or Cc entry", error);
		if (ok)
			msg_add_party(f->tag == T_TO ? m->to : m->cc, addr, name);
	}
	g_free(addr);
	g_free(name);
	return ok;
}

static gboolean
decode_field(LegacyMessage *m, const Field *f, guint32 *seen, GError **error)
{
	guint8 u8 = 0;

	if (f->tag >= 1 && f->tag <= T_LAST && f->tag != T_RECIPIENT && f->tag != T_HOP &&
	    f->tag != T_TO && f->tag != T_CC && f->tag != T_ATTACHMENT &&
	    f->tag != T_REPORT_ITEM) {
		if (*seen & (1u << f->tag))
			return bad(error, MSG_ERROR_INVALID, "field %u appears twice", f->tag);
		*seen |= 1u << f->tag;
	}
	switch (f->tag) {
	case T_ID:
		return get_str(f, MSG_MAX_ID_LEN, &m->id, "the message id", error);
	case T_CLASS:
		if (!get_u8(f, &u8, "the class", error))
			return FALSE;
		m->class = u8;
		return TRUE;
	case T_PRIORITY:
		if (!get_u8(f, &u8, "the priority", error))
			return FALSE;
		m->priority = u8;
		return TRUE;
	case T_SUBMIT_TIME:
		return get_i64(f, &m->submit_time, "the submit time", error);
	case T_REQUESTS:
		return get_u8(f, &m->requests, "the report requests", error);
	case T_FLAGS:
		if (!get_u8(f, &u8, "the flags", error))
			return FALSE;
		if (u8 & ~FLAG_NO_REPORT)
			return bad(error, MSG_ERROR_INVALID, "unknown flag bits 0x%02x", u8);
		m->no_report = (u8 & FLAG_NO_REPORT) != 0;
		return TRUE;
	case T_ABOUT_ID:
		return get_str(f, MSG_MAX_ID_LEN, &m->about_id, "the reported id", error);
	case T_ORIGINATOR:
		return decode_party(f, &m->originator.addr, &m->originator.name, NULL,
		    "the originator", error);
	case T_FROM:
		return decode_party(f, &m->from.addr, &m->from.name, NULL, "the From party",
		    error);
	case T_TO:
	case T_CC:
	case T_RECIPIENT:
		return decode_listed_party(m, f, error);
	case T_HOP:
		return decode_hop(m, f, error);
	case T_CODEPAGE:
		return get_str(f, MSG_MAX_CODEPAGE_LEN, &m->codepage, "the codepage", error);
	case T_SUBJECT:
		return get_str(f, MSG_MAX_SUBJECT_LEN, &m->subject, "the subject", error);
	case T_DATE:
		return get_i64(f, &m->date, "the date", error);
	case T_BODY:
		m->body = g_bytes_new(f->value, f->len);
		return TRUE;
	case T_ATTACHMENT:
		return decode_attachment(m, f, error);
	case T_REPORT_ITEM:
		return decode_report_item(m, f, error);
	default:
		return unknown(f->tag, "the message", error);
	}
}

LegacyMessage *
msg_decode(const guint8 *data, size_t len, GError **error)
{
	LegacyMessage *m;
	Cursor c = { data, len };
	Field f;
	guint32 seen = 0;

	if (len > MSG_MAX_SIZE) {
		bad(error, MSG_ERROR_LIMIT, "the message is %zu bytes, over the limit of %u",
		    len, MSG_MAX_SIZE);
		return NULL;
	}
	m = msg_new();
	while (c.left > 0) {
		if (!next_field(&c, &f, "the message", error) ||
		    !decode_field(m, &f, &seen, error)) {
			msg_free(m);
			return NULL;
		}
	}
	if (!m->subject)
		m->subject = g_strdup("");
	if (!(seen & (1u << T_CLASS)) || !(seen & (1u << T_CODEPAGE))) {
		bad(error, MSG_ERROR_MISSING, "the message lacks its class or codepage");
		msg_free(m);
		return NULL;
	}
	if (!msg_validate(m, error)) {
		msg_free(m);
		return NULL;
	}
	return m;
}
