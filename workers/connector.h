/*
 * Connectors: where a rendered document goes. One file per type
 * (connector_http.c, connector_file.c, ...), each exporting a const
 * sf_connector_ops_t listed in the static table of connector.c.
 *
 * The model is asynchronous and single-threaded: a worker thread calls
 * send() to hand over a request, and poll() to drive I/O; each request's
 * completion callback runs exactly once, always from inside poll() (never
 * from send()), so the caller never sees re-entrant callbacks. A connector
 * accepts every request: it queues what it cannot start yet because of
 * max_in_flight or rate_limit_per_s. The worker bounds how much it hands
 * over.
 */
#ifndef SF_CONNECTOR_H
#define SF_CONNECTOR_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "sf.h"

typedef struct sf_conn sf_conn_t;

/* One delivery. The connector copies what it needs during send(); the
 * caller may free the request right after send() returns. */
typedef struct sf_request {
        const char *method;            /* http: GET, PUT, POST, DELETE, ... */
        const char *path;              /* http: appended to base_url; may be
                                        * NULL. file (json format): the file
                                        * name inside dir, already safe */
        const cJSON *body;             /* the document; NULL: no body */
        const char *idempotency_key;   /* the event id */
        const char *action;            /* for logs and file names */
        const sf_target_cfg_t *target; /* borrowed: database table,
                                        * operation and key; kafka topic */
        const char *record_key;        /* kafka: the record key (action and root
                                        * record, canonical JSON) */
} sf_request_t;

typedef struct sf_result {
        sf_status_t status;     /* SF_OK, SF_RETRY or SF_FATAL */
        int http_status;        /* 0 when no HTTP answer */
        int64_t retry_after_ms; /* from Retry-After on 429/503; else -1 */
        int misconfigured;      /* when SF_RETRY: the connector cannot work
                                 * as configured and waiting will not mend
                                 * it (credentials the token endpoint
                                 * refuses, a certificate the configured
                                 * CAs do not vouch for) */
        char error[512];        /* why, when not SF_OK: "HTTP 404 from PUT
                                 * http://host/customers/7: <body start>" */
        cJSON *response;        /* parsed JSON reply body, or a string node
                                 * with the raw text; NULL when empty. Owned
                                 * by the connector, valid during the
                                 * callback only */
        const char *response_headers_json; /* {"content-type":"..."} or NULL,
                                            * valid during the callback */
} sf_result_t;

typedef void(sf_conn_done_cb)(void *opaque, const sf_result_t *res);

typedef struct sf_connector_ops {
        const char *name; /* "http", "file", ... */
        sf_connector_type_t type;
        /* CFG and PIPELINE are borrowed and outlive the connector.
         * BOOTSTRAPS is the pipeline's Kafka cluster as the process reaches
         * it (the embedded broker's address under `syncfleet run`); only
         * the kafka connector uses it. */
        sf_conn_t *(*open)(const sf_connector_cfg_t *cfg,
                           const sf_config_t *pipeline, const char *bootstraps,
                           char *errstr, size_t errstr_size);
        /* Accepts REQ; DONE(OPAQUE, result) runs later from poll(). Returns
         * 0, or -1 with errstr for a request that can never be sent (then
         * DONE is not called). */
        int (*send)(sf_conn_t *c, const sf_request_t *req,
                    sf_conn_done_cb *done, void *opaque, char *errstr,
                    size_t errstr_size);
        /* Drives I/O for at most TIMEOUT_MS (returns early when something
         * completed) and runs completion callbacks. Returns how many
         * completed. */
        int (*poll)(sf_conn_t *c, int timeout_ms);
        /* Requests accepted and not completed (queued + on the wire). */
        size_t (*pending)(const sf_conn_t *c);
        /* Abandons what is pending without calling callbacks. */
        void (*close)(sf_conn_t *c);
} sf_connector_ops_t;

/* Outcomes of connectors that finish a request inside send() (file,
 * database), held until poll() reports them in order. */
typedef struct sf_doneq_item sf_doneq_item_t;
typedef struct sf_doneq {
        sf_doneq_item_t *head, *tail;
        size_t cnt;
} sf_doneq_t;

void sf_doneq_push(sf_doneq_t *q, sf_conn_done_cb *cb, void *opaque,
                   sf_status_t status, const char *error);
/* Runs the callbacks of everything queued; returns how many ran. */
int sf_doneq_drain(sf_doneq_t *q);
/* Drops everything queued without calling back. */
void sf_doneq_clear(sf_doneq_t *q);

/* The ops for a connector type, or NULL when syncfleet has none yet. */
const sf_connector_ops_t *sf_connector_ops(sf_connector_type_t type);

#endif
