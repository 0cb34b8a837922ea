/*
 * The file connector against a real temporary directory: what lands on
 * disk, byte for byte, and the outcome each request reports.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/capability.h>

#include <cmocka.h>

#include "connector.h"

typedef struct done_rec {
        int calls;
        sf_result_t res;
} done_rec_t;

typedef struct fixture {
        char root[64];
        char *dir;
        sf_connector_cfg_t cfg;
        sf_conn_t *conn;
} fixture_t;

static const sf_connector_ops_t *ops(void)
{
        return sf_connector_ops(SF_CONN_FILE);
}

static void on_done(void *opaque, const sf_result_t *res)
{
        done_rec_t *d = opaque;

        d->calls++;
        d->res = *res;
        d->res.response = NULL;
        d->res.response_headers_json = NULL;
}

static char *slurp(const char *path)
{
        FILE *f = fopen(path, "rb");
        char *buf;
        long n;

        if (!f)
                return NULL;
        fseek(f, 0, SEEK_END);
        n = ftell(f);
        fseek(f, 0, SEEK_SET);
        buf = calloc(1, (size_t)n + 1);
        assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
        fclose(f);
        return buf;
}

static int count_entries(const char *dir)
{
        DIR *d = opendir(dir);
        struct dirent *e;
        int n = 0;

        if (!d)
                return -1;
        while ((e = readdir(d)))
                if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                        n++;
        closedir(d);
        return n;
}

static void rm_rf(const char *path)
{
        char *cmd = sf_asprintf("rm -rf '%s'", path);

        assert_int_equal(system(cmd), 0);
        free(cmd);
}

static fixture_t *fixture_new(sf_file_format_t format)
{
        fixture_t *f = calloc(1, sizeof(*f));
        char err[256] = "";

        snprintf(f->root, sizeof(f->root), "/tmp/sf-file-test-XXXXXX");
        assert_non_null(mkdtemp(f->root));
        /* two missing levels: open() must create them */
        f->dir = sf_asprintf("%s/out/orders", f->root);
        f->cfg.name = "archive";
        f->cfg.type = SF_CONN_FILE;
        f->cfg.dir = f->dir;
        f->cfg.format = format;
        f->conn = ops()->open(&f->cfg, NULL, NULL, err, sizeof(err));
        assert_non_null(f->conn);
        return f;
}

static void fixture_free(fixture_t *f)
{
        ops()->close(f->conn);
        rm_rf(f->root);
        free(f->dir);
        free(f);
}

static int send_doc(fixture_t *f, const char *action, const char *path,
                    const char *json, done_rec_t *d)
{
        cJSON *doc = json ? cJSON_Parse(json) : NULL;
        sf_request_t req = {.action = action,
                            .path = path,
                            .body = doc,
                            .idempotency_key = "ev-1"};
        char err[256] = "";
        int rc;

        if (json)
                assert_non_null(doc);
        rc = ops()->send(f->conn, &req, on_done, d, err, sizeof(err));
        cJSON_Delete(doc); /* the connector copied what it needed */
        return rc;
}

static void test_table_lists_file(void **state)
{
        (void)state;
        assert_non_null(ops());
        assert_string_equal(ops()->name, "file");
        ops()->close(NULL); /* a no-op */
}

static void test_jsonl_appends_lines(void **state)
{
        fixture_t *f = fixture_new(SF_FILE_JSONL);
        done_rec_t d[3] = {{0}};
        char *path, *text;

        (void)state;
        assert_int_equal(send_doc(f, "order-to-archive", NULL,
                                  "{ \"id\": 1, \"name\": \"A\" }", &d[0]),
                         0);
        assert_int_equal(send_doc(f, "order-to-archive", NULL,
                                  "{\"id\":2,\"lines\":[{\"qty\":1.5}]}",
                                  &d[1]),
                         0);
        assert_int_equal(send_doc(f, "../we ird/act", NULL, "[1,\"x\"]", &d[2]),
                         0);
        /* written already, but reported only from poll() */
        assert_int_equal(d[0].calls + d[1].calls + d[2].calls, 0);
        assert_int_equal(ops()->pending(f->conn), 3);
        assert_int_equal(ops()->poll(f->conn, 100), 3);
        assert_int_equal(ops()->pending(f->conn), 0);
        assert_int_equal(ops()->poll(f->conn, 0), 0);
        for (int i = 0; i < 3; i++) {
                assert_int_equal(d[i].calls, 1);
                assert_int_equal(d[i].res.status, SF_OK);
                assert_string_equal(d[i].res.error, "");
        }

        path = sf_asprintf("%s/order-to-archive.jsonl", f->dir);
        text = slurp(path);
        assert_non_null(text);
        assert_string_equal(text, "{\"id\":1,\"name\":\"A\"}\n"
                                  "{\"id\":2,\"lines\":[{\"qty\":1.5}]}\n");
        free(text);
        free(path);

        /* the action name cannot leave the directory */
        path = sf_asprintf("%s/_._we_ird_act.jsonl", f->dir);
        text = slurp(path);
        assert_non_null(text);
        assert_string_equal(text, "[1,\"x\"]\n");
        free(text);
        free(path);
        assert_int_equal(count_entries(f->dir), 2);

        /* a later connector appends to the same file */
        ops()->close(f->conn);
        f->conn = ops()->open(&f->cfg, NULL, NULL, NULL, 0);
        assert_non_null(f->conn);
        assert_int_equal(
            send_doc(f, "order-to-archive", NULL, "{\"id\":3}", &d[0]), 0);
        assert_int_equal(ops()->poll(f->conn, 0), 1);
        assert_int_equal(d[0].calls, 2);
        path = sf_asprintf("%s/order-to-archive.jsonl", f->dir);
        text = slurp(path);
        assert_string_equal(text, "{\"id\":1,\"name\":\"A\"}\n"
                                  "{\"id\":2,\"lines\":[{\"qty\":1.5}]}\n"
                                  "{\"id\":3}\n");
        free(text);
        free(path);
        fixture_free(f);
}

static void test_json_file_per_document(void **state)
{
        fixture_t *f = fixture_new(SF_FILE_JSON);
        done_rec_t d[2] = {{0}};
        char *path, *text;

        (void)state;
        assert_int_equal(send_doc(f, "order-to-archive",
                                  "order-to-archive-7-ev1.json",
                                  "{\"orderId\":7,\"lines\":[]}", &d[0]),
                         0);
        assert_int_equal(
            send_doc(f, "order-to-archive", "order-to-archive-8-ev2.json",
                     "{\"orderId\":8,\"note\":\"\\u00e9\"}", &d[1]),
            0);
        assert_int_equal(ops()->poll(f->conn, 0), 2);
        assert_int_equal(d[0].calls, 1);
        assert_int_equal(d[0].res.status, SF_OK);
        assert_int_equal(d[1].calls, 1);
        assert_int_equal(d[1].res.status, SF_OK);

        path = sf_asprintf("%s/order-to-archive-7-ev1.json", f->dir);
        text = slurp(path);
        assert_non_null(text);
        assert_string_equal(text, "{\"orderId\":7,\"lines\":[]}\n");
        free(text);
        free(path);
        path = sf_asprintf("%s/order-to-archive-8-ev2.json", f->dir);
        text = slurp(path);
        assert_non_null(text);
        assert_string_equal(text, "{\"orderId\":8,\"note\":\"\xc3\xa9\"}\n");
        free(text);
        free(path);
        /* no temporary file left behind */
        assert_int_equal(count_entries(f->dir), 2);

        /* the same name again replaces the document */
        assert_int_equal(send_doc(f, "order-to-archive",
                                  "order-to-archive-7-ev1.json",
                                  "{\"orderId\":7,\"v\":2}", &d[0]),
                         0);
        assert_int_equal(ops()->poll(f->conn, 0), 1);
        assert_int_equal(d[0].res.status, SF_OK);
        path = sf_asprintf("%s/order-to-archive-7-ev1.json", f->dir);
        text = slurp(path);
        assert_string_equal(text, "{\"orderId\":7,\"v\":2}\n");
        free(text);
        free(path);
        assert_int_equal(count_entries(f->dir), 2);
        fixture_free(f);
}

/* Each line of the file at PATH parses as JSON and the lines, in order,
 * are WANT (compact JSON texts, NULL-terminated). */
static void check_lines(const char *path, const char *const *want)
{
        char *text = slurp(path), *line, *save = NULL;
        size_t i = 0;

        assert_non_null(text);
        assert_true(text[0] == '\0' || text[strlen(text) - 1] == '\n');
        for (line = strtok_r(text, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save), i++) {
                cJSON *v = cJSON_Parse(line);
                char *again;

                if (!v)
                        fail_msg("line %zu of %s does not parse: %.60s", i + 1,
                                 path, line);
                again = cJSON_PrintUnformatted(v);
                assert_non_null(want[i]);
                assert_string_equal(again, want[i]);
                cJSON_free(again);
                cJSON_Delete(v);
        }
        assert_null(want[i]);
        free(text);
}

/* A write that fails half way (here EFBIG: the file size limit, as a full
 * disk would) leaves no part of its line: the next record's line follows
 * the last whole one, and every line parses. */
static void test_jsonl_failed_write_leaves_whole_lines(void **state)
{
        fixture_t *f = fixture_new(SF_FILE_JSONL);
        done_rec_t d[3] = {{0}};
        struct rlimit old, lim;
        char *big = malloc(2001), *doc, *path;
        void (*old_xfsz)(int);
        const char *want[] = {"{\"id\":1}", "{\"id\":3}", NULL};
        const char *first[] = {"{\"id\":1}", NULL};

        (void)state;
        memset(big, 'x', 2000);
        big[2000] = '\0';
        doc = sf_asprintf("{\"id\":2,\"pad\":\"%s\"}", big);
        assert_int_equal(
            send_doc(f, "order-to-archive", NULL, "{\"id\":1}", &d[0]), 0);
        /* EFBIG, not SIGXFSZ, past 1000 bytes: the second line is cut
         * there by the kernel */
        old_xfsz = signal(SIGXFSZ, SIG_IGN);
        assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
        lim = old;
        lim.rlim_cur = 1000;
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
        assert_int_equal(send_doc(f, "order-to-archive", NULL, doc, &d[1]), 0);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
        signal(SIGXFSZ, old_xfsz);
        /* cut back at once, not only by the next append */
        path = sf_asprintf("%s/order-to-archive.jsonl", f->dir);
        check_lines(path, first);
        assert_int_equal(
            send_doc(f, "order-to-archive", NULL, "{\"id\":3}", &d[2]), 0);
        assert_int_equal(ops()->poll(f->conn, 0), 3);
        assert_int_equal(d[0].res.status, SF_OK);
        assert_int_equal(d[1].res.status, SF_RETRY);
        {
                char *e = sf_asprintf("write %s: %s", path, strerror(EFBIG));

                assert_string_equal(d[1].res.error, e);
                free(e);
        }
        assert_int_equal(d[2].res.status, SF_OK);
        check_lines(path, want);
        free(path);
        free(doc);
        free(big);
        fixture_free(f);
}

/* A last line cut off by a crash before this connector ran is cut off by
 * the next append, not continued by it. */
static void test_jsonl_cut_line_is_dropped(void **state)
{
        fixture_t *f = fixture_new(SF_FILE_JSONL);
        const char *want[] = {"{\"id\":1}", "{\"id\":3}", NULL};
        done_rec_t d = {0};
        char *path = sf_asprintf("%s/order-to-archive.jsonl", f->dir);
        FILE *fp = fopen(path, "w");

        (void)state;
        assert_non_null(fp);
        fputs("{\"id\":1}\n{\"id\":2,\"na", fp);
        fclose(fp);
        assert_int_equal(
            send_doc(f, "order-to-archive", NULL, "{\"id\":3}", &d), 0);
        assert_int_equal(ops()->poll(f->conn, 0), 1);
        assert_int_equal(d.res.status, SF_OK);
        check_lines(path, want);
        free(path);
        fixture_free(f);
}

/* A symbolic link placed where the connector's file would be is refused,
 * and what it points to stays untouched; so is a FIFO. */
static void test_jsonl_symlink_refused(void **state)
{
        fixture_t *f = fixture_new(SF_FILE_JSONL);
        char *victim = sf_asprintf("%s/victim", f->root);
        char *path = sf_asprintf("%s/order-to-archive.jsonl", f->dir);
        char *fifo = sf_asprintf("%s/fifo.jsonl", f->dir);
        char *want;
        done_rec_t d = {0};
        FILE *fp = fopen(victim, "w");
        char *text;

        (void)state;
        assert_non_null(fp);
        fputs("secret\n", fp);
        fclose(fp);
        assert_int_equal(symlink(victim, path), 0);
        assert_int_equal(
            send_doc(f, "order-to-archive", NULL, "{\"id\":1}", &d), 0);
        assert_int_equal(ops()->poll(f->conn, 0), 1);
        assert_int_not_equal(d.res.status, SF_OK);
        want = sf_asprintf("%s is a symbolic link: refused, the file "
                           "connector writes only files of its own in %s",
                           path, f->dir);
        assert_string_equal(d.res.error, want);
        free(want);
        text = slurp(victim);
        assert_string_equal(text, "secret\n");
        free(text);

        assert_int_equal(mkfifo(fifo, 0644), 0);
        memset(&d, 0, sizeof(d));
        assert_int_equal(send_doc(f, "fifo", NULL, "{\"id\":1}", &d), 0);
        assert_int_equal(ops()->poll(f->conn, 0), 1);
        assert_int_not_equal(d.res.status, SF_OK);
        assert_non_null(strstr(d.res.error, fifo));
        free(fifo);
        free(path);
        free(victim);
        fixture_free(f);
}

/* A json file name longer than the file system takes is shortened to one
 * that can be written, the same for the same name, different for another. */
static void test_json_long_name_bounded(void **state)
{
        fixture_t *f = fixture_new(SF_FILE_JSON);
        char name[401], other[401];
        done_rec_t d[3] = {{0}};
        struct dirent *e;
        DIR *dir;
        int n = 0;

        (void)state;
        memset(name, 'k', 395);
        memcpy(name + 395, ".json", 6);
        memcpy(other, name, sizeof(name));
        other[0] = 'j';
        assert_int_equal(send_doc(f, "a", name, "{\"v\":1}", &d[0]), 0);
        assert_int_equal(send_doc(f, "a", name, "{\"v\":2}", &d[1]), 0);
        assert_int_equal(send_doc(f, "a", other, "{\"v\":3}", &d[2]), 0);
        assert_int_equal(ops()->poll(f->conn, 0), 3);
        for (int i = 0; i < 3; i++) {
                assert_string_equal(d[i].res.error, "");
                assert_int_equal(d[i].res.status, SF_OK);
        }
        dir = opendir(f->dir);
        assert_non_null(dir);
        while ((e = readdir(dir))) {
                size_t len = strlen(e->d_name);

                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                        continue;
                n++;
                assert_true(len <= NAME_MAX - 16);
                assert_int_equal(strncmp(e->d_name + 1, name + 1, 100), 0);
                assert_string_equal(e->d_name + len - 5, ".json");
        }
        closedir(dir);
        assert_int_equal(n, 2);
        fixture_free(f);
}

static void test_json_bad_names_fatal(void **state)
{
        static const char *const bad[] = {"../escape.json", "a/b.json",
                                          ".hidden.json", "", NULL};
        fixture_t *f = fixture_new(SF_FILE_JSON);
        done_rec_t d;
        char want[256];

        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
                memset(&d, 0, sizeof(d));
                assert_int_equal(
                    send_doc(f, "order-to-archive", bad[i], "{\"a\":1}", &d),
                    0);
                assert_int_equal(d.calls, 0);
                assert_int_equal(ops()->poll(f->conn, 0), 1);
                assert_int_equal(d.calls, 1);
                assert_int_equal(d.res.status, SF_FATAL);
                snprintf(want, sizeof(want),
                         "connector archive: \"%s\" is not a plain file name",
                         bad[i] ? bad[i] : "");
                assert_string_equal(d.res.error, want);
        }
        assert_int_equal(count_entries(f->dir), 0);
        fixture_free(f);
}

static void test_unserializable_fatal(void **state)
{
        fixture_t *f = fixture_new(SF_FILE_JSONL);
        cJSON *doc = cJSON_CreateObject();
        sf_request_t req = {.action = "a", .body = doc};
        done_rec_t d = {0}, n = {0};

        (void)state;
        doc->type = cJSON_Invalid; /* cJSON refuses to print it */
        assert_int_equal(ops()->send(f->conn, &req, on_done, &d, NULL, 0), 0);
        req.body = NULL;
        assert_int_equal(ops()->send(f->conn, &req, on_done, &n, NULL, 0), 0);
        assert_int_equal(ops()->poll(f->conn, 0), 2);
        assert_int_equal(d.calls, 1);
        assert_int_equal(d.res.status, SF_FATAL);
        assert_string_equal(
            d.res.error,
            "connector archive: the document cannot be serialized as JSON");
        assert_int_equal(n.res.status, SF_FATAL);
        assert_string_equal(n.res.error, "connector archive: no document");
        assert_int_equal(count_entries(f->dir), 0);
        cJSON_Delete(doc);
        fixture_free(f);
}

/* Root ignores directory permissions through CAP_DAC_OVERRIDE. Clears the
 * DAC capabilities from this thread's effective set (DROP) or puts them
 * back; the connector writes on the calling thread. */
static void dac_caps(int drop)
{
        struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
        struct __user_cap_data_struct data[2];
        uint32_t bits = (1u << CAP_DAC_OVERRIDE) | (1u << CAP_DAC_READ_SEARCH) |
                        (1u << CAP_FOWNER);

        if (geteuid() != 0)
                return;
        assert_int_equal(syscall(SYS_capget, &hdr, data), 0);
        if (drop)
                data[0].effective &= ~bits;
        else
                data[0].effective |= bits & data[0].permitted;
        assert_int_equal(syscall(SYS_capset, &hdr, data), 0);
}

static void test_unwritable_dir_retry(void **state)
{
        fixture_t *f = fixture_new(SF_FILE_JSONL);
        done_rec_t d = {0}, j = {0};
        sf_connector_cfg_t jcfg;
        sf_conn_t *jconn;
        sf_request_t req;
        cJSON *doc = cJSON_Parse("{\"id\":1}");
        char *probe, *want;
        int fd;

        (void)state;
        assert_int_equal(chmod(f->dir, 0555), 0);
        dac_caps(1);
        probe = sf_asprintf("%s/probe", f->dir);
        fd = open(probe, O_WRONLY | O_CREAT, 0644);
        if (fd >= 0) {
                close(fd);
                unlink(probe);
                free(probe);
                dac_caps(0);
                cJSON_Delete(doc);
                fixture_free(f);
                skip(); /* cannot make a directory unwritable here */
        }
        free(probe);

        assert_int_equal(send_doc(f, "orders", NULL, "{\"id\":1}", &d), 0);
        jcfg = f->cfg;
        jcfg.format = SF_FILE_JSON;
        jconn = ops()->open(&jcfg, NULL, NULL, NULL, 0);
        assert_non_null(jconn);
        req =
            (sf_request_t){.action = "orders", .path = "o-1.json", .body = doc};
        assert_int_equal(ops()->send(jconn, &req, on_done, &j, NULL, 0), 0);
        dac_caps(0);

        assert_int_equal(ops()->poll(f->conn, 0), 1);
        assert_int_equal(d.calls, 1);
        assert_int_equal(d.res.status, SF_RETRY);
        want =
            sf_asprintf("open %s/orders.jsonl: %s", f->dir, strerror(EACCES));
        assert_string_equal(d.res.error, want);
        free(want);

        assert_int_equal(ops()->poll(jconn, 0), 1);
        assert_int_equal(j.calls, 1);
        assert_int_equal(j.res.status, SF_RETRY);
        want = sf_asprintf("create a temporary file in %s: %s", f->dir,
                           strerror(EACCES));
        assert_string_equal(j.res.error, want);
        free(want);
        ops()->close(jconn);

        /* writable again: the same document now goes through */
        assert_int_equal(chmod(f->dir, 0755), 0);
        assert_int_equal(send_doc(f, "orders", NULL, "{\"id\":1}", &d), 0);
        assert_int_equal(ops()->poll(f->conn, 0), 1);
        assert_int_equal(d.calls, 2);
        assert_int_equal(d.res.status, SF_OK);
        cJSON_Delete(doc);
        fixture_free(f);
}

static void test_close_abandons_pending(void **state)
{
        fixture_t *f = fixture_new(SF_FILE_JSONL);
        done_rec_t d = {0};

        (void)state;
        assert_int_equal(send_doc(f, "orders", NULL, "{\"id\":1}", &d), 0);
        assert_int_equal(ops()->pending(f->conn), 1);
        ops()->close(f->conn);
        f->conn = NULL;
        assert_int_equal(d.calls, 0);
        fixture_free(f);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_table_lists_file),
            cmocka_unit_test(test_jsonl_appends_lines),
            cmocka_unit_test(test_json_file_per_document),
            cmocka_unit_test(test_json_bad_names_fatal),
            cmocka_unit_test(test_jsonl_failed_write_leaves_whole_lines),
            cmocka_unit_test(test_jsonl_cut_line_is_dropped),
            cmocka_unit_test(test_jsonl_symlink_refused),
            cmocka_unit_test(test_json_long_name_bounded),
            cmocka_unit_test(test_unserializable_fatal),
            cmocka_unit_test(test_unwritable_dir_retry),
            cmocka_unit_test(test_close_abandons_pending),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
