/*
 * Unit tests for the pipeline loader (common/config*.c): the shipped
 * examples load with the values they spell out, defaults fill the rest,
 * and every kind of mistake is reported as the exact line
 * "FILE:LINE:COLUMN: message", all of them, in file order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "sf.h"

#define EX_REFERENCE SF_SOURCE_DIR "/examples/reference/pipeline.yaml"
#define EX_WEBSHOP   SF_SOURCE_DIR "/examples/webshop/pipeline.yaml"

static void set_example_env(void)
{
        setenv("WEBSHOP_URL", "http://127.0.0.1:8080", 1);
        setenv("WEBSHOP_TOKEN", "shop-token", 1);
        setenv("CRM_URL", "https://crm.example.com", 1);
        setenv("CRM_TOKEN_URL", "https://crm.example.com/oauth/token", 1);
        setenv("CRM_CLIENT_ID", "syncfleet", 1);
        setenv("CRM_CLIENT_SECRET", "crm-secret", 1);
}

static sf_config_t *load_ok(const char *yaml)
{
        char *err = NULL;
        sf_config_t *cfg = sf_config_load_string("p.yaml", yaml, &err);

        if (!cfg)
                fail_msg("unexpected errors:\n%s", err ? err : "(none)");
        assert_null(err);
        return cfg;
}

static void expect_errors(const char *yaml, const char *expect)
{
        char *err = NULL;
        sf_config_t *cfg = sf_config_load_string("p.yaml", yaml, &err);

        assert_null(cfg);
        assert_non_null(err);
        assert_string_equal(err, expect);
        free(err);
}

static const sf_mapping_t *child(const sf_mapping_t *m, const char *name)
{
        for (size_t i = 0; i < m->child_cnt; i++)
                if (m->children[i]->name && !strcmp(m->children[i]->name, name))
                        return m->children[i];
        fail_msg("no mapping field '%s'", name);
        return NULL;
}

static void assert_fields(const sf_action_cfg_t *a, const char *expect)
{
        char buf[512] = "";

        for (size_t i = 0; i < a->used_fields_cnt; i++) {
                strcat(buf, i ? "," : "");
                strcat(buf, a->used_fields[i]);
        }
        assert_string_equal(buf, expect);
}

static void test_reference_example(void **state)
{
        char *err = NULL;
        sf_config_t *cfg;
        const sf_table_cfg_t *lines;
        const sf_connector_cfg_t *k;
        const sf_action_cfg_t *a;

        (void)state;
        set_example_env();
        cfg = sf_config_load(EX_REFERENCE, &err);
        if (!cfg)
                fail_msg("%s", err);
        assert_string_equal(cfg->file, EX_REFERENCE);
        assert_string_equal(cfg->dir, SF_SOURCE_DIR "/examples/reference");
        assert_int_equal(cfg->version, 1);
        assert_string_equal(cfg->name, "webshop-sync");
        assert_string_equal(cfg->state_dir,
                            SF_SOURCE_DIR "/examples/reference/state");
        assert_string_equal(cfg->kafka.brokers, "embedded");
        assert_int_equal(cfg->kafka.embedded, 1);
        assert_string_equal(cfg->kafka.topic_prefix, "erp");
        assert_int_equal(cfg->kafka.partitions, 6);
        assert_int_equal(cfg->kafka.config_cnt, 1);
        assert_string_equal(cfg->kafka.config[0].key, "security.protocol");
        assert_string_equal(cfg->kafka.config[0].value, "plaintext");
        assert_string_equal(cfg->topic_sync_log, "erp.sync-log");
        assert_string_equal(cfg->topic_outbound_message,
                            "erp.outbound.message");
        assert_string_equal(cfg->topic_outbound_webservice,
                            "erp.outbound.webservice");
        assert_string_equal(cfg->topic_dlq, "erp.dlq");
        assert_int_equal(cfg->source.type, SF_SOURCE_SQLITE);
        assert_string_equal(cfg->source.path,
                            SF_SOURCE_DIR "/examples/reference/erp.db");
        assert_int_equal(cfg->source.poll_interval_ms, 100);

        assert_int_equal(cfg->table_cnt, 3);
        lines = sf_config_table(cfg, "sales_lines");
        assert_non_null(lines);
        assert_ptr_equal(lines->parent, sf_config_table(cfg, "sales_orders"));
        assert_int_equal(lines->parent_key_cnt, 1);
        assert_string_equal(lines->parent_cols[0], "id");
        assert_string_equal(lines->child_cols[0], "order_id");
        assert_ptr_equal(sf_config_root_table(lines), lines->parent);
        assert_int_equal(lines->pos.line, 29);
        assert_int_equal(lines->pos.col, 3);

        assert_int_equal(cfg->connector_cnt, 4);
        k = sf_config_connector(cfg, "webshop");
        assert_int_equal(k->type, SF_CONN_HTTP);
        assert_string_equal(k->base_url, "http://127.0.0.1:8080");
        assert_int_equal(k->header_cnt, 1);
        assert_string_equal(k->headers[0].key, "X-Client");
        assert_string_equal(k->headers[0].value, "syncfleet");
        assert_int_equal(k->auth, SF_AUTH_BEARER);
        assert_string_equal(k->token, "shop-token");
        assert_int_equal(k->timeout_ms, 5000);
        assert_int_equal(k->max_in_flight, 32);
        assert_true(k->rate_limit_per_s == 100.0);
        assert_int_equal(k->retry.max_attempts, 10);
        assert_int_equal(k->retry.initial_backoff_ms, 200);
        assert_int_equal(k->retry.max_backoff_ms, 30000);
        k = sf_config_connector(cfg, "crm");
        assert_int_equal(k->auth, SF_AUTH_OAUTH2);
        assert_string_equal(k->token_url,
                            "https://crm.example.com/oauth/token");
        assert_string_equal(k->client_id, "syncfleet");
        assert_string_equal(k->client_secret, "crm-secret");
        k = sf_config_connector(cfg, "archive");
        assert_int_equal(k->type, SF_CONN_FILE);
        assert_string_equal(k->dir, SF_SOURCE_DIR "/examples/reference/out/"
                                                  "orders");
        assert_int_equal(k->format, SF_FILE_JSONL);
        assert_int_equal(sf_config_connector(cfg, "erp")->type,
                         SF_CONN_DATABASE);

        assert_int_equal(cfg->action_cnt, 3);
        a = &cfg->actions[0];
        assert_string_equal(a->name, "customer-to-webshop");
        assert_int_equal(a->kind, SF_KIND_MESSAGE);
        assert_string_equal(a->trigger.table, "customers");
        assert_ptr_equal(a->trigger.table_ref,
                         sf_config_table(cfg, "customers"));
        assert_int_equal(a->trigger.events,
                         SF_EV_INSERT | SF_EV_UPDATE | SF_EV_DELETE);
        assert_int_equal(a->trigger.check_used_fields, 1);
        assert_int_equal(a->source.mode, SF_MODE_EVENT);
        assert_ptr_equal(a->target.conn, sf_config_connector(cfg, "webshop"));
        assert_string_equal(a->target.method, "PUT");
        assert_string_equal(sf_template_source(a->target.path),
                            "/customers/{{id}}");
        assert_int_equal(a->target.has_on_delete, 1);
        assert_string_equal(a->target.delete_method, "DELETE");
        assert_null(a->target.delete_path);
        assert_int_equal(a->mapping->type, SF_MAP_OBJECT);
        assert_int_equal(a->mapping->child_cnt, 5);
        assert_int_equal(child(a->mapping, "externalId")->type,
                         SF_MAP_TEMPLATE);
        assert_int_equal(child(a->mapping, "address")->type, SF_MAP_OBJECT);
        assert_string_equal(sf_template_source(child(a->mapping, "email")->tpl),
                            "{{email | lower}}");
        assert_int_equal(child(a->mapping, "email")->line, 76);
        assert_int_equal(child(a->mapping, "email")->col, 14);
        assert_fields(a, "city,email,id,name,street");

        a = sf_config_action(cfg, "order-to-archive");
        assert_ptr_equal(a, &cfg->actions[1]);
        assert_int_equal(a->trigger.events, SF_EV_INSERT | SF_EV_UPDATE);
        assert_int_equal(a->source.mode, SF_MODE_QUERY);
        assert_int_equal(a->source.records_cnt, 1);
        assert_string_equal(a->source.records[0].name, "lines");
        assert_ptr_equal(a->source.records[0].table_ref, lines);
        assert_string_equal(a->source.records[0].where[0].key, "order_id");
        assert_string_equal(a->source.records[0].where[0].value, "id");
        assert_int_equal(child(a->mapping, "lines")->type, SF_MAP_EACH);
        assert_string_equal(child(a->mapping, "lines")->each_path, "lines");
        assert_int_equal(child(a->mapping, "lines")->each_map->child_cnt, 2);
        assert_fields(a, "customer_id,id");

        a = sf_config_action(cfg, "credit-check");
        assert_int_equal(a->kind, SF_KIND_WEBSERVICE);
        assert_int_equal(a->trigger.events, SF_EV_INSERT);
        assert_string_equal(a->request.method, "POST");
        assert_string_equal(sf_template_source(a->request.path),
                            "/credit-checks");
        assert_int_equal(a->request_body->child_cnt, 2);
        assert_int_equal(a->has_response, 1);
        assert_string_equal(a->response_target.connector, "erp");
        assert_string_equal(a->response_target.table, "customers");
        assert_string_equal(a->response_target.operation, "update");
        assert_int_equal(a->response_target.key_cnt, 1);
        assert_string_equal(a->response_target.key[0], "id");
        assert_int_equal(a->has_error, 1);
        assert_string_equal(a->error_target.connector, "archive");
        assert_int_equal(a->error_mapping->child_cnt, 2);
        assert_fields(a, "id,name");

        assert_int_equal(
            sf_config_captured_events(cfg, sf_config_table(cfg, "customers")),
            SF_EV_INSERT | SF_EV_UPDATE | SF_EV_DELETE);
        assert_int_equal(sf_config_captured_events(
                             cfg, sf_config_table(cfg, "sales_orders")),
                         SF_EV_INSERT | SF_EV_UPDATE);
        assert_int_equal(sf_config_captured_events(cfg, lines),
                         SF_EV_INSERT | SF_EV_UPDATE | SF_EV_DELETE);
        assert_null(sf_config_table(cfg, "nope"));
        assert_null(sf_config_connector(cfg, "nope"));
        assert_null(sf_config_action(cfg, "nope"));
        sf_config_destroy(cfg);
        sf_config_destroy(NULL);
}

static const char webshop_summary[] =
    "pipeline webshop-sync: valid\n"
    "kafka: embedded; topics webshop.sync-log, webshop.outbound.message, "
    "webshop.outbound.webservice, webshop.dlq (3 partitions)\n"
    "source: sqlite " SF_SOURCE_DIR "/examples/webshop/erp.db\n"
    "acknowledgement: settled (a change leaves the source once its targets "
    "accepted it or it is dead-lettered)\n"
    "router: coalesce 300 ms, delay 0 ms\n"
    "captured table events:\n"
    "  customers: insert, update, delete\n"
    "    insert -> message customer-to-webshop\n"
    "    update -> message customer-to-webshop (when any of city, email, "
    "id, name, street changed)\n"
    "    delete -> message customer-to-webshop\n"
    "  sales_orders: insert, update\n"
    "    insert -> message order-to-archive\n"
    "    update -> message order-to-archive (when any of customer_id, id, "
    "status changed)\n"
    "  sales_lines: insert, update, delete (redirected to sales_orders)\n"
    "connectors:\n"
    "  webshop: http http://127.0.0.1:8080, no auth, timeout 5000 ms\n"
    "  archive: file " SF_SOURCE_DIR "/examples/webshop/out/orders (jsonl)\n"
    "messages:\n"
    "  customer-to-webshop: customers insert, update, delete -> webshop "
    "PUT /customers/{{id}}, on delete DELETE (same path)\n"
    "  order-to-archive: sales_orders insert, update (query: lines from "
    "sales_lines) -> archive\n";

static void test_webshop_example(void **state)
{
        char *err = NULL, *out = NULL;
        size_t len = 0;
        sf_config_t *cfg;
        FILE *f;

        (void)state;
        set_example_env();
        cfg = sf_config_load(EX_WEBSHOP, &err);
        if (!cfg)
                fail_msg("%s", err);
        assert_string_equal(cfg->kafka.topic_prefix, "webshop");
        assert_int_equal(cfg->kafka.partitions, 3);
        assert_string_equal(cfg->topic_dlq, "webshop.dlq");
        assert_int_equal(cfg->connector_cnt, 2);
        assert_int_equal(sf_config_connector(cfg, "webshop")->auth,
                         SF_AUTH_NONE);
        assert_int_equal(
            sf_config_connector(cfg, "webshop")->retry.max_attempts, 5);
        assert_int_equal(cfg->action_cnt, 2);
        f = open_memstream(&out, &len);
        sf_config_print_summary(cfg, f);
        fclose(f);
        assert_string_equal(out, webshop_summary);
        free(out);
        sf_config_destroy(cfg);
}

static void test_defaults(void **state)
{
        sf_config_t *cfg = load_ok(
            "version: 1\n"
            "name: d\n"
            "source: { type: postgres, dsn: \"host=db\" }\n"
            "tables: { t: { key: id } }\n"
            "connectors:\n"
            "  h: { type: http, base_url: \"https://h\" }\n"
            "  f: { type: file, dir: /data/../out/./x }\n"
            "  k: { type: kafka, topic: out }\n"
            "  db: { type: database }\n"
            "messages:\n"
            "  m: { trigger: { table: t }, target: { connector: h },"
            " mapping: { a: 1 } }\n"
            "  n: { trigger: { table: t }, target: { connector: db, table: t "
            "}, mapping: {} }\n"
            "  o: { trigger: { table: t }, target: { connector: k }, "
            "mapping: {} }\n"
            "web_service_actions:\n"
            "  w: { trigger: { table: t }, request: { connector: h } }\n");
        const sf_connector_cfg_t *h = sf_config_connector(cfg, "h");
        const sf_action_cfg_t *a;

        (void)state;
        assert_int_equal(cfg->kafka.embedded, 1);
        assert_string_equal(cfg->kafka.brokers, "embedded");
        assert_string_equal(cfg->kafka.topic_prefix, "syncfleet");
        assert_string_equal(cfg->topic_sync_log, "syncfleet.sync-log");
        assert_int_equal(cfg->kafka.partitions, 6);
        assert_int_equal(cfg->kafka.replication_factor, -1);
        assert_int_equal(cfg->source.type, SF_SOURCE_POSTGRES);
        assert_string_equal(cfg->source.dsn, "host=db");
        assert_string_equal(cfg->source.slot, "syncfleet");
        assert_string_equal(cfg->source.publication, "syncfleet");
        assert_int_equal(cfg->source.snapshot, SF_SNAPSHOT_INITIAL);
        assert_int_equal(cfg->source.batch_size, 1000);
        assert_int_equal(cfg->tables[0].key_cnt, 1);
        assert_string_equal(cfg->tables[0].key[0], "id");
        assert_int_equal(h->timeout_ms, 5000);
        assert_int_equal(h->max_in_flight, 32);
        assert_int_equal(h->tls_verify, 1);
        assert_true(h->rate_limit_per_s == 0);
        assert_int_equal(h->auth, SF_AUTH_NONE);
        assert_int_equal(h->retry.max_attempts, 10);
        assert_int_equal(h->retry.initial_backoff_ms, 200);
        assert_int_equal(h->retry.max_backoff_ms, 30000);
        assert_string_equal(sf_config_connector(cfg, "f")->dir, "/out/x");
        assert_int_equal(sf_config_connector(cfg, "f")->format, SF_FILE_JSONL);
        assert_int_equal(cfg->router.coalesce_ms, 0);
        assert_int_equal(cfg->router.delay_ms, 0);
        a = sf_config_action(cfg, "m");
        assert_string_equal(a->target.method, "PUT");
        assert_null(a->target.path);
        assert_int_equal(a->target.has_on_delete, 0);
        assert_int_equal(a->trigger.events,
                         SF_EV_INSERT | SF_EV_UPDATE | SF_EV_DELETE);
        assert_int_equal(a->trigger.check_used_fields, 1);
        assert_int_equal(a->trigger.redirect, 1);
        assert_int_equal(a->source.mode, SF_MODE_EVENT);
        assert_int_equal(child(a->mapping, "a")->type, SF_MAP_LITERAL);
        a = sf_config_action(cfg, "n");
        assert_string_equal(a->target.operation, "upsert");
        assert_int_equal(a->target.key_cnt, 1);
        assert_string_equal(a->target.key[0], "id");
        a = sf_config_action(cfg, "o");
        assert_null(a->target.topic);
        assert_string_equal(a->target.conn->topic, "out");
        a = sf_config_action(cfg, "w");
        assert_string_equal(a->request.method, "POST");
        assert_null(a->request_body);
        assert_int_equal(a->has_response, 0);
        assert_int_equal(a->has_error, 0);
        sf_config_destroy(cfg);
}

static void test_env_substitution(void **state)
{
        sf_config_t *cfg;
        const sf_connector_cfg_t *h;

        (void)state;
        setenv("SF_T_PREFIX", "envpfx", 1);
        setenv("SF_T_PARTS", "4", 1);
        setenv("SF_T_HOST", "h.example", 1);
        setenv("SF_T_TOKEN", "tok, en}", 1);
        cfg = load_ok("version: 1\n"
                      "name: \"cost $$5 ${SF_T_PREFIX}$\"\n"
                      "kafka: { topic_prefix: ${SF_T_PREFIX}, partitions: "
                      "${SF_T_PARTS} }\n"
                      "connectors:\n"
                      "  h: { type: http, base_url: "
                      "https://${SF_T_HOST}:8443/api,\n"
                      "       auth: { type: bearer, token: ${SF_T_TOKEN} },\n"
                      "       headers: { X-Price: \"$$1 and $x\" } }\n");
        h = sf_config_connector(cfg, "h");
        assert_string_equal(cfg->name, "cost $5 envpfx$");
        assert_string_equal(cfg->kafka.topic_prefix, "envpfx");
        assert_string_equal(cfg->topic_dlq, "envpfx.dlq");
        assert_int_equal(cfg->kafka.partitions, 4);
        assert_string_equal(h->base_url, "https://h.example:8443/api");
        assert_string_equal(h->token, "tok, en}");
        assert_string_equal(h->headers[0].value, "$1 and $x");
        sf_config_destroy(cfg);
}

static void write_file(const char *path, const char *text)
{
        FILE *f = fopen(path, "w");

        assert_non_null(f);
        fputs(text, f);
        fclose(f);
}

static void test_secret_from_file(void **state)
{
        char dir[] = "/tmp/sf-config-XXXXXX";
        char *pipeline, *secrets, *token, *expect, *err = NULL;
        sf_config_t *cfg;
        const char *yaml =
            "version: 1\n"
            "name: s\n"
            "connectors:\n"
            "  a: { type: http, base_url: \"http://a\",\n"
            "       auth: { type: bearer, token_file: secrets/token } }\n"
            "  b: { type: http, base_url: \"http://b\",\n"
            "       auth: { type: basic, username: u, password_file: %s } }\n";

        (void)state;
        assert_non_null(mkdtemp(dir));
        pipeline = sf_asprintf("%s/pipeline.yaml", dir);
        secrets = sf_asprintf("%s/secrets", dir);
        token = sf_asprintf("%s/secrets/token", dir);
        assert_int_equal(mkdir(secrets, 0700), 0);
        write_file(token, "s3cret\n");
        expect = sf_asprintf(yaml, token); /* absolute path works too */
        write_file(pipeline, expect);
        free(expect);
        cfg = sf_config_load(pipeline, &err);
        if (!cfg)
                fail_msg("%s", err);
        assert_string_equal(sf_config_connector(cfg, "a")->token, "s3cret");
        assert_string_equal(sf_config_connector(cfg, "b")->password, "s3cret");
        assert_string_equal(sf_config_connector(cfg, "b")->username, "u");
        sf_config_destroy(cfg);

        expect = sf_asprintf(yaml, "missing");
        write_file(pipeline, expect);
        free(expect);
        assert_null(sf_config_load(pipeline, &err));
        expect = sf_asprintf("%s:7:57: cannot read "
                             "connectors.b.auth.password_file %s/missing: No "
                             "such file or directory\n",
                             pipeline, dir);
        assert_string_equal(err, expect);
        free(expect);
        free(err);

        unlink(token);
        rmdir(secrets);
        unlink(pipeline);
        rmdir(dir);
        free(pipeline);
        free(secrets);
        free(token);
}

/* kafka.config: PROPERTY_file reads PROPERTY from a file; a credential
 * written as a literal is refused; ${VAR} is taken. */
static void test_kafka_config_secrets(void **state)
{
        char dir[] = "/tmp/sf-config-XXXXXX";
        char *pipeline, *pwfile, *text, *expect, *err = NULL;
        sf_config_t *cfg;
        const char *yaml = "version: 1\n"
                           "name: k\n"
                           "kafka:\n"
                           "  brokers: \"b:9093\"\n"
                           "  config:\n"
                           "    security.protocol: SASL_SSL\n"
                           "    sasl.mechanisms: PLAIN\n"
                           "    sasl.username: u\n"
                           "    %s\n"
                           "    %s\n";

        (void)state;
        assert_non_null(mkdtemp(dir));
        pipeline = sf_asprintf("%s/pipeline.yaml", dir);
        pwfile = sf_asprintf("%s/kafka-password", dir);
        write_file(pwfile, "pa ss\n");

        text = sf_asprintf(yaml, "sasl.password_file: kafka-password",
                           "ssl.key.password: \"${SF_TEST_KEY_PW}\"");
        setenv("SF_TEST_KEY_PW", "k3y", 1);
        write_file(pipeline, text);
        free(text);
        cfg = sf_config_load(pipeline, &err);
        if (!cfg)
                fail_msg("%s", err);
        assert_int_equal(cfg->kafka.config_cnt, 5);
        assert_string_equal(cfg->kafka.config[3].key, "sasl.password");
        assert_string_equal(cfg->kafka.config[3].value, "pa ss");
        assert_string_equal(cfg->kafka.config[4].key, "ssl.key.password");
        assert_string_equal(cfg->kafka.config[4].value, "k3y");
        sf_config_destroy(cfg);

        text = sf_asprintf(yaml, "sasl.password: hunter2",
                           "ssl.keystore.password: s3");
        write_file(pipeline, text);
        free(text);
        assert_null(sf_config_load(pipeline, &err));
        expect = sf_asprintf(
            "%s:9:20: literal secret in kafka.config.sasl.password: use "
            "${VAR} or sasl.password_file instead\n"
            "%s:10:28: literal secret in "
            "kafka.config.ssl.keystore.password: use ${VAR} or "
            "ssl.keystore.password_file instead\n",
            pipeline, pipeline);
        assert_string_equal(err, expect);
        assert_null(strstr(err, "hunter2"));
        free(expect);
        free(err);
        err = NULL;

        text = sf_asprintf(yaml, "sasl.password_file: missing", "client.id: x");
        write_file(pipeline, text);
        free(text);
        assert_null(sf_config_load(pipeline, &err));
        expect = sf_asprintf("%s:9:25: cannot read "
                             "kafka.config.sasl.password_file %s/missing: No "
                             "such file or directory\n",
                             pipeline, dir);
        assert_string_equal(err, expect);
        free(expect);
        free(err);
        err = NULL;

        text = sf_asprintf(yaml, "sasl.password_file: kafka-password",
                           "sasl.password: \"${SF_TEST_KEY_PW}\"");
        write_file(pipeline, text);
        free(text);
        assert_null(sf_config_load(pipeline, &err));
        expect = sf_asprintf("%s:9:25: both sasl.password and "
                             "sasl.password_file are given in kafka.config; "
                             "use one\n",
                             pipeline);
        assert_string_equal(err, expect);
        free(expect);
        free(err);
        err = NULL;

        unsetenv("SF_TEST_KEY_PW");
        unlink(pwfile);
        unlink(pipeline);
        rmdir(dir);
        free(pipeline);
        free(pwfile);
}

static void test_used_fields_and_mapping(void **state)
{
        sf_config_t *cfg = load_ok(
            "version: 1\n"
            "name: u\n"
            "tables:\n"
            "  customers: { key: [id] }\n"
            "connectors:\n"
            "  shop: { type: http, base_url: \"http://localhost:1\" }\n"
            "messages:\n"
            "  m:\n"
            "    trigger: { table: customers, events: update }\n"
            "    target:\n"
            "      connector: shop\n"
            "      path: /c/{{@key.id}}/{{@op}}\n"
            "      on_delete: { method: POST, path: \"/gone/{{@before.code}}\" "
            "}\n"
            "    mapping:\n"
            "      a: \"{{@after.name}} {{@event}} {{@table}} {{@event_id}}\"\n"
            "      b: \"{{address.street}}\"\n"
            "      c: \"{{address.city | upper}}\"\n"
            "      d: [ \"{{zeta}}\", 5, true, ~, \"7\", 1.5 ]\n"
            "      e: \"{{email | default('x')}}\"\n"
            "      f: { each: items, map: { sku: \"{{sku}}\" } }\n"
            "      g: \"{{status}} {{event}} {{table}} {{op}} {{event_id}}\"\n"
            "web_service_actions:\n"
            "  w:\n"
            "    trigger: { table: customers, events: [insert] }\n"
            "    request:\n"
            "      connector: shop\n"
            "      path: /w/{{id}}\n"
            "      body: { n: \"{{nr}}\", h: \"{{headers.X}}\", k: "
            "\"{{@key}}\" }\n"
            "    response:\n"
            "      target: { connector: shop }\n"
            "      mapping: { s: \"{{@status}}\", r: \"{{@response.limit}}\", "
            "x: \"{{credit}}\", t: \"{{@headers.ETag}}\" }\n"
            "    error:\n"
            "      target: { connector: shop, on_delete: skip }\n"
            "      mapping: { e: \"{{@error.message}}\", r: \"{{response}}\", "
            "s: \"{{status}}\" }\n"
            "  whole:\n"
            "    trigger: { table: customers, check_used_fields: true }\n"
            "    request: { connector: shop }\n"
            "    response:\n"
            "      target: { connector: shop }\n"
            "      mapping: \"{{@after}}\"\n");
        const sf_action_cfg_t *m = sf_config_action(cfg, "m");
        const sf_mapping_t *d = child(m->mapping, "d");

        (void)state;
        assert_int_equal(m->trigger.events, SF_EV_UPDATE);
        assert_string_equal(m->target.delete_method, "POST");
        /* every plain name is a column, whatever it is called; of the
         * @names only @key.id, @before.code and @after.name read one */
        assert_fields(m, "address,code,email,event,event_id,id,items,name,op,"
                         "status,table,zeta");
        assert_int_equal(d->type, SF_MAP_ARRAY);
        assert_int_equal(d->child_cnt, 6);
        assert_int_equal(child(m->mapping, "f")->type, SF_MAP_EACH);
        assert_int_equal(d->line, 18);
        assert_int_equal(d->col, 10);
        assert_int_equal(d->children[0]->type, SF_MAP_TEMPLATE);
        assert_int_equal(d->children[1]->type, SF_MAP_LITERAL);
        assert_true(cJSON_IsNumber(d->children[1]->literal));
        assert_true(cJSON_IsTrue(d->children[2]->literal));
        assert_true(cJSON_IsNull(d->children[3]->literal));
        assert_int_equal(d->children[4]->type, SF_MAP_TEMPLATE);
        assert_true(d->children[5]->literal->valuedouble == 1.5);
        /* headers in the request and response/status in the error mapping
         * are columns there: the reply is @response, @status, @headers */
        assert_fields(sf_config_action(cfg, "w"),
                      "credit,headers,id,nr,response,status");
        assert_int_equal(sf_config_action(cfg, "w")->error_target.delete_skip,
                         1);
        assert_int_equal(sf_config_action(cfg, "w")->trigger.check_used_fields,
                         1);
        /* {{@after}} reads every field: updates cannot be filtered */
        assert_int_equal(
            sf_config_action(cfg, "whole")->trigger.check_used_fields, 0);
        sf_config_destroy(cfg);
}

/* Query mode: the fields records.where selects children by are used too,
 * references into the children are not. */
static void test_used_fields_of_query(void **state)
{
        sf_config_t *cfg = load_ok(
            "version: 1\n"
            "name: q\n"
            "source: { type: sqlite, path: /tmp/q.db }\n"
            "tables:\n"
            "  orders: { key: [id] }\n"
            "  lines: { key: [id] }\n"
            "connectors: { f: { type: file, dir: /tmp } }\n"
            "messages:\n"
            "  o:\n"
            "    trigger: { table: orders, events: [update] }\n"
            "    source:\n"
            "      mode: query\n"
            "      records: { lines: { table: lines, where: { order_no: "
            "number } } }\n"
            "    target: { connector: f }\n"
            "    mapping: { s: \"{{status}}\", n: \"{{lines.0.item}}\", "
            "l: { each: lines, map: { i: \"{{item}}\" } } }\n");

        (void)state;
        assert_fields(sf_config_action(cfg, "o"), "number,status");
        sf_config_destroy(cfg);
}

/* In response and error handling, a name that read syncfleet's reply
 * before its names moved under '@' is an error naming what to write; the
 * same names elsewhere, and columns the file names, are columns. */
static void test_old_reply_names(void **state)
{
        (void)state;
        expect_errors(
            "version: 1\n"
            "name: o\n"
            "tables:\n"
            "  customers: { key: [id] }\n"
            "connectors:\n"
            "  crm: { type: http, base_url: \"http://localhost:1\" }\n"
            "  f: { type: file, dir: /tmp }\n"
            "messages:\n"
            "  m:\n"
            "    trigger: { table: customers }\n"
            "    target: { connector: f }\n"
            "    mapping: { a: \"{{@response.x}}\", b: \"{{@error.y}}\", "
            "c: \"{{response.x}} {{status}} {{error}} {{record.id}}\" }\n"
            "web_service_actions:\n"
            "  w:\n"
            "    trigger: { table: customers }\n"
            "    request: { connector: crm, path: \"/c/{{status}}\" }\n"
            "    response:\n"
            "      target: { connector: crm, path: \"/r/{{status}}\" }\n"
            "      mapping:\n"
            "        limit: \"{{response.limit}}\"\n"
            "        code: \"{{ status | number }}\"\n"
            "        etag: \"{{headers.ETag}}\"\n"
            "        id: \"{{record.id}}\"\n"
            "        all: \"{{record}}\"\n"
            "        items: { each: response.items, map: { x: \"{{x}}\" } }\n"
            "        fine: \"{{error}} {{event}} {{@status}} "
            "{{@after.status}}\"\n"
            "    error:\n"
            "      target: { connector: f }\n"
            "      mapping:\n"
            "        why: \"{{error.message}}\"\n"
            "        code: \"{{@status}}\"\n"
            "        late: \"{{@response.limit}}\"\n"
            "        fine: \"{{status}} {{response}} {{@error.status}}\"\n",
            "p.yaml:12:20: {{@response.x}} in messages.m.mapping.a: @response "
            "is set only in a web service action's response handling\n"
            "p.yaml:12:42: {{@error.y}} in messages.m.mapping.b: @error is "
            "set only in a web service action's error handling\n"
            "p.yaml:18:43: {{status}} in "
            "web_service_actions.w.response.target.path reads a column named "
            "status, not syncfleet's reply; write {{@status}}\n"
            "p.yaml:20:17: {{response.limit}} in "
            "web_service_actions.w.response.mapping.limit reads a column "
            "named response, not syncfleet's reply; write "
            "{{@response.limit}}\n"
            "p.yaml:21:16: {{status}} in "
            "web_service_actions.w.response.mapping.code reads a column named "
            "status, not syncfleet's reply; write {{@status}}\n"
            "p.yaml:22:16: {{headers.ETag}} in "
            "web_service_actions.w.response.mapping.etag reads a column named "
            "headers, not syncfleet's reply; write {{@headers.ETag}}\n"
            "p.yaml:23:14: {{record.id}} in "
            "web_service_actions.w.response.mapping.id reads a column named "
            "record; the record's fields are read by their own names: write "
            "{{id}}\n"
            "p.yaml:24:15: {{record}} in "
            "web_service_actions.w.response.mapping.all reads a column named "
            "record; the whole record is {{@after}} (or {{@before}} for a "
            "delete): write {{@after}}\n"
            "p.yaml:25:24: {{response.items}} in "
            "web_service_actions.w.response.mapping.items.each reads a column "
            "named response, not syncfleet's reply; write "
            "{{@response.items}}\n"
            "p.yaml:30:15: {{error.message}} in "
            "web_service_actions.w.error.mapping.why reads a column named "
            "error, not syncfleet's failure; write {{@error.message}}\n"
            "p.yaml:31:16: {{@status}} in "
            "web_service_actions.w.error.mapping.code: @status is the HTTP "
            "status of a 2xx reply; in error handling write "
            "{{@error.status}}\n"
            "p.yaml:32:16: {{@response.limit}} in "
            "web_service_actions.w.error.mapping.late: @response is set only "
            "in a web service action's response handling\n");
}

/* A column the pipeline names for the trigger table is a column even in
 * response handling: here the key column status. */
static void test_old_reply_name_that_is_a_key_column(void **state)
{
        sf_config_t *cfg = load_ok(
            "version: 1\n"
            "name: k\n"
            "tables:\n"
            "  tickets: { key: [id, status] }\n"
            "connectors:\n"
            "  crm: { type: http, base_url: \"http://localhost:1\" }\n"
            "web_service_actions:\n"
            "  w:\n"
            "    trigger: { table: tickets }\n"
            "    request: { connector: crm }\n"
            "    response:\n"
            "      target: { connector: crm }\n"
            "      mapping: { s: \"{{status}}\", code: \"{{@status}}\" }\n");

        (void)state;
        assert_fields(sf_config_action(cfg, "w"), "status");
        sf_config_destroy(cfg);
}

/* An unknown @name does not compile: syncfleet's names are a closed set. */
static void test_unknown_at_name(void **state)
{
        (void)state;
        expect_errors(
            "version: 1\n"
            "name: a\n"
            "tables:\n"
            "  customers: { key: [id] }\n"
            "connectors: { f: { type: file, dir: /tmp } }\n"
            "messages:\n"
            "  m:\n"
            "    trigger: { table: customers }\n"
            "    target: { connector: f }\n"
            "    mapping: { a: \"x {{@evnt}}\", b: { each: \"@item\", map: "
            "{} } }\n",
            "p.yaml:10:24: invalid template in messages.m.mapping.a: unknown "
            "name '@evnt' (syncfleet's names: @op, @event, @table, @key, "
            "@before, @after, @event_id, @response, @status, @headers, "
            "@error)\n"
            "p.yaml:10:45: expected a field path (like lines or order.lines) "
            "for messages.m.mapping.b.each, got \"@item\"\n");
}

static void test_captured_events(void **state)
{
        sf_config_t *cfg = load_ok(
            "version: 1\n"
            "name: c\n"
            "tables:\n"
            "  orders: { key: [id] }\n"
            "  lines: { key: [id], parent: { table: orders, key: { id: "
            "order_id } } }\n"
            "  notes: { key: [id], parent: { table: lines, key: { id: line_id "
            "} } }\n"
            "  other: { key: [id] }\n"
            "connectors: { f: { type: file, dir: /tmp } }\n"
            "messages:\n"
            "  a: { trigger: { table: orders, events: [insert] }, target: { "
            "connector: f }, mapping: {} }\n"
            "  b: { trigger: { table: orders, events: [update], redirect: "
            "false }, target: { connector: f }, mapping: {} }\n"
            "  d: { trigger: { table: lines, events: [delete] }, target: { "
            "connector: f }, mapping: {} }\n");
        const sf_table_cfg_t *notes = sf_config_table(cfg, "notes");

        (void)state;
        assert_ptr_equal(sf_config_root_table(notes),
                         sf_config_table(cfg, "orders"));
        assert_int_equal(
            sf_config_captured_events(cfg, sf_config_table(cfg, "orders")),
            SF_EV_INSERT | SF_EV_UPDATE);
        assert_int_equal(
            sf_config_captured_events(cfg, sf_config_table(cfg, "lines")),
            SF_EV_DELETE);
        assert_int_equal(sf_config_captured_events(cfg, notes), 0);
        assert_int_equal(
            sf_config_captured_events(cfg, sf_config_table(cfg, "other")), 0);
        sf_config_destroy(cfg);

        cfg = load_ok("version: 1\n"
                      "name: c\n"
                      "tables:\n"
                      "  orders: { key: [id] }\n"
                      "  lines: { key: [id], parent: { table: orders, key: { "
                      "id: order_id } } }\n"
                      "  notes: { key: [id], parent: { table: lines, key: { "
                      "id: line_id } } }\n"
                      "connectors: { f: { type: file, dir: /tmp } }\n"
                      "messages:\n"
                      "  a: { trigger: { table: orders, events: [update] }, "
                      "target: { connector: f }, mapping: {} }\n");
        notes = sf_config_table(cfg, "notes");
        assert_int_equal(sf_config_captured_events(cfg, notes),
                         SF_EV_INSERT | SF_EV_UPDATE | SF_EV_DELETE);
        assert_int_equal(
            sf_config_captured_events(cfg, sf_config_table(cfg, "lines")),
            SF_EV_INSERT | SF_EV_UPDATE | SF_EV_DELETE);
        sf_config_destroy(cfg);
}

static void test_unreadable_file(void **state)
{
        char *err = sf_strdup("earlier\n");

        (void)state;
        assert_null(sf_config_load("/nonexistent/p.yaml", &err));
        assert_string_equal(err, "earlier\n/nonexistent/p.yaml: No such file "
                                 "or directory\n");
        free(err);
}

/* One file, many mistakes: every one is reported, sorted by position. */
/* What `syncfleet run` would refuse is refused at load, at the value's
 * place, and no message quotes a secret from the environment. */
static void test_refused_like_run(void **state)
{
        (void)state;
        setenv("SF_T_NL_TOKEN", "tok-5ecret\nline", 1);
        setenv("SF_T_CR_HEADER", "key-5ecret\r\nX: 1", 1);
        setenv("SF_T_PW", "pw-5ecret", 1);
        expect_errors(
            "version: 1\n"
            "name: r\n"
            "kafka:\n"
            "  partitions: 1000000\n"
            "  config: { queue.buffering.max.kbytes: \"0\" }\n"
            "source: { type: postgres, dsn: "
            "\"host=db password=${SF_T_PW} port\" }\n"
            "connectors:\n"
            "  h:\n"
            "    type: http\n"
            "    base_url: https://h.example\n"
            "    timeout_ms: ${SF_T_PW}\n"
            "    headers: { X-Key: \"${SF_T_CR_HEADER}\", \"Bad Name\": x }\n"
            "    auth: { type: bearer, token: \"${SF_T_NL_TOKEN}\" }\n"
            "    ca_file: /nonexistent/ca.pem\n",
            "p.yaml:4:15: expected at most 100000 for kafka.partitions (the "
            "most partitions a topic can have: Kafka's clients refuse more), "
            "got 1000000\n"
            "p.yaml:5:41: kafka.config.queue.buffering.max.kbytes: librdkafka "
            "refuses it: Configuration property \"queue.buffering.max.kbytes\" "
            "value 0 is outside allowed range 1..2147483647\n"
            "p.yaml:6:32: source.dsn is not a PostgreSQL connection string "
            "libpq can read: missing \"=\" after \"port\" in connection info "
            "string\n"
            "p.yaml:11:17: expected a number for connectors.h.timeout_ms, got "
            "the value of ${SF_T_PW}\n"
            "p.yaml:12:23: connectors.h.headers.X-Key holds a control "
            "character (byte 0x0d at offset 10), which cannot go into an HTTP "
            "header\n"
            "p.yaml:12:44: connectors.h.headers: 'Bad Name' is not a header "
            "name (letters, digits and !#$%&'*+-.^_`|~)\n"
            "p.yaml:13:34: connectors.h.auth.token holds a control character "
            "(byte 0x0a at offset 10), which cannot go into an HTTP header; a "
            "trailing newline of a secret file is dropped, any other is part "
            "of the value\n"
            "p.yaml:14:14: cannot read connectors.h.ca_file "
            "/nonexistent/ca.pem: No such file or directory\n");
}

/* What loads but is loud: cfg->warnings, in the order found. */
static void test_warnings(void **state)
{
        sf_config_t *cfg;

        (void)state;
        setenv("SF_T_PW", "pw-5ecret", 1);
        cfg = load_ok(
            "version: 1\n"
            "name: w\n"
            "source: { type: sqlite, path: ./erp.db }\n"
            "tables:\n"
            "  customers: { key: [id] }\n"
            "connectors:\n"
            "  a: { type: http, base_url: \"http://bob:${SF_T_PW}@h.example\" "
            "}\n"
            "  b: { type: http, base_url: \"http://localhost:1\", tls_verify: "
            "false }\n"
            "  c: { type: http, base_url: \"http://[::1]:1\", auth: { type: "
            "bearer, token: \"${SF_T_PW}\" } }\n"
            "  d: { type: http, base_url: \"https://h.example\", ca_file: "
            "" SF_SOURCE_DIR "/LICENSE }\n"
            "  erp: { type: database }\n"
            "web_service_actions:\n"
            "  w:\n"
            "    trigger: { table: customers }\n"
            "    request: { connector: d }\n"
            "    response:\n"
            "      target: { connector: erp, table: customers, operation: "
            "update, key: [id] }\n"
            "      mapping: { id: '{{id}}', all: '{{@response}}' }\n");
        assert_non_null(cfg->warnings);
        assert_string_equal(
            cfg->warnings,
            "p.yaml:7:30: warning: connectors.a.base_url is http://: the "
            "credentials in the URL travel in clear text to another machine "
            "with every request; use https://\n"
            "p.yaml:8:64: warning: connectors.b.tls_verify is false: syncfleet "
            "does not check who answers, so anyone on the way can read and "
            "change the requests; give the private CA as ca_file instead\n");
        assert_string_equal(sf_config_connector(cfg, "d")->ca_file,
                            SF_SOURCE_DIR "/LICENSE");
        sf_config_destroy(cfg);
}

static void test_many_errors(void **state)
{
        (void)state;
        unsetenv("SF_T_UNSET");
        expect_errors(
            "version: 2\n"
            "name: x\n"
            "kafak: {}\n"
            "kafka:\n"
            "  partitions: six\n"
            "  topic_prefix: \"a b\"\n"
            "source:\n"
            "  type: mysql\n"
            "tables:\n"
            "  customers:\n"
            "    key: [id]\n"
            "  customers:\n"
            "    key: [id]\n"
            "connectors:\n"
            "  shop:\n"
            "    type: http\n"
            "    base_url: ${SF_T_UNSET}\n"
            "    dir: /tmp\n"
            "    retry: { max_attempts: 0, initial_backoff_ms: 500, "
            "max_backoff_ms: 100 }\n"
            "messages:\n"
            "  m1:\n"
            "    trigger: { table: custmers, events: [insert, upsert] }\n"
            "    target:\n"
            "      conector: shop\n"
            "    mapping: { a: \"{{id\" }\n",
            "p.yaml:1:10: expected 1 for version, got 2\n"
            "p.yaml:3:1: unknown key 'kafak' at the top level (did you mean "
            "'kafka'?)\n"
            "p.yaml:5:15: expected a number for kafka.partitions, got \"six\"\n"
            "p.yaml:6:17: expected a topic prefix of letters, digits, '.', '_' "
            "and '-' for kafka.topic_prefix, got \"a b\"\n"
            "p.yaml:8:9: expected one of sqlite, postgres for source.type, got "
            "\"mysql\"\n"
            "p.yaml:12:3: duplicate key 'customers' (first defined at 10:3)\n"
            "p.yaml:17:15: environment variable SF_T_UNSET is not set\n"
            "p.yaml:18:5: unknown key 'dir' in connectors.shop (not valid for "
            "an http connector)\n"
            "p.yaml:19:28: expected a number >= 1 for "
            "connectors.shop.retry.max_attempts, got 0\n"
            "p.yaml:19:72: expected a number >= 500 for "
            "connectors.shop.retry.max_backoff_ms, got 100\n"
            "p.yaml:22:23: unknown table 'custmers' in "
            "messages.m1.trigger.table (did you mean 'customers'?)\n"
            "p.yaml:22:50: expected one of insert, update, delete for "
            "messages.m1.trigger.events[1], got \"upsert\"\n"
            "p.yaml:24:7: unknown key 'conector' in messages.m1.target (did "
            "you mean 'connector'?)\n"
            "p.yaml:24:7: missing required key 'connector' in "
            "messages.m1.target\n"
            "p.yaml:25:20: invalid template in messages.m1.mapping.a: "
            "unterminated '{{': no closing '}}'\n");
}

/*
 * Bad configurations: tests/data/config/bad/NAME.yaml is loaded as
 * "NAME.yaml" and must give exactly the lines of NAME.err.
 */
static const char *const bad_cases[] = {
    "syntax_error",
    "tab_indent",
    "empty_file",
    "top_level_sequence",
    "second_document",
    "unknown_top_key",
    "unknown_key_no_hint",
    "version",
    "missing_top_keys",
    "partitions_text",
    "partitions_zero",
    "partitions_fraction",
    "min_insync_zero",
    "min_insync_above_replication",
    "source_type",
    "source_key_of_other_type",
    "duplicate_table",
    "table_without_key",
    "bad_column_name",
    "bad_table_name",
    "parent_dangling",
    "parent_cycle",
    "trigger_table_dangling",
    "unknown_key_did_you_mean",
    "connector_dangling",
    "request_needs_http",
    "key_of_other_connector_type",
    "records_table_dangling",
    "records_need_query_mode",
    "template_unknown_filter",
    "template_plain_scalar",
    "action_name_clash",
    "literal_secret",
    "secret_twice",
    "secret_missing",
    "auth_key_of_other_type",
    "env_unset",
    "env_unterminated",
    "timeout_zero",
    "max_attempts_zero",
    "event_enum",
    "bool_value",
    "on_delete_scalar",
    "method_enum",
    "mapping_duplicate_field",
    "missing_mapping",
    "each_path",
    "kafka_target_without_topic",
    "database_target_needs_key",
    "query_mode_without_source",
    "database_without_source",
};

static char *read_data(const char *name, const char *ext)
{
        char *path =
            sf_asprintf("%s/config/bad/%s.%s", SF_TEST_DATA, name, ext);
        FILE *f = fopen(path, "rb");
        char *text = NULL;
        size_t cap = 0;
        ssize_t n;

        if (!f)
                fail_msg("cannot open %s", path);
        n = getdelim(&text, &cap, '\0', f);
        fclose(f);
        free(path);
        if (n < 0) {
                free(text);
                text = sf_strdup("");
        }
        return text;
}

static void run_bad_case(void **state)
{
        const char *name = *state;
        char *yaml = read_data(name, "yaml");
        char *expect = read_data(name, "err");
        char *file = sf_asprintf("%s.yaml", name);
        char *err = NULL;
        sf_config_t *cfg;

        setenv("SF_TEST_TOKEN", "from-env", 1);
        unsetenv("SF_TEST_UNSET_URL");
        cfg = sf_config_load_string(file, yaml, &err);
        if (cfg)
                fail_msg("%s loaded without errors", name);
        assert_non_null(err);
        assert_string_equal(err, expect);
        free(err);
        free(file);
        free(yaml);
        free(expect);
}

int main(void)
{
        static const struct CMUnitTest fixed[] = {
            cmocka_unit_test(test_reference_example),
            cmocka_unit_test(test_webshop_example),
            cmocka_unit_test(test_defaults),
            cmocka_unit_test(test_env_substitution),
            cmocka_unit_test(test_secret_from_file),
            cmocka_unit_test(test_kafka_config_secrets),
            cmocka_unit_test(test_used_fields_and_mapping),
            cmocka_unit_test(test_used_fields_of_query),
            cmocka_unit_test(test_old_reply_names),
            cmocka_unit_test(test_old_reply_name_that_is_a_key_column),
            cmocka_unit_test(test_unknown_at_name),
            cmocka_unit_test(test_captured_events),
            cmocka_unit_test(test_unreadable_file),
            cmocka_unit_test(test_many_errors),
            cmocka_unit_test(test_refused_like_run),
            cmocka_unit_test(test_warnings),
        };
        size_t nfixed = sizeof(fixed) / sizeof(fixed[0]);
        size_t nbad = sizeof(bad_cases) / sizeof(bad_cases[0]);
        size_t n = nfixed + nbad;
        struct CMUnitTest *tests = sf_calloc(n, sizeof(*tests));
        int rc;

        memcpy(tests, fixed, sizeof(fixed));
        for (size_t i = 0; i < nbad; i++) {
                tests[nfixed + i].name = bad_cases[i];
                tests[nfixed + i].test_func = run_bad_case;
                tests[nfixed + i].initial_state = (void *)bad_cases[i];
        }
        rc = _cmocka_run_group_tests("config", tests, n, NULL, NULL);
        free(tests);
        return rc;
}
