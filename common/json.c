/*
 * JSON with exact 64-bit integers (json.h) on top of cJSON.
 *
 * Choices the header leaves open:
 * - Parsing: cJSON parses the text; when the text holds a run of 16 or
 *   more digits (every integer beyond 2^53 does), a second pass walks the
 *   text's number tokens and the tree's number nodes together, in document
 *   order (cJSON builds objects and arrays in that order, and a text cJSON
 *   accepted has its number tokens exactly where the tree has numbers), and
 *   gives each integer token beyond 2^53 its digits. A token whose value
 *   does not match its node's double stops the walk, so a mismatch can
 *   only lose exactness, never attach wrong digits. Texts without such a
 *   run, nearly all of them, pay for one scan for digits.
 * - The digits are normalised (no '+', no leading zeros), so equal
 *   integers have equal text.
 * - Numbers print as canonical JSON printed them before exact integers
 *   existed: integral doubles below 1e21 in magnitude as plain digits (-0
 *   as 0), others in the shortest of %.15g/%.16g/%.17g that reads back to
 *   the same double, NaN and infinities as null. cJSON 1.7.15's own
 *   printer writes 9007199254740992 as "9.00719925474099e+15", which reads
 *   back as a different number, so nothing that goes out uses it.
 * - Strings are escaped exactly as cJSON does: \" \\ \b \f \n \r \t, other
 *   bytes below 0x20 as \u00xx, everything else (UTF-8 included) verbatim.
 */
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 2^53: every integer up to it in magnitude is exact as a double. */
#define JSON_EXACT_DOUBLE_MAX 9007199254740992ULL
/* Fewest digits of an integer beyond 2^53. */
#define JSON_EXACT_MIN_DIGITS 16
#define JSON_INT64_MIN_MAG    9223372036854775808ULL

/* --- integers as text ---------------------------------------------------- */

/* Parses N bytes of S as [+-]digits into a sign and a magnitude within
 * -2^63 .. 2^64 - 1; 0 or -1. */
static int json_int_parse(const char *s, size_t n, int *neg, uint64_t *mag)
{
        size_t i = 0;
        uint64_t m = 0;

        *neg = 0;
        if (i < n && (s[i] == '-' || s[i] == '+')) {
                *neg = s[i] == '-';
                i++;
        }
        if (i == n)
                return -1;
        for (; i < n; i++) {
                unsigned d = (unsigned char)s[i] - '0';

                if (d > 9)
                        return -1;
                if (m > (UINT64_MAX - d) / 10)
                        return -1;
                m = m * 10 + d;
        }
        if (*neg && m > JSON_INT64_MIN_MAG)
                return -1;
        if (!m)
                *neg = 0;
        *mag = m;
        return 0;
}

/* The digits of a sign and magnitude into BUF (at least 22 bytes);
 * returns the length. */
static size_t json_int_format(int neg, uint64_t mag, char *buf)
{
        char digits[24], *d = digits + sizeof(digits);
        size_t n;

        do {
                *--d = (char)('0' + mag % 10);
                mag /= 10;
        } while (mag);
        if (neg)
                *--d = '-';
        n = (size_t)(digits + sizeof(digits) - d);
        memcpy(buf, d, n);
        buf[n] = '\0';
        return n;
}

static double json_int_double(int neg, uint64_t mag)
{
        return neg ? -(double)mag : (double)mag;
}

/* A number node for the integer: a plain double up to 2^53, an exact
 * integer beyond. */
static cJSON *json_int_node(int neg, uint64_t mag)
{
        char digits[24];
        cJSON *v = cJSON_CreateNumber(json_int_double(neg, mag));

        if (v && mag > JSON_EXACT_DOUBLE_MAX) {
                json_int_format(neg, mag, digits);
                v->valuestring = sf_strdup(digits);
        }
        return v;
}

cJSON *sf_json_int64(int64_t v)
{
        return v < 0 ? json_int_node(1, (uint64_t)0 - (uint64_t)v)
                     : json_int_node(0, (uint64_t)v);
}

cJSON *sf_json_uint64(uint64_t v)
{
        return json_int_node(0, v);
}

cJSON *sf_json_integer_text(const char *s, size_t n)
{
        uint64_t mag;
        int neg;

        if (!s || json_int_parse(s, n, &neg, &mag))
                return NULL;
        return json_int_node(neg, mag);
}

const char *sf_json_exact(const cJSON *v)
{
        return v && (v->type & 0xff) == cJSON_Number ? v->valuestring : NULL;
}

/* --- the values of numbers ----------------------------------------------- */

/* A number as an integer (sign and magnitude) when it is one within
 * -2^63 .. 2^64 - 1, else as a double. */
typedef struct json_num {
        int is_int;
        int neg;
        uint64_t mag;
        double d;
} json_num_t;

static void json_num_of(const cJSON *v, json_num_t *n)
{
        const char *x = sf_json_exact(v);
        double d = v->valuedouble;

        memset(n, 0, sizeof(*n));
        n->d = d;
        if (x && !json_int_parse(x, strlen(x), &n->neg, &n->mag)) {
                n->is_int = 1;
                return;
        }
        if (isfinite(d) && d == floor(d) && d >= -9223372036854775808.0 &&
            d < 18446744073709551616.0) {
                n->is_int = 1;
                n->neg = d < 0;
                n->mag = (uint64_t)fabs(d);
                if (!n->mag)
                        n->neg = 0;
        }
}

static int json_int_cmp(int aneg, uint64_t amag, int bneg, uint64_t bmag)
{
        if (aneg != bneg)
                return aneg ? -1 : 1;
        if (amag == bmag)
                return 0;
        return (amag < bmag) == !aneg ? -1 : 1;
}

/* An integer against a double that is not one within the range. */
static int json_int_double_cmp(const json_num_t *i, double d)
{
        double f;
        uint64_t fmag;
        int fneg;

        if (isnan(d))
                return -1; /* no JSON text gives NaN; any fixed order */
        if (d >= 18446744073709551616.0)
                return -1;
        if (d < -9223372036854775808.0)
                return 1;
        /* a fraction: the integer is below it exactly when it is at most
         * its floor */
        f = floor(d);
        fneg = f < 0;
        fmag = (uint64_t)fabs(f);
        if (!fmag)
                fneg = 0;
        return json_int_cmp(i->neg, i->mag, fneg, fmag) <= 0 ? -1 : 1;
}

int sf_json_number_cmp(const cJSON *a, const cJSON *b)
{
        json_num_t x, y;

        json_num_of(a, &x);
        json_num_of(b, &y);
        if (x.is_int && y.is_int)
                return json_int_cmp(x.neg, x.mag, y.neg, y.mag);
        if (x.is_int)
                return json_int_double_cmp(&x, y.d);
        if (y.is_int)
                return -json_int_double_cmp(&y, x.d);
        return x.d < y.d ? -1 : x.d > y.d;
}

int sf_json_get_int64(const cJSON *v, int64_t *out)
{
        json_num_t n;

        if (!cJSON_IsNumber(v))
                return -1;
        json_num_of(v, &n);
        if (!n.is_int)
                return -1;
        if (!n.neg && n.mag <= (uint64_t)INT64_MAX)
                *out = (int64_t)n.mag;
        else if (n.neg && n.mag == JSON_INT64_MIN_MAG)
                *out = INT64_MIN;
        else if (n.neg)
                *out = -(int64_t)n.mag;
        else
                return -1;
        return 0;
}

int sf_json_get_uint64(const cJSON *v, uint64_t *out)
{
        json_num_t n;

        if (!cJSON_IsNumber(v))
                return -1;
        json_num_of(v, &n);
        if (!n.is_int || n.neg)
                return -1;
        *out = n.mag;
        return 0;
}

/* A double as the printer writes it, into BUF (64 bytes). The integral
 * path is written by hand: it runs for several numbers of every record,
 * and printf's floating point path is slow. */
static void json_double_text(double d, char *buf, size_t size)
{
        if (!isfinite(d)) {
                snprintf(buf, size, "null");
        } else if (d == 0) {
                snprintf(buf, size, "0");
        } else if (fabs(d) < 18446744073709551616.0 && d == floor(d) &&
                   size >= 24) {
                json_int_format(d < 0, (uint64_t)fabs(d), buf);
        } else if (fabs(d) < 1e21 && d == floor(d)) {
                snprintf(buf, size, "%.0f", d);
        } else {
                for (int prec = 15; prec <= 17; prec++) {
                        snprintf(buf, size, "%.*g", prec, d);
                        if (strtod(buf, NULL) == d)
                                break;
                }
        }
}

char *sf_json_number_text(const cJSON *v, char *buf, size_t size)
{
        const char *x = sf_json_exact(v);

        if (x)
                snprintf(buf, size, "%s", x);
        else
                json_double_text(v ? v->valuedouble : 0, buf, size);
        return buf;
}

/* --- parsing ---------------------------------------------------------------
 */

static int json_is_ws(char c)
{
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int json_is_num_char(char c)
{
        return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == 'e' ||
               c == 'E' || c == '.';
}

/* Whether the text holds a run of JSON_EXACT_MIN_DIGITS digits anywhere
 * (in strings too: this only decides whether to look closer). */
static int json_has_long_digits(const char *p, size_t n)
{
        size_t run = 0;

        for (size_t i = 0; i < n; i++) {
                if (p[i] >= '0' && p[i] <= '9') {
                        if (++run >= JSON_EXACT_MIN_DIGITS)
                                return 1;
                } else {
                        run = 0;
                }
        }
        return 0;
}

/* The number tokens of a text cJSON accepted, in order. */
typedef struct json_scan {
        const char *p, *end;
} json_scan_t;

static const char *json_next_number(json_scan_t *s, size_t *len)
{
        while (s->p < s->end) {
                char c = *s->p;

                if (c == '"') {
                        s->p++;
                        while (s->p < s->end && *s->p != '"')
                                s->p +=
                                    *s->p == '\\' && s->p + 1 < s->end ? 2 : 1;
                        if (s->p < s->end)
                                s->p++;
                } else if (c == '-' || (c >= '0' && c <= '9')) {
                        const char *t = s->p;

                        while (s->p < s->end && json_is_num_char(*s->p))
                                s->p++;
                        *len = (size_t)(s->p - t);
                        return t;
                } else {
                        s->p++;
                }
        }
        return NULL;
}

/* Gives the integers beyond 2^53 under V their digits, walking V in
 * document order alongside S. -1 stops the walk. */
static int json_exact_walk(cJSON *v, json_scan_t *s)
{
        const char *tok;
        size_t len;
        uint64_t mag;
        int neg;

        for (; v; v = v->next) {
                if (v->child && json_exact_walk(v->child, s))
                        return -1;
                if ((v->type & 0xff) != cJSON_Number)
                        continue;
                tok = json_next_number(s, &len);
                if (!tok)
                        return -1;
                if (len < JSON_EXACT_MIN_DIGITS ||
                    json_int_parse(tok, len, &neg, &mag) ||
                    mag <= JSON_EXACT_DOUBLE_MAX)
                        continue;
                if (json_int_double(neg, mag) != v->valuedouble)
                        return -1;
                free(v->valuestring);
                v->valuestring = sf_malloc(24);
                json_int_format(neg, mag, v->valuestring);
        }
        return 0;
}

cJSON *sf_json_parse(const char *text, size_t len)
{
        const char *end = NULL;
        json_scan_t scan;
        char *copy;
        cJSON *v;

        if (!text)
                return NULL;
        /* cJSON cannot require the end of a text that is not
         * NUL-terminated, hence the copy; a NUL inside then ends the
         * text early and fails the check below */
        copy = sf_strndup(text, len);
        v = cJSON_ParseWithOpts(copy, &end, 0);
        if (v) {
                while (end && json_is_ws(*end))
                        end++;
                if (end != copy + len) {
                        cJSON_Delete(v);
                        v = NULL;
                }
        }
        if (v && json_has_long_digits(copy, len)) {
                scan.p = copy;
                scan.end = copy + len;
                json_exact_walk(v, &scan);
        }
        free(copy);
        return v;
}

/* --- comparing -------------------------------------------------------------
 */

static int json_equal(const cJSON *a, const cJSON *b, int depth)
{
        const cJSON *x, *y;

        if (!a || !b)
                return a == b;
        if ((a->type & 0xff) != (b->type & 0xff) || depth > CJSON_NESTING_LIMIT)
                return 0;
        switch (a->type & 0xff) {
        case cJSON_False:
        case cJSON_True:
        case cJSON_NULL:
                return 1;
        case cJSON_Number:
                return sf_json_number_cmp(a, b) == 0;
        case cJSON_String:
        case cJSON_Raw:
                return a->valuestring && b->valuestring &&
                       !strcmp(a->valuestring, b->valuestring);
        case cJSON_Array:
                for (x = a->child, y = b->child; x && y;
                     x = x->next, y = y->next)
                        if (!json_equal(x, y, depth + 1))
                                return 0;
                return !x && !y;
        case cJSON_Object:
                /* as cJSON_Compare: every member of each has an equal
                 * namesake in the other */
                cJSON_ArrayForEach(x, a)
                {
                        y = cJSON_GetObjectItemCaseSensitive(b, x->string);
                        if (!y || !json_equal(x, y, depth + 1))
                                return 0;
                }
                cJSON_ArrayForEach(y, b)
                {
                        if (!cJSON_GetObjectItemCaseSensitive(a, y->string))
                                return 0;
                }
                return 1;
        default:
                return 0;
        }
}

int sf_json_equal(const cJSON *a, const cJSON *b)
{
        return json_equal(a, b, 0);
}

/* --- printing --------------------------------------------------------------
 */

/* The output and whether it hit the buffer's cap, so that an oversized
 * value fails as a whole instead of coming out truncated. */
typedef struct json_out {
        sf_buf_t *b;
        int flags;
        int err;
} json_out_t;

static void put(json_out_t *o, const void *p, size_t n)
{
        if (!o->err && sf_buf_append(o->b, p, n))
                o->err = 1;
}

static void put_tabs(json_out_t *o, int n)
{
        static const char tabs[] = "\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t";

        for (; n > 0; n -= 16)
                put(o, tabs, n < 16 ? (size_t)n : 16);
}

/* Drops what was appended to B after its length was WAS. */
static void buf_truncate(sf_buf_t *b, size_t was)
{
        b->len = was;
        if (b->data)
                b->data[was] = '\0';
}

static void put_string(json_out_t *o, const char *s, size_t len)
{
        static const char hex[] = "0123456789abcdef";
        const unsigned char *p = (const unsigned char *)s;
        const unsigned char *end = p + len;
        const unsigned char *run = p;

        put(o, "\"", 1);
        for (; p < end; p++) {
                char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
                size_t n = 2;

                if (*p >= 0x20 && *p != '"' && *p != '\\')
                        continue;
                switch (*p) {
                case '"':
                case '\\':
                        esc[1] = (char)*p;
                        break;
                case '\b':
                        esc[1] = 'b';
                        break;
                case '\f':
                        esc[1] = 'f';
                        break;
                case '\n':
                        esc[1] = 'n';
                        break;
                case '\r':
                        esc[1] = 'r';
                        break;
                case '\t':
                        esc[1] = 't';
                        break;
                default:
                        memcpy(esc + 1, "u00", 3);
                        esc[4] = hex[*p >> 4];
                        esc[5] = hex[*p & 0xf];
                        n = 6;
                        break;
                }
                put(o, run, (size_t)(p - run));
                put(o, esc, n);
                run = p + 1;
        }
        put(o, run, (size_t)(p - run));
        put(o, "\"", 1);
}

static void put_cstring(json_out_t *o, const char *s)
{
        if (!s)
                s = "";
        put_string(o, s, strlen(s));
}

/* A member and its position, so that duplicate names keep their order. */
typedef struct json_member {
        const cJSON *item;
        size_t idx;
} json_member_t;

static const char *json_name(const cJSON *c)
{
        return c->string ? c->string : "";
}

static int json_member_cmp(const void *a, const void *b)
{
        const json_member_t *x = a, *y = b;
        int c = strcmp(json_name(x->item), json_name(y->item));

        if (c)
                return c;
        return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int json_value(json_out_t *o, const cJSON *v, int depth);

static int json_member(json_out_t *o, const cJSON *c, int first, int depth)
{
        int pretty = o->flags & SF_JSON_PRETTY;

        if (!first)
                put(o, pretty ? ",\n" : ",", pretty ? 2 : 1);
        if (pretty)
                put_tabs(o, depth + 1);
        put_cstring(o, c->string);
        put(o, pretty ? ":\t" : ":", pretty ? 2 : 1);
        return json_value(o, c, depth + 1);
}

static int json_object(json_out_t *o, const cJSON *v, int depth)
{
        json_member_t *m = NULL;
        size_t n = 0, i;
        const cJSON *c;
        int sorted = 1, rc = 0, pretty = o->flags & SF_JSON_PRETTY;

        /* Members already in order (names never decreasing) are written as
         * they are: a stable sort would not move them. */
        for (c = v->child; c; c = c->next) {
                n++;
                if (sorted && c->next &&
                    strcmp(json_name(c), json_name(c->next)) > 0)
                        sorted = 0;
        }
        put(o, pretty ? "{\n" : "{", pretty ? 2 : 1);
        if (sorted || !(o->flags & SF_JSON_SORTED)) {
                for (c = v->child; c && !rc; c = c->next)
                        rc = json_member(o, c, c == v->child, depth);
        } else {
                m = sf_calloc(n, sizeof(*m));
                for (c = v->child, i = 0; c; c = c->next, i++) {
                        m[i].item = c;
                        m[i].idx = i;
                }
                qsort(m, n, sizeof(*m), json_member_cmp);
                for (i = 0; i < n && !rc; i++)
                        rc = json_member(o, m[i].item, i == 0, depth);
                free(m);
        }
        if (pretty) {
                if (n)
                        put(o, "\n", 1);
                put_tabs(o, depth);
        }
        put(o, "}", 1);
        return rc;
}

/* Nesting is bounded as cJSON bounds it when parsing, so a hand-built
 * cyclic or absurdly deep tree fails instead of exhausting the stack. */
static int json_value(json_out_t *o, const cJSON *v, int depth)
{
        char num[64];
        const cJSON *c;
        int rc = 0;

        if (depth > CJSON_NESTING_LIMIT)
                return -1;
        switch (v->type & 0xff) {
        case cJSON_NULL:
                put(o, "null", 4);
                break;
        case cJSON_False:
                put(o, "false", 5);
                break;
        case cJSON_True:
                put(o, "true", 4);
                break;
        case cJSON_Number:
                sf_json_number_text(v, num, sizeof(num));
                put(o, num, strlen(num));
                break;
        case cJSON_String:
                put_cstring(o, v->valuestring);
                break;
        case cJSON_Raw:
                if (!v->valuestring)
                        return -1;
                put(o, v->valuestring, strlen(v->valuestring));
                break;
        case cJSON_Array:
                put(o, "[", 1);
                for (c = v->child; c && !rc; c = c->next) {
                        if (c != v->child)
                                put(o, ", ", o->flags & SF_JSON_PRETTY ? 2 : 1);
                        rc = json_value(o, c, depth + 1);
                }
                put(o, "]", 1);
                break;
        case cJSON_Object:
                rc = json_object(o, v, depth);
                break;
        default:
                return -1;
        }
        return rc;
}

int sf_json_print_append(sf_buf_t *b, const cJSON *v, int flags)
{
        json_out_t o = {b, flags, 0};
        size_t len = b->len;

        if (!v || json_value(&o, v, 0) == -1 || o.err) {
                buf_truncate(b, len);
                return -1;
        }
        return 0;
}

char *sf_json_print(const cJSON *v, int flags)
{
        sf_buf_t b;

        if (!v)
                return NULL;
        sf_buf_init(&b, 0);
        if (sf_json_print_append(&b, v, flags) || b.len == 0) {
                sf_buf_free(&b);
                return NULL;
        }
        return sf_buf_steal(&b);
}

char *sf_json_canonical(const cJSON *v)
{
        return sf_json_print(v, SF_JSON_SORTED);
}

int sf_json_canonical_append(sf_buf_t *b, const cJSON *v)
{
        return sf_json_print_append(b, v, SF_JSON_SORTED);
}

int sf_json_string_append(sf_buf_t *b, const char *s, size_t len)
{
        json_out_t o = {b, 0, 0};
        size_t was = b->len;

        put_string(&o, s, len);
        if (o.err) {
                buf_truncate(b, was);
                return -1;
        }
        return 0;
}

int sf_json_int_append(sf_buf_t *b, int64_t v)
{
        char digits[24];
        size_t n = v < 0 ? json_int_format(1, (uint64_t)0 - (uint64_t)v, digits)
                         : json_int_format(0, (uint64_t)v, digits);

        return sf_buf_append(b, digits, n);
}
