/* bench_bundle_codec.c - throughput of the bundle codec on realistic mail.
 *
 * Owns: generating a deterministic mix of legacy messages (fixed PRNG seed),
 * grouping them into bundles of a few MB like a real batch, and timing the
 * three paths a postoffice and the gateway run:
 *   encode  bundle_add_message (msg_encode) + bundle_encode, bytes discarded;
 *   write   bundle_add_message + bundle_write (encode + the atomic write
 *           helper: temporary name, fsync, rename, fsync of the directory);
 *   read    readdir + bundle_read_file (length .. HMAC, CRC, inflate, every
 *           entry validated) + bundle_message of every entry.
 * Throughput is uncompressed payload bytes per second (MB = 10^6 bytes).
 * It also writes DIR/payload, the exact bytes the codec compresses (per
 * bundle: for each entry 1 kind byte, u32 big-endian length, the entry),
 * so that tests/bench/bundle-codec can time gzip on the same bytes, and it
 * times raw zlib compress2/uncompress2 on the same per-bundle payloads as a
 * reference.  Output: key=value lines on stdout.
 * Never: judge the figures (the script does), or run as a test.
 *
 * Usage: bench_bundle_codec [-l LEVEL] [-r RUNS] [-b BUNDLE_MB] [-s SEED] DIR [MB]
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "bundle.h"
#include "codepage.h"
#include "message.h"

#define MB 1000000.0
#define SOURCE_PO "CORP/HQ"
#define DEST_PO "CORP/GW"
#define BASE_TIME ((gint64)1700000000)

/* ---- deterministic PRNG: xoshiro256** seeded by splitmix64 -------------- */

typedef struct {
	guint64 s[4];
} Rng;

static guint64
splitmix64(guint64 *x)
{
	guint64 z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void
rng_seed(Rng *r, guint64 seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

static guint64
rotl(guint64 x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static guint64
rng_next(Rng *r)
{
	guint64 *s = r->s;
	guint64 result = rotl(s[1] * 5, 7) * 9;
	guint64 t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

/* A number in [0, n). */
static guint32
rng_below(Rng *r, guint32 n)
{
	return (guint32)(((rng_next(r) >> 32) * (guint64)n) >> 32);
}

/* A number in [lo, hi]. */
static guint32
rng_range(Rng *r, guint32 lo, guint32 hi)
{
	return lo + rng_below(r, hi - lo + 1);
}

/* TRUE with probability pct percent. */
static gboolean
rng_pct(Rng *r, guint32 pct)
{
	return rng_below(r, 100) < pct;
}

/* Roughly log-uniform in [lo, hi]: pick an octave, then a point in it. */
static size_t
rng_logsize(Rng *r, size_t lo, size_t hi)
{
	guint32 octaves = 0;
	size_t base, v;

	for (size_t x = lo; x * 2 <= hi; x *= 2)
		octaves++;
	if (octaves == 0)
		return lo + rng_below(r, (guint32)(hi - lo + 1));
	base = lo << rng_below(r, octaves);
	v = base + rng_below(r, (guint32)base);
	return v > hi ? hi : v;
}

static void
rng_fill(Rng *r, guint8 *p, size_t n)
{
	while (n >= 8) {
		guint64 v = rng_next(r);
		memcpy(p, &v, 8);
		p += 8;
		n -= 8;
	}
	if (n) {
		guint64 v = rng_next(r);
		memcpy(p, &v, n);
	}
}

/* ---- vocabulary ---------------------------------------------------------- */

/* Most frequent first: word i is drawn with weight 1/(i+1) (Zipf). */
static const char *const vocab_utf8[] = {
	"the", "der", "de", "und", "and", "la", "die", "to", "et", "of", "le", "in",
	"für", "à", "for", "das", "we", "les", "is", "en", "que", "mit", "please",
	"y", "des", "Sie", "ist", "el", "on", "nicht", "über", "pour", "with", "wir",
	"est", "a", "une", "bitte", "be", "el", "dass", "sur", "this", "auf", "des",
	"will", "von", "par", "are", "zu", "pas", "you", "den", "para", "have", "Ihre",
	"été", "order", "Bestellung", "commande", "pedido", "delivery", "Lieferung",
	"livraison", "entrega", "invoice", "Rechnung", "facture", "factura", "meeting",
	"Besprechung", "réunion", "reunión", "report", "Bericht", "rapport", "informe",
	"attached", "anbei", "ci-joint", "adjunto", "regards", "Grüße", "salutations",
	"saludos", "thanks", "Danke", "merci", "gracias", "customer", "Kunde", "client",
	"cliente", "price", "Preis", "prix", "precio", "week", "Woche", "semaine",
	"semana", "Monday", "Montag", "lundi", "lunes", "Größe", "Änderung", "déjà",
	"très", "où", "même", "après", "prévu", "reçu", "société", "référence",
	"numéro", "délai", "problème", "qualité", "prochaine", "été", "señor", "año",
	"mañana", "también", "información", "después", "está", "según", "España",
	"pequeño", "müssen", "können", "würden", "Straße", "Maßnahmen", "Prüfung",
	"Qualität", "Gebäude", "zurück", "gemäß", "Kündigung", "Empfänger",
	"Verfügung", "Lösung", "Zuständigkeit", "Schlüssel", "Übersicht", "Büro",
	"Geschäftsführer", "Abteilungsleiter", "Stück", "Menge", "Lager", "Termin",
	"Angebot", "Auftrag", "Versand", "Zahlung", "Mahnung", "Konto", "Überweisung",
	"Bankverbindung", "München", "Zürich", "Köln", "Düsseldorf", "Genève",
	"Besançon", "Málaga", "Córdoba", "Århus", "Malmö", "København", "Søren",
	"garçon", "Noël", "naïf", "cœur", "fenêtre", "hôpital", "côté", "août",
	"élève", "dépôt", "être", "intéressé", "égal", "déménagement", "reçue",
	"ça", "voilà", "crème", "brûlée", "façade", "piñata", "niño", "¿", "¡",
	"shipment", "warehouse", "contract", "budget", "quarter", "forecast",
	"approval", "signature", "department", "manager", "schedule", "deadline",
	"project", "update", "review", "draft", "final", "version", "agenda",
	"minutes", "conference", "travel", "expenses", "receipt", "reimbursement",
	"account", "payment", "balance", "statement", "transfer", "reference",
	"number", "quantity", "unit", "item", "stock", "supplier", "vendor",
	"purchase", "request", "confirm", "confirmation", "cancel", "change",
	"address", "phone", "office", "building", "room", "floor", "parking",
	"holiday", "vacation", "sick", "leave", "training", "course", "certificate",
	"safety", "inspection", "maintenance", "repair", "spare", "parts", "machine",
	"line", "production", "plant", "quality", "audit", "ISO", "9001",
	"customs", "export", "import", "tariff", "freight", "carrier", "pallet",
	"container", "Hamburg", "Rotterdam", "Le Havre", "Barcelona", "Milano",
	"network", "server", "printer", "password", "backup", "tape", "disk",
	"upgrade", "software", "licence", "Lizenz", "licencia", "logiciel",
	"€", "°C", "±", "½", "§", "µm", "©", "®", "Fa.", "z.Hd.", "Mme", "M.",
	"Sr.", "Sra.", "Dr.", "Prof.", "ca.", "usw.", "etc.", "p.ex.", "ggf.",
};
#define N_VOCAB G_N_ELEMENTS(vocab_utf8)

typedef struct {
	const char *utf8;
	const char *ascii;
} NamePair;

static const NamePair first_names[] = {
	{ "José", "JOSE" }, { "Jürgen", "JUERGEN" }, { "François", "FRANCOIS" },
	{ "Hélène", "HELENE" }, { "Björn", "BJOERN" }, { "Søren", "SOREN" },
	{ "Zoë", "ZOE" }, { "Anaïs", "ANAIS" }, { "Ángel", "ANGEL" },
	{ "Renée", "RENEE" }, { "Jörg", "JOERG" }, { "Mónica", "MONICA" },
	{ "Günther", "GUENTHER" }, { "Loïc", "LOIC" }, { "Inés", "INES" },
	{ "Maria", "MARIA" }, { "Peter", "PETER" }, { "John", "JOHN" },
	{ "Anna", "ANNA" }, { "Thomas", "THOMAS" }, { "Claire", "CLAIRE" },
	{ "Sven", "SVEN" }, { "Ingrid", "INGRID" }, { "Paolo", "PAOLO" },
	{ "Lucía", "LUCIA" }, { "Dörte", "DOERTE" }, { "Åsa", "ASA" },
	{ "Chloé", "CHLOE" }, { "Michael", "MICHAEL" }, { "Sabine", "SABINE" },
};

static const NamePair last_names[] = {
	{ "Müller", "MUELLER" }, { "Schäfer", "SCHAEFER" }, { "Lefèvre", "LEFEVRE" },
	{ "García", "GARCIA" }, { "Núñez", "NUNEZ" }, { "Østergaard", "OSTERGAARD" },
	{ "Dubois", "DUBOIS" }, { "Schröder", "SCHROEDER" }, { "Jäger", "JAEGER" },
	{ "Martín", "MARTIN" }, { "Köhler", "KOEHLER" }, { "Béranger", "BERANGER" },
	{ "Fernández", "FERNANDEZ" }, { "Weiß", "WEISS" }, { "Groß", "GROSS" },
	{ "Smith", "SMITH" }, { "Johnson", "JOHNSON" }, { "Brown", "BROWN" },
	{ "Rossi", "ROSSI" }, { "Andersson", "ANDERSSON" }, { "Lindström", "LINDSTROM" },
	{ "Mercier", "MERCIER" }, { "Fournier", "FOURNIER" }, { "Peña", "PENA" },
	{ "Hoffmann", "HOFFMANN" }, { "Bäcker", "BAECKER" }, { "Renard", "RENARD" },
	{ "Ibáñez", "IBANEZ" }, { "Kowalski", "KOWALSKI" }, { "Nguyen", "NGUYEN" },
	{ "Wagner", "WAGNER" }, { "Becker", "BECKER" }, { "Châtelet", "CHATELET" },
	{ "Dvořák", "DVORAK" }, { "Łukasz", "LUKASZ" }, { "O'Brien", "OBRIEN" },
};

static const char *const legacy_pos[] = { "CORP/HQ", "CORP/SALES", "CORP/PLANT1", "CORP/LAB" };

/* One codepage: the vocabulary and the names converted into it. */
typedef struct {
	const char *name;
	GPtrArray *words;      /* char *, in the codepage */
	GArray *word_lens;     /* size_t */
	GPtrArray *firsts;     /* char * */
	GPtrArray *lasts;      /* char * */
} Codepage;

static double zipf_cum[N_VOCAB];

static void
die(const char *what, GError *e)
{
	fprintf(stderr, "bench_bundle_codec: %s: %s\n", what, e ? e->message : g_strerror(errno));
	exit(1);
}

static char *
conv(const char *cp, const char *utf8, size_t *out_len)
{
	GError *e = NULL;
	size_t n = 0;
	char *s = cp_from_utf8(cp, utf8, strlen(utf8), &n, &e);

	if (!s)
		die("cp_from_utf8", e);
	if (out_len)
		*out_len = n;
	return s;
}

static void
codepage_init(Codepage *c, const char *name)
{
	c->name = name;
	c->words = g_ptr_array_new_with_free_func(g_free);
	c->word_lens = g_array_new(FALSE, FALSE, sizeof(size_t));
	c->firsts = g_ptr_array_new_with_free_func(g_free);
	c->lasts = g_ptr_array_new_with_free_func(g_free);
	for (size_t i = 0; i < N_VOCAB; i++) {
		size_t n;
		g_ptr_array_add(c->words, conv(name, vocab_utf8[i], &n));
		g_array_append_val(c->word_lens, n);
	}
	for (size_t i = 0; i < G_N_ELEMENTS(first_names); i++)
		g_ptr_array_add(c->firsts, conv(name, first_names[i].utf8, NULL));
	for (size_t i = 0; i < G_N_ELEMENTS(last_names); i++)
		g_ptr_array_add(c->lasts, conv(name, last_names[i].utf8, NULL));
}

static void
zipf_init(void)
{
	double sum = 0;

	for (size_t i = 0; i < N_VOCAB; i++) {
		sum += 1.0 / (double)(i + 1);
		zipf_cum[i] = sum;
	}
	for (size_t i = 0; i < N_VOCAB; i++)
		zipf_cum[i] /= sum;
}

static guint
zipf_word(Rng *r)
{
	double u = (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
	guint lo = 0, hi = N_VOCAB - 1;

	while (lo < hi) {
		guint mid = (lo + hi) / 2;
		if (zipf_cum[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* ---- text ---------------------------------------------------------------- */

static void
append_word(GString *s, Rng *r, const Codepage *cp, gboolean capital)
{
	guint w = zipf_word(r);
	const char *word = cp->words->pdata[w];
	size_t n = g_array_index(cp->word_lens, size_t, w);
	size_t at = s->len;

	g_string_append_len(s, word, (gssize)n);
	if (capital && s->str[at] >= 'a' && s->str[at] <= 'z')
		s->str[at] = (char)(s->str[at] - 'a' + 'A');
}

static void
append_number(GString *s, Rng *r)
{
	switch (rng_below(r, 5)) {
	case 0:
		g_string_append_printf(s, "%u.%03u,%02u EUR", rng_below(r, 90) + 1,
		    rng_below(r, 1000), rng_below(r, 100));
		break;
	case 1:
		g_string_append_printf(s, "%02u.%02u.%u", rng_range(r, 1, 28),
		    rng_range(r, 1, 12), rng_range(r, 1994, 2003));
		break;
	case 2:
		g_string_append_printf(s, "PO-%06u", rng_below(r, 1000000));
		break;
	case 3:
		g_string_append_printf(s, "%u", rng_below(r, 500));
		break;
	default:
		g_string_append_printf(s, "+49 89 %04u-%03u", rng_below(r, 10000),
		    rng_below(r, 1000));
		break;
	}
}

/* One sentence of 4 to 18 words. */
static void
append_sentence(GString *s, Rng *r, const Codepage *cp)
{
	guint n = rng_range(r, 4, 18);
	static const char ends[] = "....?!";

	for (guint i = 0; i < n; i++) {
		if (i)
			g_string_append_c(s, rng_pct(r, 8) ? ',' : ' ');
		if (i && s->str[s->len - 1] == ',')
			g_string_append_c(s, ' ');
		if (i && rng_pct(r, 4))
			append_number(s, r);
		else
			append_word(s, r, cp, i == 0);
	}
	g_string_append_c(s, ends[rng_below(r, sizeof ends - 1)]);
}

/* Wrap text at 72 columns into out, each line starting with prefix, CRLF. */
static void
append_wrapped(GString *out, const char *text, size_t len, const char *prefix)
{
	size_t start = 0;

	while (start < len) {
		size_t end = start + 72 < len ? start + 72 : len;
		if (end < len) {
			size_t sp = end;
			while (sp > start && text[sp] != ' ')
				sp--;
			if (sp > start)
				end = sp;
		}
		g_string_append(out, prefix);
		g_string_append_len(out, text + start, (gssize)(end - start));
		g_string_append(out, "\r\n");
		start = end;
		while (start < len && text[start] == ' ')
			start++;
	}
}

static void
append_paragraph(GString *out, Rng *r, const Codepage *cp, const char *prefix)
{
	GString *p = g_string_new(NULL);
	guint n = rng_range(r, 1, 6);

	for (guint i = 0; i < n; i++) {
		if (i)
			g_string_append_c(p, ' ');
		append_sentence(p, r, cp);
	}
	append_wrapped(out, p->str, p->len, prefix);
	g_string_append(out, prefix);
	g_string_append(out, "\r\n");
	g_string_free(p, TRUE);
}

/* A small table, as people paste into mail: items, quantities, prices. */
static void
append_table(GString *out, Rng *r, const Codepage *cp, const char *prefix)
{
	guint rows = rng_range(r, 3, 25);

	g_string_append_printf(out, "%sPos  Art.-Nr.   %-24s  Menge     Preis\r\n", prefix,
	    "Bezeichnung");
	for (guint i = 0; i < rows; i++) {
		GString *d = g_string_new(NULL);
		append_word(d, r, cp, TRUE);
		g_string_append_c(d, ' ');
		append_word(d, r, cp, FALSE);
		if (d->len > 24)
			g_string_truncate(d, 24);
		g_string_append_printf(out, "%s%3u  %08u  %-24s  %5u  %6u,%02u\r\n", prefix, i + 1,
		    rng_below(r, 100000000), d->str, rng_range(r, 1, 500), rng_below(r, 5000),
		    rng_below(r, 100));
		g_string_free(d, TRUE);
	}
	g_string_append_printf(out, "%s\r\n", prefix);
}

typedef struct {
	guint first, last;     /* indexes into first_names, last_names */
	char mailbox[11];
	const char *po;
} User;

#define N_USERS 400
static User users[N_USERS];

static void
users_init(Rng *r)
{
	for (guint i = 0; i < N_USERS; i++) {
		User *u = &users[i];
		u->first = rng_below(r, G_N_ELEMENTS(first_names));
		u->last = rng_below(r, G_N_ELEMENTS(last_names));
		g_snprintf(u->mailbox, sizeof u->mailbox, "%c%.6s%03u",
		    first_names[u->first].ascii[0], last_names[u->last].ascii, i);
		u->po = legacy_pos[i < N_USERS / 2 ? 0 : rng_below(r, G_N_ELEMENTS(legacy_pos))];
	}
}

static char *
user_display(const Codepage *cp, const User *u)
{
	return g_strdup_printf("%s %s", (const char *)cp->firsts->pdata[u->first],
	    (const char *)cp->lasts->pdata[u->last]);
}

static void
append_signature(GString *out, const Codepage *cp, const User *u, Rng *r)
{
	char *name = user_display(cp, u);

	g_string_append_printf(out, "-- \r\n%s\r\n", name);
	append_word(out, r, cp, TRUE);
	g_string_append_printf(out, " / %s\r\nExample Corp. GmbH, ", u->po);
	append_word(out, r, cp, TRUE);
	g_string_append(out, "\r\nTel. ");
	append_number(out, r);
	g_string_append(out, "\r\n");
	g_free(name);
}

/* A body of about target bytes: greeting, paragraphs, maybe a table or a
 * quoted earlier message, a signature. */
static GBytes *
make_body(Rng *r, const Codepage *cp, const User *from, const User *to, size_t target)
{
	GString *b = g_string_sized_new(target + 512);
	gboolean reply = rng_pct(r, 35);
	size_t main_target = reply ? target / 2 : target;
	char *name = user_display(cp, to);
	size_t n;
	static const char *const hello[] = { "Dear", "Hallo", "Bonjour", "Hola",
		"Sehr geehrte(r)" };

	g_string_append_printf(b, "%s %s,\r\n\r\n", hello[rng_below(r, G_N_ELEMENTS(hello))],
	    name);
	while (b->len < main_target) {
		if (rng_pct(r, 6))
			append_table(b, r, cp, "");
		else
			append_paragraph(b, r, cp, "");
	}
	append_signature(b, cp, from, r);
	if (reply) {
		const char *prefix = rng_pct(r, 50) ? "> " : "";
		g_string_append_printf(b, "\r\n-----Original Message-----\r\nFrom: %s\r\n"
		    "Sent: %02u.%02u.%u %02u:%02u\r\nSubject: ", name, rng_range(r, 1, 28),
		    rng_range(r, 1, 12), rng_range(r, 1998, 2003), rng_below(r, 24),
		    rng_below(r, 60));
		append_word(b, r, cp, TRUE);
		g_string_append(b, "\r\n\r\n");
		while (b->len < target) {
			if (rng_pct(r, 6))
				append_table(b, r, cp, prefix);
			else
				append_paragraph(b, r, cp, prefix);
		}
		append_signature(b, cp, to, r);
	}
	g_free(name);
	n = b->len;
	return g_bytes_new_take(g_string_free(b, FALSE), n);
}

/* ---- attachments ---------------------------------------------------------- */

typedef enum { ATT_RANDOM, ATT_PDF, ATT_OFFICE, ATT_TEXT, ATT_KINDS } AttKind;
static const char *const att_kind_names[ATT_KINDS] = { "random", "pdf", "office", "text" };

/* JPEG, ZIP or TIFF-like: a recognisable header, then incompressible bytes. */
static GBytes *
make_random_att(Rng *r, size_t size, char **name, guint id)
{
	guint8 *d = g_malloc(size);
	static const struct {
		const char *bytes;
		size_t len;
	} hdr[] = {
		{ "\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x48", 16 },
		{ "PK\x03\x04\x14\x00\x00\x00\x08\x00", 10 },
		{ "\xff\xd8\xff\xe1\x1f\xfe" "Exif\x00\x00II*\x00", 16 },
	};
	guint k = rng_below(r, G_N_ELEMENTS(hdr));

	rng_fill(r, d, size);
	memcpy(d, hdr[k].bytes, hdr[k].len < size ? hdr[k].len : size);
	switch (k) {
	case 0: *name = g_strdup_printf("IMG_%04u.JPG", id % 10000); break;
	case 1: *name = g_strdup_printf("archiv_%u.zip", id); break;
	default: *name = g_strdup_printf("scan%04u.jpg", id % 10000); break;
	}
	return g_bytes_new_take(d, size);
}

/* PDF-like: object dictionaries, uncompressed text content streams, some
 * deflated streams or embedded images (incompressible), an xref table. */
static GBytes *
make_pdf_att(Rng *r, const Codepage *cp1252, size_t size, char **name, guint id)
{
	GString *s = g_string_sized_new(size + 65536);
	GArray *offsets = g_array_new(FALSE, FALSE, sizeof(guint32));
	guint obj = 0;
	size_t len;
	static const char *const base[] = { "Angebot", "Rechnung", "facture", "report",
		"Datenblatt" };

	g_string_append(s, "%PDF-1.4\n%\xe2\xe3\xcf\xd3\n");
	while (s->len < size) {
		guint32 off = (guint32)s->len;
		g_array_append_val(offsets, off);
		obj++;
		g_string_append_printf(s, "%u 0 obj\n<< /Type /Page /Parent 2 0 R /Resources "
		    "<< /Font << /F1 4 0 R /F2 5 0 R >> /ProcSet [/PDF /Text /ImageC] >> "
		    "/MediaBox [0 0 595 842] /Contents %u 0 R >>\nendobj\n", obj, obj + 1);
		off = (guint32)s->len;
		g_array_append_val(offsets, off);
		obj++;
		if (rng_pct(r, 20)) {
			/* A deflated content stream or an image: random bytes. */
			size_t n = rng_logsize(r, 2048, 32768);
			size_t at;
			g_string_append_printf(s, "%u 0 obj\n<< /Length %zu /Filter %s >>\nstream\n",
			    obj, n, rng_pct(r, 50) ? "/FlateDecode" : "/DCTDecode /Subtype /Image "
			    "/Width 640 /Height 480 /BitsPerComponent 8 /ColorSpace /DeviceRGB");
			at = s->len;
			g_string_set_size(s, at + n);
			rng_fill(r, (guint8 *)s->str + at, n);
		} else {
			GString *c = g_string_new(NULL);
			guint lines = rng_range(r, 30, 90);
			for (guint i = 0; i < lines; i++) {
				g_string_append_printf(c, "BT /F%u %u Tf %u %u Td (", rng_range(r, 1, 2),
				    rng_range(r, 9, 12), rng_range(r, 50, 80), 800 - i * 12);
				for (guint w = rng_range(r, 5, 14); w > 0; w--) {
					append_word(c, r, cp1252, FALSE);
					g_string_append_c(c, ' ');
				}
				g_string_append(c, ") Tj ET\n");
			}
			g_string_append_printf(s, "%u 0 obj\n<< /Length %zu >>\nstream\n", obj, c->len);
			g_string_append_len(s, c->str, (gssize)c->len);
			g_string_free(c, TRUE);
		}
		g_string_append(s, "\nendstream\nendobj\n");
	}
	g_string_append_printf(s, "xref\n0 %u\n0000000000 65535 f \n", obj + 1);
	for (guint i = 0; i < offsets->len; i++)
		g_string_append_printf(s, "%010u 00000 n \n", g_array_index(offsets, guint32, i));
	g_string_append_printf(s, "trailer\n<< /Size %u /Root 1 0 R >>\nstartxref\n%zu\n%%%%EOF\n",
	    obj + 1, s->len);
	g_array_free(offsets, TRUE);
	*name = g_strdup_printf("%s_%u.pdf", base[rng_below(r, G_N_ELEMENTS(base))], id);
	len = s->len;
	return g_bytes_new_take(g_string_free(s, FALSE), len);
}

static void
put_le16(GString *s, guint v)
{
	g_string_append_c(s, (char)(v & 0xff));
	g_string_append_c(s, (char)(v >> 8 & 0xff));
}

static void
put_le32(GString *s, guint32 v)
{
	put_le16(s, v & 0xffff);
	put_le16(s, v >> 16);
}

/* Old binary office file (OLE compound document): 512-byte sectors of
 * UTF-16LE text, BIFF-like records, zero padding, FAT chains, and now and
 * then an embedded picture. */
static GBytes *
make_office_att(Rng *r, const Codepage *cp1252, size_t size, char **name, guint id)
{
	GString *s = g_string_sized_new(size + 8192);
	static const char *const base[] = { "Bericht", "Umsatz", "offre", "Protokoll",
		"presupuesto" };
	guint k = rng_below(r, G_N_ELEMENTS(base));
	gboolean xls = k == 1 || k == 4;
	size_t len;

	g_string_append_len(s, "\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", 8);
	g_string_set_size(s, 512);
	memset(s->str + 8, 0, 504);
	s->str[0x18] = 0x3e;
	s->str[0x1a] = 0x03;
	s->str[0x1c] = (char)0xfe;
	s->str[0x1d] = (char)0xff;
	s->str[0x1e] = 0x09;
	while (s->len < size) {
		guint kind = rng_below(r, 100);
		size_t start = s->len;
		if (kind < 40 && !xls) {
			/* Text, UTF-16LE. */
			GString *t = g_string_new(NULL);
			while (t->len < 1024) {
				append_sentence(t, r, cp1252);
				g_string_append(t, " ");
			}
			for (size_t i = 0; i < t->len; i++) {
				g_string_append_c(s, t->str[i]);
				g_string_append_c(s, '\0');
			}
			g_string_free(t, TRUE);
		} else if (kind < 70) {
			/* Records: type, length, small numbers and IEEE doubles. */
			guint n = rng_range(r, 8, 40);
			for (guint i = 0; i < n; i++) {
				guint type = xls ? 0x0203 : 0x0010 + rng_below(r, 8);
				double v = (double)rng_below(r, 100000) / 100.0;
				guint64 bits;
				memcpy(&bits, &v, 8);
				put_le16(s, type);
				put_le16(s, 14);
				put_le16(s, rng_below(r, 2000));
				put_le16(s, rng_below(r, 40));
				put_le16(s, 0x0f);
				put_le32(s, (guint32)bits);
				put_le32(s, (guint32)(bits >> 32));
			}
		} else if (kind < 85) {
			/* FAT sector: chains of sector numbers. */
			guint32 first = (guint32)(s->len / 512);
			for (guint i = 0; i < 128; i++)
				put_le32(s, rng_pct(r, 95) ? first + i + 1 : 0xfffffffeu);
		} else if (kind < 98) {
			/* Zero padding and property sets. */
			size_t n = 512u * rng_range(r, 1, 4);
			size_t at = s->len;
			g_string_set_size(s, at + n);
			memset(s->str + at, 0, n);
			g_string_append_len(s, "\x05\x00S\x00u\x00m\x00m\x00" "a\x00r\x00y\x00"
			    "I\x00n\x00" "f\x00o\x00", 24);
		} else {
			/* An embedded picture. */
			size_t n = rng_logsize(r, 4096, 65536);
			size_t at = s->len;
			g_string_set_size(s, at + n);
			rng_fill(r, (guint8 *)s->str + at, n);
		}
		/* Pad to the sector size. */
		if ((s->len - start) % 512) {
			size_t pad = 512 - (s->len - start) % 512;
			size_t at = s->len;
			g_string_set_size(s, at + pad);
			memset(s->str + at, 0, pad);
		}
	}
	*name = g_strdup_printf("%s_%u.%s", base[k], id, xls ? "xls" : "doc");
	len = s->len;
	return g_bytes_new_take(g_string_free(s, FALSE), len);
}

/* A CSV export in the message's codepage. */
static GBytes *
make_text_att(Rng *r, const Codepage *cp, size_t size, char **name, guint id)
{
	GString *s = g_string_sized_new(size + 256);
	size_t len;

	g_string_append(s, "Nr;Name;Vorname;Strasse;PLZ;Ort;Betrag;Datum\r\n");
	while (s->len < size) {
		g_string_append_printf(s, "%u;%s;%s;", rng_below(r, 1000000),
		    (const char *)cp->lasts->pdata[rng_below(r, cp->lasts->len)],
		    (const char *)cp->firsts->pdata[rng_below(r, cp->firsts->len)]);
		append_word(s, r, cp, TRUE);
		g_string_append_printf(s, " %u;%05u;", rng_range(r, 1, 200), rng_below(r, 100000));
		append_word(s, r, cp, TRUE);
		g_string_append_printf(s, ";%u,%02u;%02u.%02u.%u\r\n", rng_below(r, 100000),
		    rng_below(r, 100), rng_range(r, 1, 28), rng_range(r, 1, 12),
		    rng_range(r, 1995, 2003));
	}
	*name = rng_pct(r, 50) ? g_strdup_printf("liste_%u.csv", id) :
	    g_strdup_printf("export_%u.txt", id);
	len = s->len;
	return g_bytes_new_take(g_string_free(s, FALSE), len);
}

/* ---- messages ------------------------------------------------------------- */

typedef struct {
	guint64 body;
	guint64 att[ATT_KINDS];
	guint with_att;
	guint atts;
} Mix;

static char *
legacy_addr(const User *u)
{
	return g_strdup_printf("%s/%s", u->po, u->mailbox);
}

static LegacyMessage *
make_message(Rng *r, Codepage *cps, guint n, Mix *mix)
{
	LegacyMessage *m = msg_new();
	guint pick = rng_below(r, 100);
	Codepage *cp = &cps[pick < 45 ? 1 : pick < 65 ? 0 : 2];   /* CP850, CP437, CP1252 */
	const User *from = &users[rng_below(r, N_USERS / 2)];     /* HQ users */
	const User *first_to = NULL;
	guint nrcpt = 1 + (rng_pct(r, 50) ? 0 : rng_range(r, 1, rng_pct(r, 80) ? 4 : 12));
	guint nto = nrcpt > 1 ? rng_range(r, 1, nrcpt) : 1;
	size_t body_size;
	GString *subj;

	m->id = g_strdup_printf("CORP.HQ.%08X.%06u", (guint)(BASE_TIME & 0xffffffff), n);
	m->priority = rng_pct(r, 90) ? MSG_PRIORITY_NORMAL :
	    rng_pct(r, 50) ? MSG_PRIORITY_HIGH : MSG_PRIORITY_LOW;
	m->submit_time = BASE_TIME + n * 7;
	m->requests = rng_pct(r, 10) ? MSG_REQ_RECEIPT : 0;
	m->originator.addr = legacy_addr(from);
	m->originator.name = user_display(cp, from);
	m->codepage = g_strdup(cp->name);
	m->from.addr = g_strdup(m->originator.addr);
	m->from.name = g_strdup(m->originator.name);
	for (guint i = 0; i < nrcpt; i++) {
		const User *u = &users[rng_below(r, N_USERS)];
		char *addr, *name = user_display(cp, u);
		if (rng_pct(r, 30)) {
			char *local = g_ascii_strdown(first_names[u->first].ascii, -1);
			char *ln = g_ascii_strdown(last_names[u->last].ascii, -1);
			addr = g_strdup_printf("SMTP:%s.%s@partner%u.example.com", local, ln,
			    rng_below(r, 40));
			g_free(local);
			g_free(ln);
		} else {
			addr = legacy_addr(u);
		}
		if (!first_to)
			first_to = u;
		msg_add_recipient(m, addr, name, strncmp(addr, "CORP/HQ/", 8) != 0);
		msg_add_party(i < nto ? m->to : m->cc, addr, name);
		g_free(addr);
		g_free(name);
	}
	msg_add_hop(m, SOURCE_PO, m->submit_time);
	if (rng_pct(r, 20))
		msg_add_hop(m, "CORP/SALES", m->submit_time + 30);
	subj = g_string_new(NULL);
	pick = rng_below(r, 10);
	g_string_append(subj, pick == 0 ? "RE: " : pick == 1 ? "AW: " : pick == 2 ? "Fwd: " :
	    pick == 3 ? "TR: " : "");
	for (guint i = rng_range(r, 2, 9); i > 0; i--) {
		append_word(subj, r, cp, subj->len == 0 || rng_pct(r, 30));
		g_string_append_c(subj, ' ');
	}
	if (rng_pct(r, 30))
		append_number(subj, r);
	m->subject = g_string_free(subj, FALSE);
	m->date = m->submit_time - 5;

	pick = rng_below(r, 100);
	body_size = pick < 70 ? rng_logsize(r, 1024, 8192) :
	    pick < 93 ? rng_logsize(r, 8192, 20480) :
	    pick < 99 ? rng_logsize(r, 20480, 131072) : rng_logsize(r, 131072, 524288);
	m->body = make_body(r, cp, from, first_to, body_size);
	mix->body += g_bytes_get_size(m->body);

	if (rng_pct(r, 25)) {
		guint natt = rng_pct(r, 70) ? 1 : rng_pct(r, 67) ? 2 : 3;
		mix->with_att++;
		for (guint i = 0; i < natt; i++) {
			AttKind k;
			GBytes *d;
			char *aname = NULL;
			pick = rng_below(r, 100);
			k = pick < 25 ? ATT_RANDOM : pick < 55 ? ATT_PDF : pick < 85 ? ATT_OFFICE :
			    ATT_TEXT;
			switch (k) {
			case ATT_RANDOM:
				d = make_random_att(r, rng_logsize(r, 8192, 524288), &aname, n);
				break;
			case ATT_PDF:
				d = make_pdf_att(r, &cps[2], rng_logsize(r, 16384, 524288), &aname, n);
				break;
			case ATT_OFFICE:
				d = make_office_att(r, &cps[2], rng_logsize(r, 16384, 524288), &aname, n);
				break;
			default:
				d = make_text_att(r, cp, rng_logsize(r, 2048, 131072), &aname, n);
				break;
			}
			mix->att[k] += g_bytes_get_size(d);
			mix->atts++;
			msg_add_attachment(m, aname, d);
			g_bytes_unref(d);
			g_free(aname);
		}
	}
	return m;
}

/* ---- timing --------------------------------------------------------------- */

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct {
	GPtrArray *msgs;        /* LegacyMessage */
	GArray *starts;         /* guint: first message of each bundle, then msgs->len */
	guint8 *payload;        /* every bundle's payload, concatenated */
	guint64 payload_len;
	GArray *pstarts;        /* guint64: offset of each bundle's payload, then the end */
	GBytes *key;
	int level;
} Bench;

static Bundle *
make_bundle(const Bench *bb, guint j)
{
	Bundle *b = bundle_new(SOURCE_PO, DEST_PO, j + 1);
	guint from = g_array_index(bb->starts, guint, j);
	guint to = g_array_index(bb->starts, guint, j + 1);
	GError *e = NULL;

	b->created = BASE_TIME + j;
	for (guint i = from; i < to; i++)
		if (!bundle_add_message(b, bb->msgs->pdata[i], &e))
			die("bundle_add_message", e);
	return b;
}

typedef struct {
	double total, add, codec;
	guint64 payload, out;
} Pass;

static Pass
pass_encode(const Bench *bb)
{
	Pass p = { 0 };
	double t0 = now();
	guint nb = bb->starts->len - 1;

	for (guint j = 0; j < nb; j++) {
		double a = now(), c;
		Bundle *b = make_bundle(bb, j);
		GBytes *out;
		GError *e = NULL;
		c = now();
		p.add += c - a;
		out = bundle_encode(b, bb->key, bb->level, &e);
		if (!out)
			die("bundle_encode", e);
		p.codec += now() - c;
		p.payload += b->payload_len;
		p.out += g_bytes_get_size(out);
		g_bytes_unref(out);
		bundle_free(b);
	}
	p.total = now() - t0;
	return p;
}

static Pass
pass_write(const Bench *bb, const char *dir)
{
	Pass p = { 0 };
	double t0 = now();
	guint nb = bb->starts->len - 1;

	for (guint j = 0; j < nb; j++) {
		double a = now(), c;
		Bundle *b = make_bundle(bb, j);
		GError *e = NULL;
		c = now();
		p.add += c - a;
		if (!bundle_write(dir, b, bb->key, bb->level, NULL, &e))
			die("bundle_write", e);
		p.codec += now() - c;
		p.payload += b->payload_len;
		p.out += b->compressed_len + BUNDLE_HEADER_LEN + BUNDLE_TRAILER_LEN;
		bundle_free(b);
	}
	p.total = now() - t0;
	return p;
}

static gint
cmp_str(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The bundle files of dir in name order, dot-files skipped, as a reader does. */
static GPtrArray *
list_bundles(const char *dir)
{
	GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		die(dir, NULL);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || !g_str_has_suffix(de->d_name, BUNDLE_SUFFIX))
			continue;
		g_ptr_array_add(names, g_build_filename(dir, de->d_name, NULL));
	}
	closedir(d);
	g_ptr_array_sort(names, cmp_str);
	return names;
}

/* codec: bundle_read_file; add: bundle_message of every entry. */
static Pass
pass_read(const Bench *bb, const char *dir, guint64 *content)
{
	Pass p = { 0 };
	double t0 = now();
	GPtrArray *names = list_bundles(dir);

	*content = 0;
	for (guint j = 0; j < names->len; j++) {
		double a = now(), c;
		GError *e = NULL;
		Bundle *b = bundle_read_file(names->pdata[j], bb->key, &e);
		if (!b)
			die(names->pdata[j], e);
		c = now();
		p.codec += c - a;
		for (guint i = 0; i < b->entries->len; i++) {
			LegacyMessage *m = bundle_message(b, i, &e);
			if (!m)
				die("bundle_message", e);
			*content += g_bytes_get_size(m->body);
			for (guint k = 0; k < m->attachments->len; k++)
				*content += g_bytes_get_size(
				    ((MsgAttachment *)m->attachments->pdata[k])->data);
			msg_free(m);
		}
		p.add += now() - c;
		p.payload += b->payload_len;
		bundle_free(b);
	}
	g_ptr_array_unref(names);
	p.total = now() - t0;
	return p;
}

/* Raw zlib on the same per-bundle payloads: the floor the codec builds on. */
static void
pass_zlib(const Bench *bb, double *comp_s, double *decomp_s, guint64 *zbytes)
{
	guint nb = bb->pstarts->len - 1;
	uLong maxlen = 0;
	guint8 *cbuf, *dbuf;
	GArray *clens = g_array_new(FALSE, FALSE, sizeof(uLongf));
	guint8 **cbufs = g_new0(guint8 *, nb);
	double t0;

	for (guint j = 0; j < nb; j++) {
		guint64 n = g_array_index(bb->pstarts, guint64, j + 1) -
		    g_array_index(bb->pstarts, guint64, j);
		if (n > maxlen)
			maxlen = (uLong)n;
	}
	dbuf = g_malloc(maxlen);
	*zbytes = 0;
	t0 = now();
	for (guint j = 0; j < nb; j++) {
		guint64 off = g_array_index(bb->pstarts, guint64, j);
		uLong n = (uLong)(g_array_index(bb->pstarts, guint64, j + 1) - off);
		uLongf cl = compressBound(n);
		cbuf = g_malloc(cl);
		if (compress2(cbuf, &cl, bb->payload + off, n, bb->level) != Z_OK)
			die("compress2", NULL);
		cbufs[j] = cbuf;
		g_array_append_val(clens, cl);
		*zbytes += cl;
	}
	*comp_s = now() - t0;
	t0 = now();
	for (guint j = 0; j < nb; j++) {
		guint64 off = g_array_index(bb->pstarts, guint64, j);
		uLongf n = (uLongf)(g_array_index(bb->pstarts, guint64, j + 1) - off);
		if (uncompress(dbuf, &n, cbufs[j], g_array_index(clens, uLongf, j)) != Z_OK)
			die("uncompress", NULL);
	}
	*decomp_s = now() - t0;
	for (guint j = 0; j < nb; j++)
		g_free(cbufs[j]);
	g_free(cbufs);
	g_free(dbuf);
	g_array_free(clens, TRUE);
}

/* Every message of every bundle in dir comes back equal to what was sent. */
static void
verify(const Bench *bb, const char *dir)
{
	GPtrArray *names = list_bundles(dir);
	guint n = 0;

	if (names->len != bb->starts->len - 1) {
		fprintf(stderr, "bench_bundle_codec: %u bundle files, expected %u\n", names->len,
		    bb->starts->len - 1);
		exit(1);
	}
	for (guint j = 0; j < names->len; j++) {
		GError *e = NULL;
		Bundle *b = bundle_read_file(names->pdata[j], bb->key, &e);
		if (!b)
			die(names->pdata[j], e);
		for (guint i = 0; i < b->entries->len; i++, n++) {
			LegacyMessage *m = bundle_message(b, i, &e);
			const LegacyMessage *o = bb->msgs->pdata[n];
			gboolean same;
			if (!m)
				die("bundle_message", e);
			same = strcmp(m->id, o->id) == 0 && strcmp(m->subject, o->subject) == 0 &&
			    strcmp(m->codepage, o->codepage) == 0 &&
			    g_bytes_equal(m->body, o->body) &&
			    m->recipients->len == o->recipients->len &&
			    m->attachments->len == o->attachments->len;
			for (guint k = 0; same && k < m->attachments->len; k++) {
				MsgAttachment *x = m->attachments->pdata[k];
				MsgAttachment *y = o->attachments->pdata[k];
				same = strcmp(x->name, y->name) == 0 && g_bytes_equal(x->data, y->data);
			}
			if (!same) {
				fprintf(stderr, "bench_bundle_codec: message %u came back different\n",
				    n);
				exit(1);
			}
			msg_free(m);
		}
		bundle_free(b);
	}
	if (n != bb->msgs->len) {
		fprintf(stderr, "bench_bundle_codec: %u messages read, %u written\n", n,
		    bb->msgs->len);
		exit(1);
	}
	g_ptr_array_unref(names);
}

static guint64
dir_bytes(const char *dir, guint *files)
{
	GPtrArray *names = list_bundles(dir);
	guint64 total = 0;

	for (guint i = 0; i < names->len; i++) {
		struct stat st;
		if (stat(names->pdata[i], &st) != 0)
			die(names->pdata[i], NULL);
		total += (guint64)st.st_size;
	}
	*files = names->len;
	g_ptr_array_unref(names);
	return total;
}

static void
remove_dir(const char *dir)
{
	GPtrArray *names = list_bundles(dir);

	for (guint i = 0; i < names->len; i++)
		unlink(names->pdata[i]);
	rmdir(dir);
	g_ptr_array_unref(names);
}

static double
mbps(guint64 bytes, double s)
{
	return s > 0 ? (double)bytes / MB / s : 0;
}

static void
usage(void)
{
	fprintf(stderr, "usage: bench_bundle_codec [-l LEVEL] [-r RUNS] [-b BUNDLE_MB] "
	    "[-s SEED] DIR [MB]\n"
	    "  Generates MB (default 200) of legacy messages, times bundle encode,\n"
	    "  write and read in DIR, writes DIR/payload; prints key=value lines.\n");
	exit(64);
}

int
main(int argc, char **argv)
{
	Bench bb = { 0 };
	guint64 seed = 0x5047424e43480001ULL;   /* "PGBNCH" 1 */
	double target_mb = 200, bundle_mb = 4;
	guint runs = 3;
	int opt;
	const char *dir;
	Rng r;
	Codepage cps[3];
	Mix mix = { 0 };
	guint8 keybuf[32];
	GByteArray *payload;
	GByteArray *tmp = g_byte_array_new();
	guint64 next_close;
	double t0, gen_s;
	Pass best_enc = { 0 }, best_wr = { 0 }, best_rd = { 0 };
	double best_zc = 0, best_zd = 0;
	guint64 zbytes = 0, content = 0, bundle_bytes;
	guint files;
	char *payload_path, *last_dir = NULL;
	FILE *f;

	bb.level = 6;
	while ((opt = getopt(argc, argv, "l:r:b:s:h")) != -1) {
		switch (opt) {
		case 'l': bb.level = atoi(optarg); break;
		case 'r': runs = (guint)atoi(optarg); break;
		case 'b': bundle_mb = g_ascii_strtod(optarg, NULL); break;
		case 's': seed = g_ascii_strtoull(optarg, NULL, 0); break;
		default: usage();
		}
	}
	if (optind >= argc || argc - optind > 2 || runs == 0 || bb.level < 0 || bb.level > 9 ||
	    bundle_mb <= 0)
		usage();
	dir = argv[optind];
	if (argc - optind == 2)
		target_mb = g_ascii_strtod(argv[optind + 1], NULL);
	if (target_mb <= 0)
		usage();

	/* Generate. */
	t0 = now();
	rng_seed(&r, seed);
	zipf_init();
	codepage_init(&cps[0], "CP437");
	codepage_init(&cps[1], "CP850");
	codepage_init(&cps[2], "CP1252");
	users_init(&r);
	rng_fill(&r, keybuf, sizeof keybuf);
	bb.key = g_bytes_new(keybuf, sizeof keybuf);
	bb.msgs = g_ptr_array_new_with_free_func((GDestroyNotify)msg_free);
	bb.starts = g_array_new(FALSE, FALSE, sizeof(guint));
	bb.pstarts = g_array_new(FALSE, FALSE, sizeof(guint64));
	payload = g_byte_array_sized_new((guint)(target_mb * MB) + 8 * 1024 * 1024);
	{
		guint zero = 0;
		guint64 zero64 = 0;
		g_array_append_val(bb.starts, zero);
		g_array_append_val(bb.pstarts, zero64);
	}
	next_close = (guint64)(bundle_mb * MB * (0.5 + rng_below(&r, 1000) / 1000.0));
	while ((double)payload->len < target_mb * MB) {
		LegacyMessage *m = make_message(&r, cps, bb.msgs->len, &mix);
		GError *e = NULL;
		guint8 hdr[5];
		guint64 bstart = g_array_index(bb.pstarts, guint64, bb.pstarts->len - 1);
		g_byte_array_set_size(tmp, 0);
		if (!msg_encode(m, tmp, &e))
			die("msg_encode", e);
		hdr[0] = BUNDLE_ENTRY_MESSAGE;
		hdr[1] = tmp->len >> 24;
		hdr[2] = tmp->len >> 16 & 0xff;
		hdr[3] = tmp->len >> 8 & 0xff;
		hdr[4] = tmp->len & 0xff;
		g_byte_array_append(payload, hdr, 5);
		g_byte_array_append(payload, tmp->data, tmp->len);
		g_ptr_array_add(bb.msgs, m);
		if (payload->len - bstart >= next_close ||
		    bb.msgs->len - g_array_index(bb.starts, guint, bb.starts->len - 1) >=
		    BUNDLE_MAX_ENTRIES || (double)payload->len >= target_mb * MB) {
			guint n = bb.msgs->len;
			guint64 end = payload->len;
			g_array_append_val(bb.starts, n);
			g_array_append_val(bb.pstarts, end);
			next_close = (guint64)(bundle_mb * MB * (0.5 + rng_below(&r, 1000) / 1000.0));
		}
	}
	g_byte_array_unref(tmp);
	bb.payload_len = payload->len;
	bb.payload = g_byte_array_steal(payload, NULL);
	gen_s = now() - t0;

	payload_path = g_build_filename(dir, "payload", NULL);
	f = fopen(payload_path, "wb");
	if (!f || fwrite(bb.payload, 1, bb.payload_len, f) != bb.payload_len || fclose(f) != 0)
		die(payload_path, NULL);

	printf("seed=0x%016" G_GINT64_MODIFIER "x\n", seed);
	printf("zlib_version=%s\n", zlibVersion());
	printf("level=%d\n", bb.level);
	printf("bundle_mb=%g\n", bundle_mb);
	printf("runs=%u\n", runs);
	printf("messages=%u\n", bb.msgs->len);
	printf("messages_with_attachments=%u\n", mix.with_att);
	printf("attachments=%u\n", mix.atts);
	printf("bundles=%u\n", bb.starts->len - 1);
	printf("payload_bytes=%" G_GUINT64_FORMAT "\n", bb.payload_len);
	printf("payload_file=%s\n", payload_path);
	printf("body_bytes=%" G_GUINT64_FORMAT "\n", mix.body);
	for (int k = 0; k < ATT_KINDS; k++)
		printf("attach_%s_bytes=%" G_GUINT64_FORMAT "\n", att_kind_names[k], mix.att[k]);
	printf("generate_s=%.3f\n", gen_s);
	fflush(stdout);

	/* Time. */
	for (guint run = 1; run <= runs; run++) {
		char *wdir = g_strdup_printf("%s/bundles.%u", dir, run);
		Pass enc, wr, rd;
		double zc, zd;
		if (mkdir(wdir, 0755) != 0)
			die(wdir, NULL);
		enc = pass_encode(&bb);
		wr = pass_write(&bb, wdir);
		rd = pass_read(&bb, wdir, &content);
		pass_zlib(&bb, &zc, &zd, &zbytes);
		if (enc.payload != bb.payload_len || wr.payload != bb.payload_len ||
		    rd.payload != bb.payload_len) {
			fprintf(stderr, "bench_bundle_codec: the codec's payload is %" G_GUINT64_FORMAT
			    " bytes, the payload file %" G_GUINT64_FORMAT "\n", enc.payload,
			    bb.payload_len);
			return 1;
		}
		printf("run%u_encode_s=%.3f run%u_write_s=%.3f run%u_read_s=%.3f "
		    "run%u_zlib_compress_s=%.3f run%u_zlib_uncompress_s=%.3f\n",
		    run, enc.total, run, wr.total, run, rd.total, run, zc, run, zd);
		fflush(stdout);
		if (run == 1 || enc.total < best_enc.total)
			best_enc = enc;
		if (run == 1 || wr.total < best_wr.total)
			best_wr = wr;
		if (run == 1 || rd.total < best_rd.total)
			best_rd = rd;
		if (run == 1 || zc < best_zc)
			best_zc = zc;
		if (run == 1 || zd < best_zd)
			best_zd = zd;
		if (last_dir) {
			remove_dir(last_dir);
			g_free(last_dir);
		}
		last_dir = wdir;
	}
	verify(&bb, last_dir);
	bundle_bytes = dir_bytes(last_dir, &files);

	printf("encode_s=%.3f\n", best_enc.total);
	printf("encode_msg_encode_s=%.3f\n", best_enc.add);
	printf("encode_bundle_encode_s=%.3f\n", best_enc.codec);
	printf("encode_mbps=%.1f\n", mbps(bb.payload_len, best_enc.total));
	printf("write_s=%.3f\n", best_wr.total);
	printf("write_msg_encode_s=%.3f\n", best_wr.add);
	printf("write_bundle_write_s=%.3f\n", best_wr.codec);
	printf("write_mbps=%.1f\n", mbps(bb.payload_len, best_wr.total));
	printf("read_s=%.3f\n", best_rd.total);
	printf("read_bundle_read_file_s=%.3f\n", best_rd.codec);
	printf("read_bundle_message_s=%.3f\n", best_rd.add);
	printf("read_mbps=%.1f\n", mbps(bb.payload_len, best_rd.total));
	printf("read_content_bytes=%" G_GUINT64_FORMAT "\n", content);
	printf("zlib_compress_s=%.3f\n", best_zc);
	printf("zlib_compress_mbps=%.1f\n", mbps(bb.payload_len, best_zc));
	printf("zlib_uncompress_s=%.3f\n", best_zd);
	printf("zlib_uncompress_mbps=%.1f\n", mbps(bb.payload_len, best_zd));
	printf("zlib_bytes=%" G_GUINT64_FORMAT "\n", zbytes);
	printf("bundle_files=%u\n", files);
	printf("bundle_bytes=%" G_GUINT64_FORMAT "\n", bundle_bytes);
	printf("bundle_dir=%s\n", last_dir);
	printf("verify=ok\n");

	g_free(last_dir);
	g_free(payload_path);
	g_free(bb.payload);
	g_ptr_array_unref(bb.msgs);
	g_array_free(bb.starts, TRUE);
	g_array_free(bb.pstarts, TRUE);
	g_bytes_unref(bb.key);
	return 0;
}
