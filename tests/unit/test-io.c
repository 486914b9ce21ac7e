/* SPDX-License-Identifier: MIT */
/* common/io.c: the whole-read/write loops, read_file_bounded and
 * write_file_atomic, on real files, a FIFO, sysfs and a small tmpfs. */
#define _GNU_SOURCE 1 /* unshare */
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../common/io.h"
#include "../../common/macro.h"

static char dir[] = "/tmp/abswitch-test-io.XXXXXX";

static int setup(void **state) {
        return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
        char cmd[128];
        (void) snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        return system(cmd) == 0 ? 0 : -1;
}

static const char *at(const char *name) {
        static char buf[4][256];
        static unsigned i;
        char *p = buf[i++ % 4];
        (void) snprintf(p, sizeof(buf[0]), "%s/%s", dir, name);
        return p;
}

static void put(const char *path, const char *text) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(loop_write(fd, text, strlen(text)), 0);
        assert_int_equal(close(fd), 0);
}

/* The file's content, as read_file_bounded would not (so a test of it
 * does not check itself): stdio. */
static char *slurp(const char *path) {
        static char buf[4096];
        FILE *f = fopen(path, "re");
        if (!f)
                return NULL;
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        buf[n] = 0;
        (void) fclose(f);
        return buf;
}

/* ---- the loops ---------------------------------------------------------------- */

static void test_loops(void **state) {
        const char *p = at("loops");
        char buf[16] = "";
        int fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(loop_write(fd, "hello ", 6), 0);
        assert_int_equal(pwrite_full(fd, "world", 5, 6), 0);
        assert_int_equal(pwrite_full(fd, "W", 1, 6), 0);
        assert_int_equal(pread_full(fd, buf, 11, 0), 0);
        assert_memory_equal(buf, "hello World", 11);
        assert_int_equal(pread_full(fd, buf, 3, 8), 0);
        assert_memory_equal(buf, "rld", 3);
        /* Past the end: the file ends before n bytes came. */
        assert_int_equal(pread_full(fd, buf, 4, 9), -EIO);
        assert_int_equal(pread_full(fd, buf, 0, 100), 0);
        (void) close(fd);
        assert_int_equal(loop_write(-1, "x", 1), -EBADF);
        assert_int_equal(pread_full(-1, buf, 1, 0), -EBADF);
}

/* ---- read_file_bounded ------------------------------------------------------ */

static void test_read_regular(void **state) {
        char *text = (char *) "untouched";
        size_t n = 99;
        put(at("r"), "abc\n");
        assert_int_equal(read_file_bounded(at("r"), 4, &text, &n), 0);
        assert_int_equal(n, 4);
        assert_string_equal(text, "abc\n"); /* NUL-terminated */
        free(text);
        text = NULL;
        assert_int_equal(read_file_bounded(at("r"), 4, &text, NULL), 0);
        assert_string_equal(text, "abc\n");
        free(text);
}

static void test_read_empty(void **state) {
        char *text = NULL;
        size_t n = 99;
        put(at("empty"), "");
        assert_int_equal(read_file_bounded(at("empty"), 0, &text, &n), 0);
        assert_non_null(text);
        assert_int_equal(n, 0);
        assert_int_equal(text[0], 0);
        free(text);
}

static void test_read_over_bound(void **state) {
        char *text = (char *) "untouched";
        size_t n = 99;
        put(at("big"), "12345");
        assert_int_equal(read_file_bounded(at("big"), 4, &text, &n), -EFBIG);
        assert_string_equal(text, "untouched");
        assert_int_equal(n, 5); /* how large it is, for the message */
        assert_int_equal(read_file_bounded(at("big"), 4, &text, NULL), -EFBIG);
        assert_int_equal(read_file_bounded(at("big"), 5, &text, &n), 0);
        assert_int_equal(n, 5);
        free(text);
}

static void test_read_not_regular(void **state) {
        char *text = (char *) "untouched";
        size_t n = 99;
        assert_int_equal(read_file_bounded(dir, 1 << 20, &text, &n), -EBADFD);
        assert_int_equal(read_file_bounded("/dev/null", 1 << 20, &text, &n), -EBADFD);
        assert_int_equal(read_file_bounded(at("missing"), 1 << 20, &text, &n), -ENOENT);
        /* A FIFO with no writer: refused at once, not waited on (open(2)
         * without O_NONBLOCK would block here for ever). */
        assert_int_equal(mkfifo(at("fifo"), 0600), 0);
        alarm(10);
        assert_int_equal(read_file_bounded(at("fifo"), 1 << 20, &text, &n), -EBADFD);
        alarm(0);
        assert_string_equal(text, "untouched");
        assert_int_equal(n, 99);
}

/* A short read: a file that ends before the size fstat(2) gave, as one
 * that shrank between the two does. sysfs attributes are regular files
 * of st_size 4096 that hold a few bytes. */
static void test_read_short(void **state) {
        static const char *const candidates[] = { "/sys/kernel/uevent_seqnum", "/sys/power/state",
                                                  "/sys/kernel/mm/transparent_hugepage/enabled" };
        for (size_t i = 0; i < ELEMENTSOF(candidates); i++) {
                struct stat st;
                char *text = (char *) "untouched";
                const char *c = slurp(candidates[i]);
                if (stat(candidates[i], &st) < 0 || !S_ISREG(st.st_mode) || !c || (off_t) strlen(c) >= st.st_size)
                        continue;
                assert_int_equal(read_file_bounded(candidates[i], 1 << 20, &text, NULL), -EIO);
                assert_string_equal(text, "untouched");
                return;
        }
        skip();
}

/* ---- write_file_atomic ------------------------------------------------------ */

static void test_write_new_and_replace(void **state) {
        struct stat st;
        mode_t old = umask(022);
        assert_int_equal(write_file_atomic(at("state.json"), "{\"a\":1}", 7), 0);
        (void) umask(old);
        assert_string_equal(slurp(at("state.json")), "{\"a\":1}");
        assert_int_equal(stat(at("state.json"), &st), 0);
        assert_int_equal(st.st_mode & 07777, 0644);
        /* A shorter text replaces it whole (O_TRUNC on a stale temporary too). */
        put(at("state.json.new"), "left by a power cut, longer than the new text");
        assert_int_equal(write_file_atomic(at("state.json"), "{}", 2), 0);
        assert_string_equal(slurp(at("state.json")), "{}");
        assert_int_equal(access(at("state.json.new"), F_OK), -1);
        assert_int_equal(errno, ENOENT);
        /* Nothing at all. */
        assert_int_equal(write_file_atomic(at("state.json"), "", 0), 0);
        assert_string_equal(slurp(at("state.json")), "");
        /* A name with no directory part: the current directory's entry is flushed. */
        char cwd[4096];
        assert_non_null(getcwd(cwd, sizeof(cwd)));
        assert_int_equal(chdir(dir), 0);
        int r = write_file_atomic("relative", "r", 1);
        assert_int_equal(chdir(cwd), 0);
        assert_int_equal(r, 0);
        assert_string_equal(slurp(at("relative")), "r");
}

/* The rename fails (a directory is where the file should be): the
 * temporary goes, the directory stays. */
static void test_write_rename_fails(void **state) {
        assert_int_equal(mkdir(at("adir"), 0755), 0);
        assert_int_equal(write_file_atomic(at("adir"), "x", 1), -EISDIR);
        assert_int_equal(access(at("adir.new"), F_OK), -1);
        struct stat st;
        assert_int_equal(stat(at("adir"), &st), 0);
        assert_true(S_ISDIR(st.st_mode));
        /* No directory to write in. */
        assert_int_equal(write_file_atomic(at("nodir/file"), "x", 1), -ENOENT);
}

/* A symlink planted at the temporary's name is not written through. */
static void test_write_symlink_temporary(void **state) {
        put(at("victim"), "precious");
        put(at("link-target"), "old");
        assert_int_equal(symlink(at("victim"), at("link-target.new")), 0);
        assert_int_equal(write_file_atomic(at("link-target"), "new", 3), -ELOOP);
        assert_string_equal(slurp(at("victim")), "precious");
        assert_string_equal(slurp(at("link-target")), "old");
}

/* A small tmpfs of our own (a private mount namespace: nothing shows
 * outside this process): a full one (ENOSPC) and a read-only one (EROFS)
 * keep the old file whole and no temporary. Root can write into a mode
 * 0555 directory, so read-only is a read-only mount here. */
static void test_write_full_and_read_only(void **state) {
        const char *mnt = at("tmpfs");
        assert_int_equal(mkdir(mnt, 0755), 0);
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
            mount("abswitch-test", mnt, "tmpfs", 0, "size=64k,mode=0755") < 0)
                skip(); /* no CAP_SYS_ADMIN: not root */
        char path[300], filler[300];
        (void) snprintf(path, sizeof(path), "%s/file", mnt);
        (void) snprintf(filler, sizeof(filler), "%s/filler", mnt);
        assert_int_equal(write_file_atomic(path, "old", 3), 0);

        /* Fill it, then ask for more than is left. */
        _cleanup_free_ char *big = malloc(128 * 1024);
        assert_non_null(big);
        memset(big, 'x', 128 * 1024);
        int fd = open(filler, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        (void) loop_write(fd, big, 48 * 1024);
        (void) close(fd);
        assert_int_equal(write_file_atomic(path, big, 128 * 1024), -ENOSPC);
        assert_string_equal(slurp(path), "old");
        assert_int_equal(access(at("tmpfs/file.new"), F_OK), -1);

        assert_int_equal(mount(NULL, mnt, NULL, MS_REMOUNT | MS_RDONLY, NULL), 0);
        assert_int_equal(write_file_atomic(path, "new", 3), -EROFS);
        assert_string_equal(slurp(path), "old");
        assert_int_equal(umount(mnt), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_loops),
                cmocka_unit_test(test_read_regular),
                cmocka_unit_test(test_read_empty),
                cmocka_unit_test(test_read_over_bound),
                cmocka_unit_test(test_read_not_regular),
                cmocka_unit_test(test_read_short),
                cmocka_unit_test(test_write_new_and_replace),
                cmocka_unit_test(test_write_rename_fails),
                cmocka_unit_test(test_write_symlink_temporary),
                cmocka_unit_test(test_write_full_and_read_only),
        };
        return cmocka_run_group_tests_name("io", tests, setup, teardown);
}
