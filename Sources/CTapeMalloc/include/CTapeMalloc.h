#ifndef CTAPEMALLOC_H
#define CTAPEMALLOC_H

/// Sets glibc malloc's mmap and trim thresholds (bytes); returns 1 when both were accepted.
/// Swift's Glibc module does not export <malloc.h>, hence this one function.
int tape_set_malloc_thresholds(int mmap_threshold, int trim_threshold);

/// Caps the number of malloc arenas (glibc `M_ARENA_MAX`); call before threads start.
int tape_set_malloc_arena_max(int arenas);

/// Returns free memory of every malloc arena to the kernel (glibc `malloc_trim(0)`); returns 1
/// when some was released.
int tape_malloc_trim(void);

#endif
