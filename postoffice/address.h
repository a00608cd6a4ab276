/* address.h - legacy and typed foreign addresses (SPEC 1).
 *
 * Owns: parsing, validating and normalising NET/PO/MAILBOX addresses (1-10
 * of A-Z 0-9 - _ per part, case-insensitive, stored upper case) and typed
 * foreign addresses SMTP:local@domain.  Surrounding blanks are removed where
 * an address enters; anything else that is wrong is refused with a message
 * naming what and where.  Never: directory lookups or routing.
 */
#ifndef PG_ADDRESS_H
#define PG_ADDRESS_H

#include <stddef.h>
#include <glib.h>

#include "pg_limits.h"

#define ADDR_ERROR (addr_error_quark())
GQuark addr_error_quark(void);

typedef enum {
	ADDR_ERROR_SYNTAX,      /* the text is not an address of the wanted kind */
} AddrError;

typedef enum {
	ADDR_KIND_LEGACY,       /* NET/PO/MAILBOX */
	ADDR_KIND_SMTP,         /* SMTP:local@domain */
} AddrKind;

typedef struct {
	AddrKind kind;
	char net[ADDR_PART_MAX + 1];
	char po[ADDR_PART_MAX + 1];
	char mailbox[ADDR_PART_MAX + 1];
	char smtp[ADDR_SMTP_MAX + 1];   /* local@domain, domain lower case */
} PgAddr;

/* addr_parse - parse NET/PO/MAILBOX or SMTP:local@domain of len bytes */
gboolean addr_parse(const char *text, size_t len, PgAddr *out, GError **error);
/* addr_parse_po - parse a postoffice name NET/PO into upper-case parts */
gboolean addr_parse_po(const char *text, size_t len, char net[ADDR_PART_MAX + 1],
    char po[ADDR_PART_MAX + 1], GError **error);
/* addr_parse_mailbox - parse one part (a mailbox name) into upper case */
gboolean addr_parse_part(const char *text, size_t len, const char *what,
    char out[ADDR_PART_MAX + 1], GError **error);
/* addr_parse_smtp - parse local@domain (no SMTP: prefix) into out */
gboolean addr_parse_smtp(const char *text, size_t len, char out[ADDR_SMTP_MAX + 1],
    GError **error);
/* addr_parse_smtp_quoted - addr_parse_smtp that also takes a Quoted-string
 * local part (RFC 5321 4.1.2), kept as written (quotes and backslashes
 * included); for addresses mail is sent to, never for stored ones */
gboolean addr_parse_smtp_quoted(const char *text, size_t len,
    char out[ADDR_SMTP_MAX + 1], GError **error);
/* addr_format - the canonical text of an address; g_free it */
char *addr_format(const PgAddr *addr);
/* addr_canonical - parse and return the canonical text, or NULL and error */
char *addr_canonical(const char *text, size_t len, GError **error);
/* addr_same_po - whether a legacy address lives at the postoffice net/po */
gboolean addr_same_po(const PgAddr *addr, const char *net, const char *po);

#endif
