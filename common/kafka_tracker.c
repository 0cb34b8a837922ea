/*
 * Offset tracking for one partition: which records handed out are still
 * unfinished, so a worker that runs many records of a partition at once
 * stores an offset only up to the lowest unfinished one.
 *
 * The in-flight offsets live in a ring buffer in the order they were begun,
 * which is increasing offset order. Begin appends at the back, done at the
 * front pops every finished entry there, both O(1) amortized; done of an
 * entry in the middle finds it by binary search and only marks it.
 */
#include "kafka.h"

#include <stdlib.h>
#include <sys/types.h>

#include "sf.h"

typedef struct sf_tracker_ent {
        int64_t offset;
        int done;
} sf_tracker_ent_t;

struct sf_tracker {
        sf_tracker_ent_t *ring;
        size_t cap;  /* a power of two, or 0 before the first begin */
        size_t head; /* index of the oldest entry */
        size_t cnt;  /* entries in the ring, done or not */
        size_t done_cnt;
        int64_t highest; /* highest offset begun; -1 when none */
};

#define SF_TRACKER_MIN_CAP 16

sf_tracker_t *sf_tracker_new(void)
{
        sf_tracker_t *t = sf_calloc(1, sizeof(*t));

        t->highest = -1;
        return t;
}

void sf_tracker_destroy(sf_tracker_t *t)
{
        if (!t)
                return;
        free(t->ring);
        free(t);
}

static sf_tracker_ent_t *sf_tracker_at(const sf_tracker_t *t, size_t i)
{
        return &t->ring[(t->head + i) & (t->cap - 1)];
}

/* Doubles the ring, unwrapping it so the oldest entry is at index 0. */
static void sf_tracker_grow(sf_tracker_t *t)
{
        size_t cap = t->cap ? t->cap * 2 : SF_TRACKER_MIN_CAP;
        sf_tracker_ent_t *ring = sf_malloc(cap * sizeof(*ring));

        for (size_t i = 0; i < t->cnt; i++)
                ring[i] = *sf_tracker_at(t, i);
        free(t->ring);
        t->ring = ring;
        t->cap = cap;
        t->head = 0;
}

/* Offsets must be begun in increasing order (the order a partition is
 * consumed in); an offset not above the highest one begun is ignored so the
 * ring stays sorted. */
void sf_tracker_begin(sf_tracker_t *t, int64_t offset)
{
        sf_tracker_ent_t *e;

        if (offset < 0 || offset <= t->highest)
                return;
        if (t->cnt == t->cap)
                sf_tracker_grow(t);
        e = sf_tracker_at(t, t->cnt);
        e->offset = offset;
        e->done = 0;
        t->cnt++;
        t->highest = offset;
}

/* Index of OFFSET in the ring, or -1. */
static ssize_t sf_tracker_find(const sf_tracker_t *t, int64_t offset)
{
        size_t lo = 0, hi = t->cnt;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int64_t o = sf_tracker_at(t, mid)->offset;

                if (o == offset)
                        return (ssize_t)mid;
                if (o < offset)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return -1;
}

int64_t sf_tracker_done(sf_tracker_t *t, int64_t offset)
{
        ssize_t i;
        sf_tracker_ent_t *e;

        if (!t->cnt)
                return -1;
        /* The front is by far the common case: records mostly finish in
         * the order they were handed out. */
        if (sf_tracker_at(t, 0)->offset == offset)
                i = 0;
        else
                i = sf_tracker_find(t, offset);
        if (i < 0)
                return -1;
        e = sf_tracker_at(t, (size_t)i);
        if (e->done)
                return -1;
        e->done = 1;
        t->done_cnt++;
        if (i > 0)
                return -1;
        while (t->cnt && sf_tracker_at(t, 0)->done) {
                t->head = (t->head + 1) & (t->cap - 1);
                t->cnt--;
                t->done_cnt--;
        }
        return sf_tracker_committable(t);
}

int64_t sf_tracker_committable(const sf_tracker_t *t)
{
        if (t->cnt)
                return sf_tracker_at(t, 0)->offset;
        return t->highest < 0 ? -1 : t->highest + 1;
}

size_t sf_tracker_inflight(const sf_tracker_t *t)
{
        return t->cnt - t->done_cnt;
}
