/* bundle.h - bundle format v1: the unit the legacy network moves.
 *
 * Owns: encoding, verifying and decoding bundles exactly as
 * docs/bundle-format.md specifies them, in the order of checks it fixes
 * (length, magic, version, limits, HMAC, CRC, inflate, contents), and writing
 * them under names derived from source, destination and sequence number
 * only.  Never: decide whether a sequence number was already applied (the
 * reader of a drop directory keeps that ledger) or apply what a bundle holds.
 */
#ifndef PG_BUNDLE_H
#define PG_BUNDLE_H

#include <stddef.h>
#include <stdint.h>
#include <glib.h>

#include "pg_limits.h"
#include "message.h"

#define BUNDLE_VERSION      1
#define BUNDLE_MAGIC        "\x89PGB\r\n\x1a\n"
#define BUNDLE_MAGIC_LEN    8
#define BUNDLE_HEADER_LEN   90
#define BUNDLE_TRAILER_LEN  36   /* CRC-32 + HMAC-SHA256 */
#define BUNDLE_HMAC_LEN     32
#define BUNDLE_NAME_FIELD   22   /* NET/PO, NUL padded */
#define BUNDLE_SUFFIX       ".bundle"

#define BUNDLE_ERROR (bundle_error_quark())
GQuark bundle_error_quark(void);

/* One code per check of docs/bundle-format.md, in the order they run. */
typedef enum {
	BUNDLE_ERROR_TRUNCATED,  /* 1. length does not match the header */
	BUNDLE_ERROR_MAGIC,      /* 2. not a bundle */
	BUNDLE_ERROR_VERSION,    /* 3. a version this reader does not know */
	BUNDLE_ERROR_LIMIT,      /* 4. a count or size over its named limit */
	BUNDLE_ERROR_HMAC,       /* 5. not authentic with this key */
	BUNDLE_ERROR_CRC,        /* 6. authentic, but the checksum is wrong */
	BUNDLE_ERROR_PAYLOAD,    /* 7/8. payload does not inflate or parse */
	BUNDLE_ERROR_IO,         /* the file could not be read or written */
} BundleError;

typedef enum {
	BUNDLE_ENTRY_MESSAGE = 1,   /* a legacy message (message.h) */
	BUNDLE_ENTRY_DIRECTORY = 2, /* a directory sync document */
} BundleEntryKind;

typedef struct {
	BundleEntryKind kind;
	GBytes *data;
} BundleEntry;

typedef struct {
	char source[ADDR_PO_MAX + 1];  /* NET/PO */
	char dest[ADDR_PO_MAX + 1];    /* NET/PO */
	guint64 seq;                   /* per (source, dest) pair, from 1 */
	gint64 created;                /* seconds since the epoch */
	GPtrArray *entries;            /* BundleEntry */
	/* Filled in by encode and decode. */
	guint64 payload_len;
	guint64 compressed_len;
	guint32 crc;
	guint8 hmac[BUNDLE_HMAC_LEN];
	gboolean hmac_checked;         /* FALSE when decoded without a key */
} Bundle;

/* bundle_new - an empty bundle from source to dest with sequence number seq */
Bundle *bundle_new(const char *source, const char *dest, guint64 seq);
/* bundle_free - free a bundle and its entries */
void bundle_free(Bundle *b);
/* bundle_add_entry - append an entry (takes a ref on data) */
void bundle_add_entry(Bundle *b, BundleEntryKind kind, GBytes *data);
/* bundle_add_message - encode a legacy message and append it */
gboolean bundle_add_message(Bundle *b, const LegacyMessage *msg, GError **error);
/* bundle_encode - the bytes of the bundle, compressed at level, HMAC'd with key */
GBytes *bundle_encode(Bundle *b, GBytes *key, int level, GError **error);
/* bundle_decode - verify and decode len bytes; key NULL skips the HMAC */
Bundle *bundle_decode(const guint8 *data, size_t len, GBytes *key, GError **error);
/* bundle_read_file - bundle_decode of a file, refusing oversized files unread */
Bundle *bundle_read_file(const char *path, GBytes *key, GError **error);
/* bundle_file_name - SRCNET.SRCPO+DSTNET.DSTPO+SEQ.bundle in canonical form;
 * NULL when a name is not NET/PO; g_free it */
char *bundle_file_name(const char *source, const char *dest, guint64 seq);
/* bundle_write - encode and atomically write into dir under bundle_file_name */
gboolean bundle_write(const char *dir, Bundle *b, GBytes *key, int level,
    char **name_out, GError **error);
/* bundle_error_name - a short name for a BundleError ("bad HMAC", ...) */
const char *bundle_error_name(int code);
/* bundle_message - decode entry i of b as a legacy message */
LegacyMessage *bundle_message(const Bundle *b, guint i, GError **error);

#endif
