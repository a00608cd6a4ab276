/* test_smtp_data.c - unit tests of gateway/smtpd/smtp_data.c.
 *
 * Checks the DATA stream rules of RFC 5321 4.1.1.4 and 4.5.2 and postgate's
 * SMTP smuggling defence: only CR LF "." CR LF ends data; dot-stuffing is
 * removed; a bare CR, a bare LF or a NUL refuses the message but never ends
 * it early (each of the known smuggling vectors, by name); the size and line
 * limits; the Received: count and the Message-ID of the header section.
 * Every stream is fed whole, one byte at a time and in many random pieces,
 * each piece an exact-size heap copy (ASan sees any read past it), and every
 * way of feeding must give the same result.
 */
#include "config.h"

#include <string.h>

#include "cu_run.h"
#include "smtpd/smtp_data.h"

/* What feeding a stream gives, everything a caller can see. */
typedef struct {
	gsize consumed;
	gboolean end;
	SmtpDataVerdict verdict;
	gint64 size;
	GByteArray *out;
	guint received;
	char *msgid;
	char *reply;
} Result;

static void
result_free(Result *r)
{
	g_byte_array_unref(r->out);
	g_free(r->msgid);
	g_free(r->reply);
}

/* Feed len bytes of text in pieces: piece i has sizes[i % nsizes] bytes
 * (nsizes 0: all at once). */
static Result
feed(const char *text, gsize len, gint64 max_size, gsize max_line, const gsize *sizes,
    gsize nsizes)
{
	SmtpData *d = smtp_data_new(max_size, max_line);
	Result r = { 0 };
	gsize off = 0, i = 0;

	r.out = g_byte_array_new();
	while (off < len) {
		gsize want = nsizes ? sizes[i++ % nsizes] : len;
		gsize piece = MIN(want, len - off);
		char *buf = g_memdup2(text + off, piece);
		gsize n;

		n = smtp_data_feed(d, buf, piece, r.out, &r.end);
		g_free(buf);
		off += n;
		if (r.end)
			break;
		g_assert_cmpuint(n, ==, piece);
	}
	if (len == 0)
		smtp_data_feed(d, text, 0, r.out, &r.end);
	r.consumed = off;
	r.verdict = smtp_data_verdict(d);
	r.size = smtp_data_size(d);
	r.received = smtp_data_received_count(d);
	r.msgid = g_strdup(smtp_data_message_id(d));
	r.reply = g_strdup(smtp_data_reply(d));
	smtp_data_free(d);
	return r;
}

/* out holds exactly the len bytes at want. */
static gboolean
bytes_are(const GByteArray *out, const char *want, gsize len)
{
	return out->len == len && (len == 0 || memcmp(out->data, want, len) == 0);
}

static gboolean
same_result(const Result *a, const Result *b)
{
	return a->consumed == b->consumed && a->end == b->end && a->verdict == b->verdict &&
	    a->size == b->size && bytes_are(a->out, (const char *)b->out->data, b->out->len) &&
	    a->received == b->received &&
	    g_strcmp0(a->msgid, b->msgid) == 0 && g_strcmp0(a->reply, b->reply) == 0;
}

/* Feed text whole, one byte at a time and in 64 random pieces; expect the
 * same result from all and return it. */
static Result
feed_all_ways_at(int line, const char *text, gsize len, gint64 max_size, gsize max_line)
{
	static const gsize one[] = { 1 };
	Result whole = feed(text, len, max_size, max_line, NULL, 0);
	Result r = feed(text, len, max_size, max_line, one, 1);
	GRand *rand = g_rand_new_with_seed((guint32)len * 2654435761u + (guint32)line);
	gboolean same = same_result(&whole, &r);

	result_free(&r);
	for (int k = 0; k < 64 && same; k++) {
		gsize sizes[16];
		for (gsize i = 0; i < G_N_ELEMENTS(sizes); i++)
			sizes[i] = (gsize)g_rand_int_range(rand, 1, k < 32 ? 4 : 40);
		r = feed(text, len, max_size, max_line, sizes, G_N_ELEMENTS(sizes));
		same = same_result(&whole, &r);
		result_free(&r);
	}
	g_rand_free(rand);
	expect_at(same, line, "feeding \"%.*s\" whole, byte by byte or in pieces gives one result",
	    (int)MIN(len, 60), text);
	return whole;
}

#define FEED(text, max_size, max_line) \
	feed_all_ways_at(__LINE__, text, sizeof(text) - 1, max_size, max_line)

/* The content appended is exactly want. */
#define OUT_IS(r, want) \
	EXPECT(bytes_are((r).out, want, sizeof(want) - 1), \
	    "the content is \"%s\", got \"%.*s\"", want, (int)(r).out->len, (const char *)(r).out->data)

/* ---- the end of data and dot-stuffing ---------------------------------------------- */

static void
test_message_ends_at_crlf_dot_crlf(void)
{
	Result r = FEED("Subject: hi\r\n\r\nbody\r\n.\r\n", 0, 0);

	EXPECT(r.end && r.consumed == 24, "the end is found after \".\\r\\n\" (consumed %zu)",
	    r.consumed);
	EXPECT(r.verdict == SMTP_DATA_OK && r.reply == NULL, "a clean message is OK, no reply");
	OUT_IS(r, "Subject: hi\r\n\r\nbody\r\n");
	EXPECT(r.size == 21, "the size counts the content with its CRLFs: %" G_GINT64_FORMAT,
	    r.size);
	result_free(&r);
}

static void
test_dot_line_first_is_an_empty_message(void)
{
	Result r = FEED(".\r\n", 0, 0);

	EXPECT(r.end && r.consumed == 3 && r.size == 0 && r.out->len == 0 &&
	    r.verdict == SMTP_DATA_OK, "\".\\r\\n\" at the start is an empty message");
	result_free(&r);
}

static void
test_bytes_after_the_end_are_left_for_the_caller(void)
{
	const char text[] = "x\r\n.\r\nQUIT\r\n";
	SmtpData *d = smtp_data_new(0, 0);
	GByteArray *out = g_byte_array_new();
	gboolean end = FALSE;
	gsize n = smtp_data_feed(d, text, sizeof text - 1, out, &end);
	Result r;

	EXPECT(end && n == 6, "the end is after \".\\r\\n\", QUIT is left (consumed %zu)", n);
	n = smtp_data_feed(d, text + n, sizeof text - 1 - n, out, &end);
	EXPECT(end && n == 0 && out->len == 3, "after the end nothing more is consumed");
	g_byte_array_unref(out);
	smtp_data_free(d);
	r = FEED("x\r\n.\r\nMAIL FROM:<a@b>\r\n.\r\n", 0, 0);
	EXPECT(r.end && r.consumed == 6, "pipelined commands are left, whatever they hold");
	result_free(&r);
}

static void
test_dot_stuffing_is_removed(void)
{
	Result r = FEED("..x\r\n..\r\n...\r\n. y\r\na.b\r\n.\r\n", 0, 0);

	OUT_IS(r, ".x\r\n.\r\n..\r\n y\r\na.b\r\n");
	EXPECT(r.end && r.verdict == SMTP_DATA_OK, "dot-stuffed lines do not end data");
	EXPECT(r.size == 20, "the size counts unstuffed content: %" G_GINT64_FORMAT, r.size);
	result_free(&r);
}

static void
test_lines_like_the_end_are_not_the_end(void)
{
	static const char text[] = "a\r\n. \r\n.x\r\n..\r\n.\r\r\n";
	Result r = FEED(text, 0, 0);

	EXPECT(!r.end && r.consumed == sizeof text - 1, "no \"\\r\\n.\\r\\n\" in the stream, no end");
	result_free(&r);
	r = FEED("a\r\n.\r", 0, 0);
	EXPECT(!r.end && r.verdict == SMTP_DATA_OK, "\"\\r\\n.\\r\" is not yet anything");
	result_free(&r);
}

static void
test_unfinished_stream_consumes_everything(void)
{
	Result r = FEED("Subject: x\r\n\r\nno end here\r\n", 0, 0);

	EXPECT(!r.end && r.consumed == 27 && r.verdict == SMTP_DATA_OK,
	    "a stream without the end is consumed whole");
	OUT_IS(r, "Subject: x\r\n\r\nno end here\r\n");
	result_free(&r);
}

/* ---- bare CR, bare LF, NUL and SMTP smuggling --------------------------------------- */

static void
test_bare_cr_bare_lf_and_nul_refuse_the_message(void)
{
	Result r = FEED("ok\r\nbad\rline\r\n.\r\n", 0, 0);

	EXPECT(r.verdict == SMTP_DATA_BARE_CR && r.end, "a bare CR refuses, data still ends");
	EXPECT(r.reply && strcmp(r.reply, "550 5.6.0 Message refused: bare CR in message data "
	    "(see RFC 5321 2.3.8)") == 0, "the bare CR reply: %s", r.reply);
	OUT_IS(r, "ok\r\nbad");
	result_free(&r);

	r = FEED("ok\r\nbad\nline\r\n.\r\n", 0, 0);
	EXPECT(r.verdict == SMTP_DATA_BARE_LF && r.end, "a bare LF refuses");
	EXPECT(r.reply && strcmp(r.reply, "550 5.6.0 Message refused: bare LF in message data "
	    "(see RFC 5321 2.3.8)") == 0, "the bare LF reply: %s", r.reply);
	OUT_IS(r, "ok\r\nbad");
	result_free(&r);

	r = FEED("ok\r\nbad\0line\r\n.\r\n", 0, 0);
	EXPECT(r.verdict == SMTP_DATA_NUL && r.end, "a NUL refuses");
	EXPECT(r.reply && strncmp(r.reply, "550 5.6.0 Message refused: NUL in message data", 46) == 0,
	    "the NUL reply: %s", r.reply);
	OUT_IS(r, "ok\r\nbad");
	EXPECT(r.size == 14, "the size still counts everything: %" G_GINT64_FORMAT, r.size);
	result_free(&r);

	r = FEED("\n\r\n.\r\n", 0, 0);
	EXPECT(r.verdict == SMTP_DATA_BARE_LF && r.end && r.consumed == 6,
	    "a bare LF first of all");
	result_free(&r);
	r = FEED("x\r\r\n.\r\n", 0, 0);
	EXPECT(r.verdict == SMTP_DATA_BARE_CR && r.end && r.consumed == 7,
	    "CR CR LF: the first CR is bare, the second ends the line");
	result_free(&r);
	r = FEED("x\r\n.\rx\r\n.\r\n", 0, 0);
	EXPECT(r.verdict == SMTP_DATA_BARE_CR && r.end && r.consumed == 11,
	    "\".\\rx\": the CR after the dot is bare");
	result_free(&r);
}

static void
test_first_problem_wins(void)
{
	Result r = FEED("a\nb\rc\0d\r\n.\r\n", 0, 0);

	EXPECT(r.verdict == SMTP_DATA_BARE_LF, "bare LF, bare CR, NUL: the LF is first");
	result_free(&r);
	r = FEED("a\0b\nc\r\n.\r\n", 0, 0);
	EXPECT(r.verdict == SMTP_DATA_NUL, "NUL then bare LF: NUL");
	result_free(&r);
	r = FEED("abcdefgh\nx\r\n.\r\n", 0, 4);
	EXPECT(r.verdict == SMTP_DATA_LINE_TOO_LONG, "a long line before a bare LF: too long");
	OUT_IS(r, "abcd");
	result_free(&r);
	r = FEED("ab\ncdefgh\r\n.\r\n", 0, 4);
	EXPECT(r.verdict == SMTP_DATA_BARE_LF, "a bare LF before the line is too long: bare LF");
	result_free(&r);
}

/* One smuggling vector: the message, the vector, a second transaction that a
 * broken server would see as commands, the real end, and a pipelined QUIT. */
static void
smuggle_at(int line, const char *name, const char *vec, gsize veclen, SmtpDataVerdict want,
    const char *want_out)
{
	static const char before[] = "Subject: test\r\n\r\nhello";
	static const char second[] = "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nsmuggled";
	static const char real_end[] = "\r\n.\r\n";
	static const char after[] = "QUIT\r\n";
	GByteArray *s = g_byte_array_new();
	Result r;
	gsize end_at;

	for (int twice = 0; twice < 2; twice++) {
		/* Once with the second transaction ended by the real end; once
		 * ended by the vector again, and the real end later still. */
		g_byte_array_set_size(s, 0);
		g_byte_array_append(s, (const guint8 *)before, sizeof before - 1);
		g_byte_array_append(s, (const guint8 *)vec, (guint)veclen);
		g_byte_array_append(s, (const guint8 *)second, sizeof second - 1);
		if (twice) {
			g_byte_array_append(s, (const guint8 *)vec, (guint)veclen);
			g_byte_array_append(s, (const guint8 *)"tail", 4);
		}
		g_byte_array_append(s, (const guint8 *)real_end, sizeof real_end - 1);
		end_at = s->len;
		g_byte_array_append(s, (const guint8 *)after, sizeof after - 1);

		r = feed_all_ways_at(line, (const char *)s->data, s->len, 0, 0);
		expect_at(r.end && r.consumed == end_at, line,
		    "%s: data ends only at the real CRLF.CRLF (%zu), consumed %zu, end %d", name,
		    end_at, r.consumed, r.end);
		expect_at(r.verdict == want, line, "%s: the verdict is %s, got %s", name,
		    smtp_data_verdict_name(want), smtp_data_verdict_name(r.verdict));
		expect_at(bytes_are(r.out, want_out, strlen(want_out)), line,
		    "%s: the content stops where the problem is", name);
		expect_at(r.reply != NULL && strncmp(r.reply, "550 5.6.0 ", 10) == 0, line,
		    "%s: the reply refuses the message: %s", name, r.reply ? r.reply : "(none)");
		result_free(&r);
	}
	g_byte_array_unref(s);
}

#define SMUGGLE(name, vec, want, want_out) \
	smuggle_at(__LINE__, name, vec, sizeof(vec) - 1, want, want_out)

static void
test_smuggling_vectors_never_end_data(void)
{
	static const char hello[] = "Subject: test\r\n\r\nhello";
	static const char hello_crlf[] = "Subject: test\r\n\r\nhello\r\n";

	SMUGGLE("<LF>.<LF>", "\n.\n", SMTP_DATA_BARE_LF, hello);
	SMUGGLE("<LF>.<CR>", "\n.\r", SMTP_DATA_BARE_LF, hello);
	SMUGGLE("<CR>.<LF>", "\r.\n", SMTP_DATA_BARE_CR, hello);
	SMUGGLE("<CR>.<CR>", "\r.\r", SMTP_DATA_BARE_CR, hello);
	SMUGGLE("<LF>.<CR><LF>", "\n.\r\n", SMTP_DATA_BARE_LF, hello);
	SMUGGLE("<CR>.<CR><LF>", "\r.\r\n", SMTP_DATA_BARE_CR, hello);
	SMUGGLE("<CR><LF><NUL>.<CR><LF>", "\r\n\0.\r\n", SMTP_DATA_NUL, hello_crlf);
	SMUGGLE("<CR><LF>.<NUL><CR><LF>", "\r\n.\0\r\n", SMTP_DATA_NUL, hello_crlf);
}

/* ---- limits ---------------------------------------------------------------------------- */

static void
test_size_limit(void)
{
	Result r = FEED("01234567\r\n.\r\n", 10, 0);

	EXPECT(r.verdict == SMTP_DATA_OK && r.size == 10, "exactly max_size bytes is fine");
	result_free(&r);
	r = FEED("0123456789\r\nmore\r\n.\r\nQUIT\r\n", 10, 0);
	EXPECT(r.verdict == SMTP_DATA_TOO_BIG && r.end && r.consumed == 21,
	    "one byte more is too big, and data is read on to its end");
	EXPECT(r.reply && strcmp(r.reply, "552 5.3.4 Message size exceeds fixed limit") == 0,
	    "the too-big reply: %s", r.reply);
	OUT_IS(r, "0123456789");
	EXPECT(r.size == 18, "the size counts on past the limit: %" G_GINT64_FORMAT, r.size);
	result_free(&r);
	r = FEED("0123456789\r\n.\r\n", 0, 0);
	EXPECT(r.verdict == SMTP_DATA_OK, "max_size 0 is no limit");
	result_free(&r);
}

static void
test_line_limit(void)
{
	Result r = FEED("12345\r\n..2345\r\n.\r\n", 0, 5);

	EXPECT(r.verdict == SMTP_DATA_OK, "lines of max_line bytes are fine; a stuffing dot "
	    "does not count (RFC 5321 4.5.3.1.6)");
	result_free(&r);
	r = FEED("12345\r\n123456\r\nx\r\n.\r\n", 0, 5);
	EXPECT(r.verdict == SMTP_DATA_LINE_TOO_LONG && r.end && r.consumed == 21,
	    "a line of max_line + 1 bytes is too long, data read on to the end");
	EXPECT(r.reply && strcmp(r.reply, "550 5.6.0 Message refused: line longer than 5 bytes") == 0,
	    "the line reply names the limit: %s", r.reply);
	OUT_IS(r, "12345\r\n12345");
	result_free(&r);
	r = FEED("123456789012345678901234567890\r\n.\r\n", 0, 0);
	EXPECT(r.verdict == SMTP_DATA_OK, "max_line 0 is no limit");
	result_free(&r);
}

static void
test_gigabytes_fed_in_pieces(void)
{
	/* More than 4 GiB of content: the counts must not wrap, and nothing
	 * but the caller's buffer may grow.  out is NULL: counted, not kept. */
	const gsize piece = 80 * 13107;    /* whole lines of 80 */
	const gint64 total = (G_GINT64_CONSTANT(1) << 32) + 3 * (gint64)piece;
	char *buf = g_malloc(piece);
	SmtpData *d = smtp_data_new(G_GINT64_CONSTANT(1) << 31, SMTP_DATA_LINE_RFC_MAX);
	gboolean end = FALSE;
	gint64 fed = 0;

	for (gsize i = 0; i < piece; i += 80) {
		memset(buf + i, 'x', MIN(78, piece - i));
		if (i + 80 <= piece)
			memcpy(buf + i + 78, "\r\n", 2);
	}
	while (fed < total) {
		gsize n = smtp_data_feed(d, buf, piece, NULL, &end);
		EXPECT(n == piece && !end, "a piece is consumed whole");
		if (n != piece)
			break;
		fed += (gint64)n;
	}
	smtp_data_feed(d, ".\r\n", 3, NULL, &end);
	EXPECT(end && smtp_data_size(d) == fed, "%" G_GINT64_FORMAT " bytes counted, got %"
	    G_GINT64_FORMAT, fed, smtp_data_size(d));
	EXPECT(smtp_data_verdict(d) == SMTP_DATA_TOO_BIG, "past 2 GiB it is too big");
	smtp_data_free(d);
	g_free(buf);
}

/* ---- the header section ------------------------------------------------------------------ */

static void
test_received_fields_in_the_header_section_are_counted(void)
{
	Result r = FEED("Received: from a\r\nreceived: from b\r\n\tby c\r\nRECEIVED:d\r\n"
	    "Received : obs\r\nX-Received: no\r\nReceived-SPF: pass\r\nSubject: x\r\n"
	    " Received: continuation\r\n"
	    "\r\nReceived: in the body\r\n.\r\n", 0, 0);

	EXPECT(r.received == 4, "four Received: fields (any case, obs blank before ':'), "
	    "not X-Received, Received-SPF, a continuation or the body: got %u", r.received);
	result_free(&r);
}

static void
test_field_name_split_between_feeds(void)
{
	SmtpData *d = smtp_data_new(0, 0);
	gboolean end;

	smtp_data_feed(d, "Rece", 4, NULL, &end);
	smtp_data_feed(d, "ived: x\r\nMessage-", 17, NULL, &end);
	smtp_data_feed(d, "ID: <a@b>\r", 10, NULL, &end);
	smtp_data_feed(d, "\n\r\n.\r\n", 6, NULL, &end);
	EXPECT(end && smtp_data_received_count(d) == 1, "a name split between feeds is counted");
	EXPECT(g_strcmp0(smtp_data_message_id(d), "<a@b>") == 0,
	    "a Message-ID split between feeds is found");
	smtp_data_free(d);
}

static void
test_no_header_section(void)
{
	Result r = FEED("\r\nReceived: x\r\nMessage-ID: <x@y>\r\n.\r\n", 0, 0);

	EXPECT(r.received == 0 && r.msgid == NULL, "an empty first line: no header section");
	result_free(&r);
	r = FEED("hello world\r\nReceived: x\r\n.\r\n", 0, 0);
	EXPECT(r.received == 0, "a first line that is no field: no header section");
	result_free(&r);
	r = FEED(" Received: x\r\n.\r\n", 0, 0);
	EXPECT(r.received == 0, "a continuation with no field before: no header section");
	result_free(&r);
	r = FEED("Received: a\r\nnot a field\r\nReceived: b\r\n.\r\n", 0, 0);
	EXPECT(r.received == 1, "a line that is no field ends the header section");
	result_free(&r);
}

static void
test_message_id(void)
{
	Result r = FEED("Message-ID: <a@b.example>\r\n\r\nx\r\n.\r\n", 0, 0);

	EXPECT(g_strcmp0(r.msgid, "<a@b.example>") == 0, "Message-ID: %s", r.msgid);
	result_free(&r);
	r = FEED("From: x\r\nMessage-ID:\r\n <x@y>\r\nSubject: s\r\n\r\n.\r\n", 0, 0);
	EXPECT(g_strcmp0(r.msgid, "<x@y>") == 0, "a folded Message-ID is unfolded: %s", r.msgid);
	result_free(&r);
	r = FEED("message-id:   <x\r\n\t@y>  \r\n.\r\n", 0, 0);
	EXPECT(g_strcmp0(r.msgid, "<x\t@y>") == 0,
	    "unfolding keeps the blank, the ends are trimmed: \"%s\"", r.msgid);
	result_free(&r);
	r = FEED("Message-ID: <first@x>\r\nMessage-ID: <second@x>\r\n\r\n.\r\n", 0, 0);
	EXPECT(g_strcmp0(r.msgid, "<first@x>") == 0, "the first one wins: %s", r.msgid);
	result_free(&r);
	r = FEED("Subject: x\r\n\r\nMessage-ID: <body@x>\r\n.\r\n", 0, 0);
	EXPECT(r.msgid == NULL, "a Message-ID in the body is not one");
	result_free(&r);
	r = FEED("Message-ID: <end@x>\r\n.\r\n", 0, 0);
	EXPECT(g_strcmp0(r.msgid, "<end@x>") == 0, "a Message-ID last before the end: %s",
	    r.msgid);
	result_free(&r);
	r = FEED("Message-ID:   \r\nSubject: x\r\n\r\n.\r\n", 0, 0);
	EXPECT(r.msgid == NULL, "an empty Message-ID is none");
	result_free(&r);
	{
		GString *s = g_string_new("Message-ID: <");
		Result big;
		while (s->len < 2000)
			g_string_append_c(s, 'i');
		g_string_append(s, ">\r\n\r\n.\r\n");
		big = feed_all_ways_at(__LINE__, s->str, s->len, 0, 0);
		EXPECT(big.msgid && strlen(big.msgid) == SMTP_DATA_MSGID_MAX &&
		    big.msgid[0] == '<', "a long Message-ID is cut to %d bytes",
		    SMTP_DATA_MSGID_MAX);
		result_free(&big);
		g_string_free(s, TRUE);
	}
}

static void
test_header_tracking_follows_only_accepted_content(void)
{
	Result r = FEED("Received: a\r\nX: b\nc\r\nReceived: d\r\n.\r\n", 0, 0);

	EXPECT(r.verdict == SMTP_DATA_BARE_LF && r.received == 1,
	    "after a refusal the header section is no longer read: %u", r.received);
	result_free(&r);
}

/* ---- any chunking, any bytes ------------------------------------------------------------ */

static void
test_random_streams_give_one_result_for_any_chunking(void)
{
	static const char *const atoms[] = { "\r\n", "\r", "\n", ".", "\0", "x", "abc ",
		"Received: r", "Message-ID: <m@x>", " ", "\t", "\r\n.", ".\r\n", "\r\n.\r\n", ":",
		"..", "Message-ID:", "\r\n ", "Received" };
	GRand *rand = g_rand_new_with_seed(5321);
	int mismatches = 0;

	for (int k = 0; k < 2000; k++) {
		GString *s = g_string_new(NULL);
		int n = g_rand_int_range(rand, 0, 40);
		gint64 max_size = g_rand_boolean(rand) ? 0 : g_rand_int_range(rand, 1, 200);
		gsize max_line = g_rand_boolean(rand) ? 0 : (gsize)g_rand_int_range(rand, 1, 30);
		Result whole, r;
		gsize sizes[8];

		for (int i = 0; i < n; i++) {
			const char *a = atoms[g_rand_int_range(rand, 0, G_N_ELEMENTS(atoms))];
			g_string_append_len(s, a, a[0] ? (gssize)strlen(a) : 1);
		}
		whole = feed(s->str, s->len, max_size, max_line, NULL, 0);
		for (int j = 0; j < 8; j++) {
			for (gsize i = 0; i < G_N_ELEMENTS(sizes); i++)
				sizes[i] = (gsize)g_rand_int_range(rand, 1, j == 0 ? 2 : 12);
			r = feed(s->str, s->len, max_size, max_line, sizes, G_N_ELEMENTS(sizes));
			if (!same_result(&whole, &r))
				mismatches++;
			result_free(&r);
		}
		/* The content never holds a bare CR, bare LF or NUL. */
		for (guint i = 0; i < whole.out->len; i++) {
			guint8 c = whole.out->data[i];
			if (c == 0 || (c == '\n' && (i == 0 || whole.out->data[i - 1] != '\r')) ||
			    (c == '\r' && i + 1 < whole.out->len && whole.out->data[i + 1] != '\n'))
				mismatches++;
		}
		result_free(&whole);
		g_string_free(s, TRUE);
	}
	g_rand_free(rand);
	EXPECT(mismatches == 0, "2000 random streams: one result for every chunking, clean "
	    "content (%d mismatches)", mismatches);
}

static void
test_null_out_counts_the_same(void)
{
	const char text[] = "Received: a\r\nMessage-ID: <m@x>\r\n\r\nbody\r\n..x\r\n.\r\n";
	SmtpData *d = smtp_data_new(0, 0);
	gboolean end;
	Result r = FEED(text, 0, 0);
	gsize n = smtp_data_feed(d, text, sizeof text - 1, NULL, &end);

	EXPECT(end && n == r.consumed && smtp_data_size(d) == r.size &&
	    smtp_data_received_count(d) == 1 &&
	    g_strcmp0(smtp_data_message_id(d), "<m@x>") == 0,
	    "without an output buffer the stream is scanned and counted alike");
	smtp_data_free(d);
	result_free(&r);
}

static const CuTest tests[] = {
	{ "message ends at CRLF.CRLF", test_message_ends_at_crlf_dot_crlf },
	{ "dot line first is an empty message", test_dot_line_first_is_an_empty_message },
	{ "bytes after the end are left for the caller",
	  test_bytes_after_the_end_are_left_for_the_caller },
	{ "dot-stuffing is removed", test_dot_stuffing_is_removed },
	{ "lines like the end are not the end", test_lines_like_the_end_are_not_the_end },
	{ "unfinished stream consumes everything", test_unfinished_stream_consumes_everything },
	{ "bare CR, bare LF and NUL refuse the message",
	  test_bare_cr_bare_lf_and_nul_refuse_the_message },
	{ "first problem wins", test_first_problem_wins },
	{ "smuggling vectors never end data", test_smuggling_vectors_never_end_data },
	{ "size limit", test_size_limit },
	{ "line limit", test_line_limit },
	{ "gigabytes fed in pieces", test_gigabytes_fed_in_pieces },
	{ "Received: fields in the header section are counted",
	  test_received_fields_in_the_header_section_are_counted },
	{ "field name split between feeds", test_field_name_split_between_feeds },
	{ "no header section", test_no_header_section },
	{ "Message-ID", test_message_id },
	{ "header tracking follows only accepted content",
	  test_header_tracking_follows_only_accepted_content },
	{ "random streams give one result for any chunking",
	  test_random_streams_give_one_result_for_any_chunking },
	{ "NULL out counts the same", test_null_out_counts_the_same },
	{ NULL, NULL },
};

int
main(void)
{
	return cu_run("smtp_data", tests);
}
