/* queue_body.c - a message body while it arrives: in memory up to
 * QUEUE_SPILL_AT, then in its own file queue/QID (see queue_int.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib-unix.h>
#include <sqlite3.h>

#include "atomic_write.h"
#include "fault.h"
#include "pg_db.h"
#include "pg_log.h"
#include "queue/queue_int.h"

/* --------------------------------------------------------------- bodies */

QueueBody *
queue_body_new(Queue *q, const char *qid)
{
	QueueBody *b = g_new0(QueueBody, 1);

	b->q = q;
	b->qid = g_strdup(qid);
	b->mem = g_byte_array_new();
	b->fd = -1;
	return b;
}

/* Move the body to its own file, queue/QID, created afresh. */
gboolean
qi_body_spill(QueueBody *b, GError **error)
{
	char *path;

	if (!queue_id_valid(b->qid))
		return qi_io_fail(error, "\"%s\" is no queue id", b->qid);
	path = qi_body_path(b->q, b->qid);
	b->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	if (b->fd < 0) {
		qi_io_fail(error, "cannot create %s: %s", path, g_strerror(errno));
		g_free(path);
		return FALSE;
	}
	g_free(path);
	if (b->mem->len > 0 && !qi_write_all(b->fd, b->mem->data, b->mem->len, NULL))
		return qi_io_fail(error, "cannot write the body of %s: %s", b->qid,
		    g_strerror(errno));
	g_byte_array_set_size(b->mem, 0);
	return TRUE;
}

gboolean
queue_body_append(QueueBody *b, const void *data, gsize len, GError **error)
{
	b->size += (gint64)len;
	if (b->fd < 0 && b->mem->len + len <= QUEUE_SPILL_AT) {
		g_byte_array_append(b->mem, data, (guint)len);
		return TRUE;
	}
	if (b->fd < 0 && !qi_body_spill(b, error))
		return FALSE;
	if (!qi_write_all(b->fd, data, len, NULL))
		return qi_io_fail(error, "cannot write the body of %s: %s", b->qid,
		    g_strerror(errno));
	return TRUE;
}

gint64
queue_body_size(const QueueBody *b)
{
	return b->size;
}

void
qi_body_free(QueueBody *b, gboolean unlink_file)
{
	if (!b)
		return;
	if (b->fd >= 0) {
		close(b->fd);
		if (unlink_file) {
			char *path = qi_body_path(b->q, b->qid);

			unlink(path);
			g_free(path);
		}
	}
	g_byte_array_unref(b->mem);
	g_free(b->qid);
	g_free(b);
}

void
queue_body_discard(QueueBody *b)
{
	qi_body_free(b, TRUE);
}
