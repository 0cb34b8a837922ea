/*
 * syncfleet: status codes and small conventions shared by every module.
 *
 * A function that can fail returns a status and writes one human sentence
 * into a caller's (char *errstr, size_t errstr_size), as rd_kafka_new does.
 */
#ifndef SF_H
#define SF_H

#include <stddef.h>
#include <stdint.h>

/* Outcome of one operation on one record (DESIGN.md, "Failures"). */
typedef enum sf_status {
        SF_OK = 0,    /* done: acknowledge upstream */
        SF_RETRY = 1, /* transient: try again later, do not acknowledge */
        SF_FATAL = 2, /* this record can never succeed: dead-letter it */
} sf_status_t;

/* Process exit codes. */
#define SF_EXIT_OK      0
#define SF_EXIT_RUNTIME 1
#define SF_EXIT_USAGE   2

/* Writes a formatted sentence into errstr (always NUL-terminated). */
void sf_seterr(char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Allocation that aborts the process on exhaustion: syncfleet does not try
 * to limp on without memory. */
void *sf_malloc(size_t n);
void *sf_calloc(size_t n, size_t size);
void *sf_realloc(void *p, size_t n);
char *sf_strdup(const char *s);
char *sf_strndup(const char *s, size_t n);
char *sf_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Wall clock and monotonic clock in milliseconds. */
int64_t sf_now_ms(void);
int64_t sf_mono_ms(void);

/* Growable byte buffer with a hard size cap (curl's dynbuf). */
typedef struct sf_buf {
        char *data; /* always NUL-terminated when len > 0 */
        size_t len;
        size_t cap;
        size_t max; /* appends past this fail; 0 means 64 MiB */
} sf_buf_t;

void sf_buf_init(sf_buf_t *b, size_t max);
int sf_buf_append(sf_buf_t *b, const void *p, size_t n); /* 0 or -1 */
int sf_buf_printf(sf_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void sf_buf_reset(sf_buf_t *b);
void sf_buf_free(sf_buf_t *b);
/* Hands the data over to the caller (may be NULL when empty). */
char *sf_buf_steal(sf_buf_t *b);

/* Process-wide stop flag, set by SIGTERM and SIGINT once
 * sf_signals_install() ran. Every long-running loop checks it. */
void sf_signals_install(void);
int sf_should_stop(void);
void sf_request_stop(void);

#endif
