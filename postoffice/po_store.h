/* po_store.h - the reference legacy postoffice behind postgate-po.
 *
 * Owns: one postoffice's drop directory (in/ out/ bad/), its SQLite state
 * (po.db: settings, users, mailboxes, the ledger of applied sequence numbers,
 * the sequence numbers it hands out, and an outbox of bundles to write), and
 * what a real postoffice does with them: send a message (local recipients at
 * once, one bundle to the gateway for the rest) and deliver bundles from in/
 * honouring the responsibility flag, exactly once whatever the crash.
 * Never: anything of the gateway's state.
 */
#ifndef PG_PO_STORE_H
#define PG_PO_STORE_H

#include <glib.h>

#include "message.h"

#define PO_ERROR (po_error_quark())
GQuark po_error_quark(void);

typedef enum {
	PO_ERROR_USAGE,        /* a bad argument */
	PO_ERROR_NOUSER,       /* a mailbox that does not exist */
	PO_ERROR_STATE,        /* po.db or the directory is missing or broken */
	PO_ERROR_IO,
	PO_ERROR_DATA,         /* some input was refused */
} PoError;

typedef struct PoStore PoStore;

typedef struct {
	char *mailbox;
	char *name;            /* UTF-8 */
} PoUser;

typedef struct {
	guint bundles_applied;
	guint bundles_duplicate;  /* already applied, same HMAC: dropped */
	guint bundles_refused;    /* moved to bad/ */
	guint bundles_failed;     /* could not be read: left in in/ */
	guint messages_delivered; /* mailbox copies made */
	guint reports_made;       /* non-delivery reports and receipts */
} PoDeliverStats;

/* po_init - create DIR with in/ out/ bad/ and po.db; creates key_file if missing */
gboolean po_init(const char *dir, const char *net, const char *po, const char *codepage,
    const char *key_file, const char *gateway, GError **error);
/* po_open - open an initialised postoffice directory (locks it) */
PoStore *po_open(const char *dir, GError **error);
/* po_close - close and unlock */
void po_close(PoStore *s);
/* po_name - NET/PO of this postoffice */
const char *po_name(const PoStore *s);
/* po_codepage - the codepage of this postoffice's users */
const char *po_codepage(const PoStore *s);

/* po_user_add - add a mailbox (name in UTF-8) */
gboolean po_user_add(PoStore *s, const char *mailbox, const char *name, GError **error);
/* po_user_rename - give a mailbox a new display name (UTF-8) */
gboolean po_user_rename(PoStore *s, const char *mailbox, const char *name, GError **error);
/* po_user_del - delete a mailbox and the mail in it */
gboolean po_user_del(PoStore *s, const char *mailbox, GError **error);
/* po_users - every user, sorted; free with g_ptr_array_unref */
GPtrArray *po_users(PoStore *s, GError **error);
/* po_user_name - the display name of a mailbox, or NULL when unknown */
char *po_user_name(PoStore *s, const char *mailbox);

/* po_send - deliver msg locally and bundle it to the gateway for the rest */
gboolean po_send(PoStore *s, LegacyMessage *msg, char **bundle_name, GError **error);
/* po_deliver - apply every bundle in in/; FALSE only on a failure of our own */
gboolean po_deliver(PoStore *s, gboolean ignore_responsibility, PoDeliverStats *stats,
    GError **error);
/* po_mailbox - the messages in a mailbox, oldest first (LegacyMessage) */
GPtrArray *po_mailbox(PoStore *s, const char *mailbox, GError **error);
/* po_mailbox_counts - (mailbox, count) for every user, as "MAILBOX COUNT" lines */
GPtrArray *po_mailbox_counts(PoStore *s, GError **error);
/* po_send_directory - queue a directory sync document for the gateway in a
 * bundle (an entry of kind directory) and write it to out/ */
gboolean po_send_directory(PoStore *s, GBytes *document, char **bundle_name, GError **error);
/* po_gal_replace - make (address, name, smtp) triples the global address list */
gboolean po_gal_replace(PoStore *s, GPtrArray *addresses, GPtrArray *names,
    GPtrArray *smtps, GError **error);
/* po_gal - the global address list as "ADDRESS<TAB>SMTP<TAB>NAME" lines, sorted */
GPtrArray *po_gal(PoStore *s, GError **error);
/* po_status - the ledger, gaps, sequence numbers handed out and bad/, as text */
char *po_status(PoStore *s, GError **error);

#endif
