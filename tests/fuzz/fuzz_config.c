/* fuzz_config.c - libFuzzer target for the postgate.conf reader.
 *
 * Feeds the bytes to config_parse (never the file-system checks: the input
 * must not make the target open files) and frees everything.  On a file the
 * reader accepts it also checks what check-config relies on: the printed
 * non-default settings parse again and print the same.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/pg_config.h"

static char *
print_settings(const PgConfig *cfg)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (f == NULL)
		abort();
	if (!config_print_nondefault(cfg, f))
		abort();
	fclose(f);
	return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	GError *error = NULL;
	PgConfig *cfg, *again;
	char *out, *out2;

	cfg = config_parse("fuzz", (const char *)data, size, 0, &error);
	if (cfg == NULL) {
		/* Every refusal says where. */
		if (error == NULL || strncmp(error->message, "fuzz:", 5) != 0)
			abort();
		g_error_free(error);
		return 0;
	}
	out = print_settings(cfg);
	again = config_parse("fuzz", out, strlen(out), 0, &error);
	if (again == NULL) {
		fprintf(stderr, "printed settings refused:\n%s\n%s\n", out,
		    error->message);
		abort();
	}
	out2 = print_settings(again);
	if (strcmp(out, out2) != 0) {
		fprintf(stderr, "printed settings differ:\n%s\n---\n%s\n", out, out2);
		abort();
	}
	free(out);
	free(out2);
	config_free(again);
	config_free(cfg);
	return 0;
}
