"""Real Apache Kafka brokers for syncfleet's integration tests (standard
library only), on top of tests/kafka/cluster.py.

    cluster = sfkafka.shared(nodes=1)   # one per test process, started once
    class T(sfkafka.KafkaTestCase):
        NODES = 3                        # the cluster this class shares
        def test_x(self):
            pipe = self.pipeline("x%d" % os.getpid(), receiver)
            ...
            self.cluster.kill(1); self.cluster.restart(1)

A cluster lives as long as the test process (a ctest test file): the
tests of one file share it, each with pipelines of their own topic prefix,
and it is stopped and its data removed at exit, also when a test fails or
the process is killed. KafkaPipeline is sftest.Pipeline on such a cluster,
with syncfleet's own settings for a real broker (its session timeouts, its
topic creation): the producer creates the topics, and the router and the
workers start once they exist. Also here: ConsumerGroupCommand (Kafka's
own kafka-consumer-groups, from the same jars) and describe_topic().
"""

import json
import os
import re
import subprocess
import sys
import unittest

import sftest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kafka"))
import cluster as kafka_cluster  # noqa: E402  (tests/kafka/cluster.py)

KafkaCluster = kafka_cluster.KafkaCluster

_shared = {}


def available():
    """Why a Kafka cluster cannot be started here, or None when it can."""
    for prog in ("java", "kcat"):
        if not (prog == "java" and os.environ.get("JAVA_HOME")) and \
                subprocess.run(["sh", "-c", "command -v " + prog],
                               capture_output=True).returncode != 0:
            return "%s is not installed (./setup.sh test installs it)" % prog
    try:
        kafka_cluster.fetch(quiet=True)
    except RuntimeError as e:
        return str(e)
    return None


def shared(nodes=1):
    """The cluster of NODES nodes that this process's tests share, started
    on first use."""
    c = _shared.get(nodes)
    if c is None:
        c = KafkaCluster(nodes).start()
        print("kafka %s: %d node(s) at %s, ready in %.1fs" % (
            c.version, nodes, c.bootstrap, c.started_in), file=sys.stderr)
        _shared[nodes] = c
    return c


def tool(main, args, timeout=120):
    """Runs a Kafka command-line tool class from the cached jars; returns
    (exit status, stdout, stderr)."""
    argv = [kafka_cluster._java(), "-Xmx256m", "-XX:TieredStopAtLevel=1",
            "-Dlog4j2.rootLogger.level=ERROR", "-Dlog4j2.level=ERROR",
            "-cp", os.path.join(kafka_cluster.fetch(), "*"), main] + list(args)
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                         stdin=subprocess.DEVNULL)
    return res.returncode, res.stdout, res.stderr


def consumer_groups(bootstrap, *args):
    """kafka-consumer-groups ARGS: stdout, raising when the tool fails."""
    rc, out, err = tool("org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
                        ["--bootstrap-server", bootstrap] + list(args))
    if rc != 0:
        raise AssertionError("kafka-consumer-groups %s failed (%d): %s%s" % (
            " ".join(args), rc, out, err))
    return out


def describe_group_offsets(bootstrap, group):
    """kafka-consumer-groups --describe --group GROUP, as
    {(topic, partition): {"committed": int|None, "end": int, "lag": int|None,
    "consumer": str|None}}."""
    out = consumer_groups(bootstrap, "--describe", "--group", group)
    rows = {}
    header = None
    for line in out.splitlines():
        cols = line.split()
        if not cols:
            continue
        if cols[0] == "GROUP":
            header = cols
            continue
        if header is None or len(cols) != len(header):
            continue
        row = dict(zip(header, cols))

        def num(v):
            return None if v == "-" else int(v)
        rows[(row["TOPIC"], int(row["PARTITION"]))] = {
            "committed": num(row["CURRENT-OFFSET"]), "end": num(row["LOG-END-OFFSET"]),
            "lag": num(row["LAG"]),
            "consumer": None if row["CONSUMER-ID"] == "-" else row["CONSUMER-ID"]}
    return rows


def describe_topic(bootstrap, topic):
    """The topic as the cluster has it: {"partitions": n, "replicas": [[ids]
    per partition], "isr": [[ids]], "configs": {name: value}} (configs are
    those set on the topic), or None when it does not exist."""
    res = subprocess.run(["kcat", "-L", "-J", "-b", bootstrap, "-t", topic],
                         capture_output=True, timeout=30)
    if res.returncode != 0:
        raise AssertionError("kcat -L failed: %s" % res.stderr.decode(errors="replace"))
    meta = json.loads(res.stdout)
    topics = [t for t in meta["topics"] if t["topic"] == topic and not t.get("error")]
    if not topics:
        return None
    parts = sorted(topics[0]["partitions"], key=lambda p: p["partition"])
    rc, out, err = tool("kafka.admin.ConfigCommand",
                        ["--bootstrap-server", bootstrap, "--entity-type", "topics",
                         "--entity-name", topic, "--describe"])
    if rc != 0:
        raise AssertionError("kafka-configs --describe %s failed (%d): %s%s" % (
            topic, rc, out, err))
    configs = dict(re.findall(r"\b([a-z][a-z.]+)=([^ ]*) sensitive=", out))
    return {"partitions": len(parts),
            "replicas": [sorted(r["id"] for r in p["replicas"]) for p in parts],
            "isr": [sorted(r["id"] for r in p["isrs"]) for p in parts],
            "configs": configs}


def create_topic(bootstrap, topic, partitions, replication_factor=1):
    """Creates a topic with Kafka's own kafka-topics (not syncfleet's code)."""
    rc, out, err = tool("org.apache.kafka.tools.TopicCommand",
                        ["--bootstrap-server", bootstrap, "--create", "--topic", topic,
                         "--partitions", str(partitions),
                         "--replication-factor", str(replication_factor)])
    if rc != 0:
        raise AssertionError("kafka-topics --create %s failed (%d): %s%s" % (
            topic, rc, out, err))


def pipeline_yaml(prefix, db_path, partitions=4, replication_factor=None,
                  min_insync_replicas=None, kafka_config=None, **options):
    """sftest.pipeline_yaml for a real broker: syncfleet's own session
    timeouts (the embedded broker's short ones go; a real broker refuses a
    session below group.min.session.timeout.ms), the replication keys when
    given, and KAFKA_CONFIG {key: value} under kafka.config."""
    text = sftest.pipeline_yaml(prefix, db_path, partitions, **options)
    embedded_only = '  config:\n    session.timeout.ms: "4000"\n    heartbeat.interval.ms: "500"\n'
    if embedded_only not in text:
        raise AssertionError("sftest.pipeline_yaml changed: no embedded session settings")
    extra = ""
    if replication_factor is not None:
        extra += "  replication_factor: %d\n" % replication_factor
    if min_insync_replicas is not None:
        extra += "  min_insync_replicas: %d\n" % min_insync_replicas
    if kafka_config:
        extra += "  config:\n" + "".join('    %s: "%s"\n' % kv for kv in kafka_config.items())
    return text.replace(embedded_only, extra)


class KafkaPipeline(sftest.Pipeline):
    """sftest.Pipeline on a real cluster: no embedded broker; the
    producer creates the topics (with CreateTopics), and router() and
    worker() wait for them first, so that their groups start on the
    pipeline's partitions."""

    def __init__(self, test, cluster, prefix, receiver_url, db_path, partitions=4, **options):
        self.test = test
        self.cluster = cluster
        self.prefix = prefix
        self.db_path = db_path
        self.partitions = partitions
        self.bootstrap = cluster.bootstrap
        self.env = {"SF_BROKERS": self.bootstrap, "RECEIVER_URL": receiver_url}
        self.config = test.tmp.write(prefix + ".yaml", pipeline_yaml(
            prefix, db_path, partitions, **options))

    def topics_ready(self, timeout=30.0):
        """Waits until the four topics exist with their partitions led."""
        names = [self.topic(s) for s in ("sync-log", "outbound.message",
                                         "outbound.webservice", "dlq")]

        def ready():
            have = sftest.kcat_topics(self.bootstrap)
            return all(have.get(n) == self.partitions for n in names)
        sftest.wait_for(ready, timeout, "the producer to create topics %s" % names,
                        interval=0.2)

    def group(self, suffix):
        return "%s.%s" % (self.prefix, suffix)

    def worker(self, name="worker", kind="message"):
        proc = super().worker(name, kind)
        self._workers = getattr(self, "_workers", []) + [proc]
        return proc

    def producer(self, name="producer"):
        """The producer, once the message workers started before it share
        the outbound partitions (on a real broker the first member takes
        them all and hands some over when the next one joins), so that the
        changes under test do not meet a rebalance."""
        workers = [w for w in getattr(self, "_workers", []) if w.running()]
        if workers:
            wait_assigned(workers, self.topic("outbound.message"), self.partitions)
        return super().producer(name)


_PARTS_LINE = re.compile(r"kafka: \S+: (assigned|revoked|lost) \d+ partitions?: (.*)$")


def owned(proc, topic):
    """The partitions of TOPIC that PROC holds now, from its log's
    "assigned/revoked/lost N partitions: t[p], ..." lines."""
    have = set()
    for line in proc.stderr().splitlines():
        m = _PARTS_LINE.search(line)
        if not m:
            continue
        parts = {int(p) for t, p in re.findall(r"([\w.\-]+)\[(\d+)\]", m.group(2))
                 if t == topic}
        have = have | parts if m.group(1) == "assigned" else have - parts
    return have


def wait_assigned(procs, topic, partitions, timeout=60.0):
    """Waits until every one of PROCS (members of one group) holds some of
    TOPIC's partitions and together they hold all of them, each once.
    Returns {proc name: partitions}."""
    def settled():
        shares = {p.name: owned(p, topic) for p in procs}
        for p in procs:
            p.assert_running()
        every = [x for s in shares.values() for x in s]
        if all(shares.values()) and sorted(every) == list(range(partitions)):
            return shares
        return None
    return sftest.wait_for(settled, timeout, "%s to share the %d partitions of %s" % (
        ", ".join(p.name for p in procs), partitions, topic), interval=0.1)


class KafkaTestCase(sftest.TestCase):
    """A TestCase on a shared real cluster of NODES nodes (self.cluster).
    When Kafka cannot run here the tests fail, naming what is missing:
    ./setup.sh test installs it."""

    NODES = 1

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        why = available()
        if why:
            raise AssertionError("no Kafka cluster: " + why)
        cls.cluster = shared(cls.NODES)

    def pipeline(self, prefix, receiver, partitions=4, **options):
        return KafkaPipeline(self, self.cluster, prefix, receiver.url, self.tmp.join("erp.db"),
                             partitions, **options)

    def run(self, result=None):
        result = result if result is not None else self.defaultTestResult()
        before = len(result.failures) + len(result.errors)
        try:
            return super().run(result)
        finally:
            if len(result.failures) + len(result.errors) > before and \
                    getattr(type(self), "cluster", None):
                print(self.cluster.logs(), file=sys.stderr)


def replay_order_problems(by_id, writer, ids):
    """Like sftest.order_problems, for runs where a consumer died or lost
    its partitions: its records after the last commit are delivered again
    (at least once), so an id's requests may go back to an earlier change.
    Nothing may be skipped or reordered: each request is for the change
    of the request before it (a retry), the one after it, or an earlier
    one (a replay starts), and a replay goes on with the next changes in
    order again. Returns (problems, replays)."""
    problems, replays = [], 0
    for cid in sorted(ids):
        hist = writer.history[cid]
        where = {v: i for i, (op, v) in enumerate(hist) if op != "d"}
        deletes = [i for i, (op, _) in enumerate(hist) if op == "d"]
        pos, high, prev = -1, -1, None
        for r in by_id.get(cid, []):
            if r["method"] == "DELETE":
                # the next change, a retry, or a replay from the latest
                # delete before (the one a replay most likely went back to)
                if pos + 1 < len(hist) and hist[pos + 1][0] == "d":
                    idx = pos + 1
                elif pos >= 0 and hist[pos][0] == "d":
                    idx = pos
                elif [i for i in deletes if i < pos]:
                    idx = [i for i in deletes if i < pos][-1]
                else:
                    problems.append("id %d: #%d DELETE after change %d, and no delete "
                                    "comes next or went before in its history %s" % (
                                        cid, r["seq"], pos, hist))
                    break
            else:
                version = (sftest.request_body(r) or {}).get("version")
                if version not in where:
                    problems.append("id %d: #%d carries version %s, never written" % (
                        cid, r["seq"], version))
                    break
                idx = where[version]
            if idx < pos:
                replays += 1
            elif idx > pos + 1:
                problems.append("id %d: #%d (change %d of its history) came after #%s "
                                "(change %d): changes %d..%d were skipped%s" % (
                                    cid, r["seq"], idx, prev["seq"] if prev else "-", pos,
                                    pos + 1, idx - 1,
                                    " in a replay" if pos < high else ""))
                break
            pos, high, prev = idx, max(high, idx), r
    return problems, replays


def lag(test, pipe, timeout=30.0):
    """`syncfleet lag --json` of the pipeline: {group: total lag}."""
    import subprocess as sp
    res = sp.run([sftest.env_path("SYNCFLEET"), "lag", "-c", pipe.config, "--brokers",
                  pipe.bootstrap, "--json"], capture_output=True, text=True, timeout=timeout,
                 env=dict(os.environ, SF_PROCESS="lag", **pipe.env))
    test.assertEqual(res.returncode, 0, "syncfleet lag failed: %s" % res.stderr)
    doc = json.loads(res.stdout)
    return {g["group"]: g.get("lag") for g in doc["groups"]}
