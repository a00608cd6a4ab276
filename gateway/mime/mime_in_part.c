/* mime_in_part.c - the parts of an Internet message into a legacy message's
 * text and attachments (MIME -> legacy; see mime_in.h).
 *
 * Owns: the walk over the MIME tree (RFC 2046) to MIME_IN_MAX_DEPTH
 * levels, a deeper subtree kept as one attachment; one text body from the
 * text/plain and text/html parts (multipart/alternative gives its best text,
 * multipart/related its root, RFC 2387); every other part a named attachment
 * holding its decoded bytes, message/rfc822 kept whole as NAME.eml; names
 * made safe and unique in the codepage; base64 decoded leniently (RFC 2045
 * 6.8), what could not be decoded said at the end of the legacy text,
 * naming the part; the size and attachment limits of message.h.
 * Never: header fields (mime_in_header.c), parameters (params.c), charsets
 * (charset.c), HTML (html_text.c).
 */
#include "config.h"

#include <string.h>

#include <gmime/gmime.h>

#include "codepage.h"
#include "pg_limits.h"
#include "mime/mime_int.h"
#include "pg_log.h"

/* ---- bytes of parts, lenient base64 ------------------------------------------------ */

/* Take the bytes of a memory stream (the stream must be unreffed after). */
static GByteArray *
stream_bytes(GMimeStream *s)
{
	g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(s), FALSE);
	return g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(s));
}

/* The decoded content of a leaf part. */
static GByteArray *
part_bytes(GMimePart *part)
{
	GMimeDataWrapper *w = g_mime_part_get_content(part);
	GMimeStream *mem = g_mime_stream_mem_new();
	GByteArray *ba;

	if (w)
		g_mime_data_wrapper_write_to_stream(w, mem);
	ba = stream_bytes(mem);
	g_object_unref(mem);
	return ba;
}

/* What a damaged base64 part lost, for the log and for the legacy text. */
typedef struct {
	gsize skipped;          /* characters outside the alphabet */
	gsize mid_padding;      /* '=' padding with more base64 after it */
	gboolean cut;           /* a last group of one character: 6 bits */
} B64Damage;

/* Base64 as lenient as it can be (RFC 2045 6.8): characters outside the
 * alphabet are skipped and counted, '=' padding ends a group and decoding
 * goes on after it (encodings run together), a cut last group gives the
 * whole bytes it holds. */
static GByteArray *
base64_lenient(const guint8 *s, gsize len, B64Damage *d)
{
	GByteArray *out = g_byte_array_sized_new((guint)(len / 4 * 3 + 3));
	guint32 acc = 0;
	int n = 0;                      /* characters in the current group */
	gboolean padded = FALSE;        /* '=' seen since the last character */

	memset(d, 0, sizeof *d);
	for (gsize i = 0; i < len; i++) {
		int v = mi_b64_value((char)s[i]);
		if (v >= 0) {
			if (padded)
				d->mid_padding++;
			padded = FALSE;
			acc = (acc << 6) | (guint32)v;
			if (++n == 4) {
				guint8 b[3] = { (guint8)(acc >> 16), (guint8)(acc >> 8),
				    (guint8)acc };
				g_byte_array_append(out, b, 3);
				acc = 0;
				n = 0;
			}
		} else if (s[i] == '=') {
			if (n >= 2) {
				guint8 b[2] = { (guint8)(acc >> (n == 2 ? 4 : 10)),
				    (guint8)(acc >> 2) };
				g_byte_array_append(out, b, (guint)(n - 1));
			} else if (n == 1)
				d->cut = TRUE;
			acc = 0;
			n = 0;
			padded = TRUE;
		} else if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') {
			d->skipped++;
		}
	}
	if (n >= 2) {
		guint8 b[2] = { (guint8)(acc >> (n == 2 ? 4 : 10)), (guint8)(acc >> 2) };
		g_byte_array_append(out, b, (guint)(n - 1));
	} else if (n == 1)
		d->cut = TRUE;
	return out;
}

/* The content of a base64 leaf part, decoded leniently, what went wrong
 * noted; NULL when the part is not base64. */
static GByteArray *
base64_part(MiCtx *c, GMimePart *part, const char *path, B64Damage *d)
{
	GMimeDataWrapper *w = g_mime_part_get_content(part);
	GMimeStream *raw, *mem;
	GByteArray *ba, *out;

	if (!w || g_mime_data_wrapper_get_encoding(w) != GMIME_CONTENT_ENCODING_BASE64)
		return NULL;
	raw = g_mime_data_wrapper_get_stream(w);
	if (!raw)
		return NULL;
	mem = g_mime_stream_mem_new();
	g_mime_stream_reset(raw);
	g_mime_stream_write_to_stream(raw, mem);
	g_mime_stream_reset(raw);
	ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
	out = base64_lenient(ba->data, ba->len, d);
	g_object_unref(mem);
	if (d->skipped)
		mi_note(c, "part %s: bad base64, %zu characters skipped", mi_label(path),
		    d->skipped);
	if (d->mid_padding)
		mi_note(c, "part %s: base64 padding in the middle, decoded on after it",
		    mi_label(path));
	if (d->cut)
		mi_note(c, "part %s: base64 cut short, its last 6 bits dropped", mi_label(path));
	return out;
}

/* A line at the end of the legacy text about a part whose base64 could not
 * be decoded entirely; what names it (UTF-8). */
static void
say_damage(MiCtx *c, const char *what, gsize kept, const B64Damage *d)
{
	GString *why = g_string_new(NULL);

	if (d->skipped)
		g_string_append_printf(why, "%zu characters that are not base64 skipped",
		    d->skipped);
	if (d->mid_padding)
		g_string_append_printf(why, "%sbase64 padding in the middle", why->len ? "; " : "");
	if (d->cut)
		g_string_append_printf(why, "%sthe last group cut short", why->len ? "; " : "");
	g_string_append_printf(c->damage, "[%s could not be decoded entirely (%s); %s "
	    "holds the %zu bytes that could]\n", what, why->str,
	    kept ? "it" : "so it", kept);
	g_string_free(why, TRUE);
}

/* The bytes of an object as it came (for deep subtrees and messages). */
static GByteArray *
object_bytes(MiCtx *c, GMimeObject *obj)
{
	GMimeStream *mem = g_mime_stream_mem_new();
	GByteArray *ba;

	g_mime_object_write_to_stream(obj, c->format, mem);
	ba = stream_bytes(mem);
	g_object_unref(mem);
	return ba;
}

/* ---- attachments and their names -------------------------------------------------- */

/* Account for n more bytes of content; FALSE (and the error) over MSG_MAX_SIZE. */
static gboolean
add_size(MiCtx *c, guint64 n)
{
	c->size += n;
	if (c->size > MSG_MAX_SIZE)
		return mi_limit(c, "the message's text and attachments come to more than %u bytes "
		    "once decoded, over the legacy message limit (MSG_MAX_SIZE); it cannot be "
		    "delivered to a postoffice", MSG_MAX_SIZE);
	return TRUE;
}

static const struct {
	const char *type;
	const char *ext;
} extensions[] = {
	{ "text/plain", ".txt" }, { "text/html", ".html" }, { "text/csv", ".csv" },
	{ "text/calendar", ".ics" }, { "text/xml", ".xml" }, { "text/rfc822-headers", ".txt" },
	{ "image/png", ".png" }, { "image/jpeg", ".jpg" }, { "image/gif", ".gif" },
	{ "image/bmp", ".bmp" }, { "image/tiff", ".tif" }, { "image/webp", ".webp" },
	{ "image/svg+xml", ".svg" }, { "application/pdf", ".pdf" },
	{ "application/zip", ".zip" }, { "application/gzip", ".gz" },
	{ "application/json", ".json" }, { "application/xml", ".xml" },
	{ "application/msword", ".doc" }, { "application/vnd.ms-excel", ".xls" },
	{ "application/pgp-signature", ".asc" }, { "application/pgp-encrypted", ".asc" },
	{ "application/pkcs7-signature", ".p7s" }, { "application/x-pkcs7-signature", ".p7s" },
	{ "application/pkcs7-mime", ".p7m" }, { "message/rfc822", ".eml" },
	{ "message/global", ".eml" }, { "message/delivery-status", ".txt" },
	{ "message/disposition-notification", ".txt" }, { "audio/mpeg", ".mp3" },
	{ "audio/wav", ".wav" }, { "video/mp4", ".mp4" },
};

static const char *
extension_for(GMimeContentType *ct)
{
	const char *type = ct ? g_mime_content_type_get_media_type(ct) : NULL;
	const char *sub = ct ? g_mime_content_type_get_media_subtype(ct) : NULL;
	char *full;
	const char *ext = ".bin";

	if (!type || !sub)
		return ext;
	if (g_ascii_strcasecmp(type, "multipart") == 0)
		return ".eml";
	full = g_strdup_printf("%s/%s", type, sub);
	for (gsize i = 0; i < G_N_ELEMENTS(extensions); i++)
		if (g_ascii_strcasecmp(full, extensions[i].type) == 0)
			ext = extensions[i].ext;
	g_free(full);
	return ext;
}

/* Where the extension of a name starts (its last '.'), or len when it has none
 * worth keeping. */
static gsize
ext_start(const char *s, gsize len)
{
	for (gsize i = len; i-- > 1;)
		if (s[i] == '.')
			return len - i <= MIME_IN_MAX_EXT_LEN ? i : len;
	return len;
}

/* stem (cut so that the whole fits) + suffix + ext */
static char *
fit_name(const char *stem, gsize stem_len, const char *suffix, const char *ext, gsize ext_len)
{
	gsize room = MSG_MAX_NAME_LEN - strlen(suffix) - ext_len;
	GString *s = g_string_new(NULL);

	g_string_append_len(s, stem, (gssize)MIN(stem_len, room));
	while (s->len > 0 && (s->str[s->len - 1] == ' ' || s->str[s->len - 1] == '.'))
		g_string_truncate(s, s->len - 1);
	g_string_append(s, suffix);
	g_string_append_len(s, ext, (gssize)ext_len);
	return g_string_free(s, FALSE);
}

/* A safe, unique attachment name in the codepage from a UTF-8 suggestion
 * (may be NULL; a file name when is_path: only its last component counts)
 * and the part's type. */
static char *
attachment_name(MiCtx *c, const char *suggested, gboolean is_path, GMimeContentType *ct,
    const char *ext_if_none)
{
	GString *s = g_string_new(NULL);
	char *name, *key;
	gsize e;

	if (suggested && *suggested) {
		char *valid = g_utf8_make_valid(suggested, -1);
		const char *base = valid;
		char *cp;
		gsize n = 0, a = 0;

		/* The last path component, when there is one. */
		for (const char *p = valid; is_path && *p; p++)
			if ((*p == '/' || *p == '\\') && p[1])
				base = p + 1;
		cp = mi_to_cp(c, base, strlen(base), &n);
		for (gsize i = 0; i < n; i++) {
			guchar ch = (guchar)cp[i];
			if (ch < 0x20 || ch == 0x7f || strchr("/\\:*?\"<>|", ch))
				cp[i] = '_';
		}
		while (a < n && (cp[a] == '.' || cp[a] == ' '))
			a++;
		while (n > a && (cp[n - 1] == '.' || cp[n - 1] == ' '))
			n--;
		g_string_append_len(s, cp + a, (gssize)(n - a));
		g_free(cp);
		g_free(valid);
	}
	if (s->len == 0)
		g_string_printf(s, "attachment-%u%s", c->msg->attachments->len + 1,
		    ext_if_none ? ext_if_none : extension_for(ct));
	e = ext_start(s->str, s->len);
	name = s->len > MSG_MAX_NAME_LEN ? fit_name(s->str, e, "", s->str + e, s->len - e) :
	    g_strdup(s->str);
	key = g_ascii_strdown(name, -1);
	for (guint k = 2; g_hash_table_contains(c->names, key); k++) {
		char suffix[32];

		g_snprintf(suffix, sizeof suffix, " (%u)", k);
		g_free(name);
		g_free(key);
		name = fit_name(s->str, e, suffix, s->str + e, s->len - e);
		key = g_ascii_strdown(name, -1);
	}
	g_hash_table_add(c->names, key);
	g_string_free(s, TRUE);
	return name;
}

/* Keep bytes as an attachment named from suggested (UTF-8, may be NULL). */
static gboolean
add_attachment(MiCtx *c, const char *suggested, gboolean is_path, GMimeContentType *ct,
    const char *ext, GByteArray *bytes)
{
	char *name;
	GBytes *b;

	if (c->error)
		return FALSE;
	if (c->msg->attachments->len >= MSG_MAX_ATTACHMENTS)
		return mi_limit(c,
		    "the message has more than %u attachments, over the legacy limit "
		    "(MSG_MAX_ATTACHMENTS)", MSG_MAX_ATTACHMENTS);
	if (!add_size(c, bytes->len))
		return FALSE;
	name = attachment_name(c, suggested, is_path, ct, ext);
	b = g_bytes_new(bytes->data, bytes->len);
	msg_add_attachment(c->msg, name, b);
	g_bytes_unref(b);
	g_free(name);
	return TRUE;
}

/* ---- the walk ------------------------------------------------------------------------ */

void
mi_add_text(MiCtx *c, const char *utf8)
{
	gsize n = strlen(utf8);

	while (n > 0 && (utf8[n - 1] == '\n' || utf8[n - 1] == '\r' || utf8[n - 1] == ' ' ||
	    utf8[n - 1] == '\t'))
		n--;
	if (n == 0)
		return;
	if (c->body->len)
		g_string_append(c->body, "\n\n");
	g_string_append_len(c->body, utf8, (gssize)n);
	add_size(c, n);
}

static gboolean
is_type(GMimeObject *obj, const char *type, const char *sub)
{
	GMimeContentType *ct = g_mime_object_get_content_type(obj);

	return ct && g_mime_content_type_is_type(ct, type, sub);
}

static gboolean
is_attachment(GMimeObject *obj)
{
	GMimeContentDisposition *d = g_mime_object_get_content_disposition(obj);

	return d && g_mime_content_disposition_is_attachment(d);
}

/* Past a quoted-string or a comment at p (RFC 5322 3.2.4, 3.2.2). */

/* A leaf: text for the body, or an attachment. */
static void
leaf(MiCtx *c, GMimePart *part, const char *path, gboolean text_ok)
{
	GMimeObject *obj = GMIME_OBJECT(part);
	gboolean plain = is_type(obj, "text", "plain"), html = is_type(obj, "text", "html");
	B64Damage dmg = { 0 };
	GByteArray *bytes = base64_part(c, part, path, &dmg);
	gboolean damaged = dmg.skipped || dmg.mid_padding || dmg.cut;

	if (!bytes)
		bytes = part_bytes(part);
	if (text_ok && (plain || html) && !is_attachment(obj)) {
		const char *cs = g_mime_object_get_content_type_parameter(obj, "charset");
		char *what = g_strdup_printf("part %s", mi_label(path));
		char *utf8 = mi_to_utf8(c, what, cs, (const char *)bytes->data, bytes->len);

		if (html) {
			char *text = mi_html_to_text(utf8, strlen(utf8));
			g_free(utf8);
			utf8 = text;
		}
		mi_add_text(c, utf8);
		if (damaged) {
			char *t = g_strdup_printf("The text of part %s", mi_label(path));
			say_damage(c, t, bytes->len, &dmg);
			g_free(t);
		}
		g_free(utf8);
		g_free(what);
	} else {
		char *fn = mi_part_filename(c, obj);
		if (add_attachment(c, fn, TRUE, g_mime_object_get_content_type(obj), NULL, bytes) &&
		    damaged) {
			MsgAttachment *a = c->msg->attachments->pdata[c->msg->attachments->len - 1];
			char *name = cp_to_utf8(c->codepage, a->name, strlen(a->name), NULL);
			char *t = g_strdup_printf("The attachment \"%s\"", name ? name : "?");
			say_damage(c, t, bytes->len, &dmg);
			g_free(t);
			g_free(name);
		}
		g_free(fn);
	}
	g_byte_array_unref(bytes);
}

/* message/rfc822: the embedded message, whole, as NAME.eml. */
static void
message_part(MiCtx *c, GMimeMessagePart *mp, const char *path)
{
	GMimeMessage *m = g_mime_message_part_get_message(mp);
	GByteArray *bytes;
	char *subject = NULL;

	if (!m) {
		GByteArray *empty = g_byte_array_new();
		mi_note(c, "part %s: an empty message/rfc822 part", mi_label(path));
		add_attachment(c, NULL, FALSE, NULL, ".eml", empty);
		g_byte_array_unref(empty);
		return;
	}
	bytes = object_bytes(c, GMIME_OBJECT(m));
	subject = mi_header_text(c, mi_find_header(GMIME_OBJECT(m), "Subject"));
	if (subject) {
		char *s = g_strstrip(subject);
		if (*s) {
			char *named = g_strconcat(s, ".eml", NULL);
			g_free(subject);
			subject = named;
		} else {
			g_free(subject);
			subject = NULL;
		}
	}
	add_attachment(c, subject, FALSE, NULL, ".eml", bytes);
	g_free(subject);
	g_byte_array_unref(bytes);
}

static char *
child_path(const char *path, int i)
{
	return *path ? g_strdup_printf("%s.%d", path, i + 1) : g_strdup_printf("%d", i + 1);
}

static const char *
type_text(GMimeObject *obj, char *buf, gsize size)
{
	GMimeContentType *ct = g_mime_object_get_content_type(obj);
	char *mime = ct ? g_mime_content_type_get_mime_type(ct) : NULL;
	char *t = pg_shown(mime, -1, MI_NOTE_QUOTE_MAX, FALSE);

	g_strlcpy(buf, t, size);
	g_free(t);
	g_free(mime);
	return buf;
}

static void
alternative(MiCtx *c, GMimeMultipart *mp, const char *path, int depth, gboolean text_ok)
{
	int n = g_mime_multipart_get_count(mp), best = -1;

	for (int pass = 0; pass < 3 && best < 0; pass++)
		for (int i = 0; i < n && best < 0; i++) {
			GMimeObject *o = g_mime_multipart_get_part(mp, i);
			if (is_attachment(o))
				continue;
			if ((pass == 0 && GMIME_IS_PART(o) && is_type(o, "text", "plain")) ||
			    (pass == 1 && GMIME_IS_PART(o) && is_type(o, "text", "html")) ||
			    (pass == 2 && GMIME_IS_MULTIPART(o)))
				best = i;
		}
	if (best < 0)
		best = 0;
	for (int i = 0; i < n && !c->error; i++) {
		char *p = child_path(path, i);
		if (i == best) {
			mi_walk(c, g_mime_multipart_get_part(mp, i), p, depth + 1, text_ok);
		} else {
			char t[MI_NOTE_QUOTE_MAX * 4 + 8];
			mi_note(c, "part %s (%s): another form of the same text, dropped", p,
			    type_text(g_mime_multipart_get_part(mp, i), t, sizeof t));
		}
		g_free(p);
	}
}

static void
related(MiCtx *c, GMimeMultipart *mp, const char *path, int depth, gboolean text_ok)
{
	int n = g_mime_multipart_get_count(mp), root = 0;
	const char *start = g_mime_object_get_content_type_parameter(GMIME_OBJECT(mp), "start");

	if (start) {
		char *id = g_strdup(start);
		char *s = g_strstrip(id);
		gsize len = strlen(s);
		if (len >= 2 && s[0] == '<' && s[len - 1] == '>') {
			s[len - 1] = '\0';
			s++;
		}
		for (int i = 0; i < n; i++) {
			const char *cid = g_mime_object_get_content_id(g_mime_multipart_get_part(mp, i));
			if (cid && strcmp(cid, s) == 0) {
				root = i;
				break;
			}
		}
		g_free(id);
	}
	for (int i = 0; i < n && !c->error; i++) {
		char *p = child_path(path, i);
		mi_walk(c, g_mime_multipart_get_part(mp, i), p, depth + 1, text_ok && i == root);
		g_free(p);
	}
}

void
mi_walk(MiCtx *c, GMimeObject *obj, const char *path, int depth, gboolean text_ok)
{
	if (c->error || !obj)
		return;
	if (depth > MIME_IN_MAX_DEPTH) {
		GByteArray *bytes = object_bytes(c, obj);
		mi_note(c, "nesting deeper than %d levels: part %s kept as an attachment",
		    MIME_IN_MAX_DEPTH, mi_label(path));
		add_attachment(c, NULL, FALSE, g_mime_object_get_content_type(obj), ".eml", bytes);
		g_byte_array_unref(bytes);
		return;
	}
	if (GMIME_IS_MULTIPART(obj)) {
		GMimeMultipart *mp = GMIME_MULTIPART(obj);
		int n = g_mime_multipart_get_count(mp);

		if (n == 0) {
			/* A multipart GMime found no parts in: keep its text as text. */
			const char *pre = g_mime_multipart_get_prologue(mp);
			if (pre && *pre) {
				char *utf8 = mi_to_utf8(c, "a multipart without parts", NULL, pre,
				    strlen(pre));
				mi_note(c,
				    "part %s: a multipart without parts (wrong boundary?), its "
				    "text kept as the body", mi_label(path));
				if (text_ok)
					mi_add_text(c, utf8);
				g_free(utf8);
			}
			return;
		}
		if (is_type(obj, "multipart", "alternative")) {
			alternative(c, mp, path, depth, text_ok);
		} else if (is_type(obj, "multipart", "related")) {
			related(c, mp, path, depth, text_ok);
		} else {
			for (int i = 0; i < n && !c->error; i++) {
				char *p = child_path(path, i);
				mi_walk(c, g_mime_multipart_get_part(mp, i), p, depth + 1, text_ok);
				g_free(p);
			}
		}
	} else if (GMIME_IS_MESSAGE_PART(obj)) {
		message_part(c, GMIME_MESSAGE_PART(obj), path);
	} else if (GMIME_IS_PART(obj)) {
		leaf(c, GMIME_PART(obj), path, text_ok);
	} else {
		GByteArray *bytes = object_bytes(c, obj);
		add_attachment(c, NULL, FALSE, g_mime_object_get_content_type(obj), NULL, bytes);
		g_byte_array_unref(bytes);
	}
}

