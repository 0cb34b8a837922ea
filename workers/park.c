/*
 * The parking store (contract in park.h): one SQLite table, rows in id
 * order (AUTOINCREMENT, so an id is never reused and a claim cursor never
 * skips a new row), with the claim state of each action kept in memory.
 */
#include "park.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "map.h"
#include "sf.h"

#define SF_PARK_BUSY_MS 10000

static const char *const park_schema =
    "CREATE TABLE IF NOT EXISTS parked ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " action TEXT NOT NULL,"
    " qkey TEXT NOT NULL,"
    " rec_key BLOB,"
    " rec_value BLOB NOT NULL,"
    " headers BLOB,"
    " origin_topic TEXT NOT NULL,"
    " origin_partition INTEGER NOT NULL,"
    " origin_offset INTEGER NOT NULL,"
    " attempts INTEGER NOT NULL,"
    " parked_at_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS parked_by_action ON parked(action, id);"
    "CREATE INDEX IF NOT EXISTS parked_by_key ON parked(action, qkey);";

typedef struct park_action {
        int64_t count;
        int64_t cursor; /* rows up to this id were handed out */
        const void *owner;
        size_t claimed;
} park_action_t;

typedef struct park_op {
        int64_t id;
        int attempts; /* -1: delete the row */
} park_op_t;

struct sf_park {
        char *path;
        int refs;
        int lock_fd;
        sqlite3 *db;
        sqlite3_stmt *ins, *sel, *del, *upd, *haskey;
        pthread_mutex_t mu;
        sf_map_t *actions; /* name -> park_action_t */
        sf_map_t *held;    /* row id -> owner: claimed, or done and pending */
        park_op_t *ops;
        size_t ops_cnt, ops_cap;
        sf_map_t *working; /* connector name -> int64_t mono ms */
        struct sf_park *next;
};

static pthread_mutex_t park_registry_mu = PTHREAD_MUTEX_INITIALIZER;
static sf_park_t *park_registry;

void sf_parked_clear(sf_parked_t *r)
{
        if (!r)
                return;
        free(r->action);
        free(r->qkey);
        free(r->rec_key);
        free(r->rec_value);
        free(r->headers);
        free(r->origin_topic);
        memset(r, 0, sizeof(*r));
}

static void park_id_str(int64_t id, char *buf, size_t size)
{
        snprintf(buf, size, "%lld", (long long)id);
}

static park_action_t *park_action(sf_park_t *p, const char *name)
{
        park_action_t *a = sf_map_get(p->actions, name);

        if (!a) {
                a = sf_calloc(1, sizeof(*a));
                sf_map_set(p->actions, name, a);
        }
        return a;
}

/* mkdir -p of the directory holding PATH. */
static int park_mkdirs(const char *path, char *errstr, size_t errstr_size)
{
        char *dir = sf_strdup(path);
        char *slash = strrchr(dir, '/');
        int rc = 0;

        if (!slash || slash == dir)
                goto out;
        *slash = '\0';
        for (char *p = dir + 1; !rc; p++) {
                char c = *p;

                if (c != '/' && c != '\0')
                        continue;
                *p = '\0';
                if (mkdir(dir, 0755) && errno != EEXIST) {
                        sf_seterr(errstr, errstr_size, "cannot create %s: %s",
                                  dir, strerror(errno));
                        rc = -1;
                }
                *p = c;
                if (!c)
                        break;
        }
out:
        free(dir);
        return rc;
}

static int park_prepare(sf_park_t *p, const char *sql, sqlite3_stmt **st,
                        char *errstr, size_t errstr_size)
{
        if (sqlite3_prepare_v2(p->db, sql, -1, st, NULL) == SQLITE_OK)
                return 0;
        sf_seterr(errstr, errstr_size, "%s: %s", p->path,
                  sqlite3_errmsg(p->db));
        return -1;
}

static int park_load_counts(sf_park_t *p, char *errstr, size_t errstr_size)
{
        sqlite3_stmt *st = NULL;
        int rc = park_prepare(
            p, "SELECT action, count(*) FROM parked GROUP BY action", &st,
            errstr, errstr_size);

        while (!rc) {
                int r = sqlite3_step(st);

                if (r == SQLITE_DONE)
                        break;
                if (r != SQLITE_ROW) {
                        sf_seterr(errstr, errstr_size, "%s: reading: %s",
                                  p->path, sqlite3_errmsg(p->db));
                        rc = -1;
                        break;
                }
                park_action(p, (const char *)sqlite3_column_text(st, 0))
                    ->count = sqlite3_column_int64(st, 1);
        }
        sqlite3_finalize(st);
        return rc;
}

static int park_free_entry(void *opaque, const char *key, void *value)
{
        (void)opaque;
        (void)key;
        free(value);
        return 0;
}

static void park_free(sf_park_t *p)
{
        if (!p)
                return;
        sqlite3_finalize(p->ins);
        sqlite3_finalize(p->sel);
        sqlite3_finalize(p->del);
        sqlite3_finalize(p->upd);
        sqlite3_finalize(p->haskey);
        if (p->db)
                sqlite3_close(p->db);
        if (p->lock_fd >= 0)
                close(p->lock_fd);
        if (p->actions)
                sf_map_each(p->actions, park_free_entry, NULL);
        sf_map_destroy(p->actions);
        sf_map_destroy(p->held);
        if (p->working)
                sf_map_each(p->working, park_free_entry, NULL);
        sf_map_destroy(p->working);
        pthread_mutex_destroy(&p->mu);
        free(p->ops);
        free(p->path);
        free(p);
}

static sf_park_t *park_new(const char *path, char *errstr, size_t errstr_size)
{
        sf_park_t *p = sf_calloc(1, sizeof(*p));
        char *lock = sf_asprintf("%s.lock", path);
        char *err = NULL;
        int rc;

        p->path = sf_strdup(path);
        p->lock_fd = -1;
        pthread_mutex_init(&p->mu, NULL);
        p->actions = sf_map_new();
        p->held = sf_map_new();
        p->working = sf_map_new();
        rc = park_mkdirs(path, errstr, errstr_size);
        if (!rc) {
                p->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
                if (p->lock_fd < 0) {
                        sf_seterr(errstr, errstr_size, "cannot open %s: %s",
                                  lock, strerror(errno));
                        rc = -1;
                } else if (flock(p->lock_fd, LOCK_EX | LOCK_NB)) {
                        sf_seterr(errstr, errstr_size,
                                  "parking store %s is in use by another "
                                  "syncfleet process (%s is locked)",
                                  path, lock);
                        rc = -1;
                }
        }
        if (!rc && sqlite3_open_v2(path, &p->db,
                                   SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                       SQLITE_OPEN_NOMUTEX,
                                   NULL) != SQLITE_OK) {
                sf_seterr(errstr, errstr_size, "cannot open %s: %s", path,
                          p->db ? sqlite3_errmsg(p->db) : "out of memory");
                rc = -1;
        }
        if (!rc) {
                sqlite3_busy_timeout(p->db, SF_PARK_BUSY_MS);
                if (sqlite3_exec(p->db,
                                 "PRAGMA journal_mode=WAL;"
                                 "PRAGMA synchronous=FULL;",
                                 NULL, NULL, &err) != SQLITE_OK ||
                    sqlite3_exec(p->db, park_schema, NULL, NULL, &err) !=
                        SQLITE_OK) {
                        sf_seterr(errstr, errstr_size, "%s: %s", path,
                                  err ? err : sqlite3_errmsg(p->db));
                        rc = -1;
                }
        }
        if (!rc)
                rc = park_prepare(
                    p,
                    "INSERT INTO parked (action, qkey, rec_key, rec_value, "
                    "headers, origin_topic, origin_partition, origin_offset, "
                    "attempts, parked_at_ms) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    &p->ins, errstr, errstr_size);
        if (!rc)
                rc = park_prepare(
                    p,
                    "SELECT id, qkey, rec_key, rec_value, headers, "
                    "origin_topic, origin_partition, origin_offset, attempts "
                    "FROM parked WHERE action = ? AND id > ? ORDER BY id "
                    "LIMIT ?",
                    &p->sel, errstr, errstr_size);
        if (!rc)
                rc = park_prepare(p, "DELETE FROM parked WHERE id = ?", &p->del,
                                  errstr, errstr_size);
        if (!rc)
                rc = park_prepare(p,
                                  "UPDATE parked SET attempts = ? WHERE id = ?",
                                  &p->upd, errstr, errstr_size);
        if (!rc)
                rc = park_prepare(p,
                                  "SELECT 1 FROM parked WHERE action = ? AND "
                                  "qkey = ? LIMIT 1",
                                  &p->haskey, errstr, errstr_size);
        if (!rc)
                rc = park_load_counts(p, errstr, errstr_size);
        sqlite3_free(err);
        free(lock);
        if (rc) {
                park_free(p);
                return NULL;
        }
        return p;
}

sf_park_t *sf_park_open(const char *path, char *errstr, size_t errstr_size)
{
        sf_park_t *p;

        pthread_mutex_lock(&park_registry_mu);
        for (p = park_registry; p; p = p->next)
                if (!strcmp(p->path, path))
                        break;
        if (p) {
                p->refs++;
        } else if ((p = park_new(path, errstr, errstr_size))) {
                p->refs = 1;
                p->next = park_registry;
                park_registry = p;
        }
        pthread_mutex_unlock(&park_registry_mu);
        return p;
}

/* Runs the pending operations in one transaction; the caller holds mu. */
static int park_flush_locked(sf_park_t *p, char *errstr, size_t errstr_size)
{
        char *err = NULL;
        int rc = 0;

        if (!p->ops_cnt)
                return 0;
        if (sqlite3_exec(p->db, "BEGIN IMMEDIATE", NULL, NULL, &err) !=
            SQLITE_OK) {
                sf_seterr(errstr, errstr_size, "%s: %s", p->path,
                          err ? err : sqlite3_errmsg(p->db));
                sqlite3_free(err);
                return -1;
        }
        for (size_t i = 0; i < p->ops_cnt && !rc; i++) {
                const park_op_t *op = &p->ops[i];
                sqlite3_stmt *st = op->attempts < 0 ? p->del : p->upd;

                if (op->attempts < 0) {
                        sqlite3_bind_int64(st, 1, op->id);
                } else {
                        sqlite3_bind_int(st, 1, op->attempts);
                        sqlite3_bind_int64(st, 2, op->id);
                }
                if (sqlite3_step(st) != SQLITE_DONE)
                        rc = -1;
                sqlite3_reset(st);
        }
        if (!rc && sqlite3_exec(p->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
                rc = -1;
        if (rc) {
                sf_seterr(errstr, errstr_size, "%s: %s", p->path,
                          sqlite3_errmsg(p->db));
                sqlite3_exec(p->db, "ROLLBACK", NULL, NULL, NULL);
                return -1;
        }
        for (size_t i = 0; i < p->ops_cnt; i++) {
                char id[24];

                if (p->ops[i].attempts >= 0)
                        continue;
                park_id_str(p->ops[i].id, id, sizeof(id));
                sf_map_remove(p->held, id);
        }
        p->ops_cnt = 0;
        return 0;
}

void sf_park_close(sf_park_t *p)
{
        sf_park_t **pp;
        char errstr[512];

        if (!p)
                return;
        pthread_mutex_lock(&park_registry_mu);
        pthread_mutex_lock(&p->mu);
        park_flush_locked(p, errstr, sizeof(errstr));
        pthread_mutex_unlock(&p->mu);
        if (--p->refs > 0) {
                pthread_mutex_unlock(&park_registry_mu);
                return;
        }
        for (pp = &park_registry; *pp; pp = &(*pp)->next)
                if (*pp == p) {
                        *pp = p->next;
                        break;
                }
        pthread_mutex_unlock(&park_registry_mu);
        park_free(p);
}

const char *sf_park_path(const sf_park_t *p)
{
        return p->path;
}

int64_t sf_park_count(sf_park_t *p, const char *action)
{
        park_action_t *a;
        int64_t n;

        pthread_mutex_lock(&p->mu);
        a = sf_map_get(p->actions, action);
        n = a ? a->count : 0;
        pthread_mutex_unlock(&p->mu);
        return n;
}

int sf_park_key_has_rows(sf_park_t *p, const char *action, const char *qkey)
{
        int r;

        pthread_mutex_lock(&p->mu);
        sqlite3_bind_text(p->haskey, 1, action, -1, SQLITE_STATIC);
        sqlite3_bind_text(p->haskey, 2, qkey, -1, SQLITE_STATIC);
        r = sqlite3_step(p->haskey);
        sqlite3_reset(p->haskey);
        pthread_mutex_unlock(&p->mu);
        if (r == SQLITE_ROW)
                return 1;
        return r == SQLITE_DONE ? 0 : -1;
}

static void park_bind_blob(sqlite3_stmt *st, int i, const char *p, size_t n)
{
        if (p)
                sqlite3_bind_blob64(st, i, p, n, SQLITE_STATIC);
        else
                sqlite3_bind_null(st, i);
}

int sf_park_put(sf_park_t *p, const sf_parked_t *recs, size_t n, char *errstr,
                size_t errstr_size)
{
        int64_t now = sf_now_ms();
        int rc = 0;

        if (!n)
                return 0;
        pthread_mutex_lock(&p->mu);
        if (sqlite3_exec(p->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
            SQLITE_OK)
                rc = -1;
        for (size_t i = 0; i < n && !rc; i++) {
                const sf_parked_t *r = &recs[i];
                sqlite3_stmt *st = p->ins;

                sqlite3_bind_text(st, 1, r->action, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 2, r->qkey, -1, SQLITE_STATIC);
                park_bind_blob(st, 3, r->rec_key, r->rec_key_len);
                sqlite3_bind_blob64(st, 4, r->rec_value ? r->rec_value : "",
                                    r->rec_value_len, SQLITE_STATIC);
                park_bind_blob(st, 5, r->headers, r->headers_len);
                sqlite3_bind_text(st, 6, r->origin_topic, -1, SQLITE_STATIC);
                sqlite3_bind_int(st, 7, r->origin_partition);
                sqlite3_bind_int64(st, 8, r->origin_offset);
                sqlite3_bind_int(st, 9, r->attempts);
                sqlite3_bind_int64(st, 10, now);
                if (sqlite3_step(st) != SQLITE_DONE)
                        rc = -1;
                sqlite3_reset(st);
                sqlite3_clear_bindings(st);
        }
        if (!rc && sqlite3_exec(p->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
                rc = -1;
        if (rc) {
                sf_seterr(errstr, errstr_size,
                          "%s: cannot park %zu records: %s", p->path, n,
                          sqlite3_errmsg(p->db));
                sqlite3_exec(p->db, "ROLLBACK", NULL, NULL, NULL);
        } else {
                for (size_t i = 0; i < n; i++)
                        park_action(p, recs[i].action)->count++;
        }
        pthread_mutex_unlock(&p->mu);
        return rc;
}

static char *park_col(sqlite3_stmt *st, int i, size_t *len)
{
        const void *b = sqlite3_column_blob(st, i);
        size_t n = (size_t)sqlite3_column_bytes(st, i);
        char *out;

        if (len)
                *len = n;
        if (sqlite3_column_type(st, i) == SQLITE_NULL)
                return NULL;
        out = sf_malloc(n + 1);
        if (n)
                memcpy(out, b, n);
        out[n] = '\0';
        return out;
}

int sf_park_claim(sf_park_t *p, const char *action, const void *owner,
                  size_t max, sf_parked_t *out, char *errstr,
                  size_t errstr_size)
{
        park_action_t *a;
        size_t got = 0;
        int rc = 0, more = 1;

        pthread_mutex_lock(&p->mu);
        a = park_action(p, action);
        if ((a->owner && a->owner != owner) || !a->count)
                goto out;
        /* released rows carry their attempts into the read below */
        if (park_flush_locked(p, errstr, errstr_size)) {
                rc = -1;
                goto out;
        }
        while (got < max && more && !rc) {
                sqlite3_stmt *st = p->sel;
                int r;

                more = 0;
                sqlite3_bind_text(st, 1, action, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 2, a->cursor);
                sqlite3_bind_int64(st, 3, (sqlite3_int64)(max - got));
                while ((r = sqlite3_step(st)) == SQLITE_ROW) {
                        sf_parked_t *rec = &out[got];
                        int64_t id = sqlite3_column_int64(st, 0);
                        char ids[24];

                        more = 1;
                        a->cursor = id;
                        park_id_str(id, ids, sizeof(ids));
                        if (sf_map_get(p->held, ids))
                                continue; /* still held by us, or done */
                        memset(rec, 0, sizeof(*rec));
                        rec->id = id;
                        rec->action = sf_strdup(action);
                        rec->qkey = park_col(st, 1, NULL);
                        rec->rec_key = park_col(st, 2, &rec->rec_key_len);
                        rec->rec_value = park_col(st, 3, &rec->rec_value_len);
                        if (!rec->rec_value)
                                rec->rec_value = sf_strdup("");
                        rec->headers = park_col(st, 4, &rec->headers_len);
                        rec->origin_topic = park_col(st, 5, NULL);
                        rec->origin_partition = sqlite3_column_int(st, 6);
                        rec->origin_offset = sqlite3_column_int64(st, 7);
                        rec->attempts = sqlite3_column_int(st, 8);
                        sf_map_set(p->held, ids, (void *)owner);
                        a->owner = owner;
                        a->claimed++;
                        got++;
                }
                if (r != SQLITE_DONE) {
                        sf_seterr(errstr, errstr_size, "%s: reading: %s",
                                  p->path, sqlite3_errmsg(p->db));
                        rc = -1;
                }
                sqlite3_reset(st);
        }
out:
        pthread_mutex_unlock(&p->mu);
        if (rc) {
                for (size_t i = 0; i < got; i++)
                        sf_parked_clear(&out[i]);
                return -1;
        }
        return (int)got;
}

static void park_op_add(sf_park_t *p, int64_t id, int attempts)
{
        if (p->ops_cnt == p->ops_cap) {
                p->ops_cap = p->ops_cap ? p->ops_cap * 2 : 64;
                p->ops = sf_realloc(p->ops, p->ops_cap * sizeof(*p->ops));
        }
        p->ops[p->ops_cnt].id = id;
        p->ops[p->ops_cnt].attempts = attempts;
        p->ops_cnt++;
}

static void park_unclaim(park_action_t *a, const void *owner)
{
        if (a->owner != owner || !a->claimed)
                return;
        if (!--a->claimed)
                a->owner = NULL;
}

void sf_park_done(sf_park_t *p, const char *action, const void *owner,
                  int64_t id)
{
        park_action_t *a;

        pthread_mutex_lock(&p->mu);
        a = park_action(p, action);
        park_op_add(p, id, -1);
        if (a->count > 0)
                a->count--;
        park_unclaim(a, owner);
        pthread_mutex_unlock(&p->mu);
}

void sf_park_release(sf_park_t *p, const char *action, const void *owner,
                     int64_t id, int attempts)
{
        park_action_t *a;
        char ids[24];

        pthread_mutex_lock(&p->mu);
        a = park_action(p, action);
        park_op_add(p, id, attempts < 0 ? 0 : attempts);
        park_id_str(id, ids, sizeof(ids));
        sf_map_remove(p->held, ids);
        if (a->cursor >= id)
                a->cursor = id - 1;
        park_unclaim(a, owner);
        pthread_mutex_unlock(&p->mu);
}

int sf_park_flush(sf_park_t *p, char *errstr, size_t errstr_size)
{
        int rc;

        pthread_mutex_lock(&p->mu);
        rc = park_flush_locked(p, errstr, errstr_size);
        pthread_mutex_unlock(&p->mu);
        return rc;
}

typedef struct park_each_ctx {
        void (*cb)(void *opaque, const char *action, int64_t rows);
        void *opaque;
} park_each_ctx_t;

static int park_each_one(void *opaque, const char *key, void *value)
{
        park_each_ctx_t *c = opaque;
        park_action_t *a = value;

        if (a->count > 0)
                c->cb(c->opaque, key, a->count);
        return 0;
}

void sf_park_each_action(sf_park_t *p,
                         void (*cb)(void *opaque, const char *action,
                                    int64_t rows),
                         void *opaque)
{
        park_each_ctx_t c = {cb, opaque};

        pthread_mutex_lock(&p->mu);
        sf_map_each(p->actions, park_each_one, &c);
        pthread_mutex_unlock(&p->mu);
}

void sf_park_saw_working(sf_park_t *p, const char *name, int64_t now_ms)
{
        int64_t *t;

        pthread_mutex_lock(&p->mu);
        t = sf_map_get(p->working, name);
        if (!t) {
                t = sf_malloc(sizeof(*t));
                sf_map_set(p->working, name, t);
        }
        *t = now_ms;
        pthread_mutex_unlock(&p->mu);
}

int64_t sf_park_seen_working(sf_park_t *p, const char *name)
{
        int64_t *t, v;

        pthread_mutex_lock(&p->mu);
        t = sf_map_get(p->working, name);
        v = t ? *t : -1;
        pthread_mutex_unlock(&p->mu);
        return v;
}
