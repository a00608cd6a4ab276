/* run.c - the scheduled batch (see run.h, run_int.h): `postgate run` and
 * `queue retry`, the lock, recovery, the steps in order, the summary. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sysexits.h>
#include <unistd.h>

#include "address.h"
#include "atomic_write.h"
#include "bundle.h"
#include "codepage.h"
#include "client/delivery.h"
#include "cli/dir_cmd.h"
#include "dir_route.h"
#include "dir_store.h"
#include "fault.h"
#include "keyfile.h"
#include "mime/mime_out.h"
#include "message.h"
#include "mime/mime_in.h"
#include "pg_log.h"
#include "queue/queue.h"
#include "run/run_int.h"
#include "site.h"
#include "sync_xml.h"
#include "mime/translit.h"
/* ------------------------------------------------------------- helpers */

PoCount *
rn_count_of(Run *run, const char *po)
{
	PoCount *c = g_hash_table_lookup(run->counts, po);

	if (!c) {
		c = g_new0(PoCount, 1);
		g_hash_table_insert(run->counts, g_strdup(po), c);
	}
	return c;
}

GBytes *
rn_key_of(Run *run, const char *po, GError **error)
{
	const PgConfigPostoffice *pc = config_postoffice_find(run->site->cfg, po);
	GBytes *key = g_hash_table_lookup(run->keys, po);

	if (key)
		return key;
	if (!pc) {
		g_set_error(error, SITE_ERROR, SITE_ERROR_CONFIG,
		    "postoffice %s has no [postoffice %s] group", po, po);
		return NULL;
	}
	key = keyfile_load(pc->key_file, error);
	if (key)
		g_hash_table_insert(run->keys, g_strdup(po), key);
	return key;
}

/* Write a recorded bundle into its postoffice's in/, then mark it written. */
gboolean
rn_bundle_deliver(Run *run, const char *po, guint64 seq, const char *name, GBytes *data,
    GError **error)
{
	const PgConfigPostoffice *pc = config_postoffice_find(run->site->cfg, po);
	char *in;
	gsize len;
	const void *p = g_bytes_get_data(data, &len);
	guint finished = 0;
	gboolean ok;

	if (!pc) {
		g_set_error(error, SITE_ERROR, SITE_ERROR_CONFIG,
		    "bundle %s is for %s, which has no [postoffice] group any more", name, po);
		return FALSE;
	}
	in = g_build_filename(pc->dir, "in", NULL);
	ok = atomic_write_file(in, name, p, len, 0640, error);
	g_free(in);
	if (!ok)
		return FALSE;
	if (!queue_bundle_written(run->q, po, seq, &finished, error))
		return FALSE;
	run->finished += finished;
	rn_count_of(run, po)->bundles++;
	pg_info(NULL, "run: bundle %s written to %s/in", name, pc->dir);
	return TRUE;
}

/* ------------------------------------------------------------- recovery */

/* Bundles an interrupted run recorded: the same bytes, the same name. */
static void
recover(Run *run)
{
	GError *e = NULL;
	GPtrArray *all = queue_bundles_unwritten(run->q, &e);

	if (!all) {
		pg_error(NULL, "run: %s", e->message);
		g_error_free(e);
		run->errors++;
		return;
	}
	for (guint i = 0; i < all->len; i++) {
		QueueBundle *b = all->pdata[i];

		pg_info(NULL, "run: writing %s again (recorded by an interrupted run)", b->name);
		if (!rn_bundle_deliver(run, b->po, b->seq, b->name, b->data, &e)) {
			pg_error(NULL, "run: bundle %s: %s", b->name, e->message);
			g_clear_error(&e);
			run->errors++;
		}
	}
	g_ptr_array_unref(all);
}

/* ------------------------------------------------------------------ main */

static void
print_smtp(const DeliveryStats *st)
{
	if (st->sent + st->deferred + st->failed + st->skipped == 0)
		return;
	printf("  SMTP: %u recipient%s sent, %u deferred, %u failed, %u not yet due; %u "
	    "session%s, %u message%s finished\n", st->sent, st->sent == 1 ? "" : "s",
	    st->deferred, st->failed, st->skipped, st->sessions, st->sessions == 1 ? "" : "s",
	    st->finished, st->finished == 1 ? "" : "s");
}

static void
print_reports(const ReportStats *st)
{
	if (st->delay_notices)
		printf("  delay notices: %u queued about %u recipient%s\n", st->delay_notices,
		    st->delayed, st->delayed == 1 ? "" : "s");
	if (st->receipts)
		printf("  receipts: %u queued about %u recipient%s\n", st->receipts,
		    st->receipted, st->receipted == 1 ? "" : "s");
	if (st->postmaster)
		printf("  postmaster told: %u held message%s\n", st->postmaster,
		    st->postmaster == 1 ? "" : "s");
	if (st->ndrs + st->dsns + st->unreported + st->held == 0)
		return;
	printf("  reports: %u non-delivery report%s queued about %u recipient%s, %u delivery "
	    "status notification%s about %u, %u with none asked for, %u held: report could not "
	    "be made\n", st->ndrs, st->ndrs == 1 ? "" : "s", st->reported,
	    st->reported == 1 ? "" : "s", st->dsns, st->dsns == 1 ? "" : "s", st->dsn_reported,
	    st->unreported, st->held);
}

/* The report step: the reports owed for what failed, queued (and a run then
 * bundles them like any message). */
static void
make_reports(Site *site, Queue *q, ReportStats *st)
{
	GError *e = NULL;

	if (!queue_sent_prune(q, g_get_real_time() / G_USEC_PER_SEC, NULL, &e)) {
		pg_error(NULL, "reports: %s", e->message);
		g_clear_error(&e);
		st->errors++;
	}
	if (!report_failed(site, q, st, &e)) {
		pg_error(NULL, "reports: %s", e->message);
		g_error_free(e);
		st->errors++;
	}
}

static void
summary(Run *run, guint messages)
{
	GList *pos = g_list_sort(g_hash_table_get_keys(run->counts), (GCompareFunc)strcmp);

	printf("postgate run: %u message%s looked at: %u recipients to postoffices, "
	    "%u for SMTP, %u held, %u messages finished%s\n", messages, messages == 1 ? "" : "s",
	    run->routed, run->pending_smtp, run->held, run->finished,
	    run->dry_run ? " (dry run: nothing changed)" : "");
	if (run->ingested || run->refused || run->dir_imports)
		printf("  from the postoffices: %u message%s queued, %u directory export%s "
		    "imported, %u bundle%s refused to bad/\n", run->ingested,
		    run->ingested == 1 ? "" : "s", run->dir_imports, run->dir_imports == 1 ? "" : "s",
		    run->refused, run->refused == 1 ? "" : "s");
	if (run->outbound)
		printf("  to the Internet: %u message%s translated and queued for SMTP\n",
		    run->outbound, run->outbound == 1 ? "" : "s");
	if (run->delivered)
		print_smtp(&run->smtp);
	print_reports(&run->reports);
	for (GList *l = pos; l; l = l->next) {
		PoCount *c = g_hash_table_lookup(run->counts, l->data);

		printf("  %s: %u cop%s in %u bundle%s\n", (char *)l->data, c->messages,
		    c->messages == 1 ? "y" : "ies", c->bundles, c->bundles == 1 ? "" : "s");
	}
	if (run->errors)
		printf("  %u error%s: see the log\n", run->errors, run->errors == 1 ? "" : "s");
	g_list_free(pos);
}

static int
take_lock(const char *state_dir, int *fd)
{
	char *path = g_build_filename(state_dir, "run.lock", NULL);

	*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (*fd < 0) {
		pg_error(NULL, "run: cannot open %s: %s", path, g_strerror(errno));
		g_free(path);
		return EX_CANTCREAT;
	}
	if (flock(*fd, LOCK_EX | LOCK_NB) != 0) {
		pg_error(NULL, "run: another postgate run is at work (%s is locked); "
		    "this one stops", path);
		g_free(path);
		return EX_TEMPFAIL;
	}
	g_free(path);
	return EX_OK;
}

/* What a run keeps from its configuration, and its tables, empty. */
static void
run_init(Run *run)
{
	const PgConfig *cfg = run->site->cfg;

	run->gateway_po = config_string(cfg, CONFIG_SITE_GATEWAY_PO);
	run->hop_limit = (guint)config_int(cfg, CONFIG_SITE_HOP_LIMIT);
	run->level = (int)config_int(cfg, CONFIG_SITE_BUNDLE_LEVEL);
	run->keys = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
	    (GDestroyNotify)g_bytes_unref);
	run->counts = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	run->builders = g_hash_table_new_full(g_str_hash, g_str_equal, NULL,
	    (GDestroyNotify)rn_builder_free);
	run->smtp_of = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	run->to_store = g_ptr_array_new();
	run->unstored = g_hash_table_new(g_str_hash, g_str_equal);
	run->hostname = config_string(cfg, CONFIG_SMTPD_HOSTNAME);
	if (!*run->hostname)
		run->hostname = g_get_host_name();
}

static void
run_clear(Run *run)
{
	g_clear_pointer(&run->builders, g_hash_table_unref);
	g_clear_pointer(&run->keys, g_hash_table_unref);
	g_clear_pointer(&run->counts, g_hash_table_unref);
	g_clear_pointer(&run->smtp_of, g_hash_table_unref);
	g_clear_pointer(&run->to_store, g_ptr_array_unref);
	g_clear_pointer(&run->unstored, g_hash_table_unref);
}

/* Route every message's new recipients, storing them 1000 messages at a time. */
/* The route step's transactions (a report translated, the postmaster
 * told, routes stored) are made durable a batch at a time: nothing leaves
 * the queue before fan_out_all, which comes after the batch's commit. */
static gboolean
batch_begin(Run *run)
{
	GError *e = NULL;

	if (queue_batch_begin(run->q, &e))
		return TRUE;
	pg_error(NULL, "run: %s", e->message);
	g_error_free(e);
	run->errors++;
	return FALSE;   /* each transaction commits by itself, then */
}

/* Commit the batch holding what all[from .. to) and all[grown ..] (the
 * reports it made) stored; if that fails, none of them is bundled now. */
static void
batch_commit(Run *run, GPtrArray *all, guint from, guint to, guint grown)
{
	GError *e = NULL;

	if (queue_batch_commit(run->q, &e))
		return;
	pg_error(NULL, "run: storing what routing did for %u messages: %s", to - from +
	    all->len - grown, e->message);
	g_error_free(e);
	run->errors++;
	for (guint i = from; i < all->len; i++)
		if (i < to || i >= grown)
			g_hash_table_add(run->unstored, ((QueueEnvelope *)all->pdata[i])->qid);
}

static void
route_all(Run *run, GPtrArray *all)
{
	guint from = 0, grown = all->len;
	gboolean batch = !run->dry_run && batch_begin(run);

	run->routing = all;
	for (guint i = 0; i < all->len; i++) {
		rn_route_message(run, all->pdata[i]);
		if (run->to_store->len >= 1000)
			rn_store_routes(run);
		if (batch && queue_batch_full(run->q)) {
			rn_store_routes(run);
			batch_commit(run, all, from, i + 1, grown);
			from = i + 1;
			grown = all->len;
			batch = batch_begin(run);
		}
		if (run->tty && !run->dry_run && (i + 1) % 1000 == 0)
			fprintf(stderr, "\rrouting: %u of %u messages", i + 1, all->len);
	}
	rn_store_routes(run);
	if (batch)
		batch_commit(run, all, from, all->len, grown);
	run->routing = NULL;
}

/* Fan every message out, write the bundles, remove what is finished. */
static void
fan_out_all(Run *run, GPtrArray *all)
{
	GHashTableIter it;
	gpointer v;
	GError *e = NULL;
	guint finished = 0;

	for (guint i = 0; i < all->len; i++) {
		rn_fan_out_message(run, all->pdata[i]);
		if (run->tty && (i + 1) % 1000 == 0)
			fprintf(stderr, "\rtranslating: %u of %u messages", i + 1, all->len);
	}
	if (run->tty && all->len >= 1000)
		fputc('\n', stderr);
	g_hash_table_iter_init(&it, run->builders);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		if (!rn_builder_flush(run, v, &e)) {
			pg_error(NULL, "run: bundle for %s: %s", ((Builder *)v)->po, e->message);
			g_clear_error(&e);
			run->errors++;
		}
	}
	if (queue_finish(run->q, &finished, &e)) {
		run->finished += finished;
	} else {
		pg_error(NULL, "run: %s", e->message);
		g_clear_error(&e);
		run->errors++;
	}
}

/* The reports this run's routing and delivery made, routed and bundled
 * in this run (a DSN for SMTP goes with the next delivery). */
static void
fan_out_reports(Run *run)
{
	GError *e = NULL;
	GPtrArray *all = queue_list(run->q, &e);

	if (!all || !dir_read_begin(run->site->dir, &e)) {
		pg_error(NULL, "run: reports: %s", e->message);
		g_clear_error(&e);
		run->errors++;
		if (all)
			g_ptr_array_unref(all);
		return;
	}
	route_all(run, all);
	fan_out_all(run, all);
	dir_read_end(run->site->dir);
	g_ptr_array_unref(all);
}

int
run_main(const char *config_file, int argc, char **argv)
{
	gboolean dry_run = FALSE, use_syslog = FALSE, no_delivery = FALSE;
	GOptionEntry entries[] = {
		{ "dry-run", 'n', 0, G_OPTION_ARG_NONE, &dry_run,
		    "Show where each recipient would go; change nothing", NULL },
		{ "no-delivery", 0, 0, G_OPTION_ARG_NONE, &no_delivery,
		    "Route, translate and bundle, but send nothing over SMTP", NULL },
		{ "syslog", 0, 0, G_OPTION_ARG_NONE, &use_syslog, "Log to syslog", NULL },
		G_OPTION_ENTRY_NULL,
	};
	GOptionContext *oc = g_option_context_new("");
	Run run = { 0 };
	GError *e = NULL;
	GPtrArray *all = NULL;
	int lock_fd = -1, rc = EX_OK;

	g_option_context_add_main_entries(oc, entries, NULL);
	if (!g_option_context_parse(oc, &argc, &argv, &e) || argc > 1) {
		pg_error(NULL, "run: %s", e ? e->message : "unexpected arguments");
		g_clear_error(&e);
		g_option_context_free(oc);
		return EX_USAGE;
	}
	g_option_context_free(oc);
	if (use_syslog)
		pg_log_init("postgate/run", TRUE);
	run.dry_run = dry_run;
	run.tty = isatty(STDOUT_FILENO);
	run.site = site_open_command(config_file, 0, NULL, NULL, &rc);
	if (!run.site)
		return rc;
	rc = take_lock(config_string(run.site->cfg, CONFIG_SITE_STATE_DIR), &lock_fd);
	if (rc != EX_OK)
		goto out;
	run.q = queue_open(config_string(run.site->cfg, CONFIG_SITE_STATE_DIR), &e);
	if (!run.q) {
		fprintf(stderr, "%s\n", e->message);
		rc = EX_CANTCREAT;
		goto out;
	}
	queue_set_sent_window(run.q, config_int(run.site->cfg, CONFIG_SITE_REPORT_WINDOW));
	run_init(&run);
	if (!run.dry_run) {
		recover(&run);
		rn_ingest(&run);
		/* What failed since the last run (queue retry, a crash). */
		make_reports(run.site, run.q, &run.reports);
	}
	all = queue_list(run.q, &e);
	if (!all) {
		pg_error(NULL, "run: %s", e->message);
		rc = EX_IOERR;
		goto out;
	}
	/* Route: one read snapshot of the directory for the whole batch. */
	if (!dir_read_begin(run.site->dir, &e)) {
		pg_error(NULL, "run: %s", e->message);
		rc = EX_TEMPFAIL;
		goto out;
	}
	route_all(&run, all);
	if (!run.dry_run)
		fan_out_all(&run, all);
	dir_read_end(run.site->dir);
	if (!run.dry_run && run.failed) {
		/* What routing failed reported before delivery, which sends DSNs. */
		make_reports(run.site, run.q, &run.reports);
		fan_out_reports(&run);
	}
	if (!run.dry_run && !no_delivery) {
		guint finished = run.smtp.finished;

		run.delivered = TRUE;
		if (!delivery_run(run.site, run.q, NULL, FALSE, &run.smtp, &e)) {
			pg_error(NULL, "run: SMTP delivery: %s", e->message);
			g_clear_error(&e);
			run.errors++;
		}
		run.finished += run.smtp.finished - finished;
		run.errors += run.smtp.errors;
		if (run.smtp.failed) {
			/* This run's failures reported, and the reports bundled now. */
			make_reports(run.site, run.q, &run.reports);
			fan_out_reports(&run);
		}
	}
	run.errors += run.reports.errors;
	summary(&run, all->len);
	if (run.errors)
		rc = EX_TEMPFAIL;
out:
	g_clear_error(&e);
	if (all)
		g_ptr_array_unref(all);
	run_clear(&run);
	queue_close(run.q);
	if (lock_fd >= 0)
		close(lock_fd);
	site_close(run.site);
	return rc;
}

int
run_retry(const char *config_file, const char *qid)
{
	Site *site;
	Queue *q = NULL;
	DeliveryStats st;
	ReportStats reports = { 0 };
	GError *e = NULL;
	int lock_fd = -1, rc;

	site = site_open_command(config_file, 0, NULL, NULL, &rc);
	if (!site)
		return rc;
	rc = take_lock(config_string(site->cfg, CONFIG_SITE_STATE_DIR), &lock_fd);
	if (rc != EX_OK)
		goto out;
	q = queue_open(config_string(site->cfg, CONFIG_SITE_STATE_DIR), &e);
	if (!q) {
		fprintf(stderr, "%s\n", e->message);
		rc = EX_CANTCREAT;
		goto out;
	}
	queue_set_sent_window(q, config_int(site->cfg, CONFIG_SITE_REPORT_WINDOW));
	if (qid) {
		QueueEnvelope *env = queue_get(q, qid, &e);

		if (!env) {
			fprintf(stderr, "postgate: queue retry: %s\n", e->message);
			rc = e->code == QUEUE_ERROR_NOT_FOUND ? EX_NOINPUT : EX_IOERR;
			goto out;
		}
		queue_envelope_free(env);
	}
	if (!delivery_run(site, q, qid, TRUE, &st, &e)) {
		pg_error(NULL, "queue retry: %s", e->message);
		rc = EX_TEMPFAIL;
		goto out;
	}
	/* Reports are queued at once; the next run bundles them. */
	if (st.failed)
		make_reports(site, q, &reports);
	if (st.errors || reports.errors)
		rc = EX_TEMPFAIL;
	if (st.sent + st.deferred + st.failed == 0)
		printf("postgate queue retry: nothing waits for SMTP delivery%s%s\n",
		    qid ? " in " : "", qid ? qid : "");
	else {
		printf("postgate queue retry:\n");
		print_smtp(&st);
		print_reports(&reports);
	}
out:
	g_clear_error(&e);
	queue_close(q);
	if (lock_fd >= 0)
		close(lock_fd);
	site_close(site);
	return rc;
}
