"""Malformed and unexpected records go to the DLQ; the pipeline carries on.

With the pipeline running as separate processes around a `syncfleet
broker`, kcat writes into PREFIX.sync-log a value that is not JSON, a
change with op "x", a change without a record key, and a change of a table
the pipeline does not know (no subscriber: not an error); and into
PREFIX.outbound.message a value that is not JSON, a record naming an
action the pipeline does not have, and a record whose image lacks a field
the mapping uses.

Asserted: each bad record is in PREFIX.dlq, unchanged (key, value and its
own headers), with syncfleet-error naming the reason, syncfleet-stage the
component, syncfleet-origin where it came from, attempts and failed-at;
the unknown-table change is not there; nothing of them reached the
receiver; and changes written to SQLite afterwards still arrive.
"""

import json
import os
import re
import time
import unittest

import sftest
from sftest import kcat_consume, kcat_produce

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
ACTION = "customer-to-webshop"


def change(table, cid, op="c", **extra):
    value = {"op": op, "ts_ms": int(time.time() * 1000),
             "source": {"connector": "sqlite", "db": "erp.db", "table": table, "seq": cid},
             "before": None,
             "after": {"id": cid, "name": "Bad %d" % cid, "email": "b%d@example.test" % cid,
                       "version": 1}}
    value.update(extra)
    return json.dumps(value, separators=(",", ":"))


def change_key(table, cid):
    return '{"key":{"id":%d},"table":"%s"}' % (cid, table)


def outbound(action, cid, record):
    now = int(time.time() * 1000)
    return json.dumps({
        "kind": "message", "action": action, "event": "insert", "table": "customers",
        "key": {"id": cid}, "root": {"table": "customers", "key": {"id": cid}},
        "record": record, "before": None, "event_id": "bad-outbound-%d" % cid,
        "source_ts_ms": now, "routed_ts_ms": now}, separators=(",", ":"))


def outbound_key(action, cid):
    return '{"action":"%s","key":{"id":%d},"table":"customers"}' % (action, cid)


# (name, key, value, stage, what syncfleet-error must contain); stage None:
# not an error, must not reach the DLQ.
SYNC_LOG = [
    ("unknown-table", change_key("suppliers", 9000), change("suppliers", 9000), None, None),
    ("not-json", change_key("customers", 9001), "{this is not JSON", "router",
     "value is not JSON"),
    ("op-x", change_key("customers", 9002), change("customers", 9002, op="x"), "router",
     'op "x" is not one of c, u, d, r'),
    ("no-key", None, change("customers", 9003), "router", "key is missing"),
]
OUTBOUND = [
    ("garbage", "garbage-key", "}}garbage{{ \u00e9", "message", "value is not JSON"),
    ("unknown-action", outbound_key("no-such-action", 9005),
     outbound("no-such-action", 9005, {"id": 9005, "name": "N", "email": "e", "version": 1}),
     "message", "no message named 'no-such-action' in the pipeline"),
    ("missing-field", outbound_key(ACTION, 9006),
     outbound(ACTION, 9006, {"id": 9006, "name": "No email", "version": 1}),
     "message", "missing field 'email'"),
]


class MalformedRecordsTest(sftest.TestCase):

    def test_bad_records_are_dead_lettered_and_the_pipeline_keeps_running(self):
        started = time.monotonic()
        rcv = self.receiver()
        pipe = self.pipeline("mal%d" % os.getpid(), rcv)
        writer = sftest.ChangeWriter(pipe.db_path, 7)
        self.addCleanup(writer.close)
        procs = [pipe.producer(), pipe.router(), pipe.worker()]
        writer.wait_capturing(procs[0])
        writer.insert([1])
        pipe.wait_published(1)
        sftest.wait_converged(rcv, writer, [1], 60, procs)

        # One partition each, in this order: by the time the router
        # dead-letters the records after the unknown-table change, it has
        # handled that change too.
        injected = {}
        for topic, records in ((pipe.topic("sync-log"), SYNC_LOG),
                               (pipe.topic("outbound.message"), OUTBOUND)):
            for name, key, value, stage, reason in records:
                kcat_produce(pipe.bootstrap, topic, [
                    (key, value, {"syncfleet-event-id": "bad-" + name})], partition=0)
                injected[name] = (topic, key, value, stage, reason)
        bad = [n for n, (_, _, _, stage, _) in injected.items() if stage]
        dlq = kcat_consume(pipe.bootstrap, pipe.topic("dlq"), count=len(bad), timeout=30)

        # The pipeline still runs: later changes arrive.
        writer.transaction([("u", 1), ("c", 2)])
        by_id = sftest.wait_converged(rcv, writer, [1, 2], 30, procs)
        for p in procs:
            p.assert_running()

        dlq = kcat_consume(pipe.bootstrap, pipe.topic("dlq"))
        by_value = {}
        for rec in dlq:
            by_value.setdefault(rec["value"], []).append(rec)
        self.assertEqual(len(dlq), len(bad), "the DLQ holds exactly the bad records: %s" % [
            (r["key"], r["headers"].get("syncfleet-error")) for r in dlq])
        sources = {t: kcat_consume(pipe.bootstrap, t, partition=0)
                   for t in (pipe.topic("sync-log"), pipe.topic("outbound.message"))}
        for name, (topic, key, value, stage, reason) in injected.items():
            with self.subTest(record=name):
                self.check_dead_letter(name, topic, key, value, stage, reason,
                                       by_value.get(value, []), dlq, sources)

        stray = sorted(cid for cid in by_id if cid >= 9000)
        self.assertEqual(stray, [], "no bad record reached the receiver")
        sftest.stop_cleanly(self, procs)
        print("test_malformed: %.1fs" % (time.monotonic() - started))

    def check_dead_letter(self, name, topic, key, value, stage, reason, found, dlq, sources):
        """One injected record: not in the DLQ when stage is None, else
        there once, unchanged, with the headers DESIGN.md names."""
        if stage is None:
            self.assertEqual(found, [], "%s: a change of a table without subscribers is "
                             "not an error, yet it is in the DLQ" % name)
            return
        self.assertEqual(len(found), 1, "%s is in the DLQ once, value unchanged: %s" % (
            name, [r["value"] for r in dlq]))
        rec, h = found[0], found[0]["headers"]
        self.assertIn(reason, h.get("syncfleet-error", ""),
                      "%s: syncfleet-error names the reason" % name)
        self.assertEqual(h.get("syncfleet-stage"), stage, "%s: syncfleet-stage" % name)
        # A record that could not be parsed was never tried: 0 or 1 both make
        # sense there; the one whose mapping failed was tried once.
        self.assertRegex(h.get("syncfleet-attempts", ""), r"^\d+$", "%s: attempts" % name)
        if name == "missing-field":
            self.assertEqual(h.get("syncfleet-attempts"), "1", "%s: attempts" % name)
        self.assertRegex(h.get("syncfleet-failed-at", ""), ISO_UTC, name)
        origin = [r for r in sources[topic] if r["value"] == value]
        self.assertEqual(len(origin), 1, name)
        self.assertEqual(h.get("syncfleet-origin"), "%s/0/%d" % (topic, origin[0]["offset"]),
                         "%s: syncfleet-origin is topic/partition/offset" % name)
        self.assertEqual(h.get("syncfleet-event-id"), "bad-" + name,
                         "%s: the record's own headers are kept" % name)
        self.assertEqual(rec["key"], key, "%s: the DLQ record's key is the failed "
                         "record's, unchanged (None is a null key)" % name)


if __name__ == "__main__":
    unittest.main()
