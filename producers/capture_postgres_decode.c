/*
 * pgoutput (proto_version 1) messages into sync-log changes.
 *
 * The logical replication protocol sends, per transaction in commit
 * order: Begin (final LSN, commit time, xid), an Origin when the session
 * that made it had a replication origin, a Relation before the first change
 * of each table (and again after the table changed), then Insert, Update,
 * Delete and Truncate, and Commit (commit and end LSN). Every integer is
 * big-endian; strings are NUL-terminated.
 *
 * A change becomes one sf_change_t:
 *   source.lsn  the LSN of the transaction's commit record (Begin's final
 *               LSN), the same for all of its changes
 *   source.seq  1-based index of the row change inside the transaction;
 *               (lsn, seq) orders every change in commit order, and the
 *               event id is built from it, so decoding the same WAL again
 *               after a restart gives the same ids
 *   before      with REPLICA IDENTITY FULL the whole old row; otherwise
 *               the replica identity (key) columns only, from the old key
 *               PostgreSQL sends when the key changed or the row was
 *               deleted, else from the new row (the key did not change)
 *   after       the new row; a TOASTed value the update left alone is not
 *               sent by PostgreSQL: it is copied from a full before image
 *               when there is one, else it becomes the marker object
 *               {"__syncfleet_unchanged_toast":true}, never null
 * Changes of events nobody subscribes to, and whole transactions made by
 * syncfleet's own writers (origin "syncfleet", "syncfleet.N"), are counted
 * in seq but not handed out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture_postgres_int.h"
#include "log.h"

/* Microseconds between 1970-01-01 and PostgreSQL's epoch 2000-01-01. */
#define PG_EPOCH_OFFSET_MS 946684800000LL

/* A bounds-checked reader over one message. */
typedef struct pg_rd {
        const unsigned char *p;
        const unsigned char *end;
        int bad;
} pg_rd_t;

static int pg_rd_need(pg_rd_t *r, size_t n)
{
        if (r->bad || (size_t)(r->end - r->p) < n) {
                r->bad = 1;
                return 0;
        }
        return 1;
}

static uint8_t pg_u8(pg_rd_t *r)
{
        if (!pg_rd_need(r, 1))
                return 0;
        return *r->p++;
}

static uint16_t pg_u16(pg_rd_t *r)
{
        uint16_t v;

        if (!pg_rd_need(r, 2))
                return 0;
        v = (uint16_t)(r->p[0] << 8 | r->p[1]);
        r->p += 2;
        return v;
}

static uint32_t pg_u32(pg_rd_t *r)
{
        uint32_t v;

        if (!pg_rd_need(r, 4))
                return 0;
        v = (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 |
            (uint32_t)r->p[2] << 8 | r->p[3];
        r->p += 4;
        return v;
}

static uint64_t pg_u64(pg_rd_t *r)
{
        uint64_t hi = pg_u32(r);

        return hi << 32 | pg_u32(r);
}

/* A NUL-terminated string inside the message (borrowed). */
static const char *pg_str(pg_rd_t *r)
{
        const unsigned char *nul;
        const char *s;

        if (r->bad)
                return "";
        nul = memchr(r->p, '\0', (size_t)(r->end - r->p));
        if (!nul) {
                r->bad = 1;
                return "";
        }
        s = (const char *)r->p;
        r->p = nul + 1;
        return s;
}

void sf_pg_decoder_init(sf_pg_decoder_t *d)
{
        memset(d, 0, sizeof(*d));
        sf_buf_init(&d->truncated, 0);
        sf_buf_init(&d->scratch, 0);
}

static void pg_rel_free(sf_pg_relation_t *rel)
{
        for (int i = 0; i < rel->ncols; i++)
                free(rel->cols[i].name);
        free(rel->cols);
        sf_pg_layout_free(&rel->layout);
        free(rel->schema);
        free(rel->relname);
}

void sf_pg_decoder_reset(sf_pg_decoder_t *d)
{
        for (size_t i = 0; i < d->rel_cnt; i++)
                pg_rel_free(&d->rels[i]);
        free(d->rels);
        d->rels = NULL;
        d->rel_cnt = 0;
        d->in_tx = 0;
        free(d->origin);
        d->origin = NULL;
        d->from_syncfleet = 0;
}

void sf_pg_decoder_free(sf_pg_decoder_t *d)
{
        sf_pg_decoder_reset(d);
        sf_buf_free(&d->truncated);
        sf_buf_free(&d->scratch);
        free(d->old_tup);
        free(d->new_tup);
        d->old_tup = d->new_tup = NULL;
        d->tup_cap = 0;
}

/* Written by hand: one per change, and vasprintf is a measurable part of
 * decoding. */
char *sf_pg_event_id(const char *sysid, const char *db, const char *lsn,
                     int64_t seq)
{
        static const char prefix[] = "postgres:";
        size_t ls = sysid ? strlen(sysid) : 0, ld = db ? strlen(db) : 0;
        size_t ll = strlen(lsn);
        char digits[24], *d = digits + sizeof(digits);
        uint64_t u = seq < 0 ? (uint64_t)0 - (uint64_t)seq : (uint64_t)seq;
        size_t nd;
        char *id, *p;

        do {
                *--d = (char)('0' + u % 10);
                u /= 10;
        } while (u);
        if (seq < 0)
                *--d = '-';
        nd = (size_t)(digits + sizeof(digits) - d);
        id = sf_malloc(sizeof(prefix) - 1 + ls + 1 + ld + 1 + ll + 1 + nd + 1);
        p = id;
        memcpy(p, prefix, sizeof(prefix) - 1);
        p += sizeof(prefix) - 1;
        memcpy(p, sysid ? sysid : "", ls);
        p += ls;
        *p++ = ':';
        memcpy(p, db ? db : "", ld);
        p += ld;
        *p++ = ':';
        memcpy(p, lsn, ll);
        p += ll;
        *p++ = ':';
        memcpy(p, d, nd);
        p[nd] = '\0';
        return id;
}

static sf_pg_relation_t *pg_rel_find(sf_pg_decoder_t *d, uint32_t relid)
{
        for (size_t i = 0; i < d->rel_cnt; i++)
                if (d->rels[i].relid == relid)
                        return &d->rels[i];
        return NULL;
}

static const sf_pg_table_t *
pg_table_for(const sf_pg_decoder_t *d, const char *schema, const char *relname)
{
        for (size_t i = 0; i < d->table_cnt; i++)
                if (!strcmp(d->tables[i].schema, schema) &&
                    !strcmp(d->tables[i].relname, relname))
                        return &d->tables[i];
        return NULL;
}

static int pg_begin(sf_pg_decoder_t *d, pg_rd_t *r, char *errstr,
                    size_t errstr_size)
{
        uint64_t final_lsn = pg_u64(r);
        int64_t ts = (int64_t)pg_u64(r);
        uint32_t xid = pg_u32(r);

        if (r->bad)
                return -1;
        if (d->in_tx) {
                sf_seterr(errstr, errstr_size,
                          "pgoutput: Begin inside the transaction of %s",
                          d->lsn_text);
                return -1;
        }
        d->in_tx = 1;
        d->final_lsn = final_lsn;
        sf_pg_lsn_format(final_lsn, d->lsn_text, sizeof(d->lsn_text));
        d->commit_ts_ms = ts / 1000 + PG_EPOCH_OFFSET_MS;
        d->xid = xid;
        d->seq = 0;
        d->commit_lsn = d->end_lsn = 0;
        free(d->origin);
        d->origin = NULL;
        d->from_syncfleet = 0;
        return SF_PG_MSG_BEGIN;
}

static int pg_commit(sf_pg_decoder_t *d, pg_rd_t *r, char *errstr,
                     size_t errstr_size)
{
        uint64_t commit_lsn, end_lsn;

        (void)pg_u8(r); /* flags, unused */
        commit_lsn = pg_u64(r);
        end_lsn = pg_u64(r);
        (void)pg_u64(r); /* commit time, as in Begin */
        if (r->bad)
                return -1;
        if (!d->in_tx) {
                sf_seterr(errstr, errstr_size,
                          "pgoutput: Commit without a Begin");
                return -1;
        }
        d->in_tx = 0;
        d->commit_lsn = commit_lsn;
        d->end_lsn = end_lsn;
        return SF_PG_MSG_COMMIT;
}

static int pg_origin(sf_pg_decoder_t *d, pg_rd_t *r)
{
        const char *name;

        (void)pg_u64(r); /* the origin's own commit LSN */
        name = pg_str(r);
        if (r->bad)
                return -1;
        free(d->origin);
        d->origin = sf_strdup(name);
        d->from_syncfleet = d->in_tx && sf_pg_origin_is_syncfleet(name);
        return SF_PG_MSG_ORIGIN;
}

static int pg_relation(sf_pg_decoder_t *d, pg_rd_t *r)
{
        sf_pg_relation_t rel, *slot;
        int i;

        memset(&rel, 0, sizeof(rel));
        rel.relid = pg_u32(r);
        rel.schema = sf_strdup(pg_str(r));
        rel.relname = sf_strdup(pg_str(r));
        rel.identity = (char)pg_u8(r);
        rel.ncols = pg_u16(r);
        if (!r->bad && rel.ncols > 0)
                rel.cols = sf_calloc((size_t)rel.ncols, sizeof(*rel.cols));
        for (i = 0; i < rel.ncols && !r->bad; i++) {
                rel.cols[i].key = pg_u8(r) & 1;
                rel.cols[i].name = sf_strdup(pg_str(r));
                rel.cols[i].type = pg_u32(r);
                (void)pg_u32(r); /* typmod */
        }
        if (r->bad) {
                rel.ncols = i;
                pg_rel_free(&rel);
                return -1;
        }
        /* pg_catalog's namespace is sent as "" */
        rel.table = pg_table_for(d, *rel.schema ? rel.schema : "pg_catalog",
                                 rel.relname);
        if (rel.table)
                sf_pg_layout_init(&rel.layout, rel.cols, rel.ncols, rel.table);
        slot = pg_rel_find(d, rel.relid);
        if (slot) {
                pg_rel_free(slot);
        } else {
                d->rels =
                    sf_realloc(d->rels, (d->rel_cnt + 1) * sizeof(*d->rels));
                slot = &d->rels[d->rel_cnt++];
        }
        *slot = rel;
        if (rel.ncols > d->tup_cap) {
                d->tup_cap = rel.ncols;
                d->old_tup = sf_realloc(d->old_tup, (size_t)d->tup_cap *
                                                        sizeof(*d->old_tup));
                d->new_tup = sf_realloc(d->new_tup, (size_t)d->tup_cap *
                                                        sizeof(*d->new_tup));
        }
        return SF_PG_MSG_RELATION;
}

/* TupleData of REL into TUP[0..ncols-1] (pointing into the message). */
static int pg_tuple(pg_rd_t *r, const sf_pg_relation_t *rel, sf_pg_datum_t *tup,
                    char *errstr, size_t errstr_size)
{
        int n = pg_u16(r);

        if (r->bad)
                return -1;
        if (n != rel->ncols) {
                sf_seterr(errstr, errstr_size,
                          "pgoutput: a row of %s.%s has %d columns, its "
                          "Relation message %d",
                          rel->schema, rel->relname, n, rel->ncols);
                return -1;
        }
        for (int i = 0; i < n; i++) {
                tup[i].kind = (char)pg_u8(r);
                tup[i].p = NULL;
                tup[i].len = 0;
                switch (tup[i].kind) {
                case 'n':
                case 'u':
                        break;
                case 't':
                case 'b':
                        tup[i].len = pg_u32(r);
                        if (!pg_rd_need(r, tup[i].len))
                                return -1;
                        tup[i].p = (const char *)r->p;
                        r->p += tup[i].len;
                        break;
                default:
                        if (r->bad)
                                return -1;
                        sf_seterr(errstr, errstr_size,
                                  "pgoutput: unknown column kind 0x%02x in "
                                  "a row of %s.%s",
                                  (unsigned char)tup[i].kind, rel->schema,
                                  rel->relname);
                        return -1;
                }
        }
        return r->bad ? -1 : 0;
}

/* A tuple preceded by its tag byte, which must be one of TAGS. */
static int pg_tuple_tagged(pg_rd_t *r, const sf_pg_relation_t *rel,
                           const char *tags, sf_pg_datum_t *tup, char *errstr,
                           size_t errstr_size)
{
        uint8_t tag = pg_u8(r);

        if (r->bad)
                return -1;
        if (!tag || !strchr(tags, tag)) {
                sf_seterr(errstr, errstr_size,
                          "pgoutput: unexpected tuple tag 0x%02x in a change "
                          "of %s.%s",
                          tag, rel->schema, rel->relname);
                return -1;
        }
        return pg_tuple(r, rel, tup, errstr, errstr_size);
}

/* The image (or, with KEY, the key) of TUP as a malloc'd canonical JSON
 * text; NULL with errstr when it is larger than a record can be. */
static char *pg_text(sf_pg_decoder_t *d, const sf_pg_relation_t *rel, int key,
                     const sf_pg_datum_t *tup, int key_only,
                     const sf_pg_datum_t *full_old, char *errstr,
                     size_t errstr_size)
{
        int rc;

        sf_buf_reset(&d->scratch);
        rc = key ? sf_pg_key_append(&d->scratch, &rel->layout, tup, key_only,
                                    full_old)
                 : sf_pg_image_append(&d->scratch, &rel->layout, tup, key_only,
                                      full_old);
        if (rc) {
                sf_seterr(errstr, errstr_size,
                          "a row of %s.%s in the transaction of %s is too "
                          "large to publish",
                          rel->schema, rel->relname, d->lsn_text);
                return NULL;
        }
        return sf_strndup(d->scratch.data, d->scratch.len);
}

/* Fills the envelope of a change of REL whose key comes from the image of
 * (TUP, KEY_ONLY, FULL_OLD): the after image, or the before image of a
 * delete. */
static int pg_fill(sf_pg_decoder_t *d, const sf_pg_relation_t *rel, sf_op_t op,
                   const sf_pg_datum_t *tup, int key_only,
                   const sf_pg_datum_t *full_old, sf_change_t *out,
                   char *errstr, size_t errstr_size)
{
        out->op = op;
        out->ts_ms = d->commit_ts_ms;
        out->connector = sf_strdup("postgres");
        out->db = sf_strdup(d->db ? d->db : "");
        out->schema = sf_strdup(rel->schema);
        out->table = sf_strdup(rel->table->name);
        out->lsn = sf_strdup(d->lsn_text);
        out->txid = d->xid;
        out->seq = d->seq;
        out->event_id = sf_pg_event_id(d->sysid, d->db, d->lsn_text, d->seq);
        out->key_text =
            pg_text(d, rel, 1, tup, key_only, full_old, errstr, errstr_size);
        if (!out->key_text) {
                sf_change_clear(out);
                return -1;
        }
        return SF_PG_MSG_CHANGE;
}

/* The relation a change names; NULL with errstr when no Relation message
 * described it (the server always sends one first). */
static sf_pg_relation_t *pg_change_rel(sf_pg_decoder_t *d, pg_rd_t *r,
                                       char what, char *errstr,
                                       size_t errstr_size)
{
        uint32_t relid = pg_u32(r);
        sf_pg_relation_t *rel;

        if (r->bad)
                return NULL;
        if (!d->in_tx) {
                sf_seterr(errstr, errstr_size,
                          "pgoutput: %c message outside a transaction", what);
                return NULL;
        }
        rel = pg_rel_find(d, relid);
        if (!rel)
                sf_seterr(errstr, errstr_size,
                          "pgoutput: %c message for relation %u, which no "
                          "Relation message described",
                          what, relid);
        return rel;
}

/* Counts the change and tells whether it is handed out at all. */
static int pg_wanted(sf_pg_decoder_t *d, const sf_pg_relation_t *rel,
                     unsigned event)
{
        d->seq++;
        if (d->from_syncfleet) {
                d->origin_skipped++;
                return 0;
        }
        if (!rel->table || !(rel->table->events & event))
                return 0;
        if (d->final_lsn < d->resume_lsn ||
            (d->final_lsn == d->resume_lsn && d->seq <= d->resume_seq))
                return 0;
        return 1;
}

static int pg_insert(sf_pg_decoder_t *d, pg_rd_t *r, sf_change_t *out,
                     char *errstr, size_t errstr_size)
{
        sf_pg_relation_t *rel = pg_change_rel(d, r, 'I', errstr, errstr_size);

        if (!rel)
                return -1;
        if (pg_tuple_tagged(r, rel, "N", d->new_tup, errstr, errstr_size))
                return -1;
        if (!pg_wanted(d, rel, SF_EV_INSERT))
                return SF_PG_MSG_SKIPPED;
        memset(out, 0, sizeof(*out));
        out->after_text =
            pg_text(d, rel, 0, d->new_tup, 0, NULL, errstr, errstr_size);
        if (!out->after_text)
                return -1;
        return pg_fill(d, rel, SF_OP_CREATE, d->new_tup, 0, NULL, out, errstr,
                       errstr_size);
}

static int pg_update(sf_pg_decoder_t *d, pg_rd_t *r, sf_change_t *out,
                     char *errstr, size_t errstr_size)
{
        sf_pg_relation_t *rel = pg_change_rel(d, r, 'U', errstr, errstr_size);
        const sf_pg_datum_t *full_old;
        char old = 0;

        if (!rel)
                return -1;
        if (r->p < r->end && (*r->p == 'K' || *r->p == 'O')) {
                old = (char)*r->p;
                if (pg_tuple_tagged(r, rel, "KO", d->old_tup, errstr,
                                    errstr_size))
                        return -1;
        }
        if (pg_tuple_tagged(r, rel, "N", d->new_tup, errstr, errstr_size))
                return -1;
        if (!pg_wanted(d, rel, SF_EV_UPDATE))
                return SF_PG_MSG_SKIPPED;
        full_old = old == 'O' ? d->old_tup : NULL;
        memset(out, 0, sizeof(*out));
        if (old == 'O')
                out->before_text = pg_text(d, rel, 0, d->old_tup, 0, NULL,
                                           errstr, errstr_size);
        else
                out->before_text =
                    pg_text(d, rel, 0, old == 'K' ? d->old_tup : d->new_tup, 1,
                            NULL, errstr, errstr_size);
        if (out->before_text)
                out->after_text = pg_text(d, rel, 0, d->new_tup, 0, full_old,
                                          errstr, errstr_size);
        if (!out->after_text) {
                sf_change_clear(out);
                return -1;
        }
        return pg_fill(d, rel, SF_OP_UPDATE, d->new_tup, 0, full_old, out,
                       errstr, errstr_size);
}

static int pg_delete(sf_pg_decoder_t *d, pg_rd_t *r, sf_change_t *out,
                     char *errstr, size_t errstr_size)
{
        sf_pg_relation_t *rel = pg_change_rel(d, r, 'D', errstr, errstr_size);
        char kind;

        if (!rel)
                return -1;
        kind = r->p < r->end ? (char)*r->p : 0;
        if (pg_tuple_tagged(r, rel, "KO", d->old_tup, errstr, errstr_size))
                return -1;
        if (!pg_wanted(d, rel, SF_EV_DELETE))
                return SF_PG_MSG_SKIPPED;
        memset(out, 0, sizeof(*out));
        out->before_text = pg_text(d, rel, 0, d->old_tup, kind == 'K', NULL,
                                   errstr, errstr_size);
        if (!out->before_text)
                return -1;
        return pg_fill(d, rel, SF_OP_DELETE, d->old_tup, kind == 'K', NULL, out,
                       errstr, errstr_size);
}

/* A TRUNCATE removes rows without a row change each: the names of the
 * captured tables it hit go to d->truncated for the caller to report. */
static int pg_truncate(sf_pg_decoder_t *d, pg_rd_t *r, char *errstr,
                       size_t errstr_size)
{
        uint32_t n = pg_u32(r);

        (void)pg_u8(r); /* CASCADE / RESTART IDENTITY */
        if (!pg_rd_need(r, (size_t)n * 4))
                return -1;
        if (!d->in_tx) {
                sf_seterr(errstr, errstr_size,
                          "pgoutput: Truncate outside a transaction");
                return -1;
        }
        sf_buf_reset(&d->truncated);
        d->seq++;
        for (uint32_t i = 0; i < n; i++) {
                const sf_pg_relation_t *rel = pg_rel_find(d, pg_u32(r));

                if (!rel || !rel->table || d->from_syncfleet)
                        continue;
                if (d->truncated.len)
                        sf_buf_append(&d->truncated, ", ", 2);
                sf_buf_printf(&d->truncated, "%s", rel->table->name);
        }
        return SF_PG_MSG_TRUNCATE;
}

int sf_pg_decode(sf_pg_decoder_t *d, const char *msg, size_t len,
                 sf_change_t *out, char *errstr, size_t errstr_size)
{
        pg_rd_t r = {(const unsigned char *)msg,
                     (const unsigned char *)msg + len, 0};
        int rc;

        switch (pg_u8(&r)) {
        case 'B':
                rc = pg_begin(d, &r, errstr, errstr_size);
                break;
        case 'C':
                rc = pg_commit(d, &r, errstr, errstr_size);
                break;
        case 'O':
                rc = pg_origin(d, &r);
                break;
        case 'R':
                rc = pg_relation(d, &r);
                break;
        case 'I':
                rc = pg_insert(d, &r, out, errstr, errstr_size);
                break;
        case 'U':
                rc = pg_update(d, &r, out, errstr, errstr_size);
                break;
        case 'D':
                rc = pg_delete(d, &r, out, errstr, errstr_size);
                break;
        case 'T':
                rc = pg_truncate(d, &r, errstr, errstr_size);
                break;
        case 'Y': /* Type: values come as text, nothing to learn */
        case 'M': /* logical decoding message (not asked for) */
                rc = SF_PG_MSG_OTHER;
                break;
        default:
                if (r.bad)
                        sf_seterr(errstr, errstr_size,
                                  "pgoutput: empty message");
                else
                        sf_seterr(errstr, errstr_size,
                                  "pgoutput: unknown message type '%c' "
                                  "(0x%02x)",
                                  msg[0], (unsigned char)msg[0]);
                return -1;
        }
        if (rc == -1 && r.bad)
                sf_seterr(errstr, errstr_size,
                          "pgoutput: message '%c' is truncated (%zu bytes)",
                          msg[0], len);
        if (rc == SF_PG_MSG_CHANGE)
                d->changes++;
        return rc;
}
