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
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

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
        return [rec.split("\x1f") for rec in out.split("\x1e") if rec.strip("\n") != ""]

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
        """The current WAL insert position: past every commit so far."""
        return lsn(self.value("SELECT pg_current_wal_insert_lsn()"))

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
