/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <libkmod.h>
#include <stdbool.h>
#include <stdio.h>

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

int modules_load_one(const char *name) {
        struct kmod_ctx *ctx = context();
        return ctx ? load_one(ctx, name) : -ENOENT;
}

/* Module names as the kernel compares them: '-' and '_' are the same. */
static bool same_module(const char *a, const char *b) {
        for (; *a && *b; a++, b++)
                if (*a != *b && !((*a == '-' || *a == '_') && (*b == '-' || *b == '_')))
                        return false;
        return *a == *b;
}

int modules_load(const char *list_file, const char *const *extra) {
        struct kmod_ctx *ctx = context();
        char listed[32][64];
        size_t n_listed = 0;
        int failed = 0;

        if (!ctx)
                return 1;

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
                        if (load_one(ctx, s) < 0)
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
                if (!done && load_one(ctx, *extra) < 0)
                        failed++;
        }
        return failed;
}
