/*
 * The settled-acknowledgement ledger (settle.h).
 *
 * Checkpoints sit in an array in position order, the oldest at HEAD; the
 * last one is open and takes new positions until it spans SF_SETTLE_SPAN.
 * A delivery finds its checkpoint by binary search on the first position.
 */
#include "settle.h"

#include <stdlib.h>
#include <string.h>

#include "sf.h"

typedef struct sf_settle_cp {
        int64_t lo, hi;    /* first and last position sent into it */
        int64_t opened_ms; /* when LO was sent */
        uint32_t sent, delivered;
        int32_t part_cnt; /* entries in OFFS */
        int64_t *offs;    /* per partition: highest offset, -1: none */
} sf_settle_cp_t;

struct sf_settle {
        sf_settle_cp_t *cps;
        size_t head, cnt, cap;
        int64_t last_sent; /* -1: none since the last reset */
        size_t pending;
};

sf_settle_t *sf_settle_new(void)
{
        sf_settle_t *s = sf_calloc(1, sizeof(*s));

        s->last_sent = -1;
        return s;
}

static sf_settle_cp_t *sf_settle_at(const sf_settle_t *s, size_t i)
{
        return &s->cps[s->head + i];
}

static void sf_settle_pop(sf_settle_t *s)
{
        sf_settle_cp_t *cp = sf_settle_at(s, 0);

        s->pending -= cp->sent;
        free(cp->offs);
        s->head++;
        s->cnt--;
        if (!s->cnt)
                s->head = 0;
}

void sf_settle_sent(sf_settle_t *s, int64_t pos, int64_t now_ms)
{
        sf_settle_cp_t *cp = s->cnt ? sf_settle_at(s, s->cnt - 1) : NULL;

        if (pos <= s->last_sent)
                return;
        s->last_sent = pos;
        s->pending++;
        if (cp && cp->sent < SF_SETTLE_SPAN &&
            now_ms - cp->opened_ms < SF_SETTLE_WINDOW_MS) {
                cp->hi = pos;
                cp->sent++;
                return;
        }
        if (s->head + s->cnt == s->cap) {
                if (s->head > s->cap / 2) {
                        memmove(s->cps, s->cps + s->head,
                                s->cnt * sizeof(*s->cps));
                        s->head = 0;
                } else {
                        s->cap = s->cap ? s->cap * 2 : 16;
                        s->cps = sf_realloc(s->cps, s->cap * sizeof(*s->cps));
                }
        }
        cp = &s->cps[s->head + s->cnt++];
        memset(cp, 0, sizeof(*cp));
        cp->lo = cp->hi = pos;
        cp->opened_ms = now_ms;
        cp->sent = 1;
}

/* The checkpoint holding POS, or NULL. */
static sf_settle_cp_t *sf_settle_find(sf_settle_t *s, int64_t pos)
{
        size_t lo = 0, hi = s->cnt;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (sf_settle_at(s, mid)->lo <= pos)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        if (!lo)
                return NULL;
        return pos <= sf_settle_at(s, lo - 1)->hi ? sf_settle_at(s, lo - 1)
                                                  : NULL;
}

void sf_settle_delivered(sf_settle_t *s, int64_t pos, int32_t partition,
                         int64_t offset)
{
        sf_settle_cp_t *cp = sf_settle_find(s, pos);

        if (!cp || cp->delivered >= cp->sent)
                return;
        cp->delivered++;
        if (partition < 0)
                return;
        if (partition >= cp->part_cnt) {
                int32_t n = partition + 1;

                cp->offs = sf_realloc(cp->offs, (size_t)n * sizeof(*cp->offs));
                for (int32_t i = cp->part_cnt; i < n; i++)
                        cp->offs[i] = -1;
                cp->part_cnt = n;
        }
        if (offset > cp->offs[partition])
                cp->offs[partition] = offset;
}

static int sf_settle_cp_done(const sf_settle_cp_t *cp,
                             sf_settle_committed_fn *committed, void *arg)
{
        if (cp->delivered < cp->sent)
                return 0;
        for (int32_t p = 0; p < cp->part_cnt; p++)
                if (cp->offs[p] >= 0 && committed(arg, p) <= cp->offs[p])
                        return 0;
        return 1;
}

int64_t sf_settle_take(sf_settle_t *s, sf_settle_committed_fn *committed,
                       void *arg)
{
        int64_t upto = -1;

        while (s->cnt &&
               sf_settle_cp_done(sf_settle_at(s, 0), committed, arg)) {
                upto = sf_settle_at(s, 0)->hi;
                sf_settle_pop(s);
        }
        return upto;
}

size_t sf_settle_pending(const sf_settle_t *s)
{
        return s->pending;
}

size_t sf_settle_bytes(const sf_settle_t *s)
{
        size_t n = sizeof(*s) + s->cap * sizeof(*s->cps);

        for (size_t i = 0; i < s->cnt; i++)
                n += (size_t)sf_settle_at(s, i)->part_cnt * sizeof(int64_t);
        return n;
}

void sf_settle_reset(sf_settle_t *s)
{
        while (s->cnt)
                sf_settle_pop(s);
        s->last_sent = -1;
}

void sf_settle_destroy(sf_settle_t *s)
{
        if (!s)
                return;
        sf_settle_reset(s);
        free(s->cps);
        free(s);
}
