/*
 * Unit tests for mappings (common/mapping.c): each test builds a mapping
 * tree the way the config loader does, renders it against a record and
 * compares the exact document or error text.
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
        sf_scope_t sc = {obj, NULL, 0};
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
        sf_scope_t sc = {obj, NULL, 0};
        char err[512] = "";
        cJSON *v = sf_mapping_render(m, &sc, err, sizeof(err));

        assert_null(v);
        assert_string_equal(err, expect);
        cJSON_Delete(obj);
}

static sf_mapping_t *named(sf_mapping_t *m, const char *name)
{
        m->name = sf_strdup(name);
        return m;
}

static sf_mapping_t *literal_node(const char *name, cJSON *v)
{
        sf_mapping_t *m = sf_mapping_new(SF_MAP_LITERAL, 1, 1);

        m->literal = v;
        if (name)
                m->name = sf_strdup(name);
        return m;
}

static sf_mapping_t *each_node(const char *name, const char *path,
                               sf_mapping_t *map)
{
        sf_mapping_t *m = sf_mapping_new(SF_MAP_EACH, 1, 1);

        if (name)
                m->name = sf_strdup(name);
        m->each_path = sf_strdup(path);
        m->each_map = map;
        return m;
}

/* The customer and order mappings of PIPELINE.md's reference example. */
static void test_mapping_document(void **state)
{
        sf_mapping_t *root = sf_mapping_new(SF_MAP_OBJECT, 1, 1);
        sf_mapping_t *addr =
            named(sf_mapping_new(SF_MAP_OBJECT, 2, 1), "address");
        sf_mapping_t *line = sf_mapping_new(SF_MAP_OBJECT, 3, 5);

        (void)state;
        sf_mapping_add_child(root, tpl_node("externalId", "{{id}}"));
        sf_mapping_add_child(root, tpl_node("name", "{{name}}"));
        sf_mapping_add_child(root, tpl_node("email", "{{email | lower}}"));
        sf_mapping_add_child(addr, tpl_node("street", "{{address.street}}"));
        sf_mapping_add_child(addr, tpl_node("city", "{{address.city}}"));
        sf_mapping_add_child(root, addr);
        sf_mapping_add_child(root,
                             tpl_node("label", "Customer {{id}}: {{name}}"));
        sf_mapping_add_child(line, tpl_node("item", "{{item}}"));
        sf_mapping_add_child(line, tpl_node("qty", "{{qty | number}}"));
        sf_mapping_add_child(line, tpl_node("order", "{{id}}"));
        sf_mapping_add_child(root, each_node("lines", "lines", line));
        check_mapping(root, record,
                      "{\"externalId\":42,\"name\":\"Ada Lovelace\","
                      "\"email\":\"ada@example.com\",\"address\":{"
                      "\"street\":\"Main St 1\",\"city\":\"Berlin\"},"
                      "\"label\":\"Customer 42: Ada Lovelace\","
                      "\"lines\":[{\"item\":\"x\",\"qty\":2,\"order\":42},"
                      "{\"item\":\"y\",\"qty\":3.5,\"order\":42}]}");
        check_mapping_err(root,
                          "{\"id\":1,\"name\":\"n\",\"email\":\"e\","
                          "\"address\":{\"street\":\"s\"},\"lines\":[]}",
                          "address.city: missing field 'address.city' in "
                          "\"{{address.city}}\"");
        check_mapping_err(
            root,
            "{\"id\":1,\"name\":\"n\",\"email\":\"e\",\"address\":{"
            "\"street\":\"s\",\"city\":\"B\"},\"lines\":[{\"item\":1,"
            "\"qty\":1},{\"item\":1,\"qty\":1},{\"item\":1,\"qty\":\"abc\"}]}",
            "lines[2].qty: filter 'number' cannot convert \"abc\" to a "
            "number in \"{{qty | number}}\"");
        check_mapping_err(root, "{\"id\":1}",
                          "name: missing field 'name' in \"{{name}}\"");
        sf_mapping_destroy(root);
        sf_mapping_destroy(NULL);
}

static void test_mapping_array_literal(void **state)
{
        sf_mapping_t *root = sf_mapping_new(SF_MAP_OBJECT, 1, 1);
        sf_mapping_t *arr = named(sf_mapping_new(SF_MAP_ARRAY, 2, 1), "arr");
        sf_mapping_t *inner = sf_mapping_new(SF_MAP_OBJECT, 3, 1);
        sf_mapping_t *top = sf_mapping_new(SF_MAP_ARRAY, 1, 1);

        (void)state;
        sf_mapping_add_child(arr, literal_node(NULL, cJSON_CreateNumber(1.5)));
        sf_mapping_add_child(arr, literal_node(NULL, cJSON_CreateTrue()));
        sf_mapping_add_child(arr, literal_node(NULL, NULL));
        sf_mapping_add_child(arr, tpl_node(NULL, "x{{id}}"));
        sf_mapping_add_child(inner, tpl_node("t", "{{tags}}"));
        sf_mapping_add_child(inner, tpl_node("fixed", "no refs"));
        sf_mapping_add_child(arr, inner);
        sf_mapping_add_child(root, arr);
        sf_mapping_add_child(root, literal_node("n", cJSON_CreateNull()));
        sf_mapping_add_child(root, sf_mapping_new(SF_MAP_OBJECT, 5, 1));
        root->children[2]->name = sf_strdup("empty");
        check_mapping(root, record,
                      "{\"arr\":[1.5,true,null,\"x42\",{\"t\":[\"a\",\"b\"],"
                      "\"fixed\":\"no refs\"}],\"n\":null,\"empty\":{}}");
        check_mapping_err(root, "{\"id\":1}",
                          "arr[4].t: missing field 'tags' in \"{{tags}}\"");
        check_mapping_err(root, "{}",
                          "arr[3]: missing field 'id' in \"x{{id}}\"");
        /* A root template or array carries no name. */
        sf_mapping_add_child(top, tpl_node(NULL, "{{id}}"));
        check_mapping(top, record, "[42]");
        check_mapping_err(top, "{}", "[0]: missing field 'id' in \"{{id}}\"");
        check_mapping_err(top->children[0], "{}",
                          "missing field 'id' in \"{{id}}\"");
        sf_mapping_destroy(top);
        sf_mapping_destroy(root);
}

static void test_mapping_each(void **state)
{
        sf_mapping_t *part = sf_mapping_new(SF_MAP_OBJECT, 1, 1);
        sf_mapping_t *line = sf_mapping_new(SF_MAP_OBJECT, 1, 1);
        sf_mapping_t *root = sf_mapping_new(SF_MAP_OBJECT, 1, 1);

        (void)state;
        /* Innermost first: the part, then its line, then the order. */
        sf_mapping_add_child(part, tpl_node("sku", "{{sku}}"));
        sf_mapping_add_child(part, tpl_node("line", "{{no}}"));
        sf_mapping_add_child(part, tpl_node("order", "{{id}}"));
        sf_mapping_add_child(line, tpl_node("no", "{{no}}"));
        sf_mapping_add_child(line, each_node("parts", "parts", part));
        sf_mapping_add_child(root, tpl_node("id", "{{id}}"));
        sf_mapping_add_child(root, each_node("lines", "doc.lines", line));
        check_mapping(root,
                      "{\"id\":7,\"doc\":{\"lines\":[{\"no\":1,\"parts\":["
                      "{\"sku\":\"A\"},{\"sku\":\"B\",\"id\":99}]},"
                      "{\"no\":2,\"parts\":null}]}}",
                      "{\"id\":7,\"lines\":[{\"no\":1,\"parts\":["
                      "{\"sku\":\"A\",\"line\":1,\"order\":7},"
                      "{\"sku\":\"B\",\"line\":1,\"order\":99}]},"
                      "{\"no\":2,\"parts\":[]}]}");
        check_mapping(root, "{\"id\":7,\"doc\":{\"lines\":null}}",
                      "{\"id\":7,\"lines\":[]}");
        check_mapping(root, "{\"id\":7,\"doc\":{\"lines\":[]}}",
                      "{\"id\":7,\"lines\":[]}");
        check_mapping_err(root, "{\"id\":7,\"doc\":{}}",
                          "lines: missing field 'doc.lines' for each");
        check_mapping_err(root, "{\"id\":7,\"doc\":{\"lines\":5}}",
                          "lines: each over 'doc.lines' needs an array, got "
                          "the number 5");
        check_mapping_err(root, "{\"id\":7,\"doc\":{\"lines\":{}}}",
                          "lines: each over 'doc.lines' needs an array, got "
                          "an object");
        check_mapping_err(root,
                          "{\"id\":7,\"doc\":{\"lines\":[{\"no\":1,"
                          "\"parts\":[]},3]}}",
                          "lines[1]: each element of 'doc.lines' must be an "
                          "object, got the number 3");
        check_mapping_err(root,
                          "{\"id\":7,\"doc\":{\"lines\":[{\"no\":1,"
                          "\"parts\":[]},{\"no\":2,\"parts\":[{}]}]}}",
                          "lines[1].parts[0].sku: missing field 'sku' in "
                          "\"{{sku}}\"");
        check_mapping_err(root,
                          "{\"id\":7,\"doc\":{\"lines\":[{\"no\":1,"
                          "\"parts\":\"p\"}]}}",
                          "lines[0].parts: each over 'parts' needs an array, "
                          "got \"p\"");
        sf_mapping_destroy(root);
        root = each_node(NULL, "{{lines}}", tpl_node(NULL, "{{item}}"));
        check_mapping_err(root, record,
                          "each needs a field path and a map, got "
                          "'{{lines}}'");
        free(root->each_path);
        root->each_path = sf_strdup("lines");
        check_mapping(root, record, "[\"x\",\"y\"]");
        sf_mapping_destroy(root);
}

/* A chain of N nested objects named "a" around a literal leaf. */
static sf_mapping_t *deep_chain(int n)
{
        sf_mapping_t *leaf = literal_node("a", cJSON_CreateNumber(1));
        sf_mapping_t *m;
        int i;

        for (i = 0; i < n; i++) {
                m = sf_mapping_new(SF_MAP_OBJECT, 1, 1);
                sf_mapping_add_child(m, leaf);
                if (i < n - 1)
                        m->name = sf_strdup("a");
                leaf = m;
        }
        return leaf;
}

static void test_mapping_depth(void **state)
{
        sf_mapping_t *ok = deep_chain(63), *bad = deep_chain(64);
        cJSON *o = cJSON_CreateObject();
        sf_scope_t sc = {o, NULL, 0};
        char err[512], expect[512];
        cJSON *v;
        int i;

        (void)state;
        v = sf_mapping_render(ok, &sc, err, sizeof(err));
        assert_non_null(v);
        cJSON_Delete(v);
        v = sf_mapping_render(bad, &sc, err, sizeof(err));
        assert_null(v);
        expect[0] = '\0';
        for (i = 0; i < 64; i++)
                strcat(expect, i ? ".a" : "a");
        strcat(expect, ": mapping nested deeper than 64 levels");
        assert_string_equal(err, expect);
        sf_mapping_destroy(ok);
        sf_mapping_destroy(bad);
        cJSON_Delete(o);
}

/* Inside an `each`, an element's fields come first for plain paths, yet
 * an element field named like one of syncfleet's names hides nothing:
 * @event still reads syncfleet's, and `each` may walk an @ path. */
static void test_mapping_each_and_at_names(void **state)
{
        sf_mapping_t *root = sf_mapping_new(SF_MAP_OBJECT, 1, 1);
        sf_mapping_t *line = sf_mapping_new(SF_MAP_OBJECT, 1, 1);
        sf_mapping_t *old = sf_mapping_new(SF_MAP_OBJECT, 1, 1);
        cJSON *rec = cJSON_Parse("{\"id\":1,\"event\":\"gala\",\"lines\":["
                                 "{\"item\":\"x\",\"event\":\"sale\"}]}");
        cJSON *at = cJSON_Parse("{\"event\":\"update\",\"before\":{"
                                "\"lines\":[{\"item\":\"old\"}]}}");
        sf_scope_t s_rec = {rec, NULL, 0}, s_at = {at, &s_rec, 1};
        char err[512] = "", *out;
        cJSON *v;

        (void)state;
        sf_mapping_add_child(line, tpl_node("item", "{{item}}"));
        sf_mapping_add_child(line, tpl_node("own", "{{event}}"));
        sf_mapping_add_child(line, tpl_node("ev", "{{@event}}"));
        sf_mapping_add_child(line, tpl_node("id", "{{id}}"));
        sf_mapping_add_child(root, tpl_node("event", "{{event}}"));
        sf_mapping_add_child(root, each_node("lines", "lines", line));
        sf_mapping_add_child(old, tpl_node("item", "{{item}}"));
        sf_mapping_add_child(root, each_node("was", "@before.lines", old));
        v = sf_mapping_render(root, &s_at, err, sizeof(err));
        if (!v)
                fail_msg("render failed: %s", err);
        out = cJSON_PrintUnformatted(v);
        assert_string_equal(out, "{\"event\":\"gala\",\"lines\":[{\"item\":"
                                 "\"x\",\"own\":\"sale\",\"ev\":\"update\","
                                 "\"id\":1}],\"was\":[{\"item\":\"old\"}]}");
        cJSON_free(out);
        cJSON_Delete(v);
        sf_mapping_destroy(root);
        cJSON_Delete(rec);
        cJSON_Delete(at);
}

static void test_mapping_refs(void **state)
{
        sf_mapping_t *root = sf_mapping_new(SF_MAP_OBJECT, 1, 1);
        sf_mapping_t *line = sf_mapping_new(SF_MAP_OBJECT, 1, 1);
        refs_t r = {""};

        (void)state;
        sf_mapping_add_child(root, tpl_node("a", "{{id}}-{{@key.id}}"));
        sf_mapping_add_child(root, literal_node("l", cJSON_CreateTrue()));
        sf_mapping_add_child(line, tpl_node("q", "{{qty | number}}"));
        sf_mapping_add_child(root, each_node("lines", "lines", line));
        sf_mapping_add_child(root, tpl_node("b", "{{@after.name | lower}}"));
        sf_mapping_refs(root, collect_ref, &r);
        assert_string_equal(r.buf, "id,@key.id,lines,qty,@after.name");
        sf_mapping_destroy(root);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_mapping_document),
            cmocka_unit_test(test_mapping_array_literal),
            cmocka_unit_test(test_mapping_each),
            cmocka_unit_test(test_mapping_depth),
            cmocka_unit_test(test_mapping_each_and_at_names),
            cmocka_unit_test(test_mapping_refs),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
