/* smtp_client_7bit.c - one SMTP client session: the 7-bit form of a
 * message for a server without 8BITMIME (see smtp_client.h).
 *
 * Owns: every header field of the owner's 7-bit form (to_7bit) that still
 * holds 8-bit bytes written again through GMime's formatters, as RFC 2047
 * words in utf-8 (unstructured text, display names) or RFC 2231 parameters,
 * to SMTP_CLIENT_MIME_DEPTH levels; a form with an 8-bit byte left is
 * refused.
 * Never: the message body (the owner converts it), the connection, SMTP.
 */
#include "config.h"

#include <string.h>

#include <gmime/gmime.h>

#include "client/smtp_client.h"
#include "client/smtp_client_int.h"

static gboolean
has_8bit(const guint8 *p, gsize n)
{
	for (gsize i = 0; i < n; i++)
		if (p[i] >= 0x80)
			return TRUE;
	return FALSE;
}

/* The text of a raw header value holding 8-bit bytes, unfolded, as UTF-8
 * (bytes that are not UTF-8 read as windows-1252). */
static char *
header_utf8(const char *raw)
{
	GString *o = g_string_new(NULL);
	char *u;

	for (const char *p = raw; *p; p++)
		if (*p != '\r' && *p != '\n')
			g_string_append_c(o, *p);
	if (g_utf8_validate(o->str, (gssize)o->len, NULL))
		return g_string_free(o, FALSE);
	u = g_convert(o->str, (gssize)o->len, "UTF-8", "WINDOWS-1252", NULL, NULL, NULL);
	if (!u)
		u = g_utf8_make_valid(o->str, (gssize)o->len);
	g_string_free(o, TRUE);
	return u;
}

/* Header fields GMime's formatters read as structure (addresses, parameters,
 * ids): their text goes to the formatter as it is.  Any other field is
 * unstructured text (RFC 5322 3.2.5), whose encoded-words are decoded here
 * first, so that the formatter encodes the whole text once. */
static const char *const structured_fields[] = {
	"From", "To", "Cc", "Bcc", "Reply-To", "Sender", "Resent-From", "Resent-To",
	"Resent-Cc", "Resent-Bcc", "Resent-Sender", "Return-Path", "Disposition-Notification-To",
	"Content-Type", "Content-Disposition", "Content-Transfer-Encoding", "Content-ID",
	"MIME-Version", "Received", "Message-ID", "References", "In-Reply-To", "Date",
};

static gboolean
is_structured(const char *name)
{
	for (gsize i = 0; i < G_N_ELEMENTS(structured_fields); i++)
		if (g_ascii_strcasecmp(name, structured_fields[i]) == 0)
			return TRUE;
	return FALSE;
}

/* Unstructured text with its encoded-words decoded one at a time, the
 * blanks between two words dropped (RFC 2047 6.2): GMime 3.2.13 decodes a
 * run of base64 words wrongly when one ends in '=' (GMime issue #133), and
 * a word followed by new 8-bit text would lose the blank between them once
 * that text is encoded too. */
static char *
words_decoded(const char *text)
{
	GString *out = g_string_new(NULL);
	const char *p = text;
	gboolean prev_word = FALSE;

	while (*p) {
		const char *blank = p, *tok;
		gsize nb, nt;
		char *t, *dec = NULL;
		gboolean word;

		while (*p == ' ' || *p == '\t')
			p++;
		nb = (gsize)(p - blank);
		tok = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
		nt = (gsize)(p - tok);
		if (nt == 0) {
			g_string_append_len(out, blank, (gssize)nb);
			break;
		}
		t = g_strndup(tok, nt);
		word = nt >= 8 && g_str_has_prefix(t, "=?") && g_str_has_suffix(t, "?=");
		if (word) {
			dec = g_mime_utils_header_decode_text(NULL, t);
			word = dec && strcmp(dec, t) != 0;
		}
		if (!(word && prev_word))
			g_string_append_len(out, blank, (gssize)nb);
		g_string_append(out, word ? dec : t);
		prev_word = word;
		g_free(dec);
		g_free(t);
	}
	return g_string_free(out, FALSE);
}

/* Every header field of obj holding 8-bit bytes written again by GMime's
 * formatter for its kind, as RFC 2047 words in utf-8 (unstructured text,
 * display names) or RFC 2231 parameters; then obj's parts, to
 * SMTP_CLIENT_MIME_DEPTH levels (GMime's parser nests no deeper). */
static void
headers_7bit(GMimeObject *obj, int depth)
{
	GMimeHeaderList *hl = obj ? g_mime_object_get_header_list(obj) : NULL;
	int n = hl ? g_mime_header_list_get_count(hl) : 0;

	if (!obj || depth > SMTP_CLIENT_MIME_DEPTH)
		return;
	for (int i = 0; i < n; i++) {
		GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
		const char *raw = g_mime_header_get_raw_value(h);
		char *text;

		if (!raw || !has_8bit((const guint8 *)raw, strlen(raw)))
			continue;
		text = header_utf8(raw);
		if (!is_structured(g_mime_header_get_name(h))) {
			char *dec = words_decoded(text);

			g_free(text);
			text = dec;
		}
		g_mime_header_set_value(h, NULL, text, "utf-8");
		g_free(text);
	}
	if (GMIME_IS_MESSAGE(obj)) {
		headers_7bit(g_mime_message_get_mime_part(GMIME_MESSAGE(obj)), depth + 1);
	} else if (GMIME_IS_MULTIPART(obj)) {
		for (int i = 0; i < g_mime_multipart_get_count(GMIME_MULTIPART(obj)); i++)
			headers_7bit(g_mime_multipart_get_part(GMIME_MULTIPART(obj), i), depth + 1);
	} else if (GMIME_IS_MESSAGE_PART(obj)) {
		headers_7bit(GMIME_OBJECT(g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj))),
		    depth + 1);
	}
}

/* The 7-bit form a server without 8BITMIME gets of msg, which the owner's
 * to_7bit made (it converts the body): header fields that still hold 8-bit
 * bytes (a raw UTF-8 From: or Subject:) RFC 2047-encoded too; NULL and *why
 * when the message cannot be parsed or 8-bit bytes remain. */
GBytes *
smtpc_message_7bit(GBytes *msg, char **why)
{
	static gsize gmime_ready;
	gsize n;
	const guint8 *p = g_bytes_get_data(msg, &n);
	const guint8 *lf;
	GMimeStream *in, *out;
	GMimeParser *parser;
	GMimeMessage *m;
	GMimeFormatOptions *format;
	GByteArray *buf;
	GBytes *b;

	if (!has_8bit(p, n))
		return g_bytes_ref(msg);
	if (g_once_init_enter(&gmime_ready)) {
		g_mime_init();   /* counted: the owner may have done it already */
		g_once_init_leave(&gmime_ready, 1);
	}
	in = g_mime_stream_mem_new_with_buffer((const char *)p, n);
	parser = g_mime_parser_new_with_stream(in);
	m = g_mime_parser_construct_message(parser, NULL);
	g_object_unref(parser);
	g_object_unref(in);
	if (!m) {
		*why = g_strdup("its 7-bit form cannot be parsed as MIME");
		return NULL;
	}
	headers_7bit(GMIME_OBJECT(m), 0);
	format = g_mime_format_options_new();
	lf = memchr(p, '\n', n);
	g_mime_format_options_set_newline_format(format, lf && lf > p && lf[-1] == '\r' ?
	    GMIME_NEWLINE_FORMAT_DOS : GMIME_NEWLINE_FORMAT_UNIX);
	out = g_mime_stream_mem_new();
	g_mime_object_write_to_stream(GMIME_OBJECT(m), format, out);
	g_mime_format_options_free(format);
	g_object_unref(m);
	buf = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(out));
	if (has_8bit(buf->data, buf->len)) {
		*why = g_strdup("8-bit bytes remain in its 7-bit form");
		g_object_unref(out);
		return NULL;
	}
	b = g_bytes_new(buf->data, buf->len);
	g_object_unref(out);
	return b;
}
