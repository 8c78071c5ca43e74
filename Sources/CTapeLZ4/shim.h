#ifndef TAPE_CLZ4_SHIM_H
#define TAPE_CLZ4_SHIM_H
#include <lz4frame.h>
#endif
