/*
 * The http connector: documents and web service calls over libcurl's multi
 * interface, driven from poll() on the worker's own thread.
 *
 * A request goes through three lists: queued (FIFO, waiting for a free
 * slot under max_in_flight, a rate-limit token and, for oauth2, a token),
 * in flight (an easy handle on the multi handle), and done (outcome known,
 * callback due). Callbacks run only at the end of poll(), one per request.
 * Easy handles are pooled and the multi handle keeps the connections, so
 * keep-alive connections are reused across requests.
 */
#include "connector_http_int.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "text.h"

#define SF_HTTP_LOG               "http"
#define SF_HTTP_DEFAULT_TIMEOUT   5000
#define SF_HTTP_MAX_CONNECT_MS    10000
#define SF_HTTP_DEFAULT_IN_FLIGHT 32

static pthread_once_t sf_http_once = PTHREAD_ONCE_INIT;
static CURLcode sf_http_global_rc;
/* libcurl before 8.1.0 keeps a pointer to the last header of a handle's
 * previous transfer across curl_easy_reset (curl issue 11101): an answer
 * whose first header line is a folded continuation then reads and frees
 * freed memory. Handles are pooled only where that is fixed. */
static int sf_http_pool_ok;

/* curl_global_init is not safe to race with other threads: run it once per
 * process, before the first handle. */
static void http_global_init(void)
{
        sf_http_global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
        sf_http_pool_ok =
            curl_version_info(CURLVERSION_NOW)->version_num >= 0x080100;
}

CURL *sf_http_easy_get(sf_conn_t *c)
{
        if (c->pool_cnt)
                return c->pool[--c->pool_cnt];
        return curl_easy_init();
}

/* Reset on the way in, so an idle handle points at nothing that is freed
 * later; the connections themselves live in the multi handle. */
void sf_http_easy_put(sf_conn_t *c, CURL *easy)
{
        if (!easy)
                return;
        if (c->pool_cnt < c->pool_cap && sf_http_pool_ok) {
                curl_easy_reset(easy);
                c->pool[c->pool_cnt++] = easy;
        } else {
                curl_easy_cleanup(easy);
        }
}

CURLcode sf_http_easy_common(sf_conn_t *c, CURL *easy, char *errbuf)
{
        long verify = c->cfg->tls_verify != 0;
        CURLcode rc;

        errbuf[0] = '\0';
        rc = curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
        if (!rc)
                rc = curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
        if (!rc)
                rc = curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, c->timeout_ms);
        if (!rc)
                rc = curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                                      c->connect_timeout_ms);
        if (!rc)
                rc = curl_easy_setopt(easy, CURLOPT_USERAGENT,
                                      "syncfleet/" SF_VERSION);
        if (!rc)
                rc =
                    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
        if (!rc)
                rc = curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, verify);
        if (!rc)
                rc = curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST,
                                      verify ? 2L : 0L);
        if (!rc && c->cfg->ca_file)
                rc = curl_easy_setopt(easy, CURLOPT_CAINFO, c->cfg->ca_file);
        if (!rc)
                rc = curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
        if (!rc)
                rc = curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");
        return rc;
}

size_t sf_http_write_buf(char *ptr, size_t size, size_t nmemb, void *userp)
{
        sf_buf_t *b = userp;

        if (sf_buf_append(b, ptr, size * nmemb))
                return 0;
        return size * nmemb;
}

/* Like sf_http_write_buf, and remembers that the cap was hit, so that the
 * answer's status decides rather than the transfer error. */
static size_t http_write_resp(char *ptr, size_t size, size_t nmemb, void *userp)
{
        sf_http_req_t *r = userp;

        if (sf_buf_append(&r->resp, ptr, size * nmemb)) {
                r->too_large = 1;
                return 0;
        }
        return size * nmemb;
}

CURLcode sf_http_header_add(struct curl_slist **headers, const char *line)
{
        struct curl_slist *l = curl_slist_append(*headers, line);

        if (!l)
                return CURLE_OUT_OF_MEMORY;
        *headers = l;
        return CURLE_OK;
}

void sf_http_complete(sf_conn_t *c, sf_http_req_t *req, sf_status_t status,
                      const char *fmt, ...)
{
        va_list ap;

        req->res.status = status;
        va_start(ap, fmt);
        vsnprintf(req->res.error, sizeof(req->res.error), fmt, ap);
        va_end(ap);
        req->next = NULL;
        if (c->done_tail)
                c->done_tail->next = req;
        else
                c->done_head = req;
        c->done_tail = req;
        c->done_cnt++;
}

/* Frees REQ wherever it was; its easy handle goes back to the pool. */
static void http_req_free(sf_conn_t *c, sf_http_req_t *r)
{
        if (!r)
                return;
        if (r->easy) {
                curl_multi_remove_handle(c->multi, r->easy);
                sf_http_easy_put(c, r->easy);
        }
        curl_slist_free_all(r->headers);
        free(r->method);
        free(r->url);
        free(r->body);
        free(r->idempotency_key);
        free(r->action);
        sf_buf_free(&r->resp);
        cJSON_Delete(r->res.response);
        free((char *)r->res.response_headers_json);
        free(r);
}

static void http_list_free(sf_conn_t *c, sf_http_req_t *r)
{
        while (r) {
                sf_http_req_t *next = r->next;

                http_req_free(c, r);
                r = next;
        }
}

static int http_has_crlf(const char *s)
{
        return s && strpbrk(s, "\r\n") != NULL;
}

/* RFC 9110 token characters: what a method name may hold. */
static int http_is_token(const char *s)
{
        if (!s || !*s)
                return 0;
        for (; *s; s++)
                if (!(*s >= 'A' && *s <= 'Z') && !(*s >= 'a' && *s <= 'z') &&
                    !(*s >= '0' && *s <= '9') && !strchr("!#$%&'*+-.^_`|~", *s))
                        return 0;
        return 1;
}

/* base_url + path with exactly one slash at the seam. */
static char *http_url(const char *base, const char *path)
{
        size_t bl = strlen(base);
        int base_slash = bl > 0 && base[bl - 1] == '/';

        if (!path || !*path)
                return sf_strdup(base);
        if (base_slash && path[0] == '/')
                return sf_asprintf("%s%s", base, path + 1);
        if (!base_slash && path[0] != '/' && path[0] != '?')
                return sf_asprintf("%s/%s", base, path);
        return sf_asprintf("%s%s", base, path);
}

static int http_cfg_has_header(const sf_connector_cfg_t *cfg, const char *name)
{
        for (size_t i = 0; i < cfg->header_cnt; i++)
                if (!strcasecmp(cfg->headers[i].key, name))
                        return 1;
        return 0;
}

static CURLcode http_set_method(CURL *easy, const sf_http_req_t *r)
{
        const char *m = r->method;
        int wants_body =
            !strcmp(m, "POST") || !strcmp(m, "PUT") || !strcmp(m, "PATCH");
        CURLcode rc = CURLE_OK;

        if (r->body || wants_body) {
                const char *body = r->body ? r->body : "";

                rc = curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                                      (curl_off_t)strlen(body));
                if (!rc)
                        rc = curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body);
                if (!rc && strcmp(m, "POST"))
                        rc = curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, m);
        } else if (!strcmp(m, "GET")) {
                rc = curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
        } else if (!strcmp(m, "HEAD")) {
                rc = curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
        } else {
                rc = curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, m);
        }
        return rc;
}

/* Content-Type (unless configured), the configured headers, the
 * idempotency key, and no "Expect: 100-continue" round trip. */
static CURLcode http_headers(sf_conn_t *c, const sf_http_req_t *r,
                             struct curl_slist **h)
{
        const sf_connector_cfg_t *cfg = c->cfg;
        CURLcode rc = CURLE_OK;
        char *line;

        if (r->body && !http_cfg_has_header(cfg, "Content-Type"))
                rc = sf_http_header_add(h, "Content-Type: application/json");
        for (size_t i = 0; !rc && i < cfg->header_cnt; i++) {
                const char *v = cfg->headers[i].value;

                /* "Name;" is how libcurl sends a header with no value */
                if (v && *v)
                        line = sf_asprintf("%s: %s", cfg->headers[i].key, v);
                else
                        line = sf_asprintf("%s;", cfg->headers[i].key);
                rc = sf_http_header_add(h, line);
                free(line);
        }
        if (!rc && r->idempotency_key && *r->idempotency_key) {
                line = sf_asprintf("Idempotency-Key: %s", r->idempotency_key);
                rc = sf_http_header_add(h, line);
                free(line);
        }
        if (!rc)
                rc = sf_http_header_add(h, "Expect:");
        return rc;
}

/* What a libcurl failure means for the record: a URL libcurl cannot use
 * never works; everything else (timeouts, refused, reset, DNS, TLS, an
 * answer that is not HTTP) may work next time. */
static sf_status_t http_curl_status(CURLcode rc)
{
        switch (rc) {
        case CURLE_URL_MALFORMAT:
                return SF_FATAL;
        default:
                return SF_RETRY;
        }
}

int sf_http_curl_misconfigured(CURLcode rc)
{
        switch (rc) {
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_ISSUER_ERROR:
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        case CURLE_SSL_CERTPROBLEM:
                return 1;
        default:
                return 0;
        }
}

/* Per try at debug only: a connector that keeps failing opens its
 * circuit, and the worker logs that once, with this error. */
static void http_curl_failed(sf_conn_t *c, sf_http_req_t *r, CURLcode rc)
{
        sf_debug(SF_HTTP_LOG, "connector %s, action %s: %s %s: %s%s%s%s",
                 c->name, r->action ? r->action : "-", r->method, r->url,
                 curl_easy_strerror(rc), r->errbuf[0] ? " (" : "", r->errbuf,
                 r->errbuf[0] ? ")" : "");
        r->res.misconfigured = sf_http_curl_misconfigured(rc);
        /* what to fix is in libcurl's detail ("unable to get local issuer
         * certificate"): it goes with the error the circuit logs */
        if (r->res.misconfigured && r->errbuf[0])
                sf_http_complete(c, r, http_curl_status(rc), "%s %s: %s (%s)",
                                 r->method, r->url, curl_easy_strerror(rc),
                                 r->errbuf);
        /* base_url is http or https (the configuration says so), and
         * libcurl takes no other protocol: this is an answer that does not
         * start with an HTTP status line */
        else if (rc == CURLE_UNSUPPORTED_PROTOCOL)
                sf_http_complete(c, r, SF_RETRY,
                                 "%s %s: the answer is not HTTP (no valid "
                                 "status line)",
                                 r->method, r->url);
        else
                sf_http_complete(c, r, http_curl_status(rc), "%s %s: %s",
                                 r->method, r->url, curl_easy_strerror(rc));
}

/* Puts R on the wire, or completes it when libcurl will not take it. */
static void http_start(sf_conn_t *c, sf_http_req_t *r)
{
        CURL *easy = sf_http_easy_get(c);
        struct curl_slist *h = NULL;
        CURLcode rc;
        CURLMcode mc;

        if (!easy) {
                r->errbuf[0] = '\0';
                http_curl_failed(c, r, CURLE_FAILED_INIT);
                return;
        }
        r->easy = easy; /* freed with r from here on */
        rc = sf_http_easy_common(c, easy, r->errbuf);
        if (!rc)
                rc = curl_easy_setopt(easy, CURLOPT_URL, r->url);
        /* the path goes out as rendered, which sf_render checked stays
         * under base_url: libcurl resolving its dot segments would send
         * another one */
        if (!rc)
                rc = curl_easy_setopt(easy, CURLOPT_PATH_AS_IS, 1L);
        if (!rc)
                rc = http_set_method(easy, r);
        if (!rc)
                rc = http_headers(c, r, &h);
        if (!rc)
                rc = sf_http_auth_apply(c, r, easy, &h);
        r->headers = h;
        if (!rc)
                rc = curl_easy_setopt(easy, CURLOPT_HTTPHEADER, h);
        if (!rc)
                rc = curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION,
                                      http_write_resp);
        if (!rc)
                rc = curl_easy_setopt(easy, CURLOPT_WRITEDATA, r);
        if (!rc)
                rc = curl_easy_setopt(easy, CURLOPT_PRIVATE, r);
        if (rc) {
                sf_http_easy_put(c, easy);
                r->easy = NULL;
                http_curl_failed(c, r, rc);
                return;
        }
        mc = curl_multi_add_handle(c->multi, easy);
        if (mc) {
                sf_warn(SF_HTTP_LOG, "connector %s: %s %s: %s", c->name,
                        r->method, r->url, curl_multi_strerror(mc));
                sf_http_easy_put(c, easy);
                r->easy = NULL;
                sf_http_complete(c, r, SF_RETRY, "%s %s: %s", r->method, r->url,
                                 curl_multi_strerror(mc));
                return;
        }
        r->next = c->in_flight;
        c->in_flight = r;
        c->in_flight_cnt++;
}

static void http_bucket_refill(sf_conn_t *c, int64_t now)
{
        double rate = c->cfg->rate_limit_per_s;

        c->bucket += (double)(now - c->bucket_ts_ms) * rate / 1000.0;
        if (c->bucket > c->burst)
                c->bucket = c->burst;
        c->bucket_ts_ms = now;
}

/* Takes one rate-limit token; 0 when the bucket is empty. */
static int http_bucket_take(sf_conn_t *c)
{
        if (c->cfg->rate_limit_per_s <= 0)
                return 1;
        http_bucket_refill(c, sf_mono_ms());
        if (c->bucket < 1.0)
                return 0;
        c->bucket -= 1.0;
        return 1;
}

/* Milliseconds until the bucket holds a token again (0: it does now). */
static int64_t http_bucket_wait(sf_conn_t *c)
{
        double rate = c->cfg->rate_limit_per_s;
        int64_t ms;

        if (rate <= 0)
                return 0;
        http_bucket_refill(c, sf_mono_ms());
        if (c->bucket >= 1.0)
                return 0;
        ms = (int64_t)((1.0 - c->bucket) * 1000.0 / rate) + 1;
        return ms;
}

static void http_start_queued(sf_conn_t *c)
{
        while (c->queue_head && c->in_flight_cnt < (size_t)c->max_in_flight) {
                sf_http_req_t *r;

                if (!sf_http_auth_ready(c) || !c->queue_head)
                        break;
                if (!http_bucket_take(c))
                        break;
                r = c->queue_head;
                c->queue_head = r->next;
                if (!c->queue_head)
                        c->queue_tail = NULL;
                c->queued--;
                r->next = NULL;
                http_start(c, r);
        }
}

/* Classifies an HTTP answer (DESIGN.md, "Failures"). */
static sf_status_t http_answer_status(long code)
{
        if (code >= 200 && code < 300)
                return SF_OK;
        if (code == 408 || code == 429 || code >= 500)
                return SF_RETRY;
        return SF_FATAL;
}

/* R's transfer ended with RESULT: record the answer and decide. */
static void http_finish(sf_conn_t *c, sf_http_req_t *r, CURLcode result)
{
        sf_http_req_t **pp = &c->in_flight;
        char snippet[256];
        sf_status_t st;
        long code = 0;

        while (*pp && *pp != r)
                pp = &(*pp)->next;
        if (*pp) {
                *pp = r->next;
                c->in_flight_cnt--;
        }
        r->next = NULL;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
        r->res.http_status = (int)code;
        r->res.retry_after_ms = -1;
        if (code > 0) {
                r->res.response_headers_json = sf_http_headers_json(r->easy);
                if (code == 429 || code == 503)
                        r->res.retry_after_ms = sf_http_retry_after(r->easy);
        }
        if (!r->too_large && r->resp.len > 0 &&
            sf_text_json_nul(r->resp.data, r->resp.len) >= 0) {
                /* its text would be cut at the NUL, unseen */
                sf_warn(SF_HTTP_LOG,
                        "connector %s: %s %s: HTTP %ld, the answer holds a "
                        "NUL character: not read, @response is null",
                        c->name, r->method, r->url, code);
        } else if (!r->too_large && r->resp.len > 0) {
                r->res.response = sf_json_parse(r->resp.data, r->resp.len);
                if (!r->res.response)
                        r->res.response = cJSON_CreateString(r->resp.data);
        }
        curl_multi_remove_handle(c->multi, r->easy);
        sf_http_easy_put(c, r->easy);
        r->easy = NULL;
        curl_slist_free_all(r->headers);
        r->headers = NULL;

        if (r->too_large) {
                /* The status is what the target did; only the body is not
                 * read (@response is null): a 2xx is done, a 5xx retried. */
                sf_warn(SF_HTTP_LOG,
                        "connector %s: %s %s: HTTP %ld, answer over %u bytes, "
                        "not read",
                        c->name, r->method, r->url, code, SF_HTTP_MAX_RESPONSE);
                st = sf_http_auth_answer(c, r, code);
                if (st == SF_OK)
                        st = code > 0 ? http_answer_status(code) : SF_RETRY;
                if (st == SF_OK)
                        sf_http_complete(c, r, SF_OK, "%s", "");
                else
                        sf_http_complete(c, r, st,
                                         "HTTP %ld from %s %s: answer over "
                                         "%u bytes, not read",
                                         code, r->method, r->url,
                                         SF_HTTP_MAX_RESPONSE);
                return;
        }
        if (result != CURLE_OK) {
                /* half an answer is no answer */
                r->res.http_status = 0;
                r->res.retry_after_ms = -1;
                cJSON_Delete(r->res.response);
                r->res.response = NULL;
                free((char *)r->res.response_headers_json);
                r->res.response_headers_json = NULL;
                http_curl_failed(c, r, result);
                return;
        }
        st = sf_http_auth_answer(c, r, code);
        if (st == SF_OK)
                st = http_answer_status(code);
        if (st == SF_OK) {
                sf_http_complete(c, r, SF_OK, "%s", "");
                return;
        }
        sf_http_snippet(&r->resp, snippet, sizeof(snippet));
        sf_debug(SF_HTTP_LOG, "connector %s: HTTP %ld from %s %s", c->name,
                 code, r->method, r->url);
        sf_http_complete(c, r, st, "HTTP %ld from %s %s%s%s", code, r->method,
                         r->url, snippet[0] ? ": " : "", snippet);
}

/* Handles every finished transfer; returns how many there were. */
static int http_reap(sf_conn_t *c)
{
        CURLMsg *m;
        int left, n = 0;

        while ((m = curl_multi_info_read(c->multi, &left))) {
                CURL *easy = m->easy_handle;
                CURLcode result = m->data.result;
                char *priv = NULL;

                if (m->msg != CURLMSG_DONE)
                        continue;
                n++;
                /* m is invalid once the handle leaves the multi handle */
                if (sf_http_auth_reap(c, easy, result))
                        continue;
                curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
                if (priv)
                        http_finish(c, (sf_http_req_t *)(void *)priv, result);
        }
        return n;
}

static int http_run_callbacks(sf_conn_t *c)
{
        int n = 0;

        while (c->done_head) {
                sf_http_req_t *r = c->done_head;

                c->done_head = r->next;
                if (!c->done_head)
                        c->done_tail = NULL;
                c->done_cnt--;
                r->done(r->opaque, &r->res);
                http_req_free(c, r);
                n++;
        }
        return n;
}

static void http_close(sf_conn_t *c)
{
        if (!c)
                return;
        http_list_free(c, c->queue_head);
        http_list_free(c, c->in_flight);
        http_list_free(c, c->done_head);
        sf_http_auth_free(c);
        for (size_t i = 0; i < c->pool_cnt; i++)
                curl_easy_cleanup(c->pool[i]);
        if (c->multi)
                curl_multi_cleanup(c->multi);
        free(c->pool);
        free(c->name);
        free(c);
}

/* Refuses a configuration that could never send a request, or that would
 * let a value break out of its header line. */
static int http_check_cfg(const sf_connector_cfg_t *cfg, const char *name,
                          char *errstr, size_t errstr_size)
{
        if (!cfg->base_url || !*cfg->base_url) {
                sf_seterr(errstr, errstr_size,
                          "connector %s: base_url is empty", name);
                return -1;
        }
        for (size_t i = 0; i < cfg->header_cnt; i++) {
                const sf_kv_t *kv = &cfg->headers[i];

                if (!http_is_token(kv->key) || http_has_crlf(kv->value)) {
                        sf_seterr(errstr, errstr_size,
                                  "connector %s: header %s: not a valid "
                                  "header name or value",
                                  name, kv->key ? kv->key : "(null)");
                        return -1;
                }
        }
        switch (cfg->auth) {
        case SF_AUTH_BASIC:
                if (!cfg->username || http_has_crlf(cfg->username)) {
                        sf_seterr(errstr, errstr_size,
                                  "connector %s: basic auth needs a username",
                                  name);
                        return -1;
                }
                break;
        case SF_AUTH_BEARER:
                if (!cfg->token || !*cfg->token || http_has_crlf(cfg->token)) {
                        sf_seterr(errstr, errstr_size,
                                  "connector %s: bearer auth needs a token "
                                  "on one line",
                                  name);
                        return -1;
                }
                break;
        case SF_AUTH_OAUTH2:
                if (!cfg->token_url || !*cfg->token_url || !cfg->client_id ||
                    !cfg->client_secret) {
                        sf_seterr(errstr, errstr_size,
                                  "connector %s: oauth2 needs token_url, "
                                  "client_id and client_secret",
                                  name);
                        return -1;
                }
                break;
        default:
                break;
        }
        return 0;
}

static sf_conn_t *http_open(const sf_connector_cfg_t *cfg,
                            const sf_config_t *pipeline, const char *bootstraps,
                            char *errstr, size_t errstr_size)
{
        (void)bootstraps;
        const char *name = cfg->name ? cfg->name : "http";
        sf_conn_t *c = NULL;
        CURLMcode mc = CURLM_OK;
        int ok = 0;

        (void)pipeline;
        pthread_once(&sf_http_once, http_global_init);
        if (sf_http_global_rc != CURLE_OK) {
                sf_error(SF_HTTP_LOG, "curl_global_init: %s",
                         curl_easy_strerror(sf_http_global_rc));
                sf_seterr(errstr, errstr_size, "connector %s: libcurl: %s",
                          name, curl_easy_strerror(sf_http_global_rc));
                goto out;
        }
        if (http_check_cfg(cfg, name, errstr, errstr_size))
                goto out;
        c = sf_calloc(1, sizeof(*c));
        c->cfg = cfg;
        c->name = sf_strdup(name);
        c->max_in_flight = cfg->max_in_flight > 0 ? cfg->max_in_flight
                                                  : SF_HTTP_DEFAULT_IN_FLIGHT;
        c->timeout_ms =
            cfg->timeout_ms > 0 ? cfg->timeout_ms : SF_HTTP_DEFAULT_TIMEOUT;
        c->connect_timeout_ms = c->timeout_ms < SF_HTTP_MAX_CONNECT_MS
                                    ? c->timeout_ms
                                    : SF_HTTP_MAX_CONNECT_MS;
        if (cfg->rate_limit_per_s > 0) {
                c->burst =
                    cfg->rate_limit_per_s > 1.0 ? cfg->rate_limit_per_s : 1.0;
                c->bucket = c->burst;
                c->bucket_ts_ms = sf_mono_ms();
        }
        c->pool_cap = (size_t)c->max_in_flight + 1;
        c->pool = sf_calloc(c->pool_cap, sizeof(*c->pool));
        sf_buf_init(&c->oauth.resp, 64 * 1024);
        c->multi = curl_multi_init();
        if (!c->multi) {
                sf_seterr(errstr, errstr_size,
                          "connector %s: curl_multi_init failed", name);
                goto out;
        }
        mc = curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                               (long)c->max_in_flight);
        if (!mc)
                mc = curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS,
                                       (long)c->max_in_flight + 2);
        if (mc) {
                sf_error(SF_HTTP_LOG, "connector %s: %s", name,
                         curl_multi_strerror(mc));
                sf_seterr(errstr, errstr_size, "connector %s: libcurl: %s",
                          name, curl_multi_strerror(mc));
                goto out;
        }
        ok = 1;
out:
        if (!ok) {
                http_close(c);
                c = NULL;
        }
        return c;
}

static int http_send(sf_conn_t *c, const sf_request_t *req,
                     sf_conn_done_cb *done, void *opaque, char *errstr,
                     size_t errstr_size)
{
        sf_http_req_t *r = NULL;
        char *body = NULL;

        if (!http_is_token(req->method)) {
                sf_seterr(errstr, errstr_size,
                          "connector %s: invalid HTTP method \"%s\"", c->name,
                          req->method ? req->method : "(null)");
                return -1;
        }
        if (http_has_crlf(req->idempotency_key) || http_has_crlf(req->path)) {
                sf_seterr(errstr, errstr_size,
                          "connector %s: line break in the path or "
                          "idempotency key",
                          c->name);
                return -1;
        }
        if (req->body) {
                body = sf_json_print(req->body, 0);
                if (!body) {
                        sf_seterr(errstr, errstr_size,
                                  "connector %s: the document cannot be "
                                  "serialized as JSON",
                                  c->name);
                        return -1;
                }
        }
        r = sf_calloc(1, sizeof(*r));
        r->method = sf_strdup(req->method);
        for (char *p = r->method; *p; p++)
                if (*p >= 'a' && *p <= 'z')
                        *p = (char)(*p - 'a' + 'A');
        r->url = http_url(c->cfg->base_url, req->path);
        r->body = body; /* now owned by r */
        r->idempotency_key = sf_strdup(req->idempotency_key);
        r->action = sf_strdup(req->action);
        r->done = done;
        r->opaque = opaque;
        /* no Retry-After unless an answer says so: a request that fails
         * before any answer (no token, no connection) backs off */
        r->res.retry_after_ms = -1;
        sf_buf_init(&r->resp, SF_HTTP_MAX_RESPONSE);
        if (c->queue_tail)
                c->queue_tail->next = r;
        else
                c->queue_head = r;
        c->queue_tail = r;
        c->queued++;
        return 0;
}

static int http_poll(sf_conn_t *c, int timeout_ms)
{
        int64_t deadline = sf_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
        int running;

        for (;;) {
                CURLMcode mc;
                int64_t now, wait;
                int reaped;

                http_start_queued(c);
                mc = curl_multi_perform(c->multi, &running);
                if (mc)
                        sf_error(SF_HTTP_LOG, "connector %s: %s", c->name,
                                 curl_multi_strerror(mc));
                reaped = http_reap(c);
                if (c->done_head) {
                        /* let the freed slots work while callbacks run */
                        http_start_queued(c);
                        curl_multi_perform(c->multi, &running);
                        break;
                }
                if (!c->queue_head && !c->in_flight && !c->oauth.easy)
                        break;
                if (reaped)
                        continue; /* a token arrived: the queue may move */
                now = sf_mono_ms();
                if (now >= deadline)
                        break;
                wait = deadline - now;
                if (c->queue_head &&
                    c->in_flight_cnt < (size_t)c->max_in_flight) {
                        int64_t bw = http_bucket_wait(c);

                        if (bw > 0 && bw < wait)
                                wait = bw;
                }
                mc = curl_multi_poll(c->multi, NULL, 0, (int)wait, NULL);
                if (mc)
                        sf_error(SF_HTTP_LOG, "connector %s: %s", c->name,
                                 curl_multi_strerror(mc));
        }
        return http_run_callbacks(c);
}

static size_t http_pending(const sf_conn_t *c)
{
        return c->queued + c->in_flight_cnt + c->done_cnt;
}

const sf_connector_ops_t sf_connector_http = {
    .name = "http",
    .type = SF_CONN_HTTP,
    .open = http_open,
    .send = http_send,
    .poll = http_poll,
    .pending = http_pending,
    .close = http_close,
};
