/*
 * The pipeline file: loading (the top-level sections kafka, source,
 * tables and router live here; connectors and actions have their own
 * files), freeing, lookups and what change capture must install.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_internal.h"
#include "sf.h"

#define SF_CFG_FILE_MAX (16 * 1024 * 1024)

void sf_cfg_free_strs(char **v, size_t n)
{
        for (size_t i = 0; v && i < n; i++)
                free(v[i]);
        free(v);
}

void sf_cfg_free_kvs(sf_kv_t *v, size_t n)
{
        for (size_t i = 0; v && i < n; i++) {
                free(v[i].key);
                free(v[i].value);
        }
        free(v);
}

void sf_cfg_free_connector(sf_connector_cfg_t *k)
{
        free(k->name);
        free(k->base_url);
        sf_cfg_free_kvs(k->headers, k->header_cnt);
        free(k->username);
        free(k->password);
        free(k->token);
        free(k->token_url);
        free(k->ca_file);
        free(k->client_id);
        free(k->client_secret);
        free(k->scope);
        free(k->dir);
        free(k->topic);
}

static void cfg_free_target(sf_target_cfg_t *t)
{
        free(t->connector);
        free(t->method);
        sf_template_destroy(t->path);
        free(t->delete_method);
        sf_template_destroy(t->delete_path);
        free(t->table);
        free(t->operation);
        sf_cfg_free_strs(t->key, t->key_cnt);
        free(t->topic);
}

void sf_cfg_free_action(sf_action_cfg_t *a)
{
        free(a->name);
        free(a->trigger.table);
        for (size_t i = 0; i < a->source.records_cnt; i++) {
                sf_records_cfg_t *r = &a->source.records[i];

                free(r->name);
                free(r->table);
                sf_cfg_free_kvs(r->where, r->where_cnt);
        }
        free(a->source.records);
        cfg_free_target(&a->target);
        sf_mapping_destroy(a->mapping);
        cfg_free_target(&a->request);
        sf_mapping_destroy(a->request_body);
        cfg_free_target(&a->response_target);
        sf_mapping_destroy(a->response_mapping);
        cfg_free_target(&a->error_target);
        sf_mapping_destroy(a->error_mapping);
        sf_cfg_free_strs(a->used_fields, a->used_fields_cnt);
}

void sf_config_destroy(sf_config_t *cfg)
{
        if (!cfg)
                return;
        free(cfg->file);
        free(cfg->dir);
        free(cfg->name);
        free(cfg->state_dir);
        free(cfg->kafka.brokers);
        free(cfg->kafka.topic_prefix);
        free(cfg->kafka.instance_id);
        sf_cfg_free_kvs(cfg->kafka.config, cfg->kafka.config_cnt);
        free(cfg->source.path);
        free(cfg->source.dsn);
        free(cfg->source.slot);
        free(cfg->source.publication);
        for (size_t i = 0; i < cfg->table_cnt; i++) {
                sf_table_cfg_t *t = &cfg->tables[i];

                free(t->name);
                sf_cfg_free_strs(t->key, t->key_cnt);
                free(t->parent_name);
                sf_cfg_free_strs(t->parent_cols, t->parent_key_cnt);
                sf_cfg_free_strs(t->child_cols, t->parent_key_cnt);
        }
        free(cfg->tables);
        for (size_t i = 0; i < cfg->connector_cnt; i++)
                sf_cfg_free_connector(&cfg->connectors[i]);
        free(cfg->connectors);
        for (size_t i = 0; i < cfg->action_cnt; i++)
                sf_cfg_free_action(&cfg->actions[i]);
        free(cfg->actions);
        free(cfg->topic_sync_log);
        free(cfg->topic_outbound_message);
        free(cfg->topic_outbound_webservice);
        free(cfg->topic_dlq);
        free(cfg->warnings);
        free(cfg);
}

static sf_pos_t cfg_pos(const yaml_node_t *n)
{
        sf_pos_t p = {(int)n->start_mark.line + 1,
                      (int)n->start_mark.column + 1};

        return p;
}

static int cfg_topic_ok(const char *s)
{
        for (; *s; s++)
                if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') &&
                    !(*s >= '0' && *s <= '9') && *s != '.' && *s != '_' &&
                    *s != '-')
                        return 0;
        return 1;
}

static void cfg_kafka(sf_cfgctx_t *c, yaml_node_t *n)
{
        static const char *const keys[] = {"brokers",
                                           "topic_prefix",
                                           "partitions",
                                           "replication_factor",
                                           "min_insync_replicas",
                                           "config",
                                           NULL};
        static const sf_cfg_keys_t spec = {keys, NULL, NULL, NULL};
        sf_kafka_cfg_t *k = &c->cfg->kafka;
        yaml_node_t *v;
        char buf[64];

        if (!n || sf_cfg_keys(c, n, "kafka", &spec))
                return;
        sf_cfg_str(c, sf_cfg_get(c, n, "brokers"), "kafka.brokers",
                   &k->brokers);
        v = sf_cfg_get(c, n, "topic_prefix");
        if (!sf_cfg_str(c, v, "kafka.topic_prefix", &k->topic_prefix) &&
            !cfg_topic_ok(k->topic_prefix))
                sf_cfg_errn(c, v,
                            "expected a topic prefix of letters, digits, "
                            "'.', '_' and '-' for kafka.topic_prefix, got %s",
                            sf_cfg_describe(c, v, buf, sizeof(buf)));
        v = sf_cfg_get(c, n, "partitions");
        if (!sf_cfg_int(c, v, "kafka.partitions", 1, INT_MAX, &k->partitions) &&
            k->partitions > SF_KAFKA_PARTITIONS_MAX)
                sf_cfg_errn(c, v,
                            "expected at most %d for kafka.partitions (the "
                            "most partitions a topic can have: Kafka's "
                            "clients refuse more), got %d",
                            SF_KAFKA_PARTITIONS_MAX, k->partitions);
        v = sf_cfg_get(c, n, "replication_factor");
        if (!sf_cfg_int(c, v, "kafka.replication_factor", -1, INT_MAX,
                        &k->replication_factor) &&
            k->replication_factor == 0)
                sf_cfg_errn(c, v,
                            "expected -1 or a number >= 1 for "
                            "kafka.replication_factor, got 0");
        v = sf_cfg_get(c, n, "min_insync_replicas");
        if (!sf_cfg_int(c, v, "kafka.min_insync_replicas", -1, INT_MAX,
                        &k->min_insync_replicas)) {
                if (k->min_insync_replicas == 0)
                        sf_cfg_errn(c, v,
                                    "expected -1 or a number >= 1 for "
                                    "kafka.min_insync_replicas, got 0");
                /* acks=all could then never be satisfied */
                else if (k->replication_factor > 0 &&
                         k->min_insync_replicas > k->replication_factor)
                        sf_cfg_errn(c, v,
                                    "kafka.min_insync_replicas %d is more "
                                    "than kafka.replication_factor %d: no "
                                    "write could succeed",
                                    k->min_insync_replicas,
                                    k->replication_factor);
        }
        sf_cfg_kafka_config(c, sf_cfg_get(c, n, "config"), "kafka.config",
                            &k->config, &k->config_cnt);
}

static void cfg_source(sf_cfgctx_t *c, yaml_node_t *n)
{
        static const char *const types[] = {"sqlite", "postgres", NULL};
        static const char *const sqlite_keys[] = {
            "type", "path", "poll_interval_ms", "batch_size", "ack", NULL};
        static const char *const pg_keys[] = {
            "type",     "dsn",        "slot", "publication",
            "snapshot", "batch_size", "ack",  NULL};
        static const char *const all_keys[] = {
            "type", "path",        "poll_interval_ms", "batch_size", "dsn",
            "slot", "publication", "snapshot",         "ack",        NULL};
        static const char *const acks[] = {"delivered", "settled", NULL};
        static const char *const sqlite_req[] = {"path", NULL};
        static const char *const pg_req[] = {"dsn", NULL};
        static const char *const type_req[] = {"type", NULL};
        static const char *const snapshots[] = {"initial", "never", NULL};
        sf_source_cfg_t *s = &c->cfg->source;
        sf_cfg_keys_t spec = {all_keys, type_req, NULL, NULL};
        yaml_node_t *tn;
        char *path = NULL;
        int type = -1, snap = SF_SNAPSHOT_INITIAL, ack = -1;

        if (!n || sf_cfg_map(c, n, "source"))
                return;
        s->pos = cfg_pos(n);
        tn = sf_cfg_get(c, n, "type");
        if (sf_cfg_enum(c, tn, "source.type", types, &type) == 0) {
                spec.allowed = type ? pg_keys : sqlite_keys;
                spec.required = type ? pg_req : sqlite_req;
                spec.variant = type ? "a postgres source" : "a sqlite source";
                spec.elsewhere = all_keys;
        }
        sf_cfg_keys(c, n, "source", &spec);
        if (type < 0)
                return;
        s->type = type ? SF_SOURCE_POSTGRES : SF_SOURCE_SQLITE;
        if (!sf_cfg_enum(c, sf_cfg_get(c, n, "ack"), "source.ack", acks,
                         &ack)) {
                s->ack = ack ? SF_ACK_SETTLED : SF_ACK_DELIVERED;
                s->ack_given = 1;
        }
        sf_cfg_int(c, sf_cfg_get(c, n, "batch_size"), "source.batch_size", 1,
                   INT_MAX, &s->batch_size);
        if (s->type == SF_SOURCE_SQLITE) {
                if (!sf_cfg_str(c, sf_cfg_get(c, n, "path"), "source.path",
                                &path))
                        s->path = sf_cfg_resolve(c->cfg->dir, path);
                free(path);
                sf_cfg_int(c, sf_cfg_get(c, n, "poll_interval_ms"),
                           "source.poll_interval_ms", 1, INT_MAX,
                           &s->poll_interval_ms);
                return;
        }
        if (!sf_cfg_str(c, sf_cfg_get(c, n, "dsn"), "source.dsn", &s->dsn))
                sf_cfg_check_dsn(c, sf_cfg_get(c, n, "dsn"), s->dsn);
        sf_cfg_ident(c, sf_cfg_get(c, n, "slot"), "source.slot", "slot",
                     &s->slot);
        sf_cfg_ident(c, sf_cfg_get(c, n, "publication"), "source.publication",
                     "publication", &s->publication);
        sf_cfg_enum(c, sf_cfg_get(c, n, "snapshot"), "source.snapshot",
                    snapshots, &snap);
        s->snapshot = snap ? SF_SNAPSHOT_NEVER : SF_SNAPSHOT_INITIAL;
        if (!s->slot)
                s->slot = sf_strdup("syncfleet");
        if (!s->publication)
                s->publication = sf_strdup("syncfleet");
}

static void cfg_table_parent(sf_cfgctx_t *c, sf_table_cfg_t *t, yaml_node_t *n,
                             const char *path)
{
        static const char *const keys[] = {"table", "key", NULL};
        static const sf_cfg_keys_t spec = {keys, keys, NULL, NULL};
        char *tpath = sf_cfg_path(path, "table");
        char *kpath = sf_cfg_path(path, "key");
        sf_kv_t *kv = NULL;
        size_t cnt = 0;

        if (sf_cfg_keys(c, n, path, &spec))
                goto out;
        sf_cfg_ident(c, sf_cfg_get(c, n, "table"), tpath, "table",
                     &t->parent_name);
        if (sf_cfg_kvs(c, sf_cfg_get(c, n, "key"), kpath, 1, &kv, &cnt))
                goto out;
        if (!cnt) {
                sf_cfg_errn(c, sf_cfg_get(c, n, "key"),
                            "expected at least one column for %s", kpath);
                goto out;
        }
        t->parent_cols = sf_calloc(cnt, sizeof(char *));
        t->child_cols = sf_calloc(cnt, sizeof(char *));
        for (size_t i = 0; i < cnt; i++) {
                t->parent_cols[i] = kv[i].key;
                t->child_cols[i] = kv[i].value;
                kv[i].key = kv[i].value = NULL; /* moved to t */
        }
        t->parent_key_cnt = cnt;
out:
        sf_cfg_free_kvs(kv, cnt);
        free(tpath);
        free(kpath);
}

/* Reports a table reference that matches no table. */
static void cfg_unknown_table(sf_cfgctx_t *c, yaml_node_t *n, const char *name,
                              const char *path)
{
        const sf_config_t *cfg = c->cfg;
        const char **names = sf_calloc(cfg->table_cnt + 1, sizeof(char *));

        for (size_t i = 0; i < cfg->table_cnt; i++)
                names[i] = cfg->tables[i].name;
        sf_cfg_unknown(c, n, "table", name, path, names, cfg->table_cnt);
        free(names);
}

/* Resolves parent names once every table is known, then refuses chains
 * that loop: redirect must always reach a root. */
static void cfg_table_parents(sf_cfgctx_t *c, yaml_node_t **pnodes)
{
        sf_config_t *cfg = c->cfg;

        for (size_t i = 0; i < cfg->table_cnt; i++) {
                sf_table_cfg_t *t = &cfg->tables[i];
                char *path;

                if (!t->parent_name)
                        continue;
                t->parent =
                    (sf_table_cfg_t *)sf_config_table(cfg, t->parent_name);
                if (t->parent)
                        continue;
                path = sf_asprintf("tables.%s.parent.table", t->name);
                cfg_unknown_table(c, pnodes[i], t->parent_name, path);
                free(path);
        }
        for (size_t i = 0; i < cfg->table_cnt; i++) {
                sf_table_cfg_t *t = &cfg->tables[i], *p = t->parent;
                sf_buf_t chain;

                for (size_t k = 0; p && p != t && k < cfg->table_cnt; k++)
                        p = p->parent;
                if (p != t)
                        continue;
                sf_buf_init(&chain, 0);
                sf_buf_printf(&chain, "%s", t->name);
                p = t;
                do {
                        p = p->parent;
                        sf_buf_printf(&chain, " -> %s", p->name);
                } while (p != t);
                sf_cfg_errn(c, pnodes[i],
                            "parent cycle in tables.%s.parent.table: %s",
                            t->name, chain.data);
                sf_buf_free(&chain);
        }
}

static void cfg_tables(sf_cfgctx_t *c, yaml_node_t *n)
{
        static const char *const keys[] = {"key", "parent", NULL};
        static const char *const req[] = {"key", NULL};
        static const sf_cfg_keys_t spec = {keys, req, NULL, NULL};
        sf_config_t *cfg = c->cfg;
        yaml_node_t **pnodes;
        size_t max;

        if (!n || sf_cfg_map(c, n, "tables"))
                return;
        max = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
        cfg->tables = sf_calloc(max, sizeof(*cfg->tables));
        pnodes = sf_calloc(max, sizeof(*pnodes));
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
             p < n->data.mapping.pairs.top; p++) {
                yaml_node_t *kn = sf_cfg_node(c, p->key);
                yaml_node_t *v = sf_cfg_node(c, p->value);
                sf_table_cfg_t *t = &cfg->tables[cfg->table_cnt];
                char *path, *kpath, *ppath;

                if (!sf_cfg_pair_ok(c, n, p) ||
                    sf_cfg_ident(c, kn, "tables", "table", &t->name))
                        continue;
                t->pos = cfg_pos(kn);
                cfg->table_cnt++;
                path = sf_cfg_path("tables", t->name);
                kpath = sf_cfg_path(path, "key");
                ppath = sf_cfg_path(path, "parent");
                if (!sf_cfg_keys(c, v, path, &spec)) {
                        sf_cfg_idents(c, sf_cfg_get(c, v, "key"), kpath,
                                      "column", &t->key, &t->key_cnt);
                        pnodes[cfg->table_cnt - 1] =
                            sf_cfg_get(c, sf_cfg_get(c, v, "parent"), "table");
                        if (sf_cfg_get(c, v, "parent"))
                                cfg_table_parent(
                                    c, t, sf_cfg_get(c, v, "parent"), ppath);
                }
                free(path);
                free(kpath);
                free(ppath);
        }
        cfg_table_parents(c, pnodes);
        free(pnodes);
}

static void cfg_router(sf_cfgctx_t *c, yaml_node_t *n)
{
        static const char *const keys[] = {"coalesce_ms", "delay_ms", NULL};
        static const sf_cfg_keys_t spec = {keys, NULL, NULL, NULL};

        if (!n || sf_cfg_keys(c, n, "router", &spec))
                return;
        sf_cfg_int(c, sf_cfg_get(c, n, "coalesce_ms"), "router.coalesce_ms", 0,
                   INT_MAX, &c->cfg->router.coalesce_ms);
        sf_cfg_int(c, sf_cfg_get(c, n, "delay_ms"), "router.delay_ms", 0,
                   INT_MAX, &c->cfg->router.delay_ms);
}

/* The default state directory: DIR/.syncfleet/NAME, NAME made a safe
 * file name (no separators, no leading dot, never "." or ".."). */
static char *cfg_default_state_dir(const char *dir, const char *name)
{
        char *safe = sf_strdup(*name ? name : "pipeline"), *path;

        for (char *p = safe; *p; p++)
                if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') &&
                    !(*p >= '0' && *p <= '9') && *p != '_' && *p != '-' &&
                    (*p != '.' || p == safe))
                        *p = '_';
        path = sf_asprintf("%s/.syncfleet/%s", dir, safe);
        free(safe);
        return path;
}

static void cfg_state_dir(sf_cfgctx_t *c, yaml_node_t *n)
{
        sf_config_t *cfg = c->cfg;
        char *dir = NULL;

        if (!sf_cfg_str(c, n, "state_dir", &dir)) {
                cfg->state_dir = sf_cfg_resolve(cfg->dir, dir);
                cfg->state_dir_given = 1;
        } else if (cfg->name) {
                cfg->state_dir = cfg_default_state_dir(cfg->dir, cfg->name);
        }
        free(dir);
}

static void cfg_sections(sf_cfgctx_t *c)
{
        static const char *const keys[] = {"version",    "name",
                                           "state_dir",  "kafka",
                                           "source",     "tables",
                                           "connectors", "router",
                                           "messages",   "web_service_actions",
                                           NULL};
        static const char *const req[] = {"version", "name", NULL};
        static const sf_cfg_keys_t spec = {keys, req, NULL, NULL};
        sf_config_t *cfg = c->cfg;
        yaml_node_t *root = sf_cfg_root(c), *v;
        const char *pfx;

        if (sf_cfg_keys(c, root, "", &spec))
                return;
        v = sf_cfg_get(c, root, "version");
        if (!sf_cfg_int(c, v, "version", INT_MIN, INT_MAX, &cfg->version) &&
            cfg->version != 1)
                sf_cfg_errn(c, v, "expected 1 for version, got %d",
                            cfg->version);
        sf_cfg_str(c, sf_cfg_get(c, root, "name"), "name", &cfg->name);
        cfg_state_dir(c, sf_cfg_get(c, root, "state_dir"));
        cfg_kafka(c, sf_cfg_get(c, root, "kafka"));
        cfg_source(c, sf_cfg_get(c, root, "source"));
        cfg_tables(c, sf_cfg_get(c, root, "tables"));
        sf_cfg_parse_connectors(c, sf_cfg_get(c, root, "connectors"));
        cfg_router(c, sf_cfg_get(c, root, "router"));
        sf_cfg_parse_actions(c, sf_cfg_get(c, root, "messages"),
                             SF_KIND_MESSAGE);
        sf_cfg_parse_actions(c, sf_cfg_get(c, root, "web_service_actions"),
                             SF_KIND_WEBSERVICE);
        sf_cfg_check_kafka(c, sf_cfg_get(c, root, "kafka"));
        sf_cfg_check_pipeline(c);

        cfg->kafka.embedded = !strcmp(cfg->kafka.brokers, "embedded");
        /* nothing survives the embedded broker: the source is the log */
        if (!cfg->source.ack_given)
                cfg->source.ack =
                    cfg->kafka.embedded ? SF_ACK_SETTLED : SF_ACK_DELIVERED;
        pfx = cfg->kafka.topic_prefix;
        cfg->topic_sync_log = sf_asprintf("%s.sync-log", pfx);
        cfg->topic_outbound_message = sf_asprintf("%s.outbound.message", pfx);
        cfg->topic_outbound_webservice =
            sf_asprintf("%s.outbound.webservice", pfx);
        cfg->topic_dlq = sf_asprintf("%s.dlq", pfx);
}

/* Loads YAML (LEN bytes) named NAME; DIR is taken over. */
static sf_config_t *cfg_load(const char *name, char *dir, const char *yaml,
                             size_t len, char **errors)
{
        sf_cfgctx_t c;
        sf_config_t *cfg = sf_calloc(1, sizeof(*cfg));

        memset(&c, 0, sizeof(c));
        cfg->file = sf_strdup(name);
        cfg->dir = dir;
        cfg->kafka.brokers = sf_strdup("embedded");
        cfg->kafka.topic_prefix = sf_strdup("syncfleet");
        cfg->kafka.partitions = 6;
        cfg->kafka.replication_factor = -1;
        cfg->kafka.min_insync_replicas = -1;
        cfg->source.poll_interval_ms = 100;
        cfg->source.batch_size = 1000;
        c.name = name;
        c.cfg = cfg;
        if (!sf_cfg_parse(&c, yaml, len))
                cfg_sections(&c);
        if (c.err_cnt) {
                char *text = sf_cfg_errors(&c);

                if (errors && *errors) {
                        char *all = sf_asprintf("%s%s", *errors, text);

                        free(*errors);
                        free(text);
                        *errors = all;
                } else if (errors) {
                        *errors = text;
                } else {
                        free(text);
                }
                sf_config_destroy(cfg);
                cfg = NULL;
        }
        sf_cfg_ctx_free(&c);
        return cfg;
}

static char *cfg_cwd(void)
{
        char *cwd = getcwd(NULL, 0);

        return cwd ? cwd : sf_strdup(".");
}

/* The absolute directory of FILE, without resolving symlinks of the file
 * itself: relative paths in the pipeline are relative to where it is. */
static char *cfg_dir_of(const char *file)
{
        const char *slash = strrchr(file, '/');
        char *dir, *cwd, *abs;

        if (!slash)
                return cfg_cwd();
        dir = slash == file ? sf_strdup("/")
                            : sf_strndup(file, (size_t)(slash - file));
        cwd = cfg_cwd();
        abs = sf_cfg_resolve(cwd, dir);
        free(cwd);
        free(dir);
        return abs;
}

sf_config_t *sf_config_load(const char *path, char **errors)
{
        sf_buf_t b;
        FILE *f = fopen(path, "rb");
        char chunk[8192];
        size_t n;
        sf_config_t *cfg = NULL;
        int err = 0;

        sf_buf_init(&b, SF_CFG_FILE_MAX);
        if (!f) {
                err = errno;
                goto out;
        }
        while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
                if (sf_buf_append(&b, chunk, n)) {
                        err = EFBIG;
                        break;
                }
        }
        if (!err && ferror(f))
                err = EIO;
        fclose(f);
        if (!err)
                cfg = cfg_load(path, cfg_dir_of(path), b.data ? b.data : "",
                               b.len, errors);
out:
        if (err && errors) {
                char *line = sf_asprintf("%s%s: %s\n", *errors ? *errors : "",
                                         path, strerror(err));

                free(*errors);
                *errors = line;
        }
        sf_buf_free(&b);
        return cfg;
}

sf_config_t *sf_config_load_string(const char *name, const char *yaml,
                                   char **errors)
{
        return cfg_load(name, cfg_cwd(), yaml, strlen(yaml), errors);
}

const sf_table_cfg_t *sf_config_table(const sf_config_t *cfg, const char *name)
{
        for (size_t i = 0; cfg && name && i < cfg->table_cnt; i++)
                if (!strcmp(cfg->tables[i].name, name))
                        return &cfg->tables[i];
        return NULL;
}

const sf_connector_cfg_t *sf_config_connector(const sf_config_t *cfg,
                                              const char *name)
{
        for (size_t i = 0; cfg && name && i < cfg->connector_cnt; i++)
                if (!strcmp(cfg->connectors[i].name, name))
                        return &cfg->connectors[i];
        return NULL;
}

const sf_action_cfg_t *sf_config_action(const sf_config_t *cfg,
                                        const char *name)
{
        for (size_t i = 0; cfg && name && i < cfg->action_cnt; i++)
                if (!strcmp(cfg->actions[i].name, name))
                        return &cfg->actions[i];
        return NULL;
}

const sf_table_cfg_t *sf_config_root_table(const sf_table_cfg_t *table)
{
        /* a loaded config has no cycles; the bound only guards misuse */
        for (int i = 0; table && table->parent && i < 1024; i++)
                table = table->parent;
        return table;
}

unsigned sf_config_captured_events(const sf_config_t *cfg,
                                   const sf_table_cfg_t *table)
{
        const sf_table_cfg_t *root = sf_config_root_table(table);
        unsigned ev = 0;

        for (size_t i = 0; table && i < cfg->action_cnt; i++) {
                const sf_trigger_cfg_t *tr = &cfg->actions[i].trigger;

                if (!tr->table)
                        continue;
                if (!strcmp(tr->table, table->name))
                        ev |= tr->events;
                else if (root != table && !strcmp(tr->table, root->name) &&
                         tr->redirect && (tr->events & SF_EV_UPDATE))
                        ev |= SF_EV_INSERT | SF_EV_UPDATE | SF_EV_DELETE;
        }
        return ev;
}
