/* atomic_write.c - temporary name, fsync, rename, fsync of the directory. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <gio/gio.h>

#include "atomic_write.h"
#include "fault.h"

gssize
read_upto(int fd, void *buf, size_t cap)
{
	size_t len = 0;

	while (len < cap) {
		ssize_t n = read(fd, (char *)buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		len += (size_t)n;
	}
	return (gssize)len;
}

gboolean
fsync_dir(const char *dir, GError **error)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || fsync(fd) != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e),
		    "fsync of directory %s: %s", dir, g_strerror(e));
		return FALSE;
	}
	close(fd);
	return TRUE;
}

gboolean
atomic_write_file(const char *dir, const char *name, const void *data, size_t len,
    int mode, GError **error)
{
	char *tmp = g_strdup_printf("%s/.%s.tmp", dir, name);
	char *final = g_strdup_printf("%s/%s", dir, name);
	const char *p = data;
	gboolean ok = FALSE;
	int fd, e;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0) {
		e = errno;
		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e),
		    "create %s: %s", tmp, g_strerror(e));
		goto out;
	}
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			e = errno;
			g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e),
			    "write %s: %s", tmp, g_strerror(e));
			close(fd);
			unlink(tmp);
			goto out;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) != 0 || close(fd) != 0) {
		e = errno;
		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e),
		    "fsync %s: %s", tmp, g_strerror(e));
		unlink(tmp);
		goto out;
	}
	if (rename(tmp, final) != 0) {
		e = errno;
		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e),
		    "rename %s to %s: %s", tmp, final, g_strerror(e));
		unlink(tmp);
		goto out;
	}
	if (!fsync_dir(dir, error))
		goto out;
	fault_step("atomic write");
	ok = TRUE;
out:
	g_free(tmp);
	g_free(final);
	return ok;
}
