/*
 * Column values of PostgreSQL into JSON, from their text output.
 *
 * pgoutput (proto_version 1, no binary option) sends every value as its
 * type's text output, formatted by the walsender session's settings; the
 * snapshot reads rows as text too. sf_pg_session_sql pins those settings
 * (ISO dates in UTC, hex bytea, shortest exact floats), so the same value
 * gives the same JSON whichever way it came.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture_postgres_int.h"

const char sf_pg_session_sql[] = "SET DateStyle = 'ISO, YMD'; "
                                 "SET TimeZone = 'UTC'; "
                                 "SET IntervalStyle = 'iso_8601'; "
                                 "SET bytea_output = 'hex'; "
                                 "SET extra_float_digits = 1";

/* A string or raw node owning a copy of TEXT: one copy instead of the two
 * that cJSON_CreateString(sf_strndup(...)) makes, for every column of every
 * change. cJSON_Delete frees valuestring of such nodes. */
static cJSON *pg_node(int type, const char *text, size_t len)
{
        cJSON *v = cJSON_CreateNull();

        v->type = type;
        v->valuestring = sf_strndup(text, len);
        return v;
}

static cJSON *pg_string(const char *text, size_t len)
{
        return pg_node(cJSON_String, text, len);
}

/* How an integer's text is written: PG_INT_TEXT when it is not plain
 * digits (it stays a string), PG_INT_ZERO for "-0", else PG_INT_DIGITS. */
enum { PG_INT_TEXT, PG_INT_ZERO, PG_INT_DIGITS };

static int pg_integer_kind(const char *text, size_t len)
{
        size_t i = 0;

        if (len == 0 || len >= 32)
                return PG_INT_TEXT;
        if (text[0] == '-')
                i = 1;
        if (i == len || (text[i] == '0' && len > i + 1))
                return PG_INT_TEXT;
        for (size_t j = i; j < len; j++)
                if (text[j] < '0' || text[j] > '9')
                        return PG_INT_TEXT;
        /* beyond what json.h holds exactly (-2^63 .. 2^64-1), as the tree
         * path (sf_json_integer_text) decides too: text */
        {
                const char *lim =
                    i ? "9223372036854775808" : "18446744073709551615";
                size_t n = len - i, ln = strlen(lim);

                if (n > ln || (n == ln && memcmp(text + i, lim, n) > 0))
                        return PG_INT_TEXT;
        }
        if (len == 2 && text[0] == '-' && text[1] == '0')
                return PG_INT_ZERO;
        return PG_INT_DIGITS;
}

/* An integer as a number, exact to 64 bits (json.h): printed as the
 * digits it came as, which is the canonical form of an integer. Anything
 * that is not plain digits stays text. */
static cJSON *pg_integer(const char *text, size_t len)
{
        cJSON *v = NULL;

        if (pg_integer_kind(text, len) != PG_INT_TEXT)
                v = sf_json_integer_text(text, len);
        return v ? v : pg_string(text, len);
}

/* float4/float8: NaN and the infinities have no JSON number. */
static cJSON *pg_float(const char *text, size_t len)
{
        char buf[64];
        char *end;
        double d;

        if (len == 0 || len >= sizeof(buf))
                return pg_string(text, len);
        memcpy(buf, text, len);
        buf[len] = '\0';
        if (!strcmp(buf, "NaN") || strstr(buf, "Infinity"))
                return pg_string(text, len);
        d = strtod(buf, &end);
        if (*end)
                return pg_string(text, len);
        return cJSON_CreateNumber(d);
}

static cJSON *pg_json(const char *text, size_t len)
{
        cJSON *v = sf_json_parse(text, len);

        return v ? v : pg_string(text, len);
}

static int pg_hexval(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

char *sf_pg_base64(const unsigned char *p, size_t n)
{
        static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                  "abcdefghijklmnopqrstuvwxyz0123456789+/";
        char *out = sf_malloc((n + 2) / 3 * 4 + 1);
        size_t i, o = 0;

        for (i = 0; i + 2 < n; i += 3) {
                uint32_t v =
                    (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

                out[o++] = tab[v >> 18 & 63];
                out[o++] = tab[v >> 12 & 63];
                out[o++] = tab[v >> 6 & 63];
                out[o++] = tab[v & 63];
        }
        if (i < n) {
                uint32_t v = (uint32_t)p[i] << 16;

                if (i + 1 < n)
                        v |= (uint32_t)p[i + 1] << 8;
                out[o++] = tab[v >> 18 & 63];
                out[o++] = tab[v >> 12 & 63];
                out[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
                out[o++] = '=';
        }
        out[o] = '\0';
        return out;
}

/* bytea in hex output ("\x0aff"), or in the escape output a server set to
 * bytea_output=escape would send ("a\\001"), as base64 of the bytes. */
static cJSON *pg_bytea(const char *text, size_t len)
{
        unsigned char *bytes = sf_malloc(len / 2 + len + 1);
        size_t n = 0, i;
        char *b64;
        cJSON *v;

        if (len >= 2 && text[0] == '\\' && text[1] == 'x') {
                for (i = 2; i + 1 < len; i += 2) {
                        int hi = pg_hexval(text[i]),
                            lo = pg_hexval(text[i + 1]);

                        if (hi < 0 || lo < 0)
                                break;
                        bytes[n++] = (unsigned char)(hi << 4 | lo);
                }
                if (i != len)
                        goto text;
        } else {
                for (i = 0; i < len; i++) {
                        if (text[i] != '\\') {
                                bytes[n++] = (unsigned char)text[i];
                        } else if (i + 1 < len && text[i + 1] == '\\') {
                                bytes[n++] = '\\';
                                i++;
                        } else if (i + 3 < len && text[i + 1] >= '0' &&
                                   text[i + 1] <= '3' && text[i + 2] >= '0' &&
                                   text[i + 2] <= '7' && text[i + 3] >= '0' &&
                                   text[i + 3] <= '7') {
                                bytes[n++] =
                                    (unsigned char)((text[i + 1] - '0') << 6 |
                                                    (text[i + 2] - '0') << 3 |
                                                    (text[i + 3] - '0'));
                                i += 3;
                        } else {
                                goto text;
                        }
                }
        }
        b64 = sf_pg_base64(bytes, n);
        v = cJSON_CreateString(b64);
        free(b64);
        free(bytes);
        return v;
text:
        free(bytes);
        return pg_string(text, len);
}

/* A UTC offset at the end of a time as ISO 8601 wants it: "+00" becomes
 * "Z", "+hh" becomes "+hh:00"; "+hh:mm" stays. */
static void pg_iso_offset(sf_buf_t *b, const char *off, size_t len)
{
        if ((len == 3 && !memcmp(off + 1, "00", 2)) ||
            (len == 6 && !memcmp(off + 1, "00:00", 5))) {
                sf_buf_append(b, "Z", 1);
                return;
        }
        sf_buf_append(b, off, len);
        if (len == 3)
                sf_buf_append(b, ":00", 3);
}

/* Where a time's UTC offset starts ("03:04:05.5+02"), or LEN without one. */
static size_t pg_offset_at(const char *text, size_t len, size_t from)
{
        for (size_t i = from; i < len; i++)
                if (text[i] == '+' || text[i] == '-')
                        return i;
        return len;
}

/* timestamp, timestamptz, time, timetz in ISO DateStyle into ISO 8601:
 * "2024-01-02 03:04:05.5+00" -> "2024-01-02T03:04:05.5Z", into B. -1 for
 * infinity and BC dates, which stay as PostgreSQL writes them. */
static int pg_time_iso(uint32_t type, const char *text, size_t len, sf_buf_t *b)
{
        int has_date = type == PG_TIMESTAMPOID || type == PG_TIMESTAMPTZOID;
        int has_zone = type == PG_TIMESTAMPTZOID || type == PG_TIMETZOID;
        size_t t = 0, off;

        if (memchr(text, 'B', len) ||
            (len && (text[0] == 'i' || text[0] == '-')))
                return -1;
        if (has_date) {
                const char *sp = memchr(text, ' ', len);

                if (!sp)
                        return -1;
                t = (size_t)(sp - text) + 1;
        }
        off = has_zone ? pg_offset_at(text, len, t) : len;
        if (has_date) {
                sf_buf_append(b, text, t - 1);
                sf_buf_append(b, "T", 1);
        }
        sf_buf_append(b, text + t, off - t);
        if (off < len)
                pg_iso_offset(b, text + off, len - off);
        return 0;
}

static cJSON *pg_time(uint32_t type, const char *text, size_t len)
{
        sf_buf_t b;
        cJSON *v;

        sf_buf_init(&b, 0);
        if (pg_time_iso(type, text, len, &b)) {
                sf_buf_free(&b);
                return pg_string(text, len);
        }
        v = cJSON_CreateString(b.data ? b.data : "");
        sf_buf_free(&b);
        return v;
}

cJSON *sf_pg_value_json(uint32_t type, const char *text, size_t len)
{
        switch (type) {
        case PG_BOOLOID:
                if (len == 1 && (text[0] == 't' || text[0] == 'f'))
                        return cJSON_CreateBool(text[0] == 't');
                return pg_string(text, len);
        case PG_INT2OID:
        case PG_INT4OID:
        case PG_INT8OID:
        case PG_OIDOID:
                return pg_integer(text, len);
        case PG_FLOAT4OID:
        case PG_FLOAT8OID:
                return pg_float(text, len);
        case PG_JSONOID:
        case PG_JSONBOID:
                return pg_json(text, len);
        case PG_BYTEAOID:
                return pg_bytea(text, len);
        case PG_TIMESTAMPOID:
        case PG_TIMESTAMPTZOID:
        case PG_TIMEOID:
        case PG_TIMETZOID:
                return pg_time(type, text, len);
        default:
                /* numeric (no precision lost), text, dates, uuid, ... */
                return pg_string(text, len);
        }
}

/* The canonical JSON of a value the fast way: by hand for the types most
 * rows are made of, through the tree for the rest. */
int sf_pg_value_append(sf_buf_t *b, uint32_t type, const char *text, size_t len)
{
        cJSON *v;
        int rc;

        switch (type) {
        case PG_BOOLOID:
                if (len == 1 && (text[0] == 't' || text[0] == 'f'))
                        return text[0] == 't' ? sf_buf_append(b, "true", 4)
                                              : sf_buf_append(b, "false", 5);
                return sf_json_string_append(b, text, len);
        case PG_INT2OID:
        case PG_INT4OID:
        case PG_INT8OID:
        case PG_OIDOID:
                switch (pg_integer_kind(text, len)) {
                case PG_INT_ZERO:
                        return sf_buf_append(b, "0", 1);
                case PG_INT_DIGITS:
                        return sf_buf_append(b, text, len);
                default:
                        return sf_json_string_append(b, text, len);
                }
        case PG_TIMESTAMPOID:
        case PG_TIMESTAMPTZOID:
        case PG_TIMEOID:
        case PG_TIMETZOID: {
                /* the ISO form is at most 4 bytes longer than the text */
                char small[128];
                sf_buf_t iso = {small, 0, sizeof(small), sizeof(small) - 1};

                if (len + 5 > sizeof(small))
                        break;
                if (pg_time_iso(type, text, len, &iso))
                        return sf_json_string_append(b, text, len);
                return sf_json_string_append(b, iso.data, iso.len);
        }
        case PG_FLOAT4OID:
        case PG_FLOAT8OID:
        case PG_JSONOID:
        case PG_JSONBOID:
        case PG_BYTEAOID:
                break;
        default:
                return sf_json_string_append(b, text, len);
        }
        v = sf_pg_value_json(type, text, len);
        rc = sf_json_canonical_append(b, v);
        cJSON_Delete(v);
        return rc;
}

void sf_pg_lsn_format(uint64_t lsn, char *buf, size_t size)
{
        snprintf(buf, size, "%" PRIX32 "/%" PRIX32, (uint32_t)(lsn >> 32),
                 (uint32_t)lsn);
}

int sf_pg_lsn_parse(const char *s, uint64_t *lsn)
{
        unsigned long hi, lo;
        char *end;

        if (!s || !*s)
                return -1;
        errno = 0;
        hi = strtoul(s, &end, 16);
        if (errno || *end != '/' || end == s || hi > 0xffffffffUL)
                return -1;
        s = end + 1;
        lo = strtoul(s, &end, 16);
        if (errno || *end || end == s || lo > 0xffffffffUL)
                return -1;
        *lsn = (uint64_t)hi << 32 | lo;
        return 0;
}
