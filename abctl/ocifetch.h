/* SPDX-License-Identifier: MIT */
#pragma once

/* Fetching an OS image from an OCI layout or a registry (oci.c). */

#include <json-c/json.h>
#include <stdint.h>

#include "auth.h"
#include "oci.h"
#include "ranges.h"

struct oci_options {
        const char *ca;         /* --ca: a PEM bundle to trust instead of the system's */
        bool plain_http;        /* --plain-http: a registry without TLS */
        unsigned timeout_sec;   /* --timeout: give up after this long without progress (oci.c) */
        const char *authfile;   /* --authfile: credentials (auth.h); NULL: $REGISTRY_AUTH_FILE or the default */
};

struct oci_source {
        struct oci_ref ref;
        void *curl;             /* CURL *, registries only */
        bool plain_http;
        uint64_t timeout_ms;    /* --timeout */
        uint64_t started;       /* CLOCK_MONOTONIC, ms */
        uint64_t deadline;      /* the last progress + timeout_ms: every wait ends by then */
        uint64_t unmarked;      /* new bytes since the deadline last moved */
        unsigned retries;
        char *token;            /* "Authorization: Bearer ..." once a registry asked for one */
        uint64_t token_renew;   /* when to get a new one (its expires_in) */
        char challenge[1024];   /* the WWW-Authenticate that asked for it */
        struct registry_auth auth;  /* this registry's credentials from the auth file (secrets) */
        char authfile[512];     /* the auth file read, for messages; "" when there was none */
        bool basic;             /* the registry asked for Basic: its requests carry auth's user and password */
        char curl_error[256];   /* CURL_ERROR_SIZE */
        unsigned range_requests;  /* Range requests made (oci_fetch_ranges), retries included */
        char range_error[200];  /* why the last oci_fetch_ranges got -EOPNOTSUPP */
};

/* Gets a chunk of a blob at offset; a negative errno stops the transfer
 * (the sink logs why). A transfer that starts over calls it from 0 again. */
typedef int (*oci_sink_fn)(void *userdata, uint64_t offset, const uint8_t *buf, size_t n);

int oci_source_open(struct oci_source *s, const struct oci_ref *ref, const struct oci_options *o);
void oci_source_close(struct oci_source *s);
/* The image manifest the reference names (through an index if it names
 * one, picking this machine's architecture), parsed; and its digest. */
int oci_resolve(struct oci_source *s, struct oci_manifest *ret, char ret_digest[static OCI_DIGEST_MAX + 1]);
/* Streams blob b through sink; fails unless exactly b->size bytes with
 * digest b->digest arrived. */
int oci_fetch_blob(struct oci_source *s, const struct oci_blob *b, oci_sink_fn sink, void *userdata);
/* A small blob (the config) into memory, NUL-terminated; free() it. */
int oci_fetch_small(struct oci_source *s, const struct oci_blob *b, size_t max, char **ret);
/* The manifest with that digest, its bytes as the registry (or layout)
 * holds them, checked against the digest; free() *ret. */
int oci_fetch_manifest(struct oci_source *s, const char *digest, char **ret, size_t *ret_len);
/* Ranges r[0..n) of blob b (sorted, not overlapping), with HTTP Range requests (a
 * layout: pread of its blob file). Neighbours are coalesced so that at most
 * max_requests requests are made; sink gets exactly the requested bytes at their blob
 * offsets (gap filler is dropped). -EOPNOTSUPP when the registry ignores Range (200 with
 * the whole blob, or a Content-Range that is not the one asked; s->range_error says
 * which, nothing is logged). *ret_bytes: bytes received. The caller verifies content
 * (against the hash tree). Timeouts, retries, resumption, auth and tokens as
 * oci_fetch_blob. */
int oci_fetch_ranges(struct oci_source *s, const struct oci_blob *b, const struct oci_range *r, size_t n,
                     unsigned max_requests, oci_sink_fn sink, void *userdata, uint64_t *ret_bytes);
