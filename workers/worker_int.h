/*
 * Internals shared by worker.c (lifecycle, intake, ordering, DLQ) and
 * worker_exec.c (what running one record means). Not for other modules.
 */
#ifndef SF_WORKER_INT_H
#define SF_WORKER_INT_H

#include <librdkafka/rdkafka.h>

#include "config.h"
#include "connector.h"
#include "dlq.h"
#include "envelope.h"
#include "kafka.h"
#include "map.h"
#include "render.h"
#include "source_db.h"
#include "worker.h"

typedef enum sf_job_state {
        SF_JOB_QUEUED = 0, /* behind another record of its key */
        SF_JOB_RUNNING,    /* a request is with a connector */
        SF_JOB_WAITING,    /* in the retry heap */
        SF_JOB_DEAD,       /* on its way to the DLQ */
} sf_job_state_t;

typedef struct sf_keyq sf_keyq_t;

/* One outbound record. */
typedef struct sf_job {
        struct sf_job *next; /* in its key queue */
        sf_worker_t *worker;
        sf_keyq_t *q;
        sf_offset_ref_t ref;
        /* the record as consumed, for the DLQ */
        char *rec_key;
        size_t rec_key_len;
        char *rec_value;
        size_t rec_value_len;
        rd_kafka_headers_t *rec_headers;
        int32_t partition;
        int64_t offset;
        /* parsed */
        sf_outbound_t ob;
        const sf_action_cfg_t *action;
        sf_job_state_t state;
        sf_step_t step;
        int attempts;        /* tries of the current step */
        int64_t retry_at_ms; /* monotonic */
        size_t heap_idx;
        cJSON *scope_record; /* the record exported (after loading) */
        cJSON *reply;        /* web service: response.*, status, headers */
        char *last_error;
        int abandoned;  /* partition revoked while running */
        int dlq_stored; /* in the DLQ store: finish it, store nothing */
} sf_job_t;

struct sf_keyq {
        char *key;
        sf_job_t *head; /* the active job */
        sf_job_t *tail;
};

typedef struct sf_conn_slot {
        const sf_connector_ops_t *ops;
        sf_conn_t *conn;
} sf_conn_slot_t;

struct sf_worker {
        const sf_config_t *cfg;
        char *bootstraps;
        sf_action_kind_t kind;
        const char *topic;
        const char *stage; /* "message" | "webservice" */
        sf_consumer_t *consumer;
        sf_producer_t *producer; /* DLQ */
        sf_dlq_t *dlq;           /* the store, or the topic via producer */
        sf_map_t *keys;          /* record key -> sf_keyq_t */
        sf_conn_slot_t *conns;   /* one per configured connector */
        sf_source_db_t *db;      /* opened on first use */
        sf_job_t **heap;         /* retry heap by retry_at_ms */
        size_t heap_cnt, heap_cap;
        size_t jobs; /* records held, all states */
        int paused;
        int stopping;
        unsigned int seed;
        uint64_t ok, retried, dead;
};

/* worker_exec.c */
void sf_job_start(sf_worker_t *w, sf_job_t *job);
void sf_job_free(sf_job_t *job);

/* worker.c */
void sf_worker_job_finished(sf_worker_t *w, sf_job_t *job);
void sf_worker_job_retry(sf_worker_t *w, sf_job_t *job, int64_t delay_ms);
void sf_worker_job_dead(sf_worker_t *w, sf_job_t *job, const char *reason);
sf_conn_slot_t *sf_worker_conn(sf_worker_t *w, const sf_connector_cfg_t *c);

#endif
