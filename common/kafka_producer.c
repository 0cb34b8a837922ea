/*
 * The idempotent producer. A record counts as written only when its
 * delivery report says so (acks=all): callers acknowledge their upstream
 * from the delivery callback, never from a successful send.
 */
#include "kafka.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sf.h"

struct sf_producer {
        rd_kafka_t *rk;
        sf_delivery_cb *cb;
        void *cb_arg;
        int outstanding;              /* sent, delivery report not served yet */
        rd_kafka_resp_err_t last_err; /* of the last sf_producer_send */
        /* the record whose delivery callback runs */
        const char *dr_topic;
        int32_t dr_partition;
        int64_t dr_offset;
};

/* Runs on the thread that polls the producer, once per record. */
static void sf_producer_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m,
                              void *opaque)
{
        sf_producer_t *p = opaque;

        (void)rk;
        p->outstanding--;
        if (m->err)
                sf_warn("kafka", "delivery to %s [%d] failed: %s",
                        rd_kafka_topic_name(m->rkt), (int)m->partition,
                        rd_kafka_err2str(m->err));
        p->dr_topic = rd_kafka_topic_name(m->rkt);
        p->dr_partition = m->partition;
        p->dr_offset = m->err ? -1 : m->offset;
        if (p->cb)
                p->cb(p->cb_arg, m->_private, m->err);
        p->dr_topic = NULL;
        p->dr_partition = -1;
        p->dr_offset = -1;
}

const char *sf_producer_delivered_at(const sf_producer_t *p, int32_t *partition,
                                     int64_t *offset)
{
        *partition = p->dr_partition;
        *offset = p->dr_offset;
        return p->dr_topic;
}

/* The value kafka.config gives KEY, or NULL. */
static const char *sf_kafka_cfg_get(const sf_kafka_cfg_t *k, const char *key)
{
        for (size_t i = 0; k && i < k->config_cnt; i++)
                if (!strcmp(k->config[i].key, key))
                        return k->config[i].value;
        return NULL;
}

sf_producer_t *sf_producer_new(const sf_kafka_cfg_t *k, const char *bootstraps,
                               const char *client_id, sf_delivery_cb *cb,
                               void *cb_arg, char *errstr, size_t errstr_size)
{
        /* Delivery guarantees are not a matter of taste: these override
         * kafka.config. */
        static const char *const forced[][3] = {
            /* key, value, the same value spelled otherwise */
            {"enable.idempotence", "true", "true"},
            {"acks", "all", "-1"},
        };
        sf_producer_t *p;
        rd_kafka_conf_t *conf;
        char err[512];

        conf = sf_kafka_conf_new(k, bootstraps, client_id, errstr, errstr_size);
        if (!conf)
                return NULL;
        for (size_t i = 0; i < sizeof(forced) / sizeof(forced[0]); i++) {
                const char *given = sf_kafka_cfg_get(k, forced[i][0]);

                if (given && strcmp(given, forced[i][1]) &&
                    strcmp(given, forced[i][2]))
                        sf_warn("kafka",
                                "kafka.config: %s=%s ignored: syncfleet's "
                                "producers always use %s=%s",
                                forced[i][0], given, forced[i][0],
                                forced[i][1]);
                if (rd_kafka_conf_set(conf, forced[i][0], forced[i][1], err,
                                      sizeof(err)) != RD_KAFKA_CONF_OK)
                        goto fail;
        }
        /* A short linger batches the records of one burst without making a
         * lone change wait; kafka.config may choose otherwise. */
        if (!sf_kafka_cfg_get(k, "linger.ms") &&
            !sf_kafka_cfg_get(k, "queue.buffering.max.ms") &&
            rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof(err)) !=
                RD_KAFKA_CONF_OK)
                goto fail;
        /* The embedded broker keeps about 5 MiB per partition; JSON
         * records compressed take a third or less of that, so a consumer
         * may fall that much further behind before records are dropped
         * under it. */
        if (k && k->embedded && !sf_kafka_cfg_get(k, "compression.type") &&
            !sf_kafka_cfg_get(k, "compression.codec") &&
            rd_kafka_conf_set(conf, "compression.type", "lz4", err,
                              sizeof(err)) != RD_KAFKA_CONF_OK)
                goto fail;
        p = sf_calloc(1, sizeof(*p));
        p->cb = cb;
        p->cb_arg = cb_arg;
        rd_kafka_conf_set_dr_msg_cb(conf, sf_producer_dr_cb);
        rd_kafka_conf_set_opaque(conf, p);
        p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
        if (!p->rk) {
                sf_seterr(errstr, errstr_size, "cannot create producer: %s",
                          err);
                rd_kafka_conf_destroy(conf);
                free(p);
                return NULL;
        }
        conf = NULL; /* now owned by p->rk */
        return p;
fail:
        sf_seterr(errstr, errstr_size, "producer configuration: %s", err);
        rd_kafka_conf_destroy(conf);
        return NULL;
}

int sf_producer_send(sf_producer_t *p, const char *topic, int32_t partition,
                     const void *key, size_t key_len, const void *value,
                     size_t value_len, rd_kafka_headers_t *headers,
                     void *opaque, int timeout_ms, char *errstr,
                     size_t errstr_size)
{
        int64_t deadline = sf_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
        rd_kafka_resp_err_t err;

        for (;;) {
                int64_t left;

                err = rd_kafka_producev(
                    p->rk, RD_KAFKA_V_TOPIC(topic),
                    RD_KAFKA_V_PARTITION(partition),
                    RD_KAFKA_V_KEY(key, key_len),
                    RD_KAFKA_V_VALUE((void *)value, value_len),
                    RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_OPAQUE(opaque),
                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
                if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                        break;
                /* The local queue is full: serving delivery reports is what
                 * makes room. */
                left = deadline - sf_mono_ms();
                if (left <= 0)
                        break;
                rd_kafka_poll(p->rk, left < 100 ? (int)left : 100);
        }
        p->last_err = err;
        if (!err) {
                p->outstanding++;
                return 0; /* headers now owned by the record */
        }
        if (headers)
                rd_kafka_headers_destroy(headers);
        if (err == RD_KAFKA_RESP_ERR__FATAL) {
                char fatal[512];

                err = rd_kafka_fatal_error(p->rk, fatal, sizeof(fatal));
                sf_seterr(errstr, errstr_size,
                          "cannot produce to %s: %s (fatal: %s)", topic,
                          rd_kafka_err2str(err), fatal);
        } else {
                sf_seterr(errstr, errstr_size, "cannot produce to %s: %s",
                          topic, rd_kafka_err2str(err));
        }
        return -1;
}

int sf_producer_poll(sf_producer_t *p, int timeout_ms)
{
        return rd_kafka_poll(p->rk, timeout_ms);
}

int sf_producer_flush(sf_producer_t *p, int timeout_ms)
{
        rd_kafka_resp_err_t err = rd_kafka_flush(p->rk, timeout_ms);

        if (err && err != RD_KAFKA_RESP_ERR__TIMED_OUT)
                sf_warn("kafka", "%s: flush: %s", rd_kafka_name(p->rk),
                        rd_kafka_err2str(err));
        return p->outstanding;
}

int sf_producer_outstanding(const sf_producer_t *p)
{
        return p->outstanding;
}

rd_kafka_resp_err_t sf_producer_last_error(const sf_producer_t *p)
{
        return p->last_err;
}

rd_kafka_t *sf_producer_handle(sf_producer_t *p)
{
        return p->rk;
}

/* Records still outstanding after the flush are purged, so their delivery
 * callbacks run (with a purge error) before the producer goes away and
 * callers know not to acknowledge them. */
void sf_producer_destroy(sf_producer_t *p, int timeout_ms)
{
        int left;

        if (!p)
                return;
        left = sf_producer_flush(p, timeout_ms);
        if (left > 0) {
                rd_kafka_resp_err_t err;

                sf_warn("kafka",
                        "%s: %d record%s not delivered after %d ms; purging "
                        "them, their delivery reports say so",
                        rd_kafka_name(p->rk), left, left == 1 ? "" : "s",
                        timeout_ms);
                err = rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE |
                                                RD_KAFKA_PURGE_F_INFLIGHT);
                if (err)
                        sf_warn("kafka", "%s: purge: %s", rd_kafka_name(p->rk),
                                rd_kafka_err2str(err));
                /* Purged records get their reports on the next poll. */
                for (int i = 0; i < 10 && p->outstanding > 0; i++)
                        rd_kafka_poll(p->rk, i ? 100 : 0);
        }
        rd_kafka_destroy(p->rk);
        free(p);
}
