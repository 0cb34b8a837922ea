/*
 * String-keyed hash map: FNV-1a, chaining, doubling at load factor 1.
 */
#include "map.h"

#include <stdlib.h>
#include <string.h>

#include "sf.h"

typedef struct sf_map_entry {
        struct sf_map_entry *next;
        size_t hash;
        void *value;
        char key[];
} sf_map_entry_t;

struct sf_map {
        sf_map_entry_t **buckets;
        size_t nbuckets; /* power of two */
        size_t count;
};

static size_t sf_map_hash(const char *s)
{
        uint64_t h = 1469598103934665603ull;

        for (; *s; s++) {
                h ^= (unsigned char)*s;
                h *= 1099511628211ull;
        }
        return (size_t)h;
}

sf_map_t *sf_map_new(void)
{
        sf_map_t *m = sf_calloc(1, sizeof(*m));

        m->nbuckets = 64;
        m->buckets = sf_calloc(m->nbuckets, sizeof(*m->buckets));
        return m;
}

void sf_map_destroy(sf_map_t *m)
{
        if (!m)
                return;
        for (size_t i = 0; i < m->nbuckets; i++) {
                sf_map_entry_t *e = m->buckets[i];

                while (e) {
                        sf_map_entry_t *next = e->next;

                        free(e);
                        e = next;
                }
        }
        free(m->buckets);
        free(m);
}

static sf_map_entry_t **sf_map_slot(const sf_map_t *m, const char *key,
                                    size_t hash)
{
        sf_map_entry_t **pp = &m->buckets[hash & (m->nbuckets - 1)];

        while (*pp && ((*pp)->hash != hash || strcmp((*pp)->key, key)))
                pp = &(*pp)->next;
        return pp;
}

static void sf_map_grow(sf_map_t *m)
{
        size_t n = m->nbuckets * 2;
        sf_map_entry_t **b = sf_calloc(n, sizeof(*b));

        for (size_t i = 0; i < m->nbuckets; i++) {
                sf_map_entry_t *e = m->buckets[i];

                while (e) {
                        sf_map_entry_t *next = e->next;

                        e->next = b[e->hash & (n - 1)];
                        b[e->hash & (n - 1)] = e;
                        e = next;
                }
        }
        free(m->buckets);
        m->buckets = b;
        m->nbuckets = n;
}

void *sf_map_get(const sf_map_t *m, const char *key)
{
        sf_map_entry_t *e = *sf_map_slot(m, key, sf_map_hash(key));

        return e ? e->value : NULL;
}

void *sf_map_set(sf_map_t *m, const char *key, void *value)
{
        size_t hash = sf_map_hash(key);
        sf_map_entry_t **pp = sf_map_slot(m, key, hash);
        sf_map_entry_t *e;
        size_t len;

        if (*pp) {
                void *old = (*pp)->value;

                (*pp)->value = value;
                return old;
        }
        len = strlen(key);
        e = sf_malloc(sizeof(*e) + len + 1);
        memcpy(e->key, key, len + 1);
        e->hash = hash;
        e->value = value;
        e->next = NULL;
        *pp = e;
        if (++m->count > m->nbuckets)
                sf_map_grow(m);
        return NULL;
}

void *sf_map_remove(sf_map_t *m, const char *key)
{
        sf_map_entry_t **pp = sf_map_slot(m, key, sf_map_hash(key));
        sf_map_entry_t *e = *pp;
        void *value;

        if (!e)
                return NULL;
        *pp = e->next;
        value = e->value;
        free(e);
        m->count--;
        return value;
}

size_t sf_map_count(const sf_map_t *m)
{
        return m->count;
}

void sf_map_each(const sf_map_t *m, sf_map_each_cb *cb, void *opaque)
{
        for (size_t i = 0; i < m->nbuckets; i++)
                for (sf_map_entry_t *e = m->buckets[i]; e; e = e->next)
                        if (cb(opaque, e->key, e->value))
                                return;
}
