/* smtpd_int.h - what the two halves of the SMTP listener share: the server
 * (smtpd.c) and its sessions (smtpd_session.c); nothing outside
 * gateway/smtpd/ includes it.
 *
 * Owns: the settings a session runs with (SmtpdSettings, counted
 * references), the server a session belongs to (SmtpdServer), and the two
 * ways the server reaches its sessions: a new connection
 * (smtpd_session_accept) and the 421 on SIGTERM (smtpd_session_stop).
 * Every shared name carries the prefix smtpd_ / Smtpd.
 * Never: a session's state or its protocol (those stay in
 * smtpd_session.c), anything the rest of postgate calls (smtpd.h).
 */
#ifndef PG_SMTPD_INT_H
#define PG_SMTPD_INT_H

#include <sys/stat.h>
#include <sys/time.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <glib.h>
#include <openssl/ssl.h>

#include "queue/queue.h"
#include "site.h"

/* What the configuration says, as loaded at start or by the last SIGHUP.
 * A session keeps the one it started with; the last one frees it. */
typedef struct {
	gint refs;
	Site *site;             /* the configuration, the directory context and directory.db */
	SSL_CTX *tls;           /* NULL: no STARTTLS */
	char *hostname;
	gint64 max_size;
	guint max_rcpt, max_conn, hop_limit;
	struct timeval timeout;
	GPtrArray *relay;       /* GInetAddressMask * */
} SmtpdSettings;

/* The TLS files as they were when last read: SIGHUP reads them again only
 * when they changed (a key only root can read is read once, at start). */
typedef struct {
	char *cert, *key;
	struct stat cert_st, key_st;
} SmtpdTlsFiles;

/* One session, private to smtpd_session.c. */
typedef struct SmtpdSession SmtpdSession;

/* The listener: one per `postgate smtpd`, its sessions in sessions. */
typedef struct SmtpdServer SmtpdServer;

struct SmtpdServer {
	const char *config_file;
	SmtpdSettings *cf;      /* what new sessions get */
	struct event_base *base;
	GArray *fds;            /* bound listening sockets */
	GPtrArray *listeners;   /* struct evconnlistener * */
	SSL_CTX *tls;           /* loaded while binding, before privileges go */
	SmtpdTlsFiles tls_files;
	Queue *queue;
	QueueCommitter *committer;
	struct event *commit_ev, *term_ev, *int_ev, *hup_ev;
	GHashTable *sessions;   /* SmtpdSession * */
	gboolean stopping;
	guint64 next_id;
};

/* ------------------------------------------------------------ smtpd.c */

/* smtpd_settings_ref - one more reference to cf, which is returned */
SmtpdSettings *smtpd_settings_ref(SmtpdSettings *cf);
/* smtpd_settings_unref - one reference less; the last frees cf and its site */
void smtpd_settings_unref(SmtpdSettings *cf);

/* ------------------------------------------------------------ smtpd_session.c */

/* smtpd_session_accept - the listener's callback (data: the SmtpdServer): a
 * new session greets the client, or a 421 when stopping or full */
void smtpd_session_accept(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *data);
/* smtpd_session_stop - SIGTERM: a session outside DATA and the commit gets
 * 421 and closes; one in them finishes first */
void smtpd_session_stop(SmtpdSession *s);

#endif
