/* SPDX-License-Identifier: MIT */
/* Delta installs (delta.h): the new image's hash tree first, then every
 * block already on this machine that has a hash the tree names, the rest
 * by range.
 *
 *  1. The tree: one Range request for the stream's last hash_size bytes.
 *     Its superblock is checked field by field and the whole tree is
 *     hashed up to the root hash the UKI pins (checked against the source
 *     before anything was written): from then on every level-0 hash is the
 *     new image's, and a local block with that hash is that block.
 *  2. The target slot's data partition (the old image, read-write but only
 *     read here) and the running slot's (read-only: opened O_RDONLY, on a
 *     read-only loop device on the host) are read and every 4 KiB block
 *     hashed with the new salt. A block already where the new image wants
 *     it stays (no write); another comes from the running slot, or from
 *     elsewhere in the target slot.
 *  3. A block moved within the target slot is read into memory before
 *     anything is written when its place will be overwritten (at most
 *     MOVE_BUFFER_MAX; beyond that it is fetched): a copy never reads a
 *     block another copy already replaced. Every copied block is hashed
 *     again as it is copied; one that no longer matches is fetched.
 *  4. The rest is fetched with Range requests, coalesced into at most
 *     DELTA_MAX_REQUESTS; then the tree is written.
 *
 * The caller then verifies every block on the disk against the root hash,
 * as after a full download: a delta cannot produce a slot a full install
 * would not. A source without ranges, a registry that ignores Range, or a
 * local read error give -EOPNOTSUPP after one line saying why, and the
 * caller downloads the whole image (which rewrites every block). */

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>
#include <unistd.h>

#include "../common/io.h"
#include "../common/log.h"
#include "../common/macro.h"
#include "delta.h"
#include "source.h"

#define SCAN_CHUNK (1024u * 1024)
#define MOVE_BUFFER_MAX (64ull << 20)

typedef enum How {
        HOW_FETCH,      /* not on this machine */
        HOW_IN_PLACE,   /* already there: nothing to write */
        HOW_MOVE,       /* from another block of the target slot */
        HOW_RUNNING,    /* from the running slot's data partition */
        HOW_BUFFERED,   /* moved, read into memory before the writes */
} How;

/* A level-0 hash and its block; sorted by hash, equal hashes together. */
struct want {
        uint8_t digest[DELTA_DIGEST];
        uint64_t block;
};

struct plan {
        const struct delta_tree *t;
        const uint8_t *tree;
        struct want *want;          /* data_blocks entries */
        uint8_t *group_best;        /* per want entry (its group's first): the best source seen, a How */
        uint8_t *how;               /* per block */
        uint64_t *from;             /* per block: the source block (MOVE, RUNNING) or buffer index (BUFFERED) */
        const char *what;
        bool tty;
        uint64_t shown_ms, started_ms;
};

static const uint8_t *level0(const struct plan *p, uint64_t b) {
        return p->tree + delta_tree_level0_offset(p->t, b);
}

static int want_cmp(const void *a, const void *b) {
        const struct want *x = a, *y = b;
        int c = memcmp(x->digest, y->digest, DELTA_DIGEST);
        return c ? c : (x->block < y->block ? -1 : x->block > y->block);
}

/* The first want with digest d, or SIZE_MAX. */
static size_t want_find(const struct plan *p, const uint8_t *d) {
        size_t lo = 0, hi = p->t->data_blocks;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (memcmp(p->want[mid].digest, d, DELTA_DIGEST) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo < p->t->data_blocks && memcmp(p->want[lo].digest, d, DELTA_DIGEST) == 0 ? lo : SIZE_MAX;
}

static void progress(struct plan *p, const char *phase, uint64_t done, uint64_t total, bool last) {
        uint64_t t = now_monotonic_ms();
        if (!p->tty || (!last && t - p->shown_ms < 250))
                return;
        fprintf(stderr, "\rabctl: %s: %s %3llu%% (%.1f of %.1f MiB)   ", p->what, phase,
                (unsigned long long) (total ? done * 100 / total : 100), (double) done / 1048576,
                (double) total / 1048576);
        p->shown_ms = t;
}

/* Blocks of fd (a data partition), each hashed with the new salt: a block
 * the new image has at the same place (when in_place) stays; any other
 * match becomes the source of the blocks with that hash that have none
 * better (how). -EIO-like errors are the caller's fallback. */
static int scan(struct plan *p, int fd, const char *path, int hash_fd, bool in_place, How how,
                uint64_t *ret_scanned) {
        off_t end = lseek(fd, 0, SEEK_END);
        uint8_t d[DELTA_DIGEST], sb[DELTA_SB_SIZE];
        uint64_t size, pos, blocks;

        if (end < 0) {
                log_info("%s: cannot tell the size of %s (%s): downloading the whole image instead of a delta",
                         p->what, path, strerror(errno));
                return -EOPNOTSUPP;
        }
        size = (uint64_t) end / DELTA_BLOCK * DELTA_BLOCK;
        /* Only as far as the image in that slot goes, when its hash
         * partition says (a slot is larger than its image, often much);
         * else the whole partition. What is read is checked block by
         * block anyway. */
        if (hash_fd >= 0 && pread_full(hash_fd, sb, sizeof(sb), 0) >= 0 && delta_sb_data_blocks(sb, sizeof(sb), &blocks) >= 0)
                size = MIN(size, blocks * DELTA_BLOCK);
        _cleanup_free_ uint8_t *buf = malloc(SCAN_CHUNK);
        if (!buf)
                return log_error_errno(-ENOMEM, "Out of memory");
        for (pos = 0; pos < size;) {
                size_t k = (size_t) MIN((uint64_t) SCAN_CHUNK, size - pos);
                int r = pread_full(fd, buf, k, pos);
                if (r < 0) {
                        log_info("%s: reading %s at byte %llu failed (%s): downloading the whole image instead of "
                                 "a delta", p->what, path, (unsigned long long) pos, strerror(-r));
                        return -EOPNOTSUPP;
                }
                for (size_t off = 0; off < k; off += DELTA_BLOCK) {
                        uint64_t y = (pos + off) / DELTA_BLOCK;
                        delta_hash_block(p->t, buf + off, d);
                        /* In place: never written, so also a safe source for
                         * the other blocks with its hash. */
                        if (in_place && y < p->t->data_blocks && memcmp(d, level0(p, y), DELTA_DIGEST) == 0)
                                p->how[y] = HOW_IN_PLACE;
                        size_t g = want_find(p, d);
                        if (g == SIZE_MAX || p->group_best[g] >= how)
                                continue;
                        /* One local copy serves every block with that hash. */
                        p->group_best[g] = (uint8_t) how;
                        for (size_t i = g; i < p->t->data_blocks && memcmp(p->want[i].digest, d, DELTA_DIGEST) == 0;
                             i++) {
                                uint64_t b = p->want[i].block;
                                if (p->how[b] == HOW_IN_PLACE || (p->how[b] != HOW_FETCH && p->how[b] >= how))
                                        continue;
                                p->how[b] = (uint8_t) how;
                                p->from[b] = y;
                        }
                }
                pos += k;
                progress(p, in_place ? "reading this slot" : "reading the running slot", pos, size, pos == size);
        }
        *ret_scanned = size;
        return 0;
}

/* One block from fd at block y into out, if it still has the hash block b
 * wants. 1 when it has, 0 when not (fetch it), -EOPNOTSUPP on a read error. */
static int read_checked(struct plan *p, int fd, const char *path, uint64_t y, uint64_t b, uint8_t *out) {
        uint8_t d[DELTA_DIGEST];
        int r = pread_full(fd, out, DELTA_BLOCK, y * DELTA_BLOCK);
        if (r < 0) {
                log_info("%s: reading %s at byte %llu failed (%s): downloading the whole image instead of a delta",
                         p->what, path, (unsigned long long) (y * DELTA_BLOCK), strerror(-r));
                return -EOPNOTSUPP;
        }
        delta_hash_block(p->t, out, d);
        return memcmp(d, level0(p, b), DELTA_DIGEST) == 0;
}

struct mem {
        uint8_t *data;
        uint64_t base, size;
};

static int mem_sink(void *userdata, uint64_t offset, const uint8_t *buf, size_t n) {
        struct mem *m = userdata;
        if (offset < m->base || offset - m->base > m->size || n > m->size - (offset - m->base))
                return log_error_errno(-EFBIG, "The source sent bytes outside the hash tree");
        memcpy(m->data + (offset - m->base), buf, n);
        return 0;
}

/* Fetched bytes arrive in order, range by range, each range whole blocks:
 * each block is checked against its level-0 hash before it is written, so
 * a block changed in the registry or on the way is named as such (a full
 * download would find it by the blob's digest). */
struct fetch_sink {
        struct plan *p;
        const char *label;
        int fd;
        uint64_t done, total;
        uint64_t at;                  /* the block being filled, in bytes */
        size_t fill;
        uint8_t block[DELTA_BLOCK];
};

static int fetch_sink(void *userdata, uint64_t offset, const uint8_t *buf, size_t n) {
        struct fetch_sink *f = userdata;
        uint8_t d[DELTA_DIGEST];

        while (n > 0) {
                if (f->fill == 0)
                        f->at = offset;
                if (f->at % DELTA_BLOCK || offset != f->at + f->fill || f->at / DELTA_BLOCK >= f->p->t->data_blocks)
                        return log_error_errno(-EPROTO, "%s sent byte %llu out of order", f->label,
                                               (unsigned long long) offset);
                size_t k = MIN(n, DELTA_BLOCK - f->fill);
                memcpy(f->block + f->fill, buf, k);
                f->fill += k, offset += k, buf += k, n -= k;
                if (f->fill < DELTA_BLOCK)
                        continue;
                uint64_t b = f->at / DELTA_BLOCK;
                delta_hash_block(f->p->t, f->block, d);
                if (memcmp(d, level0(f->p, b), DELTA_DIGEST) != 0)
                        return log_error_errno(-EBADMSG, "Block %llu of %s (bytes %llu-%llu of its system layer) does "
                                               "not match the image's hash tree: it was corrupted or tampered with in "
                                               "the registry or on the way", (unsigned long long) b, f->label,
                                               (unsigned long long) f->at,
                                               (unsigned long long) (f->at + DELTA_BLOCK - 1));
                int r = pwrite_full(f->fd, f->block, DELTA_BLOCK, f->at);
                if (r < 0)
                        return log_error_errno(r, "Writing %s failed: %m", f->p->what);
                f->fill = 0;
                f->done += DELTA_BLOCK;
                progress(f->p, "fetching", f->done, f->total, f->done == f->total);
        }
        return 0;
}

static int write_block(struct plan *p, int fd, uint64_t b, const uint8_t *buf) {
        int r = pwrite_full(fd, buf, DELTA_BLOCK, b * DELTA_BLOCK);
        return r < 0 ? log_error_errno(r, "Writing %s failed: %m", p->what) : 0;
}

static void plan_done(struct plan *p) {
        free(p->want);
        free(p->group_best);
        free(p->how);
        free(p->from);
}

int delta_write_system(struct image_source *src, const char *what, int data_fd, int hash_fd,
                       const char *running_path, const char *running_hash_path) {
        _cleanup_free_ uint8_t *tree = NULL, *moved = NULL, *block = NULL;
        _cleanup_free_ struct oci_range *ranges = NULL;
        _cleanup_(plan_done) struct plan p = { .what = what, .tty = isatty(STDERR_FILENO) };
        _cleanup_close_ int run_fd = -1;
        struct delta_tree t;
        struct oci_range tr = { .offset = src->data_size, .length = src->hash_size };
        uint64_t got_tree = 0, got = 0, scanned = 0, nmoved = 0;
        uint64_t count[HOW_BUFFERED + 1] = {};
        char why[300];
        size_t nr = 0;
        int r;

        if (!src->ops->fetch_system_ranges)
                return -EOPNOTSUPP;
        p.started_ms = now_monotonic_ms();

        /* 1. The tree, checked up to the root hash. */
        if (src->hash_size < DELTA_SB_SIZE || src->hash_size > (1ull << 32))
                return log_error_errno(-EBADMSG, "%s: a hash tree of %llu bytes: refused", src->label,
                                       (unsigned long long) src->hash_size);
        tree = malloc(src->hash_size);
        if (!tree)
                return log_error_errno(-ENOMEM, "Out of memory for the hash tree (%llu bytes)",
                                       (unsigned long long) src->hash_size);
        struct mem m = { .data = tree, .base = src->data_size, .size = src->hash_size };
        r = src->ops->fetch_system_ranges(src, &tr, 1, 1, mem_sink, &m, &got_tree);
        if (r == -EOPNOTSUPP) {
                log_info("%s: %s does not honour Range requests (%s): downloading the whole image", what,
                         src->label, src->why_unsupported[0] ? src->why_unsupported : "no ranges");
                return -EOPNOTSUPP;
        }
        if (r < 0)
                return r;
        r = delta_tree_parse(tree, src->hash_size, src->data_size, src->hash_size, &t, why, sizeof(why));
        if (r >= 0)
                r = delta_tree_verify(&t, tree, src->roothash, why, sizeof(why));
        if (r < 0)
                return log_error_errno(r, "The hash tree of %s is not the one its UKI pins: %s", src->label, why);
        p.t = &t;
        p.tree = tree;

        /* 2. What is here already. */
        p.want = calloc(t.data_blocks, sizeof(*p.want));
        p.group_best = calloc(t.data_blocks, 1);
        p.how = calloc(t.data_blocks, 1);
        p.from = calloc(t.data_blocks, sizeof(*p.from));
        block = malloc(DELTA_BLOCK);
        if (!p.want || !p.group_best || !p.how || !p.from || !block)
                return log_error_errno(-ENOMEM, "Out of memory for the plan of %llu blocks",
                                       (unsigned long long) t.data_blocks);
        for (uint64_t b = 0; b < t.data_blocks; b++) {
                memcpy(p.want[b].digest, level0(&p, b), DELTA_DIGEST);
                p.want[b].block = b;
        }
        qsort(p.want, t.data_blocks, sizeof(*p.want), want_cmp);

        r = scan(&p, data_fd, what, hash_fd, true, HOW_MOVE, &scanned);
        if (r < 0)
                return r;
        if (running_path) {
                uint64_t s = 0;
                run_fd = open(running_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (run_fd < 0) {
                        log_info("%s: cannot read the running slot's data partition %s (%s): downloading the whole "
                                 "image", what, running_path, strerror(errno));
                        return -EOPNOTSUPP;
                }
                _cleanup_close_ int run_hash_fd = running_hash_path
                        ? open(running_hash_path, O_RDONLY | O_CLOEXEC | O_NOCTTY) : -1;
                r = scan(&p, run_fd, running_path, run_hash_fd, false, HOW_RUNNING, &s);
                if (r < 0)
                        return r;
                scanned += s;
        }

        /* 3. Moved blocks whose place is overwritten: into memory first. */
        for (uint64_t b = 0; b < t.data_blocks; b++) {
                uint64_t y = p.from[b];
                if (p.how[b] != HOW_MOVE || y >= t.data_blocks || p.how[y] == HOW_IN_PLACE)
                        continue;
                if ((nmoved + 1) * DELTA_BLOCK > MOVE_BUFFER_MAX) {
                        p.how[b] = HOW_FETCH;
                        continue;
                }
                uint8_t *n = realloc(moved, (nmoved + 1) * DELTA_BLOCK);
                if (!n)
                        return log_error_errno(-ENOMEM, "Out of memory");
                moved = n;
                r = read_checked(&p, data_fd, what, y, b, moved + nmoved * DELTA_BLOCK);
                if (r < 0)
                        return r;
                if (r == 0) {
                        p.how[b] = HOW_FETCH;
                        continue;
                }
                p.how[b] = HOW_BUFFERED;
                p.from[b] = nmoved++;
        }

        /* 4. The writes: copies, then the rest by range, then the tree. */
        for (uint64_t b = 0; b < t.data_blocks; b++) {
                if (p.how[b] == HOW_BUFFERED)
                        r = write_block(&p, data_fd, b, moved + p.from[b] * DELTA_BLOCK);
                else if (p.how[b] == HOW_MOVE || p.how[b] == HOW_RUNNING) {
                        bool run = p.how[b] == HOW_RUNNING;
                        r = read_checked(&p, run ? run_fd : data_fd, run ? running_path : what, p.from[b], b, block);
                        if (r == 0)
                                p.how[b] = HOW_FETCH;
                        if (r > 0)
                                r = write_block(&p, data_fd, b, block);
                }
                if (r < 0)
                        return r;
                count[p.how[b]]++;
        }
        ranges = calloc(MAX(count[HOW_FETCH], 1), sizeof(*ranges));
        if (!ranges)
                return log_error_errno(-ENOMEM, "Out of memory");
        for (uint64_t b = 0; b < t.data_blocks; b++)
                if (p.how[b] == HOW_FETCH)
                        ranges_append(ranges, &nr, b * DELTA_BLOCK, DELTA_BLOCK);
        struct fetch_sink fs = { .p = &p, .label = src->label, .fd = data_fd, .total = count[HOW_FETCH] * DELTA_BLOCK };
        r = src->ops->fetch_system_ranges(src, ranges, nr, DELTA_MAX_REQUESTS, fetch_sink, &fs, &got);
        if (p.tty)
                fprintf(stderr, "\n");
        if (r == -EOPNOTSUPP) {
                log_info("%s: %s stopped honouring Range requests (%s): downloading the whole image", what,
                         src->label, src->why_unsupported[0] ? src->why_unsupported : "no ranges");
                return -EOPNOTSUPP;
        }
        if (r < 0)
                return r;
        r = pwrite_full(hash_fd, tree, src->hash_size, 0);
        if (r < 0)
                return log_error_errno(r, "Writing the hash tree of %s failed: %m", what);

        double secs = (double) (now_monotonic_ms() - p.started_ms) / 1000;
        uint64_t reused = (t.data_blocks - count[HOW_FETCH]) * DELTA_BLOCK;
        /* "Wrote N MiB into slot X" as a full download says it, then what the delta saved. */
        log_info("Wrote %.1f MiB into %s by delta in %.1f s: fetched %.1f MiB in %u requests (%.1f MiB of blocks, "
                 "the %.1f MiB tree), reused %.1f MiB (%.1f MiB in place, %.1f MiB from the running slot, %.1f MiB "
                 "moved); %.1f MiB of local blocks hashed",
                 (double) (src->data_size + src->hash_size) / 1048576, what, secs,
                 (double) (got + got_tree) / 1048576, src->requests, (double) got / 1048576,
                 (double) got_tree / 1048576, (double) reused / 1048576,
                 (double) count[HOW_IN_PLACE] * DELTA_BLOCK / 1048576,
                 (double) count[HOW_RUNNING] * DELTA_BLOCK / 1048576,
                 (double) (count[HOW_MOVE] + count[HOW_BUFFERED]) * DELTA_BLOCK / 1048576,
                 (double) scanned / 1048576);
        return 0;
}
