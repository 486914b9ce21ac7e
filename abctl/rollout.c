/* SPDX-License-Identifier: MIT */
/* Staged rollouts with no update server (update.h): the OS image's manifest
 * carries when its rollout starts and how long it lasts, as annotations
 * (initramfs/mkoci --rollout-start, --rollout-duration):
 *
 *   "annotations": { "org.abswitch.rollout.start": "2026-12-02T06:00:00Z",
 *                    "org.abswitch.rollout.duration": "6h" }
 *
 * and each machine derives its wariness w in [0, 1) from its machine id,
 * installing from start + w * duration on: the share of the fleet that may
 * install grows linearly from 0 at the start to all at the end. Fedora
 * CoreOS's Cincinnati server does the same with a wariness the client
 * sends; here the registry is all there is. Pure: no I/O, no clock. */

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/param.h>

#include <json-c/json.h>
#include <mbedtls/md.h>

#include "../common/hex.h"
#include "../common/macro.h"
#include "update.h"

#define WHY(...) (snprintf(why, whysize, __VA_ARGS__), -EBADMSG)

static bool digits(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (s[i] < '0' || s[i] > '9')
                        return false;
        return true;
}

static int num(const char *s, size_t n) {
        int v = 0;
        for (size_t i = 0; i < n; i++)
                v = v * 10 + (s[i] - '0');
        return v;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil): no timegm(), which musl has but reads no leap seconds
 * either, so this is the same everywhere. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
        y -= m <= 2;
        int64_t era = (y >= 0 ? y : y - 399) / 400;
        unsigned yoe = (unsigned) (y - era * 400);
        unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + (int64_t) doe - 719468;
}

int rollout_parse_time(const char *s, time_t *ret) {
        static const unsigned mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
        size_t n = strlen(s);
        /* YYYY-MM-DDTHH:MM:SS then [.frac] then Z or +hh:mm */
        if (n < 20 || !digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' || !digits(s + 8, 2) ||
            (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !digits(s + 11, 2) || s[13] != ':' ||
            !digits(s + 14, 2) || s[16] != ':' || !digits(s + 17, 2))
                return -EINVAL;
        int y = num(s, 4), mo = num(s + 5, 2), d = num(s + 8, 2), h = num(s + 11, 2), mi = num(s + 14, 2),
            se = num(s + 17, 2);
        if (mo < 1 || mo > 12 || d < 1 || (unsigned) d > mdays[mo - 1] || h > 23 || mi > 59 || se > 60)
                return -EINVAL;
        bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        if (mo == 2 && d == 29 && !leap)
                return -EINVAL;
        const char *p = s + 19;
        if (*p == '.') {
                p++;
                size_t f = strspn(p, "0123456789");
                if (f == 0)
                        return -EINVAL;
                p += f;
        }
        int64_t off = 0;
        if ((*p == 'Z' || *p == 'z') && p[1] == 0)
                off = 0;
        else if ((*p == '+' || *p == '-') && strlen(p) == 6 && digits(p + 1, 2) && p[3] == ':' && digits(p + 4, 2) &&
                 num(p + 1, 2) <= 23 && num(p + 4, 2) <= 59)
                off = (*p == '-' ? -1 : 1) * (int64_t) (num(p + 1, 2) * 3600 + num(p + 4, 2) * 60);
        else
                return -EINVAL;
        int64_t t = days_from_civil(y, (unsigned) mo, (unsigned) d) * 86400 + h * 3600 + mi * 60 + MIN(se, 59) - off;
        *ret = (time_t) t;
        return 0;
}

int rollout_parse_duration(const char *s, uint64_t *ret) {
        size_t n = strlen(s);
        uint64_t unit = 1, v = 0;
        if (n == 0)
                return -EINVAL;
        switch (s[n - 1]) {
        case 's': unit = 1; n--; break;
        case 'm': unit = 60; n--; break;
        case 'h': unit = 3600; n--; break;
        case 'd': unit = 86400; n--; break;
        default: break;
        }
        if (n == 0 || n > 9 || !digits(s, n))
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                v = v * 10 + (uint64_t) (s[i] - '0');
        v *= unit;
        /* A rollout longer than a year is a typo. */
        if (v > 366u * 86400u)
                return -ERANGE;
        *ret = v;
        return 0;
}

int rollout_from_manifest(const char *json, size_t len, struct rollout *ret, char *why, size_t whysize) {
        struct rollout r = {};
        json_tokener *tok = json_tokener_new();
        if (!tok)
                return -ENOMEM;
        if (len > INT32_MAX)
                len = INT32_MAX;
        json_object *root = json_tokener_parse_ex(tok, json, (int) len);
        /* The whole document: nothing after the object. */
        bool complete = json_tokener_get_error(tok) == json_tokener_success && tok->char_offset == (int) len;
        json_tokener_free(tok);
        int e = 0;
        if (!root || !complete || !json_object_is_type(root, json_type_object)) {
                e = WHY("the manifest is not a JSON object");
                goto out;
        }
        json_object *ann, *start, *dur;
        if (!json_object_object_get_ex(root, "annotations", &ann) || !json_object_is_type(ann, json_type_object))
                goto done;
        bool has_start = json_object_object_get_ex(ann, ROLLOUT_START_ANNOTATION, &start),
             has_dur = json_object_object_get_ex(ann, ROLLOUT_DURATION_ANNOTATION, &dur);
        if (!has_start && !has_dur)
                goto done;
        if (!has_start) {
                e = WHY("the manifest has " ROLLOUT_DURATION_ANNOTATION " but no " ROLLOUT_START_ANNOTATION
                        ": the rollout has no start (publish it with mkoci --rollout-start)");
                goto out;
        }
        if (!json_object_is_type(start, json_type_string) ||
            rollout_parse_time(json_object_get_string(start), &r.start) < 0) {
                e = WHY("annotation " ROLLOUT_START_ANNOTATION " '%.64s' is not an RFC 3339 time "
                        "(2026-12-02T06:00:00Z)", json_object_get_string(start));
                goto out;
        }
        if (has_dur && (!json_object_is_type(dur, json_type_string) ||
                        rollout_parse_duration(json_object_get_string(dur), &r.duration) < 0)) {
                e = WHY("annotation " ROLLOUT_DURATION_ANNOTATION " '%.64s' is not a duration of at most a year "
                        "(seconds, or with s, m, h or d: '21600', '6h')", json_object_get_string(dur));
                goto out;
        }
        r.staged = true;
done:
        *ret = r;
out:
        json_object_put(root);
        return e;
}

/* HMAC-SHA256 of msg keyed by the machine id's 16 bytes: what the machine
 * derives from its id for others to see (systemd's app-specific ids). */
static int machine_hmac(const char *machine_id, const void *msg, size_t mlen, uint8_t ret[static 32]) {
        const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
        uint8_t key[16];
        char id[33];

        if (update_machine_id_parse(machine_id, strlen(machine_id), id) < 0)
                return -EINVAL;
        for (int i = 0; i < 16; i++) {
                unsigned v;
                if (sscanf(id + 2 * i, "%2x", &v) != 1)
                        return -EINVAL;
                key[i] = (uint8_t) v;
        }
        if (!md || mbedtls_md_hmac(md, key, sizeof(key), msg, mlen, ret) != 0)
                return -EIO;
        return 0;
}

int rollout_wariness(const char *machine_id, const char *digest, double *ret) {
        uint8_t h[32];
        int r = machine_hmac(machine_id, digest, strlen(digest), h);
        if (r < 0)
                return r;
        /* The top 53 bits: every value exact in a double, and < 1. */
        uint64_t v = 0;
        for (int i = 0; i < 8; i++)
                v = v << 8 | h[i];
        *ret = (double) (v >> 11) / (double) (UINT64_C(1) << 53);
        return 0;
}

time_t rollout_admitted_at(const struct rollout *r, double wariness) {
        if (!r->staged)
                return 0;
        return r->start + (time_t) (wariness * (double) r->duration);
}

bool rollout_admits(const struct rollout *r, double wariness, time_t now) {
        return !r->staged || now >= rollout_admitted_at(r, wariness);
}

/* abswitch's application id for app-specific machine ids (a random v4 UUID
 * made for this, as systemd's machine-id(5) asks applications to use). */
static const uint8_t fleetlock_app_id[16] = { 0x5b, 0x1e, 0x27, 0x93, 0xa0, 0x4c, 0x4e, 0x0f,
                                              0x9d, 0x6a, 0x31, 0x8c, 0x72, 0xe4, 0x05, 0xb8 };

int update_fleetlock_id(const char *machine_id, char ret[static 33]) {
        uint8_t h[32];
        int r = machine_hmac(machine_id, fleetlock_app_id, sizeof(fleetlock_app_id), h);
        if (r < 0)
                return r;
        /* Version 4, variant DCE, as sd_id128_get_machine_app_specific(). */
        h[6] = (h[6] & 0x0f) | 0x40;
        h[8] = (h[8] & 0x3f) | 0x80;
        hex_encode(h, 16, ret);
        return 0;
}
