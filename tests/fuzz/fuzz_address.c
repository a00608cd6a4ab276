/* fuzz_address.c - libFuzzer target for the address parsers (postoffice/address.c).
 *
 * Feeds the bytes, by length and without a terminator, to addr_parse,
 * addr_parse_po, addr_parse_smtp and addr_parse_part.  Beside "no crash, no
 * over-read" (libFuzzer's buffer is exactly size bytes) it checks what the
 * rest of postgate relies on (SPEC 1, docs/bundle-format.md 7.6):
 *  - an error is set exactly when a parser refuses, in ADDR_ERROR;
 *  - an accepted legacy address has three parts of 1-10 of A-Z 0-9 - _;
 *    an accepted SMTP address is at most 254 bytes with a lower-case domain;
 *  - the canonical text of an accepted address parses to itself, and so do
 *    an accepted NET/PO and an accepted local@domain.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_error(gboolean ok, GError *e)
{
	if (ok != (e == NULL))
		abort();
	if (e && (e->domain != ADDR_ERROR || e->message[0] == '\0'))
		abort();
}

static void
check_part(const char *p)
{
	size_t n = strlen(p);

	if (n < 1 || n > ADDR_PART_MAX)
		abort();
	for (size_t i = 0; i < n; i++)
		if (!(g_ascii_isupper(p[i]) || g_ascii_isdigit(p[i]) || p[i] == '-' || p[i] == '_'))
			abort();
}

static void
check_smtp(const char *s)
{
	const char *at = strrchr(s, '@');

	if (strlen(s) > ADDR_SMTP_MAX || !at || at == s || at[1] == '\0')
		abort();
	for (const char *c = at + 1; *c; c++)
		if (g_ascii_isupper(*c))
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	PgAddr a, b;
	char net[ADDR_PART_MAX + 1], po[ADDR_PART_MAX + 1], part[ADDR_PART_MAX + 1];
	char smtp[ADDR_SMTP_MAX + 1], smtp2[ADDR_SMTP_MAX + 1];
	GError *e = NULL;
	gboolean ok;

	/* addr_parse: canonical text is a fixed point. */
	ok = addr_parse(text, size, &a, &e);
	check_error(ok, e);
	g_clear_error(&e);
	if (ok) {
		char *canon = addr_format(&a), *again;
		if (a.kind == ADDR_KIND_LEGACY) {
			check_part(a.net);
			check_part(a.po);
			check_part(a.mailbox);
			if (!addr_same_po(&a, a.net, a.po))
				abort();
		} else if (a.kind == ADDR_KIND_SMTP) {
			check_smtp(a.smtp);
			if (addr_same_po(&a, a.net, a.po))
				abort();
		} else {
			abort();
		}
		if (!addr_parse(canon, strlen(canon), &b, NULL) || b.kind != a.kind)
			abort();
		again = addr_format(&b);
		if (strcmp(canon, again) != 0)
			abort();
		g_free(again);
		g_free(canon);
	}

	/* addr_parse_po: NET/PO parses to itself. */
	ok = addr_parse_po(text, size, net, po, &e);
	check_error(ok, e);
	g_clear_error(&e);
	if (ok) {
		char *joined = g_strdup_printf("%s/%s", net, po);
		char net2[ADDR_PART_MAX + 1], po2[ADDR_PART_MAX + 1];
		check_part(net);
		check_part(po);
		if (!addr_parse_po(joined, strlen(joined), net2, po2, NULL) ||
		    strcmp(net, net2) != 0 || strcmp(po, po2) != 0)
			abort();
		g_free(joined);
	}

	/* addr_parse_smtp: local@domain parses to itself. */
	ok = addr_parse_smtp(text, size, smtp, &e);
	check_error(ok, e);
	g_clear_error(&e);
	if (ok) {
		check_smtp(smtp);
		if (!addr_parse_smtp(smtp, strlen(smtp), smtp2, NULL) || strcmp(smtp, smtp2) != 0)
			abort();
	}

	/* addr_parse_part: one part, no trimming. */
	ok = addr_parse_part(text, size, "mailbox", part, &e);
	check_error(ok, e);
	g_clear_error(&e);
	if (ok) {
		check_part(part);
		if (strlen(part) != size || g_ascii_strncasecmp(part, text, size) != 0)
			abort();
	}
	return 0;
}
