/*
 * Templates ("{{path | filter}}") and mappings (a YAML tree that mirrors the
 * target document), compiled once at load time and rendered per record.
 *
 * Syntax (PIPELINE.md, "Templates"):
 *   - text outside {{ }} is literal; "\{{" is not needed: a lone "{" is text.
 *   - {{ path }} where path is dot-separated segments of [A-Za-z0-9_-]
 *     (a segment of digits indexes an array): name, address.city,
 *     lines.0.item. A path reads the record's own fields by their names,
 *     whatever they are called: {{status}} is a column named status.
 *   - {{ @name.path }} reads what syncfleet adds, never a field of the
 *     record: @op, @event, @table, @key, @before, @after, @event_id, and
 *     in a web service action's response and error handling @response,
 *     @status, @headers, @error (@key.id, @response.limit,
 *     @headers.content-type). Only the first segment may start with '@';
 *     an unknown @name does not compile.
 *   - filters chain with |: lower upper trim number string bool json
 *     default('x') default(0) date('%Y-%m-%d'). Arguments are single- or
 *     double-quoted strings or numbers.
 *   - A template that is exactly one {{ }} (surrounding spaces allowed inside
 *     the braces only) renders to the JSON value it references, keeping its
 *     type; any other template renders to a string.
 *
 * Values keep integers exact to 64 bits (json.h), in text as in JSON.
 *
 * Filters: lower/upper/trim work on strings; number turns a numeric string
 * or bool into a number (error otherwise); string renders any value as text
 * (objects as compact JSON); bool accepts true/false/1/0/yes/no/on/off;
 * json parses a string holding JSON into a value; default(v) replaces a
 * missing field or null by v; date(fmt) formats an ISO 8601 timestamp
 * ("2026-11-26", "2026-11-26T10:00:00Z", "2026-11-26 10:00:00.123+01:00") or
 * epoch seconds/milliseconds (numbers above 1e11 are milliseconds) with
 * strftime in UTC.
 */
#ifndef SF_TEMPLATE_H
#define SF_TEMPLATE_H

#include <stddef.h>

#include <cjson/cJSON.h>

typedef struct sf_template sf_template_t;

/* A chain of JSON objects searched innermost first. The first segment of a
 * path is looked up in each scope in turn; the first scope that has it
 * resolves the whole path (the rest is not searched further). A scope with
 * AT set holds syncfleet's names (keys without the '@'): only @ paths read
 * it, and @ paths read nothing else, so no field of a record can hide one
 * of syncfleet's names or be hidden by one. */
typedef struct sf_scope {
        const cJSON *obj;
        const struct sf_scope *next;
        int at;
} sf_scope_t;

/* The prefix of syncfleet's names in a template. */
#define SF_TEMPLATE_AT '@'

/* 1 when NAME (LEN bytes, without the '@') is one of syncfleet's names. */
int sf_template_at_known(const char *name, size_t len);
/* "@op, @event, ...": every one of syncfleet's names, for messages. */
const char *sf_template_at_list(void);

/* Compiles SRC. On error returns NULL, writes the reason into errstr and
 * the 0-based byte offset in SRC where the problem is into *err_offset
 * (so the config loader can report LINE:COLUMN). */
sf_template_t *sf_template_compile(const char *src, size_t *err_offset,
                                   char *errstr, size_t errstr_size);
void sf_template_destroy(sf_template_t *t); /* NULL is a no-op */

/* The source text as compiled. */
const char *sf_template_source(const sf_template_t *t);

/* 1 when the template has no {{ }} at all. */
int sf_template_is_literal(const sf_template_t *t);

/* Renders T. Returns a new cJSON value the caller owns, or NULL with a
 * sentence in errstr naming the template and the path, e.g.
 * "missing field 'email' in \"{{email | lower}}\"". */
cJSON *sf_template_render(const sf_template_t *t, const sf_scope_t *scope,
                          char *errstr, size_t errstr_size);

/* Flags for sf_template_render_str. */
/* percent-encode each referenced value; a value "." or ".." (or such a
 * piece between slashes) has its dots encoded too */
#define SF_RENDER_URLENCODE 0x1

/* Renders T to text: strings as they are, numbers and booleans as JSON,
 * null as empty, objects/arrays as compact JSON. Returns a malloc'd string
 * or NULL with errstr set. */
char *sf_template_render_str(const sf_template_t *t, const sf_scope_t *scope,
                             int flags, char *errstr, size_t errstr_size);

/* Calls CB for every path the template references (as written, e.g.
 * "@key.id"). */
typedef void(sf_ref_cb)(const char *path, void *opaque);
void sf_template_refs(const sf_template_t *t, sf_ref_cb *cb, void *opaque);

/* The same, with the byte offset in the source of each reference's "{{",
 * so that a caller can name the place of one reference. */
typedef void(sf_ref_at_cb)(const char *path, size_t offset, void *opaque);
void sf_template_refs_at(const sf_template_t *t, sf_ref_at_cb *cb,
                         void *opaque);

/* A mapping node. The config loader builds the tree from YAML; this module
 * renders it. */
typedef enum sf_mapping_type {
        SF_MAP_LITERAL = 0, /* a YAML number, bool, null: value in literal */
        SF_MAP_TEMPLATE,    /* a YAML string: compiled template in tpl */
        SF_MAP_OBJECT,      /* children are fields; each child has a name */
        SF_MAP_ARRAY,       /* children are items */
        SF_MAP_EACH,        /* { each: PATH, map: NODE }: an array with
                             * one rendering of each_map per element of the
                             * array at PATH; the element is the innermost
                             * scope while rendering it */
} sf_mapping_type_t;

typedef struct sf_mapping {
        sf_mapping_type_t type;
        char *name;                   /* field name inside an OBJECT parent */
        cJSON *literal;               /* LITERAL */
        sf_template_t *tpl;           /* TEMPLATE */
        struct sf_mapping **children; /* OBJECT, ARRAY */
        size_t child_cnt;
        char *each_path;             /* EACH */
        struct sf_mapping *each_map; /* EACH */
        int line, col;               /* in the pipeline file, for messages */
} sf_mapping_t;

/* Constructors for the loader; each takes ownership of what it is given. */
sf_mapping_t *sf_mapping_new(sf_mapping_type_t type, int line, int col);
void sf_mapping_add_child(sf_mapping_t *parent, sf_mapping_t *child);

/* Renders M against SCOPE. Returns a new cJSON value or NULL with errstr
 * naming the path in the document ("customer.email: missing field ..."). A
 * missing `each` path is an error; an `each` over null gives []. */
cJSON *sf_mapping_render(const sf_mapping_t *m, const sf_scope_t *scope,
                         char *errstr, size_t errstr_size);

/* Calls CB for every template reference in the tree and each `each` path. */
void sf_mapping_refs(const sf_mapping_t *m, sf_ref_cb *cb, void *opaque);

void sf_mapping_destroy(sf_mapping_t *m); /* NULL is a no-op */

#endif
