/* dir_cmd.c - `postgate dir` (see dir_cmd.h). */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "address.h"
#include "cli/dir_cmd.h"
#include "dir_route.h"
#include "pg_log.h"
#include "site.h"
#include "sync_xml.h"

static const char usage_text[] =
    "usage: postgate [-c FILE] dir import FILE...\n"
    "       postgate [-c FILE] dir export --po NET/PO [-o FILE]\n"
    "       postgate [-c FILE] dir export --for SITE [-o FILE]\n"
    "       postgate [-c FILE] dir export --canonical [-o FILE]\n"
    "       postgate [-c FILE] dir lookup ADDRESS\n"
    "       postgate [-c FILE] dir route ADDRESS\n"
    "       postgate [-c FILE] dir list [--type mailbox|custom|dl]\n"
    "       postgate [-c FILE] dir stats\n";

static int
usage(const char *why)
{
	if (why)
		pg_error(NULL, "dir: %s", why);
	fputs(usage_text, stderr);
	return EX_USAGE;
}

static int
fail(GError *e, int code)
{
	fprintf(stderr, "%s\n", e->message);
	g_error_free(e);
	return code;
}

static int
data_code(const GError *e)
{
	if (e->domain == SYNC_ERROR)
		return e->code == SYNC_ERROR_IO ? EX_NOINPUT : EX_DATAERR;
	if (e->domain == DIR_ERROR)
		return e->code == DIR_ERROR_IO ? EX_IOERR : EX_DATAERR;
	return EX_SOFTWARE;
}

/* One import, streamed: entries go to the store as the reader checks them,
 * so a file of a million entries never sits in memory.  The store applies
 * nothing until the commit. */
typedef struct {
	Site *site;
	const char *file;
	DirImport *im;
	SyncKind kind;
	const char *only_po;    /* a postoffice's own export of this one, or NULL */
} Streamed;

static gboolean
on_header(const SyncDoc *head, gpointer data, GError **error)
{
	Streamed *st = data;

	st->kind = head->kind;
	if (st->only_po && (head->kind != SYNC_POSTOFFICE ||
	    g_strcmp0(head->postoffice, st->only_po) != 0)) {
		g_set_error(error, SYNC_ERROR, SYNC_ERROR_SCHEMA, "%s: from %s, only that "
		    "postoffice's own export may come, not a %s file%s%s", st->file, st->only_po,
		    sync_kind_name(head->kind), head->postoffice ? " of " : "",
		    head->postoffice ? head->postoffice : "");
		return FALSE;
	}
	st->im = dir_import_begin(st->site->dir, &st->site->ctx, head, error);
	if (!st->im)
		g_prefix_error(error, "%s: ", st->file);
	return st->im != NULL;
}

static gboolean
on_entry(DirEntry *e, guint line, gpointer data, GError **error)
{
	Streamed *st = data;
	gboolean ok = dir_import_entry(st->im, e, error);

	if (!ok)
		g_prefix_error(error, "%s:%u: ", st->file, line);
	dir_entry_free(e);
	return ok;
}

gboolean
dir_cmd_import_memory(Site *site, const char *name, const char *buf, size_t len,
    const char *only_po, DirImportStats *stats, GError **error)
{
	static const SyncSink sink = { on_header, on_entry };
	Streamed st = { site, name, NULL, SYNC_POSTOFFICE, only_po };
	gboolean ok = sync_read_memory_each(name, buf, len, &sink, &st, error);

	if (ok)
		return dir_import_commit(st.im, stats, error);
	dir_import_abort(st.im);
	return FALSE;
}

static int
cmd_import(Site *site, int argc, char **argv)
{
	static const SyncSink sink = { on_header, on_entry };
	int rc = EX_OK;

	if (argc < 2)
		return usage("import needs at least one FILE");
	/* One proxy map for the lot, not one per file. */
	dir_map_defer(site->dir, TRUE);
	for (int i = 1; i < argc; i++) {
		GError *e = NULL;
		DirImportStats stats = { 0 };
		Streamed st = { site, argv[i], NULL, SYNC_POSTOFFICE, NULL };
		gboolean ok = sync_read_file_each(argv[i], &sink, &st, &e);

		if (ok)
			ok = dir_import_commit(st.im, &stats, &e);
		else
			dir_import_abort(st.im);
		if (!ok) {
			/* Refused whole: the directory is as it was. */
			int code = data_code(e);
			if (!g_str_has_prefix(e->message, argv[i]))
				g_prefix_error(&e, "%s: ", argv[i]);
			fail(e, code);
			if (rc == EX_OK || code != EX_DATAERR)
				rc = code;
			continue;
		}
		printf("%s: %s: %u added, %u changed, %u deleted, %u unchanged, %u ignored, "
		    "%u proxy losses\n", argv[i], sync_kind_name(st.kind), stats.added,
		    stats.changed, stats.deleted, stats.unchanged, stats.ignored,
		    stats.proxy_losses);
	}
	dir_map_defer(site->dir, FALSE);
	return rc;
}

static int
cmd_export(Site *site, int argc, char **argv)
{
	char *po = NULL, *for_site = NULL, *out = NULL;
	gboolean canonical = FALSE;
	GOptionEntry entries[] = {
		{ "po", 0, 0, G_OPTION_ARG_STRING, &po, "global address list for NET/PO", "NET/PO" },
		{ "for", 0, 0, G_OPTION_ARG_STRING, &for_site, "replication for SITE", "SITE" },
		{ "canonical", 0, 0, G_OPTION_ARG_NONE, &canonical, "the whole directory, sorted", NULL },
		{ "output", 'o', 0, G_OPTION_ARG_FILENAME, &out, "write FILE (default stdout)", "FILE" },
		G_OPTION_ENTRY_NULL,
	};
	GOptionContext *oc = g_option_context_new("export");
	GError *e = NULL;
	SyncDoc *doc = NULL;
	int rc = EX_OK;

	g_option_context_add_main_entries(oc, entries, NULL);
	if (!g_option_context_parse(oc, &argc, &argv, &e)) {
		rc = usage(e->message);
		g_clear_error(&e);
		goto out;
	}
	if (argc != 1 || (po != NULL) + (for_site != NULL) + canonical != 1) {
		rc = usage("export needs exactly one of --po, --for, --canonical");
		goto out;
	}
	if (po)
		doc = dir_export_gal(site->dir, &site->ctx, po, &e);
	else if (for_site)
		doc = dir_export_replication(site->dir, &site->ctx, for_site, &e);
	else
		doc = dir_export_canonical(site->dir, &e);
	if (!doc || !sync_write_file(doc, out, &e))
		rc = fail(e, e->domain == DIR_ERROR && e->code != DIR_ERROR_IO ? EX_DATAERR :
		    EX_IOERR);
out:
	sync_doc_free(doc);
	g_option_context_free(oc);
	g_free(po);
	g_free(for_site);
	g_free(out);
	return rc;
}

static void
print_entry(const DirEntry *e)
{
	printf("id:        %s\n", e->id ? e->id : "");
	printf("type:      %s\n", dir_type_name(e->type));
	printf("legacy:    %s\n", e->legacy);
	printf("home site: %s\n", e->home_site ? e->home_site : "");
	printf("name:      %s\n", e->name ? e->name : "");
	if (e->target)
		printf("target:    %s\n", e->target);
	for (guint i = 0; i < e->proxies->len; i++)
		printf("proxy:     %s\n", (char *)e->proxies->pdata[i]);
	for (guint i = 0; i < e->members->len; i++)
		printf("member:    %s\n", (char *)e->members->pdata[i]);
	if (e->origin)
		printf("changed:   by %s, usn %" G_GUINT64_FORMAT ", version %" G_GUINT64_FORMAT "\n",
		    e->origin, e->usn, e->version);
}

/* An address argument as `submit` takes one too: bare or in angle brackets. */
static char *
address_arg(const char *arg)
{
	size_t len = strlen(arg);

	if (len >= 2 && arg[0] == '<' && arg[len - 1] == '>')
		return g_strndup(arg + 1, len - 2);
	return g_strdup(arg);
}

static int
cmd_lookup(Site *site, int argc, char **argv)
{
	GError *e = NULL;
	DirEntry *entry;
	char *address;

	if (argc != 2)
		return usage("lookup needs ADDRESS");
	address = address_arg(argv[1]);
	entry = dir_lookup(site->dir, address, &e);
	g_free(address);
	if (!entry && e)
		return fail(e, data_code(e));
	if (!entry) {
		fprintf(stderr, "postgate: %s: no such entry\n", argv[1]);
		return EX_NOUSER;
	}
	print_entry(entry);
	dir_entry_free(entry);
	return EX_OK;
}

static int
cmd_route(Site *site, int argc, char **argv)
{
	GError *e = NULL;
	DirRoute *r;
	char *line, *address;
	int rc = EX_OK;

	if (argc != 2)
		return usage("route needs ADDRESS");
	address = address_arg(argv[1]);
	r = dir_route(site->dir, &site->ctx, address, &e);
	g_free(address);
	if (!r)
		return fail(e, data_code(e));
	line = dir_route_format(r);
	printf("%s\n", line);
	if (r->kind == DIR_ROUTE_UNKNOWN)
		rc = EX_NOUSER;
	else if (r->kind == DIR_ROUTE_ERROR)
		rc = EX_DATAERR;
	g_free(line);
	dir_route_free(r);
	return rc;
}

static int
cmd_list(Site *site, int argc, char **argv)
{
	char *type = NULL;
	GOptionEntry entries[] = {
		{ "type", 0, 0, G_OPTION_ARG_STRING, &type, "only entries of TYPE", "mailbox|custom|dl" },
		G_OPTION_ENTRY_NULL,
	};
	GOptionContext *oc = g_option_context_new("list");
	GError *e = NULL;
	GPtrArray *a;
	DirType t = DIR_MAILBOX;
	int want = -1, rc = EX_OK;

	g_option_context_add_main_entries(oc, entries, NULL);
	if (!g_option_context_parse(oc, &argc, &argv, &e)) {
		rc = usage(e->message);
		g_clear_error(&e);
		goto out;
	}
	if (type) {
		if (strcmp(type, "dl") == 0)
			t = DIR_LIST;
		else if (!dir_type_parse(type, &t)) {
			rc = usage("--type is mailbox, custom or dl");
			goto out;
		}
		want = (int)t;
	}
	if (argc != 1) {
		rc = usage("list takes no arguments");
		goto out;
	}
	a = dir_list(site->dir, want, &e);
	if (!a) {
		rc = fail(e, data_code(e));
		goto out;
	}
	for (guint i = 0; i < a->len; i++) {
		DirEntry *x = a->pdata[i];
		const char *p = dir_primary(x);
		printf("%s %s %s %s\n", x->type == DIR_LIST ? "dl" : dir_type_name(x->type),
		    x->legacy, p ? p : "-", x->name ? x->name : "");
	}
	g_ptr_array_unref(a);
out:
	g_option_context_free(oc);
	g_free(type);
	return rc;
}

static int
cmd_stats(Site *site, int argc)
{
	DirStats st = { 0 };
	GError *e = NULL;
	GList *keys;

	if (argc != 1)
		return usage("stats takes no arguments");
	if (!dir_stats(site->dir, &st, &e))
		return fail(e, data_code(e));
	printf("mailboxes %u\ncustom %u\nlists %u\ntombstones %u\nproxies %u\n"
	    "proxy losses %u\nusn %" G_GUINT64_FORMAT "\ngeneration %" G_GUINT64_FORMAT "\n"
	    "proxy map %s\n", st.mailboxes, st.customs, st.lists, st.tombstones, st.proxies,
	    st.proxy_losses, st.usn, (guint64)st.generation, st.map_current ? "current" : "stale");
	if (st.vector) {
		keys = g_list_sort(g_hash_table_get_keys(st.vector), (GCompareFunc)strcmp);
		for (GList *l = keys; l; l = l->next)
			printf("seen %s %" G_GUINT64_FORMAT "\n", (char *)l->data,
			    *(guint64 *)g_hash_table_lookup(st.vector, l->data));
		g_list_free(keys);
		g_hash_table_unref(st.vector);
	}
	return EX_OK;
}

int
dir_cmd_main(const char *config_file, int argc, char **argv)
{
	Site *site;
	const char *sub;
	int rc;

	if (argc < 2)
		return usage("no dir command given");
	sub = argv[1];
	if (!g_strv_contains((const char *[]){ "import", "export", "lookup", "route", "list",
	    "stats", NULL }, sub))
		return usage("unknown dir command");
	site = site_open_command(config_file, 0, NULL, NULL, &rc);
	if (!site)
		return rc;
	argc--;
	argv++;
	if (strcmp(sub, "import") == 0)
		rc = cmd_import(site, argc, argv);
	else if (strcmp(sub, "export") == 0)
		rc = cmd_export(site, argc, argv);
	else if (strcmp(sub, "lookup") == 0)
		rc = cmd_lookup(site, argc, argv);
	else if (strcmp(sub, "route") == 0)
		rc = cmd_route(site, argc, argv);
	else if (strcmp(sub, "list") == 0)
		rc = cmd_list(site, argc, argv);
	else
		rc = cmd_stats(site, argc);
	site_close(site);
	if (fflush(stdout) != 0 && rc == EX_OK)
		rc = EX_IOERR;
	return rc;
}
