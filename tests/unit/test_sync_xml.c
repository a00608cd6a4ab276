/* test_sync_xml.c - unit tests of directory/sync_xml.c (docs/sync-format.md).
 *
 * Checks that each kind of sync file round-trips (write, read, equal) and is
 * written byte for byte as specified; that every bad file of issue 4's list
 * is refused whole, in the right error class, with "FILE:LINE: what" where
 * LINE is checked (past 65535 too) and what names the problem; that DOCTYPE,
 * billion laughs, XXE and external DTDs are refused before anything is
 * expanded or loaded, and libxml2 prints nothing; that the limits hold; that
 * docs/sync.xsd accepts what the writer writes and rejects the schema-level
 * bad cases.  Inputs are handed over as exact-size unterminated heap copies,
 * so that ASan catches any read past a length.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <libxml/parser.h>
#include <libxml/xmlschemas.h>

#include "cu_run.h"
#include "sync_xml.h"

#define HEAD "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
#define NS "xmlns=\"urn:postgate:sync:1\" version=\"1\""
#define PO_OPEN "<sync " NS " kind=\"postoffice\" postoffice=\"CORP/HQ\">\n"
#define GAL_OPEN "<sync " NS " kind=\"gal\" postoffice=\"CORP/HQ\">\n"
#define REPL_OPEN "<sync " NS " kind=\"replication\" from=\"A\" for=\"B\">\n"
#define CANON_OPEN "<sync " NS " kind=\"canonical\">\n"
#define CHANGE(id, extra) "<change id=\"" id "\" type=\"mailbox\" origin=\"A\" usn=\"1\" " \
	"version=\"1\" changed=\"0\" home=\"A\" legacy=\"CORP/HQ/" id "\"" extra ">"

static char *tmp_dir;

/* A file name in this run's scratch directory; g_free it. */
static char *
tmp_path(const char *name)
{
	if (!tmp_dir)
		tmp_dir = g_dir_make_tmp("test_sync_xml-XXXXXX", NULL);
	return g_build_filename(tmp_dir, name, NULL);
}

static void
remove_tmp(void)
{
	GDir *d;
	const char *name;

	if (!tmp_dir || !(d = g_dir_open(tmp_dir, 0, NULL)))
		return;
	while ((name = g_dir_read_name(d))) {
		char *p = g_build_filename(tmp_dir, name, NULL);
		g_unlink(p);
		g_free(p);
	}
	g_dir_close(d);
	g_rmdir(tmp_dir);
}

/* An exact-size heap copy of text without a terminating NUL. */
static char *
unterminated(const char *text, size_t len)
{
	char *p = g_malloc(len ? len : 1);

	memcpy(p, text, len);
	return p;
}

static SyncDoc *
read_text(const char *text, size_t len, GError **error)
{
	char *buf = unterminated(text, len);
	SyncDoc *doc = sync_read_memory("t.xml", buf, len, error);

	g_free(buf);
	return doc;
}

/* Read text; expect success. */
#define READ_OK(text) read_ok_at(__LINE__, text, strlen(text))

static SyncDoc *
read_ok_at(int line, const char *text, size_t len)
{
	GError *e = NULL;
	SyncDoc *doc = read_text(text, len, &e);

	expect_at(doc != NULL, line, "accepted (%s)", e ? e->message : "");
	g_clear_error(&e);
	return doc;
}

/* Check a refusal: domain, code, "NAME:LINE: " and a part of the message. */
static void
check_refusal(int line, const GError *e, const char *name, SyncError code, guint at,
    const char *part)
{
	char *prefix = g_strdup_printf("%s:%u: ", name, at);

	expect_at(e != NULL, line, "refused (line %u: %s)", at, part);
	if (e) {
		expect_at(e->domain == SYNC_ERROR, line, "SYNC_ERROR domain: %s", e->message);
		expect_at(e->code == (int)code, line, "code %d, got %d: %s", code, e->code,
		    e->message);
		expect_at(g_str_has_prefix(e->message, prefix), line, "starts with \"%s\": %s",
		    prefix, e->message);
		expect_at(strstr(e->message, part) != NULL, line, "says \"%s\": %s", part,
		    e->message);
	}
	g_free(prefix);
}

/* Read text from memory and from a file; expect the same refusal from both. */
#define REFUSED(text, code, at, part) \
	refused_at(__LINE__, text, strlen(text), code, at, part)

static void
refused_at(int line, const char *text, size_t len, SyncError code, guint at, const char *part)
{
	GError *e = NULL;
	SyncDoc *doc = read_text(text, len, &e);
	char *path = tmp_path("refused.xml");

	expect_at(doc == NULL, line, "nothing returned for a refused file");
	check_refusal(line, e, "t.xml", code, at, part);
	g_clear_error(&e);
	sync_doc_free(doc);
	g_file_set_contents(path, text, (gssize)len, NULL);
	doc = sync_read_file(path, &e);
	expect_at(doc == NULL, line, "nothing returned for a refused file");
	check_refusal(line, e, path, code, at, part);
	g_clear_error(&e);
	sync_doc_free(doc);
	g_unlink(path);
	g_free(path);
}

static DirEntry *
entry(DirType type, const char *id, const char *legacy, const char *name)
{
	DirEntry *e = dir_entry_new(type);

	e->id = g_strdup(id);
	e->legacy = g_strdup(legacy);
	e->name = g_strdup(name);
	return e;
}

static void
add(GPtrArray *a, const char *s)
{
	g_ptr_array_add(a, g_strdup(s));
}

static void
stamp(DirEntry *e, const char *home, const char *origin, guint64 usn, guint64 version,
    gint64 changed)
{
	e->home_site = g_strdup(home);
	e->origin = g_strdup(origin);
	e->usn = usn;
	e->version = version;
	e->changed = changed;
}

static void
vector_set(SyncDoc *d, const char *site, guint64 usn)
{
	guint64 *v = g_new(guint64, 1);

	*v = usn;
	g_hash_table_insert(d->vector, g_strdup(site), v);
}

static char *
written(const SyncDoc *doc)
{
	GString *out = g_string_new(NULL);
	GError *e = NULL;

	EXPECT(sync_write(doc, out, &e), "written (%s)", e ? e->message : "");
	g_clear_error(&e);
	return g_string_free(out, FALSE);
}

/* ---- docs/sync.xsd through libxml2's validator (the engine of xmllint) ---- */

static GString *xsd_errors;

static void
collect_xsd_error(void *data, xmlErrorPtr e)
{
	if (xsd_errors && e && e->message)
		g_string_append(xsd_errors, e->message);
}

static xmlSchemaPtr
schema(void)
{
	static xmlSchemaPtr s;
	char *text = NULL, *path;
	const char *srcdir = g_getenv("srcdir");
	gsize len = 0;

	if (s)
		return s;
	/* srcdir is set by "make check"; by hand, the source tree of this file */
	if (srcdir)
		path = g_build_filename(srcdir, "docs", "sync.xsd", NULL);
	else {
		char *dir = g_path_get_dirname(__FILE__);
		path = g_build_filename(dir, "..", "..", "docs", "sync.xsd", NULL);
		g_free(dir);
	}
	if (g_file_get_contents(path, &text, &len, NULL)) {
		/* from memory: the external entity loader of sync_xml.c refuses files */
		xmlSchemaParserCtxtPtr p = xmlSchemaNewMemParserCtxt(text, (int)len);
		xmlSchemaSetParserStructuredErrors(p, collect_xsd_error, NULL);
		s = xmlSchemaParse(p);
		xmlSchemaFreeParserCtxt(p);
		g_free(text);
	}
	EXPECT(s != NULL, "%s compiles", path);
	g_free(path);
	return s;
}

/* Whether docs/sync.xsd accepts text, as xmllint --noout --schema would. */
static gboolean
xsd_valid(const char *text, char **why)
{
	xmlSchemaPtr s = schema();
	xmlSchemaValidCtxtPtr v;
	xmlParserCtxtPtr p;
	xmlDocPtr doc;
	int rc = -1;

	xsd_errors = g_string_new(NULL);
	if (s) {
		p = xmlNewParserCtxt();
		xmlSetStructuredErrorFunc(NULL, collect_xsd_error);
		doc = xmlCtxtReadMemory(p, text, (int)strlen(text), "x.xml", NULL, XML_PARSE_NONET);
		xmlSetStructuredErrorFunc(NULL, NULL);
		if (doc) {
			v = xmlSchemaNewValidCtxt(s);
			xmlSchemaSetValidStructuredErrors(v, collect_xsd_error, NULL);
			rc = xmlSchemaValidateDoc(v, doc);
			xmlSchemaFreeValidCtxt(v);
			xmlFreeDoc(doc);
		}
		xmlFreeParserCtxt(p);
	}
	*why = g_string_free(xsd_errors, FALSE);
	xsd_errors = NULL;
	return rc == 0;
}

#define XSD_OK(text) xsd_ok_at(__LINE__, text)
#define XSD_BAD(text) xsd_bad_at(__LINE__, text)

static void
xsd_ok_at(int line, const char *text)
{
	char *why = NULL;

	expect_at(xsd_valid(text, &why), line, "docs/sync.xsd accepts it (%s)", why);
	g_free(why);
}

static void
xsd_bad_at(int line, const char *text)
{
	char *why = NULL;
	GError *e = NULL;
	SyncDoc *doc = read_text(text, strlen(text), &e);

	expect_at(!xsd_valid(text, &why), line, "docs/sync.xsd rejects it");
	expect_at(doc == NULL, line, "the reader refuses it too");
	g_free(why);
	g_clear_error(&e);
	sync_doc_free(doc);
}

/* ---- documents of each kind -------------------------------------------------- */

static SyncDoc *
po_doc(void)
{
	SyncDoc *d = sync_doc_new(SYNC_POSTOFFICE);
	DirEntry *e;

	d->postoffice = g_strdup("CORP/HQ");
	g_ptr_array_add(d->entries, entry(DIR_MAILBOX, NULL, "CORP/HQ/JSMITH", "John Smith"));
	e = entry(DIR_CUSTOM, NULL, "CORP/HQ/EXT-1", "Ann <\"Ext\"> & Co");
	e->target = g_strdup("SMTP:ann.o'neil@example.com");
	g_ptr_array_add(d->entries, e);
	e = entry(DIR_LIST, NULL, "CORP/HQ/ALL_STAFF", "");
	add(e->members, "CORP/HQ/JSMITH");
	add(e->members, "CORP/BRANCH/B2");
	g_ptr_array_add(d->entries, e);
	g_ptr_array_add(d->entries, entry(DIR_MAILBOX, NULL, "CORP/HQ/X", "Zoë Ünal 日本"));
	return d;
}

static const char po_text[] =
    HEAD
    PO_OPEN
    "  <mailbox name=\"JSMITH\" display=\"John Smith\"/>\n"
    "  <custom name=\"EXT-1\" display=\"Ann &lt;&quot;Ext&quot;&gt; &amp; Co\" "
    "target=\"ann.o'neil@example.com\"/>\n"
    "  <list name=\"ALL_STAFF\">\n"
    "    <member address=\"CORP/HQ/JSMITH\"/>\n"
    "    <member address=\"CORP/BRANCH/B2\"/>\n"
    "  </list>\n"
    "  <mailbox name=\"X\" display=\"Zoë Ünal 日本\"/>\n"
    "</sync>\n";

static SyncDoc *
gal_doc(void)
{
	SyncDoc *d = sync_doc_new(SYNC_GAL);
	DirEntry *e;

	d->postoffice = g_strdup("CORP/BRANCH");
	e = entry(DIR_MAILBOX, NULL, "CORP/HQ/JSMITH", "John Smith");
	add(e->proxies, "SMTP:John.Smith@company.com");
	g_ptr_array_add(d->entries, e);
	e = entry(DIR_CUSTOM, NULL, "CORP/GW/EXT1", "Ext");
	add(e->proxies, "SMTP:ext@example.org");
	g_ptr_array_add(d->entries, e);
	g_ptr_array_add(d->entries, entry(DIR_LIST, NULL, "CORP/HQ/ALL", "All & everyone"));
	return d;
}

static const char gal_text[] =
    HEAD
    "<sync " NS " kind=\"gal\" postoffice=\"CORP/BRANCH\">\n"
    "  <entry type=\"mailbox\" address=\"CORP/HQ/JSMITH\" display=\"John Smith\" "
    "smtp=\"John.Smith@company.com\"/>\n"
    "  <entry type=\"custom\" address=\"CORP/GW/EXT1\" display=\"Ext\" "
    "smtp=\"ext@example.org\"/>\n"
    "  <entry type=\"list\" address=\"CORP/HQ/ALL\" display=\"All &amp; everyone\"/>\n"
    "</sync>\n";

static SyncDoc *
repl_doc(void)
{
	SyncDoc *d = sync_doc_new(SYNC_REPLICATION);
	DirEntry *e;

	d->from_site = g_strdup("site-b");
	d->for_site = g_strdup("A");
	vector_set(d, "site-b", 42);
	vector_set(d, "A", 7);
	vector_set(d, "C_3", 0);
	e = entry(DIR_MAILBOX, "B:user2", "CORP/B/USER2", "User Two");
	stamp(e, "site-b", "site-b", 40, 3, 1700000000);
	add(e->proxies, "SMTP:user2@company.com");
	add(e->proxies, "smtp:user2@imc2.company.com");
	g_ptr_array_add(d->entries, e);
	e = entry(DIR_CUSTOM, "B:ext.1", "CORP/GW/EXT1", "");
	stamp(e, "site-b", "A", 5, 1, 0);
	e->target = g_strdup("SMTP:someone@example.net");
	add(e->proxies, "SMTP:ext1@company.com");
	g_ptr_array_add(d->entries, e);
	e = entry(DIR_LIST, "B:list", "CORP/B/LIST", "List");
	stamp(e, "site-b", "site-b", 41, 2, 1700000001);
	add(e->proxies, "SMTP:list@company.com");
	add(e->members, "CORP/B/USER2");
	add(e->members, "CORP/GW/EXT1");
	g_ptr_array_add(d->entries, e);
	e = entry(DIR_MAILBOX, "B:gone", "CORP/B/GONE", "");
	stamp(e, "site-b", "site-b", 42, 9, G_MAXINT64);
	e->deleted = TRUE;
	g_ptr_array_add(d->entries, e);
	return d;
}

static const char repl_text[] =
    HEAD
    "<sync " NS " kind=\"replication\" from=\"site-b\" for=\"A\">\n"
    "  <vector>\n"
    "    <seen site=\"A\" usn=\"7\"/>\n"
    "    <seen site=\"C_3\" usn=\"0\"/>\n"
    "    <seen site=\"site-b\" usn=\"42\"/>\n"
    "  </vector>\n"
    "  <change id=\"B:user2\" type=\"mailbox\" origin=\"site-b\" usn=\"40\" version=\"3\" "
    "changed=\"1700000000\" home=\"site-b\" legacy=\"CORP/B/USER2\" display=\"User Two\" "
    "deleted=\"false\">\n"
    "    <proxy>SMTP:user2@company.com</proxy>\n"
    "    <proxy>smtp:user2@imc2.company.com</proxy>\n"
    "  </change>\n"
    "  <change id=\"B:ext.1\" type=\"custom\" origin=\"A\" usn=\"5\" version=\"1\" "
    "changed=\"0\" home=\"site-b\" legacy=\"CORP/GW/EXT1\" target=\"someone@example.net\" "
    "deleted=\"false\">\n"
    "    <proxy>SMTP:ext1@company.com</proxy>\n"
    "  </change>\n"
    "  <change id=\"B:list\" type=\"list\" origin=\"site-b\" usn=\"41\" version=\"2\" "
    "changed=\"1700000001\" home=\"site-b\" legacy=\"CORP/B/LIST\" display=\"List\" "
    "deleted=\"false\">\n"
    "    <proxy>SMTP:list@company.com</proxy>\n"
    "    <member>CORP/B/USER2</member>\n"
    "    <member>CORP/GW/EXT1</member>\n"
    "  </change>\n"
    "  <change id=\"B:gone\" type=\"mailbox\" origin=\"site-b\" usn=\"42\" version=\"9\" "
    "changed=\"9223372036854775807\" home=\"site-b\" legacy=\"CORP/B/GONE\" "
    "deleted=\"true\"/>\n"
    "</sync>\n";

static SyncDoc *
canon_doc(void)
{
	SyncDoc *d = sync_doc_new(SYNC_CANONICAL);
	DirEntry *e;

	e = entry(DIR_LIST, "A:1", "CORP/HQ/ALL", "All");
	e->home_site = g_strdup("A");
	add(e->proxies, "smtp:zz@company.com");
	add(e->proxies, "smtp:all@hq.company.com");
	add(e->proxies, "SMTP:all@company.com");
	add(e->members, "CORP/HQ/ZED");
	add(e->members, "CORP/HQ/ANN");
	g_ptr_array_add(d->entries, e);
	e = entry(DIR_MAILBOX, "A:2", "CORP/HQ/ANN", "Ann");
	e->home_site = g_strdup("A");
	e->deleted = TRUE;
	g_ptr_array_add(d->entries, e);
	return d;
}

static const char canon_text[] =
    HEAD
    CANON_OPEN
    "  <entry id=\"A:1\" type=\"list\" home=\"A\" legacy=\"CORP/HQ/ALL\" display=\"All\">\n"
    "    <proxy>SMTP:all@company.com</proxy>\n"
    "    <proxy>smtp:all@hq.company.com</proxy>\n"
    "    <proxy>smtp:zz@company.com</proxy>\n"
    "    <member>CORP/HQ/ANN</member>\n"
    "    <member>CORP/HQ/ZED</member>\n"
    "  </entry>\n"
    "  <entry id=\"A:2\" type=\"mailbox\" home=\"A\" legacy=\"CORP/HQ/ANN\" display=\"Ann\" "
    "deleted=\"true\"/>\n"
    "</sync>\n";

/* Write doc, expect exactly text, read it back, expect doc. */
static void
round_trip(int line, SyncDoc *doc, const char *text)
{
	char *out = written(doc), *again;
	SyncDoc *back = read_ok_at(line, out, strlen(out));

	expect_at(strcmp(out, text) == 0, line, "written as specified:\n%s\nexpected:\n%s",
	    out, text);
	if (back) {
		expect_at(sync_doc_equal(doc, back), line, "read back equal");
		again = written(back);
		expect_at(strcmp(out, again) == 0, line, "written again the same");
		g_free(again);
	}
	XSD_OK(out);
	sync_doc_free(back);
	sync_doc_free(doc);
	g_free(out);
}

static int
cmp_indirect(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
test_round_trip_postoffice(void)
{
	round_trip(__LINE__, po_doc(), po_text);
}

static void
test_round_trip_gal(void)
{
	round_trip(__LINE__, gal_doc(), gal_text);
}

static void
test_round_trip_replication(void)
{
	round_trip(__LINE__, repl_doc(), repl_text);
}

static void
test_round_trip_canonical(void)
{
	SyncDoc *d = canon_doc();
	char *out = written(d);
	SyncDoc *back;

	EXPECT(strcmp(out, canon_text) == 0, "canonical: proxies and members sorted:\n%s", out);
	XSD_OK(out);
	back = READ_OK(out);
	for (guint i = 0; i < d->entries->len; i++) {
		DirEntry *e = d->entries->pdata[i];
		g_ptr_array_sort(e->proxies, cmp_indirect);
		g_ptr_array_sort(e->members, cmp_indirect);
	}
	EXPECT(back && sync_doc_equal(d, back), "canonical read back equal");
	sync_doc_free(back);
	g_free(out);
	sync_doc_free(d);
}

/* A hand-written file in any case and order reads canonical. */
static void
test_read_normalises(void)
{
	SyncDoc *d = READ_OK(
	    "<!-- a postoffice export -->\n"
	    "<p:sync xmlns:p=\"urn:postgate:sync:1\" version=\"1\" kind=\"postoffice\" "
	    "postoffice=\" corp/hq \">\n"
	    "  <p:list name=\"all\"><p:member address=\"corp/hq/jsmith \"/></p:list>\n"
	    "  <p:custom target=\"Bob@Example.COM\" name=\"bob\"/>\n"
	    "  <!-- comments are fine -->\n"
	    "  <p:mailbox display=\"J &#38; S\" name=\"jsmith\"></p:mailbox>\n"
	    "</p:sync>\n");
	SyncDoc *c = READ_OK(CANON_OPEN
	    "<entry id=\"x\" type=\"list\" home=\"A\" legacy=\"a/b/c\">\n"
	    "<proxy>smtp:b@X.ORG</proxy><proxy><![CDATA[ SMTP:a@X.org ]]></proxy>\n"
	    "<member>\n  a/b/z\n</member><member>A/B/Y</member></entry></sync>");

	if (d) {
		DirEntry *l = d->entries->pdata[0], *cu = d->entries->pdata[1],
		    *m = d->entries->pdata[2];
		EXPECT(strcmp(d->postoffice, "CORP/HQ") == 0, "postoffice canonical: %s",
		    d->postoffice);
		EXPECT(d->entries->len == 3, "three entries");
		EXPECT(l->type == DIR_LIST && strcmp(l->legacy, "CORP/HQ/ALL") == 0 &&
		    l->members->len == 1 && strcmp(l->members->pdata[0], "CORP/HQ/JSMITH") == 0,
		    "list with its canonical member");
		EXPECT(cu->type == DIR_CUSTOM && strcmp(cu->target, "SMTP:Bob@example.com") == 0,
		    "target: local part kept, domain lower case: %s", cu->target);
		EXPECT(m->type == DIR_MAILBOX && strcmp(m->name, "J & S") == 0 &&
		    strcmp(m->legacy, "CORP/HQ/JSMITH") == 0 && m->id == NULL &&
		    m->proxies->len == 0 && m->usn == 0, "mailbox: %s", m->name);
		EXPECT(strcmp(l->name, "") == 0, "no display: \"\"");
	}
	if (c) {
		DirEntry *e = c->entries->pdata[0];
		EXPECT(e->proxies->len == 2 && strcmp(e->proxies->pdata[0], "SMTP:a@x.org") == 0 &&
		    strcmp(e->proxies->pdata[1], "smtp:b@x.org") == 0, "canonical proxies sorted");
		EXPECT(e->members->len == 2 && strcmp(e->members->pdata[0], "A/B/Y") == 0 &&
		    strcmp(e->members->pdata[1], "A/B/Z") == 0, "canonical members sorted");
	}
	sync_doc_free(d);
	sync_doc_free(c);
}

static void
test_write_deterministic(void)
{
	SyncDoc *a = repl_doc(), *b = repl_doc();
	char *x, *y;

	/* the same vector, built in another order */
	g_hash_table_remove_all(b->vector);
	vector_set(b, "C_3", 0);
	vector_set(b, "site-b", 42);
	vector_set(b, "A", 7);
	x = written(a);
	y = written(b);
	EXPECT(strcmp(x, y) == 0, "same document, same bytes");
	g_free(x);
	g_free(y);
	sync_doc_free(a);
	sync_doc_free(b);
}

/* Writing refuses what reading would refuse, and appends nothing then. */
static void
write_refused_at(int line, SyncDoc *d, const char *part)
{
	GString *out = g_string_new("kept");
	GError *e = NULL;

	expect_at(!sync_write(d, out, &e), line, "write refused (%s)", part);
	expect_at(strcmp(out->str, "kept") == 0, line, "nothing appended");
	expect_at(e && e->domain == SYNC_ERROR && strstr(e->message, part), line,
	    "says \"%s\": %s", part, e ? e->message : "");
	g_clear_error(&e);
	g_string_free(out, TRUE);
	sync_doc_free(d);
}

static void
test_write_refuses(void)
{
	SyncDoc *d;
	DirEntry *e;

	d = repl_doc();
	add(((DirEntry *)d->entries->pdata[0])->proxies, "SMTP:two@company.com");
	write_refused_at(__LINE__, d, "2 primary SMTP: proxies");
	d = repl_doc();
	g_ptr_array_remove_index(((DirEntry *)d->entries->pdata[0])->proxies, 0);
	write_refused_at(__LINE__, d, "no primary SMTP: proxy");
	d = repl_doc();
	e = d->entries->pdata[1];
	g_free(e->id);
	e->id = g_strdup("B:user2");
	write_refused_at(__LINE__, d, "the id B:user2 is also that of entry 1");
	d = po_doc();
	e = d->entries->pdata[0];
	g_free(e->legacy);
	e->legacy = g_strdup("CORP/OTHER/JSMITH");
	write_refused_at(__LINE__, d, "CORP/OTHER/JSMITH is not at the postoffice CORP/HQ");
	d = gal_doc();
	e = d->entries->pdata[0];
	g_free(e->name);
	e->name = g_strdup("tab\there");
	write_refused_at(__LINE__, d, "control character");
	d = po_doc();
	e = d->entries->pdata[0];
	add(e->members, "CORP/HQ/X");
	write_refused_at(__LINE__, d, "a mailbox with members");
	d = repl_doc();
	e = d->entries->pdata[1];
	g_free(e->target);
	e->target = NULL;
	write_refused_at(__LINE__, d, "a custom recipient without a target");
	d = repl_doc();
	g_free(d->for_site);
	d->for_site = g_strdup("site-b");
	write_refused_at(__LINE__, d, "from and for must be two site names");
}

static void
test_write_file(void)
{
	SyncDoc *d = gal_doc(), *back;
	char *path = tmp_path("gal.xml"), *text = NULL, *bad;
	GError *e = NULL;
	int saved, fd;
	gsize len;

	EXPECT(sync_write_file(d, path, &e), "written to a file (%s)", e ? e->message : "");
	g_clear_error(&e);
	EXPECT(g_file_get_contents(path, &text, &len, NULL) && strcmp(text, gal_text) == 0,
	    "the file holds the document");
	g_free(text);
	back = sync_read_file(path, &e);
	EXPECT(back && sync_doc_equal(d, back), "read back from the file (%s)",
	    e ? e->message : "");
	g_clear_error(&e);
	sync_doc_free(back);
	g_free(path);

	/* "-": standard output */
	path = tmp_path("stdout.xml");
	fflush(stdout);
	saved = dup(1);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(fd, 1);
	close(fd);
	EXPECT(sync_write_file(d, "-", &e), "written to stdout");
	g_clear_error(&e);
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	EXPECT(g_file_get_contents(path, &text, &len, NULL) && strcmp(text, gal_text) == 0,
	    "stdout holds the document");
	g_free(text);
	g_free(path);

	bad = tmp_path("no/such/dir.xml");
	EXPECT(!sync_write_file(d, bad, &e) && e && e->code == SYNC_ERROR_IO,
	    "an unwritable path is an I/O error (%s)", e ? e->message : "");
	g_clear_error(&e);
	g_free(bad);
	sync_doc_free(d);
}

static void
test_io_errors(void)
{
	GError *e = NULL;
	SyncDoc *d = sync_read_file("/nonexistent/sync.xml", &e);

	EXPECT(!d && e && e->code == SYNC_ERROR_IO &&
	    g_str_has_prefix(e->message, "/nonexistent/sync.xml: "), "missing file: %s",
	    e ? e->message : "");
	g_clear_error(&e);
	d = sync_read_file("/", &e);
	EXPECT(!d && e && e->code == SYNC_ERROR_IO, "a directory: %s", e ? e->message : "");
	g_clear_error(&e);
}

/* ---- refusals -------------------------------------------------------------- */

static void
test_refuse_malformed(void)
{
	REFUSED("", SYNC_ERROR_XML, 1, "the file is empty");
	REFUSED("not xml at all", SYNC_ERROR_XML, 1, "malformed XML");
	REFUSED(PO_OPEN "  <mailbox name=\"A\">\n</sync>\n", SYNC_ERROR_XML, 3,
	    "Opening and ending tag mismatch: mailbox line 2 and sync");
	REFUSED(PO_OPEN "  <mailbox name=\"A\"/>\n", SYNC_ERROR_XML, 2,
	    "malformed XML: the file ends inside <sync> (cut short?)");
	REFUSED(PO_OPEN "  <list name=\"A\">\n    <member address=\"A/B/C\"", SYNC_ERROR_XML, 3,
	    "malformed XML");
	REFUSED(PO_OPEN "</sync>\n<sync/>\n", SYNC_ERROR_XML, 3, "Extra content");
	REFUSED("<sync " NS " kind=\"postoffice\" postoffice=\"CORP/HQ\">\r\n<mailbox name=\"A\"/>"
	    "\r\n\r\n<mailbox name=\"!\"/>\r\n</sync>", SYNC_ERROR_SCHEMA, 4, "bad address \"!\"");
	REFUSED(PO_OPEN "  <mailbox name=\"A\" name=\"B\"/>\n</sync>", SYNC_ERROR_XML, 2,
	    "Attribute name redefined");
	REFUSED(PO_OPEN "  <mailbox name=\"A & B\"/>\n</sync>", SYNC_ERROR_XML, 2,
	    "malformed XML");
	REFUSED(PO_OPEN "\n\n  <mailbox name=\"\xff\"/>\n</sync>", SYNC_ERROR_XML, 4,
	    "not proper UTF-8");
	REFUSED("<sync xmlns=\"urn:postgate:sync:1\" version=\"1\" kind=\"canonical\">&#0;</sync>",
	    SYNC_ERROR_XML, 1, "malformed XML");
	REFUSED(CANON_OPEN "<x:entry/></sync>", SYNC_ERROR_XML, 2, "Namespace prefix x");
	{
		/* the length is the document: a NUL and what follows are read */
		static const char t[] = CANON_OPEN "</sync>\n\0<garbage";
		refused_at(__LINE__, t, sizeof t - 1, SYNC_ERROR_XML, 3, "malformed XML");
	}
}

static void
test_refuse_namespace_and_root(void)
{
	REFUSED("<sync version=\"1\" kind=\"canonical\"/>", SYNC_ERROR_SCHEMA, 1,
	    "<sync> has no namespace");
	REFUSED("<sync xmlns=\"urn:postgate:sync:2\" version=\"1\" kind=\"canonical\"/>",
	    SYNC_ERROR_SCHEMA, 1, "<sync> is in the namespace urn:postgate:sync:2");
	REFUSED("\n<dir " NS " kind=\"canonical\"/>", SYNC_ERROR_SCHEMA, 2,
	    "the root element must be <sync>, not <dir>");
	REFUSED("<sync xmlns=\"urn:postgate:sync:1\" kind=\"canonical\"/>", SYNC_ERROR_SCHEMA, 1,
	    "<sync> needs the attribute version=\"1\"");
	REFUSED("<sync xmlns=\"urn:postgate:sync:1\" version=\"2\" kind=\"canonical\"/>",
	    SYNC_ERROR_SCHEMA, 1, "unsupported version \"2\"");
	REFUSED("<sync " NS "/>", SYNC_ERROR_SCHEMA, 1, "<sync> needs the attribute kind");
	REFUSED("<sync " NS "\n kind=\"everything\"/>", SYNC_ERROR_SCHEMA, 2,
	    "unknown kind \"everything\"");
	REFUSED("<sync " NS " kind=\"postoffice\"/>", SYNC_ERROR_SCHEMA, 1,
	    "<sync kind=\"postoffice\"> needs the attribute postoffice");
	REFUSED("<sync " NS " kind=\"gal\" postoffice=\"CORP/HQ\" from=\"A\"/>",
	    SYNC_ERROR_SCHEMA, 1, "attribute from is not allowed on <sync kind=\"gal\">");
	REFUSED("<sync " NS " kind=\"replication\" from=\"A\"/>", SYNC_ERROR_SCHEMA, 1,
	    "<sync kind=\"replication\"> needs the attribute for");
	REFUSED("<sync " NS " kind=\"replication\" from=\"A\" for=\"A\"/>", SYNC_ERROR_SCHEMA, 1,
	    "from and for name the same site A");
	REFUSED("<sync " NS " kind=\"replication\" from=\"A B\" for=\"C\"/>", SYNC_ERROR_SCHEMA, 1,
	    "<sync> attribute from: \"A B\" is not a site name");
	REFUSED("<sync " NS " kind=\"canonical\" postoffice=\"CORP/HQ\"/>", SYNC_ERROR_SCHEMA, 1,
	    "attribute postoffice is not allowed");
	REFUSED("<sync " NS " kind=\"postoffice\" postoffice=\"CORP\"/>", SYNC_ERROR_SCHEMA, 1,
	    "a postoffice is written NET/PO");
}

static void
test_refuse_unknown(void)
{
	REFUSED(PO_OPEN "  <mailbox name=\"A\"/>\n  <user name=\"B\"/>\n</sync>",
	    SYNC_ERROR_SCHEMA, 3, "unknown element <user>");
	REFUSED(PO_OPEN "  <mailbox name=\"A\" email=\"a@b\"/>\n</sync>", SYNC_ERROR_SCHEMA, 2,
	    "unknown attribute email on <mailbox>");
	REFUSED(PO_OPEN "  <mailbox name=\"A\" target=\"a@b.c\"/>\n</sync>", SYNC_ERROR_SCHEMA, 2,
	    "unknown attribute target on <mailbox>");
	REFUSED("<sync " NS " kind=\"canonical\" xmlns:xsi=\"http://www.w3.org/2001/"
	    "XMLSchema-instance\" xsi:schemaLocation=\"x\"/>", SYNC_ERROR_SCHEMA, 1,
	    "unknown attribute xsi:schemaLocation on <sync>");
	for (int k = 0; k < 2; k++) {
		/* what the file names is quoted, escaped and cut short in messages:
		 * ours (k = 0) and libxml2's (k = 1: not a valid URI) */
		GString *t = g_string_new(PO_OPEN "<mailbox xmlns=\"urn:");
		GError *e = NULL;
		SyncDoc *d;
		for (int i = 0; i < 100000; i++)
			g_string_append(t, k ? "x\xc3\xa9" : "x");
		g_string_append(t, "\"/></sync>");
		d = read_text(t->str, t->len, &e);
		EXPECT(!d && e && strlen(e->message) < 400 && g_utf8_validate(e->message, -1, NULL) &&
		    strstr(e->message, k ? "malformed XML: xmlns: 'urn:x\xc3\xa9x" :
		    "unknown element <mailbox> (namespace urn:xxxx"), "short message: %.300s",
		    e ? e->message : "");
		g_clear_error(&e);
		g_string_free(t, TRUE);
	}
	REFUSED(PO_OPEN "  <mailbox xmlns=\"urn:other\" name=\"A\"/>\n</sync>", SYNC_ERROR_SCHEMA,
	    2, "unknown element <mailbox> (namespace urn:other)");
	REFUSED(PO_OPEN "  <entry type=\"mailbox\" address=\"CORP/HQ/A\"/>\n</sync>",
	    SYNC_ERROR_SCHEMA, 2, "<entry> is not allowed in a postoffice file");
	REFUSED(GAL_OPEN "  <mailbox name=\"A\"/>\n</sync>", SYNC_ERROR_SCHEMA, 2,
	    "<mailbox> is not allowed in a gal file");
	REFUSED(GAL_OPEN "  <entry type=\"mailbox\" address=\"CORP/HQ/A\">\n"
	    "    <proxy>SMTP:a@b.c</proxy>\n  </entry>\n</sync>", SYNC_ERROR_SCHEMA, 3,
	    "<proxy> is not allowed in <entry>");
	REFUSED(GAL_OPEN "  <entry type=\"mailbox\" address=\"CORP/HQ/A\" id=\"x\"/>\n</sync>",
	    SYNC_ERROR_SCHEMA, 2, "unknown attribute id on <entry>");
	REFUSED(CANON_OPEN "  <entry id=\"x\" type=\"mailbox\" home=\"A\" legacy=\"A/B/C\" "
	    "usn=\"1\"/>\n</sync>", SYNC_ERROR_SCHEMA, 2, "unknown attribute usn on <entry>");
	REFUSED(PO_OPEN "  <list name=\"L\">\n    <mailbox name=\"A\"/>\n  </list>\n</sync>",
	    SYNC_ERROR_SCHEMA, 3, "<mailbox> is not allowed in <list>");
	REFUSED(REPL_OPEN CHANGE("X", "") "<proxy>SMTP:x@y.z</proxy></change>\n"
	    "<vector/>\n</sync>", SYNC_ERROR_SCHEMA, 3,
	    "<vector> must come before the first <change>");
	REFUSED(REPL_OPEN "<vector/>\n<vector/>\n</sync>", SYNC_ERROR_SCHEMA, 3,
	    "a second <vector>");
	REFUSED(REPL_OPEN "<vector><seen site=\"A\" usn=\"1\" extra=\"1\"/></vector></sync>",
	    SYNC_ERROR_SCHEMA, 2, "unknown attribute extra on <seen>");
	REFUSED(CANON_OPEN "  <entry id=\"x\" type=\"list\" home=\"A\" legacy=\"A/B/C\">\n"
	    "    <member>A/B/D</member>\n    <proxy>SMTP:a@b.c</proxy>\n  </entry>\n</sync>",
	    SYNC_ERROR_SCHEMA, 4, "<proxy> must come before the <member> elements");
	REFUSED(REPL_OPEN CHANGE("X", "") "\n<proxy>SMTP:x@y.z</proxy>\n<member>A/B/C</member>\n"
	    "</change></sync>", SYNC_ERROR_SCHEMA, 4, "a mailbox has no members");
	REFUSED(PO_OPEN "  <mailbox name=\"A\">text</mailbox>\n</sync>", SYNC_ERROR_SCHEMA, 2,
	    "text is not allowed in <mailbox>");
	REFUSED(PO_OPEN "  loose text\n</sync>", SYNC_ERROR_SCHEMA, 3,
	    "text is not allowed in <sync>");
	REFUSED(PO_OPEN "<?php echo 1; ?>\n</sync>", SYNC_ERROR_SCHEMA, 2,
	    "processing instruction \"php\" is not allowed");
}

static void
test_refuse_missing_attribute(void)
{
	REFUSED(PO_OPEN "  <mailbox display=\"A\"/>\n</sync>", SYNC_ERROR_SCHEMA, 2,
	    "<mailbox> needs the attribute name");
	REFUSED(PO_OPEN "  <custom name=\"A\"/>\n</sync>", SYNC_ERROR_SCHEMA, 2,
	    "<custom> needs the attribute target");
	REFUSED(PO_OPEN "  <list name=\"A\"><member/></list>\n</sync>", SYNC_ERROR_SCHEMA, 2,
	    "<member> needs the attribute address");
	REFUSED(GAL_OPEN "  <entry address=\"A/B/C\"/>\n</sync>", SYNC_ERROR_SCHEMA, 2,
	    "<entry> needs the attribute type");
	REFUSED(REPL_OPEN "<change id=\"x\" type=\"mailbox\" origin=\"A\" usn=\"1\" version=\"1\" "
	    "home=\"A\" legacy=\"A/B/C\"/>\n</sync>", SYNC_ERROR_SCHEMA, 2,
	    "<change> needs the attribute changed");
	REFUSED(REPL_OPEN "<vector><seen site=\"A\"/></vector></sync>", SYNC_ERROR_SCHEMA, 2,
	    "<seen> needs the attribute usn");
	REFUSED(REPL_OPEN "<change id=\"x\" type=\"custom\" origin=\"A\" usn=\"1\" version=\"1\" "
	    "changed=\"1\" home=\"A\" legacy=\"A/B/C\"><proxy>SMTP:a@b.c</proxy></change></sync>",
	    SYNC_ERROR_SCHEMA, 2, "<change> of a custom recipient needs the attribute target");
}

static void
test_refuse_bad_address(void)
{
	REFUSED(PO_OPEN "  <mailbox name=\"J.SMITH\"/>\n</sync>", SYNC_ERROR_SCHEMA, 2,
	    "<mailbox> attribute name: bad address \"J.SMITH\": the name may hold only");
	REFUSED(PO_OPEN "  <mailbox name=\"ELEVENCHARS\"/>\n</sync>", SYNC_ERROR_SCHEMA, 2,
	    "longer than 10 characters");
	REFUSED(PO_OPEN "  <list name=\"L\">\n    <member address=\"CORP/HQ\"/>\n  </list>\n"
	    "</sync>", SYNC_ERROR_SCHEMA, 3, "a legacy address is written NET/PO/MAILBOX");
	REFUSED(PO_OPEN "  <list name=\"L\">\n    <member address=\"SMTP:a@b.c\"/>\n  </list>\n"
	    "</sync>", SYNC_ERROR_SCHEMA, 3, "is not a legacy address NET/PO/MAILBOX");
	REFUSED(PO_OPEN "  <custom name=\"C\" target=\"nobody\"/>\n</sync>", SYNC_ERROR_SCHEMA, 2,
	    "<custom> attribute target: bad address \"nobody\": an SMTP address is written "
	    "local@domain");
	REFUSED(PO_OPEN "  <custom name=\"C\" target=\"SMTP:a@b.c\"/>\n</sync>",
	    SYNC_ERROR_SCHEMA, 2, "the local part holds a character that is not allowed");
	REFUSED(GAL_OPEN "  <entry type=\"mailbox\" address=\"A/B/C\" smtp=\"a@b..c\"/>\n</sync>",
	    SYNC_ERROR_SCHEMA, 2, "<entry> attribute smtp: bad address");
	REFUSED(GAL_OPEN "  <entry type=\"mailbox\" address=\"a@b.c\"/>\n</sync>",
	    SYNC_ERROR_SCHEMA, 2, "an Internet address must be written SMTP:local@domain");
	REFUSED(REPL_OPEN CHANGE("X", "") "\n<proxy>SMTP:a@-b.com</proxy></change></sync>",
	    SYNC_ERROR_SCHEMA, 3, "<proxy>: bad address \"a@-b.com\": a domain label starts");
	REFUSED(REPL_OPEN CHANGE("X", "") "\n<proxy>Smtp:a@b.com</proxy></change></sync>",
	    SYNC_ERROR_SCHEMA, 3, "a proxy is SMTP:local@domain (the primary) or smtp:");
	REFUSED(REPL_OPEN CHANGE("X", "") "\n<proxy>X400:c=US;a=;p=Corp</proxy></change></sync>",
	    SYNC_ERROR_SCHEMA, 3, "\"X400:c=US;a=;p=Corp\": a proxy is");
	REFUSED(REPL_OPEN CHANGE("X", "") "\n<proxy>SMTP:\"q\"@b.com</proxy></change></sync>",
	    SYNC_ERROR_SCHEMA, 3, "quoted local parts are not supported");
	REFUSED(CANON_OPEN "<entry id=\"x\" type=\"list\" home=\"A\" legacy=\"A/B/C\">"
	    "<proxy>SMTP:a@b.c</proxy>\n<member>A/B/C/D</member></entry></sync>",
	    SYNC_ERROR_SCHEMA, 3, "<member>: bad address \"A/B/C/D\"");
	REFUSED(REPL_OPEN "<change id=\"x\" type=\"mailbox\" origin=\"A\" usn=\"1\" version=\"1\" "
	    "changed=\"1\" home=\"A\" legacy=\"A/B/C D\"/></sync>", SYNC_ERROR_SCHEMA, 2,
	    "<change> attribute legacy: bad address \"A/B/C D\"");
}

static void
test_refuse_proxies(void)
{
	SyncDoc *d;

	REFUSED(REPL_OPEN CHANGE("X", "") "\n<proxy>SMTP:a@b.com</proxy>\n"
	    "<proxy>SMTP:c@b.com</proxy>\n</change></sync>", SYNC_ERROR_SCHEMA, 4,
	    "a second primary SMTP:c@b.com: X already has SMTP:a@b.com (line 3)");
	REFUSED(REPL_OPEN "\n" CHANGE("X", "") "\n<proxy>smtp:a@b.com</proxy>\n</change></sync>",
	    SYNC_ERROR_SCHEMA, 3, "change X has no primary proxy");
	REFUSED(REPL_OPEN CHANGE("X", "") "</change></sync>", SYNC_ERROR_SCHEMA, 2,
	    "change X has no primary proxy");
	REFUSED(CANON_OPEN "<entry id=\"x\" type=\"mailbox\" home=\"A\" legacy=\"A/B/C\"/></sync>",
	    SYNC_ERROR_SCHEMA, 2, "entry x has no primary proxy");
	REFUSED(REPL_OPEN CHANGE("X", "") "\n<proxy>SMTP:a@B.com</proxy>\n"
	    "<proxy>smtp:a@b.COM</proxy>\n</change></sync>", SYNC_ERROR_SCHEMA, 4,
	    "<proxy>: a@b.com twice in X");
	/* a tombstone may have no proxy; the local part keeps its case */
	d = READ_OK(REPL_OPEN CHANGE("X", " deleted=\"true\"") "</change>\n"
	    CHANGE("Y", "") "<proxy>SMTP:A@B.com</proxy><proxy>smtp:a@b.com</proxy></change>"
	    "</sync>");
	if (d) {
		DirEntry *x = d->entries->pdata[0], *y = d->entries->pdata[1];
		EXPECT(x->deleted && x->proxies->len == 0, "tombstone without proxies");
		EXPECT(!y->deleted && y->proxies->len == 2 &&
		    strcmp(dir_primary(y), "SMTP:A@b.com") == 0, "local parts differ by case");
	}
	sync_doc_free(d);
	{
		GString *t = g_string_new(REPL_OPEN CHANGE("X", "") "\n");
		for (guint i = 0; i <= DIR_MAX_PROXIES; i++)
			g_string_append_printf(t, "<proxy>%s:p%u@b.com</proxy>\n", i ? "smtp" : "SMTP",
			    i);
		g_string_append(t, "</change></sync>");
		refused_at(__LINE__, t->str, t->len, SYNC_ERROR_LIMIT, 3 + DIR_MAX_PROXIES,
		    "X has more than 64 proxies");
		g_string_free(t, TRUE);
	}
}

static void
test_refuse_duplicates(void)
{
	REFUSED(REPL_OPEN CHANGE("X", "") "<proxy>SMTP:a@b.com</proxy></change>\n\n"
	    CHANGE("X", "") "<proxy>SMTP:c@b.com</proxy></change>\n</sync>", SYNC_ERROR_SCHEMA, 4,
	    "the id X is used twice (lines 2 and 4)");
	REFUSED(PO_OPEN "  <mailbox name=\"jsmith\"/>\n  <list name=\"L\"/>\n"
	    "  <custom name=\"JSmith\" target=\"j@s.com\"/>\n</sync>", SYNC_ERROR_SCHEMA, 4,
	    "the name JSMITH is used twice (lines 2 and 4)");
	REFUSED(GAL_OPEN "  <entry type=\"mailbox\" address=\"A/B/C\"/>\n"
	    "  <entry type=\"list\" address=\"a/b/c\"/>\n</sync>", SYNC_ERROR_SCHEMA, 3,
	    "the address A/B/C is used twice (lines 2 and 3)");
	REFUSED(PO_OPEN "  <list name=\"L\">\n    <member address=\"A/B/C\"/>\n"
	    "    <member address=\"a/b/c\"/>\n  </list>\n</sync>", SYNC_ERROR_SCHEMA, 4,
	    "member A/B/C is listed twice (lines 3 and 4)");
	REFUSED(REPL_OPEN "<vector>\n<seen site=\"A\" usn=\"1\"/>\n<seen site=\"A\" usn=\"2\"/>\n"
	    "</vector></sync>", SYNC_ERROR_SCHEMA, 4, "site A is in the vector twice (lines 3 and 4)");
}

static void
test_refuse_display(void)
{
	GString *t = g_string_new(PO_OPEN "<mailbox name=\"A\" display=\"");
	SyncDoc *d;

	for (int i = 0; i < 127; i++)
		g_string_append(t, "\xc3\xa9");   /* é: 254 bytes */
	g_string_append(t, "x\"/></sync>");
	d = read_ok_at(__LINE__, t->str, t->len);
	EXPECT(d && strlen(((DirEntry *)d->entries->pdata[0])->name) == 255, "255 bytes fit");
	sync_doc_free(d);
	g_string_truncate(t, t->len - strlen("x\"/></sync>"));
	g_string_append(t, "\xc3\xa9\"/></sync>");
	refused_at(__LINE__, t->str, t->len, SYNC_ERROR_SCHEMA, 2,
	    "<mailbox> attribute display: the display name is longer than 255 bytes");
	g_string_free(t, TRUE);
	REFUSED(PO_OPEN "<mailbox name=\"A\" display=\"a&#9;b\"/></sync>", SYNC_ERROR_SCHEMA, 2,
	    "the display name holds a control character");
	REFUSED(PO_OPEN "<mailbox name=\"A\" display=\"a&#x7f;b\"/></sync>", SYNC_ERROR_SCHEMA, 2,
	    "control character");
	REFUSED(PO_OPEN "<mailbox name=\"A\" display=\"a&#x85;b\"/></sync>", SYNC_ERROR_SCHEMA, 2,
	    "control character");
	REFUSED(PO_OPEN "<mailbox name=\"A\" display=\"a&#10;b\"/></sync>", SYNC_ERROR_SCHEMA, 2,
	    "control character");
	/* a literal tab or newline in an attribute is a space (XML 1.0 3.3.3) */
	d = READ_OK(PO_OPEN "<mailbox name=\"A\" display=\"a\tb\nc\"/></sync>");
	EXPECT(d && strcmp(((DirEntry *)d->entries->pdata[0])->name, "a b c") == 0,
	    "attribute value normalised");
	sync_doc_free(d);
}

static void
test_refuse_ids_sites_numbers(void)
{
	char long_id[DIR_ID_MAX + 2];
	char *t;

	memset(long_id, 'i', sizeof long_id - 1);
	long_id[sizeof long_id - 1] = '\0';
	t = g_strdup_printf(CANON_OPEN "<entry id=\"%s\" type=\"mailbox\" home=\"A\" "
	    "legacy=\"A/B/C\"/></sync>", long_id);
	REFUSED(t, SYNC_ERROR_SCHEMA, 2, "<entry> attribute id: \"iiii");
	g_free(t);
	REFUSED(CANON_OPEN "<entry id=\"a b\" type=\"mailbox\" home=\"A\" legacy=\"A/B/C\"/>"
	    "</sync>", SYNC_ERROR_SCHEMA, 2, "\"a b\" is not an id (1-64 of A-Z a-z 0-9 . _ : -)");
	REFUSED(CANON_OPEN "<entry id=\"a\" type=\"user\" home=\"A\" legacy=\"A/B/C\"/></sync>",
	    SYNC_ERROR_SCHEMA, 2, "<entry> attribute type: \"user\" is not a type (mailbox, "
	    "custom or list)");
	REFUSED(CANON_OPEN "<entry id=\"a\" type=\"mailbox\" home=\"abcdefghijabcdefghijabcdefghij"
	    "abc\" legacy=\"A/B/C\"/></sync>", SYNC_ERROR_SCHEMA, 2,
	    "<entry> attribute home: \"abcdefghij");
	REFUSED(CANON_OPEN "<entry id=\"a\" type=\"mailbox\" home=\"A\" legacy=\"A/B/C\" "
	    "deleted=\"yes\"/></sync>", SYNC_ERROR_SCHEMA, 2, "\"yes\" is not true or false");
	REFUSED(REPL_OPEN "<change id=\"x\" type=\"mailbox\" origin=\"A\" usn=\"0\" version=\"1\" "
	    "changed=\"1\" home=\"A\" legacy=\"A/B/C\"/></sync>", SYNC_ERROR_SCHEMA, 2,
	    "<change> attribute usn: \"0\" is not a whole number from 1");
	REFUSED(REPL_OPEN "<change id=\"x\" type=\"mailbox\" origin=\"A\" usn=\"01\" version=\"1\" "
	    "changed=\"1\" home=\"A\" legacy=\"A/B/C\"/></sync>", SYNC_ERROR_SCHEMA, 2,
	    "attribute usn: \"01\"");
	REFUSED(REPL_OPEN "<change id=\"x\" type=\"mailbox\" origin=\"A\" usn=\"1\" version=\"-1\" "
	    "changed=\"1\" home=\"A\" legacy=\"A/B/C\"/></sync>", SYNC_ERROR_SCHEMA, 2,
	    "attribute version: \"-1\"");
	REFUSED(REPL_OPEN "<change id=\"x\" type=\"mailbox\" origin=\"A\" usn=\"1\" version=\"1\" "
	    "changed=\"1e9\" home=\"A\" legacy=\"A/B/C\"/></sync>", SYNC_ERROR_SCHEMA, 2,
	    "attribute changed: \"1e9\" is not a whole number from 0");
	REFUSED(REPL_OPEN "<change id=\"x\" type=\"mailbox\" origin=\"A\" "
	    "usn=\"9223372036854775808\" version=\"1\" changed=\"1\" home=\"A\" legacy=\"A/B/C\"/>"
	    "</sync>", SYNC_ERROR_SCHEMA, 2, "attribute usn: \"9223372036854775808\"");
	REFUSED(REPL_OPEN "<change id=\"x\" type=\"mailbox\" origin=\"\" usn=\"1\" version=\"1\" "
	    "changed=\"1\" home=\"A\" legacy=\"A/B/C\"/></sync>", SYNC_ERROR_SCHEMA, 2,
	    "<change> attribute origin: \"\" is not a site name");
	REFUSED(REPL_OPEN "<vector><seen site=\"A\" usn=\"x\"/></vector></sync>", SYNC_ERROR_SCHEMA,
	    2, "<seen> attribute usn: \"x\"");
	REFUSED(CANON_OPEN "<entry id=\"a\" type=\"mailbox\" home=\"A\" legacy=\"A/B/C\" "
	    "target=\"a@b.c\"><proxy>SMTP:a@b.c</proxy></entry></sync>", SYNC_ERROR_SCHEMA, 2,
	    "only a custom recipient has a target, not a mailbox");
}

/* Run f with standard error going to a file; return what was written there. */
static char *
stderr_of(void (*f)(void))
{
	char *path = tmp_path("stderr.txt"), *text = NULL;
	int saved = dup(2), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	fflush(stderr);
	dup2(fd, 2);
	close(fd);
	f();
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	if (!g_file_get_contents(path, &text, NULL, NULL))
		text = g_strdup("(unreadable)");
	g_unlink(path);
	g_free(path);
	return text;
}

static const char laughs[] =
    "<?xml version=\"1.0\"?>\n"
    "<!DOCTYPE sync [\n"
    " <!ENTITY lol \"lol\">\n"
    " <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
    " <!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n"
    " <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
    " <!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n"
    " <!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">\n"
    " <!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">\n"
    " <!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">\n"
    " <!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">\n"
    " <!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">\n"
    "]>\n"
    "<sync " NS " kind=\"postoffice\" postoffice=\"CORP/HQ\">\n"
    "  <mailbox name=\"A\" display=\"&lol9;\"/>\n"
    "  &lol9;\n"
    "</sync>\n";

static void
doctype_cases(void)
{
	gint64 t0 = g_get_monotonic_time();

	REFUSED(laughs, SYNC_ERROR_FORBIDDEN, 2, "DOCTYPE is not allowed");
	EXPECT(g_get_monotonic_time() - t0 < 2 * G_USEC_PER_SEC,
	    "billion laughs refused without expansion");
	REFUSED("<?xml version=\"1.0\"?>\n<!-- x -->\n<!DOCTYPE sync [\n"
	    "<!ENTITY xxe SYSTEM \"file:///etc/passwd\">\n]>\n"
	    "<sync " NS " kind=\"postoffice\" postoffice=\"CORP/HQ\">\n"
	    "<mailbox name=\"A\" display=\"&xxe;\"/>&xxe;</sync>\n",
	    SYNC_ERROR_FORBIDDEN, 3, "DOCTYPE is not allowed");
	REFUSED("<!DOCTYPE sync [\n<!ENTITY % p SYSTEM \"file:///etc/passwd\">\n%p;\n]>\n"
	    "<sync " NS " kind=\"canonical\"/>", SYNC_ERROR_FORBIDDEN, 1,
	    "DOCTYPE is not allowed");
	REFUSED("<!DOCTYPE sync SYSTEM \"http://127.0.0.1:9/sync.dtd\">\n"
	    "<sync " NS " kind=\"canonical\"/>", SYNC_ERROR_FORBIDDEN, 1,
	    "DOCTYPE is not allowed");
	REFUSED("<!DOCTYPE sync PUBLIC \"-//X//DTD Y//EN\" \"file:///etc/passwd\">\n"
	    "<sync " NS " kind=\"canonical\"/>", SYNC_ERROR_FORBIDDEN, 1,
	    "DOCTYPE is not allowed");
	REFUSED("<!DOCTYPE sync>\n<sync " NS " kind=\"canonical\"/>", SYNC_ERROR_FORBIDDEN, 1,
	    "DOCTYPE is not allowed");
	REFUSED(CANON_OPEN "&xxe;</sync>", SYNC_ERROR_XML, 2, "Entity 'xxe' not defined");
	REFUSED(CANON_OPEN "<xi:include xmlns:xi=\"http://www.w3.org/2001/XInclude\" "
	    "href=\"file:///etc/passwd\" parse=\"text\"/></sync>", SYNC_ERROR_SCHEMA, 2,
	    "unknown element <include> (namespace http://www.w3.org/2001/XInclude)");
}

static void
test_refuse_doctype_and_entities(void)
{
	char *err = stderr_of(doctype_cases);

	EXPECT(err[0] == '\0', "libxml2 printed nothing on stderr: %s", err);
	g_free(err);
}

static void
malformed_cases(void)
{
	GError *e = NULL;
	static const char *const bad[] = {
		"<sync", "<a></b>", "<?xml version=\"9\"?><sync/>", "\xff\xfe\x00",
		"<sync " NS " kind=\"canonical\"><x:y/></sync>", "<sync a='1' a='2'/>",
		"<sync " NS " kind=\"canonical\">&#xFFFE;</sync>",
	};

	for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
		SyncDoc *d = read_text(bad[i], strlen(bad[i]), &e);
		EXPECT(!d && e, "refused: %s", bad[i]);
		g_clear_error(&e);
	}
}

static void
test_libxml2_silent(void)
{
	char *err = stderr_of(malformed_cases);

	EXPECT(err[0] == '\0', "libxml2 printed nothing on stderr: %s", err);
	g_free(err);
}

static void
test_refuse_deep_nesting(void)
{
	GString *t = g_string_new(CANON_OPEN);
	gint64 t0 = g_get_monotonic_time();

	for (int i = 0; i < 100000; i++)
		g_string_append(t, "<entry id=\"x\" type=\"list\" home=\"A\" legacy=\"A/B/C\">\n");
	refused_at(__LINE__, t->str, t->len, SYNC_ERROR_SCHEMA, 3,
	    "<entry> is not allowed in <entry>");
	EXPECT(g_get_monotonic_time() - t0 < 2 * G_USEC_PER_SEC, "refused at once");
	g_string_free(t, TRUE);
	REFUSED(PO_OPEN "<list name=\"L\"><member address=\"A/B/C\">\n<member address=\"A/B/C\"/>"
	    "</member></list></sync>", SYNC_ERROR_SCHEMA, 3, "<member> is not allowed in <member>");
	REFUSED(REPL_OPEN "<vector><seen site=\"A\" usn=\"1\"><seen/></seen></vector></sync>",
	    SYNC_ERROR_SCHEMA, 2, "<seen> is not allowed in <seen>");
}

/* Line numbers past 65535 (XML_PARSE_BIG_LINES; a tree node keeps 16 bits). */
static void
test_big_line_numbers(void)
{
	GString *t = g_string_new(HEAD PO_OPEN);   /* lines 1-2 */
	gsize body;

	for (int i = 0; i < 69997; i++)             /* lines 3-69999 */
		g_string_append_printf(t, "  <mailbox name=\"M%d\"/>\n", i);
	body = t->len;
	g_string_append(t, "  <mailbox name=\"BAD NAME\"/>\n</sync>\n");
	refused_at(__LINE__, t->str, t->len, SYNC_ERROR_SCHEMA, 70000, "bad address \"BAD NAME\"");
	g_string_truncate(t, body);
	g_string_append(t, "  <mailbox name=\"m17\" />\n</sync>\n");
	refused_at(__LINE__, t->str, t->len, SYNC_ERROR_SCHEMA, 70000,
	    "the name M17 is used twice (lines 20 and 70000)");
	g_string_truncate(t, body);
	g_string_append(t, "  <mailbox name=\"X\">\n</sync>\n");
	refused_at(__LINE__, t->str, t->len, SYNC_ERROR_XML, 70001,
	    "Opening and ending tag mismatch: mailbox line 70000 and sync");
	g_string_truncate(t, body);
	g_string_append(t, "\n\n  <mailbox\n   name=\"Y\"\n   dispaly=\"typo\"/>\n</sync>\n");
	refused_at(__LINE__, t->str, t->len, SYNC_ERROR_SCHEMA, 70004,
	    "unknown attribute dispaly on <mailbox>");
	g_string_truncate(t, body);
	g_string_append(t, "</sync>\n");
	{
		SyncDoc *d = read_ok_at(__LINE__, t->str, t->len);
		EXPECT(d && d->entries->len == 69997, "69997 mailboxes");
		sync_doc_free(d);
	}
	g_string_free(t, TRUE);
}

static void
test_limits(void)
{
	char *path = tmp_path("huge.xml");
	GError *e = NULL;
	SyncDoc *d;
	GString *t;
	int fd;

	/* a sparse file one byte over the limit: refused before reading */
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	EXPECT(fd >= 0 && ftruncate(fd, (off_t)SYNC_MAX_FILE_SIZE + 1) == 0, "sparse file");
	close(fd);
	d = sync_read_file(path, &e);
	EXPECT(!d && e && e->code == SYNC_ERROR_LIMIT && strstr(e->message, "1073741825 bytes"),
	    "over 1 GiB: %s", e ? e->message : "");
	g_clear_error(&e);
	g_unlink(path);
	g_free(path);

	/* lowered limits: size, from memory and from a file; entry count */
	t = g_string_new(PO_OPEN);
	for (int i = 0; i < 4; i++)
		g_string_append_printf(t, "  <mailbox name=\"M%d\"/>\n", i);
	g_string_append(t, "</sync>\n");
	sync_set_limits_for_tests(t->len - 1, 3);
	refused_at(__LINE__, t->str, t->len - 1, SYNC_ERROR_LIMIT, 5,
	    "more than 3 entries in one file");
	d = read_text(t->str, t->len, &e);
	EXPECT(!d && e && e->code == SYNC_ERROR_LIMIT && strstr(e->message, "more than"),
	    "over the size limit: %s", e ? e->message : "");
	g_clear_error(&e);
	path = tmp_path("big.xml");
	g_file_set_contents(path, t->str, (gssize)t->len, NULL);
	d = sync_read_file(path, &e);
	EXPECT(!d && e && e->code == SYNC_ERROR_LIMIT, "file over the size limit: %s",
	    e ? e->message : "");
	g_clear_error(&e);
	g_unlink(path);
	g_free(path);
	sync_set_limits_for_tests(0, 0);
	g_string_free(t, TRUE);

	/* members, sites, text */
	t = g_string_new(PO_OPEN "<list name=\"L\">\n");
	for (guint i = 0; i <= DIR_MAX_MEMBERS; i++)
		g_string_append_printf(t, "<member address=\"A/B/M%u\"/>\n", i);
	g_string_append(t, "</list></sync>");
	refused_at(__LINE__, t->str, t->len, SYNC_ERROR_LIMIT, 3 + DIR_MAX_MEMBERS,
	    "CORP/HQ/L has more than 10000 members");
	g_string_free(t, TRUE);
	t = g_string_new(REPL_OPEN "<vector>\n");
	for (guint i = 0; i <= SYNC_MAX_SITES; i++)
		g_string_append_printf(t, "<seen site=\"S%u\" usn=\"1\"/>\n", i);
	g_string_append(t, "</vector></sync>");
	refused_at(__LINE__, t->str, t->len, SYNC_ERROR_LIMIT, 3 + SYNC_MAX_SITES,
	    "more than 1000 sites in the vector");
	g_string_free(t, TRUE);
	t = g_string_new(REPL_OPEN CHANGE("X", "") "\n<proxy>");
	for (guint i = 0; i < SYNC_MAX_TEXT; i++)
		g_string_append_c(t, ' ');
	g_string_append(t, "SMTP:a@b.c</proxy></change></sync>");
	refused_at(__LINE__, t->str, t->len, SYNC_ERROR_LIMIT, 3,
	    "the text of <proxy> is longer than 1024 bytes");
	g_string_free(t, TRUE);
}

/* Attributes per start tag: refused as soon as one too many is seen, before
 * libxml2 compares them pairwise (100,000 of them took seconds). */
static void
test_attribute_limit(void)
{
	GString *t;
	SyncDoc *d;
	char msg[96];

	/* 100,000 attributes on one element, across the parser's chunks. */
	t = g_string_new(PO_OPEN "<mailbox name=\"X\"");
	for (guint i = 0; i < 100000; i++)
		g_string_append_printf(t, " a%u=\"x\"", i);
	g_string_append(t, "/>\n</sync>\n");
	g_snprintf(msg, sizeof msg, "<mailbox> has more than %u attributes", SYNC_MAX_ATTRS);
	refused_at(__LINE__, t->str, t->len, SYNC_ERROR_LIMIT, 2, msg);
	g_string_free(t, TRUE);

	/* The line is that of the first attribute over the limit. */
	t = g_string_new(PO_OPEN "<mailbox name=\"X\"");
	for (guint i = 1; i <= SYNC_MAX_ATTRS; i++)
		g_string_append_printf(t, "\n a%u='x'", i);
	g_string_append(t, "/>\n</sync>\n");
	refused_at(__LINE__, t->str, t->len, SYNC_ERROR_LIMIT, 2 + SYNC_MAX_ATTRS, msg);
	g_string_free(t, TRUE);

	/* At the limit: the root's xmlns, version, kind, postoffice and
	 * namespace declarations, SYNC_MAX_ATTRS in all, are fine; one more is
	 * not. */
	t = g_string_new("<sync " NS " kind=\"postoffice\" postoffice=\"CORP/HQ\"");
	for (guint i = 4; i < SYNC_MAX_ATTRS; i++)
		g_string_append_printf(t, " xmlns:p%u=\"urn:x:%u\"", i, i);
	g_string_append(t, ">\n<mailbox name=\"X\"/>\n</sync>\n");
	d = read_ok_at(__LINE__, t->str, t->len);
	EXPECT(d && d->entries->len == 1, "%u attributes are accepted", SYNC_MAX_ATTRS);
	sync_doc_free(d);
	g_string_insert(t, strlen("<sync"), " xmlns:q=\"urn:q\"");
	g_snprintf(msg, sizeof msg, "<sync> has more than %u attributes", SYNC_MAX_ATTRS);
	refused_at(__LINE__, t->str, t->len, SYNC_ERROR_LIMIT, 1, msg);
	g_string_free(t, TRUE);

	/* '=' in values, comments, CDATA, the declaration and end tags is not
	 * an attribute; '>' in a value does not end the tag. */
	t = g_string_new(HEAD "<!-- ");
	for (guint i = 0; i < 100; i++)
		g_string_append(t, "<x a=1>");
	g_string_append(t, " -->\n" REPL_OPEN "<change id=\"X\" type=\"mailbox\" origin=\"A\" "
	    "usn=\"1\" version=\"1\" changed=\"0\" home=\"A\" legacy=\"CORP/HQ/X\" display=\"");
	for (guint i = 0; i < 30; i++)
		g_string_append(t, "a>b='c'=");
	g_string_append(t, "\">\n<proxy><![CDATA[SMTP:");
	for (guint i = 0; i < 30; i++)
		g_string_append(t, "a=");
	g_string_append(t, "b@c.d]]></proxy></change  >\n</sync>\n");
	d = read_ok_at(__LINE__, t->str, t->len);
	EXPECT(d && d->entries->len == 1, "quoted, commented and CDATA '=' are not counted");
	sync_doc_free(d);
	g_string_free(t, TRUE);
}

static void
test_encodings(void)
{
	SyncDoc *d;

	d = READ_OK("\xef\xbb\xbf" HEAD CANON_OPEN "</sync>");
	EXPECT(d != NULL, "a UTF-8 byte order mark is fine");
	sync_doc_free(d);
	d = READ_OK("<?xml version=\"1.0\" encoding='utf-8' ?>\n" CANON_OPEN "</sync>");
	EXPECT(d != NULL, "encoding='utf-8' is fine");
	sync_doc_free(d);
	REFUSED("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n" CANON_OPEN "</sync>",
	    SYNC_ERROR_SCHEMA, 1, "the file declares the encoding \"ISO-8859-1\"");
	REFUSED("<?xml version='1.0' encoding = 'UTF-16'?>\n" CANON_OPEN "</sync>",
	    SYNC_ERROR_SCHEMA, 1, "a sync file is UTF-8");
	{
		static const char u16[] = "\xff\xfe<\0s\0y\0n\0c\0/\0>\0";
		refused_at(__LINE__, u16, sizeof u16 - 1, SYNC_ERROR_SCHEMA, 1,
		    "the file is not UTF-8");
	}
}

/* ---- entry by entry ------------------------------------------------------------ */

typedef struct {
	int headers;
	GPtrArray *seen;    /* "LINE:legacy" */
	int fail_at;        /* refuse the entry with this number (from 1), 0: none */
	SyncKind kind;
	guint vector_size;
} Sink;

static gboolean
sink_header(const SyncDoc *doc, gpointer data, GError **error)
{
	Sink *s = data;

	s->headers++;
	s->kind = doc->kind;
	s->vector_size = g_hash_table_size(doc->vector);
	EXPECT(doc->entries->len == 0, "the header has no entries");
	return TRUE;
}

static gboolean
sink_entry(DirEntry *e, guint line, gpointer data, GError **error)
{
	Sink *s = data;

	g_ptr_array_add(s->seen, g_strdup_printf("%u:%s", line, e->legacy));
	dir_entry_free(e);
	if ((int)s->seen->len == s->fail_at) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_NOSPC, "store full at line %u", line);
		return FALSE;
	}
	return TRUE;
}

static void
test_read_each(void)
{
	const SyncSink sink = { sink_header, sink_entry };
	Sink s = { 0 };
	GError *e = NULL;
	char *path = tmp_path("each.xml");
	gboolean ok;

	s.seen = g_ptr_array_new_with_free_func(g_free);
	ok = sync_read_memory_each("t.xml", repl_text, strlen(repl_text), &sink, &s, &e);
	EXPECT(ok && s.headers == 1 && s.kind == SYNC_REPLICATION && s.vector_size == 3,
	    "header once, with the vector (%s)", e ? e->message : "");
	EXPECT(s.seen->len == 4 && strcmp(s.seen->pdata[0], "8:CORP/B/USER2") == 0 &&
	    strcmp(s.seen->pdata[3], "20:CORP/B/GONE") == 0, "entries in order with their lines");
	g_clear_error(&e);

	/* an importer's refusal ends the read with its own error */
	g_ptr_array_set_size(s.seen, 0);
	s.fail_at = 2;
	g_file_set_contents(path, repl_text, -1, NULL);
	ok = sync_read_file_each(path, &sink, &s, &e);
	EXPECT(!ok && e && e->domain == G_FILE_ERROR && strcmp(e->message, "store full at line 12")
	    == 0 && s.seen->len == 2, "the sink's error is returned as it is");
	g_clear_error(&e);

	/* a bad entry after good ones: FALSE, the caller drops what it got */
	g_ptr_array_set_size(s.seen, 0);
	s.fail_at = 0;
	s.headers = 0;
	{
		static const char bad[] = PO_OPEN "<mailbox name=\"A\"/>\n<mailbox name=\"!\"/></sync>";
		ok = sync_read_memory_each("t.xml", bad, sizeof bad - 1, &sink, &s, &e);
	}
	EXPECT(!ok && e && e->code == SYNC_ERROR_SCHEMA && s.seen->len == 1 && s.headers == 1,
	    "refused after one entry (%s)", e ? e->message : "");
	g_clear_error(&e);

	/* no entries: the header still comes */
	s.headers = 0;
	ok = sync_read_memory_each("t.xml", GAL_OPEN "</sync>", strlen(GAL_OPEN "</sync>"),
	    &sink, &s, &e);
	EXPECT(ok && s.headers == 1 && s.kind == SYNC_GAL, "header of an empty file");
	g_clear_error(&e);
	g_unlink(path);
	g_free(path);
	g_ptr_array_unref(s.seen);
}

/* ---- docs/sync.xsd -------------------------------------------------------------- */

static void
test_xsd_rejects_schema_errors(void)
{
	XSD_OK(HEAD PO_OPEN "</sync>");
	XSD_OK(REPL_OPEN "</sync>");
	XSD_BAD("<sync version=\"1\" kind=\"canonical\"/>");
	XSD_BAD("<sync xmlns=\"urn:postgate:sync:2\" version=\"1\" kind=\"canonical\"/>");
	XSD_BAD("<sync " NS " kind=\"everything\"/>");
	XSD_BAD("<sync xmlns=\"urn:postgate:sync:1\" version=\"2\" kind=\"canonical\"/>");
	XSD_BAD(PO_OPEN "<user name=\"A\"/></sync>");
	XSD_BAD(PO_OPEN "<mailbox name=\"A\" email=\"x\"/></sync>");
	XSD_BAD(PO_OPEN "<mailbox display=\"A\"/></sync>");
	XSD_BAD(PO_OPEN "<mailbox name=\"J.SMITH\"/></sync>");
	XSD_BAD(PO_OPEN "<custom name=\"C\" target=\"nobody\"/></sync>");
	XSD_BAD(PO_OPEN "<list name=\"L\"><member address=\"CORP/HQ\"/></list></sync>");
	XSD_BAD(PO_OPEN "<mailbox name=\"A\" display=\"a&#9;b\"/></sync>");
	XSD_BAD(GAL_OPEN "<entry type=\"user\" address=\"A/B/C\"/></sync>");
	XSD_BAD(GAL_OPEN "<entry type=\"mailbox\" address=\"A/B/C\" smtp=\"a@-b.c\"/></sync>");
	XSD_BAD(REPL_OPEN CHANGE("X", "") "<proxy>Smtp:a@b.c</proxy></change></sync>");
	XSD_BAD(REPL_OPEN CHANGE("X", "") "<proxy>SMTP:a@b.c</proxy><bogus/></change></sync>");
	XSD_BAD(REPL_OPEN CHANGE("X", "") "<proxy>SMTP:a@b.c</proxy></change><vector/></sync>");
	XSD_BAD(REPL_OPEN "<change id=\"x\" type=\"mailbox\" origin=\"A\" usn=\"0\" version=\"1\" "
	    "changed=\"1\" home=\"A\" legacy=\"A/B/C\"/></sync>");
	XSD_BAD(REPL_OPEN "<change id=\"a b\" type=\"mailbox\" origin=\"A\" usn=\"1\" version=\"1\" "
	    "changed=\"1\" home=\"A\" legacy=\"A/B/C\"/></sync>");
	XSD_BAD(REPL_OPEN "<change id=\"x\" type=\"mailbox\" origin=\"A\" usn=\"1\" version=\"1\" "
	    "home=\"A\" legacy=\"A/B/C\"/></sync>");
	XSD_BAD(REPL_OPEN "<change id=\"x\" type=\"mailbox\" origin=\"A\" usn=\"1\" version=\"1\" "
	    "changed=\"1\" home=\"A\" legacy=\"A/B/C\" deleted=\"yes\"/></sync>");
	XSD_BAD(CANON_OPEN "<entry id=\"x\" type=\"list\" home=\"A\" legacy=\"A/B/C\">"
	    "<member>A/B/D</member><proxy>SMTP:a@b.c</proxy></entry></sync>");
	XSD_BAD(CANON_OPEN "<entry id=\"x\" type=\"list\" home=\"A\" legacy=\"A/B/C\">"
	    "<member>SMTP:a@b.c</member></entry></sync>");
}

int
main(void)
{
	static const CuTest tests[] = {
		{ "round trip: postoffice export", test_round_trip_postoffice },
		{ "round trip: global address list", test_round_trip_gal },
		{ "round trip: replication", test_round_trip_replication },
		{ "round trip: canonical, sorted", test_round_trip_canonical },
		{ "reading normalises case, order, prefixes", test_read_normalises },
		{ "writing is deterministic", test_write_deterministic },
		{ "writing refuses what reading would", test_write_refuses },
		{ "writing to a file and to stdout", test_write_file },
		{ "I/O errors name the file", test_io_errors },
		{ "malformed XML: refused with its line", test_refuse_malformed },
		{ "namespace, root, version, kind", test_refuse_namespace_and_root },
		{ "unknown or misplaced elements and attributes", test_refuse_unknown },
		{ "missing required attributes", test_refuse_missing_attribute },
		{ "addresses breaking SPEC 1", test_refuse_bad_address },
		{ "exactly one SMTP: proxy on a live entry", test_refuse_proxies },
		{ "duplicates name both lines", test_refuse_duplicates },
		{ "display names: 255 bytes, no control characters", test_refuse_display },
		{ "ids, sites, numbers, booleans", test_refuse_ids_sites_numbers },
		{ "DOCTYPE, billion laughs, XXE, external DTD", test_refuse_doctype_and_entities },
		{ "libxml2 never prints", test_libxml2_silent },
		{ "deep nesting refused at once", test_refuse_deep_nesting },
		{ "line numbers past 65535", test_big_line_numbers },
		{ "limits: size, entries, members, sites, text", test_limits },
		{ "limits: attributes per start tag, refused fast", test_attribute_limit },
		{ "UTF-8 only", test_encodings },
		{ "entry by entry: sink order, lines, errors", test_read_each },
		{ "docs/sync.xsd rejects schema errors", test_xsd_rejects_schema_errors },
		{ NULL, NULL },
	};
	int rc = cu_run("sync_xml", tests);

	remove_tmp();
	return rc;
}
