"""Web service write-back into PostgreSQL: a new customer triggers a credit
check at an external service (the receiver); the database connector writes
the reply into the customers table under syncfleet's replication origin, so
the capture skips it: a message subscribed to every customer update sees
only the application's own update, never the write-back. A reply copied
whole into the table ("{{@response}}") that names another row is written
to the record's row. The DSN's password, set through ${VAR}, is never
printed: a target echoing a record that holds it leaves "***" in the log
(at debug level) and in the DLQ header."""

import json
import os
import secrets
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
source: { type: postgres, dsn: "%(dsn)s password=${PG_PW}", slot: wsslot, publication: wspub,
          snapshot: never }
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
  echo-names:
    trigger: { table: customers, events: [insert] }
    target: { connector: crm, method: PUT, path: "/echo/{{id}}" }
    mapping: { name: "{{name}}" }
web_service_actions:
  credit-check:
    trigger: { table: customers, events: [insert] }
    request: { connector: crm, method: POST, path: /credit-checks,
               body: { customer: "{{id}}" } }
    response:
      target: { connector: erp, table: customers, operation: update, key: [id] }
      mapping: { id: "{{id}}", credit_limit: "{{@response.limit}}" }
  profile:
    trigger: { table: customers, events: [insert] }
    request: { connector: crm, method: POST, path: /profiles }
    response:
      target: { connector: erp, table: customers, operation: update, key: [id] }
      mapping: "{{@response}}"
"""


class PostgresWriteBackTest(sfpg.PgTestCase):
    def test_write_back_is_not_captured(self):
        rcv = self.receiver([{"path": "/credit-checks", "body": '{"limit":5000}'},
                             {"path": "/profiles", "body": '{"id":1,"vip":true}'},
                             {"path": "/echo/*", "status": 422, "echo": True}])
        self.sql("CREATE TABLE customers (id int PRIMARY KEY, name text, "
                 "credit_limit numeric, vip boolean)")
        pipeline = self.tmp.write("pipeline.yaml", PIPELINE % {"dsn": self.dsn})
        pg_pw = "pgpw-" + secrets.token_hex(8)
        env = dict(os.environ, SF_BROKERS=self.brk.bootstrap, CRM_URL=rcv.url,
                   PG_PW=pg_pw, SYNCFLEET_LOG="debug")
        run = self.start([sftest.env_path("SYNCFLEET"), "run", "-c", pipeline],
                         "run", env=env, cwd=self.tmp.path)
        self.wait_log(run, r"running pipeline pgcredit", timeout=60)
        self.wait_log(run, r"streaming slot", timeout=60)

        self.sql("INSERT INTO customers (id, name) VALUES (1, 'Ada'), (2, '%s')" % pg_pw)
        sftest.wait_for(
            lambda: self.query("SELECT id, credit_limit FROM customers ORDER BY id")
            == [["1", "5000"], ["2", "5000"]],
            timeout=60, what="credit limits written back into PostgreSQL")
        self.assertEqual(
            sorted(json.loads(r["body"])["customer"] for r in rcv.requests("/credit-checks")),
            [1, 2])
        # both profile replies said id 1: each went to its own record's row
        sftest.wait_for(
            lambda: self.query("SELECT id, vip FROM customers ORDER BY id")
            == [["1", "t"], ["2", "t"]],
            timeout=60, what="each profile written into its own row")
        # the echo of customer 2's name (the password) is redacted
        dlq = sftest.kcat_consume(self.brk.bootstrap, "itest.dlq", count=2, timeout=60)
        errors = sorted(r["headers"]["syncfleet-error"] for r in dlq)
        prefix = 'echo-names: HTTP 422 from PUT %s/echo/2: {"query":""' % rcv.url
        self.assertEqual(errors[1][:len(prefix)], prefix)
        self.assertIn('"body":"{\\"name\\":\\"***\\"}"', errors[1])
        for r in dlq:
            self.assertNotIn(pg_pw, json.dumps(r["headers"]))

        # the application's update is captured and carries the limit; the
        # two write-backs before it never reached the message
        self.sql("UPDATE customers SET name = 'Ada King' WHERE id = 1")
        rcv.wait_requests(1, path="/updates/*", timeout=60)
        updates = [(u["path"], json.loads(u["body"])) for u in rcv.requests("/updates/*")]
        self.assertEqual(updates, [("/updates/1", {"id": 1, "limit": "5000"})])
        run.stop(timeout=20)
        log = run.stderr()
        self.assertIn('"body":"{\\"name\\":\\"***\\"}"', log)
        self.assertNotIn(pg_pw, log)


if __name__ == "__main__":
    unittest.main()
