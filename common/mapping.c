/*
 * Mappings: a tree that mirrors the target document, built by the config
 * loader and rendered here per record. Errors name the place in the
 * document ("lines[2].qty: ...") so a dead-lettered record says where its
 * mapping failed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf.h"
#include "template.h"
#include "template_int.h"

/* Document paths longer than this are cut short in messages. */
#define SF_MAP_PATH_MAX 4096

sf_mapping_t *sf_mapping_new(sf_mapping_type_t type, int line, int col)
{
        sf_mapping_t *m = sf_calloc(1, sizeof(*m));

        m->type = type;
        m->line = line;
        m->col = col;
        return m;
}

void sf_mapping_add_child(sf_mapping_t *parent, sf_mapping_t *child)
{
        parent->children =
            sf_realloc(parent->children,
                       (parent->child_cnt + 1) * sizeof(*parent->children));
        parent->children[parent->child_cnt++] = child; /* now owned */
}

void sf_mapping_destroy(sf_mapping_t *m)
{
        size_t i;

        if (!m)
                return;
        for (i = 0; i < m->child_cnt; i++)
                sf_mapping_destroy(m->children[i]);
        free(m->children);
        free(m->name);
        cJSON_Delete(m->literal);
        sf_template_destroy(m->tpl);
        free(m->each_path);
        sf_mapping_destroy(m->each_map);
        free(m);
}

static void sf_map_fail(const sf_buf_t *path, char *errstr, size_t errstr_size,
                        const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void sf_map_fail(const sf_buf_t *path, char *errstr, size_t errstr_size,
                        const char *fmt, ...)
{
        char msg[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (path->len)
                sf_seterr(errstr, errstr_size, "%s: %s", path->data, msg);
        else
                sf_seterr(errstr, errstr_size, "%s", msg);
}

/* Appends one step to the document path; the caller puts the old length
 * back with sf_map_pop. A path past the cap simply stops growing. */
static size_t sf_map_push_name(sf_buf_t *path, const char *name)
{
        size_t saved = path->len;

        if (saved)
                sf_buf_append(path, ".", 1);
        sf_buf_append(path, name, strlen(name));
        return saved;
}

static size_t sf_map_push_index(sf_buf_t *path, size_t i)
{
        size_t saved = path->len;

        sf_buf_printf(path, "[%zu]", i);
        return saved;
}

static void sf_map_pop(sf_buf_t *path, size_t saved)
{
        if (path->len > saved) {
                path->len = saved;
                path->data[saved] = '\0';
        }
}

static cJSON *sf_map_render(const sf_mapping_t *m, const sf_scope_t *scope,
                            sf_buf_t *path, int depth, char *errstr,
                            size_t errstr_size);

static cJSON *sf_map_render_each(const sf_mapping_t *m, const sf_scope_t *scope,
                                 sf_buf_t *path, int depth, char *errstr,
                                 size_t errstr_size)
{
        char **parts = NULL, what[96];
        size_t part_cnt = 0, i = 0, saved;
        const cJSON *arr, *el;
        cJSON *res = NULL, *v;
        sf_scope_t inner;

        if (!m->each_path || !m->each_map ||
            sf_template_split_path(m->each_path, &parts, &part_cnt)) {
                sf_map_fail(path, errstr, errstr_size,
                            "each needs a field path and a map, got '%s'",
                            m->each_path ? m->each_path : "");
                goto out;
        }
        arr = sf_template_lookup(scope, parts, part_cnt);
        if (!arr) {
                sf_map_fail(path, errstr, errstr_size,
                            "missing field '%s' for each", m->each_path);
                goto out;
        }
        res = cJSON_CreateArray();
        if (cJSON_IsNull(arr))
                goto out;
        if (!cJSON_IsArray(arr)) {
                sf_template_describe(arr, what, sizeof(what));
                sf_map_fail(path, errstr, errstr_size,
                            "each over '%s' needs an array, got %s",
                            m->each_path, what);
                cJSON_Delete(res);
                res = NULL;
                goto out;
        }
        cJSON_ArrayForEach(el, arr)
        {
                saved = sf_map_push_index(path, i++);
                v = NULL;
                if (!cJSON_IsObject(el)) {
                        sf_template_describe(el, what, sizeof(what));
                        sf_map_fail(path, errstr, errstr_size,
                                    "each element of '%s' must be an object, "
                                    "got %s",
                                    m->each_path, what);
                } else {
                        inner.obj = el;
                        inner.next = scope;
                        inner.at = 0;
                        v = sf_map_render(m->each_map, &inner, path, depth + 1,
                                          errstr, errstr_size);
                }
                sf_map_pop(path, saved);
                if (!v) {
                        cJSON_Delete(res);
                        res = NULL;
                        goto out;
                }
                cJSON_AddItemToArray(res, v);
        }
out:
        sf_template_parts_free(parts, part_cnt);
        return res;
}

static cJSON *sf_map_render(const sf_mapping_t *m, const sf_scope_t *scope,
                            sf_buf_t *path, int depth, char *errstr,
                            size_t errstr_size)
{
        char err[1024];
        cJSON *res = NULL, *v;
        size_t i, saved;

        if (depth > SF_TEMPLATE_DEPTH_MAX) {
                sf_map_fail(path, errstr, errstr_size,
                            "mapping nested deeper than %d levels",
                            SF_TEMPLATE_DEPTH_MAX);
                return NULL;
        }
        switch (m->type) {
        case SF_MAP_LITERAL:
                return m->literal ? cJSON_Duplicate(m->literal, 1)
                                  : cJSON_CreateNull();
        case SF_MAP_TEMPLATE:
                if (!m->tpl) {
                        sf_map_fail(path, errstr, errstr_size,
                                    "mapping node has no template");
                        return NULL;
                }
                res = sf_template_render(m->tpl, scope, err, sizeof(err));
                if (!res)
                        sf_map_fail(path, errstr, errstr_size, "%s", err);
                return res;
        case SF_MAP_OBJECT:
        case SF_MAP_ARRAY:
                res = m->type == SF_MAP_OBJECT ? cJSON_CreateObject()
                                               : cJSON_CreateArray();
                for (i = 0; i < m->child_cnt; i++) {
                        const sf_mapping_t *c = m->children[i];

                        saved =
                            m->type == SF_MAP_OBJECT
                                ? sf_map_push_name(path, c->name ? c->name : "")
                                : sf_map_push_index(path, i);
                        v = sf_map_render(c, scope, path, depth + 1, errstr,
                                          errstr_size);
                        sf_map_pop(path, saved);
                        if (!v) {
                                cJSON_Delete(res);
                                return NULL;
                        }
                        if (m->type == SF_MAP_OBJECT)
                                cJSON_AddItemToObject(
                                    res, c->name ? c->name : "", v);
                        else
                                cJSON_AddItemToArray(res, v);
                }
                return res;
        case SF_MAP_EACH:
                return sf_map_render_each(m, scope, path, depth, errstr,
                                          errstr_size);
        }
        sf_map_fail(path, errstr, errstr_size, "unknown mapping node type %d",
                    (int)m->type);
        return NULL;
}

cJSON *sf_mapping_render(const sf_mapping_t *m, const sf_scope_t *scope,
                         char *errstr, size_t errstr_size)
{
        sf_buf_t path;
        cJSON *res;

        sf_buf_init(&path, SF_MAP_PATH_MAX);
        res = sf_map_render(m, scope, &path, 1, errstr, errstr_size);
        sf_buf_free(&path);
        return res;
}

/* Reports references depth first in document order; an each path comes
 * before the references of its map. */
void sf_mapping_refs(const sf_mapping_t *m, sf_ref_cb *cb, void *opaque)
{
        size_t i;

        if (!m)
                return;
        if (m->type == SF_MAP_TEMPLATE && m->tpl)
                sf_template_refs(m->tpl, cb, opaque);
        if (m->type == SF_MAP_EACH && m->each_path)
                cb(m->each_path, opaque);
        for (i = 0; i < m->child_cnt; i++)
                sf_mapping_refs(m->children[i], cb, opaque);
        sf_mapping_refs(m->each_map, cb, opaque);
}
