/* atomic_write.c - temporary name, fsync, rename, fsync of the directory. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gio/gio.h>

#include "atomic_write.h"
#include "fault.h"

gssize
atomic_read_upto(int fd, void *buf, size_t cap)
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

static guint8 *
read_failed(AtomicReadInfo *info, AtomicReadStatus status, int fd, guint8 *data)
{
	info->status = status;
	info->err = errno;
	if (fd >= 0)
		close(fd);
	g_free(data);
	return NULL;
}

guint8 *
atomic_read_file(const char *path, int flags, size_t max, size_t *len, AtomicReadInfo *info)
{
	struct stat st;
	guint8 *data = NULL;
	size_t have = 0, cap;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY | flags);

	*info = (AtomicReadInfo){ .status = ATOMIC_READ_OK };
	if (fd < 0 || fstat(fd, &st) != 0)
		return read_failed(info, ATOMIC_READ_OPEN, fd, NULL);
	info->mode = st.st_mode;
	info->size = st.st_size;
	if (!S_ISREG(st.st_mode))
		return read_failed(info, ATOMIC_READ_NOT_REGULAR, fd, NULL);
	if ((guint64)st.st_size > max)
		return read_failed(info, ATOMIC_READ_TOO_BIG, fd, NULL);
	/* What fstat saw and one byte more, to see EOF (or a file still
	 * growing) without a second read; grown only if it did grow. */
	cap = (size_t)st.st_size + 1;
	data = g_malloc(cap + 1);
	for (;;) {
		gssize n = atomic_read_upto(fd, data + have, cap - have);

		if (n < 0)
			return read_failed(info, ATOMIC_READ_READ, fd, data);
		have += (size_t)n;
		if (have > max)
			return read_failed(info, ATOMIC_READ_TOO_BIG, fd, data);
		if (have < cap)
			break;
		cap = MIN(cap * 2, max + 1);
		data = g_realloc(data, cap + 1);
	}
	close(fd);
	data[have] = '\0';
	*len = have;
	return data;
}

gboolean
atomic_fsync_dir(const char *dir, GError **error)
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
	if (!atomic_fsync_dir(dir, error))
		goto out;
	fault_step("atomic write");
	ok = TRUE;
out:
	g_free(tmp);
	g_free(final);
	return ok;
}

gboolean
atomic_set_aside(const char *dir, const char *name, const char *bad, const char *why,
    char **to, GError **error)
{
	char *from = g_build_filename(dir, name, NULL);
	/* Keep room for ".NAME.why.tmp" within a file name's 255 bytes. */
	char *target = g_strndup(name, 200), *dest = NULL, *why_name = NULL, *text = NULL;
	char *where = g_path_get_basename(dir);
	gboolean ok = FALSE;

	if (g_mkdir_with_parents(bad, 0750) != 0) {
		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno),
		    "cannot create %s: %s", bad, g_strerror(errno));
		goto out;
	}
	/* Never over an earlier refusal. */
	for (int i = 1;; i++) {
		dest = g_build_filename(bad, target, NULL);
		if (!g_file_test(dest, G_FILE_TEST_EXISTS))
			break;
		g_free(dest);
		g_free(target);
		target = g_strdup_printf("%.200s.%d", name, i);
	}
	why_name = g_strdup_printf("%s.why", target);
	text = strlen(name) > 200 ? g_strdup_printf("%s\n(%s/ name: %s)\n", why, where, name) :
	    g_strdup_printf("%s\n", why);
	ok = atomic_write_file(bad, why_name, text, strlen(text), 0640, error);
	if (ok && rename(from, dest) != 0) {
		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno),
		    "rename %s to %s: %s", from, dest, g_strerror(errno));
		ok = FALSE;
	}
	ok = ok && atomic_fsync_dir(bad, error) && atomic_fsync_dir(dir, error);
	if (ok) {
		fault_step("move to bad");
		if (to)
			*to = g_steal_pointer(&dest);
	}
out:
	g_free(from);
	g_free(dest);
	g_free(target);
	g_free(why_name);
	g_free(text);
	g_free(where);
	return ok;
}
