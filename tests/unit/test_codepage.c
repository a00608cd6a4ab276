/* test_codepage.c - unit tests of postoffice/codepage.c.
 *
 * Checks conversion between UTF-8 and the legacy codepages CP437, CP850 and
 * CP1252: accented text comes back unchanged and in the exact bytes each
 * codepage defines; a character the codepage lacks becomes '?'; a byte the
 * codepage leaves undefined becomes U+FFFD; invalid UTF-8 is refused; the
 * length is honoured, never a terminator; and the result is the same under
 * the C and C.UTF-8 locales (SPEC 4: cron runs with LANG=C).
 */
#include "config.h"

#include <locale.h>
#include <stdarg.h>
#include <string.h>

#include "codepage.h"
#include "cu_run.h"

#define SAMPLE      "Gr\xc3\xbc\xc3\x9f" "e, caf\xc3\xa9, \xc3\x86\xc3\xb8\xc3\xa5, \xc2\xbd"
#define SAMPLE_437  "Gr\xc3\xbc\xc3\x9f" "e, caf\xc3\xa9, \xc3\x86\xc3\xa5, \xc2\xbd"

/* The bytes each codepage defines for the sample (CP437 lacks the o-slash). */
static const struct {
	const char *cp;
	const char *utf8;
	const char *bytes;
	size_t len;
} samples[] = {
#define BYTES(s) s, sizeof s - 1
	{ "CP437", SAMPLE_437, BYTES("Gr\x81\xe1" "e, caf\x82, \x92\x86, \xab") },
	{ "CP850", SAMPLE, BYTES("Gr\x81\xe1" "e, caf\x82, \x92\x9b\x86, \xab") },
	{ "CP1252", SAMPLE, BYTES("Gr\xfc\xdf" "e, caf\xe9, \xc6\xf8\xe5, \xbd") },
#undef BYTES
};

/* Convert UTF-8 to cp, expecting exactly want (wlen bytes). */
#define TO_CP(cp, utf8, want, wlen) to_cp_at(__LINE__, cp, utf8, strlen(utf8), want, wlen)

static void
to_cp_at(int line, const char *cp, const char *utf8, size_t len, const char *want,
    size_t wlen)
{
	char *in = g_memdup2(utf8, len ? len : 1);   /* no terminator after len */
	size_t out_len = 0;
	GError *e = NULL;
	char *out = cp_from_utf8(cp, in, len, &out_len, &e);

	expect_at(out != NULL, line, "%s: \"%.*s\" converts (%s)", cp, (int)len, utf8,
	    e ? e->message : "");
	if (out)
		expect_at(out_len == wlen && memcmp(out, want, wlen) == 0, line,
		    "%s: \"%.*s\" gives the expected %zu bytes (got %zu)", cp, (int)len, utf8,
		    wlen, out_len);
	g_free(out);
	g_free(in);
	g_clear_error(&e);
}

/* Convert cp bytes to UTF-8, expecting exactly want. */
#define TO_UTF8(cp, bytes, blen, want) to_utf8_at(__LINE__, cp, bytes, blen, want)

static void
to_utf8_at(int line, const char *cp, const char *bytes, size_t blen, const char *want)
{
	char *in = g_memdup2(bytes, blen ? blen : 1);
	GError *e = NULL;
	char *out = cp_to_utf8(cp, in, blen, &e);

	expect_at(out != NULL, line, "%s: %zu bytes convert to UTF-8 (%s)", cp, blen,
	    e ? e->message : "");
	if (out)
		expect_at(strcmp(out, want) == 0, line, "%s: to UTF-8 gives \"%s\", got \"%s\"",
		    cp, want, out);
	g_free(out);
	g_free(in);
	g_clear_error(&e);
}

static void
test_accented_text_converts_to_the_codepage_bytes(void)
{
	for (guint i = 0; i < G_N_ELEMENTS(samples); i++)
		TO_CP(samples[i].cp, samples[i].utf8, samples[i].bytes, samples[i].len);
}

static void
test_codepage_bytes_convert_back_to_the_same_text(void)
{
	for (guint i = 0; i < G_N_ELEMENTS(samples); i++)
		TO_UTF8(samples[i].cp, samples[i].bytes, samples[i].len, samples[i].utf8);
}

static void
test_every_defined_byte_round_trips(void)
{
	/* Every byte a codepage defines maps to one character and back. */
	static const char *cps[] = { "CP437", "CP850", "CP1252" };

	for (guint k = 0; k < G_N_ELEMENTS(cps); k++) {
		int undefined = 0;
		for (int c = 0x20; c <= 0xff; c++) {
			char byte = (char)c, *u, *back;
			size_t blen = 0;
			u = cp_to_utf8(cps[k], &byte, 1, NULL);
			EXPECT(u != NULL, "%s 0x%02x converts to UTF-8", cps[k], c);
			if (!u)
				continue;
			if (strcmp(u, "\xef\xbf\xbd") == 0) {
				undefined++;
				g_free(u);
				continue;
			}
			back = cp_from_utf8(cps[k], u, strlen(u), &blen, NULL);
			EXPECT(back && blen == 1 && (unsigned char)back[0] == c,
			    "%s 0x%02x -> %s -> back to the same byte", cps[k], c, u);
			g_free(back);
			g_free(u);
		}
		/* CP1252 leaves exactly 0x81 0x8D 0x8F 0x90 0x9D undefined. */
		EXPECT(undefined == (strcmp(cps[k], "CP1252") == 0 ? 5 : 0),
		    "%s has %d undefined bytes", cps[k], undefined);
	}
}

static void
test_missing_characters_become_question_marks(void)
{
	/* CP437 has no o-slash and no euro sign; none has CJK or emoji. */
	TO_CP("CP437", "\xc3\xb8", "?", 1);
	TO_CP("CP437", "a\xe2\x82\xac" "b", "a?b", 3);
	TO_CP("CP850", "price 5\xe2\x82\xac", "price 5?", 8);
	TO_CP("CP1252", "\xe4\xb8\xad\xe6\x96\x87 ok", "?? ok", 5);
	TO_CP("CP1252", "x\xf0\x9f\x98\x80y", "x?y", 3);
	/* ... while CP1252 does have the euro sign. */
	TO_CP("CP1252", "5\xe2\x82\xac", "5\x80", 2);
}

static void
test_undefined_cp1252_bytes_become_replacement_character(void)
{
	TO_UTF8("CP1252", "a\x81" "b", 3, "a\xef\xbf\xbd" "b");
	TO_UTF8("CP1252", "\x8d\x8f\x90\x9d", 4,
	    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	/* Defined bytes around an undefined one keep their meaning. */
	TO_UTF8("CP1252", "\xe9\x81\x80", 3, "\xc3\xa9\xef\xbf\xbd\xe2\x82\xac");
}

static void
test_invalid_utf8_refused(void)
{
	const struct { const char *s; size_t len; } bad[] = {
		{ "\xc3\x28", 2 },              /* bad continuation */
		{ "ok\xff", 3 },                /* never valid */
		{ "\xc0\xaf", 2 },              /* overlong '/' */
		{ "caf\xc3", 4 },               /* cut in the middle of a character */
		{ "\xed\xa0\x80", 3 },          /* UTF-16 surrogate */
		{ "a\0b", 3 },                  /* NUL inside the given length */
	};

	for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
		for (guint k = 0; k < G_N_ELEMENTS(samples); k++) {
			GError *e = NULL;
			size_t n = 77;
			char *out = cp_from_utf8(samples[k].cp, bad[i].s, bad[i].len, &n, &e);
			EXPECT(out == NULL, "%s: invalid UTF-8 case %u is refused", samples[k].cp, i);
			EXPECT(e != NULL && e->domain == G_CONVERT_ERROR && e->message[0],
			    "%s: case %u has a G_CONVERT_ERROR with a message", samples[k].cp, i);
			EXPECT(n == 77, "%s: case %u leaves out_len alone", samples[k].cp, i);
			g_free(out);
			g_clear_error(&e);
		}
	}
}

static void
test_only_the_given_length_is_converted(void)
{
	/* "café" is 5 bytes of UTF-8; what follows must not be read. */
	TO_CP("CP850", "", "", 0);
	to_cp_at(__LINE__, "CP850", "caf\xc3\xa9 and more \xff", 5, "caf\x82", 4);
	to_utf8_at(__LINE__, "CP850", "caf\x82 and more", 4, "caf\xc3\xa9");
	to_utf8_at(__LINE__, "CP1252", "\x81\x81\x81", 1, "\xef\xbf\xbd");
	to_utf8_at(__LINE__, "CP437", "x", 0, "");
}

static void
test_supported_codepages(void)
{
	CU_ASSERT_TRUE(cp_supported("CP437"));
	CU_ASSERT_TRUE(cp_supported("CP850"));
	CU_ASSERT_TRUE(cp_supported("CP1252"));
	CU_ASSERT_FALSE(cp_supported("CP-NONE-42"));
	CU_ASSERT_FALSE(cp_supported(""));
	CU_ASSERT_FALSE(cp_supported(NULL));
}

static void
test_unknown_codepage_refused_with_error(void)
{
	GError *e = NULL;
	char *out;

	out = cp_to_utf8("CP-NONE-42", "abc", 3, &e);
	CU_ASSERT_PTR_NULL(out);
	CU_ASSERT_PTR_NOT_NULL(e);
	if (e)
		CU_ASSERT_PTR_NOT_NULL(strstr(e->message, "CP-NONE-42"));
	g_clear_error(&e);
	g_free(out);
	out = cp_from_utf8("CP-NONE-42", "abc", 3, NULL, &e);
	CU_ASSERT_PTR_NULL(out);
	CU_ASSERT_PTR_NOT_NULL(e);
	g_clear_error(&e);
	g_free(out);
}

/* Every conversion of this file, as one string, under the current locale. */
static GString *
conversions(void)
{
	GString *all = g_string_new(NULL);

	for (guint i = 0; i < G_N_ELEMENTS(samples); i++) {
		size_t n = 0;
		char *to = cp_from_utf8(samples[i].cp, SAMPLE "\xe2\x82\xac\xe4\xb8\xad",
		    strlen(SAMPLE "\xe2\x82\xac\xe4\xb8\xad"), &n, NULL);
		char all_bytes[224];
		char *back;
		for (int c = 0; c < 224; c++)
			all_bytes[c] = (char)(c + 0x20);
		back = cp_to_utf8(samples[i].cp, all_bytes, sizeof all_bytes, NULL);
		g_string_append_len(all, to ? to : "(null)", to ? (gssize)n : 6);
		g_string_append_c(all, '|');
		g_string_append(all, back ? back : "(null)");
		g_string_append_c(all, '|');
		g_free(to);
		g_free(back);
	}
	return all;
}

static void
test_result_is_the_same_under_c_and_utf8_locales(void)
{
	GString *c, *u;
	char *saved = g_strdup(setlocale(LC_ALL, NULL));

	CU_ASSERT_PTR_NOT_NULL_FATAL(setlocale(LC_ALL, "C"));
	c = conversions();
	CU_ASSERT_PTR_NOT_NULL(setlocale(LC_ALL, "C.UTF-8"));
	u = conversions();
	CU_ASSERT_EQUAL(c->len, u->len);
	CU_ASSERT_TRUE(c->len == u->len && memcmp(c->str, u->str, c->len) == 0);
	/* And the C-locale result is the expected one, not garbage in both. */
	CU_ASSERT_PTR_NOT_NULL(strstr(c->str, "Gr\x81\xe1" "e, caf\x82, \x92\x9b\x86, \xab??|"));
	setlocale(LC_ALL, saved);
	g_free(saved);
	g_string_free(c, TRUE);
	g_string_free(u, TRUE);
}

static const CuTest tests[] = {
	{ "accented text converts to each codepage's bytes",
	  test_accented_text_converts_to_the_codepage_bytes },
	{ "codepage bytes convert back to the same text",
	  test_codepage_bytes_convert_back_to_the_same_text },
	{ "every defined byte round-trips", test_every_defined_byte_round_trips },
	{ "characters a codepage lacks become '?'", test_missing_characters_become_question_marks },
	{ "undefined CP1252 bytes become U+FFFD",
	  test_undefined_cp1252_bytes_become_replacement_character },
	{ "invalid UTF-8 is refused", test_invalid_utf8_refused },
	{ "only the given length is converted", test_only_the_given_length_is_converted },
	{ "cp_supported knows CP437, CP850, CP1252 and nothing bogus", test_supported_codepages },
	{ "unknown codepage is refused with an error", test_unknown_codepage_refused_with_error },
	{ "result is the same under C and C.UTF-8 locales",
	  test_result_is_the_same_under_c_and_utf8_locales },
	{ NULL, NULL },
};

int
main(void)
{
	return cu_run("codepage", tests);
}
