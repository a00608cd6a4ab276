/* fuzz_bundle.c - libFuzzer target for the bundle reader (postoffice/bundle.c).
 *
 * Feeds the bytes to bundle_decode twice: with the fixed 32-byte key of the
 * seed corpus (tests/fuzz/corpus/bundle, where the valid seeds are sealed
 * with it), and with no key, so that inputs without a valid HMAC still reach
 * the CRC, inflate, entry and message parsing.  Frees everything.  Beside
 * "no crash, no leak" it checks what callers rely on:
 *  - an error is set exactly when NULL is returned, in BUNDLE_ERROR, and its
 *    message leads with the name of the check (docs/bundle-format.md 10);
 *  - the key changes only the HMAC check: the two runs agree on every check
 *    before it, and a bundle accepted with the key is accepted without;
 *  - every message entry of an accepted bundle decodes, encodes, and its
 *    encoding is stable (decode -> encode -> decode -> encode gives the
 *    same bytes);
 *  - an accepted bundle encodes again and that decodes to the same entries.
 *
 * A third pass reads the same bytes as a list of entries (one byte for the
 * kind, two for the length, then the data; "payload-*" seeds are written that
 * way), seals them with bundle_encode and decodes the result with the key.
 * The CRC and the HMAC keep random bytes out of inflate and the message
 * decoder; this pass puts fuzzed message entries behind valid ones.  Such a
 * bundle must either be accepted with exactly these entries or refused as
 * "bad payload", and refused exactly when an entry has an unknown kind or a
 * message entry does not decode.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bundle.h"
#include "message.h"

/* The key of the seed corpus: exactly 32 bytes. */
#define FUZZ_KEY "postgate-fuzz-key-0123456789abcd"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static GBytes *
fuzz_key(void)
{
	static GBytes *key;

	if (!key)
		key = g_bytes_new_static(FUZZ_KEY, 32);
	return key;
}

/* Decode; check the error contract; return the bundle or NULL with *code. */
static Bundle *
decode(const uint8_t *data, size_t size, GBytes *key, int *code)
{
	GError *e = NULL;
	Bundle *b = bundle_decode(data, size, key, &e);

	if ((b == NULL) != (e != NULL))
		abort();
	*code = -1;
	if (e) {
		if (e->domain != BUNDLE_ERROR || e->code < BUNDLE_ERROR_TRUNCATED ||
		    e->code > BUNDLE_ERROR_PAYLOAD)
			abort();
		if (strncmp(e->message, bundle_error_name(e->code),
		    strlen(bundle_error_name(e->code))) != 0)
			abort();
		*code = e->code;
		g_error_free(e);
	} else if (b->hmac_checked != (key != NULL)) {
		abort();
	}
	return b;
}

static GByteArray *
encode_message(const LegacyMessage *m)
{
	GByteArray *out = g_byte_array_new();

	if (!msg_encode(m, out, NULL))
		abort();   /* the decoder validated it; the encoder must agree */
	return out;
}

/* Every message entry decodes, and its canonical encoding is stable. */
static void
check_messages(const Bundle *b)
{
	for (guint i = 0; i < b->entries->len; i++) {
		const BundleEntry *entry = b->entries->pdata[i];
		LegacyMessage *m, *m2;
		GByteArray *e1, *e2;

		if (entry->kind != BUNDLE_ENTRY_MESSAGE)
			continue;
		m = bundle_message(b, i, NULL);
		if (!m)
			abort();
		e1 = encode_message(m);
		m2 = msg_decode(e1->data, e1->len, NULL);
		if (!m2)
			abort();
		e2 = encode_message(m2);
		if (e1->len != e2->len || memcmp(e1->data, e2->data, e1->len) != 0)
			abort();
		g_byte_array_unref(e1);
		g_byte_array_unref(e2);
		msg_free(m);
		msg_free(m2);
	}
}

/* An accepted bundle encodes again, and that decodes to the same thing. */
static void
check_reencode(Bundle *b)
{
	GBytes *again = bundle_encode(b, fuzz_key(), 6, NULL);
	gsize n;
	const guint8 *d;
	Bundle *c;

	if (!again)
		abort();
	d = g_bytes_get_data(again, &n);
	c = bundle_decode(d, n, fuzz_key(), NULL);
	if (!c || c->entries->len != b->entries->len || c->seq != b->seq ||
	    c->created != b->created || strcmp(c->source, b->source) != 0 ||
	    strcmp(c->dest, b->dest) != 0)
		abort();
	for (guint i = 0; i < b->entries->len; i++) {
		const BundleEntry *x = b->entries->pdata[i], *y = c->entries->pdata[i];
		if (x->kind != y->kind || !g_bytes_equal(x->data, y->data))
			abort();
	}
	bundle_free(c);
	g_bytes_unref(again);
}

/* The entries of the third pass, parsed from the fuzzer's bytes. */
static void
check_sealed_entries(const uint8_t *data, size_t size)
{
	Bundle *b = bundle_new("CORP/HQ", "CORP/GW", 1), *d;
	gboolean all_good = TRUE;
	GBytes *sealed;
	GError *e = NULL;
	gsize n;
	const guint8 *p;

	while (size >= 3 && b->entries->len < 100) {
		guint8 k = data[0];
		size_t len = (size_t)data[1] << 8 | data[2];
		/* Mostly messages; some directories; a few unknown kinds. */
		BundleEntryKind kind = k < 0xf0 ? BUNDLE_ENTRY_MESSAGE :
		    k < 0xf8 ? BUNDLE_ENTRY_DIRECTORY : (BundleEntryKind)(k & 0x0f);
		GBytes *entry;
		data += 3;
		size -= 3;
		if (len > size)
			len = size;
		entry = g_bytes_new(data, len);
		bundle_add_entry(b, kind, entry);
		if (kind == BUNDLE_ENTRY_MESSAGE) {
			LegacyMessage *m = msg_decode(data, len, NULL);
			if (!m)
				all_good = FALSE;
			msg_free(m);
		} else if (kind != BUNDLE_ENTRY_DIRECTORY) {
			all_good = FALSE;
		}
		g_bytes_unref(entry);
		data += len;
		size -= len;
	}
	if (b->entries->len == 0) {
		bundle_free(b);
		return;
	}
	sealed = bundle_encode(b, fuzz_key(), 1, NULL);
	if (!sealed)
		abort();
	p = g_bytes_get_data(sealed, &n);
	d = bundle_decode(p, n, fuzz_key(), &e);
	if (all_good != (d != NULL))
		abort();
	if (d) {
		for (guint i = 0; i < b->entries->len; i++) {
			const BundleEntry *x = b->entries->pdata[i], *y = d->entries->pdata[i];
			if (x->kind != y->kind || !g_bytes_equal(x->data, y->data))
				abort();
		}
		check_messages(d);
	} else if (!g_error_matches(e, BUNDLE_ERROR, BUNDLE_ERROR_PAYLOAD)) {
		abort();
	}
	g_clear_error(&e);
	bundle_free(d);
	g_bytes_unref(sealed);
	bundle_free(b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int with_key, without_key;
	Bundle *kb = decode(data, size, fuzz_key(), &with_key);
	Bundle *nb = decode(data, size, NULL, &without_key);

	/* The key matters only from the HMAC check on. */
	if (without_key >= 0 && without_key < BUNDLE_ERROR_HMAC && with_key != without_key)
		abort();
	if (with_key >= 0 && with_key != BUNDLE_ERROR_HMAC && with_key != without_key)
		abort();
	if (kb && !nb)
		abort();
	if (nb) {
		check_messages(nb);
		check_reencode(nb);
	}
	bundle_free(kb);
	bundle_free(nb);
	check_sealed_entries(data, size);
	return 0;
}
