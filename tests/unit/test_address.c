/* test_address.c - unit tests of postoffice/address.c.
 *
 * Checks the address rules of SPEC 1: NET/PO/MAILBOX with 1-10 of
 * A-Z 0-9 - _ per part, case-insensitive and stored upper case; typed
 * SMTP:local@domain with the prefix case-insensitive, the domain lower-cased
 * and the local part kept; surrounding blanks removed (SPEC 3.5: a stray
 * trailing space is normalised away, never a failure later).  Every refusal
 * must name the problem.  The parsers take a length and must never read past
 * it: inputs here are often slices of longer strings or exact-size heap
 * copies without a terminator, so ASan catches any over-read.
 */
#include "config.h"

#include <stdarg.h>
#include <string.h>

#include "address.h"
#include "cu_run.h"

/* An exact-size heap copy of text without a terminating NUL. */
static char *
unterminated(const char *text, size_t len)
{
	char *p = g_malloc(len ? len : 1);

	memcpy(p, text, len);
	return p;
}

/* Parse text (as an exact-size unterminated buffer); expect a legacy address. */
#define LEGACY(text, net, po, mb) legacy_at(__LINE__, text, net, po, mb)

static void
legacy_at(int line, const char *text, const char *net, const char *po, const char *mb)
{
	char *buf = unterminated(text, strlen(text));
	PgAddr a;
	GError *e = NULL;
	gboolean ok = addr_parse(buf, strlen(text), &a, &e);

	expect_at(ok && e == NULL, line, "\"%s\" is accepted (%s)", text, e ? e->message : "");
	if (ok) {
		expect_at(a.kind == ADDR_KIND_LEGACY, line, "\"%s\" is a legacy address", text);
		expect_at(strcmp(a.net, net) == 0, line, "\"%s\": network %s, got %s", text, net,
		    a.net);
		expect_at(strcmp(a.po, po) == 0, line, "\"%s\": postoffice %s, got %s", text, po,
		    a.po);
		expect_at(strcmp(a.mailbox, mb) == 0, line, "\"%s\": mailbox %s, got %s", text,
		    mb, a.mailbox);
	}
	g_clear_error(&e);
	g_free(buf);
}

/* Parse text; expect an SMTP address whose stored form is smtp (local@domain). */
#define SMTP(text, smtp) smtp_at(__LINE__, text, smtp)

static void
smtp_at(int line, const char *text, const char *smtp)
{
	char *buf = unterminated(text, strlen(text));
	PgAddr a;
	GError *e = NULL;
	gboolean ok = addr_parse(buf, strlen(text), &a, &e);

	expect_at(ok && e == NULL, line, "\"%s\" is accepted (%s)", text, e ? e->message : "");
	if (ok) {
		expect_at(a.kind == ADDR_KIND_SMTP, line, "\"%s\" is an SMTP address", text);
		expect_at(strcmp(a.smtp, smtp) == 0, line, "\"%s\" is stored as %s, got %s",
		    text, smtp, a.smtp);
	}
	g_clear_error(&e);
	g_free(buf);
}

/* Parse text; expect a refusal whose message contains why. */
#define REFUSED(text, why) refused_at(__LINE__, text, strlen(text), why)

static void
refused_at(int line, const char *text, size_t len, const char *why)
{
	char *buf = unterminated(text, len);
	PgAddr a;
	GError *e = NULL;
	gboolean ok = addr_parse(buf, len, &a, &e);

	expect_at(!ok, line, "\"%.*s\" is refused", (int)len, text);
	expect_at(e != NULL && g_error_matches(e, ADDR_ERROR, ADDR_ERROR_SYNTAX), line,
	    "\"%.*s\": the error is ADDR_ERROR_SYNTAX", (int)len, text);
	if (e)
		expect_at(strstr(e->message, why) != NULL, line,
		    "\"%.*s\": the error names the problem \"%s\"; it says: %s", (int)len, text,
		    why, e->message);
	g_clear_error(&e);
	g_free(buf);
}

/* ---- legacy addresses ---------------------------------------------------- */

static void
test_legacy_address_is_stored_upper_case(void)
{
	LEGACY("CORP/HQ/JSMITH", "CORP", "HQ", "JSMITH");
	LEGACY("corp/hq/jsmith", "CORP", "HQ", "JSMITH");
	LEGACY("Corp/Hq/JSmith", "CORP", "HQ", "JSMITH");
}

static void
test_legacy_parts_accept_letters_digits_dash_underscore(void)
{
	LEGACY("N-1/P_2/a-b_c09", "N-1", "P_2", "A-B_C09");
	LEGACY("0/_/-", "0", "_", "-");
	LEGACY("ABCDEFGHIJ/0123456789/A_B-C_D-E", "ABCDEFGHIJ", "0123456789", "A_B-C_D-E");
}

static void
test_legacy_part_of_one_and_ten_characters_accepted(void)
{
	LEGACY("A/B/C", "A", "B", "C");
	LEGACY("abcdefghij/klmnopqrst/uvwxyz0123", "ABCDEFGHIJ", "KLMNOPQRST", "UVWXYZ0123");
}

static void
test_surrounding_blanks_are_trimmed(void)
{
	/* SPEC 3.5: the stray trailing space that once lost a report. */
	LEGACY("CORP/HQ/JSMITH ", "CORP", "HQ", "JSMITH");
	LEGACY("  corp/hq/jsmith\t", "CORP", "HQ", "JSMITH");
	LEGACY("\tCORP/HQ/A  \t ", "CORP", "HQ", "A");
	SMTP(" SMTP:user@example.com ", "user@example.com");
	SMTP("SMTP:user@example.com\t", "user@example.com");
}

static void
test_canonical_text_is_upper_case_without_blanks(void)
{
	const char *in[] = { "corp/hq/jsmith ", " smtp:John.Smith@Example.COM", NULL };
	const char *want[] = { "CORP/HQ/JSMITH", "SMTP:John.Smith@example.com" };

	for (int i = 0; in[i]; i++) {
		GError *e = NULL;
		char *c = addr_canonical(in[i], strlen(in[i]), &e);
		EXPECT(c && strcmp(c, want[i]) == 0, "canonical of \"%s\" is %s, got %s", in[i],
		    want[i], c ? c : e->message);
		g_clear_error(&e);
		g_free(c);
	}
}

static void
test_canonical_text_parses_to_itself(void)
{
	const char *in[] = { "a/b/c", "Net/Po/Box_1 ", "SMTP:x@Y.Z", "smtp:O'Brien+tag@Mail.Example.ORG",
		NULL };

	for (int i = 0; in[i]; i++) {
		char *once = addr_canonical(in[i], strlen(in[i]), NULL);
		char *twice = once ? addr_canonical(once, strlen(once), NULL) : NULL;
		EXPECT(once && twice && strcmp(once, twice) == 0,
		    "canonical of \"%s\" is a fixed point (%s, %s)", in[i], once ? once : "-",
		    twice ? twice : "-");
		g_free(once);
		g_free(twice);
	}
}

static void
test_empty_part_refused_naming_the_part(void)
{
	REFUSED("/HQ/JSMITH", "the network is empty");
	REFUSED("CORP//JSMITH", "the postoffice is empty");
	REFUSED("CORP/HQ/", "the mailbox is empty");
	REFUSED("CORP/HQ/ ", "the mailbox is empty");
}

static void
test_part_of_eleven_characters_refused(void)
{
	REFUSED("ABCDEFGHIJK/HQ/JSMITH", "the network is longer than 10 characters");
	REFUSED("CORP/ABCDEFGHIJK/JSMITH", "the postoffice is longer than 10 characters");
	REFUSED("CORP/HQ/ABCDEFGHIJK", "the mailbox is longer than 10 characters");
}

static void
test_part_with_bad_character_refused(void)
{
	REFUSED("CORP/HQ/J.SMITH", "the mailbox may hold only A-Z 0-9 - _");
	REFUSED("CORP/HQ/J SMITH", "the mailbox may hold only A-Z 0-9 - _");
	REFUSED("CORP/HQ/J\xc3\x9cRGEN", "the mailbox may hold only A-Z 0-9 - _");
	REFUSED("CO+RP/HQ/JSMITH", "the network may hold only A-Z 0-9 - _");
	REFUSED("CORP/H\tQ/JSMITH", "the postoffice may hold only A-Z 0-9 - _");
	/* A NUL inside the given length is a bad character, not an end. */
	refused_at(__LINE__, "CORP/HQ/J\0X", 11, "the mailbox may hold only A-Z 0-9 - _");
}

static void
test_error_message_quotes_the_whole_address_and_the_reason(void)
{
	/* The reason must follow the quoted address intact, even when the
	 * address itself holds a ':' (the text a user sees in the log). */
	const char *text = "CORP/HQ/J:X";
	PgAddr a;
	GError *e = NULL;

	CU_ASSERT_FALSE(addr_parse(text, strlen(text), &a, &e));
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	EXPECT(strcmp(e->message, "bad address \"CORP/HQ/J:X\": the mailbox may hold only "
	    "A-Z 0-9 - _ (character 2 is not one)") == 0, "clean error message, got: %s",
	    e->message);
	g_clear_error(&e);

	text = "CORP/HQ/TOOLONGNAME1";
	CU_ASSERT_FALSE(addr_parse(text, strlen(text), &a, &e));
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	EXPECT(strcmp(e->message, "bad address \"CORP/HQ/TOOLONGNAME1\": the mailbox is "
	    "longer than 10 characters") == 0, "clean error message, got: %s", e->message);
	g_clear_error(&e);
}

static void
test_wrong_part_count_refused(void)
{
	REFUSED("CORP/HQ", "a legacy address is written NET/PO/MAILBOX");
	REFUSED("JSMITH", "a legacy address is written NET/PO/MAILBOX");
	REFUSED("CORP/HQ/JSMITH/X", "a legacy address is written NET/PO/MAILBOX");
	REFUSED("CORP/HQ/JSMITH/", "a legacy address is written NET/PO/MAILBOX");
	REFUSED("//", "the network is empty");
}

static void
test_empty_or_blank_address_refused(void)
{
	REFUSED("", "NET/PO/MAILBOX");
	REFUSED("   \t ", "NET/PO/MAILBOX");
}

static void
test_at_sign_without_smtp_prefix_refused(void)
{
	REFUSED("jsmith@example.com", "an Internet address must be written SMTP:local@domain");
	REFUSED("CORP/HQ/J@X", "an Internet address must be written SMTP:local@domain");
	REFUSED("SMTX:a@b.com", "an Internet address must be written SMTP:local@domain");
}

/* ---- SMTP addresses ------------------------------------------------------ */

static void
test_smtp_prefix_is_case_insensitive(void)
{
	SMTP("SMTP:user@example.com", "user@example.com");
	SMTP("smtp:user@example.com", "user@example.com");
	SMTP("Smtp:user@example.com", "user@example.com");
}

static void
test_smtp_domain_lower_cased_local_part_kept(void)
{
	SMTP("SMTP:John.Smith@Example.COM", "John.Smith@example.com");
	SMTP("SMTP:MiXeD+Tag@MAIL.Example.Org", "MiXeD+Tag@mail.example.org");
	SMTP("SMTP:a!#$%&'*+-/=?^_`{|}~z@x-1.example", "a!#$%&'*+-/=?^_`{|}~z@x-1.example");
}

static void
test_smtp_formats_with_upper_case_prefix(void)
{
	PgAddr a;
	char *s;

	CU_ASSERT_TRUE_FATAL(addr_parse("smtp:Bob@Example.com", 20, &a, NULL));
	s = addr_format(&a);
	CU_ASSERT_STRING_EQUAL(s, "SMTP:Bob@example.com");
	g_free(s);
	CU_ASSERT_TRUE_FATAL(addr_parse("corp/hq/bob", 11, &a, NULL));
	s = addr_format(&a);
	CU_ASSERT_STRING_EQUAL(s, "CORP/HQ/BOB");
	g_free(s);
}

static void
test_smtp_without_at_or_empty_refused(void)
{
	REFUSED("SMTP:user", "an SMTP address is written local@domain");
	REFUSED("SMTP:", "the SMTP address is empty");
	REFUSED("SMTP:   ", "the SMTP address is empty");
	REFUSED("SMTP:@example.com", "the local part must have 1 to 64 characters");
	REFUSED("SMTP:user@", "the domain must have 1 to 253 characters");
}

static void
test_smtp_quoted_local_part_refused(void)
{
	REFUSED("SMTP:\"john smith\"@example.com", "quoted local parts are not supported");
	REFUSED("SMTP:\"x\"@example.com", "quoted local parts are not supported");
}

static void
test_smtp_address_literal_refused(void)
{
	REFUSED("SMTP:user@[192.0.2.1]", "address literals are not supported");
	REFUSED("SMTP:user@[IPv6:2001:db8::1]", "address literals are not supported");
}

static void
test_smtp_double_leading_or_trailing_dot_refused(void)
{
	REFUSED("SMTP:john..smith@example.com", "double dot");
	REFUSED("SMTP:.john@example.com", "double dot");
	REFUSED("SMTP:john.@example.com", "double dot");
	REFUSED("SMTP:john@example..com", "each domain label must have 1 to 63 characters");
	REFUSED("SMTP:john@.example.com", "each domain label must have 1 to 63 characters");
	REFUSED("SMTP:john@example.com.", "each domain label must have 1 to 63 characters");
}

static void
test_smtp_domain_label_over_63_refused(void)
{
	char label63[64], label64[65], text[128];

	memset(label63, 'a', 63);
	label63[63] = '\0';
	memset(label64, 'b', 64);
	label64[64] = '\0';
	g_snprintf(text, sizeof text, "SMTP:u@%s.example", label63);
	{
		char want[128];
		g_snprintf(want, sizeof want, "u@%s.example", label63);
		SMTP(text, want);
	}
	g_snprintf(text, sizeof text, "SMTP:u@%s.example", label64);
	REFUSED(text, "each domain label must have 1 to 63 characters");
	g_snprintf(text, sizeof text, "SMTP:u@example.%s", label64);
	REFUSED(text, "each domain label must have 1 to 63 characters");
}

static void
test_smtp_domain_label_dash_at_either_end_refused(void)
{
	REFUSED("SMTP:u@-example.com", "a domain label starts with '-'");
	REFUSED("SMTP:u@mail.-example.com", "a domain label starts with '-'");
	REFUSED("SMTP:u@example-.com", "a domain label ends in '-'");
	REFUSED("SMTP:u@example.com-", "a domain label ends in '-'");
	SMTP("SMTP:u@ex-ample.com", "u@ex-ample.com");
}

static void
test_smtp_bad_characters_refused(void)
{
	REFUSED("SMTP:jo hn@example.com", "the local part holds a character that is not allowed");
	REFUSED("SMTP:jo(hn)@example.com", "the local part holds a character that is not allowed");
	REFUSED("SMTP:a@b@example.com", "the local part holds a character that is not allowed");
	REFUSED("SMTP:john@exa_mple.com", "the domain holds a character that is not allowed");
	REFUSED("SMTP:john@ex ample.com", "the domain holds a character that is not allowed");
	REFUSED("SMTP:j\xc3\xb6rg@example.com",
	    "the local part holds a character that is not allowed");
}

static void
test_smtp_length_limits(void)
{
	char local[80], domain[300], text[400], want[400];

	/* Local part: 64 accepted, 65 refused (RFC 5321 4.5.3.1.1). */
	memset(local, 'l', 64);
	local[64] = '\0';
	g_snprintf(text, sizeof text, "SMTP:%s@example.com", local);
	g_snprintf(want, sizeof want, "%s@example.com", local);
	SMTP(text, want);
	memset(local, 'l', 65);
	local[65] = '\0';
	g_snprintf(text, sizeof text, "SMTP:%s@example.com", local);
	REFUSED(text, "the local part must have 1 to 64 characters");

	/* Whole address: 254 accepted, 255 refused.  Domain of 63-char labels. */
	memset(local, 'l', 64);
	local[64] = '\0';
	g_snprintf(domain, sizeof domain, "%.63s.%.63s.%.59s", local, local, local);
	CU_ASSERT_EQUAL(strlen(domain), 187);
	g_snprintf(text, sizeof text, "SMTP:%.2s@%s", local, domain);  /* 2+1+187 = 190 */
	g_snprintf(want, sizeof want, "%.2s@%s", local, domain);
	SMTP(text, want);
	g_snprintf(domain, sizeof domain, "%.63s.%.63s.%.63s.%.5s", local, local, local, local);
	CU_ASSERT_EQUAL(strlen(domain), 197);
	g_snprintf(text, sizeof text, "SMTP:%.56s@%s", local, domain);  /* 56+1+197 = 254 */
	g_snprintf(want, sizeof want, "%.56s@%s", local, domain);
	CU_ASSERT_EQUAL(strlen(want), 254);
	SMTP(text, want);
	g_snprintf(text, sizeof text, "SMTP:%.57s@%s", local, domain);  /* 255 */
	REFUSED(text, "an SMTP address has at most 254 characters");
}

/* ---- lengths, not terminators ---------------------------------------------- */

static void
test_parser_reads_only_the_given_length(void)
{
	/* Slices of longer strings: what follows the slice would change the
	 * result if the parser read it. */
	const char *legacy = "CORP/HQ/JSMITH@EXTRA/MORE";
	const char *smtp = "SMTP:John@Example.COM..[bad]";
	const char *po = "CORP/HQ/JSMITH";
	PgAddr a;
	char net[ADDR_PART_MAX + 1], pon[ADDR_PART_MAX + 1], out[ADDR_SMTP_MAX + 1];
	char *buf;

	buf = unterminated(legacy, 14);
	CU_ASSERT_TRUE(addr_parse(buf, 14, &a, NULL));
	CU_ASSERT_STRING_EQUAL(a.mailbox, "JSMITH");
	CU_ASSERT_TRUE(addr_parse(buf, 9, &a, NULL));
	CU_ASSERT_STRING_EQUAL(a.mailbox, "J");
	g_free(buf);

	buf = unterminated(smtp, 21);
	CU_ASSERT_TRUE(addr_parse(buf, 21, &a, NULL));
	CU_ASSERT_STRING_EQUAL(a.smtp, "John@example.com");
	g_free(buf);

	buf = unterminated(smtp + 5, 16);
	CU_ASSERT_TRUE(addr_parse_smtp(buf, 16, out, NULL));
	CU_ASSERT_STRING_EQUAL(out, "John@example.com");
	g_free(buf);

	buf = unterminated(po, 7);
	CU_ASSERT_TRUE(addr_parse_po(buf, 7, net, pon, NULL));
	CU_ASSERT_STRING_EQUAL(net, "CORP");
	CU_ASSERT_STRING_EQUAL(pon, "HQ");
	g_free(buf);

	buf = unterminated(po + 8, 3);
	CU_ASSERT_TRUE(addr_parse_part(buf, 3, "mailbox", net, NULL));
	CU_ASSERT_STRING_EQUAL(net, "JSM");
	g_free(buf);

	/* Length zero with a pointer into a longer string is empty. */
	refused_at(__LINE__, legacy, 0, "NET/PO/MAILBOX");
}

static void
test_every_prefix_of_an_address_parses_without_overread(void)
{
	/* Each prefix in an exact-size buffer: ASan fails any read past it. */
	const char *texts[] = { "CORP/HQ/JSMITH", "SMTP:john.smith@mail.example.com",
		"smtp:\"q\"@[1.2.3.4]", NULL };

	for (int t = 0; texts[t]; t++) {
		size_t n = strlen(texts[t]);
		for (size_t len = 0; len <= n; len++) {
			char *buf = unterminated(texts[t], len);
			PgAddr a;
			char net[ADDR_PART_MAX + 1], po[ADDR_PART_MAX + 1], out[ADDR_SMTP_MAX + 1];
			GError *e = NULL;
			gboolean ok = addr_parse(buf, len, &a, &e);
			EXPECT(ok == (e == NULL), "\"%.*s\": an error exactly when refused",
			    (int)len, texts[t]);
			g_clear_error(&e);
			(void)addr_parse_po(buf, len, net, po, NULL);
			(void)addr_parse_smtp(buf, len, out, NULL);
			g_free(buf);
		}
	}
	/* Prefixes of the legacy address that must be accepted or refused. */
	refused_at(__LINE__, "CORP/HQ/JSMITH", 7, "NET/PO/MAILBOX");
	refused_at(__LINE__, "CORP/HQ/JSMITH", 8, "the mailbox is empty");
}

/* ---- postoffice names ----------------------------------------------------- */

static void
test_parse_po_upper_cases_and_trims(void)
{
	char net[ADDR_PART_MAX + 1], po[ADDR_PART_MAX + 1];
	const char *text = " corp/Sales\t";

	CU_ASSERT_TRUE_FATAL(addr_parse_po(text, strlen(text), net, po, NULL));
	CU_ASSERT_STRING_EQUAL(net, "CORP");
	CU_ASSERT_STRING_EQUAL(po, "SALES");
}

static void
test_parse_po_refusals_name_the_problem(void)
{
	const struct { const char *text; const char *why; } cases[] = {
		{ "CORP", "a postoffice is written NET/PO" },
		{ "CORP/HQ/JSMITH", "a postoffice is written NET/PO" },
		{ "", "a postoffice is written NET/PO" },
		{ "CORP/", "the postoffice is empty" },
		{ "/HQ", "the network is empty" },
		{ "CORP/ABCDEFGHIJK", "the postoffice is longer than 10 characters" },
		{ "CO.RP/HQ", "the network may hold only A-Z 0-9 - _" },
		{ NULL, NULL },
	};

	for (int i = 0; cases[i].text; i++) {
		char net[ADDR_PART_MAX + 1], po[ADDR_PART_MAX + 1];
		GError *e = NULL;
		gboolean ok = addr_parse_po(cases[i].text, strlen(cases[i].text), net, po, &e);
		EXPECT(!ok, "\"%s\" is refused as a postoffice", cases[i].text);
		EXPECT(e && g_error_matches(e, ADDR_ERROR, ADDR_ERROR_SYNTAX) &&
		    strstr(e->message, cases[i].why), "\"%s\": error names \"%s\", got: %s",
		    cases[i].text, cases[i].why, e ? e->message : "(none)");
		g_clear_error(&e);
	}
}

static void
test_parse_part_checks_one_part(void)
{
	char out[ADDR_PART_MAX + 1];
	GError *e = NULL;

	CU_ASSERT_TRUE(addr_parse_part("jsmith", 6, "mailbox", out, NULL));
	CU_ASSERT_STRING_EQUAL(out, "JSMITH");
	CU_ASSERT_FALSE(addr_parse_part("a/b", 3, "mailbox", out, &e));
	CU_ASSERT_PTR_NOT_NULL(e);
	if (e)
		CU_ASSERT_PTR_NOT_NULL(strstr(e->message, "the mailbox may hold only"));
	g_clear_error(&e);
}

/* ---- same postoffice ------------------------------------------------------ */

static void
test_same_po_matches_network_and_postoffice_case_insensitively(void)
{
	PgAddr a, s;

	CU_ASSERT_TRUE_FATAL(addr_parse("CORP/HQ/JSMITH", 14, &a, NULL));
	CU_ASSERT_TRUE(addr_same_po(&a, "CORP", "HQ"));
	CU_ASSERT_TRUE(addr_same_po(&a, "corp", "hq"));
	CU_ASSERT_FALSE(addr_same_po(&a, "CORP", "SALES"));
	CU_ASSERT_FALSE(addr_same_po(&a, "OTHER", "HQ"));
	CU_ASSERT_FALSE(addr_same_po(&a, "CORP", "H"));
	CU_ASSERT_FALSE(addr_same_po(&a, "CORP", "HQX"));
	/* An SMTP address lives at no postoffice. */
	CU_ASSERT_TRUE_FATAL(addr_parse("SMTP:corp@hq", 12, &s, NULL));
	CU_ASSERT_FALSE(addr_same_po(&s, "CORP", "HQ"));
	CU_ASSERT_FALSE(addr_same_po(&s, "", ""));
}

/* ---- random input ----------------------------------------------------------- */

static void
test_random_input_is_refused_or_canonical(void)
{
	/* Deterministic noise over the address alphabet and beyond: every
	 * accepted text has a canonical form that parses to itself, and every
	 * refusal carries a message. */
	static const char alphabet[] = "aZ09-_/@.:SMTPsmtp \t\"[]\x80\xff";
	GRand *r = g_rand_new_with_seed(4242);
	int accepted = 0;

	for (int i = 0; i < 20000; i++) {
		char text[40];
		size_t len = (size_t)g_rand_int_range(r, 0, sizeof text);
		PgAddr a;
		GError *e = NULL;
		char *buf;

		if (i % 4 == 0 && len >= 5)
			memcpy(text, "SMTP:", 5);
		for (size_t k = (i % 4 == 0 && len >= 5) ? 5 : 0; k < len; k++)
			text[k] = alphabet[g_rand_int_range(r, 0, sizeof alphabet - 1)];
		buf = unterminated(text, len);
		if (addr_parse(buf, len, &a, &e)) {
			char *c = addr_format(&a);
			char *again = addr_canonical(c, strlen(c), NULL);
			EXPECT(again && strcmp(c, again) == 0, "\"%.*s\" -> %s is canonical",
			    (int)len, text, c);
			g_free(again);
			g_free(c);
			accepted++;
		} else {
			EXPECT(e && e->message[0], "\"%.*s\" refused with a message", (int)len,
			    text);
		}
		g_clear_error(&e);
		g_free(buf);
	}
	g_rand_free(r);
	CU_ASSERT_TRUE(accepted > 0);
}

static const CuTest tests[] = {
	{ "legacy address is stored upper case", test_legacy_address_is_stored_upper_case },
	{ "legacy parts accept A-Z 0-9 - _", test_legacy_parts_accept_letters_digits_dash_underscore },
	{ "legacy parts of 1 and 10 characters are accepted",
	  test_legacy_part_of_one_and_ten_characters_accepted },
	{ "surrounding blanks are trimmed (stray trailing space)",
	  test_surrounding_blanks_are_trimmed },
	{ "canonical text is upper case without blanks",
	  test_canonical_text_is_upper_case_without_blanks },
	{ "canonical text parses to itself", test_canonical_text_parses_to_itself },
	{ "empty part is refused naming the part", test_empty_part_refused_naming_the_part },
	{ "part of 11 characters is refused", test_part_of_eleven_characters_refused },
	{ "part with a bad character is refused", test_part_with_bad_character_refused },
	{ "error message quotes the whole address and the clean reason",
	  test_error_message_quotes_the_whole_address_and_the_reason },
	{ "wrong part count is refused", test_wrong_part_count_refused },
	{ "empty or blank address is refused", test_empty_or_blank_address_refused },
	{ "'@' without SMTP: prefix is refused", test_at_sign_without_smtp_prefix_refused },
	{ "SMTP: prefix is case-insensitive", test_smtp_prefix_is_case_insensitive },
	{ "SMTP domain is lower-cased, local part kept",
	  test_smtp_domain_lower_cased_local_part_kept },
	{ "SMTP address formats with upper-case prefix",
	  test_smtp_formats_with_upper_case_prefix },
	{ "SMTP address without '@' or empty is refused", test_smtp_without_at_or_empty_refused },
	{ "SMTP quoted local part is refused", test_smtp_quoted_local_part_refused },
	{ "SMTP address literal is refused", test_smtp_address_literal_refused },
	{ "SMTP double, leading or trailing dot is refused",
	  test_smtp_double_leading_or_trailing_dot_refused },
	{ "SMTP domain label over 63 characters is refused",
	  test_smtp_domain_label_over_63_refused },
	{ "SMTP domain label with '-' at either end is refused",
	  test_smtp_domain_label_dash_at_either_end_refused },
	{ "SMTP bad characters are refused", test_smtp_bad_characters_refused },
	{ "SMTP length limits: local 64, address 254", test_smtp_length_limits },
	{ "parser reads only the given length", test_parser_reads_only_the_given_length },
	{ "every prefix of an address parses without over-read",
	  test_every_prefix_of_an_address_parses_without_overread },
	{ "addr_parse_po upper-cases and trims", test_parse_po_upper_cases_and_trims },
	{ "addr_parse_po refusals name the problem", test_parse_po_refusals_name_the_problem },
	{ "addr_parse_part checks one part", test_parse_part_checks_one_part },
	{ "addr_same_po matches net and po case-insensitively, never SMTP",
	  test_same_po_matches_network_and_postoffice_case_insensitively },
	{ "random input is refused with a message or canonical",
	  test_random_input_is_refused_or_canonical },
	{ NULL, NULL },
};

int
main(void)
{
	return cu_run("address", tests);
}
