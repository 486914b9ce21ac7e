/* SPDX-License-Identifier: MIT */
#pragma once

/* An abswitch OS image as an OCI artifact, and where abctl fetches it from.
 *
 * The artifact (README.md, "Publishing an OS image"):
 *
 *   manifest   application/vnd.oci.image.manifest.v1+json,
 *              artifactType application/vnd.abswitch.os.v1
 *   config     application/vnd.abswitch.os.config.v1+json:
 *                { "os": "linux", "architecture": "amd64",
 *                  "name": "<PRETTY_NAME>", "version": "<VERSION_ID>",
 *                  "roothash": "<hex>", "dataSize": <bytes>, "hashSize": <bytes> }
 *   layers     application/vnd.abswitch.uki.v1       the slot's UKI (PE, pins ab.roothash=)
 *              application/vnd.abswitch.system.v1    the file system image (dataSize
 *                                                    bytes), then its dm-verity hash
 *                                                    tree with superblock (hashSize)
 *
 * Layers are found by media type, not position. A tag may also name an
 * image index (OCI or Docker manifest list): the entry for this machine's
 * os/architecture is taken.
 *
 * References abctl install takes:
 *
 *   oci:DIR            the only image of an OCI image layout directory
 *   oci:DIR:TAG        the image tagged TAG (org.opencontainers.image.ref.name)
 *   oci:DIR@DIGEST     the manifest with that digest
 *   HOST[:PORT]/REPO[:TAG][@DIGEST]   a registry (HTTPS; --plain-http for HTTP)
 *
 * Only sha256 digests are supported. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OCI_MT_MANIFEST       "application/vnd.oci.image.manifest.v1+json"
#define OCI_MT_INDEX          "application/vnd.oci.image.index.v1+json"
#define OCI_MT_DOCKER_LIST    "application/vnd.docker.distribution.manifest.list.v2+json"
#define OCI_MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define ABSWITCH_MT_ARTIFACT  "application/vnd.abswitch.os.v1"
#define ABSWITCH_MT_CONFIG    "application/vnd.abswitch.os.config.v1+json"
#define ABSWITCH_MT_UKI       "application/vnd.abswitch.uki.v1"
#define ABSWITCH_MT_SYSTEM    "application/vnd.abswitch.system.v1"

#define OCI_DIGEST_MAX 71     /* "sha256:" + 64 hex */
#define OCI_MANIFEST_MAX (4u << 20)
#define OCI_CONFIG_MAX   (1u << 20)

typedef enum OciRefKind {
        OCI_REF_LAYOUT,
        OCI_REF_REGISTRY,
} OciRefKind;

struct oci_ref {
        OciRefKind kind;
        char dir[512];                 /* layout: the directory */
        char registry[256];            /* registry: host[:port] */
        char repository[256];          /* registry: a/b/c */
        char tag[129];                 /* "" when none */
        char digest[OCI_DIGEST_MAX + 1];  /* "" when none */
};

struct oci_blob {
        char digest[OCI_DIGEST_MAX + 1];
        uint64_t size;
        char media_type[128];
};

struct oci_manifest {
        struct oci_blob config, uki, system;
};

struct oci_config {
        char os[32], architecture[32], name[128], version[64];
        char roothash[129];
        uint64_t data_size, hash_size;
};

/* Parses a reference (above). On error, why says what is wrong. */
int oci_ref_parse(const char *s, struct oci_ref *ret, char *why, size_t whysize);
/* "sha256:" and 64 lowercase hex digits. */
bool oci_digest_valid(const char *d);
/* The OCI architecture name of the machine abctl was built for: "amd64", "arm64", ... */
const char *oci_native_architecture(void);

/* What a fetched manifest is, from its media type (the registry's
 * Content-Type, or its own mediaType field when that is empty). */
typedef enum OciDocKind {
        OCI_DOC_MANIFEST,
        OCI_DOC_INDEX,
        OCI_DOC_OTHER,
} OciDocKind;
OciDocKind oci_doc_kind(const char *media_type, const char *json, size_t len);

/* An image manifest of the artifact above: config and both layers, digests valid. */
int oci_manifest_parse(const char *json, size_t len, struct oci_manifest *ret, char *why, size_t whysize);
/* The config: every field present and sane, dataSize and hashSize positive. */
int oci_config_parse(const char *json, size_t len, struct oci_config *ret, char *why, size_t whysize);
/* Picks a manifest out of an index: with tag, the one annotated with
 * org.opencontainers.image.ref.name=tag (an OCI layout's index.json);
 * with digest, that one; otherwise the one for os/arch (entries without a
 * platform count as a match), or the only one. */
int oci_index_pick(const char *json, size_t len, const char *tag, const char *digest, const char *arch,
                   struct oci_blob *ret, char *why, size_t whysize);
