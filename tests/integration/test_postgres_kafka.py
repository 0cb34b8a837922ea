"""syncfleet's PostgreSQL producer on a real Apache Kafka broker (the
single-node cluster of sfkafka): the producer killed with SIGKILL in the
middle of a large transaction while the broker is held still (its JVM
stopped with SIGSTOP). The pipeline is a non-embedded one, acknowledged to
the source once delivered, and a kcat reads the sync-log in the place of a
router. What came out is checked: every row of the large transaction on
the sync-log after the restart, duplicates only of changes the slot had
not confirmed, and the slot's confirmed_flush_lsn, sampled from
pg_replication_slots during the run, never past a change that was not on
the broker yet (at the kill: not past the large transaction, of which part
was still undelivered). The first test is test_postgres_recovery's, run
with the embedded broker swapped for the real cluster. The second kills
the producer once it was handed a whole transaction that the held broker
could not take, which a producer acknowledging what it sent (not what was
delivered) would have confirmed to the slot."""

import os
import re
import signal
import sys
import time
import unittest

import sfkafka
import sfpg
import sftest
import test_postgres_recovery as recovery


class ClusterBroker:
    """The real cluster where PgTestCase has its embedded broker: the
    bootstrap, this test's topic names, and proc.signal(), which signals
    the broker's JVM (SIGSTOP holds it still, SIGCONT lets it go on)."""

    def __init__(self, cluster, prefix):
        self.cluster = cluster
        self.prefix = prefix
        self.bootstrap = cluster.bootstrap
        self.proc = self

    def topic(self, suffix):
        return "%s.%s" % (self.prefix, suffix)

    def signal(self, sig):
        node = self.cluster.node[0]
        if not node.running():
            raise AssertionError("kafka node %d is not running\n%s" % (node.id, node.tail()))
        os.killpg(node.popen.pid, sig)


class PostgresKafkaTest(sfpg.PgTestCase):
    """PgTestCase with the shared single-node Kafka cluster in the place of
    the embedded broker."""

    @classmethod
    def setUpClass(cls):
        why = sfkafka.available()
        if why:
            raise AssertionError("no Kafka cluster: " + why)
        cls.cluster = sfkafka.shared(1)
        super().setUpClass()

    def broker(self, partitions=3, prefix="itest", name="broker", args=()):
        # the producer creates the topics, with the pipeline's partitions
        brk = ClusterBroker(self.cluster, "pgk%d_%s" % (os.getpid(), self.db))
        self.addCleanup(self._thaw, brk)
        return brk

    def _thaw(self, brk):
        # a failing test must not leave the broker stopped for the next one
        if self.cluster.node[0].running():
            brk.signal(signal.SIGCONT)

    def write_pipeline(self, tables, name="pipeline.yaml", **kw):
        kw.setdefault("prefix", self.brk.prefix)
        kw.setdefault("partitions", self.partitions)
        text = sfpg.pipeline_yaml(self.dsn, tables, **kw)
        embedded = "brokers: embedded,"
        if embedded not in text:
            raise AssertionError("sfpg.pipeline_yaml changed: no 'brokers: embedded'")
        return self.tmp.write(name, text.replace(
            embedded, 'brokers: "%s",' % self.cluster.bootstrap))

    def producer(self, pipeline, name="producer", wait_streaming=True, env=None):
        proc = super().producer(pipeline, name, wait_streaming, env)
        if wait_streaming:
            # the real broker's path: acknowledged once delivered, to the
            # cluster's sync-log, which has the pipeline's partitions
            self.assertRegex(proc.stderr(), re.escape(
                "to %s at %s (acknowledged to the source once delivered)" % (
                    self.brk.topic("sync-log"), self.cluster.bootstrap)))
            topic = sfkafka.describe_topic(self.cluster.bootstrap, self.brk.topic("sync-log"))
            self.assertIsNotNone(topic, "the producer did not create the sync-log")
            self.assertEqual(topic["partitions"], self.partitions)
        return proc

    @sfpg.broker_partitions(6)
    def test_kill_producer_mid_large_transaction(self):
        recovery.RecoveryTest.test_kill_producer_mid_large_transaction(self)

    def sent_lsn(self):
        """How far the slot's WAL sender has streamed to the producer."""
        return sfpg.lsn(self.pg.value(
            "SELECT sent_lsn FROM pg_stat_replication r JOIN pg_replication_slots s "
            "ON s.active_pid = r.pid WHERE s.slot_name = 'syncfleet' AND s.database = '%s'"
            % self.db))

    def test_kill_producer_with_a_whole_transaction_undelivered(self):
        """A transaction handed to the Kafka client whole, not delivered:
        while the broker is held still, a transaction of 5,000 rows (fewer
        than the 10,000 changes the producer keeps in flight) and one after
        it are streamed to the producer. Killed then, the producer must not
        have confirmed either to the slot; restarted, it delivers them all."""
        m = 5000
        self.sql("CREATE TABLE bulk(id int PRIMARY KEY, pad int);"
                 "CREATE TABLE small(id int PRIMARY KEY)")
        first = self.producer(self.write_pipeline({"bulk": ["insert"], "small": ["insert"]}),
                              name="producer-1")
        log = self.sync_log()
        topic = self.brk.topic("sync-log")
        self.pg.script("".join("INSERT INTO small VALUES (%d);\n" % i for i in range(1, 21)),
                       db=self.db)
        before = self.wait_flushed(timeout=30)  # the slot moves on delivered changes
        log.wait_count(20)
        self.brk.proc.signal(signal.SIGSTOP)
        try:
            self.sql("INSERT INTO bulk SELECT g, g FROM generate_series(1, %d) g" % m)
            self.pg.script("".join("INSERT INTO small VALUES (%d);\n" % i
                                   for i in range(21, 41)), db=self.db)
            end = self.pg.wal_lsn()
            sftest.wait_for(lambda: (self.sent_lsn() or 0) >= end, 30,
                            "the WAL sender to stream both transactions to the producer",
                            interval=0.05)
            # the producer decodes them and hands them to its Kafka client
            # within milliseconds; a producer that acknowledged what it sent
            # would report that to the server within PG_FLUSH_MS (100 ms)
            time.sleep(1.0)
            first.assert_running()
            first.kill()  # SIGKILL
        finally:
            self.brk.proc.signal(signal.SIGCONT)
        time.sleep(0.5)  # requests the producer had sent are appended by now
        flush_at_kill = self.pg.slot()["confirmed_flush_lsn"]
        ends_at_kill = sfpg.end_offsets(self.brk.bootstrap, topic, self.partitions)
        # at the kill the slot had not passed the large transaction, which
        # the producer had been handed whole and could not have delivered
        self.assertGreaterEqual(flush_at_kill, before)
        self.assertLess(flush_at_kill, end, "confirmed_flush_lsn %s passed the two "
                        "transactions written while the broker was held still (WAL end %s), "
                        "with no delivery report for them" % (
                            sfpg.lsn_text(flush_at_kill), sfpg.lsn_text(end)))

        second = self.producer(self.write_pipeline({"bulk": ["insert"], "small": ["insert"]},
                                                   name="pipeline-2.yaml"), name="producer-2")
        self.wait_flushed(lsn_at=end, timeout=60)
        second.stop()
        # every record on the topic, read
        total = sum(sfpg.end_offsets(self.brk.bootstrap, topic, self.partitions).values())
        recs = log.wait(lambda rs: len(rs) >= total, 30, "the %d records on the sync-log" % total)

        # every row, once the second producer delivered what the first did not
        big = lambda r: r["value"]["source"]["table"] == "bulk"
        self.assertEqual({r["key"]["key"]["id"] for r in recs if not big(r)},
                         set(range(1, 41)))
        self.assertEqual({r["key"]["key"]["id"] for r in recs if big(r)}, set(range(1, m + 1)))
        self.assertEqual(len({r["event_id"] for r in recs}), m + 40)

        # each change not on the broker at the kill (its first copy is at or
        # after the end offsets then) is of a transaction the slot had not
        # confirmed
        first_copy = {}
        for r in sorted(recs, key=lambda r: (r["partition"], r["offset"])):
            first_copy.setdefault(r["event_id"], r)
        undelivered = [r for r in first_copy.values()
                       if r["offset"] >= ends_at_kill.get(r["partition"], 0)]
        self.assertTrue(undelivered, "every change was on the broker at the kill")
        for r in undelivered:
            tx_lsn = sfpg.lsn(r["value"]["source"]["lsn"])
            self.assertLess(flush_at_kill, tx_lsn, "confirmed_flush_lsn %s passed "
                            "transaction %s, not delivered at the kill" % (
                                sfpg.lsn_text(flush_at_kill), sfpg.lsn_text(tx_lsn)))
        print("kill -9 with a whole transaction sent: %d of its %d changes reached the "
              "broker from requests sent before the kill, %d changes came only after "
              "the restart" % (
                  m - sum(1 for r in undelivered if big(r)), m, len(undelivered)),
              file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
