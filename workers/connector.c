/*
 * The static table of connector types.
 */
#include "connector.h"

extern const sf_connector_ops_t sf_connector_http;
extern const sf_connector_ops_t sf_connector_file;
extern const sf_connector_ops_t sf_connector_database;
extern const sf_connector_ops_t sf_connector_kafka;

static const sf_connector_ops_t *const sf_connectors[] = {
    &sf_connector_http,
    &sf_connector_file,
    &sf_connector_database,
    &sf_connector_kafka,
};

const sf_connector_ops_t *sf_connector_ops(sf_connector_type_t type)
{
        for (size_t i = 0; i < sizeof(sf_connectors) / sizeof(*sf_connectors);
             i++)
                if (sf_connectors[i]->type == type)
                        return sf_connectors[i];
        return NULL;
}
