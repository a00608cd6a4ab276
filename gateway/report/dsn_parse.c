/* dsn_parse.c - delivery reports read (see dsn_parse.h).
 *
 * Owns: GMime's parse of the message and the walk over its tree for the
 * delivery-status part, the returned message and the bounce text; the
 * delivery-status fields (RFC 3464 2.1-2.3: groups, folding, comments in
 * structured values, xtext of RFC 3461 4, every value checked); the bounce
 * text handed to dsn_text.c decoded, and the copy of the message after it.
 * Never: the legacy report, logging, the envelope, a field of the returned
 * message but its Message-ID and Subject.
 */
#include "config.h"

#include <stdarg.h>
#include <string.h>

#include <gmime/gmime.h>

#include "pg_log.h"
#include "report/dsn_parse.h"
#include "report/dsn_int.h"
#include "report/report_status.h"

/* Bytes of untrusted text quoted in a reason. */
#define DSN_QUOTE_MAX           60u

/* ---- small helpers ------------------------------------------------------------ */

/* The first reason wins. */
void
dsn_say(char **why, const char *fmt, ...)
{
	va_list ap;

	if (*why)
		return;
	va_start(ap, fmt);
	*why = g_strdup_vprintf(fmt, ap);
	va_end(ap);
}

static char *
shown(const char *s, gsize len)
{
	return pg_shown(s, (gssize)len, DSN_QUOTE_MAX, TRUE);
}

gboolean
dsn_is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

gboolean
dsn_is_blank(const char *s, gsize n)
{
	for (gsize i = 0; i < n; i++)
		if (!dsn_is_wsp(s[i]))
			return FALSE;
	return TRUE;
}

/* A control character other than tab (CR and LF are the caller's). */
static gboolean
has_ctl(const char *s, gsize n)
{
	for (gsize i = 0; i < n; i++)
		if (((guchar)s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f)
			return TRUE;
	return FALSE;
}

/* len bytes of s as UTF-8 for the result: controls and runs of blanks one
 * space, trimmed, invalid sequences U+FFFD.  g_free it */
char *
dsn_clean_text(const char *s, gsize len)
{
	GString *o = g_string_sized_new(len + 1);
	char *u;

	for (gsize i = 0; i < len; i++) {
		guchar c = (guchar)s[i];

		if (c < 0x20 || c == 0x7f || c == ' ') {
			if (o->len && o->str[o->len - 1] != ' ')
				g_string_append_c(o, ' ');
		} else {
			g_string_append_c(o, (char)c);
		}
	}
	if (o->len && o->str[o->len - 1] == ' ')
		g_string_truncate(o, o->len - 1);
	u = g_utf8_make_valid(o->str, (gssize)o->len);
	g_string_free(o, TRUE);
	return u;
}

const char *
dsn_action_name(DsnAction a)
{
	static const char *const names[] = { "failed", "delayed", "delivered", "relayed",
	    "expanded" };

	return (int)a >= 0 && (gsize)a < G_N_ELEMENTS(names) ? names[a] : NULL;
}

static gboolean
action_parse(const char *s, DsnAction *out)
{
	for (int a = DSN_ACTION_FAILED; a <= DSN_ACTION_EXPANDED; a++)
		if (g_ascii_strcasecmp(s, dsn_action_name((DsnAction)a)) == 0) {
			*out = (DsnAction)a;
			return TRUE;
		}
	return FALSE;
}

gsize
dsn_digits_at(const char *s, gsize i, gsize len)
{
	gsize d = 0;

	while (i + d < len && g_ascii_isdigit(s[i + d]) && d < 4)
		d++;
	return d;
}

/* ---- values of delivery-status fields ------------------------------------------ */

/* s without its RFC 5322 comments (each one a space), trimmed; NULL when a
 * comment or a quoted string is not closed.  g_free it */
static char *
uncomment(const char *s)
{
	GString *o = g_string_new(NULL);
	gsize depth = 0;
	gboolean quoted = FALSE;

	for (const char *p = s; *p; p++) {
		if (quoted) {
			g_string_append_c(o, *p);
			if (*p == '\\' && p[1])
				g_string_append_c(o, *++p);
			else if (*p == '"')
				quoted = FALSE;
		} else if (depth) {
			if (*p == '\\' && p[1])
				p++;
			else if (*p == '(')
				depth++;
			else if (*p == ')' && --depth == 0)
				g_string_append_c(o, ' ');
		} else if (*p == '(') {
			depth = 1;
		} else {
			quoted = *p == '"';
			g_string_append_c(o, *p);
		}
	}
	if (depth || quoted) {
		g_string_free(o, TRUE);
		return NULL;
	}
	return g_strstrip(g_string_free(o, FALSE));
}

/* The value after "type;" (all of it without a ';'), trimmed; angle brackets
 * around all of it removed when brackets.  g_free it */
static char *
after_type(const char *v, gboolean brackets)
{
	const char *semi = strchr(v, ';');
	char *r = g_strstrip(g_strdup(semi ? semi + 1 : v));
	gsize n = strlen(r);

	if (brackets && n >= 2 && r[0] == '<' && r[n - 1] == '>') {
		memmove(r, r + 1, n - 2);
		r[n - 2] = '\0';
		g_strstrip(r);
	}
	return r;
}

static int
hex_value(char c)
{
	return g_ascii_isdigit(c) ? c - '0' : g_ascii_toupper(c) - 'A' + 10;
}

/* An xtext value (RFC 3461 4) decoded; as written when it is no xtext ('+'
 * without two hex digits) or decodes to a control or to invalid UTF-8 (then
 * the sender wrote the address raw: "user+tag@example.org").  g_free it */
static char *
xtext_decode(const char *s)
{
	GString *o = g_string_new(NULL);

	for (const char *p = s; *p; p++) {
		int v;

		if (*p != '+') {
			g_string_append_c(o, *p);
			continue;
		}
		if (!g_ascii_isxdigit(p[1]) || !g_ascii_isxdigit(p[2]))
			goto raw;
		v = hex_value(p[1]) * 16 + hex_value(p[2]);
		if (v < 0x20 || v == 0x7f)
			goto raw;
		g_string_append_c(o, (char)v);
		p += 2;
	}
	if (g_utf8_validate(o->str, (gssize)o->len, NULL)) {
		char *r = dsn_clean_text(o->str, o->len);

		g_string_free(o, TRUE);
		return r;
	}
raw:
	g_string_free(o, TRUE);
	return dsn_clean_text(s, strlen(s));
}

/* A structured typed value: comments removed, then after_type; NULL (and
 * *bad) when a comment is not closed, NULL when nothing is left.  g_free it */
static char *
typed_value(const char *v, gboolean brackets, gboolean *bad)
{
	char *u = uncomment(v), *r, *c;

	if (!u) {
		*bad = TRUE;
		return NULL;
	}
	r = after_type(u, brackets);
	g_free(u);
	if (!*r) {
		g_free(r);
		return NULL;
	}
	c = dsn_clean_text(r, strlen(r));
	g_free(r);
	return c;
}

/* ---- the delivery-status part's fields ----------------------------------------- */

typedef struct {
	char *name;             /* lower case */
	GString *value;         /* unfolded: the line ends removed, the blanks kept */
} DsnField;

static void
field_free(gpointer data)
{
	DsnField *f = data;

	g_free(f->name);
	g_string_free(f->value, TRUE);
	g_free(f);
}

/* A field name (RFC 5322 3.6.8), blanks before the colon allowed (RFC 822). */
static gboolean
name_ok(const char *s, gsize n)
{
	while (n && dsn_is_wsp(s[n - 1]))
		n--;
	for (gsize i = 0; i < n; i++)
		if ((guchar)s[i] <= 0x20 || (guchar)s[i] >= 0x7f)
			return FALSE;
	return n > 0;
}

/* One field line added to the group *cur (made when NULL) of groups. */
static DsnField *
field_add(GPtrArray *groups, GPtrArray **cur, const char *line, gsize n, gsize colon)
{
	DsnField *f = g_new0(DsnField, 1);
	gsize nlen = colon;

	while (nlen && dsn_is_wsp(line[nlen - 1]))
		nlen--;
	if (!*cur) {
		*cur = g_ptr_array_new_with_free_func(field_free);
		g_ptr_array_add(groups, *cur);
	}
	f->name = g_ascii_strdown(line, (gssize)nlen);
	f->value = g_string_new_len(line + colon + 1, (gssize)(n - colon - 1));
	g_ptr_array_add(*cur, f);
	return f;
}

/* The groups of len bytes of fields (RFC 3464 2.1), each a GPtrArray of
 * DsnField; NULL (and *why) when a line is no field or over a limit. */
static GPtrArray *
read_groups(const char *p, gsize len, char **why)
{
	GPtrArray *groups = g_ptr_array_new_with_free_func((GDestroyNotify)g_ptr_array_unref);
	GPtrArray *cur = NULL;
	DsnField *last = NULL;
	gsize pos = 0;
	guint lineno = 0;

	while (pos < len && !*why) {
		const char *line = p + pos, *nl = memchr(line, '\n', len - pos), *colon;
		gsize n = nl ? (gsize)(nl - line) : len - pos;
		char *q;

		pos += n + (nl ? 1 : 0);
		lineno++;
		if (n && line[n - 1] == '\r')
			n--;
		if (has_ctl(line, n)) {
			dsn_say(why, "line %u of the delivery-status part holds a control character",
			    lineno);
		} else if (dsn_is_blank(line, n)) {
			cur = NULL;
			last = NULL;
		} else if (dsn_is_wsp(line[0])) {
			if (!last)
				dsn_say(why, "line %u of the delivery-status part continues no field",
				    lineno);
			else if (last->value->len + n > DSN_MAX_FIELD_LEN)
				dsn_say(why, "a %s field is over %u bytes (DSN_MAX_FIELD_LEN)", last->name,
				    DSN_MAX_FIELD_LEN);
			else
				g_string_append_len(last->value, line, (gssize)n);
		} else if (!(colon = memchr(line, ':', n)) || !name_ok(line, (gsize)(colon - line))) {
			q = shown(line, n);
			dsn_say(why, "line %u of the delivery-status part is no field: %s", lineno, q);
			g_free(q);
		} else if (n > DSN_MAX_FIELD_LEN) {
			dsn_say(why, "line %u of the delivery-status part is over %u bytes "
			    "(DSN_MAX_FIELD_LEN)", lineno, DSN_MAX_FIELD_LEN);
		} else if (!cur && groups->len > DSN_MAX_RCPTS) {
			dsn_say(why, "more than %u recipient groups (DSN_MAX_RCPTS)", DSN_MAX_RCPTS);
		} else if (cur && cur->len >= DSN_MAX_GROUP_FIELDS) {
			dsn_say(why, "a group of the delivery-status part has more than %u fields",
			    DSN_MAX_GROUP_FIELDS);
		} else {
			last = field_add(groups, &cur, line, n, (gsize)(colon - line));
		}
	}
	if (*why) {
		g_ptr_array_unref(groups);
		return NULL;
	}
	return groups;
}

/* *value: the field name of g, or NULL; FALSE when g has it twice. */
static gboolean
group_get(GPtrArray *g, const char *name, const char **value)
{
	*value = NULL;
	for (guint i = 0; i < g->len; i++) {
		DsnField *f = g->pdata[i];

		if (strcmp(f->name, name) != 0)
			continue;
		if (*value)
			return FALSE;
		*value = f->value->str;
	}
	return TRUE;
}

void
dsn_rcpt_free(gpointer data)
{
	DsnParsedRcpt *r = data;

	g_free(r->final_recipient);
	g_free(r->original_recipient);
	g_free(r->status);
	g_free(r->diagnostic);
	g_free(r->remote_mta);
	g_free(r);
}

/* The Status value's code (a comment or text after it is ignored); NULL when it is none. */
static char *
status_of(const char *v)
{
	char *u = uncomment(v), *r = NULL;
	gsize n = 0;

	if (!u)
		return NULL;
	while (u[n] && !dsn_is_wsp(u[n]))
		n++;
	if (report_status_valid(u, n))
		r = g_strndup(u, n);
	g_free(u);
	return r;
}

/* Recipient group g, the report's nth. */
static DsnParsedRcpt *
read_rcpt(GPtrArray *g, guint nth, char **why)
{
	static const char *const names[] = { "final-recipient", "action", "status",
	    "original-recipient", "diagnostic-code", "remote-mta" };
	const char *v[G_N_ELEMENTS(names)];
	DsnParsedRcpt *r;
	gboolean bad = FALSE;
	char *act, *q;

	for (gsize i = 0; i < G_N_ELEMENTS(names); i++)
		if (!group_get(g, names[i], &v[i])) {
			dsn_say(why, "recipient group %u has %s twice", nth, names[i]);
			return NULL;
		}
	for (gsize i = 0; i < 3; i++)
		if (!v[i]) {
			dsn_say(why, "recipient group %u has no %s field", nth, names[i]);
			return NULL;
		}
	r = g_new0(DsnParsedRcpt, 1);
	r->final_recipient = typed_value(v[0], TRUE, &bad);
	act = uncomment(v[1]);
	r->status = status_of(v[2]);
	if (!r->final_recipient) {
		q = shown(v[0], strlen(v[0]));
		dsn_say(why, "recipient group %u: Final-Recipient %s holds no address", nth, q);
		g_free(q);
	} else if (!act || !action_parse(act, &r->action)) {
		q = act ? shown(act, strlen(act)) : shown(v[1], strlen(v[1]));
		dsn_say(why, "recipient group %u: Action %s is none of RFC 3464's", nth, q);
		g_free(q);
	} else if (!r->status) {
		q = shown(v[2], strlen(v[2]));
		dsn_say(why, "recipient group %u: Status %s is no RFC 3463 code", nth, q);
		g_free(q);
	}
	g_free(act);
	if (!*why && v[3]) {
		char *t = typed_value(v[3], TRUE, &bad);

		r->original_recipient = t ? xtext_decode(t) : NULL;
		g_free(t);
	}
	if (!*why && v[4]) {
		char *t = after_type(v[4], FALSE);

		r->diagnostic = *t ? dsn_clean_text(t, strlen(t)) : NULL;
		g_free(t);
	}
	if (!*why && v[5])
		r->remote_mta = typed_value(v[5], FALSE, &bad);
	if (!*why && bad)
		dsn_say(why, "recipient group %u: a comment is not closed", nth);
	if (*why) {
		dsn_rcpt_free(r);
		return NULL;
	}
	return r;
}

DsnParsed *
dsn_parsed_new(DsnKind kind)
{
	DsnParsed *p = g_new0(DsnParsed, 1);

	p->kind = kind;
	p->rcpts = g_ptr_array_new_with_free_func(dsn_rcpt_free);
	return p;
}

void
dsn_parsed_free(DsnParsed *p)
{
	if (!p)
		return;
	g_free(p->envid);
	g_free(p->reporting_mta);
	g_free(p->orig_message_id);
	g_free(p->orig_subject);
	g_free(p->heuristic);
	g_ptr_array_unref(p->rcpts);
	g_free(p);
}

/* The per-message fields of group g into p. */
static gboolean
read_per_message(GPtrArray *g, DsnParsed *p, char **why)
{
	const char *mta, *envid;
	gboolean bad = FALSE;

	if (!group_get(g, "reporting-mta", &mta) || !group_get(g, "original-envelope-id", &envid)) {
		dsn_say(why, "the per-message group has a field twice");
		return FALSE;
	}
	if (mta)
		p->reporting_mta = typed_value(mta, FALSE, &bad);
	if (envid) {
		char *t = g_strstrip(g_strdup(envid));

		p->envid = *t ? xtext_decode(t) : NULL;
		g_free(t);
	}
	if (bad)
		dsn_say(why, "Reporting-MTA: a comment is not closed");
	return !bad;
}

/* A delivery-status part's len bytes (RFC 3464 2.1): a per-message group,
 * then one group per recipient.  A first group with a Final-Recipient is
 * taken for both (some MTAs leave out the blank line or the per-message
 * fields). */
static DsnParsed *
read_status_fields(const char *data, gsize len, char **why)
{
	GPtrArray *groups = read_groups(data, len, why);
	DsnParsed *p;
	const char *fr = NULL;
	guint first;

	if (!groups)
		return NULL;
	if (groups->len == 0) {
		dsn_say(why, "the delivery-status part holds no fields");
		g_ptr_array_unref(groups);
		return NULL;
	}
	p = dsn_parsed_new(DSN_KIND_RFC3464);
	(void)group_get(groups->pdata[0], "final-recipient", &fr);
	first = fr ? 0 : 1;
	if (!read_per_message(groups->pdata[0], p, why))
		goto bad;
	if (groups->len - first > DSN_MAX_RCPTS) {
		dsn_say(why, "more than %u recipient groups (DSN_MAX_RCPTS)", DSN_MAX_RCPTS);
		goto bad;
	}
	for (guint i = first; i < groups->len; i++) {
		DsnParsedRcpt *r = read_rcpt(groups->pdata[i], i - first + 1, why);

		if (!r)
			goto bad;
		g_ptr_array_add(p->rcpts, r);
	}
	if (p->rcpts->len == 0) {
		dsn_say(why, "the delivery-status part has no recipient group");
		goto bad;
	}
	g_ptr_array_unref(groups);
	return p;
bad:
	g_ptr_array_unref(groups);
	dsn_parsed_free(p);
	return NULL;
}

/* ---- GMime: the tree walked ----------------------------------------------------- */

typedef struct {
	GMimeObject *status;    /* the message/delivery-status part */
	GMimeObject *returned;  /* the returned message or headers: beside the status
	                         * part, else the first one found */
	GMimeObject *text;      /* the first text/plain part that is no attachment */
	char *other;            /* the report-type of a report that is no delivery report */
	gboolean too_deep;
} Found;

static gboolean
is_type(GMimeObject *o, const char *type, const char *sub)
{
	GMimeContentType *ct = g_mime_object_get_content_type(o);

	return ct && g_mime_content_type_is_type(ct, type, sub);
}

static gboolean
is_status_part(GMimeObject *o)
{
	return is_type(o, "message", "delivery-status") ||
	    is_type(o, "message", "global-delivery-status");
}

static gboolean
is_returned_part(GMimeObject *o)
{
	return is_type(o, "message", "rfc822") || is_type(o, "message", "global") ||
	    is_type(o, "text", "rfc822-headers") || is_type(o, "message", "global-headers");
}

/* A status part directly in multipart mp: it and the returned part beside it. */
static gboolean
find_status_child(GMimeMultipart *mp, Found *f)
{
	int n = g_mime_multipart_get_count(mp);

	for (int i = 0; i < n && !f->status; i++)
		if (is_status_part(g_mime_multipart_get_part(mp, i)))
			f->status = g_mime_multipart_get_part(mp, i);
	if (!f->status)
		return FALSE;
	f->returned = NULL;     /* one found before, outside this report, is not its own */
	for (int i = 0; i < n; i++)
		if (is_returned_part(g_mime_multipart_get_part(mp, i))) {
			f->returned = g_mime_multipart_get_part(mp, i);
			break;
		}
	return TRUE;
}

static void
walk(GMimeObject *o, guint depth, Found *f)
{
	if (f->status || f->other || f->too_deep || !o)
		return;
	if (depth > DSN_MAX_DEPTH) {
		f->too_deep = TRUE;
	} else if (GMIME_IS_MULTIPART(o)) {
		GMimeMultipart *mp = GMIME_MULTIPART(o);
		const char *rt = g_mime_object_get_content_type_parameter(o, "report-type");

		if (is_type(o, "multipart", "report") && rt &&
		    g_ascii_strcasecmp(rt, "delivery-status") != 0 &&
		    g_ascii_strcasecmp(rt, "global-delivery-status") != 0) {
			f->other = pg_shown(rt, -1, DSN_QUOTE_MAX, TRUE);
			return;
		}
		if (find_status_child(mp, f))
			return;
		for (int i = 0; i < g_mime_multipart_get_count(mp); i++)
			walk(g_mime_multipart_get_part(mp, i), depth + 1, f);
	} else if (is_status_part(o)) {
		f->status = o;
	} else if (is_returned_part(o)) {
		if (!f->returned)
			f->returned = o;
	} else if (!f->text && GMIME_IS_TEXT_PART(o) && is_type(o, "text", "plain")) {
		GMimeContentDisposition *d = g_mime_object_get_content_disposition(o);

		if (!d || !g_mime_content_disposition_is_attachment(d))
			f->text = o;
	}
}

/* The decoded content of a part or of a message/... part's message; NULL
 * when it has none, or is over max (then *over). */
static GByteArray *
object_bytes(GMimeObject *o, gsize max, gboolean *over)
{
	GMimeStream *s = g_mime_stream_mem_new();
	GByteArray *a, *r = NULL;
	gssize w = -1;

	if (GMIME_IS_PART(o) && g_mime_part_get_content(GMIME_PART(o)))
		w = g_mime_data_wrapper_write_to_stream(g_mime_part_get_content(GMIME_PART(o)), s);
	else if (GMIME_IS_MESSAGE_PART(o) && g_mime_message_part_get_message(GMIME_MESSAGE_PART(o)))
		w = g_mime_object_write_to_stream(
		    GMIME_OBJECT(g_mime_message_part_get_message(GMIME_MESSAGE_PART(o))), NULL, s);
	a = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(s));
	if (w >= 0 && a->len > max)
		*over = TRUE;
	else if (w >= 0 && a->len > 0)
		r = g_byte_array_append(g_byte_array_sized_new(a->len), a->data, a->len);
	g_object_unref(s);
	return r;
}

static GMimeMessage *
parse_message(const guint8 *data, gsize len, GMimeParserOptions *opt)
{
	GMimeStream *stream = g_mime_stream_mem_new_with_buffer((const char *)data, len);
	GMimeParser *parser = g_mime_parser_new_with_stream(stream);
	GMimeMessage *m;

	g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
	m = g_mime_parser_construct_message(parser, opt);
	g_object_unref(parser);
	g_object_unref(stream);
	return m;
}

static void
take_headers(GMimeMessage *m, DsnParsed *p)
{
	const char *id = g_mime_message_get_message_id(m);
	const char *subject = g_mime_message_get_subject(m);

	if (id && *id && !p->orig_message_id)
		p->orig_message_id = dsn_clean_text(id, strlen(id));
	if (subject && !p->orig_subject)
		p->orig_subject = dsn_clean_text(subject, strlen(subject));
}

/* The Message-ID and Subject of the returned message or headers o. */
static void
read_returned(GMimeObject *o, GMimeParserOptions *opt, DsnParsed *p)
{
	GByteArray *b;
	GMimeMessage *m;
	gboolean over = FALSE;

	if (GMIME_IS_MESSAGE_PART(o)) {
		m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));
		if (m)
			take_headers(m, p);
		return;
	}
	b = object_bytes(o, DSN_MAX_SIZE, &over);
	if (!b)
		return;
	m = parse_message(b->data, b->len, opt);
	if (m) {
		take_headers(m, p);
		g_object_unref(m);
	}
	g_byte_array_unref(b);
}

static DsnParsed *
read_report(Found *f, GMimeParserOptions *opt, char **why)
{
	gboolean over = FALSE;
	GByteArray *b = object_bytes(f->status, DSN_MAX_STATUS_LEN, &over);
	DsnParsed *p;

	if (!b) {
		if (over)
			dsn_say(why, "the delivery-status part is over %u bytes (DSN_MAX_STATUS_LEN)",
			    DSN_MAX_STATUS_LEN);
		else
			dsn_say(why, "the delivery-status part is empty");
		return NULL;
	}
	p = read_status_fields((const char *)b->data, b->len, why);
	g_byte_array_unref(b);
	if (p && f->returned)
		read_returned(f->returned, opt, p);
	return p;
}

static DsnParsed *
read_heuristic(Found *f, GMimeParserOptions *opt, char **why)
{
	char *text = g_mime_text_part_get_text(GMIME_TEXT_PART(f->text));
	const char *copy = NULL;
	DsnParsed *p = NULL;

	if (!text) {
		dsn_say(why, "the text part could not be decoded");
		return NULL;
	}
	if (strlen(text) > DSN_MAX_TEXT_LEN) {
		dsn_say(why, "the text is over %u bytes (DSN_MAX_TEXT_LEN)", DSN_MAX_TEXT_LEN);
		g_free(text);
		return NULL;
	}
	p = dsn_text_read(text, &copy, why);
	while (copy && (*copy == '\r' || *copy == '\n'))
		copy++;
	if (p && f->returned) {
		read_returned(f->returned, opt, p);
	} else if (p && copy && *copy) {
		GMimeMessage *m = parse_message((const guint8 *)copy, strlen(copy), opt);

		if (m) {
			take_headers(m, p);
			g_object_unref(m);
		}
	}
	if (!p)
		dsn_say(why, "no delivery-status part, and the text is no bounce read with confidence");
	g_free(text);
	return p;
}

/* ---- the entry point ------------------------------------------------------------ */

static gpointer
init_once(gpointer unused)
{
	(void)unused;
	g_mime_init();
	return NULL;
}

static DsnParsed *
parse_bytes(const guint8 *data, gsize len, char **why)
{
	static GOnce once = G_ONCE_INIT;
	static const char *fallback[] = { "UTF-8", "windows-1252", NULL };
	GMimeParserOptions *opt;
	GMimeMessage *m;
	DsnParsed *p = NULL;
	Found f = { 0 };

	g_once(&once, init_once, NULL);
	opt = g_mime_parser_options_new();
	g_mime_parser_options_set_fallback_charsets(opt, fallback);
	m = parse_message(data, len, opt);
	if (m)
		walk(g_mime_message_get_mime_part(m), 0, &f);
	if (!m)
		dsn_say(why, "no header section could be read");
	else if (f.too_deep)
		dsn_say(why, "MIME nesting deeper than %u levels (DSN_MAX_DEPTH)", DSN_MAX_DEPTH);
	else if (f.status)
		p = read_report(&f, opt, why);
	else if (f.other)
		dsn_say(why, "a multipart/report of report-type %s, no delivery report", f.other);
	else if (f.text)
		p = read_heuristic(&f, opt, why);
	else
		dsn_say(why, "no delivery-status part and no plain text");
	g_free(f.other);
	if (m)
		g_object_unref(m);
	g_mime_parser_options_free(opt);
	return p;
}

DsnParsed *
dsn_parse(const guint8 *data, size_t len, char **why)
{
	char *reason = NULL;
	DsnParsed *p = NULL;

	if (!data || len == 0)
		dsn_say(&reason, "the message is empty");
	else if (len > DSN_MAX_SIZE)
		dsn_say(&reason, "the message is %zu bytes, over %u (DSN_MAX_SIZE)", len, DSN_MAX_SIZE);
	else
		p = parse_bytes(data, len, &reason);
	if (p)
		g_clear_pointer(&reason, g_free);
	else if (!reason)
		reason = g_strdup("no delivery report");
	if (why)
		*why = reason;
	else
		g_free(reason);
	return p;
}
