/* test_mx.c - unit tests of gateway/client/mx.c.
 *
 * What the SMTP client's address lookup gives, without the Internet: an
 * address literal at once (no DNS), localhost through /etc/hosts, and
 * everything else against a small DNS server in this process (UDP on
 * 127.0.0.1, the same event loop) that answers from a fixed zone: MX
 * records in preference order (RFC 5321 5.1), the implicit MX, the null MX
 * (RFC 7505), NXDOMAIN, SERVFAIL, mail servers without an address, more MX
 * hosts and addresses than the limits; and a resolver that does not answer
 * (a closed port, a silent one).  Each lookup is bounded by a timer.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "cu_run.h"
#include "client/mx.h"

#define LOOKUP_LIMIT_S  10     /* one lookup against the local DNS server */
#define DEAD_LIMIT_S    60     /* one lookup against a resolver that never answers */

enum { T_A = 1, T_MX = 15, T_AAAA = 28 };
enum { RC_OK = 0, RC_SERVFAIL = 2, RC_NXDOMAIN = 3 };

/* ------------------------------------------------------------ the DNS server */

typedef struct {
	int fd;
	struct event *ev;
	guint16 port;
	gboolean mute;         /* read queries, answer none */
	GPtrArray *asked;      /* "name/TYPE" of every query */
} Dns;

static void
put16(GByteArray *b, guint v)
{
	guint8 x[2] = { (guint8)(v >> 8), (guint8)v };

	g_byte_array_append(b, x, 2);
}

static void
put_name(GByteArray *b, const char *name)
{
	char **labels = g_strsplit(name, ".", -1);

	for (guint i = 0; labels[i]; i++) {
		guint8 n = (guint8)strlen(labels[i]);

		if (n == 0)
			continue;
		g_byte_array_append(b, &n, 1);
		g_byte_array_append(b, (const guint8 *)labels[i], n);
	}
	g_byte_array_append(b, (const guint8 *)"", 1);
	g_strfreev(labels);
}

/* One answer record for the question's name (a pointer to offset 12). */
static void
put_rr(GByteArray *b, guint type, const guint8 *rdata, guint len)
{
	put16(b, 0xC00C);
	put16(b, type);
	put16(b, 1);
	put16(b, 0);
	put16(b, 60);
	put16(b, len);
	g_byte_array_append(b, rdata, len);
}

static void
put_a(GByteArray *b, guint *n, const char *text)
{
	guint8 a[4];

	g_assert(inet_pton(AF_INET, text, a) == 1);
	put_rr(b, T_A, a, 4);
	(*n)++;
}

static void
put_aaaa(GByteArray *b, guint *n, const char *text)
{
	guint8 a[16];

	g_assert(inet_pton(AF_INET6, text, a) == 1);
	put_rr(b, T_AAAA, a, 16);
	(*n)++;
}

static void
put_mx(GByteArray *b, guint *n, guint pref, const char *host)
{
	GByteArray *rd = g_byte_array_new();

	put16(rd, pref);
	put_name(rd, host);
	put_rr(b, T_MX, rd->data, rd->len);
	g_byte_array_unref(rd);
	(*n)++;
}

/* The zone: the answers to (name, type) go into b; the rcode is returned. */
static int
zone(const char *name, guint type, GByteArray *b, guint *n)
{
	if (strcmp(name, "mx.test") == 0) {
		if (type == T_MX) {
			put_mx(b, n, 20, "mx2.test");
			put_mx(b, n, 10, "mx1.test");
		}
		return RC_OK;
	}
	if (strcmp(name, "mx1.test") == 0) {
		if (type == T_A)
			put_a(b, n, "127.0.0.11");
		return RC_OK;
	}
	if (strcmp(name, "mx2.test") == 0) {
		if (type == T_A)
			put_a(b, n, "127.0.0.12");
		if (type == T_AAAA)
			put_aaaa(b, n, "2001:db8::12");
		return RC_OK;
	}
	if (strcmp(name, "eq.test") == 0) {
		if (type == T_MX) {
			put_mx(b, n, 10, "a.eq.test");
			put_mx(b, n, 10, "b.eq.test");
		}
		return RC_OK;
	}
	if (strcmp(name, "a.eq.test") == 0 || strcmp(name, "b.eq.test") == 0) {
		if (type == T_A)
			put_a(b, n, name[0] == 'a' ? "127.0.0.41" : "127.0.0.42");
		return RC_OK;
	}
	if (strcmp(name, "null.test") == 0) {
		if (type == T_MX)
			put_mx(b, n, 0, ".");
		return RC_OK;
	}
	if (strcmp(name, "implicit.test") == 0) {
		if (type == T_A)
			put_a(b, n, "127.0.0.21");
		return RC_OK;
	}
	if (strcmp(name, "empty.test") == 0)
		return RC_OK;                       /* the name exists, no record of any type */
	if (strcmp(name, "servfail.test") == 0)
		return RC_SERVFAIL;
	if (strcmp(name, "noaddr.test") == 0) {
		if (type == T_MX)
			put_mx(b, n, 10, "gone.test");
		return RC_OK;
	}
	if (strcmp(name, "host.test") == 0) {
		if (type == T_A)
			put_a(b, n, "127.0.0.31");
		return RC_OK;
	}
	if (strcmp(name, "many.test") == 0) {
		/* Twelve MX hosts, listed highest preference value first. */
		for (guint i = 12; i >= 1; i--) {
			char *h = g_strdup_printf("h%u.many.test", i);

			put_mx(b, n, i * 10, h);
			g_free(h);
		}
		return RC_OK;
	}
	if (g_str_has_suffix(name, ".many.test") && name[0] == 'h') {
		guint i = (guint)atoi(name + 1);
		char *a1 = g_strdup_printf("127.0.1.%u", i), *a2 = g_strdup_printf("127.0.2.%u", i);

		if (type == T_A) {
			put_a(b, n, a1);
			put_a(b, n, a2);
		}
		g_free(a1);
		g_free(a2);
		return RC_OK;
	}
	return RC_NXDOMAIN;
}

static const char *
type_name(guint t)
{
	return t == T_A ? "A" : t == T_AAAA ? "AAAA" : t == T_MX ? "MX" : "other";
}

static void
dns_read(evutil_socket_t fd, short what, void *arg)
{
	Dns *d = arg;
	guint8 q[1500];
	struct sockaddr_storage from;
	socklen_t flen = sizeof from;
	ssize_t len = recvfrom(fd, q, sizeof q, 0, (struct sockaddr *)&from, &flen);
	GString *name = g_string_new(NULL);
	GByteArray *b;
	gsize at = 12;
	guint type, n = 0;
	int rc;

	if (len < 12) {
		g_string_free(name, TRUE);
		return;
	}
	while (at < (gsize)len && q[at] != 0) {
		guint l = q[at];

		if (at + 1 + l > (gsize)len)
			break;
		if (name->len)
			g_string_append_c(name, '.');
		g_string_append_len(name, (const char *)q + at + 1, l);
		at += 1 + l;
	}
	at++;
	if (at + 4 > (gsize)len) {
		g_string_free(name, TRUE);
		return;
	}
	type = (guint)(q[at] << 8 | q[at + 1]);
	at += 4;
	g_string_ascii_down(name);
	g_ptr_array_add(d->asked, g_strdup_printf("%s/%s", name->str, type_name(type)));
	if (d->mute) {
		g_string_free(name, TRUE);
		return;
	}
	b = g_byte_array_new();
	g_byte_array_append(b, q, (guint)at);             /* header and question */
	{
		GByteArray *ans = g_byte_array_new();

		rc = zone(name->str, type, ans, &n);
		b->data[2] = (guint8)(0x84 | (q[2] & 0x01));   /* QR, AA, RD as asked */
		b->data[3] = (guint8)(0x80 | rc);              /* RA, rcode */
		b->data[6] = (guint8)(n >> 8);
		b->data[7] = (guint8)n;
		b->data[8] = b->data[9] = b->data[10] = b->data[11] = 0;
		g_byte_array_append(b, ans->data, ans->len);
		g_byte_array_unref(ans);
	}
	sendto(fd, b->data, b->len, 0, (struct sockaddr *)&from, flen);
	g_byte_array_unref(b);
	g_string_free(name, TRUE);
}

static Dns *
dns_new(struct event_base *base, gboolean mute)
{
	Dns *d = g_new0(Dns, 1);
	struct sockaddr_in sin = { 0 };
	socklen_t len = sizeof sin;

	d->mute = mute;
	d->asked = g_ptr_array_new_with_free_func(g_free);
	d->fd = socket(AF_INET, SOCK_DGRAM, 0);
	g_assert(d->fd >= 0);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	g_assert(bind(d->fd, (struct sockaddr *)&sin, sizeof sin) == 0);
	g_assert(getsockname(d->fd, (struct sockaddr *)&sin, &len) == 0);
	d->port = ntohs(sin.sin_port);
	evutil_make_socket_nonblocking(d->fd);
	d->ev = event_new(base, d->fd, EV_READ | EV_PERSIST, dns_read, d);
	event_add(d->ev, NULL);
	return d;
}

static void
dns_free(Dns *d)
{
	event_free(d->ev);
	close(d->fd);
	g_ptr_array_unref(d->asked);
	g_free(d);
}

/* Whether the server was asked name/type. */
static gboolean
dns_asked(const Dns *d, const char *what)
{
	for (guint i = 0; i < d->asked->len; i++)
		if (strcmp(d->asked->pdata[i], what) == 0)
			return TRUE;
	return FALSE;
}

static gboolean
dns_asked_type(const Dns *d, const char *type)
{
	char *suffix = g_strdup_printf("/%s", type);
	gboolean found = FALSE;

	for (guint i = 0; i < d->asked->len && !found; i++)
		found = g_str_has_suffix(d->asked->pdata[i], suffix);
	g_free(suffix);
	return found;
}

/* ------------------------------------------------------------ lookups */

typedef struct {
	struct event_base *base;
	gboolean inside;       /* mx_resolve has not returned yet */
	gboolean early;        /* done ran from within mx_resolve */
	guint calls;
	MxStatus status;
	GPtrArray *addrs;
	char *why;
	gboolean out_of_time;
	double seconds;
	gint64 start;
} Res;

static void
on_done(gpointer data, MxStatus status, GPtrArray *addrs, const char *why)
{
	Res *r = data;

	if (r->inside)
		r->early = TRUE;
	r->calls++;
	r->status = status;
	r->addrs = addrs;
	r->why = g_strdup(why);
	r->seconds = (double)(g_get_monotonic_time() - r->start) / G_USEC_PER_SEC;
	event_base_loopbreak(r->base);
}

static void
on_limit(evutil_socket_t fd, short what, void *arg)
{
	Res *r = arg;

	r->out_of_time = TRUE;
	event_base_loopbreak(r->base);
}

static void
res_clear(Res *r)
{
	if (r->addrs)
		g_ptr_array_unref(r->addrs);
	g_free(r->why);
	memset(r, 0, sizeof *r);
}

/* Look name up and wait for the answer (limit seconds at most). */
static void
resolve(Mx *mx, struct event_base *base, const char *name, gboolean direct, guint16 port,
    int limit, Res *r)
{
	struct event *t = evtimer_new(base, on_limit, r);
	struct timeval tv = { limit, 0 };

	memset(r, 0, sizeof *r);
	r->base = base;
	r->start = g_get_monotonic_time();
	evtimer_add(t, &tv);
	r->inside = TRUE;
	mx_resolve(mx, name, direct, port, on_done, r);
	r->inside = FALSE;
	while (r->calls == 0 && !r->out_of_time)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(t);
}

static const char *const status_names[] = { "MX_OK", "MX_TEMP", "MX_PERM" };

static void
expect_status_at(int line, const Res *r, const char *name, MxStatus want)
{
	expect_at(r->calls == 1 && r->status == want, line, "%s: %s (got %s, %u calls, %s%s)",
	    name, status_names[want], r->calls ? status_names[r->status] : "nothing", r->calls,
	    r->why ? r->why : "no why", r->out_of_time ? ", out of time" : "");
	expect_at(!r->early, line, "%s: done ran later, not from within mx_resolve", name);
	expect_at((r->status == MX_OK) == (r->addrs != NULL) || r->calls == 0, line,
	    "%s: addresses exactly when MX_OK", name);
	expect_at(r->status == MX_OK || r->calls == 0 || (r->why && *r->why), line,
	    "%s: a failure says why", name);
}

#define EXPECT_STATUS(r, name, want) expect_status_at(__LINE__, (r), (name), (want))

/* The address text and port of addrs[i]. */
static const char *
addr_text(const Res *r, guint i)
{
	return r->addrs && i < r->addrs->len ? ((MxAddr *)r->addrs->pdata[i])->text : "";
}

static guint16
addr_port(const MxAddr *a)
{
	if (a->sa.ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)&a->sa)->sin6_port);
	return ntohs(((const struct sockaddr_in *)&a->sa)->sin_port);
}

/* Every address has the port, a family, a length to match and its text. */
static void
expect_addrs_sane_at(int line, const Res *r, guint16 port)
{
	for (guint i = 0; r->addrs && i < r->addrs->len; i++) {
		const MxAddr *a = r->addrs->pdata[i];
		gboolean v4 = a->sa.ss_family == AF_INET, v6 = a->sa.ss_family == AF_INET6;
		char text[64] = "";

		if (v4)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)&a->sa)->sin_addr, text,
			    sizeof text);
		else if (v6)
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&a->sa)->sin6_addr, text,
			    sizeof text);
		expect_at((v4 && a->len == sizeof(struct sockaddr_in)) ||
		    (v6 && a->len == sizeof(struct sockaddr_in6)), line,
		    "address %u: a family and its length (family %d, len %u)", i,
		    (int)a->sa.ss_family, (unsigned)a->len);
		expect_at(addr_port(a) == port, line, "address %u (%s): port %u (got %u)", i, a->text,
		    port, addr_port(a));
		expect_at(strcmp(text, a->text) == 0, line, "address %u: text %s is the address %s",
		    i, a->text, text);
		expect_at(a->host && *a->host, line, "address %u: a host name", i);
	}
}

#define EXPECT_ADDRS_SANE(r, port) expect_addrs_sane_at(__LINE__, (r), (port))

static const char *
addr_host(const Res *r, guint i)
{
	return r->addrs && i < r->addrs->len ? ((MxAddr *)r->addrs->pdata[i])->host : "";
}

/* A resolver over the local DNS server. */
static Mx *
mx_local(struct event_base *base, const Dns *d)
{
	char *server = g_strdup_printf("127.0.0.1:%u", d->port);
	const char *servers[] = { server, NULL };
	GError *e = NULL;
	Mx *mx = mx_new(base, servers, &e);

	EXPECT(mx != NULL, "mx_new with a server: %s", e ? e->message : "");
	g_clear_error(&e);
	g_free(server);
	return mx;
}

/* ------------------------------------------------------------ cases */

/* Address literals: MX_OK with the port, no DNS at all. */
static void
test_literals(void)
{
	struct event_base *base = event_base_new();
	Dns *d = dns_new(base, FALSE);
	Mx *mx = mx_local(base, d);
	Res r;

	resolve(mx, base, "192.0.2.7", FALSE, 2525, LOOKUP_LIMIT_S, &r);
	EXPECT_STATUS(&r, "192.0.2.7", MX_OK);
	EXPECT(r.addrs && r.addrs->len == 1, "one address");
	EXPECT(strcmp(addr_text(&r, 0), "192.0.2.7") == 0, "its text: %s", addr_text(&r, 0));
	EXPECT(r.addrs && ((MxAddr *)r.addrs->pdata[0])->sa.ss_family == AF_INET, "IPv4");
	EXPECT_ADDRS_SANE(&r, 2525);
	res_clear(&r);

	resolve(mx, base, "2001:db8::25", TRUE, 25, LOOKUP_LIMIT_S, &r);
	EXPECT_STATUS(&r, "2001:db8::25", MX_OK);
	EXPECT(r.addrs && r.addrs->len == 1, "one address");
	EXPECT(strcmp(addr_text(&r, 0), "2001:db8::25") == 0, "its text: %s", addr_text(&r, 0));
	EXPECT(r.addrs && ((MxAddr *)r.addrs->pdata[0])->sa.ss_family == AF_INET6, "IPv6");
	EXPECT_ADDRS_SANE(&r, 25);
	res_clear(&r);

	resolve(mx, base, "::1", FALSE, 587, LOOKUP_LIMIT_S, &r);
	EXPECT_STATUS(&r, "::1", MX_OK);
	EXPECT_ADDRS_SANE(&r, 587);
	res_clear(&r);

	EXPECT(d->asked->len == 0, "no DNS query for a literal (%u asked)", d->asked->len);
	mx_free(mx);
	dns_free(d);
	event_base_free(base);
}

/* localhost as a host given as it is: /etc/hosts. */
static void
test_localhost_direct(void)
{
	struct event_base *base = event_base_new();
	Dns *d = dns_new(base, TRUE);
	Mx *mx = mx_local(base, d);
	gboolean loopback = FALSE;
	Res r;

	resolve(mx, base, "localhost", TRUE, 25, LOOKUP_LIMIT_S, &r);
	EXPECT_STATUS(&r, "localhost", MX_OK);
	EXPECT_ADDRS_SANE(&r, 25);
	for (guint i = 0; r.addrs && i < r.addrs->len; i++)
		loopback |= strcmp(addr_text(&r, i), "127.0.0.1") == 0 ||
		    strcmp(addr_text(&r, i), "::1") == 0;
	EXPECT(loopback, "a loopback address among %u", r.addrs ? r.addrs->len : 0);
	EXPECT(!dns_asked_type(d, "MX"), "no MX lookup for a host given as it is");
	res_clear(&r);
	mx_free(mx);
	dns_free(d);
	event_base_free(base);
}

/* MX records lowest preference first: every address of mx1 (10) before
 * any of mx2 (20); the host names are the MX hosts'. */
static void
test_mx_order(void)
{
	struct event_base *base = event_base_new();
	Dns *d = dns_new(base, FALSE);
	Mx *mx = mx_local(base, d);
	Res r;

	resolve(mx, base, "mx.test", FALSE, 25, LOOKUP_LIMIT_S, &r);
	EXPECT_STATUS(&r, "mx.test", MX_OK);
	EXPECT_ADDRS_SANE(&r, 25);
	EXPECT(r.addrs && r.addrs->len == 3, "three addresses (got %u)",
	    r.addrs ? r.addrs->len : 0);
	EXPECT(strcmp(addr_text(&r, 0), "127.0.0.11") == 0 && strcmp(addr_host(&r, 0),
	    "mx1.test") == 0, "first mx1.test[127.0.0.11] (got %s[%s])", addr_host(&r, 0),
	    addr_text(&r, 0));
	EXPECT(strcmp(addr_host(&r, 1), "mx2.test") == 0 && strcmp(addr_host(&r, 2), "mx2.test") == 0,
	    "then mx2.test's two (got %s, %s)", addr_host(&r, 1), addr_host(&r, 2));
	{
		gboolean v4 = FALSE, v6 = FALSE;

		for (guint i = 1; i < 3; i++) {
			v4 |= strcmp(addr_text(&r, i), "127.0.0.12") == 0;
			v6 |= strcmp(addr_text(&r, i), "2001:db8::12") == 0;
		}
		EXPECT(v4 && v6, "mx2.test's IPv4 and IPv6 addresses");
	}
	res_clear(&r);
	mx_free(mx);
	dns_free(d);
	event_base_free(base);
}

/* Equal preferences come in random order: both orders show up. */
static void
test_mx_equal_shuffled(void)
{
	struct event_base *base = event_base_new();
	Dns *d = dns_new(base, FALSE);
	Mx *mx = mx_local(base, d);
	guint a_first = 0, b_first = 0;

	for (guint i = 0; i < 24; i++) {
		Res r;

		resolve(mx, base, "eq.test", FALSE, 25, LOOKUP_LIMIT_S, &r);
		EXPECT_STATUS(&r, "eq.test", MX_OK);
		if (r.addrs && r.addrs->len == 2) {
			a_first += strcmp(addr_text(&r, 0), "127.0.0.41") == 0;
			b_first += strcmp(addr_text(&r, 0), "127.0.0.42") == 0;
		}
		res_clear(&r);
	}
	EXPECT(a_first + b_first == 24, "two addresses each time");
	EXPECT(a_first > 0 && b_first > 0, "both orders in 24 lookups (a first %u, b first %u)",
	    a_first, b_first);
	mx_free(mx);
	dns_free(d);
	event_base_free(base);
}

/* At most MX_HOSTS_MAX hosts (the lowest) and MX_ADDRS_MAX addresses. */
static void
test_mx_limits(void)
{
	struct event_base *base = event_base_new();
	Dns *d = dns_new(base, FALSE);
	Mx *mx = mx_local(base, d);
	Res r;

	resolve(mx, base, "many.test", FALSE, 25, LOOKUP_LIMIT_S, &r);
	EXPECT_STATUS(&r, "many.test", MX_OK);
	EXPECT(r.addrs && r.addrs->len <= MX_ADDRS_MAX, "at most %u addresses (got %u)",
	    MX_ADDRS_MAX, r.addrs ? r.addrs->len : 0);
	EXPECT(r.addrs && r.addrs->len == MIN(MX_ADDRS_MAX, 2 * MX_HOSTS_MAX),
	    "%u addresses (got %u)", MIN(MX_ADDRS_MAX, 2 * MX_HOSTS_MAX), r.addrs ? r.addrs->len : 0);
	for (guint i = 0; r.addrs && i < r.addrs->len; i++) {
		guint want = i / 2 + 1;
		char *h = g_strdup_printf("h%u.many.test", want);

		EXPECT(strcmp(addr_host(&r, i), h) == 0, "address %u from %s (got %s)", i, h,
		    addr_host(&r, i));
		g_free(h);
	}
	EXPECT(!dns_asked(d, "h11.many.test/A") && !dns_asked(d, "h12.many.test/A"),
	    "hosts past MX_HOSTS_MAX are not looked up");
	res_clear(&r);
	mx_free(mx);
	dns_free(d);
	event_base_free(base);
}

/* No MX record: the domain's own address (the implicit MX). */
static void
test_implicit_mx(void)
{
	struct event_base *base = event_base_new();
	Dns *d = dns_new(base, FALSE);
	Mx *mx = mx_local(base, d);
	Res r;

	resolve(mx, base, "implicit.test", FALSE, 25, LOOKUP_LIMIT_S, &r);
	EXPECT_STATUS(&r, "implicit.test", MX_OK);
	EXPECT(r.addrs && r.addrs->len == 1 && strcmp(addr_text(&r, 0), "127.0.0.21") == 0,
	    "its A record (got %s)", addr_text(&r, 0));
	EXPECT(strcmp(addr_host(&r, 0), "implicit.test") == 0, "host is the domain: %s",
	    addr_host(&r, 0));
	EXPECT_ADDRS_SANE(&r, 25);
	EXPECT(dns_asked(d, "implicit.test/MX"), "the MX was asked first");
	res_clear(&r);
	mx_free(mx);
	dns_free(d);
	event_base_free(base);
}

/* For good: NXDOMAIN, the null MX, a domain with no MX and no address. */
static void
test_permanent(void)
{
	struct event_base *base = event_base_new();
	Dns *d = dns_new(base, FALSE);
	Mx *mx = mx_local(base, d);
	Res r;

	resolve(mx, base, "nx.test", FALSE, 25, LOOKUP_LIMIT_S, &r);
	EXPECT_STATUS(&r, "nx.test", MX_PERM);
	res_clear(&r);

	resolve(mx, base, "null.test", FALSE, 25, LOOKUP_LIMIT_S, &r);
	EXPECT_STATUS(&r, "null.test", MX_PERM);
	EXPECT(r.why && strstr(r.why, "null MX"), "why names the null MX: %s", r.why ? r.why : "");
	EXPECT(!dns_asked(d, "null.test/A"), "no address lookup after a null MX");
	res_clear(&r);

	resolve(mx, base, "empty.test", FALSE, 25, LOOKUP_LIMIT_S, &r);
	EXPECT_STATUS(&r, "empty.test", MX_PERM);
	res_clear(&r);
	mx_free(mx);
	dns_free(d);
	event_base_free(base);
}

/* For now: SERVFAIL, mail servers without an address, a host given as it
 * is that is not found. */
static void
test_temporary(void)
{
	struct event_base *base = event_base_new();
	Dns *d = dns_new(base, FALSE);
	Mx *mx = mx_local(base, d);
	Res r;

	resolve(mx, base, "servfail.test", FALSE, 25, LOOKUP_LIMIT_S, &r);
	EXPECT_STATUS(&r, "servfail.test", MX_TEMP);
	res_clear(&r);

	resolve(mx, base, "noaddr.test", FALSE, 25, LOOKUP_LIMIT_S, &r);
	EXPECT_STATUS(&r, "noaddr.test", MX_TEMP);
	EXPECT(r.why && strstr(r.why, "noaddr.test"), "why names the domain: %s",
	    r.why ? r.why : "");
	res_clear(&r);

	resolve(mx, base, "gone.test", TRUE, 25, LOOKUP_LIMIT_S, &r);
	EXPECT_STATUS(&r, "gone.test (direct)", MX_TEMP);
	res_clear(&r);
	mx_free(mx);
	dns_free(d);
	event_base_free(base);
}

/* A host given as it is: its address, no MX lookup. */
static void
test_direct_host(void)
{
	struct event_base *base = event_base_new();
	Dns *d = dns_new(base, FALSE);
	Mx *mx = mx_local(base, d);
	Res r;

	resolve(mx, base, "host.test", TRUE, 2525, LOOKUP_LIMIT_S, &r);
	EXPECT_STATUS(&r, "host.test", MX_OK);
	EXPECT(r.addrs && r.addrs->len == 1 && strcmp(addr_text(&r, 0), "127.0.0.31") == 0,
	    "its address (got %s)", addr_text(&r, 0));
	EXPECT_ADDRS_SANE(&r, 2525);
	EXPECT(!dns_asked_type(d, "MX"), "no MX lookup");
	res_clear(&r);
	mx_free(mx);
	dns_free(d);
	event_base_free(base);
}

/* A resolver on a closed UDP port: MX_TEMP, and not forever. */
static void
test_resolver_closed_port(void)
{
	struct event_base *base = event_base_new();
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in sin = { 0 };
	socklen_t len = sizeof sin;
	char *server;
	const char *servers[2];
	Mx *mx;
	Res r;

	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	g_assert(fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0);
	g_assert(getsockname(fd, (struct sockaddr *)&sin, &len) == 0);
	close(fd);
	server = g_strdup_printf("127.0.0.1:%u", ntohs(sin.sin_port));
	servers[0] = server;
	servers[1] = NULL;
	mx = mx_new(base, servers, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(mx);
	resolve(mx, base, "example.test", FALSE, 25, DEAD_LIMIT_S, &r);
	EXPECT_STATUS(&r, "example.test (closed port)", MX_TEMP);
	printf("(%.1f s) ", r.seconds);
	res_clear(&r);
	mx_free(mx);
	g_free(server);
	event_base_free(base);
}

/* A resolver that never answers: MX_TEMP once c-ares gives up.  c-ares
 * doubles the timeout at every round (MX_TIMEOUT_MS, then twice, then four
 * times that: 35 s with 5 s and 3 tries), so this case runs only with
 * PG_TEST_SLOW=1. */
static void
test_resolver_silent(void)
{
	struct event_base *base;
	Dns *d;
	Mx *mx;
	Res r;

	if (g_strcmp0(g_getenv("PG_TEST_SLOW"), "1") != 0) {
		printf("skipped (slow: PG_TEST_SLOW=1 runs it) ");
		return;
	}
	base = event_base_new();
	d = dns_new(base, TRUE);
	mx = mx_local(base, d);
	resolve(mx, base, "mx.test", FALSE, 25, DEAD_LIMIT_S, &r);
	EXPECT_STATUS(&r, "mx.test (silent resolver)", MX_TEMP);
	printf("(%.1f s, %u queries) ", r.seconds, d->asked->len);
	res_clear(&r);
	mx_free(mx);
	dns_free(d);
	event_base_free(base);
}

/* mx_free with a lookup pending: the lookup ends there, its callback never
 * runs (the owner is going away), and nothing is left behind (LSan). */
static void
test_free_pending(void)
{
	struct event_base *base = event_base_new();
	Dns *d = dns_new(base, TRUE);
	Mx *mx = mx_local(base, d);
	struct timeval tv = { 0, 100 * 1000 };
	Res r;

	memset(&r, 0, sizeof r);
	r.base = base;
	mx_resolve(mx, "mx.test", FALSE, 25, on_done, &r);
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
	EXPECT(d->asked->len > 0 && r.calls == 0, "the query went and is unanswered");
	mx_free(mx);
	tv.tv_usec = 500 * 1000;
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
	EXPECT(r.calls == 0, "the callback of a cancelled lookup never runs (got %u calls)",
	    r.calls);
	res_clear(&r);
	dns_free(d);
	event_base_free(base);
}

/* A server list that is no list: mx_new says so. */
static void
test_bad_servers(void)
{
	struct event_base *base = event_base_new();
	const char *servers[] = { "not an address", NULL };
	GError *e = NULL;
	Mx *mx = mx_new(base, servers, &e);

	EXPECT(mx == NULL && e && strstr(e->message, "resolver"), "refused: %s",
	    e ? e->message : "(accepted)");
	g_clear_error(&e);
	mx_free(mx);
	event_base_free(base);
}

int
main(void)
{
	static const CuTest tests[] = {
		{ "IPv4 and IPv6 literals: at once, with the port, no DNS", test_literals },
		{ "localhost given as it is: /etc/hosts", test_localhost_direct },
		{ "MX lowest preference first", test_mx_order },
		{ "equal preferences in random order", test_mx_equal_shuffled },
		{ "MX_HOSTS_MAX and MX_ADDRS_MAX", test_mx_limits },
		{ "no MX: the implicit MX", test_implicit_mx },
		{ "NXDOMAIN, null MX, no records: MX_PERM", test_permanent },
		{ "SERVFAIL, no address, direct not found: MX_TEMP", test_temporary },
		{ "a host given as it is: no MX lookup", test_direct_host },
		{ "resolver on a closed port: MX_TEMP", test_resolver_closed_port },
		{ "resolver that never answers: MX_TEMP (PG_TEST_SLOW=1)", test_resolver_silent },
		{ "mx_free with a lookup pending: no callback", test_free_pending },
		{ "a bad resolver list is refused", test_bad_servers },
		{ NULL, NULL },
	};

	return cu_run("mx", tests);
}
