/*
 * syncfleet router -c FILE [--brokers LIST]: the router alone.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "commands.h"
#include "log.h"
#include "router.h"
#include "sf.h"

static void usage(FILE *out)
{
        fprintf(out,
                "usage: syncfleet router -c FILE [--brokers LIST] "
                "[--instance-id ID]\n\n"
                "Consumes PREFIX.sync-log in group PREFIX.router and writes "
                "one\noutbound record per triggered message or web service "
                "action.\n\n"
                "  -c, --config FILE    the pipeline file\n"
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

int sf_cmd_router(int argc, char **argv)
{
        static const struct option opts[] = {
            {"config", required_argument, NULL, 'c'},
            {"brokers", required_argument, NULL, 'b'},
            {"grace-ms", required_argument, NULL, 'g'},
            {"instance-id", required_argument, NULL, 'i'},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0},
        };
        const char *file = NULL, *brokers = NULL, *bootstraps;
        const char *instance_id = NULL;
        int grace_ms = SF_DEFAULT_GRACE_MS, c, rc = SF_EXIT_OK;
        char errstr[512];
        sf_config_t *cfg;
        sf_router_t *r;

        optind = 1;
        while ((c = getopt_long(argc, argv, "c:b:g:i:h", opts, NULL)) != -1) {
                switch (c) {
                case 'c':
                        file = optarg;
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
        if (!file || optind < argc) {
                usage(stderr);
                return SF_EXIT_USAGE;
        }
        if (!(cfg = sf_cli_load(file)))
                return SF_EXIT_USAGE;
        if (sf_cli_instance_id(cfg, instance_id, "router") ||
            !(bootstraps = sf_cli_bootstraps(cfg, brokers, "router"))) {
                sf_config_destroy(cfg);
                return SF_EXIT_USAGE;
        }
        sf_cli_topics(cfg, bootstraps, "router");
        sf_signals_install();
        r = sf_router_new(cfg, bootstraps, 0, errstr, sizeof(errstr));
        if (!r) {
                sf_error("router", "%s", errstr);
                rc = SF_EXIT_RUNTIME;
        } else if (sf_router_run(r, grace_ms, errstr, sizeof(errstr))) {
                sf_error("router", "%s", errstr);
                rc = SF_EXIT_RUNTIME;
        }
        sf_router_destroy(r);
        sf_config_destroy(cfg);
        return rc;
}
