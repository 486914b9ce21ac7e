/* SPDX-License-Identifier: MIT */
/* abctl install: one pipeline for every image source (source.h).
 *
 *  1. Checks, all before anything is written: the slot may be installed
 *     (not the running one, not the last committed one without --force),
 *     the image is not older than the last committed slot's (unless
 *     --allow-downgrade),
 *     the image fits its partitions, the source's own checks (local files
 *     verify against the UKI's root hash), the ESP is there with room for
 *     the UKI, the image did not fail in that slot before (unless
 *     --force), the slot's partitions have block devices, the UKI (fetched
 *     into memory) would be started by the firmware under Secure Boot
 *     (signature.c: Authenticode against db and dbx), and the UKI, written
 *     to a temporary file next to the slot's current one, pins the root
 *     hash the image says.
 *  2. The slot is marked not bootable (abctl_apply, SLOT_OP_INSTALL_BEGIN).
 *  3. The system image streams into the slot's partitions, through their
 *     own block devices; flushed and dropped from the cache.
 *  4. What is now on the disk is verified, every block, against the root
 *     hash the UKI pins: what the firmware will boot, not what was sent.
 *  5. The UKI is renamed into place, and the slot gets its trial state and
 *     BootNext (abctl_apply, SLOT_OP_INSTALL).
 *
 * A failure, a power cut or a signal anywhere leaves the slot not bootable
 * or fully installed, never touches the running slot, and leaves no
 * temporary file, loop device or mount of ours behind. */

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/param.h>
#include <sys/stat.h>

#include "../common/log.h"
#include "../common/version.h"
#include "../efi/damage.h"
#include "../efi/uki.h"
#include "abctl.h"
#include "blockdev.h"
#include "delta.h"
#include "esp.h"
#include "origin.h"
#include "ocifetch.h"
#include "signature.h"
#include "source.h"

/* A UKI is held in memory while it is checked and written, up to
 * UKI_SIZE_MAX (efi/uki.h). */

/* ---- signals ----------------------------------------------------------------
 *
 * SIGINT, SIGTERM and SIGHUP end an install at any point, however long a
 * read or a download blocks: the handler removes the UKI's temporary,
 * unmounts an ESP we mounted and exits (our loop devices clear themselves
 * when the process's descriptors close). Only system calls that are safe
 * in a handler. The state writes and the rename are not interrupted: the
 * signals are blocked around them and arrive after. */

enum { PHASE_CHECKS, PHASE_WRITING, PHASE_DONE };

static struct {
        volatile sig_atomic_t phase;
        const char *volatile tmp;         /* the UKI's temporary on the ESP */
        const char *volatile mountpoint;  /* an ESP we mounted */
        char said_checks[256], said_writing[256];
} interrupt;

static const int caught[] = { SIGINT, SIGTERM, SIGHUP };

static void on_signal(int sig) {
        (void) sig;
        if (interrupt.phase == PHASE_DONE)
                return;  /* the install is complete: exit as it would have */
        const char *tmp = interrupt.tmp, *mp = interrupt.mountpoint;
        if (tmp)
                (void) unlink(tmp);
        if (mp && umount(mp) < 0)
                (void) umount2(mp, MNT_DETACH);
        if (mp)
                (void) rmdir(mp);
        const char *said = interrupt.phase == PHASE_WRITING ? interrupt.said_writing : interrupt.said_checks;
        ssize_t n = write(STDERR_FILENO, said, strlen(said));
        (void) n;
        _exit(1);
}

struct signals {
        struct sigaction old[ELEMENTSOF(caught)];
        bool set;
};

static void signals_catch(struct signals *s, Slot t, Slot running) {
        struct sigaction sa = { .sa_handler = on_signal };
        (void) snprintf(interrupt.said_checks, sizeof(interrupt.said_checks),
                        "abctl: Install interrupted by a signal. Nothing was changed.\n");
        (void) snprintf(interrupt.said_writing, sizeof(interrupt.said_writing),
                        "abctl: Install interrupted by a signal; slot %s stays not bootable, slot %s is untouched. "
                        "Install again to use it.\n", slot_to_string(t), slot_to_string(running));
        interrupt.phase = PHASE_CHECKS;
        /* No SA_RESTART: nothing needs it, the handler does not return. */
        (void) sigemptyset(&sa.sa_mask);
        for (size_t i = 0; i < ELEMENTSOF(caught); i++)
                (void) sigaddset(&sa.sa_mask, caught[i]);
        for (size_t i = 0; i < ELEMENTSOF(caught); i++)
                (void) sigaction(caught[i], &sa, &s->old[i]);
        s->set = true;
}

static void signals_restore(struct signals *s) {
        if (!s->set)
                return;
        for (size_t i = 0; i < ELEMENTSOF(caught); i++)
                (void) sigaction(caught[i], &s->old[i], NULL);
        interrupt.tmp = interrupt.mountpoint = NULL;
        s->set = false;
}

/* Blocks the signals until critical_end: they arrive after. */
static sigset_t critical_begin(void) {
        sigset_t set, old;
        (void) sigemptyset(&set);
        for (size_t i = 0; i < ELEMENTSOF(caught); i++)
                (void) sigaddset(&set, caught[i]);
        (void) sigprocmask(SIG_BLOCK, &set, &old);
        return old;
}

static void critical_end(const sigset_t *old) {
        (void) sigprocmask(SIG_SETMASK, old, NULL);
}

/* ---- checks ------------------------------------------------------------------ */

/* The install is allowed on slot t and t has its partitions. */
static int install_allowed(struct ctx *c, Slot t) {
        struct slot_op_request req = { .op = SLOT_OP_INSTALL_BEGIN, .running = c->running, .target = t,
                                       .tries = c->tries, .force = c->force };
        struct slot_op_result res;
        char why[512];
        int r = slots_apply_op(&req, c->view.st, &res, why, sizeof(why));
        if (r < 0)
                return log_error_errno(r, "Refusing to install: %s. Nothing was changed.", why);
        if (!c->view.layout.slot[t].present)
                return log_error_errno(-ENOENT, "Refusing to install: slot %s has no partitions on %s. Nothing was changed.",
                                       slot_to_string(t), c->disk);
        return 0;
}

/* An image that already failed in this slot (its UKI, dst, pins roothash)
 * is not retried by accident. A slot whose origin names another image than
 * its UKI had an install of that other image begin (the origin is written
 * when the writes begin, the UKI renamed into place at the end): it is not
 * bootable because that install did not finish, not because the image its
 * UKI names failed. */
static int failed_before(const struct ctx *c, const char *esp_dir, Slot t, const char *dst, const char *roothash) {
        char old[ROOTHASH_HEX_MAX + 1];
        struct slot_origin o;
        bool failed = c->view.st[t].priority == 0 && !c->view.st[t].successful;
        if (failed && !c->force && uki_pinned_roothash(dst, old) >= 0 && streq(old, roothash) &&
            origin_read(esp_dir, t, old, &o) != -ESTALE)
                return log_error_errno(-EALREADY, "This image (root hash %.16s...) already failed in slot %s. "
                                       "Install it anyway with --force", roothash, slot_to_string(t));
        return 0;
}

/* No silent downgrade (issue 14): an image older than the last committed
 * slot's (its UKI on the ESP) is refused unless --allow-downgrade. The same
 * version is a re-install, allowed. Without a version on the committed
 * side there is nothing to be older than: allowed. Without one on the new
 * side, while the committed slot has one, abctl cannot tell: refused. */
static int not_a_downgrade(const struct ctx *c, const char *esp_dir, const struct image_source *src) {
        _cleanup_free_ char *path = NULL;
        struct uki_info cur;
        int good, other;

        slots_boot_order_hint(c->view.st, &good, &other);
        if (good < 0 || esp_uki_path(esp_dir, (Slot) good, &path) < 0 || uki_read_info(path, &cur) < 0 ||
            !cur.version[0])
                return 0;
        const char *g = slot_to_string((Slot) good);
        if (src->version[0] && version_compare(src->version, cur.version) >= 0)
                return 0;
        if (c->allow_downgrade) {
                log_warning("Installing %s (version %s) although slot %s, the last committed, has version %s "
                            "(--allow-downgrade)", src->label, src->version[0] ? src->version : "unknown", g,
                            cur.version);
                return 0;
        }
        if (!src->version[0])
                return log_error_errno(-EPERM, "%s has no version (IMAGE_VERSION= or VERSION_ID= in its UKI's .osrel, "
                                       "\"version\" in an OCI config) and slot %s, the last committed, has version "
                                       "%s: it may be older. Install it anyway with --allow-downgrade",
                                       src->label, g, cur.version);
        return log_error_errno(-EPERM, "%s is version %s, older than version %s of slot %s, the last committed: "
                               "refusing a downgrade. Install it anyway with --allow-downgrade", src->label,
                               src->version, cur.version, g);
}

static int fits(const struct image_source *src, const struct slot_partitions *p, Slot t) {
        if (src->data_size > p->data_size * 512 || src->hash_size > p->hash_size * 512)
                return log_error_errno(-EFBIG, "%s does not fit slot %s: %llu + %llu bytes (image + hash tree), "
                                       "its partitions hold %llu + %llu", src->label, slot_to_string(t),
                                       (unsigned long long) src->data_size, (unsigned long long) src->hash_size,
                                       (unsigned long long) p->data_size * 512, (unsigned long long) p->hash_size * 512);
        return 0;
}

static int partition_dev(const struct ctx *c, unsigned partno, uint64_t start, uint64_t size, struct part_dev *ret) {
        int r = part_dev_get(c->disk, partno, start, size, true, ret);
        if (r == -ESTALE)
                return log_error_errno(r, "The kernel's partition %u of %s is not where the GPT puts it: the table "
                                       "changed since the disk was read; run 'partprobe %s' or reboot", partno,
                                       c->disk, c->disk);
        if (r == -ERANGE)
                return log_error_errno(r, "%s ends before its partition %u does (a truncated image?)", c->disk, partno);
        if (r < 0)
                return log_error_errno(r, "Cannot get a block device for partition %u of %s: %m", partno, c->disk);
        return 0;
}

/* ---- writing ----------------------------------------------------------------- */

struct file_sink {
        int fd;
};

static int file_sink(void *userdata, uint64_t offset, const uint8_t *buf, size_t n) {
        struct file_sink *f = userdata;
        int r = pwrite_full(f->fd, buf, n, offset);
        return r < 0 ? log_error_errno(r, "Writing the UKI to the ESP failed%s: %m",
                                       r == -ENOSPC ? " (the ESP is full)" : "") : 0;
}

/* The UKI, whole, in memory: the signature check reads it before anything
 * is written, and what is written to the ESP is what was checked (a file
 * changed or a blob served differently in between cannot slip in). */
struct uki_buffer {
        uint8_t *data;
        size_t size;
};

static void uki_buffer_done(struct uki_buffer *b) {
        free(b->data);
        *b = (struct uki_buffer) {};
}

static int memory_sink(void *userdata, uint64_t offset, const uint8_t *buf, size_t n) {
        struct uki_buffer *b = userdata;
        if (offset > b->size || n > b->size - offset)
                return log_error_errno(-EBADMSG, "The UKI is larger than its source said (%zu bytes)", b->size);
        memcpy(b->data + offset, buf, n);
        return 0;
}

static int fetch_uki(struct image_source *src, struct uki_buffer *ret) {
        struct uki_buffer b = { .size = (size_t) src->uki_size };
        if (src->uki_size > UKI_SIZE_MAX)
                return log_error_errno(-EFBIG, "The UKI of %s has %llu bytes; abctl takes UKIs up to %u MiB",
                                       src->label, (unsigned long long) src->uki_size, UKI_SIZE_MAX >> 20);
        b.data = malloc(b.size ? b.size : 1);
        if (!b.data)
                return log_error_errno(-ENOMEM, "Out of memory for the UKI of %s (%zu bytes)", src->label, b.size);
        int r = src->ops->fetch_uki(src, memory_sink, &b);
        if (r < 0) {
                uki_buffer_done(&b);
                return r;
        }
        *ret = b;
        return 0;
}

/* The checked UKI into tmp, flushed; it must pin the root hash the image says. */
/* The UKI is what boots: the root hash it pins and the version it carries
 * must be the ones the source announced (an OCI config says them apart from
 * the UKI; a file source read them from this UKI). Otherwise the slot would
 * fail to verify at boot, or the downgrade check would have compared a
 * version the slot does not have. */
static int uki_matches_source(const struct image_source *src, const struct uki_buffer *b) {
        struct uki_info info;
        int r = uki_info_from_memory(b->data, b->size, &info);
        if (r < 0)
                return log_error_errno(r, "Reading the UKI of %s failed: %m", src->label);
        if (strcasecmp(info.roothash, src->roothash) != 0)
                return log_error_errno(-EBADMSG, "The UKI of %s pins root hash %.16s..., the image says %.16s...: "
                                       "they do not belong together (build the image again: mkslot, mkuki, mkoci)",
                                       src->label, info.roothash[0] ? info.roothash : "(none)", src->roothash);
        if (strcmp(info.version, src->version) != 0)
                return log_error_errno(-EBADMSG, "The UKI of %s says version %s, the image says version %s: "
                                       "they do not belong together (mkoci --version must be mkuki --version)",
                                       src->label, info.version[0] ? info.version : "(none)",
                                       src->version[0] ? src->version : "(none)");
        return 0;
}

static int write_uki(const struct image_source *src, const struct uki_buffer *b, const char *tmp) {
        char pinned[ROOTHASH_HEX_MAX + 1];
        struct file_sink f = { .fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644) };
        int r;

        if (f.fd < 0)
                return log_error_errno(-errno, "Cannot create %s: %m", tmp);
        r = file_sink(&f, 0, b->data, b->size);
        if (r >= 0 && fsync(f.fd) < 0)
                r = log_error_errno(-errno, "Flushing %s failed: %m", tmp);
        (void) close(f.fd);
        if (r >= 0)
                r = abctl_uki_roothash(tmp, pinned);
        if (r >= 0 && !streq(pinned, src->roothash))
                r = log_error_errno(-EBADMSG, "The UKI of %s pins root hash %.16s..., the image says %.16s...: "
                                    "they do not belong together", src->label, pinned, src->roothash);
        return r;
}

/* Where the system stream goes: its first data_size bytes to the data
 * partition, the rest (the hash tree) to the verity partition. */
struct system_sink {
        int data_fd, hash_fd;
        uint64_t data_size, total;
        uint64_t started_ms, shown_ms;
        const char *what;
        bool tty;
};

static int system_sink(void *userdata, uint64_t offset, const uint8_t *buf, size_t n) {
        struct system_sink *s = userdata;
        int r = 0;
        if (offset < s->data_size) {
                size_t k = (size_t) MIN((uint64_t) n, s->data_size - offset);
                r = pwrite_full(s->data_fd, buf, k, offset);
                buf += k, n -= k, offset += k;
        }
        if (r >= 0 && n > 0)
                r = pwrite_full(s->hash_fd, buf, n, offset - s->data_size);
        if (r < 0)
                return log_error_errno(r, "Writing %s failed: %m", s->what);
        uint64_t t = now_monotonic_ms(), done = offset + n;
        if (s->tty && (t - s->shown_ms >= 250 || done == s->total)) {
                double secs = (double) (t - s->started_ms) / 1000;
                fprintf(stderr, "\rabctl: %s: %3llu%% %7.1f of %.1f MiB, %.1f MiB/s   ", s->what,
                        (unsigned long long) (s->total ? done * 100 / s->total : 100), (double) done / 1048576,
                        (double) s->total / 1048576, secs > 0 ? (double) done / 1048576 / secs : 0.0);
                s->shown_ms = t;
        }
        return 0;
}

/* A delta (delta.c) when the source has ranges and --delta allows it:
 * registries and layouts by default, files with --delta=yes. */
static bool delta_wanted(const struct ctx *c, const struct image_source *src) {
        if (!src->ops->fetch_system_ranges || c->delta == DELTA_NO)
                return false;
        return c->delta == DELTA_YES || src->kind != ORIGIN_FILES;
}

/* The system image into the slot's partitions, flushed and out of the
 * cache: by delta from the blocks on this machine (running, running_hash:
 * the running slot's partitions, read-only, or NULL) when wanted and possible,
 * else the whole stream. */
static int write_system(const struct ctx *c, struct image_source *src, Slot t, const struct part_dev *data,
                        const struct part_dev *hash, const struct part_dev *running,
                        const struct part_dev *running_hash) {
        char what[64];
        (void) snprintf(what, sizeof(what), "slot %s", slot_to_string(t));
        _cleanup_close_ int data_fd = open(data->path, O_RDWR | O_CLOEXEC | O_NOCTTY);
        _cleanup_close_ int hash_fd = open(hash->path, O_RDWR | O_CLOEXEC | O_NOCTTY);
        struct system_sink ss = { .data_fd = data_fd, .hash_fd = hash_fd, .data_size = src->data_size,
                                  .total = src->data_size + src->hash_size, .what = what,
                                  .tty = isatty(STDERR_FILENO), .started_ms = now_monotonic_ms() };
        int r;

        if (data_fd < 0 || hash_fd < 0)
                return log_error_errno(-errno, "Cannot open %s for writing: %m", data_fd < 0 ? data->path : hash->path);
        r = delta_wanted(c, src) ? delta_write_system(src, what, data_fd, hash_fd, running ? running->path : NULL,
                                                      running_hash && running_hash->path ? running_hash->path : NULL)
                                 : -EOPNOTSUPP;
        if (r == -EOPNOTSUPP) {
                r = src->ops->fetch_system(src, system_sink, &ss);
                if (ss.tty)
                        fprintf(stderr, "\n");
                if (r < 0)
                        return r;
                double secs = (double) (now_monotonic_ms() - ss.started_ms) / 1000;
                log_info("Wrote %.1f MiB into slot %s in %.1f s (%.1f MiB/s, %u retries)", (double) ss.total / 1048576,
                         slot_to_string(t), secs, secs > 0 ? (double) ss.total / 1048576 / secs : 0.0, src->retries);
        } else if (r < 0)
                return r;
        r = blockdev_flush(data_fd);
        if (r < 0)
                return log_error_errno(r, "Flushing %s failed: %m", data->path);
        r = blockdev_flush(hash_fd);
        if (r < 0)
                return log_error_errno(r, "Flushing %s failed: %m", hash->path);
        return 0;
}

/* ---- the pipeline ------------------------------------------------------------ */

/* Where the image came from, next to its UKI (origin.h): when the writes
 * into the slot begin, so until the UKI that pins the new image is renamed
 * into place it names another root hash than the UKI beside it and is
 * ignored by its readers. Without it the slot is still complete: warned,
 * not failed. */
static void record_origin(const char *esp_dir, Slot t, const struct image_source *src) {
        struct slot_origin o = { .kind = src->kind };
        (void) snprintf(o.reference, sizeof(o.reference), "%s", src->label);
        (void) snprintf(o.digest, sizeof(o.digest), "%s", src->digest);
        (void) snprintf(o.roothash, sizeof(o.roothash), "%s", src->roothash);
        (void) snprintf(o.version, sizeof(o.version), "%s", src->version);
        if (origin_write(esp_dir, t, &o) < 0)
                log_warning("Slot %s works without it; 'abctl repair' cannot fetch from its source", slot_to_string(t));
}

static int install_image(struct ctx *c, Slot t, struct image_source *src) {
        const struct slot_partitions *p = &c->view.layout.slot[t];
        _cleanup_free_ char *dst = NULL, *tmp = NULL;
        _cleanup_(esp_close) struct esp esp = {};
        _cleanup_(part_dev_release) struct part_dev data = PART_DEV_NULL;
        _cleanup_(part_dev_release) struct part_dev hash = PART_DEV_NULL;
        _cleanup_(part_dev_release) struct part_dev running = PART_DEV_NULL;
        _cleanup_(part_dev_release) struct part_dev running_hash = PART_DEV_NULL;
        _cleanup_(uki_buffer_done) struct uki_buffer uki = {};
        /* Last, so restored first: the handler never sees what the
         * cleanups above free. */
        _cleanup_(signals_restore) struct signals sig = {};
        sigset_t old;
        int r;

        signals_catch(&sig, t, c->running);

        /* ---- checks: nothing of the slot is written until all pass ---- */
        r = fits(src, p, t);
        if (r >= 0 && src->ops->check)
                r = src->ops->check(src);
        /* The firmware must be willing to start the UKI: checked on the
         * bytes that will be written, before the ESP is even mounted. */
        if (r >= 0)
                r = fetch_uki(src, &uki);
        if (r >= 0)
                r = abctl_check_uki_signature(c->efivars, src->label, uki.data, uki.size);
        if (r >= 0)
                r = uki_matches_source(src, &uki);
        if (r < 0)
                return r;
        old = critical_begin();
        r = esp_open(c, &esp);
        interrupt.mountpoint = esp.mountpoint;
        c->esp_mount = esp.mountpoint;  /* the state changes below use it, not a second mount */
        critical_end(&old);
        if (r < 0)
                return log_error_errno(r, "Cannot find the ESP with EFI/abswitch in /efi, /boot/efi or /boot, nor mount "
                                       "it; mount it or pass --esp DIR");
        r = esp_uki_path(esp.dir, t, &dst);
        if (r >= 0)
                r = esp_temp_path(dst, &tmp);
        if (r < 0)
                return log_error_errno(r, "The ESP's path is too long for the UKI's file name in it (%zu characters, "
                                       "a path has at most %d): mount it on a shorter one. The ESP's path: %s",
                                       strlen(esp.dir), PATH_MAX - 1, esp.dir);
        r = not_a_downgrade(c, esp.dir, src);
        /* Under the install lock, so no running install's. */
        if (r >= 0)
                r = esp_remove_stale(esp.dir);
        if (r >= 0)
                r = failed_before(c, esp.dir, t, dst, src->roothash);
        if (r >= 0)
                r = esp_check_room(esp.dir, dst, src->uki_size);
        if (r >= 0)
                r = partition_dev(c, p->data_partno, p->data_start, p->data_size, &data);
        if (r >= 0)
                r = partition_dev(c, p->hash_partno, p->hash_start, p->hash_size, &hash);
        if (r < 0)
                return r;
        /* The running slot's blocks for a delta: read-only, and not needed. */
        if (delta_wanted(c, src) && c->running >= 0 && c->running != t && c->view.layout.slot[c->running].present) {
                const struct slot_partitions *q = &c->view.layout.slot[c->running];
                int e = part_dev_get(c->disk, q->data_partno, q->data_start, q->data_size, false, &running);
                /* Its hash partition says how much of it is the image; without it, all is read. */
                if (e >= 0)
                        (void) part_dev_get(c->disk, q->hash_partno, q->hash_start, q->hash_size, false,
                                            &running_hash);
                if (e < 0)
                        log_info("The running slot %s's data partition cannot be read (%s): a delta takes blocks "
                                 "from slot %s only", slot_to_string(c->running), strerror(-e), slot_to_string(t));
        }
        /* The UKI, next to the slot's current one; renamed over it last. */
        interrupt.tmp = tmp;
        r = write_uki(src, &uki, tmp);
        if (r < 0) {
                (void) unlink(tmp);
                return r;
        }

        /* ---- writes ---- */
        old = critical_begin();
        r = abctl_apply(c, SLOT_OP_INSTALL_BEGIN, t);
        if (r >= 0) {
                interrupt.phase = PHASE_WRITING;
                /* Where the image comes from, before its blocks: ignored
                 * (origin.h) until the UKI that pins it is in place, and
                 * meanwhile it says the slot's old UKI no longer names what
                 * is in the slot (failed_before). */
                record_origin(esp.dir, t, src);
        }
        critical_end(&old);
        if (r < 0) {
                (void) unlink(tmp);
                return log_error_errno(r, "Failed to mark slot %s not bootable before writing it", slot_to_string(t));
        }

        r = write_system(c, src, t, &data, &hash, running.path ? &running : NULL,
                         running_hash.path ? &running_hash : NULL);
        /* What is on the disk now, against the root hash the UKI pins. */
        if (r >= 0)
                r = abctl_verify_image(data.path, hash.path, src->roothash);
        if (r < 0) {
                (void) unlink(tmp);
                return log_error_errno(r, "Install failed; slot %s stays not bootable, slot %s is untouched.",
                                       slot_to_string(t), slot_to_string(c->running));
        }
        /* Every block of the slot was just written and verified: a damage
         * record of its old blocks (the same image reinstalled: the same
         * root hash) no longer says anything true, and nothing else would
         * delete it once the slot runs (abctl repair refuses that). */
        if (c->efi) {
                r = damage_clear(c->efivars, t);
                if (r < 0 && r != -ENOENT)
                        log_warning_errno(r, "Failed to delete slot %s's damage record (%s-%s): %m; abctl status "
                                          "may show damage the new image does not have", slot_to_string(t),
                                          damage_var_name(t), EFI_ABSWITCH_GUID);
        }

        old = critical_begin();
        r = esp_put_in_place(tmp, dst);
        interrupt.tmp = NULL;
        interrupt.mountpoint = c->esp_mount = NULL;
        esp_close(&esp);  /* written back before the slot is armed */
        if (r >= 0) {
                printf("Installed %s%s%s%s into slot %s, verified on the disk against root hash %.16s..., UKI %s\n",
                       src->label, src->version[0] ? " (version " : "", src->version, src->version[0] ? ")" : "",
                       slot_to_string(t), src->roothash, dst);
                r = abctl_apply(c, SLOT_OP_INSTALL, t);
        } else
                r = log_error_errno(r, "Install failed; slot %s stays not bootable, slot %s is untouched.",
                                    slot_to_string(t), slot_to_string(c->running));
        interrupt.phase = PHASE_DONE;
        critical_end(&old);
        return r;
}

static void image_source_closep(struct image_source *s) {
        image_source_close(s);
}

void image_source_close(struct image_source *s) {
        if (s->ops && s->ops->close)
                s->ops->close(s);
        *s = (struct image_source) {};
}

static Slot install_target(const struct ctx *c) {
        return c->install_slot >= 0 ? c->install_slot : slot_other(c->running);
}

int abctl_install(struct ctx *c, const char *image, const char *uki, const struct oci_options *o) {
        _cleanup_(image_source_closep) struct image_source src = {};
        Slot t = install_target(c);
        int r = install_allowed(c, t);
        if (r < 0)
                return r;
        r = uki ? image_source_open_files(&src, image, uki) : image_source_open_oci(&src, image, o);
        if (r >= 0)
                r = install_image(c, t, &src);
        c->esp_mount = NULL;
        if (r < 0 && interrupt.phase == PHASE_CHECKS)
                return log_error_errno(r, "Refusing to install %s. Nothing was changed.", image);
        return r;
}
