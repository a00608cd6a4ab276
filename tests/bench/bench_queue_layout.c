/* bench_queue_layout.c - what making a batch of message bodies durable costs,
 * for the three queue layouts docs/queue.md weighs.
 *
 * Usage: bench_queue_layout DIR BATCH ROUNDS [SIZE]
 * For each layout, ROUNDS times: BATCH bodies of SIZE bytes (4096) and
 * their rows made durable, then one line: layout, ms per batch, messages/s.
 *   files:   each body its own file (write, fdatasync), one fsync of the
 *            directory, one SQLite commit of the rows (WAL, synchronous=FULL)
 *   segment: bodies appended to one segment file, one fdatasync, one commit
 *   inline:  bodies inside the rows, one commit (one WAL fsync)
 * Part of tests/bench/queue-layout; a benchmark, not a test.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>
#include <sqlite3.h>

static double
now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void
check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "bench_queue_layout: %s: %s\n", what, g_strerror(errno));
		exit(1);
	}
}

static sqlite3 *
db_open(const char *dir, const char *name)
{
	char *path = g_build_filename(dir, name, NULL);
	sqlite3 *db;

	check(sqlite3_open(path, &db) == SQLITE_OK, "sqlite3_open");
	check(sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
	    "CREATE TABLE m(qid INTEGER PRIMARY KEY, size INTEGER, seg_off INTEGER, data BLOB)",
	    NULL, NULL, NULL) == SQLITE_OK, "schema");
	g_free(path);
	return db;
}

int
main(int argc, char **argv)
{
	static const char *const layouts[] = { "files", "segment", "inline" };
	int batch, rounds;
	size_t size;
	char *body;

	if (argc < 4)
		return 64;
	batch = atoi(argv[2]);
	rounds = atoi(argv[3]);
	size = argc > 4 ? (size_t)atol(argv[4]) : 4096;
	body = g_malloc(size);
	memset(body, 'x', size);
	for (int l = 0; l < 3; l++) {
		char *sub = g_strdup_printf("%s/%s", argv[1], layouts[l]);
		sqlite3 *db;
		sqlite3_stmt *st;
		int dfd, seg = -1;
		off_t seg_end = 0;
		long qid = 0;
		double t0, secs;

		check(g_mkdir_with_parents(sub, 0755) == 0, "mkdir");
		dfd = open(sub, O_RDONLY | O_DIRECTORY);
		check(dfd >= 0, "open dir");
		db = db_open(sub, "queue.db");
		if (l == 1) {
			char *p = g_build_filename(sub, "segment", NULL);

			seg = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
			check(seg >= 0, "open segment");
			check(fsync(dfd) == 0, "fsync dir");
			g_free(p);
		}
		sqlite3_prepare_v2(db, "INSERT INTO m VALUES(?,?,?,?)", -1, &st, NULL);
		t0 = now();
		for (int r = 0; r < rounds; r++) {
			long first = qid;

			for (int i = 0; i < batch; i++, qid++) {
				if (l == 0) {
					char name[32];
					int fd;

					g_snprintf(name, sizeof name, "%ld", qid);
					fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL, 0644);
					check(fd >= 0 && write(fd, body, size) == (ssize_t)size &&
					    fdatasync(fd) == 0, "file body");
					close(fd);
				} else if (l == 1) {
					check(pwrite(seg, body, size, seg_end) == (ssize_t)size,
					    "segment write");
					seg_end += (off_t)size;
				}
			}
			if (l == 0)
				check(fsync(dfd) == 0, "fsync dir");
			if (l == 1)
				check(fdatasync(seg) == 0, "fdatasync segment");
			sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
			for (long q = first; q < qid; q++) {
				sqlite3_reset(st);
				sqlite3_bind_int64(st, 1, q);
				sqlite3_bind_int64(st, 2, (sqlite3_int64)size);
				sqlite3_bind_int64(st, 3, (sqlite3_int64)(q * (long)size));
				if (l == 2)
					sqlite3_bind_blob(st, 4, body, (int)size, SQLITE_STATIC);
				else
					sqlite3_bind_null(st, 4);
				check(sqlite3_step(st) == SQLITE_DONE, "insert");
			}
			check(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK, "commit");
		}
		secs = now() - t0;
		printf("layout=%s batch=%d ms_per_batch=%.3f msg_per_s=%.0f\n", layouts[l], batch,
		    secs * 1000 / rounds, (double)qid / secs);
		sqlite3_finalize(st);
		sqlite3_close(db);
		if (seg >= 0)
			close(seg);
		close(dfd);
		g_free(sub);
	}
	g_free(body);
	return 0;
}
