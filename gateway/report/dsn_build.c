/* dsn_build.c - an RFC 3464 delivery status notification as RFC 5322 / MIME
 * bytes (see dsn_build.h).
 *
 * Owns: the checks of a report's fields, the delivery-status fields and
 * their folding, the readable text, the Subject, the returned message or
 * header section, the boundary and a made Message-ID; GMime writes the MIME
 * structure.
 * Never: deciding whether a report is due, sending it, legacy reports, the
 * locale.
 */
#include "config.h"

#include <string.h>

#include <gmime/gmime.h>

#include "mime/mime_out.h"
#include "report/dsn_build.h"
#include "report/report_status.h"
#include "smtpd/smtp_cmd.h"

G_DEFINE_QUARK(postgate-dsn-build-error-quark, dsn_error)

/* Hex digits of SHA-256 in a made Message-ID, and in the boundary. */
#define DSN_HASH_HEX 24
/* Bytes of the original hashed for them. */
#define DSN_HASH_INPUT_MAX (64u * 1024)

/* ---- checks ------------------------------------------------------------------ */

/* What a value may hold besides having no CR or LF. */
enum {
	V_REQUIRED = 1 << 0,    /* NULL or "" is refused */
	V_ASCII = 1 << 1,       /* printable US-ASCII and blanks only */
	V_NOBLANK = 1 << 2,     /* no blank either */
	V_ATOM = 1 << 3,        /* RFC 5322 atext only (an address or diagnostic type) */
	V_HOST = 1 << 4,        /* letters, digits, - . _ and [ ] : for an address literal */
};

static gboolean
is_atext(char c)
{
	return g_ascii_isalnum(c) || strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* Whether byte c of a value breaks one of flags. */
static gboolean
bad_byte(unsigned char c, guint flags)
{
	if (c == '\r' || c == '\n')
		return TRUE;
	if ((flags & (V_ASCII | V_NOBLANK | V_ATOM | V_HOST)) && (c < 0x20 || c > 0x7e))
		return TRUE;
	if ((flags & (V_NOBLANK | V_ATOM | V_HOST)) && c == ' ')
		return TRUE;
	if ((flags & V_ATOM) && !is_atext((char)c))
		return TRUE;
	return (flags & V_HOST) && !g_ascii_isalnum(c) && !strchr("-._[]:", c);
}

/* Check value, called what in the error, against flags and max bytes. */
static gboolean
check_value(const char *what, const char *value, guint flags, gsize max, GError **error)
{
	gsize len = value ? strlen(value) : 0;

	if (len == 0) {
		if (flags & V_REQUIRED)
			g_set_error(error, DSN_ERROR, DSN_ERROR_INVALID,
			    "delivery report: %s is missing", what);
		return !(flags & V_REQUIRED);
	}
	if (len > max) {
		g_set_error(error, DSN_ERROR, DSN_ERROR_INVALID,
		    "delivery report: %s is %" G_GSIZE_FORMAT " bytes, more than the limit of %"
		    G_GSIZE_FORMAT, what, len, max);
		return FALSE;
	}
	for (gsize i = 0; i < len; i++) {
		unsigned char c = (unsigned char)value[i];

		if (!bad_byte(c, flags))
			continue;
		if (c == '\r' || c == '\n')
			g_set_error(error, DSN_ERROR, DSN_ERROR_INVALID,
			    "delivery report: %s holds a line break (CR or LF) at byte %"
			    G_GSIZE_FORMAT "; a field value is one line", what, i);
		else if (c < 0x20 || c > 0x7e)
			g_set_error(error, DSN_ERROR, DSN_ERROR_INVALID,
			    "delivery report: %s holds byte 0x%02X at %" G_GSIZE_FORMAT ", which "
			    "is not printable US-ASCII (postgate writes reports without SMTPUTF8)",
			    what, c, i);
		else
			g_set_error(error, DSN_ERROR, DSN_ERROR_INVALID,
			    "delivery report: %s holds '%c' at byte %" G_GSIZE_FORMAT ", which "
			    "such a value may not hold", what, c, i);
		return FALSE;
	}
	return TRUE;
}

/* "type;address": the type an atom, the address printable US-ASCII. */
static gboolean
check_orcpt(const char *what, const char *orcpt, GError **error)
{
	const char *semi;
	char *type;
	gboolean ok;

	if (!check_value(what, orcpt, V_ASCII, DSN_ADDRESS_MAX, error))
		return FALSE;
	if (!orcpt || !*orcpt)
		return TRUE;
	semi = strchr(orcpt, ';');
	if (!semi || semi == orcpt || !semi[1 + strspn(semi + 1, " ")]) {
		g_set_error(error, DSN_ERROR, DSN_ERROR_INVALID,
		    "delivery report: %s is not of the form TYPE;ADDRESS (RFC 3461 4.2)", what);
		return FALSE;
	}
	type = g_strndup(orcpt, (gsize)(semi - orcpt));
	ok = check_value(what, type, V_ATOM, DSN_TYPE_MAX, error);
	g_free(type);
	return ok;
}

/* The status class an action needs (RFC 3464 2.3.3, 2.3.4), 0 for no action. */
static char
action_class(const char *action)
{
	static const struct { const char *name; char klass; } actions[] = {
		{ "failed", '5' }, { "delayed", '4' }, { "delivered", '2' },
		{ "relayed", '2' }, { "expanded", '2' },
	};

	for (size_t i = 0; action && i < G_N_ELEMENTS(actions); i++)
		if (strcmp(action, actions[i].name) == 0)
			return actions[i].klass;
	return 0;
}

/* The fields of recipient n but its address, called "WHO: FIELD" in errors. */
static gboolean
check_rcpt_fields(const DsnRcpt *rc, const char *who, GError **error)
{
	char what[DSN_ADDRESS_MAX + 64];
	char klass = action_class(rc->action);

	g_snprintf(what, sizeof what, "%s: Original-Recipient", who);
	if (!check_orcpt(what, rc->original_recipient, error))
		return FALSE;
	if (!klass) {
		g_set_error(error, DSN_ERROR, DSN_ERROR_INVALID, "delivery report: %s: action "
		    "\"%s\" is none of failed, delayed, delivered, relayed, expanded", who,
		    rc->action ? rc->action : "");
		return FALSE;
	}
	if (!rc->status || !report_status_valid(rc->status, strlen(rc->status)) ||
	    rc->status[0] != klass) {
		g_set_error(error, DSN_ERROR, DSN_ERROR_INVALID, "delivery report: %s: status "
		    "\"%s\" is not an RFC 3463 code of class %c, which action %s needs", who,
		    rc->status ? rc->status : "", klass, rc->action);
		return FALSE;
	}
	if (rc->will_retry_until && klass != '4') {
		g_set_error(error, DSN_ERROR, DSN_ERROR_INVALID, "delivery report: %s: "
		    "Will-Retry-Until is only for action delayed", who);
		return FALSE;
	}
	g_snprintf(what, sizeof what, "%s: the Diagnostic-Code type", who);
	if (!check_value(what, rc->diagnostic_type, V_ATOM, DSN_TYPE_MAX, error))
		return FALSE;
	g_snprintf(what, sizeof what, "%s: Diagnostic-Code", who);
	if (!check_value(what, rc->diagnostic, 0, G_MAXSIZE, error))
		return FALSE;
	g_snprintf(what, sizeof what, "%s: Remote-MTA", who);
	return check_value(what, rc->remote_mta, V_HOST, DSN_HOST_MAX, error);
}

static gboolean
check_rcpt(const DsnRcpt *rc, guint n, GError **error)
{
	char what[64];
	char *who;
	gboolean ok;

	g_snprintf(what, sizeof what, "recipient %u's Final-Recipient", n);
	if (!check_value(what, rc->final_recipient, V_REQUIRED | V_ASCII, DSN_ADDRESS_MAX,
	    error))
		return FALSE;
	who = g_strdup_printf("recipient %u (%s)", n, rc->final_recipient);
	ok = check_rcpt_fields(rc, who, error);
	g_free(who);
	return ok;
}

static gboolean
check_report(const DsnReport *r, GError **error)
{
	if (r->n_rcpts == 0 || !r->rcpts) {
		g_set_error(error, DSN_ERROR, DSN_ERROR_INVALID,
		    "delivery report: no recipient to report on");
		return FALSE;
	}
	if (r->n_rcpts > DSN_RCPTS_MAX) {
		g_set_error(error, DSN_ERROR, DSN_ERROR_INVALID,
		    "delivery report: %u recipients, more than the limit of %u", r->n_rcpts,
		    DSN_RCPTS_MAX);
		return FALSE;
	}
	if (r->to && !*r->to) {
		g_set_error(error, DSN_ERROR, DSN_ERROR_INVALID,
		    "delivery report: the original sender is the null sender <>, and no report "
		    "is ever sent about a report (RFC 5321 4.5.5)");
		return FALSE;
	}
	if (!check_value("Reporting-MTA", r->reporting_mta, V_REQUIRED | V_HOST, DSN_HOST_MAX,
	    error) ||
	    !check_value("Original-Envelope-Id", r->envid, 0, DSN_ENVID_MAX, error) ||
	    !check_value("From (the reporting address)", r->from, V_REQUIRED | V_NOBLANK,
	    DSN_ADDRESS_MAX, error) ||
	    !check_value("To (the original sender)", r->to, V_REQUIRED | V_ASCII,
	    DSN_ADDRESS_MAX, error) ||
	    !check_value("the original's subject", r->about_subject, 0, G_MAXSIZE, error) ||
	    !check_value("Message-ID", r->message_id, V_NOBLANK, DSN_MESSAGE_ID_MAX, error))
		return FALSE;
	if ((strpbrk(r->from, "<>") || strpbrk(r->to, "<>") || !strchr(r->from, '@') ||
	    !strchr(r->to, '@'))) {
		g_set_error(error, DSN_ERROR, DSN_ERROR_INVALID,
		    "delivery report: From (%s) and To (%s) must each be one address local@domain",
		    r->from, r->to);
		return FALSE;
	}
	if (r->message_id && (strpbrk(r->message_id, "<>") || !strchr(r->message_id, '@'))) {
		g_set_error(error, DSN_ERROR, DSN_ERROR_INVALID,
		    "delivery report: Message-ID \"%s\" is not of the form left@right, without "
		    "angle brackets", r->message_id);
		return FALSE;
	}
	for (guint i = 0; i < r->n_rcpts; i++)
		if (!check_rcpt(&r->rcpts[i], i + 1, error))
			return FALSE;
	return TRUE;
}

/* ---- text ------------------------------------------------------------------- */

/* UTF-8 text fit to show: invalid bytes U+FFFD, controls (C0, DEL, C1) a
 * space, at most max bytes of whole characters, "..." when cut. */
static char *
clean_text(const char *s, gsize max)
{
	char *valid = g_utf8_make_valid(s ? s : "", -1);
	GString *out = g_string_new(NULL);

	for (const char *p = valid; *p; p = g_utf8_next_char(p)) {
		gunichar c = g_utf8_get_char(p);

		if (out->len + 6 > max) {
			g_string_append(out, "...");
			break;
		}
		if (g_unichar_iscntrl(c))
			g_string_append_c(out, ' ');
		else
			g_string_append_unichar(out, c);
	}
	g_free(valid);
	return g_string_free(out, FALSE);
}

/* Clean UTF-8 text in US-ASCII: each other character \x{HHHH} (RFC 6533 3,
 * embedded-unicode-char), and a backslash that would read as one \x{005C}. */
static char *
ascii_text(const char *clean)
{
	GString *out = g_string_new(NULL);

	for (const char *p = clean; *p; p = g_utf8_next_char(p)) {
		gunichar c = g_utf8_get_char(p);

		if (c == '\\' && p[1] == 'x' && p[2] == '{')
			g_string_append(out, "\\x{005C}");
		else if (c < 0x80)
			g_string_append_c(out, (char)c);
		else
			g_string_append_printf(out, "\\x{%04" G_GINT32_MODIFIER "X}", (guint32)c);
	}
	return g_string_free(out, FALSE);
}

/* "Name: value" and its CRLF appended to out, folded before a blank where a
 * line would pass DSN_FOLD_WIDTH; a run without blanks longer than a line
 * may be (DSN_LINE_MAX) is broken with a fold, the only change unfolding does
 * not undo.  value is US-ASCII without CR or LF. */
static void
append_field(GString *out, const char *name, const char *value)
{
	gsize col = strlen(name) + 1;
	const char *p = value;

	g_string_append_printf(out, "%s: ", name);
	col++;
	while (*p) {
		gsize blanks = strspn(p, " ");
		gsize word = strcspn(p + blanks, " ");

		if (blanks > 0 && col + blanks + word > DSN_FOLD_WIDTH && col > 1) {
			g_string_append(out, "\r\n");
			col = 0;
		}
		g_string_append_len(out, p, (gssize)blanks);
		col += blanks;
		p += blanks;
		while (word > 0) {
			gsize n;

			if (col >= DSN_LINE_MAX - 1) {
				g_string_append(out, "\r\n ");
				col = 1;
			}
			n = MIN(word, DSN_LINE_MAX - 1 - col);
			g_string_append_len(out, p, (gssize)n);
			col += n;
			p += n;
			word -= n;
		}
	}
	g_string_append(out, "\r\n");
}

static void
append_date_field(GString *out, const char *name, gint64 t)
{
	char *date = mime_out_date(t);

	append_field(out, name, date);
	g_free(date);
}

/* The content of the message/delivery-status part (RFC 3464 2.1). */
static GString *
status_fields(const DsnReport *r)
{
	GString *out = g_string_new(NULL);
	char *v;

	if (r->envid && *r->envid) {
		v = smtp_xtext_encode(r->envid);
		append_field(out, "Original-Envelope-Id", v);
		g_free(v);
	}
	v = g_strdup_printf("dns; %s", r->reporting_mta);
	append_field(out, "Reporting-MTA", v);
	g_free(v);
	if (r->arrival)
		append_date_field(out, "Arrival-Date", r->arrival);
	for (guint i = 0; i < r->n_rcpts; i++) {
		const DsnRcpt *rc = &r->rcpts[i];

		g_string_append(out, "\r\n");
		if (rc->original_recipient && *rc->original_recipient) {
			const char *semi = strchr(rc->original_recipient, ';');
			v = g_strdup_printf("%.*s; %s", (int)(semi - rc->original_recipient),
			    rc->original_recipient, semi + 1 + strspn(semi + 1, " "));
			append_field(out, "Original-Recipient", v);
			g_free(v);
		}
		v = g_strdup_printf("rfc822; %s", rc->final_recipient);
		append_field(out, "Final-Recipient", v);
		g_free(v);
		append_field(out, "Action", rc->action);
		append_field(out, "Status", rc->status);
		if (rc->remote_mta && *rc->remote_mta) {
			v = g_strdup_printf("dns; %s", rc->remote_mta);
			append_field(out, "Remote-MTA", v);
			g_free(v);
		}
		if (rc->diagnostic && *rc->diagnostic) {
			char *clean = clean_text(rc->diagnostic, DSN_DIAGNOSTIC_MAX);
			char *ascii = ascii_text(clean);

			v = g_strdup_printf("%s; %s", rc->diagnostic_type && *rc->diagnostic_type ?
			    rc->diagnostic_type : "X-Postgate", ascii);
			append_field(out, "Diagnostic-Code", v);
			g_free(v);
			g_free(ascii);
			g_free(clean);
		}
		if (rc->last_attempt)
			append_date_field(out, "Last-Attempt-Date", rc->last_attempt);
		if (rc->will_retry_until)
			append_date_field(out, "Will-Retry-Until", rc->will_retry_until);
	}
	return out;
}

/* Where the string s first is in len bytes at d (a NUL in d is just a
 * byte), or -1. */
static gssize
find(const char *d, gsize len, const char *s)
{
	gsize n = strlen(s);

	for (gsize i = 0; i + n <= len; i++) {
		const char *at = memchr(d + i, s[0], len - i - n + 1);
		if (!at)
			return -1;
		i = (gsize)(at - d);
		if (memcmp(at, s, n) == 0)
			return (gssize)i;
	}
	return -1;
}

/* ---- the returned message ----------------------------------------------------- */

typedef enum {
	RETURN_NONE,            /* no original given */
	RETURN_FULL,            /* message/rfc822 */
	RETURN_HEADERS,         /* text/rfc822-headers */
} ReturnKind;

typedef struct {
	ReturnKind kind;
	GString *content;       /* CRLF line ends */
	gboolean eight_bit;     /* RETURN_FULL: 8-bit bytes in it */
	const char *why;        /* RETURN_HEADERS when the whole was asked for: why not */
} Returned;

/* The original, or with headers_only its header section (RFC 5322 2.1: up
 * to the first empty line, without it), with bare LFs made CRLF; what it
 * holds that a message/rfc822 part cannot in *why, and whether it has 8-bit
 * bytes in *eight_bit (both looked for only in a whole copy). */
static GString *
crlf_copy(const guint8 *d, gsize len, gboolean headers_only, gboolean *eight_bit,
    const char **why)
{
	GString *out = g_string_sized_new(headers_only ? MIN(len, 65536) + 2 : len + len / 32 + 2);
	gsize i = 0;

	*eight_bit = FALSE;
	*why = NULL;
	while (i < len) {
		const guint8 *nl = memchr(d + i, '\n', len - i);
		gsize end = nl ? (gsize)(nl - d) : len;
		gsize text_end = nl && end > i && d[end - 1] == '\r' ? end - 1 : end;

		if (headers_only && nl && text_end == i)
			break;                      /* the empty line: the body follows */
		for (gsize k = i; !headers_only && k < text_end; k++) {
			if (d[k] == 0 && !*why)
				*why = "it holds a NUL byte";
			else if (d[k] == '\r' && !*why)
				*why = "it holds a CR that ends no line";
			*eight_bit |= d[k] > 0x7f;
		}
		if (!headers_only && text_end - i > DSN_LINE_MAX && !*why)
			*why = "it has a line longer than 998 bytes";
		g_string_append_len(out, (const char *)d + i, (gssize)(text_end - i));
		g_string_append(out, "\r\n");     /* a last line without LF ends too */
		i = end + 1;
	}
	return out;
}

static Returned
returned_of(const DsnReport *r)
{
	Returned ret = { RETURN_NONE, NULL, FALSE, NULL };
	gsize len = 0;
	const guint8 *d = r->original ? g_bytes_get_data(r->original, &len) : NULL;
	const char *why = NULL;
	gboolean eight_bit;

	if (!d || len == 0)
		return ret;
	if (r->return_full) {
		ret.content = crlf_copy(d, len, FALSE, &ret.eight_bit, &why);
		if (!why) {
			ret.kind = RETURN_FULL;
			return ret;
		}
		g_string_free(ret.content, TRUE);
	}
	ret.kind = RETURN_HEADERS;
	ret.why = why;
	ret.eight_bit = FALSE;
	ret.content = crlf_copy(d, len, TRUE, &eight_bit, &why);
	return ret;
}

/* ---- the readable part ----------------------------------------------------------- */

static const struct {
	const char *action;
	const char *heading;
} action_texts[] = {
	{ "failed", "Your message could not be delivered to the following recipients.\r\n"
	  "The mail system has given up; it will not try again." },
	{ "delayed", "Your message has not been delivered yet to the following recipients.\r\n"
	  "The mail system is still trying: you need not send it again, and you\r\n"
	  "will hear again if it gives up." },
	{ "delivered", "Your message was delivered to the following recipients." },
	{ "relayed", "Your message was passed on to the following recipients' mail systems,\r\n"
	  "which send no delivery reports of their own." },
	{ "expanded", "Your message was delivered to the following mailing lists or aliases,\r\n"
	  "which passed it on to their members." },
};

static void
append_rcpt_text(GString *out, const DsnRcpt *rc)
{
	char *text;

	g_string_append_printf(out, "  <%s>\r\n", rc->final_recipient);
	if (rc->status[0] != '2')
		g_string_append_printf(out, "    Why: %s (status %s).\r\n",
		    report_status_text(rc->status, strlen(rc->status)), rc->status);
	if (rc->diagnostic && *rc->diagnostic) {
		text = clean_text(rc->diagnostic, DSN_DIAGNOSTIC_MAX);
		if (rc->diagnostic_type && g_ascii_strcasecmp(rc->diagnostic_type, "smtp") == 0)
			g_string_append_printf(out, "    The mail server %s%sanswered: %s\r\n",
			    rc->remote_mta ? rc->remote_mta : "", rc->remote_mta ? " " : "", text);
		else
			g_string_append_printf(out, "    Details: %s\r\n", text);
		g_free(text);
	}
	if (rc->last_attempt) {
		text = mime_out_date(rc->last_attempt);
		g_string_append_printf(out, "    Last attempt: %s\r\n", text);
		g_free(text);
	}
	if (rc->will_retry_until) {
		text = mime_out_date(rc->will_retry_until);
		g_string_append_printf(out, "    The mail system will keep trying until %s.\r\n",
		    text);
		g_free(text);
	}
}

/* The text/plain part: what happened to each recipient, in plain English. */
static GString *
readable_text(const DsnReport *r, const Returned *ret)
{
	GString *out = g_string_new(NULL);
	char *text;

	g_string_append_printf(out, "This is the mail system at %s.\r\n", r->reporting_mta);
	if (r->about_subject && *r->about_subject) {
		text = clean_text(r->about_subject, 4 * DSN_SUBJECT_MAX);
		g_string_append_printf(out, "\r\nThis report is about your message \"%s\"", text);
		g_free(text);
	} else {
		g_string_append(out, "\r\nThis report is about a message you sent");
	}
	if (r->arrival) {
		text = mime_out_date(r->arrival);
		g_string_append_printf(out, ",\r\nwhich reached the mail system on %s", text);
		g_free(text);
	}
	g_string_append(out, ".\r\n");
	for (size_t a = 0; a < G_N_ELEMENTS(action_texts); a++) {
		gboolean any = FALSE;

		for (guint i = 0; i < r->n_rcpts; i++) {
			if (strcmp(r->rcpts[i].action, action_texts[a].action) != 0)
				continue;
			if (!any)
				g_string_append_printf(out, "\r\n%s\r\n\r\n",
				    action_texts[a].heading);
			any = TRUE;
			append_rcpt_text(out, &r->rcpts[i]);
		}
	}
	if (ret->kind == RETURN_FULL)
		g_string_append(out, "\r\nYour message is attached to this report.\r\n");
	else if (ret->kind == RETURN_HEADERS && ret->why)
		g_string_append_printf(out, "\r\nOnly the header section of your message is "
		    "attached: the whole\r\nmessage cannot travel inside this report unchanged, "
		    "because\r\n%s.\r\n", ret->why);
	else if (ret->kind == RETURN_HEADERS)
		g_string_append(out, "\r\nThe header section of your message is attached to "
		    "this report.\r\n");
	g_string_append(out, "\r\nIf you need help, forward this report to your mail "
	    "administrator.\r\n");
	return out;
}

/* ---- header fields ---------------------------------------------------------------- */

/* Set header name of obj to the raw value (a leading blank, folded lines),
 * appended after the fields there are: GMime writes it as it is. */
static void
set_raw_header(GMimeObject *obj, const char *name, GString *raw)
{
	GMimeHeaderList *hl = g_mime_object_get_header_list(obj);
	GMimeHeader *h;

	g_mime_object_append_header(obj, name, "", NULL);
	h = g_mime_header_list_get_header_at(hl, g_mime_header_list_get_count(hl) - 1);
	g_string_append(raw, "\r\n");
	g_mime_header_set_raw_value(h, raw->str);
}

/* RFC 2047 4.2: the bytes a Q-encoded word may hold as they are. */
static gboolean
q_plain(unsigned char c)
{
	return g_ascii_isalnum(c) || strchr("!*+-/", c) != NULL;
}

/* UTF-8 text as Q encoded-words in utf-8 appended to out, each after a blank
 * (a fold when the line is full), every word whole characters and at most 75
 * bytes (RFC 2047 2, 5 (1)). */
static void
append_q_words(GString *out, const char *utf8, gsize *col)
{
	const char *open = "=?utf-8?q?";
	GString *word = g_string_new(NULL);

	for (const char *p = utf8; *p || word->len;) {
		const char *next = *p ? g_utf8_next_char(p) : p;
		GString *ch = g_string_new(NULL);

		for (const char *b = p; b < next; b++) {
			unsigned char c = (unsigned char)*b;
			if (c == ' ')
				g_string_append_c(ch, '_');
			else if (q_plain(c))
				g_string_append_c(ch, (char)c);
			else
				g_string_append_printf(ch, "=%02X", c);
		}
		if (!*p || strlen(open) + word->len + ch->len + 2 > 75) {
			gsize n = strlen(open) + word->len + 2;
			if (*col + 1 + n > DSN_FOLD_WIDTH) {
				g_string_append(out, "\r\n");
				*col = 0;
			}
			g_string_append_printf(out, " %s%s?=", open, word->str);
			*col += 1 + n;
			g_string_truncate(word, 0);
		}
		g_string_append_len(word, ch->str, (gssize)ch->len);
		g_string_free(ch, TRUE);
		p = next;
	}
	g_string_free(word, TRUE);
}

/* Printable ASCII as unstructured text appended after a blank, folded before
 * a blank where a line would grow past DSN_FOLD_WIDTH. */
static void
append_unstructured(GString *out, const char *text, gsize *col)
{
	g_string_append_c(out, ' ');
	(*col)++;
	for (const char *p = text; *p;) {
		gsize n = 1 + strcspn(p + 1, " ");

		if (*p == ' ' && *col + n > DSN_FOLD_WIDTH) {
			g_string_append(out, "\r\n");
			*col = 0;
		}
		g_string_append_len(out, p, (gssize)n);
		*col += n;
		p += n;
	}
}

/* The Subject: what happened (the worst action), then the original's. */
static GString *
subject_raw(const DsnReport *r)
{
	GString *raw = g_string_new(NULL);
	gsize col = strlen("Subject:");
	gboolean plain = TRUE;
	const char *title;
	char worst = '2';
	char *about;

	for (guint i = 0; i < r->n_rcpts; i++)
		worst = MAX(worst, r->rcpts[i].status[0]);
	title = worst == '5' ? "Undelivered Mail Returned to Sender" :
	    worst == '4' ? "Delayed Mail (still being retried)" : "Successful Mail Delivery Report";
	if (!r->about_subject || !*r->about_subject) {
		append_unstructured(raw, title, &col);
		return raw;
	}
	about = clean_text(r->about_subject, 4 * DSN_SUBJECT_MAX);
	if (g_utf8_strlen(about, -1) > DSN_SUBJECT_MAX) {
		char *cut = g_utf8_substring(about, 0, DSN_SUBJECT_MAX);
		g_free(about);
		about = g_strconcat(cut, "...", NULL);
		g_free(cut);
	}
	for (const char *p = about; *p; p++)
		plain &= (unsigned char)*p < 0x80;
	plain &= strstr(about, "=?") == NULL;
	if (plain) {
		char *all = g_strdup_printf("%s: %s", title, about);
		append_unstructured(raw, all, &col);
		g_free(all);
	} else {
		char *head = g_strdup_printf("%s:", title);
		append_unstructured(raw, head, &col);
		append_q_words(raw, about, &col);
		g_free(head);
	}
	g_free(about);
	return raw;
}

/* ---- the message -------------------------------------------------------------- */

/* The first n hex digits of SHA-256 over what makes the report what it is. */
static char *
report_hash(const DsnReport *r, const GString *fields, guint round)
{
	GChecksum *sum = g_checksum_new(G_CHECKSUM_SHA256);
	char head[64];
	gsize len = 0;
	const guint8 *d = r->original ? g_bytes_get_data(r->original, &len) : NULL;
	char *hex;

	g_snprintf(head, sizeof head, "%" G_GINT64_FORMAT " %u ", r->date, round);
	g_checksum_update(sum, (const guchar *)head, (gssize)strlen(head));
	g_checksum_update(sum, (const guchar *)r->to, (gssize)strlen(r->to) + 1);
	g_checksum_update(sum, (const guchar *)fields->str, (gssize)fields->len);
	if (d)      /* its header section is in there: what makes it this message */
		g_checksum_update(sum, d, (gssize)MIN(len, DSN_HASH_INPUT_MAX));
	hex = g_strndup(g_checksum_get_string(sum), DSN_HASH_HEX);
	g_checksum_free(sum);
	return hex;
}

/* A boundary derived from the report that no part written as it is holds. */
static char *
boundary_for(const DsnReport *r, const GString *fields, const GString **parts, guint n)
{
	for (guint round = 0;; round++) {
		char *hash = report_hash(r, fields, round + 1);
		char *boundary = g_strdup_printf("=_postgate_dsn_%s", hash);
		char *line = g_strdup_printf("--%s", boundary);
		gboolean clash = FALSE;

		for (guint i = 0; i < n && !clash; i++)
			clash = parts[i] && find(parts[i]->str, parts[i]->len, line) >= 0;
		g_free(line);
		g_free(hash);
		if (!clash)
			return boundary;
		g_free(boundary);
	}
}

static GMimePart *
part_new(const char *type, const char *subtype, const GString *content)
{
	GMimePart *part = g_mime_part_new_with_type(type, subtype);
	GMimeStream *stream = g_mime_stream_mem_new_with_buffer(content->str, content->len);
	GMimeDataWrapper *wrapper =
	    g_mime_data_wrapper_new_with_stream(stream, GMIME_CONTENT_ENCODING_DEFAULT);

	g_mime_part_set_content(part, wrapper);
	g_object_unref(wrapper);
	g_object_unref(stream);
	return part;
}

/* The encoding GMime's 7-bit constraint picks: 7bit, quoted-printable or base64. */
static void
set_best_encoding(GMimePart *part)
{
	GMimeContentEncoding enc = g_mime_part_get_best_content_encoding(part,
	    GMIME_ENCODING_CONSTRAINT_7BIT);

	g_mime_part_set_content_encoding(part, enc == GMIME_CONTENT_ENCODING_DEFAULT ?
	    GMIME_CONTENT_ENCODING_7BIT : enc);
}

/* The three parts (two without an original) in a multipart/report. */
static GMimeMultipart *
build_report(const DsnReport *r, const GString *fields)
{
	Returned ret = returned_of(r);
	GString *text = readable_text(r, &ret);
	GMimeMultipart *mp = g_mime_multipart_new_with_subtype("report");
	GMimePart *part;
	const GString *parts[3] = { text, fields, ret.content };
	char *boundary;

	g_mime_object_set_content_type_parameter(GMIME_OBJECT(mp), "report-type",
	    "delivery-status");
	g_mime_multipart_set_prologue(mp, "This is a delivery status notification (RFC 3464) "
	    "in MIME format.");
	part = part_new("text", "plain", text);
	g_mime_object_set_content_type_parameter(GMIME_OBJECT(part), "charset", "utf-8");
	set_best_encoding(part);
	g_mime_multipart_add(mp, GMIME_OBJECT(part));
	if (g_mime_part_get_content_encoding(part) != GMIME_CONTENT_ENCODING_7BIT)
		parts[0] = NULL;
	g_object_unref(part);
	part = part_new("message", "delivery-status", fields);
	g_mime_part_set_content_encoding(part, GMIME_CONTENT_ENCODING_7BIT);
	g_mime_multipart_add(mp, GMIME_OBJECT(part));
	g_object_unref(part);
	if (ret.kind == RETURN_FULL) {
		part = part_new("message", "rfc822", ret.content);
		g_mime_part_set_content_encoding(part, ret.eight_bit ?
		    GMIME_CONTENT_ENCODING_8BIT : GMIME_CONTENT_ENCODING_7BIT);
	} else if (ret.kind == RETURN_HEADERS) {
		part = part_new("text", "rfc822-headers", ret.content);
		set_best_encoding(part);
		if (g_mime_part_get_content_encoding(part) != GMIME_CONTENT_ENCODING_7BIT)
			parts[2] = NULL;
	} else {
		part = NULL;
	}
	if (part) {
		g_mime_multipart_add(mp, GMIME_OBJECT(part));
		g_object_unref(part);
	}
	boundary = boundary_for(r, fields, parts, G_N_ELEMENTS(parts));
	g_mime_multipart_set_boundary(mp, boundary);
	g_free(boundary);
	g_string_free(text, TRUE);
	if (ret.content)
		g_string_free(ret.content, TRUE);
	return mp;
}

static void
add_headers(GMimeMessage *message, const DsnReport *r, const char *msgid, gint64 date)
{
	GMimeObject *obj = GMIME_OBJECT(message);
	GString *raw;
	char *text;

	raw = g_string_new(NULL);
	g_string_append_printf(raw, " Mail Delivery System <%s>", r->from);
	set_raw_header(obj, "From", raw);
	g_string_free(raw, TRUE);
	raw = g_string_new(NULL);
	g_string_append_printf(raw, " <%s>", r->to);
	set_raw_header(obj, "To", raw);
	g_string_free(raw, TRUE);
	raw = subject_raw(r);
	set_raw_header(obj, "Subject", raw);
	g_string_free(raw, TRUE);
	text = mime_out_date(date);
	g_mime_object_append_header(obj, "Date", text, NULL);
	g_free(text);
	text = g_strdup_printf("<%s>", msgid);
	g_mime_object_append_header(obj, "Message-ID", text, NULL);
	g_free(text);
	g_mime_object_append_header(obj, "MIME-Version", "1.0", NULL);
	/* RFC 3834 5: made by a program, in answer to a message. */
	g_mime_object_append_header(obj, "Auto-Submitted", "auto-replied", NULL);
}

GBytes *
dsn_build(const DsnReport *r, GError **error)
{
	DsnReport rr;
	GMimeMessage *message;
	GMimeMultipart *mp;
	GBytes *bytes;
	GString *fields;
	char *msgid;

	g_return_val_if_fail(r != NULL, NULL);
	if (!check_report(r, error))
		return NULL;
	mime_out_gmime_init();
	rr = *r;
	if (rr.date == 0)
		rr.date = g_get_real_time() / G_USEC_PER_SEC;
	fields = status_fields(&rr);
	if (rr.message_id) {
		msgid = g_strdup(rr.message_id);
	} else {
		char *hash = report_hash(&rr, fields, 0);
		msgid = g_strdup_printf("dsn.%s@%s", hash, rr.reporting_mta);
		g_free(hash);
	}
	message = g_mime_message_new(FALSE);
	add_headers(message, &rr, msgid, rr.date);
	mp = build_report(&rr, fields);
	g_mime_message_set_mime_part(message, GMIME_OBJECT(mp));
	g_object_unref(mp);
	g_string_free(fields, TRUE);

	bytes = mime_out_bytes(message);
	g_object_unref(message);
	if (!bytes)
		g_set_error(error, DSN_ERROR, DSN_ERROR_WRITE,
		    "delivery report %s: GMime could not write it (out of memory?)", msgid);
	g_free(msgid);
	return bytes;
}
