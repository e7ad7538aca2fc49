/*
 * One segment of a partition log: <base>.log plus its two indexes (index.h),
 * where <base> is the absolute offset of its first batch, zero-padded to 20
 * digits ("00000000000000000000.log").
 *
 * <base>.log is the stored batches concatenated byte for byte (batch.h), no
 * file header and no padding. Validity: every batch parses
 * (batch_header_parse), its CRC-32C matches, and its baseOffset equals the
 * previous batch's last offset + 1 (the first one equals <base>). Recovery
 * scans from a known-good position (segment_scan) and truncates the file at
 * the first batch that breaks the rule: a torn write, a corrupt byte or
 * garbage from an unsynced tail.
 */
#ifndef HERALD_STORE_SEGMENT_H
#define HERALD_STORE_SEGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "store/batch.h"
#include "store/index.h"

typedef struct {
    int64_t base;        /* absolute offset of the first batch (the file name) */
    int64_t next;        /* absolute offset after the last batch; == base when empty */
    int64_t size;        /* bytes in .log */
    int64_t max_ts;      /* ms, max of the batches' maxTimestamp; -1 when empty */
    int64_t roll_ms;     /* wall ms the segment's age counts from (segment_ms); -1 when empty */
    int64_t since_index; /* bytes from the last indexed batch's start to the end */
    int fd;              /* .log, read-write */
    index_t ix;          /* files open while the indexes may still change or need a sync */
} segment_t;

/* Writes "<dir>/<base 20 digits><ext>" into buf. Returns 0 or -ENAMETOOLONG. */
int segment_path(char *buf, size_t n, const char *dir, int64_t base, const char *ext);

/* Creates an empty segment (truncating leftovers of the same name). The
 * caller makes the directory entry durable. Returns 0 or -errno. */
int segment_create(const char *dir, int64_t base, segment_t **out);
/* Opens an existing segment's files (indexes created if missing), size from
 * the file, indexes not loaded, next == base. Returns 0 or -errno. */
int segment_open(const char *dir, int64_t base, segment_t **out);
/* Closes the files and frees. NULL ok. */
void segment_free(segment_t *s);
/* Unlinks the segment's three files (missing ones ignored). Returns 0 or the
 * first -errno. */
int segment_unlink(const char *dir, int64_t base);

/* Appends one batch whose baseOffset is already s->next: one pwrite at the
 * end, then index entries in memory. On a failed or short write the file is
 * cut back to its previous size. Returns 0, -errno, or HE_STORAGE if the cut
 * failed too (the file may now hold a partial batch). */
int segment_append(segment_t *s, const uint8_t *batch, size_t len, const batch_header_t *h, int32_t interval);

/* Adds the final time index entry (the segment's max timestamp at its last
 * offset) unless the last entry already is that; done at roll and close. */
void segment_seal_index(segment_t *s);

/* Scans batches from file position pos (s->next, s->size, s->max_ts and
 * s->since_index describing the state there), re-adding index entries and
 * checking each batch's header, base offset and, if verify_crc, CRC. At the
 * first invalid batch truncates the file there. Returns 0 if the file was
 * valid to its end, 1 if it was truncated, <0 on I/O error. */
int segment_scan(segment_t *s, int64_t pos, int verify_crc, int32_t interval);

/* Reads and parses the header of the batch at pos (which must end within
 * s->size). Returns 0, HE_CORRUPT, or -errno. */
int segment_read_header(const segment_t *s, int64_t pos, batch_header_t *h);

/* Finds the batch containing offset (s->base <= offset < s->next) through
 * the offset index and a header walk. Returns its position and header, or <0. */
int64_t segment_find(const segment_t *s, int64_t offset, batch_header_t *h);

#endif
