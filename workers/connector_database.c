/*
 * The database connector: writes a rendered document into a table of the
 * pipeline's source database (web service write-back, or a message whose
 * target is the database). The document's fields are the columns; the
 * target names the table, the operation (insert, update, upsert, delete)
 * and the key columns.
 *
 * SQLite for now. Every write runs in its own transaction marked in
 * _syncfleet_writeback, which the capture triggers skip: what syncfleet
 * writes never comes back as a new event. The write is synchronous in
 * send() (SQLite has one writer at a time and a busy timeout); its outcome
 * is reported from poll(), as the connector contract wants.
 */
#include "connector.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define DB_WRITEBACK "_syncfleet_writeback"
#define DB_BUSY_MS   5000

typedef struct db_done {
        struct db_done *next;
        sf_conn_done_cb *cb;
        void *opaque;
        sf_status_t status;
        char error[512];
} db_done_t;

struct sf_conn {
        const sf_connector_cfg_t *cfg;
        char *path;
        sqlite3 *db;
        int marked; /* the capture's write-back table exists */
        db_done_t *head, *tail;
        size_t pending;
};

static void db_ident(sf_buf_t *b, const char *name)
{
        sf_buf_append(b, "\"", 1);
        for (const char *p = name; *p; p++) {
                if (*p == '"')
                        sf_buf_append(b, "\"", 1);
                sf_buf_append(b, p, 1);
        }
        sf_buf_append(b, "\"", 1);
}

static sf_conn_t *db_open(const sf_connector_cfg_t *cfg,
                          const sf_config_t *pipeline, const char *bootstraps,
                          char *errstr, size_t errstr_size)
{
        (void)bootstraps;
        sf_conn_t *c;

        if (pipeline->source.type != SF_SOURCE_SQLITE) {
                sf_seterr(errstr, errstr_size,
                          "connector %s: writing to a %s source database is "
                          "not supported yet",
                          cfg->name,
                          pipeline->source.type == SF_SOURCE_POSTGRES
                              ? "postgres"
                              : "missing");
                return NULL;
        }
        c = sf_calloc(1, sizeof(*c));
        c->cfg = cfg;
        c->path = sf_strdup(pipeline->source.path);
        if (sqlite3_open_v2(c->path, &c->db,
                            SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                            NULL) != SQLITE_OK) {
                sf_seterr(errstr, errstr_size,
                          "connector %s: cannot open %s: %s", cfg->name,
                          c->path,
                          c->db ? sqlite3_errmsg(c->db) : "out of memory");
                sqlite3_close(c->db);
                free(c->path);
                free(c);
                return NULL;
        }
        sqlite3_busy_timeout(c->db, DB_BUSY_MS);
        return c;
}

/* Whether the capture's write-back marker table exists; looked up per
 * write, since the producer may install the capture after this opened. */
static int db_marked(sf_conn_t *c)
{
        sqlite3_stmt *st = NULL;
        int found = 0;

        if (c->marked)
                return 1;
        if (sqlite3_prepare_v2(c->db,
                               "SELECT 1 FROM sqlite_master WHERE type='table' "
                               "AND name='" DB_WRITEBACK "'",
                               -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
                found = 1;
        sqlite3_finalize(st);
        c->marked = found;
        return found;
}

static void db_bind(sqlite3_stmt *st, int idx, const cJSON *v)
{
        if (cJSON_IsString(v))
                sqlite3_bind_text(st, idx, v->valuestring, -1,
                                  SQLITE_TRANSIENT);
        else if (cJSON_IsNumber(v) &&
                 v->valuedouble == (double)(int64_t)v->valuedouble)
                sqlite3_bind_int64(st, idx, (int64_t)v->valuedouble);
        else if (cJSON_IsNumber(v))
                sqlite3_bind_double(st, idx, v->valuedouble);
        else if (cJSON_IsBool(v))
                sqlite3_bind_int(st, idx, cJSON_IsTrue(v));
        else if (!v || cJSON_IsNull(v))
                sqlite3_bind_null(st, idx);
        else {
                char *json = cJSON_PrintUnformatted(v);

                sqlite3_bind_text(st, idx, json, -1, SQLITE_TRANSIENT);
                free(json);
        }
}

static int db_is_key(const sf_target_cfg_t *t, const char *col)
{
        for (size_t i = 0; i < t->key_cnt; i++)
                if (!strcmp(t->key[i], col))
                        return 1;
        return 0;
}

/* The statement for the operation, with the document's fields bound in
 * the order the SQL names them. */
static sf_status_t db_statement(sf_conn_t *c, const sf_target_cfg_t *t,
                                const cJSON *doc, sqlite3_stmt **out,
                                char *errstr, size_t errstr_size)
{
        const char *op = t->operation ? t->operation : "insert";
        const cJSON *f;
        sf_buf_t sql;
        sf_status_t st = SF_OK;
        int n = 0, idx = 1, rc;

        sf_buf_init(&sql, 1024 * 1024);
        for (size_t i = 0; i < t->key_cnt; i++)
                if (strcmp(op, "insert") &&
                    !cJSON_GetObjectItemCaseSensitive(doc, t->key[i])) {
                        sf_seterr(errstr, errstr_size,
                                  "the document has no key field %s for %s %s",
                                  t->key[i], op, t->table);
                        st = SF_FATAL;
                        goto out;
                }
        if (!strcmp(op, "delete")) {
                sf_buf_printf(&sql, "DELETE FROM ");
                db_ident(&sql, t->table);
        } else if (!strcmp(op, "update")) {
                sf_buf_printf(&sql, "UPDATE ");
                db_ident(&sql, t->table);
                sf_buf_printf(&sql, " SET ");
                cJSON_ArrayForEach(f, doc)
                {
                        if (db_is_key(t, f->string))
                                continue;
                        if (n++)
                                sf_buf_printf(&sql, ", ");
                        db_ident(&sql, f->string);
                        sf_buf_printf(&sql, " = ?");
                }
                if (!n) {
                        sf_seterr(errstr, errstr_size,
                                  "the document has no field to update in %s "
                                  "besides the key",
                                  t->table);
                        st = SF_FATAL;
                        goto out;
                }
        } else {
                sf_buf_printf(&sql, "INSERT INTO ");
                db_ident(&sql, t->table);
                sf_buf_printf(&sql, " (");
                cJSON_ArrayForEach(f, doc)
                {
                        if (n++)
                                sf_buf_printf(&sql, ", ");
                        db_ident(&sql, f->string);
                }
                sf_buf_printf(&sql, ") VALUES (");
                for (int i = 0; i < n; i++)
                        sf_buf_printf(&sql, i ? ", ?" : "?");
                sf_buf_printf(&sql, ")");
                if (!strcmp(op, "upsert")) {
                        int m = 0;

                        sf_buf_printf(&sql, " ON CONFLICT (");
                        for (size_t i = 0; i < t->key_cnt; i++) {
                                if (i)
                                        sf_buf_printf(&sql, ", ");
                                db_ident(&sql, t->key[i]);
                        }
                        sf_buf_printf(&sql, ") DO ");
                        cJSON_ArrayForEach(f, doc)
                        {
                                if (db_is_key(t, f->string))
                                        continue;
                                sf_buf_printf(&sql, m++ ? ", " : "UPDATE SET ");
                                db_ident(&sql, f->string);
                                sf_buf_printf(&sql, " = excluded.");
                                db_ident(&sql, f->string);
                        }
                        if (!m)
                                sf_buf_printf(&sql, "NOTHING");
                }
        }
        if (strcmp(op, "insert") && strcmp(op, "upsert"))
                for (size_t i = 0; i < t->key_cnt; i++) {
                        sf_buf_printf(&sql, i ? " AND " : " WHERE ");
                        db_ident(&sql, t->key[i]);
                        sf_buf_printf(&sql, " = ?");
                }
        if (!sql.data) {
                sf_seterr(errstr, errstr_size, "statement too large");
                st = SF_FATAL;
                goto out;
        }
        rc = sqlite3_prepare_v2(c->db, sql.data, -1, out, NULL);
        if (rc != SQLITE_OK) {
                sf_seterr(errstr, errstr_size, "%s %s: %s", op, t->table,
                          sqlite3_errmsg(c->db));
                st = rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? SF_RETRY
                                                              : SF_FATAL;
                goto out;
        }
        if (!strcmp(op, "update")) {
                cJSON_ArrayForEach(f, doc) if (!db_is_key(t, f->string))
                    db_bind(*out, idx++, f);
        } else if (strcmp(op, "delete")) {
                cJSON_ArrayForEach(f, doc) db_bind(*out, idx++, f);
        }
        if (strcmp(op, "insert") && strcmp(op, "upsert"))
                for (size_t i = 0; i < t->key_cnt; i++)
                        db_bind(
                            *out, idx++,
                            cJSON_GetObjectItemCaseSensitive(doc, t->key[i]));
out:
        sf_buf_free(&sql);
        return st;
}

static sf_status_t db_write(sf_conn_t *c, const sf_target_cfg_t *t,
                            const cJSON *doc, char *errstr, size_t errstr_size)
{
        sqlite3_stmt *stmt = NULL;
        sf_status_t st;
        char *err = NULL;
        int rc, marked = db_marked(c);

        rc = sqlite3_exec(c->db,
                          marked ? "BEGIN IMMEDIATE; INSERT INTO " DB_WRITEBACK
                                   " VALUES('syncfleet')"
                                 : "BEGIN IMMEDIATE",
                          NULL, NULL, &err);
        if (rc != SQLITE_OK) {
                sf_seterr(errstr, errstr_size, "%s: %s", c->path,
                          err ? err : sqlite3_errstr(rc));
                sqlite3_free(err);
                sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
                return SF_RETRY;
        }
        st = db_statement(c, t, doc, &stmt, errstr, errstr_size);
        if (st == SF_OK) {
                rc = sqlite3_step(stmt);
                if (rc != SQLITE_DONE) {
                        sf_seterr(errstr, errstr_size, "%s %s: %s",
                                  t->operation, t->table,
                                  sqlite3_errmsg(c->db));
                        st = rc == SQLITE_BUSY || rc == SQLITE_LOCKED
                                 ? SF_RETRY
                                 : SF_FATAL;
                } else if (sqlite3_changes(c->db) == 0 &&
                           strcmp(t->operation, "insert") &&
                           strcmp(t->operation, "upsert")) {
                        sf_seterr(errstr, errstr_size,
                                  "%s %s: no row has that key", t->operation,
                                  t->table);
                        st = SF_FATAL;
                }
        }
        sqlite3_finalize(stmt);
        if (st == SF_OK) {
                rc = sqlite3_exec(
                    c->db,
                    marked ? "DELETE FROM " DB_WRITEBACK "; COMMIT" : "COMMIT",
                    NULL, NULL, &err);
                if (rc != SQLITE_OK) {
                        sf_seterr(errstr, errstr_size, "%s: commit: %s",
                                  c->path, err ? err : sqlite3_errstr(rc));
                        sqlite3_free(err);
                        st = SF_RETRY;
                }
        }
        if (st != SF_OK)
                sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
        return st;
}

static int db_send(sf_conn_t *c, const sf_request_t *req, sf_conn_done_cb *done,
                   void *opaque, char *errstr, size_t errstr_size)
{
        db_done_t *d;

        if (!req->target || !req->target->table) {
                sf_seterr(errstr, errstr_size,
                          "connector %s: the target names no table",
                          c->cfg->name);
                return -1;
        }
        d = sf_calloc(1, sizeof(*d));
        d->cb = done;
        d->opaque = opaque;
        if (!cJSON_IsObject(req->body)) {
                snprintf(d->error, sizeof(d->error),
                         "the document for %s is not an object of columns",
                         req->target->table);
                d->status = SF_FATAL;
        } else {
                d->status = db_write(c, req->target, req->body, d->error,
                                     sizeof(d->error));
        }
        if (d->status != SF_OK)
                sf_debug("database", "connector %s: %s", c->cfg->name,
                         d->error);
        if (c->tail)
                c->tail->next = d;
        else
                c->head = d;
        c->tail = d;
        c->pending++;
        return 0;
}

static int db_poll(sf_conn_t *c, int timeout_ms)
{
        int n = 0;

        (void)timeout_ms;
        while (c->head) {
                db_done_t *d = c->head;
                sf_result_t res;

                c->head = d->next;
                if (!c->head)
                        c->tail = NULL;
                c->pending--;
                memset(&res, 0, sizeof(res));
                res.status = d->status;
                res.retry_after_ms = -1;
                snprintf(res.error, sizeof(res.error), "%s", d->error);
                d->cb(d->opaque, &res);
                free(d);
                n++;
        }
        return n;
}

static size_t db_pending(const sf_conn_t *c)
{
        return c->pending;
}

static void db_close(sf_conn_t *c)
{
        if (!c)
                return;
        while (c->head) {
                db_done_t *d = c->head;

                c->head = d->next;
                free(d);
        }
        sqlite3_close(c->db);
        free(c->path);
        free(c);
}

const sf_connector_ops_t sf_connector_database = {
    .name = "database",
    .type = SF_CONN_DATABASE,
    .open = db_open,
    .send = db_send,
    .poll = db_poll,
    .pending = db_pending,
    .close = db_close,
};
