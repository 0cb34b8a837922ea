"""Dead letters on the embedded broker, through `syncfleet run`: they are
kept in the pipeline's state directory, so they survive a restart;
`syncfleet dlq list --json` shows them with their reason; `dlq replay
--dry-run` sends nothing; once the target is fixed, `dlq replay --action A`
sends exactly the dead letters of A back, and the target gets them in their
order with their event ids, while the others stay in the store. A second
`syncfleet run` of the same pipeline is refused while one runs.

Three messages export every change of customers to the receiver: to-shop
(accepted), to-crm (answered 422 until the rule is fixed) and to-erp
(answered 400 throughout). The producer and the router dead-letter into
the same store: a row larger than message.max.bytes, and a sync-log record
that is not JSON."""

import json
import os
import re
import sqlite3
import subprocess
import unittest

import sftest

PIPELINE = """
version: 1
name: dlqtest
kafka:
  brokers: embedded
  topic_prefix: dl
  partitions: 2
  config: { message.max.bytes: "100000" }
source: { type: sqlite, path: ./erp.db, poll_interval_ms: 20 }
tables:
  customers: { key: [id] }
connectors:
  api:
    type: http
    base_url: "%s"
    retry: { max_attempts: 3, initial_backoff_ms: 20, max_backoff_ms: 50 }
messages:
%s
"""

MESSAGE = """  %(name)s:
    trigger: { table: customers, events: [insert, update] }
    target: { connector: api, method: PUT, path: "/%(path)s/customers/{{id}}" }
    mapping: { id: "{{id}}", version: "{{version}}" }
"""

RULES_BROKEN = [{"path": "/crm/*", "status": 422}, {"path": "/erp/*", "status": 400}]
RULES_FIXED = [{"path": "/erp/*", "status": 400}]

# (id, version) of every change, in commit order: ids 1-4 inserted, then
# 1 and 3 updated twice and 2 once
CHANGES = [(1, 1), (2, 1), (3, 1), (4, 1), (1, 2), (3, 2), (2, 2), (1, 3), (3, 3)]


class DeadLetterTest(sftest.TestCase):
    def setUp(self):
        self.syncfleet = sftest.env_path("SYNCFLEET")
        self.receiver_ = self.receiver(RULES_BROKEN)
        messages = "".join(MESSAGE % {"name": n, "path": p}
                           for n, p in (("to-shop", "shop"), ("to-crm", "crm"),
                                        ("to-erp", "erp")))
        self.config = self.tmp.write("pipeline.yaml", PIPELINE % (self.receiver_.url, messages))
        self.state_dir = self.tmp.join(".syncfleet", "dlqtest")
        self.db = sqlite3.connect(self.tmp.join("erp.db"), isolation_level=None, timeout=20)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, version INTEGER, "
                        "note TEXT)")
        self.addCleanup(self.db.close)

    def run_pipeline(self, name):
        run = self.start([self.syncfleet, "run", "-c", self.config], name,
                         env=dict(os.environ, SYNCFLEET_LOG="info"))
        run.wait_line(r"running pipeline dlqtest", timeout=30, stream="stderr")
        return run

    def cli(self, *args):
        return subprocess.run([self.syncfleet] + list(args), capture_output=True, text=True,
                              timeout=60)

    def dlq(self, *args, expect=0):
        res = self.cli("dlq", *args, "-c", self.config)
        self.assertEqual(res.returncode, expect, "dlq %s exited %d:\n%s%s" % (
            " ".join(args), res.returncode, res.stdout, res.stderr))
        return res

    def dead_letters(self, *filters):
        out = self.dlq("list", "--json", *filters).stdout
        return [json.loads(line) for line in out.splitlines()]

    def lag(self):
        res = self.cli("lag", "-c", self.config, "--json")
        self.assertEqual(res.returncode, 0, res.stderr)
        return json.loads(res.stdout)["groups"]

    def group_lags(self):
        return {g["group"]: g["lag"] for g in self.lag() if g["group"] != "dl.webservice-workers"}

    def outbound_end(self):
        """The summed end offsets of dl.outbound.message, from `syncfleet
        lag`, which finds the running broker in the state directory."""
        group = [g for g in self.lag() if g["topic"] == "dl.outbound.message"][0]
        return sum(p["end"] for p in group["partitions"])

    def write_changes(self):
        seen = set()
        for cid, version in CHANGES:
            if cid in seen:
                self.db.execute("UPDATE customers SET version = ? WHERE id = ?", (version, cid))
            else:
                self.db.execute("INSERT INTO customers VALUES (?, ?, '')", (cid, version))
                seen.add(cid)

    def crm_requests(self):
        return [(int(r["path"].rsplit("/", 1)[1]), sftest.request_body(r)["version"], r)
                for r in self.receiver_.requests("/crm/*")]

    def check_dead_letter(self, d, action, path, status):
        self.assertEqual(d["action"], action, d)
        self.assertEqual(d["stage"], "message", d)
        self.assertRegex(d["error"], r"^%s: HTTP %d from PUT http://127\.0\.0\.1:\d+/%s/customers/%d"
                         % (action, status, path, json.loads(d["key"])["key"]["id"]))
        self.assertEqual(d["attempts"], 1, d)  # a 4xx is not retried
        self.assertEqual(d["origin"]["topic"], "dl.outbound.message", d)
        self.assertRegex(d["failed_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertTrue(d["event_id"], d)
        self.assertIsNone(d["replayed_at"], d)

    def test_dead_letters_survive_a_restart_and_replay_in_order(self):
        run = self.run_pipeline("run1")
        self.write_changes()
        # every change is tried once per message; the 4xx ones are dead
        # letters once they are in the store
        # a row too large for Kafka, and a record the router cannot read
        self.db.execute("INSERT INTO customers VALUES (99, 1, ?)", ("x" * 150000,))
        with open(os.path.join(self.state_dir, "broker")) as f:
            broker = f.read().strip()
        sftest.kcat_produce(broker, "dl.sync-log", [("bad-key", "not json")])
        self.receiver_.wait_requests(len(CHANGES), "/shop/*", timeout=30)
        total = 2 * len(CHANGES) + 2
        sftest.wait_for(lambda: len(self.dead_letters()) == total, timeout=30,
                        what="%d dead letters in the store" % total)
        # a stored dead letter is done for the one who stored it: the
        # producer acknowledged every change to the source, the router and
        # the worker committed every record they read
        sftest.wait_for(lambda: self.db.execute("SELECT count(*) FROM _syncfleet_log")
                        .fetchone()[0] == 0, timeout=30,
                        what="the producer to acknowledge every captured change")
        sftest.wait_for(lambda: self.group_lags() == {"dl.router": 0, "dl.message-workers": 0},
                        timeout=30, what="the router and the worker to commit what they read")
        run.stop(timeout=30)
        self.assertTrue(os.path.isfile(os.path.join(self.state_dir, "dlq.db")))
        self.assertFalse(os.path.exists(os.path.join(self.state_dir, "broker")),
                         "the broker record outlived its run")

        # a new process, a new in-memory broker: the dead letters are still
        # there, each once, with its reason
        run = self.run_pipeline("run2")
        before = self.dead_letters()
        self.assertEqual(len(before), 2 * len(CHANGES) + 2, before)
        self.assertEqual(len({d["id"] for d in before}), len(before))
        [producer] = self.dead_letters("--stage", "producer")
        self.assertIsNone(producer["action"])
        self.assertEqual(producer["origin"], {"topic": "dl.sync-log", "partition": -1,
                                              "offset": -1})
        self.assertIn("larger than Kafka's message.max.bytes (100000)", producer["error"])
        self.assertEqual(json.loads(producer["key"]), {"key": {"id": 99}, "table": "customers"})
        self.assertTrue(producer["event_id"])
        [router] = self.dead_letters("--stage", "router")
        self.assertIsNone(router["action"])
        self.assertEqual(router["origin"]["topic"], "dl.sync-log")
        self.assertEqual(router["key"], "bad-key")
        self.assertRegex(router["error"], r"JSON")
        crm = [d for d in before if d["action"] == "to-crm"]
        erp = [d for d in before if d["action"] == "to-erp"]
        self.assertEqual(len(crm), len(CHANGES))
        self.assertEqual(len(erp), len(CHANGES))
        for d in crm:
            self.check_dead_letter(d, "to-crm", "crm", 422)
        for d in erp:
            self.check_dead_letter(d, "to-erp", "erp", 400)
        self.assertEqual(self.dead_letters("--action", "to-crm"), crm)
        # the dead letters of one key failed in the order of its changes
        crm_keys = [json.loads(d["key"])["key"]["id"] for d in crm]
        self.assertEqual(sorted(crm_keys), sorted(cid for cid, _ in CHANGES))
        for cid in {1, 2, 3, 4}:
            mine = [d["event_id"] for d in crm if json.loads(d["key"])["key"]["id"] == cid]
            self.assertEqual(len(mine), sum(1 for c, _ in CHANGES if c == cid))

        # one run per state directory
        second = self.cli("run", "-c", self.config)
        self.assertEqual(second.returncode, 2, second.stderr)
        self.assertIn("syncfleet run: state directory %s is in use by another syncfleet run "
                      "(pid %d); give this pipeline its own state_dir\n" % (
                          self.state_dir, run.pid), second.stderr)

        # a dry run lists what it would send and sends nothing: the origin
        # topic has no new record, the store is as it was
        crm_before = self.crm_requests()
        end_before = self.outbound_end()
        dry = self.dlq("replay", "--dry-run", "--action", "to-crm")
        lines = dry.stdout.splitlines()
        self.assertEqual(lines, ["would replay %d to dl.outbound.message: key %s" % (d["id"], d["key"])
                                 for d in crm])
        self.assertEqual(self.outbound_end(), end_before)
        self.assertEqual(self.dead_letters(), before)
        self.assertEqual(len(self.crm_requests()), len(crm_before))

        # the target is fixed: replaying to-crm's dead letters delivers
        # exactly those, in their order per record, with their event ids
        self.receiver_.set_rules(RULES_FIXED)
        res = self.dlq("replay", "--action", "to-crm")
        self.assertIn("replayed %d of %d dead letters; those delivered left the store" % (
            len(crm), len(crm)), res.stdout)
        self.assertEqual(self.outbound_end(), end_before + len(crm),
                         "replay sent something else than the %d dead letters" % len(crm))
        self.receiver_.wait_requests(len(crm_before) + len(crm), "/crm/*", timeout=30)
        replayed = self.crm_requests()[len(crm_before):]
        self.assertTrue(all(sftest.is_2xx(r) for _, _, r in replayed), replayed)
        self.assertEqual(sorted((cid, v) for cid, v, _ in replayed), sorted(CHANGES))
        for cid in {1, 2, 3, 4}:
            versions = [v for c, v, _ in replayed if c == cid]
            self.assertEqual(versions, sorted(versions), "id %d out of order: %s" % (cid, versions))
        crm_events = sorted(d["event_id"] for d in crm)
        self.assertEqual(sorted(r["headers"]["idempotency-key"] for _, _, r in replayed),
                         crm_events)
        # gone from the store; the others stay
        self.assertEqual(self.dead_letters("--action", "to-crm"), [])
        self.assertEqual(self.dead_letters(), [d for d in before if d["action"] != "to-crm"])
        run.stop(timeout=30)


DEEP_PIPELINE = """
version: 1
name: dlqdeep
kafka: { brokers: embedded, topic_prefix: dd, partitions: 1 }
source: { type: sqlite, path: ./erp.db, poll_interval_ms: 20 }
tables:
  customers: { key: [id] }
connectors:
  api: { type: http, base_url: "%s" }
messages:
  to-api:
    trigger: { table: customers, check_used_fields: false }
    target: { connector: api, method: PUT, path: "/customers/{{id}}" }
    mapping: { id: "{{id}}", year: "{{d | date('%%Y')}}" }
"""

DEEP = 4500


class LongFailingQueueTest(sftest.TestCase):
    def test_a_long_queue_of_one_key_that_all_fail_is_stored(self):
        """A record whose first change is slow to answer collects a long
        queue behind it; every later change fails to render. Once the first
        is answered, each of the rest is dead-lettered and stored the moment
        the one before it is done: all of them reach the store, in order,
        and the worker is none the worse."""
        syncfleet = sftest.env_path("SYNCFLEET")
        receiver = self.receiver([{"path": "/customers/1", "times": 1, "delay_ms": 3000}])
        config = self.tmp.write("pipeline.yaml", DEEP_PIPELINE % receiver.url)
        db = sqlite3.connect(self.tmp.join("erp.db"), isolation_level=None, timeout=20)
        self.addCleanup(db.close)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, d TEXT, n INTEGER)")
        run = self.start([syncfleet, "run", "-c", config], "run",
                         env=dict(os.environ, SYNCFLEET_LOG="info"))
        run.wait_line(r"running pipeline dlqdeep", timeout=30, stream="stderr")
        db.execute("INSERT INTO customers VALUES (1, '2024-01-01', 0)")
        receiver.wait_requests(1, "/customers/1", timeout=30)  # now held for 3 s
        db.execute("BEGIN")
        for n in range(1, DEEP + 1):
            db.execute("UPDATE customers SET d = 'never', n = ? WHERE id = 1", (n,))
        db.execute("COMMIT")

        def stored():
            run.assert_running()
            res = subprocess.run([syncfleet, "dlq", "list", "--json", "-c", config],
                                 capture_output=True, text=True, timeout=60)
            self.assertEqual(res.returncode, 0, res.stderr)
            got = [json.loads(line) for line in res.stdout.splitlines()]
            return got if len(got) >= DEEP else None
        dead = sftest.wait_for(stored, timeout=90, interval=0.5,
                               what="%d dead letters in the store" % DEEP)
        self.assertEqual(len(dead), DEEP)
        self.assertEqual([d["origin"]["offset"] for d in dead], list(range(1, DEEP + 1)))
        self.assertTrue(all(d["error"] == "to-api: year: filter 'date' cannot parse \"never\" as "
                            "a date in \"{{d | date('%Y')}}\"" for d in dead), dead[0])
        self.assertEqual(len(receiver.requests()), 1)
        run.stop(timeout=30)


if __name__ == "__main__":
    unittest.main()
