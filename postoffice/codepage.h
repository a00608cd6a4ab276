/* codepage.h - text in a postoffice's codepage, to and from UTF-8.
 *
 * Owns: conversion between UTF-8 and the single-byte codepages legacy
 * postoffices use (CP437, CP850, CP1252, ...), through iconv with explicit
 * names, so the result is the same under any locale (SPEC 4).  A character
 * the codepage lacks becomes '?'; a byte the codepage leaves undefined
 * becomes U+FFFD.  Never: guess a codepage.
 */
#ifndef PG_CODEPAGE_H
#define PG_CODEPAGE_H

#include <stddef.h>
#include <glib.h>

/* cp_supported - whether name is an ASCII-compatible single-byte codepage
 * iconv converts, named with A-Z a-z 0-9 - _ only */
gboolean cp_supported(const char *name);
/* cp_from_utf8 - UTF-8 text to the codepage; NULL and error on bad UTF-8 */
char *cp_from_utf8(const char *codepage, const char *text, size_t len,
    size_t *out_len, GError **error);
/* cp_to_utf8 - codepage bytes to UTF-8; never fails for a supported codepage */
char *cp_to_utf8(const char *codepage, const char *text, size_t len, GError **error);

#endif
