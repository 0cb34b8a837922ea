/*
 * Valid UTF-8 out of any bytes (text.h).
 */
#include "text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf.h"

/* The length of the well-formed UTF-8 sequence at S (N bytes left), 0
 * when there is none. */
static size_t text_seq_len(const unsigned char *s, size_t n)
{
        unsigned char c = s[0], lo = 0x80, hi = 0xBF;
        size_t len;

        if (c < 0x80)
                return 1;
        if (c >= 0xC2 && c <= 0xDF)
                len = 2;
        else if (c >= 0xE0 && c <= 0xEF)
                len = 3;
        else if (c >= 0xF0 && c <= 0xF4)
                len = 4;
        else
                return 0;
        if (c == 0xE0)
                lo = 0xA0;
        else if (c == 0xED)
                hi = 0x9F;
        else if (c == 0xF0)
                lo = 0x90;
        else if (c == 0xF4)
                hi = 0x8F;
        if (n < len || s[1] < lo || s[1] > hi)
                return 0;
        for (size_t i = 2; i < len; i++)
                if (s[i] < 0x80 || s[i] > 0xBF)
                        return 0;
        return len;
}

size_t sf_text_clean(const char *s, size_t n, int flags, char *out,
                     size_t out_size)
{
        const unsigned char *u = (const unsigned char *)s;
        size_t o = 0, i = 0;

        if (!out_size)
                return 0;
        while (i < n) {
                size_t len = text_seq_len(u + i, n - i);
                int esc =
                    !len || ((flags & SF_TEXT_CONTROLS) && len == 1 &&
                             (u[i] < 0x20 || u[i] == 0x7f) && u[i] != '\t');

                if (esc) {
                        if (o + 4 >= out_size)
                                break;
                        snprintf(out + o, 5, "\\x%02X", u[i]);
                        o += 4;
                        i++;
                        continue;
                }
                if (o + len >= out_size)
                        break;
                memcpy(out + o, s + i, len);
                o += len;
                i += len;
        }
        out[o] = '\0';
        return o;
}

char *sf_text_clean_dup(const char *s, int flags)
{
        size_t n, size;
        char *out;

        if (!s)
                return NULL;
        n = strlen(s);
        size = n * 4 + 1;
        out = sf_malloc(size);
        sf_text_clean(s, n, flags, out, size);
        return out;
}

long sf_text_json_nul(const char *p, size_t len)
{
        int in_str = 0;

        for (size_t i = 0; i < len; i++) {
                if (p[i] == '\0')
                        return (long)i;
                if (!in_str) {
                        in_str = p[i] == '"';
                } else if (p[i] == '"') {
                        in_str = 0;
                } else if (p[i] == '\\' && i + 1 < len) {
                        if (p[i + 1] == 'u' && i + 5 < len &&
                            !memcmp(p + i + 2, "0000", 4))
                                return (long)i;
                        i++; /* the escaped character */
                }
        }
        return -1;
}
