/* run_route.c - the batch run routes each new recipient with dir_route:
 * a postoffice, SMTP or held; lists expanded, duplicates noted (see
 * run_int.h). */
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
#include "report/report.h"
#include "run/run_int.h"
#include "site.h"
#include "sync_xml.h"
#include "mime/translit.h"
/* ------------------------------------------------------------- routing */

static QueueRcpt *
rcpt_append(QueueEnvelope *env, const char *address, const QueueRcpt *parent)
{
	QueueRcpt *r;

	queue_envelope_add_rcpt(env, address, parent->notify, parent->orcpt);
	r = env->rcpts->pdata[env->rcpts->len - 1];
	r->parent = (int)parent->idx;
	return r;
}

/* Route one recipient row; list leaves become rows of their own.  FALSE on
 * a directory failure (the row stays accepted for the next run). */
static gboolean
route_one(Run *run, QueueEnvelope *env, QueueRcpt *r, GHashTable *seen, guint depth)
{
	GError *e = NULL;
	DirRoute *dr = dir_route(run->site->dir, &run->site->ctx, r->address, &e);
	char *why;

	if (!dr) {
		if (e->domain == DIR_ERROR && e->code == DIR_ERROR_INVALID) {
			queue_rcpt_enter(r, QUEUE_ST_HELD, e->message);
			g_error_free(e);
			return TRUE;
		}
		pg_error(env->qid, "run: routing <%s>: %s", r->address, e->message);
		g_error_free(e);
		return FALSE;
	}
	switch (dr->kind) {
	case DIR_ROUTE_POSTOFFICE:
		g_free(r->legacy);
		r->legacy = g_strdup_printf("%s/%s", dr->postoffice, dr->mailbox);
		if (g_hash_table_contains(seen, r->legacy)) {
			queue_rcpt_enter(r, QUEUE_ST_DUPLICATE, "the same mailbox as another recipient");
			break;
		}
		g_hash_table_add(seen, g_strdup(r->legacy));
		g_free(r->po);
		r->po = g_strdup(dr->postoffice);
		queue_rcpt_enter(r, QUEUE_ST_ROUTED, NULL);
		break;
	case DIR_ROUTE_LIST:
		why = g_strdup_printf("list %s", dr->list);
		queue_rcpt_enter(r, QUEUE_ST_EXPANDED, why);
		g_free(why);
		for (guint i = 0; dr->leaves && i < dr->leaves->len; i++) {
			QueueRcpt *leaf;

			/* Leaves are mailboxes and customs: never lists again. */
			if (depth > 0)
				break;
			leaf = rcpt_append(env, dr->leaves->pdata[i], r);
			if (!route_one(run, env, leaf, seen, depth + 1)) {
				dir_route_free(dr);
				return FALSE;
			}
		}
		break;
	case DIR_ROUTE_SITE_LINK:
	case DIR_ROUTE_SMTP:
		if (g_hash_table_contains(seen, dr->address)) {
			queue_rcpt_enter(r, QUEUE_ST_DUPLICATE, "the same address as another recipient");
			break;
		}
		g_hash_table_add(seen, g_strdup(dr->address));
		g_free(r->via);
		r->via = dr->kind == DIR_ROUTE_SMTP ? g_strdup("smtp") :
		    g_strdup_printf("site-link %s", dr->site);
		g_free(r->rcpt_to);
		r->rcpt_to = g_strdup(dr->address);
		queue_rcpt_enter(r, QUEUE_ST_SMTP_PENDING, NULL);
		break;
	case DIR_ROUTE_UNKNOWN:
		/* Accepted, then deleted: an Internet sender gets a DSN. */
		if (g_strcmp0(env->format, "mime") == 0 && *env->sender)
			queue_rcpt_enter(r, QUEUE_ST_FAILED, QUEUE_UNKNOWN_PREFIX);
		else
			queue_rcpt_enter(r, QUEUE_ST_HELD, QUEUE_UNKNOWN_PREFIX);
		break;
	case DIR_ROUTE_ERROR:
	default:
		queue_rcpt_enter(r, QUEUE_ST_HELD, dr->reason);
		break;
	}
	dir_route_free(dr);
	return TRUE;
}

static const char *
route_text(const QueueRcpt *r, char *buf, gsize size)
{
	if (r->state == QUEUE_ST_ROUTED)
		g_snprintf(buf, size, "postoffice %s as %s", r->po, r->legacy);
	else if (r->state == QUEUE_ST_SMTP_PENDING)
		g_snprintf(buf, size, "%s <%s>", r->via, r->rcpt_to);
	else
		g_snprintf(buf, size, "%s%s%s", queue_state_name(r->state), r->reason ? ": " : "",
		    r->reason ? r->reason : "");
	return buf;
}

/* A legacy report about the copy of an Internet message the gateway wrote
 * becomes a DSN, routed in this pass; an Internet report about a legacy
 * message's copy a legacy report; TRUE when env needs no routing of its own. */
static gboolean
translated(Run *run, QueueEnvelope *env)
{
	QueueEnvelope *dsn = NULL;
	ReportTranslation res;

	if (run->dry_run)
		return FALSE;
	if (!*env->sender && env->report_class == 0 && g_strcmp0(env->format, "mime") == 0)
		res = report_inbound(run->site, run->q, env, &dsn, &run->reports);
	else if (env->report_class != 0 && g_strcmp0(env->format, "legacy") == 0)
		res = report_translate(run->site, run->q, env, &dsn, &run->reports);
	else
		return FALSE;
	if (res == REPORT_NOT_OURS)
		return FALSE;
	if (res == REPORT_LATER)
		run->errors++;
	/* Routed (a DSN) and bundled (either) in this same pass, like any
	 * message listed. */
	if (dsn && run->routing)
		g_ptr_array_add(run->routing, dsn);
	else
		queue_envelope_free(dsn);
	return TRUE;
}

gboolean
rn_over_hop_limit(const Run *run, const QueueEnvelope *env, guint *hops)
{
	/* A legacy message's trace lists the nodes before this gateway; an
	 * Internet message's Received: fields count the listener's own. */
	*hops = env->hops + (g_strcmp0(env->format, "legacy") == 0 ? 1 : 0);
	if (g_strcmp0(env->protocol, "report") == 0 && !env->origin)
		return FALSE;
	return *hops > run->hop_limit;
}

/* env crossed too many nodes: its accepted rows fail (a message: its
 * sender gets a report) or are held, the postmaster told once (a report,
 * or a message from <>: no report is made about those). */
static void
stop_looped(Run *run, QueueEnvelope *env, guint hops)
{
	gboolean report = !*env->sender || env->report_class != 0;
	QueueState to = report ? QUEUE_ST_HELD : QUEUE_ST_FAILED;
	char *why = g_strdup_printf(QUEUE_LOOP_PREFIX "%u hops, the limit is %u (a mail loop?)",
	    hops, run->hop_limit);

	for (guint i = 0; i < env->rcpts->len; i++) {
		QueueRcpt *r = env->rcpts->pdata[i];

		if (r->state != QUEUE_ST_ACCEPTED)
			continue;
		queue_rcpt_enter(r, to, why);
		if (report)
			run->held++;
		else
			run->failed++;
	}
	pg_warn(env->qid, "%s: %s", queue_state_name(to), why);
	if (run->dry_run)
		printf("%s: %s: %s\n", env->qid, queue_state_name(to), why);
	else if (report) {
		QueueEnvelope *note = NULL;

		report_tell_postmaster(run->site, run->q, env, why, &note, &run->reports);
		if (note && run->routing)
			g_ptr_array_add(run->routing, note);   /* bundled in this pass */
		else
			queue_envelope_free(note);
	}
	else
		g_ptr_array_add(run->to_store, env);
	g_free(why);
}

void
rn_route_message(Run *run, QueueEnvelope *env)
{
	GHashTable *seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	guint n = env->rcpts->len;
	GArray *fresh = g_array_sized_new(FALSE, TRUE, sizeof(gboolean), n);
	gboolean any = FALSE, ok = TRUE;
	char buf[600];
	guint hops;

	/* A report that crossed too many nodes is held before it is translated. */
	if (rn_over_hop_limit(run, env, &hops)) {
		for (guint i = 0; i < n; i++)
			if (((QueueRcpt *)env->rcpts->pdata[i])->state == QUEUE_ST_ACCEPTED) {
				stop_looped(run, env, hops);
				break;
			}
		g_hash_table_unref(seen);
		g_array_unref(fresh);
		return;
	}
	if (translated(run, env)) {
		g_hash_table_unref(seen);
		g_array_unref(fresh);
		return;
	}
	g_array_set_size(fresh, n);   /* which rows this run routes: all FALSE */
	/* What earlier runs settled counts as seen. */
	for (guint i = 0; i < n; i++) {
		QueueRcpt *r = env->rcpts->pdata[i];

		if (r->legacy && r->state != QUEUE_ST_DUPLICATE)
			g_hash_table_add(seen, g_strdup(r->legacy));
		if (r->rcpt_to)
			g_hash_table_add(seen, g_strdup(r->rcpt_to));
	}
	for (guint i = 0; ok && i < n; i++) {
		QueueRcpt *r = env->rcpts->pdata[i];

		if (r->state != QUEUE_ST_ACCEPTED)
			continue;
		g_array_index(fresh, gboolean, i) = TRUE;
		any = TRUE;
		ok = route_one(run, env, r, seen, 0);
	}
	g_hash_table_unref(seen);
	if (!any || !ok) {
		if (!ok)
			run->errors++;   /* nothing stored: the next run tries again */
		g_array_unref(fresh);
		return;
	}
	for (guint i = 0; i < env->rcpts->len; i++) {
		QueueRcpt *r = env->rcpts->pdata[i];

		if (i < n && !g_array_index(fresh, gboolean, i))
			continue;   /* settled by an earlier run */
		if (i >= n || r->state != QUEUE_ST_ACCEPTED) {
			if (run->dry_run)
				printf("%s: <%s> -> %s\n", env->qid, r->address,
				    route_text(r, buf, sizeof buf));
			else
				pg_info(env->qid, "to=<%s>: %s", r->address,
				    route_text(r, buf, sizeof buf));
		}
		if (r->state == QUEUE_ST_HELD)
			run->held++;
		else if (r->state == QUEUE_ST_SMTP_PENDING)
			run->pending_smtp++;
		else if (r->state == QUEUE_ST_ROUTED)
			run->routed++;
		else if (r->state == QUEUE_ST_FAILED)
			run->failed++;
	}
	g_array_unref(fresh);
	if (!run->dry_run)
		g_ptr_array_add(run->to_store, env);
}

/* The routes of many messages in one commit: routing is idempotent (rows
 * still accepted are routed again next time), so a crash costs nothing. */
void
rn_store_routes(Run *run)
{
	GError *e = NULL;

	if (!queue_set_routes_many(run->q, run->to_store, &e)) {
		pg_error(NULL, "run: storing the routes of %u messages: %s", run->to_store->len,
		    e->message);
		g_error_free(e);
		run->errors++;
		/* Nothing of them is stored: they wait for the next run, and must
		 * not be bundled now (their rows in the queue say accepted). */
		for (guint i = 0; i < run->to_store->len; i++)
			g_hash_table_add(run->unstored,
			    ((QueueEnvelope *)run->to_store->pdata[i])->qid);
	}
	g_ptr_array_set_size(run->to_store, 0);
}
