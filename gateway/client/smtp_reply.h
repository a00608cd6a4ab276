/* smtp_reply.h - the SMTP client's reply reader: RFC 5321 4.2, 4.2.1, 4.5.3.1.5.
 *
 * Owns: cutting the server's byte stream into replies - "ddd-text" lines
 * continued up to a "ddd text" or "ddd" line, each ended by CR LF (a bare LF
 * is tolerated, as Postfix does) - whatever the TCP segmentation: the reader
 * keeps its state between feeds, so a reply split across segments, with
 * delays between them, is just several feeds, and pipelined replies (RFC
 * 2920) are read one at a time from one buffer.  Also owns the verdict on
 * every malformed reply (garbage, a bare CR, codes that change within a reply,
 * an overlong line, a flood of continuation lines): SMTP_REPLY_BAD with a
 * reason a person can act on, never a guess and never a success; the RFC 3463
 * enhanced status code of the first line (RFC 2034); and the one-line form
 * of a reply for logs and the queue.  Memory is bounded whatever the server
 * sends: one line of SMTP_REPLY_LINE_MAX plus the kept text.
 * Never: reading the network, timeouts, deciding what a reply means for the
 * session (the caller's state machine does), parsing EHLO keywords.
 */
#ifndef PG_SMTP_REPLY_H
#define PG_SMTP_REPLY_H

#include <glib.h>

/* One reply line without its CR LF.  RFC 5321 4.5.3.1.5 says 512 with the
 * CR LF; servers send longer ones, Postfix reads 2048. */
#define SMTP_REPLY_LINE_MAX    2048
/* Continuation ("ddd-") lines in one reply; the last line comes on top. */
#define SMTP_REPLY_LINES_MAX   200
/* Text kept of one reply (lines joined with '\n'); whole lines are kept while
 * they fit, then a line "..." marks the cut. */
#define SMTP_REPLY_TEXT_MAX    4096
/* Bytes of a garbage line quoted in the error. */
#define SMTP_REPLY_QUOTE_MAX   60

typedef enum {
	SMTP_REPLY_MORE,       /* no reply yet: every byte given was consumed */
	SMTP_REPLY_DONE,       /* one reply read; the bytes after it were not consumed */
	SMTP_REPLY_BAD,        /* a protocol error: close the connection */
} SmtpReplyStatus;

typedef struct {
	int code;              /* 200..559 for DONE; 0 for MORE and BAD */
	char status[16];       /* the RFC 3463 code at the start of the first line's text
	                        * when its class is the code's ("2.1.0"), else "" */
	GString *text;         /* DONE: every line's text as sent, without code and
	                        * separator, joined with '\n'; any byte but CR and LF
	                        * (so NUL too: use ->len), at most SMTP_REPLY_TEXT_MAX
	                        * bytes of whole lines, then "\n..." if lines were left
	                        * out; NULL for MORE and BAD */
	guint lines;           /* DONE: how many lines the reply had (also those left out) */
	char *error;           /* BAD: what was wrong, one printable line; else NULL */
} SmtpReply;

typedef struct SmtpReplyReader SmtpReplyReader;

/* smtp_reply_reader_new - a reader for one connection, at the start of a reply */
SmtpReplyReader *smtp_reply_reader_new(void);
/* smtp_reply_reader_free - free r (NULL is fine) */
void smtp_reply_reader_free(SmtpReplyReader *r);
/* smtp_reply_feed - consume bytes of buf up to the end of one reply; *used says how many
 * DONE: out holds the reply (the caller owns it until smtp_reply_clear) and
 * *used points just after its last line's LF: the bytes after it are the next
 * reply's, to be fed again.  MORE: *used is len, the bytes are kept, out is
 * empty.  BAD: out->error says why, *used counts up to the byte that showed
 * it; the reader is finished and every later feed returns BAD again (with
 * *used 0): close the connection.  out is overwritten in every case - clear a
 * reply before passing its SmtpReply again.  buf may be NULL when len is 0.
 * The result is the same however the stream is cut into feeds. */
SmtpReplyStatus smtp_reply_feed(SmtpReplyReader *r, const char *buf, gsize len, gsize *used,
    SmtpReply *out);
/* smtp_reply_clear - free what out holds and zero it (NULL is fine) */
void smtp_reply_clear(SmtpReply *out);
/* smtp_reply_format - "250 2.0.0 text" on one line for logs and the queue's last reply; g_free it
 * Continuation lines are joined with a space; any byte outside printable
 * ASCII (tab, 8-bit, controls) becomes \xNN.  A reply without a code (BAD)
 * gives its error. */
char *smtp_reply_format(const SmtpReply *reply);
/* smtp_reply_class - the reply's class: 2, 3, 4 or 5 (0 when it has no code) */
int smtp_reply_class(const SmtpReply *reply);
/* smtp_reply_status_name - the status as a word for the log ("more", "done", "bad") */
const char *smtp_reply_status_name(SmtpReplyStatus s);

#endif
