#ifndef CTAPE_FILE_IO_H
#define CTAPE_FILE_IO_H
#include <stdint.h>

/// Starts asynchronous writeback of [offset, offset+length) of `fd` (Linux sync_file_range with
/// SYNC_FILE_RANGE_WRITE; no durability promise). Returns 0, or -1 with errno set. Elsewhere: 0.
int tape_start_writeback(int fd, int64_t offset, int64_t length);

#endif
