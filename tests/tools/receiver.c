/*
 * sf-receiver: the HTTP target syncfleet's integration tests deliver to.
 *
 *   sf-receiver --log FILE [--port N] [--rules FILE] [--port-file FILE]
 *
 * Listens on 127.0.0.1 only (port 0, the default, picks a free port), prints
 * "listening on 127.0.0.1:PORT" on stdout and runs until SIGTERM or SIGINT.
 *
 * Every request is written to FILE as one JSON line, before it is answered,
 * so a client that has its answer can already find its request in the log:
 *
 *   {"seq":1,"ts_ms":...,"method":"POST","path":"/customers/42",
 *    "query":"a=1","headers":{"content-type":"application/json",...},
 *    "body":"...","body_size":12,"status":200,"active":1}
 *
 * seq is the 1-based arrival order (the order of the lines), path and query
 * are as sent (not percent-decoded), header names are lower-cased and repeated
 * headers are joined with ", ". body is the raw body; bytes that are not
 * valid UTF-8 (and NUL bytes) are logged as U+FFFD so every line stays valid
 * JSON, and body_size is the exact byte count. status is what was answered,
 * 0 when the rule dropped the connection. active is how many requests the
 * receiver was handling when this one arrived, itself included (a request
 * counts until its answer was sent or its connection closed), so a test
 * can see how many a client had in flight at once. Bodies over 4 MiB are
 * answered 413 (rules are not consulted) and logged with an empty body.
 *
 * Answers come from rules, see receiver.h.
 */
#include "receiver.h"

#include <microhttpd.h>

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RCV_BODY_MAX  (4 * 1024 * 1024)
#define RCV_RULES_MAX (1024 * 1024)
#define RCV_NAP_MS    50

/* Per-request state, created by the URI log callback and freed when MHD
 * reports the request completed. */
typedef struct request {
        char *uri; /* raw, as sent, with the query */
        int seen_headers;
        char *body;
        size_t len, cap;
        size_t total; /* bytes received, even past the cap */
        int active;   /* counted in receiver_t.active */
} request_t;

typedef struct receiver {
        pthread_mutex_t lock; /* guards everything below */
        rcv_rules_t *rules;
        FILE *log;
        uint64_t seq;
        int active; /* requests arrived and not yet answered */
} receiver_t;

static atomic_int stopping;

static int64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps ms milliseconds, returning early once shutdown began so a long
 * delay rule cannot hold the process past SIGTERM. */
static void nap(long ms)
{
        while (ms > 0 && !atomic_load(&stopping)) {
                long step = ms < RCV_NAP_MS ? ms : RCV_NAP_MS;
                struct timespec ts = {step / 1000, (step % 1000) * 1000000};

                nanosleep(&ts, NULL);
                ms -= step;
        }
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 if invalid.
 * NUL counts as invalid: the log's strings are NUL-terminated. */
static size_t utf8_seq_len(const unsigned char *p, size_t n)
{
        size_t len, i;
        uint32_t cp;

        if (p[0] == 0)
                return 0;
        if (p[0] < 0x80)
                return 1;
        if ((p[0] & 0xe0) == 0xc0) {
                len = 2;
                cp = p[0] & 0x1f;
        } else if ((p[0] & 0xf0) == 0xe0) {
                len = 3;
                cp = p[0] & 0x0f;
        } else if ((p[0] & 0xf8) == 0xf0) {
                len = 4;
                cp = p[0] & 0x07;
        } else {
                return 0;
        }
        if (len > n)
                return 0;
        for (i = 1; i < len; i++) {
                if ((p[i] & 0xc0) != 0x80)
                        return 0;
                cp = (cp << 6) | (p[i] & 0x3f);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
            (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        return len;
}

/* A NUL-terminated copy of n bytes with every invalid byte as U+FFFD. */
static char *utf8_clean(const char *s, size_t n)
{
        const unsigned char *p = (const unsigned char *)s;
        char *out = rcv_malloc(n * 3 + 1);
        size_t i = 0, o = 0;

        while (i < n) {
                size_t len = utf8_seq_len(p + i, n - i);

                if (len) {
                        memcpy(out + o, p + i, len);
                        o += len;
                        i += len;
                } else {
                        memcpy(out + o, "\xef\xbf\xbd", 3);
                        o += 3;
                        i++;
                }
        }
        out[o] = '\0';
        return out;
}

static void add_text(cJSON *obj, const char *name, const char *s, size_t n)
{
        char *clean = utf8_clean(s, n);

        cJSON_AddStringToObject(obj, name, clean);
        free(clean);
}

static int queue_answer(struct MHD_Connection *con, const rcv_answer_t *a)
{
        struct MHD_Response *resp;
        const cJSON *h;
        int ok;

        resp = MHD_create_response_from_buffer(strlen(a->body), a->body,
                                               MHD_RESPMEM_MUST_COPY);
        if (!resp)
                return MHD_NO;
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                a->content_type ? a->content_type
                                                : "application/json");
        if (a->retry_after)
                MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER,
                                        a->retry_after);
        cJSON_ArrayForEach(h, a->headers)
            MHD_add_response_header(resp, h->string, h->valuestring);
        ok = MHD_queue_response(con, (unsigned)a->status, resp);
        MHD_destroy_response(resp);
        return ok;
}

static enum MHD_Result add_header(void *cls, enum MHD_ValueKind kind,
                                  const char *key, const char *value)
{
        cJSON *headers = cls;
        cJSON *old;
        char *name = rcv_strdup(key), *joined, *p;

        (void)kind;
        for (p = name; *p; p++)
                if (*p >= 'A' && *p <= 'Z')
                        *p = (char)(*p - 'A' + 'a');
        if (!value)
                value = "";
        old = cJSON_GetObjectItemCaseSensitive(headers, name);
        if (old) {
                size_t n = strlen(old->valuestring) + strlen(value) + 3;

                joined = rcv_malloc(n);
                snprintf(joined, n, "%s, %s", old->valuestring, value);
                cJSON_DeleteItemFromObjectCaseSensitive(headers, name);
                add_text(headers, name, joined, strlen(joined));
                free(joined);
        } else {
                add_text(headers, name, value, strlen(value));
        }
        free(name);
        return MHD_YES;
}

/* Writes the request's log line; the caller holds rcv->lock and has given
 * it its seq. A failed write is reported once per request on stderr: the
 * test reading the log will fail on the missing line. */
static void log_request(receiver_t *rcv, struct MHD_Connection *con,
                        const char *method, const char *path, const char *query,
                        const request_t *req, int status)
{
        cJSON *line = cJSON_CreateObject();
        cJSON *headers = cJSON_CreateObject();
        char *text;

        cJSON_AddNumberToObject(line, "seq", (double)rcv->seq);
        cJSON_AddNumberToObject(line, "ts_ms", (double)now_ms());
        add_text(line, "method", method, strlen(method));
        add_text(line, "path", path, strlen(path));
        add_text(line, "query", query, strlen(query));
        MHD_get_connection_values(con, MHD_HEADER_KIND, add_header, headers);
        cJSON_AddItemToObject(line, "headers", headers);
        if (req->total > RCV_BODY_MAX)
                cJSON_AddStringToObject(line, "body", "");
        else
                add_text(line, "body", req->body ? req->body : "", req->len);
        cJSON_AddNumberToObject(line, "body_size", (double)req->total);
        cJSON_AddNumberToObject(line, "status", status);
        cJSON_AddNumberToObject(line, "active", rcv->active);
        text = cJSON_PrintUnformatted(line);
        if (!text || fputs(text, rcv->log) == EOF ||
            fputc('\n', rcv->log) == EOF || fflush(rcv->log))
                fprintf(stderr, "sf-receiver: cannot write the log: %s\n",
                        strerror(errno));
        free(text);
        cJSON_Delete(line);
}

/* The body of an "echo" answer: what a careless target sends back, the
 * credentials first so that they survive a client's cut of the answer:
 * {"authorization": "...", "query": "...", "body": "...", "headers": {...}}
 * (authorization only when the request had one). */
static char *echo_body(struct MHD_Connection *con, const char *query,
                       const request_t *req)
{
        cJSON *o = cJSON_CreateObject();
        cJSON *headers = cJSON_CreateObject();
        const char *auth =
            MHD_lookup_connection_value(con, MHD_HEADER_KIND, "Authorization");
        char *text;

        if (auth)
                add_text(o, "authorization", auth, strlen(auth));
        add_text(o, "query", query, strlen(query));
        add_text(o, "body", req->body ? req->body : "", req->len);
        MHD_get_connection_values(con, MHD_HEADER_KIND, add_header, headers);
        cJSON_AddItemToObject(o, "headers", headers);
        text = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        return text;
}

/* PUT /__rules, GET /__rules and GET /__health. */
static int serve_control(receiver_t *rcv, struct MHD_Connection *con,
                         const char *method, const char *path,
                         const request_t *req)
{
        rcv_answer_t a;
        rcv_rules_t *rs = NULL, *old;
        char errstr[512];
        cJSON *err;
        int ok;

        if (!strcmp(path, "/__health")) {
                rcv_answer_default(&a, 200);
        } else if (!strcmp(path, "/__rules") && !strcmp(method, "PUT")) {
                if (req->total > RCV_RULES_MAX) {
                        rcv_answer_default(&a, 413);
                } else if (!(rs = rcv_rules_parse(req->body ? req->body : "",
                                                  req->len, errstr,
                                                  sizeof(errstr)))) {
                        rcv_answer_default(&a, 400);
                        err = cJSON_CreateObject();
                        cJSON_AddStringToObject(err, "error", errstr);
                        free(a.body);
                        a.body = cJSON_PrintUnformatted(err);
                        cJSON_Delete(err);
                } else {
                        pthread_mutex_lock(&rcv->lock);
                        old = rcv->rules;
                        rcv->rules = rs;
                        pthread_mutex_unlock(&rcv->lock);
                        rs = old; /* freed below, outside the lock */
                        rcv_answer_default(&a, 200);
                }
        } else if (!strcmp(path, "/__rules") && !strcmp(method, "GET")) {
                rcv_answer_default(&a, 200);
                free(a.body);
                pthread_mutex_lock(&rcv->lock);
                a.body = rcv_rules_json(rcv->rules);
                pthread_mutex_unlock(&rcv->lock);
        } else {
                rcv_answer_default(&a, 404);
        }
        ok = queue_answer(con, &a);
        rcv_rules_destroy(rs);
        rcv_answer_clear(&a);
        return ok;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *con,
                              const char *url, const char *method,
                              const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
        receiver_t *rcv = cls;
        request_t *req = *con_cls;
        rcv_answer_t a;
        const char *q;
        char *path;
        size_t path_len;
        int ok;

        (void)url;
        (void)version;
        if (!req)
                return MHD_NO;
        if (!req->seen_headers) {
                req->seen_headers = 1;
                return MHD_YES;
        }
        if (*upload_data_size) {
                size_t n = *upload_data_size;

                if (req->total + n <= RCV_BODY_MAX) {
                        if (req->len + n + 1 > req->cap) {
                                req->cap = (req->len + n + 1) * 2;
                                req->body = rcv_realloc(req->body, req->cap);
                        }
                        memcpy(req->body + req->len, upload_data, n);
                        req->len += n;
                        req->body[req->len] = '\0';
                }
                req->total += n;
                *upload_data_size = 0;
                return MHD_YES;
        }

        q = strchr(req->uri, '?');
        path_len = q ? (size_t)(q - req->uri) : strlen(req->uri);
        path = rcv_malloc(path_len + 1);
        memcpy(path, req->uri, path_len);
        path[path_len] = '\0';
        if (!strncmp(path, "/__", 3)) {
                ok = serve_control(rcv, con, method, path, req);
                goto out;
        }

        pthread_mutex_lock(&rcv->lock);
        rcv->seq++;
        rcv->active++;
        req->active = 1;
        if (req->total > RCV_BODY_MAX)
                rcv_answer_default(&a, 413);
        else
                rcv_rules_answer(rcv->rules, method, path, &a);
        log_request(rcv, con, method, path, q ? q + 1 : "", req,
                    a.drop ? 0 : a.status);
        pthread_mutex_unlock(&rcv->lock);
        if (a.echo) {
                free(a.body);
                a.body = echo_body(con, q ? q + 1 : "", req);
        }

        nap(a.delay_ms);
        /* Answering MHD_NO makes MHD close the connection unanswered (and
         * note "internal error" on stderr). */
        ok = a.drop ? MHD_NO : queue_answer(con, &a);
        rcv_answer_clear(&a);
out:
        free(path);
        return ok;
}

static void *request_begin(void *cls, const char *uri,
                           struct MHD_Connection *con)
{
        request_t *req = rcv_malloc(sizeof(*req));

        (void)cls;
        (void)con;
        memset(req, 0, sizeof(*req));
        req->uri = rcv_strdup(uri ? uri : "");
        return req;
}

static void request_end(void *cls, struct MHD_Connection *con, void **con_cls,
                        enum MHD_RequestTerminationCode toe)
{
        receiver_t *rcv = cls;
        request_t *req = *con_cls;

        (void)con;
        (void)toe;
        if (!req)
                return;
        if (req->active) {
                pthread_mutex_lock(&rcv->lock);
                rcv->active--;
                pthread_mutex_unlock(&rcv->lock);
        }
        free(req->uri);
        free(req->body);
        free(req);
        *con_cls = NULL;
}

/* Reads a whole file of at most max bytes; NULL with errstr set. */
static char *read_file(const char *path, size_t max, size_t *len, char *errstr,
                       size_t errstr_size)
{
        FILE *f = fopen(path, "rb");
        char *buf = NULL;
        size_t n = 0;

        if (!f) {
                rcv_seterr(errstr, errstr_size, "cannot open %s: %s", path,
                           strerror(errno));
                return NULL;
        }
        buf = rcv_malloc(max + 1);
        n = fread(buf, 1, max + 1, f);
        if (ferror(f) || n > max) {
                rcv_seterr(errstr, errstr_size, "cannot read %s: %s", path,
                           ferror(f) ? strerror(errno) : "file too large");
                free(buf);
                buf = NULL;
        } else {
                buf[n] = '\0';
                *len = n;
        }
        fclose(f);
        return buf;
}

/* Writes the port to path through a rename, so a reader never sees half. */
static int write_port_file(const char *path, unsigned port, char *errstr,
                           size_t errstr_size)
{
        size_t n = strlen(path) + 5;
        char *tmp = rcv_malloc(n);
        FILE *f;
        int rc = -1;

        snprintf(tmp, n, "%s.tmp", path);
        f = fopen(tmp, "w");
        if (!f || fprintf(f, "%u\n", port) < 0 || fclose(f)) {
                rcv_seterr(errstr, errstr_size, "cannot write %s: %s", tmp,
                           strerror(errno));
                goto out;
        }
        if (rename(tmp, path)) {
                rcv_seterr(errstr, errstr_size, "cannot rename %s to %s: %s",
                           tmp, path, strerror(errno));
                goto out;
        }
        rc = 0;
out:
        free(tmp);
        return rc;
}

static void usage(FILE *out)
{
        fprintf(out, "usage: sf-receiver --log FILE [--port N] "
                     "[--rules FILE] [--port-file FILE]\n");
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
            {"log", required_argument, NULL, 'l'},
            {"port", required_argument, NULL, 'p'},
            {"rules", required_argument, NULL, 'r'},
            {"port-file", required_argument, NULL, 'f'},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0},
        };
        receiver_t rcv = {.lock = PTHREAD_MUTEX_INITIALIZER};
        const char *log_path = NULL, *rules_path = NULL, *port_file = NULL;
        struct MHD_Daemon *d = NULL;
        const union MHD_DaemonInfo *info;
        struct sockaddr_in addr;
        char errstr[512], *text, *end;
        sigset_t sigs;
        size_t len;
        long port = 0;
        int c, sig, rc = 2;

        while ((c = getopt_long(argc, argv, "l:p:r:f:h", opts, NULL)) != -1) {
                switch (c) {
                case 'l':
                        log_path = optarg;
                        break;
                case 'p':
                        errno = 0;
                        port = strtol(optarg, &end, 10);
                        if (errno || *end || end == optarg || port < 0 ||
                            port > 65535) {
                                fprintf(stderr,
                                        "sf-receiver: bad port \"%s\"\n",
                                        optarg);
                                return 2;
                        }
                        break;
                case 'r':
                        rules_path = optarg;
                        break;
                case 'f':
                        port_file = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (!log_path || optind != argc) {
                usage(stderr);
                return 2;
        }

        if (rules_path) {
                text = read_file(rules_path, RCV_RULES_MAX, &len, errstr,
                                 sizeof(errstr));
                if (text)
                        rcv.rules =
                            rcv_rules_parse(text, len, errstr, sizeof(errstr));
                free(text);
                if (!rcv.rules) {
                        fprintf(stderr, "sf-receiver: %s: %s\n", rules_path,
                                errstr);
                        goto out;
                }
        }
        rcv.log = fopen(log_path, "w");
        if (!rcv.log) {
                fprintf(stderr, "sf-receiver: cannot open %s: %s\n", log_path,
                        strerror(errno));
                goto out;
        }

        /* Block the stop signals before MHD starts its threads, so they all
         * inherit the mask and only sigwait() below ever sees them. */
        sigemptyset(&sigs);
        sigaddset(&sigs, SIGTERM);
        sigaddset(&sigs, SIGINT);
        pthread_sigmask(SIG_BLOCK, &sigs, NULL);
        signal(SIGPIPE, SIG_IGN);

        memset(&addr, 0, sizeof(addr));
        addr.sin_family = AF_INET;
        addr.sin_port = htons((uint16_t)port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        /* A thread per connection: a delay_ms rule sleeps in its own
         * connection's thread and never holds up another client. */
        d = MHD_start_daemon(
            MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                MHD_USE_AUTO | MHD_USE_ERROR_LOG,
            (uint16_t)port, NULL, NULL, handle, &rcv, MHD_OPTION_SOCK_ADDR,
            (struct sockaddr *)&addr, MHD_OPTION_URI_LOG_CALLBACK,
            request_begin, NULL, MHD_OPTION_NOTIFY_COMPLETED, request_end, &rcv,
            MHD_OPTION_CONNECTION_LIMIT, (unsigned)1000, MHD_OPTION_END);
        if (!d) {
                fprintf(stderr, "sf-receiver: cannot listen on 127.0.0.1:%ld\n",
                        port);
                rc = 1;
                goto out;
        }
        info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
        if (!info || !info->port) {
                fprintf(stderr, "sf-receiver: cannot learn the bound port\n");
                rc = 1;
                goto out;
        }
        if (port_file &&
            write_port_file(port_file, info->port, errstr, sizeof(errstr))) {
                fprintf(stderr, "sf-receiver: %s\n", errstr);
                rc = 1;
                goto out;
        }
        printf("listening on 127.0.0.1:%u\n", (unsigned)info->port);
        fflush(stdout);

        while (sigwait(&sigs, &sig) != 0)
                ;
        rc = 0;
out:
        atomic_store(&stopping, 1);
        if (d)
                MHD_stop_daemon(d);
        if (rcv.log && fclose(rcv.log)) {
                fprintf(stderr, "sf-receiver: cannot close %s: %s\n", log_path,
                        strerror(errno));
                rc = 1;
        }
        rcv_rules_destroy(rcv.rules);
        pthread_mutex_destroy(&rcv.lock);
        return rc;
}
