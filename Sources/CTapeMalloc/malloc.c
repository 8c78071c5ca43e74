#include "CTapeMalloc.h"
#include <malloc.h>

int tape_set_malloc_thresholds(int mmap_threshold, int trim_threshold) {
    int ok = mallopt(M_MMAP_THRESHOLD, mmap_threshold);
    return ok && mallopt(M_TRIM_THRESHOLD, trim_threshold);
}

int tape_malloc_trim(void) {
    return malloc_trim(0);
}

int tape_set_malloc_arena_max(int arenas) {
    return mallopt(M_ARENA_MAX, arenas);
}
