/* test_message.c - unit tests of postoffice/message.c.
 *
 * Checks the legacy message model and its entry encoding: that every field
 * survives encode -> decode (envelope, responsibility flags, hops, To/Cc,
 * codepage text, arbitrary body bytes, binary attachments with NUL bytes,
 * report items, class, about id, no-report marker); that msg_validate refuses
 * what can never be delivered safely (a report without the no-report marker,
 * attachment names that could leave their directory, non-canonical
 * addresses); and that the decoder refuses every truncation, duplicated
 * singleton fields, unknown required tags and over-limit counts, while
 * skipping unknown optional (0x8000) tags.  Inputs to the decoder are
 * exact-size heap buffers so ASan catches any over-read.
 */
#include "config.h"

#include <stdarg.h>
#include <string.h>

#include "cu_run.h"
#include "message.h"
#include "pg_limits.h"

/* Field tags of docs/bundle-format.md, "Message entries" (message.c). */
enum {
	T_ID = 1, T_CLASS, T_PRIORITY, T_SUBMIT_TIME, T_REQUESTS, T_FLAGS,
	T_ABOUT_ID, T_ORIGINATOR, T_RECIPIENT, T_HOP, T_CODEPAGE, T_FROM, T_TO,
	T_CC, T_SUBJECT, T_DATE, T_BODY, T_ATTACHMENT, T_REPORT_ITEM,
};

/* ---- building messages and encodings -------------------------------------- */

static GBytes *
all_byte_values(void)
{
	guint8 b[512];

	for (int i = 0; i < 512; i++)
		b[i] = (guint8)(i * 7 + (i >> 8));
	b[0] = 0;
	b[1] = 0;
	return g_bytes_new(b, sizeof b);
}

/* A normal message with every field set; text in CP850. */
static LegacyMessage *
full_message(void)
{
	LegacyMessage *m = msg_new();
	static const guint8 bin[] = { 0x00, 0x01, 0xff, 0x00, 'P', 'K', 0x03, 0x04, 0x00, 0x80 };
	GBytes *d;

	m->id = g_strdup("CORP/HQ:20240102030405.0badcafe0001");
	m->class = MSG_CLASS_NORMAL;
	m->priority = MSG_PRIORITY_HIGH;
	m->submit_time = 1704164645;
	m->requests = MSG_REQ_RECEIPT;
	m->no_report = FALSE;
	m->originator.addr = g_strdup("CORP/HQ/JSMITH");
	m->originator.name = g_strdup("J\x81rgen Smith");   /* "Jürgen" in CP850 */
	msg_add_recipient(m, "CORP/HQ/ANNA", "Anna", TRUE);
	msg_add_recipient(m, "CORP/SALES/BOB", "Bob", FALSE);
	msg_add_recipient(m, "SMTP:Carol.Jones@example.com", "", TRUE);
	msg_add_hop(m, "CORP/HQ", 1704164646);
	msg_add_hop(m, "CORP/GW", -5);
	m->codepage = g_strdup("CP850");
	m->from.addr = g_strdup("CORP/HQ/JSMITH");
	m->from.name = g_strdup("J\x81rgen Smith");
	msg_add_party(m->to, "CORP/HQ/ANNA", "Anna");
	msg_add_party(m->to, "SMTP:Carol.Jones@example.com", "Carol \"CJ\" Jones");
	msg_add_party(m->cc, "CORP/SALES/BOB", "Bob\tB.");
	m->subject = g_strdup("Gr\x81\xe1" "e: Q3 \xab figures");
	m->date = 1704164600;
	m->body = all_byte_values();
	d = g_bytes_new(bin, sizeof bin);
	msg_add_attachment(m, "figures.xls", d);
	g_bytes_unref(d);
	d = g_bytes_new(NULL, 0);
	msg_add_attachment(m, "empty \x81.txt", d);
	g_bytes_unref(d);
	return m;
}

/* A non-delivery report about another message, with report items and the
 * content fields a report has. */
static LegacyMessage *
report_message(void)
{
	LegacyMessage *m = msg_new();

	m->id = g_strdup("CORP/GW:20240102030405.00000001");
	m->class = MSG_CLASS_NDR;
	m->no_report = TRUE;
	m->about_id = g_strdup("CORP/HQ:20240102030405.0badcafe0001");
	m->originator.addr = g_strdup("CORP/GW/POSTMASTER");
	m->originator.name = g_strdup("");
	msg_add_recipient(m, "CORP/HQ/JSMITH", "", TRUE);
	msg_add_hop(m, "CORP/HQ", 1704164646);
	msg_add_hop(m, "CORP/GW", 1704164700);
	m->codepage = g_strdup("CP1252");
	m->from.addr = g_strdup("CORP/GW/POSTMASTER");
	m->from.name = g_strdup("Postmaster");
	msg_add_party(m->to, "CORP/HQ/JSMITH", "John");
	m->subject = g_strdup("Not delivered");
	m->body = g_bytes_new_static("Your message was not delivered.\r\n", 33);
	msg_add_report_item(m, "SMTP:nobody@example.com", MSG_REPORT_NOT_DELIVERED,
	    MSG_REASON_UNKNOWN_RECIPIENT, "550 5.1.1 no such user");
	msg_add_report_item(m, "CORP/SALES/BOB", MSG_REPORT_NOT_DELIVERED, MSG_REASON_LOOP,
	    "hop limit 30 reached");
	msg_add_report_item(m, "CORP/HQ/ANNA", MSG_REPORT_DELIVERED, 300, "");
	msg_add_report_item(m, "SMTP:slow@example.net", MSG_REPORT_DELAYED,
	    MSG_REASON_TRANSFER_FAILED, "451 4.3.0 try again later");
	return m;
}

static GByteArray *
encode(const LegacyMessage *m)
{
	GByteArray *out = g_byte_array_new();
	GError *e = NULL;

	if (!msg_encode(m, out, &e)) {
		EXPECT(FALSE, "msg_encode of a valid message: %s", e->message);
		g_error_free(e);
	}
	return out;
}

/* msg_decode on an exact-size heap copy, so reading past len is caught. */
static LegacyMessage *
decode(const guint8 *data, size_t len, GError **error)
{
	guint8 *copy = g_memdup2(data, len ? len : 1);
	LegacyMessage *m = msg_decode(copy, len, error);

	g_free(copy);
	return m;
}

static void
put_u16(GByteArray *b, guint16 v)
{
	guint8 x[2] = { v >> 8, v & 0xff };

	g_byte_array_append(b, x, 2);
}

static void
put_field(GByteArray *b, guint16 tag, const void *value, guint32 len)
{
	guint8 l[4] = { len >> 24, (len >> 16) & 0xff, (len >> 8) & 0xff, len & 0xff };

	put_u16(b, tag);
	g_byte_array_append(b, l, 4);
	if (len)
		g_byte_array_append(b, value, len);
}

static void
put_str(GByteArray *b, guint16 tag, const char *s)
{
	put_field(b, tag, s, (guint32)strlen(s));
}

/* A group field whose value is the sequence of fields in inner. */
static void
put_group(GByteArray *b, guint16 tag, const GByteArray *inner)
{
	put_field(b, tag, inner->data, inner->len);
}

/* Offsets of the top-level fields of an entry; -1 terminated. */
static GArray *
field_offsets(const GByteArray *enc)
{
	GArray *offs = g_array_new(FALSE, FALSE, sizeof(gssize));
	gsize pos = 0;

	while (pos + 6 <= enc->len) {
		gssize p = (gssize)pos;
		guint32 len = (guint32)enc->data[pos + 2] << 24 | (guint32)enc->data[pos + 3] << 16 |
		    (guint32)enc->data[pos + 4] << 8 | enc->data[pos + 5];
		g_array_append_val(offs, p);
		pos += 6 + len;
	}
	return offs;
}

/* The bytes of the first top-level field with tag (header included). */
static GByteArray *
first_field(const GByteArray *enc, guint16 tag)
{
	gsize pos = 0;

	while (pos + 6 <= enc->len) {
		guint16 t = (guint16)(enc->data[pos] << 8 | enc->data[pos + 1]);
		guint32 len = (guint32)enc->data[pos + 2] << 24 | (guint32)enc->data[pos + 3] << 16 |
		    (guint32)enc->data[pos + 4] << 8 | enc->data[pos + 5];
		if (t == tag) {
			GByteArray *f = g_byte_array_new();
			g_byte_array_append(f, enc->data + pos, 6 + len);
			return f;
		}
		pos += 6 + len;
	}
	return NULL;
}

static gboolean
bytes_equal(GBytes *a, GBytes *b)
{
	if (!a || !b)
		return a == b;
	return g_bytes_equal(a, b);
}

/* Compare every field of two messages. */
static void
assert_same_message(const LegacyMessage *a, const LegacyMessage *b)
{
	CU_ASSERT_STRING_EQUAL(a->id, b->id);
	CU_ASSERT_EQUAL(a->class, b->class);
	CU_ASSERT_EQUAL(a->priority, b->priority);
	CU_ASSERT_EQUAL(a->submit_time, b->submit_time);
	CU_ASSERT_EQUAL(a->requests, b->requests);
	CU_ASSERT_EQUAL(a->no_report, b->no_report);
	CU_ASSERT_STRING_EQUAL(a->about_id ? a->about_id : "", b->about_id ? b->about_id : "");
	CU_ASSERT_STRING_EQUAL(a->originator.addr, b->originator.addr);
	CU_ASSERT_STRING_EQUAL(a->originator.name, b->originator.name);
	CU_ASSERT_EQUAL_FATAL(a->recipients->len, b->recipients->len);
	for (guint i = 0; i < a->recipients->len; i++) {
		MsgRecipient *x = a->recipients->pdata[i], *y = b->recipients->pdata[i];
		CU_ASSERT_STRING_EQUAL(x->addr, y->addr);
		CU_ASSERT_STRING_EQUAL(x->name, y->name);
		CU_ASSERT_EQUAL(!!x->responsible, !!y->responsible);
	}
	CU_ASSERT_EQUAL_FATAL(a->hops->len, b->hops->len);
	for (guint i = 0; i < a->hops->len; i++) {
		MsgHop *x = a->hops->pdata[i], *y = b->hops->pdata[i];
		CU_ASSERT_STRING_EQUAL(x->node, y->node);
		CU_ASSERT_EQUAL(x->time, y->time);
	}
	CU_ASSERT_STRING_EQUAL(a->codepage, b->codepage);
	CU_ASSERT_STRING_EQUAL(a->from.addr ? a->from.addr : "-", b->from.addr ? b->from.addr : "-");
	CU_ASSERT_STRING_EQUAL(a->from.name ? a->from.name : "", b->from.name ? b->from.name : "");
	CU_ASSERT_EQUAL_FATAL(a->to->len, b->to->len);
	for (guint i = 0; i < a->to->len; i++) {
		MsgParty *x = a->to->pdata[i], *y = b->to->pdata[i];
		CU_ASSERT_STRING_EQUAL(x->addr, y->addr);
		CU_ASSERT_STRING_EQUAL(x->name, y->name);
	}
	CU_ASSERT_EQUAL_FATAL(a->cc->len, b->cc->len);
	for (guint i = 0; i < a->cc->len; i++) {
		MsgParty *x = a->cc->pdata[i], *y = b->cc->pdata[i];
		CU_ASSERT_STRING_EQUAL(x->addr, y->addr);
		CU_ASSERT_STRING_EQUAL(x->name, y->name);
	}
	CU_ASSERT_STRING_EQUAL(a->subject ? a->subject : "", b->subject ? b->subject : "");
	CU_ASSERT_EQUAL(a->date, b->date);
	CU_ASSERT_TRUE(bytes_equal(a->body, b->body));
	CU_ASSERT_EQUAL_FATAL(a->attachments->len, b->attachments->len);
	for (guint i = 0; i < a->attachments->len; i++) {
		MsgAttachment *x = a->attachments->pdata[i], *y = b->attachments->pdata[i];
		CU_ASSERT_STRING_EQUAL(x->name, y->name);
		CU_ASSERT_TRUE(bytes_equal(x->data, y->data));
	}
	CU_ASSERT_EQUAL_FATAL(a->report_items->len, b->report_items->len);
	for (guint i = 0; i < a->report_items->len; i++) {
		MsgReportItem *x = a->report_items->pdata[i], *y = b->report_items->pdata[i];
		CU_ASSERT_STRING_EQUAL(x->recipient, y->recipient);
		CU_ASSERT_EQUAL(x->status, y->status);
		CU_ASSERT_EQUAL(x->reason, y->reason);
		CU_ASSERT_STRING_EQUAL(x->diagnostic, y->diagnostic);
	}
}

/* Decode enc; expect a refusal with code, and a message containing why. */
#define REFUSED(enc, code, why) refused_at(__LINE__, enc, code, why)

static void
refused_at(int line, const GByteArray *enc, MsgError code, const char *why)
{
	GError *e = NULL;
	LegacyMessage *m = decode(enc->data, enc->len, &e);

	expect_at(m == NULL, line, "the decoder refuses (expected: %s)", why);
	expect_at(e && g_error_matches(e, MSG_ERROR, code), line,
	    "error code %d for \"%s\", got %s", code, why, e ? e->message : "(no error)");
	if (e)
		expect_at(strstr(e->message, why) != NULL, line,
		    "the error names \"%s\"; it says: %s", why, e->message);
	msg_free(m);
	g_clear_error(&e);
}

/* Validation of m must fail with code and a message containing why. */
#define INVALID(m, code, why) invalid_at(__LINE__, m, code, why)

static void
invalid_at(int line, const LegacyMessage *m, MsgError code, const char *why)
{
	GError *e = NULL;
	GByteArray *out = g_byte_array_new();
	gboolean ok = msg_validate(m, &e);

	expect_at(!ok, line, "msg_validate refuses (expected: %s)", why);
	expect_at(e && g_error_matches(e, MSG_ERROR, code) && strstr(e->message, why), line,
	    "error %d naming \"%s\", got: %s", code, why, e ? e->message : "(none)");
	g_clear_error(&e);
	/* The encoder refuses the same message and writes nothing. */
	g_byte_array_append(out, (const guint8 *)"xy", 2);
	expect_at(!msg_encode(m, out, &e) && e != NULL, line, "msg_encode refuses (%s)", why);
	expect_at(out->len == 2, line, "a refused encode leaves the output untouched (%s)", why);
	g_clear_error(&e);
	g_byte_array_unref(out);
}

/* ---- round trips -------------------------------------------------------------- */

static void
test_full_message_survives_encode_decode(void)
{
	LegacyMessage *m = full_message(), *d;
	GByteArray *enc = encode(m);
	GError *e = NULL;

	d = decode(enc->data, enc->len, &e);
	CU_ASSERT_PTR_NULL(e);
	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	assert_same_message(m, d);
	/* Spot checks of what matters most to a user. */
	CU_ASSERT_TRUE(((MsgRecipient *)d->recipients->pdata[0])->responsible);
	CU_ASSERT_FALSE(((MsgRecipient *)d->recipients->pdata[1])->responsible);
	CU_ASSERT_EQUAL(g_bytes_get_size(((MsgAttachment *)d->attachments->pdata[0])->data), 10);
	CU_ASSERT_EQUAL(((const guint8 *)g_bytes_get_data(
	    ((MsgAttachment *)d->attachments->pdata[0])->data, NULL))[3], 0x00);
	CU_ASSERT_EQUAL(g_bytes_get_size(d->body), 512);
	msg_free(d);
	msg_free(m);
	g_byte_array_unref(enc);
	g_clear_error(&e);
}

static void
test_report_message_survives_encode_decode(void)
{
	LegacyMessage *m = report_message(), *d;
	GByteArray *enc = encode(m);

	d = decode(enc->data, enc->len, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	assert_same_message(m, d);
	CU_ASSERT_EQUAL(d->class, MSG_CLASS_NDR);
	CU_ASSERT_TRUE(d->no_report);
	CU_ASSERT_STRING_EQUAL(d->about_id, "CORP/HQ:20240102030405.0badcafe0001");
	CU_ASSERT_EQUAL(((MsgReportItem *)d->report_items->pdata[2])->reason, 300);
	msg_free(d);
	msg_free(m);
	g_byte_array_unref(enc);
}

static void
test_receipt_with_every_priority_and_request_survives(void)
{
	static const MsgPriority prios[] = { MSG_PRIORITY_LOW, MSG_PRIORITY_NORMAL,
		MSG_PRIORITY_HIGH };

	for (guint i = 0; i < G_N_ELEMENTS(prios); i++) {
		MsgPriority p = prios[i];
		LegacyMessage *m = report_message(), *d;
		GByteArray *enc;
		m->class = MSG_CLASS_RECEIPT;
		m->priority = p;
		m->requests = MSG_REQ_ALL;
		enc = encode(m);
		d = decode(enc->data, enc->len, NULL);
		CU_ASSERT_PTR_NOT_NULL(d);
		if (d) {
			CU_ASSERT_EQUAL(d->class, MSG_CLASS_RECEIPT);
			CU_ASSERT_EQUAL(d->priority, p);
			CU_ASSERT_EQUAL(d->requests, MSG_REQ_ALL);
		}
		msg_free(d);
		msg_free(m);
		g_byte_array_unref(enc);
	}
}

static void
test_encoding_of_decoded_message_is_identical(void)
{
	LegacyMessage *m = full_message(), *d;
	GByteArray *enc = encode(m), *again;

	d = decode(enc->data, enc->len, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	again = encode(d);
	CU_ASSERT_EQUAL(again->len, enc->len);
	CU_ASSERT_TRUE(again->len == enc->len && memcmp(again->data, enc->data, enc->len) == 0);
	msg_free(d);
	msg_free(m);
	g_byte_array_unref(enc);
	g_byte_array_unref(again);
}

static void
test_message_without_optional_content_survives(void)
{
	/* No From, no To/Cc, no body, no attachments, no subject. */
	LegacyMessage *m = msg_new(), *d;
	GByteArray *enc;

	m->id = g_strdup("X");
	m->originator.addr = g_strdup("SMTP:a@b");
	msg_add_recipient(m, "N/P/M", NULL, TRUE);
	m->codepage = g_strdup("CP437");
	enc = encode(m);
	d = decode(enc->data, enc->len, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	CU_ASSERT_PTR_NULL(d->from.addr);
	CU_ASSERT_PTR_NULL(d->body);
	CU_ASSERT_STRING_EQUAL(d->subject, "");
	CU_ASSERT_STRING_EQUAL(d->originator.name, "");
	CU_ASSERT_EQUAL(d->to->len, 0);
	CU_ASSERT_EQUAL(d->attachments->len, 0);
	CU_ASSERT_EQUAL(d->class, MSG_CLASS_NORMAL);
	msg_free(d);
	msg_free(m);
	g_byte_array_unref(enc);
}

static void
test_copy_is_deep_and_equal(void)
{
	LegacyMessage *m = full_message();
	LegacyMessage *c = msg_copy(m);
	GByteArray *a = encode(m), *b;

	msg_free(m);   /* the copy must not depend on the original */
	b = encode(c);
	CU_ASSERT_TRUE_FATAL(a->len > 0);
	CU_ASSERT_TRUE(a->len == b->len && memcmp(a->data, b->data, a->len) == 0);
	msg_free(c);
	g_byte_array_unref(a);
	g_byte_array_unref(b);
}

static void
test_new_ids_are_unique_and_name_the_node(void)
{
	char *a = msg_new_id("CORP/HQ"), *b = msg_new_id("CORP/HQ");
	LegacyMessage *m = full_message();

	CU_ASSERT_TRUE(g_str_has_prefix(a, "CORP/HQ:"));
	CU_ASSERT_STRING_NOT_EQUAL(a, b);
	g_free(m->id);
	m->id = a;   /* and the id is one the validator accepts */
	CU_ASSERT_TRUE(msg_validate(m, NULL));
	msg_free(m);
	g_free(b);
}

/* ---- validation ------------------------------------------------------------- */

static void
test_report_without_no_report_marker_refused(void)
{
	LegacyMessage *m = report_message();

	m->no_report = FALSE;
	INVALID(m, MSG_ERROR_INVALID, "a report must carry the no-report marker");
	m->class = MSG_CLASS_RECEIPT;
	INVALID(m, MSG_ERROR_INVALID, "a report must carry the no-report marker");
	msg_free(m);
}

static void
test_normal_message_with_report_lines_refused(void)
{
	LegacyMessage *m = full_message(), *r = report_message();
	GByteArray *enc = encode(m), *renc = encode(r);
	GByteArray *item = first_field(renc, T_REPORT_ITEM);

	msg_add_report_item(m, "CORP/HQ/ANNA", MSG_REPORT_DELIVERED, MSG_REASON_NONE, "");
	INVALID(m, MSG_ERROR_INVALID, "a normal message carries report lines");
	/* And from the wire. */
	CU_ASSERT_PTR_NOT_NULL_FATAL(item);
	g_byte_array_append(enc, item->data, item->len);
	REFUSED(enc, MSG_ERROR_INVALID, "a normal message carries report lines");
	g_byte_array_unref(item);
	g_byte_array_unref(enc);
	g_byte_array_unref(renc);
	msg_free(m);
	msg_free(r);
}

static void
test_report_without_about_id_refused(void)
{
	LegacyMessage *m = report_message();

	g_clear_pointer(&m->about_id, g_free);
	INVALID(m, MSG_ERROR_MISSING, "the id of the reported message is missing");
	msg_free(m);
}

static void
test_unsafe_attachment_names_refused(void)
{
	const char *bad[] = { "../x", "a/b", "", ".", "..", "a\\b", "/etc/passwd",
		"x\ny", "tab\there", "del\x7f", "esc\x1b[0m", NULL };
	const char *good[] = { "report.pdf", "..x", ".profile", "Gr\x81\xe1" "e.txt", "a b", NULL };
	char longname[MSG_MAX_NAME_LEN + 2];

	for (int i = 0; bad[i]; i++) {
		LegacyMessage *m = full_message();
		MsgAttachment *a = m->attachments->pdata[0];
		EXPECT(!msg_attachment_name_safe(bad[i], strlen(bad[i])),
		    "\"%s\" is not a safe attachment name", bad[i]);
		g_free(a->name);
		a->name = g_strdup(bad[i]);
		INVALID(m, MSG_ERROR_INVALID, "attachment 1 has a name");
		msg_free(m);
	}
	for (int i = 0; good[i]; i++)
		EXPECT(msg_attachment_name_safe(good[i], strlen(good[i])),
		    "\"%s\" is a safe attachment name", good[i]);
	/* A NUL within the given length ends nothing: refused. */
	CU_ASSERT_FALSE(msg_attachment_name_safe("a\0/b", 4));
	/* The name is judged on its length, not on a terminator. */
	CU_ASSERT_TRUE(msg_attachment_name_safe("ok/../../x", 2));
	memset(longname, 'n', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	CU_ASSERT_TRUE(msg_attachment_name_safe(longname, MSG_MAX_NAME_LEN));
	CU_ASSERT_FALSE(msg_attachment_name_safe(longname, MSG_MAX_NAME_LEN + 1));
}

static void
test_non_canonical_addresses_refused(void)
{
	struct { const char *addr; const char *why; } cases[] = {
		{ "corp/hq/anna", "is not in canonical form \"CORP/HQ/ANNA\"" },
		{ "CORP/HQ/ANNA ", "is not in canonical form \"CORP/HQ/ANNA\"" },
		{ "smtp:carol@example.com", "is not in canonical form \"SMTP:carol@example.com\"" },
		{ "SMTP:carol@Example.com", "is not in canonical form \"SMTP:carol@example.com\"" },
		{ "CORP/HQ", "a legacy address is written NET/PO/MAILBOX" },
		{ "carol@example.com", "an Internet address must be written SMTP:local@domain" },
		{ NULL, NULL },
	};

	for (int i = 0; cases[i].addr; i++) {
		LegacyMessage *m = full_message();
		MsgRecipient *r = m->recipients->pdata[1];
		g_free(r->addr);
		r->addr = g_strdup(cases[i].addr);
		INVALID(m, MSG_ERROR_INVALID, cases[i].why);
		msg_free(m);

		m = full_message();
		g_free(m->originator.addr);
		m->originator.addr = g_strdup(cases[i].addr);
		INVALID(m, MSG_ERROR_INVALID, cases[i].why);
		msg_free(m);

		m = full_message();
		msg_add_party(m->cc, cases[i].addr, "x");
		INVALID(m, MSG_ERROR_INVALID, cases[i].why);
		msg_free(m);

		m = report_message();
		msg_add_report_item(m, cases[i].addr, MSG_REPORT_DELIVERED, 0, "");
		INVALID(m, MSG_ERROR_INVALID, cases[i].why);
		msg_free(m);
	}
}

static void
test_other_invalid_fields_refused(void)
{
	LegacyMessage *m;

	m = full_message();
	g_ptr_array_set_size(m->recipients, 0);
	INVALID(m, MSG_ERROR_MISSING, "the message has no recipient");
	msg_free(m);

	m = full_message();
	g_clear_pointer(&m->id, g_free);
	INVALID(m, MSG_ERROR_MISSING, "the message id is missing");
	msg_free(m);

	m = full_message();
	g_free(m->id);
	m->id = g_strdup("has space");
	INVALID(m, MSG_ERROR_INVALID, "the message id may hold only printable ASCII");
	msg_free(m);

	m = full_message();
	g_free(m->subject);
	m->subject = g_strdup("line\r\nBcc: evil");
	INVALID(m, MSG_ERROR_INVALID, "the subject holds control character 0x0d");
	msg_free(m);

	m = full_message();
	g_free(m->codepage);
	m->codepage = g_strdup("CP850;rm");
	INVALID(m, MSG_ERROR_INVALID, "bad codepage name");
	msg_free(m);

	m = full_message();
	m->class = 3;
	INVALID(m, MSG_ERROR_INVALID, "unknown message class 3");
	msg_free(m);

	m = full_message();
	m->requests = 0x04;
	INVALID(m, MSG_ERROR_INVALID, "unknown report request bits 0x04");
	msg_free(m);

	m = full_message();
	msg_add_hop(m, "", 0);
	INVALID(m, MSG_ERROR_MISSING, "a hop name is empty");
	msg_free(m);
}

static void
test_over_limit_message_refused_by_encoder(void)
{
	LegacyMessage *m = full_message();
	GBytes *d = g_bytes_new("x", 1);
	char *subject;

	for (guint i = m->hops->len; i < MSG_MAX_HOPS; i++)
		msg_add_hop(m, "CORP/GW", i);
	CU_ASSERT_TRUE(msg_validate(m, NULL));         /* exactly at the limit */
	msg_add_hop(m, "CORP/GW", 0);
	INVALID(m, MSG_ERROR_LIMIT, "256 hops, over the limit of 255");
	msg_free(m);

	m = full_message();
	for (guint i = m->attachments->len; i <= MSG_MAX_ATTACHMENTS; i++)
		msg_add_attachment(m, "a.bin", d);
	INVALID(m, MSG_ERROR_LIMIT, "257 attachments, over the limit of 256");
	msg_free(m);

	m = full_message();
	subject = g_malloc(MSG_MAX_SUBJECT_LEN + 2);
	memset(subject, 's', MSG_MAX_SUBJECT_LEN + 1);
	subject[MSG_MAX_SUBJECT_LEN + 1] = '\0';
	g_free(m->subject);
	m->subject = subject;
	INVALID(m, MSG_ERROR_LIMIT, "the subject is 999 bytes long, over the limit of 998");
	msg_free(m);
	g_bytes_unref(d);
}

/* ---- decoder refusals ----------------------------------------------------------- */

static void
test_every_truncation_is_refused_or_a_whole_field_prefix(void)
{
	/* A cut inside a field is always TRUNCATED.  A cut exactly between two
	 * top-level fields can leave a well-formed shorter entry (the bundle's
	 * entry length is what frames an entry); such a prefix must then be a
	 * valid message, never half a field. */
	LegacyMessage *msgs[2] = { full_message(), report_message() };

	for (int k = 0; k < 2; k++) {
		GByteArray *enc = encode(msgs[k]);
		GArray *offs = field_offsets(enc);
		guint boundary = 0, accepted = 0;

		for (gsize len = 0; len < enc->len; len++) {
			GError *e = NULL;
			LegacyMessage *d = decode(enc->data, len, &e);
			gboolean at_boundary = FALSE;
			for (guint i = 0; i < offs->len; i++)
				if (g_array_index(offs, gssize, i) == (gssize)len)
					at_boundary = TRUE;
			EXPECT((d == NULL) == (e != NULL), "prefix %zu: an error exactly when refused",
			    len);
			if (!at_boundary) {
				EXPECT(d == NULL && g_error_matches(e, MSG_ERROR, MSG_ERROR_TRUNCATED),
				    "message %d cut at %zu (inside a field) is refused as truncated: %s",
				    k, len, e ? e->message : "(accepted)");
			} else {
				boundary++;
				if (d) {
					accepted++;
					EXPECT(msg_validate(d, NULL), "prefix %zu decodes to a valid "
					    "message", len);
				}
			}
			msg_free(d);
			g_clear_error(&e);
		}
		CU_ASSERT_EQUAL(boundary, offs->len);
		CU_ASSERT_TRUE(accepted < boundary);   /* the empty prefix is refused */
		g_array_unref(offs);
		g_byte_array_unref(enc);
		msg_free(msgs[k]);
	}
}

static void
test_prefix_missing_required_fields_refused(void)
{
	/* Cut right after the id: no class, no codepage, no originator. */
	LegacyMessage *m = full_message();
	GByteArray *enc = encode(m);
	GArray *offs = field_offsets(enc);
	GByteArray *cut = g_byte_array_new();

	g_byte_array_append(cut, enc->data, (guint)g_array_index(offs, gssize, 1));
	REFUSED(cut, MSG_ERROR_MISSING, "the message lacks its class or codepage");
	g_array_unref(offs);
	g_byte_array_unref(cut);
	g_byte_array_unref(enc);
	msg_free(m);
}

static void
test_duplicated_singleton_field_refused(void)
{
	static const guint16 singles[] = { T_ID, T_CLASS, T_PRIORITY, T_SUBMIT_TIME,
		T_REQUESTS, T_FLAGS, T_ABOUT_ID, T_ORIGINATOR, T_CODEPAGE, T_FROM, T_SUBJECT,
		T_DATE, T_BODY, 0 };

	for (int i = 0; singles[i]; i++) {
		LegacyMessage *m = singles[i] == T_ABOUT_ID ? report_message() : full_message();
		GByteArray *enc = encode(m);
		GByteArray *f = first_field(enc, singles[i]);
		char why[64];

		CU_ASSERT_PTR_NOT_NULL_FATAL(f);
		g_byte_array_append(enc, f->data, f->len);
		g_snprintf(why, sizeof why, "field %u appears twice", singles[i]);
		REFUSED(enc, MSG_ERROR_INVALID, why);
		g_byte_array_unref(f);
		g_byte_array_unref(enc);
		msg_free(m);
	}
}

static void
test_repeatable_fields_may_repeat(void)
{
	/* Recipients, hops, To, Cc, attachments and report lines are lists. */
	static const guint16 lists[] = { T_RECIPIENT, T_HOP, T_TO, T_CC, T_ATTACHMENT,
		T_REPORT_ITEM, 0 };

	for (int i = 0; lists[i]; i++) {
		LegacyMessage *m = lists[i] == T_REPORT_ITEM ? report_message() : full_message(), *d;
		GByteArray *enc = encode(m);
		GByteArray *f = first_field(enc, lists[i]);
		CU_ASSERT_PTR_NOT_NULL_FATAL(f);
		g_byte_array_append(enc, f->data, f->len);
		d = decode(enc->data, enc->len, NULL);
		EXPECT(d != NULL, "a second field %u is accepted", lists[i]);
		if (d)
			EXPECT(d->recipients->len + d->hops->len + d->to->len + d->cc->len +
			    d->attachments->len + d->report_items->len ==
			    m->recipients->len + m->hops->len + m->to->len + m->cc->len +
			    m->attachments->len + m->report_items->len + 1,
			    "field %u adds one list entry", lists[i]);
		msg_free(d);
		g_byte_array_unref(f);
		g_byte_array_unref(enc);
		msg_free(m);
	}
}

static void
test_duplicated_string_inside_a_group_refused(void)
{
	GByteArray *enc, *g;
	LegacyMessage *m = full_message();

	enc = encode(m);
	g = g_byte_array_new();
	put_str(g, 1, "CORP/HQ/EVE");
	put_str(g, 1, "CORP/HQ/MALLORY");
	put_field(g, 3, "\x01", 1);
	put_group(enc, T_RECIPIENT, g);
	REFUSED(enc, MSG_ERROR_INVALID, "an address appears twice");
	g_byte_array_unref(g);
	g_byte_array_unref(enc);

	enc = encode(m);
	g = g_byte_array_new();
	put_str(g, 1, "a.bin");
	put_str(g, 1, "b.bin");
	put_field(g, 2, "x", 1);
	put_group(enc, T_ATTACHMENT, g);
	REFUSED(enc, MSG_ERROR_INVALID, "an attachment name appears twice");
	g_byte_array_unref(g);
	g_byte_array_unref(enc);

	enc = encode(m);
	g = g_byte_array_new();
	put_str(g, 1, "a.bin");
	put_field(g, 2, "x", 1);
	put_field(g, 2, "y", 1);
	put_group(enc, T_ATTACHMENT, g);
	REFUSED(enc, MSG_ERROR_INVALID, "an attachment has two data fields");
	g_byte_array_unref(g);
	g_byte_array_unref(enc);
	msg_free(m);
}

/* A report line for CORP/HQ/ANNA with the status fields statuses (one
 * byte each) is refused with code and why. */
#define REPORT_LINE_REFUSED(statuses, code, why) \
	report_line_refused_at(__LINE__, statuses, sizeof statuses - 1, code, why)

static void
report_line_refused_at(int line, const char *statuses, gsize n, MsgError code, const char *why)
{
	LegacyMessage *m = report_message();
	GByteArray *enc = encode(m), *g = g_byte_array_new();

	put_str(g, 1, "CORP/HQ/ANNA");
	for (gsize i = 0; i < n; i++)
		put_field(g, 2, statuses + i, 1);
	put_group(enc, T_REPORT_ITEM, g);
	refused_at(line, enc, code, why);
	g_byte_array_unref(g);
	g_byte_array_unref(enc);
	msg_free(m);
}

static void
test_report_line_with_two_statuses_refused(void)
{
	REPORT_LINE_REFUSED("\x00\x01", MSG_ERROR_INVALID, "a report line has two statuses");
}

/* docs/bundle-format.md 7.4: 0 delivered, 1 not delivered, 2 delayed; a
 * status this version does not know is refused, never read as another. */
static void
test_report_line_with_unknown_status_refused(void)
{
	REPORT_LINE_REFUSED("\x03", MSG_ERROR_INVALID, "unknown report status 3");
}

static void
test_repeated_number_in_a_group_refused(void)
{
	/* docs/bundle-format.md 7.4: two readers must never disagree about who
	 * delivers (SPEC 3.1), so a second responsibility flag, hop time or
	 * report reason in one group is refused, not "first" or "last wins". */
	LegacyMessage *m = report_message();
	GByteArray *enc, *g;
	static const guint8 t1[8] = { 0, 0, 0, 0, 0, 0, 0, 9 };
	static const guint8 t2[8] = { 0, 0, 0, 0, 0, 0, 0, 1 };

	enc = encode(m);
	g = g_byte_array_new();
	put_str(g, 1, "CORP/HQ/EVE");
	put_field(g, 3, "\x00", 1);
	put_field(g, 3, "\x01", 1);
	put_group(enc, T_RECIPIENT, g);
	REFUSED(enc, MSG_ERROR_INVALID, "two responsibility flags");
	g_byte_array_unref(g);
	g_byte_array_unref(enc);

	enc = encode(m);
	g = g_byte_array_new();
	put_str(g, 1, "CORP/X");
	put_field(g, 2, t1, 8);
	put_field(g, 2, t2, 8);
	put_group(enc, T_HOP, g);
	REFUSED(enc, MSG_ERROR_INVALID, "a hop has two times");
	g_byte_array_unref(g);
	g_byte_array_unref(enc);

	enc = encode(m);
	g = g_byte_array_new();
	put_str(g, 1, "CORP/HQ/EVE");
	put_field(g, 2, "\x01", 1);
	put_field(g, 3, "\x00\x01", 2);
	put_field(g, 3, "\x00\x05", 2);
	put_group(enc, T_REPORT_ITEM, g);
	REFUSED(enc, MSG_ERROR_INVALID, "a report line has two reasons");
	g_byte_array_unref(g);
	g_byte_array_unref(enc);
	msg_free(m);
}

static void
test_absent_responsibility_flag_means_not_responsible(void)
{
	/* SPEC 3.1: an unknown flag never causes a delivery. */
	LegacyMessage *m = full_message(), *d;
	GByteArray *enc = encode(m), *g = g_byte_array_new();

	put_str(g, 1, "CORP/HQ/EVE");
	put_group(enc, T_RECIPIENT, g);
	d = decode(enc->data, enc->len, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	CU_ASSERT_EQUAL_FATAL(d->recipients->len, m->recipients->len + 1);
	CU_ASSERT_FALSE(((MsgRecipient *)g_ptr_array_index(d->recipients,
	    d->recipients->len - 1))->responsible);
	CU_ASSERT_STRING_EQUAL(((MsgRecipient *)g_ptr_array_index(d->recipients,
	    d->recipients->len - 1))->name, "");
	msg_free(d);
	g_byte_array_unref(g);
	g_byte_array_unref(enc);
	msg_free(m);
}

static void
test_unknown_required_tag_refused(void)
{
	static const guint16 tags[] = { 0, 20, 21, 0x7fff, 0x4000 };
	LegacyMessage *m = full_message();

	for (guint i = 0; i < G_N_ELEMENTS(tags); i++) {
		GByteArray *enc = encode(m);
		char why[64];
		put_field(enc, tags[i], "abc", 3);
		g_snprintf(why, sizeof why, "unknown field %u", tags[i]);
		REFUSED(enc, MSG_ERROR_INVALID, why);
		g_byte_array_unref(enc);
	}
	/* Inside a group as well. */
	{
		GByteArray *enc = encode(m), *g = g_byte_array_new();
		put_str(g, 1, "CORP/HQ/EVE");
		put_field(g, 9, "z", 1);
		put_group(enc, T_RECIPIENT, g);
		REFUSED(enc, MSG_ERROR_INVALID, "a recipient: unknown field 9");
		g_byte_array_unref(g);
		g_byte_array_unref(enc);
	}
	msg_free(m);
}

static void
test_unknown_optional_tag_skipped(void)
{
	LegacyMessage *m = full_message(), *d;
	GByteArray *enc = encode(m), *g = g_byte_array_new();
	GByteArray *plain = encode(m);

	/* At the top, first and last, and inside a group. */
	g_byte_array_prepend(enc, (const guint8 *)"\x80\x01\x00\x00\x00\x02hi", 8);
	put_field(enc, 0xffff, "\x00\x00\x00", 3);
	put_field(enc, 0x8000 | T_ID, "ignored", 7);
	put_str(g, 0x8042, "future");
	put_str(g, 1, "CORP/HQ/EVE");
	put_field(g, 3, "\x01", 1);
	put_field(g, 0x8001, NULL, 0);
	put_group(enc, T_RECIPIENT, g);
	msg_add_recipient(m, "CORP/HQ/EVE", "", TRUE);

	d = decode(enc->data, enc->len, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	assert_same_message(m, d);
	/* Re-encoded, the unknown fields are gone: only known ones remain. */
	{
		GByteArray *again = encode(d);
		CU_ASSERT_TRUE(again->len > plain->len && again->len < enc->len);
		g_byte_array_unref(again);
	}
	msg_free(d);
	msg_free(m);
	g_byte_array_unref(g);
	g_byte_array_unref(enc);
	g_byte_array_unref(plain);
}

/* enc plus n copies of a group field with tag made from inner. */
static GByteArray *
with_copies(const LegacyMessage *m, guint16 tag, const GByteArray *inner, guint n)
{
	GByteArray *enc = encode(m);

	for (guint i = 0; i < n; i++)
		put_group(enc, tag, inner);
	return enc;
}

static void
test_over_limit_counts_refused_by_decoder(void)
{
	LegacyMessage *m = full_message(), *d;
	GByteArray *g, *enc;
	static const guint8 t[8] = { 0 };

	/* Hops: 255 in all is fine, 256 refused. */
	g = g_byte_array_new();
	put_str(g, 1, "CORP/GW");
	put_field(g, 2, t, 8);
	enc = with_copies(m, T_HOP, g, MSG_MAX_HOPS - m->hops->len);
	d = decode(enc->data, enc->len, NULL);
	CU_ASSERT_PTR_NOT_NULL(d);
	if (d)
		CU_ASSERT_EQUAL(d->hops->len, MSG_MAX_HOPS);
	msg_free(d);
	put_group(enc, T_HOP, g);
	REFUSED(enc, MSG_ERROR_LIMIT, "more than 255 hops");
	g_byte_array_unref(enc);
	g_byte_array_unref(g);

	/* Recipients: 10000 fine, 10001 refused. */
	g = g_byte_array_new();
	put_str(g, 1, "CORP/HQ/X");
	put_field(g, 3, "\x01", 1);
	enc = with_copies(m, T_RECIPIENT, g, MSG_MAX_RECIPIENTS - m->recipients->len);
	d = decode(enc->data, enc->len, NULL);
	CU_ASSERT_PTR_NOT_NULL(d);
	msg_free(d);
	put_group(enc, T_RECIPIENT, g);
	REFUSED(enc, MSG_ERROR_LIMIT, "more than 10000 recipients");
	g_byte_array_unref(enc);
	g_byte_array_unref(g);

	/* Attachments: 257 refused. */
	g = g_byte_array_new();
	put_str(g, 1, "a.bin");
	put_field(g, 2, "\0", 1);
	enc = with_copies(m, T_ATTACHMENT, g, MSG_MAX_ATTACHMENTS + 1 - m->attachments->len);
	REFUSED(enc, MSG_ERROR_LIMIT, "more than 256 attachments");
	g_byte_array_unref(enc);
	g_byte_array_unref(g);

	/* Report lines (in a report): 10000 fine, 10001 refused. */
	{
		LegacyMessage *r = report_message();
		g = g_byte_array_new();
		put_str(g, 1, "CORP/HQ/X");
		put_field(g, 2, "\x01", 1);
		enc = with_copies(r, T_REPORT_ITEM, g, MSG_MAX_REPORT_ITEMS - r->report_items->len);
		d = decode(enc->data, enc->len, NULL);
		CU_ASSERT_PTR_NOT_NULL(d);
		msg_free(d);
		put_group(enc, T_REPORT_ITEM, g);
		REFUSED(enc, MSG_ERROR_LIMIT, "more than 10000 report lines");
		g_byte_array_unref(enc);
		g_byte_array_unref(g);
		msg_free(r);
	}

	/* To and Cc together: 10000 fine, 10001 refused. */
	g = g_byte_array_new();
	put_str(g, 1, "CORP/HQ/X");
	enc = with_copies(m, T_CC, g, MSG_MAX_DISPLAY - m->to->len - m->cc->len);
	d = decode(enc->data, enc->len, NULL);
	CU_ASSERT_PTR_NOT_NULL(d);
	msg_free(d);
	put_group(enc, T_TO, g);
	REFUSED(enc, MSG_ERROR_LIMIT, "more than 10000 To and Cc entries");
	g_byte_array_unref(enc);
	g_byte_array_unref(g);
	msg_free(m);
}

static void
test_over_limit_lengths_refused_by_decoder(void)
{
	LegacyMessage *m = full_message();
	GByteArray *enc;
	char big[MSG_MAX_TEXT_LEN + 2];
	guint8 *huge;
	GError *e = NULL;

	memset(big, 'x', sizeof big);
	/* Strip the subject, then add one that is one byte too long. */
	g_free(m->subject);
	m->subject = NULL;
	enc = g_byte_array_new();
	{
		/* Rebuild the entry without its (empty) subject field. */
		GByteArray *full = encode(m);
		gsize at = 0;
		while (at < full->len) {
			guint32 l = (guint32)full->data[at + 2] << 24 | (guint32)full->data[at + 3] << 16 |
			    (guint32)full->data[at + 4] << 8 | full->data[at + 5];
			guint16 t = (guint16)(full->data[at] << 8 | full->data[at + 1]);
			if (t != T_SUBJECT)
				g_byte_array_append(enc, full->data + at, 6 + l);
			at += 6 + l;
		}
		g_byte_array_unref(full);
	}
	{
		/* Exactly at the limit is accepted. */
		GByteArray *e2 = g_byte_array_new();
		LegacyMessage *d;
		g_byte_array_append(e2, enc->data, enc->len);
		put_field(e2, T_SUBJECT, big, MSG_MAX_SUBJECT_LEN);
		d = decode(e2->data, e2->len, NULL);
		CU_ASSERT_PTR_NOT_NULL(d);
		if (d)
			CU_ASSERT_EQUAL(strlen(d->subject), MSG_MAX_SUBJECT_LEN);
		msg_free(d);
		g_byte_array_unref(e2);
	}
	put_field(enc, T_SUBJECT, big, MSG_MAX_SUBJECT_LEN + 1);
	REFUSED(enc, MSG_ERROR_LIMIT, "the subject is 999 bytes, over the limit of 998");
	g_byte_array_unref(enc);
	msg_free(m);

	/* An entry over MSG_MAX_SIZE is refused before it is read. */
	huge = g_malloc0((gsize)MSG_MAX_SIZE + 1);
	CU_ASSERT_PTR_NULL(msg_decode(huge, (size_t)MSG_MAX_SIZE + 1, &e));
	CU_ASSERT_TRUE(g_error_matches(e, MSG_ERROR, MSG_ERROR_LIMIT));
	g_clear_error(&e);
	g_free(huge);
}

static void
test_bad_values_refused_by_decoder(void)
{
	LegacyMessage *m = full_message();
	GByteArray *enc, *g;

	/* A NUL inside a string field. */
	enc = encode(m);
	g = g_byte_array_new();
	put_field(g, 1, "CORP/HQ/A\0B", 11);
	put_group(enc, T_TO, g);
	REFUSED(enc, MSG_ERROR_INVALID, "an address holds a NUL byte");
	g_byte_array_unref(g);
	g_byte_array_unref(enc);

	/* A responsibility flag that is neither 0 nor 1. */
	enc = encode(m);
	g = g_byte_array_new();
	put_str(g, 1, "CORP/HQ/EVE");
	put_field(g, 3, "\x02", 1);
	put_group(enc, T_RECIPIENT, g);
	REFUSED(enc, MSG_ERROR_INVALID, "the responsibility flag is neither 0 nor 1");
	g_byte_array_unref(g);
	g_byte_array_unref(enc);

	/* A recipient group without an address. */
	enc = encode(m);
	g = g_byte_array_new();
	put_str(g, 2, "Nobody");
	put_group(enc, T_RECIPIENT, g);
	REFUSED(enc, MSG_ERROR_MISSING, "a recipient has no address");
	g_byte_array_unref(g);
	g_byte_array_unref(enc);

	/* A report line without its status. */
	{
		LegacyMessage *r = report_message();
		enc = encode(r);
		g = g_byte_array_new();
		put_str(g, 1, "CORP/HQ/EVE");
		put_field(g, 3, "\x00\x01", 2);
		put_group(enc, T_REPORT_ITEM, g);
		REFUSED(enc, MSG_ERROR_MISSING, "a report line lacks its recipient or status");
		g_byte_array_unref(g);
		g_byte_array_unref(enc);
		msg_free(r);
	}

	/* A non-canonical address that arrives in an entry. */
	enc = encode(m);
	g = g_byte_array_new();
	put_str(g, 1, "corp/hq/eve");
	put_group(enc, T_CC, g);
	REFUSED(enc, MSG_ERROR_INVALID, "is not in canonical form");
	g_byte_array_unref(g);
	g_byte_array_unref(enc);

	/* A group whose inner field runs past the group. */
	enc = encode(m);
	put_field(enc, T_TO, "\x00\x01\x00\x00\x00\x09" "CORP", 10);
	REFUSED(enc, MSG_ERROR_TRUNCATED, "a To or Cc entry: field 1 says 9 bytes but only 4");
	g_byte_array_unref(enc);

	/* Unsafe attachment name from the wire. */
	enc = encode(m);
	g = g_byte_array_new();
	put_str(g, 1, "../../.ssh/authorized_keys");
	put_field(g, 2, "k", 1);
	put_group(enc, T_ATTACHMENT, g);
	REFUSED(enc, MSG_ERROR_INVALID, "attachment 3 has a name");
	g_byte_array_unref(g);
	g_byte_array_unref(enc);
	msg_free(m);
}

static void
test_bad_fixed_width_values_refused_by_decoder(void)
{
	/* Class 3, unknown flag bits, a 7-byte time. */
	struct { guint16 tag; const char *value; guint32 len; MsgError code; const char *why; }
	cases[] = {
		{ T_CLASS, "\x03", 1, MSG_ERROR_INVALID, "unknown message class 3" },
		{ T_CLASS, "\x00\x00", 2, MSG_ERROR_INVALID, "the class must be 1 byte, not 2" },
		{ T_FLAGS, "\x02", 1, MSG_ERROR_INVALID, "unknown flag bits 0x02" },
		{ T_PRIORITY, "\x09", 1, MSG_ERROR_INVALID, "unknown priority 9" },
		{ T_SUBMIT_TIME, "1234567", 7, MSG_ERROR_INVALID,
		  "the submit time must be 8 bytes, not 7" },
		{ T_CODEPAGE, "", 0, MSG_ERROR_INVALID, "the codepage name is missing" },
	};

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		LegacyMessage *m = full_message();
		GByteArray *full = encode(m), *enc = g_byte_array_new();
		gsize at = 0;
		/* Replace the field with the bad value, in place. */
		while (at < full->len) {
			guint32 l = (guint32)full->data[at + 2] << 24 | (guint32)full->data[at + 3] << 16 |
			    (guint32)full->data[at + 4] << 8 | full->data[at + 5];
			guint16 t = (guint16)(full->data[at] << 8 | full->data[at + 1]);
			if (t == cases[i].tag)
				put_field(enc, t, cases[i].value, cases[i].len);
			else
				g_byte_array_append(enc, full->data + at, 6 + l);
			at += 6 + l;
		}
		REFUSED(enc, cases[i].code, cases[i].why);
		g_byte_array_unref(enc);
		g_byte_array_unref(full);
		msg_free(m);
	}
}

static void
test_names_of_classes_and_reasons(void)
{
	CU_ASSERT_STRING_EQUAL(msg_class_name(MSG_CLASS_NORMAL), "normal");
	CU_ASSERT_STRING_EQUAL(msg_class_name(MSG_CLASS_NDR), "non-delivery report");
	CU_ASSERT_STRING_EQUAL(msg_class_name(MSG_CLASS_RECEIPT), "receipt");
	CU_ASSERT_STRING_EQUAL(msg_reason_name(MSG_REASON_UNKNOWN_RECIPIENT),
	    "unknown recipient");
	CU_ASSERT_STRING_EQUAL(msg_reason_name(MSG_REASON_LOOP), "hop limit reached (loop)");
	CU_ASSERT_STRING_EQUAL(msg_reason_name(12345), "other");
}

static const CuTest tests[] = {
	{ "full message survives encode -> decode", test_full_message_survives_encode_decode },
	{ "report message survives encode -> decode",
	  test_report_message_survives_encode_decode },
	{ "receipt with every priority and request survives",
	  test_receipt_with_every_priority_and_request_survives },
	{ "encoding of a decoded message is identical",
	  test_encoding_of_decoded_message_is_identical },
	{ "message without optional content survives",
	  test_message_without_optional_content_survives },
	{ "msg_copy is deep and equal", test_copy_is_deep_and_equal },
	{ "new ids are unique, name the node and validate",
	  test_new_ids_are_unique_and_name_the_node },
	{ "report without no-report marker is refused",
	  test_report_without_no_report_marker_refused },
	{ "report without about id is refused", test_report_without_about_id_refused },
	{ "normal message with report lines is refused",
	  test_normal_message_with_report_lines_refused },
	{ "unsafe attachment names are refused", test_unsafe_attachment_names_refused },
	{ "non-canonical addresses are refused", test_non_canonical_addresses_refused },
	{ "other invalid fields are refused", test_other_invalid_fields_refused },
	{ "over-limit message is refused by the encoder",
	  test_over_limit_message_refused_by_encoder },
	{ "every truncation is refused or a whole-field prefix",
	  test_every_truncation_is_refused_or_a_whole_field_prefix },
	{ "prefix missing required fields is refused",
	  test_prefix_missing_required_fields_refused },
	{ "duplicated singleton field is refused", test_duplicated_singleton_field_refused },
	{ "repeatable fields may repeat", test_repeatable_fields_may_repeat },
	{ "duplicated string inside a group is refused",
	  test_duplicated_string_inside_a_group_refused },
	{ "report line with two statuses is refused", test_report_line_with_two_statuses_refused },
	{ "report line with an unknown status is refused", test_report_line_with_unknown_status_refused },
	{ "repeated number in a group refused", test_repeated_number_in_a_group_refused },
	{ "absent responsibility flag means not responsible",
	  test_absent_responsibility_flag_means_not_responsible },
	{ "unknown required tag is refused", test_unknown_required_tag_refused },
	{ "unknown optional (0x8000) tag is skipped", test_unknown_optional_tag_skipped },
	{ "over-limit counts are refused by the decoder",
	  test_over_limit_counts_refused_by_decoder },
	{ "over-limit lengths are refused by the decoder",
	  test_over_limit_lengths_refused_by_decoder },
	{ "bad values are refused by the decoder", test_bad_values_refused_by_decoder },
	{ "bad fixed-width values are refused by the decoder",
	  test_bad_fixed_width_values_refused_by_decoder },
	{ "names of classes and reasons", test_names_of_classes_and_reasons },
	{ NULL, NULL },
};

int
main(void)
{
	return cu_run("message", tests);
}
