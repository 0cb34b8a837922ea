/*
 * Client configuration shared by every producer and consumer, and the
 * headers a dead-lettered record carries.
 */
#include "kafka.h"

#include <string.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"
#include "redact.h"
#include "sf.h"

/* librdkafka logs with syslog levels from its own threads; sf_log is
 * thread-safe, so they go straight into the process log. */
static void sf_kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac,
                            const char *buf)
{
        sf_log_level_t lvl;

        if (level <= 3)
                lvl = SF_LOG_ERROR;
        else if (level == 4)
                lvl = SF_LOG_WARN;
        else if (level <= 6)
                lvl = SF_LOG_INFO;
        else
                lvl = SF_LOG_DEBUG;
        /* kafka.config goes to every client of the pipeline, so a consumer
         * property reaching a producer (and the reverse) is expected, not
         * worth a warning per client. */
        if (!strcmp(fac, "CONFWARN") && strstr(buf, "will be ignored by"))
                lvl = SF_LOG_DEBUG;
        /* A consumer whose position the broker no longer holds skips to
         * the oldest record it has: the records in between are gone. */
        if (!strcmp(fac, "OFFSET") && strstr(buf, "offset reset") &&
            strstr(buf, "out of range")) {
                sf_error("kafka",
                         "%s: records were lost before this consumer read "
                         "them: the broker no longer holds them (its "
                         "retention; the embedded broker keeps about 5 MiB "
                         "per partition): %s",
                         rd_kafka_name(rk), buf);
                return;
        }
        if (sf_log_enabled(lvl))
                sf_log(lvl, "kafka", "%s: %s: %s", rd_kafka_name(rk), fac, buf);
}

/* Client-wide errors. Most are transient (a broker went away) and
 * librdkafka recovers by itself; a fatal error (the idempotent producer
 * lost its guarantees) makes every later call fail, which callers see. */
static void sf_kafka_error_cb(rd_kafka_t *rk, int err, const char *reason,
                              void *opaque)
{
        (void)opaque;
        if (err == RD_KAFKA_RESP_ERR__FATAL) {
                char fatal[512];
                rd_kafka_resp_err_t orig =
                    rd_kafka_fatal_error(rk, fatal, sizeof(fatal));

                sf_error("kafka", "%s: fatal error: %s: %s", rd_kafka_name(rk),
                         rd_kafka_err2str(orig), fatal);
                return;
        }
        /* A failed connection was logged already, as librdkafka's FAIL. */
        if (err == RD_KAFKA_RESP_ERR__TRANSPORT) {
                sf_debug("kafka", "%s: %s: %s", rd_kafka_name(rk),
                         rd_kafka_err2str((rd_kafka_resp_err_t)err), reason);
                return;
        }
        sf_warn("kafka", "%s: %s: %s", rd_kafka_name(rk),
                rd_kafka_err2str((rd_kafka_resp_err_t)err), reason);
}

rd_kafka_conf_t *sf_kafka_conf_new(const sf_kafka_cfg_t *k,
                                   const char *bootstraps,
                                   const char *client_id, char *errstr,
                                   size_t errstr_size)
{
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        char err[512];

        rd_kafka_conf_set_log_cb(conf, sf_kafka_log_cb);
        rd_kafka_conf_set_error_cb(conf, sf_kafka_error_cb);
        for (size_t i = 0; k && i < k->config_cnt; i++) {
                const sf_kv_t *kv = &k->config[i];

                if (rd_kafka_conf_set(conf, kv->key, kv->value, err,
                                      sizeof(err)) != RD_KAFKA_CONF_OK) {
                        sf_seterr(errstr, errstr_size, "kafka.config: %s: %s",
                                  kv->key, err);
                        goto fail;
                }
        }
        if (bootstraps &&
            rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, err,
                              sizeof(err)) != RD_KAFKA_CONF_OK) {
                sf_seterr(errstr, errstr_size, "bootstrap.servers: %s", err);
                goto fail;
        }
        if (client_id && rd_kafka_conf_set(conf, "client.id", client_id, err,
                                           sizeof(err)) != RD_KAFKA_CONF_OK) {
                sf_seterr(errstr, errstr_size, "client.id: %s", err);
                goto fail;
        }
        return conf;
fail:
        rd_kafka_conf_destroy(conf);
        return NULL;
}

/* The failure time as 2026-11-26T19:03:00.123Z. */
static void sf_iso8601_now(char *buf, size_t size)
{
        int64_t ms = sf_now_ms();
        time_t secs = (time_t)(ms / 1000);
        struct tm tm;
        char when[32];

        gmtime_r(&secs, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf, size, "%s.%03dZ", when, (int)(ms % 1000));
}

/* A record dead-lettered twice (replayed, failed again) keeps one set of
 * syncfleet-* headers, the latest, rather than two contradicting ones. */
rd_kafka_headers_t *sf_dlq_headers_new(const rd_kafka_headers_t *orig,
                                       const char *origin_topic,
                                       int32_t partition, int64_t offset,
                                       const char *error, const char *stage,
                                       int attempts)
{
        static const char *const names[] = {
            "syncfleet-error",  "syncfleet-stage",     "syncfleet-attempts",
            "syncfleet-origin", "syncfleet-failed-at",
        };
        rd_kafka_headers_t *hdrs =
            orig ? rd_kafka_headers_copy(orig) : rd_kafka_headers_new(5);
        char attempts_s[16], failed_at[40];
        char *origin, *safe_error = sf_redact_dup(error ? error : "");

        for (size_t i = 0; orig && i < sizeof(names) / sizeof(names[0]); i++)
                rd_kafka_header_remove(hdrs, names[i]);
        snprintf(attempts_s, sizeof(attempts_s), "%d", attempts);
        origin =
            sf_asprintf("%s/%" PRId32 "/%" PRId64,
                        origin_topic ? origin_topic : "", partition, offset);
        sf_iso8601_now(failed_at, sizeof(failed_at));
        /* every syncfleet-error header is made here: no secret in it */
        rd_kafka_header_add(hdrs, names[0], -1, safe_error, -1);
        rd_kafka_header_add(hdrs, names[1], -1, stage ? stage : "", -1);
        rd_kafka_header_add(hdrs, names[2], -1, attempts_s, -1);
        rd_kafka_header_add(hdrs, names[3], -1, origin, -1);
        rd_kafka_header_add(hdrs, names[4], -1, failed_at, -1);
        free(origin);
        free(safe_error);
        return hdrs;
}
