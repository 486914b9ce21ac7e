/* SPDX-License-Identifier: MIT */
/* update.conf and maintenance windows (update.h): pure, no I/O.
 *
 * Parsed by hand, on purpose. Zincati writes its periodic windows in TOML
 * and systemd its calendar expressions in its own grammar; neither has a C
 * library a static musl binary can link (systemd's calendarspec.c lives in
 * libsystemd-shared, a private library; Debian ships no C TOML library in
 * bookworm that abswitch already depends on). The format here is one
 * "key = value" a line, as /etc/os-release and systemd's .conf files read,
 * and the window is Zincati's periodic window (days, start time, length)
 * on one line: small enough to parse in full, with a message naming the
 * line and what to write for every mistake, and a fuzzer
 * (tests/fuzz/fuzz-updateconf.c). */

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/param.h>
#include <strings.h>

#include "../common/macro.h"
#include "update.h"

#define WHY(...) (snprintf(why, whysize, __VA_ARGS__), -EINVAL)

static const char *const day_short[7] = { "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun" };
static const char *const day_long[7] = { "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday" };

static int day_from(const char *s, size_t n) {
        for (int d = 0; d < 7; d++)
                if ((n == strlen(day_short[d]) && strncasecmp(s, day_short[d], n) == 0) ||
                    (n == strlen(day_long[d]) && strncasecmp(s, day_long[d], n) == 0))
                        return d;
        return -1;
}

/* A decimal number of at most max, all digits. */
static bool number(const char *s, size_t n, unsigned long max, unsigned long *ret) {
        unsigned long v = 0;
        if (n == 0)
                return false;
        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return false;
                v = v * 10 + (unsigned long) (s[i] - '0');
                if (v > max)
                        return false;
        }
        *ret = v;
        return true;
}

int update_window_parse(const char *value, struct update_window *ret, char *why, size_t whysize) {
        static const char example[] = "write e.g. 'window = Sat,Sun 23:30 90m' or 'window = Mon-Fri 02:00 2h'";
        const char *p = value;
        struct update_window w = {};

        /* Days: "Mon", "Mon-Fri", "Sat,Sun", "Fri-Mon" (wraps). */
        const char *end = p + strcspn(p, " \t");
        if (end == p)
                return WHY("a window needs days, a start time and a length; %s", example);
        for (const char *q = p; q < end;) {
                const char *item = q, *comma = memchr(q, ',', (size_t) (end - q));
                const char *iend = comma ? comma : end;
                const char *dash = memchr(item, '-', (size_t) (iend - item));
                int a = day_from(item, (size_t) ((dash ? dash : iend) - item));
                int b = dash ? day_from(dash + 1, (size_t) (iend - dash - 1)) : a;
                if (a < 0 || b < 0)
                        return WHY("'%.*s' is not a day or a range of days (Mon, Tue, Wed, Thu, Fri, Sat, Sun, "
                                   "or Mon-Fri); %s", (int) (iend - item), item, example);
                for (int d = a;; d = (d + 1) % 7) {
                        w.days |= (uint8_t) (1u << d);
                        if (d == b)
                                break;
                }
                q = comma ? comma + 1 : end;
                if (comma && q == end)
                        return WHY("'%.*s' ends with a comma; %s", (int) (end - p), p, example);
        }

        /* Start: HH:MM. */
        p = end + strspn(end, " \t");
        end = p + strcspn(p, " \t");
        unsigned long h, m;
        const char *colon = memchr(p, ':', (size_t) (end - p));
        if (!colon || !number(p, (size_t) (colon - p), 23, &h) || colon - p > 2 ||
            !number(colon + 1, (size_t) (end - colon - 1), 59, &m) || end - colon - 1 != 2)
                return WHY("'%.*s' is not a start time HH:MM (00:00 to 23:59); %s", (int) (end - p), p, example);
        w.start = (unsigned) (h * 60 + m);

        /* Length: minutes, or with a unit. */
        p = end + strspn(end, " \t");
        end = p + strcspn(p, " \t");
        size_t n = (size_t) (end - p);
        unsigned long unit = 1, len;
        if (n > 1 && (p[n - 1] == 'm' || p[n - 1] == 'h')) {
                unit = p[n - 1] == 'h' ? 60 : 1;
                n--;
        }
        if (!number(p, n, MINUTES_PER_WEEK, &len) || len == 0 || len * unit > MINUTES_PER_WEEK)
                return WHY("'%.*s' is not a length from 1 minute to a week (90, 90m or 2h); %s", (int) (end - p), p,
                           example);
        w.length = (unsigned) (len * unit);
        p = end + strspn(end, " \t");
        if (*p)
                return WHY("'%s' after the length is not understood; %s", p, example);
        *ret = w;
        return 0;
}

/* ---- the week --------------------------------------------------------------- */

unsigned update_minute_of_week(time_t t, bool local) {
        struct tm tm;
        if (!(local ? localtime_r(&t, &tm) : gmtime_r(&t, &tm)))
                return 0;
        /* tm_wday: 0 is Sunday; the week here starts on Monday. */
        return (unsigned) ((tm.tm_wday + 6) % 7) * MINUTES_PER_DAY + (unsigned) tm.tm_hour * 60 + (unsigned) tm.tm_min;
}

/* Minutes from a to b going forward around the week. */
static unsigned forward(unsigned a, unsigned b) {
        return (b + MINUTES_PER_WEEK - a) % MINUTES_PER_WEEK;
}

/* Whether minute is in the window that opens on day d; *ret_left: minutes
 * until that opening ends. */
static bool in_opening(const struct update_window *w, int d, unsigned minute, unsigned *ret_left) {
        unsigned open = (unsigned) d * MINUTES_PER_DAY + w->start, since = forward(open, minute);
        if (w->length >= MINUTES_PER_WEEK) {
                *ret_left = MINUTES_PER_WEEK;
                return true;
        }
        if (since >= w->length)
                return false;
        *ret_left = w->length - since;
        return true;
}

bool update_windows_inside(const struct update_window *w, size_t n, unsigned minute) {
        unsigned left;
        if (n == 0)
                return true;
        minute %= MINUTES_PER_WEEK;
        for (size_t i = 0; i < n; i++)
                for (int d = 0; d < 7; d++)
                        if ((w[i].days & (1u << d)) && in_opening(&w[i], d, minute, &left))
                                return true;
        return false;
}

int update_windows_next_open(const struct update_window *w, size_t n, unsigned minute, unsigned *ret) {
        unsigned best = UINT32_MAX;
        if (n == 0)
                return -ENOENT;
        minute %= MINUTES_PER_WEEK;
        if (update_windows_inside(w, n, minute)) {
                *ret = 0;
                return 0;
        }
        for (size_t i = 0; i < n; i++)
                for (int d = 0; d < 7; d++)
                        if (w[i].days & (1u << d))
                                best = MIN(best, forward(minute, (unsigned) d * MINUTES_PER_DAY + w[i].start));
        if (best == UINT32_MAX)
                return -ENOENT;         /* windows with no day: never (the parser makes none) */
        *ret = best;
        return 0;
}

int update_windows_close_in(const struct update_window *w, size_t n, unsigned minute, unsigned *ret) {
        unsigned total = 0;
        if (n == 0)
                return -ENOENT;
        minute %= MINUTES_PER_WEEK;
        /* Jump to the furthest end of the openings covering the time, again
         * from there, until none covers it (overlapping windows join). */
        for (;;) {
                unsigned jump = 0, left;
                for (size_t i = 0; i < n; i++)
                        for (int d = 0; d < 7; d++)
                                if ((w[i].days & (1u << d)) && in_opening(&w[i], d, minute, &left))
                                        jump = MAX(jump, left);
                if (jump == 0)
                        break;
                total += jump;
                if (total >= MINUTES_PER_WEEK) {
                        *ret = MINUTES_PER_WEEK;
                        return 0;
                }
                minute = (minute + jump) % MINUTES_PER_WEEK;
        }
        if (total == 0)
                return -ENOENT;
        *ret = total;
        return 0;
}

/* ---- update.conf ------------------------------------------------------------ */

int update_machine_id_parse(const char *text, size_t len, char ret[static 33]) {
        if (len < 32 || (len > 32 && !(len == 33 && text[32] == '\n')))
                return -EINVAL;
        for (size_t i = 0; i < 32; i++)
                if (!isdigit((unsigned char) text[i]) && !(text[i] >= 'a' && text[i] <= 'f'))
                        return -EINVAL;
        memcpy(ret, text, 32);
        ret[32] = 0;
        return 0;
}

bool fleetlock_group_valid(const char *g) {
        if (!*g)
                return false;
        for (const char *p = g; *p; p++)
                if (!isalnum((unsigned char) *p) && *p != '.' && *p != '-')
                        return false;
        return true;
}

static int set_string(char *dst, size_t size, const char *v, size_t n) {
        if (n >= size)
                return -E2BIG;
        memcpy(dst, v, n);
        dst[n] = 0;
        return 0;
}

static bool has_control(const char *v, size_t n) {
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) v[i] < 0x20 || v[i] == 0x7f)
                        return true;
        return false;
}

int update_config_parse(const char *text, size_t len, struct update_config *ret, char *why, size_t whysize) {
        struct update_config c = { .fleetlock_wait = 300, .timeout = 300 };
        strcpy(c.fleetlock_group, "default");
        strcpy(c.reboot_command, "systemctl reboot");
        strcpy(c.state_dir, UPDATE_STATE_DIR_DEFAULT);
        strcpy(c.machine_id_file, "/etc/machine-id");
        unsigned line = 0;
        bool have_tz = false;

        if (memchr(text, 0, len))
                return WHY("the file holds a NUL byte: it is not a text file; write it as 'key = value' lines");
        for (size_t pos = 0; pos < len;) {
                const char *l = text + pos, *nl = memchr(l, '\n', len - pos);
                size_t n = nl ? (size_t) (nl - l) : len - pos;
                pos += n + 1;
                line++;
                /* Blanks around, a trailing \r (files edited elsewhere). */
                while (n > 0 && (l[n - 1] == ' ' || l[n - 1] == '\t' || l[n - 1] == '\r'))
                        n--;
                while (n > 0 && (*l == ' ' || *l == '\t')) {
                        l++;
                        n--;
                }
                if (n == 0 || *l == '#' || *l == ';')
                        continue;
                const char *eq = memchr(l, '=', n);
                if (!eq)
                        return WHY("line %u: '%.*s' is not 'key = value'; write e.g. 'reference = "
                                   "registry.example.com/fleet/os:stable'", line, (int) MIN(n, 80), l);
                size_t kn = (size_t) (eq - l);
                while (kn > 0 && (l[kn - 1] == ' ' || l[kn - 1] == '\t'))
                        kn--;
                const char *v = eq + 1;
                size_t vn = n - (size_t) (v - l);
                while (vn > 0 && (*v == ' ' || *v == '\t')) {
                        v++;
                        vn--;
                }
                /* Quotes around a value, as in os-release. */
                if (vn >= 2 && (v[0] == '"' || v[0] == '\'') && v[vn - 1] == v[0]) {
                        v++;
                        vn -= 2;
                }
                if (has_control(v, vn))
                        return WHY("line %u: the value holds a control character; write it on one line as plain text",
                                   line);
                char key[32], val[1024];
                if (kn == 0 || set_string(key, sizeof(key), l, kn) < 0)
                        return WHY("line %u: '%.*s' is not a key; the keys are reference, window, time-zone, "
                                   "fleetlock-url, fleetlock-group, fleetlock-wait, reboot-command, state-directory, "
                                   "machine-id-file, ca, authfile, plain-http, timeout", line, (int) MIN(kn, 40), l);
                if (set_string(val, sizeof(val), v, vn) < 0)
                        return WHY("line %u: the value of %s is longer than %zu characters", line, key, sizeof(val) - 1);
                if (vn == 0)
                        return WHY("line %u: %s has no value; write '%s = ...' or remove the line", line, key, key);

                int r = 0;
                unsigned long u;
                if (streq(key, "reference")) {
                        r = set_string(c.reference, sizeof(c.reference), v, vn);
                        if (r >= 0 && (strchr(val, '@') || startswith(val, "oci:") || !strchr(val, '/')))
                                return WHY("line %u: reference '%s' must name a tag in a registry, "
                                           "HOST[:PORT]/REPO:TAG (not a digest, which never changes, "
                                           "nor an oci: layout); write e.g. 'reference = "
                                           "registry.example.com/fleet/os:stable'", line, val);
                } else if (streq(key, "window")) {
                        char wwhy[300];
                        if (c.n_windows >= UPDATE_WINDOWS_MAX)
                                return WHY("line %u: more than %d windows; join some", line, UPDATE_WINDOWS_MAX);
                        if (update_window_parse(val, &c.windows[c.n_windows], wwhy, sizeof(wwhy)) < 0)
                                return WHY("line %u: %s", line, wwhy);
                        c.n_windows++;
                } else if (streq(key, "time-zone")) {
                        if (strcasecmp(val, "UTC") == 0)
                                c.local_time = false;
                        else if (streq(val, "localtime"))
                                c.local_time = true;
                        else
                                return WHY("line %u: time-zone '%s' is neither UTC nor localtime (the zone of "
                                           "/etc/localtime); write 'time-zone = UTC' or 'time-zone = localtime'",
                                           line, val);
                        have_tz = true;
                } else if (streq(key, "fleetlock-url")) {
                        if (!startswith(val, "http://") && !startswith(val, "https://"))
                                return WHY("line %u: fleetlock-url '%s' is not an http:// or https:// URL; write "
                                           "the server's base URL, e.g. 'fleetlock-url = https://fleetlock.example.com'",
                                           line, val);
                        r = set_string(c.fleetlock_url, sizeof(c.fleetlock_url), v, vn);
                        /* The paths are /v1/...: no double slash. */
                        size_t ul = strlen(c.fleetlock_url);
                        while (r >= 0 && ul > 0 && c.fleetlock_url[ul - 1] == '/')
                                c.fleetlock_url[--ul] = 0;
                } else if (streq(key, "fleetlock-group")) {
                        if (!fleetlock_group_valid(val) || vn >= sizeof(c.fleetlock_group))
                                return WHY("line %u: fleetlock-group '%s' is not a group name (letters, digits, '.' "
                                           "and '-', at most %zu); write e.g. 'fleetlock-group = workers'", line, val,
                                           sizeof(c.fleetlock_group) - 1);
                        r = set_string(c.fleetlock_group, sizeof(c.fleetlock_group), v, vn);
                } else if (streq(key, "fleetlock-wait")) {
                        if (!number(v, vn, 86400, &u) || u == 0)
                                return WHY("line %u: fleetlock-wait '%s' is not a number of seconds from 1 to 86400; "
                                           "write e.g. 'fleetlock-wait = 600'", line, val);
                        c.fleetlock_wait = (unsigned) u;
                } else if (streq(key, "timeout")) {
                        if (!number(v, vn, 86400, &u) || u == 0)
                                return WHY("line %u: timeout '%s' is not a number of seconds from 1 to 86400; "
                                           "write e.g. 'timeout = 300'", line, val);
                        c.timeout = (unsigned) u;
                } else if (streq(key, "reboot-command")) {
                        r = set_string(c.reboot_command, sizeof(c.reboot_command), v, vn);
                } else if (streq(key, "state-directory") || streq(key, "machine-id-file") || streq(key, "ca") ||
                           streq(key, "authfile")) {
                        char *dst = streq(key, "state-directory") ? c.state_dir :
                                    streq(key, "machine-id-file") ? c.machine_id_file :
                                    streq(key, "ca") ? c.ca : c.authfile;
                        if (val[0] != '/')
                                return WHY("line %u: %s '%s' is not an absolute path; write it from /", line, key, val);
                        r = set_string(dst, 256, v, vn);
                } else if (streq(key, "plain-http")) {
                        if (streq(val, "yes") || streq(val, "true"))
                                c.plain_http = true;
                        else if (streq(val, "no") || streq(val, "false"))
                                c.plain_http = false;
                        else
                                return WHY("line %u: plain-http '%s' is neither yes nor no; write 'plain-http = yes' "
                                           "for a registry without TLS", line, val);
                } else
                        return WHY("line %u: unknown key '%s'; the keys are reference, window, time-zone, "
                                   "fleetlock-url, fleetlock-group, fleetlock-wait, reboot-command, "
                                   "state-directory, machine-id-file, ca, authfile, plain-http, timeout", line, key);
                if (r < 0)
                        return WHY("line %u: the value of %s is too long", line, key);
        }
        if (!c.reference[0])
                return WHY("no reference: write the tag to follow, e.g. 'reference = registry.example.com/fleet/os:stable'");
        if (have_tz && c.n_windows == 0)
                return WHY("time-zone is set but there is no window: add one, e.g. 'window = Sat,Sun 23:30 90m', "
                           "or remove time-zone (with no window the agent reboots at any time)");
        *ret = c;
        return 0;
}
