/*
 * The initial snapshot: every existing row of the captured tables, as op
 * "r" changes, read in the snapshot the slot exported when it was created,
 * so that the stream that follows starts exactly where the snapshot ends
 * (a row committed before the slot's consistent point is in the snapshot,
 * a row committed after it comes from the stream; none is missed or seen
 * twice at the boundary).
 *
 * The snapshot is imported into a REPEATABLE READ transaction on a
 * connection of its own, which stays open until every row was delivered:
 * a rewind re-reads tables from the same snapshot. Tables are read in
 * batches through a cursor. On a terminal (stderr is a tty) a progress
 * line shows the table and the rows read against the planner's estimate.
 *
 * Event ids of snapshot rows are "postgres:<sysid>:<db>:snapshot:<lsn>:
 * <table>:<canonical key>": the same row read again (after a rewind)
 * gets the same id whatever order the scan returns rows in.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capture_postgres_int.h"
#include "log.h"

/* rows per FETCH */
#define SNAP_FETCH_SQL   "FETCH FORWARD 1000 FROM sf_snapshot"
#define SNAP_PROGRESS_MS 250

struct sf_pg_snapshot {
        PGconn *conn;
        char lsn_text[24];
        uint64_t consistent;
        const sf_pg_table_t *tables;
        size_t *work; /* indices into tables of those read */
        size_t work_cnt;
        size_t cur; /* index into work */
        int cursor_open;
        PGresult *batch;
        int row;
        sf_pg_layout_t layout; /* of the current batch */
        sf_pg_datum_t *row_datums;
        sf_buf_t scratch;
        uint64_t rows;       /* handed out, every table, every pass */
        uint64_t table_rows; /* handed out, this table, this pass */
        uint64_t *read;      /* per work entry: rows of its last full pass */
        double estimate;     /* pg_class.reltuples of this table, or -1 */
        int64_t started_ms;
        int64_t progress_ms;
        int tty;
        const char *db;
        const char *sysid;
        char *dsn;
};

static void snap_progress(sf_pg_snapshot_t *s, int final)
{
        const char *name;
        int64_t now = sf_mono_ms();

        if (!s->tty || s->cur >= s->work_cnt)
                return;
        if (!final && now - s->progress_ms < SNAP_PROGRESS_MS)
                return;
        s->progress_ms = now;
        name = s->tables[s->work[s->cur]].name;
        if (s->estimate > 0 && !final) {
                double pct = 100.0 * (double)s->table_rows / s->estimate;

                fprintf(stderr,
                        "\rsnapshot %zu/%zu %s: %llu of ~%.0f rows (%.0f%%)"
                        "   ",
                        s->cur + 1, s->work_cnt, name,
                        (unsigned long long)s->table_rows, s->estimate,
                        pct > 99 ? 99 : pct);
        } else {
                fprintf(stderr, "\rsnapshot %zu/%zu %s: %llu rows%s   ",
                        s->cur + 1, s->work_cnt, name,
                        (unsigned long long)s->table_rows,
                        final ? ", done\n" : "");
        }
        fflush(stderr);
}

void sf_pg_snapshot_destroy(sf_pg_snapshot_t *s)
{
        if (!s)
                return;
        PQclear(s->batch);
        PQfinish(s->conn); /* rolls the snapshot's transaction back */
        free(s->work);
        free(s->read);
        sf_pg_layout_free(&s->layout);
        free(s->row_datums);
        sf_buf_free(&s->scratch);
        free(s->dsn);
        free(s);
}

sf_pg_snapshot_t *sf_pg_snapshot_new(const char *dsn, const char *name,
                                     uint64_t consistent,
                                     const sf_pg_table_t *tables, size_t cnt,
                                     const char *db, const char *sysid,
                                     char *errstr, size_t errstr_size)
{
        sf_pg_snapshot_t *s = sf_calloc(1, sizeof(*s));
        char *lit, *sql;
        int rc;

        s->consistent = consistent;
        sf_pg_lsn_format(consistent, s->lsn_text, sizeof(s->lsn_text));
        s->tables = tables;
        s->work = sf_calloc(cnt ? cnt : 1, sizeof(*s->work));
        s->read = sf_calloc(cnt ? cnt : 1, sizeof(*s->read));
        for (size_t i = 0; i < cnt; i++)
                if (tables[i].events & SF_EV_INSERT)
                        s->work[s->work_cnt++] = i;
        s->db = db;
        s->sysid = sysid;
        s->dsn = sf_strdup(dsn);
        s->started_ms = sf_now_ms();
        s->tty = isatty(STDERR_FILENO);
        s->conn = sf_pg_connect(dsn, 0, errstr, errstr_size);
        if (!s->conn)
                goto fail;
        /* SET TRANSACTION SNAPSHOT takes a literal, not a parameter */
        lit = PQescapeLiteral(s->conn, name, strlen(name));
        sql = sf_asprintf("SET TRANSACTION SNAPSHOT %s", lit ? lit : "''");
        PQfreemem(lit);
        rc = sf_pg_exec(s->conn,
                        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0,
                        NULL, errstr, errstr_size);
        if (!rc)
                rc = sf_pg_exec(s->conn, sql, 0, NULL, errstr, errstr_size);
        free(sql);
        if (rc)
                goto fail;
        sf_info(PG_COMPONENT,
                "snapshot at %s: reading %zu of %zu captured tables (those "
                "with an insert subscriber)",
                s->lsn_text, s->work_cnt, cnt);
        return s;
fail:
        sf_pg_snapshot_destroy(s);
        return NULL;
}

static int snap_open_table(sf_pg_snapshot_t *s, char *errstr,
                           size_t errstr_size)
{
        const sf_pg_table_t *t = &s->tables[s->work[s->cur]];
        char *qs = sf_pg_quote_ident(s->conn, t->schema);
        char *qt = sf_pg_quote_ident(s->conn, t->relname);
        char *sql = sf_asprintf("DECLARE sf_snapshot NO SCROLL CURSOR FOR "
                                "SELECT * FROM %s.%s",
                                qs, qt);
        const char *params[2] = {t->schema, t->relname};
        PGresult *res;
        int rc;

        rc = sf_pg_exec(s->conn, sql, 0, NULL, errstr, errstr_size);
        s->estimate = -1;
        if (!rc) {
                res = sf_pg_query(s->conn,
                                  "SELECT c.reltuples FROM pg_class c JOIN "
                                  "pg_namespace n ON n.oid = c.relnamespace "
                                  "WHERE n.nspname = $1 AND c.relname = $2",
                                  2, params, errstr, errstr_size);
                if (!res)
                        rc = -1;
                else if (PQntuples(res) == 1)
                        s->estimate = atof(PQgetvalue(res, 0, 0));
                PQclear(res);
        }
        if (!rc) {
                s->cursor_open = 1;
                s->table_rows = 0;
                s->progress_ms = 0;
                if (s->estimate > 0)
                        sf_info(PG_COMPONENT,
                                "snapshot of %s: reading about %.0f rows",
                                t->name, s->estimate);
                else
                        sf_info(PG_COMPONENT, "snapshot of %s: reading",
                                t->name);
        }
        free(sql);
        free(qs);
        free(qt);
        return rc;
}

static int snap_close_table(sf_pg_snapshot_t *s, char *errstr,
                            size_t errstr_size)
{
        PQclear(s->batch);
        s->batch = NULL;
        s->row = 0;
        if (!s->cursor_open)
                return 0;
        s->cursor_open = 0;
        return sf_pg_exec(s->conn, "CLOSE sf_snapshot", 0, NULL, errstr,
                          errstr_size);
}

static int snap_fetch(sf_pg_snapshot_t *s, char *errstr, size_t errstr_size)
{
        sf_pg_column_t *cols;
        int n;

        PQclear(s->batch);
        s->row = 0;
        s->batch =
            sf_pg_query(s->conn, SNAP_FETCH_SQL, 0, NULL, errstr, errstr_size);
        if (!s->batch)
                return -1;
        n = PQnfields(s->batch);
        cols = sf_calloc(n ? (size_t)n : 1, sizeof(*cols));
        for (int i = 0; i < n; i++) {
                cols[i].name = PQfname(s->batch, i);
                cols[i].type = (uint32_t)PQftype(s->batch, i);
        }
        sf_pg_layout_free(&s->layout);
        sf_pg_layout_init(&s->layout, cols, n, &s->tables[s->work[s->cur]]);
        free(cols);
        free(s->row_datums);
        s->row_datums = sf_calloc(n ? (size_t)n : 1, sizeof(*s->row_datums));
        return 0;
}

/* Row s->row of the batch as an op "r" change of table T. */
static int snap_row(sf_pg_snapshot_t *s, const sf_pg_table_t *t,
                    sf_change_t *out, char *errstr, size_t errstr_size)
{
        PGresult *res = s->batch;
        int rc;

        for (int i = 0; i < PQnfields(res); i++) {
                sf_pg_datum_t *v = &s->row_datums[i];

                v->kind = PQgetisnull(res, s->row, i) ? 'n' : 't';
                v->p = PQgetvalue(res, s->row, i);
                v->len = (uint32_t)PQgetlength(res, s->row, i);
        }
        memset(out, 0, sizeof(*out));
        sf_buf_reset(&s->scratch);
        rc =
            sf_pg_image_append(&s->scratch, &s->layout, s->row_datums, 0, NULL);
        out->after_text =
            rc ? NULL : sf_strndup(s->scratch.data, s->scratch.len);
        sf_buf_reset(&s->scratch);
        rc |= sf_pg_key_append(&s->scratch, &s->layout, s->row_datums, 0, NULL);
        if (rc) {
                free(out->after_text);
                out->after_text = NULL;
                sf_seterr(errstr, errstr_size,
                          "snapshot of %s: a row is too large to publish",
                          t->name);
                return -1;
        }
        out->key_text = sf_strndup(s->scratch.data, s->scratch.len);
        out->op = SF_OP_READ;
        out->ts_ms = s->started_ms;
        out->connector = sf_strdup("postgres");
        out->db = sf_strdup(s->db ? s->db : "");
        out->schema = sf_strdup(t->schema);
        out->table = sf_strdup(t->name);
        out->lsn = sf_strdup(s->lsn_text);
        out->txid = -1;
        out->seq = (int64_t)++s->rows;
        out->event_id = sf_asprintf("postgres:%s:%s:snapshot:%s:%s:%s",
                                    s->sysid ? s->sysid : "", out->db,
                                    s->lsn_text, t->name, out->key_text);
        s->table_rows++;
        s->row++;
        return 0;
}

int sf_pg_snapshot_read(sf_pg_snapshot_t *s, sf_change_t *out, int *table_idx,
                        int max, char *errstr, size_t errstr_size)
{
        int n = 0;

        while (n < max && s->cur < s->work_cnt) {
                const sf_pg_table_t *t = &s->tables[s->work[s->cur]];

                if (!s->cursor_open && snap_open_table(s, errstr, errstr_size))
                        return -1;
                if (!s->batch || s->row >= PQntuples(s->batch)) {
                        if (snap_fetch(s, errstr, errstr_size))
                                return -1;
                        if (PQntuples(s->batch) == 0) {
                                snap_progress(s, 1);
                                sf_info(PG_COMPONENT,
                                        "snapshot of %s: %llu rows", t->name,
                                        (unsigned long long)s->table_rows);
                                s->read[s->cur] = s->table_rows;
                                if (snap_close_table(s, errstr, errstr_size))
                                        return -1;
                                s->cur++;
                                if (n > 0)
                                        break; /* one table per batch */
                                continue;
                        }
                }
                if (snap_row(s, t, &out[n], errstr, errstr_size)) {
                        while (n > 0)
                                sf_change_clear(&out[--n]);
                        return -1;
                }
                table_idx[n] = (int)s->work[s->cur];
                n++;
        }
        snap_progress(s, 0);
        return n;
}

int sf_pg_snapshot_done(const sf_pg_snapshot_t *s)
{
        return s->cur >= s->work_cnt;
}

int sf_pg_snapshot_restart(sf_pg_snapshot_t *s, int from, char *errstr,
                           size_t errstr_size)
{
        if (snap_close_table(s, errstr, errstr_size))
                return -1;
        s->cur = 0;
        while (s->cur < s->work_cnt && (int)s->work[s->cur] < from)
                s->cur++;
        return 0;
}

int sf_pg_snapshot_finish(sf_pg_snapshot_t *s, const char *slot, char *errstr,
                          size_t errstr_size)
{
        char *mark = sf_asprintf(SF_PG_SNAPSHOT_ORIGIN "%s", slot);
        PGconn *conn = s->conn;
        int rc;

        snap_close_table(s, NULL, 0);
        /* the snapshot's connection may be gone (server restart) while the
         * rows were still on their way: the mark needs none of its state */
        if (PQstatus(conn) != CONNECTION_OK ||
            sf_pg_exec(conn, "ROLLBACK", 0, NULL, NULL, 0)) {
                PQfinish(conn);
                s->conn = conn = sf_pg_connect(s->dsn, 0, errstr, errstr_size);
                if (!conn) {
                        free(mark);
                        return -1;
                }
        }
        rc = sf_pg_origin_exists(conn, mark, errstr, errstr_size);
        if (rc == 0)
                rc = sf_pg_origin_create(conn, mark, s->consistent, errstr,
                                         errstr_size);
        else if (rc == 1)
                rc = 0;
        if (!rc) {
                uint64_t rows = 0;

                for (size_t i = 0; i < s->work_cnt; i++)
                        rows += s->read[i];
                sf_info(PG_COMPONENT,
                        "snapshot at %s complete: %llu rows delivered",
                        s->lsn_text, (unsigned long long)rows);
        }
        free(mark);
        return rc;
}
