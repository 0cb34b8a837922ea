/*
 * Replication origins: syncfleet's writer origins, which decoding skips
 * (capture_postgres.h), and the origin that marks a finished snapshot.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture_postgres_int.h"

int sf_pg_origin_exists(PGconn *conn, const char *name, char *errstr,
                        size_t errstr_size)
{
        const char *params[1] = {name};
        PGresult *res = sf_pg_query(
            conn, "SELECT 1 FROM pg_replication_origin WHERE roname = $1", 1,
            params, errstr, errstr_size);
        int n;

        if (!res)
                return -1;
        n = PQntuples(res) > 0;
        PQclear(res);
        return n;
}

int sf_pg_origin_create(PGconn *conn, const char *name, uint64_t lsn,
                        char *errstr, size_t errstr_size)
{
        char lsn_text[24];
        const char *params[2] = {name, lsn_text};

        sf_pg_lsn_format(lsn, lsn_text, sizeof(lsn_text));
        return sf_pg_exec(conn,
                          "SELECT pg_replication_origin_create($1), "
                          "pg_replication_origin_advance($1, $2::pg_lsn)",
                          2, params, errstr, errstr_size);
}

int sf_pg_origin_drop(PGconn *conn, const char *name, char *errstr,
                      size_t errstr_size)
{
        const char *params[1] = {name};

        return sf_pg_exec(conn,
                          "SELECT pg_replication_origin_drop(roname) FROM "
                          "pg_replication_origin WHERE roname = $1",
                          1, params, errstr, errstr_size);
}

/* Binds origin NAME to the session, creating it when missing. 1 when
 * another session holds it, 0 when bound, -1 on another error. */
static int pg_origin_try(PGconn *conn, const char *name, char *errstr,
                         size_t errstr_size)
{
        const char *params[1] = {name};
        PGresult *res;
        const char *state;
        int rc;

        /* two writers may create the same origin at once: the loser's
         * unique violation is harmless, the origin exists either way */
        res = PQexecParams(conn,
                           "SELECT pg_replication_origin_create($1) WHERE "
                           "NOT EXISTS (SELECT 1 FROM pg_replication_origin "
                           "WHERE roname = $1)",
                           1, NULL, params, NULL, NULL, 0);
        state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (PQresultStatus(res) != PGRES_TUPLES_OK &&
            !(state && !strcmp(state, "23505"))) {
                sf_pg_result_err(res, conn, "creating replication origin",
                                 errstr, errstr_size);
                PQclear(res);
                return -1;
        }
        PQclear(res);
        res =
            PQexecParams(conn, "SELECT pg_replication_origin_session_setup($1)",
                         1, NULL, params, NULL, NULL, 0);
        state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (PQresultStatus(res) == PGRES_TUPLES_OK)
                rc = 0;
        else if (state && !strcmp(state, "55006")) /* object in use */
                rc = 1;
        else {
                sf_pg_result_err(res, conn, "setting up replication origin",
                                 errstr, errstr_size);
                rc = -1;
        }
        PQclear(res);
        return rc;
}

int sf_pg_origin_setup(PGconn *conn, char *name, size_t name_size, char *errstr,
                       size_t errstr_size)
{
        char buf[64];

        for (int i = 1; i <= SF_PG_ORIGIN_MAX; i++) {
                int rc;

                if (i == 1)
                        snprintf(buf, sizeof(buf), "%s", SF_PG_ORIGIN);
                else
                        snprintf(buf, sizeof(buf), "%s.%d", SF_PG_ORIGIN, i);
                rc = pg_origin_try(conn, buf, errstr, errstr_size);
                if (rc < 0)
                        return -1;
                if (rc == 0) {
                        if (name && name_size)
                                snprintf(name, name_size, "%s", buf);
                        return 0;
                }
        }
        sf_seterr(errstr, errstr_size,
                  "all %d replication origins \"%s\"... are in use by other "
                  "sessions",
                  SF_PG_ORIGIN_MAX, SF_PG_ORIGIN);
        return -1;
}

int sf_pg_origin_is_syncfleet(const char *name)
{
        size_t n = strlen(SF_PG_ORIGIN);

        if (!name || strncmp(name, SF_PG_ORIGIN, n))
                return 0;
        return name[n] == '\0' || name[n] == '.';
}
