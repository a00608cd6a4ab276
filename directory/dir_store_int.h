/* dir_store_int.h - what the files of the directory store share (private).
 *
 * The store (dir_store.h) is one module in several files, each one concern:
 *   dir_store.c   the database: schema, statements, open, rows, meta, vectors
 *   dir_norm.c    the rules: an entry's fields checked and normalised, which
 *                 of two states wins
 *   dir_import.c  an import: its transaction, postoffice entries, the sweep,
 *                 clashes, vectors, the commit; writing states and proxies
 *   dir_repl.c    a replication import's entries: peers' states, claims
 *   dir_export.c  exports: a postoffice's GAL, a peer's replication file, the
 *                 canonical export
 *   dir_pmap.c    when the proxy map (dir_map.h) is used and rebuilt
 *   dir_lookup.c  read batches, lookups, dir_brief, list, stats
 * Names here carry ds_; nothing outside those files includes this header.
 */
#ifndef PG_DIR_STORE_INT_H
#define PG_DIR_STORE_INT_H

#include <sys/stat.h>

#include <sqlite3.h>

#include "address.h"
#include "dir_map.h"
#include "dir_store.h"
#include "pg_db.h"

/* The statements of dir_store.c's cache. */
enum {
	ST_BY_ID, ST_BY_RID, ST_BY_LEGACY, ST_OWNER, ST_BRIEF_KEY, ST_BRIEF_LEGACY,
	ST_CLAIMANTS, ST_PROXY_HAS,
	ST_PROXY_ADD, ST_PROXY_DEL, ST_INSERT, ST_UPDATE, ST_SEEN_ADD, ST_SEEN_HAS,
	ST_SEEN_CLEAR, ST_SWEEP, ST_PURGE, ST_META_GET, ST_META_SET, ST_VEC_GET,
	ST_VEC_MAX, ST_VEC_ALL, ST_PEER_MAX, ST_LIST, ST_CANON, ST_REPL, ST_COUNTS,
	ST_NPROXIES, ST_LOSSES, ST_BEGIN, ST_COMMIT, ST_MAP_SCAN,
	ST_COUNT
};

struct DirStore {
	PgDb *pg;
	sqlite3 *db;            /* pg's connection */
	char *path;
	gint64 now;             /* pinned clock, 0: real time */
	DirImport *busy;        /* the import under way, if any */
	guint reading;          /* depth of dir_read_begin .. dir_read_end */
	gboolean mapped;        /* reads go through mmap (set by a read batch) */
	gboolean dirty;         /* the import under way wrote entries or proxies */
	/* The proxy map (dir_map.h). */
	char *pmap_path;        /* state_dir/directory.map */
	gboolean pmap_defer;    /* imports leave the map to dir_map_defer(d, FALSE) */
	gboolean pmap_owed;     /* an import happened while deferred */
	gboolean pmap_changed;  /* ... and changed the directory */
	DirMap *pmap;           /* that file, mapped, when it was usable */
	struct stat pmap_st;    /* the file as last seen, when pmap_seen */
	gboolean pmap_seen;
	int pmap_state;         /* PMAP_* for the read batch open */
	char *incarnation;      /* meta incarnation, once read */
	char *pmap_note;        /* the last reason logged for not using the map */
};

enum { PMAP_UNKNOWN, PMAP_ON, PMAP_OFF };


/* A clash met while importing a postoffice export: decided at commit, when
 * the entries the file no longer lists are tombstones. */
typedef struct {
	char *key;
	char *proxy;
	gint64 rid, other;
} Clash;

struct DirImport {
	DirStore *d;
	const DirContext *ctx;
	SyncDoc *head;                  /* a copy of the document's head */
	char po[ADDR_PO_MAX + 1];       /* POSTOFFICE: NET/PO */
	char lo[ADDR_PO_MAX + 2], hi[ADDR_PO_MAX + 2];  /* its legacy range */
	guint64 usn_start, usn;         /* this site's counter */
	gint64 now;
	GHashTable *origin_max;         /* REPLICATION: origin -> guint64 * */
	GHashTable *seen_before;        /* REPLICATION: origin -> guint64 *, the
	                                 * vector as it was when the import began */
	GArray *clashes;                /* POSTOFFICE: Clash */
	char *templated_example;        /* first entry a template change touched */
	guint foreign;                  /* REPLICATION: changes about this site's own
	                                 * entries, ignored (SPEC 2) */
	char *foreign_example;          /* the first of them, for the warning */
	char *incarnation;              /* of this database: part of the ids it makes */
	DirImportStats st;
	gboolean failed;
};

/* A proxy clash while importing: decide it (ds_proxies_update). */
typedef gboolean (*ClashFunc)(DirImport *im, const char *proxy, gint64 rid, gint64 other,
    GError **error);

/* dir_store.c */
gint64 ds_clock_now(DirStore *d);
char *ds_join(const GPtrArray *a);
DirEntry *ds_row_entry(sqlite3_stmt *st, gint64 *rid);
DirEntry *ds_fetch_entry(DirStore *d, sqlite3_stmt *st, gint64 *rid, gboolean *ok,
    GError **error);
char *ds_meta_get(DirStore *d, const char *key, gboolean *ok, GError **error);
gboolean ds_meta_set(DirStore *d, const char *key, const char *value, GError **error);
gboolean ds_meta_usn(DirStore *d, guint64 *usn, GError **error);
gboolean ds_vector_get(DirStore *d, const char *site, guint64 *usn, GError **error);
void ds_vector_put(GHashTable *v, const char *site, guint64 usn);
gboolean ds_vector_load(DirStore *d, GHashTable *v, GError **error);

/* dir_norm.c */
gboolean ds_site_valid(const char *s);
gboolean ds_invalid(GError **error, const char *who, const char *fmt, ...) G_GNUC_PRINTF(3,
    4);
gboolean ds_smtp_prefixed(const char *text);
gint ds_cmp_str(gconstpointer a, gconstpointer b);
gboolean ds_is_primary(const char *proxy);
DirEntry *ds_entry_norm(const DirEntry *in, gboolean stamped, PgAddr *a, GError **error);
gboolean ds_same_state(const DirEntry *a, const DirEntry *b);
gboolean ds_state_wins(const DirEntry *a, const DirEntry *b);

/* dir_import.c */
gboolean ds_state_write(DirStore *d, const DirEntry *e, gint64 rid, gint64 *out,
    GError **error);
gboolean ds_proxy_del(DirStore *d, const char *key, gint64 rid, GError **error);
gboolean ds_has_key(const GPtrArray *proxies, const char *key);
gboolean ds_claimants(DirStore *d, const char *key, gint64 rid, GArray *rids,
    GError **error);
DirEntry *ds_by_rid(DirStore *d, gint64 rid, gboolean *ok, GError **error);
gboolean ds_proxies_update(DirImport *im, const DirEntry *old, const DirEntry *new,
    gint64 rid, ClashFunc clash, ClashFunc bar, GError **error);
const char *ds_ctx_po_find(const DirContext *ctx, const char *po);
gboolean ds_entry_is_ours(const DirContext *ctx, const DirEntry *e);
gboolean ds_ctx_check(DirStore *d, const DirContext *ctx, GError **error);

/* dir_repl.c */
gboolean ds_local_claim(DirImport *im, const GArray *rids, gint64 *local, GError **error);
gboolean ds_peer_claims_drop(DirImport *im, const char *proxy, gint64 rid, GError **error);
void ds_foreign(DirImport *im, const DirEntry *n, const DirEntry *old);
gboolean ds_import_repl_entry(DirImport *im, const DirEntry *in, GError **error);

/* dir_export.c */
gboolean ds_key_owner(DirStore *d, const char *key, gint64 *rid, GError **error);

/* dir_pmap.c */
gboolean ds_map_set(DirStore *d, gboolean on, GError **error);
gboolean ds_meta_generation(DirStore *d, guint64 *gen, GError **error);
gboolean ds_generation_bump(DirStore *d, GError **error);
const char *ds_incarnation(DirStore *d);
void ds_pmap_note(DirStore *d, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
gboolean ds_pmap_current(DirStore *d);
void ds_pmap_corrupt(DirStore *d);
void ds_pmap_after_import(DirStore *d, gboolean changed);

#endif
