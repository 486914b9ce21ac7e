/* SPDX-License-Identifier: MIT */
/* abctl/ociparse.c: references, manifests, indexes, the abswitch config. */
#include <errno.h>

#include "unit.h"
#include "../../abctl/oci.h"

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define D3 "sha256:3333333333333333333333333333333333333333333333333333333333333333"

static char why[300];

static struct oci_ref ok_ref(const char *s) {
        struct oci_ref r;
        int rc = oci_ref_parse(s, &r, why, sizeof(why));
        if (rc < 0)
                fail_msg("%s: %s", s, why);
        return r;
}

static void bad_ref(const char *s, const char *says) {
        struct oci_ref r;
        why[0] = 0;
        if (oci_ref_parse(s, &r, why, sizeof(why)) >= 0)
                fail_msg("'%s' was accepted", s);
        if (says && !strstr(why, says))
                fail_msg("'%s': '%s' does not say '%s'", s, why, says);
}

static void test_registry_refs(void **state) {
        struct oci_ref r = ok_ref("registry.example.com/fleet/os:1.2.3");
        assert_int_equal(r.kind, OCI_REF_REGISTRY);
        assert_string_equal(r.registry, "registry.example.com");
        assert_string_equal(r.repository, "fleet/os");
        assert_string_equal(r.tag, "1.2.3");
        assert_string_equal(r.digest, "");

        r = ok_ref("127.0.0.1:5000/os@" D1);
        assert_string_equal(r.registry, "127.0.0.1:5000");
        assert_string_equal(r.repository, "os");
        assert_string_equal(r.tag, "");
        assert_string_equal(r.digest, D1);

        r = ok_ref("localhost/a/b/c:v2@" D2);
        assert_string_equal(r.registry, "localhost");
        assert_string_equal(r.repository, "a/b/c");
        assert_string_equal(r.tag, "v2");
        assert_string_equal(r.digest, D2);

        r = ok_ref("ghcr.io/my-org/my__os.x:latest");
        assert_string_equal(r.repository, "my-org/my__os.x");
}

static void test_registry_refs_refused(void **state) {
        bad_ref("fleet/os:1", "no default registry");     /* no Docker Hub default */
        bad_ref("os:1", "names no registry");
        bad_ref("https://r.example.com/os:1", "without a scheme");
        bad_ref("r.example.com/os", "neither a tag nor a digest");
        bad_ref("r.example.com/OS:1", "repository");
        bad_ref("r.example.com/os/:1", "repository");
        bad_ref("r.example.com//os:1", "repository");
        bad_ref("r.example.com/-os:1", "repository");
        bad_ref("r.example.com/os:-x", "tag");
        bad_ref("r.example.com/os:", "tag");
        bad_ref("r.example.com/os@sha256:abc", "digest");
        bad_ref("r.example.com/os@sha512:" "1111111111111111111111111111111111111111111111111111111111111111", "digest");
        bad_ref("r.example.com/os@" "sha256:ABCD111111111111111111111111111111111111111111111111111111111111", "digest");
        bad_ref("r.exa mple.com/os:1", "registry host");
        bad_ref("r.example.com:/os:1", "registry host");
        bad_ref("r.example.com:50x/os:1", "registry host");
        bad_ref("", NULL);
        char tag[200] = "r.example.com/os:";
        memset(tag + strlen(tag), 'a', 129);
        bad_ref(tag, "tag");
}

static void test_layout_refs(void **state) {
        struct oci_ref r = ok_ref("oci:/srv/images/os");
        assert_int_equal(r.kind, OCI_REF_LAYOUT);
        assert_string_equal(r.dir, "/srv/images/os");
        assert_string_equal(r.tag, "");

        r = ok_ref("oci:/srv/images/os:v2");
        assert_string_equal(r.dir, "/srv/images/os");
        assert_string_equal(r.tag, "v2");

        r = ok_ref("oci:/srv/a:b/os@" D3);          /* a ':' in a directory above */
        assert_string_equal(r.dir, "/srv/a:b/os");
        assert_string_equal(r.tag, "");
        assert_string_equal(r.digest, D3);

        r = ok_ref("oci:rel");
        assert_string_equal(r.dir, "rel");
        bad_ref("oci:", "directory");
        bad_ref("oci::v2", "directory");
        bad_ref("oci:/x:", "tag");
}

static void test_digest_valid(void **state) {
        assert_true(oci_digest_valid(D1));
        assert_false(oci_digest_valid("sha256:111"));
        assert_false(oci_digest_valid(D1 "1"));
        assert_false(oci_digest_valid("sha257:1111111111111111111111111111111111111111111111111111111111111111"));
        assert_false(oci_digest_valid("sha256:g111111111111111111111111111111111111111111111111111111111111111"));
}

#define CONFIG_D "{\"mediaType\":\"application/vnd.abswitch.os.config.v1+json\",\"digest\":\"" D1 "\",\"size\":200}"
#define UKI_L "{\"mediaType\":\"application/vnd.abswitch.uki.v1\",\"digest\":\"" D2 "\",\"size\":9000000}"
#define SYS_L "{\"mediaType\":\"application/vnd.abswitch.system.v1\",\"digest\":\"" D3 "\",\"size\":5000000000}"

static int manifest(const char *json, struct oci_manifest *m) {
        why[0] = 0;
        return oci_manifest_parse(json, strlen(json), m, why, sizeof(why));
}

static void test_manifest(void **state) {
        struct oci_manifest m;
        assert_int_equal(manifest("{\"schemaVersion\":2,\"config\":" CONFIG_D ",\"layers\":[" SYS_L ","
                                  "{\"mediaType\":\"text/plain\",\"digest\":\"" D1 "\",\"size\":1}," UKI_L "]}", &m), 0);
        assert_string_equal(m.config.digest, D1);
        assert_string_equal(m.uki.digest, D2);
        assert_int_equal(m.uki.size, 9000000);
        assert_string_equal(m.system.digest, D3);
        assert_true(m.system.size == 5000000000ull);   /* beyond 32 bits */
}

static void test_manifest_refused(void **state) {
        struct oci_manifest m;
        assert_true(manifest("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
                             "\"digest\":\"" D1 "\",\"size\":2},\"layers\":[" UKI_L "," SYS_L "]}", &m) < 0);
        assert_non_null(strstr(why, "not an abswitch OS image"));
        assert_true(manifest("{\"schemaVersion\":2,\"config\":" CONFIG_D ",\"layers\":[" UKI_L "]}", &m) < 0);
        assert_non_null(strstr(why, "system"));
        assert_true(manifest("{\"schemaVersion\":2,\"config\":" CONFIG_D ",\"layers\":[" UKI_L "," UKI_L "," SYS_L "]}", &m) < 0);
        assert_non_null(strstr(why, "two"));
        assert_true(manifest("{\"schemaVersion\":1,\"config\":" CONFIG_D ",\"layers\":[" UKI_L "," SYS_L "]}", &m) < 0);
        assert_true(manifest("{\"schemaVersion\":2,\"config\":" CONFIG_D ",\"layers\":[" UKI_L ","
                             "{\"mediaType\":\"application/vnd.abswitch.system.v1\",\"digest\":\"" D3 "\",\"size\":-1}]}", &m) < 0);
        assert_true(manifest("{\"schemaVersion\":2,\"config\":" CONFIG_D ",\"layers\":[" UKI_L ","
                             "{\"mediaType\":\"application/vnd.abswitch.system.v1\",\"digest\":\"sha256:12\",\"size\":1}]}", &m) < 0);
        assert_true(manifest("{\"schemaVersion\":2,\"config\":" CONFIG_D ",\"layers\":{}}", &m) < 0);
        assert_true(manifest("[1,2]", &m) < 0);
        assert_true(manifest("{\"schemaVersion\":2} trailing", &m) < 0);
        assert_true(manifest("", &m) < 0);
}

#define HASH "e81733248ce10533e81733248ce10533e81733248ce10533e81733248ce10533"

static int config(const char *json, struct oci_config *c) {
        why[0] = 0;
        return oci_config_parse(json, strlen(json), c, why, sizeof(why));
}

static void test_config(void **state) {
        struct oci_config c;
        assert_int_equal(config("{\"os\":\"linux\",\"architecture\":\"amd64\",\"name\":\"Debian \\\"12\\\"\",\"version\":\"2\","
                                "\"roothash\":\"" HASH "\",\"dataSize\":4096,\"hashSize\":12288}", &c), 0);
        assert_string_equal(c.architecture, "amd64");
        assert_string_equal(c.name, "Debian \"12\"");
        assert_string_equal(c.roothash, HASH);
        assert_int_equal(c.data_size, 4096);
        assert_int_equal(c.hash_size, 12288);

        assert_true(config("{\"os\":\"linux\",\"architecture\":\"amd64\",\"name\":\"x\",\"version\":\"2\","
                           "\"roothash\":\"" HASH "\",\"dataSize\":4095,\"hashSize\":1}", &c) < 0);
        assert_true(config("{\"os\":\"linux\",\"architecture\":\"amd64\",\"name\":\"x\",\"version\":\"2\","
                           "\"roothash\":\"E8" HASH "\",\"dataSize\":4096,\"hashSize\":1}", &c) < 0);
        assert_non_null(strstr(why, "roothash"));
        assert_true(config("{\"os\":\"linux\",\"architecture\":\"amd64\",\"name\":\"x\",\"version\":\"2\","
                           "\"roothash\":\"" HASH "\",\"dataSize\":\"4096\",\"hashSize\":1}", &c) < 0);
        assert_true(config("{\"os\":\"linux\",\"name\":\"x\",\"version\":\"2\","
                           "\"roothash\":\"" HASH "\",\"dataSize\":4096,\"hashSize\":1}", &c) < 0);
        assert_non_null(strstr(why, "architecture"));
        assert_true(config("{\"os\":\"linux\",\"architecture\":\"amd64\",\"name\":\"x\",\"version\":\"2\","
                           "\"roothash\":\"" HASH "\",\"dataSize\":4096,\"hashSize\":0}", &c) < 0);
}

#define IDX_ENTRY(d, tag, arch) \
        "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" d "\",\"size\":800," \
        "\"platform\":{\"os\":\"linux\",\"architecture\":\"" arch "\"}," \
        "\"annotations\":{\"org.opencontainers.image.ref.name\":\"" tag "\"}}"

static void test_index_pick(void **state) {
        const char *idx = "{\"schemaVersion\":2,\"manifests\":[" IDX_ENTRY(D1, "v1", "amd64") ","
                          IDX_ENTRY(D2, "v2", "arm64") "," IDX_ENTRY(D3, "v2", "amd64") "]}";
        struct oci_blob b;
        assert_int_equal(oci_index_pick(idx, strlen(idx), "v2", NULL, "amd64", &b, why, sizeof(why)), 0);
        assert_string_equal(b.digest, D3);
        assert_int_equal(oci_index_pick(idx, strlen(idx), "v2", NULL, "arm64", &b, why, sizeof(why)), 0);
        assert_string_equal(b.digest, D2);
        assert_int_equal(oci_index_pick(idx, strlen(idx), "v1", NULL, "amd64", &b, why, sizeof(why)), 0);
        assert_string_equal(b.digest, D1);
        assert_int_equal(oci_index_pick(idx, strlen(idx), NULL, D2, "amd64", &b, why, sizeof(why)), 0);
        assert_string_equal(b.digest, D2);
        assert_int_equal(oci_index_pick(idx, strlen(idx), "v3", NULL, "amd64", &b, why, sizeof(why)), -ENOENT);
        assert_non_null(strstr(why, "v1, v2"));
        /* Two images for this machine and no tag: ambiguous. */
        assert_true(oci_index_pick(idx, strlen(idx), NULL, NULL, "amd64", &b, why, sizeof(why)) < 0);
        assert_non_null(strstr(why, ":TAG"));
        /* A registry's multi-arch index: the entry for this machine. */
        const char *multi = "{\"manifests\":[" IDX_ENTRY(D2, "x", "arm64") "," IDX_ENTRY(D3, "x", "amd64") "]}";
        assert_int_equal(oci_index_pick(multi, strlen(multi), NULL, NULL, "amd64", &b, why, sizeof(why)), 0);
        assert_string_equal(b.digest, D3);
        assert_true(oci_index_pick(multi, strlen(multi), NULL, NULL, "riscv64", &b, why, sizeof(why)) < 0);
        assert_non_null(strstr(why, "linux/riscv64"));
}

static void test_doc_kind(void **state) {
        assert_int_equal(oci_doc_kind("application/vnd.oci.image.index.v1+json; charset=utf-8", "", 0), OCI_DOC_INDEX);
        assert_int_equal(oci_doc_kind(OCI_MT_DOCKER_MANIFEST, "", 0), OCI_DOC_MANIFEST);
        assert_int_equal(oci_doc_kind("", "{\"manifests\":[]}", 16), OCI_DOC_INDEX);
        assert_int_equal(oci_doc_kind(NULL, "{\"mediaType\":\"" OCI_MT_MANIFEST "\"}", strlen("{\"mediaType\":\"" OCI_MT_MANIFEST "\"}")),
                         OCI_DOC_MANIFEST);
        assert_int_equal(oci_doc_kind("text/html", "", 0), OCI_DOC_OTHER);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_registry_refs),  cmocka_unit_test(test_registry_refs_refused),
                cmocka_unit_test(test_layout_refs),    cmocka_unit_test(test_digest_valid),
                cmocka_unit_test(test_manifest),       cmocka_unit_test(test_manifest_refused),
                cmocka_unit_test(test_config),         cmocka_unit_test(test_index_pick),
                cmocka_unit_test(test_doc_kind),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
