/* dir_export.c - directory exports: a postoffice's GAL, a peer's replication
 * file, the canonical export (see dir_store_int.h). */
#include "config.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dir_store_int.h"
#include "pg_log.h"

/* ------------------------------------------------------------ exporting */

/* The rid of the live entry that effectively owns key (0: none). */
gboolean
ds_key_owner(DirStore *d, const char *key, gint64 *rid, GError **error)
{
	sqlite3_stmt *st = pg_db_stmt(d->pg, ST_BRIEF_KEY, error);
	int rc;

	*rid = 0;
	if (!st)
		return FALSE;
	pg_db_bind_text(st, 1, key);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*rid = sqlite3_column_int64(st, 0);
	pg_db_done(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE || pg_db_fail(d->pg, error, "read a proxy");
}

static gboolean
collect(const DirEntry *e, gpointer data, GError **error)
{
	g_ptr_array_add(((SyncDoc *)data)->entries, dir_entry_copy(e));
	return TRUE;
}

SyncDoc *
dir_export_each(DirStore *d, const DirContext *ctx, SyncKind kind, const char *arg,
    DirEntryFunc func, gpointer data, GError **error)
{
	char net[ADDR_PART_MAX + 1], po[ADDR_PART_MAX + 1];
	SyncDoc *head = sync_doc_new(kind);
	sqlite3_stmt *st = NULL;
	GError *e = NULL;
	gboolean ok = TRUE;
	int rc = SQLITE_DONE;

	if (d->busy) {
		g_set_error(error, DIR_ERROR, DIR_ERROR_IO, "%s: an import is under way",
		    d->path);
		goto fail;
	}
	switch (kind) {
	case SYNC_GAL:
		if (!ctx || !arg || !addr_parse_po(arg, strlen(arg), net, po, &e)) {
			ds_invalid(error, NULL, "postoffice: %s", e ? e->message :
			    "a global address list is made for a postoffice NET/PO");
			g_clear_error(&e);
			goto fail;
		}
		head->postoffice = g_strdup_printf("%s/%s", net, po);
		if (!ds_ctx_po_find(ctx, head->postoffice)) {
			g_set_error(error, DIR_ERROR, DIR_ERROR_NOT_OURS,
			    "postoffice %s is not served by site %s (no [postoffice %s])",
			    head->postoffice, ctx->site, head->postoffice);
			goto fail;
		}
		break;
	case SYNC_REPLICATION:
		if (!ctx || !ds_ctx_check(d, ctx, error))
			goto fail;
		if (!ds_site_valid(arg)) {
			ds_invalid(error, NULL, "\"%s\" is not a site name", arg ? arg : "");
			goto fail;
		}
		if (strcmp(arg, ctx->site) == 0) {
			ds_invalid(error, NULL, "%s is this site: replication files are for peers",
			    arg);
			goto fail;
		}
		head->from_site = g_strdup(ctx->site);
		head->for_site = g_strdup(arg);
		break;
	case SYNC_CANONICAL:
		break;
	default:
		ds_invalid(error, NULL, "a %s file is not exported by the gateway",
		    sync_kind_name(kind));
		goto fail;
	}
	/* One snapshot for the whole export. */
	if (!pg_db_exec(d->pg, "SAVEPOINT export", error))
		goto fail;
	if (kind == SYNC_REPLICATION) {
		guint64 usn;

		ok = ds_vector_load(d, head->vector, error) && ds_meta_usn(d, &usn, error);
		if (ok)
			ds_vector_put(head->vector, ctx->site, usn);
	}
	if (ok)
		st = pg_db_stmt(d->pg,
		    kind == SYNC_GAL ? ST_LIST : kind == SYNC_CANONICAL ? ST_CANON :
		    ST_REPL, error);
	if (!st)
		ok = FALSE;
	if (ok) {
		if (kind == SYNC_GAL)
			sqlite3_bind_int(st, 1, -1);
		else if (kind == SYNC_REPLICATION)
			pg_db_bind_text(st, 1, arg);
	}
	while (ok && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		gint64 rid, owner;
		DirEntry *x = ds_row_entry(st, &rid);

		if (kind == SYNC_GAL) {
			const char *primary = dir_primary(x);
			char *keep = NULL;

			if (primary && !ds_key_owner(d, primary + 5, &owner, error)) {
				ok = FALSE;
			} else if (primary && owner == rid) {
				keep = g_strdup(primary);
			}
			g_ptr_array_set_size(x->proxies, 0);
			if (keep)
				g_ptr_array_add(x->proxies, keep);
			g_ptr_array_set_size(x->members, 0);
		}
		if (kind != SYNC_REPLICATION) {
			g_clear_pointer(&x->origin, g_free);
			x->usn = x->version = 0;
			x->changed = 0;
		}
		if (ok && !func(x, data, error))
			ok = FALSE;
		dir_entry_free(x);
		if (!ok)
			break;
	}
	if (st) {
		if (ok && rc != SQLITE_DONE)
			ok = pg_db_fail(d->pg, error, "export");
		pg_db_done(st);
	}
	sqlite3_exec(d->db, "RELEASE export", NULL, NULL, NULL);
	if (ok)
		return head;
fail:
	sync_doc_free(head);
	return NULL;
}

static SyncDoc *
export_doc(DirStore *d, const DirContext *ctx, SyncKind kind, const char *arg,
    GError **error)
{
	GPtrArray *entries = g_ptr_array_new_with_free_func((GDestroyNotify)dir_entry_free);
	SyncDoc tmp = { .entries = entries }, *head;

	head = dir_export_each(d, ctx, kind, arg, collect, &tmp, error);
	if (!head) {
		g_ptr_array_unref(entries);
		return NULL;
	}
	g_ptr_array_unref(head->entries);
	head->entries = entries;
	return head;
}

SyncDoc *
dir_export_gal(DirStore *d, const DirContext *ctx, const char *postoffice, GError **error)
{
	return export_doc(d, ctx, SYNC_GAL, postoffice, error);
}

SyncDoc *
dir_export_replication(DirStore *d, const DirContext *ctx, const char *for_site,
    GError **error)
{
	return export_doc(d, ctx, SYNC_REPLICATION, for_site, error);
}

SyncDoc *
dir_export_canonical(DirStore *d, GError **error)
{
	return export_doc(d, NULL, SYNC_CANONICAL, NULL, error);
}
