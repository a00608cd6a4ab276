/* sync_xml.c - directory sync files, version 1 (see sync_xml.h): what the
 * reader and the writer share: names, the attributes of each element, the
 * checks of values, limits, and the comparison of two documents.
 * Implements docs/sync-format.md with sync_read.c, sync_read_sax.c and
 * sync_write.c (sync_xml_int.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/SAX2.h>
#include <libxml/xmlerror.h>

#include "address.h"
#include "atomic_write.h"
#include "pg_log.h"
#include "sync_xml_int.h"

G_DEFINE_QUARK(postgate-sync-error-quark, sync_error)

guint64 sx_limit_file_size = SYNC_MAX_FILE_SIZE;
guint sx_limit_entries = SYNC_MAX_ENTRIES;

void
sync_set_limits_for_tests(guint64 max_file_size, guint max_entries)
{
	sx_limit_file_size = max_file_size ? max_file_size : SYNC_MAX_FILE_SIZE;
	sx_limit_entries = max_entries ? max_entries : SYNC_MAX_ENTRIES;
}

const char *const sx_elem_names[SX_N_ELEMS] = {
	"", "sync", "mailbox", "custom", "list", "member", "entry", "vector", "seen",
	"change", "proxy", "member",
};

const char *const sx_attr_names[AT_COUNT] = {
	"version", "kind", "postoffice", "from", "for", "name", "display", "target",
	"address", "type", "smtp", "id", "origin", "usn", "changed", "home", "legacy",
	"deleted", "site",
};

/* The attributes an element may have, and those it must have. */
void
sx_attr_rules(Elem el, SyncKind kind, guint *allowed, guint *required)
{
	*allowed = *required = 0;
	switch (el) {
	case EL_SYNC:
		*allowed = BIT(AT_VERSION) | BIT(AT_KIND) | BIT(AT_POSTOFFICE) | BIT(AT_FROM) |
		    BIT(AT_FOR);
		break;
	case EL_MAILBOX:
	case EL_LIST:
		*allowed = BIT(AT_NAME) | BIT(AT_DISPLAY);
		*required = BIT(AT_NAME);
		break;
	case EL_CUSTOM:
		*allowed = BIT(AT_NAME) | BIT(AT_DISPLAY) | BIT(AT_TARGET);
		*required = BIT(AT_NAME) | BIT(AT_TARGET);
		break;
	case EL_MEMBER_REF:
		*allowed = *required = BIT(AT_ADDRESS);
		break;
	case EL_ENTRY:
		if (kind == SYNC_GAL) {
			*allowed = BIT(AT_TYPE) | BIT(AT_ADDRESS) | BIT(AT_DISPLAY) | BIT(AT_SMTP);
			*required = BIT(AT_TYPE) | BIT(AT_ADDRESS);
		} else {
			*allowed = BIT(AT_ID) | BIT(AT_TYPE) | BIT(AT_HOME) | BIT(AT_LEGACY) |
			    BIT(AT_DISPLAY) | BIT(AT_TARGET) | BIT(AT_DELETED);
			*required = BIT(AT_ID) | BIT(AT_TYPE) | BIT(AT_HOME) | BIT(AT_LEGACY);
		}
		break;
	case EL_SEEN:
		*allowed = *required = BIT(AT_SITE) | BIT(AT_USN);
		break;
	case EL_CHANGE:
		*required = BIT(AT_ID) | BIT(AT_TYPE) | BIT(AT_ORIGIN) | BIT(AT_USN) |
		    BIT(AT_VERSION) | BIT(AT_CHANGED) | BIT(AT_HOME) | BIT(AT_LEGACY);
		*allowed = *required | BIT(AT_DISPLAY) | BIT(AT_TARGET) | BIT(AT_DELETED);
		break;
	default:
		break;
	}
}

/* ---- checks shared by the reader and the writer -------------------------- */

/* A decimal number without sign or leading zero, at least min, at most
 * G_MAXINT64 (so that SQLite stores it). */
gboolean
sx_parse_number(const char *s, size_t len, guint64 min, guint64 *out)
{
	guint64 v = 0;

	if (len == 0 || len > 19 || (s[0] == '0' && len > 1))
		return FALSE;
	for (size_t i = 0; i < len; i++) {
		if (!g_ascii_isdigit(s[i]))
			return FALSE;
		v = v * 10 + (guint64)(s[i] - '0');
	}
	if (v < min || v > (guint64)G_MAXINT64)
		return FALSE;
	*out = v;
	return TRUE;
}

/* The canonical legacy address of text, or NULL and why (g_free it). */
char *
sx_canon_legacy(const char *text, size_t len, char **why)
{
	PgAddr a;
	GError *e = NULL;

	if (!addr_parse(text, len, &a, &e)) {
		*why = g_strdup(e->message);
		g_error_free(e);
		return NULL;
	}
	if (a.kind != ADDR_KIND_LEGACY) {
		char *q = pg_shown(text, (gssize)len, 80, TRUE);
		*why = g_strdup_printf("%s is not a legacy address NET/PO/MAILBOX", q);
		g_free(q);
		return NULL;
	}
	return addr_format(&a);
}

/* The canonical local@domain of text (no prefix), or NULL and why. */
char *
sx_canon_smtp(const char *text, size_t len, char **why)
{
	char out[ADDR_SMTP_MAX + 1];
	GError *e = NULL;

	if (!addr_parse_smtp(text, len, out, &e)) {
		*why = g_strdup(e->message);
		g_error_free(e);
		return NULL;
	}
	return g_strdup(out);
}

/* The canonical text of a proxy, "SMTP:" or "smtp:" then local@domain. */
char *
sx_canon_proxy(const char *text, size_t len, char **why)
{
	char *addr, *full;

	if (len < 5 || (memcmp(text, "SMTP:", 5) != 0 && memcmp(text, "smtp:", 5) != 0)) {
		char *q = pg_shown(text, (gssize)len, 80, TRUE);
		*why = g_strdup_printf("%s: a proxy is SMTP:local@domain (the primary) or "
		    "smtp:local@domain (a secondary)", q);
		g_free(q);
		return NULL;
	}
	if (!(addr = sx_canon_smtp(text + 5, len - 5, why)))
		return NULL;
	full = g_strconcat(text[0] == 'S' ? "SMTP:" : "smtp:", addr, NULL);
	g_free(addr);
	return full;
}

/* The canonical target of a custom recipient: "SMTP:local@domain". */
char *
sx_canon_target(const char *text, size_t len, char **why)
{
	PgAddr a;
	GError *e = NULL;

	if (!addr_parse(text, len, &a, &e)) {
		*why = g_strdup(e->message);
		g_error_free(e);
		return NULL;
	}
	if (a.kind != ADDR_KIND_SMTP) {
		*why = g_strdup("a target is an SMTP: address");
		return NULL;
	}
	return addr_format(&a);
}

/* For g_ptr_array_sort: the array holds char *. */
int
sx_compare_str(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* For g_list_sort: the list holds char *. */
int
sx_compare_plain(gconstpointer a, gconstpointer b)
{
	return strcmp(a, b);
}

/* ---- comparison ------------------------------------------------------------ */

gboolean
sync_entry_equal(const DirEntry *a, const DirEntry *b)
{
	return a->type == b->type && g_strcmp0(a->id, b->id) == 0 &&
	    g_strcmp0(a->legacy, b->legacy) == 0 && g_strcmp0(a->home_site, b->home_site) == 0 &&
	    strcmp(a->name ? a->name : "", b->name ? b->name : "") == 0 &&
	    g_strcmp0(a->target, b->target) == 0 && dir_strings_equal(a->proxies, b->proxies) &&
	    dir_strings_equal(a->members, b->members) && !a->deleted == !b->deleted &&
	    g_strcmp0(a->origin, b->origin) == 0 && a->usn == b->usn &&
	    a->version == b->version && a->changed == b->changed;
}

gboolean
sync_doc_equal(const SyncDoc *a, const SyncDoc *b)
{
	GHashTableIter it;
	gpointer k, v;

	if (a->kind != b->kind || g_strcmp0(a->postoffice, b->postoffice) != 0 ||
	    g_strcmp0(a->from_site, b->from_site) != 0 ||
	    g_strcmp0(a->for_site, b->for_site) != 0 ||
	    g_hash_table_size(a->vector) != g_hash_table_size(b->vector) ||
	    a->entries->len != b->entries->len)
		return FALSE;
	g_hash_table_iter_init(&it, a->vector);
	while (g_hash_table_iter_next(&it, &k, &v)) {
		const guint64 *w = g_hash_table_lookup(b->vector, k);
		if (!w || *w != *(const guint64 *)v)
			return FALSE;
	}
	for (guint i = 0; i < a->entries->len; i++)
		if (!sync_entry_equal(a->entries->pdata[i], b->entries->pdata[i]))
			return FALSE;
	return TRUE;
}
