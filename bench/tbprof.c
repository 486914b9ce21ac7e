/* SPDX-License-Identifier: MIT */
/* A QEMU TCG plugin for bench/tbprof.py: logs every translation block as
 * it is translated (host CLOCK_MONOTONIC ns, guest virtual address, guest
 * instructions, guest code bytes) to the file out= names. Under TCG most of
 * an initramfs's wall-clock is translating code that runs once, so what a
 * boot makes QEMU translate is where its time goes. Built against
 * qemu-plugin.h from Debian's QEMU source (the plugin API is versioned;
 * bench/tbprof.py fetches the header into build/, never into the tree). */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

struct tb_record {
        uint64_t ns, vaddr;
        uint32_t insns, bytes;
};

static FILE *out;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
        struct timespec ts;
        struct tb_record r = { .vaddr = qemu_plugin_tb_vaddr(tb), .insns = (uint32_t) qemu_plugin_tb_n_insns(tb) };

        (void) id;
        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        r.ns = (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
        if (r.insns > 0) {
                struct qemu_plugin_insn *last = qemu_plugin_tb_get_insn(tb, r.insns - 1);
                r.bytes = (uint32_t) (qemu_plugin_insn_vaddr(last) + qemu_plugin_insn_size(last) - r.vaddr);
        }
        pthread_mutex_lock(&lock);
        (void) fwrite(&r, sizeof(r), 1, out);
        pthread_mutex_unlock(&lock);
}

static void on_exit(qemu_plugin_id_t id, void *data) {
        (void) id, (void) data;
        (void) fflush(out);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
        const char *path = NULL;

        (void) info;
        for (int i = 0; i < argc; i++)
                if (strncmp(argv[i], "out=", 4) == 0)
                        path = argv[i] + 4;
        if (!path || !(out = fopen(path, "we"))) {
                fprintf(stderr, "tbprof: give a writable out=FILE\n");
                return -1;
        }
        (void) setvbuf(out, NULL, _IOFBF, 1 << 20);
        qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
        qemu_plugin_register_atexit_cb(id, on_exit, NULL);
        return 0;
}
