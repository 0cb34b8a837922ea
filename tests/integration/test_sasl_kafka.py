"""SASL_SSL on real Apache Kafka brokers: credentials from the environment
or a file, a CA the test makes, a wrong password, and no secret in any
log line.

Each cluster here has a SASL_SSL listener (a broker certificate signed by
a CA made with openssl; SCRAM-SHA-512 and PLAIN for one user) beside the
PLAINTEXT one that the test itself reads topics through. syncfleet's
components (producer, router, message worker as separate processes) talk
only to the SASL_SSL listener, set up by kafka.config
(security.protocol, sasl.mechanisms, sasl.username, ssl.ca.location) with
the password from ${KAFKA_PASSWORD} or from sasl.password_file.

SCRAM-SHA-512 runs on the newest Kafka before 4.0 (kafka.scram.version in
tests/kafka/pom.xml): Debian 12's librdkafka (2.0.2) repeats the client
nonce in its SCRAM final message, which Kafka 4 brokers refuse (mended in
librdkafka 2.6.1). On the Kafka of every other test (kafka.version) the
pipeline logs in with PLAIN over TLS, and SCRAM with the right password
fails at once with a message that explains the librdkafka limitation (or
works, with a librdkafka that has the fix).

Asserted on what came out: the receiver got every change, in order per
id; with a wrong password each component exits non-zero within seconds
(not after librdkafka's endless retries) with one error naming the
broker, the mechanism and what to check (and the same for a broker
certificate that the configured CA did not sign); and neither the password nor a
wrong one appears in any line any process wrote, at debug level with
librdkafka's security and broker debugging on.
"""

import os
import re
import subprocess
import unittest

import sfkafka
import sftest

Kafka = sfkafka.kafka_cluster

_clusters = {}


def cluster(version):
    """One SASL_SSL cluster per Kafka version for this file's tests."""
    c = _clusters.get(version)
    if c is None:
        c = Kafka.KafkaCluster(1, sasl_ssl=True, version=version).start()
        _clusters[version] = c
    return c


def tearDownModule():
    for c in _clusters.values():
        c.stop()


def librdkafka_has_scram_fix():
    """librdkafka 2.6.1 or later (the version syncfleet reports)."""
    out = subprocess.run([sftest.env_path("SYNCFLEET"), "--version"], capture_output=True,
                         text=True).stdout
    m = re.search(r"librdkafka (\d+)\.(\d+)\.(\d+)", out)
    if not m:
        raise AssertionError("syncfleet --version names no librdkafka version: %r" % out)
    return tuple(int(x) for x in m.groups()) >= (2, 6, 1)


class SaslPipeline(sfkafka.KafkaPipeline):
    """A KafkaPipeline whose components log in on the SASL_SSL listener;
    the test's own checks (kcat) read through the PLAINTEXT one."""

    def __init__(self, test, c, prefix, receiver, mechanism, password, password_file=None,
                 ca=None):
        config = {"security.protocol": "SASL_SSL", "sasl.mechanisms": mechanism,
                  "sasl.username": c.sasl_user, "ssl.ca.location": ca or c.tls["ca"],
                  # librdkafka's own account of the login, into the log
                  "debug": "security,broker"}
        if password_file:
            config["sasl.password_file"] = password_file
        else:
            config["sasl.password"] = "${KAFKA_PASSWORD}"
        super().__init__(test, c, prefix, receiver.url, test.tmp.join(prefix + ".db"),
                         partitions=2, kafka_config=config)
        self.env["KAFKA_PASSWORD"] = password
        self.env["SYNCFLEET_LOG"] = "debug"
        self.sasl_bootstrap = c.sasl_bootstrap

    def start(self, name, command, *args):
        argv = [sftest.env_path("SYNCFLEET"), command, "-c", self.config,
                "--brokers", self.sasl_bootstrap] + list(args)
        return self.test.start(argv, name, env=dict(self.env, SF_PROCESS=name))


class SaslTest(sftest.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        why = sfkafka.available()
        if why:
            raise AssertionError("no Kafka cluster: " + why)
        try:
            Kafka.fetch(quiet=True, version=Kafka.scram_version())
        except RuntimeError as e:
            raise AssertionError("no Kafka %s for the SCRAM test: %s" % (
                Kafka.scram_version(), e))

    def assert_no_secret(self, procs, *secrets):
        """No line of any of PROCS's output carries any of SECRETS."""
        for p in procs:
            for stream, text in (("stderr", p.stderr()), ("stdout", p.stdout())):
                self.assertTrue(text.strip() or stream == "stdout",
                                "%s logged something to look at" % p.name)
                for s in secrets:
                    for n, line in enumerate(text.splitlines(), 1):
                        self.assertNotIn(s, line, "%s %s line %d carries a password: %s" % (
                            p.name, stream, n, line))

    def flow(self, c, prefix, mechanism, password=None, password_file=None):
        """Producer, router and a message worker on the SASL_SSL listener:
        30 changes over 10 ids reach the receiver, in order per id."""
        receiver = self.receiver()
        pipe = SaslPipeline(self, c, prefix, receiver, mechanism,
                            password if password_file is None else "", password_file)
        writer = sftest.ChangeWriter(pipe.db_path, seed=11)
        worker = pipe.worker("worker-" + prefix)
        router = pipe.router("router-" + prefix)
        producer = pipe.producer("producer-" + prefix)
        pipe.topics_ready()
        writer.wait_capturing(producer)
        ids = list(range(1, 11))
        writer.insert(ids)
        writer.random_changes(ids, count=20, delete_ratio=0.0)
        procs = [producer, router, worker]
        sftest.wait_converged(receiver, writer, ids, 60, procs)
        by_id = sftest.customer_requests(receiver)
        self.assertEqual(sftest.lost_changes(by_id, writer, ids), [])
        self.assertEqual(sftest.order_problems(by_id, writer, ids), [])
        self.assertRegex(worker.stderr(), r"SASL_SSL|sasl_ssl://",
                         "the worker talked to the SASL_SSL listener")
        self.assertRegex(worker.stderr(), r"sasl_ssl://[^ ]+: Broker changed state AUTH_REQ -> UP",
                         "librdkafka's debugging reported the login")
        sftest.stop_cleanly(self, procs)
        writer.close()
        self.assert_no_secret(procs, c.sasl_password)

    def refused(self, c, prefix, mechanism, password, ca=None,
                what="kafka authentication failed"):
        """Each component with PASSWORD (and CA) exits non-zero, saying
        why (WHAT: ...), within seconds. Returns the processes and their
        error lines."""
        receiver = self.receiver()
        pipe = SaslPipeline(self, c, prefix, receiver, mechanism, password, ca=ca)
        sftest.ChangeWriter(pipe.db_path, seed=12).close()
        procs = [pipe.start("producer-" + prefix, "producer"),
                 pipe.start("router-" + prefix, "router"),
                 pipe.start("worker-" + prefix, "worker", "--kind", "message"),
                 pipe.start("lag-" + prefix, "lag")]
        errors = {}
        for p in procs:
            try:
                # librdkafka alone would retry the login forever
                p.popen.wait(45)
            except subprocess.TimeoutExpired:
                raise AssertionError("%s still runs 45 s after its login was refused\n%s" % (
                    p.name, p.tail()))
            self.assertNotEqual(p.popen.returncode, 0, "%s exited 0\n%s" % (p.name, p.tail()))
            lines = [line for line in p.stderr().splitlines() if what in line]
            self.assertTrue(lines, "%s said why it stopped\n%s" % (p.name, p.tail()))
            errors[p.name] = lines
        self.assertEqual(receiver.requests(), [], "nothing reached the target")
        return procs, errors

    def test_scram_sha_512_with_the_password_from_a_file(self):
        c = cluster(Kafka.scram_version())
        pw_file = self.tmp.write("kafka-password", c.sasl_password + "\n")
        os.chmod(pw_file, 0o600)
        self.flow(c, "ss%d" % os.getpid(), "SCRAM-SHA-512", password_file=pw_file)

    def test_scram_sha_512_with_a_wrong_password_fails_fast(self):
        c = cluster(Kafka.scram_version())
        wrong = "wrong-" + c.sasl_password[:12]
        procs, errors = self.refused(c, "sw%d" % os.getpid(), "SCRAM-SHA-512", wrong)
        for name, lines in errors.items():
            self.assertRegex(lines[0], r"kafka authentication failed: sasl_ssl://127\.0\.0\.1:"
                             r"\d+/\S+: SASL authentication error: Authentication failed "
                             r"during authentication due to invalid credentials with SASL "
                             r"mechanism SCRAM-SHA-512 .*\(check kafka\.config "
                             r"sasl\.mechanisms, sasl\.username and sasl\.password\)", name)
            self.assertEqual(len(lines), 1, "%s said it once: %s" % (name, lines))
        self.assert_no_secret(procs, wrong, c.sasl_password)

    def test_plain_over_tls_on_kafka_4(self):
        c = cluster(Kafka.kafka_version())
        self.flow(c, "sp%d" % os.getpid(), "PLAIN", password=c.sasl_password)

    def test_plain_with_a_wrong_password_fails_fast(self):
        c = cluster(Kafka.kafka_version())
        wrong = "wrong-" + c.sasl_password[:12]
        procs, errors = self.refused(c, "pw%d" % os.getpid(), "PLAIN", wrong)
        for name, lines in errors.items():
            self.assertRegex(lines[0], r"kafka authentication failed: sasl_ssl://127\.0\.0\.1:"
                             r"\d+/\S+: SASL authentication error: Authentication failed: "
                             r"Invalid username or password", name)
            self.assertNotIn("SCRAM", lines[0], "no SCRAM hint for a PLAIN login")
        self.assert_no_secret(procs, wrong, c.sasl_password)

    def test_a_broker_certificate_of_another_ca_fails_fast(self):
        c = cluster(Kafka.kafka_version())
        other = self.tmp.join("other-ca")
        os.makedirs(other)
        other_ca = Kafka.make_tls(other)["ca"]
        procs, errors = self.refused(c, "ca%d" % os.getpid(), "PLAIN", c.sasl_password,
                                     ca=other_ca, what="kafka TLS handshake failed")
        for name, lines in errors.items():
            self.assertRegex(lines[0], r"kafka TLS handshake failed: sasl_ssl://127\.0\.0\.1:"
                             r"\d+/\S+: SSL handshake failed: .*certificate verify failed.* "
                             r"\(check kafka\.config ssl\.ca\.location, the CA that signed the "
                             r"brokers' certificates, and that those name the hosts in "
                             r"kafka\.brokers\); stopping$", name)
            self.assertEqual(len(lines), 1, "%s said it once: %s" % (name, lines))
        self.assert_no_secret(procs, c.sasl_password)

    def test_scram_on_kafka_4_is_explained(self):
        c = cluster(Kafka.kafka_version())
        prefix = "s4%d" % os.getpid()
        if librdkafka_has_scram_fix():
            self.flow(c, prefix, "SCRAM-SHA-512", password=c.sasl_password)
            return
        procs, errors = self.refused(c, prefix, "SCRAM-SHA-512", c.sasl_password)
        for name, lines in errors.items():
            self.assertRegex(lines[0], r"if the password is right, the brokers may run Apache "
                             r"Kafka 4\.0 or later, with which librdkafka \d+\.\d+\.\d+ \(this "
                             r"syncfleet's\) cannot log in with SCRAM \(librdkafka 2\.6\.1 "
                             r"can\): use sasl\.mechanisms PLAIN over SASL_SSL there", name)
        self.assert_no_secret(procs, c.sasl_password)


if __name__ == "__main__":
    unittest.main()
