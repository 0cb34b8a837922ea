"""syncfleet producer on a real PostgreSQL 15 (logical replication,
pgoutput): the envelope of every column type, multi-row and large
transactions, concurrent writers, and the slot advancing over WAL that
carries nothing to capture.

Each test has a database, a slot and a broker of its own; the server is
shared by the class (tests/integration/sfpg.py)."""

import json
import os
import subprocess
import sys
import threading
import time
import unittest

import sfpg
import sftest


def by_table(records, table):
    return [r for r in records if r["value"]["source"]["table"] == table]


class CaptureTest(sfpg.PgTestCase):

    def test_types_round_trip(self):
        """Every column type keeps its meaning in the envelope; NULL is
        null; an unchanged TOASTed value is marked, or taken from the
        before image with REPLICA IDENTITY FULL."""
        self.sql("""
            CREATE TABLE types(
              id int8 PRIMARY KEY, i2 int2, i4 int4, big int8, b bool,
              n numeric, f8 float8, f4 float4, fnan float8, t text,
              vc varchar(20), ch char(3), ts timestamp, tstz timestamptz,
              d date, tm time, tmtz timetz, j json, jb jsonb, by bytea,
              u uuid, iv interval, arr int[], nul text, doc text);
            ALTER TABLE types ALTER doc SET STORAGE EXTERNAL;
            CREATE TABLE full_rows(id int PRIMARY KEY, v int, doc text);
            ALTER TABLE full_rows REPLICA IDENTITY FULL;
            ALTER TABLE full_rows ALTER doc SET STORAGE EXTERNAL;""")
        proc = self.producer(self.write_pipeline({
            "types": ["insert", "update", "delete"],
            "full_rows": ["insert", "update", "delete"]}))
        log = self.sync_log()
        doc = "".join("line %05d of a long document\n" % i for i in range(400))
        self.sql("""
            INSERT INTO types VALUES (1, -32768, 2147483647, 9223372036854775807,
              true, 123456789012345678901234567890.123456789, 1.5, 0.25, 'NaN',
              E'tab\\tquote"\\u00e9', 'abc', 'ab', '2024-02-29 13:14:15.123456',
              '2024-02-29 13:14:15.5+02', '2024-02-29', '13:14:15', '13:14:15+02',
              '{"k": [1, "x"]}', '{"a": {"b": null}}', '\\x00ff',
              'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '1 day 2 hours', '{1,2,3}',
              NULL, '%s')""" % doc)
        self.sql("UPDATE types SET i4 = 7 WHERE id = 1")
        self.sql("DELETE FROM types WHERE id = 1")
        self.sql("INSERT INTO full_rows VALUES (5, 1, '%s')" % doc)
        self.sql("UPDATE full_rows SET v = 2 WHERE id = 5")
        self.sql("DELETE FROM full_rows WHERE id = 5")
        recs = log.wait_count(6)
        types = sfpg.ordered(by_table(recs, "types"))
        self.assertEqual([r["value"]["op"] for r in types], ["c", "u", "d"])
        row = {
            "id": 1, "i2": -32768, "i4": 2147483647, "big": 9223372036854775807,
            "b": True, "n": "123456789012345678901234567890.123456789", "f8": 1.5,
            "f4": 0.25, "fnan": "NaN", "t": "tab\tquote\"\u00e9", "vc": "abc",
            "ch": "ab ", "ts": "2024-02-29T13:14:15.123456",
            "tstz": "2024-02-29T11:14:15.5Z", "d": "2024-02-29", "tm": "13:14:15",
            "tmtz": "13:14:15+02:00", "j": {"k": [1, "x"]}, "jb": {"a": {"b": None}},
            "by": "AP8=", "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "iv": "P1DT2H",
            "arr": "{1,2,3}", "nul": None, "doc": doc}
        ins, upd, dele = (r["value"] for r in types)
        self.assertEqual(ins["after"], row)
        self.assertIsNone(ins["before"])
        self.assertEqual(types[0]["key"], {"key": {"id": 1}, "table": "types"})
        # default replica identity: the before image is the key; the
        # TOASTed doc was not sent and is marked, not null
        self.assertEqual(upd["before"], {"id": 1})
        self.assertEqual(upd["after"], dict(row, i4=7, doc={"__syncfleet_unchanged_toast": True}))
        self.assertEqual(dele["before"], {"id": 1})
        self.assertIsNone(dele["after"])
        # the exact digits of a bigint, as sent
        with open(log.path, encoding="utf-8") as f:
            self.assertIn("9223372036854775807", f.read())

        full = sfpg.ordered(by_table(recs, "full_rows"))
        ins, upd, dele = (r["value"] for r in full)
        self.assertEqual(upd["before"], {"id": 5, "v": 1, "doc": doc})
        self.assertEqual(upd["after"], {"id": 5, "v": 2, "doc": doc})
        self.assertEqual(dele["before"], {"id": 5, "v": 2, "doc": doc})
        for r in recs:
            self.assertEqual(r["value"]["source"]["connector"], "postgres")
            self.assertEqual(r["value"]["source"]["db"], self.db)
            self.assertEqual(r["value"]["source"]["schema"], "public")
        proc.stop()

    def test_multi_row_transaction(self):
        """One transaction over two tables: one commit LSN and txid, seq 1..n
        in statement order, event ids from (commit LSN, seq)."""
        self.sql("CREATE TABLE orders(id int PRIMARY KEY, status text);"
                 "CREATE TABLE lines(id int PRIMARY KEY, order_id int, qty int)")
        proc = self.producer(self.write_pipeline({"orders": ["insert", "update", "delete"],
                                                  "lines": ["insert", "update", "delete"]}))
        log = self.sync_log()
        before = self.pg.wal_lsn()
        txid = int(self.pg.script("""
            BEGIN;
            INSERT INTO orders VALUES (1, 'new');
            INSERT INTO lines VALUES (10, 1, 2), (11, 1, 5);
            UPDATE orders SET status = 'paid' WHERE id = 1;
            DELETE FROM lines WHERE id = 11;
            INSERT INTO orders VALUES (2, 'new');
            SELECT txid_current();
            COMMIT;""", db=self.db).strip("\x1e\n"))
        after = self.pg.wal_lsn()
        recs = sfpg.ordered(log.wait_count(6))
        self.assertEqual(len(recs), 6)
        got = [(r["value"]["source"]["table"], r["value"]["op"], r["key"]["key"]["id"])
               for r in recs]
        self.assertEqual(got, [("orders", "c", 1), ("lines", "c", 10), ("lines", "c", 11),
                               ("orders", "u", 1), ("lines", "d", 11), ("orders", "c", 2)])
        lsns = {r["value"]["source"]["lsn"] for r in recs}
        self.assertEqual(len(lsns), 1)
        commit = lsns.pop()
        self.assertTrue(before < sfpg.lsn(commit) < after, (before, commit, after))
        self.assertEqual([r["value"]["source"]["seq"] for r in recs], [1, 2, 3, 4, 5, 6])
        self.assertEqual({r["value"]["source"]["txid"] for r in recs}, {txid % 2**32})
        self.assertEqual(len({r["value"]["ts_ms"] for r in recs}), 1)
        sysid = self.sysid()
        self.assertEqual([r["event_id"] for r in recs],
                         ["postgres:%s:%s:%s:%d" % (sysid, self.db, commit, i)
                          for i in range(1, 7)])
        self.assertEqual(recs[3]["value"]["after"], {"id": 1, "status": "paid"})
        self.assertEqual(recs[4]["value"]["before"], {"id": 11})
        proc.stop()

    @sfpg.broker_partitions(12)
    def test_large_transaction(self):
        """100,000 rows in one transaction: every row once, seq 1..100000."""
        self.sql("CREATE TABLE bulk(id int PRIMARY KEY, qty int)")
        proc = self.producer(self.write_pipeline({"bulk": ["insert"]}))
        log = self.sync_log()
        n = 100000
        self.sql("INSERT INTO bulk SELECT g, g % 7 FROM generate_series(1, " + str(n) + ") g")
        t0 = time.monotonic()
        recs = log.wait_count(n, timeout=120)
        elapsed = time.monotonic() - t0
        ids = [r["key"]["key"]["id"] for r in recs]
        self.assertEqual(len(ids), n, "duplicates in a run without failures")
        self.assertEqual(set(ids), set(range(1, n + 1)))
        self.assertEqual(sorted(r["value"]["source"]["seq"] for r in recs), list(range(1, n + 1)))
        self.assertEqual(len({r["value"]["source"]["lsn"] for r in recs}), 1)
        self.wait_flushed()
        proc.stop()
        print("large transaction: %d rows on the sync-log %.1fs after the commit" % (
            n, elapsed), file=sys.stderr)

    def test_concurrent_writers(self):
        """Four sessions updating rows of three tables at once: every change
        arrives, and per key in commit order (the counter goes 1, 2, 3...)."""
        tables = ["ta", "tb", "tc"]
        keys = 15
        for t in tables:
            self.sql("CREATE TABLE %s(id int PRIMARY KEY, v int NOT NULL);"
                     "INSERT INTO %s SELECT g, 0 FROM generate_series(1, %d) g" % (t, t, keys))
        proc = self.producer(self.write_pipeline({t: ["update"] for t in tables}))
        log = self.sync_log()
        import random
        scripts = []
        for w in range(4):
            rnd = random.Random(w)
            lines = []
            for _ in range(150):
                rows = sorted({(rnd.choice(tables), rnd.randint(1, keys))
                               for _ in range(rnd.randint(1, 3))})
                lines.append("BEGIN;" + "".join(
                    "UPDATE %s SET v = v + 1 WHERE id = %d;" % r for r in rows) + "COMMIT;")
            scripts.append("\n".join(lines) + "\n")
        results = [None] * len(scripts)

        def run(i):
            p = self.pg.psql_proc(self.db)
            _, err = p.communicate(scripts[i].encode(), timeout=120)
            results[i] = (p.returncode, err.decode(errors="replace"))
        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(scripts))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(150)
        for rc, err in results:
            self.assertEqual(rc, 0, err)
        final = {(t, int(r[0])): int(r[1]) for t in tables
                 for r in self.query("SELECT id, v FROM %s" % t)}
        total = sum(final.values())
        recs = log.wait(lambda rs: len({r["event_id"] for r in rs}) >= total, 60)
        self.assertEqual(len({r["event_id"] for r in recs}), total)
        seen = {}
        for r in sorted(recs, key=lambda r: (r["partition"], r["offset"])):
            k = (r["value"]["source"]["table"], r["key"]["key"]["id"])
            v = r["value"]["after"]["v"]
            if not seen.get(k) or seen[k][-1] != v:  # a duplicate repeats
                seen.setdefault(k, []).append(v)
        for k, v in final.items():
            self.assertEqual(seen.get(k, []), list(range(1, v + 1)), k)
        proc.stop()

    def test_oversized_row_goes_to_the_dlq(self):
        """A row larger than Kafka takes (message.max.bytes, 1,000,000 by
        default) cannot stop the capture: its envelope is dead-lettered
        without images, with the reason, and the changes after it flow. The
        pipeline is on the embedded broker, so the dead letter is in the
        store of its state directory."""
        self.sql("CREATE TABLE docs(id int PRIMARY KEY, body text)")
        pipeline = self.write_pipeline({"docs": ["insert", "update"]})
        proc = self.producer(pipeline)
        log = self.sync_log()
        self.sql("INSERT INTO docs VALUES (1, 'small')")
        self.sql("INSERT INTO docs VALUES (2, repeat('x', 1500000))")
        self.sql("UPDATE docs SET body = 'after' WHERE id = 1")
        recs = log.wait_count(2)
        self.assertEqual([(r["value"]["op"], r["key"]["key"]["id"]) for r in sfpg.ordered(recs)],
                         [("c", 1), ("u", 1)])

        def dead_letters():
            res = subprocess.run([sftest.env_path("SYNCFLEET"), "dlq", "show", "--json",
                                  "-c", pipeline], capture_output=True, text=True, timeout=30)
            self.assertEqual(res.returncode, 0, res.stderr)
            return [json.loads(line) for line in res.stdout.splitlines()]
        [bad] = sftest.wait_for(dead_letters, timeout=60, what="the oversized change in the DLQ")
        self.assertEqual(json.loads(bad["key"]), {"key": {"id": 2}, "table": "docs"})
        value = json.loads(bad["value"])
        self.assertEqual(value["op"], "c")
        self.assertIsNone(value["after"])
        self.assertIsNone(value["before"])
        self.assertEqual(value["source"]["table"], "docs")
        self.assertRegex(bad["event_id"], r"^postgres:\d+:%s:[0-9A-F]+/[0-9A-F]+:1$" % self.db)
        self.assertRegex(bad["error"],
                         r"^change of \d+ bytes is larger than Kafka's message.max.bytes "
                         r"\(1000000\): sent to the DLQ without its before and after images; "
                         r"raise message.max.bytes in kafka.config")
        self.assertEqual(bad["stage"], "producer")
        self.assertEqual(bad["origin"], {"topic": self.brk.topic("sync-log"), "partition": -1,
                                         "offset": -1})
        # the slot moves past it: it counts as delivered
        self.wait_flushed()
        proc.stop()
        self.assertIn("producer: change %s of docs: change of " % bad["event_id"],
                      proc.stderr())
        self.assertRegex(proc.stderr(), r"stopped: 3 changes delivered \(1 of them to the DLQ")

    def run_producer(self, pipeline, *args):
        return subprocess.run([sftest.env_path("SYNCFLEET"), "producer", "-c", pipeline,
                               "--brokers", self.brk.bootstrap] + list(args),
                              capture_output=True, text=True, timeout=60, cwd=self.tmp.path)

    def test_install_errors(self):
        """Tables the capture cannot serve are refused before anything is
        installed, with the reason."""
        self.sql("CREATE TABLE nokey(id int, v int);"
                 "CREATE TABLE coded(id int PRIMARY KEY, code text UNIQUE)")
        cases = [
            ({"missing": ["insert"]},
             'table "missing" named in the pipeline does not exist in database %s' % self.db),
            ({"nokey": ["insert"]},
             'table "nokey" has no replica identity (no primary key): once published, '
             "PostgreSQL would refuse the application's updates and deletes of it; add a "
             "primary key or ALTER TABLE nokey REPLICA IDENTITY FULL"),
            ({"coded": (["delete"], ["code"])},
             'table "coded": key column "code" is not part of its replica identity ({id}), '
             "so a deleted row could not be named; use the primary key as the pipeline's "
             "key, or ALTER TABLE coded REPLICA IDENTITY FULL"),
            ({"coded": (["insert"], ["nope"])},
             'table "coded" in database %s has no column "nope" (a key column in the '
             "pipeline)" % self.db),
        ]
        for i, (tables, err) in enumerate(cases):
            res = self.run_producer(self.write_pipeline(tables, name="p%d.yaml" % i))
            self.assertEqual(res.returncode, 1, res.stderr)
            self.assertIn("syncfleet producer: " + err + "\n", res.stderr)
        self.assertIsNone(self.pg.slot())
        self.assertEqual(self.query("SELECT count(*) FROM pg_publication"), [["0"]])
        # no server there
        port = sftest.free_port()
        res = self.run_producer(self.tmp.write("down.yaml", sfpg.pipeline_yaml(
            "host=127.0.0.1 port=%d user=postgres dbname=x" % port, {"t": ["insert"]})))
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertRegex(res.stderr, r"^syncfleet producer: connecting to PostgreSQL: "
                         r"connection to server at \"127\.0\.0\.1\", port %d failed: "
                         r"Connection refused" % port)

    def test_publication_follows_pipeline_and_uninstall(self):
        """The publication holds exactly the captured tables, follows the
        pipeline when it changes, and --uninstall removes it with the slot."""
        self.sql("CREATE TABLE a(id int PRIMARY KEY); CREATE TABLE b(id int PRIMARY KEY);"
                 "CREATE TABLE c(id int PRIMARY KEY)")
        pub = lambda: sorted(r[0] for r in self.query(
            "SELECT tablename FROM pg_publication_tables WHERE pubname = 'syncfleet'"))
        first = self.write_pipeline({"a": ["insert"], "b": ["update"]},
                                    extra_tables={"c": ["id"]}, name="p1.yaml")
        self.producer(first).stop()
        self.assertEqual(pub(), ["a", "b"])
        self.assertTrue(self.pg.slot())
        second = self.write_pipeline({"b": ["delete"], "c": ["insert"]},
                                     extra_tables={"a": ["id"]}, name="p2.yaml")
        proc = self.producer(second)
        self.assertEqual(pub(), ["b", "c"])
        log = self.sync_log()
        self.sql("INSERT INTO a VALUES (1); INSERT INTO c VALUES (2)")
        log.wait_count(1)
        self.wait_flushed()
        self.assertEqual([(r["value"]["source"]["table"], r["key"]["key"]["id"])
                          for r in log.records()], [("c", 2)])
        proc.stop()
        res = self.run_producer(second, "--uninstall")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIsNone(self.pg.slot())
        self.assertEqual(self.query("SELECT count(*) FROM pg_publication"), [["0"]])

    def test_idle_table_slot_advances(self):
        """The captured table is idle while a table that is not captured is
        busy, and updates nobody subscribes to are filtered: the slot's
        confirmed LSN still follows the WAL, and nothing is published."""
        self.sql("CREATE TABLE quiet(id int PRIMARY KEY);"
                 "CREATE TABLE busy(id int PRIMARY KEY, v int);"
                 "CREATE TABLE inserts_only(id int PRIMARY KEY, v int);"
                 "INSERT INTO inserts_only SELECT g, 0 FROM generate_series(1, 50) g")
        proc = self.producer(self.write_pipeline({"quiet": ["insert"],
                                                  "inserts_only": ["insert"]},
                                                 extra_tables={"busy": ["id"]}))
        log = self.sync_log()
        start = self.pg.slot()["confirmed_flush_lsn"]
        busy = lambda k: "".join("INSERT INTO busy VALUES (%d, 1);\n" % (k * 1000 + i)
                                 for i in range(300))
        filtered = "".join("UPDATE inserts_only SET v = v + 1 WHERE id = %d;\n" % (i % 50 + 1)
                           for i in range(100))
        marks = []
        # only WAL of a table that is not captured: keepalives carry the slot
        self.pg.script(busy(0), db=self.db)
        marks.append(self.wait_flushed(timeout=15))
        # only changes that are filtered out: their commits carry it
        self.pg.script(filtered, db=self.db)
        marks.append(self.wait_flushed(timeout=15))
        self.pg.script(busy(1), db=self.db)
        marks.append(self.wait_flushed(timeout=15))
        self.assertGreater(marks[0], start + 300 * 50, "less WAL written than thought")
        self.assertEqual(log.records(), [])
        time.sleep(0.5)
        self.assertEqual(log.records(), [])
        proc.stop()


if __name__ == "__main__":
    unittest.main()
