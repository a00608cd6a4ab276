/* run_ingest.c - the batch run takes the postoffices' bundles: each bundle in
 * a postoffice's out/ verified and queued whole, in bounded steps; only a
 * bundle at fault goes to bad/ (see run_int.h). */
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
	char *bad = g_build_filename(pc->dir, "bad", NULL);
	GError *e = NULL;
	gboolean ok;

	pg_error(NULL, "run: %s/%s refused: %s", out, name, why);
	ok = atomic_set_aside(out, name, bad, why, NULL, &e);
	if (ok) {
		run->refused++;
	} else {
		pg_error(NULL, "run: cannot set %s aside in %s (it stays in out/): %s", name,
		    bad, e->message);
		g_error_free(e);
		run->errors++;
	}
	g_free(out);
	g_free(bad);
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
	env->report_class = m->class;
	for (guint i = 0; i < m->recipients->len; i++) {
		const MsgRecipient *r = m->recipients->pdata[i];
		guint notify = (m->requests & MSG_REQ_RECEIPT ? MAIL_NOTIFY_SUCCESS : 0) |
		    (m->requests & MSG_REQ_NO_NDR ? MAIL_NOTIFY_NEVER : MAIL_NOTIFY_FAILURE);
		QueueRcpt *q;

		queue_envelope_add_rcpt(env, r->addr, notify, NULL);
		if (r->responsible)
			continue;
		/* Responsible elsewhere: never delivered or bundled again, but
		 * known, so that a list this message also names does not give
		 * the same person a second copy. */
		q = env->rcpts->pdata[env->rcpts->len - 1];
		queue_rcpt_enter(q, QUEUE_ST_DONE, "responsible elsewhere");
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
void
rn_ingest(Run *run)
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
		key = rn_key_of(run, pc->name, &e);
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
