/*
 * Unit tests for templates (common/template.c, template_filters.c): each
 * test compiles a template, renders it against JSON scopes and compares the
 * exact output or error text. Mappings are in test_mapping.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <cjson/cJSON.h>

#include "sf.h"
#include "json.h"
#include "template.h"

static const char *const record =
    "{\"id\":42,\"name\":\"Ada Lovelace\",\"email\":\"Ada@Example.COM\","
    "\"price\":12.5,\"active\":true,\"nothing\":null,"
    "\"address\":{\"street\":\"Main St 1\",\"city\":\"Berlin\"},"
    "\"tags\":[\"a\",\"b\"],\"lines\":[{\"item\":\"x\",\"qty\":\"2\"},"
    "{\"item\":\"y\",\"qty\":\"3.5\"}]}";

static sf_template_t *compile_ok(const char *src)
{
        char err[512] = "";
        size_t off = 0;
        sf_template_t *t = sf_template_compile(src, &off, err, sizeof(err));

        if (!t)
                fail_msg("compile of '%s' failed at %zu: %s", src, off, err);
        return t;
}

/* Renders SRC against the scope chain SCOPES (innermost first, NULL
 * terminated JSON texts) and compares the compact JSON result. */
static void check_render_chain(const char *src, const char *const *scopes,
                               const char *expect)
{
        sf_scope_t chain[8];
        cJSON *objs[8] = {0};
        sf_template_t *t = compile_ok(src);
        char err[512] = "";
        cJSON *v;
        char *out;
        size_t n = 0, i;

        for (; scopes[n]; n++) {
                objs[n] = sf_json_parse(scopes[n], strlen(scopes[n]));
                assert_non_null(objs[n]);
        }
        for (i = 0; i < n; i++) {
                chain[i].obj = objs[i];
                chain[i].next = i + 1 < n ? &chain[i + 1] : NULL;
                chain[i].at = 0;
        }
        v = sf_template_render(t, n ? &chain[0] : NULL, err, sizeof(err));
        if (!v)
                fail_msg("render of '%s' failed: %s", src, err);
        out = sf_json_print(v, 0);
        if (strcmp(out, expect))
                fail_msg("'%s' gave %s, expected %s", src, out, expect);
        free(out);
        cJSON_Delete(v);
        for (i = 0; i < n; i++)
                cJSON_Delete(objs[i]);
        sf_template_destroy(t);
}

static void check_render(const char *src, const char *expect)
{
        const char *scopes[] = {record, NULL};

        check_render_chain(src, scopes, expect);
}

static void check_render_in(const char *src, const char *scope,
                            const char *expect)
{
        const char *scopes[] = {scope, NULL};

        check_render_chain(src, scopes, expect);
}

static void check_render_err_in(const char *src, const char *scope,
                                const char *expect)
{
        sf_template_t *t = compile_ok(src);
        cJSON *obj = cJSON_Parse(scope);
        sf_scope_t sc = {obj, NULL, 0};
        char err[512] = "";
        cJSON *v;
        char *s;

        assert_non_null(obj);
        v = sf_template_render(t, &sc, err, sizeof(err));
        if (v)
                fail_msg("'%s' rendered, expected error %s", src, expect);
        assert_string_equal(err, expect);
        /* The text renderer reports the same error. */
        err[0] = '\0';
        s = sf_template_render_str(t, &sc, 0, err, sizeof(err));
        assert_null(s);
        assert_string_equal(err, expect);
        cJSON_Delete(obj);
        sf_template_destroy(t);
}

static void check_render_err(const char *src, const char *expect)
{
        check_render_err_in(src, record, expect);
}

static void check_str(const char *src, int flags, const char *expect)
{
        sf_template_t *t = compile_ok(src);
        cJSON *obj = cJSON_Parse(record);
        sf_scope_t sc = {obj, NULL, 0};
        char err[512] = "";
        char *s = sf_template_render_str(t, &sc, flags, err, sizeof(err));

        if (!s)
                fail_msg("render_str of '%s' failed: %s", src, err);
        assert_string_equal(s, expect);
        free(s);
        cJSON_Delete(obj);
        sf_template_destroy(t);
}

static void check_compile_err(const char *src, size_t offset,
                              const char *expect)
{
        char err[512] = "";
        size_t off = 9999;
        sf_template_t *t = sf_template_compile(src, &off, err, sizeof(err));

        if (t || strcmp(err, expect) || off != offset)
                fail_msg("compiling '%s' gave '%s' at %zu, expected '%s' at "
                         "%zu",
                         src, t ? "success" : err, off, expect, offset);
}

static void test_lone_ref_keeps_type(void **state)
{
        (void)state;
        check_render("{{id}}", "42");
        check_render("{{ id }}", "42");
        check_render("{{\tid\n}}", "42");
        check_render("{{price}}", "12.5");
        check_render("{{active}}", "true");
        check_render("{{nothing}}", "null");
        check_render("{{name}}", "\"Ada Lovelace\"");
        check_render("{{address}}",
                     "{\"street\":\"Main St 1\",\"city\":\"Berlin\"}");
        check_render("{{tags}}", "[\"a\",\"b\"]");
        /* Filters run before the type is kept. */
        check_render("{{lines.1.qty | number}}", "3.5");
        check_render("{{id | string}}", "\"42\"");
        /* Text around the braces makes it a string. */
        check_render(" {{id}}", "\" 42\"");
        check_render("{{id}} ", "\"42 \"");
        check_render("{{active}}{{nothing}}", "\"true\"");
        {
                /* The copy of an object member comes without its key. */
                sf_template_t *t = compile_ok("{{address}}");
                cJSON *o = cJSON_Parse(record);
                sf_scope_t sc = {o, NULL, 0};
                char err[256];
                cJSON *v = sf_template_render(t, &sc, err, sizeof(err));

                assert_non_null(v);
                assert_null(v->string);
                assert_true(cJSON_IsObject(v));
                cJSON_Delete(v);
                cJSON_Delete(o);
                sf_template_destroy(t);
        }
}

static void test_text_interpolation(void **state)
{
        (void)state;
        check_render("Customer {{id}}: {{name}}",
                     "\"Customer 42: Ada Lovelace\"");
        check_render("{{price}}/{{active}}/[{{nothing}}]", "\"12.5/true/[]\"");
        check_render("a={{address}} t={{tags}}",
                     "\"a={\\\"street\\\":\\\"Main St 1\\\",\\\"city\\\":"
                     "\\\"Berlin\\\"} t=[\\\"a\\\",\\\"b\\\"]\"");
        check_render("no refs { here } }}", "\"no refs { here } }}\"");
        check_render("", "\"\"");
        check_render("{{id}}{{id}}", "\"4242\"");
        check_render("{{id}}}", "\"42}\"");
}

static void test_number_text(void **state)
{
        const char *nums = "{\"i\":3,\"neg\":-17,\"z\":-0.0,\"f\":0.1,"
                           "\"third\":0.3333333333333333,\"big\":1e20,"
                           "\"ms\":1764150000000,\"whole\":5.0}";

        (void)state;
        check_render_in("{{i}} {{neg}} {{z}} {{f}} {{whole}}", nums,
                        "\"3 -17 0 0.1 5\"");
        check_render_in("{{third | string}}", nums, "\"0.3333333333333333\"");
        /* text and JSON write a number alike (json.h): integral doubles
         * below 1e21 as digits */
        check_render_in("{{big | string}}|{{ms}}", nums,
                        "\"100000000000000000000|1764150000000\"");
}

/* Integers beyond 2^53 keep their digits in values and text, and numeric
 * strings become exact numbers through number. */
static void test_exact_integers(void **state)
{
        const char *nums =
            "{\"p\":9007199254740993,\"min\":-9223372036854775808,"
            "\"max\":9223372036854775807,\"umax\":18446744073709551615,"
            "\"s\":\"12345678901234567890\",\"sp\":\" -9223372036854775808 \","
            "\"sf\":\"9007199254740993.0\",\"j\":\"{\\\"a\\\":"
            "9007199254740993}\"}";
        sf_template_t *t;
        cJSON *obj;
        sf_scope_t sc;
        char err[256] = "", *s;

        (void)state;
        check_render_in("{{p}}", nums, "9007199254740993");
        check_render_in("[{{min}}|{{max}}|{{umax}}]", nums,
                        "\"[-9223372036854775808|9223372036854775807|"
                        "18446744073709551615]\"");
        check_render_in("{{umax | string}}", nums, "\"18446744073709551615\"");
        check_render_in("{{s | number}}", nums, "12345678901234567890");
        check_render_in("{{sp | number}}", nums, "-9223372036854775808");
        /* a fraction makes it a double */
        check_render_in("{{sf | number}}", nums, "9007199254740992");
        check_render_in("{{j | json}}", nums, "{\"a\":9007199254740993}");
        check_render_in("{{nothing | default(9007199254740993)}}", nums,
                        "9007199254740993");
        /* in a path, percent-encoded text */
        t = compile_ok("/x/{{umax}}/{{min}}");
        obj = sf_json_parse(nums, strlen(nums));
        sc.obj = obj;
        sc.next = NULL;
        sc.at = 0;
        s = sf_template_render_str(t, &sc, SF_RENDER_URLENCODE, err,
                                   sizeof(err));
        assert_non_null(s);
        assert_string_equal(s, "/x/18446744073709551615/-9223372036854775808");
        free(s);
        cJSON_Delete(obj);
        sf_template_destroy(t);
}

static void test_paths(void **state)
{
        const char *doc = "{\"a\":{\"b\":[10,{\"c\":\"deep\"}]},"
                          "\"m\":{\"0\":\"zero\"},\"headers\":{"
                          "\"Content-Type\":\"text/plain\"},\"s\":\"str\","
                          "\"under_score\":1}";

        (void)state;
        check_render_in("{{a.b.0}}", doc, "10");
        check_render_in("{{a.b.1.c}}", doc, "\"deep\"");
        check_render_in("{{m.0}}", doc, "\"zero\"");
        check_render_in("{{headers.Content-Type}}", doc, "\"text/plain\"");
        check_render_in("{{under_score}}", doc, "1");
        check_render_err_in("{{a.b.2}}", doc,
                            "missing field 'a.b.2' in \"{{a.b.2}}\"");
        check_render_err_in("{{a.b.x}}", doc,
                            "missing field 'a.b.x' in \"{{a.b.x}}\"");
        check_render_err_in("{{s.len}}", doc,
                            "missing field 's.len' in \"{{s.len}}\"");
        check_render_err_in("{{A}}", doc, "missing field 'A' in \"{{A}}\"");
}

static void test_scope_chain(void **state)
{
        const char *inner = "{\"id\":1,\"address\":{\"zip\":\"10115\"}}";
        const char *outer = "{\"id\":2,\"name\":\"outer\","
                            "\"address\":{\"city\":\"Berlin\"},"
                            "\"only\":\"o\"}";
        const char *three[] = {inner, outer, "{\"only\":\"x\",\"op\":\"u\"}",
                               NULL};
        const char *two[] = {inner, outer, NULL};
        const char *arr_first[] = {"[1,2]", outer, NULL};
        sf_template_t *t;
        sf_scope_t sc[2];
        cJSON *a, *b, *v;
        char err[256];

        (void)state;
        check_render_chain("{{id}}", two, "1");
        check_render_chain("{{name}}", two, "\"outer\"");
        check_render_chain("{{only}}/{{op}}", three, "\"o/u\"");
        /* The first scope holding the first segment resolves the whole
         * path; outer scopes are not searched for the rest. */
        check_render_chain("{{address.zip}}", two, "\"10115\"");
        a = cJSON_Parse(inner);
        b = cJSON_Parse(outer);
        sc[0].obj = a;
        sc[0].next = &sc[1];
        sc[0].at = 0;
        sc[1].obj = b;
        sc[1].next = NULL;
        sc[1].at = 0;
        t = compile_ok("{{address.city}}");
        v = sf_template_render(t, sc, err, sizeof(err));
        assert_null(v);
        assert_string_equal(err, "missing field 'address.city' in "
                                 "\"{{address.city}}\"");
        sf_template_destroy(t);
        /* No scope at all: only default can produce a value. */
        t = compile_ok("{{x | default(7)}}");
        v = sf_template_render(t, NULL, err, sizeof(err));
        assert_non_null(v);
        assert_true(cJSON_IsNumber(v) && v->valuedouble == 7);
        cJSON_Delete(v);
        sf_template_destroy(t);
        cJSON_Delete(a);
        cJSON_Delete(b);
        /* A scope that is not an object is skipped. */
        check_render_chain("{{name}}", arr_first, "\"outer\"");
}

static void test_missing_field(void **state)
{
        char big[300];

        (void)state;
        check_render_err("{{email2 | lower}}",
                         "missing field 'email2' in \"{{email2 | lower}}\"");
        check_render_err("Hi {{address.zip}}!",
                         "missing field 'address.zip' in \"Hi "
                         "{{address.zip}}!\"");
        /* A long template names only the failing reference. */
        memset(big, 'x', 200);
        strcpy(big + 200, " {{name}} {{gone | trim}}");
        check_render_err(big, "missing field 'gone' in \"{{gone | trim}}\"");
}

/* One scope for the filter tables below. */
static const char *const fdoc =
    "{\"id\":42,\"email\":\"Ada@Example.COM\",\"nothing\":null,\"t\":true,"
    "\"f\":false,\"i0\":0,\"i1\":1,\"i2\":2,\"n9\":9,\"price\":12.5,"
    "\"o\":{\"k\":[1,\"v\"]},\"arr\":[\"a\"],\"empty\":\"\","
    "\"u\":\"\xC3\x84pfel \xC3\x9F\",\"bad\":\"A\xFF"
    "B\",\"ws\":\" \\t a b \\n\","
    "\"num\":\" 3.5 \",\"exp\":\"-1e3\",\"plus\":\"+7\",\"dot\":\".5\","
    "\"hex\":\"0x10\",\"nan\":\"nan\",\"inf\":\"1e999\",\"e1\":\"1e\","
    "\"yes\":\"yes\",\"No\":\"No\",\"ON\":\" ON \",\"off\":\"off\","
    "\"s1\":\"1\",\"s0\":\"0\",\"TRUE\":\"TRUE\",\"sf\":\"false\","
    "\"maybe\":\"maybe\",\"j\":\"{\\\"a\\\":[1,true]}\",\"j12\":\" 12 \","
    "\"jarr\":\"[1, 2]\",\"jbad\":\"{bad\",\"j2\":\"1 2\","
    "\"d\":\"2026-11-26\",\"z\":\"2026-11-26T10:00:00Z\","
    "\"off1\":\"2026-11-26 10:00:00.123+01:00\","
    "\"neg\":\"2026-11-26T23:30:00-01:00\","
    "\"compact\":\"2026-11-26T10:00+0530\",\"hh\":\"2026-11-26T10:00:00-02\","
    "\"lower_t\":\"2026-11-26t10:11:12\",\"s\":1764150000,"
    "\"ms\":1764150000123,\"edge\":100000000000,\"edge1\":100000000001,"
    "\"before\":-86400,\"leap\":\"2024-02-29\",\"noleap\":\"2026-02-29\","
    "\"m13\":\"2026-13-01\",\"word\":\"yesterday\","
    "\"h24\":\"2026-11-26T24:00:00Z\",\"trail\":\"2026-11-26T10:00:00Zx\","
    "\"huge\":1e300,\"qty\":\"2\"}";

typedef struct fcase {
        const char *tpl;
        const char *expect; /* compact JSON, or the error before " in" */
} fcase_t;

static const fcase_t filter_ok[] = {
    /* lower, upper, trim */
    {"{{email | lower}}", "\"ada@example.com\""},
    {"{{email | upper}}", "\"ADA@EXAMPLE.COM\""},
    {"{{u | lower}}", "\"\xC3\xA4pfel \xC3\x9F\""},
    {"{{u | upper}}", "\"\xC3\x84PFEL \xC3\x9F\""},
    {"{{bad | lower}}", "\"a\xFF"
                        "b\""},
    {"{{ws | trim}}", "\"a b\""},
    {"{{empty | trim}}", "\"\""},
    {"{{nothing | lower}}", "null"},
    {"{{nothing | trim}}", "null"},
    /* number */
    {"{{num | number}}", "3.5"},
    {"{{exp | number}}", "-1000"},
    {"{{plus | number}}", "7"},
    {"{{dot | number}}", "0.5"},
    {"{{t | number}}", "1"},
    {"{{f | number}}", "0"},
    {"{{n9 | number}}", "9"},
    {"{{nothing | number}}", "null"},
    /* string */
    {"{{id | string}}", "\"42\""},
    {"{{price | string}}", "\"12.5\""},
    {"{{t | string}}", "\"true\""},
    {"{{nothing | string}}", "\"\""},
    {"{{email | string}}", "\"Ada@Example.COM\""},
    {"{{arr | string}}", "\"[\\\"a\\\"]\""},
    {"{{o | string}}", "\"{\\\"k\\\":[1,\\\"v\\\"]}\""},
    /* bool */
    {"{{yes | bool}}", "true"},
    {"{{No | bool}}", "false"},
    {"{{ON | bool}}", "true"},
    {"{{off | bool}}", "false"},
    {"{{s1 | bool}}", "true"},
    {"{{s0 | bool}}", "false"},
    {"{{TRUE | bool}}", "true"},
    {"{{sf | bool}}", "false"},
    {"{{i1 | bool}}", "true"},
    {"{{i0 | bool}}", "false"},
    {"{{f | bool}}", "false"},
    {"{{nothing | bool}}", "null"},
    /* json */
    {"{{j | json}}", "{\"a\":[1,true]}"},
    {"{{j12 | json}}", "12"},
    {"{{o | json}}", "{\"k\":[1,\"v\"]}"},
    {"{{jarr | json | string}}", "\"[1,2]\""},
    {"{{nothing | json}}", "null"},
    /* default */
    {"{{missing | default('x')}}", "\"x\""},
    {"{{missing | default(\"dq\")}}", "\"dq\""},
    {"{{missing | default(-2.5)}}", "-2.5"},
    {"{{nothing | default(0)}}", "0"},
    {"{{id | default(0)}}", "42"},
    {"{{f | default(1)}}", "false"},
    {"{{empty | default(1)}}", "\"\""},
    {"{{missing.deeper | default('d')}}", "\"d\""},
    {"[{{nothing | default('-')}}]", "\"[-]\""},
    {"{{missing | default('it\\'s')}}", "\"it's\""},
    {"{{missing | default('}}')}}", "\"}}\""},
    {"{{missing | default('')}}", "\"\""},
    /* chains: filters before default let a missing field through */
    {"{{missing | lower | default('n')}}", "\"n\""},
    {"{{missing | default(' A ') | trim | lower}}", "\"a\""},
    {"{{nothing | number | default(5)}}", "5"},
    {"{{qty | number | string}}", "\"2\""},
    {"{{ email|trim|lower }}", "\"ada@example.com\""},
    {"{{missing | default('TRUE') | bool}}", "true"},
    {"{{missing | default('2026-01-02') | date('%d.%m.%Y')}}",
     "\"02.01.2026\""},
    /* date */
    {"{{d | date('%Y-%m-%dT%H:%M:%SZ')}}", "\"2026-11-26T00:00:00Z\""},
    {"{{z | date('%Y-%m-%d %H:%M')}}", "\"2026-11-26 10:00\""},
    {"{{off1 | date('%H:%M:%S')}}", "\"09:00:00\""},
    {"{{neg | date('%Y-%m-%d %H:%M')}}", "\"2026-11-27 00:30\""},
    {"{{compact | date('%H:%M')}}", "\"04:30\""},
    {"{{hh | date('%H:%M')}}", "\"12:00\""},
    {"{{lower_t | date('%H:%M:%S')}}", "\"10:11:12\""},
    {"{{s | date('%Y-%m-%dT%H:%M:%SZ')}}", "\"2025-11-26T09:40:00Z\""},
    {"{{ms | date('%Y-%m-%dT%H:%M:%SZ')}}", "\"2025-11-26T09:40:00Z\""},
    {"{{edge | date('%Y')}}", "\"5138\""},
    {"{{edge1 | date('%Y-%m-%d')}}", "\"1973-03-03\""},
    {"{{before | date('%Y-%m-%d')}}", "\"1969-12-31\""},
    {"{{leap | date('%d %b %Y')}}", "\"29 Feb 2024\""},
    {"Due {{d | date(\"%d.%m.\")}}", "\"Due 26.11.\""},
    {"{{nothing | date('%Y')}}", "null"},
};

static const fcase_t filter_err[] = {
    {"{{id | lower}}", "filter 'lower' needs a string, got the number 42"},
    {"{{t | upper}}", "filter 'upper' needs a string, got the boolean true"},
    {"{{arr | trim}}", "filter 'trim' needs a string, got an array"},
    {"{{email | number}}",
     "filter 'number' cannot convert \"Ada@Example.COM\" to a number"},
    {"{{hex | number}}", "filter 'number' cannot convert \"0x10\" to a number"},
    {"{{nan | number}}", "filter 'number' cannot convert \"nan\" to a number"},
    {"{{empty | number}}", "filter 'number' cannot convert \"\" to a number"},
    {"{{inf | number}}",
     "filter 'number' cannot convert \"1e999\" to a number"},
    {"{{e1 | number}}", "filter 'number' cannot convert \"1e\" to a number"},
    {"Qty: {{o | number}}",
     "filter 'number' cannot convert an object to a number"},
    {"{{missing | default('x') | number}}",
     "filter 'number' cannot convert \"x\" to a number"},
    {"{{maybe | bool}}", "filter 'bool' cannot convert \"maybe\" to a boolean"},
    {"{{i2 | bool}}", "filter 'bool' cannot convert the number 2 to a boolean"},
    {"{{o | bool}}", "filter 'bool' cannot convert an object to a boolean"},
    {"{{jbad | json}}", "filter 'json' cannot parse \"{bad\" as JSON"},
    {"{{j2 | json}}", "filter 'json' cannot parse \"1 2\" as JSON"},
    {"{{noleap | date('%Y')}}",
     "filter 'date' cannot parse \"2026-02-29\" as a date"},
    {"{{m13 | date('%Y')}}",
     "filter 'date' cannot parse \"2026-13-01\" as a date"},
    {"{{word | date('%Y')}}",
     "filter 'date' cannot parse \"yesterday\" as a date"},
    {"{{h24 | date('%Y')}}",
     "filter 'date' cannot parse \"2026-11-26T24:00:00Z\" as a date"},
    {"{{trail | date('%Y')}}",
     "filter 'date' cannot parse \"2026-11-26T10:00:00Zx\" as a date"},
    {"{{t | date('%Y')}}",
     "filter 'date' cannot parse the boolean true as a date"},
    {"{{huge | date('%Y')}}",
     "filter 'date' cannot parse the number 1e+300 as a date"},
};

static void test_filters(void **state)
{
        size_t i;

        (void)state;
        for (i = 0; i < sizeof(filter_ok) / sizeof(filter_ok[0]); i++)
                check_render_in(filter_ok[i].tpl, fdoc, filter_ok[i].expect);
}

/* A filter error names the filter, the value and the template. */
static void test_filter_errors(void **state)
{
        char expect[512];
        size_t i;

        (void)state;
        for (i = 0; i < sizeof(filter_err) / sizeof(filter_err[0]); i++) {
                snprintf(expect, sizeof(expect), "%s in \"%s\"",
                         filter_err[i].expect, filter_err[i].tpl);
                check_render_err_in(filter_err[i].tpl, fdoc, expect);
        }
}

/* json refuses text nested deeper than 64 levels. */
static void test_filter_json_depth(void **state)
{
        sf_template_t *t = compile_ok("{{j | json}}");
        char deep[200], doc[300], err[512];
        sf_scope_t sc = {NULL, NULL, 0};
        cJSON *o, *v;

        (void)state;
        memset(deep, '[', 64);
        memset(deep + 64, ']', 64);
        deep[128] = '\0';
        snprintf(doc, sizeof(doc), "{\"j\":\"%s\"}", deep);
        o = cJSON_Parse(doc);
        sc.obj = o;
        v = sf_template_render(t, &sc, err, sizeof(err));
        assert_non_null(v);
        cJSON_Delete(v);
        cJSON_Delete(o);
        snprintf(doc, sizeof(doc), "{\"j\":\"[%s]\"}", deep);
        o = cJSON_Parse(doc);
        sc.obj = o;
        v = sf_template_render(t, &sc, err, sizeof(err));
        assert_null(v);
        assert_string_equal(err, "filter 'json' got \"[[[[[[[[[[[[[[[[[[[[[["
                                 "[[[[[[[[[[[[[[[[[[...\" nested deeper than "
                                 "64 levels in \"{{j | json}}\"");
        cJSON_Delete(o);
        sf_template_destroy(t);
}

#define UNTERMINATED "unterminated '{{': no closing '}}'"
#define EMPTY_REF    "empty reference: expected a field path after '{{'"
#define BAD_CHAR(c)                                                            \
        "bad character " c " in reference path (allowed: letters, digits, "    \
        "'_', '-' and '.')"
#define DATE_ARGS                                                              \
        "filter 'date' takes one format string argument, e.g. "                \
        "date('%Y-%m-%d')"

static const struct {
        const char *src;
        size_t offset;
        const char *err;
} compile_err[] = {
    {"ab {{id", 3, UNTERMINATED},
    {"{{a}} {{b", 6, UNTERMINATED},
    {"{{a | default('}}'", 0, UNTERMINATED},
    {"{{id | default('a'", 0, UNTERMINATED},
    {"{{a | default(')}}", 14, "unterminated string argument"},
    {"{{a | default(\"x}}", 14, "unterminated string argument"},
    {"{{ }}", 0, EMPTY_REF},
    {"x {{}}", 2, EMPTY_REF},
    {"{{ | lower}}", 0, EMPTY_REF},
    {"{{ a$b }}", 4, BAD_CHAR("'$'")},
    {"{{\xC3\xA4}}", 2, BAD_CHAR("byte 0xC3")},
    {"{{{a}}}", 2, BAD_CHAR("'{'")},
    {"{{ key.@id }}", 7, "'@' may only begin a path, as in {{@key.id}}"},
    {"{{@@event}}", 3, "'@' may only begin a path, as in {{@key.id}}"},
    {"x {{ @evnt }}", 5,
     "unknown name '@evnt' (syncfleet's names: @op, @event, @table, @key, "
     "@before, @after, @event_id, @response, @status, @headers, @error)"},
    {"{{@}}", 2,
     "unknown name '@' (syncfleet's names: @op, @event, @table, @key, "
     "@before, @after, @event_id, @response, @status, @headers, @error)"},
    {"{{a..b}}", 4, "empty segment in path 'a..b'"},
    {"{{.a}}", 2, "empty segment in path '.a'"},
    {"{{a.}}", 4, "empty segment in path 'a.'"},
    {"{{a b}}", 4, "expected '|' or '}}', found 'b'"},
    {"{{a}b}}", 3, "expected '|' or '}}', found '}'"},
    {"{{a | lower x}}", 12, "expected '|' or '}}', found 'x'"},
    {"{{id | lowr}}", 7,
     "unknown filter 'lowr' (known: lower, upper, trim, number, string, "
     "bool, json, default, date)"},
    {"{{id |}}", 6, "missing filter name after '|'"},
    {"{{id | | lower}}", 7, "missing filter name after '|'"},
    {"{{id | default}}", 7,
     "filter 'default' takes exactly one argument, got 0"},
    {"{{id | default()}}", 7,
     "filter 'default' takes exactly one argument, got 0"},
    {"{{id | default('a', 'b')}}", 7,
     "filter 'default' takes exactly one argument, got 2"},
    {"{{id | date}}", 7, DATE_ARGS},
    {"{{id | date(5)}}", 7, DATE_ARGS},
    {"{{id | date('')}}", 7, DATE_ARGS},
    {"{{id | date('%Y', '%m')}}", 7, DATE_ARGS},
    {"{{id | lower('x')}}", 7, "filter 'lower' takes no arguments"},
    {"{{id | number(1)}}", 7, "filter 'number' takes no arguments"},
    {"{{id | default(x)}}", 15,
     "bad argument to filter 'default': expected a quoted string or a "
     "number"},
    {"{{id | default(1.2.3)}}", 15,
     "bad number '1.2.3' in the arguments of filter 'default'"},
    {"{{id | default('a' 'b')}}", 19,
     "expected ',' or ')' in the arguments of filter 'default'"},
};

static void test_compile_errors(void **state)
{
        size_t i;

        (void)state;
        for (i = 0; i < sizeof(compile_err) / sizeof(compile_err[0]); i++)
                check_compile_err(compile_err[i].src, compile_err[i].offset,
                                  compile_err[i].err);
}

static void test_compile_misc(void **state)
{
        sf_template_t *t;
        char err[64];

        (void)state;
        /* errstr and err_offset may be left out. */
        assert_null(sf_template_compile("{{", NULL, NULL, 0));
        /* A small errstr is cut, never overrun. */
        assert_null(sf_template_compile("{{ x y }}", NULL, err, 10));
        assert_string_equal(err, "expected ");
        t = compile_ok("plain { text }");
        assert_true(sf_template_is_literal(t));
        assert_string_equal(sf_template_source(t), "plain { text }");
        sf_template_destroy(t);
        t = compile_ok("a {{b}}");
        assert_false(sf_template_is_literal(t));
        assert_string_equal(sf_template_source(t), "a {{b}}");
        sf_template_destroy(t);
        t = compile_ok("");
        assert_true(sf_template_is_literal(t));
        sf_template_destroy(t);
        t = compile_ok("{{x|lower()|default( 'a' )|date ( '%Y' )}}");
        sf_template_destroy(t);
        sf_template_destroy(NULL);
}

static void test_urlencode(void **state)
{
        const char *doc = "{\"p\":\"a/b c&d=\xC3\xA9~._-Z9\",\"n\":12.5,"
                          "\"o\":{\"k\":\"v w\"}}";
        sf_template_t *t;
        cJSON *o;
        sf_scope_t sc;
        char err[256];
        char *s;

        (void)state;
        check_str("/customers/{{name}}?x=a b", SF_RENDER_URLENCODE,
                  "/customers/Ada%20Lovelace?x=a b");
        check_str("/customers/{{name}}", 0, "/customers/Ada Lovelace");
        check_str("{{id}}", 0, "42");
        check_str("{{nothing}}|{{active}}|{{address}}", 0,
                  "|true|{\"street\":\"Main St 1\",\"city\":\"Berlin\"}");
        o = cJSON_Parse(doc);
        sc.obj = o;
        sc.next = NULL;
        sc.at = 0;
        t = compile_ok("/x/{{p}}/{{n}}?q={{o}}");
        s = sf_template_render_str(t, &sc, SF_RENDER_URLENCODE, err,
                                   sizeof(err));
        assert_non_null(s);
        assert_string_equal(s, "/x/a%2Fb%20c%26d%3D%C3%A9~._-Z9/12.5?q="
                               "%7B%22k%22%3A%22v%20w%22%7D");
        free(s);
        sf_template_destroy(t);
        cJSON_Delete(o);
}

static void test_text_cap(void **state)
{
        size_t n = 600 * 1024;
        char *big = sf_malloc(n + 1);
        cJSON *o = cJSON_CreateObject();
        sf_scope_t sc = {o, NULL, 0};
        sf_template_t *t;
        char err[256];
        char *s;
        cJSON *v;

        (void)state;
        memset(big, 'q', n);
        big[n] = '\0';
        cJSON_AddStringToObject(o, "s", big);
        t = compile_ok("{{s}}");
        s = sf_template_render_str(t, &sc, 0, err, sizeof(err));
        assert_non_null(s);
        assert_int_equal(strlen(s), n);
        free(s);
        sf_template_destroy(t);
        t = compile_ok("{{s}}{{s}}");
        v = sf_template_render(t, &sc, err, sizeof(err));
        assert_null(v);
        assert_string_equal(err, "rendered text exceeds 1048576 bytes in "
                                 "\"{{s}}{{s}}\"");
        sf_template_destroy(t);
        free(big);
        cJSON_Delete(o);
}

/* Renders SRC with the record REC and syncfleet's names AT (both JSON
 * texts), as the workers do: *ERR gets the error when it fails. */
static char *render_at(const char *src, const char *rec, const char *at,
                       char *err, size_t err_size)
{
        sf_template_t *t = compile_ok(src);
        cJSON *r = cJSON_Parse(rec), *a = cJSON_Parse(at), *v;
        sf_scope_t s_rec = {r, NULL, 0};
        sf_scope_t s_at = {a, &s_rec, 1};
        char *out = NULL;

        assert_non_null(r);
        assert_non_null(a);
        err[0] = '\0';
        v = sf_template_render(t, &s_at, err, err_size);
        if (v) {
                out = cJSON_PrintUnformatted(v);
                cJSON_Delete(v);
        }
        cJSON_Delete(r);
        cJSON_Delete(a);
        sf_template_destroy(t);
        return out;
}

static void check_at(const char *src, const char *rec, const char *at,
                     const char *expect)
{
        char err[512];
        char *out = render_at(src, rec, at, err, sizeof(err));

        if (!out)
                fail_msg("'%s' failed: %s", src, err);
        if (strcmp(out, expect))
                fail_msg("'%s' gave %s, expected %s", src, out, expect);
        cJSON_free(out);
}

static void check_at_err(const char *src, const char *rec, const char *at,
                         const char *expect)
{
        char err[512];
        char *out = render_at(src, rec, at, err, sizeof(err));

        if (out)
                fail_msg("'%s' gave %s, expected error %s", src, out, expect);
        assert_string_equal(err, expect);
}

/* A plain path reads the record whatever its fields are called; @name
 * reads syncfleet's names and nothing else. */
static void test_at_names(void **state)
{
        const char *row = "{\"id\":7,\"status\":\"open\",\"event\":\"fair\","
                          "\"table\":\"t3\",\"op\":\"sum\",\"@event\":\"x\","
                          "\"key\":\"k\",\"event_id\":99}";
        const char *at = "{\"op\":\"u\",\"event\":\"update\",\"table\":"
                         "\"orders\",\"key\":{\"id\":7},\"before\":{\"x\":1},"
                         "\"event_id\":\"sqlite:e:1\",\"status\":201}";

        (void)state;
        check_at("{{status}}", row, at, "\"open\"");
        check_at("{{event}}", row, at, "\"fair\"");
        check_at("{{table}}", row, at, "\"t3\"");
        check_at("{{op}}", row, at, "\"sum\"");
        check_at("{{key}}", row, at, "\"k\"");
        check_at("{{event_id}}", row, at, "99");
        check_at("{{@event}}", row, at, "\"update\"");
        check_at("{{@table}}", row, at, "\"orders\"");
        check_at("{{@op}}", row, at, "\"u\"");
        check_at("{{@key.id}}", row, at, "7");
        check_at("{{@before.x}}", row, at, "1");
        check_at("{{@event_id}}", row, at, "\"sqlite:e:1\"");
        check_at("{{@status}}", row, at, "201");
        check_at("{{ @event | upper }}/{{event|upper}}", row, at,
                 "\"UPDATE/FAIR\"");
        /* Neither side falls back to the other. */
        check_at_err("{{@after.id}}", row, at,
                     "missing field '@after.id' in \"{{@after.id}}\"");
        check_at_err("{{headers.x}}", row, "{\"headers\":{\"x\":1}}",
                     "missing field 'headers.x' in \"{{headers.x}}\" "
                     "(syncfleet's own names start with @: {{@headers.x}})");
        check_at_err("{{before.x}}", "{\"id\":1}", at,
                     "missing field 'before.x' in \"{{before.x}}\" "
                     "(syncfleet's own names start with @: {{@before.x}})");
        check_at_err("{{city}}", "{\"id\":1}", at,
                     "missing field 'city' in \"{{city}}\"");
}

typedef struct refs {
        char buf[512];
} refs_t;

static void collect_ref(const char *path, void *opaque)
{
        refs_t *r = opaque;

        if (r->buf[0])
                strcat(r->buf, ",");
        strcat(r->buf, path);
}

static void collect_ref_at(const char *path, size_t offset, void *opaque)
{
        refs_t *r = opaque;
        size_t n = strlen(r->buf);

        snprintf(r->buf + n, sizeof(r->buf) - n, "%s%s@%zu", n ? "," : "", path,
                 offset);
}

static void test_refs(void **state)
{
        sf_template_t *t = compile_ok(
            "{{a}} x {{ @key.id | lower }}{{lines.0.qty|number}} {{a}}");
        refs_t r = {""};

        (void)state;
        sf_template_refs(t, collect_ref, &r);
        assert_string_equal(r.buf, "a,@key.id,lines.0.qty,a");
        r.buf[0] = '\0';
        sf_template_refs_at(t, collect_ref_at, &r);
        assert_string_equal(r.buf, "a@0,@key.id@8,lines.0.qty@29,a@52");
        sf_template_destroy(t);
        t = compile_ok("no refs");
        r.buf[0] = '\0';
        sf_template_refs(t, collect_ref, &r);
        assert_string_equal(r.buf, "");
        sf_template_destroy(t);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_lone_ref_keeps_type),
            cmocka_unit_test(test_text_interpolation),
            cmocka_unit_test(test_number_text),
            cmocka_unit_test(test_exact_integers),
            cmocka_unit_test(test_paths),
            cmocka_unit_test(test_scope_chain),
            cmocka_unit_test(test_at_names),
            cmocka_unit_test(test_missing_field),
            cmocka_unit_test(test_filters),
            cmocka_unit_test(test_filter_errors),
            cmocka_unit_test(test_filter_json_depth),
            cmocka_unit_test(test_compile_errors),
            cmocka_unit_test(test_compile_misc),
            cmocka_unit_test(test_urlencode),
            cmocka_unit_test(test_text_cap),
            cmocka_unit_test(test_refs),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
