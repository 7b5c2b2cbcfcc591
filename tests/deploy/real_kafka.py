#!/usr/bin/env python3
"""real_kafka.py - runs docker-compose.yml's Kafka cluster for real, without
Docker: the same Apache Kafka release as the compose image (from Maven
Central), configured by the image's own code (kafka.docker.KafkaDockerWrapper
turns the compose environment into server.properties and formats the storage,
as the container's entry point does), three KRaft nodes on 127.0.0.1. Then it
runs, as written in the compose file, each broker's health check and the
kafka-init job, and the bridge (compose environment, image configuration)
and the example consumer against that cluster:

  - every KAFKA_* variable is a setting this Kafka knows, the quorum forms,
    the health checks pass, the topic job succeeds (twice: it is idempotent)
    and creates its topics with 3 replicas and min.insync.replicas=2;
  - the bridge answers 200 for one webhook per provider, the consumer prints
    them;
  - with one broker down, writes still succeed (min.insync.replicas=2);
    with two down, the bridge answers 503, never 200: acks=all means what the
    bridge promises.

Opt-in (it downloads about 55 MB once and takes a minute or two):
  tests/deploy/real_kafka.py --fetch ~/.cache/webhook-bridge-kafka
  tests/deploy/real_kafka.py --libs ~/.cache/webhook-bridge-kafka/libs \
      --bridge build/release/webhook-bridge \
      --consumer build/release/deploy/consumer/webhook-consumer
or through ctest: WB_KAFKA_LIBS=~/.cache/webhook-bridge-kafka/libs (test_real_kafka.py).
Everything listens on 127.0.0.1 and stops at the end."""
import argparse
import base64
import hashlib
import hmac
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from helpers import SOURCE_DIR, env_dict, load_compose, sanitizer_env  # noqa: E402

# helpers of the image's that are not server properties (KafkaDockerWrapper's list)
NOT_PROPERTIES = {"KAFKA_VERSION", "KAFKA_HEAP_OPTS", "KAFKA_LOG4J_OPTS", "KAFKA_OPTS",
                  "KAFKA_JMX_OPTS", "KAFKA_JVM_PERFORMANCE_OPTS", "KAFKA_GC_LOG_OPTS",
                  "KAFKA_LOG4J_LOGGERS", "KAFKA_LOG4J_ROOT_LOGLEVEL",
                  "KAFKA_TOOLS_LOG4J_LOGLEVEL", "KAFKA_JMX_HOSTNAME"}


START = time.monotonic()


def log(msg):
    print(f"real-kafka [{time.monotonic() - START:6.1f}s]: {msg}", flush=True)


def kafka_version(compose):
    image = compose["services"]["kafka-0"]["image"]
    m = re.fullmatch(r"apache/kafka:(\d+\.\d+\.\d+)", image)
    if not m:
        raise SystemExit(f"cannot tell the Kafka version of image {image}")
    return m.group(1)


def fetch(dest):
    """Downloads kafka_2.13, kafka-tools and a log4j2 binding with Maven."""
    version = kafka_version(load_compose())
    dest = pathlib.Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "pom.xml").write_text(f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.webhook-bridge</groupId><artifactId>kafka-libs</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>{version}</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>{version}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>2.24.3</version></dependency>
  </dependencies>
</project>
""")
    subprocess.run(["mvn", "-q", "-B", "dependency:copy-dependencies", "-DoutputDirectory=libs",
                    "-DincludeScope=runtime"], cwd=dest, check=True)
    log(f"Kafka {version} libraries in {dest / 'libs'}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """The compose file's Kafka nodes as local processes."""

    def __init__(self, compose, libs, work):
        self.compose, self.libs, self.work = compose, pathlib.Path(libs), pathlib.Path(work)
        self.nodes = [s for s in compose["services"] if re.fullmatch(r"kafka-\d+", s)]
        self.ports = {}  # (service, port in the compose file) -> local port
        self.procs = {}
        self.bin = self.work / "bin"
        self.bin.mkdir(parents=True)
        cp = f"{self.libs}/*"
        for script, cls in (("kafka-topics.sh", "org.apache.kafka.tools.TopicCommand"),
                            ("kafka-broker-api-versions.sh",
                             "org.apache.kafka.tools.BrokerApiVersionsCommand")):
            path = self.bin / script
            path.write_text(f'#!/bin/sh\nexec java -Xmx256m -cp "{cp}" {cls} "$@"\n')
            path.chmod(0o755)

    def local(self, node, host, port):
        """Where compose's host:port (seen from node) is here."""
        target = node if host in ("", "localhost", "0.0.0.0") else host
        key = (target, int(port))
        if key not in self.ports:
            self.ports[key] = free_port()
        return f"127.0.0.1:{self.ports[key]}"

    def remap(self, node, value):
        return re.sub(r"(?:^|(?<=[/@,]))([A-Za-z0-9.-]*):(\d+)",
                      lambda m: self.local(node, m.group(1), m.group(2)), value)

    def shell(self, node, command):
        """A compose command with the container's paths and names made local."""
        command = command.replace("/opt/kafka/bin/", f"{self.bin}/")
        return re.sub(r"\b(localhost|kafka-\d+):(\d+)",
                      lambda m: self.local(node, m.group(1), m.group(2)), command)

    def start(self):
        for node in self.nodes:
            svc = self.compose["services"][node]
            env = env_dict(svc["environment"])
            for key in ("KAFKA_LISTENERS", "KAFKA_ADVERTISED_LISTENERS",
                        "KAFKA_CONTROLLER_QUORUM_VOTERS"):
                env[key] = self.remap(node, env[key])
            d = self.work / node
            for sub in ("defaults", "mounted", "final", "data"):
                (d / sub).mkdir(parents=True)
            env["KAFKA_LOG_DIRS"] = str(d / "data")  # compose: a volume at /var/lib/kafka/data
            wrapper_env = {"PATH": os.environ["PATH"], **env}
            res = subprocess.run(["java", "-Xmx256m", "-cp", f"{self.libs}/*",
                                  "kafka.docker.KafkaDockerWrapper", "setup",
                                  "--default-configs-dir", str(d / "defaults"),
                                  "--mounted-configs-dir", str(d / "mounted"),
                                  "--final-configs-dir", str(d / "final")],
                                 env=wrapper_env, capture_output=True, text=True, timeout=120)
            if res.returncode != 0:
                raise AssertionError(f"{node}: the image's setup failed:\n{res.stdout}{res.stderr}")
            props = (d / "final" / "server.properties").read_text()
            (d / "log4j2.properties").write_text(
                "rootLogger.level = INFO\nrootLogger.appenderRef.out.ref = OUT\n"
                "appender.out.type = Console\nappender.out.name = OUT\n"
                "appender.out.layout.type = PatternLayout\n"
                "appender.out.layout.pattern = [%d] %p %m (%c)%n\n")
            heap = env.get("KAFKA_HEAP_OPTS", "-Xmx1g").split()
            out = open(d / "server.log", "w")
            self.procs[node] = subprocess.Popen(
                ["java", *heap, f"-Dlog4j2.configurationFile={d / 'log4j2.properties'}",
                 "-cp", f"{self.libs}/*", "kafka.Kafka", str(d / "final" / "server.properties")],
                stdout=out, stderr=subprocess.STDOUT)
            log(f"{node} started with\n  " + "\n  ".join(props.strip().splitlines()))

    def server_log(self, node):
        return (self.work / node / "server.log").read_text(errors="replace")

    def wait_healthy(self, timeout=180):
        deadline = time.monotonic() + timeout
        pending = list(self.nodes)
        while pending:
            node = pending[0]
            if self.procs[node].poll() is not None:
                raise AssertionError(f"{node} exited:\n{self.server_log(node)[-4000:]}")
            test = self.compose["services"][node]["healthcheck"]["test"]
            assert test[0] == "CMD-SHELL"
            res = subprocess.run(["sh", "-c", self.shell(node, test[1])], timeout=60)
            if res.returncode == 0:
                log(f"{node} healthy (its compose health check passed)")
                pending.pop(0)
                continue
            if time.monotonic() > deadline:
                raise AssertionError(f"{node} never healthy:\n{self.server_log(node)[-4000:]}")
            time.sleep(2)

    def settings_not_taken(self):
        """Settings of server.properties that Kafka did not take as written:
        a name it does not know (Kafka ignores those silently, so a typo in a
        KAFKA_* variable would go unnoticed) or a value it read otherwise.
        Compares with the "KafkaConfig values:" block the broker logs."""
        out = []
        norm = lambda v: re.sub(r"[\[\]\s]", "", v)  # noqa: E731
        for node in self.nodes:
            text = self.server_log(node)
            m = re.search(r"KafkaConfig values: *\n((?:\t.*\n)+)", text)
            if not m:
                out.append(f"{node}: no 'KafkaConfig values' in its log")
                continue
            known = {}
            for l in m.group(1).splitlines():
                k, _, v = l.strip("\t").partition(" =")
                known[k.strip()] = v.strip()
            props = (self.work / node / "final" / "server.properties").read_text()
            for line in props.splitlines():
                if not line.strip() or line.startswith("#"):
                    continue
                key, _, value = line.partition("=")
                if key not in known:
                    out.append(f"{node}: unknown setting {key}")
                elif norm(known[key]) != norm(value):
                    out.append(f"{node}: {key} = {value} was read as {known[key]}")
        return out

    def run_job(self, name):
        svc = self.compose["services"][name]
        env = env_dict(svc["environment"])
        env = {k: self.shell(name, v) for k, v in env.items()}
        argv = [a.replace("$$", "$") for a in svc["entrypoint"] + svc["command"]]
        argv = [self.shell(name, a) for a in argv]
        res = subprocess.run(argv, env={"PATH": os.environ["PATH"], **env}, capture_output=True,
                             text=True, timeout=300)
        return res

    def kill(self, node):
        self.procs[node].kill()
        self.procs[node].wait()
        log(f"{node} killed")

    def stop(self):
        # the data is thrown away: no clean shutdown needed (and a node
        # without its quorum would wait for one)
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
            p.wait()


def post(url, body, headers, timeout=40):
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def check(libs, bridge, consumer=None, keep=False):
    compose = load_compose()
    work = pathlib.Path(tempfile.mkdtemp(prefix="wb-real-kafka-"))
    cluster = Cluster(compose, libs, work)
    bridge_proc = None
    try:
        cluster.start()
        cluster.wait_healthy()
        wrong = cluster.settings_not_taken()
        assert not wrong, "\n".join(wrong)
        log("every KAFKA_* setting is one this Kafka knows, with the value written")

        for attempt in (1, 2):
            res = cluster.run_job("kafka-init")
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
        web, admin = free_port(), free_port()
        env.update(BRIDGE_KAFKA_BROKERS=cluster.shell("bridge", env["BRIDGE_KAFKA_BROKERS"]),
                   BRIDGE_CONFIG=str(SOURCE_DIR / "deploy/bridge.example.ini"),
                   BRIDGE_LISTEN=f"127.0.0.1:{web}", BRIDGE_ADMIN_LISTEN=f"127.0.0.1:{admin}")
        out = open(work / "bridge.log", "w")
        bridge_proc = subprocess.Popen([str(bridge)], stdout=out, stderr=subprocess.STDOUT,
                                       env={"PATH": os.environ["PATH"], **sanitizer_env(), **env})
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            assert bridge_proc.poll() is None and time.monotonic() < deadline, \
                (work / "bridge.log").read_text()
            time.sleep(0.5)
        url = f"http://127.0.0.1:{web}/webhooks"
        piriod_url = f"{url}/piriod/{env['PIRIOD_PATH_TOKEN']}"
        fixtures = SOURCE_DIR / "tests" / "fixtures"
        sent = {}
        body = (fixtures / "piriod/payment-created.json").read_bytes()
        sent["piriod"] = post(piriod_url, body, {})
        body = (fixtures / "shoperti/order-created.json").read_bytes()
        sig = base64.b64encode(hmac.new(env["SHOPERTI_WEBHOOK_SECRET"].encode(), body,
                                        hashlib.sha256).digest()).decode()
        sent["shoperti"] = post(f"{url}/shoperti", body, {"X-Shoperti-Hmac-Sha256": sig})
        body = (fixtures / "bonifiq/point-add.json").read_bytes()
        sent["bonifiq"] = post(f"{url}/bonifiq", body, {"X-Bonifiq-Token": env["BONIFIQ_TOKEN"]})
        for provider, (status, receipt) in sent.items():
            assert status == 200, f"{provider}: {status} {receipt}"
            log(f"{provider}: 200 {receipt}")

        if consumer:
            cenv = env_dict(compose["services"]["consumer"]["environment"])
            cenv["WEBHOOK_CONSUMER_BROKERS"] = cluster.shell("consumer",
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

        payment = (fixtures / "piriod/payment-created.json").read_bytes()
        cluster.kill(cluster.nodes[-1])
        deadline = time.monotonic() + 60
        while True:
            status, answer = post(piriod_url, payment, {})
            if status == 200:
                break
            assert status == 503, (status, answer)
            assert time.monotonic() < deadline, f"no 200 with one broker down: {answer}"
        log(f"one broker down: 200 {answer}")
        cluster.kill(cluster.nodes[-2])
        statuses = [post(piriod_url, payment, {})[0] for _ in range(3)]
        assert 200 not in statuses, f"a 200 with two of three brokers down: {statuses}"
        log(f"two brokers down: {statuses} (never 200)")
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
            log(f"logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fetch", metavar="DIR", help="download the Kafka libraries into DIR/libs")
    ap.add_argument("--libs", metavar="DIR", help="folder of the Kafka jars")
    ap.add_argument("--bridge", help="webhook-bridge binary")
    ap.add_argument("--consumer", help="webhook-consumer binary (optional)")
    ap.add_argument("--keep", action="store_true", help="keep the logs")
    a = ap.parse_args()
    if a.fetch:
        fetch(a.fetch)
        if not a.libs:
            return
    if not (a.libs and a.bridge):
        ap.error("--libs and --bridge are needed (or --fetch)")
    check(pathlib.Path(a.libs).expanduser(), a.bridge, a.consumer, a.keep)


if __name__ == "__main__":
    main()
