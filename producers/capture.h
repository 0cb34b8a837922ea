/*
 * Change capture: one interface, one implementation per source type
 * (capture_sqlite.c, capture_postgres.c), listed in a static table in
 * capture.c.
 *
 * A source hands out row changes in increasing position order. The
 * position of a change is its seq (sf_change_t.seq), unless the source
 * sets positions_in_seq to 0: then positions are the order in which poll
 * handed the changes out, counted over the handle's whole life from 1
 * (changes handed out again after a rewind get new, higher positions), and
 * seq is only what the change's envelope says. Nothing is forgotten
 * by the source until it is acknowledged: ack(P) says every change with
 * seq <= P was durably delivered, and only then may the source drop it.
 * rewind() goes back to the last acknowledged position, so the changes
 * handed out after it come out of poll again. A new open starts at the
 * first change not acknowledged, so a crash at any moment loses nothing
 * (delivery is at least once).
 *
 * A handle is driven by one thread.
 */
#ifndef SF_CAPTURE_H
#define SF_CAPTURE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "envelope.h"

/* One source type. Every function gets the STATE its open returned. */
typedef struct sf_capture_source {
        const char *name;      /* "sqlite" */
        sf_source_type_t type; /* the source.type it implements */
        /* poll itself waits up to source.poll_interval_ms for changes when
         * none are there, so the caller polls again at once after an empty
         * poll instead of sleeping. */
        int poll_waits;
        /* 1: a change's position is its seq; 0: see the top of the file */
        int positions_in_seq;
        /* Connects to the source of CFG (borrowed; must outlive the
         * state). Installs nothing. NULL with errstr on failure. */
        void *(*open)(const sf_config_t *cfg, char *errstr, size_t errstr_size);
        /* Sets the source up to capture exactly the table events
         * sf_config_captured_events() asks for; idempotent, and removes
         * what an earlier pipeline wanted and this one does not. */
        int (*install)(void *state, char *errstr, size_t errstr_size);
        /* Removes everything install created, captured changes included. */
        int (*uninstall)(void *state, char *errstr, size_t errstr_size);
        /* Reads up to MAX changes not handed out yet into OUT[0..n-1]
         * (the caller clears them with sf_change_clear). Returns n >= 0,
         * or -1 with errstr. */
        int (*poll)(void *state, sf_change_t *out, int max, char *errstr,
                    size_t errstr_size);
        /* Acknowledges every change with seq <= POSITION. */
        int (*ack)(void *state, int64_t position, char *errstr,
                   size_t errstr_size);
        /* The next poll starts after the last acknowledged position. */
        int (*rewind)(void *state, char *errstr, size_t errstr_size);
        void (*close)(void *state); /* NULL is a no-op */
} sf_capture_source_t;

/* The implementation of TYPE, or NULL when there is none. */
const sf_capture_source_t *sf_capture_source(sf_source_type_t type);

/* An open source: its implementation and state. */
typedef struct sf_capture {
        const sf_capture_source_t *src;
        void *state;
} sf_capture_t;

/* Opens the source described by cfg->source (CFG is borrowed and must
 * outlive the handle). NULL with errstr when the pipeline has no source,
 * its type has no implementation, or the source cannot be opened. */
sf_capture_t *sf_capture_open(const sf_config_t *cfg, char *errstr,
                              size_t errstr_size);
int sf_capture_install(sf_capture_t *c, char *errstr, size_t errstr_size);
int sf_capture_uninstall(sf_capture_t *c, char *errstr, size_t errstr_size);
int sf_capture_poll(sf_capture_t *c, sf_change_t *out, int max, char *errstr,
                    size_t errstr_size);
int sf_capture_ack(sf_capture_t *c, int64_t position, char *errstr,
                   size_t errstr_size);
int sf_capture_rewind(sf_capture_t *c, char *errstr, size_t errstr_size);
void sf_capture_close(sf_capture_t *c); /* NULL is a no-op */

/* The SQLite source (capture_sqlite.c). */
extern const sf_capture_source_t sf_capture_sqlite;
/* The PostgreSQL source (capture_postgres*.c). */
extern const sf_capture_source_t sf_capture_postgres;

#endif
