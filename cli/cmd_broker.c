/*
 * syncfleet broker: the embedded broker on its own, for components run as
 * separate processes on one machine and for tests. It prints its bootstrap
 * address alone on one line on stdout, so a script can read it, and runs
 * until SIGTERM or SIGINT.
 *
 * With -c FILE it is that pipeline's broker: its topics are the pipeline's,
 * it takes the lock of the pipeline's state directory and records its
 * address there, so the components, `syncfleet lag` and `syncfleet dlq`
 * find it without --brokers.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cli.h"
#include "commands.h"
#include "kafka.h"
#include "log.h"
#include "sf.h"
#include "state.h"

#define SF_BROKER_MAX_BROKERS    64
#define SF_BROKER_MAX_PARTITIONS 10000

static void usage(FILE *out)
{
        fprintf(out,
                "usage: syncfleet broker [-c FILE] [--brokers N] "
                "[--partitions N] [--topic-prefix P]\n\n"
                "Runs librdkafka's mock cluster (data in memory only) on "
                "loopback, creates\n"
                "the topics P.sync-log, P.outbound.message, "
                "P.outbound.webservice and P.dlq,\n"
                "prints the bootstrap address on stdout and runs until "
                "SIGTERM or SIGINT. With -c, it is the broker of that "
                "pipeline: P and N\n"
                "default to its kafka.topic_prefix and kafka.partitions, "
                "and its address is\n"
                "recorded in the pipeline's state_dir, where components, "
                "'syncfleet lag' and\n"
                "'syncfleet dlq' find it without --brokers.\n\n"
                "  -c, --config FILE      the pipeline this broker is for\n"
                "  -b, --brokers N        brokers in the cluster (default 1)\n"
                "  -p, --partitions N     partitions per topic (default 6)\n"
                "  -t, --topic-prefix P   topic name prefix (default "
                "syncfleet)\n"
                "  -h, --help             this text\n");
}

/* A whole decimal number in [1, max], or -1. */
static int parse_count(const char *s, int max)
{
        char *end;
        long v;

        errno = 0;
        v = strtol(s, &end, 10);
        if (errno || end == s || *end || v < 1 || v > max)
                return -1;
        return (int)v;
}

int sf_cmd_broker(int argc, char **argv)
{
        static const struct option opts[] = {
            {"config", required_argument, NULL, 'c'},
            {"brokers", required_argument, NULL, 'b'},
            {"partitions", required_argument, NULL, 'p'},
            {"topic-prefix", required_argument, NULL, 't'},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0},
        };
        static const char *const suffixes[] = {
            "sync-log",
            "outbound.message",
            "outbound.webservice",
            "dlq",
        };
        const char *prefix = NULL, *file = NULL;
        int brokers = 1, partitions = 0;
        sf_broker_t *broker = NULL;
        sf_config_t *cfg = NULL;
        sf_state_t *state = NULL;
        char errstr[512];
        int rc = SF_EXIT_RUNTIME;
        int c;

        optind = 1;
        while ((c = getopt_long(argc, argv, "c:b:p:t:h", opts, NULL)) != -1) {
                switch (c) {
                case 'c':
                        file = optarg;
                        break;
                case 'b':
                        brokers = parse_count(optarg, SF_BROKER_MAX_BROKERS);
                        if (brokers < 0) {
                                fprintf(stderr,
                                        "syncfleet broker: --brokers must be "
                                        "a number from 1 to %d, not '%s'\n",
                                        SF_BROKER_MAX_BROKERS, optarg);
                                return SF_EXIT_USAGE;
                        }
                        break;
                case 'p':
                        partitions =
                            parse_count(optarg, SF_BROKER_MAX_PARTITIONS);
                        if (partitions < 0) {
                                fprintf(stderr,
                                        "syncfleet broker: --partitions must "
                                        "be a number from 1 to %d, not '%s'\n",
                                        SF_BROKER_MAX_PARTITIONS, optarg);
                                return SF_EXIT_USAGE;
                        }
                        break;
                case 't':
                        prefix = optarg;
                        if (!*prefix) {
                                fprintf(stderr, "syncfleet broker: "
                                                "--topic-prefix must not be "
                                                "empty\n");
                                return SF_EXIT_USAGE;
                        }
                        break;
                case 'h':
                        usage(stdout);
                        return SF_EXIT_OK;
                default:
                        usage(stderr);
                        return SF_EXIT_USAGE;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "syncfleet broker: unexpected argument '%s'\n",
                        argv[optind]);
                usage(stderr);
                return SF_EXIT_USAGE;
        }

        if (file) {
                if (!(cfg = sf_cli_load(file)))
                        return SF_EXIT_USAGE;
                state = sf_state_open(cfg, 1, errstr, sizeof(errstr));
                if (!state) {
                        fprintf(stderr, "syncfleet broker: %s\n", errstr);
                        sf_config_destroy(cfg);
                        return SF_EXIT_USAGE;
                }
                if (!prefix)
                        prefix = cfg->kafka.topic_prefix;
                if (!partitions)
                        partitions = cfg->kafka.partitions;
        }
        if (!prefix)
                prefix = "syncfleet";
        if (!partitions)
                partitions = 6;
        sf_signals_install();
        broker = sf_broker_new(brokers, errstr, sizeof(errstr));
        if (!broker) {
                sf_error("broker", "%s", errstr);
                goto out;
        }
        for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
                char *topic = sf_asprintf("%s.%s", prefix, suffixes[i]);
                int err = sf_broker_create_topic(broker, topic, partitions,
                                                 errstr, sizeof(errstr));

                free(topic);
                if (err) {
                        sf_error("broker", "%s", errstr);
                        goto out;
                }
        }
        if (state && sf_state_set_broker(state, sf_broker_bootstraps(broker),
                                         errstr, sizeof(errstr))) {
                sf_error("broker", "%s", errstr);
                goto out;
        }
        printf("%s\n", sf_broker_bootstraps(broker));
        fflush(stdout);
        sf_info("broker",
                "embedded broker (%d broker%s) listening on %s; topics %s.* "
                "with %d partition%s",
                brokers, brokers == 1 ? "" : "s", sf_broker_bootstraps(broker),
                prefix, partitions, partitions == 1 ? "" : "s");
        while (!sf_should_stop()) {
                struct timespec ts = {0, 100 * 1000 * 1000};

                nanosleep(&ts, NULL);
        }
        sf_info("broker", "stopping; the data held in memory is gone");
        rc = SF_EXIT_OK;
out:
        sf_broker_destroy(broker);
        sf_state_close(state);
        sf_config_destroy(cfg);
        return rc;
}
