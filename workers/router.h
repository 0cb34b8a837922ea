/*
 * The router: consumes PREFIX.sync-log in group PREFIX.router and turns
 * each change into one outbound record per subscriber (DESIGN.md), the
 * "process data synchronization log" step of the studio.
 */
#ifndef SF_ROUTER_H
#define SF_ROUTER_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "envelope.h"
#include "sf.h"

typedef struct sf_router sf_router_t;

/* CFG is borrowed and must outlive the router. On the embedded broker the
 * router holds back while the workers of an outbound topic are more than
 * the broker keeps behind (kafka.h, backlog guard); EXPECT_WORKERS says
 * they are sure to come (syncfleet run), so they are waited for from the
 * start, not only once they have committed. */
sf_router_t *sf_router_new(const sf_config_t *cfg, const char *bootstraps,
                           int expect_workers, char *errstr,
                           size_t errstr_size);

/* Runs until sf_should_stop(); then stops intake, waits up to GRACE_MS for
 * outbound deliveries, stores and commits what is done. Returns 0, or -1
 * when the loop could not go on (errstr says why). */
int sf_router_run(sf_router_t *r, int grace_ms, char *errstr,
                  size_t errstr_size);

void sf_router_destroy(sf_router_t *r); /* NULL is a no-op */

/* The routing decision for one change, without Kafka: one sf_outbound_t per
 * subscriber the change triggers, in action order. Used by the router and
 * by the dry run. When EXPLAIN is not NULL, one line per subscriber
 * considered is appended to it, saying what was decided and why.
 * Returns the number of outbound records written to OUT (at most
 * OUT_MAX), or -1 with errstr when the change cannot be routed (its table
 * key cannot be derived for a redirect, ...). */
int sf_route_change(const sf_config_t *cfg, const sf_change_t *ch,
                    int64_t now_ms, sf_outbound_t *out, size_t out_max,
                    sf_buf_t *explain, char *errstr, size_t errstr_size);

#endif
