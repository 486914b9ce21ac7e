/* SPDX-License-Identifier: MIT */
/* The test root's /sbin/init. It proves where it runs and powers off:
 *
 *   ABSWITCH-ROOT slot=<from the image> root=<dev> dm=<name> dm_uuid=<uuid> verity=<yes|no>
 *     ro=<yes|no> boottime_ms=<CLOCK_BOOTTIME>
 *   ABSWITCH-RECORD <one line of /run/abswitch/boot.json>
 *
 * The slot comes from /etc/abswitch-test-slot in the image itself, so a test
 * sees which image was really mounted, not what the init believes. With
 * /etc/abswitch-test-hang it hangs instead of powering off; each line of
 * /etc/abswitch-test-run is run first (argv split at spaces) and reported as
 *   ABSWITCH-RUN rc=<status> <command>  */

#include <fcntl.h>
#include <stdio.h>
#include <sys/wait.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
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
