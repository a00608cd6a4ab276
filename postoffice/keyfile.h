/* keyfile.h - the secret keys that authenticate bundles.
 *
 * Owns: reading a key file (its bytes are the key, one trailing newline
 * removed; at least KEY_MIN_LEN bytes) and creating a new random one.
 * Never: logging key material.
 */
#ifndef PG_KEYFILE_H
#define PG_KEYFILE_H

#include <glib.h>

#define KEYFILE_ERROR (keyfile_error_quark())
GQuark keyfile_error_quark(void);

typedef enum {
	KEYFILE_ERROR_UNREADABLE,
	KEYFILE_ERROR_TOO_SHORT,
	KEYFILE_ERROR_TOO_LONG,
	KEYFILE_ERROR_CREATE,
} KeyfileError;

/* keyfile_load - read the key in path; the returned bytes are the key */
GBytes *keyfile_load(const char *path, GError **error);
/* keyfile_create - write a new random key (64 hex digits) to path, mode 0600 */
gboolean keyfile_create(const char *path, GError **error);

#endif
