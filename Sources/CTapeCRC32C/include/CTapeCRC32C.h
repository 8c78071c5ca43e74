#ifndef CTAPE_CRC32C_H
#define CTAPE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/// 1 when this CPU has the SSE4.2 `crc32` instruction (x86-64 only), else 0.
int tape_crc32c_hw_available(void);

/// Continues a CRC-32C (Castagnoli) over `length` bytes with the SSE4.2 `crc32` instruction.
/// `crc` is the running value without the final inversion (start with 0xFFFFFFFF; invert the
/// result). Only call it when `tape_crc32c_hw_available()` returned 1.
uint32_t tape_crc32c_hw_update(uint32_t crc, const void *bytes, size_t length);

#endif
