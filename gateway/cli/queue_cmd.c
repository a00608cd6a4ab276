/* queue_cmd.c - `postgate queue` (see queue_cmd.h). */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "message.h"
#include "pg_log.h"
#include "queue/queue.h"
#include "cli/queue_cmd.h"
#include "run/run.h"
#include "site.h"

static const char usage_text[] =
    "usage: postgate [-c FILE] queue list [-j]\n"
    "       postgate [-c FILE] queue show ID\n"
    "       postgate [-c FILE] queue retry [ID]\n"
    "       postgate [-c FILE] queue destinations\n"
    "       postgate [-c FILE] queue hold ID [--reason TEXT]\n"
    "       postgate [-c FILE] queue release ID\n"
    "       postgate [-c FILE] queue delete ID\n";

static int
usage(const char *why)
{
	if (why)
		pg_error(NULL, "queue: %s", why);
	fputs(usage_text, stderr);
	return EX_USAGE;
}

static int
error_code(const GError *e)
{
	if (e->domain == QUEUE_ERROR) {
		switch (e->code) {
		case QUEUE_ERROR_NOT_FOUND: return EX_NOINPUT;
		case QUEUE_ERROR_STATE: return EX_DATAERR;
		case QUEUE_ERROR_SCHEMA: return EX_CONFIG;
		default: return EX_IOERR;
		}
	}
	return site_exit_code(e);
}

/* A JSON string, or null; control characters and non-UTF-8 bytes escaped. */
static void
json_string(GString *out, const char *s)
{
	if (!s) {
		g_string_append(out, "null");
		return;
	}
	g_string_append_c(out, '"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"': g_string_append(out, "\\\""); break;
		case '\\': g_string_append(out, "\\\\"); break;
		case '\n': g_string_append(out, "\\n"); break;
		case '\r': g_string_append(out, "\\r"); break;
		case '\t': g_string_append(out, "\\t"); break;
		default:
			if (*p < 0x20 || *p >= 0x7f)
				g_string_append_printf(out, "\\u%04x", *p);
			else
				g_string_append_c(out, (char)*p);
		}
	}
	g_string_append_c(out, '"');
}

/* One message as one line of JSON (like postqueue -j). */
static void
json_message(GString *out, const QueueEnvelope *env)
{
	g_string_append(out, "{\"queue_id\":");
	json_string(out, env->qid);
	g_string_append_printf(out, ",\"arrival_time\":%" G_GINT64_FORMAT
	    ",\"message_size\":%" G_GINT64_FORMAT ",\"sender\":", env->arrival, env->size);
	json_string(out, env->sender);
	g_string_append(out, ",\"message_id\":");
	json_string(out, env->message_id);
	g_string_append(out, ",\"client\":");
	json_string(out, env->client);
	g_string_append(out, ",\"protocol\":");
	json_string(out, env->protocol);
	g_string_append_printf(out, ",\"hops\":%u,\"delay_notice_time\":%" G_GINT64_FORMAT
	    ",\"envid\":", env->hops, env->warned);
	json_string(out, env->envid);
	g_string_append(out, ",\"ret\":");
	json_string(out, mail_ret_name(env->ret));
	g_string_append(out, ",\"body\":");
	json_string(out, mail_body_name(env->body));
	g_string_append(out, ",\"class\":");
	json_string(out, env->report_class ? msg_class_name(env->report_class) : "message");
	g_string_append(out, ",\"about\":");
	json_string(out, env->about);
	g_string_append(out, ",\"report_to\":");
	json_string(out, env->report_to);
	g_string_append(out, ",\"recipients\":[");
	for (guint i = 0; i < env->rcpts->len; i++) {
		const QueueRcpt *r = env->rcpts->pdata[i];
		char *notify = mail_notify_text(r->notify);

		g_string_append(out, i ? ",{\"address\":" : "{\"address\":");
		json_string(out, r->address);
		g_string_append(out, ",\"state\":");
		json_string(out, queue_state_name(r->state));
		g_string_append(out, ",\"reason\":");
		json_string(out, r->reason);
		g_string_append_printf(out, ",\"next_attempt\":%" G_GINT64_FORMAT
		    ",\"last_reply\":", r->next_attempt);
		json_string(out, r->last_reply);
		g_string_append(out, ",\"notify\":");
		json_string(out, notify);
		g_string_append(out, ",\"orcpt\":");
		json_string(out, r->orcpt);
		g_string_append(out, ",\"report\":");
		json_string(out, r->report);
		g_string_append_c(out, '}');
		g_free(notify);
	}
	g_string_append(out, "]}\n");
}

static char *
time_text(gint64 t)
{
	GDateTime *dt = g_date_time_new_from_unix_local(t);
	char *s = g_date_time_format(dt, "%Y-%m-%d %H:%M:%S");

	g_date_time_unref(dt);
	return s;
}

static void
text_message(GString *out, const QueueEnvelope *env)
{
	char *when = time_text(env->arrival);

	g_string_append_printf(out, "%-18s %9" G_GINT64_FORMAT "  %s  <%s>\n", env->qid,
	    env->size, when, env->sender);
	for (guint i = 0; i < env->rcpts->len; i++) {
		const QueueRcpt *r = env->rcpts->pdata[i];

		g_string_append_printf(out, "%-18s %9s  %-19s  %s <%s>%s%s%s\n", "", "", "",
		    queue_state_name(r->state), r->address, r->reason ? " (" : "",
		    r->reason ? r->reason : "",
		    r->reason ? ")" : "");
	}
	g_free(when);
}

static int
do_list(Queue *q, int argc, char **argv)
{
	gboolean json = FALSE;
	GOptionEntry entries[] = {
		{ "json", 'j', 0, G_OPTION_ARG_NONE, &json,
		    "One JSON object per line per message", NULL },
		G_OPTION_ENTRY_NULL,
	};
	GOptionContext *oc = g_option_context_new("list");
	GPtrArray *all;
	GString *out;
	GError *e = NULL;

	g_option_context_add_main_entries(oc, entries, NULL);
	if (!g_option_context_parse(oc, &argc, &argv, &e) || argc > 1) {
		g_option_context_free(oc);
		if (e) {
			g_error_free(e);
		}
		return usage("list takes only -j");
	}
	g_option_context_free(oc);
	all = queue_list(q, &e);
	if (!all) {
		fprintf(stderr, "%s\n", e->message);
		g_error_free(e);
		return EX_IOERR;
	}
	out = g_string_new(NULL);
	if (!json && all->len > 0)
		g_string_append_printf(out, "%-18s %9s  %-19s  %s\n", "QUEUE ID", "SIZE",
		    "ARRIVAL", "SENDER / RECIPIENTS");
	for (guint i = 0; i < all->len; i++) {
		if (json)
			json_message(out, all->pdata[i]);
		else
			text_message(out, all->pdata[i]);
	}
	if (!json)
		g_string_append_printf(out, all->len ? "-- %u message%s\n" : "Queue is empty\n",
		    all->len, all->len == 1 ? "" : "s");
	fputs(out->str, stdout);
	g_string_free(out, TRUE);
	g_ptr_array_unref(all);
	return EX_OK;
}

static int
do_show(Queue *q, const char *qid)
{
	QueueEnvelope *env;
	GBytes *head;
	GError *e = NULL;
	GString *out;
	char *when;
	const char *p, *end;
	gsize n;

	env = queue_get(q, qid, &e);
	if (!env)
		goto fail;
	when = time_text(env->arrival);
	out = g_string_new(NULL);
	g_string_append_printf(out, "queue_id: %s\narrival: %s\nsize: %" G_GINT64_FORMAT "\n"
	    "sender: <%s>\nclient: %s\nhelo: %s\nprotocol: %s\nhops: %u\nmessage_id: %s\n",
	    env->qid, when, env->size, env->sender, env->client, env->helo ? env->helo : "",
	    env->protocol, env->hops, env->message_id ? env->message_id : "");
	g_string_append_printf(out, "envid: %s\nret: %s\nbody: %s\n", env->envid ? env->envid : "",
	    mail_ret_name(env->ret) ? mail_ret_name(env->ret) : "", mail_body_name(env->body) ?
	    mail_body_name(env->body) : "");
	if (env->report_class)
		g_string_append_printf(out, "class: %s about %s\n", msg_class_name(env->report_class),
		    env->about ? env->about : "?");
	if (env->report_to)
		g_string_append_printf(out, "report_to: %s\n", env->report_to);
	g_free(when);
	if (env->warned) {
		/* A report or message from <> gets no delay notice: its warned
		 * says when the postmaster was told that it is held. */
		when = time_text(env->warned);
		g_string_append_printf(out, "%s: %s\n", env->report_class || !*env->sender ?
		    "postmaster_told" : "delay_notice", when);
		g_free(when);
	}
	for (guint i = 0; i < env->rcpts->len; i++) {
		const QueueRcpt *r = env->rcpts->pdata[i];
		char *notify = mail_notify_text(r->notify);

		g_string_append_printf(out, "recipient: <%s> state=%s", r->address,
		    queue_state_name(r->state));
		if (notify)
			g_string_append_printf(out, " notify=%s", notify);
		if (r->orcpt)
			g_string_append_printf(out, " orcpt=%s", r->orcpt);
		if (r->reason)
			g_string_append_printf(out, " reason=\"%s\"", r->reason);
		if (r->via)
			g_string_append_printf(out, " via=\"%s\"", r->via);
		if (r->next_attempt > 0 && r->state == QUEUE_ST_DEFERRED) {
			char *t = time_text(r->next_attempt);

			g_string_append_printf(out, " next_attempt=\"%s\"", t);
			g_free(t);
		}
		if (r->last_reply)
			g_string_append_printf(out, " last_reply=\"%s\"", r->last_reply);
		if (r->report)
			g_string_append_printf(out, " report=%s", r->report);
		g_string_append_c(out, '\n');
		g_free(notify);
	}
	/* The header section, as stored. */
	head = queue_body_read(q, qid, 64 * 1024, &e);
	if (!head) {
		g_string_free(out, TRUE);
		queue_envelope_free(env);
		goto fail;
	}
	p = g_bytes_get_data(head, &n);
	end = p + n;
	g_string_append(out, "\n");
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);

		if (len > 0 && p[len - 1] == '\r')
			len--;
		if (len == 0)
			break;
		g_string_append_len(out, p, (gssize)len);
		g_string_append_c(out, '\n');
		if (!nl)
			break;
		p = nl + 1;
	}
	g_bytes_unref(head);
	fputs(out->str, stdout);
	g_string_free(out, TRUE);
	queue_envelope_free(env);
	return EX_OK;
fail:
	fprintf(stderr, "%s\n", e->message);
	{
		int rc = error_code(e);

		g_error_free(e);
		return rc;
	}
}

static int
do_change(Queue *q, const char *verb, int argc, char **argv)
{
	char *reason = NULL;
	GOptionEntry entries[] = {
		{ "reason", 0, 0, G_OPTION_ARG_STRING, &reason,
		    "Why it is held (hold only)", "TEXT" },
		G_OPTION_ENTRY_NULL,
	};
	GOptionContext *oc = g_option_context_new(verb);
	GError *e = NULL;
	gboolean ok;
	int rc = EX_OK;

	g_option_context_add_main_entries(oc, entries, NULL);
	if (!g_option_context_parse(oc, &argc, &argv, &e) || argc != 2 ||
	    (reason && strcmp(verb, "hold") != 0)) {
		g_option_context_free(oc);
		g_clear_error(&e);
		g_free(reason);
		return usage("hold, release and delete take one queue id");
	}
	g_option_context_free(oc);
	if (strcmp(verb, "hold") == 0)
		ok = queue_hold(q, argv[1], reason ? reason : "held by the administrator", &e);
	else if (strcmp(verb, "release") == 0)
		ok = queue_release(q, argv[1], &e);
	else
		ok = queue_delete(q, argv[1], &e);
	if (ok) {
		const char *done = strcmp(verb, "hold") == 0 ? queue_state_name(QUEUE_ST_HELD) :
		    strcmp(verb, "release") == 0 ? "released" : "deleted";

		pg_info(argv[1], "%s by the administrator", done);
		printf("%s: %s\n", argv[1], done);
	} else {
		fprintf(stderr, "%s\n", e->message);
		rc = error_code(e);
		g_error_free(e);
	}
	g_free(reason);
	return rc;
}

/* What the SMTP client remembers of each destination. */
static int
do_destinations(Queue *q)
{
	GError *e = NULL;
	GPtrArray *all = queue_dest_list(q, &e);
	gint64 now = g_get_real_time() / G_USEC_PER_SEC;
	guint shown = 0;

	if (!all) {
		fprintf(stderr, "%s\n", e->message);
		g_error_free(e);
		return EX_IOERR;
	}
	for (guint i = 0; i < all->len; i++) {
		char **f = g_strsplit(all->pdata[i], "\t", 5);
		gint64 single = g_ascii_strtoll(f[1], NULL, 10);
		gint64 retry = g_ascii_strtoll(f[2], NULL, 10);

		if (single > now || retry > now) {
			if (shown++ == 0)
				printf("%-40s %s\n", "DESTINATION", "REMEMBERED");
			printf("%-40s", f[0]);
			if (single > now) {
				char *t = time_text(single);

				printf(" one message per session until %s", t);
				g_free(t);
			}
			if (retry > now) {
				char *t = time_text(retry);

				printf("%s not tried before %s (%s failure%s in a row: %s)",
				    single > now ? ";" : "", t, f[3], strcmp(f[3], "1") == 0 ? "" : "s",
				    f[4]);
				g_free(t);
			}
			putchar('\n');
		}
		g_strfreev(f);
	}
	if (shown == 0)
		printf("No destination is backed off or limited to one message per session\n");
	g_ptr_array_unref(all);
	return EX_OK;
}

int
queue_cmd_main(const char *config_file, int argc, char **argv)
{
	const char *verb = argc > 1 ? argv[1] : NULL;
	GError *e = NULL;
	Site *site;
	Queue *q;
	int rc;

	if (!verb)
		return usage("no queue command given");
	if (strcmp(verb, "retry") == 0) {
		if (argc > 3 || (argc == 3 && argv[2][0] == '-'))
			return usage("retry takes at most one queue id");
		return run_retry(config_file, argc == 3 ? argv[2] : NULL);
	}
	if (strcmp(verb, "list") != 0 && strcmp(verb, "show") != 0 &&
	    strcmp(verb, "destinations") != 0 &&
	    strcmp(verb, "hold") != 0 && strcmp(verb, "release") != 0 &&
	    strcmp(verb, "delete") != 0)
		return usage("unknown queue command");
	if (strcmp(verb, "show") == 0 && argc != 3)
		return usage("show takes one queue id");
	/* The queue needs no key file: an administrator who may not read
	 * them still lists it. */
	site = site_open_command(config_file, SITE_NO_POSTOFFICE_FILES, NULL, NULL, &rc);
	if (!site)
		return rc;
	q = queue_open(config_string(site->cfg, CONFIG_SITE_STATE_DIR), &e);
	if (!q) {
		fprintf(stderr, "%s\n", e->message);
		/* queue.db cannot be opened: EX_CANTCREAT, as for every command. */
		rc = e->domain == QUEUE_ERROR && e->code == QUEUE_ERROR_IO ?
		    EX_CANTCREAT : error_code(e);
		g_error_free(e);
		site_close(site);
		return rc;
	}
	if (strcmp(verb, "list") == 0)
		rc = do_list(q, argc - 1, argv + 1);
	else if (strcmp(verb, "destinations") == 0)
		rc = argc == 2 ? do_destinations(q) : usage("destinations takes no arguments");
	else if (strcmp(verb, "show") == 0)
		rc = do_show(q, argv[2]);
	else
		rc = do_change(q, verb, argc - 1, argv + 1);
	queue_close(q);
	site_close(site);
	return rc;
}
