/* test_mime_in.c - unit tests of gateway/mime/mime_in.c.
 *
 * For every message of the corpus in tests/mime (see its README.md), what a
 * legacy user sees after translation into CP850 and into CP1252: the subject,
 * the sender, the body text (compared after NFC and folding blanks, with the
 * codepage read back by cp_to_utf8), each attachment's name and SHA-256, the
 * hop count, the notes that must not be silent, and that the message passes
 * msg_validate once an id, an originator and a recipient are added.  The
 * expected values are written by hand in the table below (the SHA-256 sums
 * were computed from the bytes the MIME text encodes, by another program).
 * Then the rules one by one: unparseable From, dropped To, attachment names
 * (paths, control characters, dots, length, uniqueness), 1,000-deep
 * nesting of multiparts and of messages, the limits (attachments, hops,
 * size), input that is not mail at all, and the same bytes under the C and
 * C.UTF-8 locales.
 */
#include "config.h"

#include <locale.h>
#include <string.h>

#include "codepage.h"
#include "cu_run.h"
#include "mime/mime_in.h"
#include "pg_limits.h"

#define MAX_ATT 6

typedef struct {
	const char *name850;    /* name as read back from CP850 */
	const char *name1252;   /* from CP1252; NULL: the same */
	const char *sha256;
} ExpAtt;

typedef struct {
	const char *file;
	const char *from;       /* From address, "" for none usable, NULL for no From */
	const char *subject850, *subject1252;   /* NULL 1252: the same */
	const char *body850, *body1252;         /* text the body holds, folded */
	guint hops;
	MsgPriority priority;
	const char *note;       /* a note that must be there, or NULL */
	guint n_att;
	ExpAtt att[MAX_ATT];
} Case;

#define SHA_0123 "054edec1d0211f624fed0cbca9d4f9400b0e491c43742af2c5b0abebf0c990d8"

static const Case cases[] = {
	{ "plain-ascii.eml", "SMTP:anna@example.org", "Plain ASCII", NULL,
	  "Hello Bob, the meeting is at 10:00 in room 4. Anna", NULL, 0, MSG_PRIORITY_NORMAL,
	  NULL, 0, { { 0 } } },
	{ "8bit-no-charset.eml", "SMTP:anna@example.org", "Eight bit", NULL,
	  "Café crème EUR 5", "Café crème € 5", 0, MSG_PRIORITY_NORMAL,
	  "8-bit text without a charset, read as windows-1252", 0, { { 0 } } },
	{ "iso-8859-1-qp.eml", "SMTP:anna@example.org", "Fable", NULL,
	  "Maître Corbeau, sur un arbre perché, Tenait en son bec un fromage. Maître Renard, "
	  "par l'odeur alléché, Lui tint à peu près ce langage :", NULL, 0, MSG_PRIORITY_NORMAL,
	  NULL, 0, { { 0 } } },
	{ "iso-8859-2.eml", "SMTP:anna@example.org", "Polish", NULL,
	  "Zazólc gesla jazn.", NULL, 0, MSG_PRIORITY_NORMAL, NULL, 0, { { 0 } } },
	{ "iso-8859-15.eml", "SMTP:anna@example.org", "Euro", NULL,
	  "Prix: 12 EUR, OEuvre, s.", "Prix: 12 €, Œuvre, š.", 0, MSG_PRIORITY_NORMAL, NULL,
	  0, { { 0 } } },
	{ "windows-1250.eml", "SMTP:anna@example.org", "Czech", NULL,
	  "Prílis zlutoucký kun.", "Príliš žlutoucký kun.", 0, MSG_PRIORITY_NORMAL, NULL,
	  0, { { 0 } } },
	{ "windows-1252.eml", "SMTP:anna@example.org", "Quotes", NULL,
	  "\"Smart\" quotes - and ... EUR 3, naïve.", "“Smart” quotes – and … € 3, naïve.",
	  0, MSG_PRIORITY_NORMAL, NULL, 0, { { 0 } } },
	{ "koi8-r.eml", "SMTP:anna@example.org", "Cyrillic", NULL,
	  "Lorem ipsum dolor sit amet.", NULL, 0, MSG_PRIORITY_NORMAL, NULL, 0, { { 0 } } },
	{ "shift_jis.eml", "SMTP:anna@example.org", "Japanese", NULL,
	  "JP: ??????????????????????????????????????????????6????", NULL, 0,
	  MSG_PRIORITY_NORMAL, NULL, 0, { { 0 } } },
	{ "iso-2022-jp.eml", "SMTP:tanaka@example.jp", "?? meeting", NULL,
	  "JP: ??????????????????????????????????????????????6????", NULL, 0,
	  MSG_PRIORITY_NORMAL, NULL, 0, { { 0 } } },
	{ "utf-8-mixed.eml", "SMTP:anna@example.org", "UTF-8", NULL,
	  "Grüße aus Köln, Lódz, Athina - ?? ? ½", "Grüße aus Köln, Lódz, Athina — ?? ? ½",
	  0, MSG_PRIORITY_NORMAL, NULL, 0, { { 0 } } },
	{ "alternative-text-html.eml", "SMTP:anna@example.org", "Alternative", NULL,
	  "Plain version wins.", NULL, 0, MSG_PRIORITY_NORMAL,
	  "part 2 (text/html): another form of the same text, dropped", 0, { { 0 } } },
	{ "html-only.eml", "SMTP:anna@example.org", "HTML only", NULL,
	  "Weekly news Read the news <https://example.org/n> now. - First item - Second item "
	  "Line one Line two", NULL, 0, MSG_PRIORITY_NORMAL, NULL, 0, { { 0 } } },
	{ "related-html-image.eml", "SMTP:anna@example.org", "Related", NULL,
	  "See the logo: [logo]", NULL, 0, MSG_PRIORITY_NORMAL, NULL, 1,
	  { { "attachment-1.png", NULL,
	      "6b7fa434f92a8b80aab02d9bf1a12e49ffcae424e4013a1c4f68b67e3d2bbcd0" } } },
	{ "nested-mixed.eml", "SMTP:anna@example.org", "Nested", NULL,
	  "Body text. Second inline text.", NULL, 0, MSG_PRIORITY_NORMAL, NULL, 2,
	  { { "report.pdf", NULL,
	      "9bc957703ac9aeb2174ecf08607150fa7ffa369c081f9201bdf2d27ee5fcb844" },
	    { "notes.txt", NULL,
	      "de1dd78ec9c5cc0534c531a4d61c68bc3995fac4934c971ea83d5d3c3d406c32" } } },
	{ "rfc822-attached.eml", "SMTP:anna@example.org", "Forward", NULL,
	  "See the forwarded message.", NULL, 0, MSG_PRIORITY_NORMAL, NULL, 1,
	  { { "Original_ plans_Q3.eml", NULL,
	      "a56761f710ace2c31b2a77afc299afa8a4220bfede697cf1df2858dcb9e6a98f" } } },
	{ "rfc2047-names.eml", "SMTP:JM@example.com", "Grüße - EUR and Lódz",
	  "Grüße – € and Lódz", "Names.", NULL, 0, MSG_PRIORITY_HIGH,
	  "Cc: text that is not an address dropped", 1,
	  { { "résumé.pdf", NULL,
	      "e96b4fd4962b663c3b7b1e31f7941c244ed9b84ecfa16c0afa7652b0b16c3f15" } } },
	{ "rfc2231-filename.eml", "SMTP:anna@example.org", "Continuations", NULL,
	  "Two files.", NULL, 0, MSG_PRIORITY_NORMAL, NULL, 4,
	  { { "Übersicht der Ausgaben EUR.xlsx", "Übersicht der Ausgaben €.xlsx",
	      "1c980b22bca31941462855e560db3053e7772efb4b8bc7c4d5d8bb799a1abc6c" },
	    { "Grüße.txt", NULL,
	      "d3751d33f9cd5049c4af2b462735457e4d3baf130bcbb87f389e349fbaeb20b9" },
	    { "passwd", NULL,
	      "4813494d137e1631bba301d5acab6e7bb7aa74ce1185d456565ef51d737677b2" },
	    { "hidden_name.txt", NULL,
	      "c1299854f2b209632ab22aeb848c24c2b02da4b37ecf93a830ee9c7f6f809924" } } },
	{ "uuencode.eml", "SMTP:anna@example.org", "Uuencoded", NULL,
	  "File follows.", NULL, 0, MSG_PRIORITY_NORMAL, NULL, 1,
	  { { "hello.txt", NULL,
	      "853ff93762a06ddbf722c4ebe9ddd66d8f63ddaea97f521c3ecc20da7c976020" } } },
	{ "missing-final-boundary.eml", "SMTP:anna@example.org", "Truncated", NULL,
	  "Text before the cut.", NULL, 0, MSG_PRIORITY_NORMAL, "truncated", 1,
	  { { "cut.bin", NULL, SHA_0123 } } },
	{ "wrong-boundary.eml", "SMTP:anna@example.org", "Wrong boundary", NULL,
	  "Text under a boundary nobody declared.", NULL, 0, MSG_PRIORITY_NORMAL,
	  "a multipart without parts (wrong boundary?)", 0, { { 0 } } },
	{ "bad-base64.eml", "SMTP:anna@example.org", "Bad base64", NULL,
	  "Attachment is damaged.", NULL, 0, MSG_PRIORITY_NORMAL,
	  "part 2: bad base64, 2 characters skipped", 1,
	  { { "data.bin", NULL, SHA_0123 } } },
	{ "unknown-charset.eml", "SMTP:anna@example.org", "Unknown charset", NULL,
	  "naïve \"quoted\"", "naïve “quoted”", 0, MSG_PRIORITY_NORMAL,
	  "part 1: unknown charset x-no-such-charset, decoded as windows-1252", 0, { { 0 } } },
	{ "header-without-colon.eml", "SMTP:anna@example.org", "After the bad line", NULL,
	  "Body after a broken header.", NULL, 0, MSG_PRIORITY_NORMAL,
	  "not a header field", 0, { { 0 } } },
	{ "8bit-headers.eml", "SMTP:juergen@example.de", "Grüße - UTF-8 raw",
	  "Grüße – UTF-8 raw", "Raw 8-bit headers.", NULL, 0, MSG_PRIORITY_NORMAL,
	  "header field From: 8-bit text without a charset, read as windows-1252", 0,
	  { { 0 } } },
	{ "huge-header.eml", "SMTP:anna@example.org", NULL, NULL, "Short body.", NULL, 0,
	  MSG_PRIORITY_NORMAL, NULL, 0, { { 0 } } },
	{ "received-priority.eml", "SMTP:anna@example.org", "Urgent", NULL,
	  "Please reply.", NULL, 3, MSG_PRIORITY_HIGH, NULL, 0, { { 0 } } },
	{ "signed.eml", "SMTP:anna@example.org", "Signed", NULL, "Signed text.", NULL, 0,
	  MSG_PRIORITY_NORMAL, NULL, 1,
	  { { "signature.asc", NULL,
	      "dd525d893eb469806e496b50cafc07d5a771b3b168bb0af698770e913336457f" } } },
	{ "python-msg_02-digest.eml", "SMTP:ppp-request@zzz.org",
	  "Ppp digest, Vol 1 #2 - 5 msgs", NULL,
	  "Send Ppp mailing list submissions to ppp@zzz.org", NULL, 0, MSG_PRIORITY_NORMAL,
	  NULL, 5,
	  { { "[Ppp] testing #1.eml", NULL,
	      "5ce447876e80d0cf1e448fa6afdd84fb15adb871e67e5a15973b6348cb032388" },
	    { "attachment-2.eml", NULL,
	      "296862586241d00a2201618c06788bb6e850cde38079f1916ce63745e1abf7b1" },
	    { "[Ppp] testing #3.eml", NULL,
	      "07f3502584f349d5f62d1e2d7753707fedaa39a9d5e962b0e29d681b04f3cde0" },
	    { "[Ppp] testing #4.eml", NULL,
	      "7abd4fec1ce9414329b30427641e9464d00d70ec5125b814fd67b70085a76f3b" },
	    { "[Ppp] testing #5.eml", NULL,
	      "c671a4432317d7f5ac1885f06c2c7146f63ab166aadc0301b918484dd3d4a84b" } } },
	{ "python-msg_06-forwarded.eml", "SMTP:barry@python.org",
	  "forwarded message from Barry A. Warsaw", NULL, "", NULL, 0, MSG_PRIORITY_NORMAL,
	  NULL, 1,
	  { { "testing.eml", NULL,
	      "e1f85c2247eb9f74be337c0a9586d59aed739db105f2b9ce30a41ea753caa1e8" } } },
	{ "python-msg_10-encodings.eml", "SMTP:barry@python.org", "Lyrics", NULL,
	  "This is a 7bit encoded message. ¡This is a Quoted Printable encoded message! "
	  "This is a Base64 encoded message. This is a Base64 encoded message. "
	  "This has no Content-Transfer-Encoding: header.", NULL, 0, MSG_PRIORITY_NORMAL,
	  NULL, 0, { { 0 } } },
	{ "python-msg_12-nested-charsets.eml", "SMTP:barry@python.org", "Lyrics", NULL, "",
	  NULL, 0, MSG_PRIORITY_NORMAL, NULL, 0, { { 0 } } },
	{ "python-msg_15-same-boundary.eml", "SMTP:xx@xx.dk", "XX", NULL,
	  "Some removed test.", NULL, 1, MSG_PRIORITY_NORMAL,
	  "To: address XX cannot be written SMTP:local@domain, dropped", 1,
	  { { "xx.gif", NULL,
	      "77e630bbf3cced6952c2beb1523cc3d7c9a3384bbacf6906d58e079be2af1a04" } } },
	{ "python-msg_35-no-blank-line.eml", "SMTP:aperson@dom.ain",
	  "here's something interesting", NULL, "", NULL, 0, MSG_PRIORITY_NORMAL,
	  "counter to RFC 5322", 0, { { 0 } } },
	{ "python-msg_44-same-names.eml", "SMTP:barry@python.org", "a simple multipart", NULL,
	  "a simple kind of mirror to reflect upon our own a simple kind of mirror to "
	  "reflect upon our own", NULL, 1, MSG_PRIORITY_NORMAL, NULL, 0, { { 0 } } },
	{ "python-msg_47-bad-date.eml", "SMTP:123@example.com", "VIARGA|CIALIS|LEVITRA", NULL,
	  "### PHARRMACY ON1INE 24/7 ###", NULL, 0, MSG_PRIORITY_NORMAL, NULL, 0, { { 0 } } },
};

/* NFC, every run of blanks one space, none at either end. */
static char *
fold(const char *s)
{
	char *nfc = g_utf8_normalize(s, -1, G_NORMALIZE_NFC);
	GString *o = g_string_new(NULL);
	gboolean blank = FALSE;

	for (const char *p = nfc ? nfc : s; *p; p++) {
		if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n' || *p == '\f') {
			blank = TRUE;
			continue;
		}
		if ((guchar)p[0] == 0xc2 && (guchar)p[1] == 0xa0) {   /* no-break space */
			blank = TRUE;
			p++;
			continue;
		}
		if (blank && o->len)
			g_string_append_c(o, ' ');
		blank = FALSE;
		g_string_append_c(o, *p);
	}
	g_free(nfc);
	return g_string_free(o, FALSE);
}

static char *
utf8_of(const char *cp, const char *s, gsize len)
{
	return cp_to_utf8(cp, s, len, NULL);
}

static char *
srcpath(const char *file)
{
	const char *src = g_getenv("srcdir");

	return g_build_filename(src && *src ? src : ".", "tests", "mime", file, NULL);
}

static GBytes *
load(const char *file)
{
	char *path = srcpath(file), *data = NULL;
	gsize len = 0;

	if (!g_file_get_contents(path, &data, &len, NULL)) {
		g_free(path);
		return NULL;
	}
	g_free(path);
	return g_bytes_new_take(data, len);
}

static LegacyMessage *
translate_bytes(const char *data, gsize len, const char *cp, MimeInStats *st,
    GError **e)
{
	/* An exact-size copy: ASan sees any read past the end. */
	guint8 *copy = g_memdup2(data, len ? len : 1);
	LegacyMessage *m = mime_in_translate(copy, len, cp, st, e);

	g_free(copy);
	return m;
}

static gboolean
has_note(const MimeInStats *st, const char *what)
{
	for (guint i = 0; st->notes && i < st->notes->len; i++)
		if (strstr(st->notes->pdata[i], what))
			return TRUE;
	return FALSE;
}

/* Envelope as the batch run adds it; then msg_validate must pass. */
static gboolean
validates(LegacyMessage *m, GError **e)
{
	m->id = g_strdup("CORP/GW.20240305.0001");
	g_free(m->originator.addr);
	m->originator.addr = g_strdup("SMTP:sender@example.org");
	m->originator.name = g_strdup("");
	msg_add_recipient(m, "CORP/HQ/BOB", "Bob", TRUE);
	return msg_validate(m, e);
}

static void
check_case(const Case *k, const char *cp)
{
	gboolean is850 = strcmp(cp, "CP850") == 0;
	GBytes *in = load(k->file);
	MimeInStats st = { 0 };
	GError *e = NULL;
	LegacyMessage *m;
	const char *want;
	gsize len;
	const char *data;

	EXPECT(in != NULL, "%s: corpus file readable (srcdir=%s)", k->file, g_getenv("srcdir"));
	if (!in)
		return;
	data = g_bytes_get_data(in, &len);
	m = translate_bytes(data, len, cp, &st, &e);
	EXPECT(m != NULL, "%s %s: translated (%s)", k->file, cp, e ? e->message : "");
	if (!m) {
		g_clear_error(&e);
		g_bytes_unref(in);
		mime_in_stats_clear(&st);
		return;
	}
	EXPECT(strcmp(m->codepage, cp) == 0, "%s: codepage %s", k->file, m->codepage);
	EXPECT(g_strcmp0(m->from.addr, k->from) == 0, "%s %s: From %s, want %s", k->file, cp,
	    m->from.addr, k->from);
	if (k->subject850) {
		char *subj = utf8_of(cp, m->subject, strlen(m->subject));
		want = !is850 && k->subject1252 ? k->subject1252 : k->subject850;
		EXPECT(g_strcmp0(subj, want) == 0, "%s %s: subject \"%s\", want \"%s\"", k->file,
		    cp, subj, want);
		g_free(subj);
	}
	{
		gsize blen;
		const char *b = g_bytes_get_data(m->body, &blen);
		char *body = utf8_of(cp, b ? b : "", blen);
		char *fb = fold(body), *fw;

		want = !is850 && k->body1252 ? k->body1252 : k->body850;
		fw = fold(want);
		EXPECT(strstr(fb, fw) != NULL, "%s %s: body \"%s\" holds \"%s\"", k->file, cp, fb,
		    fw);
		EXPECT(*fw || blen == 0, "%s %s: an empty body is empty", k->file, cp);
		for (gsize i = 0; i < blen; i++)
			if (b[i] == '\n' && (i == 0 || b[i - 1] != '\r')) {
				EXPECT(FALSE, "%s %s: body has a bare LF at %zu", k->file, cp, i);
				break;
			}
		g_free(body);
		g_free(fb);
		g_free(fw);
	}
	EXPECT(m->hops->len == k->hops, "%s: %u hops, want %u", k->file, m->hops->len, k->hops);
	EXPECT(m->priority == k->priority, "%s: priority %d, want %d", k->file, m->priority,
	    k->priority);
	if (k->note)
		EXPECT(has_note(&st, k->note), "%s %s: a note says \"%s\"", k->file, cp, k->note);
	EXPECT(m->attachments->len == k->n_att, "%s %s: %u attachments, want %u", k->file, cp,
	    m->attachments->len, k->n_att);
	for (guint i = 0; i < k->n_att && i < m->attachments->len; i++) {
		MsgAttachment *a = m->attachments->pdata[i];
		char *name = utf8_of(cp, a->name, strlen(a->name));
		char *sha = g_compute_checksum_for_bytes(G_CHECKSUM_SHA256, a->data);

		want = !is850 && k->att[i].name1252 ? k->att[i].name1252 : k->att[i].name850;
		EXPECT(g_strcmp0(name, want) == 0, "%s %s: attachment %u named \"%s\", want \"%s\"",
		    k->file, cp, i + 1, name, want);
		EXPECT(strcmp(sha, k->att[i].sha256) == 0, "%s: attachment %u SHA-256 %s", k->file,
		    i + 1, sha);
		EXPECT(msg_attachment_name_safe(a->name, strlen(a->name)), "%s: name is safe",
		    k->file);
		g_free(name);
		g_free(sha);
	}
	EXPECT(m->recipients->len == 0 && m->id == NULL && m->originator.addr == NULL,
	    "%s: the envelope is left to the batch run", k->file);
	EXPECT(validates(m, &e), "%s %s: msg_validate after the envelope is added: %s", k->file,
	    cp, e ? e->message : "ok");
	g_clear_error(&e);
	msg_free(m);
	mime_in_stats_clear(&st);
	g_bytes_unref(in);
}

/* huge-header.eml: a 2,000-character Subject is cut to MSG_MAX_SUBJECT_LEN bytes
 * on a word ("long " x 199, then "lon"), the 3,000-address To is kept whole. */
static void
test_huge_header(void)
{
	GBytes *in = load("huge-header.eml");
	gsize len = 0;
	const char *data = in ? g_bytes_get_data(in, &len) : NULL;
	LegacyMessage *m = data ? translate_bytes(data, len, "CP850", NULL, NULL) : NULL;

	EXPECT(m && strlen(m->subject) == MSG_MAX_SUBJECT_LEN &&
	    g_str_has_prefix(m->subject, "long long ") && g_str_has_suffix(m->subject, " lon"),
	    "the subject is cut to %u bytes", MSG_MAX_SUBJECT_LEN);
	EXPECT(m && m->to->len == 3000, "3,000 To entries kept (%u)", m ? m->to->len : 0);
	if (m && m->to->len == 3000)
		EXPECT(strcmp(((MsgParty *)m->to->pdata[2999])->addr, "SMTP:u2999@example.com") == 0,
		    "the last one in order");
	msg_free(m);
	if (in)
		g_bytes_unref(in);
}

static void
test_corpus(void)
{
	for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
		check_case(&cases[i], "CP850");
		check_case(&cases[i], "CP1252");
	}
}

/* Translate text (C string) into CP1252. */
static LegacyMessage *
tr(const char *text, MimeInStats *st, GError **e)
{
	return translate_bytes(text, strlen(text), "CP1252", st, e);
}

static void
test_from_unparseable(void)
{
	MimeInStats st = { 0 };
	LegacyMessage *m = tr("From: Jane Doe (sales) <jane at example>\r\nSubject: x\r\n\r\nhi\r\n",
	    &st, NULL);

	EXPECT(m && m->from.addr && strcmp(m->from.addr, "") == 0,
	    "an unparseable From gives an empty address");
	EXPECT(m && strstr(m->from.name, "Jane Doe") && strstr(m->from.name, "jane at example"),
	    "and its raw text as the name (\"%s\")", m ? m->from.name : "");
	EXPECT(has_note(&st, "From has no usable address"), "noted");
	msg_free(m);
	mime_in_stats_clear(&st);
	m = tr("Subject: no from\r\n\r\nhi\r\n", &st, NULL);
	EXPECT(m && m->from.addr == NULL, "no From: no From party");
	msg_free(m);
	mime_in_stats_clear(&st);
}

static void
test_to_dropped_and_groups(void)
{
	MimeInStats st = { 0 };
	LegacyMessage *m = tr("From: a@example.org\r\nTo: Team: x@Example.ORG, \"Y\" <y@example.org>;, "
	    "\"Quoted local\" <\"a b\"@example.org>, z@example.org\r\nCc: undisclosed-recipients:;\r\n"
	    "\r\nhi\r\n", &st, NULL);
	MsgParty *p;

	EXPECT(m && m->to->len == 3, "group members flattened, a quoted local part dropped "
	    "(%u To)", m ? m->to->len : 0);
	if (m && m->to->len == 3) {
		p = m->to->pdata[0];
		EXPECT(strcmp(p->addr, "SMTP:x@example.org") == 0, "domain lower case: %s", p->addr);
		p = m->to->pdata[1];
		EXPECT(strcmp(p->addr, "SMTP:y@example.org") == 0 && strcmp(p->name, "Y") == 0,
		    "display name kept");
	}
	EXPECT(m && m->cc->len == 0, "an empty group gives no entry");
	EXPECT(has_note(&st, "cannot be written SMTP:local@domain, dropped"), "the drop is noted");
	msg_free(m);
	mime_in_stats_clear(&st);
}

static char *
att_message(const char *const *names, gsize n)
{
	GString *s = g_string_new("From: a@example.org\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed; boundary=zz\r\n\r\n");

	for (gsize i = 0; i < n; i++) {
		g_string_append(s, "--zz\r\nContent-Type: application/octet-stream\r\n");
		if (names[i])
			g_string_append_printf(s, "Content-Disposition: attachment; filename=\"%s\"\r\n",
			    names[i]);
		g_string_append(s, "\r\nx\r\n");
	}
	g_string_append(s, "--zz--\r\n");
	return g_string_free(s, FALSE);
}

static void
test_attachment_names(void)
{
	char longname[400];
	const char *names[] = { "a.txt", "A.TXT", "a.txt", "..", ".", "...profile", "x\x01y.doc",
	    "dir/sub\\f:g.txt" /* in quotes: \\f is f */, NULL, "   ", longname, longname };
	static const char *const want[] = { "a.txt", "A (2).TXT", "a (3).txt", "attachment-4.bin",
	    "attachment-5.bin", "profile", "x_y.doc", "subf_g.txt", "attachment-9.bin",
	    "attachment-10.bin", NULL, NULL };
	char *text;
	LegacyMessage *m;

	memset(longname, 'n', 300);
	memcpy(longname + 300, ".pdf", 5);
	text = att_message(names, G_N_ELEMENTS(names));
	m = tr(text, NULL, NULL);
	EXPECT(m && m->attachments->len == G_N_ELEMENTS(names), "all attachments kept");
	for (guint i = 0; m && i < m->attachments->len && i < G_N_ELEMENTS(want); i++) {
		MsgAttachment *a = m->attachments->pdata[i];
		gsize n = strlen(a->name);

		EXPECT(msg_attachment_name_safe(a->name, n) && a->name[0] != '.',
		    "name %u \"%s\" is safe", i + 1, a->name);
		if (want[i])
			EXPECT(strcmp(a->name, want[i]) == 0, "name %u \"%s\", want \"%s\"", i + 1,
			    a->name, want[i]);
		else
			EXPECT(n <= MSG_MAX_NAME_LEN && g_str_has_suffix(a->name, ".pdf") &&
			    strncmp(a->name, "nnnn", 4) == 0, "long name %u cut to %zu bytes, "
			    "extension kept", i + 1, n);
	}
	if (m && m->attachments->len == G_N_ELEMENTS(names)) {
		MsgAttachment *a = m->attachments->pdata[10], *b = m->attachments->pdata[11];
		EXPECT(strcmp(a->name, b->name) != 0 && g_str_has_suffix(b->name, " (2).pdf") &&
		    strlen(b->name) <= MSG_MAX_NAME_LEN, "long names unique too: \"%s\"", b->name);
	}
	msg_free(m);
	g_free(text);
}

static char *
deep_multipart(int depth)
{
	GString *s = g_string_new("From: a@example.org\r\nSubject: deep\r\nMIME-Version: 1.0\r\n");

	for (int i = 0; i < depth; i++)
		g_string_append_printf(s, "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n"
		    "--b%d\r\n", i, i);
	g_string_append(s, "Content-Type: text/plain\r\n\r\nthe leaf\r\n");
	for (int i = depth - 1; i >= 0; i--)
		g_string_append_printf(s, "--b%d--\r\n", i);
	return g_string_free(s, FALSE);
}

static void
test_deep_nesting(void)
{
	static const int depths[] = { 10, 33, 1000 };

	for (gsize d = 0; d < G_N_ELEMENTS(depths); d++) {
		char *text = deep_multipart(depths[d]);
		MimeInStats st = { 0 };
		GError *e = NULL;
		LegacyMessage *m = tr(text, &st, &e);
		gsize blen = 0;

		EXPECT(m != NULL, "%d-deep multipart translated", depths[d]);
		if (m)
			g_bytes_get_data(m->body, &blen);
		if (m && depths[d] <= MIME_IN_MAX_DEPTH) {
			EXPECT(blen > 0 && m->attachments->len == 0, "%d deep: the leaf is the body",
			    depths[d]);
		} else if (m) {
			MsgAttachment *a = m->attachments->len ? m->attachments->pdata[0] : NULL;
			EXPECT(m->attachments->len == 1 && blen == 0, "%d deep: the subtree past "
			    "level %d is one attachment", depths[d], MIME_IN_MAX_DEPTH);
			EXPECT(has_note(&st, "nesting deeper than 32 levels"), "%d deep: noted",
			    depths[d]);
			EXPECT(a && g_bytes_get_size(a->data) > 0 && g_str_has_suffix(a->name, ".eml"),
			    "%d deep: the attachment holds the subtree's bytes", depths[d]);
			EXPECT(validates(m, NULL), "%d deep: validates", depths[d]);
		}
		msg_free(m);
		mime_in_stats_clear(&st);
		g_clear_error(&e);
		g_free(text);
	}
	{
		/* 1,000 messages inside messages. */
		GString *s = g_string_new("From: a@example.org\r\nMIME-Version: 1.0\r\n");
		LegacyMessage *m;

		for (int i = 0; i < 1000; i++)
			g_string_append_printf(s, "Subject: level %d\r\nContent-Type: message/rfc822\r\n"
			    "\r\n", i);
		g_string_append(s, "Subject: inner\r\n\r\ntext\r\n");
		m = tr(s->str, NULL, NULL);
		EXPECT(m && m->attachments->len == 1, "1,000-deep message/rfc822: one attachment");
		msg_free(m);
		g_string_free(s, TRUE);
	}
}

static void
test_limits(void)
{
	GError *e = NULL;
	LegacyMessage *m;
	const char **names = g_new0(const char *, MSG_MAX_ATTACHMENTS + 1);
	char *text = att_message(names, MSG_MAX_ATTACHMENTS);
	GString *s;

	m = tr(text, NULL, &e);
	EXPECT(m && m->attachments->len == MSG_MAX_ATTACHMENTS, "%u attachments are fine",
	    MSG_MAX_ATTACHMENTS);
	msg_free(m);
	g_free(text);
	text = att_message(names, MSG_MAX_ATTACHMENTS + 1);
	m = tr(text, NULL, &e);
	EXPECT(!m && e && e->domain == MIME_IN_ERROR && e->code == MIME_IN_ERROR_LIMIT &&
	    strstr(e->message, "attachments"), "one more is an error naming the limit: %s",
	    e ? e->message : "none");
	g_clear_error(&e);
	g_free(text);
	g_free(names);

	s = g_string_new(NULL);
	for (guint i = 0; i <= MSG_MAX_HOPS; i++)
		g_string_append_printf(s, "Received: from h%u by h%u.example; "
		    "Tue, 05 Mar 2024 10:00:00 +0000\r\n", i, i + 1);
	g_string_append(s, "From: a@example.org\r\n\r\nloop\r\n");
	m = tr(s->str, NULL, &e);
	EXPECT(!m && e && e->code == MIME_IN_ERROR_LIMIT && strstr(e->message, "loop"),
	    "%u Received: fields are over the hop limit: %s", MSG_MAX_HOPS + 1,
	    e ? e->message : "none");
	g_clear_error(&e);
	g_string_free(s, TRUE);

	/* Over MSG_MAX_SIZE once decoded. */
	s = g_string_sized_new(MSG_MAX_SIZE + 4096);
	g_string_append(s, "From: a@example.org\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: application/octet-stream\r\n\r\n");
	while (s->len < MSG_MAX_SIZE + 1024)
		g_string_append(s, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n");
	m = translate_bytes(s->str, s->len, "CP1252", NULL, &e);
	EXPECT(!m && e && e->code == MIME_IN_ERROR_LIMIT && strstr(e->message, "MSG_MAX_SIZE"),
	    "a message over MSG_MAX_SIZE is refused: %s", e ? e->message : "none");
	g_clear_error(&e);
	g_string_free(s, TRUE);
}

static void
test_not_mail(void)
{
	static const char *const inputs[] = { "", "\r\n", "just some text\n",
	    "\x00\x01\x02\xff", "Subject: only a header" };

	for (gsize i = 0; i < G_N_ELEMENTS(inputs); i++) {
		gsize len = i == 3 ? 4 : strlen(inputs[i]);
		MimeInStats st = { 0 };
		LegacyMessage *m = translate_bytes(inputs[i], len, "CP437", &st, NULL);

		EXPECT(m != NULL && m->body != NULL && m->subject != NULL,
		    "input %zu that is not mail still gives a message", i);
		if (m)
			EXPECT(validates(m, NULL), "input %zu: validates", i);
		msg_free(m);
		mime_in_stats_clear(&st);
	}
}

static void
test_unsupported_codepage(void)
{
	GError *e = NULL;
	LegacyMessage *m = translate_bytes("Subject: x\r\n\r\ny\r\n", 17, "NOPE-1", NULL, &e);

	EXPECT(!m && e && e->code == MIME_IN_ERROR_CODEPAGE && strstr(e->message, "NOPE-1"),
	    "an unsupported codepage is an error naming it");
	g_clear_error(&e);
}

static void
test_text_attachments_and_html_details(void)
{
	LegacyMessage *m = tr("From: a@example.org\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: text/html; charset=utf-8\r\n\r\n"
	    "<table><tr><td>A</td><td>B</td></tr></table><pre>x  y\n z</pre>"
	    "<a href=\"mailto:q@example.org\">q@example.org</a> <a href=\"#top\">top</a>"
	    "<!-- comment --><script>var x = '<p>no</p>';</script>&amp;&lt;&eacute;\r\n", NULL, NULL);
	gsize n = 0;
	const char *b = m ? g_bytes_get_data(m->body, &n) : NULL;
	char *body = b ? g_strndup(b, n) : g_strdup("");

	EXPECT(strstr(body, "A B") != NULL, "table cells side by side: %s", body);
	EXPECT(strstr(body, "x  y\r\n z") != NULL, "<pre> keeps its blanks and lines");
	EXPECT(strstr(body, "q@example.org <") == NULL && strstr(body, "top <") == NULL,
	    "a link whose text is its address, and a local anchor, add no <url>");
	EXPECT(strstr(body, "no") == NULL || strstr(body, "var") == NULL, "script dropped");
	EXPECT(strstr(body, "&<\xe9") != NULL, "entities decoded (into CP1252)");
	g_free(body);
	msg_free(m);
}

/* Header text as a CP1252 reader sees it, back in UTF-8. */
static char *
seen(const char *cp1252)
{
	return utf8_of("CP1252", cp1252, strlen(cp1252));
}

static const MsgParty *
party(GPtrArray *list, guint i)
{
	return list && i < list->len ? list->pdata[i] : NULL;
}

/* RFC 2047 encoded-words decoded one at a time (RFC 2047 6): a header split
 * into several base64 words, early ones ending in '=' padding, is whole
 * (GMime 3.2.13 kept only the first word: GMime issue #133). */
static void
test_rfc2047_split_words(void)
{
	static const struct {
		const char *raw;
		const char *want;       /* as a CP1252 reader sees it */
	} subjects[] = {
		/* Python's email: three base64 words, the first two ending in '='. */
		{ "=?utf-8?b?UsOpdW5pb24gZGUgbOKAmcOpcXVpcGU=?=\r\n =?utf-8?b?IGTDqWNpc2lvbnMgcHJpc2U=?=\r\n"
		  " =?utf-8?b?cyDDoCBsYSBmaW4=?=", "Réunion de l’équipe décisions prises à la fin" },
		{ "=?UTF-8?B?SGVsbG8=?= =?UTF-8?B?IHdvcmxk?=", "Hello world" },
		/* Blanks between two words dropped, between a word and text kept. */
		{ "=?iso-8859-1?q?a?=   =?iso-8859-1?q?b?= c =?iso-8859-1?q?d?=\te", "ab c d e" },
		/* Q: '_' is a space, =XX a byte, lower-case hex too. */
		{ "=?ISO-8859-1?Q?caf=E9_cr=e8me_=3F?=", "café crème ?" },
		/* An RFC 2231 language tag on the charset. */
		{ "=?utf-8*de?q?Gr=C3=BC=C3=9Fe?=", "Grüße" },
		/* Adjacent words in different charsets. */
		{ "=?iso-8859-1?q?caf=E9?= =?utf-8?q?_na=C3=AFve?=", "café naïve" },
		/* A character split between two words of one charset (broken MUAs). */
		{ "=?utf-8?q?d=C3?= =?utf-8?q?=A9j=C3=A0?=", "déjà" },
		{ "=?utf-8?b?w6k=?==?utf-8?b?w6g=?=", "éè" },
		/* An unknown charset: windows-1252. */
		{ "=?x-no-such-charset?q?na=EFve?=", "naïve" },
		/* Malformed words are left as they are. */
		{ "=?utf-8?b?@@@@?= x", "=?utf-8?b?@@@@?= x" },
		{ "=?utf-8?x?abc?=", "=?utf-8?x?abc?=" },
		{ "=?utf-8?q?a=ZZ?= =?utf-8?q?ok?=", "=?utf-8?q?a=ZZ?= ok" },
		{ "=?utf-8?q?no end", "=?utf-8?q?no end" },
		{ "=??q?empty charset?=", "=??q?empty charset?=" },
		{ "=?utf-8?b?QUJD?==?", "ABC=?" },
	};

	for (gsize i = 0; i < G_N_ELEMENTS(subjects); i++) {
		char *text = g_strdup_printf("From: a@example.org\r\nSubject: %s\r\n\r\nhi\r\n",
		    subjects[i].raw);
		MimeInStats st = { 0 };
		LegacyMessage *m = tr(text, &st, NULL);
		char *subj = m ? seen(m->subject) : g_strdup("(none)");

		EXPECT(strcmp(subj, subjects[i].want) == 0, "subject %zu: \"%s\", want \"%s\"", i,
		    subj, subjects[i].want);
		if (i == 8)
			EXPECT(has_note(&st, "unknown charset x-no-such-charset"),
			    "the unknown charset is noted");
		if (i == 9)
			EXPECT(has_note(&st, "malformed RFC 2047 encoded-word"),
			    "a malformed word is noted");
		g_free(subj);
		g_free(text);
		msg_free(m);
		mime_in_stats_clear(&st);
	}
}

static void
test_rfc2047_display_names(void)
{
	LegacyMessage *m = tr("From: =?utf-8?b?RnJhbsOnb2lzZSBCw6l6aWVyLUR1cG9udCBkZSBsYQ==?=\r\n"
	    " =?utf-8?b?IFZhbGzDqWUtUG91c3Npbg==?= <fb@example.fr>\r\n"
	    "To: =?utf-8?q?Doe=2C_J=C3=BCrgen?= <jd@example.org>, \"=?utf-8?b?w4k=?=\r\n"
	    " =?utf-8?b?bWlsaWU=?=\" <em@example.org>,\r\n"
	    " =?utf-8?b?Q2zDqW1lbnQ=?= =?utf-8?b?IEFkw6g=?= (=?utf-8?q?ignored?=) <ca@example.org>,\r\n"
	    " =?utf-8?q?x?=@example.org, plain@example.org (=?utf-8?b?Q29tbWVudCDDqQ==?=)\r\n"
	    "Cc: Team: =?iso-8859-1?q?Ren=E9e?= =?iso-8859-1?q?_Dupont?= <rd@example.fr>;\r\n"
	    "\r\nhi\r\n", NULL, NULL);
	static const char *const to[][2] = {
		{ "SMTP:jd@example.org", "Doe, Jürgen" },
		{ "SMTP:em@example.org", "Émilie" },
		{ "SMTP:ca@example.org", "Clément Adè" },
		{ "SMTP:=?utf-8?q?x?=@example.org", "" },
		{ "SMTP:plain@example.org", "Comment é" },
	};
	const MsgParty *p;
	char *name;

	EXPECT(m != NULL, "translated");
	if (!m)
		return;
	name = seen(m->from.name);
	EXPECT(strcmp(name, "Françoise Bézier-Dupont de la Vallée-Poussin") == 0,
	    "a From name in two base64 words, the first ending in '=': \"%s\"", name);
	g_free(name);
	EXPECT(m->to->len == G_N_ELEMENTS(to), "%u To entries, want %zu (a comma inside an "
	    "encoded-word is text)", m->to->len, G_N_ELEMENTS(to));
	for (guint i = 0; i < G_N_ELEMENTS(to); i++) {
		p = party(m->to, i);
		name = p ? seen(p->name) : g_strdup("(none)");
		EXPECT(p && strcmp(p->addr, to[i][0]) == 0, "To %u address %s, want %s", i + 1,
		    p ? p->addr : "(none)", to[i][0]);
		EXPECT(strcmp(name, to[i][1]) == 0, "To %u name \"%s\", want \"%s\"", i + 1, name,
		    to[i][1]);
		g_free(name);
	}
	p = party(m->cc, 0);
	name = p ? seen(p->name) : g_strdup("(none)");
	EXPECT(strcmp(name, "Renée Dupont") == 0, "a group member's name: \"%s\"", name);
	g_free(name);
	msg_free(m);
}

/* A file name as Outlook and Thunderbird write it: RFC 2047 words in a quoted
 * parameter value, split, the first base64 word ending in '='. */
static void
test_rfc2047_file_name(void)
{
	LegacyMessage *m = tr("From: a@example.org\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed; boundary=\"b;x\"\r\n\r\n--b;x\r\n"
	    "Content-Type: text/plain\r\n\r\ntext\r\n--b;x\r\n"
	    "Content-Type: application/octet-stream; name=\"=?utf-8?b?w6k=?=\"\r\n"
	    "Content-Disposition: attachment; size=3; filename=\"=?utf-8?b?UsOpc3Vtw6k=?=\r\n"
	    " =?utf-8?b?IGQnw6l0w6k=?= =?utf-8?q?_=E2=80=93_final.pdf?=\"; x=\"y;z\"\r\n\r\n"
	    "abc\r\n--b;x\r\n"
	    "Content-Type: application/octet-stream; name=\"=?iso-8859-1?q?r=E9sum=E9?=\r\n"
	    " =?iso-8859-1?q?_2=2Etxt?=\"\r\n\r\nabc\r\n--b;x--\r\n", NULL, NULL);
	MsgAttachment *a;
	char *name;

	EXPECT(m && m->attachments->len == 2, "two attachments");
	if (!m || m->attachments->len != 2) {
		msg_free(m);
		return;
	}
	a = m->attachments->pdata[0];
	name = seen(a->name);
	EXPECT(strcmp(name, "Résumé d'été – final.pdf") == 0, "filename= in three words: \"%s\"",
	    name);
	g_free(name);
	a = m->attachments->pdata[1];
	name = seen(a->name);
	EXPECT(strcmp(name, "résumé 2.txt") == 0, "name= in two words: \"%s\"", name);
	g_free(name);
	msg_free(m);
}

/* A message with one base64 attachment "data.bin" whose encoded text is b64. */
static LegacyMessage *
with_base64(const char *b64, MimeInStats *st)
{
	char *text = g_strdup_printf("From: a@example.org\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n"
	    "Content-Type: text/plain\r\n\r\nSee the file.\r\n--b\r\n"
	    "Content-Type: application/octet-stream; name=\"data.bin\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n%s\r\n--b--\r\n", b64);
	LegacyMessage *m = tr(text, st, NULL);

	g_free(text);
	return m;
}

/* Broken base64: what can be decoded is kept, and the legacy text (not only
 * the log) names the attachment and says what could not be decoded. */
static void
test_broken_base64(void)
{
	static const struct {
		const char *b64;
		const char *bytes;      /* what the attachment must hold */
		gsize n;
		const char *says;       /* in the body, NULL: nothing said */
	} k[] = {
		{ "AAECAw==", "\0\1\2\3", 4, NULL },
		/* characters outside the alphabet are skipped */
		{ "AAEC!!Aw==", "\0\1\2\3", 4, "data.bin" },
		/* padding in the middle (two encodings run together): both halves */
		{ "AAE=AgM=", "\0\1\2\3", 4, "data.bin" },
		{ "QQ==\r\nQg==\r\nQw==", "ABC", 3, "data.bin" },
		/* a cut last group: the whole bytes before it */
		{ "AAECA", "\0\1\2", 3, "data.bin" },
		/* nothing decodable at all */
		{ "!!!!", "", 0, "data.bin" },
	};

	for (gsize i = 0; i < G_N_ELEMENTS(k); i++) {
		MimeInStats st = { 0 };
		LegacyMessage *m = with_base64(k[i].b64, &st);
		MsgAttachment *a = m && m->attachments->len == 1 ? m->attachments->pdata[0] : NULL;
		gsize n = 0;
		const char *d = a ? g_bytes_get_data(a->data, &n) : NULL;
		char *body = m && m->body ? utf8_of("CP1252", g_bytes_get_data(m->body, NULL),
		    g_bytes_get_size(m->body)) : g_strdup("");

		EXPECT(a != NULL, "case %zu: one attachment", i);
		EXPECT(a && n == k[i].n && (n == 0 || memcmp(d, k[i].bytes, n) == 0),
		    "case %zu (%s): %zu bytes decoded, want %zu", i, k[i].b64, n, k[i].n);
		if (k[i].says) {
			EXPECT(strstr(body, "could not be decoded") && strstr(body, k[i].says),
			    "case %zu: the legacy text names the damaged attachment: \"%s\"", i,
			    body);
			EXPECT(has_note(&st, "base64"), "case %zu: and the log says so", i);
		} else {
			EXPECT(!strstr(body, "could not be decoded"), "case %zu: good base64, "
			    "nothing said: \"%s\"", i, body);
		}
		g_free(body);
		msg_free(m);
		mime_in_stats_clear(&st);
	}
}

/* RFC 2231 continuations (RFC 2231 3) are put in the order of their numbers,
 * whatever order they come in, and end at the first missing number. */
static void
test_rfc2231_order(void)
{
	static const struct {
		const char *params;
		const char *want;
	} k[] = {
		{ "; filename*0=\"abc\"; filename*1=\"def.txt\"", "abcdef.txt" },
		{ "; filename*1=\"def.txt\"; filename*0=\"abc\"", "abcdef.txt" },
		{ "; filename*2=\"ghi.txt\"; filename*0*=utf-8''%C3%A9t; filename*1*=%C3%A9_;"
		  " filename*99=\"junk\"", "été_ghi.txt" },
		/* a gap: what comes after it is not part of the name */
		{ "; filename*0=\"first\"; filename*2=\"third\"", "first" },
		{ "; filename*0*=iso-8859-1'de'r%E9sum%E9.pdf", "résumé.pdf" },
		{ "; filename*=utf-8''%C3%BCber.txt", "über.txt" },
		/* a value split inside a character by a broken mailer comes whole again */
		{ "; filename*0*=utf-8''a%C3; filename*1*=%BCb.txt", "aüb.txt" },
	};

	for (gsize i = 0; i < G_N_ELEMENTS(k); i++) {
		char *text = g_strdup_printf("From: a@example.org\r\nMIME-Version: 1.0\r\n"
		    "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n"
		    "Content-Type: text/plain\r\n\r\ntext\r\n--b\r\n"
		    "Content-Type: application/octet-stream\r\n"
		    "Content-Disposition: attachment%s\r\n\r\nabc\r\n--b--\r\n",
		    k[i].params);
		LegacyMessage *m = tr(text, NULL, NULL);
		MsgAttachment *a = m && m->attachments->len == 1 ? m->attachments->pdata[0] : NULL;
		char *name = a ? seen(a->name) : g_strdup("(none)");

		EXPECT(strcmp(name, k[i].want) == 0, "case %zu: \"%s\", want \"%s\"", i,
		    name, k[i].want);
		g_free(name);
		g_free(text);
		msg_free(m);
	}
}

/* An encoded-word holding raw 8-bit bytes (20 of 371 real messages): the
 * bytes are read in the word's charset. */
static void
test_rfc2047_raw_8bit(void)
{
	static const struct {
		const char *raw;
		const char *want;
	} subjects[] = {
		{ "=?iso-8859-1?Q?Fr\xf6" "sche?=", "Frösche" },
		{ "=?iso-8859-1?q?Fr\xf6" "sche_und_Kr=F6ten?= heute", "Frösche und Kröten heute" },
		{ "=?utf-8?Q?Gr\xc3\xbc\xc3\x9f" "e?=", "Grüße" },
		{ "=?windows-1252?Q?\x93" "quoted\x94?=", "“quoted”" },
	};

	for (gsize i = 0; i < G_N_ELEMENTS(subjects); i++) {
		char *text = g_strdup_printf("From: a@example.org\r\nSubject: %s\r\n\r\nhi\r\n",
		    subjects[i].raw);
		LegacyMessage *m = tr(text, NULL, NULL);
		char *subj = m ? seen(m->subject) : g_strdup("(none)");

		EXPECT(strcmp(subj, subjects[i].want) == 0, "subject %zu: \"%s\", want \"%s\"", i,
		    subj, subjects[i].want);
		g_free(subj);
		g_free(text);
		msg_free(m);
	}
}

static void
test_locale_independent(void)
{
	static const char *const locales[] = { "C", "C.UTF-8" };
	static const char *const files[] = { "utf-8-mixed.eml", "rfc2047-names.eml",
	    "8bit-headers.eml", "unknown-charset.eml", "rfc2231-filename.eml" };

	for (gsize f = 0; f < G_N_ELEMENTS(files); f++) {
		GByteArray *ref = NULL;
		GBytes *in = load(files[f]);

		if (!in)
			continue;
		for (gsize l = 0; l < G_N_ELEMENTS(locales); l++) {
			gsize len;
			const char *data = g_bytes_get_data(in, &len);
			LegacyMessage *m;
			GByteArray *enc = g_byte_array_new();

			setlocale(LC_ALL, locales[l]);
			m = translate_bytes(data, len, "CP850", NULL, NULL);
			if (m && validates(m, NULL))
				msg_encode(m, enc, NULL);
			EXPECT(enc->len > 0, "%s under %s: encodes", files[f], locales[l]);
			if (!ref)
				ref = enc;
			else {
				EXPECT(enc->len == ref->len && memcmp(enc->data, ref->data, enc->len) == 0,
				    "%s: the same entry bytes under %s as under C", files[f],
				    locales[l]);
				g_byte_array_unref(enc);
			}
			msg_free(m);
		}
		if (ref)
			g_byte_array_unref(ref);
		g_bytes_unref(in);
	}
	setlocale(LC_ALL, "C");
}

int
main(void)
{
	static const CuTest tests[] = {
		{ "corpus: what a user sees in CP850 and CP1252", test_corpus },
		{ "a huge header: subject cut, long To kept", test_huge_header },
		{ "an unparseable From keeps its text as the name", test_from_unparseable },
		{ "To: groups flattened, bad addresses dropped and noted",
		  test_to_dropped_and_groups },
		{ "attachment names: safe, unique, bounded, never empty", test_attachment_names },
		{ "1,000-deep nesting: no crash, the deep part one attachment", test_deep_nesting },
		{ "limits: attachments, hops, size are errors", test_limits },
		{ "input that is not mail", test_not_mail },
		{ "an unsupported codepage is an error", test_unsupported_codepage },
		{ "HTML: tables, pre, links, scripts, entities", test_text_attachments_and_html_details },
		{ "RFC 2047: split words, adjacent words, B and Q, charsets, malformed words",
		  test_rfc2047_split_words },
		{ "RFC 2047: display names in From, To and Cc", test_rfc2047_display_names },
		{ "RFC 2047: file names in quoted parameters, split", test_rfc2047_file_name },
		{ "broken base64: what decodes is kept, the text names what did not",
		  test_broken_base64 },
		{ "RFC 2231: continuations in number order, ending at a gap", test_rfc2231_order },
		{ "RFC 2047: raw 8-bit bytes in a word read in its charset", test_rfc2047_raw_8bit },
		{ "the same bytes under C and C.UTF-8", test_locale_independent },
		{ NULL, NULL },
	};

	return cu_run("mime_in", tests);
}
