/* bench_dir_route.c - N routing decisions through the directory library.
 *
 * Usage: bench_dir_route DB N COUNT
 * Routes N addresses u<i % COUNT>@peer.example against DB as site BENCH
 * (domains bench.example; site link PEER owns peer.example) and prints
 * seconds=... decisions=... per_second=...  Part of tests/bench/dir-import.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "dir_route.h"
#include "dir_store.h"

int
main(int argc, char **argv)
{
	static const char *const domains[] = { "bench.example", NULL };
	static const char *const peer_domains[] = { "peer.example", NULL };
	static const char *const templates[] = { "SMTP:%m@bench.example", NULL };
	static const char *const pos[] = { "CORP/BENCH", "CORP/GW", NULL };
	DirPeer peer = { "PEER", peer_domains };
	DirContext ctx = { "BENCH", domains, templates, pos, &peer, 1, 180 * 86400, NULL };
	struct timespec t0, t1;
	GError *e = NULL;
	DirStore *d;
	long n, count, ok = 0;
	char addr[64];
	double secs;

	if (argc != 4)
		return 64;
	n = atol(argv[2]);
	count = atol(argv[3]);
	d = dir_open(argv[1], &e);
	if (!d) {
		fprintf(stderr, "%s\n", e->message);
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* One read snapshot for the batch, as the batch run will use it. */
	if (!dir_read_begin(d, &e)) {
		fprintf(stderr, "%s\n", e->message);
		return 1;
	}
	for (long i = 0; i < n; i++) {
		DirRoute *r;
		g_snprintf(addr, sizeof addr, "u%07ld@peer.example", (i * 7919) % count);
		r = dir_route(d, &ctx, addr, NULL);
		if (r && r->kind == DIR_ROUTE_SITE_LINK)
			ok++;
		dir_route_free(r);
	}
	dir_read_end(d);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("seconds=%.3f\ndecisions=%ld\nsite_link=%ld\nper_second=%.0f\n", secs, n, ok,
	    n / secs);
	dir_close(d);
	return ok == n ? 0 : 1;
}
