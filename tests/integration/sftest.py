"""Shared support for syncfleet's integration tests (standard library only).

Processes started here run in their own process group with stdout and stderr
in files; they are killed when the test ends and, when the test failed, the
last lines of their logs are printed. Everything lives in a temporary
directory removed afterwards (kept, and its path printed, when SF_KEEP_TMP is
set).

    class T(sftest.TestCase):
        def test_x(self):
            rcv = self.receiver([{"path": "/orders", "times": 1, "status": 503}])
            broker = self.broker(partitions=3)
            ...

The classes also work outside sftest.TestCase, as context managers.
Also here: http_request() (urllib without exceptions for 4xx/5xx),
wait_for(), free_port(), and kcat_produce/kcat_consume/kcat_topics for
reading and writing topics through kcat. At the end, the pieces the
end-to-end tests share: a pipeline file (pipeline_yaml), the syncfleet
components around one broker (Pipeline), a SQLite writer that keeps the
expected state (ChangeWriter) and the checks of what the receiver got
(customer_requests, final_state_problems, lost_changes, order_problems).
"""

import atexit
import collections
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import sqlite3
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

TAIL_LINES = 50

_live = []  # every Proc still running, killed at exit whatever happens


def free_port():
    """A TCP port free on 127.0.0.1 right now (another process may still take
    it before the caller binds it; prefer a program's own port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=10.0, what="the condition", interval=0.05):
    """Calls predicate until it returns something true and returns that;
    raises AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def env_path(name):
    """The path in environment variable `name`, which ctest sets."""
    value = os.environ.get(name)
    if not value:
        raise AssertionError("%s is not set (run the test through ctest)" % name)
    return value


class TempDir:
    """A temporary directory, removed by cleanup() unless SF_KEEP_TMP is set."""

    def __init__(self, prefix="sftest-"):
        self.path = tempfile.mkdtemp(prefix=prefix)

    def join(self, *parts):
        return os.path.join(self.path, *parts)

    def write(self, name, text):
        """Writes text to a file in the directory and returns its path."""
        path = self.join(name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def cleanup(self):
        if os.environ.get("SF_KEEP_TMP"):
            print("sftest: kept %s" % self.path, file=sys.stderr)
        else:
            shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()


class Proc:
    """A command running in its own process group, its stdout and stderr in
    <dir>/<name>.out and <dir>/<name>.err."""

    def __init__(self, argv, name, directory, env=None, cwd=None):
        self.argv = [str(a) for a in argv]
        self.name = name
        self.out_path = os.path.join(directory, name + ".out")
        self.err_path = os.path.join(directory, name + ".err")
        full_env = dict(os.environ)
        full_env.update(env or {})
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.popen = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                env=full_env, cwd=cwd, start_new_session=True)
        _live.append(self)

    @property
    def pid(self):
        return self.popen.pid

    def running(self):
        return self.popen.poll() is None

    def stdout(self):
        return _read(self.out_path)

    def stderr(self):
        return _read(self.err_path)

    def wait_line(self, pattern, timeout=10.0, stream="stdout"):
        """Waits for a whole line of STREAM ("stdout" or "stderr", where
        syncfleet logs) matching the regex and returns the match; fails
        early, with the logs, if the process exits first."""
        regex = re.compile(pattern)
        read = self.stderr if stream == "stderr" else self.stdout

        def find():
            text = read()
            for line in text.splitlines(keepends=True):
                m = regex.search(line)
                if m and line.endswith("\n"):
                    return m
            self.assert_running()
            return None

        try:
            return wait_for(find, timeout, "%s to print a line matching %r" % (
                self.name, pattern))
        except AssertionError as e:
            if self.running():  # else assert_running's message has the logs
                raise AssertionError("%s\n%s" % (e, self.tail())) from None
            raise

    def assert_running(self):
        if not self.running():
            raise AssertionError("%s exited with %s\n%s" % (
                self.name, self.popen.returncode, self.tail()))

    def signal(self, sig):
        if self.running():
            os.killpg(self.popen.pid, sig)

    def terminate(self, timeout=10.0):
        """SIGTERM, wait up to timeout seconds, then SIGKILL the group.
        Returns the exit status (negative: killed by that signal)."""
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("%s did not exit within %.0fs of SIGTERM\n%s" % (
                self.name, timeout, self.tail()))
        self.kill()  # whatever it left behind in its group
        return self.popen.returncode

    def stop(self, timeout=10.0):
        """Terminates and asserts a clean exit (status 0)."""
        rc = self.terminate(timeout)
        if rc != 0:
            raise AssertionError("%s exited with %s after SIGTERM\n%s" % (
                self.name, rc, self.tail()))

    def kill(self):
        """SIGKILLs the whole process group, whatever state it is in."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.popen.wait()
        self._forget()

    def tail(self, lines=TAIL_LINES):
        parts = []
        for label, path in (("stdout", self.out_path), ("stderr", self.err_path)):
            text = _read(path).splitlines()[-lines:]
            parts.append("---- %s %s (last %d lines) ----\n%s" % (
                self.name, label, lines, "\n".join(text)))
        return "\n".join(parts)

    def _forget(self):
        if self in _live:
            _live.remove(self)


def _read(path):
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


@atexit.register
def _kill_leftovers():
    for proc in list(_live):
        proc.kill()


def http_request(url, method="GET", body=None, headers=None, timeout=10.0):
    """One HTTP request that does not raise on 4xx/5xx.
    Returns (status, headers as a dict with lower-case names, body text)."""
    data = body.encode("utf-8") if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, hdrs, payload = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        status, hdrs, payload = e.code, e.headers, e.read()
    return (status, {k.lower(): v for k, v in hdrs.items()},
            payload.decode("utf-8", errors="replace"))


class _Service:
    """A long-running program started for a test: its Proc, in `directory`
    or in a TempDir of its own removed by stop()."""

    def __init__(self, directory):
        self._own_dir = None if directory else TempDir()
        self.dir = directory or self._own_dir.path

    def _start(self, argv, name, ready_pattern):
        """Starts argv and returns the match of its first stdout line
        matching ready_pattern."""
        self.proc = Proc(argv, name, self.dir)
        try:
            return self.proc.wait_line(ready_pattern)
        except AssertionError:
            self.proc.kill()
            self._drop_dir()
            raise

    def stop(self):
        """SIGTERM, asserting a clean exit (status 0). Idempotent."""
        try:
            if self.proc in _live:
                self.proc.stop()
        finally:
            self._drop_dir()

    def _drop_dir(self):
        if self._own_dir:
            self._own_dir.cleanup()
            self._own_dir = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class Receiver(_Service):
    """The sf-receiver binary ($SF_RECEIVER) on a free loopback port.

    rules: the receiver's answer rules (see tests/tools/receiver.c), or None
    for 200 {"ok":true} to everything. port: 0 for a free one, or the port
    of a receiver stopped earlier, to bring a target back where it was."""

    def __init__(self, rules=None, directory=None, name="receiver", binary=None, port=0):
        super().__init__(directory)
        self.log_path = os.path.join(self.dir, name + ".jsonl")
        argv = [binary or env_path("SF_RECEIVER"), "--log", self.log_path,
                "--port", str(port), "--port-file", os.path.join(self.dir, name + ".port")]
        if rules is not None:
            rules_path = os.path.join(self.dir, name + ".rules.json")
            with open(rules_path, "w", encoding="utf-8") as f:
                json.dump(rules, f)
            argv += ["--rules", rules_path]
        m = self._start(argv, name, r"^listening on 127\.0\.0\.1:(\d+)$")
        self.port = int(m.group(1))
        self.url = "http://127.0.0.1:%d" % self.port

    def requests(self, path=None):
        """The logged requests, in arrival order, as dicts; only those whose
        path equals `path` (or starts with it, if it ends in '*')."""
        out = []
        with open(self.log_path, "r", encoding="utf-8") as f:
            for line in f:
                # a line still being written ends the log for now: reading
                # on would take the rest of it, appended since, for a line
                if not line.endswith("\n"):
                    break
                out.append(json.loads(line))
        if path is None:
            return out
        if path.endswith("*"):
            return [r for r in out if r["path"].startswith(path[:-1])]
        return [r for r in out if r["path"] == path]

    def wait_requests(self, count, path=None, timeout=10.0):
        """Waits until at least `count` requests (to `path`) were logged and
        returns them all."""
        def enough():
            got = self.requests(path)
            return got if len(got) >= count else None
        return wait_for(enough, timeout, "%d request(s) to %s on the receiver" % (
            count, path or "any path"))

    def set_rules(self, rules):
        """Replaces the rules at runtime (resets every rule's counts)."""
        status, _, body = http_request(self.url + "/__rules", "PUT", json.dumps(rules))
        if status != 200:
            raise AssertionError("receiver refused the rules: %s %s" % (status, body))


class Broker(_Service):
    """`$SYNCFLEET broker`: the embedded Kafka-protocol broker on loopback,
    with the syncfleet topics created under `prefix`."""

    def __init__(self, partitions=3, prefix="itest", directory=None,
                 name="broker", binary=None, args=()):
        super().__init__(directory)
        self.prefix = prefix
        argv = [binary or env_path("SYNCFLEET"), "broker", "--partitions",
                str(partitions), "--topic-prefix", prefix] + list(args)
        # The bootstrap address, alone on its line: host:port[,host:port...]
        m = self._start(argv, name, r"^\s*([\w.\-]+:\d+(?:,[\w.\-]+:\d+)*)\s*$")
        self.bootstrap = m.group(1)

    def topic(self, suffix):
        """The full topic name: topic("sync-log") -> "<prefix>.sync-log"."""
        return "%s.%s" % (self.prefix, suffix)


# kcat helpers. Records travel through kcat's stdin separated by these two
# control bytes, so keys and values may hold newlines.
_KEY_DELIM = "\x1f"
_MSG_DELIM = "\x1e"


def _text(value):
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def kcat_produce(bootstrap, topic, records, partition=None, timeout=30.0):
    """Produces records in order. Each record is (key, value) or (key, value,
    headers); key None means no key, value None a tombstone, dict/list values
    are sent as compact JSON, headers is a dict or a list of (name, value).
    Raises AssertionError if kcat fails."""
    batches = []  # consecutive records sharing kcat flags go in one run
    for rec in records:
        key, value = rec[0], rec[1]
        headers = rec[2] if len(rec) > 2 else ()
        if isinstance(headers, dict):
            headers = list(headers.items())
        flags = (tuple((str(n), _text(v)) for n, v in headers), value is None)
        if key is not None and value is None and _text(key) == "":
            raise ValueError("kcat cannot send an empty key with a null value")
        text = ("" if value is None else _text(value))
        for part in ((text,) if key is None else (_text(key), text)):
            if _KEY_DELIM in part or _MSG_DELIM in part:
                raise ValueError("record holds a kcat delimiter byte: %r" % part)
        line = text if key is None else _text(key) + _KEY_DELIM + text
        if batches and batches[-1][0] == flags:
            batches[-1][1].append(line)
        else:
            batches.append((flags, [line]))
    for (headers, tombstone), lines in batches:
        argv = ["kcat", "-P", "-b", bootstrap, "-t", topic, "-K", "\\x1f",
                "-D", "\\x1e", "-X", "message.timeout.ms=%d" % (timeout * 1000)]
        if partition is not None:
            argv += ["-p", str(partition)]
        if tombstone:
            argv.append("-Z")
        for name, value in headers:
            argv += ["-H", "%s=%s" % (name, value)]
        data = "".join(line + _MSG_DELIM for line in lines).encode("utf-8")
        try:
            res = subprocess.run(argv, input=data, capture_output=True, timeout=timeout + 5)
        except subprocess.TimeoutExpired:
            raise AssertionError("kcat -P to %s timed out" % topic)
        if res.returncode != 0 or b"delivery failed" in res.stderr.lower():
            raise AssertionError("kcat -P to %s failed (%d): %s" % (
                topic, res.returncode, res.stderr.decode(errors="replace")))


def _kcat_record(envelope):
    headers = envelope.get("headers") or []
    return {
        "topic": envelope["topic"],
        "partition": envelope["partition"],
        "offset": envelope["offset"],
        "ts": envelope.get("ts"),
        "key": envelope.get("key"),
        "value": envelope.get("payload"),
        "headers": dict(zip(headers[0::2], headers[1::2])),
    }


def kcat_consume(bootstrap, topic, count=None, timeout=30.0, partition=None,
                 offset="beginning"):
    """Reads records from `topic` with kcat -C -J, sorted by (partition,
    offset); each is a dict {topic, partition, offset, ts, key, value,
    headers} with key and value as text (None for null) and headers as a
    dict. count=None reads what is there now (kcat -e); count=N waits until
    N records arrived, raising AssertionError after `timeout` seconds."""
    argv = ["kcat", "-C", "-b", bootstrap, "-t", topic, "-J", "-u", "-q", "-o", str(offset)]
    if partition is not None:
        argv += ["-p", str(partition)]
    if count is None:
        argv.append("-e")
    else:
        argv += ["-c", str(count)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()  # -u: what kcat had is all there
        timed_out = True
    records = [_kcat_record(json.loads(line))
               for line in out.decode("utf-8").splitlines() if line.strip()]
    records.sort(key=lambda r: (r["partition"], r["offset"]))
    if timed_out:
        raise AssertionError("timed out after %.1fs waiting for %s records on %s; got %d: %s" % (
            timeout, count, topic, len(records), records[:10]))
    if proc.returncode != 0:
        raise AssertionError("kcat -C on %s failed (%d): %s" % (
            topic, proc.returncode, err.decode(errors="replace")))
    return records


def kcat_topics(bootstrap, timeout=30.0):
    """{topic: partition count} from the cluster's metadata (kcat -L -J)."""
    res = subprocess.run(["kcat", "-L", "-J", "-b", bootstrap], capture_output=True,
                         timeout=timeout)
    if res.returncode != 0:
        raise AssertionError("kcat -L failed (%d): %s" % (
            res.returncode, res.stderr.decode(errors="replace")))
    meta = json.loads(res.stdout)
    return {t["topic"]: len(t["partitions"]) for t in meta["topics"]}


class TestCase(unittest.TestCase):
    """unittest.TestCase that owns what a test starts: self.tmp is a fresh
    TempDir, self.start/receiver/broker start processes that are stopped
    when the test ends, and a failing test prints their logs' last lines."""

    def run(self, result=None):
        result = result if result is not None else self.defaultTestResult()
        self._procs = []
        self._tmp = None
        before = len(result.failures) + len(result.errors)
        try:
            return super().run(result)
        finally:
            if len(result.failures) + len(result.errors) > before:
                for proc in self._procs:
                    print(proc.tail(), file=sys.stderr)
            if self._tmp:
                self._tmp.cleanup()

    @property
    def tmp(self):
        if self._tmp is None:
            self._tmp = TempDir(prefix="sftest-%s-" % self._testMethodName)
        return self._tmp

    def start(self, argv, name, env=None, cwd=None):
        """Starts a Proc. When the test ends its group gets SIGTERM, then
        SIGKILL; any exit status is accepted, but not exiting within 10s of
        SIGTERM fails the test."""
        proc = Proc(argv, name, self.tmp.path, env=env, cwd=cwd)
        self._procs.append(proc)
        self.addCleanup(proc.terminate)
        return proc

    def receiver(self, rules=None, name="receiver", port=0):
        """A Receiver stopped when the test ends; an exit status other than
        0 then (a crash, a sanitizer report) fails the test."""
        rcv = Receiver(rules, directory=self.tmp.path, name=name, port=port)
        self._procs.append(rcv.proc)
        self.addCleanup(rcv.stop)
        return rcv

    def broker(self, partitions=3, prefix="itest", name="broker", args=()):
        """A Broker stopped when the test ends, like receiver()."""
        brk = Broker(partitions, prefix, directory=self.tmp.path, name=name, args=args)
        self._procs.append(brk.proc)
        self.addCleanup(brk.stop)
        return brk

    def pipeline(self, prefix, receiver, partitions=4, **options):
        """A Pipeline around a new broker, its processes started through
        this test; options go to pipeline_yaml."""
        return Pipeline(self, prefix, receiver.url, self.tmp.join("erp.db"),
                        partitions, **options)


# --- syncfleet pipelines ------------------------------------------------
#
# The end-to-end tests run one message, customer-to-webshop, from a SQLite
# table customers(id, name, email, version) to the receiver: PUT
# /customers/<id> with {id, name, email, version}, DELETE on delete.


def pipeline_yaml(prefix, db_path, partitions=4, timeout_ms=3000,
                  max_in_flight=16, max_attempts=8):
    """The pipeline file the end-to-end tests share. The brokers and the
    receiver come from ${SF_BROKERS} and ${RECEIVER_URL}; requests carry
    X-Worker: ${SF_PROCESS}, the name of the process that sent them. The consumer
    session timeout is short because the embedded broker waits up to
    session.timeout.ms - 1s before it admits a new group member, and only
    drops a killed one when its session expires."""
    return """version: 1
name: %(prefix)s
kafka:
  brokers: "${SF_BROKERS}"
  topic_prefix: %(prefix)s
  partitions: %(partitions)d
  config:
    session.timeout.ms: "4000"
    heartbeat.interval.ms: "500"
source:
  type: sqlite
  path: %(db)s
  poll_interval_ms: 20
tables:
  customers:
    key: [id]
connectors:
  webshop:
    type: http
    base_url: "${RECEIVER_URL}"
    headers: { X-Worker: "${SF_PROCESS}" }
    timeout_ms: %(timeout_ms)d
    max_in_flight: %(max_in_flight)d
    retry: { max_attempts: %(max_attempts)d, initial_backoff_ms: 50, max_backoff_ms: 500 }
messages:
  customer-to-webshop:
    trigger:
      table: customers
      events: [insert, update, delete]
    target:
      connector: webshop
      method: PUT
      path: /customers/{{id}}
      on_delete: { method: DELETE }
    mapping:
      id: "{{id}}"
      name: "{{name}}"
      email: "{{email}}"
      version: "{{version}}"
""" % {"prefix": prefix, "db": json.dumps(db_path), "partitions": partitions,
       "timeout_ms": timeout_ms, "max_in_flight": max_in_flight,
       "max_attempts": max_attempts}


class Pipeline:
    """A `syncfleet broker` with the pipeline's topics, the pipeline file,
    and its components started as separate processes through `test` (so
    they are stopped when the test ends): each gets -c FILE, --brokers and
    the environment the file refers to."""

    def __init__(self, test, prefix, receiver_url, db_path, partitions=4, **options):
        self.test = test
        self.prefix = prefix
        self.db_path = db_path
        self.broker = test.broker(partitions, prefix)
        self.bootstrap = self.broker.bootstrap
        self.env = {"SF_BROKERS": self.bootstrap, "RECEIVER_URL": receiver_url}
        self.config = test.tmp.write(prefix + ".yaml", pipeline_yaml(
            prefix, db_path, partitions, **options))

    def topic(self, suffix):
        return "%s.%s" % (self.prefix, suffix)

    def start(self, name, command, *args):
        """`syncfleet COMMAND -c FILE --brokers B ARGS...`, logs named NAME
        (and SF_PROCESS=NAME, sent by workers as X-Worker)."""
        argv = [env_path("SYNCFLEET"), command, "-c", self.config,
                "--brokers", self.bootstrap] + list(args)
        return self.test.start(argv, name, env=dict(self.env, SF_PROCESS=name))

    def wait_published(self, count, timeout=10.0):
        """Waits until PREFIX.sync-log holds `count` records, i.e. the
        producer published the first changes it captured; the failure
        names the producer, so a stall later down the pipeline is not
        blamed on the router or the workers."""
        try:
            return kcat_consume(self.bootstrap, self.topic("sync-log"), count=count,
                                timeout=timeout)
        except AssertionError as e:
            raise AssertionError("the producer did not publish %d captured change(s) to %s "
                                 "within %.0fs: %s" % (count, self.topic("sync-log"),
                                                       timeout, e)) from None

    def producer(self, name="producer"):
        return self.start(name, "producer")

    def router(self, name="router"):
        return self.start(name, "router")

    def worker(self, name="worker", kind="message"):
        return self.start(name, "worker", "--kind", kind)


def stop_cleanly(test, procs, timeout=20.0):
    """SIGTERMs every process at once and asserts each exited 0 in time."""
    for p in procs:
        p.signal(signal.SIGTERM)
    for p in procs:
        try:
            p.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("%s did not exit within %.0fs of SIGTERM\n%s" % (
                p.name, timeout, p.tail()))
        test.assertEqual(p.popen.returncode, 0, "%s exited with %s after SIGTERM\n%s" % (
            p.name, p.popen.returncode, p.tail()))


class ChangeWriter:
    """Changes the customers table the way an application would (WAL, a
    busy timeout, short transactions) and keeps what the pipeline must
    deliver: rows (id -> the committed row, None once deleted) and history
    (id -> [(op, version)] in commit order, op "c", "u" or "d"). An id's
    version grows by one with each of its changes, re-inserts included, and
    a delete carries the version of the row it removed, so arrival order per
    id can be checked. A seeded random.Random makes the changes repeatable."""

    NAMES = ["Ann", "Bob Smith", "Zoë Ünal", 'Quote "q" \\ back', "李 雷"]

    def __init__(self, db_path, seed):
        self.path = db_path
        self.rng = random.Random(seed)
        self.rows = {}
        self.history = collections.defaultdict(list)
        self.versions = collections.Counter()
        self.changes = 0
        self.transactions = 0
        self._thread = None
        self._error = None
        self._stop = threading.Event()
        self._conn = self._open(db_path)

    def _open(self, db_path):
        """The connection _commit and count use (a database of another
        kind overrides _open, _commit, count and close)."""
        conn = sqlite3.connect(db_path, timeout=20, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=20000")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE IF NOT EXISTS customers (id INTEGER PRIMARY KEY, "
                     "name TEXT NOT NULL, email TEXT NOT NULL, version INTEGER NOT NULL)")
        return conn

    def _next_row(self, cid, version):
        return {"id": cid, "name": "%s %d/%d" % (self.rng.choice(self.NAMES), cid, version),
                "email": "c%d.v%d@example.test" % (cid, version), "version": version}

    def transaction(self, ops):
        """Runs [(op, id)] in one transaction (op "c", "u" or "d"; "u" and
        "d" need the row, "c" needs it absent) and records it once
        committed."""
        rows, versions, done, stmts = {}, {}, [], []
        for op, cid in ops:
            present = rows[cid] if cid in rows else self.rows.get(cid)
            version = versions.get(cid, self.versions[cid])
            if op == "d":
                stmts.append((op, cid, None))
                rows[cid] = None
                done.append((cid, "d", present["version"]))
                continue
            version += 1
            row = self._next_row(cid, version)
            if op == "c":
                assert present is None, "insert of present id %d" % cid
            stmts.append((op, cid, row))
            rows[cid] = row
            versions[cid] = version
            done.append((cid, op, version))
        self._commit(stmts)
        self.rows.update(rows)
        for cid, version in versions.items():
            self.versions[cid] = version
        for cid, op, version in done:
            self.history[cid].append((op, version))
        self.changes += len(done)
        self.transactions += 1

    def _commit(self, stmts):
        """Runs [(op, id, row)] in one transaction of the database."""
        cur = self._conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            for op, cid, row in stmts:
                if op == "d":
                    cur.execute("DELETE FROM customers WHERE id = ?", (cid,))
                    continue
                if op == "c":
                    cur.execute("INSERT INTO customers (id, name, email, version) "
                                "VALUES (?, ?, ?, ?)",
                                (cid, row["name"], row["email"], row["version"]))
                else:
                    cur.execute("UPDATE customers SET name = ?, email = ?, version = ? "
                                "WHERE id = ?", (row["name"], row["email"], row["version"],
                                                 cid))
                if cur.rowcount != 1:
                    raise AssertionError("writer: %s of id %d changed %d rows" % (
                        op, cid, cur.rowcount))
            cur.execute("COMMIT")
        except BaseException:
            self._conn.rollback()
            raise

    def insert(self, ids, per_tx=25):
        ids = list(ids)
        for i in range(0, len(ids), per_tx):
            self.transaction([("c", cid) for cid in ids[i:i + per_tx]])

    def random_changes(self, ids, count=None, protected=(), delete_ratio=0.1,
                       per_tx=(1, 8), pause=0.01):
        """Random inserts (of absent ids), updates and deletes (never of a
        protected id) until `count` changes were made or stop() is called."""
        ids, protected, made = list(ids), set(protected), 0
        while not self._stop.is_set() and (count is None or made < count):
            n = self.rng.randint(*per_tx)
            if count is not None:
                n = min(n, count - made)
            ops, state = [], {}
            for _ in range(n):
                cid = self.rng.choice(ids)
                present = state[cid] if cid in state else self.rows.get(cid) is not None
                if not present:
                    ops.append(("c", cid))
                    state[cid] = True
                elif cid not in protected and self.rng.random() < delete_ratio:
                    ops.append(("d", cid))
                    state[cid] = False
                else:
                    ops.append(("u", cid))
            self.transaction(ops)
            made += n
            if pause:
                time.sleep(pause)

    def start(self, *args, **kwargs):
        """random_changes(...) in a thread; join() waits and re-raises."""
        def run():
            try:
                self.random_changes(*args, **kwargs)
            except BaseException as e:  # re-raised by join()
                self._error = e
        self._stop.clear()
        self._thread = threading.Thread(target=run, name="writer", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        return self.join()

    def join(self, timeout=120.0):
        if self._thread:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise AssertionError("the writer did not finish within %.0fs" % timeout)
            self._thread = None
        if self._error:
            raise AssertionError("the writer failed: %r" % (self._error,)) from self._error

    def count(self, sql):
        return self._conn.execute(sql).fetchone()[0]

    def wait_capturing(self, producer, timeout=15.0):
        """Waits until the producer installed its insert, update and delete
        triggers on customers: changes made before are not captured."""
        def installed():
            producer.assert_running()
            return self.count("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' "
                              "AND tbl_name = 'customers'") >= 3
        wait_for(installed, timeout, "%s to install its triggers on customers" % producer.name)

    def close(self):
        self._conn.close()


_CUSTOMER_PATH = re.compile(r"^/customers/(\d+)$")


def customer_requests(receiver):
    """The receiver's requests to /customers/<id>: {id: [request, ...]} in
    arrival order."""
    by_id = collections.defaultdict(list)
    for r in receiver.requests():
        m = _CUSTOMER_PATH.match(r["path"])
        if m:
            by_id[int(m.group(1))].append(r)
    return by_id


def is_2xx(request):
    return 200 <= request["status"] < 300


def request_body(request):
    try:
        return json.loads(request["body"])
    except ValueError:
        return None


def _describe(r):
    return "#%d %s %s -> %d, key %s, body %s" % (
        r["seq"], r["method"], r["path"], r["status"],
        r["headers"].get("idempotency-key"), r["body"][:200])


def final_state_problems(by_id, writer, ids):
    """Why the last request of each id does not deliver its final state
    (a 2xx PUT with the row as its body, or a 2xx DELETE when the row was
    deleted last); an empty list when all arrived."""
    problems = []
    for cid in sorted(ids):
        reqs, row = by_id.get(cid, []), writer.rows.get(cid)
        want = "DELETE" if row is None else "PUT %s" % json.dumps(row, ensure_ascii=False)
        if not reqs:
            problems.append("id %d: no request arrived; expected %s" % (cid, want))
            continue
        last = reqs[-1]
        if not is_2xx(last):
            problems.append("id %d: last request %s is not a success; expected %s" % (
                cid, _describe(last), want))
        elif row is None and last["method"] != "DELETE":
            problems.append("id %d: deleted last, but the last request is %s" % (
                cid, _describe(last)))
        elif row is not None and (last["method"] != "PUT" or request_body(last) != row):
            problems.append("id %d: last request %s; expected %s" % (
                cid, _describe(last), want))
    return problems


def lost_changes(by_id, writer, ids):
    """The changes of each id that never got a 2xx answer: every committed
    insert and update (by version) and every delete (counted by distinct
    Idempotency-Key) must have arrived at least once."""
    problems = []
    for cid in sorted(ids):
        ok = [r for r in by_id.get(cid, []) if is_2xx(r)]
        got = {(request_body(r) or {}).get("version") for r in ok if r["method"] == "PUT"}
        want = [v for op, v in writer.history[cid] if op != "d"]
        missing = [v for v in want if v not in got]
        if missing:
            problems.append("id %d: versions %s never arrived (of %d)" % (
                cid, missing[:10], len(want)))
        deletes = len({r["headers"].get("idempotency-key") for r in ok
                       if r["method"] == "DELETE"})
        want_d = sum(1 for op, _ in writer.history[cid] if op == "d")
        if deletes < want_d:
            problems.append("id %d: %d deletes committed, %d arrived" % (cid, want_d, deletes))
    return problems


def order_problems(by_id, writer, ids):
    """Requests of one id that arrived before a request for an earlier
    change of that id (every attempt counts, retries included): each PUT
    is placed by its version in the id's history, each DELETE at the first
    delete not before the previous request."""
    problems = []
    for cid in sorted(ids):
        hist = writer.history[cid]
        where = {v: i for i, (op, v) in enumerate(hist) if op != "d"}
        deletes = [i for i, (op, _) in enumerate(hist) if op == "d"]
        pos, prev = 0, None
        for r in by_id.get(cid, []):
            if r["method"] == "DELETE":
                later = [i for i in deletes if i >= pos]
                if not later:
                    problems.append("id %d: %s arrived after %s, with no delete left in "
                                    "its history %s" % (cid, _describe(r), _describe(prev), hist))
                    break
                idx = later[0]
            else:
                version = (request_body(r) or {}).get("version")
                if version not in where:
                    problems.append("id %d: %s carries a version never written" % (
                        cid, _describe(r)))
                    break
                idx = where[version]
                if idx < pos:
                    problems.append("id %d: %s (change %d of its history) arrived after %s "
                                    "(change %d)" % (cid, _describe(r), idx, _describe(prev), pos))
                    break
            pos, prev = idx, r
    return problems


def order_problems_by_run(requests, writer, ids, runs):
    """order_problems within each process's lifetime: RUNS are the indexes
    into REQUESTS where a new set of processes started (a replay after a
    crash or a restart starts again at the first change not settled, so
    order holds within a run, not across one)."""
    problems = []
    bounds = list(runs) + [len(requests)]
    for i in range(len(runs)):
        seg = collections.defaultdict(list)
        for r in requests[bounds[i]:bounds[i + 1]]:
            m = _CUSTOMER_PATH.match(r["path"])
            if m:
                seg[int(m.group(1))].append(r)
        problems += ["run %d: %s" % (i + 1, p) for p in order_problems(seg, writer, ids)]
    return problems


def idempotency_problems(requests):
    """Requests without an Idempotency-Key, and keys shared by requests
    that differ (a retry must repeat its request)."""
    problems, seen = [], {}
    for r in requests:
        key = r["headers"].get("idempotency-key")
        if not key:
            problems.append("no Idempotency-Key: %s" % _describe(r))
            continue
        sig = (r["method"], r["path"], r["body"])
        if seen.setdefault(key, sig) != sig:
            problems.append("Idempotency-Key %s on different requests: %s and %s" % (
                key, seen[key], _describe(r)))
    return problems


def duplicate_count(requests):
    """(Idempotency-Keys answered 2xx more than once, extra 2xx requests)."""
    counts = collections.Counter(r["headers"].get("idempotency-key")
                                 for r in requests if is_2xx(r))
    dups = {k: n for k, n in counts.items() if n > 1}
    return len(dups), sum(n - 1 for n in dups.values())


def wait_converged(receiver, writer, ids, timeout, procs=()):
    """Polls the receiver until every id's final state arrived; fails,
    naming the ids still behind, after `timeout` seconds or as soon as one
    of `procs` exited. Returns customer_requests()."""
    deadline = time.monotonic() + timeout
    while True:
        by_id = customer_requests(receiver)
        problems = final_state_problems(by_id, writer, ids)
        if not problems:
            return by_id
        for p in procs:
            p.assert_running()
        if time.monotonic() >= deadline:
            raise AssertionError(
                "timed out after %.0fs waiting for the final state of every id: %d of %d "
                "not there; first ones:\n  %s" % (timeout, len(problems), len(ids),
                                                  "\n  ".join(problems[:15])))
        time.sleep(0.25)
