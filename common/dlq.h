/*
 * Dead letters: where a record goes that can never be processed, and how
 * `syncfleet dlq` reads them back.
 *
 * Every component dead-letters through one interface, sf_dlq_put. Where
 * the dead letter goes follows the broker:
 *
 *   - a real Kafka cluster: the topic cfg->topic_dlq, the failed record
 *     unchanged plus the headers of sf_dlq_headers_new (kafka.h). The put
 *     is done once the producer's delivery report says so.
 *   - the embedded broker (kafka.brokers: embedded, `syncfleet broker`),
 *     which keeps nothing past its process: the store DIR/dlq.db in the
 *     pipeline's state directory (state.h), a SQLite file in WAL mode that
 *     several processes may write at once (each waits for the others up
 *     to a busy timeout). A put is durable (synchronous=FULL) before it
 *     returns.
 *
 * The store has one row per dead letter: id (never reused), failed_at (ms
 * since the epoch), stage, action, error, attempts, origin topic,
 * partition and offset, event id, key, value, the value's size, the
 * record's own headers as JSON ([[name, value], ...], syncfleet's DLQ
 * headers left out) and replayed_at (set while `syncfleet dlq replay` has
 * sent the record and Kafka has not confirmed it yet; a confirmed record
 * is removed).
 *
 * Sizes. A record's key and value are stored whole as long as together
 * they are at most SF_MAX_RECORD_BYTES (8 MiB), which is as large as any
 * record syncfleet reads; the router and the workers dead-letter larger
 * records unread ("record larger than 8 MiB"), and for those the store
 * keeps the key but not the value (value NULL, value_size the size it had,
 * the error saying so), so a huge record cannot stall its component: it
 * is stored like any other. The same holds for a key alone over the cap.
 * The error is cut at SF_DLQ_MAX_ERROR bytes and the headers are dropped
 * when their JSON exceeds SF_DLQ_MAX_HEADERS bytes. On a topic, for the
 * same reason, a record is sent without its value, the error saying so
 * with the value's size and the limit, when it is larger than
 * SF_MAX_RECORD_BYTES, when the producer refuses it as larger than its
 * message.max.bytes, and when the broker refused it (without_value).
 */
#ifndef SF_DLQ_H
#define SF_DLQ_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "config.h"
#include "kafka.h"

#define SF_DLQ_MAX_ERROR   (16 * 1024)
#define SF_DLQ_MAX_HEADERS (1024 * 1024)

/* Outcomes of sf_dlq_put. */
#define SF_DLQ_STORED  0 /* durable now: the caller may acknowledge at once */
#define SF_DLQ_PENDING 1 /* enqueued: PRODUCER's delivery callback decides */

/* One record to dead-letter. Everything is borrowed for the call. */
typedef struct sf_dead_letter {
        const char *origin_topic;
        int32_t partition;
        int64_t offset; /* -1: none */
        const void *key;
        size_t key_len;
        const void *value;
        size_t value_len;
        const rd_kafka_headers_t *headers; /* the record's own, may be NULL */
        const char *error;
        const char *stage;
        int attempts;
        const char *action;   /* may be NULL: read from the record when it is
                                 an outbound record */
        const char *event_id; /* may be NULL: read from the
                                 syncfleet-event-id header */
        int without_value;    /* 1: the DLQ topic's broker refused the
                                 record as too large (sf_dlq_too_large on
                                 its delivery report): send it again
                                 without its value */
} sf_dead_letter_t;

typedef struct sf_dlq sf_dlq_t;

/* On the embedded broker (cfg->kafka.embedded): the store
 * <state_dir>/dlq.db, created when missing; else the topic cfg->topic_dlq
 * through PRODUCER (borrowed; it must outlive the sf_dlq_t). CFG is
 * borrowed too. NULL with errstr when the store cannot be opened. */
sf_dlq_t *sf_dlq_open(const sf_config_t *cfg, sf_producer_t *producer,
                      char *errstr, size_t errstr_size);

/* Dead-letters DL. SF_DLQ_STORED: durably stored before returning (the
 * caller may acknowledge at once); SF_DLQ_PENDING: enqueued on the topic,
 * PRODUCER's delivery callback gets OPAQUE; -1 with errstr (nothing
 * stored; try again later). */
int sf_dlq_put(sf_dlq_t *d, const sf_dead_letter_t *dl, void *opaque,
               char *errstr, size_t errstr_size);

/* 1 when ERR, the delivery report of a record sf_dlq_put sent, says the
 * broker will never take the record as it is (larger than the topic's
 * max.message.bytes): the caller puts it again with without_value set,
 * instead of trying the same record for ever. */
int sf_dlq_too_large(rd_kafka_resp_err_t err);

/* 1 when D writes the durable store, 0 when it writes the topic. */
int sf_dlq_is_store(const sf_dlq_t *d);

void sf_dlq_close(sf_dlq_t *d); /* NULL is a no-op */

/* --- Reading them back (syncfleet dlq) -------------------------------- */

/* One dead letter as read from the store or the topic. Owns its members. */
typedef struct sf_dlq_entry {
        int64_t id;            /* store: its row; topic: -1 */
        int32_t dlq_partition; /* topic: where it is; store: -1 */
        int64_t dlq_offset;    /* topic; store: -1 */
        int64_t failed_at_ms;  /* -1: unknown */
        char *stage;
        char *action; /* may be NULL */
        char *error;
        int attempts;
        char *origin_topic;
        int32_t origin_partition;
        int64_t origin_offset;
        char *event_id; /* may be NULL */
        char *key;      /* NULL: no key; NUL-terminated for printing */
        size_t key_len;
        int value_kept; /* 0: the store did not keep the value (too large) */
        /* With the payload only: */
        char *value; /* NULL: none kept; NUL-terminated for printing */
        size_t value_len;
        int64_t value_size; /* the value's size when it was dead-lettered */
        rd_kafka_headers_t *headers; /* the record's own; may be NULL */
        int64_t replayed_at_ms;      /* -1: not being replayed */
} sf_dlq_entry_t;

void sf_dlq_entry_clear(sf_dlq_entry_t *e);

/* "42" for a row of the store, "2:17" (partition:offset) on the topic. */
void sf_dlq_entry_id(const sf_dlq_entry_t *e, char *buf, size_t size);

/* Which dead letters a command works on. NULL strings and empty id lists
 * match everything; ERROR is a case-insensitive substring; failed_at must
 * be in [since_ms, until_ms). IDS are as sf_dlq_entry_id writes them. */
typedef struct sf_dlq_filter {
        const char *action;
        const char *stage;
        const char *error;
        int64_t since_ms; /* INT64_MIN: unbounded */
        int64_t until_ms; /* INT64_MAX: unbounded */
        char **ids;
        size_t id_cnt;
} sf_dlq_filter_t;

int sf_dlq_filter_match(const sf_dlq_filter_t *f, const sf_dlq_entry_t *e);

/* Called once per matching entry, in order; E is the callee's to keep
 * (it clears it). Returns 0 to go on, -1 to stop. */
typedef int(sf_dlq_each_cb)(void *opaque, sf_dlq_entry_t *e);

typedef struct sf_dlq_store sf_dlq_store_t;

/* The store of CFG's state directory, for reading, replay and drop. A
 * store that does not exist yet opens as an empty one (nothing is
 * created). NULL with errstr. */
sf_dlq_store_t *sf_dlq_store_open(const sf_config_t *cfg, char *errstr,
                                  size_t errstr_size);
/* The matching entries by failed_at, then id; with PAYLOAD their value and
 * headers too. 0, or -1 with errstr. */
int sf_dlq_store_each(sf_dlq_store_t *s, const sf_dlq_filter_t *f, int payload,
                      sf_dlq_each_cb *cb, void *opaque, char *errstr,
                      size_t errstr_size);
/* Entry ID with its payload into *OUT: 0, 1 when it is gone, -1 with
 * errstr. */
int sf_dlq_store_get(sf_dlq_store_t *s, int64_t id, sf_dlq_entry_t *out,
                     char *errstr, size_t errstr_size);
/* Sets (AT_MS >= 0) or clears (-1) an entry's replayed_at. 0 or -1. */
int sf_dlq_store_mark(sf_dlq_store_t *s, int64_t id, int64_t at_ms,
                      char *errstr, size_t errstr_size);
/* Removes entry ID (gone already is fine). 0 or -1. */
int sf_dlq_store_remove(sf_dlq_store_t *s, int64_t id, char *errstr,
                        size_t errstr_size);
void sf_dlq_store_close(sf_dlq_store_t *s); /* NULL is a no-op */

/* Reads the DLQ topic of CFG at BOOTSTRAPS from each partition's first to
 * its end offset as they are when the call starts, with a plain consumer
 * (no group, nothing committed). Entries come per partition in offset
 * order, each with its payload. 0, or -1 with errstr (also when the ends
 * are not reached within TIMEOUT_MS). */
int sf_dlq_topic_each(const sf_config_t *cfg, const char *bootstraps,
                      const sf_dlq_filter_t *f, int timeout_ms,
                      sf_dlq_each_cb *cb, void *opaque, char *errstr,
                      size_t errstr_size);

/* Times. ISO 8601 in UTC with milliseconds (2026-11-26T19:03:00.123Z). */
void sf_dlq_time_format(int64_t ms, char *buf, size_t size);
/* "2026-11-26", "2026-11-26T19:03", "...:00", "...:00.5", each with an
 * optional "Z" or "+02:00" (no zone: UTC), or a time before NOW_MS:
 * "90s", "10m", "2h", "7d". 0, or -1 when S is none of these. */
int sf_dlq_time_parse(const char *s, int64_t now_ms, int64_t *out_ms);

#endif
