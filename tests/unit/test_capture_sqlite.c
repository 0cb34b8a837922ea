/*
 * Unit tests for producers/capture_sqlite.c: triggers installed for exactly
 * the subscribed table events, the log rows they write, poll/ack/rewind,
 * re-install after the pipeline changed, uninstall, and error texts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "capture.h"
#include "envelope.h"
#include "sf.h"

/* --- A hand-built pipeline ---------------------------------------------- */

static char *id_key[] = {"id"};
static char *sku_key[] = {"sku"};
static char *parent_cols[] = {"id"};
static char *child_cols[] = {"order_id"};

typedef struct fixture {
        char dir[64];
        char path[128];
        sf_table_cfg_t tables[5];
        sf_action_cfg_t actions[3];
        sf_config_t cfg;
        sqlite3 *app; /* the application's own connection */
} fixture_t;

static void app_exec(fixture_t *f, const char *sql)
{
        char *msg = NULL;

        if (sqlite3_exec(f->app, sql, NULL, NULL, &msg) != SQLITE_OK)
                fail_msg("%s: %s", sql, msg);
}

static int64_t app_int(fixture_t *f, const char *sql)
{
        sqlite3_stmt *st;
        int64_t v = -1;

        assert_int_equal(sqlite3_prepare_v2(f->app, sql, -1, &st, NULL),
                         SQLITE_OK);
        if (sqlite3_step(st) == SQLITE_ROW)
                v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        return v;
}

/* Rows of SQL's first column joined with ",". */
static char *app_list(fixture_t *f, const char *sql)
{
        sqlite3_stmt *st;
        sf_buf_t b;

        sf_buf_init(&b, 0);
        assert_int_equal(sqlite3_prepare_v2(f->app, sql, -1, &st, NULL),
                         SQLITE_OK);
        while (sqlite3_step(st) == SQLITE_ROW) {
                const char *s = (const char *)sqlite3_column_text(st, 0);

                if (b.len)
                        sf_buf_append(&b, ",", 1);
                sf_buf_append(&b, s ? s : "NULL", strlen(s ? s : "NULL"));
        }
        sqlite3_finalize(st);
        return b.len ? sf_buf_steal(&b) : sf_strdup("");
}

static void set_action(sf_action_cfg_t *a, const char *name,
                       sf_action_kind_t kind, sf_table_cfg_t *t,
                       unsigned events)
{
        memset(a, 0, sizeof(*a));
        a->name = (char *)name;
        a->kind = kind;
        a->trigger.table = t->name;
        a->trigger.table_ref = t;
        a->trigger.events = events;
        a->trigger.check_used_fields = 1;
        a->trigger.redirect = 1;
}

static int setup(void **state)
{
        fixture_t *f = sf_calloc(1, sizeof(*f));
        sf_table_cfg_t *t = f->tables;

        strcpy(f->dir, "/tmp/sf-capture-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->path, sizeof(f->path), "%s/erp.db", f->dir);
        assert_int_equal(sqlite3_open(f->path, &f->app), SQLITE_OK);
        sqlite3_busy_timeout(f->app, 5000);
        app_exec(f, "CREATE TABLE customers(id INTEGER PRIMARY KEY, "
                    "name TEXT, score REAL, note TEXT, photo BLOB);"
                    "CREATE TABLE sales_orders(id INTEGER PRIMARY KEY, "
                    "customer_id INTEGER);"
                    "CREATE TABLE sales_lines(id INTEGER PRIMARY KEY, "
                    "order_id INTEGER, qty INTEGER);"
                    "CREATE TABLE items(sku TEXT PRIMARY KEY, title TEXT);"
                    "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);");

        t[0] =
            (sf_table_cfg_t){.name = "customers", .key = id_key, .key_cnt = 1};
        t[1] = (sf_table_cfg_t){
            .name = "sales_orders", .key = id_key, .key_cnt = 1};
        t[2] = (sf_table_cfg_t){.name = "sales_lines",
                                .key = id_key,
                                .key_cnt = 1,
                                .parent_name = "sales_orders",
                                .parent = &t[1],
                                .parent_cols = parent_cols,
                                .child_cols = child_cols,
                                .parent_key_cnt = 1};
        t[3] = (sf_table_cfg_t){.name = "items", .key = sku_key, .key_cnt = 1};
        t[4] = (sf_table_cfg_t){.name = "notes", .key = id_key, .key_cnt = 1};
        set_action(&f->actions[0], "customer-to-webshop", SF_KIND_MESSAGE,
                   &t[0], SF_EV_INSERT | SF_EV_UPDATE | SF_EV_DELETE);
        set_action(&f->actions[1], "order-to-archive", SF_KIND_MESSAGE, &t[1],
                   SF_EV_UPDATE);
        set_action(&f->actions[2], "item-check", SF_KIND_WEBSERVICE, &t[3],
                   SF_EV_INSERT);
        f->cfg.version = 1;
        f->cfg.name = "test";
        f->cfg.source.type = SF_SOURCE_SQLITE;
        f->cfg.source.path = f->path;
        f->cfg.source.poll_interval_ms = 100;
        f->cfg.source.batch_size = 1000;
        f->cfg.tables = f->tables;
        f->cfg.table_cnt = 5;
        f->cfg.actions = f->actions;
        f->cfg.action_cnt = 3;
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        fixture_t *f = *state;
        char *cmd;

        sqlite3_close(f->app);
        cmd = sf_asprintf("rm -rf '%s'", f->dir);
        assert_int_equal(system(cmd), 0);
        free(cmd);
        free(f);
        return 0;
}

static sf_capture_t *open_installed(fixture_t *f)
{
        char err[512] = "";
        sf_capture_t *c = sf_capture_open(&f->cfg, err, sizeof(err));

        if (!c)
                fail_msg("open: %s", err);
        if (sf_capture_install(c, err, sizeof(err)))
                fail_msg("install: %s", err);
        return c;
}

static char *canon(const cJSON *v)
{
        return v ? sf_json_canonical(v) : sf_strdup("NULL");
}

static void assert_json(const cJSON *v, const char *want)
{
        char *s = canon(v);

        assert_string_equal(s, want);
        free(s);
}

static int poll_all(sf_capture_t *c, sf_change_t *out, int max)
{
        char err[512] = "";
        int n = sf_capture_poll(c, out, max, err, sizeof(err));

        if (n < 0)
                fail_msg("poll: %s", err);
        return n;
}

static void clear_changes(sf_change_t *v, int n)
{
        for (int i = 0; i < n; i++)
                sf_change_clear(&v[i]);
}

#define TRIGGERS_SQL                                                           \
        "SELECT name FROM sqlite_master WHERE type='trigger' ORDER BY name"

/* --- Tests -------------------------------------------------------------- */

static void test_install_subscribed_pairs(void **state)
{
        fixture_t *f = *state;
        sf_capture_t *c = open_installed(f);
        char *names = app_list(f, TRIGGERS_SQL);

        /* customers: all three; sales_orders: update; sales_lines: all
         * three (redirected to the order's update); items: insert; notes:
         * nothing */
        assert_string_equal(names, "_syncfleet_customers_delete,"
                                   "_syncfleet_customers_insert,"
                                   "_syncfleet_customers_update,"
                                   "_syncfleet_items_insert,"
                                   "_syncfleet_sales_lines_delete,"
                                   "_syncfleet_sales_lines_insert,"
                                   "_syncfleet_sales_lines_update,"
                                   "_syncfleet_sales_orders_update");
        free(names);
        names = app_list(f, "SELECT name FROM sqlite_master WHERE "
                            "type='table' AND name LIKE '\\_syncfleet%' "
                            "ESCAPE '\\' ORDER BY name");
        assert_string_equal(names, "_syncfleet_log,_syncfleet_meta,"
                                   "_syncfleet_writeback");
        free(names);
        names = app_list(f, "PRAGMA journal_mode");
        assert_string_equal(names, "wal");
        free(names);
        assert_int_equal(app_int(f, "SELECT length(value) FROM _syncfleet_meta "
                                    "WHERE name='dbid'"),
                         16);

        /* a second install changes nothing: same rows of sqlite_master */
        names = app_list(f, "SELECT rowid||name FROM sqlite_master WHERE "
                            "type='trigger' ORDER BY name");
        {
                char err[512] = "";
                char *again;

                assert_int_equal(sf_capture_install(c, err, sizeof(err)), 0);
                again = app_list(f, "SELECT rowid||name FROM sqlite_master "
                                    "WHERE type='trigger' ORDER BY name");
                assert_string_equal(again, names);
                free(again);
        }
        free(names);
        sf_capture_close(c);
}

static void test_insert_update_delete(void **state)
{
        fixture_t *f = *state;
        sf_capture_t *c = open_installed(f);
        char *dbid = app_list(f, "SELECT value FROM _syncfleet_meta");
        sf_change_t ch[8];
        int64_t t0 = sf_now_ms();
        char *id;
        int n;

        app_exec(f, "INSERT INTO customers VALUES(42, 'Ann', 2.5, NULL, "
                    "x'CAFE00');"
                    "UPDATE customers SET name='Anne', score=3 WHERE id=42;"
                    "DELETE FROM customers WHERE id=42;"
                    "INSERT INTO notes VALUES(1, 'not captured');"
                    "INSERT INTO items VALUES('A''1', 'quote');"
                    "UPDATE items SET title='not captured';");
        n = poll_all(c, ch, 8);
        assert_int_equal(n, 4);

        assert_int_equal(ch[0].op, SF_OP_CREATE);
        assert_string_equal(ch[0].connector, "sqlite");
        assert_string_equal(ch[0].db, "erp.db");
        assert_null(ch[0].schema);
        assert_null(ch[0].lsn);
        assert_true(ch[0].txid == -1);
        assert_string_equal(ch[0].table, "customers");
        assert_true(ch[0].seq == 1);
        assert_true(ch[0].ts_ms >= t0 - 1000 &&
                    ch[0].ts_ms <= sf_now_ms() + 1000);
        assert_json(ch[0].key, "{\"id\":42}");
        assert_null(ch[0].before);
        assert_json(ch[0].after, "{\"id\":42,\"name\":\"Ann\",\"note\":null,"
                                 "\"photo\":\"CAFE00\",\"score\":2.5}");
        id = sf_asprintf("sqlite:%s:1", dbid);
        assert_string_equal(ch[0].event_id, id);
        free(id);

        assert_int_equal(ch[1].op, SF_OP_UPDATE);
        assert_true(ch[1].seq == 2);
        assert_json(ch[1].key, "{\"id\":42}");
        assert_json(ch[1].before, "{\"id\":42,\"name\":\"Ann\",\"note\":null,"
                                  "\"photo\":\"CAFE00\",\"score\":2.5}");
        /* REAL affinity: 3 is stored and captured as 3.0 */
        assert_json(ch[1].after, "{\"id\":42,\"name\":\"Anne\",\"note\":null,"
                                 "\"photo\":\"CAFE00\",\"score\":3}");
        assert_true(cJSON_IsNumber(cJSON_GetObjectItem(ch[1].after, "score")));

        assert_int_equal(ch[2].op, SF_OP_DELETE);
        assert_json(ch[2].key, "{\"id\":42}");
        assert_json(ch[2].before, "{\"id\":42,\"name\":\"Anne\",\"note\":null,"
                                  "\"photo\":\"CAFE00\",\"score\":3}");
        assert_null(ch[2].after);

        assert_int_equal(ch[3].op, SF_OP_CREATE);
        assert_string_equal(ch[3].table, "items");
        assert_json(ch[3].key, "{\"sku\":\"A'1\"}");
        assert_json(ch[3].after, "{\"sku\":\"A'1\",\"title\":\"quote\"}");
        clear_changes(ch, n);

        /* nothing more: handed-out rows are not read again */
        assert_int_equal(poll_all(c, ch, 8), 0);
        free(dbid);
        sf_capture_close(c);
}

static void test_value_types(void **state)
{
        fixture_t *f = *state;
        sf_capture_t *c = open_installed(f);
        sf_change_t ch[1];
        const cJSON *a;

        /* a BLOB-affinity column keeps whatever type it is given */
        app_exec(f, "INSERT INTO customers VALUES(7, 'x\"y\n', -0.125, NULL, "
                    "12)");
        assert_int_equal(poll_all(c, ch, 1), 1);
        a = ch[0].after;
        assert_true(cJSON_IsNumber(cJSON_GetObjectItem(a, "id")));
        assert_true(cJSON_GetObjectItem(a, "id")->valuedouble == 7);
        assert_string_equal(cJSON_GetObjectItem(a, "name")->valuestring,
                            "x\"y\n");
        assert_true(cJSON_IsNumber(cJSON_GetObjectItem(a, "score")));
        assert_true(cJSON_GetObjectItem(a, "score")->valuedouble == -0.125);
        assert_true(cJSON_IsNull(cJSON_GetObjectItem(a, "note")));
        assert_true(cJSON_IsNumber(cJSON_GetObjectItem(a, "photo")));
        assert_true(cJSON_GetObjectItem(a, "photo")->valuedouble == 12);
        clear_changes(ch, 1);
        sf_capture_close(c);
}

static void test_ack_rewind_restart(void **state)
{
        fixture_t *f = *state;
        sf_capture_t *c = open_installed(f);
        sf_change_t ch[8];
        char err[512] = "";

        for (int i = 1; i <= 5; i++) {
                char *sql = sf_asprintf(
                    "INSERT INTO customers(id, name) VALUES(%d, 'c%d')", i, i);

                app_exec(f, sql);
                free(sql);
        }
        assert_int_equal(poll_all(c, ch, 2), 2);
        assert_true(ch[0].seq == 1 && ch[1].seq == 2);
        clear_changes(ch, 2);
        assert_int_equal(poll_all(c, ch, 2), 2);
        assert_true(ch[0].seq == 3 && ch[1].seq == 4);
        clear_changes(ch, 2);

        /* ack deletes exactly the delivered rows */
        assert_int_equal(sf_capture_ack(c, 2, err, sizeof(err)), 0);
        assert_int_equal(app_int(f, "SELECT count(*) FROM _syncfleet_log"), 3);
        assert_int_equal(app_int(f, "SELECT min(seq) FROM _syncfleet_log"), 3);

        /* rewind hands out again everything after the last ack */
        assert_int_equal(sf_capture_rewind(c, err, sizeof(err)), 0);
        assert_int_equal(poll_all(c, ch, 8), 3);
        assert_true(ch[0].seq == 3 && ch[1].seq == 4 && ch[2].seq == 5);
        assert_json(ch[0].key, "{\"id\":3}");
        clear_changes(ch, 3);

        /* a new process starts at the first row still in the log */
        assert_int_equal(sf_capture_ack(c, 3, err, sizeof(err)), 0);
        sf_capture_close(c);
        c = open_installed(f);
        assert_int_equal(poll_all(c, ch, 8), 2);
        assert_true(ch[0].seq == 4 && ch[1].seq == 5);
        clear_changes(ch, 2);
        assert_int_equal(sf_capture_ack(c, 5, err, sizeof(err)), 0);
        assert_int_equal(app_int(f, "SELECT count(*) FROM _syncfleet_log"), 0);
        sf_capture_close(c);
}

static void test_batch_size(void **state)
{
        fixture_t *f = *state;
        sf_capture_t *c;
        sf_change_t ch[8];

        f->cfg.source.batch_size = 3;
        c = open_installed(f);
        app_exec(f, "INSERT INTO items VALUES('a','1'),('b','2'),('c','3'),"
                    "('d','4')");
        assert_int_equal(poll_all(c, ch, 8), 3);
        clear_changes(ch, 3);
        assert_int_equal(poll_all(c, ch, 8), 1);
        assert_json(ch[0].key, "{\"sku\":\"d\"}");
        clear_changes(ch, 1);
        sf_capture_close(c);
}

static void test_reinstall_after_change(void **state)
{
        fixture_t *f = *state;
        sf_capture_t *c = open_installed(f);
        char err[512] = "";
        char *names, *sql;
        int64_t upd_rowid = app_int(f, "SELECT rowid FROM sqlite_master WHERE "
                                       "name='_syncfleet_customers_update'");

        /* the pipeline no longer wants customer deletes; items got a
         * column; a trigger was edited by hand */
        f->actions[0].trigger.events = SF_EV_INSERT | SF_EV_UPDATE;
        app_exec(f, "ALTER TABLE items ADD COLUMN price REAL;"
                    "DROP TRIGGER _syncfleet_sales_orders_update;"
                    "CREATE TRIGGER _syncfleet_sales_orders_update AFTER "
                    "UPDATE ON sales_orders BEGIN SELECT 1; END;");
        assert_int_equal(sf_capture_install(c, err, sizeof(err)), 0);
        names = app_list(f, TRIGGERS_SQL);
        assert_string_equal(names, "_syncfleet_customers_insert,"
                                   "_syncfleet_customers_update,"
                                   "_syncfleet_items_insert,"
                                   "_syncfleet_sales_lines_delete,"
                                   "_syncfleet_sales_lines_insert,"
                                   "_syncfleet_sales_lines_update,"
                                   "_syncfleet_sales_orders_update");
        free(names);
        /* an unchanged trigger was kept as it was */
        assert_true(app_int(f,
                            "SELECT rowid FROM sqlite_master WHERE "
                            "name='_syncfleet_customers_update'") == upd_rowid);
        sql = app_list(f, "SELECT sql FROM sqlite_master WHERE "
                          "name='_syncfleet_sales_orders_update'");
        assert_null(strstr(sql, "BEGIN SELECT 1;"));
        assert_non_null(strstr(sql, "_syncfleet_log"));
        free(sql);

        /* the new column is captured, deletes of customers are not */
        app_exec(f, "INSERT INTO items VALUES('p', 'priced', 9.5);"
                    "INSERT INTO customers(id) VALUES(1);"
                    "DELETE FROM customers;");
        {
                sf_change_t ch[4];

                assert_int_equal(poll_all(c, ch, 4), 2);
                assert_json(ch[0].after, "{\"price\":9.5,\"sku\":\"p\","
                                         "\"title\":\"priced\"}");
                assert_string_equal(ch[1].table, "customers");
                assert_int_equal(ch[1].op, SF_OP_CREATE);
                clear_changes(ch, 2);
        }
        sf_capture_close(c);
}

static void test_uninstall(void **state)
{
        fixture_t *f = *state;
        sf_capture_t *c = open_installed(f);
        char err[512] = "";
        char *left;
        sf_change_t ch[1];

        app_exec(f, "INSERT INTO customers(id) VALUES(1)");
        assert_int_equal(sf_capture_uninstall(c, err, sizeof(err)), 0);
        left = app_list(f, "SELECT name FROM sqlite_master WHERE "
                           "instr(name, '_syncfleet') > 0");
        assert_string_equal(left, "");
        free(left);
        /* the application carries on without capture */
        app_exec(f, "INSERT INTO customers(id) VALUES(2)");
        assert_int_equal(sf_capture_poll(c, ch, 1, err, sizeof(err)), -1);
        left = sf_asprintf("change capture is not installed in %s", f->path);
        assert_string_equal(err, left);
        free(left);
        sf_capture_close(c);
}

static void test_missing_table(void **state)
{
        fixture_t *f = *state;
        char err[512] = "";
        char *want, *left;
        sf_capture_t *c;

        f->tables[4].name = "ghosts";
        c = sf_capture_open(&f->cfg, err, sizeof(err));
        assert_non_null(c);
        assert_int_equal(sf_capture_install(c, err, sizeof(err)), -1);
        want = sf_asprintf("table \"ghosts\" named in the pipeline does not "
                           "exist in %s",
                           f->path);
        assert_string_equal(err, want);
        free(want);
        /* nothing half-installed */
        left = app_list(f, "SELECT name FROM sqlite_master WHERE "
                           "instr(name, '_syncfleet') > 0");
        assert_string_equal(left, "");
        free(left);
        sf_capture_close(c);
}

static void test_missing_key_column(void **state)
{
        fixture_t *f = *state;
        char err[512] = "";
        char *want;
        sf_capture_t *c;

        f->tables[3].key = id_key;
        c = sf_capture_open(&f->cfg, err, sizeof(err));
        assert_int_equal(sf_capture_install(c, err, sizeof(err)), -1);
        want = sf_asprintf("table \"items\" in %s has no column \"id\" (a key "
                           "column in the pipeline)",
                           f->path);
        assert_string_equal(err, want);
        free(want);
        sf_capture_close(c);
}

static void test_open_errors(void **state)
{
        fixture_t *f = *state;
        char err[512] = "";
        char *want;

        f->cfg.source.path = "/nonexistent/dir/erp.db";
        assert_null(sf_capture_open(&f->cfg, err, sizeof(err)));
        assert_string_equal(err, "cannot open SQLite database "
                                 "/nonexistent/dir/erp.db: unable to open "
                                 "database file");
        f->cfg.source.type = SF_SOURCE_NONE;
        assert_null(sf_capture_open(&f->cfg, err, sizeof(err)));
        assert_string_equal(err, "the pipeline has no source section: there "
                                 "is nothing to capture");
        f->cfg.source.type = SF_SOURCE_SQLITE;
        f->cfg.source.path = f->path;
        /* polling before install */
        {
                sf_capture_t *c = sf_capture_open(&f->cfg, err, sizeof(err));
                sf_change_t ch[1];

                assert_int_equal(sf_capture_poll(c, ch, 1, err, sizeof(err)),
                                 -1);
                want = sf_asprintf("change capture is not installed in %s",
                                   f->path);
                assert_string_equal(err, want);
                free(want);
                sf_capture_close(c);
        }
        sf_capture_close(NULL);
}

/* A table wider than one json_object() call can take. */
static void test_wide_table(void **state)
{
        fixture_t *f = *state;
        sf_buf_t b;
        sf_capture_t *c;
        sf_change_t ch[1];
        int i;

        sf_buf_init(&b, 0);
        sf_buf_printf(&b, "DROP TABLE notes; CREATE TABLE notes(id INTEGER "
                          "PRIMARY KEY");
        for (i = 1; i < 140; i++)
                sf_buf_printf(&b, ", c%d INTEGER DEFAULT %d", i, i);
        sf_buf_printf(&b, ")");
        app_exec(f, b.data);
        sf_buf_free(&b);
        f->actions[2].trigger.table = "notes";
        f->actions[2].trigger.table_ref = &f->tables[4];
        c = open_installed(f);
        app_exec(f, "INSERT INTO notes(id, c139) VALUES(5, NULL)");
        assert_int_equal(poll_all(c, ch, 1), 1);
        assert_int_equal(cJSON_GetArraySize(ch[0].after), 140);
        assert_true(cJSON_GetObjectItem(ch[0].after, "c1")->valuedouble == 1);
        assert_true(cJSON_GetObjectItem(ch[0].after, "c70")->valuedouble == 70);
        assert_true(cJSON_IsNull(cJSON_GetObjectItem(ch[0].after, "c139")));
        assert_json(ch[0].key, "{\"id\":5}");
        clear_changes(ch, 1);
        sf_capture_close(c);
}

/* A transaction that marks itself in _syncfleet_writeback (as syncfleet's
 * own write-back does) is not captured; the application's writes around it
 * are. */
static void test_writeback_not_captured(void **state)
{
        fixture_t *f = *state;
        sf_capture_t *c = open_installed(f);
        sf_change_t ch[8];
        int n;

        app_exec(f, "INSERT INTO customers VALUES(1, 'Ann', 1, NULL, NULL);"
                    "BEGIN;"
                    "INSERT INTO _syncfleet_writeback VALUES('syncfleet');"
                    "UPDATE customers SET score=99 WHERE id=1;"
                    "DELETE FROM _syncfleet_writeback;"
                    "COMMIT;"
                    "UPDATE customers SET name='Anne' WHERE id=1;");
        n = poll_all(c, ch, 8);
        assert_int_equal(n, 2);
        assert_int_equal(ch[0].op, SF_OP_CREATE);
        assert_int_equal(ch[1].op, SF_OP_UPDATE);
        /* the application's update carries the written-back value */
        assert_json(ch[1].before, "{\"id\":1,\"name\":\"Ann\",\"note\":null,"
                                  "\"photo\":null,\"score\":99}");
        clear_changes(ch, n);
        sf_capture_close(c);
}

/* The same through the real pipeline loader: what gets installed follows
 * sf_config_captured_events, redirect included. */
static void test_loaded_pipeline(void **state)
{
        fixture_t *f = *state;
        char *yaml, *errors = NULL, *names;
        sf_config_t *cfg;
        sf_capture_t *c;
        char err[512] = "";

        yaml = sf_asprintf(
            "version: 1\n"
            "name: capture-test\n"
            "source: { type: sqlite, path: %s }\n"
            "tables:\n"
            "  customers: { key: [id] }\n"
            "  sales_orders: { key: [id] }\n"
            "  sales_lines:\n"
            "    key: [id]\n"
            "    parent: { table: sales_orders, key: { id: order_id } }\n"
            "connectors:\n"
            "  out: { type: file, dir: %s/out }\n"
            "messages:\n"
            "  customer-out:\n"
            "    trigger: { table: customers, events: [delete] }\n"
            "    target: { connector: out }\n"
            "    mapping: { id: \"{{id}}\" }\n"
            "  order-out:\n"
            "    trigger: { table: sales_orders, events: [insert, update] }\n"
            "    target: { connector: out }\n"
            "    mapping: { id: \"{{id}}\" }\n",
            f->path, f->dir);
        cfg = sf_config_load_string("capture-test.yaml", yaml, &errors);
        if (!cfg)
                fail_msg("%s", errors);
        c = sf_capture_open(cfg, err, sizeof(err));
        assert_non_null(c);
        assert_int_equal(sf_capture_install(c, err, sizeof(err)), 0);
        names = app_list(f, TRIGGERS_SQL);
        assert_string_equal(names, "_syncfleet_customers_delete,"
                                   "_syncfleet_sales_lines_delete,"
                                   "_syncfleet_sales_lines_insert,"
                                   "_syncfleet_sales_lines_update,"
                                   "_syncfleet_sales_orders_insert,"
                                   "_syncfleet_sales_orders_update");
        free(names);
        sf_capture_close(c);
        sf_config_destroy(cfg);
        free(yaml);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_install_subscribed_pairs,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_insert_update_delete, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_value_types, setup, teardown),
            cmocka_unit_test_setup_teardown(test_ack_rewind_restart, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_batch_size, setup, teardown),
            cmocka_unit_test_setup_teardown(test_reinstall_after_change, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_uninstall, setup, teardown),
            cmocka_unit_test_setup_teardown(test_missing_table, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_missing_key_column, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
            cmocka_unit_test_setup_teardown(test_wide_table, setup, teardown),
            cmocka_unit_test_setup_teardown(test_writeback_not_captured, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_loaded_pipeline, setup,
                                            teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
