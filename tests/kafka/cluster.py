#!/usr/bin/env python3
"""An Apache Kafka cluster (KRaft) for syncfleet's tests, standard library
only.

The broker's jars come from Maven Central through tests/kafka/pom.xml (the
one place the Kafka version is set) and `mvn dependency:copy-dependencies`,
into a cache directory named after the version:

    ${SF_KAFKA_CACHE:-${XDG_CACHE_HOME:-~/.cache}/syncfleet}/kafka-<version>/libs

A second fetch finds the directory complete and runs nothing. A cluster is
one node, or three, each a combined broker and controller (process.roles =
broker,controller) on free loopback ports, formatted with one random
cluster id, with its data, configuration and log in a temporary directory
that stop() removes (SF_KEEP_TMP keeps it). Nodes run in their own process
group and get SIGKILL if the process that started them dies, however it
dies, so nothing outlives the test that started it.

    c = KafkaCluster(nodes=3)
    c.start()                 # returns when every broker answers metadata
    c.bootstrap               # "127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3"
    c.kill(1); c.restart(1)   # kill -9 one node, start it again
    c.stop()                  # also at exit, whatever happens

From a shell:

    tests/kafka/cluster.py fetch                # the jars, cached
    tests/kafka/cluster.py run --nodes 3        # until SIGTERM or Ctrl-C
    tests/kafka/cluster.py run --nodes 3 --once # start, time it, stop

KafkaCluster(nodes, sasl_ssl=True) adds a SASL_SSL listener on each node
(sasl_bootstrap) with a broker certificate for 127.0.0.1 signed by a CA
made with openssl (tls["ca"]), where sasl_user / sasl_password log in
with SCRAM-SHA-512 (the credential is created when the storage is
formatted) or PLAIN. KafkaCluster(version=scram_version()) runs the
newest Kafka before 4.0 instead of kafka.version: librdkafka before 2.6.1
(Debian 12 has 2.0.2) cannot do SCRAM with Kafka 4 brokers.

The settings are a test cluster's: failures are noticed within seconds
(broker.session.timeout.ms, replica.lag.time.max.ms), groups start without
the initial rebalance delay, topics are never created implicitly (so a
topic syncfleet failed to create is not papered over), and internal topics
are as replicated as the cluster allows.
"""

import argparse
import atexit
import base64
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import queue
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
POM = os.path.join(HERE, "pom.xml")

_live = []  # clusters still running, stopped at exit


def kafka_version(prop="kafka.version"):
    """A version property of pom.xml: kafka.version (the brokers every test
    runs against) or kafka.scram.version (see scram_version)."""
    with open(POM, "r", encoding="utf-8") as f:
        m = re.search(r"<%s>\s*([^<\s]+)\s*</%s>" % (re.escape(prop), re.escape(prop)),
                      f.read())
    if not m:
        raise RuntimeError("%s sets no <%s>" % (POM, prop))
    return m.group(1)


def scram_version():
    """The newest Kafka whose SCRAM the librdkafka of Debian 12 (2.0.2) can
    authenticate with: librdkafka before 2.6.1 repeats the client nonce in
    its SCRAM final message, which Kafka 4 brokers reject."""
    return kafka_version("kafka.scram.version")


def cache_dir(version=None):
    base = os.environ.get("SF_KAFKA_CACHE")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(
            os.path.expanduser("~"), ".cache")
        base = os.path.join(xdg, "syncfleet")
    return os.path.join(base, "kafka-" + (version or kafka_version()))


def _java():
    home = os.environ.get("JAVA_HOME")
    if home and os.access(os.path.join(home, "bin", "java"), os.X_OK):
        return os.path.join(home, "bin", "java")
    java = shutil.which("java")
    if not java:
        raise RuntimeError("java is not installed (./setup.sh installs it)")
    return java


def fetch(quiet=False, version=None):
    """The directory holding the broker's jars (of kafka.version, or of
    VERSION), fetched first when the cache does not have them yet.
    Concurrent fetches are safe: each copies into a directory of its own,
    and the first to rename it into place wins."""
    version = version or kafka_version()
    libs = os.path.join(cache_dir(version), "libs")
    if os.path.isdir(libs):
        return libs
    mvn = shutil.which("mvn")
    if not mvn:
        raise RuntimeError("mvn is not installed (./setup.sh installs it)")
    os.makedirs(cache_dir(version), exist_ok=True)
    work = tempfile.mkdtemp(prefix="libs-", dir=cache_dir(version))
    try:
        if not quiet:
            print("kafka: fetching Apache Kafka %s from Maven Central into %s" % (
                version, libs), file=sys.stderr)
        res = subprocess.run(
            [mvn, "-q", "-B", "-f", POM, "-Dkafka.version=" + version,
             "dependency:copy-dependencies",
             "-DincludeScope=runtime", "-DoutputDirectory=" + os.path.join(work, "libs")],
            stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError("mvn dependency:copy-dependencies failed (%d):\n%s%s" % (
                res.returncode, res.stdout[-4000:], res.stderr[-4000:]))
        try:
            os.rename(os.path.join(work, "libs"), libs)
        except OSError:
            if not os.path.isdir(libs):
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return libs


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def random_cluster_id():
    """A Kafka Uuid as StorageTool wants it (URL-safe base64, no padding,
    not starting with '-')."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


class _Spawner:
    """Starts the nodes from one thread that lives as long as the process:
    the kernel's parent-death signal follows the thread that forked, so a
    node started from a short-lived thread (a test's chaos thread) would
    die with that thread."""

    def __init__(self):
        self._lock = threading.Lock()
        self._jobs = queue.Queue()
        self._thread = None

    def _run(self):
        while True:
            argv, kwargs, done = self._jobs.get()
            try:
                done.append(subprocess.Popen(argv, **kwargs))
            except BaseException as e:  # handed to the caller
                done.append(e)

    def popen(self, argv, **kwargs):
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="kafka-spawner",
                                                daemon=True)
                self._thread.start()
        done = []
        self._jobs.put((argv, kwargs, done))
        while not done:
            time.sleep(0.005)
        if isinstance(done[0], BaseException):
            raise done[0]
        return done[0]


_spawner = _Spawner()


def _die_with_parent():
    """In the child, before exec: SIGKILL when the parent dies."""
    os.setsid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def make_tls(directory):
    """A CA and a broker certificate for 127.0.0.1 and localhost signed by
    it, made with openssl in DIRECTORY: {"ca": CA certificate (PEM),
    "keystore": the broker's encrypted PKCS#8 key and certificate (PEM),
    "key_password": its password}."""
    d = os.path.join(directory, "tls")
    os.makedirs(d)
    password = uuid.uuid4().hex

    def ssl(*args):
        res = subprocess.run(["openssl"] + list(args), cwd=d, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError("openssl %s failed: %s" % (args[0], res.stderr))
    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=syncfleet test CA")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key", "-out", "broker.csr",
        "-subj", "/CN=localhost")
    with open(os.path.join(d, "san.ext"), "w", encoding="utf-8") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "broker.pem", "-days", "2", "-extfile", "san.ext")
    # PBE-SHA1-3DES: the Java the broker runs on (17) cannot read PBES2
    ssl("pkcs8", "-topk8", "-in", "broker.key", "-out", "broker.p8", "-v1", "PBE-SHA1-3DES",
        "-passout", "pass:" + password)
    keystore = os.path.join(d, "keystore.pem")
    with open(keystore, "w", encoding="utf-8") as out:
        for name in ("broker.p8", "broker.pem"):
            with open(os.path.join(d, name), "r", encoding="utf-8") as f:
                out.write(f.read())
    return {"ca": os.path.join(d, "ca.pem"), "keystore": keystore, "key_password": password}


LOG4J2 = """status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = %(log)s
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%%d] %%p %%m (%%c)%%n
rootLogger.level = %(level)s
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = %(level)s
logger.state.name = state.change.logger
logger.state.level = warn
"""


class Node:
    """One combined broker/controller of a KafkaCluster."""

    def __init__(self, cluster, node_id):
        self.cluster = cluster
        self.id = node_id
        self.port = free_port()
        self.sasl_port = free_port() if cluster.sasl_ssl else None
        self.controller_port = free_port()
        self.dir = os.path.join(cluster.dir, "node%d" % node_id)
        self.data = os.path.join(self.dir, "data")
        self.config = os.path.join(self.dir, "server.properties")
        self.log = os.path.join(self.dir, "server.log")
        self.popen = None

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def write_config(self, voters, extra):
        n = self.cluster.nodes
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.id),
            "controller.quorum.voters": voters,
            "listeners": "PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d" % (
                self.port, self.controller_port),
            "advertised.listeners": "PLAINTEXT://127.0.0.1:%d" % self.port,
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": self.data,
            "auto.create.topics.enable": "false",
            "num.partitions": "1",
            "default.replication.factor": "1",  # what syncfleet asks for shows
            "offsets.topic.replication.factor": str(n),
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": str(n),
            "transaction.state.log.min.isr": str(min(2, n)),
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": str(n),
            "share.coordinator.state.topic.min.isr": str(min(2, n)),
            "group.initial.rebalance.delay.ms": "0",
            "broker.session.timeout.ms": "4000",
            "broker.heartbeat.interval.ms": "500",
            "replica.lag.time.max.ms": "5000",
            "controlled.shutdown.enable": "true",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "num.recovery.threads.per.data.dir": "1",
            "log.cleaner.threads": "1",
        }
        if self.sasl_port:
            tls = self.cluster.tls
            props["listeners"] += ",SASL_SSL://127.0.0.1:%d" % self.sasl_port
            props["advertised.listeners"] += ",SASL_SSL://127.0.0.1:%d" % self.sasl_port
            props["listener.security.protocol.map"] += ",SASL_SSL:SASL_SSL"
            props.update({
                "sasl.enabled.mechanisms": "SCRAM-SHA-512,PLAIN",
                "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;",
                "listener.name.sasl_ssl.plain.sasl.jaas.config":
                    "org.apache.kafka.common.security.plain.PlainLoginModule required "
                    "user_%s=\"%s\";" % (self.cluster.sasl_user, self.cluster.sasl_password),
                "ssl.keystore.type": "PEM",
                "ssl.keystore.location": tls["keystore"],
                "ssl.key.password": tls["key_password"],
            })
        props.update(extra)
        os.makedirs(self.dir, exist_ok=True)
        with open(self.config, "w", encoding="utf-8") as f:
            for k, v in props.items():
                f.write("%s=%s\n" % (k, v))
        with open(os.path.join(self.dir, "log4j2.properties"), "w", encoding="utf-8") as f:
            f.write(LOG4J2 % {"log": self.log, "level": "INFO"})

    def _java(self, main, args, log_name):
        c = self.cluster
        argv = [c.java, "-Xms128m", "-Xmx%s" % c.heap, "-XX:+UseG1GC",
                "-XX:MaxGCPauseMillis=20", "-XX:TieredStopAtLevel=1",
                "-Djava.awt.headless=true",
                "-Dlog4j2.configurationFile=" + os.path.join(self.dir, "log4j2.properties"),
                "-cp", os.path.join(c.libs, "*"), main] + args
        out = open(os.path.join(self.dir, log_name), "ab")
        try:
            return _spawner.popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=subprocess.STDOUT, cwd=self.dir,
                                  preexec_fn=_die_with_parent)
        finally:
            out.close()

    def format(self):
        """Starts formatting the node's storage; format_wait() waits."""
        self._format = self._java("kafka.tools.StorageTool",
                                  ["format", "-t", self.cluster.cluster_id, "-c", self.config,
                                   "--ignore-formatted"] + (
                                       ["--add-scram", "SCRAM-SHA-512=[name=\"%s\",password=\"%s\"]" % (
                                           self.cluster.sasl_user, self.cluster.sasl_password)]
                                       if self.sasl_port else []), "format.out")

    def format_wait(self):
        rc = self._format.wait(120)
        if rc != 0:
            raise RuntimeError("formatting node %d failed (%d):\n%s" % (
                self.id, rc, self.tail("format.out")))

    def start(self):
        if self.running():
            return
        self.popen = self._java("kafka.Kafka", [self.config], "stdout.log")

    def running(self):
        return self.popen is not None and self.popen.poll() is None

    def kill(self):
        """SIGKILL, as a crash would."""
        if self.popen is None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.popen.wait()

    def stop(self, timeout=60.0):
        """SIGTERM (controlled shutdown: leadership moves away first), then
        SIGKILL after TIMEOUT seconds. Returns the exit status."""
        if not self.running():
            return self.popen.returncode if self.popen else 0
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError("node %d did not stop within %.0fs of SIGTERM\n%s" % (
                self.id, timeout, self.tail()))

    def tail(self, name="server.log", lines=40):
        for path in (os.path.join(self.dir, name), os.path.join(self.dir, "stdout.log")):
            try:
                with open(path, "r", encoding="utf-8", errors="replace") as f:
                    text = f.read().splitlines()[-lines:]
                if text:
                    return "---- kafka node %d %s ----\n%s" % (
                        self.id, os.path.basename(path), "\n".join(text))
            except FileNotFoundError:
                pass
        return "---- kafka node %d: no log ----" % self.id


class KafkaCluster:
    """NODES combined broker/controller nodes (see the module text).
    CONFIG: extra server.properties entries for every node."""

    def __init__(self, nodes=1, config=None, heap="512m", sasl_ssl=False, version=None):
        if nodes < 1:
            raise ValueError("a cluster needs at least one node")
        self.nodes = nodes
        self.extra = dict(config or {})
        self.sasl_ssl = sasl_ssl
        self.heap = heap
        self.java = _java()
        self.version = version or kafka_version()
        self.libs = fetch(version=self.version)
        self.cluster_id = random_cluster_id()
        self.dir = tempfile.mkdtemp(prefix="sfkafka-")
        if sasl_ssl:
            self.sasl_user = "syncfleet"
            self.sasl_password = uuid.uuid4().hex
            self.tls = make_tls(self.dir)
        self.node = [Node(self, i + 1) for i in range(nodes)]
        voters = ",".join("%d@127.0.0.1:%d" % (n.id, n.controller_port) for n in self.node)
        for n in self.node:
            n.write_config(voters, self.extra)
        self.started_in = None
        self._stopped = False
        _live.append(self)

    @property
    def bootstrap(self):
        return ",".join(n.address for n in self.node)

    @property
    def sasl_bootstrap(self):
        """The SASL_SSL listeners (SCRAM-SHA-512 or PLAIN as sasl_user with
        sasl_password, the broker's certificate signed by tls["ca"]), when
        the cluster was made with sasl_ssl=True."""
        return ",".join("127.0.0.1:%d" % n.sasl_port for n in self.node)

    def start(self, timeout=90.0):
        """Formats and starts every node; returns once each broker is in
        the cluster's metadata. self.started_in is how long it took."""
        t0 = time.monotonic()
        try:
            for n in self.node:
                n.format()
            for n in self.node:
                n.format_wait()
            t1 = time.monotonic()
            for n in self.node:
                n.start()
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        self.formatted_in = t1 - t0
        self.started_in = time.monotonic() - t0
        return self

    def brokers_up(self, via=None):
        """The node ids in the metadata that a broker returns (through
        VIA, a node index, or any), or None when none answers."""
        nodes = [self.node[via]] if via is not None else [n for n in self.node if n.running()]
        if not nodes:
            return None
        try:
            res = subprocess.run(["kcat", "-L", "-J", "-m", "3", "-b",
                                  ",".join(n.address for n in nodes)],
                                 capture_output=True, timeout=15)
        except subprocess.TimeoutExpired:
            return None
        if res.returncode != 0:
            return None
        try:
            return sorted(b["id"] for b in json.loads(res.stdout)["brokers"])
        except (ValueError, KeyError):
            return None

    def wait_ready(self, timeout=90.0, ids=None):
        """Waits until the brokers IDS (default: every running node) are in
        the metadata, as they themselves answer it (the others may still
        list a broker that was killed); fails with the nodes' logs after
        TIMEOUT seconds or when a node exits."""
        want = sorted(ids or [n.id for n in self.node if n.popen is not None])
        deadline = time.monotonic() + timeout
        while True:
            for n in self.node:
                if n.id in want and not n.running():
                    raise RuntimeError("kafka node %d exited with %s\n%s" % (
                        n.id, n.popen.returncode, n.tail()))
            got = self.brokers_up()
            if got is not None and set(want) <= set(got) and all(
                    self.brokers_up(via=i) is not None
                    for i, n in enumerate(self.node) if n.id in want):
                return
            if time.monotonic() >= deadline:
                raise RuntimeError("kafka: brokers %s not in the metadata after %.0fs "
                                   "(have %s)\n%s" % (want, timeout, got,
                                                      "\n".join(n.tail() for n in self.node)))
            time.sleep(0.2)

    def kill(self, index):
        """kill -9 of node INDEX (0-based)."""
        self.node[index].kill()

    def stop_node(self, index, timeout=60.0):
        return self.node[index].stop(timeout)

    def restart(self, index, timeout=90.0):
        """Starts node INDEX again on its data and ports; returns when it is
        back in the metadata."""
        self.node[index].start()
        self.wait_ready(timeout, ids=[self.node[index].id])

    def logs(self):
        return "\n".join(n.tail() for n in self.node)

    def stop(self):
        """Kills every node and removes the data. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        for n in self.node:
            n.kill()
        if os.environ.get("SF_KEEP_TMP"):
            print("kafka: kept %s" % self.dir, file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        if self in _live:
            _live.remove(self)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


@atexit.register
def _stop_leftovers():
    for c in list(_live):
        c.stop()


def _main(argv):
    ap = argparse.ArgumentParser(description="Apache Kafka for syncfleet's tests")
    sub = ap.add_subparsers(dest="cmd", required=True)
    fe = sub.add_parser("fetch", help="fetch the broker's jars into the cache (once)")
    fe.add_argument("--all", action="store_true",
                    help="also the Kafka of the SCRAM test (kafka.scram.version)")
    sub.add_parser("version", help="print the Kafka version tests use")
    run = sub.add_parser("run", help="start a cluster, print its bootstrap servers, "
                         "run until SIGTERM/SIGINT, then stop it and remove its data")
    run.add_argument("--nodes", type=int, default=1)
    run.add_argument("--once", action="store_true",
                     help="stop as soon as the cluster is ready (to time a start)")
    args = ap.parse_args(argv)
    if args.cmd == "version":
        print(kafka_version())
        return 0
    if args.cmd == "fetch":
        t0 = time.monotonic()
        for v in [kafka_version()] + ([scram_version()] if args.all else []):
            libs = fetch(version=v)
            print("kafka %s: %s (%.1fs)" % (v, libs, time.monotonic() - t0))
        return 0

    def on_signal(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    cluster = KafkaCluster(args.nodes)
    try:
        cluster.start()
        print("kafka %s: %d node%s ready in %.1fs (storage formatted in %.1fs)" % (
            cluster.version, args.nodes, "" if args.nodes == 1 else "s", cluster.started_in,
            cluster.formatted_in),
            file=sys.stderr)
        print(cluster.bootstrap, flush=True)
        if not args.once:
            while all(n.running() for n in cluster.node):
                time.sleep(0.5)
            print("kafka: a node exited\n%s" % cluster.logs(), file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
