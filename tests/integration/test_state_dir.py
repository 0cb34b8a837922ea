"""The state directory with `syncfleet broker -c FILE`: the broker takes the
pipeline's lock and records its address, so a component started on its own
and `syncfleet lag` find it without --brokers, and a dead letter of that
component lands in the pipeline's store. A second broker or run of the
pipeline is refused; once the broker stops, or is killed, nothing believes
its address any more."""

import json
import os
import signal
import subprocess
import unittest

import sftest

PIPELINE = """
version: 1
name: statetest
kafka: { brokers: embedded, topic_prefix: st, partitions: 3 }
tables:
  customers: { key: [id] }
connectors:
  out: { type: file, dir: ./out }
messages:
  to-file:
    trigger: { table: customers }
    target: { connector: out }
    mapping: { id: "{{id}}" }
"""


class StateDirTest(sftest.TestCase):
    def cli(self, *args):
        return subprocess.run([sftest.env_path("SYNCFLEET")] + list(args), capture_output=True,
                              text=True, timeout=60)

    def test_broker_records_its_address_for_the_pipeline(self):
        config = self.tmp.write("pipeline.yaml", PIPELINE)
        state_dir = self.tmp.join(".syncfleet", "statetest")
        broker = self.start([sftest.env_path("SYNCFLEET"), "broker", "-c", config], "broker")
        address = broker.wait_line(r"^(127\.0\.0\.1:\d+)$").group(1)
        with open(os.path.join(state_dir, "broker")) as f:
            self.assertEqual(f.read(), address + "\n")

        # the pipeline's topics, with its partitions, found without --brokers
        lag = self.cli("lag", "-c", config, "--json")
        self.assertEqual(lag.returncode, 0, lag.stderr)
        groups = {g["group"]: g for g in json.loads(lag.stdout)["groups"]}
        self.assertEqual(groups["st.router"]["topic"], "st.sync-log")
        self.assertEqual([p["partition"] for p in groups["st.router"]["partitions"]], [0, 1, 2])

        # one holder of the state directory at a time
        lock_msg = ("state directory %s is in use by another syncfleet run (pid %d); give "
                    "this pipeline its own state_dir\n" % (state_dir, broker.pid))
        for command in ("broker", "run"):
            res = self.cli(command, "-c", config)
            self.assertEqual(res.returncode, 2, res.stderr)
            self.assertEqual(res.stderr, "syncfleet %s: %s" % (command, lock_msg))

        # a worker on its own finds the broker, and its dead letter (an
        # action the pipeline does not have) goes to the pipeline's store
        worker = self.start([sftest.env_path("SYNCFLEET"), "worker", "-c", config,
                             "--kind", "message"], "worker")
        worker.wait_line(r"consuming st\.outbound\.message", timeout=20, stream="stderr")
        record = {"kind": "message", "action": "gone", "event": "insert", "table": "customers",
                  "key": {"id": 1}, "root": {"table": "customers", "key": {"id": 1}},
                  "record": {"id": 1}, "event_id": "ev-gone-1", "source_ts_ms": 1,
                  "routed_ts_ms": 2}
        sftest.kcat_produce(address, "st.outbound.message",
                            [('{"action":"gone","key":{"id":1},"table":"customers"}', record,
                              {"syncfleet-event-id": "ev-gone-1"})])

        def dead_letters():
            res = self.cli("dlq", "list", "--json", "-c", config)
            self.assertEqual(res.returncode, 0, res.stderr)
            return [json.loads(line) for line in res.stdout.splitlines()]
        [dead] = sftest.wait_for(dead_letters, timeout=30, what="the worker's dead letter")
        self.assertEqual(dead["action"], "gone")
        self.assertEqual(dead["stage"], "message")
        self.assertEqual(dead["error"], "no message named 'gone' in the pipeline")
        self.assertEqual(dead["event_id"], "ev-gone-1")
        self.assertEqual(dead["origin"]["topic"], "st.outbound.message")
        worker.stop()

        # stopped: the record is gone with it
        broker.stop()
        self.assertFalse(os.path.exists(os.path.join(state_dir, "broker")))
        lag = self.cli("lag", "-c", config)
        self.assertEqual(lag.returncode, 2)
        self.assertIn("no embedded broker of this pipeline is running (none is recorded in %s)"
                      % state_dir, lag.stderr)

        # killed: the record stays behind, but the lock went with the
        # process, so it is not believed
        broker = self.start([sftest.env_path("SYNCFLEET"), "broker", "-c", config], "broker2")
        broker.wait_line(r"^127\.0\.0\.1:\d+$")
        broker.signal(signal.SIGKILL)
        broker.popen.wait(10)
        self.assertTrue(os.path.exists(os.path.join(state_dir, "broker")))
        lag = self.cli("lag", "-c", config)
        self.assertEqual(lag.returncode, 2)
        self.assertIn("no embedded broker of this pipeline is running (%s/broker is left over "
                      "from a process that is gone)" % state_dir, lag.stderr)
        # and the next holder starts as if nothing was left
        broker = self.start([sftest.env_path("SYNCFLEET"), "broker", "-c", config], "broker3")
        address = broker.wait_line(r"^(127\.0\.0\.1:\d+)$").group(1)
        with open(os.path.join(state_dir, "broker")) as f:
            self.assertEqual(f.read(), address + "\n")
        broker.stop()


if __name__ == "__main__":
    unittest.main()
