/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <fcntl.h>
#include <libcryptsetup.h>
#include <libdevmapper.h>
#include <nettle/nettle-meta.h>
#include <stdio.h>

#include "../common/log.h"
#include "../common/macro.h"
#include "verity.h"

static void crypt_freep(struct crypt_device **cd) {
        if (*cd)
                crypt_free(*cd);
}

static void log_from_cryptsetup(int level, const char *msg, void *usrptr) {
        (void) usrptr;
        size_t n = strlen(msg);
        while (n > 0 && msg[n - 1] == '\n')
                n--;
        /* libcryptsetup's errors are explained by our caller; keep them for debugging. */
        log_debug("libcryptsetup%s: %.*s", level == CRYPT_LOG_ERROR ? " error" : "", (int) n, msg);
}

void verity_log_to_debug(void) {
        crypt_set_log_callback(NULL, log_from_cryptsetup, NULL);
        if (log_get_max_level() >= LOG_DEBUG)
                crypt_set_debug_level(CRYPT_DEBUG_ALL);
}

int verity_unhex(const char *s, unsigned char *out, size_t max, size_t *ret_len) {
        size_t n = strlen(s);
        if (n == 0 || n % 2 != 0 || n / 2 > max)
                return -EINVAL;
        for (size_t i = 0; i < n; i += 2) {
                if (!isxdigit((unsigned char) s[i]) || !isxdigit((unsigned char) s[i + 1]))
                        return -EINVAL;
                char b[3] = { s[i], s[i + 1], 0 };
                out[i / 2] = (unsigned char) strtoul(b, NULL, 16);
        }
        *ret_len = n / 2;
        return 0;
}

static int activate(struct crypt_device *cd, const char *name, const unsigned char *key,
                    size_t key_len, uint32_t flags) {
        return crypt_activate_by_volume_key(cd, name, (const char *) key, key_len,
                                            CRYPT_ACTIVATE_READONLY | flags);
}

static void dm_task_destroyp(struct dm_task **t) {
        if (*t)
                dm_task_destroy(*t);
}

/* Puts opt ("restart_on_corruption") into the live verity table of name:
 * reads the table, adds opt to its optional parameters, loads that as the
 * inactive table and resumes, which swaps it in. Cheaper than removing and
 * re-creating the device (the removal waits for an RCU grace period). */
static int verity_add_option(const char *name, const char *opt) {
        _cleanup_(dm_task_destroyp) struct dm_task *t = NULL, *load = NULL, *resume = NULL;
        uint64_t start, length;
        char *type = NULL, *params = NULL;

        t = dm_task_create(DM_DEVICE_TABLE);
        if (!t || !dm_task_set_name(t, name) || !dm_task_run(t))
                return -EIO;
        if (dm_get_next_target(t, NULL, &start, &length, &type, &params) != NULL || !type || !streq(type, "verity") ||
            !params)
                return -EINVAL; /* one verity target, as we created it */

        /* <version> <data> <hash> <data bs> <hash bs> <blocks> <hash start> <alg> <digest> <salt> [<#opt> <opt>...] */
        char table[1024], *f[10], *save = NULL, copy[1024];
        size_t plen = strlen(params);
        if (plen >= sizeof(copy))
                return -E2BIG;
        memcpy(copy, params, plen + 1);
        size_t n = 0;
        for (char *tok = strtok_r(copy, " ", &save); tok && n < 10; tok = strtok_r(NULL, " ", &save))
                f[n++] = tok;
        if (n < 10)
                return -EINVAL;
        char *rest = strtok_r(NULL, "", &save);
        unsigned nopt = 0;
        int used = 0;
        if (rest && sscanf(rest, "%u %n", &nopt, &used) < 1)
                return -EINVAL;
        (void) snprintf(table, sizeof(table), "%s %s %s %s %s %s %s %s %s %s %u %s%s%s", f[0], f[1], f[2], f[3], f[4],
                        f[5], f[6], f[7], f[8], f[9], nopt + 1, rest ? rest + used : "", rest && rest[used] ? " " : "",
                        opt);

        log_debug("dm-verity: reloading %s as: %s", name, table);
        load = dm_task_create(DM_DEVICE_RELOAD);
        if (!load || !dm_task_set_name(load, name) || !dm_task_set_ro(load) ||
            !dm_task_add_target(load, start, length, "verity", table) || !dm_task_run(load))
                return -EIO;
        resume = dm_task_create(DM_DEVICE_RESUME);
        if (!resume || !dm_task_set_name(resume, name) || !dm_task_run(resume))
                return -EIO;
        return 0;
}

/* A hash by libcryptsetup's name for it ("sha256"), from nettle, which
 * libcryptsetup hashes with too: the SHA-2 family and SHA-1, what
 * veritysetup trees use. NULL for another (the kernel's check then
 * decides); nettle_get_hashes() would link in every hash nettle has. */
static const struct nettle_hash *hash_by_name(const char *name) {
        static const struct nettle_hash *const hashes[] = { &nettle_sha256, &nettle_sha512, &nettle_sha384,
                                                            &nettle_sha224, &nettle_sha1 };
        for (size_t i = 0; i < ELEMENTSOF(hashes); i++)
                if (streq(hashes[i]->name, name))
                        return hashes[i];
        return NULL;
}

/* hash(salt || data): dm-verity's hash type 1. */
static void hash_digest(const struct nettle_hash *h, void *ctx, const void *salt, size_t salt_len, const void *data,
                        size_t len, unsigned char *out) {
        h->init(ctx);
        if (salt_len > 0)
                h->update(ctx, salt_len, salt);
        h->update(ctx, len, data);
        h->digest(ctx, h->digest_size, out);
}

static int read_block(const char *dev, uint64_t offset, void *buf, size_t len) {
        _cleanup_close_ int fd = open(dev, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        ssize_t n = pread(fd, buf, len, (off_t) offset);
        return n == (ssize_t) len ? 0 : n < 0 ? -errno : -EIO;
}

/* Checks the hash tree path from the root hash down to the first data block,
 * the path a read of that block makes the kernel check: the top hash block
 * against the root hash, each level's first digest against the block below,
 * down to the data block. The geometry is dm-verity's (drivers/md/
 * dm-verity-target.c, verity_ctr: levels, hash_level_block) with the hash
 * start libcryptsetup puts into the table (VERITY_hash_offset_block: the
 * block after the superblock). 0 when the path verifies, -EKEYREJECTED when
 * a digest differs, another error when it could not be checked (a hash
 * nettle lacks, a hash type or size this does not handle): the caller then
 * leaves the verdict to the kernel. */
static int check_first_block(const struct crypt_params_verity *vp, const char *data_dev, const char *hash_dev,
                             const unsigned char *root, size_t digest_size) {
        _cleanup_free_ unsigned char *block = NULL;
        unsigned char want[64], got[64];
        int r;

        if (vp->hash_type != 1 || (vp->flags & CRYPT_VERITY_NO_HEADER) || digest_size > sizeof(want) ||
            vp->data_block_size < 512 || vp->data_block_size > 65536 || vp->hash_block_size < 512 ||
            vp->hash_block_size > 65536 || vp->data_size == 0 || !vp->hash_name)
                return -EOPNOTSUPP;
        /* Digests per hash block, a power of two: each takes a slot of the
         * digest size rounded up to one (hash type 1). */
        unsigned bits = 0;
        while (((uint64_t) vp->hash_block_size >> (bits + 1)) >= digest_size)
                bits++;
        unsigned levels = 0;
        while (levels < 32 && ((vp->data_size - 1) >> (bits * levels)) > 0)
                levels++;
        if (levels == 0 || levels >= 32 || bits * (levels + 1) >= 64)
                return -EOPNOTSUPP; /* one data block: the root hash is its digest; not worth a path */

        /* hash_level_block[i]: the first block of level i, the top level first on the device. */
        uint64_t level_block[32], pos = (vp->hash_area_offset + 512 + vp->hash_block_size - 1) / vp->hash_block_size;
        for (int i = (int) levels - 1; i >= 0; i--) {
                level_block[i] = pos;
                pos += (vp->data_size + (UINT64_C(1) << ((unsigned) (i + 1) * bits)) - 1) >> ((unsigned) (i + 1) * bits);
        }

        block = malloc(vp->data_block_size > vp->hash_block_size ? vp->data_block_size : vp->hash_block_size);
        if (!block)
                return -ENOMEM;
        const struct nettle_hash *h = hash_by_name(vp->hash_name);
        if (!h || h->digest_size != digest_size)
                return -EOPNOTSUPP;
        _cleanup_free_ void *ctx = malloc(h->context_size);
        if (!ctx)
                return -ENOMEM;
        memcpy(want, root, digest_size);
        r = 0;
        for (int i = (int) levels - 1; i >= -1 && r >= 0; i--) {
                /* Level i's first block, then (i == -1) the first data block. */
                size_t len = i >= 0 ? vp->hash_block_size : vp->data_block_size;
                r = i >= 0 ? read_block(hash_dev, level_block[i] * vp->hash_block_size, block, len)
                           : read_block(data_dev, 0, block, len);
                if (r >= 0)
                        hash_digest(h, ctx, vp->salt, vp->salt_size, block, len, got);
                if (r >= 0 && memcmp(got, want, digest_size) != 0)
                        r = -EKEYREJECTED;
                if (r >= 0 && i >= 0)
                        memcpy(want, block, digest_size); /* digest 0 of this block: its first child */
        }
        return r;
}

int verity_close(const char *name) {
        struct crypt_device *cd = NULL;
        int r = crypt_init_by_name(&cd, name);
        if (r < 0)
                return r;
        r = crypt_deactivate(cd, name);
        crypt_free(cd);
        return r;
}

/* The kernel's own check: read the first data block through a device that
 * returns EIO on corruption, which verifies the path from the root hash down;
 * only then put the configured policy into the table. */
static int activate_probed(struct crypt_device *cd, const struct verity_setup *s, const unsigned char *key,
                           size_t key_len, const char *path, char *why, size_t why_size) {
        int r = activate(cd, s->name, key, key_len, 0);
        if (r < 0) {
                (void) snprintf(why, why_size, "the kernel refused the dm-verity table (is dm-verity loaded?)");
                return r;
        }

        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                r = -errno;
                (void) crypt_deactivate(cd, s->name);
                (void) snprintf(why, why_size, "%s did not appear", path);
                return r;
        }
        char block[4096];
        ssize_t n = pread(fd, block, sizeof(block), 0);
        r = n < 0 ? -errno : 0;
        closep(&fd);
        fd = -1;
        if (r < 0) {
                (void) crypt_deactivate(cd, s->name);
                if (r == -EIO) {
                        (void) snprintf(why, why_size,
                                        "the hash tree on %s does not verify against the pinned root hash: "
                                        "the image is not the one this UKI was built for, or it is corrupt",
                                        s->hash_dev);
                        return -EKEYREJECTED;
                }
                (void) snprintf(why, why_size, "reading the first block of %s failed", path);
                return r;
        }

        if (s->policy != VERITY_POLICY_EIO) {
                r = verity_add_option(s->name, s->policy == VERITY_POLICY_RESTART ? "restart_on_corruption"
                                                                                   : "panic_on_corruption");
                if (r < 0) {
                        (void) crypt_deactivate(cd, s->name);
                        (void) snprintf(why, why_size, "loading the corruption policy into %s failed", path);
                        return r;
                }
        }
        return 0;
}

int verity_open(const struct verity_setup *s, char **ret_path, char *why, size_t why_size) {
        static const uint32_t policy_flag[] = {
                [VERITY_POLICY_RESTART] = CRYPT_ACTIVATE_RESTART_ON_CORRUPTION,
                [VERITY_POLICY_PANIC] = CRYPT_ACTIVATE_PANIC_ON_CORRUPTION,
                [VERITY_POLICY_EIO] = 0,
        };
        _cleanup_(crypt_freep) struct crypt_device *cd = NULL;
        unsigned char key[64];
        size_t key_len;
        char path[128];
        int r;

        r = verity_unhex(s->root_hash, key, sizeof(key), &key_len);
        if (r < 0) {
                (void) snprintf(why, why_size, "the root hash is not a hex string of at most 128 digits");
                return r;
        }

        r = crypt_init_data_device(&cd, s->hash_dev, s->data_dev);
        if (r < 0) {
                (void) snprintf(why, why_size, "cannot open %s or %s", s->hash_dev, s->data_dev);
                return r;
        }

        /* No .data_device: crypt_init_data_device() set it, and naming it
         * again makes crypt_load() open and probe it a second time. */
        struct crypt_params_verity params = { .hash_area_offset = 0 };
        r = crypt_load(cd, CRYPT_VERITY, &params);
        if (r < 0) {
                (void) snprintf(why, why_size, "%s holds no dm-verity superblock (not made by veritysetup format?)",
                                s->hash_dev);
                return r;
        }

        int vk = crypt_get_volume_key_size(cd);
        if (vk <= 0 || (size_t) vk != key_len) {
                (void) snprintf(why, why_size, "the root hash has %zu bytes but the hash tree on %s uses %d-byte digests",
                                key_len, s->hash_dev, vk);
                return -EINVAL;
        }
        (void) snprintf(path, sizeof(path), "/dev/mapper/%s", s->name);

        /* dm-verity checks nothing when the table is loaded: a wrong root hash
         * shows only when a block is read, and under restart_on_corruption
         * that is a restart loop in the middle of mounting. So the path from
         * the root hash down to the first data block is checked first, in
         * userspace, as the kernel checks it; when it verifies, the device is
         * set up once, with the configured policy. Anything else (a digest
         * that differs, or no way to check here) goes to the kernel's own
         * check, which gives the verdict: userspace only decides whether the
         * one-table path is safe, it never refuses a root by itself.
         * With the EIO policy (the init's default) the kernel's check is
         * already the one-table path: the read of the first block through the
         * EIO table gives the verdict and nothing is reloaded, so the
         * userspace check would only read and hash the same blocks twice. */
        struct crypt_params_verity vp = {};
        if (s->policy == VERITY_POLICY_EIO)
                r = -EOPNOTSUPP;
        else {
                r = crypt_get_verity_info(cd, &vp);
                if (r >= 0)
                        r = check_first_block(&vp, s->data_dev, s->hash_dev, key, key_len);
                if (r < 0)
                        log_debug_errno(r, "dm-verity: the path to the first block did not verify in userspace (%m), "
                                        "reading it through an EIO device");
        }
        if (r >= 0) {
                r = activate(cd, s->name, key, key_len, policy_flag[s->policy]);
                if (r < 0) {
                        (void) snprintf(why, why_size, "the kernel refused the dm-verity table (is dm-verity loaded?)");
                        return r;
                }
        } else {
                r = activate_probed(cd, s, key, key_len, path, why, why_size);
                if (r < 0)
                        return r;
        }

        char *p = strdup(path);
        if (!p) {
                (void) crypt_deactivate(cd, s->name);
                return -ENOMEM;
        }
        *ret_path = p;
        return 0;
}
