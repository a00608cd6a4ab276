/* mime_in.h - an Internet message (RFC 5322 / MIME) into a legacy message's content.
 *
 * Owns: the inbound translation (SPEC 2, issue 6 part 3): the header fields a
 * legacy reader sees (From, To, Cc with display names; Subject; Date;
 * priority), the hop trace (one hop per Received: field, oldest first, so
 * that the hop count survives the crossing, SPEC 3.2), one text body in the
 * postoffice's codepage with CRLF line ends, and every other part as a named
 * attachment holding its decoded bytes.  multipart/alternative gives its best
 * text (text/plain, else HTML made readable with libxml2's HTML parser);
 * message/rfc822 parts are kept whole as .eml attachments; charsets GMime or
 * iconv know are decoded, and unknown or missing ones on 8-bit text are read as
 * windows-1252; what could not be kept is counted and noted, never silent.
 * Never: the envelope (recipients, originator, id, class: the batch run sets
 * them), directory lookups, the process locale, or a crash on bad input.
 * RFCs: 5322 (3.3 dates, 3.4 addresses and groups, 3.6.7 Received), 2045
 * (transfer encodings), 2046 (multipart, message/rfc822), 2047 (encoded
 * words in Subject, display names and file names, decoded here one word at a
 * time as section 6 says, never by GMime 3.2.13's decoders, which cut a run
 * of base64 words after the first one ending in '='), 2183
 * (Content-Disposition), 2231 (parameter continuations and charsets), 2387
 * (multipart/related).
 */
#ifndef PG_MIME_IN_H
#define PG_MIME_IN_H

#include <glib.h>

#include "message.h"

#define MIME_IN_ERROR (mime_in_error_quark())
GQuark mime_in_error_quark(void);

typedef enum {
	MIME_IN_ERROR_LIMIT,        /* over a limit of message.h / pg_limits.h */
	MIME_IN_ERROR_CODEPAGE,     /* the codepage is not supported */
	MIME_IN_ERROR_PARSE,        /* not even a header section could be read */
} MimeInError;

/* Nesting levels of multipart and message parts walked; a deeper subtree
 * becomes one attachment holding its bytes. */
#define MIME_IN_MAX_DEPTH       32
/* A header field longer than this (unfolded) is ignored, with a note. */
#define MIME_IN_MAX_HEADER_LEN  (256u * 1024)
/* A hop's node name (the host after "by" in Received:) is cut to this. */
#define MIME_IN_MAX_HOP_NAME    255u
/* Notes kept per message; the rest are counted in one last note. */
#define MIME_IN_MAX_NOTES       100u
/* An extension kept when a long attachment name is shortened. */
#define MIME_IN_MAX_EXT_LEN     16u

typedef struct {
	guint transliterated;   /* characters replaced by a transliteration */
	guint lost;             /* characters the codepage could not keep at all ('?') */
	GPtrArray *notes;       /* char *: one line each, for the log and the message
	                         * trace: "part 1.2: unknown charset x-foo, decoded as
	                         * windows-1252", "part 3: bad base64, 12 characters
	                         * skipped", ... */
} MimeInStats;

/* mime_in_stats_clear - free what a translation stored in stats */
void mime_in_stats_clear(MimeInStats *stats);
/* mime_in_translate - an RFC 5322 message of len bytes into a
 * LegacyMessage's content (codepage, from, to, cc, subject, date, priority,
 * body, attachments) and hop trace, text in codepage; stats (may be NULL)
 * is cleared first and receives the counts and notes.  NULL and error
 * (MIME_IN_ERROR) only when it cannot be represented at all: over a limit
 * of message.h / pg_limits.h (too many attachments or hops, too big) or an
 * unsupported codepage. */
LegacyMessage *mime_in_translate(const guint8 *data, gsize len, const char *codepage,
    MimeInStats *stats, GError **error);

#endif
