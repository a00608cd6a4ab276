/* test_config.c - the postgate.conf reader: values, defaults, every error.
 *
 * Each error case asserts what the user sees: the message starts with
 * NAME:LINE: for the line the error is on, and says what is wrong.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "cu_run.h"
#include "config/pg_config.h"

#define NAME "t.conf"

/* The three keys [site] cannot do without, ahead of each small test file. */
#define SITE "[site]\nname = HQ\ndomains = example.com\ngateway_po = CORP/GW\n"

/* ---- helpers ---- */

/* Parse text from an exactly sized buffer: no terminator to lean on. */
static PgConfig *
parse_flags(const char *text, size_t len, ConfigFlags flags, GError **error)
{
	char *buf = g_malloc(len ? len : 1);
	PgConfig *cfg;

	memcpy(buf, text, len);
	cfg = config_parse(NAME, buf, len, flags, error);
	g_free(buf);
	return cfg;
}

static PgConfig *
parse_ok(const char *text)
{
	GError *e = NULL;
	PgConfig *cfg = parse_flags(text, strlen(text), 0, &e);

	if (cfg == NULL) {
		printf("\nunexpected error: %s\n", e->message);
		g_error_free(e);
	}
	CU_ASSERT_PTR_NOT_NULL(cfg);
	return cfg;
}

/* The error message of a file that must be refused; NULL if it was not. */
static char *
parse_err_len(const char *text, size_t len, ConfigFlags flags)
{
	GError *e = NULL;
	PgConfig *cfg = parse_flags(text, len, flags, &e);
	char *msg;

	if (cfg != NULL) {
		config_free(cfg);
		return NULL;
	}
	CU_ASSERT_EQUAL(e->domain, CONFIG_ERROR);
	msg = g_strdup(e->message);
	g_error_free(e);
	return msg;
}

/* Assert that the (first) error is on line and mentions needle. */
static void
expect_err_len(const char *text, size_t len, ConfigFlags flags, unsigned line,
    const char *needle)
{
	char *msg = parse_err_len(text, len, flags);
	char *prefix = g_strdup_printf(NAME ":%u: ", line);
	gboolean ok = msg != NULL && g_str_has_prefix(msg, prefix) &&
	    strstr(msg, needle) != NULL;

	if (!ok)
		printf("\nwanted \"%s...%s...\", got \"%s\"\n", prefix, needle,
		    msg ? msg : "(no error)");
	CU_ASSERT_TRUE(ok);
	g_free(prefix);
	g_free(msg);
}

static char *
parse_err(const char *text)
{
	return parse_err_len(text, strlen(text), 0);
}

static void
expect_err(const char *text, unsigned line, const char *needle)
{
	expect_err_len(text, strlen(text), 0, line, needle);
}

static void
expect_err_files(const char *text, unsigned line, const char *needle)
{
	expect_err_len(text, strlen(text), CONFIG_CHECK_FILES, line, needle);
}

static void
rm_rf(const char *path)
{
	GDir *d = g_dir_open(path, 0, NULL);
	const char *n;

	if (d != NULL) {
		while ((n = g_dir_read_name(d)) != NULL) {
			char *p = g_build_filename(path, n, NULL);
			rm_rf(p);
			g_free(p);
		}
		g_dir_close(d);
		g_rmdir(path);
	} else {
		g_unlink(path);
	}
}

/* A fixture: DIR/hq/ (a drop directory) and DIR/hq.key (32 bytes). */
static char *
fixture(void)
{
	char *dir = g_dir_make_tmp("pgconf-XXXXXX", NULL);
	char *p;

	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	p = g_build_filename(dir, "hq", NULL);
	CU_ASSERT_EQUAL(g_mkdir(p, 0700), 0);
	g_free(p);
	p = g_build_filename(dir, "hq.key", NULL);
	CU_ASSERT_TRUE(g_file_set_contents(p, "0123456789abcdef0123456789abcdef",
	    32, NULL));
	g_free(p);
	p = g_build_filename(dir, "short.key", NULL);
	CU_ASSERT_TRUE(g_file_set_contents(p, "0123456789", 10, NULL));
	g_free(p);
	return dir;
}

/* The example of issue 3, with dir and key_file in the fixture. */
static char *
example(const char *dir)
{
	return g_strdup_printf(
	    "# postgate.conf\n"
	    "[site]\n"
	    "name = HQ\n"
	    "domains = example.com\n"
	    "state_dir = /var/lib/postgate\n"
	    "gateway_po = CORP/GW\n"
	    "user = postgate\n"
	    "hop_limit = 30\n"
	    "bundle_level = 6\n"
	    "proxy_templates = SMTP:%%m@example.com, smtp:%%m@hq.example.com\n"
	    "[smtpd]\n"
	    "listen = 127.0.0.1:2525\n"
	    "hostname = gw.example.com\n"
	    "relay_networks =\n"
	    "max_message_size = 10485760\n"
	    "max_recipients = 1000\n"
	    "max_connections = 1000\n"
	    "tls_cert_file =\n"
	    "tls_key_file =\n"
	    "[delivery]\n"
	    "relay_host = [127.0.0.1]:10027\n"
	    "resolver =\n"
	    "tls = may\n"
	    "tls_ca_file =\n"
	    "auth_user =\n"
	    "auth_password_file =\n"
	    "min_backoff = 300s\n"
	    "max_backoff = 4000s\n"
	    "queue_lifetime = 5d\n"
	    "single_message_memory = 1d\n"
	    "[directory]\n"
	    "tombstone_lifetime = 180d\n"
	    "[postoffice CORP/HQ]\n"
	    "dir = %s/hq\n"
	    "key_file = %s/hq.key\n"
	    "codepage = CP850\n"
	    "[site-link B]\n"
	    "domains = b.example.com\n"
	    "host = 127.0.0.1:2526\n", dir, dir);
}

/* ---- good files ---- */

static void
test_example_file_gives_its_values(void)
{
	char *dir = fixture(), *text = example(dir), *want;
	GError *e = NULL;
	PgConfig *cfg = parse_flags(text, strlen(text), CONFIG_CHECK_FILES, &e);
	const PgConfigPostoffice *po;
	const PgConfigSiteLink *ln;
	const PgHostPort *hp;
	const char *const *l;

	if (cfg == NULL)
		printf("\n%s\n", e->message);
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_STRING_EQUAL(config_file_name(cfg), NAME);
	CU_ASSERT_STRING_EQUAL(config_string(cfg, CONFIG_SITE_NAME), "HQ");
	l = config_list(cfg, CONFIG_SITE_DOMAINS);
	CU_ASSERT_STRING_EQUAL(l[0], "example.com");
	CU_ASSERT_PTR_NULL(l[1]);
	CU_ASSERT_STRING_EQUAL(config_string(cfg, CONFIG_SITE_GATEWAY_PO), "CORP/GW");
	CU_ASSERT_EQUAL(config_int(cfg, CONFIG_SITE_HOP_LIMIT), 30);
	CU_ASSERT_EQUAL(config_int(cfg, CONFIG_SITE_BUNDLE_LEVEL), 6);
	l = config_list(cfg, CONFIG_SITE_PROXY_TEMPLATES);
	CU_ASSERT_STRING_EQUAL(l[0], "SMTP:%m@example.com");
	CU_ASSERT_STRING_EQUAL(l[1], "smtp:%m@hq.example.com");
	CU_ASSERT_PTR_NULL(l[2]);
	CU_ASSERT_STRING_EQUAL(config_list(cfg, CONFIG_SMTPD_LISTEN)[0], "127.0.0.1:2525");
	CU_ASSERT_PTR_NULL(config_list(cfg, CONFIG_SMTPD_LISTEN)[1]);
	CU_ASSERT_STRING_EQUAL(config_string(cfg, CONFIG_SMTPD_HOSTNAME),
	    "gw.example.com");
	CU_ASSERT_PTR_NULL(config_list(cfg, CONFIG_SMTPD_RELAY_NETWORKS)[0]);
	CU_ASSERT_EQUAL(config_int(cfg, CONFIG_SMTPD_MAX_MESSAGE_SIZE), 10485760);
	hp = config_hostport(cfg, CONFIG_DELIVERY_RELAY_HOST);
	CU_ASSERT_PTR_NOT_NULL_FATAL(hp);
	CU_ASSERT_STRING_EQUAL(hp->host, "127.0.0.1");
	CU_ASSERT_EQUAL(hp->port, 10027);
	CU_ASSERT_TRUE(hp->literal);
	CU_ASSERT_STRING_EQUAL(config_string(cfg, CONFIG_DELIVERY_TLS), "may");
	CU_ASSERT_EQUAL(config_int(cfg, CONFIG_DELIVERY_MIN_BACKOFF), 300);
	CU_ASSERT_EQUAL(config_int(cfg, CONFIG_DELIVERY_MAX_BACKOFF), 4000);
	CU_ASSERT_EQUAL(config_int(cfg, CONFIG_DELIVERY_QUEUE_LIFETIME), 5 * 86400);
	CU_ASSERT_EQUAL(config_int(cfg, CONFIG_DELIVERY_SINGLE_MESSAGE_MEMORY), 86400);
	CU_ASSERT_EQUAL(config_int(cfg, CONFIG_DIRECTORY_TOMBSTONE_LIFETIME),
	    180 * 86400);

	CU_ASSERT_EQUAL_FATAL(config_postoffice_count(cfg), 1);
	po = config_postoffice(cfg, 0);
	CU_ASSERT_STRING_EQUAL(po->name, "CORP/HQ");
	CU_ASSERT_STRING_EQUAL(po->net, "CORP");
	CU_ASSERT_STRING_EQUAL(po->po, "HQ");
	want = g_strdup_printf("%s/hq", dir);
	CU_ASSERT_STRING_EQUAL(po->dir, want);
	g_free(want);
	want = g_strdup_printf("%s/hq.key", dir);
	CU_ASSERT_STRING_EQUAL(po->key_file, want);
	g_free(want);
	CU_ASSERT_STRING_EQUAL(po->codepage, "CP850");
	CU_ASSERT_EQUAL(po->line, 33);
	CU_ASSERT_PTR_EQUAL(config_postoffice_find(cfg, " corp/hq"), po);
	CU_ASSERT_PTR_NULL(config_postoffice_find(cfg, "CORP/SALES"));
	CU_ASSERT_PTR_NULL(config_postoffice_find(cfg, "not a po"));

	CU_ASSERT_EQUAL_FATAL(config_site_link_count(cfg), 1);
	ln = config_site_link(cfg, 0);
	CU_ASSERT_STRING_EQUAL(ln->name, "B");
	CU_ASSERT_STRING_EQUAL(ln->domains[0], "b.example.com");
	CU_ASSERT_PTR_NULL(ln->domains[1]);
	CU_ASSERT_STRING_EQUAL(ln->host->host, "127.0.0.1");
	CU_ASSERT_EQUAL(ln->host->port, 2526);
	CU_ASSERT_EQUAL(ln->line, 37);
	CU_ASSERT_PTR_EQUAL(config_site_link_find(cfg, "b"), ln);
	CU_ASSERT_PTR_NULL(config_site_link_find(cfg, "C"));
	config_free(cfg);
	g_free(text);
	rm_rf(dir);
	g_free(dir);
}

static void
test_defaults_apply_to_keys_left_out(void)
{
	PgConfig *cfg = parse_ok(SITE);

	if (cfg == NULL)
		return;
	CU_ASSERT_STRING_EQUAL(config_string(cfg, CONFIG_SITE_STATE_DIR),
	    "/var/lib/postgate");
	CU_ASSERT_STRING_EQUAL(config_string(cfg, CONFIG_SITE_USER), "postgate");
	CU_ASSERT_EQUAL(config_int(cfg, CONFIG_SITE_HOP_LIMIT), 30);
	CU_ASSERT_EQUAL(config_int(cfg, CONFIG_SITE_BUNDLE_LEVEL), 6);
	CU_ASSERT_PTR_NULL(config_list(cfg, CONFIG_SITE_PROXY_TEMPLATES)[0]);
	CU_ASSERT_STRING_EQUAL(config_list(cfg, CONFIG_SMTPD_LISTEN)[0], "127.0.0.1:2525");
	CU_ASSERT_EQUAL(config_int(cfg, CONFIG_SMTPD_TIMEOUT), 300);
	CU_ASSERT_STRING_EQUAL(config_string(cfg, CONFIG_SMTPD_HOSTNAME), "");
	CU_ASSERT_EQUAL(config_int(cfg, CONFIG_SMTPD_MAX_MESSAGE_SIZE), 10485760);
	CU_ASSERT_EQUAL(config_int(cfg, CONFIG_SMTPD_MAX_RECIPIENTS), 1000);
	CU_ASSERT_EQUAL(config_int(cfg, CONFIG_SMTPD_MAX_CONNECTIONS), 1000);
	CU_ASSERT_PTR_NULL(config_hostport(cfg, CONFIG_DELIVERY_RELAY_HOST));
	CU_ASSERT_PTR_NULL(config_list(cfg, CONFIG_DELIVERY_RESOLVER)[0]);
	CU_ASSERT_STRING_EQUAL(config_string(cfg, CONFIG_DELIVERY_TLS), "may");
	CU_ASSERT_EQUAL(config_int(cfg, CONFIG_DELIVERY_MIN_BACKOFF), 300);
	CU_ASSERT_EQUAL(config_int(cfg, CONFIG_DELIVERY_MAX_BACKOFF), 4000);
	CU_ASSERT_EQUAL(config_int(cfg, CONFIG_DELIVERY_QUEUE_LIFETIME), 432000);
	CU_ASSERT_EQUAL(config_int(cfg, CONFIG_DELIVERY_SINGLE_MESSAGE_MEMORY), 86400);
	CU_ASSERT_EQUAL(config_int(cfg, CONFIG_DIRECTORY_TOMBSTONE_LIFETIME),
	    15552000);
	CU_ASSERT_EQUAL(config_postoffice_count(cfg), 0);
	CU_ASSERT_EQUAL(config_site_link_count(cfg), 0);
	config_free(cfg);
}

static void
test_comments_blanks_crlf_and_spacing(void)
{
	PgConfig *cfg = parse_ok(
	    "# a comment\r\n"
	    "; another\r\n"
	    "   \t# indented comment\r\n"
	    "\r\n"
	    "  [ site ]  \r\n"
	    "name=HQ\r\n"
	    "\tdomains   =   Example.COM ,  hq.example.com\t\r\n"
	    "gateway_po = corp/gw\r\n"
	    "[postoffice   corp/hq  ]\n"
	    "dir = /srv/po/hq # the old one\n"
	    "key_file = /etc/postgate/hq.key\n"
	    "codepage = cp850");     /* no newline at the end */
	const char *const *l;

	if (cfg == NULL)
		return;
	CU_ASSERT_STRING_EQUAL(config_string(cfg, CONFIG_SITE_NAME), "HQ");
	l = config_list(cfg, CONFIG_SITE_DOMAINS);
	CU_ASSERT_STRING_EQUAL(l[0], "example.com");
	CU_ASSERT_STRING_EQUAL(l[1], "hq.example.com");
	CU_ASSERT_STRING_EQUAL(config_string(cfg, CONFIG_SITE_GATEWAY_PO), "CORP/GW");
	/* Comments only on their own lines: a # after a value is the value. */
	CU_ASSERT_STRING_EQUAL(config_postoffice(cfg, 0)->dir,
	    "/srv/po/hq # the old one");
	CU_ASSERT_STRING_EQUAL(config_postoffice(cfg, 0)->name, "CORP/HQ");
	CU_ASSERT_STRING_EQUAL(config_postoffice(cfg, 0)->codepage, "CP850");
	config_free(cfg);
}

static void
test_durations(void)
{
	static const struct {
		const char *text;
		gint64 seconds;
	} good[] = {
		{ "90", 90 }, { "90s", 90 }, { "5m", 300 }, { "2h", 7200 },
		{ "1d", 86400 }, { "1w", 604800 }, { "0300s", 300 },
	};
	static const char *bad[] = {
		"5x", "-5", "1.5h", "5 m", "m", "5mm", "5M", "300s # five minutes",
		"99999999999999999999w", "9223372036854775807w",
	};

	for (size_t i = 0; i < G_N_ELEMENTS(good); i++) {
		char *t = g_strdup_printf(SITE "[delivery]\nqueue_lifetime = %s\n",
		    good[i].text);
		PgConfig *cfg = parse_ok(t);
		if (cfg != NULL)
			CU_ASSERT_EQUAL(config_int(cfg, CONFIG_DELIVERY_QUEUE_LIFETIME),
			    good[i].seconds);
		config_free(cfg);
		g_free(t);
	}
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		char *t = g_strdup_printf(SITE "[delivery]\nqueue_lifetime = %s\n",
		    bad[i]);
		expect_err(t, 6, "queue_lifetime: ");
		g_free(t);
	}
	expect_err(SITE "[delivery]\nmin_backoff = 300s # five minutes\n", 6,
	    "comments go on their own line");
	expect_err(SITE "[delivery]\ntls = may ; the default\n", 6,
	    "\"may ; the default\" is not one of none|may|encrypt|verify (comments go on "
	    "their own line)");
	expect_err(SITE "[delivery]\nmin_backoff = 0s\n", 6,
	    "out of range (1s to 1d)");
	expect_err(SITE "[delivery]\nmin_backoff = 25h\n", 6, "out of range");
	expect_err(SITE "[delivery]\nmin_backoff =\n", 6, "must not be empty");
}

static void
test_integer_and_size_ranges(void)
{
	PgConfig *cfg;

	cfg = parse_ok(SITE "bundle_level = 0\nhop_limit = 255\n"
	    "[smtpd]\nmax_message_size = 1G\nmax_recipients = 1\n");
	if (cfg != NULL) {
		CU_ASSERT_EQUAL(config_int(cfg, CONFIG_SITE_BUNDLE_LEVEL), 0);
		CU_ASSERT_EQUAL(config_int(cfg, CONFIG_SITE_HOP_LIMIT), 255);
		CU_ASSERT_EQUAL(config_int(cfg, CONFIG_SMTPD_MAX_MESSAGE_SIZE),
		    1024 * 1024 * 1024);
		config_free(cfg);
	}
	cfg = parse_ok(SITE "bundle_level = 9\n[smtpd]\nmax_message_size = 2k\n");
	if (cfg != NULL) {
		CU_ASSERT_EQUAL(config_int(cfg, CONFIG_SMTPD_MAX_MESSAGE_SIZE), 2048);
		config_free(cfg);
	}
	expect_err(SITE "bundle_level = 10\n", 5,
	    "bundle_level: \"10\" is out of range (0 to 9)");
	expect_err(SITE "hop_limit = 0\n", 5, "out of range (1 to 255)");
	expect_err(SITE "hop_limit = abc\n", 5, "\"abc\" is not a whole number");
	expect_err(SITE "hop_limit = +3\n", 5, "not a whole number");
	expect_err(SITE "hop_limit = 30 # the default\n", 5,
	    "comments go on their own line");
	expect_err(SITE "hop_limit = 99999999999999999999999\n", 5, "hop_limit");
	expect_err(SITE "[smtpd]\nmax_message_size = 1025M\n", 6, "out of range");
	expect_err(SITE "[smtpd]\nmax_message_size = 1000\n", 6, "out of range");
	expect_err(SITE "[smtpd]\nmax_message_size = 10MB\n", 6, "not a size");
	expect_err(SITE "[smtpd]\nmax_recipients = 0\n", 6, "out of range");
	expect_err(SITE "[smtpd]\nmax_connections = 1000000\n", 6, "out of range");
}

static void
test_lists(void)
{
	PgConfig *cfg = parse_ok("[site]\nname = HQ\ngateway_po = CORP/GW\n"
	    "domains = a.example,B.Example , c-d.example\n"
	    "[smtpd]\nrelay_networks = 10.0.0.0/8, 192.168.1.7, ::1/128\n"
	    "[delivery]\nresolver = 127.0.0.1:5353, [::1], 10.1.1.1\n");
	const char *const *l;

	if (cfg == NULL)
		return;
	l = config_list(cfg, CONFIG_SITE_DOMAINS);
	CU_ASSERT_STRING_EQUAL(l[0], "a.example");
	CU_ASSERT_STRING_EQUAL(l[1], "b.example");
	CU_ASSERT_STRING_EQUAL(l[2], "c-d.example");
	CU_ASSERT_PTR_NULL(l[3]);
	l = config_list(cfg, CONFIG_SMTPD_RELAY_NETWORKS);
	CU_ASSERT_STRING_EQUAL(l[0], "10.0.0.0/8");
	CU_ASSERT_PTR_NOT_NULL(l[1]);
	CU_ASSERT_PTR_NOT_NULL(l[2]);
	CU_ASSERT_PTR_NULL(l[3]);
	l = config_list(cfg, CONFIG_DELIVERY_RESOLVER);
	CU_ASSERT_STRING_EQUAL(l[0], "127.0.0.1:5353");
	CU_ASSERT_STRING_EQUAL(l[1], "[::1]:53");
	CU_ASSERT_STRING_EQUAL(l[2], "10.1.1.1:53");
	config_free(cfg);

	expect_err("[site]\nname = HQ\ngateway_po = CORP/GW\n"
	    "domains = a.example,,b.example\n", 4, "empty item");
	expect_err("[site]\nname = HQ\ngateway_po = CORP/GW\n"
	    "domains = a.example,\n", 4, "empty item");
	expect_err("[site]\nname = HQ\ngateway_po = CORP/GW\n"
	    "domains = a.example, A.EXAMPLE\n", 4, "\"a.example\" is listed twice");
	expect_err("[site]\nname = HQ\ngateway_po = CORP/GW\n"
	    "domains = a_b.example\n", 4, "not a domain name");
	expect_err("[site]\nname = HQ\ngateway_po = CORP/GW\n"
	    "domains = -a.example\n", 4, "not a domain name");
	expect_err("[site]\nname = HQ\ngateway_po = CORP/GW\n"
	    "domains =\n", 4, "domains: the value must not be empty");
	expect_err(SITE "[smtpd]\nrelay_networks = 10.0.0.1/8\n", 6,
	    "not a network");
	expect_err(SITE "[smtpd]\nrelay_networks = 10.0.0.0/33\n", 6,
	    "not a network");
	expect_err(SITE "[delivery]\nresolver = ns.example.com\n", 6,
	    "must be an IP address");
}

static void
test_hosts(void)
{
	PgConfig *cfg = parse_ok(SITE "[smtpd]\nlisten = [::1]:2525, 127.0.0.2\n"
	    "[delivery]\nrelay_host = Mail.Example.COM\n");
	const PgHostPort *hp;
	const char *const *listen;
	PgHostPort own;

	if (cfg != NULL) {
		/* Every listen address, canonical, the port filled in. */
		listen = config_list(cfg, CONFIG_SMTPD_LISTEN);
		CU_ASSERT_STRING_EQUAL(listen[0], "[::1]:2525");
		CU_ASSERT_STRING_EQUAL(listen[1], "127.0.0.2:25");
		CU_ASSERT_PTR_NULL(listen[2]);
		hp = config_hostport(cfg, CONFIG_DELIVERY_RELAY_HOST);
		CU_ASSERT_STRING_EQUAL(hp->host, "mail.example.com");
		CU_ASSERT_EQUAL(hp->port, 25);
		CU_ASSERT_FALSE(hp->literal);
		config_free(cfg);
	}
	expect_err(SITE "[smtpd]\nlisten = localhost:25\n", 6,
	    "must be an IP address");
	expect_err(SITE "[smtpd]\nlisten = ::1:25\n", 6, "in brackets");
	expect_err(SITE "[smtpd]\nlisten = 127.0.0.1:0\n", 6, "port");
	expect_err(SITE "[smtpd]\nlisten = 127.0.0.1:65536\n", 6, "port");
	expect_err(SITE "[smtpd]\nlisten = 127.0.0.1:\n", 6, "port");
	expect_err(SITE "[smtpd]\nlisten = [::1\n", 6, "no closing ]");
	expect_err(SITE "[smtpd]\nlisten = [::1]2525\n", 6, "expected :PORT");
	expect_err(SITE "[smtpd]\nlisten =\n", 6, "must not be empty");
	expect_err(SITE "[delivery]\nrelay_host = bad_host:25\n", 6,
	    "domain name or an IP address");
	expect_err(SITE "[delivery]\nrelay_host = []:25\n", 6, "relay_host");

	/* The exported parser takes a length and stops there. */
	CU_ASSERT_TRUE(config_hostport_parse("10.0.0.1:26xyz", 11, 25, TRUE, &own,
	    NULL));
	CU_ASSERT_STRING_EQUAL(own.host, "10.0.0.1");
	CU_ASSERT_EQUAL(own.port, 26);
	config_hostport_clear(&own);
	CU_ASSERT_FALSE(config_hostport_parse("10.0.0.1\0:25", 12, 25, TRUE, &own,
	    NULL));
}

static void
test_strings_names_enums_paths(void)
{
	PgConfig *cfg = parse_ok(SITE "user =\n[delivery]\ntls = encrypt\n");

	if (cfg != NULL) {
		CU_ASSERT_STRING_EQUAL(config_string(cfg, CONFIG_SITE_USER), "");
		CU_ASSERT_STRING_EQUAL(config_string(cfg, CONFIG_DELIVERY_TLS),
		    "encrypt");
		config_free(cfg);
	}
	expect_err("[site]\nname = H Q\ndomains = example.com\ngateway_po = CORP/GW\n",
	    2, "not a name");
	expect_err("[site]\nname = \ndomains = example.com\ngateway_po = CORP/GW\n",
	    2, "must not be empty");
	expect_err(SITE "[delivery]\ntls = always\n", 6,
	    "\"always\" is not one of none|may|encrypt|verify");
	expect_err(SITE "[delivery]\ntls = MAY\n", 6, "not one of");
	expect_err(SITE "state_dir = var/lib/postgate\n", 5, "not an absolute path");
	expect_err(SITE "state_dir =\n", 5, "must not be empty");
	expect_err(SITE "[smtpd]\nhostname = gw..example.com\n", 6,
	    "not a domain name");
	expect_err("[site]\nname = HQ\ndomains = example.com\ngateway_po = CORP\n",
	    4, "a postoffice is written NET/PO");
	expect_err("[site]\nname = HQ\ndomains = example.com\n"
	    "gateway_po = CORP/GATEWAY1234\n", 4, "gateway_po");
}

static void
test_proxy_templates(void)
{
	PgConfig *cfg = parse_ok(SITE "proxy_templates = smtp:%n.%m@example.com,"
	    "SMTP:%m@%p.example.com, smtp:a%%%m@x.example\n");

	config_free(cfg);
	expect_err(SITE "proxy_templates = SMTP:info@example.com\n", 5, "no %m");
	expect_err(SITE "proxy_templates = X400:%m@example.com\n", 5,
	    "must start with SMTP:");
	expect_err(SITE "proxy_templates = smtp:%m@example.com\n", 5,
	    "no SMTP: template");
	expect_err(SITE "proxy_templates = SMTP:%m@%q.example.com\n", 5,
	    "followed by m, p, n or %");
	expect_err(SITE "proxy_templates = SMTP:%m@example.com%\n", 5,
	    "followed by m, p, n or %");
	expect_err(SITE "proxy_templates = SMTP:%m\n", 5, "makes no valid address");
}

static void
test_codepages(void)
{
	static const char *good[] = { "CP437", "CP850", "CP1252", "cp1252", "ISO-8859-1" };
	static const char *bad[] = { "CP999", "CP850//TRANSLIT", "KLINGON" };

	for (size_t i = 0; i < G_N_ELEMENTS(good); i++) {
		char *t = g_strdup_printf(SITE "[postoffice CORP/HQ]\ndir = /srv/po/hq\n"
		    "key_file = /etc/hq.key\ncodepage = %s\n", good[i]);
		PgConfig *cfg = parse_ok(t);
		char *up = g_ascii_strup(good[i], -1);
		if (cfg != NULL)
			CU_ASSERT_STRING_EQUAL(config_postoffice(cfg, 0)->codepage, up);
		config_free(cfg);
		g_free(up);
		g_free(t);
	}
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		char *t = g_strdup_printf(SITE "[postoffice CORP/HQ]\ndir = /srv/po/hq\n"
		    "key_file = /etc/hq.key\ncodepage = %s\n", bad[i]);
		expect_err(t, 8, "not a codepage iconv knows");
		g_free(t);
	}
}

/* ---- structure errors ---- */

static void
test_unknown_group_and_key(void)
{
	static const char refused[] = SITE "[smtp]\na = 1\nb = 2\n";
	char *msg;

	expect_err(SITE "\n[smtp]\nlisten = 127.0.0.1:25\n", 6, "unknown group [smtp]");
	/* Keys of a refused group are not reported one by one. */
	msg = parse_err_len(refused, strlen(refused), 0);
	CU_ASSERT_STRING_EQUAL(msg, NAME ":5: unknown group [smtp]");
	g_free(msg);
	expect_err(SITE "colour = blue\n", 5, "unknown key colour in [site]");
	expect_err(SITE "hostname = gw.example.com\n", 5,
	    "unknown key hostname in [site] (it belongs in [smtpd])");
	expect_err(SITE "[postoffice CORP/HQ]\ndir = /x\nkey_file = /y\ncodepage = CP850\n"
	    "host = a:25\n", 9, "unknown key host in [postoffice CORP/HQ]");
	expect_err(SITE "[site HQ]\n", 5, "group [site] takes no name");
	expect_err(SITE "[postoffice]\n", 5, "needs a name: [postoffice NET/PO]");
	expect_err(SITE "[site-link]\n", 5, "needs a name");
	expect_err(SITE "[postoffice CORP/HQ/X]\n", 5, "[postoffice CORP/HQ/X]");
	expect_err(SITE "[site-link a/b]\n", 5, "not a site name");
	/* Sync files carry site names without dots (docs/sync-format.md). */
	expect_err(SITE "[site-link b.example]\n", 5, "not a site name");
	expect_err("[site]\nname = hq.example\ndomains = example.com\ngateway_po = CORP/GW\n", 2,
	    "is not a name");
	expect_err(SITE "[smtpd] # the listener\n", 5, "does not end in ]");
	expect_err(SITE "[smtpd\n", 5, "does not end in ]");
	expect_err("name = HQ\n" SITE, 1, "outside any group");
	expect_err(SITE "just some words\n", 5, "expected [group], key = value");
	expect_err(SITE "= value\n", 5, "no key name");
}

static void
test_duplicates(void)
{
	static const char twice[] = SITE "hop_limit = x\nhop_limit = 3\n";
	char *msg;

	expect_err(SITE "[smtpd]\n[site]\nname = X\n", 6,
	    "duplicate group [site] (first at line 1)");
	expect_err(SITE "[postoffice CORP/HQ]\ndir = /a\nkey_file = /k\ncodepage = CP850\n"
	    "[postoffice corp/hq]\n", 9,
	    "duplicate group [postoffice CORP/HQ] (first at line 5)");
	expect_err(SITE "[site-link B]\ndomains = b.example\nhost = b.example\n"
	    "[site-link b]\n", 8, "duplicate group [site-link b] (first at line 5)");
	expect_err(SITE "name = HQ2\n", 5,
	    "duplicate key name in [site] (first at line 2)");
	/* A refused first value still counts as given. */
	expect_err(twice, 5, "hop_limit");
	msg = parse_err_len(twice, strlen(twice), 0);
	CU_ASSERT_PTR_NOT_NULL(msg);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg ? msg : "",
	    NAME ":6: duplicate key hop_limit in [site] (first at line 5)"));
	g_free(msg);
}

static void
test_missing_required(void)
{
	expect_err("# no site\n[smtpd]\nlisten = 127.0.0.1:25\n", 1,
	    "missing required group [site]");
	expect_err("", 1, "missing required group [site]");
	expect_err("\n\n[site]\nname = HQ\ngateway_po = CORP/GW\n", 3,
	    "missing required key domains in [site]");
	expect_err(SITE "\n[postoffice CORP/HQ]\ndir = /srv/po/hq\ncodepage = CP850\n",
	    6, "missing required key key_file in [postoffice CORP/HQ]");
	expect_err(SITE "[site-link B]\nhost = b.example\n", 5,
	    "missing required key domains in [site-link B]");
}

static void
test_bytes_the_reader_refuses(void)
{
	static const char nul[] = SITE "user = post\0gate\n";
	GString *s;
	char *msg;

	expect_err_len(nul, sizeof nul - 1, 0, 5, "NUL byte");
	expect_err(SITE "user = post\xffgate\n", 5, "not valid UTF-8");
	expect_err(SITE "user = post\x01gate\n", 5, "control character 0x01");
	expect_err(SITE "user = post\rgate\n", 5, "control character 0x0d");

	/* CONFIG_LINE_MAX bytes are fine, one more is not. */
	s = g_string_new(SITE "# ");
	while (s->len - strlen(SITE) < CONFIG_LINE_MAX)
		g_string_append_c(s, 'x');
	g_string_append(s, "\nuser = postgate\n");
	config_free(parse_ok(s->str));
	g_string_insert_c(s, strlen(SITE) + 2, 'x');
	expect_err(s->str, 5, "line is longer than 4096 bytes");
	g_string_free(s, TRUE);

	s = g_string_new(NULL);
	while (s->len <= CONFIG_FILE_MAX)
		g_string_append(s, "# padding padding padding padding\n");
	msg = parse_err_len(s->str, s->len, 0);
	CU_ASSERT_PTR_NOT_NULL(msg);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg ? msg : "", NAME ": the file is larger than"));
	g_free(msg);
	g_string_free(s, TRUE);
}

static void
test_all_errors_reported_in_line_order(void)
{
	const char *text = "[site]\nname = HQ\ngateway_po = CORP/GW\n"
	    "hop_limit = 0\n"
	    "[smtpd]\n"
	    "colour = red\n"
	    "[delivery]\ntls = sometimes\n";
	char *msg = parse_err_len(text, strlen(text), 0);
	char **lines;

	CU_ASSERT_PTR_NOT_NULL_FATAL(msg);
	lines = g_strsplit(msg, "\n", -1);
	CU_ASSERT_EQUAL_FATAL(g_strv_length(lines), 4);
	CU_ASSERT_TRUE(g_str_has_prefix(lines[0], NAME ":1: missing required key "
	    "domains"));
	CU_ASSERT_TRUE(g_str_has_prefix(lines[1], NAME ":4: hop_limit"));
	CU_ASSERT_TRUE(g_str_has_prefix(lines[2], NAME ":6: unknown key colour"));
	CU_ASSERT_TRUE(g_str_has_prefix(lines[3], NAME ":8: tls"));
	g_strfreev(lines);
	g_free(msg);
}

static void
test_too_many_errors_stop(void)
{
	GString *s = g_string_new(SITE);
	char *msg;
	char **lines;

	for (int i = 0; i < 500; i++)
		g_string_append_printf(s, "bad%d = 1\n", i);
	msg = parse_err_len(s->str, s->len, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(msg);
	lines = g_strsplit(msg, "\n", -1);
	CU_ASSERT_EQUAL(g_strv_length(lines), CONFIG_ERRORS_MAX + 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(lines[CONFIG_ERRORS_MAX], "too many errors"));
	g_strfreev(lines);
	g_free(msg);
	g_string_free(s, TRUE);
}

static void
test_group_limit(void)
{
	GString *s = g_string_new(SITE);

	for (unsigned i = 0; i <= CONFIG_GROUPS_MAX; i++)
		g_string_append_printf(s, "[site-link L%u]\ndomains = l%u.example\n"
		    "host = l%u.example\n", i, i, i);
	expect_err(s->str, 5 + 3 * CONFIG_GROUPS_MAX, "more than 1000");
	g_string_free(s, TRUE);
}

/* ---- checks across keys ---- */

static void
test_checks_across_keys(void)
{
	expect_err(SITE "[delivery]\nmin_backoff = 1h\nmax_backoff = 30m\n", 7,
	    "max_backoff (30m) is less than min_backoff (1h)");
	expect_err(SITE "[delivery]\nmin_backoff = 2h\n", 6,
	    "max_backoff (4000s) is less than min_backoff (2h)");
	expect_err(SITE "[smtpd]\ntls_key_file = /etc/k.pem\n", 6,
	    "tls_key_file is set but tls_cert_file is not");
	expect_err(SITE "[delivery]\nauth_user = gw\n", 6,
	    "auth_user is set but auth_password_file is not");
	expect_err(SITE "[postoffice corp/gw]\ndir = /a\nkey_file = /k\n"
	    "codepage = CP850\n", 5, "is the gateway's own gateway_po");
	expect_err(SITE "[postoffice CORP/A]\ndir = /a\nkey_file = /k\ncodepage = CP850\n"
	    "[postoffice CORP/B]\ndir = /a\nkey_file = /k2\ncodepage = CP850\n", 10,
	    "dir /a is already the dir of postoffice CORP/A (line 6)");
	expect_err(SITE "[site-link B]\ndomains = b.example, EXAMPLE.com\n"
	    "host = b.example\n", 6, "domain example.com already belongs to [site]");
	expect_err(SITE "[site-link B]\ndomains = b.example\nhost = b.example\n"
	    "[site-link C]\ndomains = b.example\nhost = c.example\n", 9,
	    "already belongs to [site-link B]");
	expect_err(SITE "[site-link hq]\ndomains = b.example\nhost = b.example\n", 5,
	    "names this site itself");
}

/* ---- file-system checks ---- */

static void
test_postoffice_files(void)
{
	char *dir = fixture();
	char *t;

	/* Without CONFIG_CHECK_FILES the file system is not looked at. */
	t = g_strdup_printf(SITE "[postoffice CORP/HQ]\ndir = %s/none\n"
	    "key_file = %s/none.key\ncodepage = CP850\n", dir, dir);
	config_free(parse_ok(t));
	expect_err_files(t, 6, "/none does not exist");
	g_free(t);

	t = g_strdup_printf(SITE "[postoffice CORP/HQ]\ndir = %s/hq.key\n"
	    "key_file = %s/hq.key\ncodepage = CP850\n", dir, dir);
	expect_err_files(t, 6, "is not a directory");
	g_free(t);

	t = g_strdup_printf(SITE "[postoffice CORP/HQ]\ndir = %s/hq\n"
	    "key_file = %s/none.key\ncodepage = CP850\n", dir, dir);
	expect_err_files(t, 7, "unreadable");
	g_free(t);

	t = g_strdup_printf(SITE "[postoffice CORP/HQ]\ndir = %s/hq\n"
	    "key_file = %s/short.key\ncodepage = CP850\n", dir, dir);
	expect_err_files(t, 7, "too short");
	g_free(t);

	t = g_strdup_printf(SITE "[postoffice CORP/HQ]\ndir = %s/hq\n"
	    "key_file = %s/hq\ncodepage = CP850\n", dir, dir);
	expect_err_files(t, 7, "is not a regular file");
	g_free(t);

	t = g_strdup_printf(SITE "[postoffice CORP/HQ]\ndir = %s/hq\n"
	    "key_file = /dev/zero\ncodepage = CP850\n", dir);
	expect_err_files(t, 7, "is not a regular file");
	g_free(t);

	/* Unreadable for a user that is not root. */
	if (geteuid() != 0) {
		char *k = g_build_filename(dir, "hq.key", NULL);
		CU_ASSERT_EQUAL(g_chmod(k, 0), 0);
		t = g_strdup_printf(SITE "[postoffice CORP/HQ]\ndir = %s/hq\n"
		    "key_file = %s\ncodepage = CP850\n", dir, k);
		expect_err_files(t, 7, "unreadable");
		g_free(t);
		g_free(k);
	}
	rm_rf(dir);
	g_free(dir);
}

/* Issue 12: an empty file (as NULL, 0), FIFOs, no knock-on errors. */
static void
test_empty_fifo_and_knock_on(void)
{
	char *dir = fixture();
	char *path = g_build_filename(dir, "postgate.conf", NULL);
	char *fifo = g_build_filename(dir, "fifo", NULL);
	char *t, *msg;
	GError *e = NULL;

	/* Empty: what an empty GByteArray gives; no arithmetic on NULL. */
	CU_ASSERT_PTR_NULL(config_parse(NAME, NULL, 0, 0, &e));
	CU_ASSERT_TRUE(e != NULL && strcmp(e->message,
	    NAME ":1: missing required group [site]") == 0);
	g_clear_error(&e);
	CU_ASSERT_TRUE_FATAL(g_file_set_contents(path, "", 0, NULL));
	CU_ASSERT_PTR_NULL(config_load_file(path, &e));
	CU_ASSERT_TRUE(g_error_matches(e, CONFIG_ERROR, CONFIG_ERROR_MISSING));
	g_clear_error(&e);

	/* A FIFO with no writer: refused at once (alarm: a hang fails). */
	CU_ASSERT_EQUAL_FATAL(mkfifo(fifo, 0600), 0);
	alarm(10);
	CU_ASSERT_PTR_NULL(config_load_file(fifo, &e));
	CU_ASSERT_TRUE(g_error_matches(e, CONFIG_ERROR, CONFIG_ERROR_IO) &&
	    strstr(e->message, "is not a regular file (a FIFO)") != NULL);
	g_clear_error(&e);
	t = g_strdup_printf(SITE "[postoffice CORP/HQ]\ndir = %s/hq\n"
	    "key_file = %s\ncodepage = CP850\n", dir, fifo);
	expect_err_files(t, 7, "is not a regular file (a FIFO)");
	g_free(t);
	t = g_strdup_printf(SITE "[delivery]\nauth_user = gw\n"
	    "auth_password_file = %s\n", fifo);
	expect_err_files(t, 7, "auth_password_file");
	g_free(t);
	alarm(0);

	/* The real error only, not a knock-on one on an earlier line. */
	msg = parse_err("[site]\nname = H\001Q\ndomains = example.com\n"
	    "gateway_po = CORP/GW\n");
	CU_ASSERT_TRUE(msg != NULL && strcmp(msg,
	    NAME ":2: control character 0x01 in line") == 0);
	g_free(msg);
	msg = parse_err("[site]\ngateway_po CORP/GW\nname = HQ\n"
	    "domains = example.com\n");
	CU_ASSERT_TRUE(msg != NULL && strcmp(msg, NAME ":2: expected [group], "
	    "key = value or a comment line") == 0);
	g_free(msg);
	msg = parse_err("[site]\nnaem = HQ\ndomains = example.com\n"
	    "gateway_po = CORP/GW\n");
	CU_ASSERT_TRUE(msg != NULL && strcmp(msg,
	    NAME ":2: unknown key naem in [site]") == 0);
	g_free(msg);
	msg = parse_err("[si\xff" "te]\nname = HQ\n");
	CU_ASSERT_TRUE(msg != NULL && strcmp(msg,
	    NAME ":1: line is not valid UTF-8") == 0);
	g_free(msg);
	/* A group that could not be read does not hide a real miss elsewhere. */
	msg = parse_err("[site]\nname = HQ\ngateway_po = CORP/GW\n"
	    "[smtpd]\nhost\001name = x\n");
	CU_ASSERT_TRUE(msg != NULL && strcmp(msg,
	    NAME ":1: missing required key domains in [site]\n"
	    NAME ":5: control character 0x01 in line") == 0);
	g_free(msg);

	rm_rf(dir);
	g_free(fifo);
	g_free(path);
	g_free(dir);
}

static void
test_load_file(void)
{
	char *dir = fixture(), *text = example(dir);
	char *path = g_build_filename(dir, "postgate.conf", NULL);
	char *none = g_build_filename(dir, "none.conf", NULL);
	GError *e = NULL;
	PgConfig *cfg;

	CU_ASSERT_TRUE_FATAL(g_file_set_contents(path, text, -1, NULL));
	cfg = config_load_file(path, &e);
	CU_ASSERT_PTR_NOT_NULL(cfg);
	if (cfg != NULL)
		CU_ASSERT_STRING_EQUAL(config_file_name(cfg), path);
	config_free(cfg);

	CU_ASSERT_PTR_NULL(config_load_file(none, &e));
	CU_ASSERT_TRUE(g_error_matches(e, CONFIG_ERROR, CONFIG_ERROR_IO));
	CU_ASSERT_TRUE(g_str_has_prefix(e->message, none));
	g_clear_error(&e);

	CU_ASSERT_PTR_NULL(config_load_file(dir, &e));
	CU_ASSERT_TRUE(g_error_matches(e, CONFIG_ERROR, CONFIG_ERROR_IO));
	g_clear_error(&e);

	/* config_load_file always checks the postoffice files. */
	rm_rf(dir);
	CU_ASSERT_EQUAL(g_mkdir(dir, 0700), 0);
	CU_ASSERT_TRUE_FATAL(g_file_set_contents(path, text, -1, NULL));
	CU_ASSERT_PTR_NULL(config_load_file(path, &e));
	CU_ASSERT_TRUE(g_error_matches(e, CONFIG_ERROR, CONFIG_ERROR_FILE));
	g_clear_error(&e);

	rm_rf(dir);
	g_free(path);
	g_free(none);
	g_free(text);
	g_free(dir);
}

/* ---- output ---- */

static char *
print_to_string(const PgConfig *cfg)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	CU_ASSERT_TRUE(config_print_nondefault(cfg, f));
	fclose(f);
	return buf;
}

static void
test_print_nondefault_round_trips(void)
{
	PgConfig *cfg = parse_ok(SITE "hop_limit = 30\nuser =\n"
	    "[delivery]\nmin_backoff = 5m\nmax_backoff = 2h\n"
	    "[postoffice corp/hq]\ndir = /srv/po/hq\nkey_file = /k\ncodepage = cp850\n"
	    "[site-link B]\ndomains = B.example\nhost = [10.0.0.2]\n");
	PgConfig *again;
	char *out, *out2;

	if (cfg == NULL)
		return;
	out = print_to_string(cfg);
	CU_ASSERT_STRING_EQUAL(out,
	    "[site]\n"
	    "name = HQ\n"
	    "domains = example.com\n"
	    "gateway_po = CORP/GW\n"
	    "user =\n"
	    "\n"
	    "[delivery]\n"
	    "max_backoff = 2h\n"
	    "\n"
	    "[postoffice CORP/HQ]\n"
	    "dir = /srv/po/hq\n"
	    "key_file = /k\n"
	    "codepage = CP850\n"
	    "\n"
	    "[site-link B]\n"
	    "domains = b.example\n"
	    "host = [10.0.0.2]:25\n");
	again = parse_ok(out);
	if (again != NULL) {
		out2 = print_to_string(again);
		CU_ASSERT_STRING_EQUAL(out, out2);
		free(out2);
	}
	config_free(again);
	free(out);
	config_free(cfg);
}

static void
test_manpage_documents_every_key(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	static const char *want[] = {
		".TH POSTGATE.CONF 5", ".SH NAME", ".SH SYNOPSIS", ".SH DESCRIPTION",
		".SH \"[site]\"", ".SH \"[smtpd]\"", ".SH \"[delivery]\"",
		".SH \"[directory]\"", ".SH \"[postoffice NET/PO]\"",
		".SH \"[site\\-link NAME]\"", ".SH FILES", ".SH SEE ALSO",
		".BR postgate (8)", ".BR postgate\\-po (1)",
		"\\fBhop_limit\\fR = \\fIinteger\\fR (1 to 255; default \\fB30\\fR)",
		"\\fBtls\\fR = \\fBnone\\fR | \\fBmay\\fR | \\fBencrypt\\fR",
		"\\fBmin_backoff\\fR = \\fIduration\\fR (1s to 1d; default \\fB300s\\fR)",
		"\\fBname\\fR = \\fIname\\fR (required)",
	};
	static const char *keys[] = {
		"name", "domains", "state_dir", "gateway_po", "user", "hop_limit",
		"bundle_level", "proxy_templates", "listen", "hostname",
		"relay_networks", "max_message_size", "max_recipients",
		"max_connections", "timeout", "tls_cert_file", "tls_key_file", "relay_host",
		"resolver", "tls", "tls_ca_file", "auth_user", "auth_password_file",
		"min_backoff", "max_backoff", "queue_lifetime",
		"single_message_memory", "tombstone_lifetime", "dir", "key_file",
		"codepage", "host",
	};

	CU_ASSERT_TRUE(config_write_manpage(f));
	fclose(f);
	for (size_t i = 0; i < G_N_ELEMENTS(want); i++) {
		if (strstr(buf, want[i]) == NULL)
			printf("\nman page lacks %s\n", want[i]);
		CU_ASSERT_PTR_NOT_NULL(strstr(buf, want[i]));
	}
	for (size_t i = 0; i < G_N_ELEMENTS(keys); i++) {
		char *k = g_strdup_printf(".TP\n\\fB%s\\fR = ", keys[i]);
		if (strstr(buf, k) == NULL)
			printf("\nman page lacks key %s\n", keys[i]);
		CU_ASSERT_PTR_NOT_NULL(strstr(buf, k));
		g_free(k);
	}
	free(buf);
}

int
main(void)
{
	static const CuTest tests[] = {
		{ "the example file gives its values", test_example_file_gives_its_values },
		{ "defaults apply to keys left out", test_defaults_apply_to_keys_left_out },
		{ "comments, blanks, CRLF and spacing", test_comments_blanks_crlf_and_spacing },
		{ "durations", test_durations },
		{ "integer and size ranges", test_integer_and_size_ranges },
		{ "lists", test_lists },
		{ "hosts and ports", test_hosts },
		{ "strings, names, enums, paths", test_strings_names_enums_paths },
		{ "proxy templates", test_proxy_templates },
		{ "codepages", test_codepages },
		{ "unknown group and key", test_unknown_group_and_key },
		{ "duplicate group and key", test_duplicates },
		{ "missing required group and key", test_missing_required },
		{ "NUL, bad UTF-8, control bytes, long lines", test_bytes_the_reader_refuses },
		{ "all errors, in line order", test_all_errors_reported_in_line_order },
		{ "too many errors stop the reader", test_too_many_errors_stop },
		{ "group limit", test_group_limit },
		{ "checks across keys", test_checks_across_keys },
		{ "postoffice dir and key file", test_postoffice_files },
		{ "config_load_file", test_load_file },
		{ "empty file, FIFOs, no knock-on errors", test_empty_fifo_and_knock_on },
		{ "check-config output round-trips", test_print_nondefault_round_trips },
		{ "man page documents every key", test_manpage_documents_every_key },
		{ NULL, NULL },
	};

	return cu_run("config", tests);
}
