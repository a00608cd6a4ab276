/* keyfile.c - read and create bundle keys (see keyfile.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "keyfile.h"
#include "pg_limits.h"

G_DEFINE_QUARK(postgate-keyfile-error-quark, keyfile_error)

GBytes *
keyfile_load(const char *path, GError **error)
{
	char *data = NULL;
	gsize len = 0;
	GError *e = NULL;

	if (!g_file_get_contents(path, &data, &len, &e)) {
		g_set_error(error, KEYFILE_ERROR, KEYFILE_ERROR_UNREADABLE,
		    "key file %s is unreadable: %s", path, e->message);
		g_error_free(e);
		return NULL;
	}
	if (len > 0 && data[len - 1] == '\n')
		len--;
	if (len < KEY_MIN_LEN) {
		g_set_error(error, KEYFILE_ERROR, KEYFILE_ERROR_TOO_SHORT,
		    "key file %s is too short: %zu bytes, at least %u needed",
		    path, (size_t)len, KEY_MIN_LEN);
		g_free(data);
		return NULL;
	}
	if (len > KEY_MAX_LEN) {
		g_set_error(error, KEYFILE_ERROR, KEYFILE_ERROR_TOO_LONG,
		    "key file %s is too long: %zu bytes, at most %u allowed",
		    path, (size_t)len, KEY_MAX_LEN);
		g_free(data);
		return NULL;
	}
	return g_bytes_new_take(data, len);
}

gboolean
keyfile_create(const char *path, GError **error)
{
	unsigned char raw[32];
	char text[65 + 1];
	int fd;

	if (RAND_bytes(raw, sizeof raw) != 1) {
		g_set_error(error, KEYFILE_ERROR, KEYFILE_ERROR_CREATE,
		    "no random bytes for key file %s", path);
		return FALSE;
	}
	for (size_t i = 0; i < sizeof raw; i++)
		g_snprintf(text + 2 * i, 3, "%02x", raw[i]);
	text[64] = '\n';
	text[65] = '\0';
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, text, 65) != 65 || fsync(fd) != 0) {
		int err = errno;
		if (fd >= 0)
			close(fd);
		g_set_error(error, KEYFILE_ERROR, KEYFILE_ERROR_CREATE,
		    "cannot create key file %s: %s", path, g_strerror(err));
		return FALSE;
	}
	close(fd);
	return TRUE;
}
