/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE 1 /* SCHED_IDLE in glibc's <sched.h> (musl has it anyway) */
#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sched.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>

#include "../common/log.h"
#include "init.h"

/* Removes everything below dirfd that lives on device dev (the initramfs),
 * leaving mount points alone. Errors are ignored: this only frees memory. */
static void remove_on_device(int dirfd, dev_t dev) {
        DIR *d = fdopendir(dirfd);
        struct dirent *de;

        if (!d) {
                close(dirfd);
                return;
        }
        while ((de = readdir(d))) {
                struct stat st;
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_dev != dev)
                        continue;
                if (S_ISDIR(st.st_mode)) {
                        int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (sub >= 0)
                                remove_on_device(sub, dev);
                        (void) unlinkat(dirfd, de->d_name, AT_REMOVEDIR);
                } else
                        (void) unlinkat(dirfd, de->d_name, 0);
        }
        closedir(d);
}

/* Deletes the initramfs's files off the boot's critical path: a child
 * holding the old root open does it at SCHED_IDLE, when the root's init
 * leaves the CPU idle, while this process moves on and execs it (the
 * 30-odd files take 9-18 ms of an emulated boot). It stays a child of
 * PID 1, reaped by the root's init like the corruption watcher. When the
 * child cannot be made, the files go now. */
static void free_initramfs(dev_t dev) {
        int fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return;
        pid_t pid = fork();
        if (pid == 0) {
                struct sched_param p = { .sched_priority = 0 };
                /* musl's sched_setscheduler() is a stub: the system call. */
                (void) syscall(SYS_sched_setscheduler, 0, SCHED_IDLE, &p);
                (void) prctl(PR_SET_NAME, "abswitch-free");
                remove_on_device(fd, dev);
                _exit(0);
        }
        if (pid < 0)
                remove_on_device(fd, dev);
        else
                close(fd);
}

int switch_root(const char *newroot, const char *init, char **argv, void (*before_exec)(void *userdata),
                void *userdata) {
        static const char *const moves[] = { "/dev", "/proc", "/sys", "/run" };
        char target[256];
        struct stat root_st, new_st;
        struct statfs sfs;

        for (size_t i = 0; i < ELEMENTSOF(moves); i++) {
                (void) snprintf(target, sizeof(target), "%s%s", newroot, moves[i]);
                if (mount(moves[i], target, NULL, MS_MOVE, NULL) < 0) {
                        /* A read-only root without the directory: the root's
                         * init must mount it itself. */
                        log_warning_errno(-errno, "Failed to move %s to %s, detaching it instead: %m",
                                          moves[i], target);
                        (void) umount2(moves[i], MNT_DETACH);
                }
        }

        if (chdir(newroot) < 0)
                return log_error_errno(-errno, "Failed to enter %s: %m", newroot);
        if (stat("/", &root_st) < 0 || stat(".", &new_st) < 0)
                return log_error_errno(-errno, "Failed to stat the roots: %m");

        /* Free the initramfs, but only if / really is one: never delete files
         * of a real file system (say, when run by hand for debugging). */
        if (statfs("/", &sfs) == 0 && (sfs.f_type == RAMFS_MAGIC || sfs.f_type == TMPFS_MAGIC) &&
            root_st.st_dev != new_st.st_dev)
                free_initramfs(root_st.st_dev);

        if (mount(".", "/", NULL, MS_MOVE, NULL) < 0)
                return log_error_errno(-errno, "Failed to move %s to /: %m", newroot);
        if (chroot(".") < 0)
                return log_error_errno(-errno, "Failed to change root to %s: %m", newroot);
        if (chdir("/") < 0)
                return log_error_errno(-errno, "Failed to enter the new root: %m");

        argv[0] = (char *) init;
        /* In the new root, before its init: the corruption watcher (watch.c). */
        if (before_exec)
                before_exec(userdata);
        log_close();
        execv(init, argv);
        log_setup("abswitch", LOG_TARGET_KMSG);
        return log_error_errno(-errno, "Failed to execute %s in the new root: %m", init);
}
