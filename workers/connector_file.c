/*
 * The file connector: documents written to a directory, durably.
 *
 * format jsonl appends one compact JSON line per document to
 * DIR/<action>.jsonl; format json writes each document to DIR/<path> through
 * a temporary file and a rename, so a reader never sees half a document.
 * Either way the data is on disk (fsync) before the completion says SF_OK,
 * because the worker stores its Kafka offset right after.
 *
 * Writing is synchronous inside send(); the outcome waits in a FIFO and is
 * reported by the next poll(), as connector.h requires. A jsonl line is
 * appended under an exclusive flock(), so the worker threads and processes
 * sharing a file do not interleave lines, and a write that fails half way
 * (ENOSPC, EFBIG) is cut off again (ftruncate to the length before it): the
 * file only ever holds whole lines, each of which parses. A last line cut
 * by a crash is cut off by the next append, before it writes.
 *
 * Only files of its own: a symbolic link (or anything but a regular file)
 * where a file of the connector should be is refused, not followed
 * (O_NOFOLLOW), and a json file name longer than the folder's file system
 * takes is shortened, with a hash of the whole name kept in it, so that it
 * stays unique.
 */
#include "connector.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json.h"
#include "log.h"

#define SF_FILE_LOG "file"

struct sf_conn {
        const sf_connector_cfg_t *cfg;
        char *name;
        char *dir;
        size_t name_max; /* longest json file name (temporary's prefix off) */
        sf_doneq_t done; /* outcomes waiting for poll() */
};

/* mkdir -p: every missing component of PATH, mode 0755. */
static int file_mkdirs(const char *path)
{
        char *p = sf_strdup(path);
        int rc = 0;

        for (char *s = p + 1; *s && !rc; s++) {
                if (*s != '/')
                        continue;
                *s = '\0';
                if (mkdir(p, 0755) && errno != EEXIST)
                        rc = -1;
                *s = '/';
        }
        if (!rc && mkdir(p, 0755) && errno != EEXIST)
                rc = -1;
        free(p);
        return rc;
}

/* Writes all of BUF, riding over short writes and EINTR. */
static int file_write_all(int fd, const char *buf, size_t len)
{
        while (len > 0) {
                ssize_t n = write(fd, buf, len);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -1;
                buf += n;
                len -= (size_t)n;
        }
        return 0;
}

/* fsync of the directory makes a new name (created or renamed) durable. */
static int file_sync_dir(const char *dir)
{
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int rc;

        if (fd < 0)
                return -1;
        rc = fsync(fd);
        if (rc) {
                int e = errno;

                close(fd);
                errno = e;
                return -1;
        }
        return close(fd);
}

/* The file name of an action: [A-Za-z0-9._-] kept, anything else '_', no
 * leading dot. */
static char *file_action_name(const char *action)
{
        char *s = sf_strdup(action && *action ? action : "documents");

        for (char *p = s; *p; p++)
                if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                      (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' ||
                      *p == '-'))
                        *p = '_';
        if (s[0] == '.')
                s[0] = '_';
        return s;
}

/* Opens PATH with FLAGS, creating the directory when it is missing. */
static int file_open(sf_conn_t *c, const char *path, int flags)
{
        int fd = open(path, flags | O_CLOEXEC, 0644);

        if (fd < 0 && errno == ENOENT) {
                if (file_mkdirs(c->dir))
                        return -1;
                fd = open(path, flags | O_CLOEXEC, 0644);
        }
        return fd;
}

/* A failure that no retry can mend: the record's document is at fault, or
 * the folder holds what the connector must not write through. */
static sf_status_t file_errno_status(int e)
{
        return e == ENAMETOOLONG ? SF_FATAL : SF_RETRY;
}

/* The length of FD's file once a last line cut by an earlier failure (no
 * '\n' at the end) is left out: the end of its last whole line. SIZE is
 * the file's length. -1 with errno. */
static off_t file_whole_lines(int fd, off_t size)
{
        char buf[4096];
        off_t end = size;

        while (end > 0) {
                size_t n = end < (off_t)sizeof(buf) ? (size_t)end : sizeof(buf);
                ssize_t got = pread(fd, buf, n, end - (off_t)n);

                if (got < 0 && errno == EINTR)
                        continue;
                if (got != (ssize_t)n) {
                        if (got >= 0)
                                errno = EIO;
                        return -1;
                }
                for (size_t i = n; i > 0; i--)
                        if (buf[i - 1] == '\n')
                                return end - (off_t)n + (off_t)i;
                end -= (off_t)n;
        }
        return 0;
}

static sf_status_t file_append_line(sf_conn_t *c, const char *action,
                                    const char *doc, char *err, size_t errsz)
{
        char *name = file_action_name(action);
        char *path = sf_asprintf("%s/%s.jsonl", c->dir, name);
        char *line = sf_asprintf("%s\n", doc);
        const char *step = "open";
        sf_status_t st = SF_RETRY;
        struct stat sb;
        int created = 0, e = 0;
        off_t whole;
        int fd;

        /* a fresh file also needs its directory entry made durable */
        created = lstat(path, &sb) != 0;
        /* O_NONBLOCK: a FIFO put there does not hang the worker */
        fd = file_open(c, path,
                       O_RDWR | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK);
        if (fd < 0 && errno == ELOOP) {
                sf_seterr(err, errsz,
                          "%s is a symbolic link: refused, the file connector "
                          "writes only files of its own in %s",
                          path, c->dir);
                goto out;
        }
        if (fd < 0)
                goto fail;
        step = "stat";
        if (fstat(fd, &sb))
                goto fail;
        if (!S_ISREG(sb.st_mode)) {
                sf_seterr(err, errsz,
                          "%s is not a regular file: refused, the file "
                          "connector writes only files of its own in %s",
                          path, c->dir);
                goto out;
        }
        step = "lock";
        while (flock(fd, LOCK_EX) && errno == EINTR)
                ;
        step = "stat";
        if (fstat(fd, &sb))
                goto fail;
        step = "read the end of";
        whole = sb.st_size > 0 ? file_whole_lines(fd, sb.st_size) : 0;
        if (whole < 0)
                goto fail;
        step = "cut the partial last line of";
        if (whole < sb.st_size && ftruncate(fd, whole))
                goto fail;
        step = "write";
        if (file_write_all(fd, line, strlen(line))) {
                /* no part of this line stays behind */
                e = errno;
                if (ftruncate(fd, whole))
                        sf_warn(SF_FILE_LOG,
                                "connector %s: cutting %s back to %lld "
                                "bytes: %s",
                                c->name, path, (long long)whole,
                                strerror(errno));
                errno = e;
                goto fail;
        }
        step = "fsync";
        if (fsync(fd))
                goto fail;
        step = "close";
        e = close(fd);
        fd = -1;
        if (e)
                goto fail;
        step = "fsync directory of";
        if (created && file_sync_dir(c->dir))
                goto fail;
        st = SF_OK;
        goto out;
fail:
        e = errno;
        st = file_errno_status(e);
        sf_seterr(err, errsz, "%s %s: %s", step, path, strerror(e));
out:
        if (fd >= 0)
                close(fd);
        free(line);
        free(path);
        free(name);
        return st;
}

/* NAME, or when it is longer than the folder's file system takes, its
 * first bytes, '-', a 64-bit FNV-1a hash of the whole name in hex and
 * ".json": still one name per record, and one that can be written. The
 * caller frees the result. */
static char *file_bounded_name(const sf_conn_t *c, const char *name)
{
        size_t len = strlen(name), keep;
        uint64_t h = 0xcbf29ce484222325ULL;

        if (len <= c->name_max)
                return sf_strdup(name);
        for (const unsigned char *p = (const unsigned char *)name; *p; p++)
                h = (h ^ *p) * 0x100000001b3ULL;
        keep = c->name_max - 22; /* '-', 16 hex digits, ".json" */
        return sf_asprintf("%.*s-%016" PRIx64 ".json", (int)keep, name, h);
}

/* NAME is a plain file name: not empty, no '/', not hidden (which also
 * keeps "." and ".." and our temporary files out). */
static int file_name_ok(const sf_conn_t *c, const char *name)
{
        return name && *name && name[0] != '.' && !strchr(name, '/') &&
               strlen(name) <= c->name_max;
}

static sf_status_t file_write_doc(sf_conn_t *c, const char *name,
                                  const char *doc, char *err, size_t errsz)
{
        char *path = sf_asprintf("%s/%s", c->dir, name);
        char *tmp = sf_asprintf("%s/.%s.XXXXXX", c->dir, name);
        const char *step = "create a temporary file in";
        const char *failed = c->dir;
        sf_status_t st = SF_RETRY;
        int tmp_made = 0;
        int fd;

        fd = mkstemp(tmp);
        if (fd < 0 && errno == ENOENT && !file_mkdirs(c->dir))
                fd = mkstemp(tmp);
        if (fd < 0)
                goto out;
        tmp_made = 1;
        failed = tmp;
        step = "write";
        if (fchmod(fd, 0644) || file_write_all(fd, doc, strlen(doc)) ||
            file_write_all(fd, "\n", 1))
                goto out;
        step = "fsync";
        if (fsync(fd))
                goto out;
        step = "close";
        if (close(fd)) {
                fd = -1;
                goto out;
        }
        fd = -1;
        step = "rename to";
        failed = path;
        if (rename(tmp, path))
                goto out;
        tmp_made = 0;
        step = "fsync directory of";
        if (file_sync_dir(c->dir))
                goto out;
        st = SF_OK;
out:
        if (st != SF_OK) {
                st = file_errno_status(errno);
                sf_seterr(err, errsz, "%s %s: %s", step, failed,
                          strerror(errno));
        }
        if (fd >= 0)
                close(fd);
        if (tmp_made)
                unlink(tmp);
        free(tmp);
        free(path);
        return st;
}

static sf_conn_t *file_open_conn(const sf_connector_cfg_t *cfg,
                                 const sf_config_t *pipeline,
                                 const char *bootstraps, char *errstr,
                                 size_t errstr_size)
{
        (void)bootstraps;
        const char *name = cfg->name ? cfg->name : "file";
        sf_conn_t *c;
        size_t len;

        (void)pipeline;
        if (!cfg->dir || !*cfg->dir) {
                sf_seterr(errstr, errstr_size, "connector %s: dir is empty",
                          name);
                return NULL;
        }
        c = sf_calloc(1, sizeof(*c));
        c->cfg = cfg;
        c->name = sf_strdup(name);
        c->dir = sf_strdup(cfg->dir);
        len = strlen(c->dir);
        while (len > 1 && c->dir[len - 1] == '/')
                c->dir[--len] = '\0';
        c->name_max = NAME_MAX - 16;
        /* Not fatal: the directory may appear later (a mount); every write
         * tries again and reports SF_RETRY meanwhile. */
        if (file_mkdirs(c->dir)) {
                sf_warn(SF_FILE_LOG, "connector %s: mkdir %s: %s", name, c->dir,
                        strerror(errno));
        } else {
                /* the file system's own limit, less the temporary's
                 * ".NAME.XXXXXX" */
                long m = pathconf(c->dir, _PC_NAME_MAX);

                if (m > 64 && (size_t)m - 16 < c->name_max)
                        c->name_max = (size_t)m - 16;
        }
        return c;
}

static int file_send(sf_conn_t *c, const sf_request_t *req,
                     sf_conn_done_cb *done, void *opaque, char *errstr,
                     size_t errstr_size)
{
        char err[sizeof(((sf_result_t *)0)->error)] = "";
        sf_status_t st;
        char *doc = NULL, *name = NULL;

        (void)errstr;
        (void)errstr_size;
        if (!req->body) {
                st = SF_FATAL;
                snprintf(err, sizeof(err), "connector %s: no document",
                         c->name);
                goto out;
        }
        doc = sf_json_print(req->body, 0);
        if (!doc) {
                st = SF_FATAL;
                snprintf(err, sizeof(err),
                         "connector %s: the document cannot be serialized "
                         "as JSON",
                         c->name);
                goto out;
        }
        if (c->cfg->format == SF_FILE_JSON) {
                name = req->path ? file_bounded_name(c, req->path) : NULL;
                if (!file_name_ok(c, name)) {
                        st = SF_FATAL;
                        snprintf(err, sizeof(err),
                                 "connector %s: \"%s\" is not a plain file "
                                 "name",
                                 c->name, req->path ? req->path : "");
                        goto out;
                }
                st = file_write_doc(c, name, doc, err, sizeof(err));
        } else {
                st = file_append_line(c, req->action, doc, err, sizeof(err));
        }
        if (st != SF_OK)
                sf_warn(SF_FILE_LOG, "connector %s: %s", c->name, err);
out:
        sf_doneq_push(&c->done, done, opaque, st, err);
        free(doc);
        free(name);
        return 0;
}

static int file_poll(sf_conn_t *c, int timeout_ms)
{
        (void)timeout_ms; /* nothing is ever in progress */
        return sf_doneq_drain(&c->done);
}

static size_t file_pending(const sf_conn_t *c)
{
        return c->done.cnt;
}

static void file_close(sf_conn_t *c)
{
        if (!c)
                return;
        sf_doneq_clear(&c->done);
        free(c->dir);
        free(c->name);
        free(c);
}

const sf_connector_ops_t sf_connector_file = {
    .name = "file",
    .type = SF_CONN_FILE,
    .open = file_open_conn,
    .send = file_send,
    .poll = file_poll,
    .pending = file_pending,
    .close = file_close,
};
