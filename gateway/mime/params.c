/* params.c - Content-Type and Content-Disposition parameters, read and
 * written (private; see mime_int.h).
 *
 * Owns: a part's suggested file name (MIME -> legacy; Content-Disposition
 * filename, else Content-Type name: RFC 2183 2, RFC 2045 5.1) read from the
 * raw field and decoded here: RFC 2231 values (continuations in the order of
 * their numbers, up to a gap; GMime 3.2.13 joins them in the order they
 * come, over gaps), and a plain value holding RFC 2047 words or 8-bit bytes
 * (GMime cuts split words, and reads 8-bit values in the locale's charset);
 * and a parameter written (legacy -> MIME): a token or quoted-string, else
 * RFC 2231 in utf-8, continuations split only between two characters.
 * Never: GMime's parameter decoder or encoder, the rest of a header field.
 */
#include "config.h"

#include <string.h>

#include <gmime/gmime.h>

#include "mime/mime_int.h"

/* RFC 2231 continuations read per parameter (numbers 0 to this - 1). */
#define RFC2231_MAX_SEGMENTS 256

/* ---- parameters read ------------------------------------------------------------ */

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

		for (p++; mi_is_lwsp(*p) || *p == '('; )
			p = *p == '(' ? skip_quoted(p) : p + 1;
		n = p;
		while (*p && *p != '=' && *p != ';' && !mi_is_lwsp(*p))
			p++;
		len = (gsize)(p - n);
		while (mi_is_lwsp(*p))
			p++;
		if (*p != '=' || len < nlen || g_ascii_strncasecmp(n, name, nlen) != 0)
			continue;
		if (len > nlen) {
			*starred |= n[nlen] == '*';
			continue;
		}
		for (p++; mi_is_lwsp(*p); p++)
			;
		v = g_string_new(NULL);
		if (*p == '"') {
			for (p++; *p && *p != '"'; p++) {
				if (*p == '\\' && p[1])
					p++;
				g_string_append_c(v, *p);
			}
		} else {
			while (*p && *p != ';' && !mi_is_lwsp(*p))
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
	while (*p && *p != ';' && !mi_is_lwsp(*p))
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
rfc2231_param(MiCtx *c, const char *field, const char *name, const char *what)
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

		for (p++; mi_is_lwsp(*p) || *p == '('; )
			p = *p == '(' ? skip_quoted(p) : p + 1;
		k = p;
		while (*p && *p != '=' && *p != ';' && !mi_is_lwsp(*p))
			p++;
		len = (gsize)(p - k);
		while (mi_is_lwsp(*p))
			p++;
		if (*p != '=' || len <= nlen || g_ascii_strncasecmp(k, name, nlen) != 0 ||
		    k[nlen] != '*')
			continue;
		for (p++; mi_is_lwsp(*p); p++)
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
			mi_note(c, "%s: RFC 2231 segment %u is missing; the name ends before it",
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
	out = mi_to_utf8(c, what, charset && *charset ? charset : NULL,
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
char *
mi_part_filename(MiCtx *c, GMimeObject *obj)
{
	static const char *const where[][2] = { { "Content-Disposition", "filename" },
		{ "Content-Type", "name" } };

	for (gsize i = 0; i < G_N_ELEMENTS(where); i++) {
		GMimeHeader *h = mi_find_header(obj, where[i][0]);
		const char *raw = h ? g_mime_header_get_raw_value(h) : NULL;
		gboolean starred = FALSE;
		char *v = raw && strlen(raw) <= MIME_IN_MAX_HEADER_LEN ?
		    raw_param(raw, where[i][1], &starred) : NULL;
		const char *gm;

		if (v && !starred && (strstr(v, "=?") || !mi_all_ascii(v, strlen(v)))) {
			char *what = g_strdup_printf("%s parameter %s", where[i][0], where[i][1]);
			char *escaped = mi_q_words_8bit_escaped(v, strlen(v));
			char *utf8 = mi_to_utf8(c, what, NULL, escaped ? escaped : v,
			    strlen(escaped ? escaped : v));
			g_free(escaped);
			char *dec = mi_rfc2047_decode(c, what, utf8);
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

/* ---- parameters written --------------------------------------------------------- */

/* Characters an RFC 2231 extended value may hold as they are (RFC 2231 7:
 * attribute-char, no tspecial, '*', '\'' or '%'). */
static gboolean
is_attribute_char(char c)
{
	return g_ascii_isalnum(c) || strchr("!#$&+-.^_`|~", c) != NULL;
}

/* Whether s is an RFC 2045 5.1 token: printable ASCII, no tspecial. */
static gboolean
is_token(const char *s)
{
	if (!*s)
		return FALSE;
	for (; *s; s++)
		if ((guchar)*s <= 0x20 || (guchar)*s >= 0x7f || strchr("()<>@,;:\\\"/[]?=", *s))
			return FALSE;
	return TRUE;
}

/* Parameter name=utf8 appended to out after a ';' (RFC 2045 5.1): a token or
 * quoted-string when the value is short printable ASCII without "=?",
 * otherwise RFC 2231 (charset utf-8): name*=, or continuations name*0*=,
 * name*1*=, ... each on its own line and split only between two characters,
 * never inside one (RFC 2231 4.1: a reader joins the bytes, but GMime and
 * others decode each segment on its own). */
void
mi_param_append(GString *out, const char *name, const char *utf8, gsize *col)
{
	gsize len = strlen(utf8), plain = strlen(name) + 4 + len;
	GString *seg = g_string_new(NULL);
	GPtrArray *segs = g_ptr_array_new_with_free_func(g_free);
	gsize limit;
	gboolean quoted = !mi_rfc2047_needed(utf8) && 1 + plain + 1 <= MI_FOLD_WIDTH &&
	    !strpbrk(utf8, "\"\\");

	g_string_append_c(out, ';');
	if (quoted) {
		if (*col + 2 + plain > MI_FOLD_WIDTH) {
			g_string_append(out, "\r\n");
			*col = 0;
		}
		if (is_token(utf8)) {
			g_string_append_printf(out, " %s=%s", name, utf8);
			*col += 1 + plain - 2;
		} else {
			g_string_append_printf(out, " %s=\"%s\"", name, utf8);
			*col += 1 + plain;
		}
		g_string_free(seg, TRUE);
		g_ptr_array_unref(segs);
		return;
	}
	/* " name*NNN*=" + the segment + ";" on a line of its own */
	limit = MI_FOLD_WIDTH - (strlen(name) + 10);
	g_string_append_printf(seg, "%s''", MI_TEXT_CHARSET);
	for (const char *p = utf8; *p; p = g_utf8_next_char(p)) {
		const char *next = g_utf8_next_char(p);
		char piece[16];
		gsize n = 0;

		for (const char *q = p; q < next && *q; q++) {
			if (is_attribute_char(*q))
				piece[n++] = *q;
			else
				n += (gsize)g_snprintf(piece + n, sizeof piece - n, "%%%02X",
				    (guchar)*q);
		}
		piece[n] = '\0';
		if (seg->len + n > limit) {
			g_ptr_array_add(segs, g_string_free(seg, FALSE));
			seg = g_string_new(NULL);
		}
		g_string_append(seg, piece);
	}
	g_ptr_array_add(segs, g_string_free(seg, FALSE));
	for (guint i = 0; i < segs->len; i++) {
		if (i > 0)
			g_string_append_c(out, ';');
		g_string_append(out, "\r\n");
		if (segs->len == 1)
			g_string_append_printf(out, " %s*=%s", name, (char *)segs->pdata[i]);
		else
			g_string_append_printf(out, " %s*%u*=%s", name, i, (char *)segs->pdata[i]);
		*col = out->len - (gsize)(strrchr(out->str, '\n') - out->str) - 1;
	}
	g_ptr_array_unref(segs);
}
