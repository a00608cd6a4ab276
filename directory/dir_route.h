/* dir_route.h - where mail for an address goes: the one routing decision.
 *
 * Owns: the answer, for an SMTP address (local@domain, with or without an
 * SMTP:/smtp: prefix) or a legacy address NET/PO/MAILBOX, to "where does
 * this go" (DESIGN "Routing", SPEC 2 and 3.2): a postoffice of this site, a
 * distribution list (expanded to its leaf addresses: nested, cycle-safe,
 * duplicates removed, sorted), another site over its site link addressed
 * with a proxy of the entry in that site's own domains (never a primary that
 * routes back), external SMTP, unknown, or an error the caller holds (never
 * a guess).  The listener, the batch run and `postgate dir route` all call
 * dir_route; nothing else decides where mail goes.
 * Never: queues, delivery, or changes to the directory.
 *
 * Rules:
 *  - postmaster (RFC 5321 4.5.1), in any case, bare or at one of this
 *    site's domains: DIR_ROUTE_POSTOFFICE to ctx->postmaster ([site]
 *    postmaster), whatever the directory holds; none set, or not on a
 *    postoffice this site serves: DIR_ROUTE_ERROR saying so.
 *  - Addresses compare without case, local part included (dir_store.h);
 *    what goes out is the proxy as written.  A quoted local part is valid
 *    syntax and reaches no entry: DIR_ROUTE_UNKNOWN in our domains.
 *  - An SMTP address whose domain is neither this site's nor a linked
 *    site's is external: DIR_ROUTE_SMTP with the address.
 *  - Otherwise the entry that effectively owns it as a proxy (dir_store.h);
 *    none: DIR_ROUTE_UNKNOWN.  A custom recipient's target is no proxy: mail to
 *    it is external, never one of ours (no open relay).
 *  - A custom recipient: DIR_ROUTE_SMTP with its target.
 *  - A mailbox of this site: DIR_ROUTE_POSTOFFICE; of another site S: DIR_ROUTE_SITE_LINK
 *    with the entry's primary when S owns its domain, else its first
 *    secondary (in sorted order) in S's domains, each only when the entry
 *    effectively owns it; none: DIR_ROUTE_ERROR.  S without a [site-link]:
 *    DIR_ROUTE_ERROR.
 *  - A list: DIR_ROUTE_LIST with the leaves, each the address its member is
 *    reached by: a custom's target; a mailbox's primary (or else its first
 *    secondary) that it owns in a domain of this site or a linked one, or
 *    else its legacy address.  Members that are not in the directory are
 *    left out; nesting deeper than DIR_MAX_NESTING is DIR_ROUTE_ERROR.
 *  - A syntax error in the address is a GError (DIR_ERROR_INVALID), as is
 *    a database failure (DIR_ERROR_IO).
 */
#ifndef PG_DIR_ROUTE_H
#define PG_DIR_ROUTE_H

#include <glib.h>

#include "dir_store.h"

typedef enum {
	DIR_ROUTE_POSTOFFICE,    /* a postoffice of this site */
	DIR_ROUTE_LIST,          /* a distribution list, expanded */
	DIR_ROUTE_SITE_LINK,     /* another site, over its site link */
	DIR_ROUTE_SMTP,          /* external SMTP */
	DIR_ROUTE_UNKNOWN,       /* ours, but no such recipient */
	DIR_ROUTE_ERROR,         /* the directory cannot route it: hold, never guess */
} DirRouteKind;

typedef struct {
	DirRouteKind kind;
	char *postoffice;    /* POSTOFFICE: NET/PO */
	char *mailbox;       /* POSTOFFICE: MAILBOX */
	char *list;          /* LIST: the list's legacy address */
	GPtrArray *leaves;   /* LIST: char * leaf addresses, sorted, no duplicates */
	char *site;          /* SITE_LINK: the peer site */
	char *address;       /* SITE_LINK, SMTP: local@domain to send to */
	char *reason;        /* ERROR: one line a person can act on */
	char *legacy;        /* the entry found, if any: its legacy address */
} DirRoute;

/* dir_route - the routing decision for an address; NULL and error on bad input */
DirRoute *dir_route(DirStore *d, const DirContext *ctx, const char *address,
    GError **error);
/* dir_route_free - free a routing decision; NULL is fine */
void dir_route_free(DirRoute *r);
/* dir_route_format - the decision as exactly one line, no newline; g_free it */
char *dir_route_format(const DirRoute *r);
/* dir_route_kind_name - "postoffice", "dl", "site-link", "smtp", "unknown", "error" */
const char *dir_route_kind_name(DirRouteKind kind);

#endif
