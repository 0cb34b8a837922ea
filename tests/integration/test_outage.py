"""A target outage is not a dead letter.

`syncfleet run` on the embedded broker delivers a writer's changes of
SQLite table customers to sf-receiver (PUT /customers/<id>, DELETE on
delete), with retries that would all be spent within a second
(max_attempts 3, backoff 50..400 ms). The receiver then fails in the ways
a real target does:

- it answers 503 for seconds, then recovers;
- it is stopped (connections refused), then started again on its port;
- it goes down again while the records parked meanwhile are delivered;
- it is down when `syncfleet run` stops, and up when it starts again;
- it is down while a file-connector action on the same partition goes on,
  for longer than it takes the worker's held-record cap (lowered to 50
  for the test) to fill;
- one customer's path always answers 500 while the others succeed, and
  another's answers 422;
- and, with the components as separate processes on `syncfleet broker`
  (no parking store: records of the down connector wait in memory), 503
  again.

Asserted: after each outage every change's final state arrives, in source
order per id, nothing lost and nothing dead-lettered; once the circuit
opened the receiver never had two requests in progress at once (its log's
`active`), and got a handful of probes, not a request per record; the
file action delivered every change while the target was down, with the
records of the down connector in the parking store and the process's
memory flat; records parked when the process stopped were delivered by
the next run, once each, in order; the always-500 record reached the DLQ
after exactly its max_attempts, the 422 one after one request.
"""

import datetime
import json
import os
import re
import sqlite3
import subprocess
import time
import unittest

import sftest
from sftest import kcat_consume

MAX_IN_FLIGHT = 8
MAX_ATTEMPTS = 3
OPEN_AFTER = 5       # SF_SCHED_OPEN_AFTER: failures in a row open a circuit
OUTAGE_S = 4.0       # well past MAX_ATTEMPTS tries with 50..400 ms backoff
IDS = range(1, 21)

PIPELINE = """version: 1
name: outage
kafka:
  brokers: embedded
  topic_prefix: out
  partitions: %(partitions)d
source: { type: sqlite, path: %(db)s, poll_interval_ms: 20 }
tables:
  customers: { key: [id] }
connectors:
  webshop:
    type: http
    base_url: "%(url)s"
    timeout_ms: 2000
    max_in_flight: %(in_flight)d
    retry: { max_attempts: %(attempts)d, initial_backoff_ms: 50, max_backoff_ms: 400 }
  archive: { type: file, dir: ./archive, format: jsonl }
messages:
  customer-to-webshop:
    trigger: { table: customers, events: [insert, update, delete] }
    target:
      connector: webshop
      method: PUT
      path: /customers/{{id}}
      on_delete: { method: DELETE }
    mapping: { id: "{{id}}", name: "{{name}}", email: "{{email}}", version: "{{version}}" }
%(archive)s"""

ARCHIVE = """  customer-to-archive:
    trigger: { table: customers, events: [insert, update] }
    target: { connector: archive }
    mapping: { id: "{{id}}", version: "{{version}}" }
"""


def sanitized_build():
    """Whether the binaries are built with -fsanitize=address: ASan keeps
    freed memory in quarantine, so its RSS grows with every allocation."""
    with open(os.path.join(sftest.env_path("SF_BUILD_DIR"), "CMakeCache.txt")) as f:
        return any(re.match(r"^SANITIZE:BOOL=(ON|1|TRUE|YES)$", line.strip(), re.I)
                   for line in f)


def vmrss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


class Receivers:
    """The requests of several receivers that stood for one target in
    turn, in the order they served it."""

    def __init__(self, *receivers):
        self.receivers = receivers

    def requests(self, path=None):
        return [r for rcv in self.receivers for r in rcv.requests(path)]


class OutageTest(sftest.TestCase):

    def start_run(self, url, archive=False, partitions=2, env=None):
        """`syncfleet run` on the pipeline; returns (process, writer,
        embedded broker address)."""
        writer = sftest.ChangeWriter(self.tmp.join("erp.db"), 8)
        self.addCleanup(writer.close)
        config = self.tmp.write("pipeline.yaml", PIPELINE % {
            "partitions": partitions, "db": json.dumps(self.tmp.join("erp.db")),
            "url": url, "in_flight": MAX_IN_FLIGHT, "attempts": MAX_ATTEMPTS,
            "archive": ARCHIVE if archive else ""})
        self.config = config
        run = self.start([sftest.env_path("SYNCFLEET"), "run", "-c", config], "run",
                         env=dict(os.environ, **(env or {})))
        run.wait_line(r"running pipeline outage", timeout=30, stream="stderr")
        broker = run.wait_line(r"embedded broker at (\S+)", stream="stderr").group(1)
        writer.wait_capturing(run)
        return run, writer, broker

    def warm_up(self, rcv, run, writer, ids=IDS):
        writer.insert(ids)
        sftest.wait_converged(rcv, writer, ids, 30, [run])

    def assert_delivered(self, rcv, run, writer, ids=IDS):
        """Every change of IDS arrives, in order per id."""
        by_id = sftest.wait_converged(rcv, writer, ids, 60, [run])
        self.assertEqual([], sftest.lost_changes(by_id, writer, ids),
                         "every committed change arrived")
        self.assertEqual([], sftest.order_problems(by_id, writer, ids),
                         "each id's requests arrived in source order, retries included")

    def dead_letters(self):
        """The embedded mode's dead-letter store, through `syncfleet dlq
        list --json`: one dict per dead letter."""
        res = subprocess.run([sftest.env_path("SYNCFLEET"), "dlq", "list", "--json",
                              "-c", self.config], capture_output=True, text=True)
        self.assertEqual(res.returncode, 0, res.stderr)
        return [json.loads(line) for line in res.stdout.splitlines()]

    def assert_nothing_dead(self, run, broker=None, prefix="out"):
        """Nothing in the DLQ: the embedded mode's store, or with BROKER
        the topic PREFIX.dlq of a pipeline on a broker address."""
        if broker is None:
            got = [(d["key"], d["error"]) for d in self.dead_letters()]
        else:
            got = [(r["key"], r["headers"].get("syncfleet-error"))
                   for r in kcat_consume(broker, prefix + ".dlq")]
        self.assertEqual([], got, "nothing went to the DLQ")
        self.assertNotRegex(run.stderr(), r" to the DLQ: ")

    def assert_one_probe_at_a_time(self, proc, outage, in_flight):
        """OUTAGE: the receiver's requests while it answered 503; PROC
        logged when the circuit opened. Requests on the wire then (each
        answered within delay_ms) may overlap; once they are answered,
        every request is a probe, sent only when nothing else of the
        connector is in flight."""
        self.assertTrue(outage, "the worker tried the target while it was down")
        self.assertEqual({r["status"] for r in outage}, {503}, outage[:3])
        opened = proc.wait_line(r"^(\S+) warn +\w+: connector webshop is down",
                                stream="stderr").group(1)
        opened_ms = datetime.datetime.strptime(opened, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp() * 1000
        probes = [r for r in outage if r["ts_ms"] > opened_ms + 1000]
        self.assertTrue(probes, "the worker probed the down target (%d requests)" % len(outage))
        crowded = [r for r in probes if r["active"] != 1]
        self.assertEqual([], [(r["seq"], r["path"], r["active"]) for r in crowded],
                         "once the circuit opened, the receiver had one request at a time")
        # Before the circuit opened at most IN_FLIGHT + OPEN_AFTER - 1
        # requests were sent (each failure before the last frees a slot),
        # then a probe at most every initial_backoff_ms (50), usually far
        # fewer; a request per record and retry would be thousands.
        span_ms = outage[-1]["ts_ms"] - outage[0]["ts_ms"]
        self.assertLessEqual(len(outage), in_flight + OPEN_AFTER - 1 + span_ms / 50 + 1,
                             "requests over %d ms of outage: %d" % (span_ms, len(outage)))
        return len(outage)

    def assert_logged_outage(self, run, connector="webshop", parked=True):
        log = run.stderr()
        down = re.findall(r"connector %s is down: circuit open after %d failed requests "
                          r"in a row, the last: (.*?); one probe" % (connector, OPEN_AFTER), log)
        up = re.findall(r"connector %s is up again: circuit closed after ([\d.]+) s open; "
                        r"meanwhile (\d+) records parked, (\d+) held in memory, (\d+) probes"
                        % connector, log)
        self.assertEqual(len(down), 1, "one line when the circuit opened:\n" + log[-3000:])
        self.assertEqual(len(up), 1, "one line when it closed:\n" + log[-3000:])
        seconds, parked_n, held, probes = up[0]
        self.assertGreaterEqual(float(seconds), OUTAGE_S - 1)
        self.assertGreater(int(parked_n) + int(held), 0, "records waited")
        self.assertGreater(int(probes), 0)
        if parked:
            self.assertGreater(int(parked_n), 0, "records were parked")
        else:
            self.assertEqual(int(parked_n), 0, "nothing parked without a parking store")
        return down[0]

    # --- the tests ---------------------------------------------------------

    def test_503_outage_holds_records_and_probes_one_at_a_time(self):
        rcv = self.receiver()
        run, writer, broker = self.start_run(rcv.url)
        self.warm_up(rcv, run, writer)

        rcv.set_rules([{"path": "/customers/*", "status": 503, "delay_ms": 50}])
        down_from = len(rcv.requests())
        writer.start(IDS, delete_ratio=0.1, pause=0.02)
        self.addCleanup(writer.stop)
        run.wait_line(r"connector webshop is down", timeout=20, stream="stderr")
        time.sleep(OUTAGE_S)  # changes keep coming while the target is down
        writer.stop()
        outage = rcv.requests()[down_from:]
        rcv.set_rules([])

        self.assert_delivered(rcv, run, writer)
        self.assert_nothing_dead(run)
        total = self.assert_one_probe_at_a_time(run, outage, MAX_IN_FLIGHT)
        reason = self.assert_logged_outage(run)
        self.assertRegex(reason, r"^HTTP 503 from (PUT|DELETE) %s/customers/\d+: " % rcv.url)
        print("outage: %d changes, %d requests to the target while it was down" % (
            writer.changes, total))
        run.stop(timeout=20)

    def test_refused_connections_outage(self):
        rcv = self.receiver()
        run, writer, broker = self.start_run(rcv.url)
        self.warm_up(rcv, run, writer)

        rcv.stop()
        writer.start(IDS, delete_ratio=0.1, pause=0.02)
        self.addCleanup(writer.stop)
        run.wait_line(r"connector webshop is down", timeout=20, stream="stderr")
        time.sleep(OUTAGE_S)
        writer.stop()
        rcv2 = self.receiver(name="receiver-2", port=rcv.port)

        self.assert_delivered(Receivers(rcv, rcv2), run, writer)
        self.assert_nothing_dead(run)
        reason = self.assert_logged_outage(run)
        self.assertRegex(reason, r"^(PUT|DELETE) %s/customers/\d+: Couldn't connect to server"
                         % rcv.url)
        run.stop(timeout=20)

    def test_target_down_again_while_parked_records_drain(self):
        """The target goes down a second time while the records parked
        during its first outage are being delivered: those not delivered
        yet go back to the parking store, in their place, and still arrive
        in order."""
        slow_ok = [{"path": "/customers/*", "delay_ms": 20}]  # a drain of seconds
        down = [{"path": "/customers/*", "status": 503}]
        rcv = self.receiver(slow_ok)
        run, writer, broker = self.start_run(rcv.url)
        self.warm_up(rcv, run, writer)

        rcv.set_rules(down)
        writer.random_changes(IDS, count=600, delete_ratio=0.1, pause=0.002)
        run.wait_line(r"connector webshop is down", timeout=20, stream="stderr")
        first = len(rcv.requests())
        rcv.set_rules(slow_ok)
        sftest.wait_for(lambda: sum(1 for r in rcv.requests()[first:] if sftest.is_2xx(r)) >= 40,
                        20, "the parked records to start arriving")
        rcv.set_rules(down)
        def open_again():
            # (a request that succeeded on the wire may close it once more)
            log = run.stderr()
            downs, ups = log.count("connector webshop is down"), log.count("is up again")
            return downs >= 2 and downs > ups

        sftest.wait_for(open_again, 20, "the circuit to open again")
        delivered = sum(1 for r in rcv.requests()[first:] if sftest.is_2xx(r))
        self.assertLess(delivered, writer.changes,
                        "the second outage came while parked records were still being "
                        "delivered")
        writer.random_changes(IDS, count=100, delete_ratio=0.1, pause=0.002)
        time.sleep(1.0)
        rcv.set_rules(slow_ok)

        self.assert_delivered(rcv, run, writer)
        self.assert_nothing_dead(run)
        run.stop(timeout=20)

    def test_parked_records_survive_a_restart(self):
        """SIGTERM during an outage: what was parked stays in the store,
        and the next run delivers it, in order, before anything else."""
        rcv = self.receiver()
        run, writer, broker = self.start_run(rcv.url)
        self.warm_up(rcv, run, writer)
        rcv.set_rules([{"path": "/customers/*", "status": 503}])
        writer.random_changes(IDS, count=200, delete_ratio=0.1, pause=0.002)
        run.wait_line(r"connector webshop is down", timeout=20, stream="stderr")
        store = self.tmp.join(".syncfleet", "outage", "parked.db")

        def parked():
            with sqlite3.connect(store) as db:
                return [(json.loads(k)["key"]["id"], json.loads(v)["event_id"])
                        for k, v in db.execute("SELECT qkey, rec_value FROM parked ORDER BY id")]

        sftest.wait_for(lambda: len(parked()) >= 150, 20, "the changes to be parked")
        run.stop(timeout=20)
        before = parked()
        self.assertGreaterEqual(len(before), 150)

        rcv.set_rules([])
        run2 = self.start([sftest.env_path("SYNCFLEET"), "run", "-c",
                           self.tmp.join("pipeline.yaml")], "run-2")
        run2.wait_line(r"customer-to-webshop: %d parked records to deliver first" % len(before),
                       timeout=30, stream="stderr")
        sftest.wait_for(lambda: not parked(), 30, "the parked records to be delivered")
        arrived = {}
        for r in rcv.requests():
            if sftest.is_2xx(r):
                arrived.setdefault(int(r["path"].rsplit("/", 1)[1]), []).append(
                    r["headers"]["idempotency-key"])
        for cid in IDS:
            want = [e for i, e in before if i == cid]
            got = [e for e in arrived.get(cid, []) if e in want]
            self.assertEqual(got, want, "id %d: its parked changes arrived once each, in order"
                             % cid)
        self.assert_nothing_dead(run2)
        run2.stop(timeout=20)

    def test_file_action_keeps_flowing_while_http_target_is_down(self):
        held_cap = 50
        changes = 8 * held_cap
        rcv = self.receiver()
        # one partition: every record of both actions shares it
        run, writer, broker = self.start_run(
            rcv.url, archive=True, partitions=1,
            env={"SYNCFLEET_WORKER_MAX_HELD": str(held_cap)})
        archive = self.tmp.join("archive", "customer-to-archive.jsonl")

        def archived():
            try:
                with open(archive) as f:
                    return [json.loads(line) for line in f if line.endswith("\n")]
            except FileNotFoundError:
                return []

        def all_archived():
            want = {(cid, v) for cid, hist in writer.history.items() for _, v in hist}
            got = {(d["id"], d["version"]) for d in archived()}
            return want <= got

        self.warm_up(rcv, run, writer)
        sftest.wait_for(all_archived, 20, "the warm-up inserts in the archive")

        rcv.set_rules([{"path": "/customers/*", "status": 503}])
        writer.random_changes(IDS, count=changes // 4, delete_ratio=0, pause=0.005)
        run.wait_line(r"connector webshop is down", timeout=20, stream="stderr")
        sftest.wait_for(all_archived, 30, "the archive to keep up while the webshop is down")
        rss_before = vmrss_kib(run.pid)
        writer.random_changes(IDS, count=changes - changes // 4, delete_ratio=0,
                              pause=0.005)
        sftest.wait_for(all_archived, 60, "every change archived while the webshop is down "
                        "(%d changes, the worker holds at most %d)" % (changes, held_cap))
        rss_after = vmrss_kib(run.pid)
        self.assertEqual(rcv.requests()[-1]["status"], 503, "the webshop was still down")
        with sqlite3.connect(self.tmp.join(".syncfleet", "outage", "parked.db")) as db:
            parked = db.execute("SELECT count(*) FROM parked").fetchone()[0]
        print("while down: %d changes archived, %d webshop records parked, VmRSS %d -> %d KiB"
              % (changes, parked, rss_before, rss_after))
        self.assertGreaterEqual(parked, changes - held_cap,
                                "the down connector's records wait in the parking store")
        if not sanitized_build():
            self.assertLess(rss_after - rss_before, 32 * 1024,
                            "memory stays flat while records of the down connector pile up")

        rcv.set_rules([])
        self.assert_delivered(rcv, run, writer)
        self.assert_nothing_dead(run)
        sftest.wait_for(lambda: sqlite3.connect(self.tmp.join(".syncfleet", "outage",
                                                              "parked.db")).execute(
            "SELECT count(*) FROM parked").fetchone()[0] == 0, 10,
            "the parking store to empty once the records were delivered")
        run.stop(timeout=20)

    def test_record_failing_alone_is_dead_lettered_after_its_attempts(self):
        always_500, rejected = 7, 9
        others = [i for i in IDS if i not in (always_500, rejected)]
        rcv = self.receiver([
            {"path": "/customers/%d" % always_500, "status": 500},
            {"path": "/customers/%d" % rejected, "status": 422,
             "body": '{"error":"email taken"}'}])
        run, writer, broker = self.start_run(rcv.url)
        self.warm_up(rcv, run, writer, others)
        writer.transaction([("c", always_500), ("c", rejected)])
        # the others keep succeeding while the two fail
        writer.start(others, delete_ratio=0, pause=0.01)
        self.addCleanup(writer.stop)
        dlq = sftest.wait_for(lambda: (lambda d: d if len(d) >= 2 else None)(
            self.dead_letters()), 30, "two dead letters in the store")
        writer.stop()
        self.assert_delivered(rcv, run, writer, others)

        by_id = sftest.customer_requests(rcv)
        dead = {json.loads(d["key"])["key"]["id"]: d for d in dlq}
        self.assertEqual(set(dead), {always_500, rejected})
        self.assertEqual(dead[always_500]["attempts"], MAX_ATTEMPTS)
        self.assertRegex(dead[always_500]["error"],
                         r"customer-to-webshop: gave up after %d attempts: HTTP 500 from PUT "
                         % MAX_ATTEMPTS)
        self.assertGreaterEqual(len(by_id[always_500]), MAX_ATTEMPTS)
        self.assertEqual({r["status"] for r in by_id[always_500]}, {500})
        self.assertEqual(dead[rejected]["attempts"], 1)
        self.assertRegex(dead[rejected]["error"],
                         r"customer-to-webshop: HTTP 422 from PUT .*email taken")
        self.assertEqual([r["status"] for r in by_id[rejected]], [422],
                         "a 422 goes to the DLQ after one request")
        self.assertEqual(len(self.dead_letters()), 2, "nothing else in the DLQ")
        run.stop(timeout=20)

    def test_503_outage_without_parking_store(self):
        """Separate processes on `syncfleet broker`: no parking store, so
        the records of the down connector wait in the worker's memory with
        their attempts frozen; nothing is dead-lettered either."""
        rcv = self.receiver()
        pipe = self.pipeline("mem%d" % os.getpid(), rcv, partitions=2, max_attempts=MAX_ATTEMPTS)
        writer = sftest.ChangeWriter(pipe.db_path, 9)
        self.addCleanup(writer.close)
        procs = [pipe.producer(), pipe.router(), pipe.worker()]
        writer.wait_capturing(procs[0])
        writer.insert(IDS)
        sftest.wait_converged(rcv, writer, IDS, 30, procs)

        rcv.set_rules([{"path": "/customers/*", "status": 503, "delay_ms": 50}])
        down_from = len(rcv.requests())
        writer.start(IDS, delete_ratio=0.1, pause=0.02)
        self.addCleanup(writer.stop)
        procs[2].wait_line(r"connector webshop is down", timeout=20, stream="stderr")
        time.sleep(OUTAGE_S)
        writer.stop()
        outage = rcv.requests()[down_from:]
        rcv.set_rules([])

        by_id = sftest.wait_converged(rcv, writer, IDS, 60, procs)
        self.assertEqual([], sftest.lost_changes(by_id, writer, IDS))
        self.assertEqual([], sftest.order_problems(by_id, writer, IDS))
        self.assert_nothing_dead(procs[2], pipe.bootstrap, pipe.prefix)
        self.assert_one_probe_at_a_time(procs[2], outage, 16)  # pipeline_yaml's max_in_flight
        self.assert_logged_outage(procs[2], parked=False)
        sftest.stop_cleanly(self, procs)


if __name__ == "__main__":
    unittest.main()
