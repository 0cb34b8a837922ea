/*
 * Inside the DLQ module: what dlq.c, dlq_store.c and dlq_topic.c share.
 * Not for other modules (dlq.h is).
 */
#ifndef SF_DLQ_INT_H
#define SF_DLQ_INT_H

#include "dlq.h"

/* The store of CFG, created (directory, file, schema) when missing. */
sf_dlq_store_t *sf_dlq_store_create(const sf_config_t *cfg, char *errstr,
                                    size_t errstr_size);
/* Writes DL as one row, durably. 0, or -1 with errstr. */
int sf_dlq_store_insert(sf_dlq_store_t *s, const sf_dead_letter_t *dl,
                        char *errstr, size_t errstr_size);

/* The action an outbound record names (malloc'd), or NULL for any other
 * value. */
char *sf_dlq_record_action(const void *value, size_t value_len);
/* The last value of header NAME (malloc'd), or NULL. */
char *sf_dlq_header_str(const rd_kafka_headers_t *h, const char *name);
/* The record's own headers: H without syncfleet's DLQ headers (error,
 * stage, attempts, origin, failed-at). NULL for NULL. */
rd_kafka_headers_t *sf_dlq_own_headers(const rd_kafka_headers_t *h);

#endif
