/*
 * syncfleet dlq list|show|replay|drop -c FILE [filters]: the dead letters
 * of a pipeline, from the embedded mode's store (STATE_DIR/dlq.db) or, on
 * a real cluster, from the DLQ topic (read from its first to its end
 * offsets, with no consumer group).
 *
 * replay sends the chosen records back to their origin topic as they were
 * (key, value, their own headers, the event id kept, so a target can drop
 * what it already has), in the order they failed: by failed_at, then id.
 * Each record is removed from the store once Kafka confirmed its delivery;
 * a topic is not edited, so there replay only reports what it sent.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "commands.h"
#include "dlq.h"
#include "envelope.h"
#include "kafka.h"
#include "sf.h"

#define SF_DLQ_READ_TIMEOUT_MS  30000
#define SF_DLQ_SEND_TIMEOUT_MS  10000
#define SF_DLQ_FLUSH_TIMEOUT_MS 30000

typedef enum sf_dlq_cmd {
        SF_DLQ_LIST,
        SF_DLQ_SHOW,
        SF_DLQ_REPLAY,
        SF_DLQ_DROP,
} sf_dlq_cmd_t;

typedef struct sf_dlq_opts {
        sf_dlq_cmd_t cmd;
        const char *name; /* "list", ... */
        const char *file;
        const char *brokers;
        int json;
        int dry_run;
        int all;
        sf_dlq_filter_t f;
} sf_dlq_opts_t;

/* The matching entries, in order. */
typedef struct sf_dlq_set {
        sf_dlq_entry_t *v;
        size_t n, cap;
        int payload; /* keep value and headers */
} sf_dlq_set_t;

/* One record being replayed. */
typedef struct sf_replay_ctx {
        const sf_dlq_opts_t *o;
        sf_dlq_store_t *store;
        sf_dlq_entry_t *entries;
        size_t delivered, failed;
} sf_replay_ctx_t;

static void usage(FILE *out)
{
        fprintf(
            out,
            "usage: syncfleet dlq list|show|replay|drop -c FILE [filters] "
            "[options]\n\n"
            "The pipeline's dead letters: on the embedded broker the store "
            "in its\nstate_dir, on a Kafka cluster the topic PREFIX.dlq.\n\n"
            "  list     one line per dead letter (--json: one object per "
            "line)\n"
            "  show     every dead letter in full, value and headers too\n"
            "  replay   send the records back to their origin topic, in "
            "the order\n"
            "           they failed, keeping their event id; each leaves "
            "the store\n"
            "           once Kafka confirmed it (a DLQ topic is left as it "
            "is)\n"
            "  drop     remove dead letters from the store\n\n"
            "filters (all must match):\n"
            "      --action A     dead letters of message or web service "
            "action A\n"
            "      --stage S      of stage S: producer, router, message, "
            "webservice\n"
            "      --error TEXT   whose error contains TEXT (any case)\n"
            "      --since T      failed at or after T: ISO 8601 "
            "(2026-11-26T19:03Z,\n"
            "                     UTC without a zone) or an age (90s, 10m, "
            "2h, 7d)\n"
            "      --until T      failed before T\n"
            "      --id N[,M]     these ids (N on the store, "
            "PARTITION:OFFSET on a\n"
            "                     topic); may be given more than once\n\n"
            "options:\n"
            "  -c, --config FILE  the pipeline file\n"
            "  -b, --brokers LIST bootstrap servers (overrides "
            "kafka.brokers; replay\n"
            "                     on the embedded broker finds the running "
            "one)\n"
            "  -j, --json         one JSON object per line\n"
            "  -n, --dry-run      replay: list what would be sent, send "
            "nothing\n"
            "      --all          replay or drop with no filter: every dead "
            "letter\n"
            "  -h, --help         this text\n\n"
            "Exit status: 0 ok, 1 runtime failure (some record not "
            "replayed, an id\nnot found), 2 usage or configuration error.\n");
}

/* --- options ---------------------------------------------------------- */

/* Whether S is N or N:M, digits only. */
static int sf_dlq_id_ok(const char *s)
{
        int colon = 0, digits = 0;

        for (; *s; s++) {
                if (*s == ':' && digits && !colon) {
                        colon = 1;
                        digits = 0;
                } else if (*s >= '0' && *s <= '9') {
                        digits++;
                } else {
                        return 0;
                }
        }
        return digits > 0;
}

static int sf_dlq_add_ids(sf_dlq_filter_t *f, const char *list)
{
        char *copy = sf_strdup(list), *save = NULL, *id;
        int rc = 0;

        for (id = strtok_r(copy, ",", &save); id;
             id = strtok_r(NULL, ",", &save)) {
                if (!sf_dlq_id_ok(id)) {
                        fprintf(stderr,
                                "syncfleet dlq: --id: expected numbers "
                                "(or PARTITION:OFFSET) separated by commas, "
                                "not '%s'\n",
                                list);
                        rc = -1;
                        break;
                }
                f->ids = sf_realloc(f->ids, (f->id_cnt + 1) * sizeof(char *));
                f->ids[f->id_cnt++] = sf_strdup(id);
        }
        if (!rc && !f->id_cnt) {
                fprintf(stderr, "syncfleet dlq: --id: no id in '%s'\n", list);
                rc = -1;
        }
        free(copy);
        return rc;
}

static int sf_dlq_time_opt(const char *opt, const char *v, int64_t *out)
{
        if (!sf_dlq_time_parse(v, sf_now_ms(), out))
                return 0;
        fprintf(stderr,
                "syncfleet dlq: %s: expected an ISO 8601 time "
                "(2026-11-26T19:03:00Z) or an age (90s, 10m, 2h, 7d), not "
                "'%s'\n",
                opt, v);
        return -1;
}

static int sf_dlq_parse(int argc, char **argv, sf_dlq_opts_t *o)
{
        enum {
                OPT_ACTION = 1000,
                OPT_STAGE,
                OPT_ERROR,
                OPT_SINCE,
                OPT_UNTIL,
                OPT_ID,
                OPT_ALL,
        };
        static const struct option opts[] = {
            {"config", required_argument, NULL, 'c'},
            {"brokers", required_argument, NULL, 'b'},
            {"json", no_argument, NULL, 'j'},
            {"dry-run", no_argument, NULL, 'n'},
            {"action", required_argument, NULL, OPT_ACTION},
            {"stage", required_argument, NULL, OPT_STAGE},
            {"error", required_argument, NULL, OPT_ERROR},
            {"since", required_argument, NULL, OPT_SINCE},
            {"until", required_argument, NULL, OPT_UNTIL},
            {"id", required_argument, NULL, OPT_ID},
            {"all", no_argument, NULL, OPT_ALL},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0},
        };
        static const char *const names[] = {"list", "show", "replay", "drop"};
        int c;

        if (argc < 2) {
                usage(stderr);
                return SF_EXIT_USAGE;
        }
        if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
                usage(stdout);
                return SF_EXIT_OK;
        }
        for (o->cmd = 0; o->cmd < 4 && strcmp(argv[1], names[o->cmd]); o->cmd++)
                ;
        if (o->cmd == 4) {
                fprintf(stderr,
                        "syncfleet dlq: unknown command '%s': expected list, "
                        "show, replay or drop\n",
                        argv[1]);
                return SF_EXIT_USAGE;
        }
        o->name = names[o->cmd];
        o->f.since_ms = INT64_MIN;
        o->f.until_ms = INT64_MAX;
        optind = 1;
        while ((c = getopt_long(argc - 1, argv + 1, "c:b:jnh", opts, NULL)) !=
               -1) {
                switch (c) {
                case 'c':
                        o->file = optarg;
                        break;
                case 'b':
                        o->brokers = optarg;
                        break;
                case 'j':
                        o->json = 1;
                        break;
                case 'n':
                        o->dry_run = 1;
                        break;
                case OPT_ACTION:
                        o->f.action = optarg;
                        break;
                case OPT_STAGE:
                        o->f.stage = optarg;
                        break;
                case OPT_ERROR:
                        o->f.error = optarg;
                        break;
                case OPT_SINCE:
                        if (sf_dlq_time_opt("--since", optarg, &o->f.since_ms))
                                return SF_EXIT_USAGE;
                        break;
                case OPT_UNTIL:
                        if (sf_dlq_time_opt("--until", optarg, &o->f.until_ms))
                                return SF_EXIT_USAGE;
                        break;
                case OPT_ID:
                        if (sf_dlq_add_ids(&o->f, optarg))
                                return SF_EXIT_USAGE;
                        break;
                case OPT_ALL:
                        o->all = 1;
                        break;
                case 'h':
                        usage(stdout);
                        return SF_EXIT_OK;
                default:
                        usage(stderr);
                        return SF_EXIT_USAGE;
                }
        }
        if (!o->file || optind < argc - 1) {
                usage(stderr);
                return SF_EXIT_USAGE;
        }
        if (o->dry_run && o->cmd != SF_DLQ_REPLAY) {
                fprintf(stderr, "syncfleet dlq %s: --dry-run is for replay\n",
                        o->name);
                return SF_EXIT_USAGE;
        }
        if ((o->cmd == SF_DLQ_REPLAY || o->cmd == SF_DLQ_DROP) && !o->all &&
            !o->f.action && !o->f.stage && !o->f.error && !o->f.id_cnt &&
            o->f.since_ms == INT64_MIN && o->f.until_ms == INT64_MAX) {
                fprintf(stderr,
                        "syncfleet dlq %s: say which dead letters (--id, "
                        "--action, --stage, --error, --since, --until), or "
                        "--all for every one\n",
                        o->name);
                return SF_EXIT_USAGE;
        }
        return -1; /* go on */
}

/* --- reading ---------------------------------------------------------- */

static int sf_dlq_collect(void *opaque, sf_dlq_entry_t *e)
{
        sf_dlq_set_t *set = opaque;

        if (!set->payload) {
                free(e->value);
                e->value = NULL;
                if (e->headers)
                        rd_kafka_headers_destroy(e->headers);
                e->headers = NULL;
        }
        if (set->n == set->cap) {
                set->cap = set->cap ? set->cap * 2 : 64;
                set->v = sf_realloc(set->v, set->cap * sizeof(*set->v));
        }
        set->v[set->n++] = *e; /* now owned by the set */
        return 0;
}

/* By failed_at, then id (store) or partition and offset (topic). */
static int sf_dlq_cmp(const void *pa, const void *pb)
{
        const sf_dlq_entry_t *a = pa, *b = pb;

        if (a->failed_at_ms != b->failed_at_ms)
                return a->failed_at_ms < b->failed_at_ms ? -1 : 1;
        if (a->id != b->id)
                return a->id < b->id ? -1 : 1;
        if (a->dlq_partition != b->dlq_partition)
                return a->dlq_partition < b->dlq_partition ? -1 : 1;
        if (a->dlq_offset != b->dlq_offset)
                return a->dlq_offset < b->dlq_offset ? -1 : 1;
        return 0;
}

static void sf_dlq_set_free(sf_dlq_set_t *set)
{
        for (size_t i = 0; i < set->n; i++)
                sf_dlq_entry_clear(&set->v[i]);
        free(set->v);
}

/* The ids named with --id that matched nothing, on stderr. */
static int sf_dlq_missing_ids(const sf_dlq_opts_t *o, const sf_dlq_set_t *set)
{
        int missing = 0;

        for (size_t i = 0; i < o->f.id_cnt; i++) {
                int found = 0;

                for (size_t k = 0; k < set->n && !found; k++) {
                        char id[64];

                        sf_dlq_entry_id(&set->v[k], id, sizeof(id));
                        found = !strcmp(id, o->f.ids[i]);
                }
                if (!found) {
                        fprintf(stderr,
                                "syncfleet dlq %s: no dead letter %s%s\n",
                                o->name, o->f.ids[i],
                                o->f.action || o->f.stage || o->f.error ||
                                        o->f.since_ms != INT64_MIN ||
                                        o->f.until_ms != INT64_MAX
                                    ? " matches the filters"
                                    : "");
                        missing++;
                }
        }
        return missing;
}

/* --- printing --------------------------------------------------------- */

static cJSON *sf_json_str_or_null(const char *s)
{
        return s ? cJSON_CreateString(s) : cJSON_CreateNull();
}

static cJSON *sf_dlq_entry_json(const sf_dlq_entry_t *e, int payload)
{
        cJSON *o = cJSON_CreateObject(), *origin;
        char buf[64];

        if (e->id >= 0) {
                cJSON_AddNumberToObject(o, "id", (double)e->id);
        } else {
                sf_dlq_entry_id(e, buf, sizeof(buf));
                cJSON_AddStringToObject(o, "id", buf);
        }
        cJSON_AddItemToObject(o, "action", sf_json_str_or_null(e->action));
        cJSON_AddItemToObject(o, "stage", sf_json_str_or_null(e->stage));
        cJSON_AddItemToObject(o, "error", sf_json_str_or_null(e->error));
        cJSON_AddNumberToObject(o, "attempts", e->attempts);
        origin = cJSON_AddObjectToObject(o, "origin");
        cJSON_AddItemToObject(origin, "topic",
                              sf_json_str_or_null(e->origin_topic));
        cJSON_AddNumberToObject(origin, "partition", e->origin_partition);
        cJSON_AddNumberToObject(origin, "offset", (double)e->origin_offset);
        if (e->failed_at_ms >= 0) {
                sf_dlq_time_format(e->failed_at_ms, buf, sizeof(buf));
                cJSON_AddStringToObject(o, "failed_at", buf);
        } else {
                cJSON_AddNullToObject(o, "failed_at");
        }
        cJSON_AddItemToObject(o, "key", sf_json_str_or_null(e->key));
        cJSON_AddItemToObject(o, "event_id", sf_json_str_or_null(e->event_id));
        if (e->replayed_at_ms >= 0) {
                sf_dlq_time_format(e->replayed_at_ms, buf, sizeof(buf));
                cJSON_AddStringToObject(o, "replayed_at", buf);
        } else {
                cJSON_AddNullToObject(o, "replayed_at");
        }
        if (payload) {
                cJSON *hdrs = cJSON_AddArrayToObject(o, "headers");
                const char *name;
                const void *v;
                size_t len;

                cJSON_AddItemToObject(o, "value",
                                      sf_json_str_or_null(e->value));
                cJSON_AddNumberToObject(o, "value_size", (double)e->value_size);
                for (size_t i = 0;
                     e->headers &&
                     !rd_kafka_header_get_all(e->headers, i, &name, &v, &len);
                     i++) {
                        cJSON *pair = cJSON_CreateArray();
                        char *text = v ? sf_strndup(v, len) : NULL;

                        cJSON_AddItemToArray(pair, cJSON_CreateString(name));
                        cJSON_AddItemToArray(pair, sf_json_str_or_null(text));
                        cJSON_AddItemToArray(hdrs, pair);
                        free(text);
                }
        }
        return o;
}

static void sf_dlq_print_json(const sf_dlq_entry_t *e, int payload,
                              const char *replay_to)
{
        cJSON *o = sf_dlq_entry_json(e, payload);
        char *s;

        if (replay_to)
                cJSON_AddStringToObject(o, "replay_to", replay_to);
        s = sf_json_print(o, 0);
        printf("%s\n", s);
        free(s);
        cJSON_Delete(o);
}

#define SF_DLQ_LINE_FMT "%-8s %-24s %-10s %-24s %8s  %-36s  %s\n"

static void sf_dlq_print_header(void)
{
        printf(SF_DLQ_LINE_FMT, "ID", "FAILED AT", "STAGE", "ACTION",
               "ATTEMPTS", "ORIGIN", "ERROR");
}

static void sf_dlq_print_line(const sf_dlq_entry_t *e)
{
        char id[64], when[40], attempts[16], origin[512];

        sf_dlq_entry_id(e, id, sizeof(id));
        sf_dlq_time_format(e->failed_at_ms, when, sizeof(when));
        snprintf(attempts, sizeof(attempts), "%d", e->attempts);
        snprintf(origin, sizeof(origin), "%s/%" PRId32 "/%" PRId64,
                 e->origin_topic ? e->origin_topic : "?", e->origin_partition,
                 e->origin_offset);
        printf(SF_DLQ_LINE_FMT, id, when, e->stage ? e->stage : "-",
               e->action ? e->action : "-", attempts, origin,
               e->error ? e->error : "");
}

static void sf_dlq_print_full(const sf_dlq_entry_t *e)
{
        char id[64], when[40];
        const char *name;
        const void *v;
        size_t len;

        sf_dlq_entry_id(e, id, sizeof(id));
        sf_dlq_time_format(e->failed_at_ms, when, sizeof(when));
        printf("dead letter %s\n", id);
        printf("  failed at:  %s\n", when);
        printf("  stage:      %s\n", e->stage ? e->stage : "-");
        printf("  action:     %s\n", e->action ? e->action : "-");
        printf("  attempts:   %d\n", e->attempts);
        printf("  error:      %s\n", e->error ? e->error : "");
        printf("  origin:     %s [%" PRId32 "] offset %" PRId64 "\n",
               e->origin_topic ? e->origin_topic : "?", e->origin_partition,
               e->origin_offset);
        printf("  event id:   %s\n", e->event_id ? e->event_id : "-");
        if (e->replayed_at_ms >= 0) {
                sf_dlq_time_format(e->replayed_at_ms, when, sizeof(when));
                printf("  replayed:   sent at %s, delivery not confirmed\n",
                       when);
        }
        printf("  key:        %s\n", e->key ? e->key : "(none)");
        printf("  headers:%s\n",
               e->headers && rd_kafka_header_cnt(e->headers) ? "" : " (none)");
        for (size_t i = 0; e->headers && !rd_kafka_header_get_all(
                                             e->headers, i, &name, &v, &len);
             i++)
                printf("    %s: %.*s\n", name, v ? (int)len : 0,
                       v ? (const char *)v : "");
        if (e->value_kept)
                printf("  value (%zu bytes):\n    %s\n\n", e->value_len,
                       e->value ? e->value : "");
        else
                printf("  value:      not kept (%" PRId64 " bytes)\n\n",
                       e->value_size);
}

/* --- replay ----------------------------------------------------------- */

static void sf_replay_on_delivery(void *cb_arg, void *opaque,
                                  rd_kafka_resp_err_t err)
{
        sf_replay_ctx_t *ctx = cb_arg;
        sf_dlq_entry_t *e = &ctx->entries[(size_t)(intptr_t)opaque];
        char id[64], errstr[512];
        int ok = !err;

        sf_dlq_entry_id(e, id, sizeof(id));
        if (ok && ctx->store &&
            sf_dlq_store_remove(ctx->store, e->id, errstr, sizeof(errstr))) {
                fprintf(stderr,
                        "syncfleet dlq replay: dead letter %s was delivered "
                        "but stays in the store: %s\n",
                        id, errstr);
                ok = 0;
        } else if (!ok) {
                fprintf(stderr,
                        "syncfleet dlq replay: dead letter %s was not "
                        "delivered to %s: %s\n",
                        id, e->origin_topic, rd_kafka_err2str(err));
                if (ctx->store)
                        sf_dlq_store_mark(ctx->store, e->id, -1, errstr,
                                          sizeof(errstr));
        }
        if (ok)
                ctx->delivered++;
        else
                ctx->failed++;
        if (ctx->o->json) {
                cJSON *o = cJSON_CreateObject();
                char *s;

                if (e->id >= 0)
                        cJSON_AddNumberToObject(o, "id", (double)e->id);
                else
                        cJSON_AddStringToObject(o, "id", id);
                cJSON_AddStringToObject(o, "topic", e->origin_topic);
                cJSON_AddBoolToObject(o, "delivered", !err);
                s = sf_json_print(o, 0);
                printf("%s\n", s);
                free(s);
                cJSON_Delete(o);
        } else if (!err) {
                printf("replayed %s to %s\n", id, e->origin_topic);
        }
}

/* Why entry E cannot be replayed, or NULL. */
static const char *sf_replay_refusal(const sf_dlq_entry_t *e)
{
        if (!e->origin_topic || !*e->origin_topic)
                return "its origin topic is unknown";
        if (!e->value_kept)
                return "its value was not kept (too large)";
        return NULL;
}

/* Sends entry I (with its payload in E) to its origin topic. */
static int sf_replay_send(sf_replay_ctx_t *ctx, sf_producer_t *p, size_t i,
                          sf_dlq_entry_t *e)
{
        rd_kafka_headers_t *h =
            e->headers ? rd_kafka_headers_copy(e->headers) : NULL;
        const void *v;
        size_t len;
        char id[64], errstr[512];

        sf_dlq_entry_id(e, id, sizeof(id));
        if (e->event_id &&
            (!h || rd_kafka_header_get_last(h, SF_HDR_EVENT_ID, &v, &len))) {
                if (!h)
                        h = rd_kafka_headers_new(1);
                rd_kafka_header_add(h, SF_HDR_EVENT_ID, -1, e->event_id, -1);
        }
        if (ctx->store && sf_dlq_store_mark(ctx->store, e->id, sf_now_ms(),
                                            errstr, sizeof(errstr))) {
                fprintf(stderr, "syncfleet dlq replay: dead letter %s: %s\n",
                        id, errstr);
                if (h)
                        rd_kafka_headers_destroy(h);
                return -1;
        }
        if (sf_producer_send(p, e->origin_topic, RD_KAFKA_PARTITION_UA, e->key,
                             e->key_len, e->value, e->value_len, h,
                             (void *)(intptr_t)i, SF_DLQ_SEND_TIMEOUT_MS,
                             errstr, sizeof(errstr))) {
                fprintf(stderr, "syncfleet dlq replay: dead letter %s: %s\n",
                        id, errstr);
                if (ctx->store)
                        sf_dlq_store_mark(ctx->store, e->id, -1, errstr,
                                          sizeof(errstr));
                return -1;
        }
        sf_producer_poll(p, 0);
        return 0;
}

static int sf_dlq_replay(const sf_dlq_opts_t *o, const sf_config_t *cfg,
                         sf_dlq_store_t *store, sf_dlq_set_t *set)
{
        sf_replay_ctx_t ctx = {.o = o, .store = store, .entries = set->v};
        const char *bootstraps;
        sf_producer_t *p;
        size_t skipped = 0;
        char errstr[512];

        if (!set->n) {
                if (!o->json)
                        printf("no dead letters to replay\n");
                return SF_EXIT_OK;
        }
        if (o->dry_run) {
                for (size_t i = 0; i < set->n; i++) {
                        const sf_dlq_entry_t *e = &set->v[i];
                        const char *why = sf_replay_refusal(e);
                        char id[64];

                        sf_dlq_entry_id(e, id, sizeof(id));
                        if (o->json)
                                sf_dlq_print_json(e, 0, e->origin_topic);
                        else if (why)
                                printf("would skip %s: %s\n", id, why);
                        else
                                printf("would replay %s to %s: key %s\n", id,
                                       e->origin_topic,
                                       e->key ? e->key : "(none)");
                }
                return SF_EXIT_OK;
        }
        bootstraps = sf_cli_bootstraps(cfg, o->brokers, "dlq replay");
        if (!bootstraps)
                return SF_EXIT_USAGE;
        p = sf_producer_new(&cfg->kafka, bootstraps, "syncfleet-dlq",
                            sf_replay_on_delivery, &ctx, errstr,
                            sizeof(errstr));
        if (!p) {
                fprintf(stderr, "syncfleet dlq replay: %s\n", errstr);
                return SF_EXIT_RUNTIME;
        }
        for (size_t i = 0; i < set->n; i++) {
                sf_dlq_entry_t *e = &set->v[i];
                const char *why;
                char id[64];
                int rc;

                sf_dlq_entry_id(e, id, sizeof(id));
                if (store) {
                        /* the payload, read now: one record at a time */
                        sf_dlq_entry_t full;

                        rc = sf_dlq_store_get(store, e->id, &full, errstr,
                                              sizeof(errstr));
                        if (rc) {
                                fprintf(stderr,
                                        "syncfleet dlq replay: dead letter "
                                        "%s: %s\n",
                                        id,
                                        rc > 0 ? "gone (replayed or dropped "
                                                 "meanwhile)"
                                               : errstr);
                                skipped++;
                                continue;
                        }
                        sf_dlq_entry_clear(e);
                        *e = full;
                }
                why = sf_replay_refusal(e);
                if (why) {
                        fprintf(stderr,
                                "syncfleet dlq replay: dead letter %s is not "
                                "replayed: %s\n",
                                id, why);
                        skipped++;
                } else if (sf_replay_send(&ctx, p, i, e)) {
                        skipped++;
                }
                /* the value is not needed any more */
                if (store) {
                        free(e->value);
                        e->value = NULL;
                }
        }
        if (sf_producer_flush(p, SF_DLQ_FLUSH_TIMEOUT_MS) > 0)
                fprintf(stderr, "syncfleet dlq replay: Kafka did not confirm "
                                "every record within 30 s\n");
        sf_producer_destroy(p, 0); /* what is left reports a failure */
        if (!o->json) {
                if (store)
                        printf("replayed %zu of %zu dead letters; those "
                               "delivered left the store\n",
                               ctx.delivered, set->n);
                else
                        printf("replayed %zu of %zu dead letters; the DLQ "
                               "topic %s still holds them\n",
                               ctx.delivered, set->n, cfg->topic_dlq);
        }
        return ctx.failed || skipped ? SF_EXIT_RUNTIME : SF_EXIT_OK;
}

static int sf_dlq_drop(const sf_dlq_opts_t *o, sf_dlq_store_t *store,
                       sf_dlq_set_t *set)
{
        size_t dropped = 0;
        char errstr[512];

        for (size_t i = 0; i < set->n; i++) {
                if (sf_dlq_store_remove(store, set->v[i].id, errstr,
                                        sizeof(errstr))) {
                        fprintf(stderr, "syncfleet dlq drop: %s\n", errstr);
                        break;
                }
                dropped++;
        }
        if (!o->json)
                printf("dropped %zu dead letter%s\n", dropped,
                       dropped == 1 ? "" : "s");
        return dropped == set->n ? SF_EXIT_OK : SF_EXIT_RUNTIME;
}

int sf_cmd_dlq(int argc, char **argv)
{
        sf_dlq_opts_t o;
        sf_dlq_set_t set;
        sf_config_t *cfg = NULL;
        sf_dlq_store_t *store = NULL;
        char errstr[512];
        int rc;

        memset(&o, 0, sizeof(o));
        memset(&set, 0, sizeof(set));
        rc = sf_dlq_parse(argc, argv, &o);
        if (rc >= 0)
                goto out;
        rc = SF_EXIT_RUNTIME;
        if (!(cfg = sf_cli_load(o.file))) {
                rc = SF_EXIT_USAGE;
                goto out;
        }
        set.payload = o.cmd == SF_DLQ_SHOW;
        if (cfg->kafka.embedded) {
                store = sf_dlq_store_open(cfg, errstr, sizeof(errstr));
                if (!store ||
                    sf_dlq_store_each(store, &o.f, set.payload, sf_dlq_collect,
                                      &set, errstr, sizeof(errstr))) {
                        fprintf(stderr, "syncfleet dlq %s: %s\n", o.name,
                                errstr);
                        goto out;
                }
        } else {
                const char *bootstraps;

                if (o.cmd == SF_DLQ_DROP) {
                        fprintf(stderr,
                                "syncfleet dlq drop: the dead letters of this "
                                "pipeline are the topic %s on a Kafka "
                                "cluster, which only its retention "
                                "shortens; drop is for the embedded mode's "
                                "store\n",
                                cfg->topic_dlq);
                        rc = SF_EXIT_USAGE;
                        goto out;
                }
                bootstraps = sf_cli_bootstraps(cfg, o.brokers, "dlq");
                if (!bootstraps) {
                        rc = SF_EXIT_USAGE;
                        goto out;
                }
                /* replay sends what it read: keep the payload */
                set.payload = set.payload || o.cmd == SF_DLQ_REPLAY;
                if (sf_dlq_topic_each(cfg, bootstraps, &o.f,
                                      SF_DLQ_READ_TIMEOUT_MS, sf_dlq_collect,
                                      &set, errstr, sizeof(errstr))) {
                        fprintf(stderr, "syncfleet dlq %s: %s\n", o.name,
                                errstr);
                        goto out;
                }
                qsort(set.v, set.n, sizeof(*set.v), sf_dlq_cmp);
        }
        switch (o.cmd) {
        case SF_DLQ_LIST:
        case SF_DLQ_SHOW:
                for (size_t i = 0; i < set.n; i++) {
                        if (o.json)
                                sf_dlq_print_json(&set.v[i], set.payload, NULL);
                        else if (o.cmd == SF_DLQ_SHOW)
                                sf_dlq_print_full(&set.v[i]);
                        else {
                                if (!i)
                                        sf_dlq_print_header();
                                sf_dlq_print_line(&set.v[i]);
                        }
                }
                if (!set.n && !o.json)
                        printf("no dead letters\n");
                rc = SF_EXIT_OK;
                break;
        case SF_DLQ_REPLAY:
                rc = sf_dlq_replay(&o, cfg, store, &set);
                break;
        case SF_DLQ_DROP:
                rc = sf_dlq_drop(&o, store, &set);
                break;
        }
        if (sf_dlq_missing_ids(&o, &set) && rc == SF_EXIT_OK)
                rc = SF_EXIT_RUNTIME;
out:
        sf_dlq_set_free(&set);
        sf_dlq_store_close(store);
        sf_config_destroy(cfg);
        for (size_t i = 0; i < o.f.id_cnt; i++)
                free(o.f.ids[i]);
        free(o.f.ids);
        return rc;
}
