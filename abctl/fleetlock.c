/* SPDX-License-Identifier: MIT */
/* The FleetLock client (update.h): the HTTP protocol Zincati speaks to
 * coordinate reboots across a fleet (Zincati's docs/development/fleetlock/
 * protocol.md). A POST to BASE/v1/pre-reboot takes a slot of the group's
 * counting semaphore (RecursiveLock), one to BASE/v1/steady-state gives it
 * back (UnlockIfHeld); both carry
 *
 *   {"client_params":{"id":"<this machine's id>","group":"<group>"}}
 *
 * and the header "fleet-lock-protocol: true". 200 is success; any other
 * status is a refusal, with an error object {"kind":...,"value":...} when
 * the server follows the protocol. Servers: Airlock (on etcd), or any that
 * implements the protocol; the tests use tests/tools/fleetlock.py. */

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/param.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "../common/log.h"
#include "../common/macro.h"
#include "update.h"

#define FLEETLOCK_ANSWER_MAX 4096

const char *fleetlock_op_path(FleetLockOp op) {
        switch (op) {
        case FLEETLOCK_PRE_REBOOT:
                return "/v1/pre-reboot";
        case FLEETLOCK_STEADY_STATE:
                return "/v1/steady-state";
        default:
                return NULL;
        }
}

int fleetlock_body(const char *group, const char *id, char **ret) {
        json_object *o = json_object_new_object(), *p = json_object_new_object();
        if (!o || !p) {
                json_object_put(o);
                json_object_put(p);
                return -ENOMEM;
        }
        json_object_object_add(p, "id", json_object_new_string(id));
        json_object_object_add(p, "group", json_object_new_string(group));
        json_object_object_add(o, "client_params", p);
        char *s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(o);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* Printable, one line, at most size - 1 bytes. */
static void printable(const char *s, size_t n, char *ret, size_t size) {
        size_t j = 0;
        for (size_t i = 0; i < n && s[i] != '\n' && j + 1 < size; i++)
                ret[j++] = (unsigned char) s[i] >= 0x20 && s[i] != 0x7f ? s[i] : '?';
        ret[j] = 0;
}

void fleetlock_error_describe(long status, const char *body, size_t len, char *ret, size_t size) {
        json_tokener *tok = json_tokener_new();
        json_object *o = tok ? json_tokener_parse_ex(tok, body, (int) MIN(len, (size_t) FLEETLOCK_ANSWER_MAX)) : NULL;
        json_object *kind, *value;
        char v[256];
        if (o && json_tokener_get_error(tok) == json_tokener_success && json_object_is_type(o, json_type_object) &&
            json_object_object_get_ex(o, "kind", &kind) && json_object_is_type(kind, json_type_string) &&
            json_object_object_get_ex(o, "value", &value) && json_object_is_type(value, json_type_string)) {
                char k[64];
                printable(json_object_get_string(kind), (size_t) json_object_get_string_len(kind), k, sizeof(k));
                printable(json_object_get_string(value), (size_t) json_object_get_string_len(value), v, sizeof(v));
                (void) snprintf(ret, size, "HTTP %ld, %s: %s", status, k, v);
        } else {
                printable(body, MIN(len, (size_t) 200), v, sizeof(v));
                (void) snprintf(ret, size, "HTTP %ld%s%s", status, v[0] ? ": " : "", v);
        }
        json_object_put(o);
        if (tok)
                json_tokener_free(tok);
}

struct answer {
        char data[FLEETLOCK_ANSWER_MAX];
        size_t len;
};

static size_t answer_cb(char *buf, size_t size, size_t n, void *userdata) {
        struct answer *a = userdata;
        size_t k = MIN(size * n, sizeof(a->data) - 1 - a->len);
        memcpy(a->data + a->len, buf, k);
        a->len += k;
        a->data[a->len] = 0;
        return size * n;
}

static void curl_cleanupp(CURL **c) {
        if (*c)
                curl_easy_cleanup(*c);
}

static void slist_freep(struct curl_slist **l) {
        curl_slist_free_all(*l);
}

int fleetlock_request(const struct update_config *cfg, FleetLockOp op, const char *id, char *why, size_t whysize) {
        _cleanup_(curl_cleanupp) CURL *curl = NULL;
        _cleanup_(slist_freep) struct curl_slist *hdrs = NULL;
        _cleanup_free_ char *body = NULL;
        char url[600], err[CURL_ERROR_SIZE] = "";
        struct answer a = {};
        long status = 0;
        int r;

        (void) snprintf(url, sizeof(url), "%s%s", cfg->fleetlock_url, fleetlock_op_path(op));
        r = fleetlock_body(cfg->fleetlock_group, id, &body);
        if (r < 0)
                return r;
        curl = curl_easy_init();
        if (!curl)
                return -ENOMEM;
        struct curl_slist *l = curl_slist_append(NULL, "fleet-lock-protocol: true");
        if (l)
                hdrs = l;
        l = l ? curl_slist_append(hdrs, "Content-Type: application/json") : NULL;
        if (!l)
                return -ENOMEM;
        (void) curl_easy_setopt(curl, CURLOPT_URL, url);
        (void) curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
        (void) curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        (void) curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, err);
        (void) curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, answer_cb);
        (void) curl_easy_setopt(curl, CURLOPT_WRITEDATA, &a);
        (void) curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        (void) curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
        (void) curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
        /* A redirect is what the protocol's header guards against: not followed. */
        (void) curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
        (void) curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
        if (cfg->ca[0])
                (void) curl_easy_setopt(curl, CURLOPT_CAINFO, cfg->ca);

        CURLcode cc = curl_easy_perform(curl);
        if (cc != CURLE_OK) {
                (void) snprintf(why, whysize, "%s: %s", url, err[0] ? err : curl_easy_strerror(cc));
                return cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
                       cc == CURLE_COULDNT_RESOLVE_PROXY ? -ECONNREFUSED : -EHOSTUNREACH;
        }
        (void) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        if (status == 200) {
                (void) snprintf(why, whysize, "%s: HTTP 200", url);
                return 0;
        }
        char d[400];
        fleetlock_error_describe(status, a.data, a.len, d, sizeof(d));
        (void) snprintf(why, whysize, "%s: %s", url, d);
        return -EBUSY;
}
