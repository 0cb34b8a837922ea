/*
 * The dry run of `syncfleet validate --event FILE`: what the pipeline would
 * do with one change, without sending anything. For every subscriber it
 * shows the routing decision (table and event, the used-fields check, the
 * redirect to the root record) and, for those triggered, the request or
 * document it would produce — the studio's "test process".
 *
 * The event is a sync-log value (DESIGN.md): {"op":"u","source":{"table":
 * "customers"},"before":{..},"after":{..}}; "table" may stand at the top
 * instead of in source, and "key" gives the record key when the table's key
 * columns are not in the images. Records read in query mode, or for a
 * redirected event, come from the source database, read-only.
 */
#include "dry_run.h"

#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "render.h"
#include "router.h"
#include "sf.h"
#include "source_db.h"

#define SF_DRY_MAX_SUBS  256
#define SF_DRY_MAX_BYTES (8 * 1024 * 1024)

static char *sf_read_all(const char *path, char *errstr, size_t errstr_size)
{
        FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
        sf_buf_t b;
        char chunk[8192];
        size_t n;

        if (!f) {
                sf_seterr(errstr, errstr_size, "%s: cannot open", path);
                return NULL;
        }
        sf_buf_init(&b, SF_DRY_MAX_BYTES);
        while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
                if (sf_buf_append(&b, chunk, n)) {
                        sf_seterr(errstr, errstr_size, "%s: larger than 8 MiB",
                                  path);
                        sf_buf_free(&b);
                        break;
                }
        if (f != stdin)
                fclose(f);
        if (!b.data && !errstr[0])
                sf_seterr(errstr, errstr_size, "%s: empty", path);
        return b.data;
}

/* Builds the sync-log key and value from the user's event and parses them
 * the way the router does. */
static int sf_dry_change(const sf_config_t *cfg, const char *text,
                         sf_change_t *ch, char *errstr, size_t errstr_size)
{
        cJSON *v = sf_json_parse(text, strlen(text)), *src, *key = NULL,
              *k = NULL;
        const cJSON *tname, *image;
        char *table = NULL;
        const sf_table_cfg_t *t;
        char *kjson = NULL, *vjson = NULL;
        int rc = -1;

        if (!cJSON_IsObject(v)) {
                sf_seterr(errstr, errstr_size,
                          "the event is not a JSON object");
                goto out;
        }
        src = cJSON_GetObjectItemCaseSensitive(v, "source");
        tname = cJSON_GetObjectItemCaseSensitive(src, "table");
        if (!cJSON_IsString(tname))
                tname = cJSON_GetObjectItemCaseSensitive(v, "table");
        if (!cJSON_IsString(tname)) {
                sf_seterr(errstr, errstr_size,
                          "the event names no table (\"table\" or "
                          "source.table)");
                goto out;
        }
        table = sf_strdup(tname->valuestring);
        if (!cJSON_IsObject(src)) {
                cJSON_DeleteItemFromObjectCaseSensitive(v, "source");
                src = cJSON_AddObjectToObject(v, "source");
        }
        if (!cJSON_GetObjectItemCaseSensitive(src, "connector"))
                cJSON_AddStringToObject(src, "connector", "dry-run");
        if (!cJSON_GetObjectItemCaseSensitive(src, "db"))
                cJSON_AddStringToObject(src, "db", "dry-run");
        if (!cJSON_GetObjectItemCaseSensitive(src, "table"))
                cJSON_AddStringToObject(src, "table", table);
        if (!cJSON_GetObjectItemCaseSensitive(v, "ts_ms"))
                cJSON_AddNumberToObject(v, "ts_ms", (double)sf_now_ms());
        cJSON_DeleteItemFromObjectCaseSensitive(v, "table");
        key = cJSON_DetachItemFromObjectCaseSensitive(v, "key");
        if (!key && (t = sf_config_table(cfg, table))) {
                image = cJSON_GetObjectItemCaseSensitive(v, "after");
                if (!cJSON_IsObject(image))
                        image = cJSON_GetObjectItemCaseSensitive(v, "before");
                key = cJSON_CreateObject();
                for (size_t i = 0; i < t->key_cnt; i++) {
                        const cJSON *c =
                            cJSON_GetObjectItemCaseSensitive(image, t->key[i]);

                        if (!c) {
                                sf_seterr(errstr, errstr_size,
                                          "key column %s of %s is not in the "
                                          "event; give \"key\"",
                                          t->key[i], t->name);
                                goto out;
                        }
                        cJSON_AddItemToObject(key, t->key[i],
                                              cJSON_Duplicate(c, 1));
                }
        }
        k = cJSON_CreateObject();
        cJSON_AddItemToObject(k, "key", key ? key : cJSON_CreateObject());
        key = NULL;
        cJSON_AddStringToObject(k, "table", table);
        kjson = sf_json_print(k, 0);
        vjson = sf_json_print(v, 0);
        rc = sf_change_parse(kjson, strlen(kjson), vjson, strlen(vjson),
                             "dry-run", ch, errstr, errstr_size);
out:
        free(table);
        cJSON_Delete(v);
        cJSON_Delete(key);
        cJSON_Delete(k);
        free(kjson);
        free(vjson);
        return rc;
}

/* The record the action exports, as a worker would load it; NULL with a
 * reason printed when it cannot be had. */
static cJSON *sf_dry_record(const sf_config_t *cfg, const sf_action_cfg_t *a,
                            const sf_outbound_t *ob, sf_source_db_t **db,
                            FILE *out)
{
        int redirected = strcmp(ob->table, ob->root_table) != 0;
        const sf_table_cfg_t *root = sf_config_table(cfg, ob->root_table);
        cJSON *rec = NULL;
        char errstr[512] = "";

        if (a->source.mode == SF_MODE_EVENT && !redirected && ob->record)
                return cJSON_Duplicate(ob->record, 1);
        if (!strcmp(ob->event, "delete") && !redirected) {
                rec = cJSON_Duplicate(ob->record ? ob->record : ob->key, 1);
                for (size_t i = 0; i < a->source.records_cnt; i++)
                        cJSON_AddItemToObject(rec, a->source.records[i].name,
                                              cJSON_CreateArray());
                return rec;
        }
        fprintf(out, "  record: read from the source database (%s)\n",
                redirected ? "redirected event" : "query mode");
        if (!*db)
                *db = sf_source_db_open(cfg, errstr, sizeof(errstr));
        if (!*db || sf_source_db_get(*db, root, ob->root_key, &rec, errstr,
                                     sizeof(errstr)) != SF_OK) {
                fprintf(out, "  cannot read it: %s\n", errstr);
                return NULL;
        }
        if (!rec) {
                fprintf(out, "  no %s record has that key: nothing to export\n",
                        ob->root_table);
                return NULL;
        }
        for (size_t i = 0; i < a->source.records_cnt; i++) {
                cJSON *children = NULL;

                if (sf_source_db_children(*db, &a->source.records[i], rec,
                                          &children, errstr,
                                          sizeof(errstr)) != SF_OK) {
                        fprintf(out, "  cannot read records.%s: %s\n",
                                a->source.records[i].name, errstr);
                        cJSON_Delete(rec);
                        return NULL;
                }
                cJSON_AddItemToObject(rec, a->source.records[i].name, children);
        }
        return rec;
}

/* The document, indented by two spaces per level under the request. */
static void sf_dry_print_json(FILE *out, const cJSON *v)
{
        char *s = sf_json_print(v, SF_JSON_PRETTY);

        fputs("    ", out);
        for (const char *p = s; *p; p++) {
                if (*p == '\t')
                        fputs(p > s && p[-1] == ':' ? " " : "  ", out);
                else if (*p == '\n')
                        fputs("\n    ", out);
                else
                        fputc(*p, out);
        }
        fputc('\n', out);
        free(s);
}

static void sf_dry_target(FILE *out, const sf_target_cfg_t *t,
                          const sf_rendered_t *r, const char *action,
                          const char *event_id)
{
        const sf_connector_cfg_t *c = t->conn;

        switch (c->type) {
        case SF_CONN_HTTP:
                fprintf(out, "  %s %s%s\n", r->method, c->base_url,
                        r->path ? r->path : "");
                fprintf(out, "  Idempotency-Key: %s\n", event_id);
                break;
        case SF_CONN_FILE:
                if (c->format == SF_FILE_JSON)
                        fprintf(out, "  write %s/%s\n", c->dir, r->path);
                else
                        fprintf(out, "  append a line to %s/%s.jsonl\n", c->dir,
                                action);
                break;
        case SF_CONN_DATABASE:
                fprintf(out, "  %s %s in the source database\n",
                        t->operation ? t->operation : "insert", t->table);
                break;
        case SF_CONN_KAFKA:
                fprintf(out, "  produce to topic %s\n",
                        t->topic ? t->topic : c->topic);
                break;
        }
        if (r->body)
                sf_dry_print_json(out, r->body);
}

int sf_dry_run(const sf_config_t *cfg, const char *event_file, FILE *out,
               char *errstr, size_t errstr_size)
{
        sf_outbound_t obs[SF_DRY_MAX_SUBS];
        sf_source_db_t *db = NULL;
        sf_change_t ch;
        sf_buf_t why;
        char *text, *kjson;
        int n;

        memset(&ch, 0, sizeof(ch));
        errstr[0] = '\0';
        text = sf_read_all(event_file, errstr, errstr_size);
        if (!text)
                return -1;
        if (sf_dry_change(cfg, text, &ch, errstr, errstr_size)) {
                free(text);
                sf_change_clear(&ch);
                return -1;
        }
        free(text);
        sf_buf_init(&why, 0);
        n = sf_route_change(cfg, &ch, sf_now_ms(), obs, SF_DRY_MAX_SUBS, &why,
                            errstr, errstr_size);
        if (n < 0) {
                sf_buf_free(&why);
                sf_change_clear(&ch);
                return -1;
        }
        kjson = sf_json_canonical(ch.key);
        fprintf(out, "event: %s on %s, key %s (dry run: nothing is sent)\n",
                sf_op_event_name(ch.op), ch.table, kjson);
        free(kjson);
        fprintf(out, "routing:\n");
        if (why.data) {
                char *line, *save = NULL;

                for (line = strtok_r(why.data, "\n", &save); line;
                     line = strtok_r(NULL, "\n", &save))
                        fprintf(out, "  %s\n", line);
        }
        for (int i = 0; i < n; i++) {
                const sf_action_cfg_t *a = sf_config_action(cfg, obs[i].action);
                const sf_mapping_t *mapping;
                const sf_target_cfg_t *t =
                    sf_render_target(a, SF_STEP_MAIN, &mapping);
                sf_rendered_t r;
                cJSON *rec;
                char err[512];

                fprintf(out, "%s %s:\n",
                        a->kind == SF_KIND_MESSAGE ? "message"
                                                   : "web service action",
                        a->name);
                rec = sf_dry_record(cfg, a, &obs[i], &db, out);
                if (!rec)
                        continue;
                if (sf_render(a, SF_STEP_MAIN, &obs[i], rec, NULL, &r, err,
                              sizeof(err))) {
                        fprintf(out, "  would go to the DLQ: %s\n", err);
                } else if (r.skip) {
                        fprintf(out, "  on_delete: skip, nothing is sent\n");
                } else {
                        sf_dry_target(out, t, &r, a->name, "dry-run");
                        sf_rendered_clear(&r);
                }
                if (a->kind == SF_KIND_WEBSERVICE && a->has_response)
                        fprintf(out,
                                "  then on 2xx: the response mapping to "
                                "connector %s\n",
                                a->response_target.connector);
                if (a->kind == SF_KIND_WEBSERVICE && a->has_error)
                        fprintf(out,
                                "  when the call finally fails: the error "
                                "mapping to connector %s\n",
                                a->error_target.connector);
                cJSON_Delete(rec);
        }
        for (int i = 0; i < n; i++)
                sf_outbound_clear(&obs[i]);
        sf_source_db_close(db);
        sf_buf_free(&why);
        sf_change_clear(&ch);
        return 0;
}
