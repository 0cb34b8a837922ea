"""syncfleet producer on a real PostgreSQL 15 when things break: the
producer killed with SIGKILL in the middle of a large transaction (nothing
lost, duplicates bounded and counted, and the slot's confirmed LSN, sampled
from pg_replication_slots during the run, never past an undelivered
change), and the server restarted under the running producer (it
reconnects and resumes)."""

import signal
import sys
import threading
import time
import unittest

import sfpg
import sftest


class FlushSampler:
    """Samples, about every 150 ms, the slot's
    confirmed_flush_lsn and right after it the sync-log's end offsets: every
    record below those offsets was delivered before the sample ended."""

    def __init__(self, pg, bootstrap, topic, partitions, slot="syncfleet"):
        self.samples = []  # (confirmed flush, {partition: end offset})
        self._args = (pg, bootstrap, topic, partitions, slot)
        self._stop = threading.Event()
        self._error = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        pg, bootstrap, topic, partitions, slot = self._args
        try:
            while not self._stop.is_set():
                s = pg.slot(slot)
                if s and s["confirmed_flush_lsn"] is not None:
                    ends = sfpg.end_offsets(bootstrap, topic, partitions)
                    self.samples.append((s["confirmed_flush_lsn"], ends))
                time.sleep(0.1)
        except Exception as e:  # noqa: BLE001 - reported by stop()
            self._error = e

    def sample_now(self):
        pg, bootstrap, topic, partitions, slot = self._args
        flush = pg.slot(slot)["confirmed_flush_lsn"]
        return flush, sfpg.end_offsets(bootstrap, topic, partitions)

    def stop(self):
        self._stop.set()
        self._thread.join(30)
        if self._error:
            raise self._error
        return self.samples


class RecoveryTest(sfpg.PgTestCase):

    @sfpg.broker_partitions(24)  # 100,000 rows and their duplicates
    def test_kill_producer_mid_large_transaction(self):
        n = 100000
        self.sql("CREATE TABLE bulk(id int PRIMARY KEY, pad int);"
                 "CREATE TABLE small(id int PRIMARY KEY)")
        pipeline = self.write_pipeline({"bulk": ["insert"], "small": ["insert"]})
        first = self.producer(pipeline, name="producer-1")
        log = self.sync_log()
        topic = self.brk.topic("sync-log")
        sampler = FlushSampler(self.pg, self.brk.bootstrap, topic, self.partitions)
        self.pg.script("".join("INSERT INTO small VALUES (%d);\n" % i for i in range(1, 21)),
                       db=self.db)
        self.sql("INSERT INTO bulk SELECT g, g FROM generate_series(1, %d) g" % n)
        self.pg.script("".join("INSERT INTO small VALUES (%d);\n" % i for i in range(21, 41)),
                       db=self.db)
        big = lambda r: r["value"]["source"]["table"] == "bulk"
        # the broker's end offsets tell at once how far delivery is (the
        # reader of the sync-log lags behind)
        ends = lambda: sfpg.end_offsets(self.brk.bootstrap, topic, self.partitions)
        sftest.wait_for(lambda: sum(ends().values()) >= n // 5, 60,
                        "a fifth of the large transaction delivered", interval=0.01)
        # the broker is held still while the producer dies, so that the kill
        # lands inside the transaction however fast the producer is
        self.brk.proc.signal(signal.SIGSTOP)
        try:
            first.kill()  # SIGKILL
        finally:
            self.brk.proc.signal(signal.SIGCONT)
        time.sleep(0.5)  # requests the producer had sent are appended by now
        flush_at_kill, ends_at_kill = sampler.sample_now()
        delivered = sum(ends_at_kill.values()) - 20
        self.assertLess(delivered, n, "the producer finished before it was killed")
        self.pg.script("".join("INSERT INTO small VALUES (%d);\n" % i for i in range(41, 61)),
                       db=self.db)
        second = self.producer(pipeline, name="producer-2")
        self.wait_flushed(timeout=120)
        samples = sampler.stop()
        samples.append(sampler.sample_now())  # at least one after the end
        second.stop()
        recs = log.wait(lambda rs: len({r["event_id"] for r in rs}) >= n + 60, 30)

        # nothing lost
        ids = {r["event_id"] for r in recs}
        self.assertEqual(len(ids), n + 60)
        self.assertEqual({r["key"]["key"]["id"] for r in recs if big(r)}, set(range(1, n + 1)))
        self.assertEqual({r["key"]["key"]["id"] for r in recs if not big(r)},
                         set(range(1, 61)))

        # duplicates: only changes delivered before the kill, of transactions
        # the slot had not confirmed, come again
        first_seen = {}
        dups = 0
        for r in sorted(recs, key=lambda r: (r["partition"], r["offset"])):
            if r["event_id"] in first_seen:
                dups += 1
                p, off, lsn = first_seen[r["event_id"]]
                self.assertLess(off, ends_at_kill[p], "a duplicate of a change delivered "
                                "after the kill")
                self.assertGreaterEqual(lsn, flush_at_kill, "a duplicate of a confirmed change")
            else:
                first_seen[r["event_id"]] = (r["partition"], r["offset"],
                                             sfpg.lsn(r["value"]["source"]["lsn"]))
        # at most once each change delivered before the kill that the slot
        # had not confirmed (the large transaction's part, and the small
        # rows before it when their confirmation had not gone out yet)
        replayable = sum(1 for p, off, lsn in first_seen.values()
                         if off < ends_at_kill[p] and lsn >= flush_at_kill)
        self.assertLessEqual(replayable, delivered + 20)
        self.assertLessEqual(dups, replayable)
        print("kill -9 mid transaction: %d of %d rows delivered before the kill, %d "
              "duplicates after the restart, %d flush samples" % (
                  delivered, n, dups, len(samples)), file=sys.stderr)

        # the slot never confirmed a transaction before all of it was
        # delivered: every transaction committed below a sampled confirmed
        # LSN has all its changes below the end offsets sampled after it
        # a transaction is delivered at a sample when the first copy of each
        # of its changes is below that sample's end offset of its partition
        need = {}  # commit lsn -> {partition: highest first-copy offset}
        for eid, (p, off, tx_lsn) in first_seen.items():
            parts = need.setdefault(tx_lsn, {})
            parts[p] = max(parts.get(p, -1), off)
        self.assertGreater(len(samples), 3)
        big_lsn = sfpg.lsn(next(r for r in recs if big(r))["value"]["source"]["lsn"])
        confirmed_big = False
        for flush, ends in samples + [(flush_at_kill, ends_at_kill)]:
            for tx_lsn, parts in need.items():
                if tx_lsn < flush:
                    late = {p: off for p, off in parts.items() if off >= ends.get(p, 0)}
                    self.assertFalse(late, "confirmed_flush_lsn %s passed transaction %s, "
                                     "which was not delivered yet (partition: last offset "
                                     "%s, end offsets %s)" % (sfpg.lsn_text(flush),
                                                              sfpg.lsn_text(tx_lsn), late, ends))
            confirmed_big = confirmed_big or flush > big_lsn
        self.assertLess(flush_at_kill, big_lsn)
        self.assertTrue(confirmed_big, "no sample after the large transaction was confirmed")

    def test_server_restart(self):
        self.sql("CREATE TABLE events(id int PRIMARY KEY)")
        proc = self.producer(self.write_pipeline({"events": ["insert"]}))
        log = self.sync_log()
        stop = threading.Event()
        state = {"next": 1, "errors": 0}

        def write():
            while not stop.is_set():
                i = state["next"]
                try:
                    self.pg.sql("INSERT INTO events SELECT generate_series(%d, %d)" % (
                        i, i + 9), db=self.db, timeout=30)
                except AssertionError:
                    state["errors"] += 1  # the server is restarting
                    time.sleep(0.1)
                    continue
                state["next"] = i + 10
                time.sleep(0.02)

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        log.wait_count(100, timeout=30)
        self.pg.restart()
        sftest.wait_for(lambda: state["next"] > 1500 or not writer.is_alive(), 60,
                        "writes after the restart")
        stop.set()
        writer.join(30)
        self.wait_log(proc, r"streaming slot", count=2, timeout=60)
        expected = {int(r[0]) for r in self.query("SELECT id FROM events")}
        recs = log.wait(lambda rs: {r["key"]["key"]["id"] for r in rs} >= expected, 60,
                        "every committed row on the sync-log")
        self.assertEqual({r["key"]["key"]["id"] for r in recs}, expected)
        self.assertTrue(proc.running())
        self.assertIn("reading changes", proc.stderr())
        proc.stop()

    def test_delivery_failures_rewind_the_stream(self):
        """Records that time out while the broker is frozen fail; the
        producer rewinds the source to the last acknowledged change and
        sends everything after it again: nothing is lost."""
        self.sql("CREATE TABLE t(id int PRIMARY KEY, v int)")
        proc = self.producer(self.write_pipeline(
            {"t": ["insert", "update"]}, kafka_config={"message.timeout.ms": "1500"}))
        log = self.sync_log()
        self.sql("INSERT INTO t SELECT g, 0 FROM generate_series(1, 100) g")
        log.wait_count(100)
        self.brk.proc.signal(signal.SIGSTOP)
        try:
            for i in range(5):
                self.sql("INSERT INTO t SELECT g, 0 FROM generate_series(%d, %d) g" % (
                    101 + i * 20, 120 + i * 20))
                self.sql("UPDATE t SET v = v + 1 WHERE id <= 10")
            self.wait_log(proc, r"resending the changes after position", timeout=30)
        finally:
            self.brk.proc.signal(signal.SIGCONT)
        self.wait_flushed(timeout=60)
        recs = log.records()
        self.assertEqual({r["key"]["key"]["id"] for r in recs if r["value"]["op"] == "c"},
                         set(range(1, 201)))
        last = {}
        for r in sorted(recs, key=lambda r: (r["partition"], r["offset"])):
            if r["value"]["op"] == "u":
                last[r["key"]["key"]["id"]] = r["value"]["after"]["v"]
        self.assertEqual(last, {i: 5 for i in range(1, 11)})
        proc.stop()

    @sfpg.broker_partitions(12)
    def test_delivery_failures_during_the_snapshot(self):
        """The same during the initial snapshot: the snapshot is read again
        from the first table not delivered, from the same exported snapshot,
        and completes."""
        n = 50000
        self.sql("CREATE TABLE t(id int PRIMARY KEY, v int);"
                 "INSERT INTO t SELECT g, 0 FROM generate_series(1, %d) g" % n)
        log = self.sync_log()
        # the broker is frozen as soon as the producer is up (it checks the
        # cluster's topics before the first read), while the snapshot is
        # being read and sent
        proc = self.producer(self.write_pipeline(
            {"t": ["insert", "update"]}, snapshot="initial",
            kafka_config={"message.timeout.ms": "1500"}), wait_streaming=False)
        self.wait_log(proc, r"publishing changes", timeout=60, interval=0.002)
        self.brk.proc.signal(signal.SIGSTOP)
        try:
            self.assertNotIn("complete", proc.stderr(), "the snapshot was faster than the test")
            self.wait_log(proc, r"resending the changes after position", timeout=60)
            self.sql("UPDATE t SET v = 1 WHERE id = 7")
        finally:
            self.brk.proc.signal(signal.SIGCONT)
        self.wait_log(proc, r"snapshot at \S+ complete", timeout=60)
        self.wait_flushed(timeout=60)
        recs = log.wait(lambda rs: len({r["event_id"] for r in rs}) >= n + 1, 30)
        self.assertEqual({r["key"]["key"]["id"] for r in recs if r["value"]["op"] == "r"},
                         set(range(1, n + 1)))
        upd = [r for r in recs if r["value"]["op"] == "u"]
        self.assertEqual([r["value"]["after"] for r in upd][-1:], [{"id": 7, "v": 1}])
        proc.stop()


if __name__ == "__main__":
    unittest.main()
