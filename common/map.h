/*
 * A string-keyed hash map (separate chaining, power-of-two buckets, grows at
 * load 1). Keys are copied; values are borrowed pointers the caller owns.
 */
#ifndef SF_MAP_H
#define SF_MAP_H

#include <stddef.h>

typedef struct sf_map sf_map_t;

sf_map_t *sf_map_new(void);
/* Frees the map and its key copies, not the values. NULL is a no-op. */
void sf_map_destroy(sf_map_t *m);
void *sf_map_get(const sf_map_t *m, const char *key);
/* Sets KEY to VALUE; returns the previous value or NULL. */
void *sf_map_set(sf_map_t *m, const char *key, void *value);
/* Removes KEY; returns its value or NULL. */
void *sf_map_remove(sf_map_t *m, const char *key);
size_t sf_map_count(const sf_map_t *m);

/* Calls CB for every entry, in no particular order. CB may not change the
 * map; return non-zero from CB to stop. */
typedef int(sf_map_each_cb)(void *opaque, const char *key, void *value);
void sf_map_each(const sf_map_t *m, sf_map_each_cb *cb, void *opaque);

#endif
