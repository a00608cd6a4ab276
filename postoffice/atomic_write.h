/* atomic_write.h - the one way postgate writes a file that must survive a crash.
 *
 * Owns: write to DIR/.NAME.tmp, fsync, rename to DIR/NAME, fsync DIR.  A
 * reader that skips dot-files never sees a partial file; its counterpart, a
 * read that never goes past a bound, of a descriptor or of a whole file; and setting a refused file aside in a
 * bad/ directory beside the reason, durably.  Never: choose names.
 */
#ifndef PG_ATOMIC_WRITE_H
#define PG_ATOMIC_WRITE_H

#include <stddef.h>
#include <sys/types.h>
#include <glib.h>

/* What atomic_read_file found, for the caller to word its own error. */
typedef enum {
	ATOMIC_READ_OK,
	ATOMIC_READ_OPEN,        /* open or fstat failed: err */
	ATOMIC_READ_NOT_REGULAR, /* a directory, FIFO, socket or device: mode says which */
	ATOMIC_READ_TOO_BIG,     /* over max bytes, on disk (size > max) or while read */
	ATOMIC_READ_READ,        /* read failed: err */
} AtomicReadStatus;

typedef struct {
	AtomicReadStatus status;
	int err;                 /* errno, for OPEN and READ */
	mode_t mode;             /* st_mode, once fstat succeeded */
	off_t size;              /* st_size, once fstat succeeded */
} AtomicReadInfo;

/* atomic_write_file - durably create dir/name holding len bytes of data */
gboolean atomic_write_file(const char *dir, const char *name, const void *data,
    size_t len, int mode, GError **error);
/* atomic_read_upto - read from fd until EOF or cap bytes; -1 and errno on error */
gssize atomic_read_upto(int fd, void *buf, size_t cap);
/* atomic_read_file - the whole of the regular file path, never more than max
 * bytes: opened with O_NONBLOCK and O_NOCTTY (a FIFO is refused, never waited
 * for) and flags (O_NOFOLLOW, say); sized by fstat, read to EOF.  Returns the
 * bytes, NUL after the *len of them (g_free), or NULL with info->status
 * saying why.  A file that grew while read has *len > info->size. */
guint8 *atomic_read_file(const char *path, int flags, size_t max, size_t *len,
    AtomicReadInfo *info);
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
