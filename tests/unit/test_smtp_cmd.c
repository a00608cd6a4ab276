/* test_smtp_cmd.c - unit tests of gateway/smtpd/smtp_cmd.c.
 *
 * Checks the command syntax postgate's SMTP server accepts (RFC 5321 4.1,
 * RFC 1870 SIZE, RFC 6152 BODY, RFC 3461 DSN parameters and xtext, RFC 3030
 * BDAT) and the reply line a client sees for every refusal: the code, the
 * enhanced status and the words.  Lines are given as exact-size heap copies
 * without a terminator, so ASan catches any read past the length.
 */
#include "config.h"

#include <string.h>

#include "cu_run.h"
#include "smtpd/smtp_cmd.h"

/* An exact-size heap copy of text without a terminating NUL. */
static char *
unterminated(const char *text, size_t len)
{
	char *p = g_malloc(len ? len : 1);

	memcpy(p, text, len);
	return p;
}

/* Parse text (len bytes) into c; expect acceptance as verb. */
#define ACCEPTED(text, verb, c) accepted_at(__LINE__, text, strlen(text), verb, c)

static gboolean
accepted_at(int line, const char *text, size_t len, SmtpVerb verb, SmtpCmd *c)
{
	char *buf = unterminated(text, len);
	gboolean ok = smtp_cmd_parse(buf, len, c);

	g_free(buf);
	expect_at(ok && c->reply == NULL, line, "\"%.*s\" is accepted (%s)", (int)len, text,
	    c->reply ? c->reply : "");
	expect_at(c->verb == verb, line, "\"%.*s\" is %s, got %s", (int)len, text,
	    smtp_verb_name(verb), smtp_verb_name(c->verb));
	return ok && c->verb == verb;
}

/* Parse text; expect a refusal whose reply starts with want. */
#define REFUSED(text, want) refused_at(__LINE__, text, strlen(text), want)

static void
refused_at(int line, const char *text, size_t len, const char *want)
{
	char *buf = unterminated(text, len);
	SmtpCmd c;
	gboolean ok = smtp_cmd_parse(buf, len, &c);

	g_free(buf);
	expect_at(!ok, line, "\"%.*s\" is refused", (int)MIN(len, 80), text);
	expect_at(c.reply != NULL && strncmp(c.reply, want, strlen(want)) == 0, line,
	    "\"%.*s\": the reply is \"%s\", got \"%s\"", (int)MIN(len, 80), text, want,
	    c.reply ? c.reply : "(none)");
	expect_at(c.path == NULL && c.arg == NULL && c.envid == NULL && c.orcpt == NULL &&
	    c.orcpt_type == NULL && !c.null_path && c.size == -1 && c.notify == 0, line,
	    "\"%.*s\": a refused command carries no arguments", (int)MIN(len, 80), text);
	smtp_cmd_clear(&c);
}

/* Parse a MAIL or RCPT line; expect it accepted with the given path. */
#define PATH(text, verb, path) path_at(__LINE__, text, verb, path)

static void
path_at(int line, const char *text, SmtpVerb verb, const char *path)
{
	SmtpCmd c;

	if (accepted_at(line, text, strlen(text), verb, &c))
		expect_at(c.path && strcmp(c.path, path) == 0 && !c.null_path, line,
		    "\"%s\": the path is %s, got %s", text, path, c.path ? c.path : "(none)");
	smtp_cmd_clear(&c);
}

/* ---- the line as a whole --------------------------------------------------- */

static void
test_verbs_are_case_insensitive(void)
{
	static const struct {
		const char *line;
		SmtpVerb verb;
	} cases[] = {
		{ "HELO mail.example.com", SMTP_VERB_HELO },
		{ "helo mail.example.com", SMTP_VERB_HELO },
		{ "EhLo mail.example.com", SMTP_VERB_EHLO },
		{ "mail FROM:<a@example.com>", SMTP_VERB_MAIL },
		{ "Rcpt to:<b@example.com>", SMTP_VERB_RCPT },
		{ "data", SMTP_VERB_DATA },
		{ "rset", SMTP_VERB_RSET },
		{ "Noop", SMTP_VERB_NOOP },
		{ "quit", SMTP_VERB_QUIT },
		{ "vrfy someone", SMTP_VERB_VRFY },
		{ "expn list", SMTP_VERB_EXPN },
		{ "help", SMTP_VERB_HELP },
		{ "starttls", SMTP_VERB_STARTTLS },
		{ "StartTLS", SMTP_VERB_STARTTLS },
		{ "auth PLAIN", SMTP_VERB_AUTH },
		{ "bdat 10", SMTP_VERB_BDAT },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		SmtpCmd c;
		accepted_at(__LINE__, cases[i].line, strlen(cases[i].line), cases[i].verb, &c);
		smtp_cmd_clear(&c);
	}
}

static void
test_unknown_verb_is_500_5_5_1(void)
{
	const char *lines[] = { "FOO", "XCLIENT NAME=x", "MAILFROM:<a@b.c>", "EHLOmail",
		"HELLO mail", "QUIT2", "D ATA", NULL };

	for (int i = 0; lines[i]; i++) {
		SmtpCmd c;
		gboolean ok = smtp_cmd_parse(lines[i], strlen(lines[i]), &c);
		EXPECT(!ok && c.verb == SMTP_VERB_UNKNOWN && c.reply &&
		    strcmp(c.reply, "500 5.5.1 Command unrecognized") == 0,
		    "\"%s\" is unknown: \"500 5.5.1 Command unrecognized\", got %s", lines[i],
		    c.reply ? c.reply : "(none)");
		smtp_cmd_clear(&c);
	}
}

static void
test_empty_line_is_bad_syntax(void)
{
	REFUSED("", "500 5.5.2 Error: bad syntax");
	REFUSED("   ", "500 5.5.2 Error: bad syntax");
}

static void
test_control_and_8bit_bytes_are_invalid_characters(void)
{
	static const char *const want = "500 5.5.2 Invalid characters in command";

	REFUSED("MAIL FROM:<a@b.c>\t", want);
	REFUSED("HELO\tmail.example.com", want);
	REFUSED("NOOP \x7f", want);
	REFUSED("NOOP \x80", want);
	REFUSED("RCPT TO:<j\xc3\xbcrgen@example.com>", want);
	REFUSED("\xff", want);
	REFUSED("DATA\r", want);
	REFUSED("QUIT\nMAIL FROM:<a@b.c>", want);
	REFUSED("\x1b[31m", want);
	/* A NUL inside the length is a bad byte, not an end. */
	refused_at(__LINE__, "QUIT\0junk", 9, want);
	refused_at(__LINE__, "\0", 1, want);
}

static void
test_invalid_characters_are_checked_before_anything_else(void)
{
	GString *s = g_string_new("NOOP ");
	SmtpCmd c;

	while (s->len < SMTP_CMD_LINE_MAX + 100)
		g_string_append_c(s, 'x');
	s->str[SMTP_CMD_LINE_MAX + 50] = '\x01';
	refused_at(__LINE__, s->str, s->len, "500 5.5.2 Invalid characters in command");
	EXPECT(!smtp_cmd_parse("BOGUS\x01", 6, &c) && c.verb == SMTP_VERB_UNKNOWN,
	    "a line with a bad byte has no verb, even an unknown one");
	smtp_cmd_clear(&c);
	g_string_free(s, TRUE);
}

static void
test_line_of_max_length_accepted_one_more_refused(void)
{
	GString *s = g_string_new("NOOP ");
	SmtpCmd c;

	while (s->len < SMTP_CMD_LINE_MAX)
		g_string_append_c(s, 'x');
	if (accepted_at(__LINE__, s->str, s->len, SMTP_VERB_NOOP, &c))
		EXPECT(c.arg && strlen(c.arg) == SMTP_CMD_LINE_MAX - 5,
		    "the NOOP text is kept whole");
	smtp_cmd_clear(&c);
	g_string_append_c(s, 'x');
	refused_at(__LINE__, s->str, s->len, "500 5.5.2 Line too long");
	g_string_free(s, TRUE);
}

static void
test_parser_reads_only_len_bytes(void)
{
	/* A slice of a longer line: what follows must not be seen. */
	const char *line = "MAIL FROM:<a@example.com> SIZE=x";
	SmtpCmd c;

	if (accepted_at(__LINE__, line, strlen("MAIL FROM:<a@example.com>"), SMTP_VERB_MAIL, &c))
		EXPECT(c.size == -1 && strcmp(c.path, "a@example.com") == 0,
		    "only the first len bytes are parsed");
	smtp_cmd_clear(&c);
	REFUSED("MAIL FROM:<a@example.com", "501 5.5.4 Syntax: MAIL FROM:<address>");
}

static void
test_blanks_around_the_command_are_tolerated(void)
{
	PATH("  MAIL FROM:<a@example.com>  ", SMTP_VERB_MAIL, "a@example.com");
	PATH("MAIL   FROM:<a@example.com>", SMTP_VERB_MAIL, "a@example.com");
	PATH("RCPT TO:   <b@example.com>", SMTP_VERB_RCPT, "b@example.com");
	PATH("RCPT TO:< b@example.com >", SMTP_VERB_RCPT, "b@example.com");
}

/* ---- MAIL FROM / RCPT TO paths ------------------------------------------------ */

static void
test_mail_from_forms(void)
{
	PATH("MAIL FROM:<a@b.example>", SMTP_VERB_MAIL, "a@b.example");
	PATH("MAIL FROM: <a@b.example>", SMTP_VERB_MAIL, "a@b.example");
	PATH("mail from:<A@B.COM>", SMTP_VERB_MAIL, "A@b.com");
	PATH("MAIL From:<John.Smith+tag@Mail.Example.ORG>", SMTP_VERB_MAIL,
	    "John.Smith+tag@mail.example.org");
	PATH("RCPT TO:<O'Brien@example.com>", SMTP_VERB_RCPT, "O'Brien@example.com");
	PATH("rcpt to: <x@y.z>", SMTP_VERB_RCPT, "x@y.z");
}

static void
test_null_sender(void)
{
	SmtpCmd c;

	if (ACCEPTED("MAIL FROM:<>", SMTP_VERB_MAIL, &c))
		EXPECT(c.null_path && c.path == NULL && c.size == -1 && c.body == MAIL_BODY_NONE &&
		    c.ret == MAIL_RET_NONE && c.envid == NULL, "MAIL FROM:<> is the null path");
	smtp_cmd_clear(&c);
	if (ACCEPTED("MAIL FROM: <> SIZE=2048", SMTP_VERB_MAIL, &c))
		EXPECT(c.null_path && c.path == NULL && c.size == 2048,
		    "the null path takes parameters");
	smtp_cmd_clear(&c);
	REFUSED("RCPT TO:<>", "501 5.1.3 Bad recipient address syntax");
}

static void
test_path_without_angle_brackets_refused(void)
{
	REFUSED("MAIL FROM:a@b.example", "501 5.5.4 Syntax: MAIL FROM:<address>");
	REFUSED("RCPT TO:c@d.example", "501 5.5.4 Syntax: RCPT TO:<address>");
	REFUSED("MAIL FROM:<a@b.example", "501 5.5.4 Syntax: MAIL FROM:<address>");
	REFUSED("MAIL FROM:a@b.example>", "501 5.5.4 Syntax: MAIL FROM:<address>");
	REFUSED("MAIL FROM:<a@b.example>SIZE=1", "501 5.5.4 Syntax: MAIL FROM:<address>");
	REFUSED("MAIL FROM:", "501 5.5.4 Syntax: MAIL FROM:<address>");
	REFUSED("MAIL", "501 5.5.4 Syntax: MAIL FROM:<address>");
	REFUSED("MAIL <a@b.example>", "501 5.5.4 Syntax: MAIL FROM:<address>");
	REFUSED("MAIL TO:<a@b.example>", "501 5.5.4 Syntax: MAIL FROM:<address>");
	REFUSED("MAIL FROM :<a@b.example>", "501 5.5.4 Syntax: MAIL FROM:<address>");
	REFUSED("RCPT FROM:<a@b.example>", "501 5.5.4 Syntax: RCPT TO:<address>");
	REFUSED("RCPT", "501 5.5.4 Syntax: RCPT TO:<address>");
}

static void
test_source_route_is_dropped(void)
{
	PATH("RCPT TO:<@a.example,@b.example:user@c.example>", SMTP_VERB_RCPT,
	    "user@c.example");
	PATH("MAIL FROM:<@relay.example:Joe@Example.COM>", SMTP_VERB_MAIL, "Joe@example.com");
	PATH("RCPT TO:<@[192.0.2.1]:u@c.example>", SMTP_VERB_RCPT, "u@c.example");
	PATH("RCPT TO:<@a.example:postmaster>", SMTP_VERB_RCPT, "postmaster");
	REFUSED("RCPT TO:<@:u@c.example>", "501 5.1.3 Bad recipient address syntax");
	REFUSED("RCPT TO:<@a.example,b.example:u@c.example>",
	    "501 5.1.3 Bad recipient address syntax");
	REFUSED("RCPT TO:<@a.example>", "501 5.1.3 Bad recipient address syntax");
	REFUSED("RCPT TO:<@a.example:>", "501 5.1.3 Bad recipient address syntax");
	REFUSED("MAIL FROM:<@a.example,:u@c.example>", "501 5.1.7 Bad sender address syntax");
}

static void
test_quoted_local_part_is_kept_quoted(void)
{
	PATH("RCPT TO:<\"john doe\"@x.com>", SMTP_VERB_RCPT, "\"john doe\"@x.com");
	PATH("MAIL FROM:<\"a\\\"b\"@X.COM>", SMTP_VERB_MAIL, "\"a\\\"b\"@x.com");
	PATH("RCPT TO:<\"a>b\"@x.com>", SMTP_VERB_RCPT, "\"a>b\"@x.com");
	PATH("RCPT TO:<\"a@b\"@x.com> NOTIFY=NEVER", SMTP_VERB_RCPT, "\"a@b\"@x.com");
	PATH("RCPT TO:<\"\"@x.com>", SMTP_VERB_RCPT, "\"\"@x.com");
	REFUSED("RCPT TO:<\"john doe@x.com>", "501 5.5.4 Syntax: RCPT TO:<address>");
	REFUSED("RCPT TO:<\"john\"doe@x.com>", "501 5.1.3 Bad recipient address syntax");
	REFUSED("RCPT TO:<\"john\"@>", "501 5.1.3 Bad recipient address syntax");
	REFUSED("RCPT TO:<\"john\">", "501 5.1.3 Bad recipient address syntax");
	REFUSED("RCPT TO:<\"john\"@x..com>", "501 5.1.3 Bad recipient address syntax");
	REFUSED("RCPT TO:<\"john\"@ x.com>", "501 5.1.3 Bad recipient address syntax");
}

static void
test_bad_address_names_sender_or_recipient(void)
{
	static const char *const bad[] = { "a@", "@b.example", "a", "a..b@c.example",
		".a@c.example", "a.@c.example", "a@b..example", "a@-b.example", "a@b-.example",
		"a b@c.example", "a@b c.example", "a@[192.0.2.1]", "a@b_c.example", "a<b@c.example",
		"a@b@c.example", "<a@b.example", NULL };

	for (int i = 0; bad[i]; i++) {
		char *m = g_strdup_printf("MAIL FROM:<%s>", bad[i]);
		char *r = g_strdup_printf("RCPT TO:<%s>", bad[i]);
		refused_at(__LINE__, m, strlen(m), "501 5.1.7 Bad sender address syntax");
		refused_at(__LINE__, r, strlen(r), "501 5.1.3 Bad recipient address syntax");
		g_free(m);
		g_free(r);
	}
}

static void
test_postmaster_needs_no_domain(void)
{
	PATH("RCPT TO:<postmaster>", SMTP_VERB_RCPT, "postmaster");
	PATH("RCPT TO:<PostMaster>", SMTP_VERB_RCPT, "postmaster");
	PATH("RCPT TO:<postmaster@Example.COM>", SMTP_VERB_RCPT, "postmaster@example.com");
	REFUSED("MAIL FROM:<postmaster>", "501 5.1.7 Bad sender address syntax");
	REFUSED("RCPT TO:<postmistress>", "501 5.1.3 Bad recipient address syntax");
}

static void
test_address_length_limits(void)
{
	GString *local = g_string_new(NULL), *dom = g_string_new(NULL);
	char *line;

	/* Local part: 64 octets (RFC 5321 4.5.3.1.1). */
	while (local->len < ADDR_SMTP_LOCAL_MAX)
		g_string_append_c(local, 'l');
	line = g_strdup_printf("RCPT TO:<%s@example.com>", local->str);
	{
		char *want = g_strdup_printf("%s@example.com", local->str);
		PATH(line, SMTP_VERB_RCPT, want);
		g_free(want);
	}
	g_free(line);
	g_string_append_c(local, 'l');
	line = g_strdup_printf("RCPT TO:<%s@example.com>", local->str);
	refused_at(__LINE__, line, strlen(line), "501 5.1.3 Bad recipient address syntax");
	g_free(line);
	/* A quoted local part counts its quotes. */
	g_string_truncate(local, ADDR_SMTP_LOCAL_MAX - 2);
	line = g_strdup_printf("RCPT TO:<\"%s\"@example.com>", local->str);
	{
		char *want = g_strdup_printf("\"%s\"@example.com", local->str);
		PATH(line, SMTP_VERB_RCPT, want);
		g_free(want);
	}
	g_free(line);
	g_string_append_c(local, 'l');
	line = g_strdup_printf("RCPT TO:<\"%s\"@example.com>", local->str);
	refused_at(__LINE__, line, strlen(line), "501 5.1.3 Bad recipient address syntax");
	g_free(line);

	/* Domain: labels of 1 to 63, and the whole address 254 at most (the
	 * 256-octet path with its brackets), so a domain has 252 at most.
	 * addr_parse_smtp's own domain limit, 253, is therefore never reached. */
	while (dom->len + 64 <= ADDR_SMTP_MAX - 2)
		g_string_append(dom, "ddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd.");
	while (dom->len < ADDR_SMTP_MAX - 2)
		g_string_append_c(dom, 'e');
	line = g_strdup_printf("MAIL FROM:<a@%s>", dom->str);
	{
		char *want = g_strdup_printf("a@%s", dom->str);
		PATH(line, SMTP_VERB_MAIL, want);
		g_free(want);
	}
	g_free(line);
	g_string_append_c(dom, 'e');
	line = g_strdup_printf("MAIL FROM:<a@%s>", dom->str);
	refused_at(__LINE__, line, strlen(line), "501 5.1.7 Bad sender address syntax");
	g_free(line);
	line = g_strdup_printf("MAIL FROM:<a@%s.example>",
	    "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd");
	refused_at(__LINE__, line, strlen(line), "501 5.1.7 Bad sender address syntax");
	g_free(line);

	/* Path: 256 octets with the brackets (RFC 5321 4.5.3.1.3) - 254 inside. */
	g_string_truncate(dom, ADDR_SMTP_MAX - ADDR_SMTP_LOCAL_MAX - 1);
	g_string_set_size(local, ADDR_SMTP_LOCAL_MAX);
	memset(local->str, 'l', local->len);
	line = g_strdup_printf("RCPT TO:<%s@%s>", local->str, dom->str);
	EXPECT(strlen(line) - 8 == 256, "the path is 256 octets with its brackets");
	{
		char *want = g_strdup_printf("%s@%s", local->str, dom->str);
		PATH(line, SMTP_VERB_RCPT, want);
		g_free(want);
	}
	g_free(line);
	g_string_append_c(dom, 'e');
	line = g_strdup_printf("RCPT TO:<%s@%s>", local->str, dom->str);
	refused_at(__LINE__, line, strlen(line), "501 5.1.3 Bad recipient address syntax");
	g_free(line);
	g_string_free(local, TRUE);
	g_string_free(dom, TRUE);
}

/* ---- ESMTP parameters ----------------------------------------------------------- */

/* Parse a MAIL/RCPT line expected to be accepted; the caller checks c. */
#define WITH(text, verb, c) if (ACCEPTED(text, verb, c))

static void
test_size_parameter(void)
{
	SmtpCmd c;

	WITH("MAIL FROM:<a@b.example> SIZE=0", SMTP_VERB_MAIL, &c)
		EXPECT(c.size == 0, "SIZE=0");
	smtp_cmd_clear(&c);
	WITH("MAIL FROM:<a@b.example> size=10485760", SMTP_VERB_MAIL, &c)
		EXPECT(c.size == 10485760, "size=10485760 (keyword case-insensitive)");
	smtp_cmd_clear(&c);
	WITH("MAIL FROM:<a@b.example> SIZE=00000000000000000001", SMTP_VERB_MAIL, &c)
		EXPECT(c.size == 1, "20 digits with leading zeros");
	smtp_cmd_clear(&c);
	WITH("MAIL FROM:<a@b.example> SIZE=9223372036854775807", SMTP_VERB_MAIL, &c)
		EXPECT(c.size == G_MAXINT64, "the largest size that fits");
	smtp_cmd_clear(&c);
	REFUSED("MAIL FROM:<a@b.example> SIZE=9223372036854775808",
	    "552 5.3.4 Message size exceeds fixed limit");
	REFUSED("MAIL FROM:<a@b.example> SIZE=99999999999999999999",
	    "552 5.3.4 Message size exceeds fixed limit");
	REFUSED("MAIL FROM:<a@b.example> SIZE=000000000000000000001",
	    "501 5.5.4 Bad SIZE parameter syntax");
	REFUSED("MAIL FROM:<a@b.example> SIZE=12a", "501 5.5.4 Bad SIZE parameter syntax");
	REFUSED("MAIL FROM:<a@b.example> SIZE=-1", "501 5.5.4 Bad SIZE parameter syntax");
	REFUSED("MAIL FROM:<a@b.example> SIZE=+1", "501 5.5.4 Bad SIZE parameter syntax");
	REFUSED("MAIL FROM:<a@b.example> SIZE", "501 5.5.4 Bad SIZE parameter syntax");
	REFUSED("MAIL FROM:<a@b.example> SIZE=", "501 5.5.4 Bad parameter syntax");
}

static void
test_body_parameter(void)
{
	SmtpCmd c;

	WITH("MAIL FROM:<a@b.example> BODY=7BIT", SMTP_VERB_MAIL, &c)
		EXPECT(c.body == MAIL_BODY_7BIT, "BODY=7BIT");
	smtp_cmd_clear(&c);
	WITH("MAIL FROM:<a@b.example> body=8bitmime", SMTP_VERB_MAIL, &c)
		EXPECT(c.body == MAIL_BODY_8BITMIME, "body=8bitmime");
	smtp_cmd_clear(&c);
	REFUSED("MAIL FROM:<a@b.example> BODY=BINARYMIME", "501 5.5.4 Bad BODY parameter value");
	REFUSED("MAIL FROM:<a@b.example> BODY=8BIT", "501 5.5.4 Bad BODY parameter value");
}

static void
test_ret_parameter(void)
{
	SmtpCmd c;

	WITH("MAIL FROM:<a@b.example> RET=FULL", SMTP_VERB_MAIL, &c)
		EXPECT(c.ret == MAIL_RET_FULL, "RET=FULL");
	smtp_cmd_clear(&c);
	WITH("MAIL FROM:<a@b.example> ret=hdrs", SMTP_VERB_MAIL, &c)
		EXPECT(c.ret == MAIL_RET_HDRS, "ret=hdrs");
	smtp_cmd_clear(&c);
	REFUSED("MAIL FROM:<a@b.example> RET=HEADERS", "501 5.5.4 Bad RET parameter syntax");
}

static void
test_envid_parameter_is_xtext_decoded(void)
{
	SmtpCmd c;
	GString *s = g_string_new("MAIL FROM:<a@b.example> ENVID=");
	gsize base = s->len;

	WITH("MAIL FROM:<a@b.example> ENVID=QQ314159", SMTP_VERB_MAIL, &c)
		EXPECT(c.envid && strcmp(c.envid, "QQ314159") == 0, "ENVID=QQ314159");
	smtp_cmd_clear(&c);
	WITH("MAIL FROM:<a@b.example> ENVID=a+2Bb+3Dc+20d", SMTP_VERB_MAIL, &c)
		EXPECT(c.envid && strcmp(c.envid, "a+b=c d") == 0, "ENVID is decoded: %s",
		    c.envid ? c.envid : "(none)");
	smtp_cmd_clear(&c);
	/* 100 characters after decoding; each "+41" is one. */
	for (int i = 0; i < SMTP_ENVID_MAX; i++)
		g_string_append(s, "+41");
	WITH(s->str, SMTP_VERB_MAIL, &c)
		EXPECT(c.envid && strlen(c.envid) == SMTP_ENVID_MAX, "an ENVID of 100 characters");
	smtp_cmd_clear(&c);
	g_string_append_c(s, 'A');
	refused_at(__LINE__, s->str, s->len, "501 5.5.4 Bad ENVID parameter syntax");
	g_string_truncate(s, base);
	REFUSED("MAIL FROM:<a@b.example> ENVID=a+2", "501 5.5.4 Bad ENVID parameter syntax");
	REFUSED("MAIL FROM:<a@b.example> ENVID=a+ZZ", "501 5.5.4 Bad ENVID parameter syntax");
	REFUSED("MAIL FROM:<a@b.example> ENVID=+00", "501 5.5.4 Bad ENVID parameter syntax");
	REFUSED("MAIL FROM:<a@b.example> ENVID=+01", "501 5.5.4 Bad ENVID parameter syntax");
	REFUSED("MAIL FROM:<a@b.example> ENVID=+C3+A9", "501 5.5.4 Bad ENVID parameter syntax");
	REFUSED("MAIL FROM:<a@b.example> ENVID", "501 5.5.4 Bad ENVID parameter syntax");
	g_string_free(s, TRUE);
}

static void
test_notify_parameter(void)
{
	SmtpCmd c;

	WITH("RCPT TO:<a@b.example> NOTIFY=NEVER", SMTP_VERB_RCPT, &c)
		EXPECT(c.notify == MAIL_NOTIFY_NEVER, "NOTIFY=NEVER");
	smtp_cmd_clear(&c);
	WITH("RCPT TO:<a@b.example> NOTIFY=SUCCESS,FAILURE,DELAY", SMTP_VERB_RCPT, &c)
		EXPECT(c.notify == (MAIL_NOTIFY_SUCCESS | MAIL_NOTIFY_FAILURE | MAIL_NOTIFY_DELAY),
		    "NOTIFY=SUCCESS,FAILURE,DELAY");
	smtp_cmd_clear(&c);
	WITH("RCPT TO:<a@b.example> notify=delay,failure", SMTP_VERB_RCPT, &c)
		EXPECT(c.notify == (MAIL_NOTIFY_FAILURE | MAIL_NOTIFY_DELAY), "notify=delay,failure");
	smtp_cmd_clear(&c);
	WITH("RCPT TO:<a@b.example>", SMTP_VERB_RCPT, &c)
		EXPECT(c.notify == 0, "no NOTIFY: 0");
	smtp_cmd_clear(&c);
	REFUSED("RCPT TO:<a@b.example> NOTIFY=NEVER,SUCCESS",
	    "501 5.5.4 Bad NOTIFY parameter syntax: NEVER stands alone");
	REFUSED("RCPT TO:<a@b.example> NOTIFY=FAILURE,NEVER", "501 5.5.4 Bad NOTIFY parameter");
	REFUSED("RCPT TO:<a@b.example> NOTIFY=SUCCESS,,DELAY", "501 5.5.4 Bad NOTIFY parameter");
	REFUSED("RCPT TO:<a@b.example> NOTIFY=SUCCESS,", "501 5.5.4 Bad NOTIFY parameter");
	REFUSED("RCPT TO:<a@b.example> NOTIFY=ALWAYS", "501 5.5.4 Bad NOTIFY parameter");
}

static void
test_orcpt_parameter(void)
{
	SmtpCmd c;

	WITH("RCPT TO:<a@b.example> ORCPT=rfc822;a@b.example", SMTP_VERB_RCPT, &c)
		EXPECT(c.orcpt_type && strcmp(c.orcpt_type, "rfc822") == 0 && c.orcpt &&
		    strcmp(c.orcpt, "a@b.example") == 0, "ORCPT=rfc822;a@b.example");
	smtp_cmd_clear(&c);
	WITH("RCPT TO:<a@b.example> ORCPT=RFC822;Joe+2BSmith@X.example", SMTP_VERB_RCPT, &c)
		EXPECT(c.orcpt_type && strcmp(c.orcpt_type, "rfc822") == 0 && c.orcpt &&
		    strcmp(c.orcpt, "Joe+Smith@X.example") == 0,
		    "the type is lower case, the address decoded and otherwise kept: %s",
		    c.orcpt ? c.orcpt : "(none)");
	smtp_cmd_clear(&c);
	WITH("RCPT TO:<a@b.example> NOTIFY=FAILURE ORCPT=rfc822;+22j+20d+22@x", SMTP_VERB_RCPT,
	    &c)
		EXPECT(c.notify == MAIL_NOTIFY_FAILURE && c.orcpt &&
		    strcmp(c.orcpt, "\"j d\"@x") == 0, "NOTIFY and ORCPT together");
	smtp_cmd_clear(&c);
	REFUSED("RCPT TO:<a@b.example> ORCPT=a@b.example", "501 5.5.4 Bad ORCPT parameter syntax");
	REFUSED("RCPT TO:<a@b.example> ORCPT=;a@b.example", "501 5.5.4 Bad ORCPT parameter syntax");
	REFUSED("RCPT TO:<a@b.example> ORCPT=rfc822;", "501 5.5.4 Bad ORCPT parameter syntax");
	REFUSED("RCPT TO:<a@b.example> ORCPT=rfc822;a+4", "501 5.5.4 Bad ORCPT parameter syntax");
	REFUSED("RCPT TO:<a@b.example> ORCPT=rf(c;a", "501 5.5.4 Bad ORCPT parameter syntax");
	REFUSED("RCPT TO:<a@b.example> ORCPT=rfc822;a+0Ab", "501 5.5.4 Bad ORCPT parameter syntax");
}

static void
test_many_parameters_and_blanks_between(void)
{
	SmtpCmd c;

	WITH("MAIL FROM:<a@b.example>  SIZE=1000   BODY=8BITMIME RET=HDRS ENVID=id1  ",
	    SMTP_VERB_MAIL, &c)
		EXPECT(c.size == 1000 && c.body == MAIL_BODY_8BITMIME && c.ret == MAIL_RET_HDRS &&
		    c.envid && strcmp(c.envid, "id1") == 0, "four MAIL parameters");
	smtp_cmd_clear(&c);
}

static void
test_duplicate_parameter_refused(void)
{
	REFUSED("MAIL FROM:<a@b.example> SIZE=1 SIZE=1", "501 5.5.4 Duplicate SIZE parameter");
	REFUSED("MAIL FROM:<a@b.example> size=1 BODY=7BIT Size=2",
	    "501 5.5.4 Duplicate SIZE parameter");
	REFUSED("MAIL FROM:<a@b.example> RET=FULL RET=HDRS", "501 5.5.4 Duplicate RET parameter");
	REFUSED("RCPT TO:<a@b.example> NOTIFY=NEVER NOTIFY=NEVER",
	    "501 5.5.4 Duplicate NOTIFY parameter");
	REFUSED("RCPT TO:<a@b.example> ORCPT=rfc822;a ORCPT=rfc822;b",
	    "501 5.5.4 Duplicate ORCPT parameter");
}

static void
test_unknown_or_misplaced_parameter_is_555(void)
{
	GString *s = g_string_new("MAIL FROM:<a@b.example> ");

	REFUSED("MAIL FROM:<a@b.example> FOO=bar", "555 5.5.4 Unsupported parameter FOO");
	REFUSED("MAIL FROM:<a@b.example> smtputf8", "555 5.5.4 Unsupported parameter SMTPUTF8");
	REFUSED("MAIL FROM:<a@b.example> AUTH=<>", "555 5.5.4 Unsupported parameter AUTH");
	REFUSED("MAIL FROM:<a@b.example> NOTIFY=NEVER", "555 5.5.4 Unsupported parameter NOTIFY");
	REFUSED("MAIL FROM:<a@b.example> ORCPT=rfc822;a", "555 5.5.4 Unsupported parameter ORCPT");
	REFUSED("RCPT TO:<a@b.example> SIZE=10", "555 5.5.4 Unsupported parameter SIZE");
	REFUSED("RCPT TO:<a@b.example> BODY=7BIT", "555 5.5.4 Unsupported parameter BODY");
	REFUSED("RCPT TO:<a@b.example> ENVID=x", "555 5.5.4 Unsupported parameter ENVID");
	/* A long keyword is shortened in the reply. */
	for (int i = 0; i < 100; i++)
		g_string_append_c(s, 'k');
	refused_at(__LINE__, s->str, s->len,
	    "555 5.5.4 Unsupported parameter KKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKK...");
	g_string_free(s, TRUE);
}

static void
test_malformed_parameter_is_501(void)
{
	REFUSED("MAIL FROM:<a@b.example> =1", "501 5.5.4 Bad parameter syntax");
	REFUSED("MAIL FROM:<a@b.example> -X=1", "501 5.5.4 Bad parameter syntax");
	REFUSED("MAIL FROM:<a@b.example> X_Y=1", "501 5.5.4 Bad parameter syntax");
	REFUSED("MAIL FROM:<a@b.example> SIZE=1=2", "501 5.5.4 Bad parameter syntax");
	REFUSED("MAIL FROM:<a@b.example> FOO=", "501 5.5.4 Bad parameter syntax");
	REFUSED("RCPT TO:<a@b.example> <c@d.example>", "501 5.5.4 Bad parameter syntax");
}

/* ---- the other commands ---------------------------------------------------------- */

static void
test_commands_without_arguments(void)
{
	static const struct {
		const char *name;
		SmtpVerb verb;
	} verbs[] = {
		{ "DATA", SMTP_VERB_DATA },
		{ "RSET", SMTP_VERB_RSET },
		{ "QUIT", SMTP_VERB_QUIT },
		{ "STARTTLS", SMTP_VERB_STARTTLS },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(verbs); i++) {
		char *bare = g_strdup_printf("%s  ", verbs[i].name);
		char *with = g_strdup_printf("%s now", verbs[i].name);
		char *want = g_strdup_printf("501 5.5.4 Syntax: %s (no arguments)", verbs[i].name);
		SmtpCmd c;
		if (accepted_at(__LINE__, verbs[i].name, strlen(verbs[i].name), verbs[i].verb, &c))
			EXPECT(c.arg == NULL, "%s alone has no argument", verbs[i].name);
		smtp_cmd_clear(&c);
		accepted_at(__LINE__, bare, strlen(bare), verbs[i].verb, &c);
		smtp_cmd_clear(&c);
		refused_at(__LINE__, with, strlen(with), want);
		g_free(bare);
		g_free(with);
		g_free(want);
	}
}

static void
test_commands_with_optional_or_required_text(void)
{
	SmtpCmd c;

	WITH("NOOP", SMTP_VERB_NOOP, &c)
		EXPECT(c.arg == NULL, "NOOP alone");
	smtp_cmd_clear(&c);
	WITH("NOOP  keep   going ", SMTP_VERB_NOOP, &c)
		EXPECT(c.arg && strcmp(c.arg, "keep   going") == 0, "NOOP text is trimmed");
	smtp_cmd_clear(&c);
	WITH("HELP", SMTP_VERB_HELP, &c)
		EXPECT(c.arg == NULL, "HELP alone");
	smtp_cmd_clear(&c);
	WITH("HELP mail", SMTP_VERB_HELP, &c)
		EXPECT(c.arg && strcmp(c.arg, "mail") == 0, "HELP mail");
	smtp_cmd_clear(&c);
	WITH("VRFY  John Smith <js@example.com>", SMTP_VERB_VRFY, &c)
		EXPECT(c.arg && strcmp(c.arg, "John Smith <js@example.com>") == 0, "VRFY text");
	smtp_cmd_clear(&c);
	WITH("EXPN staff", SMTP_VERB_EXPN, &c)
		EXPECT(c.arg && strcmp(c.arg, "staff") == 0, "EXPN text");
	smtp_cmd_clear(&c);
	WITH("AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=", SMTP_VERB_AUTH, &c)
		EXPECT(c.arg && strcmp(c.arg, "PLAIN dGVzdAB0ZXN0AHRlc3Q=") == 0,
		    "AUTH mechanism and initial response");
	smtp_cmd_clear(&c);
	REFUSED("VRFY", "501 5.5.4 Syntax: VRFY address");
	REFUSED("EXPN  ", "501 5.5.4 Syntax: EXPN address");
	REFUSED("AUTH", "501 5.5.4 Syntax: AUTH mechanism");
}

static void
test_helo_and_ehlo_need_a_domain_or_address_literal(void)
{
	static const char *const good[] = { "mail.example.com", "MAIL.Example.COM.", "localhost",
		"win_box-7", "[192.0.2.1]", "[IPv6:2001:db8::1]", "[IPv6:::1]", NULL };
	static const char *const bad[] = { "mail example.com", "[192.0.2.1", "192.0.2.1]",
		"[]", "a@b.example", "mail.example.com,x", "[1.2.3.4]x", "[a[b]", "\"x\"", NULL };

	for (int i = 0; good[i]; i++) {
		char *h = g_strdup_printf("HELO %s", good[i]);
		char *e = g_strdup_printf("ehlo   %s  ", good[i]);
		SmtpCmd c;
		if (accepted_at(__LINE__, h, strlen(h), SMTP_VERB_HELO, &c))
			EXPECT(strcmp(c.arg, good[i]) == 0, "HELO %s keeps the name", good[i]);
		smtp_cmd_clear(&c);
		if (accepted_at(__LINE__, e, strlen(e), SMTP_VERB_EHLO, &c))
			EXPECT(strcmp(c.arg, good[i]) == 0, "EHLO %s keeps the name, trimmed", good[i]);
		smtp_cmd_clear(&c);
		g_free(h);
		g_free(e);
	}
	for (int i = 0; bad[i]; i++) {
		char *h = g_strdup_printf("HELO %s", bad[i]);
		char *e = g_strdup_printf("EHLO %s", bad[i]);
		refused_at(__LINE__, h, strlen(h), "501 5.5.4 Invalid HELO hostname");
		refused_at(__LINE__, e, strlen(e), "501 5.5.4 Invalid EHLO hostname");
		g_free(h);
		g_free(e);
	}
	REFUSED("EHLO", "501 5.5.4 Syntax: EHLO hostname");
	REFUSED("HELO   ", "501 5.5.4 Syntax: HELO hostname");
	{
		GString *s = g_string_new("EHLO ");
		while (s->len < 5 + SMTP_HELO_MAX + 1)
			g_string_append_c(s, 'h');
		refused_at(__LINE__, s->str, s->len, "501 5.5.4 Invalid EHLO hostname");
		g_string_free(s, TRUE);
	}
}

static void
test_bdat_chunk_size_and_last(void)
{
	SmtpCmd c;

	WITH("BDAT 1000", SMTP_VERB_BDAT, &c)
		EXPECT(c.size == 1000 && !c.last, "BDAT 1000");
	smtp_cmd_clear(&c);
	WITH("bdat 0 last", SMTP_VERB_BDAT, &c)
		EXPECT(c.size == 0 && c.last, "bdat 0 last");
	smtp_cmd_clear(&c);
	REFUSED("BDAT", "501 5.5.4 Syntax: BDAT chunk-size [LAST]");
	REFUSED("BDAT x", "501 5.5.4 Syntax: BDAT chunk-size [LAST]");
	REFUSED("BDAT 10 FIRST", "501 5.5.4 Syntax: BDAT chunk-size [LAST]");
	REFUSED("BDAT 10 LAST x", "501 5.5.4 Syntax: BDAT chunk-size [LAST]");
	REFUSED("BDAT 99999999999999999999", "552 5.3.4 Message size exceeds fixed limit");
}

static void
test_refusal_keeps_only_verb_and_reply(void)
{
	const char *line = "MAIL FROM:<a@b.example> SIZE=10 ENVID=x FOO=1";
	SmtpCmd c;

	EXPECT(!smtp_cmd_parse(line, strlen(line), &c),
	    "an unknown parameter after good ones refuses the command");
	EXPECT(c.verb == SMTP_VERB_MAIL && c.path == NULL && c.size == -1 && c.envid == NULL &&
	    c.reply && strcmp(c.reply, "555 5.5.4 Unsupported parameter FOO") == 0,
	    "the verb and the reply are all that is left: %s", c.reply ? c.reply : "(none)");
	smtp_cmd_clear(&c);
	EXPECT(c.reply == NULL && c.path == NULL && c.verb == SMTP_VERB_UNKNOWN,
	    "smtp_cmd_clear empties the command");
	smtp_cmd_clear(&c);
}

/* ---- xtext ------------------------------------------------------------------------ */

static void
test_xtext_round_trip(void)
{
	const char *plain = "a+b=c d\x01\xc3\xa9~!";
	char *enc = smtp_xtext_encode(plain);
	char *dec = enc ? smtp_xtext_decode(enc, strlen(enc)) : NULL;

	EXPECT(enc && strcmp(enc, "a+2Bb+3Dc+20d+01+C3+A9~!") == 0,
	    "xtext encodes +, =, blanks, controls and 8-bit bytes as +XX: %s", enc);
	EXPECT(dec && strcmp(dec, plain) == 0, "and decodes back");
	g_free(enc);
	g_free(dec);
	enc = smtp_xtext_encode("");
	EXPECT(enc && enc[0] == '\0', "the empty string encodes to itself");
	g_free(enc);
}

static void
test_xtext_decode_refuses_malformed_text(void)
{
	static const char *const bad[] = { "a=b", "a b", "+", "+4", "+4G", "+G4", "a+", "+00",
		"\x7f", "\xc3\xa9", NULL };
	char *s;

	for (int i = 0; bad[i]; i++) {
		char *buf = unterminated(bad[i], strlen(bad[i]));
		s = smtp_xtext_decode(buf, strlen(bad[i]));
		EXPECT(s == NULL, "\"%s\" is not xtext", bad[i]);
		g_free(s);
		g_free(buf);
	}
	s = smtp_xtext_decode("+2b+3d", 6);
	EXPECT(s && strcmp(s, "+=") == 0, "lower-case hex is taken (as Postfix does)");
	g_free(s);
	s = smtp_xtext_decode("ab+41", 3);
	EXPECT(s == NULL, "a '+' cut off by the length is malformed, not read past");
	g_free(s);
	s = smtp_xtext_decode("", 0);
	EXPECT(s && s[0] == '\0', "empty xtext is the empty string");
	g_free(s);
}

static const CuTest tests[] = {
	{ "verbs are case-insensitive", test_verbs_are_case_insensitive },
	{ "unknown verb is 500 5.5.1", test_unknown_verb_is_500_5_5_1 },
	{ "empty line is bad syntax", test_empty_line_is_bad_syntax },
	{ "control and 8-bit bytes are invalid characters",
	  test_control_and_8bit_bytes_are_invalid_characters },
	{ "invalid characters are checked before anything else",
	  test_invalid_characters_are_checked_before_anything_else },
	{ "line of max length accepted, one more refused",
	  test_line_of_max_length_accepted_one_more_refused },
	{ "parser reads only len bytes", test_parser_reads_only_len_bytes },
	{ "blanks around the command are tolerated", test_blanks_around_the_command_are_tolerated },
	{ "MAIL FROM forms", test_mail_from_forms },
	{ "null sender", test_null_sender },
	{ "path without angle brackets refused", test_path_without_angle_brackets_refused },
	{ "source route is dropped", test_source_route_is_dropped },
	{ "quoted local part is kept quoted", test_quoted_local_part_is_kept_quoted },
	{ "bad address names sender or recipient", test_bad_address_names_sender_or_recipient },
	{ "postmaster needs no domain", test_postmaster_needs_no_domain },
	{ "address length limits", test_address_length_limits },
	{ "SIZE parameter", test_size_parameter },
	{ "BODY parameter", test_body_parameter },
	{ "RET parameter", test_ret_parameter },
	{ "ENVID parameter is xtext-decoded", test_envid_parameter_is_xtext_decoded },
	{ "NOTIFY parameter", test_notify_parameter },
	{ "ORCPT parameter", test_orcpt_parameter },
	{ "many parameters and blanks between", test_many_parameters_and_blanks_between },
	{ "duplicate parameter refused", test_duplicate_parameter_refused },
	{ "unknown or misplaced parameter is 555", test_unknown_or_misplaced_parameter_is_555 },
	{ "malformed parameter is 501", test_malformed_parameter_is_501 },
	{ "commands without arguments", test_commands_without_arguments },
	{ "commands with optional or required text", test_commands_with_optional_or_required_text },
	{ "HELO and EHLO need a domain or address literal",
	  test_helo_and_ehlo_need_a_domain_or_address_literal },
	{ "BDAT chunk size and LAST", test_bdat_chunk_size_and_last },
	{ "refusal keeps only verb and reply", test_refusal_keeps_only_verb_and_reply },
	{ "xtext round trip", test_xtext_round_trip },
	{ "xtext decode refuses malformed text", test_xtext_decode_refuses_malformed_text },
	{ NULL, NULL },
};

int
main(void)
{
	return cu_run("smtp_cmd", tests);
}
