/*
 * The routing decision of the router, free of Kafka so that the router, the
 * dry run and the unit tests share it: which subscribers a change triggers
 * (table + event), whether an update touched a field the subscriber uses
 * (check_used_fields), and where a child record's event is redirected (its
 * root record).
 */
#include "router.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

static unsigned sf_op_bit(sf_op_t op)
{
        switch (op) {
        case SF_OP_CREATE:
        case SF_OP_READ:
                return SF_EV_INSERT;
        case SF_OP_UPDATE:
                return SF_EV_UPDATE;
        case SF_OP_DELETE:
                return SF_EV_DELETE;
        }
        return 0;
}

/* Whether one of the fields ACTION uses differs between BEFORE and AFTER.
 * A field missing from the before image (a partial image, as PostgreSQL
 * sends without REPLICA IDENTITY FULL) counts as changed: syncfleet cannot
 * tell, and a spurious export is better than a lost one. CHANGED gets the
 * first changed field for the explanation. */
static int sf_used_field_changed(const sf_action_cfg_t *a, const cJSON *before,
                                 const cJSON *after, const char **changed)
{
        *changed = NULL;
        if (!before || !after || !a->used_fields_cnt)
                return 1;
        for (size_t i = 0; i < a->used_fields_cnt; i++) {
                const char *f = a->used_fields[i];
                const cJSON *b = cJSON_GetObjectItemCaseSensitive(before, f);
                const cJSON *n = cJSON_GetObjectItemCaseSensitive(after, f);

                if (!b || !n || !sf_json_equal(b, n)) {
                        *changed = f;
                        return 1;
                }
        }
        return 0;
}

/* The key of TABLE's parent record, read from the child's IMAGE through the
 * parent relation, or NULL when the image lacks a column it needs. */
static cJSON *sf_parent_key(const sf_table_cfg_t *t, const cJSON *image,
                            const char **missing)
{
        cJSON *key = cJSON_CreateObject();

        for (size_t i = 0; i < t->parent_key_cnt; i++) {
                const cJSON *v = image ? cJSON_GetObjectItemCaseSensitive(
                                             image, t->child_cols[i])
                                       : NULL;

                if (!v || cJSON_IsNull(v)) {
                        *missing = t->child_cols[i];
                        cJSON_Delete(key);
                        return NULL;
                }
                cJSON_AddItemToObject(key, t->parent_cols[i],
                                      cJSON_Duplicate(v, 1));
        }
        return key;
}

static void sf_explain(sf_buf_t *explain, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void sf_explain(sf_buf_t *explain, const char *fmt, ...)
{
        char line[512];
        va_list ap;

        if (!explain)
                return;
        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        sf_buf_printf(explain, "%s\n", line);
}

static void sf_outbound_init(sf_outbound_t *o, const sf_action_cfg_t *a,
                             const sf_change_t *ch, int64_t now_ms)
{
        memset(o, 0, sizeof(*o));
        o->kind =
            sf_strdup(a->kind == SF_KIND_MESSAGE ? "message" : "webservice");
        o->action = sf_strdup(a->name);
        o->table = sf_strdup(ch->table);
        o->key = cJSON_Duplicate(ch->key, 1);
        o->event_id = sf_strdup(ch->event_id);
        o->source_ts_ms = ch->ts_ms;
        o->routed_ts_ms = now_ms;
}

int sf_route_change(const sf_config_t *cfg, const sf_change_t *ch,
                    int64_t now_ms, sf_outbound_t *out, size_t out_max,
                    sf_buf_t *explain, char *errstr, size_t errstr_size)
{
        const sf_table_cfg_t *t = sf_config_table(cfg, ch->table);
        const cJSON *image = ch->op == SF_OP_DELETE ? ch->before : ch->after;
        unsigned bit = sf_op_bit(ch->op);
        size_t n = 0;

        if (!t) {
                sf_explain(explain,
                           "table %s is not in the pipeline: "
                           "no subscriber",
                           ch->table);
                return 0;
        }
        for (size_t i = 0; i < cfg->action_cnt; i++) {
                const sf_action_cfg_t *a = &cfg->actions[i];
                const char *what = a->kind == SF_KIND_MESSAGE
                                       ? "message"
                                       : "web service action";
                const sf_table_cfg_t *sub = a->trigger.table_ref;
                const char *changed = NULL;
                const char *missing = NULL;
                sf_outbound_t *o;
                cJSON *root_key;

                if (sub == t) {
                        if (!(a->trigger.events & bit)) {
                                sf_explain(explain,
                                           "%s %s: not subscribed to %s on "
                                           "%s",
                                           what, a->name,
                                           sf_op_event_name(ch->op), t->name);
                                continue;
                        }
                        if (bit == SF_EV_UPDATE &&
                            a->trigger.check_used_fields &&
                            !sf_used_field_changed(a, ch->before, ch->after,
                                                   &changed)) {
                                sf_explain(explain,
                                           "%s %s: skipped, no field it uses "
                                           "changed",
                                           what, a->name);
                                continue;
                        }
                        if (n == out_max) {
                                sf_seterr(errstr, errstr_size,
                                          "more than %zu subscribers", out_max);
                                return -1;
                        }
                        o = &out[n++];
                        sf_outbound_init(o, a, ch, now_ms);
                        o->event = sf_strdup(sf_op_event_name(ch->op));
                        o->root_table = sf_strdup(t->name);
                        o->root_key = cJSON_Duplicate(ch->key, 1);
                        o->record = image ? cJSON_Duplicate(image, 1) : NULL;
                        o->before =
                            ch->before ? cJSON_Duplicate(ch->before, 1) : NULL;
                        if (bit == SF_EV_UPDATE && a->trigger.check_used_fields)
                                sf_explain(
                                    explain,
                                    "%s %s: triggered by %s (%s "
                                    "changed)",
                                    what, a->name, sf_op_event_name(ch->op),
                                    changed ? changed : "no before image");
                        else
                                sf_explain(explain, "%s %s: triggered by %s",
                                           what, a->name,
                                           sf_op_event_name(ch->op));
                        continue;
                }
                /* Redirect: an event on a child is an update of the root.
                 * The event carries the child's image only, so one level of
                 * parent is reachable; the worker reads the root record. */
                if (!t->parent || t->parent != sub)
                        continue;
                if (!a->trigger.redirect) {
                        sf_explain(explain,
                                   "%s %s: %s is a child of %s but redirect "
                                   "is off",
                                   what, a->name, t->name, sub->name);
                        continue;
                }
                if (!(a->trigger.events & SF_EV_UPDATE)) {
                        sf_explain(explain,
                                   "%s %s: redirected to %s as an update, "
                                   "but not subscribed to update",
                                   what, a->name, sub->name);
                        continue;
                }
                root_key = sf_parent_key(t, image, &missing);
                if (!root_key) {
                        sf_explain(explain,
                                   "%s %s: cannot redirect to %s: column %s "
                                   "is not in the event image",
                                   what, a->name, sub->name, missing);
                        sf_warn("router",
                                "cannot redirect %s event %s to %s for %s: "
                                "column %s is not in the event image",
                                t->name, ch->event_id ? ch->event_id : "?",
                                sub->name, a->name, missing);
                        continue;
                }
                if (n == out_max) {
                        cJSON_Delete(root_key);
                        sf_seterr(errstr, errstr_size,
                                  "more than %zu subscribers", out_max);
                        return -1;
                }
                o = &out[n++];
                sf_outbound_init(o, a, ch, now_ms);
                o->event = sf_strdup("update");
                o->root_table = sf_strdup(sub->name);
                o->root_key = root_key;
                sf_explain(explain,
                           "%s %s: %s on %s redirected to %s as an update",
                           what, a->name, sf_op_event_name(ch->op), t->name,
                           sub->name);
        }
        return (int)n;
}
