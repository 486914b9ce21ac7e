/* SPDX-License-Identifier: MIT */
#pragma once

/* Where an image to install comes from: files (PREFIX.img, PREFIX.verity
 * and a UKI, source-files.c) or an OCI layout or registry (source-oci.c).
 * A source says what it holds when it is opened (sizes, the root hash)
 * and streams the UKI and the system image on request; the install
 * pipeline (install.c) does the rest the same way for every source. */

#include <stdint.h>

#include "../efi/cmdline.h"
#include "abctl.h"
#include "origin.h"
#include "ranges.h"

/* Gets a chunk of a stream at offset; a negative errno stops it (the sink
 * says why). A stream that starts over calls it from 0 again. */
typedef int (*image_sink_fn)(void *userdata, uint64_t offset, const uint8_t *buf, size_t n);

struct image_source;

struct image_source_ops {
        /* Checks of the source's own that need nothing written (files:
         * the image verifies against the root hash). NULL: none. */
        int (*check)(struct image_source *s);
        /* The UKI: exactly uki_size bytes. */
        int (*fetch_uki)(struct image_source *s, image_sink_fn sink, void *userdata);
        /* The system image: data_size bytes of file system, then
         * hash_size bytes of dm-verity hash tree, as one stream. */
        int (*fetch_system)(struct image_source *s, image_sink_fn sink, void *userdata);
        /* Ranges r[0..n) of that stream (sorted, not overlapping), in at
         * most max_requests requests; sink gets exactly their bytes at
         * their stream offsets. -EOPNOTSUPP, with why_unsupported set and
         * nothing logged, when the source cannot (a registry that ignores
         * Range). *ret_bytes: bytes received (gap filler included). The
         * caller checks the content (the hash tree). NULL: no ranges. */
        int (*fetch_system_ranges)(struct image_source *s, const struct oci_range *r, size_t n,
                                   unsigned max_requests, image_sink_fn sink, void *userdata, uint64_t *ret_bytes);
        void (*close)(struct image_source *s);
};

struct image_source {
        const struct image_source_ops *ops;
        const char *label;                      /* what to call it: PREFIX, REFERENCE */
        OriginKind kind;                        /* what the origin record calls it (origin.h) */
        char name[128], version[64];            /* from its metadata; may be empty */
        char digest[80];                        /* OCI: the manifest's; else empty */
        char roothash[ROOTHASH_HEX_MAX + 1];    /* what the source says its UKI pins */
        uint64_t uki_size, data_size, hash_size;
        unsigned retries;                       /* transfers that were started over */
        unsigned requests;                      /* range requests made (fetch_system_ranges) */
        char why_unsupported[200];              /* fetch_system_ranges' -EOPNOTSUPP: why */
        void *impl;
};

/* Each says why it fails (the pipeline adds "Nothing was changed"). */
int image_source_open_files(struct image_source *ret, const char *prefix, const char *uki);
struct oci_options;
int image_source_open_oci(struct image_source *ret, const char *reference, const struct oci_options *o);

void image_source_close(struct image_source *s);

