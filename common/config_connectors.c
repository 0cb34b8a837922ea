/*
 * connectors: where documents go. Each type takes its own keys; a key of
 * another type is reported as not valid for this one, so a file connector
 * with a base_url is caught. Secrets (auth.password, auth.token,
 * auth.client_secret) come from ${VAR} or a *_file, never from the YAML.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"
#include "sf.h"

static const char *const conn_types[] = {"http", "file", "database", "kafka",
                                         NULL};

static const char *const http_keys[] = {
    "type",          "base_url",         "headers",    "auth",  "timeout_ms",
    "max_in_flight", "rate_limit_per_s", "tls_verify", "retry", NULL};
static const char *const file_keys[] = {"type", "dir", "format", "retry", NULL};
static const char *const database_keys[] = {"type", "retry", NULL};
static const char *const kafka_keys[] = {"type", "topic", "retry", NULL};
static const char *const all_keys[] = {
    "type",       "base_url",      "headers",          "auth",
    "timeout_ms", "max_in_flight", "rate_limit_per_s", "tls_verify",
    "retry",      "dir",           "format",           "topic",
    NULL};

static const char *const auth_types[] = {"none", "basic", "bearer", "oauth2",
                                         NULL};
static const char *const auth_none_keys[] = {"type", NULL};
static const char *const auth_basic_keys[] = {"type", "username", "password",
                                              "password_file", NULL};
static const char *const auth_bearer_keys[] = {"type", "token", "token_file",
                                               NULL};
static const char *const auth_oauth2_keys[] = {
    "type",  "token_url", "client_id", "client_secret", "client_secret_file",
    "scope", NULL};
static const char *const auth_all_keys[] = {
    "type",          "username",           "password",  "password_file",
    "token",         "token_file",         "token_url", "client_id",
    "client_secret", "client_secret_file", "scope",     NULL};

static void cfg_retry(sf_cfgctx_t *c, yaml_node_t *n, const char *path,
                      sf_retry_cfg_t *r)
{
        static const char *const keys[] = {"max_attempts", "initial_backoff_ms",
                                           "max_backoff_ms", NULL};
        static const sf_cfg_keys_t spec = {keys, NULL, NULL, NULL};
        char *p1 = sf_cfg_path(path, "max_attempts");
        char *p2 = sf_cfg_path(path, "initial_backoff_ms");
        char *p3 = sf_cfg_path(path, "max_backoff_ms");
        yaml_node_t *mx;

        if (!n || sf_cfg_keys(c, n, path, &spec))
                goto out;
        sf_cfg_int(c, sf_cfg_get(c, n, "max_attempts"), p1, 1, INT_MAX,
                   &r->max_attempts);
        sf_cfg_int(c, sf_cfg_get(c, n, "initial_backoff_ms"), p2, 0, INT_MAX,
                   &r->initial_backoff_ms);
        mx = sf_cfg_get(c, n, "max_backoff_ms");
        sf_cfg_int(c, mx, p3, r->initial_backoff_ms, INT_MAX,
                   &r->max_backoff_ms);
out:
        free(p1);
        free(p2);
        free(p3);
}

static void cfg_auth(sf_cfgctx_t *c, yaml_node_t *n, const char *path,
                     sf_connector_cfg_t *k)
{
        static const char *const type_req[] = {"type", NULL};
        static const char *const basic_req[] = {"username", NULL};
        static const char *const oauth2_req[] = {"token_url", "client_id",
                                                 NULL};
        static const char *const *const keys[] = {
            auth_none_keys, auth_basic_keys, auth_bearer_keys,
            auth_oauth2_keys};
        static const char *const *const reqs[] = {NULL, basic_req, NULL,
                                                  oauth2_req};
        static const char *const variants[] = {
            "auth type none", "auth type basic", "auth type bearer",
            "auth type oauth2"};
        sf_cfg_keys_t spec = {auth_all_keys, type_req, NULL, NULL};
        char *tpath = sf_cfg_path(path, "type");
        char *p;
        int type = -1;

        if (sf_cfg_map(c, n, path))
                goto out;
        if (!sf_cfg_enum(c, sf_cfg_get(c, n, "type"), tpath, auth_types,
                         &type)) {
                spec.allowed = keys[type];
                spec.required = reqs[type];
                spec.variant = variants[type];
                spec.elsewhere = auth_all_keys;
        }
        sf_cfg_keys(c, n, path, &spec);
        switch (type) {
        case SF_AUTH_BASIC:
                k->auth = SF_AUTH_BASIC;
                p = sf_cfg_path(path, "username");
                sf_cfg_str(c, sf_cfg_get(c, n, "username"), p, &k->username);
                free(p);
                sf_cfg_secret(c, n, path, "password", 1, &k->password);
                break;
        case SF_AUTH_BEARER:
                k->auth = SF_AUTH_BEARER;
                sf_cfg_secret(c, n, path, "token", 1, &k->token);
                break;
        case SF_AUTH_OAUTH2:
                k->auth = SF_AUTH_OAUTH2;
                p = sf_cfg_path(path, "token_url");
                sf_cfg_str(c, sf_cfg_get(c, n, "token_url"), p, &k->token_url);
                free(p);
                p = sf_cfg_path(path, "client_id");
                sf_cfg_str(c, sf_cfg_get(c, n, "client_id"), p, &k->client_id);
                free(p);
                p = sf_cfg_path(path, "scope");
                sf_cfg_str(c, sf_cfg_get(c, n, "scope"), p, &k->scope);
                free(p);
                sf_cfg_secret(c, n, path, "client_secret", 1,
                              &k->client_secret);
                break;
        default:
                break;
        }
out:
        free(tpath);
}

static int cfg_is_url(const char *s)
{
        return !strncmp(s, "http://", 7) || !strncmp(s, "https://", 8);
}

static void cfg_http(sf_cfgctx_t *c, yaml_node_t *n, const char *path,
                     sf_connector_cfg_t *k)
{
        yaml_node_t *v = sf_cfg_get(c, n, "base_url");
        char *p = sf_cfg_path(path, "base_url");
        char buf[64];

        if (!sf_cfg_str(c, v, p, &k->base_url) && !cfg_is_url(k->base_url))
                sf_cfg_errn(c, v,
                            "expected an http:// or https:// URL for %s, "
                            "got %s",
                            p, sf_cfg_describe(c, v, buf, sizeof(buf)));
        free(p);
        p = sf_cfg_path(path, "headers");
        sf_cfg_kvs(c, sf_cfg_get(c, n, "headers"), p, 0, &k->headers,
                   &k->header_cnt);
        free(p);
        p = sf_cfg_path(path, "auth");
        if ((v = sf_cfg_get(c, n, "auth")))
                cfg_auth(c, v, p, k);
        free(p);
        p = sf_cfg_path(path, "timeout_ms");
        sf_cfg_int(c, sf_cfg_get(c, n, "timeout_ms"), p, 1, INT_MAX,
                   &k->timeout_ms);
        free(p);
        p = sf_cfg_path(path, "max_in_flight");
        sf_cfg_int(c, sf_cfg_get(c, n, "max_in_flight"), p, 1, INT_MAX,
                   &k->max_in_flight);
        free(p);
        p = sf_cfg_path(path, "rate_limit_per_s");
        sf_cfg_double(c, sf_cfg_get(c, n, "rate_limit_per_s"), p, 0,
                      &k->rate_limit_per_s);
        free(p);
        p = sf_cfg_path(path, "tls_verify");
        sf_cfg_bool(c, sf_cfg_get(c, n, "tls_verify"), p, &k->tls_verify);
        free(p);
}

/* Returns 0 when the connector's type is known. */
static int cfg_connector(sf_cfgctx_t *c, yaml_node_t *n, const char *path,
                         sf_connector_cfg_t *k)
{
        static const char *const *const keys[] = {http_keys, file_keys,
                                                  database_keys, kafka_keys};
        static const char *const http_req[] = {"base_url", NULL};
        static const char *const file_req[] = {"dir", NULL};
        static const char *const *const reqs[] = {http_req, file_req, NULL,
                                                  NULL};
        static const char *const variants[] = {
            "an http connector", "a file connector", "a database connector",
            "a kafka connector"};
        static const char *const type_req[] = {"type", NULL};
        static const char *const formats[] = {"jsonl", "json", NULL};
        sf_cfg_keys_t spec = {all_keys, type_req, NULL, NULL};
        yaml_node_t *tn;
        char *p = NULL, *dir = NULL;
        int type = -1, fmt = SF_FILE_JSONL;

        k->timeout_ms = 5000;
        k->max_in_flight = 32;
        k->tls_verify = 1;
        k->retry.max_attempts = 10;
        k->retry.initial_backoff_ms = 200;
        k->retry.max_backoff_ms = 30000;
        if (sf_cfg_map(c, n, path))
                return -1;
        tn = sf_cfg_get(c, n, "type");
        p = sf_cfg_path(path, "type");
        if (!sf_cfg_enum(c, tn, p, conn_types, &type)) {
                spec.allowed = keys[type];
                spec.required = reqs[type];
                spec.variant = variants[type];
                spec.elsewhere = all_keys;
        }
        free(p);
        sf_cfg_keys(c, n, path, &spec);
        if (type < 0)
                return -1;
        k->type = (sf_connector_type_t)type;
        p = sf_cfg_path(path, "retry");
        cfg_retry(c, sf_cfg_get(c, n, "retry"), p, &k->retry);
        free(p);
        switch (k->type) {
        case SF_CONN_HTTP:
                cfg_http(c, n, path, k);
                break;
        case SF_CONN_FILE:
                p = sf_cfg_path(path, "dir");
                if (!sf_cfg_str(c, sf_cfg_get(c, n, "dir"), p, &dir))
                        k->dir = sf_cfg_resolve(c->cfg->dir, dir);
                free(dir);
                free(p);
                p = sf_cfg_path(path, "format");
                sf_cfg_enum(c, sf_cfg_get(c, n, "format"), p, formats, &fmt);
                k->format = (sf_file_format_t)fmt;
                free(p);
                break;
        case SF_CONN_DATABASE:
                if (c->cfg->source.type == SF_SOURCE_NONE)
                        sf_cfg_errn(c, tn,
                                    "%s is a database connector, which "
                                    "writes to the source database, but "
                                    "there is no source section",
                                    path);
                break;
        case SF_CONN_KAFKA:
                p = sf_cfg_path(path, "topic");
                sf_cfg_str(c, sf_cfg_get(c, n, "topic"), p, &k->topic);
                free(p);
                break;
        }
        return 0;
}

void sf_cfg_parse_connectors(sf_cfgctx_t *c, yaml_node_t *n)
{
        sf_config_t *cfg = c->cfg;
        size_t max;

        if (!n || sf_cfg_map(c, n, "connectors"))
                return;
        max = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
        cfg->connectors = sf_calloc(max, sizeof(*cfg->connectors));
        c->conn_untyped = sf_calloc(max, 1);
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
             p < n->data.mapping.pairs.top; p++) {
                yaml_node_t *kn = sf_cfg_node(c, p->key);
                sf_connector_cfg_t *k = &cfg->connectors[cfg->connector_cnt];
                char *path;

                if (!sf_cfg_pair_ok(c, n, p) ||
                    sf_cfg_name(c, kn, "connectors", "connector", &k->name))
                        continue;
                cfg->connector_cnt++;
                k->pos.line = (int)kn->start_mark.line + 1;
                k->pos.col = (int)kn->start_mark.column + 1;
                path = sf_cfg_path("connectors", k->name);
                if (cfg_connector(c, sf_cfg_node(c, p->value), path, k))
                        c->conn_untyped[cfg->connector_cnt - 1] = 1;
                free(path);
        }
}
