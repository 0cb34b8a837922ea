"""Columns named like syncfleet's own names are columns. A SQLite table
with columns status, event, table and op goes through `syncfleet run` on
the embedded broker: an update that changes only one of them is exported
(check_used_fields counts them), the documents and the path carry the
row's values, and syncfleet's event, table and op are there under @. An
update of an unmapped column is not exported."""

import os
import sqlite3
import unittest

import sftest

PIPELINE = """
version: 1
name: columns
kafka: { brokers: embedded, topic_prefix: cn, partitions: 2 }
source: { type: sqlite, path: ./erp.db, poll_interval_ms: 20 }
tables:
  tickets: { key: [id] }
connectors:
  api:
    type: http
    base_url: "%s"
    retry: { max_attempts: 3, initial_backoff_ms: 50, max_backoff_ms: 200 }
messages:
  ticket-to-api:
    trigger: { table: tickets, events: [insert, update], check_used_fields: true }
    target: { connector: api, method: PUT, path: "/tickets/{{id}}/{{table}}" }
    mapping:
      id: "{{id}}"
      status: "{{status}}"
      event: "{{event}}"
      table: "{{table}}"
      op: "{{op}}"
      syncfleet:
        op: "{{@op}}"
        event: "{{@event}}"
        table: "{{@table}}"
        key: "{{@key.id}}"
        was: "{{@before.status | default('-')}}"
"""

ROWS = {i: {"status": "open", "event": "e%d" % i, "table": "t%d" % i,
            "op": "o%d" % i} for i in range(1, 6)}
# Each update changes one column named like one of syncfleet's names; the
# last row first changes an unmapped column, then its status.
UPDATES = [(1, "status", "closed"), (2, "event", "e2x"), (3, "table", "t3x"),
           (4, "op", "o4x"), (5, "note", "unmapped"), (5, "status", "held")]


def document(cid, row, event, was):
    return {"id": cid, "status": row["status"], "event": row["event"],
            "table": row["table"], "op": row["op"],
            "syncfleet": {"op": "c" if event == "insert" else "u",
                          "event": event, "table": "tickets", "key": cid,
                          "was": was}}


class ColumnNamesTest(sftest.TestCase):
    def test_columns_named_like_syncfleets_names(self):
        syncfleet = sftest.env_path("SYNCFLEET")
        receiver = self.receiver()
        pipeline = self.tmp.write("pipeline.yaml", PIPELINE % receiver.url)
        db = sqlite3.connect(self.tmp.join("erp.db"), isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute('CREATE TABLE tickets (id INTEGER PRIMARY KEY, status TEXT, '
                   'event TEXT, "table" TEXT, op TEXT, note TEXT)')
        run = self.start([syncfleet, "run", "-c", pipeline], "run")
        run.wait_line(r"running pipeline columns", timeout=30, stream="stderr")
        sftest.wait_for(
            lambda: db.execute("SELECT count(*) FROM sqlite_master WHERE "
                               "name LIKE '_syncfleet_tickets_%'").fetchone()[0] == 2,
            timeout=10, what="capture triggers installed")

        want = {}
        for cid, row in ROWS.items():
            db.execute('INSERT INTO tickets (id, status, event, "table", op) '
                       'VALUES (?, ?, ?, ?, ?)',
                       (cid, row["status"], row["event"], row["table"], row["op"]))
            want[cid] = [("/tickets/%d/%s" % (cid, row["table"]),
                          document(cid, row, "insert", "-"))]
        receiver.wait_requests(len(ROWS), path="/tickets/*", timeout=30)
        for cid, column, value in UPDATES:
            db.execute('UPDATE tickets SET "%s" = ? WHERE id = ?' % column,
                       (value, cid))
            if column == "note":
                continue
            was = ROWS[cid]["status"]
            ROWS[cid] = dict(ROWS[cid], **{column: value})
            want[cid].append(("/tickets/%d/%s" % (cid, ROWS[cid]["table"]),
                              document(cid, ROWS[cid], "update", was)))

        def documents():
            got = {}
            for r in receiver.requests("/tickets/*"):
                doc = sftest.request_body(r)
                got.setdefault(doc["id"], []).append((r["path"], doc))
            return got

        # The changes of one row arrive in order, so once its last document
        # is there, an export of the unmapped update of row 5 would be too.
        # A missed export shows as a document that never comes: after the
        # wait, the comparison says which.
        try:
            sftest.wait_for(lambda: all(documents().get(cid, [])[-1:] == want[cid][-1:]
                                        for cid in want),
                            timeout=30, what="every row's last document")
        except AssertionError:
            pass
        got = documents()
        run.stop(timeout=20)
        for cid in sorted(want):
            self.assertEqual(got.get(cid), want[cid], "ticket %d" % cid)
        self.assertTrue(all(sftest.is_2xx(r) for r in receiver.requests()))


if __name__ == "__main__":
    unittest.main()
