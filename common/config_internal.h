/*
 * Inside the pipeline loader: the state of one load and the helpers the
 * config_*.c files share to walk the libyaml document. Not for other
 * modules: they read the finished sf_config_t (config.h).
 *
 * Every helper that checks a node reports what is wrong through
 * sf_cfg_err*() and carries on, so one load collects every problem of the
 * file. A node whose ${VAR} substitution failed is "bad": the helpers skip
 * it silently, the substitution error already explains it.
 */
#ifndef SF_CONFIG_INTERNAL_H
#define SF_CONFIG_INTERNAL_H

#include <stddef.h>

#include <yaml.h>

#include "config.h"

typedef struct sf_cfgerr {
        int line;
        int col;
        size_t seq; /* report order: ties at one position keep it */
        char *msg;
} sf_cfgerr_t;

typedef struct sf_cfgctx {
        const char *name; /* the file, as named in messages */
        sf_config_t *cfg; /* being filled */
        yaml_document_t doc;
        int have_doc;
        size_t node_cnt;
        char **vals;          /* per node: the scalar after ${VAR} */
        unsigned char *flags; /* per node: SF_CFG_F_* */
        sf_cfgerr_t *errs;
        size_t err_cnt;
        size_t err_cap;
        /* per cfg->connectors entry: its type was missing or wrong, so
         * references to it are not checked against a type */
        unsigned char *conn_untyped;
        char envmark; /* stands for '{' and '}' of ${VAR} while parsing */
        /* While an action's templates compile: the action (trigger and
         * source already read) and the step they belong to, against which
         * sf_cfg_template checks their @names and old names. */
        const sf_action_cfg_t *tpl_action;
        int tpl_step; /* SF_CFG_STEP_* */
} sf_cfgctx_t;

#define SF_CFG_STEP_MAIN     0 /* message target and mapping, request */
#define SF_CFG_STEP_RESPONSE 1 /* a web service action's response */
#define SF_CFG_STEP_ERROR    2 /* a web service action's error */

#define SF_CFG_F_FROM_ENV 0x1 /* the scalar took a value from ${VAR} */
#define SF_CFG_F_BAD      0x2 /* substitution failed; already reported */
#define SF_CFG_F_CHECKED  0x4 /* mapping: duplicate keys reported */

/* The keys a mapping may have. VARIANT and ELSEWHERE serve type-dependent
 * sections (connectors, auth, targets): a key that only other variants
 * accept is reported as "not valid for VARIANT". */
typedef struct sf_cfg_keys {
        const char *const *allowed;   /* NULL-terminated */
        const char *const *required;  /* NULL-terminated; may be NULL */
        const char *variant;          /* "a file connector"; may be NULL */
        const char *const *elsewhere; /* NULL-terminated; may be NULL */
} sf_cfg_keys_t;

/* --- config_yaml.c: the document and error collection --- */

/* Parses YAML into c->doc and substitutes ${VAR} in every scalar. Returns
 * 0, or -1 when the document could not be parsed (reported). */
int sf_cfg_parse(sf_cfgctx_t *c, const char *yaml, size_t len);
void sf_cfg_ctx_free(sf_cfgctx_t *c);
/* The collected errors sorted by position, as "FILE:L:C: msg\n" lines. */
char *sf_cfg_errors(sf_cfgctx_t *c);

void sf_cfg_err(sf_cfgctx_t *c, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* At the start of node N (the document start when N is NULL). */
void sf_cfg_errn(sf_cfgctx_t *c, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Where byte OFF of scalar N's value is in the file: exact for one-line
 * plain and quoted scalars, the scalar's start otherwise. */
void sf_cfg_scalar_pos(const yaml_node_t *n, size_t off, int *line, int *col);

yaml_node_t *sf_cfg_root(sf_cfgctx_t *c);
yaml_node_t *sf_cfg_node(sf_cfgctx_t *c, int index);
/* The scalar's value after ${VAR}; NULL for other nodes. */
const char *sf_cfg_scalar(sf_cfgctx_t *c, const yaml_node_t *n);
int sf_cfg_is_bad(sf_cfgctx_t *c, const yaml_node_t *n);
int sf_cfg_from_env(sf_cfgctx_t *c, const yaml_node_t *n);
/* "\"six\"", "a mapping", "a sequence" or "nothing", for messages. */
const char *sf_cfg_describe(sf_cfgctx_t *c, const yaml_node_t *n, char *buf,
                            size_t size);

/* PARENT.KEY, or KEY at the top level; PARENT[I]. Caller frees. */
char *sf_cfg_path(const char *parent, const char *key);
char *sf_cfg_path_index(const char *parent, size_t i);
/* "in PATH" or "at the top level", for messages about keys of PATH. */
const char *sf_cfg_where(const char *path, char *buf, size_t size);

/* Closest of CANDS (CNT of them) to WORD within Levenshtein distance 2,
 * or NULL. */
const char *sf_cfg_closest(const char *word, const char *const *cands,
                           size_t cnt);

/* Reports a reference to a NAME that is not among NAMES: "unknown WHAT
 * 'NAME' in PATH", with a near miss when there is one. */
void sf_cfg_unknown(sf_cfgctx_t *c, yaml_node_t *n, const char *what,
                    const char *name, const char *path,
                    const char *const *names, size_t cnt);

/* Decimal number syntax: [-+]digits[.digits][e[-+]digits]. *integral is
 * set when there is neither a fraction nor an exponent. */
int sf_cfg_numeric(const char *s, int *integral);

/* --- config_yaml.c: mappings and their keys --- */

/* 0 when N is a mapping, after reporting its duplicate keys (once per
 * node); -1 (reported) otherwise. */
int sf_cfg_map(sf_cfgctx_t *c, yaml_node_t *n, const char *path);
/* 1 when pair P of mapping N is the first one with a string key; the rest
 * are duplicates or bad keys, already reported by sf_cfg_map(). */
int sf_cfg_pair_ok(sf_cfgctx_t *c, yaml_node_t *n, yaml_node_pair_t *p);
/* The value of KEY in mapping N, or NULL. */
yaml_node_t *sf_cfg_get(sf_cfgctx_t *c, yaml_node_t *n, const char *key);
/* sf_cfg_map() plus unknown and missing keys. */
int sf_cfg_keys(sf_cfgctx_t *c, yaml_node_t *n, const char *path,
                const sf_cfg_keys_t *keys);

/* --- config_values.c: typed values. N may be NULL (key absent): returns 1 and
 * leaves *out as it was (the default). 0 when set, -1 when reported as wrong.
 * --- */

int sf_cfg_str(sf_cfgctx_t *c, yaml_node_t *n, const char *path, char **out);
/* A string of [A-Za-z0-9_] not starting with a digit, optionally
 * "schema.name": table and column names that reach SQL. */
int sf_cfg_ident(sf_cfgctx_t *c, yaml_node_t *n, const char *path,
                 const char *what, char **out);
/* A name of [A-Za-z0-9._-] (connectors, messages, web service actions):
 * names reach topic keys, file names and metrics. */
int sf_cfg_name(sf_cfgctx_t *c, yaml_node_t *n, const char *path,
                const char *what, char **out);
int sf_cfg_int(sf_cfgctx_t *c, yaml_node_t *n, const char *path, long min,
               long max, int *out);
int sf_cfg_double(sf_cfgctx_t *c, yaml_node_t *n, const char *path, double min,
                  double *out);
int sf_cfg_bool(sf_cfgctx_t *c, yaml_node_t *n, const char *path, int *out);
/* *out = index of the value in NAMES (NULL-terminated). */
int sf_cfg_enum(sf_cfgctx_t *c, yaml_node_t *n, const char *path,
                const char *const *names, int *out);
/* A sequence of identifiers, or one identifier; at least one. */
int sf_cfg_idents(sf_cfgctx_t *c, yaml_node_t *n, const char *path,
                  const char *what, char ***out, size_t *cnt);
/* A mapping of strings to strings (scalars of any kind, as text). When
 * IDENTS, keys and values must be identifiers. */
int sf_cfg_kvs(sf_cfgctx_t *c, yaml_node_t *n, const char *path, int idents,
               sf_kv_t **out, size_t *cnt);
/* The secret KEY of mapping MAP, from ${VAR} or from the file named by
 * KEY_file (relative to the pipeline's directory). A literal is refused.
 * REQUIRED: one of the two must be given. */
int sf_cfg_secret(sf_cfgctx_t *c, yaml_node_t *map, const char *path,
                  const char *key, int required, char **out);

/* kafka.config: a mapping of librdkafka properties (sf_cfg_kvs), where
 * PROPERTY_file: PATH reads the value of PROPERTY from the file PATH
 * (relative to the pipeline's directory; sasl.password_file, say), and a
 * credential (a property naming a password or a secret) written as a
 * literal is refused: ${VAR} or the _file form. */
int sf_cfg_kafka_config(sf_cfgctx_t *c, yaml_node_t *n, const char *path,
                        sf_kv_t **out, size_t *cnt);

/* PATH made absolute against DIR, with "." and ".." segments folded. */
char *sf_cfg_resolve(const char *dir, const char *path);

/* --- config_mapping.c --- */

/* A compiled template from scalar N (reported and NULL when wrong). Its
 * references are checked against c->tpl_step: @response, @status and
 * @headers belong to response handling, @error to error handling, and in
 * those steps a name that used to read syncfleet's reply without '@'
 * (response, status, headers, error, record) is reported with what to
 * write instead, unless it is a column the pipeline names for the trigger
 * table (a key column, a parent column, a records.where field). */
sf_template_t *sf_cfg_template(sf_cfgctx_t *c, yaml_node_t *n,
                               const char *path);
/* The mapping tree of N; NULL when N is NULL. Parts that are wrong are
 * reported and left out. */
sf_mapping_t *sf_cfg_mapping(sf_cfgctx_t *c, yaml_node_t *n, const char *path);

/* --- config_connectors.c, config_actions.c --- */

void sf_cfg_parse_connectors(sf_cfgctx_t *c, yaml_node_t *n);
/* Appends the messages (or web service actions) of N to cfg->actions. */
void sf_cfg_parse_actions(sf_cfgctx_t *c, yaml_node_t *n,
                          sf_action_kind_t kind);

/* --- config_checks.c --- */

/* Appends "FILE:LINE:COL: warning: msg" to cfg->warnings; the file still
 * loads. */
void sf_cfg_warn(sf_cfgctx_t *c, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void sf_cfg_warnn(sf_cfgctx_t *c, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Reports at N a DSN that libpq's PQconninfoParse refuses, without
 * quoting the parts of it that may be a password. */
void sf_cfg_check_dsn(sf_cfgctx_t *c, yaml_node_t *n, const char *dsn);
/* Reports every kafka.config value librdkafka refuses (at the value), then
 * what a producer or consumer made of the whole refuses (at the section).
 * KAFKA is the kafka section's node, or NULL. */
void sf_cfg_check_kafka(sf_cfgctx_t *c, yaml_node_t *kafka);
/* Warnings that need the whole pipeline: a response mapping copying a
 * whole reply into a table. */
void sf_cfg_check_pipeline(sf_cfgctx_t *c);

/* --- config.c: freeing the parts --- */
void sf_cfg_free_strs(char **v, size_t n);
void sf_cfg_free_kvs(sf_kv_t *v, size_t n);
void sf_cfg_free_connector(sf_connector_cfg_t *conn);
void sf_cfg_free_action(sf_action_cfg_t *a);

#endif
