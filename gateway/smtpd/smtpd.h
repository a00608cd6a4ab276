/* smtpd.h - `postgate smtpd`: the SMTP listener.
 *
 * Owns: binding every [smtpd] listen address, dropping to [site] user, and
 * serving SMTP sessions (RFC 5321) on one libevent loop, each an explicit
 * state machine whose named states are logged on every transition:
 * EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT, VRFY (252), HELP, and the
 * extensions PIPELINING (RFC 2920), SIZE (RFC 1870), 8BITMIME (RFC 6152),
 * ENHANCEDSTATUSCODES (RFC 2034), DSN (RFC 3461) and STARTTLS (RFC 3207).
 * Recipients are checked against the directory route at RCPT time; DATA
 * goes through the smuggling-safe state machine (smtp_data.h) into a queue
 * body; the 250 after DATA is sent when the group commit (queue.h) made the
 * message durable.  SIGTERM stops listening, lets sessions in DATA finish,
 * and says 421 to the rest.
 * Never: postoffice directories, delivery, changes to the directory.
 */
#ifndef PG_SMTPD_H
#define PG_SMTPD_H

/* Named limits of a session (the configurable ones are in postgate.conf(5)). */
#define SMTPD_LINE_MAX        2048u            /* a command line, without CRLF */
#define SMTPD_DATA_LINE_MAX   65536u           /* a line of message data, without CRLF */
#define SMTPD_MAX_ERRORS      20u              /* error replies before 421 and close */
#define SMTPD_INPUT_MAX       (64u * 1024)     /* bytes read ahead of the session */
#define SMTPD_OUTPUT_MAX      (64u * 1024)     /* replies queued before reading stops */
#define SMTPD_HELO_MAX        255u             /* bytes of a HELO/EHLO name kept */

/* smtpd_main - run `postgate smtpd [--syslog] [--debug]` until SIGTERM */
int smtpd_main(const char *config_file, int argc, char **argv);

#endif
