/*
 * syncfleet producer -c FILE: change capture alone, publishing to the
 * sync-log of a broker it does not run itself.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "cli.h"
#include "commands.h"
#include "config.h"
#include "producer.h"
#include "sf.h"

static void usage(FILE *out)
{
        fprintf(
            out,
            "usage: syncfleet producer -c FILE [--brokers LIST] "
            "[--uninstall]\n\n"
            "Captures the table changes the pipeline subscribes to and\n"
            "publishes them to PREFIX.sync-log. Installs (or updates) the\n"
            "capture in the source first. Stops on SIGTERM or SIGINT.\n\n"
            "  -c, --config FILE     the pipeline file\n"
            "  -b, --brokers LIST    Kafka bootstrap servers, overriding\n"
            "                        kafka.brokers\n"
            "      --uninstall       remove the capture (triggers and log)\n"
            "                        from the source, then exit\n"
            "  -h, --help            this text\n\n"
            "Exit status: 0 stopped cleanly, 1 runtime error, 2 usage or\n"
            "configuration error.\n");
}

static int uninstall(const sf_config_t *cfg)
{
        char err[512];
        sf_capture_t *cap = sf_capture_open(cfg, err, sizeof(err));
        int rc = SF_EXIT_OK;

        if (!cap || sf_capture_uninstall(cap, err, sizeof(err))) {
                fprintf(stderr, "syncfleet producer: %s\n", err);
                rc = SF_EXIT_RUNTIME;
        }
        sf_capture_close(cap);
        return rc;
}

int sf_cmd_producer(int argc, char **argv)
{
        static const struct option opts[] = {
            {"config", required_argument, NULL, 'c'},
            {"brokers", required_argument, NULL, 'b'},
            {"uninstall", no_argument, NULL, 'u'},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0},
        };
        const char *file = NULL, *brokers = NULL;
        int do_uninstall = 0, c, rc;
        sf_producer_opts_t popts;
        sf_config_t *cfg = NULL;
        char err[1024];

        optind = 1;
        while ((c = getopt_long(argc, argv, "c:b:h", opts, NULL)) != -1) {
                switch (c) {
                case 'c':
                        file = optarg;
                        break;
                case 'b':
                        brokers = optarg;
                        break;
                case 'u':
                        do_uninstall = 1;
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
        if (cfg->source.type == SF_SOURCE_NONE) {
                fprintf(stderr,
                        "syncfleet producer: %s has no source "
                        "section: there is nothing to capture\n",
                        file);
                rc = SF_EXIT_USAGE;
                goto out;
        }
        if (do_uninstall) {
                rc = uninstall(cfg);
                goto out;
        }
        if (!(brokers = sf_cli_bootstraps(cfg, brokers, "producer"))) {
                rc = SF_EXIT_USAGE;
                goto out;
        }
        sf_cli_topics(cfg, brokers, "producer");
        memset(&popts, 0, sizeof(popts));
        popts.bootstraps = brokers;
        sf_signals_install();
        if (sf_producer_run(cfg, &popts, err, sizeof(err))) {
                fprintf(stderr, "syncfleet producer: %s\n", err);
                rc = SF_EXIT_RUNTIME;
                goto out;
        }
        rc = SF_EXIT_OK;
out:
        sf_config_destroy(cfg);
        return rc;
}
