/* SPDX-License-Identifier: MIT */
/* GPT headers and entry arrays (slots/gpt.c) on a disk whose bytes are the
 * input: reading must validate before it trusts an offset, and a state
 * write on whatever it accepted must leave a table that reads back with
 * the new attributes. The partition geometry check must accept exactly the
 * tables a plain reading of its rule accepts, on that disk's table and on
 * a small synthetic one made of the same bytes (where overlaps are
 * frequent); a refused copy always says why. */
#define _GNU_SOURCE
#include <assert.h>
#include <sys/mman.h>
#include <unistd.h>

#include <zlib.h>

#include "../../common/macro.h"
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

/* The rule, written out plainly: each partition we use starts at or
 * before its end, inside the usable LBAs and the disk, and shares no
 * sector with any other partition that covers one. */
static bool geometry_oracle(const struct gpt_table *t, const unsigned *used, size_t n) {
        for (size_t i = 0; i < n; i++) {
                const struct gpt_partition *p = NULL;
                for (size_t k = 0; k < t->n_parts; k++)
                        if (t->parts[k].partno == used[i])
                                p = &t->parts[k];
                if (!p || p->last < p->first || p->last >= t->sectors || p->first < t->first_usable ||
                    p->last > t->last_usable)
                        return false;
                for (size_t k = 0; k < t->n_parts; k++) {
                        const struct gpt_partition *q = &t->parts[k];
                        if (q == p || q->last < q->first)
                                continue;
                        if (!(q->last < p->first || p->last < q->first))
                                return false;
                }
        }
        return true;
}

static void check_geometry(const struct gpt_table *t, const unsigned *used, size_t n) {
        char why[256] = "";
        int r = gpt_check_geometry(t, used, n, why, sizeof(why));
        assert(r == 0 || r == -EUCLEAN || r == -ENOENT);
        assert((r == 0) == geometry_oracle(t, used, n));
        assert(r == 0 || (why[0] && memchr(why, 0, sizeof(why))));
}

/* Up to 8 partitions with 16-bit LBAs from the input's first bytes. */
static void synthetic_geometry(const uint8_t *d, size_t size) {
        struct gpt_partition parts[8] = {};
        unsigned used[8];
        size_t n_used = 0;
        struct gpt_table t = { .sector_size = 512, .parts = parts };
        if (size < 6)
                return;
        t.sectors = (uint64_t) d[0] | (uint64_t) d[1] << 8;
        t.first_usable = d[2] | d[3] << 8;
        t.last_usable = d[4] | d[5] << 8;
        d += 6, size -= 6;
        while (size >= 5 && t.n_parts < ELEMENTSOF(parts)) {
                struct gpt_partition *g = &parts[t.n_parts++];
                g->partno = (unsigned) t.n_parts;
                g->first = (uint64_t) d[0] | (uint64_t) d[1] << 8;
                g->last = (uint64_t) d[2] | (uint64_t) d[3] << 8;
                if (d[4] & 1)
                        used[n_used++] = g->partno;
                d += 5, size -= 5;
        }
        check_geometry(&t, used, n_used);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        bool fix = data[0] & 1;
        data++, size--;
        synthetic_geometry(data, size);
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
        struct gpt_table t;
        if (gpt_read_table(fd, &t, &st) >= 0) {
                /* The reference layout's five partitions, as far as they are there. */
                unsigned used[5];
                size_t n = 0;
                for (size_t i = 0; i < t.n_parts; i++)
                        if (t.parts[i].partno <= 5)
                                used[n++] = t.parts[i].partno;
                check_geometry(&t, used, n);
                gpt_table_done(&t);
        }
        assert(st.primary_valid || st.primary_reason[0] || !st.sector_size);
        assert(st.backup_valid || st.backup_reason[0] || !st.sector_size);
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
