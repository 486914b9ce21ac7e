/* SPDX-License-Identifier: MIT */
/* abctl repair: a slot whose blocks failed dm-verity after boot (the init's
 * watcher recorded them, efi/damage.h) gets only its bad blocks back, and
 * returns to service (README "Self-healing").
 *
 * The slot's own hash tree, proven against the root hash its UKI pins,
 * names the hash of every block: sha256(salt || block). Every block of the
 * slot that does not match (the recorded ones, and any other the read-back
 * finds) is taken from the other slot when a block there hashes the same
 * with this slot's salt, else fetched from the registry reference the
 * install recorded (abctl/origin.h) with HTTP Range; each is checked against
 * the tree before it is written. A tree that itself does not verify is taken
 * the same way, whole, from the other slot or the registry. Then the whole
 * slot is verified (abctl_verify_image) and returned to service through the
 * engine (SLOT_OP_REPAIRED), and the damage record deleted. Nothing is
 * written before every check that needs no write has passed. */

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "../common/unaligned.h"
#include "../efi/damage.h"
#include "../efi/uki.h"
#include "abctl.h"
#include "blockdev.h"
#include "delta.h"
#include "esp.h"
#include "ocifetch.h"
#include "origin.h"
#include "source.h"

struct needed {
        uint64_t block;                 /* in the slot's data */
        uint8_t hash[DELTA_DIGEST];     /* what the tree says it must hash to */
        int64_t other;                  /* a block of the other slot with that hash, or -1 */
        bool done;
};

struct repair {
        Slot target;
        char roothash[ROOTHASH_HEX_MAX + 1];
        int data_fd, hash_fd;
        struct delta_tree t;
        uint64_t data_size;
        uint8_t *tree;                  /* t.tree_bytes, the slot's own tree (a good copy, when it did not verify) */
        uint8_t *disk_tree;             /* the tree as on the disk, when tree is a good copy: written at the end */
        struct needed *need;
        size_t n_need;
        struct needed **want;           /* the blocks from the registry, by block; fetched holds them */
        size_t n_want;
        unsigned from_other, from_registry, tree_blocks;
        uint64_t fetched_bytes;
        unsigned requests;
        uint8_t *fetched;               /* n_need blocks, by need index, for the registry's sink */
};

static void part_dev_releasep(struct part_dev *p) {
        part_dev_release(p);
}

static int cmp_need_hash(const void *a, const void *b) {
        return memcmp(((const struct needed *) a)->hash, ((const struct needed *) b)->hash, DELTA_DIGEST);
}

static int cmp_need_block(const void *a, const void *b) {
        uint64_t x = ((const struct needed *) a)->block, y = ((const struct needed *) b)->block;
        return x < y ? -1 : x > y;
}

/* The slot's tree: its superblock checked field by field, then all of it. */
static int read_tree(struct repair *rp, uint64_t data_part_bytes, uint64_t hash_part_bytes) {
        uint8_t sb[DELTA_SB_SIZE];
        char why[256];
        int r = pread_full(rp->hash_fd, sb, sizeof(sb), 0);
        if (r < 0)
                return log_error_errno(r, "Cannot read slot %s's hash tree: %m", slot_to_string(rp->target));
        rp->data_size = le64(sb + 72) * DELTA_BLOCK;
        if (rp->data_size > data_part_bytes || rp->data_size / DELTA_BLOCK != le64(sb + 72))
                return log_error_errno(-EBADMSG, "Slot %s's hash tree claims %llu data blocks, more than its data "
                                       "partition holds: install a new image into it (abctl install). Nothing "
                                       "was changed.", slot_to_string(rp->target), (unsigned long long) le64(sb + 72));
        r = delta_tree_parse(sb, sizeof(sb), rp->data_size, hash_part_bytes, &rp->t, why, sizeof(why));
        if (r < 0)
                return log_error_errno(r, "Slot %s's hash tree cannot be used for a repair: %s. Install a new image "
                                       "into it (abctl install). Nothing was changed.", slot_to_string(rp->target), why);
        rp->tree = malloc(rp->t.tree_bytes);
        if (!rp->tree)
                return log_error_errno(-ENOMEM, "Out of memory");
        r = pread_full(rp->hash_fd, rp->tree, rp->t.tree_bytes, 0);
        if (r < 0)
                return log_error_errno(r, "Cannot read slot %s's hash tree: %m", slot_to_string(rp->target));
        return 0;
}

/* Every data block of the slot that does not hash to its level-0 entry. */
static int find_bad_blocks(struct repair *rp) {
        static uint8_t buf[DELTA_BLOCK];
        uint8_t h[DELTA_DIGEST];
        for (uint64_t b = 0; b < rp->t.data_blocks; b++) {
                int r = pread_full(rp->data_fd, buf, sizeof(buf), b * DELTA_BLOCK);
                if (r < 0 && r != -EIO)
                        return log_error_errno(r, "Cannot read block %llu of slot %s: %m", (unsigned long long) b,
                                               slot_to_string(rp->target));
                const uint8_t *want = rp->tree + delta_tree_level0_offset(&rp->t, b);
                if (r >= 0) {
                        delta_hash_block(&rp->t, buf, h);
                        if (memcmp(h, want, DELTA_DIGEST) == 0)
                                continue;
                }
                if ((rp->n_need & 63) == 0) {
                        struct needed *n = realloc(rp->need, (rp->n_need + 64) * sizeof(*n));
                        if (!n)
                                return log_error_errno(-ENOMEM, "Out of memory");
                        rp->need = n;
                }
                rp->need[rp->n_need] = (struct needed) { .block = b, .other = -1 };
                memcpy(rp->need[rp->n_need].hash, want, DELTA_DIGEST);
                rp->n_need++;
        }
        return 0;
}

/* Writes block content buf at need n, after checking it against the tree. */
static int put_block(struct repair *rp, struct needed *n, const uint8_t *buf, const char *from) {
        uint8_t h[DELTA_DIGEST];
        delta_hash_block(&rp->t, buf, h);
        if (memcmp(h, n->hash, DELTA_DIGEST) != 0)
                return log_error_errno(-EBADMSG, "Block %llu from %s does not match slot %s's hash tree: not "
                                       "written", (unsigned long long) n->block, from, slot_to_string(rp->target));
        int r = pwrite_full(rp->data_fd, buf, DELTA_BLOCK, n->block * DELTA_BLOCK);
        if (r < 0)
                return log_error_errno(r, "Writing block %llu of slot %s failed: %m", (unsigned long long) n->block,
                                       slot_to_string(rp->target));
        n->done = true;
        return 0;
}

/* Blocks of the other slot's data partition that hash, with this slot's
 * salt, to a needed hash: noted, not written yet. Read-only; a read error
 * ends the search. */
static int match_other_slot(struct repair *rp, const char *other_path, uint64_t other_bytes) {
        static uint8_t buf[DELTA_BLOCK];
        struct needed key;
        if (!other_path || rp->n_need == 0)
                return 0;
        _cleanup_close_ int fd = open(other_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                log_info("Slot %s's data partition cannot be read (%m): no blocks from it",
                         slot_to_string(slot_other(rp->target)));
                return 0;
        }
        qsort(rp->need, rp->n_need, sizeof(*rp->need), cmp_need_hash);
        for (uint64_t b = 0; b < other_bytes / DELTA_BLOCK; b++) {
                if (pread_full(fd, buf, sizeof(buf), b * DELTA_BLOCK) < 0)
                        break;
                delta_hash_block(&rp->t, buf, key.hash);
                struct needed *n = bsearch(&key, rp->need, rp->n_need, sizeof(*rp->need), cmp_need_hash);
                if (!n)
                        continue;
                /* Equal hashes sit together: every needed block with this content. */
                while (n > rp->need && memcmp(n[-1].hash, key.hash, DELTA_DIGEST) == 0)
                        n--;
                for (; n < rp->need + rp->n_need && memcmp(n->hash, key.hash, DELTA_DIGEST) == 0; n++)
                        if (n->other < 0)
                                n->other = (int64_t) b;
        }
        qsort(rp->need, rp->n_need, sizeof(*rp->need), cmp_need_block);
        return 0;
}

/* The blocks noted in the other slot, read again and written (put_block
 * checks each against the tree once more). */
static int write_from_other_slot(struct repair *rp, const char *other_path) {
        static uint8_t buf[DELTA_BLOCK];
        char from[64];
        _cleanup_close_ int fd = -1;
        if (!other_path)
                return 0;  /* nothing was noted */
        (void) snprintf(from, sizeof(from), "slot %s", slot_to_string(slot_other(rp->target)));
        for (size_t i = 0; i < rp->n_need; i++) {
                struct needed *n = &rp->need[i];
                if (n->other < 0 || n->done)
                        continue;
                if (fd < 0 && (fd = open(other_path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0)
                        return log_error_errno(-errno, "Cannot read slot %s's data partition: %m",
                                               slot_to_string(slot_other(rp->target)));
                int r = pread_full(fd, buf, sizeof(buf), (uint64_t) n->other * DELTA_BLOCK);
                if (r < 0)
                        return log_error_errno(r, "Cannot read block %lld of slot %s: %m", (long long) n->other,
                                               slot_to_string(slot_other(rp->target)));
                r = put_block(rp, n, buf, from);
                if (r < 0)
                        return r;
                rp->from_other++;
        }
        return 0;
}

struct range_sink {
        struct repair *rp;
        struct needed **want;           /* the blocks asked for, sorted by block */
        size_t n;
        uint64_t base;                  /* stream offset of data block 0 (0: data comes first) */
};

/* Chunks may split a block; each byte goes to its block's buffer. */
static int range_sink(void *userdata, uint64_t offset, const uint8_t *buf, size_t len) {
        struct range_sink *s = userdata;
        while (len > 0) {
                uint64_t b = (offset - s->base) / DELTA_BLOCK, in = (offset - s->base) % DELTA_BLOCK;
                size_t lo = 0, hi = s->n;
                while (lo < hi) {
                        size_t mid = (lo + hi) / 2;
                        if (s->want[mid]->block < b)
                                lo = mid + 1;
                        else
                                hi = mid;
                }
                size_t take = (size_t) (DELTA_BLOCK - in) < len ? (size_t) (DELTA_BLOCK - in) : len;
                if (lo < s->n && s->want[lo]->block == b)
                        memcpy(s->rp->fetched + lo * DELTA_BLOCK + in, buf, take);
                offset += take;
                buf += take;
                len -= take;
        }
        return 0;
}

/* The registry reference by the manifest digest the install recorded: the
 * tag may name another image by now. */
static void origin_reference(const struct slot_origin *o, char *ret, size_t size) {
        struct oci_ref ref;
        char why[256];
        if (o->kind == ORIGIN_REGISTRY && o->digest[0] && oci_ref_parse(o->reference, &ref, why, sizeof(why)) >= 0 &&
            ref.kind == OCI_REF_REGISTRY)
                (void) snprintf(ret, size, "%s/%s@%s", ref.registry, ref.repository, o->digest);
        else
                (void) snprintf(ret, size, "%s", o->reference);
}

static int open_origin(struct repair *rp, const char *esp, const struct oci_options *oo, struct image_source *src) {
        struct slot_origin o;
        char ref[ORIGIN_REFERENCE_MAX + 160];
        int r = origin_read(esp, rp->target, rp->roothash, &o);
        if (r < 0 || o.kind == ORIGIN_FILES) {
                log_error("Slot %s has %s: the blocks no local slot holds cannot be fetched. Install a new image "
                          "into it (abctl install).", slot_to_string(rp->target),
                          r == -ESTALE ? "an origin record for another image"
                          : r < 0     ? "no origin record (it was not installed from a registry or layout)"
                                      : "an origin of files, not a registry");
                return -ENOENT;
        }
        origin_reference(&o, ref, sizeof(ref));
        r = image_source_open_oci(src, ref, oo);
        if (r < 0)
                return r;
        if (!streq(src->roothash, rp->roothash) || src->data_size != rp->data_size || !src->ops->fetch_system_ranges) {
                log_error("%s is not the image slot %s was installed from (its UKI pins %.16s..., slot %s's "
                          "%.16s...): not fetching from it", ref, slot_to_string(rp->target), src->roothash,
                          slot_to_string(rp->target), rp->roothash);
                image_source_close(src);
                return -ESTALE;
        }
        log_info("Fetching the rest from %s (slot %s's origin)", ref, slot_to_string(rp->target));
        return 0;
}

/* The blocks no local slot holds, by Range from the slot's origin, into
 * memory, each checked against the tree: written only after every check. */
static int fetch_from_registry(struct repair *rp, const char *esp, const struct oci_options *oo) {
        _cleanup_free_ struct oci_range *ranges = NULL;
        struct image_source src = {};
        uint8_t h[DELTA_DIGEST];
        size_t n = 0, nr = 0;
        int r;

        for (size_t i = 0; i < rp->n_need; i++)
                n += rp->need[i].other < 0;
        if (n == 0)
                return 0;
        ranges = calloc(n + 1, sizeof(*ranges));
        rp->want = calloc(n, sizeof(struct needed *)); /* NOLINT(bugprone-sizeof-expression): pointers */
        rp->fetched = calloc(n, DELTA_BLOCK);
        if (!ranges || !rp->want || !rp->fetched)
                return log_error_errno(-ENOMEM, "Out of memory");
        for (size_t i = 0; i < rp->n_need; i++)
                if (rp->need[i].other < 0) {
                        rp->want[rp->n_want++] = &rp->need[i];
                        ranges_append(ranges, &nr, rp->need[i].block * DELTA_BLOCK, DELTA_BLOCK);
                }
        r = open_origin(rp, esp, oo, &src);
        if (r < 0)
                return r;
        struct range_sink sink = { .rp = rp, .want = rp->want, .n = rp->n_want };
        uint64_t bytes = 0;
        r = src.ops->fetch_system_ranges(&src, ranges, nr, DELTA_MAX_REQUESTS, range_sink, &sink, &bytes);
        rp->fetched_bytes += bytes;
        rp->requests += src.requests;
        if (r == -EOPNOTSUPP)
                log_error("%s does not serve byte ranges (%s): repair fetches only blocks; install the image "
                          "again instead (abctl install)", src.label, src.why_unsupported);
        image_source_close(&src);
        if (r < 0)
                return r;
        for (size_t i = 0; i < rp->n_want; i++) {
                delta_hash_block(&rp->t, rp->fetched + i * DELTA_BLOCK, h);
                if (memcmp(h, rp->want[i]->hash, DELTA_DIGEST) != 0)
                        return log_error_errno(-EBADMSG, "Block %llu from the registry does not match slot %s's "
                                               "hash tree: not written", (unsigned long long) rp->want[i]->block,
                                               slot_to_string(rp->target));
        }
        return 0;
}

static int write_from_registry(struct repair *rp) {
        if (!rp->want || !rp->fetched)
                return 0;
        for (size_t i = 0; i < rp->n_want; i++) {
                int r = put_block(rp, rp->want[i], rp->fetched + i * DELTA_BLOCK, "the registry");
                if (r < 0)
                        return r;
                rp->from_registry++;
        }
        return 0;
}

struct tree_sink {
        uint8_t *buf;
        uint64_t base, size;
};

static int tree_sink(void *userdata, uint64_t offset, const uint8_t *buf, size_t len) {
        struct tree_sink *t = userdata;
        if (offset < t->base || offset - t->base > t->size || len > t->size - (offset - t->base))
                return -ERANGE;
        memcpy(t->buf + (offset - t->base), buf, len);
        return 0;
}

/* A tree that does not verify: the other slot's (the same image) or the
 * registry's, proven against the pinned root hash; it replaces rp->tree,
 * and write_tree writes it where it differs once every check passed. */
static int repair_tree(struct repair *rp, const char *why_bad, const char *other_hash_path, const char *esp,
                       const struct oci_options *oo) {
        _cleanup_free_ uint8_t *good = malloc(rp->t.tree_bytes);
        char why[256];
        bool ok = false;

        if (!good)
                return log_error_errno(-ENOMEM, "Out of memory");
        _cleanup_close_ int fd = other_hash_path ? open(other_hash_path, O_RDONLY | O_CLOEXEC | O_NOCTTY) : -1;
        if (fd >= 0 && pread_full(fd, good, rp->t.tree_bytes, 0) >= 0 &&
            delta_tree_verify(&rp->t, good, rp->roothash, why, sizeof(why)) >= 0 &&
            memcmp(good, rp->tree, DELTA_SB_SIZE) == 0) {
                log_info("Slot %s's hash tree does not verify (%s); slot %s holds the same one", slot_to_string(rp->target),
                         why_bad, slot_to_string(slot_other(rp->target)));
                ok = true;
        }
        if (!ok) {
                struct image_source src = {};
                if (open_origin(rp, esp, oo, &src) < 0)
                        return log_error_errno(-EBADMSG, "Slot %s's hash tree does not verify against the root hash "
                                               "its UKI pins (%s), and no good copy was found: install a new image "
                                               "into it (abctl install). Nothing was changed.",
                                               slot_to_string(rp->target), why_bad);
                struct oci_range range = { .offset = src.data_size, .length = rp->t.tree_bytes };
                struct tree_sink ts = { .buf = good, .base = src.data_size, .size = rp->t.tree_bytes };
                uint64_t bytes = 0;
                int r = src.ops->fetch_system_ranges(&src, &range, 1, 1, tree_sink, &ts, &bytes);
                rp->fetched_bytes += bytes;
                rp->requests += src.requests;
                image_source_close(&src);
                if (r < 0)
                        return log_error_errno(r, "Fetching slot %s's hash tree from its origin failed: %m. Nothing "
                                               "was changed.", slot_to_string(rp->target));
                r = delta_tree_verify(&rp->t, good, rp->roothash, why, sizeof(why));
                if (r < 0)
                        return log_error_errno(r, "The hash tree from slot %s's origin does not verify either (%s): "
                                               "not written. Nothing was changed.", slot_to_string(rp->target), why);
                /* The levels verified with this slot's salt; the superblock
                 * that names the salt is covered by no hash. */
                if (memcmp(good, rp->tree, DELTA_SB_SIZE) != 0)
                        return log_error_errno(-EBADMSG, "The hash tree from slot %s's origin has another superblock "
                                               "than the slot's (salt, sizes): it is not the tree the slot was "
                                               "installed with; not written. Install a new image into it (abctl "
                                               "install). Nothing was changed.", slot_to_string(rp->target));
        }
        /* Block 0 (the superblock, the same, and padding no hash covers)
         * stays as it is: only verified level blocks are written, at the
         * end (write_tree), after every check. */
        memcpy(good, rp->tree, DELTA_BLOCK);
        rp->disk_tree = rp->tree;
        rp->tree = TAKE_PTR(good);
        return 0;
}

/* The good copy's level blocks where the disk's differ. */
static int write_tree(struct repair *rp) {
        if (!rp->disk_tree)
                return 0;
        for (uint64_t b = 1; b < rp->t.tree_bytes / DELTA_BLOCK; b++) {
                if (memcmp(rp->tree + b * DELTA_BLOCK, rp->disk_tree + b * DELTA_BLOCK, DELTA_BLOCK) == 0)
                        continue;
                int r = pwrite_full(rp->hash_fd, rp->tree + b * DELTA_BLOCK, DELTA_BLOCK, b * DELTA_BLOCK);
                if (r < 0)
                        return log_error_errno(r, "Writing hash block %llu of slot %s failed: %m",
                                               (unsigned long long) b, slot_to_string(rp->target));
                rp->tree_blocks++;
        }
        return 0;
}

/* Which slot to repair, and its damage record; refusals say why. */
static int pick(struct ctx *c, Slot *target, struct slot_damage *ret) {
        struct slot_damage d[_SLOT_MAX];
        bool has[_SLOT_MAX] = {};
        Slot run = c->running, other = slot_other(run);

        for (int s = 0; s < _SLOT_MAX; s++)
                has[s] = abctl_damage_read(c, s, &d[s]);
        if (*target < 0)
                *target = has[other] || !has[run] ? other : run;
        if (*target == run)
                return log_error_errno(-EBUSY, "Refusing to repair slot %s: it is the running slot, and its blocks "
                                       "cannot be rewritten under it. Boot slot %s (abctl rollback, or set-active %s, "
                                       "and reboot) and run 'abctl repair %s' there. Nothing was changed.",
                                       slot_to_string(run), slot_to_string(other), slot_to_string(other),
                                       slot_to_string(run));
        if (!has[*target])
                return log_error_errno(-ENOENT, "Slot %s has no damage record (EFI variable %s-%s in %s): nothing "
                                       "was recorded to repair. abctl status shows damage when the init found it. "
                                       "Nothing was changed.", slot_to_string(*target), damage_var_name(*target),
                                       EFI_ABSWITCH_GUID, c->efivars);
        *ret = d[*target];
        return 0;
}

int abctl_repair(struct ctx *c, Slot target, const struct oci_options *oo) {
        _cleanup_(part_dev_releasep) struct part_dev data = PART_DEV_NULL, hash = PART_DEV_NULL,
                                                     odata = PART_DEV_NULL, ohash = PART_DEV_NULL;
        _cleanup_(esp_close) struct esp esp = {};
        struct repair rp = { .data_fd = -1, .hash_fd = -1 };
        struct slot_damage dmg = {};
        struct uki_info info = {};
        _cleanup_free_ char *uki = NULL;
        char why[512];
        int r;

        /* c->view: read under the install lock (abctl_lock_install). */
        r = pick(c, &target, &dmg);
        if (r < 0)
                return r;
        rp.target = target;
        struct slot_state seen = c->view.st[target];
        Slot other = slot_other(target);
        const struct slot_partitions *p = &c->view.layout.slot[target], *q = &c->view.layout.slot[other];
        if (!p->present)
                return log_error_errno(-ENOENT, "Slot %s has no partitions on %s. Nothing was changed.",
                                       slot_to_string(target), c->disk);

        /* Would the slot go back into service? Asked before any write. */
        struct slot_op_request req = { .op = SLOT_OP_REPAIRED, .running = c->running, .target = target };
        struct slot_op_result res;
        r = slots_apply_op(&req, c->view.st, &res, why, sizeof(why));
        if (r < 0)
                return log_error_errno(r, "Refusing to repair slot %s: %s. Nothing was changed.", slot_to_string(target),
                                       why);

        r = esp_open(c, &esp);
        if (r >= 0)
                r = esp_uki_path(esp.dir, target, &uki);
        if (r >= 0)
                r = uki_read_info(uki, &info);
        if (r < 0 || !info.roothash[0])
                return log_error_errno(r < 0 ? r : -ENOKEY, "Cannot read the root hash slot %s's UKI pins%s%s: the "
                                       "repair has nothing to check blocks against. Nothing was changed.",
                                       slot_to_string(target), uki ? " from " : "", strempty(uki));
        (void) snprintf(rp.roothash, sizeof(rp.roothash), "%s", info.roothash);
        if (!streq(dmg.roothash, rp.roothash)) {
                log_notice("Slot %s's damage record is for root hash %.16s..., but its UKI now pins %.16s...: a new "
                           "image was installed since; deleting the stale record", slot_to_string(target),
                           dmg.roothash, rp.roothash);
                (void) damage_clear(c->efivars, target);
                return log_error_errno(-ESTALE, "Nothing to repair in slot %s.", slot_to_string(target));
        }

        r = part_dev_get(c->disk, p->data_partno, p->data_start, p->data_size, true, &data);
        if (r >= 0)
                r = part_dev_get(c->disk, p->hash_partno, p->hash_start, p->hash_size, true, &hash);
        if (r < 0)
                return log_error_errno(r, "Cannot get block devices for slot %s's partitions on %s: %m. Nothing was "
                                       "changed.", slot_to_string(target), c->disk);
        if (q->present) {
                if (part_dev_get(c->disk, q->data_partno, q->data_start, q->data_size, false, &odata) < 0 ||
                    part_dev_get(c->disk, q->hash_partno, q->hash_start, q->hash_size, false, &ohash) < 0)
                        log_info("Slot %s's partitions cannot be read: no blocks from it", slot_to_string(other));
        }
        _cleanup_close_ int data_fd = open(data.path, O_RDWR | O_CLOEXEC | O_NOCTTY);
        _cleanup_close_ int hash_fd = open(hash.path, O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (data_fd < 0 || hash_fd < 0)
                return log_error_errno(-errno, "Cannot open slot %s's partitions: %m. Nothing was changed.",
                                       slot_to_string(target));
        rp.data_fd = data_fd;
        rp.hash_fd = hash_fd;

        printf("Repairing slot %s: %u damaged block(s) recorded", slot_to_string(target), dmg.n);
        for (unsigned i = 0; i < dmg.n && i < 8; i++)
                printf("%s%s %llu", i ? ", " : " (", damage_kind_to_string(dmg.blocks[i].kind),
                       (unsigned long long) dmg.blocks[i].block);
        printf("%s\n", dmg.n > 8 ? ", ...)" : dmg.n ? ")" : "");

        r = read_tree(&rp, p->data_size * 512, p->hash_size * 512);
        if (r >= 0 && delta_tree_verify(&rp.t, rp.tree, rp.roothash, why, sizeof(why)) < 0)
                r = repair_tree(&rp, why, ohash.path, esp.dir, oo);
        if (r >= 0)
                r = find_bad_blocks(&rp);
        if (r >= 0)
                r = match_other_slot(&rp, odata.path, q->present ? q->data_size * 512 : 0);
        if (r >= 0)
                r = fetch_from_registry(&rp, esp.dir, oo);
        /* Every check passed: the writes. */
        bool wrote = r >= 0;
        if (r >= 0)
                r = write_tree(&rp);
        if (r >= 0)
                r = write_from_other_slot(&rp, odata.path);
        if (r >= 0)
                r = write_from_registry(&rp);
        if (r >= 0)
                r = blockdev_flush(data_fd);
        if (r >= 0)
                r = blockdev_flush(hash_fd);
        free(rp.tree);
        free(rp.disk_tree);
        free(rp.fetched);
        free(rp.want);
        free(rp.need);
        printf("Rewrote %u block(s) of slot %s: %u from slot %s, %u from the registry (%llu bytes in %u "
               "request(s))%s\n", rp.from_other + rp.from_registry + rp.tree_blocks, slot_to_string(target),
               rp.from_other, slot_to_string(other), rp.from_registry, (unsigned long long) rp.fetched_bytes,
               rp.requests, rp.tree_blocks ? ", and hash tree blocks" : "");
        if (r < 0 && !wrote)
                return log_error_errno(r, "Slot %s cannot be repaired (see above); it stays out of service. Nothing "
                                       "was changed.", slot_to_string(target));
        if (r < 0)
                return log_error_errno(r, "The repair of slot %s is incomplete (see above); it stays out of service",
                                       slot_to_string(target));

        r = abctl_verify_image(data.path, hash.path, rp.roothash);
        if (r < 0)
                return log_error_errno(r, "Slot %s does not verify after the repair: it stays out of service; install "
                                       "a new image into it (abctl install)", slot_to_string(target));
        /* Only from the state the repair started from: what another
         * operator set meanwhile (set-active --force) is not undone. */
        r = abctl_apply_if(c, SLOT_OP_REPAIRED, target, &seen);
        if (r < 0 && r != -ESTALE)
                return r;
        int e = damage_clear(c->efivars, target);
        if (e < 0)
                log_warning_errno(e, "Failed to delete slot %s's damage record: %m", slot_to_string(target));
        if (r == -ESTALE) {
                char st[48];
                slot_state_format(seen, st);
                printf("Slot %s verifies against the root hash its UKI pins; another abctl changed its state during "
                       "the repair (now %s): left as that one set it\n", slot_to_string(target), st);
                return 0;
        }
        printf("Slot %s verifies against the root hash its UKI pins and is back in service\n", slot_to_string(target));
        return 0;
}
