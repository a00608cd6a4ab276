/* pg_log.c - one line per event, to stderr or syslog (see pg_log.h). */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
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

char *
pg_shown(const char *text, gssize len, gsize max, gboolean quoted)
{
	gsize n = len < 0 ? (text ? strlen(text) : 0) : (gsize)len;
	GString *s = g_string_new(quoted ? "\"" : NULL);

	for (gsize i = 0; i < n && i < max; i++) {
		unsigned char c = (unsigned char)text[i];

		if (c >= 0x20 && c < 0x7f && c != '\\' && !(quoted && c == '"'))
			g_string_append_c(s, (char)c);
		else
			g_string_append_printf(s, "\\x%02x", c);
	}
	if (n > max)
		g_string_append(s, "...");
	if (quoted)
		g_string_append_c(s, '"');
	return g_string_free(s, FALSE);
}

char *
pg_duration_text(gint64 seconds)
{
	static const struct {
		char unit;
		gint64 mult;
	} units[] = { { 'w', 7 * 86400 }, { 'd', 86400 }, { 'h', 3600 }, { 'm', 60 } };

	for (gsize i = 0; seconds != 0 && i < G_N_ELEMENTS(units); i++)
		if (seconds % units[i].mult == 0)
			return g_strdup_printf("%" G_GINT64_FORMAT "%c", seconds / units[i].mult,
			    units[i].unit);
	return g_strdup_printf("%" G_GINT64_FORMAT "s", seconds);
}
