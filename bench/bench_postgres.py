"""Benchmark of syncfleet's PostgreSQL change capture (run through
bench_postgres.sh).

On one PostgreSQL 15 server started for the run (tests/integration/sfpg.py):

1. Throughput, for two workloads written while nothing reads the slots:
   N single-row updates (one transaction each), and N inserted rows in
   large transactions (100,000 rows each). The same WAL is read twice:
   - pg_recvlogical on its own slot (pgoutput, proto_version 1, the same
     publication), writing to /dev/null and stopping at the workload's end
     LSN: changes decoded per second;
   - `syncfleet producer` on its slot, publishing to `syncfleet broker`:
     changes per second from the moment it starts streaming until the
     slot's confirmed_flush_lsn reaches the end LSN, which syncfleet only
     confirms once every change up to it was delivered to the broker.
   The ratio syncfleet / pg_recvlogical is printed (target: >= 0.8).
2. Latency at a steady rate (default 5,000 changes/s, single-row insert
   transactions paced by a procedure in the server) while the producer
   streams: from the commit (the envelope's ts_ms, the commit time
   PostgreSQL records) to the record's arrival at a kcat consumer of the
   sync-log; p50, p99 and max. The consumer's own fetch delay is included,
   so these are upper bounds for the sync-log.
3. The producer's peak resident memory (VmHWM) over the run.

Prints one block of figures; exits non-zero when something fails.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import sfpg  # noqa: E402
import sftest  # noqa: E402

PIPELINE = """version: 1
name: bench-postgres
kafka: {{ brokers: embedded, topic_prefix: bench, partitions: {partitions} }}
source:
  type: postgres
  dsn: "{dsn}"
  slot: {slot}
  publication: syncfleet
  snapshot: never
tables:
  bench_items: {{ key: [id] }}
  bench_latency: {{ key: [id] }}
connectors:
  out: {{ type: file, dir: ./out, format: jsonl }}
messages:
  items:
    trigger: {{ table: bench_items, events: [insert, update, delete] }}
    target: {{ connector: out }}
    mapping: {{ id: "{{{{id}}}}" }}
  latency:
    trigger: {{ table: bench_latency, events: [insert] }}
    target: {{ connector: out }}
    mapping: {{ id: "{{{{id}}}}" }}
"""

SCHEMA = """
CREATE TABLE bench_items(id int PRIMARY KEY, name text NOT NULL,
                         qty int NOT NULL, price numeric(12,2) NOT NULL,
                         updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE bench_latency(id int PRIMARY KEY,
                           at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE PROCEDURE bench_updates(n int, keys int) LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1..n LOOP
    UPDATE bench_items SET qty = qty + 1, updated_at = now()
     WHERE id = 1 + (i % keys);
    COMMIT;
  END LOOP;
END $$;
CREATE PROCEDURE bench_paced(rate int, seconds int) LANGUAGE plpgsql AS $$
DECLARE
  t0 timestamptz := clock_timestamp();
  ahead float8;
BEGIN
  FOR i IN 1..rate * seconds LOOP
    INSERT INTO bench_latency(id) VALUES (i);
    COMMIT;
    IF i % 25 = 0 THEN
      ahead := i::float8 / rate - extract(epoch FROM clock_timestamp() - t0);
      IF ahead > 0 THEN PERFORM pg_sleep(ahead); END IF;
    END IF;
  END LOOP;
END $$;
"""


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def vm_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = sftest.TempDir(prefix="sfbench-pg-")
        self.pg = sfpg.Postgres(settings={"max_wal_size": "'8GB'"})
        self.pg.createdb("bench")
        self.pg.script(SCHEMA, db="bench")
        self.pg.sql("CREATE PUBLICATION syncfleet FOR TABLE bench_items, bench_latency "
                    "WITH (publish = 'insert, update, delete, truncate')", db="bench")
        self.broker = sftest.Broker(partitions=args.partitions, prefix="bench",
                                    directory=self.tmp.path, binary=args.syncfleet)
        self.producer = None
        self.peak_kib = 0

    def close(self):
        self.stop_producer()
        try:
            self.broker.stop()
        finally:
            self.pg.stop("immediate")
            self.tmp.cleanup()

    def pipeline(self, slot):
        return self.tmp.write("pipeline-%s.yaml" % slot, PIPELINE.format(
            partitions=self.args.partitions, dsn=self.pg.dsn("bench"), slot=slot))

    def create_slots(self, name):
        for slot in ("sf_" + name, "rl_" + name):
            self.pg.sql("SELECT pg_create_logical_replication_slot('%s', 'pgoutput')" % slot,
                        db="bench")

    def drop_slots(self, name):
        for slot in ("sf_" + name, "rl_" + name):
            self.pg.sql("SELECT pg_drop_replication_slot('%s')" % slot, db="bench")

    def start_producer(self, slot):
        self.producer = sftest.Proc(
            [self.args.syncfleet, "producer", "-c", self.pipeline(slot), "--brokers",
             self.broker.bootstrap], "producer-" + slot, self.tmp.path,
            env={"SYNCFLEET_LOG": "info"})
        sftest.wait_for(lambda: (self.producer.assert_running() or
                                 "streaming slot" in self.producer.stderr()),
                        120, "the producer to start streaming", interval=0.005)
        return time.monotonic()

    def stop_producer(self):
        if self.producer and self.producer.running():
            self.peak_kib = max(self.peak_kib, vm_hwm_kib(self.producer.pid))
            self.producer.stop(60)
        self.producer = None

    def recvlogical(self, slot, end):
        argv = [os.path.join(sfpg.PG_BIN, "pg_recvlogical"), "-d", self.pg.dsn("bench"),
                "-S", slot, "--start", "-E", sfpg.lsn_text(end), "-o", "proto_version=1",
                "-o", "publication_names=syncfleet", "-f", "/dev/null", "--no-loop",
                "-s", "10"]
        t0 = time.monotonic()
        res = subprocess.run(argv, capture_output=True, timeout=3600)
        elapsed = time.monotonic() - t0
        if res.returncode != 0:
            raise RuntimeError("pg_recvlogical failed: %s" % res.stderr.decode())
        return elapsed

    def syncfleet_catchup(self, slot, end):
        t0 = self.start_producer(slot)
        while True:
            s = self.pg.slot(slot)
            if s["confirmed_flush_lsn"] is not None and s["confirmed_flush_lsn"] >= end:
                break
            self.producer.assert_running()
            self.peak_kib = max(self.peak_kib, vm_hwm_kib(self.producer.pid))
            time.sleep(0.01)
        elapsed = time.monotonic() - t0
        self.stop_producer()
        return elapsed

    def throughput(self, name, changes, workload):
        self.create_slots(name)
        log("%s: writing %d changes" % (name, changes))
        t0 = time.monotonic()
        workload()
        end = self.pg.wal_lsn()
        log("%s: written in %.1fs; WAL %d MiB" % (
            name, time.monotonic() - t0,
            (end - sfpg.lsn(self.pg.value("SELECT restart_lsn FROM pg_replication_slots "
                                          "WHERE slot_name = 'sf_%s'" % name))) >> 20))
        rl = self.recvlogical("rl_" + name, end)
        log("%s: pg_recvlogical %.2fs" % (name, rl))
        sf = self.syncfleet_catchup("sf_" + name, end)
        log("%s: syncfleet %.2fs" % (name, sf))
        self.drop_slots(name)
        return changes / rl, changes / sf

    def latency(self):
        a = self.args
        slot = "sf_latency"
        self.pg.sql("SELECT pg_create_logical_replication_slot('%s', 'pgoutput')" % slot,
                    db="bench")
        self.start_producer(slot)
        out_path = os.path.join(self.tmp.path, "latency.jsonl")
        arrivals = []
        kcat = subprocess.Popen(
            ["kcat", "-C", "-b", self.broker.bootstrap, "-t", "bench.sync-log", "-J", "-u",
             "-q", "-o", "end", "-X", "fetch.wait.max.ms=5", "-X", "fetch.error.backoff.ms=5"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)

        def reader():
            for line in kcat.stdout:
                arrivals.append((time.time(), line))

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        time.sleep(2)  # the consumer is assigned and at the end
        log("latency: %d changes/s for %ds" % (a.rate, a.seconds))
        self.pg.sql("CALL bench_paced(%d, %d)" % (a.rate, a.seconds), db="bench",
                    timeout=a.seconds * 10 + 60)
        want = a.rate * a.seconds
        deadline = time.monotonic() + 60
        while len(arrivals) < want and time.monotonic() < deadline:
            time.sleep(0.1)
        kcat.kill()
        kcat.wait()
        self.peak_kib = max(self.peak_kib, vm_hwm_kib(self.producer.pid))
        self.stop_producer()
        lat = []
        first = None
        for arrived, line in arrivals:
            rec = json.loads(line)
            value = json.loads(rec["payload"])
            if value["source"]["table"] != "bench_latency":
                continue
            ts = value["ts_ms"] / 1000.0
            first = ts if first is None else min(first, ts)
            lat.append((ts, (arrived - ts) * 1000.0))
        if len(lat) < want:
            raise RuntimeError("latency run: %d of %d records arrived" % (len(lat), want))
        # the first second warms up
        steady = sorted(ms for ts, ms in lat if ts >= first + 1.0)
        span = max(ts for ts, _ in lat) - first
        pct = lambda p: steady[min(len(steady) - 1, int(len(steady) * p))]
        return {"rate": len(lat) / span if span > 0 else 0, "p50": pct(0.50),
                "p99": pct(0.99), "max": steady[-1], "n": len(lat)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--syncfleet", required=True)
    ap.add_argument("--updates", type=int, default=1000000)
    ap.add_argument("--rows", type=int, default=1000000)
    ap.add_argument("--tx-rows", type=int, default=100000)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--partitions", type=int, default=6)
    args = ap.parse_args()

    b = Bench(args)
    try:
        keys = min(100000, max(1, args.updates))
        b.pg.sql("INSERT INTO bench_items(id, name, qty, price) SELECT g, 'item ' || g, 0, "
                 "g / 100.0 FROM generate_series(1, %d) g" % keys, db="bench")
        b.pg.sql("CHECKPOINT", db="bench")
        upd = b.throughput("updates", args.updates, lambda: b.pg.sql(
            "CALL bench_updates(%d, %d)" % (args.updates, keys), db="bench", timeout=3600))

        def big_tx():
            done = 0
            while done < args.rows:
                n = min(args.tx_rows, args.rows - done)
                b.pg.sql("INSERT INTO bench_items(id, name, qty, price) SELECT g, 'row ' || g, "
                         "g %% 1000, g / 100.0 FROM generate_series(%d, %d) g" % (
                             keys + done + 1, keys + done + n), db="bench", timeout=3600)
                done += n

        ins = b.throughput("inserts", args.rows, big_tx)
        lat = b.latency()
    finally:
        b.close()

    print("PostgreSQL capture benchmark (%d CPUs)" % os.cpu_count())
    for name, n, (rl, sf) in (("single-row updates", args.updates, upd),
                              ("rows in large transactions", args.rows, ins)):
        print("  %-28s %8d changes: pg_recvlogical %9.0f/s  syncfleet %9.0f/s  "
              "ratio %.2f" % (name, n, rl, sf, sf / rl))
    print("  latency commit -> sync-log at %.0f changes/s (%d changes): p50 %.1f ms, "
          "p99 %.1f ms, max %.1f ms" % (lat["rate"], lat["n"], lat["p50"], lat["p99"],
                                         lat["max"]))
    print("  producer peak memory (VmHWM): %.1f MiB" % (b.peak_kib / 1024.0))


if __name__ == "__main__":
    main()
