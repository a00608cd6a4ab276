/* rfc2047.c - RFC 2047 encoded-words, read and written (private; see
 * mime_int.h).
 *
 * Owns: decoding the words of header text (MIME -> legacy), one word at a
 * time as RFC 2047 6 says: the B and Q encodings (4.1, 4.2), RFC 2231 5
 * languages, blanks between two words dropped (6.2), a run of words in one
 * charset joined before it is decoded, 8-bit bytes inside a Q word read as
 * bytes of its charset; and encoding (legacy -> MIME): B words in utf-8
 * holding whole characters and, where the text allows, a multiple of 3
 * bytes, so no word but the last ends in '=' padding (GMime 3.2.13 stops
 * reading there, GMime issue #133), folded at MI_FOLD_WIDTH.
 * Never: GMime's RFC 2047 decoders or encoders, a header field's structure
 * (the callers find the text), the charset of a word (charset.c decodes it).
 */
#include "config.h"

#include <string.h>

#include "mime/mime_int.h"
#include "pg_log.h"

/* Longest charset name (with an RFC 2231 language) an encoded-word may give. */
#define RFC2047_MAX_CHARSET 64

/* ---- RFC 2047 encoded-words read ------------------------------------------------- */

int
mi_b64_value(char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	return ch == '+' ? 62 : ch == '/' ? 63 : -1;
}

/* The B encoding (RFC 2047 4.1): base64 without blanks, '=' padding only at
 * the end (it may be missing); FALSE when the text is not that. */
static gboolean
decode_b(const char *s, gsize len, GByteArray *out)
{
	gsize pad = 0, n;
	guint32 acc = 0;
	int bits = 0;

	while (pad < len && pad < 2 && s[len - 1 - pad] == '=')
		pad++;
	n = len - pad;
	if ((pad && len % 4 != 0) || n % 4 == 1)
		return FALSE;
	for (gsize i = 0; i < n; i++) {
		int v = mi_b64_value(s[i]);
		if (v < 0)
			return FALSE;
		acc = (acc << 6) | (guint32)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			guint8 b = (guint8)(acc >> bits);
			g_byte_array_append(out, &b, 1);
		}
	}
	return TRUE;
}

/* The Q encoding (RFC 2047 4.2): '_' a space, =XX a byte; FALSE on a '='
 * without two hex digits after it. */
static gboolean
decode_q(const char *s, gsize len, GByteArray *out)
{
	for (gsize i = 0; i < len; i++) {
		guint8 b = (guint8)s[i];
		if (s[i] == '_') {
			b = ' ';
		} else if (s[i] == '=') {
			if (i + 2 >= len || !g_ascii_isxdigit(s[i + 1]) || !g_ascii_isxdigit(s[i + 2]))
				return FALSE;
			b = (guint8)(g_ascii_xdigit_value(s[i + 1]) * 16 + g_ascii_xdigit_value(s[i + 2]));
			i += 2;
		}
		g_byte_array_append(out, &b, 1);
	}
	return TRUE;
}

/* One encoded-word at the start of s (len bytes): "=?" charset ["*" language]
 * "?" B|Q "?" encoded-text "?=" (RFC 2047 2, RFC 2231 5), its charset (without
 * the language) into charset and its bytes appended to out; *used the bytes it
 * spans.  FALSE when s does not start a well-formed word. */
static gboolean
encoded_word(const char *s, gsize len, char charset[RFC2047_MAX_CHARSET + 1],
    GByteArray *out, gsize *used)
{
	gsize i = 2, cs_len, text, end;
	char enc;

	if (len < 8 || s[0] != '=' || s[1] != '?')
		return FALSE;
	while (i < len && s[i] != '?' && s[i] != '*') {
		guchar ch = (guchar)s[i];
		if (ch <= 0x20 || ch >= 0x7f || strchr("()<>@,;:\"/[]=\\", ch) ||
		    i - 2 >= RFC2047_MAX_CHARSET)
			return FALSE;
		i++;
	}
	cs_len = i - 2;
	if (cs_len == 0)
		return FALSE;
	if (i < len && s[i] == '*')
		while (i < len && s[i] != '?') {
			if (!g_ascii_isalnum(s[i]) && s[i] != '-' && s[i] != '*')
				return FALSE;
			i++;
		}
	if (i + 3 > len || s[i] != '?' || s[i + 2] != '?')
		return FALSE;
	enc = g_ascii_toupper(s[i + 1]);
	if (enc != 'B' && enc != 'Q')
		return FALSE;
	text = i + 3;
	for (end = text; end < len && s[end] != '?'; end++)
		if ((guchar)s[end] <= 0x20 || (guchar)s[end] >= 0x7f)
			return FALSE;
	if (end + 1 >= len || s[end + 1] != '=')
		return FALSE;
	if (!(enc == 'B' ? decode_b(s + text, end - text, out) :
	    decode_q(s + text, end - text, out)))
		return FALSE;
	memcpy(charset, s + 2, cs_len);
	charset[cs_len] = '\0';
	*used = end + 2;
	return TRUE;
}

/* raw (len bytes, not yet UTF-8) with every 8-bit byte inside the text of a
 * Q encoded-word written as =XX: such a byte (20 of 371 real messages hold
 * one) is a byte of the word's charset, not of the field's, and the word
 * is then decoded as any other.  NULL when there is none to rewrite. */
char *
mi_q_words_8bit_escaped(const char *raw, gsize len)
{
	GString *o = NULL;
	gsize done = 0;

	for (gsize i = 0; i + 1 < len; i++) {
		gsize j = i + 2, text, end;
		gboolean high = FALSE;

		if (raw[i] != '=' || raw[i + 1] != '?')
			continue;
		while (j < len && j - i - 2 <= RFC2047_MAX_CHARSET && raw[j] != '?' &&
		    (guchar)raw[j] > 0x20 && (guchar)raw[j] < 0x7f)
			j++;
		if (j == i + 2 || j + 2 >= len || raw[j] != '?' ||
		    g_ascii_toupper(raw[j + 1]) != 'Q' || raw[j + 2] != '?')
			continue;
		text = j + 3;
		for (end = text; end < len && raw[end] != '?'; end++) {
			if ((guchar)raw[end] <= 0x20 || raw[end] == 0x7f)
				break;
			high |= (guchar)raw[end] >= 0x80;
		}
		if (!high || end + 1 >= len || raw[end] != '?' || raw[end + 1] != '=')
			continue;
		if (!o)
			o = g_string_sized_new(len + 16);
		g_string_append_len(o, raw + done, (gssize)(text - done));
		for (gsize k = text; k < end; k++) {
			if ((guchar)raw[k] >= 0x80)
				g_string_append_printf(o, "=%02X", (guchar)raw[k]);
			else
				g_string_append_c(o, raw[k]);
		}
		done = end;
		i = end;
	}
	if (!o)
		return NULL;
	g_string_append_len(o, raw + done, (gssize)(len - done));
	return g_string_free(o, FALSE);
}

/* The decoded bytes of a run of adjacent words in one charset as UTF-8
 * (a character a broken mailer split between two words is whole again). */
static void
flush_words(MiCtx *c, const char *what, GString *out, char *charset, GByteArray *bytes)
{
	char *utf8;

	if (!*charset)
		return;
	for (guint i = 0; i < bytes->len; i++)
		if (bytes->data[i] == '\0')
			bytes->data[i] = ' ';   /* a C string holds no NUL */
	utf8 = mi_to_utf8(c, what, charset, (const char *)bytes->data, bytes->len);
	g_string_append(out, utf8);
	g_free(utf8);
	g_byte_array_set_size(bytes, 0);
	*charset = '\0';
}

gboolean
mi_is_lwsp(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* UTF-8 header text with its RFC 2047 encoded-words decoded (RFC 2047 6),
 * each word on its own: blanks between two words dropped (6.2), any charset
 * GMime or iconv knows (an unknown one read as windows-1252, noted), a word
 * that is not well formed kept as it is (noted).  Words are also found
 * inside other text, as mailers and GMime's loose mode do. */
char *
mi_rfc2047_decode(MiCtx *c, const char *what, const char *text)
{
	GString *out = g_string_new(NULL);
	GByteArray *run = g_byte_array_new(), *word = g_byte_array_new();
	char run_cs[RFC2047_MAX_CHARSET + 1] = "", cs[RFC2047_MAX_CHARSET + 1];
	gsize len = strlen(text), i = 0, blanks = 0, held = 0;
	gboolean after_word = FALSE;

	while (i < len) {
		gsize used = 0;

		if (text[i] == '=' && i + 1 < len && text[i + 1] == '?') {
			g_byte_array_set_size(word, 0);
			if (encoded_word(text + i, len - i, cs, word, &used)) {
				if (!after_word || g_ascii_strcasecmp(cs, run_cs) != 0)
					flush_words(c, what, out, run_cs, run);
				g_strlcpy(run_cs, cs, sizeof run_cs);
				g_byte_array_append(run, word->data, word->len);
				after_word = TRUE;
				held = 0;
				i += used;
				continue;
			} else {
				gsize n = 0;
				char *w, *sw;
				while (i + n < len && !mi_is_lwsp(text[i + n]))
					n++;
				w = g_strndup(text + i, n);
				sw = pg_shown(w, -1, MI_NOTE_QUOTE_MAX, FALSE);
				mi_note(c,
				    "%s: a malformed RFC 2047 encoded-word kept as it is: \"%s\"",
				    what, sw);
				g_free(sw);
				g_free(w);
			}
		}
		if (after_word && mi_is_lwsp(text[i])) {
			if (held == 0)
				blanks = i;
			held++;
			i++;
			continue;
		}
		flush_words(c, what, out, run_cs, run);
		if (held)
			g_string_append_len(out, text + blanks, (gssize)held);
		held = 0;
		after_word = FALSE;
		g_string_append_c(out, text[i]);
		i++;
	}
	flush_words(c, what, out, run_cs, run);
	if (held)
		g_string_append_len(out, text + blanks, (gssize)held);
	g_byte_array_unref(run);
	g_byte_array_unref(word);
	return g_string_free(out, FALSE);
}

/* ---- RFC 2047 encoded-words written ---------------------------------------------- */

/* An encoded-word: "=?utf-8?b?" + base64 + "?=", 75 characters at most
 * (RFC 2047 2), so at most 45 bytes of UTF-8 in one. */
#define WORD_OVERHEAD 12
#define WORD_PAYLOAD_MAX 45

/* Whether text must travel as encoded-words: 8-bit, or holding "=?" that a
 * reader would take for the start of one (RFC 2047 5 lets a word stand only
 * where such text would otherwise be read as it is). */
gboolean
mi_rfc2047_needed(const char *utf8)
{
	for (const char *p = utf8; *p; p++)
		if ((guchar)*p >= 0x80 || (guchar)*p < 0x20 || *p == 0x7f ||
		    (p[0] == '=' && p[1] == '?'))
			return TRUE;
	return FALSE;
}

/* The bytes of the longest start of utf8 (len bytes) that is whole UTF-8
 * characters, at most max bytes, and a multiple of 3 bytes unless it is the
 * whole rest (so its base64 has no '=' padding); without such a start, the
 * longest whole-character one; never 0 while something is left. */
static gsize
word_cut(const char *utf8, gsize len, gsize max)
{
	gsize best = 0, any = 0;

	if (len <= max)
		return len;
	for (gsize n = 1; n <= max; n++) {
		if (((guchar)utf8[n] & 0xc0) == 0x80)
			continue;               /* inside a character */
		any = n;
		if (n % 3 == 0)
			best = n;
	}
	if (best)
		return best;
	if (any)
		return any;
	/* a character longer than max: cannot happen with max >= 4 */
	return MIN(len, 4);
}

/* utf8 as RFC 2047 B encoded-words in charset utf-8 appended to out, whose
 * line is *col characters long: every word holds whole characters (RFC 2047
 * 5), and every word but the last a multiple of 3 bytes where the text
 * allows, so that none but the last ends in '=' padding: GMime before
 * 3.2.14 (Debian 12) stops reading a run of words at the first padding
 * (GMime issue #133).  A word that does not fit on the line goes onto the
 * next; the blank before each word is written here. */
void
mi_rfc2047_append(GString *out, const char *utf8, gsize *col)
{
	gsize len = strlen(utf8), i = 0;

	while (i < len) {
		gsize room = *col + 1 + WORD_OVERHEAD + 8 <= MI_FOLD_WIDTH ?
		    (MI_FOLD_WIDTH - *col - 1 - WORD_OVERHEAD) / 4 * 3 : 0;
		gsize n;
		char *b64;

		if (room < 6) {
			g_string_append(out, "\r\n");
			*col = 0;
			continue;
		}
		n = word_cut(utf8 + i, len - i, MIN(room, WORD_PAYLOAD_MAX));
		b64 = g_base64_encode((const guchar *)utf8 + i, n);
		g_string_append_printf(out, " =?%s?b?%s?=", MI_TEXT_CHARSET, b64);
		*col += 1 + WORD_OVERHEAD + strlen(b64);
		g_free(b64);
		i += n;
	}
}

