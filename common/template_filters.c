/*
 * Template filters and the rules for turning a JSON value into text.
 *
 * Every filter lets a missing field through untouched, so a default(...)
 * later in the chain can still supply it, and every filter but string and
 * default lets null through (string renders null as "", default replaces
 * it). Beyond template.h's summary:
 *   - lower and upper map letters with the C.UTF-8 locale's case tables
 *     when the system has that locale, ASCII letters only otherwise; bytes
 *     that are not UTF-8 are kept. trim strips ASCII whitespace.
 *   - number accepts surrounding whitespace, a sign, a fraction and an
 *     exponent, never hex, inf or nan; an integer without fraction or
 *     exponent is exact to 64 bits ("12345678901234567890" stays that).
 *   - bool also takes the numbers 0 and 1; its words ignore case.
 *   - json leaves a value that is not a string as it is, and refuses text
 *     nested deeper than SF_TEMPLATE_DEPTH_MAX.
 *   - date takes HH:MM without seconds too, drops fractions of a second,
 *     reads a time without an offset as UTC, and refuses years outside
 *     0000..9999.
 */
#include <ctype.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <wctype.h>

#include "sf.h"
#include "template_int.h"

/* Epoch numbers above this are milliseconds, at or below it seconds. */
#define SF_DATE_MS_THRESHOLD 1e11
/* Dates outside years 0000..9999 are refused. */
#define SF_DATE_MIN_S (-62167219200LL)
#define SF_DATE_MAX_S 253402300799LL

static const char *const sf_tfilter_names[] = {
    [SF_TF_LOWER] = "lower",   [SF_TF_UPPER] = "upper",
    [SF_TF_TRIM] = "trim",     [SF_TF_NUMBER] = "number",
    [SF_TF_STRING] = "string", [SF_TF_BOOL] = "bool",
    [SF_TF_JSON] = "json",     [SF_TF_DEFAULT] = "default",
    [SF_TF_DATE] = "date",
};

#define SF_TF_COUNT (sizeof(sf_tfilter_names) / sizeof(sf_tfilter_names[0]))

int sf_tfilter_lookup(const char *name, size_t len)
{
        size_t i;

        for (i = 0; i < SF_TF_COUNT; i++)
                if (strlen(sf_tfilter_names[i]) == len &&
                    !memcmp(sf_tfilter_names[i], name, len))
                        return (int)i;
        return -1;
}

const char *sf_tfilter_name(sf_tfilter_kind_t kind)
{
        return (size_t)kind < SF_TF_COUNT ? sf_tfilter_names[kind] : "?";
}

const char *sf_tfilter_known(void)
{
        return "lower, upper, trim, number, string, bool, json, default, "
               "date";
}

int sf_tfilter_set_args(sf_tfilter_t *f, const cJSON *args, char *errstr,
                        size_t errstr_size)
{
        int n = cJSON_GetArraySize(args);
        const cJSON *a = cJSON_GetArrayItem(args, 0);
        const char *name = sf_tfilter_name(f->kind);

        switch (f->kind) {
        case SF_TF_DEFAULT:
                if (n != 1) {
                        sf_seterr(errstr, errstr_size,
                                  "filter 'default' takes exactly one "
                                  "argument, got %d",
                                  n);
                        return -1;
                }
                f->arg = cJSON_Duplicate(a, 1);
                return 0;
        case SF_TF_DATE:
                if (n != 1 || !cJSON_IsString(a) || !*a->valuestring) {
                        sf_seterr(errstr, errstr_size,
                                  "filter 'date' takes one format string "
                                  "argument, e.g. date('%%Y-%%m-%%d')");
                        return -1;
                }
                f->fmt = sf_strdup(a->valuestring);
                return 0;
        default:
                if (n != 0) {
                        sf_seterr(errstr, errstr_size,
                                  "filter '%s' takes no arguments", name);
                        return -1;
                }
                return 0;
        }
}

void sf_tfilter_clear(sf_tfilter_t *f)
{
        cJSON_Delete(f->arg);
        free(f->fmt);
        f->arg = NULL;
        f->fmt = NULL;
}

int sf_template_parse_number(const char *s, size_t n, double *out)
{
        size_t i = 0, int_digits = 0, frac_digits = 0;
        char *copy, *end;
        double d;

        while (n && isspace((unsigned char)s[n - 1]))
                n--;
        while (i < n && isspace((unsigned char)s[i]))
                i++;
        s += i;
        n -= i;
        i = 0;
        if (i < n && (s[i] == '+' || s[i] == '-'))
                i++;
        while (i < n && isdigit((unsigned char)s[i]))
                i++, int_digits++;
        if (i < n && s[i] == '.') {
                i++;
                while (i < n && isdigit((unsigned char)s[i]))
                        i++, frac_digits++;
        }
        if (!int_digits && !frac_digits)
                return -1;
        if (i < n && (s[i] == 'e' || s[i] == 'E')) {
                size_t exp_digits = 0;

                i++;
                if (i < n && (s[i] == '+' || s[i] == '-'))
                        i++;
                while (i < n && isdigit((unsigned char)s[i]))
                        i++, exp_digits++;
                if (!exp_digits)
                        return -1;
        }
        if (i != n)
                return -1;
        copy = sf_strndup(s, n);
        d = strtod(copy, &end);
        free(copy);
        if (!isfinite(d))
                return -1;
        *out = d;
        return 0;
}

/* 1 when the '.' at S[I] is part of a piece of S that is "." or "..",
 * between S's start or end, '/' and '\\' (which are encoded): a dot
 * segment once the value stands alone in a path, which libcurl and the
 * target would resolve instead of sending it as data. */
static int sf_dot_piece(const char *s, size_t n, size_t i)
{
        size_t a = i, z = i;

        while (a > 0 && s[a - 1] == '.')
                a--;
        while (z < n && s[z] == '.')
                z++;
        if (z - a > 2)
                return 0;
        return (a == 0 || s[a - 1] == '/' || s[a - 1] == '\\') &&
               (z == n || s[z] == '/' || s[z] == '\\');
}

int sf_template_append_urlencoded(sf_buf_t *b, const char *s, size_t n)
{
        static const char hex[] = "0123456789ABCDEF";
        char esc[3];
        size_t i, run = 0;

        for (i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];

                if (isalnum(c) || c == '-' || c == '_' || c == '~' ||
                    (c == '.' && !sf_dot_piece(s, n, i))) {
                        run++;
                        continue;
                }
                if (run && sf_buf_append(b, s + i - run, run))
                        return -1;
                run = 0;
                esc[0] = '%';
                esc[1] = hex[c >> 4];
                esc[2] = hex[c & 0xf];
                if (sf_buf_append(b, esc, 3))
                        return -1;
        }
        return run ? sf_buf_append(b, s + n - run, run) : 0;
}

int sf_template_append_value(sf_buf_t *b, const cJSON *v, int urlencode)
{
        char num[64];
        char *json = NULL;
        const char *s = "";
        int rc;

        if (cJSON_IsString(v)) {
                s = v->valuestring;
        } else if (cJSON_IsNumber(v)) {
                s = sf_json_number_text(v, num, sizeof(num));
        } else if (cJSON_IsBool(v)) {
                s = cJSON_IsTrue(v) ? "true" : "false";
        } else if (cJSON_IsObject(v) || cJSON_IsArray(v)) {
                json = sf_json_print(v, 0);
                if (!json)
                        return -1;
                s = json;
        }
        rc = urlencode ? sf_template_append_urlencoded(b, s, strlen(s))
                       : sf_buf_append(b, s, strlen(s));
        free(json);
        return rc;
}

void sf_template_describe(const cJSON *v, char *buf, size_t size)
{
        char num[64];
        size_t n, i;

        if (!v) {
                snprintf(buf, size, "a missing field");
        } else if (cJSON_IsString(v)) {
                /* Quote at most 40 bytes, cut on a UTF-8 boundary. */
                n = strlen(v->valuestring);
                i = n > 40 ? 40 : n;
                while (i < n && i > 0 &&
                       ((unsigned char)v->valuestring[i] & 0xC0) == 0x80)
                        i--;
                snprintf(buf, size, "\"%.*s%s\"", (int)i, v->valuestring,
                         i < n ? "..." : "");
                for (n = 1; buf[n]; n++)
                        if ((unsigned char)buf[n] < 0x20)
                                buf[n] = '?';
        } else if (cJSON_IsNumber(v)) {
                snprintf(buf, size, "the number %s",
                         sf_json_number_text(v, num, sizeof(num)));
        } else if (cJSON_IsBool(v)) {
                snprintf(buf, size, "the boolean %s",
                         cJSON_IsTrue(v) ? "true" : "false");
        } else if (cJSON_IsNull(v)) {
                snprintf(buf, size, "null");
        } else if (cJSON_IsArray(v)) {
                snprintf(buf, size, "an array");
        } else {
                snprintf(buf, size, "an object");
        }
}

static locale_t sf_utf8_locale;
static pthread_once_t sf_utf8_once = PTHREAD_ONCE_INIT;

static void sf_utf8_init(void)
{
        sf_utf8_locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
}

/* Decodes one UTF-8 sequence at S (N bytes left); returns its length, or 0
 * when the bytes there are not valid UTF-8. */
static size_t sf_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
        size_t len, i;
        uint32_t c;

        if (s[0] < 0x80) {
                *cp = s[0];
                return 1;
        }
        if ((s[0] & 0xE0) == 0xC0) {
                len = 2;
                c = s[0] & 0x1F;
        } else if ((s[0] & 0xF0) == 0xE0) {
                len = 3;
                c = s[0] & 0x0F;
        } else if ((s[0] & 0xF8) == 0xF0) {
                len = 4;
                c = s[0] & 0x07;
        } else {
                return 0;
        }
        if (len > n)
                return 0;
        for (i = 1; i < len; i++) {
                if ((s[i] & 0xC0) != 0x80)
                        return 0;
                c = (c << 6) | (s[i] & 0x3F);
        }
        if ((len == 2 && c < 0x80) || (len == 3 && c < 0x800) ||
            (len == 4 && (c < 0x10000 || c > 0x10FFFF)) ||
            (c >= 0xD800 && c <= 0xDFFF))
                return 0;
        *cp = c;
        return len;
}

static size_t sf_utf8_encode(uint32_t c, char *out)
{
        if (c < 0x80) {
                out[0] = (char)c;
                return 1;
        }
        if (c < 0x800) {
                out[0] = (char)(0xC0 | (c >> 6));
                out[1] = (char)(0x80 | (c & 0x3F));
                return 2;
        }
        if (c < 0x10000) {
                out[0] = (char)(0xE0 | (c >> 12));
                out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
                out[2] = (char)(0x80 | (c & 0x3F));
                return 3;
        }
        out[0] = (char)(0xF0 | (c >> 18));
        out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
        out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[3] = (char)(0x80 | (c & 0x3F));
        return 4;
}

static cJSON *sf_case_map(const char *s, int upper)
{
        const unsigned char *u = (const unsigned char *)s;
        size_t n = strlen(s), i = 0, len;
        uint32_t cp;
        char enc[4];
        sf_buf_t b;
        cJSON *res;

        pthread_once(&sf_utf8_once, sf_utf8_init);
        sf_buf_init(&b, 4 * n + 16); /* a mapping never grows a char 4x */
        while (i < n) {
                len = sf_utf8_decode(u + i, n - i, &cp);
                if (!len) {
                        sf_buf_append(&b, s + i, 1);
                        i++;
                        continue;
                }
                if (cp < 0x80)
                        cp = (uint32_t)(upper ? toupper((int)cp)
                                              : tolower((int)cp));
                else if (sf_utf8_locale)
                        cp = (uint32_t)(upper ? towupper_l((wint_t)cp,
                                                           sf_utf8_locale)
                                              : towlower_l((wint_t)cp,
                                                           sf_utf8_locale));
                sf_buf_append(&b, enc, sf_utf8_encode(cp, enc));
                i += len;
        }
        res = cJSON_CreateString(b.len ? b.data : "");
        sf_buf_free(&b);
        return res;
}

static cJSON *sf_trim(const char *s)
{
        size_t n = strlen(s), i = 0;
        char *copy;
        cJSON *res;

        while (n && isspace((unsigned char)s[n - 1]))
                n--;
        while (i < n && isspace((unsigned char)s[i]))
                i++;
        copy = sf_strndup(s + i, n - i);
        res = cJSON_CreateString(copy);
        free(copy);
        return res;
}

static int sf_parse_bool(const char *s, int *out)
{
        static const char *const yes[] = {"true", "1", "yes", "on"};
        static const char *const no[] = {"false", "0", "no", "off"};
        size_t n = strlen(s), i = 0, k;

        while (n && isspace((unsigned char)s[n - 1]))
                n--;
        while (i < n && isspace((unsigned char)s[i]))
                i++;
        for (k = 0; k < 4; k++) {
                if (strlen(yes[k]) == n - i &&
                    !strncasecmp(s + i, yes[k], n - i)) {
                        *out = 1;
                        return 0;
                }
                if (strlen(no[k]) == n - i &&
                    !strncasecmp(s + i, no[k], n - i)) {
                        *out = 0;
                        return 0;
                }
        }
        return -1;
}

static int sf_json_depth(const cJSON *v, int depth)
{
        const cJSON *c;
        int d, max = depth;

        if (depth > SF_TEMPLATE_DEPTH_MAX)
                return depth;
        cJSON_ArrayForEach(c, v)
        {
                d = sf_json_depth(c, depth + 1);
                if (d > max)
                        max = d;
        }
        return max;
}

static int sf_digits(const char **p, int n, int *out)
{
        int v = 0;

        while (n--) {
                if (!isdigit((unsigned char)**p))
                        return -1;
                v = v * 10 + (**p - '0');
                (*p)++;
        }
        *out = v;
        return 0;
}

/* Days from 1970-01-01 to Y-M-D in the proleptic Gregorian calendar. */
static int64_t sf_days_from_civil(int64_t y, int m, int d)
{
        int64_t era, yoe, doy, doe;

        y -= m <= 2;
        era = (y >= 0 ? y : y - 399) / 400;
        yoe = y - era * 400;
        doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + doe - 719468;
}

static int sf_month_days(int y, int m)
{
        static const int days[] = {31, 28, 31, 30, 31, 30,
                                   31, 31, 30, 31, 30, 31};
        int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

        return m == 2 && leap ? 29 : days[m - 1];
}

/* Accepts YYYY-MM-DD, optionally followed by T or a space, HH:MM, :SS,
 * a fraction (dropped), and Z or an offset +HH[:MM] / -HH[:MM]. A time
 * without an offset is UTC. */
static int sf_parse_iso(const char *s, int64_t *epoch)
{
        const char *p = s;
        int y, mo, d, h = 0, mi = 0, sec = 0, oh = 0, om = 0, sign = 0;

        if (sf_digits(&p, 4, &y) || *p != '-')
                return -1;
        p++;
        if (sf_digits(&p, 2, &mo) || *p != '-')
                return -1;
        p++;
        if (sf_digits(&p, 2, &d))
                return -1;
        if (*p == 'T' || *p == 't' || *p == ' ') {
                p++;
                if (sf_digits(&p, 2, &h) || *p != ':')
                        return -1;
                p++;
                if (sf_digits(&p, 2, &mi))
                        return -1;
                if (*p == ':') {
                        p++;
                        if (sf_digits(&p, 2, &sec))
                                return -1;
                        if (*p == '.' || *p == ',') {
                                p++;
                                if (!isdigit((unsigned char)*p))
                                        return -1;
                                while (isdigit((unsigned char)*p))
                                        p++;
                        }
                }
                if (*p == 'Z' || *p == 'z') {
                        p++;
                } else if (*p == '+' || *p == '-') {
                        sign = *p == '-' ? -1 : 1;
                        p++;
                        if (sf_digits(&p, 2, &oh))
                                return -1;
                        if (*p == ':')
                                p++;
                        if (isdigit((unsigned char)*p) && sf_digits(&p, 2, &om))
                                return -1;
                }
        }
        if (*p || mo < 1 || mo > 12 || d < 1 || d > sf_month_days(y, mo) ||
            h > 23 || mi > 59 || sec > 59 || oh > 23 || om > 59)
                return -1;
        *epoch = sf_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 +
                 sec - sign * (oh * 3600 + om * 60);
        return 0;
}

/* An integer literal between spaces ("  -42 ") as an exact number node;
 * NULL for any other text (fractions and exponents are doubles). */
static cJSON *sf_integer_of_text(const char *s)
{
        size_t n = strlen(s);

        while (n && isspace((unsigned char)s[n - 1]))
                n--;
        while (n && isspace((unsigned char)*s)) {
                s++;
                n--;
        }
        return sf_json_integer_text(s, n);
}

/* Writes "filter 'NAME' VERB <value> TAIL" and fails; the value is only
 * described here, so successful renders never pay for it. */
static int sf_tfail(char *errstr, size_t errstr_size, const char *name,
                    const char *verb, const cJSON *in, const char *tail)
{
        char what[96];

        sf_template_describe(in, what, sizeof(what));
        sf_seterr(errstr, errstr_size, "filter '%s' %s %s%s", name, verb, what,
                  tail);
        return -1;
}

static int sf_date(const sf_tfilter_t *f, const cJSON *in, cJSON **out,
                   char *errstr, size_t errstr_size)
{
        char text[256];
        int64_t epoch;
        struct tm tm;
        time_t tt;
        double d;

        if (cJSON_IsNumber(in)) {
                d = in->valuedouble;
                d = d > SF_DATE_MS_THRESHOLD ? floor(d / 1000) : floor(d);
                if (!(d >= (double)SF_DATE_MIN_S && d <= (double)SF_DATE_MAX_S))
                        goto bad;
                epoch = (int64_t)d;
        } else if (!cJSON_IsString(in) ||
                   sf_parse_iso(in->valuestring, &epoch)) {
                goto bad;
        }
        if (epoch < SF_DATE_MIN_S || epoch > SF_DATE_MAX_S)
                goto bad;
        tt = (time_t)epoch;
        if (!gmtime_r(&tt, &tm))
                goto bad;
        if (!strftime(text, sizeof(text), f->fmt, &tm)) {
                sf_seterr(errstr, errstr_size,
                          "filter 'date' output for format '%s' is empty or "
                          "longer than %zu bytes",
                          f->fmt, sizeof(text) - 1);
                return -1;
        }
        *out = cJSON_CreateString(text);
        return 0;
bad:
        return sf_tfail(errstr, errstr_size, "date", "cannot parse", in,
                        " as a date");
}

int sf_tfilter_apply(const sf_tfilter_t *f, const cJSON *in, cJSON **out,
                     char *errstr, size_t errstr_size)
{
        const char *name = sf_tfilter_name(f->kind);
        char tail[64];
        double d;
        int b;
        sf_buf_t buf;

        *out = NULL;
        if (f->kind == SF_TF_DEFAULT) {
                if (!in || cJSON_IsNull(in))
                        *out = cJSON_Duplicate(f->arg, 1);
                return 0;
        }
        if (!in)
                return 0;
        if (cJSON_IsNull(in)) {
                if (f->kind == SF_TF_STRING)
                        *out = cJSON_CreateString("");
                return 0;
        }
        switch (f->kind) {
        case SF_TF_LOWER:
        case SF_TF_UPPER:
        case SF_TF_TRIM:
                if (!cJSON_IsString(in))
                        return sf_tfail(errstr, errstr_size, name,
                                        "needs a string, got", in, "");
                if (f->kind == SF_TF_TRIM)
                        *out = sf_trim(in->valuestring);
                else
                        *out = sf_case_map(in->valuestring,
                                           f->kind == SF_TF_UPPER);
                return 0;
        case SF_TF_NUMBER:
                if (cJSON_IsNumber(in))
                        return 0;
                if (cJSON_IsBool(in)) {
                        *out = cJSON_CreateNumber(cJSON_IsTrue(in) ? 1 : 0);
                        return 0;
                }
                if (!cJSON_IsString(in) ||
                    sf_template_parse_number(in->valuestring,
                                             strlen(in->valuestring), &d))
                        return sf_tfail(errstr, errstr_size, name,
                                        "cannot convert", in, " to a number");
                *out = sf_integer_of_text(in->valuestring);
                if (!*out)
                        *out = cJSON_CreateNumber(d);
                return 0;
        case SF_TF_STRING:
                if (cJSON_IsString(in))
                        return 0;
                sf_buf_init(&buf, SF_TEMPLATE_TEXT_MAX);
                if (sf_template_append_value(&buf, in, 0)) {
                        sf_buf_free(&buf);
                        snprintf(tail, sizeof(tail), " exceeds %u bytes",
                                 SF_TEMPLATE_TEXT_MAX);
                        return sf_tfail(errstr, errstr_size, name, "output for",
                                        in, tail);
                }
                *out = cJSON_CreateString(buf.len ? buf.data : "");
                sf_buf_free(&buf);
                return 0;
        case SF_TF_BOOL:
                if (cJSON_IsBool(in))
                        return 0;
                if (cJSON_IsNumber(in) &&
                    (in->valuedouble == 0 || in->valuedouble == 1)) {
                        *out = cJSON_CreateBool(in->valuedouble == 1);
                        return 0;
                }
                if (!cJSON_IsString(in) || sf_parse_bool(in->valuestring, &b))
                        return sf_tfail(errstr, errstr_size, name,
                                        "cannot convert", in, " to a boolean");
                *out = cJSON_CreateBool(b);
                return 0;
        case SF_TF_JSON:
                if (!cJSON_IsString(in))
                        return 0;
                *out = sf_json_parse(in->valuestring, strlen(in->valuestring));
                if (!*out)
                        return sf_tfail(errstr, errstr_size, name,
                                        "cannot parse", in, " as JSON");
                if (sf_json_depth(*out, 1) > SF_TEMPLATE_DEPTH_MAX) {
                        cJSON_Delete(*out);
                        *out = NULL;
                        snprintf(tail, sizeof(tail),
                                 " nested deeper than %d levels",
                                 SF_TEMPLATE_DEPTH_MAX);
                        return sf_tfail(errstr, errstr_size, name, "got", in,
                                        tail);
                }
                return 0;
        case SF_TF_DATE:
                return sf_date(f, in, out, errstr, errstr_size);
        case SF_TF_DEFAULT:
                break;
        }
        return 0;
}
