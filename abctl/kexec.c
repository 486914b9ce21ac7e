/* SPDX-License-Identifier: MIT */
/* abctl reboot [--kexec], and the check mark-good makes after a kexec boot.
 *
 * A kexec starts a slot's kernel without the firmware: no POST, but also no
 * proof that the firmware can start that slot. So a slot started by kexec
 * is committed only when the firmware path is there (Talos issue #14146: a
 * node healthy after a kexec that could not cold-boot): its Boot#### entry
 * exists and names \EFI\abswitch\boot-X.efi on the ESP, and that file's
 * bytes are the UKI that was kexec'd (the SHA-256 the init recorded from
 * ab.kexec=). */

#define _GNU_SOURCE 1
#include <fcntl.h>
#include <linux/reboot.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "../common/log.h"
#include "../efi/kexec.h"

#include "abctl.h"
#include "esp.h"

#ifdef ABCTL_TEST_HOOKS
/* Host tests only (the glibc build in build/powercut): a kexec or a reboot
 * of the machine running the tests is not an option. ABCTL_TEST_KEXEC=ok or
 * an errno name (EPERM, EKEYREJECTED, ...) answers for kexec_file_load;
 * ABCTL_TEST_REBOOT=FILE receives "kexec" or "firmware" instead of a reboot. */
static int test_kexec_load(void) {
        static const struct {
                const char *name;
                int err;
        } errs[] = { { "EPERM", EPERM }, { "EKEYREJECTED", EKEYREJECTED }, { "ENOKEY", ENOKEY },
                     { "ENOSYS", ENOSYS }, { "EBUSY", EBUSY } };
        const char *v = getenv("ABCTL_TEST_KEXEC");
        if (!v)
                return 1; /* not hooked */
        if (streq(v, "ok"))
                return 0;
        for (size_t i = 0; i < ELEMENTSOF(errs); i++)
                if (streq(v, errs[i].name))
                        return -errs[i].err;
        return -EINVAL;
}
#endif

static int load(const struct uki_kexec_parts *p) {
#ifdef ABCTL_TEST_HOOKS
        int h = test_kexec_load();
        if (h <= 0)
                return h;
#endif
        return uki_kexec_load(p);
}

/* Reboots through PID 1 when systemd runs (it stops the services and
 * unmounts first; "systemctl kexec" starts the kernel loaded here), else
 * reboot(2) after sync. Returns only on failure. */
static int do_reboot(bool kexec) {
#ifdef ABCTL_TEST_HOOKS
        const char *hook = getenv("ABCTL_TEST_REBOOT");
        if (hook) {
                FILE *f = fopen(hook, "we");
                if (!f)
                        return -errno;
                fprintf(f, "%s\n", kexec ? "kexec" : "firmware");
                fclose(f);
                exit(0);
        }
#endif
        if (access("/run/systemd/system", F_OK) == 0) {
                const char *verb = kexec ? "kexec" : "reboot";
                log_info("Asking systemd to %s", verb);
                pid_t pid = fork();
                if (pid < 0)
                        return log_error_errno(-errno, "Cannot start systemctl %s: %m", verb);
                if (pid == 0) {
                        execlp("systemctl", "systemctl", verb, (char *) NULL);
                        _exit(127);
                }
                int st;
                while (waitpid(pid, &st, 0) < 0)
                        if (errno != EINTR)
                                return log_error_errno(-errno, "Waiting for systemctl %s failed: %m", verb);
                if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
                        /* systemd shuts down now; nothing more for us to do. */
                        exit(0);
                }
                return log_error_errno(-EIO, "systemctl %s failed (exit status %d)", verb,
                                       WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        }
        sync();
        if (reboot(kexec ? LINUX_REBOOT_CMD_KEXEC : LINUX_REBOOT_CMD_RESTART) < 0)
                return log_error_errno(-errno, "reboot() failed: %m");
        return 0;
}

/* The slot a reboot starts: BootNext's, else the first slot in BootOrder. */
static Slot next_slot(const struct ctx *c, const char **ret_how) {
        for (int s = 0; s < _SLOT_MAX; s++)
                if (slots_view_boot_next_is(&c->view, s)) {
                        *ret_how = "armed in BootNext";
                        return s;
                }
        for (size_t i = 0; i < c->view.vars.order_len; i++)
                for (int s = 0; s < _SLOT_MAX; s++)
                        if (slots_view_entry(&c->view, s) == c->view.vars.order[i]) {
                                *ret_how = "first in BootOrder";
                                return s;
                        }
        return _SLOT_INVALID;
}

int abctl_reboot(struct ctx *c, bool kexec) {
        _cleanup_(esp_close) struct esp esp = {};
        _cleanup_(uki_image_done) struct uki_image img = {};
        _cleanup_(uki_kexec_parts_done) struct uki_kexec_parts parts = {};
        _cleanup_free_ char *path = NULL;
        char sha[KEXEC_SHA256_HEX + 1], extra[160];
        const char *how = NULL, *missing = NULL;
        int r;

        if (!kexec) {
                log_info("Rebooting through the firmware");
                return do_reboot(false);
        }
        if (!c->efi)
                return log_error_errno(-ENOENT, "Refusing to kexec: no EFI variables in %s, so no slot is armed. "
                                       "Nothing was changed; reboot without --kexec.", c->efivars);
        /* The slot to start and its UKI, from the state as it is under the
         * lock (after any install, which main() waited for): a rollback or
         * set-active another operator commits meanwhile is what starts, not
         * what this command read before it waited. Held until this process
         * ends: under systemd that is when systemctl kexec has queued the
         * shutdown, so a state change committed during the shutdown does
         * not change the kernel already loaded; the init it starts then
         * follows the protocol from the state as it finds it (a slot made
         * unbootable meanwhile falls back, protocol.c), as after a firmware
         * reboot. */
        _cleanup_close_ int lock = abctl_lock_state(c);
        if (lock < 0)
                return lock;
        Slot s = next_slot(c, &how);
        if (s < 0)
                return log_error_errno(-ENOENT, "Refusing to kexec: no slot is armed (BootNext names no slot's boot "
                                       "entry and BootOrder lists none). Install an update (abctl install) or arm "
                                       "a slot (abctl set-active) first. Nothing was changed.");
        if (!c->view.layout.slot[s].present || c->view.st[s].priority == 0)
                return log_error_errno(-ESTALE, "Refusing to kexec slot %s (%s): it is %s. Nothing was changed.",
                                       slot_to_string(s), how,
                                       c->view.layout.slot[s].present ? "failed (priority 0)" : "not on this disk");
        r = esp_open(c, &esp);
        if (r < 0)
                return log_error_errno(r, "Refusing to kexec slot %s: its UKI is on the ESP, which is not there "
                                       "(see above). Nothing was changed.", slot_to_string(s));
        r = esp_uki_path(esp.dir, s, &path);
        if (r < 0)
                return log_error_errno(r, "Cannot name slot %s's UKI on %s: %m", slot_to_string(s), esp.dir);
        r = uki_image_read(path, &img);
        if (r < 0)
                return log_error_errno(r, "Refusing to kexec slot %s: cannot read its UKI %s: %m. Nothing was "
                                       "changed.", slot_to_string(s), path);
        r = uki_kexec_parts(&img, NULL, &parts, &missing);
        if (r == -ENOEXEC)
                return log_error_errno(r, "Refusing to kexec slot %s: its UKI %s has no %s section (no kernel), so "
                                       "neither kexec nor the firmware can start it. Reinstall the slot. Nothing "
                                       "was changed.", slot_to_string(s), path, missing);
        if (r < 0)
                return log_error_errno(r, "Refusing to kexec slot %s: %s is not a valid UKI (%m). Nothing was "
                                       "changed.", slot_to_string(s), path);
        uki_image_sha256_hex(&img, sha);
        /* The stub's variables still name the UKI the firmware started:
         * ab.slot= names the new one, ab.kexec= says how it started. */
        (void) snprintf(extra, sizeof(extra), "ab.slot=%s ab.kexec=%s", slot_to_string(s), sha);
        uki_kexec_parts_done(&parts);
        r = uki_kexec_parts(&img, extra, &parts, &missing);
        if (r < 0)
                return log_error_errno(r, "Cannot build the command line for %s: %m", path);

        r = load(&parts);
        uki_image_done(&img);
        esp_close(&esp);
        if (r < 0) {
                /* One line: why, and what happens instead. */
                log_warning("kexec of slot %s refused: kexec_file_load: %s (%s); rebooting through the firmware "
                            "instead, which starts slot %s (%s)", slot_to_string(s), uki_kexec_strerror(r),
                            strerror(-r), slot_to_string(s), how);
                return do_reboot(false);
        }
        printf("Loaded slot %s's UKI %s (%s, sha256 %s) for kexec; starting it now\n", slot_to_string(s),
               slot_uki_path(s), how, sha);
        fflush(stdout);
        r = do_reboot(true);
        (void) uki_kexec_unload();
        return r;
}

int abctl_kexec_check_commit(struct ctx *c) {
        _cleanup_(esp_close) struct esp esp = {};
        _cleanup_(uki_image_done) struct uki_image img = {};
        _cleanup_free_ char *path = NULL;
        char sha[KEXEC_SHA256_HEX + 1];
        const char *name = slot_to_string(c->running);
        int r;

        if (!c->record_kexec[0])
                return 0; /* started by the firmware: that path is proven */
        if (!c->efi)
                return log_error_errno(-ENOENT, "Refusing to commit slot %s: it was started by kexec and there are "
                                       "no EFI variables to prove the firmware can start it. Nothing was changed.",
                                       name);
        /* The file first: the entry is worth nothing if it starts other bytes. */
        r = esp_open(c, &esp);
        if (r < 0)
                return log_error_errno(r, "Refusing to commit slot %s: it was started by kexec, and the ESP that "
                                       "must hold its UKI is not there (see above). Nothing was changed.", name);
        r = esp_uki_path(esp.dir, c->running, &path);
        if (r < 0)
                return log_error_errno(r, "Cannot name slot %s's UKI on %s: %m", name, esp.dir);
        r = uki_image_read(path, &img);
        if (r < 0)
                return log_error_errno(r, "Refusing to commit slot %s: it was started by kexec from a UKI with "
                                       "sha256 %s, and %s cannot be read (%m), so the firmware could not start it. "
                                       "Nothing was changed; reinstall the slot (abctl install).",
                                       name, c->record_kexec, path);
        uki_image_sha256_hex(&img, sha);
        if (!streq(sha, c->record_kexec))
                return log_error_errno(-ESTALE, "Refusing to commit slot %s: it was started by kexec from a UKI with "
                                       "sha256 %s, but %s on the ESP has sha256 %s: a cold boot would start other "
                                       "bytes than the ones proven healthy. Nothing was changed; reinstall the "
                                       "slot (abctl install), or reboot through the firmware (abctl reboot) and "
                                       "commit from there.", name, c->record_kexec, path, sha);
        uki_image_done(&img);
        esp_close(&esp);

        /* Then the entry that starts that file. */
        if (slots_view_entry(&c->view, c->running) < 0) {
                log_notice("Slot %s was started by kexec and has no boot entry for %s: creating it before "
                           "committing", name, slot_uki_path(c->running));
                r = abctl_repair_entries(c);
                if (r < 0)
                        return r;
                if (slots_view_entry(&c->view, c->running) < 0)
                        return log_error_errno(-ENOENT, "Refusing to commit slot %s: it was started by kexec and "
                                               "its boot entry for %s could not be created (see above), so the "
                                               "firmware cannot start it. Nothing was committed.",
                                               name, slot_uki_path(c->running));
        }
        log_info("Slot %s was started by kexec: its boot entry Boot%04X names %s, whose sha256 is the one kexec'd",
                 name, (unsigned) slots_view_entry(&c->view, c->running), slot_uki_path(c->running));
        return 0;
}
