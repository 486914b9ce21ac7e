/* SPDX-License-Identifier: MIT */
#pragma once

/* Byte ranges of a blob or stream, and their coalescing into few HTTP
 * Range requests (pure: no I/O; oci.c and delta.c use it, the unit tests
 * enumerate it). */

#include <stddef.h>
#include <stdint.h>

struct oci_range {
        uint64_t offset, length;
};

/* One request: ranges r[first..first+count) and the gap filler between
 * them, [offset, offset+length). */
struct range_request {
        size_t first, count;
        uint64_t offset, length;
};

/* r[0..n) are sorted, do not overlap, are not empty and end by size.
 * 0, or -EINVAL with why saying which range is wrong. */
int ranges_check(const struct oci_range *r, size_t n, uint64_t size, char *why, size_t whysize);

/* Groups r[0..n) (checked) into at most max_requests requests (max_requests
 * >= 1), merging touching neighbours always and then the smallest gaps
 * first, so the fewest filler bytes are fetched for the bound. Writes the
 * requests into ret[0..*ret_n) (room for n). Returns the filler bytes. */
uint64_t ranges_coalesce(const struct oci_range *r, size_t n, unsigned max_requests, struct range_request *ret,
                         size_t *ret_n);

/* Appends [offset, offset+length) to r[0..*n) (room for one more), merging
 * it into the last range when they touch. For building sorted lists. */
void ranges_append(struct oci_range *r, size_t *n, uint64_t offset, uint64_t length);
