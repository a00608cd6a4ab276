/* test_dsn_build.c - RFC 3464 delivery reports, built and read back with GMime.
 *
 * Each report is parsed again by GMime: its type and report-type, its parts
 * in order, the delivery-status fields read with a small field reader of
 * our own (groups cut at empty lines, folded lines joined), the returned
 * message or header section compared with the original.  With PG_DSN_OUT
 * naming a directory, the reports are also written there for
 * tests/e2e/dsn_check.py.
 */
#include "config.h"

#include <string.h>

#include <gmime/gmime.h>

#include "cu_run.h"
#include "report/dsn_build.h"

/* 2023-11-14 22:13:20 UTC and later. */
#define T0 G_GINT64_CONSTANT(1700000000)
#define T0_TEXT "Tue, 14 Nov 2023 22:13:20 +0000"
#define T1_TEXT "Tue, 14 Nov 2023 22:30:00 +0000"
#define T2_TEXT "Fri, 17 Nov 2023 22:13:20 +0000"

static const char ORIGINAL[] =
    "Received: from client.example.net by gw.example.org; " T0_TEXT "\r\n"
    "From: Alice <alice@example.net>\r\n"
    "To: bob@example.org, carol@example.org\r\n"
    "Subject: Quarterly figures\r\n"
    "Date: " T0_TEXT "\r\n"
    "Message-ID: <q3@example.net>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=us-ascii\r\n"
    "\r\n"
    "The figures are attached.\r\n"
    "\r\n"
    "Alice\r\n";
/* Its header section: up to and with the CRLF before the empty line. */
#define ORIGINAL_HEADER_LEN (strstr(ORIGINAL, "\r\n\r\n") - ORIGINAL + 2)

/* ---- reading a report back --------------------------------------------------- */

typedef struct {
	GMimeMessage *message;
	GMimeMultipart *report;
	GPtrArray *groups;              /* GHashTable: lower-case field name -> value */
} Parsed;

/* The delivery-status fields: groups cut at empty lines, folded lines joined. */
static GPtrArray *
read_fields(const char *text, gsize len)
{
	GPtrArray *groups = g_ptr_array_new_with_free_func((GDestroyNotify)g_hash_table_unref);
	GHashTable *cur = NULL;
	GString *field = g_string_new(NULL);
	gsize i = 0;

	while (i <= len) {
		gsize end = i;
		while (end < len && text[end] != '\n')
			end++;
		gsize line_end = end > i && text[end - 1] == '\r' ? end - 1 : end;
		gboolean cont = line_end > i && (text[i] == ' ' || text[i] == '\t');

		if (!cont && field->len) {
			char *colon = strchr(field->str, ':');
			if (colon && cur) {
				char *name = g_ascii_strdown(field->str, colon - field->str);
				g_hash_table_replace(cur, name, g_strstrip(g_strdup(colon + 1)));
			}
			g_string_truncate(field, 0);
		}
		if (line_end == i) {
			cur = NULL;                 /* an empty line ends a group */
		} else {
			if (!cur) {
				cur = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
				g_ptr_array_add(groups, cur);
			}
			g_string_append_len(field, text + i, (gssize)(line_end - i));
		}
		i = end + 1;
	}
	g_string_free(field, TRUE);
	return groups;
}

/* The decoded content of a leaf part, or the bytes of a message part. */
static GByteArray *
part_bytes(GMimeObject *obj)
{
	GMimeStream *mem = g_mime_stream_mem_new();
	GByteArray *out;

	if (GMIME_IS_PART(obj)) {
		GMimeDataWrapper *w = g_mime_part_get_content(GMIME_PART(obj));
		g_mime_data_wrapper_write_to_stream(w, mem);
	} else if (GMIME_IS_MESSAGE_PART(obj)) {
		GMimeMessage *m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
		GMimeFormatOptions *dos = g_mime_format_options_new();

		g_mime_format_options_set_newline_format(dos, GMIME_NEWLINE_FORMAT_DOS);
		g_mime_object_write_to_stream(GMIME_OBJECT(m), dos, mem);
		g_mime_format_options_free(dos);
	}
	g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(mem), FALSE);
	out = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
	g_object_unref(mem);
	return out;
}

static gboolean
is_type(GMimeObject *obj, const char *type, const char *subtype)
{
	return obj && g_mime_content_type_is_type(g_mime_object_get_content_type(obj), type,
	    subtype);
}

/* Parse a report; check what every report must be: CRLF lines of at most 998
 * bytes, multipart/report; report-type=delivery-status, the readable part
 * first, the delivery-status part second. */
static gboolean
parse_report(GBytes *bytes, Parsed *p, guint parts, int line)
{
	gsize len;
	const char *d = g_bytes_get_data(bytes, &len);
	GMimeStream *stream = g_mime_stream_mem_new_with_buffer(d, len);
	GMimeParser *parser = g_mime_parser_new_with_stream(stream);
	GMimeObject *top, *text, *status;
	gsize col = 0, longest = 0;
	gboolean crlf = TRUE;

	memset(p, 0, sizeof *p);
	for (gsize i = 0; i < len; i++) {
		if (d[i] == '\n') {
			crlf &= i > 0 && d[i - 1] == '\r';
			col = 0;
		} else if (d[i] != '\r' && ++col > longest) {
			longest = col;
		}
	}
	expect_at(crlf, line, "every line ends in CRLF");
	expect_at(longest <= 998, line, "longest line %" G_GSIZE_FORMAT " bytes", longest);
	p->message = g_mime_parser_construct_message(parser, NULL);
	g_object_unref(parser);
	g_object_unref(stream);
	if (!p->message) {
		expect_at(FALSE, line, "GMime parses the report");
		return FALSE;
	}
	top = g_mime_message_get_mime_part(p->message);
	expect_at(is_type(top, "multipart", "report"), line, "multipart/report");
	if (!is_type(top, "multipart", "report"))
		return FALSE;
	expect_at(g_strcmp0(g_mime_object_get_content_type_parameter(top, "report-type"),
	    "delivery-status") == 0, line, "report-type=delivery-status");
	p->report = GMIME_MULTIPART(top);
	expect_at((guint)g_mime_multipart_get_count(p->report) == parts, line, "%d parts, wanted %u",
	    g_mime_multipart_get_count(p->report), parts);
	if ((guint)g_mime_multipart_get_count(p->report) != parts)
		return FALSE;
	text = g_mime_multipart_get_part(p->report, 0);
	status = g_mime_multipart_get_part(p->report, 1);
	expect_at(is_type(text, "text", "plain") && g_strcmp0(
	    g_mime_object_get_content_type_parameter(text, "charset"), "utf-8") == 0, line,
	    "part 1 is text/plain; charset=utf-8");
	expect_at(is_type(status, "message", "delivery-status"), line,
	    "part 2 is message/delivery-status");
	{
		GByteArray *b = part_bytes(status);
		gboolean ascii = TRUE;
		for (guint i = 0; i < b->len; i++)
			ascii &= b->data[i] < 0x80;
		expect_at(ascii, line, "the delivery-status part is US-ASCII");
		p->groups = read_fields((const char *)b->data, b->len);
		g_byte_array_unref(b);
	}
	return TRUE;
}

static void
parsed_clear(Parsed *p)
{
	g_clear_object(&p->message);
	if (p->groups)
		g_ptr_array_unref(p->groups);
	p->groups = NULL;
}

/* Field name of group g is value (NULL: the field is absent). */
static void
field_is(const Parsed *p, guint g, const char *name, const char *value, int line)
{
	const char *got;

	if (!p->groups || g >= p->groups->len) {
		expect_at(FALSE, line, "group %u of the delivery-status part is there", g);
		return;
	}
	got = g_hash_table_lookup(p->groups->pdata[g], name);
	expect_at(g_strcmp0(got, value) == 0, line, "group %u: %s is \"%s\", wanted \"%s\"", g,
	    name, got ? got : "(absent)", value ? value : "(absent)");
}
#define FIELD_IS(p, g, name, value) field_is((p), (g), (name), (value), __LINE__)

/* The decoded readable text (part 1). */
static char *
readable(const Parsed *p)
{
	GByteArray *b = part_bytes(g_mime_multipart_get_part(p->report, 0));
	char *s = g_strndup((const char *)b->data, b->len);

	g_byte_array_unref(b);
	return s;
}

/* With PG_DSN_OUT naming a directory, the report is written there as NAME. */
static void
write_out(GBytes *bytes, const char *name)
{
	const char *dir = g_getenv("PG_DSN_OUT");
	char *path;
	gsize len;
	const char *d = g_bytes_get_data(bytes, &len);

	if (!dir || !g_file_test(dir, G_FILE_TEST_IS_DIR))
		return;
	path = g_build_filename(dir, name, NULL);
	EXPECT(g_file_set_contents(path, d, (gssize)len, NULL), "write %s", path);
	g_free(path);
}

static GBytes *
original_bytes(void)
{
	return g_bytes_new_static(ORIGINAL, strlen(ORIGINAL));
}

static DsnReport
report_base(void)
{
	DsnReport r = { 0 };

	r.reporting_mta = "gw.example.org";
	r.from = "MAILER-DAEMON@gw.example.org";
	r.to = "alice@example.net";
	r.date = T0 + 3600;
	return r;
}

/* ---- the reports ---------------------------------------------------------------- */

static void
test_one_recipient_headers(void)
{
	DsnRcpt rc = {
		.final_recipient = "bob@example.org",
		.original_recipient = "rfc822;Bob@Example.org",
		.action = "failed", .status = "5.1.1",
		.diagnostic_type = "smtp",
		.diagnostic = "550 5.1.1 <bob@example.org>: Recipient address rejected",
		.remote_mta = "mx.example.org",
		.last_attempt = T0 + 1000,
	};
	DsnReport r = report_base();
	GError *e = NULL;
	GBytes *b;
	Parsed p;
	char *text;

	r.envid = "Q3+figures=1 x";
	r.arrival = T0;
	r.about_subject = "Quarterly figures";
	r.original = original_bytes();
	r.rcpts = &rc;
	r.n_rcpts = 1;
	b = dsn_build(&r, &e);
	EXPECT(b != NULL, "built: %s", e ? e->message : "");
	g_clear_error(&e);
	if (!b)
		return;
	write_out(b, "dsn-one.eml");
	if (parse_report(b, &p, 3, __LINE__)) {
		GMimeObject *obj = GMIME_OBJECT(p.message);
		GMimeObject *third = g_mime_multipart_get_part(p.report, 2);
		GByteArray *hdrs = part_bytes(third);

		EXPECT(p.groups->len == 2, "two groups, %u", p.groups->len);
		FIELD_IS(&p, 0, "original-envelope-id", "Q3+2Bfigures+3D1+20x");
		FIELD_IS(&p, 0, "reporting-mta", "dns; gw.example.org");
		FIELD_IS(&p, 0, "arrival-date", T0_TEXT);
		FIELD_IS(&p, 1, "original-recipient", "rfc822; Bob@Example.org");
		FIELD_IS(&p, 1, "final-recipient", "rfc822; bob@example.org");
		FIELD_IS(&p, 1, "action", "failed");
		FIELD_IS(&p, 1, "status", "5.1.1");
		FIELD_IS(&p, 1, "remote-mta", "dns; mx.example.org");
		FIELD_IS(&p, 1, "diagnostic-code",
		    "smtp; 550 5.1.1 <bob@example.org>: Recipient address rejected");
		FIELD_IS(&p, 1, "last-attempt-date", T1_TEXT);
		FIELD_IS(&p, 1, "will-retry-until", NULL);
		EXPECT(is_type(third, "text", "rfc822-headers"), "RET=HDRS: text/rfc822-headers");
		EXPECT(hdrs->len == (guint)ORIGINAL_HEADER_LEN &&
		    memcmp(hdrs->data, ORIGINAL, hdrs->len) == 0,
		    "the returned header section is the original's (%u bytes, wanted %u)",
		    hdrs->len, (guint)ORIGINAL_HEADER_LEN);
		g_byte_array_unref(hdrs);
		EXPECT(g_strcmp0(g_mime_object_get_header(obj, "Auto-Submitted"), "auto-replied") == 0,
		    "Auto-Submitted: auto-replied");
		EXPECT(g_strcmp0(g_mime_object_get_header(obj, "Subject"),
		    "Undelivered Mail Returned to Sender: Quarterly figures") == 0, "subject: %s",
		    g_mime_object_get_header(obj, "Subject"));
		EXPECT(strstr(g_mime_object_get_header(obj, "From"), "<MAILER-DAEMON@gw.example.org>")
		    != NULL, "From: %s", g_mime_object_get_header(obj, "From"));
		EXPECT(g_strcmp0(g_mime_object_get_header(obj, "To"), "<alice@example.net>") == 0,
		    "To: %s", g_mime_object_get_header(obj, "To"));
		EXPECT(g_strcmp0(g_mime_object_get_header(obj, "Date"),
		    "Tue, 14 Nov 2023 23:13:20 +0000") == 0, "Date: %s",
		    g_mime_object_get_header(obj, "Date"));
		EXPECT(g_str_has_prefix(g_mime_message_get_message_id(p.message), "dsn.") &&
		    g_str_has_suffix(g_mime_message_get_message_id(p.message), "@gw.example.org"),
		    "a Message-ID is made: %s", g_mime_message_get_message_id(p.message));
		text = readable(&p);
		EXPECT(strstr(text, "could not be delivered") && strstr(text, "<bob@example.org>") &&
		    strstr(text, "the mailbox does not exist") &&
		    strstr(text, "mx.example.org answered: 550 5.1.1") &&
		    strstr(text, "\"Quarterly figures\""), "the readable text says what happened:\n%s",
		    text);
		g_free(text);
	}
	parsed_clear(&p);
	{
		/* The same report, the same bytes. */
		GBytes *again = dsn_build(&r, NULL);
		EXPECT(again && g_bytes_equal(b, again), "built twice, the same bytes");
		if (again)
			g_bytes_unref(again);
	}
	g_bytes_unref(b);
	g_bytes_unref(r.original);
}

static void
test_several_recipients_full(void)
{
	DsnRcpt rc[3] = {
		{ .final_recipient = "bob@example.org", .action = "failed", .status = "5.1.1",
		  .diagnostic = "Bob is not known at CORP/HQ (the legacy postoffice)" },
		{ .final_recipient = "carol@example.org", .action = "failed", .status = "5.3.4",
		  .diagnostic = "Nachricht zu gro\xc3\x9f f\xc3\xbcr das Postamt \\x{41} \\y" },
		{ .final_recipient = "dave@example.org", .action = "delivered", .status = "2.0.0",
		  .original_recipient = "rfc822;dave@example.org" },
	};
	DsnReport r = report_base();
	GError *e = NULL;
	GBytes *b;
	Parsed p;

	r.original = original_bytes();
	r.return_full = TRUE;
	r.rcpts = rc;
	r.n_rcpts = 3;
	r.message_id = "report-1@gw.example.org";
	b = dsn_build(&r, &e);
	EXPECT(b != NULL, "built: %s", e ? e->message : "");
	g_clear_error(&e);
	if (!b)
		return;
	write_out(b, "dsn-several.eml");
	if (parse_report(b, &p, 3, __LINE__)) {
		GMimeObject *third = g_mime_multipart_get_part(p.report, 2);
		char *text;

		EXPECT(p.groups->len == 4, "four groups, %u", p.groups->len);
		FIELD_IS(&p, 0, "original-envelope-id", NULL);
		FIELD_IS(&p, 0, "arrival-date", NULL);
		FIELD_IS(&p, 1, "final-recipient", "rfc822; bob@example.org");
		FIELD_IS(&p, 1, "original-recipient", NULL);
		FIELD_IS(&p, 1, "diagnostic-code",
		    "X-Postgate; Bob is not known at CORP/HQ (the legacy postoffice)");
		FIELD_IS(&p, 1, "remote-mta", NULL);
		FIELD_IS(&p, 1, "last-attempt-date", NULL);
		FIELD_IS(&p, 2, "final-recipient", "rfc822; carol@example.org");
		FIELD_IS(&p, 2, "status", "5.3.4");
		FIELD_IS(&p, 2, "diagnostic-code",
		    "X-Postgate; Nachricht zu gro\\x{00DF} f\\x{00FC}r das Postamt "
		    "\\x{005C}x{41} \\y");
		FIELD_IS(&p, 3, "final-recipient", "rfc822; dave@example.org");
		FIELD_IS(&p, 3, "original-recipient", "rfc822; dave@example.org");
		FIELD_IS(&p, 3, "action", "delivered");
		FIELD_IS(&p, 3, "status", "2.0.0");
		FIELD_IS(&p, 3, "diagnostic-code", NULL);
		EXPECT(g_strcmp0(g_mime_message_get_message_id(p.message),
		    "report-1@gw.example.org") == 0, "the Message-ID given is used");
		EXPECT(is_type(third, "message", "rfc822"), "RET=FULL: message/rfc822");
		if (GMIME_IS_MESSAGE_PART(third)) {
			GMimeMessage *m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(third));
			GByteArray *whole = part_bytes(third);
			EXPECT(m && g_strcmp0(g_mime_message_get_subject(m), "Quarterly figures") == 0,
			    "the returned message's subject");
			EXPECT(whole->len == strlen(ORIGINAL) &&
			    memcmp(whole->data, ORIGINAL, whole->len) == 0,
			    "the returned message is the original, byte for byte (%u bytes)",
			    whole->len);
			g_byte_array_unref(whole);
		}
		text = readable(&p);
		EXPECT(strstr(text, "Nachricht zu gro\xc3\x9f f\xc3\xbcr das Postamt") != NULL,
		    "the readable part shows the diagnostic in UTF-8");
		EXPECT(strstr(text, "was delivered to the following") && strstr(text, "dave@"),
		    "and the delivered recipient");
		EXPECT(strstr(text, "Your message is attached") != NULL, "says it is attached");
		g_free(text);
	}
	parsed_clear(&p);
	g_bytes_unref(b);
	g_bytes_unref(r.original);
}

static void
test_delayed(void)
{
	DsnRcpt rc = {
		.final_recipient = "erin@example.com", .action = "delayed", .status = "4.4.1",
		.diagnostic_type = "smtp", .diagnostic = "421 4.4.1 mx.example.com: try later",
		.remote_mta = "mx.example.com", .last_attempt = T0 + 1000,
		.will_retry_until = T0 + 3 * 86400,
	};
	DsnReport r = report_base();
	GError *e = NULL;
	GBytes *b;
	Parsed p;

	r.envid = "abc";
	r.rcpts = &rc;
	r.n_rcpts = 1;
	b = dsn_build(&r, &e);
	EXPECT(b != NULL, "built: %s", e ? e->message : "");
	g_clear_error(&e);
	if (!b)
		return;
	write_out(b, "dsn-delayed.eml");
	if (parse_report(b, &p, 2, __LINE__)) {
		char *text = readable(&p);

		FIELD_IS(&p, 0, "original-envelope-id", "abc");
		FIELD_IS(&p, 1, "action", "delayed");
		FIELD_IS(&p, 1, "status", "4.4.1");
		FIELD_IS(&p, 1, "will-retry-until", T2_TEXT);
		FIELD_IS(&p, 1, "last-attempt-date", T1_TEXT);
		EXPECT(g_str_has_prefix(g_mime_object_get_header(GMIME_OBJECT(p.message), "Subject"),
		    "Delayed Mail"), "subject says delayed");
		EXPECT(strstr(text, "still trying") && strstr(text, "keep trying until " T2_TEXT),
		    "the readable text says until when:\n%s", text);
		g_free(text);
	}
	parsed_clear(&p);
	g_bytes_unref(b);
}

/* RET=FULL of a message that cannot travel as message/rfc822: headers, and why. */
static void
test_full_falls_back(void)
{
	DsnRcpt rc = { .final_recipient = "bob@example.org", .action = "failed",
	    .status = "5.0.0" };
	DsnReport r = report_base();
	GString *orig = g_string_new("Subject: long\r\nFrom: a@example.net\r\n\r\n");
	GBytes *b;
	Parsed p;

	g_string_append(orig, "x");
	for (int i = 0; i < 1200; i++)
		g_string_append_c(orig, 'y');
	g_string_append(orig, "\r\n");
	r.original = g_bytes_new(orig->str, orig->len);
	r.return_full = TRUE;
	r.rcpts = &rc;
	r.n_rcpts = 1;
	b = dsn_build(&r, NULL);
	EXPECT(b != NULL, "built");
	if (b && parse_report(b, &p, 3, __LINE__)) {
		GMimeObject *third = g_mime_multipart_get_part(p.report, 2);
		GByteArray *h = part_bytes(third);
		char *text = readable(&p);

		EXPECT(is_type(third, "text", "rfc822-headers"), "headers instead");
		EXPECT(h->len == strlen("Subject: long\r\nFrom: a@example.net\r\n") &&
		    memcmp(h->data, orig->str, h->len) == 0, "the header section");
		EXPECT(strstr(text, "longer than 998") != NULL, "the text says why: %s", text);
		g_byte_array_unref(h);
		g_free(text);
		parsed_clear(&p);
	}
	if (b)
		g_bytes_unref(b);
	g_bytes_unref(r.original);
	g_string_free(orig, TRUE);
}

/* An 8-bit original goes whole as 8bit; bare LF line ends become CRLF. */
static void
test_eight_bit_and_lf(void)
{
	static const char orig[] = "Subject: caf\xc3\xa9\nFrom: a@example.net\n\nBody \xc3\xa9\n";
	DsnRcpt rc = { .final_recipient = "bob@example.org", .action = "failed",
	    .status = "5.1.1" };
	DsnReport r = report_base();
	GBytes *b;
	Parsed p;

	r.original = g_bytes_new_static(orig, strlen(orig));
	r.return_full = TRUE;
	r.rcpts = &rc;
	r.n_rcpts = 1;
	b = dsn_build(&r, NULL);
	EXPECT(b != NULL, "built");
	if (b && parse_report(b, &p, 3, __LINE__)) {
		GMimeObject *third = g_mime_multipart_get_part(p.report, 2);
		const char *cte = g_mime_object_get_header(third, "Content-Transfer-Encoding");
		gsize len;
		const char *d = g_bytes_get_data(b, &len);

		EXPECT(is_type(third, "message", "rfc822"), "returned whole");
		EXPECT(cte && g_ascii_strcasecmp(cte, "8bit") == 0, "labelled 8bit: %s",
		    cte ? cte : "(none)");
		EXPECT(g_strstr_len(d, (gssize)len,
		    "Subject: caf\xc3\xa9\r\nFrom: a@example.net\r\n\r\nBody \xc3\xa9\r\n") != NULL,
		    "its bytes, with CRLF");
		parsed_clear(&p);
	}
	if (b)
		g_bytes_unref(b);
	g_bytes_unref(r.original);
}

/* A non-ASCII subject is encoded; a long diagnostic folded and read back whole. */
static void
test_subject_and_folding(void)
{
	GString *diag = g_string_new("550 5.7.1");
	DsnRcpt rc = { .final_recipient = "bob@example.org", .action = "failed",
	    .status = "5.7.1", .diagnostic_type = "smtp" };
	DsnReport r = report_base();
	GBytes *b;
	Parsed p;
	char *want;

	for (int i = 0; i < 300; i++)
		g_string_append_printf(diag, " word%d", i);
	g_string_append(diag, " ");
	for (int i = 0; i < 1500; i++)
		g_string_append_c(diag, 'z');
	rc.diagnostic = diag->str;
	r.about_subject = "R\xc3\xa9sum\xc3\xa9 f\xc3\xbcr =?the?= committee, "
	    "\xe2\x82\xac 100 and a rather long tail of words to make it fold twice or more";
	r.rcpts = &rc;
	r.n_rcpts = 1;
	b = dsn_build(&r, NULL);
	EXPECT(b != NULL, "built");
	if (b && parse_report(b, &p, 2, __LINE__)) {
		const char *subject = g_mime_message_get_subject(p.message);
		const char *got = p.groups->len > 1 ?
		    g_hash_table_lookup(p.groups->pdata[1], "diagnostic-code") : NULL;
		gsize len;
		const char *d = g_bytes_get_data(b, &len);

		want = g_strconcat("Undelivered Mail Returned to Sender: ", r.about_subject, NULL);
		EXPECT(g_strcmp0(subject, want) == 0, "subject decodes to \"%s\"", subject);
		EXPECT(g_strstr_len(d, (gssize)len, "=?utf-8?q?") != NULL, "Q encoded-words");
		g_free(want);
		/* Folding keeps the text; the 1500-byte run gains one blank where cut. */
		want = g_strconcat("smtp; ", diag->str, NULL);
		EXPECT(got && strlen(got) == strlen(want) + 1 &&
		    strncmp(got, want, strlen(diag->str) - 600) == 0,
		    "the diagnostic read back whole (%zu bytes, wanted %zu + 1)",
		    got ? strlen(got) : 0, strlen(want));
		g_free(want);
		parsed_clear(&p);
	}
	if (b)
		g_bytes_unref(b);
	g_string_free(diag, TRUE);
}

/* Originals at the edges: no body and no last LF, no header, a NUL byte. */
static void
test_edge_originals(void)
{
#define B(s) (s), sizeof (s) - 1
	static const struct {
		const char *bytes;
		gsize len;
		gboolean full;
		const char *type;       /* of the third part */
		const char *content;    /* its decoded content */
		const char *why;        /* in the readable text, or NULL */
	} cases[] = {
		{ B("Subject: x\r\nFrom: a@example.net"), FALSE, "text/rfc822-headers",
		  "Subject: x\r\nFrom: a@example.net\r\n", NULL },
		{ B("Subject: x\r\nFrom: a@example.net"), TRUE, "message/rfc822", NULL, NULL },
		{ B("\r\nbody only\r\n"), FALSE, "text/rfc822-headers", "", NULL },
		{ B("Subject: x\nFrom: a@example.net\n\nbody\n"), FALSE, "text/rfc822-headers",
		  "Subject: x\r\nFrom: a@example.net\r\n", NULL },
		{ B("Subject: x\r\n\r\nbo\0dy\r\n"), TRUE, "text/rfc822-headers",
		  "Subject: x\r\n", "NUL byte" },
		{ B("Subject: x\r\n\r\nbo\rdy\r\n"), TRUE, "text/rfc822-headers",
		  "Subject: x\r\n", "a CR that ends no line" },
	};
#undef B
	DsnRcpt rc = { .final_recipient = "bob@example.org", .action = "failed",
	    .status = "5.1.1" };

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		DsnReport r = report_base();
		GBytes *b;
		Parsed p;

		r.rcpts = &rc;
		r.n_rcpts = 1;
		r.original = g_bytes_new_static(cases[i].bytes, cases[i].len);
		r.return_full = cases[i].full;
		b = dsn_build(&r, NULL);
		EXPECT(b != NULL, "case %zu built", i);
		if (b && parse_report(b, &p, 3, __LINE__)) {
			GMimeObject *third = g_mime_multipart_get_part(p.report, 2);
			char *type = g_mime_content_type_get_mime_type(
			    g_mime_object_get_content_type(third));
			char *text = readable(&p);

			EXPECT(strcmp(type, cases[i].type) == 0, "case %zu: %s, wanted %s", i, type,
			    cases[i].type);
			if (cases[i].content) {
				GByteArray *c = part_bytes(third);
				EXPECT(c->len == strlen(cases[i].content) && (c->len == 0 ||
				    memcmp(c->data, cases[i].content, c->len) == 0),
				    "case %zu: the returned headers (%u bytes)", i, c->len);
				g_byte_array_unref(c);
			}
			EXPECT(!cases[i].why || strstr(text, cases[i].why), "case %zu: says why", i);
			g_free(type);
			g_free(text);
			parsed_clear(&p);
		}
		if (b)
			g_bytes_unref(b);
		g_bytes_unref(r.original);
	}
}

/* Only successes: delivered, relayed, expanded - the subject and the text say so. */
static void
test_successes(void)
{
	DsnRcpt rc[3] = {
		{ .final_recipient = "bob@example.org", .action = "delivered", .status = "2.0.0" },
		{ .final_recipient = "carol@example.org", .action = "relayed", .status = "2.0.0",
		  .remote_mta = "[192.0.2.7]" },
		{ .final_recipient = "staff@example.org", .action = "expanded", .status = "2.1.5" },
	};
	DsnReport r = report_base();
	GBytes *b;
	Parsed p;

	r.rcpts = rc;
	r.n_rcpts = 3;
	r.original = original_bytes();
	b = dsn_build(&r, NULL);
	EXPECT(b != NULL, "built");
	if (b && parse_report(b, &p, 3, __LINE__)) {
		char *text = readable(&p);

		EXPECT(g_strcmp0(g_mime_message_get_subject(p.message),
		    "Successful Mail Delivery Report") == 0, "subject: %s",
		    g_mime_message_get_subject(p.message));
		FIELD_IS(&p, 2, "action", "relayed");
		FIELD_IS(&p, 2, "remote-mta", "dns; [192.0.2.7]");
		FIELD_IS(&p, 3, "action", "expanded");
		FIELD_IS(&p, 3, "status", "2.1.5");
		EXPECT(strstr(text, "was delivered to the following recipients") &&
		    strstr(text, "send no delivery reports") && strstr(text, "mailing lists") &&
		    !strstr(text, "Why:"), "the text names each success, no reasons:\n%s", text);
		g_free(text);
		parsed_clear(&p);
	}
	if (b)
		g_bytes_unref(b);
	g_bytes_unref(r.original);
}

/* ---- refusals ---------------------------------------------------------------------- */

static void
refused(const DsnReport *r, const char *what, const char *words, int line)
{
	GError *e = NULL;
	GBytes *b = dsn_build(r, &e);

	expect_at(b == NULL && e && e->domain == DSN_ERROR && e->code == DSN_ERROR_INVALID,
	    line, "%s: refused", what);
	expect_at(!e || strstr(e->message, words) != NULL, line, "%s: the error says \"%s\": %s",
	    what, words, e ? e->message : "");
	if (b)
		g_bytes_unref(b);
	g_clear_error(&e);
}
#define REFUSED(r, what, words) refused((r), (what), (words), __LINE__)

static void
test_refusals(void)
{
	DsnRcpt ok = { .final_recipient = "bob@example.org", .action = "failed",
	    .status = "5.1.1" };
	DsnRcpt rc;
	DsnReport r = report_base();
	GBytes *b;

	r.rcpts = &ok;
	r.n_rcpts = 1;
	b = dsn_build(&r, NULL);
	EXPECT(b != NULL, "the base report is fine");
	if (b)
		g_bytes_unref(b);

	r.n_rcpts = 0;
	REFUSED(&r, "no recipient", "no recipient");
	r.n_rcpts = DSN_RCPTS_MAX + 1;
	REFUSED(&r, "too many recipients", "more than the limit");
	r.n_rcpts = 1;
	r.rcpts = NULL;
	REFUSED(&r, "no recipient array", "no recipient");
	r.rcpts = &rc;

#define RCPT_REFUSED(field, value, words) do { \
		rc = ok; rc.field = (value); REFUSED(&r, #field " = " #value, (words)); \
	} while (0)
	RCPT_REFUSED(final_recipient, "bob@example.org\r\nBcc: x", "line break");
	RCPT_REFUSED(final_recipient, "bob@exam\nple.org", "line break");
	RCPT_REFUSED(final_recipient, "b\xc3\xb6" "b@example.org", "US-ASCII");
	RCPT_REFUSED(final_recipient, NULL, "missing");
	RCPT_REFUSED(original_recipient, "rfc822;bob@example.org\r", "line break");
	RCPT_REFUSED(original_recipient, "bob@example.org", "TYPE;ADDRESS");
	RCPT_REFUSED(original_recipient, "rfc 822;bob@example.org", "may not hold");
	RCPT_REFUSED(diagnostic, "550 no\r\nsuch user", "line break");
	RCPT_REFUSED(diagnostic_type, "smtp x", "may not hold");
	RCPT_REFUSED(remote_mta, "mx.example.org\n", "line break");
	RCPT_REFUSED(action, "bounced", "none of failed");
	RCPT_REFUSED(action, NULL, "none of failed");
	RCPT_REFUSED(status, "4.1.1", "class 5");
	RCPT_REFUSED(status, "5.1", "RFC 3463");
	RCPT_REFUSED(status, NULL, "RFC 3463");
	RCPT_REFUSED(will_retry_until, T0, "only for action delayed");
#undef RCPT_REFUSED
	rc = ok;
	rc.action = "delivered";
	REFUSED(&r, "delivered with 5.1.1", "class 2");
	rc = ok;

	r.about_subject = "Quarterly\r\n figures";
	REFUSED(&r, "CR LF in the subject", "line break");
	r.about_subject = NULL;
	r.envid = "abc\ndef";
	REFUSED(&r, "LF in the envelope id", "line break");
	r.envid = NULL;
	r.to = "";
	REFUSED(&r, "the null sender", "null sender");
	r.to = "alice@example.net\r\n";
	REFUSED(&r, "CR LF in To", "line break");
	r.to = "alice";
	REFUSED(&r, "To without a domain", "local@domain");
	r.to = "alice@example.net";
	r.reporting_mta = NULL;
	REFUSED(&r, "no Reporting-MTA", "missing");
	r.reporting_mta = "gw example org";
	REFUSED(&r, "a blank in Reporting-MTA", "may not hold");
	r.reporting_mta = "gw.example.org";
	r.message_id = "<x@y>";
	REFUSED(&r, "a Message-ID with brackets", "Message-ID");
	r.message_id = NULL;
	r.from = NULL;
	REFUSED(&r, "no From", "missing");
}

int
main(void)
{
	static const CuTest tests[] = {
		{ "one recipient, RET=HDRS, envid and ORCPT: every field", test_one_recipient_headers },
		{ "several recipients, RET=FULL: groups in order, the message whole",
		  test_several_recipients_full },
		{ "delayed, no original: Will-Retry-Until, two parts", test_delayed },
		{ "RET=FULL of an unsendable original: its headers, and why", test_full_falls_back },
		{ "an 8-bit original with LF line ends: 8bit, CRLF", test_eight_bit_and_lf },
		{ "a UTF-8 subject encoded, a long diagnostic folded", test_subject_and_folding },
		{ "only successes: delivered, relayed, expanded", test_successes },
		{ "originals at the edges: no body, no header, NUL, bare CR", test_edge_originals },
		{ "unusable fields are refused, saying which", test_refusals },
		{ NULL, NULL },
	};
	int rc;

	g_mime_init();
	rc = cu_run("dsn_build", tests);
	g_mime_shutdown();
	return rc;
}
