/* SPDX-License-Identifier: MIT */
/* Pure parsing for abctl's OCI sources: image references, manifests,
 * indexes and the abswitch config (oci.h). No I/O.
 *
 * JSON is json-c's job; this file only checks what the parsed documents
 * hold. The reference grammar is parsed by hand because no C library
 * implements it that fits a static binary (containers/image and
 * distribution/reference are Go); it follows distribution/reference:
 * a registry host that has a '.' or ':' or is "localhost", a repository of
 * lowercase components joined by '/', a tag of at most 128 characters of
 * [A-Za-z0-9_.-] not starting with '.' or '-', and an "@sha256:" digest. */

#define _GNU_SOURCE 1  /* memrchr */
#include <ctype.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "oci.h"

#define WHY(...) (snprintf(why, whysize, __VA_ARGS__), -EINVAL)

bool oci_digest_valid(const char *d) {
        if (strncmp(d, "sha256:", 7) != 0 || strlen(d) != OCI_DIGEST_MAX)
                return false;
        for (const char *p = d + 7; *p; p++)
                if (!isdigit((unsigned char) *p) && !(*p >= 'a' && *p <= 'f'))
                        return false;
        return true;
}

const char *oci_native_architecture(void) {
#if defined(__x86_64__)
        return "amd64";
#elif defined(__aarch64__)
        return "arm64";
#elif defined(__riscv) && __riscv_xlen == 64
        return "riscv64";
#elif defined(__i386__)
        return "386";
#else
        return "unknown";
#endif
}

static bool tag_valid(const char *t, size_t n) {
        if (n == 0 || n > 128 || t[0] == '.' || t[0] == '-')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char) t[i]) && t[i] != '_' && t[i] != '.' && t[i] != '-')
                        return false;
        return true;
}

static bool lower_alnum(char ch) {
        return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}

/* One path component: [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)* */
static bool component_valid(const char *c, size_t n) {
        size_t i = 0;
        for (;;) {
                size_t run = 0;
                while (i < n && lower_alnum(c[i]))
                        i++, run++;
                if (run == 0)
                        return false;
                if (i == n)
                        return true;
                if (c[i] == '.')
                        i++;
                else if (c[i] == '_')
                        i += i + 1 < n && c[i + 1] == '_' ? 2 : 1;
                else if (c[i] == '-')
                        while (i < n && c[i] == '-')
                                i++;
                else
                        return false;
        }
}

/* Components joined by '/'. */
static bool repository_valid(const char *r, size_t n) {
        if (n == 0 || n > 255)
                return false;
        for (size_t start = 0;;) {
                const char *slash = memchr(r + start, '/', n - start);
                size_t end = slash ? (size_t) (slash - r) : n;
                if (!component_valid(r + start, end - start))
                        return false;
                if (!slash)
                        return true;
                start = end + 1;
        }
}

static bool host_valid(const char *h, size_t n) {
        if (n == 0 || n > 253)
                return false;
        bool port = false;
        for (size_t i = 0; i < n; i++) {
                char ch = h[i];
                if (ch == ':') {
                        if (port || i == 0 || i + 1 == n)
                                return false;
                        port = true;
                } else if (port ? !isdigit((unsigned char) ch)
                                : !isalnum((unsigned char) ch) && ch != '.' && ch != '-')
                        return false;
        }
        return true;
}

int oci_ref_parse(const char *s, struct oci_ref *ret, char *why, size_t whysize) {
        *ret = (struct oci_ref) {};
        size_t len = strlen(s);
        if (len == 0 || len > 1000)
                return WHY("an image reference must be 1 to 1000 characters");

        /* @digest, for both kinds */
        const char *at = strrchr(s, '@');
        size_t body = len;
        if (at) {
                if (!oci_digest_valid(at + 1))
                        return WHY("'%s' is not a digest: abctl takes sha256:<64 lowercase hex digits>", at + 1);
                memcpy(ret->digest, at + 1, OCI_DIGEST_MAX + 1);
                body = (size_t) (at - s);
        }

        if (strncmp(s, "oci:", 4) == 0) {
                ret->kind = OCI_REF_LAYOUT;
                const char *dir = s + 4;
                size_t n = body - 4;
                /* A tag is what follows the last ':' after the last '/'. */
                const char *slash = memrchr(dir, '/', n);
                const char *colon = memrchr(slash ? slash : dir, ':', n - (size_t) ((slash ? slash : dir) - dir));
                if (colon) {
                        size_t tl = n - (size_t) (colon + 1 - dir);
                        if (!tag_valid(colon + 1, tl))
                                return WHY("'%.*s' is not a valid tag (letters, digits, '_', '.', '-'; at most 128)",
                                           (int) tl, colon + 1);
                        memcpy(ret->tag, colon + 1, tl);
                        n = (size_t) (colon - dir);
                }
                if (n == 0)
                        return WHY("oci: needs a directory: oci:DIR[:TAG]");
                if (n >= sizeof(ret->dir))
                        return WHY("the layout directory name is too long");
                memcpy(ret->dir, dir, n);
                return 0;
        }

        ret->kind = OCI_REF_REGISTRY;
        if (strstr(s, "://"))
                return WHY("give the reference without a scheme (HOST/REPO:TAG); use --plain-http for HTTP");
        const char *slash = memchr(s, '/', body);
        if (!slash)
                return WHY("'%s' names no registry: use HOST[:PORT]/REPOSITORY[:TAG], or oci:DIR for a layout", s);
        size_t hl = (size_t) (slash - s);
        if (!host_valid(s, hl) || (!memchr(s, '.', hl) && !memchr(s, ':', hl) && !(hl == 9 && memcmp(s, "localhost", 9) == 0)))
                return WHY("'%.*s' is not a registry host (it needs a '.' or a ':PORT', or is localhost); "
                           "abctl has no default registry", (int) hl, s);
        memcpy(ret->registry, s, hl);

        const char *repo = slash + 1;
        size_t rl = body - hl - 1;
        const char *colon = memrchr(repo, ':', rl);
        if (colon && !memchr(colon, '/', rl - (size_t) (colon - repo))) {
                size_t tl = rl - (size_t) (colon + 1 - repo);
                if (!tag_valid(colon + 1, tl))
                        return WHY("'%.*s' is not a valid tag (letters, digits, '_', '.', '-'; at most 128)", (int) tl,
                                   colon + 1);
                memcpy(ret->tag, colon + 1, tl);
                rl = (size_t) (colon - repo);
        }
        if (!repository_valid(repo, rl))
                return WHY("'%.*s' is not a repository name (lowercase letters, digits, separators '.', '_', '-', "
                           "components joined by '/')", (int) rl, repo);
        memcpy(ret->repository, repo, rl);
        if (!ret->tag[0] && !ret->digest[0])
                return WHY("'%s' names neither a tag nor a digest: add :TAG or @sha256:DIGEST", s);
        return 0;
}

static json_object *parse(const char *json, size_t len) {
        if (len > OCI_MANIFEST_MAX || len > INT32_MAX)
                return NULL;
        json_tokener *t = json_tokener_new();
        if (!t)
                return NULL;
        json_object *o = json_tokener_parse_ex(t, json, (int) len);
        bool whole = json_tokener_get_error(t) == json_tokener_success && t->char_offset == (int) len;
        json_tokener_free(t);
        if (o && (!whole || !json_object_is_type(o, json_type_object))) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

static const char *get_string(json_object *o, const char *key) {
        json_object *v;
        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

static bool get_u64(json_object *o, const char *key, uint64_t *ret) {
        json_object *v;
        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
                return false;
        int64_t i = json_object_get_int64(v);
        if (i < 0 || i == INT64_MAX)  /* json-c saturates */
                return false;
        *ret = (uint64_t) i;
        return true;
}

/* A descriptor: mediaType, digest, size. */
static int descriptor(json_object *d, const char *what, struct oci_blob *ret, char *why, size_t whysize) {
        const char *mt = get_string(d, "mediaType"), *dg = get_string(d, "digest");
        *ret = (struct oci_blob) {};
        if (!json_object_is_type(d, json_type_object))
                return WHY("the %s descriptor is not an object", what);
        if (!dg || !oci_digest_valid(dg))
                return WHY("the %s descriptor has no valid sha256 digest", what);
        if (!get_u64(d, "size", &ret->size))
                return WHY("the %s descriptor has no valid size", what);
        memcpy(ret->digest, dg, OCI_DIGEST_MAX + 1);
        (void) snprintf(ret->media_type, sizeof(ret->media_type), "%s", mt ? mt : "");
        return 0;
}

OciDocKind oci_doc_kind(const char *media_type, const char *json, size_t len) {
        char mt[128] = "";
        (void) snprintf(mt, sizeof(mt), "%s", media_type ? media_type : "");
        mt[strcspn(mt, "; ")] = 0;  /* Content-Type parameters */
        if (!mt[0]) {
                json_object *o = parse(json, len);
                const char *m = o ? get_string(o, "mediaType") : NULL;
                (void) snprintf(mt, sizeof(mt), "%s", m ? m : "");
                if (o && !m) {
                        /* An index without mediaType still has "manifests". */
                        json_object *v;
                        if (json_object_object_get_ex(o, "manifests", &v))
                                (void) snprintf(mt, sizeof(mt), "%s", OCI_MT_INDEX);
                        else if (json_object_object_get_ex(o, "layers", &v))
                                (void) snprintf(mt, sizeof(mt), "%s", OCI_MT_MANIFEST);
                }
                json_object_put(o);
        }
        if (strcmp(mt, OCI_MT_MANIFEST) == 0 || strcmp(mt, OCI_MT_DOCKER_MANIFEST) == 0)
                return OCI_DOC_MANIFEST;
        if (strcmp(mt, OCI_MT_INDEX) == 0 || strcmp(mt, OCI_MT_DOCKER_LIST) == 0)
                return OCI_DOC_INDEX;
        return OCI_DOC_OTHER;
}

int oci_manifest_parse(const char *json, size_t len, struct oci_manifest *ret, char *why, size_t whysize) {
        json_object *o = parse(json, len), *v, *layers;
        int r = 0;

        *ret = (struct oci_manifest) {};
        if (!o)
                return WHY("the manifest is not a JSON object");
        if (!json_object_object_get_ex(o, "schemaVersion", &v) || json_object_get_int(v) != 2) {
                r = WHY("the manifest is not schemaVersion 2");
                goto out;
        }
        if (!json_object_object_get_ex(o, "config", &v) || (r = descriptor(v, "config", &ret->config, why, whysize)) < 0) {
                if (r == 0)
                        r = WHY("the manifest has no config");
                goto out;
        }
        if (strcmp(ret->config.media_type, ABSWITCH_MT_CONFIG) != 0) {
                r = WHY("this is not an abswitch OS image: its config is '%s', not " ABSWITCH_MT_CONFIG
                        " (a container image?)", ret->config.media_type);
                goto out;
        }
        if (!json_object_object_get_ex(o, "layers", &layers) || !json_object_is_type(layers, json_type_array)) {
                r = WHY("the manifest has no layers");
                goto out;
        }
        for (size_t i = 0; i < json_object_array_length(layers); i++) {
                struct oci_blob b;
                r = descriptor(json_object_array_get_idx(layers, i), "layer", &b, why, whysize);
                if (r < 0)
                        goto out;
                struct oci_blob *slot = strcmp(b.media_type, ABSWITCH_MT_UKI) == 0 ? &ret->uki
                                      : strcmp(b.media_type, ABSWITCH_MT_SYSTEM) == 0 ? &ret->system : NULL;
                if (!slot)
                        continue;  /* a layer for somebody else: ignored */
                if (slot->digest[0]) {
                        r = WHY("the manifest has two %s layers", b.media_type);
                        goto out;
                }
                *slot = b;
        }
        if (!ret->uki.digest[0] || !ret->system.digest[0])
                r = WHY("the manifest lacks its %s layer", !ret->uki.digest[0] ? ABSWITCH_MT_UKI : ABSWITCH_MT_SYSTEM);
out:
        json_object_put(o);
        return r;
}

int oci_config_parse(const char *json, size_t len, struct oci_config *ret, char *why, size_t whysize) {
        static const struct {
                const char *key;
                size_t off, size;
        } fields[] = {
                { "os", offsetof(struct oci_config, os), sizeof(((struct oci_config *) 0)->os) },
                { "architecture", offsetof(struct oci_config, architecture), sizeof(((struct oci_config *) 0)->architecture) },
                { "name", offsetof(struct oci_config, name), sizeof(((struct oci_config *) 0)->name) },
                { "version", offsetof(struct oci_config, version), sizeof(((struct oci_config *) 0)->version) },
                { "roothash", offsetof(struct oci_config, roothash), sizeof(((struct oci_config *) 0)->roothash) },
        };
        json_object *o = parse(json, len);
        int r = 0;

        *ret = (struct oci_config) {};
        if (!o)
                return WHY("the image config is not a JSON object");
        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
                const char *v = get_string(o, fields[i].key);
                if (!v || !v[0] || strlen(v) >= fields[i].size) {
                        r = WHY("the image config has no valid \"%s\"", fields[i].key);
                        goto out;
                }
                memcpy((char *) ret + fields[i].off, v, strlen(v) + 1);
        }
        size_t hl = strlen(ret->roothash);
        bool hex = hl >= 32 && hl % 2 == 0;
        for (size_t i = 0; hex && i < hl; i++)
                hex = isdigit((unsigned char) ret->roothash[i]) || (ret->roothash[i] >= 'a' && ret->roothash[i] <= 'f');
        if (!hex) {
                r = WHY("the image config's roothash '%s' is not lowercase hex of at least 16 bytes", ret->roothash);
                goto out;
        }
        if (!get_u64(o, "dataSize", &ret->data_size) || !get_u64(o, "hashSize", &ret->hash_size) || !ret->data_size ||
            !ret->hash_size || ret->data_size % 512 || ret->data_size > UINT64_MAX / 2 || ret->hash_size > UINT64_MAX / 2)
                r = WHY("the image config needs dataSize (a positive multiple of 512) and hashSize (positive)");
out:
        json_object_put(o);
        return r;
}

int oci_index_pick(const char *json, size_t len, const char *tag, const char *digest, const char *arch,
                   struct oci_blob *ret, char *why, size_t whysize) {
        json_object *o = parse(json, len), *list;
        int r = 0, found = 0;
        char seen[256] = "";

        *ret = (struct oci_blob) {};
        if (!o)
                return WHY("the index is not a JSON object");
        if (!json_object_object_get_ex(o, "manifests", &list) || !json_object_is_type(list, json_type_array)) {
                r = WHY("the index has no manifests");
                goto out;
        }
        size_t n = json_object_array_length(list);
        for (size_t i = 0; i < n; i++) {
                json_object *d = json_object_array_get_idx(list, i), *a, *p;
                struct oci_blob b;
                if (descriptor(d, "manifest", &b, why, whysize) < 0)
                        continue;
                const char *name = json_object_object_get_ex(d, "annotations", &a)
                                 ? get_string(a, "org.opencontainers.image.ref.name") : NULL;
                const char *pa = json_object_object_get_ex(d, "platform", &p) ? get_string(p, "architecture") : NULL;
                const char *po = p ? get_string(p, "os") : NULL;
                bool match;
                if (name && strlen(seen) + strlen(name) + 3 < sizeof(seen))
                        (void) snprintf(seen + strlen(seen), sizeof(seen) - strlen(seen), "%s%s", seen[0] ? ", " : "",
                                        name);
                if (tag && tag[0])
                        match = name && strcmp(name, tag) == 0;
                else if (digest && digest[0])
                        match = strcmp(b.digest, digest) == 0;
                else
                        match = (!pa || strcmp(pa, arch) == 0) && (!po || strcmp(po, "linux") == 0);
                if (!match)
                        continue;
                /* Several for one tag: the one for this machine. */
                if (found && pa && strcmp(pa, arch) != 0)
                        continue;
                *ret = b;
                found++;
        }
        if (found > 1 && !(tag && tag[0]) && !(digest && digest[0])) {
                r = WHY("this holds %d images for linux/%s; name one with :TAG (tags: %s)", found, arch,
                        seen[0] ? seen : "none");
                goto out;
        }
        if (!found) {
                if (tag && tag[0])
                        (void) snprintf(why, whysize, "no image is tagged '%s' here (tags: %s)", tag,
                                        seen[0] ? seen : "none");
                else if (digest && digest[0])
                        (void) snprintf(why, whysize, "no manifest %s here", digest);
                else
                        (void) snprintf(why, whysize, "no image for linux/%s here", arch);
                r = -ENOENT;
        }
out:
        json_object_put(o);
        return r;
}
