/* SPDX-License-Identifier: MIT */
/* The corruption watcher (README "Self-healing").
 *
 * Under ab.verity_error=fallback (the default) dm-verity runs in EIO mode:
 * a block that fails verification after boot fails the read, and the
 * kernel (Linux 6.1, dm-verity-target.c verity_handle_err) sends a
 * KOBJ_CHANGE uevent with DM_VERITY_ERR_BLOCK_NR=<type>,<block> for it.
 * The init forks this watcher after it changed root and before it execs
 * the root's init: its / is the new root (where /dev, /sys and efivarfs now
 * are), it runs from the init's memory, never from the root it guards, and
 * the root's init adopts it. On the first corrupted block it
 *
 *   1. records the damage (efi/damage.h) in an EFI variable, which
 *      survives the reboot; NVRAM is written only when a slot rots;
 *   2. applies SLOT_OP_DAMAGED through the engine's one commit: the slot
 *      is failed (a committed one stays the last resort) and the other
 *      slot armed, if that one can boot;
 *   3. asks the root's init to reboot (SIGINT: systemd's ctrl-alt-del,
 *      a reboot), and reboots itself after WATCH_REBOOT_TIMEOUT_SEC.
 *
 * With no slot to fall back to it writes no state, says so on the console
 * (and in /run/abswitch/damaged) and stays up: EIO mode never restarts, so
 * no boot loops. */

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <linux/netlink.h>

#include "../common/log.h"
#include "../efi/damage.h"
#include "init.h"

#define WATCH_PID_PATH "/run/abswitch/watch.pid"
#define WATCH_DAMAGED_PATH "/run/abswitch/damaged"
#define WATCH_COLLECT_MS 2000u        /* after the first block, more of the same read */
#define WATCH_REBOOT_TIMEOUT_SEC 30u  /* for the root's init to reboot cleanly */

static int watch_socket(void) {
        struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = 1 /* the kernel's uevents */ };
        int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);
        if (fd < 0)
                return -errno;
        int size = 1 << 20;
        (void) setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

/* One datagram; 1 and the block when it reports corruption of dev.
 * Only the kernel's (sender port 0): anything root runs could send to the
 * group, but nothing else decides that a slot is damaged. */
static int watch_receive(int fd, dev_t dev, DamageKind *ret_kind, uint64_t *ret_block) {
        static char buf[8192];
        struct sockaddr_nl from = {};
        struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
        struct msghdr mh = { .msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &iov, .msg_iovlen = 1 };
        ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT);
        if (n < 0)
                return errno == EAGAIN || errno == EINTR ? 0 : -errno;
        if (from.nl_pid != 0 || (mh.msg_flags & MSG_TRUNC))
                return 0;
        return damage_parse_uevent(buf, (size_t) n, major(dev), minor(dev), ret_kind, ret_block);
}

static void watch_reboot(Slot target) {
        log_notice("Asking the root's init to reboot into slot %s (SIGINT to PID 1); forcing it in %u s",
                   slot_to_string(target), WATCH_REBOOT_TIMEOUT_SEC);
        (void) kill(1, SIGINT);
        for (unsigned i = 0; i < WATCH_REBOOT_TIMEOUT_SEC; i++)
                (void) sleep(1);
        log_warning("The root's init did not reboot within %u s: rebooting now", WATCH_REBOOT_TIMEOUT_SEC);
        sync();
        (void) reboot(RB_AUTOBOOT);
}

/* Records the damage and falls back; returns when there is nothing to fall back to. */
static void watch_act(struct boot *b, struct slot_damage *d) {
        Slot x = b->id.slot;
        struct slot_op_request req = { .op = SLOT_OP_DAMAGED, .running = x, .target = x };
        struct slot_op_result res;
        struct slots_commit_stats stats = {};
        char why[512] = "";
        int r;

        log_emerg("Slot %s is damaged: %u block(s) failed dm-verity after boot, the first a %s block, %llu. "
                  "Reads of them fail with EIO.", slot_to_string(x), d->n, damage_kind_to_string(d->blocks[0].kind),
                  (unsigned long long) d->blocks[0].block);
        if (!b->view.efivarfs)
                log_error("No EFI variables: the damage of slot %s is not recorded for abctl", slot_to_string(x));
        else if ((r = damage_write(b->view.efivarfs, d)) < 0)
                log_error_errno(r, "Failed to record the damage of slot %s in EFI variable %s-%s: %m",
                                slot_to_string(x), damage_var_name(x), EFI_ABSWITCH_GUID);

        r = slots_view_read(&b->view);
        if (r < 0) {
                log_error_errno(r, "Failed to read the slots' state from %s: %m; staying up on slot %s",
                                b->view.layout.disk, slot_to_string(x));
                return;
        }
        r = slots_apply_op(&req, b->view.st, &res, why, sizeof(why));
        if (r < 0) {
                /* For the root's services (and the test root): this slot runs damaged. */
                char text[DAMAGE_TEXT_MAX];
                int n = damage_format(d, text, sizeof(text));
                FILE *f = n > 0 ? fopen(WATCH_DAMAGED_PATH, "we") : NULL;
                if (f) {
                        fputs(text, f);
                        fclose(f);
                }
                log_emerg("Staying up on the damaged slot %s without a reboot: %s. Reads of the damaged blocks "
                          "fail with EIO; nothing was written to the slots' state. Install a new image (abctl "
                          "install) or repair it from another boot (abctl repair).", slot_to_string(x), why);
                return;
        }
        r = slots_commit(&b->view, &res.t, &stats);
        if (r < 0) {
                log_emerg("Failed to write the fallback to slot %s (see above): staying up on the damaged "
                          "slot %s", slot_to_string(res.target), slot_to_string(x));
                return;
        }
        log_emerg("Slot %s is failed for now (abctl repair %s returns it to service); slot %s takes over",
                  slot_to_string(x), slot_to_string(x), slot_to_string(res.target));
        watch_reboot(res.target);
}

static _Noreturn void watch_run(struct boot *b, int fd, dev_t dev) {
        struct slot_damage d = { .slot = b->id.slot };
        bool acted = false;

        (void) prctl(PR_SET_NAME, "abswitch-watch");
        (void) snprintf(d.roothash, sizeof(d.roothash), "%s", b->cmdline.roothash);
        for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                /* After the first block: collect the rest of that read for a
                 * while, then act once. */
                int timeout = d.n > 0 && !acted ? (int) WATCH_COLLECT_MS : -1;
                int k = poll(&p, 1, timeout);
                if (k < 0 && errno != EINTR)
                        break;
                if (k > 0) {
                        DamageKind kind = DAMAGE_DATA;
                        uint64_t block = 0;
                        unsigned before = d.n;
                        while (watch_receive(fd, dev, &kind, &block) > 0)
                                (void) damage_add(&d, kind, block);
                        if (acted && d.n > before && b->view.efivarfs)
                                (void) damage_write(b->view.efivarfs, &d);  /* more of the same, no reboot */
                        if (!acted && d.n == 1 && before == 0)
                                d.time = (uint64_t) time(NULL);
                        continue;
                }
                if (k == 0 && d.n > 0 && !acted) {
                        acted = true;
                        watch_act(b, &d);
                }
        }
        log_error_errno(-errno, "The corruption watcher failed to wait for uevents: %m");
        _exit(1);
}

void watch_start(void *userdata) {
        struct boot *b = userdata;
        struct stat st;
        int fd;

        if (b->cmdline.verity_error != VERITY_ERROR_FALLBACK || !b->root_dev)
                return;
        if (stat(b->root_dev, &st) < 0 || !S_ISBLK(st.st_mode)) {
                log_error_errno(-errno, "Cannot watch %s for corruption: %m; a damaged block fails with EIO "
                                "and nothing falls back", b->root_dev);
                return;
        }
        /* Bound before the root's init runs, so no uevent of its reads is missed. */
        fd = watch_socket();
        if (fd < 0) {
                log_error_errno(fd, "Cannot listen for dm-verity's uevents: %m; a damaged block fails with EIO "
                                "and nothing falls back");
                return;
        }
        pid_t pid = fork();
        if (pid < 0) {
                int r = -errno;
                close(fd);
                log_error_errno(r, "Cannot start the corruption watcher: %m");
                return;
        }
        if (pid > 0) {
                close(fd);
                /* For the root's services (and the test root) to tell that one runs. */
                FILE *f = fopen(WATCH_PID_PATH, "we");
                if (f) {
                        fprintf(f, "%d\n", (int) pid);
                        fclose(f);
                }
                log_info("Corruption watcher (PID %d) watches %s: on a damaged block it records it and falls "
                         "back to slot %s if that one can boot", (int) pid, b->root_dev, slot_to_string(slot_other(b->id.slot)));
                return;
        }
        /* The child: no signal the root's init sends its children before
         * it is ready should end the watch. */
        (void) setsid();
        (void) signal(SIGHUP, SIG_IGN);
        log_close();
        log_setup("abswitch-watch", LOG_TARGET_KMSG);
        watch_run(b, fd, st.st_rdev);
}
