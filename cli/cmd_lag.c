/*
 * syncfleet lag -c FILE [--brokers LIST] [--json]: how far each consumer
 * group of the pipeline is behind, per partition: the committed offset of
 * the group against the partition's end. This is what tells whether the
 * fleet keeps up, and what an autoscaler scales on.
 *
 * It uses only OffsetFetch (the group's committed offsets) and ListOffsets,
 * which every broker answers, the embedded one included; it does not need
 * ListGroups/DescribeGroups.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <librdkafka/rdkafka.h>

#include "cli.h"
#include "commands.h"
#include "kafka.h"
#include "log.h"
#include "sf.h"

#define SF_LAG_TIMEOUT_MS 10000

typedef struct sf_lag_group {
        const char *suffix; /* of the group name */
        const char *topic;
} sf_lag_group_t;

static void usage(FILE *out)
{
        fprintf(out,
                "usage: syncfleet lag -c FILE [--brokers LIST] [--json]\n\n"
                "Prints, for the router and the workers, how many records "
                "each\npartition of their input topic holds beyond the "
                "group's committed\noffset.\n\n"
                "  -c, --config FILE    the pipeline file\n"
                "  -b, --brokers LIST   bootstrap servers (overrides "
                "kafka.brokers)\n"
                "  -j, --json           one JSON document instead of a "
                "table\n"
                "  -h, --help           this text\n");
}

/* Lag of GROUP on TOPIC; adds one object per partition to ARR and returns
 * the total, or -1 with errstr. */
static int64_t sf_group_lag(const sf_config_t *cfg, const char *bootstraps,
                            const char *group, const char *topic, cJSON *arr,
                            char *errstr, size_t errstr_size)
{
        rd_kafka_conf_t *conf;
        rd_kafka_t *rk = NULL;
        sf_partition_lag_t *lags = NULL;
        int64_t total = -1;
        char errbuf[512];
        int n;

        conf = sf_kafka_conf_new(&cfg->kafka, bootstraps, "syncfleet-lag",
                                 errstr, errstr_size);
        if (!conf)
                return -1;
        if (rd_kafka_conf_set(conf, "group.id", group, errbuf,
                              sizeof(errbuf)) != RD_KAFKA_CONF_OK) {
                sf_seterr(errstr, errstr_size, "%s", errbuf);
                rd_kafka_conf_destroy(conf);
                return -1;
        }
        rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errbuf, sizeof(errbuf));
        if (!rk) {
                sf_seterr(errstr, errstr_size, "%s", errbuf);
                rd_kafka_conf_destroy(conf);
                return -1;
        }
        conf = NULL; /* now owned by rk */
        n = sf_group_lag_read(rk, topic, SF_LAG_TIMEOUT_MS, &lags, errstr,
                              errstr_size);
        if (n < 0)
                goto out;
        total = 0;
        for (int i = 0; i < n; i++) {
                cJSON *o = cJSON_CreateObject();

                total += lags[i].lag;
                cJSON_AddNumberToObject(o, "partition", lags[i].partition);
                cJSON_AddNumberToObject(o, "committed",
                                        (double)lags[i].committed);
                cJSON_AddNumberToObject(o, "end", (double)lags[i].hi);
                cJSON_AddNumberToObject(o, "lag", (double)lags[i].lag);
                cJSON_AddItemToArray(arr, o);
        }
out:
        free(lags);
        rd_kafka_destroy(rk);
        return total;
}

int sf_cmd_lag(int argc, char **argv)
{
        static const struct option opts[] = {
            {"config", required_argument, NULL, 'c'},
            {"brokers", required_argument, NULL, 'b'},
            {"json", no_argument, NULL, 'j'},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0},
        };
        const char *file = NULL, *brokers = NULL, *bootstraps;
        int json = 0, c, rc = SF_EXIT_OK;
        sf_config_t *cfg;
        cJSON *doc = NULL, *groups;
        char errstr[512];

        optind = 1;
        while ((c = getopt_long(argc, argv, "c:b:jh", opts, NULL)) != -1) {
                switch (c) {
                case 'c':
                        file = optarg;
                        break;
                case 'b':
                        brokers = optarg;
                        break;
                case 'j':
                        json = 1;
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
        if (!(bootstraps = sf_cli_bootstraps(cfg, brokers, "lag"))) {
                sf_config_destroy(cfg);
                return SF_EXIT_USAGE;
        }
        {
                const sf_lag_group_t lg[] = {
                    {"router", cfg->topic_sync_log},
                    {"message-workers", cfg->topic_outbound_message},
                    {"webservice-workers", cfg->topic_outbound_webservice},
                };

                doc = cJSON_CreateObject();
                groups = cJSON_AddArrayToObject(doc, "groups");
                if (!json)
                        printf("%-36s %-36s %9s %12s %12s %10s\n", "GROUP",
                               "TOPIC", "PARTITION", "COMMITTED", "END", "LAG");
                for (size_t i = 0; i < sizeof(lg) / sizeof(lg[0]); i++) {
                        char *group = sf_asprintf(
                            "%s.%s", cfg->kafka.topic_prefix, lg[i].suffix);
                        cJSON *g = cJSON_CreateObject();
                        cJSON *parts = cJSON_CreateArray();
                        int64_t total;
                        const cJSON *p;

                        total =
                            sf_group_lag(cfg, bootstraps, group, lg[i].topic,
                                         parts, errstr, sizeof(errstr));
                        cJSON_AddStringToObject(g, "group", group);
                        cJSON_AddStringToObject(g, "topic", lg[i].topic);
                        cJSON_AddItemToObject(g, "partitions", parts);
                        cJSON_AddItemToArray(groups, g);
                        if (total < 0) {
                                fprintf(stderr, "syncfleet lag: group %s: %s\n",
                                        group, errstr);
                                rc = SF_EXIT_RUNTIME;
                                free(group);
                                continue;
                        }
                        cJSON_AddNumberToObject(g, "lag", (double)total);
                        if (!json) {
                                cJSON_ArrayForEach(p, parts)
                                {
                                        printf(
                                            "%-36s %-36s %9d %12.0f %12.0f "
                                            "%10.0f\n",
                                            group, lg[i].topic,
                                            cJSON_GetObjectItem(p, "partition")
                                                ->valueint,
                                            cJSON_GetObjectItem(p, "committed")
                                                ->valuedouble,
                                            cJSON_GetObjectItem(p, "end")
                                                ->valuedouble,
                                            cJSON_GetObjectItem(p, "lag")
                                                ->valuedouble);
                                }
                                printf("%-36s %-36s %9s %12s %12s %10lld\n",
                                       group, lg[i].topic, "total", "", "",
                                       (long long)total);
                        }
                        free(group);
                }
        }
        if (json) {
                char *s = cJSON_PrintUnformatted(doc);

                printf("%s\n", s);
                free(s);
        }
        cJSON_Delete(doc);
        sf_config_destroy(cfg);
        return rc;
}
