/* accept.h - what the listener and submit share when they accept a message.
 *
 * Owns: the recipient check of SPEC 2 (Inbound) and issue 5: a mailbox or
 * list found by the directory route in this site's or a linked site's
 * domains (postmaster included: dir_route sends it to [site] postmaster;
 * local parts in any case) is accepted; another domain only from a relay
 * client; unknown addresses in our domains (a quoted local part too:
 * valid syntax, nobody's), and custom recipients' own proxies, are
 * refused; a directory failure is temporary.  And the Received: header
 * field the gateway adds (RFC 5321 4.4), with an RFC 5322 date that no
 * locale changes.
 * Never: SMTP sessions, the queue.
 */
#ifndef PG_ACCEPT_H
#define PG_ACCEPT_H

#include <glib.h>

#include "site.h"

typedef enum {
	ACCEPT_OK,              /* 250 */
	ACCEPT_UNKNOWN,         /* 550 5.1.1: ours, but no such mailbox or list */
	ACCEPT_RELAY_DENIED,    /* 554 5.7.1: another domain, and no relay client */
	ACCEPT_TEMPFAIL,        /* 451 4.3.0: the directory failed */
} AcceptVerdict;

/* accept_rcpt - check a normalised recipient; *reply: the SMTP reply line to send */
AcceptVerdict accept_rcpt(Site *site, const char *address, gboolean relay_client,
    char **reply);
/* accept_exit_code - the sysexits code of a refusing verdict (submit) */
int accept_exit_code(AcceptVerdict v);
/* accept_date - an RFC 5322 date-time of t in local time, English names; g_free it */
char *accept_date(gint64 t);
/* accept_received - the Received: field (CRLF line ends, folded) for a new message */
char *accept_received(const char *helo, const char *client, const char *hostname,
    const char *protocol, const char *qid, const char *rcpt, gint64 t);

#endif
