/*
 * The pipeline's state directory (cfg->state_dir): what must outlive one
 * process on this machine. It holds
 *
 *   lock     taken (flock, exclusive) by the one process that runs the
 *            pipeline's embedded broker: `syncfleet run`, or `syncfleet
 *            broker -c FILE`; it holds that process's pid
 *   broker   the bootstrap address of that process's embedded broker,
 *            while it runs, so `syncfleet lag`, `syncfleet dlq` and
 *            standalone components find it without --brokers
 *   dlq.db   the dead-letter store of the embedded mode (dlq.h)
 *
 * The kernel drops the lock when its holder dies, however it dies, so the
 * lock, not the broker file, says whether the broker runs: a broker file
 * left behind by a kill -9 is not believed.
 */
#ifndef SF_STATE_H
#define SF_STATE_H

#include <stddef.h>

#include "config.h"

typedef struct sf_state sf_state_t;

/* Opens cfg->state_dir, creating it (mode 0700, parents too) when missing.
 * With LOCK, takes the directory's lock, and fails when another process
 * holds it: "state directory X is in use by another syncfleet run (pid N);
 * give this pipeline its own state_dir". NULL with errstr on failure. */
sf_state_t *sf_state_open(const sf_config_t *cfg, int lock, char *errstr,
                          size_t errstr_size);

/* Records BOOTSTRAPS as the running embedded broker's address (written to
 * a temporary file and renamed, so a reader never sees half of it). Only
 * the lock's holder may; sf_state_close removes the record. 0, or -1 with
 * errstr. */
int sf_state_set_broker(sf_state_t *s, const char *bootstraps, char *errstr,
                        size_t errstr_size);

/* The recorded address of the pipeline's running embedded broker
 * (malloc'd), or NULL with errstr saying why there is none: nothing was
 * recorded, or what was recorded is left over from a process that is gone
 * (the lock is free). */
char *sf_state_broker(const sf_config_t *cfg, char *errstr, size_t errstr_size);

/* Removes the broker record this process wrote, then releases the lock.
 * NULL is a no-op. */
void sf_state_close(sf_state_t *s);

#endif
