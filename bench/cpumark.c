/* SPDX-License-Identifier: MIT */
/* The bench's /init wrapper: puts PID 1's CPU time so far (the kernel's own
 * start-up, run as PID 1 before any initramfs) into the kernel log, then
 * execs the initramfs's real init, /init.real. The root's init subtracts it
 * from PID 1's CPU time when it starts: what is left is the CPU the
 * initramfs spent. The same wrapper goes into every benchmarked initramfs,
 * so its cost (one exec, about a millisecond) is the same for all. */

#include <fcntl.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

int main(int argc, char **argv) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        long long us = (long long) (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
                       ru.ru_stime.tv_usec;

        /* No /dev yet: a node of our own for /dev/kmsg (1:11), then gone. */
        if (mknod("/.bench-kmsg", S_IFCHR | 0600, makedev(1, 11)) == 0) {
                int fd = open("/.bench-kmsg", O_WRONLY | O_CLOEXEC);
                if (fd >= 0) {
                        dprintf(fd, "abswitch-bench: /init cpu_us=%lld\n", us);
                        close(fd);
                }
                unlink("/.bench-kmsg");
        }
        (void) argc;
        execv("/init.real", argv);
        return 127;
}
