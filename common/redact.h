/*
 * The secrets of the pipeline, and their removal from everything syncfleet
 * writes for people: log lines, dead letters' syncfleet-error header,
 * error messages and `syncfleet validate` output.
 *
 * A registry of values, filled once the configuration is loaded
 * (sf_redact_config) and by the components that learn a secret at run
 * time (an OAuth2 access token). Redaction is by value: wherever a
 * registered value appears in a text, whatever put it there (a target
 * echoing the Authorization header, a URL with userinfo, librdkafka
 * quoting a property), it becomes "***". Each value is registered with
 * the forms it takes on the wire: as written, percent-encoded (a form
 * body, a URL), JSON-escaped (an echoed JSON document), and for basic
 * credentials the base64 of "user:password" an Authorization header
 * carries.
 *
 * Values shorter than SF_REDACT_MIN_LEN bytes are not registered: they
 * would match ordinary text everywhere and protect nothing.
 *
 * Thread-safe: any thread may redact while another registers.
 */
#ifndef SF_REDACT_H
#define SF_REDACT_H

#include <stddef.h>

#include "config.h"

#define SF_REDACT_MIN_LEN 3
#define SF_REDACT_MARK    "***"

/* Registers SECRET (copied) for as long as the process lives. NULL, ""
 * and values already registered are ignored. */
void sf_redact_add(const char *secret);

/* Registers SECRET as one of a series that replace each other (OAuth2
 * access tokens, fetched again when they expire): only the latest
 * SF_REDACT_ROTATING_MAX of the series stay registered, so a long run does
 * not grow the registry without end, while answers to requests that left
 * with the previous token are still redacted. */
#define SF_REDACT_ROTATING_MAX 16
void sf_redact_add_rotating(const char *secret);

/* Registers every secret CFG holds: connector tokens, basic passwords
 * (and their Authorization header), OAuth2 client secrets, the secret
 * header values (Authorization, Cookie, names with key, token, secret,
 * auth, pass or signature), the password of a URL's userinfo and the
 * values of credential-like query parameters of base_url and token_url,
 * the password of source.dsn (URI or key=value form, parsable or not),
 * and the kafka.config values whose key names a secret
 * (sf_redact_is_secret_key). */
void sf_redact_config(const sf_config_t *cfg);

/* 1 when a kafka.config KEY holds a secret: sasl.password,
 * ssl.key.password, ssl.keystore.password, sasl.oauthbearer.client.secret,
 * ssl.key.pem, and any key with "password" or "secret" in its name. */
int sf_redact_is_secret_key(const char *key);

/* The password a PostgreSQL connection string DSN carries (URI
 * userinfo or password=, as written and decoded); NULL when it has
 * none. Works on strings libpq cannot parse. Caller frees both. */
void sf_redact_dsn_password(const char *dsn, char **raw, char **decoded);

/* 1 when at least one value is registered (a cheap test for hot paths). */
int sf_redact_active(void);

/* IN with every registered value replaced by SF_REDACT_MARK, written to
 * OUT (OUT_SIZE > 0; truncated to fit, always terminated). IN and OUT may
 * not overlap. Returns the length written. */
size_t sf_redact_into(const char *in, char *out, size_t out_size);

/* IN redacted in place (the result is never longer than IN). Returns the
 * new length. */
size_t sf_redact_inplace(char *s);

/* A redacted copy of IN (NULL for NULL); the caller frees it. */
char *sf_redact_dup(const char *in);

/* Forgets every value (tests). */
void sf_redact_reset(void);

#endif
