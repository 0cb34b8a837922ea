/*
 * Templates and mappings from the YAML: the tree mirrors the target
 * document. A YAML mapping is an object, a sequence an array, a mapping of
 * exactly `each` and `map` an array rendered per element, a plain scalar
 * that YAML reads as a number, boolean or null keeps that JSON value, and
 * any other scalar (every quoted one) is a compiled template.
 */
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"
#include "json.h"
#include "sf.h"

/* --- syncfleet's names and the names they had before '@' --- */

static int cfg_is(const char *s, size_t len, const char *word)
{
        return strlen(word) == len && !strncmp(s, word, len);
}

/* 1 when the pipeline file itself names NAME (LEN bytes) as a column of
 * the trigger table of A: a key column, a column linking it to its parent,
 * or a root field a query-mode records.where reads. */
static int cfg_known_column(const sf_action_cfg_t *a, const char *name,
                            size_t len)
{
        const sf_table_cfg_t *t = a->trigger.table_ref;

        for (size_t i = 0; t && i < t->key_cnt; i++)
                if (cfg_is(name, len, t->key[i]))
                        return 1;
        for (size_t i = 0; t && i < t->parent_key_cnt; i++)
                if (cfg_is(name, len, t->child_cols[i]))
                        return 1;
        for (size_t i = 0; i < a->source.records_cnt; i++)
                for (size_t k = 0; k < a->source.records[i].where_cnt; k++)
                        if (cfg_is(name, len,
                                   a->source.records[i].where[k].value))
                                return 1;
        return 0;
}

/* Checks reference REF, at byte OFF of scalar N, in document path WHERE.
 * In response and error handling the old engine put syncfleet's reply
 * before the record's fields, so {{response.limit}}, {{status}} and
 * {{error.message}} read the reply there; now they read columns. Whether
 * a table has a column named status cannot be known (event mode has no
 * schema), so such a reference is an error naming the new spelling: the
 * rule is never wrong, and a column of that name is still reachable as
 * {{@after.status}}. Plain names elsewhere are columns and pass. */
static void cfg_check_ref(sf_cfgctx_t *c, yaml_node_t *n, const char *where,
                          const char *ref, size_t off)
{
        static const char *const reply_names[] = {"response", "status",
                                                  "headers", NULL};
        static const char *const error_names[] = {"error", NULL};
        const sf_action_cfg_t *a = c->tpl_action;
        int step = c->tpl_step, line, col, old = 0;
        const char *const *names;
        const char *name = ref + (ref[0] == SF_TEMPLATE_AT);
        size_t len = strcspn(name, ".");

        if (!a)
                return;
        sf_cfg_scalar_pos(n, off, &line, &col);
        if (ref[0] == SF_TEMPLATE_AT) {
                if (step == SF_CFG_STEP_ERROR && cfg_is(name, len, "status"))
                        sf_cfg_err(c, line, col,
                                   "{{%s}} in %s: @status is the HTTP status "
                                   "of a 2xx reply; in error handling write "
                                   "{{@error.status}}",
                                   ref, where);
                else if (step != SF_CFG_STEP_RESPONSE &&
                         (cfg_is(name, len, "response") ||
                          cfg_is(name, len, "status") ||
                          cfg_is(name, len, "headers")))
                        sf_cfg_err(c, line, col,
                                   "{{%s}} in %s: @%.*s is set only in a web "
                                   "service action's response handling",
                                   ref, where, (int)len, name);
                else if (step != SF_CFG_STEP_ERROR &&
                         cfg_is(name, len, "error"))
                        sf_cfg_err(c, line, col,
                                   "{{%s}} in %s: @error is set only in a web "
                                   "service action's error handling",
                                   ref, where);
                return;
        }
        if (step == SF_CFG_STEP_MAIN || cfg_known_column(a, name, len))
                return;
        names = step == SF_CFG_STEP_RESPONSE ? reply_names : error_names;
        for (size_t i = 0; names[i] && !old; i++)
                old = cfg_is(name, len, names[i]);
        if (old)
                sf_cfg_err(c, line, col,
                           "{{%s}} in %s reads a column named %.*s, not "
                           "syncfleet's %s; write {{@%s}}",
                           ref, where, (int)len, name,
                           step == SF_CFG_STEP_RESPONSE ? "reply" : "failure",
                           ref);
        else if (cfg_is(name, len, "record") && name[len] == '.')
                sf_cfg_err(c, line, col,
                           "{{%s}} in %s reads a column named record; the "
                           "record's fields are read by their own names: "
                           "write {{%s}}",
                           ref, where, name + len + 1);
        else if (cfg_is(name, len, "record"))
                sf_cfg_err(c, line, col,
                           "{{%s}} in %s reads a column named record; the "
                           "whole record is {{@after}} (or {{@before}} for a "
                           "delete): write {{@after}}",
                           ref, where);
}

typedef struct cfg_refctx {
        sf_cfgctx_t *c;
        yaml_node_t *n;
        const char *where;
} cfg_refctx_t;

static void cfg_check_tpl_ref(const char *ref, size_t off, void *opaque)
{
        cfg_refctx_t *r = opaque;

        cfg_check_ref(r->c, r->n, r->where, ref, off);
}

sf_template_t *sf_cfg_template(sf_cfgctx_t *c, yaml_node_t *n, const char *path)
{
        char ebuf[256], buf[64];
        size_t off = 0;
        sf_template_t *t;
        int line, col;

        if (!n || sf_cfg_is_bad(c, n))
                return NULL;
        if (n->type != YAML_SCALAR_NODE) {
                sf_cfg_errn(c, n, "expected a template string for %s, got %s",
                            path, sf_cfg_describe(c, n, buf, sizeof(buf)));
                return NULL;
        }
        ebuf[0] = '\0';
        t = sf_template_compile(sf_cfg_scalar(c, n), &off, ebuf, sizeof(ebuf));
        if (!t) {
                sf_cfg_scalar_pos(n, off, &line, &col);
                sf_cfg_err(c, line, col, "invalid template in %s: %s", path,
                           ebuf);
        } else {
                cfg_refctx_t r = {c, n, path};

                sf_template_refs_at(t, cfg_check_tpl_ref, &r);
        }
        return t;
}

/* The JSON value YAML's core schema gives plain scalar S, or NULL when S
 * is text. */
static cJSON *cfg_literal(const char *s)
{
        static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
        static const char *const trues[] = {"true", "True", "TRUE"};
        static const char *const falses[] = {"false", "False", "FALSE"};
        int integral;

        for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++)
                if (!strcmp(s, nulls[i]))
                        return cJSON_CreateNull();
        for (size_t i = 0; i < sizeof(trues) / sizeof(trues[0]); i++) {
                if (!strcmp(s, trues[i]))
                        return cJSON_CreateTrue();
                if (!strcmp(s, falses[i]))
                        return cJSON_CreateFalse();
        }
        if (sf_cfg_numeric(s, &integral)) {
                cJSON *exact = sf_json_integer_text(s, strlen(s));

                return exact ? exact : cJSON_CreateNumber(strtod(s, NULL));
        }
        return NULL;
}

static int cfg_field_path_ok(const char *s)
{
        const char *seg;

        if (s[0] == SF_TEMPLATE_AT &&
            !sf_template_at_known(s + 1, strcspn(s + 1, ".")))
                return 0;
        s += s[0] == SF_TEMPLATE_AT;
        seg = s;

        for (const char *p = s;; p++) {
                if (*p == '.' || !*p) {
                        if (p == seg)
                                return 0;
                        if (!*p)
                                return 1;
                        seg = p + 1;
                } else if (!strchr("abcdefghijklmnopqrstuvwxyz"
                                   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-",
                                   *p)) {
                        return 0;
                }
        }
}

/* 1 when mapping N has exactly the keys `each` and `map`. */
static int cfg_is_each(sf_cfgctx_t *c, yaml_node_t *n)
{
        size_t cnt = 0;

        for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
             p < n->data.mapping.pairs.top; p++) {
                const char *k = sf_cfg_scalar(c, sf_cfg_node(c, p->key));

                if (!k || (strcmp(k, "each") && strcmp(k, "map")))
                        return 0;
                cnt++;
        }
        return cnt == 2 && sf_cfg_get(c, n, "each") && sf_cfg_get(c, n, "map");
}

static sf_mapping_t *cfg_each(sf_cfgctx_t *c, yaml_node_t *n, const char *path,
                              int line, int col)
{
        yaml_node_t *en = sf_cfg_get(c, n, "each");
        char *epath = sf_cfg_path(path, "each");
        char *mpath = sf_cfg_path(path, "map");
        sf_mapping_t *m = sf_mapping_new(SF_MAP_EACH, line, col);
        char buf[64];

        if (!sf_cfg_str(c, en, epath, &m->each_path)) {
                if (!cfg_field_path_ok(m->each_path))
                        sf_cfg_errn(c, en,
                                    "expected a field path (like lines or "
                                    "order.lines) for %s, got %s",
                                    epath,
                                    sf_cfg_describe(c, en, buf, sizeof(buf)));
                else
                        cfg_check_ref(c, en, epath, m->each_path, 0);
        }
        m->each_map = sf_cfg_mapping(c, sf_cfg_get(c, n, "map"), mpath);
        free(epath);
        free(mpath);
        return m;
}

sf_mapping_t *sf_cfg_mapping(sf_cfgctx_t *c, yaml_node_t *n, const char *path)
{
        sf_mapping_t *m = NULL, *child;
        cJSON *lit;
        int line, col;
        size_t i = 0;

        if (!n || sf_cfg_is_bad(c, n))
                return NULL;
        line = (int)n->start_mark.line + 1;
        col = (int)n->start_mark.column + 1;
        switch (n->type) {
        case YAML_SCALAR_NODE:
                if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                    (lit = cfg_literal(sf_cfg_scalar(c, n)))) {
                        m = sf_mapping_new(SF_MAP_LITERAL, line, col);
                        m->literal = lit;
                        break;
                }
                m = sf_mapping_new(SF_MAP_TEMPLATE, line, col);
                m->tpl = sf_cfg_template(c, n, path);
                if (!m->tpl) {
                        sf_mapping_destroy(m);
                        m = NULL;
                }
                break;
        case YAML_SEQUENCE_NODE:
                m = sf_mapping_new(SF_MAP_ARRAY, line, col);
                for (yaml_node_item_t *it = n->data.sequence.items.start;
                     it < n->data.sequence.items.top; it++, i++) {
                        char *ipath = sf_cfg_path_index(path, i);

                        child = sf_cfg_mapping(c, sf_cfg_node(c, *it), ipath);
                        if (child)
                                sf_mapping_add_child(m, child);
                        free(ipath);
                }
                break;
        case YAML_MAPPING_NODE:
                sf_cfg_map(c, n, path);
                if (cfg_is_each(c, n)) {
                        m = cfg_each(c, n, path, line, col);
                        break;
                }
                m = sf_mapping_new(SF_MAP_OBJECT, line, col);
                for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
                     p < n->data.mapping.pairs.top; p++) {
                        const char *key;
                        char *fpath;

                        if (!sf_cfg_pair_ok(c, n, p))
                                continue;
                        key = sf_cfg_scalar(c, sf_cfg_node(c, p->key));
                        fpath = sf_cfg_path(path, key);
                        child =
                            sf_cfg_mapping(c, sf_cfg_node(c, p->value), fpath);
                        free(fpath);
                        if (!child)
                                continue;
                        child->name = sf_strdup(key);
                        sf_mapping_add_child(m, child);
                }
                break;
        default:
                break;
        }
        return m;
}
