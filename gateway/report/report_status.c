/* report_status.c - legacy report reasons <-> RFC 3463 status codes, and the
 * status of an SMTP reply (see report_status.h; docs/reports.md is the table
 * in words).
 *
 * Owns: the one table, the status syntax, the reply's status, the texts.
 * Never: building or sending a report.
 */
#include "config.h"

#include <string.h>

#include "message.h"
#include "report/report_status.h"

/* The one table: a legacy reason and the status of a non-delivery for it.
 * docs/reports.md gives the reason for each row. */
static const struct {
	guint16 reason;
	const char *status;
} reason_status[] = {
	{ MSG_REASON_UNKNOWN_RECIPIENT, "5.1.1" },  /* bad destination mailbox address */
	{ MSG_REASON_LOOP, "5.4.6" },               /* routing loop detected */
	{ MSG_REASON_TRANSFER_FAILED, "5.4.0" },    /* other network or routing status */
	{ MSG_REASON_EXPIRED, "5.4.7" },            /* delivery time expired, final */
	{ MSG_REASON_TOO_BIG, "5.3.4" },            /* message too big for system */
	{ MSG_REASON_OTHER, "5.0.0" },              /* other undefined status */
	{ MSG_REASON_NONE, "5.0.0" },               /* not delivered, no reason given */
};

/* The other way: subject and detail of a status and the reason they mean;
 * a valid 4.x.x or 5.x.x status not listed is MSG_REASON_TRANSFER_FAILED. */
static const struct {
	guint subject, detail;
	guint16 reason;
} status_reason[] = {
	{ 1, 1, MSG_REASON_UNKNOWN_RECIPIENT },    /* bad destination mailbox address */
	{ 1, 2, MSG_REASON_UNKNOWN_RECIPIENT },    /* bad destination system address */
	{ 1, 3, MSG_REASON_UNKNOWN_RECIPIENT },    /* bad destination mailbox address syntax */
	{ 1, 6, MSG_REASON_UNKNOWN_RECIPIENT },    /* mailbox moved, no forwarding address */
	{ 1, 10, MSG_REASON_UNKNOWN_RECIPIENT },   /* the domain accepts no mail (RFC 7505) */
	{ 4, 6, MSG_REASON_LOOP },                 /* routing loop detected */
	{ 3, 4, MSG_REASON_TOO_BIG },              /* message too big for system */
	{ 2, 3, MSG_REASON_TOO_BIG },              /* message length exceeds administrative limit */
	{ 4, 7, MSG_REASON_EXPIRED },              /* delivery time expired */
};

/* RFC 3463 3: what a subject and detail mean, said to a person.  A detail
 * not listed falls back to its subject's x.N.0 row. */
static const struct {
	guint subject, detail;
	const char *text;
} status_texts[] = {
	{ 0, 0, "the reason was not given" },
	{ 1, 0, "there is a problem with the address" },
	{ 1, 1, "the mailbox does not exist" },
	{ 1, 2, "the destination domain does not exist or accepts no mail" },
	{ 1, 3, "the recipient's address is not valid" },
	{ 1, 4, "the recipient's address is ambiguous" },
	{ 1, 6, "the mailbox has moved and left no forwarding address" },
	{ 1, 7, "the sender's address is not valid" },
	{ 1, 8, "the sender's domain is not valid" },
	{ 1, 10, "the destination domain accepts no mail" },
	{ 2, 0, "there is a problem with the mailbox" },
	{ 2, 1, "the mailbox is disabled and accepts no messages" },
	{ 2, 2, "the mailbox is full" },
	{ 2, 3, "the message is larger than the recipient's system accepts" },
	{ 2, 4, "a mailing list could not be expanded" },
	{ 3, 0, "the receiving mail system has a problem" },
	{ 3, 1, "the receiving mail system is full" },
	{ 3, 2, "the receiving mail system accepts no messages now" },
	{ 3, 3, "the receiving mail system lacks a feature the message needs" },
	{ 3, 4, "the message is too big for the receiving mail system" },
	{ 3, 5, "the receiving mail system is configured wrongly" },
	{ 4, 0, "there is a network or routing problem" },
	{ 4, 1, "the receiving mail server did not answer" },
	{ 4, 2, "the connection to the receiving mail server broke" },
	{ 4, 3, "a directory server failed" },
	{ 4, 4, "no route to the destination is known" },
	{ 4, 5, "the mail system is congested" },
	{ 4, 6, "the message went round in a loop" },
	{ 4, 7, "the message could not be delivered in time" },
	{ 5, 0, "the mail servers did not understand each other" },
	{ 5, 3, "the message has too many recipients" },
	{ 6, 0, "the message's content could not be handled" },
	{ 6, 1, "the message's content type is not supported" },
	{ 6, 2, "the message would have to be converted, which it forbids" },
	{ 6, 3, "the message would have to be converted, which is not possible" },
	{ 7, 0, "the message was refused for a security reason" },
	{ 7, 1, "the message was refused: delivery is not authorised" },
	{ 7, 2, "the mailing list may not be expanded" },
};

const char *
report_status_of_reason(guint16 reason, gboolean delivered)
{
	if (delivered)
		return "2.0.0";
	for (size_t i = 0; i < G_N_ELEMENTS(reason_status); i++)
		if (reason_status[i].reason == reason)
			return reason_status[i].status;
	return "5.0.0";     /* a code not known is "other" (docs/bundle-format.md) */
}

void
report_status_delayed(guint16 reason, char status[REPORT_STATUS_SIZE])
{
	g_strlcpy(status, report_status_of_reason(reason, FALSE), REPORT_STATUS_SIZE);
	status[0] = '4';
}

/* One RFC 3463 sub-code at s[*i]: "0", or 1 to 3 digits without a leading
 * zero; its value in *v and *i past it. */
static gboolean
sub_code(const char *s, gsize len, gsize *i, guint *v)
{
	gsize start = *i;

	*v = 0;
	while (*i < len && g_ascii_isdigit(s[*i]) && *i - start < 4) {
		*v = *v * 10 + (guint)(s[*i] - '0');
		(*i)++;
	}
	return *i > start && *i - start <= 3 && !(*i - start > 1 && s[start] == '0');
}

/* The status at the start of s: its class, subject and detail, and *end the
 * bytes it takes; FALSE when s does not start with one. */
static gboolean
parse_status(const char *s, gsize len, guint *klass, guint *subject, guint *detail, gsize *end)
{
	gsize i = 2;

	if (!s || len < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return FALSE;
	*klass = (guint)(s[0] - '0');
	if (!sub_code(s, len, &i, subject) || i >= len || s[i] != '.')
		return FALSE;
	i++;
	if (!sub_code(s, len, &i, detail))
		return FALSE;
	*end = i;
	return TRUE;
}

gboolean
report_status_valid(const char *status, gsize len)
{
	guint k, s, d;
	gsize end;

	return parse_status(status, len, &k, &s, &d, &end) && end == len;
}

guint16
report_reason_of_status(const char *status, gsize len)
{
	guint k, s, d;
	gsize end;

	if (!parse_status(status, len, &k, &s, &d, &end) || end != len)
		return MSG_REASON_OTHER;
	if (k == 2)
		return MSG_REASON_NONE;
	for (size_t i = 0; i < G_N_ELEMENTS(status_reason); i++)
		if (status_reason[i].subject == s && status_reason[i].detail == d)
			return status_reason[i].reason;
	return MSG_REASON_TRANSFER_FAILED;
}

gboolean
report_status_of_reply(const char *reply, gsize len, char status[REPORT_STATUS_SIZE])
{
	guint k, s, d;
	gsize end;

	status[0] = '\0';
	if (!reply || len < 3 || (reply[0] != '2' && reply[0] != '4' && reply[0] != '5') ||
	    reply[1] < '0' || reply[1] > '5' || !g_ascii_isdigit(reply[2]))
		return FALSE;
	if (len > 3 && reply[3] != ' ' && reply[3] != '-')
		return FALSE;
	/* RFC 2034 4: the code follows the reply code and one blank, ends at a
	 * blank or the end, and has the reply's class. */
	if (len > 4 && parse_status(reply + 4, len - 4, &k, &s, &d, &end) &&
	    k == (guint)(reply[0] - '0') && (4 + end == len || reply[4 + end] == ' ')) {
		memcpy(status, reply + 4, end);     /* at most "5.999.999" */
		status[end] = '\0';
		return TRUE;
	}
	g_snprintf(status, REPORT_STATUS_SIZE, "%c.0.0", reply[0]);
	return TRUE;
}

const char *
report_status_text(const char *status, gsize len)
{
	guint k, s, d;
	gsize end;
	const char *fallback = status_texts[0].text;

	if (!parse_status(status, len, &k, &s, &d, &end) || end != len)
		return "the status given is not valid";
	if (k == 2)
		return "delivered";
	for (size_t i = 0; i < G_N_ELEMENTS(status_texts); i++) {
		if (status_texts[i].subject != s)
			continue;
		if (status_texts[i].detail == d)
			return status_texts[i].text;
		if (status_texts[i].detail == 0)
			fallback = status_texts[i].text;
	}
	return fallback;
}
