/* test_atomic_write.c - the bounded whole-file read and the durable set-aside. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_write.h"
#include "cu_run.h"

static char *tmpdir;

static char *
scratch(const char *name, const char *text, size_t len)
{
	char *path = g_build_filename(tmpdir, name, NULL);

	if (text)
		g_assert(g_file_set_contents(path, text, (gssize)len, NULL));
	return path;
}

static void
test_read_whole_file(void)
{
	AtomicReadInfo info;
	size_t len = 99;
	char *path = scratch("plain", "abc\0def", 7);
	guint8 *data = atomic_read_file(path, 0, 7, &len, &info);

	EXPECT(data != NULL && info.status == ATOMIC_READ_OK, "a 7-byte file with max 7 reads");
	EXPECT(len == 7 && data && memcmp(data, "abc\0def", 7) == 0 && data[7] == '\0',
	    "all 7 bytes, a NUL after them, the NUL inside kept (len %zu)", len);
	EXPECT(info.size == 7, "info.size is what fstat saw (%lld)", (long long)info.size);
	g_free(data);
	g_free(path);

	path = scratch("empty", "", 0);
	data = atomic_read_file(path, 0, 10, &len, &info);
	EXPECT(data != NULL && len == 0 && data[0] == '\0', "an empty file is 0 bytes, not an error");
	g_free(data);
	g_free(path);
}

static void
test_read_refusals(void)
{
	AtomicReadInfo info;
	size_t len = 0;
	char *path = scratch("big", "0123456789", 10);
	char *fifo = scratch("fifo", NULL, 0);
	char *link = scratch("link", NULL, 0);
	char *missing = scratch("missing", NULL, 0);
	guint8 *data;

	data = atomic_read_file(path, 0, 9, &len, &info);
	EXPECT(data == NULL && info.status == ATOMIC_READ_TOO_BIG && info.size == 10,
	    "10 bytes with max 9: TOO_BIG, size 10 (status %d)", info.status);

	EXPECT(mkfifo(fifo, 0600) == 0, "mkfifo");
	data = atomic_read_file(fifo, 0, 100, &len, &info);
	EXPECT(data == NULL && info.status == ATOMIC_READ_NOT_REGULAR && S_ISFIFO(info.mode),
	    "a FIFO with no writer: NOT_REGULAR at once, mode a FIFO (status %d)", info.status);

	data = atomic_read_file(tmpdir, 0, 100, &len, &info);
	EXPECT(data == NULL && info.status == ATOMIC_READ_NOT_REGULAR && S_ISDIR(info.mode),
	    "a directory: NOT_REGULAR, mode a directory");

	data = atomic_read_file(missing, 0, 100, &len, &info);
	EXPECT(data == NULL && info.status == ATOMIC_READ_OPEN && info.err == ENOENT,
	    "a missing file: OPEN with ENOENT (%d, %d)", info.status, info.err);

	EXPECT(symlink(path, link) == 0, "symlink");
	data = atomic_read_file(link, O_NOFOLLOW, 100, &len, &info);
	EXPECT(data == NULL && info.status == ATOMIC_READ_OPEN && info.err == ELOOP,
	    "a symlink with O_NOFOLLOW: OPEN with ELOOP (%d, %d)", info.status, info.err);
	data = atomic_read_file(link, 0, 100, &len, &info);
	EXPECT(data != NULL && len == 10, "the same symlink without O_NOFOLLOW is followed");
	g_free(data);
	g_free(path);
	g_free(fifo);
	g_free(link);
	g_free(missing);
}

static void
test_set_aside(void)
{
	char *dir = scratch("out", NULL, 0), *bad = g_build_filename(tmpdir, "bad", NULL);
	char *file, *to = NULL, *why = NULL, *text = NULL;
	GError *e = NULL;

	g_assert(mkdir(dir, 0700) == 0);
	for (int i = 0; i < 2; i++) {
		file = g_build_filename(dir, "x.bundle", NULL);
		g_assert(g_file_set_contents(file, i ? "second" : "first", -1, NULL));
		EXPECT(atomic_set_aside(dir, "x.bundle", bad, "bad MAC", &to, &e),
		    "set aside #%d: %s", i, e ? e->message : "");
		EXPECT(!g_file_test(file, G_FILE_TEST_EXISTS), "#%d: gone from out/", i);
		EXPECT(to && g_str_has_suffix(to, i ? "/bad/x.bundle.1" : "/bad/x.bundle"),
		    "#%d: in bad/ as %s, beside the earlier one", i, to ? to : "(null)");
		EXPECT(to && g_file_get_contents(to, &text, NULL, NULL) &&
		    strcmp(text, i ? "second" : "first") == 0, "#%d: its bytes unchanged", i);
		why = g_strconcat(to ? to : "", ".why", NULL);
		g_free(text);
		text = NULL;
		EXPECT(g_file_get_contents(why, &text, NULL, NULL) && strstr(text, "bad MAC"),
		    "#%d: %s names the reason", i, why);
		g_clear_pointer(&text, g_free);
		g_clear_pointer(&why, g_free);
		g_clear_pointer(&to, g_free);
		g_free(file);
	}
	g_free(dir);
	g_free(bad);
}

int
main(void)
{
	static const CuTest tests[] = {
		{ "atomic_read_file reads a whole file", test_read_whole_file },
		{ "atomic_read_file refuses what it must", test_read_refusals },
		{ "atomic_set_aside keeps each file and its reason", test_set_aside },
		{ NULL, NULL },
	};

	return cu_run_in_tmpdir("atomic_write", tests, &tmpdir);
}
