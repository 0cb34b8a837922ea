"""Settled acknowledgement with a PostgreSQL source on the embedded broker:
the replication slot is confirmed only past changes that are settled, so a
kill -9 of `syncfleet run` at any moment loses nothing, however much the
in-memory broker held.

Five kills while a writer goes on, each when the sync-log holds changes the
target has not received (the target is slowed down for that moment); after
every restart the pipeline catches up, and in the end every committed
change arrived, every id's final state last, and changes to one id arrived
in commit order within each process's lifetime.
"""

import json
import os
import subprocess
import time
import unittest

import sfpg
import sftest

IDS = range(1, 31)

PIPELINE = """\
version: 1
name: pgsettled
kafka:
  brokers: embedded
  topic_prefix: pgs
  partitions: 3
  config: { session.timeout.ms: "4000", heartbeat.interval.ms: "500" }
source: { type: postgres, dsn: "%(dsn)s", slot: settled, publication: settled,
          snapshot: never }
tables:
  customers: { key: [id] }
connectors:
  webshop:
    type: http
    base_url: "%(url)s"
    timeout_ms: 3000
    max_in_flight: 4
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


def _literal(text):
    return "'" + text.replace("'", "''") + "'"


class PgChangeWriter(sftest.ChangeWriter):
    """sftest.ChangeWriter on a PostgreSQL table: each transaction is one
    psql run, so a commit is known once psql returns."""

    def __init__(self, pg, db, seed):
        self.pg, self.db = pg, db
        self.pg.sql("CREATE TABLE IF NOT EXISTS customers (id int PRIMARY KEY, "
                    "name text NOT NULL, email text NOT NULL, version int NOT NULL)",
                    db=db)
        self.pg.sql("ALTER TABLE customers REPLICA IDENTITY FULL", db=db)
        super().__init__(os.devnull, seed)

    def _open(self, path):
        return None

    def _commit(self, stmts):
        sql = ["BEGIN"]
        for op, cid, row in stmts:
            if op == "d":
                sql.append("DELETE FROM customers WHERE id = %d" % cid)
            elif op == "c":
                sql.append("INSERT INTO customers VALUES (%d, %s, %s, %d)" % (
                    cid, _literal(row["name"]), _literal(row["email"]), row["version"]))
            else:
                sql.append("UPDATE customers SET name = %s, email = %s, version = %d "
                           "WHERE id = %d" % (_literal(row["name"]), _literal(row["email"]),
                                              row["version"], cid))
        sql.append("COMMIT")
        self.pg.script(";\n".join(sql) + ";\n", db=self.db)

    def count(self, sql):
        return int(self.pg.value(sql, db=self.db))

    def close(self):
        pass


class SettledPostgresTest(sfpg.PgTestCase):

    def run_pipeline(self, config, name):
        proc = self.start([sftest.env_path("SYNCFLEET"), "run", "-c", config], name,
                          env=dict(os.environ, SYNCFLEET_LOG="info"), cwd=self.tmp.path)
        m = proc.wait_line(r"embedded broker at (\S+)", timeout=30, stream="stderr")
        self.wait_log(proc, r"running pipeline", timeout=60)
        self.wait_log(proc, r"streaming slot", timeout=60)
        return proc, m.group(1)

    def test_target_down_for_longer_than_retries(self):
        """The target answers 503 for far longer than a record's 8 attempts
        take; SIGTERM; the restart with the target up delivers every
        change, in order per id, and nothing is dead-lettered."""
        rcv = self.receiver([{"path": "/customers/*", "status": 503, "scope": "rule"}])
        config = self.tmp.write("pipeline.yaml", PIPELINE % {
            "dsn": self.dsn, "url": rcv.url, "attempts": 8})
        writer = PgChangeWriter(self.pg, self.db, 29)
        run, _ = self.run_pipeline(config, "run")
        writer.insert(IDS)
        writer.random_changes(IDS, count=270, pause=0)
        time.sleep(8.0)
        run.assert_running()
        run.stop(timeout=20)
        rcv.set_rules([])
        runs = [0, len(rcv.requests())]
        run, _ = self.run_pipeline(config, "run-2")
        # what was parked comes first, then what the slot still had
        sftest.wait_for(lambda: self.pg.slot("settled")["confirmed_flush_lsn"] >=
                        self.pg.wal_lsn(), 60, "the slot to confirm every change")
        by_id = sftest.wait_converged(rcv, writer, IDS, 90, [run])
        self.assertEqual([], sftest.lost_changes(by_id, writer, IDS))
        self.assertEqual([], sftest.order_problems_by_run(rcv.requests(), writer, IDS, runs))
        self.assertNotIn("to the DLQ", run.stderr())
        dlq = subprocess.run([sftest.env_path("SYNCFLEET"), "dlq", "list", "--json",
                              "-c", config], capture_output=True, text=True)
        self.assertEqual((dlq.returncode, dlq.stdout), (0, ""), dlq.stderr)
        sftest.stop_cleanly(self, [run])

    def test_kill_at_the_moment_that_matters(self):
        started = time.monotonic()
        fast = [{"path": "/customers/*", "delay_ms": 5}]
        slow = [{"path": "/customers/*", "delay_ms": 300}]
        rcv = self.receiver(fast)
        config = self.tmp.write("pipeline.yaml", PIPELINE % {
            "dsn": self.dsn, "url": rcv.url, "attempts": 100000})
        writer = PgChangeWriter(self.pg, self.db, 13)
        run, bootstrap = self.run_pipeline(config, "run")
        writer.insert(IDS)
        writer.start(IDS, delete_ratio=0.1, pause=0.05)
        self.addCleanup(writer.stop)
        runs, replayable = [0], 0
        for kill in range(5):
            # some changes get through and the slot moves on first
            confirmed = self.pg.slot("settled")["confirmed_flush_lsn"] or 0
            sftest.wait_for(
                lambda: (self.pg.slot("settled")["confirmed_flush_lsn"] or 0) > confirmed,
                30, "the slot to confirm settled changes")
            rcv.set_rules(slow)

            published = [0]

            def behind():
                run.assert_running()
                published[0] = sum(sfpg.end_offsets(bootstrap, "pgs.sync-log", 3).values())
                return published[0] - (len(rcv.requests()) - runs[-1]) >= 40

            sftest.wait_for(behind, 30, "changes in the sync-log the target has not got")
            run.kill()
            # a restart replays at most what this run had handed out, plus
            # what it published after the look
            replayable += published[0] + 100
            slot = self.pg.slot("settled")
            print("%6.2fs  kill %d: writer at %d changes, %d requests so far; slot "
                  "confirmed %s, WAL at %s" % (
                      time.monotonic() - started, kill + 1, writer.changes,
                      len(rcv.requests()), sfpg.lsn_text(slot["confirmed_flush_lsn"]),
                      sfpg.lsn_text(self.pg.wal_lsn())))
            rcv.set_rules(fast)
            run, bootstrap = self.run_pipeline(config, "run-%d" % (kill + 2))
            runs.append(len(rcv.requests()))
        writer.stop()
        by_id = sftest.wait_converged(rcv, writer, IDS, 90, [run])
        self.assertEqual([], sftest.lost_changes(by_id, writer, IDS),
                         "every committed change arrived at least once")
        requests = rcv.requests()
        self.assertEqual([], sftest.order_problems_by_run(requests, writer, IDS, runs),
                         "changes to one id arrived in commit order within each run")
        dup_keys, dup_extra = sftest.duplicate_count(requests)
        print("%d changes, %d requests; duplicates: %d changes delivered more than once, "
              "%d extra deliveries; at most %d could be replayed" % (
                  writer.changes, len(requests), dup_keys, dup_extra, replayable))
        self.assertLessEqual(dup_extra, replayable,
                             "only what the killed processes had handed out is sent again")
        sftest.stop_cleanly(self, [run])


if __name__ == "__main__":
    unittest.main()
