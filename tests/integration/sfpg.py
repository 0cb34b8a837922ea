"""A real PostgreSQL 15 server for syncfleet's integration tests (standard
library only).

    pg = sfpg.Postgres()            # initdb into a temporary directory, start
    pg.createdb("app")
    pg.sql("CREATE TABLE t(id int primary key)", db="app")
    rows = pg.query("SELECT id FROM t", db="app")   # [["1"], ["2"]]
    pg.restart()
    pg.stop()                       # stops and removes the directory

The server listens on a free loopback port and on a unix socket in its
directory, with wal_level=logical and room for replication slots and WAL
senders, fsync off (tests do not survive power loss, and fsync would make
them slow; commits stay synchronous, so WAL reaches the WAL senders at
once). initdb and postgres refuse to run as root: when
the test runs as root (CI), they run as the `postgres` user through
`runuser -u postgres --`, which owns the directory. psql connects over TCP
as the database user postgres (trust authentication), so it runs as whoever
runs the test.

The binaries come from /usr/lib/postgresql/15/bin (Debian's postgresql-15),
or from $SF_PG_BIN. Also here: lsn() turns "X/Y" into an integer.

For syncfleet's tests: PgTestCase (one server per test class, a database,
a broker and `syncfleet producer` per test), pipeline_yaml(), SyncLog (a
kcat reading the sync-log in the background, so nothing is lost to the
embedded broker's retention), end_offsets(), and build_origin_writer(),
which compiles a small program that writes through sf_pg_origin_setup.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import sftest

PG_BIN = os.environ.get("SF_PG_BIN", "/usr/lib/postgresql/15/bin")

SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "wal_level": "logical",
    "max_replication_slots": "16",
    "max_wal_senders": "16",
    "max_connections": "100",
    "fsync": "off",
    "full_page_writes": "off",
    "max_wal_size": "'2GB'",
    "checkpoint_timeout": "'30min'",
    "wal_sender_timeout": "'60s'",
    "log_min_messages": "warning",
    "log_line_prefix": "'%m [%p] '",
}


def lsn(text):
    """An LSN "X/Y" as an integer (None stays None)."""
    if text is None or text == "":
        return None
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def lsn_text(value):
    return "%X/%X" % (value >> 32, value & 0xFFFFFFFF)


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def available():
    """Why PostgreSQL cannot be started here, or None when it can."""
    for prog in ("initdb", "pg_ctl", "postgres"):
        if not os.access(os.path.join(PG_BIN, prog), os.X_OK):
            return "%s not found in %s (install postgresql-15)" % (prog, PG_BIN)
    if shutil.which("psql") is None and not os.access(os.path.join(PG_BIN, "psql"), os.X_OK):
        return "psql not found"
    if os.geteuid() == 0:
        try:
            import pwd
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to run the server as"
        if shutil.which("runuser") is None:
            return "running as root and runuser is missing"
    return None


class Postgres:
    """A PostgreSQL server in a temporary directory (see the module text).

    settings: extra postgresql.conf settings {name: value as SQL text}."""

    def __init__(self, settings=None, directory=None):
        why = available()
        if why:
            raise AssertionError("cannot start PostgreSQL: " + why)
        self._own_dir = directory is None
        self.dir = directory or tempfile.mkdtemp(prefix="sfpg-")
        self.data = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "postgres.log")
        self.as_root = os.geteuid() == 0
        self.port = None
        if self.as_root:
            os.chmod(self.dir, 0o755)
            shutil.chown(self.dir, "postgres", "postgres")
        self._run([os.path.join(PG_BIN, "initdb"), "-D", self.data, "-U", "postgres",
                   "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"])
        conf = dict(SETTINGS)
        conf["unix_socket_directories"] = "'%s'" % self.dir
        conf.update(settings or {})
        with open(os.path.join(self.data, "postgresql.conf"), "a", encoding="utf-8") as f:
            for k, v in conf.items():
                f.write("%s = %s\n" % (k, v))
        self.start()

    # --- running the server's programs -----------------------------------

    def _argv(self, argv):
        if self.as_root:
            return ["runuser", "-u", "postgres", "--"] + argv
        return argv

    def _run(self, argv, timeout=120):
        res = subprocess.run(self._argv(argv), capture_output=True, timeout=timeout,
                             cwd=self.dir)
        if res.returncode != 0:
            raise AssertionError("%s failed (%d):\n%s%s\n%s" % (
                " ".join(argv), res.returncode, res.stdout.decode(errors="replace"),
                res.stderr.decode(errors="replace"), self.log_tail()))
        return res.stdout.decode()

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, "r", encoding="utf-8", errors="replace") as f:
                return "---- postgres log (last %d lines) ----\n%s" % (
                    lines, "".join(f.readlines()[-lines:]))
        except OSError:
            return ""

    def start(self):
        """Starts the server (on the same port as before when restarted)."""
        for attempt in range(5):
            port = self.port or _free_port()
            try:
                self._run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-l",
                           self.log_path, "-w", "-t", "60", "-o", "-p %d" % port, "start"])
                self.port = port
                return
            except AssertionError:
                if self.port or attempt == 4:
                    raise
                time.sleep(0.2)  # the free port was taken: try another

    def stop(self, mode="fast", remove=True):
        """Stops the server (mode: smart, fast, immediate). With remove, its
        directory goes too, unless SF_KEEP_TMP is set. Idempotent."""
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            self._run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-w", "-m",
                       mode, "stop"])
        if remove and self._own_dir and os.path.isdir(self.dir):
            if os.environ.get("SF_KEEP_TMP"):
                print("sfpg: kept %s" % self.dir, file=sys.stderr)
            else:
                shutil.rmtree(self.dir, ignore_errors=True)

    def restart(self, mode="fast"):
        self.stop(mode, remove=False)
        self.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop("immediate")

    # --- SQL -----------------------------------------------------------------

    def dsn(self, db="postgres"):
        """A libpq connection string for db over TCP."""
        return "host=127.0.0.1 port=%d user=postgres dbname=%s" % (self.port, db)

    def _psql_argv(self, db):
        psql = os.path.join(PG_BIN, "psql")
        return [psql if os.access(psql, os.X_OK) else "psql", "-X", "-q", "-A", "-t",
                "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port),
                "-U", "postgres", "-d", db, "-F", "\x1f", "-R", "\x1e"]

    def sql(self, text, db="postgres", timeout=300):
        """Runs SQL (one or more statements; psql -c runs them as one
        transaction unless they say otherwise); returns psql's output."""
        res = subprocess.run(self._psql_argv(db) + ["-c", text], capture_output=True,
                             timeout=timeout)
        if res.returncode != 0:
            raise AssertionError("psql failed (%d) on %r:\n%s" % (
                res.returncode, text[:300], res.stderr.decode(errors="replace")))
        return res.stdout.decode()

    def script(self, text, db="postgres", timeout=300):
        """Runs a script through psql's stdin (statements in autocommit unless
        the script says BEGIN)."""
        res = subprocess.run(self._psql_argv(db), input=text.encode(), capture_output=True,
                             timeout=timeout)
        if res.returncode != 0:
            raise AssertionError("psql failed (%d) on the script:\n%s" % (
                res.returncode, res.stderr.decode(errors="replace")))
        return res.stdout.decode()

    def query(self, text, db="postgres"):
        """Rows of a query as lists of strings (NULL as None is not told
        apart from the empty string: psql prints both as nothing)."""
        out = self.sql(text, db)
        if out.endswith("\n"):
            out = out[:-1]
        return [rec.split("\x1f") for rec in out.split("\x1e") if rec != ""]

    def value(self, text, db="postgres"):
        rows = self.query(text, db)
        return rows[0][0] if rows else None

    def psql_proc(self, db="postgres"):
        """A psql process reading statements from its stdin (for a session
        that stays open, e.g. a transaction in progress): write to
        proc.stdin, flush; close stdin to end it."""
        return subprocess.Popen(self._psql_argv(db), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def createdb(self, name):
        self.sql('CREATE DATABASE "%s"' % name)

    def wal_lsn(self):
        """The WAL flush position: past every commit so far (commits are
        synchronous), and as far as a WAL sender can stream. The insert
        position may be ahead by records nothing flushes while the server
        is idle."""
        return lsn(self.value("SELECT pg_current_wal_flush_lsn()"))

    def slot(self, name="syncfleet"):
        """The slot's row of pg_replication_slots as a dict (None when absent):
        confirmed_flush_lsn and restart_lsn as integers, active as bool."""
        rows = self.query("SELECT slot_name, plugin, active, restart_lsn, "
                          "confirmed_flush_lsn FROM pg_replication_slots "
                          "WHERE slot_name = '%s'" % name)
        if not rows:
            return None
        r = rows[0]
        return {"slot_name": r[0], "plugin": r[1], "active": r[2] == "t",
                "restart_lsn": lsn(r[3]), "confirmed_flush_lsn": lsn(r[4])}


# --- syncfleet against this server -------------------------------------------

def pipeline_yaml(dsn, tables, slot="syncfleet", publication="syncfleet",
                  snapshot="never", prefix="itest", partitions=3, extra_tables=None,
                  kafka_config=None, ack="delivered"):
    """A pipeline capturing from dsn. ack: source.ack ("delivered" by
    default: these pipelines test the producer on its own, with a test
    reading the sync-log instead of a router; None leaves it out). tables: {name: events} where events
    is a list like ["insert", "update", "delete"]; each gets a message with
    a file target so that exactly those events are captured. extra_tables:
    {name: key list} declared but not subscribed (not captured). Every
    table's key is [id] unless given as (events, key). kafka_config: the
    kafka.config entries."""
    conf = ""
    if kafka_config:
        conf = ", config: { %s }" % ", ".join("%s: \"%s\"" % kv for kv in kafka_config.items())
    lines = ["version: 1", "name: pgtest",
             "kafka: { brokers: embedded, topic_prefix: %s, partitions: %d%s }" % (
                 prefix, partitions, conf),
             "source:", "  type: postgres", "  dsn: \"%s\"" % dsn,
             "  slot: %s" % slot, "  publication: %s" % publication,
             "  snapshot: %s" % snapshot]
    if ack:
        lines.append("  ack: %s" % ack)
    lines.append("tables:")
    specs = {}
    for name, spec in tables.items():
        events, key = (spec if isinstance(spec, tuple) else (spec, ["id"]))
        specs[name] = events
        lines.append("  %s: { key: [%s] }" % (name, ", ".join(key)))
    for name, key in (extra_tables or {}).items():
        lines.append("  %s: { key: [%s] }" % (name, ", ".join(key)))
    lines += ["connectors:", "  out: { type: file, dir: ./out, format: jsonl }",
              "messages:"]
    for name, events in specs.items():
        lines += ["  %s-out:" % name,
                  "    trigger: { table: %s, events: [%s] }" % (name, ", ".join(events)),
                  "    target: { connector: out }",
                  "    mapping: { id: \"{{id}}\" }"]
    return "\n".join(lines) + "\n"


def end_offsets(bootstrap, topic, partitions, timeout=20):
    """{partition: end offset} of topic right now (kcat -Q)."""
    argv = ["kcat", "-Q", "-J", "-b", bootstrap]
    for p in range(partitions):
        argv += ["-t", "%s:%d:-1" % (topic, p)]
    res = subprocess.run(argv, capture_output=True, timeout=timeout)
    if res.returncode != 0:
        raise AssertionError("kcat -Q failed: %s" % res.stderr.decode(errors="replace"))
    meta = json.loads(res.stdout)[topic]
    return {int(p): v["offset"] for p, v in meta.items() if p.isdigit()}


class SyncLog:
    """Reads a topic from the beginning with a kcat running in the
    background, so that records are kept even when the embedded broker
    (which retains about 5 MiB per partition) drops old ones.

    records(): every record read so far, each a dict with partition,
    offset, key and value (parsed JSON), event_id (the header) and headers
    (every header, by name)."""

    def __init__(self, bootstrap, topic, directory, name="synclog"):
        self.proc = sftest.Proc(
            ["kcat", "-C", "-b", bootstrap, "-t", topic, "-J", "-u", "-q", "-o", "beginning",
             "-X", "fetch.wait.max.ms=20"], name, directory)
        self.path = self.proc.out_path
        self._cache = []
        self._pos = 0

    def records(self):
        with open(self.proc.out_path, "r", encoding="utf-8") as f:
            f.seek(self._pos)
            while True:
                line = f.readline()
                if not line.endswith("\n"):
                    break  # not complete yet: read it next time
                self._pos += len(line.encode("utf-8"))
                env = json.loads(line)
                headers = env.get("headers") or []
                hdr = dict(zip(headers[0::2], headers[1::2]))
                self._cache.append({
                    "partition": env["partition"], "offset": env["offset"],
                    "key": json.loads(env["key"]) if env.get("key") else None,
                    "value": json.loads(env["payload"]) if env.get("payload") else None,
                    "event_id": hdr.get("syncfleet-event-id"),
                    "headers": hdr})
        return self._cache

    def wait(self, predicate, timeout=60, what="records on the sync-log"):
        """Waits until predicate(records) is true; returns the records."""
        def check():
            self.proc.assert_running()
            recs = self.records()
            return recs if predicate(recs) else None
        try:
            return sftest.wait_for(check, timeout, what, interval=0.05)
        except AssertionError as e:
            raise AssertionError("%s (%d records read)" % (e, len(self.records()))) from None

    def wait_count(self, n, timeout=60, where=None, what=None):
        where = where or (lambda r: True)
        return self.wait(lambda recs: sum(1 for r in recs if where(r)) >= n, timeout,
                         what or "%d records on the sync-log" % n)

    def stop(self):
        self.proc.kill()


def ordered(records):
    """Records in source order: by (commit lsn, seq); snapshot rows (op r)
    first, in the order they were read."""
    def k(r):
        v = r["value"]
        return (0 if v["op"] == "r" else 1, lsn(v["source"]["lsn"]), v["source"]["seq"])
    return sorted(records, key=k)


def broker_partitions(n):
    """Gives a test's broker N partitions instead of 3. The embedded broker
    keeps about 5 MiB per partition and drops older records, so a test that
    writes tens of MiB to the sync-log spreads them out: its background
    reader may then fall behind without records disappearing under it."""
    def mark(fn):
        fn.broker_partitions = n
        return fn
    return mark


class PgTestCase(sftest.TestCase):
    """One PostgreSQL server per test class; each test gets a database of its
    own (self.db, self.dsn), a broker (self.brk) and helpers to run the
    producer and read the sync-log."""

    pg = None
    _db_counter = 0

    @classmethod
    def setUpClass(cls):
        cls.pg = Postgres()

    @classmethod
    def tearDownClass(cls):
        if cls.pg:
            cls.pg.stop("immediate")

    def setUp(self):
        PgTestCase._db_counter += 1
        self.db = "t%d_%s" % (PgTestCase._db_counter, self._testMethodName[5:30].lower())
        self.pg.createdb(self.db)
        self.dsn = self.pg.dsn(self.db)
        self.partitions = getattr(getattr(self, self._testMethodName),
                                  "broker_partitions", 3)
        self.brk = self.broker(partitions=self.partitions)
        self.addCleanup(self._drop_slots)

    def _drop_slots(self):
        # a slot keeps WAL and a database busy: drop this test's slots
        try:
            self.pg.sql("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                        "WHERE database = '%s' AND NOT active" % self.db)
        except AssertionError:
            pass

    def sql(self, text):
        return self.pg.sql(text, db=self.db)

    def query(self, text):
        return self.pg.query(text, db=self.db)

    def write_pipeline(self, tables, name="pipeline.yaml", **kw):
        return self.tmp.write(name, pipeline_yaml(self.dsn, tables, **kw))

    def producer(self, pipeline, name="producer", wait_streaming=True, env=None):
        """Starts `$SYNCFLEET producer -c pipeline --brokers B` and waits
        until it streams the slot."""
        proc = self.start([sftest.env_path("SYNCFLEET"), "producer", "-c", pipeline,
                           "--brokers", self.brk.bootstrap], name, env=env,
                          cwd=self.tmp.path)
        if wait_streaming:
            self.wait_log(proc, r"streaming slot", timeout=60)
        return proc

    def wait_log(self, proc, pattern, timeout=30, count=1, interval=0.05):
        regex = re.compile(pattern)

        def found():
            proc.assert_running()
            return len(regex.findall(proc.stderr())) >= count
        try:
            sftest.wait_for(found, timeout, "%s to log %r" % (proc.name, pattern),
                            interval=interval)
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, proc.tail())) from None

    def sync_log(self, name="synclog"):
        log = SyncLog(self.brk.bootstrap, self.brk.topic("sync-log"), self.tmp.path, name)
        self.addCleanup(log.stop)
        return log

    def sysid(self):
        return self.pg.value("SELECT system_identifier FROM pg_control_system()")

    def wait_flushed(self, slot="syncfleet", lsn_at=None, timeout=30):
        """Waits until the slot's confirmed_flush_lsn reaches lsn_at (default:
        the current WAL insert position)."""
        target = lsn_at if lsn_at is not None else self.pg.wal_lsn()

        def done():
            s = self.pg.slot(slot)
            return s and s["confirmed_flush_lsn"] is not None and \
                s["confirmed_flush_lsn"] >= target
        sftest.wait_for(done, timeout, "slot %s to confirm %s (at %s)" % (
            slot, lsn_text(target), self.pg.slot(slot)), interval=0.05)
        return target


ORIGIN_WRITER_C = r"""
/* Test helper: a database session that writes on syncfleet's behalf. It
 * sets up syncfleet's replication origin with sf_pg_origin_setup, prints
 * "origin NAME", then runs each line of stdin as one SQL statement,
 * printing "ok" or "error: ..." after each. */
#include <stdio.h>
#include <string.h>
#include <libpq-fe.h>
#include "capture_postgres.h"

int main(int argc, char **argv)
{
        char name[64], err[512], line[8192];
        PGconn *conn;

        if (argc != 2)
                return 2;
        conn = PQconnectdb(argv[1]);
        if (PQstatus(conn) != CONNECTION_OK) {
                printf("error: %s", PQerrorMessage(conn));
                return 1;
        }
        if (sf_pg_origin_setup(conn, name, sizeof(name), err, sizeof(err))) {
                printf("error: %s\n", err);
                return 1;
        }
        printf("origin %s\n", name);
        fflush(stdout);
        while (fgets(line, sizeof(line), stdin)) {
                PGresult *res = PQexec(conn, line);
                ExecStatusType st = PQresultStatus(res);

                if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
                        printf("ok\n");
                else
                        printf("error: %s", PQresultErrorMessage(res));
                fflush(stdout);
                PQclear(res);
        }
        PQfinish(conn);
        return 0;
}
"""


def build_origin_writer(directory):
    """Compiles ORIGIN_WRITER_C against the build's libraries (the same
    compiler and sanitizer flags) and returns the executable's path."""
    src = sftest.env_path("SF_SOURCE_DIR")
    build = sftest.env_path("SF_BUILD_DIR")
    cache = {}
    with open(os.path.join(build, "CMakeCache.txt"), encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^([A-Za-z_]+):[A-Z]+=(.*)$", line.rstrip("\n"))
            if m:
                cache[m.group(1)] = m.group(2)
    cc = cache.get("CMAKE_C_COMPILER") or "cc"
    flags = ["-std=c11", "-D_GNU_SOURCE", "-g"]
    if cache.get("SANITIZE", "OFF").upper() in ("ON", "1", "TRUE", "YES"):
        flags += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
    pkgs = ["rdkafka", "libcurl", "libcjson", "yaml-0.1", "sqlite3", "libpq", "libmicrohttpd"]
    res = subprocess.run(["pkg-config", "--cflags", "--libs"] + pkgs, capture_output=True,
                         text=True)
    if res.returncode != 0:
        raise AssertionError("pkg-config failed: %s" % res.stderr)
    c_path = os.path.join(directory, "origin_writer.c")
    exe = os.path.join(directory, "origin_writer")
    with open(c_path, "w", encoding="utf-8") as f:
        f.write(ORIGIN_WRITER_C)
    argv = [cc] + flags + ["-I", os.path.join(src, "producers"), "-I", os.path.join(src, "common"),
                           c_path, "-o", exe,
                           os.path.join(build, "producers", "libsyncfleet_producers.a"),
                           os.path.join(build, "common", "libsyncfleet_common.a")] + \
        res.stdout.split() + ["-lm", "-lpthread"]
    res = subprocess.run(argv, capture_output=True, text=True)
    if res.returncode != 0:
        raise AssertionError("building the origin writer failed:\n%s\n%s" % (
            " ".join(argv), res.stderr))
    return exe
