/* sync_write.c - the sync file writer: a document checked as the reader
 * would check it, then written in canonical order (see sync_xml.h,
 * sync_xml_int.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/SAX2.h>
#include <libxml/xmlerror.h>

#include "address.h"
#include "atomic_write.h"
#include "pg_log.h"
#include "sync_xml_int.h"

/* ---- the writer ------------------------------------------------------------ */

typedef struct {
	GString *out;
	const SyncDoc *doc;
	GError *error;
	GHashTable *keys;          /* name, address or id -> entry number */
	GStringChunk *key_chunk;
	char *po;                  /* canonical NET/PO of a postoffice export */
} Writer;

static void wfail(Writer *w, guint n, const DirEntry *e, SyncError code, const char *fmt, ...)
    G_GNUC_PRINTF(5, 6);

/* Refuse to write entry n (from 1), or the header when e is NULL. */
static void
wfail(Writer *w, guint n, const DirEntry *e, SyncError code, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	if (w->error)
		return;
	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	if (e) {
		const char *who = e->id ? e->id : e->legacy ? e->legacy : "?";
		char *q = pg_shown(who, -1, 80, TRUE);
		w->error = g_error_new(SYNC_ERROR, code, "cannot write a %s sync file: entry %u "
		    "(%s): %s", sync_kind_name(w->doc->kind), n, q, msg);
		g_free(q);
	} else {
		w->error = g_error_new(SYNC_ERROR, code, "cannot write a %s sync file: %s",
		    sync_kind_name(w->doc->kind), msg);
	}
	g_free(msg);
}

/* Append text escaped for an attribute value or element content. */
static void
escape(GString *out, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': g_string_append(out, "&amp;"); break;
		case '<': g_string_append(out, "&lt;"); break;
		case '>': g_string_append(out, "&gt;"); break;
		case '"': g_string_append(out, "&quot;"); break;
		case '\t': g_string_append(out, "&#9;"); break;
		case '\n': g_string_append(out, "&#10;"); break;
		case '\r': g_string_append(out, "&#13;"); break;
		default: g_string_append_c(out, *s); break;
		}
	}
}

static void
put_attr(GString *out, const char *name, const char *value)
{
	g_string_append_c(out, ' ');
	g_string_append(out, name);
	g_string_append(out, "=\"");
	escape(out, value);
	g_string_append_c(out, '"');
}

static void
put_number(GString *out, const char *name, guint64 v)
{
	g_string_append_printf(out, " %s=\"%" G_GUINT64_FORMAT "\"", name, v);
}

static gboolean
wclaim(Writer *w, guint n, const DirEntry *e, const char *what, const char *key)
{
	gpointer old;

	if (g_hash_table_lookup_extended(w->keys, key, NULL, &old)) {
		wfail(w, n, e, SYNC_ERROR_SCHEMA, "%s %s is also that of entry %u", what, key,
		    GPOINTER_TO_UINT(old));
		return FALSE;
	}
	g_hash_table_insert(w->keys, g_string_chunk_insert(w->key_chunk, key),
	    GUINT_TO_POINTER(n));
	return TRUE;
}

/* The canonical legacy address of e, or NULL after wfail. */
static char *
wlegacy(Writer *w, guint n, const DirEntry *e, const char *text)
{
	char *why = NULL, *c;

	if (!text) {
		wfail(w, n, e, SYNC_ERROR_SCHEMA, "no legacy address");
		return NULL;
	}
	if (!(c = sx_canon_legacy(text, strlen(text), &why))) {
		wfail(w, n, e, SYNC_ERROR_SCHEMA, "%s", why);
		g_free(why);
	}
	return c;
}

static gboolean
wdisplay(Writer *w, guint n, const DirEntry *e)
{
	const char *why = e->name ? dir_check_display(e->name, strlen(e->name)) : NULL;

	if (why)
		wfail(w, n, e, SYNC_ERROR_SCHEMA, "%s", why);
	return why == NULL;
}

static gboolean
wsite(Writer *w, guint n, const DirEntry *e, const char *what, const char *site)
{
	if (!site || !dir_check_site(site, strlen(site))) {
		char *q = site ? pg_shown(site, -1, 80, TRUE) : g_strdup("none");
		wfail(w, n, e, SYNC_ERROR_SCHEMA, "%s %s is not a site name", what, q);
		g_free(q);
		return FALSE;
	}
	return TRUE;
}

/* Canonical target (local@domain, no prefix) of a custom entry; NULL when it
 * has none (allowed for a tombstone) or after wfail. */
static char *
wtarget(Writer *w, guint n, const DirEntry *e)
{
	char *why = NULL, *t;

	if (!e->target) {
		if (e->type == DIR_CUSTOM && !e->deleted)
			wfail(w, n, e, SYNC_ERROR_SCHEMA, "a custom recipient without a target");
		return NULL;
	}
	if (e->type != DIR_CUSTOM) {
		wfail(w, n, e, SYNC_ERROR_SCHEMA, "a %s with a target", dir_type_name(e->type));
		return NULL;
	}
	if (!(t = sx_canon_target(e->target, strlen(e->target), &why))) {
		wfail(w, n, e, SYNC_ERROR_SCHEMA, "target: %s", why);
		g_free(why);
		return NULL;
	}
	memmove(t, t + 5, strlen(t + 5) + 1);
	return t;
}

/* Canonical members of e (legacy addresses), checked; NULL after wfail. */
static GPtrArray *
wmembers(Writer *w, guint n, const DirEntry *e)
{
	GPtrArray *m = g_ptr_array_new_with_free_func(g_free);
	GHashTable *seen = g_hash_table_new(g_str_hash, g_str_equal);

	if (e->members->len > 0 && e->type != DIR_LIST)
		wfail(w, n, e, SYNC_ERROR_SCHEMA, "a %s with members", dir_type_name(e->type));
	else if (e->members->len > DIR_MAX_MEMBERS)
		wfail(w, n, e, SYNC_ERROR_LIMIT, "more than %u members", DIR_MAX_MEMBERS);
	for (guint i = 0; i < e->members->len && !w->error; i++) {
		char *c = wlegacy(w, n, e, e->members->pdata[i]);
		if (!c)
			break;
		if (g_hash_table_contains(seen, c)) {
			wfail(w, n, e, SYNC_ERROR_SCHEMA, "member %s twice", c);
			g_free(c);
			break;
		}
		g_ptr_array_add(m, c);
		g_hash_table_add(seen, c);
	}
	g_hash_table_unref(seen);
	if (w->error) {
		g_ptr_array_unref(m);
		return NULL;
	}
	return m;
}

/* Canonical proxies of e, checked (one primary when live); NULL after wfail. */
static GPtrArray *
wproxies(Writer *w, guint n, const DirEntry *e)
{
	GPtrArray *p = g_ptr_array_new_with_free_func(g_free);
	guint primaries = 0;

	if (e->proxies->len > DIR_MAX_PROXIES)
		wfail(w, n, e, SYNC_ERROR_LIMIT, "more than %u proxies", DIR_MAX_PROXIES);
	for (guint i = 0; i < e->proxies->len && !w->error; i++) {
		const char *text = e->proxies->pdata[i];
		char *why = NULL, *c = sx_canon_proxy(text, strlen(text), &why);
		if (!c) {
			wfail(w, n, e, SYNC_ERROR_SCHEMA, "%s", why);
			g_free(why);
			break;
		}
		for (guint j = 0; j < p->len; j++)
			if (strcmp((char *)p->pdata[j] + 5, c + 5) == 0)
				wfail(w, n, e, SYNC_ERROR_SCHEMA, "proxy %s twice", c + 5);
		primaries += c[0] == 'S';
		g_ptr_array_add(p, c);
	}
	if (!w->error && primaries > 1)
		wfail(w, n, e, SYNC_ERROR_SCHEMA, "%u primary SMTP: proxies", primaries);
	if (!w->error && primaries == 0 && !e->deleted)
		wfail(w, n, e, SYNC_ERROR_SCHEMA, "no primary SMTP: proxy");
	if (w->error) {
		g_ptr_array_unref(p);
		return NULL;
	}
	return p;
}

static void
write_po_entry(Writer *w, guint n, const DirEntry *e)
{
	static const char *const el[] = { "mailbox", "custom", "list" };
	char *legacy = wlegacy(w, n, e, e->legacy), *target = NULL;
	const char *name;
	GPtrArray *members = NULL;
	size_t polen = strlen(w->po);

	if (!legacy)
		return;
	if (strncmp(legacy, w->po, polen) != 0 || legacy[polen] != '/') {
		wfail(w, n, e, SYNC_ERROR_SCHEMA, "%s is not at the postoffice %s", legacy, w->po);
		goto out;
	}
	name = legacy + polen + 1;
	if ((guint)e->type > DIR_LIST) {
		wfail(w, n, e, SYNC_ERROR_SCHEMA, "an unknown type %d", (int)e->type);
		goto out;
	}
	if (!wclaim(w, n, e, "the name", name) || !wdisplay(w, n, e))
		goto out;
	target = wtarget(w, n, e);
	if (w->error || !(members = wmembers(w, n, e)))
		goto out;
	g_string_append_printf(w->out, "  <%s", el[e->type]);
	put_attr(w->out, "name", name);
	if (e->name && e->name[0])
		put_attr(w->out, "display", e->name);
	if (target)
		put_attr(w->out, "target", target);
	if (members->len == 0) {
		g_string_append(w->out, "/>\n");
		goto out;
	}
	g_string_append(w->out, ">\n");
	for (guint i = 0; i < members->len; i++) {
		g_string_append(w->out, "    <member");
		put_attr(w->out, "address", members->pdata[i]);
		g_string_append(w->out, "/>\n");
	}
	g_string_append_printf(w->out, "  </%s>\n", el[e->type]);
out:
	if (members)
		g_ptr_array_unref(members);
	g_free(target);
	g_free(legacy);
}

static void
write_gal_entry(Writer *w, guint n, const DirEntry *e)
{
	char *legacy = wlegacy(w, n, e, e->legacy), *smtp = NULL, *why = NULL;
	const char *primary = dir_primary(e);

	if (!legacy)
		return;
	if ((guint)e->type > DIR_LIST)
		wfail(w, n, e, SYNC_ERROR_SCHEMA, "an unknown type %d", (int)e->type);
	else if (wclaim(w, n, e, "the address", legacy) && wdisplay(w, n, e) && primary &&
	    !(smtp = sx_canon_smtp(primary + 5, strlen(primary + 5), &why))) {
		wfail(w, n, e, SYNC_ERROR_SCHEMA, "%s", why);
		g_free(why);
	}
	if (!w->error) {
		g_string_append(w->out, "  <entry");
		put_attr(w->out, "type", dir_type_name(e->type));
		put_attr(w->out, "address", legacy);
		if (e->name && e->name[0])
			put_attr(w->out, "display", e->name);
		if (smtp)
			put_attr(w->out, "smtp", smtp);
		g_string_append(w->out, "/>\n");
	}
	g_free(smtp);
	g_free(legacy);
}

/* <change> (replication) or <entry> (canonical). */
static void
write_full_entry(Writer *w, guint n, const DirEntry *e)
{
	const gboolean change = w->doc->kind == SYNC_REPLICATION;
	const char *tag = change ? "change" : "entry";
	char *legacy = NULL, *target = NULL;
	GPtrArray *proxies = NULL, *members = NULL;

	if (!e->id || !dir_check_id(e->id, strlen(e->id))) {
		wfail(w, n, e, SYNC_ERROR_SCHEMA, "no id, or not 1-64 of A-Z a-z 0-9 . _ : -");
		return;
	}
	if ((guint)e->type > DIR_LIST) {
		wfail(w, n, e, SYNC_ERROR_SCHEMA, "an unknown type %d", (int)e->type);
		return;
	}
	if (!wclaim(w, n, e, "the id", e->id) || !wsite(w, n, e, "home", e->home_site) ||
	    (change && !wsite(w, n, e, "origin", e->origin)) ||
	    !(legacy = wlegacy(w, n, e, e->legacy)) || !wdisplay(w, n, e))
		goto out;
	if (change && (e->usn < 1 || e->usn > (guint64)G_MAXINT64 || e->version < 1 ||
	    e->version > (guint64)G_MAXINT64 || e->changed < 0)) {
		wfail(w, n, e, SYNC_ERROR_SCHEMA, "usn and version must be at least 1, changed "
		    "at least 0");
		goto out;
	}
	target = wtarget(w, n, e);
	if (w->error || !(proxies = wproxies(w, n, e)) || !(members = wmembers(w, n, e)))
		goto out;
	if (!change) {
		g_ptr_array_sort(proxies, sx_compare_str);
		g_ptr_array_sort(members, sx_compare_str);
	}
	g_string_append_printf(w->out, "  <%s", tag);
	put_attr(w->out, "id", e->id);
	put_attr(w->out, "type", dir_type_name(e->type));
	if (change) {
		put_attr(w->out, "origin", e->origin);
		put_number(w->out, "usn", e->usn);
		put_number(w->out, "version", e->version);
		put_number(w->out, "changed", (guint64)e->changed);
	}
	put_attr(w->out, "home", e->home_site);
	put_attr(w->out, "legacy", legacy);
	if (e->name && e->name[0])
		put_attr(w->out, "display", e->name);
	if (target)
		put_attr(w->out, "target", target);
	if (change || e->deleted)
		put_attr(w->out, "deleted", e->deleted ? "true" : "false");
	if (proxies->len + members->len == 0) {
		g_string_append(w->out, "/>\n");
		goto out;
	}
	g_string_append(w->out, ">\n");
	for (guint i = 0; i < proxies->len; i++) {
		g_string_append(w->out, "    <proxy>");
		escape(w->out, proxies->pdata[i]);
		g_string_append(w->out, "</proxy>\n");
	}
	for (guint i = 0; i < members->len; i++) {
		g_string_append(w->out, "    <member>");
		escape(w->out, members->pdata[i]);
		g_string_append(w->out, "</member>\n");
	}
	g_string_append_printf(w->out, "  </%s>\n", tag);
out:
	if (proxies)
		g_ptr_array_unref(proxies);
	if (members)
		g_ptr_array_unref(members);
	g_free(target);
	g_free(legacy);
}

static void
write_vector(Writer *w)
{
	GList *sites = g_list_sort(g_hash_table_get_keys(w->doc->vector), sx_compare_plain);

	if (g_hash_table_size(w->doc->vector) > SYNC_MAX_SITES)
		wfail(w, 0, NULL, SYNC_ERROR_LIMIT, "more than %u sites in the vector",
		    SYNC_MAX_SITES);
	for (GList *l = sites; l && !w->error; l = l->next) {
		const guint64 *usn = g_hash_table_lookup(w->doc->vector, l->data);
		if (!dir_check_site(l->data, strlen(l->data)) || !usn ||
		    *usn > (guint64)G_MAXINT64) {
			char *q = pg_shown(l->data, -1, 80, TRUE);
			wfail(w, 0, NULL, SYNC_ERROR_SCHEMA, "vector: %s is not a site name with a "
			    "USN", q);
			g_free(q);
		}
	}
	if (!w->error && sites) {
		g_string_append(w->out, "  <vector>\n");
		for (GList *l = sites; l; l = l->next) {
			g_string_append(w->out, "    <seen");
			put_attr(w->out, "site", l->data);
			put_number(w->out, "usn", *(guint64 *)g_hash_table_lookup(w->doc->vector,
			    l->data));
			g_string_append(w->out, "/>\n");
		}
		g_string_append(w->out, "  </vector>\n");
	}
	g_list_free(sites);
}

static void
write_header(Writer *w)
{
	const SyncDoc *doc = w->doc;
	GString *out = w->out;

	g_string_append(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
	g_string_append(out, "<sync");
	put_attr(out, "xmlns", SYNC_NAMESPACE);
	put_attr(out, "version", SYNC_VERSION);
	put_attr(out, "kind", sync_kind_name(doc->kind));
	if (doc->kind == SYNC_POSTOFFICE || doc->kind == SYNC_GAL) {
		char net[ADDR_PART_MAX + 1], po[ADDR_PART_MAX + 1];
		GError *e = NULL;
		if (!doc->postoffice) {
			wfail(w, 0, NULL, SYNC_ERROR_SCHEMA, "no postoffice");
			return;
		}
		if (!addr_parse_po(doc->postoffice, strlen(doc->postoffice), net, po, &e)) {
			wfail(w, 0, NULL, SYNC_ERROR_SCHEMA, "%s", e->message);
			g_error_free(e);
			return;
		}
		/* written canonically: the entries' addresses are compared with it */
		w->po = g_strdup_printf("%s/%s", net, po);
		put_attr(out, "postoffice", w->po);
	} else if (doc->kind == SYNC_REPLICATION) {
		if (!doc->from_site || !dir_check_site(doc->from_site, strlen(doc->from_site)) ||
		    !doc->for_site || !dir_check_site(doc->for_site, strlen(doc->for_site)) ||
		    strcmp(doc->from_site, doc->for_site) == 0) {
			wfail(w, 0, NULL, SYNC_ERROR_SCHEMA, "from and for must be two site names");
			return;
		}
		put_attr(out, "from", doc->from_site);
		put_attr(out, "for", doc->for_site);
	} else if (doc->kind != SYNC_CANONICAL) {
		wfail(w, 0, NULL, SYNC_ERROR_SCHEMA, "unknown kind %d", (int)doc->kind);
		return;
	}
	g_string_append(out, ">\n");
	if (doc->kind == SYNC_REPLICATION)
		write_vector(w);
}

gboolean
sync_write(const SyncDoc *doc, GString *out, GError **error)
{
	Writer w = { .out = out, .doc = doc };
	gsize start = out->len;

	w.keys = g_hash_table_new(g_str_hash, g_str_equal);
	w.key_chunk = g_string_chunk_new(64 * 1024);
	if (doc->entries->len > sx_limit_entries)
		wfail(&w, 0, NULL, SYNC_ERROR_LIMIT, "more than %u entries", sx_limit_entries);
	else
		write_header(&w);
	for (guint i = 0; i < doc->entries->len && !w.error; i++) {
		const DirEntry *e = doc->entries->pdata[i];
		switch (doc->kind) {
		case SYNC_POSTOFFICE:
			write_po_entry(&w, i + 1, e);
			break;
		case SYNC_GAL:
			write_gal_entry(&w, i + 1, e);
			break;
		default:
			write_full_entry(&w, i + 1, e);
			break;
		}
	}
	g_hash_table_unref(w.keys);
	g_string_chunk_free(w.key_chunk);
	g_free(w.po);
	if (w.error) {
		g_string_truncate(out, start);
		g_propagate_error(error, w.error);
		return FALSE;
	}
	g_string_append(out, "</sync>\n");
	return TRUE;
}

gboolean
sync_write_file(const SyncDoc *doc, const char *path, GError **error)
{
	GString *out = g_string_new(NULL);
	gboolean ok = sync_write(doc, out, error);

	if (ok && (!path || strcmp(path, "-") == 0)) {
		if (fwrite(out->str, 1, out->len, stdout) != out->len || fflush(stdout) != 0) {
			int e = errno;
			g_set_error(error, SYNC_ERROR, SYNC_ERROR_IO, "standard output: %s",
			    g_strerror(e));
			ok = FALSE;
		}
	} else if (ok) {
		size_t len = strlen(path);
		char *dir = g_path_get_dirname(path), *base = g_path_get_basename(path);
		GError *e = NULL;
		if (len == 0 || path[len - 1] == '/') {
			g_set_error(error, SYNC_ERROR, SYNC_ERROR_IO, "%s: not a file name", path);
			ok = FALSE;
		} else if (!atomic_write_file(dir, base, out->str, out->len, 0644, &e)) {
			g_set_error(error, SYNC_ERROR, SYNC_ERROR_IO, "%s", e->message);
			g_error_free(e);
			ok = FALSE;
		}
		g_free(dir);
		g_free(base);
	}
	g_string_free(out, TRUE);
	return ok;
}
