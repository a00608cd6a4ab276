/* mx.h - where the SMTP client connects: MX, A and AAAA lookups with c-ares.
 *
 * Owns: turning a destination into the ordered list of addresses to try
 * (RFC 5321 5.1): a domain's MX records lowest preference first (equal
 * preferences in random order), each host's IPv6 and IPv4 addresses; no MX
 * record: the domain's own addresses (the implicit MX); a null MX (RFC 7505,
 * one record "0 .") fails at once; a host given as it is (a bracketed relay
 * or site-link host, an IP address) skips the MX lookup.  The lookups run on
 * the caller's libevent loop (c-ares tells which sockets to watch), against
 * [delivery] resolver or /etc/resolv.conf.  Says whether a failure is
 * temporary (try later) or permanent (the domain does not exist, null MX).
 * Never: connecting, SMTP, the queue.
 */
#ifndef PG_MX_H
#define PG_MX_H

#include <sys/socket.h>

#include <event2/event.h>
#include <glib.h>

/* Named limits. */
#define MX_HOSTS_MAX      10u      /* MX hosts tried for one domain, lowest first */
#define MX_ADDRS_MAX      20u      /* addresses tried for one destination */
#define MX_TIMEOUT_MS     2000     /* the first try of a DNS query (c-ares doubles it) */
#define MX_TRIES          3        /* tries of one DNS query: 2 + 4 + 8 s at most */

typedef struct {
	char *host;                    /* the host name (or the address as text) */
	struct sockaddr_storage sa;    /* with the port set */
	socklen_t len;
	char text[64];                 /* "host[address]:port" for logs is built from this */
} MxAddr;

typedef enum {
	MX_OK,                         /* addrs holds at least one address */
	MX_TEMP,                       /* try again later (no answer, SERVFAIL, no address yet) */
	MX_PERM,                       /* the domain does not exist or takes no mail (null MX) */
} MxStatus;

/* Called once per mx_resolve; addrs (MxAddr *, owned by the callee) is NULL
 * unless MX_OK; why names what failed otherwise. */
typedef void (*MxDone)(gpointer data, MxStatus status, GPtrArray *addrs, const char *why);

typedef struct Mx Mx;

/* mx_new - a resolver on base asking servers ("IP[:PORT]" items, NULL or
 * empty: /etc/resolv.conf's) */
Mx *mx_new(struct event_base *base, const char *const *servers, GError **error);
/* mx_free - cancel what is pending (their callbacks never run) and free */
void mx_free(Mx *mx);
/* mx_resolve - look up name: through its MX records unless direct, then
 * addresses, each with port; done runs later, never from within this call */
void mx_resolve(Mx *mx, const char *name, gboolean direct, guint16 port, MxDone done,
    gpointer data);
/* mx_addr_free - free an MxAddr */
void mx_addr_free(MxAddr *a);

#endif
