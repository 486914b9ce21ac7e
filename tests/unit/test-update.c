/* SPDX-License-Identifier: MIT */
/* The update agent's pure parts (abctl/updateconf.c, rollout.c, fleetlock.c's
 * body and error text): maintenance windows checked at every minute of a
 * week against a minute-by-minute reference, update.conf's refusals with
 * their line, RFC 3339 times, rollout annotations, the wariness (stable,
 * in [0, 1), spread evenly, different per image), FleetLock's body. */
#include "unit.h"

#include <json-c/json.h>
#include <time.h>

#include "../../abctl/update.h"
#include "../../common/macro.h"

/* ---- windows ---------------------------------------------------------------- */

static struct update_window win(const char *s) {
        struct update_window w;
        char why[300] = "";
        int r = update_window_parse(s, &w, why, sizeof(why));
        if (r < 0)
                fail_msg("window '%s' refused: %s", s, why);
        return w;
}

/* The reference: a bitmap of the week, each opening's minutes marked one by one. */
static void mark(const struct update_window *w, size_t n, bool map[MINUTES_PER_WEEK]) {
        memset(map, 0, MINUTES_PER_WEEK * sizeof(bool));
        for (size_t i = 0; i < n; i++)
                for (unsigned d = 0; d < 7; d++)
                        if (w[i].days & (1u << d))
                                for (unsigned k = 0; k < w[i].length; k++)
                                        map[(d * MINUTES_PER_DAY + w[i].start + k) % MINUTES_PER_WEEK] = true;
}

static void check_week(const char *const *spec, size_t n) {
        struct update_window w[8];
        static bool map[MINUTES_PER_WEEK];
        for (size_t i = 0; i < n; i++)
                w[i] = win(spec[i]);
        mark(w, n, map);
        for (unsigned m = 0; m < MINUTES_PER_WEEK; m++) {
                unsigned next = 0, close = 0, k;
                if (update_windows_inside(w, n, m) != map[m])
                        fail_msg("%s...: minute %u: inside %d, reference %d", spec[0], m, !map[m], map[m]);
                /* Next opening: the first marked minute from m on. */
                for (k = 0; k < MINUTES_PER_WEEK && !map[(m + k) % MINUTES_PER_WEEK]; k++)
                        ;
                int r = update_windows_next_open(w, n, m, &next);
                if (k == MINUTES_PER_WEEK)
                        assert_int_equal(r, -ENOENT);
                else {
                        assert_int_equal(r, 0);
                        if (next != k)
                                fail_msg("%s...: minute %u: next opening in %u, reference %u", spec[0], m, next, k);
                }
                /* Closing: the first unmarked minute from m on. */
                for (k = 0; k < MINUTES_PER_WEEK && map[(m + k) % MINUTES_PER_WEEK]; k++)
                        ;
                r = update_windows_close_in(w, n, m, &close);
                if (k == 0)
                        assert_int_equal(r, -ENOENT);
                else {
                        assert_int_equal(r, 0);
                        if (close != k)
                                fail_msg("%s...: minute %u: closes in %u, reference %u", spec[0], m, close, k);
                }
        }
}

static void test_windows_every_minute(void **state) {
        (void) state;
        static const char *const one[] = { "Sat,Sun 23:30 90m" };            /* past midnight, Sun into Mon */
        static const char *const two[] = { "Mon-Fri 02:00 2h", "Wed 01:00 3h" };   /* overlapping */
        static const char *const three[] = { "Fri-Mon 22:00 240" };          /* a wrapping range of days */
        static const char *const touch[] = { "Tue 10:00 60", "Tue 11:00 30m" };     /* touching: one window */
        static const char *const all[] = { "Mon 00:00 10080" };               /* the whole week */
        static const char *const lastminute[] = { "Sunday 23:59 1" };
        static const char *const longw[] = { "Thu 12:00 168h" };
        check_week(one, ELEMENTSOF(one));
        check_week(two, ELEMENTSOF(two));
        check_week(three, ELEMENTSOF(three));
        check_week(touch, ELEMENTSOF(touch));
        check_week(all, ELEMENTSOF(all));
        check_week(lastminute, ELEMENTSOF(lastminute));
        check_week(longw, ELEMENTSOF(longw));
}

static void test_no_window_is_always(void **state) {
        (void) state;
        unsigned x;
        for (unsigned m = 0; m < MINUTES_PER_WEEK; m += 7)
                assert_true(update_windows_inside(NULL, 0, m));
        assert_int_equal(update_windows_next_open(NULL, 0, 5, &x), -ENOENT);
        assert_int_equal(update_windows_close_in(NULL, 0, 5, &x), -ENOENT);
}

static void test_window_parse(void **state) {
        (void) state;
        struct update_window w = win("Sat,Sun 23:30 90m");
        assert_int_equal(w.days, 0x60);
        assert_int_equal(w.start, 23 * 60 + 30);
        assert_int_equal(w.length, 90);
        w = win("mon-fri 02:00 2h");
        assert_int_equal(w.days, 0x1f);
        assert_int_equal(w.length, 120);
        w = win("Sun-Tue 00:00 1");
        assert_int_equal(w.days, 0x43);
        w = win("Wednesday\t07:05\t45");
        assert_int_equal(w.days, 0x04);
        assert_int_equal(w.start, 7 * 60 + 5);

        static const struct {
                const char *in, *says;
        } bad[] = {
                { "", "needs days" },
                { "Sat 23:30", "is not a length" },
                { "Sat", "is not a start time" },
                { "Satur 23:30 90", "'Satur' is not a day" },
                { "Sat, 23:30 90", "ends with a comma" },
                { "Sat 24:00 90", "'24:00' is not a start time" },
                { "Sat 23:5 90", "'23:5' is not a start time" },
                { "Sat 2330 90", "is not a start time" },
                { "Sat 23:30 0", "'0' is not a length" },
                { "Sat 23:30 10081", "is not a length" },
                { "Sat 23:30 169h", "is not a length" },
                { "Sat 23:30 -5", "is not a length" },
                { "Sat 23:30 90s", "is not a length" },
                { "Sat 23:30 90 UTC", "'UTC' after the length" },
                { "Mon-Xyz 01:00 5", "is not a day" },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                char why[300] = "";
                assert_int_equal(update_window_parse(bad[i].in, &w, why, sizeof(why)), -EINVAL);
                if (!strstr(why, bad[i].says) || !strstr(why, "write e.g."))
                        fail_msg("'%s': '%s' does not say '%s' and what to write", bad[i].in, why, bad[i].says);
        }
}

static void test_minute_of_week(void **state) {
        (void) state;
        time_t t;
        /* 2026-12-07 is a Monday. */
        assert_int_equal(rollout_parse_time("2026-12-07T00:00:00Z", &t), 0);
        assert_int_equal(update_minute_of_week(t, false), 0);
        assert_int_equal(update_minute_of_week(t + 59, false), 0);
        assert_int_equal(update_minute_of_week(t + 60, false), 1);
        assert_int_equal(update_minute_of_week(t - 60, false), MINUTES_PER_WEEK - 1);
        assert_int_equal(update_minute_of_week(t + 5 * 86400 + 23 * 3600 + 30 * 60, false), 5 * 1440 + 23 * 60 + 30);
        /* Local time: Monday 00:00 in New York is 05:00 UTC in December
         * (EST) and 04:00 UTC in June (EDT). */
        assert_int_equal(setenv("TZ", "America/New_York", 1), 0);
        tzset();
        assert_int_equal(update_minute_of_week(t + 5 * 3600, true), 0);
        assert_int_equal(update_minute_of_week(t, true), MINUTES_PER_WEEK - 5 * 60);
        assert_int_equal(rollout_parse_time("2026-06-08T04:00:00Z", &t), 0);     /* a Monday */
        assert_int_equal(update_minute_of_week(t, true), 0);
        assert_int_equal(unsetenv("TZ"), 0);
        tzset();
}

/* ---- update.conf -------------------------------------------------------------- */

static void test_config(void **state) {
        (void) state;
        static const char text[] =
                "# the fleet's update policy\n"
                "reference = registry.example.com:5000/fleet/os:stable\n"
                "\n"
                "  window = Sat,Sun 23:30 90m   \n"
                "window=Mon-Fri 02:00 2h\r\n"
                "time-zone = localtime\n"
                "fleetlock-url = https://lock.example.com/base/\n"
                "fleetlock-group = \"workers\"\n"
                "fleetlock-wait = 60\n"
                "reboot-command = systemctl reboot --message='abswitch update'\n"
                "state-directory = /run/abswitch-test\n"
                "plain-http = yes\n";
        struct update_config c;
        char why[600] = "";
        assert_int_equal(update_config_parse(text, strlen(text), &c, why, sizeof(why)), 0);
        assert_string_equal(c.reference, "registry.example.com:5000/fleet/os:stable");
        assert_int_equal(c.n_windows, 2);
        assert_int_equal(c.windows[1].days, 0x1f);
        assert_true(c.local_time);
        assert_string_equal(c.fleetlock_url, "https://lock.example.com/base");
        assert_string_equal(c.fleetlock_group, "workers");
        assert_int_equal(c.fleetlock_wait, 60);
        assert_string_equal(c.reboot_command, "systemctl reboot --message='abswitch update'");
        assert_string_equal(c.state_dir, "/run/abswitch-test");
        assert_string_equal(c.machine_id_file, "/etc/machine-id");
        assert_true(c.plain_http);

        static const char minimal[] = "reference = r.example.com/os:1";
        assert_int_equal(update_config_parse(minimal, strlen(minimal), &c, why, sizeof(why)), 0);
        assert_int_equal(c.n_windows, 0);
        assert_string_equal(c.fleetlock_group, "default");
        assert_string_equal(c.reboot_command, "systemctl reboot");
        assert_int_equal(c.fleetlock_wait, 300);
}

static void test_config_refusals(void **state) {
        (void) state;
        static const struct {
                const char *in, *says;
        } bad[] = {
                { "", "no reference: write" },
                { "# nothing\n", "no reference" },
                { "reference = r.example.com/os:1\nwindow = Sat 25:00 1\n", "line 2: '25:00' is not a start time" },
                { "reference r.example.com/os:1\n", "line 1: 'reference r.example.com/os:1' is not 'key = value'" },
                { "reference = r.example.com/os:1\nbogus = 1\n", "line 2: unknown key 'bogus'" },
                { "reference = r.example.com/os@sha256:0\n", "line 1: reference" },
                { "reference = oci:/srv/os:1\n", "must name a tag in a registry" },
                { "reference = os\n", "must name a tag in a registry" },
                { "reference =\n", "line 1: reference has no value" },
                { "reference = r.example.com/os:1\nfleetlock-url = lock.example.com\n", "line 2: fleetlock-url" },
                { "reference = r.example.com/os:1\nfleetlock-group = a b\n", "line 2: fleetlock-group 'a b'" },
                { "reference = r.example.com/os:1\nfleetlock-wait = 0\n", "line 2: fleetlock-wait '0'" },
                { "reference = r.example.com/os:1\ntime-zone = Europe/Paris\n", "neither UTC nor localtime" },
                { "reference = r.example.com/os:1\ntime-zone = UTC\n", "time-zone is set but there is no window" },
                { "reference = r.example.com/os:1\nplain-http = maybe\n", "line 2: plain-http 'maybe'" },
                { "reference = r.example.com/os:1\nca = certs/ca.pem\n", "line 2: ca 'certs/ca.pem' is not an absolute" },
                { "reference = r.example.com/os:1\nreboot-command = a\x01\n", "line 2: the value holds a control" },
                { "= x\n", "line 1: '' is not a key" },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                struct update_config c;
                char why[600] = "";
                assert_int_equal(update_config_parse(bad[i].in, strlen(bad[i].in), &c, why, sizeof(why)), -EINVAL);
                if (!strstr(why, bad[i].says))
                        fail_msg("'%s': '%s' does not say '%s'", bad[i].in, why, bad[i].says);
        }
        /* A NUL inside. */
        struct update_config c;
        char why[600] = "";
        assert_int_equal(update_config_parse("reference = a/b:1\0x", 19, &c, why, sizeof(why)), -EINVAL);
        assert_non_null(strstr(why, "NUL"));
}

/* ---- rollouts ------------------------------------------------------------------- */

static void test_rfc3339(void **state) {
        (void) state;
        static const struct {
                const char *in;
                long long t;
        } good[] = {
                { "1970-01-01T00:00:00Z", 0 },
                { "2026-12-02T04:40:00Z", 1796186400 },
                { "2026-12-02T05:40:00+01:00", 1796186400 },
                { "2026-12-01T23:10:00-05:30", 1796186400 },
                { "2026-12-02T04:40:00.123456Z", 1796186400 },
                { "2024-02-29T00:00:00Z", 1709164800 },
                { "2000-03-01T00:00:00z", 951868800 },
        };
        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                time_t t = -1;
                assert_int_equal(rollout_parse_time(good[i].in, &t), 0);
                if ((long long) t != good[i].t)
                        fail_msg("%s: %lld, expected %lld", good[i].in, (long long) t, good[i].t);
        }
        static const char *const bad[] = { "", "2026-12-02", "2026-12-02T04:40:00", "2026-13-02T04:40:00Z",
                                           "2026-02-29T00:00:00Z", "2026-04-31T00:00:00Z", "2026-12-02T24:00:00Z",
                                           "2026-12-02T04:40:00+1:00", "2026-12-02T04:40:00.Z", "2026-12-02T04:40:00Zx",
                                           "2026-12-02X04:40:00Z", "2026-12-02T04:60:00Z" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                time_t t;
                if (rollout_parse_time(bad[i], &t) != -EINVAL)
                        fail_msg("'%s' accepted", bad[i]);
        }
}

static void test_duration(void **state) {
        (void) state;
        uint64_t d;
        assert_int_equal(rollout_parse_duration("3600", &d), 0);
        assert_int_equal(d, 3600);
        assert_int_equal(rollout_parse_duration("90m", &d), 0);
        assert_int_equal(d, 5400);
        assert_int_equal(rollout_parse_duration("6h", &d), 0);
        assert_int_equal(d, 21600);
        assert_int_equal(rollout_parse_duration("2d", &d), 0);
        assert_int_equal(d, 172800);
        assert_int_equal(rollout_parse_duration("0", &d), 0);
        assert_int_equal(d, 0);
        assert_int_equal(rollout_parse_duration("", &d), -EINVAL);
        assert_int_equal(rollout_parse_duration("h", &d), -EINVAL);
        assert_int_equal(rollout_parse_duration("-5", &d), -EINVAL);
        assert_int_equal(rollout_parse_duration("5w", &d), -EINVAL);
        assert_int_equal(rollout_parse_duration("367d", &d), -ERANGE);
        assert_int_equal(rollout_parse_duration("99999999999", &d), -EINVAL);
}

static void test_rollout_annotations(void **state) {
        (void) state;
        struct rollout r;
        char why[300] = "";
        static const char staged[] = "{\"schemaVersion\":2,\"annotations\":{\"org.abswitch.rollout.start\":"
                                     "\"2026-12-02T06:00:00Z\",\"org.abswitch.rollout.duration\":\"6h\"}}";
        assert_int_equal(rollout_from_manifest(staged, strlen(staged), &r, why, sizeof(why)), 0);
        assert_true(r.staged);
        assert_int_equal(r.duration, 21600);
        static const char plain[] = "{\"schemaVersion\":2,\"annotations\":{\"org.opencontainers.image.version\":\"2\"}}";
        assert_int_equal(rollout_from_manifest(plain, strlen(plain), &r, why, sizeof(why)), 0);
        assert_false(r.staged);
        static const char none[] = "{\"schemaVersion\":2}";
        assert_int_equal(rollout_from_manifest(none, strlen(none), &r, why, sizeof(why)), 0);
        assert_false(r.staged);
        static const char start_only[] = "{\"annotations\":{\"org.abswitch.rollout.start\":\"2026-12-02T06:00:00Z\"}}";
        assert_int_equal(rollout_from_manifest(start_only, strlen(start_only), &r, why, sizeof(why)), 0);
        assert_true(r.staged);
        assert_int_equal(r.duration, 0);

        static const struct {
                const char *in, *says;
        } bad[] = {
                { "[]", "not a JSON object" },
                { "{\"annotations\":{\"org.abswitch.rollout.duration\":\"6h\"}}", "no org.abswitch.rollout.start" },
                { "{\"annotations\":{\"org.abswitch.rollout.start\":\"tomorrow\"}}", "'tomorrow' is not an RFC 3339" },
                { "{\"annotations\":{\"org.abswitch.rollout.start\":5}}", "is not an RFC 3339" },
                { "{\"annotations\":{\"org.abswitch.rollout.start\":\"2026-12-02T06:00:00Z\","
                  "\"org.abswitch.rollout.duration\":\"soon\"}}", "'soon' is not a duration" },
                { "{\"annotations\":{\"org.abswitch.rollout.start\":\"2026-12-02T06:00:00Z\"}} x", "not a JSON object" },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                why[0] = 0;
                assert_int_equal(rollout_from_manifest(bad[i].in, strlen(bad[i].in), &r, why, sizeof(why)), -EBADMSG);
                if (!strstr(why, bad[i].says))
                        fail_msg("'%s': '%s' does not say '%s'", bad[i].in, why, bad[i].says);
        }
}

#define DIGEST1 "sha256:2c7357edebd246d9aec123d437ec2bf52c7357edebd246d9aec123d437ec2bf5"
#define DIGEST2 "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

static void machine_id(unsigned i, char ret[static 33]) {
        /* Ids as systemd makes them: random-looking, here from a counter. */
        uint64_t x = 0x9e3779b97f4a7c15ull * (i + 1), y = 0xbf58476d1ce4e5b9ull ^ (x >> 29);
        (void) snprintf(ret, 33, "%016llx%016llx", (unsigned long long) x, (unsigned long long) (y * 0x94d049bb133111ebull));
}

static void test_wariness(void **state) {
        (void) state;
        enum { N = 4000, BINS = 10 };
        unsigned bins[BINS] = {}, same_order = 0;
        double prev1 = 0, prev2 = 0;
        for (unsigned i = 0; i < N; i++) {
                char id[33];
                double w1, w1again, w2;
                machine_id(i, id);
                assert_int_equal(rollout_wariness(id, DIGEST1, &w1), 0);
                assert_int_equal(rollout_wariness(id, DIGEST1, &w1again), 0);
                assert_int_equal(rollout_wariness(id, DIGEST2, &w2), 0);
                assert_true(w1 == w1again);              /* stable */
                assert_true(w1 >= 0 && w1 < 1);
                assert_true(w2 >= 0 && w2 < 1);
                bins[(unsigned) (w1 * BINS)]++;
                /* Another image, another order: machine i and i-1 swap places often. */
                if (i > 0 && (w1 < prev1) == (w2 < prev2))
                        same_order++;
                prev1 = w1;
                prev2 = w2;
        }
        for (unsigned b = 0; b < BINS; b++)
                if (bins[b] < N / BINS * 8 / 10 || bins[b] > N / BINS * 12 / 10)
                        fail_msg("wariness bin %u holds %u of %u: not spread evenly", b, bins[b], N);
        assert_true(same_order > N * 4 / 10 && same_order < N * 6 / 10);

        double w;
        assert_int_equal(rollout_wariness("uninitialized", DIGEST1, &w), -EINVAL);
        assert_int_equal(rollout_wariness("0123456789ABCDEF0123456789abcdef", DIGEST1, &w), -EINVAL);
}

static void test_admits(void **state) {
        (void) state;
        struct rollout r = { .staged = true, .start = 1000000, .duration = 3600 };
        assert_int_equal(rollout_admitted_at(&r, 0.0), 1000000);
        assert_int_equal(rollout_admitted_at(&r, 0.5), 1001800);
        assert_false(rollout_admits(&r, 0.0, 999999));
        assert_true(rollout_admits(&r, 0.0, 1000000));
        assert_false(rollout_admits(&r, 0.5, 1001799));
        assert_true(rollout_admits(&r, 0.5, 1001800));
        assert_true(rollout_admits(&r, 0.99999, 1003600));
        /* Once admitted, admitted for every later time, for every wariness. */
        for (int k = 0; k < 100; k++) {
                double w = k / 100.0;
                bool was = false;
                for (time_t t = 999000; t < 1004000; t += 17) {
                        bool now = rollout_admits(&r, w, t);
                        assert_true(!was || now);
                        was = now;
                }
                assert_true(was);
        }
        struct rollout none = {};
        assert_true(rollout_admits(&none, 0.99, 0));
        struct rollout at_once = { .staged = true, .start = 5000 };
        assert_false(rollout_admits(&at_once, 0.9, 4999));
        assert_true(rollout_admits(&at_once, 0.9, 5000));
}

/* ---- ids and FleetLock -------------------------------------------------------- */

static void test_ids(void **state) {
        (void) state;
        char id[33], a[33], b[33];
        assert_int_equal(update_machine_id_parse("0123456789abcdef0123456789abcdef\n", 33, id), 0);
        assert_string_equal(id, "0123456789abcdef0123456789abcdef");
        assert_int_equal(update_machine_id_parse("0123456789abcdef0123456789abcdef", 32, id), 0);
        assert_int_equal(update_machine_id_parse("uninitialized\n", 14, id), -EINVAL);
        assert_int_equal(update_machine_id_parse("0123456789abcdef0123456789abcdeg\n", 33, id), -EINVAL);
        assert_int_equal(update_machine_id_parse("0123456789abcdef0123456789abcdef\n\n", 34, id), -EINVAL);
        assert_int_equal(update_fleetlock_id("0123456789abcdef0123456789abcdef", a), 0);
        assert_int_equal(update_fleetlock_id("0123456789abcdef0123456789abcdee", b), 0);
        assert_int_equal(strlen(a), 32);
        assert_string_not_equal(a, b);
        assert_string_not_equal(a, "0123456789abcdef0123456789abcdef");   /* not the machine id itself */
        assert_int_equal(a[12], '4');                                         /* a version 4 UUID */
        assert_non_null(strchr("89ab", a[16]));
        assert_int_equal(update_fleetlock_id("0123456789abcdef0123456789abcdef", b), 0);
        assert_string_equal(a, b);
}

static void test_fleetlock_body(void **state) {
        (void) state;
        char *body = NULL, d[300];
        assert_int_equal(fleetlock_body("workers", "c988d2509fdf4cdcbed39037c56406fb", &body), 0);
        json_object *o = json_tokener_parse(body), *p, *v;
        assert_non_null(o);
        assert_true(json_object_object_get_ex(o, "client_params", &p));
        assert_true(json_object_object_get_ex(p, "id", &v));
        assert_string_equal(json_object_get_string(v), "c988d2509fdf4cdcbed39037c56406fb");
        assert_true(json_object_object_get_ex(p, "group", &v));
        assert_string_equal(json_object_get_string(v), "workers");
        json_object_put(o);
        free(body);
        assert_string_equal(fleetlock_op_path(FLEETLOCK_PRE_REBOOT), "/v1/pre-reboot");
        assert_string_equal(fleetlock_op_path(FLEETLOCK_STEADY_STATE), "/v1/steady-state");

        static const char err[] = "{\"kind\":\"failed_lock_semaphore_full\",\"value\":\"semaphore currently full\"}";
        fleetlock_error_describe(409, err, strlen(err), d, sizeof(d));
        assert_string_equal(d, "HTTP 409, failed_lock_semaphore_full: semaphore currently full");
        fleetlock_error_describe(502, "Bad Gateway\nmore", 16, d, sizeof(d));
        assert_string_equal(d, "HTTP 502: Bad Gateway");
        fleetlock_error_describe(500, "", 0, d, sizeof(d));
        assert_string_equal(d, "HTTP 500");
        fleetlock_error_describe(500, "{\"kind\":\"a\x1b\",\"value\":\"b\"}", 24, d, sizeof(d));
        assert_null(strchr(d, '\x1b'));
        assert_true(fleetlock_group_valid("default"));
        assert_true(fleetlock_group_valid("tier-1.eu"));
        assert_false(fleetlock_group_valid(""));
        assert_false(fleetlock_group_valid("a_b"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_windows_every_minute),
                cmocka_unit_test(test_no_window_is_always),
                cmocka_unit_test(test_window_parse),
                cmocka_unit_test(test_minute_of_week),
                cmocka_unit_test(test_config),
                cmocka_unit_test(test_config_refusals),
                cmocka_unit_test(test_rfc3339),
                cmocka_unit_test(test_duration),
                cmocka_unit_test(test_rollout_annotations),
                cmocka_unit_test(test_wariness),
                cmocka_unit_test(test_admits),
                cmocka_unit_test(test_ids),
                cmocka_unit_test(test_fleetlock_body),
        };
        return cmocka_run_group_tests_name("update", tests, NULL, NULL);
}
