/* dir_cmd.h - `postgate dir`: import, export, lookup, route, list, stats.
 *
 * Owns: the command line of `postgate dir` and what it prints
 * (docs/postgate.8, DIRECTORY).  The work is the directory's (directory/).
 */
#ifndef PG_DIR_CMD_H
#define PG_DIR_CMD_H

/* dir_cmd_main - run `postgate dir ARGS`; returns a sysexits code */
int dir_cmd_main(const char *config_file, int argc, char **argv);

#endif
