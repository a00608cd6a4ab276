/* sync_read.c - the sync file reader (see sync_xml.h, sync_xml_int.h).
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
#include "pg_log.h"
#include "sync_xml_int.h"

#define CHUNK_SIZE  (64u * 1024)   /* bytes handed to the parser at a time */
#define DECL_SCAN   1024u          /* bytes searched for the XML declaration */

static GPrivate current_reader = G_PRIVATE_INIT(NULL);

void
sx_fail(Reader *r, guint line, SyncError code, const char *fmt, ...)
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
void
sx_fail_with(Reader *r, GError *e)
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

guint
sx_cur_line(Reader *r)
{
	int line = r->ctxt ? xmlSAX2GetLineNumber(r->ctxt) : 0;

	return line > 0 ? (guint)line : 0;
}

const char *
sx_attr(Reader *r, Attr a)
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
		    sx_elem_names[r->stack[r->depth - 1].el]);
	sx_fail(r, e->line > 0 ? (guint)e->line : sx_cur_line(r), SYNC_ERROR_XML,
	    "malformed XML: %s", msg->str);
	g_string_free(msg, TRUE);
}

static void
on_doctype(void *ctx, const xmlChar *name, const xmlChar *ext, const xmlChar *sys)
{
	Reader *r = ctx;

	sx_fail(r, sx_cur_line(r), SYNC_ERROR_FORBIDDEN, "DOCTYPE is not allowed");
}

static void
on_entity_decl(void *ctx, const xmlChar *name, int type, const xmlChar *pub,
    const xmlChar *sys, xmlChar *content)
{
	Reader *r = ctx;

	sx_fail(r, sx_cur_line(r), SYNC_ERROR_FORBIDDEN, "entity declarations are not allowed");
}

static void
on_reference(void *ctx, const xmlChar *name)
{
	Reader *r = ctx;
	char *q = pg_shown((const char *)name, -1, 80, TRUE);

	sx_fail(r, sx_cur_line(r), SYNC_ERROR_FORBIDDEN, "entity reference %s is not allowed", q);
	g_free(q);
}

static xmlParserInputPtr
on_resolve(void *ctx, const xmlChar *pub, const xmlChar *sys)
{
	Reader *r = ctx;
	const char *what = sys ? (const char *)sys : pub ? (const char *)pub : "";
	char *q = pg_shown(what, -1, 80, TRUE);

	sx_fail(r, sx_cur_line(r), SYNC_ERROR_FORBIDDEN, "external reference %s is not allowed", q);
	g_free(q);
	return NULL;
}

static void
on_pi(void *ctx, const xmlChar *target, const xmlChar *data)
{
	Reader *r = ctx;
	char *q = pg_shown((const char *)target, -1, 80, TRUE);

	sx_fail(r, sx_cur_line(r), SYNC_ERROR_SCHEMA,
	    "processing instruction %s is not allowed", q);
	g_free(q);
}

/* The process-wide loader: nothing is ever loaded from outside. */
static xmlParserInputPtr
refuse_loader(const char *url, const char *id, xmlParserCtxtPtr ctxt)
{
	Reader *r = g_private_get(&current_reader);

	if (r) {
		const char *what = url ? url : id ? id : "";
		char *q = pg_shown(what, -1, 80, TRUE);
		sx_fail(r, sx_cur_line(r), SYNC_ERROR_FORBIDDEN,
		    "external reference %s is not allowed", q);
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

static xmlSAXHandler *
sax_handler(void)
{
	static xmlSAXHandler sax;
	static gsize done;

	if (g_once_init_enter(&done)) {
		memset(&sax, 0, sizeof sax);
		sax.initialized = XML_SAX2_MAGIC;
		sax.startElementNs = sx_on_start;
		sax.endElementNs = sx_on_end;
		sax.characters = sx_on_text;
		sax.ignorableWhitespace = sx_on_text;
		sax.cdataBlock = sx_on_text;
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
				char *q = sx_shown_name(r->scan_name);
				sx_fail(r, r->scan_line, SYNC_ERROR_LIMIT, "<%s> has more than %u "
				    "attributes (namespace declarations included)", q,
				    SYNC_MAX_ATTRS);
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
		sx_fail(r, 1, SYNC_ERROR_SCHEMA,
		    "the file is not UTF-8 (UTF-16 or UTF-32?): a sync "
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
			char *s = pg_shown(v + 1, (gssize)((size_t)(q - v - 1)), 80, TRUE);
			sx_fail(r, 1, SYNC_ERROR_SCHEMA,
			    "the file declares the encoding %s: a sync "
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
			sx_fail(r, 1, SYNC_ERROR_XML, "malformed XML: the file is empty");
		if (r->error || !check_encoding(r, p, n)) {
			g_private_set(&current_reader, old);
			return;
		}
		r->ctxt = xmlCreatePushParserCtxt(sax_handler(), r, NULL, 0, r->name);
		if (!r->ctxt) {
			sx_fail(r, 0, SYNC_ERROR_IO, "cannot create an XML parser");
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
			sx_fail(r, sx_cur_line(r), SYNC_ERROR_XML, "malformed XML");
		if (!r->error && !r->root_closed)
			sx_fail(r, sx_cur_line(r), SYNC_ERROR_XML,
			    "malformed XML: no <sync> element");
		if (!r->error)
			sx_send_header(r);
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
	if (S_ISREG(st.st_mode) && (guint64)st.st_size > sx_limit_file_size) {
		r->error = g_error_new(SYNC_ERROR, SYNC_ERROR_LIMIT, "%s: the file has %lld bytes, "
		    "more than the %" G_GUINT64_FORMAT " a sync file may have", path,
		    (long long)st.st_size, sx_limit_file_size);
		close(fd);
		return FALSE;
	}
	buf = g_malloc(CHUNK_SIZE);
	for (;;) {
		gssize n = atomic_read_upto(fd, buf, CHUNK_SIZE);
		if (n < 0) {
			int e = errno;
			sx_fail(r, sx_cur_line(r), SYNC_ERROR_IO, "read: %s", g_strerror(e));
			break;
		}
		total += (guint64)n;
		if (total > sx_limit_file_size) {
			sx_fail(r, sx_cur_line(r), SYNC_ERROR_LIMIT, "the file has more than the %"
			    G_GUINT64_FORMAT " bytes a sync file may have", sx_limit_file_size);
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
	if ((guint64)len > sx_limit_file_size) {
		r->error = g_error_new(SYNC_ERROR, SYNC_ERROR_LIMIT,
		    "%s: %zu bytes, more than the %"
		    G_GUINT64_FORMAT " a sync file may have", r->name, len, sx_limit_file_size);
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
