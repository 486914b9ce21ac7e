/* SPDX-License-Identifier: MIT */
/* Version order of systemd's strverscmp_improved(). See version.h.
 *
 * One round of the loop below looks at one point of both strings: it drops
 * bytes that are no part of a version, settles the prefixes in systemd's
 * order ('~', the end of either string, '-', '^', '.'), then compares one
 * segment of each. A round that finds both the same moves both on. */

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "version.h"

/* ASCII only: the locale must not change an order that decides installs. */
static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

static bool is_letter(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_version_char(char c) {
        return is_digit(c) || is_letter(c) || c == '~' || c == '-' || c == '^' || c == '.';
}

static int sign(long d) {
        return (d > 0) - (d < 0);
}

static size_t run_of(const char *s, bool (*in)(char)) {
        size_t n = 0;
        while (in(s[n]))
                n++;
        return n;
}

/* A prefix at this point: the side that has it and the other not is older
 * (-1 when that is a); both have it: both step over it. */
static int prefix(const char **a, const char **b, char p) {
        bool pa = **a == p, pb = **b == p;

        if (pa != pb)
                return pa ? -1 : 1;
        if (pa) {
                (*a)++;
                (*b)++;
        }
        return 0;
}

/* One segment of each, a and b moved past them when they are the same. */
static int segment(const char **a, const char **b) {
        const char *x = *a, *y = *b;
        size_t nx, ny;
        int r;

        if (is_digit(*x) || is_digit(*y)) {
                nx = run_of(x, is_digit);
                ny = run_of(y, is_digit);
                /* A number is newer than no number here. */
                if (!nx != !ny)
                        return nx ? 1 : -1;
                *a = x + nx;
                *b = y + ny;
                /* 007 is 7; then the longer number is the larger, and two
                 * of one length compare as text: numbers of any length. */
                while (*x == '0')
                        x++, nx--;
                while (*y == '0')
                        y++, ny--;
                if (nx != ny)
                        return nx > ny ? 1 : -1;
                return sign(strncmp(x, y, nx));
        }

        nx = run_of(x, is_letter);
        ny = run_of(y, is_letter);
        r = sign(strncmp(x, y, nx < ny ? nx : ny));
        if (r == 0 && nx != ny)
                r = nx > ny ? 1 : -1;
        *a = x + nx;
        *b = y + ny;
        return r;
}

int version_compare(const char *a, const char *b) {
        a = a ?: "";
        b = b ?: "";
        for (;;) {
                int r;

                while (*a && !is_version_char(*a))
                        a++;
                while (*b && !is_version_char(*b))
                        b++;

                /* '~' before the end: "1~rc1" is older than "1". */
                r = prefix(&a, &b, '~');
                if (r != 0)
                        return r;
                /* Then the string that ends first is the older. */
                if (!*a || !*b)
                        return (*a != 0) - (*b != 0);
                r = prefix(&a, &b, '-');
                if (r == 0)
                        r = prefix(&a, &b, '^');
                if (r == 0)
                        r = prefix(&a, &b, '.');
                if (r == 0)
                        r = segment(&a, &b);
                if (r != 0)
                        return r;
        }
}
