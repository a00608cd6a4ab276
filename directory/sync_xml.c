/* sync_xml.c - read and write directory sync files, version 1 (see sync_xml.h).
 *
 * Implements docs/sync-format.md.  The reader is libxml2's push parser with a
 * SAX2 handler of our own, fed in chunks: no tree is built, every element
 * and attribute is checked as it arrives, and the line of every element is
 * exact however long the file (a tree node keeps only 16 bits of its line).
 * Hardening: options XML_PARSE_NONET | XML_PARSE_BIG_LINES only (never
 * NOENT, DTDLOAD, DTDATTR, DTDVALID, XINCLUDE or HUGE); the DOCTYPE is
 * refused from the SAX callback that announces it, before any internal
 * subset is parsed, so no entity is ever declared, let alone expanded; entity
 * references, entity declarations and external resolutions are refused too,
 * and the process-wide external entity loader refuses everything; libxml2's
 * own diagnostics go to this reader, never to stderr.  The first problem
 * stops the parser; nothing read before it is kept.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/SAX2.h>
#include <libxml/xmlerror.h>

#include "address.h"
#include "atomic_write.h"
#include "sync_xml.h"

G_DEFINE_QUARK(postgate-sync-error-quark, sync_error)

#define CHUNK_SIZE  (64u * 1024)   /* bytes handed to the parser at a time */
#define DECL_SCAN   1024u          /* bytes searched for the XML declaration */

static guint64 limit_file_size = SYNC_MAX_FILE_SIZE;
static guint limit_entries = SYNC_MAX_ENTRIES;

void
sync_set_limits_for_tests(guint64 max_file_size, guint max_entries)
{
	limit_file_size = max_file_size ? max_file_size : SYNC_MAX_FILE_SIZE;
	limit_entries = max_entries ? max_entries : SYNC_MAX_ENTRIES;
}

/* ---- names ---------------------------------------------------------------- */

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

static const char *const elem_names[] = {
	"", "sync", "mailbox", "custom", "list", "member", "entry", "vector", "seen",
	"change", "proxy", "member",
};

typedef enum {
	AT_VERSION, AT_KIND, AT_POSTOFFICE, AT_FROM, AT_FOR, AT_NAME, AT_DISPLAY,
	AT_TARGET, AT_ADDRESS, AT_TYPE, AT_SMTP, AT_ID, AT_ORIGIN, AT_USN, AT_CHANGED,
	AT_HOME, AT_LEGACY, AT_DELETED, AT_SITE, AT_COUNT
} Attr;

static const char *const attr_names[AT_COUNT] = {
	"version", "kind", "postoffice", "from", "for", "name", "display", "target",
	"address", "type", "smtp", "id", "origin", "usn", "changed", "home", "legacy",
	"deleted", "site",
};

#define BIT(a) (1u << (a))

/* The attributes an element may have, and those it must have. */
static void
attr_rules(Elem el, SyncKind kind, guint *allowed, guint *required)
{
	*allowed = *required = 0;
	switch (el) {
	case EL_SYNC:
		*allowed = BIT(AT_VERSION) | BIT(AT_KIND) | BIT(AT_POSTOFFICE) | BIT(AT_FROM) |
		    BIT(AT_FOR);
		break;
	case EL_MAILBOX:
	case EL_LIST:
		*allowed = BIT(AT_NAME) | BIT(AT_DISPLAY);
		*required = BIT(AT_NAME);
		break;
	case EL_CUSTOM:
		*allowed = BIT(AT_NAME) | BIT(AT_DISPLAY) | BIT(AT_TARGET);
		*required = BIT(AT_NAME) | BIT(AT_TARGET);
		break;
	case EL_MEMBER_REF:
		*allowed = *required = BIT(AT_ADDRESS);
		break;
	case EL_ENTRY:
		if (kind == SYNC_GAL) {
			*allowed = BIT(AT_TYPE) | BIT(AT_ADDRESS) | BIT(AT_DISPLAY) | BIT(AT_SMTP);
			*required = BIT(AT_TYPE) | BIT(AT_ADDRESS);
		} else {
			*allowed = BIT(AT_ID) | BIT(AT_TYPE) | BIT(AT_HOME) | BIT(AT_LEGACY) |
			    BIT(AT_DISPLAY) | BIT(AT_TARGET) | BIT(AT_DELETED);
			*required = BIT(AT_ID) | BIT(AT_TYPE) | BIT(AT_HOME) | BIT(AT_LEGACY);
		}
		break;
	case EL_SEEN:
		*allowed = *required = BIT(AT_SITE) | BIT(AT_USN);
		break;
	case EL_CHANGE:
		*required = BIT(AT_ID) | BIT(AT_TYPE) | BIT(AT_ORIGIN) | BIT(AT_USN) |
		    BIT(AT_VERSION) | BIT(AT_CHANGED) | BIT(AT_HOME) | BIT(AT_LEGACY);
		*allowed = *required | BIT(AT_DISPLAY) | BIT(AT_TARGET) | BIT(AT_DELETED);
		break;
	default:
		break;
	}
}

/* ---- checks shared by the reader and the writer -------------------------- */

/* A printable, quoted rendering of untrusted text for messages. */
static char *
shown(const char *text, size_t len)
{
	GString *s = g_string_new("\"");

	for (size_t i = 0; i < len && i < 80; i++) {
		unsigned char c = (unsigned char)text[i];
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
			g_string_append_c(s, (char)c);
		else
			g_string_append_printf(s, "\\x%02x", c);
	}
	if (len > 80)
		g_string_append(s, "...");
	g_string_append_c(s, '"');
	return g_string_free(s, FALSE);
}

/* A decimal number without sign or leading zero, at least min, at most
 * G_MAXINT64 (so that SQLite stores it). */
static gboolean
parse_number(const char *s, size_t len, guint64 min, guint64 *out)
{
	guint64 v = 0;

	if (len == 0 || len > 19 || (s[0] == '0' && len > 1))
		return FALSE;
	for (size_t i = 0; i < len; i++) {
		if (!g_ascii_isdigit(s[i]))
			return FALSE;
		v = v * 10 + (guint64)(s[i] - '0');
	}
	if (v < min || v > (guint64)G_MAXINT64)
		return FALSE;
	*out = v;
	return TRUE;
}

/* The canonical legacy address of text, or NULL and why (g_free it). */
static char *
canon_legacy(const char *text, size_t len, char **why)
{
	PgAddr a;
	GError *e = NULL;

	if (!addr_parse(text, len, &a, &e)) {
		*why = g_strdup(e->message);
		g_error_free(e);
		return NULL;
	}
	if (a.kind != ADDR_KIND_LEGACY) {
		char *q = shown(text, len);
		*why = g_strdup_printf("%s is not a legacy address NET/PO/MAILBOX", q);
		g_free(q);
		return NULL;
	}
	return addr_format(&a);
}

/* The canonical local@domain of text (no prefix), or NULL and why. */
static char *
canon_smtp(const char *text, size_t len, char **why)
{
	char out[ADDR_SMTP_MAX + 1];
	GError *e = NULL;

	if (!addr_parse_smtp(text, len, out, &e)) {
		*why = g_strdup(e->message);
		g_error_free(e);
		return NULL;
	}
	return g_strdup(out);
}

/* The canonical text of a proxy, "SMTP:" or "smtp:" then local@domain. */
static char *
canon_proxy(const char *text, size_t len, char **why)
{
	char *addr, *full;

	if (len < 5 || (memcmp(text, "SMTP:", 5) != 0 && memcmp(text, "smtp:", 5) != 0)) {
		char *q = shown(text, len);
		*why = g_strdup_printf("%s: a proxy is SMTP:local@domain (the primary) or "
		    "smtp:local@domain (a secondary)", q);
		g_free(q);
		return NULL;
	}
	if (!(addr = canon_smtp(text + 5, len - 5, why)))
		return NULL;
	full = g_strconcat(text[0] == 'S' ? "SMTP:" : "smtp:", addr, NULL);
	g_free(addr);
	return full;
}

/* The canonical target of a custom recipient: "SMTP:local@domain". */
static char *
canon_target(const char *text, size_t len, char **why)
{
	PgAddr a;
	GError *e = NULL;

	if (!addr_parse(text, len, &a, &e)) {
		*why = g_strdup(e->message);
		g_error_free(e);
		return NULL;
	}
	if (a.kind != ADDR_KIND_SMTP) {
		*why = g_strdup("a target is an SMTP: address");
		return NULL;
	}
	return addr_format(&a);
}

/* For g_ptr_array_sort: the array holds char *. */
static int
compare_str(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* For g_list_sort: the list holds char *. */
static int
compare_plain(gconstpointer a, gconstpointer b)
{
	return strcmp(a, b);
}

/* ---- the reader ----------------------------------------------------------- */

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

static GPrivate current_reader = G_PRIVATE_INIT(NULL);

static void fail(Reader *r, guint line, SyncError code, const char *fmt, ...)
    G_GNUC_PRINTF(4, 5);

static void
fail(Reader *r, guint line, SyncError code, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	if (r->error)
		return;
	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	r->error = g_error_new(SYNC_ERROR, code, "%s:%u: %s", r->name, line, msg);
	g_free(msg);
	if (r->ctxt)
		xmlStopParser(r->ctxt);
}

/* A problem that comes as a GError (from a sink): kept as it is. */
static void
fail_with(Reader *r, GError *e)
{
	if (r->error) {
		g_error_free(e);
		return;
	}
	r->error = e ? e : g_error_new(SYNC_ERROR, SYNC_ERROR_IO, "%s: refused by the importer",
	    r->name);
	if (r->ctxt)
		xmlStopParser(r->ctxt);
}

static guint
cur_line(Reader *r)
{
	int line = r->ctxt ? xmlSAX2GetLineNumber(r->ctxt) : 0;

	return line > 0 ? (guint)line : 0;
}

static const char *
attr(Reader *r, Attr a)
{
	return r->have & BIT(a) ? r->abuf->str + r->aoff[a] : NULL;
}

/* libxml2 diagnostics: the first error becomes ours; warnings are dropped. */
static void
on_xml_error(void *ctx, xmlErrorPtr e)
{
	Reader *r = g_private_get(&current_reader);
	GString *msg;

	if (!r || r->error || !e || e->level < XML_ERR_ERROR)
		return;
	msg = g_string_new(NULL);
	for (const char *p = e->message ? e->message : "unknown error"; *p; p++)
		g_string_append_c(msg, (*p >= 0x20 && *p != 0x7f) || (*p & 0x80) ? *p : ' ');
	if (msg->len > 300)   /* libxml2 quotes names, which may be long */
		g_string_truncate(msg, 300);
	g_strchomp(msg->str);
	if (!g_utf8_validate(msg->str, -1, NULL)) {
		char *valid = g_utf8_make_valid(msg->str, -1);
		g_string_assign(msg, valid);
		g_free(valid);
	}
	if (r->terminating && e->code == XML_ERR_DOCUMENT_END && r->depth > 0)
		/* the push parser's words for a file that stops inside an element */
		g_string_printf(msg, "the file ends inside <%s> (cut short?)",
		    elem_names[r->stack[r->depth - 1].el]);
	fail(r, e->line > 0 ? (guint)e->line : cur_line(r), SYNC_ERROR_XML,
	    "malformed XML: %s", msg->str);
	g_string_free(msg, TRUE);
}

static void
on_doctype(void *ctx, const xmlChar *name, const xmlChar *ext, const xmlChar *sys)
{
	Reader *r = ctx;

	fail(r, cur_line(r), SYNC_ERROR_FORBIDDEN, "DOCTYPE is not allowed");
}

static void
on_entity_decl(void *ctx, const xmlChar *name, int type, const xmlChar *pub,
    const xmlChar *sys, xmlChar *content)
{
	Reader *r = ctx;

	fail(r, cur_line(r), SYNC_ERROR_FORBIDDEN, "entity declarations are not allowed");
}

static void
on_reference(void *ctx, const xmlChar *name)
{
	Reader *r = ctx;
	char *q = shown((const char *)name, strlen((const char *)name));

	fail(r, cur_line(r), SYNC_ERROR_FORBIDDEN, "entity reference %s is not allowed", q);
	g_free(q);
}

static xmlParserInputPtr
on_resolve(void *ctx, const xmlChar *pub, const xmlChar *sys)
{
	Reader *r = ctx;
	const char *what = sys ? (const char *)sys : pub ? (const char *)pub : "";
	char *q = shown(what, strlen(what));

	fail(r, cur_line(r), SYNC_ERROR_FORBIDDEN, "external reference %s is not allowed", q);
	g_free(q);
	return NULL;
}

static void
on_pi(void *ctx, const xmlChar *target, const xmlChar *data)
{
	Reader *r = ctx;
	char *q = shown((const char *)target, strlen((const char *)target));

	fail(r, cur_line(r), SYNC_ERROR_SCHEMA, "processing instruction %s is not allowed", q);
	g_free(q);
}

/* The process-wide loader: nothing is ever loaded from outside. */
static xmlParserInputPtr
refuse_loader(const char *url, const char *id, xmlParserCtxtPtr ctxt)
{
	Reader *r = g_private_get(&current_reader);

	if (r) {
		const char *what = url ? url : id ? id : "";
		char *q = shown(what, strlen(what));
		fail(r, cur_line(r), SYNC_ERROR_FORBIDDEN, "external reference %s is not allowed",
		    q);
		g_free(q);
	}
	return NULL;
}

static gpointer
init_libxml(gpointer unused)
{
	xmlInitParser();
	xmlSetExternalEntityLoader(refuse_loader);
	return NULL;
}

/* An untrusted element name, escaped, for messages; g_free it. */
static char *
shown_name(const char *local)
{
	char *q = shown(local, strlen(local));
	size_t n = strlen(q);

	memmove(q, q + 1, n - 2);   /* without the quotes */
	q[n - 2] = '\0';
	return q;
}

/* Refuse the element local, which has no place under parent. */
static void
misplaced(Reader *r, Elem parent, const char *local, const char *uri, guint line)
{
	char *q = shown_name(local);
	gboolean known = FALSE;

	for (guint i = 1; i < G_N_ELEMENTS(elem_names); i++)
		known = known || strcmp(local, elem_names[i]) == 0;
	if (!uri || strcmp(uri, SYNC_NAMESPACE) != 0) {
		char *u = uri ? shown_name(uri) : NULL;
		fail(r, line, SYNC_ERROR_SCHEMA, "unknown element <%s> (%s%s)", q,
		    uri ? "namespace " : "no namespace", uri ? u : "");
		g_free(u);
	} else if (!known)
		fail(r, line, SYNC_ERROR_SCHEMA, "unknown element <%s>", q);
	else if (parent == EL_SYNC)
		fail(r, line, SYNC_ERROR_SCHEMA, "<%s> is not allowed in a %s file", q,
		    sync_kind_name(r->doc->kind));
	else
		fail(r, line, SYNC_ERROR_SCHEMA, "<%s> is not allowed in <%s>", q,
		    elem_names[parent]);
	g_free(q);
}

/* The element a start tag names, where it is; EL_NONE after a refusal. */
static Elem
classify(Reader *r, Elem parent, const char *local, const char *uri, guint line)
{
	Elem el = EL_NONE;

	if (parent == EL_NONE) {
		if (strcmp(local, "sync") != 0) {
			char *q = shown_name(local);
			fail(r, line, SYNC_ERROR_SCHEMA, "the root element must be <sync>, not <%s>",
			    q);
			g_free(q);
		} else if (!uri) {
			fail(r, line, SYNC_ERROR_SCHEMA, "<sync> has no namespace: a sync file is "
			    "<sync xmlns=\"%s\">", SYNC_NAMESPACE);
		} else if (strcmp(uri, SYNC_NAMESPACE) != 0) {
			char *u = shown_name(uri);
			fail(r, line, SYNC_ERROR_SCHEMA, "<sync> is in the namespace %s, not %s",
			    u, SYNC_NAMESPACE);
			g_free(u);
		} else {
			el = EL_SYNC;
		}
		return el;
	}
	if (!uri || strcmp(uri, SYNC_NAMESPACE) != 0) {
		misplaced(r, parent, local, uri, line);
		return EL_NONE;
	}
	switch (parent) {
	case EL_SYNC:
		if (r->doc->kind == SYNC_POSTOFFICE) {
			el = strcmp(local, "mailbox") == 0 ? EL_MAILBOX :
			    strcmp(local, "custom") == 0 ? EL_CUSTOM :
			    strcmp(local, "list") == 0 ? EL_LIST : EL_NONE;
		} else if (r->doc->kind == SYNC_GAL || r->doc->kind == SYNC_CANONICAL) {
			el = strcmp(local, "entry") == 0 ? EL_ENTRY : EL_NONE;
		} else if (strcmp(local, "change") == 0) {
			el = EL_CHANGE;
		} else if (strcmp(local, "vector") == 0) {
			if (r->vector_seen || r->change_seen) {
				fail(r, line, SYNC_ERROR_SCHEMA, r->vector_seen ?
				    "a second <vector>: a replication file has at most one" :
				    "<vector> must come before the first <change>");
				return EL_NONE;
			}
			el = EL_VECTOR;
		}
		break;
	case EL_LIST:
		el = strcmp(local, "member") == 0 ? EL_MEMBER_REF : EL_NONE;
		break;
	case EL_VECTOR:
		el = strcmp(local, "seen") == 0 ? EL_SEEN : EL_NONE;
		break;
	case EL_ENTRY:
		if (r->doc->kind != SYNC_CANONICAL)
			break;
		/* fall through */
	case EL_CHANGE:
		el = strcmp(local, "proxy") == 0 ? EL_PROXY :
		    strcmp(local, "member") == 0 ? EL_MEMBER : EL_NONE;
		if (el == EL_PROXY && r->cur->members->len > 0) {
			fail(r, line, SYNC_ERROR_SCHEMA,
			    "<proxy> must come before the <member> elements");
			return EL_NONE;
		}
		if (el == EL_MEMBER && r->cur->type != DIR_LIST) {
			fail(r, line, SYNC_ERROR_SCHEMA, "a %s has no members: only a list has",
			    dir_type_name(r->cur->type));
			return EL_NONE;
		}
		break;
	default:
		break;
	}
	if (el == EL_NONE)
		misplaced(r, parent, local, uri, line);
	return el;
}

/* Collect the attributes of a start tag; refuse unknown ones and missing ones. */
static gboolean
collect_attrs(Reader *r, Elem el, int n, const xmlChar **attrs, guint line)
{
	guint allowed, required;

	attr_rules(el, r->doc ? r->doc->kind : SYNC_POSTOFFICE, &allowed, &required);
	g_string_truncate(r->abuf, 0);
	r->have = 0;
	for (int i = 0; i < n; i++) {
		const char *local = (const char *)attrs[5 * i];
		const char *prefix = (const char *)attrs[5 * i + 1];
		const char *value = (const char *)attrs[5 * i + 3];
		size_t len = (size_t)(attrs[5 * i + 4] - attrs[5 * i + 3]);
		int a = -1;

		for (int j = 0; j < AT_COUNT && !prefix && a < 0; j++)
			if ((allowed & BIT(j)) && local[0] == attr_names[j][0] &&
			    strcmp(local, attr_names[j]) == 0)
				a = j;
		if (a < 0) {
			char *q = shown_name(local), *p = prefix ? shown_name(prefix) : NULL;
			fail(r, line, SYNC_ERROR_SCHEMA, "unknown attribute %s%s%s on <%s>",
			    p ? p : "", p ? ":" : "", q, elem_names[el]);
			g_free(p);
			g_free(q);
			return FALSE;
		}
		r->aoff[a] = r->abuf->len;
		/* Without entity substitution, libxml2 hands every '&' of an
		 * attribute value over as "&#38;" (for a tree builder to parse
		 * again); no other reference can reach here. */
		for (size_t k = 0; k < len; k++) {
			g_string_append_c(r->abuf, (char)value[k]);
			if (value[k] == '&' && len - k >= 5 && memcmp(value + k, "&#38;", 5) == 0)
				k += 4;
		}
		r->alen[a] = r->abuf->len - r->aoff[a];
		g_string_append_c(r->abuf, '\0');
		r->have |= BIT(a);
	}
	for (int j = 0; j < AT_COUNT; j++)
		if ((required & BIT(j)) && !(r->have & BIT(j))) {
			fail(r, line, SYNC_ERROR_SCHEMA, "<%s> needs the attribute %s",
			    elem_names[el], attr_names[j]);
			return FALSE;
		}
	return TRUE;
}

/* Refuse an attribute value: "<el> attribute a: why". */
static void
bad_attr(Reader *r, guint line, Elem el, Attr a, const char *why)
{
	fail(r, line, SYNC_ERROR_SCHEMA, "<%s> attribute %s: %s", elem_names[el], attr_names[a],
	    why);
}

/* A value with a shown rendering and a rule, for bad_attr. */
static void
bad_value(Reader *r, guint line, Elem el, Attr a, const char *rule)
{
	char *q = shown(attr(r, a), r->alen[a]);
	char *why = g_strdup_printf("%s is not %s", q, rule);

	bad_attr(r, line, el, a, why);
	g_free(why);
	g_free(q);
}

static gboolean
get_site(Reader *r, guint line, Elem el, Attr a, char **out)
{
	if (!dir_check_site(attr(r, a), r->alen[a])) {
		bad_value(r, line, el, a, "a site name (1-32 of A-Z a-z 0-9 _ -)");
		return FALSE;
	}
	*out = g_strdup(attr(r, a));
	return TRUE;
}

static gboolean
get_number(Reader *r, guint line, Elem el, Attr a, guint64 min, guint64 *out)
{
	if (!parse_number(attr(r, a), r->alen[a], min, out)) {
		bad_value(r, line, el, a, min ? "a whole number from 1 to 9223372036854775807" :
		    "a whole number from 0 to 9223372036854775807");
		return FALSE;
	}
	return TRUE;
}

static gboolean
get_legacy(Reader *r, guint line, Elem el, Attr a, char **out)
{
	char *why = NULL;

	if (!(*out = canon_legacy(attr(r, a), r->alen[a], &why))) {
		bad_attr(r, line, el, a, why);
		g_free(why);
		return FALSE;
	}
	return TRUE;
}

static gboolean
get_display(Reader *r, guint line, Elem el, char **out)
{
	const char *why;

	if (!(r->have & BIT(AT_DISPLAY))) {
		*out = g_strdup("");
		return TRUE;
	}
	if ((why = dir_check_display(attr(r, AT_DISPLAY), r->alen[AT_DISPLAY]))) {
		bad_attr(r, line, el, AT_DISPLAY, why);
		return FALSE;
	}
	*out = g_strdup(attr(r, AT_DISPLAY));
	return TRUE;
}

static gboolean
get_type(Reader *r, guint line, Elem el, DirType *out)
{
	if (!dir_type_parse(attr(r, AT_TYPE), out)) {
		bad_value(r, line, el, AT_TYPE, "a type (mailbox, custom or list)");
		return FALSE;
	}
	return TRUE;
}

static gboolean
get_deleted(Reader *r, guint line, Elem el, gboolean *out)
{
	const char *v = attr(r, AT_DELETED);

	*out = FALSE;
	if (!v || strcmp(v, "false") == 0)
		return TRUE;
	if (strcmp(v, "true") == 0) {
		*out = TRUE;
		return TRUE;
	}
	bad_value(r, line, el, AT_DELETED, "true or false");
	return FALSE;
}

/* The target of a custom recipient (user@domain) and who may have one. */
static gboolean
get_target(Reader *r, guint line, Elem el, DirEntry *e)
{
	char *why = NULL, *addr;

	if (!(r->have & BIT(AT_TARGET))) {
		if (e->type == DIR_CUSTOM && !e->deleted) {
			fail(r, line, SYNC_ERROR_SCHEMA, "<%s> of a custom recipient needs the "
			    "attribute target", elem_names[el]);
			return FALSE;
		}
		return TRUE;
	}
	if (e->type != DIR_CUSTOM) {
		fail(r, line, SYNC_ERROR_SCHEMA, "<%s> attribute target: only a custom recipient "
		    "has a target, not a %s", elem_names[el], dir_type_name(e->type));
		return FALSE;
	}
	if (!(addr = canon_smtp(attr(r, AT_TARGET), r->alen[AT_TARGET], &why))) {
		bad_attr(r, line, el, AT_TARGET, why);
		g_free(why);
		return FALSE;
	}
	e->target = g_strdup_printf("SMTP:%s", addr);
	g_free(addr);
	return TRUE;
}

/* Remember key (a name, address or id) for the whole file; refuse it twice. */
static gboolean
claim(Reader *r, const char *what, const char *key, guint line)
{
	gpointer old;

	if (g_hash_table_lookup_extended(r->keys, key, NULL, &old)) {
		fail(r, line, SYNC_ERROR_SCHEMA, "%s %s is used twice (lines %u and %u)", what,
		    key, GPOINTER_TO_UINT(old), line);
		return FALSE;
	}
	g_hash_table_insert(r->keys, g_string_chunk_insert(r->key_chunk, key),
	    GUINT_TO_POINTER(line));
	return TRUE;
}

static gboolean
count_entry(Reader *r, guint line)
{
	if (++r->entries > limit_entries) {
		fail(r, line, SYNC_ERROR_LIMIT, "more than %u entries in one file", limit_entries);
		return FALSE;
	}
	return TRUE;
}

static void
start_root(Reader *r, guint line)
{
	static const SyncKind kinds[] = { SYNC_POSTOFFICE, SYNC_GAL, SYNC_REPLICATION,
	    SYNC_CANONICAL };
	const char *version = attr(r, AT_VERSION), *kind = attr(r, AT_KIND);
	guint allowed = 0, required = 0;
	SyncDoc *doc = NULL;

	if (!version) {
		fail(r, line, SYNC_ERROR_SCHEMA, "<sync> needs the attribute version=\"%s\"",
		    SYNC_VERSION);
		return;
	}
	if (strcmp(version, SYNC_VERSION) != 0) {
		char *q = shown(version, r->alen[AT_VERSION]);
		fail(r, line, SYNC_ERROR_SCHEMA, "unsupported version %s: this postgate reads "
		    "version %s", q, SYNC_VERSION);
		g_free(q);
		return;
	}
	if (!kind) {
		fail(r, line, SYNC_ERROR_SCHEMA, "<sync> needs the attribute kind (postoffice, "
		    "gal, replication or canonical)");
		return;
	}
	for (guint i = 0; i < G_N_ELEMENTS(kinds); i++)
		if (strcmp(kind, sync_kind_name(kinds[i])) == 0)
			doc = sync_doc_new(kinds[i]);
	if (!doc) {
		char *q = shown(kind, r->alen[AT_KIND]);
		fail(r, line, SYNC_ERROR_SCHEMA, "unknown kind %s (postoffice, gal, replication "
		    "or canonical)", q);
		g_free(q);
		return;
	}
	r->doc = doc;
	if (doc->kind == SYNC_POSTOFFICE || doc->kind == SYNC_GAL)
		required = BIT(AT_POSTOFFICE);
	else if (doc->kind == SYNC_REPLICATION)
		required = BIT(AT_FROM) | BIT(AT_FOR);
	allowed = required | BIT(AT_VERSION) | BIT(AT_KIND);
	for (int a = 0; a < AT_COUNT; a++) {
		if ((r->have & BIT(a)) && !(allowed & BIT(a))) {
			fail(r, line, SYNC_ERROR_SCHEMA, "attribute %s is not allowed on "
			    "<sync kind=\"%s\">", attr_names[a], kind);
			return;
		}
		if ((required & BIT(a)) && !(r->have & BIT(a))) {
			fail(r, line, SYNC_ERROR_SCHEMA, "<sync kind=\"%s\"> needs the attribute %s",
			    kind, attr_names[a]);
			return;
		}
	}
	if (required & BIT(AT_POSTOFFICE)) {
		char net[ADDR_PART_MAX + 1], po[ADDR_PART_MAX + 1];
		GError *e = NULL;
		if (!addr_parse_po(attr(r, AT_POSTOFFICE), r->alen[AT_POSTOFFICE], net, po, &e)) {
			bad_attr(r, line, EL_SYNC, AT_POSTOFFICE, e->message);
			g_error_free(e);
			return;
		}
		doc->postoffice = g_strdup_printf("%s/%s", net, po);
	}
	if (required & BIT(AT_FROM)) {
		if (!get_site(r, line, EL_SYNC, AT_FROM, &doc->from_site) ||
		    !get_site(r, line, EL_SYNC, AT_FOR, &doc->for_site))
			return;
		if (strcmp(doc->from_site, doc->for_site) == 0) {
			fail(r, line, SYNC_ERROR_SCHEMA, "from and for name the same site %s",
			    doc->from_site);
			return;
		}
	}
}

/* <mailbox>, <custom> and <list> of a postoffice export. */
static void
start_po_item(Reader *r, Elem el, guint line)
{
	char name[ADDR_PART_MAX + 1];
	DirEntry *e;
	GError *err = NULL;

	if (!count_entry(r, line))
		return;
	if (!addr_parse_part(attr(r, AT_NAME), r->alen[AT_NAME], "name", name, &err)) {
		bad_attr(r, line, el, AT_NAME, err->message);
		g_error_free(err);
		return;
	}
	if (!claim(r, "the name", name, line))
		return;
	e = r->cur = dir_entry_new(el == EL_MAILBOX ? DIR_MAILBOX :
	    el == EL_CUSTOM ? DIR_CUSTOM : DIR_LIST);
	e->legacy = g_strdup_printf("%s/%s", r->doc->postoffice, name);
	if (!get_display(r, line, el, &e->name))
		return;
	get_target(r, line, el, e);
}

/* <member address="..."/> of a postoffice export's list. */
static void
add_member(Reader *r, guint line, char *member)
{
	gpointer old;
	DirEntry *e = r->cur;

	if (e->members->len >= DIR_MAX_MEMBERS) {
		fail(r, line, SYNC_ERROR_LIMIT, "%s has more than %u members", e->legacy,
		    DIR_MAX_MEMBERS);
		g_free(member);
		return;
	}
	if (g_hash_table_lookup_extended(r->cur_members, member, NULL, &old)) {
		fail(r, line, SYNC_ERROR_SCHEMA, "member %s is listed twice (lines %u and %u)",
		    member, GPOINTER_TO_UINT(old), line);
		g_free(member);
		return;
	}
	g_ptr_array_add(e->members, member);
	g_hash_table_insert(r->cur_members, member, GUINT_TO_POINTER(line));
}

static void
start_gal_entry(Reader *r, guint line)
{
	DirType type;
	DirEntry *e;
	char *legacy = NULL;

	if (!count_entry(r, line) || !get_type(r, line, EL_ENTRY, &type) ||
	    !get_legacy(r, line, EL_ENTRY, AT_ADDRESS, &legacy))
		return;
	if (!claim(r, "the address", legacy, line)) {
		g_free(legacy);
		return;
	}
	e = r->cur = dir_entry_new(type);
	e->legacy = legacy;
	if (!get_display(r, line, EL_ENTRY, &e->name))
		return;
	if (r->have & BIT(AT_SMTP)) {
		char *why = NULL, *addr = canon_smtp(attr(r, AT_SMTP), r->alen[AT_SMTP], &why);
		if (!addr) {
			bad_attr(r, line, EL_ENTRY, AT_SMTP, why);
			g_free(why);
			return;
		}
		g_ptr_array_add(e->proxies, g_strdup_printf("SMTP:%s", addr));
		g_free(addr);
	}
}

/* <change> of a replication file and <entry> of a canonical dump. */
static void
start_full_entry(Reader *r, Elem el, guint line)
{
	DirType type;
	DirEntry *e;

	if (!count_entry(r, line))
		return;
	if (!dir_check_id(attr(r, AT_ID), r->alen[AT_ID])) {
		bad_value(r, line, el, AT_ID, "an id (1-64 of A-Z a-z 0-9 . _ : -)");
		return;
	}
	if (!get_type(r, line, el, &type))
		return;
	e = r->cur = dir_entry_new(type);
	e->id = g_strdup(attr(r, AT_ID));
	if (!get_deleted(r, line, el, &e->deleted) ||
	    !get_site(r, line, el, AT_HOME, &e->home_site) ||
	    !get_legacy(r, line, el, AT_LEGACY, &e->legacy) ||
	    !get_display(r, line, el, &e->name) ||
	    !get_target(r, line, el, e))
		return;
	if (el == EL_CHANGE) {
		guint64 changed;
		if (!get_site(r, line, el, AT_ORIGIN, &e->origin) ||
		    !get_number(r, line, el, AT_USN, 1, &e->usn) ||
		    !get_number(r, line, el, AT_VERSION, 1, &e->version) ||
		    !get_number(r, line, el, AT_CHANGED, 0, &changed))
			return;
		e->changed = (gint64)changed;
	}
	claim(r, "the id", e->id, line);
}

static void
start_seen(Reader *r, guint line)
{
	char *site = NULL;
	guint64 usn, *v;
	gpointer old;

	if (!get_site(r, line, EL_SEEN, AT_SITE, &site) ||
	    !get_number(r, line, EL_SEEN, AT_USN, 0, &usn)) {
		g_free(site);
		return;
	}
	if (g_hash_table_lookup_extended(r->seen_lines, site, NULL, &old)) {
		fail(r, line, SYNC_ERROR_SCHEMA, "site %s is in the vector twice (lines %u and %u)",
		    site, GPOINTER_TO_UINT(old), line);
		g_free(site);
		return;
	}
	if (g_hash_table_size(r->doc->vector) >= SYNC_MAX_SITES) {
		fail(r, line, SYNC_ERROR_LIMIT, "more than %u sites in the vector", SYNC_MAX_SITES);
		g_free(site);
		return;
	}
	v = g_new(guint64, 1);
	*v = usn;
	g_hash_table_insert(r->seen_lines, g_strdup(site), GUINT_TO_POINTER(line));
	g_hash_table_insert(r->doc->vector, site, v);
}

static gboolean
send_header(Reader *r)
{
	GError *e = NULL;

	if (r->header_sent)
		return TRUE;
	r->header_sent = TRUE;
	if (!r->collect && r->sink && r->sink->header && !r->sink->header(r->doc, r->data, &e)) {
		fail_with(r, e);
		return FALSE;
	}
	return TRUE;
}

/* The entry cur is complete and checked: hand it over. */
static void
emit(Reader *r, guint line)
{
	DirEntry *e = r->cur;
	GError *err = NULL;

	r->cur = NULL;
	r->primary_line = 0;
	g_hash_table_remove_all(r->cur_members);
	if (!send_header(r)) {
		dir_entry_free(e);
		return;
	}
	if (r->collect)
		g_ptr_array_add(r->doc->entries, e);
	else if (r->sink && r->sink->entry) {
		if (!r->sink->entry(e, line, r->data, &err))
			fail_with(r, err);
	} else
		dir_entry_free(e);
}

static void
end_proxy(Reader *r, guint line)
{
	DirEntry *e = r->cur;
	char *why = NULL, *proxy, *text = r->text->str;
	size_t len = r->text->len;

	while (len > 0 && g_ascii_isspace(*text)) {
		text++;
		len--;
	}
	while (len > 0 && g_ascii_isspace(text[len - 1]))
		len--;
	if (!(proxy = canon_proxy(text, len, &why))) {
		fail(r, line, SYNC_ERROR_SCHEMA, "<proxy>: %s", why);
		g_free(why);
		return;
	}
	if (e->proxies->len >= DIR_MAX_PROXIES) {
		fail(r, line, SYNC_ERROR_LIMIT, "%s has more than %u proxies", e->id, DIR_MAX_PROXIES);
		g_free(proxy);
		return;
	}
	for (guint i = 0; i < e->proxies->len; i++)
		if (strcmp((char *)e->proxies->pdata[i] + 5, proxy + 5) == 0) {
			fail(r, line, SYNC_ERROR_SCHEMA, "<proxy>: %s twice in %s", proxy + 5, e->id);
			g_free(proxy);
			return;
		}
	if (proxy[0] == 'S') {
		if (r->primary_line) {
			fail(r, line, SYNC_ERROR_SCHEMA, "<proxy>: a second primary %s: %s already "
			    "has %s (line %u), and an entry has exactly one SMTP: proxy", proxy,
			    e->id, dir_primary(e), r->primary_line);
			g_free(proxy);
			return;
		}
		r->primary_line = line;
	}
	g_ptr_array_add(e->proxies, proxy);
}

static void
end_member(Reader *r, guint line)
{
	char *why = NULL, *member, *text = r->text->str;
	size_t len = r->text->len;

	while (len > 0 && g_ascii_isspace(*text)) {
		text++;
		len--;
	}
	while (len > 0 && g_ascii_isspace(text[len - 1]))
		len--;
	if (!(member = canon_legacy(text, len, &why))) {
		fail(r, line, SYNC_ERROR_SCHEMA, "<member>: %s", why);
		g_free(why);
		return;
	}
	add_member(r, line, member);
}

static void
end_full_entry(Reader *r, Elem el, guint line)
{
	DirEntry *e = r->cur;

	if (!e->deleted && !r->primary_line) {
		fail(r, line, SYNC_ERROR_SCHEMA, "%s %s has no primary proxy: a live entry has "
		    "exactly one SMTP: proxy", el == EL_CHANGE ? "change" : "entry", e->id);
		return;
	}
	if (el == EL_ENTRY) {
		/* canonical: proxies and members in one order, whatever the file's */
		g_ptr_array_sort(e->proxies, compare_str);
		g_ptr_array_sort(e->members, compare_str);
	}
	emit(r, line);
}

static void
on_start(void *ctx, const xmlChar *localname, const xmlChar *prefix, const xmlChar *uri,
    int nb_ns, const xmlChar **ns, int nb_attrs, int nb_defaulted, const xmlChar **attrs)
{
	Reader *r = ctx;
	guint line = cur_line(r);
	Elem parent, el;

	if (r->error)
		return;
	if (r->depth >= SYNC_MAX_DEPTH) {
		fail(r, line, SYNC_ERROR_LIMIT, "elements nested deeper than %d", SYNC_MAX_DEPTH);
		return;
	}
	parent = r->depth ? r->stack[r->depth - 1].el : EL_NONE;
	el = classify(r, parent, (const char *)localname, (const char *)uri, line);
	if (el == EL_NONE || !collect_attrs(r, el, nb_attrs, attrs, line))
		return;
	r->stack[r->depth].el = el;
	r->stack[r->depth].line = line;
	r->depth++;
	switch (el) {
	case EL_SYNC:
		start_root(r, line);
		break;
	case EL_MAILBOX:
	case EL_CUSTOM:
	case EL_LIST:
		start_po_item(r, el, line);
		break;
	case EL_MEMBER_REF: {
		char *member = NULL;
		if (get_legacy(r, line, el, AT_ADDRESS, &member))
			add_member(r, line, member);
		break;
	}
	case EL_ENTRY:
		if (r->doc->kind == SYNC_GAL)
			start_gal_entry(r, line);
		else
			start_full_entry(r, el, line);
		break;
	case EL_VECTOR:
		r->vector_seen = TRUE;
		break;
	case EL_SEEN:
		start_seen(r, line);
		break;
	case EL_CHANGE:
		r->change_seen = TRUE;
		start_full_entry(r, el, line);
		break;
	case EL_PROXY:
	case EL_MEMBER:
		g_string_truncate(r->text, 0);
		break;
	default:
		break;
	}
}

static void
on_end(void *ctx, const xmlChar *localname, const xmlChar *prefix, const xmlChar *uri)
{
	Reader *r = ctx;
	Frame f;

	if (r->error || r->depth == 0)
		return;
	f = r->stack[--r->depth];
	switch (f.el) {
	case EL_SYNC:
		r->root_closed = TRUE;
		break;
	case EL_MAILBOX:
	case EL_CUSTOM:
	case EL_LIST:
		emit(r, f.line);
		break;
	case EL_ENTRY:
		if (r->doc->kind == SYNC_GAL)
			emit(r, f.line);
		else
			end_full_entry(r, EL_ENTRY, f.line);
		break;
	case EL_CHANGE:
		end_full_entry(r, EL_CHANGE, f.line);
		break;
	case EL_PROXY:
		end_proxy(r, f.line);
		break;
	case EL_MEMBER:
		end_member(r, f.line);
		break;
	default:
		break;
	}
}

static void
on_text(void *ctx, const xmlChar *ch, int len)
{
	Reader *r = ctx;
	Elem el;

	if (r->error || r->depth == 0 || len <= 0)
		return;
	el = r->stack[r->depth - 1].el;
	if (el == EL_PROXY || el == EL_MEMBER) {
		if (r->text->len + (size_t)len > SYNC_MAX_TEXT) {
			fail(r, r->stack[r->depth - 1].line, SYNC_ERROR_LIMIT,
			    "the text of <%s> is longer than %u bytes", elem_names[el],
			    SYNC_MAX_TEXT);
			return;
		}
		g_string_append_len(r->text, (const char *)ch, len);
		return;
	}
	for (int i = 0; i < len; i++)
		if (ch[i] != ' ' && ch[i] != '\t' && ch[i] != '\n' && ch[i] != '\r') {
			fail(r, cur_line(r), SYNC_ERROR_SCHEMA, "text is not allowed in <%s>",
			    elem_names[el]);
			return;
		}
}

static xmlSAXHandler *
sax_handler(void)
{
	static xmlSAXHandler sax;
	static gsize done;

	if (g_once_init_enter(&done)) {
		memset(&sax, 0, sizeof sax);
		sax.initialized = XML_SAX2_MAGIC;
		sax.startElementNs = on_start;
		sax.endElementNs = on_end;
		sax.characters = on_text;
		sax.ignorableWhitespace = on_text;
		sax.cdataBlock = on_text;
		sax.processingInstruction = on_pi;
		sax.internalSubset = on_doctype;
		sax.externalSubset = on_doctype;
		sax.entityDecl = on_entity_decl;
		sax.reference = on_reference;
		sax.resolveEntity = on_resolve;
		sax.serror = on_xml_error;
		g_once_init_leave(&done, 1);
	}
	return &sax;
}

/* What the scanner is in: markup is told apart just well enough to find
 * start tags and the attributes in them; libxml2 judges everything else. */
enum {
	SC_TEXT,        /* character data */
	SC_LT,          /* after '<' */
	SC_BANG,        /* after "<!" */
	SC_BANG_DASH,   /* after "<!-" */
	SC_COMMENT,     /* in <!-- -->, until "-->" */
	SC_CDATA,       /* in <![CDATA[ ]]>, until "]]>" */
	SC_DECL,        /* in <!DOCTYPE ...> and the like, until '>' outside quotes */
	SC_PI,          /* in <? ?>, until "?>" */
	SC_TAG,         /* in a start tag, until '>' outside quotes */
	SC_END_TAG,     /* in an end tag, until '>' */
};

/* Count the attributes of every start tag in p[0..n) before libxml2 is given
 * these bytes, and refuse a start tag with more than SYNC_MAX_ATTRS.  libxml2
 * 2.9 compares each attribute with every earlier one of its start tag, and
 * only then calls on_start: 100,000 attributes took seconds before the
 * refusal.  An attribute is an '=' in a start tag outside quoted values.
 * The state lasts from one chunk to the next.  FALSE (and r->error) on a
 * refusal. */
static gboolean
scan(Reader *r, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = p[i];

		if (c == '\n')
			r->scan_line++;
		if (r->scan_quote) {
			if (c == r->scan_quote)
				r->scan_quote = 0;
			continue;
		}
	again:          /* c ended a state and starts the next one */
		switch (r->scan) {
		case SC_TEXT:
			if (c == '<')
				r->scan = SC_LT;
			break;
		case SC_LT:
			r->scan_run = 0;
			if (c == '!') {
				r->scan = SC_BANG;
			} else if (c == '?') {
				r->scan = SC_PI;
			} else if (c == '/') {
				r->scan = SC_END_TAG;
			} else {
				r->scan = SC_TAG;
				r->scan_attrs = 0;
				r->scan_naming = TRUE;
				r->scan_name_len = 0;
				goto again;     /* c is the name's first byte */
			}
			break;
		case SC_BANG:
			if (c == '-') {
				r->scan = SC_BANG_DASH;
			} else if (c == '[') {
				r->scan = SC_CDATA;
			} else {
				r->scan = SC_DECL;
				goto again;
			}
			break;
		case SC_BANG_DASH:
			r->scan = c == '-' ? SC_COMMENT : SC_DECL;
			break;
		case SC_COMMENT:
		case SC_CDATA:
			if (c == (r->scan == SC_COMMENT ? '-' : ']')) {
				r->scan_run++;
			} else {
				if (c == '>' && r->scan_run >= 2)
					r->scan = SC_TEXT;
				r->scan_run = 0;
			}
			break;
		case SC_PI:
			if (c == '>' && r->scan_run)
				r->scan = SC_TEXT;
			r->scan_run = c == '?';
			break;
		case SC_DECL:
			if (c == '"' || c == '\'')
				r->scan_quote = c;
			else if (c == '>')
				r->scan = SC_TEXT;
			break;
		case SC_END_TAG:
			if (c == '>')
				r->scan = SC_TEXT;
			break;
		case SC_TAG:
			if (r->scan_naming) {
				if (c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != '>' &&
				    c != '/' && c != '=' && c != '"' && c != '\'') {
					if (r->scan_name_len < sizeof r->scan_name - 1)
						r->scan_name[r->scan_name_len++] = c;
					break;
				}
				r->scan_naming = FALSE;
				r->scan_name[r->scan_name_len] = '\0';
			}
			if (c == '"' || c == '\'') {
				r->scan_quote = c;
			} else if (c == '>') {
				r->scan = SC_TEXT;
			} else if (c == '=' && ++r->scan_attrs > SYNC_MAX_ATTRS) {
				char *q = shown_name(r->scan_name);
				fail(r, r->scan_line, SYNC_ERROR_LIMIT, "<%s> has more than %u "
				    "attributes (namespace declarations included)", q, SYNC_MAX_ATTRS);
				g_free(q);
				return FALSE;
			}
			break;
		}
	}
	return TRUE;
}

/* A sync file is UTF-8: refuse UTF-16/32 and any other declared encoding
 * before libxml2 would transcode them.  p holds the first n bytes. */
static gboolean
check_encoding(Reader *r, const char *p, size_t n)
{
	const unsigned char *u = (const unsigned char *)p;
	const char *end, *enc;
	size_t scan;

	if (n >= 3 && u[0] == 0xef && u[1] == 0xbb && u[2] == 0xbf) {
		p += 3;
		u += 3;
		n -= 3;
	}
	if ((n >= 2 && ((u[0] == 0xfe && u[1] == 0xff) || (u[0] == 0xff && u[1] == 0xfe))) ||
	    (n >= 1 && u[0] == 0) || (n >= 2 && u[1] == 0)) {
		fail(r, 1, SYNC_ERROR_SCHEMA, "the file is not UTF-8 (UTF-16 or UTF-32?): a sync "
		    "file is UTF-8");
		return FALSE;
	}
	if (n < 6 || memcmp(p, "<?xml", 5) != 0 || !g_ascii_isspace(p[5]))
		return TRUE;
	scan = MIN(n, DECL_SCAN);
	for (end = p; end + 1 < p + scan && !(end[0] == '?' && end[1] == '>'); end++)
		;
	for (enc = p; enc + 8 <= end; enc++) {
		const char *v, *q;
		if (memcmp(enc, "encoding", 8) != 0)
			continue;
		for (v = enc + 8; v < end && g_ascii_isspace(*v); v++)
			;
		if (v >= end || *v != '=')
			break;
		for (v++; v < end && g_ascii_isspace(*v); v++)
			;
		if (v >= end || (*v != '"' && *v != '\''))
			break;
		for (q = v + 1; q < end && *q != *v; q++)
			;
		if ((q - v - 1 == 5 && g_ascii_strncasecmp(v + 1, "UTF-8", 5) == 0) ||
		    (q - v - 1 == 4 && g_ascii_strncasecmp(v + 1, "UTF8", 4) == 0))
			return TRUE;
		{
			char *s = shown(v + 1, (size_t)(q - v - 1));
			fail(r, 1, SYNC_ERROR_SCHEMA, "the file declares the encoding %s: a sync "
			    "file is UTF-8", s);
			g_free(s);
		}
		return FALSE;
	}
	return TRUE;
}

static void
reader_init(Reader *r, const char *name, const SyncSink *sink, gpointer data, gboolean collect)
{
	static GOnce once = G_ONCE_INIT;

	g_once(&once, init_libxml, NULL);
	memset(r, 0, sizeof *r);
	r->name = name ? name : "(sync file)";
	r->sink = sink;
	r->data = data;
	r->collect = collect;
	r->seen_lines = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	r->cur_members = g_hash_table_new(g_str_hash, g_str_equal);
	r->text = g_string_new(NULL);
	r->keys = g_hash_table_new(g_str_hash, g_str_equal);
	r->key_chunk = g_string_chunk_new(64 * 1024);
	r->abuf = g_string_new(NULL);
	r->scan = SC_TEXT;
	r->scan_line = 1;
}

static void
reader_clear(Reader *r)
{
	if (r->ctxt)
		xmlFreeParserCtxt(r->ctxt);
	sync_doc_free(r->doc);
	dir_entry_free(r->cur);
	g_hash_table_unref(r->seen_lines);
	g_hash_table_unref(r->cur_members);
	g_string_free(r->text, TRUE);
	g_hash_table_unref(r->keys);
	g_string_chunk_free(r->key_chunk);
	g_string_free(r->abuf, TRUE);
	if (r->error)
		g_error_free(r->error);
}

/* Hand n bytes to the parser (terminate: the last of them). */
static void
feed(Reader *r, const char *p, size_t n, gboolean terminate)
{
	gpointer old = g_private_get(&current_reader);

	g_private_set(&current_reader, r);
	if (!r->ctxt) {
		if (n == 0 && terminate)
			fail(r, 1, SYNC_ERROR_XML, "malformed XML: the file is empty");
		if (r->error || !check_encoding(r, p, n)) {
			g_private_set(&current_reader, old);
			return;
		}
		r->ctxt = xmlCreatePushParserCtxt(sax_handler(), r, NULL, 0, r->name);
		if (!r->ctxt) {
			fail(r, 0, SYNC_ERROR_IO, "cannot create an XML parser");
			g_private_set(&current_reader, old);
			return;
		}
		xmlCtxtUseOptions(r->ctxt, XML_PARSE_NONET | XML_PARSE_BIG_LINES);
	}
	while (!r->error && n > 0) {
		size_t k = MIN(n, CHUNK_SIZE);
		if (!scan(r, p, k))
			break;
		xmlParseChunk(r->ctxt, p, (int)k, 0);
		p += k;
		n -= k;
	}
	if (!r->error && terminate) {
		r->terminating = TRUE;
		xmlParseChunk(r->ctxt, NULL, 0, 1);
		if (!r->error && !r->ctxt->wellFormed)
			fail(r, cur_line(r), SYNC_ERROR_XML, "malformed XML");
		if (!r->error && !r->root_closed)
			fail(r, cur_line(r), SYNC_ERROR_XML, "malformed XML: no <sync> element");
		if (!r->error)
			send_header(r);
	}
	g_private_set(&current_reader, old);
}

/* Run r over a file; FALSE with r->error set on any problem. */
static gboolean
read_path(Reader *r, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	struct stat st;
	char *buf;
	guint64 total = 0;

	if (fd < 0) {
		int e = errno;
		r->error = g_error_new(SYNC_ERROR, SYNC_ERROR_IO, "%s: %s", path, g_strerror(e));
		return FALSE;
	}
	if (fstat(fd, &st) != 0 || S_ISDIR(st.st_mode)) {
		int e = fstat(fd, &st) != 0 ? errno : EISDIR;
		r->error = g_error_new(SYNC_ERROR, SYNC_ERROR_IO, "%s: %s", path, g_strerror(e));
		close(fd);
		return FALSE;
	}
	if (S_ISREG(st.st_mode) && (guint64)st.st_size > limit_file_size) {
		r->error = g_error_new(SYNC_ERROR, SYNC_ERROR_LIMIT, "%s: the file has %lld bytes, "
		    "more than the %" G_GUINT64_FORMAT " a sync file may have", path,
		    (long long)st.st_size, limit_file_size);
		close(fd);
		return FALSE;
	}
	buf = g_malloc(CHUNK_SIZE);
	for (;;) {
		gssize n = read_upto(fd, buf, CHUNK_SIZE);
		if (n < 0) {
			int e = errno;
			fail(r, cur_line(r), SYNC_ERROR_IO, "read: %s", g_strerror(e));
			break;
		}
		total += (guint64)n;
		if (total > limit_file_size) {
			fail(r, cur_line(r), SYNC_ERROR_LIMIT, "the file has more than the %"
			    G_GUINT64_FORMAT " bytes a sync file may have", limit_file_size);
			break;
		}
		feed(r, buf, (size_t)n, n == 0);
		if (r->error || n == 0)
			break;
	}
	g_free(buf);
	close(fd);
	return r->error == NULL;
}

static gboolean
read_buffer(Reader *r, const char *buf, size_t len)
{
	if ((guint64)len > limit_file_size) {
		r->error = g_error_new(SYNC_ERROR, SYNC_ERROR_LIMIT, "%s: %zu bytes, more than the %"
		    G_GUINT64_FORMAT " a sync file may have", r->name, len, limit_file_size);
		return FALSE;
	}
	feed(r, buf, len, TRUE);
	return r->error == NULL;
}

/* Return the collected document, or NULL and the error. */
static SyncDoc *
finish_collect(Reader *r, gboolean ok, GError **error)
{
	SyncDoc *doc = NULL;

	if (ok) {
		doc = r->doc;
		r->doc = NULL;
	} else {
		g_propagate_error(error, r->error);
		r->error = NULL;
	}
	reader_clear(r);
	return doc;
}

SyncDoc *
sync_read_file(const char *path, GError **error)
{
	Reader r;

	reader_init(&r, path, NULL, NULL, TRUE);
	return finish_collect(&r, read_path(&r, path), error);
}

SyncDoc *
sync_read_memory(const char *name, const char *buf, size_t len, GError **error)
{
	Reader r;

	reader_init(&r, name, NULL, NULL, TRUE);
	return finish_collect(&r, read_buffer(&r, buf, len), error);
}

static gboolean
finish_each(Reader *r, gboolean ok, GError **error)
{
	if (!ok) {
		g_propagate_error(error, r->error);
		r->error = NULL;
	}
	reader_clear(r);
	return ok;
}

gboolean
sync_read_file_each(const char *path, const SyncSink *sink, gpointer data, GError **error)
{
	Reader r;

	reader_init(&r, path, sink, data, FALSE);
	return finish_each(&r, read_path(&r, path), error);
}

gboolean
sync_read_memory_each(const char *name, const char *buf, size_t len, const SyncSink *sink,
    gpointer data, GError **error)
{
	Reader r;

	reader_init(&r, name, sink, data, FALSE);
	return finish_each(&r, read_buffer(&r, buf, len), error);
}

/* ---- the writer ------------------------------------------------------------ */

typedef struct {
	GString *out;
	const SyncDoc *doc;
	GError *error;
	GHashTable *keys;          /* name, address or id -> entry number */
	GStringChunk *key_chunk;
	char *po;                  /* canonical NET/PO of a postoffice export */
} Writer;

static void wfail(Writer *w, guint n, const DirEntry *e, SyncError code, const char *fmt, ...)
    G_GNUC_PRINTF(5, 6);

/* Refuse to write entry n (from 1), or the header when e is NULL. */
static void
wfail(Writer *w, guint n, const DirEntry *e, SyncError code, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	if (w->error)
		return;
	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	if (e) {
		const char *who = e->id ? e->id : e->legacy ? e->legacy : "?";
		char *q = shown(who, strlen(who));
		w->error = g_error_new(SYNC_ERROR, code, "cannot write a %s sync file: entry %u "
		    "(%s): %s", sync_kind_name(w->doc->kind), n, q, msg);
		g_free(q);
	} else {
		w->error = g_error_new(SYNC_ERROR, code, "cannot write a %s sync file: %s",
		    sync_kind_name(w->doc->kind), msg);
	}
	g_free(msg);
}

/* Append text escaped for an attribute value or element content. */
static void
escape(GString *out, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': g_string_append(out, "&amp;"); break;
		case '<': g_string_append(out, "&lt;"); break;
		case '>': g_string_append(out, "&gt;"); break;
		case '"': g_string_append(out, "&quot;"); break;
		case '\t': g_string_append(out, "&#9;"); break;
		case '\n': g_string_append(out, "&#10;"); break;
		case '\r': g_string_append(out, "&#13;"); break;
		default: g_string_append_c(out, *s); break;
		}
	}
}

static void
put_attr(GString *out, const char *name, const char *value)
{
	g_string_append_c(out, ' ');
	g_string_append(out, name);
	g_string_append(out, "=\"");
	escape(out, value);
	g_string_append_c(out, '"');
}

static void
put_number(GString *out, const char *name, guint64 v)
{
	g_string_append_printf(out, " %s=\"%" G_GUINT64_FORMAT "\"", name, v);
}

static gboolean
wclaim(Writer *w, guint n, const DirEntry *e, const char *what, const char *key)
{
	gpointer old;

	if (g_hash_table_lookup_extended(w->keys, key, NULL, &old)) {
		wfail(w, n, e, SYNC_ERROR_SCHEMA, "%s %s is also that of entry %u", what, key,
		    GPOINTER_TO_UINT(old));
		return FALSE;
	}
	g_hash_table_insert(w->keys, g_string_chunk_insert(w->key_chunk, key),
	    GUINT_TO_POINTER(n));
	return TRUE;
}

/* The canonical legacy address of e, or NULL after wfail. */
static char *
wlegacy(Writer *w, guint n, const DirEntry *e, const char *text)
{
	char *why = NULL, *c;

	if (!text) {
		wfail(w, n, e, SYNC_ERROR_SCHEMA, "no legacy address");
		return NULL;
	}
	if (!(c = canon_legacy(text, strlen(text), &why))) {
		wfail(w, n, e, SYNC_ERROR_SCHEMA, "%s", why);
		g_free(why);
	}
	return c;
}

static gboolean
wdisplay(Writer *w, guint n, const DirEntry *e)
{
	const char *why = e->name ? dir_check_display(e->name, strlen(e->name)) : NULL;

	if (why)
		wfail(w, n, e, SYNC_ERROR_SCHEMA, "%s", why);
	return why == NULL;
}

static gboolean
wsite(Writer *w, guint n, const DirEntry *e, const char *what, const char *site)
{
	if (!site || !dir_check_site(site, strlen(site))) {
		char *q = site ? shown(site, strlen(site)) : g_strdup("none");
		wfail(w, n, e, SYNC_ERROR_SCHEMA, "%s %s is not a site name", what, q);
		g_free(q);
		return FALSE;
	}
	return TRUE;
}

/* Canonical target (local@domain, no prefix) of a custom entry; NULL when it
 * has none (allowed for a tombstone) or after wfail. */
static char *
wtarget(Writer *w, guint n, const DirEntry *e)
{
	char *why = NULL, *t;

	if (!e->target) {
		if (e->type == DIR_CUSTOM && !e->deleted)
			wfail(w, n, e, SYNC_ERROR_SCHEMA, "a custom recipient without a target");
		return NULL;
	}
	if (e->type != DIR_CUSTOM) {
		wfail(w, n, e, SYNC_ERROR_SCHEMA, "a %s with a target", dir_type_name(e->type));
		return NULL;
	}
	if (!(t = canon_target(e->target, strlen(e->target), &why))) {
		wfail(w, n, e, SYNC_ERROR_SCHEMA, "target: %s", why);
		g_free(why);
		return NULL;
	}
	memmove(t, t + 5, strlen(t + 5) + 1);
	return t;
}

/* Canonical members of e (legacy addresses), checked; NULL after wfail. */
static GPtrArray *
wmembers(Writer *w, guint n, const DirEntry *e)
{
	GPtrArray *m = g_ptr_array_new_with_free_func(g_free);
	GHashTable *seen = g_hash_table_new(g_str_hash, g_str_equal);

	if (e->members->len > 0 && e->type != DIR_LIST)
		wfail(w, n, e, SYNC_ERROR_SCHEMA, "a %s with members", dir_type_name(e->type));
	else if (e->members->len > DIR_MAX_MEMBERS)
		wfail(w, n, e, SYNC_ERROR_LIMIT, "more than %u members", DIR_MAX_MEMBERS);
	for (guint i = 0; i < e->members->len && !w->error; i++) {
		char *c = wlegacy(w, n, e, e->members->pdata[i]);
		if (!c)
			break;
		if (g_hash_table_contains(seen, c)) {
			wfail(w, n, e, SYNC_ERROR_SCHEMA, "member %s twice", c);
			g_free(c);
			break;
		}
		g_ptr_array_add(m, c);
		g_hash_table_add(seen, c);
	}
	g_hash_table_unref(seen);
	if (w->error) {
		g_ptr_array_unref(m);
		return NULL;
	}
	return m;
}

/* Canonical proxies of e, checked (one primary when live); NULL after wfail. */
static GPtrArray *
wproxies(Writer *w, guint n, const DirEntry *e)
{
	GPtrArray *p = g_ptr_array_new_with_free_func(g_free);
	guint primaries = 0;

	if (e->proxies->len > DIR_MAX_PROXIES)
		wfail(w, n, e, SYNC_ERROR_LIMIT, "more than %u proxies", DIR_MAX_PROXIES);
	for (guint i = 0; i < e->proxies->len && !w->error; i++) {
		const char *text = e->proxies->pdata[i];
		char *why = NULL, *c = canon_proxy(text, strlen(text), &why);
		if (!c) {
			wfail(w, n, e, SYNC_ERROR_SCHEMA, "%s", why);
			g_free(why);
			break;
		}
		for (guint j = 0; j < p->len; j++)
			if (strcmp((char *)p->pdata[j] + 5, c + 5) == 0)
				wfail(w, n, e, SYNC_ERROR_SCHEMA, "proxy %s twice", c + 5);
		primaries += c[0] == 'S';
		g_ptr_array_add(p, c);
	}
	if (!w->error && primaries > 1)
		wfail(w, n, e, SYNC_ERROR_SCHEMA, "%u primary SMTP: proxies", primaries);
	if (!w->error && primaries == 0 && !e->deleted)
		wfail(w, n, e, SYNC_ERROR_SCHEMA, "no primary SMTP: proxy");
	if (w->error) {
		g_ptr_array_unref(p);
		return NULL;
	}
	return p;
}

static void
write_po_entry(Writer *w, guint n, const DirEntry *e)
{
	static const char *const el[] = { "mailbox", "custom", "list" };
	char *legacy = wlegacy(w, n, e, e->legacy), *target = NULL;
	const char *name;
	GPtrArray *members = NULL;
	size_t polen = strlen(w->po);

	if (!legacy)
		return;
	if (strncmp(legacy, w->po, polen) != 0 || legacy[polen] != '/') {
		wfail(w, n, e, SYNC_ERROR_SCHEMA, "%s is not at the postoffice %s", legacy, w->po);
		goto out;
	}
	name = legacy + polen + 1;
	if ((guint)e->type > DIR_LIST) {
		wfail(w, n, e, SYNC_ERROR_SCHEMA, "an unknown type %d", (int)e->type);
		goto out;
	}
	if (!wclaim(w, n, e, "the name", name) || !wdisplay(w, n, e))
		goto out;
	target = wtarget(w, n, e);
	if (w->error || !(members = wmembers(w, n, e)))
		goto out;
	g_string_append_printf(w->out, "  <%s", el[e->type]);
	put_attr(w->out, "name", name);
	if (e->name && e->name[0])
		put_attr(w->out, "display", e->name);
	if (target)
		put_attr(w->out, "target", target);
	if (members->len == 0) {
		g_string_append(w->out, "/>\n");
		goto out;
	}
	g_string_append(w->out, ">\n");
	for (guint i = 0; i < members->len; i++) {
		g_string_append(w->out, "    <member");
		put_attr(w->out, "address", members->pdata[i]);
		g_string_append(w->out, "/>\n");
	}
	g_string_append_printf(w->out, "  </%s>\n", el[e->type]);
out:
	if (members)
		g_ptr_array_unref(members);
	g_free(target);
	g_free(legacy);
}

static void
write_gal_entry(Writer *w, guint n, const DirEntry *e)
{
	char *legacy = wlegacy(w, n, e, e->legacy), *smtp = NULL, *why = NULL;
	const char *primary = dir_primary(e);

	if (!legacy)
		return;
	if ((guint)e->type > DIR_LIST)
		wfail(w, n, e, SYNC_ERROR_SCHEMA, "an unknown type %d", (int)e->type);
	else if (wclaim(w, n, e, "the address", legacy) && wdisplay(w, n, e) && primary &&
	    !(smtp = canon_smtp(primary + 5, strlen(primary + 5), &why))) {
		wfail(w, n, e, SYNC_ERROR_SCHEMA, "%s", why);
		g_free(why);
	}
	if (!w->error) {
		g_string_append(w->out, "  <entry");
		put_attr(w->out, "type", dir_type_name(e->type));
		put_attr(w->out, "address", legacy);
		if (e->name && e->name[0])
			put_attr(w->out, "display", e->name);
		if (smtp)
			put_attr(w->out, "smtp", smtp);
		g_string_append(w->out, "/>\n");
	}
	g_free(smtp);
	g_free(legacy);
}

/* <change> (replication) or <entry> (canonical). */
static void
write_full_entry(Writer *w, guint n, const DirEntry *e)
{
	const gboolean change = w->doc->kind == SYNC_REPLICATION;
	const char *tag = change ? "change" : "entry";
	char *legacy = NULL, *target = NULL;
	GPtrArray *proxies = NULL, *members = NULL;

	if (!e->id || !dir_check_id(e->id, strlen(e->id))) {
		wfail(w, n, e, SYNC_ERROR_SCHEMA, "no id, or not 1-64 of A-Z a-z 0-9 . _ : -");
		return;
	}
	if ((guint)e->type > DIR_LIST) {
		wfail(w, n, e, SYNC_ERROR_SCHEMA, "an unknown type %d", (int)e->type);
		return;
	}
	if (!wclaim(w, n, e, "the id", e->id) || !wsite(w, n, e, "home", e->home_site) ||
	    (change && !wsite(w, n, e, "origin", e->origin)) ||
	    !(legacy = wlegacy(w, n, e, e->legacy)) || !wdisplay(w, n, e))
		goto out;
	if (change && (e->usn < 1 || e->usn > (guint64)G_MAXINT64 || e->version < 1 ||
	    e->version > (guint64)G_MAXINT64 || e->changed < 0)) {
		wfail(w, n, e, SYNC_ERROR_SCHEMA, "usn and version must be at least 1, changed "
		    "at least 0");
		goto out;
	}
	target = wtarget(w, n, e);
	if (w->error || !(proxies = wproxies(w, n, e)) || !(members = wmembers(w, n, e)))
		goto out;
	if (!change) {
		g_ptr_array_sort(proxies, compare_str);
		g_ptr_array_sort(members, compare_str);
	}
	g_string_append_printf(w->out, "  <%s", tag);
	put_attr(w->out, "id", e->id);
	put_attr(w->out, "type", dir_type_name(e->type));
	if (change) {
		put_attr(w->out, "origin", e->origin);
		put_number(w->out, "usn", e->usn);
		put_number(w->out, "version", e->version);
		put_number(w->out, "changed", (guint64)e->changed);
	}
	put_attr(w->out, "home", e->home_site);
	put_attr(w->out, "legacy", legacy);
	if (e->name && e->name[0])
		put_attr(w->out, "display", e->name);
	if (target)
		put_attr(w->out, "target", target);
	if (change || e->deleted)
		put_attr(w->out, "deleted", e->deleted ? "true" : "false");
	if (proxies->len + members->len == 0) {
		g_string_append(w->out, "/>\n");
		goto out;
	}
	g_string_append(w->out, ">\n");
	for (guint i = 0; i < proxies->len; i++) {
		g_string_append(w->out, "    <proxy>");
		escape(w->out, proxies->pdata[i]);
		g_string_append(w->out, "</proxy>\n");
	}
	for (guint i = 0; i < members->len; i++) {
		g_string_append(w->out, "    <member>");
		escape(w->out, members->pdata[i]);
		g_string_append(w->out, "</member>\n");
	}
	g_string_append_printf(w->out, "  </%s>\n", tag);
out:
	if (proxies)
		g_ptr_array_unref(proxies);
	if (members)
		g_ptr_array_unref(members);
	g_free(target);
	g_free(legacy);
}

static void
write_vector(Writer *w)
{
	GList *sites = g_list_sort(g_hash_table_get_keys(w->doc->vector), compare_plain);

	if (g_hash_table_size(w->doc->vector) > SYNC_MAX_SITES)
		wfail(w, 0, NULL, SYNC_ERROR_LIMIT, "more than %u sites in the vector",
		    SYNC_MAX_SITES);
	for (GList *l = sites; l && !w->error; l = l->next) {
		const guint64 *usn = g_hash_table_lookup(w->doc->vector, l->data);
		if (!dir_check_site(l->data, strlen(l->data)) || !usn ||
		    *usn > (guint64)G_MAXINT64) {
			char *q = shown(l->data, strlen(l->data));
			wfail(w, 0, NULL, SYNC_ERROR_SCHEMA, "vector: %s is not a site name with a "
			    "USN", q);
			g_free(q);
		}
	}
	if (!w->error && sites) {
		g_string_append(w->out, "  <vector>\n");
		for (GList *l = sites; l; l = l->next) {
			g_string_append(w->out, "    <seen");
			put_attr(w->out, "site", l->data);
			put_number(w->out, "usn", *(guint64 *)g_hash_table_lookup(w->doc->vector,
			    l->data));
			g_string_append(w->out, "/>\n");
		}
		g_string_append(w->out, "  </vector>\n");
	}
	g_list_free(sites);
}

static void
write_header(Writer *w)
{
	const SyncDoc *doc = w->doc;
	GString *out = w->out;

	g_string_append(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
	g_string_append(out, "<sync");
	put_attr(out, "xmlns", SYNC_NAMESPACE);
	put_attr(out, "version", SYNC_VERSION);
	put_attr(out, "kind", sync_kind_name(doc->kind));
	if (doc->kind == SYNC_POSTOFFICE || doc->kind == SYNC_GAL) {
		char net[ADDR_PART_MAX + 1], po[ADDR_PART_MAX + 1];
		GError *e = NULL;
		if (!doc->postoffice) {
			wfail(w, 0, NULL, SYNC_ERROR_SCHEMA, "no postoffice");
			return;
		}
		if (!addr_parse_po(doc->postoffice, strlen(doc->postoffice), net, po, &e)) {
			wfail(w, 0, NULL, SYNC_ERROR_SCHEMA, "%s", e->message);
			g_error_free(e);
			return;
		}
		/* written canonically: the entries' addresses are compared with it */
		w->po = g_strdup_printf("%s/%s", net, po);
		put_attr(out, "postoffice", w->po);
	} else if (doc->kind == SYNC_REPLICATION) {
		if (!doc->from_site || !dir_check_site(doc->from_site, strlen(doc->from_site)) ||
		    !doc->for_site || !dir_check_site(doc->for_site, strlen(doc->for_site)) ||
		    strcmp(doc->from_site, doc->for_site) == 0) {
			wfail(w, 0, NULL, SYNC_ERROR_SCHEMA, "from and for must be two site names");
			return;
		}
		put_attr(out, "from", doc->from_site);
		put_attr(out, "for", doc->for_site);
	} else if (doc->kind != SYNC_CANONICAL) {
		wfail(w, 0, NULL, SYNC_ERROR_SCHEMA, "unknown kind %d", (int)doc->kind);
		return;
	}
	g_string_append(out, ">\n");
	if (doc->kind == SYNC_REPLICATION)
		write_vector(w);
}

gboolean
sync_write(const SyncDoc *doc, GString *out, GError **error)
{
	Writer w = { .out = out, .doc = doc };
	gsize start = out->len;

	w.keys = g_hash_table_new(g_str_hash, g_str_equal);
	w.key_chunk = g_string_chunk_new(64 * 1024);
	if (doc->entries->len > limit_entries)
		wfail(&w, 0, NULL, SYNC_ERROR_LIMIT, "more than %u entries", limit_entries);
	else
		write_header(&w);
	for (guint i = 0; i < doc->entries->len && !w.error; i++) {
		const DirEntry *e = doc->entries->pdata[i];
		switch (doc->kind) {
		case SYNC_POSTOFFICE:
			write_po_entry(&w, i + 1, e);
			break;
		case SYNC_GAL:
			write_gal_entry(&w, i + 1, e);
			break;
		default:
			write_full_entry(&w, i + 1, e);
			break;
		}
	}
	g_hash_table_unref(w.keys);
	g_string_chunk_free(w.key_chunk);
	g_free(w.po);
	if (w.error) {
		g_string_truncate(out, start);
		g_propagate_error(error, w.error);
		return FALSE;
	}
	g_string_append(out, "</sync>\n");
	return TRUE;
}

gboolean
sync_write_file(const SyncDoc *doc, const char *path, GError **error)
{
	GString *out = g_string_new(NULL);
	gboolean ok = sync_write(doc, out, error);

	if (ok && (!path || strcmp(path, "-") == 0)) {
		if (fwrite(out->str, 1, out->len, stdout) != out->len || fflush(stdout) != 0) {
			int e = errno;
			g_set_error(error, SYNC_ERROR, SYNC_ERROR_IO, "standard output: %s",
			    g_strerror(e));
			ok = FALSE;
		}
	} else if (ok) {
		size_t len = strlen(path);
		char *dir = g_path_get_dirname(path), *base = g_path_get_basename(path);
		GError *e = NULL;
		if (len == 0 || path[len - 1] == '/') {
			g_set_error(error, SYNC_ERROR, SYNC_ERROR_IO, "%s: not a file name", path);
			ok = FALSE;
		} else if (!atomic_write_file(dir, base, out->str, out->len, 0644, &e)) {
			g_set_error(error, SYNC_ERROR, SYNC_ERROR_IO, "%s", e->message);
			g_error_free(e);
			ok = FALSE;
		}
		g_free(dir);
		g_free(base);
	}
	g_string_free(out, TRUE);
	return ok;
}

/* ---- comparison ------------------------------------------------------------ */

static gboolean
same_strings(const GPtrArray *a, const GPtrArray *b)
{
	if (a->len != b->len)
		return FALSE;
	for (guint i = 0; i < a->len; i++)
		if (strcmp(a->pdata[i], b->pdata[i]) != 0)
			return FALSE;
	return TRUE;
}

gboolean
sync_entry_equal(const DirEntry *a, const DirEntry *b)
{
	return a->type == b->type && g_strcmp0(a->id, b->id) == 0 &&
	    g_strcmp0(a->legacy, b->legacy) == 0 && g_strcmp0(a->home_site, b->home_site) == 0 &&
	    strcmp(a->name ? a->name : "", b->name ? b->name : "") == 0 &&
	    g_strcmp0(a->target, b->target) == 0 && same_strings(a->proxies, b->proxies) &&
	    same_strings(a->members, b->members) && !a->deleted == !b->deleted &&
	    g_strcmp0(a->origin, b->origin) == 0 && a->usn == b->usn &&
	    a->version == b->version && a->changed == b->changed;
}

gboolean
sync_doc_equal(const SyncDoc *a, const SyncDoc *b)
{
	GHashTableIter it;
	gpointer k, v;

	if (a->kind != b->kind || g_strcmp0(a->postoffice, b->postoffice) != 0 ||
	    g_strcmp0(a->from_site, b->from_site) != 0 ||
	    g_strcmp0(a->for_site, b->for_site) != 0 ||
	    g_hash_table_size(a->vector) != g_hash_table_size(b->vector) ||
	    a->entries->len != b->entries->len)
		return FALSE;
	g_hash_table_iter_init(&it, a->vector);
	while (g_hash_table_iter_next(&it, &k, &v)) {
		const guint64 *w = g_hash_table_lookup(b->vector, k);
		if (!w || *w != *(const guint64 *)v)
			return FALSE;
	}
	for (guint i = 0; i < a->entries->len; i++)
		if (!sync_entry_equal(a->entries->pdata[i], b->entries->pdata[i]))
			return FALSE;
	return TRUE;
}
