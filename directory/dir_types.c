/* dir_types.c - directory entries and sync documents (see dir_types.h). */
#include "config.h"

#include <string.h>

#include "dir_types.h"

DirEntry *
dir_entry_new(DirType type)
{
	DirEntry *e = g_new0(DirEntry, 1);

	e->type = type;
	e->proxies = g_ptr_array_new_with_free_func(g_free);
	e->members = g_ptr_array_new_with_free_func(g_free);
	return e;
}

void
dir_entry_free(DirEntry *e)
{
	if (!e)
		return;
	g_free(e->id);
	g_free(e->legacy);
	g_free(e->home_site);
	g_free(e->name);
	g_free(e->target);
	g_ptr_array_unref(e->proxies);
	g_ptr_array_unref(e->members);
	g_free(e->origin);
	g_free(e);
}

DirEntry *
dir_entry_copy(const DirEntry *s)
{
	DirEntry *e = dir_entry_new(s->type);

	e->id = g_strdup(s->id);
	e->legacy = g_strdup(s->legacy);
	e->home_site = g_strdup(s->home_site);
	e->name = g_strdup(s->name);
	e->target = g_strdup(s->target);
	for (guint i = 0; i < s->proxies->len; i++)
		g_ptr_array_add(e->proxies, g_strdup(s->proxies->pdata[i]));
	for (guint i = 0; i < s->members->len; i++)
		g_ptr_array_add(e->members, g_strdup(s->members->pdata[i]));
	e->deleted = s->deleted;
	e->origin = g_strdup(s->origin);
	e->usn = s->usn;
	e->version = s->version;
	e->changed = s->changed;
	return e;
}

static const char *const type_names[] = { "mailbox", "custom", "list" };

const char *
dir_type_name(DirType type)
{
	return (guint)type < G_N_ELEMENTS(type_names) ? type_names[type] : "unknown";
}

gboolean
dir_type_parse(const char *name, DirType *out)
{
	for (guint i = 0; i < G_N_ELEMENTS(type_names); i++)
		if (strcmp(name, type_names[i]) == 0) {
			*out = (DirType)i;
			return TRUE;
		}
	return FALSE;
}

const char *
dir_primary(const DirEntry *e)
{
	for (guint i = 0; i < e->proxies->len; i++)
		if (strncmp(e->proxies->pdata[i], "SMTP:", 5) == 0)
			return e->proxies->pdata[i];
	return NULL;
}

gboolean
dir_strings_equal(const GPtrArray *a, const GPtrArray *b)
{
	if (a->len != b->len)
		return FALSE;
	for (guint i = 0; i < a->len; i++)
		if (strcmp(a->pdata[i], b->pdata[i]) != 0)
			return FALSE;
	return TRUE;
}

gboolean
dir_check_id(const char *text, size_t len)
{
	if (len == 0 || len > DIR_ID_MAX)
		return FALSE;
	for (size_t i = 0; i < len; i++)
		if (!g_ascii_isalnum(text[i]) && (text[i] == '\0' || !strchr("._:-", text[i])))
			return FALSE;
	return TRUE;
}

gboolean
dir_check_site(const char *text, size_t len)
{
	if (len == 0 || len > DIR_SITE_MAX)
		return FALSE;
	for (size_t i = 0; i < len; i++)
		if (!g_ascii_isalnum(text[i]) && text[i] != '_' && text[i] != '-')
			return FALSE;
	return TRUE;
}

const char *
dir_check_display(const char *text, size_t len)
{
	const char *p = text, *end = text + len;

	if (len > DIR_NAME_MAX)
		return "the display name is longer than 255 bytes";
	if (!g_utf8_validate_len(text, len, NULL))
		return "the display name is not UTF-8";
	while (p < end) {
		gunichar c = g_utf8_get_char(p);
		if (c < 0x20 || (c >= 0x7f && c <= 0x9f))
			return "the display name holds a control character";
		p = g_utf8_next_char(p);
	}
	return NULL;
}

SyncDoc *
sync_doc_new(SyncKind kind)
{
	SyncDoc *d = g_new0(SyncDoc, 1);

	d->kind = kind;
	d->vector = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	d->entries = g_ptr_array_new_with_free_func((GDestroyNotify)dir_entry_free);
	return d;
}

void
sync_doc_free(SyncDoc *d)
{
	if (!d)
		return;
	g_free(d->postoffice);
	g_free(d->from_site);
	g_free(d->for_site);
	g_hash_table_unref(d->vector);
	g_ptr_array_unref(d->entries);
	g_free(d);
}

static const char *const kind_names[] = { "postoffice", "gal", "replication", "canonical" };

const char *
sync_kind_name(SyncKind kind)
{
	return (guint)kind < G_N_ELEMENTS(kind_names) ? kind_names[kind] : "unknown";
}
