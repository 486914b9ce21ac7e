/* SPDX-License-Identifier: MIT */
#pragma once

/* Registry credentials from a containers auth file, the format podman
 * login, skopeo login and buildah write (containers-auth.json(5)):
 *
 *   { "auths": { "registry.example.com":         { "auth": base64("user:password") },
 *                "registry.example.com/fleet/os": { "identitytoken": "..." } } }
 *
 * Which file (auth_file_pick): --authfile FILE, else $REGISTRY_AUTH_FILE,
 * else /etc/abswitch/auth.json, where a missing file means no credentials.
 *
 * Which entry (registry_auth_lookup), as containers-auth.json(5) says: the
 * most specific key first. For HOST/a/b/os the keys HOST/a/b/os, HOST/a/b,
 * HOST/a and HOST are tried in that order, and the first one present wins
 * (an entry with neither "auth" nor "identitytoken" then means: no
 * credentials for this repository). Only then the legacy keys docker
 * login wrote, "https://HOST/v1/" and the like, count for HOST, by their
 * host alone. docker.io, index.docker.io and registry-1.docker.io are one
 * registry. */

#include <stddef.h>

#define AUTH_FILE_DEFAULT "/etc/abswitch/auth.json"
#define AUTH_FILE_MAX (1u << 20)

typedef enum AuthFileSource {
        AUTH_FILE_OPTION,             /* --authfile: must exist */
        AUTH_FILE_ENV,                /* $REGISTRY_AUTH_FILE: must exist (podman's rule too) */
        AUTH_FILE_FALLBACK,           /* AUTH_FILE_DEFAULT: may be missing */
        _AUTH_FILE_SOURCE_MAX,
        _AUTH_FILE_SOURCE_INVALID = -22,
} AuthFileSource;

/* The file to read: option (may be NULL), else env (may be NULL or
 * empty), else AUTH_FILE_DEFAULT; and where that came from. */
const char *auth_file_pick(const char *option, const char *env, AuthFileSource *ret_source);
/* "--authfile", "$REGISTRY_AUTH_FILE", "the default": for messages. */
const char *auth_file_source_to_string(AuthFileSource s);

struct registry_auth {
        char key[300];                /* the key that matched, "" when none: safe to print */
        char *username;               /* from "auth"; NULL when the entry has none */
        char *password;               /* secret: never print it */
        char *identity_token;         /* secret: "identitytoken", an OAuth 2 refresh token; or NULL */
};

/* Looks up registry (host[:port]) and repository (a/b/c) in the text of an
 * auth file. 1 with ret filled when a key matches, 0 when none does (ret
 * empty), or a negative errno when the file is not what the format says;
 * why then says what and where, and never holds a secret. Everything
 * decoded is wiped before it is freed (registry_auth_done). */
int registry_auth_lookup(const char *json, size_t len, const char *registry, const char *repository,
                         struct registry_auth *ret, char *why, size_t whysize);
/* Wipes the secrets and frees them; ret is then empty. */
void registry_auth_done(struct registry_auth *a);
/* Wipes n bytes where the compiler cannot drop it as a dead store. */
void auth_wipe(void *p, size_t n);
