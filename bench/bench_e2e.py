#!/usr/bin/env python3
"""End-to-end benchmark of `syncfleet run` (standard library only).

One run starts sf-receiver (the HTTP target) and `syncfleet run` on a
generated pipeline (embedded broker, SQLite source, one message that PUTs
every change of table `items` to the receiver), then:

  1. start-up: time from exec until `syncfleet run` logs that it is running,
     and the process's RSS once idle;
  2. throughput: a writer commits N single-row inserts/updates across many
     keys in transactions of B rows as fast as it can; measured from the
     first commit until the receiver has the final state of every key;
  3. latency: the writer commits R changes/s for S seconds; for each change,
     receiver arrival time minus the time its COMMIT returned (p50/p99);
  4. memory: VmHWM and VmRSS of the process just before SIGTERM, then the
     shutdown time and exit status.

It prints figures; it does not assert. The exit status is non-zero only when
no figures could be taken (a binary missing, syncfleet not starting).

Each change is identified by a global sequence number written to `qty`, so
every request the receiver logs maps back to exactly one change and its
commit time. `committed_ms` carries the wall-clock time stamped into the row
inside the transaction, just before COMMIT.
"""

import argparse
import json
import math
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

READY_REGEX = r" run: running pipeline"
TABLE_SQL = ("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, "
             "qty INTEGER, committed_ms INTEGER)")

PIPELINE = """\
version: 1
name: bench-e2e

kafka:
  brokers: "{brokers}"
  topic_prefix: bench
  partitions: {partitions}
{kafka_config}
source:
  type: sqlite
  path: {db}
  poll_interval_ms: {poll_ms}
{ack}
tables:
  items:
    key: [id]

connectors:
  receiver:
    type: http
    base_url: http://127.0.0.1:{port}
    timeout_ms: 5000
    max_in_flight: {in_flight}
{auth}
messages:
  items-to-receiver:
    trigger:
      table: items
      events: [insert, update]
    source: {{ mode: event }}
    target:
      connector: receiver
      method: PUT
      path: /items/{{{{id}}}}
    mapping:
      id: "{{{{id}}}}"
      name: "{{{{name}}}}"
      qty: "{{{{qty}}}}"
      committed_ms: "{{{{committed_ms}}}}"
"""


def now_ms():
    return time.time() * 1000.0


def percentile(values, p):
    """Nearest-rank percentile of a non-empty list."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(p / 100.0 * len(s)) - 1))
    return s[k]


def proc_status(pid):
    """VmRSS/VmHWM (KiB) and Threads of a live process, {} if it is gone."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                name, _, value = line.partition(":")
                if name in ("VmRSS", "VmHWM", "Threads"):
                    out[name] = int(value.split()[0])
    except OSError:
        pass
    return out


def proc_cpu_s(pid):
    """User + system CPU seconds used by a live process, None if gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def git_commit(top):
    try:
        rev = subprocess.run(["git", "-C", top, "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", top, "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


class Proc:
    """A child in its own session with stdout/stderr in files."""

    def __init__(self, argv, name, workdir):
        self.name = name
        self.out = os.path.join(workdir, name + ".out")
        self.err = os.path.join(workdir, name + ".err")
        with open(self.out, "wb") as o, open(self.err, "wb") as e:
            self.popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                          stdout=o, stderr=e,
                                          start_new_session=True)

    @property
    def pid(self):
        return self.popen.pid

    def running(self):
        return self.popen.poll() is None

    def stderr(self):
        with open(self.err, "r", errors="replace") as f:
            return f.read()

    def tail(self, n=30):
        lines = self.stderr().splitlines()[-n:]
        return "\n".join("    " + l for l in lines)

    def stop(self, timeout):
        """SIGTERM and wait; SIGKILL after timeout. Returns (status, seconds)."""
        t0 = time.monotonic()
        if self.running():
            self.popen.send_signal(signal.SIGTERM)
        try:
            rc = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            rc = "killed after %.0fs" % timeout
            self.popen.wait()
        return rc, time.monotonic() - t0

    def kill(self):
        if self.running():
            self.popen.kill()
            self.popen.wait()


class ReceiverLog:
    """Follows sf-receiver's JSON-lines log. For each change (identified by
    its sequence number in the body's qty) keeps the first arrival time and
    counts repeats."""

    def __init__(self, path):
        self.path = path
        self.f = None
        self.rest = b""
        self.first = {}        # seq -> ts_ms of the first request carrying it
        self.body_stamp = {}   # seq -> committed_ms carried in the body
        self.requests = []     # (ts_ms, seq) in arrival order
        self.duplicates = 0
        self.non_2xx = 0
        self.unparsed = 0

    def poll(self):
        if self.f is None:
            try:
                self.f = open(self.path, "rb")
            except OSError:
                return
        data = self.f.read()
        if not data:
            return
        data = self.rest + data
        lines = data.split(b"\n")
        self.rest = lines.pop()
        for line in lines:
            self._take(line)

    def _take(self, line):
        try:
            req = json.loads(line)
            body = json.loads(req["body"])
            seq = int(body["qty"])
            ts = int(req["ts_ms"])
        except (ValueError, KeyError, TypeError):
            self.unparsed += 1
            return
        if not 200 <= int(req.get("status", 200)) < 300:
            self.non_2xx += 1
        self.requests.append((ts, seq))
        if seq in self.first:
            self.duplicates += 1
        else:
            self.first[seq] = ts
            try:
                self.body_stamp[seq] = int(body["committed_ms"])
            except (KeyError, ValueError, TypeError):
                pass


class Writer:
    """The application: writes table items through its own connection, WAL
    mode with a busy timeout, as syncfleet reads and trims its log."""

    def __init__(self, db, busy_ms):
        self.conn = sqlite3.connect(db, isolation_level=None, timeout=busy_ms / 1000.0)
        self.conn.execute("PRAGMA busy_timeout=%d" % busy_ms)
        self.seq = 0
        self.exists = set()
        self.last_seq = {}  # key -> seq of its latest change
        self.commit_ms = {}  # seq -> wall-clock ms when its COMMIT returned
        self.inserts = 0
        self.updates = 0
        self.tx_ms = []  # duration of every transaction, BEGIN to COMMIT

    def transaction(self, keys):
        """Commits one change per key in one transaction; returns the time
        COMMIT returned (wall ms)."""
        seqs = []
        t0 = time.monotonic()
        self.conn.execute("BEGIN IMMEDIATE")
        stamp = int(now_ms())
        for key in keys:
            self.seq += 1
            name = "item-%d-%d" % (key, self.seq)
            if key in self.exists:
                self.conn.execute(
                    "UPDATE items SET name = ?, qty = ?, committed_ms = ? WHERE id = ?",
                    (name, self.seq, stamp, key))
                self.updates += 1
            else:
                self.conn.execute(
                    "INSERT INTO items (id, name, qty, committed_ms) VALUES (?, ?, ?, ?)",
                    (key, name, self.seq, stamp))
                self.exists.add(key)
                self.inserts += 1
            self.last_seq[key] = self.seq
            seqs.append(self.seq)
        self.conn.execute("COMMIT")
        done = now_ms()
        self.tx_ms.append((time.monotonic() - t0) * 1000.0)
        for s in seqs:
            self.commit_ms[s] = done
        return done

    def close(self):
        self.conn.close()


def wait_delivered(rlog, want_seqs, sf, timeout):
    """Polls the receiver log until every seq in want_seqs arrived, syncfleet
    exited or timeout passed. Returns the seqs still missing."""
    missing = set(want_seqs)
    deadline = time.monotonic() + timeout
    while True:
        rlog.poll()
        missing = {s for s in missing if s not in rlog.first}
        if not missing or not sf.running() or time.monotonic() >= deadline:
            return missing
        time.sleep(0.02)


def start(args, work):
    """Creates the database, starts the receiver and syncfleet; returns
    (receiver, syncfleet, figures)."""
    fig = {}
    db = os.path.join(work, "bench.db")
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(TABLE_SQL)
    conn.commit()
    conn.close()

    port_file = os.path.join(work, "receiver.port")
    rcv = Proc([args.receiver, "--log", os.path.join(work, "receiver.log"),
                "--port-file", port_file], "receiver", work)
    deadline = time.monotonic() + 10
    while not os.path.exists(port_file):
        if not rcv.running() or time.monotonic() > deadline:
            raise RuntimeError("sf-receiver did not start:\n" + rcv.tail())
        time.sleep(0.02)
    with open(port_file) as f:
        port = int(f.read().strip())

    pipeline = os.path.join(work, "pipeline.yaml")
    auth = ""
    if args.bearer_token:
        # a secret the pipeline holds, so that redaction has work to do
        os.environ["SF_BENCH_TOKEN"] = args.bearer_token
        auth = '    auth: { type: bearer, token: "${SF_BENCH_TOKEN}" }\n'
    with open(pipeline, "w") as f:
        extra = "".join("    %s: \"%s\"\n" % tuple(kv.split("=", 1))
                        for kv in args.kafka_config)
        f.write(PIPELINE.format(partitions=args.partitions, brokers=args.brokers,
                                kafka_config="  config:\n" + extra if extra else "",
                                db=db,
                                poll_ms=args.poll_ms, port=port,
                                in_flight=args.max_in_flight,
                                auth=auth,
                                ack="  ack: %s\n" % args.ack if args.ack else ""))

    argv = [args.syncfleet, "run", "-c", pipeline,
            "--message-workers", str(args.message_workers)]
    ready = re.compile(args.ready_regex)
    t_exec_wall = now_ms()
    t_exec = time.monotonic()
    sf = Proc(argv, "syncfleet", work)
    deadline = t_exec + args.start_timeout
    line = None
    while line is None:
        for l in sf.stderr().splitlines():
            if ready.search(l):
                line = l
                break
        if line is None:
            if not sf.running():
                raise RuntimeError("syncfleet run exited with %s before it was "
                                   "running:\n%s" % (sf.popen.returncode, sf.tail()))
            if time.monotonic() > deadline:
                raise RuntimeError("syncfleet run did not log a line matching %r "
                                   "within %.0fs:\n%s" % (args.ready_regex,
                                                           args.start_timeout, sf.tail()))
            time.sleep(0.005)
    seen = time.monotonic()
    # The log line's own timestamp is more precise than the polling above.
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z", line)
    if m:
        ts = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f")
        ts = ts.replace(tzinfo=timezone.utc).timestamp() * 1000.0
        fig["startup_ms"] = max(0.0, ts - t_exec_wall)
    else:
        fig["startup_ms"] = (seen - t_exec) * 1000.0
    fig["pipeline"] = pipeline
    fig["db"] = db
    fig["exec_wall_ms"] = t_exec_wall
    return rcv, sf, fig


def phase_idle(args, sf, fig):
    """CPU used while nothing changes, then the resident set."""
    cpu0 = proc_cpu_s(sf.pid)
    time.sleep(args.idle_s)
    cpu1 = proc_cpu_s(sf.pid)
    st = proc_status(sf.pid)
    if cpu0 is not None and cpu1 is not None:
        fig["idle_cpu_pct"] = 100.0 * (cpu1 - cpu0) / args.idle_s
    fig["idle_rss_kib"] = st.get("VmRSS")
    fig["idle_threads"] = st.get("Threads")


def phase_probe(args, writer, rlog, sf, fig):
    """One change to a key no phase uses, waited for: the first delivery
    after start-up (consumer groups joined, connections open), so the phases
    after it measure a warm pipeline."""
    writer.transaction([0])
    seq = writer.seq
    missing = wait_delivered(rlog, [seq], sf, args.start_timeout)
    if not missing:
        fig["first_delivery_ms"] = rlog.first[seq] - fig["exec_wall_ms"]
        fig["probe_latency_ms"] = rlog.first[seq] - writer.commit_ms[seq]
    return not missing


def phase_throughput(args, writer, rlog, sf, fig):
    rng = random.Random(args.seed)
    n, b, k = args.changes, args.batch, args.keys
    keys = [rng.randrange(1, k + 1) for _ in range(n)]
    first_seq = writer.seq + 1
    ins0, upd0 = writer.inserts, writer.updates
    t_begin = now_ms()
    t_first = None
    for i in range(0, n, b):
        done = writer.transaction(keys[i:i + b])
        if t_first is None:
            t_first = done
        rlog.poll()
    t_last = now_ms()
    last_seqs = {writer.last_seq[key] for key in set(keys)}
    missing = wait_delivered(rlog, last_seqs, sf, args.drain_timeout)

    seqs = range(first_seq, writer.seq + 1)
    arrived = [rlog.first[s] for s in seqs if s in rlog.first]
    phase_reqs = [ts for ts, s in rlog.requests if first_seq <= s <= writer.seq]
    fig["tp_changes"] = n
    fig["tp_keys"] = len(set(keys))
    fig["tp_inserts"] = writer.inserts - ins0
    fig["tp_updates"] = writer.updates - upd0
    fig["tp_writer_rate"] = n / max(1e-9, (t_last - t_begin) / 1000.0)
    fig["tp_keys_final"] = len(last_seqs) - len(missing)
    fig["tp_drained"] = not missing
    fig["tp_requests"] = len(phase_reqs)
    fig["tp_changes_delivered"] = len(arrived)
    if not missing:
        t_final = max(rlog.first[s] for s in last_seqs)
        fig["tp_e2e_s"] = (t_final - t_first) / 1000.0
        fig["tp_e2e_rate"] = n / max(1e-9, fig["tp_e2e_s"])
        fig["tp_drain_after_last_commit_s"] = (t_final - t_last) / 1000.0
    if len(phase_reqs) >= 2:
        span = (max(phase_reqs) - min(phase_reqs)) / 1000.0
        fig["tp_receiver_rate"] = len(phase_reqs) / max(1e-3, span)
        fig["tp_first_request_after_first_commit_ms"] = min(phase_reqs) - t_first


def phase_latency(args, writer, rlog, sf, fig):
    rate, dur = args.rate, args.duration
    per_tx = args.lat_batch or max(1, int(round(rate / 100.0)))
    total = int(rate * dur)
    keys = sorted(writer.exists) or list(range(1, args.keys + 1))
    first_seq = writer.seq + 1
    tx0 = len(writer.tx_ms)
    t0 = time.monotonic()
    behind = 0.0
    sent, tx, ki = 0, 0, 0
    while sent < total:
        due = t0 + sent / float(rate)
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            behind = max(behind, -delay)
        m = min(per_tx, total - sent)
        batch = []
        for _ in range(m):
            batch.append(keys[ki % len(keys)])
            ki += 1
        writer.transaction(batch)
        sent += m
        tx += 1
        rlog.poll()
    elapsed = time.monotonic() - t0
    seqs = list(range(first_seq, writer.seq + 1))
    missing = wait_delivered(rlog, seqs, sf, args.lat_timeout)

    lat = [rlog.first[s] - writer.commit_ms[s] for s in seqs if s in rlog.first]
    stamp_lat = [rlog.first[s] - rlog.body_stamp[s] for s in seqs
                 if s in rlog.first and s in rlog.body_stamp]
    fig["lat_changes"] = total
    fig["lat_per_tx"] = per_tx
    fig["lat_achieved_rate"] = total / max(1e-9, elapsed)
    fig["lat_writer_max_behind_ms"] = behind * 1000.0
    txs = writer.tx_ms[tx0:]
    fig["lat_tx_p50_ms"] = percentile(txs, 50)
    fig["lat_tx_p99_ms"] = percentile(txs, 99)
    fig["lat_tx_max_ms"] = max(txs)
    fig["lat_delivered"] = len(lat)
    fig["lat_missing"] = len(missing)
    if lat:
        fig["lat_p50_ms"] = percentile(lat, 50)
        fig["lat_p99_ms"] = percentile(lat, 99)
        fig["lat_max_ms"] = max(lat)
        fig["lat_mean_ms"] = sum(lat) / len(lat)
    if stamp_lat:
        fig["lat_stamp_p50_ms"] = percentile(stamp_lat, 50)
        fig["lat_stamp_p99_ms"] = percentile(stamp_lat, 99)


def fmt(v, spec, unit=""):
    if v is None:
        return "n/a"
    return (spec % v) + unit


def report(args, fig, top):
    print()
    print("syncfleet end-to-end benchmark")
    print("  commit   %s" % fig.get("commit"))
    print("  machine  %d cores online (%d usable), %s; load average %s at start" % (
        os.cpu_count() or 0, len(os.sched_getaffinity(0)), cpu_model(),
        fig.get("loadavg")))
    print("  run      %s   (%s)" % (fig.get("cmd"), fig.get("when")))
    print("  pipeline %s, %d partitions, sqlite poll %d ms, "
          "%d message worker(s), http max_in_flight %d" % (
              "embedded broker" if args.brokers == "embedded" else
              "Kafka at " + args.brokers, args.partitions, args.poll_ms, args.message_workers,
              args.max_in_flight))
    if args.kafka_config:
        print("           kafka.config %s" % ", ".join(args.kafka_config))
    print()
    rows = []

    def row(name, value, note=""):
        rows.append((name, value, note))

    row("start-up (exec -> running)", fmt(fig.get("startup_ms"), "%.0f", " ms"))
    row("first delivery (exec -> probe arrived)",
        fmt(fig.get("first_delivery_ms"), "%.0f", " ms"),
        "probe commit -> receiver %s" % fmt(fig.get("probe_latency_ms"), "%.0f", " ms"))
    row("RSS at idle", fmt(_mib(fig.get("idle_rss_kib")), "%.1f", " MiB"),
        "%s threads, after %.1f s idle past the probe; CPU %s of one core meanwhile" % (
            fig.get("idle_threads"), args.idle_s,
            fmt(fig.get("idle_cpu_pct"), "%.0f", "%")))
    if "tp_changes" in fig:
        row("throughput changes", "%d" % fig["tp_changes"],
            "%d inserts + %d updates over %d keys, %d per transaction" % (
                fig["tp_inserts"], fig["tp_updates"], fig["tp_keys"], args.batch))
        row("  writer commit rate", fmt(fig.get("tp_writer_rate"), "%.0f", " /s"))
        if fig.get("tp_drained"):
            row("  end to end (first commit -> all final)",
                fmt(fig.get("tp_e2e_rate"), "%.0f", " changes/s"),
                "%.2f s; last commit -> all final %.2f s" % (
                    fig["tp_e2e_s"], fig["tp_drain_after_last_commit_s"]))
        else:
            row("  end to end (first commit -> all final)", "n/a",
                "only %d of %d keys final after %.0f s" % (
                    fig["tp_keys_final"], fig["tp_keys"], args.drain_timeout))
        row("  receiver rate (first -> last request)",
            fmt(fig.get("tp_receiver_rate"), "%.0f", " req/s"),
            "first request %s after first commit" % fmt(
                fig.get("tp_first_request_after_first_commit_ms"), "%.0f", " ms"))
        row("  requests / changes delivered", "%d / %d" % (
            fig["tp_requests"], fig["tp_changes_delivered"]),
            "repeats and coalesced changes show here")
    if "lat_changes" in fig:
        row("latency load", fmt(fig.get("lat_achieved_rate"), "%.0f", " changes/s"),
            "%d changes, %d per transaction, writer max %.0f ms behind" % (
                fig["lat_changes"], fig["lat_per_tx"],
                fig["lat_writer_max_behind_ms"]))
        row("  writer transaction time p50/p99/max", "%s / %s / %s" % (
            fmt(fig.get("lat_tx_p50_ms"), "%.1f"), fmt(fig.get("lat_tx_p99_ms"), "%.1f"),
            fmt(fig.get("lat_tx_max_ms"), "%.0f", " ms")),
            "BEGIN IMMEDIATE to COMMIT, as the application sees it")
        row("  commit -> receiver p50", fmt(fig.get("lat_p50_ms"), "%.1f", " ms"))
        row("  commit -> receiver p99", fmt(fig.get("lat_p99_ms"), "%.1f", " ms"),
            "max %s, mean %s" % (fmt(fig.get("lat_max_ms"), "%.1f", " ms"),
                                 fmt(fig.get("lat_mean_ms"), "%.1f", " ms")))
        row("  committed_ms column -> receiver p50/p99", "%s / %s" % (
            fmt(fig.get("lat_stamp_p50_ms"), "%.0f"),
            fmt(fig.get("lat_stamp_p99_ms"), "%.0f", " ms")),
            "stamp taken inside the transaction")
        row("  changes delivered", "%d / %d" % (fig["lat_delivered"],
                                                fig["lat_changes"]),
            "%d missing after %.0f s" % (fig["lat_missing"], args.lat_timeout)
            if fig["lat_missing"] else "")
    elif "lat_skipped" in fig:
        row("latency", "n/a", fig["lat_skipped"])
    row("peak memory (VmHWM)", fmt(_mib(fig.get("hwm_kib")), "%.1f", " MiB"),
        "RSS at end %s" % fmt(_mib(fig.get("end_rss_kib")), "%.1f", " MiB"))
    row("CPU time of syncfleet", fmt(fig.get("cpu_s"), "%.1f", " s"),
        "user+system over the whole run")
    row("shutdown (SIGTERM -> exit)", fmt(fig.get("stop_s"), "%.2f", " s"),
        "exit status %s" % fig.get("exit_status"))
    row("syncfleet log", "%d warn, %d error" % (fig.get("log_warn", 0),
                                               fig.get("log_error", 0)))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    for name, value, note in rows:
        print(("  %-*s  %*s  %s" % (w0, name, w1, value, note)).rstrip())
    print()


def _mib(kib):
    return None if kib is None else kib / 1024.0


def main():
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    build = os.environ.get("SF_BUILD_DIR", os.path.join(top, "build"))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--syncfleet", default=os.path.join(build, "cli", "syncfleet"))
    ap.add_argument("--receiver", default=os.path.join(build, "tests", "tools",
                                                       "sf-receiver"))
    ap.add_argument("--changes", type=int, default=20000,
                    help="changes in the throughput phase (default 20000; 0 skips)")
    ap.add_argument("--keys", type=int, default=2000,
                    help="distinct keys the changes spread over (default 2000)")
    ap.add_argument("--batch", type=int, default=100,
                    help="changes per transaction, throughput phase (default 100)")
    ap.add_argument("--rate", type=float, default=1000,
                    help="changes/s in the latency phase (default 1000)")
    ap.add_argument("--duration", type=float, default=10,
                    help="seconds of the latency phase (default 10; 0 skips)")
    ap.add_argument("--lat-batch", type=int, default=0,
                    help="changes per transaction, latency phase "
                         "(default: rate/100, i.e. a commit every 10 ms)")
    ap.add_argument("--brokers", default="embedded",
                    help="kafka.brokers: embedded (default), or a real cluster's "
                    "bootstrap servers, e.g. from tests/kafka/cluster.py run (give "
                    "each run a fresh cluster: the topics are always bench.*)")
    ap.add_argument("--ack", choices=["delivered", "settled"],
                    help="source.ack (default: the broker's, settled on the embedded one)")
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--poll-ms", type=int, default=10)
    ap.add_argument("--max-in-flight", type=int, default=64)
    ap.add_argument("--bearer-token", default=None,
                    help="send this bearer token (from ${VAR}): the run "
                         "then has a secret to redact")
    ap.add_argument("--message-workers", type=int, default=1)
    ap.add_argument("--kafka-config", metavar="KEY=VALUE", action="append",
                    default=[], help="add KEY: VALUE to kafka.config "
                    "(repeatable), e.g. fetch.wait.max.ms=10")
    ap.add_argument("--idle-s", type=float, default=2.0,
                    help="seconds idle after the probe arrived over which the "
                         "idle CPU is measured, then the idle RSS read (default 2)")
    ap.add_argument("--start-timeout", type=float, default=30)
    ap.add_argument("--drain-timeout", type=float, default=60,
                    help="seconds to wait for the throughput phase to arrive")
    ap.add_argument("--lat-timeout", type=float, default=30,
                    help="seconds to wait for the latency phase to arrive")
    ap.add_argument("--ready-regex", default=READY_REGEX,
                    help="stderr line that means syncfleet run is up "
                         "(default %r)" % READY_REGEX)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    ap.add_argument("--keep", action="store_true",
                    help="keep the work directory (pipeline, database, logs)")
    args = ap.parse_args()

    for path, what in ((args.syncfleet, "syncfleet"), (args.receiver, "sf-receiver")):
        if not os.access(path, os.X_OK):
            print("bench: %s not found at %s (build first: ./setup.sh build)"
                  % (what, path), file=sys.stderr)
            return 1
    if any("=" not in kv for kv in args.kafka_config):
        print("bench: --kafka-config takes KEY=VALUE", file=sys.stderr)
        return 2
    if args.keys < 1 or args.batch < 1 or args.rate <= 0:
        print("bench: --keys, --batch and --rate must be positive", file=sys.stderr)
        return 2

    fig = {"commit": git_commit(top),
           "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "cmd": " ".join(["bench/run.sh"] + sys.argv[1:]),
           "cores": os.cpu_count(),
           "loadavg": "%.2f %.2f %.2f" % os.getloadavg()}
    work = tempfile.mkdtemp(prefix="sf-bench-")
    rcv = sf = writer = None
    status = 0
    try:
        print("bench: work directory %s" % work, file=sys.stderr)
        rcv, sf, more = start(args, work)
        fig.update(more)
        print("bench: syncfleet running after %.0f ms" % fig["startup_ms"],
              file=sys.stderr)
        rlog = ReceiverLog(os.path.join(work, "receiver.log"))
        writer = Writer(fig["db"], 10000)
        print("bench: probe change (waits for the consumer groups)", file=sys.stderr)
        if not phase_probe(args, writer, rlog, sf, fig):
            raise RuntimeError("the probe change did not arrive within %.0fs:\n%s"
                               % (args.start_timeout, sf.tail()))
        phase_idle(args, sf, fig)
        if args.changes > 0:
            print("bench: throughput, %d changes" % args.changes, file=sys.stderr)
            phase_throughput(args, writer, rlog, sf, fig)
        if args.duration > 0:
            if args.changes > 0 and not fig.get("tp_drained"):
                fig["lat_skipped"] = "skipped: the throughput phase never drained"
            elif not sf.running():
                fig["lat_skipped"] = "skipped: syncfleet exited"
            else:
                print("bench: latency, %.0f changes/s for %.0f s" % (
                    args.rate, args.duration), file=sys.stderr)
                phase_latency(args, writer, rlog, sf, fig)
        st = proc_status(sf.pid)
        fig["hwm_kib"] = st.get("VmHWM")
        fig["end_rss_kib"] = st.get("VmRSS")
        fig["cpu_s"] = proc_cpu_s(sf.pid)
        if not sf.running():
            fig["exit_status"] = "%s (exited before SIGTERM)" % sf.popen.returncode
            status = 1
        else:
            fig["exit_status"], fig["stop_s"] = sf.stop(30)
    except RuntimeError as e:
        print("bench: %s" % e, file=sys.stderr)
        status = 1
    finally:
        if writer:
            writer.close()
        for p in (sf, rcv):
            if p:
                p.kill()
        if sf:
            log = sf.stderr()
            fig["log_warn"] = len(re.findall(r"^\S+ warn ", log, re.M))
            fig["log_error"] = len(re.findall(r"^\S+ error ", log, re.M))
            if fig["log_error"] or status:
                print("bench: last lines of syncfleet's log:\n%s" % sf.tail(),
                      file=sys.stderr)
        if args.keep:
            print("bench: kept %s" % work, file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if "startup_ms" in fig:
        report(args, fig, top)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({k: v for k, v in fig.items() if k not in ("db", "pipeline")},
                      f, indent=2, sort_keys=True)
            f.write("\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
