/*
 * The embedded mode's dead-letter store: STATE_DIR/dlq.db (dlq.h).
 *
 * Several processes (the components of one pipeline, `syncfleet dlq`) use
 * one file: it is in WAL mode, every statement waits for the others up to
 * a busy timeout, and every write is one short transaction, durable on
 * return (synchronous=FULL), so a component may acknowledge a record the
 * moment its dead letter is stored.
 */
#include "dlq_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "envelope.h"
#include "sf.h"
#include "state.h"

#define SF_DLQ_FILE    "dlq.db"
#define SF_DLQ_BUSY_MS 10000

static const char sf_dlq_schema[] =
    "CREATE TABLE IF NOT EXISTS dead_letters ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " failed_at INTEGER NOT NULL," /* ms since the epoch */
    " stage TEXT NOT NULL,"
    " action TEXT,"
    " error TEXT NOT NULL,"
    " attempts INTEGER NOT NULL,"
    " origin_topic TEXT NOT NULL,"
    " origin_partition INTEGER NOT NULL,"
    " origin_offset INTEGER NOT NULL,"
    " event_id TEXT,"
    " key BLOB,"
    " value BLOB," /* NULL: not kept (too large) */
    " value_size INTEGER NOT NULL,"
    " headers TEXT," /* JSON [[name, value], ...] */
    " replayed_at INTEGER);"
    "CREATE INDEX IF NOT EXISTS dead_letters_order"
    " ON dead_letters (failed_at, id);";

#define SF_DLQ_COLS                                                            \
        "id, failed_at, stage, action, error, attempts, origin_topic, "        \
        "origin_partition, origin_offset, event_id, key, value_size, "         \
        "replayed_at, value IS NOT NULL"

struct sf_dlq_store {
        char *path;
        sqlite3 *db; /* NULL: the file does not exist (nothing stored) */
        sqlite3_stmt *insert;
};

static int sf_store_err(sf_dlq_store_t *s, const char *what, char *errstr,
                        size_t errstr_size)
{
        sf_seterr(errstr, errstr_size, "DLQ store %s: %s: %s", s->path, what,
                  s->db ? sqlite3_errmsg(s->db) : "out of memory");
        return -1;
}

static int sf_store_exec(sf_dlq_store_t *s, const char *sql, const char *what,
                         char *errstr, size_t errstr_size)
{
        char *msg = NULL;

        if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) == SQLITE_OK)
                return 0;
        sf_seterr(errstr, errstr_size, "DLQ store %s: %s: %s", s->path, what,
                  msg ? msg : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        return -1;
}

/* WAL, durable commits, the schema. Processes that open the store at the
 * same moment create the schema one after the other (BEGIN IMMEDIATE
 * waits for the write lock under the busy timeout). */
static int sf_store_setup(sf_dlq_store_t *s, char *errstr, size_t errstr_size)
{
        sqlite3_stmt *st = NULL;
        int step = SQLITE_ERROR;

        sqlite3_busy_timeout(s->db, SF_DLQ_BUSY_MS);
        /* Switching a new file to WAL takes it exclusively, and two
         * connections doing so at once make SQLite refuse one at once
         * rather than wait (it would deadlock): try again for as long as
         * the busy timeout. */
        for (int64_t until = sf_mono_ms() + SF_DLQ_BUSY_MS;;) {
                if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1,
                                       &st, NULL) == SQLITE_OK)
                        step = sqlite3_step(st);
                /* finalized at once: an open statement would hold a read
                 * transaction, and writing from it fails without waiting */
                sqlite3_finalize(st);
                st = NULL;
                if ((step != SQLITE_BUSY && step != SQLITE_LOCKED) ||
                    sf_mono_ms() >= until)
                        break;
                sqlite3_sleep(10);
        }
        if (step != SQLITE_ROW)
                return sf_store_err(s, "cannot switch to WAL mode", errstr,
                                    errstr_size);
        if (sf_store_exec(s, "PRAGMA synchronous=FULL", "synchronous", errstr,
                          errstr_size))
                return -1;
        if (sf_store_exec(s, "BEGIN IMMEDIATE", "creating the schema", errstr,
                          errstr_size))
                return -1;
        if (sf_store_exec(s, sf_dlq_schema, "creating the schema", errstr,
                          errstr_size) ||
            sf_store_exec(s, "PRAGMA user_version=1; COMMIT",
                          "creating the schema", errstr, errstr_size)) {
                sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
                return -1;
        }
        return 0;
}

static sf_dlq_store_t *sf_store_open(const sf_config_t *cfg, int create,
                                     char *errstr, size_t errstr_size)
{
        sf_dlq_store_t *s;
        int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;

        if (!cfg->state_dir) {
                sf_seterr(errstr, errstr_size,
                          "the pipeline has no state directory for its DLQ "
                          "store");
                return NULL;
        }
        s = sf_calloc(1, sizeof(*s));
        s->path = sf_asprintf("%s/%s", cfg->state_dir, SF_DLQ_FILE);
        if (create) {
                sf_state_t *st = sf_state_open(cfg, 0, errstr, errstr_size);

                if (!st)
                        goto fail;
                sf_state_close(st);
                flags |= SQLITE_OPEN_CREATE;
        } else if (access(s->path, F_OK) && errno == ENOENT) {
                return s; /* nothing was ever dead-lettered */
        }
        if (sqlite3_open_v2(s->path, &s->db, flags, NULL) != SQLITE_OK) {
                sf_store_err(s, "cannot open", errstr, errstr_size);
                goto fail;
        }
        if (sf_store_setup(s, errstr, errstr_size))
                goto fail;
        return s;
fail:
        sf_dlq_store_close(s);
        return NULL;
}

sf_dlq_store_t *sf_dlq_store_create(const sf_config_t *cfg, char *errstr,
                                    size_t errstr_size)
{
        return sf_store_open(cfg, 1, errstr, errstr_size);
}

sf_dlq_store_t *sf_dlq_store_open(const sf_config_t *cfg, char *errstr,
                                  size_t errstr_size)
{
        return sf_store_open(cfg, 0, errstr, errstr_size);
}

void sf_dlq_store_close(sf_dlq_store_t *s)
{
        if (!s)
                return;
        sqlite3_finalize(s->insert);
        sqlite3_close(s->db);
        free(s->path);
        free(s);
}

/* --- writing ---------------------------------------------------------- */

/* H as JSON [[name, value], ...] without the DLQ headers; NULL when there
 * are none or the JSON would exceed SF_DLQ_MAX_HEADERS (*DROPPED set). */
static char *sf_store_headers_json(const rd_kafka_headers_t *h, int *dropped)
{
        rd_kafka_headers_t *own = sf_dlq_own_headers(h);
        cJSON *arr;
        const char *name;
        const void *v;
        size_t len;
        char *json = NULL;

        *dropped = 0;
        if (!own || !rd_kafka_header_cnt(own)) {
                if (own)
                        rd_kafka_headers_destroy(own);
                return NULL;
        }
        arr = cJSON_CreateArray();
        for (size_t i = 0; !rd_kafka_header_get_all(own, i, &name, &v, &len);
             i++) {
                cJSON *pair = cJSON_CreateArray();
                char *text = v ? sf_strndup(v, len) : NULL;

                cJSON_AddItemToArray(pair, cJSON_CreateString(name));
                cJSON_AddItemToArray(pair, text ? cJSON_CreateString(text)
                                                : cJSON_CreateNull());
                cJSON_AddItemToArray(arr, pair);
                free(text);
        }
        json = sf_json_print(arr, 0);
        cJSON_Delete(arr);
        rd_kafka_headers_destroy(own);
        if (json && strlen(json) > SF_DLQ_MAX_HEADERS) {
                free(json);
                json = NULL;
                *dropped = 1;
        }
        return json;
}

/* E cut to SF_DLQ_MAX_ERROR bytes, never inside a UTF-8 sequence, with
 * what was not kept of the record said. */
static char *sf_store_error(const char *e, size_t key_len, int key_kept,
                            size_t value_len, int value_kept, int headers_kept)
{
        size_t n = e ? strlen(e) : 0;
        sf_buf_t b;

        if (n > SF_DLQ_MAX_ERROR) {
                n = SF_DLQ_MAX_ERROR;
                while (n > 0 && ((unsigned char)e[n] & 0xC0) == 0x80)
                        n--;
        }
        sf_buf_init(&b, 0);
        sf_buf_append(&b, e ? e : "", n);
        if (n < (e ? strlen(e) : 0))
                sf_buf_printf(&b, "...");
        if (!key_kept)
                sf_buf_printf(&b, " (its key of %zu bytes is not kept)",
                              key_len);
        if (!value_kept)
                sf_buf_printf(&b,
                              " (its value of %zu bytes is not kept: larger "
                              "than the %u bytes the DLQ store takes)",
                              value_len, SF_MAX_RECORD_BYTES);
        if (!headers_kept)
                sf_buf_printf(&b,
                              " (its headers are not kept: more than %d "
                              "bytes)",
                              SF_DLQ_MAX_HEADERS);
        return b.data ? sf_buf_steal(&b) : sf_strdup("");
}

int sf_dlq_store_insert(sf_dlq_store_t *s, const sf_dead_letter_t *dl,
                        char *errstr, size_t errstr_size)
{
        int key_kept = dl->key_len <= SF_MAX_RECORD_BYTES;
        int value_kept = dl->key_len + dl->value_len <= SF_MAX_RECORD_BYTES;
        int headers_dropped = 0, rc = -1;
        char *headers = sf_store_headers_json(dl->headers, &headers_dropped);
        char *error =
            sf_store_error(dl->error, dl->key_len, key_kept, dl->value_len,
                           value_kept, !headers_dropped);
        char *action =
            dl->action ? NULL : sf_dlq_record_action(dl->value, dl->value_len);
        char *event_id = dl->event_id
                             ? NULL
                             : sf_dlq_header_str(dl->headers, SF_HDR_EVENT_ID);
        sqlite3_stmt *st;

        if (!s->db) {
                sf_seterr(errstr, errstr_size, "DLQ store %s is not open",
                          s->path);
                goto out;
        }
        if (!s->insert &&
            sqlite3_prepare_v2(
                s->db,
                "INSERT INTO dead_letters (failed_at, stage, action, error, "
                "attempts, origin_topic, origin_partition, origin_offset, "
                "event_id, key, value, value_size, headers) VALUES (?, ?, "
                "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                -1, &s->insert, NULL) != SQLITE_OK) {
                sf_store_err(s, "preparing the insert", errstr, errstr_size);
                goto out;
        }
        st = s->insert;
        sqlite3_bind_int64(st, 1, sf_now_ms());
        sqlite3_bind_text(st, 2, dl->stage ? dl->stage : "", -1, SQLITE_STATIC);
        if (dl->action || action)
                sqlite3_bind_text(st, 3, dl->action ? dl->action : action, -1,
                                  SQLITE_STATIC);
        sqlite3_bind_text(st, 4, error, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 5, dl->attempts);
        sqlite3_bind_text(st, 6, dl->origin_topic ? dl->origin_topic : "", -1,
                          SQLITE_STATIC);
        sqlite3_bind_int(st, 7, dl->partition);
        sqlite3_bind_int64(st, 8, dl->offset);
        if (dl->event_id || event_id)
                sqlite3_bind_text(st, 9, dl->event_id ? dl->event_id : event_id,
                                  -1, SQLITE_STATIC);
        if (dl->key && key_kept)
                sqlite3_bind_blob64(st, 10, dl->key, dl->key_len,
                                    SQLITE_STATIC);
        if (value_kept)
                sqlite3_bind_blob64(st, 11, dl->value ? dl->value : "",
                                    dl->value_len, SQLITE_STATIC);
        sqlite3_bind_int64(st, 12, (sqlite3_int64)dl->value_len);
        if (headers)
                sqlite3_bind_text(st, 13, headers, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
                sf_store_err(s, "storing a dead letter", errstr, errstr_size);
        else
                rc = 0;
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
out:
        free(headers);
        free(error);
        free(action);
        free(event_id);
        return rc;
}

/* --- reading ---------------------------------------------------------- */

static char *sf_col_text(sqlite3_stmt *st, int i)
{
        const unsigned char *t = sqlite3_column_text(st, i);

        return t ? sf_strdup((const char *)t) : NULL;
}

/* A BLOB column as a NUL-terminated copy; NULL for NULL. */
static char *sf_col_blob(sqlite3_stmt *st, int i, size_t *len)
{
        const void *b;
        char *out;

        *len = 0;
        if (sqlite3_column_type(st, i) == SQLITE_NULL)
                return NULL;
        b = sqlite3_column_blob(st, i);
        *len = (size_t)sqlite3_column_bytes(st, i);
        out = sf_malloc(*len + 1);
        if (*len)
                memcpy(out, b, *len);
        out[*len] = '\0';
        return out;
}

static rd_kafka_headers_t *sf_headers_from_json(const char *json)
{
        cJSON *arr = json ? sf_json_parse(json, strlen(json)) : NULL, *pair;
        rd_kafka_headers_t *h;

        if (!cJSON_IsArray(arr)) {
                cJSON_Delete(arr);
                return NULL;
        }
        h = rd_kafka_headers_new((size_t)cJSON_GetArraySize(arr));
        cJSON_ArrayForEach(pair, arr)
        {
                cJSON *name = cJSON_GetArrayItem(pair, 0);
                cJSON *value = cJSON_GetArrayItem(pair, 1);

                if (!cJSON_IsString(name))
                        continue;
                if (cJSON_IsString(value))
                        rd_kafka_header_add(h, name->valuestring, -1,
                                            value->valuestring, -1);
                else
                        rd_kafka_header_add(h, name->valuestring, -1, NULL, 0);
        }
        cJSON_Delete(arr);
        return h;
}

/* The row at ST (SF_DLQ_COLS, then value and headers with PAYLOAD). */
static void sf_store_row(sqlite3_stmt *st, int payload, sf_dlq_entry_t *e)
{
        memset(e, 0, sizeof(*e));
        e->id = sqlite3_column_int64(st, 0);
        e->dlq_partition = -1;
        e->dlq_offset = -1;
        e->failed_at_ms = sqlite3_column_int64(st, 1);
        e->stage = sf_col_text(st, 2);
        e->action = sf_col_text(st, 3);
        e->error = sf_col_text(st, 4);
        e->attempts = sqlite3_column_int(st, 5);
        e->origin_topic = sf_col_text(st, 6);
        e->origin_partition = sqlite3_column_int(st, 7);
        e->origin_offset = sqlite3_column_int64(st, 8);
        e->event_id = sf_col_text(st, 9);
        e->key = sf_col_blob(st, 10, &e->key_len);
        e->value_size = sqlite3_column_int64(st, 11);
        e->replayed_at_ms = sqlite3_column_type(st, 12) == SQLITE_NULL
                                ? -1
                                : sqlite3_column_int64(st, 12);
        e->value_kept = sqlite3_column_int(st, 13);
        if (payload) {
                char *json = sf_col_text(st, 15);

                e->value = sf_col_blob(st, 14, &e->value_len);
                e->headers = sf_headers_from_json(json);
                free(json);
        }
}

int sf_dlq_store_each(sf_dlq_store_t *s, const sf_dlq_filter_t *f, int payload,
                      sf_dlq_each_cb *cb, void *opaque, char *errstr,
                      size_t errstr_size)
{
        sqlite3_stmt *st = NULL;
        int rc = 0, step;

        if (!s->db)
                return 0;
        if (sqlite3_prepare_v2(s->db,
                               payload ? "SELECT " SF_DLQ_COLS
                                         ", value, headers FROM dead_letters "
                                         "ORDER BY failed_at, id"
                                       : "SELECT " SF_DLQ_COLS
                                         " FROM dead_letters ORDER BY "
                                         "failed_at, id",
                               -1, &st, NULL) != SQLITE_OK)
                return sf_store_err(s, "reading", errstr, errstr_size);
        while ((step = sqlite3_step(st)) == SQLITE_ROW) {
                sf_dlq_entry_t e;

                sf_store_row(st, payload, &e);
                if (!sf_dlq_filter_match(f, &e)) {
                        sf_dlq_entry_clear(&e);
                        continue;
                }
                if (cb(opaque, &e))
                        break;
        }
        if (step != SQLITE_ROW && step != SQLITE_DONE)
                rc = sf_store_err(s, "reading", errstr, errstr_size);
        sqlite3_finalize(st);
        return rc;
}

int sf_dlq_store_get(sf_dlq_store_t *s, int64_t id, sf_dlq_entry_t *out,
                     char *errstr, size_t errstr_size)
{
        sqlite3_stmt *st = NULL;
        int rc, step;

        memset(out, 0, sizeof(*out));
        if (!s->db)
                return 1;
        if (sqlite3_prepare_v2(
                s->db,
                "SELECT " SF_DLQ_COLS
                ", value, headers FROM dead_letters WHERE id = ?",
                -1, &st, NULL) != SQLITE_OK)
                return sf_store_err(s, "reading", errstr, errstr_size);
        sqlite3_bind_int64(st, 1, id);
        step = sqlite3_step(st);
        if (step == SQLITE_ROW) {
                sf_store_row(st, 1, out);
                rc = 0;
        } else if (step == SQLITE_DONE) {
                rc = 1;
        } else {
                rc = sf_store_err(s, "reading", errstr, errstr_size);
        }
        sqlite3_finalize(st);
        return rc;
}

/* Runs SQL with ID bound: as its only parameter, or with BIND_AT as the
 * second after AT (NULL when AT < 0). */
static int sf_store_update(sf_dlq_store_t *s, const char *sql, int64_t id,
                           int bind_at, int64_t at, const char *what,
                           char *errstr, size_t errstr_size)
{
        sqlite3_stmt *st = NULL;
        int rc = 0;

        if (!s->db)
                return 0;
        if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
                return sf_store_err(s, what, errstr, errstr_size);
        if (bind_at) {
                if (at >= 0)
                        sqlite3_bind_int64(st, 1, at);
                sqlite3_bind_int64(st, 2, id);
        } else {
                sqlite3_bind_int64(st, 1, id);
        }
        if (sqlite3_step(st) != SQLITE_DONE)
                rc = sf_store_err(s, what, errstr, errstr_size);
        sqlite3_finalize(st);
        return rc;
}

int sf_dlq_store_mark(sf_dlq_store_t *s, int64_t id, int64_t at_ms,
                      char *errstr, size_t errstr_size)
{
        return sf_store_update(
            s, "UPDATE dead_letters SET replayed_at = ? WHERE id = ?", id, 1,
            at_ms, "marking a dead letter replayed", errstr, errstr_size);
}

int sf_dlq_store_remove(sf_dlq_store_t *s, int64_t id, char *errstr,
                        size_t errstr_size)
{
        return sf_store_update(s, "DELETE FROM dead_letters WHERE id = ?", id,
                               0, 0, "removing a dead letter", errstr,
                               errstr_size);
}
