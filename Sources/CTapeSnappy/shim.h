#ifndef TAPE_CSnappy_SHIM_H
#define TAPE_CSnappy_SHIM_H
#include <snappy-c.h>
#endif
