/* smtp_data.h - the DATA byte stream: end of data, dot-unstuffing, refusals.
 *
 * Owns: finding the end of the message text (CR LF "." CR LF and nothing
 * else, RFC 5321 4.1.1.4), removing the dot-stuffing (4.5.2), refusing bare
 * CR and bare LF (RFC 5321 2.3.8, RFC 5322 2.3) and NUL (RFC 2045 2.7, 2.8),
 * the size and line-length limits, and what the session needs from the
 * header section: how many Received: fields (loop detection, RFC 5321 6.3)
 * and the Message-ID.  The SMTP smuggling defence
 * (https://www.postfix.org/smtp-smuggling.html): no bare CR, bare LF or NUL
 * ever ends data early; the stream is read on to the real end.  The result
 * is the same for every way the stream is cut into pieces; memory is O(1)
 * besides the caller's output buffer.  Never: reading the network, replying
 * "250", parsing MIME, or keeping refused content.
 */
#ifndef PG_SMTP_DATA_H
#define PG_SMTP_DATA_H

#include <glib.h>

/* A text line of RFC 5321 4.5.3.1.6 / RFC 5322 2.1.1 without its CRLF: the
 * max_line to pass when the session has no limit of its own. */
#define SMTP_DATA_LINE_RFC_MAX   998
/* The Message-ID value kept, unfolded and trimmed (one RFC 5322 line). */
#define SMTP_DATA_MSGID_MAX      998

typedef enum {
	SMTP_DATA_OK,
	SMTP_DATA_BARE_CR,          /* CR not followed by LF */
	SMTP_DATA_BARE_LF,          /* LF not preceded by CR */
	SMTP_DATA_NUL,
	SMTP_DATA_TOO_BIG,          /* more than max_size bytes of content */
	SMTP_DATA_LINE_TOO_LONG,    /* a line of more than max_line bytes */
} SmtpDataVerdict;

typedef struct SmtpData SmtpData;

/* smtp_data_new - a state machine for one DATA phase: max_size bytes of content at most, lines of at most max_line bytes (without CRLF)
 * max_size <= 0 or max_line == 0: no such limit.  The stream starts at the
 * beginning of a line: the DATA command's CRLF has been read. */
SmtpData *smtp_data_new(gint64 max_size, gsize max_line);
/* smtp_data_free - free d (NULL is fine) */
void smtp_data_free(SmtpData *d);
/* smtp_data_feed - consume up to len bytes of buf; unstuffed content is appended to out while the verdict is OK
 * Returns how many bytes were consumed: all of them, or fewer when the end of
 * data (CRLF.CRLF) was reached - then *end is TRUE and the bytes after it are
 * left for the caller (pipelined commands).  After the end it consumes
 * nothing.  out may be NULL (the content is only counted and scanned). */
gsize smtp_data_feed(SmtpData *d, const char *buf, gsize len, GByteArray *out, gboolean *end);
/* smtp_data_verdict - the first problem met, SMTP_DATA_OK if none */
SmtpDataVerdict smtp_data_verdict(const SmtpData *d);
/* smtp_data_reply - the reply line (no CRLF) for a refusing verdict, NULL for SMTP_DATA_OK */
const char *smtp_data_reply(const SmtpData *d);
/* smtp_data_size - content bytes so far (unstuffed, CRLF counted), also past a refusal */
gint64 smtp_data_size(const SmtpData *d);
/* smtp_data_received_count - Received: fields in the header section of the accepted content */
guint smtp_data_received_count(const SmtpData *d);
/* smtp_data_message_id - the first Message-ID field's value, unfolded and trimmed, at most SMTP_DATA_MSGID_MAX bytes; NULL if none (yet)
 * The value is known once the next header line has begun, or at the end.  It
 * is the client's bytes: never CR, LF or NUL, but maybe tabs, other controls
 * or 8-bit bytes - quote it before it goes into a log line. */
const char *smtp_data_message_id(const SmtpData *d);
/* smtp_data_verdict_name - the verdict as a word for the log ("bare-lf") */
const char *smtp_data_verdict_name(SmtpDataVerdict v);

#endif
