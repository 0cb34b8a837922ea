"""Topic creation on a real Apache Kafka broker (one node, KRaft).

A syncfleet component started on a cluster that lacks the pipeline's
topics creates them with CreateTopics: kafka.partitions partitions, the
replication factor (default min(3, brokers): 1 here) and
min.insync.replicas set on each topic (default min(2, replication): 1).
Asserted against the broker's own view (metadata and kafka-configs):
the topics and their settings; a refusal by the broker (a replication
factor the cluster cannot place) is logged naming every topic and the
broker's reason, and creates nothing; an existing topic with fewer
partitions is reported with both numbers and left as it is; a
min_insync_replicas above what the cluster can replicate is refused
before anything is asked of the broker. The three-node defaults (3 and 2)
are checked by test_cluster_kafka.
"""

import os
import unittest

import sfkafka
import sftest

SUFFIXES = ("sync-log", "outbound.message", "outbound.webservice", "dlq")


class TopicsOnKafkaTest(sfkafka.KafkaTestCase):

    def worker(self, prefix, partitions=4, **options):
        """`syncfleet worker` on a pipeline with PREFIX; returns it once it
        logged its topic creation (or its failure)."""
        pipe = self.pipeline(prefix, _NoReceiver, partitions, **options)
        proc = pipe.worker("worker-" + prefix)
        proc.wait_line(r"(creating topics|topic %s\.dlq (created|exists)|consuming )" % prefix,
                       timeout=40, stream="stderr")
        return pipe, proc

    def test_missing_topics_are_created_with_the_pipeline_settings(self):
        prefix = "tc%d" % os.getpid()
        pipe, proc = self.worker(prefix, partitions=5)
        for suffix in SUFFIXES:
            topic = pipe.topic(suffix)
            t = sfkafka.describe_topic(pipe.bootstrap, topic)
            self.assertIsNotNone(t, "%s was created" % topic)
            self.assertEqual(t["partitions"], 5, "%s has kafka.partitions partitions" % topic)
            self.assertEqual(t["replicas"], [[1]] * 5, "%s: replication factor 1 on one broker"
                             % topic)
            self.assertEqual(t["configs"].get("min.insync.replicas"), "1",
                             "%s: min.insync.replicas is set on the topic" % topic)
            self.assertRegex(proc.stderr(), r"topic %s created: 5 partitions, replication "
                             r"factor 1, min.insync.replicas 1" % topic.replace(".", r"\."))
        proc.stop()

    def test_a_refused_creation_names_each_topic_and_the_reason(self):
        prefix = "tr%d" % os.getpid()
        pipe, proc = self.worker(prefix, replication_factor=3)
        line = proc.wait_line(r"creating topics: (.*)$", stream="stderr").group(1)
        for suffix in SUFFIXES:
            topic = pipe.topic(suffix)
            self.assertIn("cannot create topic %s: Broker: Invalid replication factor" % topic,
                          line)
            self.assertIsNone(sfkafka.describe_topic(pipe.bootstrap, topic),
                              "%s was not created" % topic)
        self.assertIn("replication factor of 3 cannot be reached because only 1 broker", line,
                      "the broker's own reason is in the message")
        proc.assert_running()  # a warning: the topics may appear later
        proc.stop()

    def test_an_existing_topic_with_fewer_partitions_is_reported(self):
        prefix = "tf%d" % os.getpid()
        sfkafka.create_topic(self.cluster.bootstrap, prefix + ".sync-log", 2)
        pipe, proc = self.worker(prefix, partitions=4)
        proc.wait_line(r"topic %s\.sync-log has 2 partitions, fewer than the 4 of "
                       r"kafka\.partitions: it is used as it is" % prefix, stream="stderr")
        self.assertEqual(sfkafka.describe_topic(pipe.bootstrap, pipe.topic("sync-log"))
                         ["partitions"], 2, "the existing topic is left as it is")
        for suffix in SUFFIXES[1:]:
            self.assertEqual(sfkafka.describe_topic(pipe.bootstrap, pipe.topic(suffix))
                             ["partitions"], 4, "the missing %s was created" % suffix)
        proc.stop()

    def test_min_insync_above_the_replication_the_cluster_allows(self):
        prefix = "tm%d" % os.getpid()
        pipe, proc = self.worker(prefix, min_insync_replicas=2)
        proc.wait_line(r"creating topics: kafka\.min_insync_replicas 2 is more than the "
                       r"replication factor 1 \(the cluster has 1 broker\): no write could "
                       r"succeed; set kafka\.replication_factor$", stream="stderr")
        self.assertIsNone(sfkafka.describe_topic(pipe.bootstrap, pipe.topic("sync-log")))
        proc.stop()


class _NoReceiver:
    url = "http://127.0.0.1:9"


if __name__ == "__main__":
    unittest.main()
