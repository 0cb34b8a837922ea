/*
 * The images and keys of captured rows, written as canonical JSON text
 * straight from the decoded columns (capture_postgres_int.h).
 *
 * Building a cJSON tree per row and then sorting and printing it cost
 * more than everything else the producer does for a change. A relation's
 * columns are sorted by name once, when its Relation message (or the
 * snapshot's first batch) arrives, with each name already quoted, so a row
 * is written in one pass. The bytes are those sf_json_canonical would give
 * for the tree of sf_pg_value_json (tests/unit/test_pgoutput.c checks both
 * ways agree).
 */
#include <stdlib.h>
#include <string.h>

#include "capture_postgres_int.h"

/* The marker of an unchanged TOASTed value, canonical. */
static const char pg_toast_marker[] = "{\"" SF_PG_UNCHANGED_TOAST "\":true}";

static int pg_member_cmp(const void *a, const void *b)
{
        const sf_pg_member_t *x = a, *y = b;

        return strcmp(x->sort_name, y->sort_name);
}

/* NAME quoted as a canonical JSON member name, with its colon. */
static void pg_member_name(sf_pg_member_t *m, const char *name)
{
        sf_buf_t b;

        sf_buf_init(&b, 0);
        sf_json_string_append(&b, name, strlen(name));
        sf_buf_append(&b, ":", 1);
        m->name_len = b.len;
        m->name = sf_buf_steal(&b);
        m->sort_name = name;
}

void sf_pg_layout_init(sf_pg_layout_t *l, const sf_pg_column_t *cols, int n,
                       const sf_pg_table_t *t)
{
        memset(l, 0, sizeof(*l));
        l->ncols = n;
        l->cols = sf_calloc(n > 0 ? (size_t)n : 1, sizeof(*l->cols));
        for (int i = 0; i < n; i++) {
                l->cols[i].col = i;
                l->cols[i].type = cols[i].type;
                l->cols[i].key = cols[i].key;
                pg_member_name(&l->cols[i], cols[i].name);
        }
        qsort(l->cols, (size_t)n, sizeof(*l->cols), pg_member_cmp);
        l->nkeys = t ? (int)t->key_cnt : 0;
        l->keys =
            sf_calloc(l->nkeys > 0 ? (size_t)l->nkeys : 1, sizeof(*l->keys));
        for (int k = 0; k < l->nkeys; k++) {
                sf_pg_member_t *m = &l->keys[k];

                m->col = -1;
                for (int i = 0; i < n; i++)
                        if (!strcmp(cols[i].name, t->key[k])) {
                                m->col = i;
                                m->type = cols[i].type;
                                m->key = cols[i].key;
                        }
                pg_member_name(m, t->key[k]);
        }
        qsort(l->keys, (size_t)l->nkeys, sizeof(*l->keys), pg_member_cmp);
        /* the names sorted by belong to the caller; not needed any more */
        for (int i = 0; i < n; i++)
                l->cols[i].sort_name = NULL;
        for (int k = 0; k < l->nkeys; k++)
                l->keys[k].sort_name = NULL;
}

void sf_pg_layout_free(sf_pg_layout_t *l)
{
        if (!l)
                return;
        for (int i = 0; i < l->ncols; i++)
                free(l->cols[i].name);
        for (int k = 0; k < l->nkeys; k++)
                free(l->keys[k].name);
        free(l->cols);
        free(l->keys);
        memset(l, 0, sizeof(*l));
}

/* What column M of an image is: NULL when the image leaves it out (a
 * non-key column of a key-only image, an unchanged TOASTed key column),
 * else its datum, taken from FULL_OLD for an unchanged TOASTed value the
 * old row has. */
static const sf_pg_datum_t *pg_image_datum(const sf_pg_member_t *m,
                                           const sf_pg_datum_t *tup,
                                           int key_only,
                                           const sf_pg_datum_t *full_old)
{
        const sf_pg_datum_t *v;

        if (m->col < 0 || (key_only && !m->key))
                return NULL;
        v = &tup[m->col];
        if (v->kind == 'u' && full_old && full_old[m->col].kind != 'u')
                v = &full_old[m->col];
        if (v->kind == 'u' && key_only)
                return NULL;
        return v;
}

static int pg_datum_append(sf_buf_t *b, uint32_t type, const sf_pg_datum_t *v)
{
        int rc;

        switch (v->kind) {
        case 'n':
                return sf_buf_append(b, "null", 4);
        case 'u':
                return sf_buf_append(b, pg_toast_marker,
                                     sizeof(pg_toast_marker) - 1);
        case 'b': {
                /* only sent with the binary option, which is not asked */
                char *b64 = sf_pg_base64((const unsigned char *)v->p, v->len);

                rc = sf_json_string_append(b, b64, strlen(b64));
                free(b64);
                return rc;
        }
        default:
                return sf_pg_value_append(b, type, v->p, v->len);
        }
}

int sf_pg_image_append(sf_buf_t *b, const sf_pg_layout_t *l,
                       const sf_pg_datum_t *tup, int key_only,
                       const sf_pg_datum_t *full_old)
{
        int first = 1, rc = sf_buf_append(b, "{", 1);

        for (int i = 0; i < l->ncols && !rc; i++) {
                const sf_pg_member_t *m = &l->cols[i];
                const sf_pg_datum_t *v =
                    pg_image_datum(m, tup, key_only, full_old);

                if (!v)
                        continue;
                if (!first)
                        rc |= sf_buf_append(b, ",", 1);
                first = 0;
                rc |= sf_buf_append(b, m->name, m->name_len);
                rc |= pg_datum_append(b, m->type, v);
        }
        rc |= sf_buf_append(b, "}", 1);
        return rc ? -1 : 0;
}

int sf_pg_key_append(sf_buf_t *b, const sf_pg_layout_t *l,
                     const sf_pg_datum_t *tup, int key_only,
                     const sf_pg_datum_t *full_old)
{
        int rc = sf_buf_append(b, "{", 1);

        for (int k = 0; k < l->nkeys && !rc; k++) {
                const sf_pg_member_t *m = &l->keys[k];
                const sf_pg_datum_t *v =
                    pg_image_datum(m, tup, key_only, full_old);

                if (k)
                        rc |= sf_buf_append(b, ",", 1);
                rc |= sf_buf_append(b, m->name, m->name_len);
                if (v)
                        rc |= pg_datum_append(b, m->type, v);
                else
                        rc |= sf_buf_append(b, "null", 4);
        }
        rc |= sf_buf_append(b, "}", 1);
        return rc ? -1 : 0;
}
