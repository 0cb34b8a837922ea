"""Web service write-back into PostgreSQL: a new customer triggers a credit
check at an external service (the receiver); the database connector writes
the reply into the customers table under syncfleet's replication origin, so
the capture skips it: a message subscribed to every customer update sees
only the application's own update, never the write-back."""

import json
import os
import unittest

import sfpg
import sftest

PIPELINE = """
version: 1
name: pgcredit
kafka:
  brokers: ${SF_BROKERS}
  topic_prefix: itest
  partitions: 3
  config: { session.timeout.ms: "6000", heartbeat.interval.ms: "1000" }
source: { type: postgres, dsn: "%(dsn)s", slot: wsslot, publication: wspub, snapshot: never }
tables:
  customers: { key: [id] }
connectors:
  crm:
    type: http
    base_url: ${CRM_URL}
    retry: { max_attempts: 3, initial_backoff_ms: 50, max_backoff_ms: 200 }
  erp: { type: database }
messages:
  customer-updates:
    trigger: { table: customers, events: [update], check_used_fields: false }
    target: { connector: crm, method: PUT, path: "/updates/{{id}}" }
    mapping: { id: "{{id}}", limit: "{{credit_limit}}" }
web_service_actions:
  credit-check:
    trigger: { table: customers, events: [insert] }
    request: { connector: crm, method: POST, path: /credit-checks,
               body: { customer: "{{id}}" } }
    response:
      target: { connector: erp, table: customers, operation: update, key: [id] }
      mapping: { id: "{{id}}", credit_limit: "{{@response.limit}}" }
"""


class PostgresWriteBackTest(sfpg.PgTestCase):
    def test_write_back_is_not_captured(self):
        rcv = self.receiver([{"path": "/credit-checks", "body": '{"limit":5000}'}])
        self.sql("CREATE TABLE customers (id int PRIMARY KEY, name text, "
                 "credit_limit numeric)")
        pipeline = self.tmp.write("pipeline.yaml", PIPELINE % {"dsn": self.dsn})
        env = dict(os.environ, SF_BROKERS=self.brk.bootstrap, CRM_URL=rcv.url)
        run = self.start([sftest.env_path("SYNCFLEET"), "run", "-c", pipeline],
                         "run", env=env, cwd=self.tmp.path)
        self.wait_log(run, r"running pipeline pgcredit", timeout=60)
        self.wait_log(run, r"streaming slot", timeout=60)

        self.sql("INSERT INTO customers (id, name) VALUES (1, 'Ada'), (2, 'Grace')")
        sftest.wait_for(
            lambda: self.query("SELECT id, credit_limit FROM customers ORDER BY id")
            == [["1", "5000"], ["2", "5000"]],
            timeout=60, what="credit limits written back into PostgreSQL")
        self.assertEqual(
            sorted(json.loads(r["body"])["customer"] for r in rcv.requests("/credit-checks")),
            [1, 2])

        # the application's update is captured and carries the limit; the
        # two write-backs before it never reached the message
        self.sql("UPDATE customers SET name = 'Ada King' WHERE id = 1")
        rcv.wait_requests(1, path="/updates/*", timeout=60)
        updates = [(u["path"], json.loads(u["body"])) for u in rcv.requests("/updates/*")]
        self.assertEqual(updates, [("/updates/1", {"id": 1, "limit": "5000"})])
        run.stop(timeout=20)


if __name__ == "__main__":
    unittest.main()
