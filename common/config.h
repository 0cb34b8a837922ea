/*
 * The pipeline file (PIPELINE.md) loaded into typed structs.
 *
 * sf_config_load() reads the YAML with libyaml, substitutes ${VAR} from the
 * environment, checks every key, type, enum value and reference, compiles
 * every template, and reports *all* problems found, each as
 * "FILE:LINE:COLUMN: message". A loaded sf_config_t is immutable and may be
 * shared read-only by every thread of the process.
 */
#ifndef SF_CONFIG_H
#define SF_CONFIG_H

#include <stddef.h>

#include "template.h"

/* Where a value came from in the pipeline file (1-based). */
typedef struct sf_pos {
        int line;
        int col;
} sf_pos_t;

typedef struct sf_kv {
        char *key;
        char *value;
} sf_kv_t;

/* Table event bits (trigger.events). */
#define SF_EV_INSERT 0x1u
#define SF_EV_UPDATE 0x2u
#define SF_EV_DELETE 0x4u

/* The most partitions a topic can have: librdkafka refuses more
 * (RD_KAFKAP_PARTITIONS_MAX), in its admin API and its mock cluster. */
#define SF_KAFKA_PARTITIONS_MAX 100000

typedef struct sf_kafka_cfg {
        char *brokers;           /* "embedded" or "host:port,..." */
        int embedded;            /* brokers == "embedded" */
        char *topic_prefix;      /* default "syncfleet" */
        int partitions;          /* default 6 */
        int replication_factor;  /* default -1: min(3, brokers) */
        int min_insync_replicas; /* default -1: min(2, replication) */
        /* group.instance.id of the group consumers (static membership),
         * from --instance-id or SYNCFLEET_INSTANCE_ID; NULL: dynamic */
        char *instance_id;
        sf_kv_t *config; /* handed to librdkafka unchanged */
        size_t config_cnt;
} sf_kafka_cfg_t;

typedef enum sf_source_type {
        SF_SOURCE_NONE = 0, /* no source: section absent */
        SF_SOURCE_SQLITE,
        SF_SOURCE_POSTGRES,
} sf_source_type_t;

typedef enum sf_snapshot_mode {
        SF_SNAPSHOT_INITIAL = 0,
        SF_SNAPSHOT_NEVER,
} sf_snapshot_mode_t;

/* When the producer acknowledges a change to its source (source.ack). */
typedef enum sf_ack_mode {
        /* once Kafka's delivery report came back (a durable log) */
        SF_ACK_DELIVERED = 0,
        /* once the change is settled: routed, and every outbound record
         * from it accepted by its target or dead-lettered; the default on
         * the embedded broker, which keeps nothing across a restart */
        SF_ACK_SETTLED,
} sf_ack_mode_t;

typedef struct sf_source_cfg {
        sf_source_type_t type;
        char *path;           /* sqlite; resolved relative to the file's dir */
        int poll_interval_ms; /* sqlite; default 100 */
        int batch_size;       /* rows read per poll; default 1000 */
        char *dsn;            /* postgres */
        char *slot;           /* postgres; default "syncfleet" */
        char *publication;    /* postgres; default "syncfleet" */
        sf_snapshot_mode_t snapshot; /* postgres; default initial */
        sf_ack_mode_t ack; /* default: settled on the embedded broker */
        int ack_given;     /* source.ack was written */
        sf_pos_t pos;
} sf_source_cfg_t;

typedef struct sf_table_cfg {
        char *name;
        char **key; /* primary key columns, in order; at least one */
        size_t key_cnt;
        /* parent: events on this table redirect to the parent's record.
         * parent_cols[i] (a column of the parent) equals child_cols[i] (a
         * column of this table). */
        char *parent_name;
        struct sf_table_cfg *parent; /* resolved; NULL when no parent */
        char **parent_cols;
        char **child_cols;
        size_t parent_key_cnt;
        sf_pos_t pos;
} sf_table_cfg_t;

typedef enum sf_connector_type {
        SF_CONN_HTTP = 0,
        SF_CONN_FILE,
        SF_CONN_DATABASE,
        SF_CONN_KAFKA,
} sf_connector_type_t;

typedef enum sf_auth_type {
        SF_AUTH_NONE = 0,
        SF_AUTH_BASIC,
        SF_AUTH_BEARER,
        SF_AUTH_OAUTH2,
} sf_auth_type_t;

typedef enum sf_file_format {
        SF_FILE_JSONL = 0,
        SF_FILE_JSON,
} sf_file_format_t;

typedef struct sf_retry_cfg {
        int max_attempts;       /* default 10; counts the first try */
        int initial_backoff_ms; /* default 200 */
        int max_backoff_ms;     /* default 30000 */
} sf_retry_cfg_t;

typedef struct sf_connector_cfg {
        char *name;
        sf_connector_type_t type;
        /* http */
        char *base_url;
        sf_kv_t *headers;
        size_t header_cnt;
        sf_auth_type_t auth;
        char *username;          /* basic */
        char *password;          /* basic */
        char *token;             /* bearer */
        char *token_url;         /* oauth2 client credentials */
        char *client_id;         /* oauth2 */
        char *client_secret;     /* oauth2 */
        char *scope;             /* oauth2, optional */
        int timeout_ms;          /* default 5000 */
        int max_in_flight;       /* default 32 */
        double rate_limit_per_s; /* 0: unlimited */
        int tls_verify;          /* default 1 */
        /* CA certificates (PEM) that verify the target and the token_url,
         * instead of the system's; resolved relative to the pipeline
         * file's directory, readable at load. NULL: the system's. */
        char *ca_file;
        /* file */
        char *dir; /* resolved relative to the pipeline file's directory */
        sf_file_format_t format;
        /* kafka */
        char *topic;
        /* every connector */
        sf_retry_cfg_t retry;
        sf_pos_t pos;
} sf_connector_cfg_t;

typedef struct sf_router_cfg {
        int coalesce_ms; /* default 0 */
        int delay_ms;    /* default 0 */
} sf_router_cfg_t;

typedef struct sf_trigger_cfg {
        char *table;
        sf_table_cfg_t *table_ref; /* resolved */
        unsigned events;           /* SF_EV_* bits; default all three */
        int check_used_fields;     /* default 1 */
        int redirect;              /* default 1: child events go to root */
        sf_pos_t pos;
} sf_trigger_cfg_t;

typedef enum sf_source_mode {
        SF_MODE_EVENT = 0,
        SF_MODE_QUERY,
} sf_source_mode_t;

/* source.records.NAME: child records read in query mode. where maps a column
 * of the child table (key) to a field of the root record (value). */
typedef struct sf_records_cfg {
        char *name;
        char *table;
        sf_table_cfg_t *table_ref; /* resolved */
        sf_kv_t *where;
        size_t where_cnt;
        sf_pos_t pos;
} sf_records_cfg_t;

typedef struct sf_docsource_cfg {
        sf_source_mode_t mode;
        sf_records_cfg_t *records;
        size_t records_cnt;
} sf_docsource_cfg_t;

/* Where a document goes: target, request, response.target, error.target. */
typedef struct sf_target_cfg {
        char *connector;
        sf_connector_cfg_t *conn; /* resolved */
        char *method;             /* http; default PUT for targets */
        sf_template_t *path;      /* http; NULL means base_url itself */
        int has_on_delete;
        char *delete_method;        /* on_delete.method */
        sf_template_t *delete_path; /* on_delete.path; NULL: same path */
        int delete_skip;            /* on_delete: skip */
        char *table;                /* database */
        char *operation;            /* database: insert|update|upsert|delete */
        char **key;                 /* database */
        size_t key_cnt;
        char *topic; /* kafka: overrides the connector's */
        sf_pos_t pos;
} sf_target_cfg_t;

/* kind of subscriber */
typedef enum sf_action_kind {
        SF_KIND_MESSAGE = 0,
        SF_KIND_WEBSERVICE,
} sf_action_kind_t;

/* A message or a web service action: both subscribe to table events. */
typedef struct sf_action_cfg {
        char *name;
        sf_action_kind_t kind;
        sf_trigger_cfg_t trigger;
        sf_docsource_cfg_t source;
        /* message */
        sf_target_cfg_t target;
        sf_mapping_t *mapping;
        /* web service action */
        sf_target_cfg_t request;
        sf_mapping_t *request_body; /* request.body; may be NULL */
        int has_response;
        sf_target_cfg_t response_target;
        sf_mapping_t *response_mapping;
        int has_error;
        sf_target_cfg_t error_target;
        sf_mapping_t *error_mapping;
        /* Fields of the trigger table the action reads: the first segment
         * of every template reference of every mapping and path it has
         * (target, on_delete, request, response, error), whatever its name,
         * and the fields source.records.*.where reads. Of syncfleet's
         * names, @key.X, @before.X and @after.X count as X, a bare @key as
         * the key columns, the other @names not at all; references into
         * source.records children are dropped, and of an `each` only its
         * path counts. Sorted, unique. check_used_fields compares exactly
         * these; an action that reads a whole image ({{@after}}) has
         * check_used_fields forced off at load. */
        char **used_fields;
        size_t used_fields_cnt;
        sf_pos_t pos;
} sf_action_cfg_t;

typedef struct sf_config {
        char *file; /* as given to sf_config_load */
        char *dir;  /* directory of the file, for relative paths */
        int version;
        char *name;
        /* Where the pipeline keeps what must outlive a process on this
         * machine (state.h, dlq.h): state_dir resolved against DIR, by
         * default DIR/.syncfleet/NAME (characters of NAME other than
         * letters, digits, '.', '_' and '-' become '_'). Absolute. */
        char *state_dir;
        int state_dir_given; /* state_dir was written in the file */
        sf_kafka_cfg_t kafka;
        sf_source_cfg_t source;
        sf_table_cfg_t *tables;
        size_t table_cnt;
        sf_connector_cfg_t *connectors;
        size_t connector_cnt;
        sf_router_cfg_t router;
        /* messages first (kind MESSAGE), then web service actions, each in
         * file order. */
        sf_action_cfg_t *actions;
        size_t action_cnt;
        /* Topic names derived from kafka.topic_prefix. */
        char *topic_sync_log;            /* PREFIX.sync-log */
        char *topic_outbound_message;    /* PREFIX.outbound.message */
        char *topic_outbound_webservice; /* PREFIX.outbound.webservice */
        char *topic_dlq;                 /* PREFIX.dlq */
        /* What loads but deserves attention (TLS verification off,
         * credentials over http://, a reply copied whole into a table),
         * as lines "FILE:LINE:COLUMN: warning: message\n"; NULL: none.
         * `syncfleet validate` prints them, the other commands log them
         * at start. */
        char *warnings;
} sf_config_t;

/* Loads and validates PATH. On success returns the config and leaves errors
 * untouched. On failure returns NULL and appends every problem found to
 * *errors as lines "FILE:LINE:COLUMN: message\n" (caller frees *errors).
 * A file that cannot be read gives one line "FILE: reason". */
sf_config_t *sf_config_load(const char *path, char **errors);

/* Same, from a string; FILE in messages is NAME. */
sf_config_t *sf_config_load_string(const char *name, const char *yaml,
                                   char **errors);

void sf_config_destroy(sf_config_t *cfg); /* NULL is a no-op */

/* Lookups; NULL when absent. */
const sf_table_cfg_t *sf_config_table(const sf_config_t *cfg, const char *name);
const sf_connector_cfg_t *sf_config_connector(const sf_config_t *cfg,
                                              const char *name);
const sf_action_cfg_t *sf_config_action(const sf_config_t *cfg,
                                        const char *name);

/* The SF_EV_* bits change capture installs for TABLE: the events some action
 * subscribes to on TABLE itself, plus, when TABLE has a parent chain, all
 * three events if some action with redirect on (the default) subscribes to
 * update on its root table: an insert, update or delete of an order line is
 * an update of its order. */
unsigned sf_config_captured_events(const sf_config_t *cfg,
                                   const sf_table_cfg_t *table);

/* Writes the summary `syncfleet validate` prints on success: the captured
 * table events and, for each, the actions that subscribe to it. */
void sf_config_print_summary(const sf_config_t *cfg, void *file /* FILE* */);

/* The root of TABLE's parent chain (TABLE itself when it has no parent). */
const sf_table_cfg_t *sf_config_root_table(const sf_table_cfg_t *table);

#endif
