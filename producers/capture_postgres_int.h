/*
 * Change capture from PostgreSQL: what the capture_postgres*.c files share.
 *
 *   capture_postgres.c           the source: lifecycle, acknowledgement,
 *                                reconnects, heartbeat
 *   capture_postgres_conn.c      connections, slot, publication, the
 *                                replication stream
 *   capture_postgres_origin.c    replication origins (write-back, snapshot)
 *   capture_postgres_decode.c    pgoutput messages into sf_change_t
 *   capture_postgres_types.c     column values into JSON, LSN text
 *   capture_postgres_json.c      row images and keys as canonical JSON
 *   capture_postgres_snapshot.c  the initial snapshot (op "r")
 */
#ifndef SF_CAPTURE_POSTGRES_INT_H
#define SF_CAPTURE_POSTGRES_INT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "capture_postgres.h"
#include "config.h"
#include "envelope.h"
#include "sf.h"

#define PG_COMPONENT "capture-postgres"

/* The member an unchanged TOASTed value is replaced by in an after image,
 * as {"__syncfleet_unchanged_toast":true}: PostgreSQL does not send a large
 * value an update left alone, unless the table has REPLICA IDENTITY FULL
 * (then the value is taken from the before image). */
#define SF_PG_UNCHANGED_TOAST "__syncfleet_unchanged_toast"

/* The prefix of the replication origin that marks a finished snapshot:
 * "syncfleet-snapshot:<slot>" exists once every row of the initial snapshot
 * taken with that slot was delivered. */
#define SF_PG_SNAPSHOT_ORIGIN "syncfleet-snapshot:"

/* --- Values (capture_postgres_types.c) ----------------------------------- */

/* Type OIDs of pg_type.h (stable across releases). */
#define PG_BOOLOID        16
#define PG_BYTEAOID       17
#define PG_INT8OID        20
#define PG_INT2OID        21
#define PG_INT4OID        23
#define PG_OIDOID         26
#define PG_JSONOID        114
#define PG_FLOAT4OID      700
#define PG_FLOAT8OID      701
#define PG_DATEOID        1082
#define PG_TIMEOID        1083
#define PG_TIMESTAMPOID   1114
#define PG_TIMESTAMPTZOID 1184
#define PG_TIMETZOID      1266
#define PG_NUMERICOID     1700
#define PG_JSONBOID       3802

/* The JSON value of a column of type TYPE whose text output (in the session
 * settings of sf_pg_session_sql) is TEXT[0..LEN-1]: integers and booleans as
 * numbers and booleans (integers as cJSON raw digits: exact at any
 * magnitude, printed as they came), float NaN/Infinity and numeric as strings,
 * json/jsonb parsed, bytea as base64, timestamps and times in ISO 8601 (UTC as
 * "Z"), everything else as its text. Never NULL. */
cJSON *sf_pg_value_json(uint32_t type, const char *text, size_t len);
/* The same value appended to B as canonical JSON, the bytes
 * sf_json_canonical gives for sf_pg_value_json's tree, mostly without
 * building one. 0, or -1 when B's cap was hit. */
int sf_pg_value_append(sf_buf_t *b, uint32_t type, const char *text,
                       size_t len);

/* The SQL that puts a session in the settings sf_pg_value_json expects. */
extern const char sf_pg_session_sql[];

/* "X/Y" as PostgreSQL prints an LSN, into BUF (at least 20 bytes). */
void sf_pg_lsn_format(uint64_t lsn, char *buf, size_t size);
/* Parses "X/Y"; -1 when S is not an LSN. */
int sf_pg_lsn_parse(const char *s, uint64_t *lsn);

/* Base64 (RFC 4648, padded) of P[0..N-1], malloc'd. */
char *sf_pg_base64(const unsigned char *p, size_t n);

/* --- pgoutput decoding (capture_postgres_decode.c) ---------------------- */

/* A captured table, resolved at install. */
typedef struct sf_pg_table {
        char *name;   /* the pipeline's name: sf_change_t.table */
        char *schema; /* where it lives in the database */
        char *relname;
        char **key; /* the pipeline's key columns (owned copies) */
        size_t key_cnt;
        unsigned events; /* SF_EV_* bits captured */
} sf_pg_table_t;

typedef struct sf_pg_column {
        char *name;
        uint32_t type;
        int key; /* part of the replica identity */
} sf_pg_column_t;

/* One column as an image writes it: its index in the row, type and
 * replica identity flag, and its name as a canonical JSON member name
 * with the colon ("\"id\":"). */
typedef struct sf_pg_member {
        int col; /* -1: a key column the relation does not have */
        uint32_t type;
        int key;
        char *name;
        size_t name_len;
        const char *sort_name; /* only while the layout is built */
} sf_pg_member_t;

/* How the images and the key of one relation are written as canonical
 * JSON (capture_postgres_json.c): its columns, and the pipeline's key
 * columns of its table, each in name order. */
typedef struct sf_pg_layout {
        sf_pg_member_t *cols;
        int ncols;
        sf_pg_member_t *keys;
        int nkeys;
} sf_pg_layout_t;

/* A relation as the last Relation message described it. */
typedef struct sf_pg_relation {
        uint32_t relid;
        char *schema;
        char *relname;
        char identity; /* relreplident: d, n, f or i */
        sf_pg_column_t *cols;
        int ncols;
        const sf_pg_table_t *table; /* NULL: not captured */
        sf_pg_layout_t layout;      /* built when captured */
} sf_pg_relation_t;

/* One column of a tuple as it came: kind 'n' (null), 'u' (unchanged TOAST),
 * 't' (text) or 'b' (binary), and for t/b the bytes. */
typedef struct sf_pg_datum {
        char kind;
        const char *p;
        uint32_t len;
} sf_pg_datum_t;

/* --- Images as canonical JSON (capture_postgres_json.c) ---------------- */

/* Builds L for a row of the N columns COLS (their names are copied) and
 * the key columns of T (NULL: no key). */
void sf_pg_layout_init(sf_pg_layout_t *l, const sf_pg_column_t *cols, int n,
                       const sf_pg_table_t *t);
void sf_pg_layout_free(sf_pg_layout_t *l); /* keeps the struct */

/* Appends the image of the row TUP as a canonical JSON object: every
 * column, or with KEY_ONLY the replica identity columns. A TOASTed value
 * the change left alone is taken from FULL_OLD (the old row under REPLICA
 * IDENTITY FULL) when given, else it is {"__syncfleet_unchanged_toast":true}
 * (and left out of a key-only image). 0, or -1 when B's cap was hit. */
int sf_pg_image_append(sf_buf_t *b, const sf_pg_layout_t *l,
                       const sf_pg_datum_t *tup, int key_only,
                       const sf_pg_datum_t *full_old);
/* Appends the key taken from the same image: an object of the table's key
 * columns, a column the image lacks as null. */
int sf_pg_key_append(sf_buf_t *b, const sf_pg_layout_t *l,
                     const sf_pg_datum_t *tup, int key_only,
                     const sf_pg_datum_t *full_old);

/* What one pgoutput message was. */
typedef enum sf_pg_kind {
        SF_PG_MSG_BEGIN = 1,
        SF_PG_MSG_COMMIT,
        SF_PG_MSG_ORIGIN,
        SF_PG_MSG_RELATION,
        SF_PG_MSG_CHANGE,   /* a row change: *out is filled */
        SF_PG_MSG_SKIPPED,  /* a row change that is not handed out: its event
                             * is not captured, it comes from syncfleet's
                             * origin, or it is at or before the resume point */
        SF_PG_MSG_TRUNCATE, /* d->truncated names the captured tables */
        SF_PG_MSG_OTHER,    /* Type, Message: nothing to do */
} sf_pg_kind_t;

typedef struct sf_pg_decoder {
        /* set by the owner */
        const char *db;    /* database name: sf_change_t.db */
        const char *sysid; /* system identifier, part of every event id */
        const sf_pg_table_t *tables; /* borrowed */
        size_t table_cnt;
        /* Changes at or before (resume_lsn, resume_seq) are skipped: they
         * were handed out before a reconnect or acknowledged before a
         * rewind. */
        uint64_t resume_lsn;
        int64_t resume_seq;

        /* the relations of this stream */
        sf_pg_relation_t *rels;
        size_t rel_cnt;

        /* the transaction being decoded */
        int in_tx;
        uint64_t final_lsn; /* its commit record: source.lsn */
        char lsn_text[24];
        int64_t commit_ts_ms;
        uint32_t xid;
        int64_t seq;        /* row changes so far, this one included */
        char *origin;       /* its replication origin, or NULL */
        int from_syncfleet; /* the origin is syncfleet's: skip it */
        /* set by Commit */
        uint64_t commit_lsn;
        uint64_t end_lsn;

        /* the captured tables of the last Truncate, ", "-separated */
        sf_buf_t truncated;

        sf_buf_t scratch; /* the image being written */

        /* scratch tuples, reused */
        sf_pg_datum_t *old_tup, *new_tup;
        int tup_cap;

        uint64_t changes;        /* handed out */
        uint64_t origin_skipped; /* changes of syncfleet's own writes */
} sf_pg_decoder_t;

void sf_pg_decoder_init(sf_pg_decoder_t *d);
/* Forgets the relations and the open transaction: a new stream starts. */
void sf_pg_decoder_reset(sf_pg_decoder_t *d);
void sf_pg_decoder_free(sf_pg_decoder_t *d); /* keeps the struct */

/* Decodes one pgoutput message (proto_version 1) MSG[0..LEN-1]. A row
 * change of a captured table and event fills OUT (the caller clears it
 * with sf_change_clear) and returns SF_PG_MSG_CHANGE. Returns the kind, or -1
 * with errstr for a message that is malformed or out of place. */
int sf_pg_decode(sf_pg_decoder_t *d, const char *msg, size_t len,
                 sf_change_t *out, char *errstr, size_t errstr_size);

/* The event id of the change with SEQ in the transaction committed at
 * FINAL_LSN: "postgres:<sysid>:<db>:<lsn>:<seq>". malloc'd. */
char *sf_pg_event_id(const char *sysid, const char *db, const char *lsn,
                     int64_t seq);

/* --- Connections (capture_postgres_conn.c) ------------------------------ */

/* Connects to DSN, as a logical replication connection when REPLICATION
 * (replication=database), and applies sf_pg_session_sql. */
PGconn *sf_pg_connect(const char *dsn, int replication, char *errstr,
                      size_t errstr_size);
/* Runs SQL expecting no rows (or ignoring them); PARAMS may be NULL. */
int sf_pg_exec(PGconn *conn, const char *sql, int nparams,
               const char *const *params, char *errstr, size_t errstr_size);
/* Runs SQL expecting rows; NULL with errstr on failure. */
PGresult *sf_pg_query(PGconn *conn, const char *sql, int nparams,
                      const char *const *params, char *errstr,
                      size_t errstr_size);
/* "WHAT: the server's sentence" for a failed RES (or CONN's error). */
void sf_pg_result_err(PGresult *res, PGconn *conn, const char *what,
                      char *errstr, size_t errstr_size);
/* "ident" quoted for SQL, malloc'd. */
char *sf_pg_quote_ident(PGconn *conn, const char *ident);

/* Resolves the captured tables of CFG in the database of CONN, checking
 * that each exists, has the key columns, and has a replica identity that
 * lets a delete name its row. Returns 0 with *TABLES and *CNT (free with
 * sf_pg_tables_free), or -1 with errstr. */
int sf_pg_tables_resolve(PGconn *conn, const sf_config_t *cfg,
                         sf_pg_table_t **tables, size_t *cnt, char *errstr,
                         size_t errstr_size);
void sf_pg_tables_free(sf_pg_table_t *tables, size_t cnt);

/* Creates publication PUB for exactly TABLES, or alters it to match.
 * *CHANGED tells whether anything was done. */
int sf_pg_publication_sync(PGconn *conn, const char *pub,
                           const sf_pg_table_t *tables, size_t cnt,
                           int *changed, char *errstr, size_t errstr_size);

typedef struct sf_pg_slot_info {
        int exists;
        int active;
        uint64_t confirmed_flush;
} sf_pg_slot_info_t;

/* Looks SLOT up; -1 with errstr when it exists but is not a pgoutput slot
 * of this database. */
int sf_pg_slot_info(PGconn *conn, const char *slot, sf_pg_slot_info_t *info,
                    char *errstr, size_t errstr_size);
/* Creates SLOT on the replication connection REPL. With EXPORT, *SNAPSHOT
 * gets the exported snapshot's name (valid until REPL runs another command
 * or closes) and *CONSISTENT the LSN the stream starts after. */
int sf_pg_slot_create(PGconn *repl, const char *slot, int export,
                      char **snapshot, uint64_t *consistent, char *errstr,
                      size_t errstr_size);
int sf_pg_slot_drop(PGconn *conn, const char *slot, char *errstr,
                    size_t errstr_size);

/* Replication origins by name: exists (1/0, -1 on error), create with
 * progress LSN, drop when present. */
int sf_pg_origin_exists(PGconn *conn, const char *name, char *errstr,
                        size_t errstr_size);
int sf_pg_origin_create(PGconn *conn, const char *name, uint64_t lsn,
                        char *errstr, size_t errstr_size);
int sf_pg_origin_drop(PGconn *conn, const char *name, char *errstr,
                      size_t errstr_size);

/* IDENTIFY_SYSTEM on REPL: the system identifier, malloc'd into *SYSID. */
int sf_pg_identify(PGconn *repl, char **sysid, char *errstr,
                   size_t errstr_size);
/* START_REPLICATION SLOT ... LOGICAL START (proto_version 1, PUB). */
int sf_pg_stream_start(PGconn *repl, const char *slot, const char *pub,
                       uint64_t start, char *errstr, size_t errstr_size);
/* Sends a Standby Status Update (write, flush and apply positions). */
int sf_pg_stream_status(PGconn *repl, uint64_t write, uint64_t flush, int reply,
                        char *errstr, size_t errstr_size);

/* --- Snapshot (capture_postgres_snapshot.c) ----------------------------- */

typedef struct sf_pg_snapshot sf_pg_snapshot_t;

/* Opens a connection to DSN that imports snapshot NAME (exported by the
 * slot's creation, consistent at LSN CONSISTENT) and will read TABLES
 * (borrowed) in order, those whose captured events include an insert. */
sf_pg_snapshot_t *sf_pg_snapshot_new(const char *dsn, const char *name,
                                     uint64_t consistent,
                                     const sf_pg_table_t *tables, size_t cnt,
                                     const char *db, const char *sysid,
                                     char *errstr, size_t errstr_size);
/* Reads up to MAX rows into OUT as op "r" changes. Each row's table index
 * goes to TABLE_IDX[i]. Returns n >= 0 (0 once every table was read), or
 * -1 with errstr. */
int sf_pg_snapshot_read(sf_pg_snapshot_t *s, sf_change_t *out, int *table_idx,
                        int max, char *errstr, size_t errstr_size);
/* Every table was read. */
int sf_pg_snapshot_done(const sf_pg_snapshot_t *s);
/* The next read starts over at table FROM (rows of tables before it were
 * all delivered). */
int sf_pg_snapshot_restart(sf_pg_snapshot_t *s, int from, char *errstr,
                           size_t errstr_size);
/* Ends the snapshot's transaction and records in the database that the
 * snapshot of SLOT is complete. */
int sf_pg_snapshot_finish(sf_pg_snapshot_t *s, const char *slot, char *errstr,
                          size_t errstr_size);
void sf_pg_snapshot_destroy(sf_pg_snapshot_t *s); /* NULL is a no-op */

#endif
