"""The end-to-end pipeline of test_pipeline_e2e on a real Apache Kafka
broker (one node, KRaft) instead of the embedded one.

The same processes (producer, router, two message workers, each with
--brokers), the same few thousand changes over 200 ids, the same targets
that answer 500, 429, slowly, not at all and 404, and the same assertions:
every change arrived, in order per id, retried as the rules say, the 404
id's records in the DLQ topic and nothing else there, the records in
DESIGN.md's format, every process exits 0 on SIGTERM. Here the topics are
created by syncfleet itself (CreateTopics) and the components run with the
settings syncfleet uses on a real cluster (its session timeouts, its fetch
waits), not the embedded broker's.
"""

import unittest

import sfkafka
import test_pipeline_e2e as e2e


class PipelineOnKafkaTest(sfkafka.KafkaTestCase, e2e.PipelineEndToEndTest):
    NODES = 1


if __name__ == "__main__":
    unittest.main()
