/* SPDX-License-Identifier: MIT */
/* The floor: the least an initramfs /init can do to boot a dm-verity root,
 * for the benchmark only (bench/run builds it; nothing ships it).
 *
 * It loads the modules listed in /modules (paths in dependency order,
 * resolved at build time), waits for the hash partition's device node,
 * creates the one verity table in /table with raw device-mapper ioctls,
 * mounts it and switches root. No identity, no state, no libraries beyond
 * libc, no error recovery: any failure is a panic. Whatever abswitch spends
 * beyond this is the cost of its logic and its libraries. */

#include <errno.h>
#include <fcntl.h>
#include <linux/dm-ioctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what) {
        dprintf(2, "floor: %s: %s\n", what, strerror(errno));
        exit(1); /* PID 1 exiting panics the kernel; panic=-1 ends QEMU */
}

static char *slurp(const char *path) {
        static char buf[2][4096];
        static int n;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                die(path);
        char *b = buf[n++ & 1];
        ssize_t len = read(fd, b, sizeof(buf[0]) - 1);
        if (len < 0)
                die(path);
        b[len] = 0;
        close(fd);
        return b;
}

static void dm(int ctl, unsigned long cmd, struct dm_ioctl *io, const char *table) {
        io->version[0] = DM_VERSION_MAJOR;
        io->version[1] = 0;
        io->version[2] = 0;
        io->data_size = 16384;
        io->data_start = sizeof(*io);
        snprintf(io->name, sizeof(io->name), "root");
        if (table) {
                /* "START LENGTH TYPE ARGS..." into one dm_target_spec. */
                struct dm_target_spec *t = (void *) (io + 1);
                unsigned long long start, len;
                int off = 0;
                if (sscanf(table, "%llu %llu %15s %n", &start, &len, t->target_type, &off) != 3)
                        die("parse /table");
                t->sector_start = start;
                t->length = len;
                t->status = 0;
                snprintf((char *) (t + 1), 8192, "%s", table + off);
                ((char *) (t + 1))[strcspn((char *) (t + 1), "\n")] = 0;
                t->next = 0;
                io->target_count = 1;
                io->flags = DM_READONLY_FLAG;
        }
        if (ioctl(ctl, cmd, io) < 0)
                die("device-mapper ioctl");
}

int main(void) {
        mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
        mount("proc", "/proc", "proc", 0, NULL);
        mount("sysfs", "/sys", "sysfs", 0, NULL);

        for (char *save = NULL, *m = strtok_r(slurp("/modules"), "\n", &save); m; m = strtok_r(NULL, "\n", &save)) {
                int fd = open(m, O_RDONLY | O_CLOEXEC);
                if (fd < 0 || (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST))
                        die(m);
                close(fd);
        }

        /* The table names its data and hash devices (/dev/vda2, /dev/vda3). */
        char *table = slurp("/table");
        for (int i = 0; access("/dev/vda3", F_OK) < 0; i++) {
                if (i > 10000)
                        die("/dev/vda3");
                nanosleep(&(struct timespec) { .tv_nsec = 1000000 }, NULL);
        }

        /* One dm_ioctl with room for the target spec and its parameters after it. */
        static struct dm_ioctl u[16384 / sizeof(struct dm_ioctl)];
        int ctl = open("/dev/mapper/control", O_RDWR | O_CLOEXEC);
        if (ctl < 0)
                die("/dev/mapper/control");
        memset(u, 0, sizeof(u));
        dm(ctl, DM_DEV_CREATE, u, NULL);
        memset(u, 0, sizeof(u));
        dm(ctl, DM_TABLE_LOAD, u, table);
        memset(u, 0, sizeof(u));
        dm(ctl, DM_DEV_SUSPEND, u, NULL); /* without DM_SUSPEND_FLAG: resume */

        if (mount("/dev/dm-0", "/root", "erofs", MS_RDONLY, NULL) < 0)
                die("mount /dev/dm-0");
        if (mount("/dev", "/root/dev", NULL, MS_MOVE, NULL) < 0 || mount("/proc", "/root/proc", NULL, MS_MOVE, NULL) < 0 ||
            mount("/sys", "/root/sys", NULL, MS_MOVE, NULL) < 0)
                die("move mounts");
        if (chdir("/root") < 0 || mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 || chdir("/") < 0)
                die("switch root");
        execl("/sbin/init", "/sbin/init", (char *) NULL);
        die("exec /sbin/init");
}
