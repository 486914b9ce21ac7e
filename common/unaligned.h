/* SPDX-License-Identifier: MIT */
#pragma once

/* Little-endian integers at any alignment: the byte order of GPT headers
 * and entries (UEFI 2.10, 5.3), EFI load options and device paths (3.1.3,
 * 10.3) and PE/COFF headers. Byte by byte, so neither the host's order nor
 * the buffer's alignment matters (a cast to uint32_t * would be undefined
 * on an odd offset). The put* functions return the bytes written, so a
 * writer can advance with p += put32(p, v). */

#include <stddef.h>
#include <stdint.h>

static inline uint16_t le16(const uint8_t *p) {
        return (uint16_t) (p[0] | (p[1] << 8));
}

static inline uint32_t le32(const uint8_t *p) {
        return (uint32_t) p[0] | ((uint32_t) p[1] << 8) | ((uint32_t) p[2] << 16) | ((uint32_t) p[3] << 24);
}

static inline uint64_t le64(const uint8_t *p) {
        return (uint64_t) le32(p) | ((uint64_t) le32(p + 4) << 32);
}

static inline size_t put16(uint8_t *p, uint16_t v) {
        p[0] = (uint8_t) v;
        p[1] = (uint8_t) (v >> 8);
        return 2;
}

static inline size_t put32(uint8_t *p, uint32_t v) {
        put16(p, (uint16_t) v);
        put16(p + 2, (uint16_t) (v >> 16));
        return 4;
}

static inline size_t put64(uint8_t *p, uint64_t v) {
        put32(p, (uint32_t) v);
        put32(p + 4, (uint32_t) (v >> 32));
        return 8;
}
