/* mime_int.h - what the files of the MIME translation share (private;
 * mime_in.h and mime_out.h are the interfaces).
 *
 *   mime_in.c         MIME -> legacy: the entry point, GMime's parser and its
 *                     warnings, notes and limits, the body finished
 *   mime_in_header.c  MIME -> legacy: From, To, Cc, Subject, priority and the
 *                     Received: hops read from the raw header fields
 *   mime_in_part.c    MIME -> legacy: the walk over the parts, text parts into
 *                     the body, the others into named attachments, lenient base64
 *   charset.c         bytes in a MIME charset into UTF-8, UTF-8 into the
 *                     postoffice's codepage (through translit.h)
 *   rfc2047.c         RFC 2047 encoded-words, read (MIME -> legacy) and
 *                     written (legacy -> MIME)
 *   params.c          Content-Type and Content-Disposition parameters: RFC 2231
 *                     read (a part's file name) and written
 *   html_text.c       HTML made readable text
 *   mime_out.c        legacy -> MIME
 * Names here carry mi_ (MIME internal), MI_ or Mi; nothing outside
 * gateway/mime/ includes this header.
 */
#ifndef PG_MIME_INT_H
#define PG_MIME_INT_H

#include <glib.h>
#include <gmime/gmime.h>

#include "message.h"
#include "mime/mime_in.h"

/* Characters of untrusted text quoted in a note. */
#define MI_NOTE_QUOTE_MAX 64
/* Header lines are folded before this many characters (RFC 5322 2.1.1 asks
 * for 78, less room for the ';' or ',' after a piece). */
#define MI_FOLD_WIDTH 76
/* Every header text and body is written in this charset (SPEC 4: named, so
 * GMime never picks one from the locale). */
#define MI_TEXT_CHARSET "utf-8"

/* The state of one inbound translation (mime_in_translate). */
typedef struct {
	const char *codepage;
	LegacyMessage *msg;
	MimeInStats *stats;
	GMimeParserOptions *options;
	GMimeFormatOptions *format;     /* for parts kept as their bytes */
	GString *body;                  /* UTF-8 */
	GString *damage;                /* UTF-8 lines for the end of the text: what
	                                 * could not be decoded */
	GHashTable *names;              /* lower-case attachment names in use */
	GHashTable *seen_notes;
	guint notes_dropped;
	guint64 size;                   /* bytes of content so far */
	GError *error;                  /* the first limit hit: the walk stops */
	const char *field;              /* the address field being parsed, for notes */
	const char *list_field;         /* the address field GMime parsed last */
	char marker[8];                 /* UTF-8 standing for "=?" in it; "" for none */
} MiCtx;

/* ---- mime_in.c ---- */

/* mi_note - a note for the stats, once per text, at most MIME_IN_MAX_NOTES */
void mi_note(MiCtx *c, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* mi_label - a part's path as notes name it ("1" for the top) */
const char *mi_label(const char *path);
/* mi_limit - the first limit hit, as c->error; always FALSE */
gboolean mi_limit(MiCtx *c, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* ---- mime_in_header.c ---- */

/* mi_find_header - the first header field of obj named name, or NULL */
GMimeHeader *mi_find_header(GMimeObject *obj, const char *name);
/* mi_header_text - the decoded (RFC 2047) UTF-8 text of a header field, or NULL; g_free it */
char *mi_header_text(MiCtx *c, GMimeHeader *h);
/* mi_unmark - text GMime gave back from the address list parsed last, "=?" restored; g_free it */
char *mi_unmark(MiCtx *c, const char *s);
/* mi_headers - the hop trace, then From, To, Cc, Subject, Date and priority of top into c->msg; FALSE (and c->error) over MSG_MAX_HOPS, nothing else read then */
gboolean mi_headers(MiCtx *c, GMimeMessage *m);

/* ---- mime_in_part.c ---- */

/* mi_walk - obj and its parts (path "1.2", "" for the top) into the body and attachments of c->msg; text_ok: a text part may become body text */
void mi_walk(MiCtx *c, GMimeObject *obj, const char *path, int depth, gboolean text_ok);
/* mi_add_text - UTF-8 text appended to the body, a blank line after what is there */
void mi_add_text(MiCtx *c, const char *utf8);

/* ---- charset.c ---- */

/* mi_all_ascii - whether len bytes of s are all 7-bit */
gboolean mi_all_ascii(const char *s, gsize len);
/* mi_to_utf8 - len bytes of s in charset (may be NULL) as UTF-8, what goes wrong noted under what; g_free it */
char *mi_to_utf8(MiCtx *c, const char *what, const char *charset, const char *s, gsize len);
/* mi_to_cp - UTF-8 text into the codepage, counted in the stats; *out_len its length; g_free it */
char *mi_to_cp(MiCtx *c, const char *utf8, gsize len, gsize *out_len);
/* mi_line_to_cp - a one-line text in the codepage: controls and runs of blanks one space, trimmed, at most max bytes; g_free it */
char *mi_line_to_cp(MiCtx *c, const char *utf8, gsize max);

/* ---- rfc2047.c ---- */

/* mi_b64_value - the value of a base64 character, -1 for another */
int mi_b64_value(char ch);
/* mi_is_lwsp - whether ch is a blank or a line end */
gboolean mi_is_lwsp(char ch);
/* mi_q_words_8bit_escaped - raw with 8-bit bytes in Q encoded-words written =XX, or NULL when there is none; g_free it */
char *mi_q_words_8bit_escaped(const char *raw, gsize len);
/* mi_rfc2047_decode - UTF-8 header text with its encoded-words decoded (RFC 2047 6), what goes wrong noted under what; g_free it */
char *mi_rfc2047_decode(MiCtx *c, const char *what, const char *text);
/* mi_rfc2047_needed - whether UTF-8 text must travel as encoded-words */
gboolean mi_rfc2047_needed(const char *utf8);
/* mi_rfc2047_append - UTF-8 text as B encoded-words in utf-8 appended to out, each after a blank, folded; *col the line's length */
void mi_rfc2047_append(GString *out, const char *utf8, gsize *col);

/* ---- params.c ---- */

/* mi_part_filename - the file name a part suggests (Content-Disposition filename, else Content-Type name), UTF-8, or NULL; g_free it */
char *mi_part_filename(MiCtx *c, GMimeObject *obj);
/* mi_param_append - parameter name=utf8 appended to out after a ';', RFC 2231 where needed; *col the line's length */
void mi_param_append(GString *out, const char *name, const char *utf8, gsize *col);

/* ---- html_text.c ---- */

/* mi_html_to_text - the readable text of an HTML document (len bytes of UTF-8) in UTF-8; g_free it */
char *mi_html_to_text(const char *html, gsize len);

#endif
