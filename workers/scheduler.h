/*
 * The worker's scheduler: per-key order, retries and a circuit per
 * connector, without Kafka or libcurl. Time comes from the caller (NOW_MS,
 * monotonic milliseconds), so tests drive it; nothing here sleeps, logs or
 * does I/O.
 *
 * Records are items the caller embeds in its own struct. Items of one key
 * (action + root record) run strictly one after the other in the order
 * they were added; items of other keys run concurrently. Each item's
 * current step goes through one circuit (the connector the step sends to),
 * which hands the caller at most max_in_flight items at a time.
 *
 * The caller's loop:
 *   sf_sched_add() each record;
 *   while ((it = sf_sched_next(s, now))) run it (or, in state
 *     SF_SCHED_DEAD, send it to the DLQ again);
 *   sf_sched_result() with each outcome, and act on the verdict:
 *     DONE: sf_sched_remove() (finished) or sf_sched_step() (next step);
 *     RETRY: nothing, the item comes back from sf_sched_next();
 *     GIVE_UP: dead-letter it, then sf_sched_remove();
 *     DROP: its partition was revoked: sf_sched_remove(), acknowledge
 *       nothing;
 *   sf_sched_event() after each call, for circuits that opened or closed.
 *
 * Circuits. A transient failure (SF_RETRY) of SF_SCHED_OPEN_AFTER
 * consecutive requests of one connector, whatever their records, opens
 * its circuit: Envoy's consecutive-5xx rule. While open, no item of that
 * circuit starts, except one probe at a time once nothing else of the
 * circuit is in flight, after the connector's initial_backoff_ms doubling
 * per failed probe up to max_backoff_ms; a Retry-After on a failure sets
 * a longer wait, never longer than max_backoff_ms (a Retry-After is
 * bounded by it everywhere) nor shorter than the backoff. A failed probe goes
 * to the back of the circuit's waiting items, so a record that fails alone does
 * not keep the circuit open while others wait behind it. Any success (SF_OK) or
 * rejection of a record (SF_FATAL: the connector answered) closes it.
 *
 * Attempts. A failure counts toward an item's max_attempts only when the
 * connector was otherwise healthy: when some other request of the circuit
 * succeeded (or was answered with a rejection) since the item was added
 * or last failed. So during an outage attempts are frozen, and a record
 * that fails while others succeed gives up after max_attempts. Backoff
 * grows with every failure, counted or not. Failures the caller reports as
 * local (the source database) always count and never touch the circuit.
 * A failure the caller flags SF_SCHED_MISCONFIGURED (the connector cannot
 * work as configured: a token refused, a certificate not trusted, a
 * connector that cannot be opened) is the connector's like any other: it
 * opens the circuit, and its opened event says so, for a louder log line.
 */
#ifndef SF_SCHEDULER_H
#define SF_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

#include "sf.h"

#define SF_SCHED_OPEN_AFTER 5 /* consecutive transient failures */
/* the longest wait a Retry-After sets when max_backoff_ms is not set */
#define SF_SCHED_MAX_RETRY_WAIT (3600 * 1000)

typedef enum sf_sched_state {
        SF_SCHED_QUEUED = 0, /* behind an earlier item of its key */
        SF_SCHED_READY,      /* its key's head, waiting for its circuit */
        SF_SCHED_RUNNING,    /* handed out by sf_sched_next */
        SF_SCHED_WAITING,    /* waiting for its retry */
        SF_SCHED_IDLE,       /* its step is done: remove or step it */
        SF_SCHED_DEAD,       /* given up: being dead-lettered */
} sf_sched_state_t;

typedef struct sf_sched_key sf_sched_key_t;

/* One record. The caller sets PARTITION before sf_sched_add and reads the
 * rest; the fields after it are the scheduler's. */
typedef struct sf_sched_item {
        int32_t partition; /* for sf_sched_revoke; -1: never revoked */
        sf_sched_state_t state;
        int circuit;   /* of the current step */
        int attempts;  /* counted failures of the current step */
        int failures;  /* every failure of the current step */
        int abandoned; /* revoked while running or being dead-lettered */
        /* private */
        sf_sched_key_t *key;
        struct sf_sched_item *next;          /* in its key, or loose list */
        struct sf_sched_item *rprev, *rnext; /* circuit's ready list */
        size_t heap_idx;
        int64_t due_ms;
        uint64_t ok_seen; /* circuit's health count when last looked */
        uint64_t waited;  /* open episode it was counted in */
        int in_heap;
        int probe;
} sf_sched_item_t;

/* One connector as the scheduler sees it (its retry settings). */
typedef struct sf_sched_circuit_cfg {
        int max_in_flight;
        int max_attempts; /* counts the first try */
        int initial_backoff_ms;
        int max_backoff_ms;
} sf_sched_circuit_cfg_t;

typedef struct sf_sched_event {
        int circuit;
        int open;             /* 1: it opened; 0: it closed */
        char reason[256];     /* opened: the failure that opened it */
        int misconfigured;    /* opened: that failure had
                               * SF_SCHED_MISCONFIGURED */
        int64_t open_ms;      /* closed: how long it was open */
        size_t waited;        /* closed: items held back meanwhile and
                               * still here */
        unsigned long probes; /* closed: probes sent while open */
} sf_sched_event_t;

typedef enum sf_sched_verdict {
        SF_SCHED_DONE = 0, /* the step succeeded; now IDLE */
        SF_SCHED_RETRY,    /* it will come back from sf_sched_next */
        SF_SCHED_GIVE_UP,  /* now DEAD: dead-letter it */
        SF_SCHED_DROP,     /* revoked while it ran: remove it, ack nothing */
} sf_sched_verdict_t;

/* How sf_sched_result counts an outcome. */
#define SF_SCHED_LOCAL 0x1 /* not the connector's doing: no circuit effect */
#define SF_SCHED_MISCONFIGURED                                                 \
        0x2 /* a transient failure that only a configuration change mends:     \
             * counted like any other, flagged on the opened event */

typedef struct sf_sched sf_sched_t;

/* CIRCUITS[0..N) are copied. CAP is how many items may be held before
 * sf_sched_intake_paused says to stop intake. SEED drives the jitter. */
sf_sched_t *sf_sched_new(const sf_sched_circuit_cfg_t *circuits, size_t n,
                         size_t cap, unsigned int seed);
/* Frees the scheduler, not the items. NULL is a no-op. */
void sf_sched_destroy(sf_sched_t *s);

/* Adds IT (borrowed until sf_sched_remove) behind the earlier items of
 * KEY (copied; NULL: an item of no key, never ordered), its step on
 * CIRCUIT, with ATTEMPTS already counted (a record replayed from storage
 * keeps its count). */
void sf_sched_add(sf_sched_t *s, sf_sched_item_t *it, const char *key,
                  int circuit, int attempts, int64_t now_ms);

/* The next item to run now, marked RUNNING, or an item in state DEAD whose
 * dead-lettering is to be tried again (see sf_sched_dead_later); NULL when
 * nothing is due. Call until NULL. */
sf_sched_item_t *sf_sched_next(sf_sched_t *s, int64_t now_ms);

/* A circuit that is open, due for a probe, and has no item to probe with
 * (none other than the one whose probe failed last), or -1. Asked once
 * per probe: the caller may sf_sched_add an item for it (a record it set
 * aside) before calling sf_sched_next. */
int sf_sched_starved(sf_sched_t *s, int64_t now_ms);

/* The outcome of IT's step (IT is RUNNING). ST is SF_OK, SF_RETRY or
 * SF_FATAL; RETRY_AFTER_MS is the target's Retry-After or -1; ERROR says
 * why (may be NULL); FLAGS: SF_SCHED_LOCAL, SF_SCHED_MISCONFIGURED. A
 * Retry-After lengthens the wait and never shortens it below the backoff,
 * so no answer can make a retry or a probe loop hot. */
sf_sched_verdict_t sf_sched_result(sf_sched_t *s, sf_sched_item_t *it,
                                   sf_status_t st, int64_t retry_after_ms,
                                   const char *error, int flags,
                                   int64_t now_ms);

/* Moves an IDLE or DEAD item to its next step, on CIRCUIT, with no
 * attempts; it keeps its key's turn. */
void sf_sched_step(sf_sched_t *s, sf_sched_item_t *it, int circuit,
                   int64_t now_ms);

/* Gives up on IT, which is READY (just added) without having run: it
 * becomes DEAD for the caller to dead-letter (a record that cannot even
 * be read). */
void sf_sched_give_up(sf_sched_t *s, sf_sched_item_t *it);

/* A DEAD item whose dead-lettering failed: sf_sched_next hands it out
 * again after DELAY_MS. */
void sf_sched_dead_later(sf_sched_t *s, sf_sched_item_t *it, int64_t delay_ms,
                         int64_t now_ms);

/* Removes IT, which is not RUNNING: finished, dead-lettered, or set aside
 * by the caller. When it was its key's head, the next item of the key
 * becomes ready. */
void sf_sched_remove(sf_sched_t *s, sf_sched_item_t *it);

/* Partitions taken away: every item for which REVOKED(OPAQUE, item) says
 * so and that is not RUNNING or DEAD is removed and passed to
 * DROPPED(OPAQUE, item) to be freed; RUNNING and DEAD ones are marked
 * abandoned (their results come back as SF_SCHED_DROP). */
void sf_sched_revoke(sf_sched_t *s,
                     int (*revoked)(void *opaque, const sf_sched_item_t *it),
                     void (*dropped)(void *opaque, sf_sched_item_t *it),
                     void *opaque);

/* Pops the oldest circuit event into *EV; 0 when there is none. */
int sf_sched_event(sf_sched_t *s, sf_sched_event_t *ev);

/* 1 while the circuit is open. */
int sf_sched_circuit_open(const sf_sched_t *s, int circuit);

/* Closes an open circuit because the connector was seen to work
 * elsewhere (another worker of the process). Emits the closed event. */
void sf_sched_circuit_close(sf_sched_t *s, int circuit, int64_t now_ms);

/* The items of KEY in order: the head (NULL when the key holds none),
 * then sf_sched_key_next. */
sf_sched_item_t *sf_sched_key_head(const sf_sched_t *s, const char *key);
sf_sched_item_t *sf_sched_key_next(const sf_sched_item_t *it);

/* Calls CB(OPAQUE, key, head) for every key with items; CB must not change
 * the scheduler (collect, then act). */
void sf_sched_each_key(const sf_sched_t *s,
                       void (*cb)(void *opaque, const char *key,
                                  sf_sched_item_t *head),
                       void *opaque);

/* Milliseconds until something is due (a retry or a probe), 0 when
 * something is due now, -1 when nothing waits on time. */
int64_t sf_sched_next_due(const sf_sched_t *s, int64_t now_ms);

/* Items held, in every state. */
size_t sf_sched_held(const sf_sched_t *s);

/* Whether intake should be paused: from the moment CAP items are held
 * until fewer than CAP/2 are. */
int sf_sched_intake_paused(sf_sched_t *s);

/* Shutdown: from now on nothing starts (sf_sched_next returns NULL);
 * sf_sched_stopped says when the items running or being dead-lettered
 * have come back, or GRACE_MS has passed. */
void sf_sched_stop(sf_sched_t *s, int grace_ms, int64_t now_ms);
int sf_sched_stopped(const sf_sched_t *s, int64_t now_ms);

#endif
