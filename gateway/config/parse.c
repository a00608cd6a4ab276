/* parse.c - the postgate.conf reader: lines, groups, keys, errors in line order.
 *
 * Owns: reading the file (bounded by CONFIG_FILE_MAX; a FIFO or directory
 * refused before a read), splitting it on (buffer, length), line by line,
 * never trusting a terminator: a NUL byte, invalid UTF-8, a control
 * character or a line over CONFIG_LINE_MAX is an error naming its line;
 * group headers, `key = value` lines and comments; collecting errors (up
 * to CONFIG_ERRORS_MAX), sorting them by line, and returning them as one
 * GError whose message holds one `FILE:LINE: text` line per error.
 * Never: judges a value itself (values.c) or a rule between keys
 * (check.c); never acts on the configuration.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config_int.h"

#include "address.h"
#include "atomic_write.h"

void
cfg_diag(CfgParser *P, unsigned line, ConfigError code, const char *fmt, ...)
{
	CfgDiag d;
	va_list ap;

	if (P->full)
		return;
	d.line = line;
	d.code = code;
	va_start(ap, fmt);
	d.msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_array_append_val(P->diags, d);
	if (P->diags->len >= CONFIG_ERRORS_MAX) {
		d.code = CONFIG_ERROR_LIMIT;
		d.msg = g_strdup_printf("too many errors (%u), stopping here",
		    CONFIG_ERRORS_MAX);
		g_array_append_val(P->diags, d);
		P->full = TRUE;
	}
}

/* A value holding # or ;: perhaps a comment written after it. */
static gboolean
has_comment_char(const char *s)
{
	return strchr(s, '#') != NULL || strchr(s, ';') != NULL;
}

/* The index of key name in the table among group's keys, or -1. */
static int
key_find(ConfigGroup group, const char *name)
{
	for (int i = 0; i < CONFIG_KEY_COUNT; i++)
		if (cfg_keys[i].group == group && strcmp(cfg_keys[i].name, name) == 0)
			return i;
	return -1;
}

/* A line that could not be read: what it held is not known (it may have
 * been a key, or the header of the group of the keys after it). */
static void
line_unread(CfgParser *P)
{
	if (P->cur != NULL) {
		P->cur->unread = TRUE;
	} else {
		P->lost_lines = TRUE;
		P->in_group = TRUE;
	}
}

/* A fixed group's header: the group, or NULL when refused (a name given,
 * or the group given twice). */
static CfgSection *
header_fixed(CfgParser *P, unsigned line, int g, const char *head,
    gboolean named)
{
	CfgSection *sec = P->cfg->fixed[g];

	if (named) {
		cfg_diag(P, line, CONFIG_ERROR_SYNTAX, "group [%s] takes no name",
		    head);
		return NULL;
	}
	if (sec->line != 0) {
		cfg_diag(P, line, CONFIG_ERROR_DUPLICATE, "duplicate group [%s] "
		    "(first at line %u)", head, sec->line);
		return NULL;
	}
	sec->line = line;
	return sec;
}

/* A [postoffice NET/PO] header, arg the NET/PO of alen bytes: the new
 * group, or NULL when refused (no postoffice, or one given twice). */
static CfgSection *
header_postoffice(CfgParser *P, unsigned line, const char *arg, size_t alen)
{
	PgConfig *cfg = P->cfg;
	char net[ADDR_PART_MAX + 1], po[ADDR_PART_MAX + 1];
	GError *e = NULL;
	char *name;
	CfgSection *sec;

	if (!addr_parse_po(arg, alen, net, po, &e)) {
		cfg_diag(P, line, CONFIG_ERROR_VALUE, "[postoffice %s]: %s", arg,
		    e->message);
		g_error_free(e);
		return NULL;
	}
	name = g_strdup_printf("%s/%s", net, po);
	for (guint i = 0; i < cfg->postoffices->len; i++) {
		CfgSection *o = cfg->postoffices->pdata[i];
		if (strcmp(o->name, name) == 0) {
			cfg_diag(P, line, CONFIG_ERROR_DUPLICATE, "duplicate group "
			    "[postoffice %s] (first at line %u)", name, o->line);
			g_free(name);
			return NULL;
		}
	}
	sec = cfg_section_new(CONFIG_GROUP_POSTOFFICE, name, line);
	g_strlcpy(sec->net, net, sizeof sec->net);
	g_strlcpy(sec->po, po, sizeof sec->po);
	g_ptr_array_add(cfg->postoffices, sec);
	g_free(name);
	return sec;
}

/* A [site-link NAME] header, arg the NAME of alen bytes: the new group,
 * or NULL when refused (not a site name, or one given twice). */
static CfgSection *
header_site_link(CfgParser *P, unsigned line, const char *arg, size_t alen)
{
	PgConfig *cfg = P->cfg;
	CfgSection *sec;

	if (alen > CONFIG_NAME_MAX ||
	    strspn(arg, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789-_") != alen) {
		cfg_diag(P, line, CONFIG_ERROR_VALUE, "[site-link %s]: not a site "
		    "name (1 to %u of A-Z a-z 0-9 - _)", arg, CONFIG_NAME_MAX);
		return NULL;
	}
	for (guint i = 0; i < cfg->links->len; i++) {
		CfgSection *o = cfg->links->pdata[i];
		if (g_ascii_strcasecmp(o->name, arg) == 0) {
			cfg_diag(P, line, CONFIG_ERROR_DUPLICATE, "duplicate group "
			    "[site-link %s] (first at line %u)", arg, o->line);
			return NULL;
		}
	}
	sec = cfg_section_new(CONFIG_GROUP_SITE_LINK, arg, line);
	g_ptr_array_add(cfg->links, sec);
	return sec;
}

/* A line starting with [: split it into the group's word and its name,
 * and make the group the one key lines go to, if it is accepted. */
static void
header_line(CfgParser *P, unsigned line, const char *s, size_t len)
{
	PgConfig *cfg = P->cfg;
	const char *inner, *arg = NULL;
	size_t ilen, hlen, alen = 0;
	char *head, *argz;
	int g;

	P->cur = NULL;  /* keys of a refused group are ignored */
	P->in_group = TRUE;
	if (s[len - 1] != ']') {
		cfg_diag(P, line, CONFIG_ERROR_SYNTAX, "group header does not end in ]%s",
		    memchr(s, ']', len) ? " (comments go on their own line)" : "");
		P->lost_lines = TRUE;
		return;
	}
	inner = s + 1;
	ilen = len - 2;
	cfg_trim(&inner, &ilen);
	for (hlen = 0; hlen < ilen && !cfg_is_blank(inner[hlen]); hlen++)
		;
	if (hlen < ilen) {
		arg = inner + hlen;
		alen = ilen - hlen;
		cfg_trim(&arg, &alen);
	}
	head = g_strndup(inner, hlen);
	argz = g_strndup(arg ? arg : "", alen);
	for (g = 0; g < CONFIG_GROUP_COUNT; g++)
		if (strcmp(cfg_groups[g].name, head) == 0)
			break;
	if (g == CONFIG_GROUP_COUNT) {
		char *all = g_strndup(inner, ilen);
		cfg_diag(P, line, CONFIG_ERROR_UNKNOWN, "unknown group [%s]", all);
		g_free(all);
	} else if (!cfg_groups[g].instances) {
		P->cur = header_fixed(P, line, g, head, arg != NULL);
	} else if (arg == NULL) {
		cfg_diag(P, line, CONFIG_ERROR_SYNTAX, "group [%s] needs a name: %s",
		    head, cfg_groups[g].label);
	} else if (cfg->postoffices->len + cfg->links->len >= CONFIG_GROUPS_MAX) {
		cfg_diag(P, line, CONFIG_ERROR_LIMIT, "more than %u [postoffice] and "
		    "[site-link] groups", CONFIG_GROUPS_MAX);
	} else if (g == CONFIG_GROUP_POSTOFFICE) {
		P->cur = header_postoffice(P, line, argz, alen);
	} else {
		P->cur = header_site_link(P, line, argz, alen);
	}
	if (P->cur == NULL)
		P->lost_lines = TRUE;
	g_free(head);
	g_free(argz);
}

static void
key_line(CfgParser *P, unsigned line, const char *s, size_t len)
{
	const char *eq = memchr(s, '=', len), *key = s, *val;
	size_t klen, vlen;
	char *name, *value;
	CfgSection *sec = P->cur;
	CfgValue v;
	GError *e = NULL;
	int ki;

	if (eq == NULL) {
		cfg_diag(P, line, CONFIG_ERROR_SYNTAX, "expected [group], key = value "
		    "or a comment line");
		line_unread(P);
		return;
	}
	klen = (size_t)(eq - s);
	cfg_trim(&key, &klen);
	val = eq + 1;
	vlen = (size_t)(s + len - val);
	cfg_trim(&val, &vlen);
	if (klen == 0) {
		cfg_diag(P, line, CONFIG_ERROR_SYNTAX, "no key name before =");
		line_unread(P);
		return;
	}
	name = g_strndup(key, klen);
	value = g_strndup(val, vlen);
	if (sec == NULL) {
		/* Before the first group; in a refused group, say nothing more. */
		if (!P->in_group)
			cfg_diag(P, line, CONFIG_ERROR_SYNTAX, "key %s is outside any group; "
			    "start with a group such as [site]", name);
		P->lost_lines = TRUE;
		goto out;
	}
	ki = key_find(sec->group, name);
	if (ki < 0) {
		const char *home = NULL;
		/* Perhaps a required key misspelt: it is not "missing" too. */
		sec->unread = TRUE;
		for (int i = 0; i < CONFIG_KEY_COUNT && home == NULL; i++)
			if (strcmp(cfg_keys[i].name, name) == 0)
				home = cfg_groups[cfg_keys[i].group].label;
		if (home)
			cfg_diag(P, line, CONFIG_ERROR_UNKNOWN, "unknown key %s in %s (it "
			    "belongs in %s)", name, sec->label, home);
		else
			cfg_diag(P, line, CONFIG_ERROR_UNKNOWN, "unknown key %s in %s", name,
			    sec->label);
		goto out;
	}
	if (sec->v[ki].line != 0) {
		cfg_diag(P, line, CONFIG_ERROR_DUPLICATE, "duplicate key %s in %s (first "
		    "at line %u)", name, sec->label, sec->v[ki].line);
		goto out;
	}
	if (!cfg_value_parse(&cfg_keys[ki], value, &v, &e)) {
		/* `key = value # note` is a common slip: say why it failed. */
		cfg_diag(P, line, CONFIG_ERROR_VALUE, "%s: %s%s", name, e->message,
		    has_comment_char(value) ? " (comments go on their own line)" : "");
		g_error_free(e);
		sec->v[ki].line = line;
		sec->v[ki].bad = TRUE;
		goto out;
	}
	cfg_value_clear(&sec->v[ki]);
	sec->v[ki] = v;
	sec->v[ki].line = line;
out:
	g_free(name);
	g_free(value);
}

static void
parse_line(CfgParser *P, unsigned line, const char *s, size_t len)
{
	if (len > 0 && s[len - 1] == '\r')
		len--;
	if (len > CONFIG_LINE_MAX) {
		cfg_diag(P, line, CONFIG_ERROR_LIMIT, "line is longer than %u bytes",
		    CONFIG_LINE_MAX);
		line_unread(P);
		return;
	}
	if (memchr(s, '\0', len) != NULL) {
		cfg_diag(P, line, CONFIG_ERROR_SYNTAX, "NUL byte in line");
		line_unread(P);
		return;
	}
	if (!g_utf8_validate(s, (gssize)len, NULL)) {
		cfg_diag(P, line, CONFIG_ERROR_SYNTAX, "line is not valid UTF-8");
		line_unread(P);
		return;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			cfg_diag(P, line, CONFIG_ERROR_SYNTAX, "control character 0x%02x in "
			    "line", c);
			line_unread(P);
			return;
		}
	}
	cfg_trim(&s, &len);
	if (len == 0 || s[0] == '#' || s[0] == ';')
		return;
	if (s[0] == '[')
		header_line(P, line, s, len);
	else
		key_line(P, line, s, len);
}

static gint
diag_cmp(gconstpointer a, gconstpointer b)
{
	const CfgDiag *x = a, *y = b;

	return x->line < y->line ? -1 : x->line > y->line;
}

PgConfig *
config_parse(const char *name, const char *buf, size_t len, ConfigFlags flags,
    GError **error)
{
	CfgParser P = { 0 };
	/* An empty file may come as (NULL, 0): no arithmetic on NULL. */
	const char *p = len > 0 ? buf : "", *end = p + len;
	unsigned line = 0;
	GString *msg;
	ConfigError code;

	if (len > CONFIG_FILE_MAX) {
		g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_LIMIT, "%s: the file is "
		    "larger than %u bytes", name, CONFIG_FILE_MAX);
		return NULL;
	}
	P.cfg = cfg_new(name);
	P.diags = g_array_new(FALSE, FALSE, sizeof(CfgDiag));
	while (p < end && !P.full) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end;
		parse_line(&P, ++line, p, (size_t)(eol - p));
		p = nl ? nl + 1 : end;
	}
	if (!P.full)
		cfg_check_values(&P);
	if (!P.full && (flags & CONFIG_CHECK_FILES))
		cfg_check_files(&P);
	if (P.diags->len == 0) {
		g_array_free(P.diags, TRUE);
		cfg_make_views(P.cfg);
		return P.cfg;
	}
	/* Stable: errors on one line stay in the order they were found. */
	g_array_sort(P.diags, diag_cmp);
	msg = g_string_new(NULL);
	code = g_array_index(P.diags, CfgDiag, 0).code;
	for (guint i = 0; i < P.diags->len; i++) {
		CfgDiag *d = &g_array_index(P.diags, CfgDiag, i);
		g_string_append_printf(msg, "%s%s:%u: %s", i ? "\n" : "", name,
		    d->line, d->msg);
		g_free(d->msg);
	}
	g_array_free(P.diags, TRUE);
	g_set_error_literal(error, CONFIG_ERROR, code, msg->str);
	g_string_free(msg, TRUE);
	config_free(P.cfg);
	return NULL;
}

PgConfig *
config_load_file(const char *path, GError **error)
{
	return config_load_file_flags(path, CONFIG_CHECK_FILES, error);
}

PgConfig *
config_load_file_flags(const char *path, ConfigFlags flags, GError **error)
{
	AtomicReadInfo info;
	PgConfig *cfg;
	size_t len = 0;
	/* atomic_read_file opens with O_NONBLOCK: a FIFO must not hang us
	 * waiting for a writer. */
	char *data = (char *)atomic_read_file(path, 0, CONFIG_FILE_MAX, &len, &info);

	if (data == NULL && info.status == ATOMIC_READ_OPEN)
		g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_IO, "%s: cannot open: %s",
		    path, g_strerror(info.err));
	else if (data == NULL && info.status == ATOMIC_READ_NOT_REGULAR && S_ISDIR(info.mode))
		g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_IO, "%s: is a directory",
		    path);
	else if (data == NULL && info.status == ATOMIC_READ_NOT_REGULAR)
		g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_IO, "%s: is not a regular "
		    "file (%s)", path, cfg_file_kind(info.mode));
	else if (data == NULL && info.status == ATOMIC_READ_READ)
		g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_IO, "%s: cannot "
		    "read: %s", path, g_strerror(info.err));
	else if (data == NULL)
		g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_LIMIT, "%s: the file "
		    "is larger than %u bytes", path, CONFIG_FILE_MAX);
	if (data == NULL)
		return NULL;
	cfg = config_parse(path, data, len, flags, error);
	g_free(data);
	return cfg;
}
