/*
 * What the component commands share: loading the pipeline file and
 * deciding which brokers to talk to.
 */
#ifndef SF_CLI_H
#define SF_CLI_H

#include "config.h"

#define SF_DEFAULT_GRACE_MS 10000

/* Loads FILE; on failure prints every error on stderr and returns NULL
 * (the caller exits with SF_EXIT_USAGE). */
sf_config_t *sf_cli_load(const char *file);

/* The bootstrap servers a standalone component uses: OVERRIDE (--brokers)
 * when given, else kafka.brokers. An embedded broker (kafka.brokers or
 * --brokers "embedded") lives inside one process: the address that
 * process recorded in the pipeline's state directory (`syncfleet run`, or
 * `syncfleet broker -c FILE`), valid until the next call; when none runs,
 * NULL, after telling the user what to do instead. */
const char *sf_cli_bootstraps(const sf_config_t *cfg, const char *override,
                              const char *command);

#endif
