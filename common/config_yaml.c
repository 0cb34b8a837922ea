/*
 * The pipeline loader's view of the YAML document: parsing with libyaml's
 * document API (every node keeps its start mark), ${VAR} substitution,
 * error collection, and the checks every mapping gets (unknown keys with
 * did-you-mean, missing keys, duplicate keys). Typed values are in
 * config_values.c.
 */
#include "config_internal.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf.h"

static void cfg_verr(sf_cfgctx_t *c, int line, int col, const char *fmt,
                     va_list ap)
{
        sf_cfgerr_t *e;
        char *msg = NULL;

        if (vasprintf(&msg, fmt, ap) < 0)
                abort();
        if (c->err_cnt == c->err_cap) {
                c->err_cap = c->err_cap ? c->err_cap * 2 : 16;
                c->errs = sf_realloc(c->errs, c->err_cap * sizeof(*c->errs));
        }
        e = &c->errs[c->err_cnt];
        e->line = line;
        e->col = col;
        e->seq = c->err_cnt;
        e->msg = msg;
        c->err_cnt++;
}

void sf_cfg_err(sf_cfgctx_t *c, int line, int col, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        cfg_verr(c, line, col, fmt, ap);
        va_end(ap);
}

void sf_cfg_errn(sf_cfgctx_t *c, const yaml_node_t *n, const char *fmt, ...)
{
        va_list ap;
        int line = 1, col = 1;

        if (n) {
                line = (int)n->start_mark.line + 1;
                col = (int)n->start_mark.column + 1;
        }
        va_start(ap, fmt);
        cfg_verr(c, line, col, fmt, ap);
        va_end(ap);
}

void sf_cfg_scalar_pos(const yaml_node_t *n, size_t off, int *line, int *col)
{
        *line = (int)n->start_mark.line + 1;
        *col = (int)n->start_mark.column + 1;
        if (n->type != YAML_SCALAR_NODE ||
            n->start_mark.line != n->end_mark.line)
                return;
        switch (n->data.scalar.style) {
        case YAML_PLAIN_SCALAR_STYLE:
                *col += (int)off;
                break;
        case YAML_SINGLE_QUOTED_SCALAR_STYLE:
        case YAML_DOUBLE_QUOTED_SCALAR_STYLE:
                *col += (int)off + 1;
                break;
        default:
                break;
        }
}

static int cfg_errcmp(const void *a, const void *b)
{
        const sf_cfgerr_t *x = a, *y = b;

        if (x->line != y->line)
                return x->line < y->line ? -1 : 1;
        if (x->col != y->col)
                return x->col < y->col ? -1 : 1;
        return x->seq < y->seq ? -1 : x->seq > y->seq;
}

char *sf_cfg_errors(sf_cfgctx_t *c)
{
        sf_buf_t b;

        sf_buf_init(&b, 0);
        qsort(c->errs, c->err_cnt, sizeof(*c->errs), cfg_errcmp);
        for (size_t i = 0; i < c->err_cnt; i++) {
                const sf_cfgerr_t *e = &c->errs[i];

                if (e->line)
                        sf_buf_printf(&b, "%s:%d:%d: %s\n", c->name, e->line,
                                      e->col, e->msg);
                else
                        sf_buf_printf(&b, "%s: %s\n", c->name, e->msg);
        }
        return sf_buf_steal(&b);
}

void sf_cfg_ctx_free(sf_cfgctx_t *c)
{
        for (size_t i = 0; i < c->node_cnt; i++)
                free(c->vals[i]);
        free(c->vals);
        free(c->flags);
        for (size_t i = 0; i < c->err_cnt; i++)
                free(c->errs[i].msg);
        free(c->errs);
        free(c->conn_untyped);
        if (c->have_doc)
                yaml_document_delete(&c->doc);
        c->have_doc = 0;
}

/* A libyaml failure: its problem text at its mark. Reader errors (bad
 * encoding) carry a byte offset instead of a mark. */
static void cfg_yaml_error(sf_cfgctx_t *c, const yaml_parser_t *p,
                           const char *yaml, size_t len)
{
        int line = (int)p->problem_mark.line + 1;
        int col = (int)p->problem_mark.column + 1;
        const char *problem = p->problem ? p->problem : "unknown error";

        if (p->error == YAML_MEMORY_ERROR) {
                sf_cfg_err(c, 0, 0, "out of memory while parsing");
                return;
        }
        if (p->error == YAML_READER_ERROR) {
                line = 1;
                col = 1;
                for (size_t i = 0; i < p->problem_offset && i < len; i++) {
                        if (yaml[i] == '\n') {
                                line++;
                                col = 1;
                        } else {
                                col++;
                        }
                }
                sf_cfg_err(c, line, col, "syntax error: %s", problem);
                return;
        }
        if (p->context)
                sf_cfg_err(c, line, col, "syntax error: %s (%s at %d:%d)",
                           problem, p->context, (int)p->context_mark.line + 1,
                           (int)p->context_mark.column + 1);
        else
                sf_cfg_err(c, line, col, "syntax error: %s", problem);
}

/*
 * ${VAR} is substituted after parsing, per scalar, so a value never changes
 * the YAML's structure and every scalar knows whether it came from the
 * environment (secrets must). But YAML forbids '{' and '}' inside a plain
 * scalar in a flow mapping, and pipeline files write
 * `auth: { type: bearer, token: ${TOKEN} }`. So before parsing, each
 * ${NAME} becomes $<m>NAME<m>, where <m> is a character the file does not
 * contain and that is safe in every scalar style: the same length, so no
 * mark moves, and recognisable afterwards.
 */
static char cfg_envmark(const char *yaml, size_t len)
{
        static const char marks[] = "^~`@%=+;!&*|<>";

        for (const char *m = marks; *m; m++)
                if (!memchr(yaml, *m, len))
                        return *m;
        return 0; /* every candidate is used: ${VAR} stays as written */
}

static int cfg_var_name_ok(const char *s, size_t n)
{
        if (!n || isdigit((unsigned char)s[0]))
                return 0;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char)s[i]) && s[i] != '_')
                        return 0;
        return 1;
}

static void cfg_mark_vars(char *yaml, size_t len, char mark)
{
        for (size_t i = 0; mark && i + 1 < len; i++) {
                char *end;

                if (yaml[i] != '$')
                        continue;
                if (yaml[i + 1] == '$') {
                        i++;
                        continue;
                }
                if (yaml[i + 1] != '{')
                        continue;
                end = memchr(yaml + i + 2, '}', len - i - 2);
                if (!end || !cfg_var_name_ok(yaml + i + 2,
                                             (size_t)(end - yaml - i - 2)))
                        continue;
                yaml[i + 1] = mark;
                *end = mark;
                i = (size_t)(end - yaml);
        }
}

/* Replaces ${VAR} (or its marked form) in scalar number IDX; "$$" is a
 * literal '$', and a '$' followed by anything else is kept as it is. */
static void cfg_subst(sf_cfgctx_t *c, size_t idx, yaml_node_t *n)
{
        const char *s = (const char *)n->data.scalar.value;
        size_t len = n->data.scalar.length, i = 0;
        sf_buf_t b;
        int line, col;

        if (!memchr(s, '$', len))
                return;
        sf_buf_init(&b, 0);
        sf_buf_append(&b, "", 0);
        while (i < len) {
                const char *end, *name;
                char *var, close;
                const char *v;

                if (s[i] != '$' || i + 1 >= len ||
                    (s[i + 1] != '$' && s[i + 1] != '{' &&
                     (!c->envmark || s[i + 1] != c->envmark))) {
                        sf_buf_append(&b, s + i, 1);
                        i++;
                        continue;
                }
                if (s[i + 1] == '$') {
                        sf_buf_append(&b, "$", 1);
                        i += 2;
                        continue;
                }
                close = s[i + 1] == '{' ? '}' : c->envmark;
                sf_cfg_scalar_pos(n, i, &line, &col);
                name = s + i + 2;
                end = memchr(name, close, len - i - 2);
                if (!end) {
                        sf_cfg_err(c, line, col,
                                   "unterminated '${' (write '$$' for a "
                                   "literal '$')");
                        c->flags[idx] |= SF_CFG_F_BAD;
                        break;
                }
                if (!cfg_var_name_ok(name, (size_t)(end - name))) {
                        sf_cfg_err(c, line, col,
                                   "invalid environment variable name '%.*s'",
                                   (int)(end - name), name);
                        c->flags[idx] |= SF_CFG_F_BAD;
                } else {
                        var = sf_strndup(name, (size_t)(end - name));
                        v = getenv(var);
                        if (!v) {
                                sf_cfg_err(c, line, col,
                                           "environment variable %s is not "
                                           "set",
                                           var);
                                c->flags[idx] |= SF_CFG_F_BAD;
                        } else {
                                sf_buf_append(&b, v, strlen(v));
                        }
                        free(var);
                }
                c->flags[idx] |= SF_CFG_F_FROM_ENV;
                i = (size_t)(end - s) + 1;
        }
        c->vals[idx] = sf_buf_steal(&b);
}

int sf_cfg_parse(sf_cfgctx_t *c, const char *yaml, size_t len)
{
        yaml_parser_t p;
        yaml_document_t extra;
        yaml_node_t *root;
        char *marked = NULL;
        int rc = -1, more;

        if (!yaml_parser_initialize(&p)) {
                sf_cfg_err(c, 0, 0, "out of memory while parsing");
                return -1;
        }
        marked = sf_strndup(yaml, len);
        c->envmark = cfg_envmark(yaml, len);
        cfg_mark_vars(marked, len, c->envmark);
        yaml_parser_set_input_string(&p, (const unsigned char *)marked, len);
        if (!yaml_parser_load(&p, &c->doc)) {
                cfg_yaml_error(c, &p, yaml, len);
                goto out;
        }
        c->have_doc = 1;
        if (!yaml_document_get_root_node(&c->doc)) {
                sf_cfg_err(c, 1, 1, "the pipeline file is empty");
                goto out;
        }
        if (!yaml_parser_load(&p, &extra)) {
                cfg_yaml_error(c, &p, yaml, len);
                goto out;
        }
        root = yaml_document_get_root_node(&extra);
        more = root != NULL;
        if (more)
                sf_cfg_errn(c, root,
                            "a pipeline file holds one YAML document; "
                            "this is a second one");
        yaml_document_delete(&extra);
        if (more)
                goto out;
        c->node_cnt = (size_t)(c->doc.nodes.top - c->doc.nodes.start);
        c->vals = sf_calloc(c->node_cnt, sizeof(*c->vals));
        c->flags = sf_calloc(c->node_cnt, 1);
        for (size_t i = 0; i < c->node_cnt; i++)
                if (c->doc.nodes.start[i].type == YAML_SCALAR_NODE)
                        cfg_subst(c, i, &c->doc.nodes.start[i]);
        rc = 0;
out:
        yaml_parser_delete(&p);
        free(marked);
        return rc;
}

yaml_node_t *sf_cfg_root(sf_cfgctx_t *c)
{
        return c->have_doc ? yaml_document_get_root_node(&c->doc) : NULL;
}

yaml_node_t *sf_cfg_node(sf_cfgctx_t *c, int index)
{
        return yaml_document_get_node(&c->doc, index);
}

static size_t cfg_idx(sf_cfgctx_t *c, const yaml_node_t *n)
{
        return (size_t)(n - c->doc.nodes.start);
}

const char *sf_cfg_scalar(sf_cfgctx_t *c, const yaml_node_t *n)
{
        size_t i;

        if (!n || n->type != YAML_SCALAR_NODE)
                return NULL;
        i = cfg_idx(c, n);
        if (i < c->node_cnt && c->vals[i])
                return c->vals[i];
        return (const char *)n->data.scalar.value;
}

int sf_cfg_is_bad(sf_cfgctx_t *c, const yaml_node_t *n)
{
        size_t i = cfg_idx(c, n);

        return i < c->node_cnt && (c->flags[i] & SF_CFG_F_BAD);
}

int sf_cfg_from_env(sf_cfgctx_t *c, const yaml_node_t *n)
{
        size_t i = cfg_idx(c, n);

        return i < c->node_cnt && (c->flags[i] & SF_CFG_F_FROM_ENV);
}

/* A scalar that took a value from the environment, described as the file
 * writes it ("the value of ${TOKEN}"): the value may be a secret put in
 * the wrong place, and an error message must not print it. */
static const char *cfg_describe_env(sf_cfgctx_t *c, const yaml_node_t *n,
                                    char *buf, size_t size)
{
        const char *raw = (const char *)n->data.scalar.value;
        size_t len = n->data.scalar.length, o;
        int in_var = 0;

        o = (size_t)snprintf(buf, size, "the value of ");
        for (size_t i = 0; i < len && o + 5 < size; i++) {
                char ch = raw[i];

                if (ch == '$' && i + 1 < len &&
                    (raw[i + 1] == '{' ||
                     (c->envmark && raw[i + 1] == c->envmark))) {
                        buf[o++] = '$';
                        buf[o++] = '{';
                        in_var = 1;
                        i++;
                        continue;
                }
                if (in_var && (ch == '}' || (c->envmark && ch == c->envmark))) {
                        buf[o++] = '}';
                        in_var = 0;
                        continue;
                }
                buf[o++] = ch;
        }
        if (o + 5 >= size && size > 4)
                memcpy(buf + size - 4, "...", 4);
        else
                buf[o] = '\0';
        return buf;
}

const char *sf_cfg_describe(sf_cfgctx_t *c, const yaml_node_t *n, char *buf,
                            size_t size)
{
        const char *s;

        if (!n)
                return "nothing";
        switch (n->type) {
        case YAML_MAPPING_NODE:
                return "a mapping";
        case YAML_SEQUENCE_NODE:
                return "a sequence";
        case YAML_SCALAR_NODE:
                s = sf_cfg_scalar(c, n);
                if (sf_cfg_from_env(c, n))
                        return cfg_describe_env(c, n, buf, size);
                if (!*s)
                        return "nothing";
                if (strlen(s) > 40)
                        snprintf(buf, size, "\"%.37s...\"", s);
                else
                        snprintf(buf, size, "\"%s\"", s);
                return buf;
        default:
                return "nothing";
        }
}

char *sf_cfg_path(const char *parent, const char *key)
{
        if (!parent || !*parent)
                return sf_strdup(key);
        return sf_asprintf("%s.%s", parent, key);
}

char *sf_cfg_path_index(const char *parent, size_t i)
{
        return sf_asprintf("%s[%zu]", parent, i);
}

const char *sf_cfg_where(const char *path, char *buf, size_t size)
{
        if (!path || !*path)
                return "at the top level";
        snprintf(buf, size, "in %s", path);
        return buf;
}

/* Edit distance of A and B, capped: anything above 3 is reported as 3. */
static size_t cfg_distance(const char *a, const char *b)
{
        size_t la = strlen(a), lb = strlen(b), row[65];

        if (la > 64 || lb > 64)
                return 3;
        if (la > lb ? la - lb > 2 : lb - la > 2)
                return 3;
        for (size_t j = 0; j <= lb; j++)
                row[j] = j;
        for (size_t i = 1; i <= la; i++) {
                size_t diag = row[0];

                row[0] = i;
                for (size_t j = 1; j <= lb; j++) {
                        size_t up = row[j], best;

                        best = diag + (a[i - 1] != b[j - 1]);
                        if (up + 1 < best)
                                best = up + 1;
                        if (row[j - 1] + 1 < best)
                                best = row[j - 1] + 1;
                        diag = up;
                        row[j] = best;
                }
        }
        return row[lb] > 3 ? 3 : row[lb];
}

const char *sf_cfg_closest(const char *word, const char *const *cands,
                           size_t cnt)
{
        const char *best = NULL;
        size_t best_d = 3;

        for (size_t i = 0; i < cnt; i++) {
                size_t d = cfg_distance(word, cands[i]);

                /* a short candidate within 2 edits of anything is noise */
                if (d < best_d && d < strlen(cands[i])) {
                        best = cands[i];
                        best_d = d;
                }
        }
        return best;
}

void sf_cfg_unknown(sf_cfgctx_t *c, yaml_node_t *n, const char *what,
                    const char *name, const char *path,
                    const char *const *names, size_t cnt)
{
        const char *hint = sf_cfg_closest(name, names, cnt);
        char buf[96];

        if (n && n->type == YAML_SCALAR_NODE && sf_cfg_from_env(c, n)) {
                sf_cfg_errn(c, n, "unknown %s (%s) in %s", what,
                            sf_cfg_describe(c, n, buf, sizeof(buf)), path);
                return;
        }
        if (hint)
                sf_cfg_errn(c, n, "unknown %s '%s' in %s (did you mean '%s'?)",
                            what, name, path, hint);
        else
                sf_cfg_errn(c, n, "unknown %s '%s' in %s", what, name, path);
}

static size_t cfg_list_len(const char *const *l)
{
        size_t n = 0;

        while (l && l[n])
                n++;
        return n;
}

static int cfg_in_list(const char *s, const char *const *l)
{
        for (size_t i = 0; l && l[i]; i++)
                if (!strcmp(s, l[i]))
                        return 1;
        return 0;
}

static int cfg_same_key(sf_cfgctx_t *c, yaml_node_pair_t *a,
                        yaml_node_pair_t *b)
{
        yaml_node_t *ka = sf_cfg_node(c, a->key), *kb = sf_cfg_node(c, b->key);

        return ka && kb && ka->type == YAML_SCALAR_NODE &&
               kb->type == YAML_SCALAR_NODE &&
               !strcmp(sf_cfg_scalar(c, ka), sf_cfg_scalar(c, kb));
}

int sf_cfg_map(sf_cfgctx_t *c, yaml_node_t *n, const char *path)
{
        char buf[64], wbuf[256];
        size_t idx;

        if (!n || sf_cfg_is_bad(c, n))
                return -1;
        if (n->type != YAML_MAPPING_NODE) {
                if (!path || !*path)
                        sf_cfg_errn(c, n,
                                    "expected a mapping at the top level, "
                                    "got %s",
                                    sf_cfg_describe(c, n, buf, sizeof(buf)));
                else
                        sf_cfg_errn(c, n, "expected a mapping for %s, got %s",
                                    path,
                                    sf_cfg_describe(c, n, buf, sizeof(buf)));
                return -1;
        }
        idx = cfg_idx(c, n);
        if (c->flags[idx] & SF_CFG_F_CHECKED)
                return 0;
        c->flags[idx] |= SF_CFG_F_CHECKED;
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
             p < n->data.mapping.pairs.top; p++) {
                yaml_node_t *k = sf_cfg_node(c, p->key);

                if (!k || k->type != YAML_SCALAR_NODE) {
                        sf_cfg_errn(c, k, "expected a string key %s, got %s",
                                    sf_cfg_where(path, wbuf, sizeof(wbuf)),
                                    sf_cfg_describe(c, k, buf, sizeof(buf)));
                        continue;
                }
                for (yaml_node_pair_t *q = n->data.mapping.pairs.start; q < p;
                     q++) {
                        yaml_node_t *first = sf_cfg_node(c, q->key);

                        if (!cfg_same_key(c, p, q))
                                continue;
                        sf_cfg_errn(c, k,
                                    "duplicate key '%s' (first defined at "
                                    "%d:%d)",
                                    sf_cfg_scalar(c, k),
                                    (int)first->start_mark.line + 1,
                                    (int)first->start_mark.column + 1);
                        break;
                }
        }
        return 0;
}

int sf_cfg_pair_ok(sf_cfgctx_t *c, yaml_node_t *n, yaml_node_pair_t *p)
{
        yaml_node_t *k = sf_cfg_node(c, p->key);

        if (!k || k->type != YAML_SCALAR_NODE)
                return 0;
        for (yaml_node_pair_t *q = n->data.mapping.pairs.start; q < p; q++)
                if (cfg_same_key(c, p, q))
                        return 0;
        return 1;
}

yaml_node_t *sf_cfg_get(sf_cfgctx_t *c, yaml_node_t *n, const char *key)
{
        if (!n || n->type != YAML_MAPPING_NODE)
                return NULL;
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
             p < n->data.mapping.pairs.top; p++) {
                const char *k = sf_cfg_scalar(c, sf_cfg_node(c, p->key));

                if (k && !strcmp(k, key))
                        return sf_cfg_node(c, p->value);
        }
        return NULL;
}

int sf_cfg_keys(sf_cfgctx_t *c, yaml_node_t *n, const char *path,
                const sf_cfg_keys_t *keys)
{
        char wbuf[256];
        const char *where = sf_cfg_where(path, wbuf, sizeof(wbuf));

        if (sf_cfg_map(c, n, path))
                return -1;
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
             p < n->data.mapping.pairs.top; p++) {
                yaml_node_t *k = sf_cfg_node(c, p->key);
                const char *key, *hint;

                if (!sf_cfg_pair_ok(c, n, p))
                        continue;
                key = sf_cfg_scalar(c, k);
                if (cfg_in_list(key, keys->allowed))
                        continue;
                if (keys->variant && cfg_in_list(key, keys->elsewhere)) {
                        sf_cfg_errn(c, k,
                                    "unknown key '%s' %s (not valid for "
                                    "%s)",
                                    key, where, keys->variant);
                        continue;
                }
                hint = sf_cfg_closest(key, keys->allowed,
                                      cfg_list_len(keys->allowed));
                if (hint)
                        sf_cfg_errn(c, k,
                                    "unknown key '%s' %s (did you mean "
                                    "'%s'?)",
                                    key, where, hint);
                else
                        sf_cfg_errn(c, k, "unknown key '%s' %s", key, where);
        }
        for (size_t i = 0; keys->required && keys->required[i]; i++)
                if (!sf_cfg_get(c, n, keys->required[i]))
                        sf_cfg_errn(c, n, "missing required key '%s' %s",
                                    keys->required[i], where);
        return 0;
}
