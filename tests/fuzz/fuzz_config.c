/*
 * The pipeline file loader (common/config*.c): YAML as a user writes it,
 * with ${VAR} substitution, every check and every template compiled.
 *
 * Input: the pipeline file. A few variables are set for ${VAR}
 * (SF_FUZZ_TOKEN, SF_FUZZ_PORT, SF_FUZZ_URL, SF_FUZZ_NL with a newline in
 * it, SF_FUZZ_EMPTY); standard input is /dev/null, so that a
 * `password_file: /dev/stdin` cannot wait.
 *
 * Properties: a file that is refused gets at least one message, each line
 * of them "fuzz.yaml:..." and ending in a newline; one that loads has its
 * topics named and prints a summary (what `syncfleet validate` shows).
 */
#include <fcntl.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"
#include "log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        int fd = open("/dev/null", O_RDONLY);

        (void)argc;
        (void)argv;
        if (fd < 0 || dup2(fd, 0) < 0)
                abort();
        close(fd);
        devnull = fopen("/dev/null", "w");
        if (!devnull)
                abort();
        sf_log_set_level(SF_LOG_ERROR);
        setenv("SF_FUZZ_TOKEN", "tok-3f9a", 1);
        setenv("SF_FUZZ_PORT", "8080", 1);
        setenv("SF_FUZZ_URL", "http://bob:pw@127.0.0.1:8080/api?key=k1", 1);
        setenv("SF_FUZZ_NL", "line1\nline2", 1);
        setenv("SF_FUZZ_EMPTY", "", 1);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *yaml = fuzz_strndup(data, size), *errors = NULL;
        sf_config_t *cfg = sf_config_load_string("fuzz.yaml", yaml, &errors);

        if (!cfg) {
                FUZZ_CHECK(errors && errors[0], "refused without a message");
                FUZZ_CHECK(!strncmp(errors, "fuzz.yaml:", 10),
                           "a message without the file: %s", errors);
                FUZZ_CHECK(errors[strlen(errors) - 1] == '\n',
                           "messages do not end with a newline: %s", errors);
        } else {
                FUZZ_CHECK(!errors, "loaded, with messages: %s", errors);
                FUZZ_CHECK(cfg->topic_sync_log && cfg->topic_dlq &&
                               cfg->topic_outbound_message &&
                               cfg->topic_outbound_webservice && cfg->state_dir,
                           "a loaded config without its topics");
                sf_config_print_summary(cfg, devnull);
                sf_config_destroy(cfg);
        }
        free(errors);
        free(yaml);
        return 0;
}
