/* sync_xml.h - directory sync files, version 1 (docs/sync-format.md, docs/sync.xsd).
 *
 * Owns: reading and checking a sync file as a whole (postoffice export,
 * global address list, site replication, canonical dump) into a SyncDoc, and
 * writing a SyncDoc as a sync file that this reader accepts.  Reading is
 * streaming (libxml2's push parser, fed in chunks) and hardened: no network,
 * no DTD, no entity of any kind, a refusing external entity loader, named
 * limits on size, depth and counts; every address goes through
 * postoffice/address.h.  A file is accepted or refused whole; a refusal is a
 * GError in SYNC_ERROR reading "FILE:LINE: what is wrong".
 * Never: storage, replication decisions (which change wins), routing, or
 * whether a postoffice may send what it claims (the importer decides that).
 */
#ifndef PG_SYNC_XML_H
#define PG_SYNC_XML_H

#include <stddef.h>
#include <glib.h>

#include "dir_types.h"

#define SYNC_NAMESPACE      "urn:postgate:sync:1"
#define SYNC_VERSION        "1"

#define SYNC_MAX_FILE_SIZE  (1024u * 1024 * 1024)  /* bytes of one sync file */
#define SYNC_MAX_DEPTH      8                       /* element nesting */
#define SYNC_MAX_ENTRIES    5000000u                /* entries or changes in one file */
#define SYNC_MAX_SITES      1000u                   /* <seen> in one vector */
#define SYNC_MAX_TEXT       1024u                   /* text of one <proxy> or <member> */
#define SYNC_MAX_ATTRS      32u                     /* attributes of one start tag,
                                                     * namespace declarations included */

#define SYNC_ERROR (sync_error_quark())
GQuark sync_error_quark(void);

typedef enum {
	SYNC_ERROR_IO,          /* the file cannot be read or written */
	SYNC_ERROR_XML,         /* not well-formed XML (libxml2's diagnosis) */
	SYNC_ERROR_SCHEMA,      /* well-formed but not a valid sync file */
	SYNC_ERROR_LIMIT,       /* a named limit is exceeded */
	SYNC_ERROR_FORBIDDEN,   /* DOCTYPE, entities, external references */
} SyncError;

/* Where the _each readers hand a document, part by part, in file order.
 * Either callback may be NULL.  An error set by a callback ends the read and
 * is returned unchanged. */
typedef struct {
	/* header - once, before the first entry (or at the end when there is
	 * none): doc holds the kind, the root's attributes and the vector,
	 * never entries; it belongs to the reader */
	gboolean (*header)(const SyncDoc *doc, gpointer data, GError **error);
	/* entry - one checked entry, which the callee now owns; line is where
	 * its start tag ends */
	gboolean (*entry)(DirEntry *entry, guint line, gpointer data, GError **error);
} SyncSink;

/* sync_read_file - parse and validate a sync file; errors are "FILE:LINE: what is wrong" */
SyncDoc *sync_read_file(const char *path, GError **error);
/* sync_read_memory - the same for len bytes named name (never trusts a NUL) */
SyncDoc *sync_read_memory(const char *name, const char *buf, size_t len, GError **error);
/* sync_read_file_each - sync_read_file handing each entry to sink as soon as it is
 * checked, without holding the document: on FALSE the caller drops what it got */
gboolean sync_read_file_each(const char *path, const SyncSink *sink, gpointer data,
    GError **error);
/* sync_read_memory_each - sync_read_memory, entry by entry as sync_read_file_each */
gboolean sync_read_memory_each(const char *name, const char *buf, size_t len,
    const SyncSink *sink, gpointer data, GError **error);

/* sync_write - append the XML of doc to out (nothing appended on error) */
gboolean sync_write(const SyncDoc *doc, GString *out, GError **error);
/* sync_write_file - write doc to path atomically (atomic_write_file), or to stdout when path is NULL or "-" */
gboolean sync_write_file(const SyncDoc *doc, const char *path, GError **error);

/* sync_doc_equal - whether two documents have the same kind, header, vector
 * and entries in the same order (a NULL display name equals "") */
gboolean sync_doc_equal(const SyncDoc *a, const SyncDoc *b);
/* sync_entry_equal - whether two entries are equal field by field, stamps included */
gboolean sync_entry_equal(const DirEntry *a, const DirEntry *b);

/* sync_set_limits_for_tests - lower the file size and entry limits (0: the
 * defaults above); process-wide, for tests only */
void sync_set_limits_for_tests(guint64 max_file_size, guint max_entries);

#endif
