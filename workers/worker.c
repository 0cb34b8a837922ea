/*
 * The worker's lifecycle, intake, per-key ordering, retry heap and DLQ.
 *
 * Ordering: every record joins the queue of its key (action + root record).
 * Only the head of a queue runs; the next starts when the head is finished
 * (accepted by the target, or dead-lettered and that delivered). A head
 * that must be retried waits in the retry heap and keeps its queue blocked,
 * so changes to one record reach the target in source order while other
 * records carry on.
 */
#include "worker_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define SF_WORKER_MAX_JOBS  5000 /* records held before intake pauses */
#define SF_WORKER_DLQ_RETRY 1000

/* --- retry heap ------------------------------------------------------- */

static void sf_heap_swap(sf_worker_t *w, size_t a, size_t b)
{
        sf_job_t *t = w->heap[a];

        w->heap[a] = w->heap[b];
        w->heap[b] = t;
        w->heap[a]->heap_idx = a;
        w->heap[b]->heap_idx = b;
}

static void sf_heap_up(sf_worker_t *w, size_t i)
{
        while (i > 0) {
                size_t p = (i - 1) / 2;

                if (w->heap[p]->retry_at_ms <= w->heap[i]->retry_at_ms)
                        break;
                sf_heap_swap(w, p, i);
                i = p;
        }
}

static void sf_heap_down(sf_worker_t *w, size_t i)
{
        for (;;) {
                size_t l = 2 * i + 1, r = l + 1, m = i;

                if (l < w->heap_cnt &&
                    w->heap[l]->retry_at_ms < w->heap[m]->retry_at_ms)
                        m = l;
                if (r < w->heap_cnt &&
                    w->heap[r]->retry_at_ms < w->heap[m]->retry_at_ms)
                        m = r;
                if (m == i)
                        return;
                sf_heap_swap(w, i, m);
                i = m;
        }
}

static void sf_heap_push(sf_worker_t *w, sf_job_t *job)
{
        if (w->heap_cnt == w->heap_cap) {
                w->heap_cap = w->heap_cap ? w->heap_cap * 2 : 64;
                w->heap = sf_realloc(w->heap, w->heap_cap * sizeof(*w->heap));
        }
        job->heap_idx = w->heap_cnt;
        w->heap[w->heap_cnt++] = job;
        sf_heap_up(w, job->heap_idx);
}

static void sf_heap_remove(sf_worker_t *w, sf_job_t *job)
{
        size_t i = job->heap_idx;

        if (i >= w->heap_cnt || w->heap[i] != job)
                return;
        w->heap_cnt--;
        if (i != w->heap_cnt) {
                w->heap[i] = w->heap[w->heap_cnt];
                w->heap[i]->heap_idx = i;
                sf_heap_down(w, i);
                sf_heap_up(w, i);
        }
}

/* --- per-key queues --------------------------------------------------- */

static void sf_keyq_pop(sf_worker_t *w, sf_keyq_t *q)
{
        sf_job_t *job = q->head;

        q->head = job->next;
        if (!q->head) {
                q->tail = NULL;
                sf_map_remove(w->keys, q->key);
                free(q->key);
                free(q);
        }
        sf_job_free(job);
        w->jobs--;
}

void sf_worker_job_finished(sf_worker_t *w, sf_job_t *job)
{
        sf_keyq_t *q = job->q;
        char *key = sf_strdup(q->key);

        if (!job->abandoned)
                sf_consumer_done(w->consumer, &job->ref);
        w->ok++;
        sf_keyq_pop(w, q);
        /* the queue may be gone with its last job */
        q = sf_map_get(w->keys, key);
        if (q && q->head && !w->stopping)
                sf_job_start(w, q->head);
        free(key);
}

void sf_worker_job_retry(sf_worker_t *w, sf_job_t *job, int64_t delay_ms)
{
        job->state = SF_JOB_WAITING;
        job->retry_at_ms = sf_mono_ms() + delay_ms;
        w->retried++;
        sf_heap_push(w, job);
}

/* --- DLQ -------------------------------------------------------------- */

static sf_delivery_cb sf_worker_on_delivery;

/* Stored durably (the embedded broker's store), the job is done at once,
 * as its delivery report would make it; sent to the DLQ topic, the report
 * does it. When neither works the job waits in the heap and comes back.
 * Finishing a job starts the next of its key, which may be dead-lettered at
 * once as well: past a few such levels the stored job is finished from the
 * heap instead, so a long queue of records that all fail cannot exhaust
 * the stack. */
static void sf_worker_dlq_send(sf_worker_t *w, sf_job_t *job)
{
        enum { max_depth = 16 };
        static _Thread_local int depth;
        char errstr[512];
        sf_dead_letter_t dl;
        int rc;

        if (!job->dlq_stored) {
                memset(&dl, 0, sizeof(dl));
                dl.origin_topic = w->topic;
                dl.partition = job->partition;
                dl.offset = job->offset;
                dl.key = job->rec_key;
                dl.key_len = job->rec_key_len;
                dl.value = job->rec_value;
                dl.value_len = job->rec_value_len;
                dl.headers = job->rec_headers;
                dl.error = job->last_error ? job->last_error : "failed";
                dl.stage = w->stage;
                dl.attempts = job->attempts;
                dl.action = job->action ? job->action->name : NULL;
                dl.event_id = job->ob.event_id;
                rc = sf_dlq_put(w->dlq, &dl, job, errstr, sizeof(errstr));
                if (rc == SF_DLQ_PENDING)
                        return;
                if (rc < 0) {
                        sf_warn(w->stage,
                                "cannot enqueue for the DLQ, trying again: "
                                "%s",
                                errstr);
                        job->state = SF_JOB_DEAD;
                        job->retry_at_ms = sf_mono_ms() + SF_WORKER_DLQ_RETRY;
                        sf_heap_push(w, job);
                        return;
                }
                job->dlq_stored = 1;
        }
        if (depth >= max_depth) {
                job->state = SF_JOB_DEAD;
                job->retry_at_ms = sf_mono_ms();
                sf_heap_push(w, job);
                return;
        }
        depth++;
        sf_worker_on_delivery(w, job, RD_KAFKA_RESP_ERR_NO_ERROR);
        depth--;
}

void sf_worker_job_dead(sf_worker_t *w, sf_job_t *job, const char *reason)
{
        free(job->last_error);
        job->last_error = sf_strdup(reason);
        job->state = SF_JOB_DEAD;
        if (job->attempts == 0)
                job->attempts = 1; /* it was tried once: it did not parse */
        w->dead++;
        sf_warn(w->stage, "%s [%d] offset %lld to the DLQ: %s", w->topic,
                (int)job->partition, (long long)job->offset, reason);
        sf_worker_dlq_send(w, job);
}

static void sf_worker_on_delivery(void *cb_arg, void *opaque,
                                  rd_kafka_resp_err_t err)
{
        sf_worker_t *w = cb_arg;
        sf_job_t *job = opaque;

        if (!w->consumer)
                return; /* shutting down: its queue or the heap frees it */
        if (err) {
                sf_warn(w->stage, "DLQ delivery failed, trying again: %s",
                        rd_kafka_err2str(err));
                job->retry_at_ms = sf_mono_ms() + SF_WORKER_DLQ_RETRY;
                sf_heap_push(w, job);
                return;
        }
        if (job->q)
                sf_worker_job_finished(w, job);
        else {
                /* a record that never had a key queue (unparsable) */
                if (!job->abandoned)
                        sf_consumer_done(w->consumer, &job->ref);
                sf_job_free(job);
                w->jobs--;
        }
}

/* --- intake ----------------------------------------------------------- */

static sf_job_t *sf_job_from_message(const rd_kafka_message_t *m,
                                     const sf_offset_ref_t *ref)
{
        sf_job_t *job = sf_calloc(1, sizeof(*job));
        rd_kafka_headers_t *hdrs = NULL;

        job->ref = *ref;
        job->partition = m->partition;
        job->offset = m->offset;
        /* a record without a key goes to the DLQ without one */
        job->rec_key = m->key ? sf_strndup(m->key, m->key_len) : NULL;
        job->rec_key_len = m->key ? m->key_len : 0;
        job->rec_value = sf_strndup(m->payload ? m->payload : "", m->len);
        job->rec_value_len = m->len;
        if (!rd_kafka_message_headers(m, &hdrs))
                job->rec_headers = rd_kafka_headers_copy(hdrs);
        return job;
}

static void sf_worker_intake(sf_worker_t *w, rd_kafka_message_t *m,
                             const sf_offset_ref_t *ref)
{
        sf_job_t *job = sf_job_from_message(m, ref);
        char errstr[512];
        char *qkey;
        sf_keyq_t *q;

        job->worker = w;
        w->jobs++;
        if (m->len + m->key_len > SF_MAX_RECORD_BYTES) {
                sf_worker_job_dead(w, job, "record larger than 8 MiB");
                return;
        }
        if (sf_outbound_parse(m->payload, m->len, &job->ob, errstr,
                              sizeof(errstr))) {
                sf_worker_job_dead(w, job, errstr);
                return;
        }
        job->action = sf_config_action(w->cfg, job->ob.action);
        if (!job->action || job->action->kind != w->kind) {
                snprintf(errstr, sizeof(errstr),
                         "no %s named '%s' in the pipeline",
                         w->kind == SF_KIND_MESSAGE ? "message"
                                                    : "web service action",
                         job->ob.action);
                sf_worker_job_dead(w, job, errstr);
                return;
        }
        /* Order is kept per action and root record, as the record itself
         * names them, whatever key the record was produced with. */
        qkey = sf_outbound_key_json(&job->ob);
        q = sf_map_get(w->keys, qkey);
        if (!q) {
                q = sf_calloc(1, sizeof(*q));
                q->key = qkey;
                qkey = NULL;
                sf_map_set(w->keys, q->key, q);
        }
        free(qkey);
        job->q = q;
        if (q->tail) {
                q->tail->next = job;
                q->tail = job;
                return;
        }
        q->head = q->tail = job;
        sf_job_start(w, job);
}

/* Partitions taken away: records of theirs that have not started are
 * dropped (the new owner runs them); running ones finish but store
 * nothing. */
typedef struct sf_revoke_ctx {
        sf_worker_t *w;
        const rd_kafka_topic_partition_list_t *parts;
        sf_keyq_t **drop;
        size_t cnt, cap;
} sf_revoke_ctx_t;

static int sf_revoked(const rd_kafka_topic_partition_list_t *parts,
                      const char *topic, int32_t partition)
{
        for (int i = 0; i < parts->cnt; i++)
                if (parts->elems[i].partition == partition &&
                    !strcmp(parts->elems[i].topic, topic))
                        return 1;
        return 0;
}

static int sf_collect_revoked(void *opaque, const char *key, void *value)
{
        sf_revoke_ctx_t *c = opaque;
        sf_keyq_t *q = value;

        (void)key;
        if (!sf_revoked(c->parts, c->w->topic, q->head->partition))
                return 0;
        if (c->cnt == c->cap) {
                c->cap = c->cap ? c->cap * 2 : 32;
                c->drop = sf_realloc(c->drop, c->cap * sizeof(*c->drop));
        }
        c->drop[c->cnt++] = q;
        return 0;
}

static void sf_worker_on_revoke(void *opaque,
                                const rd_kafka_topic_partition_list_t *parts)
{
        sf_revoke_ctx_t c = {.w = opaque, .parts = parts};
        sf_worker_t *w = c.w;

        sf_map_each(w->keys, sf_collect_revoked, &c);
        for (size_t i = 0; i < c.cnt; i++) {
                sf_keyq_t *q = c.drop[i];

                /* everything behind the head goes */
                while (q->head->next) {
                        sf_job_t *j = q->head->next;

                        q->head->next = j->next;
                        sf_job_free(j);
                        w->jobs--;
                }
                q->tail = q->head;
                q->head->abandoned = 1;
                if (q->head->state == SF_JOB_WAITING) {
                        sf_heap_remove(w, q->head);
                        sf_keyq_pop(w, q);
                }
        }
        free(c.drop);
}

/* --- lifecycle -------------------------------------------------------- */

sf_conn_slot_t *sf_worker_conn(sf_worker_t *w, const sf_connector_cfg_t *c)
{
        size_t i = (size_t)(c - w->cfg->connectors);
        sf_conn_slot_t *slot = &w->conns[i];
        char errstr[512];

        if (slot->conn)
                return slot;
        slot->ops = sf_connector_ops(c->type);
        if (!slot->ops) {
                sf_error(w->stage,
                         "connector %s: this type cannot be a "
                         "target yet",
                         c->name);
                return NULL;
        }
        slot->conn =
            slot->ops->open(c, w->cfg, w->bootstraps, errstr, sizeof(errstr));
        if (!slot->conn) {
                sf_error(w->stage, "connector %s: %s", c->name, errstr);
                return NULL;
        }
        return slot;
}

sf_worker_t *sf_worker_new(const sf_config_t *cfg, const char *bootstraps,
                           sf_action_kind_t kind, const char *client_id,
                           char *errstr, size_t errstr_size)
{
        sf_worker_t *w = sf_calloc(1, sizeof(*w));
        char *group;
        const char *topics[1];

        w->cfg = cfg;
        w->bootstraps = sf_strdup(bootstraps);
        w->kind = kind;
        w->stage = kind == SF_KIND_MESSAGE ? "message" : "webservice";
        w->topic = kind == SF_KIND_MESSAGE ? cfg->topic_outbound_message
                                           : cfg->topic_outbound_webservice;
        w->keys = sf_map_new();
        w->conns = sf_calloc(cfg->connector_cnt ? cfg->connector_cnt : 1,
                             sizeof(*w->conns));
        w->seed = (unsigned int)(sf_now_ms() ^ (intptr_t)w);
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

static void sf_worker_run_due(sf_worker_t *w)
{
        int64_t now = sf_mono_ms();

        while (w->heap_cnt && w->heap[0]->retry_at_ms <= now) {
                sf_job_t *job = w->heap[0];

                sf_heap_remove(w, job);
                if (job->state == SF_JOB_DEAD)
                        sf_worker_dlq_send(w, job);
                else if (!w->stopping)
                        sf_job_start(w, job);
                else
                        sf_heap_push(w, job); /* put back; dropped later */
                if (w->stopping)
                        break;
        }
}

int sf_worker_run(sf_worker_t *w, int grace_ms, char *errstr,
                  size_t errstr_size)
{
        int64_t deadline, last_report = sf_mono_ms();

        (void)errstr;
        (void)errstr_size;
        sf_info(w->stage, "consuming %s", w->topic);
        while (!sf_should_stop()) {
                int got = 0, timeout;
                int64_t next_due;

                if (!w->paused && w->jobs >= SF_WORKER_MAX_JOBS) {
                        sf_consumer_pause(w->consumer, 1);
                        w->paused = 1;
                } else if (w->paused && w->jobs < SF_WORKER_MAX_JOBS / 2) {
                        sf_consumer_pause(w->consumer, 0);
                        w->paused = 0;
                }
                for (int i = 0; i < 500; i++) {
                        sf_offset_ref_t ref;
                        int idle =
                            !w->jobs && !sf_producer_outstanding(w->producer);
                        rd_kafka_message_t *m = sf_consumer_poll(
                            w->consumer, i == 0 && idle ? 50 : 0, &ref);

                        if (!m)
                                break;
                        got++;
                        sf_worker_intake(w, m, &ref);
                        rd_kafka_message_destroy(m);
                }
                sf_worker_run_due(w);
                timeout = got ? 0 : 10;
                if (w->heap_cnt) {
                        next_due = w->heap[0]->retry_at_ms - sf_mono_ms();
                        if (next_due < timeout)
                                timeout = next_due < 0 ? 0 : (int)next_due;
                }
                if (sf_worker_pending(w))
                        sf_worker_poll_conns(w, timeout);
                sf_producer_poll(w->producer, 0);
                if (sf_mono_ms() - last_report >= 30000) {
                        sf_info(w->stage,
                                "%llu done, %llu retries, %llu to the DLQ, "
                                "%zu held",
                                (unsigned long long)w->ok,
                                (unsigned long long)w->retried,
                                (unsigned long long)w->dead, w->jobs);
                        last_report = sf_mono_ms();
                }
        }
        /* Shutdown: no intake, no new starts; requests on the wire and DLQ
         * records in flight may finish within the grace period. */
        w->stopping = 1;
        sf_consumer_pause(w->consumer, 1);
        deadline = sf_mono_ms() + grace_ms;
        while (sf_mono_ms() < deadline &&
               (sf_worker_pending(w) || sf_producer_outstanding(w->producer))) {
                sf_worker_poll_conns(w, 20);
                sf_producer_poll(w->producer, 0);
        }
        sf_info(w->stage, "stopped: %llu done, %llu retries, %llu to the DLQ",
                (unsigned long long)w->ok, (unsigned long long)w->retried,
                (unsigned long long)w->dead);
        return 0;
}

static int sf_free_keyq(void *opaque, const char *key, void *value)
{
        sf_keyq_t *q = value;

        (void)opaque;
        (void)key;
        while (q->head) {
                sf_job_t *j = q->head;

                q->head = j->next;
                sf_job_free(j);
        }
        free(q->key);
        free(q);
        return 0;
}

void sf_worker_destroy(sf_worker_t *w)
{
        if (!w)
                return;
        w->stopping = 1;
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
        if (w->keys)
                sf_map_each(w->keys, sf_free_keyq, NULL);
        sf_map_destroy(w->keys);
        /* jobs in the heap that belong to no queue (unparsable, DLQ) */
        for (size_t i = 0; i < w->heap_cnt; i++)
                if (!w->heap[i]->q)
                        sf_job_free(w->heap[i]);
        free(w->heap);
        free(w->conns);
        sf_source_db_close(w->db);
        free(w->bootstraps);
        free(w);
}
