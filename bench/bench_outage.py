#!/usr/bin/env python3
"""What a target sees during an outage (standard library only).

Starts sf-receiver and `syncfleet run` (embedded broker, SQLite source, one
message PUT /items/<id> to the receiver), delivers one change per key,
then makes the receiver answer every request 503 for --outage-s seconds
(or, with --refuse, stops it so connections are refused) while a writer
keeps committing --rate changes/s over --keys keys. Then the receiver
answers 200 again, and the run waits until every key's final state
arrived. It prints:

  - requests the target received during the outage, and the most it was
    handling at once (the receiver's `active` field, when it has one);
  - the final states that arrived after recovery, and how long it took;
  - the dead letters: records in the embedded broker's PREFIX.dlq topic
    (read with kcat) and the process's "to the DLQ" log lines;
  - VmRSS of `syncfleet run` early and late in the outage.

It asserts nothing; the exit status is non-zero only when no figures could
be taken.

    bench/bench_outage.py                       # 60 s of 503
    bench/bench_outage.py --outage-s 45 --refuse
    bench/bench_outage.py --retry 8,50,500      # max_attempts,initial,max
"""

import argparse
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

PIPELINE = """\
version: 1
name: bench-outage
kafka: {{ brokers: embedded, topic_prefix: outage, partitions: 4 }}
source: {{ type: sqlite, path: {db}, poll_interval_ms: 20 }}
tables:
  items: {{ key: [id] }}
connectors:
  receiver:
    type: http
    base_url: http://127.0.0.1:{port}
    timeout_ms: 2000
{retry}
messages:
  items-to-receiver:
    trigger: {{ table: items, events: [insert, update] }}
    target: {{ connector: receiver, method: PUT, path: "/items/{{{{id}}}}" }}
    mapping: {{ id: "{{{{id}}}}", version: "{{{{version}}}}" }}
"""


def proc_rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class Proc:
    def __init__(self, argv, name, work):
        self.err = os.path.join(work, name + ".err")
        self.out = os.path.join(work, name + ".out")
        with open(self.out, "wb") as o, open(self.err, "wb") as e:
            self.popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=o,
                                          stderr=e, start_new_session=True)

    def text(self, which="err"):
        with open(self.err if which == "err" else self.out, errors="replace") as f:
            return f.read()

    def wait_line(self, regex, which, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(regex, self.text(which), re.M)
            if m:
                return m
            if self.popen.poll() is not None:
                break
            time.sleep(0.05)
        raise SystemExit("no line matching %r in %s" % (regex, self.err))

    def stop(self):
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()


class Receiver:
    def __init__(self, binary, work, port=0):
        self.log = os.path.join(work, "receiver.jsonl")
        self.binary, self.work = binary, work
        self.proc = None
        self.start(port)

    def start(self, port):
        self.proc = Proc([self.binary, "--log", self.log + (".%d" % time.time_ns()),
                          "--port", str(port)], "receiver", self.work)
        m = self.proc.wait_line(r"listening on 127\.0\.0\.1:(\d+)", "out", 10)
        self.port = int(m.group(1))

    def set_rules(self, rules):
        req = urllib.request.Request("http://127.0.0.1:%d/__rules" % self.port,
                                     data=json.dumps(rules).encode(), method="PUT")
        urllib.request.urlopen(req, timeout=10).read()

    def requests(self):
        out = []
        for name in sorted(os.listdir(self.work)):
            if not name.startswith("receiver.jsonl."):
                continue
            with open(os.path.join(self.work, name)) as f:
                for line in f:
                    if line.endswith("\n"):
                        out.append(json.loads(line))
        return out


def main():
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    build = os.environ.get("SF_BUILD_DIR", os.path.join(top, "build"))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--syncfleet", default=os.path.join(build, "cli", "syncfleet"))
    ap.add_argument("--receiver", default=os.path.join(build, "tests", "tools", "sf-receiver"))
    ap.add_argument("--outage-s", type=float, default=60.0)
    ap.add_argument("--keys", type=int, default=50)
    ap.add_argument("--rate", type=float, default=20.0, help="changes/s during the outage")
    ap.add_argument("--refuse", action="store_true", help="stop the receiver instead of 503")
    ap.add_argument("--retry", default="",
                    help="max_attempts,initial_backoff_ms,max_backoff_ms (default: the "
                         "connector's defaults)")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    for b in (args.syncfleet, args.receiver):
        if not os.access(b, os.X_OK):
            sys.exit("missing %s (build first)" % b)

    work = tempfile.mkdtemp(prefix="bench-outage-")
    rcv = Receiver(args.receiver, work)
    retry = ""
    if args.retry:
        a, i, m = (int(x) for x in args.retry.split(","))
        retry = ("    retry: { max_attempts: %d, initial_backoff_ms: %d, "
                 "max_backoff_ms: %d }" % (a, i, m))
    db_path = os.path.join(work, "erp.db")
    db = sqlite3.connect(db_path, isolation_level=None, timeout=20)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, version INTEGER)")
    pipeline = os.path.join(work, "pipeline.yaml")
    with open(pipeline, "w") as f:
        f.write(PIPELINE.format(db=json.dumps(db_path), port=rcv.port, retry=retry))
    sf = Proc([args.syncfleet, "run", "-c", pipeline], "syncfleet", work)
    try:
        sf.wait_line(r" run: running pipeline", "err", 60)
        broker = sf.wait_line(r"embedded broker at (\S+)", "err", 5).group(1)
        versions = {}

        def change(cid):
            versions[cid] = versions.get(cid, 0) + 1
            if versions[cid] == 1:
                db.execute("INSERT INTO items VALUES (?, ?)", (cid, 1))
            else:
                db.execute("UPDATE items SET version = ? WHERE id = ?", (versions[cid], cid))

        def final_arrived(reqs):
            last = {}
            for r in reqs:
                if 200 <= r["status"] < 300 and r["path"].startswith("/items/"):
                    body = json.loads(r["body"])
                    last[body["id"]] = max(last.get(body["id"], 0), body["version"])
            return sum(1 for cid, v in versions.items() if last.get(cid) == v)

        for cid in range(1, args.keys + 1):
            change(cid)
        deadline = time.monotonic() + 60
        while final_arrived(rcv.requests()) < args.keys and time.monotonic() < deadline:
            time.sleep(0.1)

        if args.refuse:
            port = rcv.port
            rcv.proc.stop()
        else:
            rcv.set_rules([{"path": "/*", "status": 503}])
        t0 = time.time() * 1000
        rss = []
        written, cid = 0, 0
        start = time.monotonic()
        while time.monotonic() - start < args.outage_s:
            elapsed = time.monotonic() - start
            while written < elapsed * args.rate:
                change(cid % args.keys + 1)
                cid += 1
                written += 1
            if not rss and elapsed > args.outage_s * 0.25:
                rss.append(proc_rss_kib(sf.popen.pid))
            time.sleep(0.02)
        rss.append(proc_rss_kib(sf.popen.pid))
        t1 = time.time() * 1000
        if args.refuse:
            rcv.start(port)
        else:
            rcv.set_rules([])
        recovered = time.monotonic()
        deadline = recovered + 120
        while final_arrived(rcv.requests()) < args.keys and time.monotonic() < deadline:
            time.sleep(0.1)
        converged = time.monotonic() - recovered
        reqs = rcv.requests()
        during = [r for r in reqs if t0 <= r["ts_ms"] <= t1]
        active = [r.get("active") for r in during if r.get("active") is not None]
        dlq = subprocess.run(["kcat", "-C", "-b", broker, "-t", "outage.dlq", "-e", "-q",
                              "-f", "%o\\n"], capture_output=True, text=True, timeout=30)
        dlq_n = len(dlq.stdout.split()) if dlq.returncode == 0 else None
        log = sf.text()
        print("outage: %.0f s of %s, %d changes written during it over %d keys" % (
            args.outage_s, "refused connections" if args.refuse else "503", written, args.keys))
        print("requests the target received during the outage: %d" % len(during))
        if active:
            print("most requests in progress at once during the outage: %d" % max(active))
        print("final states arrived: %d of %d, %.1f s after recovery" % (
            final_arrived(reqs), args.keys, converged))
        print("records in outage.dlq: %s; records logged as sent to the DLQ: %d" % (
            dlq_n, len(re.findall(r" to the DLQ: ", log))))
        print("VmRSS of syncfleet run at 25%% and 100%% of the outage: %s KiB, %s KiB" % (
            rss[0], rss[-1]))
        for line in log.splitlines():
            if "circuit" in line:
                print("  log: " + line)
    finally:
        sf.stop()
        rcv.proc.stop()
        db.close()
        if args.keep:
            print("kept %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
