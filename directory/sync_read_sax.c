/* sync_read_sax.c - the sync file reader's SAX callbacks: where each element
 * may stand, its attributes and their values checked as they arrive, entries
 * built and handed to the sink (see sync_read.c, sync_xml_int.h).
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

/* An untrusted element name, escaped, for messages; g_free it. */
char *
sx_shown_name(const char *local)
{
	char *q = pg_shown(local, -1, 80, TRUE);
	size_t n = strlen(q);

	memmove(q, q + 1, n - 2);   /* without the quotes */
	q[n - 2] = '\0';
	return q;
}

/* Refuse the element local, which has no place under parent. */
static void
misplaced(Reader *r, Elem parent, const char *local, const char *uri, guint line)
{
	char *q = sx_shown_name(local);
	gboolean known = FALSE;

	for (guint i = 1; i < G_N_ELEMENTS(sx_elem_names); i++)
		known = known || strcmp(local, sx_elem_names[i]) == 0;
	if (!uri || strcmp(uri, SYNC_NAMESPACE) != 0) {
		char *u = uri ? sx_shown_name(uri) : NULL;
		sx_fail(r, line, SYNC_ERROR_SCHEMA, "unknown element <%s> (%s%s)", q,
		    uri ? "namespace " : "no namespace", uri ? u : "");
		g_free(u);
	} else if (!known)
		sx_fail(r, line, SYNC_ERROR_SCHEMA, "unknown element <%s>", q);
	else if (parent == EL_SYNC)
		sx_fail(r, line, SYNC_ERROR_SCHEMA, "<%s> is not allowed in a %s file", q,
		    sync_kind_name(r->doc->kind));
	else
		sx_fail(r, line, SYNC_ERROR_SCHEMA, "<%s> is not allowed in <%s>", q,
		    sx_elem_names[parent]);
	g_free(q);
}

/* The element a start tag names, where it is; EL_NONE after a refusal. */
static Elem
classify(Reader *r, Elem parent, const char *local, const char *uri, guint line)
{
	Elem el = EL_NONE;

	if (parent == EL_NONE) {
		if (strcmp(local, "sync") != 0) {
			char *q = sx_shown_name(local);
			sx_fail(r, line, SYNC_ERROR_SCHEMA,
			    "the root element must be <sync>, not <%s>", q);
			g_free(q);
		} else if (!uri) {
			sx_fail(r, line, SYNC_ERROR_SCHEMA,
			    "<sync> has no namespace: a sync file is "
			    "<sync xmlns=\"%s\">", SYNC_NAMESPACE);
		} else if (strcmp(uri, SYNC_NAMESPACE) != 0) {
			char *u = sx_shown_name(uri);
			sx_fail(r, line, SYNC_ERROR_SCHEMA, "<sync> is in the namespace %s, not %s",
			    u, SYNC_NAMESPACE);
			g_free(u);
		} else {
			el = EL_SYNC;
		}
		return el;
	}
	if (!uri || strcmp(uri, SYNC_NAMESPACE) != 0) {
		misplaced(r, parent, local, uri, line);
		return EL_NONE;
	}
	switch (parent) {
	case EL_SYNC:
		if (r->doc->kind == SYNC_POSTOFFICE) {
			el = strcmp(local, "mailbox") == 0 ? EL_MAILBOX :
			    strcmp(local, "custom") == 0 ? EL_CUSTOM :
			    strcmp(local, "list") == 0 ? EL_LIST : EL_NONE;
		} else if (r->doc->kind == SYNC_GAL || r->doc->kind == SYNC_CANONICAL) {
			el = strcmp(local, "entry") == 0 ? EL_ENTRY : EL_NONE;
		} else if (strcmp(local, "change") == 0) {
			el = EL_CHANGE;
		} else if (strcmp(local, "vector") == 0) {
			if (r->vector_seen || r->change_seen) {
				sx_fail(r, line, SYNC_ERROR_SCHEMA, r->vector_seen ?
				    "a second <vector>: a replication file has at most one" :
				    "<vector> must come before the first <change>");
				return EL_NONE;
			}
			el = EL_VECTOR;
		}
		break;
	case EL_LIST:
		el = strcmp(local, "member") == 0 ? EL_MEMBER_REF : EL_NONE;
		break;
	case EL_VECTOR:
		el = strcmp(local, "seen") == 0 ? EL_SEEN : EL_NONE;
		break;
	case EL_ENTRY:
		if (r->doc->kind != SYNC_CANONICAL)
			break;
		/* fall through */
	case EL_CHANGE:
		el = strcmp(local, "proxy") == 0 ? EL_PROXY :
		    strcmp(local, "member") == 0 ? EL_MEMBER : EL_NONE;
		if (el == EL_PROXY && r->cur->members->len > 0) {
			sx_fail(r, line, SYNC_ERROR_SCHEMA,
			    "<proxy> must come before the <member> elements");
			return EL_NONE;
		}
		if (el == EL_MEMBER && r->cur->type != DIR_LIST) {
			sx_fail(r, line, SYNC_ERROR_SCHEMA, "a %s has no members: only a list has",
			    dir_type_name(r->cur->type));
			return EL_NONE;
		}
		break;
	default:
		break;
	}
	if (el == EL_NONE)
		misplaced(r, parent, local, uri, line);
	return el;
}

/* Collect the attributes of a start tag; refuse unknown ones and missing ones. */
static gboolean
collect_attrs(Reader *r, Elem el, int n, const xmlChar **attrs, guint line)
{
	guint allowed, required;

	sx_attr_rules(el, r->doc ? r->doc->kind : SYNC_POSTOFFICE, &allowed, &required);
	g_string_truncate(r->abuf, 0);
	r->have = 0;
	for (int i = 0; i < n; i++) {
		const char *local = (const char *)attrs[5 * i];
		const char *prefix = (const char *)attrs[5 * i + 1];
		const char *value = (const char *)attrs[5 * i + 3];
		size_t len = (size_t)(attrs[5 * i + 4] - attrs[5 * i + 3]);
		int a = -1;

		for (int j = 0; j < AT_COUNT && !prefix && a < 0; j++)
			if ((allowed & BIT(j)) && local[0] == sx_attr_names[j][0] &&
			    strcmp(local, sx_attr_names[j]) == 0)
				a = j;
		if (a < 0) {
			char *q = sx_shown_name(local), *p = prefix ? sx_shown_name(prefix) : NULL;
			sx_fail(r, line, SYNC_ERROR_SCHEMA, "unknown attribute %s%s%s on <%s>",
			    p ? p : "", p ? ":" : "", q, sx_elem_names[el]);
			g_free(p);
			g_free(q);
			return FALSE;
		}
		r->aoff[a] = r->abuf->len;
		/* Without entity substitution, libxml2 hands every '&' of an
		 * attribute value over as "&#38;" (for a tree builder to parse
		 * again); no other reference can reach here. */
		for (size_t k = 0; k < len; k++) {
			g_string_append_c(r->abuf, (char)value[k]);
			if (value[k] == '&' && len - k >= 5 && memcmp(value + k, "&#38;", 5) == 0)
				k += 4;
		}
		r->alen[a] = r->abuf->len - r->aoff[a];
		g_string_append_c(r->abuf, '\0');
		r->have |= BIT(a);
	}
	for (int j = 0; j < AT_COUNT; j++)
		if ((required & BIT(j)) && !(r->have & BIT(j))) {
			sx_fail(r, line, SYNC_ERROR_SCHEMA, "<%s> needs the attribute %s",
			    sx_elem_names[el], sx_attr_names[j]);
			return FALSE;
		}
	return TRUE;
}

/* Refuse an attribute value: "<el> attribute a: why". */
static void
bad_attr(Reader *r, guint line, Elem el, Attr a, const char *why)
{
	sx_fail(r, line, SYNC_ERROR_SCHEMA, "<%s> attribute %s: %s", sx_elem_names[el],
	    sx_attr_names[a], why);
}

/* A value with a shown rendering and a rule, for bad_attr. */
static void
bad_value(Reader *r, guint line, Elem el, Attr a, const char *rule)
{
	char *q = pg_shown(sx_attr(r, a), (gssize)r->alen[a], 80, TRUE);
	char *why = g_strdup_printf("%s is not %s", q, rule);

	bad_attr(r, line, el, a, why);
	g_free(why);
	g_free(q);
}

static gboolean
get_site(Reader *r, guint line, Elem el, Attr a, char **out)
{
	if (!dir_check_site(sx_attr(r, a), r->alen[a])) {
		bad_value(r, line, el, a, "a site name (1-32 of A-Z a-z 0-9 _ -)");
		return FALSE;
	}
	*out = g_strdup(sx_attr(r, a));
	return TRUE;
}

static gboolean
get_number(Reader *r, guint line, Elem el, Attr a, guint64 min, guint64 *out)
{
	if (!sx_parse_number(sx_attr(r, a), r->alen[a], min, out)) {
		bad_value(r, line, el, a, min ? "a whole number from 1 to 9223372036854775807" :
		    "a whole number from 0 to 9223372036854775807");
		return FALSE;
	}
	return TRUE;
}

static gboolean
get_legacy(Reader *r, guint line, Elem el, Attr a, char **out)
{
	char *why = NULL;

	if (!(*out = sx_canon_legacy(sx_attr(r, a), r->alen[a], &why))) {
		bad_attr(r, line, el, a, why);
		g_free(why);
		return FALSE;
	}
	return TRUE;
}

static gboolean
get_display(Reader *r, guint line, Elem el, char **out)
{
	const char *why;

	if (!(r->have & BIT(AT_DISPLAY))) {
		*out = g_strdup("");
		return TRUE;
	}
	if ((why = dir_check_display(sx_attr(r, AT_DISPLAY), r->alen[AT_DISPLAY]))) {
		bad_attr(r, line, el, AT_DISPLAY, why);
		return FALSE;
	}
	*out = g_strdup(sx_attr(r, AT_DISPLAY));
	return TRUE;
}

static gboolean
get_type(Reader *r, guint line, Elem el, DirType *out)
{
	if (!dir_type_parse(sx_attr(r, AT_TYPE), out)) {
		bad_value(r, line, el, AT_TYPE, "a type (mailbox, custom or list)");
		return FALSE;
	}
	return TRUE;
}

static gboolean
get_deleted(Reader *r, guint line, Elem el, gboolean *out)
{
	const char *v = sx_attr(r, AT_DELETED);

	*out = FALSE;
	if (!v || strcmp(v, "false") == 0)
		return TRUE;
	if (strcmp(v, "true") == 0) {
		*out = TRUE;
		return TRUE;
	}
	bad_value(r, line, el, AT_DELETED, "true or false");
	return FALSE;
}

/* The target of a custom recipient (user@domain) and who may have one. */
static gboolean
get_target(Reader *r, guint line, Elem el, DirEntry *e)
{
	char *why = NULL, *addr;

	if (!(r->have & BIT(AT_TARGET))) {
		if (e->type == DIR_CUSTOM && !e->deleted) {
			sx_fail(r, line, SYNC_ERROR_SCHEMA, "<%s> of a custom recipient needs the "
			    "attribute target", sx_elem_names[el]);
			return FALSE;
		}
		return TRUE;
	}
	if (e->type != DIR_CUSTOM) {
		sx_fail(r, line, SYNC_ERROR_SCHEMA,
		    "<%s> attribute target: only a custom recipient "
		    "has a target, not a %s", sx_elem_names[el], dir_type_name(e->type));
		return FALSE;
	}
	if (!(addr = sx_canon_smtp(sx_attr(r, AT_TARGET), r->alen[AT_TARGET], &why))) {
		bad_attr(r, line, el, AT_TARGET, why);
		g_free(why);
		return FALSE;
	}
	e->target = g_strdup_printf("SMTP:%s", addr);
	g_free(addr);
	return TRUE;
}

/* Remember key (a name, address or id) for the whole file; refuse it twice. */
static gboolean
claim(Reader *r, const char *what, const char *key, guint line)
{
	gpointer old;

	if (g_hash_table_lookup_extended(r->keys, key, NULL, &old)) {
		sx_fail(r, line, SYNC_ERROR_SCHEMA, "%s %s is used twice (lines %u and %u)", what,
		    key, GPOINTER_TO_UINT(old), line);
		return FALSE;
	}
	g_hash_table_insert(r->keys, g_string_chunk_insert(r->key_chunk, key),
	    GUINT_TO_POINTER(line));
	return TRUE;
}

static gboolean
count_entry(Reader *r, guint line)
{
	if (++r->entries > sx_limit_entries) {
		sx_fail(r, line, SYNC_ERROR_LIMIT, "more than %u entries in one file",
		    sx_limit_entries);
		return FALSE;
	}
	return TRUE;
}

static void
start_root(Reader *r, guint line)
{
	static const SyncKind kinds[] = { SYNC_POSTOFFICE, SYNC_GAL, SYNC_REPLICATION,
	    SYNC_CANONICAL };
	const char *version = sx_attr(r, AT_VERSION), *kind = sx_attr(r, AT_KIND);
	guint allowed = 0, required = 0;
	SyncDoc *doc = NULL;

	if (!version) {
		sx_fail(r, line, SYNC_ERROR_SCHEMA, "<sync> needs the attribute version=\"%s\"",
		    SYNC_VERSION);
		return;
	}
	if (strcmp(version, SYNC_VERSION) != 0) {
		char *q = pg_shown(version, (gssize)r->alen[AT_VERSION], 80, TRUE);
		sx_fail(r, line, SYNC_ERROR_SCHEMA, "unsupported version %s: this postgate reads "
		    "version %s", q, SYNC_VERSION);
		g_free(q);
		return;
	}
	if (!kind) {
		sx_fail(r, line, SYNC_ERROR_SCHEMA, "<sync> needs the attribute kind (postoffice, "
		    "gal, replication or canonical)");
		return;
	}
	for (guint i = 0; i < G_N_ELEMENTS(kinds); i++)
		if (strcmp(kind, sync_kind_name(kinds[i])) == 0)
			doc = sync_doc_new(kinds[i]);
	if (!doc) {
		char *q = pg_shown(kind, (gssize)r->alen[AT_KIND], 80, TRUE);
		sx_fail(r, line, SYNC_ERROR_SCHEMA, "unknown kind %s (postoffice, gal, replication "
		    "or canonical)", q);
		g_free(q);
		return;
	}
	r->doc = doc;
	if (doc->kind == SYNC_POSTOFFICE || doc->kind == SYNC_GAL)
		required = BIT(AT_POSTOFFICE);
	else if (doc->kind == SYNC_REPLICATION)
		required = BIT(AT_FROM) | BIT(AT_FOR);
	allowed = required | BIT(AT_VERSION) | BIT(AT_KIND);
	for (int a = 0; a < AT_COUNT; a++) {
		if ((r->have & BIT(a)) && !(allowed & BIT(a))) {
			sx_fail(r, line, SYNC_ERROR_SCHEMA, "attribute %s is not allowed on "
			    "<sync kind=\"%s\">", sx_attr_names[a], kind);
			return;
		}
		if ((required & BIT(a)) && !(r->have & BIT(a))) {
			sx_fail(r, line, SYNC_ERROR_SCHEMA,
			    "<sync kind=\"%s\"> needs the attribute %s",
			    kind, sx_attr_names[a]);
			return;
		}
	}
	if (required & BIT(AT_POSTOFFICE)) {
		char net[ADDR_PART_MAX + 1], po[ADDR_PART_MAX + 1];
		GError *e = NULL;
		if (!addr_parse_po(sx_attr(r, AT_POSTOFFICE), r->alen[AT_POSTOFFICE], net,
		    po, &e)) {
			bad_attr(r, line, EL_SYNC, AT_POSTOFFICE, e->message);
			g_error_free(e);
			return;
		}
		doc->postoffice = g_strdup_printf("%s/%s", net, po);
	}
	if (required & BIT(AT_FROM)) {
		if (!get_site(r, line, EL_SYNC, AT_FROM, &doc->from_site) ||
		    !get_site(r, line, EL_SYNC, AT_FOR, &doc->for_site))
			return;
		if (strcmp(doc->from_site, doc->for_site) == 0) {
			sx_fail(r, line, SYNC_ERROR_SCHEMA, "from and for name the same site %s",
			    doc->from_site);
			return;
		}
	}
}

/* <mailbox>, <custom> and <list> of a postoffice export. */
static void
start_po_item(Reader *r, Elem el, guint line)
{
	char name[ADDR_PART_MAX + 1];
	DirEntry *e;
	GError *err = NULL;

	if (!count_entry(r, line))
		return;
	if (!addr_parse_part(sx_attr(r, AT_NAME), r->alen[AT_NAME], "name", name, &err)) {
		bad_attr(r, line, el, AT_NAME, err->message);
		g_error_free(err);
		return;
	}
	if (!claim(r, "the name", name, line))
		return;
	e = r->cur = dir_entry_new(el == EL_MAILBOX ? DIR_MAILBOX :
	    el == EL_CUSTOM ? DIR_CUSTOM : DIR_LIST);
	e->legacy = g_strdup_printf("%s/%s", r->doc->postoffice, name);
	if (!get_display(r, line, el, &e->name))
		return;
	get_target(r, line, el, e);
}

/* <member address="..."/> of a postoffice export's list. */
static void
add_member(Reader *r, guint line, char *member)
{
	gpointer old;
	DirEntry *e = r->cur;

	if (e->members->len >= DIR_MAX_MEMBERS) {
		sx_fail(r, line, SYNC_ERROR_LIMIT, "%s has more than %u members", e->legacy,
		    DIR_MAX_MEMBERS);
		g_free(member);
		return;
	}
	if (g_hash_table_lookup_extended(r->cur_members, member, NULL, &old)) {
		sx_fail(r, line, SYNC_ERROR_SCHEMA, "member %s is listed twice (lines %u and %u)",
		    member, GPOINTER_TO_UINT(old), line);
		g_free(member);
		return;
	}
	g_ptr_array_add(e->members, member);
	g_hash_table_insert(r->cur_members, member, GUINT_TO_POINTER(line));
}

static void
start_gal_entry(Reader *r, guint line)
{
	DirType type;
	DirEntry *e;
	char *legacy = NULL;

	if (!count_entry(r, line) || !get_type(r, line, EL_ENTRY, &type) ||
	    !get_legacy(r, line, EL_ENTRY, AT_ADDRESS, &legacy))
		return;
	if (!claim(r, "the address", legacy, line)) {
		g_free(legacy);
		return;
	}
	e = r->cur = dir_entry_new(type);
	e->legacy = legacy;
	if (!get_display(r, line, EL_ENTRY, &e->name))
		return;
	if (r->have & BIT(AT_SMTP)) {
		char *why = NULL, *addr = sx_canon_smtp(sx_attr(r, AT_SMTP),
		    r->alen[AT_SMTP], &why);
		if (!addr) {
			bad_attr(r, line, EL_ENTRY, AT_SMTP, why);
			g_free(why);
			return;
		}
		g_ptr_array_add(e->proxies, g_strdup_printf("SMTP:%s", addr));
		g_free(addr);
	}
}

/* <change> of a replication file and <entry> of a canonical dump. */
static void
start_full_entry(Reader *r, Elem el, guint line)
{
	DirType type;
	DirEntry *e;

	if (!count_entry(r, line))
		return;
	if (!dir_check_id(sx_attr(r, AT_ID), r->alen[AT_ID])) {
		bad_value(r, line, el, AT_ID, "an id (1-64 of A-Z a-z 0-9 . _ : -)");
		return;
	}
	if (!get_type(r, line, el, &type))
		return;
	e = r->cur = dir_entry_new(type);
	e->id = g_strdup(sx_attr(r, AT_ID));
	if (!get_deleted(r, line, el, &e->deleted) ||
	    !get_site(r, line, el, AT_HOME, &e->home_site) ||
	    !get_legacy(r, line, el, AT_LEGACY, &e->legacy) ||
	    !get_display(r, line, el, &e->name) ||
	    !get_target(r, line, el, e))
		return;
	if (el == EL_CHANGE) {
		guint64 changed;
		if (!get_site(r, line, el, AT_ORIGIN, &e->origin) ||
		    !get_number(r, line, el, AT_USN, 1, &e->usn) ||
		    !get_number(r, line, el, AT_VERSION, 1, &e->version) ||
		    !get_number(r, line, el, AT_CHANGED, 0, &changed))
			return;
		e->changed = (gint64)changed;
	}
	claim(r, "the id", e->id, line);
}

static void
start_seen(Reader *r, guint line)
{
	char *site = NULL;
	guint64 usn, *v;
	gpointer old;

	if (!get_site(r, line, EL_SEEN, AT_SITE, &site) ||
	    !get_number(r, line, EL_SEEN, AT_USN, 0, &usn)) {
		g_free(site);
		return;
	}
	if (g_hash_table_lookup_extended(r->seen_lines, site, NULL, &old)) {
		sx_fail(r, line, SYNC_ERROR_SCHEMA,
		    "site %s is in the vector twice (lines %u and %u)",
		    site, GPOINTER_TO_UINT(old), line);
		g_free(site);
		return;
	}
	if (g_hash_table_size(r->doc->vector) >= SYNC_MAX_SITES) {
		sx_fail(r, line, SYNC_ERROR_LIMIT, "more than %u sites in the vector",
		    SYNC_MAX_SITES);
		g_free(site);
		return;
	}
	v = g_new(guint64, 1);
	*v = usn;
	g_hash_table_insert(r->seen_lines, g_strdup(site), GUINT_TO_POINTER(line));
	g_hash_table_insert(r->doc->vector, site, v);
}

gboolean
sx_send_header(Reader *r)
{
	GError *e = NULL;

	if (r->header_sent)
		return TRUE;
	r->header_sent = TRUE;
	if (!r->collect && r->sink && r->sink->header && !r->sink->header(r->doc, r->data, &e)) {
		sx_fail_with(r, e);
		return FALSE;
	}
	return TRUE;
}

/* The entry cur is complete and checked: hand it over. */
static void
emit(Reader *r, guint line)
{
	DirEntry *e = r->cur;
	GError *err = NULL;

	r->cur = NULL;
	r->primary_line = 0;
	g_hash_table_remove_all(r->cur_members);
	if (!sx_send_header(r)) {
		dir_entry_free(e);
		return;
	}
	if (r->collect)
		g_ptr_array_add(r->doc->entries, e);
	else if (r->sink && r->sink->entry) {
		if (!r->sink->entry(e, line, r->data, &err))
			sx_fail_with(r, err);
	} else
		dir_entry_free(e);
}

/* The text of the element just ended, without white space around it. */
static const char *
text_trimmed(Reader *r, size_t *len)
{
	const char *text = r->text->str;

	*len = r->text->len;
	while (*len > 0 && g_ascii_isspace(*text)) {
		text++;
		(*len)--;
	}
	while (*len > 0 && g_ascii_isspace(text[*len - 1]))
		(*len)--;
	return text;
}

static void
end_proxy(Reader *r, guint line)
{
	DirEntry *e = r->cur;
	char *why = NULL, *proxy;
	size_t len;
	const char *text = text_trimmed(r, &len);

	if (!(proxy = sx_canon_proxy(text, len, &why))) {
		sx_fail(r, line, SYNC_ERROR_SCHEMA, "<proxy>: %s", why);
		g_free(why);
		return;
	}
	if (e->proxies->len >= DIR_MAX_PROXIES) {
		sx_fail(r, line, SYNC_ERROR_LIMIT, "%s has more than %u proxies", e->id,
		    DIR_MAX_PROXIES);
		g_free(proxy);
		return;
	}
	for (guint i = 0; i < e->proxies->len; i++)
		if (strcmp((char *)e->proxies->pdata[i] + 5, proxy + 5) == 0) {
			sx_fail(r, line, SYNC_ERROR_SCHEMA, "<proxy>: %s twice in %s",
			    proxy + 5, e->id);
			g_free(proxy);
			return;
		}
	if (proxy[0] == 'S') {
		if (r->primary_line) {
			sx_fail(r, line, SYNC_ERROR_SCHEMA,
			    "<proxy>: a second primary %s: %s already "
			    "has %s (line %u), and an entry has exactly one SMTP: proxy", proxy,
			    e->id, dir_primary(e), r->primary_line);
			g_free(proxy);
			return;
		}
		r->primary_line = line;
	}
	g_ptr_array_add(e->proxies, proxy);
}

static void
end_member(Reader *r, guint line)
{
	char *why = NULL, *member;
	size_t len;
	const char *text = text_trimmed(r, &len);

	if (!(member = sx_canon_legacy(text, len, &why))) {
		sx_fail(r, line, SYNC_ERROR_SCHEMA, "<member>: %s", why);
		g_free(why);
		return;
	}
	add_member(r, line, member);
}

static void
end_full_entry(Reader *r, Elem el, guint line)
{
	DirEntry *e = r->cur;

	if (!e->deleted && !r->primary_line) {
		sx_fail(r, line, SYNC_ERROR_SCHEMA, "%s %s has no primary proxy: a live entry has "
		    "exactly one SMTP: proxy", el == EL_CHANGE ? "change" : "entry", e->id);
		return;
	}
	if (el == EL_ENTRY) {
		/* canonical: proxies and members in one order, whatever the file's */
		g_ptr_array_sort(e->proxies, sx_compare_str);
		g_ptr_array_sort(e->members, sx_compare_str);
	}
	emit(r, line);
}

void
sx_on_start(void *ctx, const xmlChar *localname, const xmlChar *prefix, const xmlChar *uri,
    int nb_ns, const xmlChar **ns, int nb_attrs, int nb_defaulted, const xmlChar **attrs)
{
	Reader *r = ctx;
	guint line = sx_cur_line(r);
	Elem parent, el;

	if (r->error)
		return;
	if (r->depth >= SYNC_MAX_DEPTH) {
		sx_fail(r, line, SYNC_ERROR_LIMIT, "elements nested deeper than %d",
		    SYNC_MAX_DEPTH);
		return;
	}
	parent = r->depth ? r->stack[r->depth - 1].el : EL_NONE;
	el = classify(r, parent, (const char *)localname, (const char *)uri, line);
	if (el == EL_NONE || !collect_attrs(r, el, nb_attrs, attrs, line))
		return;
	r->stack[r->depth].el = el;
	r->stack[r->depth].line = line;
	r->depth++;
	switch (el) {
	case EL_SYNC:
		start_root(r, line);
		break;
	case EL_MAILBOX:
	case EL_CUSTOM:
	case EL_LIST:
		start_po_item(r, el, line);
		break;
	case EL_MEMBER_REF: {
		char *member = NULL;
		if (get_legacy(r, line, el, AT_ADDRESS, &member))
			add_member(r, line, member);
		break;
	}
	case EL_ENTRY:
		if (r->doc->kind == SYNC_GAL)
			start_gal_entry(r, line);
		else
			start_full_entry(r, el, line);
		break;
	case EL_VECTOR:
		r->vector_seen = TRUE;
		break;
	case EL_SEEN:
		start_seen(r, line);
		break;
	case EL_CHANGE:
		r->change_seen = TRUE;
		start_full_entry(r, el, line);
		break;
	case EL_PROXY:
	case EL_MEMBER:
		g_string_truncate(r->text, 0);
		break;
	default:
		break;
	}
}

void
sx_on_end(void *ctx, const xmlChar *localname, const xmlChar *prefix, const xmlChar *uri)
{
	Reader *r = ctx;
	Frame f;

	if (r->error || r->depth == 0)
		return;
	f = r->stack[--r->depth];
	switch (f.el) {
	case EL_SYNC:
		r->root_closed = TRUE;
		break;
	case EL_MAILBOX:
	case EL_CUSTOM:
	case EL_LIST:
		emit(r, f.line);
		break;
	case EL_ENTRY:
		if (r->doc->kind == SYNC_GAL)
			emit(r, f.line);
		else
			end_full_entry(r, EL_ENTRY, f.line);
		break;
	case EL_CHANGE:
		end_full_entry(r, EL_CHANGE, f.line);
		break;
	case EL_PROXY:
		end_proxy(r, f.line);
		break;
	case EL_MEMBER:
		end_member(r, f.line);
		break;
	default:
		break;
	}
}

void
sx_on_text(void *ctx, const xmlChar *ch, int len)
{
	Reader *r = ctx;
	Elem el;

	if (r->error || r->depth == 0 || len <= 0)
		return;
	el = r->stack[r->depth - 1].el;
	if (el == EL_PROXY || el == EL_MEMBER) {
		if (r->text->len + (size_t)len > SYNC_MAX_TEXT) {
			sx_fail(r, r->stack[r->depth - 1].line, SYNC_ERROR_LIMIT,
			    "the text of <%s> is longer than %u bytes", sx_elem_names[el],
			    SYNC_MAX_TEXT);
			return;
		}
		g_string_append_len(r->text, (const char *)ch, len);
		return;
	}
	for (int i = 0; i < len; i++)
		if (ch[i] != ' ' && ch[i] != '\t' && ch[i] != '\n' && ch[i] != '\r') {
			sx_fail(r, sx_cur_line(r), SYNC_ERROR_SCHEMA, "text is not allowed in <%s>",
			    sx_elem_names[el]);
			return;
		}
}
