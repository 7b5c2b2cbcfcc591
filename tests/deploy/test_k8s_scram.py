"""deploy/k8s/strimzi's KafkaUser and deploy/k8s-scram (the base with the
bridge on a Strimzi cluster's SCRAM-SHA-512 + TLS listener), checked without a
cluster: the user has the ACLs the bridge needs and no more (the ones
tests/secured/ runs against real Kafka 4.1.1), the example Kafka resource has
the listener the overlay names, and the overlay's bridge takes its password
from a Secret (never from bridge.ini) and trusts the mounted cluster CA."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from helpers import SOURCE_DIR, load_yaml_docs, parse_ini  # noqa: E402
from test_k8s import build, check_config, configmap_ini, container, container_env  # noqa: E402

K8S = SOURCE_DIR / "deploy" / "k8s"
SCRAM = SOURCE_DIR / "deploy" / "k8s-scram"


def kafka_user():
    users = [d for d in build(K8S / "strimzi") if d["kind"] == "KafkaUser"]
    assert len(users) == 1, users
    return users[0]


def test_kafka_user_scram_and_acls():
    user = kafka_user()
    assert user["apiVersion"] == "kafka.strimzi.io/v1beta2"
    assert user["metadata"]["namespace"] == "kafka"
    assert user["metadata"]["labels"]["strimzi.io/cluster"] == "webhooks"
    assert user["spec"]["authentication"] == {"type": "scram-sha-512"}
    acls = {(a["resource"]["type"], a["resource"].get("name", ""),
             a["resource"].get("patternType", "literal")):
            sorted(a["operations"]) for a in user["spec"]["authorization"]["acls"]}
    ini = parse_ini((SCRAM / "bridge.ini").read_text())
    prefix = ini["kafka"]["topic_prefix"]
    assert acls == {
        ("topic", prefix + ".", "prefix"): ["Describe", "DescribeConfigs", "Write"],
        ("topic", ini["kafka"]["deadletter_topic"], "literal"): ["Read"],
        ("group", "webhook-bridge-replay", "prefix"): ["Read"],
        ("cluster", "", "literal"): ["DescribeConfigs"],
    }, acls
    assert user["spec"]["authorization"]["type"] == "simple"


def test_example_cluster_has_the_scram_listener():
    docs = load_yaml_docs((K8S / "strimzi" / "kafka-cluster.example.yaml").read_text())
    kafka = next(d for d in docs if d["kind"] == "Kafka")["spec"]["kafka"]
    scram = [l for l in kafka["listeners"] if l.get("authentication", {}).get("type") ==
             "scram-sha-512"]
    assert len(scram) == 1 and scram[0]["tls"] is True, kafka["listeners"]
    assert kafka["authorization"]["type"] == "simple"
    ini = parse_ini((SCRAM / "bridge.ini").read_text())
    assert ini["kafka"]["brokers"] == f"webhooks-kafka-bootstrap.kafka.svc:{scram[0]['port']}"


def test_overlay_bridge_uses_the_user_and_the_ca(tmp_path):
    objs = build(SCRAM)
    ini = parse_ini(configmap_ini(objs))
    rd = ini["librdkafka"]
    assert rd["security.protocol"] == "SASL_SSL" and rd["sasl.mechanisms"] == "SCRAM-SHA-512"
    assert rd["sasl.username"] == kafka_user()["metadata"]["name"]
    assert "sasl.password" not in rd, "the password belongs in a Secret"
    c = container(objs)
    env = {e["name"]: e for e in c["env"]}
    ref = env["BRIDGE_RDKAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "webhook-bridge-kafka", "key": "password"}
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in
               next(o for o in objs if o["kind"] == "Deployment")["spec"]["template"]["spec"]
               ["volumes"]}
    ca = pathlib.PurePosixPath(rd["ssl.ca.location"])
    mount = next(m for m in mounts.values() if str(ca.parent) == m["mountPath"])
    assert mount["readOnly"] is True
    secret = volumes[mount["name"]]["secret"]
    assert secret["secretName"] == "webhook-bridge-kafka"
    assert {"key": "ca.crt", "path": ca.name} in secret["items"]
    # the base's checks still hold: every secret from a Secret, the file valid
    ca_file = tmp_path / "ca.crt"
    ca_file.write_text("")
    local = configmap_ini(objs).replace(str(ca), str(ca_file))
    objs_local = [dict(o, data={"bridge.ini": local}) if o["kind"] == "ConfigMap" else o
                  for o in objs]
    base_env = container_env([o for o in objs if o["kind"] != "Deployment"] +
                             [o for o in build(K8S) if o["kind"] == "Deployment"])
    res = check_config(objs_local, tmp_path,
                       dict(base_env, BRIDGE_RDKAFKA_SASL_PASSWORD="not-the-real-one"))
    assert res.returncode == 0, res.stdout + res.stderr
