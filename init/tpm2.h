/* SPDX-License-Identifier: MIT */
#pragma once

/* The few TPM 2.0 commands the init sends, marshalled and parsed by hand
 * (init/tpm2.c, pure: buffers in, buffers out), and the text the init
 * measures. The I/O is init/measure.c. */

#include <stddef.h>
#include <stdint.h>

#include "../slots/slots.h"

/* The PCR the init extends: 15, "system identity" in the UAPI Linux TPM PCR
 * Registry (why: init/tpm2.c's header and README "Measured boot"). */
#define TPM2_PCR_ABSWITCH 15u

/* TPM 2.0 Part 2: TPM_ALG_ID of the PCR banks a TPM may have. */
enum {
        TPM2_ALG_SHA1 = 0x0004,
        TPM2_ALG_SHA256 = 0x000B,
        TPM2_ALG_SHA384 = 0x000C,
        TPM2_ALG_SHA512 = 0x000D,
        TPM2_ALG_SM3_256 = 0x0012,
};

/* TPM2B_EVENT's buffer (Part 2, 10.4.7: 1024 bytes). */
#define TPM2_EVENT_MAX 1024u
#define TPM2_DIGEST_MAX 64u
/* HASH_COUNT of any TPM we know of is at most 5; room for more. */
#define TPM2_BANKS_MAX 16u
/* A command or response of ours; the TPM's own limit is 4096 too. */
#define TPM2_BUFFER_MAX 4096u

struct tpm2_bank {
        uint16_t alg;
        uint32_t pcrs;          /* allocated PCRs 0-31, bit n = PCR n */
};
struct tpm2_banks {
        unsigned n;
        struct tpm2_bank bank[TPM2_BANKS_MAX];
};

struct tpm2_digest {
        uint16_t alg;
        uint8_t size;
        uint8_t bytes[TPM2_DIGEST_MAX];
};
struct tpm2_digests {
        unsigned n;
        struct tpm2_digest d[TPM2_BANKS_MAX];
};

/* "sha256", ...; NULL for an algorithm we do not know. */
const char *tpm2_alg_to_string(uint16_t alg);
/* The digest size of a hash algorithm; 0 if unknown. */
size_t tpm2_alg_digest_size(uint16_t alg);

/* Command builders: the command's length in buf, or -ENOBUFS. */
int tpm2_build_get_pcr_banks(uint8_t *buf, size_t size);
int tpm2_build_pcr_event(uint8_t *buf, size_t size, uint32_t pcr, const void *data, size_t len);

/* Response parsers. 0 on success; -EREMOTEIO when the TPM answered with a
 * response code (*ret_rc holds it); -EBADMSG for a response that is not a
 * well-formed answer to the command. ret_* are written only on success,
 * ret_rc always. */
int tpm2_parse_get_pcr_banks(const uint8_t *rsp, size_t len, struct tpm2_banks *ret, uint32_t *ret_rc);
int tpm2_parse_pcr_event(const uint8_t *rsp, size_t len, struct tpm2_digests *ret, uint32_t *ret_rc);

/* A response code the TPM asks to send the command again for (RETRY,
 * YIELDED, TESTING: Part 2, 6.6.3). */
bool tpm2_rc_is_retry(uint32_t rc);

/* Whether bank b has PCR pcr allocated. */
bool tpm2_bank_has_pcr(const struct tpm2_bank *b, uint32_t pcr);

/* The measured strings (README "Measured boot"; a stable format):
 *   abswitch:slot=B:source=loader-image-identifier:roothash=HEX:mode=trial
 *   abswitch:root-failed:slot=B:source=loader-image-identifier:roothash=HEX:step=verity
 * mode is "trial" or "committed"; step names what failed ("verity",
 * "mount", "pin"); roothash is empty when the UKI pinned none. -EINVAL when
 * a field holds a character outside [A-Za-z0-9._-] (a colon would make the
 * text ambiguous), -ENOBUFS when it does not fit. */
int tpm2_measurement_boot(char *buf, size_t size, Slot slot, const char *source, const char *roothash, bool trial);
int tpm2_measurement_root_failed(char *buf, size_t size, Slot slot, const char *source, const char *roothash,
                                 const char *step);

/* One record of the userspace event log, /run/log/systemd/tpm2-measure.log,
 * in the TCG Canonical Event Log's JSON encoding as systemd writes it: an
 * ASCII record separator (0x1E, RFC 7464 JSON text sequences), the object,
 * a newline:
 *   {"pcr":15,"digests":[{"hashAlg":"sha256","digest":"..."}],
 *    "content_type":"abswitch","content":{"string":"abswitch:..."}}
 * Only the digests of banks whose algorithm we know. The string must be
 * printable ASCII without '"' and '\\' (the measurement functions above
 * give only that), else -EINVAL; -ENOBUFS if it does not fit. Returns the
 * record's length. */
int tpm2_cel_record(char *buf, size_t size, uint32_t pcr, const struct tpm2_digests *d, const char *string);
