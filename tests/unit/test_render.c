/*
 * What one step of an action renders (workers/render.c): a template reads
 * the exported record's own fields by their names, even when a column is
 * called status, event, table or op, and syncfleet's names only under '@'.
 * The outbound records come from the router's own decision on a change.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "envelope.h"
#include "render.h"
#include "router.h"
#include "sf.h"

static const char *pipeline =
    "version: 1\n"
    "name: r\n"
    "tables:\n"
    "  orders: { key: [id] }\n"
    "connectors:\n"
    "  shop: { type: http, base_url: 'http://127.0.0.1:1' }\n"
    "  files: { type: file, dir: /tmp/sf-render-test }\n"
    "messages:\n"
    "  m:\n"
    "    trigger: { table: orders }\n"
    "    target: { connector: shop, path: '/o/{{table}}/{{@table}}/"
    "{{@key.id}}' }\n"
    "    mapping:\n"
    "      status: '{{status}}'\n"
    "      event: '{{event}}'\n"
    "      table: '{{table}}'\n"
    "      op: '{{op}}'\n"
    "      event_id: '{{event_id}}'\n"
    "      at: { op: '{{@op}}', event: '{{@event}}', table: '{{@table}}', "
    "key: '{{@key.id}}', was: '{{@before.status}}', is: "
    "'{{@after.status}}', id: '{{@event_id}}' }\n"
    "web_service_actions:\n"
    "  w:\n"
    "    trigger: { table: orders }\n"
    "    request: { connector: shop, path: '/w/{{status}}', body: { e: "
    "'{{event}}', o: '{{@op}}' } }\n"
    "    response:\n"
    "      target: { connector: files }\n"
    "      mapping: { status: '{{@after.status}}', code: '{{@status}}', "
    "limit: '{{@response.limit}}', etag: '{{@headers.etag}}', event: "
    "'{{event}}' }\n"
    "    error:\n"
    "      target: { connector: files }\n"
    "      mapping: { status: '{{status}}', code: '{{@error.status}}', why: "
    "'{{@error.message}}', tries: '{{@error.attempts}}' }\n";

static sf_config_t *cfg;

static int setup(void **state)
{
        char *errors = NULL;

        (void)state;
        cfg = sf_config_load_string("render-test.yaml", pipeline, &errors);
        if (!cfg) {
                fprintf(stderr, "%s", errors ? errors : "?");
                free(errors);
                return -1;
        }
        return 0;
}

static int teardown(void **state)
{
        (void)state;
        sf_config_destroy(cfg);
        return 0;
}

static const char *const before_row =
    "{\"id\":7,\"status\":\"open\",\"event\":\"fair\",\"table\":\"t3\","
    "\"op\":\"sum\",\"event_id\":70}";
static const char *const after_row =
    "{\"id\":7,\"status\":\"paid\",\"event\":\"gala\",\"table\":\"t4\","
    "\"op\":\"max\",\"event_id\":71}";

/* Routes OP on orders 7 and returns the outbound record of ACTION. */
static void route_one(sf_op_t op, const char *action, sf_outbound_t *ob)
{
        sf_outbound_t out[4];
        sf_change_t ch;
        char errstr[256] = "";
        int n, found = -1;

        memset(&ch, 0, sizeof(ch));
        ch.op = op;
        ch.table = sf_strdup("orders");
        ch.key = cJSON_Parse("{\"id\":7}");
        ch.before = op == SF_OP_CREATE ? NULL : cJSON_Parse(before_row);
        ch.after = op == SF_OP_DELETE ? NULL : cJSON_Parse(after_row);
        ch.event_id = sf_strdup("sqlite:erp.db:9");
        ch.ts_ms = 1764150000000;
        ch.txid = -1;
        n = sf_route_change(cfg, &ch, 1764150000123, out, 4, NULL, errstr,
                            sizeof(errstr));
        assert_int_equal(n, 2);
        for (int i = 0; i < n; i++) {
                if (!strcmp(out[i].action, action)) {
                        *ob = out[i];
                        found = i;
                } else {
                        sf_outbound_clear(&out[i]);
                }
        }
        assert_int_not_equal(found, -1);
        sf_change_clear(&ch);
}

/* Renders STEP for OB against its own record and compares the path and
 * the compact document. */
static void check_render(const sf_outbound_t *ob, sf_step_t step,
                         const cJSON *reply, const char *path, const char *body)
{
        const sf_action_cfg_t *a = sf_config_action(cfg, ob->action);
        sf_rendered_t r;
        char err[512] = "";
        char *text;

        if (sf_render(a, step, ob, ob->record, reply, &r, err, sizeof(err)))
                fail_msg("render failed: %s", err);
        if (path)
                assert_string_equal(r.path, path);
        text = cJSON_PrintUnformatted(r.body);
        assert_string_equal(text, body);
        cJSON_free(text);
        sf_rendered_clear(&r);
}

static void test_columns_named_like_syncfleets_names(void **state)
{
        sf_outbound_t ob;

        (void)state;
        route_one(SF_OP_UPDATE, "m", &ob);
        check_render(&ob, SF_STEP_MAIN, NULL, "/o/t4/orders/7",
                     "{\"status\":\"paid\",\"event\":\"gala\",\"table\":"
                     "\"t4\",\"op\":\"max\",\"event_id\":71,\"at\":{\"op\":"
                     "\"u\",\"event\":\"update\",\"table\":\"orders\","
                     "\"key\":7,\"was\":\"open\",\"is\":\"paid\",\"id\":"
                     "\"sqlite:erp.db:9\"}}");
        sf_outbound_clear(&ob);
}

/* A delete exports the before image: its columns, @op d, no @after. */
static void test_delete_reads_the_before_image(void **state)
{
        const sf_action_cfg_t *a = sf_config_action(cfg, "m");
        sf_outbound_t ob;
        sf_rendered_t r;
        char err[512] = "";
        cJSON *reply;

        (void)state;
        route_one(SF_OP_DELETE, "m", &ob);
        if (sf_render(a, SF_STEP_MAIN, &ob, ob.record, NULL, &r, err,
                      sizeof(err)))
                fail_msg("render failed: %s", err);
        /* an HTTP DELETE carries no document; its path reads the columns */
        assert_string_equal(r.method, "DELETE");
        assert_string_equal(r.path, "/o/t3/orders/7");
        assert_null(r.body);
        sf_rendered_clear(&r);
        sf_outbound_clear(&ob);
        route_one(SF_OP_DELETE, "w", &ob);
        check_render(&ob, SF_STEP_MAIN, NULL, "/w/open",
                     "{\"e\":\"fair\",\"o\":\"d\"}");
        reply = sf_render_reply_response(NULL, 200, NULL);
        assert_int_equal(sf_render(sf_config_action(cfg, "w"), SF_STEP_RESPONSE,
                                   &ob, ob.record, reply, &r, err, sizeof(err)),
                         -1);
        assert_string_equal(err, "status: missing field '@after.status' in "
                                 "\"{{@after.status}}\"");
        cJSON_Delete(reply);
        sf_outbound_clear(&ob);
}

static void test_reply_is_under_at(void **state)
{
        cJSON *resp = cJSON_Parse("{\"limit\":5000,\"status\":\"ok\"}");
        cJSON *reply;
        sf_outbound_t ob;

        (void)state;
        route_one(SF_OP_UPDATE, "w", &ob);
        check_render(&ob, SF_STEP_MAIN, NULL, "/w/paid",
                     "{\"e\":\"gala\",\"o\":\"u\"}");
        reply = sf_render_reply_response(resp, 201, "{\"etag\":\"v2\"}");
        check_render(&ob, SF_STEP_RESPONSE, reply, NULL,
                     "{\"status\":\"paid\",\"code\":201,\"limit\":5000,"
                     "\"etag\":\"v2\",\"event\":\"gala\"}");
        cJSON_Delete(reply);
        reply = sf_render_reply_error(503, "HTTP 503", 3);
        check_render(&ob, SF_STEP_ERROR, reply, NULL,
                     "{\"status\":\"paid\",\"code\":503,\"why\":\"HTTP 503\","
                     "\"tries\":3}");
        cJSON_Delete(reply);
        cJSON_Delete(resp);
        sf_outbound_clear(&ob);
}

/* A write-back's key comes from the record, whatever the reply says,
 * unless the mapping names the key column itself. */
static void test_writeback_key_from_record(void **state)
{
        static const char *const yaml =
            "version: 1\n"
            "name: wb\n"
            "source: { type: sqlite, path: ./erp.db }\n"
            "tables:\n"
            "  customers: { key: [id] }\n"
            "connectors:\n"
            "  crm: { type: http, base_url: 'https://crm.example' }\n"
            "  erp: { type: database }\n"
            "web_service_actions:\n"
            "  whole:\n"
            "    trigger: { table: customers }\n"
            "    request: { connector: crm }\n"
            "    response:\n"
            "      target: { connector: erp, table: customers, operation: "
            "update, key: [id] }\n"
            "      mapping: '{{@response}}'\n"
            "  named:\n"
            "    trigger: { table: customers }\n"
            "    request: { connector: crm }\n"
            "    response:\n"
            "      target: { connector: erp, table: customers, operation: "
            "update, key: [id] }\n"
            "      mapping: { id: '{{@response.id}}', vip: "
            "'{{@response.vip}}' }\n"
            "    error:\n"
            "      target: { connector: erp, table: accounts, operation: "
            "update, key: [account] }\n"
            "      mapping: { note: '{{@error.message}}' }\n";
        char *errors = NULL, err[512] = "";
        sf_config_t *c = sf_config_load_string("wb.yaml", yaml, &errors);
        cJSON *resp = cJSON_Parse("{\"id\":1,\"vip\":true}");
        cJSON *reply = sf_render_reply_response(resp, 200, NULL);
        sf_outbound_t ob;
        sf_rendered_t r;
        char *text;

        (void)state;
        if (!c)
                fail_msg("%s", errors);
        memset(&ob, 0, sizeof(ob));
        ob.event = "insert";
        ob.root_table = "customers";
        ob.root_key = cJSON_Parse("{\"id\":4}");
        ob.record = cJSON_Parse("{\"id\":4,\"name\":\"Ada\"}");
        ob.event_id = "e";
        assert_int_equal(sf_render(sf_config_action(c, "whole"),
                                   SF_STEP_RESPONSE, &ob, ob.record, reply, &r,
                                   err, sizeof(err)),
                         0);
        text = cJSON_PrintUnformatted(r.body);
        assert_string_equal(text, "{\"vip\":true,\"id\":4}");
        cJSON_free(text);
        sf_rendered_clear(&r);
        /* named in the mapping: the pipeline chose the reply's */
        assert_int_equal(sf_render(sf_config_action(c, "named"),
                                   SF_STEP_RESPONSE, &ob, ob.record, reply, &r,
                                   err, sizeof(err)),
                         0);
        text = cJSON_PrintUnformatted(r.body);
        assert_string_equal(text, "{\"id\":1,\"vip\":true}");
        cJSON_free(text);
        sf_rendered_clear(&r);
        /* neither mapped nor in the record: the record cannot be written */
        cJSON_Delete(reply);
        reply = sf_render_reply_error(500, "HTTP 500", 1);
        assert_int_equal(sf_render(sf_config_action(c, "named"), SF_STEP_ERROR,
                                   &ob, ob.record, reply, &r, err, sizeof(err)),
                         -1);
        assert_string_equal(err, "write-back to accounts: the key column "
                                 "account is neither in the mapping nor a "
                                 "field of the record");
        cJSON_Delete(reply);
        cJSON_Delete(resp);
        cJSON_Delete(ob.root_key);
        cJSON_Delete(ob.record);
        sf_config_destroy(c);
}

/* A path stays under the base path unless a dot-dot segment, in any
 * spelling a target might decode, goes back over more segments than the
 * path itself has. */
static void test_path_confined(void **state)
{
        static const struct {
                const char *path;
                int confined;
        } cases[] = {
            {"/ok/x/1", 1},
            {"/ok/x/%2E", 1},
            {"/ok/x/%2E%2E", 1},
            {"/ok/x/..", 1},
            {"/ok/..", 1},
            {"/ok/../..", 0},
            {"/..", 0},
            {"..", 0},
            {"/%2E%2E/x", 0},
            {"/%2e%2e/x", 0},
            {"/.%2E/x", 0},
            {"/%2E./x", 0},
            {"/./..", 0},
            {"/ok/x/%2E%2E%2F%2E%2E", 1},
            {"/x/%2E%2E%2F%2E%2E", 0},
            {"/x/%2E%2E%2F%2E%2E%2F%2E%2E", 0},
            {"/x/..%5C..", 0},
            {"/x\\..\\..", 0},
            {"/x/%252E%252E/%252E%252E", 1},
            {"/x/.../...", 1},
            {"/x?a=/../../..", 1},
            {"/x#/../..", 1},
            {"", 1},
            {"?q=1", 1},
        };

        (void)state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                if (sf_render_path_confined(cases[i].path) != cases[i].confined)
                        fail_msg("\"%s\": expected %s", cases[i].path,
                                 cases[i].confined ? "confined" : "refused");
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_columns_named_like_syncfleets_names),
            cmocka_unit_test(test_delete_reads_the_before_image),
            cmocka_unit_test(test_reply_is_under_at),
            cmocka_unit_test(test_writeback_key_from_record),
            cmocka_unit_test(test_path_confined),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
