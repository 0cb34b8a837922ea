/*
 * syncfleet: one executable, one subcommand per component.
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "kafka.h"
#include "sf.h"

static const sf_command_t sf_commands[] = {
    {"run", "run the whole pipeline in one process", sf_cmd_run},
    {"validate", "check a pipeline file and show what it captures",
     sf_cmd_validate},
    {"router", "route sync-log changes to outbound topics", sf_cmd_router},
    {"worker", "run message or web service workers", sf_cmd_worker},
    {"broker", "run the embedded Kafka broker standalone", sf_cmd_broker},
    {"lag", "show how far each consumer group is behind", sf_cmd_lag},
    {"dlq", "list, show, replay or drop dead letters", sf_cmd_dlq},
    {"producer", "capture table changes and publish them to the sync-log",
     sf_cmd_producer},
};

#define SF_COMMAND_CNT (sizeof(sf_commands) / sizeof(sf_commands[0]))

static void usage(FILE *out)
{
        fprintf(out, "usage: syncfleet COMMAND [OPTIONS]\n"
                     "       syncfleet --version\n\n"
                     "commands:\n");
        for (size_t i = 0; i < SF_COMMAND_CNT; i++)
                fprintf(out, "  %-10s %s\n", sf_commands[i].name,
                        sf_commands[i].summary);
        fprintf(out, "\nRun 'syncfleet COMMAND --help' for a command's "
                     "options.\n");
}

int main(int argc, char **argv)
{
        if (argc < 2) {
                usage(stderr);
                return SF_EXIT_USAGE;
        }
        if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
                printf("syncfleet %s (librdkafka %s)\n", SF_VERSION,
                       rd_kafka_version_str());
                return SF_EXIT_OK;
        }
        if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
            !strcmp(argv[1], "help")) {
                usage(stdout);
                return SF_EXIT_OK;
        }
        for (size_t i = 0; i < SF_COMMAND_CNT; i++) {
                int rc;

                if (strcmp(argv[1], sf_commands[i].name))
                        continue;
                rc = sf_commands[i].run(argc - 1, argv + 1);
                /* A command stopped by refused Kafka credentials (logged
                 * when it happened) did not do its work, whatever it
                 * returned. */
                if (rc == SF_EXIT_OK && sf_kafka_failure(NULL, 0))
                        rc = SF_EXIT_RUNTIME;
                return rc;
        }
        fprintf(stderr, "syncfleet: unknown command '%s'\n\n", argv[1]);
        usage(stderr);
        return SF_EXIT_USAGE;
}
