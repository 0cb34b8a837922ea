"""Writes syncfleet makes to the source database do not come back as
events: a session set up with sf_pg_origin_setup (producers/
capture_postgres.h) carries syncfleet's replication origin, and the
PostgreSQL source skips its transactions; the application's own writes,
before, between and after, are captured."""

import subprocess
import unittest

import sfpg
import sftest


class OriginWriter:
    """The test program of sfpg.ORIGIN_WRITER_C: one session that set up
    syncfleet's origin and runs the statements it is given."""

    def __init__(self, exe, dsn):
        self.proc = subprocess.Popen([exe, dsn], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.origin = self._line()
        if not self.origin.startswith("origin "):
            raise AssertionError("origin writer: %s %s" % (self.origin, self.proc.stderr.read()))
        self.origin = self.origin[len("origin "):]

    def _line(self):
        return self.proc.stdout.readline().rstrip("\n")

    def run(self, *statements):
        for s in statements:
            self.proc.stdin.write(s.replace("\n", " ") + "\n")
            self.proc.stdin.flush()
            answer = self._line()
            if answer != "ok":
                raise AssertionError("origin writer: %r: %s" % (s, answer))

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(10)
        self.proc.stdout.close()
        self.proc.stderr.close()


class WriteBackTest(sfpg.PgTestCase):

    def writer(self):
        w = OriginWriter(self.exe, self.dsn)
        self.addCleanup(w.close)
        return w

    def test_writes_of_syncfleet_sessions_are_skipped(self):
        self.exe = sfpg.build_origin_writer(self.tmp.path)
        self.sql("CREATE TABLE customers(id int PRIMARY KEY, name text, credit int)")
        proc = self.producer(self.write_pipeline({"customers": ["insert", "update", "delete"]}))
        log = self.sync_log()
        self.sql("INSERT INTO customers VALUES (1, 'Ann', 0), (2, 'Bob', 0)")
        # two write-back sessions at once: PostgreSQL 15 lets one session
        # use an origin at a time, so the second gets the next of the family
        w1 = self.writer()
        w2 = self.writer()
        self.assertEqual((w1.origin, w2.origin), ("syncfleet", "syncfleet.2"))
        w1.run("UPDATE customers SET credit = 100 WHERE id = 1")
        w2.run("BEGIN", "INSERT INTO customers VALUES (50, 'Zed', 1)",
               "UPDATE customers SET credit = 7 WHERE id = 2", "COMMIT")
        self.sql("UPDATE customers SET name = 'Bobby' WHERE id = 2")
        w1.run("DELETE FROM customers WHERE id = 50")
        self.sql("INSERT INTO customers VALUES (3, 'Cy', 0)")
        w2.close()
        w3 = self.writer()  # the origin w2 let go of is free again
        self.assertEqual(w3.origin, "syncfleet.2")
        w3.run("UPDATE customers SET credit = 1 WHERE id = 3")
        self.sql("DELETE FROM customers WHERE id = 1")
        self.wait_flushed()
        # delivered is not yet read back: wait for the reader too
        log.wait_count(5, timeout=60)
        recs = sfpg.ordered(log.records())
        got = [(r["value"]["op"], r["key"]["key"]["id"]) for r in recs]
        self.assertEqual(got, [("c", 1), ("c", 2), ("u", 2), ("c", 3), ("d", 1)])
        # the application's update carries the row as the writer left it
        self.assertEqual(recs[2]["value"]["after"], {"id": 2, "name": "Bobby", "credit": 7})
        origins = sorted(r[0] for r in self.query("SELECT roname FROM pg_replication_origin"))
        self.assertEqual(origins, ["syncfleet", "syncfleet.2"])
        proc.stop()
        self.assertIn("5 skipped as syncfleet's own writes", proc.stderr())


if __name__ == "__main__":
    unittest.main()
