/*
 * Unit tests for the PostgreSQL source's decoding
 * (producers/capture_postgres_decode.c and _types.c): hand-built pgoutput
 * messages (proto_version 1) of every kind, the envelopes they become,
 * the images with and without REPLICA IDENTITY FULL, unchanged TOAST
 * values, syncfleet's origin, event filtering, the resume point, malformed
 * input, and the conversion of each column type.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "capture_postgres_int.h"
#include "envelope.h"
#include "sf.h"

/* --- Building messages ---------------------------------------------------- */

static void put8(sf_buf_t *b, unsigned v)
{
        unsigned char c = (unsigned char)v;

        sf_buf_append(b, &c, 1);
}

static void put16(sf_buf_t *b, unsigned v)
{
        put8(b, v >> 8);
        put8(b, v);
}

static void put32(sf_buf_t *b, uint32_t v)
{
        put16(b, v >> 16);
        put16(b, v & 0xffff);
}

static void put64(sf_buf_t *b, uint64_t v)
{
        put32(b, (uint32_t)(v >> 32));
        put32(b, (uint32_t)v);
}

static void putstr(sf_buf_t *b, const char *s)
{
        sf_buf_append(b, s, strlen(s) + 1);
}

/* A tuple from a spec string per column: "n" null, "u" unchanged TOAST,
 * anything else is text (a leading "t:" is dropped). */
static void put_tuple(sf_buf_t *b, int n, const char *const *cols)
{
        put16(b, (unsigned)n);
        for (int i = 0; i < n; i++) {
                const char *c = cols[i];

                if (!strcmp(c, "n") || !strcmp(c, "u")) {
                        put8(b, (unsigned char)c[0]);
                        continue;
                }
                if (!strncmp(c, "t:", 2))
                        c += 2;
                put8(b, 't');
                put32(b, (uint32_t)strlen(c));
                sf_buf_append(b, c, strlen(c));
        }
}

/* 2000-01-01 + 1 day, in microseconds: 946771200000 ms since 1970. */
#define TS_US   86400000000LL
#define TS_MS   946771200000LL
#define FINAL   0x100001000ULL /* "1/1000" */
#define END_LSN 0x100001050ULL

static void msg_begin(sf_buf_t *b, uint64_t final_lsn, uint32_t xid)
{
        sf_buf_reset(b);
        put8(b, 'B');
        put64(b, final_lsn);
        put64(b, (uint64_t)TS_US);
        put32(b, xid);
}

static void msg_commit(sf_buf_t *b, uint64_t commit_lsn, uint64_t end_lsn)
{
        sf_buf_reset(b);
        put8(b, 'C');
        put8(b, 0);
        put64(b, commit_lsn);
        put64(b, end_lsn);
        put64(b, (uint64_t)TS_US);
}

static void msg_origin(sf_buf_t *b, const char *name)
{
        sf_buf_reset(b);
        put8(b, 'O');
        put64(b, 0x42);
        putstr(b, name);
}

typedef struct col {
        const char *name;
        uint32_t type;
        int key;
} col_t;

static void msg_relation(sf_buf_t *b, uint32_t relid, const char *schema,
                         const char *name, char ident, int n, const col_t *cols)
{
        sf_buf_reset(b);
        put8(b, 'R');
        put32(b, relid);
        putstr(b, schema);
        putstr(b, name);
        put8(b, (unsigned char)ident);
        put16(b, (unsigned)n);
        for (int i = 0; i < n; i++) {
                put8(b, cols[i].key ? 1 : 0);
                putstr(b, cols[i].name);
                put32(b, cols[i].type);
                put32(b, 0xffffffffu);
        }
}

static void msg_insert(sf_buf_t *b, uint32_t relid, int n,
                       const char *const *cols)
{
        sf_buf_reset(b);
        put8(b, 'I');
        put32(b, relid);
        put8(b, 'N');
        put_tuple(b, n, cols);
}

/* OLD_KIND 0 (no old tuple), 'K' or 'O'. */
static void msg_update(sf_buf_t *b, uint32_t relid, char old_kind, int n,
                       const char *const *old, const char *const *cols)
{
        sf_buf_reset(b);
        put8(b, 'U');
        put32(b, relid);
        if (old_kind) {
                put8(b, (unsigned char)old_kind);
                put_tuple(b, n, old);
        }
        put8(b, 'N');
        put_tuple(b, n, cols);
}

static void msg_delete(sf_buf_t *b, uint32_t relid, char old_kind, int n,
                       const char *const *old)
{
        sf_buf_reset(b);
        put8(b, 'D');
        put32(b, relid);
        put8(b, (unsigned char)old_kind);
        put_tuple(b, n, old);
}

/* --- Fixture: two captured tables ---------------------------------------- */

static char *cust_key[] = {"id"};
static char *line_key[] = {"order_id", "line"};

typedef struct fixture {
        sf_pg_table_t tables[2];
        sf_pg_decoder_t d;
        sf_buf_t b;
        sf_change_t ch;
        char err[512];
} fixture_t;

static const col_t cust_cols[] = {
    {"id", PG_INT4OID, 1},
    {"name", 25, 0},
    {"notes", 25, 0},
    {"active", PG_BOOLOID, 0},
};

static const col_t line_cols[] = {
    {"order_id", PG_INT8OID, 1},
    {"line", PG_INT2OID, 1},
    {"qty", PG_NUMERICOID, 0},
};

static int setup(void **state)
{
        fixture_t *f = sf_calloc(1, sizeof(*f));

        f->tables[0] = (sf_pg_table_t){.name = "customers",
                                       .schema = "public",
                                       .relname = "customers",
                                       .key = cust_key,
                                       .key_cnt = 1,
                                       .events = SF_EV_INSERT | SF_EV_UPDATE |
                                                 SF_EV_DELETE};
        f->tables[1] = (sf_pg_table_t){.name = "sales_lines",
                                       .schema = "shop",
                                       .relname = "lines",
                                       .key = line_key,
                                       .key_cnt = 2,
                                       .events = SF_EV_INSERT};
        sf_pg_decoder_init(&f->d);
        f->d.db = "erp";
        f->d.sysid = "7300000000000000001";
        f->d.tables = f->tables;
        f->d.table_cnt = 2;
        sf_buf_init(&f->b, 0);
        f->ch.txid = -1;
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        fixture_t *f = *state;

        sf_change_clear(&f->ch);
        sf_pg_decoder_free(&f->d);
        sf_buf_free(&f->b);
        free(f);
        return 0;
}

/* Decodes the message in f->b, asserting the kind it is. */
static void decode(fixture_t *f, int want)
{
        int got;

        sf_change_clear(&f->ch);
        f->err[0] = '\0';
        got = sf_pg_decode(&f->d, f->b.data, f->b.len, &f->ch, f->err,
                           sizeof(f->err));
        if (got != want)
                fail_msg("decode gave %d, expected %d (%s)", got, want, f->err);
}

static void decode_fails(fixture_t *f, const char *err)
{
        decode(f, -1);
        assert_string_equal(f->err, err);
}

static void assert_json(const cJSON *v, const char *want)
{
        char *s = sf_json_canonical(v);

        if (!s || strcmp(s, want))
                fail_msg("got %s, expected %s", s ? s : "NULL", want);
        free(s);
}

/* The decoder writes keys and images as text, building no trees. */
static void assert_text(const char *got, const char *want)
{
        if (!got || strcmp(got, want))
                fail_msg("got %s, expected %s", got ? got : "NULL", want);
}

static void begin_with_relations(fixture_t *f)
{
        msg_begin(&f->b, FINAL, 731);
        decode(f, SF_PG_MSG_BEGIN);
        msg_relation(&f->b, 16384, "public", "customers", 'd', 4, cust_cols);
        decode(f, SF_PG_MSG_RELATION);
        msg_relation(&f->b, 16390, "shop", "lines", 'd', 3, line_cols);
        decode(f, SF_PG_MSG_RELATION);
}

/* --- Tests ---------------------------------------------------------------- */

static void test_insert_envelope(void **state)
{
        fixture_t *f = *state;
        const char *row[] = {"42", "Ann \"A\"", "n", "t"};
        char *value;

        begin_with_relations(f);
        msg_insert(&f->b, 16384, 4, row);
        decode(f, SF_PG_MSG_CHANGE);
        assert_int_equal(f->ch.op, SF_OP_CREATE);
        assert_string_equal(f->ch.connector, "postgres");
        assert_string_equal(f->ch.db, "erp");
        assert_string_equal(f->ch.schema, "public");
        assert_string_equal(f->ch.table, "customers");
        assert_string_equal(f->ch.lsn, "1/1000");
        assert_int_equal(f->ch.txid, 731);
        assert_int_equal(f->ch.seq, 1);
        assert_int_equal(f->ch.ts_ms, TS_MS);
        assert_null(f->ch.before);
        assert_null(f->ch.before_text);
        assert_text(f->ch.key_text, "{\"id\":42}");
        assert_text(f->ch.after_text,
                    "{\"active\":true,\"id\":42,\"name\":\"Ann "
                    "\\\"A\\\"\",\"notes\":null}");
        assert_string_equal(f->ch.event_id,
                            "postgres:7300000000000000001:erp:1/1000:1");
        value = sf_change_value_json(&f->ch);
        assert_string_equal(
            value, "{\"after\":{\"active\":true,\"id\":42,\"name\":\"Ann "
                   "\\\"A\\\"\",\"notes\":null},\"before\":null,\"op\":\"c\","
                   "\"source\":{\"connector\":\"postgres\",\"db\":\"erp\","
                   "\"lsn\":\"1/1000\",\"schema\":\"public\",\"seq\":1,"
                   "\"table\":\"customers\",\"txid\":731},\"ts_ms\":"
                   "946771200000}");
        free(value);
}

/* Several rows in one transaction: seq counts them, the commit carries
 * the end LSN, and the next transaction starts over at seq 1. */
static void test_multi_row_transaction(void **state)
{
        fixture_t *f = *state;
        const char *r1[] = {"1", "a", "n", "f"};
        const char *r2[] = {"7", "3", "1.50"};
        const char *r3[] = {"2", "b", "n", "f"};

        begin_with_relations(f);
        msg_insert(&f->b, 16384, 4, r1);
        decode(f, SF_PG_MSG_CHANGE);
        assert_int_equal(f->ch.seq, 1);
        msg_insert(&f->b, 16390, 3, r2);
        decode(f, SF_PG_MSG_CHANGE);
        assert_int_equal(f->ch.seq, 2);
        assert_string_equal(f->ch.table, "sales_lines");
        assert_string_equal(f->ch.schema, "shop");
        assert_text(f->ch.key_text, "{\"line\":3,\"order_id\":7}");
        assert_text(f->ch.after_text,
                    "{\"line\":3,\"order_id\":7,\"qty\":\"1.50\"}");
        msg_insert(&f->b, 16384, 4, r3);
        decode(f, SF_PG_MSG_CHANGE);
        assert_int_equal(f->ch.seq, 3);
        assert_string_equal(f->ch.event_id,
                            "postgres:7300000000000000001:erp:1/1000:3");
        assert_true(f->d.in_tx);
        msg_commit(&f->b, FINAL, END_LSN);
        decode(f, SF_PG_MSG_COMMIT);
        assert_false(f->d.in_tx);
        assert_true(f->d.commit_lsn == FINAL);
        assert_true(f->d.end_lsn == END_LSN);
        assert_int_equal(f->d.changes, 3);

        msg_begin(&f->b, 0x200000000ULL, 732);
        decode(f, SF_PG_MSG_BEGIN);
        msg_insert(&f->b, 16384, 4, r1); /* relations stay known */
        decode(f, SF_PG_MSG_CHANGE);
        assert_int_equal(f->ch.seq, 1);
        assert_string_equal(f->ch.lsn, "2/0");
        assert_int_equal(f->ch.txid, 732);
}

/* REPLICA IDENTITY FULL: the old tuple 'O' is the whole before image, and
 * an unchanged TOASTed value of the new row is taken from it. */
static void test_update_identity_full(void **state)
{
        fixture_t *f = *state;
        const char *old[] = {"42", "Ann", "long text", "t"};
        const char *upd[] = {"42", "Anna", "u", "t"};
        static const col_t full_cols[] = {
            {"id", PG_INT4OID, 1},
            {"name", 25, 1},
            {"notes", 25, 1},
            {"active", PG_BOOLOID, 1},
        };

        msg_begin(&f->b, FINAL, 9);
        decode(f, SF_PG_MSG_BEGIN);
        msg_relation(&f->b, 16384, "public", "customers", 'f', 4, full_cols);
        decode(f, SF_PG_MSG_RELATION);
        msg_update(&f->b, 16384, 'O', 4, old, upd);
        decode(f, SF_PG_MSG_CHANGE);
        assert_int_equal(f->ch.op, SF_OP_UPDATE);
        assert_text(f->ch.before_text, "{\"active\":true,\"id\":42,\"name\":"
                                       "\"Ann\",\"notes\":\"long text\"}");
        assert_text(f->ch.after_text, "{\"active\":true,\"id\":42,\"name\":"
                                      "\"Anna\",\"notes\":\"long text\"}");
        assert_text(f->ch.key_text, "{\"id\":42}");
}

/* Default identity, key changed: the old key 'K' holds only the key; the
 * new row's unchanged TOASTed value is marked, not null. */
static void test_update_old_key_and_toast_marker(void **state)
{
        fixture_t *f = *state;
        const char *old[] = {"42", "n", "n", "n"};
        const char *upd[] = {"43", "Ann", "u", "f"};

        begin_with_relations(f);
        msg_update(&f->b, 16384, 'K', 4, old, upd);
        decode(f, SF_PG_MSG_CHANGE);
        assert_text(f->ch.before_text, "{\"id\":42}");
        assert_text(f->ch.after_text,
                    "{\"active\":false,\"id\":43,\"name\":\"Ann\",\"notes\":{"
                    "\"__syncfleet_unchanged_toast\":true}}");
        assert_text(f->ch.key_text, "{\"id\":43}");
}

/* Default identity, key unchanged: no old tuple at all; the before image
 * is the key, taken from the new row. */
static void test_update_without_old_tuple(void **state)
{
        fixture_t *f = *state;
        const char *upd[] = {"42", "Ann", "x", "t"};

        begin_with_relations(f);
        msg_update(&f->b, 16384, 0, 4, NULL, upd);
        decode(f, SF_PG_MSG_CHANGE);
        assert_text(f->ch.before_text, "{\"id\":42}");
        assert_text(f->ch.after_text, "{\"active\":true,\"id\":42,\"name\":"
                                      "\"Ann\",\"notes\":\"x\"}");
}

static void test_delete_key_and_full(void **state)
{
        fixture_t *f = *state;
        const char *key[] = {"42", "n", "n", "n"};
        const char *full[] = {"42", "Ann", "n", "t"};

        begin_with_relations(f);
        msg_delete(&f->b, 16384, 'K', 4, key);
        decode(f, SF_PG_MSG_CHANGE);
        assert_int_equal(f->ch.op, SF_OP_DELETE);
        assert_null(f->ch.after);
        assert_null(f->ch.after_text);
        assert_text(f->ch.before_text, "{\"id\":42}");
        assert_text(f->ch.key_text, "{\"id\":42}");
        msg_delete(&f->b, 16384, 'O', 4, full);
        decode(f, SF_PG_MSG_CHANGE);
        assert_text(f->ch.before_text, "{\"active\":true,\"id\":42,\"name\":"
                                       "\"Ann\",\"notes\":null}");
        assert_int_equal(f->ch.seq, 2);
}

/* Truncate names the captured tables it hit and counts in seq. */
static void test_truncate(void **state)
{
        fixture_t *f = *state;
        const char *row[] = {"1", "a", "n", "f"};

        begin_with_relations(f);
        sf_buf_reset(&f->b);
        put8(&f->b, 'T');
        put32(&f->b, 3);
        put8(&f->b, 0);
        put32(&f->b, 16384);
        put32(&f->b, 99999); /* a relation never described: ignored */
        put32(&f->b, 16390);
        decode(f, SF_PG_MSG_TRUNCATE);
        assert_string_equal(f->d.truncated.data, "customers, sales_lines");
        msg_insert(&f->b, 16384, 4, row);
        decode(f, SF_PG_MSG_CHANGE);
        assert_int_equal(f->ch.seq, 2);
}

/* A transaction from syncfleet's origin is skipped whole; one from any
 * other origin is not. */
static void test_origin(void **state)
{
        fixture_t *f = *state;
        const char *row[] = {"1", "a", "n", "f"};

        begin_with_relations(f);
        msg_origin(&f->b, "syncfleet");
        decode(f, SF_PG_MSG_ORIGIN);
        msg_insert(&f->b, 16384, 4, row);
        decode(f, SF_PG_MSG_SKIPPED);
        msg_insert(&f->b, 16384, 4, row);
        decode(f, SF_PG_MSG_SKIPPED);
        assert_int_equal(f->d.origin_skipped, 2);
        msg_commit(&f->b, FINAL, END_LSN);
        decode(f, SF_PG_MSG_COMMIT);

        msg_begin(&f->b, 0x200000000ULL, 800);
        decode(f, SF_PG_MSG_BEGIN);
        msg_origin(&f->b, "syncfleet.7");
        decode(f, SF_PG_MSG_ORIGIN);
        msg_insert(&f->b, 16384, 4, row);
        decode(f, SF_PG_MSG_SKIPPED);
        msg_commit(&f->b, 0x200000000ULL, 0x200000100ULL);
        decode(f, SF_PG_MSG_COMMIT);

        msg_begin(&f->b, 0x300000000ULL, 801);
        decode(f, SF_PG_MSG_BEGIN);
        msg_origin(&f->b, "pg_16400"); /* a subscription's origin */
        decode(f, SF_PG_MSG_ORIGIN);
        msg_insert(&f->b, 16384, 4, row);
        decode(f, SF_PG_MSG_CHANGE);
        assert_string_equal(f->d.origin, "pg_16400");

        /* the origin does not outlive its transaction */
        msg_commit(&f->b, 0x300000000ULL, 0x300000100ULL);
        decode(f, SF_PG_MSG_COMMIT);
        msg_begin(&f->b, 0x400000000ULL, 802);
        decode(f, SF_PG_MSG_BEGIN);
        msg_insert(&f->b, 16384, 4, row);
        decode(f, SF_PG_MSG_CHANGE);
        assert_int_equal(f->d.origin_skipped, 3);

        assert_true(sf_pg_origin_is_syncfleet("syncfleet"));
        assert_true(sf_pg_origin_is_syncfleet("syncfleet.12"));
        assert_false(sf_pg_origin_is_syncfleet("syncfleetx"));
        assert_false(sf_pg_origin_is_syncfleet("syncfleet-snapshot:s"));
        assert_false(sf_pg_origin_is_syncfleet(NULL));
}

/* Events nobody subscribes to, and tables that are not captured, are
 * skipped but counted in seq, so ids do not depend on the subscribers. */
static void test_filtered_events(void **state)
{
        fixture_t *f = *state;
        const char *line[] = {"7", "1", "2"};
        const char *other[] = {"5"};
        static const col_t other_cols[] = {{"id", PG_INT4OID, 1}};

        begin_with_relations(f);
        msg_relation(&f->b, 17000, "public", "audit", 'd', 1, other_cols);
        decode(f, SF_PG_MSG_RELATION);
        msg_insert(&f->b, 17000, 1, other);
        decode(f, SF_PG_MSG_SKIPPED);
        msg_update(&f->b, 16390, 0, 3, NULL, line); /* only inserts */
        decode(f, SF_PG_MSG_SKIPPED);
        msg_delete(&f->b, 16390, 'K', 3, line);
        decode(f, SF_PG_MSG_SKIPPED);
        msg_insert(&f->b, 16390, 3, line);
        decode(f, SF_PG_MSG_CHANGE);
        assert_int_equal(f->ch.seq, 4);
}

/* Changes at or before the resume point were handed out already. */
static void test_resume_point(void **state)
{
        fixture_t *f = *state;
        const char *row[] = {"1", "a", "n", "f"};

        f->d.resume_lsn = FINAL;
        f->d.resume_seq = 2;
        msg_begin(&f->b, FINAL - 0x100, 1);
        decode(f, SF_PG_MSG_BEGIN);
        msg_relation(&f->b, 16384, "public", "customers", 'd', 4, cust_cols);
        decode(f, SF_PG_MSG_RELATION);
        msg_insert(&f->b, 16384, 4, row);
        decode(f, SF_PG_MSG_SKIPPED);
        msg_commit(&f->b, FINAL - 0x100, FINAL - 0x80);
        decode(f, SF_PG_MSG_COMMIT);
        msg_begin(&f->b, FINAL, 2);
        decode(f, SF_PG_MSG_BEGIN);
        msg_insert(&f->b, 16384, 4, row);
        decode(f, SF_PG_MSG_SKIPPED);
        msg_insert(&f->b, 16384, 4, row);
        decode(f, SF_PG_MSG_SKIPPED);
        msg_insert(&f->b, 16384, 4, row);
        decode(f, SF_PG_MSG_CHANGE);
        assert_int_equal(f->ch.seq, 3);
}

/* A Relation message sent again (ALTER TABLE) replaces the columns. */
static void test_relation_replaced(void **state)
{
        fixture_t *f = *state;
        static const col_t cols2[] = {{"id", PG_INT4OID, 1}, {"email", 25, 0}};
        const char *row[] = {"3", "a@b.c"};

        begin_with_relations(f);
        msg_relation(&f->b, 16384, "public", "customers", 'd', 2, cols2);
        decode(f, SF_PG_MSG_RELATION);
        assert_int_equal(f->d.rel_cnt, 2);
        msg_insert(&f->b, 16384, 2, row);
        decode(f, SF_PG_MSG_CHANGE);
        assert_text(f->ch.after_text, "{\"email\":\"a@b.c\",\"id\":3}");
}

static void test_malformed(void **state)
{
        fixture_t *f = *state;
        const char *row[] = {"1", "a", "n", "f"};
        const char *short_row[] = {"1", "a"};

        sf_buf_reset(&f->b);
        put8(&f->b, 'Z');
        decode_fails(f, "pgoutput: unknown message type 'Z' (0x5a)");
        msg_commit(&f->b, FINAL, END_LSN);
        decode_fails(f, "pgoutput: Commit without a Begin");
        msg_insert(&f->b, 16384, 4, row);
        decode_fails(f, "pgoutput: I message outside a transaction");

        msg_begin(&f->b, FINAL, 1);
        decode(f, SF_PG_MSG_BEGIN);
        decode_fails(f, "pgoutput: Begin inside the transaction of 1/1000");
        msg_insert(&f->b, 16384, 4, row);
        decode_fails(f, "pgoutput: I message for relation 16384, which no "
                        "Relation message described");
        msg_relation(&f->b, 16384, "public", "customers", 'd', 4, cust_cols);
        decode(f, SF_PG_MSG_RELATION);
        msg_insert(&f->b, 16384, 2, short_row);
        decode_fails(f, "pgoutput: a row of public.customers has 2 columns, "
                        "its Relation message 4");
        msg_insert(&f->b, 16384, 4, row);
        f->b.len -= 3; /* cut into the last value */
        decode_fails(f, "pgoutput: message 'I' is truncated (24 bytes)");
        msg_insert(&f->b, 16384, 4, row);
        f->b.data[5] = 'X';
        decode_fails(f, "pgoutput: unexpected tuple tag 0x58 in a change of "
                        "public.customers");
        msg_insert(&f->b, 16384, 4, row);
        f->b.data[8] = 'q';
        decode_fails(f, "pgoutput: unknown column kind 0x71 in a row of "
                        "public.customers");
        msg_begin(&f->b, FINAL, 1);
        f->b.len = 10;
        decode_fails(f, "pgoutput: message 'B' is truncated (10 bytes)");
        decode_fails(f, "pgoutput: message 'B' is truncated (10 bytes)");
        sf_buf_reset(&f->b);
        put8(&f->b, 'Y'); /* Type: ignored */
        decode(f, SF_PG_MSG_OTHER);
        assert_int_equal(
            sf_pg_decode(&f->d, "", 0, &f->ch, f->err, sizeof(f->err)), -1);
        assert_string_equal(f->err, "pgoutput: empty message");
}

/* --- Values --------------------------------------------------------------- */

/* Both ways of writing a value, the tree and the direct one, give WANT. */
static void value_is(uint32_t type, const char *text, const char *want)
{
        cJSON *v = sf_pg_value_json(type, text, strlen(text));
        sf_buf_t b;

        assert_json(v, want);
        cJSON_Delete(v);
        sf_buf_init(&b, 0);
        assert_int_equal(sf_pg_value_append(&b, type, text, strlen(text)), 0);
        if (strcmp(b.data, want))
                fail_msg("appended %s, expected %s", b.data, want);
        sf_buf_free(&b);
}

static void test_values(void **state)
{
        (void)state;
        value_is(PG_BOOLOID, "t", "true");
        value_is(PG_BOOLOID, "f", "false");
        value_is(PG_BOOLOID, "maybe", "\"maybe\"");
        value_is(PG_INT4OID, "-0", "0");
        /* one negative digit is not "-0" (the direct path wrote 0) */
        value_is(PG_INT4OID, "-1", "-1");
        value_is(PG_INT2OID, "-9", "-9");
        value_is(PG_INT8OID, "-5", "-5");
        value_is(PG_INT4OID, "007", "\"007\"");
        value_is(PG_INT4OID, "12a", "\"12a\"");
        value_is(PG_INT4OID, "-", "\"-\"");
        value_is(PG_INT4OID, "", "\"\"");
        value_is(PG_INT2OID, "-32768", "-32768");
        value_is(PG_INT4OID, "2147483647", "2147483647");
        value_is(PG_INT8OID, "9007199254740992", "9007199254740992");
        /* beyond 2^53: the digits are kept exactly */
        value_is(PG_INT8OID, "9223372036854775807", "9223372036854775807");
        value_is(PG_INT8OID, "-9223372036854775808", "-9223372036854775808");
        /* beyond 64 bits (no int8 holds it): text, both ways */
        value_is(PG_INT8OID, "-9223372036854775809",
                 "\"-9223372036854775809\"");
        value_is(PG_INT8OID, "18446744073709551615", "18446744073709551615");
        value_is(PG_INT8OID, "18446744073709551616",
                 "\"18446744073709551616\"");
        value_is(PG_OIDOID, "4294967295", "4294967295");
        value_is(PG_FLOAT8OID, "1.5", "1.5");
        value_is(PG_FLOAT8OID, "0.1", "0.1");
        value_is(PG_FLOAT8OID, "-1e+300", "-1e+300");
        value_is(PG_FLOAT8OID, "NaN", "\"NaN\"");
        value_is(PG_FLOAT4OID, "-Infinity", "\"-Infinity\"");
        value_is(PG_NUMERICOID, "12345678901234567890.000000001",
                 "\"12345678901234567890.000000001\"");
        value_is(PG_NUMERICOID, "NaN", "\"NaN\"");
        value_is(25, "tab\there \"q\"", "\"tab\\there \\\"q\\\"\"");
        value_is(PG_JSONBOID, "{\"b\": [1, 2.5, null], \"a\": \"x\"}",
                 "{\"a\":\"x\",\"b\":[1,2.5,null]}");
        value_is(PG_JSONOID, "[true, {}]", "[true,{}]");
        value_is(PG_JSONOID, "not json", "\"not json\"");
        value_is(PG_BYTEAOID, "\\x", "\"\"");
        value_is(PG_BYTEAOID, "\\x00ff10", "\"AP8Q\"");
        value_is(PG_BYTEAOID, "\\x48656c6c6f", "\"SGVsbG8=\"");
        value_is(PG_BYTEAOID, "a\\\\b\\001", "\"YVxiAQ==\""); /* escape */
        value_is(PG_TIMESTAMPTZOID, "2024-01-02 03:04:05.123456+00",
                 "\"2024-01-02T03:04:05.123456Z\"");
        value_is(PG_TIMESTAMPTZOID, "2024-01-02 03:04:05+05:30",
                 "\"2024-01-02T03:04:05+05:30\"");
        value_is(PG_TIMESTAMPTZOID, "2024-01-02 03:04:05-08",
                 "\"2024-01-02T03:04:05-08:00\"");
        value_is(PG_TIMESTAMPTZOID, "infinity", "\"infinity\"");
        value_is(PG_TIMESTAMPOID, "2024-01-02 03:04:05",
                 "\"2024-01-02T03:04:05\"");
        value_is(PG_TIMESTAMPOID, "0044-03-15 12:00:00 BC",
                 "\"0044-03-15 12:00:00 BC\"");
        value_is(PG_DATEOID, "2024-02-29", "\"2024-02-29\"");
        value_is(PG_TIMEOID, "23:59:59.5", "\"23:59:59.5\"");
        value_is(PG_TIMETZOID, "03:04:05+02", "\"03:04:05+02:00\"");
        value_is(PG_TIMETZOID, "03:04:05+00", "\"03:04:05Z\"");
        value_is(PG_TIMETZOID, "03:04:05+00:00", "\"03:04:05Z\"");
        value_is(PG_TIMESTAMPOID, "no-space", "\"no-space\"");
        /* longer than the direct path's stack buffer: through the tree */
        {
                char in[200], want[210];

                memset(in, '0', sizeof(in) - 1);
                in[sizeof(in) - 1] = '\0';
                memcpy(in, "2024-01-02 03:04:05.", 20);
                snprintf(want, sizeof(want), "\"%s\"", in);
                want[11] = 'T';
                value_is(PG_TIMESTAMPOID, in, want);
        }
        value_is(25, "ctl\x01\x1f\\", "\"ctl\\u0001\\u001f\\\\\"");
        value_is(2950, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
                 "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"");
        value_is(1186, "P1DT2H", "\"P1DT2H\""); /* interval: text */
}

static void test_base64_and_lsn(void **state)
{
        static const struct {
                const char *in, *out;
        } v[] = {{"", ""},
                 {"f", "Zg=="},
                 {"fo", "Zm8="},
                 {"foo", "Zm9v"},
                 {"foob", "Zm9vYg=="},
                 {"fooba", "Zm9vYmE="},
                 {"foobar", "Zm9vYmFy"}};
        uint64_t lsn;
        char buf[24];

        (void)state;
        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
                char *s = sf_pg_base64((const unsigned char *)v[i].in,
                                       strlen(v[i].in));

                assert_string_equal(s, v[i].out);
                free(s);
        }
        assert_int_equal(sf_pg_lsn_parse("16/B374D848", &lsn), 0);
        assert_true(lsn == 0x16B374D848ULL);
        sf_pg_lsn_format(lsn, buf, sizeof(buf));
        assert_string_equal(buf, "16/B374D848");
        sf_pg_lsn_format(0, buf, sizeof(buf));
        assert_string_equal(buf, "0/0");
        assert_int_equal(sf_pg_lsn_parse("16B374D848", &lsn), -1);
        assert_int_equal(sf_pg_lsn_parse("1/", &lsn), -1);
        assert_int_equal(sf_pg_lsn_parse("1/2x", &lsn), -1);
        assert_int_equal(sf_pg_lsn_parse("100000000/0", &lsn), -1);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_insert_envelope, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_multi_row_transaction, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_update_identity_full, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(
                test_update_old_key_and_toast_marker, setup, teardown),
            cmocka_unit_test_setup_teardown(test_update_without_old_tuple,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_delete_key_and_full, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_truncate, setup, teardown),
            cmocka_unit_test_setup_teardown(test_origin, setup, teardown),
            cmocka_unit_test_setup_teardown(test_filtered_events, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_resume_point, setup, teardown),
            cmocka_unit_test_setup_teardown(test_relation_replaced, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
            cmocka_unit_test(test_values),
            cmocka_unit_test(test_base64_and_lsn),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
