/*
 * Sync-log records into changes (sf_change_parse, common/envelope.c): the
 * router reads them from a topic that anything with access can write to.
 *
 * Input: VALUE [NUL KEY [NUL EVENT-ID]]; without a KEY part (or an empty
 * one) the record has no key, without an EVENT-ID part no id header.
 *
 * Properties: a record that is refused says why; one that is accepted
 * prints (sf_change_key_json, sf_change_value_json) as a key and a value
 * that parse again, into a change with the same values (no number loses
 * digits in print) that prints the same bytes: the printed form is
 * canonical, so reading it back and printing it changes nothing.
 */
#include "envelope.h"
#include "fuzz.h"
#include "log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        (void)argc;
        (void)argv;
        sf_log_set_level(SF_LOG_ERROR);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const uint8_t *value = NULL, *key = NULL, *id = NULL;
        size_t value_len = 0, key_len = 0, id_len = 0;
        char *event_id = NULL, *k1 = NULL, *v1 = NULL, *k2 = NULL, *v2 = NULL;
        sf_change_t c, again;
        char err[512] = "";

        memset(&again, 0, sizeof(again));
        fuzz_part(&data, &size, &value, &value_len);
        fuzz_part(&data, &size, &key, &key_len);
        if (fuzz_part(&data, &size, &id, &id_len))
                event_id = fuzz_strndup(id, id_len);
        if (sf_change_parse(key, key_len, value, value_len, event_id, &c, err,
                            sizeof(err))) {
                FUZZ_CHECK(err[0], "a record was refused without a reason");
                goto out;
        }
        FUZZ_CHECK(c.key && c.table && c.connector && c.db && c.event_id,
                   "an accepted change lacks a member");
        k1 = sf_change_key_json(&c);
        v1 = sf_change_value_json(&c);
        FUZZ_CHECK(k1 && v1, "an accepted change does not print");
        err[0] = '\0';
        FUZZ_CHECK(!sf_change_parse(k1, strlen(k1), v1, strlen(v1), c.event_id,
                                    &again, err, sizeof(err)),
                   "the printed change does not parse: %s\nkey %s\nvalue %s",
                   err, k1, v1);
        k2 = sf_change_key_json(&again);
        v2 = sf_change_value_json(&again);
        FUZZ_CHECK(k2 && !strcmp(k1, k2), "the key prints as %s, then as %s",
                   k1, k2 ? k2 : "(null)");
        FUZZ_CHECK(v2 && !strcmp(v1, v2), "the value prints as %s, then as %s",
                   v1, v2 ? v2 : "(null)");
        FUZZ_CHECK(!strcmp(c.event_id, again.event_id), "event id changed");
        FUZZ_CHECK(fuzz_json_same(c.key, again.key) &&
                       fuzz_json_same(c.before, again.before) &&
                       fuzz_json_same(c.after, again.after),
                   "printing changed a value: %s", v1);
        FUZZ_CHECK(c.op == again.op && c.ts_ms == again.ts_ms &&
                       c.txid == again.txid && c.seq == again.seq &&
                       !strcmp(c.table, again.table) &&
                       !strcmp(c.connector, again.connector) &&
                       !strcmp(c.db, again.db),
                   "printing changed the source: %s", v1);
out:
        sf_change_clear(&c);
        sf_change_clear(&again);
        free(k1);
        free(v1);
        free(k2);
        free(v2);
        free(event_id);
        return 0;
}
