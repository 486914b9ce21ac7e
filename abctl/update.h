/* SPDX-License-Identifier: MIT */
#pragma once

/* The update agent (issue 16): `abctl update` follows a tag, installs what
 * it names when the rollout admits this machine, and reboots only inside a
 * maintenance window and under a FleetLock lock.
 *
 *   updateconf.c  /etc/abswitch/update.conf and the maintenance windows (pure)
 *   rollout.c     staged rollouts from manifest annotations, wariness (pure)
 *   fleetlock.c   the FleetLock client (libcurl)
 *   update.c      the agent: the verb, its state files, abctl status's lines
 *
 * The pure parts take text, times and ids and return decisions, so the unit
 * tests enumerate them (tests/unit/test-update.c). */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <json-c/json.h>

#include "origin.h"

#define UPDATE_CONF_DEFAULT      "/etc/abswitch/update.conf"
#define UPDATE_STATE_DIR_DEFAULT "/var/lib/abswitch"
#define UPDATE_CONF_MAX          (64u * 1024u)
#define UPDATE_WINDOWS_MAX       32
#define MINUTES_PER_DAY          1440u
#define MINUTES_PER_WEEK         (7u * MINUTES_PER_DAY)

/* A maintenance window, as Zincati's periodic strategy has them: on each of
 * days (bit 0 Monday ... bit 6 Sunday), from start (minutes after
 * midnight) for length minutes; it may run past midnight and past Sunday
 * into Monday. */
struct update_window {
        uint8_t days;
        unsigned start;         /* 0..1439 */
        unsigned length;        /* 1..10080 */
};

struct update_config {
        char reference[ORIGIN_REFERENCE_MAX];   /* HOST[:PORT]/REPO:TAG */
        struct update_window windows[UPDATE_WINDOWS_MAX];
        size_t n_windows;                       /* 0: reboots at any time */
        bool local_time;                        /* windows in local time (default UTC) */
        char fleetlock_url[512];                /* "" : no lock */
        char fleetlock_group[64];               /* default "default" */
        unsigned fleetlock_wait;                /* seconds to keep asking for the lock (default 300) */
        char reboot_command[512];               /* default "systemctl reboot" */
        char state_dir[256];                    /* default UPDATE_STATE_DIR_DEFAULT */
        char machine_id_file[256];              /* default /etc/machine-id */
        char ca[256], authfile[256];            /* as install's --ca and --authfile; "" : none */
        bool plain_http;
        unsigned timeout;                       /* registry timeout in seconds (default 300) */
};

/* Parses update.conf's text: "key = value" lines, '#' comments (the
 * README's "Fleet operations" lists the keys). On error -EINVAL and why
 * says "LINE n: what is wrong; what to write instead". */
int update_config_parse(const char *text, size_t len, struct update_config *ret, char *why, size_t whysize);

/* "Mon-Fri 22:00 90m": days (names or ranges, comma separated), the start
 * HH:MM, the length (minutes, or with m or h). */
int update_window_parse(const char *value, struct update_window *ret, char *why, size_t whysize);

/* The minute of the week (Monday 00:00 = 0) t falls in, in UTC or local time. */
unsigned update_minute_of_week(time_t t, bool local);
/* Whether minute (of the week) is inside any window. No window: always. */
bool update_windows_inside(const struct update_window *w, size_t n, unsigned minute);
/* Minutes from minute until a window opens: 0 when inside one now.
 * -ENOENT when there is no window (reboots are allowed at any time). */
int update_windows_next_open(const struct update_window *w, size_t n, unsigned minute, unsigned *ret);
/* Inside: minutes until no window covers the time any more (windows that
 * overlap or touch count as one); -ENOENT when outside or with none;
 * MINUTES_PER_WEEK when windows cover the whole week. */
int update_windows_close_in(const struct update_window *w, size_t n, unsigned minute, unsigned *ret);

/* ---- rollouts (rollout.c) ---- */

#define ROLLOUT_START_ANNOTATION    "org.abswitch.rollout.start"
#define ROLLOUT_DURATION_ANNOTATION "org.abswitch.rollout.duration"

struct rollout {
        bool staged;            /* false: no annotation, every machine at once */
        time_t start;
        uint64_t duration;      /* seconds */
};

/* RFC 3339 "2026-12-02T04:40:00Z" or with a +hh:mm / -hh:mm offset, and
 * optional fractional seconds; back to UTC seconds. */
int rollout_parse_time(const char *s, time_t *ret);
/* "3600", "3600s", "90m", "6h", "2d": seconds. */
int rollout_parse_duration(const char *s, uint64_t *ret);
/* The rollout an image manifest's annotations announce. No start: not
 * staged. A start without a duration: everyone from the start. A bad
 * value: -EBADMSG, why says which. */
int rollout_from_manifest(const char *json, size_t len, struct rollout *ret, char *why, size_t whysize);
/* This machine's wariness in [0, 1) for the image with manifest digest:
 * HMAC-SHA256 keyed with the machine id (32 hex digits, /etc/machine-id)
 * over the digest, so a machine is early for one rollout and late for
 * another, and the same for every run of the same one. */
int rollout_wariness(const char *machine_id, const char *digest, double *ret);
/* When a machine of this wariness may install: start + wariness * duration
 * (start when not staged or no duration; 0 when not staged). */
time_t rollout_admitted_at(const struct rollout *r, double wariness);
bool rollout_admits(const struct rollout *r, double wariness, time_t now);

/* The machine id from the text of /etc/machine-id: 32 lowercase hex digits
 * and a newline; "uninitialized" and anything else refused. */
int update_machine_id_parse(const char *text, size_t len, char ret[static 33]);
/* The id this machine gives a FleetLock server: an application-specific
 * id derived from the machine id as systemd's sd_id128_get_machine_app_specific()
 * does (HMAC-SHA256 keyed with it over abswitch's application id, as a
 * version 4 UUID), so the server never learns /etc/machine-id itself. */
int update_fleetlock_id(const char *machine_id, char ret[static 33]);

/* ---- FleetLock (fleetlock.c) ---- */

typedef enum FleetLockOp {
        FLEETLOCK_PRE_REBOOT,           /* take a reboot slot: RecursiveLock */
        FLEETLOCK_STEADY_STATE,         /* give it back: UnlockIfHeld */
        _FLEETLOCK_OP_MAX,
        _FLEETLOCK_OP_INVALID = -EINVAL,
} FleetLockOp;

const char *fleetlock_op_path(FleetLockOp op);     /* "/v1/pre-reboot" */
/* The request body {"client_params":{"id":...,"group":...}}; free() it. */
int fleetlock_body(const char *group, const char *id, char **ret);
/* What a failed answer says: its "kind: value" when it is the protocol's
 * error object, else its first line, made printable. */
void fleetlock_error_describe(long status, const char *body, size_t len, char *ret, size_t size);
/* A group name the protocol allows: ^[a-zA-Z0-9.-]+$. */
bool fleetlock_group_valid(const char *g);

/* One request. 0: the server answered 200. -EBUSY: it answered with an
 * error (the lock is full, or another refusal). -ECONNREFUSED: the request
 * never reached a server (no connection). -EHOSTUNREACH: no answer after
 * the request may have been sent (timed out, cut): the server may have
 * done it. why says what happened, for a person. */
int fleetlock_request(const struct update_config *cfg, FleetLockOp op, const char *id, char *why, size_t whysize);

/* ---- the agent (update.c) ---- */

struct ctx;
struct oci_options;
/* abctl update [--check] [--at TIME] [--config FILE]. at < 0: now. cli:
 * the registry options given on the command line (--ca, --plain-http,
 * --authfile; --timeout when timeout_sec is not 0), which win over
 * update.conf's for this run. */
int abctl_update(struct ctx *c, const char *config, bool check, time_t at, const struct oci_options *cli);
/* abctl status's update lines (text), or its "update" object (json, when
 * not NULL): the installed and the available digest, when the last check
 * was, the next window. Silent when there is no update.conf. */
void abctl_update_status(const struct ctx *c, const char *config, json_object *json);
