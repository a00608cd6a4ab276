/* smtpd.c - the SMTP listener's server (see smtpd.h).
 *
 * Owns: `postgate smtpd` itself - its options, binding every [smtpd]
 * listen address and reading the TLS key while still root, dropping
 * privileges (site_open_command with a bind), the queue and its group commit, the
 * listeners, the signals (SIGTERM and SIGINT stop, SIGHUP reloads the
 * configuration, the directory and changed TLS files) and the settings
 * each new session gets.
 * Never: a session's protocol or state (smtpd_session.c), postoffice
 * directories, delivery, changes to the directory.
 */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <gio/gio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "pg_log.h"
#include "queue/queue.h"
#include "site.h"
#include "smtpd/smtpd.h"
#include "smtpd/smtpd_int.h"

/* --------------------------------------------------------------- settings */

/* The settings of site (taken over) and tls (a reference of its own). */
static SmtpdSettings *
settings_new(Site *site, SSL_CTX *tls)
{
	SmtpdSettings *cf = g_new0(SmtpdSettings, 1);
	const char *const *relay = config_list(site->cfg, CONFIG_SMTPD_RELAY_NETWORKS);

	cf->refs = 1;
	cf->site = site;
	if (tls && SSL_CTX_up_ref(tls) == 1)
		cf->tls = tls;
	cf->hostname = g_strdup(config_string(site->cfg, CONFIG_SMTPD_HOSTNAME));
	if (!*cf->hostname) {
		g_free(cf->hostname);
		cf->hostname = g_strdup(g_get_host_name());
	}
	cf->max_size = config_int(site->cfg, CONFIG_SMTPD_MAX_MESSAGE_SIZE);
	cf->max_rcpt = (guint)config_int(site->cfg, CONFIG_SMTPD_MAX_RECIPIENTS);
	cf->max_conn = (guint)config_int(site->cfg, CONFIG_SMTPD_MAX_CONNECTIONS);
	cf->hop_limit = (guint)config_int(site->cfg, CONFIG_SITE_HOP_LIMIT);
	cf->timeout.tv_sec = (time_t)config_int(site->cfg, CONFIG_SMTPD_TIMEOUT);
	cf->relay = g_ptr_array_new_with_free_func(g_object_unref);
	for (guint i = 0; relay[i]; i++) {
		GInetAddressMask *m = g_inet_address_mask_new_from_string(relay[i], NULL);

		if (m)   /* the configuration checked it */
			g_ptr_array_add(cf->relay, m);
	}
	return cf;
}

SmtpdSettings *
smtpd_settings_ref(SmtpdSettings *cf)
{
	cf->refs++;
	return cf;
}

void
smtpd_settings_unref(SmtpdSettings *cf)
{
	if (!cf || --cf->refs > 0)
		return;
	site_close(cf->site);
	if (cf->tls)
		SSL_CTX_free(cf->tls);
	g_free(cf->hostname);
	g_ptr_array_unref(cf->relay);
	g_free(cf);
}

/* --------------------------------------------------------------- the server */

static void
commit_cb(evutil_socket_t fd, short what, void *data)
{
	SmtpdServer *srv = data;

	(void)fd;
	(void)what;
	queue_committer_collect(srv->committer);
}

static const char *
signal_name(int sig)
{
	switch (sig) {
	case SIGTERM: return "SIGTERM";
	case SIGINT: return "SIGINT";
	case SIGHUP: return "SIGHUP";
	default: return "a signal";
	}
}

static void
stop_cb(evutil_socket_t sig, short what, void *data)
{
	SmtpdServer *srv = data;
	GList *all;

	(void)what;
	if (srv->stopping)
		return;
	pg_info(NULL, "smtpd: stopping on %s; sessions in DATA may finish",
	    signal_name((int)sig));
	srv->stopping = TRUE;
	g_ptr_array_set_size(srv->listeners, 0);   /* closes the sockets */
	all = g_hash_table_get_keys(srv->sessions);
	for (GList *i = all; i; i = i->next)
		smtpd_session_stop(i->data);
	g_list_free(all);
	if (g_hash_table_size(srv->sessions) == 0)
		event_base_loopexit(srv->base, NULL);
}

static SSL_CTX *
tls_context(const char *cert, const char *key, GError **error)
{
	SSL_CTX *ctx;
	char buf[256];

	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx)
		goto fail;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* libevent 2.1.12 predates OpenSSL 3's strict EOF handling. */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1)
		goto fail;
	return ctx;
fail:
	ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
	ERR_clear_error();
	g_set_error(error, SITE_ERROR, SITE_ERROR_CONFIG,
	    "[smtpd] tls_cert_file %s / tls_key_file %s: %s", cert, key, buf);
	if (ctx)
		SSL_CTX_free(ctx);
	return NULL;
}

/* The same file as when it was read: same name, inode, size and times. */
static gboolean
same_file(const char *path, const char *was, const struct stat *st)
{
	struct stat now;

	return was && strcmp(path, was) == 0 && stat(path, &now) == 0 &&
	    now.st_dev == st->st_dev && now.st_ino == st->st_ino &&
	    now.st_size == st->st_size && now.st_mtim.tv_sec == st->st_mtim.tv_sec &&
	    now.st_mtim.tv_nsec == st->st_mtim.tv_nsec &&
	    now.st_ctim.tv_sec == st->st_ctim.tv_sec && now.st_ctim.tv_nsec == st->st_ctim.tv_nsec;
}

/* Read cfg's TLS certificate and key into srv->tls, unless they are the
 * files already read; none configured: no TLS.  On failure srv->tls stays. */
static gboolean
tls_load(SmtpdServer *srv, const PgConfig *cfg, GError **error)
{
	const char *cert = config_string(cfg, CONFIG_SMTPD_TLS_CERT_FILE);
	const char *key = config_string(cfg, CONFIG_SMTPD_TLS_KEY_FILE);
	SmtpdTlsFiles *f = &srv->tls_files;
	struct stat cst, kst;
	SSL_CTX *ctx;

	if (!*cert) {
		g_clear_pointer(&srv->tls, SSL_CTX_free);
		g_clear_pointer(&f->cert, g_free);
		g_clear_pointer(&f->key, g_free);
		return TRUE;
	}
	if (srv->tls && same_file(cert, f->cert, &f->cert_st) &&
	    same_file(key, f->key, &f->key_st))
		return TRUE;
	/* Taken before reading: a file replaced meanwhile is read again later. */
	if (stat(cert, &cst) != 0)
		memset(&cst, 0, sizeof cst);
	if (stat(key, &kst) != 0)
		memset(&kst, 0, sizeof kst);
	ctx = tls_context(cert, key, error);
	if (!ctx)
		return FALSE;
	if (srv->tls)
		SSL_CTX_free(srv->tls);
	srv->tls = ctx;
	g_free(f->cert);
	g_free(f->key);
	f->cert = g_strdup(cert);
	f->key = g_strdup(key);
	f->cert_st = cst;
	f->key_st = kst;
	return TRUE;
}

/* Log each line of a multi-line error (config errors: FILE:LINE: ...). */
static void
log_error_lines(const char *what, const char *message)
{
	char **lines = g_strsplit(message, "\n", -1);

	for (guint i = 0; lines[i]; i++)
		if (*lines[i])
			pg_error(NULL, "%s%s", what, lines[i]);
	g_strfreev(lines);
}

static gboolean
same_list(const char *const *a, const char *const *b)
{
	guint i;

	for (i = 0; a[i] && b[i]; i++)
		if (strcmp(a[i], b[i]) != 0)
			return FALSE;
	return !a[i] && !b[i];
}

/* SIGHUP: read the configuration and open the directory again, as
 * `postfix reload` does.  New sessions get the new settings, open ones keep
 * theirs; a configuration with errors is logged and the old one kept.  What
 * needs root or the open queue (listen, state_dir, user) needs a restart. */
static void
reload_cb(evutil_socket_t sig, short what, void *data)
{
	SmtpdServer *srv = data;
	const PgConfig *old = srv->cf->site->cfg;
	PgConfig *cfg;
	Site *site;
	GError *e = NULL;

	(void)sig;
	(void)what;
	if (srv->stopping)
		return;
	pg_info(NULL, "smtpd: SIGHUP: reading %s again", srv->config_file);
	cfg = config_load_file(srv->config_file, &e);
	if (cfg) {
		if (strcmp(config_string(cfg, CONFIG_SITE_STATE_DIR),
		    config_string(old, CONFIG_SITE_STATE_DIR)) != 0 ||
		    strcmp(config_string(cfg, CONFIG_SITE_USER),
		    config_string(old, CONFIG_SITE_USER)) != 0)
			g_set_error(&e, SITE_ERROR, SITE_ERROR_CONFIG, "[site] state_dir or user "
			    "changed: that needs a restart");
		else if (!same_list(config_list(cfg, CONFIG_SMTPD_LISTEN),
		    config_list(old, CONFIG_SMTPD_LISTEN)))
			pg_warn(NULL, "smtpd: [smtpd] listen changed: binding needs a restart; "
			    "still listening where it was");
		config_free(cfg);
	}
	site = e ? NULL : site_open(srv->config_file, &e);
	if (!site) {
		log_error_lines("smtpd: reload: ", e->message);
		pg_error(NULL, "smtpd: reload failed: the configuration loaded before stays");
		g_error_free(e);
		return;
	}
	if (!tls_load(srv, site->cfg, &e)) {
		pg_warn(NULL, "smtpd: reload: %s; the TLS certificate loaded before stays "
		    "(a key only root can read changes with a restart)", e->message);
		g_clear_error(&e);
	}
	smtpd_settings_unref(srv->cf);
	srv->cf = settings_new(site, srv->tls);
	pg_info(NULL, "smtpd: reloaded %s: new sessions use it, open ones finish with what "
	    "they started with", srv->config_file);
}

/* Bind every listen address and read the TLS files while still root
 * (SiteBind). */
static gboolean
bind_all(const PgConfig *cfg, gpointer data, GError **error)
{
	SmtpdServer *srv = data;
	const char *const *addrs = config_list(cfg, CONFIG_SMTPD_LISTEN);

	for (guint i = 0; addrs[i]; i++) {
		PgHostPort hp;
		GInetAddress *ia;
		GSocketAddress *ga;
		struct sockaddr_storage ss;
		int fd, one = 1;

		if (!config_hostport_parse(addrs[i], strlen(addrs[i]), 25, TRUE, &hp, error))
			return FALSE;
		ia = g_inet_address_new_from_string(hp.host);
		ga = ia ? g_inet_socket_address_new(ia, hp.port) : NULL;
		if (ia)
			g_object_unref(ia);
		config_hostport_clear(&hp);
		if (!ga || !g_socket_address_to_native(ga, &ss, sizeof ss, NULL)) {
			if (ga)
				g_object_unref(ga);
			g_set_error(error, SITE_ERROR, SITE_ERROR_CONFIG,
			    "[smtpd] listen: cannot use %s", addrs[i]);
			return FALSE;
		}
		fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd >= 0)
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (fd >= 0 && ss.ss_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
		if (fd < 0 || bind(fd, (struct sockaddr *)&ss,
		    (socklen_t)g_socket_address_get_native_size(ga)) != 0 ||
		    listen(fd, 1024) != 0) {
			g_set_error(error, SITE_ERROR, SITE_ERROR_STATE, "cannot listen on %s: %s",
			    addrs[i], g_strerror(errno));
			if (fd >= 0)
				close(fd);
			g_object_unref(ga);
			return FALSE;
		}
		g_object_unref(ga);
		g_array_append_val(srv->fds, fd);
	}
	/* A TLS key is usually readable by root alone: read it now. */
	return tls_load(srv, cfg, error);
}

static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int
smtpd_main(const char *config_file, int argc, char **argv)
{
	gboolean use_syslog = FALSE, debug = FALSE;
	GOptionEntry entries[] = {
		{ "syslog", 0, 0, G_OPTION_ARG_NONE, &use_syslog, "Log to syslog", NULL },
		{ "debug", 0, 0, G_OPTION_ARG_NONE, &debug,
		    "Log every session's state transitions", NULL },
		G_OPTION_ENTRY_NULL,
	};
	GOptionContext *oc = g_option_context_new("");
	SmtpdServer srv = { 0 };
	GError *e = NULL;
	Site *site;
	const char *state_dir;
	int rc = EX_OK;

	g_option_context_add_main_entries(oc, entries, NULL);
	if (!g_option_context_parse(oc, &argc, &argv, &e) || argc > 1) {
		pg_error(NULL, "smtpd: %s", e ? e->message : "unexpected arguments");
		g_clear_error(&e);
		g_option_context_free(oc);
		return EX_USAGE;
	}
	g_option_context_free(oc);
	if (use_syslog)
		pg_log_init("postgate/smtpd", TRUE);
	if (debug)
		pg_log_set_threshold(PG_LOG_DEBUG);
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	srv.config_file = config_file;
	srv.fds = g_array_new(FALSE, FALSE, sizeof(int));
	site = site_open_command(config_file, 0, bind_all, &srv, &rc);
	if (!site)
		goto out;
	srv.cf = settings_new(site, srv.tls);
	state_dir = config_string(site->cfg, CONFIG_SITE_STATE_DIR);
	srv.queue = queue_open(state_dir, &e);
	if (srv.queue)
		srv.committer = queue_committer_new(srv.queue, &e);
	if (!srv.committer) {
		fprintf(stderr, "%s\n", e->message);
		rc = e->domain == QUEUE_ERROR && e->code == QUEUE_ERROR_LOCKED ? EX_TEMPFAIL :
		    EX_CANTCREAT;
		goto out;
	}
	srv.sessions = g_hash_table_new(g_direct_hash, g_direct_equal);
	srv.base = event_base_new();
	srv.listeners = g_ptr_array_new_with_free_func((GDestroyNotify)evconnlistener_free);
	for (guint i = 0; i < srv.fds->len; i++) {
		struct evconnlistener *l = evconnlistener_new(srv.base, smtpd_session_accept,
		    &srv, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0,
		    g_array_index(srv.fds, int, i));
		if (!l) {
			pg_error(NULL, "smtpd: cannot watch a listening socket");
			rc = EX_OSERR;
			goto out;
		}
		g_ptr_array_add(srv.listeners, l);
	}
	g_array_set_size(srv.fds, 0);   /* the listeners own them now */
	srv.commit_ev = event_new(srv.base, queue_committer_fd(srv.committer),
	    EV_READ | EV_PERSIST, commit_cb, &srv);
	srv.term_ev = evsignal_new(srv.base, SIGTERM, stop_cb, &srv);
	srv.int_ev = evsignal_new(srv.base, SIGINT, stop_cb, &srv);
	srv.hup_ev = evsignal_new(srv.base, SIGHUP, reload_cb, &srv);
	event_add(srv.commit_ev, NULL);
	event_add(srv.term_ev, NULL);
	event_add(srv.int_ev, NULL);
	event_add(srv.hup_ev, NULL);
	{
		char *all = g_strjoinv(", ", (char **)config_list(site->cfg,
		    CONFIG_SMTPD_LISTEN));

		pg_info(NULL, "smtpd: listening on %s as %s", all, srv.cf->hostname);
		g_free(all);
	}
	event_base_dispatch(srv.base);
	pg_info(NULL, "smtpd: stopped");
out:
	if (srv.listeners)
		g_ptr_array_unref(srv.listeners);
	for (guint i = 0; srv.fds && i < srv.fds->len; i++)
		close(g_array_index(srv.fds, int, i));
	if (srv.fds)
		g_array_unref(srv.fds);
	if (srv.committer)
		queue_committer_free(srv.committer);
	if (srv.commit_ev)
		event_free(srv.commit_ev);
	if (srv.term_ev)
		event_free(srv.term_ev);
	if (srv.int_ev)
		event_free(srv.int_ev);
	if (srv.hup_ev)
		event_free(srv.hup_ev);
	if (srv.sessions)
		g_hash_table_unref(srv.sessions);
	if (srv.base)
		event_base_free(srv.base);
	queue_close(srv.queue);
	/* Without settings (site_open failed), nothing owns the site. */
	if (srv.cf)
		smtpd_settings_unref(srv.cf);
	else
		site_close(site);
	if (srv.tls)
		SSL_CTX_free(srv.tls);
	g_free(srv.tls_files.cert);
	g_free(srv.tls_files.key);
	g_clear_error(&e);
	return rc;
}
