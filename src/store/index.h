/*
 * The two sparse indexes of one segment, kept whole in memory (8 + 12 bytes
 * per index_interval_bytes of log) and appended to their files lazily:
 * entries are added in memory on append and written by index_flush() (at
 * sync, roll and close), so an append costs no index syscall.
 *
 * <base>.index — offset index. A sequence of 8-byte entries, no header:
 *
 *   0  4  relative offset: base offset of an indexed batch - segment base (u32 BE)
 *   4  4  file position of that batch in <base>.log (u32 BE)
 *
 * <base>.timeindex — time index. A sequence of 12-byte entries, no header:
 *
 *   0  8  max timestamp (ms, i64 BE) of all batches of the segment up to and
 *         including the batch the entry was written for
 *   8  4  relative offset of that batch's LAST record (u32 BE)
 *
 * Both are written for the same batches: the first batch that starts at
 * least index_interval_bytes after the previous indexed batch. The time index
 * also gets a final entry for the segment's last batch when the segment is
 * rolled or the log is closed, so the last entry of a rolled segment's time
 * index holds the segment's max timestamp and last offset.
 *
 * Validity: the file size is a multiple of the entry size; relative offsets
 * strictly increase; positions strictly increase (offset index); timestamps
 * never decrease (time index); every position lies inside the log and every
 * offset inside the segment. Recovery keeps the valid prefix covered by the
 * recovery checkpoint (or the whole file for segments before it), truncates
 * the rest and re-adds entries while scanning the log past that point; a
 * segment whose index fails the checks is rebuilt by scanning its log.
 */
#ifndef HERALD_STORE_INDEX_H
#define HERALD_STORE_INDEX_H

#include <stddef.h>
#include <stdint.h>

#define INDEX_ENTRY_SIZE 8
#define TINDEX_ENTRY_SIZE 12

typedef struct {
    uint32_t rel; /* offset relative to the segment base */
    uint32_t pos; /* byte position in the segment's log */
} index_entry_t;

typedef struct {
    int64_t ts;   /* ms, max timestamp so far */
    uint32_t rel; /* relative offset of the batch's last record */
} tindex_entry_t;

typedef struct {
    index_entry_t *oe;   /* offset index entries, oe[0..on) */
    size_t on, ocap;
    size_t owritten;     /* entries already written to the file, <= on */
    tindex_entry_t *te;  /* time index entries, te[0..tn) */
    size_t tn, tcap;
    size_t twritten;
    int ofd, tfd;        /* the files, -1 when closed */
} index_t;

void index_init(index_t *ix);
/* Closes the files and frees the entries. */
void index_destroy(index_t *ix);
/* Opens (creating if missing) both files read-write. Returns 0 or -errno. */
int index_open(index_t *ix, const char *opath, const char *tpath);
void index_close_files(index_t *ix);

/* Reads both files into memory, keeping the longest valid prefix (see the
 * validity rule) with relative offsets <= max_rel and positions < max_pos.
 * Sets *complete to 1 if every entry in both files was kept. Returns 0 or
 * -errno. The files must be open. */
int index_load(index_t *ix, uint32_t max_rel, int64_t max_pos, int *complete);

/* Drops entries beyond the first on / tn, in memory and in the files. */
int index_truncate(index_t *ix, size_t on, size_t tn);

static inline void index_add(index_t *ix, uint32_t rel, uint32_t pos);
static inline void index_add_time(index_t *ix, int64_t ts, uint32_t rel);

/* Writes entries not yet in the files. Returns 0 or -errno (the files are
 * then cut back to what was written before). */
int index_flush(index_t *ix);

/* Position of the last indexed batch with relative offset <= rel; 0 if none. */
uint32_t index_lookup(const index_t *ix, uint32_t rel);
/* Relative offset from which to scan for the first batch with max timestamp
 * >= ts: one past the last entry whose timestamp is < ts, or 0. */
int64_t index_lookup_time(const index_t *ix, int64_t ts);

/* Grows the arrays (out of line). */
void index_grow_(index_t *ix, int time);

static inline void index_add(index_t *ix, uint32_t rel, uint32_t pos)
{
    if (ix->on == ix->ocap) index_grow_(ix, 0);
    ix->oe[ix->on++] = (index_entry_t){rel, pos};
}

static inline void index_add_time(index_t *ix, int64_t ts, uint32_t rel)
{
    if (ix->tn == ix->tcap) index_grow_(ix, 1);
    ix->te[ix->tn++] = (tindex_entry_t){ts, rel};
}

#endif
