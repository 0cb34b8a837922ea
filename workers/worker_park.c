/*
 * Parking: how a worker keeps other connectors flowing while one is down.
 *
 * While a connector's circuit is open, or while an action still has
 * parked records, every record for that action is appended to the
 * parking store (park.h) and then counts as done for Kafka: the store is
 * durable, so its offset may be committed. When the circuit opens, what
 * the worker holds for the connector's actions goes there too, except
 * what cannot move (a request on the wire, a web service record past its
 * request, a record whose key already has parked records: it must stay
 * ahead of them). When every connector of an action is up again, the
 * parked records are claimed back in batches, oldest first, and run
 * through the scheduler behind whatever their keys hold in memory; each
 * is deleted once finished (accepted or dead-lettered). Their attempt
 * counts travel with them, frozen while parked.
 *
 * Parking is used on the embedded broker, whose in-memory topics cannot
 * hold an outage's worth of records. Elsewhere records of a down
 * connector wait in memory, up to the worker's cap, with frozen attempts.
 */
#include "worker_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define SF_PARK_BATCH 256 /* parked records claimed back at a time */
#define SF_PARK_RETRY 1000

/* The parking store in the pipeline's state directory: on the embedded
 * broker, and on a real cluster when the pipeline names a state_dir. */
char *sf_worker_park_path(const sf_config_t *cfg)
{
        /* a real cluster's workers (Kubernetes Deployments) have a
         * persistent disk only where the pipeline says so */
        if ((!cfg->kafka.embedded && !cfg->state_dir_given) || !cfg->state_dir)
                return NULL;
        return sf_asprintf("%s/parked.db", cfg->state_dir);
}

/* --- which records park -------------------------------------------------- */

static size_t sf_action_idx(const sf_worker_t *w, const sf_action_cfg_t *a)
{
        return (size_t)(a - w->cfg->actions);
}

/* The circuits ACTION's steps use; returns how many (at most 3). */
static int sf_action_circuits(const sf_worker_t *w, const sf_action_cfg_t *a,
                              int out[3])
{
        int n = 0;

        out[n++] = sf_worker_step_circuit(w, a, SF_STEP_MAIN);
        if (a->kind == SF_KIND_WEBSERVICE && a->has_response)
                out[n++] = sf_worker_step_circuit(w, a, SF_STEP_RESPONSE);
        if (a->kind == SF_KIND_WEBSERVICE && a->has_error)
                out[n++] = sf_worker_step_circuit(w, a, SF_STEP_ERROR);
        return n;
}

static int sf_action_uses(const sf_worker_t *w, const sf_action_cfg_t *a,
                          int circuit)
{
        int c[3], n = sf_action_circuits(w, a, c);

        for (int i = 0; i < n; i++)
                if (c[i] == circuit)
                        return 1;
        return 0;
}

static int sf_action_down(const sf_worker_t *w, const sf_action_cfg_t *a)
{
        int c[3], n = sf_action_circuits(w, a, c);

        for (int i = 0; i < n; i++)
                if (sf_sched_circuit_open(w->sched, c[i]))
                        return 1;
        return 0;
}

int sf_worker_parks(sf_worker_t *w, const sf_action_cfg_t *a)
{
        return w->park &&
               (sf_action_down(w, a) || sf_park_count(w->park, a->name) > 0);
}

/* --- headers in the store ------------------------------------------------ */

/* Kafka headers as bytes: per header a uint32 name length, the name, an
 * int64 value length (-1: no value) and the value, in host order (the file
 * never leaves the machine). */
static char *sf_headers_pack(const rd_kafka_headers_t *h, size_t *len)
{
        sf_buf_t b;
        const char *name;
        const void *val;
        size_t size;

        *len = 0;
        if (!h)
                return NULL;
        sf_buf_init(&b, SF_MAX_RECORD_BYTES);
        for (size_t i = 0; !rd_kafka_header_get_all(h, i, &name, &val, &size);
             i++) {
                uint32_t nl = (uint32_t)strlen(name);
                int64_t vl = val ? (int64_t)size : -1;

                sf_buf_append(&b, &nl, sizeof(nl));
                sf_buf_append(&b, name, nl);
                sf_buf_append(&b, &vl, sizeof(vl));
                if (val)
                        sf_buf_append(&b, val, size);
        }
        *len = b.len;
        return sf_buf_steal(&b);
}

static rd_kafka_headers_t *sf_headers_unpack(const char *p, size_t len)
{
        rd_kafka_headers_t *h;
        size_t off = 0;

        if (!p)
                return NULL;
        h = rd_kafka_headers_new(8);
        while (off + sizeof(uint32_t) <= len) {
                uint32_t nl;
                int64_t vl;
                const char *name;

                memcpy(&nl, p + off, sizeof(nl));
                off += sizeof(nl);
                if (off + nl + sizeof(vl) > len)
                        break;
                name = p + off;
                off += nl;
                memcpy(&vl, p + off, sizeof(vl));
                off += sizeof(vl);
                if (vl > (int64_t)(len - off))
                        break;
                rd_kafka_header_add(h, name, (ssize_t)nl,
                                    vl < 0 ? NULL : p + off,
                                    vl < 0 ? 0 : (ssize_t)vl);
                if (vl > 0)
                        off += (size_t)vl;
        }
        return h;
}

/* --- parking ------------------------------------------------------------- */

void sf_worker_park_add(sf_worker_t *w, sf_job_t *job)
{
        int c[3], n = sf_action_circuits(w, job->action, c);

        for (int i = 0; i < n; i++)
                if (sf_sched_circuit_open(w->sched, c[i]))
                        w->conns[c[i]].parked++;
        job->parking = NULL;
        if (w->park_tail)
                w->park_tail->parking = job;
        else
                w->park_head = job;
        w->park_tail = job;
        w->park_cnt++;
}

int sf_worker_park_commit(sf_worker_t *w)
{
        sf_parked_t *recs;
        char errstr[512];
        size_t n = 0;
        int rc;

        if (!w->park_cnt)
                return 0;
        recs = sf_calloc(w->park_cnt, sizeof(*recs));
        for (sf_job_t *j = w->park_head; j; j = j->parking, n++) {
                sf_parked_t *r = &recs[n];

                r->action = (char *)j->action->name;
                r->qkey = j->qkey;
                r->rec_key = j->rec_key;
                r->rec_key_len = j->rec_key_len;
                r->rec_value = j->rec_value;
                r->rec_value_len = j->rec_value_len;
                r->headers = sf_headers_pack(j->rec_headers, &r->headers_len);
                r->origin_topic = j->origin_topic;
                r->origin_partition = j->partition;
                r->origin_offset = j->offset;
                r->attempts = j->item.attempts;
        }
        rc = sf_park_put(w->park, recs, n, errstr, sizeof(errstr));
        for (size_t i = 0; i < n; i++)
                free(recs[i].headers);
        free(recs);
        if (rc) {
                if (!w->park_retry_at)
                        sf_error(w->stage, "%s; intake paused until it works",
                                 errstr);
                w->park_retry_at = sf_mono_ms() + SF_PARK_RETRY;
                return -1;
        }
        if (w->park_retry_at)
                sf_info(w->stage, "parking works again; intake resumes");
        w->park_retry_at = 0;
        while (w->park_head) {
                sf_job_t *j = w->park_head;

                w->park_head = j->parking;
                sf_consumer_done(w->consumer, &j->ref);
                sf_job_free(j);
        }
        w->park_tail = NULL;
        w->park_cnt = 0;
        w->parked += n;
        return 0;
}

void sf_worker_park_revoke(sf_worker_t *w,
                           int (*revoked)(void *opaque, int32_t partition),
                           void *opaque)
{
        sf_job_t **pp = &w->park_head;

        w->park_tail = NULL;
        while (*pp) {
                sf_job_t *j = *pp;

                if (revoked(opaque, j->partition)) {
                        *pp = j->parking;
                        w->park_cnt--;
                        sf_job_free(j);
                        continue;
                }
                w->park_tail = j;
                pp = &j->parking;
        }
}

typedef struct sf_heads {
        sf_sched_item_t **v;
        size_t cnt, cap;
} sf_heads_t;

static void sf_collect_head(void *opaque, const char *key, sf_sched_item_t *it)
{
        sf_heads_t *h = opaque;

        if (!key || !it)
                return;
        if (h->cnt == h->cap) {
                h->cap = h->cap ? h->cap * 2 : 64;
                h->v = sf_realloc(h->v, h->cap * sizeof(*h->v));
        }
        h->v[h->cnt++] = it;
}

/* What of key queue HEAD can be set aside now that ACTION is parking. */
static void sf_worker_evict_key(sf_worker_t *w, sf_sched_item_t *head)
{
        const sf_action_cfg_t *a = sf_job_of(head)->action;
        int has_rows = -2; /* not asked yet */

        for (sf_sched_item_t *it = head, *next; it; it = next) {
                sf_job_t *j = sf_job_of(it);

                next = sf_sched_key_next(it);
                if (j->park_id && it->state != SF_SCHED_RUNNING &&
                    it->state != SF_SCHED_DEAD && it->state != SF_SCHED_IDLE &&
                    j->step == SF_STEP_MAIN && !j->reply) {
                        /* back to its place in the store */
                        sf_worker_park_release(w, j);
                        continue;
                }
                /* A record that cannot move (on the wire, past its
                 * request) keeps every later record of its key behind it
                 * in memory: nothing of a key is in the store while an
                 * earlier record of it is not, so a crash replays each
                 * key from one place, in order. The same for a record
                 * that must stay ahead of its key's parked records. */
                if (j->park_id || it->state == SF_SCHED_RUNNING ||
                    it->state == SF_SCHED_DEAD || it->state == SF_SCHED_IDLE ||
                    j->step != SF_STEP_MAIN || j->reply)
                        break;
                if (has_rows == -2)
                        has_rows = sf_park_count(w->park, a->name) > 0
                                       ? sf_park_key_has_rows(w->park, a->name,
                                                              j->qkey)
                                       : 0;
                if (has_rows)
                        break;
                sf_sched_remove(w->sched, it);
                sf_worker_park_add(w, j);
        }
}

void sf_worker_park_evict_key(sf_worker_t *w, const sf_action_cfg_t *a,
                              const char *qkey)
{
        sf_sched_item_t *head = sf_sched_key_head(w->sched, qkey);

        if (!w->park || !head || !sf_action_down(w, a))
                return;
        sf_worker_evict_key(w, head);
        sf_worker_park_commit(w);
}

int sf_worker_parks_record(sf_worker_t *w, const sf_action_cfg_t *a,
                           const char *qkey)
{
        if (!sf_worker_parks(w, a))
                return 0;
        /* A key held here keeps its next records behind it in memory,
         * unless it has parked records they must follow: so nothing of a
         * key is ever in the store while an earlier record of it is not,
         * and a crash replays a key from one place, in order. */
        if (!sf_sched_key_head(w->sched, qkey))
                return 1;
        return sf_park_count(w->park, a->name) > 0 &&
               sf_park_key_has_rows(w->park, a->name, qkey);
}

void sf_worker_park_evict(sf_worker_t *w, int conn)
{
        sf_heads_t h = {0};

        sf_sched_each_key(w->sched, sf_collect_head, &h);
        for (size_t i = 0; i < h.cnt; i++) {
                const sf_job_t *j = sf_job_of(h.v[i]);

                if (j->action && sf_action_uses(w, j->action, conn))
                        sf_worker_evict_key(w, h.v[i]);
        }
        free(h.v);
        sf_worker_park_commit(w);
}

/* --- claiming back ---------------------------------------------------------
 */

/* A job for parked record R (its fields move into the job). */
static void sf_worker_unpark(sf_worker_t *w, const sf_action_cfg_t *a,
                             sf_parked_t *r)
{
        sf_job_t *job = sf_calloc(1, sizeof(*job));
        char errstr[512];

        job->worker = w;
        job->park_id = r->id;
        job->item.partition = -1;
        job->rec_key = r->rec_key;
        job->rec_key_len = r->rec_key_len;
        job->rec_value = r->rec_value;
        job->rec_value_len = r->rec_value_len;
        job->rec_headers = sf_headers_unpack(r->headers, r->headers_len);
        job->origin_topic = r->origin_topic;
        job->partition = r->origin_partition;
        job->offset = r->origin_offset;
        job->qkey = r->qkey;
        job->action = a;
        r->rec_key = r->rec_value = r->origin_topic = r->qkey = NULL;
        w->claimed[sf_action_idx(w, a)]++;
        if (sf_outbound_parse(job->rec_value, job->rec_value_len, &job->ob,
                              errstr, sizeof(errstr))) {
                /* it parsed before it was parked */
                sf_sched_add(w->sched, &job->item, NULL, w->none_circuit,
                             r->attempts, sf_mono_ms());
                sf_sched_give_up(w->sched, &job->item);
                sf_worker_job_dead(w, job, errstr);
        } else {
                sf_sched_add(w->sched, &job->item, job->qkey,
                             sf_worker_step_circuit(w, a, SF_STEP_MAIN),
                             r->attempts, sf_mono_ms());
        }
        sf_parked_clear(r);
}

/* Claims up to MAX parked records of A; returns how many. */
static int sf_worker_claim(sf_worker_t *w, const sf_action_cfg_t *a, size_t max)
{
        sf_parked_t recs[SF_PARK_BATCH];
        char errstr[512];
        int n;

        if (max > SF_PARK_BATCH)
                max = SF_PARK_BATCH;
        n = sf_park_claim(w->park, a->name, w, max, recs, errstr,
                          sizeof(errstr));
        if (n < 0) {
                sf_warn(w->stage, "%s", errstr);
                return 0;
        }
        for (int i = 0; i < n; i++)
                sf_worker_unpark(w, a, &recs[i]);
        return n;
}

void sf_worker_park_drain(sf_worker_t *w)
{
        for (size_t i = 0; i < w->cfg->action_cnt; i++) {
                const sf_action_cfg_t *a = &w->cfg->actions[i];
                size_t held = w->claimed[i];

                if (a->kind != w->kind || held > SF_PARK_BATCH / 2 ||
                    sf_park_count(w->park, a->name) <= (int64_t)held ||
                    sf_action_down(w, a))
                        continue;
                sf_worker_claim(w, a, SF_PARK_BATCH - held);
        }
}

void sf_worker_park_feed(sf_worker_t *w, int conn)
{
        const sf_connector_cfg_t *c;
        int64_t seen;

        if (!w->park || conn == w->none_circuit)
                return;
        for (size_t i = 0; i < w->cfg->action_cnt; i++) {
                const sf_action_cfg_t *a = &w->cfg->actions[i];

                if (a->kind == w->kind && sf_action_uses(w, a, conn) &&
                    sf_park_count(w->park, a->name) > (int64_t)w->claimed[i] &&
                    sf_worker_claim(w, a, 1))
                        return;
        }
        /* Nothing to probe with: another worker of the process drains
         * these actions. If it has seen the connector work since this
         * circuit opened, that is proof enough. */
        c = &w->cfg->connectors[conn];
        seen = sf_park_seen_working(w->park, c->name);
        if (seen >= 0 && seen >= w->conns[conn].opened_ms)
                sf_sched_circuit_close(w->sched, conn, sf_mono_ms());
}

void sf_worker_park_done(sf_worker_t *w, sf_job_t *job)
{
        sf_park_done(w->park, job->action->name, w, job->park_id);
        w->claimed[sf_action_idx(w, job->action)]--;
}

void sf_worker_park_release(sf_worker_t *w, sf_job_t *job)
{
        sf_park_release(w->park, job->action->name, w, job->park_id,
                        job->item.attempts);
        w->claimed[sf_action_idx(w, job->action)]--;
        sf_sched_remove(w->sched, &job->item);
        sf_job_free(job);
}

void sf_worker_park_flush(sf_worker_t *w)
{
        char errstr[512];

        if (sf_park_flush(w->park, errstr, sizeof(errstr)))
                sf_warn(w->stage, "%s; trying again", errstr);
}
