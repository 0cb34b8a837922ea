/*
 * Backlog guard: keeps a producing component from running further ahead of
 * the consumer group that reads its topic than the broker retains.
 *
 * The embedded broker keeps only about 5 MiB per partition and drops older
 * records; a consumer whose committed position was dropped skips to the
 * oldest record left, and the records in between are lost. A thread
 * compares, every SF_GUARD_INTERVAL_MS, the group's committed offsets with
 * the ends of the topic's partitions (OffsetFetch and ListOffsets, as
 * `syncfleet lag` does) and estimates each partition's backlog in bytes
 * from the average size of the records the owner reported sending. While
 * one is above SF_GUARD_BUDGET_BYTES the owner holds back new records.
 *
 * Committed offsets trail what the group has done (they move at each
 * commit), so the estimate errs on the large side: the guard may hold back
 * a little early, never late. A group that has not committed yet may not
 * exist at all (a producer run with only a test reader): it is waited for
 * only when the owner says one will come.
 */
#include "kafka.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "sf.h"

#define SF_GUARD_INTERVAL_MS 100
#define SF_GUARD_TIMEOUT_MS  2000
/* Well below the ~5 MiB the embedded broker keeps: the records sent while
 * the next check is pending, and batch overhead, fit in the rest. */
#define SF_GUARD_BUDGET_BYTES (2u * 1024 * 1024)
/* Partitions whose committed offsets are kept for sf_backlog_guard_committed */
#define SF_GUARD_MAX_PARTITIONS 1024

struct sf_backlog_guard {
        rd_kafka_t *rk; /* a consumer handle of the group; never subscribes */
        char *topic;
        char *group;
        int expect_group;
        pthread_t thread;
        int started;
        atomic_int stop;
        atomic_int active;  /* the group exists or is expected */
        atomic_llong worst; /* largest partition backlog, in records */
        atomic_ullong sent_bytes;
        atomic_ullong sent_records;
        atomic_ullong delivered; /* delivery reports of sent records */
        atomic_ullong delivered_at_check;
        atomic_int holds;     /* 0: watch only, never hold back */
        atomic_int hurry;     /* someone waits for commits: check often */
        atomic_ullong checks; /* checks that got an answer */
        atomic_llong committed[SF_GUARD_MAX_PARTITIONS]; /* -1: none */
        /* the last check that found the backlog too large, for the log */
        int64_t logged_ms;
};

/* The average size of a record sent; before the first one, a guess on
 * the large side, so that the first burst stays small. */
static uint64_t sf_guard_avg(sf_backlog_guard_t *g)
{
        uint64_t n = atomic_load(&g->sent_records);
        uint64_t b = atomic_load(&g->sent_bytes);

        if (!n)
                return 16 * 1024;
        return b / n > 64 ? b / n : 64;
}

/* The backlog of the fullest partition at the last check, plus every
 * record sent since what was delivered by then, as if all went there. */
static uint64_t sf_guard_estimate(sf_backlog_guard_t *g)
{
        uint64_t sent = atomic_load(&g->sent_records);
        uint64_t base = atomic_load(&g->delivered_at_check);

        return (uint64_t)atomic_load(&g->worst) +
               (sent > base ? sent - base : 0);
}

int sf_group_lag_read(rd_kafka_t *rk, const char *topic, int timeout_ms,
                      sf_partition_lag_t **out, char *errstr,
                      size_t errstr_size)
{
        const rd_kafka_metadata_t *md = NULL;
        rd_kafka_topic_partition_list_t *parts = NULL;
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
        rd_kafka_resp_err_t err;
        sf_partition_lag_t *lags = NULL;
        int n = -1;

        *out = NULL;
        err = sf_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
        if (err || md->topic_cnt != 1 || md->topics[0].err) {
                sf_seterr(errstr, errstr_size, "metadata of %s: %s", topic,
                          rd_kafka_err2str(err ? err : md->topics[0].err));
                goto out;
        }
        parts = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
        for (int i = 0; i < md->topics[0].partition_cnt; i++)
                rd_kafka_topic_partition_list_add(
                    parts, topic, md->topics[0].partitions[i].id);
        err = rd_kafka_committed(rk, parts, timeout_ms);
        if (err) {
                sf_seterr(errstr, errstr_size, "committed offsets on %s: %s",
                          topic, rd_kafka_err2str(err));
                goto out;
        }
        lags = sf_calloc(parts->cnt ? (size_t)parts->cnt : 1, sizeof(*lags));
        for (int i = 0; i < parts->cnt; i++) {
                const rd_kafka_topic_partition_t *p = &parts->elems[i];
                sf_partition_lag_t *l = &lags[i];

                l->partition = p->partition;
                err = rd_kafka_query_watermark_offsets(
                    rk, topic, p->partition, &l->lo, &l->hi, timeout_ms);
                if (err) {
                        sf_seterr(errstr, errstr_size,
                                  "end offset of %s [%d]: %s", topic,
                                  (int)p->partition, rd_kafka_err2str(err));
                        goto out;
                }
                /* no commit yet: the group starts at the earliest record */
                l->committed = p->offset >= 0 ? p->offset : -1;
                l->lag = l->hi - (l->committed >= 0 ? l->committed : l->lo);
                if (l->lag < 0)
                        l->lag = 0;
        }
        n = parts->cnt;
        *out = lags;
        lags = NULL;
out:
        free(lags);
        if (parts)
                rd_kafka_topic_partition_list_destroy(parts);
        if (md)
                rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
        return n;
}

/* One look at the group's backlog: the largest lag of a partition into
 * g->worst, and whether the group is there to wait for. 0, or -1 when the
 * broker did not answer. */
static int sf_guard_check(sf_backlog_guard_t *g)
{
        /* every record reported delivered by now is below the ends read
         * next; those sent since are added by sf_guard_estimate */
        uint64_t delivered = atomic_load(&g->delivered);
        sf_partition_lag_t *lags;
        int n, any_commit = 0;
        int32_t worst_p = -1;
        int64_t worst = 0;
        char err[256];

        n = sf_group_lag_read(g->rk, g->topic, SF_GUARD_TIMEOUT_MS, &lags, err,
                              sizeof(err));
        if (n < 0)
                return -1;
        for (int i = 0; i < n; i++) {
                if (lags[i].partition >= 0 &&
                    lags[i].partition < SF_GUARD_MAX_PARTITIONS)
                        atomic_store(&g->committed[lags[i].partition],
                                     lags[i].committed);
                any_commit |= lags[i].committed >= 0;
                if (lags[i].lag > worst) {
                        worst = lags[i].lag;
                        worst_p = lags[i].partition;
                }
        }
        free(lags);
        atomic_store(&g->worst, worst);
        atomic_store(&g->delivered_at_check, delivered);
        atomic_store(&g->active, any_commit || g->expect_group);
        atomic_fetch_add(&g->checks, 1);
        if (sf_backlog_guard_full(g) && sf_mono_ms() - g->logged_ms >= 10000) {
                uint64_t est = sf_guard_estimate(g);

                sf_info("kafka",
                        "holding back: group %s has about %llu records (%llu "
                        "KiB) of %s to read (partition %d had most); the "
                        "embedded broker keeps only about 5 MiB per partition",
                        g->group, (unsigned long long)est,
                        (unsigned long long)(est * sf_guard_avg(g) / 1024),
                        g->topic, worst_p >= 0 ? (int)worst_p : 0);
                g->logged_ms = sf_mono_ms();
        }
        return 0;
}

/* Checks every SF_GUARD_INTERVAL_MS while the owner sends or is held
 * back, every second when it is idle: the owner's own count of what it
 * sent since a check keeps the estimate safe between checks. */
static void *sf_guard_run(void *arg)
{
        sf_backlog_guard_t *g = arg;
        uint64_t seen = 0;

        while (!atomic_load(&g->stop)) {
                uint64_t sent = atomic_load(&g->sent_records);
                int idle = sent == seen && !sf_backlog_guard_full(g) &&
                           !atomic_load(&g->hurry);
                int ticks = (idle ? 1000 : SF_GUARD_INTERVAL_MS) / 10;

                seen = sent;
                /* no answer: the last figures stay */
                (void)sf_guard_check(g);
                for (int i = 0; i < ticks && !atomic_load(&g->stop); i++) {
                        nanosleep(&(struct timespec){0, 10 * 1000000L}, NULL);
                        /* sending again, or waited for: look sooner */
                        if (idle && (atomic_load(&g->sent_records) != seen ||
                                     atomic_load(&g->hurry)))
                                break;
                }
        }
        return NULL;
}

sf_backlog_guard_t *sf_backlog_guard_new(const sf_kafka_cfg_t *k,
                                         const char *bootstraps,
                                         const char *topic, const char *group,
                                         int expect_group, char *errstr,
                                         size_t errstr_size)
{
        sf_backlog_guard_t *g = sf_calloc(1, sizeof(*g));
        rd_kafka_conf_t *conf;
        char err[512];

        g->topic = sf_strdup(topic);
        g->group = sf_strdup(group);
        g->expect_group = expect_group;
        /* an expected group is waited for before the first check */
        atomic_store(&g->active, expect_group);
        g->logged_ms = sf_mono_ms() - 10000;
        atomic_store(&g->holds, 1);
        for (int i = 0; i < SF_GUARD_MAX_PARTITIONS; i++)
                atomic_store(&g->committed[i], -1);
        conf = sf_kafka_conf_new(k, bootstraps, "syncfleet-guard", errstr,
                                 errstr_size);
        if (!conf)
                goto fail;
        if (rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err)) !=
                RD_KAFKA_CONF_OK ||
            !(g->rk =
                  rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err)))) {
                sf_seterr(errstr, errstr_size, "backlog guard of %s: %s", topic,
                          err);
                rd_kafka_conf_destroy(conf);
                goto fail;
        }
        if (pthread_create(&g->thread, NULL, sf_guard_run, g)) {
                sf_seterr(errstr, errstr_size,
                          "backlog guard of %s: cannot start a thread", topic);
                goto fail;
        }
        g->started = 1;
        return g;
fail:
        sf_backlog_guard_destroy(g);
        return NULL;
}

void sf_backlog_guard_sent(sf_backlog_guard_t *g, size_t bytes)
{
        if (!g)
                return;
        atomic_fetch_add(&g->sent_bytes, bytes);
        atomic_fetch_add(&g->sent_records, 1);
}

void sf_backlog_guard_delivered(sf_backlog_guard_t *g)
{
        if (g)
                atomic_fetch_add(&g->delivered, 1);
}

/* Room left under the budget for the estimated backlog. */
int64_t sf_backlog_guard_room(sf_backlog_guard_t *g)
{
        uint64_t records, allowed;

        if (!g || !atomic_load(&g->active) || !atomic_load(&g->holds))
                return INT64_MAX;
        records = sf_guard_estimate(g);
        allowed = SF_GUARD_BUDGET_BYTES / sf_guard_avg(g);
        return records >= allowed ? 0 : (int64_t)(allowed - records);
}

int sf_backlog_guard_full(sf_backlog_guard_t *g)
{
        return sf_backlog_guard_room(g) == 0;
}

void sf_backlog_guard_watch_only(sf_backlog_guard_t *g)
{
        if (g)
                atomic_store(&g->holds, 0);
}

void sf_backlog_guard_hurry(sf_backlog_guard_t *g, int on)
{
        if (g)
                atomic_store(&g->hurry, on);
}

int64_t sf_backlog_guard_committed(sf_backlog_guard_t *g, int32_t partition)
{
        if (!g || partition < 0 || partition >= SF_GUARD_MAX_PARTITIONS)
                return -1;
        return atomic_load(&g->committed[partition]);
}

uint64_t sf_backlog_guard_checks(sf_backlog_guard_t *g)
{
        return g ? atomic_load(&g->checks) : 0;
}

void sf_backlog_guard_destroy(sf_backlog_guard_t *g)
{
        if (!g)
                return;
        atomic_store(&g->stop, 1);
        if (g->started)
                pthread_join(g->thread, NULL);
        if (g->rk)
                rd_kafka_destroy(g->rk);
        free(g->topic);
        free(g->group);
        free(g);
}
