/*
 * The router's lifecycle and loop.
 *
 * A sync-log record is done (its offset may be stored) only when every
 * outbound record it produced was delivered, or when it went to the DLQ
 * and that was delivered. Outbound records are kept until their delivery
 * report and sent again when delivery failed, so a broker outage delays the
 * router but loses nothing.
 *
 * With settled acknowledgement (source.ack: settled, the default on the
 * embedded broker), delivered is not enough: the record stays not done
 * until the workers' group committed past every outbound record it
 * produced (settle.h), which the guards' committed offsets tell. The
 * router's own commits then say "settled" to the producer.
 *
 * With router.coalesce_ms or router.delay_ms, outbound records wait in a
 * map keyed by topic + record key; a later change of the same record and
 * subscriber replaces the waiting one (last image wins) and the sync-log
 * records of both are acknowledged when the combined one is delivered.
 */
#include "router.h"

#include <stdlib.h>
#include <string.h>

#include "dlq.h"
#include "kafka.h"
#include "log.h"
#include "map.h"

#define SF_ROUTER_MAX_INFLIGHT 20000 /* sync-log records not done */
#define SF_ROUTER_MAX_SUBS     256
#define SF_ROUTER_RESEND_MS    1000

/* Settled acknowledgement: an outbound record of a job was delivered to
 * PARTITION at OFFSET of outbound topic TOPIC (0 message, 1 webservice). */
typedef struct sf_route_req {
        int32_t topic;
        int32_t partition;
        int64_t offset;
} sf_route_req_t;

/* One sync-log record on its way. */
typedef struct sf_route_job {
        sf_offset_ref_t ref;
        int remaining; /* outbound records not delivered yet */
        /* settled acknowledgement: the highest offset per outbound
         * partition its records went to, which the workers must commit
         * past before the record is done */
        sf_route_req_t *reqs;
        size_t req_cnt;
} sf_route_job_t;

/* A dead letter on its way to the DLQ topic: what sf_dlq_put needs again
 * when it is sent once more. */
typedef struct sf_route_dl {
        char *origin_topic;
        int32_t partition;
        int64_t offset;
        rd_kafka_headers_t *headers; /* the record's own; may be NULL */
        char *reason;
        int without_value; /* the broker refused it whole as too large */
} sf_route_dl_t;

/* One record to produce; kept until delivered. JOBS are the sync-log
 * records it acknowledges (more than one after coalescing). */
typedef struct sf_route_out {
        struct sf_route_out *next; /* resend list */
        const char *topic;
        char *key; /* NULL: no key */
        size_t key_len;
        char *value;
        size_t value_len;
        rd_kafka_headers_t *headers; /* template copied for each send */
        sf_route_job_t **jobs;
        size_t job_cnt;
        char *event; /* coalescing: the combined event */
        int64_t due_ms;
        int64_t resend_at_ms;
        sf_route_dl_t *dl; /* a dead letter: sent with sf_dlq_put */
} sf_route_out_t;

struct sf_router {
        const sf_config_t *cfg;
        sf_consumer_t *consumer;
        sf_producer_t *producer;
        sf_dlq_t *dlq;
        size_t jobs; /* sync-log records not done */
        int paused;
        sf_map_t *waiting;      /* coalescing: topic\nkey -> out */
        int64_t hold_ms;        /* max(coalesce_ms, delay_ms) */
        sf_route_out_t *resend; /* failed deliveries, to send again */
        int closing;            /* the consumer is gone */
        /* embedded broker: the worker groups' backlogs (NULL: none) */
        sf_backlog_guard_t *guard_message, *guard_webservice;
        /* settled acknowledgement: delivered jobs waiting for the workers'
         * commits, and the guards' check counts at the last look */
        int settle;
        sf_route_job_t **settling;
        size_t settling_cnt, settling_cap;
        uint64_t settle_seen;
        uint64_t routed, dead, redelivered;
};

static void sf_route_out_free(sf_route_out_t *o)
{
        if (!o)
                return;
        free(o->key);
        free(o->value);
        free(o->event);
        free(o->jobs);
        if (o->headers)
                rd_kafka_headers_destroy(o->headers);
        if (o->dl) {
                free(o->dl->origin_topic);
                free(o->dl->reason);
                if (o->dl->headers)
                        rd_kafka_headers_destroy(o->dl->headers);
                free(o->dl);
        }
        free(o);
}

static void sf_route_job_free(sf_route_job_t *job)
{
        if (!job)
                return;
        free(job->reqs);
        free(job);
}

/* Records that JOB's outbound record went to PARTITION at OFFSET of
 * outbound topic TOPIC, keeping only the highest offset per partition. */
static void sf_route_job_require(sf_route_job_t *job, int32_t topic,
                                 int32_t partition, int64_t offset)
{
        for (size_t i = 0; i < job->req_cnt; i++) {
                sf_route_req_t *q = &job->reqs[i];

                if (q->topic == topic && q->partition == partition) {
                        if (offset > q->offset)
                                q->offset = offset;
                        return;
                }
        }
        job->reqs =
            sf_realloc(job->reqs, (job->req_cnt + 1) * sizeof(*job->reqs));
        job->reqs[job->req_cnt++] = (sf_route_req_t){
            .topic = topic, .partition = partition, .offset = offset};
}

static void sf_router_job_done(sf_router_t *r, sf_route_job_t *job)
{
        if (--job->remaining > 0)
                return;
        if (r->settle && job->req_cnt) {
                if (r->settling_cnt == r->settling_cap) {
                        r->settling_cap =
                            r->settling_cap ? r->settling_cap * 2 : 256;
                        r->settling =
                            sf_realloc(r->settling,
                                       r->settling_cap * sizeof(*r->settling));
                }
                r->settling[r->settling_cnt++] = job;
                return;
        }
        sf_consumer_done(r->consumer, &job->ref);
        r->jobs--;
        sf_route_job_free(job);
}

static int sf_route_job_settled(sf_router_t *r, const sf_route_job_t *job)
{
        for (size_t i = 0; i < job->req_cnt; i++) {
                const sf_route_req_t *q = &job->reqs[i];
                sf_backlog_guard_t *g =
                    q->topic ? r->guard_webservice : r->guard_message;

                if (sf_backlog_guard_committed(g, q->partition) <= q->offset)
                        return 0;
        }
        return 1;
}

/* Settled acknowledgement: the delivered jobs whose outbound records the
 * workers committed past are done. Looks again only after the guards
 * read new committed offsets. */
static void sf_router_settle(sf_router_t *r)
{
        uint64_t seen = sf_backlog_guard_checks(r->guard_message) +
                        sf_backlog_guard_checks(r->guard_webservice);
        size_t keep = 0;

        sf_backlog_guard_hurry(r->guard_message, r->settling_cnt > 0);
        sf_backlog_guard_hurry(r->guard_webservice, r->settling_cnt > 0);
        if (!r->settling_cnt || seen == r->settle_seen)
                return;
        r->settle_seen = seen;
        for (size_t i = 0; i < r->settling_cnt; i++) {
                sf_route_job_t *job = r->settling[i];

                if (!sf_route_job_settled(r, job)) {
                        r->settling[keep++] = job;
                        continue;
                }
                sf_consumer_done(r->consumer, &job->ref);
                r->jobs--;
                sf_route_job_free(job);
        }
        r->settling_cnt = keep;
}

/* The backlog guard of TOPIC, or NULL (the DLQ has none). */
static sf_backlog_guard_t *sf_router_guard(sf_router_t *r, const char *topic)
{
        if (topic == r->cfg->topic_outbound_message)
                return r->guard_message;
        if (topic == r->cfg->topic_outbound_webservice)
                return r->guard_webservice;
        return NULL;
}

static void sf_router_send(sf_router_t *r, sf_route_out_t *o)
{
        char errstr[256];
        rd_kafka_headers_t *hdrs =
            o->headers ? rd_kafka_headers_copy(o->headers) : NULL;

        if (!sf_producer_send(r->producer, o->topic, RD_KAFKA_PARTITION_UA,
                              o->key, o->key_len, o->value, o->value_len, hdrs,
                              o, 1000, errstr, sizeof(errstr))) {
                sf_backlog_guard_sent(sf_router_guard(r, o->topic),
                                      o->key_len + o->value_len);
        } else {
                sf_warn("router", "cannot enqueue a record for %s: %s",
                        o->topic, errstr);
                o->resend_at_ms = sf_mono_ms() + SF_ROUTER_RESEND_MS;
                o->next = r->resend;
                r->resend = o;
        }
}

/* Delivery report of one outbound or DLQ record. */
static void sf_router_on_delivery(void *cb_arg, void *opaque,
                                  rd_kafka_resp_err_t err)
{
        sf_router_t *r = cb_arg;
        sf_route_out_t *o = opaque;

        if (r->closing) {
                sf_route_out_free(o);
                return;
        }
        sf_backlog_guard_delivered(sf_router_guard(r, o->topic));
        if (err) {
                sf_warn("router", "delivery to %s failed, sending again: %s",
                        o->topic, rd_kafka_err2str(err));
                r->redelivered++;
                o->resend_at_ms = sf_mono_ms() + SF_ROUTER_RESEND_MS;
                if (o->dl && sf_dlq_too_large(err) && !o->dl->without_value) {
                        /* never deliverable as it is: at once without its
                         * value */
                        o->dl->without_value = 1;
                        o->resend_at_ms = sf_mono_ms();
                }
                o->next = r->resend;
                r->resend = o;
                return;
        }
        if (r->settle && o->topic != r->cfg->topic_dlq) {
                int32_t partition;
                int64_t offset;
                int32_t topic = o->topic == r->cfg->topic_outbound_webservice;

                sf_producer_delivered_at(r->producer, &partition, &offset);
                for (size_t i = 0; i < o->job_cnt; i++)
                        sf_route_job_require(o->jobs[i], topic, partition,
                                             offset);
        }
        for (size_t i = 0; i < o->job_cnt; i++)
                sf_router_job_done(r, o->jobs[i]);
        sf_route_out_free(o);
}

static sf_route_out_t *sf_route_out_new(const char *topic, char *key,
                                        char *value, const char *event_id,
                                        sf_route_job_t *job)
{
        sf_route_out_t *o = sf_calloc(1, sizeof(*o));

        o->topic = topic;
        o->key = key;
        o->key_len = strlen(key);
        o->value = value;
        o->value_len = strlen(value);
        o->headers = rd_kafka_headers_new(1);
        if (event_id)
                rd_kafka_header_add(o->headers, SF_HDR_EVENT_ID, -1, event_id,
                                    -1);
        o->jobs = sf_malloc(sizeof(*o->jobs));
        o->jobs[0] = job;
        o->job_cnt = 1;
        return o;
}

/* Hands dead letter O to the DLQ: sf_dlq_put's outcome. */
static int sf_router_dlq_put(sf_router_t *r, sf_route_out_t *o, char *err,
                             size_t err_size)
{
        sf_dead_letter_t dl;

        memset(&dl, 0, sizeof(dl));
        dl.origin_topic = o->dl->origin_topic;
        dl.partition = o->dl->partition;
        dl.offset = o->dl->offset;
        dl.key = o->key;
        dl.key_len = o->key_len;
        dl.value = o->value;
        dl.value_len = o->value_len;
        dl.headers = o->dl->headers;
        dl.error = o->dl->reason;
        dl.stage = "router";
        dl.attempts = 1;
        dl.without_value = o->dl->without_value;
        return sf_dlq_put(r->dlq, &dl, o, err, err_size);
}

/* A dead letter whose send or delivery to the DLQ topic failed, sent
 * again through sf_dlq_put, which sends it without its value when it can
 * never be sent whole. */
static void sf_router_dlq_resend(sf_router_t *r, sf_route_out_t *o)
{
        char err[512];
        int rc = sf_router_dlq_put(r, o, err, sizeof(err));

        if (rc == SF_DLQ_PENDING)
                return; /* its delivery report decides */
        if (rc == SF_DLQ_STORED) {
                sf_route_job_t *job = o->jobs[0];

                sf_route_out_free(o);
                sf_router_job_done(r, job);
                return;
        }
        sf_warn("router", "cannot enqueue a record for %s: %s", o->topic, err);
        o->resend_at_ms = sf_mono_ms() + SF_ROUTER_RESEND_MS;
        o->next = r->resend;
        r->resend = o;
}

/* Dead-letters a record that cannot be routed, unchanged, with the reason.
 * Stored durably (the embedded broker's store), the record is done at
 * once; sent to the DLQ topic, it is done on its delivery report, and a
 * failed send goes to the resend list, to be put again. A store that
 * fails (a full disk) is waited for: the record is not acknowledged before
 * it is stored, and at a stop it stays unacknowledged, to be routed again
 * on the next start. */
static void sf_router_dead_letter(sf_router_t *r, const rd_kafka_message_t *m,
                                  sf_route_job_t *job, const char *reason)
{
        sf_route_out_t *o = sf_calloc(1, sizeof(*o));
        rd_kafka_headers_t *orig = NULL;
        int64_t next_log = 0;
        char err[512];
        int rc;

        sf_warn("router", "%s [%d] offset %lld to the DLQ: %s",
                rd_kafka_topic_name(m->rkt), (int)m->partition,
                (long long)m->offset, reason);
        rd_kafka_message_headers(m, &orig);
        o->topic = r->cfg->topic_dlq;
        o->key = m->key ? sf_strndup(m->key, m->key_len) : NULL;
        o->key_len = m->key ? m->key_len : 0;
        o->value = m->payload ? sf_strndup(m->payload, m->len) : sf_strdup("");
        o->value_len = m->payload ? m->len : 0;
        o->jobs = sf_malloc(sizeof(*o->jobs));
        o->jobs[0] = job;
        o->job_cnt = 1;
        o->dl = sf_calloc(1, sizeof(*o->dl));
        o->dl->origin_topic = sf_strdup(rd_kafka_topic_name(m->rkt));
        o->dl->partition = m->partition;
        o->dl->offset = m->offset;
        o->dl->headers = orig ? rd_kafka_headers_copy(orig) : NULL;
        o->dl->reason = sf_strdup(reason);
        job->remaining = 1;
        r->dead++;
        while ((rc = sf_router_dlq_put(r, o, err, sizeof(err))) < 0 &&
               sf_dlq_is_store(r->dlq) && !sf_should_stop()) {
                if (sf_mono_ms() >= next_log) {
                        sf_error("router",
                                 "%s; waiting for the DLQ store before "
                                 "routing on",
                                 err);
                        next_log = sf_mono_ms() + 30000;
                }
                sf_producer_poll(r->producer, SF_ROUTER_RESEND_MS);
        }
        if (rc == SF_DLQ_STORED) {
                sf_route_out_free(o);
                sf_router_job_done(r, job);
        } else if (rc < 0 && !sf_dlq_is_store(r->dlq)) {
                /* put again from the resend list */
                sf_warn("router", "cannot enqueue a record for %s: %s",
                        o->topic, err);
                o->resend_at_ms = sf_mono_ms() + SF_ROUTER_RESEND_MS;
                o->next = r->resend;
                r->resend = o;
        } else if (rc < 0) {
                /* stopping: left unacknowledged, routed again next time */
                sf_route_out_free(o);
                r->jobs--;
                free(job);
        }
}

/* Coalescing: a waiting record for the same topic and key takes over the
 * newer image; the event becomes the combined event. */
static const char *sf_combine_event(const char *first, const char *last)
{
        if (!strcmp(last, "delete"))
                return "delete";
        if (!strcmp(first, "insert"))
                return "insert";
        return last;
}

static void sf_router_hold(sf_router_t *r, sf_route_out_t *o, const char *event)
{
        char *mapkey = sf_asprintf("%s\n%s", o->topic, o->key);
        sf_route_out_t *prev = sf_map_get(r->waiting, mapkey);

        if (prev && r->cfg->router.coalesce_ms > 0) {
                const char *combined = sf_combine_event(prev->event, event);
                cJSON *v = sf_json_parse(o->value, o->value_len);

                /* Last image wins, but an insert that is updated before it
                 * left stays an insert for the target. */
                if (v) {
                        cJSON_ReplaceItemInObjectCaseSensitive(
                            v, "event", cJSON_CreateString(combined));
                        free(o->value);
                        o->value = sf_json_canonical(v);
                        o->value_len = strlen(o->value);
                        cJSON_Delete(v);
                }
                o->jobs = sf_realloc(o->jobs, (prev->job_cnt + o->job_cnt) *
                                                  sizeof(*o->jobs));
                memmove(o->jobs + prev->job_cnt, o->jobs,
                        o->job_cnt * sizeof(*o->jobs));
                memcpy(o->jobs, prev->jobs, prev->job_cnt * sizeof(*o->jobs));
                o->job_cnt += prev->job_cnt;
                o->due_ms = prev->due_ms;
                o->event = sf_strdup(combined);
                sf_route_out_free(prev);
                sf_map_set(r->waiting, mapkey, o);
        } else if (prev) {
                /* delay without coalescing: the earlier record leaves now so
                 * that order per record is kept */
                sf_map_remove(r->waiting, mapkey);
                sf_router_send(r, prev);
                o->event = sf_strdup(event);
                o->due_ms = sf_mono_ms() + r->hold_ms;
                sf_map_set(r->waiting, mapkey, o);
        } else {
                o->event = sf_strdup(event);
                o->due_ms = sf_mono_ms() + r->hold_ms;
                sf_map_set(r->waiting, mapkey, o);
        }
        free(mapkey);
}

typedef struct sf_due_ctx {
        int64_t now;
        int all;
        char **keys;
        size_t cnt, cap;
} sf_due_ctx_t;

static int sf_collect_due(void *opaque, const char *key, void *value)
{
        sf_due_ctx_t *d = opaque;
        sf_route_out_t *o = value;

        if (d->all || o->due_ms <= d->now) {
                if (d->cnt == d->cap) {
                        d->cap = d->cap ? d->cap * 2 : 64;
                        d->keys =
                            sf_realloc(d->keys, d->cap * sizeof(*d->keys));
                }
                d->keys[d->cnt++] = sf_strdup(key);
        }
        return 0;
}

/* Sends the waiting records whose window closed (all of them when ALL). */
static void sf_router_release(sf_router_t *r, int all)
{
        sf_due_ctx_t d = {.now = sf_mono_ms(), .all = all};

        if (!sf_map_count(r->waiting))
                return;
        sf_map_each(r->waiting, sf_collect_due, &d);
        for (size_t i = 0; i < d.cnt; i++) {
                sf_router_send(r, sf_map_remove(r->waiting, d.keys[i]));
                free(d.keys[i]);
        }
        free(d.keys);
}

static void sf_router_resend_due(sf_router_t *r, int all)
{
        sf_route_out_t *list = r->resend, *keep = NULL;
        int64_t now = sf_mono_ms();

        r->resend = NULL;
        while (list) {
                sf_route_out_t *o = list;

                list = o->next;
                o->next = NULL;
                if ((all || o->resend_at_ms <= now) && o->dl) {
                        sf_router_dlq_resend(r, o);
                } else if (all || o->resend_at_ms <= now) {
                        sf_router_send(r, o);
                } else {
                        o->next = keep;
                        keep = o;
                }
        }
        /* sends that failed again were pushed onto r->resend meanwhile */
        while (keep) {
                sf_route_out_t *o = keep;

                keep = o->next;
                o->next = r->resend;
                r->resend = o;
        }
}

static void sf_router_handle(sf_router_t *r, rd_kafka_message_t *m,
                             const sf_offset_ref_t *ref)
{
        sf_outbound_t outs[SF_ROUTER_MAX_SUBS];
        sf_route_job_t *job = sf_calloc(1, sizeof(*job));
        const void *hval = NULL;
        size_t hlen = 0;
        rd_kafka_headers_t *hdrs = NULL;
        char *event_id = NULL;
        char errstr[512];
        sf_change_t ch;
        int n;

        job->ref = *ref;
        r->jobs++;
        memset(&ch, 0, sizeof(ch));
        if (!rd_kafka_message_headers(m, &hdrs) &&
            !rd_kafka_header_get_last(hdrs, SF_HDR_EVENT_ID, &hval, &hlen) &&
            hval)
                event_id = sf_strndup(hval, hlen);
        if (m->len + m->key_len > SF_MAX_RECORD_BYTES) {
                sf_router_dead_letter(r, m, job, "record larger than 8 MiB");
                goto out;
        }
        if (sf_change_parse(m->key, m->key_len, m->payload, m->len, event_id,
                            &ch, errstr, sizeof(errstr))) {
                sf_router_dead_letter(r, m, job, errstr);
                goto out;
        }
        n = sf_route_change(r->cfg, &ch, sf_now_ms(), outs, SF_ROUTER_MAX_SUBS,
                            NULL, errstr, sizeof(errstr));
        if (n < 0) {
                sf_router_dead_letter(r, m, job, errstr);
                goto out;
        }
        if (n == 0) {
                r->jobs--;
                sf_consumer_done(r->consumer, ref);
                sf_route_job_free(job);
                goto out;
        }
        job->remaining = n;
        for (int i = 0; i < n; i++) {
                const char *topic = !strcmp(outs[i].kind, "message")
                                        ? r->cfg->topic_outbound_message
                                        : r->cfg->topic_outbound_webservice;
                sf_route_out_t *o = sf_route_out_new(
                    topic, sf_outbound_key_json(&outs[i]),
                    sf_outbound_value_json(&outs[i]), outs[i].event_id, job);

                r->routed++;
                if (r->hold_ms > 0)
                        sf_router_hold(r, o, outs[i].event);
                else
                        sf_router_send(r, o);
                sf_outbound_clear(&outs[i]);
        }
out:
        sf_change_clear(&ch);
        free(event_id);
}

/* On the embedded broker, and for settled acknowledgement, a guard for
 * each outbound topic some action feeds, on the backlog of the workers
 * that read it. Without one the embedded broker only loses its backlog
 * warning, but settled acknowledgement cannot work: -1 with errstr. */
static int sf_router_guards(sf_router_t *r, const char *bootstraps,
                            int expect_workers, char *errstr,
                            size_t errstr_size)
{
        const sf_config_t *cfg = r->cfg;
        int kinds[2] = {0, 0};
        char err[512];

        if (!cfg->kafka.embedded && !r->settle)
                return 0;
        for (size_t i = 0; i < cfg->action_cnt; i++)
                kinds[cfg->actions[i].kind == SF_KIND_MESSAGE ? 0 : 1] = 1;
        for (int k = 0; k < 2; k++) {
                const char *topic = k ? cfg->topic_outbound_webservice
                                      : cfg->topic_outbound_message;
                char *group;
                sf_backlog_guard_t *g;

                if (!kinds[k])
                        continue;
                group =
                    sf_asprintf("%s.%s", cfg->kafka.topic_prefix,
                                k ? "webservice-workers" : "message-workers");
                g = sf_backlog_guard_new(&cfg->kafka, bootstraps, topic, group,
                                         expect_workers, err, sizeof(err));
                free(group);
                if (!g && r->settle) {
                        sf_seterr(errstr, errstr_size,
                                  "settled acknowledgement needs the "
                                  "workers' committed offsets: %s",
                                  err);
                        return -1;
                }
                if (!g)
                        sf_warn("router", "%s", err);
                /* a real cluster retains what its topics say */
                if (!cfg->kafka.embedded)
                        sf_backlog_guard_watch_only(g);
                if (k)
                        r->guard_webservice = g;
                else
                        r->guard_message = g;
        }
        return 0;
}

sf_router_t *sf_router_new(const sf_config_t *cfg, const char *bootstraps,
                           int expect_workers, char *errstr, size_t errstr_size)
{
        sf_router_t *r = sf_calloc(1, sizeof(*r));
        const char *topics[] = {cfg->topic_sync_log};
        char *group = sf_asprintf("%s.router", cfg->kafka.topic_prefix);

        r->cfg = cfg;
        r->settle = cfg->source.ack == SF_ACK_SETTLED;
        r->waiting = sf_map_new();
        r->hold_ms = cfg->router.coalesce_ms > cfg->router.delay_ms
                         ? cfg->router.coalesce_ms
                         : cfg->router.delay_ms;
        r->producer =
            sf_producer_new(&cfg->kafka, bootstraps, "syncfleet-router",
                            sf_router_on_delivery, r, errstr, errstr_size);
        if (r->producer)
                r->dlq = sf_dlq_open(cfg, r->producer, errstr, errstr_size);
        if (r->dlq)
                r->consumer = sf_consumer_new(&cfg->kafka, bootstraps, group,
                                              "syncfleet-router", topics, 1,
                                              errstr, errstr_size);
        free(group);
        if (!r->producer || !r->dlq || !r->consumer) {
                sf_router_destroy(r);
                return NULL;
        }
        if (sf_router_guards(r, bootstraps, expect_workers, errstr,
                             errstr_size)) {
                sf_router_destroy(r);
                return NULL;
        }
        return r;
}

/* The workers of an outbound topic are as far behind as the embedded
 * broker allows: take no new sync-log records. */
static int sf_router_held(sf_router_t *r)
{
        return sf_backlog_guard_full(r->guard_message) ||
               sf_backlog_guard_full(r->guard_webservice);
}

int sf_router_run(sf_router_t *r, int grace_ms, char *errstr,
                  size_t errstr_size)
{
        int64_t deadline, last_report = sf_mono_ms();

        (void)errstr;
        (void)errstr_size;
        sf_info("router", "routing %s for %zu subscribers",
                r->cfg->topic_sync_log, r->cfg->action_cnt);
        while (!sf_should_stop()) {
                int busy = 0;

                int held = sf_router_held(r);

                if (!r->paused && (r->jobs >= SF_ROUTER_MAX_INFLIGHT || held)) {
                        sf_consumer_pause(r->consumer, 1);
                        r->paused = 1;
                } else if (r->paused && !held &&
                           r->jobs < SF_ROUTER_MAX_INFLIGHT / 2) {
                        sf_consumer_pause(r->consumer, 0);
                        r->paused = 0;
                }
                for (int i = 0; i < 1000; i++) {
                        sf_offset_ref_t ref;
                        rd_kafka_message_t *m;

                        /* held back: what was fetched is dropped by the
                         * pause and fetched again after it */
                        if (!r->paused && sf_router_held(r)) {
                                sf_consumer_pause(r->consumer, 1);
                                r->paused = 1;
                        }
                        m = sf_consumer_poll(r->consumer,
                                             i || r->jobs ? 0 : 100, &ref);
                        if (!m)
                                break;
                        busy = 1;
                        sf_router_handle(r, m, &ref);
                        rd_kafka_message_destroy(m);
                }
                sf_router_release(r, 0);
                sf_router_resend_due(r, 0);
                sf_producer_poll(r->producer, busy || !r->jobs ? 0 : 10);
                sf_router_settle(r);
                if (sf_mono_ms() - last_report >= 30000) {
                        sf_info("router",
                                "routed %llu outbound records, %llu to the "
                                "DLQ, %zu sync-log records in flight",
                                (unsigned long long)r->routed,
                                (unsigned long long)r->dead, r->jobs);
                        last_report = sf_mono_ms();
                }
        }
        /* Shutdown: no new intake; what waits is sent, then delivered within
         * the grace period; undelivered records are simply not
         * acknowledged. */
        sf_consumer_pause(r->consumer, 1);
        sf_router_release(r, 1);
        sf_router_resend_due(r, 1);
        deadline = sf_mono_ms() + grace_ms;
        while (r->jobs > r->settling_cnt && sf_mono_ms() < deadline)
                sf_producer_poll(r->producer, 50);
        /* The workers stop too: what they settled shows within a few
         * checks; what they did not is routed again next time. */
        if (deadline > sf_mono_ms() + 1000)
                deadline = sf_mono_ms() + 1000;
        while (r->settling_cnt && sf_mono_ms() < deadline) {
                sf_producer_poll(r->producer, 20);
                sf_router_settle(r);
        }
        if (r->jobs)
                sf_warn("router",
                        "%zu sync-log records not acknowledged at shutdown; "
                        "they will be routed again",
                        r->jobs);
        sf_info("router",
                "stopped: routed %llu outbound records, %llu to the "
                "DLQ",
                (unsigned long long)r->routed, (unsigned long long)r->dead);
        return 0;
}

static int sf_free_waiting(void *opaque, const char *key, void *value)
{
        (void)opaque;
        (void)key;
        sf_route_out_free(value);
        return 0;
}

void sf_router_destroy(sf_router_t *r)
{
        if (!r)
                return;
        /* Delivery reports still due acknowledge their sync-log records
         * before the consumer commits and leaves; afterwards they only free
         * their records. */
        if (r->producer && r->consumer)
                sf_producer_flush(r->producer, 1000);
        sf_backlog_guard_destroy(r->guard_message);
        sf_backlog_guard_destroy(r->guard_webservice);
        sf_consumer_destroy(r->consumer);
        r->closing = 1;
        sf_producer_destroy(r->producer, 1000);
        sf_dlq_close(r->dlq);
        if (r->waiting)
                sf_map_each(r->waiting, sf_free_waiting, NULL);
        sf_map_destroy(r->waiting);
        while (r->resend) {
                sf_route_out_t *o = r->resend;

                r->resend = o->next;
                sf_route_out_free(o);
        }
        for (size_t i = 0; i < r->settling_cnt; i++)
                sf_route_job_free(r->settling[i]);
        free(r->settling);
        free(r);
}
