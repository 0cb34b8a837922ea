/*
 * PostgreSQL connections for change capture: the replication connection
 * and its commands, the publication, the slot, the captured tables and
 * syncfleet's replication origins.
 *
 * Every name that goes into SQL text is quoted with PQescapeIdentifier;
 * every value travels as a parameter.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture_postgres_int.h"
#include "log.h"

/* The server's sentence, without libpq's trailing newline. */
static void pg_conn_err(PGconn *conn, const char *what, char *errstr,
                        size_t errstr_size)
{
        const char *msg = conn ? PQerrorMessage(conn) : "out of memory";
        size_t n = strlen(msg);

        while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
                n--;
        sf_seterr(errstr, errstr_size, "%s: %.*s", what, (int)n, msg);
}

void sf_pg_result_err(PGresult *res, PGconn *conn, const char *what,
                      char *errstr, size_t errstr_size)
{
        const char *msg = res ? PQresultErrorMessage(res) : "";
        size_t n;

        if (!msg || !*msg) {
                pg_conn_err(conn, what, errstr, errstr_size);
                return;
        }
        n = strlen(msg);
        while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
                n--;
        sf_seterr(errstr, errstr_size, "%s: %.*s", what, (int)n, msg);
}

PGconn *sf_pg_connect(const char *dsn, int replication, char *errstr,
                      size_t errstr_size)
{
        const char *keys[] = {"dbname", "replication",
                              "fallback_application_name", NULL};
        const char *vals[] = {dsn, replication ? "database" : NULL, "syncfleet",
                              NULL};
        PGconn *conn;

        if (!replication) {
                keys[1] = "fallback_application_name";
                vals[1] = "syncfleet";
                keys[2] = NULL;
        }
        conn = PQconnectdbParams(keys, vals, 1);
        if (!conn || PQstatus(conn) != CONNECTION_OK) {
                pg_conn_err(conn, "connecting to PostgreSQL", errstr,
                            errstr_size);
                PQfinish(conn);
                return NULL;
        }
        if (sf_pg_exec(conn, sf_pg_session_sql, 0, NULL, errstr, errstr_size)) {
                PQfinish(conn);
                return NULL;
        }
        return conn;
}

int sf_pg_exec(PGconn *conn, const char *sql, int nparams,
               const char *const *params, char *errstr, size_t errstr_size)
{
        PGresult *res = nparams ? PQexecParams(conn, sql, nparams, NULL, params,
                                               NULL, NULL, 0)
                                : PQexec(conn, sql);
        ExecStatusType st = PQresultStatus(res);
        int rc = 0;

        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
                sf_pg_result_err(res, conn, sql, errstr, errstr_size);
                rc = -1;
        }
        PQclear(res);
        return rc;
}

PGresult *sf_pg_query(PGconn *conn, const char *sql, int nparams,
                      const char *const *params, char *errstr,
                      size_t errstr_size)
{
        PGresult *res = nparams ? PQexecParams(conn, sql, nparams, NULL, params,
                                               NULL, NULL, 0)
                                : PQexec(conn, sql);

        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
                sf_pg_result_err(res, conn, sql, errstr, errstr_size);
                PQclear(res);
                return NULL;
        }
        return res;
}

char *sf_pg_quote_ident(PGconn *conn, const char *ident)
{
        char *q = PQescapeIdentifier(conn, ident, strlen(ident));
        char *s;

        if (!q)
                return sf_asprintf("\"%s\"", ident); /* only out of memory */
        s = sf_strdup(q);
        PQfreemem(q);
        return s;
}

/* --- Captured tables ----------------------------------------------------- */

void sf_pg_tables_free(sf_pg_table_t *tables, size_t cnt)
{
        for (size_t i = 0; i < cnt; i++) {
                free(tables[i].name);
                free(tables[i].schema);
                free(tables[i].relname);
                for (size_t k = 0; k < tables[i].key_cnt; k++)
                        free(tables[i].key[k]);
                free(tables[i].key);
        }
        free(tables);
}

/* The columns of the replica identity of relation OID, as a text array
 * literal, and the identity kind. */
static const char pg_table_sql[] =
    "SELECT n.nspname, c.relname, c.relreplident, c.relkind,"
    " ARRAY(SELECT a.attname FROM pg_attribute a WHERE a.attrelid = c.oid"
    "  AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum)::text[],"
    " ARRAY(SELECT a.attname FROM pg_index i JOIN pg_attribute a"
    "  ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
    "  WHERE i.indrelid = c.oid AND CASE c.relreplident"
    "   WHEN 'd' THEN i.indisprimary WHEN 'i' THEN i.indisreplident"
    "   ELSE false END)::text[]"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.oid = to_regclass($1)";

/* Whether NAME is an element of the text array literal ARR ("{a,b}"). The
 * columns come back unquoted unless they need quoting; such names are
 * compared with their quotes removed. */
static int pg_array_has(const char *arr, const char *name)
{
        const char *p = arr;
        size_t n = strlen(name);

        if (*p == '{')
                p++;
        while (*p && *p != '}') {
                const char *start = p;
                int quoted = *p == '"';
                sf_buf_t item;
                int eq;

                sf_buf_init(&item, 0);
                if (quoted) {
                        for (p++; *p && *p != '"'; p++) {
                                if (*p == '\\' && p[1])
                                        p++;
                                sf_buf_append(&item, p, 1);
                        }
                        if (*p == '"')
                                p++;
                } else {
                        while (*p && *p != ',' && *p != '}')
                                p++;
                        sf_buf_append(&item, start, (size_t)(p - start));
                }
                eq = item.len == n && !memcmp(item.data, name, n);
                sf_buf_free(&item);
                if (eq)
                        return 1;
                if (*p == ',')
                        p++;
        }
        return 0;
}

/* Resolves pipeline table T into OUT. */
static int pg_table_resolve(PGconn *conn, const sf_config_t *cfg,
                            const sf_table_cfg_t *t, sf_pg_table_t *out,
                            char *errstr, size_t errstr_size)
{
        const char *params[1] = {t->name};
        PGresult *res;
        const char *ident, *cols, *idcols;
        int rc = -1;

        memset(out, 0, sizeof(*out));
        res = sf_pg_query(conn, pg_table_sql, 1, params, errstr, errstr_size);
        if (!res)
                return -1;
        if (PQntuples(res) != 1) {
                sf_seterr(errstr, errstr_size,
                          "table \"%s\" named in the pipeline does not exist "
                          "in database %s",
                          t->name, PQdb(conn));
                goto out;
        }
        if (strcmp(PQgetvalue(res, 0, 3), "r") &&
            strcmp(PQgetvalue(res, 0, 3), "p")) {
                sf_seterr(errstr, errstr_size,
                          "\"%s\" in database %s is not a table", t->name,
                          PQdb(conn));
                goto out;
        }
        ident = PQgetvalue(res, 0, 2);
        cols = PQgetvalue(res, 0, 4);
        idcols = PQgetvalue(res, 0, 5);
        /* published for updates and deletes, such a table would make
         * PostgreSQL refuse the application's own updates and deletes */
        if (*ident != 'f' && !strcmp(idcols, "{}")) {
                sf_seterr(errstr, errstr_size,
                          "table \"%s\" has no replica identity (%s): once "
                          "published, PostgreSQL would refuse the "
                          "application's updates and deletes of it; add a "
                          "primary key or ALTER TABLE %s REPLICA IDENTITY "
                          "FULL",
                          t->name,
                          *ident == 'n' ? "REPLICA IDENTITY NOTHING"
                                        : "no primary key",
                          t->name);
                goto out;
        }
        for (size_t k = 0; k < t->key_cnt; k++) {
                if (!pg_array_has(cols, t->key[k])) {
                        sf_seterr(errstr, errstr_size,
                                  "table \"%s\" in database %s has no column "
                                  "\"%s\" (a key column in the pipeline)",
                                  t->name, PQdb(conn), t->key[k]);
                        goto out;
                }
                /* a delete carries the replica identity only */
                if (*ident != 'f' && !pg_array_has(idcols, t->key[k])) {
                        sf_seterr(errstr, errstr_size,
                                  "table \"%s\": key column \"%s\" is not "
                                  "part of its replica identity (%s), so a "
                                  "deleted row could not be named; use the "
                                  "primary key as the pipeline's key, or "
                                  "ALTER TABLE %s REPLICA IDENTITY FULL",
                                  t->name, t->key[k], idcols, t->name);
                        goto out;
                }
        }
        out->name = sf_strdup(t->name);
        out->schema = sf_strdup(PQgetvalue(res, 0, 0));
        out->relname = sf_strdup(PQgetvalue(res, 0, 1));
        out->key = sf_calloc(t->key_cnt, sizeof(*out->key));
        for (size_t k = 0; k < t->key_cnt; k++)
                out->key[k] = sf_strdup(t->key[k]);
        out->key_cnt = t->key_cnt;
        out->events = sf_config_captured_events(cfg, t);
        rc = 0;
out:
        PQclear(res);
        return rc;
}

int sf_pg_tables_resolve(PGconn *conn, const sf_config_t *cfg,
                         sf_pg_table_t **tables, size_t *cnt, char *errstr,
                         size_t errstr_size)
{
        sf_pg_table_t *v = NULL;
        size_t n = 0;
        int rc = 0;

        for (size_t i = 0; i < cfg->table_cnt && !rc; i++) {
                const sf_table_cfg_t *t = &cfg->tables[i];

                if (!sf_config_captured_events(cfg, t))
                        continue;
                v = sf_realloc(v, (n + 1) * sizeof(*v));
                rc = pg_table_resolve(conn, cfg, t, &v[n], errstr, errstr_size);
                if (!rc)
                        n++;
        }
        if (rc) {
                sf_pg_tables_free(v, n);
                return -1;
        }
        *tables = v;
        *cnt = n;
        return 0;
}

/* --- Publication ---------------------------------------------------------- */

/* "schema"."table" of every table, comma-separated, into B. */
static void pg_table_list(PGconn *conn, sf_buf_t *b,
                          const sf_pg_table_t *tables, size_t cnt)
{
        for (size_t i = 0; i < cnt; i++) {
                char *s = sf_pg_quote_ident(conn, tables[i].schema);
                char *t = sf_pg_quote_ident(conn, tables[i].relname);

                sf_buf_printf(b, "%s%s.%s", i ? ", " : "", s, t);
                free(s);
                free(t);
        }
}

/* Whether the publication's tables (rows of schemaname, tablename) are
 * exactly TABLES. */
static int pg_same_tables(PGresult *res, const sf_pg_table_t *tables,
                          size_t cnt)
{
        if ((size_t)PQntuples(res) != cnt)
                return 0;
        for (size_t i = 0; i < cnt; i++) {
                int found = 0;

                for (int r = 0; r < PQntuples(res) && !found; r++)
                        found =
                            !strcmp(PQgetvalue(res, r, 0), tables[i].schema) &&
                            !strcmp(PQgetvalue(res, r, 1), tables[i].relname);
                if (!found)
                        return 0;
        }
        return 1;
}

int sf_pg_publication_sync(PGconn *conn, const char *pub,
                           const sf_pg_table_t *tables, size_t cnt,
                           int *changed, char *errstr, size_t errstr_size)
{
        static const char publish[] =
            " WITH (publish = 'insert, update, delete, truncate')";
        const char *params[1] = {pub};
        char *qpub = sf_pg_quote_ident(conn, pub);
        PGresult *res = NULL;
        sf_buf_t sql;
        int rc = -1, exists, all;

        *changed = 0;
        sf_buf_init(&sql, 0);
        res = sf_pg_query(conn,
                          "SELECT puballtables, pubinsert AND pubupdate AND "
                          "pubdelete AND pubtruncate FROM pg_publication "
                          "WHERE pubname = $1",
                          1, params, errstr, errstr_size);
        if (!res)
                goto out;
        exists = PQntuples(res) == 1;
        all = exists && !strcmp(PQgetvalue(res, 0, 0), "t");
        if (all) {
                sf_seterr(errstr, errstr_size,
                          "publication \"%s\" is FOR ALL TABLES; syncfleet "
                          "needs one of its own, limited to the captured "
                          "tables (choose another source.publication)",
                          pub);
                goto out;
        }
        if (exists && strcmp(PQgetvalue(res, 0, 1), "t")) {
                sf_buf_printf(&sql,
                              "ALTER PUBLICATION %s SET (publish = "
                              "'insert, update, delete, truncate')",
                              qpub);
                if (sf_pg_exec(conn, sql.data, 0, NULL, errstr, errstr_size))
                        goto out;
                sf_buf_reset(&sql);
                *changed = 1;
        }
        PQclear(res);
        res = NULL;
        if (!exists) {
                sf_buf_printf(&sql, "CREATE PUBLICATION %s", qpub);
                if (cnt) {
                        sf_buf_printf(&sql, " FOR TABLE ");
                        pg_table_list(conn, &sql, tables, cnt);
                }
                sf_buf_printf(&sql, "%s", publish);
                rc = sf_pg_exec(conn, sql.data, 0, NULL, errstr, errstr_size);
                *changed = 1;
                goto out;
        }
        res = sf_pg_query(conn,
                          "SELECT schemaname, tablename FROM "
                          "pg_publication_tables WHERE pubname = $1",
                          1, params, errstr, errstr_size);
        if (!res)
                goto out;
        if (pg_same_tables(res, tables, cnt)) {
                rc = 0;
                goto out;
        }
        *changed = 1;
        if (cnt) {
                sf_buf_printf(&sql, "ALTER PUBLICATION %s SET TABLE ", qpub);
                pg_table_list(conn, &sql, tables, cnt);
                rc = sf_pg_exec(conn, sql.data, 0, NULL, errstr, errstr_size);
                goto out;
        }
        /* no table captured: empty it, table by table */
        rc = 0;
        for (int r = 0; r < PQntuples(res) && !rc; r++) {
                sf_pg_table_t t = {.schema = PQgetvalue(res, r, 0),
                                   .relname = PQgetvalue(res, r, 1)};

                sf_buf_reset(&sql);
                sf_buf_printf(&sql, "ALTER PUBLICATION %s DROP TABLE ", qpub);
                pg_table_list(conn, &sql, &t, 1);
                rc = sf_pg_exec(conn, sql.data, 0, NULL, errstr, errstr_size);
        }
out:
        PQclear(res);
        sf_buf_free(&sql);
        free(qpub);
        return rc;
}

/* --- Slot ------------------------------------------------------------------
 */

int sf_pg_slot_info(PGconn *conn, const char *slot, sf_pg_slot_info_t *info,
                    char *errstr, size_t errstr_size)
{
        char *lit = PQescapeLiteral(conn, slot, strlen(slot));
        char *sql;
        PGresult *res;
        int rc = -1;

        /* a replication connection takes the simple query protocol only,
         * hence the literal instead of a parameter */
        memset(info, 0, sizeof(*info));
        sql = sf_asprintf("SELECT slot_type, plugin, database = "
                          "current_database(), active, confirmed_flush_lsn "
                          "FROM pg_replication_slots WHERE slot_name = %s",
                          lit ? lit : "NULL");
        PQfreemem(lit);
        res = sf_pg_query(conn, sql, 0, NULL, errstr, errstr_size);
        free(sql);
        if (!res)
                return -1;
        if (PQntuples(res) == 0) {
                rc = 0;
                goto out;
        }
        if (strcmp(PQgetvalue(res, 0, 0), "logical") ||
            strcmp(PQgetvalue(res, 0, 1), "pgoutput") ||
            strcmp(PQgetvalue(res, 0, 2), "t")) {
                sf_seterr(errstr, errstr_size,
                          "replication slot \"%s\" exists but is not a "
                          "pgoutput slot of database %s (%s, plugin %s): "
                          "choose another source.slot",
                          slot, PQdb(conn), PQgetvalue(res, 0, 0),
                          PQgetvalue(res, 0, 1));
                goto out;
        }
        info->exists = 1;
        info->active = !strcmp(PQgetvalue(res, 0, 3), "t");
        if (!PQgetisnull(res, 0, 4))
                sf_pg_lsn_parse(PQgetvalue(res, 0, 4), &info->confirmed_flush);
        rc = 0;
out:
        PQclear(res);
        return rc;
}

int sf_pg_slot_create(PGconn *repl, const char *slot, int export,
                      char **snapshot, uint64_t *consistent, char *errstr,
                      size_t errstr_size)
{
        char *qslot = sf_pg_quote_ident(repl, slot);
        char *sql = sf_asprintf(
            "CREATE_REPLICATION_SLOT %s LOGICAL pgoutput "
            "%s",
            qslot, export ? "EXPORT_SNAPSHOT" : "NOEXPORT_SNAPSHOT");
        PGresult *res = sf_pg_query(repl, sql, 0, NULL, errstr, errstr_size);
        int rc = -1;

        if (!res)
                goto out;
        /* slot_name, consistent_point, snapshot_name, output_plugin */
        if (PQntuples(res) != 1 || PQnfields(res) < 3 ||
            sf_pg_lsn_parse(PQgetvalue(res, 0, 1), consistent)) {
                sf_seterr(errstr, errstr_size,
                          "CREATE_REPLICATION_SLOT: unexpected answer");
                goto out;
        }
        if (snapshot)
                *snapshot = export && !PQgetisnull(res, 0, 2)
                                ? sf_strdup(PQgetvalue(res, 0, 2))
                                : NULL;
        rc = 0;
out:
        PQclear(res);
        free(sql);
        free(qslot);
        return rc;
}

int sf_pg_slot_drop(PGconn *conn, const char *slot, char *errstr,
                    size_t errstr_size)
{
        const char *params[1] = {slot};

        return sf_pg_exec(conn,
                          "SELECT pg_drop_replication_slot(slot_name) FROM "
                          "pg_replication_slots WHERE slot_name = $1",
                          1, params, errstr, errstr_size);
}

/* --- Replication stream --------------------------------------------------- */

int sf_pg_identify(PGconn *repl, char **sysid, char *errstr, size_t errstr_size)
{
        PGresult *res =
            sf_pg_query(repl, "IDENTIFY_SYSTEM", 0, NULL, errstr, errstr_size);

        if (!res)
                return -1;
        if (PQntuples(res) != 1 || PQnfields(res) < 1) {
                sf_seterr(errstr, errstr_size,
                          "IDENTIFY_SYSTEM: unexpected answer");
                PQclear(res);
                return -1;
        }
        *sysid = sf_strdup(PQgetvalue(res, 0, 0));
        PQclear(res);
        return 0;
}

int sf_pg_stream_start(PGconn *repl, const char *slot, const char *pub,
                       uint64_t start, char *errstr, size_t errstr_size)
{
        char *qslot = sf_pg_quote_ident(repl, slot);
        char *lit = PQescapeLiteral(repl, pub, strlen(pub));
        char lsn[24];
        char *sql;
        PGresult *res;
        int rc = 0;

        sf_pg_lsn_format(start, lsn, sizeof(lsn));
        sql = sf_asprintf("START_REPLICATION SLOT %s LOGICAL %s "
                          "(proto_version '1', publication_names %s)",
                          qslot, lsn, lit ? lit : "''");
        res = PQexec(repl, sql);
        if (PQresultStatus(res) != PGRES_COPY_BOTH) {
                sf_pg_result_err(res, repl, "START_REPLICATION", errstr,
                                 errstr_size);
                rc = -1;
        }
        PQclear(res);
        PQfreemem(lit);
        free(sql);
        free(qslot);
        return rc;
}

static void pg_put64(unsigned char *p, uint64_t v)
{
        for (int i = 7; i >= 0; i--) {
                p[i] = (unsigned char)(v & 0xff);
                v >>= 8;
        }
}

int sf_pg_stream_status(PGconn *repl, uint64_t write, uint64_t flush, int reply,
                        char *errstr, size_t errstr_size)
{
        unsigned char msg[1 + 8 * 4 + 1];
        /* microseconds since 2000-01-01 */
        int64_t now_us = (sf_now_ms() - 946684800000LL) * 1000;

        msg[0] = 'r';
        pg_put64(msg + 1, write);
        pg_put64(msg + 9, flush);
        pg_put64(msg + 17, flush); /* applied: what is delivered */
        pg_put64(msg + 25, (uint64_t)now_us);
        msg[33] = reply ? 1 : 0;
        if (PQputCopyData(repl, (const char *)msg, sizeof(msg)) <= 0 ||
            PQflush(repl) < 0) {
                pg_conn_err(repl, "sending a status update", errstr,
                            errstr_size);
                return -1;
        }
        return 0;
}
