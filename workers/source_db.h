/*
 * Reading current records from the source database at export time: the
 * root record of a query-mode message or of a redirected event, and its
 * child records (source.records). One handle per worker thread.
 */
#ifndef SF_SOURCE_DB_H
#define SF_SOURCE_DB_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "sf.h"

typedef struct sf_source_db sf_source_db_t;

/* Opens the pipeline's source database read-only. */
sf_source_db_t *sf_source_db_open(const sf_config_t *cfg, char *errstr,
                                  size_t errstr_size);

/* Reads the record of TABLE whose key columns equal KEY's fields. *OUT is
 * the row as a JSON object, or NULL when there is no such record. Returns
 * SF_OK, SF_RETRY (database busy or unreachable) or SF_FATAL (the key does
 * not fit the table, a column is unknown), with errstr set. */
sf_status_t sf_source_db_get(sf_source_db_t *db, const sf_table_cfg_t *table,
                             const cJSON *key, cJSON **out, char *errstr,
                             size_t errstr_size);

/* Reads the child records REC selects for ROOT (where child column = root
 * field), ordered by the child table's key, as a JSON array in *OUT. */
sf_status_t sf_source_db_children(sf_source_db_t *db,
                                  const sf_records_cfg_t *rec,
                                  const cJSON *root, cJSON **out, char *errstr,
                                  size_t errstr_size);

void sf_source_db_close(sf_source_db_t *db); /* NULL is a no-op */

#endif
