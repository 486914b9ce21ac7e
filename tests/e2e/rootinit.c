/* SPDX-License-Identifier: MIT */
/* The test root's /sbin/init. It proves where it runs and powers off:
 *
 *   ABSWITCH-ROOT slot=<from the image> root=<dev> dm=<name> dm_uuid=<uuid> verity=<yes|no>
 *     ro=<yes|no> boottime_ms=<CLOCK_BOOTTIME>
 *   ABSWITCH-RECORD <one line of /run/abswitch/boot.json>
 *   ABSWITCH-BENCH init_us=<kernel clock at "Run /init"> root_us=<kernel clock now>
 *     initrd_cpu_ms=<CPU of PID 1 and its reaped children since /init started> busy_ms=<all CPUs, not idle>
 *
 * The slot comes from /etc/abswitch-test-slot in the image itself, so a test
 * sees which image was really mounted, not what the init believes. With
 * /etc/abswitch-test-hang it hangs instead of powering off; each line of
 * /etc/abswitch-test-run is run first (argv split at spaces) and reported as
 *   ABSWITCH-RUN rc=<status> <command>
 * and the file named in /etc/abswitch-test-read is read to its end:
 *   ABSWITCH-READ bytes=<n> errno=<0 or the error>  */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <sys/wait.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

static void read_line(const char *path, char *buf, size_t size) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd < 0 ? -1 : read(fd, buf, size - 1);
        if (fd >= 0)
                close(fd);
        if (n < 0)
                n = 0;
        buf[n] = 0;
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
                buf[--n] = 0;
}

/* The kernel's own clock for "initramfs /init starts" and "root's init
 * starts": a marker written to /dev/kmsg now, read back with the record of
 * the kernel's "Run /init as init process", both stamped by printk. Any
 * initramfs leaves that record; the bench reads its phase from it. */
static long long tv_us(struct timeval tv) {
        return (long long) tv.tv_sec * 1000000 + tv.tv_usec;
}

static void bench_line(int con) {
        long long init_us = -1, root_us = -1, init_cpu_us = -1, cpu;
        int fd = open("/dev/kmsg", O_RDWR | O_NONBLOCK | O_CLOEXEC);
        if (fd >= 0) {
                static const char mark[] = "abswitch-bench: root init\n";
                (void) write(fd, mark, sizeof(mark) - 1);
                char rec[8192];
                for (;;) {
                        ssize_t n = read(fd, rec, sizeof(rec) - 1);
                        if (n < 0 && errno == EPIPE)
                                continue; /* overwritten records: skip on */
                        if (n <= 0)
                                break;
                        rec[n] = 0;
                        char *msg = strchr(rec, ';');
                        long long ts = 0;
                        if (!msg || sscanf(rec, "%*d,%*u,%lld", &ts) != 1)
                                continue;
                        if (strncmp(msg + 1, "Run /init as init process", 25) == 0)
                                init_us = ts;
                        else if (strncmp(msg + 1, "abswitch-bench: root init", 25) == 0)
                                root_us = ts;
                        else if (sscanf(msg + 1, "abswitch-bench: /init cpu_us=%lld", &cpu) == 1)
                                init_cpu_us = cpu;
                }
                close(fd);
        }
        /* PID 1's CPU (its own and its reaped children's) since the kernel
         * started it, minus what it had when the initramfs's /init started
         * (bench/cpumark.c logs that; -1 without it). */
        struct rusage self, kids;
        getrusage(RUSAGE_SELF, &self);
        getrusage(RUSAGE_CHILDREN, &kids);
        long long pid1 = tv_us(self.ru_utime) + tv_us(self.ru_stime) + tv_us(kids.ru_utime) + tv_us(kids.ru_stime);
        long long initrd_cpu = init_cpu_us < 0 ? -1 : (pid1 - init_cpu_us) / 1000;
        long long busy = -1, tck = sysconf(_SC_CLK_TCK);
        unsigned long long v[8];
        char buf[1024];
        read_line("/proc/stat", buf, sizeof(buf));
        /* cpu user nice system idle iowait irq softirq steal */
        if (sscanf(buf, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                   &v[6], &v[7]) == 8)
                busy = (long long) (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) * 1000 / tck;
        dprintf(con, "ABSWITCH-BENCH init_us=%lld root_us=%lld initrd_cpu_ms=%lld busy_ms=%lld\n", init_us, root_us,
                initrd_cpu, busy);
}

int main(void) {
        struct timespec ts;
        clock_gettime(CLOCK_BOOTTIME, &ts);
        long long boot_ms = (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;

        int con = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
        if (con < 0)
                con = STDOUT_FILENO;

        char slot[32], dm[128] = "", uuid[160] = "", p[256];
        struct stat st;
        struct statvfs sv;
        read_line("/etc/abswitch-test-slot", slot, sizeof(slot));
        stat("/", &st);
        snprintf(p, sizeof(p), "/sys/dev/block/%u:%u/dm/name", major(st.st_dev), minor(st.st_dev));
        read_line(p, dm, sizeof(dm));
        snprintf(p, sizeof(p), "/sys/dev/block/%u:%u/dm/uuid", major(st.st_dev), minor(st.st_dev));
        read_line(p, uuid, sizeof(uuid));
        int ro = statvfs("/", &sv) == 0 && (sv.f_flag & ST_RDONLY);

        dprintf(con, "\nABSWITCH-ROOT slot=%s root=%u:%u dm=%s dm_uuid=%s verity=%s ro=%s boottime_ms=%lld\n",
                slot[0] ? slot : "?", major(st.st_dev), minor(st.st_dev), dm[0] ? dm : "-",
                uuid[0] ? uuid : "-", strncmp(uuid, "CRYPT-VERITY-", 13) == 0 ? "yes" : "no", ro ? "yes" : "no",
                boot_ms);
        (void) mount("proc", "/proc", "proc", 0, NULL); /* the floor and systemd move it; EBUSY then */
        bench_line(con);

        /* The boot record, folded onto one line. */
        int fd = open("/run/abswitch/boot.json", O_RDONLY | O_CLOEXEC);
        static char rec[65536];
        ssize_t n = fd < 0 ? 0 : read(fd, rec, sizeof(rec) - 1);
        if (n < 0)
                n = 0;
        rec[n] = 0;
        for (ssize_t i = 0; i < n; i++)
                if (rec[i] == '\n')
                        rec[i] = ' ';
        dprintf(con, "ABSWITCH-RECORD %s\n", n > 0 ? rec : "{}");

        /* Commands a test wants run in the booted system, e.g. abctl mark-good. */
        FILE *run = fopen("/etc/abswitch-test-run", "re");
        char line[512];
        while (run && fgets(line, sizeof(line), run)) {
                char *argv[16], *save = NULL;
                int argc = 0;
                line[strcspn(line, "\n")] = 0;
                char shown[512];
                snprintf(shown, sizeof(shown), "%s", line);
                for (char *t = strtok_r(line, " ", &save); t && argc < 15; t = strtok_r(NULL, " ", &save))
                        argv[argc++] = t;
                argv[argc] = NULL;
                if (argc == 0)
                        continue;
                int status = -1;
                pid_t pid = fork();
                if (pid == 0) {
                        dup2(con, STDOUT_FILENO);
                        dup2(con, STDERR_FILENO);
                        execv(argv[0], argv);
                        _exit(127);
                }
                if (pid > 0)
                        waitpid(pid, &status, 0);
                dprintf(con, "ABSWITCH-RUN rc=%d %s\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1, shown);
        }
        if (run)
                fclose(run);

        /* A file read after boot, for the dm-verity corruption policy test. */
        char rpath[256];
        read_line("/etc/abswitch-test-read", rpath, sizeof(rpath));
        if (rpath[0]) {
                int rfd = open(rpath, O_RDONLY | O_CLOEXEC);
                long long total = 0;
                int err = rfd < 0 ? errno : 0;
                static char rbuf[65536];
                while (rfd >= 0) {
                        ssize_t k = read(rfd, rbuf, sizeof(rbuf));
                        if (k < 0)
                                err = errno;
                        if (k <= 0)
                                break;
                        total += k;
                }
                if (rfd >= 0)
                        close(rfd);
                dprintf(con, "ABSWITCH-READ bytes=%lld errno=%d\n", total, err);
        }

        /* A root that hangs in userspace, for the watchdog test. */
        if (access("/etc/abswitch-test-hang", F_OK) == 0) {
                dprintf(con, "ABSWITCH-HANG\n");
                for (;;)
                        pause();
        }
        sync();
        reboot(RB_POWER_OFF);
        for (;;)
                pause();
}
