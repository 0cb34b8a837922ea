/*
 * What one step of an action sends: method, path and document, rendered
 * from an outbound record and the record it exports. Shared by the workers
 * and the dry run (`syncfleet validate --event`), so both show the same.
 */
#ifndef SF_RENDER_H
#define SF_RENDER_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "envelope.h"

/* A web service action runs in up to two steps. */
typedef enum sf_step {
        SF_STEP_MAIN = 0, /* message target, or the web service request */
        SF_STEP_RESPONSE, /* response handling after a 2xx */
        SF_STEP_ERROR,    /* error handling after the request failed */
} sf_step_t;

/* The target of STEP of A and, in *MAPPING, its mapping (may be NULL). */
const sf_target_cfg_t *sf_render_target(const sf_action_cfg_t *a,
                                        sf_step_t step,
                                        const sf_mapping_t **mapping);

typedef struct sf_rendered {
        const char *method; /* borrowed from the configuration */
        char *path;  /* http: the rendered path (URL-encoded values); file
                      * in json format: the file name; else NULL */
        cJSON *body; /* the document; NULL: no body */
        int skip;    /* nothing to send (on_delete: skip) */
} sf_rendered_t;

/* Renders STEP of A for OB, which exports RECORD (its fields, plus child
 * records in query mode): a template's path reads RECORD's fields by their
 * own names, and @name reads syncfleet's (render.c). REPLY, for the
 * response and error steps, is what sf_render_reply_response or
 * sf_render_reply_error built; its members are @names of that step.
 * Returns 0, or -1 with errstr naming the template and the missing field:
 * the record can never be sent (it goes to the DLQ). */
int sf_render(const sf_action_cfg_t *a, sf_step_t step, const sf_outbound_t *ob,
              const cJSON *record, const cJSON *reply, sf_rendered_t *out,
              char *errstr, size_t errstr_size);

void sf_rendered_clear(sf_rendered_t *r);

/* 1 when PATH, a rendered http path appended to a connector's base URL,
 * stays under the base path, read the way the strictest target would:
 * '\\', %2F and %5C separate segments too, and %2E is a dot, so a ".."
 * segment (or ".%2E", "%2E%2E", ...) may only go back over a segment of
 * PATH itself. Only the part before '?' or '#' is a path. sf_render
 * refuses a path that is not (the record goes to the DLQ); values already
 * render their lone dots encoded (SF_RENDER_URLENCODE), and the http
 * connector sends a path as rendered (CURLOPT_PATH_AS_IS). */
int sf_render_path_confined(const char *path);

/* The reply of the response step, after a 2xx: @response (the parsed
 * body, borrowed and copied; null when it was not JSON), @status and
 * @headers (HEADERS_JSON, an object of the reply's headers; {} when NULL).
 * The caller owns the result. */
cJSON *sf_render_reply_response(const cJSON *response, int http_status,
                                const char *headers_json);

/* The reply of the error step, once the request finally failed:
 * @error.status (the last HTTP status, 0 without one), @error.message and
 * @error.attempts. The caller owns the result. */
cJSON *sf_render_reply_error(int http_status, const char *message,
                             int attempts);

#endif
