/* SPDX-License-Identifier: MIT */
/* The init's boot record (/run/abswitch/boot.json) as abctl reads it: which
 * slot runs, on which disk, and how the init knew. json-c parses; this only
 * picks fields, each of which may be missing or of the wrong type. */

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "../common/macro.h"
#include "abctl.h"

void abctl_record_from_json(json_object *o, struct abctl_record *ret) {
        json_object *v, *p;

        *ret = (struct abctl_record) { .slot = _SLOT_INVALID };
        if (json_object_object_get_ex(o, "slot", &v) && json_object_is_type(v, json_type_string))
                ret->slot = slot_from_string(json_object_get_string(v));
        if (json_object_object_get_ex(o, "partitions", &p) && json_object_object_get_ex(p, "disk", &v) &&
            json_object_is_type(v, json_type_string))
                (void) snprintf(ret->disk, sizeof(ret->disk), "%s", json_object_get_string(v));
        if (json_object_object_get_ex(o, "identity", &p) && json_object_object_get_ex(p, "source", &v) &&
            json_object_is_type(v, json_type_string))
                (void) snprintf(ret->source, sizeof(ret->source), "%s", json_object_get_string(v));
}

/* json_object_from_file() reads whatever it is given to the end: a
 * multi-gigabyte file or /dev/zero as --record would eat the memory. The
 * init's record is a few KiB; a regular file of at most max bytes is read. */
int abctl_record_read(const char *path, size_t max, struct abctl_record *ret, uint64_t *ret_size) {
        struct stat st;
        _cleanup_free_ char *buf = NULL;
        size_t n = 0;

        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if (ret_size)
                *ret_size = (uint64_t) st.st_size;
        if ((uint64_t) st.st_size > max)
                return -EFBIG;
        buf = malloc(max + 1);
        if (!buf)
                return -ENOMEM;
        /* The size may change under us: read one byte past max to notice. */
        while (n <= max) {
                ssize_t k = read(fd, buf + n, max + 1 - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                n += (size_t) k;
        }
        if (n > max) {
                if (ret_size)
                        *ret_size = n;
                return -EFBIG;
        }
        buf[n] = 0;

        json_tokener *tok = json_tokener_new();
        if (!tok)
                return -ENOMEM;
        json_object *o = json_tokener_parse_ex(tok, buf, (int) n);
        bool complete = json_tokener_get_error(tok) == json_tokener_success;
        json_tokener_free(tok);
        if (!o || !complete) {
                json_object_put(o);
                return -EBADMSG;
        }
        abctl_record_from_json(o, ret);
        json_object_put(o);
        return 0;
}
