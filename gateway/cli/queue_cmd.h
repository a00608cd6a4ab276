/* queue_cmd.h - `postgate queue`: the administrator's view of the queue.
 *
 * Owns: `queue list [-j]` (text like mailq, or one JSON object per line per
 * message like `postqueue -j`: queue_id, arrival_time, message_size, sender,
 * recipients [{address, state, reason, next_attempt, last_reply}], and beside
 * them message_id, client, protocol, hops, envid, ret, body, and per
 * recipient notify and orcpt), `queue show ID` (envelope, DSN parameters,
 * recipients, the header section), `queue hold ID [--reason TEXT]`,
 * `queue release ID`, `queue delete ID`.
 * Never: delivery, routing.
 */
#ifndef PG_QUEUE_CMD_H
#define PG_QUEUE_CMD_H

/* queue_cmd_main - run `postgate queue ...` */
int queue_cmd_main(const char *config_file, int argc, char **argv);

#endif
