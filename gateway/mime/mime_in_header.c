/* mime_in_header.c - the header fields of an Internet message into a legacy
 * message (MIME -> legacy; see mime_in.h).
 *
 * Owns: From, To and Cc with their display names (groups flattened one
 * level, RFC 5322 3.4), Subject, the priority (X-Priority, Importance,
 * Priority, X-MSMail-Priority) and the hop trace (one hop per Received:
 * field, oldest first, RFC 5322 3.6.7), all read from the raw fields: 8-bit
 * bytes become UTF-8 here, then RFC 2047 words are decoded by rfc2047.c.
 * GMime parses the address lists with every "=?" in them replaced by a
 * character the field does not hold (it then decodes nothing: GMime 3.2.13
 * cuts a run of base64 words after the first one ending in '=').
 * Never: the body or the parts (mime_in_part.c), the envelope.
 */
#include "config.h"

#include <string.h>

#include <gmime/gmime.h>

#include "address.h"
#include "pg_limits.h"
#include "mime/mime_int.h"
#include "pg_log.h"

/* ---- "=?" hidden from GMime's address parser --------------------------------- */

/* A private-use character the UTF-8 text does not hold, as UTF-8 into buf
 * ("" when it holds them all, which a field within MIME_IN_MAX_HEADER_LEN
 * cannot: 6,400 + 65,534 of them take more bytes). */
static void
pick_marker(const char *text, char buf[8])
{
	static const gunichar first[2] = { 0xE000, 0xF0000 }, last[2] = { 0xF8FF, 0xFFFFD };
	guint8 *seen = g_malloc0((0xF8FF - 0xE000 + 1 + 0xFFFFD - 0xF0000 + 1) / 8 + 1);
	gsize off[2] = { 0, 0xF8FF - 0xE000 + 1 };

	buf[0] = '\0';
	for (const char *p = text; *p;) {
		gunichar ch = g_utf8_get_char_validated(p, -1);
		if (ch == (gunichar)-1 || ch == (gunichar)-2) {
			p++;
			continue;
		}
		for (int r = 0; r < 2; r++)
			if (ch >= first[r] && ch <= last[r]) {
				gsize k = off[r] + (ch - first[r]);
				seen[k / 8] |= (guint8)(1u << (k % 8));
			}
		p = g_utf8_next_char(p);
	}
	for (int r = 0; r < 2 && !buf[0]; r++)
		for (gunichar ch = first[r]; ch <= last[r]; ch++) {
			gsize k = off[r] + (ch - first[r]);
			if (!(seen[k / 8] & (1u << (k % 8)))) {
				buf[g_unichar_to_utf8(ch, buf)] = '\0';
				break;
			}
		}
	g_free(seen);
}

/* s with every from replaced by to. */
static char *
replace_all(const char *s, const char *from, const char *to)
{
	GString *o = g_string_new(NULL);
	gsize n = strlen(from);
	const char *p = s, *q;

	if (n == 0)
		return g_strdup(s);
	while ((q = strstr(p, from))) {
		g_string_append_len(o, p, q - p);
		g_string_append(o, to);
		p = q + n;
	}
	g_string_append(o, p);
	return g_string_free(o, FALSE);
}

/* Text GMime gave back from the address list parsed last, "=?" restored. */
char *
mi_unmark(MiCtx *c, const char *s)
{
	return c->marker[0] ? replace_all(s ? s : "", c->marker, "=?") : g_strdup(s ? s : "");
}

/* ---- header fields -------------------------------------------------------------- */

GMimeHeader *
mi_find_header(GMimeObject *obj, const char *name)
{
	GMimeHeaderList *hl = g_mime_object_get_header_list(obj);
	int n = hl ? g_mime_header_list_get_count(hl) : 0;

	for (int i = 0; i < n; i++) {
		GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
		if (g_ascii_strcasecmp(g_mime_header_get_name(h), name) == 0)
			return h;
	}
	return NULL;
}

/* The raw value of a header field as UTF-8, unfolded, RFC 2047 words not yet
 * decoded; NULL when absent or over MIME_IN_MAX_HEADER_LEN (noted). */
static char *
header_raw_utf8(MiCtx *c, GMimeHeader *h)
{
	const char *raw = h ? g_mime_header_get_raw_value(h) : NULL;
	const char *name;
	char *what, *out, *shown_name, *escaped;
	gsize len;

	if (!raw)
		return NULL;
	name = g_mime_header_get_name(h);
	len = strlen(raw);
	if (len > MIME_IN_MAX_HEADER_LEN) {
		char *n = pg_shown(name, -1, MI_NOTE_QUOTE_MAX, FALSE);
		mi_note(c, "header field %s is %zu bytes long, over %u: ignored", n, len,
		    MIME_IN_MAX_HEADER_LEN);
		g_free(n);
		return NULL;
	}
	shown_name = pg_shown(name, -1, MI_NOTE_QUOTE_MAX, FALSE);
	what = g_strdup_printf("header field %s", shown_name);
	escaped = mi_q_words_8bit_escaped(raw, len);
	out = escaped ? mi_to_utf8(c, what, NULL, escaped, strlen(escaped)) :
	    mi_to_utf8(c, what, NULL, raw, len);
	g_free(escaped);
	g_free(what);
	g_free(shown_name);
	for (char *p = out; *p; p++)
		if (*p == '\r' || *p == '\n')
			*p = ' ';
	return out;
}

/* The decoded (RFC 2047) text of a header field, or NULL. */
char *
mi_header_text(MiCtx *c, GMimeHeader *h)
{
	char *raw = header_raw_utf8(c, h);
	char *dec, *valid, *what, *name;

	if (!raw)
		return NULL;
	name = pg_shown(g_mime_header_get_name(h), -1, MI_NOTE_QUOTE_MAX, FALSE);
	what = g_strdup_printf("header field %s", name);
	dec = mi_rfc2047_decode(c, what, raw);
	g_free(raw);
	g_free(what);
	g_free(name);
	valid = g_utf8_make_valid(dec, -1);
	g_free(dec);
	return valid;
}

static MsgPriority
priority_of(MiCtx *c, GMimeObject *top)
{
	static const char *const fields[] = { "X-Priority", "Importance", "Priority",
	    "X-MSMail-Priority" };

	for (gsize i = 0; i < G_N_ELEMENTS(fields); i++) {
		char *v = mi_header_text(c, mi_find_header(top, fields[i]));
		const char *p = v;
		MsgPriority pr = MSG_PRIORITY_NORMAL;
		gboolean known = TRUE;

		if (!v)
			continue;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p >= '1' && *p <= '5')
			pr = *p <= '2' ? MSG_PRIORITY_HIGH : *p == '3' ? MSG_PRIORITY_NORMAL :
			    MSG_PRIORITY_LOW;
		else if (g_ascii_strncasecmp(p, "high", 4) == 0 ||
		    g_ascii_strncasecmp(p, "urgent", 6) == 0)
			pr = MSG_PRIORITY_HIGH;
		else if (g_ascii_strncasecmp(p, "low", 3) == 0 ||
		    g_ascii_strncasecmp(p, "non-urgent", 10) == 0)
			pr = MSG_PRIORITY_LOW;
		else if (g_ascii_strncasecmp(p, "normal", 6) == 0)
			pr = MSG_PRIORITY_NORMAL;
		else
			known = FALSE;
		g_free(v);
		if (known)
			return pr;
	}
	return MSG_PRIORITY_NORMAL;
}

/* "SMTP:local@domain" for a mailbox, canonical, or NULL. */
static char *
mailbox_addr(MiCtx *c, InternetAddressMailbox *mb)
{
	char *a = mi_unmark(c, internet_address_mailbox_get_idn_addr(mb));
	char *typed, *canon;

	if (!*a) {
		g_free(a);
		return NULL;
	}
	typed = g_strconcat("SMTP:", a, NULL);
	canon = addr_canonical(typed, strlen(typed), NULL);
	g_free(typed);
	g_free(a);
	return canon;
}

/* Every mailbox of a list, groups flattened (one level: RFC 5322 3.4). */
static void
flatten(InternetAddressList *list, GPtrArray *out, int level)
{
	int n = list ? internet_address_list_length(list) : 0;

	for (int i = 0; i < n; i++) {
		InternetAddress *a = internet_address_list_get_address(list, i);
		if (INTERNET_ADDRESS_IS_MAILBOX(a))
			g_ptr_array_add(out, a);
		else if (INTERNET_ADDRESS_IS_GROUP(a) && level < 2)
			flatten(internet_address_group_get_members(INTERNET_ADDRESS_GROUP(a)),
			    out, level + 1);
	}
}

static InternetAddressList *
parse_addresses(MiCtx *c, GMimeObject *top, const char *field)
{
	char *raw = header_raw_utf8(c, mi_find_header(top, field));
	InternetAddressList *list;

	c->marker[0] = '\0';
	c->list_field = field;
	if (!raw)
		return NULL;
	/* GMime must decode no encoded-word: "=?" becomes a character the field
	 * does not hold, and display_name decodes the names. */
	if (strstr(raw, "=?")) {
		char *marked;
		pick_marker(raw, c->marker);
		marked = replace_all(raw, "=?", c->marker);
		g_free(raw);
		raw = marked;
	}
	c->field = field;
	list = internet_address_list_parse(c->options, raw);
	c->field = NULL;
	g_free(raw);
	return list;
}

static char *
display_name(MiCtx *c, InternetAddress *a)
{
	char *name = mi_unmark(c, internet_address_get_name(a));
	char *what = g_strdup_printf("header field %s", c->list_field);
	char *dec = mi_rfc2047_decode(c, what, name);
	char *valid = g_utf8_make_valid(dec, -1);
	char *out = mi_line_to_cp(c, valid, MSG_MAX_NAME_LEN);

	g_free(valid);
	g_free(dec);
	g_free(what);
	g_free(name);
	return out;
}

static void
from_party(MiCtx *c, GMimeObject *top)
{
	GMimeHeader *h = mi_find_header(top, "From");
	InternetAddressList *list;
	GPtrArray *boxes;
	char *addr = NULL;

	if (!h)
		return;
	list = parse_addresses(c, top, "From");
	boxes = g_ptr_array_new();
	flatten(list, boxes, 0);
	if (boxes->len > 0)
		addr = mailbox_addr(c, boxes->pdata[0]);
	if (addr) {
		c->msg->from.addr = addr;
		c->msg->from.name = display_name(c, boxes->pdata[0]);
		if (boxes->len > 1)
			mi_note(c, "From names %u mailboxes; the first is shown", boxes->len);
	} else {
		char *text = mi_header_text(c, h);
		c->msg->from.addr = g_strdup("");
		c->msg->from.name = mi_line_to_cp(c, text ? text : "", MSG_MAX_NAME_LEN);
		mi_note(c, "From has no usable address; its text is kept as the name");
		g_free(text);
	}
	g_ptr_array_unref(boxes);
	if (list)
		g_object_unref(list);
}

static void
display_list(MiCtx *c, GMimeObject *top, const char *field, GPtrArray *dest)
{
	InternetAddressList *list = parse_addresses(c, top, field);
	GPtrArray *boxes = g_ptr_array_new();
	guint dropped = 0, over = 0;

	flatten(list, boxes, 0);
	for (guint i = 0; i < boxes->len; i++) {
		char *addr, *name;

		if (c->msg->to->len + c->msg->cc->len >= MSG_MAX_DISPLAY) {
			over = boxes->len - i;
			break;
		}
		addr = mailbox_addr(c, boxes->pdata[i]);
		if (!addr) {
			char *raw = mi_unmark(c,
			    internet_address_mailbox_get_addr(boxes->pdata[i]));
			char *a = pg_shown(raw, -1, MI_NOTE_QUOTE_MAX, FALSE);
			if (dropped++ == 0)
				mi_note(c,
				    "%s: address %s cannot be written SMTP:local@domain, dropped",
				    field, a);
			g_free(a);
			g_free(raw);
			continue;
		}
		name = display_name(c, boxes->pdata[i]);
		msg_add_party(dest, addr, name);
		g_free(addr);
		g_free(name);
	}
	if (dropped > 1)
		mi_note(c, "%s: %u addresses dropped in all", field, dropped);
	if (over)
		mi_note(c, "%s: %u more addresses not shown (at most %u To and Cc entries)", field,
		    over, MSG_MAX_DISPLAY);
	g_ptr_array_unref(boxes);
	if (list)
		g_object_unref(list);
}

/* The node of a Received: field: the host after "by" (comments skipped). */
static char *
received_by(const char *v)
{
	const char *p = v;
	gboolean want = FALSE;

	while (*p && *p != ';') {
		const char *start;
		gsize n;

		if (*p == ' ' || *p == '\t') {
			p++;
			continue;
		}
		if (*p == '(') {
			int depth = 0;
			for (; *p; p++) {
				if (*p == '\\' && p[1])
					p++;
				else if (*p == '(')
					depth++;
				else if (*p == ')' && --depth == 0) {
					p++;
					break;
				}
			}
			continue;
		}
		start = p;
		while (*p && *p != ' ' && *p != '\t' && *p != ';' && *p != '(')
			p++;
		n = (gsize)(p - start);
		if (want) {
			GString *s = g_string_new(NULL);
			for (gsize i = 0; i < n && s->len < MIME_IN_MAX_HOP_NAME; i++)
				if ((guchar)start[i] > 0x20 && (guchar)start[i] < 0x7f)
					g_string_append_c(s, start[i]);
			if (s->len)
				return g_string_free(s, FALSE);
			g_string_free(s, TRUE);
			return NULL;
		}
		want = n == 2 && g_ascii_strncasecmp(start, "by", 2) == 0;
	}
	return NULL;
}

static gboolean
hops(MiCtx *c, GMimeObject *top)
{
	GMimeHeaderList *hl = g_mime_object_get_header_list(top);
	int n = hl ? g_mime_header_list_get_count(hl) : 0;
	GPtrArray *fields = g_ptr_array_new();

	for (int i = 0; i < n; i++) {
		GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
		if (g_ascii_strcasecmp(g_mime_header_get_name(h), "Received") == 0)
			g_ptr_array_add(fields, h);
	}
	if (fields->len > MSG_MAX_HOPS) {
		mi_limit(c, "the message has crossed %u hosts (Received: fields), over the legacy "
		    "limit of %u hops (MSG_MAX_HOPS): most likely a mail loop", fields->len,
		    MSG_MAX_HOPS);
		g_ptr_array_unref(fields);
		return FALSE;
	}
	/* Received: fields are added on top: the last one is the oldest. */
	for (guint i = fields->len; i-- > 0;) {
		const char *raw = g_mime_header_get_raw_value(fields->pdata[i]);
		char *v = raw && strlen(raw) <= MIME_IN_MAX_HEADER_LEN ? g_strdup(raw) :
		    g_strdup("");
		char *node, *semi;
		gint64 when = 0;

		for (char *p = v; *p; p++)
			if ((guchar)*p < 0x20 || (guchar)*p >= 0x7f)
				*p = ' ';
		node = received_by(v);
		semi = strrchr(v, ';');
		if (semi) {
			GDateTime *dt = g_mime_utils_header_decode_date(semi + 1);
			if (dt) {
				when = g_date_time_to_unix(dt);
				g_date_time_unref(dt);
			}
		}
		msg_add_hop(c->msg, node ? node : "smtp", when);
		g_free(node);
		g_free(v);
	}
	g_ptr_array_unref(fields);
	return TRUE;
}

gboolean
mi_headers(MiCtx *c, GMimeMessage *m)
{
	GMimeObject *top = GMIME_OBJECT(m);
	GDateTime *date;
	char *subject;

	if (!hops(c, top))
		return FALSE;
	from_party(c, top);
	display_list(c, top, "To", c->msg->to);
	display_list(c, top, "Cc", c->msg->cc);
	subject = mi_header_text(c, mi_find_header(top, "Subject"));
	c->msg->subject = mi_line_to_cp(c, subject ? subject : "", MSG_MAX_SUBJECT_LEN);
	g_free(subject);
	date = g_mime_message_get_date(m);
	c->msg->date = date ? g_date_time_to_unix(date) : 0;
	c->msg->priority = priority_of(c, top);
	return TRUE;
}
