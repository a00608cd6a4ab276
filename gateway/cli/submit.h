/* submit.h - `postgate submit -f SENDER RCPT...`: a message on standard input.
 *
 * Owns: taking one message from an MTA's pipe transport (LF or CRLF line
 * ends), with the listener's recipient checks (accept.h) and the listener's
 * DATA rules (smtp_data.h: no NUL, no bare CR, size, hop limit), into the
 * same queue, durable before the exit status says so.  Exit codes from
 * sysexits.h: 0 queued, 65 bad data or address, 67 unknown recipient,
 * 75 try again, 77 relay refused.  All recipients or none.
 * Never: SMTP, delivery.
 */
#ifndef PG_SUBMIT_H
#define PG_SUBMIT_H

/* submit_main - run `postgate submit` */
int submit_main(const char *config_file, int argc, char **argv);

#endif
