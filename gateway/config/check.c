/* check.c - the checks across keys of postgate.conf, and check-config's output.
 *
 * Owns: what is checked after the last line: required groups and keys
 * (reported on their group's header, or line 1), keys that go in pairs,
 * min_backoff against max_backoff, the gateway_po and the postmaster
 * against the served postoffices, a dir or a domain given twice, a
 * site-link naming this site; with CONFIG_CHECK_FILES, the postoffice dirs
 * and key files and that the other files named are regular files (only
 * these checks read the file system); and `postgate check-config`'s list
 * of the settings that differ from their defaults.  Never: reads the
 * configuration file, or writes to a file it checks.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config_int.h"

#include "keyfile.h"

static const CfgValue *
sec_value(const CfgSection *sec, ConfigKey k)
{
	return &sec->v[k];
}

/* A file key that the file set to a good, non-empty value. */
static gboolean
usable(const CfgValue *v)
{
	return v->line != 0 && !v->bad && v->text != NULL && *v->text != '\0';
}

/* Not for a group with an unread line: the key may be on it. */
static void
check_required(CfgParser *P, CfgSection *sec)
{
	if (sec->line == 0 || sec->unread)
		return;
	for (int i = 0; i < CONFIG_KEY_COUNT; i++)
		if (cfg_keys[i].group == sec->group && cfg_keys[i].def == NULL &&
		    sec->v[i].line == 0)
			cfg_diag(P, sec->line, CONFIG_ERROR_MISSING, "missing required "
			    "key %s in %s", cfg_keys[i].name, sec->label);
}

/* Both keys set or neither. */
static void
check_pair(CfgParser *P, CfgSection *sec, ConfigKey a, ConfigKey b)
{
	const CfgValue *va = sec_value(sec, a), *vb = sec_value(sec, b);
	gboolean sa = *va->text != '\0', sb = *vb->text != '\0';

	if (va->bad || vb->bad || sa == sb || sec->unread)
		return;
	cfg_diag(P, sa ? va->line : vb->line, CONFIG_ERROR_VALUE, "%s is set but "
	    "%s is not: set both or neither", cfg_keys[sa ? a : b].name,
	    cfg_keys[sa ? b : a].name);
}

/* No domain may belong to two sites. */
static void
check_domains(CfgParser *P, const CfgValue *v, const char *owner,
    GHashTable *seen)
{
	if (!usable(v))
		return;
	for (char **d = v->list; *d; d++) {
		const char *first = g_hash_table_lookup(seen, *d);
		if (first != NULL)
			cfg_diag(P, v->line, CONFIG_ERROR_VALUE, "domain %s already belongs "
			    "to %s", *d, first);
		else
			g_hash_table_insert(seen, *d, (gpointer)owner);
	}
}

void
cfg_check_values(CfgParser *P)
{
	PgConfig *cfg = P->cfg;
	CfgSection *site = cfg->fixed[CONFIG_GROUP_SITE];
	CfgSection *dl = cfg->fixed[CONFIG_GROUP_DELIVERY];
	const CfgValue *lo = sec_value(dl, CONFIG_DELIVERY_MIN_BACKOFF);
	const CfgValue *hi = sec_value(dl, CONFIG_DELIVERY_MAX_BACKOFF);
	const CfgValue *gw = sec_value(site, CONFIG_SITE_GATEWAY_PO);
	const CfgValue *sname = sec_value(site, CONFIG_SITE_NAME);
	const CfgValue *pm = sec_value(site, CONFIG_SITE_POSTMASTER);
	GHashTable *seen;

	if (site->line == 0 && !P->lost_lines)
		cfg_diag(P, 1, CONFIG_ERROR_MISSING, "missing required group [site]");
	for (int g = 0; g < CONFIG_GROUP_COUNT; g++)
		if (cfg->fixed[g] != NULL)
			check_required(P, cfg->fixed[g]);
	for (guint i = 0; i < cfg->postoffices->len; i++)
		check_required(P, cfg->postoffices->pdata[i]);
	for (guint i = 0; i < cfg->links->len; i++)
		check_required(P, cfg->links->pdata[i]);

	if (!lo->bad && !hi->bad && hi->num < lo->num)
		cfg_diag(P, hi->line ? hi->line : lo->line, CONFIG_ERROR_VALUE,
		    "max_backoff (%s) is less than min_backoff (%s)", hi->text,
		    lo->text);
	check_pair(P, cfg->fixed[CONFIG_GROUP_SMTPD], CONFIG_SMTPD_TLS_CERT_FILE,
	    CONFIG_SMTPD_TLS_KEY_FILE);
	check_pair(P, dl, CONFIG_DELIVERY_AUTH_USER,
	    CONFIG_DELIVERY_AUTH_PASSWORD_FILE);

	for (guint i = 0; i < cfg->postoffices->len; i++) {
		CfgSection *po = cfg->postoffices->pdata[i];
		const CfgValue *dir = sec_value(po, CONFIG_PO_DIR);
		if (usable(gw) && strcmp(po->name, gw->text) == 0)
			cfg_diag(P, po->line, CONFIG_ERROR_VALUE, "[postoffice %s] is the "
			    "gateway's own gateway_po; a served postoffice needs a "
			    "name of its own", po->name);
		if (!usable(dir))
			continue;
		for (guint j = 0; j < i; j++) {
			const CfgValue *odir = sec_value(cfg->postoffices->pdata[j],
			    CONFIG_PO_DIR);
			if (usable(odir) && strcmp(odir->text, dir->text) == 0) {
				cfg_diag(P, dir->line, CONFIG_ERROR_VALUE, "dir %s is already "
				    "the dir of postoffice %s (line %u)", dir->text,
				    ((CfgSection *)cfg->postoffices->pdata[j])->name,
				    odir->line);
				break;
			}
		}
	}

	if (usable(pm) && *pm->text && !P->lost_lines) {
		gboolean served = FALSE;
		for (guint i = 0; i < cfg->postoffices->len && !served; i++) {
			const char *name = ((CfgSection *)cfg->postoffices->pdata[i])->name;
			size_t n = strlen(name);
			served = strncmp(pm->text, name, n) == 0 && pm->text[n] == '/';
		}
		if (!served)
			cfg_diag(P, pm->line, CONFIG_ERROR_VALUE, "postmaster %s is not on a "
			    "postoffice this site serves (a [postoffice NET/PO] group)",
			    pm->text);
	}

	seen = g_hash_table_new(g_str_hash, g_str_equal);
	check_domains(P, sec_value(site, CONFIG_SITE_DOMAINS), "[site]", seen);
	for (guint i = 0; i < cfg->links->len; i++) {
		CfgSection *ln = cfg->links->pdata[i];
		if (usable(sname) && g_ascii_strcasecmp(ln->name, sname->text) == 0)
			cfg_diag(P, ln->line, CONFIG_ERROR_VALUE, "%s names this site itself "
			    "([site] name)", ln->label);
		check_domains(P, sec_value(ln, CONFIG_LINK_DOMAINS), ln->label, seen);
	}
	g_hash_table_destroy(seen);
}

/* What a file that is not a regular file is, for a message. */
const char *
cfg_file_kind(mode_t mode)
{
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISSOCK(mode))
		return "a socket";
	if (S_ISCHR(mode) || S_ISBLK(mode))
		return "a device";
	return "not a file";
}

/* A file a later command reads whole (a TLS file, the password file): one
 * that is not a regular file would hang it.  Only stat(2): it may be
 * readable by root alone, and a missing file is its reader's error. */
static void
check_regular(CfgParser *P, CfgSection *sec, ConfigKey k)
{
	const CfgValue *v = sec_value(sec, k);
	struct stat st;

	if (usable(v) && stat(v->text, &st) == 0 && !S_ISREG(st.st_mode))
		cfg_diag(P, v->line, CONFIG_ERROR_FILE, "%s %s is not a regular "
		    "file (%s)", cfg_keys[k].name, v->text,
		    cfg_file_kind(st.st_mode));
}

/* The file-system checks: each postoffice's dir and key file, and that the
 * other files the configuration names are regular files. */
void
cfg_check_files(CfgParser *P)
{
	PgConfig *cfg = P->cfg;
	CfgSection *smtpd = cfg->fixed[CONFIG_GROUP_SMTPD];
	CfgSection *dl = cfg->fixed[CONFIG_GROUP_DELIVERY];

	check_regular(P, smtpd, CONFIG_SMTPD_TLS_CERT_FILE);
	check_regular(P, smtpd, CONFIG_SMTPD_TLS_KEY_FILE);
	check_regular(P, dl, CONFIG_DELIVERY_TLS_CA_FILE);
	check_regular(P, dl, CONFIG_DELIVERY_AUTH_PASSWORD_FILE);

	for (guint i = 0; i < cfg->postoffices->len; i++) {
		CfgSection *po = cfg->postoffices->pdata[i];
		const CfgValue *dir = sec_value(po, CONFIG_PO_DIR);
		const CfgValue *kf = sec_value(po, CONFIG_PO_KEY_FILE);
		struct stat st;
		GBytes *key;
		GError *e = NULL;

		if (usable(dir)) {
			if (stat(dir->text, &st) != 0 && errno == ENOENT)
				cfg_diag(P, dir->line, CONFIG_ERROR_FILE, "dir %s does not "
				    "exist", dir->text);
			else if (stat(dir->text, &st) != 0)
				cfg_diag(P, dir->line, CONFIG_ERROR_FILE, "dir %s: %s",
				    dir->text, g_strerror(errno));
			else if (!S_ISDIR(st.st_mode))
				cfg_diag(P, dir->line, CONFIG_ERROR_FILE, "dir %s is not a "
				    "directory", dir->text);
		}
		if (!usable(kf))
			continue;
		/* keyfile_load never waits on a FIFO; stat first only to name
		 * what the file is instead. */
		if (stat(kf->text, &st) == 0 && !S_ISREG(st.st_mode)) {
			cfg_diag(P, kf->line, CONFIG_ERROR_FILE, "key file %s is not a "
			    "regular file (%s)", kf->text, cfg_file_kind(st.st_mode));
			continue;
		}
		key = keyfile_load(kf->text, &e);
		if (key == NULL) {
			cfg_diag(P, kf->line, CONFIG_ERROR_FILE, "%s", e->message);
			g_error_free(e);
		} else {
			g_bytes_unref(key);
		}
	}
}

/* ---- check-config output ---- */

static void
print_section(const CfgSection *sec, FILE *out, gboolean *first)
{
	gboolean header = FALSE;

	for (int i = 0; i < CONFIG_KEY_COUNT; i++) {
		const CfgKeyInfo *k = &cfg_keys[i];
		const char *text = sec->v[i].text;
		char *def;
		gboolean differs;

		if (k->group != sec->group || text == NULL)
			continue;
		def = cfg_default_text(k);
		differs = def == NULL || strcmp(def, text) != 0;
		g_free(def);
		if (!differs)
			continue;
		if (!header) {
			fprintf(out, "%s%s\n", *first ? "" : "\n", sec->label);
			header = TRUE;
			*first = FALSE;
		}
		if (*text)
			fprintf(out, "%s = %s\n", k->name, text);
		else
			fprintf(out, "%s =\n", k->name);
	}
}

gboolean
config_print_nondefault(const PgConfig *cfg, FILE *out)
{
	gboolean first = TRUE;

	for (int g = 0; g < CONFIG_GROUP_COUNT; g++)
		if (cfg->fixed[g] != NULL)
			print_section(cfg->fixed[g], out, &first);
	for (guint i = 0; i < cfg->postoffices->len; i++)
		print_section(cfg->postoffices->pdata[i], out, &first);
	for (guint i = 0; i < cfg->links->len; i++)
		print_section(cfg->links->pdata[i], out, &first);
	return fflush(out) == 0 && !ferror(out);
}
