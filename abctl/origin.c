/* SPDX-License-Identifier: MIT */
/* A slot's origin on the ESP: see origin.h. */

#include <stdio.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include <json-c/json.h>

#include "../common/io.h"
#include "../common/log.h"
#include "../common/macro.h"
#include "abctl.h"
#include "origin.h"

/* Bytes: an origin is a few hundred; 8 KiB with the NUL after it. */
#define ORIGIN_FILE_MAX (8 * 1024 - 1)

static const char *const kind_names[_ORIGIN_KIND_MAX] = {
        [ORIGIN_FILES] = "files",
        [ORIGIN_OCI_LAYOUT] = "oci-layout",
        [ORIGIN_REGISTRY] = "registry",
};

const char *origin_kind_to_string(OriginKind k) {
        return k >= 0 && k < _ORIGIN_KIND_MAX ? kind_names[k] : NULL;
}

OriginKind origin_kind_from_string(const char *s) {
        for (int k = 0; s && k < _ORIGIN_KIND_MAX; k++)
                if (streq(s, kind_names[k]))
                        return (OriginKind) k;
        return _ORIGIN_KIND_INVALID;
}

int origin_format(const struct slot_origin *o, char **ret) {
        const char *kind = origin_kind_to_string(o->kind);
        if (!kind)
                return -EINVAL;
        json_object *j = json_object_new_object();
        if (!j)
                return -ENOMEM;
        json_object_object_add(j, "kind", json_object_new_string(kind));
        json_object_object_add(j, "reference", json_object_new_string(o->reference));
        json_object_object_add(j, "digest", json_object_new_string(o->digest));
        json_object_object_add(j, "roothash", json_object_new_string(o->roothash));
        json_object_object_add(j, "version", json_object_new_string(o->version));
        json_object_object_add(j, "installed", json_object_new_string(o->installed));
        char *s = strdup(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(j);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static bool hex_valid(const char *s, size_t min, size_t max) {
        size_t n = strlen(s);
        if (n < min || n > max)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

/* Copies the string member key of j into buf (size bytes); false when it
 * is missing, not a string, holds a NUL or does not fit. */
static bool get_string(json_object *j, const char *key, char *buf, size_t size) {
        json_object *v;
        if (!json_object_object_get_ex(j, key, &v) || !json_object_is_type(v, json_type_string))
                return false;
        const char *s = json_object_get_string(v);
        size_t n = (size_t) json_object_get_string_len(v);
        if (n >= size || strlen(s) != n)
                return false;
        memcpy(buf, s, n + 1);
        return true;
}

int origin_parse(const char *json, size_t len, struct slot_origin *ret, char *why, size_t whysize) {
        struct slot_origin o = {};
        char kind[32];
        const char *bad = NULL;

        json_tokener *tok = json_tokener_new();
        if (!tok)
                return -ENOMEM;
        json_object *j = len <= INT32_MAX ? json_tokener_parse_ex(tok, json, (int) len) : NULL;
        bool whole = j && json_tokener_get_error(tok) == json_tokener_success &&
                     (size_t) json_tokener_get_parse_end(tok) == len;
        json_tokener_free(tok);
        if (!whole || !json_object_is_type(j, json_type_object))
                bad = "not a JSON object";
        else if (!get_string(j, "kind", kind, sizeof(kind)) || (o.kind = origin_kind_from_string(kind)) < 0)
                bad = "\"kind\" is not files, oci-layout or registry";
        else if (!get_string(j, "reference", o.reference, sizeof(o.reference)) || !o.reference[0])
                bad = "\"reference\" is missing or too long";
        else if (!get_string(j, "digest", o.digest, sizeof(o.digest)) ||
                 (o.digest[0] && (strncmp(o.digest, "sha256:", 7) != 0 || !hex_valid(o.digest + 7, 64, 64))) ||
                 (!o.digest[0] && o.kind != ORIGIN_FILES))
                bad = "\"digest\" is not sha256:<64 hex digits>";
        else if (!get_string(j, "roothash", o.roothash, sizeof(o.roothash)) ||
                 !hex_valid(o.roothash, 64, ROOTHASH_HEX_MAX))
                bad = "\"roothash\" is not a hex root hash";
        else if (!get_string(j, "version", o.version, sizeof(o.version)))
                bad = "\"version\" is missing or too long";
        else if (!get_string(j, "installed", o.installed, sizeof(o.installed)))
                bad = "\"installed\" is missing or too long";
        json_object_put(j);
        if (bad) {
                if (why)
                        (void) snprintf(why, whysize, "%s", bad);
                return -EBADMSG;
        }
        *ret = o;
        return 0;
}

int origin_path(const char *esp_dir, Slot s, char **ret) {
        return abctl_path(ret, "%s/EFI/abswitch/boot-%s.origin", esp_dir, slot_to_lower(s));
}

int origin_write(const char *esp_dir, Slot s, const struct slot_origin *o) {
        _cleanup_free_ char *path = NULL, *json = NULL;
        struct slot_origin stamped = *o;
        time_t now = time(NULL);
        struct tm tm;
        int r;

        if (!stamped.installed[0] && gmtime_r(&now, &tm))
                (void) strftime(stamped.installed, sizeof(stamped.installed), "%Y-%m-%dT%H:%M:%SZ", &tm);
        r = origin_path(esp_dir, s, &path);
        if (r >= 0)
                r = origin_format(&stamped, &json);
        if (r < 0)
                return log_error_errno(r, "Cannot record slot %s's origin: %m", slot_to_string(s));
        /* Its temporary is <path>.new, which esp_remove_stale() knows. */
        r = write_file_atomic(path, json, strlen(json));
        if (r < 0)
                return log_error_errno(r, "Writing %s failed: %m", path);
        return 0;
}

int origin_read(const char *esp_dir, Slot s, const char *roothash, struct slot_origin *ret) {
        _cleanup_free_ char *path = NULL, *text = NULL;
        char why[128];
        size_t n = 0;
        int r = origin_path(esp_dir, s, &path);
        if (r < 0)
                return r;
        r = read_file_bounded(path, ORIGIN_FILE_MAX, &text, &n);
        if (r == -EFBIG) {
                log_debug("%s is larger than %d bytes: not an origin", path, ORIGIN_FILE_MAX);
                return -EBADMSG;
        }
        if (r < 0)
                return r;
        r = origin_parse(text, n, ret, why, sizeof(why));
        if (r < 0) {
                log_debug("%s is not an origin: %s", path, why);
                return r;
        }
        if (roothash && strcasecmp(roothash, ret->roothash) != 0)
                return -ESTALE;
        return 0;
}
