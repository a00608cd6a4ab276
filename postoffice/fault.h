/* fault.h - fault injection at durable steps, for the crash-safety tests.
 *
 * Owns: a counter of durable steps (a commit, a rename, an unlink).  When the
 * environment variable POSTGATE_FAULT_AFTER=K is set, the process dies with
 * SIGKILL right after its K-th durable step, exactly as a crash would leave
 * things.  Never: anything else; unset, it costs one branch.
 */
#ifndef PG_FAULT_H
#define PG_FAULT_H

/* fault_step - record that a durable step named what has just completed */
void fault_step(const char *what);

#endif
