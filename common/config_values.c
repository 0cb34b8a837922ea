/*
 * Typed values of the pipeline file: strings, names, numbers with their
 * ranges, booleans, enums, lists of columns, string maps and secrets.
 * Each getter reports what is wrong at the value's position and leaves the
 * default in place.
 */
#include "config_internal.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sf.h"

#define SF_CFG_SECRET_MAX (64 * 1024) /* bytes of a secret file */

static int cfg_in_list(const char *s, const char *const *l)
{
        for (size_t i = 0; l && l[i]; i++)
                if (!strcmp(s, l[i]))
                        return 1;
        return 0;
}

/* Common start of the scalar getters: 1 when absent, -1 when not a
 * non-empty scalar (reported as "expected WHAT"), 0 with *s set. */
static int cfg_scalar_of(sf_cfgctx_t *c, yaml_node_t *n, const char *path,
                         const char *what, const char **s)
{
        char buf[64];

        if (!n)
                return 1;
        if (sf_cfg_is_bad(c, n))
                return -1;
        *s = sf_cfg_scalar(c, n);
        if (!*s || !**s) {
                sf_cfg_errn(c, n, "expected %s for %s, got %s", what, path,
                            sf_cfg_describe(c, n, buf, sizeof(buf)));
                return -1;
        }
        return 0;
}

int sf_cfg_str(sf_cfgctx_t *c, yaml_node_t *n, const char *path, char **out)
{
        const char *s;
        int rc = cfg_scalar_of(c, n, path, "a string", &s);

        if (rc)
                return rc;
        free(*out);
        *out = sf_strdup(s);
        return 0;
}

static int cfg_ident_ok(const char *s)
{
        int dots = 0;
        const char *seg = s;

        for (const char *p = s;; p++) {
                if (*p == '.' || !*p) {
                        if (p == seg || isdigit((unsigned char)*seg))
                                return 0;
                        if (!*p)
                                return 1;
                        if (++dots > 1)
                                return 0;
                        seg = p + 1;
                } else if (!isalnum((unsigned char)*p) && *p != '_') {
                        return 0;
                }
        }
}

int sf_cfg_ident(sf_cfgctx_t *c, yaml_node_t *n, const char *path,
                 const char *what, char **out)
{
        char buf[64], ebuf[64];
        const char *s;
        int rc;

        snprintf(ebuf, sizeof(ebuf), "a %s name", what);
        rc = cfg_scalar_of(c, n, path, ebuf, &s);
        if (rc)
                return rc;
        if (!cfg_ident_ok(s)) {
                sf_cfg_errn(c, n,
                            "expected a %s name (letters, digits and '_') "
                            "for %s, got %s",
                            what, path,
                            sf_cfg_describe(c, n, buf, sizeof(buf)));
                return -1;
        }
        free(*out);
        *out = sf_strdup(s);
        return 0;
}

int sf_cfg_name(sf_cfgctx_t *c, yaml_node_t *n, const char *path,
                const char *what, char **out)
{
        char buf[64], ebuf[64];
        const char *s;
        int rc;

        snprintf(ebuf, sizeof(ebuf), "a %s name", what);
        rc = cfg_scalar_of(c, n, path, ebuf, &s);
        if (rc)
                return rc;
        if (strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                      "0123456789._-") != strlen(s)) {
                sf_cfg_errn(c, n,
                            "expected a %s name (letters, digits, '.', '_' "
                            "and '-') for %s, got %s",
                            what, path,
                            sf_cfg_describe(c, n, buf, sizeof(buf)));
                return -1;
        }
        free(*out);
        *out = sf_strdup(s);
        return 0;
}

int sf_cfg_numeric(const char *s, int *integral)
{
        const char *p = s;
        int digits = 0;

        *integral = 1;
        if (*p == '-' || *p == '+')
                p++;
        while (isdigit((unsigned char)*p))
                p++, digits++;
        if (*p == '.') {
                *integral = 0;
                p++;
                while (isdigit((unsigned char)*p))
                        p++, digits++;
        }
        if (!digits)
                return 0;
        if (*p == 'e' || *p == 'E') {
                *integral = 0;
                p++;
                if (*p == '-' || *p == '+')
                        p++;
                if (!isdigit((unsigned char)*p))
                        return 0;
                while (isdigit((unsigned char)*p))
                        p++;
        }
        return *p == '\0';
}

/* S, the value of N, as a message may show it: as it is, unless it came
 * from the environment (sf_cfg_describe says which variable then). */
static const char *cfg_shown(sf_cfgctx_t *c, yaml_node_t *n, const char *s,
                             char *buf, size_t size)
{
        return sf_cfg_from_env(c, n) ? sf_cfg_describe(c, n, buf, size) : s;
}

int sf_cfg_int(sf_cfgctx_t *c, yaml_node_t *n, const char *path, long min,
               long max, int *out)
{
        char buf[64];
        const char *s;
        int integral, rc = cfg_scalar_of(c, n, path, "a number", &s);
        long v;

        if (rc)
                return rc;
        if (!sf_cfg_numeric(s, &integral)) {
                sf_cfg_errn(c, n, "expected a number for %s, got %s", path,
                            sf_cfg_describe(c, n, buf, sizeof(buf)));
                return -1;
        }
        if (!integral) {
                sf_cfg_errn(c, n, "expected a whole number for %s, got %s",
                            path, cfg_shown(c, n, s, buf, sizeof(buf)));
                return -1;
        }
        errno = 0;
        v = strtol(s, NULL, 10);
        if (v < min) {
                sf_cfg_errn(c, n, "expected a number >= %ld for %s, got %s",
                            min, path, cfg_shown(c, n, s, buf, sizeof(buf)));
                return -1;
        }
        if (errno == ERANGE || v > max || v > INT_MAX) {
                sf_cfg_errn(c, n, "expected a number <= %ld for %s, got %s",
                            max < INT_MAX ? max : (long)INT_MAX, path,
                            cfg_shown(c, n, s, buf, sizeof(buf)));
                return -1;
        }
        *out = (int)v;
        return 0;
}

int sf_cfg_double(sf_cfgctx_t *c, yaml_node_t *n, const char *path, double min,
                  double *out)
{
        char buf[64];
        const char *s;
        int integral, rc = cfg_scalar_of(c, n, path, "a number", &s);
        double v;

        if (rc)
                return rc;
        if (!sf_cfg_numeric(s, &integral)) {
                sf_cfg_errn(c, n, "expected a number for %s, got %s", path,
                            sf_cfg_describe(c, n, buf, sizeof(buf)));
                return -1;
        }
        v = strtod(s, NULL);
        if (v < min) {
                sf_cfg_errn(c, n, "expected a number >= %g for %s, got %s", min,
                            path, cfg_shown(c, n, s, buf, sizeof(buf)));
                return -1;
        }
        *out = v;
        return 0;
}

int sf_cfg_bool(sf_cfgctx_t *c, yaml_node_t *n, const char *path, int *out)
{
        static const char *const t[] = {"true", "True", "TRUE", NULL};
        static const char *const f[] = {"false", "False", "FALSE", NULL};
        char buf[64];
        const char *s;
        int rc = cfg_scalar_of(c, n, path, "true or false", &s);

        if (rc)
                return rc;
        if (cfg_in_list(s, t)) {
                *out = 1;
        } else if (cfg_in_list(s, f)) {
                *out = 0;
        } else {
                sf_cfg_errn(c, n, "expected true or false for %s, got %s", path,
                            sf_cfg_describe(c, n, buf, sizeof(buf)));
                return -1;
        }
        return 0;
}

int sf_cfg_enum(sf_cfgctx_t *c, yaml_node_t *n, const char *path,
                const char *const *names, int *out)
{
        char buf[64];
        const char *s;
        sf_buf_t list;

        if (!n)
                return 1;
        if (sf_cfg_is_bad(c, n))
                return -1;
        s = sf_cfg_scalar(c, n);
        for (int i = 0; s && names[i]; i++) {
                if (!strcmp(s, names[i])) {
                        *out = i;
                        return 0;
                }
        }
        sf_buf_init(&list, 0);
        for (int i = 0; names[i]; i++)
                sf_buf_printf(&list, "%s%s", i ? ", " : "", names[i]);
        sf_cfg_errn(c, n, "expected one of %s for %s, got %s", list.data, path,
                    sf_cfg_describe(c, n, buf, sizeof(buf)));
        sf_buf_free(&list);
        return -1;
}

int sf_cfg_idents(sf_cfgctx_t *c, yaml_node_t *n, const char *path,
                  const char *what, char ***out, size_t *cnt)
{
        char buf[64];
        char **v = NULL;
        size_t k = 0;
        int rc = 0;

        if (!n)
                return 1;
        if (sf_cfg_is_bad(c, n))
                return -1;
        if (n->type == YAML_SCALAR_NODE) {
                v = sf_calloc(1, sizeof(*v));
                if (sf_cfg_ident(c, n, path, what, &v[0])) {
                        free(v);
                        return -1;
                }
                k = 1;
                goto done;
        }
        if (n->type != YAML_SEQUENCE_NODE) {
                sf_cfg_errn(c, n, "expected a list of %s names for %s, got %s",
                            what, path,
                            sf_cfg_describe(c, n, buf, sizeof(buf)));
                return -1;
        }
        if (n->data.sequence.items.top == n->data.sequence.items.start) {
                sf_cfg_errn(c, n, "expected at least one %s for %s", what,
                            path);
                return -1;
        }
        v = sf_calloc(
            (size_t)(n->data.sequence.items.top - n->data.sequence.items.start),
            sizeof(*v));
        for (yaml_node_item_t *it = n->data.sequence.items.start;
             it < n->data.sequence.items.top; it++) {
                char *ipath = sf_cfg_path_index(path, k);

                if (sf_cfg_ident(c, sf_cfg_node(c, *it), ipath, what, &v[k]))
                        rc = -1;
                else
                        k++;
                free(ipath);
        }
        if (rc) {
                sf_cfg_free_strs(v, k);
                return -1;
        }
done:
        sf_cfg_free_strs(*out, *cnt);
        *out = v;
        *cnt = k;
        return 0;
}

int sf_cfg_kvs(sf_cfgctx_t *c, yaml_node_t *n, const char *path, int idents,
               sf_kv_t **out, size_t *cnt)
{
        sf_kv_t *v;
        size_t k = 0;

        if (!n)
                return 1;
        if (sf_cfg_map(c, n, path))
                return -1;
        v = sf_calloc(
            (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start),
            sizeof(*v));
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
             p < n->data.mapping.pairs.top; p++) {
                yaml_node_t *kn = sf_cfg_node(c, p->key);
                yaml_node_t *vn = sf_cfg_node(c, p->value);
                char *vpath;
                int bad;

                if (!sf_cfg_pair_ok(c, n, p))
                        continue;
                vpath = sf_cfg_path(path, sf_cfg_scalar(c, kn));
                if (idents)
                        bad = sf_cfg_ident(c, kn, path, "column", &v[k].key) ||
                              sf_cfg_ident(c, vn, vpath, "column", &v[k].value);
                else
                        bad = sf_cfg_str(c, kn, path, &v[k].key) ||
                              sf_cfg_str(c, vn, vpath, &v[k].value);
                free(vpath);
                if (bad) {
                        free(v[k].key);
                        free(v[k].value);
                        v[k].key = v[k].value = NULL;
                        continue;
                }
                k++;
        }
        sf_cfg_free_kvs(*out, *cnt);
        *out = v;
        *cnt = k;
        return 0;
}

/* Reads a secret file: at most SF_CFG_SECRET_MAX bytes, one trailing
 * newline removed. NULL with errno set on failure. */
static char *cfg_read_secret(const char *file)
{
        char *buf = sf_malloc(SF_CFG_SECRET_MAX + 1);
        size_t len = 0;
        ssize_t r;
        int fd = open(file, O_RDONLY | O_CLOEXEC), err = 0;

        if (fd < 0) {
                free(buf);
                return NULL;
        }
        while ((r = read(fd, buf + len, SF_CFG_SECRET_MAX + 1 - len)) != 0) {
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0) {
                        err = errno;
                        break;
                }
                len += (size_t)r;
                if (len > SF_CFG_SECRET_MAX) {
                        err = EFBIG;
                        break;
                }
        }
        close(fd);
        if (err) {
                free(buf);
                errno = err;
                return NULL;
        }
        if (len && buf[len - 1] == '\n')
                len--;
        if (len && buf[len - 1] == '\r')
                len--;
        buf[len] = '\0';
        return buf;
}

/* The secret in FILE (relative to the pipeline's directory), named by
 * node N at PATH: malloc'd, or NULL after reporting an unreadable or
 * empty file at N. */
static char *cfg_secret_file(sf_cfgctx_t *c, const yaml_node_t *n,
                             const char *path, const char *file)
{
        char *full = sf_cfg_resolve(c->cfg->dir, file);
        char *val = cfg_read_secret(full);

        if (!val) {
                sf_cfg_errn(c, n, "cannot read %s %s: %s", path, full,
                            strerror(errno));
        } else if (!*val) {
                sf_cfg_errn(c, n, "%s %s is empty", path, full);
                free(val);
                val = NULL;
        }
        free(full);
        return val;
}

int sf_cfg_secret(sf_cfgctx_t *c, yaml_node_t *map, const char *path,
                  const char *key, int required, char **out)
{
        char *fkey = sf_asprintf("%s_file", key);
        char *kpath = sf_cfg_path(path, key), *fpath = sf_cfg_path(path, fkey);
        yaml_node_t *kn = sf_cfg_get(c, map, key);
        yaml_node_t *fn = sf_cfg_get(c, map, fkey);
        char *file = NULL, *val;
        int rc = -1;

        if (kn && fn) {
                sf_cfg_errn(c, fn, "both %s and %s are given in %s; use one",
                            key, fkey, path);
                goto out;
        }
        if (kn) {
                if (sf_cfg_is_bad(c, kn) || kn->type != YAML_SCALAR_NODE ||
                    sf_cfg_from_env(c, kn) || !*sf_cfg_scalar(c, kn)) {
                        rc = sf_cfg_str(c, kn, kpath, out);
                        goto out;
                }
                sf_cfg_errn(c, kn,
                            "literal secret in %s: use ${VAR} or %s instead",
                            kpath, fkey);
                goto out;
        }
        if (fn) {
                if (sf_cfg_str(c, fn, fpath, &file) ||
                    !(val = cfg_secret_file(c, fn, fpath, file)))
                        goto out;
                free(*out);
                *out = val;
                rc = 0;
                goto out;
        }
        if (required)
                sf_cfg_errn(c, map, "missing required key '%s' (or '%s') in %s",
                            key, fkey, path);
        rc = 1;
out:
        free(file);
        free(fkey);
        free(kpath);
        free(fpath);
        return rc;
}

/* A librdkafka property whose value is a credential: its value must not
 * be written in the pipeline file (DESIGN: secrets come from the
 * environment or files). */
static int cfg_kafka_secret_key(const char *key)
{
        return strstr(key, "password") || strstr(key, "secret");
}

int sf_cfg_kafka_config(sf_cfgctx_t *c, yaml_node_t *n, const char *path,
                        sf_kv_t **out, size_t *cnt)
{
        size_t k;
        int rc = sf_cfg_kvs(c, n, path, 0, out, cnt);

        if (rc != 0)
                return rc;
        k = 0;
        for (size_t i = 0; i < *cnt; i++) {
                sf_kv_t *kv = &(*out)[i];
                size_t len = strlen(kv->key);
                yaml_node_t *kn = sf_cfg_get(c, n, kv->key);
                int bad = 0;

                if (len > 5 && !strcmp(kv->key + len - 5, "_file")) {
                        char *name = sf_strndup(kv->key, len - 5);
                        char *kpath = sf_cfg_path(path, kv->key);
                        char *val = NULL;

                        if (sf_cfg_get(c, n, name)) {
                                sf_cfg_errn(c, kn,
                                            "both %s and %s are given in %s; "
                                            "use one",
                                            name, kv->key, path);
                                bad = 1;
                        } else if (!(val = cfg_secret_file(c, kn, kpath,
                                                           kv->value))) {
                                bad = 1;
                        }
                        free(kpath);
                        if (bad) {
                                free(name);
                                free(val);
                        } else {
                                free(kv->key);
                                free(kv->value);
                                kv->key = name;
                                kv->value = val;
                        }
                } else if (cfg_kafka_secret_key(kv->key) && kn &&
                           !sf_cfg_from_env(c, kn)) {
                        char *kpath = sf_cfg_path(path, kv->key);

                        sf_cfg_errn(c, kn,
                                    "literal secret in %s: use ${VAR} or "
                                    "%s_file instead",
                                    kpath, kv->key);
                        free(kpath);
                        bad = 1;
                }
                if (bad) {
                        free(kv->key);
                        free(kv->value);
                        continue;
                }
                (*out)[k++] = *kv;
        }
        *cnt = k;
        return 0;
}

char *sf_cfg_resolve(const char *dir, const char *path)
{
        char *joined, *save = NULL, *seg, **segs;
        size_t n = 0;
        int abs;
        sf_buf_t b;

        if (path[0] == '/')
                joined = sf_strdup(path);
        else
                joined = sf_asprintf("%s/%s", dir ? dir : ".", path);
        abs = joined[0] == '/';
        segs = sf_calloc(strlen(joined) + 1, sizeof(*segs));
        for (seg = strtok_r(joined, "/", &save); seg;
             seg = strtok_r(NULL, "/", &save)) {
                if (!strcmp(seg, "."))
                        continue;
                if (!strcmp(seg, "..")) {
                        if (n && strcmp(segs[n - 1], "..")) {
                                n--;
                                continue;
                        }
                        if (abs)
                                continue; /* "/.." is "/" */
                }
                segs[n++] = seg;
        }
        sf_buf_init(&b, 0);
        sf_buf_append(&b, abs ? "/" : "", abs ? 1 : 0);
        for (size_t i = 0; i < n; i++)
                sf_buf_printf(&b, "%s%s", i ? "/" : "", segs[i]);
        if (!b.len)
                sf_buf_append(&b, ".", 1);
        free(segs);
        free(joined);
        return sf_buf_steal(&b);
}
