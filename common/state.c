/*
 * The state directory: creating it, its lock and the broker record.
 *
 * The lock is flock(2) on DIR/lock, so it belongs to the open file and the
 * kernel drops it when the holder dies. Whether a broker record is current
 * is asked of the lock with a shared, non-blocking flock that is released
 * at once; the holder-to-be retries its own non-blocking attempt for a
 * moment, so such a probe cannot make a start fail.
 */
#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sf.h"

#define SF_STATE_LOCK         "lock"
#define SF_STATE_BROKER       "broker"
#define SF_STATE_RECORD_MAX   4096
#define SF_STATE_LOCK_TRIES   25 /* 20 ms apart: half a second */
#define SF_STATE_LOCK_WAIT_MS 20

struct sf_state {
        char *dir;
        int lock_fd;    /* -1: not locked */
        int broker_set; /* this process wrote DIR/broker */
};

static void sf_state_nap(int ms)
{
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

        nanosleep(&ts, NULL);
}

/* mkdir -p DIR with mode 0700 for what it creates. */
static int sf_state_mkdirs(const char *dir, char *errstr, size_t errstr_size)
{
        char *path = sf_strdup(dir);
        struct stat st;
        int rc = -1;

        for (char *p = path + 1;; p++) {
                if (*p != '/' && *p != '\0')
                        continue;
                char saved = *p;

                *p = '\0';
                if (mkdir(path, 0700) && errno != EEXIST) {
                        sf_seterr(errstr, errstr_size,
                                  "cannot create state directory %s: %s: %s",
                                  dir, path, strerror(errno));
                        goto out;
                }
                *p = saved;
                if (!saved)
                        break;
        }
        if (stat(dir, &st)) {
                sf_seterr(errstr, errstr_size, "state directory %s: %s", dir,
                          strerror(errno));
                goto out;
        }
        if (!S_ISDIR(st.st_mode)) {
                sf_seterr(errstr, errstr_size,
                          "state directory %s is not a directory", dir);
                goto out;
        }
        rc = 0;
out:
        free(path);
        return rc;
}

/* The pid written in the lock file FD, or -1. */
static long sf_state_lock_pid(int fd)
{
        char buf[32];
        ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
        char *end;
        long pid;

        if (n <= 0)
                return -1;
        buf[n] = '\0';
        pid = strtol(buf, &end, 10);
        return end != buf && pid > 0 ? pid : -1;
}

static int sf_state_lock(sf_state_t *s, char *errstr, size_t errstr_size)
{
        char *path = sf_asprintf("%s/%s", s->dir, SF_STATE_LOCK);
        char pid[32];
        int fd, rc = -1, got = -1;

        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
                sf_seterr(errstr, errstr_size, "cannot open %s: %s", path,
                          strerror(errno));
                goto out;
        }
        for (int i = 0; i < SF_STATE_LOCK_TRIES; i++) {
                got = flock(fd, LOCK_EX | LOCK_NB);
                if (!got || errno != EWOULDBLOCK)
                        break;
                sf_state_nap(SF_STATE_LOCK_WAIT_MS);
        }
        if (got && errno == EWOULDBLOCK) {
                long holder = sf_state_lock_pid(fd);

                /* the holder may not have written its pid yet */
                for (int i = 0; holder < 0 && i < SF_STATE_LOCK_TRIES; i++) {
                        sf_state_nap(SF_STATE_LOCK_WAIT_MS);
                        holder = sf_state_lock_pid(fd);
                }
                if (holder > 0)
                        snprintf(pid, sizeof(pid), "pid %ld", holder);
                else
                        snprintf(pid, sizeof(pid), "pid unknown");
                sf_seterr(errstr, errstr_size,
                          "state directory %s is in use by another syncfleet "
                          "run (%s); give this pipeline its own state_dir",
                          s->dir, pid);
                goto out;
        }
        if (got) {
                sf_seterr(errstr, errstr_size, "cannot lock %s: %s", path,
                          strerror(errno));
                goto out;
        }
        snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
        if (ftruncate(fd, 0) ||
            pwrite(fd, pid, strlen(pid), 0) != (ssize_t)strlen(pid)) {
                sf_seterr(errstr, errstr_size, "cannot write %s: %s", path,
                          strerror(errno));
                goto out;
        }
        s->lock_fd = fd;
        fd = -1; /* now owned by s */
        /* a record left by a holder that died is not this process's */
        free(path);
        path = sf_asprintf("%s/%s", s->dir, SF_STATE_BROKER);
        unlink(path);
        rc = 0;
out:
        if (fd >= 0)
                close(fd);
        free(path);
        return rc;
}

sf_state_t *sf_state_open(const sf_config_t *cfg, int lock, char *errstr,
                          size_t errstr_size)
{
        sf_state_t *s;

        if (!cfg->state_dir) {
                sf_seterr(errstr, errstr_size,
                          "the pipeline has no state directory");
                return NULL;
        }
        if (sf_state_mkdirs(cfg->state_dir, errstr, errstr_size))
                return NULL;
        s = sf_calloc(1, sizeof(*s));
        s->dir = sf_strdup(cfg->state_dir);
        s->lock_fd = -1;
        if (lock && sf_state_lock(s, errstr, errstr_size)) {
                sf_state_close(s);
                return NULL;
        }
        return s;
}

int sf_state_set_broker(sf_state_t *s, const char *bootstraps, char *errstr,
                        size_t errstr_size)
{
        char *tmp = NULL, *path = NULL;
        FILE *f;
        int rc = -1, written = 0;

        if (s->lock_fd < 0) {
                sf_seterr(errstr, errstr_size,
                          "state directory %s: only the process holding its "
                          "lock records the broker",
                          s->dir);
                return -1;
        }
        path = sf_asprintf("%s/%s", s->dir, SF_STATE_BROKER);
        tmp = sf_asprintf("%s.tmp.%ld", path, (long)getpid());
        f = fopen(tmp, "w");
        if (f) {
                int bad = fprintf(f, "%s\n", bootstraps) < 0;

                if (fclose(f) || bad)
                        f = NULL;
                else
                        written = 1;
        }
        if (!written) {
                sf_seterr(errstr, errstr_size, "cannot write %s: %s", tmp,
                          strerror(errno));
                goto out;
        }
        if (rename(tmp, path)) {
                sf_seterr(errstr, errstr_size, "cannot rename %s to %s: %s",
                          tmp, path, strerror(errno));
                goto out;
        }
        s->broker_set = 1;
        rc = 0;
out:
        if (rc)
                unlink(tmp);
        free(tmp);
        free(path);
        return rc;
}

/* Whether some process holds the lock of DIR. */
static int sf_state_locked(const char *dir)
{
        char *path = sf_asprintf("%s/%s", dir, SF_STATE_LOCK);
        int fd = open(path, O_RDONLY | O_CLOEXEC), held = 0;

        free(path);
        if (fd < 0)
                return 0;
        if (flock(fd, LOCK_SH | LOCK_NB))
                held = errno == EWOULDBLOCK;
        else
                flock(fd, LOCK_UN);
        close(fd);
        return held;
}

char *sf_state_broker(const sf_config_t *cfg, char *errstr, size_t errstr_size)
{
        char *path, buf[SF_STATE_RECORD_MAX], *addr = NULL;
        FILE *f;
        size_t n;

        if (!cfg->state_dir) {
                sf_seterr(errstr, errstr_size,
                          "the pipeline has no state directory");
                return NULL;
        }
        path = sf_asprintf("%s/%s", cfg->state_dir, SF_STATE_BROKER);
        f = fopen(path, "r");
        if (!f) {
                if (errno == ENOENT)
                        sf_seterr(errstr, errstr_size,
                                  "no embedded broker of this pipeline is "
                                  "running (none is recorded in %s)",
                                  cfg->state_dir);
                else
                        sf_seterr(errstr, errstr_size, "cannot read %s: %s",
                                  path, strerror(errno));
                goto out;
        }
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        buf[strcspn(buf, "\r\n")] = '\0';
        if (!*buf) {
                sf_seterr(errstr, errstr_size, "%s is empty", path);
                goto out;
        }
        if (!sf_state_locked(cfg->state_dir)) {
                sf_seterr(errstr, errstr_size,
                          "no embedded broker of this pipeline is running "
                          "(%s is left over from a process that is gone)",
                          path);
                goto out;
        }
        addr = sf_strdup(buf);
out:
        free(path);
        return addr;
}

void sf_state_close(sf_state_t *s)
{
        if (!s)
                return;
        if (s->broker_set) {
                char *path = sf_asprintf("%s/%s", s->dir, SF_STATE_BROKER);

                unlink(path);
                free(path);
        }
        if (s->lock_fd >= 0)
                close(s->lock_fd); /* releases the lock */
        free(s->dir);
        free(s);
}
