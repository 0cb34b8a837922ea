/*
 * Reading the DLQ topic of a real cluster for `syncfleet dlq`: a plain
 * consumer (librdkafka's simple consumer: no group, nothing committed)
 * reads every partition from its first offset up to the end offset it had
 * when reading began.
 */
#include "dlq_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "sf.h"

/* ORIGIN "topic/partition/offset" into E; the topic may hold no '/', the
 * numbers are the last two parts. */
static void sf_topic_origin(const char *origin, sf_dlq_entry_t *e)
{
        const char *last, *mid;

        e->origin_partition = -1;
        e->origin_offset = -1;
        if (!origin || !(last = strrchr(origin, '/')) || last == origin)
                return;
        for (mid = last - 1; mid > origin && *mid != '/'; mid--)
                ;
        if (*mid != '/')
                return;
        e->origin_topic = sf_strndup(origin, (size_t)(mid - origin));
        e->origin_partition = (int32_t)strtol(mid + 1, NULL, 10);
        e->origin_offset = strtoll(last + 1, NULL, 10);
}

static void sf_topic_entry(const rd_kafka_message_t *m, sf_dlq_entry_t *e)
{
        rd_kafka_headers_t *h = NULL;
        char *s;

        memset(e, 0, sizeof(*e));
        e->id = -1;
        e->dlq_partition = m->partition;
        e->dlq_offset = m->offset;
        e->failed_at_ms = -1;
        e->replayed_at_ms = -1;
        rd_kafka_message_headers(m, &h);
        e->stage = sf_dlq_header_str(h, SF_HDR_STAGE);
        e->error = sf_dlq_header_str(h, SF_HDR_ERROR);
        e->event_id = sf_dlq_header_str(h, SF_HDR_EVENT_ID);
        if ((s = sf_dlq_header_str(h, SF_HDR_ATTEMPTS)))
                e->attempts = atoi(s);
        free(s);
        if ((s = sf_dlq_header_str(h, SF_HDR_FAILED_AT)) &&
            sf_dlq_time_parse(s, 0, &e->failed_at_ms))
                e->failed_at_ms = -1;
        free(s);
        s = sf_dlq_header_str(h, SF_HDR_ORIGIN);
        sf_topic_origin(s, e);
        free(s);
        e->action = sf_dlq_record_action(m->payload, m->len);
        if (m->key) {
                e->key = sf_strndup(m->key, m->key_len);
                e->key_len = m->key_len;
        }
        if (m->payload) {
                e->value = sf_strndup(m->payload, m->len);
                e->value_len = m->len;
        }
        e->value_size = (int64_t)m->len;
        e->value_kept = 1;
        e->headers = sf_dlq_own_headers(h);
}

int sf_dlq_topic_each(const sf_config_t *cfg, const char *bootstraps,
                      const sf_dlq_filter_t *f, int timeout_ms,
                      sf_dlq_each_cb *cb, void *opaque, char *errstr,
                      size_t errstr_size)
{
        const char *topic = cfg->topic_dlq;
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_queue_t *queue = NULL;
        rd_kafka_conf_t *conf;
        rd_kafka_t *rk = NULL;
        int64_t *ends = NULL, deadline = sf_mono_ms() + timeout_ms;
        int pcnt = 0, open = 0, stop = 0, rc = -1;
        char *done = NULL, *started = NULL;
        rd_kafka_resp_err_t err;
        rd_kafka_topic_t *rkt = NULL;
        char buf[512];

        conf = sf_kafka_conf_new(&cfg->kafka, bootstraps, "syncfleet-dlq",
                                 errstr, errstr_size);
        if (!conf)
                return -1;
        if (rd_kafka_conf_set(conf, "enable.partition.eof", "true", buf,
                              sizeof(buf)) != RD_KAFKA_CONF_OK ||
            rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", buf,
                              sizeof(buf)) != RD_KAFKA_CONF_OK) {
                sf_seterr(errstr, errstr_size, "consumer configuration: %s",
                          buf);
                rd_kafka_conf_destroy(conf);
                return -1;
        }
        rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, buf, sizeof(buf));
        if (!rk) {
                sf_seterr(errstr, errstr_size, "cannot create a consumer: %s",
                          buf);
                rd_kafka_conf_destroy(conf);
                return -1;
        }
        conf = NULL; /* now owned by rk */
        rkt = rd_kafka_topic_new(rk, topic, NULL);
        queue = rd_kafka_queue_new(rk);
        err = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
        if (!err && md->topic_cnt != 1)
                err = RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
        else if (!err)
                err = md->topics[0].err;
        if (err) {
                sf_seterr(errstr, errstr_size, "reading the DLQ topic %s: %s",
                          topic, rd_kafka_err2str(err));
                goto out;
        }
        pcnt = md->topics[0].partition_cnt;
        ends = sf_calloc((size_t)(pcnt ? pcnt : 1), sizeof(*ends));
        done = sf_calloc((size_t)(pcnt ? pcnt : 1), 1);
        started = sf_calloc((size_t)(pcnt ? pcnt : 1), 1);
        for (int i = 0; i < pcnt; i++) {
                int32_t p = md->topics[0].partitions[i].id;
                int64_t lo, hi;

                err = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi,
                                                       timeout_ms);
                if (err) {
                        sf_seterr(errstr, errstr_size,
                                  "reading the offsets of %s [%" PRId32 "]: %s",
                                  topic, p, rd_kafka_err2str(err));
                        goto out;
                }
                if (p < 0 || p >= pcnt)
                        continue;
                ends[p] = hi;
                done[p] = lo >= hi;
                if (lo >= hi)
                        continue;
                if (rd_kafka_consume_start_queue(rkt, p, lo, queue)) {
                        sf_seterr(errstr, errstr_size,
                                  "reading %s [%" PRId32 "]: %s", topic, p,
                                  rd_kafka_err2str(rd_kafka_last_error()));
                        goto out;
                }
                started[p] = 1;
                open++;
        }
        while (open > 0) {
                rd_kafka_message_t *m;
                int left = (int)(deadline - sf_mono_ms());
                int32_t p;

                if (left <= 0) {
                        sf_seterr(errstr, errstr_size,
                                  "reading %s: the end of %d partition%s was "
                                  "not reached within %d ms",
                                  topic, open, open == 1 ? "" : "s",
                                  timeout_ms);
                        goto out;
                }
                m = rd_kafka_consume_queue(queue, left < 200 ? left : 200);
                if (!m)
                        continue;
                if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                        sf_seterr(errstr, errstr_size, "reading %s: %s", topic,
                                  rd_kafka_message_errstr(m));
                        rd_kafka_message_destroy(m);
                        goto out;
                }
                p = m->partition;
                if (p < 0 || p >= pcnt || done[p]) {
                        rd_kafka_message_destroy(m);
                        continue;
                }
                /* what was written after reading began is not read */
                if (!m->err && m->offset < ends[p]) {
                        sf_dlq_entry_t e;

                        sf_topic_entry(m, &e);
                        if (!sf_dlq_filter_match(f, &e))
                                sf_dlq_entry_clear(&e);
                        else if (cb(opaque, &e))
                                stop = 1;
                }
                if (m->err || m->offset + 1 >= ends[p]) {
                        done[p] = 1;
                        open--;
                }
                if (stop)
                        open = 0;
                rd_kafka_message_destroy(m);
        }
        rc = 0;
out:
        for (int i = 0; started && i < pcnt; i++)
                if (started[i])
                        rd_kafka_consume_stop(rkt, i);
        if (queue)
                rd_kafka_queue_destroy(queue);
        if (md)
                rd_kafka_metadata_destroy(md);
        if (rkt)
                rd_kafka_topic_destroy(rkt);
        free(ends);
        free(done);
        free(started);
        if (rk)
                rd_kafka_destroy(rk);
        return rc;
}
