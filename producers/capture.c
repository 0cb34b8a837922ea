/*
 * The table of change capture sources and the calls that dispatch to them.
 */
#include "capture.h"

#include <stdlib.h>

#include "sf.h"

static const sf_capture_source_t *const sf_capture_sources[] = {
    &sf_capture_sqlite,
    &sf_capture_postgres,
};

#define SF_CAPTURE_SOURCE_CNT                                                  \
        (sizeof(sf_capture_sources) / sizeof(sf_capture_sources[0]))

const sf_capture_source_t *sf_capture_source(sf_source_type_t type)
{
        for (size_t i = 0; i < SF_CAPTURE_SOURCE_CNT; i++)
                if (sf_capture_sources[i]->type == type)
                        return sf_capture_sources[i];
        return NULL;
}

static const char *source_type_name(sf_source_type_t type)
{
        switch (type) {
        case SF_SOURCE_NONE:
                return "none";
        case SF_SOURCE_SQLITE:
                return "sqlite";
        case SF_SOURCE_POSTGRES:
                return "postgres";
        }
        return "unknown";
}

sf_capture_t *sf_capture_open(const sf_config_t *cfg, char *errstr,
                              size_t errstr_size)
{
        const sf_capture_source_t *src;
        sf_capture_t *c;
        void *state;

        if (cfg->source.type == SF_SOURCE_NONE) {
                sf_seterr(errstr, errstr_size,
                          "the pipeline has no source section: there is "
                          "nothing to capture");
                return NULL;
        }
        src = sf_capture_source(cfg->source.type);
        if (!src) {
                sf_seterr(errstr, errstr_size,
                          "change capture from source type \"%s\" is not "
                          "available in this build",
                          source_type_name(cfg->source.type));
                return NULL;
        }
        state = src->open(cfg, errstr, errstr_size);
        if (!state)
                return NULL;
        c = sf_calloc(1, sizeof(*c));
        c->src = src;
        c->state = state;
        return c;
}

int sf_capture_install(sf_capture_t *c, char *errstr, size_t errstr_size)
{
        return c->src->install(c->state, errstr, errstr_size);
}

int sf_capture_uninstall(sf_capture_t *c, char *errstr, size_t errstr_size)
{
        return c->src->uninstall(c->state, errstr, errstr_size);
}

int sf_capture_poll(sf_capture_t *c, sf_change_t *out, int max, char *errstr,
                    size_t errstr_size)
{
        return c->src->poll(c->state, out, max, errstr, errstr_size);
}

int sf_capture_ack(sf_capture_t *c, int64_t position, char *errstr,
                   size_t errstr_size)
{
        return c->src->ack(c->state, position, errstr, errstr_size);
}

int sf_capture_rewind(sf_capture_t *c, char *errstr, size_t errstr_size)
{
        return c->src->rewind(c->state, errstr, errstr_size);
}

void sf_capture_close(sf_capture_t *c)
{
        if (!c)
                return;
        c->src->close(c->state);
        free(c);
}
