/*
 * Checks of the loaded pipeline that need a library's verdict or the whole
 * file: what `syncfleet run` would refuse later is refused at load, at the
 * value's position (PostgreSQL connection strings through libpq, kafka.config
 * through librdkafka), and what runs but deserves attention becomes a
 * warning (cfg->warnings).
 *
 * No message here quotes a value that may be a secret: a connection string
 * libpq cannot parse is described with its quoted fragments hidden, a
 * kafka.config value librdkafka refuses is named by its key.
 */
#include "config_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "redact.h"
#include "sf.h"

void sf_cfg_warn(sf_cfgctx_t *c, int line, int col, const char *fmt, ...)
{
        va_list ap;
        char msg[1024];
        char *all;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        all = sf_asprintf("%s%s:%d:%d: warning: %s\n",
                          c->cfg->warnings ? c->cfg->warnings : "", c->name,
                          line, col, msg);
        free(c->cfg->warnings);
        c->cfg->warnings = all;
}

void sf_cfg_warnn(sf_cfgctx_t *c, const yaml_node_t *n, const char *fmt, ...)
{
        va_list ap;
        char msg[1024];

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        sf_cfg_warn(c, n ? (int)n->start_mark.line + 1 : 1,
                    n ? (int)n->start_mark.column + 1 : 1, "%s", msg);
}

/* --- source.dsn ---------------------------------------------------------- */

static int cfg_pq_keyword(const char *s, size_t n)
{
        PQconninfoOption *d = PQconndefaults();
        int hit = 0;

        for (PQconninfoOption *o = d; o && o->keyword && !hit; o++)
                hit = strlen(o->keyword) == n && !strncmp(o->keyword, s, n);
        PQconninfoFree(d);
        return hit;
}

/* libpq's message MSG with every quoted fragment hidden unless it is a
 * connection keyword or a lone punctuation mark: libpq quotes pieces of
 * the string it could not parse, and those pieces may be a password (its
 * start, its end, or the whole URI). Caller frees. */
static char *cfg_pq_message(const char *msg)
{
        sf_buf_t b;
        const char *p = msg;

        sf_buf_init(&b, 0);
        sf_buf_append(&b, "", 0);
        while (*p) {
                const char *q = strchr(p, '"'), *e;

                if (!q || !(e = strchr(q + 1, '"'))) {
                        sf_buf_append(&b, p, strlen(p));
                        break;
                }
                sf_buf_append(&b, p, (size_t)(q - p) + 1);
                if ((e - q - 1 == 1 && strchr("=]&", q[1])) ||
                    cfg_pq_keyword(q + 1, (size_t)(e - q - 1)))
                        sf_buf_append(&b, q + 1, (size_t)(e - q - 1));
                else
                        sf_buf_append(&b, "...", 3);
                sf_buf_append(&b, "\"", 1);
                p = e + 1;
        }
        /* libpq ends its messages with a newline */
        while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == ' '))
                b.data[--b.len] = '\0';
        return sf_buf_steal(&b);
}

void sf_cfg_check_dsn(sf_cfgctx_t *c, yaml_node_t *n, const char *dsn)
{
        char *err = NULL, *msg;
        PQconninfoOption *opts;

        if (!n || !dsn)
                return;
        opts = PQconninfoParse(dsn, &err);
        if (opts) {
                PQconninfoFree(opts);
                return;
        }
        msg = cfg_pq_message(err ? err : "out of memory");
        sf_cfg_errn(c, n,
                    "source.dsn is not a PostgreSQL connection string libpq "
                    "can read: %s",
                    msg);
        free(msg);
        PQfreemem(err);
}

/* --- kafka.config -------------------------------------------------------- */

/* MSG with VALUE replaced by "(the value)" when KEY names a secret. */
static void cfg_kafka_msg(const char *key, const char *value, char *msg,
                          size_t size)
{
        char *hit;

        msg[strcspn(msg, "\n")] = '\0';
        if (!sf_redact_is_secret_key(key) || !value || !*value)
                return;
        while ((hit = strstr(msg, value))) {
                char *rest = sf_strdup(hit + strlen(value));

                snprintf(hit, size - (size_t)(hit - msg), "(the value)%s",
                         rest);
                free(rest);
        }
}

static void cfg_kafka_nolog(const rd_kafka_t *rk, int level, const char *fac,
                            const char *buf)
{
        (void)rk;
        (void)level;
        (void)fac;
        (void)buf;
}

void sf_cfg_check_kafka(sf_cfgctx_t *c, yaml_node_t *kafka)
{
        yaml_node_t *n = kafka ? sf_cfg_get(c, kafka, "config") : NULL;
        rd_kafka_conf_t *conf;
        int bad = 0;

        if (!n || n->type != YAML_MAPPING_NODE)
                return;
        conf = rd_kafka_conf_new();
        rd_kafka_conf_set_log_cb(conf, cfg_kafka_nolog);
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
             p < n->data.mapping.pairs.top; p++) {
                yaml_node_t *kn = sf_cfg_node(c, p->key);
                yaml_node_t *vn = sf_cfg_node(c, p->value);
                const char *key = sf_cfg_scalar(c, kn);
                const char *val = sf_cfg_scalar(c, vn);
                size_t klen = key ? strlen(key) : 0;
                char err[512];
                char *prop = NULL;

                if (!key || !val || sf_cfg_is_bad(c, vn))
                        continue;
                /* PROPERTY_file: the load read the file into PROPERTY */
                if (klen > 5 && !strcmp(key + klen - 5, "_file")) {
                        prop = sf_strndup(key, klen - 5);
                        val = NULL;
                        for (size_t k = 0; k < c->cfg->kafka.config_cnt; k++)
                                if (!strcmp(c->cfg->kafka.config[k].key, prop))
                                        val = c->cfg->kafka.config[k].value;
                        key = prop;
                        /* unreadable: said at load; a trial without the
                         * value would only blame its absence */
                        if (!val) {
                                free(prop);
                                bad = 1;
                                continue;
                        }
                }
                if (!val ||
                    rd_kafka_conf_set(conf, key, val, err, sizeof(err)) ==
                        RD_KAFKA_CONF_OK) {
                        free(prop);
                        continue;
                }
                cfg_kafka_msg(key, val, err, sizeof(err));
                sf_cfg_errn(c, vn, "kafka.config.%s: librdkafka refuses it: %s",
                            key, err);
                free(prop);
                bad = 1;
        }
        /* What only a whole configuration shows (one size against another,
         * a CA file librdkafka cannot load) comes out of rd_kafka_new, for
         * a producer and a consumer as syncfleet makes them. */
        for (int i = 0; !bad && i < 2; i++) {
                rd_kafka_type_t type =
                    i ? RD_KAFKA_CONSUMER : RD_KAFKA_PRODUCER;
                rd_kafka_conf_t *dup = rd_kafka_conf_dup(conf);
                char err[512];
                rd_kafka_t *rk;

                /* what syncfleet's producers force (kafka_producer.c) */
                if (!i &&
                    (rd_kafka_conf_set(dup, "enable.idempotence", "true", err,
                                       sizeof(err)) ||
                     rd_kafka_conf_set(dup, "acks", "all", err, sizeof(err))))
                        sf_cfg_errn(c, n, "kafka.config: %s", err);
                rk = rd_kafka_new(type, dup, err, sizeof(err));
                if (rk) {
                        rd_kafka_destroy(rk);
                        continue;
                }
                rd_kafka_conf_destroy(dup);
                for (size_t k = 0; k < c->cfg->kafka.config_cnt; k++)
                        cfg_kafka_msg(c->cfg->kafka.config[k].key,
                                      c->cfg->kafka.config[k].value, err,
                                      sizeof(err));
                sf_cfg_errn(c, n,
                            "kafka.config: librdkafka refuses it for a %s: %s",
                            i ? "consumer" : "producer", err);
                bad = 1;
        }
        rd_kafka_conf_destroy(conf);
}

/* --- the whole pipeline -------------------------------------------------- */

/* 1 when M, at the root of a mapping, is one template that is exactly a
 * reply of the web service: {{@response}} or {{@headers}}, filters or
 * not. */
static void cfg_whole_ref(const char *path, void *opaque)
{
        int *whole = opaque;

        if (!strcmp(path, "@response") || !strcmp(path, "@headers"))
                *whole = 1;
}

static int cfg_copies_reply(const sf_mapping_t *m)
{
        int whole = 0;

        if (!m || m->type != SF_MAP_TEMPLATE)
                return 0;
        sf_template_refs(m->tpl, cfg_whole_ref, &whole);
        return whole;
}

void sf_cfg_check_pipeline(sf_cfgctx_t *c)
{
        const sf_config_t *cfg = c->cfg;

        for (size_t i = 0; i < cfg->action_cnt; i++) {
                const sf_action_cfg_t *a = &cfg->actions[i];
                const sf_target_cfg_t *t = &a->response_target;
                const sf_mapping_t *m = a->response_mapping;

                if (a->kind != SF_KIND_WEBSERVICE || !a->has_response ||
                    !t->conn || t->conn->type != SF_CONN_DATABASE ||
                    !cfg_copies_reply(m))
                        continue;
                sf_cfg_warn(c, m->line, m->col,
                            "web_service_actions.%s.response.mapping copies "
                            "the whole reply into table %s: the web service "
                            "decides which columns are written; map the "
                            "columns one by one (the key comes from the "
                            "record unless the mapping names it)",
                            a->name, t->table ? t->table : "?");
        }
}
