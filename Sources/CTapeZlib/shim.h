#ifndef TAPE_CZlib_SHIM_H
#define TAPE_CZlib_SHIM_H
#include <zlib.h>
#endif
