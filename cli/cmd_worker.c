/*
 * syncfleet worker -c FILE --kind message|webservice [--brokers LIST]
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "log.h"
#include "sf.h"
#include "worker.h"

static void usage(FILE *out)
{
        fprintf(
            out,
            "usage: syncfleet worker -c FILE --kind message|webservice "
            "[--brokers LIST]\n                        [--instance-id ID]\n\n"
            "Runs messages (group PREFIX.message-workers) or web service\n"
            "actions (group PREFIX.webservice-workers). Start as many as\n"
            "the outbound topic has partitions to scale out.\n\n"
            "  -c, --config FILE    the pipeline file\n"
            "  -k, --kind KIND      message or webservice\n"
            "  -b, --brokers LIST   bootstrap servers (overrides "
            "kafka.brokers)\n"
            "  -g, --grace-ms N     shutdown grace period (default "
            "10000)\n"
            "  -i, --instance-id ID static group membership under ID "
            "(default\n"
            "                       $SYNCFLEET_INSTANCE_ID): back "
            "within\n"
            "                       session.timeout.ms, it gets its "
            "partitions\n"
            "                       back without moving the others'\n"
            "  -h, --help           this text\n");
}

int sf_cmd_worker(int argc, char **argv)
{
        static const struct option opts[] = {
            {"config", required_argument, NULL, 'c'},
            {"kind", required_argument, NULL, 'k'},
            {"brokers", required_argument, NULL, 'b'},
            {"grace-ms", required_argument, NULL, 'g'},
            {"instance-id", required_argument, NULL, 'i'},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0},
        };
        const char *file = NULL, *brokers = NULL, *kind = NULL, *bootstraps;
        const char *instance_id = NULL;
        int grace_ms = SF_DEFAULT_GRACE_MS, c, rc = SF_EXIT_OK;
        sf_action_kind_t k;
        char errstr[512];
        sf_config_t *cfg;
        sf_worker_t *w;

        optind = 1;
        while ((c = getopt_long(argc, argv, "c:k:b:g:i:h", opts, NULL)) != -1) {
                switch (c) {
                case 'c':
                        file = optarg;
                        break;
                case 'k':
                        kind = optarg;
                        break;
                case 'b':
                        brokers = optarg;
                        break;
                case 'g':
                        grace_ms = atoi(optarg);
                        break;
                case 'i':
                        instance_id = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        return SF_EXIT_OK;
                default:
                        usage(stderr);
                        return SF_EXIT_USAGE;
                }
        }
        if (!file || !kind || optind < argc) {
                usage(stderr);
                return SF_EXIT_USAGE;
        }
        if (!strcmp(kind, "message"))
                k = SF_KIND_MESSAGE;
        else if (!strcmp(kind, "webservice"))
                k = SF_KIND_WEBSERVICE;
        else {
                fprintf(stderr,
                        "syncfleet worker: --kind must be message or "
                        "webservice, not '%s'\n",
                        kind);
                return SF_EXIT_USAGE;
        }
        if (!(cfg = sf_cli_load(file)))
                return SF_EXIT_USAGE;
        if (sf_cli_instance_id(cfg, instance_id, "worker") ||
            !(bootstraps = sf_cli_bootstraps(cfg, brokers, "worker"))) {
                sf_config_destroy(cfg);
                return SF_EXIT_USAGE;
        }
        sf_cli_topics(cfg, bootstraps, "worker");
        sf_signals_install();
        w = sf_worker_new(cfg, bootstraps, k, "syncfleet-worker", errstr,
                          sizeof(errstr));
        if (!w) {
                sf_error("worker", "%s", errstr);
                rc = SF_EXIT_RUNTIME;
        } else if (sf_worker_run(w, grace_ms, errstr, sizeof(errstr))) {
                sf_error("worker", "%s", errstr);
                rc = SF_EXIT_RUNTIME;
        }
        sf_worker_destroy(w);
        sf_config_destroy(cfg);
        return rc;
}
