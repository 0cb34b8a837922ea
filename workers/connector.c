/*
 * The static table of connector types.
 */
#include "connector.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

struct sf_doneq_item {
        struct sf_doneq_item *next;
        sf_conn_done_cb *cb;
        void *opaque;
        sf_result_t res;
};

void sf_doneq_push(sf_doneq_t *q, sf_conn_done_cb *cb, void *opaque,
                   sf_status_t status, const char *error)
{
        sf_doneq_item_t *d = sf_calloc(1, sizeof(*d));

        d->cb = cb;
        d->opaque = opaque;
        d->res.status = status;
        d->res.retry_after_ms = -1;
        snprintf(d->res.error, sizeof(d->res.error), "%s", error ? error : "");
        if (q->tail)
                q->tail->next = d;
        else
                q->head = d;
        q->tail = d;
        q->cnt++;
}

int sf_doneq_drain(sf_doneq_t *q)
{
        int n = 0;

        while (q->head) {
                sf_doneq_item_t *d = q->head;

                q->head = d->next;
                if (!q->head)
                        q->tail = NULL;
                q->cnt--;
                d->cb(d->opaque, &d->res);
                free(d);
                n++;
        }
        return n;
}

void sf_doneq_clear(sf_doneq_t *q)
{
        while (q->head) {
                sf_doneq_item_t *d = q->head;

                q->head = d->next;
                free(d);
        }
        q->tail = NULL;
        q->cnt = 0;
}
