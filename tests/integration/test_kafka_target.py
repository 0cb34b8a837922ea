"""A message whose target is a kafka connector: each document becomes one
record on the target topic, keyed by action and root record (so a record's
changes stay in order in one partition), with the event id in the
syncfleet-event-id header, exactly as rendered by the mapping."""

import json
import os
import sqlite3
import unittest

import sftest

PIPELINE = """
version: 1
name: to-topic
kafka:
  brokers: ${SF_BROKERS}
  topic_prefix: kt
  partitions: 2
source: { type: sqlite, path: ./erp.db, poll_interval_ms: 20 }
tables:
  customers: { key: [id] }
connectors:
  bus: { type: kafka, topic: crm.customers }
messages:
  customer-to-bus:
    trigger: { table: customers, events: [insert, update] }
    target: { connector: bus }
    mapping: { id: "{{id}}", name: "{{name | upper}}", event: "{{@event}}" }
"""


class KafkaTargetTest(sftest.TestCase):
    def test_documents_published_keyed_in_order(self):
        syncfleet = sftest.env_path("SYNCFLEET")
        broker = self.broker(partitions=2, prefix="kt")
        # the target topic exists before the worker publishes to it
        sftest.kcat_produce(broker.bootstrap, "crm.customers", [("warmup", "{}")])
        pipeline = self.tmp.write("pipeline.yaml", PIPELINE)
        db = sqlite3.connect(self.tmp.join("erp.db"), isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        env = dict(os.environ, SF_BROKERS=broker.bootstrap)
        run = self.start([syncfleet, "run", "-c", pipeline], "run", env=env)
        run.wait_line(r"running pipeline to-topic", timeout=20, stream="stderr")
        db.execute("INSERT INTO customers VALUES (1, 'ada')")
        db.execute("INSERT INTO customers VALUES (2, 'grace')")
        db.execute("UPDATE customers SET name = 'ada king' WHERE id = 1")

        records = [r for r in sftest.kcat_consume(broker.bootstrap, "crm.customers",
                                                  count=4, timeout=40)
                   if r["key"] != "warmup"]
        by_key = {}
        for r in records:
            by_key.setdefault(r["key"], []).append(r)
        key1 = '{"action":"customer-to-bus","key":{"id":1},"table":"customers"}'
        key2 = '{"action":"customer-to-bus","key":{"id":2},"table":"customers"}'
        self.assertEqual(sorted(by_key), sorted([key1, key2]))
        self.assertEqual([json.loads(r["value"]) for r in by_key[key1]],
                         [{"id": 1, "name": "ADA", "event": "insert"},
                          {"id": 1, "name": "ADA KING", "event": "update"}])
        self.assertEqual([json.loads(r["value"]) for r in by_key[key2]],
                         [{"id": 2, "name": "GRACE", "event": "insert"}])
        self.assertEqual(len({r["partition"] for r in by_key[key1]}), 1)
        for r in records:
            self.assertTrue(r["headers"].get("syncfleet-event-id", "").startswith("sqlite:"), r)
        self.assertEqual(sftest.kcat_consume(broker.bootstrap, "kt.dlq"), [])
        run.stop(timeout=20)


if __name__ == "__main__":
    unittest.main()
