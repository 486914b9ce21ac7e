/* SPDX-License-Identifier: MIT */
#pragma once
/* Shared by the libFuzzer targets: each defines LLVMFuzzerTestOneInput and
 * feeds the input to one parser of what comes from disk, firmware or the
 * operator. Built with clang -fsanitize=fuzzer,address,undefined (make fuzz). */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* The input as a NUL-terminated string (it may hold NULs of its own). */
static inline char *fuzz_string(const uint8_t *data, size_t size) {
        char *s = malloc(size + 1);
        if (!s)
                abort();
        memcpy(s, data, size);
        s[size] = 0;
        return s;
}

/* Quiet: the parsers log what they reject, millions of times. */
#define FUZZ_QUIET                                                  \
        int LLVMFuzzerInitialize(int *argc, char ***argv) {         \
                (void) argc, (void) argv;                           \
                log_setup("fuzz", LOG_TARGET_STDERR);               \
                log_set_max_level(LOG_EMERG);                       \
                return 0;                                           \
        }
