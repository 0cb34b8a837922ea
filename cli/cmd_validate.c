/*
 * syncfleet validate -c FILE: every problem in the file, or a summary of
 * what the pipeline captures and who subscribes.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "commands.h"
#include "config.h"
#include "dry_run.h"
#include "redact.h"
#include "sf.h"

static void usage(FILE *out)
{
        fprintf(out, "usage: syncfleet validate -c FILE\n\n"
                     "Checks the pipeline file and prints every problem as\n"
                     "FILE:LINE:COLUMN: message (exit 2), or a summary of the\n"
                     "table events captured and the messages and web service\n"
                     "actions subscribed to each (exit 0).\n\n"
                     "  -c, --config FILE   the pipeline file\n"
                     "  -h, --help          this text\n");
}

int sf_cmd_validate(int argc, char **argv)
{
        static const struct option opts[] = {
            {"config", required_argument, NULL, 'c'},
            {"event", required_argument, NULL, 'e'},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0},
        };
        const char *file = NULL, *event = NULL;
        char errstr[512], *text = NULL;
        size_t len = 0;
        sf_config_t *cfg;
        FILE *out;
        int c, rc = 0;

        optind = 1;
        while ((c = getopt_long(argc, argv, "c:e:h", opts, NULL)) != -1) {
                switch (c) {
                case 'c':
                        file = optarg;
                        break;
                case 'e':
                        event = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        return SF_EXIT_OK;
                default:
                        usage(stderr);
                        return SF_EXIT_USAGE;
                }
        }
        if (!file || optind < argc) {
                usage(stderr);
                return SF_EXIT_USAGE;
        }
        if (!(cfg = sf_cli_load_quiet(file)))
                return SF_EXIT_USAGE;
        /* Everything validate shows is written to memory first and
         * printed redacted: the dry run prints URLs, bodies and errors,
         * which may hold the pipeline's secrets. */
        if (!(out = open_memstream(&text, &len))) {
                fprintf(stderr, "syncfleet validate: out of memory\n");
                sf_config_destroy(cfg);
                return SF_EXIT_USAGE;
        }
        if (cfg->warnings) {
                char *w = sf_redact_dup(cfg->warnings);

                fputs(w, stderr);
                free(w);
        }
        if (event) {
                rc = sf_dry_run(cfg, event, out, errstr, sizeof(errstr));
        } else {
                sf_config_print_summary(cfg, out);
        }
        fclose(out);
        sf_redact_inplace(text);
        fputs(text, stdout);
        free(text);
        if (rc) {
                sf_redact_inplace(errstr);
                fprintf(stderr, "syncfleet validate: %s\n", errstr);
        }
        sf_config_destroy(cfg);
        return rc ? SF_EXIT_USAGE : SF_EXIT_OK;
}
