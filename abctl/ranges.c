/* SPDX-License-Identifier: MIT */
/* Coalescing byte ranges into a bounded number of requests (ranges.h). */

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "ranges.h"

int ranges_check(const struct oci_range *r, size_t n, uint64_t size, char *why, size_t whysize) {
        uint64_t end = 0;
        for (size_t i = 0; i < n; i++) {
                if (r[i].length == 0) {
                        (void) snprintf(why, whysize, "range %zu is empty", i);
                        return -EINVAL;
                }
                if (i > 0 && r[i].offset < end) {
                        (void) snprintf(why, whysize, "range %zu (at %llu) starts before range %zu ends (%llu): "
                                        "ranges must be sorted and not overlap", i, (unsigned long long) r[i].offset,
                                        i - 1, (unsigned long long) end);
                        return -EINVAL;
                }
                if (r[i].offset > size || r[i].length > size - r[i].offset) {
                        (void) snprintf(why, whysize, "range %zu (%llu+%llu) ends past the %llu bytes", i,
                                        (unsigned long long) r[i].offset, (unsigned long long) r[i].length,
                                        (unsigned long long) size);
                        return -EINVAL;
                }
                end = r[i].offset + r[i].length;
        }
        return 0;
}

struct gap {
        uint64_t size;
        size_t after;   /* the gap between r[after] and r[after + 1] */
};

static int gap_cmp(const void *a, const void *b) {
        const struct gap *x = a, *y = b;
        if (x->size != y->size)
                return x->size < y->size ? -1 : 1;
        /* Equal gaps: the earlier first, so the result does not depend on qsort. */
        return x->after < y->after ? -1 : x->after > y->after;
}

uint64_t ranges_coalesce(const struct oci_range *r, size_t n, unsigned max_requests, struct range_request *ret,
                         size_t *ret_n) {
        size_t max = max_requests ? max_requests : 1, groups = n, merged_n = 0;
        struct gap *gaps = NULL;
        bool *merge = NULL;
        uint64_t filler = 0;

        *ret_n = 0;
        if (n == 0)
                return 0;
        /* merge[i]: r[i] and r[i + 1] go in one request. Touching ones
         * always (a gap of 0 costs nothing). */
        merge = calloc(n, sizeof(*merge));
        gaps = n > 1 ? calloc(n - 1, sizeof(*gaps)) : NULL;
        if (!merge || (n > 1 && !gaps)) {
                /* Without memory to choose: everything in one request is
                 * always within the bound. */
                free(merge);
                free(gaps);
                ret[0] = (struct range_request) { .first = 0, .count = n, .offset = r[0].offset,
                                                  .length = r[n - 1].offset + r[n - 1].length - r[0].offset };
                *ret_n = 1;
                for (size_t i = 0; i + 1 < n; i++)
                        filler += r[i + 1].offset - (r[i].offset + r[i].length);
                return filler;
        }
        size_t ng = 0;
        for (size_t i = 0; i + 1 < n; i++) {
                uint64_t g = r[i + 1].offset - (r[i].offset + r[i].length);
                if (g == 0) {
                        merge[i] = true;
                        groups--;
                } else
                        gaps[ng++] = (struct gap) { .size = g, .after = i };
        }
        if (groups > max) {
                qsort(gaps, ng, sizeof(*gaps), gap_cmp);
                for (size_t k = 0; groups > max && k < ng; k++, groups--)
                        merge[gaps[k].after] = true;
        }
        for (size_t i = 0; i < n;) {
                size_t j = i;
                while (j + 1 < n && merge[j])
                        j++;
                uint64_t start = r[i].offset, end = r[j].offset + r[j].length, sum = 0;
                for (size_t k = i; k <= j; k++)
                        sum += r[k].length;
                ret[merged_n++] = (struct range_request) { .first = i, .count = j - i + 1, .offset = start,
                                                           .length = end - start };
                filler += end - start - sum;
                i = j + 1;
        }
        free(merge);
        free(gaps);
        *ret_n = merged_n;
        return filler;
}

void ranges_append(struct oci_range *r, size_t *n, uint64_t offset, uint64_t length) {
        if (*n > 0 && r[*n - 1].offset + r[*n - 1].length == offset) {
                r[*n - 1].length += length;
                return;
        }
        r[(*n)++] = (struct oci_range) { .offset = offset, .length = length };
}
