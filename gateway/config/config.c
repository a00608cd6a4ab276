/* config.c - the postgate.conf reader and its key table (see pg_config.h).
 *
 * The key table below is the single source of truth: the reader validates
 * each value against its row, `check-config` prints what differs from the
 * row's default, and `config-manpage` writes docs/postgate.conf.5 from it.
 * The reader works on (buffer, length), line by line, never trusting a
 * terminator: a NUL byte, invalid UTF-8, a control character or a line over
 * CONFIG_LINE_MAX is an error naming its line.  Errors are collected (up to
 * CONFIG_ERRORS_MAX), sorted by line, and returned as one GError whose
 * message holds one `FILE:LINE: text` line per error.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gio/gio.h>

#include "config/pg_config.h"

#include "address.h"
#include "codepage.h"
#include "keyfile.h"
#include "pg_limits.h"

G_DEFINE_QUARK(postgate-config-error-quark, config_error)

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
} ValueType;

typedef struct {
	const char *name;
	gboolean list;
	const char *doc;
} TypeInfo;

static const TypeInfo types[T_COUNT] = {
	[T_STRING] = { "string", FALSE, "Any text up to the end of the line." },
	[T_NAME] = { "name", FALSE,
	    "1 to 32 of the characters A-Z a-z 0-9 - _ (as sync files carry it)." },
	[T_INT] = { "integer", FALSE, "A whole number in decimal." },
	[T_SIZE] = { "size", FALSE,
	    "A number of bytes: N, or Nk, NM, NG for multiples of 1024, 1024^2, 1024^3." },
	[T_DURATION] = { "duration", FALSE,
	    "N followed by s, m, h, d or w for seconds, minutes, hours, days or "
	    "weeks; a plain N is seconds." },
	[T_ENUM] = { "word", FALSE, "One of the words listed with the key." },
	[T_PATH] = { "path", FALSE, "An absolute path name." },
	[T_HOSTNAME] = { "hostname", FALSE,
	    "A domain name: labels of A-Z a-z 0-9 and -, separated by dots." },
	[T_HOSTPORT] = { "host", FALSE,
	    "HOST:PORT, where HOST is a domain name or an IPv4 address, or "
	    "[HOST]:PORT, which also takes an IPv6 address; :PORT may be left "
	    "out for the port given with the key." },
	[T_PO] = { "postoffice", FALSE,
	    "A legacy postoffice NET/PO: two parts of 1 to 10 of A-Z 0-9 - _, "
	    "case-insensitive." },
	[T_MAILBOX] = { "mailbox", FALSE,
	    "A legacy mailbox NET/PO/MAILBOX: three parts of 1 to 10 of A-Z 0-9 - _, "
	    "case-insensitive." },
	[T_CODEPAGE] = { "codepage", FALSE,
	    "A codepage name that iconv converts to and from UTF-8, such as "
	    "CP437, CP850 or CP1252; case-insensitive." },
	[T_DOMAINS] = { "domain list", TRUE, "Comma-separated domain names." },
	[T_NETWORKS] = { "network list", TRUE,
	    "Comma-separated networks, ADDRESS/PREFIX or a single ADDRESS, IPv4 "
	    "or IPv6, with no host bits set beyond the prefix." },
	[T_NAMESERVERS] = { "nameserver list", TRUE,
	    "Comma-separated IP[:PORT] items, IPv6 addresses in brackets; the "
	    "port is 53 when left out." },
	[T_LISTEN] = { "address list", TRUE,
	    "Comma-separated IP:PORT items, IPv6 addresses in brackets "
	    "([::1]:25); the port is the one given with the key when left out." },
	[T_PROXIES] = { "proxy template list", TRUE,
	    "Comma-separated templates, each SMTP:LOCAL@DOMAIN (the primary "
	    "address; the first one counts) or smtp:LOCAL@DOMAIN (a secondary "
	    "one).  In a template %m is the mailbox in lower case, %p the "
	    "postoffice, %n the network and %% a percent sign; every template "
	    "holds %m, and a list that is not empty holds an SMTP: one." },
};

/* Key flags. */
#define K_EMPTY_OK  (1u << 0)  /* an empty value is allowed (and means something) */
#define K_IP_ONLY   (1u << 1)  /* host must be an IP address */

typedef struct {
	ConfigGroup group;
	const char *name;
	ValueType type;
	const char *def;        /* default as written in a file; NULL: required */
	gint64 min, max;        /* integer, size, duration (seconds) */
	const char *choices;    /* enum: words separated by '|' */
	guint16 port;           /* host: port when none is given */
	unsigned flags;
	const char *doc;
} KeyInfo;

#define SECOND  1
#define MINUTE  60
#define HOUR    3600
#define DAY     86400

static const KeyInfo keys[CONFIG_KEY_COUNT] = {
	[CONFIG_SITE_NAME] = { CONFIG_GROUP_SITE, "name", T_NAME, NULL, 0, 0, NULL, 0, 0,
	    "Name of this site, as peer sites know it in their [site-link] groups "
	    "and as the origin of its directory changes." },
	[CONFIG_SITE_DOMAINS] = { CONFIG_GROUP_SITE, "domains", T_DOMAINS, NULL, 0, 0,
	    NULL, 0, 0,
	    "SMTP domains this site owns: mail for them is accepted when the "
	    "directory knows the recipient." },
	[CONFIG_SITE_STATE_DIR] = { CONFIG_GROUP_SITE, "state_dir", T_PATH,
	    "/var/lib/postgate", 0, 0, NULL, 0, 0,
	    "Directory of the queue, the address directory and the bundle "
	    "sequence ledgers.  Private: created 0700 when missing (owned by "
	    "user when started as root), its files 0600." },
	[CONFIG_SITE_GATEWAY_PO] = { CONFIG_GROUP_SITE, "gateway_po", T_PO, NULL, 0, 0,
	    NULL, 0, 0,
	    "The gateway's own postoffice in the legacy network: the source of the "
	    "bundles it writes and the legacy home of custom recipients." },
	[CONFIG_SITE_POSTMASTER] = { CONFIG_GROUP_SITE, "postmaster", T_MAILBOX, "", 0,
	    0, NULL, 0, 0,
	    "The legacy mailbox that receives mail for postmaster (bare, or at any "
	    "of the site's domains, RFC 5321 4.5.1) and what postgate reports to "
	    "the postmaster; it must be on a postoffice this site serves.  Empty: "
	    "the POSTMASTER mailbox of the first [postoffice]." },
	[CONFIG_SITE_USER] = { CONFIG_GROUP_SITE, "user", T_STRING, "postgate", 0, 0,
	    NULL, 0, K_EMPTY_OK,
	    "User to switch to when started as root; empty: keep the invoking user "
	    "(a warning is logged when that is root)." },
	[CONFIG_SITE_HOP_LIMIT] = { CONFIG_GROUP_SITE, "hop_limit", T_INT, "30", 1,
	    MSG_MAX_HOPS, NULL, 0, 0,
	    "A message that has crossed more gateways than this is stopped and "
	    "reported, never looped." },
	[CONFIG_SITE_BUNDLE_LEVEL] = { CONFIG_GROUP_SITE, "bundle_level", T_INT, "6", 0,
	    9, NULL, 0, 0,
	    "zlib compression level of the bundles the gateway writes." },
	[CONFIG_SITE_PROXY_TEMPLATES] = { CONFIG_GROUP_SITE, "proxy_templates",
	    T_PROXIES, "", 0, 0, NULL, 0, 0,
	    "Proxy addresses this site gives its own mailboxes, lists and custom "
	    "recipients (%m mailbox, %p postoffice, %n network, in lower case); the "
	    "first SMTP: one is the primary.  Existing proxies never change: a new "
	    "template adds secondaries on the next import.  Needed before postoffice "
	    "exports can be imported." },

	[CONFIG_SMTPD_LISTEN] = { CONFIG_GROUP_SMTPD, "listen", T_LISTEN,
	    "127.0.0.1:2525", 0, 0, NULL, 25, 0,
	    "IP addresses and ports the SMTP listener binds, every one of them." },
	[CONFIG_SMTPD_HOSTNAME] = { CONFIG_GROUP_SMTPD, "hostname", T_HOSTNAME, "", 0,
	    0, NULL, 0, 0,
	    "Name the listener gives in its greeting and Received: headers; empty: "
	    "the system's host name." },
	[CONFIG_SMTPD_RELAY_NETWORKS] = { CONFIG_GROUP_SMTPD, "relay_networks",
	    T_NETWORKS, "", 0, 0, NULL, 0, 0,
	    "Clients trusted to send mail through the listener to domains other "
	    "than this site's and its linked sites'; empty: no client may." },
	[CONFIG_SMTPD_MAX_MESSAGE_SIZE] = { CONFIG_GROUP_SMTPD, "max_message_size",
	    T_SIZE, "10485760", 1024, SMTP_MAX_MESSAGE_SIZE, NULL, 0, 0,
	    "Largest message the listener accepts, in bytes; announced with the "
	    "SIZE extension." },
	[CONFIG_SMTPD_MAX_RECIPIENTS] = { CONFIG_GROUP_SMTPD, "max_recipients", T_INT,
	    "1000", 1, MSG_MAX_RECIPIENTS, NULL, 0, 0,
	    "Most recipients the listener accepts for one message." },
	[CONFIG_SMTPD_MAX_CONNECTIONS] = { CONFIG_GROUP_SMTPD, "max_connections",
	    T_INT, "1000", 1, 100000, NULL, 0, 0,
	    "Most client connections the listener serves at once." },
	[CONFIG_SMTPD_TIMEOUT] = { CONFIG_GROUP_SMTPD, "timeout", T_DURATION, "5m",
	    1, HOUR, NULL, 0, 0,
	    "How long the listener waits for a client's next command or its next "
	    "piece of message data, and for a client to read a reply, before it "
	    "says 421 and closes." },
	[CONFIG_SMTPD_TLS_CERT_FILE] = { CONFIG_GROUP_SMTPD, "tls_cert_file", T_PATH,
	    "", 0, 0, NULL, 0, 0,
	    "PEM certificate chain for STARTTLS; empty: STARTTLS is not offered.  "
	    "Set together with tls_key_file." },
	[CONFIG_SMTPD_TLS_KEY_FILE] = { CONFIG_GROUP_SMTPD, "tls_key_file", T_PATH, "",
	    0, 0, NULL, 0, 0,
	    "PEM private key of tls_cert_file." },

	[CONFIG_DELIVERY_RELAY_HOST] = { CONFIG_GROUP_DELIVERY, "relay_host",
	    T_HOSTPORT, "", 0, 0, NULL, 25, 0,
	    "Host all outbound SMTP mail goes to; [HOST] is used as it is, a bare "
	    "HOST through its MX records; empty: deliver to each domain's MX." },
	[CONFIG_DELIVERY_RESOLVER] = { CONFIG_GROUP_DELIVERY, "resolver",
	    T_NAMESERVERS, "", 0, 0, NULL, 53, 0,
	    "Nameservers to ask; empty: those in /etc/resolv.conf." },
	[CONFIG_DELIVERY_TLS] = { CONFIG_GROUP_DELIVERY, "tls", T_ENUM, "may", 0, 0,
	    "none|may|encrypt|verify", 0, 0,
	    "STARTTLS towards SMTP servers: none never; may when offered, and in "
	    "plaintext again on a new connection when the handshake fails; encrypt "
	    "always (a server without it is not sent to, the mail is held); verify "
	    "as encrypt, and the server's certificate must verify against "
	    "tls_ca_file and name the host connected to." },
	[CONFIG_DELIVERY_TLS_CA_FILE] = { CONFIG_GROUP_DELIVERY, "tls_ca_file", T_PATH,
	    "", 0, 0, NULL, 0, 0,
	    "PEM certificates of the authorities that server certificates are "
	    "verified against; empty: the system's." },
	[CONFIG_DELIVERY_AUTH_USER] = { CONFIG_GROUP_DELIVERY, "auth_user", T_STRING,
	    "", 0, 0, NULL, 0, 0,
	    "User name for SMTP AUTH; empty: no AUTH.  Set together with "
	    "auth_password_file." },
	[CONFIG_DELIVERY_AUTH_PASSWORD_FILE] = { CONFIG_GROUP_DELIVERY,
	    "auth_password_file", T_PATH, "", 0, 0, NULL, 0, 0,
	    "File whose first line is the SMTP AUTH password." },
	[CONFIG_DELIVERY_MIN_BACKOFF] = { CONFIG_GROUP_DELIVERY, "min_backoff",
	    T_DURATION, "300s", 1 * SECOND, 1 * DAY, NULL, 0, 0,
	    "Shortest wait before a deferred delivery is tried again." },
	[CONFIG_DELIVERY_MAX_BACKOFF] = { CONFIG_GROUP_DELIVERY, "max_backoff",
	    T_DURATION, "4000s", 1 * SECOND, 7 * DAY, NULL, 0, 0,
	    "Longest wait between two tries; not less than min_backoff." },
	[CONFIG_DELIVERY_QUEUE_LIFETIME] = { CONFIG_GROUP_DELIVERY, "queue_lifetime",
	    T_DURATION, "5d", 1 * SECOND, 365 * DAY, NULL, 0, 0,
	    "How long a message may stay deferred before it is returned as "
	    "undeliverable." },
	[CONFIG_DELIVERY_SINGLE_MESSAGE_MEMORY] = { CONFIG_GROUP_DELIVERY,
	    "single_message_memory", T_DURATION, "1d", 1 * SECOND, 365 * DAY, NULL, 0, 0,
	    "How long a server that refused a second MAIL FROM in one session is "
	    "sent one message per session." },
	[CONFIG_DELIVERY_PORT] = { CONFIG_GROUP_DELIVERY, "port", T_INT, "25", 1, 65535,
	    NULL, 0, 0,
	    "TCP port of the SMTP servers found through MX or address records (a "
	    "relay_host or site-link host names its own port)." },
	[CONFIG_DELIVERY_CONNECT_TIMEOUT] = { CONFIG_GROUP_DELIVERY, "connect_timeout",
	    T_DURATION, "30s", 1, HOUR, NULL, 0, 0,
	    "How long to wait for a TCP connection to an SMTP server before "
	    "trying its next address." },
	[CONFIG_DELIVERY_TIMEOUT] = { CONFIG_GROUP_DELIVERY, "timeout", T_DURATION, "5m",
	    1, HOUR, NULL, 0, 0,
	    "How long to wait for each reply of an SMTP server (and for it to take "
	    "what is sent); the reply to the end of the message data gets twice "
	    "as long." },
	[CONFIG_DELIVERY_CONNECTIONS] = { CONFIG_GROUP_DELIVERY, "connections", T_INT,
	    "100", 1, 10000, NULL, 0, 0,
	    "Most SMTP connections a run holds open at once." },
	[CONFIG_DELIVERY_DESTINATION_CONNECTIONS] = { CONFIG_GROUP_DELIVERY,
	    "destination_connections", T_INT, "20", 1, 1000, NULL, 0, 0,
	    "Most SMTP connections to one destination (a relay host, a site link "
	    "or a domain's mail servers) at once." },

	[CONFIG_DIRECTORY_TOMBSTONE_LIFETIME] = { CONFIG_GROUP_DIRECTORY,
	    "tombstone_lifetime", T_DURATION, "180d", 1 * SECOND, 3650 * DAY, NULL, 0, 0,
	    "How long a deleted directory entry is kept as a tombstone, so that "
	    "every site learns of the deletion." },

	[CONFIG_PO_DIR] = { CONFIG_GROUP_POSTOFFICE, "dir", T_PATH, NULL, 0, 0, NULL, 0,
	    0,
	    "Drop directory of the postoffice: in/ holds bundles for it, out/ "
	    "bundles from it.  It must exist." },
	[CONFIG_PO_KEY_FILE] = { CONFIG_GROUP_POSTOFFICE, "key_file", T_PATH, NULL, 0,
	    0, NULL, 0, 0,
	    "File holding the secret key that authenticates the postoffice's "
	    "bundles: readable, at least 32 bytes not counting one final newline." },
	[CONFIG_PO_CODEPAGE] = { CONFIG_GROUP_POSTOFFICE, "codepage", T_CODEPAGE, NULL,
	    0, 0, NULL, 0, 0,
	    "Codepage of the text of the postoffice's users." },

	[CONFIG_LINK_DOMAINS] = { CONFIG_GROUP_SITE_LINK, "domains", T_DOMAINS, NULL,
	    0, 0, NULL, 0, 0,
	    "SMTP domains the peer site owns; mail for them goes to its gateway." },
	[CONFIG_LINK_HOST] = { CONFIG_GROUP_SITE_LINK, "host", T_HOSTPORT, NULL, 0, 0,
	    NULL, 25, 0,
	    "The peer gateway's SMTP listener." },
};

typedef struct {
	const char *name;
	const char *label;      /* the header as the man page shows it */
	gboolean instances;     /* takes a name; one group per name */
	const char *doc;
} GroupInfo;

static const GroupInfo groups[CONFIG_GROUP_COUNT] = {
	[CONFIG_GROUP_SITE] = { "site", "[site]", FALSE,
	    "This site: its name, its domains, where its state lives.  The group "
	    "is required." },
	[CONFIG_GROUP_SMTPD] = { "smtpd", "[smtpd]", FALSE,
	    "The SMTP listener, postgate smtpd." },
	[CONFIG_GROUP_DELIVERY] = { "delivery", "[delivery]", FALSE,
	    "Outbound SMTP delivery and its retries." },
	[CONFIG_GROUP_DIRECTORY] = { "directory", "[directory]", FALSE,
	    "The address directory and its replication between sites." },
	[CONFIG_GROUP_POSTOFFICE] = { "postoffice", "[postoffice NET/PO]", TRUE,
	    "One group per legacy postoffice this site serves, named by its "
	    "NET/PO; none may be the gateway_po.  check-config makes sure the "
	    "drop directory exists and that the key file is a readable file "
	    "holding a long enough key." },
	[CONFIG_GROUP_SITE_LINK] = { "site-link", "[site-link NAME]", TRUE,
	    "One group per peer site, named by that site's [site] name; mail for "
	    "its domains goes to its gateway over SMTP.  No domain may belong to "
	    "two sites." },
};

/* One value: the default until the file sets it. */
typedef struct {
	unsigned line;          /* where the file set it; 0: the default */
	gboolean bad;           /* the file's value was refused; the default stays */
	char *text;             /* canonical text; NULL for an unset required key */
	gint64 num;             /* integer, size, duration */
	char **list;            /* list types; NULL-terminated */
	PgHostPort hp;          /* host; hp.host NULL when empty */
} Value;

/* One group of the file, or a fixed group left at its defaults. */
typedef struct {
	ConfigGroup group;
	unsigned line;          /* of the header; 0: not in the file */
	char *label;            /* "[site]", "[postoffice CORP/HQ]" */
	char *name;             /* instance name, canonical; NULL for fixed groups */
	char net[ADDR_PART_MAX + 1];
	char po[ADDR_PART_MAX + 1];
	Value v[CONFIG_KEY_COUNT];      /* only this group's keys are used */
	gboolean unread;        /* a line of it could not be read: a key it
	                         * names may be missing only for that reason */
	PgConfigPostoffice po_view;
	PgConfigSiteLink link_view;
} Section;

struct PgConfig {
	char *name;
	Section *fixed[CONFIG_GROUP_COUNT];     /* NULL for instance groups */
	GPtrArray *postoffices;                 /* of Section */
	GPtrArray *links;                       /* of Section */
};

typedef struct {
	unsigned line;
	ConfigError code;
	char *msg;
} Diag;

typedef struct {
	PgConfig *cfg;
	GArray *diags;          /* of Diag */
	Section *cur;           /* where key lines go; NULL: nowhere */
	gboolean in_group;      /* a group header has been seen */
	gboolean lost_lines;    /* lines went nowhere (a refused group header, an
	                         * unreadable line outside any group): what they
	                         * held may be what seems missing */
	gboolean full;          /* CONFIG_ERRORS_MAX reached: stop */
} Parser;

static void diag(Parser *P, unsigned line, ConfigError code, const char *fmt, ...)
    G_GNUC_PRINTF(4, 5);

static void
diag(Parser *P, unsigned line, ConfigError code, const char *fmt, ...)
{
	Diag d;
	va_list ap;

	if (P->full)
		return;
	d.line = line;
	d.code = code;
	va_start(ap, fmt);
	d.msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_array_append_val(P->diags, d);
	if (P->diags->len >= CONFIG_ERRORS_MAX) {
		d.code = CONFIG_ERROR_LIMIT;
		d.msg = g_strdup_printf("too many errors (%u), stopping here",
		    CONFIG_ERRORS_MAX);
		g_array_append_val(P->diags, d);
		P->full = TRUE;
	}
}

static gboolean
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static void
trim(const char **s, size_t *len)
{
	while (*len > 0 && is_blank(**s)) {
		(*s)++;
		(*len)--;
	}
	while (*len > 0 && is_blank((*s)[*len - 1]))
		(*len)--;
}

static gboolean
has_comment_char(const char *s)
{
	return strchr(s, '#') != NULL || strchr(s, ';') != NULL;
}

/* ---- value types ---- */

static gboolean
value_fail(GError **error, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static gboolean
value_fail(GError **error, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_set_error_literal(error, CONFIG_ERROR, CONFIG_ERROR_VALUE, msg);
	g_free(msg);
	return FALSE;
}

/* Leading decimal digits of s; FALSE when there are none or they overflow. */
static gboolean
parse_digits(const char *s, gint64 *n, const char **end)
{
	gint64 v = 0;
	const char *p = s;

	for (; g_ascii_isdigit(*p); p++) {
		int d = *p - '0';
		if (v > (G_MAXINT64 - d) / 10)
			return FALSE;
		v = v * 10 + d;
	}
	if (p == s)
		return FALSE;
	*n = v;
	*end = p;
	return TRUE;
}

static char *
duration_format(gint64 s)
{
	static const struct {
		char unit;
		gint64 mult;
	} units[] = { { 'w', 7 * DAY }, { 'd', DAY }, { 'h', HOUR }, { 'm', MINUTE } };

	for (size_t i = 0; s != 0 && i < G_N_ELEMENTS(units); i++)
		if (s % units[i].mult == 0)
			return g_strdup_printf("%" G_GINT64_FORMAT "%c", s / units[i].mult,
			    units[i].unit);
	return g_strdup_printf("%" G_GINT64_FORMAT "s", s);
}

static char *
range_format(const KeyInfo *k, gint64 n)
{
	if (k->type == T_DURATION)
		return duration_format(n);
	return g_strdup_printf("%" G_GINT64_FORMAT, n);
}

static gboolean
parse_number(const KeyInfo *k, const char *s, gint64 *out, GError **error)
{
	const char *end;
	gint64 n, mult = 1;
	char *lo, *hi;
	gboolean ok;

	if (!parse_digits(s, &n, &end))
		goto bad;
	if (k->type == T_DURATION && *end != '\0') {
		switch (*end++) {
		case 's': mult = SECOND; break;
		case 'm': mult = MINUTE; break;
		case 'h': mult = HOUR; break;
		case 'd': mult = DAY; break;
		case 'w': mult = 7 * DAY; break;
		default: goto bad;
		}
	} else if (k->type == T_SIZE && *end != '\0') {
		switch (*end++) {
		case 'k': case 'K': mult = 1024; break;
		case 'M': mult = 1024 * 1024; break;
		case 'G': mult = 1024 * 1024 * 1024; break;
		default: goto bad;
		}
	}
	if (*end != '\0')
		goto bad;
	ok = n <= G_MAXINT64 / mult;
	n = ok ? n * mult : G_MAXINT64;
	if (!ok || n < k->min || n > k->max) {
		lo = range_format(k, k->min);
		hi = range_format(k, k->max);
		value_fail(error, "\"%s\" is out of range (%s to %s)", s, lo, hi);
		g_free(lo);
		g_free(hi);
		return FALSE;
	}
	*out = n;
	return TRUE;
bad:
	if (k->type == T_DURATION)
		return value_fail(error, "\"%s\" is not a duration (N, Ns, Nm, Nh, Nd "
		    "or Nw)", s);
	if (k->type == T_SIZE)
		return value_fail(error, "\"%s\" is not a size (N, Nk, NM or NG)", s);
	return value_fail(error, "\"%s\" is not a whole number", s);
}

static gboolean
domain_valid(const char *s)
{
	size_t len = strlen(s), label = 0;

	if (len == 0 || len > ADDR_SMTP_DOMAIN_MAX)
		return FALSE;
	for (size_t i = 0; i <= len; i++) {
		char c = s[i];
		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63 || s[i - 1] == '-' ||
			    s[i - label] == '-')
				return FALSE;
			label = 0;
		} else if (g_ascii_isalnum(c) || c == '-') {
			label++;
		} else {
			return FALSE;
		}
	}
	return TRUE;
}

gboolean
config_hostport_parse(const char *text, size_t len, guint16 default_port,
    gboolean ip_only, PgHostPort *out, GError **error)
{
	const char *host, *rest;
	size_t hlen, rlen;
	gboolean literal = FALSE;
	gint64 port = default_port;
	char *h, *shown;

	memset(out, 0, sizeof *out);
	trim(&text, &len);
	shown = g_strndup(text, len);
	if (memchr(text, '\0', len) != NULL) {
		value_fail(error, "host contains a NUL byte");
		goto fail;
	}
	if (len == 0) {
		value_fail(error, "host is empty");
		goto fail;
	}
	if (text[0] == '[') {
		const char *close = memchr(text, ']', len);
		if (close == NULL) {
			value_fail(error, "\"%s\" has no closing ]", shown);
			goto fail;
		}
		host = text + 1;
		hlen = (size_t)(close - host);
		rest = close + 1;
		literal = TRUE;
	} else {
		const char *colon = NULL;
		unsigned colons = 0;
		for (size_t i = 0; i < len; i++)
			if (text[i] == ':') {
				colon = text + i;
				colons++;
			}
		if (colons > 1) {
			value_fail(error, "\"%s\": write an IPv6 address in brackets, "
			    "[ADDRESS]:PORT", shown);
			goto fail;
		}
		host = text;
		hlen = colon ? (size_t)(colon - text) : len;
		rest = text + hlen;
	}
	rlen = (size_t)(text + len - rest);
	if (rlen > 0) {
		const char *end;
		char *p;
		gboolean ok;
		if (rest[0] != ':') {
			value_fail(error, "\"%s\": expected :PORT after the host", shown);
			goto fail;
		}
		p = g_strndup(rest + 1, rlen - 1);
		ok = parse_digits(p, &port, &end) && *end == '\0' && port >= 1 &&
		    port <= 65535;
		g_free(p);
		if (!ok) {
			value_fail(error, "\"%s\": the port must be a number from 1 to "
			    "65535", shown);
			goto fail;
		}
	}
	h = g_ascii_strdown(host, (gssize)hlen);
	if (hlen == 0 || (!g_hostname_is_ip_address(h) &&
	    (ip_only || !domain_valid(h)))) {
		value_fail(error, "\"%s\": %s", shown, ip_only ?
		    "the host must be an IP address" :
		    "the host must be a domain name or an IP address");
		g_free(h);
		goto fail;
	}
	if (!literal && strchr(h, ':') != NULL) {
		/* Cannot happen (two colons are refused above); stay safe. */
		value_fail(error, "\"%s\": write an IPv6 address in brackets", shown);
		g_free(h);
		goto fail;
	}
	out->host = h;
	out->port = (guint16)port;
	out->literal = literal;
	g_free(shown);
	return TRUE;
fail:
	g_free(shown);
	return FALSE;
}

void
config_hostport_clear(PgHostPort *hp)
{
	g_free(hp->host);
	memset(hp, 0, sizeof *hp);
}

static char *
hostport_format(const PgHostPort *hp)
{
	if (hp->literal)
		return g_strdup_printf("[%s]:%u", hp->host, (unsigned)hp->port);
	return g_strdup_printf("%s:%u", hp->host, (unsigned)hp->port);
}

/* One proxy template: SMTP:local@domain or smtp:..., with %m %p %n %%. */
static gboolean
proxy_valid(const char *s, GError **error)
{
	GString *x;
	gboolean has_m = FALSE, ok;
	char out[ADDR_SMTP_MAX + 1];
	GError *e = NULL;

	if (strncmp(s, "SMTP:", 5) != 0 && strncmp(s, "smtp:", 5) != 0)
		return value_fail(error, "proxy template \"%s\" must start with SMTP: "
		    "(the primary) or smtp: (a secondary address)", s);
	x = g_string_new(NULL);
	for (const char *p = s + 5; *p; p++) {
		if (*p != '%') {
			g_string_append_c(x, *p);
			continue;
		}
		switch (p[1]) {
		case 'm': has_m = TRUE; /* FALLTHROUGH */
		case 'p': case 'n': g_string_append_c(x, 'x'); break;
		case '%': g_string_append_c(x, '%'); break;
		default:
			g_string_free(x, TRUE);
			return value_fail(error, "proxy template \"%s\": %% must be "
			    "followed by m, p, n or %%", s);
		}
		p++;
	}
	if (!has_m) {
		g_string_free(x, TRUE);
		return value_fail(error, "proxy template \"%s\" has no %%m: every "
		    "entry would get the same address", s);
	}
	ok = addr_parse_smtp(x->str, x->len, out, &e);
	g_string_free(x, TRUE);
	if (!ok) {
		value_fail(error, "proxy template \"%s\" makes no valid address: %s",
		    s, e->message);
		g_error_free(e);
	}
	return ok;
}

/* One list item, checked and made canonical; NULL and error when bad. */
static char *
item_parse(const KeyInfo *k, const char *item, GError **error)
{
	GInetAddressMask *mask;
	PgHostPort hp;
	char *s;

	switch (k->type) {
	case T_DOMAINS:
		s = g_ascii_strdown(item, -1);
		if (!domain_valid(s)) {
			value_fail(error, "\"%s\" is not a domain name", item);
			g_free(s);
			return NULL;
		}
		return s;
	case T_NETWORKS:
		mask = g_inet_address_mask_new_from_string(item, NULL);
		if (mask == NULL) {
			value_fail(error, "\"%s\" is not a network (ADDRESS/PREFIX, "
			    "no host bits set)", item);
			return NULL;
		}
		s = g_inet_address_mask_to_string(mask);
		g_object_unref(mask);
		return s;
	case T_NAMESERVERS:
	case T_LISTEN:
		if (!config_hostport_parse(item, strlen(item), k->port, TRUE, &hp,
		    error))
			return NULL;
		s = hostport_format(&hp);
		config_hostport_clear(&hp);
		return s;
	case T_PROXIES:
		return proxy_valid(item, error) ? g_strdup(item) : NULL;
	default:
		g_error("config: key %s is no list", k->name);
		return NULL;
	}
}

static gboolean
list_parse(const KeyInfo *k, const char *s, Value *out, GError **error)
{
	GPtrArray *items = g_ptr_array_new_with_free_func(g_free);
	GHashTable *seen = g_hash_table_new(g_str_hash, g_str_equal);
	char **parts = g_strsplit(s, ",", -1);
	gboolean primary = FALSE;

	for (char **p = parts; *p; p++) {
		const char *t = *p;
		size_t tlen = strlen(t);
		char *item, *canon;

		trim(&t, &tlen);
		if (tlen == 0) {
			value_fail(error, "empty item in the list (a comma too many?)");
			goto fail;
		}
		item = g_strndup(t, tlen);
		canon = item_parse(k, item, error);
		g_free(item);
		if (canon == NULL)
			goto fail;
		if (g_hash_table_contains(seen, canon)) {
			value_fail(error, "\"%s\" is listed twice", canon);
			g_free(canon);
			goto fail;
		}
		g_hash_table_add(seen, canon);  /* owned by items */
		if (k->type == T_PROXIES && strncmp(canon, "SMTP:", 5) == 0)
			primary = TRUE;
		g_ptr_array_add(items, canon);
	}
	if (k->type == T_PROXIES && items->len > 0 && !primary) {
		value_fail(error, "no SMTP: template: one address must be the primary");
		goto fail;
	}
	g_hash_table_destroy(seen);
	g_strfreev(parts);
	g_ptr_array_add(items, NULL);
	out->list = (char **)g_ptr_array_free(items, FALSE);
	out->text = g_strjoinv(", ", out->list);
	return TRUE;
fail:
	g_hash_table_destroy(seen);
	g_strfreev(parts);
	g_ptr_array_free(items, TRUE);
	return FALSE;
}

static void
value_clear(Value *v)
{
	g_free(v->text);
	g_strfreev(v->list);
	config_hostport_clear(&v->hp);
	memset(v, 0, sizeof *v);
}

static gboolean
empty_ok(const KeyInfo *k)
{
	return (k->flags & K_EMPTY_OK) || (k->def != NULL && *k->def == '\0');
}

/* Parse s (trimmed, no NUL, no control characters) as a value of key k. */
static gboolean
value_parse(const KeyInfo *k, const char *s, Value *out, GError **error)
{
	char net[ADDR_PART_MAX + 1], po[ADDR_PART_MAX + 1];
	GError *e = NULL;

	memset(out, 0, sizeof *out);
	if (*s == '\0') {
		if (!empty_ok(k))
			return value_fail(error, "the value must not be empty");
		out->text = g_strdup("");
		if (types[k->type].list)
			out->list = g_new0(char *, 1);
		return TRUE;
	}
	switch (k->type) {
	case T_STRING:
	case T_PATH:
		if (k->type == T_PATH && s[0] != '/')
			return value_fail(error, "\"%s\" is not an absolute path", s);
		out->text = g_strdup(s);
		return TRUE;
	case T_NAME:
		if (strlen(s) > CONFIG_NAME_MAX ||
		    strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		    "0123456789-_") != strlen(s))
			return value_fail(error, "\"%s\" is not a name (1 to %u of "
			    "A-Z a-z 0-9 - _)", s, CONFIG_NAME_MAX);
		out->text = g_strdup(s);
		return TRUE;
	case T_INT:
	case T_SIZE:
	case T_DURATION:
		if (!parse_number(k, s, &out->num, error))
			return FALSE;
		out->text = k->type == T_DURATION ? duration_format(out->num) :
		    g_strdup_printf("%" G_GINT64_FORMAT, out->num);
		return TRUE;
	case T_ENUM: {
		char **w = g_strsplit(k->choices, "|", -1);
		gboolean found = g_strv_contains((const char *const *)w, s);
		g_strfreev(w);
		if (!found)
			return value_fail(error, "\"%s\" is not one of %s", s, k->choices);
		out->text = g_strdup(s);
		return TRUE;
	}
	case T_HOSTNAME:
		out->text = g_ascii_strdown(s, -1);
		if (!domain_valid(out->text)) {
			g_free(out->text);
			out->text = NULL;
			return value_fail(error, "\"%s\" is not a domain name", s);
		}
		return TRUE;
	case T_HOSTPORT:
		if (!config_hostport_parse(s, strlen(s), k->port,
		    (k->flags & K_IP_ONLY) != 0, &out->hp, error))
			return FALSE;
		out->text = hostport_format(&out->hp);
		return TRUE;
	case T_PO:
		if (!addr_parse_po(s, strlen(s), net, po, &e)) {
			value_fail(error, "%s", e->message);
			g_error_free(e);
			return FALSE;
		}
		out->text = g_strdup_printf("%s/%s", net, po);
		return TRUE;
	case T_MAILBOX: {
		PgAddr a;
		if (!addr_parse(s, strlen(s), &a, &e)) {
			value_fail(error, "%s", e->message);
			g_error_free(e);
			return FALSE;
		}
		if (a.kind != ADDR_KIND_LEGACY)
			return value_fail(error, "\"%s\" is not a legacy mailbox NET/PO/MAILBOX", s);
		out->text = addr_format(&a);
		return TRUE;
	}
	case T_CODEPAGE:
		if (strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		    "0123456789-_.:") != strlen(s) || !cp_supported(s))
			return value_fail(error, "\"%s\" is not a codepage iconv knows "
			    "(CP437, CP850, CP1252, ...)", s);
		out->text = g_ascii_strup(s, -1);
		return TRUE;
	case T_DOMAINS:
	case T_NETWORKS:
	case T_NAMESERVERS:
	case T_LISTEN:
	case T_PROXIES:
		return list_parse(k, s, out, error);
	case T_COUNT:
		break;
	}
	g_error("config: key %s has no type", k->name);
	return FALSE;
}

/* The canonical text of k's default; NULL for a required key. */
static char *
default_text(const KeyInfo *k)
{
	Value v;
	GError *e = NULL;
	char *text;

	if (k->def == NULL)
		return NULL;
	if (!value_parse(k, k->def, &v, &e))
		g_error("config: default of %s is bad: %s", k->name, e->message);
	text = v.text;
	v.text = NULL;
	value_clear(&v);
	return text;
}

/* ---- sections ---- */

static Section *
section_new(ConfigGroup group, const char *name, unsigned line)
{
	Section *s = g_new0(Section, 1);
	GError *e = NULL;

	s->group = group;
	s->line = line;
	s->name = g_strdup(name);
	s->label = name ? g_strdup_printf("[%s %s]", groups[group].name, name) :
	    g_strdup_printf("[%s]", groups[group].name);
	for (int i = 0; i < CONFIG_KEY_COUNT; i++) {
		const KeyInfo *k = &keys[i];
		if (k->group != group || k->def == NULL)
			continue;
		if (!value_parse(k, k->def, &s->v[i], &e))
			g_error("config: default of %s is bad: %s", k->name, e->message);
	}
	return s;
}

static void
section_free(gpointer p)
{
	Section *s = p;

	for (int i = 0; i < CONFIG_KEY_COUNT; i++)
		value_clear(&s->v[i]);
	g_free(s->label);
	g_free(s->name);
	g_free(s);
}

static int
key_find(ConfigGroup group, const char *name)
{
	for (int i = 0; i < CONFIG_KEY_COUNT; i++)
		if (keys[i].group == group && strcmp(keys[i].name, name) == 0)
			return i;
	return -1;
}

/* ---- the reader ---- */

/* A line that could not be read: what it held is not known (it may have
 * been a key, or the header of the group of the keys after it). */
static void
line_unread(Parser *P)
{
	if (P->cur != NULL) {
		P->cur->unread = TRUE;
	} else {
		P->lost_lines = TRUE;
		P->in_group = TRUE;
	}
}

static void
header_line(Parser *P, unsigned line, const char *s, size_t len)
{
	PgConfig *cfg = P->cfg;
	const char *inner, *arg = NULL;
	size_t ilen, hlen, alen = 0;
	char *head, *argz;
	int g;

	P->cur = NULL;  /* keys of a refused group are ignored */
	P->in_group = TRUE;
	if (s[len - 1] != ']') {
		diag(P, line, CONFIG_ERROR_SYNTAX, "group header does not end in ]%s",
		    memchr(s, ']', len) ? " (comments go on their own line)" : "");
		P->lost_lines = TRUE;
		return;
	}
	inner = s + 1;
	ilen = len - 2;
	trim(&inner, &ilen);
	for (hlen = 0; hlen < ilen && !is_blank(inner[hlen]); hlen++)
		;
	if (hlen < ilen) {
		arg = inner + hlen;
		alen = ilen - hlen;
		trim(&arg, &alen);
	}
	head = g_strndup(inner, hlen);
	argz = g_strndup(arg ? arg : "", alen);
	for (g = 0; g < CONFIG_GROUP_COUNT; g++)
		if (strcmp(groups[g].name, head) == 0)
			break;
	if (g == CONFIG_GROUP_COUNT) {
		char *all = g_strndup(inner, ilen);
		diag(P, line, CONFIG_ERROR_UNKNOWN, "unknown group [%s]", all);
		g_free(all);
		goto out;
	}
	if (!groups[g].instances) {
		Section *sec = cfg->fixed[g];
		if (arg != NULL)
			diag(P, line, CONFIG_ERROR_SYNTAX, "group [%s] takes no name",
			    head);
		else if (sec->line != 0)
			diag(P, line, CONFIG_ERROR_DUPLICATE, "duplicate group [%s] "
			    "(first at line %u)", head, sec->line);
		else {
			sec->line = line;
			P->cur = sec;
		}
		goto out;
	}
	if (arg == NULL) {
		diag(P, line, CONFIG_ERROR_SYNTAX, "group [%s] needs a name: %s",
		    head, groups[g].label);
		goto out;
	}
	if (cfg->postoffices->len + cfg->links->len >= CONFIG_GROUPS_MAX) {
		diag(P, line, CONFIG_ERROR_LIMIT, "more than %u [postoffice] and "
		    "[site-link] groups", CONFIG_GROUPS_MAX);
		goto out;
	}
	if (g == CONFIG_GROUP_POSTOFFICE) {
		char net[ADDR_PART_MAX + 1], po[ADDR_PART_MAX + 1];
		GError *e = NULL;
		char *name;
		Section *sec;

		if (!addr_parse_po(argz, alen, net, po, &e)) {
			diag(P, line, CONFIG_ERROR_VALUE, "[postoffice %s]: %s", argz,
			    e->message);
			g_error_free(e);
			goto out;
		}
		name = g_strdup_printf("%s/%s", net, po);
		for (guint i = 0; i < cfg->postoffices->len; i++) {
			Section *o = cfg->postoffices->pdata[i];
			if (strcmp(o->name, name) == 0) {
				diag(P, line, CONFIG_ERROR_DUPLICATE, "duplicate group "
				    "[postoffice %s] (first at line %u)", name, o->line);
				g_free(name);
				goto out;
			}
		}
		sec = section_new(CONFIG_GROUP_POSTOFFICE, name, line);
		g_strlcpy(sec->net, net, sizeof sec->net);
		g_strlcpy(sec->po, po, sizeof sec->po);
		g_ptr_array_add(cfg->postoffices, sec);
		P->cur = sec;
		g_free(name);
	} else {
		Section *sec;

		if (alen > CONFIG_NAME_MAX ||
		    strspn(argz, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		    "0123456789-_") != alen) {
			diag(P, line, CONFIG_ERROR_VALUE, "[site-link %s]: not a site "
			    "name (1 to %u of A-Z a-z 0-9 - _)", argz, CONFIG_NAME_MAX);
			goto out;
		}
		for (guint i = 0; i < cfg->links->len; i++) {
			Section *o = cfg->links->pdata[i];
			if (g_ascii_strcasecmp(o->name, argz) == 0) {
				diag(P, line, CONFIG_ERROR_DUPLICATE, "duplicate group "
				    "[site-link %s] (first at line %u)", argz, o->line);
				goto out;
			}
		}
		sec = section_new(CONFIG_GROUP_SITE_LINK, argz, line);
		g_ptr_array_add(cfg->links, sec);
		P->cur = sec;
	}
out:
	if (P->cur == NULL)
		P->lost_lines = TRUE;
	g_free(head);
	g_free(argz);
}

static void
key_line(Parser *P, unsigned line, const char *s, size_t len)
{
	const char *eq = memchr(s, '=', len), *key = s, *val;
	size_t klen, vlen;
	char *name, *value;
	Section *sec = P->cur;
	Value v;
	GError *e = NULL;
	int ki;

	if (eq == NULL) {
		diag(P, line, CONFIG_ERROR_SYNTAX, "expected [group], key = value or a "
		    "comment line");
		line_unread(P);
		return;
	}
	klen = (size_t)(eq - s);
	trim(&key, &klen);
	val = eq + 1;
	vlen = (size_t)(s + len - val);
	trim(&val, &vlen);
	if (klen == 0) {
		diag(P, line, CONFIG_ERROR_SYNTAX, "no key name before =");
		line_unread(P);
		return;
	}
	name = g_strndup(key, klen);
	value = g_strndup(val, vlen);
	if (sec == NULL) {
		/* Before the first group; in a refused group, say nothing more. */
		if (!P->in_group)
			diag(P, line, CONFIG_ERROR_SYNTAX, "key %s is outside any group; "
			    "start with a group such as [site]", name);
		P->lost_lines = TRUE;
		goto out;
	}
	ki = key_find(sec->group, name);
	if (ki < 0) {
		const char *home = NULL;
		/* Perhaps a required key misspelt: it is not "missing" too. */
		sec->unread = TRUE;
		for (int i = 0; i < CONFIG_KEY_COUNT && home == NULL; i++)
			if (strcmp(keys[i].name, name) == 0)
				home = groups[keys[i].group].label;
		if (home)
			diag(P, line, CONFIG_ERROR_UNKNOWN, "unknown key %s in %s (it "
			    "belongs in %s)", name, sec->label, home);
		else
			diag(P, line, CONFIG_ERROR_UNKNOWN, "unknown key %s in %s", name,
			    sec->label);
		goto out;
	}
	if (sec->v[ki].line != 0) {
		diag(P, line, CONFIG_ERROR_DUPLICATE, "duplicate key %s in %s (first "
		    "at line %u)", name, sec->label, sec->v[ki].line);
		goto out;
	}
	if (!value_parse(&keys[ki], value, &v, &e)) {
		/* `key = value # note` is a common slip: say why it failed. */
		diag(P, line, CONFIG_ERROR_VALUE, "%s: %s%s", name, e->message,
		    has_comment_char(value) ? " (comments go on their own line)" : "");
		g_error_free(e);
		sec->v[ki].line = line;
		sec->v[ki].bad = TRUE;
		goto out;
	}
	value_clear(&sec->v[ki]);
	sec->v[ki] = v;
	sec->v[ki].line = line;
out:
	g_free(name);
	g_free(value);
}

static void
parse_line(Parser *P, unsigned line, const char *s, size_t len)
{
	if (len > 0 && s[len - 1] == '\r')
		len--;
	if (len > CONFIG_LINE_MAX) {
		diag(P, line, CONFIG_ERROR_LIMIT, "line is longer than %u bytes",
		    CONFIG_LINE_MAX);
		line_unread(P);
		return;
	}
	if (memchr(s, '\0', len) != NULL) {
		diag(P, line, CONFIG_ERROR_SYNTAX, "NUL byte in line");
		line_unread(P);
		return;
	}
	if (!g_utf8_validate(s, (gssize)len, NULL)) {
		diag(P, line, CONFIG_ERROR_SYNTAX, "line is not valid UTF-8");
		line_unread(P);
		return;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			diag(P, line, CONFIG_ERROR_SYNTAX, "control character 0x%02x in "
			    "line", c);
			line_unread(P);
			return;
		}
	}
	trim(&s, &len);
	if (len == 0 || s[0] == '#' || s[0] == ';')
		return;
	if (s[0] == '[')
		header_line(P, line, s, len);
	else
		key_line(P, line, s, len);
}

static const Value *
sec_value(const Section *sec, ConfigKey k)
{
	return &sec->v[k];
}

/* A file key that the file set to a good, non-empty value. */
static gboolean
usable(const Value *v)
{
	return v->line != 0 && !v->bad && v->text != NULL && *v->text != '\0';
}

/* Not for a group with an unread line: the key may be on it. */
static void
check_required(Parser *P, Section *sec)
{
	if (sec->line == 0 || sec->unread)
		return;
	for (int i = 0; i < CONFIG_KEY_COUNT; i++)
		if (keys[i].group == sec->group && keys[i].def == NULL &&
		    sec->v[i].line == 0)
			diag(P, sec->line, CONFIG_ERROR_MISSING, "missing required key %s "
			    "in %s", keys[i].name, sec->label);
}

/* Both keys set or neither. */
static void
check_pair(Parser *P, Section *sec, ConfigKey a, ConfigKey b)
{
	const Value *va = sec_value(sec, a), *vb = sec_value(sec, b);
	gboolean sa = *va->text != '\0', sb = *vb->text != '\0';

	if (va->bad || vb->bad || sa == sb || sec->unread)
		return;
	diag(P, sa ? va->line : vb->line, CONFIG_ERROR_VALUE, "%s is set but %s is "
	    "not: set both or neither", keys[sa ? a : b].name, keys[sa ? b : a].name);
}

/* No domain may belong to two sites. */
static void
check_domains(Parser *P, const Value *v, const char *owner, GHashTable *seen)
{
	if (!usable(v))
		return;
	for (char **d = v->list; *d; d++) {
		const char *first = g_hash_table_lookup(seen, *d);
		if (first != NULL)
			diag(P, v->line, CONFIG_ERROR_VALUE, "domain %s already belongs "
			    "to %s", *d, first);
		else
			g_hash_table_insert(seen, *d, (gpointer)owner);
	}
}

static void
check_values(Parser *P)
{
	PgConfig *cfg = P->cfg;
	Section *site = cfg->fixed[CONFIG_GROUP_SITE];
	Section *dl = cfg->fixed[CONFIG_GROUP_DELIVERY];
	const Value *lo = sec_value(dl, CONFIG_DELIVERY_MIN_BACKOFF);
	const Value *hi = sec_value(dl, CONFIG_DELIVERY_MAX_BACKOFF);
	const Value *gw = sec_value(site, CONFIG_SITE_GATEWAY_PO);
	const Value *sname = sec_value(site, CONFIG_SITE_NAME);
	const Value *pm = sec_value(site, CONFIG_SITE_POSTMASTER);
	GHashTable *seen;

	if (site->line == 0 && !P->lost_lines)
		diag(P, 1, CONFIG_ERROR_MISSING, "missing required group [site]");
	for (int g = 0; g < CONFIG_GROUP_COUNT; g++)
		if (cfg->fixed[g] != NULL)
			check_required(P, cfg->fixed[g]);
	for (guint i = 0; i < cfg->postoffices->len; i++)
		check_required(P, cfg->postoffices->pdata[i]);
	for (guint i = 0; i < cfg->links->len; i++)
		check_required(P, cfg->links->pdata[i]);

	if (!lo->bad && !hi->bad && hi->num < lo->num)
		diag(P, hi->line ? hi->line : lo->line, CONFIG_ERROR_VALUE,
		    "max_backoff (%s) is less than min_backoff (%s)", hi->text,
		    lo->text);
	check_pair(P, cfg->fixed[CONFIG_GROUP_SMTPD], CONFIG_SMTPD_TLS_CERT_FILE,
	    CONFIG_SMTPD_TLS_KEY_FILE);
	check_pair(P, dl, CONFIG_DELIVERY_AUTH_USER,
	    CONFIG_DELIVERY_AUTH_PASSWORD_FILE);

	for (guint i = 0; i < cfg->postoffices->len; i++) {
		Section *po = cfg->postoffices->pdata[i];
		const Value *dir = sec_value(po, CONFIG_PO_DIR);
		if (usable(gw) && strcmp(po->name, gw->text) == 0)
			diag(P, po->line, CONFIG_ERROR_VALUE, "[postoffice %s] is the "
			    "gateway's own gateway_po; a served postoffice needs a "
			    "name of its own", po->name);
		if (!usable(dir))
			continue;
		for (guint j = 0; j < i; j++) {
			const Value *odir = sec_value(cfg->postoffices->pdata[j],
			    CONFIG_PO_DIR);
			if (usable(odir) && strcmp(odir->text, dir->text) == 0) {
				diag(P, dir->line, CONFIG_ERROR_VALUE, "dir %s is already "
				    "the dir of postoffice %s (line %u)", dir->text,
				    ((Section *)cfg->postoffices->pdata[j])->name,
				    odir->line);
				break;
			}
		}
	}

	if (usable(pm) && *pm->text && !P->lost_lines) {
		gboolean served = FALSE;
		for (guint i = 0; i < cfg->postoffices->len && !served; i++) {
			const char *name = ((Section *)cfg->postoffices->pdata[i])->name;
			size_t n = strlen(name);
			served = strncmp(pm->text, name, n) == 0 && pm->text[n] == '/';
		}
		if (!served)
			diag(P, pm->line, CONFIG_ERROR_VALUE, "postmaster %s is not on a "
			    "postoffice this site serves (a [postoffice NET/PO] group)",
			    pm->text);
	}

	seen = g_hash_table_new(g_str_hash, g_str_equal);
	check_domains(P, sec_value(site, CONFIG_SITE_DOMAINS), "[site]", seen);
	for (guint i = 0; i < cfg->links->len; i++) {
		Section *ln = cfg->links->pdata[i];
		if (usable(sname) && g_ascii_strcasecmp(ln->name, sname->text) == 0)
			diag(P, ln->line, CONFIG_ERROR_VALUE, "%s names this site itself "
			    "([site] name)", ln->label);
		check_domains(P, sec_value(ln, CONFIG_LINK_DOMAINS), ln->label, seen);
	}
	g_hash_table_destroy(seen);
}

/* What a file that is not a regular file is, for a message. */
static const char *
file_kind(mode_t mode)
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
check_regular(Parser *P, Section *sec, ConfigKey k)
{
	const Value *v = sec_value(sec, k);
	struct stat st;

	if (usable(v) && stat(v->text, &st) == 0 && !S_ISREG(st.st_mode))
		diag(P, v->line, CONFIG_ERROR_FILE, "%s %s is not a regular file (%s)",
		    keys[k].name, v->text, file_kind(st.st_mode));
}

/* The file-system checks: each postoffice's dir and key file, and that the
 * other files the configuration names are regular files. */
static void
check_files(Parser *P)
{
	PgConfig *cfg = P->cfg;
	Section *smtpd = cfg->fixed[CONFIG_GROUP_SMTPD];
	Section *dl = cfg->fixed[CONFIG_GROUP_DELIVERY];

	check_regular(P, smtpd, CONFIG_SMTPD_TLS_CERT_FILE);
	check_regular(P, smtpd, CONFIG_SMTPD_TLS_KEY_FILE);
	check_regular(P, dl, CONFIG_DELIVERY_TLS_CA_FILE);
	check_regular(P, dl, CONFIG_DELIVERY_AUTH_PASSWORD_FILE);

	for (guint i = 0; i < cfg->postoffices->len; i++) {
		Section *po = cfg->postoffices->pdata[i];
		const Value *dir = sec_value(po, CONFIG_PO_DIR);
		const Value *kf = sec_value(po, CONFIG_PO_KEY_FILE);
		struct stat st;
		GBytes *key;
		GError *e = NULL;
		int fd;

		if (usable(dir)) {
			if (stat(dir->text, &st) != 0 && errno == ENOENT)
				diag(P, dir->line, CONFIG_ERROR_FILE, "dir %s does not "
				    "exist", dir->text);
			else if (stat(dir->text, &st) != 0)
				diag(P, dir->line, CONFIG_ERROR_FILE, "dir %s: %s",
				    dir->text, g_strerror(errno));
			else if (!S_ISDIR(st.st_mode))
				diag(P, dir->line, CONFIG_ERROR_FILE, "dir %s is not a "
				    "directory", dir->text);
		}
		if (!usable(kf))
			continue;
		/* A FIFO or device would be read for ever: open without waiting
		 * for a writer, and refuse it before reading. */
		fd = open(kf->text, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
		if (fd < 0 || fstat(fd, &st) != 0) {
			diag(P, kf->line, CONFIG_ERROR_FILE, "key file %s is "
			    "unreadable: %s", kf->text, g_strerror(errno));
			if (fd >= 0)
				close(fd);
			continue;
		}
		close(fd);
		if (!S_ISREG(st.st_mode)) {
			diag(P, kf->line, CONFIG_ERROR_FILE, "key file %s is not a "
			    "regular file (%s)", kf->text, file_kind(st.st_mode));
			continue;
		}
		key = keyfile_load(kf->text, &e);
		if (key == NULL) {
			diag(P, kf->line, CONFIG_ERROR_FILE, "%s", e->message);
			g_error_free(e);
		} else {
			g_bytes_unref(key);
		}
	}
}

static gint
diag_cmp(gconstpointer a, gconstpointer b)
{
	const Diag *x = a, *y = b;

	return x->line < y->line ? -1 : x->line > y->line;
}

static PgConfig *
config_new(const char *name)
{
	PgConfig *cfg = g_new0(PgConfig, 1);

	cfg->name = g_strdup(name);
	for (int g = 0; g < CONFIG_GROUP_COUNT; g++)
		if (!groups[g].instances)
			cfg->fixed[g] = section_new(g, NULL, 0);
	cfg->postoffices = g_ptr_array_new_with_free_func(section_free);
	cfg->links = g_ptr_array_new_with_free_func(section_free);
	return cfg;
}

static void
make_views(PgConfig *cfg)
{
	for (guint i = 0; i < cfg->postoffices->len; i++) {
		Section *s = cfg->postoffices->pdata[i];
		s->po_view.name = s->name;
		s->po_view.net = s->net;
		s->po_view.po = s->po;
		s->po_view.dir = s->v[CONFIG_PO_DIR].text;
		s->po_view.key_file = s->v[CONFIG_PO_KEY_FILE].text;
		s->po_view.codepage = s->v[CONFIG_PO_CODEPAGE].text;
		s->po_view.line = s->line;
	}
	for (guint i = 0; i < cfg->links->len; i++) {
		Section *s = cfg->links->pdata[i];
		s->link_view.name = s->name;
		s->link_view.domains = (const char *const *)s->v[CONFIG_LINK_DOMAINS].list;
		s->link_view.host = &s->v[CONFIG_LINK_HOST].hp;
		s->link_view.line = s->line;
	}
}

PgConfig *
config_parse(const char *name, const char *buf, size_t len, ConfigFlags flags,
    GError **error)
{
	Parser P = { 0 };
	/* An empty file may come as (NULL, 0): no arithmetic on NULL. */
	const char *p = len > 0 ? buf : "", *end = p + len;
	unsigned line = 0;
	GString *msg;
	ConfigError code;

	if (len > CONFIG_FILE_MAX) {
		g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_LIMIT, "%s: the file is "
		    "larger than %u bytes", name, CONFIG_FILE_MAX);
		return NULL;
	}
	P.cfg = config_new(name);
	P.diags = g_array_new(FALSE, FALSE, sizeof(Diag));
	while (p < end && !P.full) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end;
		parse_line(&P, ++line, p, (size_t)(eol - p));
		p = nl ? nl + 1 : end;
	}
	if (!P.full)
		check_values(&P);
	if (!P.full && (flags & CONFIG_CHECK_FILES))
		check_files(&P);
	if (P.diags->len == 0) {
		g_array_free(P.diags, TRUE);
		make_views(P.cfg);
		return P.cfg;
	}
	/* Stable: errors on one line stay in the order they were found. */
	g_array_sort(P.diags, diag_cmp);
	msg = g_string_new(NULL);
	code = g_array_index(P.diags, Diag, 0).code;
	for (guint i = 0; i < P.diags->len; i++) {
		Diag *d = &g_array_index(P.diags, Diag, i);
		g_string_append_printf(msg, "%s%s:%u: %s", i ? "\n" : "", name,
		    d->line, d->msg);
		g_free(d->msg);
	}
	g_array_free(P.diags, TRUE);
	g_set_error_literal(error, CONFIG_ERROR, code, msg->str);
	g_string_free(msg, TRUE);
	config_free(P.cfg);
	return NULL;
}

PgConfig *
config_load_file(const char *path, GError **error)
{
	return config_load_file_flags(path, CONFIG_CHECK_FILES, error);
}

PgConfig *
config_load_file_flags(const char *path, ConfigFlags flags, GError **error)
{
	GByteArray *data;
	PgConfig *cfg;
	struct stat st;
	int fd, e;

	/* O_NONBLOCK: a FIFO must not hang us waiting for a writer. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		e = errno;
		g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_IO, "%s: cannot open: %s",
		    path, g_strerror(e));
		return NULL;
	}
	if (fstat(fd, &st) != 0) {
		e = errno;
		close(fd);
		g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_IO, "%s: cannot open: %s",
		    path, g_strerror(e));
		return NULL;
	}
	if (S_ISDIR(st.st_mode)) {
		close(fd);
		g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_IO, "%s: is a directory",
		    path);
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_IO, "%s: is not a regular "
		    "file (%s)", path, file_kind(st.st_mode));
		return NULL;
	}
	data = g_byte_array_new();
	for (;;) {
		guint8 chunk[65536];
		ssize_t n = read(fd, chunk, sizeof chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			e = errno;
			close(fd);
			g_byte_array_free(data, TRUE);
			g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_IO, "%s: cannot "
			    "read: %s", path, g_strerror(e));
			return NULL;
		}
		if (n == 0)
			break;
		g_byte_array_append(data, chunk, (guint)n);
		if (data->len > CONFIG_FILE_MAX) {
			close(fd);
			g_byte_array_free(data, TRUE);
			g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_LIMIT, "%s: the file "
			    "is larger than %u bytes", path, CONFIG_FILE_MAX);
			return NULL;
		}
	}
	close(fd);
	cfg = config_parse(path, (const char *)data->data, data->len, flags,
	    error);
	g_byte_array_free(data, TRUE);
	return cfg;
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

static const Value *
fixed_value(const PgConfig *cfg, ConfigKey key)
{
	if ((unsigned)key >= CONFIG_KEY_COUNT || groups[keys[key].group].instances)
		g_error("config: key %d is not in a fixed group", (int)key);
	return &cfg->fixed[keys[key].group]->v[key];
}

const char *
config_string(const PgConfig *cfg, ConfigKey key)
{
	const Value *v = fixed_value(cfg, key);

	return v->text ? v->text : "";
}

gint64
config_int(const PgConfig *cfg, ConfigKey key)
{
	const Value *v = fixed_value(cfg, key);
	ValueType t = keys[key].type;

	if (t != T_INT && t != T_SIZE && t != T_DURATION)
		g_error("config: key %s is not a number", keys[key].name);
	return v->num;
}

const char *const *
config_list(const PgConfig *cfg, ConfigKey key)
{
	static const char *const none[] = { NULL };
	const Value *v = fixed_value(cfg, key);

	if (!types[keys[key].type].list)
		g_error("config: key %s is not a list", keys[key].name);
	return v->list ? (const char *const *)v->list : none;
}

const PgHostPort *
config_hostport(const PgConfig *cfg, ConfigKey key)
{
	const Value *v = fixed_value(cfg, key);

	if (keys[key].type != T_HOSTPORT)
		g_error("config: key %s is not a host", keys[key].name);
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
	return &((Section *)cfg->postoffices->pdata[i])->po_view;
}

const PgConfigPostoffice *
config_postoffice_find(const PgConfig *cfg, const char *name)
{
	char net[ADDR_PART_MAX + 1], po[ADDR_PART_MAX + 1];

	if (!addr_parse_po(name, strlen(name), net, po, NULL))
		return NULL;
	for (guint i = 0; i < cfg->postoffices->len; i++) {
		Section *s = cfg->postoffices->pdata[i];
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
	return &((Section *)cfg->links->pdata[i])->link_view;
}

const PgConfigSiteLink *
config_site_link_find(const PgConfig *cfg, const char *name)
{
	for (guint i = 0; i < cfg->links->len; i++) {
		Section *s = cfg->links->pdata[i];
		if (g_ascii_strcasecmp(s->name, name) == 0)
			return &s->link_view;
	}
	return NULL;
}

/* ---- check-config output ---- */

static void
print_section(const Section *sec, FILE *out, gboolean *first)
{
	gboolean header = FALSE;

	for (int i = 0; i < CONFIG_KEY_COUNT; i++) {
		const KeyInfo *k = &keys[i];
		const char *text = sec->v[i].text;
		char *def;
		gboolean differs;

		if (k->group != sec->group || text == NULL)
			continue;
		def = default_text(k);
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

/* ---- the man page ---- */

/* Text for roff: a backslash escaped, a control character at the start of a
 * line defused; with literal, '-' is a minus sign (something to type). */
static void
roff(FILE *out, const char *s, gboolean literal, gboolean line_start)
{
	if (line_start && (*s == '.' || *s == '\''))
		fputs("\\&", out);
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\e", out);
		else if (*s == '-' && literal)
			fputs("\\-", out);
		else
			fputc(*s, out);
	}
}

static void
man_key(FILE *out, const KeyInfo *k)
{
	const TypeInfo *t = &types[k->type];

	fputs(".TP\n\\fB", out);
	roff(out, k->name, TRUE, FALSE);
	fputs("\\fR = ", out);
	if (k->type == T_ENUM) {
		char **w = g_strsplit(k->choices, "|", -1);
		for (char **p = w; *p; p++) {
			fputs(p == w ? "\\fB" : " | \\fB", out);
			roff(out, *p, TRUE, FALSE);
			fputs("\\fR", out);
		}
		g_strfreev(w);
	} else {
		fputs("\\fI", out);
		roff(out, t->name, FALSE, FALSE);
		fputs("\\fR", out);
	}
	fputs(" (", out);
	if (k->type == T_INT || k->type == T_SIZE || k->type == T_DURATION) {
		char *lo = range_format(k, k->min), *hi = range_format(k, k->max);
		fprintf(out, "%s to %s; ", lo, hi);
		g_free(lo);
		g_free(hi);
	}
	if (k->type == T_HOSTPORT || k->type == T_NAMESERVERS || k->type == T_LISTEN)
		fprintf(out, "port %u when left out; ", (unsigned)k->port);
	if (k->flags & K_IP_ONLY)
		fputs("an IP address; ", out);
	if (k->def == NULL) {
		fputs("required", out);
	} else if (*k->def == '\0') {
		fputs("default empty", out);
	} else {
		fputs("default \\fB", out);
		roff(out, k->def, TRUE, FALSE);
		fputs("\\fR", out);
		if (k->flags & K_EMPTY_OK)
			fputs("; may be empty", out);
	}
	fputs(")\n", out);
	roff(out, k->doc, FALSE, TRUE);
	fputs("\n", out);
}

gboolean
config_write_manpage(FILE *out)
{
	fputs(".\\\" postgate.conf.5 - generated by `postgate config-manpage' from the key\n"
	    ".\\\" table in gateway/config/config.c: edit the table, then regenerate this file.\n",
	    out);
	fprintf(out, ".TH POSTGATE.CONF 5 \"\" \"postgate %s\" \"postgate manual\"\n",
	    PACKAGE_VERSION);
	fputs(".nh\n", out);        /* keys and values are not to be hyphenated */
	fputs(".SH NAME\n"
	    "postgate.conf \\- configuration file of the postgate mail gateway\n"
	    ".SH SYNOPSIS\n"
	    ".B " CONFIG_DEFAULT_FILE "\n"
	    ".SH DESCRIPTION\n"
	    ".B postgate\n"
	    "reads one INI-style file,\n"
	    ".I " CONFIG_DEFAULT_FILE "\n"
	    "unless\n"
	    ".B \\-c\n"
	    ".I FILE\n"
	    "names another.\n"
	    "It is made of groups: a line\n"
	    ".BI [ group ]\n"
	    "starts one, and the lines\n"
	    ".IB key \" = \" value\n"
	    "after it set its keys.\n"
	    "Blanks around keys and values are ignored.\n"
	    "A line whose first non-blank character is\n"
	    ".B #\n"
	    "or\n"
	    ".B ;\n"
	    "is a comment; comments stand on lines of their own, and a\n"
	    ".B #\n"
	    "after a value is part of the value.\n"
	    "Blank lines are ignored.\n"
	    ".PP\n"
	    "Every group and key below is the whole list: an unknown group or key,\n"
	    "a group or key given twice, a value of the wrong type or out of range,\n"
	    "and a missing required key are errors.\n"
	    "So are a NUL byte, invalid UTF-8, a control character other than tab,\n", out);
	fprintf(out, "and a line longer than %u bytes.\n", CONFIG_LINE_MAX);
	fprintf(out, "The file may hold at most %u bytes and %u\n", CONFIG_FILE_MAX,
	    CONFIG_GROUPS_MAX);
	fputs(".B [postoffice]\n"
	    "and\n"
	    ".B [site\\-link]\n"
	    "groups.\n"
	    "A key left out has its default; a key whose default is not empty may be\n"
	    "set empty only where that is said below.\n"
	    ".PP\n"
	    ".B postgate check\\-config\n"
	    "reads the file, checks every rule below, and prints the settings that\n"
	    "differ from their defaults.\n"
	    ".SS Value types\n", out);
	for (int t = 0; t < T_COUNT; t++) {
		fputs(".TP\n\\fI", out);
		roff(out, types[t].name, FALSE, FALSE);
		fputs("\\fR\n", out);
		roff(out, types[t].doc, FALSE, TRUE);
		fputs("\n", out);
	}
	fputs(".PP\n"
	    "A list is written on one line, items separated by commas; blanks around\n"
	    "items are ignored, an empty item is an error, and so is an item given twice.\n"
	    "An empty value is the empty list.\n", out);
	for (int g = 0; g < CONFIG_GROUP_COUNT; g++) {
		fputs(".SH \"", out);
		roff(out, groups[g].label, TRUE, FALSE);
		fputs("\"\n", out);
		roff(out, groups[g].doc, FALSE, TRUE);
		fputs("\n", out);
		for (int i = 0; i < CONFIG_KEY_COUNT; i++)
			if (keys[i].group == (ConfigGroup)g)
				man_key(out, &keys[i]);
	}
	fputs(".SH DIAGNOSTICS\n"
	    "Each error is one line on standard error,\n"
	    ".IB FILE : LINE : \" what is wrong\" ,\n"
	    "in the order of the lines, every error in the file at once (up to\n", out);
	fprintf(out, "%u).\n", CONFIG_ERRORS_MAX);
	fputs("A missing required key is reported on the line of its group header;\n"
	    "a missing required group, such as\n"
	    ".BR [site] ,\n"
	    "on line 1.\n"
	    "A configuration file that cannot be read is reported as\n"
	    ".IB FILE : \" what is wrong\" .\n"
	    ".B postgate\n"
	    "then exits with status 78 (EX_CONFIG).\n"
	    ".SH EXAMPLE\n"
	    ".nf\n"
	    ".RS\n"
	    "[site]\n"
	    "name = HQ\n"
	    "domains = example.com\n"
	    "gateway_po = CORP/GW\n"
	    "proxy_templates = SMTP:%m@example.com, smtp:%m@hq.example.com\n"
	    "\n"
	    "[delivery]\n"
	    "relay_host = [127.0.0.1]:10027\n"
	    "\n"
	    "[postoffice CORP/HQ]\n"
	    "dir = /srv/po/hq\n"
	    "key_file = /etc/postgate/hq.key\n"
	    "codepage = CP850\n"
	    "\n"
	    "[site\\-link B]\n"
	    "domains = b.example.com\n"
	    "host = 127.0.0.1:2526\n"
	    ".RE\n"
	    ".fi\n"
	    ".SH FILES\n"
	    ".TP\n"
	    ".I " CONFIG_DEFAULT_FILE "\n"
	    "The configuration file.\n"
	    ".SH SEE ALSO\n"
	    ".BR postgate (8),\n"
	    ".BR postgate\\-po (1)\n", out);
	return fflush(out) == 0 && !ferror(out);
}
