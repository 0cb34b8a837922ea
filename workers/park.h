/*
 * The parking store: outbound records set aside, durably, while a
 * connector they need is down, so that they neither pin a worker's memory
 * nor hold back the records of healthy connectors sharing their
 * partitions. A SQLite file (WAL, synchronous=FULL): once sf_park_put
 * returned, a record survives a crash and its offset may be committed.
 *
 * Rows are kept per action in the order they were put. A worker claims
 * them back oldest first, runs them, and marks each done (deleted) or
 * releases it (it will be claimed again, in its place). One worker at a
 * time drains an action (its owner, from its first claim until it holds
 * no claimed row): per-key order then holds however many worker threads
 * of the process share the file.
 *
 * One sf_park_t per file per process, shared by every worker thread that
 * opens the same path (reference counted; every call is thread-safe), and
 * locked against other processes.
 */
#ifndef SF_PARK_H
#define SF_PARK_H

#include <stddef.h>
#include <stdint.h>

typedef struct sf_park sf_park_t;

/* One parked record. The byte fields may hold anything (rec_key NULL:
 * the record had no key); headers is the caller's own encoding. */
typedef struct sf_parked {
        int64_t id; /* set by the store */
        char *action;
        char *qkey; /* the record's ordering key */
        char *rec_key;
        size_t rec_key_len;
        char *rec_value;
        size_t rec_value_len;
        char *headers;
        size_t headers_len;
        char *origin_topic;
        int32_t origin_partition;
        int64_t origin_offset;
        int attempts;
} sf_parked_t;

/* Frees what sf_park_claim filled in (the fields, not REC). */
void sf_parked_clear(sf_parked_t *rec);

/* Opens (creating the file, its directory and schema) or shares the store
 * at PATH. NULL with errstr when it cannot be opened or another process
 * holds it. */
sf_park_t *sf_park_open(const char *path, char *errstr, size_t errstr_size);
/* Writes pending deletions and drops this reference. NULL is a no-op. */
void sf_park_close(sf_park_t *p);

const char *sf_park_path(const sf_park_t *p);

/* Rows of ACTION not done yet (claimed ones included). */
int64_t sf_park_count(sf_park_t *p, const char *action);

/* Whether ACTION has a row of ordering key QKEY (claimed or not). -1 on a
 * read error. */
int sf_park_key_has_rows(sf_park_t *p, const char *action, const char *qkey);

/* Appends RECS[0..N) in one transaction, durable when 0 is returned;
 * -1 with errstr and nothing appended. */
int sf_park_put(sf_park_t *p, const sf_parked_t *recs, size_t n, char *errstr,
                size_t errstr_size);

/* Claims for OWNER up to MAX of ACTION's rows that no one holds, oldest
 * first, into OUT[0..]. Returns how many (0 also when another owner
 * drains ACTION), or -1 with errstr. */
int sf_park_claim(sf_park_t *p, const char *action, const void *owner,
                  size_t max, sf_parked_t *out, char *errstr,
                  size_t errstr_size);

/* Row ID of ACTION, claimed by OWNER, is finished: deleted at the next
 * sf_park_flush (or claim, or close). */
void sf_park_done(sf_park_t *p, const char *action, const void *owner,
                  int64_t id);

/* Row ID goes back unfinished, with ATTEMPTS counted so far; it will be
 * claimed again before every later row of ACTION. */
void sf_park_release(sf_park_t *p, const char *action, const void *owner,
                     int64_t id, int attempts);

/* Writes pending deletions and attempt counts in one transaction. 0, or
 * -1 with errstr (they stay pending). */
int sf_park_flush(sf_park_t *p, char *errstr, size_t errstr_size);

/* CB(OPAQUE, action, rows) for every action with rows. */
void sf_park_each_action(sf_park_t *p,
                         void (*cb)(void *opaque, const char *action,
                                    int64_t rows),
                         void *opaque);

/* Connector NAME was seen working by some worker at monotonic time
 * NOW_MS (its circuit closed); sf_park_seen_working says when last, or -1:
 * a worker whose circuit for NAME is open and which has nothing to probe
 * with may take that as its own proof. */
void sf_park_saw_working(sf_park_t *p, const char *name, int64_t now_ms);
int64_t sf_park_seen_working(sf_park_t *p, const char *name);

#endif
