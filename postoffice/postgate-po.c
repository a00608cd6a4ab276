/* postgate-po.c - the reference legacy postoffice, as a command.
 *
 * Owns: the command line of postgate-po (docs/postgate-po.1) and the text it
 * prints.  The postoffice itself lives in po_store.c, the bundle format in
 * bundle.c.  Exit codes come from sysexits.h.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <openssl/evp.h>

#include "address.h"
#include "bundle.h"
#include "codepage.h"
#include "keyfile.h"
#include "pg_log.h"
#include "po_store.h"
#include "sync_xml.h"

static const char usage_text[] =
    "usage: postgate-po -d DIR COMMAND [OPTIONS]\n"
    "       postgate-po dump BUNDLE [--key-file F]\n"
    "\n"
    "commands:\n"
    "  init --net NET --po PO --codepage CP --key-file F [--gateway NET/PO]\n"
    "  adduser MAILBOX --name \"Full Name\"\n"
    "  setname MAILBOX --name \"Full Name\"\n"
    "  deluser MAILBOX\n"
    "  users\n"
    "  send --from MAILBOX --to ADDR[,ADDR] [--cc ADDR,...] --subject S\n"
    "       [--body-file F] [--attach F]... [--receipt] [--no-ndr]\n"
    "  deliver [--ignore-responsibility]\n"
    "  list\n"
    "  show MAILBOX [--extract DIR]\n"
    "  status\n"
    "  export-dir [-o FILE | --send]\n"
    "  import-gal FILE\n"
    "  gal\n"
    "  dump BUNDLE [--key-file F]\n"
    "\n"
    "ADDR is NET/PO/MAILBOX or SMTP:user@domain.  See postgate-po(1).\n";

static int
usage(const char *why)
{
	if (why)
		fprintf(stderr, "postgate-po: %s\n", why);
	fputs(usage_text, stderr);
	return EX_USAGE;
}

static int
exit_code(const GError *e)
{
	if (e->domain == PO_ERROR) {
		switch (e->code) {
		case PO_ERROR_USAGE: return EX_USAGE;
		case PO_ERROR_NOUSER: return EX_NOUSER;
		case PO_ERROR_STATE: return EX_NOINPUT;
		case PO_ERROR_DATA: return EX_DATAERR;
		default: return EX_IOERR;
		}
	}
	if (e->domain == ADDR_ERROR || e->domain == MSG_ERROR || e->domain == G_CONVERT_ERROR)
		return EX_DATAERR;
	if (e->domain == G_FILE_ERROR)
		return e->code == G_FILE_ERROR_NOENT || e->code == G_FILE_ERROR_ACCES ?
		    EX_NOINPUT : EX_IOERR;
	if (e->domain == KEYFILE_ERROR)
		return e->code == KEYFILE_ERROR_CREATE ? EX_CANTCREAT : EX_NOINPUT;
	if (e->domain == BUNDLE_ERROR)
		return e->code == BUNDLE_ERROR_IO ? EX_NOINPUT : EX_DATAERR;
	if (e->domain == SYNC_ERROR)
		return e->code == SYNC_ERROR_IO ? EX_IOERR : EX_DATAERR;
	return EX_SOFTWARE;
}

static int
fail(GError *e)
{
	int code = exit_code(e);

	fprintf(stderr, "postgate-po: %s\n", e->message);
	g_error_free(e);
	return code;
}

/* Parse the options of one command; leaves positional arguments in argv.
 * Every text argument is taken as UTF-8 whatever the locale (SPEC 4), so
 * options are read as bytes (G_OPTION_ARG_FILENAME) and checked here. */
static gboolean
parse_options(const char *command, GOptionEntry *entries, int *argc, char ***argv)
{
	char *param = g_strdup_printf("%s", command);
	GOptionContext *ctx = g_option_context_new(param);
	GError *e = NULL;
	gboolean ok;

	g_option_context_add_main_entries(ctx, entries, NULL);
	g_option_context_set_help_enabled(ctx, TRUE);
	ok = g_option_context_parse(ctx, argc, argv, &e);
	for (int i = 0; ok && i < *argc; i++)
		if (!g_utf8_validate((*argv)[i], -1, NULL))
			g_set_error(&e, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "argument %d is not UTF-8", i);
	ok = ok && !e;
	if (!ok) {
		fprintf(stderr, "postgate-po %s: %s\n", command, e->message);
		g_error_free(e);
	}
	g_option_context_free(ctx);
	g_free(param);
	return ok;
}

/* Read a file of at most max bytes, refusing a larger one before reading. */
static gboolean
read_file(const char *path, gsize max, char **data, gsize *len, GError **error)
{
	GStatBuf st;

	if (g_stat(path, &st) != 0) {
		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno), "%s: %s", path,
		    g_strerror(errno));
		return FALSE;
	}
	if ((guint64)st.st_size > max) {
		g_set_error(error, MSG_ERROR, MSG_ERROR_LIMIT, "%s is %lld bytes, over the "
		    "limit of %zu", path, (long long)st.st_size, (size_t)max);
		return FALSE;
	}
	return g_file_get_contents(path, data, len, error);
}

static char *
to_utf8(const char *codepage, const char *text)
{
	char *u = cp_to_utf8(codepage, text, strlen(text), NULL);
	return u ? u : g_strdup("?");
}

/* ---- commands ------------------------------------------------------------ */

static int
cmd_init(const char *dir, int argc, char **argv)
{
	char *net = NULL, *po = NULL, *cp = NULL, *key = NULL, *gw = NULL;
	GOptionEntry entries[] = {
		{ "net", 0, 0, G_OPTION_ARG_FILENAME, &net, "network name", "NET" },
		{ "po", 0, 0, G_OPTION_ARG_FILENAME, &po, "postoffice name", "PO" },
		{ "codepage", 0, 0, G_OPTION_ARG_FILENAME, &cp, "codepage of the users' text", "CP" },
		{ "key-file", 0, 0, G_OPTION_ARG_FILENAME, &key, "bundle key (created if missing)", "F" },
		{ "gateway", 0, 0, G_OPTION_ARG_FILENAME, &gw, "gateway postoffice (default NET/GW)", "NET/PO" },
		G_OPTION_ENTRY_NULL,
	};
	GError *e = NULL;
	int rc = EX_OK;

	if (!parse_options("init", entries, &argc, &argv))
		return EX_USAGE;
	if (!net || !po || !cp || !key || argc != 1)
		rc = usage("init needs --net, --po, --codepage and --key-file");
	else if (!po_init(dir, net, po, cp, key, gw, &e))
		rc = fail(e);
	else {
		char *n = g_ascii_strup(net, -1), *p = g_ascii_strup(po, -1);
		printf("initialised postoffice %s/%s in %s\n", n, p, dir);
		g_free(n);
		g_free(p);
	}
	g_free(net);
	g_free(po);
	g_free(cp);
	g_free(key);
	g_free(gw);
	return rc;
}

/* adduser, or with rename setname: the same arguments. */
static int
cmd_adduser(PoStore *s, int argc, char **argv, gboolean rename)
{
	char *name = NULL;
	GOptionEntry entries[] = {
		{ "name", 0, 0, G_OPTION_ARG_FILENAME, &name, "full name", "NAME" },
		G_OPTION_ENTRY_NULL,
	};
	GError *e = NULL;
	int rc = EX_OK;

	if (!parse_options(rename ? "setname MAILBOX" : "adduser MAILBOX", entries, &argc, &argv))
		return EX_USAGE;
	if (argc != 2 || !name)
		rc = usage(rename ? "setname needs MAILBOX and --name" :
		    "adduser needs MAILBOX and --name");
	else if (!(rename ? po_user_rename : po_user_add)(s, argv[1], name, &e))
		rc = fail(e);
	g_free(name);
	return rc;
}

static int
cmd_deluser(PoStore *s, int argc, char **argv)
{
	GError *e = NULL;

	if (argc != 2)
		return usage("deluser needs MAILBOX");
	return po_user_del(s, argv[1], &e) ? EX_OK : fail(e);
}

static int
cmd_users(PoStore *s)
{
	GError *e = NULL;
	GPtrArray *u = po_users(s, &e);

	if (!u)
		return fail(e);
	for (guint i = 0; i < u->len; i++) {
		PoUser *x = u->pdata[i];
		printf("%s/%s %s\n", po_name(s), x->mailbox, x->name);
	}
	g_ptr_array_unref(u);
	return EX_OK;
}

/* Print the lines a listing produced, or fail with its error. */
static int
print_lines(GPtrArray *lines, GError *e)
{
	if (!lines)
		return fail(e);
	for (guint i = 0; i < lines->len; i++)
		printf("%s\n", (char *)lines->pdata[i]);
	g_ptr_array_unref(lines);
	return EX_OK;
}

static int
cmd_list(PoStore *s)
{
	GError *e = NULL;
	GPtrArray *a = po_mailbox_counts(s, &e);

	return print_lines(a, e);
}

/* Add each comma-separated address in list as a To/Cc party and recipient. */
static gboolean
add_addresses(PoStore *s, LegacyMessage *m, GPtrArray *display, const char *list,
    GError **error)
{
	char **parts = g_strsplit(list, ",", -1);
	char net[ADDR_PART_MAX + 1], po[ADDR_PART_MAX + 1];
	gboolean ok = TRUE;

	addr_parse_po(po_name(s), strlen(po_name(s)), net, po, NULL);
	for (char **p = parts; ok && *p; p++) {
		PgAddr a;
		char *canon, *name = NULL, *lname;
		if (!addr_parse(*p, strlen(*p), &a, error)) {
			ok = FALSE;
			break;
		}
		canon = addr_format(&a);
		if (addr_same_po(&a, net, po))
			name = po_user_name(s, a.mailbox);
		lname = cp_from_utf8(po_codepage(s), name ? name : "", name ? strlen(name) : 0,
		    NULL, NULL);
		msg_add_party(display, canon, lname ? lname : "");
		/* One envelope recipient per address, however often it is listed. */
		gboolean dup = FALSE;
		for (guint i = 0; i < m->recipients->len; i++)
			dup |= strcmp(((MsgRecipient *)m->recipients->pdata[i])->addr, canon) == 0;
		if (!dup)
			msg_add_recipient(m, canon, lname ? lname : "", TRUE);
		g_free(canon);
		g_free(name);
		g_free(lname);
	}
	g_strfreev(parts);
	return ok;
}

static int
cmd_send(PoStore *s, int argc, char **argv)
{
	char *from = NULL, *to = NULL, *cc = NULL, *subject = NULL, *body_file = NULL;
	char **attach = NULL;
	gboolean receipt = FALSE, no_ndr = FALSE;
	GOptionEntry entries[] = {
		{ "from", 0, 0, G_OPTION_ARG_FILENAME, &from, "sending mailbox", "MAILBOX" },
		{ "to", 0, 0, G_OPTION_ARG_FILENAME, &to, "recipients", "ADDR[,ADDR]" },
		{ "cc", 0, 0, G_OPTION_ARG_FILENAME, &cc, "copy recipients", "ADDR[,ADDR]" },
		{ "subject", 0, 0, G_OPTION_ARG_FILENAME, &subject, "subject (UTF-8)", "S" },
		{ "body-file", 0, 0, G_OPTION_ARG_FILENAME, &body_file, "body text (UTF-8)", "F" },
		{ "attach", 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &attach, "attach a file", "F" },
		{ "receipt", 0, 0, G_OPTION_ARG_NONE, &receipt, "ask for delivery receipts", NULL },
		{ "no-ndr", 0, 0, G_OPTION_ARG_NONE, &no_ndr, "ask for no non-delivery report",
		    NULL },
		G_OPTION_ENTRY_NULL,
	};
	LegacyMessage *m = NULL;
	GError *e = NULL;
	char mb[ADDR_PART_MAX + 1], *fname = NULL, *bundle = NULL;
	char *text = NULL;
	gsize tlen = 0;
	size_t clen = 0;
	int rc = EX_OK;
	gint64 now = g_get_real_time() / G_USEC_PER_SEC;

	if (!parse_options("send", entries, &argc, &argv))
		return EX_USAGE;
	if (!from || !to || !subject || argc != 1) {
		rc = usage("send needs --from, --to and --subject");
		goto out;
	}
	m = msg_new();
	if (!addr_parse_part(from, strlen(from), "mailbox", mb, &e))
		goto error;
	fname = po_user_name(s, mb);
	if (!fname) {
		g_set_error(&e, PO_ERROR, PO_ERROR_NOUSER, "no mailbox %s at %s", mb, po_name(s));
		goto error;
	}
	m->id = msg_new_id(po_name(s));
	m->submit_time = m->date = now;
	m->requests = (receipt ? MSG_REQ_RECEIPT : 0) | (no_ndr ? MSG_REQ_NO_NDR : 0);
	m->originator.addr = g_strdup_printf("%s/%s", po_name(s), mb);
	m->originator.name = cp_from_utf8(po_codepage(s), fname, strlen(fname), NULL, NULL);
	if (!m->originator.name)
		m->originator.name = g_strdup("");
	m->from.addr = g_strdup(m->originator.addr);
	m->from.name = g_strdup(m->originator.name);
	m->codepage = g_strdup(po_codepage(s));
	msg_add_hop(m, po_name(s), now);
	if (!add_addresses(s, m, m->to, to, &e) || (cc && !add_addresses(s, m, m->cc, cc, &e)))
		goto error;
	m->subject = cp_from_utf8(po_codepage(s), subject, strlen(subject), &clen, &e);
	if (!m->subject)
		goto error;
	if (body_file) {
		if (!read_file(body_file, MSG_MAX_SIZE, &text, &tlen, &e))
			goto error;
		char *cp = cp_from_utf8(po_codepage(s), text, tlen, &clen, &e);
		if (!cp) {
			g_prefix_error(&e, "%s: ", body_file);
			goto error;
		}
		m->body = g_bytes_new_take(cp, clen);
	} else {
		m->body = g_bytes_new("", 0);
	}
	for (char **a = attach; a && *a; a++) {
		char *data = NULL, *base = g_path_get_basename(*a), *lbase;
		gsize n = 0;
		GBytes *bytes;
		if (!read_file(*a, MSG_MAX_SIZE, &data, &n, &e)) {
			g_free(base);
			goto error;
		}
		lbase = cp_from_utf8(po_codepage(s), base, strlen(base), NULL, NULL);
		bytes = g_bytes_new_take(data, n);
		msg_add_attachment(m, lbase ? lbase : base, bytes);
		g_bytes_unref(bytes);
		g_free(lbase);
		g_free(base);
	}
	if (!po_send(s, m, &bundle, &e))
		goto error;
	printf("sent %s%s%s\n", m->id, bundle ? "; bundle for the gateway: out/" : "",
	    bundle ? bundle : "");
	goto out;
error:
	rc = fail(e);
out:
	msg_free(m);
	g_free(from);
	g_free(to);
	g_free(cc);
	g_free(subject);
	g_free(body_file);
	g_strfreev(attach);
	g_free(fname);
	g_free(bundle);
	g_free(text);
	return rc;
}

static int
cmd_deliver(PoStore *s, int argc, char **argv)
{
	gboolean ignore = FALSE;
	GOptionEntry entries[] = {
		{ "ignore-responsibility", 0, 0, G_OPTION_ARG_NONE, &ignore,
		  "deliver to every local name, like an old postoffice (tests only)", NULL },
		G_OPTION_ENTRY_NULL,
	};
	PoDeliverStats st;
	GError *e = NULL;

	if (!parse_options("deliver", entries, &argc, &argv))
		return EX_USAGE;
	if (argc != 1)
		return usage("deliver takes no arguments");
	if (!po_deliver(s, ignore, &st, &e))
		return fail(e);
	printf("deliver: %u bundles applied, %u duplicates dropped, %u refused (in bad/), "
	    "%u mailbox copies, %u reports\n", st.bundles_applied, st.bundles_duplicate,
	    st.bundles_refused, st.messages_delivered, st.reports_made);
	if (st.bundles_failed > 0) {
		fprintf(stderr, "postgate-po: %u bundles could not be read and stay in in/\n",
		    st.bundles_failed);
		return EX_IOERR;
	}
	return st.bundles_refused > 0 ? EX_DATAERR : EX_OK;
}

static void
print_party(const char *label, const char *codepage, const MsgParty *p)
{
	char *name = to_utf8(codepage, p->name);

	if (*name)
		printf("%-12s %s <%s>\n", label, name, p->addr);
	else
		printf("%-12s %s\n", label, p->addr);
	g_free(name);
}

static char *
format_time(gint64 t)
{
	GDateTime *dt = g_date_time_new_from_unix_utc(t);
	char *s = dt ? g_date_time_format(dt, "%Y-%m-%d %H:%M:%S UTC") : g_strdup("?");

	if (dt)
		g_date_time_unref(dt);
	return s;
}

static void
sha256_hex(GBytes *data, char out[65])
{
	unsigned char md[32];
	unsigned int n = 0;
	gsize len;
	const void *d = g_bytes_get_data(data, &len);

	EVP_Digest(d, len, md, &n, EVP_sha256(), NULL);
	for (unsigned i = 0; i < 32; i++)
		g_snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Print one message readably, in UTF-8 whatever its codepage. */
static void
print_message(const LegacyMessage *m, const char *here)
{
	char *t, *subject = to_utf8(m->codepage, m->subject);
	static const char *prio[] = { "low", "normal", "high" };

	printf("%-12s %s\n", "Id:", m->id);
	printf("%-12s %s%s\n", "Class:", msg_class_name(m->class),
	    m->no_report ? " (no report may be made about it)" : "");
	if (m->about_id)
		printf("%-12s %s\n", "About:", m->about_id);
	print_party("Originator:", m->codepage, &m->originator);
	if (m->from.addr)
		print_party("From:", m->codepage, &m->from);
	for (guint i = 0; i < m->to->len; i++)
		print_party("To:", m->codepage, m->to->pdata[i]);
	for (guint i = 0; i < m->cc->len; i++)
		print_party("Cc:", m->codepage, m->cc->pdata[i]);
	printf("%-12s %s\n", "Subject:", subject);
	t = format_time(m->date);
	printf("%-12s %s\n", "Date:", t);
	g_free(t);
	printf("%-12s %s\n", "Priority:", m->priority <= 2 ? prio[m->priority] : "?");
	printf("%-12s %s\n", "Codepage:", m->codepage);
	if (m->requests)
		printf("%-12s%s%s\n", "Requests:", m->requests & MSG_REQ_RECEIPT ? " receipt" : "",
		    m->requests & MSG_REQ_NO_NDR ? " no-non-delivery-report" : "");
	for (guint i = 0; i < m->recipients->len; i++) {
		MsgRecipient *r = m->recipients->pdata[i];
		printf("%-12s %s%s\n", "Envelope:", r->addr,
		    r->responsible ? " (responsible)" : " (listed for display)");
	}
	for (guint i = 0; i < m->hops->len; i++) {
		MsgHop *h = m->hops->pdata[i];
		t = format_time(h->time);
		printf("%-12s %s at %s\n", "Hop:", h->node, t);
		g_free(t);
	}
	for (guint i = 0; i < m->report_items->len; i++) {
		MsgReportItem *r = m->report_items->pdata[i];
		char *diag = to_utf8(m->codepage, r->diagnostic);
		printf("%-12s %s: %s%s%s%s%s\n", "Report:", r->recipient,
		    msg_report_status_name(r->status),
		    r->reason ? ", " : "", r->reason ? msg_reason_name(r->reason) : "",
		    *diag ? ": " : "", diag);
		g_free(diag);
	}
	for (guint i = 0; i < m->attachments->len; i++) {
		MsgAttachment *a = m->attachments->pdata[i];
		char *name = to_utf8(m->codepage, a->name), hex[65];
		sha256_hex(a->data, hex);
		printf("%-12s %s (%zu bytes, sha256 %s)\n", "Attachment:", name,
		    (size_t)g_bytes_get_size(a->data), hex);
		g_free(name);
	}
	if (m->body && g_bytes_get_size(m->body) > 0) {
		gsize n;
		const char *d = g_bytes_get_data(m->body, &n);
		char *body = cp_to_utf8(m->codepage, d, n, NULL);
		printf("\n%s%s", body ? body : "", body && n && d[n - 1] != '\n' ? "\n" : "");
		g_free(body);
	}
	g_free(subject);
	(void)here;
}

/* The longest name a file system takes (NAME_MAX of ext4, XFS, Btrfs, tmpfs). */
#define PO_EXTRACT_NAME_MAX 255
/* The most of a name's end that is kept as its extension when it is shortened. */
#define PO_EXTRACT_EXT_MAX 16

/* The file name for attachment i (from 0) of message number k: "K-NAME", or,
 * when that would be longer than PO_EXTRACT_NAME_MAX bytes, NAME cut between
 * two characters and "~I" (I = i + 1) put before its extension.  name is
 * valid UTF-8; so is the result. */
static char *
extract_name(guint k, guint i, const char *name)
{
	char *file = g_strdup_printf("%u-%s", k, name);
	const char *dot = strrchr(name, '.');
	size_t len = strlen(name), ext_len, room, cut;
	char tag[16];

	if (strlen(file) <= PO_EXTRACT_NAME_MAX)
		return file;
	g_free(file);
	ext_len = dot && dot != name && len - (size_t)(dot - name) <= PO_EXTRACT_EXT_MAX
	    ? len - (size_t)(dot - name) : 0;
	g_snprintf(tag, sizeof tag, "~%u", i + 1);
	file = g_strdup_printf("%u-", k);
	room = PO_EXTRACT_NAME_MAX - strlen(file) - strlen(tag) - ext_len;
	/* back to the start of a character: never cut a UTF-8 sequence */
	cut = MIN(room, len - ext_len);
	while (cut > 0 && ((unsigned char)name[cut] & 0xc0) == 0x80)
		cut--;
	{
		char *shorter = g_strdup_printf("%s%.*s%s%s", file, (int)cut, name, tag,
		    name + len - ext_len);
		g_free(file);
		return shorter;
	}
}

/* Write the attachments of message number k into dir, never outside it.
 * An attachment that cannot be written is reported and the others are
 * still written; the first error is returned. */
static gboolean
extract(const LegacyMessage *m, guint k, const char *dir, GError **error)
{
	gboolean all = TRUE;

	for (guint i = 0; i < m->attachments->len; i++) {
		MsgAttachment *a = m->attachments->pdata[i];
		char *name = to_utf8(m->codepage, a->name);
		char *file = extract_name(k, i, name);
		char *path;
		gsize n;
		const void *d = g_bytes_get_data(a->data, &n);
		int fd;
		gboolean ok;
		GError *e = NULL;
		if (!msg_attachment_name_safe(file, strlen(file))) {
			g_set_error(&e, PO_ERROR, PO_ERROR_DATA, "message %u, attachment %u: "
			    "unsafe attachment name, not extracted", k, i + 1);
			goto next;
		}
		path = g_build_filename(dir, file, NULL);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
		ok = fd >= 0;
		for (gsize done = 0; ok && done < n;) {
			ssize_t w = write(fd, (const char *)d + done, n - done);
			if (w < 0 && errno == EINTR)
				continue;
			ok = w > 0;
			done += ok ? (gsize)w : 0;
		}
		if (fd >= 0 && close(fd) != 0)
			ok = FALSE;
		if (!ok) {
			int err = errno;
			if (fd >= 0)
				unlink(path);
			g_set_error(&e, PO_ERROR, PO_ERROR_IO, "cannot write %s: %s", path,
			    g_strerror(err));
		} else
			printf("extracted %s\n", path);
		g_free(path);
next:
		g_free(name);
		g_free(file);
		if (e) {
			fflush(stdout);
			fprintf(stderr, "postgate-po: %s\n", e->message);
			if (all)
				g_propagate_error(error, e);
			else
				g_error_free(e);
			all = FALSE;
		}
	}
	return all;
}

static int
cmd_show(PoStore *s, int argc, char **argv)
{
	char *dir = NULL;
	GOptionEntry entries[] = {
		{ "extract", 0, 0, G_OPTION_ARG_FILENAME, &dir,
		  "write attachments into DIR as N-NAME", "DIR" },
		G_OPTION_ENTRY_NULL,
	};
	GError *e = NULL;
	GPtrArray *msgs;
	int rc = EX_OK;

	if (!parse_options("show MAILBOX", entries, &argc, &argv))
		return EX_USAGE;
	if (argc != 2) {
		g_free(dir);
		return usage("show needs MAILBOX");
	}
	msgs = po_mailbox(s, argv[1], &e);
	if (!msgs) {
		g_free(dir);
		return fail(e);
	}
	{
		char *mb = g_ascii_strup(argv[1], -1);
		printf("mailbox %s/%s: %u message%s\n", po_name(s), g_strstrip(mb), msgs->len,
		    msgs->len == 1 ? "" : "s");
		g_free(mb);
	}
	for (guint i = 0; i < msgs->len; i++) {
		printf("\n--- message %u ---\n", i + 1);
		print_message(msgs->pdata[i], po_name(s));
		/* what cannot be extracted stops nothing: the next messages are
		 * still shown and extracted, the exit code says the first failure */
		if (dir && !extract(msgs->pdata[i], i + 1, dir, &e)) {
			if (rc == EX_OK)
				rc = exit_code(e);
			g_clear_error(&e);
		}
	}
	g_ptr_array_unref(msgs);
	g_free(dir);
	return rc;
}

static int
cmd_status(PoStore *s)
{
	GError *e = NULL;
	char *text = po_status(s, &e);

	if (!text)
		return fail(e);
	fputs(text, stdout);
	g_free(text);
	return EX_OK;
}

/* This postoffice's users as a postoffice sync document (docs/sync-format.md);
 * POSTMASTER stays home: every postoffice has one. */
static SyncDoc *
users_doc(PoStore *s, GError **error)
{
	GPtrArray *users = po_users(s, error);
	SyncDoc *doc;

	if (!users)
		return NULL;
	doc = sync_doc_new(SYNC_POSTOFFICE);
	doc->postoffice = g_strdup(po_name(s));
	for (guint i = 0; i < users->len; i++) {
		PoUser *u = users->pdata[i];
		DirEntry *e;
		if (strcmp(u->mailbox, "POSTMASTER") == 0)
			continue;
		e = dir_entry_new(DIR_MAILBOX);
		e->legacy = g_strdup_printf("%s/%s", po_name(s), u->mailbox);
		e->name = g_strdup(u->name);
		g_ptr_array_add(doc->entries, e);
	}
	g_ptr_array_unref(users);
	return doc;
}

static int
cmd_export_dir(PoStore *s, int argc, char **argv)
{
	char *out = NULL, *bundle = NULL;
	gboolean send = FALSE;
	GOptionEntry entries[] = {
		{ "output", 'o', 0, G_OPTION_ARG_FILENAME, &out, "write FILE (default stdout)", "F" },
		{ "send", 0, 0, G_OPTION_ARG_NONE, &send,
		  "send it to the gateway in a bundle, in out/", NULL },
		G_OPTION_ENTRY_NULL,
	};
	GError *e = NULL;
	SyncDoc *doc;
	int rc = EX_OK;

	if (!parse_options("export-dir", entries, &argc, &argv))
		return EX_USAGE;
	if (argc != 1 || (out && send)) {
		g_free(out);
		return usage("export-dir takes -o FILE or --send");
	}
	doc = users_doc(s, &e);
	if (!doc)
		rc = fail(e);
	else if (send) {
		GString *xml = g_string_new(NULL);
		GBytes *bytes;
		if (!sync_write(doc, xml, &e)) {
			g_string_free(xml, TRUE);
			rc = fail(e);
		} else {
			bytes = g_string_free_to_bytes(xml);
			if (!po_send_directory(s, bytes, &bundle, &e))
				rc = fail(e);
			else
				printf("directory of %u users sent: out/%s\n", doc->entries->len, bundle);
			g_bytes_unref(bytes);
		}
	} else if (!sync_write_file(doc, out, &e)) {
		rc = fail(e);
	}
	sync_doc_free(doc);
	g_free(out);
	g_free(bundle);
	return rc;
}

static int
cmd_import_gal(PoStore *s, int argc, char **argv)
{
	GError *e = NULL;
	SyncDoc *doc;
	GPtrArray *addrs, *names, *smtps;
	int rc = EX_OK;

	if (argc != 2)
		return usage("import-gal needs FILE");
	doc = sync_read_file(argv[1], &e);
	if (!doc) {
		fprintf(stderr, "%s\n", e->message);
		g_error_free(e);
		return EX_DATAERR;
	}
	if (doc->kind != SYNC_GAL || strcmp(doc->postoffice, po_name(s)) != 0) {
		fprintf(stderr, "%s: not a global address list for %s (a %s file%s%s)\n", argv[1],
		    po_name(s), sync_kind_name(doc->kind), doc->postoffice ? " for " : "",
		    doc->postoffice ? doc->postoffice : "");
		sync_doc_free(doc);
		return EX_DATAERR;
	}
	addrs = g_ptr_array_new();
	names = g_ptr_array_new();
	smtps = g_ptr_array_new();
	for (guint i = 0; i < doc->entries->len; i++) {
		DirEntry *x = doc->entries->pdata[i];
		const char *p = dir_primary(x);
		g_ptr_array_add(addrs, x->legacy);
		g_ptr_array_add(names, x->name ? x->name : (char *)"");
		g_ptr_array_add(smtps, p ? (char *)p : (char *)"");
	}
	if (!po_gal_replace(s, addrs, names, smtps, &e))
		rc = fail(e);
	else
		printf("global address list: %u entries\n", addrs->len);
	g_ptr_array_unref(addrs);
	g_ptr_array_unref(names);
	g_ptr_array_unref(smtps);
	sync_doc_free(doc);
	return rc;
}

static int
cmd_gal(PoStore *s)
{
	GError *e = NULL;
	GPtrArray *a = po_gal(s, &e);

	return print_lines(a, e);
}

static int
cmd_dump(int argc, char **argv)
{
	char *key_file = NULL, *t;
	GOptionEntry entries[] = {
		{ "key-file", 0, 0, G_OPTION_ARG_FILENAME, &key_file,
		  "verify the HMAC with this key", "F" },
		G_OPTION_ENTRY_NULL,
	};
	GBytes *key = NULL;
	GError *e = NULL;
	Bundle *b;
	int rc = EX_OK;

	if (!parse_options("dump BUNDLE", entries, &argc, &argv))
		return EX_USAGE;
	if (argc != 2) {
		g_free(key_file);
		return usage("dump needs BUNDLE");
	}
	if (key_file && !(key = keyfile_load(key_file, &e))) {
		g_free(key_file);
		return fail(e);
	}
	b = bundle_read_file(argv[1], key, &e);
	if (!b) {
		fprintf(stderr, "postgate-po: %s: %s\n", argv[1], e->message);
		rc = exit_code(e);
		g_error_free(e);
		goto out;
	}
	printf("bundle %s\n", argv[1]);
	printf("%-12s %d\n", "version:", BUNDLE_VERSION);
	printf("%-12s %s\n", "source:", b->source);
	printf("%-12s %s\n", "dest:", b->dest);
	printf("%-12s %" G_GUINT64_FORMAT "\n", "sequence:", b->seq);
	t = format_time(b->created);
	printf("%-12s %s\n", "created:", t);
	g_free(t);
	printf("%-12s %u\n", "entries:", b->entries->len);
	printf("%-12s %" G_GUINT64_FORMAT " bytes, %" G_GUINT64_FORMAT " compressed\n",
	    "payload:", b->payload_len, b->compressed_len);
	printf("%-12s %08x (verified)\n", "crc32:", b->crc);
	printf("%-12s %s\n", "hmac:", b->hmac_checked ? "verified with the key" :
	    "NOT verified (give --key-file)");
	for (guint i = 0; i < b->entries->len; i++) {
		BundleEntry *en = b->entries->pdata[i];
		printf("\n=== entry %u: %s ===\n", i + 1,
		    en->kind == BUNDLE_ENTRY_MESSAGE ? "message" : "directory");
		if (en->kind == BUNDLE_ENTRY_MESSAGE) {
			LegacyMessage *m = bundle_message(b, i, NULL);
			if (m)
				print_message(m, NULL);
			msg_free(m);
		} else {
			gsize n;
			const char *d = g_bytes_get_data(en->data, &n);
			printf("%.*s%s", (int)MIN(n, 4096), d, n > 4096 ? "\n[...]\n" : "");
		}
	}
	bundle_free(b);
out:
	if (key)
		g_bytes_unref(key);
	g_free(key_file);
	return rc;
}

int
main(int argc, char **argv)
{
	const char *dir = NULL, *command;
	PoStore *s;
	GError *e = NULL;
	int i = 1, rc;

	g_set_prgname("postgate-po");
	pg_log_init("postgate-po", FALSE);
	/* Mailboxes, ledgers and bundles are private, whatever the umask. */
	umask(077);
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-d") == 0 && i + 1 < argc)
			dir = argv[++i];
		else if (g_str_has_prefix(argv[i], "--dir="))
			dir = argv[i] + 6;
		else if (strcmp(argv[i], "-q") == 0 || strcmp(argv[i], "--quiet") == 0)
			pg_log_set_threshold(PG_LOG_WARNING);
		else if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--verbose") == 0)
			pg_log_set_threshold(PG_LOG_DEBUG);
		else if (strcmp(argv[i], "--version") == 0) {
			printf("postgate-po %s\n", PACKAGE_VERSION);
			return EX_OK;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			fputs(usage_text, stdout);
			return EX_OK;
		} else
			return usage("unknown option");
	}
	if (i >= argc)
		return usage("no command given");
	command = argv[i];
	argc -= i;
	argv += i;
	if (strcmp(command, "dump") == 0)
		return cmd_dump(argc, argv);
	if (!dir)
		return usage("-d DIR is needed");
	if (strcmp(command, "init") == 0)
		return cmd_init(dir, argc, argv);
	if (!g_strv_contains((const char *[]){ "adduser", "setname", "deluser", "users", "send", "deliver",
	    "list", "show", "status", "export-dir", "import-gal", "gal", NULL }, command))
		return usage("unknown command");
	s = po_open(dir, &e);
	if (!s)
		return fail(e);
	if (strcmp(command, "adduser") == 0 || strcmp(command, "setname") == 0)
		rc = cmd_adduser(s, argc, argv, strcmp(command, "setname") == 0);
	else if (strcmp(command, "deluser") == 0)
		rc = cmd_deluser(s, argc, argv);
	else if (strcmp(command, "users") == 0)
		rc = argc == 1 ? cmd_users(s) : usage("users takes no arguments");
	else if (strcmp(command, "send") == 0)
		rc = cmd_send(s, argc, argv);
	else if (strcmp(command, "deliver") == 0)
		rc = cmd_deliver(s, argc, argv);
	else if (strcmp(command, "list") == 0)
		rc = argc == 1 ? cmd_list(s) : usage("list takes no arguments");
	else if (strcmp(command, "show") == 0)
		rc = cmd_show(s, argc, argv);
	else if (strcmp(command, "export-dir") == 0)
		rc = cmd_export_dir(s, argc, argv);
	else if (strcmp(command, "import-gal") == 0)
		rc = cmd_import_gal(s, argc, argv);
	else if (strcmp(command, "gal") == 0)
		rc = argc == 1 ? cmd_gal(s) : usage("gal takes no arguments");
	else
		rc = argc == 1 ? cmd_status(s) : usage("status takes no arguments");
	po_close(s);
	return rc;
}
