/*
 * Internals shared by template.c (compile, render), template_filters.c (the
 * filters and value-to-text rules) and mapping.c. Not for other modules:
 * they use template.h.
 */
#ifndef SF_TEMPLATE_INT_H
#define SF_TEMPLATE_INT_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "json.h"
#include "sf.h"
#include "template.h"

/* Bounded work: no rendered text grows past this, no mapping or parsed
 * value nests deeper than that. */
#define SF_TEMPLATE_TEXT_MAX  (1024u * 1024u)
#define SF_TEMPLATE_DEPTH_MAX 64

typedef enum sf_tfilter_kind {
        SF_TF_LOWER = 0,
        SF_TF_UPPER,
        SF_TF_TRIM,
        SF_TF_NUMBER,
        SF_TF_STRING,
        SF_TF_BOOL,
        SF_TF_JSON,
        SF_TF_DEFAULT,
        SF_TF_DATE,
} sf_tfilter_kind_t;

typedef struct sf_tfilter {
        sf_tfilter_kind_t kind;
        cJSON *arg; /* default: the replacement value */
        char *fmt;  /* date: the strftime format */
} sf_tfilter_t;

/* The filter called NAME (LEN bytes), or -1 when there is none. */
int sf_tfilter_lookup(const char *name, size_t len);
const char *sf_tfilter_name(sf_tfilter_kind_t kind);
/* "lower, upper, ...": every filter name, for error messages. */
const char *sf_tfilter_known(void);

/* Checks ARGS (a cJSON array of strings and numbers, borrowed) against
 * what F's kind takes and stores what it needs in F. 0, or -1 with a
 * sentence in errstr. */
int sf_tfilter_set_args(sf_tfilter_t *f, const cJSON *args, char *errstr,
                        size_t errstr_size);
void sf_tfilter_clear(sf_tfilter_t *f);

/* Applies F to IN (NULL means the field is missing). On success returns 0
 * and sets *out to a new value the caller owns, or leaves it NULL when the
 * value passes through unchanged. On failure returns -1 with a sentence in
 * errstr naming the filter and the value (without the template). */
int sf_tfilter_apply(const sf_tfilter_t *f, const cJSON *in, cJSON **out,
                     char *errstr, size_t errstr_size);

/* Parses N bytes of S as a decimal number (surrounding whitespace, a sign,
 * a fraction and an exponent allowed; no hex, inf or nan). 0 or -1. */
int sf_template_parse_number(const char *s, size_t n, double *out);

/* Appends V as text (strings raw, numbers as JSON numbers, booleans, null
 * as nothing, objects and arrays as compact JSON). With URLENCODE the text
 * is percent-encoded. 0, or -1 when B's cap is reached. */
int sf_template_append_value(sf_buf_t *b, const cJSON *v, int urlencode);

/* Appends N bytes of S percent-encoded (RFC 3986 unreserved bytes kept,
 * except the dots of a "." or ".." piece of S, which become %2E: a value
 * in a path is data, never a dot segment that moves the request). */
int sf_template_append_urlencoded(sf_buf_t *b, const char *s, size_t n);

/* Writes a short description of V for error messages: "abc" quoted and
 * shortened, "the number 42", "an object", ... */
void sf_template_describe(const cJSON *v, char *buf, size_t size);

/* Resolves PARTS against SCOPE: the first part picks the innermost scope
 * that has it (an @name only among the scopes of syncfleet's names, any
 * other only among the others), the rest walk objects (by name) and arrays
 * (by a decimal index). NULL when missing. */
const cJSON *sf_template_lookup(const sf_scope_t *scope, char *const *parts,
                                size_t part_cnt);

/* Splits a dotted PATH into a new array of parts (free with
 * sf_template_parts_free). -1 when a part is empty or holds a byte outside
 * [A-Za-z0-9_-], but for the '@' of a first part that is one of
 * syncfleet's names. */
int sf_template_split_path(const char *path, char ***parts, size_t *part_cnt);
void sf_template_parts_free(char **parts, size_t part_cnt);

#endif
