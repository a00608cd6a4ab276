/* dir_types.h - the directory's entries and sync documents, in memory.
 *
 * Owns: the model every directory module shares (docs/sync-format.md):
 * an entry (mailbox, custom recipient, distribution list) with its immutable
 * id, legacy address, display name, proxy addresses and replication stamp;
 * a sync document (one of the sync file kinds) as a list of entries; the
 * one set of rules for ids, site names and display names.
 * Never: storage (dir_store.h), XML (sync_xml.h) or routing (dir_route.h).
 */
#ifndef PG_DIR_TYPES_H
#define PG_DIR_TYPES_H

#include <glib.h>

#define DIR_ID_MAX        64u    /* entry ids: [A-Za-z0-9._:-] */
#define DIR_SITE_MAX      32u    /* site names: [A-Za-z0-9_-] */
#define DIR_NAME_MAX      255u   /* display names, UTF-8 bytes */
#define DIR_MAX_PROXIES   64u    /* proxies of one entry */
#define DIR_MAX_MEMBERS   10000u /* members of one list */
#define DIR_MAX_NESTING   32u    /* list expansion depth */

typedef enum {
	DIR_MAILBOX = 0,   /* a user at a postoffice */
	DIR_CUSTOM = 1,    /* an external SMTP contact legacy users can address */
	DIR_LIST = 2,      /* a distribution list: members by legacy address */
} DirType;

typedef struct {
	char *id;          /* immutable; a rename keeps it */
	DirType type;
	char *legacy;      /* canonical NET/PO/NAME */
	char *home_site;   /* the site whose postoffice holds the entry */
	char *name;        /* display name, UTF-8, may be "" */
	char *target;      /* custom: canonical SMTP:local@domain; else NULL */
	GPtrArray *proxies;/* char *: "SMTP:..." (exactly one, the primary) and "smtp:..." */
	GPtrArray *members;/* list: char * legacy addresses of the members */
	gboolean deleted;  /* a tombstone */
	/* Replication stamp of the change that made this state. */
	char *origin;      /* site that made the change */
	guint64 usn;       /* origin's update sequence number, from 1 */
	guint64 version;   /* per entry, +1 on every change; conflicts: higher wins,
	                    * then the lower origin site name */
	gint64 changed;    /* when, seconds since the epoch */
} DirEntry;

typedef enum {
	SYNC_POSTOFFICE,   /* a postoffice's own entries: authoritative for it */
	SYNC_GAL,          /* what a postoffice's users can address */
	SYNC_REPLICATION,  /* changes a peer site has not yet seen */
	SYNC_CANONICAL,    /* the whole directory, sorted, no stamps: for comparing */
} SyncKind;

typedef struct {
	SyncKind kind;
	char *postoffice;  /* POSTOFFICE, GAL: canonical NET/PO */
	char *from_site;   /* REPLICATION: the exporting site */
	char *for_site;    /* REPLICATION: the site it is for */
	GHashTable *vector;/* REPLICATION: site -> guint64 * highest USN from_site has */
	GPtrArray *entries;/* DirEntry *, in document order */
} SyncDoc;

/* dir_entry_new - an empty entry of a type, lists allocated */
DirEntry *dir_entry_new(DirType type);
/* dir_entry_free - free an entry */
void dir_entry_free(DirEntry *e);
/* dir_entry_copy - a deep copy */
DirEntry *dir_entry_copy(const DirEntry *e);
/* dir_type_name - "mailbox", "custom" or "list" */
const char *dir_type_name(DirType type);
/* dir_type_parse - the DirType of a name; FALSE when unknown */
gboolean dir_type_parse(const char *name, DirType *out);
/* dir_primary - the primary (SMTP:) proxy of an entry, or NULL */
const char *dir_primary(const DirEntry *e);
/* dir_strings_equal - whether two lists of strings (proxies, members) are
 * the same, in the same order */
gboolean dir_strings_equal(const GPtrArray *a, const GPtrArray *b);
/* The rules for a directory's names, the same wherever a name enters (a
 * sync file, the store, the configuration's site): */
/* dir_check_id - whether text is an entry id (1-64 of A-Z a-z 0-9 . _ : -) */
gboolean dir_check_id(const char *text, size_t len);
/* dir_check_site - whether text is a site name (1-32 of A-Z a-z 0-9 _ -) */
gboolean dir_check_site(const char *text, size_t len);
/* dir_check_display - why text is not a display name (UTF-8, at most
 * DIR_NAME_MAX bytes, no C0 or C1 control character nor DEL), or NULL */
const char *dir_check_display(const char *text, size_t len);
/* sync_doc_new - an empty document of a kind */
SyncDoc *sync_doc_new(SyncKind kind);
/* sync_doc_free - free a document and its entries */
void sync_doc_free(SyncDoc *doc);
/* sync_kind_name - "postoffice", "gal", "replication" or "canonical" */
const char *sync_kind_name(SyncKind kind);

#endif
