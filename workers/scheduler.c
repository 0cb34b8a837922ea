/*
 * The worker's scheduler (contract in scheduler.h).
 *
 * Every item belongs to a key: a FIFO whose head alone may leave the
 * queue states (an item of no key gets a key of its own, outside the
 * map). A head that may start sits in its circuit's ready list, a FIFO
 * the circuit starts from while it is closed and has a free slot, or
 * takes one probe from while it is open. Retries and delayed
 * dead-lettering wait in one binary heap ordered by due time.
 */
#include "scheduler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "map.h"

struct sf_sched_key {
        char *name; /* NULL for an item of no key */
        sf_sched_item_t *head, *tail;
        struct sf_sched_key *prev, *next; /* every key, for iteration */
};

typedef struct sf_circuit {
        sf_sched_circuit_cfg_t cfg;
        sf_sched_item_t *ready_head, *ready_tail;
        size_t ready_cnt;
        size_t running;
        int open;
        int fails;   /* consecutive transient failures */
        uint64_t ok; /* requests answered, successes and rejections */
        int64_t opened_ms;
        int64_t probe_at;
        int64_t probe_backoff;
        sf_sched_item_t *probe;      /* the probe on the wire */
        sf_sched_item_t *last_probe; /* whose probe failed last */
        int64_t ask_at;              /* when sf_sched_starved may ask again */
        uint64_t epoch;              /* open episodes so far */
        size_t waited;
        unsigned long probes;
        char reason[256];
        int misconfigured; /* the last failure had SF_SCHED_MISCONFIGURED */
} sf_circuit_t;

struct sf_sched {
        sf_circuit_t *c;
        size_t nc;
        size_t rr; /* circuit to look at first: fairness */
        sf_map_t *keys;
        sf_sched_key_t *keys_head;
        sf_sched_item_t **heap;
        size_t heap_cnt, heap_cap;
        size_t held, cap;
        int paused;
        size_t running;  /* RUNNING items */
        size_t dead_out; /* DEAD items not waiting in the heap */
        unsigned int seed;
        int stopping;
        int64_t stop_deadline;
        sf_sched_event_t *ev;
        size_t ev_head, ev_cnt, ev_cap;
};

/* --- heap of due times ------------------------------------------------ */

static void heap_set(sf_sched_t *s, size_t i, sf_sched_item_t *it)
{
        s->heap[i] = it;
        it->heap_idx = i;
}

static void heap_up(sf_sched_t *s, size_t i)
{
        sf_sched_item_t *it = s->heap[i];

        while (i > 0) {
                size_t p = (i - 1) / 2;

                if (s->heap[p]->due_ms <= it->due_ms)
                        break;
                heap_set(s, i, s->heap[p]);
                i = p;
        }
        heap_set(s, i, it);
}

static void heap_down(sf_sched_t *s, size_t i)
{
        for (;;) {
                size_t l = 2 * i + 1, r = l + 1, m = i;
                sf_sched_item_t *t;

                if (l < s->heap_cnt && s->heap[l]->due_ms < s->heap[m]->due_ms)
                        m = l;
                if (r < s->heap_cnt && s->heap[r]->due_ms < s->heap[m]->due_ms)
                        m = r;
                if (m == i)
                        return;
                t = s->heap[i];
                heap_set(s, i, s->heap[m]);
                heap_set(s, m, t);
                i = m;
        }
}

static void heap_push(sf_sched_t *s, sf_sched_item_t *it, int64_t due_ms)
{
        if (s->heap_cnt == s->heap_cap) {
                s->heap_cap = s->heap_cap ? s->heap_cap * 2 : 64;
                s->heap = sf_realloc(s->heap, s->heap_cap * sizeof(*s->heap));
        }
        it->due_ms = due_ms;
        it->in_heap = 1;
        heap_set(s, s->heap_cnt++, it);
        heap_up(s, it->heap_idx);
}

static void heap_remove(sf_sched_t *s, sf_sched_item_t *it)
{
        size_t i = it->heap_idx;

        if (!it->in_heap)
                return;
        it->in_heap = 0;
        s->heap_cnt--;
        if (i == s->heap_cnt)
                return;
        heap_set(s, i, s->heap[s->heap_cnt]);
        heap_down(s, i);
        heap_up(s, s->heap[i]->heap_idx);
}

/* --- events ------------------------------------------------------------ */

static sf_sched_event_t *event_push(sf_sched_t *s)
{
        sf_sched_event_t *ev;

        if (s->ev_cnt == s->ev_cap) {
                size_t cap = s->ev_cap ? s->ev_cap * 2 : 8;
                sf_sched_event_t *n = sf_calloc(cap, sizeof(*n));

                for (size_t i = 0; i < s->ev_cnt; i++)
                        n[i] = s->ev[(s->ev_head + i) % s->ev_cap];
                free(s->ev);
                s->ev = n;
                s->ev_cap = cap;
                s->ev_head = 0;
        }
        ev = &s->ev[(s->ev_head + s->ev_cnt++) % s->ev_cap];
        memset(ev, 0, sizeof(*ev));
        return ev;
}

int sf_sched_event(sf_sched_t *s, sf_sched_event_t *ev)
{
        if (!s->ev_cnt)
                return 0;
        *ev = s->ev[s->ev_head];
        s->ev_head = (s->ev_head + 1) % s->ev_cap;
        s->ev_cnt--;
        return 1;
}

/* --- ready lists ------------------------------------------------------ */

static void ready_push(sf_sched_t *s, sf_sched_item_t *it)
{
        sf_circuit_t *c = &s->c[it->circuit];

        it->state = SF_SCHED_READY;
        it->rnext = NULL;
        it->rprev = c->ready_tail;
        if (c->ready_tail)
                c->ready_tail->rnext = it;
        else
                c->ready_head = it;
        c->ready_tail = it;
        c->ready_cnt++;
        if (c->open && it->waited != c->epoch) {
                it->waited = c->epoch;
                c->waited++;
        }
}

static void ready_unlink(sf_sched_t *s, sf_sched_item_t *it)
{
        sf_circuit_t *c = &s->c[it->circuit];

        if (it->rprev)
                it->rprev->rnext = it->rnext;
        else
                c->ready_head = it->rnext;
        if (it->rnext)
                it->rnext->rprev = it->rprev;
        else
                c->ready_tail = it->rprev;
        it->rprev = it->rnext = NULL;
        c->ready_cnt--;
}

/* --- circuits --------------------------------------------------------- */

/* A target's Retry-After, bounded by the connector's max_backoff_ms: the
 * pipeline says how long a record may wait, not the answer. */
static int64_t cap_wait(const sf_circuit_t *c, int64_t ms)
{
        int64_t cap = c->cfg.max_backoff_ms > 0 ? c->cfg.max_backoff_ms
                                                : SF_SCHED_MAX_RETRY_WAIT;

        if (cap > SF_SCHED_MAX_RETRY_WAIT)
                cap = SF_SCHED_MAX_RETRY_WAIT;
        return ms > cap ? cap : ms;
}

/* The wait after a failure: BACKOFF, or a longer RETRY_AFTER (-1: none),
 * bounded by max_backoff_ms (cap_wait). A Retry-After of 0, or one a
 * failure that never reached the target passed on by mistake, would
 * otherwise retry at once, again and again. */
static int64_t wait_after(const sf_circuit_t *c, int64_t retry_after,
                          int64_t backoff)
{
        if (retry_after < 0)
                return backoff;
        retry_after = cap_wait(c, retry_after);
        return retry_after > backoff ? retry_after : backoff;
}

static void circuit_open(sf_sched_t *s, sf_circuit_t *c, int64_t retry_after,
                         int64_t now)
{
        sf_sched_event_t *ev;

        c->open = 1;
        c->opened_ms = now;
        c->epoch++;
        c->waited = 0;
        c->probes = 0;
        c->last_probe = NULL;
        c->probe_backoff =
            c->cfg.initial_backoff_ms > 0 ? c->cfg.initial_backoff_ms : 1;
        c->probe_at = now + wait_after(c, retry_after, c->probe_backoff);
        c->ask_at = c->probe_at;
        for (sf_sched_item_t *it = c->ready_head; it; it = it->rnext) {
                it->waited = c->epoch;
                c->waited++;
        }
        ev = event_push(s);
        ev->circuit = (int)(c - s->c);
        ev->open = 1;
        ev->misconfigured = c->misconfigured;
        snprintf(ev->reason, sizeof(ev->reason), "%s", c->reason);
}

static void circuit_close(sf_sched_t *s, sf_circuit_t *c, int64_t now)
{
        sf_sched_event_t *ev;
        size_t n = 0;

        c->open = 0;
        c->fails = 0;
        c->probe = NULL;
        c->last_probe = NULL;
        ev = event_push(s);
        ev->circuit = (int)(c - s->c);
        ev->open = 0;
        ev->open_ms = now - c->opened_ms;
        ev->waited = c->waited;
        ev->probes = c->probes;
        /* Retries that waited out the outage go now, behind what was
         * held back. Collected first: removing from the heap moves it. */
        for (size_t i = 0; i < s->heap_cnt; i++)
                if (s->heap[i]->state == SF_SCHED_WAITING &&
                    &s->c[s->heap[i]->circuit] == c)
                        n++;
        if (n) {
                sf_sched_item_t **due = sf_malloc(n * sizeof(*due));

                n = 0;
                for (size_t i = 0; i < s->heap_cnt; i++)
                        if (s->heap[i]->state == SF_SCHED_WAITING &&
                            &s->c[s->heap[i]->circuit] == c)
                                due[n++] = s->heap[i];
                for (size_t i = 0; i < n; i++) {
                        heap_remove(s, due[i]);
                        ready_push(s, due[i]);
                }
                free(due);
        }
}

void sf_sched_circuit_close(sf_sched_t *s, int circuit, int64_t now_ms)
{
        if (s->c[circuit].open)
                circuit_close(s, &s->c[circuit], now_ms);
}

int sf_sched_circuit_open(const sf_sched_t *s, int circuit)
{
        return s->c[circuit].open;
}

/* --- lifecycle --------------------------------------------------------- */

sf_sched_t *sf_sched_new(const sf_sched_circuit_cfg_t *circuits, size_t n,
                         size_t cap, unsigned int seed)
{
        sf_sched_t *s = sf_calloc(1, sizeof(*s));

        s->nc = n;
        s->c = sf_calloc(n ? n : 1, sizeof(*s->c));
        for (size_t i = 0; i < n; i++) {
                s->c[i].cfg = circuits[i];
                if (s->c[i].cfg.max_in_flight < 1)
                        s->c[i].cfg.max_in_flight = 1;
        }
        s->keys = sf_map_new();
        s->cap = cap;
        s->seed = seed;
        return s;
}

void sf_sched_destroy(sf_sched_t *s)
{
        sf_sched_key_t *k, *next;

        if (!s)
                return;
        for (k = s->keys_head; k; k = next) {
                next = k->next;
                free(k->name);
                free(k);
        }
        sf_map_destroy(s->keys);
        free(s->heap);
        free(s->ev);
        free(s->c);
        free(s);
}

/* --- items ------------------------------------------------------------- */

void sf_sched_add(sf_sched_t *s, sf_sched_item_t *it, const char *key,
                  int circuit, int attempts, int64_t now_ms)
{
        sf_sched_key_t *k = key ? sf_map_get(s->keys, key) : NULL;

        (void)now_ms;
        it->circuit = circuit;
        it->attempts = attempts;
        it->failures = 0;
        it->abandoned = 0;
        it->next = NULL;
        it->rprev = it->rnext = NULL;
        it->in_heap = 0;
        it->probe = 0;
        it->waited = 0;
        it->ok_seen = s->c[circuit].ok;
        if (!k) {
                k = sf_calloc(1, sizeof(*k));
                k->name = key ? sf_strdup(key) : NULL;
                if (key)
                        sf_map_set(s->keys, key, k);
                k->next = s->keys_head;
                if (s->keys_head)
                        s->keys_head->prev = k;
                s->keys_head = k;
        }
        it->key = k;
        s->held++;
        if (k->tail) {
                k->tail->next = it;
                k->tail = it;
                it->state = SF_SCHED_QUEUED;
                return;
        }
        k->head = k->tail = it;
        ready_push(s, it);
}

static void run(sf_sched_t *s, sf_circuit_t *c, sf_sched_item_t *it)
{
        ready_unlink(s, it);
        it->state = SF_SCHED_RUNNING;
        c->running++;
        s->running++;
}

/* The probe candidate of open circuit C: the first held-back item other
 * than the one whose probe failed last, or that one when it is alone. */
static sf_sched_item_t *probe_candidate(sf_circuit_t *c)
{
        for (sf_sched_item_t *it = c->ready_head; it; it = it->rnext)
                if (it != c->last_probe)
                        return it;
        return c->ready_head;
}

static int probe_due(const sf_circuit_t *c, int64_t now)
{
        return c->open && !c->probe && !c->running && now >= c->probe_at;
}

sf_sched_item_t *sf_sched_next(sf_sched_t *s, int64_t now_ms)
{
        if (s->stopping)
                return NULL;
        while (s->heap_cnt && s->heap[0]->due_ms <= now_ms) {
                sf_sched_item_t *it = s->heap[0];

                heap_remove(s, it);
                if (it->state == SF_SCHED_DEAD) {
                        s->dead_out++;
                        return it;
                }
                ready_push(s, it);
        }
        for (size_t n = 0; n < s->nc; n++) {
                size_t i = (s->rr + n) % s->nc;
                sf_circuit_t *c = &s->c[i];
                sf_sched_item_t *it;

                if (c->open) {
                        if (!probe_due(c, now_ms) || !(it = probe_candidate(c)))
                                continue;
                        run(s, c, it);
                        it->probe = 1;
                        c->probe = it;
                        c->probes++;
                } else {
                        if (!c->ready_head ||
                            c->running >= (size_t)c->cfg.max_in_flight)
                                continue;
                        it = c->ready_head;
                        run(s, c, it);
                }
                s->rr = (i + 1) % s->nc;
                return it;
        }
        return NULL;
}

int sf_sched_starved(sf_sched_t *s, int64_t now_ms)
{
        for (size_t i = 0; i < s->nc; i++) {
                sf_circuit_t *c = &s->c[i];
                sf_sched_item_t *cand;

                if (!probe_due(c, now_ms) || now_ms < c->ask_at)
                        continue;
                cand = probe_candidate(c);
                if (cand && cand != c->last_probe)
                        continue;
                /* asked again after a backoff while there is nothing at
                 * all to probe with: what the caller set aside may have
                 * grown */
                c->ask_at = now_ms + c->probe_backoff;
                return (int)i;
        }
        return -1;
}

static int64_t backoff(sf_sched_t *s, const sf_circuit_t *c, int failures)
{
        int64_t d = c->cfg.initial_backoff_ms;

        for (int i = 1; i < failures && d < c->cfg.max_backoff_ms; i++)
                d *= 2;
        if (d > c->cfg.max_backoff_ms)
                d = c->cfg.max_backoff_ms;
        /* jitter in [d/2, d], so records that failed together do not all
         * come back together */
        return d / 2 + rand_r(&s->seed) % (d / 2 + 1);
}

/* The connector's part of an outcome: the circuit's state. */
static void circuit_account(sf_sched_t *s, sf_circuit_t *c, int was_probe,
                            sf_status_t st, int64_t retry_after,
                            const char *error, int flags, int64_t now)
{
        if (st != SF_RETRY) {
                c->fails = 0;
                c->ok++;
                if (c->open)
                        circuit_close(s, c, now);
                return;
        }
        c->fails++;
        snprintf(c->reason, sizeof(c->reason), "%s", error ? error : "failed");
        c->misconfigured = (flags & SF_SCHED_MISCONFIGURED) != 0;
        if (!c->open) {
                if (c->fails >= SF_SCHED_OPEN_AFTER)
                        circuit_open(s, c, retry_after, now);
                return;
        }
        if (was_probe) {
                c->probe_backoff *= 2;
                if (c->probe_backoff > c->cfg.max_backoff_ms)
                        c->probe_backoff = c->cfg.max_backoff_ms > 0
                                               ? c->cfg.max_backoff_ms
                                               : 1;
                c->probe_at =
                    now + wait_after(c, retry_after, c->probe_backoff);
                c->ask_at = c->probe_at;
        } else if (retry_after >= 0 &&
                   c->probe_at < now + cap_wait(c, retry_after)) {
                c->probe_at = now + cap_wait(c, retry_after);
        }
}

sf_sched_verdict_t sf_sched_result(sf_sched_t *s, sf_sched_item_t *it,
                                   sf_status_t st, int64_t retry_after_ms,
                                   const char *error, int flags, int64_t now_ms)
{
        sf_circuit_t *c = &s->c[it->circuit];
        int was_probe = it->probe, local = flags & SF_SCHED_LOCAL;
        int counted;

        c->running--;
        s->running--;
        it->probe = 0;
        if (c->probe == it)
                c->probe = NULL;
        if (!local)
                circuit_account(s, c, was_probe, st, retry_after_ms, error,
                                flags, now_ms);
        if (it->abandoned) {
                it->state = SF_SCHED_IDLE;
                return SF_SCHED_DROP;
        }
        if (st == SF_OK) {
                it->state = SF_SCHED_IDLE;
                return SF_SCHED_DONE;
        }
        if (st == SF_FATAL) {
                it->attempts++;
                it->state = SF_SCHED_DEAD;
                s->dead_out++;
                return SF_SCHED_GIVE_UP;
        }
        it->failures++;
        if (!local && c->open) {
                /* frozen: held back until the circuit closes */
                if (was_probe)
                        c->last_probe = it;
                ready_push(s, it);
                return SF_SCHED_RETRY;
        }
        counted = local || c->ok != it->ok_seen;
        it->ok_seen = c->ok;
        if (counted && ++it->attempts >= c->cfg.max_attempts) {
                it->state = SF_SCHED_DEAD;
                s->dead_out++;
                return SF_SCHED_GIVE_UP;
        }
        it->state = SF_SCHED_WAITING;
        heap_push(s, it,
                  now_ms + wait_after(c, retry_after_ms,
                                      backoff(s, c, it->failures)));
        return SF_SCHED_RETRY;
}

void sf_sched_step(sf_sched_t *s, sf_sched_item_t *it, int circuit,
                   int64_t now_ms)
{
        (void)now_ms;
        if (it->state == SF_SCHED_DEAD && !it->in_heap)
                s->dead_out--;
        heap_remove(s, it);
        it->circuit = circuit;
        it->attempts = 0;
        it->failures = 0;
        it->ok_seen = s->c[circuit].ok;
        ready_push(s, it);
}

void sf_sched_give_up(sf_sched_t *s, sf_sched_item_t *it)
{
        if (it->state == SF_SCHED_READY)
                ready_unlink(s, it);
        it->attempts++;
        it->state = SF_SCHED_DEAD;
        s->dead_out++;
}

void sf_sched_dead_later(sf_sched_t *s, sf_sched_item_t *it, int64_t delay_ms,
                         int64_t now_ms)
{
        if (!it->in_heap)
                s->dead_out--;
        it->state = SF_SCHED_DEAD;
        heap_push(s, it, now_ms + delay_ms);
}

void sf_sched_remove(sf_sched_t *s, sf_sched_item_t *it)
{
        sf_circuit_t *c = &s->c[it->circuit];
        sf_sched_key_t *k = it->key;

        switch (it->state) {
        case SF_SCHED_READY:
                ready_unlink(s, it);
                break;
        case SF_SCHED_WAITING:
                heap_remove(s, it);
                break;
        case SF_SCHED_DEAD:
                if (it->in_heap)
                        heap_remove(s, it);
                else
                        s->dead_out--;
                break;
        case SF_SCHED_RUNNING: /* a caller bug; keep the counts right */
                c->running--;
                s->running--;
                if (c->probe == it)
                        c->probe = NULL;
                break;
        default:
                break;
        }
        if (c->last_probe == it)
                c->last_probe = NULL;
        /* held back and gone elsewhere (set aside, revoked): it no longer
         * waits here */
        if (c->open && it->waited == c->epoch && c->waited)
                c->waited--;
        if (k->head == it) {
                k->head = it->next;
                if (!k->head)
                        k->tail = NULL;
                else
                        ready_push(s, k->head);
        } else {
                sf_sched_item_t *p = k->head;

                while (p && p->next != it)
                        p = p->next;
                if (p) {
                        p->next = it->next;
                        if (k->tail == it)
                                k->tail = p;
                }
        }
        it->next = NULL;
        it->key = NULL;
        s->held--;
        if (k->head)
                return;
        if (k->name)
                sf_map_remove(s->keys, k->name);
        if (k->prev)
                k->prev->next = k->next;
        else
                s->keys_head = k->next;
        if (k->next)
                k->next->prev = k->prev;
        free(k->name);
        free(k);
}

void sf_sched_revoke(sf_sched_t *s,
                     int (*revoked)(void *opaque, const sf_sched_item_t *it),
                     void (*dropped)(void *opaque, sf_sched_item_t *it),
                     void *opaque)
{
        sf_sched_key_t *k = s->keys_head;

        while (k) {
                sf_sched_key_t *knext = k->next;
                sf_sched_item_t *it = k->head;
                int last = 0;

                /* removing a key's last item frees the key */
                while (it && !last) {
                        sf_sched_item_t *next = it->next;

                        last = next == NULL;
                        if (revoked(opaque, it)) {
                                if (it->state == SF_SCHED_RUNNING ||
                                    it->state == SF_SCHED_DEAD) {
                                        it->abandoned = 1;
                                } else {
                                        sf_sched_remove(s, it);
                                        dropped(opaque, it);
                                }
                        }
                        it = next;
                }
                k = knext;
        }
}

sf_sched_item_t *sf_sched_key_head(const sf_sched_t *s, const char *key)
{
        sf_sched_key_t *k = sf_map_get(s->keys, key);

        return k ? k->head : NULL;
}

sf_sched_item_t *sf_sched_key_next(const sf_sched_item_t *it)
{
        return it->next;
}

void sf_sched_each_key(const sf_sched_t *s,
                       void (*cb)(void *opaque, const char *key,
                                  sf_sched_item_t *head),
                       void *opaque)
{
        for (sf_sched_key_t *k = s->keys_head; k; k = k->next)
                cb(opaque, k->name, k->head);
}

int64_t sf_sched_next_due(const sf_sched_t *s, int64_t now_ms)
{
        int64_t due = -1;

        if (s->heap_cnt)
                due = s->heap[0]->due_ms;
        for (size_t i = 0; i < s->nc; i++) {
                const sf_circuit_t *c = &s->c[i];

                int64_t at;

                if (!c->open || c->probe || c->running)
                        continue;
                at = c->ready_head || c->ask_at < c->probe_at ? c->probe_at
                                                              : c->ask_at;
                if (due < 0 || at < due)
                        due = at;
        }
        if (due < 0)
                return -1;
        return due > now_ms ? due - now_ms : 0;
}

size_t sf_sched_held(const sf_sched_t *s)
{
        return s->held;
}

int sf_sched_intake_paused(sf_sched_t *s)
{
        if (!s->paused && s->held >= s->cap)
                s->paused = 1;
        else if (s->paused && s->held < s->cap / 2)
                s->paused = 0;
        return s->paused;
}

void sf_sched_stop(sf_sched_t *s, int grace_ms, int64_t now_ms)
{
        s->stopping = 1;
        s->stop_deadline = now_ms + grace_ms;
}

int sf_sched_stopped(const sf_sched_t *s, int64_t now_ms)
{
        return (!s->running && !s->dead_out) || now_ms >= s->stop_deadline;
}
