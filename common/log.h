/*
 * Logging to stderr, one line per entry:
 *   2026-11-26T19:03:00.123Z info  router: message
 * The level comes from SYNCFLEET_LOG (error, warn, info, debug; default
 * info). Safe to call from any thread.
 */
#ifndef SF_LOG_H
#define SF_LOG_H

typedef enum sf_log_level {
        SF_LOG_ERROR = 0,
        SF_LOG_WARN = 1,
        SF_LOG_INFO = 2,
        SF_LOG_DEBUG = 3,
} sf_log_level_t;

void sf_log(sf_log_level_t level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int sf_log_enabled(sf_log_level_t level);
void sf_log_set_level(sf_log_level_t level);

#define sf_error(comp, ...) sf_log(SF_LOG_ERROR, comp, __VA_ARGS__)
#define sf_warn(comp, ...)  sf_log(SF_LOG_WARN, comp, __VA_ARGS__)
#define sf_info(comp, ...)  sf_log(SF_LOG_INFO, comp, __VA_ARGS__)
#define sf_debug(comp, ...)                                                    \
        do {                                                                   \
                if (sf_log_enabled(SF_LOG_DEBUG))                              \
                        sf_log(SF_LOG_DEBUG, comp, __VA_ARGS__);               \
        } while (0)

#endif
