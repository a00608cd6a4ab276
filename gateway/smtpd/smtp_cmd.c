/* smtp_cmd.c - SMTP command lines (see smtp_cmd.h).
 *
 * Implements the command syntax of RFC 5321 4.1.1 and 4.1.2 (paths, source
 * routes dropped per 4.1.1.3 and C.2, esmtp-param), 4.5.1 (<postmaster>),
 * 4.5.3.1 (sizes), RFC 1870 (SIZE), RFC 6152 (BODY), RFC 3461 4 (NOTIFY, ORCPT,
 * RET, ENVID, xtext) and RFC 3030 2 (BDAT).  Every refusal is a reply line with
 * an RFC 3463 status: 500 for a line that is not a command, 501 for bad
 * arguments, 555 for parameters postgate does not implement (RFC 5321
 * 4.1.1.11), 552 for a size no file could hold.  The line is a slice of len
 * bytes; nothing here reads past it or looks for a NUL.
 */
#include "config.h"

#include <stdarg.h>
#include <string.h>

#include "address.h"
#include "smtpd/smtp_cmd.h"

/* ---- slices of the line ----------------------------------------------------- */

typedef struct {
	const char *p;
	size_t n;
} Slice;

static Slice
slice_trim(Slice s)
{
	while (s.n > 0 && s.p[0] == ' ') {
		s.p++;
		s.n--;
	}
	while (s.n > 0 && s.p[s.n - 1] == ' ')
		s.n--;
	return s;
}

/* The text up to the first space (or all of s); *rest is what follows, trimmed. */
static Slice
slice_word(Slice s, Slice *rest)
{
	const char *sp = memchr(s.p, ' ', s.n);
	Slice w = { s.p, sp ? (size_t)(sp - s.p) : s.n };

	rest->p = s.p + w.n;
	rest->n = s.n - w.n;
	*rest = slice_trim(*rest);
	return w;
}

static gboolean
slice_is(Slice s, const char *word)
{
	size_t n = strlen(word);

	return s.n == n && g_ascii_strncasecmp(s.p, word, n) == 0;
}

static gboolean
slice_has_prefix(Slice s, const char *word)
{
	size_t n = strlen(word);

	return s.n >= n && g_ascii_strncasecmp(s.p, word, n) == 0;
}

/* ---- replies ----------------------------------------------------------------- */

static gboolean refuse(SmtpCmd *out, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static gboolean
refuse(SmtpCmd *out, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	g_free(out->reply);
	out->reply = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	return FALSE;
}

/* A parameter keyword for a reply: upper case, at most SMTP_REPLY_ECHO_MAX
 * characters.  Keywords are checked to be letters, digits and '-' first. */
static char *
echo_keyword(Slice kw)
{
	size_t n = MIN(kw.n, (size_t)SMTP_REPLY_ECHO_MAX);
	char *s = g_ascii_strup(kw.p, (gssize)n);

	if (kw.n > n) {
		char *longer = g_strconcat(s, "...", NULL);
		g_free(s);
		s = longer;
	}
	return s;
}

/* ---- verbs ------------------------------------------------------------------- */

static const struct {
	const char *name;
	SmtpVerb verb;
} verbs[] = {
	{ "HELO", SMTP_VERB_HELO },
	{ "EHLO", SMTP_VERB_EHLO },
	{ "MAIL", SMTP_VERB_MAIL },
	{ "RCPT", SMTP_VERB_RCPT },
	{ "DATA", SMTP_VERB_DATA },
	{ "RSET", SMTP_VERB_RSET },
	{ "NOOP", SMTP_VERB_NOOP },
	{ "QUIT", SMTP_VERB_QUIT },
	{ "VRFY", SMTP_VERB_VRFY },
	{ "EXPN", SMTP_VERB_EXPN },
	{ "HELP", SMTP_VERB_HELP },
	{ "STARTTLS", SMTP_VERB_STARTTLS },
	{ "AUTH", SMTP_VERB_AUTH },
	{ "BDAT", SMTP_VERB_BDAT },
};

const char *
smtp_verb_name(SmtpVerb verb)
{
	for (size_t i = 0; i < G_N_ELEMENTS(verbs); i++)
		if (verbs[i].verb == verb)
			return verbs[i].name;
	return "UNKNOWN";
}

static SmtpVerb
verb_lookup(Slice w)
{
	for (size_t i = 0; i < G_N_ELEMENTS(verbs); i++)
		if (slice_is(w, verbs[i].name))
			return verbs[i].verb;
	return SMTP_VERB_UNKNOWN;
}

/* ---- xtext (RFC 3461 4) ------------------------------------------------------ */

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')   /* RFC 3461 says upper case; Postfix takes both */
		return c - 'a' + 10;
	return -1;
}

char *
smtp_xtext_decode(const char *text, size_t len)
{
	GString *s = g_string_sized_new(len + 1);

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];
		if (c == '+') {
			int hi = i + 2 < len ? hex_value(text[i + 1]) : -1;
			int lo = i + 2 < len ? hex_value(text[i + 2]) : -1;
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
				g_string_free(s, TRUE);
				return NULL;
			}
			g_string_append_c(s, (char)(hi << 4 | lo));
			i += 2;
		} else if (c >= '!' && c <= '~' && c != '=') {
			g_string_append_c(s, (char)c);
		} else {
			g_string_free(s, TRUE);
			return NULL;
		}
	}
	return g_string_free(s, FALSE);
}

char *
smtp_xtext_encode(const char *text)
{
	GString *s = g_string_new(NULL);

	for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
		if (*c >= '!' && *c <= '~' && *c != '+' && *c != '=')
			g_string_append_c(s, (char)*c);
		else
			g_string_append_printf(s, "+%02X", *c);
	}
	return g_string_free(s, FALSE);
}

/* Printable (graphic and white space) US-ASCII, what RFC 3461 4.2 and 4.4
 * allow in a decoded ORCPT address or ENVID. */
static gboolean
dsn_printable(const char *s)
{
	for (; *s; s++)
		if (!((*s >= ' ' && *s <= '~') || *s == '\t'))
			return FALSE;
	return TRUE;
}

/* ---- HELO/EHLO domains and address literals ---------------------------------- */

/* A domain or address literal, loosely: what a client may name itself (and
 * what a source route may hold).  Domains: letters, digits, '-', '.', '_'
 * (Windows names carry '_'); literals: "[...]" without brackets or '\' inside. */
static gboolean
helo_name_ok(Slice s)
{
	if (s.n == 0 || s.n > SMTP_HELO_MAX)
		return FALSE;
	if (s.p[0] == '[') {
		if (s.n < 3 || s.p[s.n - 1] != ']')
			return FALSE;
		for (size_t i = 1; i + 1 < s.n; i++)
			if (s.p[i] == '[' || s.p[i] == ']' || s.p[i] == '\\' || s.p[i] == ' ')
				return FALSE;
		return TRUE;
	}
	for (size_t i = 0; i < s.n; i++)
		if (!g_ascii_isalnum(s.p[i]) && s.p[i] != '-' && s.p[i] != '.' && s.p[i] != '_')
			return FALSE;
	return TRUE;
}

static gboolean
parse_helo(Slice rest, SmtpCmd *out)
{
	const char *verb = smtp_verb_name(out->verb);

	if (rest.n == 0)
		return refuse(out, "501 5.5.4 Syntax: %s hostname", verb);
	if (!helo_name_ok(rest))
		return refuse(out, "501 5.5.4 Invalid %s hostname: a domain or an address "
		    "literal, please", verb);
	out->arg = g_strndup(rest.p, rest.n);
	return TRUE;
}

/* ---- paths (RFC 5321 4.1.2) ------------------------------------------------ */

typedef enum {
	PATH_OK,
	PATH_SYNTAX,    /* not "<...>": 501 5.5.4 */
	PATH_ADDRESS,   /* "<...>" that holds no acceptable address: 501 5.1.x */
} PathResult;

/* A source route "@a,@b:" at the start of s; returns its length, 0 when s
 * does not start with '@', -1 when the route is malformed. */
static gssize
route_len(Slice s)
{
	size_t i = 0;

	if (s.n == 0 || s.p[0] != '@')
		return 0;
	for (;;) {
		size_t start;
		if (i >= s.n || s.p[i] != '@')
			return -1;
		start = ++i;
		if (i < s.n && s.p[i] == '[') {
			const char *close = memchr(s.p + i, ']', s.n - i);
			if (!close)
				return -1;
			i = (size_t)(close - s.p) + 1;
		} else {
			while (i < s.n && s.p[i] != ',' && s.p[i] != ':')
				i++;
		}
		if (!helo_name_ok((Slice){ s.p + start, i - start }))
			return -1;
		if (i >= s.n)
			return -1;
		if (s.p[i++] == ':')
			return (gssize)i;
		/* ',' : another "@domain" follows */
	}
}

/* "<path>" at the start of s (RFC 5321 4.1.2 Reverse-path / Forward-path);
 * *used is its length with the brackets. */
static PathResult
parse_path(Slice s, gboolean rcpt, SmtpCmd *out, size_t *used)
{
	gboolean inq = FALSE;
	size_t close = 0;
	Slice in, mb;
	gssize rl;
	char norm[ADDR_SMTP_MAX + 1];

	if (s.n == 0 || s.p[0] != '<')
		return PATH_SYNTAX;
	for (size_t i = 1; i < s.n && close == 0; i++) {
		if (inq && s.p[i] == '\\')
			i++;
		else if (s.p[i] == '"')
			inq = !inq;
		else if (!inq && s.p[i] == '>')
			close = i;
	}
	if (close == 0 || (close + 1 < s.n && s.p[close + 1] != ' '))
		return PATH_SYNTAX;
	*used = close + 1;
	in = slice_trim((Slice){ s.p + 1, close - 1 });
	if (in.n == 0) {
		if (rcpt)
			return PATH_ADDRESS;
		out->null_path = TRUE;
		return PATH_OK;
	}
	/* Source routes are obsolete: accept and ignore them (RFC 5321 4.1.1.3, C). */
	if ((rl = route_len(in)) < 0)
		return PATH_ADDRESS;
	mb = (Slice){ in.p + rl, in.n - (size_t)rl };
	if (rcpt && slice_is(mb, "postmaster")) {
		/* RFC 5321 4.5.1: the one address that needs no domain. */
		out->path = g_strdup("postmaster");
		return PATH_OK;
	}
	/* A quoted local part is kept as written (address.h). */
	if (mb.n == 0 || mb.p[0] == ' ' || !addr_parse_smtp_quoted(mb.p, mb.n, norm, NULL))
		return PATH_ADDRESS;
	out->path = g_strdup(norm);
	return PATH_OK;
}

/* ---- ESMTP parameters (RFC 5321 4.1.2 esmtp-param) --------------------------- */

enum {
	P_SIZE = 1 << 0,
	P_BODY = 1 << 1,
	P_RET = 1 << 2,
	P_ENVID = 1 << 3,
	P_NOTIFY = 1 << 4,
	P_ORCPT = 1 << 5,
};

static const struct {
	const char *name;
	SmtpVerb verb;
	guint bit;
} params[] = {
	{ "SIZE", SMTP_VERB_MAIL, P_SIZE },     /* RFC 1870 */
	{ "BODY", SMTP_VERB_MAIL, P_BODY },     /* RFC 6152 */
	{ "RET", SMTP_VERB_MAIL, P_RET },       /* RFC 3461 4.3 */
	{ "ENVID", SMTP_VERB_MAIL, P_ENVID },   /* RFC 3461 4.4 */
	{ "NOTIFY", SMTP_VERB_RCPT, P_NOTIFY }, /* RFC 3461 4.1 */
	{ "ORCPT", SMTP_VERB_RCPT, P_ORCPT },   /* RFC 3461 4.2 */
};

/* size-value ::= 1*20DIGIT; -1 when it is not that, -2 when it does not fit. */
static gint64
size_value(Slice v)
{
	guint64 n = 0;

	if (v.n == 0 || v.n > SMTP_SIZE_DIGITS_MAX)
		return -1;
	for (size_t i = 0; i < v.n; i++)
		if (!g_ascii_isdigit(v.p[i]))
			return -1;
	for (size_t i = 0; i < v.n; i++) {
		guint64 d = (guint64)(v.p[i] - '0');
		if (n > ((guint64)G_MAXINT64 - d) / 10)
			return -2;
		n = n * 10 + d;
	}
	return (gint64)n;
}

static gboolean
param_notify(Slice v, SmtpCmd *out)
{
	switch (mail_notify_parse(v.p, v.n, &out->notify)) {
	case MAIL_NOTIFY_OK:
		return TRUE;
	case MAIL_NOTIFY_NEVER_MIXED:
		return refuse(out, "501 5.5.4 Bad NOTIFY parameter syntax: NEVER stands alone");
	default:
		return refuse(out, "501 5.5.4 Bad NOTIFY parameter syntax");
	}
}

static gboolean
param_orcpt(Slice v, SmtpCmd *out)
{
	const char *semi = memchr(v.p, ';', v.n);
	Slice type = { v.p, semi ? (size_t)(semi - v.p) : 0 };
	char *addr;

	/* addr-type is an atom (RFC 3461 4.2); "rfc822" is the one in use. */
	if (!semi || type.n == 0 || type.n > SMTP_ORCPT_TYPE_MAX)
		return refuse(out, "501 5.5.4 Bad ORCPT parameter syntax");
	for (size_t i = 0; i < type.n; i++)
		if (!g_ascii_isalnum(type.p[i]) && !strchr("!#$%&'*+-/=?^_`{|}~", type.p[i]))
			return refuse(out, "501 5.5.4 Bad ORCPT parameter syntax");
	addr = smtp_xtext_decode(semi + 1, v.n - type.n - 1);
	if (!addr || addr[0] == '\0' || strlen(addr) > SMTP_ORCPT_MAX || !dsn_printable(addr)) {
		g_free(addr);
		return refuse(out, "501 5.5.4 Bad ORCPT parameter syntax");
	}
	out->orcpt_type = g_ascii_strdown(type.p, (gssize)type.n);
	out->orcpt = addr;
	return TRUE;
}

static gboolean
param_value(guint bit, Slice v, SmtpCmd *out)
{
	switch (bit) {
	case P_SIZE:
		out->size = size_value(v);
		if (out->size == -2)
			return refuse(out, "552 5.3.4 Message size exceeds fixed limit");
		if (out->size < 0)
			return refuse(out, "501 5.5.4 Bad SIZE parameter syntax");
		return TRUE;
	case P_BODY:
		if (!mail_body_parse(v.p, v.n, &out->body))
			return refuse(out, "501 5.5.4 Bad BODY parameter value: 7BIT or 8BITMIME, please");
		return TRUE;
	case P_RET:
		if (!mail_ret_parse(v.p, v.n, &out->ret))
			return refuse(out, "501 5.5.4 Bad RET parameter syntax");
		return TRUE;
	case P_ENVID:
		out->envid = smtp_xtext_decode(v.p, v.n);
		if (!out->envid || out->envid[0] == '\0' || strlen(out->envid) > SMTP_ENVID_MAX ||
		    !dsn_printable(out->envid))
			return refuse(out, "501 5.5.4 Bad ENVID parameter syntax");
		return TRUE;
	case P_NOTIFY:
		return param_notify(v, out);
	case P_ORCPT:
		return param_orcpt(v, out);
	}
	g_assert_not_reached();
	return FALSE;
}

/* One esmtp-param of the MAIL or RCPT command in out->verb. */
static gboolean
parse_param(Slice p, guint *seen, SmtpCmd *out)
{
	const char *eq = memchr(p.p, '=', p.n);
	Slice kw = { p.p, eq ? (size_t)(eq - p.p) : p.n };
	Slice v = { eq ? eq + 1 : NULL, eq ? p.n - kw.n - 1 : 0 };
	char *name;

	/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-");
	 * esmtp-value = 1*(%d33-60 / %d62-126) - the line holds no controls. */
	if (kw.n == 0 || !g_ascii_isalnum(kw.p[0]) || (eq && v.n == 0) ||
	    (eq && memchr(v.p, '=', v.n)))
		return refuse(out, "501 5.5.4 Bad parameter syntax");
	for (size_t i = 1; i < kw.n; i++)
		if (!g_ascii_isalnum(kw.p[i]) && kw.p[i] != '-')
			return refuse(out, "501 5.5.4 Bad parameter syntax");
	for (size_t i = 0; i < G_N_ELEMENTS(params); i++) {
		if (params[i].verb != out->verb || !slice_is(kw, params[i].name))
			continue;
		if (*seen & params[i].bit)
			return refuse(out, "501 5.5.4 Duplicate %s parameter", params[i].name);
		*seen |= params[i].bit;
		if (!eq)
			return refuse(out, "501 5.5.4 Bad %s parameter syntax: it needs a value",
			    params[i].name);
		return param_value(params[i].bit, v, out);
	}
	name = echo_keyword(kw);
	refuse(out, "555 5.5.4 Unsupported parameter %s", name);
	g_free(name);
	return FALSE;
}

/* MAIL FROM:<path> [params] and RCPT TO:<path> [params]. */
static gboolean
parse_mail_rcpt(Slice rest, SmtpCmd *out)
{
	gboolean rcpt = out->verb == SMTP_VERB_RCPT;
	const char *prefix = rcpt ? "TO:" : "FROM:";
	const char *syntax = rcpt ? "501 5.5.4 Syntax: RCPT TO:<address>" :
	    "501 5.5.4 Syntax: MAIL FROM:<address>";
	size_t used = 0;
	guint seen = 0;
	Slice s;

	if (!slice_has_prefix(rest, prefix))
		return refuse(out, "%s", syntax);
	s = slice_trim((Slice){ rest.p + strlen(prefix), rest.n - strlen(prefix) });
	switch (parse_path(s, rcpt, out, &used)) {
	case PATH_OK:
		break;
	case PATH_SYNTAX:
		return refuse(out, "%s", syntax);
	case PATH_ADDRESS:
		/* RFC 3463: X.1.7 is the sender's address, X.1.3 a recipient's. */
		return refuse(out, rcpt ? "501 5.1.3 Bad recipient address syntax" :
		    "501 5.1.7 Bad sender address syntax");
	}
	s = slice_trim((Slice){ s.p + used, s.n - used });
	while (s.n > 0) {
		Slice p = slice_word(s, &s);
		if (!parse_param(p, &seen, out))
			return FALSE;
	}
	return TRUE;
}

/* BDAT chunk-size [SP end-marker] (RFC 3030 2). */
static gboolean
parse_bdat(Slice rest, SmtpCmd *out)
{
	Slice more, num = slice_word(rest, &more);

	out->size = size_value(num);
	if (out->size == -2)
		return refuse(out, "552 5.3.4 Message size exceeds fixed limit");
	if (out->size < 0 || (more.n > 0 && !slice_is(more, "LAST")))
		return refuse(out, "501 5.5.4 Syntax: BDAT chunk-size [LAST]");
	out->last = more.n > 0;
	return TRUE;
}

static gboolean
parse_args(Slice rest, SmtpCmd *out)
{
	const char *verb = smtp_verb_name(out->verb);

	switch (out->verb) {
	case SMTP_VERB_HELO:
	case SMTP_VERB_EHLO:
		return parse_helo(rest, out);
	case SMTP_VERB_MAIL:
	case SMTP_VERB_RCPT:
		return parse_mail_rcpt(rest, out);
	case SMTP_VERB_DATA:
	case SMTP_VERB_RSET:
	case SMTP_VERB_QUIT:
	case SMTP_VERB_STARTTLS:
		if (rest.n > 0)
			return refuse(out, "501 5.5.4 Syntax: %s (no arguments)", verb);
		return TRUE;
	case SMTP_VERB_VRFY:
	case SMTP_VERB_EXPN:
	case SMTP_VERB_AUTH:
		if (rest.n == 0)
			return refuse(out, "501 5.5.4 Syntax: %s %s", verb,
			    out->verb == SMTP_VERB_AUTH ? "mechanism" : "address");
		out->arg = g_strndup(rest.p, rest.n);
		return TRUE;
	case SMTP_VERB_NOOP:
	case SMTP_VERB_HELP:
		out->arg = rest.n > 0 ? g_strndup(rest.p, rest.n) : NULL;
		return TRUE;
	case SMTP_VERB_BDAT:
		return parse_bdat(rest, out);
	case SMTP_VERB_UNKNOWN:
		break;
	}
	g_assert_not_reached();
	return FALSE;
}

gboolean
smtp_cmd_parse(const char *line, size_t len, SmtpCmd *out)
{
	Slice rest, w;
	SmtpVerb verb;

	memset(out, 0, sizeof *out);
	out->verb = SMTP_VERB_UNKNOWN;
	out->size = -1;
	/* Controls (tabs too), DEL and 8-bit bytes first: nothing after this
	 * needs to think about NUL, CR, LF or bytes of another charset. */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c < 0x20 || c >= 0x7f)
			return refuse(out, "500 5.5.2 Invalid characters in command");
	}
	if (len > SMTP_CMD_LINE_MAX)
		return refuse(out, "500 5.5.2 Line too long");
	w = slice_word(slice_trim((Slice){ line, len }), &rest);
	if (w.n == 0)
		return refuse(out, "500 5.5.2 Error: bad syntax");
	verb = verb_lookup(w);
	if (verb == SMTP_VERB_UNKNOWN)
		return refuse(out, "500 5.5.1 Command unrecognized");
	out->verb = verb;
	if (!parse_args(rest, out)) {
		char *reply = out->reply;
		out->reply = NULL;
		smtp_cmd_clear(out);
		out->verb = verb;
		out->reply = reply;
		return FALSE;
	}
	return TRUE;
}

void
smtp_cmd_clear(SmtpCmd *out)
{
	g_free(out->arg);
	g_free(out->path);
	g_free(out->envid);
	g_free(out->orcpt_type);
	g_free(out->orcpt);
	g_free(out->reply);
	memset(out, 0, sizeof *out);
	out->verb = SMTP_VERB_UNKNOWN;
	out->size = -1;
}
