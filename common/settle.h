/*
 * Settled acknowledgement: which changes sent downstream are settled, so
 * that the source may forget them.
 *
 * On the embedded broker nothing survives the process, so the producer may
 * not acknowledge a change to its source when Kafka has it, only once the
 * change is settled: the router has routed it and every outbound record
 * derived from it was accepted by its target or dead-lettered. Each hop
 * settles its input by committing the offset past it only when its own
 * output is settled (a worker when the target answered, the router when
 * the workers committed past its outbound records), so "settled" for the
 * producer is: the router's group committed past the sync-log offset the
 * change was delivered to.
 *
 * A ledger follows the positions a component sent, in increasing order,
 * in checkpoints of up to SF_SETTLE_SPAN positions or SF_SETTLE_WINDOW_MS
 * of sending (so that a steady stream settles in steps, not only when a
 * checkpoint is full): each checkpoint knows
 * how many of its positions were sent and delivered, and the highest
 * offset each downstream partition got from them. A checkpoint is settled
 * when all its positions were delivered and the downstream group committed
 * past each of those offsets. Memory is one checkpoint (some tens of bytes
 * and 8 per downstream partition) per SF_SETTLE_SPAN changes or per
 * SF_SETTLE_WINDOW_MS, whatever waits downstream.
 *
 * No Kafka here: committed offsets come from the caller. One thread.
 */
#ifndef SF_SETTLE_H
#define SF_SETTLE_H

#include <stddef.h>
#include <stdint.h>

#define SF_SETTLE_SPAN      1024
#define SF_SETTLE_WINDOW_MS 20

typedef struct sf_settle sf_settle_t;

sf_settle_t *sf_settle_new(void);

/* POS was sent at NOW_MS (a monotonic clock); positions are sent in
 * increasing order (a lower one is ignored). */
void sf_settle_sent(sf_settle_t *s, int64_t pos, int64_t now_ms);

/* POS was delivered at OFFSET of downstream PARTITION; PARTITION < 0 for a
 * delivery that is settled as it is (a durable dead-letter store). A
 * position not sent, or sent before the last reset, is ignored. */
void sf_settle_delivered(sf_settle_t *s, int64_t pos, int32_t partition,
                         int64_t offset);

/* The group's committed offset on PARTITION (the next record it reads), or
 * -1 when unknown. */
typedef int64_t(sf_settle_committed_fn)(void *arg, int32_t partition);

/* Forgets every settled checkpoint at the front and returns the highest
 * position P such that every position sent up to P is settled, or -1 when
 * nothing more is. */
int64_t sf_settle_take(sf_settle_t *s, sf_settle_committed_fn *committed,
                       void *arg);

/* Positions sent and not returned by sf_settle_take yet. */
size_t sf_settle_pending(const sf_settle_t *s);

/* Bytes the ledger holds, for measuring it. */
size_t sf_settle_bytes(const sf_settle_t *s);

/* Forgets everything (the source was rewound: it sends again). */
void sf_settle_reset(sf_settle_t *s);

void sf_settle_destroy(sf_settle_t *s); /* NULL is a no-op */

#endif
