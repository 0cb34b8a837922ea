/*
 * Small helpers every module uses: error strings, allocation, clocks,
 * bounded buffers and the process stop flag.
 */
#include "sf.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void sf_seterr(char *errstr, size_t errstr_size, const char *fmt, ...)
{
        va_list ap;

        if (!errstr || !errstr_size)
                return;
        va_start(ap, fmt);
        vsnprintf(errstr, errstr_size, fmt, ap);
        va_end(ap);
}

static void sf_oom(size_t n)
{
        fprintf(stderr, "syncfleet: out of memory allocating %zu bytes\n", n);
        abort();
}

void *sf_malloc(size_t n)
{
        void *p = malloc(n ? n : 1);

        if (!p)
                sf_oom(n);
        return p;
}

void *sf_calloc(size_t n, size_t size)
{
        void *p = calloc(n ? n : 1, size ? size : 1);

        if (!p)
                sf_oom(n * size);
        return p;
}

void *sf_realloc(void *p, size_t n)
{
        void *q = realloc(p, n ? n : 1);

        if (!q)
                sf_oom(n);
        return q;
}

char *sf_strdup(const char *s)
{
        return s ? sf_strndup(s, strlen(s)) : NULL;
}

char *sf_strndup(const char *s, size_t n)
{
        char *p;

        if (!s)
                return NULL;
        p = sf_malloc(n + 1);
        memcpy(p, s, n);
        p[n] = '\0';
        return p;
}

char *sf_asprintf(const char *fmt, ...)
{
        va_list ap;
        char *p = NULL;
        int n;

        va_start(ap, fmt);
        n = vasprintf(&p, fmt, ap);
        va_end(ap);
        if (n < 0)
                sf_oom(0);
        return p;
}

int64_t sf_now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sf_mono_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define SF_BUF_DEFAULT_MAX (64u * 1024 * 1024)

void sf_buf_init(sf_buf_t *b, size_t max)
{
        b->data = NULL;
        b->len = 0;
        b->cap = 0;
        b->max = max ? max : SF_BUF_DEFAULT_MAX;
}

int sf_buf_append(sf_buf_t *b, const void *p, size_t n)
{
        size_t need;

        if (!b->max)
                b->max = SF_BUF_DEFAULT_MAX;
        if (n > b->max || b->len > b->max - n)
                return -1;
        need = b->len + n + 1;
        if (need > b->cap) {
                size_t cap = b->cap ? b->cap : 256;

                while (cap < need)
                        cap *= 2;
                b->data = sf_realloc(b->data, cap);
                b->cap = cap;
        }
        if (n)
                memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = '\0';
        return 0;
}

int sf_buf_printf(sf_buf_t *b, const char *fmt, ...)
{
        va_list ap;
        char small[256];
        char *big = NULL;
        int n, rc;

        va_start(ap, fmt);
        n = vsnprintf(small, sizeof(small), fmt, ap);
        va_end(ap);
        if (n < 0)
                return -1;
        if ((size_t)n < sizeof(small))
                return sf_buf_append(b, small, (size_t)n);
        va_start(ap, fmt);
        n = vasprintf(&big, fmt, ap);
        va_end(ap);
        if (n < 0)
                return -1;
        rc = sf_buf_append(b, big, (size_t)n);
        free(big);
        return rc;
}

void sf_buf_reset(sf_buf_t *b)
{
        b->len = 0;
        if (b->data)
                b->data[0] = '\0';
}

void sf_buf_free(sf_buf_t *b)
{
        free(b->data);
        b->data = NULL;
        b->len = b->cap = 0;
}

char *sf_buf_steal(sf_buf_t *b)
{
        char *p = b->data;

        b->data = NULL;
        b->len = b->cap = 0;
        return p;
}

static volatile sig_atomic_t sf_stop_flag;

static void sf_on_signal(int sig)
{
        (void)sig;
        sf_stop_flag = 1;
}

void sf_signals_install(void)
{
        struct sigaction sa;

        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = sf_on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);
}

int sf_should_stop(void)
{
        return sf_stop_flag != 0;
}

void sf_request_stop(void)
{
        sf_stop_flag = 1;
}
