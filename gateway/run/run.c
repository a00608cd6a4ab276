/* run.c - the scheduled batch (see run.h). */
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
#include "run/run.h"
#include "site.h"
#include "sync_xml.h"
#include "mime/translit.h"

/* What one destination postoffice got in this run. */
typedef struct {
	guint messages;         /* copies */
	guint bundles;
} PoCount;

/* The bundle being filled for one postoffice. */
typedef struct {
	char *po;
	Bundle *b;
	GArray *items;          /* QueueItem: the recipient rows it carries */
	GPtrArray *qids;        /* char *: owners of the items' qid pointers */
	gsize bytes;            /* encoded messages so far */
} Builder;

typedef struct {
	Site *site;
	Queue *q;
	const char *gateway_po;
	guint hop_limit;
	int level;
	gboolean dry_run;
	gboolean tty;
	GHashTable *keys;       /* NET/PO -> GBytes */
	GHashTable *counts;     /* NET/PO -> PoCount */
	GHashTable *builders;   /* NET/PO -> Builder */
	guint routed, held, pending_smtp, errors, finished;
	gboolean delivered;     /* the SMTP client ran */
	DeliveryStats smtp;
	guint ingested, refused, dir_imports, outbound;
	const char *hostname;
	GPtrArray *to_store;    /* QueueEnvelope * routed, not yet stored */
	GHashTable *unstored;   /* qids whose routes could not be stored */
	GHashTable *smtp_of;    /* legacy address -> its SMTP address or NULL (one message) */
} Run;

/* ------------------------------------------------------------- helpers */

static PoCount *
count_of(Run *run, const char *po)
{
	PoCount *c = g_hash_table_lookup(run->counts, po);

	if (!c) {
		c = g_new0(PoCount, 1);
		g_hash_table_insert(run->counts, g_strdup(po), c);
	}
	return c;
}

static void
set_state(QueueRcpt *r, const char *state, const char *reason)
{
	g_free(r->state);
	r->state = g_strdup(state);
	g_free(r->reason);
	r->reason = g_strdup(reason);
}

static GBytes *
key_of(Run *run, const char *po, GError **error)
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
static gboolean
bundle_deliver(Run *run, const char *po, guint64 seq, const char *name, GBytes *data,
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
	count_of(run, po)->bundles++;
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
		if (!bundle_deliver(run, b->po, b->seq, b->name, b->data, &e)) {
			pg_error(NULL, "run: bundle %s: %s", b->name, e->message);
			g_clear_error(&e);
			run->errors++;
		}
	}
	g_ptr_array_unref(all);
}

/* ------------------------------------------------------------- ingest */

/* What became of one bundle of a postoffice's out/. */
typedef enum {
	INGEST_DONE,            /* applied, dropped as applied before, or set aside in bad/ */
	INGEST_LATER,           /* left in out/: a fault here, not of the bundle; the next run */
} IngestResult;

/* Whether e says that the bundle itself is wrong (its format, its
 * authenticity, what an entry holds: it can never apply) rather than that
 * reading or applying it failed here (a permission, the disk, a busy
 * database: it may next time). */
static gboolean
bundle_at_fault(const GError *e)
{
	if (e->domain == BUNDLE_ERROR)
		return e->code != BUNDLE_ERROR_IO;
	if (e->domain == MSG_ERROR)
		return TRUE;
	if (e->domain == SYNC_ERROR)
		return e->code != SYNC_ERROR_IO;
	if (e->domain == DIR_ERROR)
		return e->code == DIR_ERROR_CLASH || e->code == DIR_ERROR_INVALID ||
		    e->code == DIR_ERROR_NOT_OURS;
	return FALSE;
}

/* A bundle that can never be applied goes to bad/ beside NAME.why (the
 * .why first, then the rename, then both directories synced; an earlier
 * refusal of the same name is never overwritten: NAME.1, NAME.2, ...), as
 * docs/bundle-format.md 13.3 says: never deleted unread, never blocking the
 * ones after it.  FALSE when it cannot be moved: it stays in out/. */
static gboolean
refuse(Run *run, const PgConfigPostoffice *pc, const char *name, const char *why)
{
	char *out = g_build_filename(pc->dir, "out", NULL);
	char *from = g_build_filename(out, name, NULL);
	char *bad = g_build_filename(pc->dir, "bad", NULL);
	/* Keep room for ".NAME.why.tmp" within a file name's 255 bytes. */
	char *target = g_strndup(name, 200), *to, *why_name, *text;
	GError *e = NULL;
	gboolean ok;

	pg_error(NULL, "run: %s refused: %s", from, why);
	if (g_mkdir_with_parents(bad, 0750) != 0) {
		g_set_error(&e, G_FILE_ERROR, g_file_error_from_errno(errno),
		    "cannot create %s: %s", bad, g_strerror(errno));
		ok = FALSE;
		to = why_name = text = NULL;
		goto out;
	}
	for (int i = 1;; i++) {
		to = g_build_filename(bad, target, NULL);
		if (!g_file_test(to, G_FILE_TEST_EXISTS))
			break;
		g_free(to);
		g_free(target);
		target = g_strdup_printf("%.200s.%d", name, i);
	}
	why_name = g_strdup_printf("%s.why", target);
	text = strlen(name) > 200 ? g_strdup_printf("%s\n(out/ name: %s)\n", why, name) :
	    g_strdup_printf("%s\n", why);
	ok = atomic_write_file(bad, why_name, text, strlen(text), 0640, &e);
	if (ok && rename(from, to) != 0) {
		g_set_error(&e, G_FILE_ERROR, g_file_error_from_errno(errno),
		    "rename %s to %s: %s", from, to, g_strerror(errno));
		ok = FALSE;
	}
	ok = ok && fsync_dir(bad, &e) && fsync_dir(out, &e);
out:
	if (ok) {
		fault_step("move to bad");
		run->refused++;
	} else {
		pg_error(NULL, "run: cannot set %s aside in %s (it stays in out/): %s", name,
		    bad, e->message);
		g_error_free(e);
		run->errors++;
	}
	g_free(out);
	g_free(from);
	g_free(bad);
	g_free(to);
	g_free(target);
	g_free(why_name);
	g_free(text);
	return ok;
}

/* A bundle not applied now: it stays in out/ for the next run, which
 * exits 75 (EX_TEMPFAIL) so that the timer retries. */
static IngestResult
later(Run *run, const char *path, const char *why)
{
	pg_error(NULL, "run: %s left in out/ for the next run: %s", path, why);
	run->errors++;
	return INGEST_LATER;
}

/* The queue envelope of a legacy message from a postoffice: its responsible
 * recipients only (one that is not responsible here is delivered elsewhere,
 * never again by the hub). */
static QueueEnvelope *
legacy_envelope(const LegacyMessage *m, const char *origin, const char *po)
{
	char *qid = queue_id_new();
	QueueEnvelope *env = queue_envelope_new(qid);

	g_free(qid);
	g_free(env->sender);
	/* A report has the null sender, as it would in SMTP. */
	env->sender = g_strdup(m->class == MSG_CLASS_NORMAL ? m->originator.addr : "");
	g_free(env->client);
	env->client = g_strdup(po);
	g_free(env->protocol);
	env->protocol = g_strdup("legacy");
	env->format = g_strdup("legacy");
	env->origin = g_strdup(origin);
	env->arrival = g_get_real_time() / G_USEC_PER_SEC;
	env->hops = m->hops->len;
	env->message_id = g_strdup(m->id);
	for (guint i = 0; i < m->recipients->len; i++) {
		const MsgRecipient *r = m->recipients->pdata[i];
		guint notify = (m->requests & MSG_REQ_RECEIPT ? QUEUE_NOTIFY_SUCCESS : 0) |
		    (m->requests & MSG_REQ_NO_NDR ? QUEUE_NOTIFY_NEVER : QUEUE_NOTIFY_FAILURE);
		QueueRcpt *q;

		queue_envelope_add_rcpt(env, r->addr, notify, NULL);
		if (r->responsible)
			continue;
		/* Responsible elsewhere: never delivered or bundled again, but
		 * known, so that a list this message also names does not give
		 * the same person a second copy. */
		q = env->rcpts->pdata[env->rcpts->len - 1];
		g_free(q->state);
		q->state = g_strdup("done");
		q->reason = g_strdup("responsible elsewhere");
		if (g_str_has_prefix(r->addr, "SMTP:"))
			q->rcpt_to = g_strdup(r->addr + 5);
		else
			q->legacy = g_strdup(r->addr);
	}
	return env;
}

/* The directory entries of a bundle, imported before any of its messages
 * is queued (each import is whole or nothing, and idempotent: a bundle
 * begun again imports them again).  FALSE with *e when one fails. */
static gboolean
import_directories(Run *run, const PgConfigPostoffice *pc, const Bundle *b,
    const char *origin, guint *imported, GError **e)
{
	for (guint i = 0; i < b->entries->len; i++) {
		BundleEntry *en = b->entries->pdata[i];
		DirImportStats stats = { 0 };
		gsize n;
		const char *p = g_bytes_get_data(en->data, &n);
		char *what;
		gboolean ok;

		if (en->kind != BUNDLE_ENTRY_DIRECTORY)
			continue;
		/* The postoffice's users: its own export, nothing else. */
		what = g_strdup_printf("%s entry %u", origin, i + 1);
		ok = dir_cmd_import_memory(run->site, what, p, n, pc->name, &stats, e);
		if (ok) {
			pg_info(NULL, "run: %s: directory: %u added, %u changed, %u deleted",
			    what, stats.added, stats.changed, stats.deleted);
			(*imported)++;
		} else {
			g_prefix_error(e, "directory export %s: ", bundle_at_fault(*e) ?
			    "refused" : "not imported");
		}
		g_free(what);
		if (!ok)
			return FALSE;
	}
	return TRUE;
}

/* g_bytes_unref, for arrays that hold NULL too. */
static void
bytes_unref(gpointer b)
{
	if (b)
		g_bytes_unref(b);
}

/* One bundle of pc's out/: verified, checked against the ledger, and then
 * applied whole: its directory entries imported, its messages queued in
 * commits of bounded size (queue_ingest) of which the last records it
 * applied; only then is the file removed.  A bundle at fault goes to bad/;
 * any other failure leaves it in out/ (INGEST_LATER), and a bundle begun
 * goes on where it stopped, so nothing of it is lost or queued twice. */
static IngestResult
ingest_bundle(Run *run, const PgConfigPostoffice *pc, GBytes *key, const char *name)
{
	char *path = g_build_filename(pc->dir, "out", name, NULL);
	char *origin = NULL, *why = NULL;
	GPtrArray *envs = g_ptr_array_new_with_free_func((GDestroyNotify)queue_envelope_free);
	GPtrArray *bodies = g_ptr_array_new_with_free_func(bytes_unref);
	IngestResult res = INGEST_DONE;
	GError *e = NULL;
	guint first = 0, done = 0, imported = 0;
	Bundle *b;

	b = bundle_read_file(path, key, &e);
	if (!b) {
		if (g_error_matches(e, BUNDLE_ERROR, BUNDLE_ERROR_IO) &&
		    !g_file_test(path, G_FILE_TEST_EXISTS))
			goto out;   /* gone meanwhile */
		if (bundle_at_fault(e))
			res = refuse(run, pc, name, e->message) ? INGEST_DONE : INGEST_LATER;
		else
			res = later(run, path, e->message);
		goto out;
	}
	if (strcmp(b->source, pc->name) != 0 || strcmp(b->dest, run->gateway_po) != 0) {
		why = g_strdup_printf("a bundle from %s to %s has no place in %s's out/",
		    b->source, b->dest, pc->name);
		goto set_aside;
	}
	switch (queue_ledger_check(run->q, pc->name, b->seq, b->hmac, sizeof b->hmac, &first,
	    &e)) {
	case QUEUE_LEDGER_SAME:
		pg_info(NULL, "run: %s was applied before; removed", name);
		if (unlink(path) != 0)
			pg_warn(NULL, "run: cannot remove %s: %s", path, g_strerror(errno));
		goto out;
	case QUEUE_LEDGER_OTHER:
		why = g_strdup_printf("sequence number %" G_GUINT64_FORMAT " from %s was applied "
		    "before with other contents: a replay", b->seq, pc->name);
		goto set_aside;
	case QUEUE_LEDGER_ERROR:
		res = later(run, path, e->message);
		goto out;
	case QUEUE_LEDGER_PARTIAL:
		/* Its directory entries came before its first commit. */
		pg_info(NULL, "run: %s: going on from entry %u of %u (begun by an earlier run)",
		    name, first + 1, b->entries->len);
		break;
	case QUEUE_LEDGER_NEW:
		break;
	}
	origin = g_strdup_printf("%s#%" G_GUINT64_FORMAT, pc->name, b->seq);
	if (first == 0 && !import_directories(run, pc, b, origin, &imported, &e)) {
		if (!bundle_at_fault(e)) {
			res = later(run, path, e->message);
			goto out;
		}
		why = g_strdup(e->message);
		goto set_aside;
	}
	/* Every entry keeps its place (a directory entry, or one queued by an
	 * earlier run, as NULL), so that queue_ingest records how far it got. */
	for (guint i = 0; i < b->entries->len; i++) {
		BundleEntry *en = b->entries->pdata[i];
		LegacyMessage *m;

		if (en->kind == BUNDLE_ENTRY_DIRECTORY || i < first) {
			g_ptr_array_add(envs, NULL);
			g_ptr_array_add(bodies, NULL);
			continue;
		}
		m = bundle_message(b, i, &e);
		if (!m) {
			/* bundle_read_file decoded every entry already. */
			why = g_strdup_printf("entry %u: %s", i + 1, e->message);
			goto set_aside;
		}
		if (m->class != MSG_CLASS_NORMAL)
			pg_info(NULL, "run: %s entry %u is a %s: held until reports are "
			    "translated", origin, i + 1, msg_class_name(m->class));
		g_ptr_array_add(envs, legacy_envelope(m, origin, pc->name));
		g_ptr_array_add(bodies, g_bytes_ref(en->data));
		msg_free(m);
	}
	if (!queue_ingest(run->q, pc->name, b->seq, b->hmac, sizeof b->hmac, first, envs, bodies,
	    &done, &e))
		res = later(run, path, e->message);
	run->dir_imports += imported;
	for (guint i = first; i < done; i++) {
		const QueueEnvelope *env = envs->pdata[i];

		if (!env)
			continue;
		pg_info(env->qid, "queued: from=<%s>, nrcpt=%u, origin=%s", env->sender,
		    env->rcpts->len, origin);
		run->ingested++;
	}
	/* After the commit: a crash before this finds it applied next time. */
	if (res == INGEST_DONE && unlink(path) != 0)
		pg_warn(NULL, "run: cannot remove %s: %s", path, g_strerror(errno));
	goto out;
set_aside:
	res = refuse(run, pc, name, why) ? INGEST_DONE : INGEST_LATER;
out:
	g_clear_error(&e);
	if (b)
		bundle_free(b);
	g_ptr_array_unref(envs);
	g_ptr_array_unref(bodies);
	g_free(origin);
	g_free(why);
	g_free(path);
	return res;
}

static int
cmp_name(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every postoffice's out/, in name order (sequence order per source). */
static void
ingest(Run *run)
{
	for (guint i = 0; i < config_postoffice_count(run->site->cfg); i++) {
		const PgConfigPostoffice *pc = config_postoffice(run->site->cfg, i);
		char *out = g_build_filename(pc->dir, "out", NULL);
		GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
		GError *e = NULL;
		GBytes *key;
		GDir *d;
		const char *n;

		d = g_dir_open(out, 0, &e);
		if (!d) {
			pg_error(NULL, "run: %s", e->message);
			g_clear_error(&e);
			run->errors++;
			goto next;
		}
		while ((n = g_dir_read_name(d)) != NULL)
			if (n[0] != '.' && g_str_has_suffix(n, BUNDLE_SUFFIX))
				g_ptr_array_add(names, g_strdup(n));
		g_dir_close(d);
		if (names->len == 0)
			goto next;
		g_ptr_array_sort(names, cmp_name);
		key = key_of(run, pc->name, &e);
		if (!key) {
			pg_error(NULL, "run: %s: %s", pc->name, e->message);
			g_clear_error(&e);
			run->errors++;
			goto next;
		}
		/* In order: a bundle left for the next run holds back the ones
		 * after it, so that they still apply in sequence. */
		for (guint j = 0; j < names->len; j++)
			if (ingest_bundle(run, pc, key, names->pdata[j]) == INGEST_LATER)
				break;
next:
		g_ptr_array_unref(names);
		g_free(out);
	}
}

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
			set_state(r, "held", e->message);
			g_error_free(e);
			return TRUE;
		}
		pg_error(env->qid, "run: routing <%s>: %s", r->address, e->message);
		g_error_free(e);
		return FALSE;
	}
	switch (dr->kind) {
	case ROUTE_POSTOFFICE:
		g_free(r->legacy);
		r->legacy = g_strdup_printf("%s/%s", dr->postoffice, dr->mailbox);
		if (g_hash_table_contains(seen, r->legacy)) {
			set_state(r, "duplicate", "the same mailbox as another recipient");
			break;
		}
		g_hash_table_add(seen, g_strdup(r->legacy));
		g_free(r->po);
		r->po = g_strdup(dr->postoffice);
		set_state(r, "routed", NULL);
		break;
	case ROUTE_LIST:
		why = g_strdup_printf("list %s", dr->list);
		set_state(r, "expanded", why);
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
	case ROUTE_SITE_LINK:
	case ROUTE_SMTP:
		if (g_hash_table_contains(seen, dr->address)) {
			set_state(r, "duplicate", "the same address as another recipient");
			break;
		}
		g_hash_table_add(seen, g_strdup(dr->address));
		g_free(r->via);
		r->via = dr->kind == ROUTE_SMTP ? g_strdup("smtp") :
		    g_strdup_printf("site-link %s", dr->site);
		g_free(r->rcpt_to);
		r->rcpt_to = g_strdup(dr->address);
		set_state(r, "smtp-pending", NULL);
		break;
	case ROUTE_UNKNOWN:
		set_state(r, "held", "no such recipient in the directory any more (report "
		    "translation not yet supported)");
		break;
	case ROUTE_ERROR:
	default:
		set_state(r, "held", dr->reason);
		break;
	}
	dir_route_free(dr);
	return TRUE;
}

static const char *
route_text(const QueueRcpt *r, char *buf, gsize size)
{
	if (strcmp(r->state, "routed") == 0)
		g_snprintf(buf, size, "postoffice %s as %s", r->po, r->legacy);
	else if (strcmp(r->state, "smtp-pending") == 0)
		g_snprintf(buf, size, "%s <%s>", r->via, r->rcpt_to);
	else
		g_snprintf(buf, size, "%s%s%s", r->state, r->reason ? ": " : "",
		    r->reason ? r->reason : "");
	return buf;
}

static void
route_message(Run *run, QueueEnvelope *env)
{
	GHashTable *seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	guint n = env->rcpts->len;
	GArray *fresh = g_array_sized_new(FALSE, TRUE, sizeof(gboolean), n);
	gboolean any = FALSE, ok = TRUE;
	char buf[600];

	g_array_set_size(fresh, n);   /* which rows this run routes: all FALSE */
	/* What earlier runs settled counts as seen. */
	for (guint i = 0; i < n; i++) {
		QueueRcpt *r = env->rcpts->pdata[i];

		if (r->legacy && strcmp(r->state, "duplicate") != 0)
			g_hash_table_add(seen, g_strdup(r->legacy));
		if (r->rcpt_to)
			g_hash_table_add(seen, g_strdup(r->rcpt_to));
	}
	for (guint i = 0; ok && i < n; i++) {
		QueueRcpt *r = env->rcpts->pdata[i];

		if (strcmp(r->state, "accepted") != 0)
			continue;
		g_array_index(fresh, gboolean, i) = TRUE;
		any = TRUE;
		if (!*env->sender) {
			/* Reports come with the null sender (issue: reports). */
			set_state(r, "held", "report translation not yet supported");
			continue;
		}
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
		if (i >= n || strcmp(r->state, "accepted") != 0) {
			if (run->dry_run)
				printf("%s: <%s> -> %s\n", env->qid, r->address,
				    route_text(r, buf, sizeof buf));
			else
				pg_info(env->qid, "to=<%s>: %s", r->address,
				    route_text(r, buf, sizeof buf));
		}
		if (strcmp(r->state, "held") == 0)
			run->held++;
		else if (strcmp(r->state, "smtp-pending") == 0)
			run->pending_smtp++;
		else if (strcmp(r->state, "routed") == 0)
			run->routed++;
	}
	g_array_unref(fresh);
	if (!run->dry_run)
		g_ptr_array_add(run->to_store, env);
}

/* The routes of many messages in one commit: routing is idempotent (rows
 * still accepted are routed again next time), so a crash costs nothing. */
static void
store_routes(Run *run)
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

/* ------------------------------------------------------------- bundling */

static void
builder_free(Builder *bd)
{
	if (!bd)
		return;
	g_free(bd->po);
	if (bd->b)
		bundle_free(bd->b);
	g_array_unref(bd->items);
	g_ptr_array_unref(bd->qids);
	g_free(bd);
}

static gboolean
builder_flush(Run *run, Builder *bd, GError **error)
{
	GBytes *key, *data;
	char *name;
	gboolean ok;

	if (!bd->b || bd->b->entries->len == 0)
		return TRUE;
	key = key_of(run, bd->po, error);
	if (!key)
		return FALSE;
	data = bundle_encode(bd->b, key, run->level, error);
	if (!data)
		return FALSE;
	name = bundle_file_name(run->gateway_po, bd->po, bd->b->seq);
	ok = queue_bundle_record(run->q, bd->po, bd->b->seq, name, data, bd->items, error) &&
	    bundle_deliver(run, bd->po, bd->b->seq, name, data, error);
	g_free(name);
	g_bytes_unref(data);
	g_clear_pointer(&bd->b, bundle_free);
	g_array_set_size(bd->items, 0);
	g_ptr_array_set_size(bd->qids, 0);
	bd->bytes = 0;
	return ok;
}

static Builder *
builder_for(Run *run, const char *po, GError **error)
{
	Builder *bd = g_hash_table_lookup(run->builders, po);
	guint64 seq;

	if (!bd) {
		bd = g_new0(Builder, 1);
		bd->po = g_strdup(po);
		bd->items = g_array_new(FALSE, FALSE, sizeof(QueueItem));
		bd->qids = g_ptr_array_new_with_free_func(g_free);
		g_hash_table_insert(run->builders, bd->po, bd);
	}
	if (!bd->b) {
		seq = queue_bundle_seq_next(run->q, po, error);
		if (seq == 0)
			return NULL;
		bd->b = bundle_new(run->gateway_po, po, seq);
	}
	return bd;
}

/* Whether the address of row r (or of the list it came from) is in To/Cc. */
static gboolean
shown(const QueueEnvelope *env, const QueueRcpt *r, GHashTable *displayed)
{
	char *key = g_strdup_printf("SMTP:%s", r->address);
	gboolean yes = g_hash_table_contains(displayed, key) ||
	    g_hash_table_contains(displayed, r->address);

	g_free(key);
	if (!yes && r->parent >= 0 && (guint)r->parent < env->rcpts->len)
		return shown(env, env->rcpts->pdata[r->parent], displayed);
	return yes;
}

/* To/Cc addresses of the directory's own mailboxes appear as their legacy
 * addresses, so that a legacy reply stays in the legacy network. */
static void
map_parties(Run *run, GPtrArray *parties)
{
	for (guint i = 0; i < parties->len; i++) {
		MsgParty *p = parties->pdata[i];
		DirRoute *dr;

		if (!g_str_has_prefix(p->addr, "SMTP:"))
			continue;
		dr = dir_route(run->site->dir, &run->site->ctx, p->addr + 5, NULL);
		if (dr && dr->kind == ROUTE_POSTOFFICE) {
			g_free(p->addr);
			p->addr = g_strdup_printf("%s/%s", dr->postoffice, dr->mailbox);
		}
		dir_route_free(dr);
	}
}

/* One legacy copy of env for recipient rows rows, as id. */
static LegacyMessage *
legacy_copy(Run *run, const QueueEnvelope *env, const LegacyMessage *content,
    GPtrArray *rows, const char *id)
{
	LegacyMessage *m = msg_copy(content);
	gboolean receipt = FALSE, never = TRUE;
	gboolean legacy = g_strcmp0(env->format, "legacy") == 0;

	g_free(m->id);
	m->id = g_strdup(id);
	/* The recipients are this copy's alone; a legacy message passing through
	 * (the gateway as a hub) keeps its originator, id and trace. */
	g_ptr_array_set_size(m->recipients, 0);
	if (!legacy) {
		m->class = MSG_CLASS_NORMAL;
		m->submit_time = env->arrival;
		if (m->date == 0)
			m->date = env->arrival;   /* no Date: field: when it arrived */
		g_free(m->originator.addr);
		m->originator.addr = g_strdup_printf("SMTP:%s", env->sender);
		g_free(m->originator.name);
		m->originator.name = g_strdup(content->from.addr &&
		    g_ascii_strcasecmp(content->from.addr + (g_str_has_prefix(content->from.addr,
		    "SMTP:") ? 5 : 0), env->sender) == 0 && content->from.name ?
		    content->from.name : "");
	}
	if (!m->from.addr || !*m->from.addr) {
		/* A From: that did not parse: the envelope sender, its name kept. */
		g_free(m->from.addr);
		m->from.addr = g_strdup(m->originator.addr);
	}
	for (guint i = 0; i < rows->len; i++) {
		const QueueRcpt *r = rows->pdata[i];

		msg_add_recipient(m, r->legacy, "", TRUE);
		receipt |= (r->notify & QUEUE_NOTIFY_SUCCESS) != 0;
		never &= (r->notify & QUEUE_NOTIFY_NEVER) != 0;
	}
	if (!legacy)
		m->requests = (receipt ? MSG_REQ_RECEIPT : 0) | (never ? MSG_REQ_NO_NDR : 0);
	msg_add_hop(m, run->gateway_po, legacy ? g_get_real_time() / G_USEC_PER_SEC :
	    env->arrival);
	return m;
}

static void
hold_rows(Run *run, QueueEnvelope *env, const char *po, const char *reason)
{
	GError *e = NULL;

	for (guint i = 0; i < env->rcpts->len; i++) {
		QueueRcpt *r = env->rcpts->pdata[i];

		if (strcmp(r->state, "routed") != 0 || (po && g_strcmp0(r->po, po) != 0))
			continue;
		set_state(r, "held", reason);
		run->held++;
		if (run->routed > 0)
			run->routed--;
	}
	pg_warn(env->qid, "held: %s", reason);
	if (!queue_set_routes(run->q, env, &e)) {
		pg_error(env->qid, "run: %s", e->message);
		g_error_free(e);
		run->errors++;
	}
}

/* Add one copy to po's bundle, flushing first when it is full. */
static gboolean
add_copy(Run *run, const char *po, LegacyMessage *m, const char *qid, GPtrArray *rows,
    GError **error)
{
	GByteArray *probe = g_byte_array_new();
	Builder *bd;
	gboolean ok;

	ok = msg_encode(m, probe, error);
	if (!ok) {
		g_byte_array_unref(probe);
		return FALSE;
	}
	bd = builder_for(run, po, error);
	if (bd && bd->bytes > 0 && bd->bytes + probe->len > RUN_BUNDLE_TARGET &&
	    !builder_flush(run, bd, error))
		bd = NULL;
	if (bd && !bd->b)
		bd = builder_for(run, po, error);
	if (!bd) {
		g_byte_array_unref(probe);
		return FALSE;
	}
	{
		GBytes *entry = g_byte_array_free_to_bytes(probe);

		bundle_add_entry(bd->b, BUNDLE_ENTRY_MESSAGE, entry);   /* takes its own ref */
		g_bytes_unref(entry);
	}
	bd->bytes += g_bytes_get_size(((BundleEntry *)bd->b->entries->pdata[bd->b->entries->len
	    - 1])->data);
	g_ptr_array_add(bd->qids, g_strdup(qid));
	for (guint i = 0; i < rows->len; i++) {
		QueueItem it = { bd->qids->pdata[bd->qids->len - 1],
		    ((QueueRcpt *)rows->pdata[i])->idx };

		g_array_append_val(bd->items, it);
	}
	count_of(run, po)->messages++;
	return TRUE;
}

/* Every copy of env for postoffice po: one for its shown recipients, one
 * each for its Bcc recipients. */
static gboolean
fan_out_po(Run *run, QueueEnvelope *env, const LegacyMessage *content, const char *po,
    GHashTable *displayed, GError **error)
{
	GPtrArray *shown_rows = g_ptr_array_new(), *one = g_ptr_array_new();
	GHashTable *shown_boxes = g_hash_table_new(g_str_hash, g_str_equal);
	gboolean ok = TRUE, legacy = g_strcmp0(env->format, "legacy") == 0;
	char *id;

	/* Shown or Bcc is a property of the mailbox, not of the row that
	 * happened to be routed first: a mailbox any of whose rows (a
	 * duplicate included) is in To/Cc, itself or through a list, is shown. */
	for (guint i = 0; i < env->rcpts->len; i++) {
		QueueRcpt *r = env->rcpts->pdata[i];

		if (r->legacy && shown(env, r, displayed))
			g_hash_table_add(shown_boxes, r->legacy);
	}
	for (guint i = 0; i < env->rcpts->len; i++) {
		QueueRcpt *r = env->rcpts->pdata[i];

		if (strcmp(r->state, "routed") != 0 || strcmp(r->po, po) != 0)
			continue;
		if (g_hash_table_contains(shown_boxes, r->legacy)) {
			g_ptr_array_add(shown_rows, r);
			continue;
		}
		/* A Bcc recipient: a copy naming no one else. */
		id = legacy ? g_strdup_printf("%.50s.%u", content->id, r->idx) :
		    g_strdup_printf("%s:%s.%u", run->gateway_po, env->qid, r->idx);
		g_ptr_array_set_size(one, 0);
		g_ptr_array_add(one, r);
		{
			LegacyMessage *m = legacy_copy(run, env, content, one, id);

			ok = add_copy(run, po, m, env->qid, one, error);
			msg_free(m);
		}
		g_free(id);
		if (!ok)
			break;
	}
	if (ok && shown_rows->len > 0) {
		LegacyMessage *m;

		id = legacy ? g_strdup(content->id) :
		    g_strdup_printf("%s:%s", run->gateway_po, env->qid);
		m = legacy_copy(run, env, content, shown_rows, id);
		ok = add_copy(run, po, m, env->qid, shown_rows, error);
		msg_free(m);
		g_free(id);
	}
	g_ptr_array_unref(shown_rows);
	g_ptr_array_unref(one);
	g_hash_table_unref(shown_boxes);
	return ok;
}

static void
add_displayed(GHashTable *displayed, GPtrArray *parties)
{
	for (guint i = 0; i < parties->len; i++) {
		MsgParty *p = parties->pdata[i];

		if (p->addr && *p->addr)
			g_hash_table_add(displayed, g_strdup(p->addr));
	}
}

/* One text of a legacy message from its codepage into another, by way of
 * UTF-8, transliterated and counted as an SMTP message's text is. */
static char *
convert_text(const char *from, const char *to, const char *text, gsize len, gsize *out_len,
    guint *translit, guint *lost, GError **error)
{
	char *utf8 = cp_to_utf8(from, text, len, error);
	char *out;

	if (!utf8)
		return NULL;
	out = translit_from_utf8(to, utf8, strlen(utf8), out_len, translit, lost, error);
	g_free(utf8);
	return out;
}

static gboolean
convert_party(const char *from, const char *to, MsgParty *p, guint *t, guint *l,
    GError **error)
{
	char *name;

	if (!p->name || !*p->name)
		return TRUE;
	name = convert_text(from, to, p->name, strlen(p->name), NULL, t, l, error);
	if (!name)
		return FALSE;
	g_free(p->name);
	p->name = name;
	return TRUE;
}

static gboolean
convert_codepage(const QueueEnvelope *env, LegacyMessage *m, const char *to, GError **error)
{
	const char *from = m->codepage;
	guint t = 0, l = 0;
	gsize n, out_len;
	const char *body;
	char *x;

	if (!convert_party(from, to, &m->originator, &t, &l, error) ||
	    !convert_party(from, to, &m->from, &t, &l, error))
		return FALSE;
	for (guint i = 0; i < m->to->len; i++)
		if (!convert_party(from, to, m->to->pdata[i], &t, &l, error))
			return FALSE;
	for (guint i = 0; i < m->cc->len; i++)
		if (!convert_party(from, to, m->cc->pdata[i], &t, &l, error))
			return FALSE;
	if (m->subject) {
		x = convert_text(from, to, m->subject, strlen(m->subject), NULL, &t, &l, error);
		if (!x)
			return FALSE;
		g_free(m->subject);
		m->subject = x;
	}
	for (guint i = 0; i < m->attachments->len; i++) {
		MsgAttachment *a = m->attachments->pdata[i];

		x = convert_text(from, to, a->name, strlen(a->name), NULL, &t, &l, error);
		if (!x)
			return FALSE;
		if (!msg_attachment_name_safe(x, strlen(x))) {
			g_free(x);
			continue;   /* keeps its old name: safe as it was */
		}
		g_free(a->name);
		a->name = x;
	}
	if (m->body && g_bytes_get_size(m->body) > 0) {
		body = g_bytes_get_data(m->body, &n);
		x = convert_text(from, to, body, n, &out_len, &t, &l, error);
		if (!x)
			return FALSE;
		g_bytes_unref(m->body);
		m->body = g_bytes_new_take(x, out_len);
	}
	g_free(m->codepage);
	m->codepage = g_strdup(to);
	if (t || l)
		pg_info(env->qid, "from %s to %s: %u characters transliterated, %u not "
		    "representable", from, to, t, l);
	return TRUE;
}

/* ------------------------------------------------------------- outbound */

/* The SMTP address a legacy address is reached by from the Internet: a
 * mailbox's or list's primary proxy, a custom recipient's target, the
 * address of an SMTP:local@domain; NULL when it has none. */
static char *
smtp_address(Run *run, const char *legacy)
{
	DirEntry *e;
	char *out = NULL;

	if (g_str_has_prefix(legacy, "SMTP:") || g_str_has_prefix(legacy, "smtp:"))
		return g_strdup(legacy + 5);
	e = dir_lookup(run->site->dir, legacy, NULL);
	if (!e)
		return NULL;
	if (e->type == DIR_CUSTOM && e->target)
		out = g_strdup(e->target + 5);
	for (guint i = 0; !out && i < e->proxies->len; i++) {
		const char *p = e->proxies->pdata[i];

		if (g_str_has_prefix(p, "SMTP:"))
			out = g_strdup(p + 5);
	}
	dir_entry_free(e);
	return out;
}

static const char *
address_of(const char *legacy, gpointer data)
{
	Run *run = data;
	gpointer v;

	if (g_hash_table_lookup_extended(run->smtp_of, legacy, NULL, &v))
		return v;
	v = smtp_address(run, legacy);
	g_hash_table_insert(run->smtp_of, g_strdup(legacy), v);
	return v;
}

/* A legacy message's SMTP recipients: one RFC 5322 message, queued as a
 * message of its own for the SMTP client, in the commit that marks the
 * legacy message's rows done. */
static void
translate_out(Run *run, QueueEnvelope *env, const LegacyMessage *content)
{
	GPtrArray *rows = g_ptr_array_new();
	MimeOutContext ctx = { 0 };
	QueueEnvelope *out = NULL;
	GBytes *mime = NULL;
	char *from = NULL, *qid, *why;
	GError *e = NULL;

	for (guint i = 0; i < env->rcpts->len; i++) {
		QueueRcpt *r = env->rcpts->pdata[i];

		if (strcmp(r->state, "smtp-pending") == 0)
			g_ptr_array_add(rows, r);
	}
	if (rows->len == 0)
		goto done;
	g_hash_table_remove_all(run->smtp_of);
	from = smtp_address(run, content->originator.addr);
	if (!from) {
		why = g_strdup_printf("the sender %s has no SMTP address in the directory",
		    content->originator.addr);
		goto hold;
	}
	ctx.from_address = from;
	ctx.hostname = run->hostname;
	ctx.source_po = env->client;
	ctx.address_of = address_of;
	ctx.data = run;
	ctx.now = env->arrival;
	mime = mime_out_build(content, &ctx, &e);
	if (!mime) {
		why = g_strdup_printf("cannot translate into Internet mail: %s", e->message);
		g_clear_error(&e);
		goto hold;
	}
	qid = queue_id_new();
	out = queue_envelope_new(qid);
	g_free(qid);
	g_free(out->sender);
	out->sender = g_strdup(from);
	g_free(out->client);
	out->client = g_strdup(env->client);
	g_free(out->protocol);
	out->protocol = g_strdup("legacy");
	out->format = g_strdup("mime");
	out->origin = g_strdup(env->origin);
	out->arrival = env->arrival;
	out->hops = content->hops->len + 1;
	out->message_id = mime_out_message_id(env->client, content->id, run->hostname);
	out->envid = g_strdup(content->id);
	out->ret = QUEUE_RET_HDRS;
	out->body = QUEUE_BODY_7BIT;
	out->size = (gint64)g_bytes_get_size(mime);
	for (guint i = 0; i < rows->len; i++) {
		QueueRcpt *r = rows->pdata[i], *n;
		char *orcpt = g_strdup_printf("rfc822;%s", r->rcpt_to);

		queue_envelope_add_rcpt(out, r->rcpt_to, r->notify, orcpt);
		g_free(orcpt);
		n = out->rcpts->pdata[out->rcpts->len - 1];
		set_state(n, "smtp-pending", NULL);
		n->via = g_strdup(r->via);
		n->rcpt_to = g_strdup(r->rcpt_to);
		why = g_strdup_printf("as SMTP message %s", out->qid);
		set_state(r, "done", why);
		g_free(why);
	}
	if (!queue_translated(run->q, env, out, mime, &e)) {
		pg_error(env->qid, "run: %s", e->message);
		g_clear_error(&e);
		run->errors++;
		goto done;
	}
	pg_info(out->qid, "queued: from=<%s>, size=%" G_GINT64_FORMAT ", nrcpt=%u, origin=%s, "
	    "translated from %s", out->sender, out->size, out->rcpts->len, env->origin, env->qid);
	run->outbound++;
	goto done;
hold:
	for (guint i = 0; i < rows->len; i++) {
		set_state(rows->pdata[i], "held", why);
		run->held++;
	}
	pg_warn(env->qid, "held: %s", why);
	g_free(why);
	if (!queue_set_routes(run->q, env, &e)) {
		pg_error(env->qid, "run: %s", e->message);
		g_clear_error(&e);
		run->errors++;
	}
done:
	queue_envelope_free(out);
	if (mime)
		g_bytes_unref(mime);
	g_free(from);
	g_ptr_array_unref(rows);
}

static void
fan_out_message(Run *run, QueueEnvelope *env)
{
	GHashTable *pos = g_hash_table_new(g_str_hash, g_str_equal);
	GHashTable *displayed = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	GHashTable *done_cp = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
	    (GDestroyNotify)msg_free);
	GBytes *body = NULL;
	GError *e = NULL;
	GHashTableIter it;
	gpointer k;

	if (g_hash_table_contains(run->unstored, env->qid))
		goto out;
	if (g_strcmp0(env->format, "legacy") == 0) {
		/* Its SMTP recipients first: one Internet message for them. */
		body = queue_body_read(run->q, env->qid, -1, &e);
		if (body) {
			gsize n;
			const guint8 *p = g_bytes_get_data(body, &n);
			LegacyMessage *m = msg_decode(p, n, &e);

			if (m) {
				translate_out(run, env, m);
				msg_free(m);
			}
			g_clear_pointer(&body, g_bytes_unref);
		}
		if (e) {
			pg_error(env->qid, "run: %s", e->message);
			g_clear_error(&e);
			run->errors++;
			goto out;
		}
	}
	for (guint i = 0; i < env->rcpts->len; i++) {
		QueueRcpt *r = env->rcpts->pdata[i];

		if (strcmp(r->state, "routed") == 0)
			g_hash_table_add(pos, r->po);
	}
	if (g_hash_table_size(pos) == 0)
		goto out;
	if (env->size > MSG_MAX_SIZE) {
		char *why = g_strdup_printf("%" G_GINT64_FORMAT " bytes: larger than a legacy "
		    "message may be (%u)", env->size, MSG_MAX_SIZE);

		hold_rows(run, env, NULL, why);
		g_free(why);
		goto out;
	}
	body = queue_body_read(run->q, env->qid, -1, &e);
	if (!body) {
		pg_error(env->qid, "run: %s", e->message);
		g_clear_error(&e);
		run->errors++;
		goto out;
	}
	g_hash_table_iter_init(&it, pos);
	while (g_hash_table_iter_next(&it, &k, NULL)) {
		const char *po = k;
		const PgConfigPostoffice *pc = config_postoffice_find(run->site->cfg, po);
		LegacyMessage *content;
		MimeInStats st = { 0 };
		gsize len;
		const guint8 *p = g_bytes_get_data(body, &len);

		if (!pc) {
			hold_rows(run, env, po, "the postoffice has no [postoffice] group");
			continue;
		}
		content = g_hash_table_lookup(done_cp, pc->codepage);
		if (!content && g_strcmp0(env->format, "legacy") == 0) {
			/* A legacy message passing through: decoded, and converted
			 * when the postoffices' codepages differ. */
			content = msg_decode(p, len, &e);
			if (content && g_ascii_strcasecmp(content->codepage, pc->codepage) != 0 &&
			    !convert_codepage(env, content, pc->codepage, &e))
				g_clear_pointer(&content, msg_free);
			if (!content) {
				char *why = g_strdup_printf("cannot pass on to %s: %s", po, e->message);

				g_clear_error(&e);
				hold_rows(run, env, po, why);
				g_free(why);
				continue;
			}
			if (g_hash_table_size(displayed) == 0) {
				add_displayed(displayed, content->to);
				add_displayed(displayed, content->cc);
			}
			g_hash_table_insert(done_cp, g_strdup(pc->codepage), content);
		}
		if (!content) {
			content = mime_in_translate(p, len, pc->codepage, &st, &e);
			if (!content) {
				char *why = g_strdup_printf("cannot translate for %s: %s", po,
				    e->message);

				g_clear_error(&e);
				hold_rows(run, env, po, why);
				g_free(why);
				mime_in_stats_clear(&st);
				continue;
			}
			for (guint i = 0; st.notes && i < st.notes->len; i++)
				pg_info(env->qid, "translation for %s: %s", pc->codepage,
				    (char *)st.notes->pdata[i]);
			if (st.transliterated || st.lost)
				pg_info(env->qid, "translation for %s: %u characters transliterated, "
				    "%u not representable", pc->codepage, st.transliterated, st.lost);
			mime_in_stats_clear(&st);
			if (g_hash_table_size(displayed) == 0) {
				add_displayed(displayed, content->to);
				add_displayed(displayed, content->cc);
			}
			map_parties(run, content->to);
			map_parties(run, content->cc);
			g_hash_table_insert(done_cp, g_strdup(pc->codepage), content);
		}
		if (content->hops->len + 1 > run->hop_limit) {
			char *why = g_strdup_printf("%u hops, the limit is %u (a mail loop?)",
			    content->hops->len + 1, run->hop_limit);

			hold_rows(run, env, po, why);
			g_free(why);
			continue;
		}
		if (!fan_out_po(run, env, content, po, displayed, &e)) {
			char *why = g_strdup_printf("cannot bundle for %s: %s", po, e->message);

			g_clear_error(&e);
			pg_error(env->qid, "run: %s", why);
			run->errors++;
			g_free(why);
		}
	}
out:
	if (body)
		g_bytes_unref(body);
	g_hash_table_unref(pos);
	g_hash_table_unref(displayed);
	g_hash_table_unref(done_cp);
}

/* ------------------------------------------------------------------ main */

static void
print_smtp(const DeliveryStats *st)
{
	if (st->sent + st->deferred + st->held + st->skipped == 0)
		return;
	printf("  SMTP: %u recipient%s sent, %u deferred, %u held, %u not yet due; %u "
	    "session%s, %u message%s finished\n", st->sent, st->sent == 1 ? "" : "s",
	    st->deferred, st->held, st->skipped, st->sessions, st->sessions == 1 ? "" : "s",
	    st->finished, st->finished == 1 ? "" : "s");
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
	GHashTableIter it;
	gpointer v;
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
	run.site = site_open(config_file, &e);
	if (!run.site) {
		fprintf(stderr, "%s\n", e->message);
		rc = site_exit_code(e);
		g_error_free(e);
		return rc;
	}
	rc = take_lock(config_string(run.site->cfg, CONFIG_SITE_STATE_DIR), &lock_fd);
	if (rc != EX_OK)
		goto out;
	run.q = queue_open(config_string(run.site->cfg, CONFIG_SITE_STATE_DIR), &e);
	if (!run.q) {
		fprintf(stderr, "%s\n", e->message);
		rc = EX_CANTCREAT;
		goto out;
	}
	run.gateway_po = config_string(run.site->cfg, CONFIG_SITE_GATEWAY_PO);
	run.hop_limit = (guint)config_int(run.site->cfg, CONFIG_SITE_HOP_LIMIT);
	run.level = (int)config_int(run.site->cfg, CONFIG_SITE_BUNDLE_LEVEL);
	run.keys = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
	    (GDestroyNotify)g_bytes_unref);
	run.counts = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	run.builders = g_hash_table_new_full(g_str_hash, g_str_equal, NULL,
	    (GDestroyNotify)builder_free);
	run.smtp_of = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	run.to_store = g_ptr_array_new();
	run.unstored = g_hash_table_new(g_str_hash, g_str_equal);
	run.hostname = config_string(run.site->cfg, CONFIG_SMTPD_HOSTNAME);
	if (!*run.hostname)
		run.hostname = g_get_host_name();

	if (!run.dry_run) {
		recover(&run);
		ingest(&run);
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
	for (guint i = 0; i < all->len; i++) {
		route_message(&run, all->pdata[i]);
		if (run.to_store->len >= 1000)
			store_routes(&run);
		if (run.tty && !run.dry_run && (i + 1) % 1000 == 0)
			fprintf(stderr, "\rrouting: %u of %u messages", i + 1, all->len);
	}
	store_routes(&run);
	if (!run.dry_run) {
		for (guint i = 0; i < all->len; i++) {
			fan_out_message(&run, all->pdata[i]);
			if (run.tty && (i + 1) % 1000 == 0)
				fprintf(stderr, "\rtranslating: %u of %u messages", i + 1, all->len);
		}
		if (run.tty && all->len >= 1000)
			fputc('\n', stderr);
		g_hash_table_iter_init(&it, run.builders);
		while (g_hash_table_iter_next(&it, NULL, &v)) {
			if (!builder_flush(&run, v, &e)) {
				pg_error(NULL, "run: bundle for %s: %s", ((Builder *)v)->po, e->message);
				g_clear_error(&e);
				run.errors++;
			}
		}
		{
			guint finished = 0;

			if (queue_finish(run.q, &finished, &e))
				run.finished += finished;
			else {
				pg_error(NULL, "run: %s", e->message);
				g_clear_error(&e);
				run.errors++;
			}
		}
	}
	dir_read_end(run.site->dir);
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
	}
	summary(&run, all->len);
	if (run.errors)
		rc = EX_TEMPFAIL;
out:
	g_clear_error(&e);
	if (all)
		g_ptr_array_unref(all);
	if (run.builders)
		g_hash_table_unref(run.builders);
	if (run.keys)
		g_hash_table_unref(run.keys);
	if (run.counts)
		g_hash_table_unref(run.counts);
	if (run.smtp_of)
		g_hash_table_unref(run.smtp_of);
	if (run.to_store)
		g_ptr_array_unref(run.to_store);
	if (run.unstored)
		g_hash_table_unref(run.unstored);
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
	GError *e = NULL;
	int lock_fd = -1, rc;

	site = site_open(config_file, &e);
	if (!site) {
		fprintf(stderr, "%s\n", e->message);
		rc = site_exit_code(e);
		g_error_free(e);
		return rc;
	}
	rc = take_lock(config_string(site->cfg, CONFIG_SITE_STATE_DIR), &lock_fd);
	if (rc != EX_OK)
		goto out;
	q = queue_open(config_string(site->cfg, CONFIG_SITE_STATE_DIR), &e);
	if (!q) {
		fprintf(stderr, "%s\n", e->message);
		rc = EX_CANTCREAT;
		goto out;
	}
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
	if (st.errors)
		rc = EX_TEMPFAIL;
	if (st.sent + st.deferred + st.held == 0)
		printf("postgate queue retry: nothing waits for SMTP delivery%s%s\n",
		    qid ? " in " : "", qid ? qid : "");
	else {
		printf("postgate queue retry:\n");
		print_smtp(&st);
	}
out:
	g_clear_error(&e);
	queue_close(q);
	if (lock_fd >= 0)
		close(lock_fd);
	site_close(site);
	return rc;
}
