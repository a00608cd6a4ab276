/* smtp_data.c - the DATA byte stream (see smtp_data.h).
 *
 * Two small state machines.  The stream one (DataState) works on the bytes
 * as they come off the wire: a line starts only after CR LF (or at the start),
 * a '.' that starts a line is dropped, and only "." CR LF at a line start ends
 * data.  Runs of ordinary bytes are found eight at a time and passed on whole,
 * so the per-byte cost is a load and three operations.  Bytes that become
 * content go to the header one (HdrState), which follows the header section
 * (RFC 5322 2.2: field name, ':', value, folded continuation lines; the first
 * line that is neither ends it) and then stops looking.
 *
 * A byte is content unless it is a stuffing dot or part of the final ".\r\n";
 * a CR LF is content when its LF arrives, a bare CR when the byte after it
 * does.  The first problem met, in stream order, is the verdict; content after
 * it is counted but not appended, so out ends exactly where it went wrong.
 */
#include "config.h"

#include <string.h>

#include "smtpd/smtp_data.h"

/* The longest field name compared (Message-ID); longer names just mismatch. */
#define HDR_NAME_KEEP   16

typedef enum {
	DS_BOL,       /* at the start of a line (after CR LF, or at the start) */
	DS_TEXT,      /* inside a line */
	DS_CR,        /* after a CR inside a line: CR LF or a bare CR */
	DS_DOT,       /* after a '.' at the start of a line */
	DS_DOT_CR,    /* after "." CR at the start of a line */
	DS_END,       /* after CR LF "." CR LF */
} DataState;

typedef enum {
	HS_BOL,       /* at the start of a header line */
	HS_NAME,      /* in a field name */
	HS_NAME_WSP,  /* blanks after a field name (RFC 5322 4.5 obs-optional) */
	HS_VALUE,     /* in a field value not kept */
	HS_MSGID,     /* in the Message-ID value */
	HS_BODY,      /* after the header section */
} HdrState;

typedef enum {
	HF_NONE,      /* no field yet: a continuation line is not one */
	HF_OTHER,
	HF_MSGID,
} HdrField;

struct SmtpData {
	gint64 max_size;
	gsize max_line;
	DataState state;
	SmtpDataVerdict verdict;
	gint64 size;
	gsize line_len;             /* content bytes of this line, while OK */
	gboolean finished;          /* the end was seen and the header closed */

	HdrState hstate;
	HdrField field;
	char name[HDR_NAME_KEEP];
	gsize nlen;
	guint received;
	gboolean msgid_seen;        /* the first Message-ID field began */
	gboolean msgid_done;        /* ... and ended: msgid is final */
	gsize mlen;
	char msgid[SMTP_DATA_MSGID_MAX + 1];
	char too_long_reply[96];    /* the LINE_TOO_LONG reply, made once */
};

/* ---- the header section ---------------------------------------------------- */

/* RFC 5322 3.6.8 ftext: printable US-ASCII except ':'. */
static inline gboolean
ftext(char c)
{
	return c >= '!' && c <= '~' && c != ':';
}

static void
hdr_end_field(SmtpData *d)
{
	if (d->field == HF_MSGID) {
		while (d->mlen > 0 && (d->msgid[d->mlen - 1] == ' ' || d->msgid[d->mlen - 1] == '\t'))
			d->mlen--;
		d->msgid[d->mlen] = '\0';
		d->msgid_done = TRUE;
	}
	d->field = HF_NONE;
}

static void
hdr_begin_value(SmtpData *d)
{
	gsize n = MIN(d->nlen, (gsize)HDR_NAME_KEEP);

	d->field = HF_OTHER;
	d->hstate = HS_VALUE;
	if (d->nlen == 8 && g_ascii_strncasecmp(d->name, "Received", n) == 0) {
		if (d->received < G_MAXUINT)
			d->received++;
	} else if (d->nlen == 10 && g_ascii_strncasecmp(d->name, "Message-ID", n) == 0 &&
	    !d->msgid_seen) {
		d->msgid_seen = TRUE;
		d->field = HF_MSGID;
		d->hstate = HS_MSGID;
		d->mlen = 0;
	}
}

/* n bytes of content, in order.  While the verdict is OK a CR in content is
 * always the first half of a CR LF, so LF alone marks line ends here. */
static void
hdr_feed(SmtpData *d, const char *p, gsize n)
{
	const char *e = p + n;

	while (p < e && d->hstate != HS_BODY) {
		char c = *p;
		switch (d->hstate) {
		case HS_BOL:
			if (c == '\r') {
				p++;
			} else if (c == '\n') {
				/* The empty line: the body follows. */
				hdr_end_field(d);
				d->hstate = HS_BODY;
			} else if (c == ' ' || c == '\t') {
				/* A continuation line; at the start it means no header. */
				d->hstate = d->field == HF_MSGID ? HS_MSGID :
				    d->field == HF_OTHER ? HS_VALUE : HS_BODY;
			} else {
				hdr_end_field(d);
				d->nlen = 0;
				d->hstate = ftext(c) ? HS_NAME : HS_BODY;
			}
			break;
		case HS_NAME:
			if (ftext(c)) {
				if (d->nlen < HDR_NAME_KEEP)
					d->name[d->nlen] = c;
				if (d->nlen <= HDR_NAME_KEEP)
					d->nlen++;
				p++;
			} else if (c == ':') {
				hdr_begin_value(d);
				p++;
			} else if (c == ' ' || c == '\t') {
				d->hstate = HS_NAME_WSP;
				p++;
			} else {
				d->hstate = HS_BODY;    /* not a field: the body began */
			}
			break;
		case HS_NAME_WSP:
			if (c == ' ' || c == '\t') {
				p++;
			} else if (c == ':') {
				hdr_begin_value(d);
				p++;
			} else {
				d->hstate = HS_BODY;
			}
			break;
		case HS_VALUE: {
			const char *lf = memchr(p, '\n', (size_t)(e - p));
			if (!lf) {
				p = e;
			} else {
				p = lf + 1;
				d->hstate = HS_BOL;
			}
			break;
		}
		case HS_MSGID:
			if (c == '\n')
				d->hstate = HS_BOL;
			else if (c == '\r' || (d->mlen == 0 && (c == ' ' || c == '\t')))
				;
			else if (d->mlen < SMTP_DATA_MSGID_MAX)
				d->msgid[d->mlen++] = c;
			p++;
			break;
		case HS_BODY:
			break;
		}
	}
}

/* ---- content ---------------------------------------------------------------- */

/* Content bytes that are contiguous in the caller's buffer are appended in
 * one piece; a piece ends at a dropped dot, a CR LF split between two feeds,
 * a refusal, or the end of the feed. */
typedef struct {
	SmtpData *d;
	GByteArray *out;
	const char *p;
	gsize n;
} Emit;

static void
emit_flush(Emit *em)
{
	const char *p = em->p;
	gsize n = em->n;

	hdr_feed(em->d, p, n);
	if (em->out) {
		while (n > 0) {
			guint piece = (guint)MIN(n, (gsize)(G_MAXUINT / 2));
			g_byte_array_append(em->out, (const guint8 *)p, piece);
			p += piece;
			n -= piece;
		}
	}
	em->n = 0;
}

static inline void
emit(Emit *em, const char *p, gsize n)
{
	if (n == 0)
		return;
	if (em->n > 0 && em->p + em->n == p) {
		em->n += n;
		return;
	}
	if (em->n > 0)
		emit_flush(em);
	em->p = p;
	em->n = n;
}

static inline void
problem(SmtpData *d, SmtpDataVerdict v)
{
	if (d->verdict == SMTP_DATA_OK)
		d->verdict = v;
}

/* n content bytes at p: counted, and appended while the verdict is OK and
 * the size within max_size. */
static inline void
content(Emit *em, const char *p, gsize n)
{
	SmtpData *d = em->d;

	if (d->verdict == SMTP_DATA_OK && d->max_size > 0 &&
	    n > (guint64)(d->max_size - d->size)) {
		emit(em, p, (gsize)(d->max_size - d->size));
		problem(d, SMTP_DATA_TOO_BIG);
	} else if (d->verdict == SMTP_DATA_OK) {
		emit(em, p, n);
	}
	d->size += (gint64)n;
}

/* n ordinary bytes (no CR, LF or NUL) inside a line. */
static inline void
text(Emit *em, const char *p, gsize n)
{
	SmtpData *d = em->d;

	if (d->verdict == SMTP_DATA_OK && d->max_line > 0 && n > d->max_line - d->line_len) {
		gsize room = d->max_line - d->line_len;
		content(em, p, room);
		problem(d, SMTP_DATA_LINE_TOO_LONG);
		content(em, p + room, n - room);
		return;
	}
	d->line_len += n;
	content(em, p, n);
}

/* ---- finding CR, LF and NUL ---------------------------------------------------- */

static const guint8 special[256] = { [0] = 1, ['\n'] = 1, ['\r'] = 1 };

#define BYTES_01   0x0101010101010101ULL
#define BYTES_80   0x8080808080808080ULL

/* The first CR, LF or NUL in [p, e), or e.  Eight bytes at a time: the
 * mask has the top bit of every byte below 14 set, and the lowest one is
 * exact (a borrow only runs upwards from a byte that is below 14), so on a
 * little-endian machine its position is the count of trailing zeros.  A byte
 * below 14 that is none of the three (a tab, say) is stepped over. */
static inline const char *
scan_special(const char *p, const char *e)
{
	while (e - p >= 8) {
		guint64 v, m;
		memcpy(&v, p, sizeof v);
		m = (v - 14 * BYTES_01) & ~v & BYTES_80;
		if (m == 0) {
			p += 8;
			continue;
		}
#if G_BYTE_ORDER == G_LITTLE_ENDIAN
		p += __builtin_ctzll(m) >> 3;
		if (special[(guint8)*p])
			return p;
		p++;
#else
		for (const char *stop = p + 8; p < stop; p++)
			if (special[(guint8)*p])
				return p;
#endif
	}
	for (; p < e; p++)
		if (special[(guint8)*p])
			return p;
	return e;
}

/* ---- the stream -------------------------------------------------------------- */

SmtpData *
smtp_data_new(gint64 max_size, gsize max_line)
{
	SmtpData *d = g_new0(SmtpData, 1);

	d->max_size = max_size > 0 ? max_size : 0;
	d->max_line = max_line;
	d->state = DS_BOL;
	d->verdict = SMTP_DATA_OK;
	d->hstate = HS_BOL;
	d->field = HF_NONE;
	g_snprintf(d->too_long_reply, sizeof d->too_long_reply,
	    "550 5.6.0 Message refused: line longer than %" G_GSIZE_FORMAT " bytes", max_line);
	return d;
}

void
smtp_data_free(SmtpData *d)
{
	g_free(d);
}

gsize
smtp_data_feed(SmtpData *d, const char *buf, gsize len, GByteArray *out, gboolean *end)
{
	Emit em = { d, out, NULL, 0 };
	const char *p = buf, *e;

	if (len == 0) {             /* buf may be NULL */
		*end = d->state == DS_END;
		return 0;
	}
	e = buf + len;
	while (p < e && d->state != DS_END) {
		switch (d->state) {
		case DS_BOL:
			d->line_len = 0;
			if (*p == '.') {
				p++;            /* stuffing, or the start of the end */
				d->state = DS_DOT;
				break;
			}
			d->state = DS_TEXT;
			break;
		case DS_TEXT: {
			const char *q = scan_special(p, e);
			if (q > p)
				text(&em, p, (gsize)(q - p));
			p = q;
			if (p == e)
				break;
			if (e - p >= 3 && p[0] == '\r' && p[1] == '\n' && p[2] != '.') {
				/* The usual line end, and a next line that does not
				 * start with a dot: DS_CR and DS_BOL in one step. */
				content(&em, p, 2);
				d->line_len = 0;
				p += 2;
				break;
			}
			if (*p == '\r') {
				d->state = DS_CR;
			} else {
				problem(d, *p == '\n' ? SMTP_DATA_BARE_LF : SMTP_DATA_NUL);
				content(&em, p, 1);
			}
			p++;
			break;
		}
		case DS_CR:
			if (*p == '\n') {
				/* The CR is in buf unless the last feed ended with it. */
				content(&em, p > buf ? p - 1 : "\r\n", 2);
				p++;
				d->state = DS_BOL;
			} else {
				problem(d, SMTP_DATA_BARE_CR);
				content(&em, "\r", 1);
				d->state = DS_TEXT;     /* the byte after it is read there */
			}
			break;
		case DS_DOT:
			if (*p == '\r') {
				p++;
				d->state = DS_DOT_CR;
			} else {
				d->state = DS_TEXT;     /* the dot was stuffing */
			}
			break;
		case DS_DOT_CR:
			if (*p == '\n') {
				p++;
				d->state = DS_END;
			} else {
				/* "." CR x: the dot was stuffing, the CR is bare. */
				problem(d, SMTP_DATA_BARE_CR);
				content(&em, "\r", 1);
				d->state = DS_TEXT;
			}
			break;
		case DS_END:
			break;
		}
	}
	if (em.n > 0)
		emit_flush(&em);
	if (d->state == DS_END && !d->finished) {
		hdr_end_field(d);
		d->finished = TRUE;
	}
	*end = d->state == DS_END;
	return (gsize)(p - buf);
}

SmtpDataVerdict
smtp_data_verdict(const SmtpData *d)
{
	return d->verdict;
}

const char *
smtp_data_reply(const SmtpData *d)
{
	switch (d->verdict) {
	case SMTP_DATA_OK:
		return NULL;
	case SMTP_DATA_BARE_CR:
		return "550 5.6.0 Message refused: bare CR in message data "
		    "(see RFC 5321 2.3.8)";
	case SMTP_DATA_BARE_LF:
		return "550 5.6.0 Message refused: bare LF in message data "
		    "(see RFC 5321 2.3.8)";
	case SMTP_DATA_NUL:
		return "550 5.6.0 Message refused: NUL in message data "
		    "(see RFC 2045 2.8)";
	case SMTP_DATA_TOO_BIG:
		return "552 5.3.4 Message size exceeds fixed limit";
	case SMTP_DATA_LINE_TOO_LONG:
		return d->too_long_reply;
	}
	return NULL;
}

const char *
smtp_data_verdict_name(SmtpDataVerdict v)
{
	switch (v) {
	case SMTP_DATA_OK:
		return "ok";
	case SMTP_DATA_BARE_CR:
		return "bare-cr";
	case SMTP_DATA_BARE_LF:
		return "bare-lf";
	case SMTP_DATA_NUL:
		return "nul";
	case SMTP_DATA_TOO_BIG:
		return "too-big";
	case SMTP_DATA_LINE_TOO_LONG:
		return "line-too-long";
	}
	return "unknown";
}

gint64
smtp_data_size(const SmtpData *d)
{
	return d->size;
}

guint
smtp_data_received_count(const SmtpData *d)
{
	return d->received;
}

const char *
smtp_data_message_id(const SmtpData *d)
{
	return d->msgid_done && d->mlen > 0 ? d->msgid : NULL;
}
