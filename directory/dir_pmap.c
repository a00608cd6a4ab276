/* dir_pmap.c - when the directory's proxy map (dir_map.h) is used and when it
 * is rebuilt (see dir_store_int.h).
 *
 * The proxy map (dir_map.h): state_dir/directory.map is a compiled copy of
 * what dir_brief answers for every SMTP key, stamped with the generation
 * and incarnation it was built from.  Every import that changed entries or
 * proxies bumps the generation and, after COMMIT, rebuilds the map with one
 * scan of the effective owners (the first row of each key of proxies, in
 * its primary-key order: ST_BRIEF_KEY's choice) in one read transaction.
 * A read batch that meets an SMTP key checks once whether the map holds the
 * batch's generation; if so, dir_brief answers SMTP keys from it, else
 * (missing, stale, corrupt) from SQLite, as outside batches.
 */
#include "config.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dir_store_int.h"
#include "pg_log.h"

/* ------------------------------------------------------------- reading */

/* Reads map the database (PRAGMA mmap_size): a lookup then costs memory
 * accesses, not a read(2) per page beyond the page cache.  An import turns
 * it off again, so that its peak RSS counts only the page cache, not the
 * pages of a large database it touched (docs/performance.md).  Changed only
 * outside transactions. */
#define DIR_MMAP_SIZE "2147418112"   /* SQLite's default ceiling, 2 GB - 64 KB */

gboolean
ds_map_set(DirStore *d, gboolean on, GError **error)
{
	if (d->mapped == on)
		return TRUE;
	if (!pg_db_exec(d->pg,
	    on ? "PRAGMA mmap_size=" DIR_MMAP_SIZE : "PRAGMA mmap_size=0", error))
		return FALSE;
	d->mapped = on;
	return TRUE;
}

/* ----------------------------------------------------------- the proxy map */

gboolean
ds_meta_generation(DirStore *d, guint64 *gen, GError **error)
{
	gboolean ok;
	char *v = ds_meta_get(d, "generation", &ok, error);

	*gen = v ? g_ascii_strtoull(v, NULL, 10) : 0;
	g_free(v);
	return ok;
}

gboolean
ds_generation_bump(DirStore *d, GError **error)
{
	guint64 gen;
	char v[32];

	if (!ds_meta_generation(d, &gen, error))
		return FALSE;
	g_snprintf(v, sizeof v, "%" G_GUINT64_FORMAT, gen + 1);
	return ds_meta_set(d, "generation", v, error);
}

/* The database's incarnation; it never changes once made (NULL: no import yet). */
const char *
ds_incarnation(DirStore *d)
{
	gboolean ok;

	if (!d->incarnation)
		d->incarnation = ds_meta_get(d, "incarnation", &ok, NULL);
	return d->incarnation;
}

/* Why the map is not used, logged once (until the reason changes). */
void
ds_pmap_note(DirStore *d, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

void
ds_pmap_note(DirStore *d, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	if (d->pmap_note && strcmp(d->pmap_note, msg) == 0) {
		g_free(msg);
		return;
	}
	pg_debug(NULL, "directory: %s; routing reads the database", msg);
	g_free(d->pmap_note);
	d->pmap_note = msg;
}

static gboolean
same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	    a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Map the map file again when it is another file than the one mapped (a
 * rebuild renames a new one into place).  A file found unusable is warned
 * about once, and left alone until it changes. */
static void
pmap_refresh(DirStore *d)
{
	struct stat st;
	GError *e = NULL;

	if (stat(d->pmap_path, &st) != 0) {
		g_clear_pointer(&d->pmap, dir_map_close);
		d->pmap_seen = FALSE;
		return;
	}
	if (d->pmap_seen && same_file(&st, &d->pmap_st))
		return;
	g_clear_pointer(&d->pmap, dir_map_close);
	d->pmap_st = st;
	d->pmap_seen = TRUE;
	d->pmap = dir_map_open(d->pmap_path, &e);
	if (!d->pmap) {
		pg_warn(NULL, "directory: ignoring the proxy map: %s (the next import rebuilds "
		    "it)", e->message);
		g_error_free(e);
	}
}

/* Whether the map answers SMTP keys in the read batch open: it holds the
 * generation of the batch's snapshot.  Decided once per batch, at its first
 * SMTP key. */
gboolean
ds_pmap_current(DirStore *d)
{
	const char *inc;
	guint64 gen;

	if (d->pmap_state != PMAP_UNKNOWN)
		return d->pmap_state == PMAP_ON;
	d->pmap_state = PMAP_OFF;
	if (d->reading == 0 || d->busy)
		return FALSE;
	pmap_refresh(d);
	if (!d->pmap) {
		ds_pmap_note(d, "no usable proxy map %s", d->pmap_path);
		return FALSE;
	}
	if (!ds_meta_generation(d, &gen, NULL))
		return FALSE;   /* the database fails: the lookup will say so */
	inc = ds_incarnation(d);
	if (!inc || strcmp(inc, dir_map_incarnation(d->pmap)) != 0) {
		ds_pmap_note(d, "the proxy map %s was built from another database", d->pmap_path);
		return FALSE;
	}
	if (gen != dir_map_generation(d->pmap)) {
		ds_pmap_note(d, "the proxy map %s holds generation %" G_GUINT64_FORMAT
		    ", the directory is at %" G_GUINT64_FORMAT, d->pmap_path,
		    dir_map_generation(d->pmap), gen);
		return FALSE;
	}
	g_clear_pointer(&d->pmap_note, g_free);
	d->pmap_state = PMAP_ON;
	return TRUE;
}

/* A record of the map broke the format: never use that file again, and
 * remove it (when it still is that file) so that the next import makes a
 * new one. */
void
ds_pmap_corrupt(DirStore *d)
{
	struct stat st;

	pg_warn(NULL, "directory: ignoring the proxy map %s: a record is corrupt (the next "
	    "import rebuilds it)", d->pmap_path);
	g_clear_pointer(&d->pmap, dir_map_close);
	d->pmap_state = PMAP_OFF;
	if (d->pmap_seen && stat(d->pmap_path, &st) == 0 && same_file(&st, &d->pmap_st))
		unlink(d->pmap_path);
}

/* Build the map from one snapshot: the effective owner of every key.  Not
 * when the map already holds the database's generation, unless force. */
static gboolean
pmap_build(DirStore *d, gboolean force, GError **error)
{
	DirMapWriter *w;
	sqlite3_stmt *st = NULL;
	GString *prev = g_string_new(NULL);
	gboolean ok, have_prev = FALSE, skip = FALSE;
	char have_inc[17], *inc = NULL;
	guint64 gen = 0, have_gen = 0;
	struct stat dbst;
	int rc = SQLITE_DONE, mode = 0644;
	gint64 t0 = g_get_monotonic_time(), keys = 0;

	if (d->busy || d->reading) {
		g_set_error(error, DIR_ERROR, DIR_ERROR_IO, "%s: %s", d->path, d->busy ?
		    "an import is under way" : "a read batch is open (dir_read_end)");
		return FALSE;
	}
	/* The scan reads through the page cache, not a mapping of the whole
	 * database: an import's peak RSS stays what it was. */
	if (!ds_map_set(d, FALSE, error))
		return FALSE;
	if (stat(d->path, &dbst) == 0)
		mode = (int)(dbst.st_mode & 0666);
	/* Locked before the snapshot is taken: a map published by an earlier
	 * writer is never replaced by one of an older snapshot. */
	w = dir_map_writer_begin(d->pmap_path, mode, error);
	if (!w)
		return FALSE;
	ok = pg_db_exec(d->pg, "BEGIN", error);
	if (!ok) {
		dir_map_writer_abort(w);
		return FALSE;
	}
	ok = ds_meta_generation(d, &gen, error);
	if (ok)
		inc = ds_meta_get(d, "incarnation", &ok, error);
	if (ok && !force && inc && dir_map_peek(d->pmap_path, &have_gen, have_inc, NULL) &&
	    have_gen == gen && strcmp(have_inc, inc) == 0)
		skip = TRUE;
	if (ok && !skip) {
		st = pg_db_stmt(d->pg, ST_MAP_SCAN, error);
		ok = st != NULL;
	}
	while (st && ok && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *key = pg_db_col_text(st, 0);
		gsize klen = (gsize)sqlite3_column_bytes(st, 0);
		DirMapRow row;

		if (!key || (have_prev && prev->len == klen && memcmp(prev->str, key, klen) == 0))
			continue;   /* a claim that loses to the row before */
		g_string_truncate(prev, 0);
		g_string_append_len(prev, key, (gssize)klen);
		have_prev = TRUE;
		row.key = key;
		row.rid = sqlite3_column_int64(st, 1);
		row.type = sqlite3_column_int(st, 2);
		row.legacy = pg_db_col_text(st, 3);
		row.home_site = pg_db_col_text(st, 4);
		row.target = pg_db_col_text(st, 5);
		row.proxies = pg_db_col_text(st, 6);
		if (!row.legacy)
			row.legacy = "";
		if (!row.home_site)
			row.home_site = "";
		ok = dir_map_writer_add(w, &row, error);
		keys++;
	}
	if (st) {
		if (ok && rc != SQLITE_DONE)
			ok = pg_db_fail(d->pg, error, "read the proxies");
		pg_db_done(st);
	}
	sqlite3_exec(d->db, "COMMIT", NULL, NULL, NULL);
	if (ok && !skip) {
		ok = dir_map_writer_commit(w, gen, inc ? inc : "", error);
		if (ok)
			pg_debug(NULL, "directory: proxy map %s: generation %" G_GUINT64_FORMAT
			    ", %" G_GINT64_FORMAT " keys, in %.2f s", d->pmap_path, gen, keys,
			    (double)(g_get_monotonic_time() - t0) / G_USEC_PER_SEC);
	} else {
		dir_map_writer_abort(w);
	}
	g_string_free(prev, TRUE);
	g_free(inc);
	return ok;
}

/* After a committed import: a new map when the import changed entries or
 * proxies, or when the map does not hold the database's generation (none,
 * corrupt, or older).  The database is the truth: a failure only warns. */
void
ds_pmap_after_import(DirStore *d, gboolean changed)
{
	GError *e = NULL;

	if (d->pmap_defer) {
		d->pmap_owed = TRUE;
		d->pmap_changed |= changed;
		return;
	}
	if (pmap_build(d, changed, &e))
		return;
	pg_warn(NULL, "directory: the proxy map was not rebuilt, so routing reads the "
	    "database: %s", e->message);
	g_error_free(e);
	if (changed)
		unlink(d->pmap_path);
}

void
dir_map_defer(DirStore *d, gboolean defer)
{
	d->pmap_defer = defer;
	if (defer || !d->pmap_owed)
		return;
	d->pmap_owed = FALSE;
	ds_pmap_after_import(d, d->pmap_changed);
	d->pmap_changed = FALSE;
}

gboolean
dir_rebuild_map(DirStore *d, gboolean force, GError **error)
{
	return pmap_build(d, force, error);
}

gboolean
dir_read_mapped(DirStore *d)
{
	return d->reading > 0 && !d->busy && ds_pmap_current(d);
}
