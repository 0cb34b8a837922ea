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
was still undelivered).

The test body is test_postgres_recovery's, run with the embedded broker
swapped for the real cluster."""

import os
import re
import signal
import unittest

import sfkafka
import sfpg
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


if __name__ == "__main__":
    unittest.main()
