/* SPDX-License-Identifier: MIT */
/* GPT headers and entry arrays (slots/gpt.c) on a disk whose bytes are the
 * input: reading must validate before it trusts an offset, and a state
 * write on whatever it accepted must leave a table that reads back with
 * the new attributes. */
#define _GNU_SOURCE
#include <assert.h>
#include <sys/mman.h>
#include <unistd.h>

#include <zlib.h>

#include "../../slots/slots.h"
#include "fuzz.h"

FUZZ_QUIET

/* Mutated tables almost never pass their CRC32s, and then nothing past the
 * CRC check runs. So half the inputs get valid CRCs for whatever header
 * fields they hold (where those point inside the input), to reach the
 * checks of sizes, LBAs and entry counts behind them. */
static void fix_crcs(uint8_t *d, size_t size, size_t lba) {
        uint8_t *h = d + lba * 512;
        uint32_t hsize, n, esize, crc;
        uint64_t elba;
        if ((lba + 1) * 512 > size)
                return;
        memcpy(&hsize, h + 12, 4);
        memcpy(&elba, h + 72, 8);
        memcpy(&n, h + 80, 4);
        memcpy(&esize, h + 84, 4);
        if (elba < size / 512 && (uint64_t) n * esize <= size - elba * 512) {
                crc = (uint32_t) crc32(0, d + elba * 512, (uInt) ((uint64_t) n * esize));
                memcpy(h + 88, &crc, 4);
        }
        if (hsize >= 92 && hsize <= 512) {
                memset(h + 16, 0, 4);
                crc = (uint32_t) crc32(0, h, hsize);
                memcpy(h + 16, &crc, 4);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        bool fix = data[0] & 1;
        data++, size--;
        uint8_t *d = malloc(size ? size : 1);
        memcpy(d, data, size);
        if (fix && size >= 1024) {
                fix_crcs(d, size, 1);
                fix_crcs(d, size, size / 512 - 1);
        }
        int fd = memfd_create("disk", MFD_CLOEXEC);
        assert(fd >= 0);
        assert(write(fd, d, size) == (ssize_t) size);
        free(d);
        static const unsigned parts[] = { 2, 4 };
        uint64_t attrs[2];
        struct gpt_status st;
        if (gpt_get_attrs(fd, parts, attrs, 2, &st) >= 0) {
                assert(st.primary_valid || st.backup_valid);
                uint64_t next[2] = { attrs[0] ^ (1ull << 56), attrs[1] ^ (3ull << 48) };
                if (gpt_set_attrs(fd, parts, next, 2, NULL, NULL) >= 0) {
                        uint64_t back[2];
                        assert(gpt_get_attrs(fd, parts, back, 2, &st) >= 0);
                        assert(back[0] == next[0] && back[1] == next[1]);
                        assert(st.primary_valid && st.backup_valid && !st.copies_differ);
                }
        }
        close(fd);
        return 0;
}
