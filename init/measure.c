/* SPDX-License-Identifier: MIT */
/* Measured boot: the thin I/O around init/tpm2.c. Opens the TPM's character
 * device, sends the commands tpm2.c builds, and appends each extension to
 * the userspace event log that systemd keeps its own measurements in, so
 * one replay covers both. */

#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "../common/hex.h"
#include "../common/io.h"
#include "../common/log.h"
#include "init.h"

/* The resource manager first (the kernel multiplexes it, nobody else can
 * hold it exclusively), the raw device on kernels without one. */
static const char *const tpm_devices[] = { "/dev/tpmrm0", "/dev/tpm0" };

#define CEL_DIR "/run/log/systemd"
#define CEL_PATH CEL_DIR "/tpm2-measure.log"
#define TPM_RETRIES 5

/* One command, one response. The kernel's driver does the waiting: a write
 * without O_NONBLOCK returns when the TPM answered or the driver's own
 * per-command timeout expired (drivers/char/tpm/tpm-dev-common.c). */
static ssize_t tpm_transmit(int fd, const uint8_t *cmd, size_t len, uint8_t *rsp, size_t size) {
        int r = loop_write(fd, cmd, len);
        if (r < 0)
                return r;
        for (;;) {
                ssize_t n = read(fd, rsp, size);
                if (n < 0 && errno == EINTR)
                        continue;
                return n < 0 ? -errno : n;
        }
}

/* Sends cmd and parses the response with parse, again while the TPM says
 * RETRY, YIELDED or TESTING. */
typedef int (*tpm_parser)(const uint8_t *rsp, size_t len, void *ret, uint32_t *ret_rc);
static int tpm_command(struct boot *b, const uint8_t *cmd, size_t len, tpm_parser parse, void *ret, uint32_t *ret_rc) {
        uint8_t rsp[TPM2_BUFFER_MAX];
        int r = -EIO;

        for (int i = 0; i < TPM_RETRIES; i++) {
                ssize_t n = tpm_transmit(b->tpm.fd, cmd, len, rsp, sizeof(rsp));
                if (n < 0)
                        return (int) n;
                r = parse(rsp, (size_t) n, ret, ret_rc);
                if (r != -EREMOTEIO || !tpm2_rc_is_retry(*ret_rc))
                        return r;
                (void) usleep(20 * 1000);
        }
        return r;
}

static int parse_banks(const uint8_t *rsp, size_t len, void *ret, uint32_t *ret_rc) {
        return tpm2_parse_get_pcr_banks(rsp, len, ret, ret_rc);
}
static int parse_event(const uint8_t *rsp, size_t len, void *ret, uint32_t *ret_rc) {
        return tpm2_parse_pcr_event(rsp, len, ret, ret_rc);
}

/* The reason of a failed command, for the log and the record. */
static void tpm_why(char *buf, size_t size, const char *what, int r, uint32_t rc) {
        if (r == -EREMOTEIO)
                (void) snprintf(buf, size, "%s: the TPM answered with response code 0x%03X", what, rc);
        else if (r == -EBADMSG)
                (void) snprintf(buf, size, "%s: the TPM's response is malformed", what);
        else
                (void) snprintf(buf, size, "%s: %s", what, strerror(-r));
}

static void banks_string(const struct boot *b, char *buf, size_t size) {
        size_t off = 0;
        buf[0] = 0;
        for (unsigned i = 0; i < b->tpm.banks.n; i++) {
                const char *name = tpm2_alg_to_string(b->tpm.banks.bank[i].alg);
                if (!name || !tpm2_bank_has_pcr(&b->tpm.banks.bank[i], TPM2_PCR_ABSWITCH))
                        continue;
                int n = snprintf(buf + off, size - off, "%s%s", off ? ", " : "", name);
                if (n < 0 || (size_t) n >= size - off)
                        break;
                off += (size_t) n;
        }
}

/* Opens the TPM and learns its banks, once per boot. */
static bool tpm_ready(struct boot *b) {
        uint8_t cmd[TPM2_BUFFER_MAX];
        uint32_t rc = 0;
        int r, fd = -1;

        if (b->tpm.state != TPM_UNPROBED)
                return b->tpm.state == TPM_READY;

        for (size_t i = 0; i < ELEMENTSOF(tpm_devices) && fd < 0; i++) {
                fd = open(tpm_devices[i], O_RDWR | O_CLOEXEC | O_NOCTTY);
                if (fd >= 0) {
                        b->tpm.device = tpm_devices[i];
                        b->tpm.error[0] = 0;  /* the first device's error, if any, no longer matters */
                } else if (errno != ENOENT && errno != ENODEV && errno != ENXIO)
                        (void) snprintf(b->tpm.error, sizeof(b->tpm.error), "opening %s: %s", tpm_devices[i],
                                        strerror(errno));
        }
        if (fd < 0 && !b->tpm.error[0]) {
                b->tpm.state = TPM_ABSENT;
                log_notice("No TPM (neither %s nor %s): this boot is not measured", tpm_devices[0], tpm_devices[1]);
                return false;
        }
        b->tpm.state = TPM_FAILED;
        if (fd < 0)
                goto fail;
        b->tpm.fd = fd;

        r = tpm2_build_get_pcr_banks(cmd, sizeof(cmd));
        if (r >= 0)
                r = tpm_command(b, cmd, (size_t) r, parse_banks, &b->tpm.banks, &rc);
        if (r < 0) {
                tpm_why(b->tpm.error, sizeof(b->tpm.error), "reading the PCR banks (TPM2_GetCapability)", r, rc);
                goto fail;
        }
        char banks[128];
        banks_string(b, banks, sizeof(banks));
        if (!banks[0]) {
                (void) snprintf(b->tpm.error, sizeof(b->tpm.error),
                                "no PCR bank of a known hash algorithm has PCR %u allocated", TPM2_PCR_ABSWITCH);
                goto fail;
        }
        b->tpm.state = TPM_READY;
        log_info("TPM %s: measuring into PCR %u, banks %s", b->tpm.device, TPM2_PCR_ABSWITCH, banks);
        return true;
fail:
        log_warning("TPM%s%s: %s; this boot is not measured, booting on", b->tpm.device ? " " : "",
                    b->tpm.device ?: "", b->tpm.error);
        return false;
}

/* Appends one record under an exclusive lock, as systemd's own writers do
 * (a file lock on the log, so that records of concurrent writers never
 * interleave). Created 0600: the log is root's, like systemd's. */
static int cel_append(const char *record, size_t len) {
        struct stat st;
        int r;

        (void) mkdir("/run/log", 0755);
        (void) mkdir(CEL_DIR, 0755);
        _cleanup_close_ int fd = open(CEL_PATH, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        if (fd < 0)
                return -errno;
        if (flock(fd, LOCK_EX) < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        r = loop_write(fd, record, len);
        (void) flock(fd, LOCK_UN);
        return r;
}

static void measure(struct boot *b, const char *text) {
        uint8_t cmd[TPM2_BUFFER_MAX];
        char rec[2048];
        uint32_t rc = 0;
        int r;

        if (b->tpm.closed || !tpm_ready(b))
                return;
        if (b->tpm.n >= MEASUREMENTS_MAX) {
                log_warning("Not measuring \"%s\": %d measurements already this boot", text, MEASUREMENTS_MAX);
                return;
        }
        struct measurement *m = &b->tpm.m[b->tpm.n];
        struct tpm2_digests all;
        r = tpm2_build_pcr_event(cmd, sizeof(cmd), TPM2_PCR_ABSWITCH, text, strlen(text));
        if (r >= 0)
                r = tpm_command(b, cmd, (size_t) r, parse_event, &all, &rc);
        if (r < 0) {
                tpm_why(b->tpm.error, sizeof(b->tpm.error), "extending the PCR (TPM2_PCR_Event)", r, rc);
                log_warning("TPM %s: %s; \"%s\" is not measured, nor anything else this boot, booting on",
                            b->tpm.device, b->tpm.error, text);
                /* Not again: the kernel waits up to 120 s for a command it
                 * has no duration for (PCR_Event among them), and a second
                 * stall could outlast a trial boot's watchdog. */
                b->tpm.state = TPM_FAILED;
                measure_close(b);
                return;
        }
        /* The TPM hashed with every algorithm it implements; a bank without
         * the PCR allocated was not extended and is not in the log. */
        *m = (struct measurement) {};
        (void) snprintf(m->text, sizeof(m->text), "%s", text);
        for (unsigned i = 0; i < all.n; i++)
                for (unsigned j = 0; j < b->tpm.banks.n; j++)
                        if (b->tpm.banks.bank[j].alg == all.d[i].alg &&
                            tpm2_bank_has_pcr(&b->tpm.banks.bank[j], TPM2_PCR_ABSWITCH))
                                m->digests.d[m->digests.n++] = all.d[i];
        b->tpm.n++;

        r = tpm2_cel_record(rec, sizeof(rec), TPM2_PCR_ABSWITCH, &m->digests, text);
        if (r >= 0)
                r = cel_append(rec, (size_t) r);
        m->logged = r >= 0;
        if (r < 0)
                log_warning_errno(r, "Measured \"%s\" into PCR %u but failed to append it to %s, so this boot's "
                                  "PCR %u cannot be replayed from the log: %m", text, TPM2_PCR_ABSWITCH, CEL_PATH,
                                  TPM2_PCR_ABSWITCH);
        else
                log_info("Measured into PCR %u: %s", TPM2_PCR_ABSWITCH, text);
}

void measure_boot(struct boot *b) {
        char text[256];
        int r = tpm2_measurement_boot(text, sizeof(text), b->id.slot, identity_source_to_string(b->id.source),
                                      b->cmdline.roothash, b->decision.trial);
        if (r < 0) {
                log_warning_errno(r, "Cannot describe this boot for the TPM, not measuring it: %m");
                return;
        }
        measure(b, text);
}

void measure_root_failed(struct boot *b, const char *step) {
        char text[256];
        int r = tpm2_measurement_root_failed(text, sizeof(text), b->id.slot, identity_source_to_string(b->id.source),
                                             b->cmdline.roothash, step);
        if (r < 0) {
                log_warning_errno(r, "Cannot describe the failed root for the TPM, not measuring it: %m");
                return;
        }
        measure(b, text);
}

void measure_close(struct boot *b) {
        if (b->tpm.device && b->tpm.fd >= 0)
                (void) close(b->tpm.fd);
        b->tpm.fd = -1;
        b->tpm.closed = true;
}

void measure_record(const struct boot *b, struct boot_record *r, struct measure_record_hex *hex) {
        static const char *const states[] = {
                [TPM_UNPROBED] = "not-probed", [TPM_ABSENT] = "absent", [TPM_READY] = "ready", [TPM_FAILED] = "failed",
        };

        r->tpm.state = states[b->tpm.state];
        r->tpm.device = b->tpm.device;
        r->tpm.pcr = (int) TPM2_PCR_ABSWITCH;
        for (unsigned i = 0; i < b->tpm.banks.n && r->tpm.n_banks < BOOT_RECORD_TPM_BANKS_MAX; i++) {
                const char *name = tpm2_alg_to_string(b->tpm.banks.bank[i].alg);
                if (name && tpm2_bank_has_pcr(&b->tpm.banks.bank[i], TPM2_PCR_ABSWITCH))
                        r->tpm.banks[r->tpm.n_banks++] = name;
        }
        r->tpm.log = CEL_PATH;
        r->tpm.error = b->tpm.error[0] ? b->tpm.error : NULL;
        for (unsigned i = 0; i < b->tpm.n && i < MEASUREMENTS_MAX && i < BOOT_RECORD_MEASUREMENTS_MAX; i++) {
                const struct measurement *m = &b->tpm.m[i];
                typeof(r->tpm.measurements[0]) *e = &r->tpm.measurements[r->tpm.n_measurements++];
                e->string = m->text;
                e->logged = m->logged;
                for (unsigned k = 0; k < m->digests.n && k < BOOT_RECORD_TPM_BANKS_MAX; k++) {
                        char *x = hex->digest[i][k];
                        hex_encode(m->digests.d[k].bytes, m->digests.d[k].size, x);
                        e->digests[e->n_digests].bank = tpm2_alg_to_string(m->digests.d[k].alg);
                        e->digests[e->n_digests++].hex = x;
                }
        }
}
