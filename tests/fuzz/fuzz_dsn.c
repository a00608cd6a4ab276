/* fuzz_dsn.c - libFuzzer target for the delivery report reader
 * (gateway/report/dsn_parse.c, gateway/report/dsn_text.c).
 *
 * The input is one message, handed over as an exact-size copy.  Checked on
 * every input:
 *  - NULL exactly when a reason is given, and the reason is one line of
 *    printable ASCII;
 *  - a result has 1..DSN_MAX_RCPTS recipients, each with a non-empty
 *    Final-Recipient, an action in range and a valid RFC 3463 status; a
 *    heuristic's are failures of class 4 or 5 and it names its text;
 *  - every string of a result is valid UTF-8 without control characters;
 *  - the same input read again gives the same answer.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "report/dsn_parse.h"
#include "report/report_status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_text(const char *s, gboolean may_be_null)
{
	if (!s) {
		if (!may_be_null)
			abort();
		return;
	}
	if (!g_utf8_validate(s, -1, NULL))
		abort();
	for (const char *p = s; *p; p++)
		if ((guchar)*p < 0x20 || *p == 0x7f)
			abort();
}

static void
check_result(const DsnParsed *p)
{
	if (!p->rcpts || p->rcpts->len == 0 || p->rcpts->len > DSN_MAX_RCPTS)
		abort();
	if ((p->kind == DSN_KIND_HEURISTIC) != (p->heuristic != NULL))
		abort();
	check_text(p->envid, TRUE);
	check_text(p->reporting_mta, TRUE);
	check_text(p->orig_message_id, TRUE);
	check_text(p->orig_subject, TRUE);
	for (guint i = 0; i < p->rcpts->len; i++) {
		const DsnParsedRcpt *r = p->rcpts->pdata[i];

		check_text(r->final_recipient, FALSE);
		if (!*r->final_recipient || !dsn_action_name(r->action))
			abort();
		if (!report_status_valid(r->status, strlen(r->status)))
			abort();
		if (p->kind == DSN_KIND_HEURISTIC &&
		    (r->action != DSN_ACTION_FAILED || r->status[0] == '2'))
			abort();
		check_text(r->original_recipient, TRUE);
		check_text(r->diagnostic, TRUE);
		check_text(r->remote_mta, TRUE);
	}
}

static gboolean
same(const DsnParsed *a, const DsnParsed *b)
{
	if (!a || !b)
		return a == b;
	if (a->kind != b->kind || a->rcpts->len != b->rcpts->len ||
	    g_strcmp0(a->orig_message_id, b->orig_message_id) != 0)
		return FALSE;
	for (guint i = 0; i < a->rcpts->len; i++) {
		const DsnParsedRcpt *x = a->rcpts->pdata[i], *y = b->rcpts->pdata[i];

		if (strcmp(x->final_recipient, y->final_recipient) != 0 ||
		    strcmp(x->status, y->status) != 0 || x->action != y->action)
			return FALSE;
	}
	return TRUE;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	guint8 *copy = g_malloc(size ? size : 1);   /* exact size: ASan sees overreads */
	char *why = NULL, *why2 = NULL;
	DsnParsed *p, *again;

	memcpy(copy, data, size);
	p = dsn_parse(copy, size, &why);
	if ((p == NULL) != (why != NULL))
		abort();
	if (why)
		for (const char *c = why; *c; c++)
			if (*c < 0x20 || *c > 0x7e)
				abort();
	if (p)
		check_result(p);
	again = dsn_parse(copy, size, &why2);
	if (!same(p, again) || g_strcmp0(why, why2) != 0)
		abort();
	g_free(copy);
	dsn_parsed_free(p);
	dsn_parsed_free(again);
	g_free(why);
	g_free(why2);
	return 0;
}
