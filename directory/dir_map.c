/* dir_map.c - the compiled proxy map: its file format, writer and reader (see dir_map.h).
 *
 * The writer streams: each record goes to the file as it comes, and only a
 * (hash, offset) pair per key stays in memory (16 bytes), sorted in place at
 * the end to lay out the slot table, which is then streamed too.  The
 * reader trusts nothing in the file: the header is checked against the
 * file's size once, every record a lookup reaches is checked before use.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dir_map.h"

G_DEFINE_QUARK(postgate-directory-map-error-quark, dir_map_error)

static const char magic[8] = { 'P', 'G', 'D', 'I', 'R', 'M', 'A', 'P' };

/* Header fields, by offset. */
enum {
	H_MAGIC = 0, H_VERSION = 8, H_HSIZE = 12, H_GENERATION = 16, H_INCARNATION = 24,
	H_KEYS = 40, H_RECORDS = 48, H_SLOTS = 56, H_HOME = 64, H_NSLOTS = 72,
	H_MAX_PROBE = 80, H_FILE_SIZE = 88,
};
#define INCARNATION_MAX 16u

/* Record fields. */
enum { R_RID = 0, R_TYPE = 8, R_FLAGS = 9, R_LENS = 10, R_DATA = 20 };
#define R_HAS_PROXIES 0x01u

#define TAG_BITS 24
#define TAG_MASK ((G_GUINT64_CONSTANT(1) << TAG_BITS) - 1)
#define OFFSET_MAX (G_GUINT64_CONSTANT(1) << 40)    /* records, in bytes */
#define WRITE_BUF (1u << 20)

/* ------------------------------------------------------------ encoding */

/* rdN, wrN: little-endian integers at any alignment. */
#define LE_ACCESS(bits) \
	static guint##bits \
	rd##bits(const guint8 *p) \
	{ \
		guint##bits v; \
		memcpy(&v, p, sizeof v); \
		return GUINT##bits##_FROM_LE(v); \
	} \
	static void \
	wr##bits(guint8 *p, guint##bits v) \
	{ \
		v = GUINT##bits##_TO_LE(v); \
		memcpy(p, &v, sizeof v); \
	}
LE_ACCESS(64)
LE_ACCESS(32)
LE_ACCESS(16)

/* A byte of a key as keys compare: ASCII letters in lower case. */
static inline guint8
fold(char c)
{
	return c >= 'A' && c <= 'Z' ? (guint8)(c + ('a' - 'A')) : (guint8)c;
}

/* Whether two keys of len bytes are the same key (dir_store.h: the local
 * part compares without case too). */
static gboolean
key_same(const char *a, const char *b, gsize len)
{
	for (gsize i = 0; i < len; i++)
		if (fold(a[i]) != fold(b[i]))
			return FALSE;
	return TRUE;
}

guint64
dir_map_hash(const char *key, gsize len)
{
	guint64 h = G_GUINT64_CONSTANT(0xcbf29ce484222325);

	for (gsize i = 0; i < len; i++) {
		h ^= fold(key[i]);
		h *= G_GUINT64_CONSTANT(0x100000001b3);
	}
	/* fmix64: every input bit moves every output bit, so both the home
	 * slot (high bits) and the tag (low bits) are well spread. */
	h ^= h >> 33;
	h *= G_GUINT64_CONSTANT(0xff51afd7ed558ccd);
	h ^= h >> 33;
	h *= G_GUINT64_CONSTANT(0xc4ceb9fe1a85ec53);
	h ^= h >> 33;
	return h;
}

static guint64
home_slot(guint64 hash, guint64 home)
{
	return ((hash >> 32) * home) >> 32;
}

char *
dir_map_path(const char *db_path)
{
	gsize n = strlen(db_path);

	if (n > 3 && strcmp(db_path + n - 3, ".db") == 0)
		return g_strdup_printf("%.*s.map", (int)(n - 3), db_path);
	return g_strconcat(db_path, ".map", NULL);
}

/* ------------------------------------------------------------- reading */

struct DirMap {
	const guint8 *base;
	gsize size;
	gboolean mapped;         /* munmap base on close */
	guint64 generation;
	char incarnation[INCARNATION_MAX + 1];
	guint64 keys, records, slots, home, nslots, max_probe;
};

/* An error of code: a map file that cannot be used (DIR_MAP_ERROR_CORRUPT)
 * says so first; FALSE. */
static gboolean
map_fail(GError **error, int code, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

static gboolean
map_fail(GError **error, int code, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_set_error(error, DIR_MAP_ERROR, code, "%s%s",
	    code == DIR_MAP_ERROR_CORRUPT ? "not a usable proxy map: " : "", msg);
	g_free(msg);
	return FALSE;
}

#define corrupt(error, ...) map_fail((error), DIR_MAP_ERROR_CORRUPT, __VA_ARGS__)
#define limit(error, ...) map_fail((error), DIR_MAP_ERROR_LIMIT, __VA_ARGS__)

/* The fixed part of the header: magic, version, header size. */
static gboolean
header_known(const guint8 *h, gsize len, GError **error)
{
	if (len < DIR_MAP_HEADER_SIZE)
		return corrupt(error, "%" G_GSIZE_FORMAT " bytes, shorter than its header", len);
	if (memcmp(h + H_MAGIC, magic, sizeof magic) != 0)
		return corrupt(error, "bad magic");
	if (rd32(h + H_VERSION) != DIR_MAP_VERSION)
		return corrupt(error, "format version %u, this postgate reads %u",
		    rd32(h + H_VERSION), DIR_MAP_VERSION);
	if (rd32(h + H_HSIZE) != DIR_MAP_HEADER_SIZE)
		return corrupt(error, "header size %u", rd32(h + H_HSIZE));
	return TRUE;
}

static void
incarnation_read(const guint8 *h, char out[INCARNATION_MAX + 1])
{
	memcpy(out, h + H_INCARNATION, INCARNATION_MAX);
	out[INCARNATION_MAX] = '\0';
}

/* The whole header of a file of size bytes, checked into *m. */
static gboolean
header_check(const guint8 *h, guint64 size, DirMap *m, GError **error)
{
	if (!header_known(h, (gsize)MIN(size, (guint64)DIR_MAP_HEADER_SIZE), error))
		return FALSE;
	m->generation = rd64(h + H_GENERATION);
	incarnation_read(h, m->incarnation);
	m->keys = rd64(h + H_KEYS);
	m->records = rd64(h + H_RECORDS);
	m->slots = rd64(h + H_SLOTS);
	m->home = rd64(h + H_HOME);
	m->nslots = rd64(h + H_NSLOTS);
	m->max_probe = rd64(h + H_MAX_PROBE);
	if (rd64(h + H_FILE_SIZE) != size)
		return corrupt(error, "%" G_GUINT64_FORMAT " bytes, the header says %"
		    G_GUINT64_FORMAT " (truncated?)", size, rd64(h + H_FILE_SIZE));
	if (m->records != DIR_MAP_HEADER_SIZE || m->slots < m->records || m->slots % 8 != 0 ||
	    m->slots > size || (size - m->slots) % 8 != 0 || (size - m->slots) / 8 != m->nslots)
		return corrupt(error, "the sections do not fit the file");
	if (m->slots - m->records > OFFSET_MAX || m->home == 0 || m->home > G_MAXUINT32 ||
	    m->home > m->nslots || m->keys > m->nslots || m->keys > DIR_MAP_KEYS_MAX ||
	    m->max_probe >= m->nslots)
		return corrupt(error, "inconsistent counts");
	return TRUE;
}

DirMap *
dir_map_parse(const void *data, gsize len, GError **error)
{
	DirMap m = { 0 };

	if (!header_check(data, len, &m, error))
		return NULL;
	m.base = data;
	m.size = len;
	return g_memdup2(&m, sizeof m);
}

/* The map file opened for reading (never through a link), and its stat. */
static int
open_map(const char *path, struct stat *st, GError **error)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), e;

	if (fd < 0 || fstat(fd, st) != 0) {
		e = errno;
		if (fd >= 0)
			close(fd);
		g_set_error(error, DIR_MAP_ERROR, DIR_MAP_ERROR_IO, "%s: %s", path,
		    g_strerror(e));
		return -1;
	}
	return fd;
}

DirMap *
dir_map_open(const char *path, GError **error)
{
	struct stat st;
	void *base;
	DirMap *m;
	int fd, e;

	fd = open_map(path, &st, error);
	if (fd < 0)
		return NULL;
	if (!S_ISREG(st.st_mode) || st.st_size < (off_t)DIR_MAP_HEADER_SIZE ||
	    (guint64)st.st_size > G_MAXSIZE) {
		close(fd);
		corrupt(error, "%s: %s", path, S_ISREG(st.st_mode) ? "too short" :
		    "not a regular file");
		return NULL;
	}
	base = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	e = errno;
	close(fd);
	if (base == MAP_FAILED) {
		g_set_error(error, DIR_MAP_ERROR, DIR_MAP_ERROR_IO, "%s: mmap: %s", path,
		    g_strerror(e));
		return NULL;
	}
	m = dir_map_parse(base, (gsize)st.st_size, error);
	if (!m) {
		munmap(base, (size_t)st.st_size);
		g_prefix_error(error, "%s: ", path);
		return NULL;
	}
	m->mapped = TRUE;
	return m;
}

void
dir_map_close(DirMap *m)
{
	if (!m)
		return;
	if (m->mapped)
		munmap((void *)m->base, m->size);
	g_free(m);
}

guint64
dir_map_generation(const DirMap *m)
{
	return m->generation;
}

const char *
dir_map_incarnation(const DirMap *m)
{
	return m->incarnation;
}

guint64
dir_map_keys(const DirMap *m)
{
	return m->keys;
}

/* A record, checked: its strings point into the map. */
typedef struct {
	gint64 rid;
	guint type, flags;
	const char *s[5];        /* key, legacy, home site, target, proxies */
	gsize len[5];
} Record;

/* The record at offset off (from the records section); FALSE when it does
 * not lie whole inside the section or breaks the format. */
static gboolean
record_at(const DirMap *m, guint64 off, Record *r)
{
	guint64 room = m->slots - m->records, need = R_DATA;
	const guint8 *p;

	if (off > room || room - off < R_DATA)
		return FALSE;
	p = m->base + m->records + off;
	r->rid = (gint64)rd64(p + R_RID);
	r->type = p[R_TYPE];
	r->flags = p[R_FLAGS];
	for (int i = 0; i < 5; i++) {
		r->len[i] = rd16(p + R_LENS + 2 * i);
		r->s[i] = (const char *)p + need;
		need += r->len[i];
	}
	if (need > room - off || (r->flags & ~R_HAS_PROXIES) != 0 || r->type > DIR_LIST ||
	    (!(r->flags & R_HAS_PROXIES) && r->len[4] != 0))
		return FALSE;
	return TRUE;
}

/* Copy len bytes of s into out of size bytes as g_strlcpy would (cut, and
 * ending at a NUL byte of s if it holds one). */
static void
copy_cut(char *out, gsize size, const char *s, gsize len)
{
	gsize n = MIN(len, size - 1);
	const char *nul = memchr(s, '\0', n);

	if (nul)
		n = (gsize)(nul - s);
	memcpy(out, s, n);
	out[n] = '\0';
}

/* Look key up: the record's offset into *off; DIR_MAP_CORRUPT when a slot
 * with its tag names a bad record. */
static DirMapResult
find(const DirMap *m, const char *key, gsize len, Record *r)
{
	guint64 h = dir_map_hash(key, len), i = home_slot(h, m->home), end;
	const guint8 *slots = m->base + m->slots;

	end = MIN(m->nslots, i + m->max_probe + 1);
	for (; i < end; i++) {
		guint64 s = rd64(slots + 8 * i), off = s >> TAG_BITS;

		if (off == 0)
			return DIR_MAP_NONE;
		if ((s & TAG_MASK) != (h & TAG_MASK))
			continue;
		if (!record_at(m, off - 1, r))
			return DIR_MAP_CORRUPT;
		if (r->len[0] == len && key_same(r->s[0], key, len))
			return DIR_MAP_FOUND;
	}
	return DIR_MAP_NONE;
}

DirMapResult
dir_map_lookup(const DirMap *m, const char *key, gsize len, DirBrief *out)
{
	DirMapResult res;
	Record r;

	res = find(m, key, len, &r);
	if (res != DIR_MAP_FOUND)
		return res;
	out->rid = r.rid;
	out->type = (DirType)r.type;
	copy_cut(out->legacy, sizeof out->legacy, r.s[1], r.len[1]);
	copy_cut(out->home_site, sizeof out->home_site, r.s[2], r.len[2]);
	copy_cut(out->target, sizeof out->target, r.s[3], r.len[3]);
	/* Known as dir_brief knows them: carried, and short enough. */
	out->proxies_known = (r.flags & R_HAS_PROXIES) && r.len[4] < sizeof out->proxies &&
	    !memchr(r.s[4], '\0', r.len[4]);
	if (out->proxies_known)
		copy_cut(out->proxies, sizeof out->proxies, r.s[4], r.len[4]);
	else
		out->proxies[0] = '\0';
	return DIR_MAP_FOUND;
}

gboolean
dir_map_check(const DirMap *m, GError **error)
{
	const guint8 *slots = m->base + m->slots;
	guint64 used = 0;

	for (guint64 i = 0; i < m->nslots; i++) {
		guint64 s = rd64(slots + 8 * i), off = s >> TAG_BITS, h, home;
		Record r, found;

		if (off == 0)
			continue;
		used++;
		if (!record_at(m, off - 1, &r))
			return corrupt(error, "slot %" G_GUINT64_FORMAT " names a bad record", i);
		h = dir_map_hash(r.s[0], r.len[0]);
		home = home_slot(h, m->home);
		if ((s & TAG_MASK) != (h & TAG_MASK) || i < home || i - home > m->max_probe)
			return corrupt(error, "slot %" G_GUINT64_FORMAT " does not fit its key", i);
		if (find(m, r.s[0], r.len[0], &found) != DIR_MAP_FOUND)
			return corrupt(error, "the key of slot %" G_GUINT64_FORMAT " is not found",
			    i);
	}
	if (used != m->keys)
		return corrupt(error, "%" G_GUINT64_FORMAT " keys in the slots, the header says %"
		    G_GUINT64_FORMAT, used, m->keys);
	return TRUE;
}

gboolean
dir_map_peek(const char *path, guint64 *generation, char incarnation[17], GError **error)
{
	guint8 h[DIR_MAP_HEADER_SIZE];
	DirMap m = { 0 };
	struct stat st;
	gssize n;
	int fd, e;

	fd = open_map(path, &st, error);
	if (fd < 0)
		return FALSE;
	do
		n = pread(fd, h, sizeof h, 0);
	while (n < 0 && errno == EINTR);
	e = errno;
	close(fd);
	if (n < 0) {
		g_set_error(error, DIR_MAP_ERROR, DIR_MAP_ERROR_IO, "%s: %s", path,
		    g_strerror(e));
		return FALSE;
	}
	if (!header_check(h, (gsize)n < sizeof h ? (guint64)n : (guint64)st.st_size, &m,
	    error)) {
		g_prefix_error(error, "%s: ", path);
		return FALSE;
	}
	*generation = rd64(h + H_GENERATION);
	incarnation_read(h, incarnation);
	return TRUE;
}

/* ------------------------------------------------------------- writing */

typedef struct {
	guint64 hash, off;
} Pair;

struct DirMapWriter {
	char *path, *tmp;
	int fd;
	guint8 *buf;
	gsize buf_len;
	guint64 off;             /* bytes of the file so far, buffer included */
	Pair *pairs;
	gsize n, cap;
};

static gboolean
write_fail(DirMapWriter *w, GError **error, const char *what)
{
	int e = errno;

	g_set_error(error, DIR_MAP_ERROR, DIR_MAP_ERROR_IO, "%s: %s: %s", w->tmp, what,
	    g_strerror(e));
	return FALSE;
}

static gboolean
flush(DirMapWriter *w, GError **error)
{
	const guint8 *p = w->buf;
	gsize len = w->buf_len;

	while (len > 0) {
		ssize_t n = write(w->fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return write_fail(w, error, "write");
		p += n;
		len -= (gsize)n;
	}
	w->buf_len = 0;
	return TRUE;
}

/* Room for len more bytes in the buffer (len <= WRITE_BUF); where they go. */
static guint8 *
reserve(DirMapWriter *w, gsize len, GError **error)
{
	guint8 *p;

	if (w->buf_len + len > WRITE_BUF && !flush(w, error))
		return NULL;
	p = w->buf + w->buf_len;
	w->buf_len += len;
	w->off += len;
	return p;
}

static gboolean
put_zeros(DirMapWriter *w, guint64 n, GError **error)
{
	while (n > 0) {
		gsize k = (gsize)MIN(n, (guint64)WRITE_BUF);
		guint8 *p = reserve(w, k, error);

		if (!p)
			return FALSE;
		memset(p, 0, k);
		n -= k;
	}
	return TRUE;
}

DirMapWriter *
dir_map_writer_begin(const char *path, int mode, GError **error)
{
	DirMapWriter *w = g_new0(DirMapWriter, 1);
	struct stat a, b;

	w->path = g_strdup(path);
	w->tmp = g_strconcat(path, ".tmp", NULL);
	w->fd = -1;
	/* One writer at a time: the lock is on the temporary file, and holds
	 * only while that name still is the file locked (a writer that
	 * finished renamed it away). */
	for (int tries = 0; ; tries++) {
		w->fd = open(w->tmp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, mode);
		if (w->fd < 0) {
			write_fail(w, error, "create");
			goto fail;
		}
		while (flock(w->fd, LOCK_EX) != 0) {
			if (errno != EINTR) {
				write_fail(w, error, "lock");
				goto fail;
			}
		}
		if (fstat(w->fd, &a) == 0 && stat(w->tmp, &b) == 0 && a.st_dev == b.st_dev &&
		    a.st_ino == b.st_ino)
			break;
		close(w->fd);
		w->fd = -1;
		if (tries == 100) {
			g_set_error(error, DIR_MAP_ERROR, DIR_MAP_ERROR_IO,
			    "%s: other writers keep replacing it", w->tmp);
			goto fail;
		}
	}
	if (ftruncate(w->fd, 0) != 0 || fchmod(w->fd, (mode_t)mode) != 0) {
		write_fail(w, error, "truncate");
		goto fail;
	}
	w->buf = g_malloc(WRITE_BUF);
	if (!put_zeros(w, DIR_MAP_HEADER_SIZE, error))   /* the header comes last */
		goto fail;
	return w;
fail:
	dir_map_writer_abort(w);
	return NULL;
}

gboolean
dir_map_writer_add(DirMapWriter *w, const DirMapRow *row, GError **error)
{
	const char *s[5] = { row->key, row->legacy, row->home_site, row->target ? row->target :
	    "", row->proxies };
	gsize len[5], need = R_DATA;
	gboolean has_proxies;
	guint64 off = w->off - DIR_MAP_HEADER_SIZE;
	guint8 *p;

	if (row->proxies && strlen(row->proxies) >= sizeof ((DirBrief *)NULL)->proxies)
		s[4] = NULL;  /* dir_brief does not keep them either */
	has_proxies = s[4] != NULL;
	for (int i = 0; i < 5; i++) {
		len[i] = s[i] ? strlen(s[i]) : 0;
		if (len[i] > DIR_MAP_STRING_MAX)
			return limit(error, "proxy map: a record of %s holds %" G_GSIZE_FORMAT
			    " bytes in one string, at most %u are allowed", row->key, len[i],
			    DIR_MAP_STRING_MAX);
		need += len[i];
	}
	if (row->type < 0 || row->type > DIR_LIST)
		return limit(error, "proxy map: %s has entry type %d", row->key, row->type);
	if (w->n >= DIR_MAP_KEYS_MAX || off + need >= OFFSET_MAX)
		return limit(error, "proxy map: more than %u keys or 2^40 bytes", DIR_MAP_KEYS_MAX);
	if (w->n == w->cap) {
		w->cap = w->cap ? w->cap + w->cap / 2 : 4096;
		w->pairs = g_renew(Pair, w->pairs, w->cap);
	}
	w->pairs[w->n].hash = dir_map_hash(row->key, len[0]);
	w->pairs[w->n].off = off;
	w->n++;
	p = reserve(w, R_DATA, error);
	if (!p)
		return FALSE;
	wr64(p + R_RID, (guint64)row->rid);
	p[R_TYPE] = (guint8)row->type;
	p[R_FLAGS] = has_proxies ? R_HAS_PROXIES : 0;
	for (int i = 0; i < 5; i++)
		wr16(p + R_LENS + 2 * i, (guint16)len[i]);
	for (int i = 0; i < 5; i++) {
		if (len[i] == 0)
			continue;
		p = reserve(w, len[i], error);
		if (!p)
			return FALSE;
		memcpy(p, s[i], len[i]);
	}
	return TRUE;
}

/* Pairs in order of hash, then of offset (so the first record of a key
 * added twice is met first): an in-place sort (glibc's qsort may take a
 * copy of the array, which would double the builder's memory). */
static gboolean
pair_less(const Pair *a, const Pair *b)
{
	return a->hash < b->hash || (a->hash == b->hash && a->off < b->off);
}

static void
pair_swap(Pair *a, Pair *b)
{
	Pair t = *a;

	*a = *b;
	*b = t;
}

static void
sift_down(Pair *v, gsize root, gsize n)
{
	for (;;) {
		gsize c = 2 * root + 1;

		if (c >= n)
			return;
		if (c + 1 < n && pair_less(&v[c], &v[c + 1]))
			c++;
		if (!pair_less(&v[root], &v[c]))
			return;
		pair_swap(&v[root], &v[c]);
		root = c;
	}
}

static void
heap_sort(Pair *v, gsize n)
{
	for (gsize i = n / 2; i-- > 0; )
		sift_down(v, i, n);
	for (gsize i = n; i-- > 1; ) {
		pair_swap(&v[0], &v[i]);
		sift_down(v, 0, i);
	}
}

/* Introsort: quicksort with a median of three, heapsort when it degrades,
 * insertion sort for short runs; recursion on the smaller side only. */
static void
pairs_sort(Pair *v, gsize n, guint depth)
{
	while (n > 16) {
		gsize i, j, mid = n / 2;
		Pair pivot;

		if (depth-- == 0) {
			heap_sort(v, n);
			return;
		}
		if (pair_less(&v[mid], &v[0]))
			pair_swap(&v[mid], &v[0]);
		if (pair_less(&v[n - 1], &v[0]))
			pair_swap(&v[n - 1], &v[0]);
		if (pair_less(&v[n - 1], &v[mid]))
			pair_swap(&v[n - 1], &v[mid]);
		pivot = v[mid];
		i = 0;
		j = n - 1;
		for (;;) {
			while (pair_less(&v[i], &pivot))
				i++;
			while (pair_less(&pivot, &v[j]))
				j--;
			if (i >= j)
				break;
			pair_swap(&v[i], &v[j]);
			i++;
			j--;
		}
		/* [0, j] <= pivot <= [j + 1, n) */
		if (j + 1 < n - j - 1) {
			pairs_sort(v, j + 1, depth);
			v += j + 1;
			n -= j + 1;
		} else {
			pairs_sort(v + j + 1, n - j - 1, depth);
			n = j + 1;
		}
	}
	for (gsize i = 1; i < n; i++) {
		Pair x = v[i];
		gsize j = i;

		for (; j > 0 && pair_less(&x, &v[j - 1]); j--)
			v[j] = v[j - 1];
		v[j] = x;
	}
}

gboolean
dir_map_writer_commit(DirMapWriter *w, guint64 generation, const char *incarnation,
    GError **error)
{
	guint64 home = w->n ? 2 * (guint64)w->n : 1, next = 0, max_probe = 0, slots;
	guint8 h[DIR_MAP_HEADER_SIZE] = { 0 }, *p;
	guint depth = 0;
	gsize inc_len = incarnation ? strlen(incarnation) : 0;
	ssize_t n;

	if (inc_len > INCARNATION_MAX) {
		limit(error, "proxy map: incarnation \"%s\" is longer than %u bytes", incarnation,
		    INCARNATION_MAX);
		goto fail;
	}
	if (!put_zeros(w, (8 - w->off % 8) % 8, error))
		goto fail;
	slots = w->off;
	for (gsize k = w->n; k > 1; k >>= 1)
		depth += 2;
	pairs_sort(w->pairs, w->n, depth);
	/* Each key at its home slot or the first free one after it. */
	for (gsize k = 0; k < w->n; k++) {
		guint64 hs = home_slot(w->pairs[k].hash, home), at = MAX(hs, next);

		if (!put_zeros(w, 8 * (at - next), error) || !(p = reserve(w, 8, error)))
			goto fail;
		wr64(p, ((w->pairs[k].off + 1) << TAG_BITS) | (w->pairs[k].hash & TAG_MASK));
		max_probe = MAX(max_probe, at - hs);
		next = at + 1;
	}
	if (next < home && !put_zeros(w, 8 * (home - next), error))
		goto fail;
	if (!flush(w, error))
		goto fail;
	memcpy(h + H_MAGIC, magic, sizeof magic);
	wr32(h + H_VERSION, DIR_MAP_VERSION);
	wr32(h + H_HSIZE, DIR_MAP_HEADER_SIZE);
	wr64(h + H_GENERATION, generation);
	if (inc_len)
		memcpy(h + H_INCARNATION, incarnation, inc_len);
	wr64(h + H_KEYS, w->n);
	wr64(h + H_RECORDS, DIR_MAP_HEADER_SIZE);
	wr64(h + H_SLOTS, slots);
	wr64(h + H_HOME, home);
	wr64(h + H_NSLOTS, MAX(home, next));
	wr64(h + H_MAX_PROBE, max_probe);
	wr64(h + H_FILE_SIZE, w->off);
	do
		n = pwrite(w->fd, h, sizeof h, 0);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof h) {
		if (n >= 0)
			errno = EIO;
		write_fail(w, error, "write the header");
		goto fail;
	}
	if (rename(w->tmp, w->path) != 0) {
		write_fail(w, error, "rename");
		goto fail;
	}
	close(w->fd);   /* and so unlock */
	w->fd = -1;
	dir_map_writer_abort(w);
	return TRUE;
fail:
	dir_map_writer_abort(w);
	return FALSE;
}

void
dir_map_writer_abort(DirMapWriter *w)
{
	if (!w)
		return;
	if (w->fd >= 0) {
		/* Still ours while locked: remove it before unlocking. */
		unlink(w->tmp);
		close(w->fd);
	}
	g_free(w->pairs);
	g_free(w->buf);
	g_free(w->path);
	g_free(w->tmp);
	g_free(w);
}
