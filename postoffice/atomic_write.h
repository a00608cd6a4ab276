/* atomic_write.h - the one way postgate writes a file that must survive a crash.
 *
 * Owns: write to DIR/.NAME.tmp, fsync, rename to DIR/NAME, fsync DIR.  A
 * reader that skips dot-files never sees a partial file; its counterpart, a
 * read that never goes past a bound; and setting a refused file aside in a
 * bad/ directory beside the reason, durably.  Never: choose names.
 */
#ifndef PG_ATOMIC_WRITE_H
#define PG_ATOMIC_WRITE_H

#include <stddef.h>
#include <glib.h>

/* atomic_write_file - durably create dir/name holding len bytes of data */
gboolean atomic_write_file(const char *dir, const char *name, const void *data,
    size_t len, int mode, GError **error);
/* atomic_read_upto - read from fd until EOF or cap bytes; -1 and errno on error */
gssize atomic_read_upto(int fd, void *buf, size_t cap);
/* atomic_fsync_dir - fsync a directory so that a rename or unlink in it is durable */
gboolean atomic_fsync_dir(const char *dir, GError **error);
/* atomic_set_aside - move dir/name into bad (made when missing) as NAME, or
 * NAME.1, NAME.2 ... beside an earlier one (names cut to 200 bytes), after
 * writing NAME.why there: why, and the name it had when cut; both
 * directories fsynced, then fault_step("move to bad").  *to (if not NULL):
 * where it went.  On failure the file stays where it was. */
gboolean atomic_set_aside(const char *dir, const char *name, const char *bad, const char *why,
    char **to, GError **error);

#endif
