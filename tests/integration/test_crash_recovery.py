"""Nothing is lost when a component is killed with SIGKILL mid-run.

The same pipeline as test_pipeline_e2e (broker, producer, router, two
message workers in one group, sf-receiver), fewer ids and a steady writer.
While the writer keeps going, the producer, then the router, then one of
the workers is killed with SIGKILL at a random moment and started again.
The receiver answers every 20th request 503, so some records are being
retried when their worker dies or loses its partitions.

Asserted: every committed change (each version, each delete) was answered
2xx at least once and every id's final state arrived last. Duplicates are
allowed (at least once); they are counted and printed, with the seed that
chose the moments (set SF_SEED to repeat a run).
"""

import os
import random
import time
import unittest

import sftest

IDS = range(1, 41)
RULES = [{"path": "/customers/*", "every": 20, "status": 503, "scope": "rule"}]


class CrashRecoveryTest(sftest.TestCase):

    def test_kill_each_component_and_lose_nothing(self):
        started = time.monotonic()
        seed = int(os.environ.get("SF_SEED") or time.time_ns() % 1000000)
        rng = random.Random(seed)
        print("SF_SEED=%d" % seed)
        rcv = self.receiver(RULES)
        pipe = self.pipeline("crash%d" % os.getpid(), rcv)
        writer = sftest.ChangeWriter(pipe.db_path, seed)
        self.addCleanup(writer.close)
        live = {"producer": pipe.producer(), "router": pipe.router(),
                "worker-a": pipe.worker("worker-a"), "worker-b": pipe.worker("worker-b")}

        writer.wait_capturing(live["producer"])
        writer.insert(IDS)
        pipe.wait_published(len(IDS))
        writer.start(IDS, delete_ratio=0.1, pause=0.02)
        self.addCleanup(writer.stop)
        # Mid-run: changes flow end to end before the first kill.
        rcv.wait_requests(100, timeout=30)
        delivered_before = {}

        def kill_and_restart(name, restart):
            time.sleep(rng.uniform(1.0, 4.0))
            for p in live.values():
                p.assert_running()
            delivered_before[name] = len(rcv.requests())
            live[name].kill()
            print("%6.2fs  kill -9 %s (pid %d), writer at %d changes, receiver at %d requests"
                  % (time.monotonic() - started, name, live[name].pid, writer.changes,
                     delivered_before[name]))
            time.sleep(rng.uniform(0.2, 1.0))
            live[name] = restart()
            print("%6.2fs  restarted %s (pid %d)" % (
                time.monotonic() - started, name, live[name].pid))

        kill_and_restart("producer", lambda: pipe.producer("producer-2"))
        kill_and_restart("router", lambda: pipe.router("router-2"))
        victim = rng.choice(["worker-a", "worker-b"])
        kill_and_restart(victim, lambda: pipe.worker(victim + "-2"))
        time.sleep(3.0)
        writer.stop()
        wrote = time.monotonic()
        print("%6.2fs  writer stopped: %d changes in %d transactions" % (
            wrote - started, writer.changes, writer.transactions))

        by_id = sftest.wait_converged(rcv, writer, IDS, 90, list(live.values()))
        print("%6.2fs  converged, %.1fs after the last write" % (
            time.monotonic() - started, time.monotonic() - wrote))
        self.assertEqual([], sftest.lost_changes(by_id, writer, IDS),
                         "every committed change arrived at least once")
        requests = rcv.requests()
        self.assertEqual([], sftest.idempotency_problems(requests),
                         "every request carries an Idempotency-Key, the same only for "
                         "the same change")
        ok = sum(1 for r in requests if sftest.is_2xx(r))
        dup_keys, dup_extra = sftest.duplicate_count(requests)
        reordered = sftest.order_problems(by_id, writer, IDS)
        print("requests: %d (%d answered 2xx) for %d changes; duplicates: %d changes "
              "delivered more than once, %d extra deliveries; ids with a request out of "
              "order (allowed after a crash): %d" % (
                  len(requests), ok, writer.changes, dup_keys, dup_extra, len(reordered)))
        for line in reordered[:3]:
            print("  " + line)

        sftest.wait_for(lambda: writer.count("SELECT count(*) FROM _syncfleet_log") == 0,
                        10, "the producer to delete every delivered row of _syncfleet_log")
        sftest.stop_cleanly(self, list(live.values()))
        print("test_crash_recovery: %.1fs" % (time.monotonic() - started))

    def test_lost_partition_is_not_retried_by_its_old_owner(self):
        """When a partition moves to another worker, the old owner stops
        sending its records, retries included: the new owner starts over
        from the committed offset, so a late retry from the old owner could
        land after a newer state and overwrite it."""
        started = time.monotonic()
        # Slow failures: most of the time a record is on the wire when its
        # partition is revoked.
        rcv = self.receiver([{"path": "/customers/*", "status": 503, "delay_ms": 1000}])
        pipe = self.pipeline("moved%d" % os.getpid(), rcv, max_attempts=1000)
        writer = sftest.ChangeWriter(pipe.db_path, 5)
        self.addCleanup(writer.close)
        procs = [pipe.producer(), pipe.router(), pipe.worker("worker-a")]
        writer.wait_capturing(procs[0])
        ids = set(range(1, 17))
        writer.insert(sorted(ids))
        pipe.wait_published(len(ids))

        def tried_by(name):
            return {cid for cid, reqs in sftest.customer_requests(rcv).items()
                    if any(r["headers"].get("x-worker") == name for r in reqs)}

        # the connector's circuit opens after a few failures; its one probe
        # at a time goes round the held records, so every id gets tried
        sftest.wait_for(lambda: tried_by("worker-a") == ids, 90,
                        "worker-a to try (and retry, all answered 503) every id")
        time.sleep(1.0)
        procs.append(pipe.worker("worker-b"))
        sftest.wait_for(lambda: tried_by("worker-b"), 90,
                        "worker-b to join the group and try the records of its partitions")
        time.sleep(3.0)  # worker-a retries every <= 1.5 s, if it still does

        late = {}
        for cid, reqs in sftest.customer_requests(rcv).items():
            first_b = min((r["seq"] for r in reqs if r["headers"].get("x-worker") == "worker-b"),
                          default=None)
            if first_b is not None:
                late[cid] = sum(1 for r in reqs if r["seq"] > first_b
                                and r["headers"].get("x-worker") == "worker-a")
        print("ids moved to worker-b: %s; worker-a's requests for them after worker-b "
              "started on them: %s" % (sorted(late), late))
        self.assertTrue(late, "some ids moved to worker-b")
        self.assertEqual({cid: n for cid, n in late.items() if n}, {},
                         "worker-a kept retrying records of partitions it lost to worker-b "
                         "(id: requests after worker-b took over); such a retry may land after "
                         "a newer state and overwrite it")

        rcv.set_rules([])
        writer.transaction([("u", cid) for cid in sorted(ids)])
        by_id = sftest.wait_converged(rcv, writer, ids, 60, procs)
        self.assertEqual([], sftest.lost_changes(by_id, writer, ids))
        sftest.stop_cleanly(self, procs)
        print("test_lost_partition_is_not_retried_by_its_old_owner: %.1fs" % (
            time.monotonic() - started))


if __name__ == "__main__":
    unittest.main()
