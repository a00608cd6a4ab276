/* pg_config.h - postgate.conf: one INI file, one key table.
 *
 * Owns: reading the configuration file with our own line-based reader, so
 * that every error names FILE:LINE (GKeyFile cannot); the one key table
 * (group, key, type, default, range, required, doc line) that drives the
 * reader's validation, `postgate check-config` and docs/postgate.conf.5; the
 * typed values the rest of the gateway reads.  Syntax: `[group]`,
 * `[postoffice NET/PO]`, `[site-link NAME]`, `key = value`, comments (`#` or
 * `;`) only on their own lines; a `#` after a value is part of the value.  A
 * duplicate group or key is an error.  Errors are collected, one line each,
 * `FILE:LINE: what is wrong`, sorted by line: a missing required key is
 * reported on the line of its group header, a missing required group on
 * line 1.  Never: act on the configuration (bind, switch user, create
 * directories); only the postoffice checks read the file system.
 */
#ifndef PG_CONFIG_H
#define PG_CONFIG_H

#include <stddef.h>
#include <stdio.h>
#include <glib.h>

#define CONFIG_ERROR (config_error_quark())
GQuark config_error_quark(void);

typedef enum {
	CONFIG_ERROR_IO,        /* the configuration file itself is unreadable */
	CONFIG_ERROR_SYNTAX,    /* a line is no comment, group header or key = value */
	CONFIG_ERROR_UNKNOWN,   /* an unknown group or key */
	CONFIG_ERROR_DUPLICATE, /* a group or key given twice */
	CONFIG_ERROR_VALUE,     /* a value of the wrong type, out of range, inconsistent */
	CONFIG_ERROR_MISSING,   /* a required group or key is not there */
	CONFIG_ERROR_FILE,      /* a directory or key file named by a key is unusable */
	CONFIG_ERROR_LIMIT,     /* over one of the named limits below */
} ConfigError;

/* The file read when no -c is given. */
#define CONFIG_DEFAULT_FILE   "/etc/postgate/postgate.conf"
/* Named limits of the reader. */
#define CONFIG_LINE_MAX       4096u          /* bytes on a line, without the newline */
#define CONFIG_FILE_MAX       (1024u * 1024) /* bytes in the whole file */
#define CONFIG_GROUPS_MAX     1000u          /* [postoffice] and [site-link] groups */
#define CONFIG_ERRORS_MAX     100u           /* errors collected before giving up */
#define CONFIG_NAME_MAX       32u            /* site and site-link names */

/* Flags of config_parse. */
typedef enum {
	CONFIG_CHECK_FILES = 1 << 0,  /* postoffice dirs and key files must be usable */
} ConfigFlags;

/* The groups; the last two occur once per postoffice or peer site. */
typedef enum {
	CONFIG_GROUP_SITE,
	CONFIG_GROUP_SMTPD,
	CONFIG_GROUP_DELIVERY,
	CONFIG_GROUP_DIRECTORY,
	CONFIG_GROUP_POSTOFFICE,
	CONFIG_GROUP_SITE_LINK,
	CONFIG_GROUP_COUNT
} ConfigGroup;

/* Every key, named GROUP_KEY; the key table is indexed by this. */
typedef enum {
	CONFIG_SITE_NAME,
	CONFIG_SITE_DOMAINS,
	CONFIG_SITE_STATE_DIR,
	CONFIG_SITE_GATEWAY_PO,
	CONFIG_SITE_POSTMASTER,
	CONFIG_SITE_USER,
	CONFIG_SITE_HOP_LIMIT,
	CONFIG_SITE_REPORT_WINDOW,
	CONFIG_SITE_BUNDLE_LEVEL,
	CONFIG_SITE_PROXY_TEMPLATES,
	CONFIG_SMTPD_LISTEN,
	CONFIG_SMTPD_HOSTNAME,
	CONFIG_SMTPD_RELAY_NETWORKS,
	CONFIG_SMTPD_MAX_MESSAGE_SIZE,
	CONFIG_SMTPD_MAX_RECIPIENTS,
	CONFIG_SMTPD_MAX_CONNECTIONS,
	CONFIG_SMTPD_TIMEOUT,
	CONFIG_SMTPD_TLS_CERT_FILE,
	CONFIG_SMTPD_TLS_KEY_FILE,
	CONFIG_DELIVERY_RELAY_HOST,
	CONFIG_DELIVERY_RESOLVER,
	CONFIG_DELIVERY_TLS,
	CONFIG_DELIVERY_TLS_CA_FILE,
	CONFIG_DELIVERY_AUTH_USER,
	CONFIG_DELIVERY_AUTH_PASSWORD_FILE,
	CONFIG_DELIVERY_MIN_BACKOFF,
	CONFIG_DELIVERY_MAX_BACKOFF,
	CONFIG_DELIVERY_QUEUE_LIFETIME,
	CONFIG_DELIVERY_DELAY_WARNING,
	CONFIG_DELIVERY_SINGLE_MESSAGE_MEMORY,
	CONFIG_DELIVERY_PORT,
	CONFIG_DELIVERY_CONNECT_TIMEOUT,
	CONFIG_DELIVERY_TIMEOUT,
	CONFIG_DELIVERY_CONNECTIONS,
	CONFIG_DELIVERY_DESTINATION_CONNECTIONS,
	CONFIG_DIRECTORY_TOMBSTONE_LIFETIME,
	CONFIG_PO_DIR,
	CONFIG_PO_KEY_FILE,
	CONFIG_PO_CODEPAGE,
	CONFIG_LINK_DOMAINS,
	CONFIG_LINK_HOST,
	CONFIG_KEY_COUNT
} ConfigKey;

/* A host and port: `host:port`, `[host]:port`, port optional. */
typedef struct {
	char *host;             /* lower case, without brackets */
	guint16 port;
	gboolean literal;       /* written in brackets: use as is, no MX lookup */
} PgHostPort;

/* One [postoffice NET/PO] group. */
typedef struct {
	const char *name;       /* NET/PO, upper case */
	const char *net;
	const char *po;
	const char *dir;
	const char *key_file;
	const char *codepage;   /* upper case, known to iconv */
	unsigned line;          /* of the group header */
} PgConfigPostoffice;

/* One [site-link NAME] group. */
typedef struct {
	const char *name;
	const char *const *domains;     /* lower case, NULL-terminated */
	const PgHostPort *host;
	unsigned line;          /* of the group header */
} PgConfigSiteLink;

typedef struct PgConfig PgConfig;

/* config_load_file - read and check path, file-system checks included */
PgConfig *config_load_file(const char *path, GError **error);
/* config_load_file_flags - read and check path; flags as for config_parse */
PgConfig *config_load_file_flags(const char *path, ConfigFlags flags,
    GError **error);
/* config_parse - parse len bytes of buf; name is the FILE of messages */
PgConfig *config_parse(const char *name, const char *buf, size_t len,
    ConfigFlags flags, GError **error);
/* config_free - free a configuration; NULL is fine */
void config_free(PgConfig *cfg);
/* config_file_name - the name given to config_parse or config_load_file */
const char *config_file_name(const PgConfig *cfg);

/* Getters take a key of a fixed group ([site], [smtpd], [delivery],
 * [directory]); a key of another group or type aborts: a bug, not bad input. */

/* config_string - canonical text of a key of a fixed group; "" when empty */
const char *config_string(const PgConfig *cfg, ConfigKey key);
/* config_int - an integer, size (bytes) or duration (seconds) key */
gint64 config_int(const PgConfig *cfg, ConfigKey key);
/* config_list - a list key: items, NULL-terminated, never NULL */
const char *const *config_list(const PgConfig *cfg, ConfigKey key);
/* config_hostport - a host-and-port key; NULL when empty */
const PgHostPort *config_hostport(const PgConfig *cfg, ConfigKey key);

/* config_postoffice_count - how many [postoffice] groups there are */
guint config_postoffice_count(const PgConfig *cfg);
/* config_postoffice - the i-th [postoffice] group, in file order */
const PgConfigPostoffice *config_postoffice(const PgConfig *cfg, guint i);
/* config_postoffice_find - the group of postoffice NET/PO, or NULL */
const PgConfigPostoffice *config_postoffice_find(const PgConfig *cfg, const char *name);
/* config_site_link_count - how many [site-link] groups there are */
guint config_site_link_count(const PgConfig *cfg);
/* config_site_link - the i-th [site-link] group, in file order */
const PgConfigSiteLink *config_site_link(const PgConfig *cfg, guint i);
/* config_site_link_find - the [site-link] group named name, or NULL */
const PgConfigSiteLink *config_site_link_find(const PgConfig *cfg, const char *name);

/* config_hostport_parse - parse HOST[:PORT] or [HOST][:PORT] of len bytes */
gboolean config_hostport_parse(const char *text, size_t len, guint16 default_port,
    gboolean ip_only, PgHostPort *out, GError **error);
/* config_hostport_clear - free what config_hostport_parse stored in hp */
void config_hostport_clear(PgHostPort *hp);

/* config_print_nondefault - settings that differ from their defaults, as a file */
gboolean config_print_nondefault(const PgConfig *cfg, FILE *out);
/* config_write_manpage - docs/postgate.conf.5, generated from the key table */
gboolean config_write_manpage(FILE *out);

#endif
