/*
 * sf-receiver's rules: parsing, per-rule counters and choosing an answer.
 * The rules' contract is in receiver.h.
 */
#include "receiver.h"

#include <microhttpd.h>

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RCV_COUNT_MAX 1000000000L

typedef enum rule_sel {
        SEL_ALL = 0,
        SEL_TIMES,
        SEL_NTH,
        SEL_EVERY,
} rule_sel_t;

/* One (path, count) entry of a rule's per-path counters. */
typedef struct counter {
        struct counter *next;
        uint64_t n;
        char path[];
} counter_t;

typedef struct counters {
        counter_t **buckets;
        size_t nbuckets;
        size_t cnt;
        uint64_t whole; /* the count for "scope": "rule" */
} counters_t;

typedef struct rule {
        char *path; /* the prefix, without its '*', when wildcard */
        int wildcard;
        char *method; /* NULL: any */
        rule_sel_t sel;
        long n; /* times or every */
        long *nth;
        size_t nth_cnt;
        int scope_rule;
        int status;
        char *body; /* NULL: the default for the status */
        char *content_type;
        cJSON *headers; /* borrowed from the ruleset's tree */
        char *retry_after;
        long delay_ms;
        int drop;
        int echo;
        counters_t counters;
} rule_t;

struct rcv_rules {
        rule_t *rules;
        size_t cnt;
        cJSON *tree; /* the parsed array, kept for GET /__rules */
};

void *rcv_malloc(size_t n)
{
        void *p = malloc(n ? n : 1);

        if (!p) {
                fprintf(stderr, "sf-receiver: out of memory\n");
                abort();
        }
        return p;
}

void *rcv_calloc(size_t n, size_t size)
{
        void *p = calloc(n ? n : 1, size ? size : 1);

        if (!p) {
                fprintf(stderr, "sf-receiver: out of memory\n");
                abort();
        }
        return p;
}

void *rcv_realloc(void *p, size_t n)
{
        void *q = realloc(p, n ? n : 1);

        if (!q) {
                fprintf(stderr, "sf-receiver: out of memory\n");
                abort();
        }
        return q;
}

char *rcv_strdup(const char *s)
{
        size_t n;
        char *p;

        if (!s)
                return NULL;
        n = strlen(s);
        p = rcv_malloc(n + 1);
        memcpy(p, s, n + 1);
        return p;
}

void rcv_seterr(char *errstr, size_t errstr_size, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(errstr, errstr_size, fmt, ap);
        va_end(ap);
}

/* FNV-1a: the counters only need a cheap, even spread of paths. */
static size_t hash_path(const char *s)
{
        size_t h = 2166136261u;

        for (; *s; s++)
                h = (h ^ (unsigned char)*s) * 16777619u;
        return h;
}

/* Counts one more request for path and returns the new count. */
static uint64_t counters_bump(counters_t *c, const char *path)
{
        counter_t *e;
        size_t i, len;

        if (c->cnt >= c->nbuckets) {
                size_t nb = c->nbuckets ? c->nbuckets * 2 : 16;
                counter_t **b = rcv_calloc(nb, sizeof(*b));

                for (i = 0; i < c->nbuckets; i++) {
                        while ((e = c->buckets[i])) {
                                size_t h = hash_path(e->path) % nb;

                                c->buckets[i] = e->next;
                                e->next = b[h];
                                b[h] = e;
                        }
                }
                free(c->buckets);
                c->buckets = b;
                c->nbuckets = nb;
        }
        i = hash_path(path) % c->nbuckets;
        for (e = c->buckets[i]; e; e = e->next)
                if (!strcmp(e->path, path))
                        return ++e->n;
        len = strlen(path);
        e = rcv_malloc(sizeof(*e) + len + 1);
        memcpy(e->path, path, len + 1);
        e->n = 1;
        e->next = c->buckets[i];
        c->buckets[i] = e;
        c->cnt++;
        return 1;
}

static void counters_free(counters_t *c)
{
        size_t i;
        counter_t *e;

        for (i = 0; i < c->nbuckets; i++) {
                while ((e = c->buckets[i])) {
                        c->buckets[i] = e->next;
                        free(e);
                }
        }
        free(c->buckets);
}

void rcv_rules_destroy(rcv_rules_t *rs)
{
        size_t i;

        if (!rs)
                return;
        for (i = 0; i < rs->cnt; i++) {
                rule_t *r = &rs->rules[i];

                free(r->path);
                free(r->method);
                free(r->nth);
                free(r->body);
                free(r->content_type);
                free(r->retry_after);
                counters_free(&r->counters);
        }
        free(rs->rules);
        cJSON_Delete(rs->tree);
        free(rs);
}

/* A whole JSON number in [min, max], or -1 with errstr set. */
static int rule_long(const cJSON *v, const char *name, long min, long max,
                     long *out, char *errstr, size_t errstr_size)
{
        if (!cJSON_IsNumber(v) ||
            v->valuedouble != (double)(long)v->valuedouble ||
            v->valuedouble < (double)min || v->valuedouble > (double)max) {
                rcv_seterr(errstr, errstr_size,
                           "\"%s\" must be a whole number from %ld to %ld",
                           name, min, max);
                return -1;
        }
        *out = (long)v->valuedouble;
        return 0;
}

static int rule_string(const cJSON *v, const char *name, char **out,
                       char *errstr, size_t errstr_size)
{
        if (!cJSON_IsString(v)) {
                rcv_seterr(errstr, errstr_size, "\"%s\" must be a string",
                           name);
                return -1;
        }
        *out = rcv_strdup(v->valuestring);
        return 0;
}

/* Fills r from one element of the rules array; every key is checked so a
 * misspelt key fails the test that wrote it instead of being ignored. */
static int rule_parse(rule_t *r, cJSON *obj, char *errstr, size_t errstr_size)
{
        const cJSON *v;
        long l = 0;
        int rc = 0, nsel = 0;
        char buf[32];

        r->status = 200;
        if (!cJSON_IsObject(obj)) {
                rcv_seterr(errstr, errstr_size, "a rule must be an object");
                return -1;
        }
        cJSON_ArrayForEach(v, obj)
        {
                const char *k = v->string;

                if (!strcmp(k, "path")) {
                        rc = rule_string(v, k, &r->path, errstr, errstr_size);
                } else if (!strcmp(k, "method")) {
                        rc = rule_string(v, k, &r->method, errstr, errstr_size);
                } else if (!strcmp(k, "times") || !strcmp(k, "every")) {
                        nsel++;
                        r->sel = k[0] == 't' ? SEL_TIMES : SEL_EVERY;
                        rc = rule_long(v, k, 1, RCV_COUNT_MAX, &r->n, errstr,
                                       errstr_size);
                } else if (!strcmp(k, "nth")) {
                        const cJSON *e;

                        nsel++;
                        r->sel = SEL_NTH;
                        if (!cJSON_IsArray(v) || !cJSON_GetArraySize(v)) {
                                rcv_seterr(errstr, errstr_size,
                                           "\"nth\" must be a non-empty array");
                                return -1;
                        }
                        r->nth = rcv_malloc(sizeof(long) *
                                            (size_t)cJSON_GetArraySize(v));
                        cJSON_ArrayForEach(e, v)
                        {
                                if (!rc)
                                        rc = rule_long(e, "nth", 1,
                                                       RCV_COUNT_MAX, &l,
                                                       errstr, errstr_size);
                                if (!rc)
                                        r->nth[r->nth_cnt++] = l;
                        }
                } else if (!strcmp(k, "scope")) {
                        if (!cJSON_IsString(v) ||
                            (strcmp(v->valuestring, "path") &&
                             strcmp(v->valuestring, "rule"))) {
                                rcv_seterr(errstr, errstr_size,
                                           "\"scope\" must be \"path\" or "
                                           "\"rule\"");
                                return -1;
                        }
                        r->scope_rule = !strcmp(v->valuestring, "rule");
                } else if (!strcmp(k, "status")) {
                        rc = rule_long(v, k, 200, 599, &l, errstr, errstr_size);
                        r->status = (int)l;
                } else if (!strcmp(k, "body")) {
                        rc = rule_string(v, k, &r->body, errstr, errstr_size);
                } else if (!strcmp(k, "content_type")) {
                        rc = rule_string(v, k, &r->content_type, errstr,
                                         errstr_size);
                } else if (!strcmp(k, "headers")) {
                        const cJSON *h;

                        if (!cJSON_IsObject(v)) {
                                rcv_seterr(errstr, errstr_size,
                                           "\"headers\" must be an object");
                                return -1;
                        }
                        cJSON_ArrayForEach(h, v)
                        {
                                if (!cJSON_IsString(h)) {
                                        rcv_seterr(errstr, errstr_size,
                                                   "header \"%s\" must be a "
                                                   "string",
                                                   h->string);
                                        return -1;
                                }
                        }
                        r->headers = (cJSON *)v;
                } else if (!strcmp(k, "retry_after")) {
                        if (cJSON_IsString(v)) {
                                r->retry_after = rcv_strdup(v->valuestring);
                        } else {
                                rc = rule_long(v, k, 0, INT_MAX, &l, errstr,
                                               errstr_size);
                                snprintf(buf, sizeof(buf), "%ld", l);
                                if (!rc)
                                        r->retry_after = rcv_strdup(buf);
                        }
                } else if (!strcmp(k, "delay_ms")) {
                        rc = rule_long(v, k, 0, 3600 * 1000, &r->delay_ms,
                                       errstr, errstr_size);
                } else if (!strcmp(k, "drop")) {
                        if (!cJSON_IsBool(v)) {
                                rcv_seterr(errstr, errstr_size,
                                           "\"drop\" must be true or false");
                                return -1;
                        }
                        r->drop = cJSON_IsTrue(v);
                } else if (!strcmp(k, "echo")) {
                        if (!cJSON_IsBool(v)) {
                                rcv_seterr(errstr, errstr_size,
                                           "\"echo\" must be true or false");
                                return -1;
                        }
                        r->echo = cJSON_IsTrue(v);
                } else {
                        rcv_seterr(errstr, errstr_size, "unknown key \"%s\"",
                                   k);
                        return -1;
                }
                if (rc)
                        return -1;
        }
        if (!r->path || r->path[0] != '/') {
                rcv_seterr(errstr, errstr_size,
                           "\"path\" is required and must start with '/'");
                return -1;
        }
        if (nsel > 1) {
                rcv_seterr(errstr, errstr_size,
                           "use only one of \"times\", \"nth\" and \"every\"");
                return -1;
        }
        r->wildcard = r->path[strlen(r->path) - 1] == '*';
        if (r->wildcard)
                r->path[strlen(r->path) - 1] = '\0';
        return 0;
}

/* Parses a rules array (text, len bytes); NULL with errstr set if invalid. */
rcv_rules_t *rcv_rules_parse(const char *text, size_t len, char *errstr,
                             size_t errstr_size)
{
        rcv_rules_t *rs = rcv_calloc(1, sizeof(*rs));
        cJSON *e;
        char why[256];
        size_t i = 0;

        rs->tree = cJSON_ParseWithLength(text, len);
        if (!rs->tree || !cJSON_IsArray(rs->tree)) {
                rcv_seterr(errstr, errstr_size,
                           "rules must be a JSON array of objects");
                goto fail;
        }
        rs->cnt = (size_t)cJSON_GetArraySize(rs->tree);
        rs->rules = rcv_calloc(rs->cnt, sizeof(*rs->rules));
        cJSON_ArrayForEach(e, rs->tree)
        {
                if (rule_parse(&rs->rules[i], e, why, sizeof(why))) {
                        rcv_seterr(errstr, errstr_size, "rule %zu: %s", i + 1,
                                   why);
                        goto fail;
                }
                i++;
        }
        return rs;
fail:
        rcv_rules_destroy(rs);
        return NULL;
}

static int rule_matches(const rule_t *r, const char *method, const char *path)
{
        if (r->method && strcasecmp(r->method, method))
                return 0;
        if (r->wildcard)
                return !strncmp(path, r->path, strlen(r->path));
        return !strcmp(path, r->path);
}

/* Counts the request against r and says whether r answers it. */
static int rule_applies(rule_t *r, const char *path)
{
        uint64_t n;
        size_t i;

        if (r->sel == SEL_ALL)
                return 1;
        n = r->scope_rule ? ++r->counters.whole
                          : counters_bump(&r->counters, path);
        switch (r->sel) {
        case SEL_TIMES:
                return n <= (uint64_t)r->n;
        case SEL_EVERY:
                return n % (uint64_t)r->n == 0;
        case SEL_NTH:
                for (i = 0; i < r->nth_cnt; i++)
                        if (n == (uint64_t)r->nth[i])
                                return 1;
                return 0;
        default:
                return 1;
        }
}

void rcv_answer_clear(rcv_answer_t *a)
{
        free(a->body);
        free(a->content_type);
        free(a->retry_after);
        cJSON_Delete(a->headers);
        memset(a, 0, sizeof(*a));
}

/* The default body for a status: {"ok":true} or {"error":"<reason>"}. */
static char *default_body(int status)
{
        cJSON *o = cJSON_CreateObject();
        char *s;

        if (status >= 200 && status < 300)
                cJSON_AddTrueToObject(o, "ok");
        else
                cJSON_AddStringToObject(
                    o, "error", MHD_get_reason_phrase_for((unsigned)status));
        s = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        return s;
}

void rcv_answer_default(rcv_answer_t *a, int status)
{
        memset(a, 0, sizeof(*a));
        a->status = status;
        a->body = default_body(status);
}

void rcv_rules_answer(rcv_rules_t *rs, const char *method, const char *path,
                      rcv_answer_t *a)
{
        size_t i;
        rule_t *r = NULL;

        for (i = 0; rs && i < rs->cnt; i++) {
                rule_t *c = &rs->rules[i];

                if (rule_matches(c, method, path) && rule_applies(c, path)) {
                        r = c;
                        break;
                }
        }
        if (!r) {
                rcv_answer_default(a, 200);
                return;
        }
        memset(a, 0, sizeof(*a));
        a->status = r->status;
        a->body = r->body ? rcv_strdup(r->body) : default_body(r->status);
        a->content_type = rcv_strdup(r->content_type);
        a->retry_after = rcv_strdup(r->retry_after);
        a->headers = r->headers ? cJSON_Duplicate(r->headers, 1) : NULL;
        a->delay_ms = r->delay_ms;
        a->drop = r->drop;
        a->echo = r->echo;
}

char *rcv_rules_json(const rcv_rules_t *rs)
{
        return rs ? cJSON_PrintUnformatted(rs->tree) : rcv_strdup("[]");
}
