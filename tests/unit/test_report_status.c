/* test_report_status.c - legacy reasons <-> RFC 3463 status codes; the status of an SMTP reply. */
#include "config.h"

#include <string.h>

#include "cu_run.h"
#include "message.h"
#include "report/report_status.h"

static guint16
reason_of(const char *status)
{
	return report_reason_of_status(status, strlen(status));
}

static void
test_reason_to_status(void)
{
	static const struct {
		guint16 reason;
		const char *status;
	} cases[] = {
		{ MSG_REASON_UNKNOWN_RECIPIENT, "5.1.1" },
		{ MSG_REASON_LOOP, "5.4.6" },
		{ MSG_REASON_TRANSFER_FAILED, "5.4.0" },
		{ MSG_REASON_EXPIRED, "5.4.7" },
		{ MSG_REASON_TOO_BIG, "5.3.4" },
		{ MSG_REASON_OTHER, "5.0.0" },
		{ MSG_REASON_NONE, "5.0.0" },
		{ 77, "5.0.0" },        /* a code not known reads as "other" */
		{ 65535, "5.0.0" },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		const char *s = report_status_of_reason(cases[i].reason, FALSE);
		EXPECT(strcmp(s, cases[i].status) == 0, "reason %u not delivered: %s, wanted %s",
		    cases[i].reason, s, cases[i].status);
		EXPECT(report_status_valid(s, strlen(s)), "reason %u gives a valid code", cases[i].reason);
		s = report_status_of_reason(cases[i].reason, TRUE);
		EXPECT(strcmp(s, "2.0.0") == 0, "reason %u delivered: %s, wanted 2.0.0",
		    cases[i].reason, s);
	}
}

static void
test_status_to_reason(void)
{
	static const struct {
		const char *status;
		guint16 reason;
	} cases[] = {
		{ "5.1.1", MSG_REASON_UNKNOWN_RECIPIENT }, { "4.1.1", MSG_REASON_UNKNOWN_RECIPIENT },
		{ "5.1.2", MSG_REASON_UNKNOWN_RECIPIENT }, { "5.1.10", MSG_REASON_UNKNOWN_RECIPIENT },
		{ "5.1.6", MSG_REASON_UNKNOWN_RECIPIENT },
		{ "5.4.6", MSG_REASON_LOOP }, { "4.4.6", MSG_REASON_LOOP },
		{ "5.3.4", MSG_REASON_TOO_BIG }, { "5.2.3", MSG_REASON_TOO_BIG },
		{ "552.3.4", MSG_REASON_OTHER },
		{ "4.4.7", MSG_REASON_EXPIRED }, { "5.4.7", MSG_REASON_EXPIRED },
		{ "5.4.0", MSG_REASON_TRANSFER_FAILED }, { "5.0.0", MSG_REASON_TRANSFER_FAILED },
		{ "4.2.2", MSG_REASON_TRANSFER_FAILED }, { "5.7.1", MSG_REASON_TRANSFER_FAILED },
		{ "5.999.999", MSG_REASON_TRANSFER_FAILED },
		{ "2.0.0", MSG_REASON_NONE }, { "2.1.5", MSG_REASON_NONE },
		/* Not status codes. */
		{ "", MSG_REASON_OTHER }, { "5.1", MSG_REASON_OTHER }, { "3.1.1", MSG_REASON_OTHER },
		{ "5.01.1", MSG_REASON_OTHER }, { "5.1.1000", MSG_REASON_OTHER },
		{ "5.1.1 ", MSG_REASON_OTHER }, { "x.1.1", MSG_REASON_OTHER },
		{ "5..1", MSG_REASON_OTHER },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		guint16 got = reason_of(cases[i].status);
		EXPECT(got == cases[i].reason, "status \"%s\": reason %u, wanted %u",
		    cases[i].status, got, cases[i].reason);
	}
	/* The length is what counts: "5.1.1" of "5.1.10". */
	EXPECT(report_reason_of_status("5.4.67", 5) == MSG_REASON_LOOP, "5.4.6 of 5.4.67");
	EXPECT(report_reason_of_status(NULL, 0) == MSG_REASON_OTHER, "NULL is no status");
}

/* Every reason a legacy report gives comes back from its own status. */
static void
test_round_trip(void)
{
	static const guint16 reasons[] = {
		MSG_REASON_UNKNOWN_RECIPIENT, MSG_REASON_LOOP, MSG_REASON_TRANSFER_FAILED,
		MSG_REASON_EXPIRED, MSG_REASON_TOO_BIG,
	};

	for (size_t i = 0; i < G_N_ELEMENTS(reasons); i++) {
		guint16 back = reason_of(report_status_of_reason(reasons[i], FALSE));
		EXPECT(back == reasons[i], "reason %u -> %s -> %u", reasons[i],
		    report_status_of_reason(reasons[i], FALSE), back);
	}
	EXPECT(reason_of(report_status_of_reason(MSG_REASON_OTHER, FALSE)) ==
	    MSG_REASON_TRANSFER_FAILED, "other -> 5.0.0 -> transfer failed (documented)");
	EXPECT(reason_of(report_status_of_reason(MSG_REASON_NONE, TRUE)) == MSG_REASON_NONE,
	    "delivered -> 2.0.0 -> none");
}

static void
test_reply_status(void)
{
	static const struct {
		const char *reply;
		gboolean ok;
		const char *status;
	} cases[] = {
		{ "550 5.1.1 <x@example.org>: Recipient address rejected", TRUE, "5.1.1" },
		{ "550 Requested action not taken", TRUE, "5.0.0" },
		{ "452 4.2.2 Mailbox full", TRUE, "4.2.2" },
		{ "250 2.0.0 Ok: queued as 4AB2C", TRUE, "2.0.0" },
		{ "421 Service not available, closing transmission channel", TRUE, "4.0.0" },
		{ "550", TRUE, "5.0.0" },
		{ "550 5.7.1", TRUE, "5.7.1" },
		{ "550-5.1.1 first line of several", TRUE, "5.1.1" },
		{ "554 5.999.999 odd but valid", TRUE, "5.999.999" },
		/* An enhanced code of another class, or malformed: the basic code speaks. */
		{ "550 4.2.2 class differs", TRUE, "5.0.0" },
		{ "550 5.1.1000 too long", TRUE, "5.0.0" },
		{ "550 5.01.1 leading zero", TRUE, "5.0.0" },
		{ "550 5.1.1: glued", TRUE, "5.0.0" },
		{ "451 4.3.0", TRUE, "4.3.0" },
		/* No reply. */
		{ "", FALSE, "" },
		{ "garbage", FALSE, "" },
		{ "55", FALSE, "" },
		{ "5501 too many digits", FALSE, "" },
		{ "354 Start mail input", FALSE, "" },
		{ "150 not final", FALSE, "" },
		{ "560 second digit over 5", FALSE, "" },
		{ "5x0 no", FALSE, "" },
		{ " 550 5.1.1 leading blank", FALSE, "" },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		char status[REPORT_STATUS_SIZE] = "junk";
		gboolean ok = report_status_of_reply(cases[i].reply, strlen(cases[i].reply), status);

		EXPECT(ok == cases[i].ok, "\"%s\": %s, wanted %s", cases[i].reply, ok ? "TRUE" : "FALSE",
		    cases[i].ok ? "TRUE" : "FALSE");
		EXPECT(strcmp(status, cases[i].status) == 0, "\"%s\": status \"%s\", wanted \"%s\"",
		    cases[i].reply, status, cases[i].status);
	}
	{
		/* Only len bytes are read: no terminator is needed. */
		char buf[9] = { '5', '5', '0', ' ', '5', '.', '1', '.', '1' };
		char status[REPORT_STATUS_SIZE];
		EXPECT(report_status_of_reply(buf, sizeof buf, status) &&
		    strcmp(status, "5.1.1") == 0, "an unterminated reply of 9 bytes: 5.1.1");
		EXPECT(report_status_of_reply(buf, 8, status) && strcmp(status, "5.0.0") == 0,
		    "cut to \"550 5.1.\": 5.0.0");
	}
}

static void
test_status_text(void)
{
	EXPECT(strcmp(report_status_text("5.1.1", 5), "the mailbox does not exist") == 0,
	    "5.1.1 text");
	EXPECT(strcmp(report_status_text("4.2.2", 5), "the mailbox is full") == 0, "4.2.2 text");
	EXPECT(strcmp(report_status_text("5.2.99", 6), "there is a problem with the mailbox") == 0,
	    "an unlisted detail falls back to its subject");
	EXPECT(strcmp(report_status_text("5.9.9", 5), "the reason was not given") == 0,
	    "an unlisted subject falls back to x.0.0");
	EXPECT(strcmp(report_status_text("2.0.0", 5), "delivered") == 0, "2.0.0 text");
	EXPECT(report_status_text("nonsense", 8) != NULL, "never NULL");
	EXPECT(report_status_valid("5.1.1", 5) && !report_status_valid("5.1.1", 4) &&
	    !report_status_valid("6.1.1", 5) && report_status_valid("2.0.0", 5),
	    "report_status_valid");
}

int
main(void)
{
	static const CuTest tests[] = {
		{ "a legacy reason gives its RFC 3463 status", test_reason_to_status },
		{ "an RFC 3463 status gives its legacy reason", test_status_to_reason },
		{ "reason -> status -> reason keeps the reason", test_round_trip },
		{ "the status of an SMTP reply", test_reply_status },
		{ "a status said in plain English", test_status_text },
		{ NULL, NULL },
	};

	return cu_run("report_status", tests);
}
