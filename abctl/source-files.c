/* SPDX-License-Identifier: MIT */
/* An image from files: PREFIX.img and PREFIX.verity (initramfs/mkslot) and
 * the slot's UKI (initramfs/mkuki). See source.h. */

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/param.h>
#include <sys/stat.h>

#include "../common/io.h"
#include "../common/log.h"
#include "../efi/uki.h"
#include "source.h"

#define CHUNK (1024 * 1024)

struct files {
        char *img, *hash, *uki;
};

/* Local files can be verified before anything is written: an image and a
 * UKI that do not belong together are refused with nothing changed. */
static int files_check(struct image_source *s) {
        struct files *f = s->impl;
        int r = abctl_uki_roothash(f->uki, s->roothash);
        if (r < 0)
                return r;
        return abctl_verify_image(f->img, f->hash, s->roothash);
}

/* size bytes of path to sink at base.. */
static int stream_file(const char *path, uint64_t size, uint64_t base, image_sink_fn sink, void *userdata) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        _cleanup_free_ uint8_t *buf = malloc(CHUNK);
        uint64_t pos = 0;

        if (fd < 0 || !buf)
                return log_error_errno(fd < 0 ? -errno : -ENOMEM, "Cannot read %s: %m", path);
        for (;;) {
                ssize_t n = read(fd, buf, CHUNK);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return log_error_errno(-errno, "Reading %s failed: %m", path);
                if (n == 0 || pos + (uint64_t) n > size)
                        break;
                int r = sink(userdata, base + pos, buf, (size_t) n);
                if (r < 0)
                        return r;
                pos += (uint64_t) n;
        }
        if (pos != size)
                return log_error_errno(-EBADMSG, "%s changed while it was read (%llu bytes, not %llu)", path,
                                       (unsigned long long) pos, (unsigned long long) size);
        return 0;
}

static int files_fetch_uki(struct image_source *s, image_sink_fn sink, void *userdata) {
        struct files *f = s->impl;
        return stream_file(f->uki, s->uki_size, 0, sink, userdata);
}

static int files_fetch_system(struct image_source *s, image_sink_fn sink, void *userdata) {
        struct files *f = s->impl;
        int r = stream_file(f->img, s->data_size, 0, sink, userdata);
        if (r >= 0)
                r = stream_file(f->hash, s->hash_size, s->data_size, sink, userdata);
        return r;
}

/* Ranges by pread: the delta path without a registry. */
static int files_fetch_system_ranges(struct image_source *s, const struct oci_range *r, size_t n,
                                     unsigned max_requests, image_sink_fn sink, void *userdata, uint64_t *ret_bytes) {
        struct files *f = s->impl;
        _cleanup_close_ int ifd = open(f->img, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        _cleanup_close_ int hfd = open(f->hash, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        _cleanup_free_ uint8_t *buf = malloc(CHUNK);
        uint64_t got = 0;
        char why[200];

        (void) max_requests;
        if (ifd < 0 || hfd < 0 || !buf)
                return log_error_errno(!buf ? -ENOMEM : -errno, "Cannot read %s: %m", ifd < 0 ? f->img : f->hash);
        int e = ranges_check(r, n, s->data_size + s->hash_size, why, sizeof(why));
        if (e < 0)
                return log_error_errno(e, "Bad ranges of %s: %s", s->label, why);
        for (size_t i = 0; i < n; i++)
                for (uint64_t o = r[i].offset, end = r[i].offset + r[i].length; o < end;) {
                        /* One read never crosses from the image into the tree. */
                        bool tree = o >= s->data_size;
                        uint64_t lim = tree ? end : MIN(end, s->data_size);
                        size_t k = (size_t) MIN(lim - o, (uint64_t) CHUNK);
                        e = pread_full(tree ? hfd : ifd, buf, k, tree ? o - s->data_size : o);
                        if (e < 0)
                                return log_error_errno(e, "Reading %s failed: %s", tree ? f->hash : f->img,
                                                       e == -EIO ? "it is shorter than it was" : strerror(-e));
                        e = sink(userdata, o, buf, k);
                        if (e < 0)
                                return e;
                        o += k, got += k;
                }
        s->requests += (unsigned) n;
        *ret_bytes = got;
        return 0;
}

static void files_free(struct files *f) {
        if (!f)
                return;
        free(f->img);
        free(f->hash);
        free(f->uki);
        free(f);
}

static void files_freep(struct files **f) {
        files_free(*f);
}

static void files_close(struct image_source *s) {
        files_free(s->impl);
}

static const struct image_source_ops files_ops = {
        .check = files_check,
        .fetch_uki = files_fetch_uki,
        .fetch_system = files_fetch_system,
        .fetch_system_ranges = files_fetch_system_ranges,
        .close = files_close,
};

int image_source_open_files(struct image_source *ret, const char *prefix, const char *uki) {
        struct image_source s = { .ops = &files_ops, .label = prefix, .kind = ORIGIN_FILES };
        struct stat si, sh, su;
        struct uki_info info;
        int r;

        _cleanup_(files_freep) struct files *f = calloc(1, sizeof(*f));
        if (!f || !(f->uki = strdup(uki)))
                return log_error_errno(-ENOMEM, "Out of memory");
        r = abctl_path(&f->img, "%s.img", prefix);
        if (r >= 0)
                r = abctl_path(&f->hash, "%s.verity", prefix);
        if (r == -ENAMETOOLONG)
                return log_error_errno(r, "The image's name is longer than a path can be (%d characters at most): %s.verity",
                                       PATH_MAX - 1, prefix);
        if (r < 0)
                return log_error_errno(r, "Out of memory");
        if (stat(f->img, &si) < 0 || stat(f->hash, &sh) < 0 || !S_ISREG(si.st_mode) || !S_ISREG(sh.st_mode))
                return log_error_errno(-ENOENT, "The image is incomplete: expected %s and %s (from initramfs/mkslot)",
                                       f->img, f->hash);
        if (stat(uki, &su) < 0)
                return log_error_errno(-errno, "Cannot read the UKI %s: %m", uki);
        if (!S_ISREG(su.st_mode))
                return log_error_errno(-EBADF, "The UKI %s is not a regular file", uki);
        s.data_size = (uint64_t) si.st_size;
        s.hash_size = (uint64_t) sh.st_size;
        s.uki_size = (uint64_t) su.st_size;
        if (uki_read_info(uki, &info) >= 0) {
                memcpy(s.name, info.name, sizeof(s.name));
                memcpy(s.version, info.version, sizeof(s.version));
        }
        s.impl = TAKE_PTR(f);
        *ret = s;
        return 0;
}
