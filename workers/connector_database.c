/*
 * The database connector: writes a rendered document into a table of the
 * pipeline's source database (web service write-back, or a message whose
 * target is the database). The document's fields are the columns; the
 * target names the table, the operation (insert, update, upsert, delete)
 * and the key columns.
 *
 * What syncfleet writes must never come back as a new event:
 *   - SQLite: every write runs in its own transaction marked by a row in
 *     _syncfleet_writeback, which the capture triggers skip. The row is
 *     inserted and deleted inside the transaction, and SQLite has one
 *     writer at a time, so no other writer ever sees it.
 *   - PostgreSQL: the session binds syncfleet's replication origin
 *     (sf_pg_origin_setup), and the capture skips transactions of that
 *     origin.
 * The write is synchronous in send(); its outcome is reported from poll(),
 * as the connector contract wants.
 */
#include "connector.h"

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture_postgres.h"
#include "json.h"
#include "log.h"
#include "sql.h"

#define DB_WRITEBACK  "_syncfleet_writeback"
#define DB_BUSY_MS    5000
#define DB_MAX_PARAMS 1000

struct sf_conn {
        const sf_connector_cfg_t *cfg;
        const sf_config_t *pipeline;
        sqlite3 *sqlite;
        PGconn *pg;
        int marked;      /* sqlite: the capture's write-back table exists */
        sf_doneq_t done; /* outcomes waiting for poll() */
};

/* --- the statement, shared by both databases ---------------------------- */

static int db_is_key(const sf_target_cfg_t *t, const char *col)
{
        for (size_t i = 0; i < t->key_cnt; i++)
                if (!strcmp(t->key[i], col))
                        return 1;
        return 0;
}

typedef struct db_stmt {
        sf_buf_t sql;
        const cJSON *params[DB_MAX_PARAMS];
        int nparams;
        int pg; /* placeholders $1, $2 ... instead of ? */
} db_stmt_t;

static void db_param(db_stmt_t *s, const cJSON *v)
{
        if (s->nparams < DB_MAX_PARAMS)
                s->params[s->nparams] = v;
        s->nparams++;
        if (s->pg)
                sf_buf_printf(&s->sql, "$%d", s->nparams);
        else
                sf_buf_append(&s->sql, "?", 1);
}

/* Builds the SQL of T's operation for DOC, with the parameters in the
 * order the SQL names them. */
static int db_build(const sf_target_cfg_t *t, const cJSON *doc, db_stmt_t *s,
                    char *errstr, size_t errstr_size)
{
        const char *op = t->operation ? t->operation : "insert";
        int keyed = strcmp(op, "insert") && strcmp(op, "upsert");
        const cJSON *f;
        int n = 0;

        for (size_t i = 0; i < t->key_cnt; i++)
                if (strcmp(op, "insert") &&
                    !cJSON_GetObjectItemCaseSensitive(doc, t->key[i])) {
                        sf_seterr(errstr, errstr_size,
                                  "the document has no key field %s for %s %s",
                                  t->key[i], op, t->table);
                        return -1;
                }
        if (!strcmp(op, "delete")) {
                sf_buf_printf(&s->sql, "DELETE FROM ");
                sf_sql_table(&s->sql, t->table);
        } else if (!strcmp(op, "update")) {
                sf_buf_printf(&s->sql, "UPDATE ");
                sf_sql_table(&s->sql, t->table);
                sf_buf_printf(&s->sql, " SET ");
                cJSON_ArrayForEach(f, doc)
                {
                        if (db_is_key(t, f->string))
                                continue;
                        if (n++)
                                sf_buf_printf(&s->sql, ", ");
                        sf_sql_ident(&s->sql, f->string);
                        sf_buf_printf(&s->sql, " = ");
                        db_param(s, f);
                }
                if (!n) {
                        sf_seterr(errstr, errstr_size,
                                  "the document has no field to update in %s "
                                  "besides the key",
                                  t->table);
                        return -1;
                }
        } else {
                sf_buf_printf(&s->sql, "INSERT INTO ");
                sf_sql_table(&s->sql, t->table);
                sf_buf_printf(&s->sql, " (");
                cJSON_ArrayForEach(f, doc)
                {
                        if (n++)
                                sf_buf_printf(&s->sql, ", ");
                        sf_sql_ident(&s->sql, f->string);
                }
                sf_buf_printf(&s->sql, ") VALUES (");
                n = 0;
                cJSON_ArrayForEach(f, doc)
                {
                        if (n++)
                                sf_buf_printf(&s->sql, ", ");
                        db_param(s, f);
                }
                sf_buf_printf(&s->sql, ")");
                if (!strcmp(op, "upsert")) {
                        int m = 0;

                        sf_buf_printf(&s->sql, " ON CONFLICT (");
                        for (size_t i = 0; i < t->key_cnt; i++) {
                                if (i)
                                        sf_buf_printf(&s->sql, ", ");
                                sf_sql_ident(&s->sql, t->key[i]);
                        }
                        sf_buf_printf(&s->sql, ") DO ");
                        cJSON_ArrayForEach(f, doc)
                        {
                                if (db_is_key(t, f->string))
                                        continue;
                                sf_buf_printf(&s->sql,
                                              m++ ? ", " : "UPDATE SET ");
                                sf_sql_ident(&s->sql, f->string);
                                sf_buf_printf(&s->sql, " = excluded.");
                                sf_sql_ident(&s->sql, f->string);
                        }
                        if (!m)
                                sf_buf_printf(&s->sql, "NOTHING");
                }
        }
        for (size_t i = 0; keyed && i < t->key_cnt; i++) {
                sf_buf_printf(&s->sql, i ? " AND " : " WHERE ");
                sf_sql_ident(&s->sql, t->key[i]);
                sf_buf_printf(&s->sql, " = ");
                db_param(s, cJSON_GetObjectItemCaseSensitive(doc, t->key[i]));
        }
        if (!s->sql.data || s->nparams > DB_MAX_PARAMS) {
                sf_seterr(errstr, errstr_size,
                          "the statement for %s is too large", t->table);
                return -1;
        }
        return 0;
}

/* --- SQLite ------------------------------------------------------------- */

/* Whether the capture's write-back marker table exists; looked up until
 * found, since the producer may install the capture after this opened. */
static int db_sqlite_marked(sf_conn_t *c)
{
        sqlite3_stmt *st = NULL;

        if (c->marked)
                return 1;
        if (sqlite3_prepare_v2(c->sqlite,
                               "SELECT 1 FROM sqlite_master WHERE type='table' "
                               "AND name='" DB_WRITEBACK "'",
                               -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
                c->marked = 1;
        sqlite3_finalize(st);
        return c->marked;
}

static sf_status_t db_sqlite_status(int rc)
{
        return rc == SQLITE_BUSY || rc == SQLITE_LOCKED || rc == SQLITE_IOERR ||
                       rc == SQLITE_FULL
                   ? SF_RETRY
                   : SF_FATAL;
}

static sf_status_t db_sqlite_write(sf_conn_t *c, const sf_target_cfg_t *t,
                                   db_stmt_t *s, char *errstr,
                                   size_t errstr_size)
{
        const char *path = c->pipeline->source.path;
        sqlite3_stmt *stmt = NULL;
        sf_status_t st = SF_OK;
        char *err = NULL;
        int rc, marked = db_sqlite_marked(c);

        rc = sqlite3_exec(c->sqlite,
                          marked ? "BEGIN IMMEDIATE; INSERT INTO " DB_WRITEBACK
                                   " VALUES('syncfleet')"
                                 : "BEGIN IMMEDIATE",
                          NULL, NULL, &err);
        if (rc != SQLITE_OK) {
                sf_seterr(errstr, errstr_size, "%s: %s", path,
                          err ? err : sqlite3_errstr(rc));
                sqlite3_free(err);
                sqlite3_exec(c->sqlite, "ROLLBACK", NULL, NULL, NULL);
                return SF_RETRY;
        }
        rc = sqlite3_prepare_v2(c->sqlite, s->sql.data, -1, &stmt, NULL);
        if (rc == SQLITE_OK) {
                for (int i = 0; i < s->nparams; i++)
                        sf_sqlite_bind_json(stmt, i + 1, s->params[i]);
                rc = sqlite3_step(stmt);
        }
        if (rc != SQLITE_DONE) {
                sf_seterr(errstr, errstr_size, "%s %s: %s", t->operation,
                          t->table, sqlite3_errmsg(c->sqlite));
                st = db_sqlite_status(rc);
        } else if (sqlite3_changes(c->sqlite) == 0 &&
                   strcmp(t->operation, "insert") &&
                   strcmp(t->operation, "upsert")) {
                sf_seterr(errstr, errstr_size, "%s %s: no row has that key",
                          t->operation, t->table);
                st = SF_FATAL;
        }
        sqlite3_finalize(stmt);
        if (st == SF_OK) {
                rc = sqlite3_exec(
                    c->sqlite,
                    marked ? "DELETE FROM " DB_WRITEBACK "; COMMIT" : "COMMIT",
                    NULL, NULL, &err);
                if (rc != SQLITE_OK) {
                        sf_seterr(errstr, errstr_size, "%s: commit: %s", path,
                                  err ? err : sqlite3_errstr(rc));
                        sqlite3_free(err);
                        st = SF_RETRY;
                }
        }
        if (st != SF_OK)
                sqlite3_exec(c->sqlite, "ROLLBACK", NULL, NULL, NULL);
        return st;
}

/* --- PostgreSQL --------------------------------------------------------- */

/* Connects (again, after a loss) and binds syncfleet's origin. */
static int db_pg_connect(sf_conn_t *c, char *errstr, size_t errstr_size)
{
        char err[512];

        if (c->pg && PQstatus(c->pg) == CONNECTION_OK)
                return 0;
        PQfinish(c->pg);
        c->pg = PQconnectdb(c->pipeline->source.dsn);
        if (!c->pg || PQstatus(c->pg) != CONNECTION_OK) {
                sf_seterr(errstr, errstr_size, "connector %s: %s", c->cfg->name,
                          c->pg ? PQerrorMessage(c->pg) : "out of memory");
                PQfinish(c->pg);
                c->pg = NULL;
                return -1;
        }
        if (sf_pg_origin_setup(c->pg, NULL, 0, err, sizeof(err))) {
                sf_seterr(errstr, errstr_size,
                          "connector %s: cannot mark syncfleet's writes "
                          "(they would come back as events): %s",
                          c->cfg->name, err);
                PQfinish(c->pg);
                c->pg = NULL;
                return -1;
        }
        return 0;
}

/* SQLSTATE classes worth another try: connection (08), transaction
 * rollback such as serialization or deadlock (40), resources (53),
 * operator intervention such as a shutdown (57). */
static sf_status_t db_pg_status(const PGresult *res)
{
        const char *state =
            res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

        if (!state)
                return SF_RETRY;
        if (!strncmp(state, "08", 2) || !strncmp(state, "40", 2) ||
            !strncmp(state, "53", 2) || !strncmp(state, "57", 2))
                return SF_RETRY;
        return SF_FATAL;
}

static sf_status_t db_pg_write(sf_conn_t *c, const sf_target_cfg_t *t,
                               db_stmt_t *s, char *errstr, size_t errstr_size)
{
        const char **values =
            sf_calloc((size_t)s->nparams + 1, sizeof(*values));
        char **owned = sf_calloc((size_t)s->nparams + 1, sizeof(*owned));
        sf_status_t st = SF_OK;
        PGresult *res;
        char num[64];

        if (db_pg_connect(c, errstr, errstr_size)) {
                st = SF_RETRY;
                goto out;
        }
        for (int i = 0; i < s->nparams; i++) {
                const cJSON *v = s->params[i];

                if (!v || cJSON_IsNull(v))
                        values[i] = NULL;
                else if (cJSON_IsString(v))
                        values[i] = v->valuestring;
                else if (cJSON_IsBool(v))
                        values[i] = cJSON_IsTrue(v) ? "true" : "false";
                else if (cJSON_IsNumber(v))
                        values[i] = owned[i] =
                            sf_strdup(sf_json_number_text(v, num, sizeof(num)));
                else
                        values[i] = owned[i] = sf_json_print(v, 0);
        }
        /* untyped parameters: PostgreSQL takes each column's type */
        res = PQexecParams(c->pg, s->sql.data, s->nparams, NULL, values, NULL,
                           NULL, 0);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                sf_seterr(
                    errstr, errstr_size, "%s %s: %s", t->operation, t->table,
                    res ? PQresultErrorMessage(res) : PQerrorMessage(c->pg));
                st = db_pg_status(res);
        } else if (!strcmp(PQcmdTuples(res), "0") &&
                   strcmp(t->operation, "insert") &&
                   strcmp(t->operation, "upsert")) {
                sf_seterr(errstr, errstr_size, "%s %s: no row has that key",
                          t->operation, t->table);
                st = SF_FATAL;
        }
        PQclear(res);
out:
        for (int i = 0; i < s->nparams; i++)
                free(owned[i]);
        free(owned);
        free(values);
        return st;
}

/* --- the connector -------------------------------------------------------- */

static sf_conn_t *db_open(const sf_connector_cfg_t *cfg,
                          const sf_config_t *pipeline, const char *bootstraps,
                          char *errstr, size_t errstr_size)
{
        sf_conn_t *c = sf_calloc(1, sizeof(*c));

        (void)bootstraps;
        c->cfg = cfg;
        c->pipeline = pipeline;
        switch (pipeline->source.type) {
        case SF_SOURCE_SQLITE:
                if (sqlite3_open_v2(pipeline->source.path, &c->sqlite,
                                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                                    NULL) != SQLITE_OK) {
                        sf_seterr(errstr, errstr_size,
                                  "connector %s: cannot open %s: %s", cfg->name,
                                  pipeline->source.path,
                                  c->sqlite ? sqlite3_errmsg(c->sqlite)
                                            : "out of memory");
                        goto fail;
                }
                sqlite3_busy_timeout(c->sqlite, DB_BUSY_MS);
                return c;
        case SF_SOURCE_POSTGRES:
                if (db_pg_connect(c, errstr, errstr_size))
                        goto fail;
                return c;
        case SF_SOURCE_NONE:
                break;
        }
        sf_seterr(errstr, errstr_size,
                  "connector %s: the pipeline has no source database",
                  cfg->name);
fail:
        sqlite3_close(c->sqlite);
        PQfinish(c->pg);
        free(c);
        return NULL;
}

static int db_send(sf_conn_t *c, const sf_request_t *req, sf_conn_done_cb *done,
                   void *opaque, char *errstr, size_t errstr_size)
{
        sf_status_t st;
        db_stmt_t *s;
        char err[512] = "";

        if (!req->target || !req->target->table) {
                sf_seterr(errstr, errstr_size,
                          "connector %s: the target names no table",
                          c->cfg->name);
                return -1;
        }
        s = sf_calloc(1, sizeof(*s));
        sf_buf_init(&s->sql, 1024 * 1024);
        s->pg = c->pipeline->source.type == SF_SOURCE_POSTGRES;
        if (!cJSON_IsObject(req->body)) {
                snprintf(err, sizeof(err),
                         "the document for %s is not an object of columns",
                         req->target->table);
                st = SF_FATAL;
        } else if (db_build(req->target, req->body, s, err, sizeof(err))) {
                st = SF_FATAL;
        } else {
                st = s->pg
                         ? db_pg_write(c, req->target, s, err, sizeof(err))
                         : db_sqlite_write(c, req->target, s, err, sizeof(err));
        }
        sf_buf_free(&s->sql);
        free(s);
        if (st != SF_OK)
                sf_debug("database", "connector %s: %s", c->cfg->name, err);
        sf_doneq_push(&c->done, done, opaque, st, err);
        return 0;
}

static int db_poll(sf_conn_t *c, int timeout_ms)
{
        (void)timeout_ms; /* nothing is ever in progress */
        return sf_doneq_drain(&c->done);
}

static size_t db_pending(const sf_conn_t *c)
{
        return c->done.cnt;
}

static void db_close(sf_conn_t *c)
{
        if (!c)
                return;
        sf_doneq_clear(&c->done);
        sqlite3_close(c->sqlite);
        PQfinish(c->pg);
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
