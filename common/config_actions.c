/*
 * messages and web_service_actions: the subscribers. Each has a trigger
 * (table and events), a source document (the event image, or a re-read in
 * query mode), and where the result goes: a message's target and mapping,
 * or a web service action's request, response and error handling. Table
 * and connector references are resolved here, and the fields each action
 * reads are collected for check_used_fields.
 */
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"
#include "sf.h"

enum { CFG_USE_TARGET, CFG_USE_REQUEST };

static const char *const cfg_methods[] = {"GET",   "POST",   "PUT",
                                          "PATCH", "DELETE", NULL};
static const char *const cfg_operations[] = {"insert", "update", "upsert",
                                             "delete", NULL};

static const char *const target_http_keys[] = {"connector", "method", "path",
                                               "on_delete", NULL};
static const char *const target_file_keys[] = {"connector", NULL};
static const char *const target_database_keys[] = {"connector", "table",
                                                   "operation", "key", NULL};
static const char *const target_kafka_keys[] = {"connector", "topic", NULL};
static const char *const target_all_keys[] = {
    "connector", "method", "path",  "on_delete", "table",
    "operation", "key",    "topic", NULL};
static const char *const request_keys[] = {"connector", "method", "path",
                                           "body", NULL};

static sf_pos_t cfg_pos(const yaml_node_t *n)
{
        sf_pos_t p = {(int)n->start_mark.line + 1,
                      (int)n->start_mark.column + 1};

        return p;
}

static sf_table_cfg_t *cfg_table_ref(sf_cfgctx_t *c, yaml_node_t *n,
                                     const char *name, const char *path)
{
        sf_config_t *cfg = c->cfg;
        const char **names;
        sf_table_cfg_t *t = (sf_table_cfg_t *)sf_config_table(cfg, name);

        if (t)
                return t;
        names = sf_calloc(cfg->table_cnt + 1, sizeof(char *));
        for (size_t i = 0; i < cfg->table_cnt; i++)
                names[i] = cfg->tables[i].name;
        sf_cfg_unknown(c, n, "table", name, path, names, cfg->table_cnt);
        free(names);
        return NULL;
}

/* The connector NAME refers to, or NULL (reported). *typed is 0 when the
 * connector's own type was wrong, so uses of it are not checked. */
static sf_connector_cfg_t *cfg_connector_ref(sf_cfgctx_t *c, yaml_node_t *n,
                                             const char *name, const char *path,
                                             int *typed)
{
        sf_config_t *cfg = c->cfg;
        const char **names;

        *typed = 0;
        for (size_t i = 0; i < cfg->connector_cnt; i++) {
                if (!strcmp(cfg->connectors[i].name, name)) {
                        *typed = !c->conn_untyped[i];
                        return &cfg->connectors[i];
                }
        }
        names = sf_calloc(cfg->connector_cnt + 1, sizeof(char *));
        for (size_t i = 0; i < cfg->connector_cnt; i++)
                names[i] = cfg->connectors[i].name;
        sf_cfg_unknown(c, n, "connector", name, path, names,
                       cfg->connector_cnt);
        free(names);
        return NULL;
}

static void cfg_trigger(sf_cfgctx_t *c, yaml_node_t *n, const char *path,
                        sf_trigger_cfg_t *t)
{
        static const char *const keys[] = {
            "table", "events", "check_used_fields", "redirect", NULL};
        static const char *const req[] = {"table", NULL};
        static const sf_cfg_keys_t spec = {keys, req, NULL, NULL};
        static const char *const events[] = {"insert", "update", "delete",
                                             NULL};
        char *tpath = sf_cfg_path(path, "table");
        char *epath = sf_cfg_path(path, "events");
        char *p;
        yaml_node_t *tn, *en;
        int ev;

        if (sf_cfg_keys(c, n, path, &spec))
                goto out;
        t->pos = cfg_pos(n);
        tn = sf_cfg_get(c, n, "table");
        if (!sf_cfg_ident(c, tn, tpath, "table", &t->table))
                t->table_ref = cfg_table_ref(c, tn, t->table, tpath);
        en = sf_cfg_get(c, n, "events");
        if (en && en->type == YAML_SEQUENCE_NODE) {
                size_t i = 0;

                if (en->data.sequence.items.start ==
                    en->data.sequence.items.top)
                        sf_cfg_errn(c, en, "expected at least one event for %s",
                                    epath);
                else
                        t->events = 0;
                for (yaml_node_item_t *it = en->data.sequence.items.start;
                     it < en->data.sequence.items.top; it++, i++) {
                        p = sf_cfg_path_index(epath, i);
                        if (!sf_cfg_enum(c, sf_cfg_node(c, *it), p, events,
                                         &ev))
                                t->events |= 1u << ev;
                        free(p);
                }
        } else if (en && !sf_cfg_enum(c, en, epath, events, &ev)) {
                t->events = 1u << ev;
        }
        p = sf_cfg_path(path, "check_used_fields");
        sf_cfg_bool(c, sf_cfg_get(c, n, "check_used_fields"), p,
                    &t->check_used_fields);
        free(p);
        p = sf_cfg_path(path, "redirect");
        sf_cfg_bool(c, sf_cfg_get(c, n, "redirect"), p, &t->redirect);
        free(p);
out:
        free(tpath);
        free(epath);
}

static void cfg_records(sf_cfgctx_t *c, yaml_node_t *n, const char *path,
                        sf_docsource_cfg_t *s)
{
        static const char *const keys[] = {"table", "where", NULL};
        static const sf_cfg_keys_t spec = {keys, keys, NULL, NULL};
        size_t max;

        if (sf_cfg_map(c, n, path))
                return;
        max = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
        s->records = sf_calloc(max, sizeof(*s->records));
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
             p < n->data.mapping.pairs.top; p++) {
                yaml_node_t *kn = sf_cfg_node(c, p->key);
                yaml_node_t *v = sf_cfg_node(c, p->value), *tn, *wn;
                sf_records_cfg_t *r = &s->records[s->records_cnt];
                char *rpath, *tpath, *wpath;

                if (!sf_cfg_pair_ok(c, n, p) ||
                    sf_cfg_ident(c, kn, path, "records", &r->name))
                        continue;
                s->records_cnt++;
                r->pos = cfg_pos(kn);
                rpath = sf_cfg_path(path, r->name);
                tpath = sf_cfg_path(rpath, "table");
                wpath = sf_cfg_path(rpath, "where");
                if (!sf_cfg_keys(c, v, rpath, &spec)) {
                        tn = sf_cfg_get(c, v, "table");
                        if (!sf_cfg_ident(c, tn, tpath, "table", &r->table))
                                r->table_ref =
                                    cfg_table_ref(c, tn, r->table, tpath);
                        wn = sf_cfg_get(c, v, "where");
                        if (!sf_cfg_kvs(c, wn, wpath, 1, &r->where,
                                        &r->where_cnt) &&
                            !r->where_cnt)
                                sf_cfg_errn(c, wn,
                                            "expected at least one column "
                                            "for %s",
                                            wpath);
                }
                free(rpath);
                free(tpath);
                free(wpath);
        }
}

static void cfg_docsource(sf_cfgctx_t *c, yaml_node_t *n, const char *path,
                          sf_docsource_cfg_t *s)
{
        static const char *const keys[] = {"mode", "records", NULL};
        static const sf_cfg_keys_t spec = {keys, NULL, NULL, NULL};
        static const char *const modes[] = {"event", "query", NULL};
        char *mpath = sf_cfg_path(path, "mode");
        char *rpath = sf_cfg_path(path, "records");
        yaml_node_t *mn, *rn;
        int mode = SF_MODE_EVENT;

        if (!n || sf_cfg_keys(c, n, path, &spec))
                goto out;
        mn = sf_cfg_get(c, n, "mode");
        rn = sf_cfg_get(c, n, "records");
        sf_cfg_enum(c, mn, mpath, modes, &mode);
        s->mode = (sf_source_mode_t)mode;
        if (s->mode == SF_MODE_QUERY && c->cfg->source.type == SF_SOURCE_NONE)
                sf_cfg_errn(c, mn,
                            "mode query in %s re-reads the source database, "
                            "but there is no source section",
                            mpath);
        if (rn && s->mode != SF_MODE_QUERY)
                sf_cfg_errn(c, rn, "%s are only read with mode: query", rpath);
        else if (rn)
                cfg_records(c, rn, rpath, s);
out:
        free(mpath);
        free(rpath);
}

static void cfg_on_delete(sf_cfgctx_t *c, yaml_node_t *n, const char *path,
                          sf_target_cfg_t *t)
{
        static const char *const keys[] = {"method", "path", NULL};
        static const sf_cfg_keys_t spec = {keys, NULL, NULL, NULL};
        const char *s = sf_cfg_scalar(c, n);
        char *p, buf[64];
        int m;

        if (sf_cfg_is_bad(c, n))
                return;
        if (s && !strcmp(s, "skip")) {
                t->has_on_delete = 1;
                t->delete_skip = 1;
                return;
        }
        if (n->type != YAML_MAPPING_NODE) {
                sf_cfg_errn(c, n,
                            "expected skip or a mapping with method and path "
                            "for %s, got %s",
                            path, sf_cfg_describe(c, n, buf, sizeof(buf)));
                return;
        }
        if (sf_cfg_keys(c, n, path, &spec))
                return;
        t->has_on_delete = 1;
        p = sf_cfg_path(path, "method");
        if (!sf_cfg_enum(c, sf_cfg_get(c, n, "method"), p, cfg_methods, &m))
                t->delete_method = sf_strdup(cfg_methods[m]);
        free(p);
        if (!t->delete_method)
                t->delete_method = sf_strdup("DELETE");
        p = sf_cfg_path(path, "path");
        t->delete_path = sf_cfg_template(c, sf_cfg_get(c, n, "path"), p);
        free(p);
}

static void cfg_target_http(sf_cfgctx_t *c, yaml_node_t *n, const char *path,
                            int use, sf_target_cfg_t *t)
{
        char *p = sf_cfg_path(path, "method");
        yaml_node_t *v;
        int m;

        if (!sf_cfg_enum(c, sf_cfg_get(c, n, "method"), p, cfg_methods, &m))
                t->method = sf_strdup(cfg_methods[m]);
        free(p);
        if (!t->method)
                t->method = sf_strdup(use == CFG_USE_REQUEST ? "POST" : "PUT");
        p = sf_cfg_path(path, "path");
        t->path = sf_cfg_template(c, sf_cfg_get(c, n, "path"), p);
        free(p);
        if (use == CFG_USE_TARGET && (v = sf_cfg_get(c, n, "on_delete"))) {
                p = sf_cfg_path(path, "on_delete");
                cfg_on_delete(c, v, p, t);
                free(p);
        }
}

static void cfg_target_database(sf_cfgctx_t *c, yaml_node_t *n,
                                const char *path, sf_target_cfg_t *t)
{
        char *tpath = sf_cfg_path(path, "table");
        char *opath = sf_cfg_path(path, "operation");
        char *kpath = sf_cfg_path(path, "key");
        const sf_table_cfg_t *known;
        int op = 2; /* upsert */

        sf_cfg_ident(c, sf_cfg_get(c, n, "table"), tpath, "table", &t->table);
        sf_cfg_enum(c, sf_cfg_get(c, n, "operation"), opath, cfg_operations,
                    &op);
        t->operation = sf_strdup(cfg_operations[op]);
        sf_cfg_idents(c, sf_cfg_get(c, n, "key"), kpath, "column", &t->key,
                      &t->key_cnt);
        if (t->key_cnt || !strcmp(t->operation, "insert") || !t->table)
                goto out;
        /* a table of the pipeline lends its key */
        known = sf_config_table(c->cfg, t->table);
        if (known && known->key_cnt) {
                t->key = sf_calloc(known->key_cnt, sizeof(char *));
                for (size_t i = 0; i < known->key_cnt; i++)
                        t->key[i] = sf_strdup(known->key[i]);
                t->key_cnt = known->key_cnt;
        } else if (!known) {
                sf_cfg_errn(c, n,
                            "missing required key 'key' in %s (operation %s "
                            "needs the key columns of %s)",
                            path, t->operation, t->table);
        }
out:
        free(tpath);
        free(opath);
        free(kpath);
}

/* target, request, response.target and error.target. */
static void cfg_target(sf_cfgctx_t *c, yaml_node_t *n, const char *path,
                       int use, sf_target_cfg_t *t)
{
        static const char *const *const keys[] = {
            target_http_keys, target_file_keys, target_database_keys,
            target_kafka_keys};
        static const char *const conn_req[] = {"connector", NULL};
        static const char *const db_req[] = {"connector", "table", NULL};
        static const char *const variants[] = {
            "an http connector", "a file connector", "a database connector",
            "a kafka connector"};
        static const char *const type_names[] = {"an http", "a file",
                                                 "a database", "a kafka"};
        sf_cfg_keys_t spec = {target_all_keys, conn_req, NULL, NULL};
        char *cpath = sf_cfg_path(path, "connector");
        sf_connector_cfg_t *conn = NULL;
        yaml_node_t *cn;
        int typed = 0;

        if (sf_cfg_map(c, n, path))
                goto out;
        t->pos = cfg_pos(n);
        cn = sf_cfg_get(c, n, "connector");
        if (!sf_cfg_name(c, cn, cpath, "connector", &t->connector))
                conn = cfg_connector_ref(c, cn, t->connector, cpath, &typed);
        t->conn = conn;
        if (use == CFG_USE_REQUEST) {
                spec.allowed = request_keys;
                if (typed && conn->type != SF_CONN_HTTP)
                        sf_cfg_errn(c, cn,
                                    "expected an http connector for %s, got "
                                    "'%s' (%s connector)",
                                    cpath, conn->name, type_names[conn->type]);
                sf_cfg_keys(c, n, path, &spec);
                cfg_target_http(c, n, path, use, t);
                goto out;
        }
        if (typed) {
                spec.allowed = keys[conn->type];
                spec.required =
                    conn->type == SF_CONN_DATABASE ? db_req : conn_req;
                spec.variant = variants[conn->type];
                spec.elsewhere = target_all_keys;
        }
        sf_cfg_keys(c, n, path, &spec);
        if (!typed)
                goto out;
        switch (conn->type) {
        case SF_CONN_HTTP:
                cfg_target_http(c, n, path, use, t);
                break;
        case SF_CONN_DATABASE:
                cfg_target_database(c, n, path, t);
                break;
        case SF_CONN_KAFKA: {
                char *p = sf_cfg_path(path, "topic");

                sf_cfg_str(c, sf_cfg_get(c, n, "topic"), p, &t->topic);
                if (!sf_cfg_get(c, n, "topic") && !conn->topic)
                        sf_cfg_errn(c, n,
                                    "missing required key 'topic' in %s "
                                    "(connector '%s' has no topic)",
                                    path, conn->name);
                free(p);
                break;
        }
        case SF_CONN_FILE:
                break;
        }
out:
        free(cpath);
}

/* response and error of a web service action: a target and a mapping. */
static int cfg_handler(sf_cfgctx_t *c, yaml_node_t *n, const char *path,
                       sf_target_cfg_t *t, sf_mapping_t **m)
{
        static const char *const keys[] = {"target", "mapping", NULL};
        static const sf_cfg_keys_t spec = {keys, keys, NULL, NULL};
        char *tpath = sf_cfg_path(path, "target");
        char *mpath = sf_cfg_path(path, "mapping");
        yaml_node_t *v;
        int rc = 0;

        if (!n)
                goto out;
        if (sf_cfg_keys(c, n, path, &spec))
                goto out;
        if ((v = sf_cfg_get(c, n, "target")))
                cfg_target(c, v, tpath, CFG_USE_TARGET, t);
        *m = sf_cfg_mapping(c, sf_cfg_get(c, n, "mapping"), mpath);
        rc = 1;
out:
        free(tpath);
        free(mpath);
        return rc;
}

/* --- used fields --- */

typedef struct cfg_fields {
        const sf_action_cfg_t *a;
        char **v;
        size_t n;
        size_t cap;
        int whole; /* a reference to the whole record */
} cfg_fields_t;

static void cfg_fields_add(cfg_fields_t *f, const char *s, size_t len)
{
        if (f->n == f->cap) {
                f->cap = f->cap ? f->cap * 2 : 16;
                f->v = sf_realloc(f->v, f->cap * sizeof(*f->v));
        }
        f->v[f->n++] = sf_strndup(s, len);
}

static int cfg_seg_is(const char *s, size_t len, const char *word)
{
        return strlen(word) == len && !strncmp(s, word, len);
}

/* One template reference, reduced to the column of the trigger table it
 * reads. A path without '@' reads a column by its own name, whatever the
 * name (status, event, response are columns like any other), except a
 * name of source.records, which reads child records. Of syncfleet's names,
 * @key.X, @before.X and @after.X read column X, @key the key columns,
 * @before and @after every column; the others read no column. */
static void cfg_field_ref(const char *path, void *opaque)
{
        cfg_fields_t *f = opaque;
        const sf_table_cfg_t *tbl = f->a->trigger.table_ref;
        size_t len;

        if (path[0] != SF_TEMPLATE_AT) {
                len = strcspn(path, ".");
                for (size_t i = 0; i < f->a->source.records_cnt; i++)
                        if (cfg_seg_is(path, len, f->a->source.records[i].name))
                                return; /* child records read in query mode */
                if (len)
                        cfg_fields_add(f, path, len);
                return;
        }
        path++;
        len = strcspn(path, ".");
        if (!cfg_seg_is(path, len, "key") && !cfg_seg_is(path, len, "before") &&
            !cfg_seg_is(path, len, "after"))
                return;
        if (path[len] == '.') {
                path += len + 1;
                if (strcspn(path, "."))
                        cfg_fields_add(f, path, strcspn(path, "."));
        } else if (cfg_seg_is(path, len, "key")) {
                for (size_t k = 0; tbl && k < tbl->key_cnt; k++)
                        cfg_fields_add(f, tbl->key[k], strlen(tbl->key[k]));
        } else {
                f->whole = 1;
        }
}

static int cfg_strcmp(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static void cfg_tpl_fields(const sf_template_t *t, cfg_fields_t *f)
{
        if (t)
                sf_template_refs(t, cfg_field_ref, f);
}

/* The fields a mapping reads. An `each` reads the array at its path; the
 * references inside its map read the array's elements (lines of an order),
 * not fields of the trigger table, so they are not collected: the router
 * counts a used field missing from the images as changed, and element
 * fields would make every update count. */
static void cfg_mapping_fields(const sf_mapping_t *m, cfg_fields_t *f)
{
        if (!m)
                return;
        if (m->type == SF_MAP_TEMPLATE)
                cfg_tpl_fields(m->tpl, f);
        else if (m->type == SF_MAP_EACH && m->each_path)
                cfg_field_ref(m->each_path, f);
        for (size_t i = 0; i < m->child_cnt; i++)
                cfg_mapping_fields(m->children[i], f);
}

static void cfg_target_fields(const sf_target_cfg_t *t, cfg_fields_t *f)
{
        cfg_tpl_fields(t->path, f);
        cfg_tpl_fields(t->delete_path, f);
}

/* Every template of the action counts, response and error handling
 * included, and every field a records.where selects children by: an
 * update that changes a field any of them reads must reach the action. A
 * reference to a whole image ({{@after}}) reads every field, so such an
 * action cannot check used fields and takes every update. */
static void cfg_used_fields(sf_action_cfg_t *a)
{
        cfg_fields_t f;
        size_t k = 0;

        memset(&f, 0, sizeof(f));
        f.a = a;
        cfg_mapping_fields(a->mapping, &f);
        cfg_mapping_fields(a->request_body, &f);
        cfg_mapping_fields(a->response_mapping, &f);
        cfg_mapping_fields(a->error_mapping, &f);
        cfg_target_fields(&a->target, &f);
        cfg_target_fields(&a->request, &f);
        cfg_target_fields(&a->response_target, &f);
        cfg_target_fields(&a->error_target, &f);
        /* query mode selects child records by fields of the record */
        for (size_t i = 0; i < a->source.records_cnt; i++)
                for (size_t w = 0; w < a->source.records[i].where_cnt; w++)
                        cfg_field_ref(a->source.records[i].where[w].value, &f);
        if (f.n)
                qsort(f.v, f.n, sizeof(*f.v), cfg_strcmp);
        for (size_t i = 0; i < f.n; i++) {
                if (k && !strcmp(f.v[k - 1], f.v[i]))
                        free(f.v[i]);
                else
                        f.v[k++] = f.v[i];
        }
        a->used_fields = f.v;
        a->used_fields_cnt = k;
        if (f.whole)
                a->trigger.check_used_fields = 0;
}

static void cfg_action(sf_cfgctx_t *c, yaml_node_t *n, const char *path,
                       sf_action_cfg_t *a)
{
        static const char *const msg_keys[] = {"trigger", "source", "target",
                                               "mapping", NULL};
        static const char *const msg_req[] = {"trigger", "target", "mapping",
                                              NULL};
        static const char *const ws_keys[] = {"trigger",  "source", "request",
                                              "response", "error",  NULL};
        static const char *const ws_req[] = {"trigger", "request", NULL};
        static const sf_cfg_keys_t msg_spec = {msg_keys, msg_req, NULL, NULL};
        static const sf_cfg_keys_t ws_spec = {ws_keys, ws_req, NULL, NULL};
        const char *parts[] = {"trigger", "source",   "target", "mapping",
                               "request", "response", "error"};
        char *p[7];
        yaml_node_t *v;

        a->trigger.events = SF_EV_INSERT | SF_EV_UPDATE | SF_EV_DELETE;
        a->trigger.check_used_fields = 1;
        a->trigger.redirect = 1;
        if (sf_cfg_keys(c, n, path,
                        a->kind == SF_KIND_MESSAGE ? &msg_spec : &ws_spec))
                return;
        for (size_t i = 0; i < 7; i++)
                p[i] = sf_cfg_path(path, parts[i]);
        if ((v = sf_cfg_get(c, n, "trigger")))
                cfg_trigger(c, v, p[0], &a->trigger);
        cfg_docsource(c, sf_cfg_get(c, n, "source"), p[1], &a->source);
        c->tpl_action = a;
        c->tpl_step = SF_CFG_STEP_MAIN;
        if (a->kind == SF_KIND_MESSAGE) {
                if ((v = sf_cfg_get(c, n, "target")))
                        cfg_target(c, v, p[2], CFG_USE_TARGET, &a->target);
                a->mapping =
                    sf_cfg_mapping(c, sf_cfg_get(c, n, "mapping"), p[3]);
        } else {
                if ((v = sf_cfg_get(c, n, "request"))) {
                        char *bpath = sf_cfg_path(p[4], "body");

                        cfg_target(c, v, p[4], CFG_USE_REQUEST, &a->request);
                        a->request_body =
                            sf_cfg_mapping(c, sf_cfg_get(c, v, "body"), bpath);
                        free(bpath);
                }
                c->tpl_step = SF_CFG_STEP_RESPONSE;
                a->has_response =
                    cfg_handler(c, sf_cfg_get(c, n, "response"), p[5],
                                &a->response_target, &a->response_mapping);
                c->tpl_step = SF_CFG_STEP_ERROR;
                a->has_error = cfg_handler(c, sf_cfg_get(c, n, "error"), p[6],
                                           &a->error_target, &a->error_mapping);
        }
        c->tpl_action = NULL;
        c->tpl_step = SF_CFG_STEP_MAIN;
        cfg_used_fields(a);
        for (size_t i = 0; i < 7; i++)
                free(p[i]);
}

void sf_cfg_parse_actions(sf_cfgctx_t *c, yaml_node_t *n, sf_action_kind_t kind)
{
        const char *section =
            kind == SF_KIND_MESSAGE ? "messages" : "web_service_actions";
        const char *what =
            kind == SF_KIND_MESSAGE ? "message" : "web service action";
        sf_config_t *cfg = c->cfg;
        size_t max;

        if (!n || sf_cfg_map(c, n, section))
                return;
        max = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
        cfg->actions = sf_realloc(cfg->actions, (cfg->action_cnt + max) *
                                                    sizeof(*cfg->actions));
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
             p < n->data.mapping.pairs.top; p++) {
                yaml_node_t *kn = sf_cfg_node(c, p->key);
                sf_action_cfg_t *a = &cfg->actions[cfg->action_cnt];
                const sf_action_cfg_t *other;
                char *path;

                memset(a, 0, sizeof(*a));
                if (!sf_cfg_pair_ok(c, n, p) ||
                    sf_cfg_name(c, kn, section, what, &a->name))
                        continue;
                other = sf_config_action(cfg, a->name);
                if (other)
                        sf_cfg_errn(c, kn,
                                    "duplicate action name '%s' (first "
                                    "defined as a message at %d:%d)",
                                    a->name, other->pos.line, other->pos.col);
                a->kind = kind;
                a->pos = cfg_pos(kn);
                cfg->action_cnt++;
                path = sf_cfg_path(section, a->name);
                cfg_action(c, sf_cfg_node(c, p->value), path, a);
                free(path);
        }
}
