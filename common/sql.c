/*
 * SQL identifier quoting and SQLite parameter binding.
 */
#include "sql.h"

#include "json.h"

#include <stdint.h>
#include <stdlib.h>

static void sf_sql_part(sf_buf_t *b, const char *p, const char *end)
{
        sf_buf_append(b, "\"", 1);
        for (; p < end; p++) {
                if (*p == '"')
                        sf_buf_append(b, "\"", 1);
                sf_buf_append(b, p, 1);
        }
        sf_buf_append(b, "\"", 1);
}

void sf_sql_ident(sf_buf_t *b, const char *name)
{
        const char *end = name;

        while (*end)
                end++;
        sf_sql_part(b, name, end);
}

void sf_sql_table(sf_buf_t *b, const char *name)
{
        const char *dot = name;

        while (*dot && *dot != '.')
                dot++;
        if (!*dot) {
                sf_sql_ident(b, name);
                return;
        }
        sf_sql_part(b, name, dot);
        sf_buf_append(b, ".", 1);
        sf_sql_ident(b, dot + 1);
}

void sf_sqlite_bind_json(sqlite3_stmt *st, int idx, const cJSON *v)
{
        int64_t i;

        if (cJSON_IsString(v)) {
                sqlite3_bind_text(st, idx, v->valuestring, -1,
                                  SQLITE_TRANSIENT);
        } else if (cJSON_IsNumber(v) && !sf_json_get_int64(v, &i)) {
                sqlite3_bind_int64(st, idx, i);
        } else if (sf_json_exact(v)) {
                /* beyond int64: its digits, which a TEXT column keeps */
                sqlite3_bind_text(st, idx, sf_json_exact(v), -1,
                                  SQLITE_TRANSIENT);
        } else if (cJSON_IsNumber(v)) {
                sqlite3_bind_double(st, idx, v->valuedouble);
        } else if (cJSON_IsBool(v)) {
                sqlite3_bind_int(st, idx, cJSON_IsTrue(v));
        } else if (!v || cJSON_IsNull(v)) {
                sqlite3_bind_null(st, idx);
        } else {
                char *json = sf_json_print(v, 0);

                sqlite3_bind_text(st, idx, json, -1, SQLITE_TRANSIENT);
                free(json);
        }
}
