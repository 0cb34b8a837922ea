"""Settled acknowledgement through every routing feature: coalescing, a
sync delay, redirect of child events to their root record, query mode,
several subscribers per change (an HTTP target and a file target), and a
web service action whose response step writes back into the source.

Every target answers 503 while changes are made, then `syncfleet run`
gets SIGTERM: none of the changes has left the source's log. After a
restart with healthy targets every subscriber gets every record's final
state, the write-back lands, and the log empties.
"""

import json
import os
import sqlite3
import unittest

import sftest

PIPELINE = """\
version: 1
name: feats
kafka: { brokers: embedded, topic_prefix: ft, partitions: 3,
         config: { session.timeout.ms: "4000", heartbeat.interval.ms: "500" } }
source: { type: sqlite, path: ./erp.db, poll_interval_ms: 20 }
router: { coalesce_ms: 200, delay_ms: 200 }
tables:
  customers: { key: [id] }
  orders: { key: [id] }
  lines:
    key: [id]
    parent: { table: orders, key: { id: order_id } }
connectors:
  api:
    type: http
    base_url: "%(url)s"
    timeout_ms: 2000
    retry: { max_attempts: 100000, initial_backoff_ms: 50, max_backoff_ms: 300 }
  archive: { type: file, dir: ./archive, format: jsonl }
  erp: { type: database }
messages:
  customer-to-api:
    trigger: { table: customers, events: [insert, update] }
    target: { connector: api, method: PUT, path: "/customers/{{id}}" }
    mapping: { id: "{{id}}", name: "{{name}}" }
  customer-to-archive:
    trigger: { table: customers, events: [insert, update] }
    target: { connector: archive }
    mapping: { id: "{{id}}", name: "{{name}}" }
  order-to-api:
    trigger: { table: orders, events: [insert, update] }
    source:
      mode: query
      records:
        lines: { table: lines, where: { order_id: id } }
    target: { connector: api, method: PUT, path: "/orders/{{id}}" }
    mapping:
      id: "{{id}}"
      lines: { each: lines, map: { item: "{{item}}", qty: "{{qty}}" } }
web_service_actions:
  credit-check:
    trigger: { table: customers, events: [insert] }
    request: { connector: api, method: POST, path: /credit-checks,
               body: { customer: "{{id}}" } }
    response:
      target: { connector: erp, table: customers, operation: update, key: [id] }
      mapping: { id: "{{id}}", credit_limit: "{{@response.limit}}" }
"""

CUSTOMERS = range(1, 11)
ORDERS = range(1, 6)


class SettledFeaturesTest(sftest.TestCase):

    def test_every_feature_settles_and_survives_a_restart(self):
        rcv = self.receiver([{"path": "/*", "status": 503, "scope": "rule"}])
        config = self.tmp.write("pipeline.yaml", PIPELINE % {"url": rcv.url})
        db = sqlite3.connect(self.tmp.join("erp.db"), isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA busy_timeout=20000")
        db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, "
                   "credit_limit INTEGER)")
        db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, note TEXT)")
        db.execute("CREATE TABLE lines (id INTEGER PRIMARY KEY, order_id INTEGER, "
                   "item TEXT, qty INTEGER)")
        syncfleet = sftest.env_path("SYNCFLEET")

        def run(name):
            proc = self.start([syncfleet, "run", "-c", config], name,
                              env=dict(os.environ, SYNCFLEET_LOG="info"), cwd=self.tmp.path)
            proc.wait_line(r"running pipeline feats", timeout=30, stream="stderr")
            return proc

        first = run("run")
        sftest.wait_for(lambda: db.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'").fetchone()[0] >= 6,
            20, "capture triggers")
        for cid in CUSTOMERS:
            db.execute("INSERT INTO customers (id, name) VALUES (?, ?)", (cid, "c%d" % cid))
        for round_ in range(3):  # coalesced within the window, or not
            for cid in CUSTOMERS:
                db.execute("UPDATE customers SET name = ? WHERE id = ?",
                           ("c%d v%d" % (cid, round_), cid))
        for oid in ORDERS:
            db.execute("INSERT INTO orders VALUES (?, 'new')", (oid,))
            for n in range(3):
                db.execute("INSERT INTO lines VALUES (?, ?, ?, ?)",
                           (oid * 10 + n, oid, "item%d" % n, n + 1))
        db.execute("UPDATE lines SET qty = 99 WHERE id = 11")  # redirected to order 1
        made = db.execute("SELECT count(*) FROM _syncfleet_log").fetchone()[0]
        sftest.wait_for(lambda: {r["path"] for r in rcv.requests()} >=
                        {"/customers/%d" % c for c in CUSTOMERS} |
                        {"/orders/%d" % o for o in ORDERS} | {"/credit-checks"},
                        30, "every record tried at the target (answered 503)")
        first.stop(timeout=20)
        self.assertEqual(db.execute("SELECT count(*) FROM _syncfleet_log").fetchone()[0],
                         made, "no change left the source before it was settled")

        rcv.set_rules([{"path": "/credit-checks", "body": '{"limit":700}'}])
        second = run("run-2")

        def last(path):
            got = [r for r in rcv.requests(path) if r["status"] == 200]
            return json.loads(got[-1]["body"]) if got else None

        def arrived():
            return all(last("/customers/%d" % c) == {"id": c, "name": "c%d v2" % c}
                       for c in CUSTOMERS) and all(
                last("/orders/%d" % o) is not None for o in ORDERS)

        sftest.wait_for(arrived, 60, "every customer's and order's final state")
        self.assertEqual(last("/orders/1"), {"id": 1, "lines": [
            {"item": "item0", "qty": 1}, {"item": "item1", "qty": 99},
            {"item": "item2", "qty": 3}]})
        sftest.wait_for(lambda: db.execute(
            "SELECT count(*) FROM customers WHERE credit_limit = 700").fetchone()[0]
            == len(CUSTOMERS), 30, "every credit limit written back")
        archive = self.tmp.join("archive", "customer-to-archive.jsonl")

        def archived():
            if not os.path.exists(archive):
                return {}
            final = {}
            with open(archive) as f:
                for line in f:
                    doc = json.loads(line)
                    final[doc["id"]] = doc["name"]
            return final

        sftest.wait_for(lambda: archived() == {c: "c%d v2" % c for c in CUSTOMERS}, 30,
                        "the file target's final state of every customer")
        sftest.wait_for(lambda: db.execute(
            "SELECT count(*) FROM _syncfleet_log").fetchone()[0] == 0, 20,
            "every settled change to leave the log")
        self.assertNotIn("to the DLQ", second.stderr())
        second.stop(timeout=20)


if __name__ == "__main__":
    unittest.main()
