/*
 * The dead-letter destination every component writes through, and what
 * the readers of dead letters share: entries, filters and times.
 */
#include "dlq_int.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "envelope.h"
#include "log.h"
#include "redact.h"
#include "sf.h"
#include "text.h"

/* How long a put may wait for room in the producer's queue. */
#define SF_DLQ_SEND_TIMEOUT_MS 1000

struct sf_dlq {
        const sf_config_t *cfg;
        sf_producer_t *producer; /* topic; borrowed */
        sf_dlq_store_t *store;   /* embedded */
};

sf_dlq_t *sf_dlq_open(const sf_config_t *cfg, sf_producer_t *producer,
                      char *errstr, size_t errstr_size)
{
        sf_dlq_t *d = sf_calloc(1, sizeof(*d));

        d->cfg = cfg;
        if (cfg->kafka.embedded) {
                d->store = sf_dlq_store_create(cfg, errstr, errstr_size);
                if (!d->store) {
                        free(d);
                        return NULL;
                }
                return d;
        }
        if (!producer) {
                sf_seterr(errstr, errstr_size,
                          "the DLQ topic %s needs a producer", cfg->topic_dlq);
                free(d);
                return NULL;
        }
        d->producer = producer;
        return d;
}

int sf_dlq_is_store(const sf_dlq_t *d)
{
        return d && d->store;
}

/* The DLQ headers for DL, plus its event id when the record's own headers
 * do not carry one. */
static rd_kafka_headers_t *sf_dlq_topic_headers(const sf_dead_letter_t *dl,
                                                const char *error)
{
        rd_kafka_headers_t *h =
            sf_dlq_headers_new(dl->headers, dl->origin_topic, dl->partition,
                               dl->offset, error, dl->stage, dl->attempts);
        const void *v;
        size_t len;

        if (dl->event_id &&
            rd_kafka_header_get_last(h, SF_HDR_EVENT_ID, &v, &len))
                rd_kafka_header_add(h, SF_HDR_EVENT_ID, -1, dl->event_id, -1);
        return h;
}

int sf_dlq_too_large(rd_kafka_resp_err_t err)
{
        return err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
               err == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE;
}

/* Sends DL to the topic without its value, REASON saying why; without
 * its key too when even that is too large. */
static int sf_dlq_send_slim(sf_dlq_t *d, const sf_dead_letter_t *dl,
                            const char *reason, void *opaque, char *errstr,
                            size_t errstr_size)
{
        char *error =
            sf_asprintf("%s (its value of %zu bytes is not in the "
                        "DLQ: %s)",
                        dl->error ? dl->error : "", dl->value_len, reason);
        int rc = sf_producer_send(
            d->producer, d->cfg->topic_dlq, RD_KAFKA_PARTITION_UA, dl->key,
            dl->key_len, NULL, 0, sf_dlq_topic_headers(dl, error), opaque,
            SF_DLQ_SEND_TIMEOUT_MS, errstr, errstr_size);

        if (rc && sf_producer_last_error(d->producer) ==
                      RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
                char *e2 = sf_asprintf("%s (nor its key of %zu bytes)", error,
                                       dl->key_len);

                rc = sf_producer_send(
                    d->producer, d->cfg->topic_dlq, RD_KAFKA_PARTITION_UA, NULL,
                    0, NULL, 0, sf_dlq_topic_headers(dl, e2), opaque,
                    SF_DLQ_SEND_TIMEOUT_MS, errstr, errstr_size);
                free(e2);
        }
        free(error);
        return rc;
}

/* A record that can never be sent as it is goes without its value, and
 * the component goes on instead of trying it for ever: one larger than
 * any record syncfleet keeps, one the producer refuses, one the broker
 * refused (dl->without_value). */
static int sf_dlq_send(sf_dlq_t *d, const sf_dead_letter_t *dl, void *opaque,
                       char *errstr, size_t errstr_size)
{
        char limit[32] = "?", *reason;
        size_t limit_len = sizeof(limit);
        int rc, whole = 0;

        if (dl->without_value)
                rc = sf_dlq_send_slim(d, dl,
                                      "the broker refused it as larger than "
                                      "the DLQ topic's max.message.bytes",
                                      opaque, errstr, errstr_size);
        else if (dl->key_len + dl->value_len > SF_MAX_RECORD_BYTES)
                rc = sf_dlq_send_slim(d, dl,
                                      "larger than the 8388608 bytes "
                                      "syncfleet keeps of a record",
                                      opaque, errstr, errstr_size);
        else {
                whole = 1;
                rc = sf_producer_send(
                    d->producer, d->cfg->topic_dlq, RD_KAFKA_PARTITION_UA,
                    dl->key, dl->key_len, dl->value, dl->value_len,
                    sf_dlq_topic_headers(dl, dl->error), opaque,
                    SF_DLQ_SEND_TIMEOUT_MS, errstr, errstr_size);
        }
        if (rc && whole &&
            sf_producer_last_error(d->producer) ==
                RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
                rd_kafka_conf_get(
                    rd_kafka_conf(sf_producer_handle(d->producer)),
                    "message.max.bytes", limit, &limit_len);
                reason = sf_asprintf("larger than the producer's "
                                     "message.max.bytes (%s)",
                                     limit);
                rc = sf_dlq_send_slim(d, dl, reason, opaque, errstr,
                                      errstr_size);
                free(reason);
        }
        return rc ? -1 : SF_DLQ_PENDING;
}

int sf_dlq_put(sf_dlq_t *d, const sf_dead_letter_t *dl, void *opaque,
               char *errstr, size_t errstr_size)
{
        sf_dead_letter_t clean = *dl;
        char *redacted = sf_redact_dup(dl->error);
        char *error = sf_text_clean_dup(redacted, 0);
        int rc;

        /* the error quotes records and answers: no secret of the pipeline
         * (the store's error column is what a topic DLQ's syncfleet-error
         * header is) and valid UTF-8 only, in the header and the store */
        free(redacted);
        clean.error = error;
        if (!d->store)
                rc = sf_dlq_send(d, &clean, opaque, errstr, errstr_size);
        else if (sf_dlq_store_insert(d->store, &clean, errstr, errstr_size))
                rc = -1;
        else
                rc = SF_DLQ_STORED;
        free(error);
        return rc;
}

void sf_dlq_close(sf_dlq_t *d)
{
        if (!d)
                return;
        sf_dlq_store_close(d->store);
        free(d);
}

/* --- what the readers share ------------------------------------------ */

char *sf_dlq_record_action(const void *value, size_t value_len)
{
        cJSON *v, *kind, *action;
        char *out = NULL;

        if (!value || !value_len || value_len > SF_MAX_RECORD_BYTES ||
            ((const char *)value)[0] != '{')
                return NULL;
        v = sf_json_parse(value, value_len);
        kind = cJSON_GetObjectItemCaseSensitive(v, "kind");
        action = cJSON_GetObjectItemCaseSensitive(v, "action");
        if (cJSON_IsString(kind) && cJSON_IsString(action))
                out = sf_strdup(action->valuestring);
        cJSON_Delete(v);
        return out;
}

char *sf_dlq_header_str(const rd_kafka_headers_t *h, const char *name)
{
        const void *v;
        size_t len;

        if (!h || rd_kafka_header_get_last(h, name, &v, &len) || !v)
                return NULL;
        return sf_strndup(v, len);
}

static int sf_dlq_is_dlq_header(const char *name)
{
        static const char *const names[] = {
            SF_HDR_ERROR,  SF_HDR_STAGE,     SF_HDR_ATTEMPTS,
            SF_HDR_ORIGIN, SF_HDR_FAILED_AT,
        };

        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
                if (!strcmp(name, names[i]))
                        return 1;
        return 0;
}

rd_kafka_headers_t *sf_dlq_own_headers(const rd_kafka_headers_t *h)
{
        rd_kafka_headers_t *own;
        const char *name;
        const void *v;
        size_t len;

        if (!h)
                return NULL;
        own = rd_kafka_headers_new(rd_kafka_header_cnt(h));
        for (size_t i = 0; !rd_kafka_header_get_all(h, i, &name, &v, &len); i++)
                if (!sf_dlq_is_dlq_header(name))
                        rd_kafka_header_add(own, name, -1, v,
                                            v ? (ssize_t)len : 0);
        return own;
}

void sf_dlq_entry_clear(sf_dlq_entry_t *e)
{
        if (!e)
                return;
        free(e->stage);
        free(e->action);
        free(e->error);
        free(e->origin_topic);
        free(e->event_id);
        free(e->key);
        free(e->value);
        if (e->headers)
                rd_kafka_headers_destroy(e->headers);
        memset(e, 0, sizeof(*e));
}

void sf_dlq_entry_id(const sf_dlq_entry_t *e, char *buf, size_t size)
{
        if (e->id >= 0)
                snprintf(buf, size, "%" PRId64, e->id);
        else
                snprintf(buf, size, "%" PRId32 ":%" PRId64, e->dlq_partition,
                         e->dlq_offset);
}

int sf_dlq_filter_match(const sf_dlq_filter_t *f, const sf_dlq_entry_t *e)
{
        char id[64];
        int found = 0;

        if (!f)
                return 1;
        if (f->action && (!e->action || strcmp(f->action, e->action)))
                return 0;
        if (f->stage && (!e->stage || strcmp(f->stage, e->stage)))
                return 0;
        if (f->error && (!e->error || !strcasestr(e->error, f->error)))
                return 0;
        if (f->since_ms != INT64_MIN &&
            (e->failed_at_ms < 0 || e->failed_at_ms < f->since_ms))
                return 0;
        if (f->until_ms != INT64_MAX &&
            (e->failed_at_ms < 0 || e->failed_at_ms >= f->until_ms))
                return 0;
        if (!f->id_cnt)
                return 1;
        sf_dlq_entry_id(e, id, sizeof(id));
        for (size_t i = 0; i < f->id_cnt && !found; i++)
                found = !strcmp(f->ids[i], id);
        return found;
}

void sf_dlq_time_format(int64_t ms, char *buf, size_t size)
{
        time_t secs = (time_t)(ms / 1000);
        struct tm tm;
        char when[32];

        if (ms < 0) {
                snprintf(buf, size, "unknown");
                return;
        }
        gmtime_r(&secs, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf, size, "%s.%03dZ", when, (int)(ms % 1000));
}

/* Exactly N digits at *P, advancing it; -1 when they are not there. */
static int sf_digits(const char **p, int n)
{
        int v = 0;

        for (int i = 0; i < n; i++, (*p)++) {
                if (!isdigit((unsigned char)**p))
                        return -1;
                v = v * 10 + (**p - '0');
        }
        return v;
}

static int sf_time_relative(const char *s, int64_t now_ms, int64_t *out_ms)
{
        char *end;
        long long n;
        int64_t unit;

        if (!isdigit((unsigned char)*s))
                return -1;
        n = strtoll(s, &end, 10);
        if (end[0] == '\0' || end[1] != '\0')
                return -1;
        switch (end[0]) {
        case 's':
                unit = 1000;
                break;
        case 'm':
                unit = 60 * 1000;
                break;
        case 'h':
                unit = 3600 * 1000;
                break;
        case 'd':
                unit = 24 * 3600 * 1000;
                break;
        default:
                return -1;
        }
        if (n < 0 || n > INT64_MAX / unit / 2)
                return -1;
        *out_ms = now_ms - n * unit;
        return 0;
}

int sf_dlq_time_parse(const char *s, int64_t now_ms, int64_t *out_ms)
{
        struct tm tm;
        const char *p = s;
        int64_t ms = 0, zone_min = 0;
        time_t secs;

        if (!s || !*s)
                return -1;
        if (!sf_time_relative(s, now_ms, out_ms))
                return 0;
        memset(&tm, 0, sizeof(tm));
        tm.tm_year = sf_digits(&p, 4) - 1900;
        if (tm.tm_year < -1900 || *p++ != '-')
                return -1;
        tm.tm_mon = sf_digits(&p, 2) - 1;
        if (tm.tm_mon < 0 || tm.tm_mon > 11 || *p++ != '-')
                return -1;
        tm.tm_mday = sf_digits(&p, 2);
        if (tm.tm_mday < 1 || tm.tm_mday > 31)
                return -1;
        if (*p == 'T' || *p == ' ') {
                p++;
                tm.tm_hour = sf_digits(&p, 2);
                if (tm.tm_hour < 0 || tm.tm_hour > 23 || *p++ != ':')
                        return -1;
                tm.tm_min = sf_digits(&p, 2);
                if (tm.tm_min < 0 || tm.tm_min > 59)
                        return -1;
                if (*p == ':') {
                        p++;
                        tm.tm_sec = sf_digits(&p, 2);
                        if (tm.tm_sec < 0 || tm.tm_sec > 60)
                                return -1;
                        if (*p == '.') {
                                int64_t scale = 100;

                                p++;
                                if (!isdigit((unsigned char)*p))
                                        return -1;
                                for (; isdigit((unsigned char)*p); p++) {
                                        ms += (*p - '0') * scale;
                                        scale /= 10;
                                }
                        }
                }
                if (*p == 'Z') {
                        p++;
                } else if (*p == '+' || *p == '-') {
                        int sign = *p++ == '-' ? -1 : 1;
                        int hh = sf_digits(&p, 2), mm;

                        if (hh < 0 || hh > 23 || *p++ != ':')
                                return -1;
                        mm = sf_digits(&p, 2);
                        if (mm < 0 || mm > 59)
                                return -1;
                        zone_min = sign * (hh * 60 + mm);
                }
        }
        if (*p)
                return -1;
        secs = timegm(&tm);
        if (secs == (time_t)-1)
                return -1;
        *out_ms = (int64_t)secs * 1000 + ms - zone_min * 60 * 1000;
        return 0;
}
