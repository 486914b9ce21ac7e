/* SPDX-License-Identifier: MIT */
/* The slots' state in the GPT of their disk. */

#include <fcntl.h>

#include "../common/macro.h"
#include "slots.h"

static unsigned present(const struct slot_layout *l, unsigned partnos[_SLOT_MAX], Slot slots[_SLOT_MAX]) {
        unsigned n = 0;
        for (int s = 0; s < _SLOT_MAX; s++)
                if (l->slot[s].present) {
                        partnos[n] = l->slot[s].data_partno;
                        slots[n++] = s;
                }
        return n;
}

int slots_state_read(const struct slot_layout *l, struct slot_state ret[_SLOT_MAX], struct gpt_status *ret_status) {
        unsigned partnos[_SLOT_MAX];
        Slot slots[_SLOT_MAX];
        uint64_t attrs[_SLOT_MAX];
        unsigned n = present(l, partnos, slots);

        _cleanup_close_ int fd = open(l->disk, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        int r = gpt_get_attrs(fd, partnos, attrs, n, ret_status);
        if (r < 0)
                return r;
        for (int s = 0; s < _SLOT_MAX; s++)
                ret[s] = (struct slot_state) {};
        for (unsigned i = 0; i < n; i++)
                ret[slots[i]] = slot_state_from_attrs(attrs[i]);
        return 0;
}

int slots_state_write(const struct slot_layout *l, const struct slot_state st[_SLOT_MAX], unsigned mask,
                      unsigned *ret_writes) {
        unsigned partnos[_SLOT_MAX];
        Slot slots[_SLOT_MAX];
        uint64_t attrs[_SLOT_MAX];
        struct gpt_status gs = {};
        unsigned n = present(l, partnos, slots);

        _cleanup_close_ int fd = open(l->disk, O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        int r = gpt_get_attrs(fd, partnos, attrs, n, NULL);
        if (r < 0)
                return r;
        /* Only the slots the caller changes: the others keep what is on the
         * disk now, whatever the caller read earlier. */
        for (unsigned i = 0; i < n; i++)
                if (mask & (1u << slots[i]))
                        attrs[i] = slot_state_to_attrs(attrs[i], st[slots[i]]);
        r = gpt_set_attrs(fd, partnos, attrs, n, NULL, &gs);
        if (ret_writes)
                *ret_writes += gs.writes;
        return r;
}

void slots_boot_order_hint(const struct slot_state st[_SLOT_MAX], int *ret_first, int *ret_second) {
        int first = -1, second = -1;
        for (int s = 0; s < _SLOT_MAX; s++) {
                if (!st[s].successful || st[s].priority == 0)
                        continue;
                if (first < 0 || st[s].priority > st[first].priority)
                        second = first, first = s;
                else
                        second = s;
        }
        *ret_first = first;
        *ret_second = second;
}
