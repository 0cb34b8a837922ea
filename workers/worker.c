/*
 * The worker's lifecycle, intake and DLQ: the Kafka side of running
 * outbound records. What runs when (per-key order, retries, circuits) is
 * the scheduler's (scheduler.c); running one record is worker_exec.c; the
 * parking store while a connector is down is worker_park.c.
 */
#include "worker_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define SF_WORKER_MAX_JOBS   5000 /* records held before intake pauses */
#define SF_WORKER_DLQ_RETRY  1000
#define SF_WORKER_NONE_SLOTS 64 /* unreadable records dead-lettered at once */

/* --- finishing records -------------------------------------------------- */

void sf_worker_job_finished(sf_worker_t *w, sf_job_t *job)
{
        if (job->park_id)
                sf_worker_park_done(w, job);
        else if (!job->item.abandoned)
                sf_consumer_done(w->consumer, &job->ref);
        sf_sched_remove(w->sched, &job->item);
        sf_job_free(job);
}

void sf_worker_job_dropped(sf_worker_t *w, sf_job_t *job)
{
        sf_sched_remove(w->sched, &job->item);
        sf_job_free(job);
}

/* --- DLQ ---------------------------------------------------------------- */

/* The one place a record is handed to the dead-letter store. Returns 0
 * when the store will report later (sf_worker_on_delivery), 1 when the
 * record is durably stored already, -1 with errstr when it was not taken
 * (try again later). Everything around it copes with each of the three. */
static int sf_worker_dlq_send(sf_worker_t *w, sf_job_t *job, char *errstr,
                              size_t errstr_size)
{
        sf_dead_letter_t dl;
        int rc;

        memset(&dl, 0, sizeof(dl));
        dl.origin_topic = job->origin_topic;
        dl.partition = job->partition;
        dl.offset = job->offset;
        dl.key = job->rec_key;
        dl.key_len = job->rec_key_len;
        dl.value = job->rec_value;
        dl.value_len = job->rec_value_len;
        dl.headers = job->rec_headers;
        dl.error = job->last_error ? job->last_error : "failed";
        dl.stage = w->stage;
        dl.attempts = job->item.attempts;
        dl.action = job->action ? job->action->name : NULL;
        dl.event_id = job->ob.event_id;
        dl.without_value = job->dlq_without_value;
        rc = sf_dlq_put(w->dlq, &dl, job, errstr, errstr_size);
        if (rc < 0)
                return -1;
        return rc == SF_DLQ_STORED ? 1 : 0;
}

/* JOB is in the dead-letter store: finished. */
static void sf_worker_dlq_done(sf_worker_t *w, sf_job_t *job)
{
        sf_worker_job_finished(w, job);
}

/* Hands JOB (DEAD) to the DLQ; JOB may be gone when this returns. */
static void sf_worker_dlq_try(sf_worker_t *w, sf_job_t *job)
{
        char errstr[256];
        int rc = sf_worker_dlq_send(w, job, errstr, sizeof(errstr));

        if (rc < 0) {
                sf_warn(w->stage,
                        "cannot hand a record to the DLQ, trying "
                        "again: %s",
                        errstr);
                sf_sched_dead_later(w->sched, &job->item, SF_WORKER_DLQ_RETRY,
                                    sf_mono_ms());
        } else if (rc > 0) {
                sf_worker_dlq_done(w, job);
        }
}

void sf_worker_job_dead(sf_worker_t *w, sf_job_t *job, const char *reason)
{
        free(job->last_error);
        job->last_error = sf_strdup(reason);
        w->dead++;
        sf_warn(w->stage, "%s [%d] offset %lld to the DLQ: %s",
                job->origin_topic, (int)job->partition, (long long)job->offset,
                reason);
        sf_worker_dlq_try(w, job);
}

static void sf_worker_on_delivery(void *cb_arg, void *opaque,
                                  rd_kafka_resp_err_t err)
{
        sf_worker_t *w = cb_arg;
        sf_job_t *job = opaque;

        if (!w->consumer)
                return; /* shutting down: the scheduler's items are freed */
        if (err && sf_dlq_too_large(err) && !job->dlq_without_value) {
                /* never deliverable as it is: at once without its value */
                sf_warn(w->stage,
                        "DLQ delivery failed: %s; sending the record "
                        "without its value of %zu bytes",
                        rd_kafka_err2str(err), job->rec_value_len);
                job->dlq_without_value = 1;
                sf_sched_dead_later(w->sched, &job->item, 0, sf_mono_ms());
                return;
        }
        if (err) {
                sf_warn(w->stage, "DLQ delivery failed, trying again: %s",
                        rd_kafka_err2str(err));
                sf_sched_dead_later(w->sched, &job->item, SF_WORKER_DLQ_RETRY,
                                    sf_mono_ms());
                return;
        }
        sf_worker_dlq_done(w, job);
}

/* --- intake ------------------------------------------------------------- */

static sf_job_t *sf_job_from_message(sf_worker_t *w,
                                     const rd_kafka_message_t *m,
                                     const sf_offset_ref_t *ref)
{
        sf_job_t *job = sf_calloc(1, sizeof(*job));
        rd_kafka_headers_t *hdrs = NULL;

        job->worker = w;
        job->ref = *ref;
        job->origin_topic = sf_strdup(w->topic);
        job->partition = m->partition;
        job->offset = m->offset;
        job->item.partition = m->partition;
        /* a record without a key goes to the DLQ without one */
        job->rec_key = m->key ? sf_strndup(m->key, m->key_len) : NULL;
        job->rec_key_len = m->key ? m->key_len : 0;
        job->rec_value = sf_strndup(m->payload ? m->payload : "", m->len);
        job->rec_value_len = m->len;
        if (!rd_kafka_message_headers(m, &hdrs))
                job->rec_headers = rd_kafka_headers_copy(hdrs);
        return job;
}

/* A record that cannot be read goes to the DLQ at once, in no key. */
static void sf_worker_reject(sf_worker_t *w, sf_job_t *job, const char *why)
{
        sf_sched_add(w->sched, &job->item, NULL, w->none_circuit, 0,
                     sf_mono_ms());
        sf_sched_give_up(w->sched, &job->item);
        sf_worker_job_dead(w, job, why);
}

static void sf_worker_intake(sf_worker_t *w, rd_kafka_message_t *m,
                             const sf_offset_ref_t *ref)
{
        sf_job_t *job = sf_job_from_message(w, m, ref);
        char errstr[512];

        if (m->len + m->key_len > SF_MAX_RECORD_BYTES) {
                sf_worker_reject(w, job, "record larger than 8 MiB");
                return;
        }
        if (sf_outbound_parse(m->payload, m->len, &job->ob, errstr,
                              sizeof(errstr))) {
                sf_worker_reject(w, job, errstr);
                return;
        }
        if (strcmp(job->ob.kind,
                   w->kind == SF_KIND_MESSAGE ? "message" : "webservice")) {
                /* what runs it is the record's own kind, never the topic
                 * it arrived on */
                snprintf(errstr, sizeof(errstr),
                         "a record of kind \"%s\" on %s, which carries kind "
                         "\"%s\": not run",
                         job->ob.kind, w->topic,
                         w->kind == SF_KIND_MESSAGE ? "message" : "webservice");
                sf_worker_reject(w, job, errstr);
                return;
        }
        job->action = sf_config_action(w->cfg, job->ob.action);
        if (!job->action || job->action->kind != w->kind) {
                snprintf(errstr, sizeof(errstr),
                         "no %s named '%s' in the pipeline",
                         w->kind == SF_KIND_MESSAGE ? "message"
                                                    : "web service action",
                         job->ob.action);
                sf_worker_reject(w, job, errstr);
                return;
        }
        /* Order is kept per action and root record, as the record itself
         * names them, whatever key the record was produced with. */
        job->qkey = sf_outbound_key_json(&job->ob);
        if (sf_worker_parks_record(w, job->action, job->qkey)) {
                sf_worker_park_add(w, job);
                return;
        }
        sf_sched_add(w->sched, &job->item, job->qkey,
                     sf_worker_step_circuit(w, job->action, SF_STEP_MAIN), 0,
                     sf_mono_ms());
}

/* Partitions taken away: records of theirs that are not running are
 * dropped (the new owner runs them); running ones finish but store
 * nothing. Records claimed back from the parking store are no
 * partition's. */
static int sf_revoked_partition(void *opaque, int32_t partition)
{
        const rd_kafka_topic_partition_list_t *parts = opaque;

        for (int i = 0; i < parts->cnt; i++)
                if (parts->elems[i].partition == partition)
                        return 1;
        return 0;
}

typedef struct sf_revoke_ctx {
        sf_worker_t *w;
        rd_kafka_topic_partition_list_t *mine; /* of our topic */
} sf_revoke_ctx_t;

static int sf_revoked_item(void *opaque, const sf_sched_item_t *it)
{
        sf_revoke_ctx_t *c = opaque;
        const sf_job_t *job = (const sf_job_t *)it;

        return !job->park_id && it->partition >= 0 &&
               sf_revoked_partition(c->mine, it->partition);
}

static void sf_dropped_item(void *opaque, sf_sched_item_t *it)
{
        (void)opaque;
        sf_job_free(sf_job_of(it));
}

static void sf_worker_on_revoke(void *opaque,
                                const rd_kafka_topic_partition_list_t *parts)
{
        sf_revoke_ctx_t c = {.w = opaque};
        sf_worker_t *w = c.w;

        c.mine = rd_kafka_topic_partition_list_new(parts->cnt);
        for (int i = 0; i < parts->cnt; i++)
                if (!strcmp(parts->elems[i].topic, w->topic))
                        rd_kafka_topic_partition_list_add(
                            c.mine, w->topic, parts->elems[i].partition);
        sf_sched_revoke(w->sched, sf_revoked_item, sf_dropped_item, &c);
        sf_worker_park_revoke(w, sf_revoked_partition, c.mine);
        rd_kafka_topic_partition_list_destroy(c.mine);
}

/* --- circuits ----------------------------------------------------------- */

int sf_worker_circuit(const sf_worker_t *w, const sf_connector_cfg_t *c)
{
        return (int)(c - w->cfg->connectors);
}

int sf_worker_step_circuit(const sf_worker_t *w, const sf_action_cfg_t *a,
                           sf_step_t step)
{
        const sf_mapping_t *mapping;

        return sf_worker_circuit(w, sf_render_target(a, step, &mapping)->conn);
}

static void sf_worker_events(sf_worker_t *w)
{
        sf_sched_event_t ev;

        while (sf_sched_event(w->sched, &ev)) {
                const sf_connector_cfg_t *c = &w->cfg->connectors[ev.circuit];
                sf_conn_slot_t *slot = &w->conns[ev.circuit];

                if (ev.open) {
                        if (ev.misconfigured)
                                /* loud, once per opening: waiting will not
                                 * mend it, and the user must know what to
                                 * fix */
                                sf_error(w->stage,
                                         "connector %s cannot work as "
                                         "configured: %s; fix the "
                                         "connector's configuration (or the "
                                         "service it names); until then one "
                                         "probe at a time with backoff, its "
                                         "records %s, none dead-lettered",
                                         c->name, ev.reason,
                                         w->park ? "parked" : "wait in memory");
                        else
                                sf_warn(w->stage,
                                        "connector %s is down: circuit open "
                                        "after %d failed requests in a row, "
                                        "the last: %s; one probe at a time "
                                        "until it answers, its records %s, "
                                        "their attempts not counted",
                                        c->name, SF_SCHED_OPEN_AFTER, ev.reason,
                                        w->park ? "parked" : "wait in memory");
                        slot->parked = 0;
                        slot->opened_ms = sf_mono_ms();
                        if (w->park)
                                sf_worker_park_evict(w, ev.circuit);
                        continue;
                }
                sf_info(w->stage,
                        "connector %s is up again: circuit closed after %.1f "
                        "s open; meanwhile %zu records parked, %zu held "
                        "in memory, %lu probes",
                        c->name, (double)ev.open_ms / 1000.0, slot->parked,
                        ev.waited, ev.probes);
                slot->parked = 0;
                if (w->park)
                        sf_park_saw_working(w->park, c->name, sf_mono_ms());
        }
}

/* Starts what the scheduler has due: records to run, records to hand to
 * the DLQ again, and records for circuits that want a probe. */
static void sf_worker_start_due(sf_worker_t *w)
{
        for (;;) {
                int64_t now = sf_mono_ms();
                sf_sched_item_t *it;
                int c;

                while ((it = sf_sched_next(w->sched, now))) {
                        sf_job_t *job = sf_job_of(it);

                        if (it->state == SF_SCHED_DEAD)
                                sf_worker_dlq_try(w, job);
                        else
                                sf_job_start(w, job);
                        now = sf_mono_ms();
                }
                c = sf_sched_starved(w->sched, now);
                if (c < 0)
                        return;
                sf_worker_park_feed(w, c);
        }
}

/* --- lifecycle ---------------------------------------------------------- */

/* Logs nothing: the caller's record fails with ERRSTR, and the circuit
 * logs it once when it opens. */
sf_conn_slot_t *sf_worker_conn(sf_worker_t *w, const sf_connector_cfg_t *c,
                               char *errstr, size_t errstr_size)
{
        size_t i = (size_t)(c - w->cfg->connectors);
        sf_conn_slot_t *slot = &w->conns[i];
        char why[512];

        if (slot->conn)
                return slot;
        slot->ops = sf_connector_ops(c->type);
        if (!slot->ops) {
                sf_seterr(errstr, errstr_size,
                          "connector %s cannot be opened: this type cannot "
                          "be a target yet",
                          c->name);
                return NULL;
        }
        slot->conn =
            slot->ops->open(c, w->cfg, w->bootstraps, why, sizeof(why));
        if (!slot->conn) {
                sf_seterr(errstr, errstr_size,
                          "connector %s cannot be opened: %s", c->name, why);
                sf_debug(w->stage, "%s", errstr);
                return NULL;
        }
        return slot;
}

/* SYNCFLEET_WORKER_MAX_HELD (not documented for users) lowers the number of
 * records held before intake pauses, so tests reach it quickly. */
static size_t sf_worker_max_held(void)
{
        const char *v = getenv("SYNCFLEET_WORKER_MAX_HELD");
        long n = v ? strtol(v, NULL, 10) : 0;

        return n >= 2 && n <= SF_WORKER_MAX_JOBS ? (size_t)n
                                                 : SF_WORKER_MAX_JOBS;
}

static sf_sched_t *sf_worker_sched_new(sf_worker_t *w)
{
        const sf_config_t *cfg = w->cfg;
        sf_sched_circuit_cfg_t *cc =
            sf_calloc(cfg->connector_cnt + 1, sizeof(*cc));
        sf_sched_t *s;

        for (size_t i = 0; i < cfg->connector_cnt; i++) {
                const sf_connector_cfg_t *c = &cfg->connectors[i];

                cc[i].max_in_flight = c->max_in_flight;
                cc[i].max_attempts = c->retry.max_attempts;
                cc[i].initial_backoff_ms = c->retry.initial_backoff_ms;
                cc[i].max_backoff_ms = c->retry.max_backoff_ms;
        }
        w->none_circuit = (int)cfg->connector_cnt;
        cc[w->none_circuit].max_in_flight = SF_WORKER_NONE_SLOTS;
        cc[w->none_circuit].max_attempts = 1;
        s = sf_sched_new(cc, cfg->connector_cnt + 1, sf_worker_max_held(),
                         w->seed);
        free(cc);
        return s;
}

static void sf_worker_park_report(void *opaque, const char *action,
                                  int64_t rows)
{
        sf_worker_t *w = opaque;
        const sf_action_cfg_t *a = sf_config_action(w->cfg, action);

        if (!a)
                sf_warn(w->stage,
                        "%lld parked records of action %s, which the "
                        "pipeline no longer has, stay in %s",
                        (long long)rows, action, sf_park_path(w->park));
        else if (a->kind == w->kind)
                sf_info(w->stage, "%s: %lld parked records to deliver first",
                        action, (long long)rows);
}

sf_worker_t *sf_worker_new(const sf_config_t *cfg, const char *bootstraps,
                           sf_action_kind_t kind, const char *client_id,
                           char *errstr, size_t errstr_size)
{
        sf_worker_t *w = sf_calloc(1, sizeof(*w));
        char *group, *park_path;
        const char *topics[1];

        w->cfg = cfg;
        w->bootstraps = sf_strdup(bootstraps);
        w->kind = kind;
        w->stage = kind == SF_KIND_MESSAGE ? "message" : "webservice";
        w->topic = kind == SF_KIND_MESSAGE ? cfg->topic_outbound_message
                                           : cfg->topic_outbound_webservice;
        w->conns = sf_calloc(cfg->connector_cnt ? cfg->connector_cnt : 1,
                             sizeof(*w->conns));
        w->claimed =
            sf_calloc(cfg->action_cnt ? cfg->action_cnt : 1, sizeof(size_t));
        w->seed = (unsigned int)(sf_now_ms() ^ (intptr_t)w);
        w->sched = sf_worker_sched_new(w);
        park_path = sf_worker_park_path(cfg);
        if (park_path) {
                w->park = sf_park_open(park_path, errstr, errstr_size);
                free(park_path);
                if (!w->park) {
                        sf_worker_destroy(w);
                        return NULL;
                }
                sf_park_each_action(w->park, sf_worker_park_report, w);
        }
        topics[0] = w->topic;
        group = sf_asprintf("%s.%s", cfg->kafka.topic_prefix,
                            kind == SF_KIND_MESSAGE ? "message-workers"
                                                    : "webservice-workers");
        w->producer =
            sf_producer_new(&cfg->kafka, bootstraps, client_id,
                            sf_worker_on_delivery, w, errstr, errstr_size);
        if (w->producer)
                w->dlq = sf_dlq_open(cfg, w->producer, errstr, errstr_size);
        if (w->dlq)
                w->consumer =
                    sf_consumer_new(&cfg->kafka, bootstraps, group, client_id,
                                    topics, 1, errstr, errstr_size);
        free(group);
        if (!w->producer || !w->dlq || !w->consumer) {
                sf_worker_destroy(w);
                return NULL;
        }
        sf_consumer_set_revoke_cb(w->consumer, sf_worker_on_revoke, w);
        return w;
}

static size_t sf_worker_pending(const sf_worker_t *w)
{
        size_t n = 0;

        for (size_t i = 0; i < w->cfg->connector_cnt; i++)
                if (w->conns[i].conn)
                        n += w->conns[i].ops->pending(w->conns[i].conn);
        return n;
}

/* Drives the connectors; blocks in the first busy one for up to
 * TIMEOUT_MS. */
static void sf_worker_poll_conns(sf_worker_t *w, int timeout_ms)
{
        for (size_t i = 0; i < w->cfg->connector_cnt; i++) {
                sf_conn_slot_t *s = &w->conns[i];

                if (!s->conn || !s->ops->pending(s->conn))
                        continue;
                s->ops->poll(s->conn, timeout_ms);
                timeout_ms = 0;
        }
}

/* Intake pauses while the scheduler holds its cap, and while a batch of
 * records could not be parked. */
static void sf_worker_backpressure(sf_worker_t *w)
{
        int pause = sf_sched_intake_paused(w->sched) || w->park_retry_at;

        if (pause != w->paused) {
                sf_consumer_pause(w->consumer, pause);
                w->paused = pause;
        }
}

int sf_worker_run(sf_worker_t *w, int grace_ms, char *errstr,
                  size_t errstr_size)
{
        int64_t last_report = sf_mono_ms();

        (void)errstr;
        (void)errstr_size;
        sf_info(w->stage, "consuming %s%s%s", w->topic,
                w->park ? "; records of a down connector are parked in " : "",
                w->park ? sf_park_path(w->park) : "");
        while (!sf_should_stop()) {
                int got = 0, timeout;
                int64_t due;

                sf_worker_backpressure(w);
                for (int i = 0; i < 500 && !w->park_retry_at; i++) {
                        sf_offset_ref_t ref;
                        int idle = !sf_sched_held(w->sched) &&
                                   !sf_producer_outstanding(w->producer);
                        rd_kafka_message_t *m = sf_consumer_poll(
                            w->consumer, i == 0 && idle ? 50 : 0, &ref);

                        if (!m)
                                break;
                        got++;
                        sf_worker_intake(w, m, &ref);
                        rd_kafka_message_destroy(m);
                }
                if (w->park_cnt && sf_mono_ms() >= w->park_retry_at)
                        sf_worker_park_commit(w);
                if (w->park)
                        sf_worker_park_drain(w);
                sf_worker_start_due(w);
                sf_worker_events(w);
                timeout = got ? 0 : 10;
                due = sf_sched_next_due(w->sched, sf_mono_ms());
                if (due >= 0 && due < timeout)
                        timeout = (int)due;
                if (sf_worker_pending(w))
                        sf_worker_poll_conns(w, timeout);
                sf_producer_poll(w->producer, 0);
                sf_worker_events(w);
                if (w->park)
                        sf_worker_park_flush(w);
                if (sf_mono_ms() - last_report >= 30000) {
                        sf_info(w->stage,
                                "%llu done, %llu retries, %llu to the DLQ, "
                                "%llu parked, %zu held",
                                (unsigned long long)w->ok,
                                (unsigned long long)w->retried,
                                (unsigned long long)w->dead,
                                (unsigned long long)w->parked,
                                sf_sched_held(w->sched));
                        last_report = sf_mono_ms();
                }
        }
        /* Shutdown: no intake, no new starts; requests on the wire and DLQ
         * records in flight may finish within the grace period. */
        sf_sched_stop(w->sched, grace_ms, sf_mono_ms());
        sf_consumer_pause(w->consumer, 1);
        while (!sf_sched_stopped(w->sched, sf_mono_ms())) {
                sf_worker_poll_conns(w, 20);
                sf_producer_poll(w->producer, 0);
                if (!sf_worker_pending(w) &&
                    !sf_producer_outstanding(w->producer))
                        break; /* what remains waits for nothing */
        }
        if (w->park)
                sf_worker_park_flush(w);
        sf_info(w->stage,
                "stopped: %llu done, %llu retries, %llu to the DLQ, %llu "
                "parked",
                (unsigned long long)w->ok, (unsigned long long)w->retried,
                (unsigned long long)w->dead, (unsigned long long)w->parked);
        return 0;
}

typedef struct sf_free_ctx {
        sf_job_t **jobs;
        size_t cnt, cap;
} sf_free_ctx_t;

static void sf_collect_key(void *opaque, const char *key, sf_sched_item_t *it)
{
        sf_free_ctx_t *c = opaque;

        (void)key;
        for (; it; it = sf_sched_key_next(it)) {
                if (c->cnt == c->cap) {
                        c->cap = c->cap ? c->cap * 2 : 64;
                        c->jobs =
                            sf_realloc(c->jobs, c->cap * sizeof(*c->jobs));
                }
                c->jobs[c->cnt++] = sf_job_of(it);
        }
}

void sf_worker_destroy(sf_worker_t *w)
{
        sf_free_ctx_t c = {0};

        if (!w)
                return;
        /* Connectors first: abandoned requests call back no more. */
        for (size_t i = 0; w->conns && i < w->cfg->connector_cnt; i++)
                if (w->conns[i].conn)
                        w->conns[i].ops->close(w->conns[i].conn);
        if (w->producer && w->consumer)
                sf_producer_flush(w->producer, 1000);
        sf_consumer_destroy(w->consumer);
        w->consumer = NULL;
        sf_producer_destroy(w->producer, 0);
        sf_dlq_close(w->dlq);
        while (w->park_head) {
                sf_job_t *j = w->park_head;

                w->park_head = j->parking;
                sf_job_free(j);
        }
        if (w->sched)
                sf_sched_each_key(w->sched, sf_collect_key, &c);
        for (size_t i = 0; i < c.cnt; i++) {
                /* parked records held here go back for the next run */
                if (c.jobs[i]->park_id && w->park)
                        sf_park_release(w->park, c.jobs[i]->action->name, w,
                                        c.jobs[i]->park_id,
                                        c.jobs[i]->item.attempts);
                sf_job_free(c.jobs[i]);
        }
        free(c.jobs);
        sf_sched_destroy(w->sched);
        sf_park_close(w->park);
        free(w->claimed);
        free(w->conns);
        sf_source_db_close(w->db);
        free(w->bootstraps);
        free(w);
}
