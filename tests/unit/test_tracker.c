/*
 * sf_tracker: the committable offset is always the lowest unfinished
 * offset, or one past the highest begun when nothing is unfinished.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kafka.h"

static void test_empty(void **state)
{
        sf_tracker_t *t = sf_tracker_new();

        (void)state;
        assert_int_equal(sf_tracker_committable(t), -1);
        assert_int_equal(sf_tracker_inflight(t), 0);
        assert_int_equal(sf_tracker_done(t, 0), -1);
        assert_int_equal(sf_tracker_done(t, 42), -1);
        assert_int_equal(sf_tracker_committable(t), -1);
        sf_tracker_destroy(t);
        sf_tracker_destroy(NULL);
}

static void test_in_order(void **state)
{
        sf_tracker_t *t = sf_tracker_new();

        (void)state;
        sf_tracker_begin(t, 100);
        assert_int_equal(sf_tracker_committable(t), 100);
        assert_int_equal(sf_tracker_inflight(t), 1);
        assert_int_equal(sf_tracker_done(t, 100), 101);
        assert_int_equal(sf_tracker_committable(t), 101);
        assert_int_equal(sf_tracker_inflight(t), 0);
        for (int64_t o = 101; o < 110; o++)
                sf_tracker_begin(t, o);
        assert_int_equal(sf_tracker_inflight(t), 9);
        for (int64_t o = 101; o < 110; o++) {
                assert_int_equal(sf_tracker_done(t, o), o + 1);
                assert_int_equal(sf_tracker_committable(t), o + 1);
        }
        assert_int_equal(sf_tracker_inflight(t), 0);
        sf_tracker_destroy(t);
}

static void test_out_of_order(void **state)
{
        sf_tracker_t *t = sf_tracker_new();

        (void)state;
        for (int64_t o = 10; o < 15; o++)
                sf_tracker_begin(t, o);
        assert_int_equal(sf_tracker_done(t, 12), -1);
        assert_int_equal(sf_tracker_committable(t), 10);
        assert_int_equal(sf_tracker_inflight(t), 4);
        assert_int_equal(sf_tracker_done(t, 14), -1);
        assert_int_equal(sf_tracker_committable(t), 10);
        /* 10 done: 11 is now the lowest unfinished. */
        assert_int_equal(sf_tracker_done(t, 10), 11);
        /* 11 done: 12 was done already, 13 is next. */
        assert_int_equal(sf_tracker_done(t, 11), 13);
        assert_int_equal(sf_tracker_inflight(t), 1);
        /* 13 done: 14 was done, nothing unfinished: one past 14. */
        assert_int_equal(sf_tracker_done(t, 13), 15);
        assert_int_equal(sf_tracker_committable(t), 15);
        assert_int_equal(sf_tracker_inflight(t), 0);
        sf_tracker_destroy(t);
}

static void test_reverse_order(void **state)
{
        sf_tracker_t *t = sf_tracker_new();

        (void)state;
        for (int64_t o = 0; o < 100; o++)
                sf_tracker_begin(t, o);
        for (int64_t o = 99; o > 0; o--) {
                assert_int_equal(sf_tracker_done(t, o), -1);
                assert_int_equal(sf_tracker_committable(t), 0);
        }
        assert_int_equal(sf_tracker_inflight(t), 1);
        assert_int_equal(sf_tracker_done(t, 0), 100);
        assert_int_equal(sf_tracker_inflight(t), 0);
        sf_tracker_destroy(t);
}

/* Compacted topics and transaction markers leave holes in the offsets a
 * consumer sees. */
static void test_gaps(void **state)
{
        sf_tracker_t *t = sf_tracker_new();

        (void)state;
        sf_tracker_begin(t, 5);
        sf_tracker_begin(t, 9);
        sf_tracker_begin(t, 20);
        assert_int_equal(sf_tracker_committable(t), 5);
        assert_int_equal(sf_tracker_done(t, 9), -1);
        assert_int_equal(sf_tracker_done(t, 5), 20);
        assert_int_equal(sf_tracker_committable(t), 20);
        sf_tracker_begin(t, 1000);
        assert_int_equal(sf_tracker_done(t, 20), 1000);
        assert_int_equal(sf_tracker_done(t, 1000), 1001);
        assert_int_equal(sf_tracker_committable(t), 1001);
        sf_tracker_destroy(t);
}

static void test_unknown_and_repeated_done(void **state)
{
        sf_tracker_t *t = sf_tracker_new();

        (void)state;
        sf_tracker_begin(t, 10);
        sf_tracker_begin(t, 12);
        sf_tracker_begin(t, 14);
        /* Below, between and above what was begun. */
        assert_int_equal(sf_tracker_done(t, 3), -1);
        assert_int_equal(sf_tracker_done(t, 11), -1);
        assert_int_equal(sf_tracker_done(t, 13), -1);
        assert_int_equal(sf_tracker_done(t, 99), -1);
        assert_int_equal(sf_tracker_inflight(t), 3);
        assert_int_equal(sf_tracker_committable(t), 10);
        /* A second done of the same offset changes nothing. */
        assert_int_equal(sf_tracker_done(t, 12), -1);
        assert_int_equal(sf_tracker_done(t, 12), -1);
        assert_int_equal(sf_tracker_inflight(t), 2);
        assert_int_equal(sf_tracker_done(t, 10), 14);
        assert_int_equal(sf_tracker_done(t, 10), -1);
        assert_int_equal(sf_tracker_committable(t), 14);
        assert_int_equal(sf_tracker_inflight(t), 1);
        sf_tracker_destroy(t);
}

/* Begin of an offset not above the highest begun is ignored: the offsets
 * in flight stay sorted and the committable offset never goes back. */
static void test_begin_not_increasing(void **state)
{
        sf_tracker_t *t = sf_tracker_new();

        (void)state;
        sf_tracker_begin(t, 7);
        sf_tracker_begin(t, 7);
        sf_tracker_begin(t, 3);
        sf_tracker_begin(t, -1);
        assert_int_equal(sf_tracker_inflight(t), 1);
        assert_int_equal(sf_tracker_done(t, 3), -1);
        assert_int_equal(sf_tracker_done(t, 7), 8);
        sf_tracker_begin(t, 5);
        assert_int_equal(sf_tracker_inflight(t), 0);
        assert_int_equal(sf_tracker_committable(t), 8);
        sf_tracker_destroy(t);
}

/* Deterministic xorshift, so a failure replays. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return rng_state;
}

/* One million offsets, all begun, done in a random order; after every done
 * the tracker agrees with a plain array of flags. */
static void test_large_random(void **state)
{
        enum { N = 1000000 };
        sf_tracker_t *t = sf_tracker_new();
        int64_t *order = malloc(N * sizeof(*order));
        unsigned char *done = calloc(N, 1);
        int64_t lowest = 0;

        (void)state;
        for (int64_t i = 0; i < N; i++) {
                sf_tracker_begin(t, 2 * i); /* even offsets: gaps */
                order[i] = i;
        }
        for (int64_t i = N - 1; i > 0; i--) {
                int64_t j = (int64_t)(rng() % (uint64_t)(i + 1));
                int64_t tmp = order[i];

                order[i] = order[j];
                order[j] = tmp;
        }
        assert_int_equal(sf_tracker_inflight(t), N);
        for (int64_t i = 0; i < N; i++) {
                int64_t got = sf_tracker_done(t, 2 * order[i]);
                int64_t before = lowest;

                done[order[i]] = 1;
                while (lowest < N && done[lowest])
                        lowest++;
                if (lowest == before)
                        assert_int_equal(got, -1);
                else
                        assert_int_equal(got, lowest < N ? 2 * lowest
                                                         : 2 * (N - 1) + 1);
                assert_int_equal(sf_tracker_inflight(t), N - 1 - i);
        }
        assert_int_equal(sf_tracker_committable(t), 2 * (N - 1) + 1);
        free(order);
        free(done);
        sf_tracker_destroy(t);
}

/* A sliding window, as a worker runs it: begin while fewer than W are in
 * flight, finish a random one of them, many times around the ring. */
static void test_sliding_window(void **state)
{
        enum { W = 1000, TOTAL = 500000 };
        sf_tracker_t *t = sf_tracker_new();
        int64_t *open = malloc(W * sizeof(*open));
        unsigned char *done = calloc(TOTAL, 1);
        size_t open_cnt = 0;
        int64_t next = 0, lowest = 0;

        (void)state;
        while (lowest < TOTAL) {
                while (open_cnt < W && next < TOTAL) {
                        sf_tracker_begin(t, next);
                        open[open_cnt++] = next++;
                }
                size_t k = (size_t)(rng() % open_cnt);
                int64_t o = open[k];
                int64_t got, before = lowest;

                open[k] = open[--open_cnt];
                got = sf_tracker_done(t, o);
                done[o] = 1;
                while (lowest < TOTAL && done[lowest])
                        lowest++;
                assert_int_equal(got, lowest == before ? -1 : lowest);
                assert_int_equal(sf_tracker_committable(t),
                                 lowest < next ? lowest : next);
                assert_int_equal(sf_tracker_inflight(t), open_cnt);
        }
        assert_int_equal(sf_tracker_committable(t), TOTAL);
        free(open);
        free(done);
        sf_tracker_destroy(t);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_empty),
            cmocka_unit_test(test_in_order),
            cmocka_unit_test(test_out_of_order),
            cmocka_unit_test(test_reverse_order),
            cmocka_unit_test(test_gaps),
            cmocka_unit_test(test_unknown_and_repeated_done),
            cmocka_unit_test(test_begin_not_increasing),
            cmocka_unit_test(test_large_random),
            cmocka_unit_test(test_sliding_window),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
