/* test_dir_route.c - unit tests of directory/dir_route.c.
 *
 * Checks the one routing decision (issue 4, scope 5; SPEC 2 and 3.2) through
 * the line `postgate dir route` prints: the two-site story of SPEC 3.2 (site
 * A owns company.com, site B imc2.company.com; B's templates give user2 the
 * primary SMTP:user2@company.com and smtp:user2@imc2.company.com; B exports
 * to A; on A, user2@company.com routes over the site link with the address
 * B owns, never the primary that routes back); a remote entry without a
 * proxy in its site's domains, or at a site without a link, is an error,
 * never a guess; local mailboxes go to their postoffice; lists expand
 * nested, cycle-safe, without duplicates, to sorted leaf addresses; a
 * custom recipient goes to its target, and its target address is never one
 * of ours; other domains are external; unknown recipients are unknown; bad
 * syntax is an error.  Issue 12: postmaster, bare or at any of this site's
 * domains, in any case, goes to [site] postmaster whatever the directory
 * says (none: an error naming the key); local parts compare without case,
 * and what goes out is the proxy as written; a quoted local part is an
 * address that reaches nobody of ours.
 */
#include "config.h"

#include <stdarg.h>
#include <string.h>

#include <glib/gstdio.h>

#include "cu_run.h"
#include "dir_route.h"
#include "dir_store.h"
#include "pg_log.h"

static char *tmpdir;

static const char *const dom_a[] = { "company.com", NULL };
static const char *const dom_b[] = { "imc2.company.com", NULL };
static const char *const dom_c[] = { "imc3.company.com", NULL };
static const char *const tpl_a[] = { "SMTP:%m@company.com", NULL };
static const char *const tpl_b[] = { "SMTP:%m@company.com", "smtp:%m@imc2.company.com",
	NULL };
static const char *const tpl_c[] = { "SMTP:%m@imc3.company.com", NULL };
static const char *const po_a[] = { "CORP/HQ", "CORP/GWA", NULL };
static const char *const po_a_old[] = { "CORP/HQ", "CORP/GWA", "CORP/OLD", NULL };
static const char *const po_b[] = { "CORP/IMC2", NULL };
static const char *const po_c[] = { "CORP/C", NULL };
static const DirPeer peers_a[] = { { "B", dom_b } };
static const DirPeer peers_b[] = { { "A", dom_a } };
static const DirPeer peers_c[] = { { "A", dom_a } };
static const DirContext ctx_a = { "A", dom_a, tpl_a, po_a, peers_a, 1, 86400, NULL };
static const DirContext ctx_a_old = { "A", dom_a, tpl_a, po_a_old, peers_a, 1, 86400, NULL };
static const DirContext ctx_b = { "B", dom_b, tpl_b, po_b, peers_b, 1, 86400, NULL };
static const DirContext ctx_c = { "C", dom_c, tpl_c, po_c, peers_c, 1, 86400, NULL };

/* The two (three) sites, built once per test. */
static DirStore *site_a, *site_b;

static DirStore *
store(const char *name)
{
	char *path = g_strdup_printf("%s/%s.db", tmpdir, name);
	GError *e = NULL;
	DirStore *d;

	g_unlink(path);
	d = dir_open(path, &e);
	EXPECT(d != NULL, "open %s (%s)", path, e ? e->message : "");
	g_clear_error(&e);
	g_free(path);
	return d;
}

static DirEntry *
entry(DirType type, const char *legacy, const char *target, ...)
{
	DirEntry *e = dir_entry_new(type);
	va_list ap;
	const char *s;

	e->legacy = g_strdup(legacy);
	e->name = g_strdup(legacy);
	e->target = g_strdup(target);
	va_start(ap, target);
	while ((s = va_arg(ap, const char *)))
		g_ptr_array_add(type == DIR_LIST ? e->members : e->proxies, g_strdup(s));
	va_end(ap);
	return e;
}

#define MBX(legacy, ...) entry(DIR_MAILBOX, legacy, NULL, ##__VA_ARGS__, NULL)
#define DL(legacy, ...) entry(DIR_LIST, legacy, NULL, ##__VA_ARGS__, NULL)
#define CUSTOM(legacy, target) entry(DIR_CUSTOM, legacy, target, NULL)

static void
import(DirStore *d, const DirContext *ctx, const char *po, ...)
{
	SyncDoc *doc = sync_doc_new(SYNC_POSTOFFICE);
	GError *e = NULL;
	va_list ap;
	DirEntry *x;

	doc->postoffice = g_strdup(po);
	va_start(ap, po);
	while ((x = va_arg(ap, DirEntry *)))
		g_ptr_array_add(doc->entries, x);
	va_end(ap);
	EXPECT(dir_import(d, ctx, doc, NULL, &e), "import %s at %s (%s)", po, ctx->site,
	    e ? e->message : "");
	g_clear_error(&e);
	sync_doc_free(doc);
}

static void
replicate(DirStore *from, const DirContext *cf, DirStore *to, const DirContext *ct)
{
	GError *e = NULL;
	SyncDoc *doc = dir_export_replication(from, cf, ct->site, &e);

	EXPECT(doc && dir_import(to, ct, doc, NULL, &e), "replicate %s -> %s (%s)", cf->site,
	    ct->site, e ? e->message : "");
	g_clear_error(&e);
	sync_doc_free(doc);
}

/* The SPEC 3.2 world: A with its postoffice and lists, B with user2. */
static void
world(void)
{
	site_a = store("a");
	site_b = store("b");
	import(site_b, &ctx_b, "CORP/IMC2", MBX("CORP/IMC2/USER2"),
	    MBX("CORP/IMC2/USER3", "SMTP:user3@company.com"),
	    MBX("CORP/IMC2/USER4"),
	    MBX("CORP/IMC2/USER6", "SMTP:user6@company.com", "smtp:shared@imc2.company.com"),
	    NULL);
	import(site_a, &ctx_a, "CORP/HQ", MBX("CORP/HQ/JSMITH"), MBX("CORP/HQ/MARY"),
	    MBX("CORP/HQ/USER4"),
	    MBX("CORP/HQ/SHARED", "SMTP:shared@company.com", "smtp:shared@imc2.company.com"),
	    NULL);
	import(site_a, &ctx_a, "CORP/GWA",
	    DL("CORP/GWA/ALL", "CORP/HQ/JSMITH", "CORP/GWA/TEAM", "CORP/IMC2/USER2",
	    "CORP/GWA/BOB", "CORP/HQ/GHOST", "CORP/GWA/ALL"),
	    DL("CORP/GWA/TEAM", "CORP/HQ/MARY", "CORP/GWA/ALL", "CORP/HQ/JSMITH",
	    "CORP/GWA/EMPTY"),
	    DL("CORP/GWA/EMPTY"),
	    CUSTOM("CORP/GWA/BOB", "SMTP:Bob@Partner.ORG"),
	    CUSTOM("CORP/GWA/FWD", "forward@company.com"),
	    NULL);
	replicate(site_b, &ctx_b, site_a, &ctx_a);
	replicate(site_a, &ctx_a, site_b, &ctx_b);
}

static void
world_end(void)
{
	dir_close(site_a);
	dir_close(site_b);
	site_a = site_b = NULL;
}

/* Route address at d and compare the one line. */
#define ROUTE(d, ctx, address, want) route_at(__LINE__, d, ctx, address, want)

static void
route_at(int line, DirStore *d, const DirContext *ctx, const char *address, const char *want)
{
	GError *e = NULL;
	DirRoute *r = dir_route(d, ctx, address, &e);
	char *got = r ? dir_route_format(r) : NULL;

	expect_at(r != NULL, line, "route %s (%s)", address, e ? e->message : "");
	expect_at(got && strcmp(got, want) == 0, line, "at %s, %s routes as \"%s\", got \"%s\"",
	    ctx->site, address, want, got ? got : "(null)");
	expect_at(got && !strchr(got, '\n'), line, "one line");
	g_clear_error(&e);
	g_free(got);
	dir_route_free(r);
}

static void
test_spec_3_2_remote_user_goes_over_the_link_with_the_peers_proxy(void)
{
	GError *e = NULL;
	DirRoute *r;

	world();
	ROUTE(site_a, &ctx_a, "user2@company.com",
	    "site-link B <user2@imc2.company.com>");
	ROUTE(site_a, &ctx_a, "SMTP:user2@COMPANY.com",
	    "site-link B <user2@imc2.company.com>");
	ROUTE(site_a, &ctx_a, "user2@imc2.company.com",
	    "site-link B <user2@imc2.company.com>");
	ROUTE(site_a, &ctx_a, "CORP/IMC2/USER2", "site-link B <user2@imc2.company.com>");
	/* At B the same user is local, whichever proxy is used. */
	ROUTE(site_b, &ctx_b, "user2@company.com", "postoffice CORP/IMC2 USER2");
	ROUTE(site_b, &ctx_b, "user2@imc2.company.com", "postoffice CORP/IMC2 USER2");
	r = dir_route(site_a, &ctx_a, "user2@company.com", &e);
	EXPECT(r && r->kind == DIR_ROUTE_SITE_LINK && g_strcmp0(r->site, "B") == 0 &&
	    g_strcmp0(r->address, "user2@imc2.company.com") == 0 &&
	    g_strcmp0(r->legacy, "CORP/IMC2/USER2") == 0,
	    "the decision's fields");
	dir_route_free(r);
	world_end();
}

static void
test_remote_entry_without_a_proxy_in_its_sites_domains_is_an_error(void)
{
	world();
	ROUTE(site_a, &ctx_a, "user3@company.com",
	    "error entry CORP/IMC2/USER3 at site B has no proxy in B's domains");
	/* USER6's only address in B's domain is owned by A's SHARED (the lower
	 * origin site): never used for USER6. */
	ROUTE(site_a, &ctx_a, "CORP/IMC2/USER6",
	    "error entry CORP/IMC2/USER6 at site B has no proxy in B's domains");
	ROUTE(site_a, &ctx_a, "shared@imc2.company.com", "postoffice CORP/HQ SHARED");
	world_end();
}

static void
test_entry_at_a_site_without_a_link_is_an_error(void)
{
	DirStore *c;

	world();
	c = store("c");
	import(c, &ctx_c, "CORP/C", MBX("CORP/C/X"), NULL);
	replicate(c, &ctx_c, site_a, &ctx_a);
	ROUTE(site_a, &ctx_a, "CORP/C/X",
	    "error CORP/C/X is homed at site C, which has no [site-link C]");
	/* imc3.company.com is no domain of A or its links: external. */
	ROUTE(site_a, &ctx_a, "x@imc3.company.com", "smtp <x@imc3.company.com>");
	dir_close(c);
	world_end();
}

static void
test_local_mailbox_goes_to_its_postoffice(void)
{
	GError *e = NULL;
	DirRoute *r;

	world();
	ROUTE(site_a, &ctx_a, "jsmith@company.com", "postoffice CORP/HQ JSMITH");
	ROUTE(site_a, &ctx_a, " SMTP:jsmith@Company.COM ", "postoffice CORP/HQ JSMITH");
	ROUTE(site_a, &ctx_a, "smtp:jsmith@company.com", "postoffice CORP/HQ JSMITH");
	ROUTE(site_a, &ctx_a, "CORP/HQ/JSMITH", "postoffice CORP/HQ JSMITH");
	ROUTE(site_a, &ctx_a, "corp/hq/jsmith", "postoffice CORP/HQ JSMITH");
	/* A clash between A's USER4 and B's: each site's own postoffice keeps
	 * it there (SPEC 2). */
	ROUTE(site_a, &ctx_a, "user4@company.com", "postoffice CORP/HQ USER4");
	ROUTE(site_b, &ctx_b, "user4@company.com", "postoffice CORP/IMC2 USER4");
	ROUTE(site_a, &ctx_a, "user4@imc2.company.com", "site-link B <user4@imc2.company.com>");
	r = dir_route(site_a, &ctx_a, "jsmith@company.com", &e);
	EXPECT(r && r->kind == DIR_ROUTE_POSTOFFICE && g_strcmp0(r->postoffice, "CORP/HQ") == 0 &&
	    g_strcmp0(r->mailbox, "JSMITH") == 0 && g_strcmp0(r->legacy, "CORP/HQ/JSMITH") == 0,
	    "the decision's fields");
	dir_route_free(r);
	world_end();
}

static void
test_mailbox_of_a_postoffice_no_longer_served_is_an_error(void)
{
	world();
	import(site_a, &ctx_a_old, "CORP/OLD", MBX("CORP/OLD/GONE"), NULL);
	ROUTE(site_a, &ctx_a_old, "gone@company.com", "postoffice CORP/OLD GONE");
	ROUTE(site_a, &ctx_a, "gone@company.com",
	    "error CORP/OLD/GONE is homed at postoffice CORP/OLD, which this site does "
	    "not serve");
	world_end();
}

static void
test_list_expands_nested_cycle_safe_without_duplicates(void)
{
	GError *e = NULL;
	DirRoute *r;

	world();
	ROUTE(site_a, &ctx_a, "all@company.com", "dl CORP/GWA/ALL Bob@partner.org,"
	    "jsmith@company.com,mary@company.com,user2@company.com");
	ROUTE(site_a, &ctx_a, "CORP/GWA/TEAM", "dl CORP/GWA/TEAM Bob@partner.org,"
	    "jsmith@company.com,mary@company.com,user2@company.com");
	ROUTE(site_a, &ctx_a, "empty@company.com", "dl CORP/GWA/EMPTY");
	/* B expands the same list (replicated) the same way. */
	ROUTE(site_b, &ctx_b, "all@company.com", "dl CORP/GWA/ALL Bob@partner.org,"
	    "jsmith@company.com,mary@company.com,user2@company.com");
	r = dir_route(site_a, &ctx_a, "all@company.com", &e);
	EXPECT(r && r->kind == DIR_ROUTE_LIST && r->leaves && r->leaves->len == 4 &&
	    g_strcmp0(r->list, "CORP/GWA/ALL") == 0, "the decision's fields");
	dir_route_free(r);
	world_end();
}

static void
test_list_leaf_without_a_usable_proxy_is_its_legacy_address(void)
{
	static const char *const none[] = { NULL };
	const DirContext bare = { "A", dom_a, none, po_a, peers_a, 1, 86400, NULL };
	DirStore *d = store("bare");
	DirEntry *l;

	import(d, &bare, "CORP/HQ", MBX("CORP/HQ/NOPROXY", "SMTP:np@elsewhere.org"),
	    MBX("CORP/HQ/ELSEWHERE", "SMTP:e@elsewhere.org", "smtp:e2@company.com"), NULL);
	l = DL("CORP/GWA/L", "CORP/HQ/NOPROXY", "CORP/HQ/ELSEWHERE");
	g_ptr_array_add(l->proxies, g_strdup("SMTP:l@company.com"));
	import(d, &bare, "CORP/GWA", l, NULL);
	/* NOPROXY's only address is in no domain of ours, nor is ELSEWHERE's
	 * primary: each leaf is an address that routes back to the member. */
	ROUTE(d, &bare, "CORP/GWA/L", "dl CORP/GWA/L CORP/HQ/NOPROXY,e2@company.com");
	dir_close(d);
}

static void
test_lists_nested_too_deep_are_an_error(void)
{
	SyncDoc *doc = sync_doc_new(SYNC_POSTOFFICE);
	DirStore *d = store("deep");
	GError *e = NULL;
	char name[32], next[32];

	import(d, &ctx_a, "CORP/HQ", MBX("CORP/HQ/JSMITH"), NULL);
	doc->postoffice = g_strdup("CORP/GWA");
	/* L1 .. L33, each holding the next; L32 and L33 hold JSMITH too. */
	for (int i = 1; i <= 33; i++) {
		DirEntry *x;
		g_snprintf(name, sizeof name, "CORP/GWA/L%d", i);
		g_snprintf(next, sizeof next, "CORP/GWA/L%d", i + 1);
		x = i < 33 ? DL(name, next) : DL(name, "CORP/HQ/JSMITH");
		if (i == 32)
			g_ptr_array_add(x->members, g_strdup("CORP/HQ/JSMITH"));
		g_ptr_array_add(doc->entries, x);
	}
	EXPECT(dir_import(d, &ctx_a, doc, NULL, &e), "import (%s)", e ? e->message : "");
	g_clear_error(&e);
	sync_doc_free(doc);
	ROUTE(d, &ctx_a, "CORP/GWA/L2", "dl CORP/GWA/L2 jsmith@company.com");
	ROUTE(d, &ctx_a, "CORP/GWA/L1",
	    "error list CORP/GWA/L1 nests lists deeper than 32 levels (at CORP/GWA/L33)");
	dir_close(d);
}

static void
test_custom_goes_to_its_target_which_is_never_ours(void)
{
	DirEntry *x;
	GError *e = NULL;

	world();
	ROUTE(site_a, &ctx_a, "bob@company.com", "smtp <Bob@partner.org>");
	ROUTE(site_a, &ctx_a, "CORP/GWA/BOB", "smtp <Bob@partner.org>");
	ROUTE(site_a, &ctx_a, "fwd@company.com", "smtp <forward@company.com>");
	/* The target is no proxy: in our domain it is unknown (no open relay). */
	ROUTE(site_a, &ctx_a, "forward@company.com", "unknown");
	x = dir_lookup(site_a, "forward@company.com", &e);
	EXPECT(x == NULL && e == NULL, "lookup of a custom's target finds nothing");
	dir_entry_free(x);
	ROUTE(site_a, &ctx_a, "Bob@partner.org", "smtp <Bob@partner.org>");
	world_end();
}

static void
test_external_and_unknown(void)
{
	world();
	ROUTE(site_a, &ctx_a, "someone@gmail.com", "smtp <someone@gmail.com>");
	ROUTE(site_a, &ctx_a, "SMTP:Someone@GMAIL.com", "smtp <Someone@gmail.com>");
	ROUTE(site_a, &ctx_a, "x@sub.company.com", "smtp <x@sub.company.com>");
	ROUTE(site_a, &ctx_a, "nobody@company.com", "unknown");
	ROUTE(site_a, &ctx_a, "nobody@IMC2.company.com", "unknown");
	ROUTE(site_a, &ctx_a, "CORP/HQ/NOBODY", "unknown");
	ROUTE(site_a, &ctx_a, "CORP/HQ/GHOST", "unknown");
	world_end();
}

static void
test_postmaster_goes_to_the_site_postmaster(void)
{
	static const char *const dom_pm[] = { "company.com", "corp.example", NULL };
	static const char *const pm[] = { "postmaster", "Postmaster", "POSTMASTER",
		" postmaster ", "postmaster@company.com", "PostMaster@Company.COM",
		"postmaster@corp.example", "SMTP:postmaster@corp.example" };
	const DirContext with = { "A", dom_pm, tpl_a, po_a, peers_a, 1, 86400,
		"corp/hq/postmaster" };
	const DirContext none = { "A", dom_pm, tpl_a, po_a, peers_a, 1, 86400, NULL };
	const DirContext unserved = { "A", dom_pm, tpl_a, po_a, peers_a, 1, 86400,
		"CORP/OLD/POSTMASTER" };
	DirStore *d = store("postmaster");
	GError *e = NULL;
	DirRoute *r;

	/* An entry that claims postmaster@company.com: the configuration wins. */
	import(d, &with, "CORP/HQ", MBX("CORP/HQ/BOSS", "SMTP:postmaster@company.com"),
	    MBX("CORP/HQ/JSMITH"), NULL);
	for (guint i = 0; i < G_N_ELEMENTS(pm); i++) {
		ROUTE(d, &with, pm[i], "postoffice CORP/HQ POSTMASTER");
		ROUTE(d, &none, pm[i], "error postmaster has no mailbox: set [site] postmaster "
		    "to a legacy mailbox NET/PO/MAILBOX on a postoffice this site serves");
		ROUTE(d, &unserved, pm[i], "error [site] postmaster CORP/OLD/POSTMASTER is at "
		    "postoffice CORP/OLD, which this site does not serve");
	}
	r = dir_route(d, &with, "Postmaster", &e);
	EXPECT(r && r->kind == DIR_ROUTE_POSTOFFICE && g_strcmp0(r->postoffice, "CORP/HQ") == 0 &&
	    g_strcmp0(r->mailbox, "POSTMASTER") == 0 &&
	    g_strcmp0(r->legacy, "CORP/HQ/POSTMASTER") == 0, "the decision's fields");
	dir_route_free(r);
	/* Not postmaster: a linked site's (found as any address), and look-alikes. */
	ROUTE(d, &with, "postmaster@imc2.company.com", "unknown");
	ROUTE(d, &with, "postmasters@company.com", "unknown");
	ROUTE(d, &with, "postmaster@gmail.com", "smtp <postmaster@gmail.com>");
	ROUTE(d, &with, "jsmith@company.com", "postoffice CORP/HQ JSMITH");
	dir_close(d);
}

static void
test_local_parts_compare_without_case(void)
{
	world();
	import(site_b, &ctx_b, "CORP/IMC2", MBX("CORP/IMC2/USER2"),
	    MBX("CORP/IMC2/USER3", "SMTP:user3@company.com"), MBX("CORP/IMC2/USER4"),
	    MBX("CORP/IMC2/USER6", "SMTP:user6@company.com", "smtp:shared@imc2.company.com"),
	    MBX("CORP/IMC2/MIXED", "SMTP:Mixed.Case@imc2.company.com"), NULL);
	replicate(site_b, &ctx_b, site_a, &ctx_a);
	ROUTE(site_a, &ctx_a, "JSmith@Company.COM", "postoffice CORP/HQ JSMITH");
	ROUTE(site_a, &ctx_a, "SMTP:JSMITH@company.com", "postoffice CORP/HQ JSMITH");
	ROUTE(site_a, &ctx_a, "All@company.com", "dl CORP/GWA/ALL Bob@partner.org,"
	    "jsmith@company.com,mary@company.com,user2@company.com");
	/* Over the link: the peer's proxy, as written. */
	ROUTE(site_a, &ctx_a, "USER2@company.com", "site-link B <user2@imc2.company.com>");
	ROUTE(site_a, &ctx_a, "mixed.case@IMC2.company.com",
	    "site-link B <Mixed.Case@imc2.company.com>");
	ROUTE(site_a, &ctx_a, "MIXED.CASE@imc2.company.com",
	    "site-link B <Mixed.Case@imc2.company.com>");
	/* A custom recipient's proxy, in another case, is still no relay. */
	ROUTE(site_a, &ctx_a, "BOB@company.com", "smtp <Bob@partner.org>");
	world_end();
}

static void
test_a_quoted_local_part_reaches_nobody_of_ours(void)
{
	world();
	ROUTE(site_a, &ctx_a, "\"a b\"@company.com", "unknown");
	ROUTE(site_a, &ctx_a, "\"jsmith\"@company.com", "unknown");
	ROUTE(site_a, &ctx_a, "\"a b\"@imc2.company.com", "unknown");
	ROUTE(site_a, &ctx_a, "\"a b\"@Elsewhere.ORG", "smtp <\"a b\"@elsewhere.org>");
	world_end();
}

static void
test_bad_syntax_is_an_error(void)
{
	static const char *const bad[] = { "", "user@@company.com", "CORP/HQ", "a b@company.com",
		"CORP/HQ/TOO-LONG-NAME", "SMTP:", "user@", "@company.com", "CORP/HQ/J.SMITH",
		"user@[127.0.0.1]", "\"a b@company.com", "\"a\"b@company.com",
		"\"a b\"@", "\"a\x01\"@company.com" };

	world();
	for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
		GError *e = NULL;
		DirRoute *r = dir_route(site_a, &ctx_a, bad[i], &e);
		EXPECT(r == NULL && e && e->domain == DIR_ERROR && e->code == DIR_ERROR_INVALID &&
		    e->message[0], "\"%s\" is refused (%s)", bad[i], e ? e->message : "");
		g_clear_error(&e);
		dir_route_free(r);
	}
	world_end();
}

static void
test_format_is_always_one_line(void)
{
	DirRoute r = { .kind = DIR_ROUTE_ERROR, .reason = (char *)"two\nlines\r" };
	DirRoute u = { .kind = DIR_ROUTE_UNKNOWN };
	char *s = dir_route_format(&r), *t = dir_route_format(&u);

	EXPECT(strcmp(s, "error two lines ") == 0, "control characters blanked (%s)", s);
	EXPECT(strcmp(t, "unknown") == 0, "unknown is one word");
	g_free(s);
	g_free(t);
}

static const CuTest tests[] = {
	{ "SPEC 3.2: a remote user goes over the link with the peer's proxy",
	  test_spec_3_2_remote_user_goes_over_the_link_with_the_peers_proxy },
	{ "a remote entry without a proxy in its site's domains is an error",
	  test_remote_entry_without_a_proxy_in_its_sites_domains_is_an_error },
	{ "an entry at a site without a link is an error",
	  test_entry_at_a_site_without_a_link_is_an_error },
	{ "a local mailbox goes to its postoffice", test_local_mailbox_goes_to_its_postoffice },
	{ "a mailbox of a postoffice no longer served is an error",
	  test_mailbox_of_a_postoffice_no_longer_served_is_an_error },
	{ "a list expands nested, cycle-safe, without duplicates",
	  test_list_expands_nested_cycle_safe_without_duplicates },
	{ "a list leaf without a usable proxy is its legacy address",
	  test_list_leaf_without_a_usable_proxy_is_its_legacy_address },
	{ "lists nested too deep are an error", test_lists_nested_too_deep_are_an_error },
	{ "a custom goes to its target, which is never ours",
	  test_custom_goes_to_its_target_which_is_never_ours },
	{ "external domains and unknown recipients", test_external_and_unknown },
	{ "postmaster goes to [site] postmaster", test_postmaster_goes_to_the_site_postmaster },
	{ "local parts compare without case", test_local_parts_compare_without_case },
	{ "a quoted local part reaches nobody of ours",
	  test_a_quoted_local_part_reaches_nobody_of_ours },
	{ "bad syntax is an error", test_bad_syntax_is_an_error },
	{ "the line is always one line", test_format_is_always_one_line },
	{ NULL, NULL },
};

int
main(void)
{
	pg_log_set_threshold(PG_LOG_ERROR);
	return cu_run_in_tmpdir("dir_route", tests, &tmpdir);
}
