/* pg_log.c - one line per event, to stderr or syslog (see pg_log.h). */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

#include "pg_log.h"

static const char *log_prog = "postgate";
static gboolean log_syslog;
static PgLogLevel log_threshold = PG_LOG_INFO;

void
pg_log_init(const char *progname, gboolean use_syslog)
{
	log_prog = progname;
	log_syslog = use_syslog;
	if (use_syslog)
		openlog(progname, LOG_PID, LOG_MAIL);
}

void
pg_log_set_threshold(PgLogLevel level)
{
	log_threshold = level;
}

static const char *
level_name(PgLogLevel level)
{
	switch (level) {
	case PG_LOG_DEBUG: return "debug";
	case PG_LOG_INFO: return "info";
	case PG_LOG_WARNING: return "warning";
	case PG_LOG_ERROR: return "error";
	}
	return "?";
}

static int
level_priority(PgLogLevel level)
{
	switch (level) {
	case PG_LOG_DEBUG: return LOG_DEBUG;
	case PG_LOG_INFO: return LOG_INFO;
	case PG_LOG_WARNING: return LOG_WARNING;
	case PG_LOG_ERROR: return LOG_ERR;
	}
	return LOG_ERR;
}

void
pg_log(PgLogLevel level, const char *id, const char *fmt, ...)
{
	va_list ap;
	char *text, *body, *line;

	if (level < log_threshold)
		return;
	va_start(ap, fmt);
	text = g_strdup_printf("%s%s", id ? id : "", id ? ": " : "");
	body = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	line = g_strconcat(text, body, NULL);
	/* One event, one line: never let a value, or an id taken from a file
	 * name, split it. */
	for (char *p = line; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
	if (log_syslog)
		syslog(level_priority(level), "%s", line);
	else
		fprintf(stderr, "%s: %s: %s\n", log_prog, level_name(level), line);
	g_free(text);
	g_free(body);
	g_free(line);
}
