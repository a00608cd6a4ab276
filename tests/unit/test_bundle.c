/* test_bundle.c - unit tests of postoffice/bundle.c and postoffice/keyfile.c.
 *
 * Checks bundle format v1: the byte layout of the header and trailer
 * (magic 8, version u16 @8, source 22 @10, dest 22 @32, seq u64 @54,
 * created u64 @62, count u32 @70, payload length u64 @74, compressed length
 * u64 @82, payload @90, then CRC-32 and HMAC-SHA256), a round trip of
 * message and directory entries, and the reader's documented order of checks
 * with one distinct error each: truncated, bad magic, unknown version, over a
 * limit, bad HMAC, bad CRC, bad payload.  To reach the later checks the test
 * builds bundles itself and seals them with its own CRC-32 (zlib) and
 * HMAC-SHA256 (OpenSSL EVP_Q_mac), independent of the code under test.
 * Also: decoding without a key skips only the HMAC; file names come from
 * source, destination and sequence number only; bundle_write is atomic; key
 * files are created 0600 with 64 hex digits and short ones are refused.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "bundle.h"
#include "cu_run.h"
#include "keyfile.h"
#include "message.h"

/* Header offsets of docs/bundle-format.md, "Layout". */
enum {
	OFF_VERSION = 8, OFF_SOURCE = 10, OFF_DEST = 32, OFF_SEQ = 54, OFF_CREATED = 62,
	OFF_COUNT = 70, OFF_PAYLOAD_LEN = 74, OFF_COMPRESSED_LEN = 82, OFF_PAYLOAD = 90,
};
#define NO_ERROR (-1)
#define CREATED 1704164645

/* ---- keys, messages, bundles ----------------------------------------------- */

static GBytes *
key_a(void)
{
	static const char k[] = "0123456789abcdef0123456789ABCDEF";

	return g_bytes_new_static(k, 32);
}

static GBytes *
key_b(void)
{
	static const char k[] = "0123456789abcdef0123456789ABCDEG";   /* last byte differs */

	return g_bytes_new_static(k, 32);
}

static LegacyMessage *
small_message(int i)
{
	LegacyMessage *m = msg_new();
	static const guint8 bin[] = { 0x00, 0xff, 0x00, 0x10, 0x89, 'P', 'N', 'G' };
	GBytes *d = g_bytes_new(bin, sizeof bin);
	char *body;

	m->id = g_strdup_printf("CORP/HQ:20240102.%08d", i);
	m->originator.addr = g_strdup("CORP/HQ/JSMITH");
	m->originator.name = g_strdup("John Smith");
	msg_add_recipient(m, "CORP/SALES/BOB", "Bob", TRUE);
	msg_add_recipient(m, "SMTP:carol@example.com", "", TRUE);
	msg_add_recipient(m, "CORP/HQ/ANNA", "", FALSE);
	msg_add_hop(m, "CORP/HQ", CREATED);
	m->codepage = g_strdup("CP850");
	m->subject = g_strdup_printf("Message %d: Gr\x81\xe1" "e", i);
	body = g_strdup_printf("Body of message %d\r\n", i);
	m->body = g_bytes_new_take(body, strlen(body));
	msg_add_attachment(m, "logo.png", d);
	g_bytes_unref(d);
	return m;
}

/* A bundle CORP/HQ -> CORP/GW, seq 42, of three messages and two directory
 * entries, interleaved. */
static Bundle *
sample_bundle(void)
{
	Bundle *b = bundle_new("CORP/HQ", "CORP/GW", 42);
	static const char dir1[] = "<sync po=\"CORP/HQ\"><user mailbox=\"JSMITH\"/></sync>";
	static const guint8 dir2[] = { 0x00, 0x01, 0x02, 0x00, 0xfe };

	b->created = CREATED;
	for (int i = 1; i <= 3; i++) {
		LegacyMessage *m = small_message(i);
		CU_ASSERT_TRUE(bundle_add_message(b, m, NULL));
		msg_free(m);
		if (i == 1) {
			GBytes *d = g_bytes_new_static(dir1, sizeof dir1 - 1);
			bundle_add_entry(b, BUNDLE_ENTRY_DIRECTORY, d);
			g_bytes_unref(d);
		} else if (i == 2) {
			GBytes *d = g_bytes_new_static(dir2, sizeof dir2);
			bundle_add_entry(b, BUNDLE_ENTRY_DIRECTORY, d);
			g_bytes_unref(d);
		}
	}
	return b;
}

/* The encoding of b as a mutable byte array. */
static GByteArray *
encoded(Bundle *b, GBytes *key, int level)
{
	GError *e = NULL;
	GBytes *bytes = bundle_encode(b, key, level, &e);
	GByteArray *out = g_byte_array_new();
	gsize n;
	const guint8 *d;

	if (!bytes) {
		EXPECT(FALSE, "bundle_encode of a valid bundle: %s", e->message);
		g_error_free(e);
		return out;
	}
	d = g_bytes_get_data(bytes, &n);
	g_byte_array_append(out, d, (guint)n);
	g_bytes_unref(bytes);
	return out;
}

static GByteArray *
sample_encoded(GBytes *key)
{
	Bundle *b = sample_bundle();
	GByteArray *out = encoded(b, key, 6);

	bundle_free(b);
	return out;
}

static void
be_put(guint8 *p, guint64 v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		p[i] = v & 0xff;
}

static guint64
be_get(const guint8 *p, int n)
{
	guint64 v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* HMAC-SHA256 computed by the test itself. */
static void
test_hmac(GBytes *key, const guint8 *data, size_t len, guint8 out[32])
{
	gsize klen;
	const void *k = g_bytes_get_data(key, &klen);
	size_t outlen = 0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, k, klen,
	    data, len, out, 32, &outlen));
	CU_ASSERT_EQUAL_FATAL(outlen, 32);
}

/* Recompute the trailer of buf from its header's compressed length: the CRC
 * too when crc is TRUE, and the HMAC with key. */
static void
reseal(GByteArray *buf, GBytes *key, gboolean crc)
{
	guint64 clen = be_get(buf->data + OFF_COMPRESSED_LEN, 8);
	guint8 *trailer = buf->data + OFF_PAYLOAD + clen;

	CU_ASSERT_EQUAL_FATAL(buf->len, OFF_PAYLOAD + clen + BUNDLE_TRAILER_LEN);
	if (crc)
		be_put(trailer, crc32(crc32(0L, Z_NULL, 0), buf->data + OFF_PAYLOAD, (uInt)clen), 4);
	test_hmac(key, buf->data, buf->len - BUNDLE_HMAC_LEN, trailer + 4);
}

/* Append a payload entry: kind (u8), length (u32), data. */
static void
add_entry(GByteArray *payload, guint8 kind, const void *data, guint32 len)
{
	guint8 h[5];

	h[0] = kind;
	be_put(h + 1, len, 4);
	g_byte_array_append(payload, h, 5);
	if (len)
		g_byte_array_append(payload, data, len);
}

static GByteArray *
deflated(const guint8 *data, size_t len)
{
	GByteArray *out = g_byte_array_new();
	uLongf clen = compressBound(len);

	g_byte_array_set_size(out, (guint)clen);
	CU_ASSERT_EQUAL_FATAL(compress2(out->data, &clen, data, len, 6), Z_OK);
	g_byte_array_set_size(out, (guint)clen);
	return out;
}

/* A whole bundle CORP/HQ -> CORP/GW, seq 1, built by the test around the
 * given compressed bytes, with a header saying plen and count, a correct
 * CRC and an HMAC with key. */
static GByteArray *
craft(const guint8 *comp, size_t clen, guint64 plen, guint32 count, GBytes *key)
{
	GByteArray *b = g_byte_array_new();

	g_byte_array_set_size(b, OFF_PAYLOAD);
	memset(b->data, 0, OFF_PAYLOAD);
	memcpy(b->data, BUNDLE_MAGIC, BUNDLE_MAGIC_LEN);
	be_put(b->data + OFF_VERSION, 1, 2);
	memcpy(b->data + OFF_SOURCE, "CORP/HQ", 7);
	memcpy(b->data + OFF_DEST, "CORP/GW", 7);
	be_put(b->data + OFF_SEQ, 1, 8);
	be_put(b->data + OFF_CREATED, CREATED, 8);
	be_put(b->data + OFF_COUNT, count, 4);
	be_put(b->data + OFF_PAYLOAD_LEN, plen, 8);
	be_put(b->data + OFF_COMPRESSED_LEN, clen, 8);
	g_byte_array_append(b, comp, (guint)clen);
	g_byte_array_set_size(b, (guint)(OFF_PAYLOAD + clen + BUNDLE_TRAILER_LEN));
	reseal(b, key, TRUE);
	return b;
}

/* A crafted bundle holding exactly the entries of payload. */
static GByteArray *
craft_payload(const GByteArray *payload, guint32 count, GBytes *key)
{
	GByteArray *z = deflated(payload->data, payload->len);
	GByteArray *b = craft(z->data, z->len, payload->len, count, key);

	g_byte_array_unref(z);
	return b;
}

/* bundle_decode on an exact-size heap copy; the error code, or NO_ERROR. */
static int
decode_code(const guint8 *data, size_t len, GBytes *key, char **message)
{
	guint8 *copy = g_memdup2(data, len ? len : 1);
	GError *e = NULL;
	Bundle *b = bundle_decode(copy, len, key, &e);
	int code = NO_ERROR;

	g_free(copy);
	if (b) {
		CU_ASSERT_PTR_NULL(e);
		bundle_free(b);
	} else {
		CU_ASSERT_PTR_NOT_NULL_FATAL(e);
		CU_ASSERT_EQUAL(e->domain, BUNDLE_ERROR);
		/* The message leads with the name of the check that failed. */
		CU_ASSERT_TRUE(g_str_has_prefix(e->message, bundle_error_name(e->code)));
		code = e->code;
		if (message)
			*message = g_strdup(e->message);
		g_error_free(e);
	}
	return code;
}

/* Decode buf with key; expect error code (or NO_ERROR) and a message with why. */
#define DECODES_AS(buf, key, code, why) decodes_as_at(__LINE__, buf, key, code, why)

static void
decodes_as_at(int line, const GByteArray *buf, GBytes *key, int code, const char *why)
{
	char *msg = NULL;
	int got = decode_code(buf->data, buf->len, key, &msg);

	expect_at(got == code, line, "expected \"%s\" (%s), got \"%s\": %s",
	    code == NO_ERROR ? "accepted" : bundle_error_name(code), why,
	    got == NO_ERROR ? "accepted" : bundle_error_name(got), msg ? msg : "");
	if (msg && why)
		expect_at(strstr(msg, why) != NULL, line, "the error says \"%s\": %s", why, msg);
	g_free(msg);
}

/* ---- layout and round trip -------------------------------------------------- */

static void
test_round_trip_keeps_every_entry_and_header_field(void)
{
	Bundle *b = sample_bundle(), *d;
	GBytes *key = key_a();
	GByteArray *enc = encoded(b, key, 6);
	GError *e = NULL;

	d = bundle_decode(enc->data, enc->len, key, &e);
	CU_ASSERT_PTR_NULL(e);
	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	CU_ASSERT_STRING_EQUAL(d->source, "CORP/HQ");
	CU_ASSERT_STRING_EQUAL(d->dest, "CORP/GW");
	CU_ASSERT_EQUAL(d->seq, 42);
	CU_ASSERT_EQUAL(d->created, CREATED);
	CU_ASSERT_TRUE(d->hmac_checked);
	CU_ASSERT_EQUAL(d->payload_len, b->payload_len);
	CU_ASSERT_EQUAL(d->compressed_len, b->compressed_len);
	CU_ASSERT_EQUAL(d->crc, b->crc);
	CU_ASSERT_EQUAL(memcmp(d->hmac, b->hmac, BUNDLE_HMAC_LEN), 0);
	CU_ASSERT_EQUAL_FATAL(d->entries->len, 5);
	for (guint i = 0; i < 5; i++) {
		BundleEntry *x = b->entries->pdata[i], *y = d->entries->pdata[i];
		CU_ASSERT_EQUAL(x->kind, y->kind);
		CU_ASSERT_TRUE(g_bytes_equal(x->data, y->data));
	}
	CU_ASSERT_EQUAL(((BundleEntry *)d->entries->pdata[1])->kind, BUNDLE_ENTRY_DIRECTORY);
	/* The messages come back whole. */
	for (guint i = 0, n = 0; i < 5; i++) {
		LegacyMessage *m;
		if (((BundleEntry *)d->entries->pdata[i])->kind != BUNDLE_ENTRY_MESSAGE)
			continue;
		n++;
		m = bundle_message(d, i, NULL);
		CU_ASSERT_PTR_NOT_NULL_FATAL(m);
		{
			char *id = g_strdup_printf("CORP/HQ:20240102.%08u", n);
			CU_ASSERT_STRING_EQUAL(m->id, id);
			g_free(id);
		}
		CU_ASSERT_EQUAL(m->recipients->len, 3);
		CU_ASSERT_FALSE(((MsgRecipient *)m->recipients->pdata[2])->responsible);
		CU_ASSERT_EQUAL(g_bytes_get_size(((MsgAttachment *)m->attachments->pdata[0])->data),
		    8);
		msg_free(m);
	}
	bundle_free(d);
	bundle_free(b);
	g_byte_array_unref(enc);
	g_bytes_unref(key);
}

static void
test_header_layout_matches_the_format(void)
{
	Bundle *b = sample_bundle();
	GBytes *key = key_a();
	GByteArray *enc = encoded(b, key, 6);
	const guint8 *p = enc->data;
	guint64 clen;
	guint8 mac[32];
	static const guint8 zero[22] = { 0 };

	CU_ASSERT_FATAL(enc->len > OFF_PAYLOAD + BUNDLE_TRAILER_LEN);
	CU_ASSERT_EQUAL(memcmp(p, "\x89PGB\r\n\x1a\n", 8), 0);
	CU_ASSERT_EQUAL(be_get(p + OFF_VERSION, 2), 1);
	CU_ASSERT_EQUAL(memcmp(p + OFF_SOURCE, "CORP/HQ", 7), 0);
	CU_ASSERT_EQUAL(memcmp(p + OFF_SOURCE + 7, zero, 22 - 7), 0);   /* NUL padded */
	CU_ASSERT_EQUAL(memcmp(p + OFF_DEST, "CORP/GW", 7), 0);
	CU_ASSERT_EQUAL(memcmp(p + OFF_DEST + 7, zero, 22 - 7), 0);
	CU_ASSERT_EQUAL(be_get(p + OFF_SEQ, 8), 42);
	CU_ASSERT_EQUAL(be_get(p + OFF_CREATED, 8), CREATED);
	CU_ASSERT_EQUAL(be_get(p + OFF_COUNT, 4), 5);
	CU_ASSERT_EQUAL(be_get(p + OFF_PAYLOAD_LEN, 8), b->payload_len);
	clen = be_get(p + OFF_COMPRESSED_LEN, 8);
	CU_ASSERT_EQUAL(clen, b->compressed_len);
	CU_ASSERT_EQUAL(enc->len, OFF_PAYLOAD + clen + 4 + 32);
	/* CRC-32 of the compressed payload, then HMAC-SHA256 of all before it. */
	CU_ASSERT_EQUAL(be_get(p + OFF_PAYLOAD + clen, 4),
	    crc32(crc32(0L, Z_NULL, 0), p + OFF_PAYLOAD, (uInt)clen));
	test_hmac(key, p, enc->len - 32, mac);
	CU_ASSERT_EQUAL(memcmp(mac, p + enc->len - 32, 32), 0);
	/* The payload inflates to the entries: kind, u32 length, bytes. */
	{
		guint8 *plain = g_malloc(b->payload_len);
		uLongf n = b->payload_len;
		BundleEntry *first = b->entries->pdata[0];
		CU_ASSERT_EQUAL(uncompress(plain, &n, p + OFF_PAYLOAD, clen), Z_OK);
		CU_ASSERT_EQUAL(n, b->payload_len);
		CU_ASSERT_EQUAL(plain[0], BUNDLE_ENTRY_MESSAGE);
		CU_ASSERT_EQUAL(be_get(plain + 1, 4), g_bytes_get_size(first->data));
		CU_ASSERT_EQUAL(memcmp(plain + 5, g_bytes_get_data(first->data, NULL),
		    g_bytes_get_size(first->data)), 0);
		g_free(plain);
	}
	bundle_free(b);
	g_byte_array_unref(enc);
	g_bytes_unref(key);
}

static void
test_compression_levels_0_and_9_both_decode(void)
{
	GBytes *key = key_a();
	Bundle *b = sample_bundle();
	GByteArray *e0 = encoded(b, key, 0), *e9 = encoded(b, key, 9), *ed = encoded(b, key, -1);
	Bundle *d0 = bundle_decode(e0->data, e0->len, key, NULL);
	Bundle *d9 = bundle_decode(e9->data, e9->len, key, NULL);
	Bundle *dd = bundle_decode(ed->data, ed->len, key, NULL);

	CU_ASSERT_PTR_NOT_NULL_FATAL(d0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(d9);
	CU_ASSERT_PTR_NOT_NULL_FATAL(dd);
	CU_ASSERT_TRUE(e0->len > e9->len);   /* level 0 stores, level 9 compresses */
	CU_ASSERT_EQUAL(d0->entries->len, 5);
	CU_ASSERT_EQUAL(d9->entries->len, 5);
	for (guint i = 0; i < 5 && i < d0->entries->len && i < d9->entries->len; i++) {
		BundleEntry *x = d0->entries->pdata[i], *y = d9->entries->pdata[i];
		CU_ASSERT_TRUE(g_bytes_equal(x->data, y->data));
		CU_ASSERT_TRUE(g_bytes_equal(x->data,
		    ((BundleEntry *)b->entries->pdata[i])->data));
	}
	bundle_free(d0);
	bundle_free(d9);
	bundle_free(dd);
	bundle_free(b);
	g_byte_array_unref(e0);
	g_byte_array_unref(e9);
	g_byte_array_unref(ed);
	g_bytes_unref(key);
}

static void
test_encoder_refuses_what_no_reader_may_accept(void)
{
	GBytes *key = key_a();
	GError *e = NULL;
	Bundle *b;
	LegacyMessage *m;

	b = bundle_new("CORP/HQ", "CORP/GW", 1);
	CU_ASSERT_PTR_NULL(bundle_encode(b, key, 6, &e));
	CU_ASSERT_TRUE(g_error_matches(e, BUNDLE_ERROR, BUNDLE_ERROR_LIMIT));
	g_clear_error(&e);
	bundle_free(b);

	b = sample_bundle();
	b->seq = 0;
	CU_ASSERT_PTR_NULL(bundle_encode(b, key, 6, &e));
	CU_ASSERT_PTR_NOT_NULL(e);
	g_clear_error(&e);
	bundle_free(b);

	b = sample_bundle();
	g_strlcpy(b->dest, "CORP", sizeof b->dest);
	CU_ASSERT_PTR_NULL(bundle_encode(b, key, 6, &e));
	CU_ASSERT_PTR_NOT_NULL(e);
	g_clear_error(&e);
	bundle_free(b);

	/* An invalid message is not added. */
	b = sample_bundle();
	m = small_message(9);
	m->class = MSG_CLASS_NDR;   /* a report without about id and marker */
	CU_ASSERT_FALSE(bundle_add_message(b, m, &e));
	CU_ASSERT_TRUE(g_error_matches(e, MSG_ERROR, MSG_ERROR_MISSING) ||
	    g_error_matches(e, MSG_ERROR, MSG_ERROR_INVALID));
	CU_ASSERT_EQUAL(b->entries->len, 5);
	g_clear_error(&e);
	msg_free(m);
	bundle_free(b);
	g_bytes_unref(key);
}

/* ---- the reader's checks, in order -------------------------------------------- */

static void
test_any_shorter_or_longer_file_is_truncated(void)
{
	GBytes *key = key_a();
	GByteArray *enc = sample_encoded(key);

	for (gsize len = 0; len < enc->len; len++) {
		int code = decode_code(enc->data, len, key, NULL);
		EXPECT(code == BUNDLE_ERROR_TRUNCATED, "%zu of %u bytes: truncated, got %s", len,
		    enc->len, code == NO_ERROR ? "accepted" : bundle_error_name(code));
	}
	for (int extra = 1; extra <= 64; extra *= 4) {
		GByteArray *longer = g_byte_array_new();
		g_byte_array_append(longer, enc->data, enc->len);
		for (int i = 0; i < extra; i++)
			g_byte_array_append(longer, (const guint8 *)"\0", 1);
		DECODES_AS(longer, key, BUNDLE_ERROR_TRUNCATED, "the header announces");
		DECODES_AS(longer, NULL, BUNDLE_ERROR_TRUNCATED, "the header announces");
		g_byte_array_unref(longer);
	}
	/* Truncation is checked before the magic. */
	enc->data[0] ^= 0xff;
	CU_ASSERT_EQUAL(decode_code(enc->data, enc->len - 1, key, NULL), BUNDLE_ERROR_TRUNCATED);
	g_byte_array_unref(enc);
	g_bytes_unref(key);
}

static void
test_bad_magic_refused(void)
{
	GBytes *key = key_a();

	for (int i = 0; i < BUNDLE_MAGIC_LEN; i++) {
		GByteArray *enc = sample_encoded(key);
		enc->data[i] ^= 0x20;
		DECODES_AS(enc, key, BUNDLE_ERROR_MAGIC, "this is not a postgate bundle");
		/* Even when the HMAC is made right for it. */
		reseal(enc, key, FALSE);
		DECODES_AS(enc, key, BUNDLE_ERROR_MAGIC, NULL);
		g_byte_array_unref(enc);
	}
	g_bytes_unref(key);
}

static void
test_unknown_version_refused(void)
{
	GBytes *key = key_a();
	static const guint versions[] = { 0, 2, 0x0101, 0xffff };

	for (guint i = 0; i < G_N_ELEMENTS(versions); i++) {
		GByteArray *enc = sample_encoded(key);
		char why[64];
		be_put(enc->data + OFF_VERSION, versions[i], 2);
		reseal(enc, key, FALSE);
		g_snprintf(why, sizeof why, "version %u, this reader knows 1", versions[i]);
		DECODES_AS(enc, key, BUNDLE_ERROR_VERSION, why);
		/* The version is checked before the limits. */
		be_put(enc->data + OFF_COUNT, 0, 4);
		DECODES_AS(enc, key, BUNDLE_ERROR_VERSION, NULL);
		g_byte_array_unref(enc);
	}
	g_bytes_unref(key);
}

static void
test_entry_count_zero_or_too_many_is_over_a_limit(void)
{
	GBytes *key = key_a();
	static const guint32 counts[] = { 0, BUNDLE_MAX_ENTRIES + 1, 0xffffffffu };

	for (guint i = 0; i < G_N_ELEMENTS(counts); i++) {
		GByteArray *enc = sample_encoded(key);
		be_put(enc->data + OFF_COUNT, counts[i], 4);
		/* Before the HMAC: refused as over a limit, sealed or not. */
		DECODES_AS(enc, key, BUNDLE_ERROR_LIMIT, "entries, allowed 1 to 10000");
		reseal(enc, key, FALSE);
		DECODES_AS(enc, key, BUNDLE_ERROR_LIMIT, "entries, allowed 1 to 10000");
		DECODES_AS(enc, NULL, BUNDLE_ERROR_LIMIT, NULL);
		g_byte_array_unref(enc);
	}
	g_bytes_unref(key);
}

static void
test_payload_length_over_max_is_over_a_limit(void)
{
	/* A compressed part big enough that only the payload maximum, not the
	 * ratio, can refuse a payload length of BUNDLE_MAX_PAYLOAD + 1. */
	GBytes *key = key_a();
	gsize clen = BUNDLE_MAX_PAYLOAD / BUNDLE_MAX_RATIO + 1000;
	guint8 *junk = g_malloc0(clen);
	GByteArray *enc;

	enc = craft(junk, clen, (guint64)BUNDLE_MAX_PAYLOAD + 1, 1, key);
	DECODES_AS(enc, key, BUNDLE_ERROR_LIMIT, "(at most 268435456 bytes)");
	/* Exactly the maximum passes the limits; this one then fails at the
	 * HMAC, before anything is allocated or inflated. */
	be_put(enc->data + OFF_PAYLOAD_LEN, BUNDLE_MAX_PAYLOAD, 8);
	DECODES_AS(enc, key, BUNDLE_ERROR_HMAC, NULL);
	/* A payload length that cannot hold the entry headers. */
	be_put(enc->data + OFF_PAYLOAD_LEN, 4, 8);
	DECODES_AS(enc, key, BUNDLE_ERROR_LIMIT, "a payload of 4 bytes for 1 entries");
	g_byte_array_unref(enc);
	g_free(junk);
	g_bytes_unref(key);
}

static void
test_decompression_ratio_over_limit_is_over_a_limit(void)
{
	GBytes *key = key_a();
	GByteArray *enc = sample_encoded(key);
	guint64 clen = be_get(enc->data + OFF_COMPRESSED_LEN, 8);

	be_put(enc->data + OFF_PAYLOAD_LEN, clen * BUNDLE_MAX_RATIO + 1, 8);
	reseal(enc, key, FALSE);
	DECODES_AS(enc, key, BUNDLE_ERROR_LIMIT, "over the ratio limit of 1100");
	/* At the ratio exactly the limits pass: the payload then inflates to
	 * less than announced. */
	be_put(enc->data + OFF_PAYLOAD_LEN, clen * BUNDLE_MAX_RATIO, 8);
	reseal(enc, key, FALSE);
	DECODES_AS(enc, key, BUNDLE_ERROR_PAYLOAD, "inflates to a length other than announced");
	g_byte_array_unref(enc);
	g_bytes_unref(key);
}

static void
test_wrong_key_is_bad_hmac(void)
{
	GBytes *key = key_a(), *other = key_b();
	GBytes *shorter = g_bytes_new_static("0123456789abcdef0123456789ABCDE", 31);
	GByteArray *enc = sample_encoded(key);

	DECODES_AS(enc, key, NO_ERROR, NULL);
	DECODES_AS(enc, other, BUNDLE_ERROR_HMAC, "not authentic with this postoffice's key");
	DECODES_AS(enc, shorter, BUNDLE_ERROR_HMAC, NULL);
	g_byte_array_unref(enc);
	g_bytes_unref(key);
	g_bytes_unref(other);
	g_bytes_unref(shorter);
}

static void
test_flipped_byte_after_the_limits_is_bad_hmac(void)
{
	/* Any change to header fields after the version, to the payload, to the
	 * CRC or to the HMAC itself fails the HMAC, not a later check. */
	GBytes *key = key_a();
	GByteArray *orig = sample_encoded(key);
	guint64 clen = be_get(orig->data + OFF_COMPRESSED_LEN, 8);
	const gsize at[] = { OFF_SOURCE, OFF_DEST + 3, OFF_SEQ + 7, OFF_CREATED + 7,
		OFF_PAYLOAD, OFF_PAYLOAD + clen / 2, OFF_PAYLOAD + clen - 1, OFF_PAYLOAD + clen,
		orig->len - 32, orig->len - 1 };

	for (guint i = 0; i < G_N_ELEMENTS(at); i++) {
		GByteArray *enc = g_byte_array_new();
		g_byte_array_append(enc, orig->data, orig->len);
		enc->data[at[i]] ^= 0x01;
		EXPECT(decode_code(enc->data, enc->len, key, NULL) == BUNDLE_ERROR_HMAC,
		    "byte %zu flipped: bad HMAC", at[i]);
		g_byte_array_unref(enc);
	}
	g_byte_array_unref(orig);
	g_bytes_unref(key);
}

static void
test_wrong_crc_under_a_valid_hmac_is_bad_crc(void)
{
	GBytes *key = key_a();
	GByteArray *enc = sample_encoded(key);
	guint64 clen = be_get(enc->data + OFF_COMPRESSED_LEN, 8);

	/* The CRC field itself is wrong. */
	enc->data[OFF_PAYLOAD + clen + 2] ^= 0x40;
	reseal(enc, key, FALSE);
	DECODES_AS(enc, key, BUNDLE_ERROR_CRC, "the CRC-32 of the payload does not match");
	DECODES_AS(enc, NULL, BUNDLE_ERROR_CRC, NULL);
	g_byte_array_unref(enc);

	/* A payload byte is wrong, the old CRC kept, the HMAC made right. */
	enc = sample_encoded(key);
	enc->data[OFF_PAYLOAD + clen / 2] ^= 0x01;
	reseal(enc, key, FALSE);
	DECODES_AS(enc, key, BUNDLE_ERROR_CRC, NULL);
	g_byte_array_unref(enc);
	g_bytes_unref(key);
}

static void
test_garbage_compressed_bytes_are_bad_payload(void)
{
	GBytes *key = key_a();
	guint8 junk[64];
	GByteArray *enc;

	for (guint i = 0; i < sizeof junk; i++)
		junk[i] = (guint8)(i * 37 + 11);
	enc = craft(junk, sizeof junk, 100, 1, key);
	DECODES_AS(enc, key, BUNDLE_ERROR_PAYLOAD, "the payload does not inflate");
	DECODES_AS(enc, NULL, BUNDLE_ERROR_PAYLOAD, "the payload does not inflate");
	g_byte_array_unref(enc);
	g_bytes_unref(key);
}

static void
test_inflated_length_other_than_header_is_bad_payload(void)
{
	GBytes *key = key_a();
	GByteArray *payload = g_byte_array_new(), *z, *enc;

	add_entry(payload, BUNDLE_ENTRY_DIRECTORY, "<sync/>", 7);
	z = deflated(payload->data, payload->len);
	/* The header announces one byte more, and one byte less. */
	enc = craft(z->data, z->len, payload->len + 1, 1, key);
	DECODES_AS(enc, key, BUNDLE_ERROR_PAYLOAD, "inflates to a length other than announced");
	g_byte_array_unref(enc);
	enc = craft(z->data, z->len, payload->len - 1, 1, key);
	DECODES_AS(enc, key, BUNDLE_ERROR_PAYLOAD, NULL);
	g_byte_array_unref(enc);
	/* Exactly right: accepted. */
	enc = craft(z->data, z->len, payload->len, 1, key);
	DECODES_AS(enc, key, NO_ERROR, NULL);
	g_byte_array_unref(enc);
	/* Bytes after the end of the zlib stream. */
	g_byte_array_append(z, (const guint8 *)"tail", 4);
	enc = craft(z->data, z->len, payload->len, 1, key);
	DECODES_AS(enc, key, BUNDLE_ERROR_PAYLOAD, NULL);
	g_byte_array_unref(enc);
	g_byte_array_unref(z);
	g_byte_array_unref(payload);
	g_bytes_unref(key);
}

static void
test_entry_of_unknown_kind_is_bad_payload(void)
{
	GBytes *key = key_a();
	static const guint8 kinds[] = { 0, 3, 0xff };

	for (guint i = 0; i < G_N_ELEMENTS(kinds); i++) {
		GByteArray *payload = g_byte_array_new(), *enc;
		char why[64];
		add_entry(payload, BUNDLE_ENTRY_DIRECTORY, "<sync/>", 7);
		add_entry(payload, kinds[i], "data", 4);
		enc = craft_payload(payload, 2, key);
		g_snprintf(why, sizeof why, "entry 2 has unknown kind %u", kinds[i]);
		DECODES_AS(enc, key, BUNDLE_ERROR_PAYLOAD, why);
		g_byte_array_unref(enc);
		g_byte_array_unref(payload);
	}
	g_bytes_unref(key);
}

static void
test_message_entry_that_fails_to_decode_is_bad_payload(void)
{
	GBytes *key = key_a();
	GByteArray *payload = g_byte_array_new(), *enc, *good = g_byte_array_new();
	LegacyMessage *m = small_message(1);
	static const guint8 only_id[] = { 0, 1, 0, 0, 0, 1, 'X' };

	CU_ASSERT_TRUE(msg_encode(m, good, NULL));
	add_entry(payload, BUNDLE_ENTRY_MESSAGE, good->data, good->len);
	add_entry(payload, BUNDLE_ENTRY_MESSAGE, only_id, sizeof only_id);
	enc = craft_payload(payload, 2, key);
	DECODES_AS(enc, key, BUNDLE_ERROR_PAYLOAD,
	    "entry 2: the message lacks its class or codepage");
	g_byte_array_unref(enc);

	/* The same bytes as a directory entry are not parsed: accepted. */
	g_byte_array_set_size(payload, 0);
	add_entry(payload, BUNDLE_ENTRY_MESSAGE, good->data, good->len);
	add_entry(payload, BUNDLE_ENTRY_DIRECTORY, only_id, sizeof only_id);
	enc = craft_payload(payload, 2, key);
	DECODES_AS(enc, key, NO_ERROR, NULL);
	g_byte_array_unref(enc);

	/* A message cut short inside its entry. */
	g_byte_array_set_size(payload, 0);
	add_entry(payload, BUNDLE_ENTRY_MESSAGE, good->data, good->len - 3);
	enc = craft_payload(payload, 1, key);
	DECODES_AS(enc, key, BUNDLE_ERROR_PAYLOAD, "entry 1:");
	g_byte_array_unref(enc);

	g_byte_array_unref(payload);
	g_byte_array_unref(good);
	msg_free(m);
	g_bytes_unref(key);
}

static void
test_entry_framing_errors_are_bad_payload(void)
{
	GBytes *key = key_a();
	GByteArray *payload = g_byte_array_new(), *enc;

	/* The header counts two entries, the payload holds one. */
	add_entry(payload, BUNDLE_ENTRY_DIRECTORY, "<sync/>", 7);
	g_byte_array_append(payload, (const guint8 *)"\x02\x00\x00", 3);
	enc = craft_payload(payload, 2, key);
	DECODES_AS(enc, key, BUNDLE_ERROR_PAYLOAD, "entry 2 is cut short");
	g_byte_array_unref(enc);

	/* Bytes after the last counted entry. */
	g_byte_array_set_size(payload, 0);
	add_entry(payload, BUNDLE_ENTRY_DIRECTORY, "<sync/>", 7);
	add_entry(payload, BUNDLE_ENTRY_DIRECTORY, "<sync/>", 7);
	enc = craft_payload(payload, 1, key);
	DECODES_AS(enc, key, BUNDLE_ERROR_PAYLOAD, "12 bytes follow the last entry");
	g_byte_array_unref(enc);

	/* An entry whose length runs past the payload. */
	g_byte_array_set_size(payload, 0);
	add_entry(payload, BUNDLE_ENTRY_DIRECTORY, "<sync/>", 7);
	be_put(payload->data + 1, 8, 4);
	enc = craft_payload(payload, 1, key);
	DECODES_AS(enc, key, BUNDLE_ERROR_PAYLOAD, "entry 1 runs past the payload");
	g_byte_array_unref(enc);

	g_byte_array_unref(payload);
	g_bytes_unref(key);
}

static void
test_bad_header_names_or_sequence_are_bad_payload(void)
{
	GBytes *key = key_a();
	GByteArray *payload = g_byte_array_new();
	struct { int off; const char *value; int len; const char *why; } cases[] = {
		{ OFF_SOURCE, "corp/hq", 7, "the source is not in canonical form" },
		{ OFF_SOURCE, "CORP", 4, "the source:" },
		{ OFF_DEST, "CORP/GW\0X", 9, "the destination field is not NUL padded" },
		{ OFF_DEST, " CORP/GW", 8, "the destination is not in canonical form" },
		{ OFF_DEST, "CORP/../GW", 10, "the destination:" },
		{ OFF_SEQ, "\0\0\0\0\0\0\0\0", 8, "sequence number 0" },
	};

	add_entry(payload, BUNDLE_ENTRY_DIRECTORY, "<sync/>", 7);
	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		GByteArray *enc = craft_payload(payload, 1, key);
		int width = cases[i].off == OFF_SEQ ? 8 : 22;
		memset(enc->data + cases[i].off, 0, width);
		memcpy(enc->data + cases[i].off, cases[i].value, cases[i].len);
		reseal(enc, key, FALSE);
		DECODES_AS(enc, key, BUNDLE_ERROR_PAYLOAD, cases[i].why);
		g_byte_array_unref(enc);
	}
	g_byte_array_unref(payload);
	g_bytes_unref(key);
}

/* The refusal the documented order predicts for buf, computed by the test. */
static int
predict(const guint8 *p, gsize len, GBytes *key)
{
	guint64 clen, plen, count;
	guint8 mac[32];

	if (len < OFF_PAYLOAD + BUNDLE_TRAILER_LEN)
		return BUNDLE_ERROR_TRUNCATED;
	clen = be_get(p + OFF_COMPRESSED_LEN, 8);
	if (clen != len - OFF_PAYLOAD - BUNDLE_TRAILER_LEN)
		return BUNDLE_ERROR_TRUNCATED;
	if (memcmp(p, BUNDLE_MAGIC, BUNDLE_MAGIC_LEN) != 0)
		return BUNDLE_ERROR_MAGIC;
	if (be_get(p + OFF_VERSION, 2) != 1)
		return BUNDLE_ERROR_VERSION;
	count = be_get(p + OFF_COUNT, 4);
	plen = be_get(p + OFF_PAYLOAD_LEN, 8);
	if (count == 0 || count > BUNDLE_MAX_ENTRIES || plen > BUNDLE_MAX_PAYLOAD ||
	    plen < count * 5 || plen > clen * BUNDLE_MAX_RATIO)
		return BUNDLE_ERROR_LIMIT;
	test_hmac(key, p, len - 32, mac);
	if (memcmp(mac, p + len - 32, 32) != 0)
		return BUNDLE_ERROR_HMAC;
	if (be_get(p + OFF_PAYLOAD + clen, 4) !=
	    crc32(crc32(0L, Z_NULL, 0), p + OFF_PAYLOAD, (uInt)clen))
		return BUNDLE_ERROR_CRC;
	return NO_ERROR;
}

static void
test_every_flipped_byte_fails_the_predicted_check(void)
{
	GBytes *key = key_a();
	GByteArray *enc = sample_encoded(key);
	int seen[BUNDLE_ERROR_IO + 1] = { 0 };
	static const guint8 masks[] = { 0x01, 0x80, 0xff };

	for (gsize i = 0; i < enc->len; i++) {
		for (guint k = 0; k < G_N_ELEMENTS(masks); k++) {
			int want, got;
			enc->data[i] ^= masks[k];
			want = predict(enc->data, enc->len, key);
			got = decode_code(enc->data, enc->len, key, NULL);
			EXPECT(got == want && got != NO_ERROR,
			    "byte %zu ^ 0x%02x: predicted %s, got %s", i, masks[k],
			    want == NO_ERROR ? "accepted" : bundle_error_name(want),
			    got == NO_ERROR ? "accepted" : bundle_error_name(got));
			if (got >= 0)
				seen[got]++;
			enc->data[i] ^= masks[k];
		}
	}
	/* The flips reached every check a flip alone can reach. */
	CU_ASSERT_TRUE(seen[BUNDLE_ERROR_TRUNCATED] > 0);
	CU_ASSERT_TRUE(seen[BUNDLE_ERROR_MAGIC] > 0);
	CU_ASSERT_TRUE(seen[BUNDLE_ERROR_VERSION] > 0);
	CU_ASSERT_TRUE(seen[BUNDLE_ERROR_LIMIT] > 0);
	CU_ASSERT_TRUE(seen[BUNDLE_ERROR_HMAC] > 0);
	g_byte_array_unref(enc);
	g_bytes_unref(key);
}

static void
test_error_names_are_distinct(void)
{
	for (int a = BUNDLE_ERROR_TRUNCATED; a <= BUNDLE_ERROR_IO; a++) {
		CU_ASSERT_STRING_NOT_EQUAL(bundle_error_name(a), "unknown error");
		for (int b = a + 1; b <= BUNDLE_ERROR_IO; b++)
			CU_ASSERT_STRING_NOT_EQUAL(bundle_error_name(a), bundle_error_name(b));
	}
	CU_ASSERT_STRING_EQUAL(bundle_error_name(BUNDLE_ERROR_HMAC), "bad HMAC");
	CU_ASSERT_STRING_EQUAL(bundle_error_name(BUNDLE_ERROR_CRC), "bad CRC");
}

/* ---- without a key ----------------------------------------------------------- */

static void
test_decode_without_key_skips_only_the_hmac(void)
{
	GBytes *key = key_a();
	GByteArray *enc = sample_encoded(key);
	Bundle *d;
	guint64 clen = be_get(enc->data + OFF_COMPRESSED_LEN, 8);

	d = bundle_decode(enc->data, enc->len, NULL, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	CU_ASSERT_FALSE(d->hmac_checked);
	CU_ASSERT_EQUAL(d->entries->len, 5);
	CU_ASSERT_EQUAL(d->seq, 42);
	bundle_free(d);

	/* A wrong HMAC does not matter without a key ... */
	enc->data[enc->len - 5] ^= 0xff;
	DECODES_AS(enc, NULL, NO_ERROR, NULL);
	DECODES_AS(enc, key, BUNDLE_ERROR_HMAC, NULL);
	/* ... every other check still runs. */
	enc->data[OFF_PAYLOAD + clen / 2] ^= 0x01;
	DECODES_AS(enc, NULL, BUNDLE_ERROR_CRC, NULL);
	enc->data[OFF_PAYLOAD + clen / 2] ^= 0x01;
	enc->data[OFF_VERSION + 1] = 7;
	DECODES_AS(enc, NULL, BUNDLE_ERROR_VERSION, NULL);
	enc->data[OFF_VERSION + 1] = 1;
	enc->data[3] = 'X';
	DECODES_AS(enc, NULL, BUNDLE_ERROR_MAGIC, NULL);
	enc->data[3] = 'B';
	DECODES_AS(enc, NULL, NO_ERROR, NULL);
	CU_ASSERT_EQUAL(decode_code(enc->data, enc->len - 1, NULL, NULL), BUNDLE_ERROR_TRUNCATED);
	g_byte_array_unref(enc);
	g_bytes_unref(key);
}

/* ---- names and files ---------------------------------------------------------- */

static void
test_file_name_is_source_dest_and_sequence(void)
{
	char *n;

	n = bundle_file_name("CORP/HQ", "CORP/GW", 42);
	CU_ASSERT_STRING_EQUAL(n, "CORP.HQ+CORP.GW+0000000042.bundle");
	g_free(n);
	n = bundle_file_name("A/B", "C-1/D_2", 1);
	CU_ASSERT_STRING_EQUAL(n, "A.B+C-1.D_2+0000000001.bundle");
	g_free(n);
	n = bundle_file_name("CORP/HQ", "CORP/GW", G_MAXUINT64);
	CU_ASSERT_STRING_EQUAL(n, "CORP.HQ+CORP.GW+18446744073709551615.bundle");
	g_free(n);
}

static char *
make_tmp_dir(void)
{
	GError *e = NULL;
	char *dir = g_dir_make_tmp("pg-test-bundle-XXXXXX", &e);

	CU_ASSERT_PTR_NOT_NULL(dir);
	g_clear_error(&e);
	return dir;
}

/* The names in dir, sorted, joined by ' '. */
static char *
dir_listing(const char *dir)
{
	GDir *d = g_dir_open(dir, 0, NULL);
	GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
	const char *n;
	char *out;

	while (d && (n = g_dir_read_name(d)))
		g_ptr_array_add(names, g_strdup(n));
	if (d)
		g_dir_close(d);
	g_ptr_array_sort(names, (GCompareFunc)g_strcmp0);
	g_ptr_array_add(names, NULL);
	out = g_strjoinv(" ", (char **)names->pdata);
	g_ptr_array_unref(names);
	return out;
}

/* Remove every file in dir, then dir. */
static void
remove_tmp_dir(char *dir)
{
	GDir *d = g_dir_open(dir, 0, NULL);
	const char *n;

	while (d && (n = g_dir_read_name(d))) {
		char *p = g_build_filename(dir, n, NULL);
		g_unlink(p);
		g_free(p);
	}
	if (d)
		g_dir_close(d);
	g_rmdir(dir);
	g_free(dir);
}

static void
test_write_is_atomic_and_leaves_only_the_bundle(void)
{
	GBytes *key = key_a();
	char *dir = make_tmp_dir(), *name = NULL, *path, *listing;
	Bundle *b = sample_bundle(), *d;
	GError *e = NULL;
	struct stat st;

	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	CU_ASSERT_TRUE_FATAL(bundle_write(dir, b, key, 6, &name, &e));
	CU_ASSERT_PTR_NULL(e);
	CU_ASSERT_STRING_EQUAL(name, "CORP.HQ+CORP.GW+0000000042.bundle");
	listing = dir_listing(dir);
	CU_ASSERT_STRING_EQUAL(listing, name);   /* no .name.tmp left behind */
	g_free(listing);
	path = g_build_filename(dir, name, NULL);
	CU_ASSERT_EQUAL(stat(path, &st), 0);
	CU_ASSERT_TRUE(S_ISREG(st.st_mode));
	CU_ASSERT_EQUAL(st.st_mode & 0007, 0);   /* not readable by others */
	d = bundle_read_file(path, key, &e);
	CU_ASSERT_PTR_NULL(e);
	CU_ASSERT_PTR_NOT_NULL(d);
	if (d)
		CU_ASSERT_EQUAL(d->entries->len, 5);
	bundle_free(d);

	/* Writing the same bundle again replaces it, still one file. */
	g_free(name);
	name = NULL;
	CU_ASSERT_TRUE(bundle_write(dir, b, key, 6, &name, NULL));
	listing = dir_listing(dir);
	CU_ASSERT_STRING_EQUAL(listing, "CORP.HQ+CORP.GW+0000000042.bundle");
	g_free(listing);

	g_free(path);
	g_free(name);
	bundle_free(b);
	remove_tmp_dir(dir);
	g_bytes_unref(key);
}

static void
test_write_into_missing_directory_fails_and_leaves_nothing(void)
{
	GBytes *key = key_a();
	char *dir = make_tmp_dir(), *missing, *name = NULL, *listing;
	Bundle *b = sample_bundle();
	GError *e = NULL;

	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	missing = g_build_filename(dir, "nope", NULL);
	CU_ASSERT_FALSE(bundle_write(missing, b, key, 6, &name, &e));
	CU_ASSERT_PTR_NOT_NULL(e);
	CU_ASSERT_PTR_NULL(name);
	listing = dir_listing(dir);
	CU_ASSERT_STRING_EQUAL(listing, "");
	g_free(listing);
	g_clear_error(&e);
	g_free(missing);
	bundle_free(b);
	remove_tmp_dir(dir);
	g_bytes_unref(key);
}

static void
test_file_name_never_comes_from_message_content(void)
{
	/* Two bundles that differ only in what their messages say get the same
	 * name, and nothing a message says appears in it. */
	GBytes *key = key_a();
	char *dir = make_tmp_dir(), *n1 = NULL, *n2 = NULL;
	Bundle *b1 = bundle_new("CORP/HQ", "CORP/GW", 7);
	Bundle *b2 = bundle_new("CORP/HQ", "CORP/GW", 7);
	LegacyMessage *m1 = small_message(1), *m2 = small_message(2);
	GBytes *evil = g_bytes_new_static("x", 1);

	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	g_free(m2->subject);
	m2->subject = g_strdup("../../etc/passwd");
	g_free(m2->id);
	m2->id = g_strdup("..%2f..%2fevil");
	msg_add_attachment(m2, "evil.bundle", evil);
	CU_ASSERT_TRUE(bundle_add_message(b1, m1, NULL));
	CU_ASSERT_TRUE(bundle_add_message(b2, m2, NULL));
	CU_ASSERT_TRUE(bundle_write(dir, b1, key, 6, &n1, NULL));
	CU_ASSERT_TRUE(bundle_write(dir, b2, key, 6, &n2, NULL));
	CU_ASSERT_PTR_NOT_NULL_FATAL(n1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(n2);
	CU_ASSERT_STRING_EQUAL(n1, "CORP.HQ+CORP.GW+0000000007.bundle");
	CU_ASSERT_STRING_EQUAL(n1, n2);
	CU_ASSERT_PTR_NULL(strchr(n2, '/'));
	CU_ASSERT_PTR_NULL(strstr(n2, "evil"));
	CU_ASSERT_PTR_NULL(strstr(n2, "passwd"));
	g_free(n1);
	g_free(n2);
	g_bytes_unref(evil);
	msg_free(m1);
	msg_free(m2);
	bundle_free(b1);
	bundle_free(b2);
	remove_tmp_dir(dir);
	g_bytes_unref(key);
}

static void
test_file_name_uses_the_canonical_postoffice_names(void)
{
	/* The header holds CORP/HQ however the caller spelled it; the file name
	 * must be the same one, or two writers of one (source, dest, seq) make
	 * two files. */
	GBytes *key = key_a();
	char *dir = make_tmp_dir(), *name = NULL, *path;
	Bundle *b = bundle_new("corp/hq", " Corp/GW", 5), *d;
	LegacyMessage *m = small_message(1);

	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	CU_ASSERT_TRUE(bundle_add_message(b, m, NULL));
	CU_ASSERT_TRUE_FATAL(bundle_write(dir, b, key, 6, &name, NULL));
	CU_ASSERT_STRING_EQUAL(name, "CORP.HQ+CORP.GW+0000000005.bundle");
	path = g_build_filename(dir, name, NULL);
	d = bundle_read_file(path, key, NULL);
	CU_ASSERT_PTR_NOT_NULL(d);
	if (d) {
		CU_ASSERT_STRING_EQUAL(d->source, "CORP/HQ");
		CU_ASSERT_STRING_EQUAL(d->dest, "CORP/GW");
	}
	bundle_free(d);
	g_free(path);
	g_free(name);
	msg_free(m);
	bundle_free(b);
	remove_tmp_dir(dir);
	g_bytes_unref(key);
}

static void
test_read_file_refuses_missing_directory_symlink_and_oversized_files(void)
{
	GBytes *key = key_a();
	char *dir = make_tmp_dir(), *path;
	GError *e = NULL;
	int fd;

	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	path = g_build_filename(dir, "missing.bundle", NULL);
	CU_ASSERT_PTR_NULL(bundle_read_file(path, key, &e));
	CU_ASSERT_TRUE(g_error_matches(e, BUNDLE_ERROR, BUNDLE_ERROR_IO));
	g_clear_error(&e);
	CU_ASSERT_PTR_NULL(bundle_read_file(dir, key, &e));
	CU_ASSERT_TRUE(g_error_matches(e, BUNDLE_ERROR, BUNDLE_ERROR_IO));
	g_clear_error(&e);
	/* A symbolic link, even to a valid bundle, is not read (check 0). */
	{
		Bundle *b = sample_bundle();
		char *name = NULL, *target, *link;
		CU_ASSERT_TRUE_FATAL(bundle_write(dir, b, key, 6, &name, NULL));
		target = g_build_filename(dir, name, NULL);
		link = g_build_filename(dir, "link.bundle", NULL);
		CU_ASSERT_EQUAL(symlink(target, link), 0);
		CU_ASSERT_PTR_NULL(bundle_read_file(link, key, &e));
		CU_ASSERT_TRUE(g_error_matches(e, BUNDLE_ERROR, BUNDLE_ERROR_IO));
		g_clear_error(&e);
		{
			Bundle *ok = bundle_read_file(target, key, NULL);
			CU_ASSERT_PTR_NOT_NULL(ok);
			bundle_free(ok);
		}
		g_free(link);
		g_free(target);
		g_free(name);
		bundle_free(b);
	}
	/* A sparse file one byte over the limit is refused without reading it. */
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CU_ASSERT_TRUE_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(ftruncate(fd, (off_t)BUNDLE_MAX_FILE_SIZE + 1), 0);
	close(fd);
	CU_ASSERT_PTR_NULL(bundle_read_file(path, key, &e));
	CU_ASSERT_TRUE(g_error_matches(e, BUNDLE_ERROR, BUNDLE_ERROR_LIMIT));
	g_clear_error(&e);
	g_free(path);
	remove_tmp_dir(dir);
	g_bytes_unref(key);
}

/* ---- key files ------------------------------------------------------------------ */

static void
test_created_key_file_is_64_hex_digits_mode_0600(void)
{
	char *dir = make_tmp_dir(), *p1, *p2, *text = NULL;
	GBytes *k1, *k2;
	GError *e = NULL;
	struct stat st;
	gsize len = 0, n;
	const char *d;

	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	p1 = g_build_filename(dir, "a.key", NULL);
	p2 = g_build_filename(dir, "b.key", NULL);
	CU_ASSERT_TRUE_FATAL(keyfile_create(p1, &e));
	CU_ASSERT_TRUE_FATAL(keyfile_create(p2, &e));
	CU_ASSERT_EQUAL(stat(p1, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 07777, 0600);
	CU_ASSERT_TRUE(g_file_get_contents(p1, &text, &len, NULL));
	CU_ASSERT_EQUAL(len, 65);
	if (text && len == 65)
		CU_ASSERT_EQUAL(text[64], '\n');
	g_free(text);
	k1 = keyfile_load(p1, &e);
	CU_ASSERT_PTR_NULL(e);
	CU_ASSERT_PTR_NOT_NULL_FATAL(k1);
	d = g_bytes_get_data(k1, &n);
	CU_ASSERT_EQUAL(n, 64);
	for (gsize i = 0; i < n; i++)
		EXPECT(g_ascii_isxdigit(d[i]), "key byte %zu is a hex digit", i);
	k2 = keyfile_load(p2, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(k2);
	CU_ASSERT_FALSE(g_bytes_equal(k1, k2));   /* random, not fixed */
	/* A key file that exists is never overwritten. */
	CU_ASSERT_FALSE(keyfile_create(p1, &e));
	CU_ASSERT_TRUE(g_error_matches(e, KEYFILE_ERROR, KEYFILE_ERROR_CREATE));
	g_clear_error(&e);
	{
		GBytes *again = keyfile_load(p1, NULL);
		CU_ASSERT_TRUE(again && g_bytes_equal(again, k1));
		if (again)
			g_bytes_unref(again);
	}
	/* And the key works for a bundle. */
	{
		Bundle *b = sample_bundle();
		GByteArray *enc = encoded(b, k1, 6);
		DECODES_AS(enc, k1, NO_ERROR, NULL);
		DECODES_AS(enc, k2, BUNDLE_ERROR_HMAC, NULL);
		g_byte_array_unref(enc);
		bundle_free(b);
	}
	g_bytes_unref(k1);
	g_bytes_unref(k2);
	g_free(p1);
	g_free(p2);
	remove_tmp_dir(dir);
}

static void
test_short_long_or_missing_key_file_refused(void)
{
	char *dir = make_tmp_dir(), *p;
	char buf[KEY_MAX_LEN + 2];
	GError *e = NULL;
	GBytes *k;

	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	p = g_build_filename(dir, "k", NULL);
	memset(buf, 'k', sizeof buf);

	/* 31 bytes plus a newline: too short. */
	buf[31] = '\n';
	CU_ASSERT_TRUE(g_file_set_contents(p, buf, 32, NULL));
	CU_ASSERT_PTR_NULL(keyfile_load(p, &e));
	CU_ASSERT_TRUE(g_error_matches(e, KEYFILE_ERROR, KEYFILE_ERROR_TOO_SHORT));
	if (e)
		CU_ASSERT_PTR_NOT_NULL(strstr(e->message, "at least 32"));
	g_clear_error(&e);
	buf[31] = 'k';

	/* Empty. */
	CU_ASSERT_TRUE(g_file_set_contents(p, "", 0, NULL));
	CU_ASSERT_PTR_NULL(keyfile_load(p, &e));
	CU_ASSERT_TRUE(g_error_matches(e, KEYFILE_ERROR, KEYFILE_ERROR_TOO_SHORT));
	g_clear_error(&e);

	/* Exactly 32 bytes, without a newline: accepted as is. */
	CU_ASSERT_TRUE(g_file_set_contents(p, buf, 32, NULL));
	k = keyfile_load(p, &e);
	CU_ASSERT_PTR_NOT_NULL(k);
	if (k) {
		CU_ASSERT_EQUAL(g_bytes_get_size(k), 32);
		g_bytes_unref(k);
	}
	g_clear_error(&e);

	/* Over the maximum. */
	CU_ASSERT_TRUE(g_file_set_contents(p, buf, KEY_MAX_LEN + 1, NULL));
	CU_ASSERT_PTR_NULL(keyfile_load(p, &e));
	CU_ASSERT_TRUE(g_error_matches(e, KEYFILE_ERROR, KEYFILE_ERROR_TOO_LONG));
	g_clear_error(&e);

	/* A directory is not a key file. */
	CU_ASSERT_PTR_NULL(keyfile_load(dir, &e));
	CU_ASSERT_TRUE(g_error_matches(e, KEYFILE_ERROR, KEYFILE_ERROR_UNREADABLE));
	if (e)
		CU_ASSERT_PTR_NOT_NULL(strstr(e->message, "not a regular file"));
	g_clear_error(&e);

	/* Missing. */
	g_unlink(p);
	CU_ASSERT_PTR_NULL(keyfile_load(p, &e));
	CU_ASSERT_TRUE(g_error_matches(e, KEYFILE_ERROR, KEYFILE_ERROR_UNREADABLE));
	if (e)
		CU_ASSERT_PTR_NOT_NULL(strstr(e->message, p));
	g_clear_error(&e);
	g_free(p);
	remove_tmp_dir(dir);
}

static const CuTest tests[] = {
	{ "round trip keeps every entry and header field",
	  test_round_trip_keeps_every_entry_and_header_field },
	{ "header layout matches the format", test_header_layout_matches_the_format },
	{ "compression levels 0 and 9 both decode", test_compression_levels_0_and_9_both_decode },
	{ "encoder refuses what no reader may accept",
	  test_encoder_refuses_what_no_reader_may_accept },
	{ "any shorter or longer file is truncated", test_any_shorter_or_longer_file_is_truncated },
	{ "bad magic is refused", test_bad_magic_refused },
	{ "unknown version is refused", test_unknown_version_refused },
	{ "entry count 0 or too many is over a limit",
	  test_entry_count_zero_or_too_many_is_over_a_limit },
	{ "payload length over max is over a limit", test_payload_length_over_max_is_over_a_limit },
	{ "decompression ratio over limit is over a limit",
	  test_decompression_ratio_over_limit_is_over_a_limit },
	{ "wrong key is bad HMAC", test_wrong_key_is_bad_hmac },
	{ "flipped byte after the limits is bad HMAC", test_flipped_byte_after_the_limits_is_bad_hmac },
	{ "wrong CRC under a valid HMAC is bad CRC", test_wrong_crc_under_a_valid_hmac_is_bad_crc },
	{ "garbage compressed bytes are bad payload", test_garbage_compressed_bytes_are_bad_payload },
	{ "inflated length other than the header is bad payload",
	  test_inflated_length_other_than_header_is_bad_payload },
	{ "entry of unknown kind is bad payload", test_entry_of_unknown_kind_is_bad_payload },
	{ "message entry that fails to decode is bad payload",
	  test_message_entry_that_fails_to_decode_is_bad_payload },
	{ "entry framing errors are bad payload", test_entry_framing_errors_are_bad_payload },
	{ "bad header names or sequence number are bad payload",
	  test_bad_header_names_or_sequence_are_bad_payload },
	{ "every flipped byte fails the predicted check",
	  test_every_flipped_byte_fails_the_predicted_check },
	{ "error names are distinct", test_error_names_are_distinct },
	{ "decode without key skips only the HMAC", test_decode_without_key_skips_only_the_hmac },
	{ "file name is source, dest and sequence number",
	  test_file_name_is_source_dest_and_sequence },
	{ "write is atomic and leaves only the bundle",
	  test_write_is_atomic_and_leaves_only_the_bundle },
	{ "write into a missing directory fails and leaves nothing",
	  test_write_into_missing_directory_fails_and_leaves_nothing },
	{ "file name never comes from message content",
	  test_file_name_never_comes_from_message_content },
	{ "file name uses the canonical postoffice names",
	  test_file_name_uses_the_canonical_postoffice_names },
	{ "read_file refuses missing, directory, symlinked and oversized files",
	  test_read_file_refuses_missing_directory_symlink_and_oversized_files },
	{ "created key file is 64 hex digits, mode 0600",
	  test_created_key_file_is_64_hex_digits_mode_0600 },
	{ "short, long, missing or non-regular key file is refused",
	  test_short_long_or_missing_key_file_refused },
	{ NULL, NULL },
};

int
main(void)
{
	return cu_run("bundle", tests);
}
