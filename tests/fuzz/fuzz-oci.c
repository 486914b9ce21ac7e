/* SPDX-License-Identifier: MIT */
/* What a registry or a layout hands abctl (abctl/ociparse.c): the first
 * byte picks the parser (reference, manifest, config, index, media type),
 * the rest is its input. Every result must be NUL-terminated and, when
 * accepted, hold only what the parser promises. */
#include <assert.h>

#include "../../abctl/oci.h"
#include "fuzz.h"

FUZZ_QUIET

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        char *s = fuzz_string(data + 1, size - 1), why[300];
        size_t n = size - 1;
        switch (data[0] % 5) {
        case 0: {
                struct oci_ref r;
                if (oci_ref_parse(s, &r, why, sizeof(why)) >= 0) {
                        assert(r.digest[0] == 0 || oci_digest_valid(r.digest));
                        assert(r.kind == OCI_REF_LAYOUT ? r.dir[0] != 0 : r.registry[0] && r.repository[0]);
                        assert(r.kind == OCI_REF_LAYOUT || r.tag[0] || r.digest[0]);
                        assert(strlen(r.tag) <= 128);
                } else
                        assert(memchr(why, 0, sizeof(why)) && why[0]);
                break;
        }
        case 1: {
                struct oci_manifest m;
                if (oci_manifest_parse(s, n, &m, why, sizeof(why)) >= 0)
                        assert(oci_digest_valid(m.config.digest) && oci_digest_valid(m.uki.digest) &&
                               oci_digest_valid(m.system.digest));
                break;
        }
        case 2: {
                struct oci_config c;
                if (oci_config_parse(s, n, &c, why, sizeof(why)) >= 0)
                        assert(c.data_size > 0 && c.data_size % 512 == 0 && c.hash_size > 0 && strlen(c.roothash) >= 32);
                break;
        }
        case 3: {
                struct oci_blob b;
                const char *tag = n > 0 && s[0] == '{' ? NULL : "v2";
                if (oci_index_pick(s, n, tag, NULL, "amd64", &b, why, sizeof(why)) >= 0)
                        assert(oci_digest_valid(b.digest));
                break;
        }
        default:
                (void) oci_doc_kind(n < 100 ? s : NULL, s, n);
        }
        free(s);
        return 0;
}
