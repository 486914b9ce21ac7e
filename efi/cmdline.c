/* SPDX-License-Identifier: MIT */
/* Hand-written: the kernel's own tokenizer (lib/cmdline.c next_arg) is the
 * reference and there is no library for it; this follows its quoting rules. */

#include <ctype.h>
#include <stdio.h>

#include "../common/macro.h"
#include "cmdline.h"

static const char *const verity_error_names[_VERITY_ERROR_MAX] = {
        [VERITY_ERROR_RESTART] = "restart",
        [VERITY_ERROR_PANIC] = "panic",
        [VERITY_ERROR_EIO] = "eio",
        [VERITY_ERROR_FALLBACK] = "fallback",
};

const char *verity_error_policy_to_string(VerityErrorPolicy p) {
        return p >= 0 && p < _VERITY_ERROR_MAX ? verity_error_names[p] : "invalid";
}

static const char *const redirect_names[_REDIRECT_MAX] = {
        [REDIRECT_FIRMWARE] = "firmware",
        [REDIRECT_KEXEC] = "kexec",
};

const char *redirect_mode_to_string(RedirectMode m) {
        return m >= 0 && m < _REDIRECT_MAX ? redirect_names[m] : "invalid";
}

static void complain(cmdline_complaint_fn fn, void *u, const char *key, const char *value, const char *why) {
        char param[160];
        if (!fn)
                return;
        (void) snprintf(param, sizeof(param), "%s%s%.120s", key, value ? "=" : "", value ?: "");
        fn(u, param, why);
}

/* out is written only when v is valid: a bad repeat keeps an earlier good value. */
static bool parse_roothash(const char *v, char out[static ROOTHASH_HEX_MAX + 1]) {
        char buf[ROOTHASH_HEX_MAX + 1];
        size_t n = strlen(v);
        /* sha1 (40) to sha512 (128) hex digits, even length. */
        if (n < 40 || n > ROOTHASH_HEX_MAX || n % 2 != 0)
                return false;
        for (size_t i = 0; i < n; i++) {
                if (!isxdigit((unsigned char) v[i]))
                        return false;
                buf[i] = (char) tolower((unsigned char) v[i]);
        }
        buf[n] = 0;
        memcpy(out, buf, n + 1);
        return true;
}

static bool parse_sources(const char *v, unsigned *ret) {
        unsigned mask = 0;
        char buf[256];

        size_t n = strlen(v);
        if (n >= sizeof(buf) || n == 0)
                return false;
        memcpy(buf, v, n + 1);
        for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                IdentitySource s = identity_source_from_string(t);
                if (s < 0)
                        return false;
                mask |= 1u << s;
        }
        /* The default is the last resort: it always answers. */
        *ret = mask | (1u << IDENTITY_DEFAULT);
        return true;
}

static bool parse_seconds(const char *v, unsigned *ret_ms) {
        char *end;
        if (!isdigit((unsigned char) *v))
                return false;
        errno = 0;
        unsigned long s = strtoul(v, &end, 10);
        if (errno != 0 || *end || s == 0 || s > 3600)
                return false;
        *ret_ms = (unsigned) s * 1000u;
        return true;
}

static void parse_one(struct cmdline *c, const char *key, const char *value,
                      cmdline_complaint_fn fn, void *u) {
        if (streq(key, "ab.slot")) {
                /* A bad value is reported and ignored: an earlier good one stays. */
                Slot s = value ? slot_from_string(value) : _SLOT_INVALID;
                if (s < 0)
                        complain(fn, u, key, value,
                                 c->slot >= 0 ? "must be A or B; ignoring it, keeping the earlier ab.slot="
                                              : "must be A or B; ignoring it");
                else
                        c->slot = s;
        } else if (streq(key, "ab.roothash")) {
                if (!value || !parse_roothash(value, c->roothash))
                        complain(fn, u, key, value,
                                 c->roothash[0] ? "must be 40 to 128 hex digits; ignoring it, keeping the earlier "
                                                  "ab.roothash="
                                                : "must be 40 to 128 hex digits; ignoring it");
        } else if (streq(key, "ab.identity")) {
                if (!value || !parse_sources(value, &c->identity_sources))
                        complain(fn, u, key, value,
                                 "must be a comma-separated list of cmdline, stub-image-identifier, "
                                 "loader-image-identifier, loader-entry-selected, boot-current, root-hash; "
                                 "consulting all");
        } else if (streq(key, "ab.timeout")) {
                if (!value || !parse_seconds(value, &c->timeout_ms))
                        complain(fn, u, key, value, "must be whole seconds from 1 to 3600; using 10");
        } else if (streq(key, "ab.watchdog")) {
                unsigned ms;
                if (!value || !parse_seconds(value, &ms))
                        complain(fn, u, key, value, "must be whole seconds from 1 to 3600; using 120");
                else
                        c->watchdog_sec = ms / 1000;
        } else if (streq(key, "ab.verity_error")) {
                VerityErrorPolicy p = _VERITY_ERROR_INVALID;
                for (int i = 0; value && i < _VERITY_ERROR_MAX; i++)
                        if (streq(value, verity_error_names[i]))
                                p = i;
                if (p < 0)
                        complain(fn, u, key, value, "must be fallback, restart, panic or eio; using fallback");
                else
                        c->verity_error = p;
        } else if (streq(key, "ab.redirect")) {
                RedirectMode m = _REDIRECT_INVALID;
                for (int i = 0; value && i < _REDIRECT_MAX; i++)
                        if (streq(value, redirect_names[i]))
                                m = i;
                if (m < 0)
                        complain(fn, u, key, value, "must be firmware or kexec; using firmware");
                else
                        c->redirect = m;
        } else if (streq(key, "ab.kexec")) {
                /* Exactly a SHA-256: the init records it and abctl mark-good
                 * compares it with the UKI file on the ESP. */
                bool ok = value && strlen(value) == KEXEC_SHA256_HEX;
                for (size_t i = 0; ok && value[i]; i++)
                        ok = isxdigit((unsigned char) value[i]);
                if (!ok)
                        complain(fn, u, key, value, "must be the UKI's SHA-256 in 64 hex digits; ignoring it");
                else
                        for (size_t i = 0; i <= KEXEC_SHA256_HEX; i++)
                                c->kexec_sha256[i] = (char) tolower((unsigned char) value[i]);
        } else if (streq(key, "ab.debug")) {
                c->debug = true;
        } else if (streq(key, "init")) {
                if (!value || value[0] != '/' || strlen(value) >= sizeof(c->init))
                        complain(fn, u, key, value, "must be an absolute path; using /sbin/init");
                else
                        memcpy(c->init, value, strlen(value) + 1);
        } else if (startswith(key, "ab.")) {
                complain(fn, u, key, value, "is not a parameter abswitch knows; ignoring it");
        }
}

int cmdline_parse(const char *line, struct cmdline *ret, cmdline_complaint_fn fn, void *u) {
        struct cmdline c = {
                .slot = _SLOT_INVALID,
                .identity_sources = IDENTITY_MASK_ALL,
                .timeout_ms = 10000,
                .watchdog_sec = 120,
                .verity_error = VERITY_ERROR_FALLBACK,
                .init = "/sbin/init",
                .redirect = REDIRECT_FIRMWARE,
        };

        _cleanup_free_ char *buf = strdup(line ?: "");
        if (!buf)
                return -ENOMEM;

        char *p = buf;
        for (;;) {
                while (isspace((unsigned char) *p))
                        p++;
                if (!*p)
                        break;

                /* One token: quotes toggle, spaces outside quotes end it.
                 * Copy it in place without its quotes. */
                char *tok = p, *w = p;
                bool quoted = false;
                for (; *p; p++) {
                        if (*p == '"') {
                                quoted = !quoted;
                                continue;
                        }
                        if (!quoted && isspace((unsigned char) *p))
                                break;
                        *w++ = *p;
                }
                bool more = *p != 0;
                *w = 0;
                if (more)
                        p++;

                /* "--": the rest belongs to the root's init. */
                if (streq(tok, "--"))
                        break;

                char *eq = strchr(tok, '=');
                if (eq)
                        *eq = 0;
                parse_one(&c, tok, eq ? eq + 1 : NULL, fn, u);
                if (!more)
                        break;
        }

        *ret = c;
        return 0;
}

int uki_pin_parse(const char *text, struct uki_pin *ret, cmdline_complaint_fn fn, void *u) {
        struct uki_pin p = { .slot = _SLOT_INVALID };
        bool bad = false;

        _cleanup_free_ char *buf = strdup(text ?: "");
        if (!buf)
                return -ENOMEM;
        for (char *save = NULL, *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                size_t n = strlen(line);
                while (n > 0 && isspace((unsigned char) line[n - 1]))
                        line[--n] = 0;
                while (isspace((unsigned char) *line))
                        line++;
                if (!*line || *line == '#')
                        continue;
                char *eq = strchr(line, '=');
                const char *why = NULL;
                if (eq)
                        *eq = 0;
                if (eq && streq(line, "roothash")) {
                        if (p.roothash[0])
                                why = "names a second root hash";
                        else if (!parse_roothash(eq + 1, p.roothash))
                                why = "must be 40 to 128 hex digits";
                } else if (eq && streq(line, "slot")) {
                        Slot s = slot_from_string(eq + 1);
                        if (s < 0)
                                why = "must be A or B";
                        else if (p.slot >= 0 && p.slot != s)
                                why = "names a second slot";
                        else
                                p.slot = s;
                } else
                        why = "is not roothash= or slot=";
                if (why) {
                        bad = true;
                        if (fn) {
                                char param[160];
                                (void) snprintf(param, sizeof(param), "pin: %s%s%.120s", line, eq ? "=" : "",
                                                eq ? eq + 1 : "");
                                fn(u, param, why);
                        }
                }
        }
        if (!bad && !p.roothash[0]) {
                bad = true;
                if (fn)
                        fn(u, "pin", "holds no roothash= line");
        }
        if (bad)
                return -EBADMSG;
        *ret = p;
        return 0;
}

void cmdline_apply_pin(struct cmdline *c, const struct uki_pin *pin, cmdline_complaint_fn fn, void *u) {
        if (c->roothash[0] && !streq(c->roothash, pin->roothash))
                complain(fn, u, "ab.roothash", c->roothash,
                         "differs from the root hash this UKI pins in " UKI_PIN_PATH "; ignoring it: a boot entry "
                         "cannot change what root is trusted");
        memcpy(c->roothash, pin->roothash, sizeof(c->roothash));
        if (pin->slot >= 0) {
                if (c->slot >= 0 && c->slot != pin->slot)
                        complain(fn, u, "ab.slot", slot_to_string(c->slot),
                                 "differs from the slot this UKI is built for (" UKI_PIN_PATH "); ignoring it");
                c->slot = pin->slot;
        }
}
