/*
 * The template engine (common/template.c, template_filters.c, mapping.c):
 * a template written in a pipeline file, compiled and rendered against a
 * record as a worker renders it.
 *
 * Input: TEMPLATE [NUL RECORD]. RECORD, when it is a JSON object, is the
 * record; otherwise a fixed one with a value of every kind is. syncfleet's
 * names (@op, @key, @response, ...) are set as a worker sets them.
 *
 * Properties: a template that does not compile says why, at an offset
 * inside it; one that compiles renders to a value or says why, as a value,
 * as text and as percent-encoded text; as a mapping field and inside an
 * `each` over the record's lines.
 */
#include <cjson/cJSON.h>

#include "fuzz.h"
#include "log.h"
#include "template.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char fixed_record[] =
    "{\"id\":42,\"name\":\"Ada Lovelace\",\"email\":\"Ada@Example.COM\","
    "\"price\":12.5,\"big\":9007199254740993,\"neg\":-7,\"zero\":0,"
    "\"active\":true,\"off\":false,\"nothing\":null,\"empty\":\"\","
    "\"numeric\":\"12345678901234567890\",\"flag\":\"yes\","
    "\"created\":\"2026-11-26T10:00:00.123+01:00\",\"day\":\"2026-11-26\","
    "\"epoch\":1764150000,\"epoch_ms\":1764150000123,"
    "\"doc\":\"{\\\"a\\\":[1,2,{\\\"b\\\":null}]}\","
    "\"text\":\"  caf\\u00e9 / ?&=#%.. \\n\",\"dots\":\"..\","
    "\"address\":{\"street\":\"Main St 1\",\"city\":\"Berlin\"},"
    "\"tags\":[\"a\",\"b\"],\"lines\":[{\"item\":\"x\",\"qty\":\"2\"},"
    "{\"item\":\"y\",\"qty\":\"3.5\"},{\"item\":null,\"qty\":[]}]}";

static const char fixed_at[] =
    "{\"op\":\"u\",\"event\":\"update\",\"table\":\"customers\","
    "\"key\":{\"id\":42},\"before\":{\"id\":42,\"name\":\"Ada\"},"
    "\"after\":{\"id\":42,\"name\":\"Ada Lovelace\"},"
    "\"event_id\":\"sqlite:erp:17\",\"response\":{\"id\":\"w-1\","
    "\"limit\":5},\"status\":201,\"headers\":{\"content-type\":"
    "\"application/json\"},\"error\":\"HTTP 500 from PUT /x\"}";

static cJSON *record_fixed, *at;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        (void)argc;
        (void)argv;
        sf_log_set_level(SF_LOG_ERROR);
        record_fixed = cJSON_Parse(fixed_record);
        at = cJSON_Parse(fixed_at);
        if (!record_fixed || !at)
                abort();
        return 0;
}

static sf_template_t *compile(const char *src)
{
        char err[512] = "";
        size_t off = (size_t)-1;
        sf_template_t *t = sf_template_compile(src, &off, err, sizeof(err));

        if (!t) {
                FUZZ_CHECK(err[0], "refused without a reason");
                FUZZ_CHECK(off <= strlen(src), "error offset %zu past %zu", off,
                           strlen(src));
        } else {
                FUZZ_CHECK(!strcmp(sf_template_source(t), src),
                           "the source is not kept");
        }
        return t;
}

static void count_ref(const char *path, void *opaque)
{
        FUZZ_CHECK(path && path[0], "an empty reference");
        ++*(size_t *)opaque;
}

static void count_ref_at(const char *path, size_t offset, void *opaque)
{
        size_t *n = opaque;

        FUZZ_CHECK(path && path[0], "an empty reference");
        FUZZ_CHECK(offset < n[1], "reference offset %zu past %zu", offset,
                   n[1]);
        n[0]++;
}

static void render(const sf_template_t *t, const sf_scope_t *scope)
{
        char err[512] = "";
        cJSON *v = sf_template_render(t, scope, err, sizeof(err));
        char *s;

        FUZZ_CHECK(v || err[0], "render failed without a reason");
        cJSON_Delete(v);
        for (int flags = 0; flags <= SF_RENDER_URLENCODE; flags++) {
                err[0] = '\0';
                s = sf_template_render_str(t, scope, flags, err, sizeof(err));
                FUZZ_CHECK(s || err[0], "render_str failed without a reason");
                free(s);
        }
}

static void mapping(const char *src, const sf_scope_t *scope)
{
        sf_mapping_t *obj = sf_mapping_new(SF_MAP_OBJECT, 1, 1);
        sf_mapping_t *field = sf_mapping_new(SF_MAP_TEMPLATE, 2, 3);
        sf_mapping_t *each = sf_mapping_new(SF_MAP_EACH, 3, 3);
        sf_mapping_t *item = sf_mapping_new(SF_MAP_TEMPLATE, 4, 5);
        char err[512] = "";
        cJSON *v;
        size_t n = 0;

        field->name = strdup("field");
        field->tpl = compile(src);
        each->name = strdup("lines");
        each->each_path = strdup("lines");
        item->tpl = compile(src);
        each->each_map = item;
        sf_mapping_add_child(obj, field);
        sf_mapping_add_child(obj, each);
        v = sf_mapping_render(obj, scope, err, sizeof(err));
        FUZZ_CHECK(v || err[0], "a mapping failed without a reason");
        cJSON_Delete(v);
        sf_mapping_refs(obj, count_ref, &n);
        sf_mapping_destroy(obj);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const uint8_t *tp = NULL, *rp = NULL;
        size_t tlen = 0, rlen = 0;
        cJSON *rec = NULL;
        sf_scope_t s_record, s_at;
        sf_template_t *t;
        size_t refs[2] = {0, 0}, n = 0;
        char *src;

        fuzz_part(&data, &size, &tp, &tlen);
        if (fuzz_part(&data, &size, &rp, &rlen)) {
                rec = cJSON_ParseWithLength((const char *)rp, rlen);
                if (rec && !cJSON_IsObject(rec)) {
                        cJSON_Delete(rec);
                        rec = NULL;
                }
        }
        src = fuzz_strndup(tp, tlen);
        s_record = (sf_scope_t){.obj = rec ? rec : record_fixed, .next = NULL};
        s_at = (sf_scope_t){.obj = at, .next = &s_record, .at = 1};
        t = compile(src);
        if (t) {
                refs[1] = strlen(src);
                sf_template_refs(t, count_ref, &n);
                sf_template_refs_at(t, count_ref_at, refs);
                FUZZ_CHECK(n == refs[0], "%zu references, then %zu", n,
                           refs[0]);
                FUZZ_CHECK(!sf_template_is_literal(t) || n == 0,
                           "a literal template with references");
                render(t, &s_at);
                sf_template_destroy(t);
                mapping(src, &s_at);
        }
        free(src);
        cJSON_Delete(rec);
        return 0;
}
