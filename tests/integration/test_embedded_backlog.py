"""The embedded broker keeps only about 5 MiB per partition. A burst far
larger than that, with a slow target, must still arrive whole: the router
and the producer hold back while the group after them is that far behind,
instead of letting the broker drop records nobody has read yet."""

import os
import random
import sqlite3
import unittest

import sftest

PIPELINE = """
version: 1
name: backlog
kafka: { brokers: embedded, topic_prefix: bl, partitions: 2 }
source: { type: sqlite, path: ./erp.db, poll_interval_ms: 20 }
tables:
  docs: { key: [id] }
connectors:
  api: { type: http, base_url: "%s", max_in_flight: 2 }
messages:
  doc-to-api:
    trigger: { table: docs, events: [insert] }
    target: { connector: api, method: PUT, path: "/docs/{{id}}" }
    mapping: { id: "{{id}}", body: "{{body}}" }
"""

ROWS = 1500
BODY = 12000  # random hex: lz4 cannot shrink it


class EmbeddedBacklogTest(sftest.TestCase):
    def test_burst_beyond_retention_arrives_whole(self):
        syncfleet = sftest.env_path("SYNCFLEET")
        # a slow target: the workers fall far behind the router
        receiver = self.receiver([{"path": "/docs*", "delay_ms": 4}])
        pipeline = self.tmp.write("pipeline.yaml", PIPELINE % receiver.url)
        db = sqlite3.connect(self.tmp.join("erp.db"), isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT)")
        run = self.start([syncfleet, "run", "-c", pipeline], "run",
                         env=dict(os.environ, SYNCFLEET_LOG="info"))
        run.wait_line(r"running pipeline backlog", timeout=30, stream="stderr")
        rnd = random.Random(5)
        bodies = {}
        # about 18 MB of changes, 9 MB per partition, in one burst
        for start in range(1, ROWS + 1, 100):
            db.execute("BEGIN")
            for i in range(start, start + 100):
                bodies[i] = "%0*x" % (BODY, rnd.getrandbits(BODY * 4))
                db.execute("INSERT INTO docs VALUES (?, ?)", (i, bodies[i]))
            db.execute("COMMIT")
        got = receiver.wait_requests(ROWS, path="/docs*", timeout=120)
        run.stop(timeout=30)
        log = run.stderr()
        self.assertNotIn("records were lost", log)
        ids = {}
        for r in got:
            doc = sftest.request_body(r)
            ids[doc["id"]] = doc["body"]
        self.assertEqual(sorted(ids), list(range(1, ROWS + 1)))
        self.assertTrue(all(ids[i] == bodies[i] for i in ids))
        # the guard did hold back at least once
        self.assertRegex(log, r"holding back: group bl\.(message-workers|router) has about \d+ "
                              r"records \(\d+ KiB\) of bl\.")


if __name__ == "__main__":
    unittest.main()
