/* mail_params.c - BODY=, RET= and NOTIFY= values and names (see mail_params.h). */
#include "config.h"

#include <string.h>

#include "mail_params.h"

static const char *const body_names[] = {
	[MAIL_BODY_7BIT] = "7BIT",
	[MAIL_BODY_8BITMIME] = "8BITMIME",
};

static const char *const ret_names[] = {
	[MAIL_RET_FULL] = "FULL",
	[MAIL_RET_HDRS] = "HDRS",
};

/* In the order mail_notify_text writes them. */
static const struct {
	guint bit;
	const char *name;
} notify_names[] = {
	{ MAIL_NOTIFY_NEVER, "NEVER" },
	{ MAIL_NOTIFY_SUCCESS, "SUCCESS" },
	{ MAIL_NOTIFY_FAILURE, "FAILURE" },
	{ MAIL_NOTIFY_DELAY, "DELAY" },
};

static gboolean
word_is(const char *p, size_t n, const char *word)
{
	return word != NULL && strlen(word) == n && g_ascii_strncasecmp(p, word, n) == 0;
}

static int
name_index(const char *const *names, size_t count, const char *p, size_t n)
{
	for (size_t i = 0; i < count; i++)
		if (word_is(p, n, names[i]))
			return (int)i;
	return -1;
}

const char *
mail_body_name(int body)
{
	return body > 0 && body < (int)G_N_ELEMENTS(body_names) ? body_names[body] : NULL;
}

const char *
mail_ret_name(int ret)
{
	return ret > 0 && ret < (int)G_N_ELEMENTS(ret_names) ? ret_names[ret] : NULL;
}

gboolean
mail_body_parse(const char *p, size_t n, MailBody *out)
{
	int i = name_index(body_names, G_N_ELEMENTS(body_names), p, n);

	if (i > 0)
		*out = (MailBody)i;
	return i > 0;
}

gboolean
mail_ret_parse(const char *p, size_t n, MailRet *out)
{
	int i = name_index(ret_names, G_N_ELEMENTS(ret_names), p, n);

	if (i > 0)
		*out = (MailRet)i;
	return i > 0;
}

MailNotifyStatus
mail_notify_parse(const char *p, size_t n, guint *bits)
{
	guint got = 0;
	size_t start = 0;

	for (size_t i = 0; i <= n; i++) {
		guint bit = 0;

		if (i < n && p[i] != ',')
			continue;
		for (size_t k = 0; k < G_N_ELEMENTS(notify_names) && !bit; k++)
			if (word_is(p + start, i - start, notify_names[k].name))
				bit = notify_names[k].bit;
		if (!bit)
			return MAIL_NOTIFY_BAD_WORD;
		got |= bit;
		start = i + 1;
	}
	if ((got & MAIL_NOTIFY_NEVER) && got != MAIL_NOTIFY_NEVER)
		return MAIL_NOTIFY_NEVER_MIXED;
	*bits = got;
	return MAIL_NOTIFY_OK;
}

char *
mail_notify_text(guint bits)
{
	GString *s;

	if (bits == 0)
		return NULL;
	if (bits & MAIL_NOTIFY_NEVER)
		return g_strdup("NEVER");
	s = g_string_new(NULL);
	for (size_t k = 1; k < G_N_ELEMENTS(notify_names); k++)
		if (bits & notify_names[k].bit)
			g_string_append_printf(s, "%s%s", s->len ? "," : "", notify_names[k].name);
	return g_string_free(s, FALSE);
}
