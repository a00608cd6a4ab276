/* test_mail_params.c - BODY=, RET= and NOTIFY= values, parsed and written. */
#include "config.h"

#include <string.h>

#include "cu_run.h"
#include "mail_params.h"

static void
test_body_ret(void)
{
	MailBody b = MAIL_BODY_NONE;
	MailRet r = MAIL_RET_NONE;

	EXPECT(mail_body_parse("8bitmime", 8, &b) && b == MAIL_BODY_8BITMIME, "8bitmime, any case");
	EXPECT(mail_body_parse("7BIT", 4, &b) && b == MAIL_BODY_7BIT, "7BIT");
	EXPECT(!mail_body_parse("8BIT", 4, &b) && b == MAIL_BODY_7BIT, "8BIT refused, value kept");
	EXPECT(!mail_body_parse("7BITX", 4 + 1, &b), "7BITX refused");
	EXPECT(!mail_body_parse("", 0, &b), "an empty value refused");
	EXPECT(mail_ret_parse("Hdrs", 4, &r) && r == MAIL_RET_HDRS, "Hdrs");
	EXPECT(mail_ret_parse("FULLX", 4, &r) && r == MAIL_RET_FULL, "the length is what counts");
	EXPECT(!mail_ret_parse("NONE", 4, &r), "NONE is no value of RET");
	EXPECT(strcmp(mail_body_name(MAIL_BODY_8BITMIME), "8BITMIME") == 0 &&
	    strcmp(mail_body_name(MAIL_BODY_7BIT), "7BIT") == 0 &&
	    mail_body_name(MAIL_BODY_NONE) == NULL && mail_body_name(7) == NULL &&
	    mail_body_name(-1) == NULL, "body names; NONE and out of range have none");
	EXPECT(strcmp(mail_ret_name(MAIL_RET_FULL), "FULL") == 0 &&
	    strcmp(mail_ret_name(MAIL_RET_HDRS), "HDRS") == 0 &&
	    mail_ret_name(MAIL_RET_NONE) == NULL && mail_ret_name(3) == NULL, "ret names");
	/* queue.db holds the numbers: they never move. */
	EXPECT(MAIL_BODY_7BIT == 1 && MAIL_BODY_8BITMIME == 2 && MAIL_RET_FULL == 1 &&
	    MAIL_RET_HDRS == 2 && MAIL_NOTIFY_NEVER == 1 && MAIL_NOTIFY_SUCCESS == 2 &&
	    MAIL_NOTIFY_FAILURE == 4 && MAIL_NOTIFY_DELAY == 8, "the stored numbers");
}

static void
test_notify(void)
{
	static const struct {
		const char *in;
		MailNotifyStatus status;
		guint bits;
		const char *text;
	} cases[] = {
		{ "NEVER", MAIL_NOTIFY_OK, MAIL_NOTIFY_NEVER, "NEVER" },
		{ "never", MAIL_NOTIFY_OK, MAIL_NOTIFY_NEVER, "NEVER" },
		{ "delay,Success", MAIL_NOTIFY_OK, MAIL_NOTIFY_DELAY | MAIL_NOTIFY_SUCCESS,
		  "SUCCESS,DELAY" },
		{ "FAILURE,DELAY,SUCCESS,FAILURE", MAIL_NOTIFY_OK,
		  MAIL_NOTIFY_SUCCESS | MAIL_NOTIFY_FAILURE | MAIL_NOTIFY_DELAY,
		  "SUCCESS,FAILURE,DELAY" },
		{ "FAILURE", MAIL_NOTIFY_OK, MAIL_NOTIFY_FAILURE, "FAILURE" },
		{ "NEVER,DELAY", MAIL_NOTIFY_NEVER_MIXED, 0, NULL },
		{ "SUCCESS,NEVER", MAIL_NOTIFY_NEVER_MIXED, 0, NULL },
		{ "", MAIL_NOTIFY_BAD_WORD, 0, NULL },
		{ "SUCCESS,", MAIL_NOTIFY_BAD_WORD, 0, NULL },
		{ ",SUCCESS", MAIL_NOTIFY_BAD_WORD, 0, NULL },
		{ "SUCCESS FAILURE", MAIL_NOTIFY_BAD_WORD, 0, NULL },
		{ "ALWAYS", MAIL_NOTIFY_BAD_WORD, 0, NULL },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		guint bits = 0xdead;
		MailNotifyStatus st = mail_notify_parse(cases[i].in, strlen(cases[i].in), &bits);
		char *text = st == MAIL_NOTIFY_OK ? mail_notify_text(bits) : NULL;

		EXPECT(st == cases[i].status, "NOTIFY=%s: status %d, wanted %d", cases[i].in, st,
		    cases[i].status);
		EXPECT(st != MAIL_NOTIFY_OK || bits == cases[i].bits, "NOTIFY=%s: bits %#x, wanted %#x",
		    cases[i].in, bits, cases[i].bits);
		EXPECT(st == MAIL_NOTIFY_OK || bits == 0xdead, "NOTIFY=%s: refused, bits untouched",
		    cases[i].in);
		EXPECT(g_strcmp0(text, cases[i].text) == 0, "NOTIFY=%s written as %s, wanted %s",
		    cases[i].in, text ? text : "(null)", cases[i].text ? cases[i].text : "(null)");
		g_free(text);
	}
	EXPECT(mail_notify_text(0) == NULL, "0 (not given) has no text");
	/* What mail_notify_text writes, mail_notify_parse reads back. */
	for (guint bits = 1; bits < 16; bits++) {
		char *text = mail_notify_text(bits);
		guint back = 0;
		guint want = (bits & MAIL_NOTIFY_NEVER) ? MAIL_NOTIFY_NEVER : bits;

		EXPECT(text && mail_notify_parse(text, strlen(text), &back) == MAIL_NOTIFY_OK &&
		    back == want, "bits %#x: %s reads back as %#x", bits, text ? text : "", back);
		g_free(text);
	}
}

int
main(void)
{
	static const CuTest tests[] = {
		{ "BODY= and RET= names", test_body_ret },
		{ "NOTIFY= parsed and written", test_notify },
		{ NULL, NULL },
	};

	return cu_run("mail_params", tests);
}
