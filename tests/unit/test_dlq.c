/*
 * Unit tests for the state directory (common/state.c) and the dead-letter
 * destination (common/dlq*.c): the store keeps every field of a dead
 * letter and gives them back filtered and in order, drop and replay marks
 * act on one row, records at and over the size cap, two writers on one
 * file, threads opening a new store at the same moment, the lock refusing
 * a second holder with its exact sentence, a broker record left by a dead
 * process not believed, state_dir resolved and defaulted at load, times
 * parsed, and the topic path written and read back against the embedded
 * broker.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "dlq.h"
#include "envelope.h"
#include "kafka.h"
#include "sf.h"
#include "state.h"

static char tmpdir[64];

static int setup(void **state)
{
        (void)state;
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/sf-test-dlq-XXXXXX");
        return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
        char *cmd = sf_asprintf("rm -rf '%s'", tmpdir);
        int rc;

        (void)state;
        rc = system(cmd);
        free(cmd);
        return rc;
}

/* A pipeline whose state_dir is TMPDIR/SUB, on BROKERS. */
static sf_config_t *pipeline(const char *sub, const char *brokers)
{
        char *err = NULL;
        char *yaml = sf_asprintf("version: 1\n"
                                 "name: dlqtest\n"
                                 "state_dir: %s/%s\n"
                                 "kafka: { brokers: \"%s\", topic_prefix: dt, "
                                 "partitions: 2 }\n",
                                 tmpdir, sub, brokers);
        sf_config_t *cfg = sf_config_load_string("p.yaml", yaml, &err);

        if (!cfg)
                fail_msg("pipeline: %s", err ? err : "?");
        free(yaml);
        return cfg;
}

static const char *outbound(const char *action, int id)
{
        static char buf[256];

        snprintf(buf, sizeof(buf),
                 "{\"kind\":\"message\",\"action\":\"%s\",\"event\":"
                 "\"update\",\"table\":\"customers\",\"key\":{\"id\":%d}}",
                 action, id);
        return buf;
}

static void put(sf_dlq_t *d, const char *action, int id, const char *stage,
                const char *error, const rd_kafka_headers_t *h)
{
        char key[64], err[512];
        const char *value = outbound(action, id);
        sf_dead_letter_t dl = {
            .origin_topic = "dt.outbound.message",
            .partition = id % 2,
            .offset = 100 + id,
            .key = key,
            .value = value,
            .value_len = strlen(value),
            .headers = h,
            .error = error,
            .stage = stage,
            .attempts = id,
        };

        snprintf(key, sizeof(key), "{\"id\":%d}", id);
        dl.key_len = strlen(key);
        assert_int_equal(sf_dlq_put(d, &dl, NULL, err, sizeof(err)),
                         SF_DLQ_STORED);
}

typedef struct got {
        sf_dlq_entry_t v[16];
        size_t n;
} got_t;

static int collect(void *opaque, sf_dlq_entry_t *e)
{
        got_t *g = opaque;

        assert_true(g->n < 16);
        g->v[g->n++] = *e;
        return 0;
}

static void got_clear(got_t *g)
{
        for (size_t i = 0; i < g->n; i++)
                sf_dlq_entry_clear(&g->v[i]);
        g->n = 0;
}

static void list(sf_dlq_store_t *s, const sf_dlq_filter_t *f, int payload,
                 got_t *g)
{
        char err[512];

        got_clear(g);
        if (sf_dlq_store_each(s, f, payload, collect, g, err, sizeof(err)))
                fail_msg("store_each: %s", err);
}

static sf_dlq_filter_t all(void)
{
        sf_dlq_filter_t f = {.since_ms = INT64_MIN, .until_ms = INT64_MAX};

        return f;
}

static void test_store_put_list_filter_drop(void **state)
{
        sf_config_t *cfg = pipeline("store", "embedded");
        rd_kafka_headers_t *h = rd_kafka_headers_new(4);
        sf_dlq_t *d;
        sf_dlq_store_t *s;
        sf_dlq_filter_t f = all();
        char err[512], *ids[] = {"3", "1", "9"};
        const void *v;
        size_t len;
        got_t g = {.n = 0};
        int64_t before = sf_now_ms();

        (void)state;
        /* nothing dead-lettered yet: an empty store, and nothing created */
        s = sf_dlq_store_open(cfg, err, sizeof(err));
        assert_non_null(s);
        list(s, &f, 0, &g);
        assert_int_equal(g.n, 0);
        sf_dlq_store_close(s);
        assert_int_not_equal(access(cfg->state_dir, F_OK), 0);

        rd_kafka_header_add(h, SF_HDR_EVENT_ID, -1, "ev-1", -1);
        rd_kafka_header_add(h, "x-trace", -1, "t1", -1);
        rd_kafka_header_add(h, SF_HDR_ERROR, -1, "an older error", -1);
        d = sf_dlq_open(cfg, NULL, err, sizeof(err));
        assert_non_null(d);
        assert_true(sf_dlq_is_store(d));
        put(d, "to-shop", 1, "message", "HTTP 422: unprocessable", h);
        put(d, "to-crm", 2, "webservice", "HTTP 400: Bad email", NULL);
        put(d, "to-shop", 3, "message", "gave up after 3 attempts: 503", NULL);
        sf_dlq_close(d);

        s = sf_dlq_store_open(cfg, err, sizeof(err));
        assert_non_null(s);
        list(s, &f, 1, &g);
        assert_int_equal(g.n, 3);
        /* in the order they failed, every field as put */
        assert_int_equal(g.v[0].id, 1);
        assert_int_equal(g.v[1].id, 2);
        assert_int_equal(g.v[2].id, 3);
        assert_string_equal(g.v[0].action, "to-shop"); /* from the record */
        assert_string_equal(g.v[0].stage, "message");
        assert_string_equal(g.v[0].error, "HTTP 422: unprocessable");
        assert_int_equal(g.v[0].attempts, 1);
        assert_string_equal(g.v[0].origin_topic, "dt.outbound.message");
        assert_int_equal(g.v[0].origin_partition, 1);
        assert_int_equal(g.v[0].origin_offset, 101);
        assert_string_equal(g.v[0].event_id, "ev-1"); /* from the header */
        assert_string_equal(g.v[0].key, "{\"id\":1}");
        assert_string_equal(g.v[0].value, outbound("to-shop", 1));
        assert_int_equal(g.v[0].value_size, strlen(outbound("to-shop", 1)));
        assert_true(g.v[0].failed_at_ms >= before - 1000 &&
                    g.v[0].failed_at_ms <= sf_now_ms());
        assert_int_equal(g.v[0].replayed_at_ms, -1);
        /* its own headers come back, syncfleet's DLQ headers do not */
        assert_non_null(g.v[0].headers);
        assert_int_equal(rd_kafka_header_cnt(g.v[0].headers), 2);
        assert_int_equal(
            rd_kafka_header_get_last(g.v[0].headers, "x-trace", &v, &len), 0);
        assert_memory_equal(v, "t1", 2);
        assert_int_not_equal(
            rd_kafka_header_get_last(g.v[0].headers, SF_HDR_ERROR, &v, &len),
            0);
        assert_null(g.v[1].headers);
        assert_null(g.v[1].event_id);

        /* without the payload: no value, no headers, but whether it is
         * kept */
        list(s, &f, 0, &g);
        assert_int_equal(g.n, 3);
        assert_int_equal(g.v[0].value_kept, 1);
        assert_null(g.v[0].value);
        assert_null(g.v[0].headers);

        f.action = "to-shop";
        list(s, &f, 0, &g);
        assert_int_equal(g.n, 2);
        assert_int_equal(g.v[0].id, 1);
        assert_int_equal(g.v[1].id, 3);
        f = all();
        f.stage = "webservice";
        list(s, &f, 0, &g);
        assert_int_equal(g.n, 1);
        assert_int_equal(g.v[0].id, 2);
        f = all();
        f.error = "bad EMAIL"; /* any case */
        list(s, &f, 0, &g);
        assert_int_equal(g.n, 1);
        assert_int_equal(g.v[0].id, 2);
        f = all();
        f.ids = ids;
        f.id_cnt = 3;
        list(s, &f, 0, &g);
        assert_int_equal(g.n, 2);
        assert_int_equal(g.v[0].id, 1);
        assert_int_equal(g.v[1].id, 3);
        f.action = "to-crm"; /* every filter must match */
        list(s, &f, 0, &g);
        assert_int_equal(g.n, 0);
        f = all();
        f.until_ms = before - 1;
        list(s, &f, 0, &g);
        assert_int_equal(g.n, 0);
        f = all();
        f.since_ms = before - 1000;
        f.until_ms = sf_now_ms() + 1;
        list(s, &f, 0, &g);
        assert_int_equal(g.n, 3);

        /* replay's mark, and drop: one row each */
        assert_int_equal(sf_dlq_store_mark(s, 2, 12345, err, sizeof(err)), 0);
        f = all();
        list(s, &f, 0, &g);
        assert_int_equal(g.v[0].replayed_at_ms, -1);
        assert_int_equal(g.v[1].replayed_at_ms, 12345);
        assert_int_equal(g.v[2].replayed_at_ms, -1);
        assert_int_equal(sf_dlq_store_mark(s, 2, -1, err, sizeof(err)), 0);
        assert_int_equal(sf_dlq_store_remove(s, 1, err, sizeof(err)), 0);
        list(s, &f, 0, &g);
        assert_int_equal(g.n, 2);
        assert_int_equal(g.v[0].id, 2);
        assert_int_equal(g.v[0].replayed_at_ms, -1);
        assert_int_equal(g.v[1].id, 3);
        got_clear(&g);
        {
                sf_dlq_entry_t e;

                assert_int_equal(sf_dlq_store_get(s, 1, &e, err, sizeof(err)),
                                 1);
                assert_int_equal(sf_dlq_store_get(s, 3, &e, err, sizeof(err)),
                                 0);
                assert_string_equal(e.value, outbound("to-shop", 3));
                sf_dlq_entry_clear(&e);
        }
        sf_dlq_store_close(s);

        /* ids are never reused: a new dead letter after a drop is 4 */
        d = sf_dlq_open(cfg, NULL, err, sizeof(err));
        assert_int_equal(
            sf_dlq_store_remove((s = sf_dlq_store_open(cfg, err, sizeof(err))),
                                3, err, sizeof(err)),
            0);
        put(d, "to-shop", 5, "message", "again", NULL);
        f = all();
        list(s, &f, 0, &g);
        assert_int_equal(g.n, 2);
        assert_int_equal(g.v[1].id, 4);
        got_clear(&g);
        sf_dlq_store_close(s);
        sf_dlq_close(d);
        rd_kafka_headers_destroy(h);
        sf_config_destroy(cfg);
}

/* A record that needs more than the store takes is stored without its
 * value, saying so; one at the cap is stored whole. */
static void test_store_size_cap(void **state)
{
        sf_config_t *cfg = pipeline("cap", "embedded");
        size_t big = SF_MAX_RECORD_BYTES + 1;
        char *value = sf_malloc(big), err[512];
        const char key[] = "{\"id\":1}";
        sf_dead_letter_t dl = {
            .origin_topic = "dt.sync-log",
            .partition = 0,
            .offset = 7,
            .key = key,
            .key_len = strlen(key),
            .value = value,
            .error = "record larger than 8 MiB",
            .stage = "router",
            .attempts = 1,
        };
        sf_dlq_filter_t f = all();
        sf_dlq_t *d = sf_dlq_open(cfg, NULL, err, sizeof(err));
        sf_dlq_store_t *s;
        got_t g = {.n = 0};

        (void)state;
        assert_non_null(d);
        memset(value, 'v', big);
        dl.value_len = SF_MAX_RECORD_BYTES - dl.key_len; /* at the cap */
        assert_int_equal(sf_dlq_put(d, &dl, NULL, err, sizeof(err)),
                         SF_DLQ_STORED);
        dl.value_len = big; /* over it */
        assert_int_equal(sf_dlq_put(d, &dl, NULL, err, sizeof(err)),
                         SF_DLQ_STORED);
        s = sf_dlq_store_open(cfg, err, sizeof(err));
        list(s, &f, 1, &g);
        assert_int_equal(g.n, 2);
        assert_int_equal(g.v[0].value_len, SF_MAX_RECORD_BYTES - dl.key_len);
        assert_string_equal(g.v[0].error, "record larger than 8 MiB");
        assert_int_equal(g.v[0].value_kept, 1);
        assert_null(g.v[1].value);
        assert_int_equal(g.v[1].value_kept, 0);
        assert_int_equal(g.v[1].value_size, big);
        assert_string_equal(g.v[1].key, key);
        assert_string_equal(g.v[1].error,
                            "record larger than 8 MiB (its value of 8388609 "
                            "bytes is not kept: larger than the 8388608 bytes "
                            "the DLQ store takes)");
        got_clear(&g);
        sf_dlq_store_close(s);
        sf_dlq_close(d);
        free(value);
        sf_config_destroy(cfg);
}

/* Two writers (two components) on one store, interleaved: every dead
 * letter is there once, with its own id. */
static void test_store_two_writers(void **state)
{
        sf_config_t *cfg = pipeline("shared", "embedded");
        char err[512];
        sf_dlq_t *a = sf_dlq_open(cfg, NULL, err, sizeof(err));
        sf_dlq_t *b = sf_dlq_open(cfg, NULL, err, sizeof(err));
        sf_dlq_filter_t f = all();
        sf_dlq_store_t *s;
        got_t g = {.n = 0};

        (void)state;
        assert_non_null(a);
        assert_non_null(b);
        for (int i = 1; i <= 6; i++)
                put(i % 2 ? a : b, i % 2 ? "a" : "b", i, "message", "x", NULL);
        s = sf_dlq_store_open(cfg, err, sizeof(err));
        list(s, &f, 0, &g);
        assert_int_equal(g.n, 6);
        for (size_t i = 0; i < g.n; i++) {
                assert_int_equal(g.v[i].id, (int64_t)i + 1);
                assert_int_equal(g.v[i].attempts, (int)i + 1);
                assert_string_equal(g.v[i].action, i % 2 ? "b" : "a");
        }
        got_clear(&g);
        sf_dlq_store_close(s);
        sf_dlq_close(a);
        sf_dlq_close(b);
        sf_config_destroy(cfg);
}

typedef struct opener {
        const sf_config_t *cfg;
        pthread_barrier_t *go;
        int id;
        int ok;
        char err[512];
} opener_t;

static void *open_and_put(void *arg)
{
        opener_t *o = arg;
        sf_dlq_t *d;
        sf_dead_letter_t dl = {
            .origin_topic = "t",
            .offset = -1,
            .error = "e",
            .stage = "router",
            .attempts = 1,
        };

        pthread_barrier_wait(o->go);
        d = sf_dlq_open(o->cfg, NULL, o->err, sizeof(o->err));
        dl.partition = o->id;
        o->ok = d && sf_dlq_put(d, &dl, NULL, o->err, sizeof(o->err)) ==
                         SF_DLQ_STORED;
        sf_dlq_close(d);
        return NULL;
}

/* The components of `syncfleet run` open the store at the same moment,
 * the first time on a file that does not exist yet: each of them gets it. */
static void test_store_opened_at_once(void **state)
{
        enum { rounds = 40, threads = 4 };

        (void)state;
        for (int r = 0; r < rounds; r++) {
                char sub[32], err[512];
                sf_config_t *cfg;
                pthread_barrier_t go;
                pthread_t tid[threads];
                opener_t o[threads];
                sf_dlq_filter_t f = all();
                sf_dlq_store_t *s;
                got_t g = {.n = 0};

                snprintf(sub, sizeof(sub), "race%d", r);
                cfg = pipeline(sub, "embedded");
                pthread_barrier_init(&go, NULL, threads);
                for (int i = 0; i < threads; i++) {
                        o[i] = (opener_t){.cfg = cfg, .go = &go, .id = i};
                        pthread_create(&tid[i], NULL, open_and_put, &o[i]);
                }
                for (int i = 0; i < threads; i++) {
                        pthread_join(tid[i], NULL);
                        if (!o[i].ok)
                                fail_msg("round %d, opener %d: %s", r, i,
                                         o[i].err);
                }
                pthread_barrier_destroy(&go);
                s = sf_dlq_store_open(cfg, err, sizeof(err));
                list(s, &f, 0, &g);
                assert_int_equal(g.n, threads);
                got_clear(&g);
                sf_dlq_store_close(s);
                sf_config_destroy(cfg);
        }
}

static void test_lock_refuses_second_holder(void **state)
{
        sf_config_t *cfg = pipeline("locked", "embedded");
        char err[512], *want;
        sf_state_t *first, *second, *reader;
        struct stat st;

        (void)state;
        first = sf_state_open(cfg, 1, err, sizeof(err));
        assert_non_null(first);
        assert_int_equal(stat(cfg->state_dir, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0700);
        second = sf_state_open(cfg, 1, err, sizeof(err));
        assert_null(second);
        want = sf_asprintf("state directory %s is in use by another syncfleet "
                           "run (pid %ld); give this pipeline its own "
                           "state_dir",
                           cfg->state_dir, (long)getpid());
        assert_string_equal(err, want);
        free(want);
        /* readers need no lock */
        reader = sf_state_open(cfg, 0, err, sizeof(err));
        assert_non_null(reader);
        sf_state_close(reader);
        /* released with its holder */
        sf_state_close(first);
        second = sf_state_open(cfg, 1, err, sizeof(err));
        assert_non_null(second);
        sf_state_close(second);
        sf_config_destroy(cfg);
}

static void write_file(const char *path, const char *text)
{
        FILE *f = fopen(path, "w");

        assert_non_null(f);
        fputs(text, f);
        fclose(f);
}

static void test_broker_record(void **state)
{
        sf_config_t *cfg = pipeline("broker", "embedded");
        char err[512], *addr, *path;
        sf_state_t *s;

        (void)state;
        /* nothing recorded */
        assert_null(sf_state_broker(cfg, err, sizeof(err)));
        assert_non_null(strstr(err, "none is recorded"));
        /* a record its writer left behind when it was killed: the lock is
         * free, so it is not believed */
        s = sf_state_open(cfg, 0, err, sizeof(err));
        assert_non_null(s);
        assert_int_equal(
            sf_state_set_broker(s, "127.0.0.1:1", err, sizeof(err)),
            -1); /* only the lock's holder records */
        sf_state_close(s);
        path = sf_asprintf("%s/broker", cfg->state_dir);
        write_file(path, "127.0.0.1:9\n");
        assert_null(sf_state_broker(cfg, err, sizeof(err)));
        assert_non_null(strstr(err, "left over from a process that is gone"));
        /* a running holder's record is */
        s = sf_state_open(cfg, 1, err, sizeof(err));
        assert_non_null(s);
        /* taking the lock dropped the stale record */
        assert_int_not_equal(access(path, F_OK), 0);
        assert_int_equal(
            sf_state_set_broker(s, "127.0.0.1:4242", err, sizeof(err)), 0);
        addr = sf_state_broker(cfg, err, sizeof(err));
        assert_non_null(addr);
        assert_string_equal(addr, "127.0.0.1:4242");
        free(addr);
        /* gone with its owner */
        sf_state_close(s);
        assert_int_not_equal(access(path, F_OK), 0);
        assert_null(sf_state_broker(cfg, err, sizeof(err)));
        free(path);
        sf_config_destroy(cfg);
}

static void test_state_dir_config(void **state)
{
        char *err = NULL, *path, *want;
        sf_config_t *cfg;

        (void)state;
        path = sf_asprintf("%s/p.yaml", tmpdir);
        write_file(path, "version: 1\nname: \"erp/../sync\"\n");
        cfg = sf_config_load(path, &err);
        assert_non_null(cfg);
        /* beside the file, the name made one safe file name */
        want = sf_asprintf("%s/.syncfleet/erp_.._sync", tmpdir);
        assert_string_equal(cfg->state_dir, want);
        free(want);
        sf_config_destroy(cfg);
        write_file(path, "version: 1\nname: x\nstate_dir: ./run/../state\n");
        cfg = sf_config_load(path, &err);
        assert_non_null(cfg);
        want = sf_asprintf("%s/state", tmpdir);
        assert_string_equal(cfg->state_dir, want);
        free(want);
        sf_config_destroy(cfg);
        write_file(path, "version: 1\nname: x\nstate_dir: /var/lib/sf\n");
        cfg = sf_config_load(path, &err);
        assert_string_equal(cfg->state_dir, "/var/lib/sf");
        sf_config_destroy(cfg);
        write_file(path, "version: 1\nname: x\nstate_dir: [a]\n");
        assert_null(sf_config_load(path, &err));
        want = sf_asprintf("%s:3:12: expected a string for state_dir, got a "
                           "sequence\n",
                           path);
        assert_string_equal(err, want);
        free(want);
        free(err);
        free(path);
}

static void test_times(void **state)
{
        int64_t ms, now = 1764183780123; /* 2025-11-26T19:03:00.123Z */
        char buf[40];

        (void)state;
        assert_int_equal(sf_dlq_time_parse("2025-11-26T19:03:00.123Z", 0, &ms),
                         0);
        assert_int_equal(ms, now);
        sf_dlq_time_format(ms, buf, sizeof(buf));
        assert_string_equal(buf, "2025-11-26T19:03:00.123Z");
        assert_int_equal(
            sf_dlq_time_parse("2025-11-26T21:03:00.123+02:00", 0, &ms), 0);
        assert_int_equal(ms, now);
        assert_int_equal(sf_dlq_time_parse("2025-11-26T19:03", 0, &ms), 0);
        assert_int_equal(ms, now - 123);
        assert_int_equal(sf_dlq_time_parse("2025-11-26", 0, &ms), 0);
        assert_int_equal(ms, now - 123 - (19 * 60 + 3) * 60 * 1000);
        assert_int_equal(sf_dlq_time_parse("10m", now, &ms), 0);
        assert_int_equal(ms, now - 600000);
        assert_int_equal(sf_dlq_time_parse("2h", now, &ms), 0);
        assert_int_equal(ms, now - 7200000);
        assert_int_equal(sf_dlq_time_parse("7d", now, &ms), 0);
        assert_int_equal(ms, now - 7 * 86400000LL);
        assert_int_equal(sf_dlq_time_parse("90s", now, &ms), 0);
        assert_int_equal(ms, now - 90000);
        assert_int_equal(sf_dlq_time_parse("10", now, &ms), -1);
        assert_int_equal(sf_dlq_time_parse("10w", now, &ms), -1);
        assert_int_equal(sf_dlq_time_parse("yesterday", now, &ms), -1);
        assert_int_equal(sf_dlq_time_parse("2025-13-01", now, &ms), -1);
        assert_int_equal(
            sf_dlq_time_parse("2025-11-26T19:03:00Zjunk", now, &ms), -1);
        assert_int_equal(sf_dlq_time_parse("", now, &ms), -1);
}

typedef struct sent {
        void *opaque;
        rd_kafka_resp_err_t err;
        int calls;
} sent_t;

static void on_delivery(void *cb_arg, void *opaque, rd_kafka_resp_err_t err)
{
        sent_t *s = cb_arg;

        s->opaque = opaque;
        s->err = err;
        s->calls++;
}

/* On a real cluster the DLQ is the topic: put hands the record to the
 * producer (its delivery report decides), and the topic reader gives it
 * back with the fields from its headers. */
static void test_topic_put_and_read(void **state)
{
        char err[512];
        sf_broker_t *b = sf_broker_new(1, err, sizeof(err));
        sf_config_t *cfg;
        sf_producer_t *p;
        sf_dlq_t *d;
        sent_t sent = {0};
        rd_kafka_headers_t *h = rd_kafka_headers_new(1);
        const char *value = outbound("to-shop", 8);
        sf_dead_letter_t dl = {
            .origin_topic = "dt.outbound.message",
            .partition = 1,
            .offset = 41,
            .key = "k8",
            .key_len = 2,
            .value = value,
            .value_len = strlen(value),
            .headers = h,
            .error = "HTTP 422: unprocessable",
            .stage = "message",
            .attempts = 3,
        };
        sf_dlq_filter_t f = all();
        got_t g = {.n = 0};
        int marker;

        (void)state;
        assert_non_null(b);
        assert_int_equal(
            sf_broker_create_topic(b, "dt.dlq", 2, err, sizeof(err)), 0);
        cfg = pipeline("topic", sf_broker_bootstraps(b));
        assert_false(cfg->kafka.embedded);
        p = sf_producer_new(&cfg->kafka, sf_broker_bootstraps(b), "t",
                            on_delivery, &sent, err, sizeof(err));
        assert_non_null(p);
        d = sf_dlq_open(cfg, p, err, sizeof(err));
        assert_non_null(d);
        assert_false(sf_dlq_is_store(d));
        rd_kafka_header_add(h, SF_HDR_EVENT_ID, -1, "ev-8", -1);
        assert_int_equal(sf_dlq_put(d, &dl, &marker, err, sizeof(err)),
                         SF_DLQ_PENDING);
        assert_int_equal(sf_producer_flush(p, 10000), 0);
        assert_int_equal(sent.calls, 1);
        assert_ptr_equal(sent.opaque, &marker);
        assert_int_equal(sent.err, RD_KAFKA_RESP_ERR_NO_ERROR);
        /* nothing went to a store */
        assert_int_not_equal(access(cfg->state_dir, F_OK), 0);

        if (sf_dlq_topic_each(cfg, sf_broker_bootstraps(b), &f, 10000, collect,
                              &g, err, sizeof(err)))
                fail_msg("topic_each: %s", err);
        assert_int_equal(g.n, 1);
        assert_int_equal(g.v[0].id, -1);
        assert_string_equal(g.v[0].action, "to-shop");
        assert_string_equal(g.v[0].stage, "message");
        assert_string_equal(g.v[0].error, "HTTP 422: unprocessable");
        assert_int_equal(g.v[0].attempts, 3);
        assert_string_equal(g.v[0].origin_topic, "dt.outbound.message");
        assert_int_equal(g.v[0].origin_partition, 1);
        assert_int_equal(g.v[0].origin_offset, 41);
        assert_string_equal(g.v[0].event_id, "ev-8");
        assert_string_equal(g.v[0].key, "k8");
        assert_string_equal(g.v[0].value, value);
        assert_true(g.v[0].failed_at_ms > sf_now_ms() - 60000);
        /* its own headers, without the DLQ's */
        assert_int_equal(rd_kafka_header_cnt(g.v[0].headers), 1);
        {
                char id[64];

                sf_dlq_entry_id(&g.v[0], id, sizeof(id));
                f.ids = (char *[]){id};
                f.id_cnt = 1;
                assert_true(sf_dlq_filter_match(&f, &g.v[0]));
                f.ids = (char *[]){"1"};
                assert_false(sf_dlq_filter_match(&f, &g.v[0]));
        }
        got_clear(&g);
        sf_dlq_close(d);
        sf_producer_destroy(p, 1000);
        rd_kafka_headers_destroy(h);
        sf_config_destroy(cfg);
        sf_broker_destroy(b);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_store_put_list_filter_drop),
            cmocka_unit_test(test_store_size_cap),
            cmocka_unit_test(test_store_two_writers),
            cmocka_unit_test(test_store_opened_at_once),
            cmocka_unit_test(test_lock_refuses_second_holder),
            cmocka_unit_test(test_broker_record),
            cmocka_unit_test(test_state_dir_config),
            cmocka_unit_test(test_times),
            cmocka_unit_test(test_topic_put_and_read),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
