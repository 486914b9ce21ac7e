/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <stdio.h>

#include "../common/macro.h"
#include "slots.h"

static const char *const slot_names[_SLOT_MAX] = { "A", "B" };
static const char *const slot_lower[_SLOT_MAX] = { "a", "b" };

const char *slot_to_string(Slot s) {
        return s >= 0 && s < _SLOT_MAX ? slot_names[s] : "?";
}

const char *slot_to_lower(Slot s) {
        return s >= 0 && s < _SLOT_MAX ? slot_lower[s] : "?";
}

Slot slot_from_string(const char *s) {
        if (!s)
                return _SLOT_INVALID;
        if (strcasecmp(s, "a") == 0)
                return SLOT_A;
        if (strcasecmp(s, "b") == 0)
                return SLOT_B;
        return _SLOT_INVALID;
}

static const char *const source_names[_IDENTITY_MAX] = {
        [IDENTITY_CMDLINE] = "cmdline",
        [IDENTITY_STUB_IMAGE] = "stub-image-identifier",
        [IDENTITY_LOADER_IMAGE] = "loader-image-identifier",
        [IDENTITY_LOADER_ENTRY] = "loader-entry-selected",
        [IDENTITY_BOOT_CURRENT] = "boot-current",
        [IDENTITY_ROOT_HASH] = "root-hash",
        [IDENTITY_DEFAULT] = "default",
};

const char *identity_source_to_string(IdentitySource s) {
        return s >= 0 && s < _IDENTITY_MAX ? source_names[s] : "invalid";
}

IdentitySource identity_source_from_string(const char *s) {
        for (int i = 0; i < _IDENTITY_MAX; i++)
                if (s && streq(s, source_names[i]))
                        return i;
        return _IDENTITY_INVALID;
}

static const char *const verdict_names[_VERDICT_MAX] = {
        [VERDICT_NOT_CONSULTED] = "not-consulted",
        [VERDICT_ANSWERED] = "answered",
        [VERDICT_ABSENT] = "absent",
        [VERDICT_NO_SLOT] = "names-no-slot",
        [VERDICT_NAMES_LOADER] = "names-the-boot-loader",
        [VERDICT_DISABLED] = "disabled",
};

const char *identity_verdict_to_string(IdentityVerdict v) {
        return v < _VERDICT_MAX ? verdict_names[v] : "invalid";
}

static bool ends_with_ci(const char *s, size_t len, const char *suffix, size_t *ret_len) {
        size_t l = strlen(suffix);
        if (len < l || strncasecmp(s + len - l, suffix, l) != 0)
                return false;
        *ret_len = len - l;
        return true;
}

/* Strips "+LEFT" or "+LEFT-DONE" (systemd boot counting) from the end. */
static size_t strip_boot_counter(const char *s, size_t len) {
        size_t i = len;
        size_t digits = 0;

        while (i > 0 && isdigit((unsigned char) s[i - 1]))
                i--, digits++;
        if (digits > 0 && i > 0 && s[i - 1] == '-') {
                size_t j = i - 1, left = 0;
                while (j > 0 && isdigit((unsigned char) s[j - 1]))
                        j--, left++;
                if (left > 0 && j > 0 && s[j - 1] == '+')
                        return j - 1;
        }
        if (digits > 0 && i > 0 && s[i - 1] == '+')
                return i - 1;
        return len;
}

Slot slot_from_image_name(const char *path) {
        if (!path)
                return _SLOT_INVALID;

        const char *name = path;
        for (const char *p = path; *p; p++)
                if (*p == '\\' || *p == '/')
                        name = p + 1;

        size_t len = strlen(name), l;
        if (ends_with_ci(name, len, ".efi", &l) || ends_with_ci(name, len, ".conf", &l))
                len = l;
        len = strip_boot_counter(name, len);

        /* At least one character before "-a": "-a.efi" alone names nothing. */
        if (len < 3 || name[len - 2] != '-')
                return _SLOT_INVALID;
        switch (name[len - 1]) {
        case 'a': case 'A': return SLOT_A;
        case 'b': case 'B': return SLOT_B;
        default: return _SLOT_INVALID;
        }
}

static bool consult(const struct identity_facts *f, struct identity *r, IdentitySource src,
                    const char *value, IdentityVerdict absent_verdict) {
        if (!(f->sources & (1u << src))) {
                r->verdicts[src] = VERDICT_DISABLED;
                return false;
        }
        if (!value) {
                r->verdicts[src] = absent_verdict;
                return false;
        }
        Slot s = slot_from_image_name(value);
        if (s < 0) {
                r->verdicts[src] = VERDICT_NO_SLOT;
                return false;
        }
        r->verdicts[src] = VERDICT_ANSWERED;
        r->slot = s;
        r->source = src;
        r->value = value;
        return true;
}

void slot_identity_resolve(const struct identity_facts *f, struct identity *ret) {
        struct identity r = { .slot = SLOT_A, .source = IDENTITY_DEFAULT };

        /* Stop at the first source that answers; later ones stay NOT_CONSULTED. */
        if (!(f->sources & (1u << IDENTITY_CMDLINE)))
                r.verdicts[IDENTITY_CMDLINE] = VERDICT_DISABLED;
        else if (f->cmdline_slot < 0)
                r.verdicts[IDENTITY_CMDLINE] = VERDICT_ABSENT;
        else {
                r.verdicts[IDENTITY_CMDLINE] = VERDICT_ANSWERED;
                r.slot = f->cmdline_slot;
                r.source = IDENTITY_CMDLINE;
                r.value = slot_to_string(f->cmdline_slot);
                goto done;
        }

        if (consult(f, &r, IDENTITY_STUB_IMAGE, f->stub_image_identifier, VERDICT_ABSENT))
                goto done;

        /* The stub sets LoaderImageIdentifier only when nobody did before it.
         * Under a boot loader (which announces itself in LoaderInfo) the
         * variable names the loader, e.g. \EFI\systemd\systemd-bootx64.efi,
         * and says nothing about the UKI. */
        if (f->loader_info && f->loader_image_identifier &&
            (f->sources & (1u << IDENTITY_LOADER_IMAGE)))
                r.verdicts[IDENTITY_LOADER_IMAGE] = VERDICT_NAMES_LOADER;
        else if (consult(f, &r, IDENTITY_LOADER_IMAGE, f->loader_image_identifier, VERDICT_ABSENT))
                goto done;

        if (consult(f, &r, IDENTITY_LOADER_ENTRY, f->loader_entry_selected, VERDICT_ABSENT))
                goto done;

        if (f->boot_current < 0 && (f->sources & (1u << IDENTITY_BOOT_CURRENT)))
                r.verdicts[IDENTITY_BOOT_CURRENT] = VERDICT_ABSENT;
        else if (consult(f, &r, IDENTITY_BOOT_CURRENT, f->boot_current_path, VERDICT_NO_SLOT))
                goto done;

        if (!(f->sources & (1u << IDENTITY_ROOT_HASH)))
                r.verdicts[IDENTITY_ROOT_HASH] = VERDICT_DISABLED;
        else if (f->root_hash_slot < 0)
                r.verdicts[IDENTITY_ROOT_HASH] = VERDICT_ABSENT;
        else {
                r.verdicts[IDENTITY_ROOT_HASH] = VERDICT_ANSWERED;
                r.slot = f->root_hash_slot;
                r.source = IDENTITY_ROOT_HASH;
                r.value = slot_to_string(f->root_hash_slot);
                goto done;
        }

        r.verdicts[IDENTITY_DEFAULT] = VERDICT_ANSWERED;
done:
        *ret = r;
}

void slot_partition_labels(Slot s, char data[static 32], char hash[static 32]) {
        (void) snprintf(data, 32, "system-%s", slot_to_lower(s));
        (void) snprintf(hash, 32, "system-%s-verity", slot_to_lower(s));
}

const char *slot_uki_path(Slot s) {
        static const char *const paths[_SLOT_MAX] = { "\\EFI\\abswitch\\boot-a.efi", "\\EFI\\abswitch\\boot-b.efi" };
        return s >= 0 && s < _SLOT_MAX ? paths[s] : NULL;
}
