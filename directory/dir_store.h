/* dir_store.h - the replicated address directory in SQLite (state_dir/directory.db).
 *
 * Owns: the entries (mailboxes, custom recipients, distribution lists) with
 * their immutable ids, proxy addresses and replication stamps; tombstones;
 * this site's update sequence number (USN) and up-to-dateness vector; the
 * vectors peers reported; the schema and its migrations.  Applies sync
 * documents (SPEC 2, "Directory sync"): a postoffice export is authoritative
 * for that postoffice's entries; a replication document is applied change by
 * change, idempotently and in any order.  Exports the global address list,
 * replication documents and the canonical directory.
 * Never: XML (sync_xml.h), routing decisions (dir_route.h), configuration
 * files.  Works on SyncDoc / DirEntry in memory only.
 *
 * Rules (docs/sync-format.md has the user's view):
 *  - Every live entry has exactly one primary (SMTP:) proxy (SPEC 1); an
 *    import that would store one without is refused.
 *  - Proxies are compared without case, local part included, as Postfix's
 *    lookups do (key: local@domain all in ASCII lower case, dir_proxy_key);
 *    they are kept as written, for display and for what goes out.  Two
 *    proxies that differ only in case are the same proxy: within an entry
 *    it is listed twice, between entries a clash like any other.  A proxy is
 *    claimed by every live entry that lists it; its effective owner is the
 *    claimant whose current state has the lowest (origin site, USN) (byte
 *    order of the site name, then the number).  Between peers' entries that
 *    is a pure function of the set of entry states, so every site that
 *    holds the same states agrees.  Lookups and routing use effective
 *    ownership only.  Several live entries with one legacy address
 *    (possible only across origins) resolve the same way.
 *  - This site is authoritative for the entries of the postoffices it
 *    serves (SPEC 2; "ours"): only its postoffice imports change them.  A
 *    replication change about one (by its id's stored entry, or by its own
 *    legacy address or home) is ignored, counted in DirImportStats.ignored
 *    and reported once per import naming the sending site.  An entry homed
 *    here on a postoffice no longer served is not ours.
 *  - A postoffice import refuses a proxy that it adds to an entry when
 *    another of our live entries claims it, naming both (an entry the same
 *    file deletes claims nothing); against a peer's entry it wins: the
 *    peer's claim is dropped, logged and counted (proxy_losses).  A
 *    replication import never refuses a clash: a claim of a proxy that one
 *    of our entries holds is not recorded at all (logged, counted); between
 *    peers' entries the loser keeps its claim stored, the loss is logged and
 *    counted (DirImportStats and DirStats proxy_losses).  A claim dropped or
 *    not recorded stays so for as long as that state of the peer's entry
 *    lasts: the deletion of our entry promotes nothing; a later state from
 *    the entry's origin claims afresh.  (A database from before this rule
 *    may hold a peer's claim beside ours: the postoffice import drops it
 *    when our entry changes or gives the proxy up.)  The stored states (and so the
 *    canonical export) stay the same at every site; ownership of a proxy
 *    that one site's own entry claims may differ between sites.
 *  - A postoffice export names entries by legacy address: a name the
 *    directory knows (live) is that entry, with its id; a new name is a new
 *    entry with a new id, SITE:INCARNATION:USN (the incarnation is random,
 *    made with the database, so ids are never reused); a name the export
 *    leaves out becomes a tombstone.  Each change is stamped origin = this
 *    site, the next USN, version + 1, changed = now, home = this site.
 *  - Conflicts between two states of one entry id: the higher version wins;
 *    at equal version the lexicographically lower origin site wins; at equal
 *    origin the higher USN wins.  Tombstones are states like any other.
 *    Changes whose origin is this site, and changes about our entries, are
 *    never taken from a peer.
 *  - Replication: an export for a peer holds every state whose origin is not
 *    the peer and whose USN is above what the peer last reported having
 *    seen of that origin (its vector, recorded when this site imports the
 *    peer's replication file).  An import takes the sender's vector into
 *    this site's (per site, the maximum).  A state for an id this site does
 *    not hold, at or below its vector, was seen and purged: it is ignored,
 *    so a replayed old file never resurrects a deleted entry.
 *  - Tombstones are kept tombstone_lifetime seconds, then purged by the
 *    next import; a peer that has not synchronised for longer than that may
 *    miss deletions (as in every tombstone-based directory).
 *  - Templates ([site] proxy_templates) only ever add: an entry keeps every
 *    proxy it has and its primary.  A new entry gets every template's
 *    address, the first SMTP: one as primary (other SMTP: ones as
 *    secondaries).  An existing entry gets, on the next import of its
 *    postoffice, the template addresses it lacks, as secondaries (smtp:);
 *    each such entry is a change, counted in DirImportStats.templated and
 *    logged once per import.  Removing or changing a template removes
 *    nothing and never changes a primary.  An entry of a postoffice export
 *    that lists proxies itself gets exactly those (the in-memory model
 *    allows it; sync files of kind postoffice carry none).
 *  - Every import that changes entries or proxies bumps the directory's
 *    generation, and after it commits rebuilds the proxy map beside the
 *    database (state_dir/directory.map, dir_map.h) for that generation; a
 *    failure to build it only warns.  Read batches answer SMTP keys from
 *    the map when it holds their snapshot's generation, else from SQLite:
 *    the same answers either way.
 *
 * One DirStore is one SQLite connection: use it from one thread.
 */
#ifndef PG_DIR_STORE_H
#define PG_DIR_STORE_H

#include <glib.h>

#include "address.h"
#include "dir_types.h"

#define DIR_ERROR (dir_error_quark())
GQuark dir_error_quark(void);

typedef enum {
	DIR_ERROR_IO,            /* the database failed */
	DIR_ERROR_CLASH,         /* a proxy clash inside one import */
	DIR_ERROR_INVALID,       /* an entry or document breaks a rule */
	DIR_ERROR_NOT_OURS,      /* a postoffice this site does not serve, or entries
	                          * of another postoffice in a postoffice export */
	DIR_ERROR_SCHEMA_VERSION,/* directory.db is newer than this program */
} DirError;

/* The schema version this code creates and understands. */
#define DIR_SCHEMA_VERSION 2

/* A peer site: [site-link NAME] domains = ... */
typedef struct {
	const char *name;
	const char *const *domains;          /* lower case, NULL-terminated */
} DirPeer;

/* What the directory needs to know of this site's configuration. */
typedef struct {
	const char *site;                    /* [site] name */
	const char *const *domains;          /* [site] domains, lower case, NULL-terminated */
	const char *const *templates;        /* [site] proxy_templates, NULL-terminated:
	                                      * "SMTP:%m@example.com" ... (%m mailbox,
	                                      * %p postoffice, %n network, lower case;
	                                      * %% a percent sign) */
	const char *const *postoffices;      /* NET/PO this site serves, gateway_po
	                                      * included, NULL-terminated */
	const DirPeer *peers;                /* [site-link NAME] groups */
	guint n_peers;
	gint64 tombstone_lifetime;           /* seconds; 0: never purge */
	const char *postmaster;              /* NET/PO/MAILBOX that postmaster (bare or
	                                      * at a site domain) goes to; NULL: none */
} DirContext;

typedef struct {
	guint added;         /* new entries (replication: also a live state for a tombstone) */
	guint changed;       /* entries whose state changed */
	guint deleted;       /* entries that became tombstones */
	guint unchanged;     /* postoffice export: entries already as the file says */
	guint ignored;       /* replication: changes already seen, older, our own, or
	                      * about entries of postoffices this site serves */
	guint proxy_losses;  /* claims that lost a clash between origins, or to an
	                      * entry of a postoffice this site serves */
	guint templated;     /* postoffice export: existing entries given proxies from
	                      * templates they lacked (a template change) */
	guint purged;        /* tombstones older than tombstone_lifetime removed */
} DirImportStats;

typedef struct DirStore DirStore;

/* dir_open - open or create the directory database at path, migrating it */
DirStore *dir_open(const char *path, GError **error);
/* dir_close - close the database; NULL is fine */
void dir_close(DirStore *d);

/* dir_import - apply one sync document in one transaction; on error nothing changes */
gboolean dir_import(DirStore *d, const DirContext *ctx, const SyncDoc *doc,
    DirImportStats *stats, GError **error);

/* The same import in steps, for a streaming reader that never holds a whole
 * document (sync_read_file_each): begin with the document's head (kind,
 * postoffice, from_site, for_site, vector; head->entries is not read; the
 * head is copied), give each entry, then commit.  ctx must live until
 * commit or abort.  After a failed dir_import_entry call dir_import_abort;
 * dir_import_commit frees the import whatever it returns. */
typedef struct DirImport DirImport;
/* dir_import_begin - start an import transaction for a document's head */
DirImport *dir_import_begin(DirStore *d, const DirContext *ctx, const SyncDoc *head,
    GError **error);
/* dir_import_entry - apply one entry of the document being imported */
gboolean dir_import_entry(DirImport *im, const DirEntry *e, GError **error);
/* dir_import_commit - finish (tombstones, clash checks, vectors, purge) and commit */
gboolean dir_import_commit(DirImport *im, DirImportStats *stats, GError **error);
/* dir_import_abort - roll the import back and free it; NULL is fine */
void dir_import_abort(DirImport *im);

/* dir_export_gal - every live entry with its primary proxy (when it owns it), by legacy */
SyncDoc *dir_export_gal(DirStore *d, const DirContext *ctx, const char *postoffice,
    GError **error);
/* dir_export_replication - the entry states for_site has not seen, tombstones included */
SyncDoc *dir_export_replication(DirStore *d, const DirContext *ctx, const char *for_site,
    GError **error);
/* dir_export_canonical - every live entry by id, proxies and members sorted, no stamps */
SyncDoc *dir_export_canonical(DirStore *d, GError **error);

/* A callback given each entry of an export in order; FALSE (and error) stops it. */
typedef gboolean (*DirEntryFunc)(const DirEntry *e, gpointer data, GError **error);
/* dir_export_each - an export as dir_export_* builds it, entry by entry: no
 * whole directory in memory.  Returns the document's head (entries empty)
 * or NULL and error.  kind SYNC_GAL takes arg = postoffice, SYNC_REPLICATION
 * arg = for_site, SYNC_CANONICAL no arg (ctx may be NULL). */
SyncDoc *dir_export_each(DirStore *d, const DirContext *ctx, SyncKind kind,
    const char *arg, DirEntryFunc func, gpointer data, GError **error);

/* dir_lookup - the entry an address reaches (SMTP with or without SMTP:, or legacy) */
DirEntry *dir_lookup(DirStore *d, const char *address, GError **error);
/* dir_address_parse - an address as lookups take it: local@domain (SMTP:/smtp:
 * prefix optional; without one, a quoted local part is taken too, and finds
 * nothing) or NET/PO/MAILBOX; DIR_ERROR_INVALID when bad */
gboolean dir_address_parse(const char *address, PgAddr *out, GError **error);
/* dir_lookup_addr - dir_lookup of an address already parsed */
DirEntry *dir_lookup_addr(DirStore *d, const PgAddr *a, GError **error);
/* What routing needs of an entry, read with one index lookup and no allocation. */
typedef struct {
	gint64 rid;                          /* the entry's row, for dir_brief_entry */
	DirType type;
	char legacy[ADDR_LEGACY_MAX + 1];
	char home_site[DIR_SITE_MAX + 1];
	char target[ADDR_SMTP_MAX + 6];      /* custom: SMTP:local@domain; else "" */
	gboolean proxies_known;              /* whether proxies holds them all */
	char proxies[1024];                  /* the entry's proxies, '\n'-joined, when
	                                      * known (found by its primary or its
	                                      * legacy address, and short enough) */
} DirBrief;

/* dir_brief - the entry a parsed address reaches, in brief; *found FALSE when none */
gboolean dir_brief(DirStore *d, const PgAddr *a, DirBrief *out, gboolean *found,
    GError **error);
/* dir_brief_entry - the whole live entry of a brief; NULL when it is gone */
DirEntry *dir_brief_entry(DirStore *d, const DirBrief *b, GError **error);
/* dir_get - the stored state of an entry id, tombstone included; NULL when unknown */
DirEntry *dir_get(DirStore *d, const char *id, GError **error);
/* dir_proxy_owner - the id of the entry that effectively owns an SMTP address */
char *dir_proxy_owner(DirStore *d, const char *address, GError **error);
/* dir_list - live entries of a DirType (or all when type is -1), by legacy, each
 * with the proxies it effectively owns (a claim lost in a clash is left out) */
GPtrArray *dir_list(DirStore *d, int type, GError **error);

typedef struct {
	guint mailboxes, customs, lists;     /* live entries */
	guint tombstones;
	guint proxies;                       /* claims of live entries */
	guint proxy_losses;                  /* claims that lost a clash */
	guint64 usn;                         /* this site's last USN */
	GHashTable *vector;                  /* site -> guint64 *: highest USN seen */
	guint64 generation;                  /* imports that changed entries or proxies */
	gboolean map_current;                /* directory.map holds this generation */
} DirStats;

/* dir_stats - counts, this site's USN and its up-to-dateness vector */
gboolean dir_stats(DirStore *d, DirStats *out, GError **error);
/* dir_stats_clear - free what dir_stats stored */
void dir_stats_clear(DirStats *s);

/* Lookups, routes, exports and stats each read one consistent snapshot.
 * Many of them in a row (a queue run routing its recipients, a benchmark)
 * may share one read transaction, which saves its cost on every call: begin
 * a read batch, call them, end it.  Batches nest (dir_route opens one of its
 * own).  Never hold a batch open while waiting for anything: it pins the
 * database's write-ahead log.  No import may begin inside a batch.  A read
 * batch maps the database into memory (PRAGMA mmap_size) and leaves it
 * mapped for later reads; an import unmaps it first.  In a batch, dir_brief
 * answers SMTP keys from the proxy map when it is current (dir_read_mapped). */
/* dir_read_begin - open (or nest into) a read batch: one snapshot for what follows */
gboolean dir_read_begin(DirStore *d, GError **error);
/* dir_read_end - close one level of read batch */
void dir_read_end(DirStore *d);
/* dir_read_mapped - whether the read batch open answers SMTP keys from directory.map */
gboolean dir_read_mapped(DirStore *d);
/* dir_map_defer - while TRUE, imports leave the proxy map alone; FALSE rebuilds it once */
void dir_map_defer(DirStore *d, gboolean defer);
/* dir_rebuild_map - build directory.map from one snapshot, unless (without
 * force) it already holds the database's generation; not inside a batch or
 * an import.  Errors: DIR_ERROR_IO (the database), DIR_MAP_ERROR (the file) */
gboolean dir_rebuild_map(DirStore *d, gboolean force, GError **error);

/* dir_proxy_key - the comparison key of an SMTP address: local@domain all in
 * (ASCII) lower case; accepts SMTP:/smtp: prefixes; NULL and error when invalid */
char *dir_proxy_key(const char *address, GError **error);
/* dir_set_now - tests: pin the clock at now (seconds); 0 for the real clock */
void dir_set_now(DirStore *d, gint64 now);

#endif
