/* dir_repl.c - the entries of a replication import: a peer's states, applied
 * unless this site's own entries say otherwise (SPEC 2; see dir_store_int.h).
 *
 * Replication: an export for a peer holds every stored state whose origin is
 * not the peer and whose USN is above what the peer last reported for that
 * origin.  Since that export is made from the exporter's whole state, the
 * importer may then take the exporter's vector as its own (per site, the
 * maximum): it has seen everything the exporter had seen.  An incoming
 * state for an id this site does not hold, with a USN at or below the
 * vector, was seen before and purged with its tombstone: it is ignored, so
 * a replayed old file never resurrects a deleted entry.
 */
#include "config.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dir_store_int.h"
#include "pg_log.h"

/* Replication import: a clash between origins never refuses; log and count. */
static gboolean
repl_clash(DirImport *im, const char *proxy, gint64 rid, gint64 other, GError **error)
{
	DirEntry *a, *b;
	const DirEntry *keeper;
	gboolean ok;

	a = ds_by_rid(im->d, rid, &ok, error);
	b = ok ? ds_by_rid(im->d, other, &ok, error) : NULL;
	if (a && b) {
		int c = strcmp(a->origin, b->origin);
		keeper = (c < 0 || (c == 0 && a->usn < b->usn)) ? a : b;
		pg_warn(NULL, "directory: proxy %s is claimed by %s (%s:%" G_GUINT64_FORMAT
		    ") and by %s (%s:%" G_GUINT64_FORMAT "); %s keeps it, the lower "
		    "(origin site, USN)", proxy + 5, a->legacy, a->origin, a->usn, b->legacy,
		    b->origin, b->usn, keeper->legacy);
		im->st.proxy_losses++;
	}
	dir_entry_free(a);
	dir_entry_free(b);
	return ok;
}

/* The first of the claimants rids that is an entry of this site, into
 * *local (0: none). */
gboolean
ds_local_claim(DirImport *im, const GArray *rids, gint64 *local, GError **error)
{
	gboolean ok = TRUE;

	*local = 0;
	for (guint i = 0; ok && !*local && i < rids->len; i++) {
		gint64 r = g_array_index(rids, gint64, i);
		DirEntry *x = ds_by_rid(im->d, r, &ok, error);

		if (x && !x->deleted && ds_entry_is_ours(im->ctx, x))
			*local = r;
		dir_entry_free(x);
	}
	return ok;
}

/* Postoffice import: proxy, which entry rid of this site no longer claims,
 * goes to no peer's entry (a claim stored beside ours lost to it, SPEC 2). */
gboolean
ds_peer_claims_drop(DirImport *im, const char *proxy, gint64 rid, GError **error)
{
	GArray *rids = g_array_new(FALSE, FALSE, sizeof(gint64));
	gboolean ok = ds_claimants(im->d, proxy + 5, rid, rids, error);

	for (guint i = 0; ok && i < rids->len; i++) {
		gint64 r = g_array_index(rids, gint64, i);
		DirEntry *x = ds_by_rid(im->d, r, &ok, error);

		if (x && !x->deleted && !ds_entry_is_ours(im->ctx, x)) {
			pg_warn(NULL,
			    "directory: proxy %s of this site's postoffice %s is not given "
			    "to %s (site %s): its claim lost to this site's entry",
			    proxy + 5, im->po, x->legacy, x->home_site);
			im->st.proxy_losses++;
			ok = ds_proxy_del(im->d, proxy + 5, r, error);
		}
		dir_entry_free(x);
	}
	g_array_unref(rids);
	return ok;
}

/* Replication import: a peer's claim of a proxy that an entry of this site
 * has is never recorded (this site's postoffice is authoritative); log and
 * count it as a loss. */
static gboolean
repl_bar(DirImport *im, const char *proxy, gint64 rid, gint64 local, GError **error)
{
	DirEntry *a, *b;
	gboolean ok;

	a = ds_by_rid(im->d, rid, &ok, error);
	b = ok ? ds_by_rid(im->d, local, &ok, error) : NULL;
	if (a && b) {
		pg_warn(NULL, "directory: proxy %s is claimed by %s (home %s, in a file from "
		    "site %s) and by %s of this site; %s keeps it: this site's postoffice is "
		    "authoritative for it, and the other claim is not kept", proxy + 5, a->legacy,
		    a->home_site, im->head->from_site, b->legacy, b->legacy);
		im->st.proxy_losses++;
	}
	dir_entry_free(a);
	dir_entry_free(b);
	return ok;
}

/* Replication import: a change about an entry of this site is ignored,
 * counted and, once per import, reported naming the peer (SPEC 2). */
void
ds_foreign(DirImport *im, const DirEntry *n, const DirEntry *old)
{
	im->st.ignored++;
	if (im->foreign++ == 0)
		im->foreign_example = g_strdup_printf("%s %s, id %s, origin %s",
		    n->deleted ? "a deletion of" : "a change of", old ? old->legacy : n->legacy,
		    n->id, n->origin);
}

gboolean
ds_import_repl_entry(DirImport *im, const DirEntry *in, GError **error)
{
	DirStore *d = im->d;
	DirEntry *n, *old = NULL;
	sqlite3_stmt *st;
	guint64 seen_usn;
	gboolean ok = TRUE;
	gint64 rid = 0;
	PgAddr a;
	guint64 *max;

	n = ds_entry_norm(in, TRUE, &a, error);
	if (!n)
		return FALSE;
	if (strcmp(n->origin, im->ctx->site) == 0) {
		/* This site is authoritative for its own changes. */
		im->st.ignored++;
		dir_entry_free(n);
		return TRUE;
	}
	max = g_hash_table_lookup(im->origin_max, n->origin);
	if (!max) {
		max = g_new0(guint64, 1);
		g_hash_table_insert(im->origin_max, g_strdup(n->origin), max);
	}
	if (n->usn > *max)
		*max = n->usn;
	if (ds_entry_is_ours(im->ctx, n) || strcmp(n->home_site, im->ctx->site) == 0) {
		/* Seen, and refused: never taken from a peer (SPEC 2). */
		ds_foreign(im, n, NULL);
		goto out;
	}
	st = pg_db_stmt(d->pg, ST_BY_ID, error);
	if (!st) {
		ok = FALSE;
		goto out;
	}
	pg_db_bind_text(st, 1, n->id);
	old = ds_fetch_entry(d, st, &rid, &ok, error);
	if (!ok)
		goto out;
	if (old && ds_entry_is_ours(im->ctx, old)) {
		ds_foreign(im, n, old);
	} else if (!old) {
		guint64 *cached = g_hash_table_lookup(im->seen_before, n->origin);

		if (cached) {
			seen_usn = *cached;
		} else {
			if (!(ok = ds_vector_get(d, n->origin, &seen_usn, error)))
				goto out;
			ds_vector_put(im->seen_before, n->origin, seen_usn);
		}
		if (n->usn <= seen_usn) {
			/* Seen before, deleted and purged since: never resurrect. */
			im->st.ignored++;
			goto out;
		}
		ok = ds_state_write(d, n, 0, &rid, error) &&
		    ds_proxies_update(im, NULL, n, rid, repl_clash, repl_bar, error);
		if (n->deleted)
			im->st.deleted++;
		else
			im->st.added++;
	} else if (ds_state_wins(n, old)) {
		ok = ds_state_write(d, n, rid, NULL, error) &&
		    ds_proxies_update(im, old, n, rid, repl_clash, repl_bar, error);
		if (n->deleted && !old->deleted)
			im->st.deleted++;
		else if (!n->deleted && old->deleted)
			im->st.added++;
		else
			im->st.changed++;
	} else {
		im->st.ignored++;
	}
out:
	dir_entry_free(old);
	dir_entry_free(n);
	return ok;
}
