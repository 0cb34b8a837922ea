/*
 * connectors: where documents go. Each type takes its own keys; a key of
 * another type is reported as not valid for this one, so a file connector
 * with a base_url is caught. Secrets (auth.password, auth.token,
 * auth.client_secret) come from ${VAR} or a *_file, never from the YAML.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_internal.h"
#include "sf.h"

static const char *const conn_types[] = {"http", "file", "database", "kafka",
                                         NULL};

static const char *const http_keys[] = {"type",
                                        "base_url",
                                        "headers",
                                        "auth",
                                        "timeout_ms",
                                        "max_in_flight",
                                        "rate_limit_per_s",
                                        "tls_verify",
                                        "ca_file",
                                        "retry",
                                        NULL};
static const char *const file_keys[] = {"type", "dir", "format", "retry", NULL};
static const char *const database_keys[] = {"type", "retry", NULL};
static const char *const kafka_keys[] = {"type", "topic", "retry", NULL};
static const char *const all_keys[] = {"type",
                                       "base_url",
                                       "headers",
                                       "auth",
                                       "timeout_ms",
                                       "max_in_flight",
                                       "rate_limit_per_s",
                                       "tls_verify",
                                       "retry",
                                       "dir",
                                       "format",
                                       "topic",
                                       "ca_file",
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

static int cfg_is_url(const char *s)
{
        return !strncmp(s, "http://", 7) || !strncmp(s, "https://", 8);
}

/* 1 when URL's host is this machine (localhost, 127.x.x.x, [::1]): what
 * goes there in clear text does not cross a network. */
static int cfg_is_loopback(const char *url)
{
        const char *h = strstr(url, "://"), *end, *at;
        size_t n;

        if (!h)
                return 0;
        h += 3;
        end = h + strcspn(h, "/?#");
        for (at = h; at < end; at++)
                if (*at == '@')
                        h = at + 1;
        n = (size_t)(end - h);
        if (n >= 5 && !strncmp(h, "[::1]", 5))
                return 1;
        n = strcspn(h, ":/?#");
        return (n == 9 && !strncasecmp(h, "localhost", 9)) ||
               (n >= 4 && !strncmp(h, "127.", 4));
}

/* The first byte of S that cannot go into an HTTP header line: a control
 * character (HTAB too unless TAB_OK) or DEL; NULL when there is none. */
static const char *cfg_header_bad(const char *s, int tab_ok)
{
        for (const unsigned char *p = (const unsigned char *)s; p && *p; p++)
                if ((*p < 0x20 && !(tab_ok && *p == '\t')) || *p == 0x7f)
                        return (const char *)p;
        return NULL;
}

/* A secret that goes into a header line (a bearer token): refused at
 * load when a byte of it would end or break the line, which a request
 * could never be sent with. Says where, never what the value is. */
static void cfg_header_secret(sf_cfgctx_t *c, yaml_node_t *map,
                              const char *path, const char *key,
                              const char *value)
{
        char *fkey = sf_asprintf("%s_file", key);
        yaml_node_t *vn = sf_cfg_get(c, map, key);
        const char *bad = cfg_header_bad(value, 0);

        if (!vn)
                vn = sf_cfg_get(c, map, fkey);
        if (bad)
                sf_cfg_errn(c, vn,
                            "%s.%s holds a control character (byte 0x%02x at "
                            "offset %zu), which cannot go into an HTTP "
                            "header; a trailing newline of a secret file is "
                            "dropped, any other is part of the value",
                            path, key, (unsigned)(unsigned char)*bad,
                            (size_t)(bad - value));
        free(fkey);
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
        yaml_node_t *v;
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
                if (!sf_cfg_secret(c, n, path, "token", 1, &k->token))
                        cfg_header_secret(c, n, path, "token", k->token);
                break;
        case SF_AUTH_OAUTH2:
                k->auth = SF_AUTH_OAUTH2;
                p = sf_cfg_path(path, "token_url");
                v = sf_cfg_get(c, n, "token_url");
                if (!sf_cfg_str(c, v, p, &k->token_url) &&
                    !cfg_is_url(k->token_url))
                        sf_cfg_errn(c, v,
                                    "expected an http:// or https:// URL for "
                                    "%s",
                                    p);
                else if (k->token_url && !strncmp(k->token_url, "http://", 7) &&
                         !cfg_is_loopback(k->token_url))
                        sf_cfg_warnn(c, v,
                                     "%s is http://: the client secret and "
                                     "the access token travel in clear text "
                                     "to another machine; use https://",
                                     p);
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

/* ca_file: a readable regular file, resolved against the pipeline's
 * directory. libcurl reads it at the first request; a file it cannot read
 * then would fail every record as a TLS error. */
static void cfg_ca_file(sf_cfgctx_t *c, yaml_node_t *v, const char *path,
                        sf_connector_cfg_t *k)
{
        char *p = sf_cfg_path(path, "ca_file");
        char *file = NULL, *full = NULL;
        struct stat st;
        int fd;

        if (sf_cfg_str(c, v, p, &file))
                goto out;
        full = sf_cfg_resolve(c->cfg->dir, file);
        fd = open(full, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
                sf_cfg_errn(c, v, "cannot read %s %s: %s", p, full,
                            strerror(errno));
                goto out;
        }
        if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
                sf_cfg_errn(c, v, "%s %s is not a file", p, full);
                close(fd);
                goto out;
        }
        close(fd);
        k->ca_file = full;
        full = NULL;
out:
        free(p);
        free(file);
        free(full);
}

/* Header names must be tokens and values on one line: what the http
 * connector would refuse to open with. Values are not quoted (they may be
 * keys). */
static void cfg_http_headers(sf_cfgctx_t *c, yaml_node_t *n, const char *path)
{
        static const char tchar[] = "!#$%&'*+-.^_`|~";

        if (!n || n->type != YAML_MAPPING_NODE)
                return;
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
             p < n->data.mapping.pairs.top; p++) {
                yaml_node_t *kn = sf_cfg_node(c, p->key);
                yaml_node_t *vn = sf_cfg_node(c, p->value);
                const char *key = sf_cfg_scalar(c, kn);
                const char *val = sf_cfg_scalar(c, vn);
                const char *bad;
                int name_ok = key && *key;

                for (const char *q = key; name_ok && *q; q++)
                        name_ok =
                            (*q > 0x20 && *q < 0x7f &&
                             (isalnum((unsigned char)*q) || strchr(tchar, *q)));
                if (key && !name_ok)
                        sf_cfg_errn(c, kn,
                                    "%s.headers: '%s' is not a header name "
                                    "(letters, digits and !#$%%&'*+-.^_`|~)",
                                    path, key);
                if (val && !sf_cfg_is_bad(c, vn) &&
                    (bad = cfg_header_bad(val, 1)))
                        sf_cfg_errn(c, vn,
                                    "%s.headers.%s holds a control character "
                                    "(byte 0x%02x at offset %zu), which "
                                    "cannot go into an HTTP header",
                                    path, key ? key : "?",
                                    (unsigned)(unsigned char)*bad,
                                    (size_t)(bad - val));
        }
}

/* 1 when URL carries a secret of its own: a password in its userinfo, or
 * a query parameter whose name says key, token, secret, ... */
static int cfg_url_has_secret(const char *url)
{
        const char *h = strstr(url, "://");
        const char *end, *q;

        if (!h)
                return 0;
        h += 3;
        end = h + strcspn(h, "/?#");
        if (memchr(h, '@', (size_t)(end - h)))
                return 1;
        if (!(q = strchr(end, '?')))
                return 0;
        for (const char *w = q; *w; w++) {
                static const char *const words[] = {
                    "key", "token", "secret", "pass", "sig", "auth", NULL};

                for (int i = 0; words[i]; i++)
                        if (!strncasecmp(w, words[i], strlen(words[i])))
                                return 1;
        }
        return 0;
}

/* An http:// base_url to another machine, with credentials on the way. */
static void cfg_http_clear(sf_cfgctx_t *c, yaml_node_t *v, const char *path,
                           const sf_connector_cfg_t *k)
{
        static const char *const auths[] = {"", "basic credentials",
                                            "a bearer token",
                                            "an oauth2 access token"};
        const char *what = NULL;

        if (!v || !k->base_url || strncmp(k->base_url, "http://", 7) ||
            cfg_is_loopback(k->base_url))
                return;
        if (cfg_url_has_secret(k->base_url))
                what = "the credentials in the URL";
        else if (k->auth != SF_AUTH_NONE)
                what = auths[k->auth];
        if (what)
                sf_cfg_warnn(c, v,
                             "%s.base_url is http://: %s travel%s in clear "
                             "text to another machine with every request; "
                             "use https://",
                             path, what,
                             strstr(what, "credentials") ? "" : "s");
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
        v = sf_cfg_get(c, n, "tls_verify");
        if (!sf_cfg_bool(c, v, p, &k->tls_verify) && !k->tls_verify)
                sf_cfg_warnn(c, v,
                             "%s is false: syncfleet does not check who "
                             "answers, so anyone on the way can read and "
                             "change the requests%s; give the private CA as "
                             "ca_file instead",
                             p,
                             k->auth != SF_AUTH_NONE
                                 ? " and the credentials they carry"
                                 : "");
        free(p);
        cfg_ca_file(c, sf_cfg_get(c, n, "ca_file"), path, k);
        cfg_http_headers(c, sf_cfg_get(c, n, "headers"), path);
        cfg_http_clear(c, sf_cfg_get(c, n, "base_url"), path, k);
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
