/* keyfile.c - read and create bundle keys (see keyfile.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "atomic_write.h"
#include "keyfile.h"
#include "pg_limits.h"

G_DEFINE_QUARK(postgate-keyfile-error-quark, keyfile_error)

GBytes *
keyfile_load(const char *path, GError **error)
{
	AtomicReadInfo info;
	size_t len = 0;
	/* Never read more than a key can be (and its newline), whatever the
	 * file claims. */
	char *data = (char *)atomic_read_file(path, 0, KEY_MAX_LEN + 1, &len, &info);

	if (data == NULL && info.status != ATOMIC_READ_TOO_BIG) {
		g_set_error(error, KEYFILE_ERROR, KEYFILE_ERROR_UNREADABLE,
		    "key file %s is unreadable: %s", path,
		    info.status == ATOMIC_READ_NOT_REGULAR ? "not a regular file" :
		    g_strerror(info.err));
		return NULL;
	}
	if (data != NULL && len > 0 && data[len - 1] == '\n')
		len--;
	if (data != NULL && len < KEY_MIN_LEN) {
		g_set_error(error, KEYFILE_ERROR, KEYFILE_ERROR_TOO_SHORT,
		    "key file %s is too short: %zu bytes, at least %u needed",
		    path, len, KEY_MIN_LEN);
		g_free(data);
		return NULL;
	}
	if (data == NULL || len > KEY_MAX_LEN) {
		g_set_error(error, KEYFILE_ERROR, KEYFILE_ERROR_TOO_LONG,
		    "key file %s is too long: more than %u bytes", path, KEY_MAX_LEN);
		g_free(data);
		return NULL;
	}
	return g_bytes_new_take(data, len);
}

gboolean
keyfile_create(const char *path, GError **error)
{
	unsigned char raw[32];
	char text[65 + 1], *dir, *base, *tmp;
	GError *e = NULL;
	gboolean ok;
	int fd, err;

	if (g_file_test(path, G_FILE_TEST_EXISTS)) {
		g_set_error(error, KEYFILE_ERROR, KEYFILE_ERROR_CREATE,
		    "key file %s already exists", path);
		return FALSE;
	}
	if (RAND_bytes(raw, sizeof raw) != 1) {
		g_set_error(error, KEYFILE_ERROR, KEYFILE_ERROR_CREATE,
		    "no random bytes for key file %s", path);
		return FALSE;
	}
	for (size_t i = 0; i < sizeof raw; i++)
		g_snprintf(text + 2 * i, 3, "%02x", raw[i]);
	text[64] = '\n';
	text[65] = '\0';
	/* A crash never leaves an empty or partial key behind, and an existing
	 * key is never replaced: written under a temporary name, then linked
	 * (which fails if the name exists), then the directory fsynced. */
	dir = g_path_get_dirname(path);
	base = g_path_get_basename(path);
	tmp = g_strdup_printf("%s/.%s.tmp", dir, base);
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	ok = fd >= 0 && write(fd, text, 65) == 65 && fsync(fd) == 0;
	err = errno;
	if (fd >= 0 && close(fd) != 0 && ok) {
		ok = FALSE;
		err = errno;
	}
	if (ok && link(tmp, path) != 0) {
		ok = FALSE;
		err = errno;
	}
	if (fd >= 0)
		unlink(tmp);
	if (ok)
		ok = atomic_fsync_dir(dir, &e);
	if (!ok)
		g_set_error(error, KEYFILE_ERROR, KEYFILE_ERROR_CREATE,
		    "cannot create key file %s: %s", path, e ? e->message : g_strerror(err));
	g_clear_error(&e);
	g_free(tmp);
	OPENSSL_cleanse(raw, sizeof raw);
	OPENSSL_cleanse(text, sizeof text);
	g_free(dir);
	g_free(base);
	return ok;
}
