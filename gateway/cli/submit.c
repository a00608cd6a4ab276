/* submit.c - `postgate submit`: one message on standard input (see submit.h). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "smtpd/accept.h"
#include "address.h"
#include "pg_log.h"
#include "queue/queue.h"
#include "site.h"
#include "smtpd/smtp_data.h"
#include "smtpd/smtpd.h"
#include "cli/submit.h"

/* An address as an MTA hands it over: bare or in angle brackets, its local
 * part quoted or not.  For a recipient (domain: this site's first domain),
 * bare postmaster in any case is postmaster@domain, as in the listener
 * (RFC 5321 4.5.1). */
static gboolean
parse_address(const char *text, gboolean null_ok, const char *domain,
    char out[ADDR_SMTP_MAX + 1], GError **error)
{
	size_t len = strlen(text);

	if (len >= 2 && text[0] == '<' && text[len - 1] == '>') {
		text++;
		len -= 2;
	}
	if (len == 0 && null_ok) {
		out[0] = '\0';
		return TRUE;
	}
	if (domain && len == strlen("postmaster") &&
	    g_ascii_strncasecmp(text, "postmaster", len) == 0) {
		g_snprintf(out, ADDR_SMTP_MAX + 1, "postmaster@%s", domain);
		return TRUE;
	}
	return addr_parse_smtp_quoted(text, len, out, error);
}

/* Standard input as SMTP would carry it: LF made CRLF, leading dots doubled,
 * so that the listener's DATA machine checks it the same way. */
typedef struct {
	gboolean at_start;      /* at the start of a line */
	gboolean cr;            /* the last byte was CR */
	gboolean any;           /* any byte at all */
} Wire;

static void
wire_put(Wire *w, const char *buf, gsize len, GByteArray *out)
{
	for (gsize i = 0; i < len; i++) {
		char c = buf[i];

		if (w->at_start && c == '.')
			g_byte_array_append(out, (const guint8 *)".", 1);
		if (c == '\n' && !w->cr)
			g_byte_array_append(out, (const guint8 *)"\r", 1);
		g_byte_array_append(out, (const guint8 *)&c, 1);
		w->cr = c == '\r';
		w->at_start = c == '\n';
		w->any = TRUE;
	}
}

/* The sender and recipients of argv into env, checked as the listener
 * checks them; EX_OK or the exit code of the first refusal. */
static int
envelope_fill(Site *site, QueueEnvelope *env, const char *sender, int argc, char **argv)
{
	char addr[ADDR_SMTP_MAX + 1];
	const char *pm_domain = site->ctx.domains ? site->ctx.domains[0] : NULL;
	GError *e = NULL;

	if (!parse_address(sender, TRUE, NULL, addr, &e)) {
		pg_error(env->qid, "submit: sender <%s>: %s", sender, e->message);
		g_error_free(e);
		return EX_DATAERR;
	}
	g_free(env->sender);
	env->sender = g_strdup(addr);
	g_free(env->protocol);
	env->protocol = g_strdup("local");
	for (int i = 1; i < argc; i++) {
		char *line = NULL;
		AcceptVerdict v;

		if (!parse_address(argv[i], FALSE, pm_domain, addr, &e)) {
			pg_error(env->qid, "submit: recipient <%s>: %s", argv[i], e->message);
			g_error_free(e);
			return EX_DATAERR;
		}
		v = accept_rcpt(site, addr, FALSE, &line);
		if (v != ACCEPT_OK) {
			pg_error(env->qid, "submit: refused: %s", line);
			g_free(line);
			return accept_exit_code(v);
		}
		g_free(line);
		queue_envelope_add_rcpt(env, addr, 0, NULL);
	}
	return EX_OK;
}

/* Standard input through the DATA scanner into body, as SMTP would carry it
 * (CR LF, dot-stuffed, then the end of data); *end when it ended. */
static int
read_message(const char *qid, SmtpData *data, QueueBody *body, gboolean *end)
{
	GByteArray *wire = g_byte_array_new(), *out = g_byte_array_new();
	Wire w = { TRUE, FALSE, FALSE };
	char buf[65536];
	GError *e = NULL;
	int rc = EX_OK;

	for (;;) {
		ssize_t n = read(STDIN_FILENO, buf, sizeof buf);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			pg_error(qid, "submit: cannot read standard input: %s", g_strerror(errno));
			rc = EX_IOERR;
			break;
		}
		g_byte_array_set_size(wire, 0);
		if (n == 0) {
			/* The end: close the last line, then SMTP's end of data. */
			if (w.any && !w.at_start)
				wire_put(&w, "\n", 1, wire);
			g_byte_array_append(wire, (const guint8 *)".\r\n", 3);
		} else {
			wire_put(&w, buf, (gsize)n, wire);
		}
		g_byte_array_set_size(out, 0);
		smtp_data_feed(data, (const char *)wire->data, wire->len, out, end);
		if (smtp_data_verdict(data) == SMTP_DATA_OK &&
		    !queue_body_append(body, out->data, out->len, &e)) {
			pg_error(qid, "submit: %s", e->message);
			g_clear_error(&e);
			rc = EX_IOERR;
			break;
		}
		if (n == 0)
			break;
	}
	g_byte_array_unref(wire);
	g_byte_array_unref(out);
	return rc;
}

int
submit_main(const char *config_file, int argc, char **argv)
{
	char *sender = NULL;
	GOptionEntry entries[] = {
		{ "from", 'f', 0, G_OPTION_ARG_STRING, &sender,
		    "Envelope sender (\"\" or <> for the null sender)", "SENDER" },
		G_OPTION_ENTRY_NULL,
	};
	GOptionContext *oc = g_option_context_new("RCPT...");
	char *qid = NULL, *hdr;
	QueueEnvelope *env = NULL;
	QueueBody *body = NULL;
	SmtpData *data = NULL;
	Queue *queue = NULL;
	Site *site = NULL;
	GError *e = NULL;
	gboolean end = FALSE;
	const char *hostname;
	guint hops, hop_limit;
	int rc = EX_OK;

	g_option_context_add_main_entries(oc, entries, NULL);
	if (!g_option_context_parse(oc, &argc, &argv, &e)) {
		pg_error(NULL, "submit: %s", e->message);
		g_error_free(e);
		g_option_context_free(oc);
		return EX_USAGE;
	}
	g_option_context_free(oc);
	if (!sender || argc < 2) {
		pg_error(NULL, "submit: usage: postgate [-c FILE] submit -f SENDER RCPT...");
		g_free(sender);
		return EX_USAGE;
	}
	site = site_open_command(config_file, 0, NULL, NULL, &rc);
	if (!site)
		goto out;
	queue = queue_open(config_string(site->cfg, CONFIG_SITE_STATE_DIR), &e);
	if (!queue) {
		fprintf(stderr, "%s\n", e->message);
		rc = EX_CANTCREAT;
		goto out;
	}
	qid = queue_id_new();
	env = queue_envelope_new(qid);
	rc = envelope_fill(site, env, sender, argc, argv);
	if (rc != EX_OK)
		goto out;
	hostname = config_string(site->cfg, CONFIG_SMTPD_HOSTNAME);
	if (!*hostname)
		hostname = g_get_host_name();
	env->arrival = g_get_real_time() / G_USEC_PER_SEC;
	body = queue_body_new(queue, qid);
	hdr = accept_received(NULL, "local", hostname, "local", qid,
	    env->rcpts->len == 1 ? ((QueueRcpt *)env->rcpts->pdata[0])->address : NULL,
	    env->arrival);
	queue_body_append(body, hdr, strlen(hdr), NULL);
	g_free(hdr);
	data = smtp_data_new(config_int(site->cfg, CONFIG_SMTPD_MAX_MESSAGE_SIZE),
	    SMTPD_DATA_LINE_MAX);
	rc = read_message(qid, data, body, &end);
	if (rc != EX_OK)
		goto out;
	hops = smtp_data_received_count(data) + 1;
	hop_limit = (guint)config_int(site->cfg, CONFIG_SITE_HOP_LIMIT);
	if (!end || smtp_data_verdict(data) != SMTP_DATA_OK) {
		pg_error(qid, "submit: refused: %s", end ? smtp_data_reply(data) :
		    "the message did not end");
		rc = EX_DATAERR;
		goto out;
	}
	if (hops > hop_limit) {
		pg_error(qid, "submit: refused: %u hops, the limit is %u (a mail loop?)", hops,
		    hop_limit);
		rc = EX_DATAERR;
		goto out;
	}
	env->hops = hops;
	env->message_id = g_strdup(smtp_data_message_id(data));
	env->size = queue_body_size(body);
	if (!queue_commit(queue, env, body, &e)) {
		body = NULL;
		pg_error(qid, "submit: not queued: %s", e->message);
		rc = EX_TEMPFAIL;
		goto out;
	}
	body = NULL;
	hdr = env->message_id ? g_strescape(env->message_id, NULL) : NULL;
	pg_info(qid, "queued: from=<%s>, size=%" G_GINT64_FORMAT ", nrcpt=%u, client=local, "
	    "message-id=%s", env->sender, env->size, env->rcpts->len, hdr ? hdr : "none");
	g_free(hdr);
out:
	g_clear_error(&e);
	if (data)
		smtp_data_free(data);
	queue_body_discard(body);
	queue_envelope_free(env);
	queue_close(queue);
	site_close(site);
	g_free(qid);
	g_free(sender);
	return rc;
}
