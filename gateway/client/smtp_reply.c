/* smtp_reply.c - the SMTP client's reply reader (see smtp_reply.h).
 *
 * One small state machine over the bytes as they come: RS_LINE collects a
 * line, a CR moves to RS_CR where only LF may follow, an LF ends the line.
 * A line's head - three digits and a separator - is judged once: when the
 * line ends, or as soon as SMTP_REPLY_QUOTE_MAX + 1 bytes of it are in (so a
 * server that sends a long line of garbage without an LF is refused early,
 * and the error can quote as much of it as it is going to).  Every check
 * happens at a fixed byte of the stream, whatever the feeds, so the result
 * and the bytes consumed never depend on how the stream was cut.  After a
 * protocol error the reader stays in RS_BAD: a reply stream that went wrong
 * once cannot be resynchronised safely (Postfix's smtp_chat_resp() makes the
 * same call under pipelining: a later "250" must never be taken for the
 * answer to an earlier command).
 */
#include "config.h"

#include <stdarg.h>
#include <string.h>

#include "client/smtp_reply.h"

G_STATIC_ASSERT(SMTP_REPLY_QUOTE_MAX + 1 < SMTP_REPLY_LINE_MAX);
G_STATIC_ASSERT(SMTP_REPLY_LINE_MAX <= SMTP_REPLY_TEXT_MAX);

typedef enum {
	RS_LINE,      /* inside a line (or at its start) */
	RS_CR,        /* after a CR inside a line: LF must follow */
	RS_BAD,       /* a protocol error was found: nothing more is read */
} ReadState;

struct SmtpReplyReader {
	ReadState state;
	GString *line;              /* this line so far, without CR LF */
	gboolean judged;            /* its code and separator were checked */
	gboolean last;              /* ... and it is the reply's last line */
	int code;                   /* the reply's code (its first line's), 0 before */
	guint lines;                /* lines of this reply ended so far */
	guint continuations;        /* "ddd-" lines of this reply judged so far */
	char status[16];            /* the first line's enhanced status code */
	GString *text;              /* the text kept so far */
	gboolean cut;               /* lines were left out of text */
	char *error;                /* RS_BAD: why */
};

/* ---- helpers ---------------------------------------------------------------------- */

/* Append n bytes at p to s, each byte outside printable ASCII as \xNN. */
static void
append_escaped(GString *s, const char *p, gsize n)
{
	for (gsize i = 0; i < n; i++) {
		guchar c = (guchar)p[i];
		if (c >= ' ' && c <= '~')
			g_string_append_c(s, (char)c);
		else
			g_string_append_printf(s, "\\x%02x", c);
	}
}

static void
reply_reset(SmtpReplyReader *r)
{
	g_string_truncate(r->line, 0);
	r->judged = FALSE;
	r->last = FALSE;
	r->code = 0;
	r->lines = 0;
	r->continuations = 0;
	r->status[0] = '\0';
	r->text = g_string_sized_new(64);
	r->cut = FALSE;
}

static SmtpReplyStatus bad(SmtpReplyReader *r, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* A protocol error: the reader is finished.  fmt makes one printable line. */
static SmtpReplyStatus
bad(SmtpReplyReader *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	r->error = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	r->state = RS_BAD;
	g_string_free(r->line, TRUE);
	r->line = NULL;
	g_string_free(r->text, TRUE);
	r->text = NULL;
	return SMTP_REPLY_BAD;
}

/* RFC 3463 2: class "." subject "." detail, subject and detail "0" or
 * ("1"-"9" *2digit); at the start of t and followed by a space or the end
 * (RFC 2034 4), and of the class of the reply code.  Copied to status. */
static void
parse_status(const char *t, gsize n, int klass, char status[16])
{
	gsize i = 2;

	status[0] = '\0';
	if (n < 5 || (klass != 2 && klass != 4 && klass != 5) || t[0] != '0' + klass ||
	    t[1] != '.')
		return;
	for (int part = 0; part < 2; part++) {
		gsize start = i;
		while (i < n && g_ascii_isdigit(t[i]) && i - start < 4)
			i++;
		if (i == start || i - start > 3 || (i - start > 1 && t[start] == '0'))
			return;
		if (part == 0) {
			if (i >= n || t[i] != '.')
				return;
			i++;
		}
	}
	if (i < n && t[i] != ' ')
		return;
	memcpy(status, t, i);       /* at most "5.999.999" */
	status[i] = '\0';
}

/* ---- lines ------------------------------------------------------------------------ */

/* Check the head of the line: "ddd", "ddd " or "ddd-", the code's first digit
 * 2-5 and second 0-5 (RFC 5321 4.2.1), the same code as the first line, and
 * not one continuation line too many. */
static SmtpReplyStatus
judge(SmtpReplyReader *r)
{
	const char *l = r->line->str;
	gsize n = r->line->len;
	int code;

	if (n < 3 || l[0] < '2' || l[0] > '5' || l[1] < '0' || l[1] > '5' ||
	    !g_ascii_isdigit(l[2]) || (n > 3 && l[3] != ' ' && l[3] != '-')) {
		GString *q = g_string_new(NULL);
		append_escaped(q, l, MIN(n, (gsize)SMTP_REPLY_QUOTE_MAX));
		if (n > SMTP_REPLY_QUOTE_MAX)
			g_string_append(q, "...");
		bad(r, "garbage from the server: \"%s\"%s", q->str,
		    r->lines > 0 ? " (in the middle of a multiline reply)" : "");
		g_string_free(q, TRUE);
		return SMTP_REPLY_BAD;
	}
	code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
	if (r->code == 0)
		r->code = code;
	else if (code != r->code)
		return bad(r, "line %u has code %d, the first had %d", r->lines + 1, code, r->code);
	r->last = n == 3 || l[3] == ' ';
	if (!r->last && ++r->continuations > SMTP_REPLY_LINES_MAX)
		return bad(r, "a flood of continuation lines: more than %d in one reply",
		    SMTP_REPLY_LINES_MAX);
	r->judged = TRUE;
	return SMTP_REPLY_MORE;
}

/* The line ended: judge it if that is not done, keep its text.  DONE when it
 * was the last line. */
static SmtpReplyStatus
line_end(SmtpReplyReader *r)
{
	const char *t;
	gsize tn;

	if (!r->judged && judge(r) == SMTP_REPLY_BAD)
		return SMTP_REPLY_BAD;
	t = r->line->str + MIN(r->line->len, (gsize)4);
	tn = r->line->len - MIN(r->line->len, (gsize)4);
	if (r->lines == 0) {
		parse_status(t, tn, r->code / 100, r->status);
		g_string_append_len(r->text, t, (gssize)tn);    /* fits: LINE_MAX <= TEXT_MAX */
	} else if (!r->cut) {
		if (r->text->len + 1 + tn <= SMTP_REPLY_TEXT_MAX) {
			g_string_append_c(r->text, '\n');
			g_string_append_len(r->text, t, (gssize)tn);
		} else {
			g_string_append(r->text, "\n...");
			r->cut = TRUE;
		}
	}
	r->lines++;
	g_string_truncate(r->line, 0);
	r->judged = FALSE;
	return r->last ? SMTP_REPLY_DONE : SMTP_REPLY_MORE;
}

/* n bytes at p, none of them CR or LF, go on the line.  Returns how many
 * were consumed: all of them unless the line went BAD (*st), then up to and
 * including the byte that showed it. */
static gsize
line_add(SmtpReplyReader *r, const char *p, gsize n, SmtpReplyStatus *st)
{
	gsize done = 0;

	*st = SMTP_REPLY_MORE;
	while (done < n) {
		gsize take = n - done;
		if (!r->judged) {
			/* The head is judged on byte QUOTE_MAX + 1 of the line. */
			take = MIN(take, SMTP_REPLY_QUOTE_MAX + 1 - r->line->len);
			g_string_append_len(r->line, p + done, (gssize)take);
			done += take;
			if (r->line->len > SMTP_REPLY_QUOTE_MAX && judge(r) == SMTP_REPLY_BAD) {
				*st = SMTP_REPLY_BAD;
				return done;
			}
		} else if (take > SMTP_REPLY_LINE_MAX - r->line->len) {
			done += SMTP_REPLY_LINE_MAX - r->line->len + 1;
			bad(r, "line %u of the reply is longer than %d bytes", r->lines + 1,
			    SMTP_REPLY_LINE_MAX);
			*st = SMTP_REPLY_BAD;
			return done;
		} else {
			g_string_append_len(r->line, p + done, (gssize)take);
			done += take;
		}
	}
	return done;
}

/* ---- the reader ------------------------------------------------------------------- */

SmtpReplyReader *
smtp_reply_reader_new(void)
{
	SmtpReplyReader *r = g_new0(SmtpReplyReader, 1);

	r->state = RS_LINE;
	r->line = g_string_sized_new(128);
	reply_reset(r);
	return r;
}

void
smtp_reply_reader_free(SmtpReplyReader *r)
{
	if (!r)
		return;
	if (r->line)
		g_string_free(r->line, TRUE);
	if (r->text)
		g_string_free(r->text, TRUE);
	g_free(r->error);
	g_free(r);
}

SmtpReplyStatus
smtp_reply_feed(SmtpReplyReader *r, const char *buf, gsize len, gsize *used, SmtpReply *out)
{
	const char *p = buf, *e;
	SmtpReplyStatus st = SMTP_REPLY_MORE;

	memset(out, 0, sizeof *out);
	if (r->state == RS_BAD) {
		*used = 0;
		out->error = g_strdup(r->error);
		return SMTP_REPLY_BAD;
	}
	if (len == 0) {             /* buf may be NULL: no arithmetic on it */
		*used = 0;
		return SMTP_REPLY_MORE;
	}
	e = buf + len;
	while (p < e && st == SMTP_REPLY_MORE) {
		const char *q;

		if (r->state == RS_CR) {
			if (*p++ != '\n') {
				st = bad(r, "a bare CR inside line %u of the reply", r->lines + 1);
				break;
			}
			r->state = RS_LINE;
			st = line_end(r);
			continue;
		}
		for (q = p; q < e && *q != '\r' && *q != '\n'; q++)
			;
		if (q > p) {
			p += line_add(r, p, (gsize)(q - p), &st);
			if (st != SMTP_REPLY_MORE)
				break;
		}
		if (p == e)
			break;
		if (*p++ == '\r')
			r->state = RS_CR;
		else
			st = line_end(r);   /* CR LF, or a bare LF: tolerated */
	}
	*used = (gsize)(p - buf);
	if (st == SMTP_REPLY_DONE) {
		out->code = r->code;
		memcpy(out->status, r->status, sizeof out->status);
		out->text = r->text;
		out->lines = r->lines;
		reply_reset(r);
	} else if (st == SMTP_REPLY_BAD) {
		out->error = g_strdup(r->error);
	}
	return st;
}

void
smtp_reply_clear(SmtpReply *out)
{
	if (!out)
		return;
	if (out->text)
		g_string_free(out->text, TRUE);
	g_free(out->error);
	memset(out, 0, sizeof *out);
}

char *
smtp_reply_format(const SmtpReply *reply)
{
	GString *s;

	if (reply->code == 0)
		return g_strdup(reply->error ? reply->error : "no reply");
	s = g_string_sized_new(reply->text ? reply->text->len + 8 : 8);
	g_string_append_printf(s, "%d", reply->code);
	if (reply->text && reply->text->len > 0) {
		const char *t = reply->text->str, *e = t + reply->text->len;
		g_string_append_c(s, ' ');
		while (t < e) {
			const char *nl = memchr(t, '\n', (size_t)(e - t));
			const char *stop = nl ? nl : e;
			append_escaped(s, t, (gsize)(stop - t));
			if (nl)
				g_string_append_c(s, ' ');
			t = nl ? nl + 1 : e;
		}
	}
	return g_string_free(s, FALSE);
}

int
smtp_reply_class(const SmtpReply *reply)
{
	int k = reply->code / 100;

	return k >= 2 && k <= 5 ? k : 0;
}

const char *
smtp_reply_status_name(SmtpReplyStatus s)
{
	switch (s) {
	case SMTP_REPLY_MORE:
		return "more";
	case SMTP_REPLY_DONE:
		return "done";
	case SMTP_REPLY_BAD:
		return "bad";
	}
	return "unknown";
}
