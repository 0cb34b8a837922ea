/*
 * What the http connector makes of a target's answer (workers/
 * connector_http.c, connector_http_answer.c): status line, headers,
 * Retry-After, body and its snippet, as libcurl reads them off the wire.
 *
 * Input: METHOD-BYTE ANSWER [NUL NUL NUL NUL ANSWER]... The first byte
 * picks the method (GET, PUT, POST, DELETE) of the requests, one per
 * ANSWER, sent one after the other through one connector opened for the
 * input (so that an answer meets what the one before it left behind).
 * A server on a loopback socket inside this process writes each ANSWER
 * back, byte for byte, to its request, then closes the connection.
 *
 * Properties: every request is answered by exactly one callback, with a
 * status of SF_OK, SF_RETRY or SF_FATAL that follows the classification
 * of DESIGN.md ("Failures") for any HTTP status the answer carried (2xx
 * ok; 408, 429 and 5xx retried; anything else fatal), an error sentence
 * when it is not ok, headers that are a JSON object, and a Retry-After
 * within a day.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "connector.h"
#include "fuzz.h"
#include "log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const sf_connector_ops_t *ops;
static int lfd = -1;
static sf_connector_cfg_t cfg;
static char base_url[64];

typedef struct outcome {
        int calls;
        sf_status_t status;
        int http_status;
} outcome_t;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        struct sockaddr_in sa = {.sin_family = AF_INET};
        socklen_t sl = sizeof(sa);

        (void)argc;
        (void)argv;
        sf_log_set_level(SF_LOG_ERROR);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) ||
            listen(lfd, 16) || getsockname(lfd, (struct sockaddr *)&sa, &sl))
                abort();
        snprintf(base_url, sizeof(base_url), "http://127.0.0.1:%d/api",
                 ntohs(sa.sin_port));
        cfg.name = "fuzz";
        cfg.type = SF_CONN_HTTP;
        cfg.base_url = base_url;
        cfg.timeout_ms = 2000; /* 8 answers stay within -timeout=20 */
        cfg.max_in_flight = 1;
        cfg.tls_verify = 1;
        ops = sf_connector_ops(SF_CONN_HTTP);
        if (!ops)
                abort();
        return 0;
}

static void on_done(void *opaque, const sf_result_t *res)
{
        outcome_t *o = opaque;
        int code = res->http_status;

        o->calls++;
        o->status = res->status;
        o->http_status = code;
        FUZZ_CHECK(res->status == SF_OK || res->status == SF_RETRY ||
                       res->status == SF_FATAL,
                   "status %d", (int)res->status);
        FUZZ_CHECK(memchr(res->error, '\0', sizeof(res->error)),
                   "the error is not terminated");
        FUZZ_CHECK(res->status == SF_OK || res->error[0],
                   "not ok, and no error sentence");
        if (code > 0) {
                sf_status_t want = code >= 200 && code < 300 ? SF_OK
                                   : code == 408 || code == 429 || code >= 500
                                       ? SF_RETRY
                                       : SF_FATAL;

                FUZZ_CHECK(res->status == want, "HTTP %d gave status %d", code,
                           (int)res->status);
        } else {
                FUZZ_CHECK(res->status != SF_OK, "ok without an answer");
        }
        if (res->response_headers_json) {
                cJSON *h = cJSON_Parse(res->response_headers_json);

                FUZZ_CHECK(cJSON_IsObject(h), "headers are not an object: %s",
                           res->response_headers_json);
                cJSON_Delete(h);
        }
        FUZZ_CHECK(res->retry_after_ms >= -1 &&
                       res->retry_after_ms <= 24 * 3600 * 1000LL,
                   "Retry-After of %lld ms", (long long)res->retry_after_ms);
}

/* One request through CONN, answered with ANSWER[0..SIZE-1]. */
static void exchange(sf_conn_t *conn, const char *method, const uint8_t *data,
                     size_t size)
{
        sf_request_t req = {.method = method,
                            .path = "/customers/7",
                            .idempotency_key = "sqlite:erp:1",
                            .action = "fuzz"};
        outcome_t out = {0};
        char err[512] = "", rq[8192];
        size_t rq_len = 0, sent = 0;
        int cfd = -1, asked = 0, shut = 0;

        FUZZ_CHECK(!ops->send(conn, &req, on_done, &out, err, sizeof(err)),
                   "send refused: %s", err);
        while (!out.calls) {
                ops->poll(conn, 0);
                if (cfd < 0)
                        cfd = accept4(lfd, NULL, NULL,
                                      SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0)
                        continue;
                /* the request up to the end of its headers (no body) */
                for (;;) {
                        ssize_t n =
                            recv(cfd, rq + rq_len, sizeof(rq) - 1 - rq_len, 0);

                        if (n <= 0)
                                break;
                        rq_len += (size_t)n;
                        rq[rq_len] = '\0';
                        if (strstr(rq, "\r\n\r\n"))
                                asked = 1;
                        if (rq_len == sizeof(rq) - 1)
                                rq_len = 0; /* not ours to keep */
                }
                if (!asked)
                        continue;
                while (sent < size) {
                        ssize_t n = send(cfd, data + sent, size - sent,
                                         MSG_NOSIGNAL | MSG_DONTWAIT);

                        if (n <= 0)
                                break;
                        sent += (size_t)n;
                }
                if (sent == size && !shut) {
                        shutdown(cfd, SHUT_WR);
                        shut = 1;
                }
        }
        if (cfd >= 0)
                close(cfd);
        ops->poll(conn, 0);
        FUZZ_CHECK(out.calls == 1, "%d callbacks", out.calls);
        FUZZ_CHECK(ops->pending(conn) == 0, "%zu requests pending",
                   ops->pending(conn));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const char *const methods[] = {"GET", "PUT", "POST", "DELETE"};
        static const uint8_t sep[4] = {0, 0, 0, 0};
        const char *method;
        char err[512] = "";
        sf_conn_t *conn;

        if (size < 1)
                return 0;
        method = methods[data[0] % 4];
        data++;
        size--;
        conn = ops->open(&cfg, NULL, NULL, err, sizeof(err));
        FUZZ_CHECK(conn, "cannot open the connector: %s", err);
        for (int i = 0; i < 8; i++) {
                const uint8_t *end = memmem(data, size, sep, sizeof(sep));
                size_t len = end ? (size_t)(end - data) : size;

                exchange(conn, method, data, len);
                if (!end)
                        break;
                data += len + sizeof(sep);
                size -= len + sizeof(sep);
        }
        ops->close(conn);
        return 0;
}
