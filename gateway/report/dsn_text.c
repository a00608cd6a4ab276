/* dsn_text.c - bounce texts without a delivery-status part read (see dsn_parse.h).
 *
 * Owns: the table of the texts known (qmail, Postfix without DSN parts, old
 * Exchange, Lotus Notes, Exim) and the one reader they share: where the
 * recipients are listed, each recipient's address and lines, the status in
 * them (an RFC 3463 code, else an SMTP reply code's class).
 * Never: MIME (dsn_parse.c hands over the decoded text), a recipient without
 * a status, a status of class 2.
 */
#include "config.h"

#include <string.h>

#include "report/dsn_parse.h"
#include "report/dsn_int.h"
#include "report/report_status.h"

/* ---- bounce texts without a delivery-status part --------------------------------- */

typedef enum {
	HEUR_ANGLE,     /* "<addr>: reason", the reason's lines up to a blank line */
	HEUR_INDENT,    /* "  addr": the addresses at one indentation (maybe none), the
	                 * reason on the lines after each up to a blank line */
	HEUR_NOTES,     /* indented addresses, then "because:" and one reason for all */
} HeurStyle;

typedef struct {
	const char *name;
	const char *sign;       /* the bounce begins a line with this */
	const char *start;      /* the recipients follow the line holding this */
	const char *end;        /* they end before the line holding this (NULL: none) */
	gboolean end_needed;    /* no end: not this text */
	HeurStyle style;
} Heur;

static const Heur heurs[] = {
	{ "qmail", "Hi. This is the qmail-send program at ",
	  "wasn't able to deliver your message to the following addresses",
	  "--- Below this line is a copy of the message", TRUE, HEUR_ANGLE },
	{ "qmail", "Hi. This is the qmail-send program at ",
	  "wasn't able to deliver your message to the following addresses",
	  "--- Enclosed are the original headers of the message", TRUE, HEUR_ANGLE },
	{ "postfix", "This is the mail system at host ", "delivered to one or more", NULL, FALSE,
	  HEUR_ANGLE },
	{ "postfix", "This is the Postfix program at host ", "delivered to one or more", NULL,
	  FALSE, HEUR_ANGLE },
	{ "exchange", "Your message did not reach some or all of the intended recipients",
	  " be reached:", NULL, FALSE, HEUR_INDENT },
	{ "notes", "was not delivered to:", "was not delivered to:", "because:", TRUE, HEUR_NOTES },
	{ "exim", "This message was created automatically by mail delivery software",
	  "following address(es) failed", "This is a copy of the message", FALSE, HEUR_INDENT },
	{ "exim", "This message was created automatically by mail delivery software",
	  "following addresses failed", "This is a copy of the message", FALSE, HEUR_INDENT },
	{ "exim", "This message was created automatically by mail delivery software",
	  "following address failed", "This is a copy of the message", FALSE, HEUR_INDENT },
};

typedef struct {
	char *addr;
	GString *text;
} HeurRcpt;

/* No recipient's line seen yet. */
#define NO_INDENT G_MAXSIZE

static void
heur_rcpt_free(gpointer data)
{
	HeurRcpt *h = data;

	g_free(h->addr);
	g_string_free(h->text, TRUE);
	g_free(h);
}

/* Where s begins a line of text, or NULL. */
static const char *
line_start_find(const char *text, const char *s)
{
	for (const char *p = strstr(text, s); p; p = strstr(p + 1, s))
		if (p == text || p[-1] == '\n')
			return p;
	return NULL;
}

/* The start of the line after the one p is on (the end of the text at the last). */
static const char *
next_line(const char *p)
{
	const char *nl = strchr(p, '\n');

	return nl ? nl + 1 : p + strlen(p);
}

static gboolean
addr_plausible(const char *s, gsize n)
{
	const char *at = n ? memchr(s, '@', n) : NULL;
	gsize local, dom;

	if (!at || n > DSN_MAX_ADDR_LEN || memchr(at + 1, '@', n - (gsize)(at - s) - 1))
		return FALSE;
	local = (gsize)(at - s);
	dom = n - local - 1;
	if (local < 1 || local > 64 || dom < 3 || at[1] == '.' || s[n - 1] == '.' ||
	    !memchr(at + 1, '.', dom))
		return FALSE;
	for (gsize i = 0; i < local; i++)
		if ((guchar)s[i] <= 0x20 || (guchar)s[i] >= 0x7f || strchr("()<>[]:;,\"\\", s[i]))
			return FALSE;
	for (gsize i = local + 1; i < n; i++)
		if (!g_ascii_isalnum(s[i]) && s[i] != '-' && s[i] != '.' && s[i] != '_')
			return FALSE;
	return TRUE;
}

/* A recipient's line of style st: its address and where its reason begins.
 * *indent: the recipients' indentation, set by the first one (NO_INDENT before). */
static gboolean
rcpt_line(HeurStyle st, const char *l, gsize n, gsize *indent, char **addr, gsize *rest)
{
	gsize i = 0, a, e;

	if (st == HEUR_ANGLE) {
		const char *gt = n && l[0] == '<' ? memchr(l, '>', n) : NULL;

		if (!gt || (gsize)(gt - l) + 1 >= n || gt[1] != ':' ||
		    !addr_plausible(l + 1, (gsize)(gt - l) - 1))
			return FALSE;
		*addr = g_strndup(l + 1, (gsize)(gt - l) - 1);
		*rest = (gsize)(gt - l) + 2;
		return TRUE;
	}
	while (i < n && dsn_is_wsp(l[i]))
		i++;
	if (i == n || (*indent != NO_INDENT && i != *indent))
		return FALSE;
	a = i;
	while (i < n && !dsn_is_wsp(l[i]))
		i++;
	e = i;
	if (e > a && l[e - 1] == ':')
		e--;
	if (e - a >= 2 && l[a] == '<' && l[e - 1] == '>') {
		a++;
		e--;
	}
	if (!addr_plausible(l + a, e - a))
		return FALSE;
	*indent = a - (a > 0 && l[a - 1] == '<' ? 1 : 0);
	*addr = g_strndup(l + a, e - a);
	*rest = i;
	return TRUE;
}

/* The recipients of the lines from..to: each its address and the text of its
 * lines; NULL (and *why) over a limit. */
static GPtrArray *
heur_rcpts(const Heur *h, const char *from, const char *to, char **why)
{
	GPtrArray *out = g_ptr_array_new_with_free_func(heur_rcpt_free);
	HeurRcpt *cur = NULL;
	gsize indent = NO_INDENT;

	for (const char *l = from; l < to && !*why; ) {
		const char *nl = memchr(l, '\n', (gsize)(to - l));
		gsize n = nl ? (gsize)(nl - l) : (gsize)(to - l), rest = 0;
		char *addr = NULL;

		if (n && l[n - 1] == '\r')
			n--;
		if (dsn_is_blank(l, n) && h->style != HEUR_NOTES) {
			cur = NULL;
		} else if (rcpt_line(h->style, l, n, &indent, &addr, &rest)) {
			if (out->len >= DSN_MAX_RCPTS) {
				dsn_say(why, "the %s text names more than %u recipients (DSN_MAX_RCPTS)",
				    h->name, DSN_MAX_RCPTS);
				g_free(addr);
			} else {
				cur = g_new0(HeurRcpt, 1);
				cur->addr = addr;
				cur->text = g_string_new_len(l + rest, (gssize)(n - rest));
				g_ptr_array_add(out, cur);
			}
		} else if (cur && h->style != HEUR_NOTES) {
			if (cur->text->len + n + 1 > DSN_MAX_FIELD_LEN)
				dsn_say(why, "the %s text about %s is over %u bytes (DSN_MAX_FIELD_LEN)",
				    h->name, cur->addr, DSN_MAX_FIELD_LEN);
			g_string_append_c(cur->text, ' ');
			g_string_append_len(cur->text, l, (gssize)n);
		}
		l = nl ? nl + 1 : to;
	}
	if (*why) {
		g_ptr_array_unref(out);
		return NULL;
	}
	return out;
}

/* Whether c may stand right before a code in a text. */
static gboolean
code_may_follow(char c)
{
	return !g_ascii_isalnum(c) && c != '.' && c != '-' && c != ':' && c != '/';
}

/* The first RFC 3463 code of class 4 or 5 standing alone in s ("#5.1.1",
 * "550 5.1.1 "), else the class of the first SMTP reply code 4yz or 5yz (y
 * 0-5) standing alone, as "5.0.0"; NULL when there is neither. */
static char *
find_status(const char *s, gsize n)
{
	for (gsize i = 0; i + 4 < n; i++) {
		gsize j = i + 2, d;

		if ((s[i] != '4' && s[i] != '5') || s[i + 1] != '.' ||
		    (i > 0 && !code_may_follow(s[i - 1])))
			continue;
		d = dsn_digits_at(s, j, n);
		if (d < 1 || d > 3 || j + d >= n || s[j + d] != '.')
			continue;
		j += d + 1;
		d = dsn_digits_at(s, j, n);
		if (d < 1 || d > 3)
			continue;
		j += d;
		if ((j < n && (g_ascii_isalnum(s[j]) || (s[j] == '.' && j + 1 < n &&
		    g_ascii_isdigit(s[j + 1])))) || !report_status_valid(s + i, j - i))
			continue;
		return g_strndup(s + i, j - i);
	}
	for (gsize i = 0; i + 2 < n; i++) {
		if ((s[i] != '4' && s[i] != '5') || s[i + 1] < '0' || s[i + 1] > '5' ||
		    !g_ascii_isdigit(s[i + 2]) || (i > 0 && !code_may_follow(s[i - 1])))
			continue;
		if (i + 3 == n || s[i + 3] == ' ' || s[i + 3] == '\t' || s[i + 3] == '-')
			return g_strdup(s[i] == '5' ? "5.0.0" : "4.0.0");
	}
	return NULL;
}

/* One recipient of a bounce text into p; FALSE (and *why) without a status. */
static gboolean
heur_add(const Heur *h, const char *addr, const char *text, gsize len, DsnParsed *p,
    char **why)
{
	DsnParsedRcpt *r;
	char *status = find_status(text, len);

	if (!status) {
		dsn_say(why, "the %s text gives no status code for %s", h->name, addr);
		return FALSE;
	}
	r = g_new0(DsnParsedRcpt, 1);
	r->final_recipient = g_strdup(addr);
	r->action = DSN_ACTION_FAILED;
	r->status = status;
	r->diagnostic = dsn_clean_text(text, len);
	if (!*r->diagnostic) {
		g_free(r->diagnostic);
		r->diagnostic = NULL;
	}
	g_ptr_array_add(p->rcpts, r);
	return TRUE;
}

/* HEUR_NOTES: the reason after the "because:" line at because, up to its
 * first blank line after some text. */
static GString *
notes_reason(const char *because)
{
	GString *o = g_string_new(NULL);

	for (const char *l = next_line(because); *l; l = next_line(l)) {
		const char *nl = strchr(l, '\n');
		gsize n = nl ? (gsize)(nl - l) : strlen(l);

		if (n && l[n - 1] == '\r')
			n--;
		if (dsn_is_blank(l, n)) {
			if (o->len)
				break;
			continue;
		}
		if (o->len + n + 1 > DSN_MAX_FIELD_LEN)
			break;
		g_string_append_c(o, ' ');
		g_string_append_len(o, l, (gssize)n);
	}
	return o;
}

/* The bounce text (UTF-8) read by heuristic h; NULL (and *why) when it does not
 * name a recipient and a status for every one it names. */
static DsnParsed *
heur_read(const Heur *h, const char *text, const char **copy, char **why)
{
	const char *sign = line_start_find(text, h->sign), *start, *end;
	GPtrArray *rcpts;
	GString *reason = NULL;
	DsnParsed *p;

	if (!sign || !(start = strstr(sign, h->start)))
		return NULL;
	start = next_line(start);
	end = h->end ? strstr(start, h->end) : NULL;
	if (!end && h->end_needed)
		return NULL;
	if (h->style != HEUR_NOTES && end)
		*copy = next_line(end);
	while (end && end > start && end[-1] != '\n')
		end--;
	rcpts = heur_rcpts(h, start, end ? end : start + strlen(start), why);
	if (!rcpts)
		return NULL;
	if (h->style == HEUR_NOTES)
		reason = notes_reason(end);
	p = dsn_parsed_new(DSN_KIND_HEURISTIC);
	p->heuristic = g_strdup(h->name);
	for (guint i = 0; i < rcpts->len && !*why; i++) {
		HeurRcpt *r = rcpts->pdata[i];
		GString *t = reason ? reason : r->text;

		heur_add(h, r->addr, t->str, t->len, p, why);
	}
	if (!*why && p->rcpts->len == 0)
		dsn_say(why, "the %s text names no recipient", h->name);
	g_ptr_array_unref(rcpts);
	if (reason)
		g_string_free(reason, TRUE);
	if (*why) {
		dsn_parsed_free(p);
		return NULL;
	}
	return p;
}

DsnParsed *
dsn_text_read(const char *text, const char **copy, char **why)
{
	DsnParsed *p = NULL;

	for (gsize i = 0; i < G_N_ELEMENTS(heurs) && !p && !*why; i++) {
		*copy = NULL;
		p = heur_read(&heurs[i], text, copy, why);
	}
	if (!p)
		*copy = NULL;
	return p;
}
