/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <fcntl.h>
#include <libkmod.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/syscall.h>

#include "../common/log.h"
#include "../common/macro.h"
#include "init.h"

static void kmod_module_unref_listp(struct kmod_list **l) {
        if (*l)
                kmod_module_unref_list(*l);
}

static void log_from_kmod(void *data, int priority, const char *file, int line, const char *fn,
                          const char *format, va_list args) {
        (void) data, (void) file, (void) line, (void) fn;
        char buf[512];
        (void) vsnprintf(buf, sizeof(buf), format, args);
        size_t n = strlen(buf);
        while (n > 0 && buf[n - 1] == '\n')
                buf[--n] = 0;
        /* libkmod's errors surface through the return value we log below. */
        log_debug("libkmod%s: %s", priority <= LOG_ERR ? " error" : "", buf);
}

static int load_one(struct kmod_ctx *ctx, const char *name) {
        _cleanup_(kmod_module_unref_listp) struct kmod_list *list = NULL;
        struct kmod_list *i;
        int r;

        r = kmod_module_new_from_lookup(ctx, name, &list);
        if (r < 0)
                return log_warning_errno(r, "Failed to look up kernel module %s: %m", name);
        if (!list) {
                log_warning("Kernel module %s is neither built in nor in this initramfs; "
                            "add it to the module list of initramfs/mkinitramfs", name);
                return -ENOENT;
        }
        kmod_list_foreach(i, list) {
                struct kmod_module *m = kmod_module_get_module(i);
                uint64_t t0 = now_boottime_us();
                r = kmod_module_probe_insert_module(m, 0, NULL, NULL, NULL, NULL);
                if (r < 0)
                        log_warning_errno(r, "Failed to load kernel module %s (%s): %m", name,
                                          kmod_module_get_name(m));
                else
                        log_debug("Loaded kernel module %s (%s) in %llu us", name, kmod_module_get_name(m),
                                  (unsigned long long) (now_boottime_us() - t0));
                kmod_module_unref(m);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* One context for the init's life: the file system's module comes after the
 * probe (modules_load_one), and a second kmod_new() would map and read the
 * indexes again. It ends with the process, which execs the root's init. */
static struct kmod_ctx *context(void) {
        static struct kmod_ctx *ctx;
        if (ctx)
                return ctx;
        ctx = kmod_new(NULL, NULL);
        if (!ctx) {
                log_error("Failed to set up libkmod: is /lib/modules/$(uname -r) in the initramfs?");
                return NULL;
        }
        kmod_set_log_fn(ctx, log_from_kmod, NULL);
        (void) kmod_load_resources(ctx);
        return ctx;
}

/* Module names as the kernel compares them: '-' and '_' are the same. */
static bool same_module(const char *a, const char *b) {
        for (; *a && *b; a++, b++)
                if (*a != *b && !((*a == '-' || *a == '_') && (*b == '-' || *b == '_')))
                        return false;
        return *a == *b;
}

/* The hot path: initramfs/mkinitramfs resolved every module it put into the
 * initramfs, with its dependencies in load order, into MODULES_PATHS ("NAME
 * PATH..." per line), from the same modules.dep libkmod would walk here. A
 * boot opens each path and hands it to the kernel, as libkmod does in the
 * end (finit_module, no parameters: the initramfs carries no modprobe.d),
 * without mapping the indexes and resolving names first (about 40 ms of a
 * TCG boot). A module already loaded (a shared dependency) is EEXIST. What
 * the list does not name, or cannot load, goes to libkmod below. */
#define MODULES_PATHS "/etc/abswitch/modules.paths"

static const char *prepared_lines(void) {
        static char buf[16384];
        static int state; /* 0 unread, 1 read, -1 absent or unusable */

        if (state == 0) {
                _cleanup_close_ int fd = open(MODULES_PATHS, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf));
                state = n > 0 && (size_t) n < sizeof(buf) ? 1 : -1;
                if (state > 0)
                        buf[n] = 0;
                else if (n >= 0 || errno != ENOENT)
                        log_warning("%s is unreadable or too large, resolving modules with libkmod", MODULES_PATHS);
        }
        return state > 0 ? buf : NULL;
}

/* Paths this boot loaded already: a shared dependency (virtio_ring for
 * virtio_pci and virtio_blk) is not handed to the kernel twice, which would
 * read and check its signature again before refusing it with EEXIST. */
static char loaded[64][128];
static size_t n_loaded;

static bool loaded_before(const char *path) {
        for (size_t i = 0; i < n_loaded; i++)
                if (streq(loaded[i], path))
                        return true;
        return false;
}

static void remember_loaded(const char *path) {
        if (n_loaded < ELEMENTSOF(loaded) && strlen(path) < sizeof(loaded[0]))
                (void) snprintf(loaded[n_loaded++], sizeof(loaded[0]), "%s", path);
}

/* 0 when loaded (or already there), an error when a listed file failed to
 * load; *ret_listed says whether the list has a line for name at all. */
static int load_prepared(const char *name, bool *ret_listed) {
        const char *lines = prepared_lines();
        char line[2048];

        *ret_listed = false;
        if (!lines)
                return -ENOENT;
        for (const char *p = lines; *p;) {
                size_t len = strcspn(p, "\n");
                const char *next = p[len] ? p + len + 1 : p + len;
                if (len >= sizeof(line)) {
                        p = next;
                        continue;
                }
                memcpy(line, p, len);
                line[len] = 0;
                p = next;

                char *save = NULL, *tok = strtok_r(line, " ", &save);
                if (!tok || !same_module(tok, name))
                        continue;
                *ret_listed = true;
                while ((tok = strtok_r(NULL, " ", &save))) {
                        if (loaded_before(tok))
                                continue;
                        uint64_t t0 = now_boottime_us();
                        _cleanup_close_ int fd = open(tok, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                        if (fd < 0 || (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)) {
                                int r = -errno;
                                log_warning_errno(r, "Failed to load %s (kernel module %s, listed in %s): %m; "
                                                  "trying libkmod", tok, name, MODULES_PATHS);
                                return r;
                        }
                        remember_loaded(tok);
                        log_debug("Loaded %s for kernel module %s in %llu us", tok, name,
                                  (unsigned long long) (now_boottime_us() - t0));
                }
                return 0;
        }
        return -ENOENT;
}

static int load(const char *name) {
        bool listed;
        int r = load_prepared(name, &listed);
        if (r >= 0)
                return 0;
        (void) listed; /* a listed file that failed was logged; libkmod gets another try */
        struct kmod_ctx *ctx = context();
        return ctx ? load_one(ctx, name) : -ENOENT;
}

int modules_load_one(const char *name) {
        return load(name);
}

int modules_load(const char *list_file, const char *const *extra) {
        char listed[32][64];
        size_t n_listed = 0;
        int failed = 0;

        FILE *f = fopen(list_file, "re");
        if (f) {
                char line[256];
                while (fgets(line, sizeof(line), f)) {
                        char *s = line, *e;
                        while (isspace((unsigned char) *s))
                                s++;
                        e = s + strlen(s);
                        while (e > s && isspace((unsigned char) e[-1]))
                                *--e = 0;
                        if (!*s || *s == '#')
                                continue;
                        if (load(s) < 0)
                                failed++;
                        if (n_listed < ELEMENTSOF(listed))
                                (void) snprintf(listed[n_listed++], sizeof(listed[0]), "%s", s);
                }
                fclose(f);
        } else
                log_warning_errno(-errno, "Failed to open %s, loading only the built-in list: %m", list_file);

        /* The built-in list repeats what the initramfs's list normally holds:
         * a second lookup of a loaded module costs a walk of the indexes. */
        for (; extra && *extra; extra++) {
                bool done = false;
                for (size_t i = 0; i < n_listed && !done; i++)
                        done = same_module(listed[i], *extra);
                if (!done && load(*extra) < 0)
                        failed++;
        }
        return failed;
}
