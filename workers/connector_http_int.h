/*
 * Internals shared by connector_http.c (requests, queue, poll, outcomes),
 * connector_http_auth.c (authorization, OAuth2 client-credentials token
 * cache) and connector_http_answer.c (reading headers and bodies). Not for
 * other modules: they use connector.h.
 */
#ifndef SF_CONNECTOR_HTTP_INT_H
#define SF_CONNECTOR_HTTP_INT_H

#include <stdint.h>

#include <curl/curl.h>

#include "connector.h"
#include "json.h"

/* Answer bodies bigger than this are not read: the status decides as
 * usual, with no body (a 2xx is done, its @response null). */
#define SF_HTTP_MAX_RESPONSE (1024u * 1024u)

typedef struct sf_http_req sf_http_req_t;

struct sf_http_req {
        sf_http_req_t *next; /* queue, in-flight or done list */
        char *method;
        char *url;
        char *body; /* compact JSON; NULL: no body */
        char *idempotency_key;
        char *action;
        sf_conn_done_cb *done;
        void *opaque;
        CURL *easy; /* while on the wire */
        struct curl_slist *headers;
        sf_buf_t resp;          /* capped at SF_HTTP_MAX_RESPONSE */
        int too_large;          /* the answer's body went past the cap */
        unsigned token_gen;     /* oauth2: generation of the token sent */
        int token_on_probation; /* oauth2: that token replaced one the
                                 * target refused, and had not yet been
                                 * accepted when this request left */
        char errbuf[CURL_ERROR_SIZE];
        sf_result_t res; /* filled when the request completes */
};

/* The OAuth2 token cache of one connector. */
typedef struct sf_http_oauth {
        char *token;        /* NULL: none cached */
        int64_t expires_at; /* monotonic ms; 0: until refused */
        unsigned gen;       /* bumped for every token fetched */
        int probation;      /* current token followed a 401 and has not
                             * been accepted yet */
        int refused;        /* the last token was dropped after a 401 */
        CURL *easy;         /* token request on the wire, or NULL */
        int64_t started_ms; /* when it left, monotonic */
        struct curl_slist *headers;
        char *form;
        sf_buf_t resp;
        char errbuf[CURL_ERROR_SIZE];
} sf_http_oauth_t;

struct sf_conn {
        const sf_connector_cfg_t *cfg;
        char *name;
        CURLM *multi;
        int max_in_flight;
        long timeout_ms;
        long connect_timeout_ms;
        sf_http_req_t *queue_head, *queue_tail; /* not started yet, FIFO */
        size_t queued;
        sf_http_req_t *in_flight; /* on the wire */
        size_t in_flight_cnt;
        sf_http_req_t *done_head, *done_tail; /* completed, callback due */
        size_t done_cnt;
        CURL **pool; /* idle easy handles, reused */
        size_t pool_cnt, pool_cap;
        double bucket;        /* rate limit tokens available */
        double burst;         /* bucket capacity */
        int64_t bucket_ts_ms; /* last refill, monotonic */
        sf_http_oauth_t oauth;
};

/* An idle easy handle from the connector's pool (already reset), or a new
 * one; NULL when libcurl cannot make one. */
CURL *sf_http_easy_get(sf_conn_t *c);
/* Gives EASY (already removed from the multi handle) back to the pool. */
void sf_http_easy_put(sf_conn_t *c, CURL *easy);
/* Options every transfer of connector C has: timeouts, TLS, user agent,
 * error buffer, protocols. */
CURLcode sf_http_easy_common(sf_conn_t *c, CURL *easy, char *errbuf);
/* curl write callback appending to an sf_buf_t (USERP); a failed append
 * (the cap) stops the transfer. */
size_t sf_http_write_buf(char *ptr, size_t size, size_t nmemb, void *userp);

/* Authorization for REQ per the connector's auth type: CURLOPT_* options
 * for basic, a header appended to *HEADERS for bearer and oauth2 (the
 * cached token, which must be valid: see sf_http_auth_ready). Returns a
 * curl error code, CURLE_OK on success. */
CURLcode sf_http_auth_apply(sf_conn_t *c, sf_http_req_t *req, CURL *easy,
                            struct curl_slist **headers);

/* 1 when requests may start now as far as authorization goes. For oauth2
 * without a valid cached token, starts the token request (once) and
 * returns 0; requests wait in the queue until it completes. */
int sf_http_auth_ready(sf_conn_t *c);

/* Handles the completion of the token request when EASY is it, then
 * returns 1; returns 0 for any other handle. A failed token request fails
 * every queued request with SF_RETRY (the record is not at fault). */
int sf_http_auth_reap(sf_conn_t *c, CURL *easy, CURLcode result);

/* What HTTP_STATUS from the target says about REQ's authorization. Under
 * oauth2 a 401 drops the cached token that was refused and gives SF_RETRY
 * (the next try fetches a new one), or SF_FATAL when the refused token had
 * itself replaced a refused one and was never accepted (the credentials
 * open the token endpoint but not this call); any other answer proves the
 * token. Returns SF_OK when the answer says nothing about authorization:
 * the caller classifies it as usual. */
sf_status_t sf_http_auth_answer(sf_conn_t *c, const sf_http_req_t *req,
                                long http_status);

/* Appends LINE ("Name: value") to *HEADERS; CURLE_OUT_OF_MEMORY when
 * libcurl cannot. */
CURLcode sf_http_header_add(struct curl_slist **headers, const char *line);

/* The start of an answer body for an error sentence: at most 200 bytes,
 * cut on a UTF-8 boundary, control characters turned into spaces. */
void sf_http_snippet(const sf_buf_t *body, char *out, size_t out_size);

/* The answer's headers (the last response of EASY) as a JSON object with
 * lower-cased names; repeated headers joined with ", ". Caller frees. */
char *sf_http_headers_json(CURL *easy);

/* Retry-After of EASY's answer as milliseconds from now (delta-seconds or
 * an HTTP-date), capped at a day; -1 when absent or unreadable. */
int64_t sf_http_retry_after(CURL *easy);

/* 1 when RC says the peer's certificate cannot be trusted as configured
 * (verification failed, the CA file unreadable, a pin not matched): a
 * failure that waiting will not mend. */
int sf_http_curl_misconfigured(CURLcode rc);

/* Moves REQ to the done list with STATUS and a formatted error. */
void sf_http_complete(sf_conn_t *c, sf_http_req_t *req, sf_status_t status,
                      const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Frees what sf_http_auth_* holds (token, a token request on the wire). */
void sf_http_auth_free(sf_conn_t *c);

#endif
