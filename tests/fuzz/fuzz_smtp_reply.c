/* fuzz_smtp_reply.c - libFuzzer target for the SMTP client's reply reader
 * (gateway/client/smtp_reply.c).
 *
 * The first byte says how many piece sizes follow (0-15); the rest is what
 * a server sends.  It is fed whole, in pieces of those sizes (+1) and byte by
 * byte, each piece an exact-size copy, each piece fed again after a DONE as a
 * client with pipelined replies in its buffer does.  Every way must give the
 * same sequence of DONE and BAD, with the same codes, enhanced status codes,
 * texts, line counts, errors, formatted lines and stream offsets, and consume
 * the same bytes.  Each DONE reply is also checked against the bytes it came
 * from, read independently: lines ending in LF (CR LF or bare LF), all with
 * the reply's code, "ddd-" but the last, the text the lines' text joined with
 * '\n'.  And what callers rely on: MORE consumed everything, BAD stays BAD
 * with nothing consumed, the code is a valid reply code, the kept text is
 * bounded, the error and the formatted line are one printable line.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/smtp_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
	SmtpReplyStatus st;
	int code;
	char status[16];
	GString *text;
	guint lines;
	char *error;
	char *formatted;
	gsize end;
} Event;

typedef struct {
	GArray *events;
	gsize consumed;
} Run;

static void
check_printable(const char *s)
{
	if (*s == '\0')
		abort();
	for (; *s; s++)
		if (*s < ' ' || *s > '~')
			abort();
}

/* RFC 3463: class 2, 4 or 5 "." 1*3digit "." 1*3digit, no leading zeros. */
static void
check_status(const char *st, int code, const GString *text)
{
	size_t n = strlen(st);
	const char *p = st + 2;

	if (n == 0)
		return;
	if (n < 5 || n > 9 || st[0] - '0' != code / 100 || st[1] != '.')
		abort();
	for (int part = 0; part < 2; part++) {
		const char *start = p;
		while (g_ascii_isdigit(*p))
			p++;
		if (p == start || p - start > 3 || (p - start > 1 && *start == '0'))
			abort();
		if (part == 0 && *p++ != '.')
			abort();
	}
	if (*p != '\0' || text->len < n || memcmp(text->str, st, n) != 0 ||
	    (text->len > n && text->str[n] != ' ' && text->str[n] != '\n'))
		abort();
}

/* The reply in [from, to) of the stream, read independently. */
static void
check_against_bytes(const Event *ev, const char *s, gsize from, gsize to)
{
	GString *want = g_string_new(NULL);
	gsize p = from;
	guint lines = 0;
	gboolean cut = FALSE;

	if (to <= from || s[to - 1] != '\n')
		abort();
	while (p < to) {
		const char *lf = memchr(s + p, '\n', to - p);
		gsize n = (gsize)(lf - (s + p));
		const char *l = s + p;
		if (n > 0 && l[n - 1] == '\r')
			n--;
		if (n < 3 || memchr(l, '\r', n) || n > SMTP_REPLY_LINE_MAX ||
		    (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0') != ev->code)
			abort();
		lines++;
		p = (gsize)(lf - s) + 1;
		if ((p < to) != (n > 3 && l[3] == '-'))
			abort();        /* "ddd-" exactly on all lines but the last */
		if (n > 3 && l[3] != '-' && l[3] != ' ')
			abort();
		if (lines > 1 && !cut) {
			if (want->len + 1 + (n > 4 ? n - 4 : 0) > SMTP_REPLY_TEXT_MAX) {
				g_string_append(want, "\n...");
				cut = TRUE;
				continue;
			}
			g_string_append_c(want, '\n');
		}
		if (!cut && n > 4)
			g_string_append_len(want, l + 4, (gssize)(n - 4));
	}
	if (lines != ev->lines || lines > SMTP_REPLY_LINES_MAX + 1 || want->len != ev->text->len ||
	    memcmp(want->str, ev->text->str, want->len) != 0)
		abort();
	g_string_free(want, TRUE);
}

static void
check_event(const Event *ev, const char *s, gsize from)
{
	char digits[8];

	if (ev->st == SMTP_REPLY_BAD) {
		if (!ev->error || ev->text || ev->code != 0)
			abort();
		check_printable(ev->error);
		if (strcmp(ev->formatted, ev->error) != 0)
			abort();
		return;
	}
	if (ev->error || !ev->text || ev->code < 200 || ev->code > 559 || ev->code % 100 > 59)
		abort();
	if (ev->text->len > SMTP_REPLY_TEXT_MAX + 4 || memchr(ev->text->str, '\r', ev->text->len))
		abort();
	check_status(ev->status, ev->code, ev->text);
	check_printable(ev->formatted);
	g_snprintf(digits, sizeof digits, "%d", ev->code);
	if (strncmp(ev->formatted, digits, 3) != 0 ||
	    (ev->formatted[3] != '\0' && ev->formatted[3] != ' '))
		abort();
	check_against_bytes(ev, s, from, ev->end);
}

/* Feed len bytes of s in pieces of sizes[i % nsizes] + 1 (nsizes 0: whole). */
static Run
run(const char *s, gsize len, const uint8_t *sizes, gsize nsizes, gboolean one_by_one)
{
	SmtpReplyReader *rd = smtp_reply_reader_new();
	Run r = { g_array_new(FALSE, TRUE, sizeof(Event)), 0 };
	gsize off = 0, i = 0, from = 0;
	gboolean finished = FALSE;

	while (off < len && !finished) {
		gsize want = one_by_one ? 1 : nsizes ? (gsize)sizes[i++ % nsizes] + 1 : len;
		gsize piece = MIN(want, len - off);
		char *buf = g_malloc(piece);
		gsize at = 0;

		memcpy(buf, s + off, piece);
		while (at < piece) {
			SmtpReply rep;
			gsize used = G_MAXSIZE;
			SmtpReplyStatus st = smtp_reply_feed(rd, buf + at, piece - at, &used, &rep);
			Event ev = { 0 };

			if (used > piece - at)
				abort();
			at += used;
			if (st == SMTP_REPLY_MORE) {
				if (at != piece || rep.text || rep.error || rep.code || rep.lines)
					abort();
				break;
			}
			if (st == SMTP_REPLY_DONE && used == 0)
				abort();
			ev.st = st;
			ev.code = rep.code;
			memcpy(ev.status, rep.status, sizeof ev.status);
			if (memchr(ev.status, '\0', sizeof ev.status) == NULL)
				abort();
			ev.lines = rep.lines;
			ev.formatted = smtp_reply_format(&rep);
			ev.end = off + at;
			ev.text = rep.text;
			ev.error = rep.error;
			check_event(&ev, s, from);
			from = ev.end;
			g_array_append_val(r.events, ev);
			if (st == SMTP_REPLY_BAD) {
				SmtpReply again;
				if (smtp_reply_feed(rd, buf, piece, &used, &again) != SMTP_REPLY_BAD ||
				    used != 0 || !again.error || strcmp(again.error, ev.error) != 0)
					abort();
				smtp_reply_clear(&again);
				finished = TRUE;
				break;
			}
		}
		g_free(buf);
		off += at;
	}
	r.consumed = off;
	if (!finished && off != len)
		abort();
	smtp_reply_reader_free(rd);
	return r;
}

static void
same(const Run *a, const Run *b)
{
	if (a->consumed != b->consumed || a->events->len != b->events->len)
		abort();
	for (guint i = 0; i < a->events->len; i++) {
		const Event *x = &g_array_index(a->events, Event, i);
		const Event *y = &g_array_index(b->events, Event, i);
		if (x->st != y->st || x->code != y->code || strcmp(x->status, y->status) != 0 ||
		    x->lines != y->lines || x->end != y->end ||
		    g_strcmp0(x->error, y->error) != 0 || strcmp(x->formatted, y->formatted) != 0 ||
		    (x->text == NULL) != (y->text == NULL) ||
		    (x->text && (x->text->len != y->text->len ||
		    memcmp(x->text->str, y->text->str, x->text->len) != 0)))
			abort();
	}
}

static void
run_free(Run *r)
{
	for (guint i = 0; i < r->events->len; i++) {
		Event *ev = &g_array_index(r->events, Event, i);
		SmtpReply rep = { 0 };
		rep.text = ev->text;
		rep.error = ev->error;
		smtp_reply_clear(&rep);
		g_free(ev->formatted);
	}
	g_array_free(r->events, TRUE);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	gsize nsizes;
	const char *s;
	gsize len;
	Run whole, pieces, bytes;

	if (size == 0)
		return 0;
	nsizes = data[0] % 16;
	if (size < 1 + nsizes)
		return 0;
	s = (const char *)data + 1 + nsizes;
	len = size - 1 - nsizes;
	whole = run(s, len, NULL, 0, FALSE);
	pieces = run(s, len, data + 1, nsizes, FALSE);
	bytes = run(s, len, NULL, 0, TRUE);
	same(&whole, &pieces);
	same(&whole, &bytes);
	run_free(&whole);
	run_free(&pieces);
	run_free(&bytes);
	return 0;
}
