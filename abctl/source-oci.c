/* SPDX-License-Identifier: MIT */
/* An image from an OCI layout or registry (oci.c fetches and checks every
 * digest): its config says the sizes and the root hash, its layers are
 * the UKI and the system image. See source.h. */

#include <stdio.h>

#include "../common/log.h"
#include "ocifetch.h"
#include "source.h"

struct oci {
        struct oci_source src;
        struct oci_manifest m;
};

static int oci_fetch_uki(struct image_source *s, image_sink_fn sink, void *userdata) {
        struct oci *o = s->impl;
        return oci_fetch_blob(&o->src, &o->m.uki, sink, userdata);
}

static int oci_fetch_system(struct image_source *s, image_sink_fn sink, void *userdata) {
        struct oci *o = s->impl;
        int r = oci_fetch_blob(&o->src, &o->m.system, sink, userdata);
        s->retries = o->src.retries;
        return r;
}

static int oci_fetch_system_ranges(struct image_source *s, const struct oci_range *r, size_t n,
                                   unsigned max_requests, image_sink_fn sink, void *userdata, uint64_t *ret_bytes) {
        struct oci *o = s->impl;
        int e = oci_fetch_ranges(&o->src, &o->m.system, r, n, max_requests, sink, userdata, ret_bytes);
        s->retries = o->src.retries;
        s->requests = o->src.range_requests;
        if (e == -EOPNOTSUPP)
                (void) snprintf(s->why_unsupported, sizeof(s->why_unsupported), "%s", o->src.range_error);
        return e;
}

static void oci_free(struct oci *o) {
        if (!o)
                return;
        oci_source_close(&o->src);  /* safe on a source that never opened */
        free(o);
}

static void oci_freep(struct oci **o) {
        oci_free(*o);
}

static void oci_close(struct image_source *s) {
        oci_free(s->impl);
}

static const struct image_source_ops oci_ops = {
        .fetch_uki = oci_fetch_uki,
        .fetch_system = oci_fetch_system,
        .fetch_system_ranges = oci_fetch_system_ranges,
        .close = oci_close,
};

int image_source_open_oci(struct image_source *ret, const char *reference, const struct oci_options *opts) {
        struct image_source s = { .ops = &oci_ops, .label = reference };
        _cleanup_free_ char *cfg_json = NULL;
        struct oci_ref ref;
        struct oci_config cfg;
        char why[300];
        int r;

        _cleanup_(oci_freep) struct oci *o = calloc(1, sizeof(*o));
        if (!o)
                return log_error_errno(-ENOMEM, "Out of memory");
        r = oci_ref_parse(reference, &ref, why, sizeof(why));
        if (r < 0)
                return log_error_errno(r, "%s", why);
        s.kind = ref.kind == OCI_REF_REGISTRY ? ORIGIN_REGISTRY : ORIGIN_OCI_LAYOUT;
        r = oci_source_open(&o->src, &ref, opts);
        if (r < 0)
                return r;
        r = oci_resolve(&o->src, &o->m, s.digest);
        if (r < 0)
                return r;
        r = oci_fetch_small(&o->src, &o->m.config, OCI_CONFIG_MAX, &cfg_json);
        if (r < 0)
                return r;
        r = oci_config_parse(cfg_json, (size_t) o->m.config.size, &cfg, why, sizeof(why));
        if (r < 0)
                return log_error_errno(r, "Image %s: %s", s.digest, why);
        if (!streq(cfg.os, "linux") || !streq(cfg.architecture, oci_native_architecture()))
                return log_error_errno(-ENOEXEC, "Image %s is for %s/%s; this machine is linux/%s", s.digest, cfg.os,
                                       cfg.architecture, oci_native_architecture());
        if (o->m.system.size != cfg.data_size + cfg.hash_size)
                return log_error_errno(-EBADMSG, "Image %s: its system layer has %llu bytes, its config says %llu + %llu",
                                       s.digest, (unsigned long long) o->m.system.size,
                                       (unsigned long long) cfg.data_size, (unsigned long long) cfg.hash_size);
        log_info("Image %s: %s %s, root hash %.16s..., %.1f MiB", s.digest, cfg.name, cfg.version, cfg.roothash,
                 (double) (o->m.uki.size + o->m.system.size) / 1048576);
        (void) snprintf(s.name, sizeof(s.name), "%s", cfg.name);
        (void) snprintf(s.version, sizeof(s.version), "%s", cfg.version);
        (void) snprintf(s.roothash, sizeof(s.roothash), "%s", cfg.roothash);
        s.uki_size = o->m.uki.size;
        s.data_size = cfg.data_size;
        s.hash_size = cfg.hash_size;
        s.impl = TAKE_PTR(o);
        *ret = s;
        return 0;
}
