/* site.c - configuration, privileges and state for subcommands (see site.h). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
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

/* Who this process is, for a message: "[site] user NAME" or "user NAME". */
static char *
whoami(const char *user)
{
	struct passwd *pw;

	if (user && *user)
		return g_strdup_printf("[site] user %s", user);
	pw = getpwuid(geteuid());
	if (pw)
		return g_strdup_printf("user %s", pw->pw_name);
	return g_strdup_printf("uid %u", (unsigned)geteuid());
}

/* As root, before dropping privileges: a missing state_dir is created 0700
 * and given to [site] user, its missing parents 0755 and root's. */
static gboolean
make_state_dir_as_root(const char *state_dir, const char *user, GError **error)
{
	struct passwd *pw;
	struct stat st;
	char *parent;
	mode_t old;
	int rc;

	if (geteuid() != 0 || !user || !*user || lstat(state_dir, &st) == 0)
		return TRUE;
	pw = getpwnam(user);
	if (!pw)
		return TRUE;    /* site_become_user says so */
	parent = g_path_get_dirname(state_dir);
	old = umask(022);
	rc = g_mkdir_with_parents(parent, 0755);
	umask(old);
	g_free(parent);
	if (rc != 0 || (mkdir(state_dir, 0700) != 0 && errno != EEXIST) ||
	    lchown(state_dir, pw->pw_uid, pw->pw_gid) != 0) {
		g_set_error(error, SITE_ERROR, SITE_ERROR_STATE, "cannot create "
		    "state_dir %s for [site] user %s: %s", state_dir, user,
		    g_strerror(errno));
		return FALSE;
	}
	return TRUE;
}

/* One path: warn when its group or others may use it, or another owns it. */
static guint
check_private(const char *what, const char *path, const struct passwd *pw)
{
	struct stat st;
	guint n = 0;

	if (lstat(path, &st) != 0)
		return 0;
	if (st.st_mode & 077) {
		pg_warn(NULL, "%s %s is %s-accessible (mode %04o): chmod %s %s", what,
		    path, st.st_mode & 007 ? "world" : "group",
		    (unsigned)(st.st_mode & 07777), S_ISDIR(st.st_mode) ? "700" : "600",
		    path);
		n++;
	}
	if (pw && st.st_uid != pw->pw_uid) {
		struct passwd *owner = getpwuid(st.st_uid);
		char *name = owner ? g_strdup(owner->pw_name) :
		    g_strdup_printf("uid %u", (unsigned)st.st_uid);
		pg_warn(NULL, "%s %s is owned by %s, not by [site] user %s", what,
		    path, name, pw->pw_name);
		g_free(name);
		n++;
	}
	return n;
}

static gint
path_cmp(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

guint
site_check_private(const PgConfig *cfg)
{
	const char *user = config_string(cfg, CONFIG_SITE_USER);
	const char *state_dir = config_string(cfg, CONFIG_SITE_STATE_DIR);
	struct passwd *pwent = *user ? getpwnam(user) : NULL, pw;
	guint n = 0;
	GDir *dir;

	/* getpwuid() in check_private reuses getpwnam()'s storage. */
	if (pwent) {
		pw = *pwent;
		pw.pw_name = g_strdup(pwent->pw_name);
	}
	n += check_private("state_dir", state_dir, pwent ? &pw : NULL);
	dir = g_dir_open(state_dir, 0, NULL);
	if (dir) {
		const char *name;
		GPtrArray *names = g_ptr_array_new_with_free_func(g_free);

		while ((name = g_dir_read_name(dir)) != NULL)
			g_ptr_array_add(names, g_build_filename(state_dir, name, NULL));
		g_dir_close(dir);
		/* In a stable order, whatever the file system's. */
		g_ptr_array_sort(names, path_cmp);
		for (guint i = 0; i < names->len; i++)
			n += check_private("state file", names->pdata[i], pwent ? &pw : NULL);
		g_ptr_array_unref(names);
	}
	for (guint i = 0; i < config_postoffice_count(cfg); i++) {
		const PgConfigPostoffice *po = config_postoffice(cfg, i);
		n += check_private("postoffice dir", po->dir, pwent ? &pw : NULL);
		n += check_private("key file", po->key_file, pwent ? &pw : NULL);
	}
	if (pwent)
		g_free(pw.pw_name);
	return n;
}

Site *
site_open_command(const char *config_file, SiteFlags flags, SiteBind bind, gpointer data,
    int *rc)
{
	GError *e = NULL;
	Site *site = site_open_flags(config_file, flags, bind, data, &e);

	if (!site) {
		fprintf(stderr, "%s\n", e->message);
		*rc = site_exit_code(e);
		g_error_free(e);
	}
	return site;
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
	return site_open_flags(config_file, 0, NULL, NULL, error);
}

Site *
site_open_flags(const char *config_file, SiteFlags flags, SiteBind bind,
    gpointer data, GError **error)
{
	Site *site = g_new0(Site, 1);
	const char *state_dir, *user;
	char *path;

	site->cfg = config_load_file_flags(config_file, flags & SITE_NO_POSTOFFICE_FILES ?
	    0 : CONFIG_CHECK_FILES, error);
	if (!site->cfg)
		goto fail;
	if (bind && !bind(site->cfg, data, error))
		goto fail;
	state_dir = config_string(site->cfg, CONFIG_SITE_STATE_DIR);
	user = config_string(site->cfg, CONFIG_SITE_USER);
	if (!make_state_dir_as_root(state_dir, user, error))
		goto fail;
	if (!site_become_user(user, error))
		goto fail;
	/* Private: the queue holds who wrote to whom, and about what. */
	if (g_mkdir_with_parents(state_dir, 0700) != 0) {
		char *who = whoami(user);
		g_set_error(error, SITE_ERROR, SITE_ERROR_STATE, "cannot create state_dir "
		    "%s as %s: %s", state_dir, who, g_strerror(errno));
		g_free(who);
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
	if (!site->dir) {
		/* Cannot open the state: EX_CANTCREAT, as for queue.db; a newer
		 * schema stays a configuration error. */
		if ((*error)->domain == DIR_ERROR && (*error)->code == DIR_ERROR_IO) {
			GError *e = *error;
			*error = g_error_new(SITE_ERROR, SITE_ERROR_STATE, "%s", e->message);
			g_error_free(e);
		}
		goto fail;
	}
	return site;
fail:
	site_close(site);
	return NULL;
}
