/*
 * sf_settle: a position is returned only when it and every position sent
 * before it were delivered and the downstream group committed past each of
 * their offsets; memory stays one checkpoint per span or window.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "settle.h"

/* Committed offsets of a fake downstream group, per partition. */
typedef struct group {
        int64_t committed[8];
} group_t;

static int64_t committed(void *arg, int32_t partition)
{
        group_t *g = arg;

        return partition < 8 ? g->committed[partition] : -1;
}

static void group_init(group_t *g)
{
        for (int i = 0; i < 8; i++)
                g->committed[i] = -1;
}

static void test_empty(void **state)
{
        sf_settle_t *s = sf_settle_new();
        group_t g;

        (void)state;
        group_init(&g);
        assert_int_equal(sf_settle_take(s, committed, &g), -1);
        assert_int_equal(sf_settle_pending(s), 0);
        sf_settle_delivered(s, 5, 0, 1); /* never sent: ignored */
        assert_int_equal(sf_settle_take(s, committed, &g), -1);
        sf_settle_destroy(s);
        sf_settle_destroy(NULL);
}

static void test_waits_for_delivery_and_commit(void **state)
{
        sf_settle_t *s = sf_settle_new();
        group_t g;

        (void)state;
        group_init(&g);
        sf_settle_sent(s, 1, 0);
        sf_settle_sent(s, 2, 0);
        sf_settle_sent(s, 3, 0);
        assert_int_equal(sf_settle_pending(s), 3);
        sf_settle_delivered(s, 1, 0, 10);
        sf_settle_delivered(s, 3, 1, 4);
        /* 2 not delivered: nothing, however far the group is */
        g.committed[0] = g.committed[1] = 100;
        assert_int_equal(sf_settle_take(s, committed, &g), -1);
        sf_settle_delivered(s, 2, 0, 11);
        /* delivered, but the group has not read partition 0 past 11 */
        g.committed[0] = 11;
        assert_int_equal(sf_settle_take(s, committed, &g), -1);
        g.committed[0] = 12;
        g.committed[1] = 4; /* offset 4 is the next it reads: not past it */
        assert_int_equal(sf_settle_take(s, committed, &g), -1);
        g.committed[1] = 5;
        assert_int_equal(sf_settle_take(s, committed, &g), 3);
        assert_int_equal(sf_settle_pending(s), 0);
        assert_int_equal(sf_settle_take(s, committed, &g), -1);
        sf_settle_destroy(s);
}

static void test_store_delivery_needs_no_commit(void **state)
{
        sf_settle_t *s = sf_settle_new();
        group_t g;

        (void)state;
        group_init(&g);
        sf_settle_sent(s, 7, 0);
        sf_settle_delivered(s, 7, -1, -1);
        assert_int_equal(sf_settle_take(s, committed, &g), 7);
        sf_settle_destroy(s);
}

/* A steady stream settles in steps: the window closes checkpoints, so the
 * early positions are returned while later ones still wait. */
static void test_window_closes_checkpoints(void **state)
{
        sf_settle_t *s = sf_settle_new();
        group_t g;
        int64_t now = 1000;

        (void)state;
        group_init(&g);
        for (int64_t pos = 1; pos <= 100; pos++) {
                sf_settle_sent(s, pos, now);
                now += 1; /* 1 ms apart: 100 ms of sending */
        }
        for (int64_t pos = 1; pos <= 60; pos++)
                sf_settle_delivered(s, pos, 0, pos);
        g.committed[0] = 61;
        /* checkpoints end every SF_SETTLE_WINDOW_MS positions here */
        assert_int_equal(sf_settle_take(s, committed, &g),
                         60 / SF_SETTLE_WINDOW_MS * SF_SETTLE_WINDOW_MS);
        assert_true(sf_settle_pending(s) >= 40);
        for (int64_t pos = 61; pos <= 100; pos++)
                sf_settle_delivered(s, pos, 0, pos);
        g.committed[0] = 101;
        assert_int_equal(sf_settle_take(s, committed, &g), 100);
        sf_settle_destroy(s);
}

/* Memory grows with checkpoints, not with changes: a million pending
 * changes sent in one window take a thousand checkpoints. */
static void test_memory_per_checkpoint(void **state)
{
        sf_settle_t *s = sf_settle_new();
        group_t g;
        size_t bytes;

        (void)state;
        group_init(&g);
        for (int64_t pos = 1; pos <= 1000000; pos++) {
                sf_settle_sent(s, pos, 0);
                sf_settle_delivered(s, pos, (int32_t)(pos % 6), pos);
        }
        bytes = sf_settle_bytes(s);
        assert_int_equal(sf_settle_pending(s), 1000000);
        assert_true(bytes < 1000000 / 4); /* well under a byte per change */
        assert_int_equal(sf_settle_take(s, committed, &g), -1);
        for (int i = 0; i < 6; i++)
                g.committed[i] = 2000000;
        assert_int_equal(sf_settle_take(s, committed, &g), 1000000);
        assert_int_equal(sf_settle_pending(s), 0);
        sf_settle_destroy(s);
}

/* After a reset (the source rewound) positions are sent again, the same
 * ones; late reports for the old sends find nothing. */
static void test_reset(void **state)
{
        sf_settle_t *s = sf_settle_new();
        group_t g;

        (void)state;
        group_init(&g);
        sf_settle_sent(s, 1, 0);
        sf_settle_sent(s, 2, 0);
        sf_settle_delivered(s, 1, 0, 0);
        sf_settle_reset(s);
        assert_int_equal(sf_settle_pending(s), 0);
        sf_settle_delivered(s, 2, 0, 1); /* from before the reset */
        sf_settle_sent(s, 1, 0);
        sf_settle_sent(s, 2, 0);
        sf_settle_delivered(s, 1, 0, 5);
        g.committed[0] = 100;
        assert_int_equal(sf_settle_take(s, committed, &g), -1);
        sf_settle_delivered(s, 2, 0, 6);
        assert_int_equal(sf_settle_take(s, committed, &g), 2);
        sf_settle_destroy(s);
}

/* Positions must grow; a repeated or lower one is not counted twice. */
static void test_not_increasing(void **state)
{
        sf_settle_t *s = sf_settle_new();
        group_t g;

        (void)state;
        group_init(&g);
        sf_settle_sent(s, 5, 0);
        sf_settle_sent(s, 5, 0);
        sf_settle_sent(s, 3, 0);
        assert_int_equal(sf_settle_pending(s), 1);
        sf_settle_delivered(s, 5, 2, 0);
        sf_settle_delivered(s, 5, 2, 0); /* a second report: ignored */
        g.committed[2] = 1;
        assert_int_equal(sf_settle_take(s, committed, &g), 5);
        sf_settle_destroy(s);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_empty),
            cmocka_unit_test(test_waits_for_delivery_and_commit),
            cmocka_unit_test(test_store_delivery_needs_no_commit),
            cmocka_unit_test(test_window_closes_checkpoints),
            cmocka_unit_test(test_memory_per_checkpoint),
            cmocka_unit_test(test_reset),
            cmocka_unit_test(test_not_increasing),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
