/*
 * What the component commands share: loading the pipeline file and
 * deciding which brokers to talk to.
 */
#ifndef SF_CLI_H
#define SF_CLI_H

#include "config.h"

#define SF_DEFAULT_GRACE_MS 10000

/* Loads FILE; on failure prints every error on stderr and returns NULL
 * (the caller exits with SF_EXIT_USAGE). The pipeline's secrets are
 * registered for redaction (redact.h) and its warnings logged. */
sf_config_t *sf_cli_load(const char *file);
/* The same without logging the warnings (cfg->warnings), for a command
 * that shows them its own way. */
sf_config_t *sf_cli_load_quiet(const char *file);

/* The bootstrap servers a standalone component uses: OVERRIDE (--brokers)
 * when given, else kafka.brokers. An embedded broker (kafka.brokers or
 * --brokers "embedded") lives inside one process: the address that
 * process recorded in the pipeline's state directory (`syncfleet run`, or
 * `syncfleet broker -c FILE`), valid until the next call; when none runs,
 * NULL, after telling the user what to do instead. */
const char *sf_cli_bootstraps(const sf_config_t *cfg, const char *override,
                              const char *command);

/* Sets the group.instance.id of the component's consumers (static
 * membership): OPTION (--instance-id) when given, else the environment's
 * SYNCFLEET_INSTANCE_ID (a pod's name, say), else nothing. An empty id is
 * refused: 0, or -1 after telling the user. */
int sf_cli_instance_id(sf_config_t *cfg, const char *option,
                       const char *command);

/* Creates the pipeline's topics on the cluster at BOOTSTRAPS where they
 * are missing (sf_kafka_create_topics), so that whichever component starts
 * first, the groups start on the pipeline's partitions, and reports an
 * existing topic that falls short of them. A cluster that refuses may
 * still have the topics or create them on first use: a warning logged as
 * COMPONENT, not a reason to stop. */
void sf_cli_topics(const sf_config_t *cfg, const char *bootstraps,
                   const char *component);

#endif
