/*
 * Running one outbound record: load the record to export (the event image,
 * or the current data for query mode and redirected events), render the
 * mapping and the request against it, hand the request to the target
 * connector, and turn its outcome, as the scheduler judges it, into
 * finished, the next step, or the DLQ.
 *
 * A web service action runs its request first; after a 2xx the response
 * step renders response.mapping with @response.* to response.target; when
 * the request finally fails the error step renders error.mapping with
 * @error.* to error.target. Only when that handling fails too does the
 * record go to the DLQ.
 */
#include "worker_int.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "redact.h"

void sf_job_free(sf_job_t *job)
{
        if (!job)
                return;
        free(job->rec_key);
        free(job->rec_value);
        if (job->rec_headers)
                rd_kafka_headers_destroy(job->rec_headers);
        sf_outbound_clear(&job->ob);
        cJSON_Delete(job->scope_record);
        cJSON_Delete(job->reply);
        free(job->last_error);
        free(job->qkey);
        free(job->origin_topic);
        free(job);
}

static int sf_job_is_delete(const sf_job_t *job)
{
        return !strcmp(job->ob.event, "delete");
}

/* Loads the record the action exports into job->scope_record. Returns
 * SF_OK, SF_RETRY, SF_FATAL, or -1 when the record no longer exists (a
 * later delete event covers it: nothing to export). */
static int sf_job_load(sf_worker_t *w, sf_job_t *job, char *errstr,
                       size_t errstr_size)
{
        const sf_action_cfg_t *a = job->action;
        const sf_outbound_t *ob = &job->ob;
        int redirected = strcmp(ob->table, ob->root_table) != 0;
        const sf_table_cfg_t *root;
        cJSON *rec = NULL;
        sf_status_t st;

        if (job->scope_record)
                return SF_OK;
        if (a->source.mode == SF_MODE_EVENT && !redirected && ob->record) {
                job->scope_record = cJSON_Duplicate(ob->record, 1);
                return SF_OK;
        }
        /* The event image is what an insert or update exports: without it
         * the record would be read from the database, or, gone there,
         * dropped unseen. */
        if (a->source.mode == SF_MODE_EVENT && !redirected &&
            !sf_job_is_delete(job)) {
                sf_seterr(errstr, errstr_size,
                          "%s of %s without its image (record is null or "
                          "missing)",
                          ob->event, ob->table);
                return SF_FATAL;
        }
        root = sf_config_table(w->cfg, ob->root_table);
        if (!root) {
                sf_seterr(errstr, errstr_size,
                          "table %s is not in the pipeline", ob->root_table);
                return SF_FATAL;
        }
        if (sf_job_is_delete(job) && !redirected) {
                /* the record is gone: export its last image, no children */
                rec = ob->record ? cJSON_Duplicate(ob->record, 1)
                                 : cJSON_Duplicate(ob->key, 1);
                for (size_t i = 0; i < a->source.records_cnt; i++)
                        cJSON_AddItemToObject(rec, a->source.records[i].name,
                                              cJSON_CreateArray());
                job->scope_record = rec;
                return SF_OK;
        }
        if (!w->db) {
                w->db = sf_source_db_open(w->cfg, errstr, errstr_size);
                if (!w->db)
                        return SF_RETRY;
        }
        st = sf_source_db_get(w->db, root, ob->root_key, &rec, errstr,
                              errstr_size);
        if (st != SF_OK)
                return st;
        if (!rec)
                return -1;
        for (size_t i = 0; i < a->source.records_cnt; i++) {
                cJSON *children = NULL;

                st = sf_source_db_children(w->db, &a->source.records[i], rec,
                                           &children, errstr, errstr_size);
                if (st != SF_OK) {
                        cJSON_Delete(rec);
                        return st;
                }
                cJSON_AddItemToObject(rec, a->source.records[i].name, children);
        }
        job->scope_record = rec;
        return SF_OK;
}

static void sf_job_on_result(void *opaque, const sf_result_t *res);

/* Moves a failed web service request to its error step, if it has one. */
static int sf_job_to_error_step(sf_worker_t *w, sf_job_t *job, int http_status,
                                const char *message)
{
        if (job->action->kind != SF_KIND_WEBSERVICE ||
            job->step != SF_STEP_MAIN || !job->action->has_error)
                return 0;
        cJSON_Delete(job->reply);
        job->reply =
            sf_render_reply_error(http_status, message, job->item.attempts);
        job->step = SF_STEP_ERROR;
        sf_sched_step(w->sched, &job->item,
                      sf_worker_step_circuit(w, job->action, SF_STEP_ERROR),
                      sf_mono_ms());
        return 1;
}

void sf_job_outcome(sf_worker_t *w, sf_job_t *job, sf_status_t st,
                    int64_t retry_after_ms, const char *error, int http_status,
                    int flags)
{
        char reason[768], safe[512];
        sf_sched_verdict_t v;

        /* The one place a step's error enters the job: what it says goes
         * on to the log, the error step's @error.message and the DLQ,
         * so secrets a target echoed are taken out here. */
        if (error && sf_redact_active()) {
                sf_redact_into(error, safe, sizeof(safe));
                error = safe;
        }
        v = sf_sched_result(w->sched, &job->item, st, retry_after_ms, error,
                            flags, sf_mono_ms());

        switch (v) {
        case SF_SCHED_DROP:
                /* Its partition moved to another worker, which runs the
                 * record again: retrying here would race that worker and
                 * dead-lettering would report a failure that is not
                 * final. */
                sf_debug(w->stage, "%s: dropped, its partition was revoked%s%s",
                         job->action ? job->action->name : "-",
                         error ? ": " : "", error ? error : "");
                sf_worker_job_dropped(w, job);
                return;
        case SF_SCHED_DONE:
                w->ok++;
                sf_worker_job_finished(w, job);
                return;
        case SF_SCHED_RETRY:
                w->retried++;
                sf_debug(w->stage, "%s: try %d failed (%d counted): %s",
                         job->action->name, job->item.failures,
                         job->item.attempts, error ? error : "failed");
                free(job->last_error);
                job->last_error = sf_strdup(error ? error : "failed");
                /* its key joins the parked records while the connector
                 * is down, rather than wait in memory */
                if (w->park && job->step == SF_STEP_MAIN && !job->reply) {
                        char *qkey = sf_strdup(job->qkey);

                        sf_worker_park_evict_key(w, job->action, qkey);
                        free(qkey);
                }
                return;
        case SF_SCHED_GIVE_UP:
                break;
        }
        if (st == SF_RETRY)
                snprintf(reason, sizeof(reason),
                         "%s: gave up after %d attempts: %s", job->action->name,
                         job->item.attempts, error ? error : "failed");
        else
                snprintf(reason, sizeof(reason), "%s: %s", job->action->name,
                         error ? error : "failed");
        if (sf_job_to_error_step(w, job, http_status, error ? error : ""))
                return;
        sf_worker_job_dead(w, job, reason);
}

void sf_job_start(sf_worker_t *w, sf_job_t *job)
{
        const sf_mapping_t *mapping;
        const sf_target_cfg_t *t =
            sf_render_target(job->action, job->step, &mapping);
        sf_rendered_t r = {0};
        sf_request_t req;
        sf_conn_slot_t *slot;
        char errstr[512];
        int rc;

        rc = sf_job_load(w, job, errstr, sizeof(errstr));
        if (rc == -1) {
                sf_debug(w->stage,
                         "%s: %s record no longer exists, nothing "
                         "to export",
                         job->action->name, job->ob.root_table);
                sf_job_outcome(w, job, SF_OK, -1, NULL, 0, SF_SCHED_LOCAL);
                return;
        }
        if (rc != SF_OK) {
                sf_job_outcome(w, job, (sf_status_t)rc, -1, errstr, 0,
                               SF_SCHED_LOCAL);
                return;
        }
        if (sf_render(job->action, job->step, &job->ob, job->scope_record,
                      job->reply, &r, errstr, sizeof(errstr))) {
                sf_job_outcome(w, job, SF_FATAL, -1, errstr, 0, SF_SCHED_LOCAL);
                return;
        }
        if (r.skip) {
                sf_job_outcome(w, job, SF_OK, -1, NULL, 0, SF_SCHED_LOCAL);
                return;
        }
        slot = sf_worker_conn(w, t->conn, errstr, sizeof(errstr));
        if (!slot) {
                /* the connector's failure, as an outage: its circuit
                 * opens and its records wait for a configuration that
                 * works, none dead-lettered */
                sf_rendered_clear(&r);
                sf_job_outcome(w, job, SF_RETRY, -1, errstr, 0,
                               SF_SCHED_MISCONFIGURED);
                return;
        }
        memset(&req, 0, sizeof(req));
        req.action = job->action->name;
        req.target = t;
        req.idempotency_key = job->ob.event_id;
        req.method = r.method;
        req.path = r.path;
        req.body = r.body;
        req.record_key = job->qkey;
        if (slot->ops->send(slot->conn, &req, sf_job_on_result, job, errstr,
                            sizeof(errstr))) {
                sf_rendered_clear(&r);
                sf_job_outcome(w, job, SF_FATAL, -1, errstr, 0, SF_SCHED_LOCAL);
                return;
        }
        sf_rendered_clear(&r);
}

/* A connector's verdict on the current step. */
static void sf_job_on_result(void *opaque, const sf_result_t *res)
{
        sf_job_t *job = opaque;
        sf_worker_t *w = job->worker;
        sf_sched_verdict_t v;

        if (res->status != SF_OK || job->action->kind != SF_KIND_WEBSERVICE ||
            job->step != SF_STEP_MAIN || !job->action->has_response) {
                sf_job_outcome(w, job, res->status, res->retry_after_ms,
                               res->error, res->http_status,
                               res->status == SF_RETRY && res->misconfigured
                                   ? SF_SCHED_MISCONFIGURED
                                   : 0);
                return;
        }
        v = sf_sched_result(w->sched, &job->item, SF_OK, -1, NULL, 0,
                            sf_mono_ms());
        if (v == SF_SCHED_DROP) {
                sf_worker_job_dropped(w, job);
                return;
        }
        cJSON_Delete(job->reply);
        job->reply = sf_render_reply_response(res->response, res->http_status,
                                              res->response_headers_json);
        job->step = SF_STEP_RESPONSE;
        sf_sched_step(w->sched, &job->item,
                      sf_worker_step_circuit(w, job->action, SF_STEP_RESPONSE),
                      sf_mono_ms());
}
