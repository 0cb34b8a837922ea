"""syncfleet producer on a real PostgreSQL 15: the initial snapshot (op "r"
from the slot's exported snapshot, then the stream) under concurrent
writes, its progress line on a terminal, an interrupted snapshot, and
snapshot: never."""

import os
import pty
import random
import select
import subprocess
import threading
import time
import unittest

import sfpg
import sftest


class Writer:
    """A session writing continuously to stock(id, v): inserts of new ids,
    updates and deletes of random ids, each statement its own transaction,
    until stop()."""

    def __init__(self, pg, db, first_new_id):
        self.proc = pg.psql_proc(db)
        self.next_id = first_new_id
        self.statements = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        rnd = random.Random(7)
        while not self._stop.is_set():
            lines = []
            for _ in range(20):
                op = rnd.random()
                if op < 0.4:
                    lines.append("INSERT INTO stock VALUES (%d, 1);" % self.next_id)
                    self.next_id += 1
                elif op < 0.8:
                    lines.append("UPDATE stock SET v = v + 1 WHERE id = %d;" %
                                 rnd.randint(1, self.next_id - 1))
                else:
                    lines.append("DELETE FROM stock WHERE id = %d;" %
                                 rnd.randint(1, self.next_id - 1))
            self.proc.stdin.write(("\n".join(lines) + "\n").encode())
            self.proc.stdin.flush()
            self.statements += len(lines)
            time.sleep(0.01)

    def stop(self):
        self._stop.set()
        self._thread.join(10)
        _, err = self.proc.communicate(timeout=60)
        if self.proc.returncode != 0:
            raise AssertionError("writer failed: %s" % err.decode(errors="replace"))


def replay(records):
    """The table as the records describe it, applied per key in partition
    order: {id: v}."""
    state = {}
    for r in sorted(records, key=lambda r: (r["partition"], r["offset"])):
        v = r["value"]
        key = r["key"]["key"]["id"]
        if v["op"] == "d":
            state.pop(key, None)
        else:
            state[key] = v["after"]["v"]
    return state


class SnapshotTest(sfpg.PgTestCase):

    ROWS = 20000

    def make_stock(self):
        self.sql("CREATE TABLE stock(id int PRIMARY KEY, v int NOT NULL);"
                 "INSERT INTO stock SELECT g, 0 FROM generate_series(1, %d) g" % self.ROWS)

    def table(self):
        return {int(r[0]): int(r[1]) for r in self.query("SELECT id, v FROM stock")}

    def test_snapshot_then_stream_with_concurrent_writes(self):
        """Rows written while the slot is created and the snapshot read are
        either in the snapshot or in the stream: replaying the sync-log
        gives the table exactly."""
        self.make_stock()
        writer = Writer(self.pg, self.db, self.ROWS + 1)
        self.addCleanup(lambda: writer.proc.poll() is None and writer.proc.kill())
        sftest.wait_for(lambda: writer.statements > 100, 10, "the writer to start")
        log = self.sync_log()
        proc = self.producer(self.write_pipeline({"stock": ["insert", "update", "delete"]},
                                                 snapshot="initial"), wait_streaming=False)
        self.wait_log(proc, r"snapshot at \S+ complete", timeout=90)
        time.sleep(1)  # more writes, streamed
        writer.stop()
        self.wait_flushed(timeout=60)
        recs = log.records()
        ops = {}
        for r in recs:
            ops[r["value"]["op"]] = ops.get(r["value"]["op"], 0) + 1
        snap_ids = [r["key"]["key"]["id"] for r in recs if r["value"]["op"] == "r"]
        self.assertEqual(len(snap_ids), len(set(snap_ids)), "a row twice in the snapshot")
        self.assertGreater(len(snap_ids), self.ROWS // 2)
        self.assertGreater(ops.get("c", 0), 0, ops)
        self.assertGreater(ops.get("u", 0), 0, ops)
        self.assertGreater(ops.get("d", 0), 0, ops)
        # writes both before the slot (in the snapshot) and after it
        self.assertTrue(any(i > self.ROWS for i in snap_ids), "no write before the snapshot")
        snap_lsn = {r["value"]["source"]["lsn"] for r in recs if r["value"]["op"] == "r"}
        self.assertEqual(len(snap_lsn), 1)
        streamed = [sfpg.lsn(r["value"]["source"]["lsn"]) for r in recs
                    if r["value"]["op"] != "r"]
        self.assertGreater(min(streamed), sfpg.lsn(snap_lsn.pop()))
        self.assertEqual(replay(recs), self.table())
        proc.stop()

    def test_snapshot_progress_on_a_terminal(self):
        """With stderr on a terminal the snapshot shows a progress line."""
        self.make_stock()
        self.sql("ANALYZE stock")
        pipeline = self.write_pipeline({"stock": ["insert"]}, snapshot="initial")
        master, slave = pty.openpty()
        proc = subprocess.Popen(
            [sftest.env_path("SYNCFLEET"), "producer", "-c", pipeline, "--brokers",
             self.brk.bootstrap], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=slave, cwd=self.tmp.path, start_new_session=True)
        os.close(slave)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        out = b""
        deadline = time.monotonic() + 60
        while b"complete" not in out and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    out += os.read(master, 65536)
                except OSError:
                    break
        proc.terminate()
        proc.wait(20)
        os.close(master)
        text = out.decode(errors="replace")
        self.assertIn("\rsnapshot 1/1 stock: %d rows, done" % self.ROWS, text)
        self.assertRegex(text, r"\rsnapshot 1/1 stock: \d+ of ~%d rows \(\d+%%\)" % self.ROWS)
        self.assertEqual(proc.returncode, 0, text[-2000:])

    def test_interrupted_snapshot_is_taken_again(self):
        """A producer killed during the snapshot leaves a slot whose snapshot
        never completed: the next start drops it and takes a new snapshot;
        once complete, a restart streams without another one."""
        self.make_stock()
        log = self.sync_log()
        # the first producer holds every record in one batch for a minute,
        # so nothing is delivered and its snapshot cannot complete before
        # it is killed while reading the table
        first = self.producer(self.write_pipeline(
            {"stock": ["insert", "update", "delete"]}, snapshot="initial",
            kafka_config={"linger.ms": "60000", "batch.num.messages": "1000000",
                          "batch.size": "100000000", "message.max.bytes": "100000000"},
            name="held.yaml"), name="producer-1", wait_streaming=False)
        self.wait_log(first, r"snapshot of stock: reading", timeout=60)
        time.sleep(1)
        self.assertNotIn("complete", first.stderr())
        first.kill()
        pipeline = self.write_pipeline({"stock": ["insert", "update", "delete"]},
                                       snapshot="initial")
        self.sql("UPDATE stock SET v = 5 WHERE id <= 10; DELETE FROM stock WHERE id = 20")
        second = self.producer(pipeline, name="producer-2", wait_streaming=False)
        self.wait_log(second, r"snapshot of slot \"syncfleet\" never completed")
        self.wait_log(second, r"snapshot at \S+ complete", timeout=90)
        self.sql("UPDATE stock SET v = 9 WHERE id = 30")
        self.wait_flushed()
        second.stop()
        third = self.producer(pipeline, name="producer-3")
        self.sql("INSERT INTO stock VALUES (%d, 3)" % (self.ROWS + 1))
        self.wait_flushed()
        third.stop()
        self.assertNotIn("snapshot at", third.stderr())
        # delivered is not yet read back: wait for the last change too
        log.wait_count(1, where=lambda r: r["key"]["key"]["id"] == self.ROWS + 1)
        recs = log.records()
        snaps = {}
        for r in recs:
            if r["value"]["op"] == "r":
                snaps.setdefault(r["value"]["source"]["lsn"], []).append(r["key"]["key"]["id"])
        last_lsn = max(snaps, key=sfpg.lsn)
        # the last snapshot is complete: every row once in it
        self.assertEqual(sorted(snaps[last_lsn]), sorted(set(range(1, self.ROWS + 1)) - {20}))
        # it and the stream after it give the table (row 20, deleted while
        # there was no slot, has no delete event: the new snapshot lacks it)
        tail = [r for r in recs if (r["value"]["op"] == "r" and
                                    r["value"]["source"]["lsn"] == last_lsn) or
                (r["value"]["op"] != "r" and
                 sfpg.lsn(r["value"]["source"]["lsn"]) > sfpg.lsn(last_lsn))]
        self.assertEqual(replay(tail), self.table())
        self.assertEqual(self.query("SELECT v FROM stock WHERE id = 30"), [["9"]])

    def test_snapshot_needs_the_origin_grants(self):
        """A user with REPLICATION that owns the table but lacks EXECUTE on
        the replication origin functions could never record the snapshot
        as done (every start would take it again): the producer refuses to
        start and names the grant; with the grant it snapshots once."""
        self.make_stock()
        role = "snapper_%s" % self.db
        self.pg.sql("CREATE ROLE %s LOGIN REPLICATION" % role)
        self.addCleanup(self.pg.sql, "DROP ROLE %s" % role)
        self.addCleanup(self.sql, "DROP OWNED BY %s" % role)
        self.sql("ALTER TABLE stock OWNER TO %s; GRANT CREATE ON DATABASE %s TO %s"
                 % (role, self.db, role))
        dsn = self.dsn.replace("user=postgres", "user=" + role)
        pipeline = self.tmp.write("pipeline.yaml", sfpg.pipeline_yaml(
            dsn, {"stock": ["insert"]}, snapshot="initial"))
        proc = self.producer(pipeline, wait_streaming=False)
        proc.popen.wait(60)
        self.assertNotEqual(proc.popen.returncode, 0)
        self.assertIn(
            'needs EXECUTE on pg_replication_origin_create(text), '
            'pg_replication_origin_advance(text, pg_lsn) and '
            'pg_replication_origin_drop(text), which user "%s" lacks: as a superuser, '
            'GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text), '
            'pg_replication_origin_advance(text, pg_lsn), '
            'pg_replication_origin_drop(text) TO "%s"; or set source.snapshot: never'
            % (role, role), proc.stderr())
        self.assertIsNone(self.pg.slot("syncfleet"), "no slot was created")
        self.sql("GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text), "
                 "pg_replication_origin_advance(text, pg_lsn), "
                 "pg_replication_origin_drop(text) TO %s" % role)
        log = self.sync_log()
        proc = self.producer(pipeline, name="producer-2")
        self.wait_log(proc, r"snapshot at \S+ complete", timeout=60)
        log.wait_count(self.ROWS)
        proc.stop()
        proc = self.producer(pipeline, name="producer-3")
        self.sql("INSERT INTO stock VALUES (0, 1)")
        log.wait_count(self.ROWS + 1)
        self.assertNotIn("never completed", proc.stderr())
        self.assertEqual(len(log.records()), self.ROWS + 1, "the snapshot was taken once")
        proc.stop()

    def test_snapshot_never_streams_only(self):
        """snapshot: never exports no existing row; changes from then on
        arrive."""
        self.make_stock()
        proc = self.producer(self.write_pipeline({"stock": ["insert", "update"]}))
        log = self.sync_log()
        self.sql("UPDATE stock SET v = 1 WHERE id = 3; INSERT INTO stock VALUES (0, 2)")
        recs = log.wait_count(2)
        self.wait_flushed()
        self.assertEqual(sorted((r["value"]["op"], r["key"]["key"]["id"]) for r in log.records()),
                         [("c", 0), ("u", 3)])
        proc.stop()


if __name__ == "__main__":
    unittest.main()
