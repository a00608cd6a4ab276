/* site.h - what every gateway subcommand that touches state starts from.
 *
 * Owns: loading the configuration, becoming [site] user (when started as
 * root; refusing with EX_NOPERM when that cannot be done), creating state_dir
 * (0700, given to [site] user when started as root) and opening it, the
 * check that state and keys are private, and the directory context (this site, its domains,
 * templates, postoffices and site links) that routing needs.
 * Never: a subcommand's own work.
 */
#ifndef PG_SITE_H
#define PG_SITE_H

#include <glib.h>

#include "dir_store.h"
#include "config/pg_config.h"

#define SITE_ERROR (site_error_quark())
GQuark site_error_quark(void);

typedef enum {
	SITE_ERROR_CONFIG,      /* EX_CONFIG */
	SITE_ERROR_NOPERM,      /* EX_NOPERM: cannot become [site] user */
	SITE_ERROR_STATE,       /* EX_CANTCREAT / EX_IOERR: state_dir or its files */
} SiteError;

typedef struct {
	PgConfig *cfg;
	DirContext ctx;         /* points into cfg and the arrays below */
	DirStore *dir;          /* state_dir/directory.db */
	GPtrArray *postoffices; /* char *: every [postoffice] and gateway_po */
	GArray *peers;          /* DirPeer */
	char *postmaster;       /* [site] postmaster, or POSTMASTER of the first
	                         * [postoffice]; NULL when there is none */
} Site;

/* site_open - load config_file, drop privileges, open the directory */
Site *site_open(const char *config_file, GError **error);
/* Binds what needs root (the listener's sockets) before privileges go. */
typedef gboolean (*SiteBind)(const PgConfig *cfg, gpointer data, GError **error);

typedef enum {
	/* Leave postoffice dirs and key files alone: for a command that needs
	 * none (queue), run by someone who may not read the keys. */
	SITE_NO_POSTOFFICE_FILES = 1 << 0,
} SiteFlags;
/* site_open_flags - site_open with flags, calling bind (if not NULL)
 * between loading and dropping privileges */
Site *site_open_flags(const char *config_file, SiteFlags flags, SiteBind bind,
    gpointer data, GError **error);
/* site_check_private - warn about state, postoffice dirs and key files that
 * others may read or [site] user does not own; returns how many warnings */
guint site_check_private(const PgConfig *cfg);
/* site_close - close everything site_open opened */
void site_close(Site *site);
/* site_open_command - site_open_flags for a subcommand: on failure the
 * error is printed on stderr, *rc is its exit code (site_exit_code), and
 * NULL returned; bind may be NULL */
Site *site_open_command(const char *config_file, SiteFlags flags, SiteBind bind,
    gpointer data, int *rc);
/* site_exit_code - the sysexits code for an error of site_open */
int site_exit_code(const GError *error);
/* site_become_user - become user when root (empty: stay, warn when root) */
gboolean site_become_user(const char *user, GError **error);

#endif
