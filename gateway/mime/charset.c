/* charset.c - text between charsets for the MIME translation (private; see
 * mime_int.h).
 *
 * Owns: bytes in a MIME charset (RFC 2045 5.1, RFC 2046 4.1.2) into UTF-8,
 * through iconv with the names GMime maps them to and a built-in
 * windows-1252 table: unknown or missing charsets on 8-bit text, and bytes
 * a charset refuses, are read as windows-1252 (noted); and UTF-8 into the
 * postoffice's codepage through translit.h, counted in the stats.
 * Never: the process locale, GMime's own charset decoders, a header field
 * or a part (the callers say what the text is, for the notes).
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <gmime/gmime.h>

#include "mime/translit.h"
#include "mime/mime_int.h"
#include "pg_log.h"

/* Output space iconv gets per round. */
#define ICONV_CHUNK 4096

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

gboolean
mi_all_ascii(const char *s, gsize len)
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
char *
mi_to_utf8(MiCtx *c, const char *what, const char *charset, const char *s, gsize len)
{
	gsize bad = 0;
	char *out, *cs;

	if (mi_all_ascii(s, len) && (!charset || !*charset || is_ascii_name(charset) ||
	    is_utf8_name(charset) || g_ascii_strncasecmp(charset, "iso-8859-", 9) == 0 ||
	    g_ascii_strncasecmp(charset, "windows-", 8) == 0))
		return len ? g_strndup(s, len) : g_strdup("");
	if (!charset || !*charset || is_ascii_name(charset)) {
		out = utf8_lenient(s, len, &bad);
		if (bad == 0)
			mi_note(c, "%s: 8-bit text without a charset, read as UTF-8", what);
		else {
			g_free(out);
			out = from_cp1252(s, len);
			mi_note(c, "%s: 8-bit text without a charset, read as windows-1252", what);
		}
		return out;
	}
	if (is_utf8_name(charset)) {
		out = utf8_lenient(s, len, &bad);
		if (bad)
			mi_note(c, "%s: %zu bytes that are not UTF-8, read as windows-1252",
			    what, bad);
		return out;
	}
	out = via_iconv(g_mime_charset_iconv_name(charset), s, len, &bad);
	cs = pg_shown(charset, -1, MI_NOTE_QUOTE_MAX, FALSE);
	if (!out) {
		out = utf8_lenient(s, len, &bad);
		if (bad == 0 && !mi_all_ascii(s, len)) {
			mi_note(c, "%s: unknown charset %s, read as UTF-8", what, cs);
		} else if (bad) {
			g_free(out);
			out = from_cp1252(s, len);
			mi_note(c, "%s: unknown charset %s, decoded as windows-1252", what, cs);
		}
	} else if (bad) {
		mi_note(c, "%s: %zu bytes invalid in charset %s, read as windows-1252",
		    what, bad, cs);
	}
	g_free(cs);
	return out;
}

/* ---- text into the codepage --------------------------------------------------- */

char *
mi_to_cp(MiCtx *c, const char *utf8, gsize len, gsize *out_len)
{
	guint tr = 0, lost = 0;
	char *out = translit_from_utf8(c->codepage, utf8, len, out_len, &tr, &lost, NULL);

	c->stats->transliterated += tr;
	c->stats->lost += lost;
	return out;   /* the codepage was checked before the walk */
}

/* A one-line text (subject, display name) in the codepage: controls and runs
 * of blanks become one space, no blanks at either end, at most max bytes. */
char *
mi_line_to_cp(MiCtx *c, const char *utf8, gsize max)
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
	out = mi_to_cp(c, s->str, s->len, &n);
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

