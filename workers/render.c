/*
 * Rendering one step of an action. The template scope, innermost first:
 * the reply (response and error steps: response.*, status, headers.*,
 * error.*, and record.* for the exported record), then the special names
 * of PIPELINE.md (op, event, table, key, before, after, event_id), then the
 * exported record's own fields.
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

static cJSON *sf_specials(const sf_outbound_t *ob, const cJSON *record)
{
        cJSON *s = cJSON_CreateObject();
        const char *op = !strcmp(ob->event, "insert")   ? "c"
                         : !strcmp(ob->event, "delete") ? "d"
                                                        : "u";

        cJSON_AddStringToObject(s, "op", op);
        cJSON_AddStringToObject(s, "event", ob->event);
        cJSON_AddStringToObject(s, "table", ob->root_table);
        cJSON_AddItemToObject(s, "key", cJSON_Duplicate(ob->root_key, 1));
        if (ob->before)
                cJSON_AddItemToObject(s, "before",
                                      cJSON_Duplicate(ob->before, 1));
        if (!sf_is_delete(ob) && record)
                cJSON_AddItemToObject(s, "after", cJSON_Duplicate(record, 1));
        cJSON_AddStringToObject(s, "event_id",
                                ob->event_id ? ob->event_id : "");
        return s;
}

/* A file name for json-format file targets: action, key values, event id,
 * reduced to [A-Za-z0-9._-]. */
static char *sf_file_name(const sf_outbound_t *ob)
{
        sf_buf_t b;
        const cJSON *v;

        sf_buf_init(&b, 4096);
        sf_buf_printf(&b, "%s", ob->action);
        cJSON_ArrayForEach(v, ob->root_key)
        {
                if (cJSON_IsString(v))
                        sf_buf_printf(&b, "-%s", v->valuestring);
                else if (cJSON_IsNumber(v))
                        sf_buf_printf(&b, "-%.17g", v->valuedouble);
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

int sf_render(const sf_action_cfg_t *a, sf_step_t step, const sf_outbound_t *ob,
              const cJSON *record, const cJSON *reply, sf_rendered_t *out,
              char *errstr, size_t errstr_size)
{
        const sf_mapping_t *mapping;
        const sf_target_cfg_t *t = sf_render_target(a, step, &mapping);
        sf_scope_t s_record, s_special, s_reply, s_wrap;
        const sf_scope_t *scope;
        cJSON *specials, *wrap = NULL;
        int is_delete = sf_is_delete(ob), rc = -1;

        memset(out, 0, sizeof(*out));
        out->method = t->method ? t->method : "PUT";
        if (a->kind == SF_KIND_MESSAGE && is_delete && t->delete_skip) {
                out->skip = 1;
                return 0;
        }
        specials = sf_specials(ob, record);
        s_record = (sf_scope_t){.obj = record, .next = NULL};
        s_special = (sf_scope_t){.obj = specials, .next = &s_record};
        scope = &s_special;
        if (step != SF_STEP_MAIN) {
                /* record.* reads the exported record without copying it */
                wrap = cJSON_CreateObject();
                cJSON_AddItemReferenceToObject(wrap, "record", (cJSON *)record);
                s_reply = (sf_scope_t){.obj = reply, .next = scope};
                s_wrap = (sf_scope_t){.obj = wrap, .next = &s_reply};
                scope = &s_wrap;
        }
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
        }
        rc = 0;
out:
        if (rc)
                sf_rendered_clear(out);
        cJSON_Delete(specials);
        cJSON_Delete(wrap);
        return rc;
}

void sf_rendered_clear(sf_rendered_t *r)
{
        free(r->path);
        cJSON_Delete(r->body);
        r->path = NULL;
        r->body = NULL;
}
