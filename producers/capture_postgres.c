/*
 * Change capture from PostgreSQL through logical replication (pgoutput).
 *
 * install, on the database of source.dsn:
 *   - checks every captured table (exists, has the key columns, has a
 *     replica identity that names a deleted row);
 *   - creates publication source.publication FOR TABLE the captured
 *     tables, or alters it to exactly those;
 *   - creates logical replication slot source.slot (pgoutput) if missing.
 *     With snapshot: initial, a new slot exports its snapshot and the
 *     existing rows are read from it first (capture_postgres_snapshot.c);
 *     an existing slot whose snapshot never finished is dropped and
 *     created again, since an exported snapshot cannot be had later.
 * poll streams the slot (START_REPLICATION, proto_version 1) and decodes
 * pgoutput into changes (capture_postgres_decode.c); it waits on the
 * socket up to the poll interval when nothing is there.
 *
 * Positions. Every change handed out gets the next position of a counter
 * that never goes back. A queue holds, in position order, what handing
 * out changes has promised: each change's (commit LSN, seq), each
 * commit's end LSN, and the snapshot's milestones. ack(P) pops everything
 * up to P: the slot's flush position becomes the end LSN of the last
 * transaction of which every change is delivered, and only then is it sent
 * to the server (Standby Status Update). So the slot's confirmed_flush_lsn
 * never passes an undelivered change, and a restart resumes at the first
 * transaction not completely delivered (its delivered changes come again:
 * at least once).
 *
 * Heartbeat. When nothing is pending (every change handed out is
 * acknowledged, no transaction is half read), a keepalive's WAL end is
 * flushed as is (when it came while something was pending, once that is
 * acknowledged): WAL of tables that are not captured, or of changes that
 * were all filtered out, does not hold the slot back. Status updates go out
 * at least every PG_STATUS_MS, and at once when the server asks.
 *
 * Connection loss. poll fails with the reason; the producer backs off and
 * polls again, which reconnects and restarts the stream from the flush
 * position. Changes already handed out are skipped by their (commit LSN,
 * seq), so nothing is handed out twice by one process. rewind restarts
 * the stream the same way, skipping only what was acknowledged.
 *
 * Write-back: transactions whose replication origin is syncfleet's
 * (capture_postgres.h) are skipped whole.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "capture_postgres_int.h"
#include "log.h"

/* A status update at least this often (wal_sender_timeout defaults to
 * 60 s), and a flush that moved is reported no sooner than PG_FLUSH_MS
 * after the last report. */
#define PG_STATUS_MS 10000
#define PG_FLUSH_MS  100

typedef enum pg_entry_kind {
        PG_E_CHANGE,     /* lsn: the commit LSN, seq: its seq */
        PG_E_COMMIT,     /* lsn: the transaction's end LSN */
        PG_E_SNAP_TABLE, /* seq: the table's index; lsn: snapshot generation */
        PG_E_SNAP_DONE,  /* lsn: snapshot generation */
} pg_entry_kind_t;

typedef struct pg_entry {
        int64_t pos;
        pg_entry_kind_t kind;
        uint64_t lsn;
        int64_t seq;
} pg_entry_t;

typedef struct pg_capture {
        const sf_config_t *cfg;
        const char *dsn;
        const char *slot;
        const char *pub;
        char *db;
        char *sysid;
        sf_pg_table_t *tables;
        size_t table_cnt;
        int installed;
        int wait_ms;
        PGconn *sql; /* from open until install or uninstall is done */

        PGconn *repl; /* streaming when not NULL */
        sf_pg_decoder_t dec;

        sf_pg_snapshot_t *snap; /* until every snapshot row is delivered */
        uint64_t snap_gen;      /* counts snapshots taken by this handle */
        int snap_handed;        /* every snapshot row was handed out */
        int snap_acked_tables;  /* tables before this index are delivered */
        int resnapshot;         /* the snapshot broke: take a new one */

        int64_t pos;   /* last position handed out */
        int64_t acked; /* last position acknowledged */
        pg_entry_t *q; /* ring of promises, positions non-decreasing */
        size_t q_head, q_len, q_cap;

        uint64_t flush; /* every transaction ending before is delivered */
        uint64_t sent_flush;
        uint64_t received;      /* highest WAL position seen */
        uint64_t keepalive_end; /* highest WAL end a keepalive said was
                                 * sent */
        uint64_t last_commit;   /* end LSN of the last commit queued */
        uint64_t handed_lsn;    /* (commit LSN, seq) of the last change */
        int64_t handed_seq;     /* handed out ... */
        uint64_t acked_lsn;     /* ... and of the last one acknowledged */
        int64_t acked_seq;
        int64_t status_ms; /* when the last status update went out */
} pg_capture_t;

/* --- The queue of promises ------------------------------------------------ */

static void pg_push(pg_capture_t *c, int64_t pos, pg_entry_kind_t kind,
                    uint64_t lsn, int64_t seq)
{
        pg_entry_t *e;

        if (c->q_len == c->q_cap) {
                size_t cap = c->q_cap ? c->q_cap * 2 : 1024;
                pg_entry_t *q = sf_malloc(cap * sizeof(*q));

                for (size_t i = 0; i < c->q_len; i++)
                        q[i] = c->q[(c->q_head + i) % c->q_cap];
                free(c->q);
                c->q = q;
                c->q_cap = cap;
                c->q_head = 0;
        }
        e = &c->q[(c->q_head + c->q_len++) % c->q_cap];
        e->pos = pos;
        e->kind = kind;
        e->lsn = lsn;
        e->seq = seq;
}

static int pg_idle(const pg_capture_t *c)
{
        return c->q_len == 0 && !c->dec.in_tx && !c->snap;
}

/* --- Talking to the server ------------------------------------------------ */

static void pg_stream_close(pg_capture_t *c)
{
        if (!c->repl)
                return;
        PQfinish(c->repl);
        c->repl = NULL;
        sf_pg_decoder_reset(&c->dec);
        /* a stream resumes from c->flush: what a keepalive of this one
         * said was sent may come again, and a rewind drops its changes */
        c->keepalive_end = 0;
}

/* Sends a status update when FORCE, when the flush position moved and the
 * last report is PG_FLUSH_MS old, or when the last one is PG_STATUS_MS old.
 * A failure is left for the next read to discover. */
static void pg_status(pg_capture_t *c, int force)
{
        int64_t now = sf_mono_ms();
        char err[256];
        uint64_t write;

        if (!c->repl)
                return;
        if (!force &&
            !(c->flush > c->sent_flush && now - c->status_ms >= PG_FLUSH_MS) &&
            now - c->status_ms < PG_STATUS_MS)
                return;
        write = c->received > c->flush ? c->received : c->flush;
        if (sf_pg_stream_status(c->repl, write, c->flush, 0, err,
                                sizeof(err))) {
                sf_debug(PG_COMPONENT, "%s", err);
                return;
        }
        sf_debug(PG_COMPONENT,
                 "status: write %X/%X flush %X/%X (queue %zu, acked %lld, "
                 "pos %lld, in_tx %d)",
                 (unsigned)(write >> 32), (unsigned)write,
                 (unsigned)(c->flush >> 32), (unsigned)c->flush, c->q_len,
                 (long long)c->acked, (long long)c->pos, c->dec.in_tx);
        c->sent_flush = c->flush;
        c->status_ms = now;
}

/* Records in the database that the snapshot is delivered, and lets go of
 * its transaction. Failing only costs a new snapshot at the next start. */
static void pg_snapshot_delivered(pg_capture_t *c)
{
        char err[512];

        if (sf_pg_snapshot_finish(c->snap, c->slot, err, sizeof(err)))
                sf_warn(PG_COMPONENT,
                        "the snapshot was delivered, but recording that "
                        "failed (the next start takes it again): %s",
                        err);
        sf_pg_snapshot_destroy(c->snap);
        c->snap = NULL;
}

/* Keeps the promises of every position up to c->acked. */
static void pg_settle(pg_capture_t *c)
{
        while (c->q_len && c->q[c->q_head].pos <= c->acked) {
                pg_entry_t e = c->q[c->q_head];

                c->q_head = (c->q_head + 1) % c->q_cap;
                c->q_len--;
                switch (e.kind) {
                case PG_E_CHANGE:
                        c->acked_lsn = e.lsn;
                        c->acked_seq = e.seq;
                        break;
                case PG_E_COMMIT:
                        if (e.lsn > c->flush)
                                c->flush = e.lsn;
                        break;
                case PG_E_SNAP_TABLE:
                        if (e.lsn == c->snap_gen)
                                c->snap_acked_tables = (int)e.seq + 1;
                        break;
                case PG_E_SNAP_DONE:
                        if (e.lsn == c->snap_gen && c->snap)
                                pg_snapshot_delivered(c);
                        break;
                }
        }
        /* Everything the server sent up to the last keepalive's WAL end
         * is settled now: the rest of that WAL is not ours. Otherwise a
         * keepalive that came while a change was pending would hold the
         * slot back until the next one, which the server sends only after
         * half its wal_sender_timeout once our reply says we have it. */
        if (pg_idle(c) && c->keepalive_end > c->flush)
                c->flush = c->keepalive_end;
        pg_status(c, 0);
}

/* A finished snapshot is recorded as a replication origin, which takes
 * EXECUTE on three functions that only superusers have by default.
 * Without them the snapshot could never be recorded as done and every
 * start would drop the slot and take it again: refuse, naming the grant. */
static int pg_check_snapshot_grants(PGconn *sql, char *errstr,
                                    size_t errstr_size)
{
        PGresult *res = sf_pg_query(
            sql,
            "SELECT has_function_privilege("
            "'pg_replication_origin_create(text)', 'EXECUTE') AND "
            "has_function_privilege("
            "'pg_replication_origin_advance(text, pg_lsn)', 'EXECUTE') AND "
            "has_function_privilege("
            "'pg_replication_origin_drop(text)', 'EXECUTE'), current_user",
            0, NULL, errstr, errstr_size);
        int rc = -1;

        if (!res)
                return -1;
        if (PQntuples(res) == 1 && !strcmp(PQgetvalue(res, 0, 0), "t"))
                rc = 0;
        else
                sf_seterr(errstr, errstr_size,
                          "source.snapshot is initial, and recording that the "
                          "snapshot is done needs EXECUTE on "
                          "pg_replication_origin_create(text), "
                          "pg_replication_origin_advance(text, pg_lsn) and "
                          "pg_replication_origin_drop(text), which user "
                          "\"%s\" lacks: as a superuser, GRANT EXECUTE ON "
                          "FUNCTION pg_replication_origin_create(text), "
                          "pg_replication_origin_advance(text, pg_lsn), "
                          "pg_replication_origin_drop(text) TO \"%s\"; or "
                          "set source.snapshot: never",
                          PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 1));
        PQclear(res);
        return rc;
}

/* Sets up the slot: with snapshot: initial, a slot whose snapshot never
 * completed is dropped and made again, and a new slot's snapshot is
 * imported for the following polls. */
static int pg_prepare_slot(pg_capture_t *c, PGconn *sql, char *errstr,
                           size_t errstr_size)
{
        int initial = c->cfg->source.snapshot == SF_SNAPSHOT_INITIAL;
        char *mark = sf_asprintf(SF_PG_SNAPSHOT_ORIGIN "%s", c->slot);
        sf_pg_slot_info_t info;
        PGconn *repl = NULL;
        char *snapshot = NULL;
        uint64_t consistent = 0;
        int rc, marked = 0;

        rc = sf_pg_slot_info(sql, c->slot, &info, errstr, errstr_size);
        if (!rc && initial) {
                marked = sf_pg_origin_exists(sql, mark, errstr, errstr_size);
                rc = marked < 0 ? -1 : 0;
        }
        /* a snapshot to take must be recordable, or every start would
         * take it again */
        if (!rc && initial && !(info.exists && marked))
                rc = pg_check_snapshot_grants(sql, errstr, errstr_size);
        if (!rc && initial && info.exists && !marked) {
                if (info.active) {
                        sf_seterr(errstr, errstr_size,
                                  "replication slot \"%s\" is in use by "
                                  "another process",
                                  c->slot);
                        rc = -1;
                        goto out;
                }
                sf_warn(PG_COMPONENT,
                        "the initial snapshot of slot \"%s\" never "
                        "completed: dropping the slot and taking the "
                        "snapshot again (rows deleted since the first one "
                        "are missing from it, without a delete event)",
                        c->slot);
                rc = sf_pg_slot_drop(sql, c->slot, errstr, errstr_size);
                info.exists = 0;
        }
        if (!rc && !info.exists && marked)
                rc = sf_pg_origin_drop(sql, mark, errstr, errstr_size);
        if (rc)
                goto out;
        if (info.exists) {
                if (info.confirmed_flush > c->flush)
                        c->flush = info.confirmed_flush;
                goto out;
        }
        repl = sf_pg_connect(c->dsn, 1, errstr, errstr_size);
        rc = repl ? 0 : -1;
        if (!rc)
                rc = sf_pg_slot_create(repl, c->slot, initial, &snapshot,
                                       &consistent, errstr, errstr_size);
        if (rc)
                goto out;
        c->flush = consistent;
        sf_info(PG_COMPONENT, "created replication slot \"%s\" at %X/%X",
                c->slot, (unsigned)(consistent >> 32), (unsigned)consistent);
        if (initial) {
                /* imported before REPL runs anything else or closes */
                sf_pg_snapshot_destroy(c->snap);
                c->snap = sf_pg_snapshot_new(c->dsn, snapshot, consistent,
                                             c->tables, c->table_cnt, c->db,
                                             c->sysid, errstr, errstr_size);
                if (!c->snap) {
                        /* the slot would skip the rows: make it again */
                        char e2[256];

                        if (sf_pg_slot_drop(sql, c->slot, e2, sizeof(e2)))
                                sf_warn(PG_COMPONENT, "%s", e2);
                        rc = -1;
                        goto out;
                }
                c->snap_gen++;
                c->snap_handed = 0;
                c->snap_acked_tables = 0;
        }
out:
        PQfinish(repl);
        free(snapshot);
        free(mark);
        return rc;
}

/* The system identifier, through a replication connection. */
static int pg_identify(pg_capture_t *c, char *errstr, size_t errstr_size)
{
        PGconn *repl;
        int rc;

        if (c->sysid)
                return 0;
        repl = sf_pg_connect(c->dsn, 1, errstr, errstr_size);
        if (!repl)
                return -1;
        rc = sf_pg_identify(repl, &c->sysid, errstr, errstr_size);
        PQfinish(repl);
        c->dec.sysid = c->sysid;
        return rc;
}

/* The connection open() made, or a new one when it is gone; the caller
 * owns it. */
static PGconn *pg_sql(pg_capture_t *c, char *errstr, size_t errstr_size)
{
        PGconn *sql = c->sql;

        c->sql = NULL;
        if (sql && PQstatus(sql) == CONNECTION_OK)
                return sql;
        PQfinish(sql);
        return sf_pg_connect(c->dsn, 0, errstr, errstr_size);
}

static int pg_install(void *state, char *errstr, size_t errstr_size)
{
        pg_capture_t *c = state;
        PGconn *sql = pg_sql(c, errstr, errstr_size);
        int rc = sql ? 0 : -1, changed = 0;

        /* the snapshot reads the table list about to be replaced */
        pg_stream_close(c);
        sf_pg_snapshot_destroy(c->snap);
        c->snap = NULL;
        if (!rc && !c->db) {
                c->db = sf_strdup(PQdb(sql));
                c->dec.db = c->db;
        }
        if (!rc)
                rc = pg_identify(c, errstr, errstr_size);
        if (!rc) {
                sf_pg_tables_free(c->tables, c->table_cnt);
                c->tables = NULL;
                c->table_cnt = 0;
                rc = sf_pg_tables_resolve(sql, c->cfg, &c->tables,
                                          &c->table_cnt, errstr, errstr_size);
                c->dec.tables = c->tables;
                c->dec.table_cnt = c->table_cnt;
        }
        if (!rc)
                rc =
                    sf_pg_publication_sync(sql, c->pub, c->tables, c->table_cnt,
                                           &changed, errstr, errstr_size);
        if (!rc)
                rc = pg_prepare_slot(c, sql, errstr, errstr_size);
        if (!rc) {
                c->installed = 1;
                sf_info(PG_COMPONENT,
                        "%s: capturing %zu tables through publication "
                        "\"%s\" (%s) and slot \"%s\"",
                        c->db, c->table_cnt, c->pub,
                        changed ? "updated" : "unchanged", c->slot);
        }
        PQfinish(sql);
        return rc;
}

static int pg_uninstall(void *state, char *errstr, size_t errstr_size)
{
        pg_capture_t *c = state;
        PGconn *sql = pg_sql(c, errstr, errstr_size);
        char *qpub, *drop, *mark;
        sf_pg_slot_info_t info;
        int rc;

        if (!sql)
                return -1;
        pg_stream_close(c);
        sf_pg_snapshot_destroy(c->snap);
        c->snap = NULL;
        rc = sf_pg_slot_info(sql, c->slot, &info, errstr, errstr_size);
        if (!rc && info.active) {
                sf_seterr(errstr, errstr_size,
                          "replication slot \"%s\" is in use by a running "
                          "producer: stop it first",
                          c->slot);
                rc = -1;
        }
        if (!rc && info.exists)
                rc = sf_pg_slot_drop(sql, c->slot, errstr, errstr_size);
        qpub = sf_pg_quote_ident(sql, c->pub);
        drop = sf_asprintf("DROP PUBLICATION IF EXISTS %s", qpub);
        mark = sf_asprintf(SF_PG_SNAPSHOT_ORIGIN "%s", c->slot);
        if (!rc)
                rc = sf_pg_exec(sql, drop, 0, NULL, errstr, errstr_size);
        if (!rc)
                rc = sf_pg_origin_drop(sql, mark, errstr, errstr_size);
        if (!rc) {
                c->installed = 0;
                sf_info(PG_COMPONENT,
                        "removed replication slot \"%s\" and publication "
                        "\"%s\"",
                        c->slot, c->pub);
        }
        free(qpub);
        free(drop);
        free(mark);
        PQfinish(sql);
        return rc;
}

/* Connects and starts streaming from the flush position. */
static int pg_stream_open(pg_capture_t *c, char *errstr, size_t errstr_size)
{
        sf_pg_slot_info_t info;
        int rc;

        c->repl = sf_pg_connect(c->dsn, 1, errstr, errstr_size);
        if (!c->repl)
                return -1;
        rc = sf_pg_slot_info(c->repl, c->slot, &info, errstr, errstr_size);
        if (!rc && !info.exists) {
                sf_seterr(errstr, errstr_size,
                          "replication slot \"%s\" does not exist any more "
                          "(dropped while syncfleet ran?): restart the "
                          "producer to create it again",
                          c->slot);
                rc = -1;
        }
        /* never report a flush below the slot's: PostgreSQL 15 would move
         * confirmed_flush_lsn back */
        if (!rc && info.confirmed_flush > c->flush)
                c->flush = info.confirmed_flush;
        sf_pg_decoder_reset(&c->dec);
        c->dec.resume_lsn = c->handed_lsn;
        c->dec.resume_seq = c->handed_seq;
        if (!rc)
                rc = sf_pg_stream_start(c->repl, c->slot, c->pub, c->flush,
                                        errstr, errstr_size);
        if (rc) {
                PQfinish(c->repl);
                c->repl = NULL;
                return -1;
        }
        c->sent_flush = 0;
        c->status_ms = 0;
        sf_info(PG_COMPONENT, "streaming slot \"%s\" from %X/%X", c->slot,
                (unsigned)(c->flush >> 32), (unsigned)c->flush);
        return 0;
}

static uint64_t pg_be64(const char *p)
{
        const unsigned char *u = (const unsigned char *)p;
        uint64_t v = 0;

        for (int i = 0; i < 8; i++)
                v = v << 8 | u[i];
        return v;
}

/* One CopyData message of the stream. Returns 1 when OUT was filled, 0
 * when not, -1 with errstr. */
static int pg_message(pg_capture_t *c, const char *buf, int len,
                      sf_change_t *out, char *errstr, size_t errstr_size)
{
        uint64_t wal_end;
        int kind;

        if (len >= 18 && buf[0] == 'k') {
                wal_end = pg_be64(buf + 1);
                if (wal_end > c->received)
                        c->received = wal_end;
                if (wal_end > c->keepalive_end)
                        c->keepalive_end = wal_end;
                if (pg_idle(c) && wal_end > c->flush)
                        c->flush = wal_end;
                pg_status(c, buf[17] != 0);
                return 0;
        }
        if (len < 25 || buf[0] != 'w') {
                sf_seterr(errstr, errstr_size,
                          "replication stream: unexpected message 0x%02x "
                          "(%d bytes)",
                          (unsigned char)buf[0], len);
                return -1;
        }
        wal_end = pg_be64(buf + 9);
        if (wal_end > c->received)
                c->received = wal_end;
        kind = sf_pg_decode(&c->dec, buf + 25, (size_t)(len - 25), out, errstr,
                            errstr_size);
        switch (kind) {
        case SF_PG_MSG_CHANGE:
                c->pos++;
                pg_push(c, c->pos, PG_E_CHANGE, c->dec.final_lsn, c->dec.seq);
                c->handed_lsn = c->dec.final_lsn;
                c->handed_seq = c->dec.seq;
                return 1;
        case SF_PG_MSG_COMMIT:
                /* after a reconnect, transactions queued before come again */
                if (c->dec.end_lsn > c->last_commit) {
                        c->last_commit = c->dec.end_lsn;
                        pg_push(c, c->pos, PG_E_COMMIT, c->dec.end_lsn, 0);
                        pg_settle(c);
                }
                return 0;
        case SF_PG_MSG_TRUNCATE:
                if (c->dec.truncated.len)
                        sf_warn(PG_COMPONENT,
                                "TRUNCATE of %s (transaction %s): the rows "
                                "it removed produce no events",
                                c->dec.truncated.data, c->dec.lsn_text);
                return 0;
        case -1:
                return -1;
        default:
                return 0;
        }
}

/* Waits until the stream's socket is readable or MS passed. */
static int pg_wait(pg_capture_t *c, int ms, char *errstr, size_t errstr_size)
{
        struct pollfd pfd = {PQsocket(c->repl), POLLIN, 0};
        int n;

        if (pfd.fd < 0) {
                sf_seterr(errstr, errstr_size, "replication connection lost");
                return -1;
        }
        n = poll(&pfd, 1, ms);
        if (n < 0 && errno != EINTR) {
                sf_seterr(errstr, errstr_size, "poll: %s", strerror(errno));
                return -1;
        }
        if (n > 0 && !PQconsumeInput(c->repl)) {
                sf_seterr(errstr, errstr_size, "replication connection: %s",
                          PQerrorMessage(c->repl));
                return -1;
        }
        return 0;
}

/* Reads the stream into OUT: everything already received, or, when
 * nothing is, what arrives within the poll interval. */
static int pg_stream_read(pg_capture_t *c, sf_change_t *out, int max,
                          char *errstr, size_t errstr_size)
{
        int64_t deadline = sf_mono_ms() + c->wait_ms;
        int n = 0;

        while (n < max) {
                char *buf = NULL;
                int len = PQgetCopyData(c->repl, &buf, 1);

                if (len > 0) {
                        int rc = pg_message(c, buf, len, &out[n], errstr,
                                            errstr_size);

                        PQfreemem(buf);
                        if (rc < 0)
                                goto lost;
                        n += rc;
                        continue;
                }
                if (len == 0) {
                        int64_t left = deadline - sf_mono_ms();

                        if (n > 0 || left <= 0)
                                break;
                        pg_status(c, 0);
                        if (pg_wait(c, (int)left, errstr, errstr_size))
                                goto lost;
                        continue;
                }
                if (len == -1)
                        sf_seterr(errstr, errstr_size,
                                  "the server ended the replication stream");
                else
                        sf_seterr(errstr, errstr_size,
                                  "replication connection: %s",
                                  PQerrorMessage(c->repl));
                goto lost;
        }
        return n;
lost:
        /* what was decoded goes out; the next poll reconnects */
        pg_stream_close(c);
        return n > 0 ? n : -1;
}

/* Hands out snapshot rows, queueing the end of each table and of the
 * snapshot. */
static int pg_snapshot_poll(pg_capture_t *c, sf_change_t *out, int max,
                            char *errstr, size_t errstr_size)
{
        int *idx = sf_calloc((size_t)max, sizeof(*idx));
        int n =
            sf_pg_snapshot_read(c->snap, out, idx, max, errstr, errstr_size);

        if (n < 0) {
                free(idx);
                return -1;
        }
        for (int i = 0; i < n; i++) {
                c->pos++;
                if (i + 1 == n || idx[i + 1] != idx[i])
                        pg_push(c, c->pos, PG_E_SNAP_TABLE, c->snap_gen,
                                idx[i]);
        }
        free(idx);
        if (sf_pg_snapshot_done(c->snap)) {
                c->snap_handed = 1;
                pg_push(c, c->pos, PG_E_SNAP_DONE, c->snap_gen, 0);
                pg_settle(c);
        }
        return n;
}

static int pg_poll(void *state, sf_change_t *out, int max, char *errstr,
                   size_t errstr_size)
{
        pg_capture_t *c = state;
        int n;

        if (!c->installed) {
                sf_seterr(errstr, errstr_size,
                          "change capture is not installed in %s",
                          c->db ? c->db : "the database");
                return -1;
        }
        if (max <= 0)
                return 0;
        pg_settle(c);
        if (c->resnapshot) {
                PGconn *sql = sf_pg_connect(c->dsn, 0, errstr, errstr_size);

                if (!sql || pg_prepare_slot(c, sql, errstr, errstr_size)) {
                        PQfinish(sql);
                        return -1;
                }
                PQfinish(sql);
                c->resnapshot = 0;
        }
        if (c->snap && !c->snap_handed) {
                n = pg_snapshot_poll(c, out, max, errstr, errstr_size);
                if (n < 0) {
                        /* an exported snapshot cannot be had again */
                        sf_pg_snapshot_destroy(c->snap);
                        c->snap = NULL;
                        c->resnapshot = 1;
                }
                if (n != 0)
                        return n;
        }
        if (!c->repl && pg_stream_open(c, errstr, errstr_size))
                return -1;
        return pg_stream_read(c, out, max, errstr, errstr_size);
}

static int pg_ack(void *state, int64_t position, char *errstr,
                  size_t errstr_size)
{
        pg_capture_t *c = state;

        (void)errstr;
        (void)errstr_size;
        if (position > c->acked)
                c->acked = position;
        pg_settle(c);
        return 0;
}

static int pg_rewind(void *state, char *errstr, size_t errstr_size)
{
        pg_capture_t *c = state;

        pg_settle(c);
        /* what is left was handed out and not delivered: it comes again */
        c->q_len = 0;
        c->q_head = 0;
        pg_stream_close(c);
        c->handed_lsn = c->acked_lsn;
        c->handed_seq = c->acked_seq;
        c->last_commit = c->flush;
        if (c->snap) {
                if (sf_pg_snapshot_restart(c->snap, c->snap_acked_tables,
                                           errstr, errstr_size)) {
                        sf_pg_snapshot_destroy(c->snap);
                        c->snap = NULL;
                        c->resnapshot = 1;
                        return 0;
                }
                c->snap_handed = 0;
        }
        return 0;
}

static void pg_close(void *state)
{
        pg_capture_t *c = state;

        if (!c)
                return;
        if (c->repl) {
                pg_settle(c);
                pg_status(c, 1);
                PQputCopyEnd(c->repl, NULL);
                PQflush(c->repl);
        }
        pg_stream_close(c);
        if (c->installed)
                sf_info(PG_COMPONENT,
                        "closing: %llu changes handed out (%llu from the "
                        "stream), %llu skipped as syncfleet's own writes, "
                        "slot flushed to %X/%X",
                        (unsigned long long)c->pos,
                        (unsigned long long)c->dec.changes,
                        (unsigned long long)c->dec.origin_skipped,
                        (unsigned)(c->flush >> 32), (unsigned)c->flush);
        sf_pg_snapshot_destroy(c->snap);
        PQfinish(c->sql);
        sf_pg_decoder_free(&c->dec);
        sf_pg_tables_free(c->tables, c->table_cnt);
        free(c->q);
        free(c->db);
        free(c->sysid);
        free(c);
}

static void *pg_open(const sf_config_t *cfg, char *errstr, size_t errstr_size)
{
        pg_capture_t *c;

        if (!cfg->source.dsn || !*cfg->source.dsn) {
                sf_seterr(errstr, errstr_size, "source.dsn is not set");
                return NULL;
        }
        c = sf_calloc(1, sizeof(*c));
        c->cfg = cfg;
        c->dsn = cfg->source.dsn;
        c->slot = cfg->source.slot ? cfg->source.slot : "syncfleet";
        c->pub =
            cfg->source.publication ? cfg->source.publication : "syncfleet";
        c->wait_ms = cfg->source.poll_interval_ms > 0
                         ? cfg->source.poll_interval_ms
                         : 100;
        sf_pg_decoder_init(&c->dec);
        /* a wrong DSN or an unreachable server fails here, as capture.h
         * asks of open */
        c->sql = sf_pg_connect(c->dsn, 0, errstr, errstr_size);
        if (!c->sql) {
                pg_close(c);
                return NULL;
        }
        return c;
}

const sf_capture_source_t sf_capture_postgres = {
    .name = "postgres",
    .type = SF_SOURCE_POSTGRES,
    .poll_waits = 1,
    .open = pg_open,
    .install = pg_install,
    .uninstall = pg_uninstall,
    .poll = pg_poll,
    .ack = pg_ack,
    .rewind = pg_rewind,
    .close = pg_close,
};
