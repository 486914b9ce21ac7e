/* SPDX-License-Identifier: MIT */
/* Verifying a slot image against the root hash a UKI pins, every block,
 * through libcryptsetup without activating anything. See abctl.h. */

#include <fcntl.h>
#include <libcryptsetup.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "../common/log.h"
#include "../verity/verity.h"
#include "abctl.h"

static void crypt_freep(struct crypt_device **cd) {
        if (*cd)
                crypt_free(*cd);
}

/* The size of a regular file or a block device. */
static int file_size(const char *path, uint64_t *ret) {
        struct stat st;
        if (stat(path, &st) < 0)
                return -errno;
        if (!S_ISBLK(st.st_mode)) {
                *ret = (uint64_t) st.st_size;
                return 0;
        }
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0 || ioctl(fd, BLKGETSIZE64, ret) < 0)
                return -errno;
        return 0;
}

int abctl_verify_image(const char *img, const char *hash, const char *roothash) {
        _cleanup_(crypt_freep) struct crypt_device *cd = NULL;
        unsigned char key[64];
        size_t len;
        int r;

        r = verity_unhex(roothash, key, sizeof(key), &len);
        if (r < 0)
                return log_error_errno(r, "The UKI's root hash '%s' is not hex", roothash);
        verity_log_to_debug();
        r = crypt_init_data_device(&cd, hash, img);
        if (r < 0)
                return log_error_errno(r, "Cannot open %s and %s: %m", img, hash);
        /* CRYPT_VERITY_CHECK_HASH: without it, activation without a device
         * name checks nothing at all (found by test_install_refuses_mismatched_hash). */
        struct crypt_params_verity p = { .data_device = img, .flags = CRYPT_VERITY_CHECK_HASH };
        r = crypt_load(cd, CRYPT_VERITY, &p);
        if (r < 0)
                return log_error_errno(r, "%s holds no dm-verity superblock (make it with initramfs/mkslot)", hash);
        if ((size_t) crypt_get_volume_key_size(cd) != len)
                return log_error_errno(-EINVAL, "The UKI's root hash has %zu bytes; the hash tree uses %d", len,
                                       crypt_get_volume_key_size(cd));
        struct crypt_params_verity info;
        uint64_t img_size = 0;
        if (crypt_get_verity_info(cd, &info) >= 0 && file_size(img, &img_size) >= 0 &&
            img_size < info.data_size * info.data_block_size)
                return log_error_errno(-EBADMSG, "%s is truncated: it has %llu bytes, its hash tree covers %llu",
                                       img, (unsigned long long) img_size,
                                       (unsigned long long) (info.data_size * info.data_block_size));
        /* No device name: libcryptsetup checks the whole tree and all data in userspace. */
        r = crypt_activate_by_volume_key(cd, NULL, (const char *) key, len, 0);
        /* libcryptsetup: -EPERM for the root hash, -EFAULT for a block below it. */
        if (r == -EPERM || r == -EFAULT)
                return log_error_errno(r, "%s does not verify against the root hash the UKI pins: "
                                       "this image and this UKI do not belong together", img);
        if (r < 0)
                return log_error_errno(r, "Verifying %s failed: %m", img);
        return 0;
}
