#!/usr/bin/env python3
"""syncfleet producer against a SQLite database and `syncfleet broker`.

Writes rows into the application's tables and asserts what reaches
PREFIX.sync-log (key bytes, op, images, the event-id header), that the
capture log empties once Kafka has the records, that a producer killed with
SIGKILL mid-stream loses nothing after a restart, and that --uninstall
leaves no trace in the database. Self-contained: standard library, the
syncfleet binary and kcat.
"""
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

SYNCFLEET = os.environ.get("SYNCFLEET", "syncfleet")
PREFIX = "itest"
TOPIC = PREFIX + ".sync-log"

PIPELINE = """\
version: 1
name: producer-sqlite-test
kafka:
  brokers: embedded
  topic_prefix: %s
  partitions: 3
source:
  type: sqlite
  path: ./erp.db
  poll_interval_ms: 50
  ack: delivered   # the producer alone, read by the test: no router
tables:
  customers:
    key: [id]
  items:
    key: [sku]
  notes:
    key: [id]
connectors:
  out:
    type: file
    dir: ./out
messages:
  customer-out:
    trigger:
      table: customers
      events: [insert, update, delete]
    target: { connector: out }
    mapping:
      id: "{{id}}"
      name: "{{name}}"
  item-out:
    trigger:
      table: items
      events: [insert]
    target: { connector: out }
    mapping:
      sku: "{{sku}}"
""" % PREFIX


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


class Env:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="sf-producer-sqlite-")
        self.db = os.path.join(self.dir, "erp.db")
        self.pipeline = os.path.join(self.dir, "pipeline.yaml")
        self.procs = []
        with open(self.pipeline, "w") as f:
            f.write(PIPELINE)
        con = self.connect()
        con.executescript(
            "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT,"
            " score REAL);"
            "CREATE TABLE items(sku TEXT PRIMARY KEY, data BLOB);"
            "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);")
        con.close()

    def connect(self):
        con = sqlite3.connect(self.db, timeout=30, isolation_level=None)
        return con

    def log(self, name):
        return open(os.path.join(self.dir, name), "ab")

    def start(self, args, log_name, stdout=subprocess.DEVNULL):
        p = subprocess.Popen([SYNCFLEET] + args, stdout=stdout,
                             stderr=self.log(log_name), cwd=self.dir)
        self.procs.append(p)
        return p

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def show_logs(self):
        for name in sorted(os.listdir(self.dir)):
            if name.endswith(".log"):
                with open(os.path.join(self.dir, name), "rb") as f:
                    data = f.read()[-4000:]
                print("--- %s\n%s" % (name, data.decode(errors="replace")),
                      file=sys.stderr)


def start_broker(env):
    """Starts `syncfleet broker` with the pipeline's topics and returns its
    bootstrap address."""
    p = env.start(["broker", "--topic-prefix", PREFIX, "--partitions", "3"],
                  "broker.log", stdout=subprocess.PIPE)
    deadline = time.time() + 30
    while time.time() < deadline:
        line = p.stdout.readline().decode()
        if not line:
            fail("syncfleet broker exited without printing its address")
        m = re.search(r"\d+\.\d+\.\d+\.\d+:\d+(,\d+\.\d+\.\d+\.\d+:\d+)*",
                      line)
        if m:
            return m.group(0)
    fail("syncfleet broker printed no bootstrap address")


def consume(brokers):
    """Every record of the sync-log: (partition, offset, key, value,
    headers dict)."""
    out = subprocess.run(
        ["kcat", "-C", "-b", brokers, "-t", TOPIC, "-o", "beginning",
         "-e", "-q", "-J"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    check(out.returncode == 0, "kcat failed: %s" % out.stderr.decode())
    recs = []
    for line in out.stdout.decode().splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        h = r.get("headers") or []
        if isinstance(h, list):
            h = dict(zip(h[0::2], h[1::2]))
        recs.append((r["partition"], r["offset"], r["key"], r["payload"], h))
    return recs


def wait_for(what, pred, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    fail("timed out waiting for " + what)


def log_rows(env):
    con = env.connect()
    try:
        return con.execute("SELECT count(*) FROM _syncfleet_log").fetchone()[0]
    except sqlite3.OperationalError:
        return -1
    finally:
        con.close()


def dbid(env):
    con = env.connect()
    v = con.execute(
        "SELECT value FROM _syncfleet_meta WHERE name='dbid'").fetchone()[0]
    con.close()
    return v


def stop(p, what):
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        fail(what + " did not stop within 30 s of SIGTERM")
    check(rc == 0, "%s exited %d after SIGTERM" % (what, rc))


def test_usage(env):
    r = subprocess.run([SYNCFLEET, "producer", "-c", env.pipeline],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       cwd=env.dir, timeout=30)
    check(r.returncode == 2,
          "embedded without --brokers: exit %d, want 2" % r.returncode)
    err = r.stderr.decode()
    check("syncfleet run" in err and "syncfleet broker" in err
          and "--brokers" in err,
          "embedded without --brokers: unhelpful message: " + err)
    check(log_rows(env) == -1, "a usage error installed the capture")
    r = subprocess.run([SYNCFLEET, "producer"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    check(r.returncode == 2, "no -c: exit %d, want 2" % r.returncode)
    r = subprocess.run([SYNCFLEET, "producer", "--help"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=30)
    check(r.returncode == 0 and b"--brokers" in r.stdout,
          "--help: exit %d" % r.returncode)


def test_records(env, brokers):
    prod = env.start(["producer", "-c", env.pipeline, "--brokers", brokers],
                     "producer1.log")
    wait_for("the capture to be installed", lambda: log_rows(env) >= 0)
    con = env.connect()
    con.execute("INSERT INTO customers VALUES(1, 'Ann', 2.5)")
    con.execute("INSERT INTO customers VALUES(2, 'Bob', NULL)")
    con.execute("UPDATE customers SET name='Bobby', score=7.25 WHERE id=2")
    con.execute("DELETE FROM customers WHERE id=2")
    con.execute("INSERT INTO items VALUES('A-1', x'00ff10')")
    con.execute("UPDATE items SET data=x'01'")       # not subscribed
    con.execute("INSERT INTO notes VALUES(1, 'x')")  # not subscribed
    con.close()

    recs = wait_for("5 records on " + TOPIC,
                    lambda: (lambda r: r if len(r) >= 5 else None)(
                        consume(brokers)))
    check(len(recs) == 5, "want 5 records, got %d" % len(recs))
    wait_for("the capture log to empty", lambda: log_rows(env) == 0)
    ident = dbid(env)

    by_seq = {}
    for part, off, key, value, hdrs in recs:
        v = json.loads(value)
        by_seq[v["source"]["seq"]] = (part, off, key, v, hdrs)
    check(sorted(by_seq) == [1, 2, 3, 4, 5],
          "sequence numbers %s" % sorted(by_seq))

    want = [
        ('{"key":{"id":1},"table":"customers"}', "c", None,
         {"id": 1, "name": "Ann", "score": 2.5}),
        ('{"key":{"id":2},"table":"customers"}', "c", None,
         {"id": 2, "name": "Bob", "score": None}),
        ('{"key":{"id":2},"table":"customers"}', "u",
         {"id": 2, "name": "Bob", "score": None},
         {"id": 2, "name": "Bobby", "score": 7.25}),
        ('{"key":{"id":2},"table":"customers"}', "d",
         {"id": 2, "name": "Bobby", "score": 7.25}, None),
        ('{"key":{"sku":"A-1"},"table":"items"}', "c", None,
         {"sku": "A-1", "data": "00FF10"}),
    ]
    for seq, (key, op, before, after) in enumerate(want, 1):
        part, off, got_key, v, hdrs = by_seq[seq]
        check(got_key == key, "seq %d: key %r, want %r" % (seq, got_key, key))
        check(v["op"] == op, "seq %d: op %r, want %r" % (seq, v["op"], op))
        check(v["before"] == before,
              "seq %d: before %r, want %r" % (seq, v["before"], before))
        check(v["after"] == after,
              "seq %d: after %r, want %r" % (seq, v["after"], after))
        src = v["source"]
        check(src["connector"] == "sqlite" and src["db"] == "erp.db"
              and src["table"] == json.loads(key)["table"],
              "seq %d: source %r" % (seq, src))
        check(isinstance(v["ts_ms"], int)
              and abs(v["ts_ms"] - time.time() * 1000) < 600000,
              "seq %d: ts_ms %r" % (seq, v["ts_ms"]))
        check(hdrs.get("syncfleet-event-id") == "sqlite:%s:%d" % (ident, seq),
              "seq %d: event id header %r" % (seq, hdrs))
    # one record's changes share a partition, in source order
    p2 = [by_seq[s][0] for s in (2, 3, 4)]
    o2 = [by_seq[s][1] for s in (2, 3, 4)]
    check(len(set(p2)) == 1 and o2 == sorted(o2),
          "changes of customer 2 out of order: partitions %s offsets %s"
          % (p2, o2))
    stop(prod, "producer")
    return len(recs)


def test_kill_restart(env, brokers, already):
    n = 3000
    prod = env.start(["producer", "-c", env.pipeline, "--brokers", brokers],
                     "producer2.log")
    done = threading.Event()

    def writer():
        con = env.connect()
        for i in range(n):
            con.execute("INSERT INTO customers(id, name) VALUES(?, ?)",
                        (1000 + i, "c%d" % i))
            if i % 100 == 99:
                time.sleep(0.05)
        con.close()
        done.set()

    t = threading.Thread(target=writer)
    t.start()
    # kill it while rows are being written and delivered
    wait_for("the producer to deliver some rows",
             lambda: len(consume(brokers)) > already + 200)
    prod.kill()
    prod.wait()
    left = log_rows(env)
    t.join()
    check(done.is_set(), "writer did not finish")
    prod = env.start(["producer", "-c", env.pipeline, "--brokers", brokers],
                     "producer3.log")
    wait_for("the capture log to empty after the restart",
             lambda: log_rows(env) == 0, timeout=120)
    recs = consume(brokers)
    seen = set()
    for _, _, key, value, _ in recs:
        k = json.loads(key)["key"]
        if "id" in k and k["id"] >= 1000:
            check(json.loads(value)["op"] == "c", "unexpected op in " + value)
            seen.add(k["id"])
    missing = sorted(set(range(1000, 1000 + n)) - seen)
    check(not missing, "%d changes lost after kill -9, first %s"
          % (len(missing), missing[:5]))
    print("kill -9 with %d rows pending: %d records for %d changes"
          % (left, len(recs) - already, n))
    stop(prod, "restarted producer")


def test_uninstall(env):
    r = subprocess.run([SYNCFLEET, "producer", "-c", env.pipeline,
                        "--uninstall"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, cwd=env.dir, timeout=60)
    check(r.returncode == 0,
          "--uninstall: exit %d: %s" % (r.returncode, r.stderr.decode()))
    con = env.connect()
    left = con.execute("SELECT name FROM sqlite_master WHERE "
                       "instr(name, '_syncfleet') > 0").fetchall()
    rows = con.execute("SELECT count(*) FROM customers").fetchone()[0]
    con.close()
    check(left == [], "left after --uninstall: %s" % left)
    check(rows == 3001, "application rows changed: %d" % rows)


def main():
    if shutil.which("kcat") is None:
        fail("kcat is not installed")
    env = Env()
    ok = False
    try:
        test_usage(env)
        brokers = start_broker(env)
        n = test_records(env, brokers)
        test_kill_restart(env, brokers, n)
        test_uninstall(env)
        ok = True
    finally:
        if not ok:
            env.show_logs()
        env.cleanup()
    print("ok")


if __name__ == "__main__":
    main()
