/*
 * The subcommands of `syncfleet`. Each parses its own options, returns an
 * exit code (SF_EXIT_*) and prints its usage on --help.
 */
#ifndef SF_COMMANDS_H
#define SF_COMMANDS_H

typedef struct sf_command {
        const char *name;
        const char *summary;
        int (*run)(int argc, char **argv); /* argv[0] is the command name */
} sf_command_t;

int sf_cmd_validate(int argc, char **argv);
int sf_cmd_broker(int argc, char **argv);
int sf_cmd_run(int argc, char **argv);
int sf_cmd_lag(int argc, char **argv);
int sf_cmd_router(int argc, char **argv);
int sf_cmd_worker(int argc, char **argv);
int sf_cmd_producer(int argc, char **argv);
int sf_cmd_dlq(int argc, char **argv);

#endif
