/* SPDX-License-Identifier: MIT */
#pragma once

/* Internal interfaces of the init program (not a library). */

#include <stdint.h>

/* Loads each module named in list_file (one per line, # comments) and in
 * extra (NULL-terminated), with their dependencies, from the running
 * kernel's module directory. Built-in and already loaded count as success.
 * Returns the number that failed; each failure is logged as a warning. */
int modules_load(const char *list_file, const char *const *extra);

/* Moves /dev, /proc, /sys and /run under newroot, frees the initramfs,
 * makes newroot the root and execs init. Returns only on failure. */
int switch_root(const char *newroot, const char *init, char **argv);

uint64_t now_boottime_us(void);
