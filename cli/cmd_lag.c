/*
 * syncfleet lag -c FILE [--brokers LIST] [--json]: how far each consumer
 * group of the pipeline is behind, per partition: the committed offset of
 * the group against the partition's end. This is what tells whether the
 * fleet keeps up, and what an autoscaler scales on.
 *
 * The offsets come from OffsetFetch (the group's committed offsets) and
 * ListOffsets, which every broker answers, the embedded one included, and
 * are read as kafka-consumer-groups reads them. On a real cluster the
 * group's state, members and their partitions come from the Admin API
 * (DescribeConsumerGroups) as well; the embedded broker does not answer
 * it, and there only the offsets are shown.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <librdkafka/rdkafka.h>

#include "cli.h"
#include "commands.h"
#include "json.h"
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

/* The member of DESC that holds TOPIC [PARTITION], or NULL. */
static const rd_kafka_MemberDescription_t *
sf_lag_owner(const rd_kafka_ConsumerGroupDescription_t *desc, const char *topic,
             int32_t partition)
{
        size_t n = rd_kafka_ConsumerGroupDescription_member_count(desc);

        for (size_t i = 0; i < n; i++) {
                const rd_kafka_MemberDescription_t *m =
                    rd_kafka_ConsumerGroupDescription_member(desc, i);
                const rd_kafka_topic_partition_list_t *parts =
                    rd_kafka_MemberAssignment_partitions(
                        rd_kafka_MemberDescription_assignment(m));

                for (int j = 0; parts && j < parts->cnt; j++)
                        if (parts->elems[j].partition == partition &&
                            !strcmp(parts->elems[j].topic, topic))
                                return m;
        }
        return NULL;
}

/* Adds to G the group's "state" and "members" (each with member_id,
 * client_id, host, instance_id and its partitions of TOPIC) and to each
 * partition of PARTS its "member_id" (null: unassigned), through
 * DescribeConsumerGroups. Returns 0; 1 when the broker does not answer it
 * (the embedded broker), G then as it was; -1 with errstr. */
static int sf_lag_describe(const sf_config_t *cfg, const char *bootstraps,
                           const char *group, const char *topic, cJSON *g,
                           cJSON *parts, char *errstr, size_t errstr_size)
{
        const char *groups[1] = {group};
        rd_kafka_conf_t *conf;
        rd_kafka_t *rk;
        rd_kafka_AdminOptions_t *opts;
        rd_kafka_queue_t *q;
        rd_kafka_event_t *ev = NULL;
        const rd_kafka_ConsumerGroupDescription_t **descs;
        const rd_kafka_ConsumerGroupDescription_t *desc = NULL;
        const rd_kafka_error_t *gerr;
        rd_kafka_resp_err_t err;
        cJSON *members, *p;
        size_t cnt = 0;
        char errbuf[512], *cid;
        int rc = -1, mock;

        /* An admin client of its own: a consumer handle with the group's
         * group.id that has sent an admin request never finishes closing
         * (librdkafka 2.0). */
        conf = sf_kafka_conf_new(&cfg->kafka, bootstraps, "syncfleet-lag",
                                 errstr, errstr_size);
        if (!conf)
                return -1;
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errbuf, sizeof(errbuf));
        if (!rk) {
                sf_seterr(errstr, errstr_size, "%s", errbuf);
                rd_kafka_conf_destroy(conf);
                return -1;
        }
        conf = NULL; /* now owned by rk */
        q = rd_kafka_queue_new(rk);
        /* The embedded broker (librdkafka's mock cluster, as its cluster
         * id says) does not answer DescribeGroups, and a request for it
         * would stay pending for good. */
        cid = rd_kafka_clusterid(rk, SF_LAG_TIMEOUT_MS);
        mock = cid && !strncmp(cid, "mockCluster", 11);
        if (cid)
                rd_kafka_mem_free(rk, cid);
        opts = rd_kafka_AdminOptions_new(
            rk, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS);
        if (rd_kafka_AdminOptions_set_request_timeout(opts, SF_LAG_TIMEOUT_MS,
                                                      errbuf, sizeof(errbuf))) {
                sf_seterr(errstr, errstr_size, "admin options: %s", errbuf);
                goto out;
        }
        if (mock) {
                rc = 1;
                goto out;
        }
        rd_kafka_DescribeConsumerGroups(rk, groups, 1, opts, q);
        ev = rd_kafka_queue_poll(q, SF_LAG_TIMEOUT_MS + 5000);
        if (!ev) {
                sf_seterr(errstr, errstr_size, "describing the group: %s",
                          rd_kafka_err2str(RD_KAFKA_RESP_ERR__TIMED_OUT));
                goto out;
        }
        err = rd_kafka_event_error(ev);
        if (!err) {
                descs = rd_kafka_DescribeConsumerGroups_result_groups(
                    rd_kafka_event_DescribeConsumerGroups_result(ev), &cnt);
                if (cnt != 1) {
                        sf_seterr(errstr, errstr_size,
                                  "describing the group: %zu answers for one "
                                  "group",
                                  cnt);
                        goto out;
                }
                desc = descs[0];
                gerr = rd_kafka_ConsumerGroupDescription_error(desc);
                err = gerr ? rd_kafka_error_code(gerr) : 0;
        }
        if (err == RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE) {
                rc = 1;
                goto out;
        }
        if (err) {
                sf_seterr(errstr, errstr_size, "describing the group: %s",
                          rd_kafka_err2str(err));
                goto out;
        }
        cJSON_AddStringToObject(
            g, "state",
            rd_kafka_consumer_group_state_name(
                rd_kafka_ConsumerGroupDescription_state(desc)));
        members = cJSON_AddArrayToObject(g, "members");
        for (size_t i = 0;
             i < rd_kafka_ConsumerGroupDescription_member_count(desc); i++) {
                const rd_kafka_MemberDescription_t *m =
                    rd_kafka_ConsumerGroupDescription_member(desc, i);
                const rd_kafka_topic_partition_list_t *mp =
                    rd_kafka_MemberAssignment_partitions(
                        rd_kafka_MemberDescription_assignment(m));
                const char *inst =
                    rd_kafka_MemberDescription_group_instance_id(m);
                cJSON *o = cJSON_CreateObject(), *a;

                cJSON_AddStringToObject(
                    o, "member_id", rd_kafka_MemberDescription_consumer_id(m));
                cJSON_AddStringToObject(
                    o, "client_id", rd_kafka_MemberDescription_client_id(m));
                cJSON_AddStringToObject(o, "host",
                                        rd_kafka_MemberDescription_host(m));
                if (inst)
                        cJSON_AddStringToObject(o, "instance_id", inst);
                else
                        cJSON_AddNullToObject(o, "instance_id");
                a = cJSON_AddArrayToObject(o, "partitions");
                for (int j = 0; mp && j < mp->cnt; j++)
                        if (!strcmp(mp->elems[j].topic, topic))
                                cJSON_AddItemToArray(
                                    a,
                                    cJSON_CreateNumber(mp->elems[j].partition));
                cJSON_AddItemToArray(members, o);
        }
        cJSON_ArrayForEach(p, parts)
        {
                const rd_kafka_MemberDescription_t *m = sf_lag_owner(
                    desc, topic,
                    (int32_t)cJSON_GetObjectItem(p, "partition")->valueint);

                if (m)
                        cJSON_AddStringToObject(
                            p, "member_id",
                            rd_kafka_MemberDescription_consumer_id(m));
                else
                        cJSON_AddNullToObject(p, "member_id");
        }
        rc = 0;
out:
        if (ev)
                rd_kafka_event_destroy(ev);
        rd_kafka_AdminOptions_destroy(opts);
        rd_kafka_queue_destroy(q);
        rd_kafka_destroy(rk);
        return rc;
}

/* Lag of GROUP on TOPIC; adds one object per partition to ARR, and to G
 * the group's state and members where the cluster tells them, and returns
 * the total, or -1 with errstr. */
static int64_t sf_group_lag(const sf_config_t *cfg, const char *bootstraps,
                            const char *group, const char *topic, cJSON *g,
                            cJSON *arr, char *errstr, size_t errstr_size)
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
        /* The offsets are the answer; members that cannot be had are
         * said, not a failure. */
        if (sf_lag_describe(cfg, bootstraps, group, topic, g, arr, errbuf,
                            sizeof(errbuf)) < 0)
                fprintf(stderr, "syncfleet lag: group %s: %s\n", group, errbuf);
out:
        free(lags);
        rd_kafka_destroy(rk);
        return total;
}

/* The group's state and members, when the cluster told them: one line
 * for the group, one per member with its partitions. */
static void sf_lag_print_members(const cJSON *g, const char *group)
{
        const cJSON *state = cJSON_GetObjectItem(g, "state");
        const cJSON *members = cJSON_GetObjectItem(g, "members");
        const cJSON *m, *p;

        if (!cJSON_IsString(state) || !cJSON_IsArray(members))
                return;
        printf("%-36s state %s, %d member%s\n", group, state->valuestring,
               cJSON_GetArraySize(members),
               cJSON_GetArraySize(members) == 1 ? "" : "s");
        cJSON_ArrayForEach(m, members)
        {
                const cJSON *inst = cJSON_GetObjectItem(m, "instance_id");
                int first = 1;

                printf("%-36s member %s (client %s on %s", group,
                       cJSON_GetObjectItem(m, "member_id")->valuestring,
                       cJSON_GetObjectItem(m, "client_id")->valuestring,
                       cJSON_GetObjectItem(m, "host")->valuestring);
                if (cJSON_IsString(inst))
                        printf(", instance %s", inst->valuestring);
                printf("): partitions");
                cJSON_ArrayForEach(p, cJSON_GetObjectItem(m, "partitions"))
                {
                        printf("%s%d", first ? " " : ",", p->valueint);
                        first = 0;
                }
                printf("%s\n", first ? " none" : "");
        }
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
                            sf_group_lag(cfg, bootstraps, group, lg[i].topic, g,
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
                                /* refused credentials: logged, and the
                                 * same for every group */
                                if (sf_kafka_failure(NULL, 0))
                                        break;
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
                                sf_lag_print_members(g, group);
                        }
                        free(group);
                }
        }
        if (json) {
                char *s = sf_json_print(doc, 0);

                printf("%s\n", s);
                free(s);
        }
        cJSON_Delete(doc);
        sf_config_destroy(cfg);
        return rc;
}
