/* dir_route.c - the one routing decision (see dir_route.h).
 *
 * Speed: a decision reads the directory in one read transaction, and a
 * local mailbox or a custom recipient costs one lookup (dir_brief: in the
 * proxy map for an SMTP address when the map is current, else an index
 * lookup); so does a mailbox of another site found by the proxy chosen for
 * the link (the lookup that found it proved it owns that one).  A mailbox of another site
 * found by another address costs one more, to check that it owns the proxy
 * chosen.  The proxies come from the brief, split in place with no
 * allocation.  Lists and other cases read whole entries.
 */
#include "config.h"

#include <string.h>

#include "address.h"
#include "dir_route.h"
#include "pg_log.h"

static DirRoute *
route_new(DirRouteKind kind)
{
	DirRoute *r = g_new0(DirRoute, 1);

	r->kind = kind;
	return r;
}

void
dir_route_free(DirRoute *r)
{
	if (!r)
		return;
	g_free(r->postoffice);
	g_free(r->mailbox);
	g_free(r->list);
	if (r->leaves)
		g_ptr_array_unref(r->leaves);
	g_free(r->site);
	g_free(r->address);
	g_free(r->reason);
	g_free(r->legacy);
	g_free(r);
}

static const char *const kind_names[] = {
	[DIR_ROUTE_POSTOFFICE] = "postoffice", [DIR_ROUTE_LIST] = "dl",
	[DIR_ROUTE_SITE_LINK] = "site-link", [DIR_ROUTE_SMTP] = "smtp",
	[DIR_ROUTE_UNKNOWN] = "unknown", [DIR_ROUTE_ERROR] = "error",
};

const char *
dir_route_kind_name(DirRouteKind kind)
{
	return (guint)kind < G_N_ELEMENTS(kind_names) ? kind_names[kind] : "error";
}

static gboolean
domain_in(const char *domain, const char *const *list)
{
	for (const char *const *p = list; p && *p; p++)
		if (g_ascii_strcasecmp(domain, *p) == 0)
			return TRUE;
	return FALSE;
}

static const DirPeer *
peer_find(const DirContext *ctx, const char *site)
{
	for (guint i = 0; i < ctx->n_peers; i++)
		if (ctx->peers[i].name && strcmp(ctx->peers[i].name, site) == 0)
			return &ctx->peers[i];
	return NULL;
}

/* Whether mail for domain comes to this gateway: this site's or a linked one's. */
static gboolean
domain_ours(const DirContext *ctx, const char *domain)
{
	if (domain_in(domain, ctx->domains))
		return TRUE;
	for (guint i = 0; i < ctx->n_peers; i++)
		if (domain_in(domain, ctx->peers[i].domains))
			return TRUE;
	return FALSE;
}

static const char *
domain_of(const char *key)
{
	const char *at = strrchr(key, '@');

	return at ? at + 1 : "";
}

/* Whether this site serves postoffice NET/PO (po, canonical, of len bytes). */
static gboolean
po_served(const DirContext *ctx, const char *po, size_t len)
{
	for (const char *const *p = ctx->postoffices; p && *p; p++)
		if (strlen(*p) == len && g_ascii_strncasecmp(*p, po, len) == 0)
			return TRUE;
	return FALSE;
}

static gint
cmp_str(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static DirRoute *
route_error(DirRoute *r, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static DirRoute *
route_error(DirRoute *r, const char *fmt, ...)
{
	va_list ap;

	r->kind = DIR_ROUTE_ERROR;
	va_start(ap, fmt);
	g_free(r->reason);
	r->reason = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	return r;
}

/* Whether the entry of brief b effectively owns proxy (SMTP:... or smtp:...).
 * key, when not NULL, is the address b was found by as its effective owner
 * (dir_brief), in the same snapshot: that one needs no second lookup. */
static gboolean
owns(DirStore *d, const DirBrief *b, const char *key, const char *proxy, gboolean *ok,
    GError **error)
{
	PgAddr a = { .kind = ADDR_KIND_SMTP };
	gboolean found = FALSE;
	DirBrief owner;

	*ok = TRUE;
	if (key && g_ascii_strcasecmp(proxy + 5, key) == 0)
		return TRUE;   /* the same proxy: local parts compare without case */
	g_strlcpy(a.smtp, proxy + 5, sizeof a.smtp);
	*ok = dir_brief(d, &a, &owner, &found, error);
	return *ok && found && owner.rid == b->rid;
}

/* The proxies of the entry of brief b as stored; NULL when the entry is
 * gone or on error (*ok FALSE). */
static GPtrArray *
proxies_of(DirStore *d, const DirBrief *b, gboolean *ok, GError **error)
{
	GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
	GError *err = NULL;
	DirEntry *e;

	*ok = TRUE;
	e = dir_brief_entry(d, b, &err);
	if (!e) {
		*ok = err == NULL;
		if (err)
			g_propagate_error(error, err);
		g_ptr_array_unref(out);
		return NULL;
	}
	for (guint i = 0; i < e->proxies->len; i++)
		g_ptr_array_add(out, g_strdup(e->proxies->pdata[i]));
	dir_entry_free(e);
	return out;   /* proxy_first sorts them */
}

static int
cmp_cstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The first of n proxies (sorted here: "SMTP:" sorts before "smtp:", the
 * primary comes first, then the secondaries in order) that the entry of
 * brief b owns, in one of peer's domains (or, without a peer, in a domain
 * of this site or a linked one); local@domain, or NULL when none (or on
 * error: *ok FALSE). */
static char *
proxy_first(DirStore *d, const DirContext *ctx, const DirBrief *b, const DirPeer *peer,
    const char *key, char **proxies, size_t n, gboolean *ok, GError **error)
{
	if (n > 1)
		qsort(proxies, n, sizeof *proxies, cmp_cstr);
	*ok = TRUE;
	for (size_t i = 0; *ok && i < n; i++) {
		const char *p = proxies[i];
		const char *dom = domain_of(p + 5);
		gboolean fit = peer ? domain_in(dom, peer->domains) : domain_ours(ctx, dom);

		if (fit && owns(d, b, key, p, ok, error))
			return g_strdup(p + 5);
	}
	return NULL;
}

/* proxy_first over the proxies of the entry of brief b: from the brief
 * itself, with no allocation, when it holds them; else from the entry. */
static char *
proxy_pick(DirStore *d, const DirContext *ctx, const DirBrief *b, const DirPeer *peer,
    const char *key, gboolean *ok, GError **error)
{
	char text[sizeof b->proxies], *v[DIR_MAX_PROXIES + 1], *p, *found;
	GPtrArray *proxies;
	size_t n = 0;

	if (b->proxies_known) {
		gboolean all = FALSE;

		memcpy(text, b->proxies, sizeof text);
		for (p = text; !all && n < G_N_ELEMENTS(v); ) {
			char *nl = strchr(p, '\n');

			if (nl)
				*nl = '\0';
			else
				all = TRUE;
			if (*p)
				v[n++] = p;
			if (nl)
				p = nl + 1;
		}
		if (all)
			return proxy_first(d, ctx, b, peer, key, v, n, ok, error);
		/* More than an entry may hold: read the entry. */
	}
	proxies = proxies_of(d, b, ok, error);
	if (!proxies)
		return NULL;
	found = proxy_first(d, ctx, b, peer, key, (char **)proxies->pdata, proxies->len, ok,
	    error);
	g_ptr_array_unref(proxies);
	return found;
}

/* The address a list member (brief b) is reached by: a custom's target; an
 * address it owns that routes back to it; else its legacy address.  NULL
 * only on error (*ok FALSE). */
static char *
leaf_address(DirStore *d, const DirContext *ctx, const DirBrief *b, gboolean *ok,
    GError **error)
{
	char *a;

	*ok = TRUE;
	if (b->type == DIR_CUSTOM)
		return g_strdup(b->target + 5);
	a = proxy_pick(d, ctx, b, NULL, NULL, ok, error);
	if (!a && *ok)
		a = g_strdup(b->legacy);
	return a;
}

typedef struct {
	DirStore *d;
	const DirContext *ctx;
	GHashTable *visited;   /* gint64 * rows of the entries met */
	GHashTable *leaves;    /* leaf addresses */
	char *too_deep;        /* the list at which nesting went too deep */
} Expand;

static gboolean
expand(Expand *x, const DirEntry *list, guint depth, GError **error)
{
	gboolean ok = TRUE;

	for (guint i = 0; ok && !x->too_deep && i < list->members->len; i++) {
		const char *member = list->members->pdata[i];
		gboolean found = FALSE;
		GError *err = NULL;
		DirEntry *m;
		DirBrief b;
		PgAddr a;
		char *leaf;

		/* Members are stored canonical: this parse never fails. */
		if (!addr_parse(member, strlen(member), &a, NULL) || a.kind != ADDR_KIND_LEGACY)
			continue;
		if (!dir_brief(x->d, &a, &b, &found, error))
			return FALSE;
		if (!found) {
			pg_debug(NULL, "directory: list %s: member %s is not in the directory",
			    list->legacy, member);
			continue;
		}
		if (!g_hash_table_add(x->visited, g_memdup2(&b.rid, sizeof b.rid)))
			continue;   /* a cycle or a duplicate */
		if (b.type != DIR_LIST) {
			leaf = leaf_address(x->d, x->ctx, &b, &ok, error);
			if (leaf)
				g_hash_table_add(x->leaves, leaf);
			continue;
		}
		if (depth >= DIR_MAX_NESTING) {
			x->too_deep = g_strdup(b.legacy);
			break;
		}
		m = dir_brief_entry(x->d, &b, &err);
		if (err) {
			g_propagate_error(error, err);
			return FALSE;
		}
		if (m)
			ok = expand(x, m, depth + 1, error);
		dir_entry_free(m);
	}
	return ok;
}

static DirRoute *
route_list(DirStore *d, const DirContext *ctx, const DirBrief *b, DirRoute *r,
    GError **error)
{
	Expand x = { d, ctx, g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL),
	    g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL), NULL };
	GError *err = NULL;
	GHashTableIter it;
	DirEntry *e;
	gpointer k;
	gboolean ok;

	e = dir_brief_entry(d, b, &err);
	if (!e) {
		g_hash_table_unref(x.visited);
		g_hash_table_unref(x.leaves);
		dir_route_free(r);
		if (err) {
			g_propagate_error(error, err);
			return NULL;
		}
		return route_new(DIR_ROUTE_UNKNOWN);
	}
	g_hash_table_add(x.visited, g_memdup2(&b->rid, sizeof b->rid));
	ok = expand(&x, e, 1, error);
	if (ok && x.too_deep) {
		route_error(r, "list %s nests lists deeper than %u levels (at %s)", e->legacy,
		    DIR_MAX_NESTING, x.too_deep);
	} else if (ok) {
		r->kind = DIR_ROUTE_LIST;
		r->list = g_strdup(e->legacy);
		r->leaves = g_ptr_array_new_full(g_hash_table_size(x.leaves), g_free);
		g_hash_table_iter_init(&it, x.leaves);
		while (g_hash_table_iter_next(&it, &k, NULL)) {
			g_ptr_array_add(r->leaves, k);
			g_hash_table_iter_steal(&it);
		}
		g_ptr_array_sort(r->leaves, cmp_str);
	}
	g_free(x.too_deep);
	g_hash_table_unref(x.visited);
	g_hash_table_unref(x.leaves);
	dir_entry_free(e);
	if (!ok) {
		dir_route_free(r);
		return NULL;
	}
	return r;
}

/* The decision for an entry found in the directory; key, when not NULL, the
 * SMTP address it was found by (it owns that one). */
static DirRoute *
route_entry(DirStore *d, const DirContext *ctx, const DirBrief *b, const char *key,
    GError **error)
{
	DirRoute *r = route_new(DIR_ROUTE_UNKNOWN);
	const DirPeer *peer;
	const char *slash;
	gboolean ok;

	r->legacy = g_strdup(b->legacy);
	if (b->type == DIR_CUSTOM) {
		r->kind = DIR_ROUTE_SMTP;
		r->address = g_strdup(b->target + 5);
		return r;
	}
	if (b->type == DIR_LIST)
		return route_list(d, ctx, b, r, error);
	if (strcmp(b->home_site, ctx->site) == 0) {
		/* The stored legacy address is canonical: NET/PO/MAILBOX. */
		slash = strrchr(b->legacy, '/');
		if (!slash)
			return route_error(r, "%s is no valid legacy address", b->legacy);
		if (!po_served(ctx, b->legacy, (size_t)(slash - b->legacy)))
			return route_error(r, "%s is homed at postoffice %.*s, which this "
			    "site does not serve", b->legacy, (int)(slash - b->legacy), b->legacy);
		r->kind = DIR_ROUTE_POSTOFFICE;
		r->postoffice = g_strndup(b->legacy, (gsize)(slash - b->legacy));
		r->mailbox = g_strdup(slash + 1);
		return r;
	}
	peer = peer_find(ctx, b->home_site);
	if (!peer)
		return route_error(r, "%s is homed at site %s, which has no [site-link %s]",
		    b->legacy, b->home_site, b->home_site);
	r->address = proxy_pick(d, ctx, b, peer, key, &ok, error);
	if (!ok) {
		dir_route_free(r);
		return NULL;
	}
	if (!r->address)
		return route_error(r, "entry %s at site %s has no proxy in %s's domains",
		    b->legacy, b->home_site, b->home_site);
	r->kind = DIR_ROUTE_SITE_LINK;
	r->site = g_strdup(b->home_site);
	return r;
}

/* Whether address (trimmed, SMTP: prefix optional) is the postmaster of this
 * site (RFC 5321 4.5.1): "postmaster" in any case, bare or at one of this
 * site's domains.
 * A linked site's postmaster is that site's, found as any other address. */
static gboolean
is_postmaster(const DirContext *ctx, const char *address)
{
	static const char pm[] = "postmaster";
	const size_t n = sizeof pm - 1;
	size_t len;

	while (*address == ' ' || *address == '\t')
		address++;
	if (g_ascii_strncasecmp(address, "SMTP:", 5) == 0)
		address += 5;
	len = strlen(address);
	while (len > 0 && (address[len - 1] == ' ' || address[len - 1] == '\t'))
		len--;
	if (len < n || g_ascii_strncasecmp(address, pm, n) != 0)
		return FALSE;
	if (len == n)
		return TRUE;
	if (address[n] != '@')
		return FALSE;
	for (const char *const *p = ctx->domains; p && *p; p++)
		if (strlen(*p) == len - n - 1 &&
		    g_ascii_strncasecmp(*p, address + n + 1, len - n - 1) == 0)
			return TRUE;
	return FALSE;
}

/* The postmaster's decision: [site] postmaster, whatever the directory holds
 * (SPEC 2: always accepted, and goes there). */
static DirRoute *
route_postmaster(const DirContext *ctx)
{
	DirRoute *r = route_new(DIR_ROUTE_ERROR);
	GError *e = NULL;
	PgAddr a;

	if (!ctx->postmaster || !*ctx->postmaster)
		return route_error(r, "postmaster has no mailbox: set [site] postmaster to a "
		    "legacy mailbox NET/PO/MAILBOX on a postoffice this site serves");
	if (!addr_parse(ctx->postmaster, strlen(ctx->postmaster), &a, &e) ||
	    a.kind != ADDR_KIND_LEGACY) {
		route_error(r, "[site] postmaster %s is no legacy mailbox NET/PO/MAILBOX%s%s",
		    ctx->postmaster, e ? ": " : "", e ? e->message : "");
		g_clear_error(&e);
		return r;
	}
	r->postoffice = g_strdup_printf("%s/%s", a.net, a.po);
	r->legacy = addr_format(&a);
	if (!po_served(ctx, r->postoffice, strlen(r->postoffice)))
		return route_error(r, "[site] postmaster %s is at postoffice %s, which this site "
		    "does not serve", r->legacy, r->postoffice);
	r->kind = DIR_ROUTE_POSTOFFICE;
	r->mailbox = g_strdup(a.mailbox);
	return r;
}

DirRoute *
dir_route(DirStore *d, const DirContext *ctx, const char *address, GError **error)
{
	gboolean found;
	DirBrief b;
	DirRoute *r;
	PgAddr a;

	if (address && is_postmaster(ctx, address))
		return route_postmaster(ctx);
	if (!dir_address_parse(address, &a, error))
		return NULL;
	if (a.kind == ADDR_KIND_SMTP && !domain_ours(ctx, domain_of(a.smtp))) {
		r = route_new(DIR_ROUTE_SMTP);
		r->address = g_strdup(a.smtp);
		return r;
	}
	/* One snapshot, one read transaction, for the whole decision. */
	if (!dir_read_begin(d, error))
		return NULL;
	if (!dir_brief(d, &a, &b, &found, error))
		r = NULL;
	else if (!found)
		r = route_new(DIR_ROUTE_UNKNOWN);
	else
		r = route_entry(d, ctx, &b, a.kind == ADDR_KIND_SMTP ? a.smtp : NULL, error);
	dir_read_end(d);
	return r;
}

char *
dir_route_format(const DirRoute *r)
{
	GString *s = g_string_new(dir_route_kind_name(r->kind));

	switch (r->kind) {
	case DIR_ROUTE_POSTOFFICE:
		g_string_append_printf(s, " %s %s", r->postoffice, r->mailbox);
		break;
	case DIR_ROUTE_LIST:
		g_string_append_printf(s, " %s", r->list);
		for (guint i = 0; r->leaves && i < r->leaves->len; i++)
			g_string_append_printf(s, "%c%s", i ? ',' : ' ',
			    (const char *)r->leaves->pdata[i]);
		break;
	case DIR_ROUTE_SITE_LINK:
		g_string_append_printf(s, " %s <%s>", r->site, r->address);
		break;
	case DIR_ROUTE_SMTP:
		g_string_append_printf(s, " <%s>", r->address);
		break;
	case DIR_ROUTE_UNKNOWN:
		break;
	case DIR_ROUTE_ERROR:
		g_string_append_printf(s, " %s", r->reason ? r->reason : "");
		break;
	}
	/* Exactly one line, whatever a value held. */
	for (gsize i = 0; i < s->len; i++)
		if ((unsigned char)s->str[i] < 0x20)
			s->str[i] = ' ';
	return g_string_free(s, FALSE);
}
