/*
 * Client configuration shared by every producer and consumer, and the
 * headers a dead-lettered record carries.
 */
#include "kafka.h"

#include <string.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"
#include "redact.h"
#include "sf.h"

static int sf_kafka_refusal(const rd_kafka_t *rk, int err, const char *why);

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
        /* Refused credentials reach the error callback only when the
         * application polls, which a blocking call (metadata, an admin
         * request) does not; the broker thread logs them at once. */
        if (level <= 3 && !strcmp(fac, "FAIL")) {
                const char *why = buf;

                /* "[thrd:NAME]: " says which librdkafka thread logged */
                if (!strncmp(why, "[thrd:", 6) && strstr(why, "]: "))
                        why = strstr(why, "]: ") + 3;
                sf_kafka_refusal(rk, 0, why);
        }
}

/* The first client failure that retrying cannot mend, for the process to
 * stop with (sf_kafka_failure). */
static pthread_mutex_t sf_kafka_failure_lock = PTHREAD_MUTEX_INITIALIZER;
static char sf_kafka_failure_msg[1024];

int sf_kafka_failure(char *buf, size_t size)
{
        int failed;

        pthread_mutex_lock(&sf_kafka_failure_lock);
        failed = sf_kafka_failure_msg[0] != '\0';
        if (failed && buf && size)
                snprintf(buf, size, "%s", sf_kafka_failure_msg);
        pthread_mutex_unlock(&sf_kafka_failure_lock);
        return failed;
}

rd_kafka_resp_err_t sf_kafka_metadata(rd_kafka_t *rk, int all_topics,
                                      rd_kafka_topic_t *only,
                                      const struct rd_kafka_metadata **md,
                                      int timeout_ms)
{
        int64_t deadline = sf_now_ms() + timeout_ms;
        rd_kafka_resp_err_t err;

        for (;;) {
                int64_t left = deadline - sf_now_ms();

                err = rd_kafka_metadata(
                    rk, all_topics, only, md,
                    left > 500 ? 500 : (left > 0 ? (int)left : 1));
                if (err && sf_kafka_failure(NULL, 0))
                        return RD_KAFKA_RESP_ERR__AUTHENTICATION;
                if (!err || (err != RD_KAFKA_RESP_ERR__TIMED_OUT &&
                             err != RD_KAFKA_RESP_ERR__TRANSPORT))
                        return err;
                left = deadline - sf_now_ms();
                if (left <= 0)
                        return err;
                /* no broker reachable yet: an answer at once, not a wait */
                if (err == RD_KAFKA_RESP_ERR__TRANSPORT) {
                        struct timespec ts = {0, (left < 100 ? left : 100) *
                                                     1000000L};

                        nanosleep(&ts, NULL);
                }
        }
}

/* Records the first failure for good (WHAT: REASON (check CHECK)HINT),
 * logs it once and asks the process to stop. */
static void sf_kafka_refused(const rd_kafka_t *rk, const char *what,
                             const char *reason, const char *check,
                             const char *hint)
{
        int first;

        pthread_mutex_lock(&sf_kafka_failure_lock);
        first = sf_kafka_failure_msg[0] == '\0';
        if (first)
                snprintf(sf_kafka_failure_msg, sizeof(sf_kafka_failure_msg),
                         "%s: %s (check %s)%s", what, reason, check, hint);
        pthread_mutex_unlock(&sf_kafka_failure_lock);
        if (first)
                sf_error("kafka", "%s: %s; stopping", rd_kafka_name(rk),
                         sf_kafka_failure_msg);
        sf_request_stop();
}

/* The brokers refused the client's credentials. librdkafka would try
 * again forever, and every attempt fails the same way: the component
 * stops instead, saying why, so that a wrong password shows at once (and a
 * pod restarts with the corrected secret) rather than as a pipeline that
 * silently moves nothing. REASON names the broker and the mechanism, never
 * the password. */
static void sf_kafka_auth_failed(const rd_kafka_t *rk, const char *reason)
{
        char mech[64] = "", hint[400] = "";
        size_t mech_size = sizeof(mech);

        if (rd_kafka_conf_get(rd_kafka_conf((rd_kafka_t *)rk),
                              "sasl.mechanisms", mech,
                              &mech_size) != RD_KAFKA_CONF_OK)
                mech[0] = '\0';
        /* librdkafka before 2.6.1 repeats the client nonce in the SCRAM
         * final message; Kafka 4 brokers check it and refuse every login,
         * whatever the password. */
        if (!strncmp(mech, "SCRAM-", 6) && rd_kafka_version() < 0x020601ff)
                snprintf(hint, sizeof(hint),
                         "; if the password is right, the brokers may run "
                         "Apache Kafka 4.0 or later, with which librdkafka "
                         "%s (this syncfleet's) cannot log in with SCRAM "
                         "(librdkafka 2.6.1 can): use sasl.mechanisms PLAIN "
                         "over SASL_SSL there",
                         rd_kafka_version_str());
        sf_kafka_refused(rk, "kafka authentication failed", reason,
                         "kafka.config sasl.mechanisms, sasl.username and "
                         "sasl.password",
                         hint);
}

/* The client does not trust the brokers' certificate: every connection
 * would fail the same way, so the component stops, as for refused
 * credentials. */
static void sf_kafka_tls_failed(const rd_kafka_t *rk, const char *reason)
{
        sf_kafka_refused(rk, "kafka TLS handshake failed", reason,
                         "kafka.config ssl.ca.location, the CA that signed "
                         "the brokers' certificates, and that those name "
                         "the hosts in kafka.brokers",
                         "");
}

/* Stops the process (sf_kafka_auth_failed, sf_kafka_tls_failed) when WHY,
 * a failure that ERR (0 for a log line, which has no code) stands for,
 * is refused credentials or an untrusted broker certificate: 1 then. A
 * login cut short by the client's own shutdown is not a refusal. */
static int sf_kafka_refusal(const rd_kafka_t *rk, int err, const char *why)
{
        if (strstr(why, "Broker handle destroyed"))
                return 0;
        if (err == RD_KAFKA_RESP_ERR__AUTHENTICATION ||
            (!err && strstr(why, "SASL authentication error: "))) {
                sf_kafka_auth_failed(rk, why);
                return 1;
        }
        if ((!err || err == RD_KAFKA_RESP_ERR__SSL) &&
            strstr(why, "certificate verify failed")) {
                sf_kafka_tls_failed(rk, why);
                return 1;
        }
        return 0;
}

/* Client-wide errors. Most are transient (a broker went away) and
 * librdkafka recovers by itself; a fatal error (the idempotent producer
 * lost its guarantees) makes every later call fail, which callers see.
 * Refused credentials and untrusted broker certificates stop the process
 * (sf_kafka_refused). */
static void sf_kafka_error_cb(rd_kafka_t *rk, int err, const char *reason,
                              void *opaque)
{
        (void)opaque;
        if ((err == RD_KAFKA_RESP_ERR__AUTHENTICATION ||
             err == RD_KAFKA_RESP_ERR__SSL) &&
            sf_kafka_refusal(rk, err, reason))
                return;
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
