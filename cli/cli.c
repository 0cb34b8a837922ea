/*
 * Shared parts of the component commands.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"

sf_config_t *sf_cli_load(const char *file)
{
        char *errors = NULL;
        sf_config_t *cfg = sf_config_load(file, &errors);

        if (!cfg)
                fputs(errors ? errors : "invalid configuration\n", stderr);
        free(errors);
        return cfg;
}

const char *sf_cli_bootstraps(const sf_config_t *cfg, const char *override,
                              const char *command)
{
        static char *recorded; /* the last address read from the state */
        char errstr[512];

        if (override && strcmp(override, "embedded"))
                return override;
        if (!override && !cfg->kafka.embedded)
                return cfg->kafka.brokers;
        free(recorded);
        recorded = sf_state_broker(cfg, errstr, sizeof(errstr));
        if (recorded)
                return recorded;
        fprintf(stderr,
                "syncfleet %s: kafka.brokers is 'embedded', which lives inside "
                "one process, and %s.\nRun everything with 'syncfleet run', "
                "or start 'syncfleet broker -c %s' (or pass a broker's address "
                "with --brokers).\n",
                command, errstr, cfg->file);
        return NULL;
}
