"""Dead letters the DLQ topic's broker refuses as too large do not stall
their partition (one real Apache Kafka broker).

The pipeline's topics are created beforehand with Kafka's kafka-topics:
PREFIX.outbound.message and PREFIX.sync-log take records up to 12 MB
(max.message.bytes), PREFIX.dlq keeps the broker's default (1 MiB), and
the pipeline's producers may send up to 12 MB (kafka.config
message.max.bytes), so a large dead letter leaves the router and the
worker whole and is refused by the broker on delivery. kcat writes on
partition 0 of PREFIX.outbound.message a 3 MB record whose mapping fails
and a record of more than 8 MiB, then a good record; and on partition 0
of PREFIX.sync-log a 2 MB value that is not JSON and a value of more than
8 MiB, then a good change.

Asserted: each of the four is in PREFIX.dlq once, with its key and
syncfleet's headers but without its value, syncfleet-error saying why it
failed, the value's size and the limit (the broker's refusal, or the
8 MiB syncfleet keeps); the good records reach the receiver; and the
committed offsets of the router's and the workers' groups reach the end
of partition 0.
"""

import json
import os
import subprocess
import unittest

import sfkafka
import sftest
from test_dlq_oversize import change, change_key, kcat_big, outbound, outbound_key

MB = 1000 * 1000
BROKER_REFUSED = "the broker refused it as larger than the DLQ topic's max.message.bytes"
OVER_8MIB = "larger than the 8388608 bytes syncfleet keeps of a record"


class OversizedDeadLetterKafkaTest(sfkafka.KafkaTestCase):
    def test_dead_letters_refused_by_the_broker_go_without_their_value(self):
        rcv = self.receiver()
        prefix = "bk%d" % os.getpid()
        for suffix in ("sync-log", "outbound.message", "outbound.webservice", "dlq"):
            args = ["--bootstrap-server", self.cluster.bootstrap, "--create",
                    "--topic", "%s.%s" % (prefix, suffix), "--partitions", "1",
                    "--replication-factor", "1"]
            if suffix in ("sync-log", "outbound.message"):
                args += ["--config", "max.message.bytes=12000000"]
            rc, out, err = sfkafka.tool("org.apache.kafka.tools.TopicCommand", args)
            self.assertEqual(rc, 0, out + err)
        pipe = self.pipeline(prefix, rcv, partitions=1,
                             kafka_config={"message.max.bytes": "12000000"})
        procs = [pipe.router(), pipe.worker()]
        for p in procs:  # a new group starts at the end of the partition
            p.wait_line(r"assigned 1 partition", timeout=60, stream="stderr")
        out_topic, log_topic = pipe.topic("outbound.message"), pipe.topic("sync-log")

        big_outbound = outbound(9001, {"id": 9001, "name": "x" * (3 * MB), "version": 1})
        huge_outbound = outbound(9002, {"id": 9002, "name": "y" * (9 * 1024 * 1024),
                                        "email": "e", "version": 1})
        good_outbound = outbound(9003, {"id": 9003, "name": "Good", "email": "e@x.test",
                                        "version": 1})
        kcat_big(self, pipe.bootstrap, out_topic, [
            (outbound_key(9001), big_outbound), (outbound_key(9002), huge_outbound),
            (outbound_key(9003), good_outbound)])
        garbage = "{not json " + "z" * (2 * MB)
        huge_change = change(9005)[:-1] + ',"pad":"' + "p" * (9 * 1024 * 1024) + '"}'
        kcat_big(self, pipe.bootstrap, log_topic, [
            (change_key(9004), garbage), (change_key(9005), huge_change),
            (change_key(9006), change(9006))])

        rcv.wait_requests(1, path="/customers/9003", timeout=60)
        rcv.wait_requests(1, path="/customers/9006", timeout=60)
        dlq = sftest.kcat_consume(pipe.bootstrap, pipe.topic("dlq"), count=4, timeout=60)
        by_key = {r["key"]: r for r in dlq}
        expect = {
            outbound_key(9001): ("message", "missing field 'email'", len(big_outbound),
                                 BROKER_REFUSED),
            outbound_key(9002): ("message", "record larger than 8 MiB", len(huge_outbound),
                                 OVER_8MIB),
            change_key(9004): ("router", "value is not JSON", len(garbage), BROKER_REFUSED),
            change_key(9005): ("router", "record larger than 8 MiB", len(huge_change),
                               OVER_8MIB),
        }
        self.assertEqual(sorted(by_key), sorted(expect),
                         [(r["key"], r["headers"].get("syncfleet-error")) for r in dlq])
        for key, (stage, reason, size, limit) in expect.items():
            with self.subTest(key=key):
                rec, h = by_key[key], by_key[key]["headers"]
                self.assertIn(rec["value"], (None, ""), "the value is not in the DLQ")
                self.assertEqual(h.get("syncfleet-stage"), stage)
                self.assertIn(reason, h.get("syncfleet-error"))
                self.assertIn("(its value of %d bytes is not in the DLQ: %s)" % (size, limit),
                              h.get("syncfleet-error"))
                self.assertEqual(h.get("syncfleet-event-id"), key[:40])

        # (the router routed the good change: outbound.message holds 4)
        want = {(out_topic, 0): (4, 4), (log_topic, 0): (3, 3)}
        last = {}

        def done():
            res = subprocess.run([sftest.env_path("SYNCFLEET"), "lag", "-c", pipe.config,
                                  "--json"], capture_output=True, text=True, timeout=60,
                                 env=dict(os.environ, SF_PROCESS="lag", **pipe.env))
            self.assertEqual(res.returncode, 0, res.stderr)
            for g in json.loads(res.stdout)["groups"]:
                for p in g["partitions"]:
                    last[(g["topic"], p["partition"])] = (p["committed"], p["end"])
            return all(last.get(k) == v for k, v in want.items())
        try:
            sftest.wait_for(done, timeout=60, what="the committed offsets")
        except AssertionError:
            self.fail("committed offsets (committed, end) %s, expected %s" % (last, want))
        for p in procs:
            p.assert_running()
        sftest.stop_cleanly(self, procs)


if __name__ == "__main__":
    unittest.main()
