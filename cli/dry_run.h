/*
 * syncfleet validate --event FILE: one change through the routing and
 * rendering of the pipeline, printed, nothing sent.
 */
#ifndef SF_DRY_RUN_H
#define SF_DRY_RUN_H

#include <stddef.h>
#include <stdio.h>

#include "config.h"

/* Reads the event in EVENT_FILE ("-": standard input) and prints to OUT
 * what each subscriber would do with it. Returns 0, or -1 with errstr when
 * the event cannot be read or routed. */
int sf_dry_run(const sf_config_t *cfg, const char *event_file, FILE *out,
               char *errstr, size_t errstr_size);

#endif
