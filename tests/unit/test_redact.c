/*
 * The secrets' registry and redaction (common/redact.c): every form a
 * registered value takes on the wire is replaced, a longer secret before a
 * shorter one inside it, a cut text never keeps the start of a secret, the
 * pipeline's secrets are all found in its configuration, and an answer
 * snippet is cut from redacted text.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "connector_http_int.h"
#include "redact.h"
#include "sf.h"

static int reset(void **state)
{
        (void)state;
        sf_redact_reset();
        return 0;
}

static void expect_redacted(const char *in, const char *out)
{
        char *s = sf_redact_dup(in);

        assert_string_equal(s, out);
        free(s);
}

static void test_forms(void **state)
{
        (void)state;
        expect_redacted("nothing registered: s3/cr+t", "nothing registered: "
                                                       "s3/cr+t");
        sf_redact_add("s3/cr+t\"x");
        expect_redacted("raw s3/cr+t\"x, form s3%2Fcr%2Bt%22x, json "
                        "s3/cr+t\\\"x, json with slash s3\\/cr+t\\\"x, twice "
                        "s3/cr+t\"xs3/cr+t\"x",
                        "raw ***, form ***, json ***, json with slash ***, "
                        "twice ******");
        /* too short to find safely: not registered */
        sf_redact_add("ab");
        expect_redacted("ab cab", "ab cab");
        assert_int_equal(sf_redact_inplace(NULL), 0);
}

static void test_longest_first(void **state)
{
        (void)state;
        sf_redact_add("pass");
        sf_redact_add("password123");
        /* the short one first would leave "***word123" */
        expect_redacted("x password123 y pass", "x *** y ***");
}

static void test_cut_keeps_no_start(void **state)
{
        char out[12];

        (void)state;
        sf_redact_add("TOPSECRETVALUE");
        assert_int_equal(
            sf_redact_into("0123456789TOPSECRETVALUE", out, sizeof(out)), 11);
        assert_string_equal(out, "0123456789*");
        assert_int_equal(sf_redact_into("abc", out, sizeof(out)), 3);
        assert_string_equal(out, "abc");
}

static void test_rotating_bounded(void **state)
{
        char tok[32];

        (void)state;
        sf_redact_add("permanent-secret");
        for (int i = 0; i < SF_REDACT_ROTATING_MAX + 5; i++) {
                snprintf(tok, sizeof(tok), "token-%03d", i);
                sf_redact_add_rotating(tok);
        }
        /* the oldest five are no longer registered, the rest are */
        expect_redacted("token-000 token-004", "token-000 token-004");
        expect_redacted("token-005 token-020", "*** ***");
        expect_redacted("permanent-secret", "***");
}

static void test_dsn_password(void **state)
{
        static const char *const dsns[][3] = {
            {"postgresql://bob:p%40ss%zz@db/erp", "p%40ss%zz", "p@ss%zz"},
            {"postgres://bob:pw@d@db:5432/erp?sslmode=x", "pw@d", "pw@d"},
            {"postgresql://db/erp?user=bob&password=q%20w", "q%20w", "q w"},
            {"host=db password = 'a b\\'c' user=bob", "a b'c", "a b'c"},
            {"host=db password=plain user=bob", "plain", "plain"},
            {"host=db user=bob", NULL, NULL},
        };
        char *raw, *dec;

        (void)state;
        for (size_t i = 0; i < sizeof(dsns) / sizeof(dsns[0]); i++) {
                sf_redact_dsn_password(dsns[i][0], &raw, &dec);
                if (!dsns[i][1]) {
                        assert_null(raw);
                        assert_null(dec);
                        continue;
                }
                assert_string_equal(raw, dsns[i][1]);
                assert_string_equal(dec, dsns[i][2]);
                free(raw);
                free(dec);
        }
}

static void test_secret_keys(void **state)
{
        (void)state;
        assert_true(sf_redact_is_secret_key("sasl.password"));
        assert_true(sf_redact_is_secret_key("ssl.key.password"));
        assert_true(sf_redact_is_secret_key("ssl.keystore.password"));
        assert_true(sf_redact_is_secret_key("sasl.oauthbearer.client.secret"));
        assert_true(sf_redact_is_secret_key("ssl.key.pem"));
        assert_true(sf_redact_is_secret_key("some.new.Secret.thing"));
        assert_false(sf_redact_is_secret_key("sasl.password_file"));
        assert_false(sf_redact_is_secret_key("sasl.username"));
        assert_false(sf_redact_is_secret_key("message.max.bytes"));
}

/* Every secret a pipeline holds is registered by sf_redact_config. */
static void test_config_secrets(void **state)
{
        char *err = NULL;
        sf_config_t *cfg;

        (void)state;
        setenv("SF_R_TOKEN", "bearer-tok-1", 1);
        setenv("SF_R_PW", "basic-pw-2", 1);
        setenv("SF_R_CS", "client-sec-3", 1);
        setenv("SF_R_KPW", "kafka-pw-4", 1);
        setenv("SF_R_DSN", "dsn-pw-5", 1);
        setenv("SF_R_HDR", "hdr-key-6", 1);
        cfg = sf_config_load_string(
            "r.yaml",
            "version: 1\n"
            "name: r\n"
            "kafka: { config: { sasl.password: \"${SF_R_KPW}\", "
            "client.id: plain-client } }\n"
            "source: { type: postgres, dsn: "
            "\"postgresql://bob:${SF_R_DSN}@db/erp\" }\n"
            "connectors:\n"
            "  a: { type: http, base_url: \"https://h/x?api_key=qkey-7&"
            "page=page-value\", auth: { type: bearer, token: "
            "\"${SF_R_TOKEN}\" }, headers: { X-Api-Key: \"${SF_R_HDR}\", "
            "Accept: text/plain } }\n"
            "  b: { type: http, base_url: \"https://carol:url-pw-8@h\", "
            "auth: { type: basic, username: alice, password: \"${SF_R_PW}\" "
            "} }\n"
            "  c: { type: http, base_url: \"https://h\", auth: { type: "
            "oauth2, token_url: \"https://h/t?client_secret=tok-url-9\", "
            "client_id: app, client_secret: \"${SF_R_CS}\" } }\n",
            &err);
        if (!cfg)
                fail_msg("%s", err);
        sf_redact_config(cfg);
        expect_redacted("bearer-tok-1 basic-pw-2 client-sec-3 kafka-pw-4 "
                        "dsn-pw-5 hdr-key-6 qkey-7 url-pw-8 tok-url-9",
                        "*** *** *** *** *** *** *** *** ***");
        /* the Authorization headers of basic credentials: base64 of
         * alice:basic-pw-2 and carol:url-pw-8 */
        expect_redacted("Basic YWxpY2U6YmFzaWMtcHctMg== Basic "
                        "Y2Fyb2w6dXJsLXB3LTg=",
                        "Basic *** Basic ***");
        /* what is not secret stays */
        expect_redacted("plain-client page-value text/plain alice app",
                        "plain-client page-value text/plain alice app");
        sf_config_destroy(cfg);
}

/* A secret across the snippet's cut (200 bytes) leaves nothing of itself. */
static void test_snippet_cut_after_redaction(void **state)
{
        char out[256], body[400];
        sf_buf_t b;

        (void)state;
        sf_redact_add("ACROSS-THE-CUT-SECRET");
        memset(body, 'x', 190);
        strcpy(body + 190, "ACROSS-THE-CUT-SECRET and more");
        b.data = body;
        b.len = strlen(body);
        sf_http_snippet(&b, out, sizeof(out));
        assert_int_equal(strlen(out), 200);
        assert_string_equal(out + 190, "*** and mo");
        assert_null(strstr(out, "ACROSS"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup(test_forms, reset),
            cmocka_unit_test_setup(test_longest_first, reset),
            cmocka_unit_test_setup(test_cut_keeps_no_start, reset),
            cmocka_unit_test_setup(test_rotating_bounded, reset),
            cmocka_unit_test_setup(test_dsn_password, reset),
            cmocka_unit_test_setup(test_secret_keys, reset),
            cmocka_unit_test_setup(test_config_secrets, reset),
            cmocka_unit_test_setup(test_snippet_cut_after_redaction, reset),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
