/*
 * The worker's scheduler (workers/scheduler.h), driven by the test's own
 * clock: per-key order, retry timing, Retry-After, circuits, frozen
 * attempts, giving up, revocation, the intake cap and the shutdown grace
 * period.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "scheduler.h"

#define MAX_ITEMS 64

/* A test record: the scheduler's item and a name to recognise it by. */
typedef struct rec {
        sf_sched_item_t item; /* first */
        int id;
} rec_t;

typedef struct fixture {
        sf_sched_t *s;
        rec_t recs[MAX_ITEMS];
        int n;
        int64_t now;
} fixture_t;

/* Circuit 0: 2 in flight, 4 attempts, backoff 100..800 ms. Circuit 1: a
 * second connector with the same settings. */
static const sf_sched_circuit_cfg_t circuits[] = {
    {.max_in_flight = 2,
     .max_attempts = 4,
     .initial_backoff_ms = 100,
     .max_backoff_ms = 800},
    {.max_in_flight = 2,
     .max_attempts = 4,
     .initial_backoff_ms = 100,
     .max_backoff_ms = 800},
};

static rec_t *next(fixture_t *f);

static fixture_t *fx_new_cfg(const sf_sched_circuit_cfg_t *cfg, size_t cap)
{
        fixture_t *f = calloc(1, sizeof(*f));

        f->s = sf_sched_new(cfg, 2, cap, 7);
        f->now = 1000000;
        return f;
}

static fixture_t *fx_new(size_t cap)
{
        return fx_new_cfg(circuits, cap);
}

/* The next two records due, in the order given. */
static void next_two(fixture_t *f, rec_t *a, rec_t *b)
{
        rec_t *x = next(f), *y = next(f);

        assert_true((x == a && y == b) || (x == b && y == a));
}

static void fx_free(fixture_t *f)
{
        sf_sched_destroy(f->s);
        free(f);
}

/* Adds a record of KEY on CIRCUIT, partition 0; returns it. */
static rec_t *add(fixture_t *f, const char *key, int circuit)
{
        rec_t *r = &f->recs[f->n];

        r->id = f->n++;
        r->item.partition = 0;
        sf_sched_add(f->s, &r->item, key, circuit, 0, f->now);
        return r;
}

/* The next record due, or NULL. */
static rec_t *next(fixture_t *f)
{
        return (rec_t *)sf_sched_next(f->s, f->now);
}

static sf_sched_verdict_t result(fixture_t *f, rec_t *r, sf_status_t st,
                                 int64_t retry_after)
{
        return sf_sched_result(f->s, &r->item, st, retry_after, "HTTP 503", 0,
                               f->now);
}

/* Runs R to success and removes it. */
static void succeed(fixture_t *f, rec_t *r)
{
        assert_int_equal(result(f, r, SF_OK, -1), SF_SCHED_DONE);
        sf_sched_remove(f->s, &r->item);
}

static void no_event(fixture_t *f)
{
        sf_sched_event_t ev;

        assert_int_equal(sf_sched_event(f->s, &ev), 0);
}

/* Fails N different records of circuit 0 in a row (each its own key,
 * running at once two by two), leaving them waiting or held back. */
static void fail_in_a_row(fixture_t *f, int n, const char *prefix)
{
        for (int i = 0; i < n; i++) {
                char key[32];
                rec_t *r;

                snprintf(key, sizeof(key), "%s%d", prefix, i);
                add(f, key, 0);
                r = next(f);
                assert_non_null(r);
                assert_int_equal(result(f, r, SF_RETRY, -1), SF_SCHED_RETRY);
        }
}

/* --- ordering ------------------------------------------------------------ */

static void test_order_per_key(void **state)
{
        fixture_t *f = fx_new(100);
        rec_t *a1 = add(f, "a", 0), *a2 = add(f, "a", 0), *a3 = add(f, "a", 0);
        rec_t *b1 = add(f, "b", 0);

        (void)state;
        /* the head of each key runs; a2 waits for a1 */
        assert_ptr_equal(next(f), a1);
        assert_ptr_equal(next(f), b1);
        assert_null(next(f));
        assert_int_equal(a2->item.state, SF_SCHED_QUEUED);
        /* a retry of a1 keeps a2 and a3 behind it */
        assert_int_equal(result(f, a1, SF_RETRY, -1), SF_SCHED_RETRY);
        assert_null(next(f));
        f->now += 100;
        assert_ptr_equal(next(f), a1);
        succeed(f, a1);
        assert_ptr_equal(next(f), a2);
        assert_null(next(f));
        succeed(f, a2);
        succeed(f, b1);
        assert_ptr_equal(next(f), a3);
        succeed(f, a3);
        assert_int_equal(sf_sched_held(f->s), 0);
        fx_free(f);
}

static void test_max_in_flight_per_circuit(void **state)
{
        fixture_t *f = fx_new(100);
        rec_t *r[4];

        (void)state;
        for (int i = 0; i < 3; i++) {
                char key[8];

                snprintf(key, sizeof(key), "k%d", i);
                r[i] = add(f, key, 0);
        }
        r[3] = add(f, "other", 1);
        assert_ptr_equal(next(f), r[0]);
        /* circuits take turns */
        assert_ptr_equal(next(f), r[3]);
        assert_ptr_equal(next(f), r[1]);
        assert_null(next(f)); /* circuit 0 has its 2 in flight */
        succeed(f, r[0]);
        assert_ptr_equal(next(f), r[2]);
        fx_free(f);
}

/* --- retries ---------------------------------------------------------------
 */

static void test_retry_timing_and_cap(void **state)
{
        /* failure n waits in [d/2, d] for d = 100, 200, 400, then 700,
         * the cap; many tries at the cap, as jitter spreads them */
        static const sf_sched_circuit_cfg_t roomy[] = {
            {.max_in_flight = 2,
             .max_attempts = 100,
             .initial_backoff_ms = 100,
             .max_backoff_ms = 700},
            {.max_in_flight = 2,
             .max_attempts = 100,
             .initial_backoff_ms = 100,
             .max_backoff_ms = 700},
        };
        fixture_t *f = fx_new_cfg(roomy, 100);
        rec_t *r = add(f, "r", 0);

        (void)state;
        assert_ptr_equal(next(f), r);
        for (int i = 0; i < 40; i++) {
                int64_t d = i < 3 ? 100 << i : 700;
                rec_t *ok = add(f, "ok", 0);
                int64_t wait;

                /* another record succeeds meanwhile: the failures are the
                 * record's own and count */
                assert_ptr_equal(next(f), ok);
                succeed(f, ok);
                assert_int_equal(result(f, r, SF_RETRY, -1), SF_SCHED_RETRY);
                assert_int_equal(r->item.state, SF_SCHED_WAITING);
                assert_int_equal(r->item.attempts, i + 1);
                wait = sf_sched_next_due(f->s, f->now);
                assert_true(wait >= d / 2 && wait <= d);
                f->now += wait - 1;
                assert_null(next(f));
                f->now += 1;
                assert_ptr_equal(next(f), r);
        }
        fx_free(f);
}

static void test_retry_after(void **state)
{
        fixture_t *f = fx_new(100);
        rec_t *r = add(f, "r", 0);

        (void)state;
        assert_ptr_equal(next(f), r);
        assert_int_equal(result(f, r, SF_RETRY, 250), SF_SCHED_RETRY);
        assert_int_equal(sf_sched_next_due(f->s, f->now), 250);
        f->now += 249;
        assert_null(next(f));
        f->now += 1;
        assert_ptr_equal(next(f), r);
        /* a longer Retry-After waits the connector's max_backoff_ms (800):
         * the pipeline bounds the wait, not the target */
        assert_int_equal(result(f, r, SF_RETRY, 2500), SF_SCHED_RETRY);
        assert_int_equal(sf_sched_next_due(f->s, f->now), 800);
        f->now += 800;
        assert_ptr_equal(next(f), r);
        assert_int_equal(result(f, r, SF_RETRY, 2LL * 86400 * 1000),
                         SF_SCHED_RETRY);
        assert_int_equal(sf_sched_next_due(f->s, f->now), 800);
        fx_free(f);
}

/* --- giving up
 * ---------------------------------------------------------------- */

static void test_gives_up_while_others_succeed(void **state)
{
        fixture_t *f = fx_new(100);
        rec_t *bad = add(f, "bad", 0);
        int tries = 0;

        (void)state;
        for (;;) {
                rec_t *ok = add(f, "ok", 0);
                sf_sched_verdict_t v;

                f->now += 1000;
                next_two(f, bad, ok);
                succeed(f, ok);
                tries++;
                v = result(f, bad, SF_RETRY, -1);
                if (v == SF_SCHED_GIVE_UP)
                        break;
                assert_int_equal(v, SF_SCHED_RETRY);
                assert_int_equal(bad->item.attempts, tries);
        }
        /* max_attempts counts the first try */
        assert_int_equal(tries, 4);
        assert_int_equal(bad->item.attempts, 4);
        assert_int_equal(bad->item.state, SF_SCHED_DEAD);
        no_event(f); /* one record failing is no outage */
        /* dead-lettering failed: it comes back, DEAD, after the delay */
        sf_sched_dead_later(f->s, &bad->item, 1000, f->now);
        assert_null(next(f));
        f->now += 1000;
        assert_ptr_equal(next(f), bad);
        assert_int_equal(bad->item.state, SF_SCHED_DEAD);
        sf_sched_remove(f->s, &bad->item);
        assert_int_equal(sf_sched_held(f->s), 0);
        fx_free(f);
}

static void test_fatal_at_once(void **state)
{
        fixture_t *f = fx_new(100);
        rec_t *r = add(f, "k", 0), *r2 = add(f, "k", 0);

        (void)state;
        assert_ptr_equal(next(f), r);
        assert_int_equal(result(f, r, SF_FATAL, -1), SF_SCHED_GIVE_UP);
        assert_int_equal(r->item.attempts, 1);
        /* its key waits until it is dead-lettered */
        assert_null(next(f));
        sf_sched_remove(f->s, &r->item);
        assert_ptr_equal(next(f), r2);
        fx_free(f);
}

static void test_local_failures_count_and_leave_circuit(void **state)
{
        fixture_t *f = fx_new(100);
        rec_t *a = add(f, "a", 0), *b;

        (void)state;
        /* seven failures in a row, none of them the connector's */
        for (int i = 1; i <= 4; i++) {
                assert_ptr_equal(next(f), a);
                assert_int_equal(sf_sched_result(f->s, &a->item, SF_RETRY, -1,
                                                 "database down",
                                                 SF_SCHED_LOCAL, f->now),
                                 i < 4 ? SF_SCHED_RETRY : SF_SCHED_GIVE_UP);
                /* they count, though nothing else succeeded */
                assert_int_equal(a->item.attempts, i);
                f->now += 1000;
        }
        b = add(f, "b", 0);
        for (int i = 1; i <= 3; i++) {
                assert_ptr_equal(next(f), b);
                assert_int_equal(sf_sched_result(f->s, &b->item, SF_RETRY, -1,
                                                 "database down",
                                                 SF_SCHED_LOCAL, f->now),
                                 SF_SCHED_RETRY);
                f->now += 1000;
        }
        assert_int_equal(sf_sched_circuit_open(f->s, 0), 0);
        no_event(f);
        fx_free(f);
}

/* --- circuits --------------------------------------------------------------
 */

static void test_circuit_opens_after_consecutive_failures(void **state)
{
        fixture_t *f = fx_new(100);
        sf_sched_event_t ev;
        rec_t *ok;

        (void)state;
        /* four failures, a success, four more: still closed */
        fail_in_a_row(f, SF_SCHED_OPEN_AFTER - 1, "a");
        ok = add(f, "ok", 0);
        assert_ptr_equal(next(f), ok);
        succeed(f, ok);
        fail_in_a_row(f, SF_SCHED_OPEN_AFTER - 1, "b");
        assert_int_equal(sf_sched_circuit_open(f->s, 0), 0);
        no_event(f);
        /* the fifth in a row opens it */
        fail_in_a_row(f, 1, "c");
        assert_int_equal(sf_sched_circuit_open(f->s, 0), 1);
        assert_int_equal(sf_sched_circuit_open(f->s, 1), 0);
        assert_int_equal(sf_sched_event(f->s, &ev), 1);
        assert_int_equal(ev.circuit, 0);
        assert_int_equal(ev.open, 1);
        assert_string_equal(ev.reason, "HTTP 503");
        no_event(f);
        fx_free(f);
}

static void test_circuit_probes_one_at_a_time(void **state)
{
        fixture_t *f = fx_new(100);
        sf_sched_event_t ev;
        rec_t *p, *q, *other;
        int64_t opened;

        (void)state;
        fail_in_a_row(f, SF_SCHED_OPEN_AFTER, "a");
        assert_int_equal(sf_sched_event(f->s, &ev), 1);
        opened = f->now;
        /* new records of the circuit wait; another circuit flows */
        add(f, "new", 0);
        other = add(f, "other", 1);
        assert_ptr_equal(next(f), other);
        assert_null(next(f));
        /* the retries that came due are held back too */
        f->now += 50;
        assert_null(next(f));
        /* the first probe after initial_backoff_ms, and only one */
        f->now = opened + 100;
        p = next(f);
        assert_non_null(p);
        assert_null(next(f));
        /* the probe fails: the next waits twice as long, with another
         * record */
        assert_int_equal(result(f, p, SF_RETRY, -1), SF_SCHED_RETRY);
        assert_int_equal(sf_sched_next_due(f->s, f->now), 200);
        f->now += 199;
        assert_null(next(f));
        f->now += 1;
        q = next(f);
        assert_non_null(q);
        assert_ptr_not_equal(q, p);
        assert_null(next(f));
        /* backoff doubles up to max_backoff_ms */
        assert_int_equal(result(f, q, SF_RETRY, -1), SF_SCHED_RETRY);
        for (int64_t want = 400; want <= 1600; want *= 2) {
                int64_t wait = sf_sched_next_due(f->s, f->now);
                rec_t *r;

                assert_int_equal(wait, want > 800 ? 800 : want);
                f->now += wait;
                r = next(f);
                assert_non_null(r);
                assert_int_equal(result(f, r, SF_RETRY, -1), SF_SCHED_RETRY);
        }
        /* a Retry-After on a probe's failure never shortens the backoff
         * (800 now) and never goes past max_backoff_ms */
        f->now += 800;
        p = next(f);
        assert_int_equal(result(f, p, SF_RETRY, 300), SF_SCHED_RETRY);
        assert_int_equal(sf_sched_next_due(f->s, f->now), 800);
        f->now += 800;
        p = next(f);
        assert_int_equal(result(f, p, SF_RETRY, 5000), SF_SCHED_RETRY);
        assert_int_equal(sf_sched_next_due(f->s, f->now), 800);
        /* a success closes it: everything held back may start again */
        f->now += 800;
        p = next(f);
        assert_non_null(p);
        succeed(f, p);
        assert_int_equal(sf_sched_circuit_open(f->s, 0), 0);
        assert_int_equal(sf_sched_event(f->s, &ev), 1);
        assert_int_equal(ev.open, 0);
        assert_int_equal(ev.open_ms, f->now - opened);
        assert_int_equal(ev.probes, 8);
        /* the five that opened it and "new" waited */
        assert_int_equal(ev.waited, 6);
        assert_non_null(next(f));
        assert_non_null(next(f));
        assert_null(next(f)); /* max_in_flight again */
        fx_free(f);
}

static void test_probe_waits_for_requests_in_flight(void **state)
{
        fixture_t *f = fx_new(100);
        rec_t *slow, *r;

        (void)state;
        /* one request of the circuit is still out when it opens */
        fail_in_a_row(f, SF_SCHED_OPEN_AFTER - 1, "a");
        slow = add(f, "slow", 0);
        assert_ptr_equal(next(f), slow);
        add(f, "last", 0);
        r = next(f);
        assert_non_null(r);
        assert_int_equal(result(f, r, SF_RETRY, -1), SF_SCHED_RETRY);
        assert_int_equal(sf_sched_circuit_open(f->s, 0), 1);
        f->now += 10000;
        assert_null(next(f)); /* no probe while slow is out */
        assert_int_equal(sf_sched_next_due(f->s, f->now), -1);
        /* slow fails too: now one probe */
        assert_int_equal(result(f, slow, SF_RETRY, -1), SF_SCHED_RETRY);
        assert_non_null(next(f));
        assert_null(next(f));
        fx_free(f);
}

static void test_rejection_closes_circuit(void **state)
{
        fixture_t *f = fx_new(100);
        sf_sched_event_t ev;
        rec_t *p;

        (void)state;
        fail_in_a_row(f, SF_SCHED_OPEN_AFTER, "a");
        assert_int_equal(sf_sched_event(f->s, &ev), 1);
        f->now += 100;
        p = next(f);
        /* a 422: the target answers; the record is the problem */
        assert_int_equal(result(f, p, SF_FATAL, -1), SF_SCHED_GIVE_UP);
        assert_int_equal(sf_sched_circuit_open(f->s, 0), 0);
        assert_int_equal(sf_sched_event(f->s, &ev), 1);
        assert_int_equal(ev.open, 0);
        fx_free(f);
}

static void test_failed_probe_rotates_and_starves(void **state)
{
        fixture_t *f = fx_new(100);
        sf_sched_event_t ev;
        rec_t *a, *b, *p;

        (void)state;
        /* one record fails alone until the circuit opens */
        a = add(f, "a", 0);
        for (int i = 0; i < SF_SCHED_OPEN_AFTER; i++) {
                f->now += 1000;
                assert_ptr_equal(next(f), a);
                assert_int_equal(result(f, a, SF_RETRY, -1), SF_SCHED_RETRY);
        }
        assert_int_equal(sf_sched_event(f->s, &ev), 1);
        assert_int_equal(a->item.attempts, 0); /* nothing else succeeded */
        f->now += 100;
        /* a's probe is due and a is all there is: the caller is asked for
         * another record, once */
        /* a has not probed yet: nothing to ask for */
        assert_int_equal(sf_sched_starved(f->s, f->now), -1);
        assert_ptr_equal(next(f), a);
        assert_int_equal(result(f, a, SF_RETRY, -1), SF_SCHED_RETRY);
        f->now += 200;
        assert_int_equal(sf_sched_starved(f->s, f->now), 0);
        assert_int_equal(sf_sched_starved(f->s, f->now), -1);
        b = add(f, "b", 0);
        /* b probes, not a again */
        assert_ptr_equal(next(f), b);
        assert_int_equal(result(f, b, SF_RETRY, -1), SF_SCHED_RETRY);
        f->now += 400;
        assert_int_equal(sf_sched_starved(f->s, f->now), -1);
        p = next(f);
        assert_ptr_equal(p, a);
        succeed(f, p);
        assert_int_equal(sf_sched_circuit_open(f->s, 0), 0);
        fx_free(f);
}

static void test_starved_asks_again_after_backoff(void **state)
{
        fixture_t *f = fx_new(100);
        sf_sched_event_t ev;
        rec_t *r[SF_SCHED_OPEN_AFTER];

        (void)state;
        fail_in_a_row(f, SF_SCHED_OPEN_AFTER, "a");
        assert_int_equal(sf_sched_event(f->s, &ev), 1);
        /* the caller sets every held-back record aside (parks them) */
        for (int i = 0; i < SF_SCHED_OPEN_AFTER; i++) {
                r[i] = &f->recs[i];
                sf_sched_remove(f->s, &r[i]->item);
        }
        assert_int_equal(sf_sched_held(f->s), 0);
        f->now += 100;
        assert_int_equal(sf_sched_starved(f->s, f->now), 0);
        assert_int_equal(sf_sched_starved(f->s, f->now), -1);
        /* nothing came: it asks again one backoff later */
        assert_int_equal(sf_sched_next_due(f->s, f->now), 100);
        f->now += 100;
        assert_int_equal(sf_sched_starved(f->s, f->now), 0);
        /* what was set aside did not wait here */
        sf_sched_circuit_close(f->s, 0, f->now);
        assert_int_equal(sf_sched_event(f->s, &ev), 1);
        assert_int_equal(ev.waited, 0);
        fx_free(f);
}

static void test_close_from_elsewhere(void **state)
{
        fixture_t *f = fx_new(100);
        sf_sched_event_t ev;

        (void)state;
        fail_in_a_row(f, SF_SCHED_OPEN_AFTER, "a");
        assert_int_equal(sf_sched_event(f->s, &ev), 1);
        f->now += 30;
        sf_sched_circuit_close(f->s, 0, f->now);
        assert_int_equal(sf_sched_event(f->s, &ev), 1);
        assert_int_equal(ev.open, 0);
        assert_int_equal(ev.open_ms, 30);
        /* the waiting retries go at once */
        assert_non_null(next(f));
        assert_non_null(next(f));
        fx_free(f);
}

/* --- frozen attempts
 * ------------------------------------------------------------ */

static void test_attempts_frozen_while_open(void **state)
{
        fixture_t *f = fx_new(100);
        sf_sched_event_t ev;
        rec_t *p;

        (void)state;
        fail_in_a_row(f, SF_SCHED_OPEN_AFTER, "a");
        assert_int_equal(sf_sched_event(f->s, &ev), 1);
        for (int i = 0; i < SF_SCHED_OPEN_AFTER; i++)
                assert_int_equal(f->recs[i].item.attempts, 0);
        /* twenty failed probes: no record gets nearer the DLQ */
        for (int i = 0; i < 20; i++) {
                f->now += 800;
                p = next(f);
                assert_non_null(p);
                assert_int_equal(result(f, p, SF_RETRY, -1), SF_SCHED_RETRY);
        }
        for (int i = 0; i < SF_SCHED_OPEN_AFTER; i++) {
                assert_int_equal(f->recs[i].item.attempts, 0);
                assert_int_not_equal(f->recs[i].item.state, SF_SCHED_DEAD);
        }
        /* closed, they count again, when others succeed */
        f->now += 800;
        p = next(f);
        succeed(f, p);
        p = next(f);
        assert_non_null(p);
        assert_int_equal(result(f, p, SF_RETRY, -1), SF_SCHED_RETRY);
        assert_int_equal(p->item.attempts, 1);
        fx_free(f);
}

static void test_step_resets_attempts_and_keeps_turn(void **state)
{
        fixture_t *f = fx_new(100);
        rec_t *r = add(f, "k", 0), *r2 = add(f, "k", 0), *ok = add(f, "ok", 0);

        (void)state;
        next_two(f, r, ok);
        succeed(f, ok);
        assert_int_equal(result(f, r, SF_RETRY, -1), SF_SCHED_RETRY);
        assert_int_equal(r->item.attempts, 1);
        f->now += 100;
        assert_ptr_equal(next(f), r);
        assert_int_equal(result(f, r, SF_OK, -1), SF_SCHED_DONE);
        /* the response step goes to circuit 1; r2 still waits for r */
        sf_sched_step(f->s, &r->item, 1, f->now);
        assert_int_equal(r->item.attempts, 0);
        assert_int_equal(r->item.circuit, 1);
        assert_ptr_equal(next(f), r);
        assert_null(next(f));
        succeed(f, r);
        assert_ptr_equal(next(f), r2);
        fx_free(f);
}

/* --- revocation --------------------------------------------------------------
 */

static int revoked_p1(void *opaque, const sf_sched_item_t *it)
{
        (void)opaque;
        return it->partition == 1;
}

static void collect_dropped(void *opaque, sf_sched_item_t *it)
{
        int *mask = opaque;

        *mask |= 1 << ((rec_t *)it)->id;
}

static void test_revoke_drops_queued_and_waiting(void **state)
{
        fixture_t *f = fx_new(100);
        rec_t *run = add(f, "k", 0), *queued = add(f, "k", 0);
        rec_t *waiting = add(f, "w", 0), *ready = add(f, "r", 0);
        rec_t *kept = add(f, "x", 1);
        int dropped = 0;

        (void)state;
        run->item.partition = queued->item.partition = 1;
        waiting->item.partition = ready->item.partition = 1;
        assert_ptr_equal(next(f), run);
        assert_ptr_equal(next(f), kept);
        assert_ptr_equal(next(f), waiting);
        assert_int_equal(result(f, waiting, SF_RETRY, -1), SF_SCHED_RETRY);
        assert_int_equal(ready->item.state, SF_SCHED_READY);
        sf_sched_revoke(f->s, revoked_p1, collect_dropped, &dropped);
        assert_int_equal(dropped, (1 << queued->id) | (1 << waiting->id) |
                                      (1 << ready->id));
        assert_int_equal(run->item.abandoned, 1);
        assert_int_equal(kept->item.abandoned, 0);
        assert_int_equal(sf_sched_held(f->s), 2);
        /* the running one's outcome, whatever it is, is dropped */
        assert_int_equal(result(f, run, SF_RETRY, -1), SF_SCHED_DROP);
        sf_sched_remove(f->s, &run->item);
        f->now += 10000;
        assert_null(next(f));
        assert_int_equal(result(f, kept, SF_OK, -1), SF_SCHED_DONE);
        fx_free(f);
}

/* --- intake cap and shutdown
 * -------------------------------------------------- */

static void test_intake_pauses_at_cap(void **state)
{
        fixture_t *f = fx_new(10);
        rec_t *r[10];

        (void)state;
        for (int i = 0; i < 9; i++) {
                r[i] = add(f, "k", 0);
                assert_int_equal(sf_sched_intake_paused(f->s), 0);
        }
        r[9] = add(f, "k", 0);
        assert_int_equal(sf_sched_intake_paused(f->s), 1);
        /* it resumes only below half the cap */
        for (int i = 0; i < 5; i++) {
                assert_ptr_equal(next(f), r[i]);
                succeed(f, r[i]);
                assert_int_equal(sf_sched_intake_paused(f->s), 1);
        }
        assert_ptr_equal(next(f), r[5]);
        succeed(f, r[5]);
        assert_int_equal(sf_sched_held(f->s), 4);
        assert_int_equal(sf_sched_intake_paused(f->s), 0);
        fx_free(f);
}

static void test_shutdown_grace_period(void **state)
{
        fixture_t *f = fx_new(100);
        rec_t *a = add(f, "a", 0), *b = add(f, "b", 0), *c = add(f, "c", 1);

        (void)state;
        assert_ptr_equal(next(f), a);
        sf_sched_stop(f->s, 5000, f->now);
        /* nothing new starts */
        assert_null(next(f));
        assert_int_equal(b->item.state, SF_SCHED_READY);
        assert_int_equal(c->item.state, SF_SCHED_READY);
        assert_int_equal(sf_sched_stopped(f->s, f->now), 0);
        f->now += 4999;
        assert_int_equal(sf_sched_stopped(f->s, f->now), 0);
        /* what was running came back: done */
        assert_int_equal(result(f, a, SF_RETRY, -1), SF_SCHED_RETRY);
        assert_int_equal(sf_sched_stopped(f->s, f->now), 1);
        f->now += 100000;
        assert_null(next(f));
        fx_free(f);

        /* a request that does not come back is given up at the deadline */
        f = fx_new(100);
        a = add(f, "a", 0);
        assert_ptr_equal(next(f), a);
        sf_sched_stop(f->s, 5000, f->now);
        f->now += 5000;
        assert_int_equal(sf_sched_stopped(f->s, f->now), 1);
        fx_free(f);

        /* a record being dead-lettered is waited for too */
        f = fx_new(100);
        a = add(f, "a", 0);
        assert_ptr_equal(next(f), a);
        assert_int_equal(result(f, a, SF_FATAL, -1), SF_SCHED_GIVE_UP);
        sf_sched_stop(f->s, 5000, f->now);
        assert_int_equal(sf_sched_stopped(f->s, f->now), 0);
        sf_sched_remove(f->s, &a->item);
        assert_int_equal(sf_sched_stopped(f->s, f->now), 1);
        fx_free(f);
}

/* A failure that says "Retry-After: 0" (a target, or a connector that
 * failed before any answer) still waits its backoff: without that floor a
 * retry or a probe comes back at once, thousands of times a second. */
static void test_retry_after_never_below_backoff(void **state)
{
        fixture_t *f = fx_new(100);
        rec_t *r = add(f, "r", 0), *p;
        int64_t wait, opened, want = 100;

        (void)state;
        /* closed: the first failure's backoff, 50..100 ms with jitter */
        assert_ptr_equal(next(f), r);
        assert_int_equal(result(f, r, SF_RETRY, 0), SF_SCHED_RETRY);
        wait = sf_sched_next_due(f->s, f->now);
        assert_true(wait >= 50 && wait <= 100);
        assert_null(next(f));
        /* open (r's failure was the first of five in a row): every probe
         * after the doubling backoff, 100..800 ms */
        fail_in_a_row(f, SF_SCHED_OPEN_AFTER - 1, "a");
        assert_int_equal(sf_sched_circuit_open(f->s, 0), 1);
        opened = f->now;
        for (int i = 0; i < 6; i++) {
                f->now += want - 1;
                assert_null(next(f));
                f->now += 1;
                p = next(f);
                assert_non_null(p);
                assert_null(next(f));
                assert_int_equal(result(f, p, SF_RETRY, 0), SF_SCHED_RETRY);
                want = want * 2 > 800 ? 800 : want * 2;
        }
        /* six probes in 100+200+400+800+800+800 ms, not thousands */
        assert_int_equal(f->now - opened, 3100);
        fx_free(f);
}

/* A failure flagged SF_SCHED_MISCONFIGURED opens the circuit like any
 * other, and the opened event says so; a later opening by an ordinary
 * failure does not. */
static void test_misconfigured_flag_on_open_event(void **state)
{
        fixture_t *f = fx_new(100);
        sf_sched_event_t ev;
        rec_t *r, *ok;

        (void)state;
        for (int i = 0; i < SF_SCHED_OPEN_AFTER; i++) {
                char key[16];

                snprintf(key, sizeof(key), "m%d", i);
                add(f, key, 0);
                r = next(f);
                assert_int_equal(sf_sched_result(f->s, &r->item, SF_RETRY, -1,
                                                 "oauth2 token: HTTP 401",
                                                 SF_SCHED_MISCONFIGURED,
                                                 f->now),
                                 SF_SCHED_RETRY);
                /* attempts never count: nothing succeeded meanwhile */
                assert_int_equal(r->item.attempts, 0);
        }
        assert_int_equal(sf_sched_event(f->s, &ev), 1);
        assert_int_equal(ev.open, 1);
        assert_int_equal(ev.misconfigured, 1);
        assert_string_equal(ev.reason, "oauth2 token: HTTP 401");
        /* it mends: the probe, after initial_backoff_ms, succeeds and the
         * circuit closes */
        f->now += 100;
        ok = next(f);
        assert_non_null(ok);
        succeed(f, ok);
        assert_int_equal(sf_sched_event(f->s, &ev), 1);
        assert_int_equal(ev.open, 0);
        /* drain what waited, then an ordinary outage */
        while ((r = next(f)))
                succeed(f, r);
        fail_in_a_row(f, SF_SCHED_OPEN_AFTER, "o");
        assert_int_equal(sf_sched_event(f->s, &ev), 1);
        assert_int_equal(ev.open, 1);
        assert_int_equal(ev.misconfigured, 0);
        fx_free(f);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_order_per_key),
            cmocka_unit_test(test_max_in_flight_per_circuit),
            cmocka_unit_test(test_retry_timing_and_cap),
            cmocka_unit_test(test_retry_after),
            cmocka_unit_test(test_retry_after_never_below_backoff),
            cmocka_unit_test(test_misconfigured_flag_on_open_event),
            cmocka_unit_test(test_gives_up_while_others_succeed),
            cmocka_unit_test(test_fatal_at_once),
            cmocka_unit_test(test_local_failures_count_and_leave_circuit),
            cmocka_unit_test(test_circuit_opens_after_consecutive_failures),
            cmocka_unit_test(test_circuit_probes_one_at_a_time),
            cmocka_unit_test(test_probe_waits_for_requests_in_flight),
            cmocka_unit_test(test_rejection_closes_circuit),
            cmocka_unit_test(test_failed_probe_rotates_and_starves),
            cmocka_unit_test(test_starved_asks_again_after_backoff),
            cmocka_unit_test(test_close_from_elsewhere),
            cmocka_unit_test(test_attempts_frozen_while_open),
            cmocka_unit_test(test_step_resets_attempts_and_keeps_turn),
            cmocka_unit_test(test_revoke_drops_queued_and_waiting),
            cmocka_unit_test(test_intake_pauses_at_cap),
            cmocka_unit_test(test_shutdown_grace_period),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
