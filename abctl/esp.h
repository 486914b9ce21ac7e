/* SPDX-License-Identifier: MIT */
#pragma once

/* The ESP as abctl uses it (esp.c): found where it is mounted, or mounted
 * by us for the time one command needs it; the slots' UKIs on it
 * (EFI/abswitch/boot-a.efi, -b) and the removable-path copy
 * (EFI/BOOT/BOOTX64.EFI), each replaced through a temporary file. */

#include <stdint.h>

#include "abctl.h"

struct esp {
        const char *dir;        /* where the ESP is: --esp, /efi, ..., or our mount point */
        char *mountpoint;       /* ours, under /run/abswitch: unmounted and removed by esp_close */
};

/* An ESP that is already mounted (--esp, /efi, /boot/efi, /boot holding
 * EFI/abswitch); never mounts. NULL when there is none. */
const char *esp_find_mounted(const struct ctx *c);

/* The mounted ESP, or the layout's ESP partition mounted by us. -ENOENT
 * when there is none (logged as a warning with the reason). Release with
 * esp_close, best through _cleanup_(esp_close). */
int esp_open(const struct ctx *c, struct esp *ret);
void esp_close(struct esp *e);

/* The file name of slot s's UKI on the ESP at dir, and its temporary. */
int esp_uki_path(const char *dir, Slot s, char **ret);
int esp_temp_path(const char *dst, char **ret);

/* Removes the UKI temporaries an interrupted install left behind. Only
 * while holding the install lock: then they are no running install's. */
int esp_remove_stale(const char *dir);

/* The new file dst (size bytes) is written next to the old one and renamed
 * over it: the ESP must be writable and have room for a second copy. Says
 * why not. */
int esp_check_room(const char *dir, const char *dst, uint64_t size);

/* Renames the written and flushed tmp over dst and flushes the directory. */
int esp_put_in_place(const char *tmp, const char *dst);

/* Makes \EFI\BOOT\BOOTX64.EFI a copy of slot s's UKI (temporary file,
 * fsync, rename, fsync of the directory): the firmware's last resort
 * follows the slot that leads. Warns and leaves it when it cannot. */
void esp_update_removable(const struct ctx *c, Slot s);
