/*
 * Change capture from a SQLite database, with triggers.
 *
 * install creates, in the application's database:
 *   _syncfleet_meta(name, value)   one row: dbid, a random id of the
 *                                  database, part of every event id
 *   _syncfleet_log(seq, ts_ms, tbl, op, key, before, after)
 *   _syncfleet_<table>_<insert|update|delete>
 *                                  one AFTER trigger per captured table
 *                                  event, writing one log row per row
 *                                  change; key/before/after are JSON built
 *                                  with json_object() over the columns the
 *                                  table had at install time (BLOBs as hex)
 * poll reads log rows in seq order; ack deletes them. A row leaves the log
 * only once ack says it was delivered, so a restart resends whatever was
 * not (at least once). The application keeps writing meanwhile: the
 * database is switched to WAL, so reading the log never blocks it, and
 * every statement waits for locks up to a busy timeout.
 *
 * Known limits: INTEGER values beyond 2^53 lose precision in the JSON
 * images (cJSON holds numbers as doubles); the columns captured are those
 * present at install time (a later ALTER TABLE needs a re-install, which
 * every producer start does).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sqlite3.h>

#include "capture.h"
#include "log.h"
#include "sql.h"
#include "sf.h"

#define SQ_COMPONENT "capture-sqlite"
#define SQ_PREFIX    "_syncfleet_"
#define SQ_LOG       "_syncfleet_log"
/* A row in this table marks a transaction syncfleet itself writes (web
 * service write-back): the triggers skip it, so write-back never loops back
 * as new events. The row is inserted and deleted inside that transaction,
 * and SQLite has one writer at a time, so no other writer ever sees it. */
#define SQ_WRITEBACK       "_syncfleet_writeback"
#define SQ_META            "_syncfleet_meta"
#define SQ_BUSY_TIMEOUT_MS 10000
/* json_object() takes at most 127 arguments (SQLITE_MAX_FUNCTION_ARG):
 * wider tables are built in chunks of this many columns. */
#define SQ_COLS_PER_CALL 63

typedef struct sq_capture {
        const sf_config_t *cfg;
        sqlite3 *db;
        char *path;
        char *dbname; /* base name of the file: sf_change_t.db */
        char *dbid;   /* NULL until installed */
        int batch_size;
        int64_t handed; /* highest seq handed out */
        int64_t acked;  /* highest seq acknowledged */
        sqlite3_stmt *poll_stmt;
        sqlite3_stmt *ack_stmt;
} sq_capture_t;

/* One trigger install wants. */
typedef struct sq_trigger {
        char *name;
        char *sql;
        int exists; /* found with exactly this SQL */
} sq_trigger_t;

typedef struct sq_trigger_set {
        sq_trigger_t *v;
        size_t cnt;
} sq_trigger_set_t;

static int sq_exec(sq_capture_t *c, const char *sql, char *errstr,
                   size_t errstr_size)
{
        char *msg = NULL;

        if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) == SQLITE_OK)
                return 0;
        sf_seterr(errstr, errstr_size, "%s: %s", c->path,
                  msg ? msg : sqlite3_errmsg(c->db));
        sqlite3_free(msg);
        return -1;
}

static int sq_prepare(sq_capture_t *c, const char *sql, sqlite3_stmt **stmt,
                      char *errstr, size_t errstr_size)
{
        if (sqlite3_prepare_v2(c->db, sql, -1, stmt, NULL) == SQLITE_OK)
                return 0;
        sf_seterr(errstr, errstr_size, "%s: %s", c->path,
                  sqlite3_errmsg(c->db));
        *stmt = NULL;
        return -1;
}

/* 'text' with embedded quotes doubled, for values in generated SQL. */
static void sq_literal(sf_buf_t *b, const char *s)
{
        sf_buf_append(b, "'", 1);
        for (const char *p = s; *p; p++) {
                if (*p == '\'')
                        sf_buf_append(b, "''", 2);
                else
                        sf_buf_append(b, p, 1);
        }
        sf_buf_append(b, "'", 1);
}

/* CASE WHEN typeof(ROW."col")='blob' THEN hex(ROW."col") ELSE ROW."col"
 * END: json_object() refuses BLOBs. */
static void sq_col_value(sf_buf_t *b, const char *row, const char *col)
{
        sf_buf_printf(b, "CASE WHEN typeof(%s.", row);
        sf_sql_ident(b, col);
        sf_buf_printf(b, ")='blob' THEN hex(%s.", row);
        sf_sql_ident(b, col);
        sf_buf_printf(b, ") ELSE %s.", row);
        sf_sql_ident(b, col);
        sf_buf_append(b, " END", 4);
}

/* A JSON object of COLS of ROW (NEW or OLD): json_object() over the first
 * SQ_COLS_PER_CALL columns, json_set() around it for each further chunk.
 * A json_set() path cannot hold a double quote, so such a column name in a
 * table that wide is refused. */
static int sq_json_expr(sf_buf_t *b, const char *row, char **cols, size_t cnt,
                        const char *table, char *errstr, size_t errstr_size)
{
        size_t chunks =
            cnt ? (cnt + SQ_COLS_PER_CALL - 1) / SQ_COLS_PER_CALL : 1;
        size_t i, k;

        for (k = 1; k < chunks; k++)
                sf_buf_append(b, "json_set(", 9);
        sf_buf_append(b, "json_object(", 12);
        for (i = 0; i < cnt; i++) {
                if (i && i % SQ_COLS_PER_CALL == 0)
                        sf_buf_append(b, "),", 2);
                else if (i)
                        sf_buf_append(b, ",", 1);
                if (i < SQ_COLS_PER_CALL) {
                        sq_literal(b, cols[i]);
                } else {
                        char *path;

                        if (strchr(cols[i], '"')) {
                                sf_seterr(errstr, errstr_size,
                                          "table \"%s\" has more than %d "
                                          "columns and a column name with a "
                                          "double quote (%s): it cannot be "
                                          "captured",
                                          table, SQ_COLS_PER_CALL, cols[i]);
                                return -1;
                        }
                        path = sf_asprintf("$.\"%s\"", cols[i]);
                        sq_literal(b, path);
                        free(path);
                }
                sf_buf_append(b, ",", 1);
                sq_col_value(b, row, cols[i]);
        }
        sf_buf_append(b, ")", 1);
        return 0;
}

static const struct {
        unsigned bit;
        const char *event; /* trigger name suffix */
        const char *sql_event;
        char op;
} sq_events[] = {
    {SF_EV_INSERT, "insert", "INSERT", 'c'},
    {SF_EV_UPDATE, "update", "UPDATE", 'u'},
    {SF_EV_DELETE, "delete", "DELETE", 'd'},
};

/* The CREATE TRIGGER statement for event E of TABLE. */
static char *sq_trigger_sql(const char *name, const char *table, size_t e,
                            char **cols, size_t col_cnt, char **key,
                            size_t key_cnt, char *errstr, size_t errstr_size)
{
        const char *key_row = sq_events[e].op == 'd' ? "OLD" : "NEW";
        sf_buf_t b;
        int rc = 0;

        sf_buf_init(&b, 0);
        sf_buf_append(&b, "CREATE TRIGGER ", 15);
        sf_sql_ident(&b, name);
        sf_buf_printf(&b, " AFTER %s ON ", sq_events[e].sql_event);
        sf_sql_ident(&b, table);
        sf_buf_printf(
            &b, " FOR EACH ROW WHEN NOT EXISTS (SELECT 1 FROM " SQ_WRITEBACK
                ") BEGIN INSERT INTO " SQ_LOG
                "(ts_ms,tbl,op,key,before,after) VALUES("
                "CAST((julianday('now')-2440587.5)*86400000 AS "
                "INTEGER),");
        sq_literal(&b, table);
        sf_buf_printf(&b, ",'%c',", sq_events[e].op);
        rc =
            sq_json_expr(&b, key_row, key, key_cnt, table, errstr, errstr_size);
        sf_buf_append(&b, ",", 1);
        if (!rc && sq_events[e].op == 'c')
                sf_buf_append(&b, "NULL", 4);
        else if (!rc)
                rc = sq_json_expr(&b, "OLD", cols, col_cnt, table, errstr,
                                  errstr_size);
        sf_buf_append(&b, ",", 1);
        if (!rc && sq_events[e].op == 'd')
                sf_buf_append(&b, "NULL", 4);
        else if (!rc)
                rc = sq_json_expr(&b, "NEW", cols, col_cnt, table, errstr,
                                  errstr_size);
        sf_buf_append(&b, "); END", 6);
        if (rc) {
                sf_buf_free(&b);
                return NULL;
        }
        return sf_buf_steal(&b);
}

static void sq_free_strv(char **v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

/* The columns of TABLE in declaration order; -1 with errstr when the
 * table does not exist. */
static int sq_columns(sq_capture_t *c, const char *table, char ***cols,
                      size_t *cnt, char *errstr, size_t errstr_size)
{
        sqlite3_stmt *st = NULL;
        int rc = -1, step;

        *cols = NULL;
        *cnt = 0;
        if (sq_prepare(c,
                       "SELECT p.name FROM sqlite_master s, "
                       "pragma_table_info(s.name) p WHERE s.type='table' "
                       "AND s.name=?1 COLLATE NOCASE ORDER BY p.cid",
                       &st, errstr, errstr_size))
                return -1;
        sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
        while ((step = sqlite3_step(st)) == SQLITE_ROW) {
                *cols = sf_realloc(*cols, (*cnt + 1) * sizeof(**cols));
                (*cols)[(*cnt)++] =
                    sf_strdup((const char *)sqlite3_column_text(st, 0));
        }
        if (step != SQLITE_DONE) {
                sf_seterr(errstr, errstr_size, "%s: %s", c->path,
                          sqlite3_errmsg(c->db));
                goto out;
        }
        if (!*cnt) {
                sf_seterr(errstr, errstr_size,
                          "table \"%s\" named in the pipeline does not exist "
                          "in %s",
                          table, c->path);
                goto out;
        }
        rc = 0;
out:
        sqlite3_finalize(st);
        if (rc) {
                sq_free_strv(*cols, *cnt);
                *cols = NULL;
                *cnt = 0;
        }
        return rc;
}

/* Adds the triggers TABLE needs to SET, after checking that the table and
 * its key columns exist. */
static int sq_want_table(sq_capture_t *c, const sf_table_cfg_t *t,
                         sq_trigger_set_t *set, char *errstr,
                         size_t errstr_size)
{
        unsigned events = sf_config_captured_events(c->cfg, t);
        char **cols = NULL;
        size_t cnt = 0, i, k;
        int rc;

        rc = sq_columns(c, t->name, &cols, &cnt, errstr, errstr_size);
        for (k = 0; !rc && k < t->key_cnt; k++) {
                for (i = 0; i < cnt; i++)
                        if (!strcasecmp(cols[i], t->key[k]))
                                break;
                if (i == cnt) {
                        sf_seterr(errstr, errstr_size,
                                  "table \"%s\" in %s has no column \"%s\" "
                                  "(a key column in the pipeline)",
                                  t->name, c->path, t->key[k]);
                        rc = -1;
                }
        }
        for (size_t e = 0; !rc && e < 3; e++) {
                sq_trigger_t *tr;

                if (!(events & sq_events[e].bit))
                        continue;
                set->v = sf_realloc(set->v, (set->cnt + 1) * sizeof(*set->v));
                tr = &set->v[set->cnt++];
                tr->name =
                    sf_asprintf(SQ_PREFIX "%s_%s", t->name, sq_events[e].event);
                tr->exists = 0;
                tr->sql =
                    sq_trigger_sql(tr->name, t->name, e, cols, cnt, t->key,
                                   t->key_cnt, errstr, errstr_size);
                if (!tr->sql)
                        rc = -1;
        }
        sq_free_strv(cols, cnt);
        return rc;
}

static void sq_trigger_set_free(sq_trigger_set_t *set)
{
        for (size_t i = 0; i < set->cnt; i++) {
                free(set->v[i].name);
                free(set->v[i].sql);
        }
        free(set->v);
}

static int sq_drop_trigger(sq_capture_t *c, const char *name, char *errstr,
                           size_t errstr_size)
{
        sf_buf_t b;
        int rc;

        sf_buf_init(&b, 0);
        sf_buf_append(&b, "DROP TRIGGER IF EXISTS ", 23);
        sf_sql_ident(&b, name);
        rc = sq_exec(c, b.data, errstr, errstr_size);
        sf_buf_free(&b);
        return rc;
}

/* Drops every trigger with our prefix that SET does not hold with exactly
 * the same SQL (all of them when SET is NULL), and marks those kept. */
static int sq_drop_unwanted(sq_capture_t *c, sq_trigger_set_t *set,
                            int *dropped, char *errstr, size_t errstr_size)
{
        sqlite3_stmt *st = NULL;
        char **names = NULL;
        size_t cnt = 0, i;
        int rc = 0, step;

        if (sq_prepare(c,
                       "SELECT name, sql FROM sqlite_master WHERE "
                       "type='trigger' AND substr(name,1,11)='" SQ_PREFIX "'",
                       &st, errstr, errstr_size))
                return -1;
        while ((step = sqlite3_step(st)) == SQLITE_ROW) {
                const char *name = (const char *)sqlite3_column_text(st, 0);
                const char *sql = (const char *)sqlite3_column_text(st, 1);
                int keep = 0;

                for (i = 0; set && i < set->cnt && !keep; i++)
                        if (!strcmp(set->v[i].name, name) && sql &&
                            !strcmp(set->v[i].sql, sql))
                                keep = set->v[i].exists = 1;
                if (!keep) {
                        names = sf_realloc(names, (cnt + 1) * sizeof(*names));
                        names[cnt++] = sf_strdup(name);
                }
        }
        if (step != SQLITE_DONE) {
                sf_seterr(errstr, errstr_size, "%s: %s", c->path,
                          sqlite3_errmsg(c->db));
                rc = -1;
        }
        sqlite3_finalize(st);
        for (i = 0; !rc && i < cnt; i++)
                rc = sq_drop_trigger(c, names[i], errstr, errstr_size);
        *dropped = (int)cnt;
        sq_free_strv(names, cnt);
        return rc;
}

static int sq_read_dbid(sq_capture_t *c)
{
        sqlite3_stmt *st = NULL;

        free(c->dbid);
        c->dbid = NULL;
        if (sqlite3_prepare_v2(
                c->db, "SELECT value FROM " SQ_META " WHERE name='dbid'", -1,
                &st, NULL) != SQLITE_OK)
                return -1; /* not installed */
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
                c->dbid = sf_strdup((const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        return c->dbid ? 0 : -1;
}

static void sq_finalize_stmts(sq_capture_t *c)
{
        sqlite3_finalize(c->poll_stmt);
        sqlite3_finalize(c->ack_stmt);
        c->poll_stmt = c->ack_stmt = NULL;
}

static int sq_install(void *state, char *errstr, size_t errstr_size)
{
        sq_capture_t *c = state;
        sq_trigger_set_t set = {NULL, 0};
        int rc, dropped = 0, created = 0;
        size_t i;

        rc = sq_exec(c, "BEGIN IMMEDIATE", errstr, errstr_size);
        if (rc)
                return -1;
        rc = sq_exec(c,
                     "CREATE TABLE IF NOT EXISTS " SQ_META
                     "(name TEXT PRIMARY KEY, value TEXT NOT NULL);"
                     "INSERT OR IGNORE INTO " SQ_META
                     " VALUES('dbid', lower(hex(randomblob(8))));"
                     "CREATE TABLE IF NOT EXISTS " SQ_LOG
                     "(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                     " ts_ms INTEGER NOT NULL, tbl TEXT NOT NULL,"
                     " op TEXT NOT NULL, key TEXT NOT NULL,"
                     " before TEXT, after TEXT);"
                     "CREATE TABLE IF NOT EXISTS " SQ_WRITEBACK
                     "(origin TEXT NOT NULL)",
                     errstr, errstr_size);
        for (i = 0; !rc && i < c->cfg->table_cnt; i++)
                rc = sq_want_table(c, &c->cfg->tables[i], &set, errstr,
                                   errstr_size);
        if (!rc)
                rc = sq_drop_unwanted(c, &set, &dropped, errstr, errstr_size);
        for (i = 0; !rc && i < set.cnt; i++) {
                if (set.v[i].exists)
                        continue;
                rc = sq_exec(c, set.v[i].sql, errstr, errstr_size);
                created++;
        }
        if (!rc)
                rc = sq_exec(c, "COMMIT", errstr, errstr_size);
        if (rc)
                sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
        if (!rc && sq_read_dbid(c)) {
                sf_seterr(errstr, errstr_size,
                          "%s: " SQ_META " holds no database id", c->path);
                rc = -1;
        }
        if (!rc)
                sf_info(SQ_COMPONENT,
                        "%s: capturing with %zu triggers (%d created, %d "
                        "dropped)",
                        c->path, set.cnt, created, dropped);
        sq_trigger_set_free(&set);
        return rc;
}

static int sq_uninstall(void *state, char *errstr, size_t errstr_size)
{
        sq_capture_t *c = state;
        int rc, dropped = 0;

        sq_finalize_stmts(c);
        rc = sq_exec(c, "BEGIN IMMEDIATE", errstr, errstr_size);
        if (rc)
                return -1;
        rc = sq_drop_unwanted(c, NULL, &dropped, errstr, errstr_size);
        if (!rc)
                rc = sq_exec(c,
                             "DROP TABLE IF EXISTS " SQ_LOG ";"
                             "DROP TABLE IF EXISTS " SQ_WRITEBACK ";"
                             "DROP TABLE IF EXISTS " SQ_META ";"
                             "COMMIT",
                             errstr, errstr_size);
        if (rc) {
                sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
                return -1;
        }
        free(c->dbid);
        c->dbid = NULL;
        c->handed = c->acked = 0;
        sf_info(SQ_COMPONENT, "%s: removed %d triggers and the capture log",
                c->path, dropped);
        return 0;
}

/* A JSON object from column I of the current row, or NULL for SQL NULL
 * (*bad set when the text is not a JSON object). */
static cJSON *sq_column_json(sqlite3_stmt *st, int i, int *bad)
{
        const char *text = (const char *)sqlite3_column_text(st, i);
        cJSON *v;

        if (!text)
                return NULL;
        v = sf_json_parse(text, (size_t)sqlite3_column_bytes(st, i));
        if (!cJSON_IsObject(v)) {
                cJSON_Delete(v);
                *bad = 1;
                return NULL;
        }
        return v;
}

/* Fills OUT from the current log row; -1 with errstr for a row the
 * triggers cannot have written. */
static int sq_row_change(sq_capture_t *c, sqlite3_stmt *st, sf_change_t *out,
                         char *errstr, size_t errstr_size)
{
        const char *op = (const char *)sqlite3_column_text(st, 3);
        const char *tbl = (const char *)sqlite3_column_text(st, 2);
        int bad = 0;

        memset(out, 0, sizeof(*out));
        out->seq = sqlite3_column_int64(st, 0);
        out->ts_ms = sqlite3_column_int64(st, 1);
        out->txid = -1;
        out->connector = sf_strdup("sqlite");
        out->db = sf_strdup(c->dbname);
        out->table = sf_strdup(tbl ? tbl : "");
        out->key = sq_column_json(st, 4, &bad);
        out->before = sq_column_json(st, 5, &bad);
        out->after = sq_column_json(st, 6, &bad);
        out->event_id =
            sf_asprintf("sqlite:%s:%lld", c->dbid, (long long)out->seq);
        if (op && strlen(op) == 1 && strchr("cud", op[0]))
                out->op = (sf_op_t)op[0];
        else
                bad = 1;
        if (!bad && (!out->key || (out->op != SF_OP_CREATE && !out->before) ||
                     (out->op != SF_OP_DELETE && !out->after)))
                bad = 1;
        if (bad) {
                sf_seterr(errstr, errstr_size,
                          "%s: " SQ_LOG " row %lld is malformed", c->path,
                          (long long)out->seq);
                sf_change_clear(out);
                return -1;
        }
        return 0;
}

static int sq_poll(void *state, sf_change_t *out, int max, char *errstr,
                   size_t errstr_size)
{
        sq_capture_t *c = state;
        int n = 0, step = SQLITE_DONE;

        if (!c->dbid && sq_read_dbid(c)) {
                sf_seterr(errstr, errstr_size,
                          "change capture is not installed in %s", c->path);
                return -1;
        }
        if (max > c->batch_size)
                max = c->batch_size;
        if (max <= 0)
                return 0;
        if (!c->poll_stmt &&
            sq_prepare(
                c,
                "SELECT seq, ts_ms, tbl, op, key, before, after FROM " SQ_LOG
                " WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                &c->poll_stmt, errstr, errstr_size))
                return -1;
        sqlite3_bind_int64(c->poll_stmt, 1, c->handed);
        sqlite3_bind_int(c->poll_stmt, 2, max);
        while (n < max && (step = sqlite3_step(c->poll_stmt)) == SQLITE_ROW) {
                if (sq_row_change(c, c->poll_stmt, &out[n], errstr,
                                  errstr_size))
                        break;
                c->handed = out[n].seq;
                n++;
        }
        /* the rows read so far go out; a bad row fails the next poll */
        if (n == 0 && step != SQLITE_DONE) {
                if (step != SQLITE_ROW)
                        sf_seterr(errstr, errstr_size, "%s: %s", c->path,
                                  sqlite3_errmsg(c->db));
                n = -1;
        }
        sqlite3_reset(c->poll_stmt); /* ends the read transaction */
        return n;
}

static int sq_ack(void *state, int64_t position, char *errstr,
                  size_t errstr_size)
{
        sq_capture_t *c = state;
        int rc;

        if (position <= c->acked)
                return 0;
        if (!c->ack_stmt &&
            sq_prepare(c, "DELETE FROM " SQ_LOG " WHERE seq <= ?1",
                       &c->ack_stmt, errstr, errstr_size))
                return -1;
        sqlite3_bind_int64(c->ack_stmt, 1, position);
        rc = sqlite3_step(c->ack_stmt);
        sqlite3_reset(c->ack_stmt);
        if (rc != SQLITE_DONE) {
                sf_seterr(errstr, errstr_size,
                          "%s: deleting delivered log rows: %s", c->path,
                          sqlite3_errmsg(c->db));
                return -1;
        }
        c->acked = position;
        if (c->handed < position)
                c->handed = position;
        return 0;
}

static int sq_rewind(void *state, char *errstr, size_t errstr_size)
{
        sq_capture_t *c = state;

        (void)errstr;
        (void)errstr_size;
        c->handed = c->acked;
        return 0;
}

static void sq_close(void *state)
{
        sq_capture_t *c = state;

        if (!c)
                return;
        sq_finalize_stmts(c);
        sqlite3_close(c->db);
        free(c->path);
        free(c->dbname);
        free(c->dbid);
        free(c);
}

static void *sq_open(const sf_config_t *cfg, char *errstr, size_t errstr_size)
{
        sq_capture_t *c;
        sqlite3_stmt *st = NULL;
        const char *slash, *mode;
        int rc;

        if (!cfg->source.path || !*cfg->source.path) {
                sf_seterr(errstr, errstr_size, "source.path is not set");
                return NULL;
        }
        c = sf_calloc(1, sizeof(*c));
        c->cfg = cfg;
        c->path = sf_strdup(cfg->source.path);
        slash = strrchr(c->path, '/');
        c->dbname = sf_strdup(slash ? slash + 1 : c->path);
        c->batch_size =
            cfg->source.batch_size > 0 ? cfg->source.batch_size : 1000;
        /* no SQLITE_OPEN_CREATE: a wrong path must not capture from a new
         * empty database */
        if (sqlite3_open_v2(c->path, &c->db, SQLITE_OPEN_READWRITE, NULL) !=
            SQLITE_OK) {
                sf_seterr(errstr, errstr_size,
                          "cannot open SQLite database %s: %s", c->path,
                          c->db ? sqlite3_errmsg(c->db) : "out of memory");
                goto fail;
        }
        sqlite3_busy_timeout(c->db, SQ_BUSY_TIMEOUT_MS);
        rc = sq_prepare(c, "PRAGMA journal_mode=WAL", &st, errstr, errstr_size);
        if (!rc && sqlite3_step(st) != SQLITE_ROW) {
                sf_seterr(errstr, errstr_size,
                          "%s: cannot switch to WAL mode: %s", c->path,
                          sqlite3_errmsg(c->db));
                rc = -1;
        }
        if (!rc) {
                mode = (const char *)sqlite3_column_text(st, 0);
                if (!mode || strcmp(mode, "wal"))
                        sf_warn(SQ_COMPONENT,
                                "%s: journal mode is %s, not wal: reading "
                                "the log may block the application",
                                c->path, mode ? mode : "unknown");
        }
        sqlite3_finalize(st);
        if (rc)
                goto fail;
        sq_read_dbid(c); /* absent until installed */
        return c;
fail:
        sq_close(c);
        return NULL;
}

const sf_capture_source_t sf_capture_sqlite = {
    .name = "sqlite",
    .type = SF_SOURCE_SQLITE,
    .positions_in_seq = 1,
    .open = sq_open,
    .install = sq_install,
    .uninstall = sq_uninstall,
    .poll = sq_poll,
    .ack = sq_ack,
    .rewind = sq_rewind,
    .close = sq_close,
};
