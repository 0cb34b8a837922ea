/*
 * Shared parts of the component commands.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka.h"
#include "log.h"
#include "redact.h"
#include "sf.h"
#include "state.h"

sf_config_t *sf_cli_load_quiet(const char *file)
{
        char *errors = NULL;
        sf_config_t *cfg = sf_config_load(file, &errors);

        if (!cfg)
                fputs(errors ? errors : "invalid configuration\n", stderr);
        free(errors);
        /* before the first line that could show one of them */
        sf_redact_config(cfg);
        return cfg;
}

sf_config_t *sf_cli_load(const char *file)
{
        sf_config_t *cfg = sf_cli_load_quiet(file);
        const char *w = cfg ? cfg->warnings : NULL;

        while (w && *w) {
                size_t n = strcspn(w, "\n");

                sf_warn("config", "%.*s", (int)n, w);
                w += n + (w[n] == '\n');
        }
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

void sf_cli_topics(const sf_config_t *cfg, const char *bootstraps,
                   const char *component)
{
        char err[1024];

        /* Refused credentials were logged as they happened, and stop the
         * component. */
        if (sf_kafka_create_topics(cfg, NULL, bootstraps, err, sizeof(err)) &&
            !sf_kafka_failure(NULL, 0))
                sf_warn(component, "creating topics: %s", err);
}

int sf_cli_instance_id(sf_config_t *cfg, const char *option,
                       const char *command)
{
        const char *id = option ? option : getenv("SYNCFLEET_INSTANCE_ID");

        if (!id)
                return 0;
        if (!*id) {
                fprintf(stderr,
                        "syncfleet %s: %s is empty; give the member's id "
                        "(a pod's name, say) or leave it unset\n",
                        command,
                        option ? "--instance-id" : "SYNCFLEET_INSTANCE_ID");
                return -1;
        }
        free(cfg->kafka.instance_id);
        cfg->kafka.instance_id = sf_strdup(id);
        return 0;
}
