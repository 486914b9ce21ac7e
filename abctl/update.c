/* SPDX-License-Identifier: MIT */
/* abctl update: the update agent (update.h; README "Fleet operations").
 *
 * One run, as the timer starts it:
 *
 *   1. A reboot lock this machine took before its last reboot
 *      (STATE/fleetlock.json) is given back (FleetLock steady-state) once
 *      the running slot is committed: the new one after mark-good, or the
 *      old one after a fallback. While the running slot is still on trial,
 *      the run stops there: the lock stays held through the trial.
 *   2. The registry is asked which manifest the followed tag names now
 *      (written to STATE/update-check.json for abctl status).
 *   3. Equal to the running slot's origin digest: up to date. Otherwise,
 *      once the rollout admits this machine (rollout.c), it is installed
 *      into the other slot (install.c's pipeline, pinned to that digest).
 *   4. Only inside a maintenance window: the FleetLock lock is taken
 *      (retried with backoff for fleetlock-wait seconds; no lock, no
 *      reboot), recorded in STATE/fleetlock.json, and the reboot command
 *      runs.
 *
 * --check runs 2-4 as questions only: nothing is installed, locked,
 * written or rebooted. --at evaluates the rollout and the windows at
 * another time than now. */

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/param.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include <json-c/json.h>

#include "../common/io.h"
#include "../common/log.h"
#include "../common/macro.h"
#include "../efi/uki.h"
#include "abctl.h"
#include "esp.h"
#include "ocifetch.h"
#include "origin.h"
#include "update.h"

#define LOCK_FILE  "fleetlock.json"
#define CHECK_FILE "update-check.json"
#define STATE_FILE_MAX (64u * 1024u)
#define BACKOFF_MAX_S 30u

static int config_load(const char *path, struct update_config *ret) {
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        char why[600];
        int r = read_file_bounded(path, UPDATE_CONF_MAX, &text, &len);
        if (r == -ENOENT)
                return log_error_errno(r, "%s does not exist: write the tag to follow into it, e.g. "
                                       "'reference = registry.example.com/fleet/os:stable' (README, \"Fleet operations\"), "
                                       "or pass --config FILE", path);
        if (r < 0)
                return log_error_errno(r, "Cannot read %s: %m", path);
        r = update_config_parse(text, len, ret, why, sizeof(why));
        if (r < 0)
                return log_error_errno(r, "%s: %s. Nothing was changed.", path, why);
        return 0;
}

/* "2026-12-02T04:40:00Z", or in local time with its offset. */
static const char *fmt_time(time_t t, bool local, char buf[static 40]) {
        struct tm tm;
        if (!local) {
                if (!gmtime_r(&t, &tm) || strftime(buf, 40, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                        (void) snprintf(buf, 40, "?");
                return buf;
        }
        char z[8];
        if (!localtime_r(&t, &tm) || strftime(buf, 40, "%Y-%m-%dT%H:%M:%S", &tm) == 0 ||
            strftime(z, sizeof(z), "%z", &tm) != 5) {
                (void) snprintf(buf, 40, "?");
                return buf;
        }
        (void) snprintf(buf + strlen(buf), 40 - strlen(buf), "%.3s:%.2s", z, z + 3);
        return buf;
}

/* Writes text to dir/name (write_file_atomic), making dir first. */
static int state_write(const char *dir, const char *name, const char *text) {
        _cleanup_free_ char *path = NULL;
        int r = abctl_path(&path, "%s/%s", dir, name);
        if (r < 0)
                return r;
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return -errno;
        return write_file_atomic(path, text, strlen(text));
}

static json_object *state_read(const char *dir, const char *name) {
        _cleanup_free_ char *path = NULL, *text = NULL;
        size_t len = 0;
        if (abctl_path(&path, "%s/%s", dir, name) < 0 || read_file_bounded(path, STATE_FILE_MAX, &text, &len) < 0)
                return NULL;
        json_object *o = json_tokener_parse(text);
        if (o && !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

static const char *jstr(json_object *o, const char *key) {
        json_object *v;
        if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

static void json_putp(json_object **o) {
        json_object_put(*o);
}

/* ---- what the slots hold ---------------------------------------------------- */

struct slots_origin {
        struct slot_origin o[_SLOT_MAX];
        bool has[_SLOT_MAX];
};

static void read_origins(const struct ctx *c, struct slots_origin *ret) {
        *ret = (struct slots_origin) {};
        const char *esp = esp_find_mounted(c);
        for (int s = 0; esp && s < _SLOT_MAX; s++) {
                _cleanup_free_ char *path = NULL;
                struct uki_info info = {};
                if (esp_uki_path(esp, s, &path) >= 0)
                        (void) uki_read_info(path, &info);
                ret->has[s] = info.roothash[0] && origin_read(esp, s, info.roothash, &ret->o[s]) >= 0;
        }
}

static bool committed(const struct ctx *c, Slot s) {
        return c->view.st[s].successful && c->view.st[s].priority > 0;
}

static bool on_trial(const struct ctx *c, Slot s) {
        struct slot_state st = c->view.st[s];
        return !st.successful && st.priority > 0 && (st.tries > 0 || st.armed);
}

static const char *digest_of(const struct slots_origin *so, Slot s) {
        return so->has[s] && so->o[s].digest[0] ? so->o[s].digest : NULL;
}

/* ---- the machine's ids ---------------------------------------------------------- */

static int machine_ids(const struct update_config *cfg, char machine_id[static 33], char lock_id[static 33]) {
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r = read_file_bounded(cfg->machine_id_file, 4096, &text, &len);
        if (r < 0)
                return log_error_errno(r, "Cannot read the machine id from %s: %m. It gives this machine its place "
                                       "in staged rollouts and its FleetLock id (systemd-machine-id-setup makes it)",
                                       cfg->machine_id_file);
        if (update_machine_id_parse(text, len, machine_id) < 0)
                return log_error_errno(-EINVAL, "%s holds no machine id (32 hex digits; 'uninitialized' until the "
                                       "first boot completes): systemd-machine-id-setup makes one", cfg->machine_id_file);
        r = update_fleetlock_id(machine_id, lock_id);
        if (r < 0)
                return log_error_errno(r, "Cannot derive this machine's FleetLock id: %m");
        return 0;
}

/* ---- FleetLock, with retries ------------------------------------------------------ */

/* Asks until the server says yes or fleetlock-wait seconds have passed,
 * waiting 1, 2, 4 ... 30 s between attempts. *ret_unsure (may be NULL):
 * whether the server may have done it all the same (the last answer it
 * gave, if any, came before a request whose answer was lost). */
static int fleetlock_until(const struct update_config *cfg, FleetLockOp op, const char *id, bool *ret_unsure) {
        const char *what = op == FLEETLOCK_PRE_REBOOT ? "take the reboot lock" : "give the reboot lock back";
        uint64_t deadline = now_monotonic_ms() + (uint64_t) cfg->fleetlock_wait * 1000;
        unsigned backoff = 1, attempts = 0;
        bool unsure = false;
        char why[700];
        for (;;) {
                attempts++;
                int r = fleetlock_request(cfg, op, id, why, sizeof(why));
                /* A lost answer leaves it open; an answer settles it (the
                 * protocol's lock is recursive: 200 to its holder again). */
                if (r == -EHOSTUNREACH)
                        unsure = true;
                else if (r != -ECONNREFUSED)
                        unsure = false;
                if (ret_unsure)
                        *ret_unsure = unsure;
                if (r >= 0) {
                        log_info("FleetLock: %s (group %s, id %s): done after %u attempt(s)",
                                 op == FLEETLOCK_PRE_REBOOT ? "took the reboot lock" : "gave the reboot lock back",
                                 cfg->fleetlock_group, id, attempts);
                        return 0;
                }
                bool down = r == -EHOSTUNREACH || r == -ECONNREFUSED;
                uint64_t t = now_monotonic_ms();
                if (t >= deadline)
                        return log_error_errno(down ? -EHOSTUNREACH : -EBUSY,
                                               "FleetLock: could not %s after %u attempts in %u s (fleetlock-wait): %s%s",
                                               what, attempts, cfg->fleetlock_wait, why,
                                               down ? " (the server does not answer)" : "");
                unsigned wait = (unsigned) MIN((uint64_t) backoff * 1000, deadline - t);
                log_info("FleetLock: cannot %s yet: %s; asking again in %.1f s", what, why, wait / 1000.0);
                (void) usleep(wait * 1000u);
                backoff = MIN(backoff * 2, BACKOFF_MAX_S);
        }
}

static int run_reboot(const char *cmd) {
        (void) fflush(stdout);
        (void) fflush(stderr);
        pid_t pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                execl("/bin/sh", "sh", "-c", cmd, (char *) NULL);
                _exit(127);
        }
        int status;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -ECHILD;
}

/* ---- the run -------------------------------------------------------------------------- */

struct agent {
        struct ctx *c;
        struct update_config cfg;
        bool check;
        time_t now;
        char machine_id[33], lock_id[33];
        struct slots_origin so;
        char available[OCI_DIGEST_MAX + 1];
        struct rollout rollout;
        double wariness;
        json_object *report;
};

static void say(struct agent *a, const char *key, const char *fmt, ...) _printf_(3, 4);
static void say(struct agent *a, const char *key, const char *fmt, ...) {
        char line[1200];
        va_list ap;
        va_start(ap, fmt);
        (void) vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        if (a->c->json)
                json_object_object_add(a->report, key, json_object_new_string(line));
        else
                printf("%s\n", line);
}

/* STATE/fleetlock.json: the lock asked for (before the request) or taken
 * (after the server's yes), for the run after the reboot to give back. */
static int lock_record(struct agent *a, Slot t, const char *what) {
        char tb[40];
        _cleanup_(json_putp) json_object *l = json_object_new_object();
        if (!l)
                return -ENOMEM;
        json_object_object_add(l, what, json_object_new_string(fmt_time(time(NULL), false, tb)));
        json_object_object_add(l, "id", json_object_new_string(a->lock_id));
        json_object_object_add(l, "group", json_object_new_string(a->cfg.fleetlock_group));
        json_object_object_add(l, "url", json_object_new_string(a->cfg.fleetlock_url));
        json_object_object_add(l, "slot", json_object_new_string(slot_to_string(t)));
        json_object_object_add(l, "digest", json_object_new_string(a->available));
        return state_write(a->cfg.state_dir, LOCK_FILE,
                           json_object_to_json_string_ext(l, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
}

static int lock_forget(struct agent *a) {
        _cleanup_free_ char *path = NULL;
        int r = abctl_path(&path, "%s/" LOCK_FILE, a->cfg.state_dir);
        if (r >= 0 && unlink(path) < 0 && errno != ENOENT)
                r = log_error_errno(-errno, "Cannot remove %s: %m", path);
        return r;
}

/* Step 1: a lock held from before the last reboot. >0: the run stops here. */
static int settle_lock(struct agent *a) {
        _cleanup_(json_putp) json_object *held = state_read(a->cfg.state_dir, LOCK_FILE);
        char t[40];
        if (!held)
                return 0;
        const char *since = jstr(held, "taken") ?: jstr(held, "asked");
        json_object_object_add(a->report, "lock_held_since", json_object_new_string(strempty(since)));
        if (!committed(a->c, a->c->running)) {
                say(a, "message", "Slot %s is on trial: the reboot lock taken at %s stays held until it is "
                    "committed (abctl mark-good) or the machine falls back", slot_to_string(a->c->running),
                    strempty(since));
                return 1;
        }
        if (a->check) {
                say(a, "lock", "Would give back the reboot lock taken at %s: slot %s is committed",
                    strempty(since), slot_to_string(a->c->running));
                return 0;
        }
        if (!a->cfg.fleetlock_url[0])
                log_warning("A reboot lock is recorded (%s/" LOCK_FILE ") but update.conf names no fleetlock-url "
                            "any more: forgetting it", a->cfg.state_dir);
        else {
                int r = fleetlock_until(&a->cfg, FLEETLOCK_STEADY_STATE, a->lock_id, NULL);
                if (r < 0)
                        return log_error_errno(r, "Keeping the record of the reboot lock; the next run gives it back");
        }
        int r = lock_forget(a);
        if (r < 0)
                return r;
        say(a, "lock", "Gave back the reboot lock taken at %s: slot %s is committed (%s)", strempty(since),
            slot_to_string(a->c->running), fmt_time(a->now, false, t));
        return 0;
}

/* The registry options of this run: update.conf's, with the command line's
 * applied over them (abctl_update). */
static struct oci_options registry_options(const struct agent *a) {
        return (struct oci_options) { .ca = a->cfg.ca[0] ? a->cfg.ca : NULL, .plain_http = a->cfg.plain_http,
                                      .timeout_sec = a->cfg.timeout,
                                      .authfile = a->cfg.authfile[0] ? a->cfg.authfile : NULL };
}

/* Step 2: what the tag names now, and the manifest's rollout. */
static int resolve(struct agent *a) {
        struct oci_options o = registry_options(a);
        struct oci_source src = {};
        struct oci_manifest m;
        struct oci_ref ref;
        _cleanup_free_ char *json = NULL;
        size_t len = 0;
        char why[400];
        int r = oci_ref_parse(a->cfg.reference, &ref, why, sizeof(why));
        if (r < 0)
                return log_error_errno(r, "reference '%s' in update.conf: %s", a->cfg.reference, why);
        if (!ref.tag[0] || ref.digest[0])
                return log_error_errno(-EINVAL, "reference '%s' in update.conf names no tag: write HOST/REPO:TAG",
                                       a->cfg.reference);
        r = oci_source_open(&src, &ref, &o);
        if (r >= 0)
                r = oci_resolve(&src, &m, a->available);
        if (r >= 0)
                r = oci_fetch_manifest(&src, a->available, &json, &len);
        oci_source_close(&src);
        if (r < 0)
                return log_error_errno(r, "Cannot tell what %s names now (see above); nothing was changed", a->cfg.reference);
        r = rollout_from_manifest(json, len, &a->rollout, why, sizeof(why));
        if (r < 0)
                return log_error_errno(r, "Image %s: %s. Not installing it; nothing was changed", a->available, why);
        r = rollout_wariness(a->machine_id, a->available, &a->wariness);
        if (r < 0)
                return log_error_errno(r, "Cannot compute this machine's rollout wariness: %m");
        return 0;
}

static void report_check(struct agent *a) {
        char t[40];
        _cleanup_(json_putp) json_object *o = json_object_new_object();
        json_object_object_add(o, "checked", json_object_new_string(fmt_time(time(NULL), false, t)));
        json_object_object_add(o, "reference", json_object_new_string(a->cfg.reference));
        json_object_object_add(o, "available", json_object_new_string(a->available));
        if (a->rollout.staged) {
                char at[40];
                json_object_object_add(o, "admitted_at",
                                       json_object_new_string(fmt_time(rollout_admitted_at(&a->rollout, a->wariness), false, at)));
        }
        int r = state_write(a->cfg.state_dir, CHECK_FILE,
                            json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
        if (r < 0)
                log_warning_errno(r, "Cannot write %s/" CHECK_FILE " (what abctl status shows): %m", a->cfg.state_dir);
}

/* Step 4: reboot into slot t, inside a window and under the lock. */
static int reboot_step(struct agent *a, Slot t, bool installed_now) {
        unsigned minute = update_minute_of_week(a->now, a->cfg.local_time), wait = 0, left = 0;
        bool inside = update_windows_inside(a->cfg.windows, a->cfg.n_windows, minute);
        time_t base = a->now - a->now % 60;
        char tb[40];

        json_object_object_add(a->report, "inside_window", json_object_new_boolean(inside));
        if (!inside && update_windows_next_open(a->cfg.windows, a->cfg.n_windows, minute, &wait) >= 0) {
                const char *when = fmt_time(base + (time_t) wait * 60, a->cfg.local_time, tb);
                json_object_object_add(a->report, "next_window", json_object_new_string(when));
                json_object_object_add(a->report, "action", json_object_new_string(installed_now ? "install" : "wait-window"));
                say(a, "message", "%s slot %s holds %s; the reboot waits for the maintenance window opening at %s",
                    a->check && installed_now ? "Would install it, then" : "Installed:", slot_to_string(t),
                    a->available, when);
                return 0;
        }
        if (update_windows_close_in(a->cfg.windows, a->cfg.n_windows, minute, &left) >= 0 && left < MINUTES_PER_WEEK)
                json_object_object_add(a->report, "window_closes",
                                       json_object_new_string(fmt_time(base + (time_t) left * 60, a->cfg.local_time, tb)));
        json_object_object_add(a->report, "action",
                               json_object_new_string(installed_now ? "install-and-reboot" : "reboot"));
        if (a->check) {
                say(a, "message", "Would %sreboot into slot %s now (%s%s)", installed_now ? "install it, then " : "",
                    slot_to_string(t), a->cfg.n_windows ? "inside a maintenance window" : "no windows: any time",
                    a->cfg.fleetlock_url[0] ? ", after taking the FleetLock reboot lock" : "");
                return 0;
        }

        if (a->cfg.fleetlock_url[0]) {
                /* The record first, then the request: a power cut between
                 * the server's yes and our record would leave a lock held
                 * that no run knows to give back. A record of a lock never
                 * taken costs one steady-state, which the protocol allows
                 * (UnlockIfHeld). */
                int r = lock_record(a, t, "asked");
                if (r < 0)
                        return log_error_errno(r, "Cannot record the reboot lock in %s/" LOCK_FILE ": %m. Not "
                                               "rebooting", a->cfg.state_dir);
                bool unsure = false;
                r = fleetlock_until(&a->cfg, FLEETLOCK_PRE_REBOOT, a->lock_id, &unsure);
                if (r < 0) {
                        /* Refused, or never reached: not held, no record. */
                        if (!unsure)
                                lock_forget(a);
                        return log_error_errno(r, "Not rebooting: no reboot lock from %s. Slot %s stays armed; the "
                                               "next run asks again%s", a->cfg.fleetlock_url, slot_to_string(t),
                                               unsure ? " (an answer was lost: it gives back the lock first, in "
                                                        "case the server gave it)" : "");
                }
                r = lock_record(a, t, "taken");
                if (r < 0) {
                        log_error_errno(r, "Cannot record the reboot lock in %s/" LOCK_FILE ": %m. Giving it back; "
                                        "not rebooting", a->cfg.state_dir);
                        if (fleetlock_until(&a->cfg, FLEETLOCK_STEADY_STATE, a->lock_id, NULL) >= 0)
                                lock_forget(a);
                        return r;
                }
        }
        say(a, "message", "Rebooting into slot %s (%s): %s", slot_to_string(t), a->available, a->cfg.reboot_command);
        /* The install is done. The reboot command may be abctl itself
         * (abctl reboot --kexec), which takes the install lock: it must not
         * wait for this process, which waits for it. */
        abctl_unlock_install(a->c);
        int r = run_reboot(a->cfg.reboot_command);
        if (r < 0) {
                log_error("The reboot command '%s' failed; giving the reboot lock back", a->cfg.reboot_command);
                if (a->cfg.fleetlock_url[0] && fleetlock_until(&a->cfg, FLEETLOCK_STEADY_STATE, a->lock_id, NULL) >= 0)
                        lock_forget(a);
                return r;
        }
        return 0;
}

static int run(struct agent *a) {
        struct ctx *c = a->c;
        Slot other = slot_other(c->running);
        char t[40];
        int r;

        r = settle_lock(a);
        if (r != 0)
                return r < 0 ? r : 0;
        if (!committed(c, c->running)) {
                json_object_object_add(a->report, "action", json_object_new_string("wait-commit"));
                say(a, "message", "Slot %s is on trial: nothing to update until it is committed (abctl mark-good)",
                    slot_to_string(c->running));
                return 0;
        }
        r = resolve(a);
        if (r < 0)
                return r;
        if (!a->check)
                report_check(a);

        const char *installed = digest_of(&a->so, c->running), *in_other = digest_of(&a->so, other);
        json_object_object_add(a->report, "installed", json_object_new_string(strempty(installed)));
        json_object_object_add(a->report, "available", json_object_new_string(a->available));
        json_object *ro = json_object_new_object();
        json_object_object_add(ro, "staged", json_object_new_boolean(a->rollout.staged));
        json_object_object_add(ro, "wariness", json_object_new_double(a->wariness));
        if (a->rollout.staged) {
                json_object_object_add(ro, "start", json_object_new_string(fmt_time(a->rollout.start, false, t)));
                json_object_object_add(ro, "duration", json_object_new_int64((int64_t) a->rollout.duration));
                json_object_object_add(ro, "admitted_at",
                                       json_object_new_string(fmt_time(rollout_admitted_at(&a->rollout, a->wariness), false, t)));
        }
        bool admitted = rollout_admits(&a->rollout, a->wariness, a->now);
        json_object_object_add(ro, "admitted", json_object_new_boolean(admitted));
        json_object_object_add(a->report, "rollout", ro);

        if (installed && streq(installed, a->available)) {
                json_object_object_add(a->report, "action", json_object_new_string("none"));
                say(a, "message", "Up to date: slot %s runs %s, what %s names", slot_to_string(c->running), installed,
                    a->cfg.reference);
                return 0;
        }
        if (in_other && streq(in_other, a->available)) {
                if (on_trial(c, other))
                        return reboot_step(a, other, false);
                json_object_object_add(a->report, "action", json_object_new_string("none"));
                if (committed(c, other))
                        say(a, "message", "%s names %s, which committed slot %s holds; slot %s runs another image. "
                            "Not switching by itself: abctl rollback goes back to slot %s", a->cfg.reference,
                            a->available, slot_to_string(other), slot_to_string(c->running), slot_to_string(other));
                else
                        say(a, "message", "%s failed in slot %s before: not installing it again (abctl install "
                            "--force %s to retry it)", a->available, slot_to_string(other), a->cfg.reference);
                return 0;
        }
        if (!admitted) {
                json_object_object_add(a->report, "action", json_object_new_string("wait-rollout"));
                say(a, "message", "%s is available; the rollout admits this machine (wariness %.3f) at %s",
                    a->available, a->wariness, fmt_time(rollout_admitted_at(&a->rollout, a->wariness), false, t));
                return 0;
        }
        if (!a->check) {
                _cleanup_free_ char *pinned = NULL;
                struct oci_options o = registry_options(a);
                /* The digest just checked, not whatever the tag names by the
                 * time the install fetches it. */
                r = abctl_path(&pinned, "%s@%s", a->cfg.reference, a->available);
                if (r < 0)
                        return log_error_errno(r, "The reference is too long: %m");
                c->install_slot = other;
                r = abctl_install(c, pinned, NULL, &o);
                if (r < 0)
                        return log_error_errno(r, "Update to %s failed (see above); the next run tries again", a->available);
        }
        return reboot_step(a, other, true);
}

/* The command line's registry options over update.conf's: an operator's
 * `abctl update --check --timeout 10` means this run, not the file. */
static int apply_cli(struct update_config *cfg, const struct oci_options *cli) {
        if (!cli)
                return 0;
        if (cli->ca && snprintf(cfg->ca, sizeof(cfg->ca), "%s", cli->ca) >= (int) sizeof(cfg->ca))
                return log_error_errno(-ENAMETOOLONG, "--ca %s: the path is longer than %zu bytes", cli->ca,
                                       sizeof(cfg->ca) - 1);
        if (cli->authfile && snprintf(cfg->authfile, sizeof(cfg->authfile), "%s", cli->authfile) >= (int) sizeof(cfg->authfile))
                return log_error_errno(-ENAMETOOLONG, "--authfile %s: the path is longer than %zu bytes", cli->authfile,
                                       sizeof(cfg->authfile) - 1);
        if (cli->plain_http)
                cfg->plain_http = true;
        if (cli->timeout_sec)
                cfg->timeout = cli->timeout_sec;
        return 0;
}

int abctl_update(struct ctx *c, const char *config, bool check, time_t at, const struct oci_options *cli) {
        _cleanup_(json_putp) json_object *report = json_object_new_object();
        struct agent a = { .c = c, .check = check, .now = at >= 0 ? at : time(NULL), .report = report };
        char t[40];
        int r = config_load(config, &a.cfg);
        if (r < 0)
                return r;
        r = apply_cli(&a.cfg, cli);
        if (r < 0)
                return r;
        r = machine_ids(&a.cfg, a.machine_id, a.lock_id);
        if (r < 0)
                return r;
        /* One agent run at a time, and none beside an install: a second run
         * (the timer and an operator) waits, then sees what the first did. */
        if (!check) {
                r = abctl_lock_install(c);  /* and the state as it is now */
                if (r < 0)
                        return r;
        }
        read_origins(c, &a.so);
        json_object_object_add(report, "reference", json_object_new_string(a.cfg.reference));
        json_object_object_add(report, "at", json_object_new_string(fmt_time(a.now, false, t)));
        json_object_object_add(report, "running", json_object_new_string(slot_to_string(c->running)));
        json_object_object_add(report, "fleetlock_id", json_object_new_string(a.lock_id));
        r = run(&a);
        if (c->json)
                printf("%s\n", json_object_to_json_string_ext(report, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
        return r;
}

/* ---- abctl status ----------------------------------------------------------------- */

void abctl_update_status(const struct ctx *c, const char *config, json_object *json) {
        struct update_config cfg;
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        char why[600], tb[40];
        int r = read_file_bounded(config, UPDATE_CONF_MAX, &text, &len);
        if (r == -ENOENT)
                return;
        if (r >= 0)
                r = update_config_parse(text, len, &cfg, why, sizeof(why));
        else
                (void) snprintf(why, sizeof(why), "%s", strerror(-r));
        if (r < 0) {
                if (json)
                        json_object_object_add(json, "error", json_object_new_string(why));
                else
                        printf("Update:  %s is not usable: %s\n", config, why);
                return;
        }
        struct slots_origin so;
        read_origins(c, &so);
        const char *installed = digest_of(&so, c->running);
        _cleanup_(json_putp) json_object *chk = state_read(cfg.state_dir, CHECK_FILE);
        _cleanup_(json_putp) json_object *held = state_read(cfg.state_dir, LOCK_FILE);
        const char *avail = jstr(chk, "available"), *checked = jstr(chk, "checked"), *adm = jstr(chk, "admitted_at");
        /* What the last check saw is for this reference only. */
        if (!streq_ptr(jstr(chk, "reference"), cfg.reference))
                avail = checked = adm = NULL;
        time_t now = time(NULL);
        unsigned minute = update_minute_of_week(now, cfg.local_time), wait = 0, left = 0;
        bool inside = update_windows_inside(cfg.windows, cfg.n_windows, minute);
        time_t base = now - now % 60;
        char window[120];
        if (cfg.n_windows == 0)
                strcpy(window, "no maintenance windows: reboots at any time");
        else if (inside && update_windows_close_in(cfg.windows, cfg.n_windows, minute, &left) >= 0 &&
                 left < MINUTES_PER_WEEK)
                (void) snprintf(window, sizeof(window), "inside a maintenance window until %s",
                                fmt_time(base + (time_t) left * 60, cfg.local_time, tb));
        else if (inside)
                strcpy(window, "inside a maintenance window (all week)");
        else if (update_windows_next_open(cfg.windows, cfg.n_windows, minute, &wait) >= 0)
                (void) snprintf(window, sizeof(window), "next maintenance window opens %s",
                                fmt_time(base + (time_t) wait * 60, cfg.local_time, tb));
        else
                strcpy(window, "no maintenance window ever opens");

        if (json) {
                json_object_object_add(json, "reference", json_object_new_string(cfg.reference));
                if (installed)
                        json_object_object_add(json, "installed", json_object_new_string(installed));
                if (avail)
                        json_object_object_add(json, "available", json_object_new_string(avail));
                if (checked)
                        json_object_object_add(json, "checked", json_object_new_string(checked));
                if (adm)
                        json_object_object_add(json, "admitted_at", json_object_new_string(adm));
                json_object_object_add(json, "inside_window", json_object_new_boolean(inside));
                json_object_object_add(json, "window", json_object_new_string(window));
                if (held && jstr(held, "taken"))
                        json_object_object_add(json, "lock_held_since", json_object_new_string(jstr(held, "taken")));
                else if (held)
                        json_object_object_add(json, "lock_asked", json_object_new_string(strempty(jstr(held, "asked"))));
                return;
        }
        printf("Update:  following %s\n", cfg.reference);
        printf("         installed %s (slot %s)\n", installed ? installed : "unknown (no origin)", slot_to_string(c->running));
        if (avail)
                printf("         available %s (checked %s)%s%s%s\n", avail, strempty(checked),
                       installed && streq(avail, installed) ? ": up to date" : "", adm ? ", rollout admits this machine at " : "",
                       strempty(adm));
        else
                printf("         available: not checked yet (the next abctl update records it, --check does not)\n");
        printf("         %s\n", window);
        if (held && jstr(held, "taken"))
                printf("         holding the FleetLock reboot lock since %s (group %s)\n", jstr(held, "taken"),
                       strempty(jstr(held, "group")));
        else if (held)
                printf("         asked for the FleetLock reboot lock at %s and got no answer: the next run gives it "
                       "back in case the server took it\n", strempty(jstr(held, "asked")));
}
