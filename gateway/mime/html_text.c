/* html_text.c - HTML made readable text (private; see mime_int.h).
 *
 * Owns: the text a reader of an HTML part (text/html, RFC 2854) would see,
 * from libxml2's HTML parser (no network, errors recovered) walked without
 * recursion: blocks become blank lines or line breaks, list items "- ",
 * images their [alt] text, a link its <URL> after the text when the two
 * differ, script, style and the head dropped, <pre> kept as it is.
 * Never: charsets (the HTML is UTF-8 already), the network, recursion.
 */
#include "config.h"

#include <string.h>

#include <libxml/HTMLparser.h>
#include <libxml/tree.h>

#include "mime/mime_int.h"

/* ---- HTML to text ----------------------------------------------------------------- */

typedef struct {
	GString *out;
	int pending;        /* line breaks wanted before the next text (2: a blank line) */
	gboolean space;     /* a blank seen since the last text */
	int pre;            /* inside <pre> */
} Html;

static void
h_flush(Html *h)
{
	if (h->pending && h->out->len) {
		int have = 0;
		while (h->out->len && h->out->str[h->out->len - 1] == ' ')
			g_string_truncate(h->out, h->out->len - 1);
		for (gsize i = h->out->len; i > 0 && h->out->str[i - 1] == '\n'; i--)
			have++;
		for (int k = have; k < MIN(h->pending, 2); k++)
			g_string_append_c(h->out, '\n');
	} else if (h->space && h->out->len && h->out->str[h->out->len - 1] != '\n' &&
	    h->out->str[h->out->len - 1] != ' ') {
		g_string_append_c(h->out, ' ');
	}
	h->pending = 0;
	h->space = FALSE;
}

static void
h_text(Html *h, const char *s)
{
	for (; *s; s++) {
		if (h->pre && *s == '\n') {
			h->pending++;
			continue;
		}
		if (!h->pre && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' ||
		    *s == '\f')) {
			h->space = TRUE;
			continue;
		}
		if (h->pending || h->space)
			h_flush(h);
		g_string_append_c(h->out, *s);
	}
}

/* Literal text, blanks kept (a list bullet). */
static void
h_raw(Html *h, const char *s)
{
	h_flush(h);
	g_string_append(h->out, s);
}

static void
h_break(Html *h, int n)
{
	h->pending = MAX(h->pending, n);
}

static gboolean
name_in(const xmlChar *name, const char *const *list)
{
	for (; *list; list++)
		if (g_ascii_strcasecmp((const char *)name, *list) == 0)
			return TRUE;
	return FALSE;
}

static const char *const html_skip[] = { "script", "style", "head", "title", "noscript",
	"template", "object", "iframe", NULL };
static const char *const html_para[] = { "p", "h1", "h2", "h3", "h4", "h5", "h6", "ul",
	"ol", "table", "blockquote", "pre", "dl", "hr", "form", "address", "figure", NULL };
static const char *const html_line[] = { "div", "tr", "li", "dt", "dd", "section",
	"article", "header", "footer", "nav", "main", "center", "caption", "aside", NULL };

/* Enter an element; FALSE when its content is not shown. */
static gboolean
h_enter(Html *h, xmlNodePtr n)
{
	if (name_in(n->name, html_skip))
		return FALSE;
	if (xmlStrcasecmp(n->name, BAD_CAST "br") == 0) {
		h->pending++;
		h->space = FALSE;
		return TRUE;
	}
	if (name_in(n->name, html_para))
		h_break(h, 2);
	else if (name_in(n->name, html_line))
		h_break(h, 1);
	if (xmlStrcasecmp(n->name, BAD_CAST "pre") == 0)
		h->pre++;
	if (xmlStrcasecmp(n->name, BAD_CAST "li") == 0)
		h_raw(h, "- ");
	if ((xmlStrcasecmp(n->name, BAD_CAST "td") == 0 ||
	    xmlStrcasecmp(n->name, BAD_CAST "th") == 0) && n->prev)
		h->space = TRUE;
	if (xmlStrcasecmp(n->name, BAD_CAST "img") == 0) {
		xmlChar *alt = xmlGetProp(n, BAD_CAST "alt");
		if (alt && *alt) {
			h->space = TRUE;
			h_text(h, "[");
			h_text(h, (const char *)alt);
			h_text(h, "]");
		}
		xmlFree(alt);
	}
	if (xmlStrcasecmp(n->name, BAD_CAST "a") == 0) {
		h_flush(h);
		n->_private = GSIZE_TO_POINTER(h->out->len + 1);
	}
	return TRUE;
}

static void
h_leave(Html *h, xmlNodePtr n)
{
	if (name_in(n->name, html_skip))
		return;
	if (xmlStrcasecmp(n->name, BAD_CAST "pre") == 0 && h->pre > 0)
		h->pre--;
	if (name_in(n->name, html_para))
		h_break(h, 2);
	else if (name_in(n->name, html_line))
		h_break(h, 1);
	if (xmlStrcasecmp(n->name, BAD_CAST "a") == 0 && n->_private) {
		gsize start = GPOINTER_TO_SIZE(n->_private) - 1;
		xmlChar *href = xmlGetProp(n, BAD_CAST "href");
		const char *url = (const char *)href;

		n->_private = NULL;
		if (url) {
			const char *bare = g_ascii_strncasecmp(url, "mailto:",
			    7) == 0 ? url + 7 : url;
			char *text = g_strstrip(g_strdup(start <= h->out->len ?
			    h->out->str + start : ""));
			if (*url && *url != '#' && g_ascii_strncasecmp(url, "javascript:",
			    11) != 0 && strcmp(text, url) != 0 && strcmp(text, bare) != 0 &&
			    !strchr(url, '\n') && !strchr(url, '\r')) {
				h->space = *text != '\0';
				h_text(h, "<");
				h_text(h, url);
				h_text(h, ">");
			}
			g_free(text);
		}
		xmlFree(href);
	}
}

/* Readable text of an HTML document in UTF-8, without recursion. */
char *
mi_html_to_text(const char *html, gsize len)
{
	Html h = { g_string_new(NULL), 0, FALSE, 0 };
	htmlDocPtr doc;
	xmlNodePtr cur;

	if (len > G_MAXINT)
		len = G_MAXINT;
	doc = htmlReadMemory(html, (int)len, NULL, "UTF-8", HTML_PARSE_NONET |
	    HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_RECOVER |
	    HTML_PARSE_IGNORE_ENC | HTML_PARSE_NOBLANKS);
	cur = doc ? doc->children : NULL;
	while (cur) {
		gboolean descend = FALSE;

		if (cur->type == XML_ELEMENT_NODE)
			descend = h_enter(&h, cur);
		else if (cur->type == XML_TEXT_NODE || cur->type == XML_CDATA_SECTION_NODE)
			h_text(&h, cur->content ? (const char *)cur->content : "");
		if (descend && cur->children) {
			cur = cur->children;
			continue;
		}
		/* Leave this node, and every parent whose last child it was. */
		for (;;) {
			if (cur->type == XML_ELEMENT_NODE && (descend || !cur->children))
				h_leave(&h, cur);
			descend = TRUE;   /* parents were all entered and descended */
			if (cur->next) {
				cur = cur->next;
				break;
			}
			cur = cur->parent;
			if (!cur || cur == (xmlNodePtr)doc) {
				cur = NULL;
				break;
			}
		}
	}
	if (doc)
		xmlFreeDoc(doc);
	while (h.out->len && (h.out->str[h.out->len - 1] == ' ' ||
	    h.out->str[h.out->len - 1] == '\n'))
		g_string_truncate(h.out, h.out->len - 1);
	return g_string_free(h.out, FALSE);
}

