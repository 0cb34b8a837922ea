/*
 * The registry of secret values and their redaction (redact.h).
 *
 * Values are kept longest first, so a secret that contains another is
 * replaced whole before the shorter one could cut it in two. Redacting is
 * a scan per value under a read lock: a pipeline has a handful of secrets
 * and a log line is short.
 */

#include "redact.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libpq-fe.h>

#include "sf.h"

typedef struct redact_entry {
        char *v;
        size_t len;
        int rotating;
        unsigned long seq; /* registration order of rotating values */
} redact_entry_t;

static pthread_rwlock_t redact_lock = PTHREAD_RWLOCK_INITIALIZER;
static redact_entry_t *redact_v;
static size_t redact_cnt, redact_cap;
static unsigned long redact_seq;
static atomic_int redact_any;

/* --- registry ------------------------------------------------------------ */

static int redact_has(const char *s, size_t len)
{
        for (size_t i = 0; i < redact_cnt; i++)
                if (redact_v[i].len == len && !memcmp(redact_v[i].v, s, len))
                        return 1;
        return 0;
}

static void redact_drop(size_t i)
{
        free(redact_v[i].v);
        memmove(&redact_v[i], &redact_v[i + 1],
                (redact_cnt - i - 1) * sizeof(*redact_v));
        redact_cnt--;
}

/* Keeps only the newest SF_REDACT_ROTATING_MAX rotating secrets, each
 * with all its forms (the forms of one secret share its seq). Caller holds
 * the write lock. */
static void redact_trim_rotating(void)
{
        for (;;) {
                unsigned long oldest = 0, newest = 0;
                size_t n = 0;

                for (size_t i = 0; i < redact_cnt; i++) {
                        unsigned long q = redact_v[i].seq;

                        if (!redact_v[i].rotating)
                                continue;
                        if (!oldest || q < oldest)
                                oldest = q;
                        if (q > newest)
                                newest = q;
                }
                /* seqs of rotating secrets are consecutive registrations,
                 * but permanent ones interleave: count the distinct ones */
                for (unsigned long q = oldest; oldest && q <= newest; q++)
                        for (size_t i = 0; i < redact_cnt; i++)
                                if (redact_v[i].rotating &&
                                    redact_v[i].seq == q) {
                                        n++;
                                        break;
                                }
                if (n <= SF_REDACT_ROTATING_MAX)
                        return;
                for (size_t i = redact_cnt; i-- > 0;)
                        if (redact_v[i].rotating && redact_v[i].seq == oldest)
                                redact_drop(i);
        }
}

/* Caller holds the write lock. */
static void redact_put(const char *s, size_t len, int rotating,
                       unsigned long seq)
{
        size_t at;

        if (len < SF_REDACT_MIN_LEN || redact_has(s, len))
                return;
        if (redact_cnt == redact_cap) {
                redact_cap = redact_cap ? redact_cap * 2 : 16;
                redact_v = sf_realloc(redact_v, redact_cap * sizeof(*redact_v));
        }
        for (at = 0; at < redact_cnt && redact_v[at].len >= len; at++)
                ;
        memmove(&redact_v[at + 1], &redact_v[at],
                (redact_cnt - at) * sizeof(*redact_v));
        redact_v[at].v = sf_strndup(s, len);
        redact_v[at].len = len;
        redact_v[at].rotating = rotating;
        redact_v[at].seq = seq;
        redact_cnt++;
        atomic_store(&redact_any, 1);
}

/* S percent-encoded as libcurl's curl_easy_escape does (a form body, a
 * URL): every byte but ALPHA, DIGIT and -._~ as %XX. */
static char *redact_pct(const char *s)
{
        static const char hex[] = "0123456789ABCDEF";
        sf_buf_t b;

        sf_buf_init(&b, 0);
        sf_buf_append(&b, "", 0);
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};

                if (isalnum(*p) || strchr("-._~", *p))
                        sf_buf_append(&b, p, 1);
                else
                        sf_buf_append(&b, e, 3);
        }
        return sf_buf_steal(&b);
}

/* S as it appears inside a JSON string: the escapes cJSON and most
 * serializers write (", \, control characters, and "\/" for '/'). */
static char *redact_json(const char *s, int slash)
{
        static const char hex[] = "0123456789abcdef";
        sf_buf_t b;

        sf_buf_init(&b, 0);
        sf_buf_append(&b, "", 0);
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                char u[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15]};

                if (*p == '"' || *p == '\\') {
                        sf_buf_append(&b, "\\", 1);
                        sf_buf_append(&b, p, 1);
                } else if (*p == '/' && slash) {
                        sf_buf_append(&b, "\\/", 2);
                } else if (*p == '\n') {
                        sf_buf_append(&b, "\\n", 2);
                } else if (*p == '\r') {
                        sf_buf_append(&b, "\\r", 2);
                } else if (*p == '\t') {
                        sf_buf_append(&b, "\\t", 2);
                } else if (*p < 0x20) {
                        sf_buf_append(&b, u, 6);
                } else {
                        sf_buf_append(&b, p, 1);
                }
        }
        return sf_buf_steal(&b);
}

static void redact_register(const char *secret, int rotating)
{
        char *forms[4] = {NULL, NULL, NULL, NULL};
        unsigned long seq;

        if (!secret || strlen(secret) < SF_REDACT_MIN_LEN)
                return;
        forms[0] = redact_pct(secret);
        forms[1] = redact_json(secret, 0);
        forms[2] = redact_json(secret, 1);
        pthread_rwlock_wrlock(&redact_lock);
        seq = ++redact_seq;
        redact_put(secret, strlen(secret), rotating, seq);
        for (int i = 0; i < 3; i++)
                redact_put(forms[i], strlen(forms[i]), rotating, seq);
        if (rotating)
                redact_trim_rotating();
        pthread_rwlock_unlock(&redact_lock);
        for (int i = 0; i < 4; i++)
                free(forms[i]);
}

void sf_redact_add(const char *secret)
{
        redact_register(secret, 0);
}

void sf_redact_add_rotating(const char *secret)
{
        redact_register(secret, 1);
}

int sf_redact_active(void)
{
        return atomic_load(&redact_any);
}

void sf_redact_reset(void)
{
        pthread_rwlock_wrlock(&redact_lock);
        for (size_t i = 0; i < redact_cnt; i++)
                free(redact_v[i].v);
        free(redact_v);
        redact_v = NULL;
        redact_cnt = redact_cap = 0;
        atomic_store(&redact_any, 0);
        pthread_rwlock_unlock(&redact_lock);
}

/* --- redaction ----------------------------------------------------------- */

size_t sf_redact_inplace(char *s)
{
        size_t len, mlen = strlen(SF_REDACT_MARK);

        if (!s)
                return 0;
        len = strlen(s);
        if (!sf_redact_active())
                return len;
        pthread_rwlock_rdlock(&redact_lock);
        for (size_t i = 0; i < redact_cnt; i++) {
                const redact_entry_t *e = &redact_v[i];
                size_t from = 0;
                char *hit;

                while (len - from >= e->len &&
                       (hit = memmem(s + from, len - from, e->v, e->len))) {
                        size_t at = (size_t)(hit - s);

                        memcpy(hit, SF_REDACT_MARK, mlen);
                        memmove(hit + mlen, hit + e->len,
                                len - at - e->len + 1);
                        len -= e->len - mlen;
                        from = at + mlen;
                }
        }
        pthread_rwlock_unlock(&redact_lock);
        return len;
}

size_t sf_redact_into(const char *in, char *out, size_t out_size)
{
        size_t n;

        if (!out_size)
                return 0;
        n = in ? strlen(in) : 0;
        if (n >= out_size) {
                /* redact the whole text first: a secret cut by the
                 * truncation would otherwise leave its start behind */
                char *copy = sf_strdup(in);

                n = sf_redact_inplace(copy);
                if (n >= out_size)
                        n = out_size - 1;
                memcpy(out, copy, n);
                out[n] = '\0';
                free(copy);
                return n;
        }
        memcpy(out, in ? in : "", n + 1);
        return sf_redact_inplace(out);
}

char *sf_redact_dup(const char *in)
{
        char *s;

        if (!in)
                return NULL;
        s = sf_strdup(in);
        sf_redact_inplace(s);
        return s;
}

/* --- what the configuration holds ---------------------------------------- */

int sf_redact_is_secret_key(const char *key)
{
        static const char *const exact[] = {
            "sasl.password",         "ssl.key.password",
            "ssl.keystore.password", "sasl.oauthbearer.client.secret",
            "ssl.key.pem",           NULL};
        size_t n;

        if (!key)
                return 0;
        n = strlen(key);
        if (n > 5 && !strcmp(key + n - 5, "_file"))
                return 0; /* names a file; its content is in the plain key */
        for (int i = 0; exact[i]; i++)
                if (!strcasecmp(key, exact[i]))
                        return 1;
        return strcasestr(key, "password") || strcasestr(key, "secret");
}

static int redact_hexval(int c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        c = tolower(c);
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        return -1;
}

/* S (N bytes) with %XX decoded (and '+' as space when FORM); bad escapes
 * stay as written. Caller frees. */
static char *redact_unpct(const char *s, size_t n, int form)
{
        char *out = sf_malloc(n + 1), *o = out;

        for (size_t i = 0; i < n; i++) {
                int hi, lo;

                if (s[i] == '%' && i + 2 < n &&
                    (hi = redact_hexval(s[i + 1])) >= 0 &&
                    (lo = redact_hexval(s[i + 2])) >= 0) {
                        *o++ = (char)(hi * 16 + lo);
                        i += 2;
                } else if (form && s[i] == '+') {
                        *o++ = ' ';
                } else {
                        *o++ = s[i];
                }
        }
        *o = '\0';
        return out;
}

static char *redact_base64(const char *s)
{
        static const char tbl[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        size_t n = strlen(s);
        char *out = sf_malloc(4 * ((n + 2) / 3) + 1), *o = out;
        const unsigned char *p = (const unsigned char *)s;

        for (size_t i = 0; i < n; i += 3) {
                unsigned v = (unsigned)p[i] << 16;

                if (i + 1 < n)
                        v |= (unsigned)p[i + 1] << 8;
                if (i + 2 < n)
                        v |= p[i + 2];
                *o++ = tbl[(v >> 18) & 63];
                *o++ = tbl[(v >> 12) & 63];
                *o++ = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
                *o++ = i + 2 < n ? tbl[v & 63] : '=';
        }
        *o = '\0';
        return out;
}

/* The credentials of basic authentication, and the base64 of
 * "user:password" that every Authorization header of them carries. */
static void redact_basic(const char *user, const char *password)
{
        char *pair, *b64;

        if (!password || !*password)
                return;
        sf_redact_add(password);
        pair = sf_asprintf("%s:%s", user ? user : "", password);
        b64 = redact_base64(pair);
        sf_redact_add(b64);
        free(b64);
        free(pair);
}

static int redact_secret_name(const char *name, size_t n)
{
        static const char *const words[] = {
            "key", "token", "secret",     "pass",    "pwd",    "auth",
            "sig", "code",  "credential", "session", "cookie", NULL};
        char *low = sf_strndup(name, n);
        int hit = 0;

        for (char *p = low; *p; p++)
                *p = (char)tolower((unsigned char)*p);
        for (int i = 0; words[i] && !hit; i++)
                hit = strstr(low, words[i]) != NULL;
        free(low);
        return hit;
}

/* The userinfo password of URL and the values of its credential-like
 * query parameters, as written and decoded. */
static void redact_url(const char *url)
{
        const char *p, *auth, *end, *at, *colon, *q;

        if (!url || !(p = strstr(url, "://")))
                return;
        auth = p + 3;
        end = auth + strcspn(auth, "/?#");
        at = NULL;
        for (const char *s = auth; s < end; s++)
                if (*s == '@')
                        at = s; /* the last one: '@' in a password */
        if (at && (colon = memchr(auth, ':', (size_t)(at - auth)))) {
                char *raw = sf_strndup(colon + 1, (size_t)(at - colon - 1));
                char *user = sf_strndup(auth, (size_t)(colon - auth));
                char *dec = redact_unpct(raw, strlen(raw), 0);
                char *udec = redact_unpct(user, strlen(user), 0);

                sf_redact_add(raw);
                redact_basic(udec, dec); /* libcurl sends it as basic */
                free(raw);
                free(user);
                free(dec);
                free(udec);
        }
        if (!(q = strchr(end, '?')))
                return;
        for (q++; *q && *q != '#';) {
                size_t n = strcspn(q, "&#");
                const char *eq = memchr(q, '=', n);

                if (eq && redact_secret_name(q, (size_t)(eq - q))) {
                        char *raw =
                            sf_strndup(eq + 1, n - (size_t)(eq - q) - 1);
                        char *dec = redact_unpct(raw, strlen(raw), 1);

                        sf_redact_add(raw);
                        sf_redact_add(dec);
                        free(raw);
                        free(dec);
                }
                q += n;
                if (*q == '&')
                        q++;
        }
}

/* key=value form: the value of password=, quoted or not (libpq's rules:
 * single quotes, backslash escapes), found without libpq so that a string
 * libpq refuses is covered too. */
static char *redact_kv_password(const char *dsn)
{
        const char *p = dsn;

        while ((p = strstr(p, "password"))) {
                const char *v = p + 8;
                sf_buf_t b;

                if (p > dsn && !isspace((unsigned char)p[-1])) {
                        p = v;
                        continue;
                }
                while (isspace((unsigned char)*v))
                        v++;
                if (*v != '=') {
                        p = v;
                        continue;
                }
                v++;
                while (isspace((unsigned char)*v))
                        v++;
                sf_buf_init(&b, 0);
                sf_buf_append(&b, "", 0);
                if (*v == '\'') {
                        for (v++; *v && *v != '\''; v++) {
                                if (*v == '\\' && v[1])
                                        v++;
                                sf_buf_append(&b, v, 1);
                        }
                } else {
                        for (; *v && !isspace((unsigned char)*v); v++) {
                                if (*v == '\\' && v[1])
                                        v++;
                                sf_buf_append(&b, v, 1);
                        }
                }
                return sf_buf_steal(&b);
        }
        return NULL;
}

void sf_redact_dsn_password(const char *dsn, char **raw, char **decoded)
{
        *raw = *decoded = NULL;
        if (!dsn)
                return;
        if (!strncmp(dsn, "postgresql://", 13) ||
            !strncmp(dsn, "postgres://", 11)) {
                const char *auth = strstr(dsn, "://") + 3;
                const char *end = auth + strcspn(auth, "/?#");
                const char *at = NULL, *colon;

                for (const char *s = auth; s < end; s++)
                        if (*s == '@')
                                at = s;
                if (at && (colon = memchr(auth, ':', (size_t)(at - auth)))) {
                        *raw = sf_strndup(colon + 1, (size_t)(at - colon - 1));
                        *decoded = redact_unpct(*raw, strlen(*raw), 0);
                }
                if (!*raw) {
                        /* ?password=... */
                        const char *q = strstr(dsn, "password=");

                        if (q) {
                                size_t n = strcspn(q + 9, "&#");

                                *raw = sf_strndup(q + 9, n);
                                *decoded = redact_unpct(*raw, n, 0);
                        }
                }
                return;
        }
        *raw = redact_kv_password(dsn);
        if (*raw)
                *decoded = sf_strdup(*raw);
}

static void redact_dsn(const char *dsn)
{
        PQconninfoOption *opts;
        char *raw, *dec;

        sf_redact_dsn_password(dsn, &raw, &dec);
        sf_redact_add(raw);
        sf_redact_add(dec);
        free(raw);
        free(dec);
        opts = dsn ? PQconninfoParse(dsn, NULL) : NULL;
        for (PQconninfoOption *o = opts; o && o->keyword; o++)
                if (!strcmp(o->keyword, "password") && o->val)
                        sf_redact_add(o->val);
        PQconninfoFree(opts);
}

static void redact_header(const sf_kv_t *kv)
{
        const char *sp;

        if (!kv->key || !kv->value ||
            !redact_secret_name(kv->key, strlen(kv->key)))
                return;
        sf_redact_add(kv->value);
        /* "Bearer abc": the credentials alone, too */
        if ((sp = strchr(kv->value, ' ')))
                sf_redact_add(sp + 1 + strspn(sp + 1, " "));
}

void sf_redact_config(const sf_config_t *cfg)
{
        if (!cfg)
                return;
        for (size_t i = 0; i < cfg->connector_cnt; i++) {
                const sf_connector_cfg_t *k = &cfg->connectors[i];

                if (k->type != SF_CONN_HTTP)
                        continue;
                sf_redact_add(k->token);
                redact_basic(k->username, k->password);
                sf_redact_add(k->client_secret);
                redact_url(k->base_url);
                redact_url(k->token_url);
                for (size_t h = 0; h < k->header_cnt; h++)
                        redact_header(&k->headers[h]);
        }
        if (cfg->source.type == SF_SOURCE_POSTGRES)
                redact_dsn(cfg->source.dsn);
        for (size_t i = 0; i < cfg->kafka.config_cnt; i++)
                if (sf_redact_is_secret_key(cfg->kafka.config[i].key))
                        sf_redact_add(cfg->kafka.config[i].value);
}
