/* po_store_int.h - what the files of the reference postoffice share (private;
 * po_store.h is the interface).
 *
 *   po_store.c    po.db, init, open, settings, users
 *   po_send.c     mail stored, the outbox, sequence numbers, the GAL, send
 *   po_deliver.c  deliver: bundles from in/ applied exactly once, reports
 *   po_status.c   mailboxes read, status
 * Names here carry pos_; nothing outside those files includes this header.
 */
#ifndef PG_PO_STORE_INT_H
#define PG_PO_STORE_INT_H

#include <sqlite3.h>

#include "address.h"
#include "pg_db.h"
#include "po_store.h"

#define PO_DB "po.db"
#define PO_LOCK "po.lock"
#define POSTMASTER "POSTMASTER"
#define PO_BUNDLE_LEVEL 6
#define PO_BUNDLE_ENTRIES 1000                 /* per bundle this postoffice writes */
#define PO_BUNDLE_PAYLOAD (64u * 1024 * 1024)  /* well below BUNDLE_MAX_PAYLOAD */

struct PoStore {
	char *dir, *in, *out, *bad;
	PgDb *pg;
	sqlite3 *db;            /* pg's connection */
	int lock_fd;
	char net[ADDR_PART_MAX + 1], po[ADDR_PART_MAX + 1];
	char name[ADDR_PO_MAX + 1];
	char gateway[ADDR_PO_MAX + 1];
	char *codepage;
	GBytes *key;
};

/* po_store.c */
GPtrArray *pos_rows(PoStore *s, const char *sql, const char *sep, GError **error);
gboolean pos_mailbox_norm(const char *mailbox, char out[ADDR_PART_MAX + 1], GError **error);
gboolean pos_user_exists(PoStore *s, const char *mailbox);

/* po_send.c */
gboolean pos_store_mail(PoStore *s, const char *mailbox, const LegacyMessage *m,
    const char *origin, GError **error);
gboolean pos_outbox_add(PoStore *s, GPtrArray *msgs, char **name_out, GError **error);
gboolean pos_outbox_flush(PoStore *s, GError **error);
gboolean pos_is_local(PoStore *s, const char *addr, char mailbox[ADDR_PART_MAX + 1]);

/* po_deliver.c */
int pos_name_cmp(gconstpointer a, gconstpointer b);

#endif
