/* SPDX-License-Identifier: MIT */
/* Pure parsing and matching of containers auth files (auth.h). No I/O.
 *
 * JSON is json-c's job and base64 mbedtls's (mbedtls_base64_decode); what
 * is here by hand is the key order of containers-auth.json(5), which no C
 * library implements (containers/image is Go). Nothing that comes out of
 * an "auth" or "identitytoken" value goes into why: a malformed entry is
 * named by its key. */

#include <errno.h>
#include <json-c/json.h>
#include <mbedtls/base64.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

#define WHY(...) (snprintf(why, whysize, __VA_ARGS__), -EINVAL)
#define OOM() (snprintf(why, whysize, "out of memory"), -ENOMEM)

void auth_wipe(void *p, size_t n) {
        if (!p)
                return;
        memset(p, 0, n);
        /* The barrier makes the stores observable: no dead-store elimination. */
        __asm__ __volatile__("" : : "r"(p) : "memory");
}

static void free_secret(char **s) {
        if (*s) {
                auth_wipe(*s, strlen(*s));
                free(*s);
        }
        *s = NULL;
}

void registry_auth_done(struct registry_auth *a) {
        free_secret(&a->username);
        free_secret(&a->password);
        free_secret(&a->identity_token);
        a->key[0] = 0;
}

const char *auth_file_pick(const char *option, const char *env, AuthFileSource *ret_source) {
        if (option) {
                *ret_source = AUTH_FILE_OPTION;
                return option;
        }
        if (env && env[0]) {
                *ret_source = AUTH_FILE_ENV;
                return env;
        }
        *ret_source = AUTH_FILE_FALLBACK;
        return AUTH_FILE_DEFAULT;
}

const char *auth_file_source_to_string(AuthFileSource s) {
        switch (s) {
        case AUTH_FILE_OPTION:
                return "--authfile";
        case AUTH_FILE_ENV:
                return "$REGISTRY_AUTH_FILE";
        case AUTH_FILE_FALLBACK:
                return "the default auth file";
        default:
                return "?";
        }
}

/* docker.io's other names (containers/image's normalizeRegistry). */
static const char *normalize_registry(const char *host, size_t n, size_t *ret_n) {
        static const char *const hub[] = { "index.docker.io", "registry-1.docker.io" };
        for (size_t i = 0; i < sizeof(hub) / sizeof(hub[0]); i++)
                if (n == strlen(hub[i]) && memcmp(host, hub[i], n) == 0) {
                        *ret_n = strlen("docker.io");
                        return "docker.io";
                }
        *ret_n = n;
        return host;
}

/* A legacy key ("https://HOST/v1/", "http://HOST") reduced to its host,
 * normalized; false for a key without a scheme (those match exactly). */
static bool legacy_key_host(const char *key, const char **ret, size_t *ret_n) {
        const char *h;
        if (strncmp(key, "https://", 8) == 0)
                h = key + 8;
        else if (strncmp(key, "http://", 7) == 0)
                h = key + 7;
        else
                return false;
        *ret = normalize_registry(h, strcspn(h, "/"), ret_n);
        return true;
}

/* A string value of o's key, or NULL; false when it is there and not a string. */
static bool string_field(json_object *o, const char *key, json_object **ret) {
        *ret = NULL;
        if (!json_object_object_get_ex(o, key, ret))
                return true;
        if (json_object_is_type(*ret, json_type_null)) {
                *ret = NULL;
                return true;
        }
        return json_object_is_type(*ret, json_type_string);
}

static char *copy_secret(const char *s, size_t n) {
        char *c = malloc(n + 1);
        if (c) {
                memcpy(c, s, n);
                c[n] = 0;
        }
        return c;
}

/* The credentials of one entry into ret (key already set). */
static int entry_decode(json_object *e, struct registry_auth *ret, char *why, size_t whysize) {
        json_object *auth, *idt;
        if (!json_object_is_type(e, json_type_object))
                return WHY("auths entry \"%.200s\" is not a JSON object", ret->key);
        if (!string_field(e, "auth", &auth))
                return WHY("\"auth\" of auths entry \"%.200s\" is not a string", ret->key);
        if (!string_field(e, "identitytoken", &idt))
                return WHY("\"identitytoken\" of auths entry \"%.200s\" is not a string", ret->key);

        if (idt && json_object_get_string_len(idt) > 0) {
                size_t n = (size_t) json_object_get_string_len(idt);
                const char *v = json_object_get_string(idt);
                if (memchr(v, 0, n))
                        return WHY("\"identitytoken\" of auths entry \"%.200s\" holds a NUL byte", ret->key);
                ret->identity_token = copy_secret(v, n);
                if (!ret->identity_token)
                        return OOM();
        }
        if (!auth || json_object_get_string_len(auth) == 0)
                return 0;

        const unsigned char *src = (const unsigned char *) json_object_get_string(auth);
        size_t srclen = (size_t) json_object_get_string_len(auth), n = 0;
        /* mbedtls says how much room it needs when given none. */
        int m = mbedtls_base64_decode(NULL, 0, &n, src, srclen);
        if (m == MBEDTLS_ERR_BASE64_INVALID_CHARACTER)
                return WHY("\"auth\" of auths entry \"%.200s\" is not base64 (it should be base64 of "
                           "\"user:password\", as podman login writes it)", ret->key);
        unsigned char *plain = calloc(1, n + 1);
        if (!plain)
                return OOM();
        m = mbedtls_base64_decode(plain, n + 1, &n, src, srclen);
        const char *colon = m == 0 ? memchr(plain, ':', n) : NULL;
        int r = 0;
        if (m != 0)
                r = WHY("\"auth\" of auths entry \"%.200s\" is not base64 (it should be base64 of \"user:password\", "
                        "as podman login writes it)", ret->key);
        else if (memchr(plain, 0, n))
                r = WHY("\"auth\" of auths entry \"%.200s\" decodes to a NUL byte", ret->key);
        else if (!colon)
                r = WHY("\"auth\" of auths entry \"%.200s\" decodes to no \"user:password\" (no ':')", ret->key);
        else if (colon == (const char *) plain)
                r = WHY("\"auth\" of auths entry \"%.200s\" has an empty user name", ret->key);
        else {
                size_t ul = (size_t) (colon - (const char *) plain);
                ret->username = copy_secret((const char *) plain, ul);
                ret->password = copy_secret(colon + 1, n - ul - 1);
                if (!ret->username || !ret->password)
                        r = OOM();
        }
        auth_wipe(plain, n + 1);
        free(plain);
        return r;
}

int registry_auth_lookup(const char *json, size_t len, const char *registry, const char *repository,
                         struct registry_auth *ret, char *why, size_t whysize) {
        json_object *auths = NULL, *e = NULL;
        char key[sizeof(ret->key)];
        int r;

        *ret = (struct registry_auth) {};
        if (len > AUTH_FILE_MAX)
                return WHY("it is larger than %u bytes", AUTH_FILE_MAX);
        json_tokener *t = json_tokener_new();
        if (!t)
                return OOM();
        json_object *o = json_tokener_parse_ex(t, json, (int) len);
        size_t end = (size_t) t->char_offset;
        bool ok = json_tokener_get_error(t) == json_tokener_success;
        json_tokener_free(t);
        /* Whitespace may follow (a file edited by hand ends with a newline). */
        while (ok && end < len && json[end] && strchr(" \t\r\n", json[end]))
                end++;
        if (!o || !ok || end != len) {
                json_object_put(o);
                return WHY("it is not JSON (containers-auth.json(5): {\"auths\": {\"HOST\": {\"auth\": \"...\"}}})");
        }
        if (!json_object_is_type(o, json_type_object))
                r = WHY("it is not a JSON object");
        else if (!json_object_object_get_ex(o, "auths", &auths) || json_object_is_type(auths, json_type_null))
                r = 0;  /* only credHelpers, or nothing: no credentials */
        else if (!json_object_is_type(auths, json_type_object))
                r = WHY("its \"auths\" is not a JSON object");
        else {
                /* HOST/a/b/os, HOST/a/b, HOST/a, HOST. */
                int n = snprintf(key, sizeof(key), "%s/%s", registry, repository);
                r = 0;
                if (n < 0 || (size_t) n >= sizeof(key))
                        (void) snprintf(key, sizeof(key), "%s", registry);
                for (;;) {
                        if (json_object_object_get_ex(auths, key, &e)) {
                                r = 1;
                                break;
                        }
                        char *slash = strrchr(key + strlen(registry), '/');
                        if (!slash)
                                break;
                        *slash = 0;
                }
                if (!r) {
                        size_t hn, kn;
                        const char *h = normalize_registry(registry, strlen(registry), &hn), *kh;
                        json_object_object_foreach(auths, k, v) {
                                if (legacy_key_host(k, &kh, &kn) && kn == hn && memcmp(kh, h, hn) == 0) {
                                        (void) snprintf(key, sizeof(key), "%s", k);
                                        e = v;
                                        r = 1;
                                        break;
                                }
                        }
                }
                if (r == 1) {
                        (void) snprintf(ret->key, sizeof(ret->key), "%s", key);
                        int d = entry_decode(e, ret, why, whysize);
                        if (d < 0) {
                                registry_auth_done(ret);
                                r = d;
                        }
                }
        }
        json_object_put(o);
        return r;
}
