/* run.h - `postgate run`: the scheduled batch.
 *
 * Owns: the batch run of SPEC 2 and DESIGN "Exactly once": under a lock
 * (state_dir/run.lock; a second run exits 75 at once), it finishes the
 * bundles an interrupted run recorded, applies the bundles of the
 * postoffices' out/ whole, in order, in commits of bounded size
 * (queue_ingest; one begun goes on where it stopped) — only a bundle at
 * fault (format, HMAC, a refused entry) goes to bad/, any other failure
 * leaves it in out/ and the run exits 75 —, routes every accepted recipient of
 * the queue with the directory (lists expanded at the gateway: nested,
 * cycle-safe, duplicates removed), translates each message once per
 * destination codepage (mime/mime_in.h), and fans it out as ONE copy per
 * destination postoffice carrying only that postoffice's recipients, all
 * responsible — so every recipient is responsible at exactly one place in
 * the network (SPEC 3.1) — plus a copy of its own for each Bcc recipient,
 * so that no one learns of them.  Bundles follow DESIGN's three steps: the
 * sequence number, the bundle's bytes and its recipients recorded in one
 * commit; the file written atomically into the postoffice's in/; the
 * recipients marked bundled.  A crash anywhere rewrites the same bytes
 * under the same number, which the postoffice applies at most once.
 * Recipients at other sites and external ones become smtp-pending, and the
 * run ends with the SMTP client (delivery.h) sending what is due; what cannot be routed or translated is held with a reason
 * (`postgate queue show`), never lost.  Prints a summary; `--dry-run`
 * prints the routes and changes nothing.
 * Never: the SMTP protocol itself, changes to the directory.
 */
#ifndef PG_RUN_H
#define PG_RUN_H

/* Named limits. */
#define RUN_BUNDLE_TARGET   (8u * 1024 * 1024)  /* encoded messages per bundle, about */

/* run_main - run `postgate run [--dry-run] [--no-delivery]` */
int run_main(const char *config_file, int argc, char **argv);
/* run_retry - `postgate queue retry [ID]`: SMTP delivery of what waits, now */
int run_retry(const char *config_file, const char *qid);

#endif
