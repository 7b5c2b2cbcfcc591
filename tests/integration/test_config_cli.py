"""The command line and the configuration: --help, --version,
--check-config, a bad value stops start-up naming it, routes with
wildcards, a fourth provider from configuration alone, per-provider options."""
import json
import os
import re
import subprocess

import pytest

import harness

EXAMPLE = os.path.join(harness.SOURCE_DIR, "deploy", "bridge.example.ini")
SECRETS = {"PIRIOD_PATH_TOKEN": "abcdefghijklmnop1234", "SHOPERTI_API_TOKEN": "shoperti-api-token",
           "BONIFIQ_TOKEN": "token-1"}


def run(*args, env=None, config=None, tmp_path=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    e.update(env or {})
    argv = [harness.BRIDGE, *args]
    if config is not None:
        p = tmp_path / "bridge.ini"
        p.write_text(config)
        argv += ["--config", str(p)]
    return subprocess.run(argv, env=e, capture_output=True, text=True, timeout=30)


def test_help_and_version():
    r = run("--help")
    assert r.returncode == 0 and "--check-config" in r.stdout and "BRIDGE_KAFKA_BROKERS" in r.stdout
    r = run("--version")
    assert r.returncode == 0 and "libh2o 2.2.5" in r.stdout, r.stdout
    # deploy/librdkafka.sh's build, never Debian 12's 2.0.2 (SCRAM against Kafka 4)
    m = re.search(r"librdkafka (\d+)\.(\d+)\.(\d+)", r.stdout)
    assert m and tuple(map(int, m.groups())) >= (2, 6, 1), r.stdout
    assert run("--no-such-flag").returncode == 2


def test_example_configuration_is_valid_with_its_secrets():
    r = run("--config", EXAMPLE, "--check-config", env=SECRETS)
    assert r.returncode == 0, r.stderr
    r = run("--config", EXAMPLE, "--check-config")  # the secrets' variables are not set
    assert r.returncode == 1 and "PIRIOD_PATH_TOKEN" in r.stderr
    assert "abcdefghijklmnop1234" not in r.stderr + r.stdout


def test_check_config_prints_every_error_with_its_location(tmp_path):
    config = ("[server]\nthreads = many\nlisten = nowhere\n[kafka]\ntopic_prefix = bad topic\n"
              "[librdkafka]\nacks = 1\n[provider.Bad-Name]\ntype = /x\n[provider.piriod]\n"
              "deadline_ms = 5\nwhat = ever\n[nonsense]\nx = 1\n")
    r = run("--check-config", config=config, tmp_path=tmp_path,
            env={"BRIDGE_ADMIN_LISTEN": "0.0.0.0:99999", "BRIDGE_RDKAFKA_LINGER_MS": "-5"})
    assert r.returncode == 1
    err = r.stderr
    path = str(tmp_path / "bridge.ini")
    for expected in (f"{path}:2: [server] threads", f"{path}:3: [server] listen",
                     f"{path}:5: [kafka] topic_prefix", "[librdkafka] acks",
                     f"{path}:9: [provider.Bad-Name]", f"{path}:11: [provider.piriod] deadline_ms",
                     f"{path}:12: [provider.piriod] what", f"{path}:14: [nonsense] x",
                     "environment BRIDGE_ADMIN_LISTEN", "linger.ms"):
        assert expected in err, (expected, err)


def test_a_bad_value_stops_start_up_naming_it():
    r = run(env={"BRIDGE_THREADS": "0", "BRIDGE_LISTEN": "127.0.0.1:0"})
    assert r.returncode == 1
    assert "BRIDGE_THREADS" in r.stderr and "not starting" in r.stderr
    r = run(env={"BRIDGE_KAFKA_BROKERS": "127.0.0.1:1"})  # real brokers, no auth chosen
    assert r.returncode == 1 and "auth" in r.stderr


def test_routes_fourth_provider_and_options(tmp_path):
    config = """
[routes]
bonifiq.point.* = loyalty.points
acme.* = acme.all

[provider.acme]
type = /kind
id = /delivery
subject = /account/id
time = /at
time_format = unix
key = id
auth = none

[provider.piriod]
deadletter_status = 400
"""
    with harness.Standin() as kafka, harness.Bridge(kafka.bootstrap, config=config) as bridge:
        bridge.wait_ready()
        r = bridge.post("bonifiq", {"Uuid": "6f1c1a52-8a43-4b8e-9d55-2f7c2f1e7a12",
                                    "Timestamp": "2024-03-01T13:16:11", "Topic": 1,
                                    "TopicName": "Point_Remove", "Payload": {}})
        assert r.status_code == 200 and r.json()["topic"] == "loyalty.points", r.text
        r = bridge.post("acme", {"kind": "Thing.Happened", "delivery": "d-1", "at": 1700000000,
                                 "account": {"id": "acc-9"}})
        assert r.status_code == 200, r.text
        receipt = r.json()
        assert receipt["type"] == "acme.thing.happened" and receipt["topic"] == "acme.all"
        m = harness.read_at(kafka.bootstrap, receipt["topic"], receipt["partition"],
                            receipt["offset"])
        rec = json.loads(m.value())
        assert rec["id"] == "d-1" and rec["subject"] == "acc-9"
        assert rec["time"] == "2023-11-14T22:13:20.000Z"
        assert m.key() == b"d-1"  # key = id
        # piriod answers 400 for a dead letter, which is still kept
        before = harness.end_offsets(kafka.bootstrap, "webhooks.deadletter")
        r = bridge.post("piriod", {"no_event": True})
        assert r.status_code == 400 and r.json()["error"] == "invalid_shape"
        after = harness.end_offsets(kafka.bootstrap, "webhooks.deadletter")
        assert sum(after.values()) == sum(before.values()) + 1
        # a disabled provider is not found
    with harness.Standin() as kafka, harness.Bridge(
            kafka.bootstrap, env={"BRIDGE_PROVIDER_SHOPERTI_ENABLED": "false"}) as bridge:
        assert bridge.post("shoperti", {"id": "x", "topic": "a"}).status_code == 404
