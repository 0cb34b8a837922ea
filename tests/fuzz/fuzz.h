/*
 * What the libFuzzer harnesses of tests/fuzz share: a check that aborts
 * with a sentence (libFuzzer keeps the input that made it fail), and the
 * splitting of one input into NUL-separated parts.
 */
#ifndef SF_FUZZ_H
#define SF_FUZZ_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

/* A property every input must keep; its failure is a finding. */
#define FUZZ_CHECK(cond, ...)                                                  \
        do {                                                                   \
                if (!(cond)) {                                                 \
                        fprintf(stderr, "fuzz: %s:%d: %s: ", __FILE__,         \
                                __LINE__, #cond);                              \
                        fprintf(stderr, __VA_ARGS__);                          \
                        fputc('\n', stderr);                                   \
                        abort();                                               \
                }                                                              \
        } while (0)

/* The next part of *DATA (up to a NUL or the end) as PART[0..*LEN-1];
 * returns 0 when nothing is left. The NUL is consumed. */
static inline int fuzz_part(const uint8_t **data, size_t *size,
                            const uint8_t **part, size_t *len)
{
        const uint8_t *nul;

        if (!*data)
                return 0;
        nul = memchr(*data, '\0', *size);
        *part = *data;
        if (nul) {
                *len = (size_t)(nul - *data);
                *size -= *len + 1;
                *data = nul + 1;
        } else {
                *len = *size;
                *data = NULL;
                *size = 0;
        }
        return 1;
}

/* A NUL-terminated copy of P[0..LEN-1]; caller frees. */
static inline char *fuzz_strndup(const void *p, size_t len)
{
        char *s = malloc(len + 1);

        if (!s)
                abort();
        memcpy(s, p, len);
        s[len] = '\0';
        return s;
}

/* The K-th (0-based) member named NAME of object O, or NULL. */
static inline const cJSON *fuzz_member(const cJSON *o, const char *name, int k)
{
        for (const cJSON *c = o->child; c; c = c->next)
                if (!strcmp(c->string ? c->string : "", name) && k-- == 0)
                        return c;
        return NULL;
}

/* 1 when B holds exactly the values of A, as printing A and reading it
 * back must give: numbers equal as doubles (a number JSON cannot hold,
 * an infinity, may become null), strings and raw text byte for byte,
 * object members by name whatever their order (duplicates in order),
 * array items in order. */
static inline int fuzz_json_same(const cJSON *a, const cJSON *b)
{
        if (!a || !b)
                return a == b;
        if (cJSON_IsNumber(a) && !isfinite(a->valuedouble))
                return cJSON_IsNull(b) ||
                       (cJSON_IsNumber(b) && b->valuedouble == a->valuedouble);
        if ((a->type & 0xff) != (b->type & 0xff))
                return 0;
        if (cJSON_IsNumber(a))
                return a->valuedouble == b->valuedouble;
        if (cJSON_IsString(a) || cJSON_IsRaw(a))
                return a->valuestring && b->valuestring &&
                       !strcmp(a->valuestring, b->valuestring);
        if (cJSON_IsArray(a) || cJSON_IsObject(a)) {
                const cJSON *x = a->child, *y = b->child;

                if (cJSON_GetArraySize(a) != cJSON_GetArraySize(b))
                        return 0;
                for (; x; x = x->next, y = y ? y->next : NULL) {
                        const cJSON *m = y;

                        if (cJSON_IsObject(a)) {
                                const char *name = x->string ? x->string : "";
                                int k = 0;

                                for (const cJSON *p = a->child; p != x;
                                     p = p->next)
                                        k += !strcmp(p->string ? p->string : "",
                                                     name);
                                m = fuzz_member(b, name, k);
                        }
                        if (!fuzz_json_same(x, m))
                                return 0;
                }
        }
        return 1;
}

#endif
