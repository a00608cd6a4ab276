/* mime_in.c - an RFC 5322 / MIME message into a legacy message's content
 * (see mime_in.h).
 *
 * GMime parses (fallback charsets UTF-8 then windows-1252; its own nesting
 * limit keeps its recursion bounded); this module walks the tree to
 * MIME_LEGACY_MAX_DEPTH levels with bounded recursion of its own, decodes
 * every charset itself through iconv with explicit names and a built-in
 * windows-1252 table (so nothing depends on the locale GMime saw at init),
 * and turns text into the codepage with translit.h.  Header fields are read
 * raw: 8-bit bytes become UTF-8 here, then RFC 2047 words are decoded here
 * too, one word at a time (RFC 2047 6), never by GMime: GMime 3.2.13 (Debian
 * 12) returns only the first of several base64 words when an early one ends
 * in '=' padding (GMime issue #133, fixed in 3.2.14), and its parameter
 * decoder reads raw 8-bit values in the locale's charset.  So GMime parses
 * address lists with every "=?" in them replaced by a character the field
 * does not hold (it then decodes nothing), and file names written as RFC 2047
 * words in a quoted parameter (as Outlook and Thunderbird do) are read from
 * the raw field, and so are RFC 2231 continuations (in the order of their
 * numbers, up to a gap).  Base64 is decoded here too, leniently: what could
 * not be decoded is said at the end of the legacy text, naming the part.
 * HTML becomes text by walking libxml2's HTML tree without recursion.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <gmime/gmime.h>
#include <libxml/HTMLparser.h>
#include <libxml/tree.h>

#include "address.h"
#include "codepage.h"
#include "pg_limits.h"
#include "mime/translit.h"
#include "mime/mime_in.h"

G_DEFINE_QUARK(postgate-mime-legacy-error-quark, mime_legacy_error)

/* Characters of untrusted text quoted in a note. */
#define NOTE_QUOTE_MAX 64
/* Output space iconv gets per round. */
#define ICONV_CHUNK 4096
/* Longest charset name (with an RFC 2231 language) an encoded-word may give. */
#define RFC2047_MAX_CHARSET 64
/* RFC 2231 continuations read per parameter (numbers 0 to this - 1). */
#define RFC2231_MAX_SEGMENTS 256

typedef struct {
	const char *codepage;
	LegacyMessage *msg;
	MimeLegacyStats *stats;
	GMimeParserOptions *options;
	GMimeFormatOptions *format;     /* for parts kept as their bytes */
	GString *body;                  /* UTF-8 */
	GString *damage;                /* UTF-8 lines for the end of the text: what
	                                 * could not be decoded */
	GHashTable *names;              /* lower-case attachment names in use */
	GHashTable *seen_notes;
	guint notes_dropped;
	guint64 size;                   /* bytes of content so far */
	GError *error;                  /* the first limit hit: the walk stops */
	const char *field;              /* the address field being parsed, for notes */
	const char *list_field;         /* the address field GMime parsed last */
	char marker[8];                 /* UTF-8 standing for "=?" in it; "" for none */
} Ctx;

void
mime_legacy_stats_clear(MimeLegacyStats *stats)
{
	if (!stats)
		return;
	if (stats->notes)
		g_ptr_array_unref(stats->notes);
	memset(stats, 0, sizeof *stats);
}

/* ---- notes -------------------------------------------------------------------- */

/* Untrusted text as printable ASCII for a note. */
static char *
shown(const char *s)
{
	GString *o = g_string_new(NULL);
	gsize n = 0;

	for (; s && *s && n < NOTE_QUOTE_MAX; s++, n++) {
		guchar ch = (guchar)*s;
		if (ch >= 0x20 && ch < 0x7f && ch != '\\')
			g_string_append_c(o, (char)ch);
		else
			g_string_append_printf(o, "\\x%02x", ch);
	}
	if (s && *s)
		g_string_append(o, "...");
	return g_string_free(o, FALSE);
}

static void note(Ctx *c, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void
note(Ctx *c, const char *fmt, ...)
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
	if (c->stats->notes->len >= MIME_LEGACY_MAX_NOTES) {
		c->notes_dropped++;
		g_free(text);
		return;
	}
	g_hash_table_add(c->seen_notes, g_strdup(text));
	g_ptr_array_add(c->stats->notes, text);
}

static const char *
label(const char *path)
{
	return *path ? path : "1";
}

static gboolean
limit(Ctx *c, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static gboolean
limit(Ctx *c, const char *fmt, ...)
{
	va_list ap;

	if (c->error)
		return FALSE;
	va_start(ap, fmt);
	c->error = g_error_new_valist(MIME_LEGACY_ERROR, MIME_LEGACY_ERROR_LIMIT, fmt, ap);
	va_end(ap);
	return FALSE;
}

/* Account for n more bytes of content; FALSE (and the error) over MSG_MAX_SIZE. */
static gboolean
add_size(Ctx *c, guint64 n)
{
	c->size += n;
	if (c->size > MSG_MAX_SIZE)
		return limit(c, "the message's text and attachments come to more than %u bytes "
		    "once decoded, over the legacy message limit (MSG_MAX_SIZE); it cannot be "
		    "delivered to a postoffice", MSG_MAX_SIZE);
	return TRUE;
}

/* ---- charsets ------------------------------------------------------------------ */

/* windows-1252 0x80..0x9F; the five bytes it leaves undefined are read as the
 * C1 controls of the same value (as the WHATWG encoding standard does). */
static const guint16 cp1252_high[32] = {
	0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
	0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D, 0x017D, 0x008F,
	0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
	0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
};

static void
append_cp1252(GString *out, guchar b)
{
	gunichar ch = b < 0x80 ? b : b < 0xA0 ? cp1252_high[b - 0x80] : b;

	g_string_append_unichar(out, ch);
}

static char *
from_cp1252(const char *s, gsize len)
{
	GString *o = g_string_sized_new(len + len / 4 + 1);

	for (gsize i = 0; i < len; i++)
		append_cp1252(o, (guchar)s[i]);
	return g_string_free(o, FALSE);
}

static gboolean
all_ascii(const char *s, gsize len)
{
	for (gsize i = 0; i < len; i++)
		if ((guchar)s[i] >= 0x80)
			return FALSE;
	return TRUE;
}

/* UTF-8 with every invalid byte read as windows-1252; *bad counts them. */
static char *
utf8_lenient(const char *s, gsize len, gsize *bad)
{
	GString *o = g_string_sized_new(len + 1);
	gsize i = 0;

	*bad = 0;
	while (i < len) {
		const char *end;
		gsize start = i;

		g_utf8_validate(s + i, (gssize)(len - i), &end);
		i = (gsize)(end - s);
		g_string_append_len(o, s + start, (gssize)(i - start));
		if (i >= len)
			break;
		if (s[i] == '\0') {
			g_string_append_c(o, '\0');
		} else {
			append_cp1252(o, (guchar)s[i]);
			(*bad)++;
		}
		i++;
	}
	return g_string_free(o, FALSE);
}

static gboolean
is_utf8_name(const char *cs)
{
	return g_ascii_strcasecmp(cs, "utf-8") == 0 || g_ascii_strcasecmp(cs, "utf8") == 0;
}

static gboolean
is_ascii_name(const char *cs)
{
	return g_ascii_strcasecmp(cs, "us-ascii") == 0 || g_ascii_strcasecmp(cs, "ascii") == 0 ||
	    g_ascii_strcasecmp(cs, "ansi_x3.4-1968") == 0;
}

/* Through iconv from charset; a byte it refuses is read as windows-1252.
 * NULL when iconv does not know the charset. */
static char *
via_iconv(const char *charset, const char *s, gsize len, gsize *bad)
{
	GIConv cd = g_iconv_open("UTF-8", charset);
	GString *o;
	gchar *in = (gchar *)s;
	gsize inleft = len;
	char buf[ICONV_CHUNK];

	*bad = 0;
	if (cd == (GIConv)-1)
		return NULL;
	o = g_string_sized_new(len + 1);
	for (;;) {
		gchar *outp = buf;
		gsize outleft = sizeof buf;
		gsize r = g_iconv(cd, inleft ? &in : NULL, inleft ? &inleft : NULL, &outp,
		    &outleft);
		int e = errno;

		g_string_append_len(o, buf, (gssize)(sizeof buf - outleft));
		if (r != (gsize)-1) {
			if (inleft == 0)
				break;
			continue;
		}
		if (e == E2BIG)
			continue;
		if (inleft == 0)
			break;
		/* EILSEQ or EINVAL: one byte as windows-1252, then go on afresh. */
		append_cp1252(o, (guchar)*in);
		in++;
		inleft--;
		(*bad)++;
		g_iconv(cd, NULL, NULL, NULL, NULL);
	}
	g_iconv_close(cd);
	return g_string_free(o, FALSE);
}

/* Text of a part (or header) in charset (may be NULL) as UTF-8; what goes
 * wrong is noted under what. */
static char *
to_utf8(Ctx *c, const char *what, const char *charset, const char *s, gsize len)
{
	gsize bad = 0;
	char *out, *cs;

	if (all_ascii(s, len) && (!charset || !*charset || is_ascii_name(charset) ||
	    is_utf8_name(charset) || g_ascii_strncasecmp(charset, "iso-8859-", 9) == 0 ||
	    g_ascii_strncasecmp(charset, "windows-", 8) == 0))
		return len ? g_strndup(s, len) : g_strdup("");
	if (!charset || !*charset || is_ascii_name(charset)) {
		out = utf8_lenient(s, len, &bad);
		if (bad == 0)
			note(c, "%s: 8-bit text without a charset, read as UTF-8", what);
		else {
			g_free(out);
			out = from_cp1252(s, len);
			note(c, "%s: 8-bit text without a charset, read as windows-1252", what);
		}
		return out;
	}
	if (is_utf8_name(charset)) {
		out = utf8_lenient(s, len, &bad);
		if (bad)
			note(c, "%s: %zu bytes that are not UTF-8, read as windows-1252", what, bad);
		return out;
	}
	out = via_iconv(g_mime_charset_iconv_name(charset), s, len, &bad);
	cs = shown(charset);
	if (!out) {
		out = utf8_lenient(s, len, &bad);
		if (bad == 0 && !all_ascii(s, len)) {
			note(c, "%s: unknown charset %s, read as UTF-8", what, cs);
		} else if (bad) {
			g_free(out);
			out = from_cp1252(s, len);
			note(c, "%s: unknown charset %s, decoded as windows-1252", what, cs);
		}
	} else if (bad) {
		note(c, "%s: %zu bytes invalid in charset %s, read as windows-1252", what, bad, cs);
	}
	g_free(cs);
	return out;
}

/* ---- RFC 2047 encoded-words ------------------------------------------------------ */

static int
b64_value(char ch)
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
		int v = b64_value(s[i]);
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
static char *
q_words_8bit_escaped(const char *raw, gsize len)
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
flush_words(Ctx *c, const char *what, GString *out, char *charset, GByteArray *bytes)
{
	char *utf8;

	if (!*charset)
		return;
	for (guint i = 0; i < bytes->len; i++)
		if (bytes->data[i] == '\0')
			bytes->data[i] = ' ';   /* a C string holds no NUL */
	utf8 = to_utf8(c, what, charset, (const char *)bytes->data, bytes->len);
	g_string_append(out, utf8);
	g_free(utf8);
	g_byte_array_set_size(bytes, 0);
	*charset = '\0';
}

static gboolean
is_lwsp(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* UTF-8 header text with its RFC 2047 encoded-words decoded (RFC 2047 6),
 * each word on its own: blanks between two words dropped (6.2), any charset
 * GMime or iconv knows (an unknown one read as windows-1252, noted), a word
 * that is not well formed kept as it is (noted).  Words are also found
 * inside other text, as mailers and GMime's loose mode do. */
static char *
rfc2047_decode(Ctx *c, const char *what, const char *text)
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
				while (i + n < len && !is_lwsp(text[i + n]))
					n++;
				w = g_strndup(text + i, n);
				sw = shown(w);
				note(c, "%s: a malformed RFC 2047 encoded-word kept as it is: \"%s\"",
				    what, sw);
				g_free(sw);
				g_free(w);
			}
		}
		if (after_word && is_lwsp(text[i])) {
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

/* A private-use character the UTF-8 text does not hold, as UTF-8 into buf
 * ("" when it holds them all, which a field within MIME_LEGACY_MAX_HEADER_LEN
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
static char *
unmark(Ctx *c, const char *s)
{
	return c->marker[0] ? replace_all(s ? s : "", c->marker, "=?") : g_strdup(s ? s : "");
}

/* ---- text into the codepage --------------------------------------------------- */

static char *
to_cp(Ctx *c, const char *utf8, gsize len, gsize *out_len)
{
	guint tr = 0, lost = 0;
	char *out = translit_from_utf8(c->codepage, utf8, len, out_len, &tr, &lost, NULL);

	c->stats->transliterated += tr;
	c->stats->lost += lost;
	return out;   /* the codepage was checked before the walk */
}

/* A one-line text (subject, display name) in the codepage: controls and runs
 * of blanks become one space, no blanks at either end, at most max bytes. */
static char *
line_to_cp(Ctx *c, const char *utf8, gsize max)
{
	GString *s = g_string_new(NULL);
	gboolean blank = FALSE;
	char *out;
	gsize n = 0;

	for (const char *p = utf8; *p; p = g_utf8_next_char(p)) {
		gunichar ch = g_utf8_get_char(p);
		if (ch < 0x20 || ch == 0x7f || (ch >= 0x80 && ch < 0xa0) || ch == ' ') {
			blank = TRUE;
			continue;
		}
		if (blank && s->len)
			g_string_append_c(s, ' ');
		blank = FALSE;
		g_string_append_unichar(s, ch);
		if (s->len > 4 * max + 16)
			break;   /* enough for max bytes after conversion */
	}
	out = to_cp(c, s->str, s->len, &n);
	g_string_free(s, TRUE);
	/* A codepage may put graphic characters on control bytes (CP437 0x01). */
	for (gsize i = 0; i < n; i++)
		if ((guchar)out[i] < 0x20 || out[i] == 0x7f)
			out[i] = ' ';
	if (n > max) {
		n = max;
		out[n] = '\0';
	}
	while (n > 0 && out[n - 1] == ' ')
		out[--n] = '\0';
	return out;
}

/* ---- header fields -------------------------------------------------------------- */

static GMimeHeader *
find_header(GMimeObject *obj, const char *name)
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
 * decoded; NULL when absent or over MIME_LEGACY_MAX_HEADER_LEN (noted). */
static char *
header_raw_utf8(Ctx *c, GMimeHeader *h)
{
	const char *raw = h ? g_mime_header_get_raw_value(h) : NULL;
	const char *name;
	char *what, *out, *shown_name, *escaped;
	gsize len;

	if (!raw)
		return NULL;
	name = g_mime_header_get_name(h);
	len = strlen(raw);
	if (len > MIME_LEGACY_MAX_HEADER_LEN) {
		char *n = shown(name);
		note(c, "header field %s is %zu bytes long, over %u: ignored", n, len,
		    MIME_LEGACY_MAX_HEADER_LEN);
		g_free(n);
		return NULL;
	}
	shown_name = shown(name);
	what = g_strdup_printf("header field %s", shown_name);
	escaped = q_words_8bit_escaped(raw, len);
	out = escaped ? to_utf8(c, what, NULL, escaped, strlen(escaped)) :
	    to_utf8(c, what, NULL, raw, len);
	g_free(escaped);
	g_free(what);
	g_free(shown_name);
	for (char *p = out; *p; p++)
		if (*p == '\r' || *p == '\n')
			*p = ' ';
	return out;
}

/* The decoded (RFC 2047) text of a header field, or NULL. */
static char *
header_text(Ctx *c, GMimeHeader *h)
{
	char *raw = header_raw_utf8(c, h);
	char *dec, *valid, *what, *name;

	if (!raw)
		return NULL;
	name = shown(g_mime_header_get_name(h));
	what = g_strdup_printf("header field %s", name);
	dec = rfc2047_decode(c, what, raw);
	g_free(raw);
	g_free(what);
	g_free(name);
	valid = g_utf8_make_valid(dec, -1);
	g_free(dec);
	return valid;
}

static MsgPriority
priority_of(Ctx *c, GMimeObject *top)
{
	static const char *const fields[] = { "X-Priority", "Importance", "Priority",
	    "X-MSMail-Priority" };

	for (gsize i = 0; i < G_N_ELEMENTS(fields); i++) {
		char *v = header_text(c, find_header(top, fields[i]));
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
mailbox_addr(Ctx *c, InternetAddressMailbox *mb)
{
	char *a = unmark(c, internet_address_mailbox_get_idn_addr(mb));
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
parse_addresses(Ctx *c, GMimeObject *top, const char *field)
{
	char *raw = header_raw_utf8(c, find_header(top, field));
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
display_name(Ctx *c, InternetAddress *a)
{
	char *name = unmark(c, internet_address_get_name(a));
	char *what = g_strdup_printf("header field %s", c->list_field);
	char *dec = rfc2047_decode(c, what, name);
	char *valid = g_utf8_make_valid(dec, -1);
	char *out = line_to_cp(c, valid, MSG_MAX_NAME_LEN);

	g_free(valid);
	g_free(dec);
	g_free(what);
	g_free(name);
	return out;
}

static void
from_party(Ctx *c, GMimeObject *top)
{
	GMimeHeader *h = find_header(top, "From");
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
			note(c, "From names %u mailboxes; the first is shown", boxes->len);
	} else {
		char *text = header_text(c, h);
		c->msg->from.addr = g_strdup("");
		c->msg->from.name = line_to_cp(c, text ? text : "", MSG_MAX_NAME_LEN);
		note(c, "From has no usable address; its text is kept as the name");
		g_free(text);
	}
	g_ptr_array_unref(boxes);
	if (list)
		g_object_unref(list);
}

static void
display_list(Ctx *c, GMimeObject *top, const char *field, GPtrArray *dest)
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
			char *raw = unmark(c, internet_address_mailbox_get_addr(boxes->pdata[i]));
			char *a = shown(raw);
			if (dropped++ == 0)
				note(c, "%s: address %s cannot be written SMTP:local@domain, dropped",
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
		note(c, "%s: %u addresses dropped in all", field, dropped);
	if (over)
		note(c, "%s: %u more addresses not shown (at most %u To and Cc entries)", field,
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
			for (gsize i = 0; i < n && s->len < MIME_LEGACY_MAX_HOP_NAME; i++)
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
hops(Ctx *c, GMimeObject *top)
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
		limit(c, "the message has crossed %u hosts (Received: fields), over the legacy "
		    "limit of %u hops (MSG_MAX_HOPS): most likely a mail loop", fields->len,
		    MSG_MAX_HOPS);
		g_ptr_array_unref(fields);
		return FALSE;
	}
	/* Received: fields are added on top: the last one is the oldest. */
	for (guint i = fields->len; i-- > 0;) {
		const char *raw = g_mime_header_get_raw_value(fields->pdata[i]);
		char *v = raw && strlen(raw) <= MIME_LEGACY_MAX_HEADER_LEN ? g_strdup(raw) :
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

/* ---- HTML to text ----------------------------------------------------------------- */

typedef struct {
	GString *out;
	int pending;        /* line breaks wanted before the next text (2: a blank line) */
	gboolean space;     /* a blank seen since the last text */
	int pre;            /* inside <pre> */
} Html;

static void
h_flush(Html *h)
{
	if (h->pending && h->out->len) {
		int have = 0;
		while (h->out->len && h->out->str[h->out->len - 1] == ' ')
			g_string_truncate(h->out, h->out->len - 1);
		for (gsize i = h->out->len; i > 0 && h->out->str[i - 1] == '\n'; i--)
			have++;
		for (int k = have; k < MIN(h->pending, 2); k++)
			g_string_append_c(h->out, '\n');
	} else if (h->space && h->out->len && h->out->str[h->out->len - 1] != '\n' &&
	    h->out->str[h->out->len - 1] != ' ') {
		g_string_append_c(h->out, ' ');
	}
	h->pending = 0;
	h->space = FALSE;
}

static void
h_text(Html *h, const char *s)
{
	for (; *s; s++) {
		if (h->pre && *s == '\n') {
			h->pending++;
			continue;
		}
		if (!h->pre && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' ||
		    *s == '\f')) {
			h->space = TRUE;
			continue;
		}
		if (h->pending || h->space)
			h_flush(h);
		g_string_append_c(h->out, *s);
	}
}

/* Literal text, blanks kept (a list bullet). */
static void
h_raw(Html *h, const char *s)
{
	h_flush(h);
	g_string_append(h->out, s);
}

static void
h_break(Html *h, int n)
{
	h->pending = MAX(h->pending, n);
}

static gboolean
name_in(const xmlChar *name, const char *const *list)
{
	for (; *list; list++)
		if (g_ascii_strcasecmp((const char *)name, *list) == 0)
			return TRUE;
	return FALSE;
}

static const char *const html_skip[] = { "script", "style", "head", "title", "noscript",
	"template", "object", "iframe", NULL };
static const char *const html_para[] = { "p", "h1", "h2", "h3", "h4", "h5", "h6", "ul",
	"ol", "table", "blockquote", "pre", "dl", "hr", "form", "address", "figure", NULL };
static const char *const html_line[] = { "div", "tr", "li", "dt", "dd", "section",
	"article", "header", "footer", "nav", "main", "center", "caption", "aside", NULL };

/* Enter an element; FALSE when its content is not shown. */
static gboolean
h_enter(Html *h, xmlNodePtr n)
{
	if (name_in(n->name, html_skip))
		return FALSE;
	if (xmlStrcasecmp(n->name, BAD_CAST "br") == 0) {
		h->pending++;
		h->space = FALSE;
		return TRUE;
	}
	if (name_in(n->name, html_para))
		h_break(h, 2);
	else if (name_in(n->name, html_line))
		h_break(h, 1);
	if (xmlStrcasecmp(n->name, BAD_CAST "pre") == 0)
		h->pre++;
	if (xmlStrcasecmp(n->name, BAD_CAST "li") == 0)
		h_raw(h, "- ");
	if ((xmlStrcasecmp(n->name, BAD_CAST "td") == 0 ||
	    xmlStrcasecmp(n->name, BAD_CAST "th") == 0) && n->prev)
		h->space = TRUE;
	if (xmlStrcasecmp(n->name, BAD_CAST "img") == 0) {
		xmlChar *alt = xmlGetProp(n, BAD_CAST "alt");
		if (alt && *alt) {
			h->space = TRUE;
			h_text(h, "[");
			h_text(h, (const char *)alt);
			h_text(h, "]");
		}
		xmlFree(alt);
	}
	if (xmlStrcasecmp(n->name, BAD_CAST "a") == 0) {
		h_flush(h);
		n->_private = GSIZE_TO_POINTER(h->out->len + 1);
	}
	return TRUE;
}

static void
h_leave(Html *h, xmlNodePtr n)
{
	if (name_in(n->name, html_skip))
		return;
	if (xmlStrcasecmp(n->name, BAD_CAST "pre") == 0 && h->pre > 0)
		h->pre--;
	if (name_in(n->name, html_para))
		h_break(h, 2);
	else if (name_in(n->name, html_line))
		h_break(h, 1);
	if (xmlStrcasecmp(n->name, BAD_CAST "a") == 0 && n->_private) {
		gsize start = GPOINTER_TO_SIZE(n->_private) - 1;
		xmlChar *href = xmlGetProp(n, BAD_CAST "href");
		const char *url = (const char *)href;

		n->_private = NULL;
		if (url) {
			const char *bare = g_ascii_strncasecmp(url, "mailto:", 7) == 0 ? url + 7 : url;
			char *text = g_strstrip(g_strdup(start <= h->out->len ?
			    h->out->str + start : ""));
			if (*url && *url != '#' && g_ascii_strncasecmp(url, "javascript:", 11) != 0 &&
			    strcmp(text, url) != 0 && strcmp(text, bare) != 0 &&
			    !strchr(url, '\n') && !strchr(url, '\r')) {
				h->space = *text != '\0';
				h_text(h, "<");
				h_text(h, url);
				h_text(h, ">");
			}
			g_free(text);
		}
		xmlFree(href);
	}
}

/* Readable text of an HTML document in UTF-8, without recursion. */
static char *
html_to_text(const char *html, gsize len)
{
	Html h = { g_string_new(NULL), 0, FALSE, 0 };
	htmlDocPtr doc;
	xmlNodePtr cur;

	if (len > G_MAXINT)
		len = G_MAXINT;
	doc = htmlReadMemory(html, (int)len, NULL, "UTF-8", HTML_PARSE_NONET |
	    HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_RECOVER |
	    HTML_PARSE_IGNORE_ENC | HTML_PARSE_NOBLANKS);
	cur = doc ? doc->children : NULL;
	while (cur) {
		gboolean descend = FALSE;

		if (cur->type == XML_ELEMENT_NODE)
			descend = h_enter(&h, cur);
		else if (cur->type == XML_TEXT_NODE || cur->type == XML_CDATA_SECTION_NODE)
			h_text(&h, cur->content ? (const char *)cur->content : "");
		if (descend && cur->children) {
			cur = cur->children;
			continue;
		}
		/* Leave this node, and every parent whose last child it was. */
		for (;;) {
			if (cur->type == XML_ELEMENT_NODE && (descend || !cur->children))
				h_leave(&h, cur);
			descend = TRUE;   /* parents were all entered and descended */
			if (cur->next) {
				cur = cur->next;
				break;
			}
			cur = cur->parent;
			if (!cur || cur == (xmlNodePtr)doc) {
				cur = NULL;
				break;
			}
		}
	}
	if (doc)
		xmlFreeDoc(doc);
	while (h.out->len && (h.out->str[h.out->len - 1] == ' ' ||
	    h.out->str[h.out->len - 1] == '\n'))
		g_string_truncate(h.out, h.out->len - 1);
	return g_string_free(h.out, FALSE);
}

/* ---- parts ----------------------------------------------------------------------- */

/* Take the bytes of a memory stream (the stream must be unreffed after). */
static GByteArray *
stream_bytes(GMimeStream *s)
{
	g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(s), FALSE);
	return g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(s));
}

/* The decoded content of a leaf part. */
static GByteArray *
part_bytes(GMimePart *part)
{
	GMimeDataWrapper *w = g_mime_part_get_content(part);
	GMimeStream *mem = g_mime_stream_mem_new();
	GByteArray *ba;

	if (w)
		g_mime_data_wrapper_write_to_stream(w, mem);
	ba = stream_bytes(mem);
	g_object_unref(mem);
	return ba;
}

/* What a damaged base64 part lost, for the log and for the legacy text. */
typedef struct {
	gsize skipped;          /* characters outside the alphabet */
	gsize mid_padding;      /* '=' padding with more base64 after it */
	gboolean cut;           /* a last group of one character: 6 bits */
} B64Damage;

/* Base64 as lenient as it can be (RFC 2045 6.8): characters outside the
 * alphabet are skipped and counted, '=' padding ends a group and decoding
 * goes on after it (encodings run together), a cut last group gives the
 * whole bytes it holds. */
static GByteArray *
base64_lenient(const guint8 *s, gsize len, B64Damage *d)
{
	GByteArray *out = g_byte_array_sized_new((guint)(len / 4 * 3 + 3));
	guint32 acc = 0;
	int n = 0;                      /* characters in the current group */
	gboolean padded = FALSE;        /* '=' seen since the last character */

	memset(d, 0, sizeof *d);
	for (gsize i = 0; i < len; i++) {
		int v = b64_value((char)s[i]);
		if (v >= 0) {
			if (padded)
				d->mid_padding++;
			padded = FALSE;
			acc = (acc << 6) | (guint32)v;
			if (++n == 4) {
				guint8 b[3] = { (guint8)(acc >> 16), (guint8)(acc >> 8), (guint8)acc };
				g_byte_array_append(out, b, 3);
				acc = 0;
				n = 0;
			}
		} else if (s[i] == '=') {
			if (n >= 2) {
				guint8 b[2] = { (guint8)(acc >> (n == 2 ? 4 : 10)),
				    (guint8)(acc >> 2) };
				g_byte_array_append(out, b, (guint)(n - 1));
			} else if (n == 1)
				d->cut = TRUE;
			acc = 0;
			n = 0;
			padded = TRUE;
		} else if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') {
			d->skipped++;
		}
	}
	if (n >= 2) {
		guint8 b[2] = { (guint8)(acc >> (n == 2 ? 4 : 10)), (guint8)(acc >> 2) };
		g_byte_array_append(out, b, (guint)(n - 1));
	} else if (n == 1)
		d->cut = TRUE;
	return out;
}

/* The content of a base64 leaf part, decoded leniently, what went wrong
 * noted; NULL when the part is not base64. */
static GByteArray *
base64_part(Ctx *c, GMimePart *part, const char *path, B64Damage *d)
{
	GMimeDataWrapper *w = g_mime_part_get_content(part);
	GMimeStream *raw, *mem;
	GByteArray *ba, *out;

	if (!w || g_mime_data_wrapper_get_encoding(w) != GMIME_CONTENT_ENCODING_BASE64)
		return NULL;
	raw = g_mime_data_wrapper_get_stream(w);
	if (!raw)
		return NULL;
	mem = g_mime_stream_mem_new();
	g_mime_stream_reset(raw);
	g_mime_stream_write_to_stream(raw, mem);
	g_mime_stream_reset(raw);
	ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
	out = base64_lenient(ba->data, ba->len, d);
	g_object_unref(mem);
	if (d->skipped)
		note(c, "part %s: bad base64, %zu characters skipped", label(path), d->skipped);
	if (d->mid_padding)
		note(c, "part %s: base64 padding in the middle, decoded on after it",
		    label(path));
	if (d->cut)
		note(c, "part %s: base64 cut short, its last 6 bits dropped", label(path));
	return out;
}

/* A line at the end of the legacy text about a part whose base64 could not
 * be decoded entirely; what names it (UTF-8). */
static void
say_damage(Ctx *c, const char *what, gsize kept, const B64Damage *d)
{
	GString *why = g_string_new(NULL);

	if (d->skipped)
		g_string_append_printf(why, "%zu characters that are not base64 skipped",
		    d->skipped);
	if (d->mid_padding)
		g_string_append_printf(why, "%sbase64 padding in the middle", why->len ? "; " : "");
	if (d->cut)
		g_string_append_printf(why, "%sthe last group cut short", why->len ? "; " : "");
	g_string_append_printf(c->damage, "[%s could not be decoded entirely (%s); %s "
	    "holds the %zu bytes that could]\n", what, why->str,
	    kept ? "it" : "so it", kept);
	g_string_free(why, TRUE);
}

/* The bytes of an object as it came (for deep subtrees and messages). */
static GByteArray *
object_bytes(Ctx *c, GMimeObject *obj)
{
	GMimeStream *mem = g_mime_stream_mem_new();
	GByteArray *ba;

	g_mime_object_write_to_stream(obj, c->format, mem);
	ba = stream_bytes(mem);
	g_object_unref(mem);
	return ba;
}

static const struct {
	const char *type;
	const char *ext;
} extensions[] = {
	{ "text/plain", ".txt" }, { "text/html", ".html" }, { "text/csv", ".csv" },
	{ "text/calendar", ".ics" }, { "text/xml", ".xml" }, { "text/rfc822-headers", ".txt" },
	{ "image/png", ".png" }, { "image/jpeg", ".jpg" }, { "image/gif", ".gif" },
	{ "image/bmp", ".bmp" }, { "image/tiff", ".tif" }, { "image/webp", ".webp" },
	{ "image/svg+xml", ".svg" }, { "application/pdf", ".pdf" },
	{ "application/zip", ".zip" }, { "application/gzip", ".gz" },
	{ "application/json", ".json" }, { "application/xml", ".xml" },
	{ "application/msword", ".doc" }, { "application/vnd.ms-excel", ".xls" },
	{ "application/pgp-signature", ".asc" }, { "application/pgp-encrypted", ".asc" },
	{ "application/pkcs7-signature", ".p7s" }, { "application/x-pkcs7-signature", ".p7s" },
	{ "application/pkcs7-mime", ".p7m" }, { "message/rfc822", ".eml" },
	{ "message/global", ".eml" }, { "message/delivery-status", ".txt" },
	{ "message/disposition-notification", ".txt" }, { "audio/mpeg", ".mp3" },
	{ "audio/wav", ".wav" }, { "video/mp4", ".mp4" },
};

static const char *
extension_for(GMimeContentType *ct)
{
	const char *type = ct ? g_mime_content_type_get_media_type(ct) : NULL;
	const char *sub = ct ? g_mime_content_type_get_media_subtype(ct) : NULL;
	char *full;
	const char *ext = ".bin";

	if (!type || !sub)
		return ext;
	if (g_ascii_strcasecmp(type, "multipart") == 0)
		return ".eml";
	full = g_strdup_printf("%s/%s", type, sub);
	for (gsize i = 0; i < G_N_ELEMENTS(extensions); i++)
		if (g_ascii_strcasecmp(full, extensions[i].type) == 0)
			ext = extensions[i].ext;
	g_free(full);
	return ext;
}

/* Where the extension of a name starts (its last '.'), or len when it has none
 * worth keeping. */
static gsize
ext_start(const char *s, gsize len)
{
	for (gsize i = len; i-- > 1;)
		if (s[i] == '.')
			return len - i <= MIME_LEGACY_MAX_EXT_LEN ? i : len;
	return len;
}

/* stem (cut so that the whole fits) + suffix + ext */
static char *
fit_name(const char *stem, gsize stem_len, const char *suffix, const char *ext, gsize ext_len)
{
	gsize room = MSG_MAX_NAME_LEN - strlen(suffix) - ext_len;
	GString *s = g_string_new(NULL);

	g_string_append_len(s, stem, (gssize)MIN(stem_len, room));
	while (s->len > 0 && (s->str[s->len - 1] == ' ' || s->str[s->len - 1] == '.'))
		g_string_truncate(s, s->len - 1);
	g_string_append(s, suffix);
	g_string_append_len(s, ext, (gssize)ext_len);
	return g_string_free(s, FALSE);
}

/* A safe, unique attachment name in the codepage from a UTF-8 suggestion
 * (may be NULL; a file name when is_path: only its last component counts)
 * and the part's type. */
static char *
attachment_name(Ctx *c, const char *suggested, gboolean is_path, GMimeContentType *ct,
    const char *ext_if_none)
{
	GString *s = g_string_new(NULL);
	char *name, *key;
	gsize e;

	if (suggested && *suggested) {
		char *valid = g_utf8_make_valid(suggested, -1);
		const char *base = valid;
		char *cp;
		gsize n = 0, a = 0;

		/* The last path component, when there is one. */
		for (const char *p = valid; is_path && *p; p++)
			if ((*p == '/' || *p == '\\') && p[1])
				base = p + 1;
		cp = to_cp(c, base, strlen(base), &n);
		for (gsize i = 0; i < n; i++) {
			guchar ch = (guchar)cp[i];
			if (ch < 0x20 || ch == 0x7f || strchr("/\\:*?\"<>|", ch))
				cp[i] = '_';
		}
		while (a < n && (cp[a] == '.' || cp[a] == ' '))
			a++;
		while (n > a && (cp[n - 1] == '.' || cp[n - 1] == ' '))
			n--;
		g_string_append_len(s, cp + a, (gssize)(n - a));
		g_free(cp);
		g_free(valid);
	}
	if (s->len == 0)
		g_string_printf(s, "attachment-%u%s", c->msg->attachments->len + 1,
		    ext_if_none ? ext_if_none : extension_for(ct));
	e = ext_start(s->str, s->len);
	name = s->len > MSG_MAX_NAME_LEN ? fit_name(s->str, e, "", s->str + e, s->len - e) :
	    g_strdup(s->str);
	key = g_ascii_strdown(name, -1);
	for (guint k = 2; g_hash_table_contains(c->names, key); k++) {
		char suffix[32];

		g_snprintf(suffix, sizeof suffix, " (%u)", k);
		g_free(name);
		g_free(key);
		name = fit_name(s->str, e, suffix, s->str + e, s->len - e);
		key = g_ascii_strdown(name, -1);
	}
	g_hash_table_add(c->names, key);
	g_string_free(s, TRUE);
	return name;
}

/* Keep bytes as an attachment named from suggested (UTF-8, may be NULL). */
static gboolean
add_attachment(Ctx *c, const char *suggested, gboolean is_path, GMimeContentType *ct,
    const char *ext, GByteArray *bytes)
{
	char *name;
	GBytes *b;

	if (c->error)
		return FALSE;
	if (c->msg->attachments->len >= MSG_MAX_ATTACHMENTS)
		return limit(c, "the message has more than %u attachments, over the legacy limit "
		    "(MSG_MAX_ATTACHMENTS)", MSG_MAX_ATTACHMENTS);
	if (!add_size(c, bytes->len))
		return FALSE;
	name = attachment_name(c, suggested, is_path, ct, ext);
	b = g_bytes_new(bytes->data, bytes->len);
	msg_add_attachment(c->msg, name, b);
	g_bytes_unref(b);
	g_free(name);
	return TRUE;
}

static void
add_text(Ctx *c, const char *utf8)
{
	gsize n = strlen(utf8);

	while (n > 0 && (utf8[n - 1] == '\n' || utf8[n - 1] == '\r' || utf8[n - 1] == ' ' ||
	    utf8[n - 1] == '\t'))
		n--;
	if (n == 0)
		return;
	if (c->body->len)
		g_string_append(c->body, "\n\n");
	g_string_append_len(c->body, utf8, (gssize)n);
	add_size(c, n);
}

static gboolean
is_type(GMimeObject *obj, const char *type, const char *sub)
{
	GMimeContentType *ct = g_mime_object_get_content_type(obj);

	return ct && g_mime_content_type_is_type(ct, type, sub);
}

static gboolean
is_attachment(GMimeObject *obj)
{
	GMimeContentDisposition *d = g_mime_object_get_content_disposition(obj);

	return d && g_mime_content_disposition_is_attachment(d);
}

/* Past a quoted-string or a comment at p (RFC 5322 3.2.4, 3.2.2). */
static const char *
skip_quoted(const char *p)
{
	int depth = 0;
	char close = *p == '"' ? '"' : ')';

	for (p++; *p; p++) {
		if (*p == '\\' && p[1])
			p++;
		else if (close == ')' && *p == '(')
			depth++;
		else if (*p == close && depth-- == 0)
			return p + 1;
	}
	return p;
}

/* To the next ';' of a parameter list (or its end), over quotes and comments. */
static const char *
next_param(const char *p)
{
	while (*p && *p != ';')
		p = *p == '"' || *p == '(' ? skip_quoted(p) : p + 1;
	return p;
}

/* The value of parameter name in a raw Content-Type or Content-Disposition
 * field (RFC 2045 5.1, RFC 2183 2): a quoted-string unquoted, or a token;
 * NULL when absent.  *starred: an RFC 2231 form (name*, name*0, ...) is there
 * too, which wins. */
static char *
raw_param(const char *field, const char *name, gboolean *starred)
{
	gsize nlen = strlen(name);
	char *found = NULL;

	*starred = FALSE;
	for (const char *p = next_param(field); *p == ';'; p = next_param(p)) {
		const char *n;
		gsize len;
		GString *v;

		for (p++; is_lwsp(*p) || *p == '('; )
			p = *p == '(' ? skip_quoted(p) : p + 1;
		n = p;
		while (*p && *p != '=' && *p != ';' && !is_lwsp(*p))
			p++;
		len = (gsize)(p - n);
		while (is_lwsp(*p))
			p++;
		if (*p != '=' || len < nlen || g_ascii_strncasecmp(n, name, nlen) != 0)
			continue;
		if (len > nlen) {
			*starred |= n[nlen] == '*';
			continue;
		}
		for (p++; is_lwsp(*p); p++)
			;
		v = g_string_new(NULL);
		if (*p == '"') {
			for (p++; *p && *p != '"'; p++) {
				if (*p == '\\' && p[1])
					p++;
				g_string_append_c(v, *p);
			}
		} else {
			while (*p && *p != ';' && !is_lwsp(*p))
				g_string_append_c(v, *p++);
		}
		if (!found)
			found = g_string_free(v, FALSE);
		else
			g_string_free(v, TRUE);
	}
	return found;
}

/* The value at p (a quoted-string unquoted, or a token) appended to v;
 * returns the end. */
static const char *
param_value(const char *p, GString *v)
{
	if (*p == '"') {
		for (p++; *p && *p != '"'; p++) {
			if (*p == '\\' && p[1])
				p++;
			g_string_append_c(v, *p);
		}
		return *p ? p + 1 : p;
	}
	while (*p && *p != ';' && !is_lwsp(*p))
		g_string_append_c(v, *p++);
	return p;
}

/* %XX of an RFC 2231 extended value decoded into out (a '%' without two hex
 * digits kept as it is). */
static void
percent_decode(const char *s, gsize len, GByteArray *out)
{
	for (gsize i = 0; i < len; i++) {
		guint8 b = (guint8)s[i];
		if (s[i] == '%' && i + 2 < len && g_ascii_isxdigit(s[i + 1]) &&
		    g_ascii_isxdigit(s[i + 2])) {
			b = (guint8)(g_ascii_xdigit_value(s[i + 1]) * 16 +
			    g_ascii_xdigit_value(s[i + 2]));
			i += 2;
		}
		g_byte_array_append(out, &b, 1);
	}
}

/* The RFC 2231 value of parameter name in a raw field, UTF-8: "name*" alone,
 * or the continuations name*0, name*1*, ... put in the order of their
 * numbers (RFC 2231 3: they may come in any order), ending at the first
 * number missing (noted; what follows a gap is not the name's); the charset
 * of an extended first segment decodes the bytes of them all, so a character
 * split between two segments is whole.  NULL when there is no such form. */
static char *
rfc2231_param(Ctx *c, const char *field, const char *name, const char *what)
{
	gsize nlen = strlen(name);
	GPtrArray *seg = g_ptr_array_new_with_free_func(g_free);   /* by number */
	GArray *ext = g_array_new(FALSE, TRUE, sizeof(gboolean));
	char *single = NULL, *charset = NULL, *out = NULL;
	gboolean single_ext = FALSE;
	GByteArray *bytes = g_byte_array_new();
	guint n;

	for (const char *p = next_param(field); *p == ';'; p = next_param(p)) {
		const char *k, *star;
		gsize len;
		guint64 num = 0;
		gboolean is_ext;
		GString *v;

		for (p++; is_lwsp(*p) || *p == '('; )
			p = *p == '(' ? skip_quoted(p) : p + 1;
		k = p;
		while (*p && *p != '=' && *p != ';' && !is_lwsp(*p))
			p++;
		len = (gsize)(p - k);
		while (is_lwsp(*p))
			p++;
		if (*p != '=' || len <= nlen || g_ascii_strncasecmp(k, name, nlen) != 0 ||
		    k[nlen] != '*')
			continue;
		for (p++; is_lwsp(*p); p++)
			;
		star = k + nlen + 1;                    /* after "name*" */
		is_ext = k[len - 1] == '*';
		if (star == k + len) {                  /* name*= */
			if (!single) {
				v = g_string_new(NULL);
				param_value(p, v);
				single = g_string_free(v, FALSE);
				single_ext = TRUE;
			}
			continue;
		}
		for (const char *d = star; d < k + len - (is_ext ? 1 : 0); d++) {
			if (!g_ascii_isdigit(*d) || num >= RFC2231_MAX_SEGMENTS) {
				num = RFC2231_MAX_SEGMENTS;
				break;
			}
			num = num * 10 + (guint64)(*d - '0');
		}
		if (star == k + len - (is_ext ? 1 : 0) || num >= RFC2231_MAX_SEGMENTS)
			continue;                       /* not a number we keep */
		if (seg->len <= num) {
			g_ptr_array_set_size(seg, (guint)num + 1);
			g_array_set_size(ext, (guint)num + 1);
		}
		if (seg->pdata[num])
			continue;                       /* the first of a number counts */
		v = g_string_new(NULL);
		param_value(p, v);
		seg->pdata[num] = g_string_free(v, FALSE);
		g_array_index(ext, gboolean, num) = is_ext;
	}
	if (!single && (seg->len == 0 || !seg->pdata[0]))
		goto out;
	if (!single) {
		for (n = 0; n < seg->len && seg->pdata[n]; n++)
			;
		if (n < seg->len)
			note(c, "%s: RFC 2231 segment %u is missing; the name ends before it",
			    what, n);
	} else {
		n = 0;
	}
	for (guint i = 0; i < (single ? 1 : n); i++) {
		const char *v = single ? single : seg->pdata[i];
		gboolean e = single ? single_ext : g_array_index(ext, gboolean, i);
		if (e && i == 0) {
			/* charset'language'value (RFC 2231 4) */
			const char *q1 = strchr(v, '\''), *q2 = q1 ? strchr(q1 + 1, '\'') : NULL;
			if (q2) {
				charset = g_strndup(v, (gsize)(q1 - v));
				v = q2 + 1;
			}
		}
		if (e)
			percent_decode(v, strlen(v), bytes);
		else
			g_byte_array_append(bytes, (const guint8 *)v, (guint)strlen(v));
	}
	for (guint i = 0; i < bytes->len; i++)
		if (bytes->data[i] == '\0')
			bytes->data[i] = ' ';           /* a C string holds no NUL */
	out = to_utf8(c, what, charset && *charset ? charset : NULL,
	    (const char *)bytes->data, bytes->len);
out:
	g_free(single);
	g_free(charset);
	g_ptr_array_unref(seg);
	g_array_unref(ext);
	g_byte_array_unref(bytes);
	return out;
}

/* The file name a part suggests (Content-Disposition filename, else
 * Content-Type name), UTF-8, or NULL, read from the raw field and decoded
 * here: RFC 2231 values (GMime 3.2.13 joins continuations in the order they
 * come, over gaps), and a plain value holding RFC 2047 words or 8-bit bytes
 * (GMime cuts split words, and reads 8-bit values in the locale's charset). */
static char *
part_filename(Ctx *c, GMimeObject *obj)
{
	static const char *const where[][2] = { { "Content-Disposition", "filename" },
		{ "Content-Type", "name" } };

	for (gsize i = 0; i < G_N_ELEMENTS(where); i++) {
		GMimeHeader *h = find_header(obj, where[i][0]);
		const char *raw = h ? g_mime_header_get_raw_value(h) : NULL;
		gboolean starred = FALSE;
		char *v = raw && strlen(raw) <= MIME_LEGACY_MAX_HEADER_LEN ?
		    raw_param(raw, where[i][1], &starred) : NULL;
		const char *gm;

		if (v && !starred && (strstr(v, "=?") || !all_ascii(v, strlen(v)))) {
			char *what = g_strdup_printf("%s parameter %s", where[i][0], where[i][1]);
			char *escaped = q_words_8bit_escaped(v, strlen(v));
			char *utf8 = to_utf8(c, what, NULL, escaped ? escaped : v,
			    strlen(escaped ? escaped : v));
			g_free(escaped);
			char *dec = rfc2047_decode(c, what, utf8);
			g_free(utf8);
			g_free(what);
			g_free(v);
			return dec;
		}
		g_free(v);
		if (starred) {
			char *what = g_strdup_printf("%s parameter %s", where[i][0], where[i][1]);
			char *dec = rfc2231_param(c, raw, where[i][1], what);
			g_free(what);
			if (dec)
				return dec;
		}
		gm = i == 0 ? g_mime_object_get_content_disposition_parameter(obj, "filename") :
		    g_mime_object_get_content_type_parameter(obj, "name");
		if (gm)
			return g_strdup(gm);
	}
	return NULL;
}

/* A leaf: text for the body, or an attachment. */
static void
leaf(Ctx *c, GMimePart *part, const char *path, gboolean text_ok)
{
	GMimeObject *obj = GMIME_OBJECT(part);
	gboolean plain = is_type(obj, "text", "plain"), html = is_type(obj, "text", "html");
	B64Damage dmg = { 0 };
	GByteArray *bytes = base64_part(c, part, path, &dmg);
	gboolean damaged = dmg.skipped || dmg.mid_padding || dmg.cut;

	if (!bytes)
		bytes = part_bytes(part);
	if (text_ok && (plain || html) && !is_attachment(obj)) {
		const char *cs = g_mime_object_get_content_type_parameter(obj, "charset");
		char *what = g_strdup_printf("part %s", label(path));
		char *utf8 = to_utf8(c, what, cs, (const char *)bytes->data, bytes->len);

		if (html) {
			char *text = html_to_text(utf8, strlen(utf8));
			g_free(utf8);
			utf8 = text;
		}
		add_text(c, utf8);
		if (damaged) {
			char *t = g_strdup_printf("The text of part %s", label(path));
			say_damage(c, t, bytes->len, &dmg);
			g_free(t);
		}
		g_free(utf8);
		g_free(what);
	} else {
		char *fn = part_filename(c, obj);
		if (add_attachment(c, fn, TRUE, g_mime_object_get_content_type(obj), NULL, bytes) &&
		    damaged) {
			MsgAttachment *a = c->msg->attachments->pdata[c->msg->attachments->len - 1];
			char *name = cp_to_utf8(c->codepage, a->name, strlen(a->name), NULL);
			char *t = g_strdup_printf("The attachment \"%s\"", name ? name : "?");
			say_damage(c, t, bytes->len, &dmg);
			g_free(t);
			g_free(name);
		}
		g_free(fn);
	}
	g_byte_array_unref(bytes);
}

static void walk(Ctx *c, GMimeObject *obj, const char *path, int depth, gboolean text_ok);

/* message/rfc822: the embedded message, whole, as NAME.eml. */
static void
message_part(Ctx *c, GMimeMessagePart *mp, const char *path)
{
	GMimeMessage *m = g_mime_message_part_get_message(mp);
	GByteArray *bytes;
	char *subject = NULL;

	if (!m) {
		GByteArray *empty = g_byte_array_new();
		note(c, "part %s: an empty message/rfc822 part", label(path));
		add_attachment(c, NULL, FALSE, NULL, ".eml", empty);
		g_byte_array_unref(empty);
		return;
	}
	bytes = object_bytes(c, GMIME_OBJECT(m));
	subject = header_text(c, find_header(GMIME_OBJECT(m), "Subject"));
	if (subject) {
		char *s = g_strstrip(subject);
		if (*s) {
			char *named = g_strconcat(s, ".eml", NULL);
			g_free(subject);
			subject = named;
		} else {
			g_free(subject);
			subject = NULL;
		}
	}
	add_attachment(c, subject, FALSE, NULL, ".eml", bytes);
	g_free(subject);
	g_byte_array_unref(bytes);
}

static char *
child_path(const char *path, int i)
{
	return *path ? g_strdup_printf("%s.%d", path, i + 1) : g_strdup_printf("%d", i + 1);
}

static const char *
type_text(GMimeObject *obj, char *buf, gsize size)
{
	GMimeContentType *ct = g_mime_object_get_content_type(obj);
	char *mime = ct ? g_mime_content_type_get_mime_type(ct) : NULL;
	char *t = shown(mime);

	g_strlcpy(buf, t, size);
	g_free(t);
	g_free(mime);
	return buf;
}

static void
alternative(Ctx *c, GMimeMultipart *mp, const char *path, int depth, gboolean text_ok)
{
	int n = g_mime_multipart_get_count(mp), best = -1;

	for (int pass = 0; pass < 3 && best < 0; pass++)
		for (int i = 0; i < n && best < 0; i++) {
			GMimeObject *o = g_mime_multipart_get_part(mp, i);
			if (is_attachment(o))
				continue;
			if ((pass == 0 && GMIME_IS_PART(o) && is_type(o, "text", "plain")) ||
			    (pass == 1 && GMIME_IS_PART(o) && is_type(o, "text", "html")) ||
			    (pass == 2 && GMIME_IS_MULTIPART(o)))
				best = i;
		}
	if (best < 0)
		best = 0;
	for (int i = 0; i < n && !c->error; i++) {
		char *p = child_path(path, i);
		if (i == best) {
			walk(c, g_mime_multipart_get_part(mp, i), p, depth + 1, text_ok);
		} else {
			char t[NOTE_QUOTE_MAX * 4 + 8];
			note(c, "part %s (%s): another form of the same text, dropped", p,
			    type_text(g_mime_multipart_get_part(mp, i), t, sizeof t));
		}
		g_free(p);
	}
}

static void
related(Ctx *c, GMimeMultipart *mp, const char *path, int depth, gboolean text_ok)
{
	int n = g_mime_multipart_get_count(mp), root = 0;
	const char *start = g_mime_object_get_content_type_parameter(GMIME_OBJECT(mp), "start");

	if (start) {
		char *id = g_strdup(start);
		char *s = g_strstrip(id);
		gsize len = strlen(s);
		if (len >= 2 && s[0] == '<' && s[len - 1] == '>') {
			s[len - 1] = '\0';
			s++;
		}
		for (int i = 0; i < n; i++) {
			const char *cid = g_mime_object_get_content_id(g_mime_multipart_get_part(mp, i));
			if (cid && strcmp(cid, s) == 0) {
				root = i;
				break;
			}
		}
		g_free(id);
	}
	for (int i = 0; i < n && !c->error; i++) {
		char *p = child_path(path, i);
		walk(c, g_mime_multipart_get_part(mp, i), p, depth + 1, text_ok && i == root);
		g_free(p);
	}
}

static void
walk(Ctx *c, GMimeObject *obj, const char *path, int depth, gboolean text_ok)
{
	if (c->error || !obj)
		return;
	if (depth > MIME_LEGACY_MAX_DEPTH) {
		GByteArray *bytes = object_bytes(c, obj);
		note(c, "nesting deeper than %d levels: part %s kept as an attachment",
		    MIME_LEGACY_MAX_DEPTH, label(path));
		add_attachment(c, NULL, FALSE, g_mime_object_get_content_type(obj), ".eml", bytes);
		g_byte_array_unref(bytes);
		return;
	}
	if (GMIME_IS_MULTIPART(obj)) {
		GMimeMultipart *mp = GMIME_MULTIPART(obj);
		int n = g_mime_multipart_get_count(mp);

		if (n == 0) {
			/* A multipart GMime found no parts in: keep its text as text. */
			const char *pre = g_mime_multipart_get_prologue(mp);
			if (pre && *pre) {
				char *utf8 = to_utf8(c, "a multipart without parts", NULL, pre,
				    strlen(pre));
				note(c, "part %s: a multipart without parts (wrong boundary?), its "
				    "text kept as the body", label(path));
				if (text_ok)
					add_text(c, utf8);
				g_free(utf8);
			}
			return;
		}
		if (is_type(obj, "multipart", "alternative")) {
			alternative(c, mp, path, depth, text_ok);
		} else if (is_type(obj, "multipart", "related")) {
			related(c, mp, path, depth, text_ok);
		} else {
			for (int i = 0; i < n && !c->error; i++) {
				char *p = child_path(path, i);
				walk(c, g_mime_multipart_get_part(mp, i), p, depth + 1, text_ok);
				g_free(p);
			}
		}
	} else if (GMIME_IS_MESSAGE_PART(obj)) {
		message_part(c, GMIME_MESSAGE_PART(obj), path);
	} else if (GMIME_IS_PART(obj)) {
		leaf(c, GMIME_PART(obj), path, text_ok);
	} else {
		GByteArray *bytes = object_bytes(c, obj);
		add_attachment(c, NULL, FALSE, g_mime_object_get_content_type(obj), NULL, bytes);
		g_byte_array_unref(bytes);
	}
}

/* ---- the message -------------------------------------------------------------- */

static void
parser_warning(gint64 offset, GMimeParserWarning code, const gchar *item, gpointer data)
{
	Ctx *c = data;
	char *unmarked = c->field ? unmark(c, item) : g_strdup(item ? item : "");
	char *it = shown(unmarked);

	(void)offset;
	switch (code) {
	case GMIME_WARN_TRUNCATED_MESSAGE:
		note(c, "the message is truncated: it ends inside a header section or "
		    "before a multipart's closing boundary");
		break;
	case GMIME_WARN_MALFORMED_MULTIPART:
		note(c, "a multipart holds no parts (wrong boundary?)");
		break;
	case GMIME_CRIT_MULTIPART_WITHOUT_BOUNDARY:
		note(c, "a multipart has no boundary; it is read as one part");
		break;
	case GMIME_CRIT_NESTING_OVERFLOW:
		note(c, "MIME nesting deeper than the parser follows; the rest is read as "
		    "content");
		break;
	case GMIME_CRIT_INVALID_HEADER_NAME:
		note(c, "a line of a header section is not a header field: \"%s\"", it);
		break;
	case GMIME_WARN_INVALID_CONTENT_TYPE:
		note(c, "invalid Content-Type \"%s\", read as application/octet-stream", it);
		break;
	case GMIME_WARN_INVALID_RFC2047_HEADER_VALUE:
		note(c, "a header field holds a bad RFC 2047 encoded word: \"%s\"", it);
		break;
	case GMIME_WARN_INVALID_ADDRESS_LIST:
		/* Only our own parse of a field (GMime's at construction is ignored). */
		if (c->field)
			note(c, "%s: text that is not an address dropped from \"%s\"", c->field,
			    it);
		break;
	case GMIME_WARN_MALFORMED_MESSAGE:
	case GMIME_CRIT_PART_WITHOUT_HEADERS_OR_CONTENT:
		note(c, "the MIME structure is malformed%s%s", *it ? ": " : "", it);
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
finish_body(Ctx *c)
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
	cp = to_cp(c, s->str, s->len, &n);
	c->msg->body = g_bytes_new_take(cp, n);
	g_string_free(s, TRUE);
}

LegacyMessage *
mime_legacy_translate(const guint8 *data, gsize len, const char *codepage,
    MimeLegacyStats *stats, GError **error)
{
	static GOnce once = G_ONCE_INIT;
	static const char *fallback[] = { "UTF-8", "windows-1252", NULL };
	MimeLegacyStats local = { 0 };
	GMimeStream *stream;
	GMimeParser *parser;
	GMimeMessage *m;
	GError *e = NULL;
	Ctx c = { 0 };
	char *tmp;

	g_once(&once, init_once, NULL);
	if (!stats)
		stats = &local;
	mime_legacy_stats_clear(stats);
	stats->notes = g_ptr_array_new_with_free_func(g_free);
	tmp = translit_from_utf8(codepage, "", 0, NULL, NULL, NULL, &e);
	if (!tmp) {
		g_set_error(error, MIME_LEGACY_ERROR, MIME_LEGACY_ERROR_CODEPAGE, "%s",
		    e->message);
		g_error_free(e);
		mime_legacy_stats_clear(&local);
		return NULL;
	}
	g_free(tmp);
	if (len > SMTP_MAX_MESSAGE_SIZE) {
		g_set_error(error, MIME_LEGACY_ERROR, MIME_LEGACY_ERROR_LIMIT,
		    "the message is %zu bytes, over the limit of %u (SMTP_MAX_MESSAGE_SIZE)",
		    len, SMTP_MAX_MESSAGE_SIZE);
		mime_legacy_stats_clear(&local);
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
		char *utf8 = to_utf8(&c, "the message", NULL, (const char *)data, len);
		note(&c, "no header section could be read; the whole input is the body");
		add_text(&c, utf8);
		g_free(utf8);
	} else {
		GMimeObject *top = GMIME_OBJECT(m);
		GDateTime *date;
		char *subject;

		if (hops(&c, top)) {
			from_party(&c, top);
			display_list(&c, top, "To", c.msg->to);
			display_list(&c, top, "Cc", c.msg->cc);
			subject = header_text(&c, find_header(top, "Subject"));
			c.msg->subject = line_to_cp(&c, subject ? subject : "", MSG_MAX_SUBJECT_LEN);
			g_free(subject);
			date = g_mime_message_get_date(m);
			c.msg->date = date ? g_date_time_to_unix(date) : 0;
			c.msg->priority = priority_of(&c, top);
			walk(&c, g_mime_message_get_mime_part(m), "", 0, TRUE);
		}
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
		limit(&c, "the text is over the legacy limit of %u bytes", MSG_MAX_SIZE);
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
		mime_legacy_stats_clear(&local);
		return NULL;
	}
	mime_legacy_stats_clear(&local);
	return c.msg;
}
