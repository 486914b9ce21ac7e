/* SPDX-License-Identifier: MIT */
/* TPM 2.0 commands, by hand: TPM2_GetCapability(TPM_CAP_PCRS) and
 * TPM2_PCR_Event, and the parsers of their responses. Pure: no system calls.
 *
 * Why not tpm2-tss: the init is a static musl binary; tpm2-tss's ESAPI
 * loads its TCTI with dlopen() (a static binary cannot), pulls in OpenSSL or
 * mbedtls for sessions we do not need, and would be the largest library in
 * the initramfs for two commands of a few dozen bytes each. The wire format
 * of both is fixed by TPM 2.0 Part 3 (commands) and Part 2 (structures);
 * tests/unit/test-tpm2.c checks the bytes, tests/fuzz/fuzz-tpm2.c the
 * parsers, against responses from anywhere (a TPM is hardware we do not
 * trust to be well formed, and on some machines a bus an attacker can reach).
 *
 * Why TPM2_PCR_Event and not TPM2_PCR_Extend: PCR_Event hands the TPM the
 * event's bytes (at most 1024) and the TPM hashes them with the algorithm of
 * every bank it implements, extends each and returns the digests. Extend
 * would need the init to compute each active bank's digest itself, so to
 * carry SHA-1, SHA-384, SHA-512 and SM3 code (musl has none) and to get a
 * bank right it never saw. The extension is the same: a PCR becomes
 * H(PCR || H(event)) either way, and H(event) is what the log records.
 *
 * Why PCR 15: see README "Measured boot". In short: the UAPI Linux TPM PCR
 * Registry names 15 "system identity", what a verified root is; systemd 252
 * (Debian 12) measures nothing into it, later systemd puts its own root file
 * system identity there after ours; 11, 12 and 13 are predicted from the UKI
 * alone by signed policies and pcrlock; 9 and 10 are the kernel's (initrd,
 * IMA); 8 and 14 grub's and shim's; 16 and 23 can be reset by anyone at
 * locality 0, so a value there proves nothing. */

#include <stdio.h>

#include "../common/hex.h"
#include "../common/macro.h"
#include "tpm2.h"

/* Part 2: TPM_ST, TPM_CC, TPM_CAP, TPM_RH, TPM_RC. */
#define TPM2_ST_NO_SESSIONS 0x8001u
#define TPM2_ST_SESSIONS 0x8002u
#define TPM2_CC_GET_CAPABILITY 0x0000017Au
#define TPM2_CC_PCR_EVENT 0x0000013Cu
#define TPM2_CAP_PCRS 0x00000005u
#define TPM2_RS_PW 0x40000009u
#define TPM2_RC_SUCCESS 0x000u
#define TPM2_RC_YIELDED 0x908u
#define TPM2_RC_TESTING 0x90Au
#define TPM2_RC_RETRY 0x922u
#define TPM2_HEADER_SIZE 10u
/* Part 2, 10.5.1: TPMS_PCR_SELECT.sizeofSelect is at least PCR_SELECT_MIN
 * (3); no TPM has more than a few bytes of PCRs. */
#define TPM2_PCR_SELECT_MAX 32u

struct writer {
        uint8_t *p;
        size_t size, len;
        bool overflow;
};

static void put(struct writer *w, const void *data, size_t n) {
        if (n == 0)
                return;
        if (w->overflow || n > w->size - w->len) {
                w->overflow = true;
                return;
        }
        memcpy(w->p + w->len, data, n);
        w->len += n;
}
static void put_str(struct writer *w, const char *s) {
        put(w, s, strlen(s));
}
static void put8(struct writer *w, uint8_t v) {
        put(w, &v, 1);
}
static void put16(struct writer *w, uint16_t v) {
        uint8_t b[2] = { (uint8_t) (v >> 8), (uint8_t) v };
        put(w, b, sizeof(b));
}
static void put32(struct writer *w, uint32_t v) {
        uint8_t b[4] = { (uint8_t) (v >> 24), (uint8_t) (v >> 16), (uint8_t) (v >> 8), (uint8_t) v };
        put(w, b, sizeof(b));
}

/* The header's size field, once the command is complete. */
static int finish(struct writer *w) {
        if (w->overflow || w->len < TPM2_HEADER_SIZE)
                return -ENOBUFS;
        uint32_t n = (uint32_t) w->len;
        w->p[2] = (uint8_t) (n >> 24);
        w->p[3] = (uint8_t) (n >> 16);
        w->p[4] = (uint8_t) (n >> 8);
        w->p[5] = (uint8_t) n;
        return (int) w->len;
}

struct reader {
        const uint8_t *p;
        size_t len, off;
        bool bad;
};

static bool get(struct reader *r, void *out, size_t n) {
        if (r->bad || n > r->len - r->off) {
                r->bad = true;
                return false;
        }
        if (out && n > 0)
                memcpy(out, r->p + r->off, n);
        r->off += n;
        return true;
}
static uint8_t get8(struct reader *r) {
        uint8_t b = 0;
        (void) get(r, &b, 1);
        return b;
}
static uint16_t get16(struct reader *r) {
        uint8_t b[2] = {};
        (void) get(r, b, sizeof(b));
        return (uint16_t) (b[0] << 8 | b[1]);
}
static uint32_t get32(struct reader *r) {
        uint8_t b[4] = {};
        (void) get(r, b, sizeof(b));
        return (uint32_t) b[0] << 24 | (uint32_t) b[1] << 16 | (uint32_t) b[2] << 8 | b[3];
}

const char *tpm2_alg_to_string(uint16_t alg) {
        switch (alg) {
        case TPM2_ALG_SHA1:
                return "sha1";
        case TPM2_ALG_SHA256:
                return "sha256";
        case TPM2_ALG_SHA384:
                return "sha384";
        case TPM2_ALG_SHA512:
                return "sha512";
        case TPM2_ALG_SM3_256:
                return "sm3_256";
        default:
                return NULL;
        }
}

size_t tpm2_alg_digest_size(uint16_t alg) {
        switch (alg) {
        case TPM2_ALG_SHA1:
                return 20;
        case TPM2_ALG_SHA256:
        case TPM2_ALG_SM3_256:
                return 32;
        case TPM2_ALG_SHA384:
                return 48;
        case TPM2_ALG_SHA512:
                return 64;
        default:
                return 0;
        }
}

bool tpm2_rc_is_retry(uint32_t rc) {
        return rc == TPM2_RC_RETRY || rc == TPM2_RC_YIELDED || rc == TPM2_RC_TESTING;
}

bool tpm2_bank_has_pcr(const struct tpm2_bank *b, uint32_t pcr) {
        return pcr < 32 && (b->pcrs & (UINT32_C(1) << pcr));
}

/* Part 3, 30.2 TPM2_GetCapability: capability TPM_CAP_PCRS; property and
 * propertyCount are not used for it (0 and 1, as tpm2-tools sends). */
int tpm2_build_get_pcr_banks(uint8_t *buf, size_t size) {
        struct writer w = { .p = buf, .size = size };
        put16(&w, TPM2_ST_NO_SESSIONS);
        put32(&w, 0); /* size, by finish() */
        put32(&w, TPM2_CC_GET_CAPABILITY);
        put32(&w, TPM2_CAP_PCRS);
        put32(&w, 0);
        put32(&w, 1);
        return finish(&w);
}

/* Part 3, 22.3 TPM2_PCR_Event: the PCR's handle, an authorization area with
 * one password session (TPM_RS_PW, empty nonce, continueSession, empty
 * password: the PCRs' authValue is empty unless someone set one, Part 1,
 * 17.6.2), then TPM2B_EVENT. */
int tpm2_build_pcr_event(uint8_t *buf, size_t size, uint32_t pcr, const void *data, size_t len) {
        struct writer w = { .p = buf, .size = size };
        if (len > TPM2_EVENT_MAX)
                return -ENOBUFS;
        put16(&w, TPM2_ST_SESSIONS);
        put32(&w, 0);
        put32(&w, TPM2_CC_PCR_EVENT);
        put32(&w, pcr);
        put32(&w, 4 + 2 + 1 + 2); /* authorizationSize: one TPMS_AUTH_COMMAND */
        put32(&w, TPM2_RS_PW);
        put16(&w, 0);             /* nonceCaller */
        put8(&w, 0x01);           /* sessionAttributes: continueSession */
        put16(&w, 0);             /* hmac: the empty password */
        put16(&w, (uint16_t) len);
        put(&w, data, len);
        return finish(&w);
}

/* The response header: tag, size (must be the length read), response code.
 * Returns 0 with *ret_rc = 0 and *ret_sessions for a success, -EREMOTEIO with
 * the code, -EBADMSG for anything malformed. */
static int parse_header(struct reader *r, uint32_t *ret_rc, bool *ret_sessions) {
        uint16_t tag = get16(r);
        uint32_t size = get32(r), rc = get32(r);
        if (r->bad || (tag != TPM2_ST_NO_SESSIONS && tag != TPM2_ST_SESSIONS) || size != r->len)
                return -EBADMSG;
        *ret_rc = rc;
        if (rc != TPM2_RC_SUCCESS)
                /* An error response is the header alone, with the no-sessions tag
                 * (Part 1, 18.4); a longer one is not from a TPM. */
                return r->len == TPM2_HEADER_SIZE ? -EREMOTEIO : -EBADMSG;
        *ret_sessions = tag == TPM2_ST_SESSIONS;
        return 0;
}

/* Part 3, 30.2: moreData, then TPMS_CAPABILITY_DATA with capability
 * TPM_CAP_PCRS and a TPML_PCR_SELECTION: the banks and their allocated PCRs. */
int tpm2_parse_get_pcr_banks(const uint8_t *rsp, size_t len, struct tpm2_banks *ret, uint32_t *ret_rc) {
        struct reader r = { .p = rsp, .len = len };
        struct tpm2_banks banks = {};
        bool sessions = false;
        int e;

        *ret_rc = 0;
        e = parse_header(&r, ret_rc, &sessions);
        if (e < 0)
                return e;
        if (sessions)
                return -EBADMSG; /* we sent no session: none may come back */
        (void) get8(&r); /* moreData: TPM_CAP_PCRS always fits (Part 3, 30.2) */
        if (get32(&r) != TPM2_CAP_PCRS)
                return -EBADMSG;
        uint32_t count = get32(&r);
        if (r.bad || count > TPM2_BANKS_MAX)
                return -EBADMSG;
        for (uint32_t i = 0; i < count; i++) {
                uint8_t sel[TPM2_PCR_SELECT_MAX] = {};
                uint16_t alg = get16(&r);
                uint8_t n = get8(&r);
                if (n > TPM2_PCR_SELECT_MAX || !get(&r, sel, n))
                        return -EBADMSG;
                for (unsigned j = 0; j < banks.n; j++)
                        if (banks.bank[j].alg == alg)
                                return -EBADMSG; /* a bank twice */
                uint32_t pcrs = 0;
                for (unsigned k = 0; k < n && k < 4; k++)
                        pcrs |= (uint32_t) sel[k] << (8 * k);
                banks.bank[banks.n++] = (struct tpm2_bank) { .alg = alg, .pcrs = pcrs };
        }
        if (r.bad || r.off != r.len)
                return -EBADMSG;
        *ret = banks;
        return 0;
}

/* Part 3, 22.3: parameterSize, TPML_DIGEST_VALUES, then one
 * TPMS_AUTH_RESPONSE (our password session: empty nonce, attributes, empty
 * hmac). TPMT_HA carries no size: an algorithm we do not know the digest
 * size of cannot be skipped, so it makes the response unreadable. */
int tpm2_parse_pcr_event(const uint8_t *rsp, size_t len, struct tpm2_digests *ret, uint32_t *ret_rc) {
        struct reader r = { .p = rsp, .len = len };
        struct tpm2_digests d = {};
        bool sessions = false;
        int e;

        *ret_rc = 0;
        e = parse_header(&r, ret_rc, &sessions);
        if (e < 0)
                return e;
        if (!sessions)
                return -EBADMSG;
        uint32_t param_size = get32(&r);
        if (r.bad || param_size > r.len - r.off)
                return -EBADMSG;
        size_t param_end = r.off + param_size;
        uint32_t count = get32(&r);
        if (r.bad || count > TPM2_BANKS_MAX)
                return -EBADMSG;
        for (uint32_t i = 0; i < count; i++) {
                uint16_t alg = get16(&r);
                size_t n = tpm2_alg_digest_size(alg);
                if (r.bad || n == 0)
                        return -EBADMSG;
                for (unsigned j = 0; j < d.n; j++)
                        if (d.d[j].alg == alg)
                                return -EBADMSG;
                struct tpm2_digest *x = &d.d[d.n];
                if (!get(&r, x->bytes, n))
                        return -EBADMSG;
                x->alg = alg;
                x->size = (uint8_t) n;
                d.n++;
        }
        if (r.bad || r.off != param_end)
                return -EBADMSG;
        /* TPMS_AUTH_RESPONSE: nonceTPM, sessionAttributes, hmac. */
        uint16_t nonce = get16(&r);
        (void) get(&r, NULL, nonce);
        (void) get8(&r);
        uint16_t hmac = get16(&r);
        (void) get(&r, NULL, hmac);
        if (r.bad || r.off != r.len)
                return -EBADMSG;
        *ret = d;
        return 0;
}

static bool field_ok(const char *s) {
        for (; *s; s++)
                if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
                      *s == '.' || *s == '_' || *s == '-'))
                        return false;
        return true;
}

static int fits(int n, size_t size) {
        return n < 0 || (size_t) n >= size ? -ENOBUFS : n;
}

int tpm2_measurement_boot(char *buf, size_t size, Slot slot, const char *source, const char *roothash, bool trial) {
        roothash = roothash ?: "";
        if ((slot != SLOT_A && slot != SLOT_B) || !source || !field_ok(source) || !field_ok(roothash))
                return -EINVAL;
        return fits(snprintf(buf, size, "abswitch:slot=%s:source=%s:roothash=%s:mode=%s", slot_to_string(slot),
                             source, roothash, trial ? "trial" : "committed"),
                    size);
}

int tpm2_measurement_root_failed(char *buf, size_t size, Slot slot, const char *source, const char *roothash,
                                 const char *step) {
        roothash = roothash ?: "";
        if ((slot != SLOT_A && slot != SLOT_B) || !source || !step || !field_ok(source) || !field_ok(roothash) ||
            !field_ok(step))
                return -EINVAL;
        return fits(snprintf(buf, size, "abswitch:root-failed:slot=%s:source=%s:roothash=%s:step=%s",
                             slot_to_string(slot), source, roothash, step),
                    size);
}

int tpm2_cel_record(char *buf, size_t size, uint32_t pcr, const struct tpm2_digests *d, const char *string) {
        struct writer w = { .p = (uint8_t *) buf, .size = size };
        char num[16];
        bool first = true;

        for (const char *s = string; *s; s++)
                if (*s < 0x20 || *s > 0x7e || *s == '"' || *s == '\\')
                        return -EINVAL;

        put8(&w, 0x1e);
        put_str(&w, "{\"pcr\":");
        put(&w, num, (size_t) snprintf(num, sizeof(num), "%u", pcr));
        put_str(&w, ",\"digests\":[");
        for (unsigned i = 0; i < d->n; i++) {
                const char *name = tpm2_alg_to_string(d->d[i].alg);
                if (!name)
                        continue;
                if (!first)
                        put8(&w, ',');
                first = false;
                put_str(&w, "{\"hashAlg\":\"");
                put_str(&w, name);
                put_str(&w, "\",\"digest\":\"");
                for (unsigned k = 0; k < d->d[i].size && k < TPM2_DIGEST_MAX; k++) {
                        put8(&w, (uint8_t) HEX_DIGITS[d->d[i].bytes[k] >> 4]);
                        put8(&w, (uint8_t) HEX_DIGITS[d->d[i].bytes[k] & 15]);
                }
                put_str(&w, "\"}");
        }
        put_str(&w, "],\"content_type\":\"abswitch\",\"content\":{\"string\":\"");
        put_str(&w, string);
        put_str(&w, "\"}}\n");
        put8(&w, 0); /* a C string for the caller; not counted */
        if (w.overflow)
                return -ENOBUFS;
        return (int) w.len - 1;
}
