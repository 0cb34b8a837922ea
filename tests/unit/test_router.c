/*
 * The router's decision for one change: subscribers by table and event,
 * check_used_fields, redirect to the root record, and the outbound records
 * it writes.
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
#include "router.h"
#include "sf.h"

static const char *pipeline =
    "version: 1\n"
    "name: t\n"
    "kafka: { brokers: embedded, topic_prefix: t }\n"
    "tables:\n"
    "  customers: { key: [id] }\n"
    "  sales_orders: { key: [id] }\n"
    "  sales_lines:\n"
    "    key: [id]\n"
    "    parent: { table: sales_orders, key: { id: order_id } }\n"
    "  notes: { key: [id], parent: { table: sales_orders, key: { id: "
    "order_id } } }\n"
    "connectors:\n"
    "  shop: { type: http, base_url: 'http://127.0.0.1:1' }\n"
    "  files: { type: file, dir: /tmp/sf-router-test }\n"
    "messages:\n"
    "  customer-to-shop:\n"
    "    trigger: { table: customers, events: [insert, update, delete] }\n"
    "    target: { connector: shop, path: '/customers/{{id}}' }\n"
    "    mapping: { name: '{{name}}', mail: '{{email | lower}}' }\n"
    "  customer-all-updates:\n"
    "    trigger: { table: customers, events: [update], check_used_fields: "
    "false }\n"
    "    target: { connector: files }\n"
    "    mapping: { name: '{{name}}' }\n"
    "  new-customers:\n"
    "    trigger: { table: customers, events: [insert] }\n"
    "    target: { connector: files }\n"
    "    mapping: { id: '{{id}}' }\n"
    "  order-to-files:\n"
    "    trigger: { table: sales_orders, events: [insert, update] }\n"
    "    target: { connector: files }\n"
    "    mapping: { id: '{{id}}', status: '{{status}}', event: "
    "'{{event}}', at: '{{@event}} {{@table}} {{@op}}' }\n"
    "  order-no-redirect:\n"
    "    trigger: { table: sales_orders, events: [update], redirect: false "
    "}\n"
    "    target: { connector: files }\n"
    "    mapping: { id: '{{id}}' }\n";

static sf_config_t *cfg;

static int setup(void **state)
{
        char *errors = NULL;

        (void)state;
        cfg = sf_config_load_string("router-test.yaml", pipeline, &errors);
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

static void change(sf_change_t *c, sf_op_t op, const char *table,
                   const char *key, const char *before, const char *after)
{
        memset(c, 0, sizeof(*c));
        c->op = op;
        c->table = sf_strdup(table);
        c->key = sf_json_parse(key, strlen(key));
        c->before = before ? sf_json_parse(before, strlen(before)) : NULL;
        c->after = after ? sf_json_parse(after, strlen(after)) : NULL;
        c->event_id = sf_strdup("test:1");
        c->ts_ms = 1764150000000;
        c->txid = -1;
}

static int route(const sf_change_t *c, sf_outbound_t *out, sf_buf_t *why)
{
        char errstr[256] = "";
        int n = sf_route_change(cfg, c, 1764150000123, out, 16, why, errstr,
                                sizeof(errstr));

        assert_int_not_equal(n, -1);
        return n;
}

static void clear_all(sf_outbound_t *out, int n, sf_change_t *c)
{
        for (int i = 0; i < n; i++)
                sf_outbound_clear(&out[i]);
        sf_change_clear(c);
}

static void test_insert_triggers_insert_subscribers(void **state)
{
        sf_outbound_t out[16];
        sf_change_t c;
        char *key, *value;
        int n;

        (void)state;
        change(&c, SF_OP_CREATE, "customers", "{\"id\":42}", NULL,
               "{\"id\":42,\"name\":\"Ada\",\"email\":\"A@X\"}");
        n = route(&c, out, NULL);
        assert_int_equal(n, 2);
        assert_string_equal(out[0].action, "customer-to-shop");
        assert_string_equal(out[1].action, "new-customers");
        assert_string_equal(out[0].event, "insert");
        assert_string_equal(out[0].kind, "message");
        assert_string_equal(out[0].root_table, "customers");
        key = sf_outbound_key_json(&out[0]);
        assert_string_equal(
            key,
            "{\"action\":\"customer-to-shop\",\"key\":{\"id\":42},\"table\":"
            "\"customers\"}");
        value = sf_outbound_value_json(&out[0]);
        assert_non_null(strstr(value, "\"record\":{"));
        assert_non_null(strstr(value, "\"routed_ts_ms\":1764150000123"));
        free(key);
        free(value);
        clear_all(out, n, &c);
}

static void test_update_of_unused_field_is_skipped(void **state)
{
        sf_outbound_t out[16];
        sf_buf_t why;
        sf_change_t c;
        int n;

        (void)state;
        sf_buf_init(&why, 0);
        change(&c, SF_OP_UPDATE, "customers", "{\"id\":42}",
               "{\"id\":42,\"name\":\"Ada\",\"email\":\"a@x\",\"limit\":1}",
               "{\"id\":42,\"name\":\"Ada\",\"email\":\"a@x\",\"limit\":2}");
        n = route(&c, out, &why);
        /* only the subscriber that does not check used fields */
        assert_int_equal(n, 1);
        assert_string_equal(out[0].action, "customer-all-updates");
        assert_non_null(strstr(why.data, "message customer-to-shop: skipped, "
                                         "no field it uses changed"));
        assert_non_null(strstr(why.data, "message new-customers: not "
                                         "subscribed to update on customers"));
        clear_all(out, n, &c);
        sf_buf_free(&why);
}

static void test_update_of_used_field_triggers(void **state)
{
        sf_outbound_t out[16];
        sf_buf_t why;
        sf_change_t c;
        int n;

        (void)state;
        sf_buf_init(&why, 0);
        change(&c, SF_OP_UPDATE, "customers", "{\"id\":42}",
               "{\"id\":42,\"name\":\"Ada\",\"email\":\"a@x\"}",
               "{\"id\":42,\"name\":\"Ada\",\"email\":\"b@x\"}");
        n = route(&c, out, &why);
        assert_int_equal(n, 2);
        assert_string_equal(out[0].action, "customer-to-shop");
        assert_string_equal(out[0].event, "update");
        assert_non_null(out[0].before);
        assert_non_null(strstr(why.data, "message customer-to-shop: triggered "
                                         "by update (email changed)"));
        clear_all(out, n, &c);
        sf_buf_free(&why);
}

/* A used field that changes beyond 2^53 by one changed: doubles (and
 * cJSON_Compare) cannot tell 9007199254740992 from 9007199254740993. */
static void test_update_of_large_integer_triggers(void **state)
{
        sf_outbound_t out[16];
        sf_buf_t why;
        sf_change_t c;
        int n;

        (void)state;
        sf_buf_init(&why, 0);
        change(&c, SF_OP_UPDATE, "customers", "{\"id\":42}",
               "{\"id\":42,\"name\":9007199254740992,\"email\":\"a@x\"}",
               "{\"id\":42,\"name\":9007199254740993,\"email\":\"a@x\"}");
        n = route(&c, out, &why);
        assert_int_equal(n, 2);
        assert_string_equal(out[0].action, "customer-to-shop");
        assert_non_null(strstr(why.data, "message customer-to-shop: triggered "
                                         "by update (name changed)"));
        clear_all(out, n, &c);
        sf_buf_free(&why);
}

/* Columns named like syncfleet's names are columns: a change of only one
 * of them triggers the subscriber that maps it, and a change of only an
 * unmapped column does not. */
static void test_update_of_column_named_status_or_event(void **state)
{
        static const char *const after[] = {
            "{\"id\":100,\"status\":\"paid\",\"event\":\"fair\","
            "\"note\":\"n\"}",
            "{\"id\":100,\"status\":\"open\",\"event\":\"gala\","
            "\"note\":\"n\"}",
        };
        static const char *const changed[] = {"status", "event"};
        const char *before = "{\"id\":100,\"status\":\"open\",\"event\":"
                             "\"fair\",\"note\":\"n\"}";
        char expect[128];
        sf_outbound_t out[16];
        sf_buf_t why;
        sf_change_t c;
        int n;

        (void)state;
        for (size_t i = 0; i < 2; i++) {
                sf_buf_init(&why, 0);
                change(&c, SF_OP_UPDATE, "sales_orders", "{\"id\":100}", before,
                       after[i]);
                n = route(&c, out, &why);
                assert_int_equal(n, 1);
                assert_string_equal(out[0].action, "order-to-files");
                snprintf(expect, sizeof(expect),
                         "message order-to-files: triggered by update (%s "
                         "changed)",
                         changed[i]);
                assert_non_null(strstr(why.data, expect));
                clear_all(out, n, &c);
                sf_buf_free(&why);
        }
        sf_buf_init(&why, 0);
        change(&c, SF_OP_UPDATE, "sales_orders", "{\"id\":100}", before,
               "{\"id\":100,\"status\":\"open\",\"event\":\"fair\","
               "\"note\":\"m\"}");
        assert_int_equal(route(&c, out, &why), 0);
        assert_non_null(strstr(why.data, "message order-to-files: skipped, no "
                                         "field it uses changed"));
        sf_change_clear(&c);
        sf_buf_free(&why);
}

static void test_partial_before_image_counts_as_changed(void **state)
{
        sf_outbound_t out[16];
        sf_change_t c;
        int n;

        (void)state;
        /* a before image with the key only: cannot tell, so export */
        change(&c, SF_OP_UPDATE, "customers", "{\"id\":42}", "{\"id\":42}",
               "{\"id\":42,\"name\":\"Ada\",\"email\":\"a@x\"}");
        n = route(&c, out, NULL);
        assert_int_equal(n, 2);
        clear_all(out, n, &c);
}

static void test_delete_exports_before_image(void **state)
{
        sf_outbound_t out[16];
        sf_change_t c;
        int n;

        (void)state;
        change(&c, SF_OP_DELETE, "customers", "{\"id\":7}",
               "{\"id\":7,\"name\":\"Gone\",\"email\":\"g@x\"}", NULL);
        n = route(&c, out, NULL);
        assert_int_equal(n, 1);
        assert_string_equal(out[0].event, "delete");
        assert_string_equal(
            cJSON_GetObjectItem(out[0].record, "name")->valuestring, "Gone");
        clear_all(out, n, &c);
}

static void test_child_event_redirects_to_root(void **state)
{
        sf_outbound_t out[16];
        sf_buf_t why;
        sf_change_t c;
        char *key;
        int n;

        (void)state;
        sf_buf_init(&why, 0);
        change(&c, SF_OP_CREATE, "sales_lines", "{\"id\":1000}", NULL,
               "{\"id\":1000,\"order_id\":100,\"item\":\"x\",\"qty\":1}");
        n = route(&c, out, &why);
        assert_int_equal(n, 1);
        assert_string_equal(out[0].action, "order-to-files");
        assert_string_equal(out[0].event, "update");
        assert_string_equal(out[0].table, "sales_lines");
        assert_string_equal(out[0].root_table, "sales_orders");
        assert_null(out[0].record); /* the worker reads the order */
        key = sf_outbound_key_json(&out[0]);
        assert_string_equal(key, "{\"action\":\"order-to-files\",\"key\":{"
                                 "\"id\":100},\"table\":\"sales_orders\"}");
        assert_non_null(strstr(why.data, "message order-to-files: insert on "
                                         "sales_lines redirected to "
                                         "sales_orders as an update"));
        assert_non_null(strstr(why.data, "message order-no-redirect: "
                                         "sales_lines is a child of "
                                         "sales_orders but redirect is off"));
        free(key);
        clear_all(out, n, &c);
        sf_buf_free(&why);
}

static void test_redirect_needs_parent_column(void **state)
{
        sf_outbound_t out[16];
        sf_buf_t why;
        sf_change_t c;
        int n;

        (void)state;
        sf_buf_init(&why, 0);
        /* a delete whose before image holds only the key */
        change(&c, SF_OP_DELETE, "sales_lines", "{\"id\":1000}",
               "{\"id\":1000}", NULL);
        n = route(&c, out, &why);
        assert_int_equal(n, 0);
        assert_non_null(strstr(why.data, "cannot redirect to sales_orders: "
                                         "column order_id is not in the "
                                         "event image"));
        sf_change_clear(&c);
        sf_buf_free(&why);
}

static void test_unknown_table_has_no_subscriber(void **state)
{
        sf_outbound_t out[16];
        sf_buf_t why;
        sf_change_t c;

        (void)state;
        sf_buf_init(&why, 0);
        change(&c, SF_OP_CREATE, "invoices", "{\"id\":1}", NULL, "{\"id\":1}");
        assert_int_equal(route(&c, out, &why), 0);
        assert_string_equal(why.data, "table invoices is not in the pipeline: "
                                      "no subscriber\n");
        sf_change_clear(&c);
        sf_buf_free(&why);
}

static void test_captured_events_follow_subscriptions(void **state)
{
        (void)state;
        assert_int_equal(
            sf_config_captured_events(cfg, sf_config_table(cfg, "customers")),
            SF_EV_INSERT | SF_EV_UPDATE | SF_EV_DELETE);
        assert_int_equal(sf_config_captured_events(
                             cfg, sf_config_table(cfg, "sales_orders")),
                         SF_EV_INSERT | SF_EV_UPDATE);
        /* a line's insert, update and delete are updates of its order */
        assert_int_equal(
            sf_config_captured_events(cfg, sf_config_table(cfg, "sales_lines")),
            SF_EV_INSERT | SF_EV_UPDATE | SF_EV_DELETE);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_insert_triggers_insert_subscribers),
            cmocka_unit_test(test_update_of_unused_field_is_skipped),
            cmocka_unit_test(test_update_of_used_field_triggers),
            cmocka_unit_test(test_update_of_large_integer_triggers),
            cmocka_unit_test(test_update_of_column_named_status_or_event),
            cmocka_unit_test(test_partial_before_image_counts_as_changed),
            cmocka_unit_test(test_delete_exports_before_image),
            cmocka_unit_test(test_child_event_redirects_to_root),
            cmocka_unit_test(test_redirect_needs_parent_column),
            cmocka_unit_test(test_unknown_table_has_no_subscriber),
            cmocka_unit_test(test_captured_events_follow_subscriptions),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
