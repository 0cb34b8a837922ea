/*
 * The summary `syncfleet validate` prints for a valid pipeline: what is
 * captured per table and who subscribes to each event, then the
 * connectors and subscribers in file order. The format is stable (tests
 * and users' scripts read it); secrets are never printed.
 */
#include <stdio.h>
#include <string.h>

#include "config.h"

static const char *const ev_names[] = {"insert", "update", "delete"};

static void print_events(FILE *f, unsigned ev)
{
        int first = 1;

        for (int i = 0; i < 3; i++) {
                if (!(ev & (1u << i)))
                        continue;
                fprintf(f, "%s%s", first ? "" : ", ", ev_names[i]);
                first = 0;
        }
}

static const char *kind_name(const sf_action_cfg_t *a)
{
        return a->kind == SF_KIND_MESSAGE ? "message" : "web service action";
}

/* "update -> message a (when any of x, y changed), web service action b" */
static void print_subscribers(FILE *f, const sf_config_t *cfg,
                              const sf_table_cfg_t *t, unsigned bit)
{
        int first = 1;

        for (size_t i = 0; i < cfg->action_cnt; i++) {
                const sf_action_cfg_t *a = &cfg->actions[i];

                if (strcmp(a->trigger.table, t->name) ||
                    !(a->trigger.events & bit))
                        continue;
                if (first)
                        fprintf(f, "    %s -> ",
                                ev_names[bit == SF_EV_INSERT   ? 0
                                         : bit == SF_EV_UPDATE ? 1
                                                               : 2]);
                fprintf(f, "%s%s %s", first ? "" : ", ", kind_name(a), a->name);
                first = 0;
                /* with no used fields every update counts (the router's
                 * rule), so there is no condition to show */
                if (bit != SF_EV_UPDATE || !a->trigger.check_used_fields ||
                    !a->used_fields_cnt)
                        continue;
                fprintf(f, " (when any of ");
                for (size_t k = 0; k < a->used_fields_cnt; k++)
                        fprintf(f, "%s%s", k ? ", " : "", a->used_fields[k]);
                fprintf(f, " changed)");
        }
        if (!first)
                fputc('\n', f);
}

/* The child's events reach the root only through actions that subscribe
 * to the root's updates with redirect on. */
static int redirected(const sf_config_t *cfg, const sf_table_cfg_t *t)
{
        const sf_table_cfg_t *root = sf_config_root_table(t);

        if (root == t)
                return 0;
        for (size_t i = 0; i < cfg->action_cnt; i++) {
                const sf_trigger_cfg_t *tr = &cfg->actions[i].trigger;

                if (!strcmp(tr->table, root->name) && tr->redirect &&
                    (tr->events & SF_EV_UPDATE))
                        return 1;
        }
        return 0;
}

static void print_tables(FILE *f, const sf_config_t *cfg)
{
        fprintf(f, "captured table events:\n");
        if (!cfg->table_cnt)
                fprintf(f, "  (no tables)\n");
        for (size_t i = 0; i < cfg->table_cnt; i++) {
                const sf_table_cfg_t *t = &cfg->tables[i];
                unsigned ev = sf_config_captured_events(cfg, t);

                fprintf(f, "  %s: ", t->name);
                if (!ev) {
                        fprintf(f, "not captured\n");
                        continue;
                }
                print_events(f, ev);
                if (redirected(cfg, t))
                        fprintf(f, " (redirected to %s)",
                                sf_config_root_table(t)->name);
                fputc('\n', f);
                for (int b = 0; b < 3; b++)
                        print_subscribers(f, cfg, t, 1u << b);
        }
}

static void print_connectors(FILE *f, const sf_config_t *cfg)
{
        static const char *const auths[] = {"no auth", "basic auth",
                                            "bearer auth", "oauth2 auth"};

        if (!cfg->connector_cnt)
                return;
        fprintf(f, "connectors:\n");
        for (size_t i = 0; i < cfg->connector_cnt; i++) {
                const sf_connector_cfg_t *k = &cfg->connectors[i];

                fprintf(f, "  %s: ", k->name);
                switch (k->type) {
                case SF_CONN_HTTP:
                        fprintf(f, "http %s, %s, timeout %d ms", k->base_url,
                                auths[k->auth], k->timeout_ms);
                        break;
                case SF_CONN_FILE:
                        fprintf(f, "file %s (%s)", k->dir,
                                k->format == SF_FILE_JSON ? "json" : "jsonl");
                        break;
                case SF_CONN_DATABASE:
                        fprintf(f, "database (the source database)");
                        break;
                case SF_CONN_KAFKA:
                        fprintf(f, "kafka topic %s",
                                k->topic ? k->topic : "(set per target)");
                        break;
                }
                fputc('\n', f);
        }
}

static void print_target(FILE *f, const sf_target_cfg_t *t)
{
        fprintf(f, "%s", t->connector);
        if (t->conn && t->conn->type == SF_CONN_HTTP)
                fprintf(f, " %s %s", t->method,
                        t->path ? sf_template_source(t->path) : "/");
        if (t->has_on_delete && t->delete_skip)
                fprintf(f, ", deletes skipped");
        else if (t->has_on_delete)
                fprintf(f, ", on delete %s %s", t->delete_method,
                        t->delete_path ? sf_template_source(t->delete_path)
                                       : "(same path)");
        if (t->table)
                fprintf(f, " %s %s", t->operation, t->table);
        if (t->topic)
                fprintf(f, " topic %s", t->topic);
}

static void print_trigger(FILE *f, const sf_action_cfg_t *a)
{
        fprintf(f, "  %s: %s ", a->name, a->trigger.table);
        print_events(f, a->trigger.events);
        if (a->source.mode == SF_MODE_QUERY) {
                fprintf(f, " (query");
                for (size_t i = 0; i < a->source.records_cnt; i++)
                        fprintf(f, "%s %s from %s", i ? "," : ":",
                                a->source.records[i].name,
                                a->source.records[i].table);
                fprintf(f, ")");
        }
        if (!a->trigger.redirect)
                fprintf(f, " (no redirect)");
        fprintf(f, " -> ");
}

static void print_actions(FILE *f, const sf_config_t *cfg,
                          sf_action_kind_t kind)
{
        int first = 1;

        for (size_t i = 0; i < cfg->action_cnt; i++) {
                const sf_action_cfg_t *a = &cfg->actions[i];

                if (a->kind != kind)
                        continue;
                if (first)
                        fprintf(f, "%s:\n",
                                kind == SF_KIND_MESSAGE
                                    ? "messages"
                                    : "web service actions");
                first = 0;
                print_trigger(f, a);
                if (kind == SF_KIND_MESSAGE) {
                        print_target(f, &a->target);
                } else {
                        print_target(f, &a->request);
                        if (a->has_response) {
                                fprintf(f, "; response -> ");
                                print_target(f, &a->response_target);
                        }
                        if (a->has_error) {
                                fprintf(f, "; error -> ");
                                print_target(f, &a->error_target);
                        }
                }
                fputc('\n', f);
        }
}

/* Whether some action filters updates by the fields it uses. */
static int checks_used_fields(const sf_config_t *cfg)
{
        for (size_t i = 0; i < cfg->action_cnt; i++) {
                const sf_trigger_cfg_t *tr = &cfg->actions[i].trigger;

                if ((tr->events & SF_EV_UPDATE) && tr->check_used_fields &&
                    cfg->actions[i].used_fields_cnt)
                        return 1;
        }
        return 0;
}

void sf_config_print_summary(const sf_config_t *cfg, void *file)
{
        FILE *f = file;

        fprintf(f, "pipeline %s: valid\n", cfg->name);
        fprintf(f, "kafka: %s; topics %s, %s, %s, %s (%d partitions",
                cfg->kafka.brokers, cfg->topic_sync_log,
                cfg->topic_outbound_message, cfg->topic_outbound_webservice,
                cfg->topic_dlq, cfg->kafka.partitions);
        if (cfg->kafka.replication_factor > 0)
                fprintf(f, ", replication factor %d",
                        cfg->kafka.replication_factor);
        if (cfg->kafka.min_insync_replicas > 0)
                fprintf(f, ", min.insync.replicas %d",
                        cfg->kafka.min_insync_replicas);
        fprintf(f, ")\n");
        switch (cfg->source.type) {
        case SF_SOURCE_SQLITE:
                fprintf(f, "source: sqlite %s\n", cfg->source.path);
                break;
        case SF_SOURCE_POSTGRES:
                fprintf(f,
                        "source: postgres, slot %s, publication %s, "
                        "snapshot %s\n",
                        cfg->source.slot, cfg->source.publication,
                        cfg->source.snapshot == SF_SNAPSHOT_NEVER ? "never"
                                                                  : "initial");
                break;
        case SF_SOURCE_NONE:
                fprintf(f, "source: none\n");
                break;
        }
        if (cfg->source.type != SF_SOURCE_NONE)
                fprintf(f, "%s\n",
                        cfg->source.ack == SF_ACK_SETTLED
                            ? "acknowledgement: settled (a change leaves the "
                              "source once its targets accepted it or it is "
                              "dead-lettered)"
                            : "acknowledgement: delivered (a change leaves "
                              "the source once Kafka has it)");
        fprintf(f, "router: coalesce %d ms, delay %d ms\n",
                cfg->router.coalesce_ms, cfg->router.delay_ms);
        print_tables(f, cfg);
        if (cfg->source.type == SF_SOURCE_POSTGRES && checks_used_fields(cfg))
                fputs("note: PostgreSQL sends an update's whole before image "
                      "only for tables with\n"
                      "  REPLICA IDENTITY FULL; otherwise it sends the key, "
                      "a used field missing\n"
                      "  from it counts as changed, and every update of such "
                      "a table is exported\n",
                      f);
        print_connectors(f, cfg);
        print_actions(f, cfg, SF_KIND_MESSAGE);
        print_actions(f, cfg, SF_KIND_WEBSERVICE);
}
