/* SPDX-License-Identifier: MIT */
/* update.conf (abctl/updateconf.c), written by operators and configuration
 * management, and an image manifest's rollout annotations (abctl/rollout.c),
 * from a registry: the first byte picks which. An accepted config holds a
 * registry reference, windows the week can use and NUL-terminated fields;
 * a refused one has a reason that names its line. Every accepted window
 * answers inside/next/close consistently at a few minutes of the week. */
#include <assert.h>
#include <errno.h>

#include "../../abctl/update.h"
#include "fuzz.h"

FUZZ_QUIET

static void check_windows(const struct update_config *c) {
        for (unsigned m = 0; m < MINUTES_PER_WEEK; m += 997) {
                unsigned next = 0, close = 0;
                bool in = update_windows_inside(c->windows, c->n_windows, m);
                int r = update_windows_next_open(c->windows, c->n_windows, m, &next);
                assert(r == 0 || (r == -ENOENT && c->n_windows == 0));
                assert(r < 0 || (next == 0) == in);
                assert(r < 0 || next < MINUTES_PER_WEEK);
                r = update_windows_close_in(c->windows, c->n_windows, m, &close);
                assert(r == 0 || r == -ENOENT);
                assert(c->n_windows == 0 || (r == 0) == in);
                assert(r < 0 || (close >= 1 && close <= MINUTES_PER_WEEK));
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        char why[600] = "";
        if (data[0] & 1) {
                struct rollout r;
                int e = rollout_from_manifest((const char *) data + 1, size - 1, &r, why, sizeof(why));
                assert(e == 0 || e == -EBADMSG || e == -ENOMEM);
                assert(e == 0 || (memchr(why, 0, sizeof(why)) && why[0]));
                assert(e != 0 || !r.staged || r.duration <= 366u * 86400u);
                return 0;
        }
        struct update_config *c = malloc(sizeof(*c));
        if (!c)
                abort();
        int e = update_config_parse((const char *) data + 1, size - 1, c, why, sizeof(why));
        assert(e == 0 || e == -EINVAL);
        if (e == 0) {
                assert(c->reference[0] && memchr(c->reference, 0, sizeof(c->reference)));
                assert(strchr(c->reference, '/') && !strchr(c->reference, '@'));
                assert(c->n_windows <= UPDATE_WINDOWS_MAX);
                for (size_t i = 0; i < c->n_windows; i++)
                        assert(c->windows[i].days && c->windows[i].start < MINUTES_PER_DAY &&
                               c->windows[i].length >= 1 && c->windows[i].length <= MINUTES_PER_WEEK);
                assert(fleetlock_group_valid(c->fleetlock_group));
                assert(c->fleetlock_wait >= 1 && c->timeout >= 1);
                check_windows(c);
        } else
                assert(memchr(why, 0, sizeof(why)) && why[0]);
        free(c);
        return 0;
}
