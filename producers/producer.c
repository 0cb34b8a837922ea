/*
 * The change capture producer loop.
 *
 * Each change goes to PREFIX.sync-log with its position (its seq, or the
 * count of changes polled for a source whose positions are not its seqs,
 * capture.h) as the delivery opaque. Positions are tracked as offsets are for a
 * consumer: the source is acknowledged up to just below the lowest position
 * whose delivery report has not come back successful, so a row leaves the
 * source only after Kafka has it (acks=all). A failed delivery stops reading:
 * once every outstanding report is in, the source is rewound to the last
 * acknowledged position and reading starts again after a backoff. Changes
 * delivered after the failed one are sent again (at least once), and
 * changes to one record keep their order, since everything after the
 * failure is resent in source order.
 *
 * Settled acknowledgement (source.ack: settled, the default on the
 * embedded broker, which keeps nothing across a restart): a delivered
 * change is acknowledged only once it is settled, that is once the
 * router's group committed past the sync-log offset it went to (settle.h;
 * the router commits only what its workers settled). The backlog guard's
 * thread reads those commits. Until then the change stays in the source,
 * so a restart replays it.
 */
#include "producer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "dlq.h"
#include "envelope.h"
#include "log.h"
#include "settle.h"
#include "sf.h"

#define PR_COMPONENT       "producer"
#define PR_CLIENT_ID       "syncfleet-producer"
#define PR_SEND_TIMEOUT_MS 5000
#define PR_WAIT_STEP_MS    100

/* The position travels as the delivery opaque. */
_Static_assert(sizeof(intptr_t) >= sizeof(int64_t),
               "a change position must fit in a pointer");

typedef struct pr_loop {
        const sf_config_t *cfg;
        const sf_producer_opts_t *opts;
        sf_capture_t *cap;
        sf_producer_t *kp;
        sf_tracker_t *tracker; /* positions sent since the last rewind */
        int64_t acked;         /* last position acknowledged to the source */
        int64_t polled;        /* changes polled, for positions not in seq */
        int failed;            /* a send or delivery failed: rewind */
        sf_buf_t key, value;   /* the record being sent, reused */
        sf_backlog_guard_t *guard; /* embedded broker: the router's backlog */
        sf_settle_t *settle;       /* settled acknowledgement, or NULL */
        int64_t settled;           /* highest position settled */
        sf_dlq_t *dlq;             /* opened with dlq_kp */
        sf_producer_t *dlq_kp;
        uint64_t delivered;
        uint64_t failures;
        uint64_t oversize; /* changes sent to the DLQ as too large */
} pr_loop_t;

static void pr_on_delivery(void *cb_arg, void *opaque, rd_kafka_resp_err_t err)
{
        pr_loop_t *l = cb_arg;
        int64_t pos = (int64_t)(intptr_t)opaque;

        sf_backlog_guard_delivered(l->guard);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
                /* one line per failure burst: the rest share the cause */
                if (!l->failed)
                        sf_error(PR_COMPONENT,
                                 "delivery of change %lld to %s failed: %s",
                                 (long long)pos, l->cfg->topic_sync_log,
                                 rd_kafka_err2str(err));
                l->failed = 1;
                l->failures++;
                return;
        }
        sf_tracker_done(l->tracker, pos);
        if (l->settle) {
                int32_t partition;
                int64_t offset;
                const char *topic =
                    sf_producer_delivered_at(l->kp, &partition, &offset);

                /* the DLQ keeps what it got: nothing downstream to wait for */
                if (!topic || strcmp(topic, l->cfg->topic_sync_log))
                        partition = -1;
                sf_settle_delivered(l->settle, pos, partition, offset);
        }
        l->delivered++;
}

static int64_t pr_router_committed(void *arg, int32_t partition)
{
        return sf_backlog_guard_committed(arg, partition);
}

/* Acknowledges the source up to just below the lowest position not yet
 * delivered. A failed acknowledgement is only logged: the rows stay and
 * the next call tries again. */
static void pr_ack_delivered(pr_loop_t *l)
{
        char err[512];
        int64_t next = sf_tracker_committable(l->tracker), upto = next - 1;

        if (l->settle) {
                int64_t s =
                    sf_settle_take(l->settle, pr_router_committed, l->guard);

                if (s > l->settled)
                        l->settled = s;
                /* the guard looks often while changes wait */
                sf_backlog_guard_hurry(l->guard,
                                       sf_settle_pending(l->settle) > 0);
                if (l->settled < upto)
                        upto = l->settled;
        }
        if (next < 0 || upto <= l->acked)
                return;
        if (sf_capture_ack(l->cap, upto, err, sizeof(err))) {
                sf_warn(PR_COMPONENT, "acknowledging %s changes: %s",
                        l->settle ? "settled" : "delivered", err);
                return;
        }
        l->acked = upto;
}

/* A change larger than Kafka takes (message.max.bytes) can never be sent:
 * instead of stopping the capture on it for good, its envelope goes to the
 * DLQ without the before and after images, with the reason, and counts as
 * delivered once the DLQ has it: at once when the DLQ is the durable store
 * of the embedded broker, on its delivery report when it is the topic.
 * The row itself stays in the source database for whoever follows the DLQ
 * up. */
static int pr_dead_letter_oversize(pr_loop_t *l, const sf_change_t *c,
                                   int64_t pos, int begun, size_t size)
{
        char err[512], limit[32] = "?", what[64], *reason;
        size_t limit_len = sizeof(limit);
        sf_change_t slim = *c;
        sf_dead_letter_t dl;
        int rc;

        rd_kafka_conf_get(rd_kafka_conf(sf_producer_handle(l->kp)),
                          "message.max.bytes", limit, &limit_len);
        slim.before = slim.after = NULL;
        slim.before_text = slim.after_text = NULL;
        sf_buf_reset(&l->value);
        if (sf_change_value_append(&l->value, &slim))
                return -1;
        if (size == SIZE_MAX)
                snprintf(what, sizeof(what), "more than %zu bytes",
                         (size_t)SF_MAX_RECORD_BYTES);
        else
                snprintf(what, sizeof(what), "%zu bytes", size);
        reason = sf_asprintf(
            "change of %s is larger than Kafka's message.max.bytes (%s): "
            "sent to the DLQ without its before and after images; raise "
            "message.max.bytes in kafka.config (and the topic's "
            "max.message.bytes) to carry rows this large",
            what, limit);
        sf_error(PR_COMPONENT, "change %s of %s: %s", c->event_id, c->table,
                 reason);
        /* a producer replaced after a fatal error is the one to send with */
        if (l->dlq && l->dlq_kp != l->kp) {
                sf_dlq_close(l->dlq);
                l->dlq = NULL;
        }
        if (!l->dlq) {
                l->dlq = sf_dlq_open(l->cfg, l->kp, err, sizeof(err));
                l->dlq_kp = l->kp;
        }
        if (!begun) {
                sf_tracker_begin(l->tracker, pos);
                if (l->settle)
                        sf_settle_sent(l->settle, pos, sf_mono_ms());
        }
        memset(&dl, 0, sizeof(dl));
        dl.origin_topic = l->cfg->topic_sync_log;
        dl.partition = -1;
        dl.offset = -1;
        dl.key = l->key.data;
        dl.key_len = l->key.len;
        dl.value = l->value.data;
        dl.value_len = l->value.len;
        dl.error = reason;
        dl.stage = "producer";
        dl.attempts = 1;
        dl.event_id = c->event_id;
        rc = l->dlq ? sf_dlq_put(l->dlq, &dl, (void *)(intptr_t)pos, err,
                                 sizeof(err))
                    : -1;
        free(reason);
        if (rc < 0) {
                sf_error(PR_COMPONENT, "sending change %s to the DLQ: %s",
                         c->event_id, err);
                return -1;
        }
        l->oversize++;
        if (rc == SF_DLQ_STORED)
                pr_on_delivery(l, (void *)(intptr_t)pos,
                               RD_KAFKA_RESP_ERR_NO_ERROR);
        return 0;
}

static int pr_send(pr_loop_t *l, const sf_change_t *c, int64_t pos)
{
        char err[512];
        rd_kafka_headers_t *hdrs;
        int rc;

        sf_buf_reset(&l->key);
        sf_buf_reset(&l->value);
        if (sf_change_key_append(&l->key, c) ||
            sf_change_value_append(&l->value, c))
                return pr_dead_letter_oversize(l, c, pos, 0, SIZE_MAX);
        hdrs = rd_kafka_headers_new(1);
        rd_kafka_header_add(hdrs, SF_HDR_EVENT_ID, -1, c->event_id, -1);
        sf_tracker_begin(l->tracker, pos);
        if (l->settle)
                sf_settle_sent(l->settle, pos, sf_mono_ms());
        rc = sf_producer_send(
            l->kp, l->cfg->topic_sync_log, RD_KAFKA_PARTITION_UA, l->key.data,
            l->key.len, l->value.data, l->value.len, hdrs,
            (void *)(intptr_t)pos, PR_SEND_TIMEOUT_MS, err, sizeof(err));
        hdrs = NULL; /* owned by the producer, even on failure */
        if (!rc)
                sf_backlog_guard_sent(l->guard, l->key.len + l->value.len);
        if (rc && sf_producer_last_error(l->kp) ==
                      RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
                /* POS stays begun: the DLQ record's report finishes it */
                return pr_dead_letter_oversize(l, c, pos, 1,
                                               l->key.len + l->value.len);
        }
        if (rc)
                sf_error(PR_COMPONENT, "sending change %s: %s", c->event_id,
                         err);
        return rc;
}

/* Sleeps MS, serving delivery reports, unless a stop is requested. */
static void pr_wait(pr_loop_t *l, int ms)
{
        int64_t until = sf_mono_ms() + ms;

        while (!sf_should_stop() && sf_mono_ms() < until)
                sf_producer_poll(l->kp, PR_WAIT_STEP_MS);
}

/* Doubles a backoff up to backoff_max_ms. */
static int pr_backoff_next(const pr_loop_t *l, int ms)
{
        return ms < l->opts->backoff_max_ms / 2 ? ms * 2
                                                : l->opts->backoff_max_ms;
}

static sf_producer_t *pr_kafka_new(pr_loop_t *l, char *errstr,
                                   size_t errstr_size)
{
        return sf_producer_new(&l->cfg->kafka, l->opts->bootstraps,
                               PR_CLIENT_ID, pr_on_delivery, l, errstr,
                               errstr_size);
}

/* After a failure: waits for every outstanding report, acknowledges what
 * was delivered, backs off, and rewinds the source so that everything
 * after the last acknowledged position is read and sent again. A producer
 * that hit a fatal (idempotence) error is replaced. Returns 0 when reading
 * may go on, 1 when a stop was requested, -1 with errstr when the producer
 * cannot go on. */
static int pr_recover(pr_loop_t *l, int *backoff_ms, char *errstr,
                      size_t errstr_size)
{
        char err[512];

        while (sf_producer_outstanding(l->kp) > 0 && !sf_should_stop())
                sf_producer_poll(l->kp, PR_WAIT_STEP_MS);
        if (sf_should_stop())
                return 1;
        pr_ack_delivered(l);
        sf_warn(PR_COMPONENT,
                "resending the changes after position %lld in %d ms",
                (long long)l->acked, *backoff_ms);
        pr_wait(l, *backoff_ms);
        *backoff_ms = pr_backoff_next(l, *backoff_ms);
        if (sf_should_stop())
                return 1;
        if (rd_kafka_fatal_error(sf_producer_handle(l->kp), err, sizeof(err)) !=
            RD_KAFKA_RESP_ERR_NO_ERROR) {
                sf_producer_t *kp;

                sf_warn(PR_COMPONENT,
                        "Kafka producer failed for good (%s): "
                        "starting a new one",
                        err);
                kp = pr_kafka_new(l, errstr, errstr_size);
                if (!kp)
                        return -1;
                sf_producer_destroy(l->kp, 0);
                l->kp = kp;
        }
        if (sf_capture_rewind(l->cap, err, sizeof(err))) {
                sf_seterr(errstr, errstr_size, "rewinding the source: %s", err);
                return -1;
        }
        sf_tracker_destroy(l->tracker);
        l->tracker = sf_tracker_new();
        /* what was sent and not settled comes again, with its positions */
        if (l->settle)
                sf_settle_reset(l->settle);
        l->settled = l->acked;
        l->failed = 0;
        return 0;
}

/* Stop: no more reading; the reports that come back within the grace
 * period are acknowledged, the rest stays in the source for next time. */
static void pr_shutdown(pr_loop_t *l)
{
        int left = sf_producer_flush(l->kp, l->opts->flush_grace_ms);

        pr_ack_delivered(l);
        if (left > 0)
                sf_warn(PR_COMPONENT,
                        "%d changes were not confirmed by Kafka within %d "
                        "ms: they stay in the source and are sent again on "
                        "the next start",
                        left, l->opts->flush_grace_ms);
        if (l->settle && sf_settle_pending(l->settle) > 0)
                sf_info(PR_COMPONENT,
                        "%zu changes are not settled yet: they stay in the "
                        "source and are sent again on the next start",
                        sf_settle_pending(l->settle));
        sf_info(PR_COMPONENT,
                "stopped: %llu changes delivered (%llu of them to the DLQ as "
                "too large), %llu delivery failures",
                (unsigned long long)l->delivered,
                (unsigned long long)l->oversize,
                (unsigned long long)l->failures);
}

static void pr_opts_defaults(sf_producer_opts_t *o)
{
        if (o->max_in_flight <= 0)
                o->max_in_flight = 10000;
        if (o->flush_grace_ms <= 0)
                o->flush_grace_ms = 10000;
        if (o->backoff_initial_ms <= 0)
                o->backoff_initial_ms = 500;
        if (o->backoff_max_ms < o->backoff_initial_ms)
                o->backoff_max_ms = o->backoff_initial_ms > 30000
                                        ? o->backoff_initial_ms
                                        : 30000;
}

/* Reads and sends until a stop is requested (0) or recovery from a
 * failure is impossible (-1 with errstr). */
static int pr_loop(pr_loop_t *l, sf_change_t *batch, int batch_max,
                   char *errstr, size_t errstr_size)
{
        int poll_ms = l->cfg->source.poll_interval_ms > 0
                          ? l->cfg->source.poll_interval_ms
                          : 100;
        int backoff = l->opts->backoff_initial_ms;
        char err[512];
        int rc = 0;

        while (!sf_should_stop() && rc == 0) {
                uint64_t delivered = l->delivered;
                int room, n = 0;

                if (l->failed) {
                        rc = pr_recover(l, &backoff, errstr, errstr_size);
                        continue;
                }
                room = l->opts->max_in_flight -
                       (int)sf_tracker_inflight(l->tracker);
                if (sf_backlog_guard_room(l->guard) < room)
                        room = (int)sf_backlog_guard_room(l->guard);
                if (room > 0) {
                        n = sf_capture_poll(l->cap, batch,
                                            room < batch_max ? room : batch_max,
                                            err, sizeof(err));
                        if (n < 0) {
                                sf_error(PR_COMPONENT,
                                         "reading changes: %s (trying again "
                                         "in %d ms)",
                                         err, backoff);
                                pr_wait(l, backoff);
                                backoff = pr_backoff_next(l, backoff);
                                continue;
                        }
                }
                for (int i = 0; i < n; i++) {
                        int64_t pos = l->cap->src->positions_in_seq
                                          ? batch[i].seq
                                          : ++l->polled;

                        if (!l->failed && pr_send(l, &batch[i], pos))
                                l->failed = 1;
                        sf_change_clear(&batch[i]);
                }
                /* a source whose poll waits by itself needs no sleep */
                sf_producer_poll(
                    l->kp, n > 0 || (room > 0 && l->cap->src->poll_waits) ? 0
                           : room > 0 ? poll_ms
                                      : PR_WAIT_STEP_MS);
                pr_ack_delivered(l);
                if (l->delivered != delivered && !l->failed)
                        backoff = l->opts->backoff_initial_ms;
        }
        return rc < 0 ? -1 : 0;
}

int sf_producer_run(const sf_config_t *cfg, const sf_producer_opts_t *opts,
                    char *errstr, size_t errstr_size)
{
        sf_producer_opts_t o = *opts;
        pr_loop_t l;
        sf_change_t *batch = NULL;
        int batch_max, rc = -1;
        char err[512];

        memset(&l, 0, sizeof(l));
        /* nothing syncfleet reads back may be larger */
        sf_buf_init(&l.key, SF_MAX_RECORD_BYTES);
        sf_buf_init(&l.value, SF_MAX_RECORD_BYTES);
        pr_opts_defaults(&o);
        l.cfg = cfg;
        l.opts = &o;
        l.acked = -1;
        if (!o.bootstraps || !*o.bootstraps) {
                sf_seterr(errstr, errstr_size,
                          "no Kafka bootstrap servers to publish to");
                goto out;
        }
        l.cap = sf_capture_open(cfg, errstr, errstr_size);
        if (!l.cap || sf_capture_install(l.cap, errstr, errstr_size))
                goto out;
        l.kp = pr_kafka_new(&l, errstr, errstr_size);
        if (!l.kp)
                goto out;
        l.dlq = sf_dlq_open(cfg, l.kp, errstr, errstr_size);
        if (!l.dlq)
                goto out;
        l.dlq_kp = l.kp;
        if (cfg->kafka.embedded || cfg->source.ack == SF_ACK_SETTLED) {
                char *group = sf_asprintf("%s.router", cfg->kafka.topic_prefix);

                l.guard = sf_backlog_guard_new(
                    &cfg->kafka, o.bootstraps, cfg->topic_sync_log, group,
                    o.expect_router, err, sizeof(err));
                free(group);
                if (!l.guard && cfg->source.ack == SF_ACK_SETTLED) {
                        sf_seterr(errstr, errstr_size,
                                  "settled acknowledgement needs the "
                                  "router's committed offsets: %s",
                                  err);
                        goto out;
                }
                if (!l.guard)
                        sf_warn(PR_COMPONENT, "%s", err);
                /* a real cluster retains what its topics say */
                if (!cfg->kafka.embedded)
                        sf_backlog_guard_watch_only(l.guard);
        }
        l.settled = -1;
        if (cfg->source.ack == SF_ACK_SETTLED)
                l.settle = sf_settle_new();
        l.tracker = sf_tracker_new();
        batch_max = cfg->source.batch_size > 0 ? cfg->source.batch_size : 1000;
        batch = sf_calloc((size_t)batch_max, sizeof(*batch));
        sf_info(PR_COMPONENT,
                "publishing changes from %s to %s at %s (acknowledged to "
                "the source once %s)",
                cfg->source.path ? cfg->source.path : "the source",
                cfg->topic_sync_log, o.bootstraps,
                l.settle ? "settled" : "delivered");
        if (o.on_ready)
                o.on_ready(o.ready_arg);
        rc = pr_loop(&l, batch, batch_max, errstr, errstr_size);
        pr_shutdown(&l);
out:
        /* the Kafka client first: its last callbacks use the tracker */
        sf_backlog_guard_destroy(l.guard);
        sf_producer_destroy(l.kp, 0);
        sf_dlq_close(l.dlq);
        sf_tracker_destroy(l.tracker);
        sf_settle_destroy(l.settle);
        sf_capture_close(l.cap);
        sf_buf_free(&l.key);
        sf_buf_free(&l.value);
        free(batch);
        return rc;
}
