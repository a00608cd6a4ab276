/* config_int.h - what the files of gateway/config/ share, and nothing else.
 *
 * Owns: the types of the key table (value types, key and group rows), the
 * tables themselves as declarations (keys.c defines them), the parsed form
 * of a configuration (values, sections, struct PgConfig) and the reader's
 * state, and the functions one file of gateway/config/ offers another.
 * Never: included from outside gateway/config/; the rest of the gateway
 * reads the configuration through pg_config.h alone.
 */
#ifndef PG_CONFIG_INT_H
#define PG_CONFIG_INT_H

#include <stdio.h>
#include <sys/types.h>
#include <glib.h>

#include "config/pg_config.h"

#include "address.h"

/* Value types.  The man page's "VALUE TYPES" section is the types table. */
typedef enum {
	T_STRING,
	T_NAME,
	T_INT,
	T_SIZE,
	T_DURATION,
	T_ENUM,
	T_PATH,
	T_HOSTNAME,
	T_HOSTPORT,
	T_PO,
	T_MAILBOX,
	T_CODEPAGE,
	T_DOMAINS,
	T_NETWORKS,
	T_NAMESERVERS,
	T_LISTEN,
	T_PROXIES,
	T_COUNT
} CfgValueType;

typedef struct {
	const char *name;
	gboolean list;
	const char *doc;
} CfgTypeInfo;

#define K_EMPTY_OK  (1u << 0)  /* an empty value is allowed (and means something) */
#define K_IP_ONLY   (1u << 1)  /* host must be an IP address */

typedef struct {
	ConfigGroup group;
	const char *name;
	CfgValueType type;
	const char *def;        /* default as written in a file; NULL: required */
	gint64 min, max;        /* integer, size, duration (seconds) */
	const char *choices;    /* enum: words separated by '|' */
	guint16 port;           /* host: port when none is given */
	unsigned flags;
	const char *doc;
} CfgKeyInfo;

#define SECOND  1
#define MINUTE  60
#define HOUR    3600
#define DAY     86400

typedef struct {
	const char *name;
	const char *label;      /* the header as the man page shows it */
	gboolean instances;     /* takes a name; one group per name */
	const char *doc;
} CfgGroupInfo;

/* The tables, indexed by CfgValueType, ConfigKey and ConfigGroup (keys.c). */
extern const CfgTypeInfo cfg_types[T_COUNT];
extern const CfgKeyInfo cfg_keys[CONFIG_KEY_COUNT];
extern const CfgGroupInfo cfg_groups[CONFIG_GROUP_COUNT];

/* One value: the default until the file sets it. */
typedef struct {
	unsigned line;          /* where the file set it; 0: the default */
	gboolean bad;           /* the file's value was refused; the default stays */
	char *text;             /* canonical text; NULL for an unset required key */
	gint64 num;             /* integer, size, duration */
	char **list;            /* list types; NULL-terminated */
	PgHostPort hp;          /* host; hp.host NULL when empty */
} CfgValue;

/* One group of the file, or a fixed group left at its defaults. */
typedef struct {
	ConfigGroup group;
	unsigned line;          /* of the header; 0: not in the file */
	char *label;            /* "[site]", "[postoffice CORP/HQ]" */
	char *name;             /* instance name, canonical; NULL for fixed groups */
	char net[ADDR_PART_MAX + 1];
	char po[ADDR_PART_MAX + 1];
	CfgValue v[CONFIG_KEY_COUNT];   /* only this group's keys are used */
	gboolean unread;        /* a line of it could not be read: a key it
	                         * names may be missing only for that reason */
	PgConfigPostoffice po_view;
	PgConfigSiteLink link_view;
} CfgSection;

struct PgConfig {
	char *name;
	CfgSection *fixed[CONFIG_GROUP_COUNT];  /* NULL for instance groups */
	GPtrArray *postoffices;                 /* of CfgSection */
	GPtrArray *links;                       /* of CfgSection */
};

/* One error found, on its line. */
typedef struct {
	unsigned line;
	ConfigError code;
	char *msg;
} CfgDiag;

/* The reader's state while it reads one file. */
typedef struct {
	PgConfig *cfg;
	GArray *diags;          /* of CfgDiag */
	CfgSection *cur;        /* where key lines go; NULL: nowhere */
	gboolean in_group;      /* a group header has been seen */
	gboolean lost_lines;    /* lines went nowhere (a refused group header, an
	                         * unreadable line outside any group): what they
	                         * held may be what seems missing */
	gboolean full;          /* CONFIG_ERRORS_MAX reached: stop */
} CfgParser;

/* values.c: one value of a key, from its text. */

/* cfg_is_blank - a space or a tab */
gboolean cfg_is_blank(char c);
/* cfg_trim - step *s and shorten *len past blanks at both ends */
void cfg_trim(const char **s, size_t *len);
/* cfg_value_parse - s (trimmed, no NUL, no control characters) as k's value */
gboolean cfg_value_parse(const CfgKeyInfo *k, const char *s, CfgValue *out,
    GError **error);
/* cfg_value_clear - free what a value holds and zero it */
void cfg_value_clear(CfgValue *v);
/* cfg_default_text - canonical text of k's default; NULL for a required key */
char *cfg_default_text(const CfgKeyInfo *k);
/* cfg_range_format - n as k's type writes it: a duration as 5m, else digits */
char *cfg_range_format(const CfgKeyInfo *k, gint64 n);

/* config.c: the configuration object. */

/* cfg_new - a configuration named name, its fixed groups at their defaults */
PgConfig *cfg_new(const char *name);
/* cfg_section_new - a group at its defaults; name NULL for a fixed group */
CfgSection *cfg_section_new(ConfigGroup group, const char *name, unsigned line);
/* cfg_make_views - fill the postoffice and site-link views of a read file */
void cfg_make_views(PgConfig *cfg);

/* parse.c: the reader. */

/* cfg_diag - collect an error on line; stops collecting at CONFIG_ERRORS_MAX */
void cfg_diag(CfgParser *P, unsigned line, ConfigError code, const char *fmt, ...)
    G_GNUC_PRINTF(4, 5);

/* check.c: the checks across keys and groups, after the last line. */

/* cfg_check_values - required keys and groups, and the rules between keys */
void cfg_check_values(CfgParser *P);
/* cfg_check_files - the postoffice dirs and key files, and the other files */
void cfg_check_files(CfgParser *P);
/* cfg_file_kind - what a file that is not a regular file is, for a message */
const char *cfg_file_kind(mode_t mode);

#endif
