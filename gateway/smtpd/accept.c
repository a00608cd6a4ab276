/* accept.c - recipient checks and the Received: field (see accept.h). */
#include "config.h"

#include <string.h>
#include <sysexits.h>

#include "smtpd/accept.h"
#include "dir_route.h"
#include "pg_log.h"

AcceptVerdict
accept_rcpt(Site *site, const char *address, gboolean relay_client, char **reply)
{
	GError *e = NULL;
	DirRoute *r = dir_route(site->dir, &site->ctx, address, &e);
	AcceptVerdict v;

	if (!r) {
		if (e->domain == DIR_ERROR && e->code == DIR_ERROR_INVALID) {
			/* The listener parsed it already; only odd corners get here. */
			*reply = g_strdup_printf("501 5.1.3 <%s>: Bad recipient address syntax",
			    address);
			g_error_free(e);
			return ACCEPT_UNKNOWN;
		}
		pg_error(NULL, "directory lookup of <%s> failed: %s", address, e->message);
		g_error_free(e);
		*reply = g_strdup("451 4.3.0 Directory temporarily unavailable, try again later");
		return ACCEPT_TEMPFAIL;
	}
	switch (r->kind) {
	case DIR_ROUTE_POSTOFFICE:
	case DIR_ROUTE_LIST:
	case DIR_ROUTE_SITE_LINK:
	case DIR_ROUTE_ERROR:
		/* Ours.  A directory that cannot route it yet makes the batch run
		 * hold the message with the reason, never guess. */
		if (r->kind == DIR_ROUTE_ERROR)
			pg_warn(NULL, "<%s> is accepted but cannot be routed yet: %s", address,
			    r->reason);
		*reply = g_strdup("250 2.1.5 Ok");
		v = ACCEPT_OK;
		break;
	case DIR_ROUTE_SMTP:
		if (relay_client) {
			*reply = g_strdup("250 2.1.5 Ok");
			v = ACCEPT_OK;
		} else if (r->legacy) {
			/* A custom recipient's proxy: forwarding to its external
			 * target would make us an open relay (SPEC 2). */
			*reply = g_strdup_printf("550 5.1.1 <%s>: Recipient address rejected: "
			    "not a mailbox or list of this site", address);
			v = ACCEPT_UNKNOWN;
		} else {
			*reply = g_strdup_printf("554 5.7.1 <%s>: Relay access denied", address);
			v = ACCEPT_RELAY_DENIED;
		}
		break;
	case DIR_ROUTE_UNKNOWN:
	default:
		*reply = g_strdup_printf("550 5.1.1 <%s>: Recipient address rejected: "
		    "User unknown", address);
		v = ACCEPT_UNKNOWN;
		break;
	}
	dir_route_free(r);
	return v;
}

int
accept_exit_code(AcceptVerdict v)
{
	switch (v) {
	case ACCEPT_OK: return EX_OK;
	case ACCEPT_UNKNOWN: return EX_NOUSER;
	case ACCEPT_RELAY_DENIED: return EX_NOPERM;
	case ACCEPT_TEMPFAIL: return EX_TEMPFAIL;
	}
	return EX_SOFTWARE;
}

char *
accept_date(gint64 t)
{
	static const char *const days[] = { "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
	    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	GDateTime *dt = g_date_time_new_from_unix_local(t);
	gint64 off = g_date_time_get_utc_offset(dt) / G_USEC_PER_SEC;
	char *s;

	s = g_strdup_printf("%s, %d %s %d %02d:%02d:%02d %c%02d%02d",
	    days[g_date_time_get_day_of_week(dt) - 1], g_date_time_get_day_of_month(dt),
	    months[g_date_time_get_month(dt) - 1], g_date_time_get_year(dt),
	    g_date_time_get_hour(dt), g_date_time_get_minute(dt), g_date_time_get_second(dt),
	    off < 0 ? '-' : '+', (int)(ABS(off) / 3600), (int)(ABS(off) % 3600 / 60));
	g_date_time_unref(dt);
	return s;
}

char *
accept_received(const char *helo, const char *client, const char *hostname,
    const char *protocol, const char *qid, const char *rcpt, gint64 t)
{
	GString *s = g_string_new("Received: ");
	char *date = accept_date(t);

	if (helo || strcmp(client, "local") != 0) {
		g_string_append(s, "from ");
		g_string_append(s, helo ? helo : "unknown");
		if (strcmp(client, "local") != 0)
			g_string_append_printf(s, " ([%s])", client);
		g_string_append(s, "\r\n\t");
	}
	g_string_append_printf(s, "by %s (postgate) with %s id %s", hostname, protocol, qid);
	if (rcpt)
		g_string_append_printf(s, "\r\n\tfor <%s>", rcpt);
	g_string_append_printf(s, "; %s\r\n", date);
	g_free(date);
	return g_string_free(s, FALSE);
}
