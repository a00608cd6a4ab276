/* sync_xml_int.h - what the files of the sync file reader and writer share
 * (private; sync_xml.h is the interface).
 *
 *   sync_xml.c       element and attribute names, which attributes each
 *                    element takes, the value checks reader and writer share,
 *                    limits, comparison of documents
 *   sync_read.c      the reader: libxml2's push parser, its hardening, the
 *                    attribute pre-scan, files and buffers
 *   sync_read_sax.c  the reader's SAX callbacks: each element and attribute
 *                    checked as it arrives, entries handed to the sink
 *   sync_write.c     the writer
 * Names here carry sx_; nothing outside those files includes this header.
 */
#ifndef PG_SYNC_XML_INT_H
#define PG_SYNC_XML_INT_H

#include <libxml/parser.h>

#include "sync_xml.h"

typedef enum {
	EL_NONE,
	EL_SYNC,
	EL_MAILBOX,     /* postoffice */
	EL_CUSTOM,      /* postoffice */
	EL_LIST,        /* postoffice */
	EL_MEMBER_REF,  /* postoffice: <member address="..."/> in a <list> */
	EL_ENTRY,       /* gal and canonical */
	EL_VECTOR,      /* replication */
	EL_SEEN,        /* replication */
	EL_CHANGE,      /* replication */
	EL_PROXY,       /* replication and canonical: text */
	EL_MEMBER,      /* replication and canonical: text */
} Elem;
#define SX_N_ELEMS (EL_MEMBER + 1)

typedef enum {
	AT_VERSION, AT_KIND, AT_POSTOFFICE, AT_FROM, AT_FOR, AT_NAME, AT_DISPLAY,
	AT_TARGET, AT_ADDRESS, AT_TYPE, AT_SMTP, AT_ID, AT_ORIGIN, AT_USN, AT_CHANGED,
	AT_HOME, AT_LEGACY, AT_DELETED, AT_SITE, AT_COUNT
} Attr;

#define BIT(a) (1u << (a))

extern const char *const sx_elem_names[SX_N_ELEMS];
extern const char *const sx_attr_names[AT_COUNT];
extern guint64 sx_limit_file_size;
extern guint sx_limit_entries;

/* ---- the reader's state (sync_read.c, sync_read_sax.c) ---- */

typedef struct {
	Elem el;
	guint line;
} Frame;

typedef struct {
	const char *name;          /* the file, for messages */
	xmlParserCtxtPtr ctxt;
	const SyncSink *sink;
	gpointer data;
	gboolean collect;          /* entries go into doc (sync_read_*) */
	SyncDoc *doc;              /* from the root on: header, and entries if collect */
	gboolean header_sent;
	gboolean root_closed;
	gboolean terminating;      /* in the parser's last call */
	GError *error;             /* the first problem; it stops the parser */
	guint depth;
	Frame stack[SYNC_MAX_DEPTH];
	gboolean vector_seen, change_seen;
	GHashTable *seen_lines;    /* vector: site -> line */
	DirEntry *cur;             /* the entry being read */
	guint primary_line;        /* line of cur's SMTP: proxy, 0 when none yet */
	GHashTable *cur_members;   /* member -> line, in cur */
	GString *text;             /* text of a <proxy> or <member> */
	GHashTable *keys;          /* name, address or id -> line of its entry */
	GStringChunk *key_chunk;
	guint entries;
	GString *abuf;             /* the current element's attribute values */
	gsize aoff[AT_COUNT];
	gsize alen[AT_COUNT];
	guint have;                /* BIT(attr) for each one present */
	/* The attribute count, on the raw bytes ahead of the parser (scan) */
	int scan;                  /* SC_* */
	char scan_quote;           /* the quote of the value being scanned, or 0 */
	guint scan_run;            /* '-', ']' or '?' just before (ends of markup) */
	guint scan_attrs;          /* attributes of the start tag being scanned */
	guint scan_line;           /* line of the next byte, from 1 */
	gboolean scan_naming;      /* still in the start tag's name */
	char scan_name[48];        /* its first bytes, for the message */
	guint scan_name_len;
} Reader;

/* sync_xml.c */
void sx_attr_rules(Elem el, SyncKind kind, guint *allowed, guint *required);
gboolean sx_parse_number(const char *s, size_t len, guint64 min, guint64 *out);
char *sx_canon_legacy(const char *text, size_t len, char **why);
char *sx_canon_smtp(const char *text, size_t len, char **why);
char *sx_canon_proxy(const char *text, size_t len, char **why);
char *sx_canon_target(const char *text, size_t len, char **why);
int sx_compare_str(gconstpointer a, gconstpointer b);
int sx_compare_plain(gconstpointer a, gconstpointer b);

/* sync_read.c */
void sx_fail(Reader *r, guint line, SyncError code, const char *fmt, ...) G_GNUC_PRINTF(4,
    5);
void sx_fail_with(Reader *r, GError *e);
guint sx_cur_line(Reader *r);
const char *sx_attr(Reader *r, Attr a);

/* sync_read_sax.c */
char *sx_shown_name(const char *local);
gboolean sx_send_header(Reader *r);
void sx_on_start(void *ctx, const xmlChar *localname, const xmlChar *prefix,
    const xmlChar *uri, int nb_ns, const xmlChar **ns, int nb_attrs, int nb_defaulted,
    const xmlChar **attrs);
void sx_on_end(void *ctx, const xmlChar *localname, const xmlChar *prefix,
    const xmlChar *uri);
void sx_on_text(void *ctx, const xmlChar *ch, int len);

#endif
