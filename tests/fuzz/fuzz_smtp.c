/* fuzz_smtp.c - libFuzzer target for the SMTP command parser and the DATA
 * stream (gateway/smtpd/smtp_cmd.c, gateway/smtpd/smtp_data.c).
 *
 * The first byte picks the mode.  Even: the rest is split at '\n', a '\r'
 * before it is dropped, and every piece (an exact-size copy) goes through
 * smtp_cmd_parse and smtp_cmd_clear, checking what the session relies on:
 *  - FALSE exactly when a reply is set; a reply is "DDD " and printable;
 *  - an accepted MAIL/RCPT path has no '<', '>', blank or control outside a
 *    quoted local part, at most 254 bytes, and parses again to itself;
 *  - ENVID and ORCPT are printable, within their limits, and xtext round-trips.
 * Odd: bits of the first byte pick max_size and max_line; the next byte says
 * how many piece sizes follow; the rest is a DATA stream, fed whole, in those
 * pieces and byte by byte (each piece an exact-size copy).  Every way must
 * give the same consumed count, end, verdict, size, content, Received count
 * and Message-ID, and the content never holds a bare CR, bare LF or NUL.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd/smtp_cmd.h"
#include "smtpd/smtp_data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- commands ------------------------------------------------------------------ */

static void
check_printable(const char *s, gboolean tab_ok)
{
	for (; *s; s++)
		if (!((*s >= ' ' && *s <= '~') || (tab_ok && *s == '\t')))
			abort();
}

static void
check_path(const char *path)
{
	size_t n = strlen(path), i = 0;

	if (n == 0 || n > ADDR_SMTP_MAX)
		abort();
	check_printable(path, FALSE);
	if (path[0] == '"') {
		/* A quoted local part: skip it, with its quoted pairs. */
		for (i = 1; i < n && path[i] != '"'; i++)
			if (path[i] == '\\')
				i++;
		if (i >= n || path[i + 1] != '@')
			abort();
		i++;
	}
	for (; i < n; i++)
		if (path[i] == '<' || path[i] == '>' || path[i] == ' ' || path[i] == '"')
			abort();
}

static void
check_reparse(const SmtpCmd *c)
{
	char *line = g_strdup_printf("%s %s<%s>", c->verb == SMTP_VERB_MAIL ? "MAIL" : "RCPT",
	    c->verb == SMTP_VERB_MAIL ? "FROM:" : "TO:", c->path);
	SmtpCmd again;

	if (!smtp_cmd_parse(line, strlen(line), &again) || strcmp(again.path, c->path) != 0)
		abort();
	smtp_cmd_clear(&again);
	g_free(line);
}

static void
check_xtext(const char *s)
{
	char *enc = smtp_xtext_encode(s);
	char *dec = smtp_xtext_decode(enc, strlen(enc));

	if (!dec || strcmp(dec, s) != 0)
		abort();
	g_free(enc);
	g_free(dec);
}

static void
one_command(const char *text, size_t len)
{
	char *line = g_malloc(len ? len : 1);
	SmtpCmd c;
	gboolean ok;

	memcpy(line, text, len);
	ok = smtp_cmd_parse(line, len, &c);
	g_free(line);
	if (ok != (c.reply == NULL))
		abort();
	if (!ok) {
		if (strlen(c.reply) < 5 || !g_ascii_isdigit(c.reply[0]) ||
		    !g_ascii_isdigit(c.reply[1]) || !g_ascii_isdigit(c.reply[2]) ||
		    c.reply[3] != ' ')
			abort();
		check_printable(c.reply, FALSE);
		if (c.path || c.arg || c.envid || c.orcpt || c.orcpt_type || c.null_path)
			abort();
	} else {
		if (c.verb == SMTP_VERB_UNKNOWN)
			abort();
		if (c.verb == SMTP_VERB_MAIL || c.verb == SMTP_VERB_RCPT) {
			if (c.null_path != (c.path == NULL) ||
			    (c.null_path && c.verb != SMTP_VERB_MAIL))
				abort();
			if (c.path) {
				check_path(c.path);
				check_reparse(&c);
			}
		} else if (c.path || c.null_path) {
			abort();
		}
		if (c.arg && (c.arg[0] == '\0' || c.arg[0] == ' ' || c.arg[strlen(c.arg) - 1] == ' '))
			abort();
		if (c.envid) {
			if (strlen(c.envid) > SMTP_ENVID_MAX)
				abort();
			check_printable(c.envid, TRUE);
			check_xtext(c.envid);
		}
		if (c.orcpt) {
			if (!c.orcpt_type || strlen(c.orcpt) > SMTP_ORCPT_MAX)
				abort();
			check_printable(c.orcpt, TRUE);
			check_xtext(c.orcpt);
		}
		if ((c.notify & MAIL_NOTIFY_NEVER) && c.notify != MAIL_NOTIFY_NEVER)
			abort();
	}
	smtp_cmd_clear(&c);
}

static void
commands(const char *text, size_t len)
{
	size_t start = 0;

	for (size_t i = 0; i <= len; i++) {
		if (i < len && text[i] != '\n')
			continue;
		{
			size_t n = i - start;
			if (n > 0 && text[start + n - 1] == '\r')
				n--;
			one_command(text + start, n);
		}
		start = i + 1;
	}
}

/* ---- the DATA stream ------------------------------------------------------------- */

typedef struct {
	gsize consumed;
	gboolean end;
	SmtpDataVerdict verdict;
	gint64 size;
	GByteArray *out;
	guint received;
	char *msgid;
} Run;

/* Feed len bytes in pieces of sizes[i % nsizes] (nsizes 0: whole). */
static Run
run(const char *text, gsize len, gint64 max_size, gsize max_line, const uint8_t *sizes,
    gsize nsizes, gboolean one_by_one)
{
	SmtpData *d = smtp_data_new(max_size, max_line);
	Run r = { 0 };
	gsize off = 0, i = 0;

	r.out = g_byte_array_new();
	do {
		gsize want = one_by_one ? 1 : nsizes ? (gsize)sizes[i++ % nsizes] + 1 : len;
		gsize piece = MIN(want, len - off);
		char *buf = g_malloc(piece ? piece : 1);
		gsize n;

		memcpy(buf, text + off, piece);
		n = smtp_data_feed(d, buf, piece, r.out, &r.end);
		g_free(buf);
		if (n > piece || (!r.end && n != piece))
			abort();
		off += n;
	} while (off < len && !r.end);
	r.consumed = off;
	r.verdict = smtp_data_verdict(d);
	r.size = smtp_data_size(d);
	r.received = smtp_data_received_count(d);
	r.msgid = g_strdup(smtp_data_message_id(d));
	if ((r.verdict == SMTP_DATA_OK) != (smtp_data_reply(d) == NULL))
		abort();
	smtp_data_free(d);
	return r;
}

static void
same(const Run *a, const Run *b)
{
	if (a->consumed != b->consumed || a->end != b->end || a->verdict != b->verdict ||
	    a->size != b->size || a->out->len != b->out->len ||
	    (a->out->len && memcmp(a->out->data, b->out->data, a->out->len) != 0) ||
	    a->received != b->received || g_strcmp0(a->msgid, b->msgid) != 0)
		abort();
}

static void
run_free(Run *r)
{
	g_byte_array_unref(r->out);
	g_free(r->msgid);
}

static void
check_content(const Run *r, const char *text, gint64 max_size, gsize max_line)
{
	const guint8 *o = r->out->data;
	gsize line = 0;

	for (guint i = 0; i < r->out->len; i++) {
		if (o[i] == 0 || (o[i] == '\n' && (i == 0 || o[i - 1] != '\r')))
			abort();
		if (o[i] == '\r' && i + 1 < r->out->len && o[i + 1] != '\n')
			abort();
		line = o[i] == '\n' ? 0 : o[i] == '\r' ? line : line + 1;
		if (max_line && line > max_line)
			abort();
	}
	if ((gint64)r->out->len > r->size || (max_size > 0 && (gint64)r->out->len > max_size))
		abort();
	if (r->verdict == SMTP_DATA_OK && (gint64)r->out->len != r->size)
		abort();
	if (r->end && !(r->consumed == 3 ? memcmp(text, ".\r\n", 3) == 0 :
	    r->consumed >= 5 && memcmp(text + r->consumed - 5, "\r\n.\r\n", 5) == 0))
		abort();
	if (r->msgid && (strlen(r->msgid) == 0 || strlen(r->msgid) > SMTP_DATA_MSGID_MAX))
		abort();
}

static void
stream(uint8_t mode, const uint8_t *rest, size_t len)
{
	static const gsize lines[] = { 0, 8, 78, SMTP_DATA_LINE_RFC_MAX };
	static const gint64 sizes[] = { 0, 16, 256, 65536 };
	gint64 max_size = sizes[(mode >> 3) & 3];
	gsize max_line = lines[(mode >> 1) & 3];
	gsize nsizes = len > 0 ? rest[0] % 16 : 0;
	const uint8_t *piece_sizes;
	const char *text;
	gsize tlen;
	Run whole, pieces, bytes;

	if (len < 1 + nsizes)
		return;
	piece_sizes = rest + 1;
	text = (const char *)rest + 1 + nsizes;
	tlen = len - 1 - nsizes;
	whole = run(text, tlen, max_size, max_line, NULL, 0, FALSE);
	pieces = run(text, tlen, max_size, max_line, piece_sizes, nsizes, FALSE);
	bytes = run(text, tlen, max_size, max_line, NULL, 0, TRUE);
	same(&whole, &pieces);
	same(&whole, &bytes);
	check_content(&whole, text, max_size, max_line);
	if (!whole.end && whole.consumed != tlen)
		abort();
	run_free(&whole);
	run_free(&pieces);
	run_free(&bytes);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] % 2 == 0)
		commands((const char *)data + 1, size - 1);
	else
		stream(data[0], data + 1, size - 1);
	return 0;
}
