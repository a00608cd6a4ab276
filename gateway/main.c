/* main.c - the postgate program: global options and the subcommand table.
 *
 * Owns: the global options (-c FILE, --help, --version), choosing the
 * subcommand from one table, and the exit status, always one of sysexits.h
 * (SPEC 4).  A subcommand gets the configuration file name and its own
 * arguments; later subcommands (run, smtpd, submit, dir, queue, track) are
 * rows added to the table.  Never: a subcommand's own work, beyond the few
 * lines that call into its module.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include <glib.h>

#include "dir_cmd.h"
#include "queue_cmd.h"
#include "run.h"
#include "smtpd.h"
#include "submit.h"
#include "pg_config.h"
#include "pg_log.h"

typedef struct {
	const char *name;
	const char *args;       /* its arguments, for the usage line; "" if none */
	const char *summary;
	int (*run)(const char *config_file, int argc, char **argv);
} Command;

static int cmd_check_config(const char *config_file, int argc, char **argv);
static int cmd_config_manpage(const char *config_file, int argc, char **argv);

/* Only what is implemented: --help lists every row. */
static const Command commands[] = {
	{ "check-config", "", "check the configuration, print non-default settings",
	    cmd_check_config },
	{ "config-manpage", "", "print the postgate.conf(5) man page",
	    cmd_config_manpage },
	{ "dir", "import|export|lookup|route|list|stats ...",
	    "the replicated directory (see postgate(8), DIRECTORY)", dir_cmd_main },
	{ "run", "[--dry-run] [--no-delivery] [--syslog]",
	    "the scheduled batch: postoffice bundles in and out, then SMTP delivery "
	    "(see postgate(8))", run_main },
	{ "smtpd", "[--syslog] [--debug]",
	    "the SMTP listener, in the foreground until SIGTERM", smtpd_main },
	{ "submit", "-f SENDER RCPT...",
	    "queue one message from standard input (an MTA's pipe transport)", submit_main },
	{ "queue", "list [-j]|show ID|retry [ID]|destinations|hold ID|release ID|delete ID",
	    "the queue (see postgate(8), QUEUE)", queue_cmd_main },
};

static int
usage_error(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

static int
usage_error(const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	pg_error(NULL, "%s (see postgate --help)", msg);
	g_free(msg);
	return EX_USAGE;
}

/* stdout is the result of a command: a failed write is an error. */
static int
finish_stdout(void)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		pg_error(NULL, "cannot write to standard output: %s", g_strerror(errno));
		return EX_IOERR;
	}
	return EX_OK;
}

static gboolean
wants_help(int argc, char **argv)
{
	return argc > 1 && (strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0);
}

static int
command_help(const Command *c)
{
	printf("Usage: postgate [-c FILE] %s%s%s\n\n%s\n", c->name,
	    *c->args ? " " : "", c->args, c->summary);
	return finish_stdout();
}

static int
cmd_check_config(const char *config_file, int argc, char **argv)
{
	GError *error = NULL;
	PgConfig *cfg;
	gboolean ok;

	if (argc > 1)
		return usage_error("check-config takes no arguments");
	cfg = config_load_file(config_file, &error);
	if (cfg == NULL) {
		/* One FILE:LINE: line per error, for people and editors alike. */
		fprintf(stderr, "%s\n", error->message);
		g_error_free(error);
		return EX_CONFIG;
	}
	ok = config_print_nondefault(cfg, stdout);
	config_free(cfg);
	if (!ok) {
		pg_error(NULL, "cannot write to standard output");
		return EX_IOERR;
	}
	return EX_OK;
}

static int
cmd_config_manpage(const char *config_file, int argc, char **argv)
{
	if (argc > 1)
		return usage_error("config-manpage takes no arguments");
	if (!config_write_manpage(stdout)) {
		pg_error(NULL, "cannot write to standard output");
		return EX_IOERR;
	}
	return EX_OK;
}

/* The help text, in ASCII whatever the locale: GLib writes an ellipsis. */
static int
print_help(GOptionContext *ctx)
{
	char *text = g_option_context_get_help(ctx, TRUE, NULL);
	GString *s = g_string_new(text);

	g_string_replace(s, "\xe2\x80\xa6", "...", 0);
	fputs(s->str, stdout);
	g_string_free(s, TRUE);
	g_free(text);
	return finish_stdout();
}

static char *
commands_text(void)
{
	GString *s = g_string_new("Commands:\n");

	for (size_t i = 0; i < G_N_ELEMENTS(commands); i++)
		g_string_append_printf(s, "  %-16s %s\n", commands[i].name,
		    commands[i].summary);
	g_string_append(s, "\nExit status: 0 done, 64 usage error, 74 output "
	    "error, 78 configuration error.\nSee postgate(8) and postgate.conf(5).");
	return g_string_free(s, FALSE);
}

int
main(int argc, char **argv)
{
	char *config_file = NULL;
	gboolean version = FALSE, help = FALSE;
	GOptionEntry entries[] = {
		{ "config", 'c', 0, G_OPTION_ARG_FILENAME, &config_file,
		    "Read FILE (default " CONFIG_DEFAULT_FILE ")", "FILE" },
		{ "help", 'h', 0, G_OPTION_ARG_NONE, &help,
		    "Print this help and exit", NULL },
		{ "version", 0, 0, G_OPTION_ARG_NONE, &version,
		    "Print the version and exit", NULL },
		{ NULL, 0, 0, 0, NULL, NULL, NULL },
	};
	GOptionContext *ctx;
	GError *error = NULL;
	char *text;
	int rc = EX_USAGE;

	g_set_prgname("postgate");
	pg_log_init("postgate", FALSE);
	ctx = g_option_context_new("COMMAND [ARGS]");
	g_option_context_set_summary(ctx, "The postgate mail gateway between SMTP "
	    "and a legacy store-and-forward mail network.");
	text = commands_text();
	g_option_context_set_description(ctx, text);
	g_free(text);
	g_option_context_add_main_entries(ctx, entries, NULL);
	/* Options stop at the command: what follows it is the command's. */
	g_option_context_set_strict_posix(ctx, TRUE);
	/* Our own --help: GLib's would print through the locale (SPEC 4). */
	g_option_context_set_help_enabled(ctx, FALSE);
	if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
		rc = usage_error("%s", error->message);
		g_error_free(error);
		goto out;
	}
	if (help) {
		rc = print_help(ctx);
		goto out;
	}
	if (version) {
		printf("postgate %s\n", PACKAGE_VERSION);
		rc = finish_stdout();
		goto out;
	}
	if (argc < 2) {
		rc = usage_error("no command given");
		goto out;
	}
	for (size_t i = 0; i < G_N_ELEMENTS(commands); i++) {
		const Command *c = &commands[i];
		if (strcmp(argv[1], c->name) != 0)
			continue;
		if (wants_help(argc - 1, argv + 1))
			rc = command_help(c);
		else
			rc = c->run(config_file ? config_file : CONFIG_DEFAULT_FILE,
			    argc - 1, argv + 1);
		goto out;
	}
	rc = usage_error("unknown command \"%s\"", argv[1]);
out:
	g_option_context_free(ctx);
	g_free(config_file);
	return rc;
}
