"""Integers beyond 2^53 arrive exactly as the source holds them: in the
sync-log and outbound keys, in request paths and bodies, through the
`number` and `json` filters, in a web service reply and in the row it is
written back to, for a SQLite and a PostgreSQL source. 2^53 and 2^53 + 1
are two different records at two different resources; as doubles they
would be one."""

import json
import os
import sqlite3
import unittest

import sfpg
import sftest

INT64_MIN = -2**63
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1
P53 = 2**53
# (id, big, txt): a SQLite INTEGER column holds int64; UINT64_MAX only as
# text, which `| number` makes an exact number
ROWS = [
    (INT64_MIN, INT64_MAX, str(UINT64_MAX)),
    (-(P53 + 1), INT64_MIN, "12345678901234567890"),
    (P53, P53 + 1, str(P53 + 1)),
    (P53 + 1, -(P53 + 1), str(INT64_MIN)),
    (INT64_MAX, P53, " %d " % INT64_MAX),
]
# the reply of the web service, written back into each row
REPLY = '{"neg":-9223372036854775808,"max":9223372036854775807,' \
        '"u":18446744073709551615,"p":9007199254740993}'

CONNECTORS = """
connectors:
  shop:
    type: http
    base_url: ${SHOP_URL}
    retry: { max_attempts: 3, initial_backoff_ms: 50, max_backoff_ms: 200 }
  erp: { type: database }
"""

SQLITE_PIPELINE = """
version: 1
name: exact
kafka:
  brokers: ${SF_BROKERS}
  topic_prefix: ex
  partitions: 3
  config: { session.timeout.ms: "6000", heartbeat.interval.ms: "1000" }
source: { type: sqlite, path: ./erp.db, poll_interval_ms: 20 }
# each row's insert and update are combined into one insert with the last
# image (the router re-writes the record then)
router: { coalesce_ms: 1000, delay_ms: 1000 }
tables:
  items: { key: [id] }
""" + CONNECTORS + """
messages:
  items-out:
    trigger: { table: items, events: [insert, update] }
    target: { connector: shop, method: PUT, path: "/items/{{id}}/{{txt | number}}" }
    mapping:
      id: "{{id}}"
      big: "{{big}}"
      txt: "{{txt | number}}"
      doc: "{{doc | json}}"
      label: "{{id}}:{{big}}"
  items-query:
    trigger: { table: items, events: [insert] }
    source: { mode: query }
    target: { connector: shop, method: PUT, path: "/q/{{id}}" }
    mapping: { id: "{{id}}", big: "{{big}}", literal: 9007199254740993 }
web_service_actions:
  check:
    trigger: { table: items, events: [insert] }
    request: { connector: shop, method: POST, path: "/check/{{id}}", body: { id: "{{id}}" } }
    response:
      target: { connector: erp, table: items, operation: update, key: [id] }
      mapping: { id: "{{id}}", neg: "{{@response.neg}}", max: "{{@response.max}}",
                 u: "{{@response.u}}", p: "{{@response.p}}", seen: "{{id}}" }
"""

PG_PIPELINE = """
version: 1
name: pgexact
kafka:
  brokers: ${SF_BROKERS}
  topic_prefix: itest
  partitions: 3
  config: { session.timeout.ms: "6000", heartbeat.interval.ms: "1000" }
source: { type: postgres, dsn: "%(dsn)s", slot: exslot, publication: expub, snapshot: never }
tables:
  items: { key: [id] }
""" + CONNECTORS + """
messages:
  items-out:
    trigger: { table: items, events: [insert] }
    target: { connector: shop, method: PUT, path: "/items/{{id}}/{{n}}" }
    mapping:
      id: "{{id}}"
      big: "{{big}}"
      n: "{{n | number}}"
      v: "{{doc.v}}"
      label: "{{id}}:{{big}}"
web_service_actions:
  check:
    trigger: { table: items, events: [insert] }
    request: { connector: shop, method: POST, path: "/check/{{id}}", body: { id: "{{id}}" } }
    response:
      target: { connector: erp, table: items, operation: update, key: [id] }
      mapping: { id: "{{id}}", neg: "{{@response.neg}}", max: "{{@response.max}}",
                 u: "{{@response.u}}", p: "{{@response.p}}", seen: "{{id}}" }
"""


def rules():
    return [{"path": "/check/*", "method": "POST", "body": REPLY}]


class Checks:
    """What both sources must deliver, given the rows as
    (id, big, number-of-txt) and the bootstrap of the pipeline's broker."""

    def check_delivery(self, rcv, bootstrap, prefix, rows):
        puts = rcv.wait_requests(len(rows), path="/items/*", timeout=60)
        got = sorted((r["path"], r["body"]) for r in puts)
        want = []
        for rid, big, num, extra in rows:
            body = json.loads(dict(got).get("/items/%d/%d" % (rid, num), "null"))
            want.append(("/items/%d/%d" % (rid, num), body))
            # the digits themselves, not only a value Python reads back
            # the same: the raw body holds them
            self.assertEqual(body and body["id"], rid)
            self.assertEqual(body["big"], big)
            self.assertEqual(body["label"], "%d:%d" % (rid, big))
            for k, v in extra.items():
                self.assertEqual(body[k], v, (rid, k))
        self.assertEqual(sorted(p for p, _ in got), sorted(p for p, _ in want))
        for path, raw in got:
            rid = int(path.split("/")[2])
            self.assertIn('"id":%d,' % rid, raw)

        checks = rcv.wait_requests(len(rows), path="/check/*", timeout=60)
        self.assertEqual(sorted(r["path"] for r in checks),
                         sorted("/check/%d" % r[0] for r in rows))
        for r in checks:
            self.assertEqual(r["body"], '{"id":%s}' % r["path"].split("/")[2])

        log = sftest.kcat_consume(bootstrap, prefix + ".sync-log",
                                  count=len(rows) * self.changes)
        self.assertEqual(sorted(r["key"] for r in log),
                         sorted(['{"key":{"id":%d},"table":"items"}' % r[0] for r in rows]
                                * self.changes))
        for r in log:
            rid = json.loads(r["key"])["key"]["id"]
            self.assertIn('"id":%d' % rid, r["value"])
        out = sftest.kcat_consume(bootstrap, prefix + ".outbound.message",
                                  count=len(rows) * self.messages)
        self.assertEqual(sorted(r["key"] for r in out if '"items-out"' in r["key"]),
                         sorted('{"action":"items-out","key":{"id":%d},"table":"items"}' % r[0]
                                for r in rows))
        self.assertEqual(sftest.kcat_consume(bootstrap, prefix + ".dlq"), [])


class SqliteExactTest(sftest.TestCase, Checks):
    messages = 2
    changes = 2

    def test_sqlite_integers_are_exact(self):
        rcv = self.receiver(rules())
        broker = self.broker(partitions=3, prefix="ex")
        pipeline = self.tmp.write("pipeline.yaml", SQLITE_PIPELINE)
        db = sqlite3.connect(self.tmp.join("erp.db"), isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, big INTEGER, txt TEXT, "
                   "doc TEXT, neg INTEGER, max INTEGER, u TEXT, p INTEGER, seen INTEGER)")
        env = dict(os.environ, SF_BROKERS=broker.bootstrap, SHOP_URL=rcv.url)
        run = self.start([sftest.env_path("SYNCFLEET"), "run", "-c", pipeline], "run",
                         env=env, cwd=self.tmp.path)
        run.wait_line(r"running pipeline exact", timeout=20, stream="stderr")
        sftest.wait_for(
            lambda: db.execute("SELECT count(*) FROM sqlite_master WHERE "
                               "name LIKE '_syncfleet_items_%'").fetchone()[0] >= 1,
            timeout=10, what="capture triggers installed")
        for rid, big, txt in ROWS:
            db.execute("BEGIN")
            db.execute("INSERT INTO items (id, big, txt, doc) VALUES (?, 0, ?, ?)",
                       (rid, txt, '{"v":%s}' % UINT64_MAX))
            db.execute("UPDATE items SET big = ? WHERE id = ?", (big, rid))
            db.execute("COMMIT")

        self.check_delivery(rcv, broker.bootstrap, "ex", [
            (rid, big, int(txt), {"txt": int(txt), "doc": {"v": UINT64_MAX}})
            for rid, big, txt in ROWS])
        # query mode: the row read back by its exact key
        queried = rcv.wait_requests(len(ROWS), path="/q/*", timeout=60)
        self.assertEqual(sorted((r["path"], r["body"]) for r in queried),
                         sorted(("/q/%d" % rid, '{"id":%d,"big":%d,"literal":%d}' % (
                             rid, big, P53 + 1)) for rid, big, _ in ROWS))

        def written():
            return db.execute("SELECT id, neg, max, u, p, seen FROM items "
                              "WHERE seen IS NOT NULL ORDER BY id").fetchall()
        want = [(rid, INT64_MIN, INT64_MAX, str(UINT64_MAX), P53 + 1, rid)
                for rid, _, _ in sorted(ROWS)]
        sftest.wait_for(lambda: len(written()) == len(ROWS), timeout=60,
                        what="the replies written back into every row")
        self.assertEqual(written(), want)
        self.assertEqual(db.execute("SELECT typeof(u) FROM items").fetchall(),
                         [("text",)] * len(ROWS))
        run.stop(timeout=20)


class PostgresExactTest(sfpg.PgTestCase, Checks):
    messages = 1
    changes = 1

    def test_postgres_integers_are_exact(self):
        rcv = self.receiver(rules())
        self.sql("CREATE TABLE items (id bigint PRIMARY KEY, big bigint, n numeric, doc jsonb, "
                 "neg bigint, max bigint, u numeric, p bigint, seen bigint)")
        pipeline = self.tmp.write("pipeline.yaml", PG_PIPELINE % {"dsn": self.dsn})
        env = dict(os.environ, SF_BROKERS=self.brk.bootstrap, SHOP_URL=rcv.url)
        run = self.start([sftest.env_path("SYNCFLEET"), "run", "-c", pipeline],
                         "run", env=env, cwd=self.tmp.path)
        self.wait_log(run, r"running pipeline pgexact", timeout=60)
        self.wait_log(run, r"streaming slot", timeout=60)
        # numeric holds UINT64_MAX; jsonb numbers too
        rows = [(rid, big, UINT64_MAX if i % 2 == 0 else P53 + 1)
                for i, (rid, big, _) in enumerate(ROWS)]
        self.sql("INSERT INTO items (id, big, n, doc) VALUES %s" % ", ".join(
            "(%d, %d, %d, '{\"v\": %d}')" % (rid, big, n, n) for rid, big, n in rows))

        self.check_delivery(rcv, self.brk.bootstrap, "itest", [
            (rid, big, n, {"n": n, "v": n}) for rid, big, n in rows])

        def written():
            return self.query("SELECT id, neg, max, u, p, seen FROM items "
                              "WHERE seen IS NOT NULL ORDER BY id")
        want = [[str(rid), str(INT64_MIN), str(INT64_MAX), str(UINT64_MAX), str(P53 + 1),
                 str(rid)] for rid, _, _ in sorted(rows)]
        sftest.wait_for(lambda: len(written()) == len(rows), timeout=60,
                        what="the replies written back into every row")
        self.assertEqual(written(), want)
        run.stop(timeout=20)


if __name__ == "__main__":
    unittest.main()
