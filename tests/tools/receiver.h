/*
 * sf-receiver's answer rules (the contract tests write rules against).
 *
 * Answers come from rules: a JSON array given by --rules and replaced at
 * runtime by PUT /__rules (answers 200, or 400 with the reason and the old
 * rules kept). GET /__rules returns the rules in force, GET /__health
 * answers 200. Requests to /__* are neither logged nor counted. The first
 * rule that applies answers; without one the answer is 200 {"ok":true}.
 *
 *   {"path": "/orders" | "/customers*",    exact, or prefix ending in '*'
 *    "method": "POST",                     optional, any method without it
 *    "times": N | "nth": [k, ...] | "every": N,   optional, see below
 *    "scope": "path" | "rule",             what the counters count per
 *    "status": 503,                        default 200
 *    "body": "...",                        default {"ok":true} for 2xx,
 *                                          {"error":"<reason>"} otherwise
 *    "content_type": "text/plain",         default application/json
 *    "headers": {"Location": "/x"},        extra response headers
 *    "retry_after": 2 | "<http-date>",     adds Retry-After
 *    "delay_ms": 1500,                     sleep before answering
 *    "drop": true,                         close without answering
 *    "echo": true}                         the body is the request:
 *                                          {"authorization", "query", "body",
 *                                          "headers"}, instead of "body"
 *
 * A rule counts the requests that reach it (no earlier rule answered them)
 * and match its path and method. "times": N applies to the first N of them,
 * "nth": [k, ...] to the k-th ones (1-based), "every": N to every N-th; a
 * rule without any of these applies to all. A request the rule does not
 * apply to goes on to the next rule. With the default "scope": "path" the
 * count is kept per request path: "times": 2 on "/customers*" (or on
 * "/customers/" followed by '*') fails the first 2 requests of EACH customer
 * path. "scope": "rule" keeps one count
 * for all paths of the rule. Replacing the rules resets every count.
 */
#ifndef RCV_RECEIVER_H
#define RCV_RECEIVER_H

#include <cjson/cJSON.h>

#include <stddef.h>

/* A parsed rules array with its counters. */
typedef struct rcv_rules rcv_rules_t;

/* What one request is answered with, copied out of its rule so the rules
 * may be replaced while the request sleeps. Owns every pointer. */
typedef struct rcv_answer {
        int status;
        char *body;
        char *content_type; /* NULL: application/json */
        char *retry_after;  /* NULL: no Retry-After */
        cJSON *headers;     /* extra headers, name: value; may be NULL */
        long delay_ms;
        int drop;
        int echo; /* the body is the request (echo_body) */
} rcv_answer_t;

/* Parses a rules array of len bytes; NULL with errstr set ("rule 2: ...")
 * if it is not valid. */
rcv_rules_t *rcv_rules_parse(const char *text, size_t len, char *errstr,
                             size_t errstr_size);
void rcv_rules_destroy(rcv_rules_t *rs); /* NULL is a no-op */

/* The rules as compact JSON text, for GET /__rules; the caller frees it. */
char *rcv_rules_json(const rcv_rules_t *rs);

/* Fills a with the answer to a request, counting it against every rule it
 * reaches. rs may be NULL (no rules). Not thread-safe: the caller holds one
 * lock across the calls so counts follow arrival order. */
void rcv_rules_answer(rcv_rules_t *rs, const char *method, const char *path,
                      rcv_answer_t *a);

/* Sets a to status with its default body and nothing else. */
void rcv_answer_default(rcv_answer_t *a, int status);
void rcv_answer_clear(rcv_answer_t *a);

/* Allocation that aborts on exhaustion, and the errstr convention. */
void *rcv_malloc(size_t n);
void *rcv_calloc(size_t n, size_t size);
void *rcv_realloc(void *p, size_t n);
char *rcv_strdup(const char *s); /* NULL for NULL */
void rcv_seterr(char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
