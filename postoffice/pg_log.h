/* pg_log.h - the one logging module: one line per event, to stderr or syslog.
 *
 * Owns: the log destination, the program name and the threshold.  Every line
 * that concerns a queued message names its queue id (SPEC 4); and the two
 * renderings every message of postgate's shares: untrusted text made
 * printable, a duration made short.  Never: exit or abort; callers decide
 * what an error means.
 */
#ifndef PG_LOG_H
#define PG_LOG_H

#include <glib.h>

typedef enum {
	PG_LOG_DEBUG,
	PG_LOG_INFO,
	PG_LOG_WARNING,
	PG_LOG_ERROR,
} PgLogLevel;

/* pg_log_init - set the program name; syslog when use_syslog, else stderr */
void pg_log_init(const char *progname, gboolean use_syslog);
/* pg_log_set_threshold - lines below this level are dropped */
void pg_log_set_threshold(PgLogLevel level);
/* pg_log - log one line; id is a queue or message id, or NULL */
void pg_log(PgLogLevel level, const char *id, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

/* pg_shown - untrusted text (len bytes; -1: up to its NUL) as printable
 * ASCII for a message: other bytes as \xHH, at most max bytes then "...";
 * quoted: in double quotes, a quote and a backslash escaped too.  g_free it */
char *pg_shown(const char *text, gssize len, gsize max, gboolean quoted);
/* pg_duration_text - seconds as the largest whole unit: "2w", "5d", "4h",
 * "30m", "45s" (the units postgate.conf takes) */
char *pg_duration_text(gint64 seconds);

#define pg_info(id, ...)  pg_log(PG_LOG_INFO, (id), __VA_ARGS__)
#define pg_warn(id, ...)  pg_log(PG_LOG_WARNING, (id), __VA_ARGS__)
#define pg_error(id, ...) pg_log(PG_LOG_ERROR, (id), __VA_ARGS__)
#define pg_debug(id, ...) pg_log(PG_LOG_DEBUG, (id), __VA_ARGS__)

#endif
