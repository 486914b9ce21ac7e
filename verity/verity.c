/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <fcntl.h>
#include <libcryptsetup.h>
#include <libdevmapper.h>
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

int verity_close(const char *name) {
        struct crypt_device *cd = NULL;
        int r = crypt_init_by_name(&cd, name);
        if (r < 0)
                return r;
        r = crypt_deactivate(cd, name);
        crypt_free(cd);
        return r;
}

int verity_open(const struct verity_setup *s, char **ret_path, char *why, size_t why_size) {
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

        /* dm-verity checks nothing when the table is loaded: a wrong root hash
         * shows only when a block is read. Read the first data block through a
         * device that returns EIO on corruption; that read verifies the path
         * from the root hash down. Only then set up the device with the
         * configured policy, so that a wrong hash is a clear refusal here and
         * not a restart loop in the middle of mounting. */
        r = activate(cd, s->name, key, key_len, 0);
        if (r < 0) {
                (void) snprintf(why, why_size, "the kernel refused the dm-verity table (is dm-verity loaded?)");
                return r;
        }

        (void) snprintf(path, sizeof(path), "/dev/mapper/%s", s->name);
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

        char *p = strdup(path);
        if (!p) {
                (void) crypt_deactivate(cd, s->name);
                return -ENOMEM;
        }
        *ret_path = p;
        return 0;
}
