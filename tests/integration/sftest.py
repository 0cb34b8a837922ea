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
reading and writing topics through kcat.
"""

import atexit
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
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
    for 200 {"ok":true} to everything."""

    def __init__(self, rules=None, directory=None, name="receiver", binary=None):
        super().__init__(directory)
        self.log_path = os.path.join(self.dir, name + ".jsonl")
        argv = [binary or env_path("SF_RECEIVER"), "--log", self.log_path,
                "--port", "0", "--port-file", os.path.join(self.dir, name + ".port")]
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
                if line.endswith("\n"):  # skip a line still being written
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

    def receiver(self, rules=None, name="receiver"):
        """A Receiver stopped when the test ends; an exit status other than
        0 then (a crash, a sanitizer report) fails the test."""
        rcv = Receiver(rules, directory=self.tmp.path, name=name)
        self._procs.append(rcv.proc)
        self.addCleanup(rcv.stop)
        return rcv

    def broker(self, partitions=3, prefix="itest", name="broker", args=()):
        """A Broker stopped when the test ends, like receiver()."""
        brk = Broker(partitions, prefix, directory=self.tmp.path, name=name, args=args)
        self._procs.append(brk.proc)
        self.addCleanup(brk.stop)
        return brk
