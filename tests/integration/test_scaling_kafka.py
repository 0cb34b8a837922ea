"""Message workers scaling in and out on a real Apache Kafka broker while
changes keep coming.

Dynamic membership: a steady writer, one worker holding all six partitions
of the outbound topic; a second and a third join and the group spreads the
partitions over them (cooperative-sticky); the second is killed with
SIGKILL and its partitions go to the others once its session expires; the
third is stopped with SIGTERM, exits 0 within its grace period, and leaves
the group, whose last member takes everything back.

Static membership (--instance-id, as a pod's name would give): two workers
share the partitions; one is killed with SIGKILL and started again under
the same id within the session timeout: it gets exactly its partitions
back and the other member's assignment never changes.

Asserted each time: nothing lost (every committed change answered 2xx at
least once, each id's final state last), order per id kept (a replay of
what a killed worker had not committed goes back and repeats changes in
order, skipping none), the group's lag as `syncfleet lag` reads it back to
zero, and no syncfleet process exits unasked. How long each rebalance
took is printed, not asserted (figures, not tests).
"""

import os
import signal
import time
import unittest

import sfkafka
import sftest

IDS = range(1, 121)
PARTITIONS = 6
GRACE_MS = 10000


class ScalingOnKafkaTest(sfkafka.KafkaTestCase):

    def setUp(self):
        self.rcv = self.receiver()
        self.prefix = "%s%d" % (self._testMethodName[5:12], os.getpid())
        self.pipe = self.pipeline(self.prefix, self.rcv, PARTITIONS)
        self.topic = self.pipe.topic("outbound.message")
        self.writer = sftest.ChangeWriter(self.pipe.db_path, 7)
        self.addCleanup(self.writer.close)
        self.producer = self.pipe.producer()
        self.router = self.pipe.router()

    def worker(self, name, *args):
        return self.pipe.start(name, "worker", "--kind", "message", "--grace-ms",
                               str(GRACE_MS), *args)

    def settle(self, members, what):
        """Waits until MEMBERS share the partitions; prints how long it took."""
        t0 = time.monotonic()
        shares = sfkafka.wait_assigned(members, self.topic, PARTITIONS, timeout=60)
        took = time.monotonic() - t0
        print("rebalance %-40s %5.1fs  %s" % (what, took, {
            n: sorted(p) for n, p in sorted(shares.items())}))
        return shares

    def start_stream(self):
        self.writer.wait_capturing(self.producer)
        self.writer.insert(IDS)
        self.writer.start(IDS, delete_ratio=0.05, pause=0.02)
        self.addCleanup(self.writer.stop)

    def delivered_by(self, name, after_seq=0):
        return [r for r in self.rcv.requests()
                if r["headers"].get("x-worker") == name and r["seq"] > after_seq]

    def finish(self, procs):
        """Stops the writer, waits for every id's final state, and checks
        loss, order and lag."""
        self.writer.stop()
        by_id = sftest.wait_converged(self.rcv, self.writer, IDS, 90, procs)
        self.assertEqual([], sftest.lost_changes(by_id, self.writer, IDS),
                         "every committed change arrived")
        problems, replays = sfkafka.replay_order_problems(by_id, self.writer, IDS)
        self.assertEqual([], problems, "each id's changes arrive in order")
        dup_keys, dup_extra = sftest.duplicate_count(self.rcv.requests())
        print("%d changes, %d requests, %d replays, %d keys delivered more than once" % (
            self.writer.changes, len(self.rcv.requests()), replays, dup_keys))
        group = self.pipe.group("message-workers")
        sftest.wait_for(lambda: sfkafka.lag(self, self.pipe).get(group) == 0, 30,
                        "the lag of %s to return to zero" % group, interval=0.5)
        for p in procs:
            p.assert_running()
        sftest.stop_cleanly(self, procs)

    def test_workers_join_die_and_leave(self):
        w1 = self.worker("worker-1")
        self.settle([w1], "first member")
        self.start_stream()
        self.rcv.wait_requests(200, timeout=30)

        w2 = self.worker("worker-2")
        self.settle([w1, w2], "on join of worker-2")
        w3 = self.worker("worker-3")
        self.settle([w1, w2, w3], "on join of worker-3")
        sftest.wait_for(lambda: self.delivered_by("worker-3"), 20, "worker-3 to deliver")
        self.assertTrue(self.delivered_by("worker-2"), "worker-2 delivered records")

        w2.kill()
        self.settle([w1, w3], "on SIGKILL of worker-2 (session)")
        seq = self.rcv.requests()[-1]["seq"]

        t0 = time.monotonic()
        w3.signal(signal.SIGTERM)
        rc = w3.popen.wait(GRACE_MS / 1000.0 + 5)
        print("worker-3 exited %d %.1fs after SIGTERM" % (rc, time.monotonic() - t0))
        self.assertEqual(rc, 0, "worker-3 exits 0 on SIGTERM\n%s" % w3.tail())
        self.settle([w1], "on SIGTERM of worker-3 (leave)")
        sftest.wait_for(lambda: self.delivered_by("worker-1", seq), 20,
                        "worker-1 to deliver after the others went")
        self.finish([self.producer, self.router, w1])

    def test_static_member_gets_its_partitions_back(self):
        a = self.worker("worker-a", "--instance-id", "pod-a")
        self.settle([a], "first static member")
        self.start_stream()
        self.rcv.wait_requests(200, timeout=30)
        b = self.worker("worker-b", "--instance-id", "pod-b")
        shares = self.settle([a, b], "on join of static pod-b")
        a_lines = a.stderr().count("\n")

        b.kill()
        time.sleep(1.0)
        t0 = time.monotonic()
        b2 = self.worker("worker-b2", "--instance-id", "pod-b")
        back = sfkafka.wait_assigned([a, b2], self.topic, PARTITIONS, timeout=30)
        print("rebalance on SIGKILL + restart of static pod-b: %.1fs to its partitions" % (
            time.monotonic() - t0))
        self.assertEqual(back["worker-b2"], shares["worker-b"],
                         "the restarted member got its own partitions back")
        self.assertEqual(back["worker-a"], shares["worker-a"])
        later = a.stderr().splitlines()[a_lines:]
        self.assertEqual([l for l in later if " revoked " in l or " assigned " in l
                          or " lost " in l or "a rebalance left" in l], [],
                         "the other member saw no rebalance")
        sftest.wait_for(lambda: self.delivered_by("worker-b2"), 20, "worker-b2 to deliver")

        # Without a restart, the static member's partitions move only when
        # its session expires.
        b2.kill()
        self.settle([a], "on SIGKILL of static pod-b (session)")
        self.finish([self.producer, self.router, a])


if __name__ == "__main__":
    unittest.main()
