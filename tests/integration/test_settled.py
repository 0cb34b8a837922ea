"""Settled acknowledgement on the embedded broker: nothing is lost across a
restart, a SIGTERM or a kill -9, although the broker keeps nothing.

On `kafka.brokers: embedded` the source is the durable log: a captured
change leaves the SQLite log table only once its target accepted it (or it
was dead-lettered). These tests stop and kill `syncfleet run` while
changes wait for a target, start it again, and check with the receiver's
log that every committed change arrived (each version, each delete), every
id's final state arrived last, and that the duplicates a replay causes stay
within what was not settled when the process died.

Kills are timed to the moment that matters: when the sync-log holds changes
the target has not received yet, which a producer acknowledging on Kafka's
delivery report would already have deleted from the source.
"""

import json
import os
import signal
import sqlite3
import subprocess
import time
import unittest

import sfpg
import sftest

IDS = range(1, 41)

PIPELINE = """\
version: 1
name: %(name)s
kafka:
  brokers: embedded
  topic_prefix: %(prefix)s
  partitions: 3
  config: { session.timeout.ms: "4000", heartbeat.interval.ms: "500" }
source:
  type: sqlite
  path: %(db)s
  poll_interval_ms: 20
tables:
  customers: { key: [id] }
connectors:
  webshop:
    type: http
    base_url: "${TARGET_URL}"
    timeout_ms: 3000
    max_in_flight: %(max_in_flight)d
    retry: { max_attempts: %(attempts)d, initial_backoff_ms: 50, max_backoff_ms: 300 }
messages:
  customer-to-webshop:
    trigger: { table: customers, events: [insert, update, delete] }
    target:
      connector: webshop
      method: PUT
      path: /customers/{{id}}
      on_delete: { method: DELETE }
    mapping: { id: "{{id}}", name: "{{name}}", email: "{{email}}", version: "{{version}}" }
"""


def log_rows(writer):
    return writer.count("SELECT count(*) FROM _syncfleet_log")


class SettledTest(sftest.TestCase):

    def pipeline(self, name, url, max_in_flight=4, attempts=100000):
        """Records retry without end unless ATTEMPTS says otherwise, so
        that what these tests stop and kill is always still pending; the
        target's address comes from ${TARGET_URL} (self.url)."""
        db = self.tmp.join("erp.db")
        self.url = url
        path = self.tmp.write(name + ".yaml", PIPELINE % {
            "name": name, "prefix": name, "db": json.dumps(db),
            "max_in_flight": max_in_flight, "attempts": attempts})
        return path, db

    def run_pipeline(self, config, name="run"):
        proc = self.start([sftest.env_path("SYNCFLEET"), "run", "-c", config], name,
                          env=dict(os.environ, SYNCFLEET_LOG="info", TARGET_URL=self.url))
        m = proc.wait_line(r"embedded broker at (\S+)", timeout=30, stream="stderr")
        proc.wait_line(r"running pipeline", timeout=30, stream="stderr")
        return proc, m.group(1)

    def check_delivered(self, rcv, writer, procs, timeout=90, runs=(0,)):
        """Every change arrived, every final state last, and within each
        process's lifetime (requests from index runs[i] on) changes to one
        id arrived in commit order: a replay after a crash starts again at
        the first change not settled."""
        by_id = sftest.wait_converged(rcv, writer, IDS, timeout, procs)
        self.assertEqual([], sftest.lost_changes(by_id, writer, IDS),
                         "every committed change arrived at least once")
        self.assertEqual([], sftest.order_problems_by_run(rcv.requests(), writer, IDS, runs),
                         "changes to one id arrived in commit order within each run")
        return by_id

    def test_sigterm_with_work_pending_loses_nothing(self):
        """A slow target (2 s an answer, 4 at a time) has 400 changes
        waiting; SIGTERM; all but what it accepted are still in the
        source's log; the restart with a fast target delivers every
        change."""
        rcv = self.receiver([{"path": "/customers/*", "delay_ms": 2000}])
        config, db = self.pipeline("pending", rcv.url)
        writer = sftest.ChangeWriter(db, 7)
        self.addCleanup(writer.close)
        run, _ = self.run_pipeline(config)
        writer.wait_capturing(run)
        writer.insert(IDS)
        writer.random_changes(IDS, count=360, pause=0)
        rcv.wait_requests(8, timeout=30)
        run.stop(timeout=20)
        self.assertEqual(run.popen.returncode, 0, run.tail())
        accepted = len([r for r in rcv.requests() if sftest.is_2xx(r)])
        self.assertGreaterEqual(log_rows(writer), writer.changes - accepted,
                                "no change the target has not accepted left the source")
        rcv.set_rules([])
        runs = [0, len(rcv.requests())]
        run, _ = self.run_pipeline(config, "run-2")
        self.check_delivered(rcv, writer, [run], runs=runs)
        sftest.wait_for(lambda: log_rows(writer) == 0, 20,
                        "every settled change to leave _syncfleet_log")
        self.assertNotIn("to the DLQ", run.stderr())
        sftest.stop_cleanly(self, [run])

    def outage_then_restart(self, down):
        """The target is down (DOWN: "503", or "refused": nothing listens
        at its address) for far longer than a record's retries take with
        the default retry settings (8 attempts, backoff up to 300 ms here);
        400 changes; SIGTERM; the restart with the target up delivers every
        change, in order per id, and nothing is dead-lettered."""
        rcv = self.receiver([{"path": "/customers/*", "status": 503, "scope": "rule"}])
        url = rcv.url if down == "503" else "http://127.0.0.1:%d" % sftest.free_port()
        config, db = self.pipeline("down" + down, url, attempts=8)
        writer = sftest.ChangeWriter(db, 23)
        self.addCleanup(writer.close)
        run, _ = self.run_pipeline(config)
        writer.wait_capturing(run)
        writer.insert(IDS)
        writer.random_changes(IDS, count=360, pause=0)
        time.sleep(8.0)  # every record's 8 attempts would be spent by now
        run.assert_running()
        run.stop(timeout=20)
        self.assertEqual(run.popen.returncode, 0, run.tail())
        rcv.set_rules([])
        self.url = rcv.url
        runs = [0, len(rcv.requests())]
        run, _ = self.run_pipeline(config, "run-2")
        # what was parked comes first, then what the source still had
        sftest.wait_for(lambda: log_rows(writer) == 0, 60,
                        "every settled change to leave _syncfleet_log")
        self.check_delivered(rcv, writer, [run], runs=runs)
        self.assertNotIn("to the DLQ", run.stderr())
        dlq = subprocess.run([sftest.env_path("SYNCFLEET"), "dlq", "list", "--json",
                              "-c", config], capture_output=True, text=True,
                             env=dict(os.environ, TARGET_URL=self.url))
        self.assertEqual((dlq.returncode, dlq.stdout), (0, ""), dlq.stderr)
        sftest.stop_cleanly(self, [run])

    def test_target_answering_503_for_longer_than_retries(self):
        self.outage_then_restart("503")

    def test_target_refusing_connections_for_longer_than_retries(self):
        self.outage_then_restart("refused")

    def test_kill_at_the_moment_that_matters(self):
        """kill -9 of `syncfleet run` five times while a writer goes on, each
        time when the sync-log holds changes the target has not received;
        after each restart the pipeline catches up; in the end nothing is
        lost and the duplicates stay within what was in the source's log
        when the process died."""
        started = time.monotonic()
        rcv = self.receiver([{"path": "/customers/*", "delay_ms": 5}])
        config, db = self.pipeline("kills", rcv.url, max_in_flight=4)
        writer = sftest.ChangeWriter(db, 11)
        self.addCleanup(writer.close)
        run, bootstrap = self.run_pipeline(config)
        writer.wait_capturing(run)
        writer.insert(IDS)
        writer.start(IDS, delete_ratio=0.1, pause=0.05)
        self.addCleanup(writer.stop)
        replayable, runs = 0, [0]
        fast = [{"path": "/customers/*", "delay_ms": 5}]
        slow = [{"path": "/customers/*", "delay_ms": 300}]
        for kill in range(5):
            # the pipeline gets some changes through and settled first
            settled_before = writer.changes - log_rows(writer)
            sftest.wait_for(lambda: writer.changes - log_rows(writer) >= settled_before + 50,
                            30, "the restarted pipeline to settle changes")
            # then the target slows down until the sync-log holds changes
            # it has not received: the moment a producer acknowledging on
            # Kafka's delivery report would have dropped them
            rcv.set_rules(slow)

            def behind():
                run.assert_running()
                published = sum(sfpg.end_offsets(bootstrap, "kills.sync-log", 3).values())
                return published - (len(rcv.requests()) - runs[-1]) >= 40

            sftest.wait_for(behind, 30, "changes in the sync-log the target has not got")
            run.kill()
            left = log_rows(writer)
            replayable += left
            print("%6.2fs  kill %d: writer at %d changes, %d requests so far, %d rows "
                  "left in the log" % (time.monotonic() - started, kill + 1, writer.changes,
                                       len(rcv.requests()), left))
            self.assertGreater(left, 0)
            rcv.set_rules(fast)
            run, bootstrap = self.run_pipeline(config, "run-%d" % (kill + 2))
            runs.append(len(rcv.requests()))
        writer.stop()
        by_id = self.check_delivered(rcv, writer, [run], runs=runs)
        requests = rcv.requests()
        self.assertEqual([], sftest.idempotency_problems(requests))
        dup_keys, dup_extra = sftest.duplicate_count(requests)
        print("%d changes, %d requests; duplicates: %d changes delivered more than once, "
              "%d extra deliveries; at most %d could be replayed" % (
                  writer.changes, len(requests), dup_keys, dup_extra, replayable))
        self.assertLessEqual(dup_extra, replayable,
                             "only what was still in the source's log is sent again")
        sftest.wait_for(lambda: log_rows(writer) == 0, 20,
                        "every settled change to leave _syncfleet_log")
        sftest.stop_cleanly(self, [run])
        del by_id


if __name__ == "__main__":
    unittest.main()
