/* dir_lookup.c - reading the directory: read batches, lookups, dir_brief,
 * list and stats (see dir_store_int.h). */
#include "config.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dir_store_int.h"
#include "pg_log.h"

/* ------------------------------------------------------------ read batches */

gboolean
dir_read_begin(DirStore *d, GError **error)
{
	sqlite3_stmt *st;

	if (d->reading++ > 0 || d->busy)
		return TRUE;   /* inside a batch or an import already */
	if (!ds_map_set(d, TRUE, error)) {
		d->reading--;
		return FALSE;
	}
	st = pg_db_stmt(d->pg, ST_BEGIN, error);
	if (!st || !pg_db_run(d->pg, st, error, "begin reading")) {
		d->reading--;
		return FALSE;
	}
	d->pmap_state = PMAP_UNKNOWN;
	return TRUE;
}

void
dir_read_end(DirStore *d)
{
	sqlite3_stmt *st;

	if (d->reading == 0 || --d->reading > 0 || d->busy)
		return;
	d->pmap_state = PMAP_UNKNOWN;
	st = pg_db_stmt(d->pg, ST_COMMIT, NULL);
	if (st)
		pg_db_run(d->pg, st, NULL, "end reading");
}

gboolean
dir_address_parse(const char *address, PgAddr *out, GError **error)
{
	GError *e = NULL;
	gboolean ok;

	if (!address) {
		memset(out, 0, sizeof *out);
		return ds_invalid(error, NULL, "no address");
	}
	if (!ds_smtp_prefixed(address) && strchr(address, '@')) {
		memset(out, 0, sizeof *out);
		out->kind = ADDR_KIND_SMTP;
		/* A quoted local part is valid syntax; no proxy has one. */
		ok = addr_parse_smtp_quoted(address, strlen(address), out->smtp, &e);
	} else {
		ok = addr_parse(address, strlen(address), out, &e);
	}
	if (!ok) {
		g_set_error_literal(error, DIR_ERROR, DIR_ERROR_INVALID, e->message);
		g_error_free(e);
	}
	return ok;
}

DirEntry *
dir_lookup_addr(DirStore *d, const PgAddr *a, GError **error)
{
	char legacy[ADDR_LEGACY_MAX + 1];
	sqlite3_stmt *st;
	gboolean ok;

	st = pg_db_stmt(d->pg, a->kind == ADDR_KIND_SMTP ? ST_OWNER : ST_BY_LEGACY, error);
	if (!st)
		return NULL;
	if (a->kind == ADDR_KIND_SMTP) {
		pg_db_bind_text(st, 1, a->smtp);
	} else {
		g_snprintf(legacy, sizeof legacy, "%s/%s/%s", a->net, a->po, a->mailbox);
		pg_db_bind_text(st, 1, legacy);
	}
	return ds_fetch_entry(d, st, NULL, &ok, error);
}

DirEntry *
dir_lookup(DirStore *d, const char *address, GError **error)
{
	PgAddr a;

	if (!dir_address_parse(address, &a, error))
		return NULL;
	return dir_lookup_addr(d, &a, error);
}

DirEntry *
dir_get(DirStore *d, const char *id, GError **error)
{
	sqlite3_stmt *st = pg_db_stmt(d->pg, ST_BY_ID, error);
	gboolean ok;

	if (!st)
		return NULL;
	pg_db_bind_text(st, 1, id);
	return ds_fetch_entry(d, st, NULL, &ok, error);
}

char *
dir_proxy_owner(DirStore *d, const char *address, GError **error)
{
	char *key = dir_proxy_key(address, error), *id = NULL;
	sqlite3_stmt *st;
	int rc;

	if (!key)
		return NULL;
	st = pg_db_stmt(d->pg, ST_OWNER, error);
	if (st) {
		pg_db_bind_text(st, 1, key);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			id = g_strdup(pg_db_col_text(st, 1));
		else if (rc != SQLITE_DONE)
			pg_db_fail(d->pg, error, "read a proxy");
		pg_db_done(st);
	}
	g_free(key);
	return id;
}

gboolean
dir_brief(DirStore *d, const PgAddr *a, DirBrief *out, gboolean *found, GError **error)
{
	char legacy[ADDR_LEGACY_MAX + 1];
	sqlite3_stmt *st;
	const char *t;
	int rc;

	*found = FALSE;
	if (a->kind == ADDR_KIND_SMTP && d->reading > 0 && !d->busy && ds_pmap_current(d)) {
		switch (dir_map_lookup(d->pmap, a->smtp, strlen(a->smtp), out)) {
		case DIR_MAP_FOUND:
			*found = TRUE;
			return TRUE;
		case DIR_MAP_NONE:
			return TRUE;
		case DIR_MAP_CORRUPT:
			ds_pmap_corrupt(d);
			break;   /* the database answers */
		}
	}
	st = pg_db_stmt(d->pg, a->kind == ADDR_KIND_SMTP ? ST_BRIEF_KEY : ST_BRIEF_LEGACY, error);
	if (!st)
		return FALSE;
	if (a->kind == ADDR_KIND_SMTP) {
		pg_db_bind_text(st, 1, a->smtp);
	} else {
		g_snprintf(legacy, sizeof legacy, "%s/%s/%s", a->net, a->po, a->mailbox);
		pg_db_bind_text(st, 1, legacy);
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*found = TRUE;
		out->rid = sqlite3_column_int64(st, 0);
		out->type = (DirType)sqlite3_column_int(st, 1);
		g_strlcpy(out->legacy, pg_db_col_text(st, 2), sizeof out->legacy);
		g_strlcpy(out->home_site, pg_db_col_text(st, 3), sizeof out->home_site);
		t = pg_db_col_text(st, 4);
		g_strlcpy(out->target, t ? t : "", sizeof out->target);
		t = pg_db_col_text(st, 5);
		out->proxies_known = t && g_strlcpy(out->proxies, t, sizeof out->proxies) <
		    sizeof out->proxies;
		if (!out->proxies_known)
			out->proxies[0] = '\0';
	}
	pg_db_done(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE || pg_db_fail(d->pg, error, "read an entry");
}

DirEntry *
dir_brief_entry(DirStore *d, const DirBrief *b, GError **error)
{
	gboolean ok;
	DirEntry *e = ds_by_rid(d, b->rid, &ok, error);

	if (e && e->deleted)
		g_clear_pointer(&e, dir_entry_free);
	return e;
}

GPtrArray *
dir_list(DirStore *d, int type, GError **error)
{
	sqlite3_stmt *st;
	GPtrArray *out;
	GArray *rids;
	gboolean ok = TRUE;
	int rc;

	/* One snapshot for the entries and their claims. */
	if (!pg_db_exec(d->pg, "SAVEPOINT list", error))
		return NULL;
	if (!(st = pg_db_stmt(d->pg, ST_LIST, error))) {
		sqlite3_exec(d->db, "RELEASE list", NULL, NULL, NULL);
		return NULL;
	}
	out = g_ptr_array_new_with_free_func((GDestroyNotify)dir_entry_free);
	rids = g_array_new(FALSE, FALSE, sizeof(gint64));
	sqlite3_bind_int(st, 1, type);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		gint64 rid;

		g_ptr_array_add(out, ds_row_entry(st, &rid));
		g_array_append_val(rids, rid);
	}
	pg_db_done(st);
	if (rc != SQLITE_DONE)
		ok = pg_db_fail(d->pg, error, "list entries");
	/* A claim lost in a clash is left out, as the GAL leaves it out: the
	 * list shows what routing sees (the loser of a primary shows none). */
	for (guint i = 0; ok && i < out->len; i++) {
		DirEntry *x = out->pdata[i];

		for (guint j = x->proxies->len; ok && j-- > 0; ) {
			gint64 owner;

			ok = ds_key_owner(d, (const char *)x->proxies->pdata[j] + 5, &owner, error);
			if (ok && owner != g_array_index(rids, gint64, i))
				g_ptr_array_remove_index(x->proxies, j);
		}
	}
	sqlite3_exec(d->db, "RELEASE list", NULL, NULL, NULL);
	g_array_unref(rids);
	if (!ok) {
		g_ptr_array_unref(out);
		return NULL;
	}
	return out;
}

static gboolean
count(DirStore *d, int which, guint *out, GError **error)
{
	sqlite3_stmt *st = pg_db_stmt(d->pg, which, error);
	int rc;

	if (!st)
		return FALSE;
	rc = sqlite3_step(st);
	*out = rc == SQLITE_ROW ? (guint)sqlite3_column_int64(st, 0) : 0;
	pg_db_done(st);
	return rc == SQLITE_ROW || pg_db_fail(d->pg, error, "count");
}

gboolean
dir_stats(DirStore *d, DirStats *out, GError **error)
{
	sqlite3_stmt *st;
	gboolean ok = TRUE;
	int rc = SQLITE_DONE;

	memset(out, 0, sizeof *out);
	out->vector = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	if (!pg_db_exec(d->pg, "SAVEPOINT stats", error))
		goto fail;
	st = pg_db_stmt(d->pg, ST_COUNTS, error);
	ok = st != NULL;
	while (ok && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		guint n = (guint)sqlite3_column_int64(st, 2);
		if (sqlite3_column_int(st, 1))
			out->tombstones += n;
		else if (sqlite3_column_int(st, 0) == DIR_MAILBOX)
			out->mailboxes += n;
		else if (sqlite3_column_int(st, 0) == DIR_CUSTOM)
			out->customs += n;
		else
			out->lists += n;
	}
	if (st) {
		if (rc != SQLITE_DONE)
			ok = pg_db_fail(d->pg, error, "count entries");
		pg_db_done(st);
	}
	ok = ok && count(d, ST_NPROXIES, &out->proxies, error) &&
	    count(d, ST_LOSSES, &out->proxy_losses, error) &&
	    ds_meta_usn(d, &out->usn, error) && ds_vector_load(d, out->vector, error) &&
	    ds_meta_generation(d, &out->generation, error);
	if (ok) {
		const char *inc = ds_incarnation(d);
		char have_inc[17];
		guint64 have_gen;

		out->map_current = inc && dir_map_peek(d->pmap_path, &have_gen, have_inc, NULL) &&
		    have_gen == out->generation && strcmp(have_inc, inc) == 0;
	}
	sqlite3_exec(d->db, "RELEASE stats", NULL, NULL, NULL);
	if (ok)
		return TRUE;
fail:
	dir_stats_clear(out);
	return FALSE;
}

void
dir_stats_clear(DirStats *s)
{
	if (s->vector)
		g_hash_table_unref(s->vector);
	s->vector = NULL;
}
