/* values.c - the value types of postgate.conf: text to a typed value.
 *
 * Owns: parsing one value, given its key's row, into its typed and its
 * canonical form (numbers, sizes and durations in range, names, paths,
 * domain names, HOST:PORT, legacy postoffices and mailboxes, codepages, and
 * the lists of domains, networks, nameservers, listen addresses and proxy
 * templates), with a message a user can act on when it is bad; the
 * defaults' canonical text; config_hostport_parse.  Never: knows lines,
 * groups or files; a refused value is its caller's error to place.
 */
#include "config.h"

#include <string.h>

#include <gio/gio.h>

#include "config/config_int.h"
#include "pg_log.h"

#include "address.h"
#include "codepage.h"

gboolean
cfg_is_blank(char c)
{
	return c == ' ' || c == '\t';
}

void
cfg_trim(const char **s, size_t *len)
{
	while (*len > 0 && cfg_is_blank(**s)) {
		(*s)++;
		(*len)--;
	}
	while (*len > 0 && cfg_is_blank((*s)[*len - 1]))
		(*len)--;
}

static gboolean
value_fail(GError **error, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static gboolean
value_fail(GError **error, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_set_error_literal(error, CONFIG_ERROR, CONFIG_ERROR_VALUE, msg);
	g_free(msg);
	return FALSE;
}

/* Leading decimal digits of s; FALSE when there are none or they overflow. */
static gboolean
parse_digits(const char *s, gint64 *n, const char **end)
{
	gint64 v = 0;
	const char *p = s;

	for (; g_ascii_isdigit(*p); p++) {
		int d = *p - '0';
		if (v > (G_MAXINT64 - d) / 10)
			return FALSE;
		v = v * 10 + d;
	}
	if (p == s)
		return FALSE;
	*n = v;
	*end = p;
	return TRUE;
}

char *
cfg_range_format(const CfgKeyInfo *k, gint64 n)
{
	if (k->type == T_DURATION)
		return pg_duration_text(n);
	return g_strdup_printf("%" G_GINT64_FORMAT, n);
}

static gboolean
parse_number(const CfgKeyInfo *k, const char *s, gint64 *out, GError **error)
{
	const char *end;
	gint64 n, mult = 1;
	char *lo, *hi;
	gboolean ok;

	if (!parse_digits(s, &n, &end))
		goto bad;
	if (k->type == T_DURATION && *end != '\0') {
		switch (*end++) {
		case 's': mult = SECOND; break;
		case 'm': mult = MINUTE; break;
		case 'h': mult = HOUR; break;
		case 'd': mult = DAY; break;
		case 'w': mult = 7 * DAY; break;
		default: goto bad;
		}
	} else if (k->type == T_SIZE && *end != '\0') {
		switch (*end++) {
		case 'k': case 'K': mult = 1024; break;
		case 'M': mult = 1024 * 1024; break;
		case 'G': mult = 1024 * 1024 * 1024; break;
		default: goto bad;
		}
	}
	if (*end != '\0')
		goto bad;
	ok = n <= G_MAXINT64 / mult;
	n = ok ? n * mult : G_MAXINT64;
	if (!ok || n < k->min || n > k->max) {
		lo = cfg_range_format(k, k->min);
		hi = cfg_range_format(k, k->max);
		value_fail(error, "\"%s\" is out of range (%s to %s)", s, lo, hi);
		g_free(lo);
		g_free(hi);
		return FALSE;
	}
	*out = n;
	return TRUE;
bad:
	if (k->type == T_DURATION)
		return value_fail(error, "\"%s\" is not a duration (N, Ns, Nm, Nh, Nd "
		    "or Nw)", s);
	if (k->type == T_SIZE)
		return value_fail(error, "\"%s\" is not a size (N, Nk, NM or NG)", s);
	return value_fail(error, "\"%s\" is not a whole number", s);
}

static gboolean
domain_valid(const char *s)
{
	size_t len = strlen(s), label = 0;

	if (len == 0 || len > ADDR_SMTP_DOMAIN_MAX)
		return FALSE;
	for (size_t i = 0; i <= len; i++) {
		char c = s[i];
		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63 || s[i - 1] == '-' ||
			    s[i - label] == '-')
				return FALSE;
			label = 0;
		} else if (g_ascii_isalnum(c) || c == '-') {
			label++;
		} else {
			return FALSE;
		}
	}
	return TRUE;
}

gboolean
config_hostport_parse(const char *text, size_t len, guint16 default_port,
    gboolean ip_only, PgHostPort *out, GError **error)
{
	const char *host, *rest;
	size_t hlen, rlen;
	gboolean literal = FALSE;
	gint64 port = default_port;
	char *h, *shown;

	memset(out, 0, sizeof *out);
	cfg_trim(&text, &len);
	shown = g_strndup(text, len);
	if (memchr(text, '\0', len) != NULL) {
		value_fail(error, "host contains a NUL byte");
		goto fail;
	}
	if (len == 0) {
		value_fail(error, "host is empty");
		goto fail;
	}
	if (text[0] == '[') {
		const char *close = memchr(text, ']', len);
		if (close == NULL) {
			value_fail(error, "\"%s\" has no closing ]", shown);
			goto fail;
		}
		host = text + 1;
		hlen = (size_t)(close - host);
		rest = close + 1;
		literal = TRUE;
	} else {
		const char *colon = NULL;
		unsigned colons = 0;
		for (size_t i = 0; i < len; i++)
			if (text[i] == ':') {
				colon = text + i;
				colons++;
			}
		if (colons > 1) {
			value_fail(error, "\"%s\": write an IPv6 address in brackets, "
			    "[ADDRESS]:PORT", shown);
			goto fail;
		}
		host = text;
		hlen = colon ? (size_t)(colon - text) : len;
		rest = text + hlen;
	}
	rlen = (size_t)(text + len - rest);
	if (rlen > 0) {
		const char *end;
		char *p;
		gboolean ok;
		if (rest[0] != ':') {
			value_fail(error, "\"%s\": expected :PORT after the host", shown);
			goto fail;
		}
		p = g_strndup(rest + 1, rlen - 1);
		ok = parse_digits(p, &port, &end) && *end == '\0' && port >= 1 &&
		    port <= 65535;
		g_free(p);
		if (!ok) {
			value_fail(error, "\"%s\": the port must be a number from 1 to "
			    "65535", shown);
			goto fail;
		}
	}
	h = g_ascii_strdown(host, (gssize)hlen);
	if (hlen == 0 || (!g_hostname_is_ip_address(h) &&
	    (ip_only || !domain_valid(h)))) {
		value_fail(error, "\"%s\": %s", shown, ip_only ?
		    "the host must be an IP address" :
		    "the host must be a domain name or an IP address");
		g_free(h);
		goto fail;
	}
	if (!literal && strchr(h, ':') != NULL) {
		/* Cannot happen (two colons are refused above); stay safe. */
		value_fail(error, "\"%s\": write an IPv6 address in brackets", shown);
		g_free(h);
		goto fail;
	}
	out->host = h;
	out->port = (guint16)port;
	out->literal = literal;
	g_free(shown);
	return TRUE;
fail:
	g_free(shown);
	return FALSE;
}

void
config_hostport_clear(PgHostPort *hp)
{
	g_free(hp->host);
	memset(hp, 0, sizeof *hp);
}

static char *
hostport_format(const PgHostPort *hp)
{
	if (hp->literal)
		return g_strdup_printf("[%s]:%u", hp->host, (unsigned)hp->port);
	return g_strdup_printf("%s:%u", hp->host, (unsigned)hp->port);
}

/* One proxy template: SMTP:local@domain or smtp:..., with %m %p %n %%. */
static gboolean
proxy_valid(const char *s, GError **error)
{
	GString *x;
	gboolean has_m = FALSE, ok;
	char out[ADDR_SMTP_MAX + 1];
	GError *e = NULL;

	if (strncmp(s, "SMTP:", 5) != 0 && strncmp(s, "smtp:", 5) != 0)
		return value_fail(error, "proxy template \"%s\" must start with SMTP: "
		    "(the primary) or smtp: (a secondary address)", s);
	x = g_string_new(NULL);
	for (const char *p = s + 5; *p; p++) {
		if (*p != '%') {
			g_string_append_c(x, *p);
			continue;
		}
		switch (p[1]) {
		case 'm': has_m = TRUE; /* FALLTHROUGH */
		case 'p': case 'n': g_string_append_c(x, 'x'); break;
		case '%': g_string_append_c(x, '%'); break;
		default:
			g_string_free(x, TRUE);
			return value_fail(error, "proxy template \"%s\": %% must be "
			    "followed by m, p, n or %%", s);
		}
		p++;
	}
	if (!has_m) {
		g_string_free(x, TRUE);
		return value_fail(error, "proxy template \"%s\" has no %%m: every "
		    "entry would get the same address", s);
	}
	ok = addr_parse_smtp(x->str, x->len, out, &e);
	g_string_free(x, TRUE);
	if (!ok) {
		value_fail(error, "proxy template \"%s\" makes no valid address: %s",
		    s, e->message);
		g_error_free(e);
	}
	return ok;
}

/* One list item, checked and made canonical; NULL and error when bad. */
static char *
item_parse(const CfgKeyInfo *k, const char *item, GError **error)
{
	GInetAddressMask *mask;
	PgHostPort hp;
	char *s;

	switch (k->type) {
	case T_DOMAINS:
		s = g_ascii_strdown(item, -1);
		if (!domain_valid(s)) {
			value_fail(error, "\"%s\" is not a domain name", item);
			g_free(s);
			return NULL;
		}
		return s;
	case T_NETWORKS:
		mask = g_inet_address_mask_new_from_string(item, NULL);
		if (mask == NULL) {
			value_fail(error, "\"%s\" is not a network (ADDRESS/PREFIX, "
			    "no host bits set)", item);
			return NULL;
		}
		s = g_inet_address_mask_to_string(mask);
		g_object_unref(mask);
		return s;
	case T_NAMESERVERS:
	case T_LISTEN:
		if (!config_hostport_parse(item, strlen(item), k->port, TRUE, &hp,
		    error))
			return NULL;
		s = hostport_format(&hp);
		config_hostport_clear(&hp);
		return s;
	case T_PROXIES:
		return proxy_valid(item, error) ? g_strdup(item) : NULL;
	default:
		g_error("config: key %s is no list", k->name);
		return NULL;
	}
}

static gboolean
list_parse(const CfgKeyInfo *k, const char *s, CfgValue *out, GError **error)
{
	GPtrArray *items = g_ptr_array_new_with_free_func(g_free);
	GHashTable *seen = g_hash_table_new(g_str_hash, g_str_equal);
	char **parts = g_strsplit(s, ",", -1);
	gboolean primary = FALSE;

	for (char **p = parts; *p; p++) {
		const char *t = *p;
		size_t tlen = strlen(t);
		char *item, *canon;

		cfg_trim(&t, &tlen);
		if (tlen == 0) {
			value_fail(error, "empty item in the list (a comma too many?)");
			goto fail;
		}
		item = g_strndup(t, tlen);
		canon = item_parse(k, item, error);
		g_free(item);
		if (canon == NULL)
			goto fail;
		if (g_hash_table_contains(seen, canon)) {
			value_fail(error, "\"%s\" is listed twice", canon);
			g_free(canon);
			goto fail;
		}
		g_hash_table_add(seen, canon);  /* owned by items */
		if (k->type == T_PROXIES && strncmp(canon, "SMTP:", 5) == 0)
			primary = TRUE;
		g_ptr_array_add(items, canon);
	}
	if (k->type == T_PROXIES && items->len > 0 && !primary) {
		value_fail(error, "no SMTP: template: one address must be the primary");
		goto fail;
	}
	g_hash_table_destroy(seen);
	g_strfreev(parts);
	g_ptr_array_add(items, NULL);
	out->list = (char **)g_ptr_array_free(items, FALSE);
	out->text = g_strjoinv(", ", out->list);
	return TRUE;
fail:
	g_hash_table_destroy(seen);
	g_strfreev(parts);
	g_ptr_array_free(items, TRUE);
	return FALSE;
}

void
cfg_value_clear(CfgValue *v)
{
	g_free(v->text);
	g_strfreev(v->list);
	config_hostport_clear(&v->hp);
	memset(v, 0, sizeof *v);
}

static gboolean
empty_ok(const CfgKeyInfo *k)
{
	return (k->flags & K_EMPTY_OK) || (k->def != NULL && *k->def == '\0');
}

/* Parse s (trimmed, no NUL, no control characters) as a value of key k. */
gboolean
cfg_value_parse(const CfgKeyInfo *k, const char *s, CfgValue *out,
    GError **error)
{
	char net[ADDR_PART_MAX + 1], po[ADDR_PART_MAX + 1];
	GError *e = NULL;

	memset(out, 0, sizeof *out);
	if (*s == '\0') {
		if (!empty_ok(k))
			return value_fail(error, "the value must not be empty");
		out->text = g_strdup("");
		if (cfg_types[k->type].list)
			out->list = g_new0(char *, 1);
		return TRUE;
	}
	switch (k->type) {
	case T_STRING:
	case T_PATH:
		if (k->type == T_PATH && s[0] != '/')
			return value_fail(error, "\"%s\" is not an absolute path", s);
		out->text = g_strdup(s);
		return TRUE;
	case T_NAME:
		if (strlen(s) > CONFIG_NAME_MAX ||
		    strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		    "0123456789-_") != strlen(s))
			return value_fail(error, "\"%s\" is not a name (1 to %u of "
			    "A-Z a-z 0-9 - _)", s, CONFIG_NAME_MAX);
		out->text = g_strdup(s);
		return TRUE;
	case T_INT:
	case T_SIZE:
	case T_DURATION:
		if (!parse_number(k, s, &out->num, error))
			return FALSE;
		out->text = k->type == T_DURATION ? pg_duration_text(out->num) :
		    g_strdup_printf("%" G_GINT64_FORMAT, out->num);
		return TRUE;
	case T_ENUM: {
		char **w = g_strsplit(k->choices, "|", -1);
		gboolean found = g_strv_contains((const char *const *)w, s);
		g_strfreev(w);
		if (!found)
			return value_fail(error, "\"%s\" is not one of %s", s, k->choices);
		out->text = g_strdup(s);
		return TRUE;
	}
	case T_HOSTNAME:
		out->text = g_ascii_strdown(s, -1);
		if (!domain_valid(out->text)) {
			g_free(out->text);
			out->text = NULL;
			return value_fail(error, "\"%s\" is not a domain name", s);
		}
		return TRUE;
	case T_HOSTPORT:
		if (!config_hostport_parse(s, strlen(s), k->port,
		    (k->flags & K_IP_ONLY) != 0, &out->hp, error))
			return FALSE;
		out->text = hostport_format(&out->hp);
		return TRUE;
	case T_PO:
		if (!addr_parse_po(s, strlen(s), net, po, &e)) {
			value_fail(error, "%s", e->message);
			g_error_free(e);
			return FALSE;
		}
		out->text = g_strdup_printf("%s/%s", net, po);
		return TRUE;
	case T_MAILBOX: {
		PgAddr a;
		if (!addr_parse(s, strlen(s), &a, &e)) {
			value_fail(error, "%s", e->message);
			g_error_free(e);
			return FALSE;
		}
		if (a.kind != ADDR_KIND_LEGACY)
			return value_fail(error, "\"%s\" is not a legacy mailbox NET/PO/MAILBOX", s);
		out->text = addr_format(&a);
		return TRUE;
	}
	case T_CODEPAGE:
		if (strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		    "0123456789-_.:") != strlen(s) || !cp_supported(s))
			return value_fail(error, "\"%s\" is not a codepage iconv knows "
			    "(CP437, CP850, CP1252, ...)", s);
		out->text = g_ascii_strup(s, -1);
		return TRUE;
	case T_DOMAINS:
	case T_NETWORKS:
	case T_NAMESERVERS:
	case T_LISTEN:
	case T_PROXIES:
		return list_parse(k, s, out, error);
	case T_COUNT:
		break;
	}
	g_error("config: key %s has no type", k->name);
	return FALSE;
}

/* The canonical text of k's default; NULL for a required key. */
char *
cfg_default_text(const CfgKeyInfo *k)
{
	CfgValue v;
	GError *e = NULL;
	char *text;

	if (k->def == NULL)
		return NULL;
	if (!cfg_value_parse(k, k->def, &v, &e))
		g_error("config: default of %s is bad: %s", k->name, e->message);
	text = v.text;
	v.text = NULL;
	cfg_value_clear(&v);
	return text;
}
