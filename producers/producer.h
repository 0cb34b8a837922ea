/*
 * The change capture producer: reads row changes from the pipeline's
 * source and publishes them to PREFIX.sync-log (DESIGN.md, "Topics and
 * records"), acknowledging the source only up to the lowest change whose
 * delivery report has not come back yet.
 */
#ifndef SF_PRODUCER_H
#define SF_PRODUCER_H

#include <stddef.h>

#include "config.h"
#include "kafka.h"

typedef struct sf_producer_opts {
        /* Kafka bootstrap servers ("host:port,..."), required: for
         * kafka.brokers: embedded, the address of the broker the caller
         * started. */
        const char *bootstraps;
        int max_in_flight;      /* records not yet reported; default 10000 */
        int flush_grace_ms;     /* waited for reports on stop; default 10000 */
        int backoff_initial_ms; /* after a failure; default 500, doubling */
        int backoff_max_ms;     /* default 30000 */
        /* Called once capture is installed and the Kafka client exists,
         * just before the first read: from then on every change is
         * captured. May be NULL. */
        void (*on_ready)(void *ready_arg);
        void *ready_arg;
        /* On the embedded broker (kafka.brokers: embedded), the producer
         * holds back while the router group is more than the broker keeps
         * behind (kafka.h, backlog guard). Set when a router is sure to
         * come (syncfleet run): then it is waited for from the start, not
         * only once it has committed. */
        int expect_router;
} sf_producer_opts_t;

/* Opens and installs the capture source (install is idempotent and brings
 * the triggers in line with the pipeline), then publishes every change
 * until sf_should_stop(). A failed delivery or source read is logged and
 * retried after a backoff from the last acknowledged position: delivery is
 * at least once, in source order per record. On stop it stops reading,
 * waits up to flush_grace_ms for outstanding delivery reports, acknowledges
 * what was delivered (or settled) and returns 0. Returns -1 with errstr when
 * it cannot start (the source cannot be opened or installed, the Kafka
 * client cannot be created). The caller has created the pipeline's topics.
 * CFG is borrowed. */
int sf_producer_run(const sf_config_t *cfg, const sf_producer_opts_t *opts,
                    char *errstr, size_t errstr_size);

#endif
