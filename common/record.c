/* SPDX-License-Identifier: MIT */
/* The boot record's writer and reader: one schema, struct boot_record.
 * See record.h. */

#define _GNU_SOURCE 1 /* asprintf */

#include <fcntl.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <sys/stat.h>

#include "macro.h"
#include "io.h"
#include "record.h"

const char *const boot_record_slot_names[BOOT_RECORD_SLOTS] = { "A", "B" };
const char *const boot_record_phase_names[BOOT_RECORD_PHASES] = { "modules", "identity", "devices",
                                                                  "state",   "verity",   "mount" };

void boot_record_init(struct boot_record *r) {
        *r = (struct boot_record) {};
        r->efi.boot_current = r->efi.boot_next = -1;
        r->tpm.pcr = -1;
        for (size_t s = 0; s < BOOT_RECORD_SLOTS; s++)
                r->state[s].before.priority = r->state[s].before.tries = r->state[s].after.priority =
                        r->state[s].after.tries = -1;
}

void boot_record_done(struct boot_record *r) {
        json_object_put(r->json_);
        boot_record_init(r);
}

/* ---- writing ------------------------------------------------------------------ */

/* Adds key; a NULL string is JSON null. json-c takes the value's reference. */
static void add(json_object *o, const char *key, json_object *v) {
        (void) json_object_object_add(o, key, v);
}

static json_object *str(const char *s) {
        return s ? json_object_new_string(s) : NULL;
}

static json_object *hex16(int v) {
        char buf[8];
        (void) snprintf(buf, sizeof(buf), "%04X", (unsigned) v & 0xFFFFu);
        return json_object_new_string(buf);
}

/* Times are milliseconds to the microsecond, the init's clock. A value
 * that is not a number, or beyond 10^12 ms (31 years of uptime), is no
 * time: 0. Rounded half away from zero, without libm. */
#define RECORD_MS_MAX 1e12

static int64_t ms_to_us(double ms) {
        if (!isfinite(ms) || ms > RECORD_MS_MAX || ms < -RECORD_MS_MAX)
                return 0;
        double us = ms * 1000.0;
        return (int64_t) (us < 0 ? us - 0.5 : us + 0.5);
}

/* Printed from integers ("348.804"): json-c prints a double with "%.17g",
 * and on the boot path nothing else calls musl's floating-point formatting,
 * which QEMU would translate for these nine numbers alone. The reader
 * rounds to the microsecond too, so a parsed record formats to itself. */
static json_object *milliseconds(double ms) {
        int64_t us = ms_to_us(ms);
        unsigned long long a = us < 0 ? -(unsigned long long) us : (unsigned long long) us;
        char buf[32];
        (void) snprintf(buf, sizeof(buf), "%s%llu.%03llu", us < 0 ? "-" : "", a / 1000, a % 1000);
        return json_object_new_double_s((double) us / 1000.0, buf);
}

static json_object *slot_state_json(const struct boot_record_slot_state *s) {
        json_object *o = json_object_new_object();
        add(o, "priority", json_object_new_int(s->priority));
        add(o, "tries", json_object_new_int(s->tries));
        add(o, "successful", json_object_new_boolean(s->successful));
        add(o, "armed", json_object_new_boolean(s->armed));
        return o;
}

static json_object *record_json(const struct boot_record *r) {
        json_object *o = json_object_new_object(), *id = json_object_new_object(),
                    *sources = json_object_new_object(), *efi = json_object_new_object(),
                    *parts = json_object_new_object(), *state = json_object_new_object(),
                    *dec = json_object_new_object(), *root = json_object_new_object(),
                    *tm = json_object_new_object();

        add(o, "version", json_object_new_int(r->version));
        add(o, "abswitch", str(r->abswitch));
        add(o, "slot", str(r->slot));
        add(o, "log", str(r->log));

        add(id, "source", str(r->identity.source));
        add(id, "value", str(r->identity.value));
        for (size_t i = 0; i < r->identity.n_sources && i < BOOT_RECORD_SOURCES_MAX; i++)
                if (r->identity.sources[i].name)
                        add(sources, r->identity.sources[i].name, str(r->identity.sources[i].verdict));
        add(id, "sources", sources);
        add(o, "identity", id);

        add(efi, "booted_via_efi", json_object_new_boolean(r->efi.booted_via_efi));
        add(efi, "StubImageIdentifier", str(r->efi.stub_image));
        add(efi, "LoaderImageIdentifier", str(r->efi.loader_image));
        add(efi, "LoaderInfo", str(r->efi.loader_info));
        add(efi, "LoaderEntrySelected", str(r->efi.loader_entry));
        add(efi, "LoaderDevicePartUUID", str(r->efi.esp_partuuid));
        if (r->efi.boot_current >= 0) {
                add(efi, "BootCurrent", hex16(r->efi.boot_current));
                add(efi, "BootCurrentDescription", str(r->efi.boot_current_desc));
                add(efi, "BootCurrentPath", str(r->efi.boot_current_path));
        }
        if (r->efi.boot_next >= 0)
                add(efi, "BootNext", hex16(r->efi.boot_next));
        add(o, "efi", efi);

        add(parts, "disk", str(r->partitions.disk));
        add(parts, "data", str(r->partitions.data));
        add(parts, "hash", str(r->partitions.hash));
        add(parts, "data_partuuid", str(r->partitions.data_partuuid));
        add(o, "partitions", parts);

        for (size_t s = 0; s < BOOT_RECORD_SLOTS; s++) {
                json_object *sl = json_object_new_object();
                add(sl, "present", json_object_new_boolean(r->state[s].present));
                add(sl, "before", slot_state_json(&r->state[s].before));
                add(sl, "after", slot_state_json(&r->state[s].after));
                add(state, boot_record_slot_names[s], sl);
        }
        add(o, "state", state);

        add(dec, "action", str(r->decision.action));
        add(dec, "reason", str(r->decision.reason));
        add(dec, "target", str(r->decision.target));
        add(dec, "trial", json_object_new_boolean(r->decision.trial));
        add(dec, "watchdog", json_object_new_boolean(r->decision.watchdog));
        add(dec, "gpt_writes", json_object_new_int(r->decision.gpt_writes));
        add(dec, "nvram_writes", json_object_new_int(r->decision.nvram_writes));
        add(o, "decision", dec);

        add(root, "device", str(r->root.device));
        add(root, "fstype", str(r->root.fstype));
        add(root, "roothash", str(r->root.roothash));
        add(root, "roothash_source", str(r->root.roothash_source));
        add(root, "verity_error", str(r->root.verity_error));
        add(root, "init", str(r->root.init));
        add(o, "root", root);

        json_object *kx = json_object_new_object();
        add(kx, "uki_sha256", str(r->kexec.uki_sha256));
        add(o, "kexec", kx);

        /* Milliseconds: absolute on CLOCK_BOOTTIME (comparable with the
         * kernel's timestamps), and the length of each phase. */
        add(tm, "init_start_ms", milliseconds(r->timings_ms.init_start));
        for (size_t i = 0; i < BOOT_RECORD_PHASES; i++)
                add(tm, boot_record_phase_names[i], milliseconds(r->timings_ms.phase[i]));
        add(tm, "total", milliseconds(r->timings_ms.total));
        add(tm, "switch_root_ms", milliseconds(r->timings_ms.switch_root));
        add(o, "timings_ms", tm);

        if (r->tpm.state) {
                json_object *tpm = json_object_new_object(), *banks = json_object_new_array(),
                            *ms = json_object_new_array();
                add(tpm, "state", str(r->tpm.state));
                add(tpm, "device", str(r->tpm.device));
                add(tpm, "pcr", r->tpm.pcr >= 0 ? json_object_new_int(r->tpm.pcr) : NULL);
                for (size_t i = 0; i < r->tpm.n_banks && i < BOOT_RECORD_TPM_BANKS_MAX; i++)
                        json_object_array_add(banks, str(r->tpm.banks[i]));
                add(tpm, "banks", banks);
                add(tpm, "log", str(r->tpm.log));
                add(tpm, "error", str(r->tpm.error));
                for (size_t i = 0; i < r->tpm.n_measurements && i < BOOT_RECORD_MEASUREMENTS_MAX; i++) {
                        json_object *e = json_object_new_object(), *d = json_object_new_object();
                        add(e, "string", str(r->tpm.measurements[i].string));
                        for (size_t k = 0; k < r->tpm.measurements[i].n_digests && k < BOOT_RECORD_TPM_BANKS_MAX; k++)
                                if (r->tpm.measurements[i].digests[k].bank)
                                        add(d, r->tpm.measurements[i].digests[k].bank,
                                            str(r->tpm.measurements[i].digests[k].hex));
                        add(e, "digests", d);
                        add(e, "logged", json_object_new_boolean(r->tpm.measurements[i].logged));
                        json_object_array_add(ms, e);
                }
                add(tpm, "measurements", ms);
                add(o, "tpm", tpm);
        }
        return o;
}

int boot_record_format(const struct boot_record *r, char **ret) {
        json_object *o = record_json(r);
        if (!o)
                return -ENOMEM;
        const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
        char *text = NULL;
        if (s && asprintf(&text, "%s\n", s) < 0)
                text = NULL;
        json_object_put(o);
        if (!text)
                return -ENOMEM;
        *ret = text;
        return 0;
}

/* Written in place, not through a rename: the init writes the record once,
 * into the boot's fresh /run, before any process that could read it runs;
 * a torn file needs the init to die mid-write, which panics the kernel and
 * takes the tmpfs with it. (A rename costs an emulated boot 7 ms of kernel
 * code it runs nowhere else.) A failed write leaves no file. */
int boot_record_write(const struct boot_record *r, const char *dir) {
        _cleanup_free_ char *text = NULL, *path = NULL;
        int k;

        if (boot_record_format(r, &text) < 0 || asprintf(&path, "%s/boot.json", dir) < 0)
                return -ENOMEM;
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return -errno;
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW, 0644);
        if (fd < 0)
                return -errno;
        k = loop_write(fd, text, strlen(text));
        if (k < 0)
                (void) unlink(path);
        return k;
}

/* ---- reading: every field may be missing or of another type ----------------- */

static json_object *get(json_object *o, const char *key) {
        json_object *v;
        if (!o || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v))
                return NULL;
        return v;
}

static const char *get_str(json_object *o, const char *key) {
        json_object *v = get(o, key);
        return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static bool get_bool(json_object *o, const char *key) {
        json_object *v = get(o, key);
        return json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
}

static int get_int(json_object *o, const char *key, int absent) {
        json_object *v = get(o, key);
        return json_object_is_type(v, json_type_int) ? json_object_get_int(v) : absent;
}

/* A time in milliseconds (a number), to the microsecond; else 0. */
static double get_ms(json_object *o, const char *key) {
        json_object *v = get(o, key);
        double ms = json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int) ?
                            json_object_get_double(v) : 0.0;
        return (double) ms_to_us(ms) / 1000.0;
}

/* "XXXX": a boot entry number, as the init writes it; else -1. */
static int get_hex16(json_object *o, const char *key) {
        const char *s = get_str(o, key);
        int v = 0;
        if (!s || strlen(s) != 4)
                return -1;
        for (size_t i = 0; i < 4; i++) {
                char c = s[i];
                int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 :
                        c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
                if (d < 0)
                        return -1;
                v = v * 16 + d;
        }
        return v;
}

static void get_slot_state(json_object *o, struct boot_record_slot_state *ret) {
        ret->priority = get_int(o, "priority", -1);
        ret->tries = get_int(o, "tries", -1);
        ret->successful = get_bool(o, "successful");
        ret->armed = get_bool(o, "armed");
}

static void record_from_json(json_object *o, struct boot_record *r) {
        json_object *id = get(o, "identity"), *sources = get(id, "sources"), *efi = get(o, "efi"),
                    *parts = get(o, "partitions"), *state = get(o, "state"), *dec = get(o, "decision"),
                    *root = get(o, "root"), *tm = get(o, "timings_ms"), *tpm = get(o, "tpm");

        r->version = get_int(o, "version", 0);
        r->abswitch = get_str(o, "abswitch");
        r->slot = get_str(o, "slot");
        r->log = get_str(o, "log");

        r->identity.source = get_str(id, "source");
        r->identity.value = get_str(id, "value");
        if (json_object_is_type(sources, json_type_object)) {
                json_object_object_foreach(sources, name, verdict) {
                        if (r->identity.n_sources >= BOOT_RECORD_SOURCES_MAX)
                                break;
                        if (!json_object_is_type(verdict, json_type_string) && verdict)
                                continue;
                        r->identity.sources[r->identity.n_sources].name = name;
                        r->identity.sources[r->identity.n_sources++].verdict =
                                verdict ? json_object_get_string(verdict) : NULL;
                }
        }

        r->efi.booted_via_efi = get_bool(efi, "booted_via_efi");
        r->efi.stub_image = get_str(efi, "StubImageIdentifier");
        r->efi.loader_image = get_str(efi, "LoaderImageIdentifier");
        r->efi.loader_info = get_str(efi, "LoaderInfo");
        r->efi.loader_entry = get_str(efi, "LoaderEntrySelected");
        r->efi.esp_partuuid = get_str(efi, "LoaderDevicePartUUID");
        r->efi.boot_current = get_hex16(efi, "BootCurrent");
        if (r->efi.boot_current >= 0) {
                r->efi.boot_current_desc = get_str(efi, "BootCurrentDescription");
                r->efi.boot_current_path = get_str(efi, "BootCurrentPath");
        }
        r->efi.boot_next = get_hex16(efi, "BootNext");

        r->partitions.disk = get_str(parts, "disk");
        r->partitions.data = get_str(parts, "data");
        r->partitions.hash = get_str(parts, "hash");
        r->partitions.data_partuuid = get_str(parts, "data_partuuid");

        for (size_t s = 0; s < BOOT_RECORD_SLOTS; s++) {
                json_object *sl = get(state, boot_record_slot_names[s]);
                r->state[s].present = get_bool(sl, "present");
                get_slot_state(get(sl, "before"), &r->state[s].before);
                get_slot_state(get(sl, "after"), &r->state[s].after);
        }

        r->decision.action = get_str(dec, "action");
        r->decision.reason = get_str(dec, "reason");
        r->decision.target = get_str(dec, "target");
        r->decision.trial = get_bool(dec, "trial");
        r->decision.watchdog = get_bool(dec, "watchdog");
        r->decision.gpt_writes = get_int(dec, "gpt_writes", 0);
        r->decision.nvram_writes = get_int(dec, "nvram_writes", 0);

        r->root.device = get_str(root, "device");
        r->root.fstype = get_str(root, "fstype");
        r->root.roothash = get_str(root, "roothash");
        r->root.roothash_source = get_str(root, "roothash_source");
        r->root.verity_error = get_str(root, "verity_error");
        r->root.init = get_str(root, "init");

        r->kexec.uki_sha256 = get_str(get(o, "kexec"), "uki_sha256");

        r->timings_ms.init_start = get_ms(tm, "init_start_ms");
        for (size_t i = 0; i < BOOT_RECORD_PHASES; i++)
                r->timings_ms.phase[i] = get_ms(tm, boot_record_phase_names[i]);
        r->timings_ms.total = get_ms(tm, "total");
        r->timings_ms.switch_root = get_ms(tm, "switch_root_ms");

        r->tpm.state = get_str(tpm, "state");
        r->tpm.device = get_str(tpm, "device");
        r->tpm.pcr = get_int(tpm, "pcr", -1);
        r->tpm.log = get_str(tpm, "log");
        r->tpm.error = get_str(tpm, "error");
        json_object *banks = get(tpm, "banks"), *ms = get(tpm, "measurements");
        if (json_object_is_type(banks, json_type_array))
                for (size_t i = 0; i < json_object_array_length(banks) && r->tpm.n_banks < BOOT_RECORD_TPM_BANKS_MAX; i++) {
                        json_object *b = json_object_array_get_idx(banks, i);
                        if (json_object_is_type(b, json_type_string))
                                r->tpm.banks[r->tpm.n_banks++] = json_object_get_string(b);
                }
        if (json_object_is_type(ms, json_type_array))
                for (size_t i = 0; i < json_object_array_length(ms) &&
                                   r->tpm.n_measurements < BOOT_RECORD_MEASUREMENTS_MAX; i++) {
                        json_object *e = json_object_array_get_idx(ms, i), *d = get(e, "digests");
                        if (!json_object_is_type(e, json_type_object))
                                continue;
                        typeof(r->tpm.measurements[0]) *m = &r->tpm.measurements[r->tpm.n_measurements++];
                        m->string = get_str(e, "string");
                        m->logged = get_bool(e, "logged");
                        if (!json_object_is_type(d, json_type_object))
                                continue;
                        json_object_object_foreach(d, bank, hex) {
                                if (m->n_digests >= BOOT_RECORD_TPM_BANKS_MAX)
                                        break;
                                if (!json_object_is_type(hex, json_type_string))
                                        continue;
                                m->digests[m->n_digests].bank = bank;
                                m->digests[m->n_digests++].hex = json_object_get_string(hex);
                        }
                }
}

int boot_record_parse(const char *text, size_t size, struct boot_record *ret) {
        struct boot_record r;

        if (size > INT32_MAX)
                return -EBADMSG;
        json_tokener *tok = json_tokener_new();
        if (!tok)
                return -ENOMEM;
        json_object *o = json_tokener_parse_ex(tok, text, (int) size);
        bool complete = json_tokener_get_error(tok) == json_tokener_success;
        /* One object: after it only white space (the init ends with "\n"). */
        for (size_t i = json_tokener_get_parse_end(tok); complete && i < size; i++)
                complete = strchr(" \t\r\n", text[i]) && text[i];
        json_tokener_free(tok);
        if (!o || !complete || !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return -EBADMSG;
        }
        boot_record_init(&r);
        r.json_ = o;
        record_from_json(o, &r);
        *ret = r;
        return 0;
}

/* json_object_from_file() reads whatever it is given to the end: a
 * multi-gigabyte file or /dev/zero as abctl --record would eat the memory.
 * A regular file of at most max bytes is read. */
int boot_record_read(const char *path, size_t max, struct boot_record *ret, uint64_t *ret_size) {
        _cleanup_free_ char *buf = NULL;
        size_t n = 0;
        int r = read_file_bounded(path, max, &buf, &n);
        if (ret_size && (r >= 0 || r == -EFBIG))
                *ret_size = n;
        if (r < 0)
                return r;
        return boot_record_parse(buf, n, ret);
}

/* ---- comparing ------------------------------------------------------------------ */

static bool double_eq(double a, double b) {
        return a == b || (isnan(a) && isnan(b));
}

static bool slot_state_eq(const struct boot_record_slot_state *a, const struct boot_record_slot_state *b) {
        return a->priority == b->priority && a->tries == b->tries && a->successful == b->successful &&
               a->armed == b->armed;
}

bool boot_record_equal(const struct boot_record *a, const struct boot_record *b) {
        if (a->version != b->version || !streq_ptr(a->abswitch, b->abswitch) || !streq_ptr(a->slot, b->slot) ||
            !streq_ptr(a->log, b->log))
                return false;
        if (!streq_ptr(a->identity.source, b->identity.source) || !streq_ptr(a->identity.value, b->identity.value) ||
            a->identity.n_sources != b->identity.n_sources)
                return false;
        for (size_t i = 0; i < a->identity.n_sources && i < BOOT_RECORD_SOURCES_MAX; i++)
                if (!streq_ptr(a->identity.sources[i].name, b->identity.sources[i].name) ||
                    !streq_ptr(a->identity.sources[i].verdict, b->identity.sources[i].verdict))
                        return false;
        if (a->efi.booted_via_efi != b->efi.booted_via_efi || !streq_ptr(a->efi.stub_image, b->efi.stub_image) ||
            !streq_ptr(a->efi.loader_image, b->efi.loader_image) || !streq_ptr(a->efi.loader_info, b->efi.loader_info) ||
            !streq_ptr(a->efi.loader_entry, b->efi.loader_entry) ||
            !streq_ptr(a->efi.esp_partuuid, b->efi.esp_partuuid) || a->efi.boot_current != b->efi.boot_current ||
            !streq_ptr(a->efi.boot_current_desc, b->efi.boot_current_desc) ||
            !streq_ptr(a->efi.boot_current_path, b->efi.boot_current_path) || a->efi.boot_next != b->efi.boot_next)
                return false;
        if (!streq_ptr(a->partitions.disk, b->partitions.disk) || !streq_ptr(a->partitions.data, b->partitions.data) ||
            !streq_ptr(a->partitions.hash, b->partitions.hash) ||
            !streq_ptr(a->partitions.data_partuuid, b->partitions.data_partuuid))
                return false;
        for (size_t s = 0; s < BOOT_RECORD_SLOTS; s++)
                if (a->state[s].present != b->state[s].present ||
                    !slot_state_eq(&a->state[s].before, &b->state[s].before) ||
                    !slot_state_eq(&a->state[s].after, &b->state[s].after))
                        return false;
        if (!streq_ptr(a->decision.action, b->decision.action) || !streq_ptr(a->decision.reason, b->decision.reason) ||
            !streq_ptr(a->decision.target, b->decision.target) || a->decision.trial != b->decision.trial ||
            a->decision.watchdog != b->decision.watchdog || a->decision.gpt_writes != b->decision.gpt_writes ||
            a->decision.nvram_writes != b->decision.nvram_writes)
                return false;
        if (!streq_ptr(a->root.device, b->root.device) || !streq_ptr(a->root.fstype, b->root.fstype) ||
            !streq_ptr(a->root.roothash, b->root.roothash) ||
            !streq_ptr(a->root.roothash_source, b->root.roothash_source) ||
            !streq_ptr(a->root.verity_error, b->root.verity_error) || !streq_ptr(a->root.init, b->root.init) ||
            !streq_ptr(a->kexec.uki_sha256, b->kexec.uki_sha256))
                return false;
        if (!double_eq(a->timings_ms.init_start, b->timings_ms.init_start) ||
            !double_eq(a->timings_ms.total, b->timings_ms.total) ||
            !double_eq(a->timings_ms.switch_root, b->timings_ms.switch_root))
                return false;
        for (size_t i = 0; i < BOOT_RECORD_PHASES; i++)
                if (!double_eq(a->timings_ms.phase[i], b->timings_ms.phase[i]))
                        return false;
        if (!streq_ptr(a->tpm.state, b->tpm.state) || !streq_ptr(a->tpm.device, b->tpm.device) ||
            !streq_ptr(a->tpm.log, b->tpm.log) || !streq_ptr(a->tpm.error, b->tpm.error) || a->tpm.pcr != b->tpm.pcr ||
            a->tpm.n_banks != b->tpm.n_banks || a->tpm.n_measurements != b->tpm.n_measurements)
                return false;
        for (size_t i = 0; i < a->tpm.n_banks && i < BOOT_RECORD_TPM_BANKS_MAX; i++)
                if (!streq_ptr(a->tpm.banks[i], b->tpm.banks[i]))
                        return false;
        for (size_t i = 0; i < a->tpm.n_measurements && i < BOOT_RECORD_MEASUREMENTS_MAX; i++) {
                const typeof(a->tpm.measurements[0]) *x = &a->tpm.measurements[i], *y = &b->tpm.measurements[i];
                if (!streq_ptr(x->string, y->string) || x->logged != y->logged || x->n_digests != y->n_digests)
                        return false;
                for (size_t k = 0; k < x->n_digests && k < BOOT_RECORD_TPM_BANKS_MAX; k++)
                        if (!streq_ptr(x->digests[k].bank, y->digests[k].bank) ||
                            !streq_ptr(x->digests[k].hex, y->digests[k].hex))
                                return false;
        }
        return true;
}
