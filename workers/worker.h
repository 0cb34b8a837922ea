/*
 * Message and web service workers: consume PREFIX.outbound.message (group
 * PREFIX.message-workers) or PREFIX.outbound.webservice (group
 * PREFIX.webservice-workers), run the action of each record, and store its
 * offset only after the target accepted it or it went to the DLQ.
 *
 * Records of one key (action + root record) run strictly one after the
 * other, in offset order, retries included; records of other keys run
 * concurrently, up to the connectors' max_in_flight. A connector whose
 * requests keep failing transiently is down: one probe at a time tests
 * it, and its records' attempts stop counting (scheduler.h). Under the
 * embedded broker its records wait in a parking store instead of memory,
 * so records of other connectors keep flowing (worker_park.c).
 */
#ifndef SF_WORKER_H
#define SF_WORKER_H

#include <stddef.h>

#include "config.h"

typedef struct sf_worker sf_worker_t;

/* CFG is borrowed and must outlive the worker. KIND is SF_KIND_MESSAGE or
 * SF_KIND_WEBSERVICE. */
sf_worker_t *sf_worker_new(const sf_config_t *cfg, const char *bootstraps,
                           sf_action_kind_t kind, const char *client_id,
                           char *errstr, size_t errstr_size);

/* Runs until sf_should_stop(); then stops intake, lets requests on the wire
 * finish within GRACE_MS, commits what is done. */
int sf_worker_run(sf_worker_t *w, int grace_ms, char *errstr,
                  size_t errstr_size);

void sf_worker_destroy(sf_worker_t *w); /* NULL is a no-op */

#endif
