/* po_status.c - the reference postoffice read: mailboxes and status (see
 * po_store_int.h). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "address.h"
#include "atomic_write.h"
#include "bundle.h"
#include "codepage.h"
#include "fault.h"
#include "keyfile.h"
#include "pg_db.h"
#include "pg_log.h"
#include "po_store_int.h"

/* ---- reading mailboxes and status ---------------------------------------- */

GPtrArray *
po_mailbox(PoStore *s, const char *mailbox, GError **error)
{
	char mb[ADDR_PART_MAX + 1];
	sqlite3_stmt *st;
	GPtrArray *a;

	if (!pos_mailbox_norm(mailbox, mb, error))
		return NULL;
	if (!pos_user_exists(s, mb)) {
		g_set_error(error, PO_ERROR, PO_ERROR_NOUSER, "no mailbox %s at %s", mb, s->name);
		return NULL;
	}
	st = pg_db_prepare(s->pg, "SELECT data FROM mail WHERE mailbox = ? ORDER BY id", error);
	if (!st)
		return NULL;
	sqlite3_bind_text(st, 1, mb, -1, SQLITE_STATIC);
	a = g_ptr_array_new_with_free_func((GDestroyNotify)msg_free);
	while (sqlite3_step(st) == SQLITE_ROW) {
		LegacyMessage *m = msg_decode(sqlite3_column_blob(st, 0),
		    (size_t)sqlite3_column_bytes(st, 0), error);
		if (!m) {
			sqlite3_finalize(st);
			g_ptr_array_unref(a);
			return NULL;
		}
		g_ptr_array_add(a, m);
	}
	sqlite3_finalize(st);
	return a;
}

GPtrArray *
po_mailbox_counts(PoStore *s, GError **error)
{
	return pos_rows(s, "SELECT u.mailbox, count(m.id) FROM users u LEFT JOIN mail m "
	    "ON m.mailbox = u.mailbox GROUP BY u.mailbox ORDER BY u.mailbox", " ", error);
}

/* Append "1-3, 5" style ranges of a sorted list, and the gaps between. */
static void
ranges(GString *out, GArray *seqs)
{
	GString *gaps = g_string_new(NULL);
	guint64 expect = 1;

	for (guint i = 0; i < seqs->len;) {
		guint64 lo = g_array_index(seqs, guint64, i), hi = lo;
		while (i + 1 < seqs->len && g_array_index(seqs, guint64, i + 1) == hi + 1)
			hi = g_array_index(seqs, guint64, ++i);
		i++;
		if (lo > expect) {
			if (gaps->len)
				g_string_append(gaps, ", ");
			if (lo - 1 == expect)
				g_string_append_printf(gaps, "%" G_GUINT64_FORMAT, expect);
			else
				g_string_append_printf(gaps,
				    "%" G_GUINT64_FORMAT "-%" G_GUINT64_FORMAT,
				    expect, lo - 1);
		}
		if (out->len && out->str[out->len - 1] != ' ')
			g_string_append(out, ", ");
		if (lo == hi)
			g_string_append_printf(out, "%" G_GUINT64_FORMAT, lo);
		else
			g_string_append_printf(out,
			    "%" G_GUINT64_FORMAT "-%" G_GUINT64_FORMAT, lo, hi);
		expect = hi + 1;
	}
	g_string_append_printf(out, "; gaps: %s", gaps->len ? gaps->str : "none");
	g_string_free(gaps, TRUE);
}

char *
po_status(PoStore *s, GError **error)
{
	GString *out = g_string_new(NULL);
	sqlite3_stmt *st;
	char *src = NULL;
	GArray *seqs = g_array_new(FALSE, FALSE, sizeof(guint64));
	GDir *d;
	const char *ent;
	guint nbad = 0, nout = 0, nin = 0;

	g_string_append_printf(out, "postoffice %s\ncodepage %s\ngateway %s\n", s->name,
	    s->codepage, s->gateway);
	st = pg_db_prepare(s->pg,
	    "SELECT source, seq FROM ledger WHERE dest = ? ORDER BY source, seq", error);
	if (!st)
		goto fail;
	sqlite3_bind_text(st, 1, s->name, -1, SQLITE_STATIC);
	for (;;) {
		int rc = sqlite3_step(st);
		const char *row_src = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
		if (src && (!row_src || strcmp(row_src, src) != 0)) {
			GString *line = g_string_new(NULL);
			g_string_append_printf(line, "received from %s: applied ", src);
			ranges(line, seqs);
			g_string_append_printf(out, "%s\n", line->str);
			g_string_free(line, TRUE);
			g_array_set_size(seqs, 0);
			g_clear_pointer(&src, g_free);
		}
		if (!row_src)
			break;
		if (!src)
			src = g_strdup(row_src);
		{
			guint64 v = (guint64)sqlite3_column_int64(st, 1);
			g_array_append_val(seqs, v);
		}
	}
	sqlite3_finalize(st);
	st = pg_db_prepare(s->pg, "SELECT dest, last FROM seqs ORDER BY dest", error);
	if (!st)
		goto fail;
	while (sqlite3_step(st) == SQLITE_ROW)
		g_string_append_printf(out, "sent to %s: last sequence number %lld\n",
		    sqlite3_column_text(st, 0), (long long)sqlite3_column_int64(st, 1));
	sqlite3_finalize(st);
	if ((d = g_dir_open(s->in, 0, NULL))) {
		while ((ent = g_dir_read_name(d)))
			nin += ent[0] != '.';
		g_dir_close(d);
	}
	if ((d = g_dir_open(s->out, 0, NULL))) {
		while ((ent = g_dir_read_name(d)))
			nout += ent[0] != '.';
		g_dir_close(d);
	}
	g_string_append_printf(out, "in/: %u waiting\nout/: %u waiting for the gateway\n",
	    nin, nout);
	st = pg_db_prepare(s->pg, "SELECT count(*) FROM outbox", error);
	if (!st)
		goto fail;
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) > 0)
		g_string_append_printf(out, "outbox: %lld bundles not yet written to out/ "
		    "(the next send or deliver writes them)\n",
		    (long long)sqlite3_column_int64(st, 0));
	sqlite3_finalize(st);
	if ((d = g_dir_open(s->bad, 0, NULL))) {
		GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
		while ((ent = g_dir_read_name(d)))
			if (ent[0] != '.' && !g_str_has_suffix(ent, ".why"))
				g_ptr_array_add(names, g_strdup(ent));
		g_dir_close(d);
		g_ptr_array_sort(names, pos_name_cmp);
		nbad = names->len;
		g_string_append_printf(out, "bad/: %u refused\n", nbad);
		for (guint i = 0; i < names->len; i++) {
			char *why_path = g_strdup_printf("%s/%s.why", s->bad,
			    (char *)names->pdata[i]);
			char *why = NULL;
			if (g_file_get_contents(why_path, &why, NULL, NULL))
				g_strchomp(why);
			g_string_append_printf(out, "  %s: %s\n", (char *)names->pdata[i],
			    why ? why : "(no .why file)");
			g_free(why);
			g_free(why_path);
		}
		g_ptr_array_unref(names);
	}
	g_array_unref(seqs);
	return g_string_free(out, FALSE);
fail:
	g_array_unref(seqs);
	g_string_free(out, TRUE);
	return NULL;
}
