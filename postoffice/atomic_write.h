/* atomic_write.h - the one way postgate writes a file that must survive a crash.
 *
 * Owns: write to DIR/.NAME.tmp, fsync, rename to DIR/NAME, fsync DIR.  A
 * reader that skips dot-files never sees a partial file; and its counterpart,
 * a read that never goes past a bound.  Never: choose names.
 */
#ifndef PG_ATOMIC_WRITE_H
#define PG_ATOMIC_WRITE_H

#include <stddef.h>
#include <glib.h>

/* atomic_write_file - durably create dir/name holding len bytes of data */
gboolean atomic_write_file(const char *dir, const char *name, const void *data,
    size_t len, int mode, GError **error);
/* read_upto - read from fd until EOF or cap bytes; -1 and errno on error */
gssize read_upto(int fd, void *buf, size_t cap);
/* fsync_dir - fsync a directory so that a rename or unlink in it is durable */
gboolean fsync_dir(const char *dir, GError **error);

#endif
