/* SPDX-License-Identifier: MIT */
/* version_compare (common/version.c): systemd's strverscmp_improved order. */
#include "unit.h"
#include "../../common/version.h"

/* Each row: a, b, and what version_compare(a, b) must say. */
static const struct {
        const char *a, *b;
        int want;
} pairs[] = {
        /* plain numbers, of any length */
        { "1", "2", -1 },          { "2", "1", 1 },            { "9", "10", -1 },
        { "1.9", "1.10", -1 },     { "1.10", "1.9", 1 },       { "007", "7", 0 },
        { "0", "00", 0 },          { "0", "", 1 },             { "", "", 0 },
        { "10", "9.99", 1 },       { "2", "2.0", -1 },         { "2.0", "2.0.0", -1 },
        { "18446744073709551616", "18446744073709551615", 1 },  /* past uint64: text, not parsed */
        { "99999999999999999999999", "100000000000000000000000", -1 },
        { "1.02", "1.2", 0 },      { "1.002", "1.3", -1 },
        /* letters */
        { "a", "b", -1 },          { "abc", "abcde", -1 },     { "abd", "abcde", 1 },
        { "A", "a", -1 },          { "1a", "1b", -1 },         { "1", "a", 1 },
        { "1a", "1", 1 },          { "1a", "2", -1 },          { "123a", "123.a", 1 },
        /* systemd's documented order, each against the next */
        { "122.1", "123~rc1-1", -1 }, { "123~rc1-1", "123", -1 }, { "123", "123-a", -1 },
        { "123-a", "123-a.1", -1 },   { "123-a.1", "123-1", -1 },   { "123-1", "123-1.1", -1 },
        { "123-1.1", "123^post1", -1 }, { "123^post1", "123.a-1", -1 }, { "123.a-1", "123.1-1", -1 },
        { "123.1-1", "123a-1", -1 },  { "123a-1", "124-1", -1 },
        /* pre-releases: '~' is older than anything at its point, even the end */
        { "1~rc1", "1", -1 },      { "1~rc1", "1~rc2", -1 },   { "1~", "1", -1 },
        { "1~rc1", "1~", 1 },      { "~", "", -1 },
        { "1~~", "1~", 1 },        /* as systemd: one '~' a round, the end is checked after it */
        { "2.0~beta", "2.0~alpha", 1 },
        /* '-' release, '^' patched, '.' point: in that order */
        { "1-1", "1^1", -1 },      { "1^1", "1.1", -1 },       { "1-1", "1.1", -1 },
        { "1.1", "1a", -1 },       { "1-", "1", 1 },           { "1^", "1-", 1 },
        /* bytes that are no part of a version separate segments */
        { "123_a", "123a", 0 },    { "1_2", "1.2", 1 },        { "1_2", "12", -1 },
        { "v1", "v2", -1 },        { "  1", "1", 0 },          { "1+2", "1.2", 1 },
        { "\xc3\xa9" "1", "1", 0 },   { "1\xff", "1", 0 },
        /* what mkuki --version and the tests use */
        { "1", "2", -1 },          { "2", "3", -1 },           { "3", "2", 1 },
        { "2024.1", "2024.10", -1 }, { "2.1", "2", 1 },
};

static void test_pairs(void **state) {
        for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
                int got = version_compare(pairs[i].a, pairs[i].b);
                if (got != pairs[i].want)
                        fail_msg("version_compare(\"%s\", \"%s\") = %d, want %d", pairs[i].a, pairs[i].b, got,
                                 pairs[i].want);
                /* and the other way round */
                got = version_compare(pairs[i].b, pairs[i].a);
                if (got != -pairs[i].want)
                        fail_msg("version_compare(\"%s\", \"%s\") = %d, want %d", pairs[i].b, pairs[i].a, got,
                                 -pairs[i].want);
        }
}

static void test_null_is_empty(void **state) {
        assert_int_equal(version_compare(NULL, NULL), 0);
        assert_int_equal(version_compare(NULL, ""), 0);
        assert_int_equal(version_compare(NULL, "1"), -1);
        assert_int_equal(version_compare("1", NULL), 1);
        assert_int_equal(version_compare("~1", NULL), -1);
}

/* A sample of strings over the bytes that matter, plus the table's. */
#define SAMPLE 160
static char sample[SAMPLE][8];

static void make_sample(void) {
        static const char alphabet[] = "0019aZb~-^._";
        unsigned x = 12345;
        for (size_t i = 0; i < SAMPLE; i++) {
                x = x * 1103515245u + 12345u;
                size_t len = (x >> 16) % 7;
                for (size_t k = 0; k < len; k++) {
                        x = x * 1103515245u + 12345u;
                        sample[i][k] = alphabet[(x >> 16) % (sizeof(alphabet) - 1)];
                }
                sample[i][len] = 0;
        }
}

static void test_antisymmetric_and_reflexive(void **state) {
        make_sample();
        for (size_t i = 0; i < SAMPLE; i++) {
                assert_int_equal(version_compare(sample[i], sample[i]), 0);
                for (size_t j = 0; j < SAMPLE; j++) {
                        int r = version_compare(sample[i], sample[j]);
                        assert_true(r >= -1 && r <= 1);
                        if (version_compare(sample[j], sample[i]) != -r)
                                fail_msg("not antisymmetric: \"%s\" vs \"%s\"", sample[i], sample[j]);
                }
        }
}

/* An order: a <= b and b <= c give a <= c, and a == b, b == c give a == c. */
static void test_transitive(void **state) {
        make_sample();
        static int cmp[SAMPLE][SAMPLE];
        for (size_t i = 0; i < SAMPLE; i++)
                for (size_t j = 0; j < SAMPLE; j++)
                        cmp[i][j] = version_compare(sample[i], sample[j]);
        for (size_t i = 0; i < SAMPLE; i++)
                for (size_t j = 0; j < SAMPLE; j++)
                        for (size_t k = 0; k < SAMPLE; k++) {
                                if (cmp[i][j] <= 0 && cmp[j][k] <= 0 && cmp[i][k] > 0)
                                        fail_msg("not transitive: \"%s\" <= \"%s\" <= \"%s\" but the first is newer",
                                                 sample[i], sample[j], sample[k]);
                                if (cmp[i][j] == 0 && cmp[j][k] == 0 && cmp[i][k] != 0)
                                        fail_msg("equality not transitive: \"%s\" \"%s\" \"%s\"", sample[i],
                                                 sample[j], sample[k]);
                        }
}

/* The table's strings in a chain that sorts: sorting them gives an order
 * in which each is <= the next (qsort with a comparator that is not an
 * order may produce anything). */
static int by_version(const void *x, const void *y) {
        return version_compare(*(const char *const *) x, *(const char *const *) y);
}

static void test_sorts(void **state) {
        const char *v[] = { "124-1", "123a-1", "123.1-1", "123.a-1", "123^post1", "123-1.1", "123-1",
                            "123-a.1", "123-a", "123", "123~rc1-1", "122.1" };
        const char *want[] = { "122.1", "123~rc1-1", "123", "123-a", "123-a.1", "123-1", "123-1.1",
                               "123^post1", "123.a-1", "123.1-1", "123a-1", "124-1" };
        qsort(v, sizeof(v) / sizeof(v[0]), sizeof(v[0]), by_version);
        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
                assert_string_equal(v[i], want[i]);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_pairs),
                cmocka_unit_test(test_null_is_empty),
                cmocka_unit_test(test_antisymmetric_and_reflexive),
                cmocka_unit_test(test_transitive),
                cmocka_unit_test(test_sorts),
        };
        return cmocka_run_group_tests_name("version", tests, NULL, NULL);
}
