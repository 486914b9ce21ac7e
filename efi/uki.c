/* SPDX-License-Identifier: MIT */
/* Reading a UKI's sections from a file. See uki.h. */

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "../common/macro.h"
#include "efi.h"
#include "uki.h"

/* The DOS stub, PE header and section table are in the first pages. */
#define UKI_HEAD_MAX (64 * 1024)

int uki_read_section(const char *path, const char *name, char *buf, size_t size) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        _cleanup_free_ uint8_t *head = malloc(UKI_HEAD_MAX);
        struct stat st;
        uint64_t off, len;
        int r;

        if (fd < 0)
                return -errno;
        if (!head)
                return -ENOMEM;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADF;
        ssize_t n = pread(fd, head, UKI_HEAD_MAX, 0);
        if (n < 0)
                return -errno;
        r = efi_pe_find_section(head, (size_t) n, (uint64_t) st.st_size, name, &off, &len);
        if (r == -ENOENT)
                return -ENODATA;
        if (r < 0)
                return r;
        if (size == 0 || len >= size)
                return -E2BIG;
        n = pread(fd, buf, (size_t) len, (off_t) off);
        if (n < 0)
                return -errno;
        if ((uint64_t) n != len)
                return -EBADMSG;  /* the file shrank under us */
        buf[len] = 0;
        return 0;
}

int uki_pinned_roothash(const char *path, char ret[static ROOTHASH_HEX_MAX + 1]) {
        _cleanup_free_ char *line = calloc(1, UKI_SECTION_MAX + 1);
        struct cmdline c;
        int r;

        if (!line)
                return -ENOMEM;
        r = uki_read_section(path, ".cmdline", line, UKI_SECTION_MAX + 1);
        if (r < 0)
                return r;
        r = cmdline_parse(line, &c, NULL, NULL);
        if (r < 0)
                return r;
        if (!c.roothash[0])
                return -ENOKEY;
        memcpy(ret, c.roothash, sizeof(c.roothash));
        return 0;
}

bool uki_osrel_value(const char *osrel, const char *key, char *ret, size_t size) {
        size_t kl = strlen(key);
        for (const char *l = osrel; l && *l;) {
                const char *nl = strchr(l, '\n');
                if (strncmp(l, key, kl) == 0 && l[kl] == '=') {
                        const char *v = l + kl + 1;
                        size_t n = strcspn(v, "\n");
                        if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0])
                                v++, n -= 2;
                        (void) snprintf(ret, size, "%.*s", (int) n, v);
                        return true;
                }
                l = nl ? nl + 1 : NULL;
        }
        return false;
}

/* What .osrel and .cmdline say, for both readers below. */
static void info_from_sections(const char *osrel, const char *cmdline, struct uki_info *ret) {
        struct uki_info info = {};
        struct cmdline c;

        if (osrel) {
                /* IMAGE_VERSION is the image's own version (os-release(5));
                 * VERSION_ID, the OS release's, stands in for it when absent. */
                if (!uki_osrel_value(osrel, "IMAGE_VERSION", info.version, sizeof(info.version)) ||
                    !info.version[0])
                        (void) uki_osrel_value(osrel, "VERSION_ID", info.version, sizeof(info.version));
                (void) uki_osrel_value(osrel, "PRETTY_NAME", info.name, sizeof(info.name));
        }
        if (cmdline && cmdline_parse(cmdline, &c, NULL, NULL) >= 0)
                memcpy(info.roothash, c.roothash, sizeof(c.roothash));
        *ret = info;
}

int uki_read_info(const char *path, struct uki_info *ret) {
        _cleanup_free_ char *osrel = calloc(1, UKI_SECTION_MAX + 1), *cmdline = calloc(1, UKI_SECTION_MAX + 1);

        if (!osrel || !cmdline)
                return -ENOMEM;
        if (access(path, F_OK) < 0)
                return -errno;
        bool has_osrel = uki_read_section(path, ".osrel", osrel, UKI_SECTION_MAX + 1) >= 0;
        bool has_cmdline = uki_read_section(path, ".cmdline", cmdline, UKI_SECTION_MAX + 1) >= 0;
        info_from_sections(has_osrel ? osrel : NULL, has_cmdline ? cmdline : NULL, ret);
        return 0;
}

/* A section of the UKI in memory, NUL-terminated in a new string; NULL
 * when absent, malformed or larger than UKI_SECTION_MAX (efi_pe_find_section
 * refuses a section outside the size bytes). */
static char *section_from_memory(const uint8_t *data, size_t size, const char *name) {
        uint64_t off, len;
        if (efi_pe_find_section(data, size, size, name, &off, &len) < 0 || len > UKI_SECTION_MAX)
                return NULL;
        char *s = malloc((size_t) len + 1);
        if (s) {
                memcpy(s, data + off, (size_t) len);
                s[len] = 0;
        }
        return s;
}

int uki_info_from_memory(const void *data, size_t size, struct uki_info *ret) {
        _cleanup_free_ char *osrel = section_from_memory(data, size, ".osrel");
        _cleanup_free_ char *cmdline = section_from_memory(data, size, ".cmdline");
        info_from_sections(osrel, cmdline, ret);
        return 0;
}
