/* mime_out.c - a legacy message as RFC 5322 / MIME bytes (legacy -> MIME;
 * see mime_out.h).
 *
 * Owns: the header fields (From, To, Cc and Subject written here, not by
 * GMime; Date, Message-ID, trace, priority, X-Legacy-*), the body and
 * attachment parts, the multipart boundary; the encoded-words come from
 * rfc2047.c, the name parameters from params.c.
 * Never: reading Internet mail (mime_in.c), reports, directory lookups,
 * delivery, the locale.
 */
#include "config.h"

#include <string.h>

#include <gmime/gmime.h>

#include "address.h"
#include "codepage.h"
#include "mime/mime_out.h"
#include "mime/mime_int.h"
#include "pg_limits.h"

G_DEFINE_QUARK(postgate-mime-out-error-quark, mime_out_error)

/* What a character that cannot be shown becomes in text: U+FFFD. */
#define REPLACEMENT_UTF8 "\xef\xbf\xbd"

void
mime_out_gmime_init(void)
{
	static gsize done = 0;

	if (g_once_init_enter(&done)) {
		g_mime_init();
		g_once_init_leave(&done, 1);
	}
}

/* ---- tokens: domains, atoms, comments ------------------------------------- */

/* s with every character that is not A-Z a-z 0-9 - _ made '-', at most max
 * bytes, never empty (fallback when nothing is left). */
static char *
word_token(const char *s, size_t max, const char *fallback)
{
	GString *out = g_string_new(NULL);

	for (; s && *s && out->len < max; s++)
		g_string_append_c(out, g_ascii_isalnum(*s) || *s == '-' || *s == '_' ? *s : '-');
	if (out->len == 0)
		g_string_append(out, fallback);
	return g_string_free(out, FALSE);
}

/* One domain label (RFC 1035 2.3.1) from len bytes of text: lower case,
 * letters, digits and inner hyphens; NULL if nothing is left. */
static char *
label_token(const char *s, size_t len)
{
	GString *out = g_string_new(NULL);

	for (size_t i = 0; i < len && out->len < MIME_OUT_LABEL_MAX; i++) {
		char c = g_ascii_tolower(s[i]);
		if (!g_ascii_isalnum(c))
			c = '-';
		if (c == '-' && (out->len == 0 || out->str[out->len - 1] == '-'))
			continue;
		g_string_append_c(out, c);
	}
	while (out->len > 0 && out->str[out->len - 1] == '-')
		g_string_truncate(out, out->len - 1);
	if (out->len == 0) {
		g_string_free(out, TRUE);
		return NULL;
	}
	return g_string_free(out, FALSE);
}

char *
mime_out_node_domain(const char *node)
{
	GPtrArray *labels = g_ptr_array_new_with_free_func(g_free);
	GString *out = g_string_new(NULL);
	const char *p = node ? node : "";

	/* NET/PO reads most significant first; a domain least significant first. */
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		char *label = label_token(p, len);

		if (label)
			g_ptr_array_add(labels, label);
		if (!slash)
			break;
		p = slash + 1;
	}
	for (guint i = labels->len; i > 0; i--) {
		if (out->len + strlen(labels->pdata[i - 1]) + sizeof ".legacy" >
		    MIME_OUT_HOST_MAX)
			break;
		g_string_append_printf(out, "%s.", (const char *)labels->pdata[i - 1]);
	}
	if (out->len == 0)
		g_string_append(out, "unknown.");
	g_string_append(out, "legacy");
	g_ptr_array_free(labels, TRUE);
	return g_string_free(out, FALSE);
}

/* A host name as dot-atom-text (RFC 5322 3.2.3) and a valid domain: labels
 * as label_token makes them, empty ones dropped. */
static char *
host_token(const char *host)
{
	GString *out = g_string_new(NULL);
	const char *p = host ? host : "";

	for (;;) {
		const char *dot = strchr(p, '.');
		size_t len = dot ? (size_t)(dot - p) : strlen(p);
		char *label = label_token(p, len);

		if (label && out->len + 1 + strlen(label) <= MIME_OUT_HOST_MAX) {
			if (out->len)
				g_string_append_c(out, '.');
			g_string_append(out, label);
		}
		g_free(label);
		if (!dot)
			break;
		p = dot + 1;
	}
	if (out->len == 0)
		g_string_append(out, "postgate.invalid");
	return g_string_free(out, FALSE);
}

/* Legacy text fit for a comment (RFC 5322 3.2.2): printable ASCII but for
 * the parentheses and backslash, at most MIME_OUT_COMMENT_MAX bytes. */
static char *
comment_text(const char *s)
{
	GString *out = g_string_new(NULL);

	for (; s && *s && out->len < MIME_OUT_COMMENT_MAX; s++) {
		char c = *s;
		g_string_append_c(out, c >= 0x20 && c < 0x7f && c != '(' && c != ')' &&
		    c != '\\' ? c : '?');
	}
	return g_string_free(out, FALSE);
}

/* ---- header text written here, not by GMime ---------------------------------- */

static gboolean
is_atext(char c)
{
	return g_ascii_isalnum(c) || strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* A display name or group name (RFC 5322 3.2.5 phrase) appended to out after
 * a blank: atoms when it is only atoms, a quoted-string when it is other
 * printable ASCII, encoded-words when mi_rfc2047_needed says so. */
static void
append_phrase(GString *out, const char *utf8, gsize *col)
{
	gboolean atoms = TRUE;
	gsize start = out->len;

	if (mi_rfc2047_needed(utf8)) {
		mi_rfc2047_append(out, utf8, col);
		return;
	}
	for (const char *p = utf8; *p; p++)
		atoms &= is_atext(*p) || *p == ' ';
	g_string_append_c(out, ' ');
	if (atoms) {
		g_string_append(out, utf8);
	} else {
		g_string_append_c(out, '"');
		for (const char *p = utf8; *p; p++) {
			if (*p == '"' || *p == '\\')
				g_string_append_c(out, '\\');
			g_string_append_c(out, *p);
		}
		g_string_append_c(out, '"');
	}
	*col += out->len - start;
}

/* Set header name of obj to raw (without the name and colon, as
 * g_mime_header_set_raw_value takes it: a leading blank, folded lines, a
 * final CRLF), appended after the fields there already are: GMime writes it
 * as it is and reads it back for its own view of the object. */
static void
set_raw_header(GMimeObject *obj, const char *name, GString *raw)
{
	GMimeHeaderList *hl = g_mime_object_get_header_list(obj);
	GMimeHeader *h = g_mime_header_list_get_header(hl, name);

	if (!h) {
		g_mime_object_append_header(obj, name, "", NULL);
		h = g_mime_header_list_get_header_at(hl, g_mime_header_list_get_count(hl) - 1);
	}
	g_string_append(raw, "\r\n");
	g_mime_header_set_raw_value(h, raw->str);
}

/* Printable ASCII text of an unstructured field (RFC 5322 3.2.5) appended
 * after a blank, folded before a blank where a line would grow past
 * MI_FOLD_WIDTH (a word longer than a line stays whole). */
static void
append_unstructured(GString *out, const char *text, gsize *col)
{
	g_string_append_c(out, ' ');
	(*col)++;
	for (const char *p = text; *p;) {
		const char *end = strchr(p + 1, ' ');
		gsize n = end ? (gsize)(end - p) : strlen(p);

		if (*p == ' ' && *col + n > MI_FOLD_WIDTH) {
			g_string_append(out, "\r\n");
			*col = 0;
		}
		g_string_append_len(out, p, (gssize)n);
		*col += n;
		p += n;
	}
}

/* A mailbox appended after a blank: "name <addr>", or addr alone. */
static void
append_mailbox(GString *out, gsize *col, const char *name, const char *addr)
{
	if (*name) {
		append_phrase(out, name, col);
		if (*col + 3 + strlen(addr) > MI_FOLD_WIDTH) {
			g_string_append(out, "\r\n");
			*col = 0;
		}
		g_string_append_printf(out, " <%s>", addr);
		*col += 3 + strlen(addr);
	} else {
		g_string_append_printf(out, " %s", addr);
		*col += 1 + strlen(addr);
	}
}

/* ---- Message-ID ---------------------------------------------------------- */

/* The first n hex digits of SHA-256 over the parts, each followed by a NUL. */
static char *
hash_hex(const char *a, const char *b, size_t n)
{
	GChecksum *sum = g_checksum_new(G_CHECKSUM_SHA256);
	char *hex;

	g_checksum_update(sum, (const guchar *)a, (gssize)strlen(a) + 1);
	g_checksum_update(sum, (const guchar *)b, (gssize)strlen(b) + 1);
	hex = g_strndup(g_checksum_get_string(sum), n);
	g_checksum_free(sum);
	return hex;
}

char *
mime_out_message_id(const char *source_po, const char *legacy_id, const char *hostname)
{
	char *po = g_ascii_strup(source_po ? source_po : "", -1);
	const char *id = legacy_id ? legacy_id : "";
	char *id_part = word_token(id, MIME_OUT_ID_PART_MAX, "legacy");
	char *po_part = word_token(po, MIME_OUT_ID_PART_MAX, "unknown");
	char *hash = hash_hex(po, id, MIME_OUT_HASH_HEX);
	char *host = host_token(hostname);
	char *msgid;

	msgid = g_strdup_printf("<%s.%s.%s@%s>", id_part, po_part, hash, host);
	g_free(po);
	g_free(id_part);
	g_free(po_part);
	g_free(hash);
	g_free(host);
	return msgid;
}

/* ---- text from the codepage ------------------------------------------------ */

/* Text for a header (display name, subject, file name): UTF-8 from the
 * codepage, control characters (C0, DEL, C1) made spaces, trimmed. */
static char *
header_text(const char *codepage, const char *text)
{
	char *utf8 = cp_to_utf8(codepage, text ? text : "", text ? strlen(text) : 0, NULL);
	GString *out = g_string_new(NULL);

	for (const char *p = utf8 ? utf8 : ""; *p; p = g_utf8_next_char(p)) {
		gunichar c = g_utf8_get_char(p);
		if (g_unichar_iscntrl(c))
			g_string_append_c(out, ' ');
		else
			g_string_append_unichar(out, c);
	}
	g_free(utf8);
	g_strstrip(out->str);
	g_string_set_size(out, strlen(out->str));
	return g_string_free(out, FALSE);
}

/* The body as UTF-8 with CRLF line ends, ending in one unless empty: the
 * canonical form of text (RFC 2049 4).  A NUL byte, which text may not hold
 * (RFC 2045 2.7), becomes U+FFFD. */
static GString *
body_text(const char *codepage, GBytes *body)
{
	gsize len = 0;
	const char *data = body ? g_bytes_get_data(body, &len) : NULL;
	GString *utf8 = g_string_sized_new(len + len / 8 + 16);
	GString *out;
	gsize start = 0;

	for (gsize i = 0; i <= len; i++) {
		if (i < len && data[i] != '\0')
			continue;
		if (i > start) {
			char *piece = cp_to_utf8(codepage, data + start, i - start, NULL);
			g_string_append(utf8, piece ? piece : REPLACEMENT_UTF8);
			g_free(piece);
		}
		if (i < len)
			g_string_append(utf8, REPLACEMENT_UTF8);
		start = i + 1;
	}
	out = g_string_sized_new(utf8->len + utf8->len / 32 + 2);
	for (gsize i = 0; i < utf8->len; i++) {
		char c = utf8->str[i];
		if (c == '\r') {
			if (i + 1 < utf8->len && utf8->str[i + 1] == '\n')
				i++;
			g_string_append(out, "\r\n");
		} else if (c == '\n') {
			g_string_append(out, "\r\n");
		} else {
			g_string_append_c(out, c);
		}
	}
	g_string_free(utf8, TRUE);
	if (out->len > 0 && out->str[out->len - 1] != '\n')
		g_string_append(out, "\r\n");
	return out;
}

/* ---- addresses ------------------------------------------------------------- */

/* The SMTP address a legacy address is reached by, canonical, or FALSE. */
static gboolean
smtp_address_of(const MimeOutContext *ctx, const char *legacy, char out[ADDR_SMTP_MAX + 1])
{
	const char *smtp = NULL;
	PgAddr a;

	if (!legacy)
		return FALSE;
	if (ctx->address_of)
		smtp = ctx->address_of(legacy, ctx->data);
	else if (addr_parse(legacy, strlen(legacy), &a, NULL) && a.kind == ADDR_KIND_SMTP)
		smtp = a.smtp;
	return smtp && addr_parse_smtp(smtp, strlen(smtp), out, NULL);
}

/* A To or Cc party appended to an address field being written, after a
 * blank: its mailbox, or an empty group named "Name (NET/PO/MAILBOX)" when it
 * has no SMTP address (RFC 5322 3.4). */
static void
append_party(GString *out, gsize *col, const MimeOutContext *ctx, const char *codepage,
    const MsgParty *p)
{
	char smtp[ADDR_SMTP_MAX + 1];
	char *name = header_text(codepage, p->name);

	if (smtp_address_of(ctx, p->addr, smtp)) {
		append_mailbox(out, col, name, smtp);
	} else {
		char *addr = comment_text(p->addr);
		char *shown = *name ? g_strdup_printf("%s (%s)", name, addr) : g_strdup(addr);

		append_phrase(out, shown, col);
		g_string_append(out, ": ;");
		*col += 3;
		g_free(shown);
		g_free(addr);
	}
	g_free(name);
}

/* The raw value of a To or Cc field: one party a line. */
static GString *
parties_field(const MimeOutContext *ctx, const char *codepage, const GPtrArray *parties,
    gsize name_len)
{
	GString *out = g_string_new(NULL);
	gsize col = name_len + 1;

	for (guint i = 0; i < parties->len; i++) {
		if (i > 0) {
			g_string_append(out, ",\r\n");
			col = 0;
		}
		append_party(out, &col, ctx, codepage, parties->pdata[i]);
	}
	return out;
}

/* ---- header fields --------------------------------------------------------- */

char *
mime_out_date(gint64 t)
{
	/* 0001-01-01 .. 9999-12-31: what GDateTime and a 4-digit year hold. */
	GDateTime *dt = g_date_time_new_from_unix_utc(CLAMP(t, 0, G_GINT64_CONSTANT(253402300799)));
	char *s = g_mime_utils_header_format_date(dt);

	g_date_time_unref(dt);
	return s;
}

static void
add_trace(GMimeObject *obj, const LegacyMessage *msg, const MimeOutContext *ctx,
    const char *host)
{
	char *from = mime_out_node_domain(ctx->source_po);
	char *id = word_token(msg->id, MIME_OUT_ID_PART_MAX, "unknown");
	char *date = mime_out_date(ctx->now);
	char *value;

	/* The gateway's own, on top (RFC 5321 4.4). */
	value = g_strdup_printf("from %s by %s (postgate) with LEGACY id %s; %s", from, host,
	    id, date);
	g_mime_object_append_header(obj, "Received", value, NULL);
	g_free(value);
	g_free(date);
	g_free(id);
	g_free(from);
	/* The legacy hops, newest first. */
	for (guint i = msg->hops->len; i > 0; i--) {
		const MsgHop *hop = msg->hops->pdata[i - 1];
		char *node = mime_out_node_domain(hop->node);
		char *comment = comment_text(hop->node);

		date = mime_out_date(hop->time);
		value = g_strdup_printf("by %s (legacy postoffice %s); %s", node, comment, date);
		g_mime_object_append_header(obj, "Received", value, NULL);
		g_free(value);
		g_free(date);
		g_free(comment);
		g_free(node);
	}
}

/* ---- parts ------------------------------------------------------------------ */

static GMimeDataWrapper *
wrapper_new(const void *data, gsize len)
{
	GMimeStream *stream = g_mime_stream_mem_new_with_buffer(data, len);
	GMimeDataWrapper *content =
	    g_mime_data_wrapper_new_with_stream(stream, GMIME_CONTENT_ENCODING_DEFAULT);

	g_object_unref(stream);
	return content;
}

static GMimePart *
text_part_new(const GString *text)
{
	GMimeTextPart *part = g_mime_text_part_new_with_subtype("plain");
	GMimeDataWrapper *content = wrapper_new(text->str, text->len);
	GMimeContentEncoding enc;

	g_mime_text_part_set_charset(part, MI_TEXT_CHARSET);
	g_mime_part_set_content(GMIME_PART(part), content);
	g_object_unref(content);
	enc = g_mime_part_get_best_content_encoding(GMIME_PART(part),
	    GMIME_ENCODING_CONSTRAINT_7BIT);
	g_mime_part_set_content_encoding(GMIME_PART(part),
	    enc == GMIME_CONTENT_ENCODING_DEFAULT ? GMIME_CONTENT_ENCODING_7BIT : enc);
	return GMIME_PART(part);
}

/* Whether bytes can be a message/rfc822 part as they are: 7-bit without NUL,
 * CRLF line ends only, no line over MIME_OUT_LINE_MAX (RFC 2046 5.2.1
 * allows only 7bit, 8bit or binary there; postgate sends 7-bit), and GMime
 * parses them as a message with a From: or Date: field. */
static gboolean
is_rfc822(const guint8 *data, gsize len)
{
	GMimeStream *stream;
	GMimeParser *parser;
	GMimeMessage *parsed;
	gsize line = 0;
	gboolean ok;

	if (len == 0)
		return FALSE;
	for (gsize i = 0; i < len; i++) {
		guint8 c = data[i];
		if (c == 0 || c > 0x7f)
			return FALSE;
		if (c == '\r') {
			if (i + 1 >= len || data[i + 1] != '\n')
				return FALSE;
		} else if (c == '\n') {
			if (i == 0 || data[i - 1] != '\r')
				return FALSE;
			line = 0;
			continue;
		}
		if (c != '\r' && ++line > MIME_OUT_LINE_MAX)
			return FALSE;
	}
	stream = g_mime_stream_mem_new_with_buffer((const char *)data, len);
	parser = g_mime_parser_new_with_stream(stream);
	parsed = g_mime_parser_construct_message(parser, NULL);
	ok = parsed && (g_mime_object_get_header(GMIME_OBJECT(parsed), "From") ||
	    g_mime_object_get_header(GMIME_OBJECT(parsed), "Date"));
	g_clear_object(&parsed);
	g_object_unref(parser);
	g_object_unref(stream);
	return ok;
}

/* The IANA name of a codepage, for the charset of a text attachment. */
static const char *
iana_charset(const char *codepage)
{
	static const struct { const char *cp, *iana; } names[] = {
		{ "CP437", "IBM437" }, { "CP850", "IBM850" }, { "CP852", "IBM852" },
		{ "CP858", "IBM00858" }, { "CP1250", "windows-1250" },
		{ "CP1251", "windows-1251" }, { "CP1252", "windows-1252" },
		{ "CP1253", "windows-1253" }, { "CP1254", "windows-1254" },
		{ "CP1257", "windows-1257" },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(names); i++)
		if (g_ascii_strcasecmp(codepage, names[i].cp) == 0)
			return names[i].iana;
	return codepage;
}

/* The Content-Type of an attachment, from its file name's extension. */
static GMimeContentType *
attachment_type(const char *name, const guint8 *data, gsize len, const char *codepage)
{
	static const struct { const char *ext, *type; } types[] = {
		{ "pdf", "application/pdf" },
		{ "jpg", "image/jpeg" }, { "jpeg", "image/jpeg" },
		{ "png", "image/png" }, { "gif", "image/gif" },
		{ "zip", "application/zip" },
		{ "doc", "application/msword" },
		{ "docx",
		    "application/vnd.openxmlformats-officedocument.wordprocessingml.document" },
		{ "xls", "application/vnd.ms-excel" },
		{ "xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" },
	};
	const char *dot = strrchr(name, '.');
	const char *ext = dot ? dot + 1 : "";
	GMimeContentType *type;

	if (g_ascii_strcasecmp(ext, "txt") == 0) {
		/* A legacy user's text file is in the postoffice's codepage,
		 * unless it is plain ASCII or already UTF-8. */
		type = g_mime_content_type_new("text", "plain");
		g_mime_content_type_set_parameter(type, "charset",
		    mi_all_ascii((const char *)data, len) ?
		    "us-ascii" : g_utf8_validate((const char *)data, (gssize)len, NULL) ?
		    "utf-8" : iana_charset(codepage));
		return type;
	}
	if (g_ascii_strcasecmp(ext, "eml") == 0 && is_rfc822(data, len))
		return g_mime_content_type_new("message", "rfc822");
	for (size_t i = 0; i < G_N_ELEMENTS(types); i++)
		if (g_ascii_strcasecmp(ext, types[i].ext) == 0)
			return g_mime_content_type_parse(NULL, types[i].type);
	return g_mime_content_type_new("application", "octet-stream");
}

static GMimePart *
attachment_part_new(const MsgAttachment *a, const char *codepage, guint number)
{
	gsize len = 0;
	const guint8 *data = g_bytes_get_data(a->data, &len);
	char *name = header_text(codepage, a->name);
	GMimeContentType *type;
	GMimePart *part;
	GMimeDataWrapper *content;
	gboolean rfc822;
	GString *raw;
	gsize col;
	const char *cs;
	char *mime_type;

	if (!*name) {
		g_free(name);
		name = g_strdup_printf("attachment-%u", number);
	}
	type = attachment_type(name, data, len, codepage);
	rfc822 = g_mime_content_type_is_type(type, "message", "rfc822");
	part = g_mime_part_new();
	g_mime_object_set_content_type(GMIME_OBJECT(part), type);
	g_object_unref(type);
	content = wrapper_new(data ? data : (const guint8 *)"", len);
	g_mime_part_set_content(part, content);
	g_object_unref(content);
	/* Exact bytes: base64, or a message as it is (checked by is_rfc822). */
	g_mime_part_set_content_encoding(part, rfc822 ? GMIME_CONTENT_ENCODING_7BIT :
	    GMIME_CONTENT_ENCODING_BASE64);
	g_mime_object_set_disposition(GMIME_OBJECT(part), GMIME_DISPOSITION_ATTACHMENT);
	/* The name parameters are written here: GMime splits RFC 2231
	 * continuations inside a UTF-8 character. */
	mime_type = g_mime_content_type_get_mime_type(g_mime_object_get_content_type(
	    GMIME_OBJECT(part)));
	raw = g_string_new(NULL);
	g_string_append_printf(raw, " %s", mime_type);
	g_free(mime_type);
	col = strlen("Content-Type:") + raw->len;
	cs = g_mime_content_type_get_parameter(g_mime_object_get_content_type(GMIME_OBJECT(part)),
	    "charset");
	if (cs)
		mi_param_append(raw, "charset", cs, &col);
	mi_param_append(raw, "name", name, &col);
	set_raw_header(GMIME_OBJECT(part), "Content-Type", raw);
	g_string_free(raw, TRUE);
	raw = g_string_new(" " GMIME_DISPOSITION_ATTACHMENT);
	col = strlen("Content-Disposition:") + raw->len;
	mi_param_append(raw, "filename", name, &col);
	set_raw_header(GMIME_OBJECT(part), "Content-Disposition", raw);
	g_string_free(raw, TRUE);
	g_free(name);
	return part;
}

/* A multipart boundary derived from the message (the same bytes under any
 * run or locale) that no part written as it is contains.  Base64 and
 * quoted-printable never write "=_", so only 7bit parts are checked. */
static char *
boundary_for(const char *msgid, GPtrArray *plain)
{
	for (guint n = 0;; n++) {
		char count[16];
		char *hash, *boundary, *line;
		gboolean clash = FALSE;

		g_snprintf(count, sizeof count, "%u", n);
		hash = hash_hex(msgid, count, 2 * MIME_OUT_HASH_HEX);
		boundary = g_strdup_printf("=_postgate_%s", hash);
		line = g_strdup_printf("--%s", boundary);
		g_free(hash);
		for (guint i = 0; i < plain->len && !clash; i++) {
			GBytes *b = plain->pdata[i];
			gsize len;
			const char *d = g_bytes_get_data(b, &len);
			clash = len >= strlen(line) && g_strstr_len(d, (gssize)len, line) != NULL;
		}
		g_free(line);
		if (!clash)
			return boundary;
		g_free(boundary);
	}
}

/* ---- the message --------------------------------------------------------------- */

static gboolean
check_input(const LegacyMessage *msg, const MimeOutContext *ctx,
    char from[ADDR_SMTP_MAX + 1], GError **error)
{
	GError *e = NULL;
	const char *id = msg->id ? msg->id : "(no id)";

	if (msg->class != MSG_CLASS_NORMAL) {
		g_set_error(error, MIME_OUT_ERROR, MIME_OUT_ERROR_REPORT,
		    "legacy message %s is a %s: reports are translated as DSNs by the "
		    "reports module, not as ordinary mail", id, msg_class_name(msg->class));
		return FALSE;
	}
	if (!msg_validate(msg, &e)) {
		g_set_error(error, MIME_OUT_ERROR, MIME_OUT_ERROR_INVALID,
		    "legacy message %s cannot be translated: %s", id, e->message);
		g_error_free(e);
		return FALSE;
	}
	if (!ctx->from_address ||
	    !addr_parse_smtp(ctx->from_address, strlen(ctx->from_address), from, &e)) {
		g_set_error(error, MIME_OUT_ERROR, MIME_OUT_ERROR_INVALID,
		    "legacy message %s: its sender %s has no usable primary SMTP address "
		    "(%s); give the directory entry an SMTP: proxy", id, msg->originator.addr,
		    e ? e->message : "none given");
		g_clear_error(&e);
		return FALSE;
	}
	if (!ctx->hostname || !*ctx->hostname) {
		g_set_error(error, MIME_OUT_ERROR, MIME_OUT_ERROR_INVALID,
		    "legacy message %s: the gateway has no host name for Message-ID and "
		    "Received: fields; set [smtpd] hostname", id);
		return FALSE;
	}
	if (!ctx->source_po || !*ctx->source_po) {
		g_set_error(error, MIME_OUT_ERROR, MIME_OUT_ERROR_INVALID,
		    "legacy message %s: the postoffice it came from is not known", id);
		return FALSE;
	}
	if (!cp_supported(msg->codepage)) {
		g_set_error(error, MIME_OUT_ERROR, MIME_OUT_ERROR_CODEPAGE,
		    "legacy message %s from %s is in codepage %s, which iconv on this "
		    "system does not convert; install its conversion module or correct the "
		    "postoffice's codepage", id, ctx->source_po, msg->codepage);
		return FALSE;
	}
	return TRUE;
}

static void
add_headers(GMimeMessage *message, const LegacyMessage *msg, const MimeOutContext *ctx,
    const char *from, const char *host, const char *msgid)
{
	GMimeObject *obj = GMIME_OBJECT(message);
	const char *cp = msg->codepage;
	GString *raw;
	gsize col;
	char *text;
	gint64 when;

	add_trace(obj, msg, ctx, host);

	/* From, To, Cc and Subject are written here: GMime writes text that
	 * looks like an encoded-word as it is (a reader then decodes it) and
	 * ends base64 words in '=' padding mid-run. */
	text = header_text(cp, msg->from.name && *msg->from.name ? msg->from.name :
	    msg->originator.name);
	raw = g_string_new(NULL);
	col = strlen("From:");
	append_mailbox(raw, &col, text, from);
	set_raw_header(obj, "From", raw);
	g_string_free(raw, TRUE);
	g_free(text);

	if (msg->to->len == 0) {
		raw = g_string_new(" undisclosed-recipients: ;");
	} else {
		raw = parties_field(ctx, cp, msg->to, strlen("To"));
	}
	set_raw_header(obj, "To", raw);
	g_string_free(raw, TRUE);
	if (msg->cc->len > 0) {
		raw = parties_field(ctx, cp, msg->cc, strlen("Cc"));
		set_raw_header(obj, "Cc", raw);
		g_string_free(raw, TRUE);
	}

	text = header_text(cp, msg->subject);
	if (*text) {
		raw = g_string_new(NULL);
		col = strlen("Subject:");
		if (mi_rfc2047_needed(text))
			mi_rfc2047_append(raw, text, &col);
		else
			append_unstructured(raw, text, &col);
		set_raw_header(obj, "Subject", raw);
		g_string_free(raw, TRUE);
	}
	g_free(text);

	when = msg->date > 0 ? msg->date : msg->submit_time > 0 ? msg->submit_time : ctx->now;
	text = mime_out_date(when);
	g_mime_object_append_header(obj, "Date", text, NULL);
	g_free(text);
	g_mime_object_append_header(obj, "Message-ID", msgid, NULL);
	g_mime_object_append_header(obj, "MIME-Version", "1.0", NULL);
	if (msg->priority == MSG_PRIORITY_HIGH) {
		g_mime_object_append_header(obj, "X-Priority", "1 (Highest)", NULL);
		g_mime_object_append_header(obj, "Importance", "high", NULL);
	} else if (msg->priority == MSG_PRIORITY_LOW) {
		g_mime_object_append_header(obj, "X-Priority", "5 (Lowest)", NULL);
		g_mime_object_append_header(obj, "Importance", "low", NULL);
	}
	/* msg_validate admits only printable ASCII without blanks in an id. */
	g_mime_object_append_header(obj, "X-Legacy-Id", msg->id, NULL);
	text = comment_text(ctx->source_po);
	g_mime_object_append_header(obj, "X-Legacy-Postoffice", text, NULL);
	g_free(text);
}

/* The body: a text/plain part alone, or multipart/mixed with the attachments. */
static GMimeObject *
build_body(const LegacyMessage *msg, const char *msgid)
{
	GString *text = body_text(msg->codepage, msg->body);
	GMimePart *text_part = text_part_new(text);
	GMimeMultipart *mixed;
	GPtrArray *plain;
	char *boundary;

	if (msg->attachments->len == 0) {
		g_string_free(text, TRUE);
		return GMIME_OBJECT(text_part);
	}
	mixed = g_mime_multipart_new_with_subtype("mixed");
	plain = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
	if (g_mime_part_get_content_encoding(text_part) == GMIME_CONTENT_ENCODING_7BIT)
		g_ptr_array_add(plain, g_bytes_new(text->str, text->len));
	g_string_free(text, TRUE);
	g_mime_multipart_add(mixed, GMIME_OBJECT(text_part));
	g_object_unref(text_part);
	for (guint i = 0; i < msg->attachments->len; i++) {
		const MsgAttachment *a = msg->attachments->pdata[i];
		GMimePart *part = attachment_part_new(a, msg->codepage, i + 1);

		if (g_mime_part_get_content_encoding(part) == GMIME_CONTENT_ENCODING_7BIT)
			g_ptr_array_add(plain, g_bytes_ref(a->data));
		g_mime_multipart_add(mixed, GMIME_OBJECT(part));
		g_object_unref(part);
	}
	boundary = boundary_for(msgid, plain);
	g_mime_multipart_set_boundary(mixed, boundary);
	g_free(boundary);
	g_ptr_array_free(plain, TRUE);
	return GMIME_OBJECT(mixed);
}

GBytes *
mime_out_build(const LegacyMessage *msg, const MimeOutContext *ctx, GError **error)
{
	char from[ADDR_SMTP_MAX + 1];
	GMimeMessage *message;
	GMimeObject *body;
	GBytes *bytes;
	char *host, *msgid;

	g_return_val_if_fail(msg != NULL && ctx != NULL, NULL);
	if (!check_input(msg, ctx, from, error))
		return NULL;
	mime_out_gmime_init();

	host = host_token(ctx->hostname);
	msgid = mime_out_message_id(ctx->source_po, msg->id, ctx->hostname);
	message = g_mime_message_new(FALSE);
	add_headers(message, msg, ctx, from, host, msgid);
	body = build_body(msg, msgid);
	g_mime_message_set_mime_part(message, body);
	g_object_unref(body);

	bytes = mime_out_bytes(message);
	g_object_unref(message);
	g_free(host);
	if (!bytes)
		g_set_error(error, MIME_OUT_ERROR, MIME_OUT_ERROR_WRITE,
		    "legacy message %s: GMime could not write the message %s (out of memory?)",
		    msg->id, msgid);
	g_free(msgid);
	return bytes;
}

GBytes *
mime_out_bytes(GMimeMessage *message)
{
	GMimeFormatOptions *options = g_mime_format_options_new();
	GMimeStream *out = g_mime_stream_mem_new();
	GByteArray *bytes;
	ssize_t written;

	g_mime_format_options_set_newline_format(options, GMIME_NEWLINE_FORMAT_DOS);
	g_mime_format_options_set_param_encoding_method(options,
	    GMIME_PARAM_ENCODING_METHOD_RFC2231);
	written = g_mime_object_write_to_stream(GMIME_OBJECT(message), options, out);
	g_mime_format_options_free(options);
	if (written < 0) {
		g_object_unref(out);
		return NULL;
	}
	g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(out), FALSE);
	bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(out));
	g_object_unref(out);
	return g_byte_array_free_to_bytes(bytes);
}

