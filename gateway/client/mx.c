/* mx.c - MX, A and AAAA lookups with c-ares on a libevent loop (see mx.h). */
#include "config.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <string.h>

#include <ares.h>

#include "client/mx.h"

struct Mx {
	struct event_base *base;
	ares_channel channel;
	GHashTable *watch;      /* fd + 1 -> struct event * */
	struct event *timer;
	gboolean closing;       /* in mx_free: lookups end without their callback */
};

typedef struct {
	Mx *mx;
	char *name;
	guint16 port;
	MxDone done;
	gpointer data;
	GPtrArray *hosts;       /* char *, the order to try */
	GPtrArray **found;      /* per host: MxAddr * */
	guint outstanding;
	gboolean temp;          /* some lookup failed for now */
	gboolean implicit;      /* no MX: the name's own addresses */
	gboolean direct;        /* a host given as it is: not found is for now */
	MxStatus status;
	char *why;
	GPtrArray *result;
} Lookup;

typedef struct {
	Lookup *lk;
	guint i;
} HostQuery;

static void
arm_timer(Mx *mx)
{
	struct timeval tv, *t;

	t = ares_timeout(mx->channel, NULL, &tv);
	if (t)
		evtimer_add(mx->timer, t);
	else
		evtimer_del(mx->timer);
}

static void
on_sock(evutil_socket_t fd, short what, void *arg)
{
	Mx *mx = arg;

	ares_process_fd(mx->channel, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
	    (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	arm_timer(mx);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	Mx *mx = arg;

	ares_process_fd(mx->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	arm_timer(mx);
}

/* c-ares says which of its sockets to watch. */
static void
sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	Mx *mx = data;
	gpointer key = GINT_TO_POINTER(fd + 1);
	struct event *ev = g_hash_table_lookup(mx->watch, key);

	if (ev)
		g_hash_table_remove(mx->watch, key);   /* frees ev */
	if (readable || writable) {
		ev = event_new(mx->base, fd, (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0) |
		    EV_PERSIST, on_sock, mx);
		event_add(ev, NULL);
		g_hash_table_insert(mx->watch, key, ev);
	}
}

Mx *
mx_new(struct event_base *base, const char *const *servers, GError **error)
{
	static gsize initialised;
	struct ares_options opts = { 0 };
	Mx *mx;
	int rc;

	if (g_once_init_enter(&initialised)) {
		rc = ares_library_init(ARES_LIB_INIT_ALL);
		g_once_init_leave(&initialised, 1);
		if (rc != ARES_SUCCESS) {
			g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "c-ares: %s",
			    ares_strerror(rc));
			return NULL;
		}
	}
	mx = g_new0(Mx, 1);
	mx->base = base;
	mx->watch = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL,
	    (GDestroyNotify)event_free);
	mx->timer = evtimer_new(base, on_timer, mx);
	opts.sock_state_cb = sock_state;
	opts.sock_state_cb_data = mx;
	opts.timeout = MX_TIMEOUT_MS;
	opts.tries = MX_TRIES;
	rc = ares_init_options(&mx->channel, &opts, ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS |
	    ARES_OPT_TRIES);
	if (rc != ARES_SUCCESS) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "cannot set up DNS lookups: %s",
		    ares_strerror(rc));
		event_free(mx->timer);
		g_hash_table_unref(mx->watch);
		g_free(mx);
		return NULL;
	}
	if (servers && servers[0]) {
		char *csv = g_strjoinv(",", (char **)servers);

		rc = ares_set_servers_ports_csv(mx->channel, csv);
		g_free(csv);
		if (rc != ARES_SUCCESS) {
			g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "[delivery] resolver: %s",
			    ares_strerror(rc));
			mx_free(mx);
			return NULL;
		}
	}
	return mx;
}

void
mx_free(Mx *mx)
{
	if (!mx)
		return;
	mx->closing = TRUE;
	ares_destroy(mx->channel);   /* pending lookups end here (ARES_EDESTRUCTION) */
	g_hash_table_unref(mx->watch);
	event_free(mx->timer);
	g_free(mx);
}

void
mx_addr_free(MxAddr *a)
{
	if (!a)
		return;
	g_free(a->host);
	g_free(a);
}

static MxAddr *
addr_new(const char *host, const struct sockaddr *sa, socklen_t len, guint16 port)
{
	MxAddr *a = g_new0(MxAddr, 1);

	a->host = g_strdup(host);
	if (len > sizeof a->sa)
		len = sizeof a->sa;
	memcpy(&a->sa, sa, len);
	a->len = len;
	if (sa->sa_family == AF_INET) {
		((struct sockaddr_in *)&a->sa)->sin_port = htons(port);
		inet_ntop(AF_INET, &((struct sockaddr_in *)&a->sa)->sin_addr, a->text,
		    sizeof a->text);
	} else if (sa->sa_family == AF_INET6) {
		((struct sockaddr_in6 *)&a->sa)->sin6_port = htons(port);
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&a->sa)->sin6_addr, a->text,
		    sizeof a->text);
	}
	return a;
}

static void
lookup_free(Lookup *lk)
{
	for (guint i = 0; lk->found && i < lk->hosts->len; i++)
		if (lk->found[i])
			g_ptr_array_unref(lk->found[i]);
	g_free(lk->found);
	g_ptr_array_unref(lk->hosts);
	if (lk->result)
		g_ptr_array_unref(lk->result);
	g_free(lk->name);
	g_free(lk->why);
	g_free(lk);
}

/* Always from the loop, never from within mx_resolve or a c-ares call. */
static void
deliver(evutil_socket_t fd, short what, void *arg)
{
	Lookup *lk = arg;
	GPtrArray *addrs = lk->result;

	lk->result = NULL;
	lk->done(lk->data, lk->status, lk->status == MX_OK ? addrs : NULL, lk->why);
	if (lk->status != MX_OK && addrs)
		g_ptr_array_unref(addrs);
	lookup_free(lk);
}

static void
finish(Lookup *lk, MxStatus status, char *why)
{
	if (lk->mx->closing) {
		g_free(why);
		lookup_free(lk);
		return;
	}
	lk->status = status;
	lk->why = why;
	event_base_once(lk->mx->base, -1, EV_TIMEOUT, deliver, lk, NULL);
}

static void
hosts_done(Lookup *lk)
{
	GPtrArray *all = g_ptr_array_new_with_free_func((GDestroyNotify)mx_addr_free);

	for (guint i = 0; i < lk->hosts->len; i++) {
		GPtrArray *f = lk->found[i];

		for (guint j = 0; f && j < f->len && all->len < MX_ADDRS_MAX; j++) {
			g_ptr_array_add(all, f->pdata[j]);
			f->pdata[j] = NULL;
		}
	}
	if (all->len > 0) {
		lk->result = all;
		finish(lk, MX_OK, NULL);
		return;
	}
	g_ptr_array_unref(all);
	if (lk->temp || lk->direct)
		finish(lk, MX_TEMP, g_strdup_printf("cannot find the address of %s%s%s",
		    lk->implicit ? "" : "the mail servers of ", lk->name,
		    lk->temp ? ": DNS lookup failed for now" : ": host not found"));
	else if (lk->implicit && !lk->direct)
		finish(lk, MX_PERM, g_strdup_printf("%s: host or domain name not found "
		    "(no MX and no address records)", lk->name));
	else
		finish(lk, MX_TEMP, g_strdup_printf("the mail servers of %s have no address",
		    lk->name));
}

static void
on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	HostQuery *hq = arg;
	Lookup *lk = hq->lk;
	GPtrArray *f = g_ptr_array_new_with_free_func((GDestroyNotify)mx_addr_free);

	if (status == ARES_SUCCESS && res) {
		for (struct ares_addrinfo_node *n = res->nodes; n; n = n->ai_next)
			if (n->ai_family == AF_INET || n->ai_family == AF_INET6)
				g_ptr_array_add(f, addr_new(lk->hosts->pdata[hq->i], n->ai_addr,
				    (socklen_t)n->ai_addrlen, lk->port));
	} else if (status != ARES_ENOTFOUND && status != ARES_ENODATA) {
		lk->temp = TRUE;
	}
	if (res)
		ares_freeaddrinfo(res);
	lk->found[hq->i] = f;
	g_free(hq);
	if (--lk->outstanding == 0)
		hosts_done(lk);
}

static void
ask_addresses(Lookup *lk)
{
	struct ares_addrinfo_hints hints = { 0 };
	guint n = lk->hosts->len;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	lk->found = g_new0(GPtrArray *, n);
	lk->outstanding = n;
	for (guint i = 0; i < n; i++) {
		HostQuery *hq = g_new0(HostQuery, 1);

		hq->lk = lk;
		hq->i = i;
		ares_getaddrinfo(lk->mx->channel, lk->hosts->pdata[i], NULL, &hints, on_addrinfo,
		    hq);
	}
	arm_timer(lk->mx);
}

typedef struct {
	int pref;
	guint32 shuffle;
	char *host;
} MxRecord;

static int
cmp_record(gconstpointer a, gconstpointer b)
{
	const MxRecord *x = a, *y = b;

	if (x->pref != y->pref)
		return x->pref < y->pref ? -1 : 1;
	return x->shuffle < y->shuffle ? -1 : x->shuffle > y->shuffle;
}

static void
on_mx(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	Lookup *lk = arg;
	struct ares_mx_reply *replies = NULL;
	GArray *recs;
	guint nulls = 0;

	if (status == ARES_ENODATA || (status == ARES_SUCCESS &&
	    ares_parse_mx_reply(abuf, alen, &replies) == ARES_ENODATA)) {
		/* No MX record: the name itself (RFC 5321 5.1). */
		lk->implicit = TRUE;
		g_ptr_array_add(lk->hosts, g_strdup(lk->name));
		ask_addresses(lk);
		return;
	}
	if (status == ARES_ENOTFOUND) {
		finish(lk, MX_PERM, g_strdup_printf("%s: domain not found (NXDOMAIN)", lk->name));
		return;
	}
	if (status != ARES_SUCCESS || !replies) {
		finish(lk, MX_TEMP, g_strdup_printf("MX lookup of %s failed: %s", lk->name,
		    status == ARES_SUCCESS ? "a malformed answer" : ares_strerror(status)));
		if (replies)
			ares_free_data(replies);
		return;
	}
	recs = g_array_new(FALSE, FALSE, sizeof(MxRecord));
	for (struct ares_mx_reply *r = replies; r; r = r->next) {
		MxRecord rec = { r->priority, g_random_int(), NULL };

		if (!r->host[0] || strcmp(r->host, ".") == 0) {
			nulls++;
			continue;
		}
		rec.host = g_strdup(r->host);
		g_array_append_val(recs, rec);
	}
	ares_free_data(replies);
	if (recs->len == 0 && nulls > 0) {
		finish(lk, MX_PERM, g_strdup_printf("%s accepts no mail: its MX record is the "
		    "null MX (RFC 7505)", lk->name));
		g_array_unref(recs);
		return;
	}
	g_array_sort(recs, cmp_record);
	for (guint i = 0; i < recs->len; i++) {
		MxRecord *rec = &g_array_index(recs, MxRecord, i);

		if (lk->hosts->len < MX_HOSTS_MAX)
			g_ptr_array_add(lk->hosts, rec->host);
		else
			g_free(rec->host);
	}
	g_array_unref(recs);
	ask_addresses(lk);
}

void
mx_resolve(Mx *mx, const char *name, gboolean direct, guint16 port, MxDone done,
    gpointer data)
{
	Lookup *lk = g_new0(Lookup, 1);
	union {
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} u;

	lk->mx = mx;
	lk->name = g_strdup(name);
	lk->port = port;
	lk->done = done;
	lk->data = data;
	lk->hosts = g_ptr_array_new_with_free_func(g_free);
	memset(&u, 0, sizeof u);
	if (inet_pton(AF_INET, name, &u.in.sin_addr) == 1 ||
	    inet_pton(AF_INET6, name, &u.in6.sin6_addr) == 1) {
		/* An address: nothing to look up. */
		gboolean v4 = strchr(name, ':') == NULL;

		if (v4)
			u.in.sin_family = AF_INET;
		else
			u.in6.sin6_family = AF_INET6;
		lk->result = g_ptr_array_new_with_free_func((GDestroyNotify)mx_addr_free);
		g_ptr_array_add(lk->result, addr_new(name, (struct sockaddr *)&u,
		    v4 ? sizeof u.in : sizeof u.in6, port));
		finish(lk, MX_OK, NULL);
		return;
	}
	if (direct) {
		lk->implicit = lk->direct = TRUE;
		g_ptr_array_add(lk->hosts, g_strdup(name));
		ask_addresses(lk);
		return;
	}
	ares_query(mx->channel, name, ns_c_in, ns_t_mx, on_mx, lk);
	arm_timer(mx);
}
