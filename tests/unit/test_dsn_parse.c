/* test_dsn_parse.c - delivery reports read: the corpus of real bounces in
 * tests/bounces (each with a hand-written expectation), then one written case
 * for each rule and each limit of gateway/report/dsn_parse.h. */
#include "config.h"

#include <string.h>

#include "cu_run.h"
#include "report/dsn_parse.h"

/* ---- helpers -------------------------------------------------------------------- */

/* dsn_parse on an exact-size copy: ASan sees any read past the end. */
static DsnParsed *
parse_len(const char *data, gsize len, char **why)
{
	guint8 *copy = g_memdup2(data, len ? len : 1);
	DsnParsed *p = dsn_parse(copy, len, why);

	g_free(copy);
	return p;
}

static DsnParsed *
parse(const char *text, char **why)
{
	return parse_len(text, strlen(text), why);
}

static const DsnParsedRcpt *
rcpt(const DsnParsed *p, guint i)
{
	return p && i < p->rcpts->len ? p->rcpts->pdata[i] : NULL;
}

/* A multipart/report around a delivery-status body (LF line ends: CRLF is
 * checked by the corpus) and an optional returned part (its whole MIME
 * entity, headers first). */
static char *
report(const char *ctype, const char *status_body, const char *returned)
{
	return g_strdup_printf(
	    "From: MAILER-DAEMON@mx.example.net\n"
	    "To: alice@example.org\n"
	    "Subject: Undelivered Mail Returned to Sender\n"
	    "MIME-Version: 1.0\n"
	    "Content-Type: multipart/report; report-type=delivery-status;\n"
	    "\tboundary=\"BOUND\"\n"
	    "\n"
	    "--BOUND\n"
	    "Content-Type: text/plain\n"
	    "\n"
	    "Your message could not be delivered.\n"
	    "\n"
	    "--BOUND\n"
	    "Content-Type: %s\n"
	    "\n"
	    "%s"
	    "\n"
	    "--BOUND\n"
	    "%s"
	    "\n"
	    "--BOUND--\n", ctype, status_body, returned ? returned :
	    "Content-Type: text/rfc822-headers\n\nMessage-ID: <m1@example.org>\nSubject: hi\n");
}

static DsnParsed *
parse_status(const char *status_body, char **why)
{
	char *m = report("message/delivery-status", status_body, NULL);
	DsnParsed *p = parse(m, why);

	g_free(m);
	return p;
}

/* NULL, and a reason holding want. */
static void
expect_none_at(int line, DsnParsed *p, char *why, const char *want, const char *what)
{
	expect_at(p == NULL, line, "%s: no report", what);
	expect_at(why != NULL && strstr(why, want) != NULL, line, "%s: reason \"%s\" says \"%s\"",
	    what, why ? why : "(null)", want);
	dsn_parsed_free(p);
	g_free(why);
}
/* EXPECT_NONE - expr (evaluated first: it sets why) gives no report, and why holds want; why is
 * freed */
#define EXPECT_NONE(expr, why, want, what) do { \
		DsnParsed *p_ = (expr); \
		expect_none_at(__LINE__, p_, (why), (want), (what)); \
	} while (0)

/* ---- the corpus ----------------------------------------------------------------- */

typedef struct {
	const char *addr;
	DsnAction action;
	const char *status;
} Want;

typedef struct {
	const char *file;
	int kind;               /* -1: not a report; else a DsnKind */
	guint n;                /* recipients */
	Want r[3];              /* the first ones */
	const char *msgid;      /* of the returned message, or NULL for none */
} Case;

#define NONE -1
#define RFC DSN_KIND_RFC3464
#define HEUR DSN_KIND_HEURISTIC
#define F DSN_ACTION_FAILED
#define D DSN_ACTION_DELAYED

static const Case cases[] = {
	/* Demon's text after Exim's opening line: no address list */
	{ "flufl-bounce_03.eml", NONE, 0, { { 0 } }, NULL },
	{ "flufl-dsn_01.eml", RFC, 1, {
		{ "userx@sims-ms-daemon", F, "5.0.0" },
	  }, "F1218V8zDv60gxapzha000001ae@hotmail.com" },
	{ "flufl-dsn_02.eml", RFC, 1, {
		{ "/S=zzzzz/OU=example/PRMD=UK.AC/ADMD= /C=GB/", F, "4.4.7" },
	  }, "LNBBLJKPBEHFEDALKOLCMEEDIFAA.tim.one@home.com" },
	/* RFC 3464 with "Action: failure", no action of RFC 3464 */
	{ "flufl-dsn_03.eml", NONE, 0, { { 0 } }, NULL },
	{ "flufl-dsn_06.eml", RFC, 1, {
		{ "userx@example.com", D, "4.4.0" },
	  }, "j4d77kvs79.fsf@informatik.hu-berlin.de" },
	{ "flufl-dsn_08.eml", RFC, 1, {
		{ "userx@example.de", D, "4.0.0" },
	  }, "NEBBLDPBKLOKNHPAEECGAENDCIAA.zope@toenjes.com" },
	{ "flufl-dsn_09.eml", RFC, 1, {
		{ "/RFC-822=pr allen-heath.com/ADMD= /C=WW/", F, "5.0.0" },
	  }, "3BE4F1EC.8306C281@nleaudio.com" },
	{ "flufl-dsn_12.eml", RFC, 1, {
		{ "userx@example.jp", F, "5.1.1" },
	  }, NULL },
	{ "flufl-dsn_13.eml", RFC, 1, {
		{ "userx@example.com", F, "5.1.1" },
	  }, "mailman.8262.1143060203.1568.wed_ride@grizz.org" },
	/* the report comes forwarded inside a message/rfc822: not read */
	{ "flufl-dsn_15.eml", NONE, 0, { { 0 } }, NULL },
	{ "flufl-dsn_16.eml", RFC, 1, {
		{ "userx@example.com", F, "5.0.0" },
	  }, NULL },
	{ "flufl-dsn_17.eml", RFC, 1, {
		{ "xxx@example.fi", D, "4.3.0" },
	  }, "mailman.150418.1209869464.31038.pray4-team@strategicnetwork.org" },
	/* RFC 3464 with "Action: error" */
	{ "flufl-dsn_18.eml", NONE, 0, { { 0 } }, NULL },
	{ "flufl-exim_01.eml", HEUR, 1, {
		{ "userx@its.example.nl", F, "5.1.1" },
	  }, "19990920022322.A19735@stereo.rotzorg.org" },
	/* Exchange 5.5 "did not reach the following recipient(s)", no status code */
	{ "flufl-microsoft_02.eml", NONE, 0, { { 0 } }, NULL },
	/* a delivery-status part without recipient groups */
	{ "flufl-netscape_01.eml", NONE, 0, { { 0 } }, NULL },
	{ "flufl-postfix_01.eml", HEUR, 1, {
		{ "xxxxx@local.ie", F, "5.1.1" },
	  }, NULL },
	/* Postfix text, "Name service error ... try again": no code */
	{ "flufl-postfix_02.eml", NONE, 0, { { 0 } }, NULL },
	/* "This is the Postfix on SuSE Linux ... program", and no code */
	{ "flufl-postfix_03.eml", NONE, 0, { { 0 } }, NULL },
	/* qmail text, the address without a reason */
	{ "flufl-qmail_01.eml", NONE, 0, { { 0 } }, NULL },
	/* qmail's list under a rewritten opening text */
	{ "flufl-qmail_05.eml", NONE, 0, { { 0 } }, NULL },
	/* an automatic reply (Spanish) */
	{ "flufl-qmail_08.eml", NONE, 0, { { 0 } }, NULL },
	/* Exim's delay warning: no failure */
	{ "flufl-simple_03.eml", NONE, 0, { { 0 } }, NULL },
	/* Exim-like text, the reason not under the address: no code for it */
	{ "flufl-simple_08.eml", NONE, 0, { { 0 } }, NULL },
	/* Exim text, "addresses\nfailed:" broken over two lines, "quota exceeded" without code */
	{ "flufl-simple_09.eml", NONE, 0, { { 0 } }, NULL },
	/* Lotus Notes text, "because:" without a code */
	{ "flufl-simple_11.eml", NONE, 0, { { 0 } }, NULL },
	/* a delivery-status part holding "Message removed" */
	{ "flufl-simple_13.eml", NONE, 0, { { 0 } }, NULL },
	/* Exim text, "an undisclosed address" */
	{ "flufl-simple_16.eml", NONE, 0, { { 0 } }, NULL },
	{ "flufl-simple_29.eml", HEUR, 1, {
		{ "userx@example.com", F, "5.0.0" },
	  }, NULL },
	{ "flufl-simple_34.eml", HEUR, 1, {
		{ "roland@example.com", F, "5.1.1" },
	  }, NULL },
	/* a disposition notification (MDN), no delivery report */
	{ "flufl-simple_38.eml", NONE, 0, { { 0 } }, NULL },
	{ "flufl-simple_42.eml", RFC, 1, {
		{ "david...@gmail.com", F, "5.0.0" },
	  }, NULL },
	/* Yahoo's own text */
	{ "flufl-yahoo_13.eml", NONE, 0, { { 0 } }, NULL },
	/* a vacation reply */
	{ "perl-aol-vacation.eml", NONE, 0, { { 0 } }, NULL },
	{ "perl-aol.unknown.eml", RFC, 1, {
		{ "recipient@example.net", F, "5.1.1" },
	  }, "200606062115.k56LFe7d012436@somehost.example.com" },
	/* an automatic reply */
	{ "perl-autoreply.eml", NONE, 0, { { 0 } }, NULL },
	{ "perl-cam-unknown.eml", RFC, 1, {
		{ "recipient@example.net", F, "5.0.0" },
	  }, "20100719115008.4B69B16582C5@server4.example.co.uk" },
	/* Lotus Notes text without a code */
	{ "perl-domino.unknown.eml", NONE, 0, { { 0 } }, NULL },
	/* Exchange 5.5 IMS text without a code */
	{ "perl-exchange.unknown.eml", NONE, 0, { { 0 } }, NULL },
	{ "perl-gmail-via-sendmail.unknown.eml", RFC, 1, {
		{ "recipient@example.net", F, "5.7.1" },
	  }, "200608011745.k71Hj05k026361@somehost.example.com" },
	{ "perl-hotmail-via-sendmail.unknown.eml", RFC, 1, {
		{ "recipient@example.net", F, "5.1.1" },
	  }, "200608282012.k7SKChA2006269@somehost.example.com" },
	{ "perl-iis-multiple-bounce.eml", RFC, 4, {
		{ "bounced1@example.net", F, "5.0.0" },
		{ "bounced2@example.net", F, "5.0.0" },
		{ "bounced3@example.net", F, "5.0.0" },
	  }, "CNISERVERTrpwACkWHZ00000098@smtp.example.com" },
	{ "perl-long-smtp.eml", RFC, 1, {
		{ "recipient@example.net", F, "4.4.7" },
	  }, "47F0E84C-CCC1-11E4-9F5F-EB6EAB8B1A2B@example.com" },
	/* Exim text, "all hosts have been failing": no code */
	{ "perl-misidentified-recipient.eml", NONE, 0, { { 0 } }, NULL },
	/* a multipart/report without parts */
	{ "perl-no-message-collected.eml", NONE, 0, { { 0 } }, NULL },
	{ "perl-non-autoreply.eml", HEUR, 1, {
		{ "hbsdpphvfex@blackwebportal.com", F, "5.0.0" },
	  }, "200607250935.k6P9Zdos034419@bacchus.thegestalt.org" },
	/* an automatic reply (Polish) */
	{ "perl-polish-autoreply.eml", NONE, 0, { { 0 } }, NULL },
	{ "perl-postfix-host-unknown.eml", RFC, 1, {
		{ "bounce@dest.example.com", F, "5.0.0" },
	  }, "20090325022955.1C29AC5C98@somehost.example.com" },
	{ "perl-postfix-smtp-550.eml", RFC, 1, {
		{ "luser@otherhost.invalid", F, "5.0.0" },
	  }, "200606062135.k56LZFWj016815@somehost.example.com" },
	{ "perl-postfix.eml", RFC, 1, {
		{ "bounce@dest.example.com", F, "5.0.0" },
	  }, "20060527213404.GN13012@mta.domain-1.com" },
	{ "perl-qmail.unknown.eml", HEUR, 1, {
		{ "recipient@example.net", F, "5.1.1" },
	  }, "200608282008.k7SK8Bbu032023@somehost.example.com" },
	{ "perl-quota-4.eml", RFC, 1, {
		{ "fred-bloggs@a.b.c", F, "5.1.1" },
	  }, "20100606172725.E9197B5820A@server2.example.co.uk" },
	{ "perl-spam-rejection36.eml", RFC, 1, {
		{ "fred.blogs@sample3.com", F, "5.0.0" },
	  }, "20120919102324.5888C6512E9@admin1.example.co.uk" },
	/* an ordinary message (spam) */
	{ "perl-spam-with-image.eml", NONE, 0, { { 0 } }, NULL },
	{ "perl-surfcontrol-extra-newline.eml", RFC, 1, {
		{ "recipient@example.net", F, "5.0.0" },
	  }, "20060816100117.CF938474458@bbx.example.com" },
	{ "perl-warning-1.eml", RFC, 1, {
		{ "example@example.com", F, "5.1.1" },
	  }, "20090706231210.570C471C4D7@server4.example.co.uk" },
	{ "perl-warning-3.eml", RFC, 1, {
		{ "1@server4.example.co.uk", F, "5.0.0" },
	  }, "20090707233454.6434D71C4D7@server4.example.co.uk" },
	{ "perl-warning-4.eml", RFC, 1, {
		{ "a@b.c", F, "5.2.2" },
	  }, NULL },
	/* an out-of-office reply */
	{ "perl-warning-6.eml", NONE, 0, { { 0 } }, NULL },
	{ "perl-yahoo-user-unknown.eml", RFC, 1, {
		{ "recipient@example.net", F, "5.3.0" },
	  }, "20100714185003.7E8E816582B3@server4.example.co.uk" },
};

static char *
srcpath(const char *dir, const char *file)
{
	const char *src = g_getenv("srcdir");

	return g_build_filename(src && *src ? src : ".", "tests", dir, file, NULL);
}

static void
check_case(const Case *k)
{
	char *path = srcpath("bounces", k->file), *data = NULL, *why = NULL;
	gsize len = 0;
	DsnParsed *p;

	EXPECT(g_file_get_contents(path, &data, &len, NULL), "%s: readable (srcdir=%s)", k->file,
	    g_getenv("srcdir"));
	g_free(path);
	if (!data)
		return;
	p = parse_len(data, len, &why);
	g_free(data);
	if (k->kind == NONE) {
		EXPECT(p == NULL && why != NULL, "%s: not a report (%s)", k->file,
		    p ? rcpt(p, 0)->final_recipient : why);
		dsn_parsed_free(p);
		g_free(why);
		return;
	}
	EXPECT(p != NULL && why == NULL, "%s: a report (%s)", k->file, why ? why : "");
	if (!p) {
		g_free(why);
		return;
	}
	EXPECT((int)p->kind == k->kind, "%s: kind %d, wanted %d", k->file, p->kind, k->kind);
	EXPECT(p->rcpts->len == k->n, "%s: %u recipients, wanted %u", k->file, p->rcpts->len, k->n);
	for (guint i = 0; i < k->n && i < 3 && i < p->rcpts->len; i++) {
		const DsnParsedRcpt *r = rcpt(p, i);

		EXPECT(g_ascii_strcasecmp(r->final_recipient, k->r[i].addr) == 0,
		    "%s #%u: recipient %s, wanted %s", k->file, i, r->final_recipient, k->r[i].addr);
		EXPECT(r->action == k->r[i].action, "%s #%u: action %s, wanted %s", k->file, i,
		    dsn_action_name(r->action), dsn_action_name(k->r[i].action));
		EXPECT(strcmp(r->status, k->r[i].status) == 0, "%s #%u: status %s, wanted %s",
		    k->file, i, r->status, k->r[i].status);
	}
	EXPECT(g_strcmp0(p->orig_message_id, k->msgid) == 0, "%s: returned Message-ID %s, wanted %s",
	    k->file, p->orig_message_id ? p->orig_message_id : "(null)",
	    k->msgid ? k->msgid : "(null)");
	dsn_parsed_free(p);
}

static void
test_corpus(void)
{
	guint reports = 0, heuristic = 0, none = 0;

	for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
		check_case(&cases[i]);
		if (cases[i].kind == NONE)
			none++;
		else if (cases[i].kind == HEUR)
			heuristic++;
		else
			reports++;
	}
	EXPECT(reports >= 20 && heuristic >= 5 && none >= 5,
	    "the corpus: %u RFC 3464, %u heuristic, %u not reports", reports, heuristic, none);
}

/* Ordinary messages of tests/mime are no reports. */
static void
test_ordinary(void)
{
	static const char *const files[] = { "plain-ascii.eml", "nested-mixed.eml",
	    "rfc822-attached.eml", "python-msg_02-digest.eml", "signed.eml", "huge-header.eml",
	    "alternative-text-html.eml", "missing-final-boundary.eml" };

	for (gsize i = 0; i < G_N_ELEMENTS(files); i++) {
		char *path = srcpath("mime", files[i]), *data = NULL, *why = NULL;
		gsize len = 0;
		DsnParsed *p;

		EXPECT(g_file_get_contents(path, &data, &len, NULL), "%s readable", path);
		g_free(path);
		if (!data)
			continue;
		p = parse_len(data, len, &why);
		EXPECT(p == NULL && why != NULL, "tests/mime/%s: not a report (%s)", files[i],
		    why ? why : "");
		dsn_parsed_free(p);
		g_free(why);
		g_free(data);
	}
}

/* ---- RFC 3464 rules ------------------------------------------------------------- */

static void
test_fields(void)
{
	char *why = NULL;
	DsnParsed *p = parse_status(
	    "Reporting-MTA: dns; mx.example.net (Postfix)\n"
	    "original-envelope-ID: ABC+2BDEF+3D1\n"
	    "Arrival-Date: Mon, 4 Mar 2024 10:00:00 +0100\n"
	    "\n"
	    "FINAL-recipient : RFC822; <bob@example.net>\n"
	    "Original-Recipient: rfc822;bob+2Blists@example.net\n"
	    "Action: Failed (permanent)\n"
	    "Status: 5.1.1 (bad destination mailbox)\n"
	    "Remote-MTA: dns; in.example.net\n"
	    "Diagnostic-Code: smtp; 550 5.1.1 <bob@example.net>: Recipient address\n"
	    "    rejected: User unknown (in reply to RCPT TO command)\n"
	    "\n"
	    "Final-Recipient: rfc822;carol+tag@example.net\n"
	    "Original-Recipient: rfc822;carol+tag@example.net\n"
	    "Action: delayed\n"
	    "Status: 4.4.1\n", &why);
	const DsnParsedRcpt *r = rcpt(p, 0), *r2 = rcpt(p, 1);

	EXPECT(p && !why && p->kind == DSN_KIND_RFC3464 && p->rcpts->len == 2, "two recipients (%s)",
	    why ? why : "");
	if (!r || !r2) {
		dsn_parsed_free(p);
		g_free(why);
		return;
	}
	EXPECT(g_strcmp0(p->reporting_mta, "mx.example.net") == 0, "Reporting-MTA, comment removed: %s",
	    p->reporting_mta);
	EXPECT(g_strcmp0(p->envid, "ABC+DEF=1") == 0, "envid xtext decoded: %s", p->envid);
	EXPECT(g_strcmp0(p->orig_message_id, "m1@example.org") == 0 &&
	    g_strcmp0(p->orig_subject, "hi") == 0, "text/rfc822-headers: %s, %s",
	    p->orig_message_id, p->orig_subject);
	EXPECT(strcmp(r->final_recipient, "bob@example.net") == 0,
	    "names in any case, type and brackets removed: %s", r->final_recipient);
	EXPECT(g_strcmp0(r->original_recipient, "bob+lists@example.net") == 0,
	    "Original-Recipient xtext decoded: %s", r->original_recipient);
	EXPECT(r->action == DSN_ACTION_FAILED && strcmp(r->status, "5.1.1") == 0,
	    "Action and Status read past their comments: %s %s", dsn_action_name(r->action),
	    r->status);
	EXPECT(g_strcmp0(r->remote_mta, "in.example.net") == 0, "Remote-MTA %s", r->remote_mta);
	EXPECT(g_strcmp0(r->diagnostic, "550 5.1.1 <bob@example.net>: Recipient address rejected: "
	    "User unknown (in reply to RCPT TO command)") == 0,
	    "Diagnostic-Code unfolded, its comment kept: %s", r->diagnostic);
	EXPECT(strcmp(r2->final_recipient, "carol+tag@example.net") == 0 &&
	    g_strcmp0(r2->original_recipient, "carol+tag@example.net") == 0,
	    "a '+' that is no xtext kept as written: %s", r2->original_recipient);
	EXPECT(r2->action == DSN_ACTION_DELAYED && strcmp(r2->status, "4.4.1") == 0 &&
	    !r2->diagnostic && !r2->remote_mta, "second group: delayed 4.4.1, nothing else");
	dsn_parsed_free(p);
}

static void
test_crlf_and_encodings(void)
{
	const char *m =
	    "From: postmaster@example.net\r\n"
	    "Content-Type: Multipart/Report; Report-Type=\"Delivery-Status\"; boundary=b\r\n"
	    "\r\n"
	    "--b\r\n"
	    "Content-Type: message/delivery-status\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "\r\n"
	    /* "Reporting-MTA: dns; a.example\r\n\r\nFinal-Recipient: rfc822; x@example.net\r\n
	     * Action: failed\r\nStatus: 5.2.2\r\n" */
	    "UmVwb3J0aW5nLU1UQTogZG5zOyBhLmV4YW1wbGUNCg0KRmluYWwtUmVjaXBpZW50OiByZmM4MjI7\r\n"
	    "IHhAZXhhbXBsZS5uZXQNCkFjdGlvbjogZmFpbGVkDQpTdGF0dXM6IDUuMi4yDQo=\r\n"
	    "--b\r\n"
	    "Content-Type: message/rfc822\r\n"
	    "\r\n"
	    "Message-ID: <orig@example.org>\r\n"
	    "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
	    "\r\n"
	    "body\r\n"
	    "--b--\r\n";
	char *why = NULL;
	DsnParsed *p = parse(m, &why);

	EXPECT(p && rcpt(p, 0) && strcmp(rcpt(p, 0)->final_recipient, "x@example.net") == 0 &&
	    strcmp(rcpt(p, 0)->status, "5.2.2") == 0, "CRLF, type names in any case, base64 part "
	    "decoded (%s)", why ? why : "");
	EXPECT(p && g_strcmp0(p->orig_message_id, "orig@example.org") == 0 &&
	    g_strcmp0(p->orig_subject, "Grüße") == 0, "message/rfc822: id and decoded Subject");
	dsn_parsed_free(p);
	g_free(why);
}

static void
test_global(void)
{
	char *m = report("message/global-delivery-status",
	    "Reporting-MTA: dns; mx.example.net\n\n"
	    "Final-Recipient: utf-8; jöran@example.net\nAction: failed\nStatus: 5.1.1\n", NULL);
	char *why = NULL;
	DsnParsed *p = parse(m, &why);

	EXPECT(p && rcpt(p, 0) && strcmp(rcpt(p, 0)->final_recipient, "jöran@example.net") == 0,
	    "message/global-delivery-status with a UTF-8 address (%s)", why ? why : "");
	dsn_parsed_free(p);
	g_free(why);
	g_free(m);
}

static void
test_malformed(void)
{
	static const struct {
		const char *body, *why, *what;
	} bad[] = {
		{ "Reporting-MTA: dns; a\n\nAction: failed\nStatus: 5.1.1\n", "no final-recipient",
		  "missing Final-Recipient" },
		{ "Reporting-MTA: dns; a\n\nFinal-Recipient: rfc822; x@y.z\nStatus: 5.1.1\n",
		  "no action", "missing Action" },
		{ "Reporting-MTA: dns; a\n\nFinal-Recipient: rfc822; x@y.z\nAction: failed\n",
		  "no status", "missing Status" },
		{ "Reporting-MTA: dns; a\n\nFinal-Recipient: rfc822; x@y.z\nAction: bounced\n"
		  "Status: 5.1.1\n", "Action", "unknown Action" },
		{ "Reporting-MTA: dns; a\n\nFinal-Recipient: rfc822; x@y.z\nAction: failed\n"
		  "Status: 5.1\n", "Status", "status 5.1" },
		{ "Reporting-MTA: dns; a\n\nFinal-Recipient: rfc822; x@y.z\nAction: failed\n"
		  "Status: 6.0.0\n", "Status", "status class 6" },
		{ "Reporting-MTA: dns; a\n\nFinal-Recipient: rfc822; x@y.z\nAction: failed\n"
		  "Status: 5.1.1234\n", "Status", "status 5.1.1234" },
		{ "Reporting-MTA: dns; a\n\nFinal-Recipient: rfc822; x@y.z\nAction: failed\n"
		  "Status: failed\n", "Status", "status a word" },
		{ "Reporting-MTA: dns; a\n\nFinal-Recipient: rfc822; x@y.z\nAction: failed\n"
		  "Status: 5.01.1\n", "Status", "status with a leading zero" },
		{ "Reporting-MTA: dns; a\n\nFinal-Recipient: rfc822; x@y.z\nAction: failed\n"
		  "Status: 3.0.0\n", "Status", "status class 3" },
		{ "Reporting-MTA: dns; a\n\nFinal-Recipient: rfc822;\nAction: failed\n"
		  "Status: 5.1.1\n", "holds no address", "an empty Final-Recipient" },
		{ "Reporting-MTA: dns; a\n\nFinal-Recipient: rfc822; x@y.z\n"
		  "Final-Recipient: rfc822; w@y.z\nAction: failed\nStatus: 5.1.1\n", "twice",
		  "two Final-Recipient in one group (a blank line missing)" },
		{ "Reporting-MTA: dns; a\n\nFinal-Recipient: rfc822; x@y.z\nAction: failed (oops\n"
		  "Status: 5.1.1\n", "Action", "an unclosed comment" },
		{ " folded: before any field\n", "continues no field", "a continuation first" },
		{ "Reporting-MTA: dns; a\n\nthis is no field\n", "no field", "a line without colon" },
		{ "Reporting-MTA: dns; a\n\nFinal-Recipient: rfc822; x@y.z\x01\nAction: failed\n"
		  "Status: 5.1.1\n", "control character", "a control character" },
		{ "Reporting-MTA: dns; a\n", "no recipient group", "no recipient group" },
		{ "\n\n", "no fields", "an empty part" },
	};

	for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
		char *why = NULL;
		DsnParsed *p = parse_status(bad[i].body, &why);

		EXPECT_NONE(p, why, bad[i].why, bad[i].what);
	}
	EXPECT(strcmp(dsn_action_name(DSN_ACTION_EXPANDED), "expanded") == 0 &&
	    dsn_action_name((DsnAction)5) == NULL && dsn_action_name((DsnAction)-1) == NULL,
	    "dsn_action_name");
}

/* A first group with Final-Recipient (no per-message group) is a recipient's. */
static void
test_no_per_message(void)
{
	char *why = NULL;
	DsnParsed *p = parse_status("Final-Recipient: rfc822; x@y.z\nAction: failed\n"
	    "Status: 5.0.0\n", &why);

	EXPECT(p && p->rcpts->len == 1 && !p->reporting_mta, "one recipient, no Reporting-MTA (%s)",
	    why ? why : "");
	dsn_parsed_free(p);
	g_free(why);
}

static char *
groups(guint n)
{
	GString *s = g_string_new("Reporting-MTA: dns; mx.example.net\n");

	for (guint i = 0; i < n; i++)
		g_string_append_printf(s, "\nFinal-Recipient: rfc822; u%u@example.net\n"
		    "Action: failed\nStatus: 5.1.1\n", i);
	return g_string_free(s, FALSE);
}

static void
test_limits(void)
{
	char *body = groups(DSN_MAX_RCPTS), *why = NULL, *big;
	DsnParsed *p = parse_status(body, &why);
	GString *s;

	EXPECT(p && p->rcpts->len == DSN_MAX_RCPTS, "%u recipient groups read (%s)", DSN_MAX_RCPTS,
	    why ? why : "");
	dsn_parsed_free(p);
	g_free(why);
	g_free(body);
	why = NULL;
	body = groups(DSN_MAX_RCPTS + 1);
	EXPECT_NONE(parse_status(body, &why), why, "DSN_MAX_RCPTS", "1001 recipient groups");
	g_free(body);

	s = g_string_new("Reporting-MTA: dns; a\n\nFinal-Recipient: rfc822; x@y.z\nAction: failed\n"
	    "Status: 5.1.1\nDiagnostic-Code: smtp; 550");
	while (s->len <= 2 * DSN_MAX_FIELD_LEN)
		g_string_append(s, "\n  more text of a very long diagnostic");
	g_string_append_c(s, '\n');
	why = NULL;
	EXPECT_NONE(parse_status(s->str, &why), why, "DSN_MAX_FIELD_LEN", "a field over the limit");
	g_string_free(s, TRUE);

	s = g_string_new(NULL);
	while (s->len <= DSN_MAX_STATUS_LEN)
		g_string_append(s, "X-Padding: 0123456789012345678901234567890123456789\n\n");
	why = NULL;
	EXPECT_NONE(parse_status(s->str, &why), why, "DSN_MAX_STATUS_LEN",
	    "a delivery-status part over the limit");
	g_string_free(s, TRUE);

	big = g_malloc(DSN_MAX_SIZE + 1);
	memset(big, 'a', DSN_MAX_SIZE + 1);
	why = NULL;
	EXPECT_NONE(parse_len(big, DSN_MAX_SIZE + 1, &why), why, "DSN_MAX_SIZE", "a message too big");
	g_free(big);

	s = g_string_new("Reporting-MTA: dns; a\n\nFinal-Recipient: rfc822; x@y.z\nAction: failed\n"
	    "Status: 5.1.1\n");
	for (guint i = 0; i < DSN_MAX_GROUP_FIELDS; i++)
		g_string_append_printf(s, "X-Field-%u: %u\n", i, i);
	why = NULL;
	EXPECT_NONE(parse_status(s->str, &why), why, "fields", "a group over DSN_MAX_GROUP_FIELDS");
	g_string_free(s, TRUE);

	why = NULL;
	EXPECT_NONE(parse_len("", 0, &why), why, "empty", "empty input");
	why = NULL;
	EXPECT_NONE(dsn_parse(NULL, 0, &why), why, "empty", "NULL input");
	EXPECT(dsn_parse((const guint8 *)"x", 1, NULL) == NULL, "no reason wanted: fine");
}

/* The report at depth levels of multipart/mixed. */
static char *
nested(guint depth)
{
	GString *s = g_string_new("From: MAILER-DAEMON@example.net\nMIME-Version: 1.0\n");
	char *inner = report("message/delivery-status", "Reporting-MTA: dns; a\n\n"
	    "Final-Recipient: rfc822; deep@example.net\nAction: failed\nStatus: 5.1.1\n", NULL);

	for (guint i = 0; i < depth; i++)
		g_string_append_printf(s, "Content-Type: multipart/mixed; boundary=\"n%u\"\n\n"
		    "--n%u\n", i, i);
	/* The report's own header section, without the top's From/To/Subject. */
	g_string_append(s, strstr(inner, "Content-Type: multipart/report"));
	for (guint i = depth; i-- > 0;)
		g_string_append_printf(s, "\n--n%u--\n", i);
	g_free(inner);
	return g_string_free(s, FALSE);
}

static void
test_nesting(void)
{
	char *m = nested(3), *why = NULL;
	DsnParsed *p = parse(m, &why);

	EXPECT(p && rcpt(p, 0) && strcmp(rcpt(p, 0)->final_recipient, "deep@example.net") == 0,
	    "a report three multiparts down is read (%s)", why ? why : "");
	dsn_parsed_free(p);
	g_free(why);
	g_free(m);
	m = nested(DSN_MAX_DEPTH + 4);
	why = NULL;
	EXPECT_NONE(parse(m, &why), why, "DSN_MAX_DEPTH", "deeper than the limit");
	g_free(m);
	m = nested(2000);
	why = NULL;
	p = parse(m, &why);
	EXPECT(p == NULL && why, "2000 levels: no report, no crash (%s)", why ? why : "");
	dsn_parsed_free(p);
	g_free(why);
	g_free(m);
}

/* A report returned inside a report: only the outer one is read. */
static void
test_report_about_report(void)
{
	char *inner = report("message/delivery-status", "Reporting-MTA: dns; inner\n\n"
	    "Final-Recipient: rfc822; inner@example.net\nAction: failed\nStatus: 5.1.1\n", NULL);
	char *ret = g_strdup_printf("Content-Type: message/rfc822\n\nMessage-ID: <bounce1@x>\n%s",
	    inner);
	char *outer, *why = NULL;
	DsnParsed *p;

	/* Its own boundary: the inner report uses BOUND too. */
	g_strdelimit(ret, "B", 'C');
	outer = report("message/delivery-status", "Reporting-MTA: dns; outer\n\n"
	    "Final-Recipient: rfc822; outer@example.net\nAction: failed\nStatus: 5.2.1\n", ret);
	p = parse(outer, &why);
	EXPECT(p && p->rcpts->len == 1 && strcmp(rcpt(p, 0)->final_recipient, "outer@example.net")
	    == 0 && g_strcmp0(p->reporting_mta, "outer") == 0, "the outer report (%s)",
	    why ? why : "");
	EXPECT(p && g_strcmp0(p->orig_message_id, "bounce1@x") == 0, "the returned report's id");
	dsn_parsed_free(p);
	g_free(why);
	g_free(outer);
	g_free(ret);
	g_free(inner);
}

static void
test_other_reports(void)
{
	const char *mdn =
	    "From: bob@example.net\nMIME-Version: 1.0\n"
	    "Content-Type: multipart/report; report-type=disposition-notification; boundary=b\n\n"
	    "--b\nContent-Type: text/plain\n\nYour message was displayed.\n\n"
	    "--b\nContent-Type: message/disposition-notification\n\n"
	    "Final-Recipient: rfc822; bob@example.net\nDisposition: manual-action/MDN-sent-manually;"
	    " displayed\n\n--b--\n";
	const char *no_status =
	    "From: MAILER-DAEMON@example.net\nMIME-Version: 1.0\n"
	    "Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n"
	    "--b\nContent-Type: text/plain\n\nDelivery failed for bob@example.net.\n\n--b--\n";
	char *why = NULL;

	EXPECT_NONE(parse(mdn, &why), why, "disposition-notification", "an MDN is no DSN");
	why = NULL;
	EXPECT_NONE(parse(no_status, &why), why, "no bounce", "a report without its status part");
	why = NULL;
	EXPECT_NONE(parse("no header section at all, just words", &why), why, "",
	    "plain words");
}

/* ---- bounce texts without a delivery-status part ---------------------------------- */

static DsnParsed *
parse_text(const char *from, const char *body, char **why)
{
	char *m = g_strdup_printf("From: %s\nTo: alice@example.org\nSubject: failure notice\n\n%s",
	    from, body);
	DsnParsed *p = parse(m, why);

	g_free(m);
	return p;
}

static void
expect_heur_at(int line, const char *body, const char *name, const char *addr,
    const char *status)
{
	char *why = NULL;
	DsnParsed *p = parse_text("MAILER-DAEMON@mx.example.net", body, &why);
	const DsnParsedRcpt *r = rcpt(p, 0);

	expect_at(p && p->kind == DSN_KIND_HEURISTIC && g_strcmp0(p->heuristic, name) == 0, line,
	    "%s text read (%s)", name, why ? why : "");
	expect_at(r && strcmp(r->final_recipient, addr) == 0 && r->action == DSN_ACTION_FAILED &&
	    strcmp(r->status, status) == 0, line, "%s: %s failed %s, got %s %s", name, addr, status,
	    r ? r->final_recipient : "-", r ? r->status : "-");
	dsn_parsed_free(p);
	g_free(why);
}
#define EXPECT_HEUR(body, name, addr, status) \
	expect_heur_at(__LINE__, (body), (name), (addr), (status))

static void
test_heuristics(void)
{
	char *why = NULL;
	DsnParsed *p;

	EXPECT_HEUR("Hi. This is the qmail-send program at mx.example.net.\n"
	    "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
	    "This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
	    "<bob@example.net>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n"
	    "--- Below this line is a copy of the message.\n\nMessage-ID: <q@x>\n\nhi\n",
	    "qmail", "bob@example.net", "5.1.1");
	EXPECT_HEUR("Hi. This is the qmail-send program at mx.example.net.\n"
	    "I'm afraid I wasn't able to deliver your message to the following addresses.\n\n"
	    "<bob@example.net>:\n192.0.2.5 does not like recipient.\n"
	    "Remote host said: 550 sorry, no such user\nGiving up on 192.0.2.5.\n\n"
	    "--- Below this line is a copy of the message.\n\n",
	    "qmail", "bob@example.net", "5.0.0");
	EXPECT_HEUR("This is the mail system at host mx.example.net.\n\n"
	    "I'm sorry to have to inform you that your message could not\n"
	    "be delivered to one or more recipients. It's attached below.\n\n"
	    "                   The mail system\n\n"
	    "<bob@example.net>: host in.example.net[192.0.2.7] said: 452 4.2.2\n"
	    "    Mailbox full (in reply to RCPT TO command)\n",
	    "postfix", "bob@example.net", "4.2.2");
	EXPECT_HEUR("This is the Postfix program at host mx.example.net.\n\n"
	    "I'm sorry to have to inform you that the message returned\n"
	    "below could not be delivered to one or more destinations.\n\n"
	    "<bob@example.net>: host in.example.net[192.0.2.7] said: 550 User unknown\n",
	    "postfix", "bob@example.net", "5.0.0");
	EXPECT_HEUR("Your message did not reach some or all of the intended recipients.\n\n"
	    "      Subject:\thello\n      Sent:\t3/4/2024 10:00 AM\n\n"
	    "The following recipient(s) cannot be reached:\n\n"
	    "      'Bob' on 3/4/2024 10:00 AM\n"
	    "            Unknown alias.\n\n"
	    "      <bob@example.net> on 3/4/2024 10:00 AM\n"
	    "            The recipient's mailbox is full.\n"
	    "            <in.example.net #4.2.2 smtp;452 4.2.2 Mailbox full>\n",
	    "exchange", "bob@example.net", "4.2.2");
	EXPECT_HEUR("Your message did not reach some or all of the intended recipients.\n\n"
	    "      Subject:\thello\n\n"
	    "The following recipient(s) could not be reached:\n\n"
	    "      bob@example.net on 3/4/2024 10:00 AM\n"
	    "            The e-mail account does not exist at the organization.\n"
	    "            <in.example.net #5.1.1>\n",
	    "exchange", "bob@example.net", "5.1.1");
	EXPECT_HEUR("Your message\n\n  Subject: hello\n\nwas not delivered to:\n\n"
	    "  bob@example.net\n\nbecause:\n\n  550 5.1.1 User bob@example.net not listed\n",
	    "notes", "bob@example.net", "5.1.1");
	EXPECT_HEUR("This message was created automatically by mail delivery software.\n\n"
	    "A message that you sent could not be delivered to one or more of its\n"
	    "recipients. This is a permanent error. The following address(es) failed:\n\n"
	    "  bob@example.net\n"
	    "    host in.example.net [192.0.2.9]\n"
	    "    SMTP error from remote mail server after RCPT TO:<bob@example.net>:\n"
	    "    550 5.7.1 Relaying denied\n\n"
	    "------ This is a copy of the message, including all the headers. ------\n\n"
	    "Message-ID: <e@x>\n\nhi\n", "exim", "bob@example.net", "5.7.1");
	p = parse_text("MAILER-DAEMON@x.example", "Hi. This is the qmail-send program at x.\n"
	    "I'm afraid I wasn't able to deliver your message to the following addresses.\n\n"
	    "<bob@example.net>:\nSorry, no mailbox here by that name.\n\n"
	    "--- Below this line is a copy of the message.\n\n", &why);
	EXPECT_NONE(p, why, "no status code for bob@example.net", "qmail without a code");
	why = NULL;
	/* A person quoting a bounce is no bounce. */
	p = parse_text("carol@example.net", "See what I got:\n\n"
	    "> Hi. This is the qmail-send program at mx.example.net.\n"
	    "> I'm afraid I wasn't able to deliver your message to the following addresses.\n>\n"
	    "> <bob@example.net>:\n> Sorry, no mailbox here by that name. (#5.1.1)\n", &why);
	EXPECT_NONE(p, why, "no bounce", "a quoted qmail text");
	why = NULL;
	p = parse_text("bob@example.net", "I am out of the office until Monday; for urgent "
	    "matters write to carol@example.net.\n", &why);
	EXPECT_NONE(p, why, "no bounce", "a vacation reply");
	why = NULL;
	p = parse_text("MAILER-DAEMON@mx.example.net", "This is the mail system at host "
	    "mx.example.net.\n\nYour message was successfully delivered to one or more\n"
	    "recipients.\n\n<bob@example.net>: delivery via in.example.net: 250 2.0.0 Ok\n", &why);
	EXPECT_NONE(p, why, "no status code", "a success notice: no failure code");
}

/* The limits of the bounce texts: the text's size, the recipients named. */
static void
test_heuristic_limits(void)
{
	const char *head = "Hi. This is the qmail-send program at mx.example.net.\n"
	    "I'm afraid I wasn't able to deliver your message to the following addresses.\n\n";
	GString *s = g_string_new(head);
	char *why = NULL;
	DsnParsed *p;

	for (guint i = 0; i < DSN_MAX_RCPTS; i++)
		g_string_append_printf(s, "<u%u@example.net>:\nNo mailbox here. (#5.1.1)\n\n", i);
	g_string_append(s, "--- Below this line is a copy of the message.\n");
	p = parse_text("MAILER-DAEMON@mx.example.net", s->str, &why);
	EXPECT(p && p->rcpts->len == DSN_MAX_RCPTS, "%u recipients in a qmail text (%s)",
	    DSN_MAX_RCPTS, why ? why : "");
	dsn_parsed_free(p);
	g_free(why);
	why = NULL;
	g_string_insert(s, (gssize)strlen(head), "<one-more@example.net>:\nNo mailbox. (#5.1.1)\n\n");
	EXPECT_NONE(parse_text("MAILER-DAEMON@mx.example.net", s->str, &why), why,
	    "DSN_MAX_RCPTS", "one recipient more");
	g_string_assign(s, head);
	g_string_append(s, "<bob@example.net>:\nNo mailbox here. (#5.1.1)\n\n");
	while (s->len <= DSN_MAX_TEXT_LEN)
		g_string_append(s, "padding padding padding padding padding padding padding\n");
	g_string_append(s, "--- Below this line is a copy of the message.\n");
	why = NULL;
	EXPECT_NONE(parse_text("MAILER-DAEMON@mx.example.net", s->str, &why), why,
	    "DSN_MAX_TEXT_LEN", "a text over the limit");
	g_string_free(s, TRUE);
}

/* The heuristics' texts without a recipient found give no report, with a reason. */
static void
test_heuristic_misses(void)
{
	char *why = NULL;

	EXPECT_NONE(parse_text("MAILER-DAEMON@x.example", "This is the mail system at host "
	    "x.example.\n\nYour message could not be delivered to one or more recipients.\n\n"
	    "bob@example.net: unknown user\n", &why), why, "names no recipient",
	    "Postfix text, no <addr>: line");
}

int
main(void)
{
	static const CuTest tests[] = {
		{ "the corpus of real bounces", test_corpus },
		{ "ordinary messages", test_ordinary },
		{ "RFC 3464 fields: folding, comments, case, xtext", test_fields },
		{ "CRLF, base64 status part, message/rfc822 returned", test_crlf_and_encodings },
		{ "message/global-delivery-status", test_global },
		{ "malformed reports are none", test_malformed },
		{ "no per-message group", test_no_per_message },
		{ "limits: groups, field, part, size, empty", test_limits },
		{ "MIME nesting", test_nesting },
		{ "a report about a report", test_report_about_report },
		{ "other reports and broken ones", test_other_reports },
		{ "bounce texts read by heuristics", test_heuristics },
		{ "bounce texts without recipients", test_heuristic_misses },
		{ "bounce texts: limits", test_heuristic_limits },
		{ NULL, NULL },
	};

	return cu_run("dsn_parse", tests);
}
