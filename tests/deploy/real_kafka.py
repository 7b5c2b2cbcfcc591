#!/usr/bin/env python3
"""real_kafka.py - runs docker-compose.yml's Kafka cluster for real, without
Docker: tests/lib/kraft.py's Cluster (the compose image's Kafka release,
configured by the image's own code from the compose environment, three KRaft
nodes on 127.0.0.1). Then it runs, as written in the compose file, each
broker's health check and the kafka-init job, and the bridge (compose
environment, the configuration compose mounts) and the example consumer
against it:

  - every KAFKA_* variable is a setting this Kafka knows, with the value
    written, the quorum forms, the health checks pass, the topic job succeeds
    (twice: it is idempotent) and creates its topics with 3 replicas and
    min.insync.replicas=2;
  - the bridge answers 200 for one webhook per provider, the consumer prints
    them;
  - with one broker down, writes still succeed (min.insync.replicas=2);
    with two down, the bridge never answers 200 with an offset: acks=all
    means what the bridge promises (Piriod, which spools in compose, is
    answered 200 "spooled"; Shoperti, which does not, a failure).

The jars are kraft.kafka_libs()'s (deploy/install-deps.sh --test fetches them
once; WB_KAFKA_LIBS overrides). ctest runs this through test_real_kafka.py;
by hand:
  tests/deploy/real_kafka.py --bridge build/release/webhook-bridge \\
      --consumer build/release/deploy/consumer/webhook-consumer [--keep]
Everything listens on 127.0.0.1 and stops at the end."""
import argparse
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = pathlib.Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "lib")]
from helpers import SOURCE_DIR, compose_bridge_config, env_dict, load_compose, sanitizer_env  # noqa: E402
import kraft  # noqa: E402
from harness import free_port  # noqa: E402

START = time.monotonic()


def log(msg):
    print(f"real-kafka [{time.monotonic() - START:6.1f}s]: {msg}", flush=True)


def install_tools(cluster):
    """The image's /opt/kafka/bin scripts that the compose file runs."""
    bin_dir = cluster.work / "bin"
    bin_dir.mkdir()
    for script, cls in (("kafka-topics.sh", "org.apache.kafka.tools.TopicCommand"),
                        ("kafka-broker-api-versions.sh",
                         "org.apache.kafka.tools.BrokerApiVersionsCommand")):
        path = bin_dir / script
        path.write_text(f'#!/bin/sh\nexec java {" ".join(kraft.TOOL_JVM)} -cp "{cluster.libs}/*" '
                        f'{cls} "$@"\n')
        path.chmod(0o755)
    return bin_dir


def shell(cluster, service, command):
    """A compose command with the container's paths and names made local."""
    command = command.replace("/opt/kafka/bin/", f"{cluster.work / 'bin'}/")
    return re.sub(r"\b(localhost|kafka-\d+):(\d+)",
                  lambda m: cluster.local(service, m.group(1), m.group(2)), command)


def wait_healthy(cluster, compose, timeout=120):
    """Each node's compose health check, until it passes."""
    deadline = time.monotonic() + timeout
    for service in sorted(s for s in compose["services"] if re.fullmatch(r"kafka-\d+", s)):
        test = compose["services"][service]["healthcheck"]["test"]
        assert test[0] == "CMD-SHELL", test
        while subprocess.run(["sh", "-c", shell(cluster, service, test[1])], timeout=60).returncode:
            assert time.monotonic() < deadline, f"{service} never healthy"
            time.sleep(2)
        log(f"{service} healthy (its compose health check passed)")


def run_job(cluster, compose, name):
    svc = compose["services"][name]
    env = {k: shell(cluster, name, v) for k, v in env_dict(svc["environment"]).items()}
    argv = [shell(cluster, name, a.replace("$$", "$")) for a in svc["entrypoint"] + svc["command"]]
    return subprocess.run(argv, env={"PATH": os.environ["PATH"], **env}, capture_output=True,
                          text=True, timeout=300)


def post(url, body, headers, timeout=40):
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


# the answers a provider may be given when Kafka does not take the event
# (each provider's failure codes are some of these, bridge/provider.c)
FAILURE_STATUSES = (500, 502, 503, 504)


def post_until_200(url, body, headers, what, timeout=60):
    """Posts until a 200; a failure answer (Kafka not there yet) is the only other allowed."""
    deadline = time.monotonic() + timeout
    while True:
        status, answer = post(url, body, headers)
        if status == 200:
            return status, answer
        assert status in FAILURE_STATUSES, (status, answer)
        assert time.monotonic() < deadline, f"{what}: no 200 within {timeout} s: {answer}"
        time.sleep(0.5)


def wait_bridge_healthy(proc, admin, log_path, timeout=60):
    """/healthz 200 on the admin port (not /readyz: whether it follows Kafka is
    the bridge's policy; a webhook answered 200 is what shows Kafka is reached)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://{admin}/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.2)


def check(bridge, consumer=None, keep=False, also=None):
    """also(bootstrap, log), when given, runs while all three brokers are up,
    after the bridge's and the consumer's checks."""
    compose = load_compose()
    cluster = kraft.Cluster(keep=keep)
    bridge_proc = None
    try:
        install_tools(cluster)
        cluster.start()
        log(f"cluster ready in {cluster.wait_ready():.1f} s; node 0's server.properties:\n  "
            + "\n  ".join((cluster.work / "kafka-0/final/server.properties").read_text().splitlines()))
        wait_healthy(cluster, compose)
        wrong = cluster.settings_not_taken()
        assert not wrong, "\n".join(wrong)
        log("every KAFKA_* setting is one this Kafka knows, with the value written")

        for attempt in (1, 2):
            res = run_job(cluster, compose, "kafka-init")
            assert res.returncode == 0, f"kafka-init (run {attempt}) failed:\n{res.stdout}{res.stderr}"
        log("kafka-init succeeded twice")
        topics = env_dict(compose["services"]["kafka-init"]["environment"])["TOPICS"].split()
        described = res.stdout
        for t in topics:
            m = re.search(rf"Topic: {re.escape(t)}\s+TopicId: \S+\s+PartitionCount: (\d+)\s+"
                          rf"ReplicationFactor: (\d+)\s+Configs: (\S*)", described)
            assert m, f"{t} not described:\n{described}"
            assert m.group(2) == "3" and "min.insync.replicas=2" in m.group(3), m.group(0)
        log(f"{len(topics)} topics with 3 replicas and min.insync.replicas=2")

        env = env_dict(compose["services"]["bridge"]["environment"])
        web, admin = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
        env.update(BRIDGE_KAFKA_BROKERS=shell(cluster, "bridge", env["BRIDGE_KAFKA_BROKERS"]),
                   BRIDGE_CONFIG=str(compose_bridge_config(compose)),
                   BRIDGE_LISTEN=web, BRIDGE_ADMIN_LISTEN=admin,
                   # the volume compose mounts there, here a directory of the run
                   BRIDGE_SPOOL_DIR=str(cluster.work / "spool"))
        os.makedirs(env["BRIDGE_SPOOL_DIR"], exist_ok=True)
        bridge_log = cluster.work / "bridge.log"
        with open(bridge_log, "w") as out:
            bridge_proc = subprocess.Popen([str(bridge)], stdout=out, stderr=subprocess.STDOUT,
                                           env={"PATH": os.environ["PATH"], **sanitizer_env(), **env})
        wait_bridge_healthy(bridge_proc, admin, bridge_log)
        url = f"http://{web}/webhooks"
        piriod_url = f"{url}/piriod/{env['PIRIOD_PATH_TOKEN']}"
        shoperti_url = f"{url}/shoperti/{env['SHOPERTI_PATH_TOKEN']}"
        fixtures = SOURCE_DIR / "tests" / "fixtures"
        sent = {}
        payment = (fixtures / "piriod/payment-created.json").read_bytes()
        sent["piriod"] = post_until_200(piriod_url, payment, {}, "the bridge's first webhook")
        body = (fixtures / "shoperti/order-created.json").read_bytes()
        sent["shoperti"] = post(shoperti_url, body, {})
        body = (fixtures / "bonifiq/point-add.json").read_bytes()
        sent["bonifiq"] = post(f"{url}/bonifiq", body, {"X-Bonifiq-Token": env["BONIFIQ_TOKEN"]})
        for provider, (status, receipt) in sent.items():
            assert status == 200, f"{provider}: {status} {receipt}"
            log(f"{provider}: 200 {receipt}")

        if consumer:
            cenv = env_dict(compose["services"]["consumer"]["environment"])
            cenv["WEBHOOK_CONSUMER_BROKERS"] = shell(cluster, "consumer",
                                                     cenv["WEBHOOK_CONSUMER_BROKERS"])
            res = subprocess.run([str(consumer), *compose["services"]["consumer"]["command"],
                                  "--idle-exit-ms", "5000"], capture_output=True, text=True,
                                 env={"PATH": os.environ["PATH"], **sanitizer_env(), **cenv},
                                 timeout=120)
            assert res.returncode == 0, res.stderr
            for provider, (_, r) in sent.items():
                assert (f"event topic={r['topic']} partition={r['partition']} "
                        f"offset={r['offset']} ") in res.stdout, (provider, res.stdout)
            log("the consumer printed the three events")

        if also is not None:
            also(env["BRIDGE_KAFKA_BROKERS"], log)

        cluster.kill(cluster.ids[-1])
        status, answer = post_until_200(piriod_url, payment, {}, "one broker down")
        log(f"one broker down: 200 {answer}")
        cluster.kill(cluster.ids[-2])
        # Piriod spools in compose: a 200 is "spooled" (on the bridge's disk),
        # never one with an offset; Shoperti does not spool: never a 200
        answers = [post(piriod_url, payment, {}) for _ in range(3)]
        acked = [a for st, a in answers
                 if st == 200 and not (isinstance(a, dict) and a.get("spooled") is True)]
        assert not acked, f"a 200 with an offset with two of three brokers down: {answers}"
        body = (fixtures / "shoperti/order-created.json").read_bytes()
        shoperti = post(shoperti_url, body, {})
        assert shoperti[0] != 200, f"a 200 for Shoperti with two of three brokers down: {shoperti}"
        seen = [(st, a.get("spooled") if isinstance(a, dict) else a) for st, a in answers]
        log(f"two brokers down: Piriod {seen} (spooled, never an offset), "
            f"Shoperti {shoperti[0]} (never 200)")
        log("OK")
    finally:
        if bridge_proc is not None and bridge_proc.poll() is None:
            bridge_proc.send_signal(signal.SIGTERM)
            try:
                bridge_proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                bridge_proc.kill()
                bridge_proc.wait()
        cluster.stop()
        if keep:
            log(f"logs kept in {cluster.work}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bridge", required=True, help="webhook-bridge binary")
    ap.add_argument("--consumer", help="webhook-consumer binary (optional)")
    ap.add_argument("--keep", action="store_true", help="keep the logs")
    a = ap.parse_args()
    libs, complete = kraft.kafka_libs()
    if not complete:
        ap.error(f"no Kafka jars in {libs}: run deploy/install-deps.sh --test")
    check(a.bridge, a.consumer, a.keep)


if __name__ == "__main__":
    main()
