"""A record too large for the DLQ does not stall its partition.

With the pipeline's router and message worker running as separate
processes around a `syncfleet broker` (the DLQ is then the topic
PREFIX.dlq), kcat writes on partition 0 of PREFIX.outbound.message a 3 MB
outbound record whose mapping fails (it has no email) and a record of
more than 8 MiB, then a good record; and on partition 0 of PREFIX.sync-log
a 2 MB value that is not JSON and a value of more than 8 MiB, then a good
change. The producers of syncfleet keep librdkafka's message.max.bytes
(1,000,000 bytes), so none of the four fits into the DLQ as it is.

Asserted: each of the four is in PREFIX.dlq once, with its key and
syncfleet's headers but without its value, and syncfleet-error says why it
failed, how large the value was and what the limit is; the good records
reach the receiver; and the committed offsets of the router's and the
workers' groups reach the end of partition 0, past the oversized records.
"""

import json
import os
import subprocess
import time
import unittest

import sftest
from sftest import kcat_consume

ACTION = "customer-to-webshop"
MB = 1000 * 1000


def outbound(cid, record):
    now = int(time.time() * 1000)
    return json.dumps({
        "kind": "message", "action": ACTION, "event": "insert", "table": "customers",
        "key": {"id": cid}, "root": {"table": "customers", "key": {"id": cid}},
        "record": record, "before": None, "event_id": "big-outbound-%d" % cid,
        "source_ts_ms": now, "routed_ts_ms": now}, separators=(",", ":"))


def outbound_key(cid):
    return '{"action":"%s","key":{"id":%d},"table":"customers"}' % (ACTION, cid)


def change(cid):
    return json.dumps({
        "op": "c", "ts_ms": int(time.time() * 1000),
        "source": {"connector": "sqlite", "db": "erp.db", "table": "customers", "seq": cid},
        "before": None,
        "after": {"id": cid, "name": "Good %d" % cid, "email": "g%d@example.test" % cid,
                  "version": 1}}, separators=(",", ":"))


def change_key(cid):
    return '{"key":{"id":%d},"table":"customers"}' % cid


def kcat_big(test, bootstrap, topic, records):
    """Produces (key, value) records to partition 0 of TOPIC, one kcat run
    each, with kcat's message.max.bytes raised for them."""
    for key, value in records:
        path = test.tmp.write("record.bin", key + "\x1f" + value)
        with open(path, "rb") as f:
            res = subprocess.run(
                ["kcat", "-P", "-b", bootstrap, "-t", topic, "-p", "0", "-K", "\\x1f",
                 "-X", "message.max.bytes=20000000", "-H", "syncfleet-event-id=" + key[:40]],
                stdin=f, capture_output=True, timeout=60)
        test.assertEqual(res.returncode, 0, res.stderr.decode(errors="replace"))


class OversizedDeadLetterTest(sftest.TestCase):
    def test_oversized_records_are_dead_lettered_without_their_value(self):
        rcv = self.receiver()
        pipe = self.pipeline("big%d" % os.getpid(), rcv, partitions=1)
        procs = [pipe.router(), pipe.worker()]
        for p in procs:  # a new group starts at the end of the partition
            p.wait_line(r"assigned 1 partition", timeout=30, stream="stderr")
        out_topic, log_topic = pipe.topic("outbound.message"), pipe.topic("sync-log")

        big_outbound = outbound(9001, {"id": 9001, "name": "x" * (3 * MB), "version": 1})
        huge_outbound = outbound(9002, {"id": 9002, "name": "y" * (9 * 1024 * 1024),
                                        "email": "e", "version": 1})
        good_outbound = outbound(9003, {"id": 9003, "name": "Good", "email": "e@x.test",
                                        "version": 1})
        kcat_big(self, pipe.bootstrap, out_topic, [
            (outbound_key(9001), big_outbound), (outbound_key(9003), good_outbound)])
        garbage = "{not json " + "z" * (2 * MB)
        huge_change = change(9005)[:-1] + ',"pad":"' + "p" * (9 * 1024 * 1024) + '"}'
        kcat_big(self, pipe.bootstrap, log_topic, [
            (change_key(9004), garbage), (change_key(9006), change(9006))])

        rcv.wait_requests(1, path="/customers/9003", timeout=60)
        rcv.wait_requests(1, path="/customers/9006", timeout=60)
        dlq = kcat_consume(pipe.bootstrap, pipe.topic("dlq"), count=2, timeout=60)
        by_key = {r["key"]: r for r in dlq}
        self.assertEqual(sorted(by_key), sorted([
            outbound_key(9001), change_key(9004)]),
            [(r["key"], r["headers"].get("syncfleet-error")) for r in dlq])
        expect = {
            outbound_key(9001): ("message", "missing field 'email'", len(big_outbound)),
            change_key(9004): ("router", "value is not JSON", len(garbage)),
        }
        for key, (stage, reason, size) in expect.items():
            with self.subTest(key=key):
                rec, h = by_key[key], by_key[key]["headers"]
                self.assertIn(rec["value"], (None, ""), "the value is not in the DLQ")
                self.assertEqual(h.get("syncfleet-stage"), stage)
                self.assertIn(reason, h.get("syncfleet-error"))
                self.assertIn("its value of %d bytes is not in the DLQ: larger than the "
                              "producer's message.max.bytes (1000000)" % size,
                              h.get("syncfleet-error"))
                self.assertEqual(h.get("syncfleet-event-id"), key[:40])

        # The groups committed past the oversized records: partition 0 of
        # each topic is done up to its end.
        def committed():
            res = subprocess.run([sftest.env_path("SYNCFLEET"), "lag", "-c", pipe.config,
                                  "--brokers", pipe.bootstrap, "--json"],
                                 capture_output=True, text=True, timeout=60,
                                 env=dict(os.environ, SF_PROCESS="lag", **pipe.env))
            self.assertEqual(res.returncode, 0, res.stderr)
            got = {}
            for g in json.loads(res.stdout)["groups"]:
                for p in g["partitions"]:
                    got[(g["topic"], p["partition"])] = (p["committed"], p["end"])
            return got
        # (the router routed the good change: outbound.message holds 3)
        want = {(out_topic, 0): (3, 3), (log_topic, 0): (2, 2)}
        last = {}

        def done():
            last.update(committed())
            return all(last.get(k) == v for k, v in want.items())
        try:
            sftest.wait_for(done, timeout=30, what="the committed offsets")
        except AssertionError:
            self.fail("committed offsets (committed, end) %s, expected %s" % (last, want))
        for p in procs:
            p.assert_running()
        sftest.stop_cleanly(self, procs)


if __name__ == "__main__":
    unittest.main()
