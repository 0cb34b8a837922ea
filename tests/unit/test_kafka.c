/*
 * Kafka plumbing against the embedded broker, in process: topic creation,
 * delivery reports, group consumption, offsets stored up to the lowest
 * unfinished record, and two consumers sharing and handing over partitions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kafka.h"
#include "sf.h"

static sf_broker_t *broker;
static const char *bootstraps;

/* Consumers rejoin quickly: the embedded broker finishes a rebalance only
 * after session.timeout.ms less one second. */
static sf_kv_t consumer_kv[] = {
    {"session.timeout.ms", "2500"},
    {"heartbeat.interval.ms", "250"},
};

static sf_kafka_cfg_t kcfg(sf_kv_t *kv, size_t kv_cnt)
{
        sf_kafka_cfg_t k = {
            .brokers = "embedded",
            .embedded = 1,
            .topic_prefix = "ktest",
            .partitions = 4,
            .replication_factor = -1,
            .config = kv,
            .config_cnt = kv_cnt,
        };

        return k;
}

static int setup(void **state)
{
        char err[512];

        (void)state;
        broker = sf_broker_new(1, err, sizeof(err));
        if (!broker) {
                fprintf(stderr, "%s\n", err);
                return -1;
        }
        bootstraps = sf_broker_bootstraps(broker);
        return 0;
}

static int teardown(void **state)
{
        (void)state;
        sf_broker_destroy(broker);
        return 0;
}

/* --- producing ----------------------------------------------------------- */

typedef struct slot {
        int calls;
        rd_kafka_resp_err_t err;
} slot_t;

typedef struct deliveries {
        slot_t *slots;
        size_t cnt;
        int stray; /* callbacks with an opaque that is no slot */
} deliveries_t;

static void on_delivery(void *cb_arg, void *opaque, rd_kafka_resp_err_t err)
{
        deliveries_t *d = cb_arg;
        slot_t *s = opaque;

        if (s < d->slots || s >= d->slots + d->cnt) {
                d->stray++;
                return;
        }
        s->calls++;
        s->err = err;
}

/* Sends records FROM..FROM+N-1 ("key-%04d" -> "value-%04d", every tenth
 * with a header n=index) to TOPIC and asserts every delivery report came
 * back once, without error, with its own opaque. */
static void produce(const char *topic, int32_t partition, int from, int n)
{
        sf_kafka_cfg_t k = kcfg(NULL, 0);
        deliveries_t d = {sf_calloc((size_t)n, sizeof(slot_t)), (size_t)n, 0};
        char err[512];
        sf_producer_t *p = sf_producer_new(&k, bootstraps, "test-producer",
                                           on_delivery, &d, err, sizeof(err));

        assert_non_null(p);
        for (int i = 0; i < n; i++) {
                char key[32], value[32];
                rd_kafka_headers_t *h = NULL;

                snprintf(key, sizeof(key), "key-%04d", from + i);
                snprintf(value, sizeof(value), "value-%04d", from + i);
                if ((from + i) % 10 == 0) {
                        h = rd_kafka_headers_new(1);
                        rd_kafka_header_add(h, "n", -1, key + 4, -1);
                }
                assert_int_equal(sf_producer_send(p, topic, partition, key,
                                                  strlen(key), value,
                                                  strlen(value), h, &d.slots[i],
                                                  5000, err, sizeof(err)),
                                 0);
        }
        assert_int_equal(sf_producer_flush(p, 10000), 0);
        assert_int_equal(sf_producer_outstanding(p), 0);
        for (int i = 0; i < n; i++) {
                assert_int_equal(d.slots[i].calls, 1);
                assert_int_equal(d.slots[i].err, RD_KAFKA_RESP_ERR_NO_ERROR);
        }
        assert_int_equal(d.stray, 0);
        sf_producer_destroy(p, 1000);
        free(d.slots);
}

static void create_topic(const char *topic, int partitions)
{
        char err[512];

        assert_int_equal(
            sf_broker_create_topic(broker, topic, partitions, err, sizeof(err)),
            0);
}

/* N of a "key-N" key, or -1 (no assertions: member threads use it). */
static int key_index(const rd_kafka_message_t *m)
{
        char buf[16];

        if (m->key_len <= 4 || m->key_len >= sizeof(buf) ||
            memcmp(m->key, "key-", 4))
                return -1;
        memcpy(buf, m->key, m->key_len);
        buf[m->key_len] = '\0';
        return atoi(buf + 4);
}

/* The record is exactly what produce() sent for its key. */
static int check_record(const rd_kafka_message_t *m)
{
        int idx = key_index(m);
        char value[32];
        rd_kafka_headers_t *h = NULL;
        const void *hv;
        size_t hlen;

        assert_in_range(idx, 0, 9999);
        snprintf(value, sizeof(value), "value-%04d", idx);
        assert_int_equal(m->len, strlen(value));
        assert_memory_equal(m->payload, value, m->len);
        rd_kafka_message_headers(m, &h);
        if (idx % 10 == 0) {
                assert_non_null(h);
                assert_int_equal(rd_kafka_header_get_last(h, "n", &hv, &hlen),
                                 RD_KAFKA_RESP_ERR_NO_ERROR);
                assert_int_equal(hlen, 4);
                assert_memory_equal(hv, (const char *)m->key + 4, 4);
        } else {
                assert_true(!h || rd_kafka_header_cnt(h) == 0);
        }
        return idx;
}

/* The group's committed offset, or -2 when it cannot be read. Free of
 * cmocka assertions: the group test calls it from its member threads. */
static int64_t committed(rd_kafka_t *rk, const char *topic, int32_t partition)
{
        rd_kafka_topic_partition_list_t *l =
            rd_kafka_topic_partition_list_new(1);
        int64_t off = -2;

        rd_kafka_topic_partition_list_add(l, topic, partition);
        if (!rd_kafka_committed(rk, l, 5000) && !l->elems[0].err)
                off = l->elems[0].offset;
        rd_kafka_topic_partition_list_destroy(l);
        return off;
}

static int64_t high_watermark(rd_kafka_t *rk, const char *topic,
                              int32_t partition)
{
        int64_t lo, hi;

        assert_int_equal(rd_kafka_query_watermark_offsets(rk, topic, partition,
                                                          &lo, &hi, 5000),
                         0);
        return hi;
}

/* --- tests --------------------------------------------------------------- */

static int topic_partitions(rd_kafka_t *rk, const char *topic)
{
        const struct rd_kafka_metadata *md;
        int cnt = -1;

        assert_int_equal(rd_kafka_metadata(rk, 1, NULL, &md, 5000), 0);
        for (int i = 0; i < md->topic_cnt; i++)
                if (!strcmp(md->topics[i].topic, topic) && !md->topics[i].err)
                        cnt = md->topics[i].partition_cnt;
        rd_kafka_metadata_destroy(md);
        return cnt;
}

static void test_create_topics(void **state)
{
        char *names[] = {"ct.sync-log", "ct.outbound.message",
                         "ct.outbound.webservice", "ct.dlq"};
        sf_config_t cfg = {0};
        sf_kafka_cfg_t k = kcfg(NULL, 0);
        char err[512];
        sf_producer_t *p;

        (void)state;
        cfg.kafka = k;
        cfg.topic_sync_log = names[0];
        cfg.topic_outbound_message = names[1];
        cfg.topic_outbound_webservice = names[2];
        cfg.topic_dlq = names[3];
        assert_int_equal(
            sf_kafka_create_topics(&cfg, broker, bootstraps, err, sizeof(err)),
            0);
        /* Existing topics are left alone, even with another count. */
        cfg.kafka.partitions = 9;
        assert_int_equal(
            sf_kafka_create_topics(&cfg, broker, bootstraps, err, sizeof(err)),
            0);
        p = sf_producer_new(&k, bootstraps, "test-md", NULL, NULL, err,
                            sizeof(err));
        assert_non_null(p);
        for (int i = 0; i < 4; i++)
                assert_int_equal(
                    topic_partitions(sf_producer_handle(p), names[i]), 4);
        sf_producer_destroy(p, 0);

        cfg.kafka.partitions = 0;
        cfg.topic_sync_log = "zero.sync-log";
        assert_int_equal(
            sf_kafka_create_topics(&cfg, broker, bootstraps, err, sizeof(err)),
            -1);
        assert_string_equal(err, "cannot create topic zero.sync-log: 0 "
                                 "partitions; at least one is needed");
        cfg.topic_dlq = NULL;
        assert_int_equal(
            sf_kafka_create_topics(&cfg, broker, bootstraps, err, sizeof(err)),
            -1);
        assert_string_equal(err, "the pipeline's topic names are not set");
}

static void test_conf(void **state)
{
        sf_kv_t bad[] = {{"linger.ms", "7"}, {"no.such.property", "1"}};
        sf_kv_t good[] = {{"linger.ms", "7"}};
        sf_kafka_cfg_t k = kcfg(bad, 2);
        char err[512], val[256];
        size_t len = sizeof(val);
        rd_kafka_conf_t *conf;

        (void)state;
        assert_null(sf_kafka_conf_new(&k, "h:1", "cid", err, sizeof(err)));
        assert_string_equal(err, "kafka.config: no.such.property: No such "
                                 "configuration property: "
                                 "\"no.such.property\"");
        k = kcfg(good, 1);
        conf = sf_kafka_conf_new(&k, "h:1,h:2", "cid", err, sizeof(err));
        assert_non_null(conf);
        assert_int_equal(
            rd_kafka_conf_get(conf, "bootstrap.servers", val, &len), 0);
        assert_string_equal(val, "h:1,h:2");
        len = sizeof(val);
        assert_int_equal(rd_kafka_conf_get(conf, "client.id", val, &len), 0);
        assert_string_equal(val, "cid");
        len = sizeof(val);
        assert_int_equal(rd_kafka_conf_get(conf, "linger.ms", val, &len), 0);
        assert_string_equal(val, "7");
        rd_kafka_conf_destroy(conf);
}

static const char *header(const rd_kafka_headers_t *h, const char *name,
                          char *buf, size_t size)
{
        const void *v;
        size_t len;

        assert_int_equal(rd_kafka_header_get_last(h, name, &v, &len), 0);
        assert_true(len < size);
        memcpy(buf, v, len);
        buf[len] = '\0';
        return buf;
}

static void test_dlq_headers(void **state)
{
        rd_kafka_headers_t *orig = rd_kafka_headers_new(2);
        rd_kafka_headers_t *h;
        char buf[128];
        const void *v;
        size_t len;
        struct tm tm = {0};
        int ms = -1;
        char *end;
        int64_t t, now = sf_now_ms();

        (void)state;
        rd_kafka_header_add(orig, "syncfleet-event-id", -1, "ev-1", -1);
        rd_kafka_header_add(orig, "syncfleet-error", -1, "an older error", -1);
        h = sf_dlq_headers_new(orig, "ktest.outbound.message", 2, 41,
                               "HTTP 422: unprocessable", "deliver", 3);
        assert_string_equal(header(h, "syncfleet-event-id", buf, sizeof(buf)),
                            "ev-1");
        assert_string_equal(header(h, "syncfleet-error", buf, sizeof(buf)),
                            "HTTP 422: unprocessable");
        /* The older error is replaced, not repeated. */
        assert_int_equal(rd_kafka_header_get(h, 1, "syncfleet-error", &v, &len),
                         RD_KAFKA_RESP_ERR__NOENT);
        assert_string_equal(header(h, "syncfleet-stage", buf, sizeof(buf)),
                            "deliver");
        assert_string_equal(header(h, "syncfleet-attempts", buf, sizeof(buf)),
                            "3");
        assert_string_equal(header(h, "syncfleet-origin", buf, sizeof(buf)),
                            "ktest.outbound.message/2/41");
        header(h, "syncfleet-failed-at", buf, sizeof(buf));
        assert_int_equal(strlen(buf), 24);
        end = strptime(buf, "%Y-%m-%dT%H:%M:%S", &tm);
        assert_non_null(end);
        assert_int_equal(sscanf(end, ".%3dZ", &ms), 1);
        assert_int_equal(end[4], 'Z');
        t = (int64_t)timegm(&tm) * 1000 + ms;
        assert_true(t >= now - 1000 && t <= now + 5000);
        assert_int_equal(rd_kafka_header_cnt(h), 6);
        /* The original is untouched. */
        assert_string_equal(header(orig, "syncfleet-error", buf, sizeof(buf)),
                            "an older error");
        assert_int_equal(rd_kafka_header_cnt(orig), 2);
        rd_kafka_headers_destroy(h);
        rd_kafka_headers_destroy(orig);

        h = sf_dlq_headers_new(NULL, "t", -1, -1001, "e", "route", 1);
        assert_int_equal(rd_kafka_header_cnt(h), 5);
        assert_string_equal(header(h, "syncfleet-origin", buf, sizeof(buf)),
                            "t/-1/-1001");
        rd_kafka_headers_destroy(h);
}

static void test_produce_deliveries(void **state)
{
        (void)state;
        create_topic("kt.produce", 4);
        produce("kt.produce", RD_KAFKA_PARTITION_UA, 0, 1000);
}

static void test_queue_full(void **state)
{
        sf_kv_t small[] = {{"queue.buffering.max.messages", "5"}};
        sf_kafka_cfg_t k = kcfg(small, 1);
        slot_t slots[200] = {{0}};
        deliveries_t d = {slots, 200, 0};
        char err[512];
        sf_producer_t *p;

        (void)state;
        create_topic("kt.full", 2);
        /* A queue of five: sends wait for delivery reports to make room. */
        p = sf_producer_new(&k, bootstraps, "test-full", on_delivery, &d, err,
                            sizeof(err));
        assert_non_null(p);
        for (int i = 0; i < 200; i++)
                assert_int_equal(sf_producer_send(p, "kt.full",
                                                  RD_KAFKA_PARTITION_UA, "k", 1,
                                                  "v", 1, NULL, &slots[i], 5000,
                                                  err, sizeof(err)),
                                 0);
        assert_int_equal(sf_producer_flush(p, 10000), 0);
        for (int i = 0; i < 200; i++) {
                assert_int_equal(slots[i].calls, 1);
                assert_int_equal(slots[i].err, 0);
        }
        sf_producer_destroy(p, 1000);

        /* Nobody listening and a queue of one: the second send gives up
         * after its timeout, and destroy reports the first as purged. */
        memset(slots, 0, sizeof(slots));
        small[0].value = "1";
        p = sf_producer_new(&k, "127.0.0.1:1", "test-full", on_delivery, &d,
                            err, sizeof(err));
        assert_non_null(p);
        assert_int_equal(
            sf_producer_send(p, "kt.nowhere", RD_KAFKA_PARTITION_UA, "k", 1,
                             "v", 1, NULL, &slots[0], 100, err, sizeof(err)),
            0);
        assert_int_equal(sf_producer_send(p, "kt.nowhere",
                                          RD_KAFKA_PARTITION_UA, "k", 1, "v", 1,
                                          rd_kafka_headers_new(1), &slots[1],
                                          300, err, sizeof(err)),
                         -1);
        assert_string_equal(err, "cannot produce to kt.nowhere: Local: Queue "
                                 "full");
        assert_int_equal(sf_producer_outstanding(p), 1);
        sf_producer_destroy(p, 200);
        assert_int_equal(slots[0].calls, 1);
        assert_int_equal(slots[0].err, RD_KAFKA_RESP_ERR__PURGE_QUEUE);
        assert_int_equal(slots[1].calls, 0);
        sf_producer_destroy(NULL, 0);
}

static void test_consume_all(void **state)
{
        const char *topics[] = {"kt.consume"};
        sf_kafka_cfg_t k = kcfg(consumer_kv, 2);
        char err[512];
        int seen[1000] = {0}, got = 0;
        int64_t deadline = sf_mono_ms() + 20000, hw_sum = 0;
        sf_consumer_t *c;
        rd_kafka_topic_partition_list_t *asg;

        (void)state;
        create_topic("kt.consume", 4);
        produce("kt.consume", RD_KAFKA_PARTITION_UA, 0, 1000);
        c = sf_consumer_new(&k, bootstraps, "kt-consume", "test-consume",
                            topics, 1, err, sizeof(err));
        assert_non_null(c);
        while (got < 1000 && sf_mono_ms() < deadline) {
                sf_offset_ref_t ref;
                rd_kafka_message_t *m = sf_consumer_poll(c, 200, &ref);

                if (!m)
                        continue;
                assert_int_equal(ref.topic_idx, 0);
                assert_int_equal(ref.partition, m->partition);
                assert_int_equal(ref.offset, m->offset);
                seen[check_record(m)]++;
                got++;
                assert_int_equal(sf_consumer_inflight(c), 1);
                sf_consumer_done(c, &ref);
                assert_int_equal(sf_consumer_inflight(c), 0);
                rd_kafka_message_destroy(m);
        }
        assert_int_equal(got, 1000);
        for (int i = 0; i < 1000; i++)
                assert_int_equal(seen[i], 1);
        assert_int_equal(sf_consumer_commit(c, err, sizeof(err)), 0);
        assert_int_equal(rd_kafka_assignment(sf_consumer_handle(c), &asg), 0);
        assert_int_equal(asg->cnt, 4);
        for (int i = 0; i < asg->cnt; i++) {
                int64_t hw = high_watermark(sf_consumer_handle(c), "kt.consume",
                                            asg->elems[i].partition);

                assert_int_equal(committed(sf_consumer_handle(c), "kt.consume",
                                           asg->elems[i].partition),
                                 hw);
                hw_sum += hw;
        }
        assert_int_equal(hw_sum, 1000);
        rd_kafka_topic_partition_list_destroy(asg);
        sf_consumer_destroy(c);
        sf_consumer_destroy(NULL);
}

/* Commits and returns the committed offset of kt.order [0]. */
static int64_t commit_order(sf_consumer_t *c)
{
        char err[512];

        assert_int_equal(sf_consumer_commit(c, err, sizeof(err)), 0);
        return committed(sf_consumer_handle(c), "kt.order", 0);
}

static void test_done_out_of_order(void **state)
{
        const char *topics[] = {"kt.order"};
        sf_kafka_cfg_t k = kcfg(consumer_kv, 2);
        char err[512];
        sf_offset_ref_t refs[15], stale;
        int got = 0;
        int64_t deadline = sf_mono_ms() + 20000;
        sf_consumer_t *c;

        (void)state;
        create_topic("kt.order", 1);
        produce("kt.order", 0, 0, 10);
        c = sf_consumer_new(&k, bootstraps, "kt-order", "test-order", topics, 1,
                            err, sizeof(err));
        assert_non_null(c);
        while (got < 10 && sf_mono_ms() < deadline) {
                rd_kafka_message_t *m = sf_consumer_poll(c, 200, &refs[got]);

                if (!m)
                        continue;
                assert_int_equal(m->offset, got);
                rd_kafka_message_destroy(m);
                got++;
        }
        assert_int_equal(got, 10);
        assert_int_equal(sf_consumer_inflight(c), 10);
        sf_consumer_done(c, &refs[0]);
        sf_consumer_done(c, &refs[2]);
        sf_consumer_done(c, &refs[1]);
        sf_consumer_done(c, &refs[5]);
        sf_consumer_done(c, &refs[4]);
        sf_consumer_done(c, &refs[7]);
        assert_int_equal(sf_consumer_inflight(c), 4);
        assert_int_equal(commit_order(c), 3);
        sf_consumer_done(c, &refs[3]);
        assert_int_equal(commit_order(c), 6);
        sf_consumer_done(c, &refs[6]);
        assert_int_equal(commit_order(c), 8);
        sf_consumer_done(c, &refs[9]);
        assert_int_equal(commit_order(c), 8);
        /* A record of an earlier assignment of the partition stores
         * nothing. */
        stale = refs[8];
        stale.epoch--;
        sf_consumer_done(c, &stale);
        assert_int_equal(sf_consumer_inflight(c), 1);
        assert_int_equal(commit_order(c), 8);
        sf_consumer_done(c, &refs[8]);
        assert_int_equal(sf_consumer_inflight(c), 0);
        assert_int_equal(commit_order(c), 10);

        /* Paused: records produced now stay on the broker until resumed. */
        sf_consumer_pause(c, 1);
        produce("kt.order", 0, 10, 5);
        for (int64_t until = sf_mono_ms() + 1000; sf_mono_ms() < until;) {
                sf_offset_ref_t ref;

                assert_null(sf_consumer_poll(c, 100, &ref));
        }
        sf_consumer_pause(c, 0);
        deadline = sf_mono_ms() + 10000;
        while (got < 15 && sf_mono_ms() < deadline) {
                rd_kafka_message_t *m = sf_consumer_poll(c, 200, &refs[got]);

                if (!m)
                        continue;
                assert_int_equal(m->offset, got);
                assert_int_equal(check_record(m), got);
                rd_kafka_message_destroy(m);
                sf_consumer_done(c, &refs[got++]);
        }
        assert_int_equal(got, 15);
        assert_int_equal(commit_order(c), 15);
        sf_consumer_destroy(c);
}

static void count_revoked(void *opaque,
                          const rd_kafka_topic_partition_list_t *parts)
{
        *(int *)opaque += parts->cnt;
}

/* An eager assignor (range) instead of cooperative-sticky: partitions are
 * assigned and revoked whole, the revoke commits what was stored. */
static void test_eager_protocol(void **state)
{
        const char *topics[] = {"kt.eager"};
        sf_kv_t kv[] = {
            {"session.timeout.ms", "2500"},
            {"heartbeat.interval.ms", "250"},
            {"partition.assignment.strategy", "range"},
        };
        sf_kafka_cfg_t k = kcfg(kv, 3);
        char err[512];
        int seen[20] = {0}, got = 0, revoked = 0;
        int64_t deadline = sf_mono_ms() + 20000;
        sf_consumer_t *c;
        rd_kafka_t *probe;
        rd_kafka_conf_t *conf;

        (void)state;
        create_topic("kt.eager", 2);
        produce("kt.eager", 0, 0, 12);
        produce("kt.eager", 1, 12, 8);
        c = sf_consumer_new(&k, bootstraps, "kt-eager", "test-eager", topics, 1,
                            err, sizeof(err));
        assert_non_null(c);
        sf_consumer_set_revoke_cb(c, count_revoked, &revoked);
        while (got < 20 && sf_mono_ms() < deadline) {
                sf_offset_ref_t ref;
                rd_kafka_message_t *m = sf_consumer_poll(c, 200, &ref);

                if (!m)
                        continue;
                assert_string_equal(
                    rd_kafka_rebalance_protocol(sf_consumer_handle(c)),
                    "EAGER");
                seen[check_record(m)]++;
                got++;
                sf_consumer_done(c, &ref);
                rd_kafka_message_destroy(m);
        }
        assert_int_equal(got, 20);
        for (int i = 0; i < 20; i++)
                assert_int_equal(seen[i], 1);
        sf_consumer_destroy(c);
        assert_int_equal(revoked, 2);

        /* What the group committed, read by a client outside it. */
        conf =
            sf_kafka_conf_new(&k, bootstraps, "test-probe", err, sizeof(err));
        assert_non_null(conf);
        assert_int_equal(
            rd_kafka_conf_set(conf, "group.id", "kt-eager", err, sizeof(err)),
            RD_KAFKA_CONF_OK);
        probe = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
        assert_non_null(probe);
        assert_int_equal(committed(probe, "kt.eager", 0), 12);
        assert_int_equal(committed(probe, "kt.eager", 1), 8);
        rd_kafka_destroy(probe);
}

/* --- two consumers in one group ----------------------------------------- */

#define GROUP_TOPIC "kt.group"
#define GROUP_KEYS  1000

typedef struct entry {
        int32_t partition;
        int64_t offset;
        int key;
} entry_t;

typedef struct member {
        const char *name;
        pthread_t thread;
        atomic_int stop;
        atomic_int hold;     /* keep records unfinished */
        atomic_int assigned; /* partitions assigned now */
        atomic_int got;
        atomic_int revoked;    /* partitions revoked so far */
        atomic_int commit_req; /* set by the test: commit now */
        atomic_int commits;    /* commits done on request */
        pthread_mutex_t lock;
        entry_t log[2 * GROUP_KEYS];
        int log_cnt;
        sf_offset_ref_t held[GROUP_KEYS];
        int held_cnt;
        int64_t committed[4]; /* at leave, for partitions still owned */
        int failed;
} member_t;

static void on_revoke(void *opaque, const rd_kafka_topic_partition_list_t *p)
{
        member_t *mb = opaque;

        mb->revoked += p->cnt;
}

/* The records finished just before leaving: all held ones but the second
 * of each partition, so the committed offset sits in the middle. */
static void member_finish_held(member_t *mb, sf_consumer_t *c)
{
        int seen[4] = {0};

        for (int i = 0; i < mb->held_cnt; i++) {
                int32_t p = mb->held[i].partition;

                if (++seen[p] != 2)
                        sf_consumer_done(c, &mb->held[i]);
        }
}

static void *member_run(void *arg)
{
        member_t *mb = arg;
        const char *topics[] = {GROUP_TOPIC};
        sf_kafka_cfg_t k = kcfg(consumer_kv, 2);
        char err[512];
        sf_consumer_t *c = sf_consumer_new(&k, bootstraps, "kt-group", mb->name,
                                           topics, 1, err, sizeof(err));
        rd_kafka_topic_partition_list_t *asg;
        int hold;

        if (!c) {
                fprintf(stderr, "%s: %s\n", mb->name, err);
                mb->failed = 1;
                return NULL;
        }
        sf_consumer_set_revoke_cb(c, on_revoke, mb);
        while (!mb->stop) {
                sf_offset_ref_t ref;
                rd_kafka_message_t *m = sf_consumer_poll(c, 100, &ref);

                if (mb->commit_req) {
                        mb->commit_req = 0;
                        if (sf_consumer_commit(c, err, sizeof(err)))
                                mb->failed = 1;
                        mb->commits++;
                }
                if (!rd_kafka_assignment(sf_consumer_handle(c), &asg)) {
                        mb->assigned = asg->cnt;
                        rd_kafka_topic_partition_list_destroy(asg);
                }
                if (!m)
                        continue;
                if (key_index(m) < 0 || key_index(m) >= GROUP_KEYS ||
                    mb->log_cnt == 2 * GROUP_KEYS) {
                        mb->failed = 1;
                        rd_kafka_message_destroy(m);
                        break;
                }
                hold = mb->hold;
                pthread_mutex_lock(&mb->lock);
                mb->log[mb->log_cnt++] =
                    (entry_t){m->partition, m->offset, key_index(m)};
                if (hold)
                        mb->held[mb->held_cnt++] = ref;
                pthread_mutex_unlock(&mb->lock);
                if (!hold)
                        sf_consumer_done(c, &ref);
                rd_kafka_message_destroy(m);
                mb->got++;
        }
        member_finish_held(mb, c);
        if (sf_consumer_commit(c, err, sizeof(err)))
                mb->failed = 1;
        for (int p = 0; p < 4; p++)
                mb->committed[p] = -1;
        if (!rd_kafka_assignment(sf_consumer_handle(c), &asg)) {
                for (int i = 0; i < asg->cnt; i++)
                        mb->committed[asg->elems[i].partition] =
                            committed(sf_consumer_handle(c), GROUP_TOPIC,
                                      asg->elems[i].partition);
                rd_kafka_topic_partition_list_destroy(asg);
        }
        sf_consumer_destroy(c);
        return NULL;
}

/* Waits for COND, failing after TIMEOUT_MS or when a member failed. */
#define WAIT_UNTIL(cond, timeout_ms)                                           \
        do {                                                                   \
                int64_t until_ = sf_mono_ms() + (timeout_ms);                  \
                while (!(cond)) {                                              \
                        assert_false(a.failed || b.failed);                    \
                        assert_true(sf_mono_ms() < until_);                    \
                        usleep(10000);                                         \
                }                                                              \
        } while (0)

static void test_group_split_and_takeover(void **state)
{
        static member_t a = {.name = "member-a"}, b = {.name = "member-b"};
        int owner[4] = {0}; /* 'a' or 'b' per partition in batch two */
        int key_a[GROUP_KEYS] = {0}, key_b[GROUP_KEYS] = {0};
        int64_t hw[4];
        int64_t b_before, b_expected_total;
        sf_producer_t *p;
        sf_kafka_cfg_t k = kcfg(NULL, 0);
        char err[512];

        (void)state;
        pthread_mutex_init(&a.lock, NULL);
        pthread_mutex_init(&b.lock, NULL);
        create_topic(GROUP_TOPIC, 4);
        produce(GROUP_TOPIC, RD_KAFKA_PARTITION_UA, 0, 400);
        assert_int_equal(pthread_create(&a.thread, NULL, member_run, &a), 0);
        WAIT_UNTIL(a.got == 400, 15000);
        assert_int_equal(a.assigned, 4);
        /* The embedded broker refuses commits while a rebalance is under
         * way (a real one takes them), and B joining may set off a second
         * one just when A commits its revoked partitions. So A commits
         * first: B must not see A's records again either way. */
        a.commit_req = 1;
        WAIT_UNTIL(a.commits == 1, 5000);

        /* B joins: cooperative-sticky moves two partitions, A keeps two. */
        assert_int_equal(pthread_create(&b.thread, NULL, member_run, &b), 0);
        WAIT_UNTIL(a.assigned > 0 && b.assigned > 0 &&
                       a.assigned + b.assigned == 4,
                   20000);
        assert_int_equal(a.assigned, 2);
        assert_int_equal(b.assigned, 2);
        assert_int_equal(a.revoked, 2);
        produce(GROUP_TOPIC, RD_KAFKA_PARTITION_UA, 400, 400);
        WAIT_UNTIL(a.got + b.got == 800, 15000);
        pthread_mutex_lock(&a.lock);
        pthread_mutex_lock(&b.lock);
        for (int i = 0; i < a.log_cnt; i++) {
                key_a[a.log[i].key]++;
                if (a.log[i].key >= 400)
                        owner[a.log[i].partition] |= 1;
        }
        for (int i = 0; i < b.log_cnt; i++) {
                key_b[b.log[i].key]++;
                if (b.log[i].key >= 400)
                        owner[b.log[i].partition] |= 2;
        }
        pthread_mutex_unlock(&b.lock);
        pthread_mutex_unlock(&a.lock);
        /* Every record once, between them; each partition read by one. */
        for (int i = 0; i < 800; i++)
                assert_int_equal(key_a[i] + key_b[i], 1);
        for (int i = 0; i < 4; i++)
                assert_true(owner[i] == 1 || owner[i] == 2);
        assert_int_equal((owner[0] == 1) + (owner[1] == 1) + (owner[2] == 1) +
                             (owner[3] == 1),
                         2);

        /* A keeps its next records unfinished, then leaves: B takes A's
         * partitions over from the committed offsets. */
        a.hold = 1;
        produce(GROUP_TOPIC, RD_KAFKA_PARTITION_UA, 800, 200);
        WAIT_UNTIL(a.got + b.got == 1000, 15000);
        b_before = b.got;
        a.stop = 1;
        assert_int_equal(pthread_join(a.thread, NULL), 0);
        assert_false(a.failed);
        assert_int_equal(a.revoked, 4);
        WAIT_UNTIL(b.assigned == 4, 20000);
        p = sf_producer_new(&k, bootstraps, "test-hw", NULL, NULL, err,
                            sizeof(err));
        assert_non_null(p);
        b_expected_total = b_before;
        for (int32_t i = 0; i < 4; i++) {
                hw[i] = high_watermark(sf_producer_handle(p), GROUP_TOPIC, i);
                if (owner[i] == 1) {
                        /* A finished all it held but the second record of
                         * each partition: that one is the commit point. */
                        int64_t expect = hw[i];

                        for (int j = 0, n = 0; j < a.held_cnt; j++)
                                if (a.held[j].partition == i && ++n == 2)
                                        expect = a.held[j].offset;
                        assert_true(expect < hw[i]);
                        assert_int_equal(a.committed[i], expect);
                        b_expected_total += hw[i] - a.committed[i];
                } else {
                        assert_int_equal(a.committed[i], -1);
                }
        }
        sf_producer_destroy(p, 0);
        WAIT_UNTIL(b.got == b_expected_total, 15000);

        /* What B read of A's partitions starts exactly at A's committed
         * offset and runs to the end, each offset once. */
        pthread_mutex_lock(&b.lock);
        for (int32_t part = 0; part < 4; part++) {
                int64_t n = 0, lowest = INT64_MAX;
                static unsigned char seen[GROUP_KEYS];

                if (owner[part] != 1)
                        continue;
                memset(seen, 0, sizeof(seen));
                for (int i = 0; i < b.log_cnt; i++) {
                        if (b.log[i].partition != part)
                                continue;
                        assert_true(b.log[i].offset >= a.committed[part]);
                        assert_true(b.log[i].offset < hw[part]);
                        assert_int_equal(seen[b.log[i].offset], 0);
                        seen[b.log[i].offset] = 1;
                        if (b.log[i].offset < lowest)
                                lowest = b.log[i].offset;
                        n++;
                }
                assert_int_equal(lowest, a.committed[part]);
                assert_int_equal(n, hw[part] - a.committed[part]);
        }
        /* None lost: every key reached A or B. */
        memset(key_a, 0, sizeof(key_a));
        memset(key_b, 0, sizeof(key_b));
        for (int i = 0; i < a.log_cnt; i++)
                key_a[a.log[i].key]++;
        for (int i = 0; i < b.log_cnt; i++)
                key_b[b.log[i].key]++;
        pthread_mutex_unlock(&b.lock);
        for (int i = 0; i < 1000; i++)
                assert_true(key_a[i] + key_b[i] >= 1);
        b.stop = 1;
        assert_int_equal(pthread_join(b.thread, NULL), 0);
        assert_false(b.failed);
}

/* --- records the broker dropped ------------------------------------------ */

/* Consumes from TOPIC in GROUP until a record arrives; commits it. */
static int64_t consume_one(const char *topic, const char *group)
{
        const char *topics[] = {topic};
        sf_kafka_cfg_t k = kcfg(consumer_kv, 2);
        char err[512];
        int64_t deadline = sf_mono_ms() + 20000, offset = -1;
        sf_consumer_t *c = sf_consumer_new(&k, bootstraps, group, "test-lost",
                                           topics, 1, err, sizeof(err));

        assert_non_null(c);
        while (offset < 0 && sf_mono_ms() < deadline) {
                sf_offset_ref_t ref;
                rd_kafka_message_t *m = sf_consumer_poll(c, 200, &ref);

                if (!m)
                        continue;
                offset = m->offset;
                sf_consumer_done(c, &ref);
                rd_kafka_message_destroy(m);
        }
        assert_int_equal(sf_consumer_commit(c, err, sizeof(err)), 0);
        sf_consumer_destroy(c);
        return offset;
}

/* A consumer whose committed position fell out of the broker's retention
 * (the embedded broker keeps about 5 MiB per partition) is told, as an
 * error, that records were lost. */
static void test_lost_records_are_an_error(void **state)
{
        sf_kafka_cfg_t k = kcfg(NULL, 0);
        deliveries_t d = {sf_calloc(800, sizeof(slot_t)), 800, 0};
        char err[512], path[] = "/tmp/sf-test-kafka-XXXXXX", *logged;
        static char big[10 * 1024];
        sf_producer_t *p;
        int fd, saved;
        int64_t first;
        FILE *f;
        long len;

        (void)state;
        create_topic("kt.lost", 1);
        produce("kt.lost", 0, 0, 1);
        assert_int_equal(consume_one("kt.lost", "kt-lost"), 0);
        /* 8 MiB more, each record random, so that the embedded broker's
         * lz4 compression cannot shrink them: the committed position 1 is
         * no longer held */
        srand(7);
        p = sf_producer_new(&k, bootstraps, "test-producer", on_delivery, &d,
                            err, sizeof(err));
        assert_non_null(p);
        for (int i = 0; i < 800; i++) {
                for (size_t j = 0; j < sizeof(big); j++)
                        big[j] = (char)(rand() & 0xff);
                assert_int_equal(
                    sf_producer_send(p, "kt.lost", 0, "k", 1, big, sizeof(big),
                                     NULL, &d.slots[i], 5000, err, sizeof(err)),
                    0);
                /* batches of 1 MiB: the broker drops whole batches */
                if (i % 100 == 99)
                        assert_int_equal(sf_producer_flush(p, 10000), 0);
        }
        sf_producer_destroy(p, 1000);
        free(d.slots);
        /* the log goes to stderr: catch it in a file */
        fd = mkstemp(path);
        assert_true(fd >= 0);
        fflush(stderr);
        saved = dup(STDERR_FILENO);
        dup2(fd, STDERR_FILENO);
        first = consume_one("kt.lost", "kt-lost");
        fflush(stderr);
        dup2(saved, STDERR_FILENO);
        close(saved);
        assert_true(first > 1);
        f = fdopen(fd, "r");
        fseek(f, 0, SEEK_END);
        len = ftell(f);
        rewind(f);
        logged = sf_calloc((size_t)len + 1, 1);
        assert_int_equal(fread(logged, 1, (size_t)len, f), (size_t)len);
        fclose(f);
        unlink(path);
        if (!strstr(logged, "records were lost before this consumer read "
                            "them: the broker no longer holds them") ||
            !strstr(logged, "kt.lost [0]: offset reset (at offset 1"))
                fail_msg("no lost-records error in:\n%s", logged);
        free(logged);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_conf),
            cmocka_unit_test(test_dlq_headers),
            cmocka_unit_test(test_create_topics),
            cmocka_unit_test(test_produce_deliveries),
            cmocka_unit_test(test_queue_full),
            cmocka_unit_test(test_consume_all),
            cmocka_unit_test(test_done_out_of_order),
            cmocka_unit_test(test_eager_protocol),
            cmocka_unit_test(test_group_split_and_takeover),
            cmocka_unit_test(test_lost_records_are_an_error),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
