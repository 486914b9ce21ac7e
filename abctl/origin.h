/* SPDX-License-Identifier: MIT */
#pragma once

/* Where a slot's image came from (origin.c): `abctl install` writes it next
 * to the slot's UKI on the ESP (EFI/abswitch/boot-a.origin, -b), through a
 * temporary and a rename, when it begins writing the slot (before the new
 * UKI is in place). It is a hint, not state: a reader takes it only when
 * its root hash is the one the slot's UKI pins (until the new UKI's
 * rename, or after an install that did not finish, it names another root
 * hash and is ignored). `abctl status` shows it; `abctl repair` fetches damaged blocks
 * from its registry reference; `abctl update` compares its digest with the
 * one a tag names now.
 *
 *   {"kind":"registry","reference":"registry.example.com/os:2",
 *    "digest":"sha256:...","roothash":"...","version":"2",
 *    "installed":"2026-12-02T04:40:00Z"}
 *
 * kind is "registry", "oci-layout" (oci:DIR[:TAG]) or "files" (PREFIX with
 * a UKI); digest is the manifest's (empty for files). */

#include <stdint.h>

#include "../efi/cmdline.h"
#include "../slots/slots.h"

#define ORIGIN_REFERENCE_MAX 1024

typedef enum OriginKind {
        ORIGIN_FILES,
        ORIGIN_OCI_LAYOUT,
        ORIGIN_REGISTRY,
        _ORIGIN_KIND_MAX,
        _ORIGIN_KIND_INVALID = -1,
} OriginKind;

struct slot_origin {
        OriginKind kind;
        char reference[ORIGIN_REFERENCE_MAX];
        char digest[80];                        /* "sha256:<64 hex>", or "" */
        char roothash[ROOTHASH_HEX_MAX + 1];
        char version[64];                       /* may be empty */
        char installed[32];                     /* UTC, RFC 3339 ("2026-12-02T04:40:00Z") */
};

const char *origin_kind_to_string(OriginKind k);
OriginKind origin_kind_from_string(const char *s);

/* Pure: the JSON of o into *ret (free() it); and back, checking every field
 * (a missing or malformed one: -EBADMSG, why says which). */
int origin_format(const struct slot_origin *o, char **ret);
int origin_parse(const char *json, size_t len, struct slot_origin *ret, char *why, size_t whysize);

/* The origin's file name on the ESP at dir. */
int origin_path(const char *esp_dir, Slot s, char **ret);

/* Writes o for slot s: temporary, fsync, rename, fsync of the directory.
 * Logs why it failed. */
int origin_write(const char *esp_dir, Slot s, const struct slot_origin *o);

/* Reads slot s's origin. -ENOENT: none; -ESTALE: one for another root hash
 * than roothash (the slot's UKI's pin; NULL: not checked); -EBADMSG: not
 * an origin (logged at debug level only: callers say what it means to them). */
int origin_read(const char *esp_dir, Slot s, const char *roothash, struct slot_origin *ret);
