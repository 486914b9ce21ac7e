/* SPDX-License-Identifier: MIT */
/* The test root's /sbin/init. It proves where it runs and powers off:
 *
 *   ABSWITCH-ROOT slot=<from the image> root=<dev> dm=<name> dm_uuid=<uuid> verity=<yes|no>
 *     ro=<yes|no> boottime_ms=<CLOCK_BOOTTIME>
 *   ABSWITCH-RECORD <one line of /run/abswitch/boot.json>
 *   ABSWITCH-BENCH init_us=<kernel clock at "Run /init"> root_us=<kernel clock now>
 *     initrd_cpu_ms=<CPU of PID 1 and its reaped children since /init started> busy_ms=<all CPUs, not idle>
 *   ABSWITCH-FREE exited=<exit status of the init's initramfs remover, or none within 10 s>
 *   ABSWITCH-SECURITY secureboot=<1|0|-: EFI variable SecureBoot> lockdown=<the selected mode of
 *     /sys/kernel/security/lockdown, or ->
 *
 * The slot comes from /etc/abswitch-test-slot in the image itself, so a test
 * sees which image was really mounted, not what the init believes. With
 * /etc/abswitch-test-hang it hangs instead of powering off; each line of
 * /etc/abswitch-test-run is run first (argv split at spaces) and reported as
 *   ABSWITCH-RUN rc=<status> <command>
 * followed by what it cost:
 *   ABSWITCH-RUSAGE maxrss_kb=<peak RSS> ms=<wall time> <command>
 * Lines a test passes at boot time with QEMU's -fw_cfg name=opt/abswitch/run
 * (copied to /run/abswitch-test/run, with opt/abswitch/ca) run after those (the image loads qemu_fw_cfg for them, from the modules
 * listed in /etc/abswitch-test-modules, which come first). With
 * /etc/abswitch-test-net, eth0 gets QEMU's user network address (10.0.2.15/24;
 * the host is 10.0.2.2). The file named in /etc/abswitch-test-read is read
 * to its end:
 *   ABSWITCH-READ bytes=<n> errno=<0 or the error>
 * (with /etc/abswitch-test-read-all, block by block past errors, adding
 * errors=<blocks that failed>). When the read failed and the init's
 * corruption watcher runs (/run/abswitch/watch.pid), the root stays up to
 * 20 s for it, or until it says it stays up too (/run/abswitch/damaged). SIGINT (what the watcher sends PID 1 to reboot, as systemd
 * takes it) prints
 *   ABSWITCH-SIGINT
 * and reboots.
 * With a TPM (/sys/class/tpm/tpm0), its PCRs as the kernel reads them, each
 * record of the userspace event log and the firmware's event log (base64,
 * in chunks) follow the record:
 *   ABSWITCH-PCR bank=<sha1|sha256|...> pcr=<n> value=<hex>
 *   ABSWITCH-TPMLOG <one JSON record of /run/log/systemd/tpm2-measure.log>
 *   ABSWITCH-EVENTLOG <base64 of binary_bios_measurements, a chunk>
 *   ABSWITCH-EVENTLOG-END bytes=<n> */

#include <errno.h>
#include <signal.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <stdint.h>
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

/* The TPM as the booted system sees it (tests/e2e/test_tpm.py). */
static void tpm_report(int con) {
        static const char *const banks[] = { "sha1", "sha256", "sha384", "sha512" };
        static const int pcrs[] = { 7, 9, 11, 12, 15 };
        static char buf[1 << 18];
        char path[128], line[256];

        if (access("/sys/class/tpm/tpm0", F_OK) < 0)
                return;
        for (size_t b = 0; b < sizeof(banks) / sizeof(banks[0]); b++)
                for (size_t i = 0; i < sizeof(pcrs) / sizeof(pcrs[0]); i++) {
                        snprintf(path, sizeof(path), "/sys/class/tpm/tpm0/pcr-%s/%d", banks[b], pcrs[i]);
                        if (access(path, F_OK) < 0)
                                continue;
                        read_line(path, line, sizeof(line));
                        dprintf(con, "ABSWITCH-PCR bank=%s pcr=%d value=%s\n", banks[b], pcrs[i], line);
                }

        int fd = open("/run/log/systemd/tpm2-measure.log", O_RDONLY | O_CLOEXEC);
        ssize_t n = fd < 0 ? 0 : read(fd, buf, sizeof(buf) - 1);
        if (fd >= 0)
                close(fd);
        buf[n < 0 ? 0 : n] = 0;
        /* Records: 0x1E, JSON, newline (RFC 7464). */
        for (char *save = NULL, *rec = strtok_r(buf, "\x1e", &save); rec; rec = strtok_r(NULL, "\x1e", &save)) {
                rec[strcspn(rec, "\n")] = 0;
                if (rec[0])
                        dprintf(con, "ABSWITCH-TPMLOG %s\n", rec);
        }

        (void) mkdir("/sys/kernel/security", 0755);
        (void) mount("securityfs", "/sys/kernel/security", "securityfs", 0, NULL);
        fd = open("/sys/kernel/security/tpm0/binary_bios_measurements", O_RDONLY | O_CLOEXEC);
        size_t total = 0;
        while (fd >= 0 && total < sizeof(buf)) {
                ssize_t k = read(fd, buf + total, sizeof(buf) - total);
                if (k <= 0)
                        break;
                total += (size_t) k;
        }
        if (fd >= 0)
                close(fd);
        static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        char out[1025];
        size_t o = 0;
        for (size_t i = 0; i < total; i += 3) {
                uint32_t v = (uint32_t) (uint8_t) buf[i] << 16;
                if (i + 1 < total)
                        v |= (uint32_t) (uint8_t) buf[i + 1] << 8;
                if (i + 2 < total)
                        v |= (uint8_t) buf[i + 2];
                out[o++] = b64[v >> 18 & 63];
                out[o++] = b64[v >> 12 & 63];
                out[o++] = i + 1 < total ? b64[v >> 6 & 63] : '=';
                out[o++] = i + 2 < total ? b64[v & 63] : '=';
                if (o == 1024 || i + 3 >= total) {
                        out[o] = 0;
                        dprintf(con, "ABSWITCH-EVENTLOG %s\n", out);
                        o = 0;
                }
        }
        dprintf(con, "ABSWITCH-EVENTLOG-END bytes=%zu\n", total);
}

/* What the firmware and the kernel say about Secure Boot, as the booted
 * system sees it: the SecureBoot variable (efivarfs, which the init mounted
 * and moved here with /sys: 4 bytes of attributes, then the value) and the
 * kernel's lockdown mode (securityfs: "none [integrity] confidentiality"). */
static void security_line(int con) {
        char sb = '-', lock[128] = "", mode[32] = "-";
        unsigned char v[5];
        int fd = open("/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c",
                      O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
                if (read(fd, v, sizeof(v)) == (ssize_t) sizeof(v))
                        sb = v[4] ? '1' : '0';
                close(fd);
        }
        (void) mount("securityfs", "/sys/kernel/security", "securityfs", MS_NOSUID | MS_NOEXEC | MS_NODEV, NULL);
        read_line("/sys/kernel/security/lockdown", lock, sizeof(lock));
        char *open_br = strchr(lock, '['), *close_br = open_br ? strchr(open_br, ']') : NULL;
        if (close_br && close_br - open_br - 1 < (long) sizeof(mode))
                snprintf(mode, sizeof(mode), "%.*s", (int) (close_br - open_br - 1), open_br + 1);
        dprintf(con, "ABSWITCH-SECURITY secureboot=%c lockdown=%s\n", sb, mode);
}

/* Kernel modules from the image, in the order listed (dependencies first). */
static void load_modules(int con) {
        FILE *f = fopen("/etc/abswitch-test-modules", "re");
        char path[512];
        while (f && fgets(path, sizeof(path), f)) {
                path[strcspn(path, "\n")] = 0;
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0 || (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST))
                        dprintf(con, "ABSWITCH-MODULE %s failed: %s\n", path, strerror(errno));
                if (fd >= 0)
                        close(fd);
        }
        if (f)
                fclose(f);
}

static int if_up(int sock, const char *name, const char *addr, const char *mask) {
        struct ifreq ifr = {};
        struct sockaddr_in *sin = (struct sockaddr_in *) &ifr.ifr_addr;
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
        if (addr) {
                sin->sin_family = AF_INET;
                inet_pton(AF_INET, addr, &sin->sin_addr);
                if (ioctl(sock, SIOCSIFADDR, &ifr) < 0)
                        return -errno;
                inet_pton(AF_INET, mask, &sin->sin_addr);
                if (ioctl(sock, SIOCSIFNETMASK, &ifr) < 0)
                        return -errno;
        }
        if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0)
                return -errno;
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        return ioctl(sock, SIOCSIFFLAGS, &ifr) < 0 ? -errno : 0;
}

static void network(int con) {
        if (access("/etc/abswitch-test-net", F_OK) < 0)
                return;
        int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        int r = sock < 0 ? -errno : if_up(sock, "lo", NULL, NULL);
        if (r >= 0)
                r = if_up(sock, "eth0", "10.0.2.15", "255.255.255.0");
        dprintf(con, "ABSWITCH-NET eth0=%s\n", r < 0 ? strerror(-r) : "10.0.2.15/24");
        if (sock >= 0)
                close(sock);
}

static long long mono_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Each line of path is a command (argv split at spaces), run and reported. */
static void run_file(int con, const char *path) {
        FILE *run = fopen(path, "re");
        char line[1024];
        while (run && fgets(line, sizeof(line), run)) {
                char *argv[24], *save = NULL;
                int argc = 0;
                line[strcspn(line, "\n")] = 0;
                char shown[1024];
                snprintf(shown, sizeof(shown), "%s", line);
                for (char *t = strtok_r(line, " ", &save); t && argc < 23; t = strtok_r(NULL, " ", &save))
                        argv[argc++] = t;
                argv[argc] = NULL;
                if (argc == 0)
                        continue;
                int status = -1;
                struct rusage ru = {};
                long long t0 = mono_ms();
                pid_t pid = fork();
                if (pid == 0) {
                        dup2(con, STDOUT_FILENO);
                        dup2(con, STDERR_FILENO);
                        execv(argv[0], argv);
                        _exit(127);
                }
                if (pid > 0)
                        wait4(pid, &status, 0, &ru);
                dprintf(con, "ABSWITCH-RUN rc=%d %s\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1, shown);
                dprintf(con, "ABSWITCH-RUSAGE maxrss_kb=%ld ms=%lld %s\n", ru.ru_maxrss, mono_ms() - t0, shown);
        }
        if (run)
                fclose(run);
}

/* Files the test passed with -fw_cfg name=opt/abswitch/NAME, copied to
 * /run/abswitch-test/NAME: sysfs gives them no size, which stdio-based
 * readers (mbedtls's CA loader) need. */
static void copy_fw_cfg_files(void) {
        static const char *const names[] = { "run", "ca" };
        static char buf[1 << 16];
        (void) mkdir("/run/abswitch-test", 0755);
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                char src[256], dst[256];
                snprintf(src, sizeof(src), "/sys/firmware/qemu_fw_cfg/by_name/opt/abswitch/%s/raw", names[i]);
                snprintf(dst, sizeof(dst), "/run/abswitch-test/%s", names[i]);
                int in = open(src, O_RDONLY | O_CLOEXEC);
                if (in < 0)
                        continue;
                int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                ssize_t n;
                while (out >= 0 && (n = read(in, buf, sizeof(buf))) > 0)
                        if (write(out, buf, (size_t) n) != n)
                                break;
                close(in);
                if (out >= 0)
                        close(out);
        }
}

static int sig_con = STDOUT_FILENO;

static void wait_for_watcher(int err) {
        for (int i = 0; err && i < 80 && access("/run/abswitch/watch.pid", F_OK) == 0 &&
                        access("/run/abswitch/damaged", F_OK) < 0; i++)
                usleep(250 * 1000);
}

/* As systemd takes SIGINT (ctrl-alt-del.target): reboot. */
static void on_sigint(int sig) {
        (void) sig;
        dprintf(sig_con, "ABSWITCH-SIGINT\n");
        sync();
        reboot(RB_AUTOBOOT);
}

/* The init leaves one child that is not the corruption watcher: the
 * initramfs remover, at SCHED_IDLE, so it finishes while this one sleeps
 * here if not before. Reaped and reported (no such child: none, at once). */
static void free_line(int con) {
        char w[32] = "";
        read_line("/run/abswitch/watch.pid", w, sizeof(w));
        pid_t watcher = (pid_t) atoi(w);
        for (int i = 0; i < 1000; i++) {
                int status;
                pid_t pid = waitpid(-1, &status, WNOHANG);
                if (pid < 0)
                        break;
                if (pid > 0 && pid != watcher) {
                        dprintf(con, "ABSWITCH-FREE exited=%d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
                        return;
                }
                usleep(10000);
        }
        dprintf(con, "ABSWITCH-FREE exited=none\n");
}

int main(void) {
        struct timespec ts;
        clock_gettime(CLOCK_BOOTTIME, &ts);
        long long boot_ms = (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;

        int con = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
        if (con < 0)
                con = STDOUT_FILENO;
        sig_con = con;
        signal(SIGINT, on_sigint);

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
        free_line(con);
        tpm_report(con);
        security_line(con);

        /* Commands a test wants run in the booted system, e.g. abctl mark-good:
         * the image's own, then the ones the test passed with -fw_cfg. */
        load_modules(con);
        network(con);
        copy_fw_cfg_files();
        run_file(con, "/etc/abswitch-test-run");
        run_file(con, "/run/abswitch-test/run");

        /* A file read after boot, for the dm-verity corruption policy test. */
        char rpath[256];
        read_line("/etc/abswitch-test-read", rpath, sizeof(rpath));
        if (rpath[0] && access("/etc/abswitch-test-read-all", F_OK) == 0) {
                int rfd = open(rpath, O_RDONLY | O_CLOEXEC);
                long long total = 0, errors = 0;
                int err = rfd < 0 ? errno : 0;
                static char rbuf[4096];
                for (off_t off = 0; rfd >= 0; off += (off_t) sizeof(rbuf)) {
                        ssize_t k = pread(rfd, rbuf, sizeof(rbuf), off);
                        if (k < 0) {
                                if (!err)
                                        err = errno;
                                errors++;
                                if (errno != EIO)
                                        break;
                                continue;
                        }
                        if (k == 0)
                                break;
                        total += k;
                }
                if (rfd >= 0)
                        close(rfd);
                dprintf(con, "ABSWITCH-READ bytes=%lld errno=%d errors=%lld\n", total, err, errors);
                wait_for_watcher(err);
        } else if (rpath[0]) {
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
                wait_for_watcher(err);
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
