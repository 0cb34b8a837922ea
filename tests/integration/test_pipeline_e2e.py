"""The whole pipeline as separate processes, end to end.

A `syncfleet broker`, the producer capturing a SQLite database, the router
and two message workers in one group deliver a writer's few thousand
inserts, updates and deletes over 200 customers to sf-receiver, whose rules
make some ids fail on cue: 500 twice, 429 with Retry-After once, a slow
answer, a dropped connection, and one id that is always 404. Warm-up ids
go through first, until both workers delivered some, so the group does not
rebalance under the changes being checked.

Asserted: every id's final state arrived (the last request is a 2xx PUT of
the final row, or a DELETE), no change was lost, each id's requests arrived
in source order (versions never go back), failing ids succeeded after
exactly the retries their rules cause while other records of the same
partition kept flowing, the 404 id's records are in the DLQ with their
reason and nothing else is, every request carries Idempotency-Key = the
change's event id, the sync-log and outbound records follow DESIGN.md, the
capture log is drained, both workers delivered (their X-Worker header) and
every component exits 0 on SIGTERM.
"""

import collections
import json
import os
import re
import time
import unittest

import sftest
from sftest import is_2xx, kcat_consume, request_body

IDS = range(1, 201)
FAIL_500 = (11, 12, 13)  # first two requests answered 500
LIMITED = 21             # first request answered 429, Retry-After: 1 (waited 500 ms,
                         # max_backoff_ms)
SLOW = 31                # first request answered after SLOW_MS
DROPPED = 41             # first request's connection closed unanswered
GONE = 51                # always 404: every change goes to the DLQ
SLOW_MS = 1500
TIMEOUT_MS = 3000
UPDATES = 2800
SEED = 20261126
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")

RULES = ([{"path": "/customers/%d" % i, "times": 2, "status": 500} for i in FAIL_500] + [
    {"path": "/customers/%d" % LIMITED, "times": 1, "status": 429, "retry_after": 1},
    {"path": "/customers/%d" % SLOW, "times": 1, "delay_ms": SLOW_MS},
    {"path": "/customers/%d" % DROPPED, "times": 1, "drop": True},
    {"path": "/customers/%d" % GONE, "status": 404},
])
SPECIAL = set(FAIL_500) | {LIMITED, SLOW, DROPPED, GONE}


def customer_id(key_text):
    """The id in an outbound or sync-log record key."""
    return json.loads(key_text)["key"]["id"]


class PipelineEndToEndTest(sftest.TestCase):

    def test_changes_arrive_complete_and_in_order(self):
        started = time.monotonic()
        rcv = self.receiver(RULES)
        prefix = "e2e%d" % os.getpid()
        pipe = self.pipeline(prefix, rcv, timeout_ms=TIMEOUT_MS)
        # The table exists before the producer installs its triggers.
        writer = sftest.ChangeWriter(pipe.db_path, SEED)
        self.addCleanup(writer.close)
        workers = [pipe.worker("worker-a"), pipe.worker("worker-b")]
        router = pipe.router()
        producer = pipe.producer()
        procs = [producer, router] + workers
        writer.wait_capturing(producer)
        settle_group(pipe, rcv, writer)

        writer.insert(IDS)
        writer.random_changes(IDS, count=UPDATES, protected=SPECIAL, pause=0.01)
        wrote = time.monotonic()
        print("writer: %d changes in %d transactions, %.1fs" % (
            writer.changes, writer.transactions, wrote - started))

        ids = [i for i in IDS if i != GONE]
        by_id = sftest.wait_converged(rcv, writer, ids, 90, procs)
        print("converged %.1fs after the last write" % (time.monotonic() - wrote))

        requests = rcv.requests()
        self.assertEqual([], sftest.idempotency_problems(requests),
                         "every request carries an Idempotency-Key, the same only on retries")
        self.assertEqual({"PUT", "DELETE"} | {r["method"] for r in requests}, {"PUT", "DELETE"},
                         "only PUT and DELETE are sent")
        self.assertEqual([], sftest.lost_changes(by_id, writer, ids),
                         "every committed change arrived")
        self.assertEqual([], sftest.order_problems(by_id, writer, IDS),
                         "each id's changes arrive in source order")
        dup_keys, dup_extra = sftest.duplicate_count(requests)
        print("requests: %d, duplicates: %d keys answered 2xx more than once (%d extra)" % (
            len(requests), dup_keys, dup_extra))

        synclog = kcat_consume(pipe.bootstrap, pipe.topic("sync-log"))
        event_ids = self.check_sync_log(synclog, writer)
        outbound = kcat_consume(pipe.bootstrap, pipe.topic("outbound.message"))
        partition_of = self.check_outbound(outbound, writer, event_ids)
        self.check_idempotency_keys(by_id, event_ids)

        self.check_retried(by_id, partition_of, rcv)
        self.check_dead_letters(pipe, rcv, by_id, writer, outbound)

        sftest.wait_for(lambda: writer.count("SELECT count(*) FROM _syncfleet_log") == 0,
                        10, "the producer to delete every delivered row of _syncfleet_log")
        sftest.stop_cleanly(self, procs)
        senders = collections.Counter(r["headers"].get("x-worker") for r in requests)
        print("requests sent by worker: %s" % dict(senders))
        self.assertEqual(set(senders), {"worker-a", "worker-b"},
                         "both workers of the group delivered records (X-Worker)")
        print("test_pipeline_e2e: %.1fs" % (time.monotonic() - started))

    # --- records ---------------------------------------------------------

    def check_sync_log(self, records, writer):
        """Each change is one sync-log record, in commit order per id, in
        DESIGN.md's format. Returns {(id, op, version): event id}."""
        ops, event_ids = {}, {}
        for rec in records:
            where = "sync-log %d/%d" % (rec["partition"], rec["offset"])
            cid = customer_id(rec["key"])
            self.assertEqual(rec["key"], '{"key":{"id":%d},"table":"customers"}' % cid,
                             "%s: the key is canonical table + primary key" % where)
            value = json.loads(rec["value"])
            self.assertIn(value["op"], ("c", "u", "d"), where)
            self.assertIsInstance(value["ts_ms"], int, where)
            self.assertEqual(value["source"]["table"], "customers", where)
            image = value["before"] if value["op"] == "d" else value["after"]
            self.assertEqual(image["id"], cid, where)
            if value["op"] == "d":
                self.assertIsNone(value["after"], where)
            event_id = rec["headers"].get("syncfleet-event-id")
            self.assertTrue(event_id, "%s has a syncfleet-event-id header" % where)
            change = (cid, value["op"], image["version"])
            self.assertNotIn(change, event_ids, "%s: change %s published twice" % (where, change))
            event_ids[change] = event_id
            ops.setdefault(cid, []).append((value["op"], image["version"]))
        self.assertEqual(len(set(event_ids.values())), len(event_ids), "event ids are unique")
        for cid in IDS:
            self.assertEqual(ops.get(cid), writer.history[cid],
                             "id %d: the sync-log holds its changes in commit order" % cid)
        return event_ids

    def check_outbound(self, records, writer, event_ids):
        """One outbound record per change in DESIGN.md's format. Returns
        {id: outbound partition}."""
        partition_of, count = {}, {}
        events = {"c": "insert", "u": "update", "d": "delete"}
        for rec in records:
            where = "outbound %d/%d" % (rec["partition"], rec["offset"])
            cid = customer_id(rec["key"])
            self.assertEqual(
                rec["key"], '{"action":"customer-to-webshop","key":{"id":%d},"table":"customers"}'
                % cid, "%s: the key is action + root record, canonical" % where)
            self.assertEqual(partition_of.setdefault(cid, rec["partition"]), rec["partition"],
                             "%s: one id, one partition" % where)
            v = json.loads(rec["value"])
            op = {"insert": "c", "update": "u", "delete": "d"}.get(v.get("event"))
            self.assertIsNotNone(op, "%s: event %r" % (where, v.get("event")))
            change = (cid, op, v["record"]["version"])
            self.assertEqual(v["event_id"], event_ids.get(change),
                             "%s: event_id is the sync-log's for %s" % (where, change))
            self.assertEqual(
                {k: v[k] for k in ("kind", "action", "event", "table", "key", "root")},
                {"kind": "message", "action": "customer-to-webshop", "event": events[op],
                 "table": "customers", "key": {"id": cid},
                 "root": {"table": "customers", "key": {"id": cid}}}, where)
            self.assertEqual(set(v["record"]), {"id", "name", "email", "version"}, where)
            for field in ("source_ts_ms", "routed_ts_ms"):
                self.assertIsInstance(v[field], int, "%s: %s" % (where, field))
            self.assertGreaterEqual(v["routed_ts_ms"], v["source_ts_ms"], where)
            count[cid] = count.get(cid, 0) + 1
        for cid in IDS:
            self.assertEqual(count.get(cid, 0), len(writer.history[cid]),
                             "id %d: one outbound record per change" % cid)
        return partition_of

    def check_idempotency_keys(self, by_id, event_ids):
        """Every request's Idempotency-Key is the event id of the change it
        delivers."""
        for cid, reqs in by_id.items():
            deletes = {e for (i, op, _), e in event_ids.items() if i == cid and op == "d"}
            for r in reqs:
                key = r["headers"].get("idempotency-key")
                if r["method"] == "DELETE":
                    self.assertIn(key, deletes, "id %d: DELETE #%d carries a delete's event id"
                                  % (cid, r["seq"]))
                    continue
                version = request_body(r)["version"]
                want = {event_ids.get((cid, op, version)) for op in ("c", "u")} - {None}
                self.assertEqual({key}, want, "id %d: PUT #%d of version %d carries its event id"
                                 % (cid, r["seq"], version))

    # --- failures on cue -------------------------------------------------

    def check_retried(self, by_id, partition_of, rcv):
        everything = rcv.requests()

        def flowing(cid, t0, t1):
            """Requests of other ids of cid's outbound partition that arrived
            between t0 and t1."""
            return [r for r in everything if t0 < r["ts_ms"] < t1
                    and r["path"] != "/customers/%d" % cid
                    and partition_of.get(int(r["path"].rsplit("/", 1)[1])) == partition_of[cid]]

        for cid in FAIL_500:
            first = by_id[cid][:3]
            self.assertEqual([r["status"] for r in first[:2]], [500, 500],
                             "id %d: the rule answered its first two requests 500" % cid)
            self.assertTrue(is_2xx(first[2]), "id %d: the third request succeeded: %s" % (
                cid, first[2]))
            self.assertEqual(len({r["headers"]["idempotency-key"] for r in first}), 1,
                             "id %d: the insert was retried twice, then succeeded" % cid)
            self.assertEqual(request_body(first[0])["version"], 1, cid)

        limited = by_id[LIMITED]
        self.assertEqual(limited[0]["status"], 429)
        self.assertEqual(limited[1]["headers"]["idempotency-key"],
                         limited[0]["headers"]["idempotency-key"],
                         "the 429'd insert of id %d is retried next" % LIMITED)
        self.assertTrue(is_2xx(limited[1]), limited[1])
        waited = limited[1]["ts_ms"] - limited[0]["ts_ms"]
        # Retry-After: 1 is bounded by the connector's max_backoff_ms (500),
        # which is still ten times the backoff without it
        self.assertGreaterEqual(waited, 450, "the retry after 429 honours Retry-After: 1 "
                                "up to max_backoff_ms (it came %d ms later)" % waited)
        self.assertTrue(flowing(LIMITED, limited[0]["ts_ms"], limited[1]["ts_ms"]),
                        "records of id %d's partition kept flowing while it waited out "
                        "Retry-After" % LIMITED)

        slow = by_id[SLOW]
        self.assertEqual(slow[0]["status"], 200)
        tries = [r for r in slow if r["headers"]["idempotency-key"]
                 == slow[0]["headers"]["idempotency-key"]]
        self.assertEqual(len(tries), 1, "a %d ms answer, below timeout_ms %d, is not retried: %s"
                         % (SLOW_MS, TIMEOUT_MS, tries))
        self.assertTrue(flowing(SLOW, slow[0]["ts_ms"], slow[0]["ts_ms"] + SLOW_MS),
                        "records of id %d's partition kept flowing during its slow answer" % SLOW)

        dropped = by_id[DROPPED]
        self.assertEqual(dropped[0]["status"], 0, "the rule dropped the first connection")
        self.assertEqual(dropped[1]["headers"]["idempotency-key"],
                         dropped[0]["headers"]["idempotency-key"],
                         "the dropped insert of id %d is retried next" % DROPPED)
        self.assertTrue(is_2xx(dropped[1]), dropped[1])

    def check_dead_letters(self, pipe, rcv, by_id, writer, outbound):
        """Each change of the 404 id was tried once and dead-lettered
        unchanged with its reason; no other record is in the DLQ."""
        changes = len(writer.history[GONE])
        gone = by_id[GONE]
        self.assertEqual([r["status"] for r in gone], [404] * changes,
                         "id %d: each change tried once, answered 404, not retried" % GONE)
        dlq = kcat_consume(pipe.bootstrap, pipe.topic("dlq"), count=changes, timeout=20)
        extra = kcat_consume(pipe.bootstrap, pipe.topic("dlq"))
        self.assertEqual(len(extra), changes, "only id %d's changes are in the DLQ: %s" % (
            GONE, [(r["key"], r["headers"].get("syncfleet-error")) for r in extra
                   if customer_id(r["key"]) != GONE][:5]))
        origin_of = {"%s/%d/%d" % (r["topic"], r["partition"], r["offset"]): r for r in outbound}
        url = "%s/customers/%d" % (rcv.url, GONE)
        versions = []
        for rec in dlq:
            h = rec["headers"]
            self.assertEqual(customer_id(rec["key"]), GONE, rec)
            self.assertIn("HTTP 404 from PUT %s" % url, h.get("syncfleet-error", ""),
                          "the DLQ record names its reason: %s" % h)
            self.assertEqual(h.get("syncfleet-stage"), "message", h)
            self.assertEqual(h.get("syncfleet-attempts"), "1", h)
            self.assertRegex(h.get("syncfleet-failed-at", ""), ISO_UTC)
            origin = origin_of.get(h.get("syncfleet-origin"))
            self.assertIsNotNone(origin, "syncfleet-origin %r names the outbound record "
                                 "(topic/partition/offset)" % h.get("syncfleet-origin"))
            self.assertEqual((rec["key"], rec["value"]), (origin["key"], origin["value"]),
                             "the DLQ holds the failed record unchanged")
            versions.append(json.loads(rec["value"])["record"]["version"])
        self.assertEqual(sorted(versions), [v for _, v in writer.history[GONE]])


def settle_group(pipe, rcv, writer, timeout=30.0):
    """Waits until both workers have partitions, so the group does not
    rebalance while the changes under test flow (a rebalance hands
    uncommitted records to the other worker, which may send them again,
    out of order). Warm-up ids, outside IDS, go through the pipeline until
    both workers delivered some of them."""
    warm = range(1001, 1033)
    writer.insert(warm)
    pipe.wait_published(len(warm))

    def both_sent():
        by_id = sftest.customer_requests(rcv)
        return {r["headers"].get("x-worker") for cid in warm
                for r in by_id.get(cid, [])} >= {"worker-a", "worker-b"}

    sftest.wait_for(both_sent, timeout, "both message workers of the group to deliver "
                    "warm-up records", interval=0.2)


if __name__ == "__main__":
    unittest.main()
