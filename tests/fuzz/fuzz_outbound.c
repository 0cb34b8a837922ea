/*
 * Outbound records into sf_outbound_t (sf_outbound_parse,
 * common/envelope.c): the message and web service workers read them from
 * the outbound topics.
 *
 * Input: the record's value.
 *
 * Properties: a record that is refused says why; one that is accepted
 * has every required member, prints (sf_outbound_value_json) as a value
 * that parses again into a record with the same values (no number loses
 * digits in print) that prints the same bytes, and has a key
 * (sf_outbound_key_json).
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
        char *v1 = NULL, *v2 = NULL, *k1 = NULL, *k2 = NULL;
        sf_outbound_t o, again;
        char err[512] = "";

        memset(&again, 0, sizeof(again));
        if (sf_outbound_parse(data, size, &o, err, sizeof(err))) {
                FUZZ_CHECK(err[0], "a record was refused without a reason");
                goto out;
        }
        FUZZ_CHECK(o.kind && o.action && o.event && o.table && o.key &&
                       o.root_table && o.root_key && o.event_id,
                   "an accepted record lacks a member");
        v1 = sf_outbound_value_json(&o);
        k1 = sf_outbound_key_json(&o);
        FUZZ_CHECK(v1 && k1, "an accepted record does not print");
        err[0] = '\0';
        FUZZ_CHECK(!sf_outbound_parse(v1, strlen(v1), &again, err, sizeof(err)),
                   "the printed record does not parse: %s\nvalue %s", err, v1);
        FUZZ_CHECK(fuzz_json_same(o.key, again.key) &&
                       fuzz_json_same(o.root_key, again.root_key) &&
                       fuzz_json_same(o.record, again.record) &&
                       fuzz_json_same(o.before, again.before) &&
                       o.source_ts_ms == again.source_ts_ms &&
                       o.routed_ts_ms == again.routed_ts_ms &&
                       !strcmp(o.event_id, again.event_id) &&
                       !strcmp(o.root_table, again.root_table),
                   "printing changed a value: %s", v1);
        v2 = sf_outbound_value_json(&again);
        k2 = sf_outbound_key_json(&again);
        FUZZ_CHECK(v2 && !strcmp(v1, v2), "the value prints as %s, then as %s",
                   v1, v2 ? v2 : "(null)");
        FUZZ_CHECK(k2 && !strcmp(k1, k2), "the key prints as %s, then as %s",
                   k1, k2 ? k2 : "(null)");
out:
        sf_outbound_clear(&o);
        sf_outbound_clear(&again);
        free(v1);
        free(v2);
        free(k1);
        free(k2);
        return 0;
}
