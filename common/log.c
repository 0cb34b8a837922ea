/*
 * Line-oriented logging to stderr. One fprintf per entry under the stream
 * lock, so lines from the threads of `syncfleet run` never interleave.
 * Every message passes through the secrets' redaction (redact.h) here, so
 * no caller has to remember it: librdkafka's lines come through sf_log
 * too.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "redact.h"
#include "text.h"

static int sf_log_level = -1;

static const char *const sf_level_names[] = {"error", "warn", "info", "debug"};

static int sf_log_level_get(void)
{
        if (sf_log_level < 0) {
                const char *env = getenv("SYNCFLEET_LOG");
                int lvl = SF_LOG_INFO;

                for (int i = 0; env && i < 4; i++)
                        if (!strcasecmp(env, sf_level_names[i]))
                                lvl = i;
                sf_log_level = lvl;
        }
        return sf_log_level;
}

int sf_log_enabled(sf_log_level_t level)
{
        return (int)level <= sf_log_level_get();
}

void sf_log_set_level(sf_log_level_t level)
{
        sf_log_level = (int)level;
}

void sf_log(sf_log_level_t level, const char *component, const char *fmt, ...)
{
        struct timespec ts;
        struct tm tm;
        char when[32];
        char msg[2048], clean[4 * sizeof(msg)];
        va_list ap, ap2;
        int n;

        if (!sf_log_enabled(level))
                return;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
        va_start(ap, fmt);
        va_copy(ap2, ap);
        n = vsnprintf(msg, sizeof(msg), fmt, ap);
        if (n >= (int)sizeof(msg) && sf_redact_active()) {
                /* redacted whole before the cut, or the cut could leave
                 * the start of a secret at the end of the line */
                char *all = malloc((size_t)n + 1);

                if (all) {
                        vsnprintf(all, (size_t)n + 1, fmt, ap2);
                        sf_redact_into(all, msg, sizeof(msg));
                        free(all);
                } else {
                        msg[0] = '\0';
                }
        }
        va_end(ap2);
        va_end(ap);
        sf_redact_inplace(msg);
        /* one line of valid UTF-8, whatever a record or an answer held */
        sf_text_clean(msg, strlen(msg), SF_TEXT_CONTROLS, clean, sizeof(clean));
        flockfile(stderr);
        fprintf(stderr, "%s.%03ldZ %-5s %s: %s\n", when,
                (long)(ts.tv_nsec / 1000000), sf_level_names[level],
                component ? component : "syncfleet", clean);
        funlockfile(stderr);
}
