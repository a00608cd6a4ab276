/* fault.c - die after the K-th durable step when asked to (see fault.h). */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fault.h"

void
fault_step(const char *what)
{
	static long limit = -1, count;
	const char *env;

	if (limit == -1) {
		env = getenv("POSTGATE_FAULT_AFTER");
		limit = env && *env ? strtol(env, NULL, 10) : 0;
	}
	if (limit <= 0)
		return;
	if (++count == limit) {
		fprintf(stderr, "fault injection: killed after durable step %ld (%s)\n",
		    count, what);
		fflush(stderr);
		kill(getpid(), SIGKILL);
		_exit(137);
	}
}
