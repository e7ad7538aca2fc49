/* CRC-32C (Castagnoli), as used by Kafka RecordBatch v2. Uses the SSE4.2
 * crc32 instruction when the CPU has it, a slicing-by-8 table otherwise. */
#ifndef HERALD_BASE_CRC32C_H
#define HERALD_BASE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends crc (0 to start) over n bytes. The first call initialises static
 * tables (CPU detection, lane shifts): make it from one thread before others
 * (the broker computes CRCs on its event loop only). */
uint32_t crc32c(uint32_t crc, const void *data, size_t n);

#endif
