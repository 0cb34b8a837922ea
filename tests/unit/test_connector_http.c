/*
 * The http connector against a real HTTP server started inside the test
 * (libmicrohttpd on a free loopback port). The server records every request
 * it gets and answers by path; the tests assert on both sides: what went
 * over the wire, and the outcome each callback reported.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <microhttpd.h>

#include <cmocka.h>

#include "connector.h"

#define MAX_REQS 64

/* One request as the server saw it. */
typedef struct seen {
        char method[16];
        char url[256];
        char *body;
        char *idempotency_key;
        char *authorization;
        char *content_type;
        char *user_agent;
        char *x_client;
        int64_t at_ms; /* arrival, monotonic */
        int client_port;
} seen_t;

typedef struct server {
        struct MHD_Daemon *d;
        int port;
        char base[64]; /* http://127.0.0.1:PORT */
        pthread_mutex_t mu;
        seen_t reqs[MAX_REQS];
        int nreq;
        int active, max_active; /* /concurrent */
        int token_calls;
        char token_body[512];
        int token_expires_in;
        int reject_tokens_upto; /* /secure: 401 for tok-N, N <= this */
        volatile int stopping;
} server_t;

typedef struct upload {
        sf_buf_t body;
        int64_t at_ms;
} upload_t;

static server_t srv;

static char *header_dup(struct MHD_Connection *conn, const char *name)
{
        const char *v =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);

        return v ? sf_strdup(v) : NULL;
}

static void record(struct MHD_Connection *conn, const char *url,
                   const char *method, upload_t *up)
{
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        seen_t *s;

        pthread_mutex_lock(&srv.mu);
        if (srv.nreq < MAX_REQS) {
                s = &srv.reqs[srv.nreq++];
                snprintf(s->method, sizeof(s->method), "%s", method);
                snprintf(s->url, sizeof(s->url), "%s", url);
                s->body = sf_strdup(up->body.len ? up->body.data : "");
                s->idempotency_key = header_dup(conn, "Idempotency-Key");
                s->authorization = header_dup(conn, "Authorization");
                s->content_type = header_dup(conn, "Content-Type");
                s->user_agent = header_dup(conn, "User-Agent");
                s->x_client = header_dup(conn, "X-Client");
                s->at_ms = up->at_ms;
                s->client_port = ntohs(
                    ((const struct sockaddr_in *)(const void *)ci->client_addr)
                        ->sin_port);
        }
        pthread_mutex_unlock(&srv.mu);
}

static void nap(int ms)
{
        for (int i = 0; i < ms / 10 && !srv.stopping; i++)
                usleep(10 * 1000);
}

/* Answers with CODE and BODY; EXTRA holds header name/value pairs. */
static enum MHD_Result reply(struct MHD_Connection *conn, unsigned code,
                             const char *ctype, const char *body, size_t len,
                             const char *const *extra)
{
        struct MHD_Response *r = MHD_create_response_from_buffer(
            len, (void *)body, MHD_RESPMEM_MUST_COPY);
        enum MHD_Result rc;

        if (ctype)
                MHD_add_response_header(r, "Content-Type", ctype);
        for (; extra && extra[0]; extra += 2)
                MHD_add_response_header(r, extra[0], extra[1]);
        rc = MHD_queue_response(conn, code, r);
        MHD_destroy_response(r);
        return rc;
}

static enum MHD_Result reply_json(struct MHD_Connection *conn, unsigned code,
                                  const char *body, const char *const *extra)
{
        return reply(conn, code, "application/json", body, strlen(body), extra);
}

static enum MHD_Result route(struct MHD_Connection *conn, const char *url,
                             upload_t *up)
{
        char buf[256];

        if (!strcmp(url, "/token")) {
                int n;

                pthread_mutex_lock(&srv.mu);
                n = ++srv.token_calls;
                snprintf(srv.token_body, sizeof(srv.token_body), "%s",
                         up->body.len ? up->body.data : "");
                snprintf(buf, sizeof(buf),
                         "{\"access_token\":\"tok-%d\",\"token_type\":"
                         "\"Bearer\",\"expires_in\":%d}",
                         n, srv.token_expires_in);
                pthread_mutex_unlock(&srv.mu);
                return reply_json(conn, 200, buf, NULL);
        }
        if (!strcmp(url, "/token-bad"))
                return reply_json(conn, 401, "{\"error\":\"invalid_client\"}",
                                  NULL);
        if (!strcmp(url, "/secure")) {
                const char *a = MHD_lookup_connection_value(
                    conn, MHD_HEADER_KIND, "Authorization");
                int n = 0;

                if (!a || sscanf(a, "Bearer tok-%d", &n) != 1 ||
                    n <= srv.reject_tokens_upto)
                        return reply_json(
                            conn, 401, "{\"error\":\"invalid_token\"}", NULL);
                return reply_json(conn, 200, "{\"ok\":true}", NULL);
        }
        if (!strcmp(url, "/customers/7"))
                return reply_json(conn, 404, "{\"error\":\"no such customer\"}",
                                  NULL);
        if (!strcmp(url, "/fail"))
                return reply(conn, 500, "text/plain", "database down\n", 14,
                             NULL);
        if (!strcmp(url, "/request-timeout"))
                return reply(conn, 408, NULL, "", 0, NULL);
        if (!strcmp(url, "/moved")) {
                static const char *const h[] = {"Location", "/elsewhere", NULL};

                return reply(conn, 301, NULL, "", 0, h);
        }
        if (!strcmp(url, "/busy")) {
                static const char *const h[] = {"Retry-After", "3", NULL};

                return reply_json(conn, 429, "{\"error\":\"slow down\"}", h);
        }
        if (!strcmp(url, "/unavailable")) {
                const char *h[] = {"Retry-After", buf, NULL};
                time_t t = time(NULL) + 5;
                struct tm tm;

                gmtime_r(&t, &tm);
                strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
                return reply(conn, 503, NULL, "", 0, h);
        }
        if (!strcmp(url, "/slow")) {
                nap(1500);
                return reply_json(conn, 200, "{}", NULL);
        }
        if (!strcmp(url, "/concurrent")) {
                pthread_mutex_lock(&srv.mu);
                if (++srv.active > srv.max_active)
                        srv.max_active = srv.active;
                pthread_mutex_unlock(&srv.mu);
                nap(150);
                pthread_mutex_lock(&srv.mu);
                srv.active--;
                pthread_mutex_unlock(&srv.mu);
                return reply_json(conn, 200, "{\"ok\":true}", NULL);
        }
        if (!strcmp(url, "/big") || !strcmp(url, "/big503")) {
                size_t n = 2u * 1024 * 1024;
                char *big = malloc(n);
                enum MHD_Result rc;

                memset(big, 'x', n);
                rc =
                    reply(conn, url[4] ? 503 : 200, "text/plain", big, n, NULL);
                free(big);
                return rc;
        }
        if (!strcmp(url, "/text"))
                return reply(conn, 200, "text/plain", "plain answer", 12, NULL);
        if (!strcmp(url, "/nul"))
                return reply(conn, 200, "application/json",
                             "{\"limit\":\"5\\u00000\"}", 20, NULL);
        if (!strcmp(url, "/nulbyte"))
                return reply(conn, 200, "text/plain", "ab\0cd", 5, NULL);
        if (!strncmp(url, "/echo/", 6)) {
                static const char *const h[] = {
                    "ETag",         "\"v1\"",  "Location",
                    "/customers/7", "X-Multi", "a",
                    "X-Multi",      "b",       NULL};

                return reply_json(conn, 200, "{\"id\":7,\"ok\":true}", h);
        }
        return reply_json(conn, 418, "{}", NULL);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn,
                               const char *url, const char *method,
                               const char *version, const char *data,
                               size_t *data_size, void **state)
{
        upload_t *up = *state;

        (void)cls;
        (void)version;
        if (!up) {
                up = calloc(1, sizeof(*up));
                sf_buf_init(&up->body, 4u * 1024 * 1024);
                up->at_ms = sf_mono_ms();
                *state = up;
                return MHD_YES;
        }
        if (*data_size) {
                sf_buf_append(&up->body, data, *data_size);
                *data_size = 0;
                return MHD_YES;
        }
        record(conn, url, method, up);
        return route(conn, url, up);
}

static void completed(void *cls, struct MHD_Connection *conn, void **state,
                      enum MHD_RequestTerminationCode why)
{
        upload_t *up = *state;

        (void)cls;
        (void)conn;
        (void)why;
        if (up) {
                sf_buf_free(&up->body);
                free(up);
                *state = NULL;
        }
}

static void server_reset(void)
{
        pthread_mutex_lock(&srv.mu);
        for (int i = 0; i < srv.nreq; i++) {
                seen_t *s = &srv.reqs[i];

                free(s->body);
                free(s->idempotency_key);
                free(s->authorization);
                free(s->content_type);
                free(s->user_agent);
                free(s->x_client);
        }
        memset(srv.reqs, 0, sizeof(srv.reqs));
        srv.nreq = 0;
        srv.active = srv.max_active = 0;
        srv.token_calls = 0;
        srv.token_body[0] = '\0';
        srv.token_expires_in = 3600;
        srv.reject_tokens_upto = 0;
        pthread_mutex_unlock(&srv.mu);
}

static int group_setup(void **state)
{
        struct sockaddr_in sa;

        (void)state;
        pthread_mutex_init(&srv.mu, NULL);
        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sa.sin_port = 0;
        srv.d = MHD_start_daemon(
            MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                MHD_USE_ERROR_LOG,
            0, NULL, NULL, handler, NULL, MHD_OPTION_SOCK_ADDR, &sa,
            MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_END);
        if (!srv.d)
                return -1;
        srv.port = MHD_get_daemon_info(srv.d, MHD_DAEMON_INFO_BIND_PORT)->port;
        snprintf(srv.base, sizeof(srv.base), "http://127.0.0.1:%d", srv.port);
        server_reset();
        return 0;
}

static int group_teardown(void **state)
{
        (void)state;
        srv.stopping = 1;
        MHD_stop_daemon(srv.d);
        server_reset();
        pthread_mutex_destroy(&srv.mu);
        return 0;
}

static int test_setup(void **state)
{
        (void)state;
        server_reset();
        return 0;
}

/* ---- the client side ---------------------------------------------- */

typedef struct done_rec {
        int calls;
        sf_status_t status;
        int http_status;
        int64_t retry_after_ms;
        int misconfigured;
        char error[512];
        cJSON *response;
        char *headers;
} done_rec_t;

static const sf_connector_ops_t *ops(void)
{
        return sf_connector_ops(SF_CONN_HTTP);
}

static void on_done(void *opaque, const sf_result_t *res)
{
        done_rec_t *d = opaque;

        d->calls++;
        d->status = res->status;
        d->http_status = res->http_status;
        d->retry_after_ms = res->retry_after_ms;
        d->misconfigured = res->misconfigured;
        snprintf(d->error, sizeof(d->error), "%s", res->error);
        cJSON_Delete(d->response);
        d->response = cJSON_Duplicate(res->response, 1);
        free(d->headers);
        d->headers = sf_strdup(res->response_headers_json);
}

static void recs_free(done_rec_t *d, int n)
{
        for (int i = 0; i < n; i++) {
                cJSON_Delete(d[i].response);
                free(d[i].headers);
        }
}

static sf_connector_cfg_t base_cfg(void)
{
        static char url[80];
        sf_connector_cfg_t cfg;

        memset(&cfg, 0, sizeof(cfg));
        snprintf(url, sizeof(url), "%s/", srv.base); /* trailing slash */
        cfg.name = "webshop";
        cfg.type = SF_CONN_HTTP;
        cfg.base_url = url;
        cfg.timeout_ms = 5000;
        cfg.max_in_flight = 32;
        cfg.tls_verify = 1;
        return cfg;
}

static sf_conn_t *open_conn(const sf_connector_cfg_t *cfg)
{
        char err[256] = "";
        sf_conn_t *c = ops()->open(cfg, NULL, NULL, err, sizeof(err));

        if (!c)
                fail_msg("open: %s", err);
        return c;
}

static void send_req(sf_conn_t *c, const char *method, const char *path,
                     const char *json, const char *key, done_rec_t *d)
{
        cJSON *body = json ? cJSON_Parse(json) : NULL;
        sf_request_t req = {.method = method,
                            .path = path,
                            .body = body,
                            .idempotency_key = key,
                            .action = "customer-to-webshop"};
        char err[256] = "";

        assert_int_equal(ops()->send(c, &req, on_done, d, err, sizeof(err)), 0);
        cJSON_Delete(body);            /* copied by send */
        assert_int_equal(d->calls, 0); /* never from send() */
}

/* Polls until nothing is pending, then once more to catch a second
 * callback for anything. */
static void drain(sf_conn_t *c, int max_ms)
{
        int64_t end = sf_mono_ms() + max_ms;

        while (ops()->pending(c) > 0 && sf_mono_ms() < end)
                ops()->poll(c, 100);
        assert_int_equal(ops()->pending(c), 0);
        assert_int_equal(ops()->poll(c, 20), 0);
}

static void test_request_on_the_wire(void **state)
{
        sf_connector_cfg_t cfg = base_cfg();
        sf_kv_t hdr = {"X-Client", "syncfleet"};
        done_rec_t d[4] = {{0}};
        sf_conn_t *c;
        cJSON *v;

        (void)state;
        cfg.headers = &hdr;
        cfg.header_cnt = 1;
        c = open_conn(&cfg);
        send_req(c, "PUT", "/echo/7", "{ \"name\": \"A\", \"n\": 1 }", "ev-42",
                 &d[0]);
        assert_int_equal(ops()->pending(c), 1);
        drain(c, 5000);
        send_req(c, "get", "echo/8", NULL, "ev-43", &d[1]);
        drain(c, 5000);
        send_req(c, "DELETE", "/echo/9", NULL, "ev-44", &d[2]);
        drain(c, 5000);
        send_req(c, "POST", "/text", "[1]", "ev-45", &d[3]);
        drain(c, 5000);

        assert_int_equal(srv.nreq, 4);
        assert_string_equal(srv.reqs[0].method, "PUT");
        assert_string_equal(srv.reqs[0].url, "/echo/7");
        assert_string_equal(srv.reqs[0].body, "{\"name\":\"A\",\"n\":1}");
        assert_string_equal(srv.reqs[0].content_type, "application/json");
        assert_string_equal(srv.reqs[0].idempotency_key, "ev-42");
        assert_string_equal(srv.reqs[0].user_agent, "syncfleet/" SF_VERSION);
        assert_string_equal(srv.reqs[0].x_client, "syncfleet");
        assert_null(srv.reqs[0].authorization);
        assert_string_equal(srv.reqs[1].method, "GET");
        assert_string_equal(srv.reqs[1].url, "/echo/8");
        assert_string_equal(srv.reqs[1].body, "");
        assert_null(srv.reqs[1].content_type);
        assert_string_equal(srv.reqs[1].idempotency_key, "ev-43");
        assert_string_equal(srv.reqs[2].method, "DELETE");
        assert_string_equal(srv.reqs[2].url, "/echo/9");
        assert_string_equal(srv.reqs[3].method, "POST");
        assert_string_equal(srv.reqs[3].body, "[1]");

        for (int i = 0; i < 4; i++) {
                assert_int_equal(d[i].calls, 1);
                assert_int_equal(d[i].status, SF_OK);
                assert_int_equal(d[i].http_status, 200);
                assert_int_equal(d[i].retry_after_ms, -1);
                assert_string_equal(d[i].error, "");
        }
        v = cJSON_GetObjectItem(d[0].response, "id");
        assert_true(cJSON_IsNumber(v));
        assert_int_equal(v->valueint, 7);
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(d[0].response, "ok")));
        assert_non_null(
            strstr(d[0].headers, "\"content-type\":\"application/json\""));
        assert_non_null(strstr(d[0].headers, "\"etag\":\"\\\"v1\\\"\""));
        assert_non_null(strstr(d[0].headers, "\"location\":\"/customers/7\""));
        assert_non_null(strstr(d[0].headers, "\"x-multi\":\"a, b\""));
        /* not JSON: the raw text as a string */
        assert_true(cJSON_IsString(d[3].response));
        assert_string_equal(d[3].response->valuestring, "plain answer");
        ops()->close(c);
        recs_free(d, 4);
}

static void test_basic_and_bearer(void **state)
{
        sf_connector_cfg_t cfg = base_cfg();
        done_rec_t d[2] = {{0}};
        sf_conn_t *c;

        (void)state;
        cfg.auth = SF_AUTH_BASIC;
        cfg.username = "alice";
        cfg.password = "s3cret";
        c = open_conn(&cfg);
        send_req(c, "PUT", "/echo/1", "{}", "ev-1", &d[0]);
        drain(c, 5000);
        ops()->close(c);

        cfg = base_cfg();
        cfg.auth = SF_AUTH_BEARER;
        cfg.token = "t0k.abc";
        c = open_conn(&cfg);
        send_req(c, "PUT", "/echo/2", "{}", "ev-2", &d[1]);
        drain(c, 5000);
        ops()->close(c);

        assert_int_equal(srv.nreq, 2);
        /* base64("alice:s3cret") */
        assert_string_equal(srv.reqs[0].authorization,
                            "Basic YWxpY2U6czNjcmV0");
        assert_string_equal(srv.reqs[1].authorization, "Bearer t0k.abc");
        assert_int_equal(d[0].status, SF_OK);
        assert_int_equal(d[1].status, SF_OK);
        recs_free(d, 2);
}

static sf_connector_cfg_t oauth_cfg(const char *token_path)
{
        static char token_url[96];
        sf_connector_cfg_t cfg = base_cfg();

        snprintf(token_url, sizeof(token_url), "%s%s", srv.base, token_path);
        cfg.auth = SF_AUTH_OAUTH2;
        cfg.token_url = token_url;
        cfg.client_id = "cid";
        cfg.client_secret = "se cret&x";
        cfg.scope = "read write";
        return cfg;
}

static void test_oauth2_token_fetched_once(void **state)
{
        sf_connector_cfg_t cfg = oauth_cfg("/token");
        done_rec_t d[5] = {{0}};
        sf_conn_t *c = open_conn(&cfg);

        int64_t t0;

        (void)state;
        for (int i = 0; i < 3; i++)
                send_req(c, "POST", "/secure", "{}", "ev", &d[i]);
        /* the token's arrival starts the queue at once, not at the end of
         * a poll() timeout */
        t0 = sf_mono_ms();
        while (ops()->pending(c) > 0 && sf_mono_ms() - t0 < 5000)
                ops()->poll(c, 2000);
        assert_in_range(sf_mono_ms() - t0, 0, 1000);
        drain(c, 5000);
        for (int i = 3; i < 5; i++)
                send_req(c, "POST", "/secure", "{}", "ev", &d[i]);
        drain(c, 5000);

        assert_int_equal(srv.token_calls, 1);
        assert_string_equal(srv.token_body,
                            "grant_type=client_credentials&client_id=cid&"
                            "client_secret=se%20cret%26x&scope=read%20write");
        assert_int_equal(srv.nreq, 6); /* the token request and five */
        assert_string_equal(srv.reqs[0].url, "/token");
        assert_string_equal(srv.reqs[0].content_type,
                            "application/x-www-form-urlencoded");
        for (int i = 0; i < 5; i++) {
                assert_string_equal(srv.reqs[i + 1].authorization,
                                    "Bearer tok-1");
                assert_int_equal(d[i].calls, 1);
                assert_int_equal(d[i].status, SF_OK);
        }
        ops()->close(c);
        recs_free(d, 5);
}

static void test_oauth2_expiry_and_401(void **state)
{
        sf_connector_cfg_t cfg = oauth_cfg("/token");
        done_rec_t d[6] = {{0}};
        char *want;
        sf_conn_t *c;

        (void)state;
        srv.token_expires_in = 1; /* renewed a little before 1 s */
        c = open_conn(&cfg);
        send_req(c, "GET", "/secure", NULL, "ev-1", &d[0]);
        drain(c, 5000);
        usleep(1000 * 1000);
        send_req(c, "GET", "/secure", NULL, "ev-2", &d[1]);
        drain(c, 5000);
        assert_int_equal(srv.token_calls, 2);
        assert_int_equal(d[0].status, SF_OK);
        assert_int_equal(d[1].status, SF_OK);
        ops()->close(c);

        /* the target refuses tok-1: RETRY, and the next try has tok-2 */
        server_reset();
        srv.reject_tokens_upto = 1;
        c = open_conn(&cfg);
        send_req(c, "GET", "/secure", NULL, "ev-3", &d[2]);
        drain(c, 5000);
        assert_int_equal(d[2].calls, 1);
        assert_int_equal(d[2].status, SF_RETRY);
        assert_int_equal(d[2].http_status, 401);
        want = sf_asprintf(
            "HTTP 401 from GET %s/secure: {\"error\":\"invalid_token\"}",
            srv.base);
        assert_string_equal(d[2].error, want);
        send_req(c, "GET", "/secure", NULL, "ev-3", &d[3]);
        drain(c, 5000);
        assert_int_equal(d[3].status, SF_OK);
        assert_int_equal(srv.token_calls, 2);
        assert_string_equal(srv.reqs[3].authorization, "Bearer tok-2");

        /* tok-2 was accepted once, so a 401 for it retries once more; a
         * 401 for the token fetched right after is final */
        srv.reject_tokens_upto = 100;
        send_req(c, "GET", "/secure", NULL, "ev-4", &d[4]);
        drain(c, 5000);
        assert_int_equal(d[4].status, SF_RETRY);
        send_req(c, "GET", "/secure", NULL, "ev-4", &d[5]);
        drain(c, 5000);
        assert_int_equal(srv.token_calls, 3);
        assert_int_equal(d[5].status, SF_FATAL);
        assert_string_equal(d[5].error, want);
        free(want);
        ops()->close(c);
        recs_free(d, 6);
}

static void test_oauth2_token_endpoint_refuses(void **state)
{
        sf_connector_cfg_t cfg = oauth_cfg("/token-bad");
        done_rec_t d[2] = {{0}};
        sf_conn_t *c = open_conn(&cfg);
        char *want;

        (void)state;
        send_req(c, "PUT", "/secure", "{}", "ev-1", &d[0]);
        send_req(c, "PUT", "/secure", "{}", "ev-2", &d[1]);
        drain(c, 5000);
        want = sf_asprintf("oauth2 token from POST %s/token-bad: HTTP 401: "
                           "{\"error\":\"invalid_client\"}",
                           srv.base);
        for (int i = 0; i < 2; i++) {
                assert_int_equal(d[i].calls, 1);
                assert_int_equal(d[i].status, SF_RETRY);
                assert_string_equal(d[i].error, want);
                /* no Retry-After: the worker backs off as for an outage;
                 * invalid_client will not mend by waiting */
                assert_int_equal(d[i].retry_after_ms, -1);
                assert_int_equal(d[i].misconfigured, 1);
        }
        assert_int_equal(srv.nreq, 1); /* the target never saw them */
        free(want);
        ops()->close(c);
        recs_free(d, 2);
}

static void test_outcomes(void **state)
{
        sf_connector_cfg_t cfg = base_cfg();
        done_rec_t d[6] = {{0}};
        sf_conn_t *c = open_conn(&cfg);
        char *want;

        (void)state;
        send_req(c, "PUT", "/customers/7", "{\"id\":7}", "ev-1", &d[0]);
        send_req(c, "POST", "/fail", "{}", "ev-2", &d[1]);
        send_req(c, "POST", "/busy", "{}", "ev-3", &d[2]);
        send_req(c, "POST", "/unavailable", "{}", "ev-4", &d[3]);
        send_req(c, "GET", "/request-timeout", NULL, "ev-5", &d[4]);
        send_req(c, "GET", "/moved", NULL, "ev-6", &d[5]);
        drain(c, 5000);
        for (int i = 0; i < 6; i++)
                assert_int_equal(d[i].calls, 1);

        assert_int_equal(d[0].status, SF_FATAL);
        assert_int_equal(d[0].http_status, 404);
        want = sf_asprintf("HTTP 404 from PUT %s/customers/7: "
                           "{\"error\":\"no such customer\"}",
                           srv.base);
        assert_string_equal(d[0].error, want);
        free(want);
        assert_string_equal(
            cJSON_GetObjectItem(d[0].response, "error")->valuestring,
            "no such customer");

        assert_int_equal(d[1].status, SF_RETRY);
        assert_int_equal(d[1].http_status, 500);
        want =
            sf_asprintf("HTTP 500 from POST %s/fail: database down", srv.base);
        assert_string_equal(d[1].error, want);
        free(want);
        assert_int_equal(d[1].retry_after_ms, -1);

        assert_int_equal(d[2].status, SF_RETRY);
        assert_int_equal(d[2].http_status, 429);
        assert_int_equal(d[2].retry_after_ms, 3000);

        /* an HTTP-date five seconds ahead, whole seconds */
        assert_int_equal(d[3].status, SF_RETRY);
        assert_int_equal(d[3].http_status, 503);
        assert_in_range(d[3].retry_after_ms, 3500, 5500);

        assert_int_equal(d[4].status, SF_RETRY);
        assert_int_equal(d[4].http_status, 408);
        assert_int_equal(d[5].status, SF_FATAL);
        assert_int_equal(d[5].http_status, 301);
        assert_non_null(strstr(d[5].headers, "\"location\":\"/elsewhere\""));
        ops()->close(c);
        recs_free(d, 6);
}

static void test_timeout_retry(void **state)
{
        sf_connector_cfg_t cfg = base_cfg();
        done_rec_t d = {0};
        sf_conn_t *c;
        int64_t t0;
        char *want;

        (void)state;
        cfg.timeout_ms = 300;
        c = open_conn(&cfg);
        t0 = sf_mono_ms();
        send_req(c, "GET", "/slow", NULL, "ev-1", &d);
        drain(c, 5000);
        assert_in_range(sf_mono_ms() - t0, 250, 1200);
        assert_int_equal(d.calls, 1);
        assert_int_equal(d.status, SF_RETRY);
        assert_int_equal(d.http_status, 0);
        want = sf_asprintf("GET %s/slow: Timeout was reached", srv.base);
        assert_string_equal(d.error, want);
        free(want);
        ops()->close(c);
        recs_free(&d, 1);
}

static void test_connection_refused_retry(void **state)
{
        struct sockaddr_in sa;
        socklen_t len = sizeof(sa);
        sf_connector_cfg_t cfg = base_cfg();
        char url[64], *want;
        done_rec_t d = {0};
        sf_conn_t *c;
        int fd = socket(AF_INET, SOCK_STREAM, 0);

        (void)state;
        /* a port nobody listens on: bound, then closed */
        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
        close(fd);
        snprintf(url, sizeof(url), "http://127.0.0.1:%d", ntohs(sa.sin_port));
        cfg.base_url = url;
        c = open_conn(&cfg);
        send_req(c, "PUT", "/customers/1", "{}", "ev-1", &d);
        drain(c, 5000);
        assert_int_equal(d.calls, 1);
        assert_int_equal(d.status, SF_RETRY);
        assert_int_equal(d.http_status, 0);
        assert_null(d.response);
        want = sf_asprintf("PUT %s/customers/1: %s", url,
                           curl_easy_strerror(CURLE_COULDNT_CONNECT));
        assert_string_equal(d.error, want);
        free(want);
        ops()->close(c);
        recs_free(&d, 1);
}

static void test_max_in_flight(void **state)
{
        sf_connector_cfg_t cfg = base_cfg();
        done_rec_t d[10] = {{0}};
        int ports[10], nports = 0;
        sf_conn_t *c;

        (void)state;
        cfg.max_in_flight = 3;
        /* queued requests must not start their clock: ten requests of
         * 150 ms, three at a time, take 600 ms */
        cfg.timeout_ms = 500;
        c = open_conn(&cfg);
        for (int i = 0; i < 10; i++)
                send_req(c, "POST", "/concurrent", "{}", "ev", &d[i]);
        assert_int_equal(ops()->pending(c), 10);
        drain(c, 10000);
        assert_int_equal(srv.nreq, 10);
        assert_int_equal(srv.max_active, 3);
        for (int i = 0; i < 10; i++) {
                int known = 0;

                assert_int_equal(d[i].calls, 1);
                assert_int_equal(d[i].status, SF_OK);
                for (int j = 0; j < nports; j++)
                        known |= ports[j] == srv.reqs[i].client_port;
                if (!known)
                        ports[nports++] = srv.reqs[i].client_port;
        }
        /* connections are reused: never more than max_in_flight */
        assert_in_range(nports, 1, 3);
        ops()->close(c);
        recs_free(d, 10);
}

static void test_rate_limit(void **state)
{
        sf_connector_cfg_t cfg = base_cfg();
        done_rec_t d[20] = {{0}};
        int64_t first, last, burst_end;
        sf_conn_t *c;

        (void)state;
        cfg.rate_limit_per_s = 10; /* burst 10, then one per 100 ms */
        c = open_conn(&cfg);
        for (int i = 0; i < 20; i++)
                send_req(c, "PUT", "/echo/1", "{}", "ev", &d[i]);
        drain(c, 10000);
        assert_int_equal(srv.nreq, 20);
        first = last = srv.reqs[0].at_ms;
        for (int i = 0; i < 20; i++) {
                assert_int_equal(d[i].calls, 1);
                assert_int_equal(d[i].status, SF_OK);
                if (srv.reqs[i].at_ms < first)
                        first = srv.reqs[i].at_ms;
                if (srv.reqs[i].at_ms > last)
                        last = srv.reqs[i].at_ms;
        }
        burst_end = srv.reqs[9].at_ms;
        assert_in_range(burst_end - first, 0, 500);
        assert_in_range(last - first, 800, 3000);
        ops()->close(c);
        recs_free(d, 20);
}

/* A reply holding a NUL character is not read (its text would be cut at
 * the NUL): the request is done, its @response null. */
static void test_response_with_nul_not_read(void **state)
{
        static const char *const paths[] = {"/nul", "/nulbyte"};
        sf_connector_cfg_t cfg = base_cfg();
        sf_conn_t *c = open_conn(&cfg);

        (void)state;
        for (int i = 0; i < 2; i++) {
                done_rec_t d = {0};

                send_req(c, "GET", paths[i], NULL, "ev-1", &d);
                drain(c, 5000);
                assert_int_equal(d.calls, 1);
                assert_int_equal(d.status, SF_OK);
                assert_int_equal(d.http_status, 200);
                assert_null(d.response);
                recs_free(&d, 1);
        }
        ops()->close(c);
}

static void test_response_too_large(void **state)
{
        sf_connector_cfg_t cfg = base_cfg();
        done_rec_t d = {0};
        sf_conn_t *c = open_conn(&cfg);
        char *want;

        (void)state;
        /* the target accepted: done, only the body is not read */
        send_req(c, "GET", "/big", NULL, "ev-1", &d);
        drain(c, 5000);
        assert_int_equal(d.calls, 1);
        assert_int_equal(d.status, SF_OK);
        assert_int_equal(d.http_status, 200);
        assert_null(d.response);
        assert_string_equal(d.error, "");
        recs_free(&d, 1);
        /* a 5xx is retried, however large its body */
        memset(&d, 0, sizeof(d));
        send_req(c, "GET", "/big503", NULL, "ev-2", &d);
        drain(c, 5000);
        assert_int_equal(d.calls, 1);
        assert_int_equal(d.status, SF_RETRY);
        assert_null(d.response);
        want = sf_asprintf("HTTP 503 from GET %s/big503: answer over 1048576 "
                           "bytes, not read",
                           srv.base);
        assert_string_equal(d.error, want);
        free(want);
        ops()->close(c);
        recs_free(&d, 1);
}

static void test_close_abandons_pending(void **state)
{
        sf_connector_cfg_t cfg = base_cfg();
        done_rec_t d[3] = {{0}};
        sf_conn_t *c;

        (void)state;
        cfg.max_in_flight = 1;
        c = open_conn(&cfg);
        for (int i = 0; i < 3; i++)
                send_req(c, "GET", "/slow", NULL, "ev", &d[i]);
        assert_int_equal(ops()->poll(c, 100), 0); /* one on the wire */
        assert_int_equal(ops()->pending(c), 3);
        ops()->close(c);
        for (int i = 0; i < 3; i++)
                assert_int_equal(d[i].calls, 0);
        ops()->close(NULL);
}

static void test_bad_requests_refused(void **state)
{
        sf_connector_cfg_t cfg = base_cfg();
        sf_request_t req = {.method = "PU T", .path = "/x"};
        done_rec_t d = {0};
        char err[256] = "";
        sf_conn_t *c = open_conn(&cfg);
        sf_kv_t hdr = {"X-Bad", "a\r\nInjected: 1"};

        (void)state;
        assert_int_equal(ops()->send(c, &req, on_done, &d, err, sizeof(err)),
                         -1);
        assert_string_equal(err, "connector webshop: invalid HTTP method "
                                 "\"PU T\"");
        assert_int_equal(ops()->pending(c), 0);
        assert_int_equal(ops()->poll(c, 10), 0);
        assert_int_equal(d.calls, 0);
        ops()->close(c);

        cfg.headers = &hdr;
        cfg.header_cnt = 1;
        assert_null(ops()->open(&cfg, NULL, NULL, err, sizeof(err)));
        assert_string_equal(err, "connector webshop: header X-Bad: not a valid "
                                 "header name or value");
}

/* A server on a raw socket that answers each of its connections with the
 * next of ANSWERS, byte for byte, once the request's headers are in. */
typedef struct raw_server {
        int fd, port;
        const char *const *answers;
        int n;
        pthread_t th;
} raw_server_t;

static void *raw_serve(void *arg)
{
        raw_server_t *rs = arg;

        for (int i = 0; i < rs->n; i++) {
                char buf[4096];
                size_t len = 0;
                int cfd = accept(rs->fd, NULL, NULL);
                ssize_t r;

                if (cfd < 0)
                        break;
                while (len < sizeof(buf) - 1 &&
                       (r = recv(cfd, buf + len, sizeof(buf) - 1 - len, 0)) >
                           0) {
                        len += (size_t)r;
                        buf[len] = '\0';
                        if (strstr(buf, "\r\n\r\n"))
                                break;
                }
                if (send(cfd, rs->answers[i], strlen(rs->answers[i]),
                         MSG_NOSIGNAL) < 0)
                        i = rs->n;
                shutdown(cfd, SHUT_WR);
                while (recv(cfd, buf, sizeof(buf), 0) > 0)
                        ;
                close(cfd);
        }
        return NULL;
}

static void raw_server_start(raw_server_t *rs, const char *const *answers,
                             int n)
{
        struct sockaddr_in sa = {.sin_family = AF_INET};
        socklen_t sl = sizeof(sa);

        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        rs->fd = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(rs->fd >= 0);
        assert_int_equal(bind(rs->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(listen(rs->fd, 4), 0);
        assert_int_equal(getsockname(rs->fd, (struct sockaddr *)&sa, &sl), 0);
        rs->port = ntohs(sa.sin_port);
        rs->answers = answers;
        rs->n = n;
        assert_int_equal(pthread_create(&rs->th, NULL, raw_serve, rs), 0);
}

/* An answer whose first header line is a folded continuation, on the
 * handle that carried an answer with headers before: libcurl before 8.1.0
 * unfolds it onto the previous transfer's freed last header when the
 * handle is reused (found by tests/fuzz/fuzz_http_answer; the sanitizer
 * build reports the use after free). The request fails as a transfer
 * error, and the next one works. */
static void test_folded_first_header_after_reuse(void **state)
{
        static const char *const answers[] = {
            "HTTP/1.1 200 OK\r\nX-First: 1\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 503 Busy\r\n folded: x\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 201 Created\r\nX-Last: 3\r\nContent-Length: 0\r\n\r\n",
        };
        sf_connector_cfg_t cfg = base_cfg();
        raw_server_t rs;
        done_rec_t d[3] = {{0}};
        char url[64];
        sf_conn_t *c;

        (void)state;
        raw_server_start(&rs, answers, 3);
        snprintf(url, sizeof(url), "http://127.0.0.1:%d", rs.port);
        cfg.base_url = url;
        cfg.max_in_flight = 1;
        c = open_conn(&cfg);
        for (int i = 0; i < 3; i++) {
                send_req(c, "PUT", "/x", NULL, "ev-1", &d[i]);
                drain(c, 5000);
        }
        ops()->close(c);
        pthread_join(rs.th, NULL);
        close(rs.fd);
        assert_int_equal(d[0].status, SF_OK);
        assert_string_equal(d[0].headers,
                            "{\"x-first\":\"1\",\"content-length\":\"0\"}");
        assert_int_equal(d[1].calls, 1);
        assert_int_equal(d[1].status, SF_RETRY);
        assert_int_equal(d[1].http_status, 0);
        assert_int_equal(d[2].status, SF_OK);
        assert_int_equal(d[2].http_status, 201);
        assert_string_equal(d[2].headers,
                            "{\"x-last\":\"3\",\"content-length\":\"0\"}");
        recs_free(d, 3);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup(test_request_on_the_wire, test_setup),
            cmocka_unit_test_setup(test_basic_and_bearer, test_setup),
            cmocka_unit_test_setup(test_oauth2_token_fetched_once, test_setup),
            cmocka_unit_test_setup(test_oauth2_expiry_and_401, test_setup),
            cmocka_unit_test_setup(test_oauth2_token_endpoint_refuses,
                                   test_setup),
            cmocka_unit_test_setup(test_outcomes, test_setup),
            cmocka_unit_test_setup(test_timeout_retry, test_setup),
            cmocka_unit_test_setup(test_connection_refused_retry, test_setup),
            cmocka_unit_test_setup(test_max_in_flight, test_setup),
            cmocka_unit_test_setup(test_rate_limit, test_setup),
            cmocka_unit_test_setup(test_response_too_large, test_setup),
            cmocka_unit_test_setup(test_response_with_nul_not_read, test_setup),
            cmocka_unit_test_setup(test_close_abandons_pending, test_setup),
            cmocka_unit_test_setup(test_bad_requests_refused, test_setup),
            cmocka_unit_test_setup(test_folded_first_header_after_reuse,
                                   test_setup),
        };

        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
