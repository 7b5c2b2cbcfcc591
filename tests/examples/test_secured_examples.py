"""The three consumer examples (Python, Java, Go) on a secured real Kafka 4.1.1
node: SASL_SSL with SCRAM-SHA-512, the cluster CA made by openssl
(kraft.SecureCluster, as tests/secured/ runs it), as a service would connect to
a Strimzi or MSK cluster. The bridge writes as User:bridge over SCRAM too; each
example reads as User:service, which may only read webhooks.* and use groups
example-*. Everything examples.py checks on the stand-in holds here (records,
dead letters, duplicates, commits, SIGTERM, a topic created later), with the
settings deploy/examples/README.md shows ("A secured cluster")."""
import copy
import os
import pathlib
import shutil
import sys
import uuid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import pytest  # noqa: E402

from examples import (BUILD, EXAMPLES, check_example, run_tool, unavailable,  # noqa: E402
                      venv_python, write_records)
import harness  # noqa: E402  (examples.py put tests/lib on the path)
import kraft  # noqa: E402
from test_java import JVM_SIGTERM_STATUS, build as java_build  # noqa: E402

BRIDGE_PASSWORD = "bridge-" + uuid.uuid4().hex
SERVICE_PASSWORD = "service-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def secured():
    """(cluster, Writes): the node, and the records a bridge on SCRAM wrote."""
    kraft.require()
    if not harness.BRIDGE or not os.path.isfile(harness.BRIDGE):
        unavailable("WB_BRIDGE not set: run through ctest")
    # the examples' runs make topics of their own (a per-run nonce in the type)
    with kraft.SecureCluster(users={"bridge": BRIDGE_PASSWORD, "service": SERVICE_PASSWORD},
                             overrides={"auto.create.topics.enable": "true"}) as c:
        c.start()
        c.wait_ready()
        c.create_topics(["webhooks.deadletter"])
        c.acl("User:bridge", ["Write", "Describe", "DescribeConfigs", "Create"],
              topic="webhooks.", prefixed=True)
        c.acl("User:service", ["Read", "Describe"], topic="webhooks.", prefixed=True)
        c.acl("User:service", ["Read"], group="example-", prefixed=True)
        conf = c.client_config("SCRAM-SHA-512", password=BRIDGE_PASSWORD)
        ini = "[librdkafka]\n" + "".join(f"{k} = {v}\n" for k, v in conf.items()
                                         if k not in ("bootstrap.servers", "sasl.password"))
        with harness.Bridge(conf["bootstrap.servers"], config=ini,
                            env={"BRIDGE_RDKAFKA_SASL_PASSWORD": BRIDGE_PASSWORD}) as bridge:
            bridge.wait_kafka_reachable(True, timeout=30)
            # the tests' own reads and the poison pill: the super user's listener
            writes = write_records(bridge, c.bootstrap, uuid.uuid4().hex[:8])
            print(f"the bridge wrote {len(writes.receipts)} records over SCRAM-SHA-512")
            yield c, writes


def scram(cluster):
    return cluster.address("SCRAM"), str(cluster.ca.cert)


def own(writes):
    """The records, with a nonce of this test's for the topic that run 3 of
    check_example makes (one per example: they share this cluster)."""
    mine = copy.copy(writes)
    mine.nonce = uuid.uuid4().hex[:8]
    return mine


def test_python_example_scram(secured):
    cluster, writes = secured[0], own(secured[1])
    brokers, ca = scram(cluster)
    props = {"security.protocol": "SASL_SSL", "sasl.mechanisms": "SCRAM-SHA-512",
             "sasl.username": "service", "sasl.password": SERVICE_PASSWORD,
             "ssl.ca.location": ca}
    extra = [a for k, v in props.items() for a in ("-X", f"{k}={v}")]
    check_example([venv_python(), EXAMPLES / "python" / "consumer.py"], cluster.bootstrap,
                  writes, "example-python-scram", extra, brokers=brokers,
                  refresh_args=["-X", "topic.metadata.refresh.interval.ms=1000"])


def test_java_example_scram(secured):
    cluster, writes = secured[0], own(secured[1])
    brokers, ca = scram(cluster)
    props = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
             "sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule "
                                 f'required username="service" password="{SERVICE_PASSWORD}";',
             "ssl.truststore.type": "PEM", "ssl.truststore.location": ca}
    extra = [a for k, v in props.items() for a in ("-X", f"{k}={v}")]
    check_example(java_build(), cluster.bootstrap, writes, "example-java-scram", extra,
                  sigterm_status=JVM_SIGTERM_STATUS, brokers=brokers,
                  refresh_args=["-X", "metadata.max.age.ms=1000"])


def test_go_example_scram(secured):
    cluster, writes = secured[0], own(secured[1])
    brokers, ca = scram(cluster)
    go = shutil.which("go")
    if go is None:
        unavailable("go is not installed")
    out = BUILD / "go" / "consumer"
    run_tool([go, "build", "-o", out, "."], cwd=EXAMPLES / "go",
             env=dict(os.environ, GOPROXY="off", GOFLAGS="-mod=readonly -buildvcs=false"))
    extra = ["--security-protocol", "SASL_SSL", "--sasl-mechanism", "SCRAM-SHA-512",
             "--sasl-username", "service", "--ssl-ca", ca]
    check_example([out], cluster.bootstrap, writes, "example-go-scram", extra, brokers=brokers,
                  env=dict(os.environ, WEBHOOK_CONSUMER_SASL_PASSWORD=SERVICE_PASSWORD),
                  refresh_args=["--metadata-refresh", "1s"])
