/*
 * The record formats of DESIGN.md: the sync-log change envelope and the
 * outbound record, written as canonical JSON (json.h) and parsed with exact
 * 64-bit integers.
 *
 * Choices the header leaves open:
 * - Sync-log value: "before" and "after" are always present (null when
 *   absent); source.schema and source.lsn are left out when NULL and
 *   source.txid when -1. The parser accepts them absent or null.
 * - Parsing ignores members it does not know (Debezium's extras), takes a
 *   numeric source.lsn (Debezium's PostgreSQL connector) as its digits,
 *   defaults source.seq to 0, and requires the record key's "table" to
 *   equal source.table. Required members that are null count as missing.
 * - Derived event id (no header): "<connector>:<db>:<lsn>:<seq>" when the
 *   source has an lsn, else "<connector>:<db>:<seq>".
 */
#include "envelope.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf.h"
#include "text.h"

/* --- Writing records -------------------------------------------------- */

/* The output and whether it hit the buffer's cap, so that an oversized
 * record fails as a whole instead of coming out truncated. */
typedef struct canon {
        sf_buf_t *b;
        int err;
} canon_t;

static void put(canon_t *c, const void *p, size_t n)
{
        if (!c->err && sf_buf_append(c->b, p, n))
                c->err = 1;
}

/* Drops what was appended to B after its length was WAS. */
static void buf_truncate(sf_buf_t *b, size_t was)
{
        b->len = was;
        if (b->data)
                b->data[was] = '\0';
}

static void canon_string(canon_t *b, const char *s, size_t len)
{
        if (!b->err && sf_json_string_append(b->b, s, len))
                b->err = 1;
}

static void canon_cstring(canon_t *b, const char *s)
{
        if (!s)
                s = "";
        canon_string(b, s, strlen(s));
}

static void canon_int(canon_t *b, int64_t v)
{
        if (!b->err && sf_json_int_append(b->b, v))
                b->err = 1;
}

/* --- Shared helpers ----------------------------------------------------- */

const char *sf_op_event_name(sf_op_t op)
{
        switch (op) {
        case SF_OP_CREATE:
        case SF_OP_READ:
                return "insert";
        case SF_OP_UPDATE:
                return "update";
        case SF_OP_DELETE:
                return "delete";
        }
        return "unknown";
}

/* Adds ITEM (borrowed, may be NULL) to OBJ as NAME: a reference, so the
 * temporary tree built for printing never owns the caller's trees. */
static void add_ref(cJSON *obj, const char *name, const cJSON *item)
{
        if (item)
                cJSON_AddItemReferenceToObject(obj, name, (cJSON *)item);
        else
                cJSON_AddNullToObject(obj, name);
}

static void add_str(cJSON *obj, const char *name, const char *s)
{
        if (s)
                cJSON_AddStringToObject(obj, name, s);
        else
                cJSON_AddNullToObject(obj, name);
}

static char *print_and_delete(cJSON *tree)
{
        char *s = sf_json_canonical(tree);

        cJSON_Delete(tree);
        return s;
}

/* One JSON value of at most SF_MAX_RECORD_BYTES, integers exact. */
static cJSON *parse_exact(const void *p, size_t len)
{
        if (!p || !len || len > SF_MAX_RECORD_BYTES)
                return NULL;
        return sf_json_parse(p, len);
}

/* A record value: one JSON object of at most SF_MAX_RECORD_BYTES. NULL
 * with errstr saying which of these it is not. */
static cJSON *parse_value_object(const void *value, size_t value_len,
                                 char *errstr, size_t errstr_size)
{
        cJSON *v;
        long nul;

        if (value_len > SF_MAX_RECORD_BYTES) {
                sf_seterr(errstr, errstr_size, "value is larger than %u bytes",
                          SF_MAX_RECORD_BYTES);
                return NULL;
        }
        nul = value ? sf_text_json_nul(value, value_len) : -1;
        if (nul >= 0) {
                sf_seterr(errstr, errstr_size,
                          "value has a NUL character at byte %ld: syncfleet "
                          "does not carry text with NUL (\\u0000), which "
                          "would be cut there",
                          nul);
                return NULL;
        }
        v = parse_exact(value, value_len);
        if (!v) {
                sf_seterr(errstr, errstr_size, "value is not JSON");
                return NULL;
        }
        if (!cJSON_IsObject(v)) {
                sf_seterr(errstr, errstr_size, "value is not a JSON object");
                cJSON_Delete(v);
                return NULL;
        }
        return v;
}

/* Reads NAME of OBJ as an integer. Absent or null gives DFLT when
 * OPTIONAL, else an error; a non-integral or out-of-range number is an
 * error. PATH names the field in the message. */
static int get_int64(const cJSON *obj, const char *name, const char *path,
                     int optional, int64_t dflt, int64_t *out, char *errstr,
                     size_t errstr_size)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

        if (!v || cJSON_IsNull(v)) {
                if (optional) {
                        *out = dflt;
                        return 0;
                }
                sf_seterr(errstr, errstr_size, "%s is missing", path);
                return -1;
        }
        if (sf_json_get_int64(v, out)) {
                sf_seterr(errstr, errstr_size, "%s is not an integer", path);
                return -1;
        }
        return 0;
}

/* Reads NAME of OBJ as a string (copied into *OUT). Absent or null is
 * fine when OPTIONAL (*OUT stays NULL). */
static int get_str(const cJSON *obj, const char *name, const char *path,
                   int optional, char **out, char *errstr, size_t errstr_size)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

        if (!v || cJSON_IsNull(v)) {
                if (optional)
                        return 0;
                sf_seterr(errstr, errstr_size, "%s is missing", path);
                return -1;
        }
        if (!cJSON_IsString(v) || !v->valuestring) {
                sf_seterr(errstr, errstr_size, "%s is not a string", path);
                return -1;
        }
        *out = sf_strdup(v->valuestring);
        return 0;
}

/* Detaches NAME of OBJ into *OUT when it is an object. Absent or null
 * leaves *OUT NULL when OPTIONAL. */
static int take_object(cJSON *obj, const char *name, const char *path,
                       int optional, cJSON **out, char *errstr,
                       size_t errstr_size)
{
        cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

        if (!v || cJSON_IsNull(v)) {
                if (optional)
                        return 0;
                sf_seterr(errstr, errstr_size, "%s is missing", path);
                return -1;
        }
        if (!cJSON_IsObject(v)) {
                sf_seterr(errstr, errstr_size,
                          optional ? "%s is not an object or null"
                                   : "%s is not an object",
                          path);
                return -1;
        }
        *out = cJSON_DetachItemViaPointer(obj, v);
        return 0;
}

/* --- Sync-log change ---------------------------------------------------- */

/* A part of a change: its text when the source wrote one, else its tree,
 * else null. */
static void change_part(canon_t *b, const char *text, const cJSON *tree)
{
        if (text)
                put(b, text, strlen(text));
        else if (!tree)
                put(b, "null", 4);
        else if (sf_json_canonical_append(b->b, tree))
                b->err = 1;
}

/* Written member by member in sorted order, without a tree: this runs for
 * every captured change. */
int sf_change_key_append(sf_buf_t *out, const sf_change_t *c)
{
        canon_t b = {out, 0};
        size_t was = out->len;

        put(&b, "{\"key\":", 7);
        change_part(&b, c->key_text, c->key);
        put(&b, ",\"table\":", 9);
        if (c->table)
                canon_cstring(&b, c->table);
        else
                put(&b, "null", 4);
        put(&b, "}", 1);
        if (b.err) {
                buf_truncate(out, was);
                return -1;
        }
        return 0;
}

static void put_member_str(canon_t *b, const char *member, const char *s)
{
        put(b, member, strlen(member));
        if (s)
                canon_cstring(b, s);
        else
                put(b, "null", 4);
}

int sf_change_value_append(sf_buf_t *out, const sf_change_t *c)
{
        canon_t b = {out, 0};
        size_t was = out->len;
        char op[1] = {(char)c->op};

        put(&b, "{\"after\":", 9);
        change_part(&b, c->after_text, c->after);
        put(&b, ",\"before\":", 10);
        change_part(&b, c->before_text, c->before);
        put(&b, ",\"op\":", 6);
        canon_string(&b, op, c->op ? 1 : 0);
        put_member_str(&b, ",\"source\":{\"connector\":", c->connector);
        put_member_str(&b, ",\"db\":", c->db);
        if (c->lsn)
                put_member_str(&b, ",\"lsn\":", c->lsn);
        if (c->schema)
                put_member_str(&b, ",\"schema\":", c->schema);
        put(&b, ",\"seq\":", 7);
        canon_int(&b, c->seq);
        put_member_str(&b, ",\"table\":", c->table);
        if (c->txid != -1) {
                put(&b, ",\"txid\":", 8);
                canon_int(&b, c->txid);
        }
        put(&b, "},\"ts_ms\":", 10);
        canon_int(&b, c->ts_ms);
        put(&b, "}", 1);
        if (b.err) {
                buf_truncate(out, was);
                return -1;
        }
        return 0;
}

static char *change_print(int (*fn)(sf_buf_t *, const sf_change_t *),
                          const sf_change_t *c)
{
        sf_buf_t b;

        sf_buf_init(&b, 0);
        if (fn(&b, c)) {
                sf_buf_free(&b);
                return NULL;
        }
        return sf_buf_steal(&b);
}

char *sf_change_key_json(const sf_change_t *c)
{
        return change_print(sf_change_key_append, c);
}

char *sf_change_value_json(const sf_change_t *c)
{
        return change_print(sf_change_value_append, c);
}

void sf_change_clear(sf_change_t *c)
{
        if (!c)
                return;
        free(c->connector);
        free(c->db);
        free(c->schema);
        free(c->table);
        free(c->lsn);
        cJSON_Delete(c->key);
        cJSON_Delete(c->before);
        cJSON_Delete(c->after);
        free(c->key_text);
        free(c->before_text);
        free(c->after_text);
        free(c->event_id);
        memset(c, 0, sizeof(*c));
        c->txid = -1;
}

/* The key of a sync-log record: {"key":{...},"table":"t"}. Takes the
 * "key" object out of the parsed KEY tree into C and checks its table
 * against source.table. */
static int change_parse_key(const void *key, size_t key_len, sf_change_t *c,
                            char *errstr, size_t errstr_size)
{
        cJSON *k = parse_exact(key, key_len);
        const cJSON *t;
        int rc = -1;

        if (!k) {
                sf_seterr(errstr, errstr_size, "key is not JSON");
                goto out;
        }
        if (!cJSON_IsObject(k)) {
                sf_seterr(errstr, errstr_size, "key is not a JSON object");
                goto out;
        }
        t = cJSON_GetObjectItemCaseSensitive(k, "table");
        if (!cJSON_IsString(t)) {
                sf_seterr(errstr, errstr_size,
                          "key.table is missing or not a string");
                goto out;
        }
        if (strcmp(t->valuestring, c->table)) {
                sf_seterr(errstr, errstr_size,
                          "key.table \"%s\" does not match source.table "
                          "\"%s\"",
                          t->valuestring, c->table);
                goto out;
        }
        rc = take_object(k, "key", "key.key", 0, &c->key, errstr, errstr_size);
out:
        cJSON_Delete(k);
        return rc;
}

static int change_parse_op(const cJSON *v, sf_change_t *c, char *errstr,
                           size_t errstr_size)
{
        const cJSON *op = cJSON_GetObjectItemCaseSensitive(v, "op");
        const char *s;

        if (!op || cJSON_IsNull(op)) {
                sf_seterr(errstr, errstr_size, "op is missing");
                return -1;
        }
        if (!cJSON_IsString(op)) {
                sf_seterr(errstr, errstr_size, "op is not a string");
                return -1;
        }
        s = op->valuestring;
        if (strlen(s) != 1 || !strchr("cudr", s[0])) {
                sf_seterr(errstr, errstr_size,
                          "op \"%.32s\" is not one of c, u, d, r", s);
                return -1;
        }
        c->op = (sf_op_t)s[0];
        return 0;
}

/* source.lsn is a string in our records and a number in Debezium's
 * PostgreSQL connector; both are kept as text. */
static int change_parse_lsn(const cJSON *src, sf_change_t *c, char *errstr,
                            size_t errstr_size)
{
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(src, "lsn");
        uint64_t n;

        if (!l || cJSON_IsNull(l))
                return 0;
        if (cJSON_IsString(l)) {
                c->lsn = sf_strdup(l->valuestring);
                return 0;
        }
        if (!sf_json_get_uint64(l, &n)) {
                c->lsn = sf_asprintf("%" PRIu64, n);
                return 0;
        }
        sf_seterr(errstr, errstr_size, "source.lsn is not a string");
        return -1;
}

static int change_parse_source(const cJSON *v, sf_change_t *c, char *errstr,
                               size_t errstr_size)
{
        const cJSON *src = cJSON_GetObjectItemCaseSensitive(v, "source");
        int rc = 0;

        if (!src || cJSON_IsNull(src)) {
                sf_seterr(errstr, errstr_size, "source is missing");
                return -1;
        }
        if (!cJSON_IsObject(src)) {
                sf_seterr(errstr, errstr_size, "source is not an object");
                return -1;
        }
        if (!rc)
                rc = get_str(src, "connector", "source.connector", 0,
                             &c->connector, errstr, errstr_size);
        if (!rc)
                rc = get_str(src, "db", "source.db", 0, &c->db, errstr,
                             errstr_size);
        if (!rc)
                rc = get_str(src, "schema", "source.schema", 1, &c->schema,
                             errstr, errstr_size);
        if (!rc)
                rc = get_str(src, "table", "source.table", 0, &c->table, errstr,
                             errstr_size);
        if (!rc)
                rc = change_parse_lsn(src, c, errstr, errstr_size);
        if (!rc)
                rc = get_int64(src, "txid", "source.txid", 1, -1, &c->txid,
                               errstr, errstr_size);
        if (!rc)
                rc = get_int64(src, "seq", "source.seq", 1, 0, &c->seq, errstr,
                               errstr_size);
        return rc;
}

/* The images an op needs: c and r an after image, u an after image (the
 * before image is optional: a source without full row images has none),
 * d a before image. */
static int change_check_images(const sf_change_t *c, char *errstr,
                               size_t errstr_size)
{
        int need_after = c->op != SF_OP_DELETE;

        if (need_after && !c->after) {
                sf_seterr(errstr, errstr_size,
                          "after is missing: op \"%c\" needs an after image",
                          (char)c->op);
                return -1;
        }
        if (!need_after && !c->before) {
                sf_seterr(errstr, errstr_size,
                          "before is missing: op \"d\" needs a before image");
                return -1;
        }
        return 0;
}

int sf_change_parse(const void *key, size_t key_len, const void *value,
                    size_t value_len, const char *event_id, sf_change_t *out,
                    char *errstr, size_t errstr_size)
{
        sf_change_t c;
        cJSON *v = NULL;
        int rc = -1;

        memset(&c, 0, sizeof(c));
        c.txid = -1;
        v = parse_value_object(value, value_len, errstr, errstr_size);
        if (!v)
                goto out;
        rc = change_parse_op(v, &c, errstr, errstr_size);
        if (!rc)
                rc = get_int64(v, "ts_ms", "ts_ms", 0, 0, &c.ts_ms, errstr,
                               errstr_size);
        if (!rc)
                rc = change_parse_source(v, &c, errstr, errstr_size);
        if (!rc)
                rc = take_object(v, "before", "before", 1, &c.before, errstr,
                                 errstr_size);
        if (!rc)
                rc = take_object(v, "after", "after", 1, &c.after, errstr,
                                 errstr_size);
        if (!rc)
                rc = change_check_images(&c, errstr, errstr_size);
        if (rc)
                goto out;
        rc = -1;
        if (key && key_len) {
                if (change_parse_key(key, key_len, &c, errstr, errstr_size))
                        goto out;
        } else if (!cJSON_GetObjectItemCaseSensitive(v, "key")) {
                sf_seterr(errstr, errstr_size,
                          "key is missing: the record has no key and the "
                          "value no \"key\"");
                goto out;
        } else if (take_object(v, "key", "key", 0, &c.key, errstr,
                               errstr_size)) {
                goto out;
        }
        if (event_id)
                c.event_id = sf_strdup(event_id);
        else if (c.lsn)
                c.event_id = sf_asprintf("%s:%s:%s:%lld", c.connector, c.db,
                                         c.lsn, (long long)c.seq);
        else
                c.event_id = sf_asprintf("%s:%s:%lld", c.connector, c.db,
                                         (long long)c.seq);
        rc = 0;
out:
        cJSON_Delete(v);
        if (rc)
                sf_change_clear(&c);
        *out = c;
        return rc;
}

/* --- Outbound record ---------------------------------------------------- */

char *sf_outbound_key_json(const sf_outbound_t *o)
{
        cJSON *k = cJSON_CreateObject();

        add_str(k, "action", o->action);
        add_ref(k, "key", o->root_key);
        add_str(k, "table", o->root_table);
        return print_and_delete(k);
}

char *sf_outbound_value_json(const sf_outbound_t *o)
{
        cJSON *v = cJSON_CreateObject();
        cJSON *root;

        add_str(v, "kind", o->kind);
        add_str(v, "action", o->action);
        add_str(v, "event", o->event);
        add_str(v, "table", o->table);
        add_ref(v, "key", o->key);
        root = cJSON_AddObjectToObject(v, "root");
        add_str(root, "table", o->root_table);
        add_ref(root, "key", o->root_key);
        add_ref(v, "record", o->record);
        add_ref(v, "before", o->before);
        add_str(v, "event_id", o->event_id);
        cJSON_AddItemToObject(v, "source_ts_ms",
                              sf_json_int64(o->source_ts_ms));
        cJSON_AddItemToObject(v, "routed_ts_ms",
                              sf_json_int64(o->routed_ts_ms));
        return print_and_delete(v);
}

void sf_outbound_clear(sf_outbound_t *o)
{
        if (!o)
                return;
        free(o->kind);
        free(o->action);
        free(o->event);
        free(o->table);
        cJSON_Delete(o->key);
        free(o->root_table);
        cJSON_Delete(o->root_key);
        cJSON_Delete(o->record);
        cJSON_Delete(o->before);
        free(o->event_id);
        memset(o, 0, sizeof(*o));
}

/* Checks that *S is one of the NULL-terminated ALLOWED values. */
static int check_enum(const char *path, const char *s,
                      const char *const *allowed, const char *list,
                      char *errstr, size_t errstr_size)
{
        for (; *allowed; allowed++)
                if (!strcmp(s, *allowed))
                        return 0;
        sf_seterr(errstr, errstr_size, "%s \"%.32s\" is not one of %s", path, s,
                  list);
        return -1;
}

static int outbound_parse_root(cJSON *v, sf_outbound_t *o, char *errstr,
                               size_t errstr_size)
{
        cJSON *root = cJSON_GetObjectItemCaseSensitive(v, "root");
        int rc = 0;

        if (!root || cJSON_IsNull(root)) {
                sf_seterr(errstr, errstr_size, "root is missing");
                return -1;
        }
        if (!cJSON_IsObject(root)) {
                sf_seterr(errstr, errstr_size, "root is not an object");
                return -1;
        }
        if (!rc)
                rc = get_str(root, "table", "root.table", 0, &o->root_table,
                             errstr, errstr_size);
        if (!rc)
                rc = take_object(root, "key", "root.key", 0, &o->root_key,
                                 errstr, errstr_size);
        return rc;
}

int sf_outbound_parse(const void *value, size_t value_len, sf_outbound_t *out,
                      char *errstr, size_t errstr_size)
{
        static const char *const kinds[] = {"message", "webservice", NULL};
        static const char *const events[] = {"insert", "update", "delete",
                                             NULL};
        sf_outbound_t o;
        cJSON *v = NULL;
        int rc = -1;

        memset(&o, 0, sizeof(o));
        v = parse_value_object(value, value_len, errstr, errstr_size);
        if (!v)
                goto out;
        rc = get_str(v, "kind", "kind", 0, &o.kind, errstr, errstr_size);
        if (!rc)
                rc = check_enum("kind", o.kind, kinds, "message, webservice",
                                errstr, errstr_size);
        if (!rc)
                rc = get_str(v, "action", "action", 0, &o.action, errstr,
                             errstr_size);
        if (!rc)
                rc = get_str(v, "event", "event", 0, &o.event, errstr,
                             errstr_size);
        if (!rc)
                rc = check_enum("event", o.event, events,
                                "insert, update, delete", errstr, errstr_size);
        if (!rc)
                rc = get_str(v, "table", "table", 0, &o.table, errstr,
                             errstr_size);
        if (!rc)
                rc = take_object(v, "key", "key", 0, &o.key, errstr,
                                 errstr_size);
        if (!rc)
                rc = outbound_parse_root(v, &o, errstr, errstr_size);
        if (!rc)
                rc = take_object(v, "record", "record", 1, &o.record, errstr,
                                 errstr_size);
        if (!rc)
                rc = take_object(v, "before", "before", 1, &o.before, errstr,
                                 errstr_size);
        if (!rc)
                rc = get_str(v, "event_id", "event_id", 0, &o.event_id, errstr,
                             errstr_size);
        if (!rc)
                rc = get_int64(v, "source_ts_ms", "source_ts_ms", 0, 0,
                               &o.source_ts_ms, errstr, errstr_size);
        if (!rc)
                rc = get_int64(v, "routed_ts_ms", "routed_ts_ms", 0, 0,
                               &o.routed_ts_ms, errstr, errstr_size);
out:
        cJSON_Delete(v);
        if (rc)
                sf_outbound_clear(&o);
        *out = o;
        return rc;
}
