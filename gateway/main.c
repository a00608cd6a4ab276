/* main.c - the postgate program: global options and the subcommand table.
 *
 * Owns: the global options (-c FILE, --help, --version), choosing the
 * subcommand from one table, `--help` or `-h` anywhere in a command's
 * arguments (its usage, or its sub-command's, from the tables here; nothing
 * else is done), the umask (077: state is private), the log line of a signal
 * that ends a command other than smtpd, and the exit status, always one of
 * sysexits.h (SPEC 4).  A subcommand gets the configuration file name and
 * its own arguments; later subcommands are rows added to the table.
 * Never: a subcommand's own work, beyond the few lines that call into its
 * module.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include <glib.h>

#include "cli/dir_cmd.h"
#include "cli/queue_cmd.h"
#include "run/run.h"
#include "smtpd/smtpd.h"
#include "cli/submit.h"
#include "config/pg_config.h"
#include "pg_log.h"
#include "site.h"

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

/* The sub-commands of dir and queue, for `postgate CMD SUB --help`. */
typedef struct {
	const char *command;
	const char *name;
	const char *args;       /* "" if none */
	const char *summary;
} SubCommand;

static const SubCommand subcommands[] = {
	{ "dir", "import", "FILE...",
	    "import sync files: a postoffice's export or a peer site's changes" },
	{ "dir", "export", "--po NET/PO|--for SITE|--canonical [-o FILE]",
	    "export the directory for a postoffice, for a peer site, or whole" },
	{ "dir", "lookup", "ADDRESS",
	    "the entry of a legacy or proxy address, with all its proxies" },
	{ "dir", "route", "ADDRESS", "where mail to ADDRESS goes, in one line" },
	{ "dir", "list", "[--type mailbox|custom|dl]", "one line per live entry" },
	{ "dir", "stats", "", "counts of entries, tombstones and proxies" },
	{ "queue", "list", "[-j]", "one block per message (-j: one JSON object per line)" },
	{ "queue", "show", "ID", "the envelope, recipients and header of one message" },
	{ "queue", "retry", "[ID]",
	    "run the SMTP client now on what waits for it (of message ID only)" },
	{ "queue", "destinations", "",
	    "what the SMTP client remembers of its destinations" },
	{ "queue", "hold", "ID [--reason TEXT]", "hold every unfinished recipient of ID" },
	{ "queue", "release", "ID", "give held recipients back their state" },
	{ "queue", "delete", "ID", "remove the message for good, without a report" },
};

/* ---- the log line of a signal that ends a command ---- */

/* The signals that end a command, and the line each writes. */
static const int end_signals[] = { SIGTERM, SIGINT, SIGHUP };
#define END_SIGNAL_LINE_MAX 128
static char end_signal_line[G_N_ELEMENTS(end_signals)][END_SIGNAL_LINE_MAX];
static size_t end_signal_len[G_N_ELEMENTS(end_signals)];

/* Only async-signal-safe calls: write the line made beforehand, then die of
 * the signal (SA_RESETHAND: the default action, so the parent sees it). */
static void
on_end_signal(int sig)
{
	for (size_t i = 0; i < G_N_ELEMENTS(end_signals); i++) {
		if (end_signals[i] == sig) {
			/* Nothing to do if it fails: the process ends anyway. */
			ssize_t n = write(STDERR_FILENO, end_signal_line[i],
			    end_signal_len[i]);
			(void)n;
		}
	}
	raise(sig);
}

/* what: the command as the log names it ("run", "queue retry"). */
static void
log_end_signals(const char *what)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_end_signal;
	sa.sa_flags = SA_RESETHAND | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < G_N_ELEMENTS(end_signals); i++) {
		int n = snprintf(end_signal_line[i], END_SIGNAL_LINE_MAX,
		    "postgate: warning: %s: ended by signal SIG%s\n", what,
		    sigabbrev_np(end_signals[i]));
		end_signal_len[i] = n < 0 ? 0 : MIN((size_t)n, END_SIGNAL_LINE_MAX - 1);
		sigaction(end_signals[i], &sa, NULL);
	}
}

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

/* --help or -h anywhere among a command's arguments (up to a "--"). */
static gboolean
wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return TRUE;
	return FALSE;
}

static const SubCommand *
subcommand_find(const Command *c, const char *name)
{
	for (size_t i = 0; i < G_N_ELEMENTS(subcommands); i++)
		if (strcmp(subcommands[i].command, c->name) == 0 &&
		    strcmp(subcommands[i].name, name) == 0)
			return &subcommands[i];
	return NULL;
}

/* The usage of c, or of its sub-command named by argv[1]. */
static int
command_help(const Command *c, int argc, char **argv)
{
	const SubCommand *sub = argc > 1 ? subcommand_find(c, argv[1]) : NULL;
	gboolean first = TRUE;

	if (sub) {
		printf("Usage: postgate [-c FILE] %s %s%s%s\n\n%s\n", c->name,
		    sub->name, *sub->args ? " " : "", sub->args, sub->summary);
		return finish_stdout();
	}
	printf("Usage: postgate [-c FILE] %s%s%s\n\n%s\n", c->name,
	    *c->args ? " " : "", c->args, c->summary);
	for (size_t i = 0; i < G_N_ELEMENTS(subcommands); i++) {
		const SubCommand *s = &subcommands[i];
		if (strcmp(s->command, c->name) != 0)
			continue;
		printf("%s  %s %s%s%s\n      %s\n", first ? "\n" : "", s->command,
		    s->name, *s->args ? " " : "", s->args, s->summary);
		first = FALSE;
	}
	return finish_stdout();
}

/* The commands that log the signal that ends them: all but the listener,
 * which handles its own. */
static void
prepare(const Command *c, int argc, char **argv)
{
	char *what;

	if (strcmp(c->name, "smtpd") == 0)
		return;
	what = argc > 1 && subcommand_find(c, argv[1]) ?
	    g_strdup_printf("%s %s", c->name, argv[1]) : g_strdup(c->name);
	log_end_signals(what);
	g_free(what);
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
	/* Warnings only: the file is good; exit 0. */
	site_check_private(cfg);
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
	g_string_append(s, "\nCOMMAND --help (or -h) prints the usage of a command, "
	    "COMMAND SUB --help\nthat of a sub-command.\n"
	    "\nExit status: 0 done, 64 usage, 65 bad data, 66 no such message, "
	    "67 no such\naddress, 73 cannot create or open state, 74 I/O error, "
	    "75 temporary failure\n(try again), 77 cannot become [site] user, "
	    "78 configuration error.\nSee postgate(8) and postgate.conf(5).");
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
	/* Before any state is opened: queue.db, its WAL and directory.db hold
	 * who wrote to whom and about what (a created state_dir is 0700). */
	umask(077);
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
		if (wants_help(argc - 1, argv + 1)) {
			rc = command_help(c, argc - 1, argv + 1);
		} else {
			prepare(c, argc - 1, argv + 1);
			rc = c->run(config_file ? config_file : CONFIG_DEFAULT_FILE,
			    argc - 1, argv + 1);
		}
		goto out;
	}
	rc = usage_error("unknown command \"%s\"", argv[1]);
out:
	g_option_context_free(ctx);
	g_free(config_file);
	return rc;
}
