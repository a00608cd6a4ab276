/* pg_limits.h - every size postgate accepts has a name, and this is where it lives.
 *
 * Owns: the named limits of the legacy model and the bundle format
 * (docs/bundle-format.md, "Limits").  Never: policy that differs per site;
 * those are configuration keys.
 */
#ifndef PG_PG_LIMITS_H
#define PG_PG_LIMITS_H

/* Legacy addresses (SPEC 1): each part of NET/PO/MAILBOX. */
#define ADDR_PART_MAX          10
/* NET/PO as text, without the terminating NUL. */
#define ADDR_PO_MAX            (2 * ADDR_PART_MAX + 1)
/* NET/PO/MAILBOX as text. */
#define ADDR_LEGACY_MAX        (3 * ADDR_PART_MAX + 2)
/* SMTP:local@domain - RFC 5321 4.5.3.1 */
#define ADDR_SMTP_LOCAL_MAX    64
#define ADDR_SMTP_DOMAIN_MAX   253
#define ADDR_SMTP_MAX          254

/* Bundle format v1 (docs/bundle-format.md). */
#define BUNDLE_MAX_FILE_SIZE   (256u * 1024 * 1024)  /* whole file on disk */
#define BUNDLE_MAX_PAYLOAD     (256u * 1024 * 1024)  /* payload after inflate */
#define BUNDLE_MAX_ENTRIES     10000u                /* entries in one bundle */
#define BUNDLE_MAX_RATIO       1100u                 /* inflated / compressed */

/* Legacy message (one entry of a bundle). */
#define SMTP_MAX_MESSAGE_SIZE  (1024u * 1024 * 1024) /* ceiling of [smtpd] max_message_size */
#define MSG_MAX_SIZE           (64u * 1024 * 1024)   /* one encoded entry */
#define MSG_MAX_RECIPIENTS     10000u
#define MSG_MAX_DISPLAY        10000u                /* To + Cc display lists */
#define MSG_MAX_ATTACHMENTS    256u
#define MSG_MAX_HOPS           255u
#define MSG_MAX_REPORT_ITEMS   10000u
#define MSG_MAX_ID_LEN         64u                   /* message ids */
#define MSG_MAX_NAME_LEN       255u                  /* display and file names */
#define MSG_MAX_SUBJECT_LEN    998u                  /* like an RFC 5322 line */
#define MSG_MAX_CODEPAGE_LEN   32u
#define MSG_MAX_TEXT_LEN       4096u                 /* diagnostics, hop names */

/* Keys that authenticate bundles. */
#define KEY_MIN_LEN            32u
#define KEY_MAX_LEN            1024u

/* The SMTP AUTH password file ([delivery] auth_password_file), whole. */
#define DELIVERY_PASSWORD_FILE_MAX 4096u

#endif
