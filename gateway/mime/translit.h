/* translit.h - UTF-8 text into a postoffice codepage, transliterating what it lacks.
 *
 * Owns: turning Unicode text into the single-byte codepage of a postoffice
 * (CP437, CP850, CP1252, ...) so that a reader sees as much of it as the
 * codepage can show, and counting what it could not keep.  A character the
 * codepage has is kept; one it lacks is replaced by a transliteration (our own
 * table, then GLib's canonical and compatibility decompositions without their
 * combining marks: a letter with an accent becomes the letter only when the
 * codepage lacks the accented one); anything else becomes '?'.  Which
 * characters a codepage has is learnt once per codepage by decoding its 256
 * bytes through cp_to_utf8 (codepage.h).
 * Never: iconv's //TRANSLIT, the process locale or any other global state
 * that differs between machines, so cron (LANG=C) and an interactive shell
 * give the same bytes (SPEC 4).
 */
#ifndef PG_TRANSLIT_H
#define PG_TRANSLIT_H

#include <glib.h>

#define TRANSLIT_ERROR (translit_error_quark())
GQuark translit_error_quark(void);

typedef enum {
	TRANSLIT_ERROR_CODEPAGE,        /* the codepage is not a supported one */
} TranslitError;

/* translit_from_utf8 - UTF-8 text of len bytes into codepage: characters the
 * codepage has are kept, others transliterated (ä->a only when the codepage
 * lacks ä, €->EUR, “”->", –—->-, …->..., ß->ss, Œ->OE, no-break space->space,
 * Greek and Cyrillic letters to Latin ones, ...), the rest become '?';
 * *transliterated and *lost count characters (either may be NULL); NULL and
 * error only for an unsupported codepage.  Invalid UTF-8 bytes count as lost,
 * one '?' each.  The result is NUL-terminated; *out_len excludes the NUL. */
char *translit_from_utf8(const char *codepage, const char *text, gsize len,
    gsize *out_len, guint *transliterated, guint *lost, GError **error);

#endif
