/*
 * Templates: compiled once into literal and reference segments, rendered
 * per record without re-parsing. The filters themselves live in
 * template_filters.c. Rendering only reads a compiled template, so worker
 * threads may share one.
 */
#include "template.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf.h"
#include "template_int.h"

/* A reference names the whole template in its messages unless the template
 * is longer than this; then it names only its own {{ }}. */
#define SF_TEMPLATE_QUOTE_MAX 120

typedef struct sf_tseg {
        int is_ref;
        size_t off, len; /* literal: its text; ref: its {{ }} in src */
        char *path;      /* ref: as written, e.g. "key.id" */
        char **parts;
        size_t part_cnt;
        sf_tfilter_t *filters;
        size_t filter_cnt;
        int has_default; /* a missing field is not an error */
} sf_tseg_t;

struct sf_template {
        char *src;
        sf_tseg_t *segs;
        size_t seg_cnt;
};

typedef struct sf_tparser {
        const char *src;
        size_t len;
        size_t *err_offset;
        char *errstr;
        size_t errstr_size;
} sf_tparser_t;

static int sf_tparse_fail(sf_tparser_t *ps, size_t offset, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int sf_tparse_fail(sf_tparser_t *ps, size_t offset, const char *fmt, ...)
{
        va_list ap;

        if (ps->err_offset)
                *ps->err_offset = offset;
        if (ps->errstr && ps->errstr_size) {
                va_start(ap, fmt);
                vsnprintf(ps->errstr, ps->errstr_size, fmt, ap);
                va_end(ap);
        }
        return -1;
}

/* syncfleet's names, as the workers fill them (workers/render.c). */
static const char *const sf_at_names[] = {
    "op",       "event",    "table",  "key",     "before", "after",
    "event_id", "response", "status", "headers", "error"};

int sf_template_at_known(const char *name, size_t len)
{
        for (size_t i = 0; i < sizeof(sf_at_names) / sizeof(*sf_at_names); i++)
                if (strlen(sf_at_names[i]) == len &&
                    !strncmp(sf_at_names[i], name, len))
                        return 1;
        return 0;
}

const char *sf_template_at_list(void)
{
        return "@op, @event, @table, @key, @before, @after, @event_id, "
               "@response, @status, @headers, @error";
}

static int sf_tpath_char(int c)
{
        return isalnum(c) || c == '_' || c == '-';
}

static int sf_tname_char(int c)
{
        return isalnum(c) || c == '_';
}

/* Describes the byte at S[POS] for a message: 'x', or byte 0xNN when it
 * is not printable ASCII. */
static const char *sf_tbyte_desc(const char *s, size_t pos, char *buf,
                                 size_t size)
{
        unsigned char c = (unsigned char)s[pos];

        if (c >= 0x20 && c < 0x7f)
                snprintf(buf, size, "'%c'", c);
        else
                snprintf(buf, size, "byte 0x%02X", c);
        return buf;
}

static size_t sf_tskip_ws(const sf_tparser_t *ps, size_t p)
{
        while (p < ps->len && isspace((unsigned char)ps->src[p]))
                p++;
        return p;
}

static int sf_tunterminated(sf_tparser_t *ps, size_t open)
{
        return sf_tparse_fail(ps, open, "unterminated '{{': no closing '}}'");
}

void sf_template_parts_free(char **parts, size_t part_cnt)
{
        size_t i;

        if (!parts)
                return;
        for (i = 0; i < part_cnt; i++)
                free(parts[i]);
        free(parts);
}

/* Splits S (LEN bytes, already known to hold only path characters and
 * dots) at the dots. Returns the offset in S of the first empty part, or
 * -1 when every part has a name. */
static long sf_tsplit(const char *s, size_t len, char ***parts,
                      size_t *part_cnt)
{
        size_t i, start = 0, n = 0;
        char **v;

        *parts = NULL;
        *part_cnt = 0;
        for (i = 0; i <= len; i++) {
                if (i < len && s[i] != '.')
                        continue;
                if (i == start)
                        return (long)i;
                n++;
                start = i + 1;
        }
        v = sf_calloc(n, sizeof(*v));
        n = 0;
        start = 0;
        for (i = 0; i <= len; i++) {
                if (i < len && s[i] != '.')
                        continue;
                v[n++] = sf_strndup(s + start, i - start);
                start = i + 1;
        }
        *parts = v;
        *part_cnt = n;
        return -1;
}

int sf_template_split_path(const char *path, char ***parts, size_t *part_cnt)
{
        size_t i, len = path ? strlen(path) : 0;

        *parts = NULL;
        *part_cnt = 0;
        if (!len)
                return -1;
        i = path[0] == SF_TEMPLATE_AT;
        if (i && !sf_template_at_known(path + 1, strcspn(path + 1, ".")))
                return -1;
        for (; i < len; i++)
                if (path[i] != '.' && !sf_tpath_char((unsigned char)path[i]))
                        return -1;
        return sf_tsplit(path, len, parts, part_cnt) < 0 ? 0 : -1;
}

/* Parses one quoted string argument starting at the quote at *P; a
 * backslash makes the next byte literal. */
static int sf_tparse_string(sf_tparser_t *ps, size_t *p, cJSON *args)
{
        char quote = ps->src[*p];
        size_t open = *p, i;
        sf_buf_t b;
        int rc = -1;

        sf_buf_init(&b, 0);
        for (i = open + 1; i < ps->len && ps->src[i] != quote; i++) {
                if (ps->src[i] == '\\' && i + 1 < ps->len)
                        i++;
                if (sf_buf_append(&b, ps->src + i, 1))
                        goto out;
        }
        if (i >= ps->len) {
                rc = sf_tparse_fail(ps, open, "unterminated string argument");
                goto out;
        }
        cJSON_AddItemToArray(args, cJSON_CreateString(b.len ? b.data : ""));
        *p = i + 1;
        rc = 0;
out:
        sf_buf_free(&b);
        return rc;
}

/* Parses "( arg, ... )" starting at the '(' at *P into ARGS. */
static int sf_tparse_args(sf_tparser_t *ps, size_t open, const char *fname,
                          size_t *p, cJSON *args)
{
        size_t i = sf_tskip_ws(ps, *p + 1), start;
        double d;

        if (i < ps->len && ps->src[i] == ')') {
                *p = i + 1;
                return 0;
        }
        for (;;) {
                i = sf_tskip_ws(ps, i);
                if (i >= ps->len)
                        return sf_tunterminated(ps, open);
                if (ps->src[i] == '\'' || ps->src[i] == '"') {
                        if (sf_tparse_string(ps, &i, args))
                                return -1;
                } else if (strchr("+-.0123456789", ps->src[i])) {
                        start = i;
                        while (i < ps->len &&
                               strchr("+-.0123456789eE", ps->src[i]))
                                i++;
                        if (sf_template_parse_number(ps->src + start, i - start,
                                                     &d))
                                return sf_tparse_fail(
                                    ps, start,
                                    "bad number '%.*s' in the arguments of "
                                    "filter '%s'",
                                    (int)(i - start), ps->src + start, fname);
                        cJSON *num =
                            sf_json_integer_text(ps->src + start, i - start);

                        cJSON_AddItemToArray(args,
                                             num ? num : cJSON_CreateNumber(d));
                } else {
                        return sf_tparse_fail(
                            ps, i,
                            "bad argument to filter '%s': expected a quoted "
                            "string or a number",
                            fname);
                }
                i = sf_tskip_ws(ps, i);
                if (i >= ps->len)
                        return sf_tunterminated(ps, open);
                if (ps->src[i] == ')') {
                        *p = i + 1;
                        return 0;
                }
                if (ps->src[i] != ',')
                        return sf_tparse_fail(ps, i,
                                              "expected ',' or ')' in the "
                                              "arguments of filter '%s'",
                                              fname);
                i++;
        }
}

/* Parses one filter starting at its name at *P into SEG. */
static int sf_tparse_filter(sf_tparser_t *ps, size_t open, size_t *p,
                            sf_tseg_t *seg)
{
        size_t name = *p, i = *p;
        char fname[32], err[256];
        sf_tfilter_t *f;
        cJSON *args = NULL;
        int kind, rc = -1;

        while (i < ps->len && sf_tname_char((unsigned char)ps->src[i]))
                i++;
        if (i == name) {
                if (i >= ps->len)
                        return sf_tunterminated(ps, open);
                return sf_tparse_fail(ps, i, "missing filter name after '|'");
        }
        kind = sf_tfilter_lookup(ps->src + name, i - name);
        if (kind < 0)
                return sf_tparse_fail(
                    ps, name, "unknown filter '%.*s' (known: %s)",
                    (int)(i - name), ps->src + name, sf_tfilter_known());
        snprintf(fname, sizeof(fname), "%s", sf_tfilter_name(kind));
        args = cJSON_CreateArray();
        i = sf_tskip_ws(ps, i);
        if (i < ps->len && ps->src[i] == '(' &&
            sf_tparse_args(ps, open, fname, &i, args))
                goto out;
        seg->filters = sf_realloc(seg->filters, (seg->filter_cnt + 1) *
                                                    sizeof(*seg->filters));
        f = &seg->filters[seg->filter_cnt];
        memset(f, 0, sizeof(*f));
        f->kind = (sf_tfilter_kind_t)kind;
        if (sf_tfilter_set_args(f, args, err, sizeof(err))) {
                sf_tfilter_clear(f);
                rc = sf_tparse_fail(ps, name, "%s", err);
                goto out;
        }
        seg->filter_cnt++;
        if (f->kind == SF_TF_DEFAULT)
                seg->has_default = 1;
        *p = i;
        rc = 0;
out:
        cJSON_Delete(args);
        return rc;
}

static void sf_tseg_clear(sf_tseg_t *s)
{
        size_t i;

        free(s->path);
        sf_template_parts_free(s->parts, s->part_cnt);
        for (i = 0; i < s->filter_cnt; i++)
                sf_tfilter_clear(&s->filters[i]);
        free(s->filters);
        memset(s, 0, sizeof(*s));
}

/* Parses the reference whose "{{" is at OPEN into SEG; *END is set past
 * its "}}". */
static int sf_tparse_ref(sf_tparser_t *ps, size_t open, size_t *end,
                         sf_tseg_t *seg)
{
        size_t p, start, stop;
        char cbuf[16];
        long empty;

        if (!strstr(ps->src + open + 2, "}}"))
                return sf_tunterminated(ps, open);
        p = sf_tskip_ws(ps, open + 2);
        start = p;
        if (p < ps->len && ps->src[p] == SF_TEMPLATE_AT)
                p++; /* syncfleet's name: checked once the path is split */
        while (p < ps->len &&
               (ps->src[p] == '.' || sf_tpath_char((unsigned char)ps->src[p])))
                p++;
        stop = p;
        if (p < ps->len && ps->src[p] == SF_TEMPLATE_AT)
                return sf_tparse_fail(ps, p,
                                      "'@' may only begin a path, as in "
                                      "{{@key.id}}");
        if (p < ps->len && !isspace((unsigned char)ps->src[p]) &&
            ps->src[p] != '|' && ps->src[p] != '}')
                return sf_tparse_fail(
                    ps, p,
                    "bad character %s in reference path (allowed: letters, "
                    "digits, '_', '-' and '.')",
                    sf_tbyte_desc(ps->src, p, cbuf, sizeof(cbuf)));
        if (start == stop)
                return sf_tparse_fail(ps, open,
                                      "empty reference: expected a field "
                                      "path after '{{'");
        empty = sf_tsplit(ps->src + start, stop - start, &seg->parts,
                          &seg->part_cnt);
        if (empty >= 0)
                return sf_tparse_fail(ps, start + (size_t)empty,
                                      "empty segment in path '%.*s'",
                                      (int)(stop - start), ps->src + start);
        if (ps->src[start] == SF_TEMPLATE_AT &&
            !sf_template_at_known(seg->parts[0] + 1, strlen(seg->parts[0] + 1)))
                return sf_tparse_fail(ps, start,
                                      "unknown name '%s' (syncfleet's names: "
                                      "%s)",
                                      seg->parts[0], sf_template_at_list());
        seg->path = sf_strndup(ps->src + start, stop - start);
        for (;;) {
                p = sf_tskip_ws(ps, p);
                if (p >= ps->len)
                        return sf_tunterminated(ps, open);
                if (ps->src[p] == '}' && p + 1 < ps->len &&
                    ps->src[p + 1] == '}')
                        break;
                if (ps->src[p] != '|')
                        return sf_tparse_fail(
                            ps, p, "expected '|' or '}}', found %s",
                            sf_tbyte_desc(ps->src, p, cbuf, sizeof(cbuf)));
                p = sf_tskip_ws(ps, p + 1);
                if (sf_tparse_filter(ps, open, &p, seg))
                        return -1;
        }
        seg->is_ref = 1;
        seg->off = open;
        seg->len = p + 2 - open;
        *end = p + 2;
        return 0;
}

static sf_tseg_t *sf_tpush(sf_template_t *t)
{
        t->segs = sf_realloc(t->segs, (t->seg_cnt + 1) * sizeof(*t->segs));
        memset(&t->segs[t->seg_cnt], 0, sizeof(*t->segs));
        return &t->segs[t->seg_cnt++];
}

sf_template_t *sf_template_compile(const char *src, size_t *err_offset,
                                   char *errstr, size_t errstr_size)
{
        sf_template_t *t = sf_calloc(1, sizeof(*t));
        sf_tparser_t ps;
        sf_tseg_t ref;
        size_t pos = 0, open, end = 0;
        const char *hit;

        if (!src)
                src = "";
        t->src = sf_strdup(src);
        ps.src = t->src;
        ps.len = strlen(t->src);
        ps.err_offset = err_offset;
        ps.errstr = errstr;
        ps.errstr_size = errstr_size;
        while (pos < ps.len) {
                hit = strstr(ps.src + pos, "{{");
                open = hit ? (size_t)(hit - ps.src) : ps.len;
                if (open > pos) {
                        sf_tseg_t *lit = sf_tpush(t);

                        lit->off = pos;
                        lit->len = open - pos;
                }
                if (!hit)
                        break;
                memset(&ref, 0, sizeof(ref));
                if (sf_tparse_ref(&ps, open, &end, &ref)) {
                        sf_tseg_clear(&ref);
                        sf_template_destroy(t);
                        return NULL;
                }
                *sf_tpush(t) = ref;
                pos = end;
        }
        return t;
}

void sf_template_destroy(sf_template_t *t)
{
        size_t i;

        if (!t)
                return;
        for (i = 0; i < t->seg_cnt; i++)
                sf_tseg_clear(&t->segs[i]);
        free(t->segs);
        free(t->src);
        free(t);
}

const char *sf_template_source(const sf_template_t *t)
{
        return t->src;
}

int sf_template_is_literal(const sf_template_t *t)
{
        size_t i;

        for (i = 0; i < t->seg_cnt; i++)
                if (t->segs[i].is_ref)
                        return 0;
        return 1;
}

const cJSON *sf_template_lookup(const sf_scope_t *scope, char *const *parts,
                                size_t part_cnt)
{
        const cJSON *cur = NULL;
        const sf_scope_t *sc;
        const char *head;
        int at;
        size_t i;

        if (!part_cnt)
                return NULL;
        head = parts[0];
        at = head[0] == SF_TEMPLATE_AT;
        head += at;
        for (sc = scope; sc && !cur; sc = sc->next)
                if (!sc->at == !at && cJSON_IsObject(sc->obj))
                        cur = cJSON_GetObjectItemCaseSensitive(sc->obj, head);
        for (i = 1; cur && i < part_cnt; i++) {
                const char *s = parts[i];

                if (cJSON_IsObject(cur)) {
                        cur = cJSON_GetObjectItemCaseSensitive(cur, s);
                } else if (cJSON_IsArray(cur) && strlen(s) <= 9 &&
                           strspn(s, "0123456789") == strlen(s)) {
                        cur = cJSON_GetArrayItem(cur, atoi(s));
                } else {
                        cur = NULL;
                }
        }
        return cur;
}

/* The text a message quotes for SEG: the whole template when short. */
static void sf_twhere(const sf_template_t *t, const sf_tseg_t *s,
                      const char **p, int *n)
{
        size_t len = strlen(t->src);

        if (len <= SF_TEMPLATE_QUOTE_MAX) {
                *p = t->src;
                *n = (int)len;
        } else {
                *p = t->src + s->off;
                *n = (int)s->len;
        }
}

/* Looks SEG up and runs its filters. *VAL is the result, borrowed from
 * SCOPE or from *OWN, which the caller frees. */
static int sf_trender_ref(const sf_template_t *t, const sf_tseg_t *s,
                          const sf_scope_t *scope, const cJSON **val,
                          cJSON **own, char *errstr, size_t errstr_size)
{
        const cJSON *cur = sf_template_lookup(scope, s->parts, s->part_cnt);
        cJSON *mine = NULL, *next;
        char err[512];
        const char *w;
        size_t i;
        int wn;

        if (!cur && !s->has_default)
                goto missing;
        for (i = 0; i < s->filter_cnt; i++) {
                next = NULL;
                if (sf_tfilter_apply(&s->filters[i], cur, &next, err,
                                     sizeof(err))) {
                        cJSON_Delete(mine);
                        sf_twhere(t, s, &w, &wn);
                        sf_seterr(errstr, errstr_size, "%s in \"%.*s\"", err,
                                  wn, w);
                        return -1;
                }
                if (next) {
                        cJSON_Delete(mine);
                        mine = next;
                        cur = next;
                }
        }
        if (!cur)
                goto missing;
        *val = cur;
        *own = mine;
        return 0;
missing:
        cJSON_Delete(mine);
        sf_twhere(t, s, &w, &wn);
        /* A record without the field, named like one of syncfleet's: most
         * likely a template written before those moved under '@'. */
        if (s->path[0] != SF_TEMPLATE_AT &&
            sf_template_at_known(s->parts[0], strlen(s->parts[0])))
                sf_seterr(errstr, errstr_size,
                          "missing field '%s' in \"%.*s\" (syncfleet's own "
                          "names start with @: {{@%s}})",
                          s->path, wn, w, s->path);
        else
                sf_seterr(errstr, errstr_size, "missing field '%s' in \"%.*s\"",
                          s->path, wn, w);
        return -1;
}

static char *sf_trender_text(const sf_template_t *t, const sf_scope_t *scope,
                             int urlencode, char *errstr, size_t errstr_size)
{
        const cJSON *val;
        cJSON *own;
        sf_buf_t b;
        char *res = NULL;
        const char *w;
        size_t i;
        int rc = 0, wn;

        sf_buf_init(&b, SF_TEMPLATE_TEXT_MAX);
        for (i = 0; i < t->seg_cnt && !rc; i++) {
                const sf_tseg_t *s = &t->segs[i];

                if (!s->is_ref) {
                        rc = sf_buf_append(&b, t->src + s->off, s->len);
                } else {
                        if (sf_trender_ref(t, s, scope, &val, &own, errstr,
                                           errstr_size))
                                goto out;
                        rc = sf_template_append_value(&b, val, urlencode);
                        cJSON_Delete(own);
                }
                if (rc) {
                        sf_twhere(t, s, &w, &wn);
                        sf_seterr(errstr, errstr_size,
                                  "rendered text exceeds %u bytes in "
                                  "\"%.*s\"",
                                  SF_TEMPLATE_TEXT_MAX, wn, w);
                        goto out;
                }
        }
        res = b.len ? sf_buf_steal(&b) : sf_strdup("");
out:
        sf_buf_free(&b);
        return res;
}

cJSON *sf_template_render(const sf_template_t *t, const sf_scope_t *scope,
                          char *errstr, size_t errstr_size)
{
        const cJSON *val;
        cJSON *own = NULL, *res;
        char *text;

        if (t->seg_cnt == 1 && t->segs[0].is_ref) {
                if (sf_trender_ref(t, &t->segs[0], scope, &val, &own, errstr,
                                   errstr_size))
                        return NULL;
                if (own)
                        return own;
                /* A copy of an object member carries its key: drop it so
                 * the caller gets a bare value. */
                res = cJSON_Duplicate(val, 1);
                if (res && res->string && !(res->type & cJSON_StringIsConst)) {
                        cJSON_free(res->string);
                        res->string = NULL;
                }
                return res;
        }
        text = sf_trender_text(t, scope, 0, errstr, errstr_size);
        if (!text)
                return NULL;
        res = cJSON_CreateString(text);
        free(text);
        return res;
}

char *sf_template_render_str(const sf_template_t *t, const sf_scope_t *scope,
                             int flags, char *errstr, size_t errstr_size)
{
        return sf_trender_text(t, scope, (flags & SF_RENDER_URLENCODE) != 0,
                               errstr, errstr_size);
}

/* Calls CB once per reference, in template order (a path referenced twice
 * is reported twice). */
void sf_template_refs(const sf_template_t *t, sf_ref_cb *cb, void *opaque)
{
        size_t i;

        for (i = 0; i < t->seg_cnt; i++)
                if (t->segs[i].is_ref)
                        cb(t->segs[i].path, opaque);
}

void sf_template_refs_at(const sf_template_t *t, sf_ref_at_cb *cb, void *opaque)
{
        size_t i;

        for (i = 0; i < t->seg_cnt; i++)
                if (t->segs[i].is_ref)
                        cb(t->segs[i].path, t->segs[i].off, opaque);
}
