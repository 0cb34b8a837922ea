/*
 * Unit tests for common/envelope.c: canonical JSON, the sync-log change
 * envelope and the outbound record.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "envelope.h"
#include "sf.h"

/* Canonical form of the JSON text IN. */
static char *canon_of(const char *in)
{
        cJSON *v = cJSON_Parse(in);
        char *s;

        assert_non_null(v);
        s = sf_json_canonical(v);
        cJSON_Delete(v);
        return s;
}

static void assert_canon(const char *in, const char *want)
{
        char *s = canon_of(in);

        assert_non_null(s);
        assert_string_equal(s, want);
        free(s);
}

static void test_canonical_objects(void **state)
{
        (void)state;
        assert_canon("{ \"b\" : 1, \"a\" : { \"z\": true, \"y\": null } }",
                     "{\"a\":{\"y\":null,\"z\":true},\"b\":1}");
        /* byte order: upper case before lower case, prefix first, UTF-8
         * after ASCII */
        assert_canon(
            "{\"b\":1,\"aa\":2,\"a\":3,\"B\":4,\"\xc3\xa9\":5,\"_\":6}",
            "{\"B\":4,\"_\":6,\"a\":3,\"aa\":2,\"b\":1,"
            "\"\xc3\xa9\":5}");
        /* arrays keep their order, objects inside them are sorted */
        assert_canon("[3, 1, {\"y\": [2, 1], \"x\": {}}, [], \"s\", false]",
                     "[3,1,{\"x\":{},\"y\":[2,1]},[],\"s\",false]");
        assert_canon("{}", "{}");
        /* duplicate names keep their relative order */
        assert_canon("{\"k\":2,\"a\":0,\"k\":1}", "{\"a\":0,\"k\":2,\"k\":1}");
        assert_null(sf_json_canonical(NULL));
}

static void test_canonical_strings(void **state)
{
        const char *raw = "q\"b\\s/\b\f\n\r\t\x01\x1f\x7f \xc3\xa9\xe2\x82\xac";
        cJSON *s = cJSON_CreateString(raw);
        char *mine, *theirs;

        (void)state;
        mine = sf_json_canonical(s);
        theirs = cJSON_PrintUnformatted(s);
        assert_string_equal(mine, "\"q\\\"b\\\\s/\\b\\f\\n\\r\\t\\u0001"
                                  "\\u001f\x7f \xc3\xa9\xe2\x82\xac\"");
        assert_string_equal(mine, theirs);
        free(mine);
        free(theirs);
        cJSON_Delete(s);
        /* \u escapes in the input come out as UTF-8 */
        assert_canon("{\"n\\u00e9\":\"\\u20ac\\ud83d\\ude00\"}",
                     "{\"n\xc3\xa9\":\"\xe2\x82\xac\xf0\x9f\x98\x80\"}");
}

static void test_canonical_numbers(void **state)
{
        static const struct {
                double d;
                const char *want;
        } cases[] = {
            {42, "42"},
            {-5, "-5"},
            {-0.0, "0"},
            {0, "0"},
            {0.1, "0.1"},
            {1.5, "1.5"},
            {-2.25, "-2.25"},
            {1e20, "100000000000000000000"},
            {1e15, "1000000000000000"},
            {1764150000000.0, "1764150000000"},
            {9007199254740992.0, "9007199254740992"},
            {3000000000.0, "3000000000"},
            {1e21, "1e+21"},
            {1e-7, "1e-07"},
            {0.30000000000000004, "0.30000000000000004"},
            {1.0 / 3.0, "0.3333333333333333"},
        };
        size_t i;

        (void)state;
        for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                cJSON *n = cJSON_CreateNumber(cases[i].d);
                char *s = sf_json_canonical(n);

                assert_string_equal(s, cases[i].want);
                /* and it reads back as the same number */
                assert_true(strtod(s, NULL) == cases[i].d);
                free(s);
                cJSON_Delete(n);
        }
        assert_canon("[1.0, 1, 10e0, -0, 0.0]", "[1,1,10,0,0]");
}

static void test_design_examples(void **state)
{
        sf_change_t c;
        sf_outbound_t o;
        char *k;

        (void)state;
        memset(&c, 0, sizeof(c));
        c.table = "customers";
        c.key = cJSON_Parse("{\"id\":42}");
        k = sf_change_key_json(&c);
        assert_string_equal(k, "{\"key\":{\"id\":42},\"table\":\"customers\"}");
        free(k);

        memset(&o, 0, sizeof(o));
        o.action = "customer-to-webshop";
        o.table = "customers";
        o.root_table = "customers";
        o.root_key = c.key;
        k = sf_outbound_key_json(&o);
        assert_string_equal(k, "{\"action\":\"customer-to-webshop\","
                               "\"key\":{\"id\":42},\"table\":\"customers\"}");
        free(k);
        cJSON_Delete(c.key);
}

/* The DESIGN.md sync-log example change, owned. */
static void example_change(sf_change_t *c)
{
        memset(c, 0, sizeof(*c));
        c->op = SF_OP_UPDATE;
        c->ts_ms = 1764150000000;
        c->connector = sf_strdup("postgres");
        c->db = sf_strdup("erp");
        c->schema = sf_strdup("public");
        c->table = sf_strdup("customers");
        c->lsn = sf_strdup("0/16B3748");
        c->txid = 731;
        c->seq = 3;
        c->key = cJSON_Parse("{\"id\":42}");
        c->before = cJSON_Parse("{\"name\":\"Old\",\"id\":42}");
        c->after = cJSON_Parse("{\"name\":\"New\",\"id\":42}");
        c->event_id = sf_strdup("postgres:erp:0/16B3748:3");
}

static const char example_value[] =
    "{\"after\":{\"id\":42,\"name\":\"New\"},"
    "\"before\":{\"id\":42,\"name\":\"Old\"},\"op\":\"u\","
    "\"source\":{\"connector\":\"postgres\",\"db\":\"erp\","
    "\"lsn\":\"0/16B3748\",\"schema\":\"public\",\"seq\":3,"
    "\"table\":\"customers\",\"txid\":731},\"ts_ms\":1764150000000}";

static void assert_json_equal(const cJSON *a, const cJSON *b)
{
        char *x = sf_json_canonical(a), *y = sf_json_canonical(b);

        assert_string_equal(x ? x : "(none)", y ? y : "(none)");
        free(x);
        free(y);
}

static void test_change_round_trip(void **state)
{
        sf_change_t c, p;
        char err[256] = "";
        char *k, *v;

        (void)state;
        example_change(&c);
        k = sf_change_key_json(&c);
        v = sf_change_value_json(&c);
        assert_string_equal(v, example_value);
        assert_int_equal(sf_change_parse(k, strlen(k), v, strlen(v), "hdr-id",
                                         &p, err, sizeof(err)),
                         0);
        assert_int_equal(p.op, SF_OP_UPDATE);
        assert_true(p.ts_ms == 1764150000000);
        assert_string_equal(p.connector, "postgres");
        assert_string_equal(p.db, "erp");
        assert_string_equal(p.schema, "public");
        assert_string_equal(p.table, "customers");
        assert_string_equal(p.lsn, "0/16B3748");
        assert_true(p.txid == 731);
        assert_true(p.seq == 3);
        assert_json_equal(p.key, c.key);
        assert_json_equal(p.before, c.before);
        assert_json_equal(p.after, c.after);
        assert_string_equal(p.event_id, "hdr-id");
        sf_change_clear(&p);
        /* without a header the id comes from the source position */
        assert_int_equal(sf_change_parse(k, strlen(k), v, strlen(v), NULL, &p,
                                         err, sizeof(err)),
                         0);
        assert_string_equal(p.event_id, "postgres:erp:0/16B3748:3");
        sf_change_clear(&p);
        free(k);
        free(v);
        sf_change_clear(&c);
        sf_change_clear(NULL);
}

/* Integers beyond 2^53 in a sync-log record and in the outbound record
 * made from it come out with the digits they came in with. */
static void test_exact_integers_through_records(void **state)
{
        const char *k = "{\"key\":{\"id\":9007199254740993},"
                        "\"table\":\"t\"}";
        const char *v =
            "{\"after\":{\"id\":9007199254740993,\"max\":"
            "9223372036854775807,\"min\":-9223372036854775808,\"u\":"
            "18446744073709551615},\"before\":null,\"op\":\"c\",\"source\":{"
            "\"connector\":\"sqlite\",\"db\":\"d\",\"lsn\":"
            "18446744073709551615,\"seq\":9223372036854775807,\"table\":"
            "\"t\"},\"ts_ms\":9007199254740993}";
        const char *v_out =
            "{\"after\":{\"id\":9007199254740993,\"max\":"
            "9223372036854775807,\"min\":-9223372036854775808,\"u\":"
            "18446744073709551615},\"before\":null,\"op\":\"c\",\"source\":{"
            "\"connector\":\"sqlite\",\"db\":\"d\",\"lsn\":"
            "\"18446744073709551615\",\"seq\":9223372036854775807,\"table\":"
            "\"t\"},\"ts_ms\":9007199254740993}";
        sf_change_t c;
        sf_outbound_t o, p;
        char err[256] = "", *s;

        (void)state;
        assert_int_equal(sf_change_parse(k, strlen(k), v, strlen(v), NULL, &c,
                                         err, sizeof(err)),
                         0);
        assert_true(c.seq == INT64_MAX);
        assert_true(c.ts_ms == 9007199254740993LL);
        assert_string_equal(c.lsn, "18446744073709551615");
        s = sf_change_key_json(&c);
        assert_string_equal(s, k);
        free(s);
        s = sf_change_value_json(&c);
        assert_string_equal(s, v_out);
        free(s);

        memset(&o, 0, sizeof(o));
        o.kind = sf_strdup("message");
        o.action = sf_strdup("a");
        o.event = sf_strdup("insert");
        o.table = sf_strdup("t");
        o.key = cJSON_Duplicate(c.key, 1);
        o.root_table = sf_strdup("t");
        o.root_key = cJSON_Duplicate(c.key, 1);
        o.record = cJSON_Duplicate(c.after, 1);
        o.event_id = sf_strdup("e");
        o.source_ts_ms = INT64_MIN;
        o.routed_ts_ms = INT64_MAX;
        s = sf_outbound_key_json(&o);
        assert_string_equal(
            s, "{\"action\":\"a\",\"key\":{\"id\":9007199254740993},"
               "\"table\":\"t\"}");
        free(s);
        s = sf_outbound_value_json(&o);
        assert_non_null(strstr(s, "\"record\":{\"id\":9007199254740993,"
                                  "\"max\":9223372036854775807,\"min\":"
                                  "-9223372036854775808,\"u\":"
                                  "18446744073709551615}"));
        assert_int_equal(sf_outbound_parse(s, strlen(s), &p, err, sizeof(err)),
                         0);
        assert_true(p.source_ts_ms == INT64_MIN);
        assert_true(p.routed_ts_ms == INT64_MAX);
        assert_true(sf_json_equal(p.record, c.after));
        free(s);
        sf_outbound_clear(&p);
        sf_outbound_clear(&o);
        sf_change_clear(&c);
}

/* A SQLite-style change: no schema, lsn or txid, an insert. */
static void test_change_minimal_source(void **state)
{
        sf_change_t c, p;
        char err[256] = "";
        char *k, *v;

        (void)state;
        memset(&c, 0, sizeof(c));
        c.op = SF_OP_CREATE;
        c.ts_ms = 5;
        c.connector = sf_strdup("sqlite");
        c.db = sf_strdup("erp.db");
        c.table = sf_strdup("t");
        c.txid = -1;
        c.seq = 17;
        c.key = cJSON_Parse("{\"k\":\"a\"}");
        c.after = cJSON_Parse("{\"k\":\"a\",\"x\":1.5,\"n\":null}");
        k = sf_change_key_json(&c);
        v = sf_change_value_json(&c);
        assert_string_equal(k, "{\"key\":{\"k\":\"a\"},\"table\":\"t\"}");
        assert_string_equal(
            v, "{\"after\":{\"k\":\"a\",\"n\":null,\"x\":1.5},\"before\":null,"
               "\"op\":\"c\",\"source\":{\"connector\":\"sqlite\","
               "\"db\":\"erp.db\",\"seq\":17,\"table\":\"t\"},\"ts_ms\":5}");
        assert_int_equal(sf_change_parse(k, strlen(k), v, strlen(v), NULL, &p,
                                         err, sizeof(err)),
                         0);
        assert_null(p.schema);
        assert_null(p.lsn);
        assert_null(p.before);
        assert_true(p.txid == -1);
        assert_true(p.seq == 17);
        assert_string_equal(p.event_id, "sqlite:erp.db:17");
        assert_string_equal(sf_op_event_name(p.op), "insert");
        sf_change_clear(&p);
        free(k);
        free(v);
        sf_change_clear(&c);
}

/* With no record key, the value must carry "key". Debezium-style extras
 * (a numeric lsn, unknown fields) are accepted. */
static void test_change_key_in_value(void **state)
{
        const char *v = "{\"op\":\"d\",\"ts_ms\":9,\"key\":{\"id\":1},"
                        "\"source\":{\"connector\":\"postgresql\","
                        "\"db\":\"erp\",\"table\":\"t\",\"lsn\":24023128,"
                        "\"version\":\"2.1\"},\"before\":{\"id\":1},"
                        "\"after\":null,\"transaction\":null}";
        sf_change_t p;
        char err[256] = "";

        (void)state;
        assert_int_equal(
            sf_change_parse(NULL, 0, v, strlen(v), NULL, &p, err, sizeof(err)),
            0);
        assert_int_equal(p.op, SF_OP_DELETE);
        assert_string_equal(p.lsn, "24023128");
        assert_true(p.seq == 0);
        assert_string_equal(p.event_id, "postgresql:erp:24023128:0");
        assert_string_equal(sf_op_event_name(p.op), "delete");
        sf_change_clear(&p);
}

static void assert_change_error(const char *key, const char *value,
                                const char *want)
{
        sf_change_t p;
        char err[256] = "";

        assert_int_equal(sf_change_parse(key, key ? strlen(key) : 0, value,
                                         value ? strlen(value) : 0, NULL, &p,
                                         err, sizeof(err)),
                         -1);
        assert_string_equal(err, want);
        /* nothing is left behind in OUT */
        assert_null(p.table);
        assert_null(p.key);
        assert_null(p.after);
        assert_null(p.event_id);
}

#define K     "{\"key\":{\"id\":1},\"table\":\"t\"}"
#define SRC   "\"source\":{\"connector\":\"sqlite\",\"db\":\"d\",\"table\":\"t\"}"
#define AFTER "\"after\":{\"id\":1}"

static void test_change_errors(void **state)
{
        (void)state;
        assert_change_error(K, "{\"op\":", "value is not JSON");
        assert_change_error(K, "", "value is not JSON");
        assert_change_error(K, NULL, "value is not JSON");
        assert_change_error(K, "{} x", "value is not JSON");
        assert_change_error(K, "[1]", "value is not a JSON object");
        assert_change_error(K, "{\"ts_ms\":1," SRC "," AFTER "}",
                            "op is missing");
        assert_change_error(K, "{\"op\":1,\"ts_ms\":1," SRC "," AFTER "}",
                            "op is not a string");
        assert_change_error(K, "{\"op\":\"x\",\"ts_ms\":1," SRC "," AFTER "}",
                            "op \"x\" is not one of c, u, d, r");
        assert_change_error(K, "{\"op\":\"cu\",\"ts_ms\":1," SRC "," AFTER "}",
                            "op \"cu\" is not one of c, u, d, r");
        assert_change_error(K, "{\"op\":\"c\"," SRC "," AFTER "}",
                            "ts_ms is missing");
        assert_change_error(K,
                            "{\"op\":\"c\",\"ts_ms\":\"1\"," SRC "," AFTER "}",
                            "ts_ms is not an integer");
        assert_change_error(K, "{\"op\":\"c\",\"ts_ms\":1.5," SRC "," AFTER "}",
                            "ts_ms is not an integer");
        assert_change_error(K, "{\"op\":\"c\",\"ts_ms\":1," AFTER "}",
                            "source is missing");
        assert_change_error(
            K, "{\"op\":\"c\",\"ts_ms\":1,\"source\":[]," AFTER "}",
            "source is not an object");
        assert_change_error(
            K,
            "{\"op\":\"c\",\"ts_ms\":1,\"source\":{\"db\":\"d\","
            "\"table\":\"t\"}," AFTER "}",
            "source.connector is missing");
        assert_change_error(
            K,
            "{\"op\":\"c\",\"ts_ms\":1,\"source\":{"
            "\"connector\":\"s\",\"db\":2,\"table\":\"t\"}," AFTER "}",
            "source.db is not a string");
        assert_change_error(K,
                            "{\"op\":\"c\",\"ts_ms\":1,\"source\":{"
                            "\"connector\":\"s\",\"db\":\"d\"}," AFTER "}",
                            "source.table is missing");
        assert_change_error(K,
                            "{\"op\":\"c\",\"ts_ms\":1,\"source\":{"
                            "\"connector\":\"s\",\"db\":\"d\",\"table\":\"t\","
                            "\"schema\":{}}," AFTER "}",
                            "source.schema is not a string");
        assert_change_error(K,
                            "{\"op\":\"c\",\"ts_ms\":1,\"source\":{"
                            "\"connector\":\"s\",\"db\":\"d\",\"table\":\"t\","
                            "\"lsn\":true}," AFTER "}",
                            "source.lsn is not a string");
        assert_change_error(K,
                            "{\"op\":\"c\",\"ts_ms\":1,\"source\":{"
                            "\"connector\":\"s\",\"db\":\"d\",\"table\":\"t\","
                            "\"txid\":\"7\"}," AFTER "}",
                            "source.txid is not an integer");
        assert_change_error(K,
                            "{\"op\":\"c\",\"ts_ms\":1,\"source\":{"
                            "\"connector\":\"s\",\"db\":\"d\",\"table\":\"t\","
                            "\"seq\":0.5}," AFTER "}",
                            "source.seq is not an integer");
        assert_change_error(
            K, "{\"op\":\"u\",\"ts_ms\":1," SRC ",\"before\":[]," AFTER "}",
            "before is not an object or null");
        assert_change_error(K, "{\"op\":\"u\",\"ts_ms\":1," SRC ",\"after\":3}",
                            "after is not an object or null");
        assert_change_error(K, "{\"op\":\"c\",\"ts_ms\":1," SRC "}",
                            "after is missing: op \"c\" needs an after image");
        assert_change_error(K,
                            "{\"op\":\"r\",\"ts_ms\":1," SRC ",\"after\":null}",
                            "after is missing: op \"r\" needs an after image");
        assert_change_error(
            K, "{\"op\":\"u\",\"ts_ms\":1," SRC ",\"before\":{\"id\":1}}",
            "after is missing: op \"u\" needs an after image");
        assert_change_error(K, "{\"op\":\"d\",\"ts_ms\":1," SRC "," AFTER "}",
                            "before is missing: op \"d\" needs a before image");
        /* the record key */
        assert_change_error(
            "{\"key\":", "{\"op\":\"c\",\"ts_ms\":1," SRC "," AFTER "}",
            "key is not JSON");
        assert_change_error("\"t\"",
                            "{\"op\":\"c\",\"ts_ms\":1," SRC "," AFTER "}",
                            "key is not a JSON object");
        assert_change_error("{\"key\":{\"id\":1}}",
                            "{\"op\":\"c\",\"ts_ms\":1," SRC "," AFTER "}",
                            "key.table is missing or not a string");
        assert_change_error("{\"key\":{\"id\":1},\"table\":\"u\"}",
                            "{\"op\":\"c\",\"ts_ms\":1," SRC "," AFTER "}",
                            "key.table \"u\" does not match source.table "
                            "\"t\"");
        assert_change_error("{\"table\":\"t\"}",
                            "{\"op\":\"c\",\"ts_ms\":1," SRC "," AFTER "}",
                            "key.key is missing");
        assert_change_error("{\"key\":[1],\"table\":\"t\"}",
                            "{\"op\":\"c\",\"ts_ms\":1," SRC "," AFTER "}",
                            "key.key is not an object");
        assert_change_error(NULL,
                            "{\"op\":\"c\",\"ts_ms\":1," SRC "," AFTER "}",
                            "key is missing: the record has no key and the "
                            "value no \"key\"");
        assert_change_error(
            NULL, "{\"op\":\"c\",\"ts_ms\":1,\"key\":1," SRC "," AFTER "}",
            "key is not an object");
}

static void test_change_too_large(void **state)
{
        sf_change_t p;
        char err[256] = "";

        (void)state;
        assert_int_equal(sf_change_parse(K, strlen(K), "{}",
                                         SF_MAX_RECORD_BYTES + 1, NULL, &p, err,
                                         sizeof(err)),
                         -1);
        assert_string_equal(err, "value is larger than 8388608 bytes");
}

static void example_outbound(sf_outbound_t *o)
{
        memset(o, 0, sizeof(*o));
        o->kind = sf_strdup("message");
        o->action = sf_strdup("order-to-archive");
        o->event = sf_strdup("update");
        o->table = sf_strdup("sales_lines");
        o->key = cJSON_Parse("{\"id\":7}");
        o->root_table = sf_strdup("sales_orders");
        o->root_key = cJSON_Parse("{\"id\":3}");
        o->record = cJSON_Parse("{\"qty\":2,\"id\":7,\"order_id\":3}");
        o->before = cJSON_Parse("{\"qty\":1,\"id\":7,\"order_id\":3}");
        o->event_id = sf_strdup("sqlite:abc:9");
        o->source_ts_ms = 1764150000000;
        o->routed_ts_ms = 1764150000123;
}

static void test_outbound_round_trip(void **state)
{
        sf_outbound_t o, p;
        char err[256] = "";
        char *k, *v;

        (void)state;
        example_outbound(&o);
        k = sf_outbound_key_json(&o);
        v = sf_outbound_value_json(&o);
        assert_string_equal(k,
                            "{\"action\":\"order-to-archive\","
                            "\"key\":{\"id\":3},\"table\":\"sales_orders\"}");
        assert_string_equal(
            v, "{\"action\":\"order-to-archive\",\"before\":{\"id\":7,"
               "\"order_id\":3,\"qty\":1},\"event\":\"update\","
               "\"event_id\":\"sqlite:abc:9\",\"key\":{\"id\":7},"
               "\"kind\":\"message\",\"record\":{\"id\":7,\"order_id\":3,"
               "\"qty\":2},\"root\":{\"key\":{\"id\":3},"
               "\"table\":\"sales_orders\"},\"routed_ts_ms\":1764150000123,"
               "\"source_ts_ms\":1764150000000,\"table\":\"sales_lines\"}");
        assert_int_equal(sf_outbound_parse(v, strlen(v), &p, err, sizeof(err)),
                         0);
        assert_string_equal(p.kind, "message");
        assert_string_equal(p.action, "order-to-archive");
        assert_string_equal(p.event, "update");
        assert_string_equal(p.table, "sales_lines");
        assert_json_equal(p.key, o.key);
        assert_string_equal(p.root_table, "sales_orders");
        assert_json_equal(p.root_key, o.root_key);
        assert_json_equal(p.record, o.record);
        assert_json_equal(p.before, o.before);
        assert_string_equal(p.event_id, "sqlite:abc:9");
        assert_true(p.source_ts_ms == 1764150000000);
        assert_true(p.routed_ts_ms == 1764150000123);
        sf_outbound_clear(&p);
        free(v);
        free(k);

        /* a redirected delete carries no record and no before image */
        cJSON_Delete(o.record);
        cJSON_Delete(o.before);
        o.record = o.before = NULL;
        v = sf_outbound_value_json(&o);
        assert_non_null(strstr(v, "\"before\":null"));
        assert_non_null(strstr(v, "\"record\":null"));
        assert_int_equal(sf_outbound_parse(v, strlen(v), &p, err, sizeof(err)),
                         0);
        assert_null(p.record);
        assert_null(p.before);
        sf_outbound_clear(&p);
        free(v);
        sf_outbound_clear(&o);
        sf_outbound_clear(NULL);
}

/* Parses the example outbound value with member NAME replaced by REPL (a
 * JSON text, or NULL to remove it) and expects error WANT. */
static void assert_outbound_error(const char *name, const char *repl,
                                  const char *want)
{
        sf_outbound_t o, p;
        char err[256] = "";
        cJSON *v, *r = NULL;
        char *text;

        example_outbound(&o);
        text = sf_outbound_value_json(&o);
        v = cJSON_Parse(text);
        free(text);
        if (repl)
                r = cJSON_Parse(repl);
        if (!strncmp(name, "root.", 5)) {
                cJSON *root = cJSON_GetObjectItem(v, "root");

                cJSON_DeleteItemFromObject(root, name + 5);
                if (repl)
                        cJSON_AddItemToObject(root, name + 5, r);
        } else {
                cJSON_DeleteItemFromObject(v, name);
                if (repl)
                        cJSON_AddItemToObject(v, name, r);
        }
        text = cJSON_PrintUnformatted(v);
        assert_int_equal(
            sf_outbound_parse(text, strlen(text), &p, err, sizeof(err)), -1);
        assert_string_equal(err, want);
        assert_null(p.kind);
        assert_null(p.key);
        free(text);
        cJSON_Delete(v);
        sf_outbound_clear(&o);
}

static void test_outbound_errors(void **state)
{
        sf_outbound_t p;
        char err[256] = "";

        (void)state;
        assert_int_equal(sf_outbound_parse("{", 1, &p, err, sizeof(err)), -1);
        assert_string_equal(err, "value is not JSON");
        assert_int_equal(sf_outbound_parse("null", 4, &p, err, sizeof(err)),
                         -1);
        assert_string_equal(err, "value is not a JSON object");
        assert_outbound_error("kind", NULL, "kind is missing");
        assert_outbound_error("kind", "1", "kind is not a string");
        assert_outbound_error("kind", "\"mail\"",
                              "kind \"mail\" is not one of message, "
                              "webservice");
        assert_outbound_error("action", NULL, "action is missing");
        assert_outbound_error("event", "\"upsert\"",
                              "event \"upsert\" is not one of insert, update, "
                              "delete");
        assert_outbound_error("table", "[]", "table is not a string");
        assert_outbound_error("key", NULL, "key is missing");
        assert_outbound_error("key", "\"id\"", "key is not an object");
        assert_outbound_error("root", NULL, "root is missing");
        assert_outbound_error("root", "3", "root is not an object");
        assert_outbound_error("root.table", NULL, "root.table is missing");
        assert_outbound_error("root.key", "null", "root.key is missing");
        assert_outbound_error("root.key", "[1]", "root.key is not an object");
        assert_outbound_error("record", "\"x\"",
                              "record is not an object or null");
        assert_outbound_error("before", "1", "before is not an object or null");
        assert_outbound_error("event_id", NULL, "event_id is missing");
        assert_outbound_error("event_id", "5", "event_id is not a string");
        assert_outbound_error("source_ts_ms", NULL, "source_ts_ms is missing");
        assert_outbound_error("routed_ts_ms", "\"now\"",
                              "routed_ts_ms is not an integer");
}

static void test_op_event_names(void **state)
{
        (void)state;
        assert_string_equal(sf_op_event_name(SF_OP_CREATE), "insert");
        assert_string_equal(sf_op_event_name(SF_OP_READ), "insert");
        assert_string_equal(sf_op_event_name(SF_OP_UPDATE), "update");
        assert_string_equal(sf_op_event_name(SF_OP_DELETE), "delete");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_canonical_objects),
            cmocka_unit_test(test_canonical_strings),
            cmocka_unit_test(test_canonical_numbers),
            cmocka_unit_test(test_design_examples),
            cmocka_unit_test(test_change_round_trip),
            cmocka_unit_test(test_change_minimal_source),
            cmocka_unit_test(test_change_key_in_value),
            cmocka_unit_test(test_change_errors),
            cmocka_unit_test(test_change_too_large),
            cmocka_unit_test(test_exact_integers_through_records),
            cmocka_unit_test(test_outbound_round_trip),
            cmocka_unit_test(test_outbound_errors),
            cmocka_unit_test(test_op_event_names),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
