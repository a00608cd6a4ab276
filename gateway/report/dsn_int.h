/* dsn_int.h - what the files of the delivery report reader share (private;
 * dsn_parse.h is the interface).
 *
 *   dsn_parse.c   the entry point: GMime's parse and walk, the delivery-status
 *                 fields, the returned message's Message-ID and Subject
 *   dsn_text.c    bounce texts without a delivery-status part
 * Nothing outside gateway/report/ includes this header.
 */
#ifndef PG_DSN_INT_H
#define PG_DSN_INT_H

#include <glib.h>

#include "report/dsn_parse.h"

/* dsn_say - *why set to the formatted reason unless it holds one already (the first wins) */
void dsn_say(char **why, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* dsn_is_wsp - whether c is a space or a tab */
gboolean dsn_is_wsp(char c);
/* dsn_is_blank - whether n bytes of s are only spaces and tabs */
gboolean dsn_is_blank(const char *s, gsize n);
/* dsn_clean_text - len bytes as UTF-8 for a result: controls and runs of blanks one space,
 * trimmed, invalid sequences U+FFFD; g_free it */
char *dsn_clean_text(const char *s, gsize len);
/* dsn_digits_at - how many digits (at most 4) begin at s[i] of len bytes */
gsize dsn_digits_at(const char *s, gsize i, gsize len);
/* dsn_parsed_new - an empty result of kind */
DsnParsed *dsn_parsed_new(DsnKind kind);
/* dsn_rcpt_free - free one DsnParsedRcpt */
void dsn_rcpt_free(gpointer data);
/* dsn_text_read - a bounce text (UTF-8, NUL-terminated) read as the first known text it is;
 * NULL (and maybe *why) when none is read with confidence; *copy: where the text's copy of
 * the returned message begins, or NULL */
DsnParsed *dsn_text_read(const char *text, const char **copy, char **why);

#endif
