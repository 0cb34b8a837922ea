/*
 * Authorization for the http connector: basic, bearer, and OAuth2 client
 * credentials (RFC 6749 section 4.4).
 *
 * The OAuth2 token is fetched on the connector's own multi handle, without
 * blocking: while it is on the way, requests wait in the queue. It is kept
 * until shortly before expires_in runs out, or until the target answers a
 * request carrying it with 401; the next request then fetches a new one.
 * A token fetched right after a 401 is "on probation" until the target
 * accepts it once: a 401 for it means the target refuses these credentials
 * whatever the token, and the record fails for good instead of retrying.
 */
#include "connector_http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "redact.h"

#define SF_HTTP_LOG          "http"
#define SF_OAUTH_MARGIN_MS   30000 /* refresh this long before expiry... */
#define SF_OAUTH_MARGIN_PART 10    /* ...or a tenth of the lifetime */

static CURLcode oauth_form_add(CURL *easy, sf_buf_t *form, const char *key,
                               const char *value)
{
        char *esc = curl_easy_escape(easy, value, 0);
        int rc;

        if (!esc)
                return CURLE_OUT_OF_MEMORY;
        rc = sf_buf_printf(form, "%s%s=%s", form->len ? "&" : "", key, esc);
        curl_free(esc);
        return rc ? CURLE_OUT_OF_MEMORY : CURLE_OK;
}

/* Completes every queued request with SF_RETRY and the reason the token
 * could not be had: none of them can start without it. It is the
 * connector's failure, not the records': the worker's circuit backs off
 * and logs it once when it opens, so here it is logged at debug only.
 * MISCONFIGURED: waiting will not mend it. */
static void oauth_fail_queue(sf_conn_t *c, const char *why, int misconfigured)
{
        sf_debug(SF_HTTP_LOG, "connector %s: %s", c->name, why);
        while (c->queue_head) {
                sf_http_req_t *r = c->queue_head;

                c->queue_head = r->next;
                c->queued--;
                r->res.misconfigured = misconfigured;
                sf_http_complete(c, r, SF_RETRY, "%s", why);
        }
        c->queue_tail = NULL;
}

static void oauth_release(sf_conn_t *c)
{
        sf_http_oauth_t *o = &c->oauth;

        if (o->easy) {
                curl_multi_remove_handle(c->multi, o->easy);
                sf_http_easy_put(c, o->easy);
                o->easy = NULL;
        }
        curl_slist_free_all(o->headers);
        o->headers = NULL;
        free(o->form);
        o->form = NULL;
        sf_buf_reset(&o->resp);
}

/* Sends the token request. On failure the queue is failed. */
static void oauth_start(sf_conn_t *c)
{
        const sf_connector_cfg_t *cfg = c->cfg;
        sf_http_oauth_t *o = &c->oauth;
        sf_buf_t form;
        CURLcode rc;
        CURLMcode mc;
        char *why;

        sf_buf_init(&form, 16 * 1024);
        o->easy = sf_http_easy_get(c);
        if (!o->easy) {
                rc = CURLE_FAILED_INIT;
                goto out;
        }
        rc = oauth_form_add(o->easy, &form, "grant_type", "client_credentials");
        if (!rc)
                rc =
                    oauth_form_add(o->easy, &form, "client_id", cfg->client_id);
        if (!rc)
                rc = oauth_form_add(o->easy, &form, "client_secret",
                                    cfg->client_secret);
        if (!rc && cfg->scope && *cfg->scope)
                rc = oauth_form_add(o->easy, &form, "scope", cfg->scope);
        o->form = sf_buf_steal(&form);
        if (!rc)
                rc = sf_http_easy_common(c, o->easy, o->errbuf);
        if (!rc)
                rc = curl_easy_setopt(o->easy, CURLOPT_URL, cfg->token_url);
        if (!rc)
                rc = curl_easy_setopt(o->easy, CURLOPT_POSTFIELDS, o->form);
        if (!rc)
                rc = sf_http_header_add(
                    &o->headers,
                    "Content-Type: application/x-www-form-urlencoded");
        if (!rc)
                rc =
                    sf_http_header_add(&o->headers, "Accept: application/json");
        if (!rc)
                rc = sf_http_header_add(&o->headers, "Expect:");
        if (!rc)
                rc = curl_easy_setopt(o->easy, CURLOPT_HTTPHEADER, o->headers);
        if (!rc)
                rc = curl_easy_setopt(o->easy, CURLOPT_WRITEFUNCTION,
                                      sf_http_write_buf);
        if (!rc)
                rc = curl_easy_setopt(o->easy, CURLOPT_WRITEDATA, &o->resp);
out:
        sf_buf_free(&form);
        if (rc) {
                why = sf_asprintf("oauth2 token from POST %s: %s",
                                  cfg->token_url, curl_easy_strerror(rc));
                oauth_release(c);
                oauth_fail_queue(c, why, 0);
                free(why);
                return;
        }
        o->started_ms = sf_mono_ms();
        mc = curl_multi_add_handle(c->multi, o->easy);
        if (mc) {
                why = sf_asprintf("oauth2 token from POST %s: %s",
                                  cfg->token_url, curl_multi_strerror(mc));
                oauth_release(c);
                oauth_fail_queue(c, why, 0);
                free(why);
        }
}

/* Reads access_token and expires_in from a 2xx token answer into the
 * cache; NULL, or why the answer is unusable. */
static const char *oauth_take_token(sf_conn_t *c)
{
        sf_http_oauth_t *o = &c->oauth;
        cJSON *doc = sf_json_parse(o->resp.data, o->resp.len);
        const cJSON *tok =
            cJSON_GetObjectItemCaseSensitive(doc, "access_token");
        const cJSON *exp = cJSON_GetObjectItemCaseSensitive(doc, "expires_in");
        const char *why = NULL;
        double secs = 0;

        if (!cJSON_IsString(tok) || !*tok->valuestring) {
                why = "the answer has no access_token";
                goto out;
        }
        if (strpbrk(tok->valuestring, "\r\n")) {
                why = "the access_token holds a line break";
                goto out;
        }
        if (cJSON_IsNumber(exp))
                secs = exp->valuedouble;
        else if (cJSON_IsString(exp))
                secs = strtod(exp->valuestring, NULL);
        free(o->token);
        o->token = sf_strdup(tok->valuestring);
        /* from here on no log line or error shows it */
        sf_redact_add_rotating(o->token);
        o->gen++;
        o->probation = o->refused;
        o->refused = 0;
        o->expires_at = 0;
        if (secs > 0) {
                int64_t life = (int64_t)(secs * 1000.0);
                int64_t margin = life / SF_OAUTH_MARGIN_PART;

                if (margin > SF_OAUTH_MARGIN_MS)
                        margin = SF_OAUTH_MARGIN_MS;
                /* counted from when the request left: never too late */
                o->expires_at = o->started_ms + life - margin;
                if (o->expires_at <= 0)
                        o->expires_at = 1;
        }
        sf_debug(SF_HTTP_LOG, "connector %s: oauth2 token %u, expires in %.0fs",
                 c->name, o->gen, secs);
out:
        cJSON_Delete(doc);
        return why;
}

int sf_http_auth_reap(sf_conn_t *c, CURL *easy, CURLcode result)
{
        sf_http_oauth_t *o = &c->oauth;
        const char *url = c->cfg->token_url;
        char snippet[256];
        char *why = NULL;
        int misconfigured = 0;
        const char *bad;
        long code = 0;

        if (!o->easy || easy != o->easy)
                return 0;
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
        if (result != CURLE_OK) {
                sf_debug(SF_HTTP_LOG, "connector %s: POST %s: %s%s%s%s",
                         c->name, url, curl_easy_strerror(result),
                         o->errbuf[0] ? " (" : "", o->errbuf,
                         o->errbuf[0] ? ")" : "");
                misconfigured = sf_http_curl_misconfigured(result);
                if (misconfigured && o->errbuf[0])
                        why = sf_asprintf("oauth2 token from POST %s: %s (%s)",
                                          url, curl_easy_strerror(result),
                                          o->errbuf);
                else
                        why = sf_asprintf("oauth2 token from POST %s: %s", url,
                                          curl_easy_strerror(result));
        } else if (code < 200 || code > 299) {
                sf_http_snippet(&o->resp, snippet, sizeof(snippet));
                why = sf_asprintf("oauth2 token from POST %s: HTTP %ld%s%s",
                                  url, code, snippet[0] ? ": " : "", snippet);
                /* RFC 6749 5.2: the client, its secret, the grant or the
                 * scope refused; another try gets the same answer */
                misconfigured = code == 400 || code == 401 || code == 403;
        } else if ((bad = oauth_take_token(c))) {
                why = sf_asprintf("oauth2 token from POST %s: %s", url, bad);
        }
        oauth_release(c);
        if (why)
                oauth_fail_queue(c, why, misconfigured);
        free(why);
        return 1;
}

int sf_http_auth_ready(sf_conn_t *c)
{
        sf_http_oauth_t *o = &c->oauth;

        if (c->cfg->auth != SF_AUTH_OAUTH2)
                return 1;
        if (o->token && (!o->expires_at || sf_mono_ms() < o->expires_at))
                return 1;
        if (o->token) {
                /* expired, not refused: the next one is not on probation */
                free(o->token);
                o->token = NULL;
        }
        if (!o->easy)
                oauth_start(c);
        return 0;
}

CURLcode sf_http_auth_apply(sf_conn_t *c, sf_http_req_t *req, CURL *easy,
                            struct curl_slist **headers)
{
        const sf_connector_cfg_t *cfg = c->cfg;
        CURLcode rc = CURLE_OK;
        char *line = NULL;

        switch (cfg->auth) {
        case SF_AUTH_BASIC:
                rc = curl_easy_setopt(easy, CURLOPT_HTTPAUTH,
                                      (long)CURLAUTH_BASIC);
                if (!rc)
                        rc = curl_easy_setopt(easy, CURLOPT_USERNAME,
                                              cfg->username);
                if (!rc)
                        rc = curl_easy_setopt(easy, CURLOPT_PASSWORD,
                                              cfg->password ? cfg->password
                                                            : "");
                break;
        case SF_AUTH_BEARER:
                line = sf_asprintf("Authorization: Bearer %s", cfg->token);
                break;
        case SF_AUTH_OAUTH2:
                if (!c->oauth.token)
                        return CURLE_LOGIN_DENIED; /* auth_ready said yes */
                line = sf_asprintf("Authorization: Bearer %s", c->oauth.token);
                req->token_gen = c->oauth.gen;
                req->token_on_probation = c->oauth.probation;
                break;
        default:
                break;
        }
        if (line)
                rc = sf_http_header_add(headers, line);
        free(line);
        return rc;
}

sf_status_t sf_http_auth_answer(sf_conn_t *c, const sf_http_req_t *req,
                                long http_status)
{
        sf_http_oauth_t *o = &c->oauth;

        if (c->cfg->auth != SF_AUTH_OAUTH2 || http_status <= 0)
                return SF_OK;
        if (http_status != 401) {
                if (http_status < 500 && req->token_gen == o->gen)
                        o->probation = 0;
                return SF_OK;
        }
        if (req->token_on_probation) {
                sf_warn(SF_HTTP_LOG,
                        "connector %s: %s %s: 401 for a freshly fetched "
                        "oauth2 token",
                        c->name, req->method, req->url);
                return SF_FATAL;
        }
        if (o->token && req->token_gen == o->gen) {
                sf_info(SF_HTTP_LOG,
                        "connector %s: %s %s: 401, dropping the oauth2 token",
                        c->name, req->method, req->url);
                free(o->token);
                o->token = NULL;
                o->refused = 1;
        }
        return SF_RETRY;
}

void sf_http_auth_free(sf_conn_t *c)
{
        oauth_release(c);
        sf_buf_free(&c->oauth.resp);
        free(c->oauth.token);
        c->oauth.token = NULL;
}
