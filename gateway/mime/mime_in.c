/* mime_in.c - an RFC 5322 / MIME message into a legacy message's content
 * (see mime_in.h): the entry point.
 *
 * Owns: GMime's parser (fallback charsets UTF-8 then windows-1252; its own
 * nesting limit keeps its recursion bounded) and what it warns of, the
 * notes and limits every inbound file reports through, and the finished
 * body (CRLF line ends, the damage lines at its end, into the codepage).
 * The header fields are read by mime_in_header.c, the parts walked by
 * mime_in_part.c to MIME_IN_MAX_DEPTH levels with bounded recursion of
 * its own; every charset is decoded by charset.c through iconv with explicit
 * names and a built-in windows-1252 table (so nothing depends on the locale
 * GMime saw at init), RFC 2047 words by rfc2047.c, one word at a time
 * (RFC 2047 6), never by GMime: GMime 3.2.13 (Debian 12) returns only the
 * first of several base64 words when an early one ends in '=' padding (GMime
 * issue #133, fixed in 3.2.14), and its parameter decoder reads raw 8-bit
 * values in the locale's charset.
 * Never: a header field, a part or a charset read here; the envelope; a
 * crash on bad input.
 */
#include "config.h"

#include <string.h>

#include <gmime/gmime.h>
#include <libxml/parser.h>

#include "pg_limits.h"
#include "mime/translit.h"
#include "mime/mime_int.h"
#include "pg_log.h"

G_DEFINE_QUARK(postgate-mime-in-error-quark, mime_in_error)

void
mime_in_stats_clear(MimeInStats *stats)
{
	if (!stats)
		return;
	if (stats->notes)
		g_ptr_array_unref(stats->notes);
	memset(stats, 0, sizeof *stats);
}

/* ---- notes -------------------------------------------------------------------- */

void
mi_note(MiCtx *c, const char *fmt, ...)
{
	va_list ap;
	char *text;

	va_start(ap, fmt);
	text = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	if (g_hash_table_contains(c->seen_notes, text)) {
		g_free(text);
		return;
	}
	if (c->stats->notes->len >= MIME_IN_MAX_NOTES) {
		c->notes_dropped++;
		g_free(text);
		return;
	}
	g_hash_table_add(c->seen_notes, g_strdup(text));
	g_ptr_array_add(c->stats->notes, text);
}

const char *
mi_label(const char *path)
{
	return *path ? path : "1";
}

gboolean
mi_limit(MiCtx *c, const char *fmt, ...)
{
	va_list ap;

	if (c->error)
		return FALSE;
	va_start(ap, fmt);
	c->error = g_error_new_valist(MIME_IN_ERROR, MIME_IN_ERROR_LIMIT, fmt, ap);
	va_end(ap);
	return FALSE;
}

/* ---- the message -------------------------------------------------------------- */

static void
parser_warning(gint64 offset, GMimeParserWarning code, const gchar *item, gpointer data)
{
	MiCtx *c = data;
	char *unmarked = c->field ? mi_unmark(c, item) : g_strdup(item ? item : "");
	char *it = pg_shown(unmarked, -1, MI_NOTE_QUOTE_MAX, FALSE);

	(void)offset;
	switch (code) {
	case GMIME_WARN_TRUNCATED_MESSAGE:
		mi_note(c, "the message is truncated: it ends inside a header section or "
		    "before a multipart's closing boundary");
		break;
	case GMIME_WARN_MALFORMED_MULTIPART:
		mi_note(c, "a multipart holds no parts (wrong boundary?)");
		break;
	case GMIME_CRIT_MULTIPART_WITHOUT_BOUNDARY:
		mi_note(c, "a multipart has no boundary; it is read as one part");
		break;
	case GMIME_CRIT_NESTING_OVERFLOW:
		mi_note(c, "MIME nesting deeper than the parser follows; the rest is read as "
		    "content");
		break;
	case GMIME_CRIT_INVALID_HEADER_NAME:
		mi_note(c, "a line of a header section is not a header field: \"%s\"", it);
		break;
	case GMIME_WARN_INVALID_CONTENT_TYPE:
		mi_note(c, "invalid Content-Type \"%s\", read as application/octet-stream", it);
		break;
	case GMIME_WARN_INVALID_RFC2047_HEADER_VALUE:
		mi_note(c, "a header field holds a bad RFC 2047 encoded word: \"%s\"", it);
		break;
	case GMIME_WARN_INVALID_ADDRESS_LIST:
		/* Only our own parse of a field (GMime's at construction is ignored). */
		if (c->field)
			mi_note(c, "%s: text that is not an address dropped from \"%s\"", c->field,
			    it);
		break;
	case GMIME_WARN_MALFORMED_MESSAGE:
	case GMIME_CRIT_PART_WITHOUT_HEADERS_OR_CONTENT:
		mi_note(c, "the MIME structure is malformed%s%s", *it ? ": " : "", it);
		break;
	default:
		break;
	}
	g_free(it);
	g_free(unmarked);
}

static gpointer
init_once(gpointer unused)
{
	(void)unused;
	g_mime_init();
	xmlInitParser();
	return NULL;
}

/* The first line end of the input: CRLF or LF, for parts written back. */
static gboolean
uses_crlf(const guint8 *data, gsize len)
{
	const guint8 *lf = memchr(data, '\n', len);

	return lf && lf > data && lf[-1] == '\r';
}

/* Body: CRLF line ends, no NUL or other control but tab and form feed; then
 * into the codepage. */
static void
finish_body(MiCtx *c)
{
	GString *s = g_string_sized_new(c->body->len + c->body->len / 16 + 2);
	const char *b = c->body->str;
	char *cp;
	gsize n = 0;

	for (gsize i = 0; i < c->body->len; i++) {
		guchar ch = (guchar)b[i];
		if (ch == '\r') {
			if (i + 1 < c->body->len && b[i + 1] == '\n')
				i++;
			g_string_append(s, "\r\n");
		} else if (ch == '\n') {
			g_string_append(s, "\r\n");
		} else if (ch >= 0x20 || ch == '\t' || ch == '\f') {
			g_string_append_c(s, (char)ch);
		}
	}
	if (s->len)
		g_string_append(s, "\r\n");
	cp = mi_to_cp(c, s->str, s->len, &n);
	c->msg->body = g_bytes_new_take(cp, n);
	g_string_free(s, TRUE);
}

LegacyMessage *
mime_in_translate(const guint8 *data, gsize len, const char *codepage,
    MimeInStats *stats, GError **error)
{
	static GOnce once = G_ONCE_INIT;
	static const char *fallback[] = { "UTF-8", "windows-1252", NULL };
	MimeInStats local = { 0 };
	GMimeStream *stream;
	GMimeParser *parser;
	GMimeMessage *m;
	GError *e = NULL;
	MiCtx c = { 0 };
	char *tmp;

	g_once(&once, init_once, NULL);
	if (!stats)
		stats = &local;
	mime_in_stats_clear(stats);
	stats->notes = g_ptr_array_new_with_free_func(g_free);
	tmp = translit_from_utf8(codepage, "", 0, NULL, NULL, NULL, &e);
	if (!tmp) {
		g_set_error(error, MIME_IN_ERROR, MIME_IN_ERROR_CODEPAGE, "%s",
		    e->message);
		g_error_free(e);
		mime_in_stats_clear(&local);
		return NULL;
	}
	g_free(tmp);
	if (len > SMTP_MAX_MESSAGE_SIZE) {
		g_set_error(error, MIME_IN_ERROR, MIME_IN_ERROR_LIMIT,
		    "the message is %zu bytes, over the limit of %u (SMTP_MAX_MESSAGE_SIZE)",
		    len, SMTP_MAX_MESSAGE_SIZE);
		mime_in_stats_clear(&local);
		return NULL;
	}

	c.codepage = codepage;
	c.stats = stats;
	c.msg = msg_new();
	c.msg->codepage = g_strdup(codepage);
	c.body = g_string_new(NULL);
	c.damage = g_string_new(NULL);
	c.names = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	c.seen_notes = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	c.options = g_mime_parser_options_new();
	g_mime_parser_options_set_fallback_charsets(c.options, fallback);
	g_mime_parser_options_set_warning_callback(c.options, parser_warning, &c);
	c.format = g_mime_format_options_clone(NULL);
	g_mime_format_options_set_newline_format(c.format, uses_crlf(data, len) ?
	    GMIME_NEWLINE_FORMAT_DOS : GMIME_NEWLINE_FORMAT_UNIX);

	stream = g_mime_stream_mem_new_with_buffer((const char *)data, len);
	parser = g_mime_parser_new_with_stream(stream);
	g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
	m = g_mime_parser_construct_message(parser, c.options);
	if (!m) {
		/* Not even a header section: the whole input is the text. */
		char *utf8 = mi_to_utf8(&c, "the message", NULL, (const char *)data, len);
		mi_note(&c, "no header section could be read; the whole input is the body");
		mi_add_text(&c, utf8);
		g_free(utf8);
	} else {
		if (mi_headers(&c, m))
			mi_walk(&c, g_mime_message_get_mime_part(m), "", 0, TRUE);
		g_object_unref(m);
	}
	g_object_unref(parser);
	g_object_unref(stream);

	if (c.damage->len) {
		g_string_append(c.body, c.body->len ? "\n\n" : "");
		g_string_append_len(c.body, c.damage->str, (gssize)c.damage->len);
	}
	if (!c.error)
		finish_body(&c);
	if (!c.error && c.msg->body && g_bytes_get_size(c.msg->body) > MSG_MAX_SIZE)
		mi_limit(&c, "the text is over the legacy limit of %u bytes", MSG_MAX_SIZE);
	if (c.notes_dropped)
		g_ptr_array_add(stats->notes, g_strdup_printf("%u more notes not shown",
		    c.notes_dropped));
	if (!c.msg->subject)
		c.msg->subject = g_strdup("");
	g_string_free(c.body, TRUE);
	g_string_free(c.damage, TRUE);
	g_hash_table_unref(c.names);
	g_hash_table_unref(c.seen_notes);
	g_mime_format_options_free(c.format);
	g_mime_parser_options_free(c.options);
	if (c.error) {
		g_propagate_error(error, c.error);
		msg_free(c.msg);
		mime_in_stats_clear(&local);
		return NULL;
	}
	mime_in_stats_clear(&local);
	return c.msg;
}
