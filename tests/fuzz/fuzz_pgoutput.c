/*
 * The pgoutput decoder (producers/capture_postgres_decode.c, _types.c,
 * _json.c): the messages of a logical replication stream, as the server
 * sends them to the PostgreSQL source.
 *
 * Input: a stream of messages, each a 2-byte big-endian length and that
 * many bytes (the last one takes what is left), decoded in order by one
 * decoder that captures public.customers (key id, every event) and
 * shop.lines (key order_id, line; inserts and updates).
 *
 * Properties: a message that is refused says why; a row change that is
 * handed out has a key and the images its op needs, each a JSON object,
 * and prints as a sync-log record the router parses; every value written
 * by the fast path (sf_pg_value_append) is the canonical JSON of the tree
 * (sf_pg_value_json) it stands for.
 */
#include "capture_postgres_int.h"
#include "envelope.h"
#include "fuzz.h"
#include "log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *cust_key[] = {"id"};
static char *line_key[] = {"order_id", "line"};

static const sf_pg_table_t tables[] = {
    {.name = "customers",
     .schema = "public",
     .relname = "customers",
     .key = cust_key,
     .key_cnt = 1,
     .events = SF_EV_INSERT | SF_EV_UPDATE | SF_EV_DELETE},
    {.name = "sales_lines",
     .schema = "shop",
     .relname = "lines",
     .key = line_key,
     .key_cnt = 2,
     .events = SF_EV_INSERT | SF_EV_UPDATE},
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        (void)argc;
        (void)argv;
        sf_log_set_level(SF_LOG_ERROR);
        return 0;
}

static void check_object(const char *what, const char *text)
{
        cJSON *v;

        FUZZ_CHECK(text, "a change without its %s", what);
        v = cJSON_Parse(text);
        FUZZ_CHECK(cJSON_IsObject(v), "the %s is not a JSON object: %s", what,
                   text);
        cJSON_Delete(v);
}

/* The fast path and the tree agree on every text value of TUP. */
static void check_values(const sf_pg_relation_t *rel, const sf_pg_datum_t *tup)
{
        sf_buf_t fast;

        sf_buf_init(&fast, 0);
        for (int i = 0; i < rel->ncols; i++) {
                cJSON *v;
                char *slow;

                /* text output never holds a NUL */
                if (tup[i].kind != 't' || memchr(tup[i].p, '\0', tup[i].len))
                        continue;
                sf_buf_reset(&fast);
                FUZZ_CHECK(!sf_pg_value_append(&fast, rel->cols[i].type,
                                               tup[i].p, tup[i].len),
                           "a value does not append");
                v = sf_pg_value_json(rel->cols[i].type, tup[i].p, tup[i].len);
                FUZZ_CHECK(v, "no tree for a value");
                slow = sf_json_canonical(v);
                FUZZ_CHECK(slow && fast.data && !strcmp(slow, fast.data),
                           "type %u, value '%.*s': fast %s, tree %s",
                           rel->cols[i].type, (int)tup[i].len, tup[i].p,
                           fast.data ? fast.data : "(null)",
                           slow ? slow : "(null)");
                free(slow);
                cJSON_Delete(v);
        }
        sf_buf_free(&fast);
}

static const sf_pg_relation_t *rel_of(const sf_pg_decoder_t *d,
                                      const uint8_t *msg, size_t len)
{
        uint32_t relid;

        if (len < 5)
                return NULL;
        relid = (uint32_t)msg[1] << 24 | (uint32_t)msg[2] << 16 |
                (uint32_t)msg[3] << 8 | msg[4];
        for (size_t i = 0; i < d->rel_cnt; i++)
                if (d->rels[i].relid == relid)
                        return &d->rels[i];
        return NULL;
}

static void check_change(const sf_pg_decoder_t *d, const sf_change_t *ch,
                         const uint8_t *msg, size_t len)
{
        const sf_pg_relation_t *rel = rel_of(d, msg, len);
        char *key, *value, err[512] = "";
        sf_change_t back;

        check_object("key", ch->key_text);
        if (ch->op != SF_OP_DELETE)
                check_object("after image", ch->after_text);
        if (ch->op != SF_OP_CREATE)
                check_object("before image", ch->before_text);
        FUZZ_CHECK(ch->event_id && ch->table && ch->lsn, "a change lacks ids");
        key = sf_change_key_json(ch);
        value = sf_change_value_json(ch);
        FUZZ_CHECK(key && value, "a change does not print");
        /* PostgreSQL's text never holds NUL, the decoder passes on what it
         * got, and the router refuses such text with its reason (a dead
         * letter): the only refusal allowed */
        if (sf_change_parse(key, strlen(key), value, strlen(value),
                            ch->event_id, &back, err, sizeof(err)))
                FUZZ_CHECK(
                    (strstr(key, "\\u0000") || strstr(value, "\\u0000")) &&
                        strstr(err, "has a NUL character"),
                    "the router refuses a change: %s\nkey %s\nvalue %s", err,
                    key, value);
        else
                sf_change_clear(&back);
        free(key);
        free(value);
        FUZZ_CHECK(rel, "a change of no relation");
        check_values(rel, ch->op == SF_OP_DELETE ? d->old_tup : d->new_tup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        sf_pg_decoder_t d;
        sf_change_t ch;

        sf_pg_decoder_init(&d);
        d.db = "erp";
        d.sysid = "7300000000000000001";
        d.tables = tables;
        d.table_cnt = sizeof(tables) / sizeof(tables[0]);
        memset(&ch, 0, sizeof(ch));
        while (size >= 2) {
                size_t len = (size_t)data[0] << 8 | data[1];
                char err[512] = "";
                uint8_t *msg;
                int rc;

                data += 2;
                size -= 2;
                if (len > size)
                        len = size;
                /* a copy of its own, so that reading past it is caught */
                msg = malloc(len ? len : 1);
                if (!msg)
                        abort();
                memcpy(msg, data, len);
                data += len;
                size -= len;
                rc = sf_pg_decode(&d, (const char *)msg, len, &ch, err,
                                  sizeof(err));
                if (rc == -1)
                        FUZZ_CHECK(err[0], "a message refused without a "
                                           "reason");
                else
                        FUZZ_CHECK(rc >= SF_PG_MSG_BEGIN &&
                                       rc <= SF_PG_MSG_OTHER,
                                   "unknown kind %d", rc);
                if (rc == SF_PG_MSG_CHANGE) {
                        check_change(&d, &ch, msg, len);
                        sf_change_clear(&ch);
                }
                free(msg);
        }
        sf_pg_decoder_free(&d);
        return 0;
}
