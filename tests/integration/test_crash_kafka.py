"""test_crash_recovery on a real Apache Kafka broker (one node, KRaft):
the producer, the router and a worker each killed with SIGKILL at a random
moment and started again while changes keep coming, and a partition moved
from a worker whose records keep failing to one that joins. The same
assertions: every committed change arrived at least once and each id's
final state last, the old owner of a moved partition sends none of its
records after the new owner took over, every process exits 0 on SIGTERM.
On a real broker the producer acknowledges the source on Kafka's delivery
report, and the groups rebalance as a real broker does (joins at once, a
killed member's partitions moved when its session expires).
"""

import unittest

import sfkafka
import test_crash_recovery as crash


class CrashRecoveryOnKafkaTest(sfkafka.KafkaTestCase, crash.CrashRecoveryTest):
    NODES = 1


if __name__ == "__main__":
    unittest.main()
