/*
 * What an HTTP answer says, read for the http connector: the headers as a
 * small JSON object, Retry-After, and the start of the body for an error
 * sentence.
 */
#include "connector_http_int.h"

#include "redact.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SF_HTTP_SNIPPET         200
#define SF_HTTP_HEADERS_MAX     8192 /* bytes of response headers kept */
#define SF_HTTP_RETRY_AFTER_MAX (24 * 3600 * 1000LL)

static void http_snippet_cut(const sf_buf_t *body, char *out, size_t out_size);

/* A snippet of BODY cut from its redacted text (redact.h): cut first, a
 * secret across the cut would leave its start behind, which no value
 * matches any more. The window is the snippet plus the longest a secret
 * can be. */
static void http_snippet_redacted(const sf_buf_t *body, char *out,
                                  size_t out_size)
{
        size_t w = body->len < SF_HTTP_SNIPPET + 65536
                       ? body->len
                       : SF_HTTP_SNIPPET + 65536;
        char *text = sf_malloc(w + 1);
        sf_buf_t red;

        for (size_t i = 0; i < w; i++) {
                unsigned char ch = (unsigned char)body->data[i];

                text[i] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
        }
        text[w] = '\0';
        red.data = text;
        red.len = sf_redact_inplace(text);
        http_snippet_cut(&red, out, out_size);
        free(text);
}

void sf_http_snippet(const sf_buf_t *body, char *out, size_t out_size)
{
        if (out_size && body->len && sf_redact_active()) {
                http_snippet_redacted(body, out, out_size);
                return;
        }
        http_snippet_cut(body, out, out_size);
}

static void http_snippet_cut(const sf_buf_t *body, char *out, size_t out_size)
{
        size_t n = body->len < SF_HTTP_SNIPPET ? body->len : SF_HTTP_SNIPPET;

        if (!out_size)
                return;
        if (n >= out_size)
                n = out_size - 1;
        /* never end inside a multi-byte UTF-8 sequence */
        if (n < body->len)
                while (n > 0 && ((unsigned char)body->data[n] & 0xC0) == 0x80)
                        n--;
        for (size_t i = 0; i < n; i++) {
                unsigned char ch = (unsigned char)body->data[i];

                out[i] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
        }
        while (n > 0 && out[n - 1] == ' ')
                n--;
        out[n] = '\0';
}

/* Bounded to SF_HTTP_HEADERS_MAX bytes of names and values: what does not
 * fit is left out. */
char *sf_http_headers_json(CURL *easy)
{
        struct curl_header *h, *prev = NULL;
        cJSON *o = cJSON_CreateObject();
        size_t total = 0;
        char *s;

        while ((h = curl_easy_nextheader(easy, CURLH_HEADER, -1, prev))) {
                size_t nl = strlen(h->name), vl = strlen(h->value);
                cJSON *old;
                char *name;

                prev = h;
                if (total + nl + vl > SF_HTTP_HEADERS_MAX)
                        break;
                total += nl + vl;
                name = sf_strdup(h->name);
                for (char *p = name; *p; p++)
                        if (*p >= 'A' && *p <= 'Z')
                                *p = (char)(*p - 'A' + 'a');
                old = cJSON_GetObjectItemCaseSensitive(o, name);
                if (old && cJSON_IsString(old)) {
                        char *joined =
                            sf_asprintf("%s, %s", old->valuestring, h->value);

                        cJSON_ReplaceItemInObjectCaseSensitive(
                            o, name, cJSON_CreateString(joined));
                        free(joined);
                } else {
                        cJSON_AddStringToObject(o, name, h->value);
                }
                free(name);
        }
        s = sf_json_print(o, 0);
        cJSON_Delete(o);
        return s;
}

int64_t sf_http_retry_after(CURL *easy)
{
        struct curl_header *h;
        const char *v;
        int64_t ms;

        if (curl_easy_header(easy, "Retry-After", 0, CURLH_HEADER, -1, &h) !=
            CURLHE_OK)
                return -1;
        v = h->value;
        while (*v == ' ' || *v == '\t')
                v++;
        if (*v >= '0' && *v <= '9') {
                char *end;
                long long s = strtoll(v, &end, 10);

                if (*end && *end != ' ' && *end != '\t')
                        return -1;
                if (s > SF_HTTP_RETRY_AFTER_MAX / 1000)
                        return SF_HTTP_RETRY_AFTER_MAX;
                return (int64_t)s * 1000;
        } else {
                time_t t = curl_getdate(v, NULL);

                if (t == (time_t)-1)
                        return -1;
                ms = (int64_t)t * 1000 - sf_now_ms();
        }
        if (ms < 0)
                ms = 0;
        if (ms > SF_HTTP_RETRY_AFTER_MAX)
                ms = SF_HTTP_RETRY_AFTER_MAX;
        return ms;
}
