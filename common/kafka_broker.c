/*
 * The embedded broker (librdkafka's mock cluster) and topic creation.
 *
 * The mock cluster is a real Kafka-protocol server on loopback, run by
 * threads of a host rd_kafka_t that does nothing else. It keeps data in
 * memory only and does not answer CreateTopics, so topics are created
 * through its own API; a real cluster gets them through the admin API.
 */
#include "kafka.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka_mock.h>

#include "log.h"
#include "sf.h"

/* How long the admin API may take to create the topics on a real cluster
 * (the controller may have to elect leaders for every partition). */
#define SF_CREATE_TOPICS_TIMEOUT_MS 30000

struct sf_broker {
        rd_kafka_t *host;
        rd_kafka_mock_cluster_t *mcluster;
        char *bootstraps;
};

sf_broker_t *sf_broker_new(int broker_cnt, char *errstr, size_t errstr_size)
{
        sf_broker_t *b = NULL;
        rd_kafka_conf_t *conf = NULL;
        char err[512];

        if (broker_cnt < 1) {
                sf_seterr(errstr, errstr_size,
                          "the embedded broker needs at least one broker, "
                          "not %d",
                          broker_cnt);
                return NULL;
        }
        b = sf_calloc(1, sizeof(*b));
        conf = sf_kafka_conf_new(NULL, NULL, "syncfleet-broker", errstr,
                                 errstr_size);
        if (!conf)
                goto fail;
        /* The host client has no bootstrap.servers of its own and would
         * warn about it; only its warnings and errors are of interest. */
        if (rd_kafka_conf_set(conf, "log_level", "4", err, sizeof(err)) !=
            RD_KAFKA_CONF_OK) {
                sf_seterr(errstr, errstr_size, "log_level: %s", err);
                goto fail;
        }
        b->host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
        if (!b->host) {
                sf_seterr(errstr, errstr_size,
                          "cannot create the embedded broker's client: %s",
                          err);
                goto fail;
        }
        conf = NULL; /* now owned by b->host */
        b->mcluster = rd_kafka_mock_cluster_new(b->host, broker_cnt);
        if (!b->mcluster) {
                sf_seterr(errstr, errstr_size,
                          "cannot start the embedded broker (%d broker%s) "
                          "on loopback",
                          broker_cnt, broker_cnt == 1 ? "" : "s");
                goto fail;
        }
        b->bootstraps =
            sf_strdup(rd_kafka_mock_cluster_bootstraps(b->mcluster));
        return b;
fail:
        if (conf)
                rd_kafka_conf_destroy(conf);
        sf_broker_destroy(b);
        return NULL;
}

const char *sf_broker_bootstraps(const sf_broker_t *b)
{
        return b->bootstraps;
}

int sf_broker_create_topic(sf_broker_t *b, const char *topic, int partitions,
                           char *errstr, size_t errstr_size)
{
        rd_kafka_resp_err_t err;

        if (partitions < 1) {
                sf_seterr(errstr, errstr_size,
                          "cannot create topic %s: %d partitions; at least "
                          "one is needed",
                          topic, partitions);
                return -1;
        }
        err = rd_kafka_mock_topic_create(b->mcluster, topic, partitions, 1);
        if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
                return 0;
        if (err) {
                sf_seterr(errstr, errstr_size, "cannot create topic %s: %s",
                          topic, rd_kafka_err2str(err));
                return -1;
        }
        return 0;
}

void sf_broker_destroy(sf_broker_t *b)
{
        if (!b)
                return;
        if (b->mcluster)
                rd_kafka_mock_cluster_destroy(b->mcluster);
        if (b->host)
                rd_kafka_destroy(b->host);
        free(b->bootstraps);
        free(b);
}

/* What the cluster's metadata shows of one of the pipeline's topics. */
typedef struct sf_topic_seen {
        int exists;
        int partitions;
        int replicas; /* of its first partition */
} sf_topic_seen_t;

/* The replication a new topic gets and the min.insync.replicas set on it. */
typedef struct sf_topic_plan {
        int partitions;
        int replication;
        int min_insync;
} sf_topic_plan_t;

/* Reads the CreateTopics result: topics that already exist are fine (one
 * created meanwhile by another component, say), any other failure is
 * reported with the topic's name and the broker's reason. */
static int sf_create_topics_result(rd_kafka_event_t *ev,
                                   const char *const *topics, size_t topic_cnt,
                                   const sf_topic_plan_t *plan,
                                   const char *bootstraps, char *errstr,
                                   size_t errstr_size)
{
        const rd_kafka_CreateTopics_result_t *res;
        const rd_kafka_topic_result_t **results;
        rd_kafka_resp_err_t err = rd_kafka_event_error(ev);
        sf_buf_t msg;
        size_t cnt;
        int rc = 0;

        sf_buf_init(&msg, 4096);
        if (err) {
                for (size_t i = 0; i < topic_cnt; i++)
                        sf_buf_printf(&msg, "%s%s", i ? ", " : "", topics[i]);
                sf_seterr(errstr, errstr_size,
                          "cannot create topics %s at %s: %s (%s)", msg.data,
                          bootstraps, rd_kafka_err2str(err),
                          rd_kafka_event_error_string(ev));
                sf_buf_free(&msg);
                return -1;
        }
        res = rd_kafka_event_CreateTopics_result(ev);
        results = rd_kafka_CreateTopics_result_topics(res, &cnt);
        for (size_t i = 0; i < cnt; i++) {
                const char *name = rd_kafka_topic_result_name(results[i]);
                const char *detail =
                    rd_kafka_topic_result_error_string(results[i]);

                err = rd_kafka_topic_result_error(results[i]);
                if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                        sf_info("kafka", "topic %s exists", name);
                        continue;
                }
                if (!err) {
                        sf_info("kafka",
                                "topic %s created: %d partitions, "
                                "replication factor %d, "
                                "min.insync.replicas %d",
                                name, plan->partitions, plan->replication,
                                plan->min_insync);
                        continue;
                }
                sf_buf_printf(&msg, "%scannot create topic %s: %s",
                              rc ? "; " : "", name, rd_kafka_err2str(err));
                if (detail && *detail && strcmp(detail, rd_kafka_err2str(err)))
                        sf_buf_printf(&msg, " (%s)", detail);
                rc = -1;
        }
        if (rc)
                sf_seterr(errstr, errstr_size, "%s", msg.data);
        sf_buf_free(&msg);
        return rc;
}

/* Fills SEEN for TOPICS from the cluster's metadata and *BROKER_CNT with
 * how many brokers it has. -1 with errstr when there is no metadata. */
static int sf_topics_seen(rd_kafka_t *rk, const char *const *topics,
                          size_t topic_cnt, sf_topic_seen_t *seen,
                          int *broker_cnt, const char *bootstraps, char *errstr,
                          size_t errstr_size)
{
        const rd_kafka_metadata_t *md = NULL;
        rd_kafka_resp_err_t err;
        char err_why[1024];

        err = sf_kafka_metadata(rk, 1, NULL, &md, 10000);
        if (err && sf_kafka_failure(err_why, sizeof(err_why))) {
                sf_seterr(errstr, errstr_size, "%s", err_why);
                return -1;
        }
        if (err) {
                sf_seterr(errstr, errstr_size,
                          "cannot read the topics of the cluster at %s: %s",
                          bootstraps, rd_kafka_err2str(err));
                return -1;
        }
        *broker_cnt = md->broker_cnt;
        for (size_t i = 0; i < topic_cnt; i++) {
                memset(&seen[i], 0, sizeof(seen[i]));
                for (int t = 0; t < md->topic_cnt; t++) {
                        const rd_kafka_metadata_topic_t *mt = &md->topics[t];

                        if (mt->err || strcmp(mt->topic, topics[i]))
                                continue;
                        seen[i].exists = 1;
                        seen[i].partitions = mt->partition_cnt;
                        seen[i].replicas = mt->partition_cnt
                                               ? mt->partitions[0].replica_cnt
                                               : 0;
                }
        }
        rd_kafka_metadata_destroy(md);
        return 0;
}

/* An existing topic is used as it is; what falls short of the pipeline's
 * settings is said, since it limits the consumers that get work (fewer
 * partitions) or what survives a broker's loss (fewer replicas). */
static void sf_topic_check(const sf_kafka_cfg_t *k, const char *topic,
                           const sf_topic_seen_t *seen)
{
        if (seen->partitions < k->partitions)
                sf_warn("kafka",
                        "topic %s has %d partition%s, fewer than the %d of "
                        "kafka.partitions: it is used as it is, and at "
                        "most %d consumer%s of a group get records from it",
                        topic, seen->partitions,
                        seen->partitions == 1 ? "" : "s", k->partitions,
                        seen->partitions, seen->partitions == 1 ? "" : "s");
        if (k->replication_factor > 0 && seen->replicas < k->replication_factor)
                sf_warn("kafka",
                        "topic %s has replication factor %d, less than the "
                        "%d of kafka.replication_factor: it is used as it is",
                        topic, seen->replicas, k->replication_factor);
}

/* The replication and min.insync.replicas of new topics: the pipeline's,
 * else min(3, brokers) and min(2, replication), so one broker's loss
 * stops no write on a cluster of three or more. */
static int sf_topic_plan(const sf_kafka_cfg_t *k, int broker_cnt,
                         sf_topic_plan_t *plan, char *errstr,
                         size_t errstr_size)
{
        plan->partitions = k->partitions;
        plan->replication = k->replication_factor > 0 ? k->replication_factor
                            : broker_cnt < 3          ? broker_cnt
                                                      : 3;
        if (plan->replication < 1)
                plan->replication = 1;
        plan->min_insync = k->min_insync_replicas > 0 ? k->min_insync_replicas
                           : plan->replication < 2    ? plan->replication
                                                      : 2;
        if (plan->min_insync > plan->replication) {
                sf_seterr(errstr, errstr_size,
                          "kafka.min_insync_replicas %d is more than the "
                          "replication factor %d (the cluster has %d "
                          "broker%s): no write could succeed; set "
                          "kafka.replication_factor",
                          plan->min_insync, plan->replication, broker_cnt,
                          broker_cnt == 1 ? "" : "s");
                return -1;
        }
        return 0;
}

static int sf_create_topics_admin(const sf_kafka_cfg_t *k,
                                  const char *const *topics, size_t topic_cnt,
                                  const char *bootstraps, char *errstr,
                                  size_t errstr_size)
{
        rd_kafka_conf_t *conf;
        rd_kafka_t *rk = NULL;
        rd_kafka_NewTopic_t *newt[4] = {NULL};
        rd_kafka_AdminOptions_t *opts = NULL;
        rd_kafka_queue_t *q = NULL;
        rd_kafka_event_t *ev = NULL;
        const char *create[4] = {NULL};
        sf_topic_seen_t seen[4];
        sf_topic_plan_t plan;
        size_t missing = 0;
        int broker_cnt = 0;
        char err[512], misr[16], *cid;
        int rc = -1, mock;

        if (topic_cnt > 4) {
                sf_seterr(errstr, errstr_size, "too many topics to create");
                return -1;
        }
        conf = sf_kafka_conf_new(k, bootstraps, "syncfleet-admin", errstr,
                                 errstr_size);
        if (!conf)
                return -1;
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
        if (!rk) {
                rd_kafka_conf_destroy(conf);
                sf_seterr(errstr, errstr_size,
                          "cannot create an admin client for %s: %s",
                          bootstraps, err);
                return -1;
        }
        conf = NULL; /* now owned by rk */
        /* Only what is missing is created: a cluster that has the topics
         * (or one that does not answer CreateTopics, like a standalone
         * `syncfleet broker`) is not asked at all. */
        if (sf_topics_seen(rk, topics, topic_cnt, seen, &broker_cnt, bootstraps,
                           errstr, errstr_size))
                goto out;
        for (size_t i = 0; i < topic_cnt; i++) {
                if (seen[i].exists)
                        sf_topic_check(k, topics[i], &seen[i]);
                else
                        create[missing++] = topics[i];
        }
        if (!missing) {
                rc = 0;
                goto out;
        }
        /* A standalone `syncfleet broker` (librdkafka's mock cluster, as
         * its cluster id says) would leave CreateTopics unanswered until
         * the request times out: it creates the topics itself. */
        cid = rd_kafka_clusterid(rk, 0);
        mock = cid && !strncmp(cid, "mockCluster", 11);
        if (cid)
                rd_kafka_mem_free(rk, cid);
        if (mock) {
                sf_seterr(errstr, errstr_size,
                          "%s etc. are missing on the embedded broker at %s, "
                          "which creates its topics itself: start it with "
                          "--topic-prefix %s",
                          create[0], bootstraps, k->topic_prefix);
                goto out;
        }
        if (sf_topic_plan(k, broker_cnt, &plan, errstr, errstr_size))
                goto out;
        snprintf(misr, sizeof(misr), "%d", plan.min_insync);
        for (size_t i = 0; i < missing; i++) {
                rd_kafka_resp_err_t cerr;

                newt[i] =
                    rd_kafka_NewTopic_new(create[i], plan.partitions,
                                          plan.replication, err, sizeof(err));
                if (!newt[i]) {
                        sf_seterr(errstr, errstr_size,
                                  "cannot create topic %s: %s", create[i], err);
                        goto out;
                }
                cerr = rd_kafka_NewTopic_set_config(
                    newt[i], "min.insync.replicas", misr);
                if (cerr) {
                        sf_seterr(errstr, errstr_size,
                                  "cannot create topic %s: "
                                  "min.insync.replicas: %s",
                                  create[i], rd_kafka_err2str(cerr));
                        goto out;
                }
        }
        opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
        if (rd_kafka_AdminOptions_set_request_timeout(
                opts, SF_CREATE_TOPICS_TIMEOUT_MS, err, sizeof(err)) ||
            rd_kafka_AdminOptions_set_operation_timeout(
                opts, SF_CREATE_TOPICS_TIMEOUT_MS, err, sizeof(err))) {
                sf_seterr(errstr, errstr_size, "admin options: %s", err);
                goto out;
        }
        q = rd_kafka_queue_new(rk);
        rd_kafka_CreateTopics(rk, newt, missing, opts, q);
        /* The request timeout above bounds the wait; the margin covers
         * the result's trip back through the queue. */
        ev = rd_kafka_queue_poll(q, SF_CREATE_TOPICS_TIMEOUT_MS + 5000);
        if (!ev) {
                sf_seterr(errstr, errstr_size,
                          "cannot create topics %s etc. at %s: %s", create[0],
                          bootstraps,
                          rd_kafka_err2str(RD_KAFKA_RESP_ERR__TIMED_OUT));
                goto out;
        }
        rc = sf_create_topics_result(ev, create, missing, &plan, bootstraps,
                                     errstr, errstr_size);
out:
        if (ev)
                rd_kafka_event_destroy(ev);
        if (q)
                rd_kafka_queue_destroy(q);
        if (opts)
                rd_kafka_AdminOptions_destroy(opts);
        for (size_t i = 0; i < topic_cnt; i++)
                if (newt[i])
                        rd_kafka_NewTopic_destroy(newt[i]);
        rd_kafka_destroy(rk);
        return rc;
}

int sf_kafka_create_topics(const sf_config_t *cfg, sf_broker_t *embedded,
                           const char *bootstraps, char *errstr,
                           size_t errstr_size)
{
        const char *const topics[4] = {
            cfg->topic_sync_log,
            cfg->topic_outbound_message,
            cfg->topic_outbound_webservice,
            cfg->topic_dlq,
        };

        for (size_t i = 0; i < 4; i++)
                if (!topics[i] || !*topics[i]) {
                        sf_seterr(errstr, errstr_size,
                                  "the pipeline's topic names are not set");
                        return -1;
                }
        if (!embedded)
                return sf_create_topics_admin(&cfg->kafka, topics, 4,
                                              bootstraps, errstr, errstr_size);
        for (size_t i = 0; i < 4; i++)
                if (sf_broker_create_topic(embedded, topics[i],
                                           cfg->kafka.partitions, errstr,
                                           errstr_size))
                        return -1;
        return 0;
}
