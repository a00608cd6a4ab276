/* fuzz_mime_legacy.c - libFuzzer target for the MIME -> legacy translator
 * (gateway/mime/mime_in.c, gateway/mime/translit.c).
 *
 * The first byte picks the codepage (CP437, CP850, CP1252); the rest is a
 * message, handed over as an exact-size copy.  Checked on every input:
 *  - NULL exactly when an error is set, and then only MIME_IN_ERROR_LIMIT;
 *  - the result carries no envelope (id, originator, recipients), its content
 *    is in the codepage asked for, and msg_validate passes once an id, an
 *    originator and a recipient are added; the entry then encodes and decodes;
 *  - the body has CRLF line ends only and no NUL; every attachment name is
 *    safe (msg_attachment_name_safe), has no ':' and no leading dot, and no two
 *    names are equal ignoring ASCII case;
 *  - at most MIME_IN_MAX_NOTES + 1 notes, each one printable ASCII line.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mime/mime_in.h"
#include "pg_limits.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_message(LegacyMessage *m, const char *cp)
{
	gsize blen = 0;
	const char *b;
	GHashTable *names;
	GByteArray *enc;
	LegacyMessage *back;

	if (m->id || m->originator.addr || m->recipients->len || strcmp(m->codepage, cp) != 0)
		abort();
	b = g_bytes_get_data(m->body, &blen);
	for (gsize i = 0; i < blen; i++) {
		if (b[i] == '\0')
			abort();
		if (b[i] == '\n' && (i == 0 || b[i - 1] != '\r'))
			abort();
		if (b[i] == '\r' && (i + 1 >= blen || b[i + 1] != '\n'))
			abort();
	}
	names = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	for (guint i = 0; i < m->attachments->len; i++) {
		MsgAttachment *a = m->attachments->pdata[i];
		char *key;

		if (!msg_attachment_name_safe(a->name, strlen(a->name)) || strchr(a->name, ':') ||
		    a->name[0] == '.')
			abort();
		key = g_ascii_strdown(a->name, -1);
		if (g_hash_table_contains(names, key))
			abort();
		g_hash_table_add(names, key);
	}
	g_hash_table_unref(names);
	m->id = g_strdup("CORP/GW.FUZZ.1");
	m->originator.addr = g_strdup("SMTP:fuzz@example.org");
	m->originator.name = g_strdup("");
	msg_add_recipient(m, "CORP/HQ/FUZZ", "", TRUE);
	/* An unparseable From has the address "": msg_validate refuses it. */
	if (m->from.addr && !*m->from.addr) {
		g_free(m->from.addr);
		m->from.addr = NULL;
	}
	if (!msg_validate(m, NULL))
		abort();
	enc = g_byte_array_new();
	if (!msg_encode(m, enc, NULL))
		abort();
	back = msg_decode(enc->data, enc->len, NULL);
	if (!back || back->attachments->len != m->attachments->len ||
	    back->hops->len != m->hops->len)
		abort();
	msg_free(back);
	g_byte_array_unref(enc);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const cps[] = { "CP437", "CP850", "CP1252" };
	const char *cp;
	MimeInStats st = { 0 };
	GError *e = NULL;
	LegacyMessage *m;
	guint8 *copy;

	if (size == 0)
		return 0;
	cp = cps[data[0] % G_N_ELEMENTS(cps)];
	copy = g_malloc(size > 1 ? size - 1 : 1);   /* exact size: ASan sees overreads */
	memcpy(copy, data + 1, size - 1);
	m = mime_in_translate(copy, size - 1, cp, &st, &e);
	g_free(copy);
	if ((m == NULL) != (e != NULL))
		abort();
	if (e && (e->domain != MIME_IN_ERROR || e->code != MIME_IN_ERROR_LIMIT))
		abort();
	if (!st.notes || st.notes->len > MIME_IN_MAX_NOTES + 1)
		abort();
	for (guint i = 0; i < st.notes->len; i++)
		for (const char *p = st.notes->pdata[i]; *p; p++)
			if (*p < 0x20 || *p > 0x7e)
				abort();
	if (m)
		check_message(m, cp);
	msg_free(m);
	g_clear_error(&e);
	mime_in_stats_clear(&st);
	return 0;
}
