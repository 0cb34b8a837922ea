/*
 * Unit tests for templates (common/template.c, template_filters.c) and
 * mappings (common/mapping.c): each test compiles or builds a template or
 * mapping, renders it against JSON scopes and compares the exact output
 * or error text.
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
                objs[n] = cJSON_Parse(scopes[n]);
                assert_non_null(objs[n]);
        }
        for (i = 0; i < n; i++) {
                chain[i].obj = objs[i];
                chain[i].next = i + 1 < n ? &chain[i + 1] : NULL;
        }
        v = sf_template_render(t, n ? &chain[0] : NULL, err, sizeof(err));
        if (!v)
                fail_msg("render of '%s' failed: %s", src, err);
        out = cJSON_PrintUnformatted(v);
        assert_string_equal(out, expect);
        cJSON_free(out);
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
        sf_scope_t sc = {obj, NULL};
        char err[512] = "";
        cJSON *v;
        char *s;

        assert_non_null(obj);
        v = sf_template_render(t, &sc, err, sizeof(err));
        assert_null(v);
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
        sf_scope_t sc = {obj, NULL};
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

        assert_null(t);
        assert_string_equal(err, expect);
        assert_int_equal(off, offset);
}

static void test_lone_ref_keeps_type(void **state)
{
        (void)state;
        check_render("{{id}}", "42");
        check_render("{{ id }}", "42");
        check_render("{{price}}", "12.5");
        check_render("{{active}}", "true");
        check_render("{{nothing}}", "null");
        check_render("{{name}}", "\"Ada Lovelace\"");
        check_render("{{address}}",
                     "{\"street\":\"Main St 1\",\"city\":\"Berlin\"}");
        check_render("{{tags}}", "[\"a\",\"b\"]");
        /* Text around the braces makes it a string. */
        check_render(" {{id}}", "\" 42\"");
        check_render("{{id}} ", "\"42 \"");
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
        check_render("no refs { here }", "\"no refs { here }\"");
        check_render("", "\"\"");
        check_render("{{id}}{{id}}", "\"4242\"");
}

static void test_missing_field(void **state)
{
        (void)state;
        check_render_err("{{email2 | lower}}",
                         "missing field 'email2' in \"{{email2 | lower}}\"");
        check_render_err("Hi {{address.zip}}!",
                         "missing field 'address.zip' in \"Hi "
                         "{{address.zip}}!\"");
}

static void test_filters_basic(void **state)
{
        (void)state;
        check_render("{{email | lower}}", "\"ada@example.com\"");
        check_render("{{email | upper}}", "\"ADA@EXAMPLE.COM\"");
        check_render("{{lines.0.qty | number}}", "2");
        check_render("{{missing | default('x')}}", "\"x\"");
        check_render("{{nothing | default(0)}}", "0");
}

static void test_compile_errors_basic(void **state)
{
        (void)state;
        check_compile_err("ab {{id", 3, "unterminated '{{': no closing '}}'");
        check_compile_err("{{ }}", 0,
                          "empty reference: expected a field path after "
                          "'{{'");
        check_compile_err("{{id | lowr}}", 7,
                          "unknown filter 'lowr' (known: lower, upper, trim, "
                          "number, string, bool, json, default, date)");
}

static void test_urlencode_basic(void **state)
{
        (void)state;
        check_str("/customers/{{name}}?x=a b", SF_RENDER_URLENCODE,
                  "/customers/Ada%20Lovelace?x=a b");
        check_str("{{id}}", 0, "42");
        check_render_in("{{a.b}}", "{\"a\":{\"b\":[1]}}", "[1]");
}

static sf_mapping_t *tpl_node(const char *name, const char *src)
{
        sf_mapping_t *m = sf_mapping_new(SF_MAP_TEMPLATE, 1, 1);

        m->name = name ? sf_strdup(name) : NULL;
        m->tpl = compile_ok(src);
        return m;
}

static void check_mapping(const sf_mapping_t *m, const char *scope,
                          const char *expect)
{
        cJSON *obj = cJSON_Parse(scope);
        sf_scope_t sc = {obj, NULL};
        char err[512] = "";
        cJSON *v = sf_mapping_render(m, &sc, err, sizeof(err));
        char *out;

        if (!v)
                fail_msg("mapping render failed: %s", err);
        out = cJSON_PrintUnformatted(v);
        assert_string_equal(out, expect);
        cJSON_free(out);
        cJSON_Delete(v);
        cJSON_Delete(obj);
}

static void check_mapping_err(const sf_mapping_t *m, const char *scope,
                              const char *expect)
{
        cJSON *obj = cJSON_Parse(scope);
        sf_scope_t sc = {obj, NULL};
        char err[512] = "";
        cJSON *v = sf_mapping_render(m, &sc, err, sizeof(err));

        assert_null(v);
        assert_string_equal(err, expect);
        cJSON_Delete(obj);
}

static void test_mapping_basic(void **state)
{
        sf_mapping_t *root = sf_mapping_new(SF_MAP_OBJECT, 1, 1);
        sf_mapping_t *addr = sf_mapping_new(SF_MAP_OBJECT, 2, 1);
        sf_mapping_t *lines = sf_mapping_new(SF_MAP_EACH, 3, 1);
        sf_mapping_t *line = sf_mapping_new(SF_MAP_OBJECT, 3, 5);

        (void)state;
        sf_mapping_add_child(root, tpl_node("externalId", "{{id}}"));
        addr->name = sf_strdup("address");
        sf_mapping_add_child(addr, tpl_node("city", "{{address.city}}"));
        sf_mapping_add_child(root, addr);
        lines->name = sf_strdup("lines");
        lines->each_path = sf_strdup("lines");
        sf_mapping_add_child(line, tpl_node("item", "{{item}}"));
        sf_mapping_add_child(line, tpl_node("qty", "{{qty | number}}"));
        sf_mapping_add_child(line, tpl_node("order", "{{id}}"));
        lines->each_map = line;
        sf_mapping_add_child(root, lines);
        check_mapping(root, record,
                      "{\"externalId\":42,\"address\":{\"city\":\"Berlin\"},"
                      "\"lines\":[{\"item\":\"x\",\"qty\":2,\"order\":42},"
                      "{\"item\":\"y\",\"qty\":3.5,\"order\":42}]}");
        check_mapping_err(root, "{\"id\":1,\"address\":{},\"lines\":[]}",
                          "address.city: missing field 'address.city' in "
                          "\"{{address.city}}\"");
        check_mapping_err(
            root,
            "{\"id\":1,\"address\":{\"city\":\"B\"},\"lines\":[{\"item\":1,"
            "\"qty\":1},{\"item\":1,\"qty\":1},{\"item\":1,\"qty\":\"abc\"}]}",
            "lines[2].qty: filter 'number' cannot convert \"abc\" to a "
            "number in \"{{qty | number}}\"");
        sf_mapping_destroy(root);
        sf_mapping_destroy(NULL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_lone_ref_keeps_type),
            cmocka_unit_test(test_text_interpolation),
            cmocka_unit_test(test_missing_field),
            cmocka_unit_test(test_filters_basic),
            cmocka_unit_test(test_compile_errors_basic),
            cmocka_unit_test(test_urlencode_basic),
            cmocka_unit_test(test_mapping_basic),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
