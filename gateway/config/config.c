/* config.c - the configuration object: its groups, its life, its getters.
 *
 * Owns: making a configuration with every fixed group at its defaults, a
 * group of the file (section), the postoffice and site-link views handed
 * out, freeing it all, and the typed getters the rest of the gateway reads
 * (see pg_config.h).  Never: reads a file or checks a value (parse.c,
 * values.c); a getter asked for a key of the wrong group or type aborts:
 * a bug, not bad input.
 */
#include "config.h"

#include <string.h>

#include "config/config_int.h"

#include "address.h"

G_DEFINE_QUARK(postgate-config-error-quark, config_error)

CfgSection *
cfg_section_new(ConfigGroup group, const char *name, unsigned line)
{
	CfgSection *s = g_new0(CfgSection, 1);
	GError *e = NULL;

	s->group = group;
	s->line = line;
	s->name = g_strdup(name);
	s->label = name ? g_strdup_printf("[%s %s]", cfg_groups[group].name, name) :
	    g_strdup_printf("[%s]", cfg_groups[group].name);
	for (int i = 0; i < CONFIG_KEY_COUNT; i++) {
		const CfgKeyInfo *k = &cfg_keys[i];
		if (k->group != group || k->def == NULL)
			continue;
		if (!cfg_value_parse(k, k->def, &s->v[i], &e))
			g_error("config: default of %s is bad: %s", k->name, e->message);
	}
	return s;
}

static void
section_free(gpointer p)
{
	CfgSection *s = p;

	for (int i = 0; i < CONFIG_KEY_COUNT; i++)
		cfg_value_clear(&s->v[i]);
	g_free(s->label);
	g_free(s->name);
	g_free(s);
}

PgConfig *
cfg_new(const char *name)
{
	PgConfig *cfg = g_new0(PgConfig, 1);

	cfg->name = g_strdup(name);
	for (int g = 0; g < CONFIG_GROUP_COUNT; g++)
		if (!cfg_groups[g].instances)
			cfg->fixed[g] = cfg_section_new(g, NULL, 0);
	cfg->postoffices = g_ptr_array_new_with_free_func(section_free);
	cfg->links = g_ptr_array_new_with_free_func(section_free);
	return cfg;
}

void
cfg_make_views(PgConfig *cfg)
{
	for (guint i = 0; i < cfg->postoffices->len; i++) {
		CfgSection *s = cfg->postoffices->pdata[i];
		s->po_view.name = s->name;
		s->po_view.net = s->net;
		s->po_view.po = s->po;
		s->po_view.dir = s->v[CONFIG_PO_DIR].text;
		s->po_view.key_file = s->v[CONFIG_PO_KEY_FILE].text;
		s->po_view.codepage = s->v[CONFIG_PO_CODEPAGE].text;
		s->po_view.line = s->line;
	}
	for (guint i = 0; i < cfg->links->len; i++) {
		CfgSection *s = cfg->links->pdata[i];
		s->link_view.name = s->name;
		s->link_view.domains = (const char *const *)s->v[CONFIG_LINK_DOMAINS].list;
		s->link_view.host = &s->v[CONFIG_LINK_HOST].hp;
		s->link_view.line = s->line;
	}
}

void
config_free(PgConfig *cfg)
{
	if (cfg == NULL)
		return;
	for (int g = 0; g < CONFIG_GROUP_COUNT; g++)
		if (cfg->fixed[g] != NULL)
			section_free(cfg->fixed[g]);
	g_ptr_array_free(cfg->postoffices, TRUE);
	g_ptr_array_free(cfg->links, TRUE);
	g_free(cfg->name);
	g_free(cfg);
}

const char *
config_file_name(const PgConfig *cfg)
{
	return cfg->name;
}

/* ---- getters ---- */

static const CfgValue *
fixed_value(const PgConfig *cfg, ConfigKey key)
{
	if ((unsigned)key >= CONFIG_KEY_COUNT ||
	    cfg_groups[cfg_keys[key].group].instances)
		g_error("config: key %d is not in a fixed group", (int)key);
	return &cfg->fixed[cfg_keys[key].group]->v[key];
}

const char *
config_string(const PgConfig *cfg, ConfigKey key)
{
	const CfgValue *v = fixed_value(cfg, key);

	return v->text ? v->text : "";
}

gint64
config_int(const PgConfig *cfg, ConfigKey key)
{
	const CfgValue *v = fixed_value(cfg, key);
	CfgValueType t = cfg_keys[key].type;

	if (t != T_INT && t != T_SIZE && t != T_DURATION)
		g_error("config: key %s is not a number", cfg_keys[key].name);
	return v->num;
}

const char *const *
config_list(const PgConfig *cfg, ConfigKey key)
{
	static const char *const none[] = { NULL };
	const CfgValue *v = fixed_value(cfg, key);

	if (!cfg_types[cfg_keys[key].type].list)
		g_error("config: key %s is not a list", cfg_keys[key].name);
	return v->list ? (const char *const *)v->list : none;
}

const PgHostPort *
config_hostport(const PgConfig *cfg, ConfigKey key)
{
	const CfgValue *v = fixed_value(cfg, key);

	if (cfg_keys[key].type != T_HOSTPORT)
		g_error("config: key %s is not a host", cfg_keys[key].name);
	return v->hp.host ? &v->hp : NULL;
}

guint
config_postoffice_count(const PgConfig *cfg)
{
	return cfg->postoffices->len;
}

const PgConfigPostoffice *
config_postoffice(const PgConfig *cfg, guint i)
{
	g_return_val_if_fail(i < cfg->postoffices->len, NULL);
	return &((CfgSection *)cfg->postoffices->pdata[i])->po_view;
}

const PgConfigPostoffice *
config_postoffice_find(const PgConfig *cfg, const char *name)
{
	char net[ADDR_PART_MAX + 1], po[ADDR_PART_MAX + 1];

	if (!addr_parse_po(name, strlen(name), net, po, NULL))
		return NULL;
	for (guint i = 0; i < cfg->postoffices->len; i++) {
		CfgSection *s = cfg->postoffices->pdata[i];
		if (strcmp(s->net, net) == 0 && strcmp(s->po, po) == 0)
			return &s->po_view;
	}
	return NULL;
}

guint
config_site_link_count(const PgConfig *cfg)
{
	return cfg->links->len;
}

const PgConfigSiteLink *
config_site_link(const PgConfig *cfg, guint i)
{
	g_return_val_if_fail(i < cfg->links->len, NULL);
	return &((CfgSection *)cfg->links->pdata[i])->link_view;
}

const PgConfigSiteLink *
config_site_link_find(const PgConfig *cfg, const char *name)
{
	for (guint i = 0; i < cfg->links->len; i++) {
		CfgSection *s = cfg->links->pdata[i];
		if (g_ascii_strcasecmp(s->name, name) == 0)
			return &s->link_view;
	}
	return NULL;
}
