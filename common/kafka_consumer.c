/*
 * The group consumer. Records are handed out one by one and may finish in
 * any order; each assigned partition has a tracker, and the offset stored
 * for the next (auto) commit is always the partition's lowest unfinished
 * record, so a crash redelivers at most what was not finished.
 *
 * Rebalances: both the cooperative protocol (cooperative-sticky, the
 * default: only moved partitions are revoked) and eager ones (everything is
 * revoked) are handled. A revoked partition's stored offset is committed
 * synchronously before it goes to another member, and its epoch changes so
 * work finishing late for it stores nothing.
 */
#include "kafka.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sf.h"

typedef struct sf_cpart {
        sf_tracker_t *tracker; /* NULL while the partition is not ours */
        uint32_t epoch;
        int64_t stored; /* last offset stored; -1 */
        int known;      /* set up by sf_consumer_part */
} sf_cpart_t;

typedef struct sf_ctopic {
        char *name;
        sf_cpart_t *parts; /* indexed by partition */
        int32_t part_cnt;
} sf_ctopic_t;

struct sf_consumer {
        rd_kafka_t *rk;
        sf_ctopic_t *topics;
        size_t topic_cnt;
        sf_revoke_cb *revoke_cb;
        void *revoke_opaque;
        int paused;
        size_t inflight;
};

static int sf_consumer_topic_idx(const sf_consumer_t *c, const char *topic)
{
        for (size_t i = 0; i < c->topic_cnt; i++)
                if (!strcmp(c->topics[i].name, topic))
                        return (int)i;
        return -1;
}

/* The state of one partition; created on first use when CREATE is set,
 * else NULL for a partition never seen. */
static sf_cpart_t *sf_consumer_part(sf_consumer_t *c, int topic_idx,
                                    int32_t partition, int create)
{
        sf_ctopic_t *t;

        if (topic_idx < 0 || (size_t)topic_idx >= c->topic_cnt || partition < 0)
                return NULL;
        t = &c->topics[topic_idx];
        if (partition >= t->part_cnt) {
                int32_t cnt = t->part_cnt ? t->part_cnt : 8;

                if (!create)
                        return NULL;
                while (cnt <= partition)
                        cnt *= 2;
                t->parts =
                    sf_realloc(t->parts, (size_t)cnt * sizeof(*t->parts));
                memset(t->parts + t->part_cnt, 0,
                       (size_t)(cnt - t->part_cnt) * sizeof(*t->parts));
                t->part_cnt = cnt;
        }
        if (!t->parts[partition].known) {
                if (!create)
                        return NULL;
                t->parts[partition].stored = -1;
                t->parts[partition].known = 1;
        }
        return &t->parts[partition];
}

/* Forgets a partition's in-flight records: late sf_consumer_done calls for
 * them find another epoch and store nothing. */
static void sf_consumer_part_drop(sf_consumer_t *c, sf_cpart_t *p)
{
        if (p->tracker) {
                c->inflight -= sf_tracker_inflight(p->tracker);
                sf_tracker_destroy(p->tracker);
                p->tracker = NULL;
        }
        p->epoch++;
        p->stored = -1;
}

static void sf_consumer_log_parts(sf_consumer_t *c, const char *what,
                                  const rd_kafka_topic_partition_list_t *parts)
{
        sf_buf_t b;

        if (!sf_log_enabled(SF_LOG_INFO))
                return;
        /* The cooperative protocol calls with no partitions at all when a
         * rebalance leaves this member's share as it was: said once, so
         * that the log shows every rebalance (a static member's return
         * causes none). */
        if (!parts->cnt) {
                if (!strcmp(what, "assigned"))
                        sf_info("kafka",
                                "%s: a rebalance left this member's "
                                "partitions as they were",
                                rd_kafka_name(c->rk));
                return;
        }
        sf_buf_init(&b, 4096);
        for (int i = 0; i < parts->cnt; i++)
                sf_buf_printf(&b, "%s%s[%d]", i ? ", " : "",
                              parts->elems[i].topic,
                              (int)parts->elems[i].partition);
        sf_info("kafka", "%s: %s %d partition%s: %s", rd_kafka_name(c->rk),
                what, parts->cnt, parts->cnt == 1 ? "" : "s", b.data);
        sf_buf_free(&b);
}

static void sf_consumer_assigned(sf_consumer_t *c,
                                 rd_kafka_topic_partition_list_t *parts,
                                 int cooperative)
{
        rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;

        for (int i = 0; i < parts->cnt; i++) {
                const rd_kafka_topic_partition_t *tp = &parts->elems[i];
                sf_cpart_t *p = sf_consumer_part(
                    c, sf_consumer_topic_idx(c, tp->topic), tp->partition, 1);

                if (!p)
                        continue;
                sf_consumer_part_drop(c, p);
                p->tracker = sf_tracker_new();
        }
        sf_consumer_log_parts(c, "assigned", parts);
        if (cooperative) {
                rd_kafka_error_t *error =
                    rd_kafka_incremental_assign(c->rk, parts);

                if (error) {
                        sf_error("kafka", "%s: incremental assign: %s",
                                 rd_kafka_name(c->rk),
                                 rd_kafka_error_string(error));
                        rd_kafka_error_destroy(error);
                }
        } else {
                err = rd_kafka_assign(c->rk, parts);
                if (err)
                        sf_error("kafka", "%s: assign: %s",
                                 rd_kafka_name(c->rk), rd_kafka_err2str(err));
        }
        /* A partition keeps its pause flag across assignments, so new ones
         * are set explicitly to what the consumer as a whole is. */
        err = c->paused ? rd_kafka_pause_partitions(c->rk, parts)
                        : rd_kafka_resume_partitions(c->rk, parts);
        if (err)
                sf_warn("kafka", "%s: %s new partitions: %s",
                        rd_kafka_name(c->rk), c->paused ? "pause" : "resume",
                        rd_kafka_err2str(err));
}

/* Commits what was stored for the partitions going away, so the member
 * that gets them next starts after the work done here. */
static void sf_consumer_commit_revoked(sf_consumer_t *c,
                                       rd_kafka_topic_partition_list_t *parts)
{
        rd_kafka_topic_partition_list_t *commit =
            rd_kafka_topic_partition_list_new(parts->cnt);
        rd_kafka_resp_err_t err;

        for (int i = 0; i < parts->cnt; i++) {
                const rd_kafka_topic_partition_t *tp = &parts->elems[i];
                sf_cpart_t *p = sf_consumer_part(
                    c, sf_consumer_topic_idx(c, tp->topic), tp->partition, 0);

                if (p && p->stored >= 0)
                        rd_kafka_topic_partition_list_add(commit, tp->topic,
                                                          tp->partition)
                            ->offset = p->stored;
        }
        if (commit->cnt) {
                err = rd_kafka_commit(c->rk, commit, 0 /* sync */);
                if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
                        sf_warn("kafka",
                                "%s: commit of revoked partitions: %s; their "
                                "unfinished records will be delivered again",
                                rd_kafka_name(c->rk), rd_kafka_err2str(err));
        }
        rd_kafka_topic_partition_list_destroy(commit);
}

static void sf_consumer_revoked(sf_consumer_t *c,
                                rd_kafka_topic_partition_list_t *parts,
                                int cooperative)
{
        rd_kafka_resp_err_t err;
        int lost = rd_kafka_assignment_lost(c->rk);

        sf_consumer_log_parts(c, lost ? "lost" : "revoked", parts);
        if (c->revoke_cb)
                c->revoke_cb(c->revoke_opaque, parts);
        /* A lost assignment already belongs to someone else: committing
         * would fail, and must not succeed. */
        if (!lost)
                sf_consumer_commit_revoked(c, parts);
        for (int i = 0; i < parts->cnt; i++) {
                const rd_kafka_topic_partition_t *tp = &parts->elems[i];
                sf_cpart_t *p = sf_consumer_part(
                    c, sf_consumer_topic_idx(c, tp->topic), tp->partition, 0);

                if (p)
                        sf_consumer_part_drop(c, p);
        }
        if (cooperative) {
                rd_kafka_error_t *error =
                    rd_kafka_incremental_unassign(c->rk, parts);

                if (error) {
                        sf_error("kafka", "%s: incremental unassign: %s",
                                 rd_kafka_name(c->rk),
                                 rd_kafka_error_string(error));
                        rd_kafka_error_destroy(error);
                }
        } else {
                err = rd_kafka_assign(c->rk, NULL);
                if (err)
                        sf_error("kafka", "%s: unassign: %s",
                                 rd_kafka_name(c->rk), rd_kafka_err2str(err));
        }
}

static void sf_consumer_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                                     rd_kafka_topic_partition_list_t *parts,
                                     void *opaque)
{
        sf_consumer_t *c = opaque;
        const char *proto = rd_kafka_rebalance_protocol(rk);
        int cooperative = proto && !strcmp(proto, "COOPERATIVE");

        if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
                sf_consumer_assigned(c, parts, cooperative);
                return;
        }
        if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
                sf_error("kafka",
                         "%s: rebalance failed: %s; giving up the "
                         "partitions",
                         rd_kafka_name(rk), rd_kafka_err2str(err));
        sf_consumer_revoked(c, parts, cooperative);
}

static int sf_kafka_cfg_has(const sf_kafka_cfg_t *k, const char *key)
{
        for (size_t i = 0; k && i < k->config_cnt; i++)
                if (!strcmp(k->config[i].key, key))
                        return 1;
        return 0;
}

/* Sets KEY unless kafka.config did (DEFAULT) or whatever it said (FORCE). */
static int sf_consumer_conf_set(rd_kafka_conf_t *conf, const sf_kafka_cfg_t *k,
                                const char *key, const char *value, int force,
                                char *errstr, size_t errstr_size)
{
        char err[512];

        if (!force && sf_kafka_cfg_has(k, key))
                return 0;
        if (rd_kafka_conf_set(conf, key, value, err, sizeof(err)) !=
            RD_KAFKA_CONF_OK) {
                sf_seterr(errstr, errstr_size, "%s: %s", key, err);
                return -1;
        }
        return 0;
}

sf_consumer_t *sf_consumer_new(const sf_kafka_cfg_t *k, const char *bootstraps,
                               const char *group, const char *client_id,
                               const char *const *topics, size_t topic_cnt,
                               char *errstr, size_t errstr_size)
{
        sf_consumer_t *c = sf_calloc(1, sizeof(*c));
        rd_kafka_conf_t *conf;
        rd_kafka_topic_partition_list_t *sub = NULL;
        rd_kafka_resp_err_t err;
        char rkerr[512];
        int rc = 0;

        conf = sf_kafka_conf_new(k, bootstraps, client_id, errstr, errstr_size);
        if (!conf)
                goto fail;
        /* Offsets are stored only for finished work, and what is stored is
         * committed: not negotiable. */
        rc = sf_consumer_conf_set(conf, k, "group.id", group, 1, errstr,
                                  errstr_size);
        if (!rc)
                rc = sf_consumer_conf_set(conf, k, "enable.auto.offset.store",
                                          "false", 1, errstr, errstr_size);
        if (!rc)
                rc = sf_consumer_conf_set(conf, k, "enable.auto.commit", "true",
                                          1, errstr, errstr_size);
        if (!rc)
                rc = sf_consumer_conf_set(conf, k, "auto.offset.reset",
                                          "earliest", 0, errstr, errstr_size);
        if (!rc)
                rc = sf_consumer_conf_set(
                    conf, k, "partition.assignment.strategy",
                    "cooperative-sticky", 0, errstr, errstr_size);
        /* Static membership: a member that comes back under the same id
         * within session.timeout.ms gets its partitions back and the
         * others keep theirs; one that goes away is noticed only when
         * its session expires, since a static member does not leave the
         * group when it closes. */
        if (!rc && k && k->instance_id)
                rc = sf_consumer_conf_set(conf, k, "group.instance.id",
                                          k->instance_id, 1, errstr,
                                          errstr_size);
        /* A member that died is noticed after session.timeout.ms; 10 s
         * (instead of librdkafka's 45 s) moves a crashed worker's
         * partitions to the others quickly. The embedded broker completes
         * every rebalance only when session.timeout.ms (less a second) has
         * passed, so there it is 6 s, the least a real broker accepts. */
        /* The embedded broker answers a fetch only when fetch.wait.max.ms
         * has passed, even when records arrived meanwhile (a real broker
         * answers as soon as fetch.min.bytes are there): at the default
         * 500 ms each consumer hop would add up to half a second. */
        if (!rc && k && k->embedded)
                rc = sf_consumer_conf_set(conf, k, "fetch.wait.max.ms", "10", 0,
                                          errstr, errstr_size);
        /* The producing side's backlog guard (kafka_guard.c) reads the
         * committed offsets: on the embedded broker, where it runs and
         * commits cost nothing, they follow the work closely. */
        if (!rc && k && k->embedded)
                rc = sf_consumer_conf_set(conf, k, "auto.commit.interval.ms",
                                          "100", 0, errstr, errstr_size);
        if (!rc && !sf_kafka_cfg_has(k, "session.timeout.ms")) {
                int emb = k && k->embedded;

                rc = sf_consumer_conf_set(conf, k, "session.timeout.ms",
                                          emb ? "6000" : "10000", 1, errstr,
                                          errstr_size);
                if (!rc && !sf_kafka_cfg_has(k, "heartbeat.interval.ms"))
                        rc = sf_consumer_conf_set(
                            conf, k, "heartbeat.interval.ms",
                            emb ? "1000" : "3000", 0, errstr, errstr_size);
        }
        if (rc)
                goto fail;
        rd_kafka_conf_set_rebalance_cb(conf, sf_consumer_rebalance_cb);
        rd_kafka_conf_set_opaque(conf, c);
        c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, rkerr, sizeof(rkerr));
        if (!c->rk) {
                sf_seterr(errstr, errstr_size,
                          "cannot create consumer for group %s: %s", group,
                          rkerr);
                goto fail;
        }
        conf = NULL; /* now owned by c->rk */
        rd_kafka_poll_set_consumer(c->rk);
        c->topics = sf_calloc(topic_cnt, sizeof(*c->topics));
        c->topic_cnt = topic_cnt;
        sub = rd_kafka_topic_partition_list_new((int)topic_cnt);
        for (size_t i = 0; i < topic_cnt; i++) {
                c->topics[i].name = sf_strdup(topics[i]);
                rd_kafka_topic_partition_list_add(sub, topics[i],
                                                  RD_KAFKA_PARTITION_UA);
        }
        err = rd_kafka_subscribe(c->rk, sub);
        rd_kafka_topic_partition_list_destroy(sub);
        if (err) {
                sf_seterr(errstr, errstr_size,
                          "cannot subscribe group %s to its topics: %s", group,
                          rd_kafka_err2str(err));
                goto fail;
        }
        return c;
fail:
        if (conf)
                rd_kafka_conf_destroy(conf);
        if (c->rk) {
                rd_kafka_destroy(c->rk);
                c->rk = NULL;
        }
        sf_consumer_destroy(c);
        return NULL;
}

void sf_consumer_set_revoke_cb(sf_consumer_t *c, sf_revoke_cb *cb, void *opaque)
{
        c->revoke_cb = cb;
        c->revoke_opaque = opaque;
}

static void sf_consumer_log_error(sf_consumer_t *c, rd_kafka_message_t *m)
{
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                sf_debug("kafka", "%s: end of %s [%d] at offset %lld",
                         rd_kafka_name(c->rk), rd_kafka_topic_name(m->rkt),
                         (int)m->partition, (long long)m->offset);
                return;
        }
        if (m->rkt)
                sf_error("kafka", "%s: consuming %s [%d]: %s: %s",
                         rd_kafka_name(c->rk), rd_kafka_topic_name(m->rkt),
                         (int)m->partition, rd_kafka_err2str(m->err),
                         rd_kafka_message_errstr(m));
        else
                sf_error("kafka", "%s: consumer error: %s: %s",
                         rd_kafka_name(c->rk), rd_kafka_err2str(m->err),
                         rd_kafka_message_errstr(m));
}

rd_kafka_message_t *sf_consumer_poll(sf_consumer_t *c, int timeout_ms,
                                     sf_offset_ref_t *ref)
{
        int64_t deadline = sf_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
        rd_kafka_message_t *m;
        sf_cpart_t *p;
        int idx;

        for (;;) {
                int wait = timeout_ms;

                if (timeout_ms > 0) {
                        int64_t left = deadline - sf_mono_ms();

                        wait = left > 0 ? (int)left : 0;
                }
                m = rd_kafka_consumer_poll(c->rk, wait);
                if (!m)
                        return NULL;
                if (!m->err)
                        break;
                sf_consumer_log_error(c, m);
                rd_kafka_message_destroy(m);
                if (timeout_ms >= 0 && sf_mono_ms() >= deadline)
                        return NULL;
        }
        idx = sf_consumer_topic_idx(c, rd_kafka_topic_name(m->rkt));
        p = sf_consumer_part(c, idx, m->partition, 1);
        if (p && !p->tracker)
                p->tracker = sf_tracker_new(); /* fetched before assign ran */
        if (p) {
                size_t before = sf_tracker_inflight(p->tracker);

                sf_tracker_begin(p->tracker, m->offset);
                c->inflight += sf_tracker_inflight(p->tracker) - before;
        }
        ref->topic_idx = idx;
        ref->partition = m->partition;
        ref->offset = m->offset;
        ref->epoch = p ? p->epoch : 0;
        return m;
}

void sf_consumer_done(sf_consumer_t *c, const sf_offset_ref_t *ref)
{
        sf_cpart_t *p = sf_consumer_part(c, ref->topic_idx, ref->partition, 0);
        rd_kafka_topic_partition_list_t *one;
        rd_kafka_resp_err_t err;
        int64_t committable;
        size_t before;

        if (!p || !p->tracker || p->epoch != ref->epoch) {
                sf_debug("kafka",
                         "%s: record at offset %lld of partition %d finished "
                         "after the partition was revoked; not stored",
                         rd_kafka_name(c->rk), (long long)ref->offset,
                         (int)ref->partition);
                return;
        }
        before = sf_tracker_inflight(p->tracker);
        committable = sf_tracker_done(p->tracker, ref->offset);
        c->inflight -= before - sf_tracker_inflight(p->tracker);
        if (committable < 0 || committable <= p->stored)
                return;
        /* A fresh list each time: librdkafka may keep a reference to the
         * partition in a list it was given, and a long-lived one would
         * keep rd_kafka_destroy waiting for it. */
        one = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(one, c->topics[ref->topic_idx].name,
                                          ref->partition)
            ->offset = committable;
        err = rd_kafka_offsets_store(c->rk, one);
        if (!err)
                err = one->elems[0].err;
        if (err)
                sf_warn("kafka", "%s: storing offset %lld of %s [%d]: %s",
                        rd_kafka_name(c->rk), (long long)committable,
                        c->topics[ref->topic_idx].name, (int)ref->partition,
                        rd_kafka_err2str(err));
        else
                p->stored = committable;
        rd_kafka_topic_partition_list_destroy(one);
}

size_t sf_consumer_inflight(const sf_consumer_t *c)
{
        return c->inflight;
}

void sf_consumer_pause(sf_consumer_t *c, int pause)
{
        rd_kafka_topic_partition_list_t *parts = NULL;
        rd_kafka_resp_err_t err;

        pause = pause != 0;
        if (pause == c->paused)
                return;
        c->paused = pause;
        err = rd_kafka_assignment(c->rk, &parts);
        if (!err && parts->cnt)
                err = pause ? rd_kafka_pause_partitions(c->rk, parts)
                            : rd_kafka_resume_partitions(c->rk, parts);
        if (err)
                sf_warn("kafka", "%s: %s: %s", rd_kafka_name(c->rk),
                        pause ? "pause" : "resume", rd_kafka_err2str(err));
        if (parts)
                rd_kafka_topic_partition_list_destroy(parts);
}

int sf_consumer_commit(sf_consumer_t *c, char *errstr, size_t errstr_size)
{
        rd_kafka_resp_err_t err = rd_kafka_commit(c->rk, NULL, 0 /* sync */);

        if (!err || err == RD_KAFKA_RESP_ERR__NO_OFFSET)
                return 0;
        sf_seterr(errstr, errstr_size, "%s: commit of stored offsets: %s",
                  rd_kafka_name(c->rk), rd_kafka_err2str(err));
        return -1;
}

rd_kafka_t *sf_consumer_handle(sf_consumer_t *c)
{
        return c->rk;
}

void sf_consumer_destroy(sf_consumer_t *c)
{
        if (!c)
                return;
        if (c->rk) {
                char err[512];
                rd_kafka_resp_err_t rerr;

                if (sf_consumer_commit(c, err, sizeof(err)))
                        sf_warn("kafka", "%s", err);
                /* Leaving the group runs the revoke path once more. */
                rerr = rd_kafka_consumer_close(c->rk);
                if (rerr)
                        sf_warn("kafka", "%s: leaving the group: %s",
                                rd_kafka_name(c->rk), rd_kafka_err2str(rerr));
                rd_kafka_destroy(c->rk);
        }
        for (size_t i = 0; i < c->topic_cnt; i++) {
                sf_ctopic_t *t = &c->topics[i];

                for (int32_t p = 0; p < t->part_cnt; p++)
                        sf_tracker_destroy(t->parts[p].tracker);
                free(t->parts);
                free(t->name);
        }
        free(c->topics);
        free(c);
}
