/*
 * Rendering one step of an action, and the one place that says what a
 * template's context holds (PIPELINE.md, "Templates"). A path reads the
 * exported record's own fields by their names, whatever they are called:
 * the after image, the before image of a delete, or the record re-read in
 * query mode with its child records. Everything syncfleet adds is read
 * only as @name, from an object of its own: @op, @event, @table, @key,
 * @before, @after, @event_id, and the reply of the response step
 * (@response, @status, @headers) or the failure of the error step
 * (@error). No column can hide one of these, nor be hidden by one.
 */
#include "render.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "sf.h"

const sf_target_cfg_t *sf_render_target(const sf_action_cfg_t *a,
                                        sf_step_t step,
                                        const sf_mapping_t **mapping)
{
        *mapping = NULL;
        if (a->kind == SF_KIND_MESSAGE) {
                *mapping = a->mapping;
                return &a->target;
        }
        switch (step) {
        case SF_STEP_MAIN:
                *mapping = a->request_body;
                return &a->request;
        case SF_STEP_RESPONSE:
                *mapping = a->response_mapping;
                return &a->response_target;
        case SF_STEP_ERROR:
                *mapping = a->error_mapping;
                return &a->error_target;
        }
        return NULL;
}

static int sf_is_delete(const sf_outbound_t *ob)
{
        return ob->event && !strcmp(ob->event, "delete");
}

/* syncfleet's names for OB, which exports RECORD, plus the members of
 * REPLY. Values are references into OB, RECORD and REPLY, which must
 * outlive the result. */
static cJSON *sf_at_names(const sf_outbound_t *ob, const cJSON *record,
                          const cJSON *reply)
{
        cJSON *s = cJSON_CreateObject();
        const cJSON *m;
        const char *op = !strcmp(ob->event, "insert")   ? "c"
                         : !strcmp(ob->event, "delete") ? "d"
                                                        : "u";

        cJSON_AddStringToObject(s, "op", op);
        cJSON_AddStringToObject(s, "event", ob->event);
        cJSON_AddStringToObject(s, "table", ob->root_table);
        if (ob->root_key)
                cJSON_AddItemReferenceToObject(s, "key", ob->root_key);
        if (ob->before)
                cJSON_AddItemReferenceToObject(s, "before", ob->before);
        if (!sf_is_delete(ob) && record)
                cJSON_AddItemReferenceToObject(s, "after", (cJSON *)record);
        cJSON_AddStringToObject(s, "event_id",
                                ob->event_id ? ob->event_id : "");
        cJSON_ArrayForEach(m, reply)
        {
                if (m->string)
                        cJSON_AddItemReferenceToObject(s, m->string,
                                                       (cJSON *)m);
        }
        return s;
}

cJSON *sf_render_reply_response(const cJSON *response, int http_status,
                                const char *headers_json)
{
        cJSON *r = cJSON_CreateObject();
        cJSON *h = headers_json
                       ? sf_json_parse(headers_json, strlen(headers_json))
                       : NULL;

        cJSON_AddItemToObject(r, "response",
                              response ? cJSON_Duplicate(response, 1)
                                       : cJSON_CreateNull());
        cJSON_AddNumberToObject(r, "status", http_status);
        if (!cJSON_IsObject(h)) {
                cJSON_Delete(h);
                h = cJSON_CreateObject();
        }
        cJSON_AddItemToObject(r, "headers", h);
        return r;
}

cJSON *sf_render_reply_error(int http_status, const char *message, int attempts)
{
        cJSON *r = cJSON_CreateObject();
        cJSON *err = cJSON_AddObjectToObject(r, "error");

        cJSON_AddNumberToObject(err, "status", http_status);
        cJSON_AddStringToObject(err, "message", message ? message : "");
        cJSON_AddNumberToObject(err, "attempts", attempts);
        return r;
}

/* A file name for json-format file targets: action, key values, event id,
 * reduced to [A-Za-z0-9._-]. */
static char *sf_file_name(const sf_outbound_t *ob)
{
        char num[64];
        sf_buf_t b;
        const cJSON *v;

        sf_buf_init(&b, 4096);
        sf_buf_printf(&b, "%s", ob->action);
        cJSON_ArrayForEach(v, ob->root_key)
        {
                if (cJSON_IsString(v))
                        sf_buf_printf(&b, "-%s", v->valuestring);
                else if (cJSON_IsNumber(v))
                        sf_buf_printf(&b, "-%s",
                                      sf_json_number_text(v, num, sizeof(num)));
        }
        sf_buf_printf(&b, "-%s.json", ob->event_id ? ob->event_id : "noid");
        for (size_t i = 0; i < b.len; i++) {
                unsigned char c = (unsigned char)b.data[i];

                if (!isalnum(c) && c != '.' && c != '-' && c != '_')
                        b.data[i] = '_';
        }
        if (b.data[0] == '.')
                b.data[0] = '_';
        return sf_buf_steal(&b);
}

static int sf_mapping_names(const sf_mapping_t *m, const char *field)
{
        for (size_t i = 0; m && m->type == SF_MAP_OBJECT && i < m->child_cnt;
             i++)
                if (m->children[i]->name &&
                    !strcmp(m->children[i]->name, field))
                        return 1;
        return 0;
}

/* The key of a write-back (response or error handling writing into a
 * table) comes from the exported record, so a reply cannot choose the row
 * it changes: every key column of T in DOC is set from OB's key (the
 * record's own field when the key does not have it), over whatever the
 * mapping M rendered, unless M names that column itself
 * (`id: "{{@response.id}}"`): then the pipeline said so. */
static int sf_writeback_key(const sf_target_cfg_t *t, const sf_mapping_t *m,
                            const sf_outbound_t *ob, const cJSON *record,
                            cJSON *doc, char *errstr, size_t errstr_size)
{
        if (!cJSON_IsObject(doc))
                return 0; /* the connector refuses it with its reason */
        for (size_t i = 0; i < t->key_cnt; i++) {
                const char *k = t->key[i];
                const cJSON *v =
                    cJSON_GetObjectItemCaseSensitive(ob->root_key, k);

                if (sf_mapping_names(m, k))
                        continue;
                if (!v)
                        v = cJSON_GetObjectItemCaseSensitive(record, k);
                if (!v) {
                        sf_seterr(errstr, errstr_size,
                                  "write-back to %s: the key column %s is "
                                  "neither in the mapping nor a field of the "
                                  "record",
                                  t->table ? t->table : "?", k);
                        return -1;
                }
                cJSON_DeleteItemFromObjectCaseSensitive(doc, k);
                cJSON_AddItemToObject(doc, k, cJSON_Duplicate(v, 1));
        }
        return 0;
}

/* The length of a separator at P ('/', '\\', or their encodings %2F and
 * %5C), 0 when there is none. */
static size_t sf_path_sep(const char *p)
{
        if (*p == '/' || *p == '\\')
                return 1;
        if (p[0] == '%' && p[1] &&
            ((p[1] == '2' && (p[2] == 'F' || p[2] == 'f')) ||
             (p[1] == '5' && (p[2] == 'C' || p[2] == 'c'))))
                return 3;
        return 0;
}

/* How many dots the segment P..END is when it is only dots, written as
 * '.' or %2E; 0 when it holds anything else. */
static int sf_path_dots(const char *p, const char *end)
{
        int dots = 0;

        while (p < end) {
                if (*p == '.') {
                        p++;
                } else if (end - p >= 3 && p[0] == '%' && p[1] == '2' &&
                           (p[2] == 'E' || p[2] == 'e')) {
                        p += 3;
                } else {
                        return 0;
                }
                dots++;
        }
        return dots;
}

int sf_render_path_confined(const char *path)
{
        const char *p = path;
        long depth = 0;

        if (!p)
                return 1;
        p += sf_path_sep(p); /* the seam with the base path */
        while (*p && *p != '?' && *p != '#') {
                const char *start = p;
                size_t sep = 0;
                int dots;

                while (*p && *p != '?' && *p != '#' && !(sep = sf_path_sep(p)))
                        p++;
                dots = sf_path_dots(start, p);
                if (dots == 2 && --depth < 0)
                        return 0;
                if (dots != 1 && dots != 2)
                        depth++;
                p += sep;
        }
        return 1;
}

int sf_render(const sf_action_cfg_t *a, sf_step_t step, const sf_outbound_t *ob,
              const cJSON *record, const cJSON *reply, sf_rendered_t *out,
              char *errstr, size_t errstr_size)
{
        const sf_mapping_t *mapping;
        const sf_target_cfg_t *t = sf_render_target(a, step, &mapping);
        sf_scope_t s_record, s_at;
        const sf_scope_t *scope;
        cJSON *at;
        int is_delete = sf_is_delete(ob), rc = -1;

        memset(out, 0, sizeof(*out));
        out->method = t->method ? t->method : "PUT";
        if (a->kind == SF_KIND_MESSAGE && is_delete && t->delete_skip) {
                out->skip = 1;
                return 0;
        }
        at = sf_at_names(ob, record, step == SF_STEP_MAIN ? NULL : reply);
        s_record = (sf_scope_t){.obj = record, .next = NULL, .at = 0};
        s_at = (sf_scope_t){.obj = at, .next = &s_record, .at = 1};
        scope = &s_at;
        if (t->conn->type == SF_CONN_HTTP) {
                const sf_template_t *ptpl = t->path;
                int http_delete = a->kind == SF_KIND_MESSAGE && is_delete;

                if (http_delete) {
                        out->method =
                            t->delete_method ? t->delete_method : "DELETE";
                        if (t->delete_path)
                                ptpl = t->delete_path;
                        mapping = NULL; /* a DELETE carries no document */
                }
                if (ptpl) {
                        out->path = sf_template_render_str(ptpl, scope,
                                                           SF_RENDER_URLENCODE,
                                                           errstr, errstr_size);
                        if (!out->path)
                                goto out;
                        if (!sf_render_path_confined(out->path)) {
                                sf_seterr(errstr, errstr_size,
                                          "path \"%s\" of \"%s\" leaves "
                                          "the base path of connector %s",
                                          out->path, sf_template_source(ptpl),
                                          t->conn->name ? t->conn->name
                                                        : "http");
                                goto out;
                        }
                }
        } else if (t->conn->type == SF_CONN_FILE &&
                   t->conn->format == SF_FILE_JSON) {
                out->path = sf_file_name(ob);
        }
        if (mapping) {
                out->body =
                    sf_mapping_render(mapping, scope, errstr, errstr_size);
                if (!out->body)
                        goto out;
                if (step != SF_STEP_MAIN && t->conn->type == SF_CONN_DATABASE &&
                    sf_writeback_key(t, mapping, ob, record, out->body, errstr,
                                     errstr_size))
                        goto out;
        }
        rc = 0;
out:
        if (rc)
                sf_rendered_clear(out);
        cJSON_Delete(at);
        return rc;
}

void sf_rendered_clear(sf_rendered_t *r)
{
        free(r->path);
        cJSON_Delete(r->body);
        r->path = NULL;
        r->body = NULL;
}
