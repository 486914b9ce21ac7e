/* SPDX-License-Identifier: MIT */
/* abctl/auth.c: containers auth files, which key answers for a registry
 * and repository (containers-auth.json(5)), and which files are refused. */
#include <errno.h>

#include "unit.h"
#include "../../abctl/auth.h"

/* base64 of "user:pa:ss" and "other:secret", "bob:", ":nouser", "nocolon" */
#define USER_PASS "dXNlcjpwYTpzcw=="
#define OTHER     "b3RoZXI6c2VjcmV0"
#define BOB_EMPTY "Ym9iOg=="
#define NO_USER   "Om5vdXNlcg=="
#define NO_COLON  "bm9jb2xvbg=="

static char why[300];

static int lookup(const char *json, const char *registry, const char *repo, struct registry_auth *a) {
        why[0] = 0;
        return registry_auth_lookup(json, strlen(json), registry, repo, a, why, sizeof(why));
}

static void test_most_specific_key_wins(void **state) {
        static const char *file =
                "{\"auths\": {"
                "\"r.example.com\": {\"auth\": \"" OTHER "\"},"
                "\"r.example.com/fleet\": {\"auth\": \"" USER_PASS "\"},"
                "\"r.example.com/fleet/os/extra\": {\"auth\": \"" BOB_EMPTY "\"},"
                "\"r.example.com:5000\": {\"identitytoken\": \"refresh-me\"}"
                "}}\n";
        static const struct {
                const char *registry, *repo, *key, *user, *password, *idt;
        } cases[] = {
                { "r.example.com", "fleet/os", "r.example.com/fleet", "user", "pa:ss", NULL },
                { "r.example.com", "fleet", "r.example.com/fleet", "user", "pa:ss", NULL },
                { "r.example.com", "fleetx/os", "r.example.com", "other", "secret", NULL },
                { "r.example.com", "other/os", "r.example.com", "other", "secret", NULL },
                { "r.example.com", "fleet/os/extra", "r.example.com/fleet/os/extra", "bob", "", NULL },
                { "r.example.com", "fleet/os/extra/x", "r.example.com/fleet/os/extra", "bob", "", NULL },
                { "r.example.com:5000", "fleet/os", "r.example.com:5000", NULL, NULL, "refresh-me" },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct registry_auth a;
                int r = lookup(file, cases[i].registry, cases[i].repo, &a);
                if (r != 1)
                        fail_msg("%s/%s: %d %s", cases[i].registry, cases[i].repo, r, why);
                assert_string_equal(a.key, cases[i].key);
                if (cases[i].user) {
                        assert_string_equal(a.username, cases[i].user);
                        assert_string_equal(a.password, cases[i].password);
                } else
                        assert_null(a.username), assert_null(a.password);
                if (cases[i].idt)
                        assert_string_equal(a.identity_token, cases[i].idt);
                else
                        assert_null(a.identity_token);
                registry_auth_done(&a);
                assert_null(a.username);
                assert_string_equal(a.key, "");
        }
}

static void test_no_match(void **state) {
        struct registry_auth a;
        /* Another host, a host that is a prefix of the one asked, another port, no auths at all. */
        static const char *file = "{\"auths\": {\"r.example.co\": {\"auth\": \"" OTHER "\"},"
                                  "\"r.example.com:5000\": {\"auth\": \"" OTHER "\"}}}";
        assert_int_equal(lookup(file, "r.example.com", "os", &a), 0);
        assert_null(a.username);
        assert_int_equal(lookup(file, "r.example.com:5001", "os", &a), 0);
        assert_int_equal(lookup("{}", "r.example.com", "os", &a), 0);
        assert_int_equal(lookup("{\"auths\": {}}", "r.example.com", "os", &a), 0);
        assert_int_equal(lookup("{\"auths\": null}", "r.example.com", "os", &a), 0);
        assert_int_equal(lookup("{\"credHelpers\": {\"r.example.com\": \"ecr\"}}", "r.example.com", "os", &a), 0);
        /* A key that names the repository with a trailing '/' or only part of a component is no match. */
        assert_int_equal(lookup("{\"auths\": {\"r.example.com/fle\": {\"auth\": \"" OTHER "\"}}}",
                                "r.example.com", "fleet/os", &a), 0);
}

static void test_empty_entry_means_anonymous(void **state) {
        /* The most specific key is present and empty: no credentials for that
         * repository, even though the host has some (containers/image stops
         * at the first key present). */
        struct registry_auth a;
        static const char *file = "{\"auths\": {\"r.example.com\": {\"auth\": \"" OTHER "\"},"
                                  "\"r.example.com/public\": {}}}";
        assert_int_equal(lookup(file, "r.example.com", "public/os", &a), 1);
        assert_string_equal(a.key, "r.example.com/public");
        assert_null(a.username);
        assert_null(a.identity_token);
        registry_auth_done(&a);
}

static void test_legacy_keys(void **state) {
        struct registry_auth a;
        static const char *file = "{\"auths\": {\"https://r.example.com/v1/\": {\"auth\": \"" USER_PASS "\"},"
                                  "\"https://index.docker.io/v1/\": {\"auth\": \"" OTHER "\"}}}";
        assert_int_equal(lookup(file, "r.example.com", "fleet/os", &a), 1);
        assert_string_equal(a.key, "https://r.example.com/v1/");
        assert_string_equal(a.username, "user");
        registry_auth_done(&a);
        assert_int_equal(lookup(file, "docker.io", "library/os", &a), 1);
        assert_string_equal(a.username, "other");
        registry_auth_done(&a);
        assert_int_equal(lookup(file, "registry-1.docker.io", "library/os", &a), 1);
        registry_auth_done(&a);
        /* An exact key wins over a legacy one. */
        static const char *both = "{\"auths\": {\"https://r.example.com\": {\"auth\": \"" OTHER "\"},"
                                  "\"r.example.com\": {\"auth\": \"" USER_PASS "\"}}}";
        assert_int_equal(lookup(both, "r.example.com", "os", &a), 1);
        assert_string_equal(a.username, "user");
        registry_auth_done(&a);
}

static void test_malformed_refused_without_secrets(void **state) {
        static const struct {
                const char *json, *says;
        } cases[] = {
                { "", "not JSON" },
                { "{\"auths\": {", "not JSON" },
                { "{\"auths\": {}} x", "not JSON" },
                { "[]", "not a JSON object" },
                { "{\"auths\": []}", "\"auths\" is not a JSON object" },
                { "{\"auths\": {\"r.example.com\": 1}}", "entry \"r.example.com\" is not a JSON object" },
                { "{\"auths\": {\"r.example.com\": {\"auth\": 5}}}", "\"auth\" of auths entry \"r.example.com\" is not a string" },
                { "{\"auths\": {\"r.example.com\": {\"auth\": \"s3cr3t!!\"}}}", "is not base64" },
                { "{\"auths\": {\"r.example.com\": {\"auth\": \"" NO_COLON "\"}}}", "no ':'" },
                { "{\"auths\": {\"r.example.com\": {\"auth\": \"" NO_USER "\"}}}", "empty user name" },
                { "{\"auths\": {\"r.example.com\": {\"auth\": \"dXNlcgBwOnE=\"}}}", "NUL byte" },  /* "user\0p:q" */
                { "{\"auths\": {\"r.example.com\": {\"identitytoken\": []}}}", "\"identitytoken\" of auths entry" },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct registry_auth a;
                int r = lookup(cases[i].json, "r.example.com", "os", &a);
                if (r != -EINVAL)
                        fail_msg("'%s' gave %d", cases[i].json, r);
                if (!strstr(why, cases[i].says))
                        fail_msg("'%s': '%s' does not say '%s'", cases[i].json, why, cases[i].says);
                assert_null(a.username);
                assert_null(a.password);
                assert_null(a.identity_token);
                /* Neither the encoded nor the decoded secret is in the message. */
                assert_null(strstr(why, "s3cr3t"));
                assert_null(strstr(why, "nouser"));
                assert_null(strstr(why, "nocolon"));
                assert_null(strstr(why, NO_COLON));
        }
        /* A NUL inside the file: JSON stops there, the rest is not whitespace. */
        struct registry_auth a;
        static const char nul[] = "{\"auths\": {}}\0{}";
        assert_int_equal(registry_auth_lookup(nul, sizeof(nul) - 1, "r.example.com", "os", &a, why, sizeof(why)),
                         -EINVAL);
}

static void test_auth_file_pick(void **state) {
        AuthFileSource s;
        assert_string_equal(auth_file_pick("/a.json", "/env.json", &s), "/a.json");
        assert_int_equal(s, AUTH_FILE_OPTION);
        assert_string_equal(auth_file_pick(NULL, "/env.json", &s), "/env.json");
        assert_int_equal(s, AUTH_FILE_ENV);
        assert_string_equal(auth_file_pick(NULL, "", &s), AUTH_FILE_DEFAULT);
        assert_int_equal(s, AUTH_FILE_FALLBACK);
        assert_string_equal(auth_file_pick(NULL, NULL, &s), "/etc/abswitch/auth.json");
        assert_int_equal(s, AUTH_FILE_FALLBACK);
        assert_string_equal(auth_file_source_to_string(AUTH_FILE_OPTION), "--authfile");
        assert_string_equal(auth_file_source_to_string(AUTH_FILE_ENV), "$REGISTRY_AUTH_FILE");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_most_specific_key_wins),
                cmocka_unit_test(test_no_match),
                cmocka_unit_test(test_empty_entry_means_anonymous),
                cmocka_unit_test(test_legacy_keys),
                cmocka_unit_test(test_malformed_refused_without_secrets),
                cmocka_unit_test(test_auth_file_pick),
        };
        return cmocka_run_group_tests_name("auth", tests, NULL, NULL);
}
