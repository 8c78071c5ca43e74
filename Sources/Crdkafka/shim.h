#ifndef TAPE_CRDKAFKA_SHIM_H
#define TAPE_CRDKAFKA_SHIM_H
#include <stddef.h>
#include <stdint.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#endif
