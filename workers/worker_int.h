/*
 * Internals shared by worker.c (lifecycle, intake, DLQ), worker_exec.c
 * (what running one record means) and worker_park.c (the parking store
 * while a connector is down). Ordering, retries and circuits are the
 * scheduler's (scheduler.h). Not for other modules.
 */
#ifndef SF_WORKER_INT_H
#define SF_WORKER_INT_H

#include <librdkafka/rdkafka.h>

#include "config.h"
#include "connector.h"
#include "dlq.h"
#include "envelope.h"
#include "kafka.h"
#include "park.h"
#include "render.h"
#include "scheduler.h"
#include "source_db.h"
#include "worker.h"

/* One outbound record. */
typedef struct sf_job {
        sf_sched_item_t item; /* first: sf_job_of() */
        sf_worker_t *worker;
        sf_offset_ref_t ref;
        /* the record as consumed, for the DLQ and the parking store */
        char *rec_key;
        size_t rec_key_len;
        char *rec_value;
        size_t rec_value_len;
        rd_kafka_headers_t *rec_headers;
        char *origin_topic; /* where it was consumed from */
        int32_t partition;
        int64_t offset;
        /* parsed */
        sf_outbound_t ob;
        const sf_action_cfg_t *action;
        char *qkey; /* action + root record, canonical JSON */
        sf_step_t step;
        cJSON *scope_record; /* the record exported (after loading) */
        cJSON *reply;        /* web service: response.*, status, headers */
        char *last_error;
        int dlq_without_value;  /* the DLQ topic refused it whole */
        int64_t park_id;        /* > 0: claimed back from the parking store */
        struct sf_job *parking; /* next in the batch being parked */
} sf_job_t;

static inline sf_job_t *sf_job_of(sf_sched_item_t *it)
{
        return (sf_job_t *)it;
}

typedef struct sf_conn_slot {
        const sf_connector_ops_t *ops;
        sf_conn_t *conn;
        size_t parked;     /* records parked while its circuit was open */
        int64_t opened_ms; /* when its circuit last opened */
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
        sf_sched_t *sched;
        int none_circuit;      /* circuit of records no connector sees */
        sf_conn_slot_t *conns; /* one per configured connector */
        sf_source_db_t *db;    /* opened on first use */
        sf_park_t *park;       /* NULL: records wait in memory */
        size_t *claimed;       /* per action: parked records held here */
        sf_job_t *park_head, *park_tail; /* being parked this round */
        size_t park_cnt;
        int64_t park_retry_at; /* the store failed: try again then */
        int paused;
        unsigned int seed;
        uint64_t ok, retried, dead, parked;
};

/* worker_exec.c */
void sf_job_start(sf_worker_t *w, sf_job_t *job);
void sf_job_free(sf_job_t *job);
/* Turns the outcome of JOB's current step into what happens next. */
void sf_job_outcome(sf_worker_t *w, sf_job_t *job, sf_status_t st,
                    int64_t retry_after_ms, const char *error, int http_status,
                    int flags);

/* worker.c */
/* JOB is finished (target accepted, nothing to do, or dead-lettered):
 * acknowledged (its offset, or its parked row), removed, freed. */
void sf_worker_job_finished(sf_worker_t *w, sf_job_t *job);
/* JOB leaves without acknowledgement (its partition was revoked). */
void sf_worker_job_dropped(sf_worker_t *w, sf_job_t *job);
/* JOB gave up for REASON: to the DLQ. */
void sf_worker_job_dead(sf_worker_t *w, sf_job_t *job, const char *reason);
sf_conn_slot_t *sf_worker_conn(sf_worker_t *w, const sf_connector_cfg_t *c,
                               char *errstr, size_t errstr_size);
int sf_worker_circuit(const sf_worker_t *w, const sf_connector_cfg_t *c);
/* The circuit of ACTION's step STEP. */
int sf_worker_step_circuit(const sf_worker_t *w, const sf_action_cfg_t *a,
                           sf_step_t step);

/* worker_park.c */
/* Where the parking store lives (malloc'd), or NULL when records of a
 * down connector wait in memory. */
char *sf_worker_park_path(const sf_config_t *cfg);
/* Whether records of ACTION go to the parking store now. */
int sf_worker_parks(sf_worker_t *w, const sf_action_cfg_t *a);
/* Sets JOB (consumed, parsed) aside for the batch written by
 * sf_worker_park_commit. */
void sf_worker_park_add(sf_worker_t *w, sf_job_t *job);
/* Writes the batch; acknowledges and frees its records once durable.
 * Returns -1 when the store failed (the batch stays, intake pauses). */
int sf_worker_park_commit(sf_worker_t *w);
/* Drops batch records of partitions REVOKED says are gone. */
void sf_worker_park_revoke(sf_worker_t *w,
                           int (*revoked)(void *opaque, int32_t partition),
                           void *opaque);
/* Circuit of connector CONN opened: set aside what its actions hold. */
void sf_worker_park_evict(sf_worker_t *w, int conn);
/* Whether a new record of ACTION and key QKEY goes to the store now. */
int sf_worker_parks_record(sf_worker_t *w, const sf_action_cfg_t *a,
                           const char *qkey);
/* A record of key QKEY failed while ACTION is down: what of the key can
 * move goes to the store, in order (the record may be gone after). */
void sf_worker_park_evict_key(sf_worker_t *w, const sf_action_cfg_t *a,
                              const char *qkey);
/* Claims parked records back for actions whose connectors are all up. */
void sf_worker_park_drain(sf_worker_t *w);
/* Circuit CONN wants a record to probe with. */
void sf_worker_park_feed(sf_worker_t *w, int conn);
/* A parked record finished (done) or goes back unfinished. */
void sf_worker_park_done(sf_worker_t *w, sf_job_t *job);
void sf_worker_park_release(sf_worker_t *w, sf_job_t *job);
void sf_worker_park_flush(sf_worker_t *w);

#endif
