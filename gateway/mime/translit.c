/* translit.c - UTF-8 into a postoffice codepage with counted transliteration
 * (see translit.h).
 *
 * The text is split into runs of valid UTF-8 (each put into Unicode NFC, so
 * that a decomposed "e" + U+0301 becomes the é a codepage may have) and
 * invalid bytes (each a lost character).  Every character then goes through
 * the first of these that works:
 *   1. the codepage has it: its byte;
 *   2. our table below (ASCII replacements, checked before decomposition so
 *      that ß gives "ss" and Œ "OE", not "?");
 *   3. canonical decomposition, one step at a time, while the dropped part is
 *      a combining mark: ế -> ê when the codepage has ê;
 *   4. full canonical, then compatibility, decomposition with the combining
 *      marks dropped, every remaining character through 1 or 2 (ä -> a,
 *      ² -> 2, ½ -> 1/2, ﬁ -> fi, a full-width Ａ -> A);
 *   5. '?', lost.
 * A combining mark left on its own after NFC is dropped (transliterated).
 * All of it is table-driven or GLib's Unicode data: no locale.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "codepage.h"
#include "mime/translit.h"

G_DEFINE_QUARK(postgate-translit-error-quark, translit_error)

/* Longest decomposition GLib produces (G_UNICHAR_MAX_DECOMPOSITION_LENGTH). */
#define TRANSLIT_MAX_DECOMP 18
/* Codepage names are at most this long (message.h, MSG_MAX_CODEPAGE_LEN). */
#define TRANSLIT_MAX_NAME 32

typedef struct {
	gunichar ch;
	const char *ascii;
} TranslitEntry;

/* Sorted by code point: bsearch. */
static const TranslitEntry table[] = {
	{ 0x00A0, " " },   { 0x00A1, "!" },   { 0x00A2, "c" },   { 0x00A3, "GBP" },
	{ 0x00A5, "JPY" }, { 0x00A6, "|" },   { 0x00A9, "(C)" }, { 0x00AA, "a" },
	{ 0x00AB, "<<" },  { 0x00AD, "" },    { 0x00AE, "(R)" }, { 0x00B1, "+/-" },
	{ 0x00B7, "." },   { 0x00BA, "o" },   { 0x00BB, ">>" },  { 0x00BF, "?" },
	{ 0x00C6, "AE" },  { 0x00D0, "D" },   { 0x00D7, "x" },   { 0x00D8, "O" },
	{ 0x00DE, "Th" },  { 0x00DF, "ss" },  { 0x00E6, "ae" },  { 0x00F0, "d" },
	{ 0x00F7, "/" },   { 0x00F8, "o" },   { 0x00FE, "th" },  { 0x0110, "D" },
	{ 0x0111, "d" },   { 0x0126, "H" },   { 0x0127, "h" },   { 0x0131, "i" },
	{ 0x0138, "k" },   { 0x0141, "L" },   { 0x0142, "l" },   { 0x0152, "OE" },
	{ 0x0153, "oe" },  { 0x0166, "T" },   { 0x0167, "t" },   { 0x0192, "f" },
	{ 0x02C6, "^" },   { 0x02DC, "~" },
	/* Greek (ELOT 743, simplified). */
	{ 0x0391, "A" },   { 0x0392, "V" },   { 0x0393, "G" },   { 0x0394, "D" },
	{ 0x0395, "E" },   { 0x0396, "Z" },   { 0x0397, "I" },   { 0x0398, "Th" },
	{ 0x0399, "I" },   { 0x039A, "K" },   { 0x039B, "L" },   { 0x039C, "M" },
	{ 0x039D, "N" },   { 0x039E, "X" },   { 0x039F, "O" },   { 0x03A0, "P" },
	{ 0x03A1, "R" },   { 0x03A3, "S" },   { 0x03A4, "T" },   { 0x03A5, "Y" },
	{ 0x03A6, "F" },   { 0x03A7, "Ch" },  { 0x03A8, "Ps" },  { 0x03A9, "O" },
	{ 0x03B1, "a" },   { 0x03B2, "v" },   { 0x03B3, "g" },   { 0x03B4, "d" },
	{ 0x03B5, "e" },   { 0x03B6, "z" },   { 0x03B7, "i" },   { 0x03B8, "th" },
	{ 0x03B9, "i" },   { 0x03BA, "k" },   { 0x03BB, "l" },   { 0x03BC, "m" },
	{ 0x03BD, "n" },   { 0x03BE, "x" },   { 0x03BF, "o" },   { 0x03C0, "p" },
	{ 0x03C1, "r" },   { 0x03C2, "s" },   { 0x03C3, "s" },   { 0x03C4, "t" },
	{ 0x03C5, "y" },   { 0x03C6, "f" },   { 0x03C7, "ch" },  { 0x03C8, "ps" },
	{ 0x03C9, "o" },
	/* Cyrillic (Russian, Ukrainian, Serbian; a simplified ISO 9 / BGN). */
	{ 0x0404, "Ye" },  { 0x0406, "I" },   { 0x0407, "Yi" },  { 0x0408, "J" },
	{ 0x0409, "Lj" },  { 0x040A, "Nj" },  { 0x040B, "C" },   { 0x040F, "Dz" },
	{ 0x0410, "A" },   { 0x0411, "B" },   { 0x0412, "V" },   { 0x0413, "G" },
	{ 0x0414, "D" },   { 0x0415, "E" },   { 0x0416, "Zh" },  { 0x0417, "Z" },
	{ 0x0418, "I" },   { 0x0419, "Y" },   { 0x041A, "K" },   { 0x041B, "L" },
	{ 0x041C, "M" },   { 0x041D, "N" },   { 0x041E, "O" },   { 0x041F, "P" },
	{ 0x0420, "R" },   { 0x0421, "S" },   { 0x0422, "T" },   { 0x0423, "U" },
	{ 0x0424, "F" },   { 0x0425, "Kh" },  { 0x0426, "Ts" },  { 0x0427, "Ch" },
	{ 0x0428, "Sh" },  { 0x0429, "Shch" },{ 0x042A, "" },    { 0x042B, "Y" },
	{ 0x042C, "'" },   { 0x042D, "E" },   { 0x042E, "Yu" },  { 0x042F, "Ya" },
	{ 0x0430, "a" },   { 0x0431, "b" },   { 0x0432, "v" },   { 0x0433, "g" },
	{ 0x0434, "d" },   { 0x0435, "e" },   { 0x0436, "zh" },  { 0x0437, "z" },
	{ 0x0438, "i" },   { 0x0439, "y" },   { 0x043A, "k" },   { 0x043B, "l" },
	{ 0x043C, "m" },   { 0x043D, "n" },   { 0x043E, "o" },   { 0x043F, "p" },
	{ 0x0440, "r" },   { 0x0441, "s" },   { 0x0442, "t" },   { 0x0443, "u" },
	{ 0x0444, "f" },   { 0x0445, "kh" },  { 0x0446, "ts" },  { 0x0447, "ch" },
	{ 0x0448, "sh" },  { 0x0449, "shch" },{ 0x044A, "" },    { 0x044B, "y" },
	{ 0x044C, "'" },   { 0x044D, "e" },   { 0x044E, "yu" },  { 0x044F, "ya" },
	{ 0x0454, "ye" },  { 0x0456, "i" },   { 0x0457, "yi" },  { 0x0458, "j" },
	{ 0x0459, "lj" },  { 0x045A, "nj" },  { 0x045B, "c" },   { 0x045F, "dz" },
	{ 0x0490, "G" },   { 0x0491, "g" },
	/* General punctuation. */
	{ 0x2000, " " },   { 0x2001, " " },   { 0x2002, " " },   { 0x2003, " " },
	{ 0x2004, " " },   { 0x2005, " " },   { 0x2006, " " },   { 0x2007, " " },
	{ 0x2008, " " },   { 0x2009, " " },   { 0x200A, " " },   { 0x200B, "" },
	{ 0x200C, "" },    { 0x200D, "" },    { 0x200E, "" },    { 0x200F, "" },
	{ 0x2010, "-" },   { 0x2011, "-" },   { 0x2012, "-" },   { 0x2013, "-" },
	{ 0x2014, "-" },   { 0x2015, "-" },   { 0x2018, "'" },   { 0x2019, "'" },
	{ 0x201A, "," },   { 0x201B, "'" },   { 0x201C, "\"" },  { 0x201D, "\"" },
	{ 0x201E, "\"" },  { 0x201F, "\"" },  { 0x2020, "+" },   { 0x2021, "+" },
	{ 0x2022, "*" },   { 0x2026, "..." }, { 0x2028, " " },   { 0x2029, " " },
	{ 0x202F, " " },   { 0x2030, "o/oo" },{ 0x2032, "'" },   { 0x2033, "\"" },
	{ 0x2039, "<" },   { 0x203A, ">" },   { 0x2044, "/" },   { 0x205F, " " },
	{ 0x2060, "" },    { 0x20AC, "EUR" }, { 0x20BD, "RUB" }, { 0x2122, "(TM)" },
	{ 0x2190, "<-" },  { 0x2192, "->" },  { 0x2194, "<->" }, { 0x21D0, "<=" },
	{ 0x21D2, "=>" },  { 0x2212, "-" },   { 0x2215, "/" },   { 0x2217, "*" },
	{ 0x2248, "~" },   { 0x2260, "!=" },  { 0x2264, "<=" },  { 0x2265, ">=" },
	{ 0x2500, "-" },   { 0x2502, "|" },   { 0x3000, " " },   { 0xFEFF, "" },
};

/* What one codepage holds: Unicode character -> its byte. */
typedef struct {
	gint16 low[0x100];      /* characters U+0000..U+00FF; -1: not in the codepage */
	GHashTable *high;       /* gunichar -> byte + 1, for the others */
} CpMap;

static GMutex cache_lock;
static GHashTable *cache;   /* upper-case codepage name -> CpMap */

static int
entry_cmp(const void *key, const void *elem)
{
	gunichar ch = *(const gunichar *)key;
	const TranslitEntry *e = elem;

	return ch < e->ch ? -1 : ch > e->ch ? 1 : 0;
}

static const char *
table_lookup(gunichar ch)
{
	const TranslitEntry *e = bsearch(&ch, table, G_N_ELEMENTS(table), sizeof table[0],
	    entry_cmp);

	return e ? e->ascii : NULL;
}

/* The byte of ch in the codepage, or -1. */
static int
cp_byte(const CpMap *m, gunichar ch)
{
	gpointer v;

	if (ch < 0x100)
		return m->low[ch];
	v = g_hash_table_lookup(m->high, GUINT_TO_POINTER(ch));
	return v ? (int)GPOINTER_TO_UINT(v) - 1 : -1;
}

static CpMap *
cp_map_build(const char *codepage, GError **error)
{
	CpMap *m;

	if (!cp_supported(codepage)) {
		g_set_error(error, TRANSLIT_ERROR, TRANSLIT_ERROR_CODEPAGE,
		    "codepage \"%s\" is not supported: name a single-byte, ASCII-compatible "
		    "codepage the system's iconv knows, such as CP437, CP850 or CP1252",
		    codepage);
		return NULL;
	}
	m = g_new0(CpMap, 1);
	m->high = g_hash_table_new(NULL, NULL);
	for (int i = 0; i < 0x100; i++)
		m->low[i] = -1;
	for (int b = 0; b < 0x100; b++) {
		char byte = (char)b;
		char *u = cp_to_utf8(codepage, &byte, 1, NULL);
		gunichar ch;

		if (!u)
			continue;
		ch = g_utf8_get_char_validated(u, -1);
		/* One defined character per byte; the first byte of a character wins. */
		if (ch != (gunichar)-1 && ch != (gunichar)-2 && ch != 0xFFFD &&
		    (*u == '\0' ? b == 0 : *g_utf8_next_char(u) == '\0') &&
		    cp_byte(m, ch) < 0) {
			if (ch < 0x100)
				m->low[ch] = (gint16)b;
			else
				g_hash_table_insert(m->high, GUINT_TO_POINTER(ch),
				    GUINT_TO_POINTER((guint)b + 1));
		}
		g_free(u);
	}
	return m;
}

/* The map of a codepage, built on first use and kept. */
static const CpMap *
cp_map_get(const char *codepage, GError **error)
{
	char key[TRANSLIT_MAX_NAME + 1];
	CpMap *m;

	if (!codepage || strlen(codepage) > TRANSLIT_MAX_NAME) {
		g_set_error(error, TRANSLIT_ERROR, TRANSLIT_ERROR_CODEPAGE,
		    "codepage name missing or longer than %d characters", TRANSLIT_MAX_NAME);
		return NULL;
	}
	for (gsize i = 0; ; i++) {
		key[i] = g_ascii_toupper(codepage[i]);
		if (!codepage[i])
			break;
	}
	g_mutex_lock(&cache_lock);
	if (!cache)
		cache = g_hash_table_new(g_str_hash, g_str_equal);
	m = g_hash_table_lookup(cache, key);
	if (!m) {
		m = cp_map_build(codepage, error);
		if (m)
			g_hash_table_insert(cache, g_strdup(key), m);
	}
	g_mutex_unlock(&cache_lock);
	return m;
}

/* Append ch as the codepage has it, or its table entry; FALSE when neither. */
static gboolean
put_simple(const CpMap *m, gunichar ch, GString *out)
{
	int b = cp_byte(m, ch);
	const char *t;

	if (b >= 0) {
		g_string_append_c(out, (char)b);
		return TRUE;
	}
	t = table_lookup(ch);
	if (t) {
		g_string_append(out, t);
		return TRUE;
	}
	return FALSE;
}

/* Steps 4: decomposition without marks, each piece kept or from the table. */
static gboolean
put_decomposed(const CpMap *m, gunichar ch, gboolean compat, GString *out)
{
	gunichar d[TRANSLIT_MAX_DECOMP];
	gsize n = g_unichar_fully_decompose(ch, compat, d, G_N_ELEMENTS(d));
	gsize mark = out->len;
	gboolean any = FALSE;

	if (n == 0 || (n == 1 && d[0] == ch))
		return FALSE;
	for (gsize i = 0; i < n; i++) {
		if (g_unichar_ismark(d[i]))
			continue;
		if (!put_simple(m, d[i], out)) {
			g_string_truncate(out, mark);
			return FALSE;
		}
		any = TRUE;
	}
	if (!any)
		g_string_truncate(out, mark);
	return any;
}

typedef enum { KEPT, TRANSLITERATED, LOST } Fate;

static Fate
put_char(const CpMap *m, gunichar ch, GString *out)
{
	gunichar cur = ch, a, b;
	int byte = cp_byte(m, ch);
	const char *t;

	if (byte >= 0) {
		g_string_append_c(out, (char)byte);
		return KEPT;
	}
	if (ch == 0xFFFD)
		goto lost;
	t = table_lookup(ch);
	if (t) {
		g_string_append(out, t);
		return TRANSLITERATED;
	}
	/* 3: drop the outermost marks while the base is not in the codepage. */
	while (g_unichar_decompose(cur, &a, &b) && b != 0 && g_unichar_ismark(b)) {
		cur = a;
		byte = cp_byte(m, cur);
		if (byte >= 0) {
			g_string_append_c(out, (char)byte);
			return TRANSLITERATED;
		}
	}
	if (put_decomposed(m, ch, FALSE, out) || put_decomposed(m, ch, TRUE, out))
		return TRANSLITERATED;
	/* A combining mark on its own: dropped. */
	if (g_unichar_ismark(ch))
		return TRANSLITERATED;
lost:
	g_string_append_c(out, '?');
	return LOST;
}

static void put_nfc(const CpMap *m, const char *text, gsize len, GString *out, guint *tr,
    guint *lost);
static void put_chars(const CpMap *m, const char *text, gsize len, GString *out, guint *tr,
    guint *lost);

/* Convert one run of valid UTF-8 without NUL, after NFC.  Line by line: a
 * line feed is a starter that composes with nothing, so normalising each
 * line alone gives what normalising the whole would; and a line of ASCII
 * is already NFC and the same bytes in every ASCII-compatible codepage
 * (cp_supported), so it is copied as it is. */
static void
put_run(const CpMap *m, const char *text, gsize len, GString *out, guint *tr, guint *lost)
{
	const char *p = text, *end = text + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl + 1 : end;
		gboolean ascii = TRUE;

		gboolean below_marks = TRUE;

		for (const char *q = p; ascii && q < eol; q++)
			ascii = (guchar)*q < 0x80;
		if (ascii) {
			g_string_append_len(out, p, eol - p);
			p = eol;
			continue;
		}
		/* Below U+0300 every character is NFC_Quick_Check=Yes and a
		 * starter (Unicode UAX #15): such a line is NFC already. */
		for (const char *q = p; below_marks && q < eol; q = g_utf8_next_char(q))
			below_marks = g_utf8_get_char(q) < 0x300;
		if (below_marks)
			put_chars(m, p, (gsize)(eol - p), out, tr, lost);
		else
			put_nfc(m, p, (gsize)(eol - p), out, tr, lost);
		p = eol;
	}
}

/* One piece of valid UTF-8 without NUL, normalised to NFC, then converted. */
static void
put_nfc(const CpMap *m, const char *text, gsize len, GString *out, guint *tr, guint *lost)
{
	char *nfc = g_utf8_normalize(text, (gssize)len, G_NORMALIZE_NFC);

	if (nfc)
		put_chars(m, nfc, strlen(nfc), out, tr, lost);
	else
		put_chars(m, text, len, out, tr, lost);
	g_free(nfc);
}

/* One piece of valid UTF-8 in NFC, character by character. */
static void
put_chars(const CpMap *m, const char *text, gsize len, GString *out, guint *tr, guint *lost)
{
	const char *p = text;
	const char *end = text + len;

	while (p < end) {
		gunichar ch = g_utf8_get_char(p);

		switch (put_char(m, ch, out)) {
		case KEPT:
			break;
		case TRANSLITERATED:
			(*tr)++;
			break;
		case LOST:
			(*lost)++;
			break;
		}
		p = g_utf8_next_char(p);
	}
}

char *
translit_from_utf8(const char *codepage, const char *text, gsize len, gsize *out_len,
    guint *transliterated, guint *lost, GError **error)
{
	const CpMap *m = cp_map_get(codepage, error);
	GString *out;
	guint tr = 0, lo = 0;
	gsize i = 0;

	if (!m)
		return NULL;
	out = g_string_sized_new(len + 1);
	while (i < len) {
		gsize start = i;
		const char *bad;

		/* The longest valid run without NUL from here. */
		g_utf8_validate(text + i, (gssize)(len - i), &bad);
		i = (gsize)(bad - text);
		if (i > start)
			put_run(m, text + start, i - start, out, &tr, &lo);
		if (i >= len)
			break;
		if (text[i] == '\0') {
			int b = cp_byte(m, 0);
			g_string_append_c(out, (char)(b >= 0 ? b : 0));
		} else {
			g_string_append_c(out, '?');
			lo++;
		}
		i++;
	}
	if (out_len)
		*out_len = out->len;
	if (transliterated)
		*transliterated = tr;
	if (lost)
		*lost = lo;
	return g_string_free(out, FALSE);
}
