/*
 * Unit tests for common/json.c: exact 64-bit integers through parsing,
 * printing, comparison and SQLite binding.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "json.h"
#include "sf.h"
#include "sql.h"

#define INT64_MIN_TEXT  "-9223372036854775808"
#define INT64_MAX_TEXT  "9223372036854775807"
#define UINT64_MAX_TEXT "18446744073709551615"
#define P53_PLUS1_TEXT  "9007199254740993"

static cJSON *parse_ok(const char *text)
{
        cJSON *v = sf_json_parse(text, strlen(text));

        if (!v)
                fail_msg("sf_json_parse refused %s", text);
        return v;
}

/* TEXT parsed and printed with FLAGS gives WANT. */
static void assert_print(const char *text, int flags, const char *want)
{
        cJSON *v = parse_ok(text);
        char *s = sf_json_print(v, flags);

        assert_non_null(s);
        if (strcmp(s, want))
                fail_msg("%s printed as %s, expected %s", text, s, want);
        free(s);
        cJSON_Delete(v);
}

static void test_round_trip(void **state)
{
        static const char *const same[] = {
            "[" INT64_MIN_TEXT "," INT64_MAX_TEXT "," UINT64_MAX_TEXT
            "," P53_PLUS1_TEXT ",-9007199254740993]",
            "{\"id\":" P53_PLUS1_TEXT ",\"n\":{\"a\":[1," UINT64_MAX_TEXT "]}}",
            /* digits in strings and names do not shift the numbers */
            "{\"12345678901234567890\":\"99999999999999999 1\",\"x\":[\"\\\""
            "1234567890123456789\",-9223372036854775807],\"y\":"
            "12345678901234567890}",
            /* 2^53 and below are plain doubles, printed as digits */
            "[9007199254740992,-9007199254740992,1764150000000,0]",
        };

        (void)state;
        for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++)
                assert_print(same[i], 0, same[i]);
        /* whitespace and leading zeros go, the digits stay */
        assert_print(" [ 00009007199254740993 , -09223372036854775808 ] ", 0,
                     "[" P53_PLUS1_TEXT "," INT64_MIN_TEXT "]");
        /* canonical: sorted, exact */
        assert_print("{\"b\":" UINT64_MAX_TEXT ",\"a\":" INT64_MIN_TEXT "}",
                     SF_JSON_SORTED,
                     "{\"a\":" INT64_MIN_TEXT ",\"b\":" UINT64_MAX_TEXT "}");
        /* beyond 64 bits, fractions and exponents stay doubles */
        assert_print("[18446744073709551616,9007199254740993.0,"
                     "9.007199254740993e15,-9223372036854775809]",
                     0,
                     "[18446744073709551616,9007199254740992,"
                     "9007199254740992,-9223372036854775808]");
}

static void test_exact_nodes(void **state)
{
        cJSON *v =
            parse_ok("{\"a\":" UINT64_MAX_TEXT ",\"b\":42,\"c\":"
                     "18446744073709551616,\"d\":\"" P53_PLUS1_TEXT "\"}");
        cJSON *dup;
        char *s;

        (void)state;
        assert_string_equal(sf_json_exact(cJSON_GetObjectItem(v, "a")),
                            UINT64_MAX_TEXT);
        assert_null(sf_json_exact(cJSON_GetObjectItem(v, "b")));
        assert_null(sf_json_exact(cJSON_GetObjectItem(v, "c")));
        /* a string of digits stays a string */
        assert_true(cJSON_IsString(cJSON_GetObjectItem(v, "d")));
        assert_null(sf_json_exact(cJSON_GetObjectItem(v, "d")));
        /* cJSON copies the digits along (and cJSON_Delete frees them) */
        dup = cJSON_Duplicate(v, 1);
        s = sf_json_print(dup, 0);
        assert_string_equal(s, "{\"a\":" UINT64_MAX_TEXT ",\"b\":42,\"c\":"
                               "18446744073709551616,\"d\":\"" P53_PLUS1_TEXT
                               "\"}");
        free(s);
        cJSON_Delete(dup);
        cJSON_Delete(v);
}

static void test_parse_refuses(void **state)
{
        (void)state;
        assert_null(sf_json_parse("{\"a\":1} x", 9));
        assert_null(sf_json_parse("{\"a\":1}\0{}", 10));
        assert_null(sf_json_parse("", 0));
        assert_null(sf_json_parse("[1,]", 4));
        assert_null(sf_json_parse(NULL, 0));
        /* the length is the end, not a NUL further on */
        cJSON *v = sf_json_parse("[9007199254740993]]", 18);
        char *s = sf_json_print(v, 0);

        assert_string_equal(s, "[" P53_PLUS1_TEXT "]");
        free(s);
        cJSON_Delete(v);
}

static void test_constructors(void **state)
{
        char buf[64];
        cJSON *v;
        int64_t i;
        uint64_t u;

        (void)state;
        v = sf_json_int64(INT64_MIN);
        assert_string_equal(sf_json_number_text(v, buf, sizeof(buf)),
                            INT64_MIN_TEXT);
        assert_int_equal(sf_json_get_int64(v, &i), 0);
        assert_true(i == INT64_MIN);
        assert_int_equal(sf_json_get_uint64(v, &u), -1);
        cJSON_Delete(v);
        v = sf_json_uint64(UINT64_MAX);
        assert_string_equal(sf_json_number_text(v, buf, sizeof(buf)),
                            UINT64_MAX_TEXT);
        assert_int_equal(sf_json_get_int64(v, &i), -1);
        assert_int_equal(sf_json_get_uint64(v, &u), 0);
        assert_true(u == UINT64_MAX);
        cJSON_Delete(v);
        v = sf_json_int64(INT64_MAX);
        assert_int_equal(sf_json_get_int64(v, &i), 0);
        assert_true(i == INT64_MAX);
        cJSON_Delete(v);
        v = sf_json_int64(42);
        assert_null(sf_json_exact(v));
        assert_string_equal(sf_json_number_text(v, buf, sizeof(buf)), "42");
        cJSON_Delete(v);

        v = sf_json_integer_text("+" P53_PLUS1_TEXT,
                                 strlen(P53_PLUS1_TEXT) + 1);
        assert_string_equal(sf_json_exact(v), P53_PLUS1_TEXT);
        cJSON_Delete(v);
        v = sf_json_integer_text("-0", 2);
        assert_string_equal(sf_json_number_text(v, buf, sizeof(buf)), "0");
        cJSON_Delete(v);
        assert_null(sf_json_integer_text("1e3", 3));
        assert_null(sf_json_integer_text(" 1", 2));
        assert_null(sf_json_integer_text("-", 1));
        assert_null(sf_json_integer_text("18446744073709551616", 20));
        assert_null(sf_json_integer_text("-9223372036854775809", 20));

        v = cJSON_CreateNumber(1.5);
        assert_int_equal(sf_json_get_int64(v, &i), -1);
        cJSON_Delete(v);
        v = cJSON_CreateString("1");
        assert_int_equal(sf_json_get_int64(v, &i), -1);
        cJSON_Delete(v);
}

static void test_compare(void **state)
{
        static const char *const ascending[] = {
            "-1e300",
            INT64_MIN_TEXT,
            "-9007199254740993",
            "-5.5",
            "-5",
            "0",
            "5",
            "5.5",
            "9007199254740992",
            P53_PLUS1_TEXT,
            "9007199254740994",
            INT64_MAX_TEXT,
            UINT64_MAX_TEXT,
            "1e300",
        };
        size_t n = sizeof(ascending) / sizeof(ascending[0]);
        cJSON *a, *b, *p2_60;

        (void)state;
        for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < n; j++) {
                        int c;

                        a = parse_ok(ascending[i]);
                        b = parse_ok(ascending[j]);
                        c = sf_json_number_cmp(a, b);
                        if ((c < 0) != (i < j) || (c == 0) != (i == j))
                                fail_msg("%s vs %s compared %d", ascending[i],
                                         ascending[j], c);
                        assert_int_equal(sf_json_equal(a, b), i == j);
                        cJSON_Delete(a);
                        cJSON_Delete(b);
                }
        /* an exact integer equals the double of the same value */
        a = parse_ok("1152921504606846976");
        p2_60 = cJSON_CreateNumber(1152921504606846976.0);
        assert_non_null(sf_json_exact(a));
        assert_true(sf_json_equal(a, p2_60));
        cJSON_Delete(a);
        cJSON_Delete(p2_60);
        /* in trees: where cJSON_Compare sees no difference */
        a = parse_ok("{\"k\":[9007199254740992],\"s\":\"x\"}");
        b = parse_ok("{\"s\":\"x\",\"k\":[" P53_PLUS1_TEXT "]}");
        assert_true(cJSON_Compare(a, b, 1));
        assert_false(sf_json_equal(a, b));
        cJSON_Delete(b);
        b = parse_ok("{\"s\":\"x\",\"k\":[9007199254740992]}");
        assert_true(sf_json_equal(a, b));
        cJSON_Delete(a);
        cJSON_Delete(b);
        assert_true(sf_json_equal(NULL, NULL));
}

/* The pretty layout is cJSON_Print's, with exact digits. */
static void test_pretty(void **state)
{
        const char *text = "{\"a\":[1,{\"b\":\"x\"},[]],\"c\":{},\"d\":{"
                           "\"e\":null,\"f\":true}}";
        cJSON *v = parse_ok(text);
        char *mine = sf_json_print(v, SF_JSON_PRETTY);
        char *theirs = cJSON_Print(v);

        (void)state;
        assert_string_equal(mine, theirs);
        free(mine);
        free(theirs);
        cJSON_Delete(v);
        assert_print("{\"id\":" P53_PLUS1_TEXT "}", SF_JSON_PRETTY,
                     "{\n\t\"id\":\t" P53_PLUS1_TEXT "\n}");
}

static void test_sqlite_bind(void **state)
{
        sqlite3 *db;
        sqlite3_stmt *st;
        cJSON *v = parse_ok("[" INT64_MIN_TEXT "," INT64_MAX_TEXT
                            "," P53_PLUS1_TEXT "," UINT64_MAX_TEXT "]");
        const cJSON *e;

        (void)state;
        assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
        assert_int_equal(
            sqlite3_prepare_v2(db, "SELECT ?, typeof(?1)", -1, &st, NULL),
            SQLITE_OK);
        cJSON_ArrayForEach(e, v)
        {
                sqlite3_reset(st);
                sf_sqlite_bind_json(st, 1, e);
                assert_int_equal(sqlite3_step(st), SQLITE_ROW);
                assert_string_equal((const char *)sqlite3_column_text(st, 0),
                                    sf_json_exact(e));
                /* within int64 an integer, beyond it the digits as text */
                assert_string_equal((const char *)sqlite3_column_text(st, 1),
                                    e->next ? "integer" : "text");
        }
        sqlite3_finalize(st);
        sqlite3_close(db);
        cJSON_Delete(v);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_round_trip),
            cmocka_unit_test(test_exact_nodes),
            cmocka_unit_test(test_parse_refuses),
            cmocka_unit_test(test_constructors),
            cmocka_unit_test(test_compare),
            cmocka_unit_test(test_pretty),
            cmocka_unit_test(test_sqlite_bind),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
