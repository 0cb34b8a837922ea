/*
 * PostgreSQL change capture: what a database writer needs so that its own
 * writes do not come back as events.
 *
 * syncfleet's PostgreSQL source skips every transaction whose replication
 * origin is syncfleet's (pgoutput sends the origin of each transaction made
 * by a session that set one up). A session that writes on syncfleet's
 * behalf (a web service write-back) calls sf_pg_origin_setup once after
 * connecting; everything it commits afterwards is invisible to the
 * capture, and every other session's writes are captured as usual.
 */
#ifndef SF_CAPTURE_POSTGRES_H
#define SF_CAPTURE_POSTGRES_H

#include <stddef.h>

#include <libpq-fe.h>

/* syncfleet's replication origin. PostgreSQL 15 lets one session at a time
 * use an origin, so concurrent writers use "syncfleet", "syncfleet.2", ...
 * up to SF_PG_ORIGIN_MAX; all of them are skipped. */
#define SF_PG_ORIGIN     "syncfleet"
#define SF_PG_ORIGIN_MAX 32

/* Sets up syncfleet's replication origin for the session of CONN: creates
 * the first origin of the family that no other session uses (when
 * missing) and binds it to this session with
 * pg_replication_origin_session_setup. Needs superuser or EXECUTE on the
 * pg_replication_origin_* functions. The name of the origin bound is
 * copied into NAME (NAME_SIZE bytes) when NAME is not NULL. Returns 0, or
 * -1 with errstr. */
int sf_pg_origin_setup(PGconn *conn, char *name, size_t name_size, char *errstr,
                       size_t errstr_size);

/* Whether NAME is one of syncfleet's writer origins. */
int sf_pg_origin_is_syncfleet(const char *name);

#endif
