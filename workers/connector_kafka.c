/*
 * The kafka connector: publishes each rendered document as one record to a
 * topic of the pipeline's own cluster (the target's topic, else the
 * connector's). The record key is the action and root record, so changes
 * of one record stay in one partition and in order; the header
 * syncfleet-event-id carries the event id, as Idempotency-Key does on HTTP.
 *
 * A request completes when its delivery report comes back (acks=all,
 * idempotent producer): the worker stores its offset only then. Reports
 * are served inside poll(), which is where the connector contract wants
 * completions.
 */
#include "connector.h"

#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "kafka.h"
#include "log.h"

typedef struct kc_req {
        sf_conn_done_cb *cb;
        void *opaque;
} kc_req_t;

struct sf_conn {
        const sf_connector_cfg_t *cfg;
        sf_producer_t *producer;
        size_t pending;
        int closing; /* close(): reports no longer reach the caller */
};

static void kc_on_delivery(void *cb_arg, void *opaque, rd_kafka_resp_err_t err)
{
        sf_conn_t *c = cb_arg;
        kc_req_t *r = opaque;
        sf_result_t res;

        c->pending--;
        if (!c->closing) {
                memset(&res, 0, sizeof(res));
                res.retry_after_ms = -1;
                res.status = SF_OK;
                if (err) {
                        /* librdkafka already retried within
                         * message.timeout.ms; what is left is for the
                         * worker's own backoff */
                        res.status = SF_RETRY;
                        snprintf(res.error, sizeof(res.error),
                                 "connector %s: delivery failed: %s",
                                 c->cfg->name, rd_kafka_err2str(err));
                }
                r->cb(r->opaque, &res);
        }
        free(r);
}

static sf_conn_t *kc_open(const sf_connector_cfg_t *cfg,
                          const sf_config_t *pipeline, const char *bootstraps,
                          char *errstr, size_t errstr_size)
{
        sf_conn_t *c;
        char *client_id;

        if (!bootstraps || !*bootstraps) {
                sf_seterr(errstr, errstr_size,
                          "connector %s: no Kafka cluster to publish to",
                          cfg->name);
                return NULL;
        }
        c = sf_calloc(1, sizeof(*c));
        c->cfg = cfg;
        client_id = sf_asprintf("syncfleet-connector-%s", cfg->name);
        c->producer = sf_producer_new(&pipeline->kafka, bootstraps, client_id,
                                      kc_on_delivery, c, errstr, errstr_size);
        free(client_id);
        if (!c->producer) {
                free(c);
                return NULL;
        }
        return c;
}

static int kc_send(sf_conn_t *c, const sf_request_t *req, sf_conn_done_cb *done,
                   void *opaque, char *errstr, size_t errstr_size)
{
        const char *topic = req->target && req->target->topic
                                ? req->target->topic
                                : c->cfg->topic;
        rd_kafka_headers_t *hdrs = NULL;
        kc_req_t *r;
        char *value;
        int rc;

        if (!topic) {
                sf_seterr(errstr, errstr_size, "connector %s: no topic",
                          c->cfg->name);
                return -1;
        }
        if (!req->body) {
                sf_seterr(errstr, errstr_size,
                          "connector %s: nothing to publish", c->cfg->name);
                return -1;
        }
        value = sf_json_print(req->body, 0);
        if (!value) {
                sf_seterr(errstr, errstr_size,
                          "connector %s: the document cannot be serialized",
                          c->cfg->name);
                return -1;
        }
        if (req->idempotency_key) {
                hdrs = rd_kafka_headers_new(1);
                rd_kafka_header_add(hdrs, SF_HDR_EVENT_ID, -1,
                                    req->idempotency_key, -1);
        }
        r = sf_calloc(1, sizeof(*r));
        r->cb = done;
        r->opaque = opaque;
        rc = sf_producer_send(
            c->producer, topic, RD_KAFKA_PARTITION_UA, req->record_key,
            req->record_key ? strlen(req->record_key) : 0, value, strlen(value),
            hdrs, r, 1000, errstr, errstr_size);
        free(value);
        if (rc) {
                free(r);
                return -1;
        }
        c->pending++;
        return 0;
}

static int kc_poll(sf_conn_t *c, int timeout_ms)
{
        return sf_producer_poll(c->producer, c->pending ? timeout_ms : 0);
}

static size_t kc_pending(const sf_conn_t *c)
{
        return c->pending;
}

static void kc_close(sf_conn_t *c)
{
        if (!c)
                return;
        c->closing = 1;
        sf_producer_destroy(c->producer, 0);
        free(c);
}

const sf_connector_ops_t sf_connector_kafka = {
    .name = "kafka",
    .type = SF_CONN_KAFKA,
    .open = kc_open,
    .send = kc_send,
    .poll = kc_poll,
    .pending = kc_pending,
    .close = kc_close,
};
