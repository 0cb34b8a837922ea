"""Web service actions end to end: a new customer triggers a credit check
at an external service (the receiver); the reply is written back into the
ERP's SQLite database through the database connector; a failing call runs
the error mapping into a file. A reply copied whole into the table
("{{@response}}") names a row of its own: the row written is still the
record's, the one the call was made for. The write-back must not come back as a new
change: a message subscribed to every customer update sees only the
application's own updates."""

import json
import os
import sqlite3
import unittest

import sftest

PIPELINE = """
version: 1
name: credit
kafka:
  brokers: ${SF_BROKERS}
  topic_prefix: ws
  partitions: 3
  config: { session.timeout.ms: "6000", heartbeat.interval.ms: "1000" }
source: { type: sqlite, path: ./erp.db, poll_interval_ms: 20 }
tables:
  customers: { key: [id] }
connectors:
  crm:
    type: http
    base_url: ${CRM_URL}
    timeout_ms: 2000
    retry: { max_attempts: 3, initial_backoff_ms: 50, max_backoff_ms: 200 }
  shop:
    type: http
    base_url: ${CRM_URL}
    retry: { max_attempts: 3, initial_backoff_ms: 50, max_backoff_ms: 200 }
  erp: { type: database }
  failures: { type: file, dir: ./failures, format: jsonl }
messages:
  customer-updates:
    trigger: { table: customers, events: [update], check_used_fields: false }
    target: { connector: shop, method: PUT, path: "/updates/{{id}}" }
    mapping: { id: "{{id}}", limit: "{{credit_limit}}" }
web_service_actions:
  credit-check:
    trigger: { table: customers, events: [insert] }
    request:
      connector: crm
      method: POST
      path: /credit-checks
      body: { customer: "{{id}}", name: "{{name}}" }
    response:
      target: { connector: erp, table: customers, operation: update, key: [id] }
      mapping: { id: "{{id}}", credit_limit: "{{@response.limit}}" }
    error:
      target: { connector: failures }
      mapping: { customer: "{{id}}", status: "{{@error.status}}" }
  profile:
    trigger: { table: customers, events: [insert] }
    request: { connector: crm, method: POST, path: /profiles }
    response:
      target: { connector: erp, table: customers, operation: update, key: [id] }
      mapping: "{{@response}}"
"""


class WebServiceTest(sftest.TestCase):
    def test_reply_written_back_without_loop_and_errors_handled(self):
        syncfleet = sftest.env_path("SYNCFLEET")
        rcv = self.receiver([
            {"path": "/credit-checks", "method": "POST", "nth": [3],
             "status": 422, "body": '{"error":"unknown customer"}',
             "scope": "rule"},
            {"path": "/credit-checks", "method": "POST",
             "body": '{"limit":5000,"currency":"EUR"}'},
            {"path": "/profiles", "method": "POST", "body": '{"id":1,"vip":1}'},
        ])
        broker = self.broker(partitions=3, prefix="ws")
        pipeline = self.tmp.write("pipeline.yaml", PIPELINE)
        db_path = self.tmp.join("erp.db")
        db = sqlite3.connect(db_path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, "
                   "name TEXT, credit_limit REAL, vip INTEGER)")
        env = dict(os.environ, SF_BROKERS=broker.bootstrap, CRM_URL=rcv.url)
        run = self.start([syncfleet, "run", "-c", pipeline], "run", env=env)
        run.wait_line(r"running pipeline credit", timeout=20, stream="stderr")
        sftest.wait_for(
            lambda: db.execute("SELECT count(*) FROM sqlite_master WHERE "
                               "name LIKE '_syncfleet_customers_%'").fetchone()[0] == 2,
            timeout=10, what="capture triggers installed")

        # Inserted one at a time, so the third credit check is customer 3.
        for cid, name in ((1, "Ada"), (2, "Grace"), (3, "Edsger")):
            db.execute("INSERT INTO customers (id, name) VALUES (?, ?)", (cid, name))
            rcv.wait_requests(cid, path="/credit-checks", timeout=30)

        def limits():
            return dict(db.execute("SELECT id, credit_limit FROM customers"))

        sftest.wait_for(lambda: limits().get(1) == 5000 and limits().get(2) == 5000,
                        timeout=30, what="credit limits written back for 1 and 2")
        failures = self.tmp.join("failures", "credit-check.jsonl")
        sftest.wait_for(lambda: os.path.exists(failures), timeout=30,
                        what="the error mapping's file")
        with open(failures) as f:
            lines = [json.loads(line) for line in f]
        self.assertEqual(lines, [{"customer": 3, "status": 422}])
        self.assertIsNone(limits()[3])
        # every profile reply said id 1: each went to its own record's row
        sftest.wait_for(
            lambda: db.execute("SELECT id, vip FROM customers ORDER BY id").fetchall()
            == [(1, 1), (2, 1), (3, 1)],
            timeout=30, what="each profile written into its own row")
        self.assertIn("pipeline.yaml:48:16: warning: web_service_actions.profile."
                      "response.mapping copies the whole reply into table customers",
                      run.stderr())

        checks = rcv.requests("/credit-checks")
        self.assertEqual(
            sorted(json.loads(r["body"])["customer"] for r in checks), [1, 2, 3])
        self.assertEqual(json.loads(checks[0]["body"]), {"customer": 1, "name": "Ada"})
        for r in checks:
            self.assertTrue(r["headers"].get("idempotency-key"), r)

        # The write-back was not captured: no update reached the message.
        # An application update is, and carries the written-back limit.
        self.assertEqual(rcv.requests("/updates/*"), [])
        db.execute("UPDATE customers SET name = 'Ada King' WHERE id = 1")
        rcv.wait_requests(1, path="/updates/*", timeout=30)
        updates = rcv.requests("/updates/*")
        self.assertEqual([(u["method"], u["path"], json.loads(u["body"])) for u in updates],
                         [("PUT", "/updates/1", {"id": 1, "limit": 5000})])

        # Nothing went to the DLQ: the failure was handled by the error step.
        self.assertEqual(sftest.kcat_consume(broker.bootstrap, "ws.dlq"), [])
        run.stop(timeout=20)


if __name__ == "__main__":
    unittest.main()
