/* codepage.c - codepage <-> UTF-8 through iconv (see codepage.h). */
#include "config.h"

#include <string.h>

#include "codepage.h"

gboolean
cp_supported(const char *name)
{
	static const char probe[] = "AZaz09 -_.,;:!?()/@#";
	char *out;
	gsize n = 0;
	gboolean ok;

	if (!name || !*name || strlen(name) > 32)
		return FALSE;
	/* A codepage name as a message carries it (docs/bundle-format.md). */
	for (const char *c = name; *c; c++)
		if (!g_ascii_isalnum(*c) && *c != '-' && *c != '_')
			return FALSE;
	/* Single-byte and ASCII-compatible: ASCII stays itself, byte for byte,
	 * which keeps out UTF-16, EBCDIC and the like. */
	out = g_convert(probe, -1, name, "UTF-8", NULL, &n, NULL);
	ok = out && n == sizeof probe - 1 && memcmp(out, probe, n) == 0;
	g_free(out);
	if (!ok)
		return FALSE;
	out = g_convert(probe, -1, "UTF-8", name, NULL, &n, NULL);
	ok = out && n == sizeof probe - 1 && memcmp(out, probe, n) == 0;
	g_free(out);
	return ok;
}

char *
cp_from_utf8(const char *codepage, const char *text, size_t len, size_t *out_len,
    GError **error)
{
	gsize written = 0;
	char *out;

	if (!g_utf8_validate(text, (gssize)len, NULL)) {
		g_set_error(error, G_CONVERT_ERROR, G_CONVERT_ERROR_ILLEGAL_SEQUENCE,
		    "the text is not valid UTF-8");
		return NULL;
	}
	out = g_convert_with_fallback(text, (gssize)len, codepage, "UTF-8", "?", NULL,
	    &written, error);
	if (out && out_len)
		*out_len = written;
	return out;
}

char *
cp_to_utf8(const char *codepage, const char *text, size_t len, GError **error)
{
	GString *s;
	char *out;
	gsize written = 0;

	out = g_convert(text, (gssize)len, "UTF-8", codepage, NULL, &written, NULL);
	if (out)
		return out;
	if (!cp_supported(codepage)) {
		g_set_error(error, G_CONVERT_ERROR, G_CONVERT_ERROR_NO_CONVERSION,
		    "unknown codepage %s", codepage);
		return NULL;
	}
	/* Single-byte codepages: convert byte by byte, marking undefined ones. */
	s = g_string_sized_new(len * 2);
	for (size_t i = 0; i < len; i++) {
		char *c = g_convert(text + i, 1, "UTF-8", codepage, NULL, NULL, NULL);
		g_string_append(s, c ? c : "\xef\xbf\xbd");
		g_free(c);
	}
	return g_string_free(s, FALSE);
}
