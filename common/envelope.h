/*
 * The record formats of DESIGN.md ("Topics and records"): the sync-log
 * change envelope and the outbound record. Their JSON (canonical printing,
 * exact integers) is json.h's.
 */
#ifndef SF_ENVELOPE_H
#define SF_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "json.h"
#include "sf.h"

/* Header names. */
#define SF_HDR_EVENT_ID  "syncfleet-event-id"
#define SF_HDR_ERROR     "syncfleet-error"
#define SF_HDR_STAGE     "syncfleet-stage"
#define SF_HDR_ATTEMPTS  "syncfleet-attempts"
#define SF_HDR_ORIGIN    "syncfleet-origin"
#define SF_HDR_FAILED_AT "syncfleet-failed-at"

/* Largest record syncfleet accepts from a topic (key + value). */
#define SF_MAX_RECORD_BYTES (8u * 1024 * 1024)

/* Operation codes of the sync-log (Debezium's). */
typedef enum sf_op {
        SF_OP_CREATE = 'c',
        SF_OP_UPDATE = 'u',
        SF_OP_DELETE = 'd',
        SF_OP_READ = 'r', /* snapshot */
} sf_op_t;

/* "insert" / "update" / "delete" for c/r, u, d. */
const char *sf_op_event_name(sf_op_t op);

/* One row change. Strings and cJSON trees are owned by the struct. */
typedef struct sf_change {
        sf_op_t op;
        int64_t ts_ms;   /* commit time at the source */
        char *connector; /* "sqlite" | "postgres" | ... */
        char *db;
        char *schema; /* may be NULL */
        char *table;
        char *lsn;     /* may be NULL */
        int64_t txid;  /* -1 when unknown */
        int64_t seq;   /* position of the change within its source */
        cJSON *key;    /* object: primary key columns */
        cJSON *before; /* object or NULL (insert) */
        cJSON *after;  /* object or NULL (delete) */
        /* A source may write the key and the images as canonical JSON
         * text itself instead of building trees (capture from PostgreSQL
         * does, for speed): a part's text, when set, is used as it is and
         * its tree is NULL. Parsed changes always have trees. */
        char *key_text;
        char *before_text;
        char *after_text;
        char *event_id; /* deterministic from the source position */
} sf_change_t;

/* Key: {"key":{...},"table":"t"}, canonical. malloc'd. */
char *sf_change_key_json(const sf_change_t *c);
/* Value: {"op":..,"ts_ms":..,"source":{..},"before":..,"after":..}. Compact,
 * canonical key order. malloc'd. */
char *sf_change_value_json(const sf_change_t *c);
/* The same appended to OUT (0, or -1 leaving OUT as it was). */
int sf_change_key_append(sf_buf_t *out, const sf_change_t *c);
int sf_change_value_append(sf_buf_t *out, const sf_change_t *c);

/* Parses a sync-log record. KEY may be NULL (then table and key come from
 * the value: source.table, and the key from the after/before image is not
 * derivable, so the key is required unless the value carries "key").
 * EVENT_ID is the header value (may be NULL: then the id is derived from
 * source fields). Returns 0, or -1 with errstr saying what is wrong
 * ("value is not JSON", "op \"x\" is not one of c, u, d, r", ...). */
int sf_change_parse(const void *key, size_t key_len, const void *value,
                    size_t value_len, const char *event_id, sf_change_t *out,
                    char *errstr, size_t errstr_size);
void sf_change_clear(sf_change_t *c); /* frees members, keeps c */

/* One outbound record: one subscriber, one root record. */
typedef struct sf_outbound {
        char *kind; /* "message" | "webservice" */
        char *action;
        char *event;      /* "insert" | "update" | "delete" */
        char *table;      /* the table the change happened on */
        cJSON *key;       /* its key */
        char *root_table; /* after redirect; equals table without one */
        cJSON *root_key;
        cJSON *record; /* image to export (after, or before on delete);
                        * may be NULL for a redirected delete */
        cJSON *before; /* may be NULL */
        char *event_id;
        int64_t source_ts_ms;
        int64_t routed_ts_ms;
} sf_outbound_t;

/* Key: {"action":"a","key":{ROOT KEY},"table":"ROOT TABLE"}, canonical. */
char *sf_outbound_key_json(const sf_outbound_t *o);
char *sf_outbound_value_json(const sf_outbound_t *o);
int sf_outbound_parse(const void *value, size_t value_len, sf_outbound_t *out,
                      char *errstr, size_t errstr_size);
void sf_outbound_clear(sf_outbound_t *o);

#endif
