/* test_translit.c - unit tests of gateway/mime/translit.c.
 *
 * Checks what a legacy reader sees when UTF-8 text goes into CP437, CP850 and
 * CP1252: characters the codepage has are kept byte for byte, the others are
 * transliterated (ä only when the codepage lacks it), what cannot be shown
 * becomes '?', and both counts are exact; invalid UTF-8 bytes count as lost;
 * an unknown codepage is an error; and the bytes are the same under
 * setlocale(LC_ALL, "C") and "C.UTF-8" (and de_DE.UTF-8 when installed).
 * Expected texts are written in UTF-8 and compared after cp_to_utf8, which
 * is the postoffice side's reading of the codepage, not the code under test.
 */
#include "config.h"

#include <locale.h>
#include <string.h>

#include "codepage.h"
#include "cu_run.h"
#include "mime/translit.h"

/* Convert text into cp and compare the result (read back as UTF-8) and the
 * counts with the expected ones. */
static void
check_at(int line, const char *cp, const char *text, const char *want, guint want_tr,
    guint want_lost)
{
	gsize n = 0;
	guint tr = 99, lost = 99;
	GError *e = NULL;
	char *out = translit_from_utf8(cp, text, strlen(text), &n, &tr, &lost, &e);
	char *back;

	expect_at(out != NULL, line, "%s: converted (%s)", cp, e ? e->message : "");
	if (!out) {
		g_clear_error(&e);
		return;
	}
	back = cp_to_utf8(cp, out, n, NULL);
	expect_at(back && strcmp(back, want) == 0, line, "%s: \"%s\" gives \"%s\", want \"%s\"",
	    cp, text, back ? back : "(null)", want);
	expect_at(tr == want_tr, line, "%s: %u transliterated, want %u", cp, tr, want_tr);
	expect_at(lost == want_lost, line, "%s: %u lost, want %u", cp, lost, want_lost);
	expect_at(strlen(out) == n, line, "%s: out_len %zu is the length", cp, n);
	g_free(back);
	g_free(out);
}
#define CHECK(...) check_at(__LINE__, __VA_ARGS__)

static void
test_ascii_is_kept(void)
{
	CHECK("CP437", "Hello, World! 0123 ~{}|", "Hello, World! 0123 ~{}|", 0, 0);
	CHECK("CP850", "tab\tand\r\nCRLF", "tab\tand\r\nCRLF", 0, 0);
	CHECK("CP1252", "", "", 0, 0);
}

static void
test_german(void)
{
	const char *de = "Grüße aus Köln: Äpfel für 5 €";

	CHECK("CP437", de, "Grüße aus Köln: Äpfel für 5 EUR", 1, 0);
	CHECK("CP850", de, "Grüße aus Köln: Äpfel für 5 EUR", 1, 0);
	CHECK("CP1252", de, de, 0, 0);
}

static void
test_french(void)
{
	const char *fr = "Œuvre « déjà » – naïve… l’été";

	/* CP850 has « » é à ï; it lacks Œ – … ’. */
	CHECK("CP850", fr, "OEuvre « déjà » - naïve... l'été", 4, 0);
	CHECK("CP1252", fr, fr, 0, 0);
	/* CP437 lacks À: the letter without its accent. */
	CHECK("CP437", "À la carte", "A la carte", 1, 0);
}

static void
test_polish(void)
{
	const char *pl = "Zażółć gęślą jaźń";

	CHECK("CP850", pl, "Zazólc gesla jazn", 8, 0);
	CHECK("CP1252", pl, "Zazólc gesla jazn", 8, 0);
	CHECK("CP437", "Łódź", "Lódz", 2, 0);
}

static void
test_greek(void)
{
	/* CP437 has some Greek letters (its math symbols); the rest is Latin. */
	CHECK("CP850", "Αθήνα", "Athina", 5, 0);
	CHECK("CP1252", "Καλημέρα", "Kalimera", 8, 0);
	CHECK("CP437", "π = 3.14, Σ", "π = 3.14, Σ", 0, 0);
}

static void
test_cyrillic(void)
{
	CHECK("CP1252", "Щука и Жук", "Shchuka i Zhuk", 8, 0);
}

static void
test_cjk_and_emoji_are_lost(void)
{
	CHECK("CP850", "東京 😀!", "?? ?!", 0, 3);
	CHECK("CP1252", "한국", "??", 0, 2);
}

static void
test_punctuation_and_spaces(void)
{
	/* no-break space: CP850 has it (0xFF), CP437 has it too; CP1252 has it. */
	CHECK("CP850", "a\xc2\xa0" "b", "a\xc2\xa0" "b", 0, 0);
	CHECK("CP850", "“q” ‘s’ — … • ™", "\"q\" 's' - ... * (TM)", 8, 0);
	CHECK("CP1252", "a\xe2\x80\x89" "b\xe2\x80\x8b" "c", "a bc", 2, 0);
	CHECK("CP437", "½ ² ﬁ Ａ", "½ ² fi A", 2, 0);
	CHECK("CP1252", "ß", "ß", 0, 0);
	CHECK("CP850", "Straße", "Straße", 0, 0);
	CHECK("CP1252", "ĳ ŀ", "ij l·", 2, 0);   /* ŀ is l + middle dot */
}

static void
test_decomposed_input_is_composed(void)
{
	/* e + U+0301 is é after NFC: kept where the codepage has é. */
	CHECK("CP850", "e\xcc\x81t\xc3\xa9", "été", 0, 0);
	/* ế: ê where the codepage has ê (CP1252), e otherwise dropped marks. */
	CHECK("CP1252", "ế", "ê", 1, 0);
	/* A lone combining mark is dropped. */
	CHECK("CP1252", "\xcc\x81" "x", "x", 1, 0);
}

static void
test_invalid_utf8_counts_as_lost(void)
{
	const char bad[] = "ok\xff\xfe!\xe2\x82";
	gsize n = 0;
	guint tr = 0, lost = 0;
	char *out = translit_from_utf8("CP850", bad, sizeof bad - 1, &n, &tr, &lost, NULL);

	EXPECT(out && n == 7 && memcmp(out, "ok?" "?!??", 7) == 0 && out[7] == '\0',
	    "each invalid byte becomes one '?' (\"ok?\" \"?!??\", got %zu bytes)", n);
	EXPECT(lost == 4 && tr == 0, "4 lost, 0 transliterated (got %u, %u)", lost, tr);
	g_free(out);
}

static void
test_nul_is_kept(void)
{
	const char text[] = "a\0b";
	gsize n = 0;
	guint lost = 9;
	char *out = translit_from_utf8("CP1252", text, 3, &n, NULL, &lost, NULL);

	EXPECT(out && n == 3 && memcmp(out, text, 3) == 0 && lost == 0,
	    "a NUL inside the text is kept, the length honoured");
	g_free(out);
}

static void
test_unknown_codepage(void)
{
	GError *e = NULL;
	char *out = translit_from_utf8("CP-NOSUCH", "x", 1, NULL, NULL, NULL, &e);

	EXPECT(out == NULL && e && e->domain == TRANSLIT_ERROR &&
	    strstr(e->message, "CP-NOSUCH") != NULL,
	    "an unknown codepage is an error naming it");
	g_clear_error(&e);
	out = translit_from_utf8("UTF-16", "x", 1, NULL, NULL, NULL, &e);
	EXPECT(out == NULL && e != NULL, "a multi-byte charset is not a codepage");
	g_clear_error(&e);
	out = translit_from_utf8("cp850", "é", 2, NULL, NULL, NULL, &e);
	EXPECT(out && (guchar)out[0] == 0x82, "codepage names are case-insensitive");
	g_free(out);
}

/* The same input under several locales gives the same bytes. */
static void
test_locale_independent(void)
{
	static const char *const locales[] = { "C", "C.UTF-8", "de_DE.UTF-8", "POSIX" };
	const char *text = "Grüße “€” Œ Łódź Αθήνα 東京 ß – … ½ e\xcc\x81 \xff";
	static const char *const cps[] = { "CP437", "CP850", "CP1252" };

	for (gsize c = 0; c < G_N_ELEMENTS(cps); c++) {
		char *first = NULL;
		gsize first_n = 0;
		guint first_tr = 0, first_lost = 0;

		for (gsize l = 0; l < G_N_ELEMENTS(locales); l++) {
			gsize n = 0;
			guint tr = 0, lost = 0;
			char *out;

			if (!setlocale(LC_ALL, locales[l]))
				continue;   /* de_DE.UTF-8 is often not installed */
			out = translit_from_utf8(cps[c], text, strlen(text), &n, &tr, &lost, NULL);
			if (!first) {
				first = out;
				first_n = n;
				first_tr = tr;
				first_lost = lost;
				continue;
			}
			EXPECT(n == first_n && memcmp(out, first, n) == 0 && tr == first_tr &&
			    lost == first_lost, "%s under %s: the same bytes and counts as under C",
			    cps[c], locales[l]);
			g_free(out);
		}
		g_free(first);
	}
	setlocale(LC_ALL, "C");
}

int
main(void)
{
	static const CuTest tests[] = {
		{ "ASCII is kept byte for byte", test_ascii_is_kept },
		{ "German: umlauts kept, euro spelled out where missing", test_german },
		{ "French: ligatures, dashes, ellipsis, apostrophes", test_french },
		{ "Polish letters lose their marks", test_polish },
		{ "Greek becomes Latin; CP437 keeps its own Greek", test_greek },
		{ "Cyrillic becomes Latin", test_cyrillic },
		{ "CJK and emoji are lost and counted", test_cjk_and_emoji_are_lost },
		{ "punctuation, spaces, compatibility forms", test_punctuation_and_spaces },
		{ "decomposed input is composed first", test_decomposed_input_is_composed },
		{ "invalid UTF-8 bytes count as lost", test_invalid_utf8_counts_as_lost },
		{ "a NUL is kept", test_nul_is_kept },
		{ "an unknown codepage is an error", test_unknown_codepage },
		{ "the same bytes under any locale", test_locale_independent },
		{ NULL, NULL },
	};

	return cu_run("translit", tests);
}
