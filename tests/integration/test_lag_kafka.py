"""`syncfleet lag` on a real Apache Kafka broker, checked against Kafka's
own kafka-consumer-groups (ConsumerGroupCommand from the same jars).

A pipeline with two message workers delivers its first changes; then the
target answers 503 to everything, so the workers hold their records
(retrying without end) and commit nothing more, while further changes are routed: the message workers' group lags
behind and its offsets stand still. At that moment `syncfleet lag --json`
and `kafka-consumer-groups --describe` must agree, partition by partition,
on the committed offset, the end offset, the lag and the member holding
it, for the router's group (caught up) and the workers' (behind); the
group's state and members (two, with their partitions) are those of the
Admin API, in the JSON and in the table. Once the target answers again,
every change arrives and the lag returns to zero.
"""

import json
import os
import subprocess
import time
import unittest

import sfkafka
import sftest

IDS = range(1, 61)
PARTITIONS = 3


class LagOnKafkaTest(sfkafka.KafkaTestCase):

    def lag_cmd(self, pipe, *args):
        res = subprocess.run([sftest.env_path("SYNCFLEET"), "lag", "-c", pipe.config,
                              "--brokers", pipe.bootstrap] + list(args),
                             capture_output=True, text=True, timeout=60,
                             env=dict(os.environ, SF_PROCESS="lag", **pipe.env))
        self.assertEqual(res.returncode, 0, "syncfleet lag failed: %s" % res.stderr)
        self.assertEqual(res.stderr, "", "syncfleet lag says nothing on stderr")
        return res.stdout

    def lag_json(self, pipe):
        doc = json.loads(self.lag_cmd(pipe, "--json"))
        return {g["group"]: g for g in doc["groups"]}

    def test_lag_agrees_with_kafka_consumer_groups(self):
        rcv = self.receiver()
        # Retried for as long as the test needs: nothing is finished (or
        # dead-lettered) while the target is down.
        pipe = self.pipeline("lagk%d" % os.getpid(), rcv, PARTITIONS, max_attempts=100000)
        writer = sftest.ChangeWriter(pipe.db_path, 11)
        self.addCleanup(writer.close)
        workers = [pipe.worker("worker-a"), pipe.worker("worker-b")]
        router = pipe.router()
        producer = pipe.producer()
        procs = [producer, router] + workers
        writer.wait_capturing(producer)
        writer.insert(IDS)
        sftest.wait_converged(rcv, writer, IDS, 60, procs)

        rcv.set_rules([{"path": "/customers/*", "status": 503}])
        writer.random_changes(IDS, count=150, pause=0)
        wgroup, rgroup = pipe.group("message-workers"), pipe.group("router")
        out_topic = pipe.topic("outbound.message")

        def held():
            """Two readings in a row alike, the router caught up and the
            workers behind on every partition's records written."""
            a = self.lag_json(pipe)
            time.sleep(1.0)
            b = self.lag_json(pipe)
            ends = sum(p["end"] for p in b[wgroup]["partitions"])
            if a == b and b[rgroup]["lag"] == 0 and b[wgroup]["lag"] > 0 and \
                    ends == writer.changes:
                return b
            return None
        lag = sftest.wait_for(held, 60, "the workers' offsets to stand still, behind",
                              interval=1.0)
        kafka = {g: sfkafka.describe_group_offsets(pipe.bootstrap, g) for g in (rgroup, wgroup)}
        self.assertEqual(self.lag_json(pipe), lag, "nothing moved while Kafka's tool ran")

        for group, topic in ((rgroup, pipe.topic("sync-log")), (wgroup, out_topic)):
            ours = {p["partition"]: p for p in lag[group]["partitions"]}
            theirs = {part: row for (t, part), row in kafka[group].items() if t == topic}
            self.assertEqual(sorted(ours), list(range(PARTITIONS)), group)
            self.assertEqual(sorted(theirs), list(range(PARTITIONS)),
                             "kafka-consumer-groups lists %s's partitions of %s" % (group, topic))
            for part in range(PARTITIONS):
                o, k = ours[part], theirs[part]
                self.assertEqual((o["committed"], o["end"], o["lag"], o["member_id"]),
                                 (k["committed"], k["end"], k["lag"], k["consumer"]),
                                 "%s %s [%d]: syncfleet lag (committed, end, lag, member) "
                                 "agrees with kafka-consumer-groups" % (group, topic, part))
        self.assertGreater(lag[wgroup]["lag"], 0)

        g = lag[wgroup]
        self.assertEqual(g["state"], "Stable")
        self.assertEqual(len(g["members"]), 2, g["members"])
        self.assertEqual(sorted(p for m in g["members"] for p in m["partitions"]),
                         list(range(PARTITIONS)), "the members hold every partition once")
        for m in g["members"]:
            self.assertEqual(m["client_id"], "syncfleet-worker", m)
            self.assertIsNone(m["instance_id"], m)
            for p in m["partitions"]:
                self.assertEqual([x["member_id"] for x in g["partitions"]
                                  if x["partition"] == p], [m["member_id"]])
        table = self.lag_cmd(pipe)
        print(table)
        self.assertIn("%-36s state Stable, 2 members\n" % wgroup, table)
        for m in g["members"]:
            self.assertIn("%-36s member %s (client syncfleet-worker on %s): partitions %s\n" % (
                wgroup, m["member_id"], m["host"], ",".join(map(str, m["partitions"]))), table)
        for p in g["partitions"]:
            self.assertRegex(table, r"(?m)^%s +%s +%d +%d +%d +%d$" % (
                wgroup.replace(".", r"\."), out_topic.replace(".", r"\."), p["partition"],
                p["committed"], p["end"], p["lag"]))

        rcv.set_rules([])
        sftest.wait_converged(rcv, writer, IDS, 90, procs)
        sftest.wait_for(lambda: self.lag_json(pipe)[wgroup]["lag"] == 0, 30,
                        "the lag of %s to return to zero" % wgroup, interval=0.5)
        sftest.stop_cleanly(self, procs)


if __name__ == "__main__":
    unittest.main()
