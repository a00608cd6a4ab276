/* dir_cmd.h - `postgate dir`: import, export, lookup, route, list, stats.
 *
 * Owns: the command line of `postgate dir` and what it prints
 * (docs/postgate.8, DIRECTORY).  The work is the directory's (directory/).
 */
#ifndef PG_DIR_CMD_H
#define PG_DIR_CMD_H

#include <stddef.h>
#include <glib.h>

#include "dir_store.h"
#include "site.h"

/* dir_cmd_import_memory - import one sync document of len bytes, named name
 * in messages; with only_po, only that postoffice's own export is taken */
gboolean dir_cmd_import_memory(Site *site, const char *name, const char *buf, size_t len,
    const char *only_po, DirImportStats *stats, GError **error);
/* dir_cmd_main - run `postgate dir ARGS`; returns a sysexits code */
int dir_cmd_main(const char *config_file, int argc, char **argv);

#endif
