"""Settled acknowledgement with the components as separate processes on a
`syncfleet broker`, which keeps everything in memory.

- kill -9 of the broker mid-stream: every component is then killed too and
  all are started again on a new broker; nothing is lost, because nothing
  left the source before its target accepted it.
- Delivery failures at each hop: the broker is frozen (SIGSTOP) for longer
  than message.timeout.ms while changes flow, so the producer's and the
  router's deliveries fail, and the target stalls for longer than the
  connector's timeout, so the worker's requests fail; all recover and
  nothing is lost.
"""

import json
import os
import signal
import time
import unittest

import sfpg
import sftest

IDS = range(1, 41)

PIPELINE = """\
version: 1
name: sepsettled
kafka:
  brokers: embedded
  topic_prefix: sep
  partitions: 3
  config:
    session.timeout.ms: "4000"
    heartbeat.interval.ms: "500"
    message.timeout.ms: "2000"
source:
  type: sqlite
  path: %(db)s
  poll_interval_ms: 20
router: { delay_ms: %(delay_ms)d }
tables:
  customers: { key: [id] }
connectors:
  webshop:
    type: http
    base_url: "%(url)s"
    timeout_ms: 1000
    max_in_flight: 4
    retry: { max_attempts: 100000, initial_backoff_ms: 50, max_backoff_ms: 300 }
messages:
  customer-to-webshop:
    trigger: { table: customers, events: [insert, update, delete] }
    target:
      connector: webshop
      method: PUT
      path: /customers/{{id}}
      on_delete: { method: DELETE }
    mapping: { id: "{{id}}", name: "{{name}}", email: "{{email}}", version: "{{version}}" }
"""


class SettledBrokerTest(sftest.TestCase):

    def setUp(self):
        self.rcv = self.receiver([{"path": "/customers/*", "delay_ms": 5}])
        self.db = self.tmp.join("erp.db")
        # a sync delay keeps the router sending while the broker is frozen
        delay = 1000 if self._testMethodName == "test_delivery_failures_at_each_hop" else 0
        self.config = self.tmp.write("pipeline.yaml", PIPELINE % {
            "db": json.dumps(self.db), "url": self.rcv.url, "delay_ms": delay})
        self.writer = sftest.ChangeWriter(self.db, 17)
        self.addCleanup(self.writer.close)

    def components(self, bootstrap, suffix=""):
        """The router and the worker first: the producer holds back for a
        group only once it committed."""
        def start(name, *args):
            return self.start([sftest.env_path("SYNCFLEET")] + list(args) +
                              ["-c", self.config, "--brokers", bootstrap],
                              name + suffix, env=dict(os.environ, SYNCFLEET_LOG="info"))
        procs = [start("router", "router"), start("worker", "worker", "--kind", "message")]
        procs.append(start("producer", "producer"))
        return procs

    def converge(self, procs, runs):
        """Every change arrived and each id's final state last; with RUNS
        (request indexes where a new set of processes started), changes to
        one id arrived in commit order within each."""
        by_id = sftest.wait_converged(self.rcv, self.writer, IDS, 90, procs)
        self.assertEqual([], sftest.lost_changes(by_id, self.writer, IDS),
                         "every committed change arrived at least once")
        requests = self.rcv.requests()
        self.assertEqual([], sftest.order_problems_by_run(requests, self.writer, IDS, runs),
                         "changes to one id arrived in commit order within each run")
        dup_keys, dup_extra = sftest.duplicate_count(requests)
        print("%d changes, %d requests; duplicates: %d changes delivered more than once, "
              "%d extra deliveries" % (self.writer.changes, len(requests), dup_keys,
                                       dup_extra))
        sftest.wait_for(lambda: self.writer.count("SELECT count(*) FROM _syncfleet_log") == 0,
                        20, "every settled change to leave _syncfleet_log")

    def test_kill_the_broker(self):
        brk = self.broker(partitions=3, prefix="sep")
        procs = self.components(brk.bootstrap)
        self.writer.wait_capturing(procs[2])
        self.writer.insert(IDS)
        self.writer.start(IDS, delete_ratio=0.1, pause=0.05)
        self.addCleanup(self.writer.stop)
        # the target slows down until the broker holds changes it has not
        # received; then the broker dies with them
        sftest.wait_for(lambda: len(self.rcv.requests()) >= 200, 60, "changes flowing")
        self.rcv.set_rules([{"path": "/customers/*", "delay_ms": 300}])
        sftest.wait_for(
            lambda: sum(sfpg.end_offsets(brk.bootstrap, "sep.sync-log", 3).values())
            - len(self.rcv.requests()) >= 40, 30,
            "changes in the broker the target has not got")
        brk.proc.kill()
        left = self.writer.count("SELECT count(*) FROM _syncfleet_log")
        print("broker killed: writer at %d changes, %d requests, %d rows left in the log" % (
            self.writer.changes, len(self.rcv.requests()), left))
        self.assertGreater(left, 0)
        time.sleep(1.0)
        for p in procs:
            p.assert_running()  # a lost broker is an outage, not an exit
            p.kill()
        self.rcv.set_rules([{"path": "/customers/*", "delay_ms": 5}])
        brk2 = self.broker(partitions=3, prefix="sep", name="broker-2")
        runs = [0, len(self.rcv.requests())]
        procs = self.components(brk2.bootstrap, "-2")
        time.sleep(3.0)
        self.writer.stop()
        self.converge(procs, runs)
        sftest.stop_cleanly(self, procs)

    def test_delivery_failures_at_each_hop(self):
        brk = self.broker(partitions=3, prefix="sep")
        procs = self.components(brk.bootstrap)
        self.writer.wait_capturing(procs[2])
        self.writer.insert(IDS)
        self.writer.start(IDS, delete_ratio=0.1, pause=0.05)
        self.addCleanup(self.writer.stop)
        sftest.wait_for(lambda: len(self.rcv.requests()) >= 200, 60, "changes flowing")
        # the broker freezes: the producer's and the router's deliveries
        # time out (message.timeout.ms 2 s)
        brk.proc.signal(signal.SIGSTOP)
        time.sleep(4.0)
        brk.proc.signal(signal.SIGCONT)
        router, worker, producer = procs
        sftest.wait_for(lambda: "delivery of change" in producer.stderr(), 30,
                        "the producer to see a delivery fail")
        sftest.wait_for(lambda: "failed, sending again" in router.stderr(), 30,
                        "the router to see a delivery fail")
        # the target stalls past the connector's timeout: the worker's
        # requests fail and are retried
        sftest.wait_for(lambda: len(self.rcv.requests()) >= 400, 60, "changes flowing again")
        self.rcv.set_rules([{"path": "/customers/*", "delay_ms": 1500}])
        time.sleep(3.0)
        self.rcv.set_rules([{"path": "/customers/*", "delay_ms": 5}])
        time.sleep(2.0)
        self.writer.stop()
        # no order check: a failed delivery resends what followed it,
        # earlier versions of an id after later ones (at least once)
        self.converge(procs, [])
        self.assertRegex(worker.stderr(), r"[Tt]imeout|timed out",
                         "the worker saw its requests time out")
        sftest.stop_cleanly(self, procs)


if __name__ == "__main__":
    unittest.main()
