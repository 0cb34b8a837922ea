/*
 * Small pieces every module that writes SQL needs: identifier quoting and
 * binding a JSON value to an SQLite statement parameter.
 */
#ifndef SF_SQL_H
#define SF_SQL_H

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "sf.h"

/* Appends NAME as one quoted identifier ("a""b" for a"b). */
void sf_sql_ident(sf_buf_t *b, const char *name);

/* Appends a table name; "schema.table" is quoted part by part. */
void sf_sql_table(sf_buf_t *b, const char *name);

/* Binds V to parameter IDX: strings as text, integral numbers within int64
 * as integers (exactly), larger exact integers as their digits (text),
 * other numbers as reals, booleans as 0/1, NULL or null as NULL, objects and
 * arrays as their JSON text. */
void sf_sqlite_bind_json(sqlite3_stmt *st, int idx, const cJSON *v);

#endif
