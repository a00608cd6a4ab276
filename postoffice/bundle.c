/* bundle.c - bundle format v1 (see bundle.h and docs/bundle-format.md). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <zlib.h>

#include "address.h"
#include "atomic_write.h"
#include "bundle.h"

G_DEFINE_QUARK(postgate-bundle-error-quark, bundle_error)

/* Header offsets (docs/bundle-format.md, "Layout"). */
enum {
	OFF_MAGIC = 0,
	OFF_VERSION = 8,
	OFF_SOURCE = 10,
	OFF_DEST = 32,
	OFF_SEQ = 54,
	OFF_CREATED = 62,
	OFF_COUNT = 70,
	OFF_PAYLOAD_LEN = 74,
	OFF_COMPRESSED_LEN = 82,
	OFF_PAYLOAD = 90,
};
#define ENTRY_HEADER_LEN 5

static void
entry_free(gpointer p)
{
	BundleEntry *e = p;
	g_bytes_unref(e->data);
	g_free(e);
}

Bundle *
bundle_new(const char *source, const char *dest, guint64 seq)
{
	Bundle *b = g_new0(Bundle, 1);

	g_strlcpy(b->source, source, sizeof b->source);
	g_strlcpy(b->dest, dest, sizeof b->dest);
	b->seq = seq;
	b->created = g_get_real_time() / G_USEC_PER_SEC;
	b->entries = g_ptr_array_new_with_free_func(entry_free);
	return b;
}

void
bundle_free(Bundle *b)
{
	if (!b)
		return;
	g_ptr_array_unref(b->entries);
	g_free(b);
}

void
bundle_add_entry(Bundle *b, BundleEntryKind kind, GBytes *data)
{
	BundleEntry *e = g_new0(BundleEntry, 1);

	e->kind = kind;
	e->data = g_bytes_ref(data);
	g_ptr_array_add(b->entries, e);
}

gboolean
bundle_add_message(Bundle *b, const LegacyMessage *msg, GError **error)
{
	GByteArray *buf = g_byte_array_new();
	GBytes *data;

	if (!msg_encode(msg, buf, error)) {
		g_byte_array_unref(buf);
		return FALSE;
	}
	data = g_byte_array_free_to_bytes(buf);
	bundle_add_entry(b, BUNDLE_ENTRY_MESSAGE, data);
	g_bytes_unref(data);
	return TRUE;
}

LegacyMessage *
bundle_message(const Bundle *b, guint i, GError **error)
{
	BundleEntry *e = b->entries->pdata[i];
	gsize n;
	const guint8 *d = g_bytes_get_data(e->data, &n);

	return msg_decode(d, n, error);
}

const char *
bundle_error_name(int code)
{
	switch (code) {
	case BUNDLE_ERROR_TRUNCATED: return "truncated";
	case BUNDLE_ERROR_MAGIC: return "bad magic";
	case BUNDLE_ERROR_VERSION: return "unknown version";
	case BUNDLE_ERROR_LIMIT: return "over a limit";
	case BUNDLE_ERROR_HMAC: return "bad HMAC";
	case BUNDLE_ERROR_CRC: return "bad CRC";
	case BUNDLE_ERROR_PAYLOAD: return "bad payload";
	case BUNDLE_ERROR_IO: return "I/O error";
	}
	return "unknown error";
}

static void
set_error(GError **error, BundleError code, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

static void
set_error(GError **error, BundleError code, const char *fmt, ...)
{
	va_list ap;
	char *text;

	va_start(ap, fmt);
	text = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_set_error(error, BUNDLE_ERROR, code, "%s: %s", bundle_error_name(code), text);
	g_free(text);
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

static gboolean
hmac_sha256(GBytes *key, const guint8 *data, size_t len, guint8 out[BUNDLE_HMAC_LEN])
{
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
	OSSL_PARAM params[2];
	gsize klen;
	const guint8 *k = g_bytes_get_data(key, &klen);
	size_t outlen = 0;
	gboolean ok;

	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	ok = ctx && EVP_MAC_init(ctx, k, klen, params) == 1 &&
	    EVP_MAC_update(ctx, data, len) == 1 &&
	    EVP_MAC_final(ctx, out, &outlen, BUNDLE_HMAC_LEN) == 1 &&
	    outlen == BUNDLE_HMAC_LEN;
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	return ok;
}

static gboolean
po_field_put(guint8 *field, const char *po, GError **error)
{
	char net[ADDR_PART_MAX + 1], name[ADDR_PART_MAX + 1];
	GError *e = NULL;

	if (!addr_parse_po(po, strlen(po), net, name, &e)) {
		set_error(error, BUNDLE_ERROR_PAYLOAD, "%s", e->message);
		g_error_free(e);
		return FALSE;
	}
	memset(field, 0, BUNDLE_NAME_FIELD);
	g_snprintf((char *)field, BUNDLE_NAME_FIELD, "%s/%s", net, name);
	return TRUE;
}

GBytes *
bundle_encode(Bundle *b, GBytes *key, int level, GError **error)
{
	GByteArray *payload;
	guint8 *out;
	uLongf clen;
	size_t total;
	guint8 ehdr[ENTRY_HEADER_LEN];
	int zr;

	if (b->entries->len == 0 || b->entries->len > BUNDLE_MAX_ENTRIES) {
		set_error(error, BUNDLE_ERROR_LIMIT, "a bundle holds 1 to %u entries, not %u",
		    BUNDLE_MAX_ENTRIES, b->entries->len);
		return NULL;
	}
	if (b->seq == 0) {
		set_error(error, BUNDLE_ERROR_PAYLOAD, "sequence numbers start at 1");
		return NULL;
	}
	payload = g_byte_array_new();
	for (guint i = 0; i < b->entries->len; i++) {
		BundleEntry *e = b->entries->pdata[i];
		gsize n;
		const guint8 *d = g_bytes_get_data(e->data, &n);
		if (n > MSG_MAX_SIZE || payload->len + ENTRY_HEADER_LEN + n > BUNDLE_MAX_PAYLOAD) {
			set_error(error, BUNDLE_ERROR_LIMIT,
			    "the payload would be over the limit of %u bytes", BUNDLE_MAX_PAYLOAD);
			g_byte_array_unref(payload);
			return NULL;
		}
		ehdr[0] = (guint8)e->kind;
		be_put(ehdr + 1, n, 4);
		g_byte_array_append(payload, ehdr, ENTRY_HEADER_LEN);
		g_byte_array_append(payload, d, (guint)n);
	}
	clen = compressBound(payload->len);
	total = OFF_PAYLOAD + clen + BUNDLE_TRAILER_LEN;
	out = g_malloc(total);
	memcpy(out + OFF_MAGIC, BUNDLE_MAGIC, BUNDLE_MAGIC_LEN);
	be_put(out + OFF_VERSION, BUNDLE_VERSION, 2);
	if (!po_field_put(out + OFF_SOURCE, b->source, error) ||
	    !po_field_put(out + OFF_DEST, b->dest, error)) {
		g_free(out);
		g_byte_array_unref(payload);
		return NULL;
	}
	be_put(out + OFF_SEQ, b->seq, 8);
	be_put(out + OFF_CREATED, (guint64)b->created, 8);
	be_put(out + OFF_COUNT, b->entries->len, 4);
	be_put(out + OFF_PAYLOAD_LEN, payload->len, 8);
	zr = compress2(out + OFF_PAYLOAD, &clen, payload->data, payload->len, level);
	if (zr != Z_OK) {
		set_error(error, BUNDLE_ERROR_PAYLOAD, "zlib compress2 failed (%d)", zr);
		g_free(out);
		g_byte_array_unref(payload);
		return NULL;
	}
	b->payload_len = payload->len;
	b->compressed_len = clen;
	g_byte_array_unref(payload);
	if (b->payload_len > (guint64)clen * BUNDLE_MAX_RATIO ||
	    OFF_PAYLOAD + clen + BUNDLE_TRAILER_LEN > BUNDLE_MAX_FILE_SIZE) {
		set_error(error, BUNDLE_ERROR_LIMIT, "the bundle would be over a size limit");
		g_free(out);
		return NULL;
	}
	be_put(out + OFF_COMPRESSED_LEN, clen, 8);
	b->crc = crc32(crc32(0L, Z_NULL, 0), out + OFF_PAYLOAD, clen);
	be_put(out + OFF_PAYLOAD + clen, b->crc, 4);
	total = OFF_PAYLOAD + clen + 4;
	if (!hmac_sha256(key, out, total, b->hmac)) {
		set_error(error, BUNDLE_ERROR_HMAC, "OpenSSL could not compute the HMAC");
		g_free(out);
		return NULL;
	}
	memcpy(out + total, b->hmac, BUNDLE_HMAC_LEN);
	total += BUNDLE_HMAC_LEN;
	b->hmac_checked = TRUE;
	return g_bytes_new_take(g_realloc(out, total), total);
}

/* Parse a NUL-padded NET/PO field after the HMAC said it is authentic. */
static gboolean
po_field_get(const guint8 *field, char out[ADDR_PO_MAX + 1], const char *what,
    GError **error)
{
	char net[ADDR_PART_MAX + 1], po[ADDR_PART_MAX + 1];
	size_t len = strnlen((const char *)field, BUNDLE_NAME_FIELD);
	GError *e = NULL;

	for (size_t i = len; i < BUNDLE_NAME_FIELD; i++)
		if (field[i] != 0) {
			set_error(error, BUNDLE_ERROR_PAYLOAD, "the %s field is not NUL padded",
			    what);
			return FALSE;
		}
	if (!addr_parse_po((const char *)field, len, net, po, &e)) {
		set_error(error, BUNDLE_ERROR_PAYLOAD, "the %s: %s", what, e->message);
		g_error_free(e);
		return FALSE;
	}
	g_snprintf(out, ADDR_PO_MAX + 1, "%s/%s", net, po);
	if (memcmp(out, field, len) != 0 || strlen(out) != len) {
		set_error(error, BUNDLE_ERROR_PAYLOAD, "the %s is not in canonical form", what);
		return FALSE;
	}
	return TRUE;
}

/* Steps 1 to 4 of docs/bundle-format.md: length, magic, version, limits. */
static gboolean
header_check(const guint8 *data, size_t len, guint64 *count, guint64 *plen, guint64 *clen,
    GError **error)
{
	guint version;

	/* 1. Length. */
	if (len < OFF_PAYLOAD + BUNDLE_TRAILER_LEN) {
		set_error(error, BUNDLE_ERROR_TRUNCATED, "%zu bytes, shorter than any bundle",
		    len);
		return FALSE;
	}
	*clen = be_get(data + OFF_COMPRESSED_LEN, 8);
	if (*clen != len - OFF_PAYLOAD - BUNDLE_TRAILER_LEN) {
		set_error(error, BUNDLE_ERROR_TRUNCATED,
		    "the header announces %" G_GUINT64_FORMAT " payload bytes, the file "
		    "holds %zu", *clen, len - OFF_PAYLOAD - BUNDLE_TRAILER_LEN);
		return FALSE;
	}
	/* 2. Magic. */
	if (memcmp(data + OFF_MAGIC, BUNDLE_MAGIC, BUNDLE_MAGIC_LEN) != 0) {
		set_error(error, BUNDLE_ERROR_MAGIC, "this is not a postgate bundle");
		return FALSE;
	}
	/* 3. Version. */
	version = (guint)be_get(data + OFF_VERSION, 2);
	if (version != BUNDLE_VERSION) {
		set_error(error, BUNDLE_ERROR_VERSION, "version %u, this reader knows %d",
		    version, BUNDLE_VERSION);
		return FALSE;
	}
	/* 4. Limits. */
	*count = be_get(data + OFF_COUNT, 4);
	*plen = be_get(data + OFF_PAYLOAD_LEN, 8);
	if (*count == 0 || *count > BUNDLE_MAX_ENTRIES) {
		set_error(error, BUNDLE_ERROR_LIMIT, "%" G_GUINT64_FORMAT " entries, allowed "
		    "1 to %u", *count, BUNDLE_MAX_ENTRIES);
		return FALSE;
	}
	if (len > BUNDLE_MAX_FILE_SIZE) {
		set_error(error, BUNDLE_ERROR_LIMIT, "%zu bytes, over the limit of %u", len,
		    BUNDLE_MAX_FILE_SIZE);
		return FALSE;
	}
	if (*plen > BUNDLE_MAX_PAYLOAD || *plen < *count * ENTRY_HEADER_LEN) {
		set_error(error, BUNDLE_ERROR_LIMIT, "a payload of %" G_GUINT64_FORMAT
		    " bytes for %" G_GUINT64_FORMAT " entries (at most %u bytes)", *plen,
		    *count, BUNDLE_MAX_PAYLOAD);
		return FALSE;
	}
	if (*plen > *clen * BUNDLE_MAX_RATIO) {
		set_error(error, BUNDLE_ERROR_LIMIT, "%" G_GUINT64_FORMAT " bytes would "
		    "inflate to %" G_GUINT64_FORMAT ", over the ratio limit of %u", *clen,
		    *plen, BUNDLE_MAX_RATIO);
		return FALSE;
	}
	return TRUE;
}

/* Steps 5 and 6: the HMAC (with a key) and the CRC-32 of the payload. */
static gboolean
integrity_check(const guint8 *data, size_t len, guint64 clen, GBytes *key, guint32 *crc,
    GError **error)
{
	guint8 mac[BUNDLE_HMAC_LEN];

	if (key) {
		if (!hmac_sha256(key, data, len - BUNDLE_HMAC_LEN, mac)) {
			set_error(error, BUNDLE_ERROR_HMAC, "OpenSSL could not compute the HMAC");
			return FALSE;
		}
		if (CRYPTO_memcmp(mac, data + len - BUNDLE_HMAC_LEN, BUNDLE_HMAC_LEN) != 0) {
			set_error(error, BUNDLE_ERROR_HMAC,
			    "the bundle is not authentic with this postoffice's key");
			return FALSE;
		}
	}
	*crc = (guint32)be_get(data + OFF_PAYLOAD + clen, 4);
	if (crc32(crc32(0L, Z_NULL, 0), data + OFF_PAYLOAD, (uInt)clen) != *crc) {
		set_error(error, BUNDLE_ERROR_CRC, "the CRC-32 of the payload does not match");
		return FALSE;
	}
	return TRUE;
}

/* Step 7: exactly plen bytes from exactly clen; NULL with an error. */
static GBytes *
inflate_payload(const guint8 *data, guint64 clen, guint64 plen, GError **error)
{
	guint8 *payload = g_malloc(plen ? plen : 1);
	uLongf outlen = plen;
	uLong inlen = clen;
	int zr = uncompress2(payload, &outlen, data + OFF_PAYLOAD, &inlen);

	if (zr != Z_OK || outlen != plen || inlen != clen) {
		set_error(error, BUNDLE_ERROR_PAYLOAD, zr == Z_OK ?
		    "the payload inflates to a length other than announced" :
		    "the payload does not inflate (zlib %d)", zr);
		g_free(payload);
		return NULL;
	}
	return g_bytes_new_take(payload, plen);
}

/* Step 8: the payload cut into its count entries, which fill it exactly. */
static gboolean
entries_split(Bundle *b, GBytes *all, guint64 count, GError **error)
{
	gsize plen;
	const guint8 *p = g_bytes_get_data(all, &plen);
	size_t pos = 0;

	for (guint64 i = 0; i < count; i++) {
		guint8 kind;
		guint64 elen;
		GBytes *slice;

		if (plen - pos < ENTRY_HEADER_LEN) {
			set_error(error, BUNDLE_ERROR_PAYLOAD,
			    "entry %" G_GUINT64_FORMAT " is cut short", i + 1);
			return FALSE;
		}
		kind = p[pos];
		elen = be_get(p + pos + 1, 4);
		pos += ENTRY_HEADER_LEN;
		if (kind != BUNDLE_ENTRY_MESSAGE && kind != BUNDLE_ENTRY_DIRECTORY) {
			set_error(error, BUNDLE_ERROR_PAYLOAD,
			    "entry %" G_GUINT64_FORMAT " has unknown kind %u", i + 1, kind);
			return FALSE;
		}
		if (elen > plen - pos || elen > MSG_MAX_SIZE) {
			set_error(error, BUNDLE_ERROR_PAYLOAD,
			    "entry %" G_GUINT64_FORMAT " runs past the payload or its limit",
			    i + 1);
			return FALSE;
		}
		slice = g_bytes_new_from_bytes(all, pos, elen);
		bundle_add_entry(b, kind, slice);
		g_bytes_unref(slice);
		pos += elen;
	}
	if (pos != plen) {
		set_error(error, BUNDLE_ERROR_PAYLOAD,
		    "%" G_GUINT64_FORMAT " bytes follow the last entry", (guint64)(plen - pos));
		return FALSE;
	}
	return TRUE;
}

/* Every message entry must decode before anything is applied. */
static gboolean
entries_verify(const Bundle *b, GError **error)
{
	for (guint i = 0; i < b->entries->len; i++) {
		BundleEntry *e = b->entries->pdata[i];
		LegacyMessage *m;
		GError *me = NULL;

		if (e->kind != BUNDLE_ENTRY_MESSAGE)
			continue;
		m = bundle_message(b, i, &me);
		if (!m) {
			set_error(error, BUNDLE_ERROR_PAYLOAD, "entry %u: %s", i + 1, me->message);
			g_error_free(me);
			return FALSE;
		}
		msg_free(m);
	}
	return TRUE;
}

Bundle *
bundle_decode(const guint8 *data, size_t len, GBytes *key, GError **error)
{
	guint64 count, plen, clen, seq;
	guint32 crc;
	GBytes *all;
	Bundle *b;
	gboolean ok;

	if (!header_check(data, len, &count, &plen, &clen, error) ||
	    !integrity_check(data, len, clen, key, &crc, error))
		return NULL;
	all = inflate_payload(data, clen, plen, error);
	if (!all)
		return NULL;
	b = g_new0(Bundle, 1);
	b->entries = g_ptr_array_new_with_free_func(entry_free);
	seq = be_get(data + OFF_SEQ, 8);
	ok = po_field_get(data + OFF_SOURCE, b->source, "source", error) &&
	    po_field_get(data + OFF_DEST, b->dest, "destination", error);
	if (ok && seq == 0) {
		set_error(error, BUNDLE_ERROR_PAYLOAD, "sequence number 0");
		ok = FALSE;
	}
	b->seq = seq;
	b->created = (gint64)be_get(data + OFF_CREATED, 8);
	b->payload_len = plen;
	b->compressed_len = clen;
	b->crc = crc;
	memcpy(b->hmac, data + len - BUNDLE_HMAC_LEN, BUNDLE_HMAC_LEN);
	b->hmac_checked = key != NULL;
	ok = ok && entries_split(b, all, count, error) && entries_verify(b, error);
	g_bytes_unref(all);
	if (!ok) {
		bundle_free(b);
		return NULL;
	}
	return b;
}

Bundle *
bundle_read_file(const char *path, GBytes *key, GError **error)
{
	AtomicReadInfo info;
	size_t len = 0;
	Bundle *b;
	guint8 *data = atomic_read_file(path, O_NOFOLLOW, BUNDLE_MAX_FILE_SIZE, &len, &info);

	if (data == NULL && info.status == ATOMIC_READ_NOT_REGULAR) {
		set_error(error, BUNDLE_ERROR_IO, "%s is not a regular file", path);
		return NULL;
	}
	if (data == NULL && info.status == ATOMIC_READ_TOO_BIG &&
	    (guint64)info.size > BUNDLE_MAX_FILE_SIZE) {
		set_error(error, BUNDLE_ERROR_LIMIT, "%s is %lld bytes, over the limit of %u",
		    path, (long long)info.size, BUNDLE_MAX_FILE_SIZE);
		return NULL;
	}
	if (data == NULL && info.status != ATOMIC_READ_TOO_BIG) {
		set_error(error, BUNDLE_ERROR_IO, "%s: %s", path, g_strerror(info.err));
		return NULL;
	}
	if (data == NULL || len > (size_t)info.size) {
		set_error(error, BUNDLE_ERROR_IO, "%s grew while it was read", path);
		g_free(data);
		return NULL;
	}
	b = bundle_decode(data, len, key, error);
	g_free(data);
	return b;
}

char *
bundle_file_name(const char *source, const char *dest, guint64 seq)
{
	char sn[ADDR_PART_MAX + 1], sp[ADDR_PART_MAX + 1];
	char dn[ADDR_PART_MAX + 1], dp[ADDR_PART_MAX + 1];

	/* Canonical names only: one pair, one spelling, nothing from content. */
	if (!addr_parse_po(source, strlen(source), sn, sp, NULL) ||
	    !addr_parse_po(dest, strlen(dest), dn, dp, NULL))
		return NULL;
	return g_strdup_printf("%s.%s+%s.%s+%010" G_GUINT64_FORMAT BUNDLE_SUFFIX, sn, sp,
	    dn, dp, seq);
}

gboolean
bundle_write(const char *dir, Bundle *b, GBytes *key, int level, char **name_out,
    GError **error)
{
	GBytes *bytes = bundle_encode(b, key, level, error);
	char *name;
	gsize n;
	const void *d;
	gboolean ok;

	if (!bytes)
		return FALSE;
	name = bundle_file_name(b->source, b->dest, b->seq);
	if (!name) {
		set_error(error, BUNDLE_ERROR_PAYLOAD, "bad source or destination name");
		g_bytes_unref(bytes);
		return FALSE;
	}
	d = g_bytes_get_data(bytes, &n);
	ok = atomic_write_file(dir, name, d, n, 0640, error);
	g_bytes_unref(bytes);
	if (ok && name_out)
		*name_out = name;
	else
		g_free(name);
	return ok;
}
