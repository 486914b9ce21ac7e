/* SPDX-License-Identifier: MIT */
/* cutter: a power cut at the k-th durable write of a real program.
 *
 *   cutter [--cut K [--tear]] [--atomic DIR] [--log FILE] -- PROGRAM ARGS...
 *
 * Runs PROGRAM under ptrace (x86-64) and counts the system calls that change
 * what survives a power cut: data writes to regular files and block devices
 * (write, pwrite64, writev, pwritev, pwritev2), flushes (fsync, fdatasync,
 * sync, syncfs), and the metadata changes rename, unlink, truncate and
 * opening with O_TRUNC. Writes to pipes, terminals and character devices do
 * not count.
 *
 * Without --cut it only counts: it prints the count and, with --log, one line
 * per counted call ("<n> <call> <path> <bytes>"). With --cut K the K-th
 * counted call (1-based) never happens: the program is killed at its entry,
 * as if the power failed just before it, so exactly calls 1..K-1 took
 * effect. With --tear, a data write K is cut short instead: half its bytes
 * reach the file, then the program dies. Files under --atomic DIR (a
 * stand-in for efivarfs, whose SetVariable either happens or does not) are
 * never torn, only cut.
 *
 * The model is "every call before the cut is durable, nothing after it":
 * the strictest order a disk keeps when the program flushes where it must.
 * The program must be single-threaded (threads are not followed).
 *
 * With --pause-data BYTES --until FILE it cuts nothing: at the first data
 * write of at least BYTES bytes the program is held (stopped at the call's
 * entry), FILE.paused is created, and the program goes on once FILE exists.
 * The concurrency tests use it to run another operator in the middle of an
 * install at a known point (tests/tools/test_concurrency.py).
 *
 * Exit status: the program's own if it finished, 0 after a cut (the cut
 * point was reached), 2 on a usage or tracing error. It prints
 * "cutter: calls=N cut=K" on stderr. */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

enum kind { NOT_COUNTED, DATA, FLUSH, META };

static const char *atomic_dir;

static bool fd_path(pid_t pid, long fd, char *buf, size_t size, struct stat *st) {
        char link[64];
        snprintf(link, sizeof(link), "/proc/%d/fd/%ld", pid, fd);
        ssize_t n = readlink(link, buf, size - 1);
        if (n < 0)
                return false;
        buf[n] = 0;
        return stat(link, st) == 0;
}

static void peek_string(pid_t pid, unsigned long addr, char *buf, size_t size) {
        size_t i = 0;
        while (i + sizeof(long) < size) {
                errno = 0;
                long w = ptrace(PTRACE_PEEKDATA, pid, addr + i, NULL);
                if (errno)
                        break;
                memcpy(buf + i, &w, sizeof(w));
                if (memchr(&w, 0, sizeof(w)))
                        return;
                i += sizeof(w);
        }
        buf[i] = 0;
}

/* What the call at entry does; path and bytes for the log. */
static enum kind classify(pid_t pid, const struct user_regs_struct *r, char *path, size_t size, long *bytes) {
        struct stat st;
        *bytes = 0;
        path[0] = 0;
        switch (r->orig_rax) {
        case SYS_write:
        case SYS_pwrite64:
        case SYS_writev:
        case SYS_pwritev:
        case SYS_pwritev2:
                if (!fd_path(pid, (long) r->rdi, path, size, &st) || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)))
                        return NOT_COUNTED;
                *bytes = (r->orig_rax == SYS_write || r->orig_rax == SYS_pwrite64) ? (long) r->rdx : -1;
                return DATA;
        case SYS_fsync:
        case SYS_fdatasync:
        case SYS_syncfs:
                if (!fd_path(pid, (long) r->rdi, path, size, &st) ||
                    !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) || S_ISDIR(st.st_mode)))
                        return NOT_COUNTED;
                return FLUSH;
        case SYS_sync:
                snprintf(path, size, "(all)");
                return FLUSH;
        case SYS_rename:
        case SYS_unlink:
        case SYS_truncate:
                peek_string(pid, r->rdi, path, size);
                return META;
        case SYS_renameat:
        case SYS_renameat2:
        case SYS_unlinkat:
                peek_string(pid, r->rsi, path, size);
                return META;
        case SYS_ftruncate:
                if (!fd_path(pid, (long) r->rdi, path, size, &st) || !S_ISREG(st.st_mode))
                        return NOT_COUNTED;
                return META;
        case SYS_open:
        case SYS_openat: {
                unsigned long flags = r->orig_rax == SYS_open ? r->rsi : r->rdx;
                unsigned long name = r->orig_rax == SYS_open ? r->rdi : r->rsi;
                if (!(flags & O_TRUNC) || !(flags & O_ACCMODE))
                        return NOT_COUNTED;
                peek_string(pid, name, path, size);
                /* Truncating a file that does not exist (yet) changes nothing. */
                if (stat(path, &st) < 0 || st.st_size == 0)
                        return NOT_COUNTED;
                return META;
        }
        default:
                return NOT_COUNTED;
        }
}

static const char *call_name(unsigned long long nr) {
        switch (nr) {
        case SYS_write: return "write";
        case SYS_pwrite64: return "pwrite";
        case SYS_writev: return "writev";
        case SYS_pwritev: return "pwritev";
        case SYS_pwritev2: return "pwritev2";
        case SYS_fsync: return "fsync";
        case SYS_fdatasync: return "fdatasync";
        case SYS_syncfs: return "syncfs";
        case SYS_sync: return "sync";
        case SYS_rename: case SYS_renameat: case SYS_renameat2: return "rename";
        case SYS_unlink: case SYS_unlinkat: return "unlink";
        case SYS_truncate: case SYS_ftruncate: return "truncate";
        case SYS_open: case SYS_openat: return "open-trunc";
        default: return "?";
        }
}

static _Noreturn void usage(void) {
        fprintf(stderr, "usage: cutter [--cut K [--tear]] [--pause-data BYTES --until FILE] [--atomic DIR] [--log FILE] "
                        "-- PROGRAM ARGS...\n");
        exit(2);
}

int main(int argc, char **argv) {
        long cut = 0, pause_data = 0;
        const char *until = NULL;
        bool tear = false;
        FILE *log = NULL;
        int i = 1;

        for (; i < argc; i++) {
                if (strcmp(argv[i], "--") == 0) {
                        i++;
                        break;
                } else if (strcmp(argv[i], "--cut") == 0 && i + 1 < argc)
                        cut = strtol(argv[++i], NULL, 10);
                else if (strcmp(argv[i], "--pause-data") == 0 && i + 1 < argc)
                        pause_data = strtol(argv[++i], NULL, 10);
                else if (strcmp(argv[i], "--until") == 0 && i + 1 < argc)
                        until = argv[++i];
                else if (strcmp(argv[i], "--tear") == 0)
                        tear = true;
                else if (strcmp(argv[i], "--atomic") == 0 && i + 1 < argc)
                        atomic_dir = argv[++i];
                else if (strcmp(argv[i], "--log") == 0 && i + 1 < argc) {
                        log = fopen(argv[++i], "we");
                        if (!log)
                                usage();
                } else
                        usage();
        }
        if (i >= argc || (pause_data > 0) != (until != NULL))
                usage();

        pid_t pid = fork();
        if (pid < 0)
                return 2;
        if (pid == 0) {
                if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) < 0)
                        _exit(2);
                raise(SIGSTOP); /* returns once the tracer lets it go */
                // cppcheck-suppress unreachableCode
                execvp(argv[i], argv + i);
                _exit(127);
        }

        int status;
        if (waitpid(pid, &status, 0) < 0 || !WIFSTOPPED(status))
                return 2;
        ptrace(PTRACE_SETOPTIONS, pid, NULL, (void *) (PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL));

        long calls = 0;
        bool in_call = false, tearing = false;
        int sig = 0;
        for (;;) {
                if (ptrace(PTRACE_SYSCALL, pid, NULL, (void *) (long) sig) < 0)
                        return 2;
                sig = 0;
                if (waitpid(pid, &status, 0) < 0)
                        return 2;
                if (WIFEXITED(status) || WIFSIGNALED(status)) {
                        fprintf(stderr, "cutter: calls=%ld cut=none\n", calls);
                        if (log)
                                fclose(log);
                        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                }
                if (!(WIFSTOPPED(status) && WSTOPSIG(status) == (SIGTRAP | 0x80))) {
                        if (WIFSTOPPED(status) && WSTOPSIG(status) != SIGTRAP && WSTOPSIG(status) != SIGSTOP)
                                sig = WSTOPSIG(status); /* deliver the program's own signals */
                        continue;
                }
                in_call = !in_call;
                if (!in_call) {
                        if (tearing) {
                                kill(pid, SIGKILL);
                                waitpid(pid, &status, 0);
                                fprintf(stderr, "cutter: calls=%ld cut=%ld torn\n", calls, cut);
                                return 0;
                        }
                        continue;
                }

                struct user_regs_struct r;
                if (ptrace(PTRACE_GETREGS, pid, NULL, &r) < 0)
                        return 2;
                char path[PATH_MAX];
                long bytes;
                enum kind k = classify(pid, &r, path, sizeof(path), &bytes);
                if (k == NOT_COUNTED)
                        continue;
                calls++;
                if (log)
                        fprintf(log, "%ld %s %s %ld\n", calls, call_name(r.orig_rax), path, bytes);
                if (pause_data > 0 && k == DATA && bytes >= pause_data) {
                        char marker[PATH_MAX];
                        snprintf(marker, sizeof(marker), "%s.paused", until);
                        int fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
                        if (fd >= 0)
                                close(fd);
                        while (access(until, F_OK) < 0)
                                usleep(20 * 1000);
                        pause_data = 0;
                }
                if (calls != cut)
                        continue;

                bool atomic = atomic_dir && strncmp(path, atomic_dir, strlen(atomic_dir)) == 0;
                if (tear && k == DATA && bytes > 1 && !atomic) {
                        /* Half the bytes reach the file; the program dies on the way out. */
                        r.rdx = (unsigned long long) bytes / 2;
                        if (ptrace(PTRACE_SETREGS, pid, NULL, &r) < 0)
                                return 2;
                        tearing = true;
                        continue;
                }
                /* Skip the call (-1 is no system call), then die before it returns. */
                r.orig_rax = (unsigned long long) -1;
                (void) ptrace(PTRACE_SETREGS, pid, NULL, &r);
                kill(pid, SIGKILL);
                waitpid(pid, &status, 0);
                fprintf(stderr, "cutter: calls=%ld cut=%ld\n", calls, cut);
                if (log)
                        fclose(log);
                return 0;
        }
}
