/*
 * JSON as syncfleet reads and writes it: cJSON trees whose integers are
 * exact to 64 bits, one parser for every JSON text that comes from outside
 * (records, rows, replies, files), one printer for every JSON text that
 * goes out, and exact comparison.
 *
 * cJSON keeps a number as a double, which holds an integer exactly only up
 * to 2^53. An integer beyond that (up to 2^64 - 1, down to -2^63) is kept
 * as an *exact integer*: a cJSON_Number node whose valuestring holds its
 * decimal digits ("-9223372036854775808", "18446744073709551615"), with
 * valuedouble the nearest double for code that only needs an
 * approximation. cJSON itself ignores valuestring for numbers, copies it in
 * cJSON_Duplicate and frees it in cJSON_Delete, so such nodes travel
 * through every tree operation; what reads a number's value for output or
 * comparison uses the functions here. Integers outside that range and
 * numbers with a fraction or an exponent are doubles, as before.
 */
#ifndef SF_JSON_H
#define SF_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "sf.h"

/* Parses LEN bytes of TEXT as one JSON value with nothing but whitespace
 * after it (a NUL byte inside ends the text, so it fails). Integers beyond
 * 2^53 become exact integers. NULL when the text is not JSON. Every parse
 * of JSON from outside syncfleet goes through here. */
cJSON *sf_json_parse(const char *text, size_t len);

/* Numbers holding V exactly (exact integers when a double cannot). */
cJSON *sf_json_int64(int64_t v);
cJSON *sf_json_uint64(uint64_t v);

/* A number node for the integer literal in N bytes of S: an optional sign
 * and decimal digits, nothing else (no spaces, fraction or exponent).
 * NULL when S is not one, or is outside -2^63 .. 2^64 - 1. */
cJSON *sf_json_integer_text(const char *s, size_t n);

/* The decimal digits of an exact integer, or NULL for any other node. */
const char *sf_json_exact(const cJSON *v);

/* Whether the number V is an integer that fits: 0 with the value in *OUT,
 * -1 otherwise (not a number, a fraction, out of range). Exact for exact
 * integers and for every integral double. */
int sf_json_get_int64(const cJSON *v, int64_t *out);
int sf_json_get_uint64(const cJSON *v, uint64_t *out);

/* The text the printer writes for the number V (exact digits, integral
 * doubles below 1e21 as plain digits, others in the shortest form that
 * reads back; "null" for NaN and infinities) into BUF (64 bytes always
 * suffice). Returns BUF. */
char *sf_json_number_text(const cJSON *v, char *buf, size_t size);

/* Compares two numbers by their exact values: <0, 0, >0. An exact integer
 * and a double compare as the numbers they are, so 2^53 + 1 is neither
 * equal to 2^53 nor to the double nearest to it. */
int sf_json_number_cmp(const cJSON *a, const cJSON *b);

/* Deep equality with exact numbers and case-sensitive member names: what
 * cJSON_Compare(a, b, 1) does, but cJSON compares numbers as doubles
 * within a relative epsilon (2^53 and 2^53 + 2 are "equal" there). NULL
 * equals only NULL. */
int sf_json_equal(const cJSON *a, const cJSON *b);

/* Printer flags. */
#define SF_JSON_SORTED 0x1 /* object members sorted by name (canonical) */
#define SF_JSON_PRETTY 0x2 /* cJSON_Print's layout: tabs and newlines */

/* Prints V: compact (or PRETTY), members in their order (or SORTED),
 * strings escaped as cJSON escapes them, numbers as sf_json_number_text
 * writes them (so exact integers verbatim), raw nodes verbatim. Returns a
 * malloc'd string, or NULL for NULL, a cyclic or too deep tree (deeper than
 * cJSON parses) or output beyond 64 MiB. */
char *sf_json_print(const cJSON *v, int flags);
/* The same appended to B; on failure B is left as it was and -1 is
 * returned. */
int sf_json_print_append(sf_buf_t *b, const cJSON *v, int flags);

/* Canonical JSON: sorted object keys (byte order, recursively, duplicate
 * names in their order), no whitespace, the numbers and strings of
 * sf_json_print. Equal values give equal bytes, so equal keys hash to the
 * same partition. sf_json_print(v, SF_JSON_SORTED). */
char *sf_json_canonical(const cJSON *v);
int sf_json_canonical_append(sf_buf_t *b, const cJSON *v);
/* S[0..LEN-1] as a JSON string, appended to B (0 or -1). */
int sf_json_string_append(sf_buf_t *b, const char *s, size_t len);
/* V's decimal digits appended to B (0 or -1). */
int sf_json_int_append(sf_buf_t *b, int64_t v);

#endif
