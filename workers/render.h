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
 * records in query mode). REPLY, for the response and error steps, holds
 * response/status/headers or error; record.* then reads RECORD. Returns 0,
 * or -1 with errstr naming the template and the missing field: the record
 * can never be sent (it goes to the DLQ). */
int sf_render(const sf_action_cfg_t *a, sf_step_t step, const sf_outbound_t *ob,
              const cJSON *record, const cJSON *reply, sf_rendered_t *out,
              char *errstr, size_t errstr_size);

void sf_rendered_clear(sf_rendered_t *r);

#endif
