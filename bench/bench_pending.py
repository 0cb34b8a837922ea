#!/usr/bin/env python3
"""Changes pending behind a down target, measured: memory of each component
and how many requests the target receives while it is down (figures, no
assertions).

    bench/bench_pending.py [--changes 100000] [--outage-s 60] [--down 503|refused]
                          [--drain]

Starts `syncfleet broker` and the producer, the router and one message
worker as separate processes (kafka.brokers: embedded, so settled
acknowledgement applies), a SQLite source with table `items`, and
sf-receiver answering 503 to everything (or, with --down refused, nothing
listening at the target's address). It commits CHANGES inserts in
transactions of 1000, then keeps the target down for OUTAGE_S seconds while
it samples each process's VmRSS and VmHWM every second. Prints, per
component, peak RSS; the requests the target received during the outage;
what is where (rows still in the source's log, records in the DLQ, records
parked); and with --drain, the time from the target's recovery until every
key's final state arrived.

Uses build/cli/syncfleet and build/tests/tools/sf-receiver, or SF_BUILD_DIR.
"""

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import sftest  # noqa: E402

PIPELINE = """\
version: 1
name: outage
kafka:
  brokers: embedded
  topic_prefix: out
  partitions: 6
  config: {{ session.timeout.ms: "6000", heartbeat.interval.ms: "1000" }}
source: {{ type: sqlite, path: {db}, poll_interval_ms: 20 }}
tables:
  items: {{ key: [id] }}
connectors:
  api:
    type: http
    base_url: "{url}"
    timeout_ms: 2000
    max_in_flight: 32
messages:
  items-to-api:
    trigger: {{ table: items, events: [insert, update] }}
    target: {{ connector: api, method: PUT, path: "/items/{{{{id}}}}" }}
    mapping: {{ id: "{{{{id}}}}", qty: "{{{{qty}}}}" }}
"""


def status(pid):
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM"):
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def main():
    build = os.environ.get("SF_BUILD_DIR", os.path.join(HERE, "..", "build"))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--changes", type=int, default=100000)
    ap.add_argument("--outage-s", type=float, default=60)
    ap.add_argument("--down", choices=["503", "refused"], default="503")
    ap.add_argument("--drain", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("SYNCFLEET", os.path.join(build, "cli", "syncfleet"))
    os.environ.setdefault("SF_RECEIVER", os.path.join(build, "tests", "tools", "sf-receiver"))

    work = tempfile.mkdtemp(prefix="sf-bench-pending-")
    procs = []
    try:
        rcv = sftest.Receiver([{"path": "/items/*", "status": 503, "scope": "rule"}],
                              directory=work)
        procs.append(rcv.proc)
        url = rcv.url
        if args.down == "refused":
            url = "http://127.0.0.1:%d" % sftest.free_port()
        db = os.path.join(work, "erp.db")
        con = sqlite3.connect(db, isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA busy_timeout=20000")
        con.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, qty INTEGER)")
        config = os.path.join(work, "pipeline.yaml")
        with open(config, "w") as f:
            f.write(PIPELINE.format(db=json.dumps(db), url=url))
        brk = sftest.Broker(6, "out", directory=work)
        procs.append(brk.proc)

        def start(name, *cmd):
            p = sftest.Proc([os.environ["SYNCFLEET"]] + list(cmd) +
                            ["-c", config, "--brokers", brk.bootstrap], name, work)
            procs.append(p)
            return p

        comps = {"router": start("router", "router"),
                 "worker": start("worker", "worker", "--kind", "message"),
                 "producer": start("producer", "producer")}
        sftest.wait_for(lambda: con.execute(
            "SELECT count(*) FROM sqlite_master WHERE type='trigger'").fetchone()[0] >= 2,
            30, "the producer's triggers")
        t0 = time.monotonic()
        for start_id in range(1, args.changes + 1, 1000):
            con.execute("BEGIN")
            con.executemany("INSERT INTO items VALUES (?, 1)",
                            [(i,) for i in range(start_id, min(start_id + 1000,
                                                                args.changes + 1))])
            con.execute("COMMIT")
        wrote = time.monotonic() - t0
        before = len(rcv.requests())
        peak = {n: 0 for n in comps}
        t_out = time.monotonic()
        while time.monotonic() - t_out < args.outage_s:
            for n, p in comps.items():
                st = status(p.pid)
                peak[n] = max(peak[n], st.get("VmHWM", 0))
            time.sleep(1.0)
        during = len(rcv.requests()) - before
        rss = {n: status(p.pid).get("VmRSS", 0) for n, p in comps.items()}
        left = con.execute("SELECT count(*) FROM _syncfleet_log").fetchone()[0]
        print("changes: %d committed in %.1f s; target down (%s) for %.0f s" % (
            args.changes, wrote, args.down, args.outage_s))
        for n in ("producer", "router", "worker"):
            print("  %-8s peak RSS %7.1f MiB, RSS at the end %7.1f MiB" % (
                n, peak[n] / 1024.0, rss[n] / 1024.0))
        print("  requests the target received during the outage: %d" % during)
        print("  rows still in the source's log: %d" % left)
        for n, p in comps.items():
            for line in p.stderr().splitlines():
                if "to the DLQ" in line or "circuit" in line or "park" in line:
                    print("  %s: %s" % (n, line[:200]))
                    break
        if args.drain:
            if args.down == "refused":
                print("  (--drain needs --down 503)")
            else:
                t1 = time.monotonic()
                rcv.set_rules([])

                def done():
                    got = {r["path"] for r in rcv.requests()
                           if r["status"] == 200 and r["path"].startswith("/items/")}
                    return len(got) >= args.changes

                sftest.wait_for(done, 3600, "every key's final state")
                print("  drained %d changes %.1f s after the target came back" % (
                    args.changes, time.monotonic() - t1))
    finally:
        for p in procs:
            try:
                os.killpg(p.popen.pid, signal.SIGKILL)
            except OSError:
                pass
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
