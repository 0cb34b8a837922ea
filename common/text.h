/*
 * Text that syncfleet writes where people and tools read it (log lines,
 * the DLQ's error): always valid UTF-8, whatever bytes a record or a
 * target's answer held.
 */
#ifndef SF_TEXT_H
#define SF_TEXT_H

#include <stddef.h>

/* With SF_TEXT_CONTROLS, ASCII control characters other than tab are
 * escaped too, so that a value cannot start a log line of its own. */
#define SF_TEXT_CONTROLS 0x1

/* Copies the N bytes of S into OUT (OUT_SIZE bytes, always NUL-terminated
 * when OUT_SIZE > 0, cut at a character boundary when it is short) as
 * valid UTF-8: each byte that is not part of a well-formed UTF-8 sequence
 * (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF) is
 * written as the four characters \xNN, and so are control characters
 * under FLAGS. Returns the length written. */
size_t sf_text_clean(const char *s, size_t n, int flags, char *out,
                     size_t out_size);

/* The same for the string S, into a new string the caller frees (NULL for
 * NULL). */
char *sf_text_clean_dup(const char *s, int flags);

/* The offset of the first NUL character in the LEN bytes of JSON text at
 * P: a NUL byte, or a \u0000 escape inside a string; -1 when there is
 * none. cJSON's strings end at their first NUL, so such text would lose
 * the rest of its string unseen. */
long sf_text_json_nul(const char *p, size_t len);

#endif
