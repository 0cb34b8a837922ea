/*
 * Kafka plumbing: the embedded broker, topic creation, an idempotent
 * producer that reports each record's delivery, and a group consumer that
 * stores an offset only up to the lowest record not yet done.
 *
 * A real broker list and the embedded broker go through exactly the same
 * client code; only topic creation differs (the embedded broker has its own
 * API and does not answer CreateTopics).
 *
 * Producers and consumers are not thread-safe: each is driven by one thread,
 * and its callbacks run on the thread that polls it.
 */
#ifndef SF_KAFKA_H
#define SF_KAFKA_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "config.h"

/* --- Embedded broker ---------------------------------------------------- */

typedef struct sf_broker sf_broker_t;

/* Starts librdkafka's mock cluster with BROKER_CNT brokers on loopback. */
sf_broker_t *sf_broker_new(int broker_cnt, char *errstr, size_t errstr_size);
/* "127.0.0.1:port,..."; valid until sf_broker_destroy. */
const char *sf_broker_bootstraps(const sf_broker_t *b);
/* Creates TOPIC with PARTITIONS partitions (replication 1); an existing
 * topic is left alone. */
int sf_broker_create_topic(sf_broker_t *b, const char *topic, int partitions,
                           char *errstr, size_t errstr_size);
void sf_broker_destroy(sf_broker_t *b); /* NULL is a no-op */

/* Creates the pipeline's four topics (sync-log, outbound.message,
 * outbound.webservice, dlq) with kafka.partitions partitions: through
 * EMBEDDED's API when it is not NULL, else with CreateTopics on the
 * cluster at BOOTSTRAPS, for the topics its metadata lacks, with
 * replication factor kafka.replication_factor (default min(3, brokers))
 * and min.insync.replicas kafka.min_insync_replicas (default min(2,
 * replication)). Topics that exist are used as they are; one with fewer
 * partitions (or, when kafka.replication_factor is set, fewer replicas)
 * than the pipeline's is logged as a warning naming both numbers. -1 with
 * errstr naming each topic the broker refused and its reason. */
int sf_kafka_create_topics(const sf_config_t *cfg, sf_broker_t *embedded,
                           const char *bootstraps, char *errstr,
                           size_t errstr_size);

/* 1 when a Kafka client of this process failed in a way retrying cannot
 * mend (the brokers refused its credentials, or their certificate is not
 * one it trusts), with the reason in BUF (may
 * be NULL); 0 otherwise. Such a failure was logged when it happened and
 * asked the process to stop (sf_request_stop). */
int sf_kafka_failure(char *buf, size_t size);

/* rd_kafka_metadata() that gives up as soon as a client of the process
 * failed for good (sf_kafka_failure: RD_KAFKA_RESP_ERR__AUTHENTICATION),
 * instead of waiting out TIMEOUT_MS: it asks in slices of 500 ms. */
rd_kafka_resp_err_t sf_kafka_metadata(rd_kafka_t *rk, int all_topics,
                                      rd_kafka_topic_t *only,
                                      const struct rd_kafka_metadata **md,
                                      int timeout_ms);

/* A client configuration: kafka.config entries, then bootstrap.servers =
 * BOOTSTRAPS, then client.id = CLIENT_ID. NULL with errstr naming the bad
 * property. */
rd_kafka_conf_t *sf_kafka_conf_new(const sf_kafka_cfg_t *k,
                                   const char *bootstraps,
                                   const char *client_id, char *errstr,
                                   size_t errstr_size);

/* --- Producer ----------------------------------------------------------- */

typedef struct sf_producer sf_producer_t;

/* Called once per record from sf_producer_poll/flush with the OPAQUE given
 * to sf_producer_send and the record's delivery result
 * (RD_KAFKA_RESP_ERR_NO_ERROR when it is durably written, acks=all). */
typedef void(sf_delivery_cb)(void *cb_arg, void *opaque,
                             rd_kafka_resp_err_t err);

/* Idempotent producer (enable.idempotence=true, acks=all). */
sf_producer_t *sf_producer_new(const sf_kafka_cfg_t *k, const char *bootstraps,
                               const char *client_id, sf_delivery_cb *cb,
                               void *cb_arg, char *errstr, size_t errstr_size);

/* Enqueues one record (copied). HEADERS may be NULL; ownership passes to the
 * producer even on failure. PARTITION is RD_KAFKA_PARTITION_UA to partition
 * by key. QUEUE_FULL is handled by polling and trying again until
 * TIMEOUT_MS passes. Returns 0, or -1 with errstr (the delivery callback is
 * then not called for this record). */
int sf_producer_send(sf_producer_t *p, const char *topic, int32_t partition,
                     const void *key, size_t key_len, const void *value,
                     size_t value_len, rd_kafka_headers_t *headers,
                     void *opaque, int timeout_ms, char *errstr,
                     size_t errstr_size);

/* Serves delivery reports; returns how many were served. */
int sf_producer_poll(sf_producer_t *p, int timeout_ms);

/* Waits up to TIMEOUT_MS for every record to be delivered or failed
 * (callbacks run). Returns how many records are still outstanding. */
int sf_producer_flush(sf_producer_t *p, int timeout_ms);

/* Inside a delivery callback: where the record went (its topic, returned,
 * and its partition and offset; offset -1 when it failed). NULL outside a
 * callback. */
const char *sf_producer_delivered_at(const sf_producer_t *p, int32_t *partition,
                                     int64_t *offset);

/* Why the last sf_producer_send failed (NO_ERROR when it did not):
 * MSG_SIZE_TOO_LARGE, for one, says the record can never be sent. */
rd_kafka_resp_err_t sf_producer_last_error(const sf_producer_t *p);

/* Records enqueued whose delivery report has not been served yet. */
int sf_producer_outstanding(const sf_producer_t *p);

rd_kafka_t *sf_producer_handle(sf_producer_t *p);

/* Flushes for up to TIMEOUT_MS, logs what was left, destroys. NULL no-op. */
void sf_producer_destroy(sf_producer_t *p, int timeout_ms);

/* Headers for a record sent to the DLQ: a copy of ORIG (may be NULL), then
 * syncfleet-error, -stage, -attempts, -origin ("topic/partition/offset") and
 * -failed-at (ISO 8601 UTC). */
rd_kafka_headers_t *sf_dlq_headers_new(const rd_kafka_headers_t *orig,
                                       const char *origin_topic,
                                       int32_t partition, int64_t offset,
                                       const char *error, const char *stage,
                                       int attempts);

/* --- Consumer group lag and the backlog guard (kafka_guard.c) ---------- */

/* One partition of a group's input topic: the committed offset (-1: none
 * yet), the partition's first and end offsets, and the records between
 * the group's position and the end. */
typedef struct sf_partition_lag {
        int32_t partition;
        int64_t committed;
        int64_t lo, hi;
        int64_t lag;
} sf_partition_lag_t;

/* The lag of every partition of TOPIC for the group of consumer handle RK
 * (its group.id; it need not subscribe): OffsetFetch and ListOffsets only,
 * which every broker answers. Returns the count with *OUT malloc'd, or -1
 * with errstr. */
int sf_group_lag_read(rd_kafka_t *rk, const char *topic, int timeout_ms,
                      sf_partition_lag_t **out, char *errstr,
                      size_t errstr_size);

/* Watches, from a thread of its own, how far consumer GROUP's committed
 * offsets on TOPIC are behind the partitions' ends, so that the owner,
 * which produces to TOPIC, can hold back before the group falls out of
 * what the broker retains (the embedded broker keeps ~5 MiB per
 * partition). Until GROUP has committed anything it is not waited for,
 * unless EXPECT_GROUP says it will come. NULL with errstr on failure. */
typedef struct sf_backlog_guard sf_backlog_guard_t;

sf_backlog_guard_t *sf_backlog_guard_new(const sf_kafka_cfg_t *k,
                                         const char *bootstraps,
                                         const char *topic, const char *group,
                                         int expect_group, char *errstr,
                                         size_t errstr_size);
/* The owner sent a record of BYTES to the topic (sizes the estimate), and
 * later got its delivery report (whatever its outcome). NULL: no-ops. */
void sf_backlog_guard_sent(sf_backlog_guard_t *g, size_t bytes);
void sf_backlog_guard_delivered(sf_backlog_guard_t *g);
/* How many more records may be sent now (INT64_MAX for a NULL or idle
 * guard); 0 while some partition's backlog is at the guard's budget. */
int64_t sf_backlog_guard_room(sf_backlog_guard_t *g);
/* sf_backlog_guard_room() == 0: send nothing new. */
int sf_backlog_guard_full(sf_backlog_guard_t *g);
/* The guard only watches: it never holds back (a real cluster retains what
 * its topics say), its committed offsets serve settled acknowledgement. */
void sf_backlog_guard_watch_only(sf_backlog_guard_t *g);
/* ON: someone waits for the group's commits, so look every 100 ms even
 * while the owner sends nothing (an idle guard looks every second). */
void sf_backlog_guard_hurry(sf_backlog_guard_t *g, int on);
/* The group's committed offset on PARTITION at the last check (the next
 * record it will read), -1 when it has none or no check answered yet.
 * Thread-safe, like every guard function. */
int64_t sf_backlog_guard_committed(sf_backlog_guard_t *g, int32_t partition);
/* How many checks got an answer so far: a change says the offsets are
 * fresh. */
uint64_t sf_backlog_guard_checks(sf_backlog_guard_t *g);
void sf_backlog_guard_destroy(sf_backlog_guard_t *g); /* NULL is a no-op */

/* --- Offset tracking ---------------------------------------------------- */

/* The offsets of one partition that were handed out and are not done yet.
 * Offsets are begun in increasing order and may be done in any order; the
 * committable offset is the lowest unfinished one, or one past the highest
 * begun when none is unfinished. */
typedef struct sf_tracker sf_tracker_t;

sf_tracker_t *sf_tracker_new(void);
void sf_tracker_begin(sf_tracker_t *t, int64_t offset);
/* Marks OFFSET done. Returns the committable offset if it moved, else -1.
 * An offset never begun is ignored (returns -1). */
int64_t sf_tracker_done(sf_tracker_t *t, int64_t offset);
/* -1 when nothing was begun yet. */
int64_t sf_tracker_committable(const sf_tracker_t *t);
size_t sf_tracker_inflight(const sf_tracker_t *t);
void sf_tracker_destroy(sf_tracker_t *t); /* NULL is a no-op */

/* --- Consumer ----------------------------------------------------------- */

typedef struct sf_consumer sf_consumer_t;

/* Identifies one record handed out by sf_consumer_poll. EPOCH changes when
 * the partition is revoked, so a late sf_consumer_done for a record of a
 * lost assignment stores nothing. */
typedef struct sf_offset_ref {
        int topic_idx; /* index into the topics given to sf_consumer_new */
        int32_t partition;
        int64_t offset;
        uint32_t epoch;
} sf_offset_ref_t;

/* Told which partitions are about to be revoked, before their offsets are
 * committed: in-flight work on them will not be acknowledged. */
typedef void(sf_revoke_cb)(void *opaque,
                           const rd_kafka_topic_partition_list_t *parts);

/* Group consumer: enable.auto.offset.store=false, auto commit of stored
 * offsets, partition.assignment.strategy=cooperative-sticky (eager
 * protocols are handled too), auto.offset.reset=earliest, and
 * group.instance.id = k->instance_id when that is set. */
sf_consumer_t *sf_consumer_new(const sf_kafka_cfg_t *k, const char *bootstraps,
                               const char *group, const char *client_id,
                               const char *const *topics, size_t topic_cnt,
                               char *errstr, size_t errstr_size);

void sf_consumer_set_revoke_cb(sf_consumer_t *c, sf_revoke_cb *cb,
                               void *opaque);

/* Returns the next record (caller destroys it with
 * rd_kafka_message_destroy) and registers it in-flight in *REF, or NULL when
 * nothing arrived within TIMEOUT_MS. Consumer errors are logged here and
 * never returned as records. */
rd_kafka_message_t *sf_consumer_poll(sf_consumer_t *c, int timeout_ms,
                                     sf_offset_ref_t *ref);

/* Marks a record done (acknowledged downstream or dead-lettered) and stores
 * the partition's offset up to its lowest unfinished record. */
void sf_consumer_done(sf_consumer_t *c, const sf_offset_ref_t *ref);

/* Records handed out and not done, over all partitions. */
size_t sf_consumer_inflight(const sf_consumer_t *c);

/* Pauses (1) or resumes (0) fetching on every assigned partition, for
 * backpressure. Records already fetched still come out of poll. */
void sf_consumer_pause(sf_consumer_t *c, int pause);

/* Commits stored offsets synchronously. */
int sf_consumer_commit(sf_consumer_t *c, char *errstr, size_t errstr_size);

rd_kafka_t *sf_consumer_handle(sf_consumer_t *c);

/* Commits what is stored, leaves the group, destroys. NULL is a no-op. */
void sf_consumer_destroy(sf_consumer_t *c);

#endif
