#ifndef TAPE_CZstd_SHIM_H
#define TAPE_CZstd_SHIM_H
#include <zstd.h>
#endif
