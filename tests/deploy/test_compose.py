"""docker-compose.yml: the fast checks of the file (Compose itself reads it,
the Kafka cluster it describes, the bridge and consumer services, the
bridge's --check-config with the stack's configuration). The stack running
for real, its health checks going healthy and the containers' users and
filesystems are tests/deploy/test_docker_stack.py and test_docker_image.py."""
import base64
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "lib"))
from helpers import (SOURCE_DIR, compose_bind_mounts, compose_bridge_config, env_dict,  # noqa: E402
                     env_path, load_compose, parse_dockerfile, parse_ini, run, secret_env_names,
                     unread_bridge_vars)

BROKERS = ["kafka-0", "kafka-1", "kafka-2"]


IMAGE_INI = SOURCE_DIR / "deploy/bridge.example.ini"


@pytest.fixture(scope="module")
def compose():
    return load_compose()


@pytest.fixture(scope="module")
def bridge_ini(compose):
    """The configuration file the compose bridge reads (mounted over the image's)."""
    return compose_bridge_config(compose)


def kafka_props(env):
    """The server properties the apache/kafka image writes for an environment:
    KAFKA_FOO_BAR -> foo.bar, '__' -> '_', '___' -> '-' (its KafkaDockerWrapper)."""
    props = {}
    for key, value in env.items():
        if not key.startswith("KAFKA_") or key in ("KAFKA_HEAP_OPTS", "KAFKA_OPTS",
                                                    "KAFKA_JMX_OPTS", "KAFKA_LOG4J_OPTS"):
            continue
        name = key[len("KAFKA_"):].lower().replace("_", ".").replace("...", "-").replace("..", "_")
        props[name] = value
    return props


def listeners(value):
    """'NAME://host:port,...' -> {NAME: (host, port)}"""
    out = {}
    for item in value.split(","):
        m = re.fullmatch(r"([A-Z_]+)://([^:]*):(\d+)", item.strip())
        assert m, f"bad listener {item!r}"
        out[m.group(1)] = (m.group(2), int(m.group(3)))
    return out


# ---- Compose itself reads the file ---------------------------------------------

def compose_config(path):
    """`docker compose -f PATH config --quiet` (no engine needed); skipped, or
    failed under CI, when Compose is not installed."""
    import dockerenv
    if shutil.which("docker") is None or \
            subprocess.run(["docker", "compose", "version"], capture_output=True).returncode:
        if dockerenv.required():
            pytest.fail("no `docker compose` (CI): run deploy/install-deps.sh --test")
        pytest.skip("no `docker compose`: run deploy/install-deps.sh --test")
    return subprocess.run(["docker", "compose", "-f", str(path), "config", "--quiet"],
                          capture_output=True, text=True, timeout=60, cwd=SOURCE_DIR)


def test_compose_accepts_the_file():
    res = compose_config(SOURCE_DIR / "docker-compose.yml")
    assert res.returncode == 0, res.stdout + res.stderr


def test_compose_refuses_a_broken_file(tmp_path):
    """The check above is not vacuous: a wrong value in the same file is refused."""
    text = (SOURCE_DIR / "docker-compose.yml").read_text()
    bad = text.replace("stop_grace_period: 30s", "stop_grace_period: 30 seconds", 1)
    assert bad != text
    (tmp_path / "docker-compose.yml").write_text(bad)
    res = compose_config(tmp_path / "docker-compose.yml")
    assert res.returncode != 0 and "stop_grace_period" in res.stdout + res.stderr


def test_no_host_interpolation():
    """Compose substitutes $VAR and ${VAR} from the host's environment: this
    file uses none, and every '$' meant for a container's shell is '$$'."""
    text = (SOURCE_DIR / "docker-compose.yml").read_text()
    lines = [l for l in text.replace("$$", "").splitlines() if "$" in l and not
             l.lstrip().startswith("#")]
    assert lines == [], lines


# ---- the Kafka cluster --------------------------------------------------------------

def test_kafka_cluster(compose):
    services = compose["services"]
    assert [s for s in services if s.startswith("kafka-") and s != "kafka-init"] == BROKERS
    voters_expected, ids, host_ports, cluster_ids = [], set(), set(), set()
    for name in BROKERS:
        svc = services[name]
        assert svc["image"].startswith("apache/kafka:") and not svc["image"].endswith(":latest")
        env = env_dict(svc["environment"])
        props = kafka_props(env)
        cluster_ids.add(env["CLUSTER_ID"])
        node = int(props["node.id"])
        assert node not in ids
        ids.add(node)
        assert props["process.roles"] == "broker,controller"
        lst = listeners(props["listeners"])
        adv = listeners(props["advertised.listeners"])
        protocols = dict(p.split(":") for p in props["listener.security.protocol.map"].split(","))
        assert set(lst) <= set(protocols), "a listener without a security protocol"
        ctrl = props["controller.listener.names"]
        assert ctrl in lst and ctrl not in adv, "controllers are not advertised to clients"
        inter = props["inter.broker.listener.name"]
        assert inter in lst and inter in adv
        # other containers reach the broker by its service name on the internal listener
        assert adv[inter] == (name, lst[inter][1])
        assert svc.get("hostname", name) == name
        voters_expected.append(f"{node}@{name}:{lst[ctrl][1]}")
        # the external listener is published on the same port and advertised as localhost
        ext = [l for l in adv if l not in (inter, ctrl)]
        assert len(ext) == 1
        host, port = adv[ext[0]]
        assert host == "localhost" and lst[ext[0]][1] == port
        assert svc["ports"] == [f"127.0.0.1:{port}:{port}"]  # published on loopback only
        host_ports.add(port)
        # durability: RF 3, two in sync, never an unclean leader
        assert props["default.replication.factor"] == "3"
        assert props["min.insync.replicas"] == "2"
        assert props["offsets.topic.replication.factor"] == "3"
        assert props["transaction.state.log.replication.factor"] == "3"
        assert props["transaction.state.log.min.isr"] == "2"
        assert props.get("unclean.leader.election.enable", "false") == "false"
        # data on a named volume at the image's data directory (owned by its user)
        assert props["log.dirs"] == "/var/lib/kafka/data"
        assert svc["volumes"] == [f"{name}-data:/var/lib/kafka/data"]
        assert f"{name}-data" in compose["volumes"]
        # healthy only when the broker answers
        assert "kafka-broker-api-versions.sh" in " ".join(svc["healthcheck"]["test"])
    assert len(host_ports) == 3
    for name in BROKERS:
        props = kafka_props(env_dict(services[name]["environment"]))
        assert props["controller.quorum.voters"].split(",") == voters_expected
    # one cluster id, a base64url-encoded 16-byte UUID as kafka-storage expects
    assert len(cluster_ids) == 1
    cid = cluster_ids.pop()
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cid)
    assert len(base64.urlsafe_b64decode(cid + "==")) == 16


def topic_job(compose):
    job = compose["services"]["kafka-init"]
    env = env_dict(job["environment"])
    return job, env, env["TOPICS"].split()


def test_topic_job(compose):
    job, env, topics = topic_job(compose)
    assert job["restart"] == "no"
    assert {b: {"condition": "service_healthy"} for b in BROKERS} == job["depends_on"]
    assert env["BOOTSTRAP"] == ",".join(f"{b}:9092" for b in BROKERS)
    script = " ".join(job["entrypoint"] + job["command"])
    # every variable of the job is used by its script ('$$' in the file, '$' in the container)
    for var in env:
        assert f"$${var}" in script, var
    assert "--replication-factor 3" in script and "min.insync.replicas=2" in script
    assert "--if-not-exists" in script, "the job must succeed when run again"
    assert "webhooks.deadletter" in topics
    for t in topics:
        assert re.fullmatch(r"[A-Za-z0-9._-]{1,249}", t), t
    # the same topics as the Strimzi example
    import yaml

    docs = yaml.safe_load_all((SOURCE_DIR / "deploy/k8s/strimzi/kafka-topics.yaml").read_text())
    assert sorted(topics) == sorted(d["spec"]["topicName"] for d in docs if d)


def test_topics_cover_routes(compose, bridge_ini):
    """Every topic a [routes] entry of the stack's (and the image's) configuration
    names is created."""
    _, _, topics = topic_job(compose)
    for path in (bridge_ini, IMAGE_INI):
        ini = parse_ini(path.read_text())
        for glob, topic in ini.get("routes", {}).items():
            assert topic in topics, f"{path.name}: route {glob} -> {topic} has no topic in kafka-init"


# ---- bridge and consumer --------------------------------------------------------------

def drain_timeout_s(ini, env):
    ms = env.get("BRIDGE_DRAIN_TIMEOUT_MS") or ini.get("server", {}).get("drain_timeout_ms", "20000")
    return int(ms) / 1000


def seconds(duration):
    m = re.fullmatch(r"(\d+)s", duration)
    assert m, duration
    return int(m.group(1))


def test_bridge_service(compose, bridge_ini):
    svc = compose["services"]["bridge"]
    stages, _ = parse_dockerfile((SOURCE_DIR / svc["build"]["dockerfile"]).read_text())
    assert svc["build"]["context"] == "."
    assert svc["build"]["target"] in [s[0] for s in stages]
    assert svc["depends_on"] == {"kafka-init": {"condition": "service_completed_successfully"}}
    assert sorted(svc["ports"]) == ["127.0.0.1:8080:8080", "127.0.0.1:9090:9090"]
    env = env_dict(svc["environment"])
    assert env["BRIDGE_KAFKA_BROKERS"] == ",".join(f"{b}:9092" for b in BROKERS)
    # hardening: read-only root, no capabilities, the image's numeric user
    assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in svc["security_opt"]
    uid = svc["user"].split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    bridge_stage = next(s for s in stages if s[0] == svc["build"]["target"])
    users = [a for i, a in bridge_stage[2] if i == "USER"]
    assert users and users[-1] == svc["user"]
    # the health check asks the admin port whether the bridge is ready
    test = " ".join(svc["healthcheck"]["test"])
    assert "/dev/tcp/127.0.0.1/9090" in test and "GET /readyz" in test
    # SIGTERM drain fits in the stop timeout
    ini = parse_ini(bridge_ini.read_text())
    assert seconds(svc["stop_grace_period"]) > drain_timeout_s(ini, env) + 5


SHOPERTI_AUTH_KEYS = re.compile(r"auth(\..*)?")


def test_bridge_config_is_the_images_but_shopertis_auth(compose, bridge_ini):
    """The stack mounts its own configuration over the image's: the same file
    (deploy/bridge.example.ini) except that Shoperti, which signs nothing, is
    authenticated by a secret path segment instead of by its API (no Shoperti
    API token on a laptop)."""
    assert bridge_ini != IMAGE_INI and bridge_ini.is_file(), bridge_ini
    assert bridge_ini.parent == IMAGE_INI.parent
    mounted = compose_bind_mounts(compose["services"]["bridge"])
    assert mounted == {"/etc/webhook-bridge/bridge.ini": bridge_ini}, "one file, nothing else"
    assert any(v.endswith(":/etc/webhook-bridge/bridge.ini:ro")
               for v in compose["services"]["bridge"]["volumes"]), "mounted read-only"
    stack, image = parse_ini(bridge_ini.read_text()), parse_ini(IMAGE_INI.read_text())

    def without_shoperti_auth(ini):
        return {s: {k: v for k, v in kv.items()
                    if not (s == "provider.shoperti" and SHOPERTI_AUTH_KEYS.fullmatch(k))}
                for s, kv in ini.items()}

    assert without_shoperti_auth(stack) == without_shoperti_auth(image)
    shoperti = {k: v for k, v in stack["provider.shoperti"].items() if k.startswith("auth")}
    assert shoperti == {"auth": "path", "auth.secret_env": "SHOPERTI_PATH_TOKEN"}
    assert image["provider.shoperti"]["auth"] == "api-lookup"
    # the demo token is a valid path token (16-256 of A-Z a-z 0-9 - . _ ~)
    token = env_dict(compose["services"]["bridge"]["environment"])["SHOPERTI_PATH_TOKEN"]
    assert re.fullmatch(r"[A-Za-z0-9._~-]{16,256}", token), token


def test_bridge_spool_volume(compose):
    """The spool (BRIDGE_SPOOL_DIR) is on a named volume mounted at that
    directory, the only writable path of the read-only container besides
    /tmp; Piriod spools."""
    svc = compose["services"]["bridge"]
    env = env_dict(svc["environment"])
    spool = env["BRIDGE_SPOOL_DIR"]
    mounts = dict(v.split(":")[:2][::-1] for v in svc["volumes"])
    assert spool in mounts, svc["volumes"]
    assert mounts[spool] in compose["volumes"]
    assert env["BRIDGE_PROVIDER_PIRIOD_SPOOL"] == "on"
    assert svc["read_only"] is True and svc["tmpfs"] == ["/tmp"]


def test_consumer_service(compose):
    svc = compose["services"]["consumer"]
    assert svc["build"]["target"] == "consumer"
    assert svc["build"]["dockerfile"] == compose["services"]["bridge"]["build"]["dockerfile"]
    assert svc["depends_on"] == {"kafka-init": {"condition": "service_completed_successfully"}}
    env = env_dict(svc["environment"])
    assert env["WEBHOOK_CONSUMER_TOPICS"] == r"^webhooks\..*"
    assert env["WEBHOOK_CONSUMER_GROUP"]
    assert env["WEBHOOK_CONSUMER_BROKERS"] == ",".join(f"{b}:9092" for b in BROKERS)
    assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"]


def test_env_vars_are_read(compose, bridge_ini):
    """Every variable the compose file gives a program is one that program reads."""
    services = compose["services"]
    env = env_dict(services["bridge"]["environment"])
    ini = parse_ini(bridge_ini.read_text())
    assert unread_bridge_vars(env, ini, env) == []
    # and every secret the configuration names is given
    missing = secret_env_names(ini, env) - set(env)
    assert not missing, f"the bridge would refuse to start without {sorted(missing)}"

    consumer_src = (SOURCE_DIR / "deploy/consumer/consumer.c").read_text()
    read = set(re.findall(r'(?:getenv|env_or)\("([A-Z0-9_]+)"', consumer_src))
    assert set(env_dict(services["consumer"]["environment"])) <= read

    for name in BROKERS:
        for var in env_dict(services[name]["environment"]):
            assert var == "CLUSTER_ID" or var.startswith("KAFKA_"), var


def check_config(ini, env):
    bridge = env_path("WB_BRIDGE")
    if bridge is None:
        pytest.skip("WB_BRIDGE not set")
    return run([str(bridge), "--config", str(ini), "--check-config"],
               env={"PATH": os.environ.get("PATH", "/usr/bin"), **env})


def test_bridge_config_accepted(compose, bridge_ini):
    """The stack's configuration with the compose environment passes
    `webhook-bridge --check-config`."""
    env = env_dict(compose["services"]["bridge"]["environment"])
    res = check_config(bridge_ini, env)
    assert res.returncode == 0, res.stdout + res.stderr
    # without the secrets it refuses (so the check above is not vacuous)
    no_secrets = {k: v for k, v in env.items() if k.startswith("BRIDGE_")}
    res = check_config(bridge_ini, no_secrets)
    assert res.returncode != 0
    # Shoperti's path token is one of them
    res = check_config(bridge_ini, {k: v for k, v in env.items() if k != "SHOPERTI_PATH_TOKEN"})
    assert res.returncode != 0 and "SHOPERTI_PATH_TOKEN" in res.stdout + res.stderr


def commented_env(compose_text, prefix):
    """The `#   NAME: "value"` lines of the compose file's comments whose
    NAME starts with prefix, as a dict."""
    return dict(re.findall(r'^\s*#\s+(' + prefix + r'[A-Z0-9_]*): "([^"]*)"\s*$', compose_text,
                           re.M))


def test_production_switch_in_the_comment_is_accepted(compose, bridge_ini):
    """The environment the compose file's comment gives for production
    (Shoperti confirmed by its API, auth = api-lookup) turns the stack's
    configuration into one the bridge accepts, given the API token; and the
    same settings as the image's and the Kubernetes configuration."""
    switch = commented_env((SOURCE_DIR / "docker-compose.yml").read_text(),
                           "BRIDGE_PROVIDER_SHOPERTI_")
    assert switch.get("BRIDGE_PROVIDER_SHOPERTI_AUTH") == "api-lookup", switch
    env = {k: v for k, v in env_dict(compose["services"]["bridge"]["environment"]).items()
           if k != "SHOPERTI_PATH_TOKEN"}
    env.update(switch)
    token_var = switch["BRIDGE_PROVIDER_SHOPERTI_AUTH_SECRET_ENV"]
    res = check_config(bridge_ini, {**env, token_var: "an-api-token"})
    assert res.returncode == 0, res.stdout + res.stderr
    res = check_config(bridge_ini, env)
    assert res.returncode != 0 and token_var in res.stdout + res.stderr
    # the image's configuration says the same
    image = parse_ini(IMAGE_INI.read_text())["provider.shoperti"]
    k8s = parse_ini((SOURCE_DIR / "deploy/k8s/bridge.ini").read_text())["provider.shoperti"]
    # BRIDGE_PROVIDER_SHOPERTI_AUTH_SECRET_ENV -> auth.secret_env
    as_keys = {"auth" + k[len("BRIDGE_PROVIDER_SHOPERTI_AUTH"):].lower().replace("_", ".", 1): v
               for k, v in switch.items()}
    assert as_keys == {k: v for k, v in image.items() if k.startswith("auth")}
    assert as_keys == {k: v for k, v in k8s.items() if k.startswith("auth")}
    res = check_config(IMAGE_INI, {**env_dict(compose["services"]["bridge"]["environment"]),
                                   token_var: "an-api-token"})
    assert res.returncode == 0, res.stdout + res.stderr
