/* dir_map.h - the compiled proxy map beside the directory (state_dir/directory.map).
 *
 * Owns: the file format of directory.map, a read-only, compiled copy of
 * what dir_brief() answers for every SMTP key of the directory (like a
 * table Postfix's postmap compiles): writing one, streamed, and publishing
 * it whole with rename(); reading one, mapped read-only, with every read
 * checked against the file's size, so that a truncated or garbage file is
 * refused or answers DIR_MAP_CORRUPT and never crashes its reader.
 * Never: SQL, or deciding when a map is current or rebuilt (dir_store.c
 * does, by the generation in the database's meta table); legacy addresses
 * (they stay SQLite lookups); durability (a map is a cache: no fsync; the
 * database is the truth, and a lost map is rebuilt by the next import).
 *
 * Format, version 2 (version 1 hashed and compared keys with their case).
 * Integers little-endian, at any alignment; strings are
 * bytes with a length, no terminator.
 *   header, DIR_MAP_HEADER_SIZE (96) bytes:
 *      0  magic "PGDIRMAP"
 *      8  u32 format version (2)          12  u32 header size (96)
 *     16  u64 generation: the database's meta generation the map was built from
 *     24  char[16] incarnation: the database's meta incarnation, NUL-padded
 *     40  u64 keys: the records in the file
 *     48  u64 records offset (= the header size)
 *     56  u64 slots offset: the slot table, after the records, a multiple of 8
 *     64  u64 home slots H, 1 .. 2^32 - 1
 *     72  u64 slots N, H <= N: H and the overflow past it
 *     80  u64 max probe: the farthest any key lies from its home slot
 *     88  u64 file size
 *   records, one per SMTP key, in the order the builder gave them:
 *      0  i64 rid (the entry's row)      8  u8 type (DirType)
 *      9  u8 flags: bit 0 set when the entry's proxies follow (the brief's
 *         proxies_known); no other bit is used
 *     10  u16 lengths of: key, legacy, home site, target, proxies
 *     20  the bytes of the key, legacy, home site, target ("" for none) and
 *         proxies ('\n'-joined; length 0 when bit 0 is clear)
 *   slot table: N u64 slots.  0 is an empty slot; else bits 24..63 hold the
 *     record's offset from the records offset, plus 1, and bits 0..23 the
 *     low 24 bits of the key's hash.
 * Keys compare as the directory's do (dir_store.h): without case, the
 * local part included (ASCII letters; a record holds its key as the
 * builder gave it).  Hash: FNV-1a 64 over the key's bytes, ASCII letters
 * taken in lower case, finished with MurmurHash3's fmix64 (seedless, so
 * every process computes the same).  A key's home slot is
 * ((hash >> 32) * H) >> 32, which grows with the hash; the builder places
 * keys in order of hash, each in its home slot or the first free slot after
 * it (linear probing without wrap-around: the table runs past H as far as
 * the last key needs).  A lookup probes from the home slot to the first
 * empty slot, at most max probe + 1 slots, and compares the whole key.
 *
 * Limits: each string of a record at most DIR_MAP_STRING_MAX bytes; the
 * records at most 2^40 bytes; at most DIR_MAP_KEYS_MAX keys.
 */
#ifndef PG_DIR_MAP_H
#define PG_DIR_MAP_H

#include <glib.h>

#include "dir_store.h"

#define DIR_MAP_ERROR (dir_map_error_quark())
GQuark dir_map_error_quark(void);

typedef enum {
	DIR_MAP_ERROR_IO,        /* the file cannot be read or written */
	DIR_MAP_ERROR_CORRUPT,   /* not a map of this version, or inconsistent */
	DIR_MAP_ERROR_LIMIT,     /* a record or the map would exceed a limit */
} DirMapError;

#define DIR_MAP_VERSION      2u
#define DIR_MAP_HEADER_SIZE  96u
#define DIR_MAP_STRING_MAX   65535u        /* one string of a record */
#define DIR_MAP_KEYS_MAX     0x7fffffffu   /* keys of one map (H < 2^32) */

/* ---------------------------------------------------------------- reading */

typedef struct DirMap DirMap;

typedef enum {
	DIR_MAP_FOUND,           /* the key is in the map: the brief is filled in */
	DIR_MAP_NONE,            /* no such key */
	DIR_MAP_CORRUPT,         /* the record the slot names breaks the format */
} DirMapResult;

/* dir_map_open - map the file at path read-only and check its header */
DirMap *dir_map_open(const char *path, GError **error);
/* dir_map_parse - check a map held in memory; data must outlive the DirMap */
DirMap *dir_map_parse(const void *data, gsize len, GError **error);
/* dir_map_close - unmap and free; NULL is fine */
void dir_map_close(DirMap *m);
/* dir_map_generation - the database generation the map was built from */
guint64 dir_map_generation(const DirMap *m);
/* dir_map_incarnation - the database incarnation the map was built from ("" for none) */
const char *dir_map_incarnation(const DirMap *m);
/* dir_map_keys - how many keys the map holds */
guint64 dir_map_keys(const DirMap *m);
/* dir_map_lookup - dir_brief's answer for an SMTP key of len bytes, in any
 * case; out is written only when DIR_MAP_FOUND */
DirMapResult dir_map_lookup(const DirMap *m, const char *key, gsize len, DirBrief *out);
/* dir_map_check - walk every slot: each names a record within the file that
 * its own key finds; FALSE and DIR_MAP_ERROR_CORRUPT at the first that does not */
gboolean dir_map_check(const DirMap *m, GError **error);
/* dir_map_peek - the generation and incarnation in the header of the file at
 * path, read without mapping it; FALSE and error when missing or no map */
gboolean dir_map_peek(const char *path, guint64 *generation, char incarnation[17],
    GError **error);

/* ---------------------------------------------------------------- writing */

/* One key and what dir_brief answers for it; strings NUL-terminated. */
typedef struct {
	const char *key;         /* local@domain, as the proxies table holds it
	                          * (lower case); keys differing only in case
	                          * are one key */
	gint64 rid;
	int type;                /* DirType */
	const char *legacy;
	const char *home_site;
	const char *target;      /* NULL for none */
	const char *proxies;     /* NULL when the row carries none; the map keeps
	                          * them only when shorter than DirBrief.proxies,
	                          * as dir_brief does */
} DirMapRow;

typedef struct DirMapWriter DirMapWriter;

/* dir_map_writer_begin - lock and empty path.tmp (waiting while another
 * writer holds it) and start a map there; mode for the file */
DirMapWriter *dir_map_writer_begin(const char *path, int mode, GError **error);
/* dir_map_writer_add - append the record of one key; a key added twice
 * answers with its first record */
gboolean dir_map_writer_add(DirMapWriter *w, const DirMapRow *row, GError **error);
/* dir_map_writer_commit - write the slots and the header, rename path.tmp to
 * path, unlock and free w, whatever it returns */
gboolean dir_map_writer_commit(DirMapWriter *w, guint64 generation,
    const char *incarnation, GError **error);
/* dir_map_writer_abort - remove path.tmp, unlock and free; NULL is fine */
void dir_map_writer_abort(DirMapWriter *w);

/* dir_map_hash - the 64-bit hash of a key: FNV-1a 64 of it in lower case, then fmix64 */
guint64 dir_map_hash(const char *key, gsize len);
/* dir_map_path - the map's path for a database path: .db replaced by .map
 * (else .map appended); g_free it */
char *dir_map_path(const char *db_path);

#endif
