/* dir_import.c - a directory import: its transaction, a postoffice's entries,
 * the sweep of what a postoffice no longer lists, clashes, vectors, the commit;
 * and the writing of states and proxies (see dir_store_int.h). */
#include "config.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dir_store_int.h"
#include "pg_log.h"

/* ------------------------------------------------------------- writing */

/* Insert (rid 0) or overwrite (rid) a state; the new rid into *out. */
gboolean
ds_state_write(DirStore *d, const DirEntry *e, gint64 rid, gint64 *out, GError **error)
{
	sqlite3_stmt *st = pg_db_stmt(d->pg, rid ? ST_UPDATE : ST_INSERT, error);
	char *proxies, *members;
	gboolean ok;

	if (!st)
		return FALSE;
	proxies = ds_join(e->proxies);
	members = ds_join(e->members);
	pg_db_bind_text(st, 1, e->id);
	sqlite3_bind_int(st, 2, (int)e->type);
	pg_db_bind_text(st, 3, e->legacy);
	pg_db_bind_text(st, 4, e->home_site);
	pg_db_bind_text(st, 5, e->name);
	pg_db_bind_text(st, 6, e->target);
	pg_db_bind_text(st, 7, proxies);
	pg_db_bind_text(st, 8, members);
	sqlite3_bind_int(st, 9, e->deleted ? 1 : 0);
	pg_db_bind_text(st, 10, e->origin);
	sqlite3_bind_int64(st, 11, (sqlite3_int64)e->usn);
	sqlite3_bind_int64(st, 12, (sqlite3_int64)e->version);
	sqlite3_bind_int64(st, 13, e->changed);
	if (rid)
		sqlite3_bind_int64(st, 14, rid);
	ok = pg_db_run(d->pg, st, error, "write an entry");
	d->dirty = TRUE;
	g_free(proxies);
	g_free(members);
	if (ok && out)
		*out = rid ? rid : sqlite3_last_insert_rowid(d->db);
	return ok;
}

gboolean
ds_proxy_del(DirStore *d, const char *key, gint64 rid, GError **error)
{
	sqlite3_stmt *st = pg_db_stmt(d->pg, ST_PROXY_DEL, error);

	if (!st)
		return FALSE;
	pg_db_bind_text(st, 1, key);
	sqlite3_bind_int64(st, 2, rid);
	d->dirty = TRUE;
	return pg_db_run(d->pg, st, error, "write a proxy");
}

/* A claim of key by the live state e of entry rid; all, e's proxies joined,
 * goes on the primary's row. */
static gboolean
proxy_add(DirStore *d, const char *key, const DirEntry *e, gint64 rid, const char *all,
    GError **error)
{
	sqlite3_stmt *st = pg_db_stmt(d->pg, ST_PROXY_ADD, error);

	if (!st)
		return FALSE;
	pg_db_bind_text(st, 1, key);
	pg_db_bind_text(st, 2, e->origin);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)e->usn);
	sqlite3_bind_int64(st, 4, rid);
	sqlite3_bind_int(st, 5, (int)e->type);
	pg_db_bind_text(st, 6, e->home_site);
	pg_db_bind_text(st, 7, e->legacy);
	pg_db_bind_text(st, 8, e->target);
	pg_db_bind_text(st, 9, all);
	d->dirty = TRUE;
	return pg_db_run(d->pg, st, error, "write a proxy");
}

/* Whether one of proxies has the key of key (the same address, the local
 * part compared without case). */
gboolean
ds_has_key(const GPtrArray *proxies, const char *key)
{
	for (guint i = 0; i < proxies->len; i++)
		if (g_ascii_strcasecmp((const char *)proxies->pdata[i] + 5, key) == 0)
			return TRUE;
	return FALSE;
}

/* The live entries other than rid that claim key, into rids. */
gboolean
ds_claimants(DirStore *d, const char *key, gint64 rid, GArray *rids, GError **error)
{
	sqlite3_stmt *st = pg_db_stmt(d->pg, ST_CLAIMANTS, error);
	int rc;

	if (!st)
		return FALSE;
	pg_db_bind_text(st, 1, key);
	sqlite3_bind_int64(st, 2, rid);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		gint64 r = sqlite3_column_int64(st, 0);
		g_array_append_val(rids, r);
	}
	pg_db_done(st);
	return rc == SQLITE_DONE || pg_db_fail(d->pg, error, "read proxy claims");
}

DirEntry *
ds_by_rid(DirStore *d, gint64 rid, gboolean *ok, GError **error)
{
	sqlite3_stmt *st = pg_db_stmt(d->pg, ST_BY_RID, error);

	*ok = st != NULL;
	if (!st)
		return NULL;
	sqlite3_bind_int64(st, 1, rid);
	return ds_fetch_entry(d, st, NULL, ok, error);
}

/* Bring the claims of entry rid from state old (NULL: none) to state new:
 * every row is written again, since each carries the state's stamp; each
 * key new claims that old did not, and that another live entry claims
 * too, is handed to clash().  With bar (a peer's state, in a replication
 * import), a key that an entry of this site claims is not claimed at all:
 * it is handed to bar() instead, whether old claimed it or not, so a claim
 * that lost to this site stays lost while this state lasts (SPEC 2).
 * Without bar (an entry of this site, in a postoffice import) every key new
 * claims is handed to clash() (a peer's claim stored beside ours, which a
 * database from before SPEC 2 was kept may hold, is dropped there), and a
 * key new no longer claims is given to no peer's entry: their claims of it
 * go too. */

gboolean
ds_proxies_update(DirImport *im, const DirEntry *old, const DirEntry *new, gint64 rid,
    ClashFunc clash, ClashFunc bar, GError **error)
{
	DirStore *d = im->d;
	GArray *rids = g_array_new(FALSE, FALSE, sizeof(gint64));
	char *all = ds_join(new->proxies);
	gboolean ok = TRUE;

	for (guint i = 0; ok && old && i < old->proxies->len; i++) {
		const char *p = old->proxies->pdata[i];

		ok = ds_proxy_del(d, p + 5, rid, error);
		if (ok && !bar && !old->deleted && (new->deleted || !ds_has_key(new->proxies, p + 5)))
			ok = ds_peer_claims_drop(im, p, rid, error);
	}
	for (guint i = 0; ok && !new->deleted && i < new->proxies->len; i++) {
		const char *p = new->proxies->pdata[i], *key = p + 5;
		gboolean fresh = !old || old->deleted || !ds_has_key(old->proxies, key);
		gint64 local = 0;

		g_array_set_size(rids, 0);
		ok = ds_claimants(d, key, rid, rids, error);
		if (ok && bar && rids->len > 0)
			ok = ds_local_claim(im, rids, &local, error);
		if (ok && local) {
			ok = bar(im, p, rid, local, error);
			continue;
		}
		ok = ok && proxy_add(d, key, new, rid, ds_is_primary(p) ? all : NULL, error);
		if (!ok || (bar && !fresh))
			continue;
		for (guint j = 0; ok && j < rids->len; j++)
			ok = clash(im, p, rid, g_array_index(rids, gint64, j), error);
	}
	g_array_unref(rids);
	g_free(all);
	return ok;
}

/* ------------------------------------------------------------ importing */

const char *
ds_ctx_po_find(const DirContext *ctx, const char *po)
{
	char net[ADDR_PART_MAX + 1], name[ADDR_PART_MAX + 1];

	for (const char *const *p = ctx->postoffices; p && *p; p++) {
		if (!addr_parse_po(*p, strlen(*p), net, name, NULL))
			continue;
		if (strncmp(po, net, strlen(net)) == 0 && po[strlen(net)] == '/' &&
		    strcmp(po + strlen(net) + 1, name) == 0)
			return *p;
	}
	return NULL;
}

/* Whether this site is authoritative for an entry: it is on a postoffice
 * this site serves (SPEC 2), where every entry this site's imports made is
 * homed.  Only this site's own postoffice imports change such an entry.  An
 * entry homed here on a postoffice no longer served (one that moved to
 * another site) is not: its new home's changes replace it. */
gboolean
ds_entry_is_ours(const DirContext *ctx, const DirEntry *e)
{
	const char *slash = strrchr(e->legacy, '/');
	char po[ADDR_PO_MAX + 1];

	if (!slash || (size_t)(slash - e->legacy) >= sizeof po)
		return FALSE;
	memcpy(po, e->legacy, (size_t)(slash - e->legacy));
	po[slash - e->legacy] = '\0';
	return ds_ctx_po_find(ctx, po) != NULL;
}

gboolean
ds_ctx_check(DirStore *d, const DirContext *ctx, GError **error)
{
	gboolean ok;
	char *site;

	if (!ctx || !ds_site_valid(ctx->site))
		return ds_invalid(error, NULL, "this site's name \"%s\" is not a site name "
		    "(1-%u of A-Z a-z 0-9 _ -)", ctx && ctx->site ? ctx->site : "",
		    DIR_SITE_MAX);
	site = ds_meta_get(d, "site", &ok, error);
	if (ok && site && strcmp(site, ctx->site) != 0)
		ok = ds_invalid(error, NULL, "%s belongs to site %s, but this site is named %s: "
		    "a site's name is the origin of its changes and cannot change",
		    d->path, site, ctx->site);
	g_free(site);
	return ok;
}

/* Expand one template for the legacy address a ("SMTP:..." or "smtp:..."). */
static char *
template_expand(const char *tpl, const PgAddr *a, GError **error)
{
	GString *s = g_string_new(NULL);
	char key[ADDR_SMTP_MAX + 1];
	GError *e = NULL;
	char *low;

	if (strncmp(tpl, "SMTP:", 5) != 0 && strncmp(tpl, "smtp:", 5) != 0) {
		g_string_free(s, TRUE);
		ds_invalid(error, NULL, "proxy template \"%s\" must start with SMTP: or smtp:",
		    tpl);
		return NULL;
	}
	for (const char *p = tpl + 5; *p; p++) {
		const char *part = NULL;

		if (*p != '%') {
			g_string_append_c(s, *p);
			continue;
		}
		switch (p[1]) {
		case 'm': part = a->mailbox; break;
		case 'p': part = a->po; break;
		case 'n': part = a->net; break;
		case '%': g_string_append_c(s, '%'); p++; continue;
		default:
			g_string_free(s, TRUE);
			ds_invalid(error, NULL, "proxy template \"%s\": %% must be followed by "
			    "m, p, n or %%", tpl);
			return NULL;
		}
		low = g_ascii_strdown(part, -1);
		g_string_append(s, low);
		g_free(low);
		p++;
	}
	if (!addr_parse_smtp(s->str, s->len, key, &e)) {
		char *legacy = addr_format(a);
		ds_invalid(error, legacy, "proxy template \"%s\" makes no valid address: %s",
		    tpl, e->message);
		g_free(legacy);
		g_error_free(e);
		g_string_free(s, TRUE);
		return NULL;
	}
	g_string_free(s, TRUE);
	return g_strdup_printf("%.5s%s", tpl, key);
}

/* Give e the template proxies it lacks: the first SMTP: template as its
 * primary when it has none, everything else as secondaries.  *added says
 * whether anything was added. */
static gboolean
templates_apply(const DirContext *ctx, const PgAddr *a, DirEntry *e, gboolean *added,
    GError **error)
{
	gboolean primary = dir_primary(e) != NULL;
	const char *const *t, *first = NULL;
	GPtrArray *order = g_ptr_array_new();
	gboolean ok = TRUE;

	*added = FALSE;
	/* The primary template first, so that it wins over a secondary one
	 * that makes the same address. */
	for (t = ctx->templates; t && *t; t++)
		if (!first && ds_is_primary(*t))
			g_ptr_array_add(order, (gpointer)(first = *t));
	for (t = ctx->templates; t && *t; t++)
		if (*t != first)
			g_ptr_array_add(order, (gpointer)*t);
	for (guint i = 0; ok && i < order->len; i++) {
		const char *tpl = order->pdata[i];
		char *p = template_expand(tpl, a, error);
		gboolean make_primary = tpl == first && !primary;

		if (!p) {
			ok = FALSE;
			break;
		}
		if (!ds_has_key(e->proxies, p + 5)) {
			if (e->proxies->len >= DIR_MAX_PROXIES) {
				ok = ds_invalid(error, e->legacy, "the proxy templates would give "
				    "it more than %u proxies", DIR_MAX_PROXIES);
			} else {
				g_ptr_array_add(e->proxies, g_strdup_printf("%s%s",
				    make_primary ? "SMTP:" : "smtp:", p + 5));
				primary = primary || make_primary;
				*added = TRUE;
			}
		}
		g_free(p);
	}
	g_ptr_array_unref(order);
	g_ptr_array_sort(e->proxies, ds_cmp_str);
	return ok;
}

/* Whether a document's head can be imported with ctx: its kind, what it
 * names, the templates; a postoffice's NET and PO into net, po. */
static gboolean
head_check(DirStore *d, const DirContext *ctx, const SyncDoc *head, char *net, char *po,
    GError **error)
{
	GError *e = NULL;

	switch (head->kind) {
	case SYNC_POSTOFFICE:
		if (!head->postoffice) {
			ds_invalid(error, NULL, "a postoffice export must name its postoffice");
			return FALSE;
		}
		if (!addr_parse_po(head->postoffice, strlen(head->postoffice), net, po, &e)) {
			ds_invalid(error, NULL, "postoffice: %s", e->message);
			g_error_free(e);
			return FALSE;
		}
		break;
	case SYNC_REPLICATION:
		if (!ds_site_valid(head->from_site) || !ds_site_valid(head->for_site)) {
			ds_invalid(error, NULL, "a replication file names the site it is from and "
			    "the site it is for");
			return FALSE;
		}
		break;
	case SYNC_GAL:
		ds_invalid(error, NULL, "a gal file is for postgate-po import-gal: the gateway "
		    "imports postoffice exports and replication files");
		return FALSE;
	case SYNC_CANONICAL:
		ds_invalid(error, NULL, "a canonical export is for comparing directories: it "
		    "cannot be imported");
		return FALSE;
	default:
		ds_invalid(error, NULL, "unknown sync file kind %d", (int)head->kind);
		return FALSE;
	}
	if (!ds_ctx_check(d, ctx, error))
		return FALSE;
	for (const char *const *t = ctx->templates; t && *t; t++)
		if (strncmp(*t, "SMTP:", 5) != 0 && strncmp(*t, "smtp:", 5) != 0) {
			ds_invalid(error, NULL, "proxy template \"%s\" must start with SMTP: or "
			    "smtp:", *t);
			return FALSE;
		}
	return TRUE;
}

DirImport *
dir_import_begin(DirStore *d, const DirContext *ctx, const SyncDoc *head, GError **error)
{
	DirImport *im;
	char net[ADDR_PART_MAX + 1], po[ADDR_PART_MAX + 1];

	if (d->busy || d->reading) {
		g_set_error(error, DIR_ERROR, DIR_ERROR_IO, "%s: %s", d->path, d->busy ?
		    "an import is already under way" : "a read batch is open (dir_read_end)");
		return NULL;
	}
	if (!ds_map_set(d, FALSE, error) || !head_check(d, ctx, head, net, po, error))
		return NULL;
	im = g_new0(DirImport, 1);
	im->d = d;
	im->ctx = ctx;
	im->head = sync_doc_new(head->kind);
	im->head->postoffice = g_strdup(head->postoffice);
	im->head->from_site = g_strdup(head->from_site);
	im->head->for_site = g_strdup(head->for_site);
	if (head->vector) {
		GHashTableIter it;
		gpointer k, v;

		g_hash_table_iter_init(&it, head->vector);
		while (g_hash_table_iter_next(&it, &k, &v))
			ds_vector_put(im->head->vector, k, *(guint64 *)v);
	}
	if (head->kind == SYNC_POSTOFFICE) {
		g_snprintf(im->po, sizeof im->po, "%s/%s", net, po);
		if (!ds_ctx_po_find(ctx, im->po)) {
			g_set_error(error, DIR_ERROR, DIR_ERROR_NOT_OURS,
			    "postoffice %s is not served by site %s (no [postoffice %s])",
			    im->po, ctx->site, im->po);
			dir_import_abort(im);
			return NULL;
		}
		g_snprintf(im->lo, sizeof im->lo, "%s/", im->po);
		g_snprintf(im->hi, sizeof im->hi, "%s0", im->po);  /* '0' follows '/' */
	} else {
		if (strcmp(head->for_site, ctx->site) != 0) {
			ds_invalid(error, NULL, "this replication file is for site %s, this is "
			    "site %s", head->for_site, ctx->site);
			dir_import_abort(im);
			return NULL;
		}
		if (strcmp(head->from_site, ctx->site) == 0) {
			ds_invalid(error, NULL, "this replication file is this site's own export");
			dir_import_abort(im);
			return NULL;
		}
		im->origin_max = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
		im->seen_before = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	}
	im->clashes = g_array_new(FALSE, FALSE, sizeof(Clash));
	im->now = ds_clock_now(d);
	d->dirty = FALSE;
	if (!pg_db_exec(d->pg, "BEGIN IMMEDIATE", error))
		goto fail;
	d->busy = im;
	if (!ds_meta_usn(d, &im->usn_start, error))
		goto fail;
	{
		gboolean ok;

		im->incarnation = ds_meta_get(d, "incarnation", &ok, error);
		if (!ok)
			goto fail;
		if (!im->incarnation) {
			im->incarnation = g_strdup_printf("%08x", g_random_int());
			if (!ds_meta_set(d, "incarnation", im->incarnation, error))
				goto fail;
		}
	}
	im->usn = im->usn_start;
	{
		sqlite3_stmt *st = pg_db_stmt(d->pg, ST_SEEN_CLEAR, error);
		if (!st || !pg_db_run(d->pg, st, error, "start an import"))
			goto fail;
	}
	return im;
fail:
	dir_import_abort(im);
	return NULL;
}

static void
clashes_free(GArray *c)
{
	for (guint i = 0; c && i < c->len; i++) {
		g_free(g_array_index(c, Clash, i).key);
		g_free(g_array_index(c, Clash, i).proxy);
	}
	if (c)
		g_array_unref(c);
}

void
dir_import_abort(DirImport *im)
{
	if (!im)
		return;
	if (im->d->busy == im) {
		pg_db_rollback(im->d->pg);
		im->d->busy = NULL;
	}
	if (im->origin_max)
		g_hash_table_unref(im->origin_max);
	if (im->seen_before)
		g_hash_table_unref(im->seen_before);
	clashes_free(im->clashes);
	sync_doc_free(im->head);
	g_free(im->templated_example);
	g_free(im->foreign_example);
	g_free(im->incarnation);
	g_free(im);
}

/* Postoffice import: remember a clash, decided at commit. */
static gboolean
po_clash(DirImport *im, const char *proxy, gint64 rid, gint64 other, GError **error)
{
	Clash c = { g_strdup(proxy + 5), g_strdup(proxy), rid, other };

	g_array_append_val(im->clashes, c);
	return TRUE;
}

/* Whether a matched entry was already given by this import. */
static gboolean
seen(DirImport *im, const DirEntry *old, gint64 rid, gboolean *ok, GError **error)
{
	sqlite3_stmt *st;
	int rc;

	*ok = TRUE;
	if (strcmp(old->origin, im->ctx->site) == 0 && old->usn > im->usn_start)
		return TRUE;
	st = pg_db_stmt(im->d->pg, ST_SEEN_HAS, error);
	if (!st)
		return *ok = FALSE;
	sqlite3_bind_int64(st, 1, rid);
	rc = sqlite3_step(st);
	pg_db_done(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return *ok = pg_db_fail(im->d->pg, error, "read the import state");
	return rc == SQLITE_ROW;
}

static void
stamp(DirImport *im, DirEntry *e, guint64 version)
{
	g_free(e->origin);
	e->origin = g_strdup(im->ctx->site);
	e->usn = ++im->usn;
	e->version = version;
	e->changed = im->now;
}

/* Every live entry has exactly one primary: refuse one the templates left
 * without (SPEC 1). */
static gboolean
has_primary(const DirEntry *e, GError **error)
{
	if (dir_primary(e))
		return TRUE;
	return ds_invalid(error, e->legacy, "no primary (SMTP:) proxy: [site] proxy_templates "
	    "needs an SMTP: template to give entries their address");
}

static gboolean
import_po_entry(DirImport *im, const DirEntry *in, GError **error)
{
	DirStore *d = im->d;
	const DirContext *ctx = im->ctx;
	DirEntry *n, *old = NULL;
	sqlite3_stmt *st;
	gboolean ok, added;
	gint64 rid = 0;
	PgAddr a;

	n = ds_entry_norm(in, FALSE, &a, error);
	if (!n)
		return FALSE;
	if (n->deleted) {
		ok = ds_invalid(error, n->legacy, "a postoffice export lists live entries only: "
		    "an entry it leaves out is deleted");
		goto out;
	}
	if (strncmp(n->legacy, im->lo, strlen(im->lo)) != 0) {
		g_set_error(error, DIR_ERROR, DIR_ERROR_NOT_OURS,
		    "%s: not an entry of postoffice %s, whose export this is", n->legacy,
		    im->po);
		ok = FALSE;
		goto out;
	}
	g_free(n->home_site);
	n->home_site = g_strdup(ctx->site);
	st = pg_db_stmt(d->pg, ST_BY_LEGACY, error);
	if (!st) {
		ok = FALSE;
		goto out;
	}
	pg_db_bind_text(st, 1, n->legacy);
	old = ds_fetch_entry(d, st, &rid, &ok, error);
	if (!ok)
		goto out;
	if (old) {
		if (seen(im, old, rid, &ok, error) || !ok) {
			if (ok)
				ok = ds_invalid(error, n->legacy, "listed twice in one postoffice "
				    "export");
			goto out;
		}
		g_free(n->id);
		n->id = g_strdup(old->id);
		if (n->proxies->len == 0) {
			/* Keep what it has; add what templates give that it lacks. */
			for (guint i = 0; i < old->proxies->len; i++)
				g_ptr_array_add(n->proxies, g_strdup(old->proxies->pdata[i]));
			if (!templates_apply(ctx, &a, n, &added, error)) {
				ok = FALSE;
				goto out;
			}
			if (added) {
				im->st.templated++;
				if (!im->templated_example)
					im->templated_example = g_strdup(n->legacy);
			}
		}
		if (ds_same_state(n, old)) {
			im->st.unchanged++;
			st = pg_db_stmt(d->pg, ST_SEEN_ADD, error);
			if (!st) {
				ok = FALSE;
				goto out;
			}
			sqlite3_bind_int64(st, 1, rid);
			ok = pg_db_run(d->pg, st, error, "record an import");
			goto out;
		}
		if (!(ok = has_primary(n, error)))
			goto out;
		stamp(im, n, old->version + 1);
		ok = ds_state_write(d, n, rid, NULL, error) &&
		    ds_proxies_update(im, old, n, rid, po_clash, NULL, error);
		im->st.changed++;
	} else {
		g_free(n->id);
		n->id = g_strdup_printf("%s:%s:%010" G_GUINT64_FORMAT, ctx->site,
		    im->incarnation, im->usn + 1);
		if (n->proxies->len == 0 && !templates_apply(ctx, &a, n, &added, error)) {
			ok = FALSE;
			goto out;
		}
		if (!(ok = has_primary(n, error)))
			goto out;
		stamp(im, n, 1);
		ok = ds_state_write(d, n, 0, &rid, error) &&
		    ds_proxies_update(im, NULL, n, rid, po_clash, NULL, error);
		im->st.added++;
	}
out:
	dir_entry_free(old);
	dir_entry_free(n);
	return ok;
}
gboolean
dir_import_entry(DirImport *im, const DirEntry *e, GError **error)
{
	gboolean ok;

	if (im->failed)
		return ds_invalid(error, NULL, "the import already failed");
	ok = im->head->kind == SYNC_POSTOFFICE ? import_po_entry(im, e, error) :
	    ds_import_repl_entry(im, e, error);
	if (!ok)
		im->failed = TRUE;
	return ok;
}

/* Postoffice import: the entries the file no longer lists become tombstones. */
static gboolean
sweep(DirImport *im, GError **error)
{
	DirStore *d = im->d;
	sqlite3_stmt *st = pg_db_stmt(d->pg, ST_SWEEP, error);
	GArray *rids = g_array_new(FALSE, FALSE, sizeof(gint64));
	gboolean ok = st != NULL;
	int rc;

	if (st) {
		pg_db_bind_text(st, 1, im->lo);
		pg_db_bind_text(st, 2, im->hi);
		pg_db_bind_text(st, 3, im->ctx->site);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)im->usn_start);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			gint64 r = sqlite3_column_int64(st, 0);
			g_array_append_val(rids, r);
		}
		pg_db_done(st);
		if (rc != SQLITE_DONE)
			ok = pg_db_fail(d->pg, error, "find deleted entries");
	}
	for (guint i = 0; ok && i < rids->len; i++) {
		gint64 rid = g_array_index(rids, gint64, i);
		DirEntry *old = ds_by_rid(d, rid, &ok, error), *e;

		if (!old)
			continue;
		e = dir_entry_copy(old);
		g_ptr_array_set_size(e->proxies, 0);
		g_ptr_array_set_size(e->members, 0);
		g_clear_pointer(&e->target, g_free);
		e->deleted = TRUE;
		stamp(im, e, e->version + 1);
		ok = ds_state_write(d, e, rid, NULL, error) &&
		    ds_proxies_update(im, old, e, rid, po_clash, NULL, error);
		im->st.deleted++;
		dir_entry_free(old);
		dir_entry_free(e);
	}
	g_array_unref(rids);
	return ok;
}

/* Postoffice import: a proxy this import gave that another live entry still
 * claims refuses the whole import, naming both. */
static gboolean
clashes_check(DirImport *im, GError **error)
{
	DirStore *d = im->d;
	gboolean ok = TRUE;

	for (guint i = 0; ok && i < im->clashes->len; i++) {
		Clash *c = &g_array_index(im->clashes, Clash, i);
		sqlite3_stmt *st = pg_db_stmt(d->pg, ST_PROXY_HAS, error);
		DirEntry *a, *b;
		int rc;

		if (!st)
			return FALSE;
		pg_db_bind_text(st, 1, c->key);
		sqlite3_bind_int64(st, 2, c->other);
		rc = sqlite3_step(st);
		pg_db_done(st);
		if (rc == SQLITE_DONE)
			continue;  /* the other entry was deleted by this import */
		if (rc != SQLITE_ROW)
			return pg_db_fail(d->pg, error, "read proxy claims");
		a = ds_by_rid(d, c->rid, &ok, error);
		b = ok ? ds_by_rid(d, c->other, &ok, error) : NULL;
		if (ok && a && b && !ds_entry_is_ours(im->ctx, b)) {
			/* A peer's entry: this postoffice is authoritative, its
			 * claim goes (and is not given back later, SPEC 2). */
			pg_warn(NULL, "directory: proxy %s is claimed by %s of this site and by "
			    "%s (site %s); %s keeps it: this site's postoffice is "
			    "authoritative for it, and the other claim is not kept", c->key,
			    a->legacy, b->legacy, b->home_site, a->legacy);
			im->st.proxy_losses++;
			ok = ds_proxy_del(d, c->key, c->other, error);
		} else if (ok && a && b) {
			g_set_error(error, DIR_ERROR, DIR_ERROR_CLASH,
			    "proxy clash: %s would be given to %s, but %s (site %s) already "
			    "has it; nothing was imported", c->proxy, a->legacy, b->legacy,
			    b->home_site);
			ok = FALSE;
		}
		dir_entry_free(a);
		dir_entry_free(b);
	}
	return ok;
}

/* Replication import: this site's vector and the sender's reported one. */
static gboolean
vectors_update(DirImport *im, GError **error)
{
	DirStore *d = im->d;
	const SyncDoc *h = im->head;
	GHashTableIter it;
	gpointer k, v;

	g_hash_table_iter_init(&it, im->origin_max);
	while (g_hash_table_iter_next(&it, &k, &v)) {
		sqlite3_stmt *st = pg_db_stmt(d->pg, ST_VEC_MAX, error);
		if (!st)
			return FALSE;
		pg_db_bind_text(st, 1, k);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)*(guint64 *)v);
		if (!pg_db_run(d->pg, st, error, "write the vector"))
			return FALSE;
	}
	if (!h->vector)
		return TRUE;
	g_hash_table_iter_init(&it, h->vector);
	while (g_hash_table_iter_next(&it, &k, &v)) {
		guint64 usn = *(guint64 *)v;
		sqlite3_stmt *st;

		if (!ds_site_valid(k) || usn > G_MAXINT64)
			return ds_invalid(error, NULL, "the vector names \"%s\", not a site name",
			    (const char *)k);
		if (strcmp(k, im->ctx->site) == 0) {
			if (usn > im->usn) {
				/* Our counter went back (a restored database): never
				 * reuse a USN peers have seen. */
				pg_warn(NULL, "directory: site %s reports having seen USN %"
				    G_GUINT64_FORMAT " of this site, which is only at %"
				    G_GUINT64_FORMAT "; continuing after it", h->from_site, usn,
				    im->usn);
				im->usn = usn;
			}
		} else {
			st = pg_db_stmt(d->pg, ST_VEC_MAX, error);
			if (!st)
				return FALSE;
			pg_db_bind_text(st, 1, k);
			sqlite3_bind_int64(st, 2, (sqlite3_int64)usn);
			if (!pg_db_run(d->pg, st, error, "write the vector"))
				return FALSE;
		}
		st = pg_db_stmt(d->pg, ST_PEER_MAX, error);
		if (!st)
			return FALSE;
		pg_db_bind_text(st, 1, h->from_site);
		pg_db_bind_text(st, 2, k);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)usn);
		if (!pg_db_run(d->pg, st, error, "write the peer's vector"))
			return FALSE;
	}
	return TRUE;
}

gboolean
dir_import_commit(DirImport *im, DirImportStats *stats, GError **error)
{
	DirStore *d = im->d;
	sqlite3_stmt *st;
	gboolean ok = !im->failed, changed = FALSE;
	char usn[32];

	if (!ok)
		ds_invalid(error, NULL, "the import already failed");
	if (ok && im->head->kind == SYNC_POSTOFFICE)
		ok = sweep(im, error) && clashes_check(im, error);
	if (ok && im->head->kind == SYNC_REPLICATION)
		ok = vectors_update(im, error);
	if (ok && im->ctx->tombstone_lifetime > 0) {
		st = pg_db_stmt(d->pg, ST_PURGE, error);
		ok = st != NULL;
		if (ok) {
			sqlite3_bind_int64(st, 1, im->now - im->ctx->tombstone_lifetime);
			ok = pg_db_run(d->pg, st, error, "purge tombstones");
			if (ok)
				im->st.purged = (guint)sqlite3_changes(d->db);
			if (im->st.purged)
				d->dirty = TRUE;
		}
	}
	/* Entries or proxies changed: a new generation, and the map of the
	 * old one no longer answers. */
	changed = ok && d->dirty;
	if (changed)
		ok = ds_generation_bump(d, error);
	g_snprintf(usn, sizeof usn, "%" G_GUINT64_FORMAT, im->usn);
	ok = ok && ds_meta_set(d, "usn", usn, error) && ds_meta_set(d, "site",
	    im->ctx->site, error);
	if (ok && !pg_db_commit(d->pg, "commit", error))
		ok = FALSE;
	if (ok) {
		d->busy = NULL;
		ds_pmap_after_import(d, changed);
		if (im->foreign)
			pg_warn(NULL, "directory: site %s sent %u change%s about entries of this "
			    "site (first: %s): only this site's postoffice exports change them; "
			    "ignored", im->head->from_site, im->foreign, im->foreign == 1 ? "" :
			    "s", im->foreign_example);
		if (im->st.templated)
			pg_info(NULL, "directory: proxy templates changed: %u entr%s of %s got "
			    "the template addresses they lacked (first: %s); existing proxies "
			    "and primaries are kept", im->st.templated,
			    im->st.templated == 1 ? "y" : "ies", im->po, im->templated_example);
		if (stats)
			*stats = im->st;
	}
	dir_import_abort(im);
	return ok;
}

gboolean
dir_import(DirStore *d, const DirContext *ctx, const SyncDoc *doc, DirImportStats *stats,
    GError **error)
{
	DirImport *im = dir_import_begin(d, ctx, doc, error);

	if (!im)
		return FALSE;
	for (guint i = 0; i < doc->entries->len; i++) {
		if (!dir_import_entry(im, doc->entries->pdata[i], error)) {
			dir_import_abort(im);
			return FALSE;
		}
	}
	return dir_import_commit(im, stats, error);
}
