/* dir_norm.c - the directory store's rules: an entry checked and normalised, and
 * which of two states of an entry wins (see dir_store_int.h). */
#include "config.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dir_store_int.h"
#include "pg_log.h"

/* ---------------------------------------------------------------- rules */

/* The rules of dir_types.h, for NUL-terminated text that may be NULL. */
gboolean
ds_site_valid(const char *s)
{
	return s && dir_check_site(s, strlen(s));
}

static gboolean
id_valid(const char *s)
{
	return s && dir_check_id(s, strlen(s));
}

static gboolean
name_valid(const char *s)
{
	return s && !dir_check_display(s, strlen(s));
}

gboolean
ds_invalid(GError **error, const char *who, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

gboolean
ds_invalid(GError **error, const char *who, const char *fmt, ...)
{
	va_list ap;
	char *what;

	va_start(ap, fmt);
	what = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_set_error(error, DIR_ERROR, DIR_ERROR_INVALID, "%s%s%s", who ? who : "",
	    who ? ": " : "", what);
	g_free(what);
	return FALSE;
}

/* Whether text starts with the typed prefix smtp: in any case. */
gboolean
ds_smtp_prefixed(const char *text)
{
	while (*text == ' ' || *text == '\t')
		text++;
	return g_ascii_strncasecmp(text, "SMTP:", 5) == 0;
}

char *
dir_proxy_key(const char *address, GError **error)
{
	char out[ADDR_SMTP_MAX + 1];
	GError *e = NULL;
	PgAddr a;

	if (ds_smtp_prefixed(address)) {
		if (!addr_parse(address, strlen(address), &a, &e))
			goto fail;
		return g_ascii_strdown(a.smtp, -1);
	}
	if (addr_parse_smtp(address, strlen(address), out, &e))
		return g_ascii_strdown(out, -1);
fail:
	g_set_error_literal(error, DIR_ERROR, DIR_ERROR_INVALID, e->message);
	g_error_free(e);
	return NULL;
}

/* A proxy as given in an entry: "SMTP:" (primary) or "smtp:" (secondary)
 * exactly, then an SMTP address; canonical text into *out. */
static gboolean
proxy_norm(const char *who, const char *text, char **out, GError **error)
{
	char key[ADDR_SMTP_MAX + 1];
	GError *e = NULL;

	if (strncmp(text, "SMTP:", 5) != 0 && strncmp(text, "smtp:", 5) != 0)
		return ds_invalid(error, who, "proxy \"%s\" must start with SMTP: (the primary) "
		    "or smtp: (a secondary address)", text);
	if (!addr_parse_smtp(text + 5, strlen(text + 5), key, &e)) {
		ds_invalid(error, who, "proxy: %s", e->message);
		g_error_free(e);
		return FALSE;
	}
	*out = g_strdup_printf("%.5s%s", text, key);
	return TRUE;
}

gint
ds_cmp_str(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

gboolean
ds_is_primary(const char *proxy)
{
	return strncmp(proxy, "SMTP:", 5) == 0;
}

/* Check and canonicalise a list of proxies in place: each valid, no key
 * twice, none or exactly one primary, sorted (the primary sorts first). */
static gboolean
proxies_norm(const char *who, GPtrArray *p, GError **error)
{
	GHashTable *keys;
	guint primaries = 0;
	gboolean ok = TRUE;

	if (p->len > DIR_MAX_PROXIES)
		return ds_invalid(error, who, "%u proxies, at most %u are allowed", p->len,
		    DIR_MAX_PROXIES);
	keys = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	for (guint i = 0; ok && i < p->len; i++) {
		char *canon = NULL;

		ok = proxy_norm(who, p->pdata[i], &canon, error);
		if (!ok)
			break;
		g_free(p->pdata[i]);
		p->pdata[i] = canon;
		if (!g_hash_table_add(keys, g_ascii_strdown(canon + 5, -1)))
			ok = ds_invalid(error, who, "proxy %s is listed twice (local parts "
			    "compare without case)", canon + 5);
		primaries += ds_is_primary(canon);
	}
	g_hash_table_destroy(keys);
	if (ok && primaries > 1)
		ok = ds_invalid(error, who, "%u primary (SMTP:) proxies; there must be exactly "
		    "one", primaries);
	if (ok && p->len > 0 && primaries == 0)
		ok = ds_invalid(error, who, "secondary (smtp:) proxies but no primary (SMTP:)");
	if (ok)
		g_ptr_array_sort(p, ds_cmp_str);
	return ok;
}

/* Check and canonicalise the members of a list in place: legacy addresses,
 * duplicates dropped, sorted. */
static gboolean
members_norm(const char *who, GPtrArray *m, GError **error)
{
	GPtrArray *out;
	GError *e = NULL;

	if (m->len > DIR_MAX_MEMBERS)
		return ds_invalid(error, who, "%u members, at most %u are allowed", m->len,
		    DIR_MAX_MEMBERS);
	out = g_ptr_array_new_with_free_func(g_free);
	for (guint i = 0; i < m->len; i++) {
		const char *t = m->pdata[i];
		PgAddr a;

		if (!addr_parse(t, strlen(t), &a, &e) || a.kind != ADDR_KIND_LEGACY) {
			ds_invalid(error, who, "member: %s", e ? e->message :
			    "a member is a legacy address NET/PO/MAILBOX");
			g_clear_error(&e);
			g_ptr_array_unref(out);
			return FALSE;
		}
		g_ptr_array_add(out, addr_format(&a));
	}
	g_ptr_array_sort(out, ds_cmp_str);
	g_ptr_array_set_size(m, 0);
	for (guint i = 0; i < out->len; i++)
		if (i == 0 || strcmp(out->pdata[i], out->pdata[i - 1]) != 0)
			g_ptr_array_add(m, g_strdup(out->pdata[i]));
	g_ptr_array_unref(out);
	return TRUE;
}

/* A checked, canonical copy of an entry of a document: legacy, target,
 * proxies, members, name; with stamps and ids checked when stamped.  The
 * legacy address is parsed into *a. */
DirEntry *
ds_entry_norm(const DirEntry *in, gboolean stamped, PgAddr *a, GError **error)
{
	DirEntry *e;
	GError *err = NULL;
	const char *who;
	char *legacy;

	if (!in->legacy)
		return ds_invalid(error, in->id, "an entry without a legacy address"), NULL;
	if (!addr_parse(in->legacy, strlen(in->legacy), a, &err) ||
	    a->kind != ADDR_KIND_LEGACY) {
		ds_invalid(error, in->id, "legacy address: %s", err ? err->message :
		    "an entry's legacy address is NET/PO/MAILBOX");
		g_clear_error(&err);
		return NULL;
	}
	legacy = addr_format(a);
	if ((guint)in->type > DIR_LIST) {
		ds_invalid(error, legacy, "unknown entry type %d", (int)in->type);
		g_free(legacy);
		return NULL;
	}
	e = dir_entry_copy(in);
	g_free(e->legacy);
	e->legacy = legacy;
	who = e->legacy;
	if (!e->name)
		e->name = g_strdup("");
	if (!name_valid(e->name)) {
		ds_invalid(error, who, "the display name is not UTF-8 of at most %u bytes "
		    "without control characters", DIR_NAME_MAX);
		goto fail;
	}
	if (stamped) {
		if (!id_valid(e->id)) {
			ds_invalid(error, who, "entry id \"%s\" is not 1-%u of A-Z a-z 0-9 . _ : -",
			    e->id ? e->id : "", DIR_ID_MAX);
			goto fail;
		}
		if (!ds_site_valid(e->origin) || !ds_site_valid(e->home_site)) {
			ds_invalid(error, who, "origin and home site must be site names");
			goto fail;
		}
		if (e->usn == 0 || e->version == 0 || e->usn > G_MAXINT64 ||
		    e->version > G_MAXINT64) {
			ds_invalid(error, who, "a replicated change needs a USN and a version "
			    "from 1");
			goto fail;
		}
	}
	if (e->deleted) {
		/* A tombstone claims nothing. */
		g_clear_pointer(&e->target, g_free);
		g_ptr_array_set_size(e->proxies, 0);
		g_ptr_array_set_size(e->members, 0);
		return e;
	}
	if (e->type == DIR_CUSTOM) {
		char smtp[ADDR_SMTP_MAX + 1];
		PgAddr t;
		gboolean tok;

		if (!e->target) {
			ds_invalid(error, who, "a custom recipient needs a target address");
			goto fail;
		}
		if (ds_smtp_prefixed(e->target)) {
			tok = addr_parse(e->target, strlen(e->target), &t, &err);
			if (tok)
				g_strlcpy(smtp, t.smtp, sizeof smtp);
		} else {
			tok = addr_parse_smtp(e->target, strlen(e->target), smtp, &err);
		}
		if (!tok) {
			ds_invalid(error, who, "target: %s", err->message);
			g_clear_error(&err);
			goto fail;
		}
		g_free(e->target);
		e->target = g_strdup_printf("SMTP:%s", smtp);
	} else if (e->target) {
		ds_invalid(error, who, "only a custom recipient has a target address");
		goto fail;
	}
	if (e->type != DIR_LIST && e->members->len > 0) {
		ds_invalid(error, who, "only a distribution list has members");
		goto fail;
	}
	if (!proxies_norm(who, e->proxies, error) || !members_norm(who, e->members, error))
		goto fail;
	if (stamped && e->proxies->len == 0) {
		ds_invalid(error, who, "a live entry has exactly one primary (SMTP:) proxy, "
		    "this one has none");
		goto fail;
	}
	return e;
fail:
	dir_entry_free(e);
	return NULL;
}

/* Whether two states say the same (stamps aside). */
gboolean
ds_same_state(const DirEntry *a, const DirEntry *b)
{
	return a->type == b->type && a->deleted == b->deleted &&
	    strcmp(a->legacy, b->legacy) == 0 && strcmp(a->home_site, b->home_site) == 0 &&
	    strcmp(a->name, b->name) == 0 && g_strcmp0(a->target, b->target) == 0 &&
	    dir_strings_equal(a->proxies, b->proxies) &&
	    dir_strings_equal(a->members, b->members);
}

/* The conflict order: whether state a beats state b of the same entry id.
 * Higher version; then the lower origin site name; then the higher USN. */
gboolean
ds_state_wins(const DirEntry *a, const DirEntry *b)
{
	int c;

	if (a->version != b->version)
		return a->version > b->version;
	c = strcmp(a->origin, b->origin);
	if (c != 0)
		return c < 0;
	return a->usn > b->usn;
}
