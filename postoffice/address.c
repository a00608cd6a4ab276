/* address.c - legacy NET/PO/MAILBOX and typed SMTP: addresses (see address.h).
 *
 * Implements SPEC 1 and the address part of RFC 5321 4.1.2 / 4.5.3.1 that a
 * gateway needs: dot-atom local parts and host-name domains.  Quoted local
 * parts and address literals are refused where an address is stored: no
 * directory entry can hold them.  A quoted local part is still valid syntax
 * where mail is addressed (addr_parse_smtp_quoted): it reaches no entry.
 */
#include "config.h"

#include <string.h>

#include "address.h"
#include "pg_log.h"

G_DEFINE_QUARK(postgate-address-error-quark, addr_error)

static void
trim(const char **text, size_t *len)
{
	while (*len > 0 && (**text == ' ' || **text == '\t')) {
		(*text)++;
		(*len)--;
	}
	while (*len > 0 && ((*text)[*len - 1] == ' ' || (*text)[*len - 1] == '\t'))
		(*len)--;
}

static gboolean
fail(GError **error, const char *text, size_t len, const char *why)
{
	char *q = pg_shown(text, (gssize)len, 80, TRUE);
	g_set_error(error, ADDR_ERROR, ADDR_ERROR_SYNTAX, "bad address %s: %s", q, why);
	g_free(q);
	return FALSE;
}

/* Why one part of a legacy address is wrong, into why; NULL when it is fine. */
static const char *
part_problem(const char *text, size_t len, const char *what, char out[ADDR_PART_MAX + 1],
    char *why, size_t whylen)
{
	if (len == 0) {
		g_snprintf(why, whylen, "the %s is empty", what);
		return why;
	}
	if (len > ADDR_PART_MAX) {
		g_snprintf(why, whylen, "the %s is longer than %d characters", what,
		    ADDR_PART_MAX);
		return why;
	}
	for (size_t i = 0; i < len; i++) {
		char c = text[i];
		if (!g_ascii_isalnum(c) && c != '-' && c != '_') {
			g_snprintf(why, whylen, "the %s may hold only A-Z 0-9 - _ "
			    "(character %zu is not one)", what, i + 1);
			return why;
		}
		out[i] = g_ascii_toupper(c);
	}
	out[len] = '\0';
	return NULL;
}

gboolean
addr_parse_part(const char *text, size_t len, const char *what,
    char out[ADDR_PART_MAX + 1], GError **error)
{
	char why[128];

	if (part_problem(text, len, what, out, why, sizeof why))
		return fail(error, text, len, why);
	return TRUE;
}

/* Split text at '/' into at most max parts; returns the number of parts. */
static int
split_slash(const char *text, size_t len, const char **part, size_t *plen, int max)
{
	int n = 0;
	size_t start = 0;

	for (size_t i = 0; i <= len; i++) {
		if (i == len || text[i] == '/') {
			if (n == max)
				return max + 1;
			part[n] = text + start;
			plen[n] = i - start;
			n++;
			start = i + 1;
		}
	}
	return n;
}

gboolean
addr_parse_po(const char *text, size_t len, char net[ADDR_PART_MAX + 1],
    char po[ADDR_PART_MAX + 1], GError **error)
{
	const char *part[2];
	size_t plen[2];
	char why[128];

	trim(&text, &len);
	if (split_slash(text, len, part, plen, 2) != 2)
		return fail(error, text, len, "a postoffice is written NET/PO");
	/* The error names the whole text, not just the part. */
	if (part_problem(part[0], plen[0], "network", net, why, sizeof why) ||
	    part_problem(part[1], plen[1], "postoffice", po, why, sizeof why))
		return fail(error, text, len, why);
	return TRUE;
}

static gboolean
atext(char c)
{
	return g_ascii_isalnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

gboolean
addr_parse_smtp(const char *text, size_t len, char out[ADDR_SMTP_MAX + 1],
    GError **error)
{
	const char *at = NULL;
	size_t llen, dlen, label = 0;

	trim(&text, &len);
	for (size_t i = 0; i < len; i++)
		if (text[i] == '@')
			at = text + i;   /* the last '@' separates the domain */
	if (len == 0)
		return fail(error, text, len, "the SMTP address is empty");
	if (len > ADDR_SMTP_MAX)
		return fail(error, text, len, "an SMTP address has at most 254 characters");
	if (!at)
		return fail(error, text, len, "an SMTP address is written local@domain");
	llen = (size_t)(at - text);
	dlen = len - llen - 1;
	if (llen == 0 || llen > ADDR_SMTP_LOCAL_MAX)
		return fail(error, text, len, "the local part must have 1 to 64 characters");
	for (size_t i = 0; i < llen; i++) {
		char c = text[i];
		if (c == '.') {
			if (i == 0 || i == llen - 1 || text[i - 1] == '.')
				return fail(error, text, len,
				    "the local part has a leading, trailing or double dot");
		} else if (!atext(c)) {
			return fail(error, text, len, c == '"' ?
			    "quoted local parts are not supported" :
			    "the local part holds a character that is not allowed");
		}
	}
	if (dlen == 0 || dlen > ADDR_SMTP_DOMAIN_MAX)
		return fail(error, text, len, "the domain must have 1 to 253 characters");
	for (size_t i = 0; i <= dlen; i++) {
		char c = i < dlen ? at[1 + i] : '.';
		if (c == '.') {
			if (label == 0 || label > 63)
				return fail(error, text, len,
				    "each domain label must have 1 to 63 characters");
			if (at[i] == '-')
				return fail(error, text, len, "a domain label ends in '-'");
			label = 0;
		} else if (g_ascii_isalnum(c) || c == '-') {
			if (c == '-' && label == 0)
				return fail(error, text, len, "a domain label starts with '-'");
			label++;
		} else {
			return fail(error, text, len, c == '[' ?
			    "address literals are not supported" :
			    "the domain holds a character that is not allowed");
		}
	}
	memcpy(out, text, llen + 1);
	for (size_t i = 0; i < dlen; i++)
		out[llen + 1 + i] = g_ascii_tolower(at[1 + i]);
	out[len] = '\0';
	return TRUE;
}

/* The length of a Quoted-string local part (RFC 5321 4.1.2: qtextSMTP,
 * quoted-pairSMTP) at the start of text, quotes included; 0 when malformed. */
static size_t
quoted_len(const char *text, size_t len)
{
	for (size_t i = 1; i < len; i++) {
		char c = text[i];

		if (c == '"')
			return i + 1;
		if (c == '\\') {
			if (++i >= len || text[i] < ' ' || text[i] > '~')
				return 0;
		} else if (c < ' ' || c > '~') {
			return 0;
		}
	}
	return 0;
}

gboolean
addr_parse_smtp_quoted(const char *text, size_t len, char out[ADDR_SMTP_MAX + 1],
    GError **error)
{
	char probe[ADDR_SMTP_MAX + 3], norm[ADDR_SMTP_MAX + 1];
	size_t qlen, dlen;

	trim(&text, &len);
	if (len == 0 || text[0] != '"')
		return addr_parse_smtp(text, len, out, error);
	if (len > ADDR_SMTP_MAX)
		return fail(error, text, len, "an SMTP address has at most 254 characters");
	qlen = quoted_len(text, len);
	if (qlen == 0)
		return fail(error, text, len, "the quoted local part is not closed, or holds "
		    "a character that is not allowed");
	if (qlen > ADDR_SMTP_LOCAL_MAX)
		return fail(error, text, len, "the local part must have 1 to 64 characters");
	if (qlen >= len || text[qlen] != '@')
		return fail(error, text, len, "an SMTP address is written local@domain");
	/* The domain has the rules of any other: let addr_parse_smtp judge
	 * "x@domain". */
	dlen = len - qlen - 1;
	probe[0] = 'x';
	probe[1] = '@';
	memcpy(probe + 2, text + qlen + 1, dlen);
	if (dlen == 0 || text[qlen + 1] == ' ' || text[qlen + 1] == '\t' ||
	    !addr_parse_smtp(probe, dlen + 2, norm, NULL))
		return fail(error, text, len, "the domain is not a valid host name");
	memcpy(out, text, qlen);
	memcpy(out + qlen, norm + 1, dlen + 2);   /* "@domain" and its NUL */
	return TRUE;
}

gboolean
addr_parse(const char *text, size_t len, PgAddr *out, GError **error)
{
	const char *part[3];
	size_t plen[3];
	char why[128];

	memset(out, 0, sizeof *out);
	trim(&text, &len);
	if (len >= 5 && g_ascii_strncasecmp(text, "SMTP:", 5) == 0) {
		out->kind = ADDR_KIND_SMTP;
		return addr_parse_smtp(text + 5, len - 5, out->smtp, error);
	}
	out->kind = ADDR_KIND_LEGACY;
	if (memchr(text, '@', len))
		return fail(error, text, len,
		    "an Internet address must be written SMTP:local@domain");
	if (split_slash(text, len, part, plen, 3) != 3)
		return fail(error, text, len,
		    "a legacy address is written NET/PO/MAILBOX");
	if (part_problem(part[0], plen[0], "network", out->net, why, sizeof why) ||
	    part_problem(part[1], plen[1], "postoffice", out->po, why, sizeof why) ||
	    part_problem(part[2], plen[2], "mailbox", out->mailbox, why, sizeof why))
		return fail(error, text, len, why);
	return TRUE;
}

char *
addr_format(const PgAddr *addr)
{
	if (addr->kind == ADDR_KIND_SMTP)
		return g_strdup_printf("SMTP:%s", addr->smtp);
	return g_strdup_printf("%s/%s/%s", addr->net, addr->po, addr->mailbox);
}

char *
addr_canonical(const char *text, size_t len, GError **error)
{
	PgAddr a;

	if (!addr_parse(text, len, &a, error))
		return NULL;
	return addr_format(&a);
}

gboolean
addr_same_po(const PgAddr *addr, const char *net, const char *po)
{
	return addr->kind == ADDR_KIND_LEGACY && g_ascii_strcasecmp(addr->net, net) == 0 &&
	    g_ascii_strcasecmp(addr->po, po) == 0;
}
