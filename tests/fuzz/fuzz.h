/*
 * What the libFuzzer harnesses of tests/fuzz share: a check that aborts
 * with a sentence (libFuzzer keeps the input that made it fail), and the
 * splitting of one input into NUL-separated parts.
 */
#ifndef SF_FUZZ_H
#define SF_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A property every input must keep; its failure is a finding. */
#define FUZZ_CHECK(cond, ...)                                                  \
        do {                                                                   \
                if (!(cond)) {                                                 \
                        fprintf(stderr, "fuzz: %s:%d: %s: ", __FILE__,         \
                                __LINE__, #cond);                              \
                        fprintf(stderr, __VA_ARGS__);                          \
                        fputc('\n', stderr);                                   \
                        abort();                                               \
                }                                                              \
        } while (0)

/* The next part of *DATA (up to a NUL or the end) as PART[0..*LEN-1];
 * returns 0 when nothing is left. The NUL is consumed. */
static inline int fuzz_part(const uint8_t **data, size_t *size,
                            const uint8_t **part, size_t *len)
{
        const uint8_t *nul;

        if (!*data)
                return 0;
        nul = memchr(*data, '\0', *size);
        *part = *data;
        if (nul) {
                *len = (size_t)(nul - *data);
                *size -= *len + 1;
                *data = nul + 1;
        } else {
                *len = *size;
                *data = NULL;
                *size = 0;
        }
        return 1;
}

/* A NUL-terminated copy of P[0..LEN-1]; caller frees. */
static inline char *fuzz_strndup(const void *p, size_t len)
{
        char *s = malloc(len + 1);

        if (!s)
                abort();
        memcpy(s, p, len);
        s[len] = '\0';
        return s;
}

#endif
