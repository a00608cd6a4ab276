/* mime_out.h - a legacy message as Internet mail: RFC 5322 and MIME (SPEC 2, Outbound).
 *
 * Owns: turning one normal LegacyMessage (message.h) into the bytes of an
 * RFC 5322 message with CRLF line ends, fit for 7-bit transport, with GMime 3:
 *   - From/To/Cc from the message's display lists, names converted from the
 *     message's codepage to UTF-8 and RFC 2047-encoded (charset utf-8,
 *     whatever the locale); addresses through the caller's MimeOutAddressFn.
 *     A party without an SMTP address is shown as an empty group
 *     (RFC 5322 3.4): `"Jane Doe (CORP/HQ/JDOE)": ;` - valid, parsed back by
 *     GMime as a group named after the person, and never replied to.  No To
 *     at all gives `To: undisclosed-recipients: ;`.
 *     From, To, Cc and Subject are written by this module, not by GMime:
 *     text holding "=?" is encoded too (else a reader would decode what the
 *     legacy user typed), and every base64 word holds whole characters and,
 *     where the text allows, a multiple of 3 bytes, so no word but the last
 *     ends in '=' padding (GMime 3.2.13 stops reading there, issue #133).
 *   - Subject (RFC 2047), Date (RFC 5322 3.3, English names, UTC), Message-ID
 *     (mime_out_message_id), MIME-Version, X-Priority and Importance for a
 *     priority other than normal, X-Legacy-Id and X-Legacy-Postoffice.
 *   - Trace (RFC 5321 4.4): one Received: per legacy hop, newest on top, and
 *     the gateway's own Received: above them, so a message that crossed n
 *     legacy hops carries n + 1 Received: fields and the hop counter of every
 *     later MTA sees them all (SPEC 3.2).
 *   - Body: the text in UTF-8 as text/plain; charset=utf-8 with the
 *     Content-Transfer-Encoding GMime's 7-bit constraint picks (7bit,
 *     quoted-printable or base64; RFC 2045 6); attachments as parts of a
 *     multipart/mixed (RFC 2046 5.1.3), base64 and byte-exact, named with
 *     Content-Disposition: attachment; filename (RFC 2183), RFC 2231-encoded
 *     when not ASCII (or holding "=?"), continuations split only between two
 *     characters.  A ".eml" attachment is message/rfc822 only when its
 *     bytes parse as a message and can travel unchanged (7-bit, CRLF, lines
 *     of at most 998 bytes; RFC 2046 5.2.1 allows no base64 there); otherwise
 *     it is application/octet-stream.
 * The result is the same bytes for the same message and context under any
 * locale (SPEC 4): every charset is named, the multipart boundary is derived
 * from the message, dates are formatted in UTC with fixed names.  No line of
 * the result is longer than 998 bytes (RFC 5322 2.1.1).
 *
 * Never: reports (an NDR or receipt is refused: RFC 3464 DSNs are built by the
 * reports module), directory lookups (the caller's address_of answers),
 * delivery, or the SMTP envelope (DSN parameters are the queue's).
 *
 * GMime is initialised on first use (g_mime_init is counted, so a program may
 * also initialise and shut it down around this module).
 */
#ifndef PG_MIME_OUT_H
#define PG_MIME_OUT_H

#include <glib.h>
#include <gmime/gmime.h>

#include "message.h"

#define MIME_OUT_ERROR (mime_out_error_quark())
GQuark mime_out_error_quark(void);

typedef enum {
	MIME_OUT_ERROR_REPORT,     /* an NDR or receipt: not a message this module builds */
	MIME_OUT_ERROR_INVALID,    /* the message or the context breaks a rule */
	MIME_OUT_ERROR_CODEPAGE,   /* the message's codepage cannot be converted here */
	MIME_OUT_ERROR_WRITE,      /* GMime could not write the message */
} MimeOutError;

/* A domain label: RFC 1035 2.3.4. */
#define MIME_OUT_LABEL_MAX       63
/* A host name written into Received: and the right side of a Message-ID. */
#define MIME_OUT_HOST_MAX        253
/* Legacy text quoted in a Received: comment (a hop's node name). */
#define MIME_OUT_COMMENT_MAX     64
/* The readable parts of a Message-ID's left side: legacy id, postoffice. */
#define MIME_OUT_ID_PART_MAX     64
/* Hex digits of the SHA-256 of (postoffice, id) in a Message-ID and boundary. */
#define MIME_OUT_HASH_HEX        16
/* Longest line a built message may hold, without its CRLF (RFC 5322 2.1.1). */
#define MIME_OUT_LINE_MAX        998

/* Maps a legacy address (NET/PO/MAILBOX or SMTP:local@domain) to the SMTP
 * address it is reached by, or NULL when it has none; the batch run answers
 * from the directory.  The string stays the callee's; it must live until
 * mime_out_build returns. */
typedef const char *(*MimeOutAddressFn)(const char *legacy_addr, gpointer data);

typedef struct {
	const char *from_address;   /* the originator's primary SMTP proxy, local@domain (required) */
	const char *hostname;       /* the gateway's host name: right side of Message-ID, Received: "by" */
	const char *source_po;      /* NET/PO the message came from */
	MimeOutAddressFn address_of; /* NULL: only SMTP:local@domain addresses have one */
	gpointer data;
	gint64 now;                 /* time of translation, for the gateway's own Received: field */
} MimeOutContext;

/* mime_out_build - the RFC 5322 message (CRLF line ends) for a legacy message; NULL and error (MIME_OUT_ERROR) only when it cannot be built
 * Refused: a report class (MIME_OUT_ERROR_REPORT), a message msg_validate
 * refuses, a missing or malformed from_address, hostname or source_po
 * (MIME_OUT_ERROR_INVALID), a codepage iconv does not convert
 * (MIME_OUT_ERROR_CODEPAGE).  A recipient address_of maps to NULL or to
 * something that is not local@domain is shown by name only (see above). */
GBytes *mime_out_build(const LegacyMessage *msg, const MimeOutContext *ctx,
    GError **error);

/* mime_out_message_id - the Message-ID (with angle brackets) a legacy message gets: derived from source_po and msg->id only, so a retranslation is recognisably the same message
 * Form: <ID.NET-PO.HASH@HOST>, ID and NET-PO the readable parts (characters
 * outside A-Z a-z 0-9 - _ become '-', at most MIME_OUT_ID_PART_MAX each),
 * HASH the first MIME_OUT_HASH_HEX hex digits of SHA-256 over the upper-case
 * postoffice, a NUL and the id (so ids that read alike stay apart), HOST the
 * host name as a dot-atom.  Always a valid msg-id (RFC 5322 3.6.4); g_free it. */
char *mime_out_message_id(const char *source_po, const char *legacy_id,
    const char *hostname);

/* mime_out_bytes - message written as RFC 5322 bytes, CRLF line ends,
 * RFC 2231 parameters; NULL when GMime cannot write it (out of memory) */
GBytes *mime_out_bytes(GMimeMessage *message);
/* mime_out_gmime_init - g_mime_init once in the process, from any thread */
void mime_out_gmime_init(void);
/* mime_out_date - an RFC 5322 3.3 date-time in UTC, English names whatever the locale; g_free it */
char *mime_out_date(gint64 t);

/* mime_out_node_domain - a legacy node name (NET/PO, or a gateway's name) as a domain-safe token: "CORP/HQ" is "hq.corp.legacy"; g_free it */
char *mime_out_node_domain(const char *node);

#endif
