/*
 * Current records from the source database. SQLite only for now: the file
 * is opened read-only next to the application, which keeps writing (WAL
 * mode, busy timeout). Statements are prepared once per SQL text.
 */
#include "source_db.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "log.h"
#include "map.h"
#include "sql.h"

struct sf_source_db {
        sqlite3 *sqlite;
        sf_map_t *stmts; /* SQL text -> sqlite3_stmt */
};

sf_source_db_t *sf_source_db_open(const sf_config_t *cfg, char *errstr,
                                  size_t errstr_size)
{
        sf_source_db_t *db;

        if (cfg->source.type != SF_SOURCE_SQLITE) {
                sf_seterr(errstr, errstr_size,
                          "reading records at export time needs a sqlite "
                          "source");
                return NULL;
        }
        db = sf_calloc(1, sizeof(*db));
        db->stmts = sf_map_new();
        if (sqlite3_open_v2(cfg->source.path, &db->sqlite,
                            SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                            NULL) != SQLITE_OK) {
                sf_seterr(
                    errstr, errstr_size, "cannot open %s: %s", cfg->source.path,
                    db->sqlite ? sqlite3_errmsg(db->sqlite) : "out of memory");
                sf_source_db_close(db);
                return NULL;
        }
        sqlite3_busy_timeout(db->sqlite, 5000);
        return db;
}

static int sf_finalize_stmt(void *opaque, const char *key, void *value)
{
        (void)opaque;
        (void)key;
        sqlite3_finalize(value);
        return 0;
}

void sf_source_db_close(sf_source_db_t *db)
{
        if (!db)
                return;
        if (db->stmts)
                sf_map_each(db->stmts, sf_finalize_stmt, NULL);
        sf_map_destroy(db->stmts);
        sqlite3_close(db->sqlite);
        free(db);
}

static sf_status_t sf_prepare(sf_source_db_t *db, const char *sql,
                              sqlite3_stmt **out, char *errstr,
                              size_t errstr_size)
{
        sqlite3_stmt *st = sf_map_get(db->stmts, sql);
        int rc;

        if (st) {
                sqlite3_reset(st);
                sqlite3_clear_bindings(st);
                *out = st;
                return SF_OK;
        }
        rc = sqlite3_prepare_v2(db->sqlite, sql, -1, &st, NULL);
        if (rc != SQLITE_OK) {
                sf_seterr(errstr, errstr_size, "%s (in %s)",
                          sqlite3_errmsg(db->sqlite), sql);
                return rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? SF_RETRY
                                                                : SF_FATAL;
        }
        sf_map_set(db->stmts, sql, st);
        *out = st;
        return SF_OK;
}

/* Binds a key value for a lookup; objects and arrays cannot be one. */
static sf_status_t sf_bind_json(sqlite3_stmt *st, int idx, const cJSON *v,
                                const char *what, char *errstr,
                                size_t errstr_size)
{
        if (cJSON_IsObject(v) || cJSON_IsArray(v) || !v) {
                sf_seterr(errstr, errstr_size,
                          "%s is not a scalar value usable in a lookup", what);
                return SF_FATAL;
        }
        sf_sqlite_bind_json(st, idx, v);
        return SF_OK;
}

static cJSON *sf_row_json(sqlite3_stmt *st)
{
        cJSON *row = cJSON_CreateObject();
        int n = sqlite3_column_count(st);

        for (int i = 0; i < n; i++) {
                const char *name = sqlite3_column_name(st, i);
                cJSON *v;

                switch (sqlite3_column_type(st, i)) {
                case SQLITE_INTEGER:
                        v = sf_json_int64(sqlite3_column_int64(st, i));
                        break;
                case SQLITE_FLOAT:
                        v = cJSON_CreateNumber(sqlite3_column_double(st, i));
                        break;
                case SQLITE_TEXT:
                        v = cJSON_CreateString(
                            (const char *)sqlite3_column_text(st, i));
                        break;
                case SQLITE_BLOB: {
                        /* upper-case hex, as the capture's hex() writes
                         * it, so event images and reads agree */
                        const unsigned char *p = sqlite3_column_blob(st, i);
                        int len = sqlite3_column_bytes(st, i);
                        char *hex = sf_malloc((size_t)len * 2 + 1);

                        for (int j = 0; j < len; j++)
                                snprintf(hex + 2 * j, 3, "%02X", p[j]);
                        hex[2 * len] = '\0';
                        v = cJSON_CreateString(hex);
                        free(hex);
                        break;
                }
                default:
                        v = cJSON_CreateNull();
                }
                cJSON_AddItemToObject(row, name, v);
        }
        return row;
}

static sf_status_t sf_step_error(sf_source_db_t *db, int rc, char *errstr,
                                 size_t errstr_size)
{
        sf_seterr(errstr, errstr_size, "reading the source database: %s",
                  sqlite3_errmsg(db->sqlite));
        return rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? SF_RETRY : SF_FATAL;
}

sf_status_t sf_source_db_get(sf_source_db_t *db, const sf_table_cfg_t *table,
                             const cJSON *key, cJSON **out, char *errstr,
                             size_t errstr_size)
{
        sf_status_t st = SF_OK;
        sqlite3_stmt *stmt = NULL;
        sf_buf_t sql;
        int rc;

        *out = NULL;
        sf_buf_init(&sql, 0);
        sf_buf_printf(&sql, "SELECT * FROM ");
        sf_sql_table(&sql, table->name);
        for (size_t i = 0; i < table->key_cnt; i++) {
                sf_buf_printf(&sql, i ? " AND " : " WHERE ");
                sf_sql_ident(&sql, table->key[i]);
                sf_buf_printf(&sql, " = ?");
        }
        st = sf_prepare(db, sql.data, &stmt, errstr, errstr_size);
        for (size_t i = 0; st == SF_OK && i < table->key_cnt; i++) {
                const cJSON *v =
                    cJSON_GetObjectItemCaseSensitive(key, table->key[i]);

                if (!v) {
                        sf_seterr(errstr, errstr_size,
                                  "key of %s has no column %s", table->name,
                                  table->key[i]);
                        st = SF_FATAL;
                        break;
                }
                st = sf_bind_json(stmt, (int)i + 1, v, table->key[i], errstr,
                                  errstr_size);
        }
        if (st == SF_OK) {
                rc = sqlite3_step(stmt);
                if (rc == SQLITE_ROW)
                        *out = sf_row_json(stmt);
                else if (rc != SQLITE_DONE)
                        st = sf_step_error(db, rc, errstr, errstr_size);
        }
        if (stmt)
                sqlite3_reset(stmt);
        sf_buf_free(&sql);
        return st;
}

sf_status_t sf_source_db_children(sf_source_db_t *db,
                                  const sf_records_cfg_t *rec,
                                  const cJSON *root, cJSON **out, char *errstr,
                                  size_t errstr_size)
{
        const sf_table_cfg_t *t = rec->table_ref;
        sf_status_t st = SF_OK;
        sqlite3_stmt *stmt = NULL;
        cJSON *arr = NULL;
        sf_buf_t sql;
        int rc;

        *out = NULL;
        sf_buf_init(&sql, 0);
        sf_buf_printf(&sql, "SELECT * FROM ");
        sf_sql_table(&sql, t->name);
        for (size_t i = 0; i < rec->where_cnt; i++) {
                sf_buf_printf(&sql, i ? " AND " : " WHERE ");
                sf_sql_ident(&sql, rec->where[i].key);
                sf_buf_printf(&sql, " = ?");
        }
        for (size_t i = 0; i < t->key_cnt; i++) {
                sf_buf_printf(&sql, i ? ", " : " ORDER BY ");
                sf_sql_ident(&sql, t->key[i]);
        }
        st = sf_prepare(db, sql.data, &stmt, errstr, errstr_size);
        for (size_t i = 0; st == SF_OK && i < rec->where_cnt; i++) {
                const cJSON *v =
                    cJSON_GetObjectItemCaseSensitive(root, rec->where[i].value);

                if (!v) {
                        sf_seterr(errstr, errstr_size,
                                  "records.%s: the root record has no field "
                                  "%s",
                                  rec->name, rec->where[i].value);
                        st = SF_FATAL;
                        break;
                }
                st = sf_bind_json(stmt, (int)i + 1, v, rec->where[i].value,
                                  errstr, errstr_size);
        }
        if (st == SF_OK) {
                arr = cJSON_CreateArray();
                while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
                        cJSON_AddItemToArray(arr, sf_row_json(stmt));
                if (rc != SQLITE_DONE)
                        st = sf_step_error(db, rc, errstr, errstr_size);
        }
        if (stmt)
                sqlite3_reset(stmt);
        if (st == SF_OK) {
                *out = arr;
                arr = NULL;
        }
        cJSON_Delete(arr);
        sf_buf_free(&sql);
        return st;
}
