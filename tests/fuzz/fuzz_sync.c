/* fuzz_sync.c - libFuzzer target for the sync file reader (directory/sync_read.c).
 *
 * Feeds the bytes, by length and without a terminator, to sync_read_memory.
 * Beside "no crash, no leak, no over-read" (libFuzzer's buffer is exactly
 * size bytes) it checks what the importer relies on (docs/sync-format.md):
 *  - an error is set exactly when the reader refuses, in SYNC_ERROR, with a
 *    known code and a message "fuzz.xml:LINE: ..." (or "fuzz.xml: ..." for
 *    a limit checked before reading);
 *  - the entry-by-entry reader agrees: same verdict, same entries in order;
 *  - what the reader accepts, the writer writes; the reader accepts that
 *    again and gets an equal document; writing it again gives the same bytes.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sync_xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_error(const GError *e, const char *name)
{
	size_t n = strlen(name);

	if (!e || e->domain != SYNC_ERROR || e->code < SYNC_ERROR_IO ||
	    e->code > SYNC_ERROR_FORBIDDEN || strncmp(e->message, name, n) != 0 ||
	    e->message[n] != ':' || !g_utf8_validate(e->message, -1, NULL))
		abort();
}

typedef struct {
	const SyncDoc *doc;
	guint next;
	gboolean header;
} Each;

static gboolean
each_header(const SyncDoc *doc, gpointer data, GError **error)
{
	Each *x = data;

	if (x->header || doc->entries->len != 0)
		abort();
	x->header = TRUE;
	return TRUE;
}

static gboolean
each_entry(DirEntry *e, guint line, gpointer data, GError **error)
{
	Each *x = data;

	if (!x->header || line == 0)
		abort();
	/* when the whole read succeeds, entries come as sync_read_memory's */
	if (x->doc && (x->next >= x->doc->entries->len ||
	    !sync_entry_equal(e, x->doc->entries->pdata[x->next])))
		abort();
	x->next++;
	dir_entry_free(e);
	return TRUE;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const SyncSink sink = { each_header, each_entry };
	const char *text = (const char *)data;
	GError *e = NULL;
	SyncDoc *doc, *again;
	GString *out, *out2;
	Each x = { 0 };
	gboolean ok;

	doc = sync_read_memory("fuzz.xml", text, size, &e);
	if ((doc == NULL) == (e == NULL))
		abort();
	if (e)
		check_error(e, "fuzz.xml");
	g_clear_error(&e);

	x.doc = doc;
	ok = sync_read_memory_each("fuzz.xml", text, size, &sink, &x, &e);
	if (ok != (doc != NULL) || ok == (e != NULL) || (ok && (!x.header ||
	    x.next != doc->entries->len)))
		abort();
	g_clear_error(&e);
	if (!doc)
		return 0;

	out = g_string_new(NULL);
	if (!sync_write(doc, out, &e))
		abort();
	again = sync_read_memory("again.xml", out->str, out->len, &e);
	if (!again || !sync_doc_equal(doc, again))
		abort();
	out2 = g_string_new(NULL);
	if (!sync_write(again, out2, &e) || !g_string_equal(out, out2))
		abort();
	g_string_free(out2, TRUE);
	g_string_free(out, TRUE);
	sync_doc_free(again);
	sync_doc_free(doc);
	return 0;
}
