"""The end-to-end pipeline of test_pipeline_e2e on a three-node Apache
Kafka cluster (KRaft, each node a broker and a controller), with one
broker killed with SIGKILL mid-stream and started again later.

The topics are created by syncfleet with its defaults for a cluster of
three: replication factor 3 and min.insync.replicas 2, checked against
the cluster's own view. While the writer's changes flow, the broker that
leads the most sync-log partitions is killed (kill -9): its partitions get
new leaders, the two brokers left keep every write acknowledged
(acks=all, min.insync.replicas=2), and changes keep arriving at the
receiver while it is down (a few hundred requests before it is started
again). It is started again and catches up: every partition's in-sync
replicas are all three again.

The consumers' session timeout is longer than a broker's failover (see
pipeline()), so no group gives its partitions up when its coordinator
dies. Asserted, besides everything test_pipeline_e2e asserts (every change
arrived, in order per id, retries and the DLQ as the rules say, each
record once in the sync-log and the outbound topic, every process running
throughout and exiting 0 on SIGTERM): the topics' replication, that the
kill and the restart happened while changes were being delivered, and
that requests arrived while the broker was down.
"""

import json
import os
import subprocess
import threading
import time
import unittest

import sfkafka
import sftest
import test_pipeline_e2e as e2e

KILL_AFTER = 400      # requests at the receiver before the kill
WHILE_DOWN = 300      # requests that must arrive before the restart


def partitions(bootstrap, topic):
    """[(leader node id, sorted in-sync replica ids)] of TOPIC's partitions
    in order, from the cluster's metadata."""
    res = subprocess.run(["kcat", "-L", "-J", "-b", bootstrap, "-t", topic],
                         capture_output=True, timeout=30)
    meta = json.loads(res.stdout)
    parts = [p for t in meta["topics"] if t["topic"] == topic for p in t["partitions"]]
    return [(p["leader"], sorted(r["id"] for r in p["isrs"]))
            for p in sorted(parts, key=lambda p: p["partition"])]


class PipelineOnThreeBrokersTest(sfkafka.KafkaTestCase, e2e.PipelineEndToEndTest):
    NODES = 3

    def receiver(self, rules=None, name="receiver"):
        rcv = super().receiver(rules, name)
        self._chaos = threading.Thread(target=self._kill_and_restart, args=(rcv,),
                                       name="broker-chaos", daemon=True)
        self._chaos_log = {}
        self._chaos_error = None
        self._chaos.start()
        return rcv

    def pipeline(self, prefix, receiver, partitions=4, **options):
        # A group's coordinator may be the broker killed: its members then
        # get no answer until another broker took the group over (about
        # the broker session timeout and a leader election). With
        # syncfleet's 10 s session timeout they would give their
        # partitions up meanwhile and replay from the last commit, which
        # at least once allows; a session longer than the failover keeps
        # the assignment, and then nothing at all is sent twice.
        options.setdefault("kafka_config", {"session.timeout.ms": "45000"})
        self._pipe = super().pipeline(prefix, receiver, partitions, **options)
        return self._pipe

    def _kill_and_restart(self, rcv):
        log = self._chaos_log
        try:
            sftest.wait_for(lambda: len(rcv.requests()) >= KILL_AFTER, 90,
                            "%d requests at the receiver" % KILL_AFTER, interval=0.05)
            topic = self._pipe.topic("sync-log")
            led = [leader for leader, _ in partitions(self.cluster.bootstrap, topic)]
            victim = max(set(led), key=led.count)
            index = [n.id for n in self.cluster.node].index(victim)
            log["victim"] = victim
            log["killed_at_requests"] = len(rcv.requests())
            self.cluster.kill(index)
            log["killed"] = time.monotonic()
            print("kill -9 of broker %d (leader of %d of %d %s partitions) at %d requests"
                  % (victim, led.count(victim), len(led), topic, log["killed_at_requests"]))
            # The pipeline goes on with two brokers: their partitions get
            # new leaders, and acks=all needs two in-sync replicas only.
            sftest.wait_for(lambda: len(rcv.requests()) >=
                            log["killed_at_requests"] + WHILE_DOWN, 90,
                            "%d more requests while broker %d is down" % (WHILE_DOWN, victim),
                            interval=0.1)
            log["restarting"] = time.monotonic()
            log["down_requests"] = len(rcv.requests()) - log["killed_at_requests"]
            self.cluster.restart(index)
            log["restarted"] = time.monotonic()
            log["restarted_at_requests"] = len(rcv.requests())
            print("broker %d back after %.1fs down (%.1fs to restart), at %d requests" % (
                victim, log["restarting"] - log["killed"], log["restarted"] - log["restarting"],
                log["restarted_at_requests"]))
        except BaseException as e:  # re-raised by the test
            self._chaos_error = e

    def test_changes_arrive_complete_and_in_order(self):
        super().test_changes_arrive_complete_and_in_order()
        self._chaos.join(120)
        if self._chaos_error:
            raise self._chaos_error
        log = self._chaos_log
        self.assertIn("restarted", log, "the broker was killed and restarted: %s" % log)
        for suffix in ("sync-log", "outbound.message", "outbound.webservice", "dlq"):
            topic = self._pipe.topic(suffix)
            t = sfkafka.describe_topic(self.cluster.bootstrap, topic)
            self.assertEqual(t["replicas"], [[1, 2, 3]] * 4,
                             "%s: replication factor 3 (min(3, brokers))" % topic)
            self.assertEqual(t["configs"].get("min.insync.replicas"), "2",
                             "%s: min.insync.replicas 2 (min(2, replication))" % topic)

            seen = []

            def caught_up(topic=topic):
                seen[:] = partitions(self.cluster.bootstrap, topic)
                return [isr for _, isr in seen] == [[1, 2, 3]] * 4
            try:
                sftest.wait_for(caught_up, 60, "broker %d to be in sync again on %s" % (
                    log["victim"], topic), interval=1.0)
            except AssertionError as e:
                raise AssertionError("%s; (leader, in-sync replicas) per partition: %s" % (
                    e, seen)) from None


class RollingRestartTest(sfkafka.KafkaTestCase):
    """A rolling restart of the three brokers (each stopped with SIGTERM,
    its leadership moving away first, then started again and caught up
    before the next) under a steady stream of changes: nothing lost, order
    per id kept, no syncfleet process exits, the groups' lag back to
    zero."""

    NODES = 3

    def test_rolling_restart_of_every_broker(self):
        ids = range(1, 81)
        rcv = self.receiver()
        pipe = self.pipeline("roll%d" % os.getpid(), rcv, 4,
                             kafka_config={"session.timeout.ms": "45000"})
        writer = sftest.ChangeWriter(pipe.db_path, 5)
        self.addCleanup(writer.close)
        workers = [pipe.worker("worker-a"), pipe.worker("worker-b")]
        router = pipe.router()
        producer = pipe.producer()
        procs = [producer, router] + workers
        writer.wait_capturing(producer)
        writer.insert(ids)
        writer.start(ids, delete_ratio=0.05, pause=0.02)
        self.addCleanup(writer.stop)
        topics = [pipe.topic(s) for s in ("sync-log", "outbound.message")]
        for index, node in enumerate(self.cluster.node):
            before = len(rcv.requests())
            t0 = time.monotonic()
            rc = self.cluster.stop_node(index)
            stopped = time.monotonic()
            self.cluster.restart(index)
            for topic in topics:
                sftest.wait_for(lambda topic=topic: [isr for _, isr in partitions(
                    self.cluster.bootstrap, topic)] == [[1, 2, 3]] * 4, 60,
                    "broker %d to be in sync again on %s" % (node.id, topic), interval=0.5)
            for p in procs:
                p.assert_running()
            print("broker %d: stopped (exit %d) in %.1fs, back and in sync %.1fs later; "
                  "%d requests meanwhile" % (node.id, rc, stopped - t0,
                                             time.monotonic() - stopped,
                                             len(rcv.requests()) - before))
            self.assertGreater(len(rcv.requests()), before,
                               "changes kept arriving while broker %d restarted" % node.id)
        writer.stop()
        by_id = sftest.wait_converged(rcv, writer, ids, 90, procs)
        self.assertEqual([], sftest.lost_changes(by_id, writer, ids),
                         "every committed change arrived")
        self.assertEqual([], sftest.order_problems(by_id, writer, ids),
                         "each id's changes arrive in source order, none twice out of turn")
        sftest.wait_for(lambda: sfkafka.lag(self, pipe).get(pipe.group("message-workers")) == 0,
                        30, "the workers' lag to return to zero", interval=0.5)
        sftest.stop_cleanly(self, procs)


if __name__ == "__main__":
    unittest.main()
