/*
 * syncfleet run -c FILE: the whole pipeline in one process, for a single
 * machine and a first run. The embedded broker (when kafka.brokers is
 * "embedded"), the change-capture producer, the router and the workers run
 * as threads; each is exactly the component its own subcommand runs.
 */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "kafka.h"
#include "log.h"
#include "producer.h"
#include "router.h"
#include "sf.h"
#include "state.h"
#include "worker.h"

#define SF_RUN_MAX_THREADS 34

typedef enum sf_part {
        SF_PART_PRODUCER,
        SF_PART_ROUTER,
        SF_PART_MESSAGE,
        SF_PART_WEBSERVICE,
} sf_part_t;

typedef struct sf_run_ctx sf_run_ctx_t;

typedef struct sf_run_thread {
        sf_run_ctx_t *ctx;
        sf_part_t part;
        int index;
        pthread_t tid;
        int ready;
        int failed;
} sf_run_thread_t;

struct sf_run_ctx {
        const sf_config_t *cfg;
        const char *bootstraps;
        sf_broker_t *broker;
        int grace_ms;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        int ready;  /* components up */
        int failed; /* components that could not start or stopped early */
};

static void sf_run_report(sf_run_ctx_t *ctx, int ok)
{
        pthread_mutex_lock(&ctx->lock);
        if (ok)
                ctx->ready++;
        else
                ctx->failed++;
        pthread_cond_broadcast(&ctx->cond);
        pthread_mutex_unlock(&ctx->lock);
        if (!ok)
                sf_request_stop();
}

/* The producer is up once capture is installed: changes made after
 * "running" is logged are all captured. */
static void sf_run_producer_ready(void *arg)
{
        sf_run_thread_t *t = arg;

        t->ready = 1;
        sf_run_report(t->ctx, 1);
}

static void *sf_run_thread(void *arg)
{
        sf_run_thread_t *t = arg;
        sf_run_ctx_t *ctx = t->ctx;
        char errstr[512] = "";
        char client_id[64];
        int rc = 0;

        switch (t->part) {
        case SF_PART_PRODUCER: {
                sf_producer_opts_t opts;

                memset(&opts, 0, sizeof(opts));
                opts.bootstraps = ctx->bootstraps;
                opts.flush_grace_ms = ctx->grace_ms;
                opts.on_ready = sf_run_producer_ready;
                opts.ready_arg = t;
                opts.expect_router = 1;
                rc = sf_producer_run(ctx->cfg, &opts, errstr, sizeof(errstr));
                if (rc)
                        sf_error("producer", "%s", errstr);
                break;
        }
        case SF_PART_ROUTER: {
                sf_router_t *r = sf_router_new(ctx->cfg, ctx->bootstraps, 1,
                                               errstr, sizeof(errstr));

                sf_run_report(ctx, r != NULL);
                if (!r) {
                        sf_error("router", "%s", errstr);
                        rc = -1;
                        break;
                }
                rc = sf_router_run(r, ctx->grace_ms, errstr, sizeof(errstr));
                if (rc)
                        sf_error("router", "%s", errstr);
                sf_router_destroy(r);
                break;
        }
        case SF_PART_MESSAGE:
        case SF_PART_WEBSERVICE: {
                sf_action_kind_t kind = t->part == SF_PART_MESSAGE
                                            ? SF_KIND_MESSAGE
                                            : SF_KIND_WEBSERVICE;
                sf_worker_t *w;

                snprintf(client_id, sizeof(client_id), "syncfleet-%s-%d",
                         kind == SF_KIND_MESSAGE ? "message" : "webservice",
                         t->index);
                w = sf_worker_new(ctx->cfg, ctx->bootstraps, kind, client_id,
                                  errstr, sizeof(errstr));
                sf_run_report(ctx, w != NULL);
                if (!w) {
                        sf_error("worker", "%s", errstr);
                        rc = -1;
                        break;
                }
                rc = sf_worker_run(w, ctx->grace_ms, errstr, sizeof(errstr));
                if (rc)
                        sf_error("worker", "%s", errstr);
                sf_worker_destroy(w);
                break;
        }
        }
        if (rc) {
                t->failed = 1;
                pthread_mutex_lock(&ctx->lock);
                ctx->failed++;
                pthread_cond_broadcast(&ctx->cond);
                pthread_mutex_unlock(&ctx->lock);
                sf_request_stop();
        }
        return NULL;
}

static void usage(FILE *out)
{
        fprintf(out,
                "usage: syncfleet run -c FILE [--brokers LIST] "
                "[--message-workers N] [--webservice-workers N]\n\n"
                "Runs the whole pipeline in one process: the embedded broker "
                "when\nkafka.brokers is 'embedded', the change-capture "
                "producer, the router\nand the workers. Stops on SIGTERM or "
                "SIGINT. One run per pipeline: it\nlocks the pipeline's "
                "state_dir, and records there the embedded broker's\n"
                "address for 'syncfleet lag', 'syncfleet dlq' and standalone "
                "components.\n\n"
                "  -c, --config FILE           the pipeline file\n"
                "  -b, --brokers LIST          bootstrap servers (overrides "
                "kafka.brokers)\n"
                "  -m, --message-workers N     message worker threads "
                "(default 1)\n"
                "  -w, --webservice-workers N  web service worker threads "
                "(default 1)\n"
                "  -g, --grace-ms N            shutdown grace period "
                "(default 10000)\n"
                "  -h, --help                  this text\n");
}

static int sf_parse_count(const char *s, const char *what, int *out)
{
        char *end;
        long v = strtol(s, &end, 10);

        if (*s == '\0' || *end != '\0' || v < 0 || v > 16) {
                fprintf(stderr, "syncfleet run: %s must be 0..16, not '%s'\n",
                        what, s);
                return -1;
        }
        *out = (int)v;
        return 0;
}

int sf_cmd_run(int argc, char **argv)
{
        static const struct option opts[] = {
            {"config", required_argument, NULL, 'c'},
            {"brokers", required_argument, NULL, 'b'},
            {"message-workers", required_argument, NULL, 'm'},
            {"webservice-workers", required_argument, NULL, 'w'},
            {"grace-ms", required_argument, NULL, 'g'},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0},
        };
        sf_run_thread_t threads[SF_RUN_MAX_THREADS];
        const char *file = NULL, *brokers = NULL;
        int n_message = 1, n_webservice = 1, c, nthreads = 0;
        int rc = SF_EXIT_OK, expected;
        size_t n_msg_actions = 0, n_ws_actions = 0;
        sf_run_ctx_t ctx;
        char errstr[512];
        sf_config_t *cfg;
        sf_state_t *state = NULL;

        memset(&ctx, 0, sizeof(ctx));
        ctx.grace_ms = SF_DEFAULT_GRACE_MS;
        optind = 1;
        while ((c = getopt_long(argc, argv, "c:b:m:w:g:h", opts, NULL)) != -1) {
                switch (c) {
                case 'c':
                        file = optarg;
                        break;
                case 'b':
                        brokers = optarg;
                        break;
                case 'm':
                        if (sf_parse_count(optarg, "--message-workers",
                                           &n_message))
                                return SF_EXIT_USAGE;
                        break;
                case 'w':
                        if (sf_parse_count(optarg, "--webservice-workers",
                                           &n_webservice))
                                return SF_EXIT_USAGE;
                        break;
                case 'g':
                        ctx.grace_ms = atoi(optarg);
                        break;
                case 'h':
                        usage(stdout);
                        return SF_EXIT_OK;
                default:
                        usage(stderr);
                        return SF_EXIT_USAGE;
                }
        }
        if (!file || optind < argc) {
                usage(stderr);
                return SF_EXIT_USAGE;
        }
        if (!(cfg = sf_cli_load(file)))
                return SF_EXIT_USAGE;
        /* one run per state directory: its DLQ store and broker record */
        state = sf_state_open(cfg, 1, errstr, sizeof(errstr));
        if (!state) {
                fprintf(stderr, "syncfleet run: %s\n", errstr);
                sf_config_destroy(cfg);
                return SF_EXIT_USAGE;
        }
        sf_signals_install();
        ctx.cfg = cfg;
        if (brokers) {
                ctx.bootstraps = brokers;
        } else if (cfg->kafka.embedded) {
                ctx.broker = sf_broker_new(1, errstr, sizeof(errstr));
                if (!ctx.broker) {
                        sf_error("run", "embedded broker: %s", errstr);
                        rc = SF_EXIT_RUNTIME;
                        goto out;
                }
                ctx.bootstraps = sf_broker_bootstraps(ctx.broker);
                sf_info("run", "embedded broker at %s (in memory only)",
                        ctx.bootstraps);
                if (sf_state_set_broker(state, ctx.bootstraps, errstr,
                                        sizeof(errstr)))
                        sf_warn("run",
                                "%s: syncfleet lag and dlq need --brokers %s",
                                errstr, ctx.bootstraps);
        } else {
                ctx.bootstraps = cfg->kafka.brokers;
        }
        if (sf_kafka_create_topics(cfg, ctx.broker, ctx.bootstraps, errstr,
                                   sizeof(errstr))) {
                sf_error("run", "creating topics: %s", errstr);
                rc = SF_EXIT_RUNTIME;
                goto out;
        }
        for (size_t i = 0; i < cfg->action_cnt; i++) {
                if (cfg->actions[i].kind == SF_KIND_MESSAGE)
                        n_msg_actions++;
                else
                        n_ws_actions++;
        }
        pthread_mutex_init(&ctx.lock, NULL);
        pthread_cond_init(&ctx.cond, NULL);
#define SF_ADD_THREAD(p, i)                                                    \
        do {                                                                   \
                threads[nthreads] =                                            \
                    (sf_run_thread_t){.ctx = &ctx, .part = (p), .index = (i)}; \
                nthreads++;                                                    \
        } while (0)
        if (cfg->source.type != SF_SOURCE_NONE)
                SF_ADD_THREAD(SF_PART_PRODUCER, 0);
        SF_ADD_THREAD(SF_PART_ROUTER, 0);
        for (int i = 0; n_msg_actions && i < n_message; i++)
                SF_ADD_THREAD(SF_PART_MESSAGE, i);
        for (int i = 0; n_ws_actions && i < n_webservice; i++)
                SF_ADD_THREAD(SF_PART_WEBSERVICE, i);
#undef SF_ADD_THREAD
        expected = nthreads;
        for (int i = 0; i < nthreads; i++)
                if (pthread_create(&threads[i].tid, NULL, sf_run_thread,
                                   &threads[i])) {
                        sf_error("run", "cannot start a thread");
                        sf_request_stop();
                        nthreads = i;
                        break;
                }
        pthread_mutex_lock(&ctx.lock);
        while (ctx.ready + ctx.failed < nthreads)
                pthread_cond_wait(&ctx.cond, &ctx.lock);
        pthread_mutex_unlock(&ctx.lock);
        if (!ctx.failed && nthreads == expected)
                sf_info("run",
                        "running pipeline %s: %s%d message worker(s), %d web "
                        "service worker(s); SIGTERM or Ctrl-C stops",
                        cfg->name ? cfg->name : file,
                        cfg->source.type != SF_SOURCE_NONE
                            ? "producer, router, "
                            : "router, ",
                        n_msg_actions ? n_message : 0,
                        n_ws_actions ? n_webservice : 0);
        for (int i = 0; i < nthreads; i++)
                pthread_join(threads[i].tid, NULL);
        if (ctx.failed || nthreads != expected)
                rc = SF_EXIT_RUNTIME;
        pthread_cond_destroy(&ctx.cond);
        pthread_mutex_destroy(&ctx.lock);
out:
        sf_broker_destroy(ctx.broker);
        sf_state_close(state);
        sf_config_destroy(cfg);
        if (rc == SF_EXIT_OK)
                sf_info("run", "stopped");
        return rc;
}
