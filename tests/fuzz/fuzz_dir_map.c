/* fuzz_dir_map.c - libFuzzer target for the proxy map reader and writer (directory/dir_map.c).
 *
 * Input that starts with the map's magic "PGDIRMAP" is a map file: it goes,
 * by length (libFuzzer's buffer is exactly size bytes), to dir_map_parse;
 * when the header is accepted, dir_map_check walks every slot and record
 * and keys are looked up: fixed ones and every line of the input.  Beside
 * "no crash, no leak, no over-read" it checks that a found brief is one a
 * DirBrief can hold (a known type, strings terminated within their fields).
 * Any other input is a list of keys, one a line: they are written as a map
 * (a temporary file), which must then be accepted, check whole, and find
 * every key with the first record given for it, and nothing else; keys
 * that differ only in ASCII case are one key (dir_map.h).
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <glib/gstdio.h>

#include "dir_map.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_LINES 256

static char *tmpdir, *path;

static void
cleanup(void)
{
	char *tmp = g_strconcat(path, ".tmp", NULL);

	g_unlink(path);
	g_unlink(tmp);
	g_rmdir(tmpdir);
	g_free(tmp);
}

static void
brief_sane(const DirBrief *b)
{
	if ((guint)b->type > DIR_LIST ||
	    !memchr(b->legacy, '\0', sizeof b->legacy) ||
	    !memchr(b->home_site, '\0', sizeof b->home_site) ||
	    !memchr(b->target, '\0', sizeof b->target) ||
	    !memchr(b->proxies, '\0', sizeof b->proxies) ||
	    (!b->proxies_known && b->proxies[0] != '\0'))
		abort();
}

static void
lookup(const DirMap *m, const char *key, gsize len)
{
	DirBrief b;

	memset(&b, 0x5a, sizeof b);
	switch (dir_map_lookup(m, key, len, &b)) {
	case DIR_MAP_FOUND:
		brief_sane(&b);
		break;
	case DIR_MAP_NONE:
	case DIR_MAP_CORRUPT:
		break;
	default:
		abort();
	}
}

static void
read_map(const uint8_t *data, size_t size)
{
	static const char *const keys[] = { "", "a@x.example", "jsmith@company.com" };
	GError *e = NULL;
	DirMap *m = dir_map_parse(data, size, &e);
	const char *p = (const char *)data, *end = p + size;

	if (!m) {
		if (!e || e->domain != DIR_MAP_ERROR || e->code != DIR_MAP_ERROR_CORRUPT)
			abort();
		g_error_free(e);
		return;
	}
	if (!dir_map_check(m, &e)) {
		if (!e || e->code != DIR_MAP_ERROR_CORRUPT)
			abort();
		g_clear_error(&e);
	}
	for (guint i = 0; i < G_N_ELEMENTS(keys); i++)
		lookup(m, keys[i], strlen(keys[i]));
	for (int n = 0; p < end && n < MAX_LINES; n++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *stop = nl ? nl : end;

		lookup(m, p, (gsize)(stop - p));
		p = stop + 1;
	}
	dir_map_close(m);
}

static void
build_map(const uint8_t *data, size_t size)
{
	GPtrArray *lines = g_ptr_array_new_with_free_func(g_free);
	const char *p = (const char *)data, *end = p + size;
	/* folded key -> 1 + the line of its first record */
	GHashTable *first = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	DirMapWriter *w;
	GError *e = NULL;
	DirMap *m;
	char *bytes = NULL, *folded;
	gsize len = 0;

	while (p < end && lines->len < MAX_LINES) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *stop = nl ? nl : end;

		/* cut at a NUL, and short of the string limit */
		g_ptr_array_add(lines, g_strndup(p, MIN((gsize)(stop - p), 1000)));
		p = stop + 1;
	}
	w = dir_map_writer_begin(path, 0600, &e);
	if (!w)
		abort();
	for (guint i = 0; i < lines->len; i++) {
		const char *k = lines->pdata[i];
		DirMapRow row = { k, (gint64)i, (int)(i % 3), k, "SITE", i % 3 == 1 ? k : NULL,
		    i % 2 ? k : NULL };

		if (!dir_map_writer_add(w, &row, &e))
			abort();
		if (!g_hash_table_contains(first, folded = g_ascii_strdown(k, -1)))
			g_hash_table_insert(first, folded, GUINT_TO_POINTER(i + 1));
		else
			g_free(folded);
	}
	if (!dir_map_writer_commit(w, size, "fuzz", &e))
		abort();
	if (!g_file_get_contents(path, &bytes, &len, NULL))
		abort();
	m = dir_map_parse(bytes, len, &e);
	if (!m || !dir_map_check(m, &e) || dir_map_generation(m) != size ||
	    strcmp(dir_map_incarnation(m), "fuzz") != 0 || dir_map_keys(m) != lines->len)
		abort();
	for (guint i = 0; i < lines->len; i++) {
		const char *k = lines->pdata[i];
		char *upper = g_ascii_strup(k, -1);
		const char *k0;
		guint at;
		DirBrief b;

		folded = g_ascii_strdown(k, -1);
		at = GPOINTER_TO_UINT(g_hash_table_lookup(first, folded)) - 1;
		/* the key in another case finds the same record */
		if (dir_map_lookup(m, upper, strlen(upper), &b) != DIR_MAP_FOUND ||
		    b.rid != (gint64)at)
			abort();
		g_free(upper);

		if (dir_map_lookup(m, k, strlen(k), &b) != DIR_MAP_FOUND)
			abort();
		brief_sane(&b);
		/* the first record's own strings: its key may be in another case */
		k0 = lines->pdata[at];
		if (b.rid != (gint64)at || (guint)b.type != at % 3 ||
		    strncmp(b.legacy, k0, sizeof b.legacy - 1) != 0 ||
		    strcmp(b.home_site, "SITE") != 0 ||
		    (at % 3 == 1 && strncmp(b.target, k0, sizeof b.target - 1) != 0) ||
		    (at % 3 != 1 && b.target[0] != '\0') ||
		    b.proxies_known != (at % 2 == 1 && strlen(k0) < sizeof b.proxies))
			abort();
		/* one byte more or less is another key, unless the input holds it */
		{
			char *longer = g_strconcat(folded, "\x01", NULL);
			DirBrief x;

			if (!g_hash_table_contains(first, longer) &&
			    dir_map_lookup(m, longer, strlen(longer), &x) != DIR_MAP_NONE)
				abort();
			g_free(longer);
		}
		g_free(folded);
	}
	dir_map_close(m);
	g_free(bytes);
	g_hash_table_unref(first);
	g_ptr_array_unref(lines);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!tmpdir) {
		tmpdir = g_dir_make_tmp("fuzz_dir_map-XXXXXX", NULL);
		if (!tmpdir)
			abort();
		path = g_build_filename(tmpdir, "fuzz.map", NULL);
		atexit(cleanup);
	}
	if (size >= 8 && memcmp(data, "PGDIRMAP", 8) == 0)
		read_map(data, size);
	else
		build_map(data, size);
	return 0;
}
