/* SPDX-License-Identifier: MIT */
/* The damage record (damage.h): pure parsing and formatting, and its one
 * EFI variable per slot through efivar.c. */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/macro.h"
#include "damage.h"
#include "efi.h"

#define DAMAGE_MAGIC "abswitch-damage 1"

static const char *const kind_names[_DAMAGE_KIND_MAX] = {
        [DAMAGE_DATA] = "data",
        [DAMAGE_HASH] = "hash",
};

const char *damage_kind_to_string(DamageKind k) {
        return k >= 0 && k < _DAMAGE_KIND_MAX ? kind_names[k] : "invalid";
}

const char *damage_var_name(Slot s) {
        return s == SLOT_B ? "AbswitchDamageB" : "AbswitchDamageA";
}

int damage_add(struct slot_damage *d, DamageKind kind, uint64_t block) {
        for (unsigned i = 0; i < d->n; i++)
                if (d->blocks[i].kind == kind && d->blocks[i].block == block)
                        return 0;
        if (d->n >= DAMAGE_BLOCKS_MAX)
                return -E2BIG;
        d->blocks[d->n++] = (struct damage_block) { .kind = kind, .block = block };
        return 1;
}

int damage_format(const struct slot_damage *d, char *buf, size_t size) {
        size_t len = 0;
        int k;

        if (d->slot < 0 || d->slot >= _SLOT_MAX)
                return -EINVAL;
        k = snprintf(buf, size, DAMAGE_MAGIC "\nslot=%s\nroothash=%s\ntime=%" PRIu64 "\n", slot_to_string(d->slot),
                     d->roothash, d->time);
        if (k < 0 || (size_t) k >= size)
                return -ENOBUFS;
        len = (size_t) k;
        for (unsigned i = 0; i < d->n; i++) {
                k = snprintf(buf + len, size - len, "%s=%" PRIu64 "\n", damage_kind_to_string(d->blocks[i].kind),
                             d->blocks[i].block);
                if (k < 0 || (size_t) k >= size - len)
                        return -ENOBUFS;
                len += (size_t) k;
        }
        return (int) len;
}

/* Plain decimal digits only, no sign, no overflow. */
static bool parse_u64(const char *s, uint64_t *ret) {
        uint64_t v = 0;
        if (!*s)
                return false;
        for (; *s; s++) {
                if (*s < '0' || *s > '9' || v > (UINT64_MAX - (uint64_t) (*s - '0')) / 10)
                        return false;
                v = v * 10 + (uint64_t) (*s - '0');
        }
        *ret = v;
        return true;
}

#define WHY(...) ((void) snprintf(why, why_size, __VA_ARGS__), -EBADMSG)

int damage_parse(const char *text, size_t size, struct slot_damage *ret, char *why, size_t why_size) {
        struct slot_damage d = { .slot = _SLOT_INVALID };
        char buf[DAMAGE_TEXT_MAX + 1], *save = NULL;
        bool magic = false, have_time = false;

        if (size > DAMAGE_TEXT_MAX)
                return WHY("it has %zu bytes, more than a damage record's %u", size, DAMAGE_TEXT_MAX);
        if (memchr(text, 0, size))
                size = strnlen(text, size);
        memcpy(buf, text, size);
        buf[size] = 0;
        for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char *eq = strchr(line, '=');
                uint64_t v;
                if (!magic) {
                        if (!streq(line, DAMAGE_MAGIC))
                                return WHY("it does not start with '" DAMAGE_MAGIC "'");
                        magic = true;
                        continue;
                }
                if (!eq)
                        return WHY("line '%.40s' is not KEY=VALUE", line);
                *eq = 0;
                const char *key = line, *value = eq + 1;
                if (streq(key, "slot")) {
                        d.slot = slot_from_string(value);
                        if (d.slot < 0)
                                return WHY("slot '%.8s' is neither A nor B", value);
                } else if (streq(key, "roothash")) {
                        size_t n = strlen(value);
                        if (n < 2 || n > ROOTHASH_HEX_MAX || n % 2 || strspn(value, "0123456789abcdef") != n)
                                return WHY("roothash is not lower-case hex of at most %d digits", ROOTHASH_HEX_MAX);
                        memcpy(d.roothash, value, n + 1);
                } else if (streq(key, "time")) {
                        if (!parse_u64(value, &d.time))
                                return WHY("time '%.24s' is not a number", value);
                        have_time = true;
                } else if (streq(key, "data") || streq(key, "hash")) {
                        if (!parse_u64(value, &v))
                                return WHY("%s block '%.24s' is not a number", key, value);
                        if (damage_add(&d, streq(key, "data") ? DAMAGE_DATA : DAMAGE_HASH, v) == -E2BIG)
                                return WHY("it lists more than %u blocks", DAMAGE_BLOCKS_MAX);
                } else
                        return WHY("unknown key '%.24s'", key);
        }
        if (!magic)
                return WHY("it is empty");
        if (d.slot < 0 || !d.roothash[0] || !have_time)
                return WHY("it lacks %s", d.slot < 0 ? "slot=" : !d.roothash[0] ? "roothash=" : "time=");
        *ret = d;
        return 0;
}

int damage_parse_uevent(const void *msg, size_t size, unsigned major, unsigned minor, DamageKind *ret_kind,
                        uint64_t *ret_block) {
        const char *p = msg, *end = p + size;
        bool change = false, disk = false;
        uint64_t maj = UINT64_MAX, min = UINT64_MAX, block = 0;
        int kind = -1;

        /* Each field NUL-terminated within size: the kernel ends every one
         * with NUL; anything else is not from the kernel. */
        while (p < end) {
                const char *nul = memchr(p, 0, (size_t) (end - p));
                if (!nul)
                        return 0;
                if (streq(p, "ACTION=change"))
                        change = true;
                else if (streq(p, "SUBSYSTEM=block"))
                        disk = true;
                else if (startswith(p, "MAJOR="))
                        (void) parse_u64(p + 6, &maj);
                else if (startswith(p, "MINOR="))
                        (void) parse_u64(p + 6, &min);
                else if (startswith(p, "DM_VERITY_ERR_BLOCK_NR=")) {
                        const char *v = p + strlen("DM_VERITY_ERR_BLOCK_NR="), *comma = strchr(v, ',');
                        char t[4];
                        if (!comma || comma - v < 1 || comma - v > 2)
                                return 0;
                        memcpy(t, v, (size_t) (comma - v));
                        t[comma - v] = 0;
                        uint64_t k;
                        if (!parse_u64(t, &k) || k >= _DAMAGE_KIND_MAX || !parse_u64(comma + 1, &block))
                                return 0;
                        kind = (int) k;
                }
                p = nul + 1;
        }
        if (!change || !disk || kind < 0 || maj != major || min != minor)
                return 0;
        *ret_kind = (DamageKind) kind;
        *ret_block = block;
        return 1;
}

int damage_read(const char *dir, Slot s, struct slot_damage *ret, char *why, size_t why_size) {
        _cleanup_free_ void *v = NULL;
        size_t size;
        int r = efi_var_read(dir, damage_var_name(s), EFI_ABSWITCH_GUID, NULL, &v, &size);
        if (r < 0)
                return r;
        r = damage_parse(v, size, ret, why, why_size);
        if (r >= 0 && ret->slot != s)
                return WHY("it names slot %s, not %s", slot_to_string(ret->slot), slot_to_string(s));
        return r;
}

int damage_write(const char *dir, const struct slot_damage *d) {
        char text[DAMAGE_TEXT_MAX];
        int n = damage_format(d, text, sizeof(text));
        if (n < 0)
                return n;
        return efi_var_write(dir, damage_var_name(d->slot), EFI_ABSWITCH_GUID, EFI_VARIABLE_NV_BS_RT, text,
                             (size_t) n);
}

int damage_clear(const char *dir, Slot s) {
        return efi_var_delete(dir, damage_var_name(s), EFI_ABSWITCH_GUID);
}
