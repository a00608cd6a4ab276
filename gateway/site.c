/* site.c - configuration, privileges and state for subcommands (see site.h). */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "pg_log.h"
#include "site.h"

G_DEFINE_QUARK(postgate-site-error-quark, site_error)

gboolean
site_become_user(const char *user, GError **error)
{
	struct passwd *pw;

	if (!user || !*user) {
		if (geteuid() == 0)
			pg_warn(NULL, "running as root: [site] user is empty");
		return TRUE;
	}
	errno = 0;
	pw = getpwnam(user);
	if (!pw) {
		g_set_error(error, SITE_ERROR, SITE_ERROR_NOPERM,
		    "[site] user %s does not exist", user);
		return FALSE;
	}
	if (geteuid() == pw->pw_uid)
		return TRUE;
	if (geteuid() != 0) {
		g_set_error(error, SITE_ERROR, SITE_ERROR_NOPERM,
		    "cannot become [site] user %s: not started as root", user);
		return FALSE;
	}
	if (initgroups(user, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
	    setuid(pw->pw_uid) != 0) {
		g_set_error(error, SITE_ERROR, SITE_ERROR_NOPERM,
		    "cannot become [site] user %s: %s", user, g_strerror(errno));
		return FALSE;
	}
	/* Never able to return to root. */
	if (setuid(0) == 0) {
		g_set_error(error, SITE_ERROR, SITE_ERROR_NOPERM,
		    "dropping privileges to %s did not stick", user);
		return FALSE;
	}
	return TRUE;
}

int
site_exit_code(const GError *e)
{
	if (e->domain == SITE_ERROR) {
		switch (e->code) {
		case SITE_ERROR_CONFIG: return EX_CONFIG;
		case SITE_ERROR_NOPERM: return EX_NOPERM;
		default: return EX_CANTCREAT;
		}
	}
	if (e->domain == CONFIG_ERROR)
		return EX_CONFIG;
	if (e->domain == DIR_ERROR && e->code == DIR_ERROR_SCHEMA_VERSION)
		return EX_CONFIG;
	return EX_IOERR;
}

void
site_close(Site *site)
{
	if (!site)
		return;
	if (site->dir)
		dir_close(site->dir);
	if (site->postoffices)
		g_ptr_array_unref(site->postoffices);
	if (site->peers)
		g_array_unref(site->peers);
	config_free(site->cfg);
	g_free(site->postmaster);
	g_free(site);
}

Site *
site_open(const char *config_file, GError **error)
{
	return site_open_bound(config_file, NULL, NULL, error);
}

Site *
site_open_bound(const char *config_file, SiteBind bind, gpointer data, GError **error)
{
	Site *site = g_new0(Site, 1);
	const char *state_dir;
	char *path;

	site->cfg = config_load_file(config_file, error);
	if (!site->cfg)
		goto fail;
	if (bind && !bind(site->cfg, data, error))
		goto fail;
	if (!site_become_user(config_string(site->cfg, CONFIG_SITE_USER), error))
		goto fail;
	state_dir = config_string(site->cfg, CONFIG_SITE_STATE_DIR);
	if (g_mkdir_with_parents(state_dir, 0750) != 0) {
		g_set_error(error, SITE_ERROR, SITE_ERROR_STATE, "cannot create state_dir %s: %s",
		    state_dir, g_strerror(errno));
		goto fail;
	}
	site->postoffices = g_ptr_array_new();
	for (guint i = 0; i < config_postoffice_count(site->cfg); i++)
		g_ptr_array_add(site->postoffices,
		    (gpointer)config_postoffice(site->cfg, i)->name);
	g_ptr_array_add(site->postoffices,
	    (gpointer)config_string(site->cfg, CONFIG_SITE_GATEWAY_PO));
	g_ptr_array_add(site->postoffices, NULL);
	site->peers = g_array_new(FALSE, TRUE, sizeof(DirPeer));
	for (guint i = 0; i < config_site_link_count(site->cfg); i++) {
		const PgConfigSiteLink *l = config_site_link(site->cfg, i);
		DirPeer p = { l->name, l->domains };
		g_array_append_val(site->peers, p);
	}
	site->ctx.site = config_string(site->cfg, CONFIG_SITE_NAME);
	site->ctx.domains = config_list(site->cfg, CONFIG_SITE_DOMAINS);
	site->ctx.templates = config_list(site->cfg, CONFIG_SITE_PROXY_TEMPLATES);
	site->ctx.postoffices = (const char *const *)site->postoffices->pdata;
	site->ctx.peers = (const DirPeer *)(void *)site->peers->data;
	site->ctx.n_peers = site->peers->len;
	site->ctx.tombstone_lifetime = config_int(site->cfg, CONFIG_DIRECTORY_TOMBSTONE_LIFETIME);
	if (*config_string(site->cfg, CONFIG_SITE_POSTMASTER))
		site->postmaster = g_strdup(config_string(site->cfg, CONFIG_SITE_POSTMASTER));
	else if (config_postoffice_count(site->cfg) > 0)
		site->postmaster = g_strdup_printf("%s/POSTMASTER",
		    config_postoffice(site->cfg, 0)->name);
	site->ctx.postmaster = site->postmaster;
	path = g_build_filename(state_dir, "directory.db", NULL);
	site->dir = dir_open(path, error);
	g_free(path);
	if (!site->dir)
		goto fail;
	return site;
fail:
	site_close(site);
	return NULL;
}
