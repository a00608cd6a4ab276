/* message.h - the legacy message: envelope and content (SPEC 1).
 *
 * Owns: the in-memory model of one legacy message and its byte encoding as a
 * bundle entry (docs/bundle-format.md, "Message entries"): tagged fields, so
 * that later fields can be added without a new bundle version.  The decoder
 * takes a length, checks every limit, and validates every address.
 * Never: codepage conversion (codepage.h) or MIME (the gateway's job).
 *
 * All content text (display names, subject, body, report diagnostics) is in
 * the codepage named by the message; addresses are canonical ASCII
 * (address.h).
 */
#ifndef PG_MESSAGE_H
#define PG_MESSAGE_H

#include <stddef.h>
#include <stdint.h>
#include <glib.h>

#define MSG_ERROR (msg_error_quark())
GQuark msg_error_quark(void);

typedef enum {
	MSG_ERROR_TRUNCATED,    /* a field runs past the end of the entry */
	MSG_ERROR_LIMIT,        /* a field or count is over its named limit */
	MSG_ERROR_INVALID,      /* a field holds a value that is not allowed */
	MSG_ERROR_MISSING,      /* a required field is absent */
} MsgError;

typedef enum {
	MSG_CLASS_NORMAL = 0,
	MSG_CLASS_NDR = 1,      /* non-delivery report */
	MSG_CLASS_RECEIPT = 2,  /* delivery receipt */
} MsgClass;

typedef enum {
	MSG_PRIORITY_LOW = 0,
	MSG_PRIORITY_NORMAL = 1,
	MSG_PRIORITY_HIGH = 2,
} MsgPriority;

/* Report requests of the originator (bits of LegacyMessage.requests). */
#define MSG_REQ_RECEIPT   0x01u   /* send a delivery receipt */
#define MSG_REQ_NO_NDR    0x02u   /* send no non-delivery report */
#define MSG_REQ_ALL       0x03u

typedef enum {
	MSG_REPORT_DELIVERED = 0,
	MSG_REPORT_NOT_DELIVERED = 1,
	MSG_REPORT_DELAYED = 2,         /* not delivered yet, still being tried */
} MsgReportStatus;

/* Reasons a report gives, per recipient. */
typedef enum {
	MSG_REASON_NONE = 0,
	MSG_REASON_UNKNOWN_RECIPIENT = 1,
	MSG_REASON_LOOP = 2,            /* hop limit reached */
	MSG_REASON_TRANSFER_FAILED = 3, /* refused by the next hop */
	MSG_REASON_EXPIRED = 4,         /* queue lifetime reached */
	MSG_REASON_TOO_BIG = 5,
	MSG_REASON_OTHER = 255,
} MsgReason;

typedef struct {
	char *addr;             /* canonical address */
	char *name;             /* display name, may be "" */
} MsgParty;

typedef struct {
	char *addr;
	char *name;
	gboolean responsible;   /* deliver here; otherwise listed for display */
} MsgRecipient;

typedef struct {
	char *node;             /* NET/PO or gateway name the message crossed */
	gint64 time;            /* when, seconds since the epoch */
} MsgHop;

typedef struct {
	char *name;             /* file name, no directory part */
	GBytes *data;
} MsgAttachment;

typedef struct {
	char *recipient;        /* canonical address the report is about */
	MsgReportStatus status;
	guint16 reason;         /* MsgReason */
	char *diagnostic;       /* text for a person, may be "" */
} MsgReportItem;

typedef struct {
	/* Envelope. */
	char *id;
	MsgClass class;
	MsgPriority priority;
	gint64 submit_time;
	guint8 requests;        /* MSG_REQ_* */
	gboolean no_report;     /* no report may ever be made about this message */
	char *about_id;         /* for a report: the id of the reported message */
	MsgParty originator;
	GPtrArray *recipients;  /* MsgRecipient */
	GPtrArray *hops;        /* MsgHop, oldest first; the hop count is its length */
	/* Content. */
	char *codepage;         /* e.g. "CP850" */
	MsgParty from;
	GPtrArray *to;          /* MsgParty */
	GPtrArray *cc;          /* MsgParty */
	char *subject;
	gint64 date;
	GBytes *body;
	GPtrArray *attachments; /* MsgAttachment */
	GPtrArray *report_items;/* MsgReportItem, for reports */
} LegacyMessage;

/* msg_new - an empty normal message with every list allocated */
LegacyMessage *msg_new(void);
/* msg_free - free a message and everything it holds */
void msg_free(LegacyMessage *msg);
/* msg_copy - a deep copy (attachment and body bytes are shared, read-only) */
LegacyMessage *msg_copy(const LegacyMessage *msg);
/* msg_add_recipient - append an envelope recipient */
void msg_add_recipient(LegacyMessage *msg, const char *addr, const char *name,
    gboolean responsible);
/* msg_add_party - append a display entry to a To or Cc list */
void msg_add_party(GPtrArray *list, const char *addr, const char *name);
/* msg_add_hop - append a hop to the trace */
void msg_add_hop(LegacyMessage *msg, const char *node, gint64 time);
/* msg_add_attachment - append a named attachment (takes a ref on data) */
void msg_add_attachment(LegacyMessage *msg, const char *name, GBytes *data);
/* msg_add_report_item - append a per-recipient report line */
void msg_add_report_item(LegacyMessage *msg, const char *recipient,
    MsgReportStatus status, guint16 reason, const char *diagnostic);
/* msg_new_id - a new unique message id for messages made at node NET/PO */
char *msg_new_id(const char *node);
/* msg_validate - check every limit and address; what the decoder enforces */
gboolean msg_validate(const LegacyMessage *msg, GError **error);
/* msg_encode - append the entry encoding of a valid message to out */
gboolean msg_encode(const LegacyMessage *msg, GByteArray *out, GError **error);
/* msg_decode - decode one message entry of len bytes */
LegacyMessage *msg_decode(const guint8 *data, size_t len, GError **error);
/* msg_attachment_name_safe - whether a name can never leave its directory */
gboolean msg_attachment_name_safe(const char *name, size_t len);
/* msg_class_name - "normal", "non-delivery report" or "receipt" */
const char *msg_class_name(MsgClass class);
/* msg_report_status_name - "delivered", "not delivered" or "delayed" */
const char *msg_report_status_name(MsgReportStatus status);
/* msg_reason_name - a short text for a MsgReason */
const char *msg_reason_name(guint16 reason);

#endif
