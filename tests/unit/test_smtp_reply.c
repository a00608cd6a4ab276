/* test_smtp_reply.c - unit tests of gateway/client/smtp_reply.c.
 *
 * Checks the reply rules of RFC 5321 4.2, 4.2.1 and 4.5.3.1.5 as the SMTP
 * client meets them: multiline replies whatever the TCP segmentation
 * (354- and 354 in separate feeds, an EHLO reply a byte at a time, a reply cut
 * off in the middle), pipelined replies read one by one (RFC 2920), the
 * RFC 3463 enhanced status code, and a defined BAD for every malformed reply:
 * garbage, mismatched codes, an overlong line, a flood of continuation lines,
 * a bare CR; a bare LF ending a line is tolerated.  Every stream is fed
 * whole, one byte at a time and in many random pieces, each piece an
 * exact-size heap copy (ASan sees any read past it), and every way of feeding
 * must give the same replies, the same errors at the same stream offsets.
 */
#include "config.h"

#include <string.h>

#include "cu_run.h"
#include "client/smtp_reply.h"

/* One DONE or BAD, everything a caller can see of it. */
typedef struct {
	SmtpReplyStatus st;
	int code;
	char status[16];
	GString *text;              /* NULL for BAD */
	guint lines;
	char *error;                /* NULL for DONE */
	char *formatted;
	gsize end;                  /* stream offset just after the reply / the bad byte */
} Event;

/* What feeding a stream gives. */
typedef struct {
	GArray *events;             /* of Event */
	gsize consumed;             /* bytes of the stream consumed */
	gboolean feeds_ok;          /* every feed kept the API's promises */
} Result;

static void
result_free(Result *r)
{
	for (guint i = 0; i < r->events->len; i++) {
		Event *ev = &g_array_index(r->events, Event, i);
		if (ev->text)
			g_string_free(ev->text, TRUE);
		g_free(ev->error);
		g_free(ev->formatted);
	}
	g_array_free(r->events, TRUE);
}

static Event *
ev_at(const Result *r, guint i)
{
	static Event none = { SMTP_REPLY_MORE, 0, "", NULL, 0, NULL, NULL, 0 };

	return i < r->events->len ? &g_array_index(r->events, Event, i) : &none;
}

/* Feed len bytes of text in pieces: piece i has sizes[i % nsizes] bytes
 * (nsizes 0: all at once).  Each piece is fed until it is consumed: after a
 * DONE the rest of it is fed again, as a client with pipelined replies in its
 * buffer does. */
static Result
feed(const char *text, gsize len, const gsize *sizes, gsize nsizes)
{
	SmtpReplyReader *rd = smtp_reply_reader_new();
	Result r = { g_array_new(FALSE, TRUE, sizeof(Event)), 0, TRUE };
	gsize off = 0, i = 0;
	gboolean finished = FALSE;

	while (off < len && !finished) {
		gsize want = nsizes ? sizes[i++ % nsizes] : len;
		gsize piece = MIN(want, len - off);
		char *buf = g_memdup2(text + off, piece);
		gsize at = 0;

		while (at < piece) {
			SmtpReply rep;
			gsize used = G_MAXSIZE;
			SmtpReplyStatus st = smtp_reply_feed(rd, buf + at, piece - at, &used, &rep);
			Event ev = { 0 };

			if (used > piece - at || (st == SMTP_REPLY_MORE && used != piece - at) ||
			    (st == SMTP_REPLY_DONE && (used == 0 || rep.text == NULL || rep.error)) ||
			    (st == SMTP_REPLY_BAD && (rep.error == NULL || rep.text || rep.code)) ||
			    (st == SMTP_REPLY_MORE && (rep.text || rep.error || rep.code)))
				r.feeds_ok = FALSE;
			at += used;
			if (st == SMTP_REPLY_MORE)
				break;
			ev.st = st;
			ev.code = rep.code;
			memcpy(ev.status, rep.status, sizeof ev.status);
			ev.lines = rep.lines;
			ev.formatted = smtp_reply_format(&rep);
			ev.end = off + at;
			ev.text = rep.text;
			ev.error = rep.error;
			rep.text = NULL;
			rep.error = NULL;
			smtp_reply_clear(&rep);
			g_array_append_val(r.events, ev);
			if (st == SMTP_REPLY_BAD) {
				/* The reader is finished: BAD again, nothing consumed. */
				st = smtp_reply_feed(rd, "250 ok\r\n", 8, &used, &rep);
				if (st != SMTP_REPLY_BAD || used != 0 || !rep.error ||
				    strcmp(rep.error, ev.error) != 0)
					r.feeds_ok = FALSE;
				smtp_reply_clear(&rep);
				finished = TRUE;
				break;
			}
		}
		g_free(buf);
		off += at;
	}
	r.consumed = off;
	smtp_reply_reader_free(rd);
	return r;
}

static gboolean
same_text(const GString *a, const GString *b)
{
	if (!a || !b)
		return a == b;
	return a->len == b->len && memcmp(a->str, b->str, a->len) == 0;
}

static gboolean
same_result(const Result *a, const Result *b)
{
	if (a->events->len != b->events->len || a->consumed != b->consumed || !a->feeds_ok ||
	    !b->feeds_ok)
		return FALSE;
	for (guint i = 0; i < a->events->len; i++) {
		const Event *x = ev_at(a, i), *y = ev_at(b, i);
		if (x->st != y->st || x->code != y->code || strcmp(x->status, y->status) != 0 ||
		    !same_text(x->text, y->text) || x->lines != y->lines ||
		    g_strcmp0(x->error, y->error) != 0 || strcmp(x->formatted, y->formatted) != 0 ||
		    x->end != y->end)
			return FALSE;
	}
	return TRUE;
}

/* Feed text whole, one byte at a time and in 64 random pieces; expect the
 * same result from all and return it. */
static Result
feed_all_ways_at(int line, const char *text, gsize len)
{
	static const gsize one[] = { 1 };
	Result whole = feed(text, len, NULL, 0);
	Result r = feed(text, len, one, 1);
	GRand *rand = g_rand_new_with_seed((guint32)len * 2654435761u + (guint32)line);
	gboolean same = same_result(&whole, &r);

	result_free(&r);
	for (int k = 0; k < 64 && same; k++) {
		gsize sizes[16];
		for (gsize i = 0; i < G_N_ELEMENTS(sizes); i++)
			sizes[i] = (gsize)g_rand_int_range(rand, 1, k < 32 ? 5 : 300);
		r = feed(text, len, sizes, G_N_ELEMENTS(sizes));
		same = same_result(&whole, &r);
		result_free(&r);
	}
	g_rand_free(rand);
	expect_at(same, line, "feeding \"%.*s\" whole, byte by byte or in pieces gives one result",
	    (int)MIN(len, 60), text);
	return whole;
}

#define FEED(text) feed_all_ways_at(__LINE__, text, sizeof(text) - 1)
#define FEED_G(gs) feed_all_ways_at(__LINE__, (gs)->str, (gs)->len)

/* Event i is a DONE reply with this code and exactly this text. */
static void
expect_reply_at(int line, const Result *r, guint i, int code, const char *text, gsize end)
{
	const Event *ev = ev_at(r, i);

	expect_at(ev->st == SMTP_REPLY_DONE && ev->code == code && ev->end == end, line,
	    "reply %u: DONE, code %d, ends at %zu (got %s, %d, %zu; error %s)", i, code, end,
	    smtp_reply_status_name(ev->st), ev->code, ev->end, ev->error ? ev->error : "none");
	expect_at(ev->text && ev->text->len == strlen(text) &&
	    memcmp(ev->text->str, text, strlen(text)) == 0, line,
	    "reply %u has the text \"%s\", got \"%s\"", i, text, ev->text ? ev->text->str : "(none)");
}

#define REPLY_IS(r, i, code, text, end) expect_reply_at(__LINE__, &(r), i, code, text, end)

/* Event i is BAD with exactly this error, found at the byte before end. */
static void
expect_bad_at(int line, const Result *r, guint i, const char *error, gsize end)
{
	const Event *ev = ev_at(r, i);

	expect_at(ev->st == SMTP_REPLY_BAD && ev->error && strcmp(ev->error, error) == 0 &&
	    ev->end == end && r->events->len == i + 1, line,
	    "event %u: BAD \"%s\" at %zu, the last one (got %s \"%s\" at %zu, %u events)", i,
	    error, end, smtp_reply_status_name(ev->st), ev->error ? ev->error : "", ev->end,
	    r->events->len);
}

#define BAD_IS(r, i, error, end) expect_bad_at(__LINE__, &(r), i, error, end)

/* ---- single replies ---------------------------------------------------------------- */

static void
test_one_line_reply(void)
{
	Result r = FEED("250 ok\r\n");

	REPLY_IS(r, 0, 250, "ok", 8);
	EXPECT(r.events->len == 1 && ev_at(&r, 0)->lines == 1 && ev_at(&r, 0)->status[0] == '\0',
	    "one reply of one line, no enhanced status");
	EXPECT(strcmp(ev_at(&r, 0)->formatted, "250 ok") == 0, "formatted: %s",
	    ev_at(&r, 0)->formatted);
	result_free(&r);

	r = FEED("554 5.7.1 Relay access denied\r\n");
	REPLY_IS(r, 0, 554, "5.7.1 Relay access denied", 31);
	EXPECT(strcmp(ev_at(&r, 0)->status, "5.7.1") == 0, "the enhanced status is 5.7.1: \"%s\"",
	    ev_at(&r, 0)->status);
	result_free(&r);
}

static void
test_empty_text(void)
{
	Result r = FEED("250\r\n");

	REPLY_IS(r, 0, 250, "", 5);
	EXPECT(strcmp(ev_at(&r, 0)->formatted, "250") == 0, "\"250\" formats as \"250\": %s",
	    ev_at(&r, 0)->formatted);
	result_free(&r);
	r = FEED("250 \r\n");
	REPLY_IS(r, 0, 250, "", 6);
	result_free(&r);
	r = FEED("250-\r\n250\r\n");
	REPLY_IS(r, 0, 250, "\n", 11);
	EXPECT(ev_at(&r, 0)->lines == 2, "two empty lines are two lines");
	result_free(&r);
}

static void
test_continuation_with_nothing_after(void)
{
	SmtpReplyReader *rd = smtp_reply_reader_new();
	SmtpReply rep;
	gsize used;
	SmtpReplyStatus st;
	Result r;

	st = smtp_reply_feed(rd, "250-", 4, &used, &rep);
	EXPECT(st == SMTP_REPLY_MORE && used == 4, "\"250-\" alone: MORE, consumed");
	st = smtp_reply_feed(rd, "\r\n", 2, &used, &rep);
	EXPECT(st == SMTP_REPLY_MORE && used == 2, "\"250-\\r\\n\": a continuation, MORE");
	st = smtp_reply_feed(rd, "250 ok\r\n", 8, &used, &rep);
	EXPECT(st == SMTP_REPLY_DONE && used == 8 && rep.code == 250 && rep.lines == 2 &&
	    strcmp(rep.text->str, "\nok") == 0, "the last line completes it: \"\\nok\"");
	smtp_reply_clear(&rep);
	smtp_reply_reader_free(rd);

	r = FEED("250-");
	EXPECT(r.events->len == 0 && r.consumed == 4, "\"250-\" and the end of input: no reply yet");
	result_free(&r);
}

static void
test_reply_cut_off_in_the_middle(void)
{
	static const char a[] = "250-mx.example.org\r\n250-PIPEL";
	static const char b[] = "INING\r\n250 SIZE 10240000\r\n";
	SmtpReplyReader *rd = smtp_reply_reader_new();
	SmtpReply rep;
	gsize used;
	SmtpReplyStatus st = smtp_reply_feed(rd, a, sizeof a - 1, &used, &rep);
	Result r;

	EXPECT(st == SMTP_REPLY_MORE && used == sizeof a - 1 && rep.text == NULL,
	    "a reply cut off in a line: MORE, everything kept");
	st = smtp_reply_feed(rd, NULL, 0, &used, &rep);
	EXPECT(st == SMTP_REPLY_MORE && used == 0, "an empty feed changes nothing");
	st = smtp_reply_feed(rd, b, sizeof b - 1, &used, &rep);
	EXPECT(st == SMTP_REPLY_DONE && used == sizeof b - 1 && rep.code == 250 && rep.lines == 3 &&
	    strcmp(rep.text->str, "mx.example.org\nPIPELINING\nSIZE 10240000") == 0,
	    "the rest completes it: \"%s\"", rep.text ? rep.text->str : "");
	smtp_reply_clear(&rep);
	smtp_reply_reader_free(rd);

	r = FEED("250-mx.example.org\r\n250-PIPELINING\r\n250 SIZE 10240000\r\n");
	REPLY_IS(r, 0, 250, "mx.example.org\nPIPELINING\nSIZE 10240000", 55);
	result_free(&r);
	r = FEED("250-mx.example.org\r\n250 SIZ");
	EXPECT(r.events->len == 0 && r.consumed == 27, "cut off at the end of input: MORE");
	result_free(&r);
}

/* ---- segmentation ------------------------------------------------------------------ */

static void
test_354_continuation_in_separate_feeds(void)
{
	static const char a[] = "354-Go ahead\r\n";
	static const char b[] = "354 End data with <CR><LF>.<CR><LF>\r\n";
	SmtpReplyReader *rd = smtp_reply_reader_new();
	SmtpReply rep;
	gsize used;
	SmtpReplyStatus st;
	Result r;

	st = smtp_reply_feed(rd, a, sizeof a - 1, &used, &rep);
	EXPECT(st == SMTP_REPLY_MORE && used == sizeof a - 1,
	    "\"354-\" in a segment of its own is not a reply yet");
	/* ... the server waits 2 s: the next segment is just the next feed. */
	st = smtp_reply_feed(rd, b, sizeof b - 1, &used, &rep);
	EXPECT(st == SMTP_REPLY_DONE && used == sizeof b - 1 && rep.code == 354 &&
	    smtp_reply_class(&rep) == 3 && rep.lines == 2 && rep.status[0] == '\0' &&
	    strcmp(rep.text->str, "Go ahead\nEnd data with <CR><LF>.<CR><LF>") == 0,
	    "\"354 \" in the next segment completes one 354 reply");
	smtp_reply_clear(&rep);
	smtp_reply_reader_free(rd);

	r = FEED("354-Go ahead\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
	EXPECT(r.events->len == 1, "one reply, never two");
	REPLY_IS(r, 0, 354, "Go ahead\nEnd data with <CR><LF>.<CR><LF>", 51);
	result_free(&r);
}

static GString *
ehlo_reply(guint n)
{
	GString *s = g_string_new("250-mx.example.org Hello client.example.net [192.0.2.1]\r\n");

	for (guint i = 1; i + 1 < n; i++)
		g_string_append_printf(s, "250-X-KEYWORD-%02u arg\r\n", i);
	g_string_append(s, "250 SMTPUTF8\r\n");
	return s;
}

static void
test_ehlo_reply_in_one_byte_feeds(void)
{
	GString *s = ehlo_reply(20);
	SmtpReplyReader *rd = smtp_reply_reader_new();
	SmtpReply rep;
	gsize used;
	gboolean more_until_last = TRUE;
	SmtpReplyStatus st = SMTP_REPLY_MORE;
	Result r;

	for (gsize i = 0; i < s->len; i++) {
		char *one = g_memdup2(s->str + i, 1);
		st = smtp_reply_feed(rd, one, 1, &used, &rep);
		g_free(one);
		if (i + 1 < s->len && (st != SMTP_REPLY_MORE || used != 1))
			more_until_last = FALSE;
	}
	EXPECT(more_until_last, "every byte but the last: MORE, consumed");
	EXPECT(st == SMTP_REPLY_DONE && used == 1 && rep.code == 250 && rep.lines == 20,
	    "the last byte: DONE, 20 lines (%u)", rep.lines);
	EXPECT(rep.text && g_str_has_prefix(rep.text->str, "mx.example.org Hello") &&
	    g_str_has_suffix(rep.text->str, "\nX-KEYWORD-18 arg\nSMTPUTF8") &&
	    strstr(rep.text->str, "\nX-KEYWORD-01 arg\nX-KEYWORD-02 arg\n"),
	    "the EHLO keywords one per line, in order");
	smtp_reply_clear(&rep);
	smtp_reply_reader_free(rd);

	r = FEED_G(s);
	EXPECT(r.events->len == 1 && ev_at(&r, 0)->lines == 20 && r.consumed == s->len,
	    "the same whole and in pieces");
	result_free(&r);
	g_string_free(s, TRUE);
}

static void
test_pipelined_replies_are_read_one_by_one(void)
{
	static const char text[] = "250 ok\r\n250 ok\r\n354 go\r\n";
	SmtpReplyReader *rd = smtp_reply_reader_new();
	SmtpReply rep;
	gsize used, off = 0;
	int codes[3] = { 0 };
	SmtpReplyStatus st;
	Result r;

	for (int i = 0; i < 3; i++) {
		st = smtp_reply_feed(rd, text + off, sizeof text - 1 - off, &used, &rep);
		EXPECT(st == SMTP_REPLY_DONE && used == 8, "reply %d: DONE after 8 bytes (%zu)", i + 1,
		    used);
		codes[i] = rep.code;
		off += used;
		smtp_reply_clear(&rep);
	}
	EXPECT(codes[0] == 250 && codes[1] == 250 && codes[2] == 354 && off == sizeof text - 1,
	    "three replies: 250, 250, 354");
	st = smtp_reply_feed(rd, text + off, 0, &used, &rep);
	EXPECT(st == SMTP_REPLY_MORE && used == 0, "nothing left: MORE");
	smtp_reply_reader_free(rd);

	r = FEED("250 ok\r\n250 ok\r\n354 go\r\n");
	EXPECT(r.events->len == 3, "three replies whatever the segments");
	REPLY_IS(r, 0, 250, "ok", 8);
	REPLY_IS(r, 1, 250, "ok", 16);
	REPLY_IS(r, 2, 354, "go", 24);
	result_free(&r);

	/* A multiline reply between two pipelined ones; the state of one reply
	 * (its status, its code) never leaks into the next. */
	r = FEED("250 2.1.0 ok\r\n250-a\r\n251 x\r\n");
	REPLY_IS(r, 0, 250, "2.1.0 ok", 14);
	BAD_IS(r, 1, "line 2 has code 251, the first had 250", 28);
	result_free(&r);
	r = FEED("250 2.1.0 ok\r\n451-try\r\n451 later\r\n250 ok\r\n");
	REPLY_IS(r, 1, 451, "try\nlater", 34);
	EXPECT(ev_at(&r, 1)->status[0] == '\0' && ev_at(&r, 2)->status[0] == '\0',
	    "no enhanced status carried over");
	REPLY_IS(r, 2, 250, "ok", 42);
	result_free(&r);
}

/* ---- line endings --------------------------------------------------------------------- */

static void
test_bare_lf_ending_is_tolerated(void)
{
	Result r = FEED("250 ok\n");

	REPLY_IS(r, 0, 250, "ok", 7);
	result_free(&r);
	r = FEED("250-a\n250-b\r\n250 c\n221 bye\r\n");
	REPLY_IS(r, 0, 250, "a\nb\nc", 19);
	REPLY_IS(r, 1, 221, "bye", 28);
	result_free(&r);
}

static void
test_cr_inside_a_line_is_bad(void)
{
	Result r = FEED("250 o\rk\r\n");

	BAD_IS(r, 0, "a bare CR inside line 1 of the reply", 7);
	result_free(&r);
	r = FEED("250 ok\r\r\n");
	BAD_IS(r, 0, "a bare CR inside line 1 of the reply", 8);
	result_free(&r);
	r = FEED("250-ok\r\n250 fine\rx\r\n");
	BAD_IS(r, 0, "a bare CR inside line 2 of the reply", 18);
	result_free(&r);
	/* A CR at the end of one feed and the LF in the next is a CR LF. */
	r = FEED("250 ok\r");
	EXPECT(r.events->len == 0 && r.consumed == 7, "a CR last: MORE");
	result_free(&r);
}

/* ---- malformed replies ------------------------------------------------------------------ */

static void
test_mismatched_codes_are_bad(void)
{
	Result r = FEED("250-first\r\n251 second\r\n");

	BAD_IS(r, 0, "line 2 has code 251, the first had 250", 23);
	result_free(&r);
	r = FEED("250-a\r\n250-b\r\n550 c\r\n");
	BAD_IS(r, 0, "line 3 has code 550, the first had 250", 21);
	result_free(&r);
	/* Never taken for success: the 250 after it is not read either. */
	r = FEED("354-go\r\n250 ok\r\n250 ok\r\n");
	BAD_IS(r, 0, "line 2 has code 250, the first had 354", 16);
	result_free(&r);
	/* The code mismatch is seen on a long line before its end. */
	{
		GString *s = g_string_new("250-a\r\n550 ");
		for (int i = 0; i < 3000; i++)
			g_string_append_c(s, 'x');
		r = FEED_G(s);
		BAD_IS(r, 0, "line 2 has code 550, the first had 250", 7 + 61);
		result_free(&r);
		g_string_free(s, TRUE);
	}
}

static void
test_garbage_is_bad(void)
{
	Result r = FEED("HTTP/1.1 400 Bad Request\r\n");

	BAD_IS(r, 0, "garbage from the server: \"HTTP/1.1 400 Bad Request\"", 26);
	result_free(&r);
	r = FEED("SSH-2.0-OpenSSH_9.2p1\r\n");
	BAD_IS(r, 0, "garbage from the server: \"SSH-2.0-OpenSSH_9.2p1\"", 23);
	result_free(&r);
	r = FEED("\r\n");
	BAD_IS(r, 0, "garbage from the server: \"\"", 2);
	result_free(&r);
	r = FEED("25\r\n");
	BAD_IS(r, 0, "garbage from the server: \"25\"", 4);
	result_free(&r);
	r = FEED("2500 ok\r\n");
	BAD_IS(r, 0, "garbage from the server: \"2500 ok\"", 9);
	result_free(&r);
	r = FEED("250\tok\r\n");
	BAD_IS(r, 0, "garbage from the server: \"250\\x09ok\"", 8);
	result_free(&r);
	r = FEED("250_ok\r\n");
	BAD_IS(r, 0, "garbage from the server: \"250_ok\"", 8);
	result_free(&r);
	r = FEED(" 250 ok\r\n");
	BAD_IS(r, 0, "garbage from the server: \" 250 ok\"", 9);
	result_free(&r);
	/* Codes outside RFC 5321 4.2.1: first digit 2-5, second 0-5. */
	r = FEED("199 x\r\n");
	BAD_IS(r, 0, "garbage from the server: \"199 x\"", 7);
	result_free(&r);
	r = FEED("600 x\r\n");
	BAD_IS(r, 0, "garbage from the server: \"600 x\"", 7);
	result_free(&r);
	r = FEED("260 x\r\n");
	BAD_IS(r, 0, "garbage from the server: \"260 x\"", 7);
	result_free(&r);
	r = FEED("25a x\r\n");
	BAD_IS(r, 0, "garbage from the server: \"25a x\"", 7);
	result_free(&r);
	r = FEED("559 edge\r\n200 low\r\n");
	REPLY_IS(r, 0, 559, "edge", 10);
	REPLY_IS(r, 1, 200, "low", 19);
	result_free(&r);
	/* Garbage in the middle of a multiline reply. */
	r = FEED("250-ok\r\nPIPELINING\r\n250 ok\r\n");
	BAD_IS(r, 0, "garbage from the server: \"PIPELINING\" (in the middle of a multiline "
	    "reply)", 20);
	result_free(&r);
	/* Non-printable bytes are shown escaped; the error stays one line. */
	r = FEED("\x16\x03\x01\x02\x00\x01\x00\r\n");
	BAD_IS(r, 0, "garbage from the server: \"\\x16\\x03\\x01\\x02\\x00\\x01\\x00\"", 9);
	result_free(&r);
}

static void
test_long_garbage_is_refused_early_and_quoted_in_part(void)
{
	GString *s = g_string_new(NULL);
	Result r;

	for (int i = 0; i < 5000; i++)
		g_string_append_c(s, (char)('a' + i % 26));
	/* No LF at all: refused on byte 61, not after 2048 bytes or never. */
	r = FEED_G(s);
	BAD_IS(r, 0, "garbage from the server: \"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz"
	    "abcdefgh...\"", 61);
	result_free(&r);
	/* A line of exactly 60 bytes is quoted whole. */
	g_string_truncate(s, 60);
	g_string_append(s, "\r\n");
	r = FEED_G(s);
	BAD_IS(r, 0, "garbage from the server: \"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz"
	    "abcdefgh\"", 62);
	result_free(&r);
	g_string_free(s, TRUE);
}

static void
test_overlong_line_is_bad(void)
{
	GString *s = g_string_new("250 ");
	Result r;

	for (int i = 0; i < SMTP_REPLY_LINE_MAX - 4; i++)
		g_string_append_c(s, 'x');
	g_string_append(s, "\r\n");
	r = FEED_G(s);
	EXPECT(r.events->len == 1 && ev_at(&r, 0)->st == SMTP_REPLY_DONE &&
	    ev_at(&r, 0)->text->len == SMTP_REPLY_LINE_MAX - 4,
	    "a line of SMTP_REPLY_LINE_MAX bytes is read");
	result_free(&r);

	g_string_truncate(s, SMTP_REPLY_LINE_MAX);
	g_string_append(s, "x\r\n");
	r = FEED_G(s);
	BAD_IS(r, 0, "line 1 of the reply is longer than 2048 bytes", SMTP_REPLY_LINE_MAX + 1);
	result_free(&r);

	/* An endless line in the middle of a reply, no LF ever. */
	g_string_assign(s, "250-ok\r\n250-");
	for (int i = 0; i < 100000; i++)
		g_string_append_c(s, 'y');
	r = FEED_G(s);
	BAD_IS(r, 0, "line 2 of the reply is longer than 2048 bytes", 8 + SMTP_REPLY_LINE_MAX + 1);
	result_free(&r);
	g_string_free(s, TRUE);
}

static void
test_flood_of_continuation_lines_is_bad(void)
{
	GString *s = g_string_new(NULL);
	Result r;

	for (int i = 0; i < SMTP_REPLY_LINES_MAX; i++)
		g_string_append_printf(s, "250-line %03d\r\n", i);
	g_string_append(s, "250 last\r\n");
	r = FEED_G(s);
	EXPECT(r.events->len == 1 && ev_at(&r, 0)->st == SMTP_REPLY_DONE &&
	    ev_at(&r, 0)->lines == SMTP_REPLY_LINES_MAX + 1,
	    "200 continuation lines and the last: one reply of 201 lines");
	result_free(&r);

	g_string_truncate(s, 0);
	for (int i = 0; i < SMTP_REPLY_LINES_MAX + 1; i++)
		g_string_append_printf(s, "250-line %03d\r\n", i);
	g_string_append(s, "250 last\r\n");
	r = FEED_G(s);
	BAD_IS(r, 0, "a flood of continuation lines: more than 200 in one reply",
	    (gsize)(SMTP_REPLY_LINES_MAX + 1) * 14);
	result_free(&r);

	/* A server that never stops: a megabyte of them ends in BAD too. */
	g_string_truncate(s, 0);
	while (s->len < 1024 * 1024)
		g_string_append(s, "250-x\r\n");
	r = FEED_G(s);
	BAD_IS(r, 0, "a flood of continuation lines: more than 200 in one reply",
	    (gsize)(SMTP_REPLY_LINES_MAX + 1) * 7);
	EXPECT(r.consumed == (SMTP_REPLY_LINES_MAX + 1) * 7, "nothing read after BAD");
	result_free(&r);
	g_string_free(s, TRUE);
}

/* ---- text, enhanced status, format --------------------------------------------------- */

static void
test_kept_text_is_bounded(void)
{
	GString *s = g_string_new(NULL), *want = g_string_new(NULL);
	Result r;

	for (int i = 0; i < 9; i++) {
		g_string_append(s, "250-");
		for (int k = 0; k < 1000; k++)
			g_string_append_c(s, (char)('0' + i));
		g_string_append(s, "\r\n");
	}
	g_string_append(s, "250 end\r\n");
	for (int i = 0; i < 4; i++) {
		if (i > 0)
			g_string_append_c(want, '\n');
		for (int k = 0; k < 1000; k++)
			g_string_append_c(want, (char)('0' + i));
	}
	g_string_append(want, "\n...");
	r = FEED_G(s);
	EXPECT(ev_at(&r, 0)->st == SMTP_REPLY_DONE && ev_at(&r, 0)->lines == 10 &&
	    same_text(ev_at(&r, 0)->text, want),
	    "whole lines up to SMTP_REPLY_TEXT_MAX, then \"...\" (%zu bytes kept, %u lines)",
	    ev_at(&r, 0)->text ? ev_at(&r, 0)->text->len : 0, ev_at(&r, 0)->lines);
	EXPECT(ev_at(&r, 0)->text->len <= SMTP_REPLY_TEXT_MAX + 4, "never more than the limit");
	EXPECT(g_str_has_suffix(ev_at(&r, 0)->formatted, "3333 ..."), "formatted ends \"... ...\"");
	result_free(&r);
	g_string_free(s, TRUE);
	g_string_free(want, TRUE);
}

static void
status_is_at(int line, const char *reply, gsize len, const char *status, const char *text)
{
	Result r = feed_all_ways_at(line, reply, len);
	const Event *ev = ev_at(&r, 0);

	expect_at(ev->st == SMTP_REPLY_DONE && strcmp(ev->status, status) == 0, line,
	    "\"%.*s\": enhanced status \"%s\", got \"%s\"", (int)len - 2, reply, status,
	    ev->status);
	expect_at(ev->text && strcmp(ev->text->str, text) == 0, line,
	    "the text is kept as sent: \"%s\"", text);
	result_free(&r);
}

#define STATUS_IS(reply, status, text) \
	status_is_at(__LINE__, reply, sizeof(reply) - 1, status, text)

static void
test_enhanced_status(void)
{
	STATUS_IS("250 2.1.0 Sender ok\r\n", "2.1.0", "2.1.0 Sender ok");
	STATUS_IS("250 2.0.0\r\n", "2.0.0", "2.0.0");
	STATUS_IS("451 4.7.1 Try again later\r\n", "4.7.1", "4.7.1 Try again later");
	STATUS_IS("550 5.999.999 x\r\n", "5.999.999", "5.999.999 x");
	STATUS_IS("550 5.0.10 x\r\n", "5.0.10", "5.0.10 x");
	STATUS_IS("250-2.1.5 first\r\n250 2.1.6 second\r\n", "2.1.5", "2.1.5 first\n2.1.6 second");
	/* Only at the start of the first line, of the code's class, well-formed. */
	STATUS_IS("250-first\r\n250 2.1.6 second\r\n", "", "first\n2.1.6 second");
	STATUS_IS("250 5.1.1 mismatch\r\n", "", "5.1.1 mismatch");
	STATUS_IS("550 2.0.0 mismatch\r\n", "", "2.0.0 mismatch");
	STATUS_IS("354 3.0.0 no class 3\r\n", "", "3.0.0 no class 3");
	STATUS_IS("250 2.1000.0 x\r\n", "", "2.1000.0 x");
	STATUS_IS("250 2.1.1000 x\r\n", "", "2.1.1000 x");
	STATUS_IS("250 2.01.0 x\r\n", "", "2.01.0 x");
	STATUS_IS("250 2.1.0x\r\n", "", "2.1.0x");
	STATUS_IS("250 2.1.0\tx\r\n", "", "2.1.0\tx");
	STATUS_IS("250 2.1. x\r\n", "", "2.1. x");
	STATUS_IS("250 2..0 x\r\n", "", "2..0 x");
	STATUS_IS("250 2.1\r\n", "", "2.1");
	STATUS_IS("250  2.1.0 x\r\n", "", " 2.1.0 x");
}

static void
test_format_is_one_printable_line(void)
{
	Result r = FEED("250-mx.example.org\r\n250-PIPELINING\r\n250 2.0.0 OK\r\n");

	EXPECT(strcmp(ev_at(&r, 0)->formatted, "250 mx.example.org PIPELINING 2.0.0 OK") == 0,
	    "continuations joined with a space: %s", ev_at(&r, 0)->formatted);
	result_free(&r);

	/* 8-bit text is kept as sent and escaped only in the formatted line. */
	r = FEED("550 5.1.1 caf\xc3\xa9 \x01\t\x7f\\ \x00z\r\n");
	{
		static const char want[] = "5.1.1 caf\xc3\xa9 \x01\t\x7f\\ \x00z";
		const Event *ev = ev_at(&r, 0);
		EXPECT(ev->text && ev->text->len == sizeof want - 1 &&
		    memcmp(ev->text->str, want, sizeof want - 1) == 0,
		    "non-ASCII bytes, controls and NUL kept in text");
		EXPECT(strcmp(ev->formatted, "550 5.1.1 caf\\xc3\\xa9 \\x01\\x09\\x7f\\ \\x00z") == 0,
		    "escaped in the formatted line: %s", ev->formatted);
		EXPECT(strcmp(ev->status, "5.1.1") == 0, "the status is found before them");
	}
	result_free(&r);

	{
		SmtpReply bad = { 0 };
		char *f;
		bad.error = g_strdup("line 2 has code 251, the first had 250");
		f = smtp_reply_format(&bad);
		EXPECT(strcmp(f, bad.error) == 0, "a reply without a code formats as its error");
		EXPECT(smtp_reply_class(&bad) == 0, "and has no class");
		g_free(f);
		smtp_reply_clear(&bad);
		smtp_reply_clear(NULL);
	}
}

static void
test_class(void)
{
	static const struct { const char *text; int klass; } cases[] = {
		{ "220 ready\r\n", 2 }, { "354 go\r\n", 3 }, { "421 busy\r\n", 4 },
		{ "503 5.5.1 Sender already specified\r\n", 5 },
	};

	for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
		Result r = feed_all_ways_at(__LINE__, cases[i].text, strlen(cases[i].text));
		SmtpReply rep = { 0 };
		rep.code = ev_at(&r, 0)->code;
		EXPECT(smtp_reply_class(&rep) == cases[i].klass, "%s: class %d", cases[i].text,
		    cases[i].klass);
		result_free(&r);
	}
}

/* Random streams made of reply-like pieces: every way of feeding agrees. */
static void
test_random_streams_give_one_result_for_any_chunking(void)
{
	static const char *const parts[] = {
		"250", "251", "354", "550", "-", " ", "\r\n", "\n", "\r", "ok", "2.1.0", " 5.7.1",
		"x", "\xff", "", "\t",
	};
	GRand *rand = g_rand_new_with_seed(20240611);

	for (int n = 0; n < 300; n++) {
		GString *s = g_string_new(NULL);
		int count = g_rand_int_range(rand, 1, 40);
		Result r;
		for (int k = 0; k < count; k++)
			g_string_append(s, parts[g_rand_int_range(rand, 0, G_N_ELEMENTS(parts))]);
		r = feed_all_ways_at(__LINE__, s->str, s->len);
		result_free(&r);
		g_string_free(s, TRUE);
	}
	g_rand_free(rand);
}

static const CuTest tests[] = {
	{ "one line reply", test_one_line_reply },
	{ "empty text", test_empty_text },
	{ "continuation with nothing after", test_continuation_with_nothing_after },
	{ "reply cut off in the middle", test_reply_cut_off_in_the_middle },
	{ "354 continuation in separate feeds", test_354_continuation_in_separate_feeds },
	{ "EHLO reply in one-byte feeds", test_ehlo_reply_in_one_byte_feeds },
	{ "pipelined replies are read one by one", test_pipelined_replies_are_read_one_by_one },
	{ "bare LF ending is tolerated", test_bare_lf_ending_is_tolerated },
	{ "CR inside a line is bad", test_cr_inside_a_line_is_bad },
	{ "mismatched codes are bad", test_mismatched_codes_are_bad },
	{ "garbage is bad", test_garbage_is_bad },
	{ "long garbage is refused early and quoted in part",
	  test_long_garbage_is_refused_early_and_quoted_in_part },
	{ "overlong line is bad", test_overlong_line_is_bad },
	{ "flood of continuation lines is bad", test_flood_of_continuation_lines_is_bad },
	{ "kept text is bounded", test_kept_text_is_bounded },
	{ "enhanced status", test_enhanced_status },
	{ "format is one printable line", test_format_is_one_printable_line },
	{ "class", test_class },
	{ "random streams give one result for any chunking",
	  test_random_streams_give_one_result_for_any_chunking },
	{ NULL, NULL },
};

int
main(void)
{
	return cu_run("smtp_reply", tests);
}
